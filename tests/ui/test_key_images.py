"""What goes with a question in the workspace: pinned key images in series order, the whole series sampled, each
labelled, their thumbnails in the chat; and the screens around them (delete confirmation, drafts, status, viewer).

The model is an OpenAI-protocol stub under the ``pixels`` profile, so the test reads the PNGs the model received.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from assistant import load_settings, open_runtime, render
from assistant.llm.engine import EmbeddedEngine, EngineSpec
from tests.support.openai_stub import OpenAIStub
from tests.ui.synthetic import write_ct_series
from tests.ui.uploads import submitted
from ui.messages import FAILED_TITLE, NOTE_TITLE, history_entries, message_text
from ui.viewer import COLOUR_WINDOW_NOTE
from ui.workspace import STUDY_QA, Workspace, relative_time, start_step

QUESTION = "compare these slices"


def _sent(request: dict[str, Any]) -> tuple[list[np.ndarray], str]:
    """The images (decoded PNGs) and the text of the request's last user message."""
    content = request["messages"][-1]["content"]
    images = [
        np.asarray(PILImage.open(io.BytesIO(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))))
        for p in content
        if p.get("type") == "image_url"
    ]
    text = "\n".join(p["text"] for p in content if p.get("type") == "text")
    return images, text


def _last(iterator: Any) -> Any:
    out = None
    for item in iterator:
        out = item
    return out


@pytest.fixture()
def ct(tmp_path: Path) -> list[Path]:
    return write_ct_series(tmp_path / "ct", slices=12, size=64)


def test_pinned_frames_are_sent_in_series_order_with_their_windows_and_shown_as_thumbnails(
    tmp_path: Path, ct: list[Path]
) -> None:
    with OpenAIStub("Seen.") as llm:
        settings = load_settings(env={}, data_dir=tmp_path / "d", llm_url=llm.url, vision_profile="pixels")
        with open_runtime(settings) as runtime:
            ws = Workspace(runtime)
            _, history, s, *_ = ws.accept(submitted(ws.data_dir, ct, QUESTION), [], None)
            ws.change_view(s, None, 9, "bone")
            panel = ws.pin_frame(s)  # slice 9 in bone window first ...
            ws.change_view(s, None, 3, "lung")
            panel = ws.pin_frame(s)  # ... then slice 3 in lung window
            assert "2 pinned frame(s)" in panel and panel.index("slice 3/12, lung") < panel.index("slice 9/12, bone")
            ws.change_view(s, None, 6, "default")  # the frame on screen is not pinned: not sent
            history = _last(ws.respond(history, s, STUDY_QA))[0]
    (request,) = llm.requests
    images, text = _sent(request)
    study = s.study
    assert study is not None
    frames = study.series[0].images
    # Series order, each with the window it was pinned in, exactly as rendered for the screen.
    assert len(images) == 2
    assert np.array_equal(images[0], render(frames[2], "lung")) and np.array_equal(images[1], render(frames[8], "bone"))
    lines = [line for line in text.splitlines() if "slice " in line]  # one label line per image, in order
    assert len(lines) == 2
    assert "slice 3/12, window lung C-600/W1500" in lines[0] and "slice 9/12, window bone" in lines[1]
    assert "slice 6/12" not in text
    # The question shows thumbnails of exactly those two, labelled; the saved conversation keeps the text only.
    question = history[-2]["content"]
    thumbs = [p for p in question if isinstance(p, dict)]
    assert message_text(question) == QUESTION and len(thumbs) == 2
    assert "slice 3/12" in thumbs[0]["alt_text"] and "slice 9/12" in thumbs[1]["alt_text"]
    small = np.asarray(PILImage.open(thumbs[0]["path"]))
    assert max(small.shape) <= 96 and Path(thumbs[0]["path"]).parent == s.folder
    assert [e.text for e in history_entries(history) if e.role == "user"] == [QUESTION]


