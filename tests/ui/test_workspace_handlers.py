"""Every workspace event, called as Gradio calls it: handlers with a scripted model, real ingest, real store."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from assistant import LLMUnavailableError, calculate
from tests.ui.synthetic import PATIENT_ID, PATIENT_NAME, write_ct_series
from tests.ui.uploads import staged
from ui import calculators
from ui.messages import history_to_turns
from ui.session import Session, close_session, gradio_cache_dir, sweep
from ui.viewer import series_labels
from ui.workspace import GUIDELINE, REPORT, STUDY_QA, Workspace

PHI = (PATIENT_NAME, PATIENT_ID, "ACC-PHI-77", "19600101", "SYNTHETIC")
SEVEN_MM = "Single solid 7 mm nodule in a high-risk smoker - follow-up?"


@pytest.fixture()
def series(tmp_path: Path) -> list[Path]:
    return write_ct_series(tmp_path / "ct", slices=6, size=64)


def workspace(make_runtime: Any, replies: list[str | Exception] | None = None) -> Workspace:
    return Workspace(make_runtime(replies))


def upload(ws: Workspace, files: list[Path], text: str = "") -> tuple[list[dict[str, Any]], Session, tuple[Any, ...]]:
    uploaded = [str(p) for p in staged(ws.data_dir, files)]  # where the browser's upload puts them
    box, history, session, *viewer = ws.accept({"text": text, "files": uploaded}, [], None)
    assert box == {"text": "", "files": []}
    return history, session, tuple(viewer)


def last(iterator: Any) -> Any:
    out = None
    for item in iterator:
        out = item
    return out


# ---------------------------------------------------------------------------------------------- upload + viewer


def test_upload_of_a_series_loads_the_study_and_shows_the_first_slice(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    history, session, (image, series_choice, slider, caption, banner, metadata, *_) = upload(ws, series, "findings?")
    assert history[0]["metadata"]["title"] and "Loaded 6 image(s) in 1 series: CT CHEST" in history[0]["content"]
    assert history[1] == {"role": "user", "content": "findings?"}
    # A 64-px frame is shown enlarged (×6, to 384 px) and the caption says so; the model gets it at its own size.
    assert PILImage.open(image).size == (384, 384) and Path(image).parent == session.folder
    assert "shown enlarged ×6" in caption
    assert slider["maximum"] == 6 and slider["visible"] is True and series_choice["visible"] is False
    assert "image 1/6" in caption and "W 400 / L 40" in caption
    assert banner["visible"] is False
    assert metadata["modalities"] == ["CT"] and metadata["image_count"] == 6
    assert not any(p in json.dumps(metadata) for p in PHI)


def test_uploads_are_deleted_from_gradios_cache_once_ingested(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    cache = gradio_cache_dir(ws.data_dir) / "abc123"
    cache.mkdir(parents=True)
    copies = []
    for path in series:
        copy = cache / path.name
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    _, session, _ = upload(ws, copies)
    assert session.study is not None and not any(c.exists() for c in copies) and not cache.exists()


def test_a_bad_file_is_a_readable_note_and_the_rest_is_kept(
    make_runtime: Any, series: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    ws = workspace(make_runtime)
    history, session, _ = upload(ws, [*series, bad])
    assert "Loaded 6 image(s)" in history[0]["content"] and "`notes.txt`:" in history[0]["content"]
    assert "Traceback" not in history[0]["content"]
    only_bad, session2, viewer = upload(ws, [bad])
    assert "No image could be read" in only_bad[0]["content"] and session2.study is None and viewer[0] is None


def test_window_presets_custom_windows_and_the_slice_slider_render_again(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    _, s, _ = upload(ws, series)
    default, _ = ws.change_view(s, None, 3, "default")
    default_pixels = PILImage.open(default).tobytes()
    lung, caption = ws.change_view(s, None, 3, "lung")
    assert "image 3/6" in caption and "W 1500 / L -600 (lung)" in caption
    assert PILImage.open(lung).tobytes() != default_pixels
    custom, caption = ws.change_view(s, None, 3, "custom", 400, 1800)
    assert "W 1800 / L 400" in caption and Path(custom).exists() and not Path(lung).exists()  # one view file kept
    bad, caption = ws.change_view(s, None, 3, "custom", 40, 0)
    assert caption.startswith("⚠️") and "width" in caption
    missing, caption = ws.change_view(s, None, 3, "custom", None, None)
    assert caption.startswith("⚠️ enter a window centre and width")
    image, caption, slider = ws.change_series(s, series_labels(s)[0], "bone")
    assert "image 3/6" in caption and "(bone)" in caption and slider["maximum"] == 6


def test_the_viewer_without_a_study_says_what_to_do(make_runtime: Any) -> None:
    ws = workspace(make_runtime)
    image, caption = ws.change_view(None, None, 1, "lung")
    assert image is None and caption == "No study loaded."


def test_a_picture_upload_shows_the_burned_in_text_warning(make_runtime: Any, tmp_path: Path) -> None:
    picture = tmp_path / "xray.png"
    PILImage.new("L", (32, 32), 128).save(picture)
    ws = workspace(make_runtime)
    _, _, (_, _, slider, _, banner, *_) = upload(ws, [picture])
    assert banner["visible"] is True and "burned-in" in banner["value"] and slider["visible"] is False


# ---------------------------------------------------------------------------------------------- answering


def test_study_question_streams_and_the_model_gets_the_deidentified_description(
    make_runtime: Any, series: list[Path]
) -> None:
    ws = workspace(make_runtime, ["a synthetic chest CT"])
    history, s, _ = upload(ws, series, "what is this?")
    shown = [h[0][-1]["content"] for h in ws.respond(history, s, STUDY_QA)]
    assert len(shown) >= 3 and all(shown[i + 1].startswith(shown[i]) for i in range(len(shown) - 1))
    assert shown[-1].strip() == "a synthetic chest CT"
    sent = ws.runtime.client.calls[0][-1].content  # type: ignore[attr-defined]
    assert "Image 1: CT, CHEST" in sent and "not analysed" in sent and sent.endswith("what is this?")
    assert not any(p in sent for p in PHI)


def test_guideline_questions_get_an_exact_category_and_clickable_sources(make_runtime: Any) -> None:
    ws = workspace(make_runtime)
    history = [{"role": "user", "content": SEVEN_MM}]
    shown = [(out[0][-1]["content"], out) for out in ws.respond(history, None, GUIDELINE)]
    assert shown[0][0].startswith("⏳")  # a placeholder while the index is searched
    history, sources, _, _ = shown[-1][1]
    assert "solid single 6-8 mm high risk" in history[-1]["content"] and "[1]" in history[-1]["content"]
    assert sources["visible"] is True and sources["choices"][0].startswith("[1] Fleischner 2017")


def test_clicking_a_source_shows_its_whole_section(make_runtime: Any) -> None:
    ws = workspace(make_runtime)
    s = ws.session(None)
    *_, (_, sources, _, _) = ws.respond([{"role": "user", "content": SEVEN_MM}], s, GUIDELINE)
    text = ws.show_source(sources["choices"][0], s)
    assert text.startswith("### Fleischner 2017") and "| 6-8 mm" in text and "MacMahon" in text
    assert ws.show_source("[9] gone", s).startswith("⚠️") and ws.show_source(None, s) == ""


def test_study_qa_routes_guideline_shaped_questions_to_the_calculators(make_runtime: Any) -> None:
    ws = workspace(make_runtime)
    *_, (history, sources, _, _) = ws.respond([{"role": "user", "content": SEVEN_MM}], None, STUDY_QA)
    assert "solid single 6-8 mm high risk" in history[-1]["content"] and sources["visible"]


def test_a_dead_model_is_a_readable_message_and_unexpected_errors_are_generic(make_runtime: Any, caplog: Any) -> None:
    ws = workspace(make_runtime, [LLMUnavailableError("cannot connect to the LLM server"), ZeroDivisionError("x")])
    *_, (history, *_) = ws.respond([{"role": "user", "content": "hello"}], None, STUDY_QA)
    assert history[-1]["content"] == "⚠️ cannot connect to the LLM server"
    *_, (history, *_) = ws.respond([{"role": "user", "content": "hello"}], None, STUDY_QA)
    assert "Unexpected internal error" in history[-1]["content"] and "ZeroDivision" not in history[-1]["content"]
    assert any("unexpected error" in r.message for r in caplog.records)


def test_nothing_to_answer_after_a_files_only_upload(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    history, s, _ = upload(ws, series)
    (out,) = list(ws.respond(history, s, STUDY_QA))
    assert out[0] == history and ws.runtime.client.calls == []  # type: ignore[attr-defined]


def test_history_skips_notes_and_pairs_questions_with_answers() -> None:
    turns = history_to_turns(
        [
            {"role": "assistant", "content": "Loaded", "metadata": {"title": "📎 Study"}},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
            {"role": "user", "content": {"path": "/tmp/x.png"}},
        ]
    )
    assert [(t.question, t.answer) for t in turns] == [("q1", "a1")]


# ---------------------------------------------------------------------------------------------- chat edits


def test_regenerate_answers_the_last_question_again(make_runtime: Any) -> None:
    ws = workspace(make_runtime, ["first", "second"])
    history = last(ws.respond([{"role": "user", "content": "q"}], None, STUDY_QA))[0]
    trimmed, same = ws.retry(history)
    assert trimmed == same == [{"role": "user", "content": "q"}]
    again = last(ws.respond(trimmed, None, STUDY_QA))[0]
    assert again[-1]["content"].strip() == "second" and len(again) == 2


def test_undo_puts_the_question_back_in_the_box(make_runtime: Any) -> None:
    ws = workspace(make_runtime, ["answer"])
    note = {"role": "assistant", "content": "Loaded", "metadata": {"title": "📎 Study"}}
    history = last(ws.respond([note, {"role": "user", "content": "q"}], None, STUDY_QA))[0]
    kept, box = ws.undo(history)
    assert kept == [note] and box == {"text": "q", "files": []}


def test_edit_and_resend_drops_what_followed_the_edited_question(make_runtime: Any) -> None:
    ws = workspace(make_runtime, ["a2"])
    history = [
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "old"},
    ]  # fmt: skip
    edited = ws.edit(history, 2, "q2 edited")
    assert edited[-1] == {"role": "user", "content": "q2 edited"} and len(edited) == 3
    answered = last(ws.respond(edited, None, STUDY_QA))[0]
    sent = [m.content for m in ws.runtime.client.calls[0][1:]]  # type: ignore[attr-defined]
    assert sent == ["q1", "a1", "q2 edited"] and answered[-1]["content"].strip() == "a2"
    assert ws.edit(history, [0, 0], [{"type": "text", "text": "again"}]) == [{"role": "user", "content": "again"}]


def test_new_chat_forgets_the_study_and_deletes_the_sessions_files(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    history, s, (image, *_) = upload(ws, series, "q")
    chat, box, same, sources, source_text, chat_file, shown, *_ = ws.new_chat(s)
    assert (
        chat == []
        and "value" not in box  # what is typed stays: the reply may land while the next message is being typed
        and box["stop_btn"] is False
        and same is s
        and s.study is None
        and shown is None
    )
    assert sources["visible"] is False and not Path(image).exists()


def test_export_of_the_conversation_is_markdown_without_identifiers(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime, ["it is a CT"])
    history, s, _ = upload(ws, series, "what is it?")
    history = last(ws.respond(history, s, STUDY_QA))[0]
    path, status = ws.export_chat(history, s)
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("# radassist conversation") and "not for clinical use" in text
    assert "## Question\n\nwhat is it?" in text and "it is a CT" in text and "Study (de-identified): CT" in text
    assert not any(p in text for p in PHI) and status == "Exported 1 question(s)."
    assert ws.export_chat([], s) == (None, "Nothing to export yet.")


# ---------------------------------------------------------------------------------------------- calculators


def test_every_calculator_has_a_form_and_runs_the_cli_function(make_runtime: Any) -> None:
    ws = workspace(make_runtime)
    assert calculators.calculator_names() == ["fleischner", "lungrads", "tirads", "bosniak", "birads", "lirads",
                                              "adrenal", "renal"]  # fmt: skip
    samples = {
        "fleischner": {"composition": "solid", "size-mm": 7, "risk": "high"},
        "lungrads": {"nodule-type": "solid", "mean-diameter-mm": 7},
        "tirads": {
            "composition": "solid",
            "echogenicity": "hypoechoic",
            "shape": "wider_than_tall",
            "margin": "smooth",
            "max-diameter-cm": 1.6,
        },  # fmt: skip
        "bosniak": {"modality": "ct", "attenuation-hu": 10},
        "birads": {"category": "4A"},
        "lirads": {"size-mm": 25, "aphe": "nonrim", "washout": True},
        "adrenal": {"size-cm": 2, "unenhanced-hu": 5},
        "renal": {"modality": "ct", "hu-increase": 25},
    }
    for name, given in samples.items():
        fields = calculators.fields(name)
        values = [given.get(f.name, False if f.type is bool else None) for f in fields]
        shown = ws.calculate(name, *values)
        assert shown.startswith("### ") and "Section: `" in shown, (name, shown)
    direct = calculate("fleischner", composition="solid", size_mm=7.0, risk="high")
    form = calculators.run("fleischner", [{"composition": "solid", "size-mm": 7, "risk": "high"}.get(f.name)
                                         for f in calculators.fields("fleischner")])  # fmt: skip
    assert form.to_dict() == direct.to_dict()


def test_calculator_input_errors_are_readable(make_runtime: Any) -> None:
    ws = workspace(make_runtime)
    empty = [False if f.type is bool else None for f in calculators.fields("fleischner")]
    assert ws.calculate("fleischner", *empty) == "⚠️ composition is required"
    values = [None] * len(calculators.fields("lirads"))
    values[0], values[1] = 20, "nonrim"
    values[2:] = [True, False, False]  # washout: LR-5, a confirmed cell
    assert ws.calculate("lirads", *values).startswith("### ")
    values[2:] = [False, False, False]  # nonrim APHE alone at 20 mm: LR-4 comes from recall, so it is refused
    assert ws.calculate("lirads", *values).startswith("⚠️") and "not confirmed" in ws.calculate("lirads", *values)
    bosniak = [False if f.type is bool else None for f in calculators.fields("bosniak")]
    bosniak[0], bosniak[2] = "ct", 1.5  # septa count must be whole
    assert ws.calculate("bosniak", *bosniak).startswith("⚠️ septa-count must be a whole number")


# ---------------------------------------------------------------------------------------------- report mode


def test_report_mode_dictation_updates_the_live_draft(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    history, s, _ = upload(ws, series)
    s2, sources_panel, calc_panel, report_panel, html, versions, drafts = ws.switch_mode(REPORT, s)
    assert report_panel["visible"] and not sources_panel["visible"] and not calc_panel["visible"]
    assert "No draft yet" in html
    history.append({"role": "user", "content": "There is a 7 mm solid nodule in the right upper lobe."})
    (out,) = list(ws.respond(history, s, REPORT))
    chat, _, html, versions = out
    assert chat[-1]["content"].startswith("Version 2: dictated") and "```diff" in chat[-1]["content"]
    assert "7 mm solid nodule in the right upper lobe" in html and "ra-unconfirmed" in html
    assert "CT CHEST" in html and versions.splitlines()[0].startswith("- v2 · dictate")
    assert not any(p in html for p in PHI)


def test_report_undo_new_draft_and_exports(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    assert ws.export_report(None, "md")[1].startswith("⚠️ There is no draft")
    _, s, _ = upload(ws, series)
    s, html, versions, status = ws.new_report(s, "cxr")
    assert status.startswith("New ") and s.report_id and "v1 · new" in versions
    list(ws.respond([{"role": "user", "content": "Small left pleural effusion."}], s, REPORT))
    html, versions, status = ws.report_action(s, "undo")
    assert "v3 · undo" in versions.splitlines()[0]
    for fmt, needle in (("md", "# "), ("json", '"report_id"')):
        path, status = ws.export_report(s, fmt)
        assert needle in Path(path).read_text(encoding="utf-8") and status.startswith("Exported version 3")
    path, _ = ws.export_report(s, "sr")
    from pydicom import dcmread

    assert dcmread(path).Modality == "SR"
    _, _, _, status = ws.new_report(s, "no_such_template")
    assert status.startswith("⚠️")


def test_mode_switch_shows_each_modes_panel(make_runtime: Any) -> None:
    ws = workspace(make_runtime)
    _, sources, calc, report, _, _, _ = ws.switch_mode(GUIDELINE, None)
    assert sources["visible"] and calc["visible"] and not report["visible"]
    _, sources, calc, report, _, _, _ = ws.switch_mode(STUDY_QA, None)
    assert sources["visible"] and not calc["visible"] and not report["visible"]


# ---------------------------------------------------------------------------------------------- honesty, safety


def test_status_line_names_the_model_and_says_images_are_not_analysed(make_runtime: Any) -> None:
    line = workspace(make_runtime).status_line()
    assert "scripted" in line and "text-only" in line and "not analysed" in line


def test_api_endpoint_streams_one_answer(make_runtime: Any) -> None:
    ws = workspace(make_runtime, ["no effusion", LLMUnavailableError("the LLM server is down")])
    assert list(ws.answer_api("effusion?"))[-1].strip() == "no effusion"
    assert list(ws.answer_api("effusion?"))[-1] == "⚠️ the LLM server is down"


def test_closing_a_session_deletes_its_files_and_old_files_expire(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    _, s, (image, *_) = upload(ws, series)
    folder = s.folder
    close_session(s)
    assert not folder.exists() and s.study is None
    close_session(None)  # a tab that never did anything
    old = ws.data_dir / "tmp" / "gradio" / "x" / "upload.dcm"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x")
    fresh = old.with_name("fresh.dcm")
    fresh.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert sweep(ws.data_dir / "tmp" / "gradio", 3600) == 1 and not old.exists() and fresh.exists()


def test_no_identifier_reaches_the_log(make_runtime: Any, series: list[Path], caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    ws = workspace(make_runtime, ["ok"])
    history, s, _ = upload(ws, series, "question")
    last(ws.respond(history, s, STUDY_QA))
    ws.change_view(s, None, 2, "lung")
    ws.export_chat(history, s)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged and not any(p in logged for p in PHI) and "IM0001" not in logged


def test_a_saved_draft_reopens_after_a_restart(make_runtime: Any, series: list[Path]) -> None:
    ws = workspace(make_runtime)
    _, s, _ = upload(ws, series)
    s, _, _, _ = ws.new_report(s, "ct_chest")
    list(ws.respond([{"role": "user", "content": "Small right pleural effusion."}], s, REPORT))
    report_id = s.report_id
    ws.close()
    restarted = Workspace(ws.runtime)  # a new app process on the same data dir
    choices = restarted.draft_choices()
    assert choices[0].startswith(f"{report_id} · ct_chest") and choices[0].endswith("v2")
    fresh, html, versions, status = restarted.open_report(None, choices[0])
    assert fresh.report_id == report_id and "pleural effusion" in html and status == "Opened the saved draft."
    assert restarted.open_report(fresh, None)[3].startswith("⚠️")
    *_, drafts = restarted.switch_mode(REPORT, fresh)
    # The list names the draft by its title and first finding, template and age; the id is only the value.
    assert drafts["choices"] == restarted.draft_options() == [
        ("CT CHEST: Small right pleural effusion. · ct_chest@1 · just now · version 2", report_id)
    ]
    assert restarted.open_report(None, report_id)[0].report_id == report_id


def test_with_the_runtimes_vision_service_the_study_goes_through_it(make_runtime: Any, series: list[Path]) -> None:
    from assistant import ChatService, VisionService
    from assistant.llm.client import GenerationOptions

    runtime = make_runtime(["seen"])
    runtime.chat = ChatService(runtime.client, GenerationOptions(), runtime.audit, vision=VisionService.text_only())
    ws = Workspace(runtime)
    history, s, _ = upload(ws, series, "describe")
    assert last(ws.respond(history, s, STUDY_QA))[0][-1]["content"].strip() == "seen"
    sent = runtime.client.calls[0][-1].content
    assert "Image 1: CT, CHEST" in str(sent) and str(sent).endswith("describe") and "text-only" in ws.status_line()
