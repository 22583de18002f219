from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import LLMUnavailableError, RadassistError
from assistant.llm.client import GenerationOptions, Role
from assistant.modes.answer import Turn
from assistant.modes.chat import ChatService
from assistant.store.audit import AuditLog
from tests.support.scripted import ScriptedModel


def service(tmp_path: Path, replies: list[str | Exception]) -> tuple[ChatService, ScriptedModel, AuditLog]:
    model = ScriptedModel(replies)
    audit = AuditLog(tmp_path / "audit.sqlite3")
    return ChatService(model, GenerationOptions(), audit), model, audit


def test_history_is_sent_in_order_after_the_system_prompt(tmp_path: Path) -> None:
    chat, model, _ = service(tmp_path, ["third answer"])
    answer = chat.answer("and now?", [Turn("first?", "one"), Turn("second?", "two")])
    assert answer.text == "third answer" and answer.model == "scripted"
    sent = model.calls[0]
    assert [m.role for m in sent] == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.USER, Role.ASSISTANT, Role.USER]
    assert [m.content for m in sent[1:]] == ["first?", "one", "second?", "two", "and now?"]
    assert "not for clinical use" in str(sent[0].content)


def test_each_answer_leaves_an_audit_row_without_any_text(tmp_path: Path) -> None:
    chat, _, audit = service(tmp_path, ["Patient John Smith has a nodule"])
    chat.answer("John Smith MRN 12345: nodule?")
    (row,) = audit.recent()
    assert row.mode == "chat" and row.template == "chat_system@1" and row.model == "scripted"
    assert row.outcome == "ok" and row.output_chars > 0
    raw = (tmp_path / "audit.sqlite3").read_bytes()
    assert b"John" not in raw and b"12345" not in raw


def test_a_failed_answer_is_audited_and_the_error_propagates(tmp_path: Path) -> None:
    chat, _, audit = service(tmp_path, [LLMUnavailableError("server gone")])
    with pytest.raises(LLMUnavailableError):
        chat.answer("hello")
    assert audit.recent()[0].outcome == "LLMUnavailableError"


@pytest.mark.parametrize("question", ["", "   ", "x" * 9000])
def test_empty_or_huge_questions_are_refused(tmp_path: Path, question: str) -> None:
    chat, model, _ = service(tmp_path, ["never"])
    with pytest.raises(RadassistError):
        chat.answer(question)
    assert model.calls == []
