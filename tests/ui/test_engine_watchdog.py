"""The real embedded engine (vLLM, tiny random model) killed with SIGKILL in the middle of an answer, in the web
app's handlers: the partial answer is kept and marked interrupted, the draft and the conversation are intact, the
watchdog notices, the status line says so, the engine is restarted, and the next question is answered."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from assistant.runtime import open_runtime
from tests.conftest import engine_settings_for
from ui.workspace import REPORT, STUDY_QA, Workspace

pytestmark = pytest.mark.engine

QUESTION = "Tell me about chest radiographs."


def _ask(ws: Workspace, s: Any, text: str, mode: str, during: Any = None) -> list[dict[str, Any]]:
    _, history, s, *_ = ws.accept({"text": text, "files": []}, [], s)
    shown = history
    for shown, *_ in ws.respond(history, s, mode):
        content = shown[-1].get("content") if shown and shown[-1].get("role") == "assistant" else None
        if during is not None and isinstance(content, str) and content and not content.startswith("⏳"):
            during()
            during = None
    return list(shown)


def test_engine_killed_mid_answer_is_restarted_and_nothing_is_lost(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = engine_settings_for(tiny_model_dir, tmp_path / "data", llm_max_tokens=400)
    with open_runtime(settings) as runtime:
        assert runtime.engine is not None and runtime.watchdog is not None
        ws = Workspace(runtime)
        s = ws.restore(None, None, "")[2]
        _ask(ws, s, "Small right pleural effusion.", REPORT)  # a draft, by the rules (no model needed)
        assert s.report_id is not None
        draft = [(v.number, v.report.to_dict()) for v in ws.store.history(s.report_id)]

        engine = runtime.engine
        killed: list[int] = []

        def kill() -> None:
            assert engine.pid is not None
            killed.append(engine.pid)
            os.killpg(engine.pid, signal.SIGKILL)

        history = _ask(ws, s, QUESTION, STUDY_QA, during=kill)
        assert killed, "the answer ended before any text arrived"
        answer = str(history[-1]["content"])
        partial, _, marker = answer.partition("⚠️ Answer interrupted")
        assert partial.strip() and marker, answer  # the text that arrived, then the mark

        # The conversation (question and marked partial answer) and the draft are saved as they were.
        assert s.chat_id is not None
        saved = ws.chats.load(s.chat_id, "")
        assert [e.role for e in saved.entries][-2:] == ["user", "assistant"]
        assert "Answer interrupted" in saved.entries[-1].text
        assert [(v.number, v.report.to_dict()) for v in ws.store.history(s.report_id)] == draft

        # The watchdog notices at its next probe; the status line says so, then that it was restarted.
        deadline = time.monotonic() + 900
        seen_down = False
        while time.monotonic() < deadline:
            health = runtime.engine_health()
            assert health is not None
            seen_down = seen_down or not health.ok
            if health.restarts >= 1 and health.ok:
                break
            time.sleep(1.0)
        assert health.ok and health.restarts == 1 and "killed by SIGKILL" in health.note
        assert "restarted" in ws.status_line() and engine.pid not in killed

        again = _ask(ws, s, QUESTION, STUDY_QA)
        reply = str(again[-1]["content"])
        assert reply.strip() and "⚠️" not in reply