def test_pins_stop_at_the_profiles_image_limit_and_can_be_removed(make_runtime: Any, ct: list[Path]) -> None:
    ws = Workspace(make_runtime([], vision_max_images=2))
    _, _, s, *_ = ws.accept(submitted(ws.data_dir, ct), [], None)
    assert ws.image_limit == 2  # the text-only default model gets the labels of as many frames as the setting
    for number in (2, 4):
        ws.change_view(s, None, number, "default")
        ws.pin_frame(s)
    ws.change_view(s, None, 7, "default")
    refused = ws.pin_frame(s)
    assert "At most 2 frames" in refused and [p[1] for p in s.pins] == [1, 3]
    ws.change_view(s, None, 4, "lung")
    ws.pin_frame(s)  # pinning a pinned frame again keeps one pin, with the window now on screen
    assert s.pins == [(0, 1, "default"), (0, 3, "lung")]
    assert "1 pinned" in ws.unpin_frame(s) and "the frame on screen" in ws.clear_pins(s) and s.pins == []
    assert ws.pin_frame(ws.session(None)).startswith("⚠️ Load a study first")


def test_the_whole_series_is_an_explicit_choice_sampled_evenly_and_labelled(tmp_path: Path, ct: list[Path]) -> None:
    with OpenAIStub("Seen.") as llm:
        settings = load_settings(
            env={}, data_dir=tmp_path / "d", llm_url=llm.url, vision_profile="pixels", vision_series_frames=3
        )  # fmt: skip
        with open_runtime(settings) as runtime:
            ws = Workspace(runtime)
            _, history, s, *viewer = ws.accept(submitted(ws.data_dir, ct, QUESTION), [], None)
            whole = viewer[-1]
            assert whole["visible"] is True and "3 frames evenly spaced from 1 to 12" in whole["label"]
            ws.change_view(s, None, 5, "lung")
            ws.pin_frame(s)
            assert "whole series" in ws.choose_whole_series(s, True)
            _, history, s, *_ = ws.accept({"text": QUESTION, "files": []}, history, s)
            history = _last(ws.respond(history, s, STUDY_QA))[0]
    images, text = _sent(llm.requests[-1])
    assert len(images) == 3  # the whole series replaces the pin, in the window on screen
    lines = [line for line in text.splitlines() if "slice " in line]
    assert len(lines) == 3
    for line, (slice_number, sample) in zip(lines, ((1, 1), (7, 2), (12, 3)), strict=True):
        assert f"slice {slice_number}/12, window lung" in line and f"series sample {sample} of 3" in line
    assert len([p for p in history[-2]["content"] if isinstance(p, dict)]) == 3


def test_the_whole_series_is_not_offered_to_a_text_only_model(make_runtime: Any, ct: list[Path]) -> None:
    ws = Workspace(make_runtime([]))
    _, _, s, *viewer = ws.accept(submitted(ws.data_dir, ct), [], None)
    assert viewer[-1]["visible"] is False and ws.series_frames == 0
    ws.choose_whole_series(s, True)
    assert s.whole_series is False


def test_delete_asks_first_and_deletes_only_the_conversation_named(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["one", "two"]))
    chats = []
    for question in ("first question", "second question"):
        _, history, s, *_ = ws.accept({"text": question, "files": []}, [], None)
        _last(ws.respond(history, s, STUDY_QA))
        chats.append(s.chat_id)
    first, second = chats  # the second is on screen
    box, text, status = ws.ask_delete(None, s)
    assert box["visible"] is False and "nothing was deleted" in status
    assert ws.confirm_delete(s)[2] == "Nothing was deleted." and len(ws.chat_choices()) == 2
    box, text, status = ws.ask_delete(first, s)
    assert box["visible"] is True and "first question" in text and "on screen" not in text
    assert ws.cancel_delete(s)[1] == "Nothing was deleted." and ws.confirm_delete(s)[2] == "Nothing was deleted."
    assert len(ws.chat_choices()) == 2
    ws.ask_delete(first, s)
    listing, box, status = ws.confirm_delete(s)
    assert status == "Deleted." and [c[1] for c in listing["choices"]] == [second] and s.chat_id == second
    assert "(the conversation on screen)" in ws.ask_delete(second, s)[1]


def test_a_failed_upload_is_not_titled_study_loaded(make_runtime: Any, tmp_path: Path, ct: list[Path]) -> None:
    ws = Workspace(make_runtime([]))
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all")
    _, history, s, *_ = ws.accept(submitted(ws.data_dir, [junk]), [], None)
    assert history[0]["metadata"]["title"] == FAILED_TITLE and s.study is None
    _, history, s, *_ = ws.accept(submitted(ws.data_dir, ct), [], s)
    assert history[0]["metadata"]["title"] == NOTE_TITLE and s.study is not None


