"""The CLI and the web app answer through the same Runtime.stream: same mode, same images, same request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistant import load_settings, open_runtime
from assistant.cli.main import main as cli_main
from tests.support.openai_stub import OpenAIStub
from tests.ui.synthetic import write_ct_series
from tests.ui.uploads import staged, submitted
from ui.workspace import STUDY_QA, Workspace

QUESTION = "is this nodule suspicious?"  # names a nodule: the calculators would take it without the images


def _last_user_text(request: dict[str, Any]) -> str:
    content = request["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def test_a_study_question_takes_the_same_path_from_the_cli_and_the_web_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (slice_file,) = write_ct_series(tmp_path / "ct", slices=1, size=64)
    with OpenAIStub("It looks benign.") as llm:
        code = cli_main(
            ["--data-dir", str(tmp_path / "cli"), "ask", "--llm-url", llm.url, "--image", str(slice_file), "--json",
             "--similar", "0", QUESTION]
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
        cli_answer = json.loads(capsys.readouterr().out)

        settings = load_settings(env={}, data_dir=tmp_path / "ui", llm_url=llm.url)
        with open_runtime(settings) as runtime:
            ws = Workspace(runtime)
            upload = [str(p) for p in staged(ws.data_dir, [slice_file])]
            _, history, session, *_ = ws.accept({"text": QUESTION, "files": upload}, [], None)
            *_, (history, *_) = ws.respond(history, session, STUDY_QA)

    assert cli_answer["mode"] == "chat" and cli_answer["image_input"] == "none"
    assert history[-1]["content"].strip() == "It looks benign." == cli_answer["answer"]
    cli_request, ui_request = llm.requests  # both reached the model: neither went to the calculators
    assert _last_user_text(cli_request) == _last_user_text(ui_request)
    assert "Image 1: CT" in _last_user_text(ui_request) and _last_user_text(ui_request).endswith(QUESTION)


def test_the_model_gets_the_slice_and_window_on_screen_and_the_cli_can_ask_for_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_ct_series(tmp_path / "ct", slices=6, size=64)
    with OpenAIStub("Noted.") as llm:
        settings = load_settings(env={}, data_dir=tmp_path / "ui", llm_url=llm.url)
        with open_runtime(settings) as runtime:
            ws = Workspace(runtime)
            _, history, session, *_ = ws.accept(submitted(ws.data_dir, files, QUESTION), [], None)
            ws.change_view(session, None, 5, "lung")  # the radiologist scrolls to slice 5, lung window
            *_, (history, *_) = ws.respond(history, session, STUDY_QA)
        code = cli_main(
            ["--data-dir", str(tmp_path / "cli"), "ask", "--llm-url", llm.url, *[f"--image={f}" for f in files],
             "--frame", "5", "--window", "lung", "--json", "--similar", "0", QUESTION]
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
        cli_answer = json.loads(capsys.readouterr().out)
    ui_request, cli_request = llm.requests
    sent_text = _last_user_text(ui_request)
    assert "slice 5/6" in sent_text and "window lung C-600/W1500" in sent_text  # not the middle slice, not default
    assert _last_user_text(cli_request) == sent_text
    assert cli_answer["sent"] == [{"series": 1, "frame": 5, "window": "lung C-600/W1500"}]
