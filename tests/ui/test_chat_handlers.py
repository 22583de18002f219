"""The chat handler, called directly with a scripted model (no server, no browser)."""

from __future__ import annotations

from pathlib import Path

from assistant import LLMUnavailableError
from assistant.llm.client import GenerationOptions
from assistant.modes.chat import ChatService
from tests.support.scripted import ScriptedModel
from ui.app import history_to_turns, respond


def test_answer_streams_cumulatively(tmp_path: Path) -> None:
    chat = ChatService(ScriptedModel(["no acute findings"]), GenerationOptions())
    shown = list(respond(chat, "impression?", []))
    assert len(shown) == 3 and shown[-1].strip() == "no acute findings"
    assert all(shown[i + 1].startswith(shown[i]) for i in range(len(shown) - 1))


def test_history_reaches_the_model_as_turns() -> None:
    model = ScriptedModel(["second"])
    chat = ChatService(model, GenerationOptions())
    history = [
        {"role": "user", "content": "first?"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": [{"type": "text", "text": "parts?"}]},
        {"role": "assistant", "content": "parts"},
    ]
    list(respond(chat, "again?", history))
    assert [m.content for m in model.calls[0][1:]] == ["first?", "first", "parts?", "parts", "again?"]


def test_history_drops_unanswered_and_non_text_turns() -> None:
    turns = history_to_turns(
        [
            {"role": "user", "content": "lost?"},
            {"role": "user", "content": "kept?"},
            {"role": "assistant", "content": "kept"},
            {"role": "user", "content": {"path": "/tmp/x.png"}},
        ]
    )
    assert [(t.question, t.answer) for t in turns] == [("kept?", "kept")]


def test_a_dead_server_is_a_readable_message_not_a_traceback() -> None:
    dead = ScriptedModel([LLMUnavailableError("cannot connect to the LLM server at x")])
    chat = ChatService(dead, GenerationOptions())
    (shown,) = list(respond(chat, "hello", []))
    assert shown.startswith("⚠️ cannot connect to the LLM server")


def test_an_unexpected_error_is_generic_and_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    chat = ChatService(ScriptedModel([ZeroDivisionError("secret internals")]), GenerationOptions())
    (shown,) = list(respond(chat, "hello", []))
    assert "secret internals" not in shown and "Unexpected internal error" in shown
    assert any("unexpected error" in r.message for r in caplog.records)


def test_an_empty_message_is_refused_politely() -> None:
    chat = ChatService(ScriptedModel([]), GenerationOptions())
    (shown,) = list(respond(chat, "   ", []))
    assert "empty" in shown