def test_the_custom_boxes_show_the_window_in_use(make_runtime: Any, ct: list[Path]) -> None:
    ws = Workspace(make_runtime([]))
    _, _, s, *_ = ws.accept(submitted(ws.data_dir, ct), [], None)
    assert ws.window_boxes(s) == (40.0, 400.0)  # the file's own
    ws.change_view(s, None, 2, "lung")
    assert ws.window_boxes(s) == (-600.0, 1500.0)
    ws.change_view(s, None, 2, "custom", 300, 1200)
    assert ws.window_boxes(s) == (300.0, 1200.0)


def test_presets_on_a_colour_picture_say_why_they_do_not_apply(make_runtime: Any, tmp_path: Path) -> None:
    picture = tmp_path / "photo.png"
    ramp = np.linspace(0, 255, 400, dtype=np.uint8)
    PILImage.fromarray(np.stack([np.tile(ramp, (400, 1)), np.tile(ramp[:, None], (1, 400)),
                                 np.full((400, 400), 90, np.uint8)], axis=-1)).save(picture)  # fmt: skip
    ws = Workspace(make_runtime([]))
    _, _, s, *_ = ws.accept(submitted(ws.data_dir, [picture]), [], None)
    _, caption = ws.change_view(s, None, 1, "lung")
    assert COLOUR_WINDOW_NOTE in caption and "enlarged" not in caption  # 400 px: shown as it is
    assert ws.window_boxes(s)[0].__class__.__name__ != "float"  # gr.skip(): the boxes are left alone


def test_the_engines_start_reads_as_steps_never_as_log_lines(tmp_path: Path) -> None:
    for raw in (
        "waiting for the LLM engine (35 s): reserved_cpus=[] ... Loading safetensors checkpoint shards",
        "waiting for the LLM engine (5 s): [shutdown] engine core stopped",
    ):
        number, total, what = start_step(raw)
        assert total == 4 and "reserved_cpus" not in what and "shutdown" not in what
    assert start_step("waiting for the LLM engine (35 s): Loading safetensors")[2] == "loading the model's weights"
    assert start_step("building the guideline index")[0] == 4
    # The engine log is appended to: the line of an earlier run's shutdown is not this start's progress.
    engine = EmbeddedEngine(EngineSpec(model="m", served_name="m"), log_dir=tmp_path, cache_dir=tmp_path / "cache")
    engine.log_path.write_text(
        "INFO 11-30 [core.py:1] [shutdown] engine core stopped\n===== radassist: starting engine 2026-11-30 =====\n"
    )
    assert engine._last_log_line() == "starting"
    assert relative_time(time.time() - 7200) == "2 h ago" and relative_time(time.time()) == "just now"


def test_the_whole_series_goes_as_three_window_slices_to_a_volume_profile(tmp_path: Path, ct: list[Path]) -> None:
    """MedGemma 1.5 takes a CT volume as RGB slices of three windows (wide, soft tissue, brain), not the window on
    screen: the web app's "whole series" sends those, each labelled, and "sent" names the windows."""
    with OpenAIStub("Seen.") as llm:
        settings = load_settings(
            env={}, data_dir=tmp_path / "d", llm_url=llm.url, vision_profile="medgemma", vision_series_frames=3
        )  # fmt: skip
        with open_runtime(settings) as runtime:
            ws = Workspace(runtime)
            _, history, s, *_ = ws.accept(submitted(ws.data_dir, ct, QUESTION), [], None)
            ws.change_view(s, None, 5, "lung")
            assert "whole series" in ws.choose_whole_series(s, True)
            context = ws._view_context(s)
            _, history, s, *_ = ws.accept({"text": QUESTION, "files": []}, history, s)
            _last(ws.respond(history, s, STUDY_QA))
    assert [x["frame"] for x in context.sent] == [1, 7, 12]
    assert {x["window"] for x in context.sent} == {"wide+soft tissue+brain"}
    images, text = _sent(llm.requests[-1])
    assert len(images) == 3 and all(image.ndim == 3 and image.shape[-1] == 3 for image in images)
    # The three channels are three different windows of the same HU: they differ somewhere in every slice.
    assert all(not np.array_equal(image[..., 0], image[..., 2]) for image in images)
    assert "lung" not in text and "CT slice 7/12 (2 of 3 sent)" in text
