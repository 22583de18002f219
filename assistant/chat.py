"""The conversation engine's plain chat mode: history + question → streamed answer, audited."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.audit import AuditLog, AuditRecord
from assistant.errors import RadassistError
from assistant.llm import ChatMessage, ChatModel, GenerationOptions, Role
from prompts import load_template, render

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 8000


@dataclass(frozen=True)
class Turn:
    """One exchange of the conversation so far."""

    question: str
    answer: str


@dataclass(frozen=True)
class Answer:
    """A finished answer, as ``radassist ask --json`` prints it."""

    text: str
    model: str
    citations: tuple[dict[str, Any], ...] = ()
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.text, "citations": list(self.citations), "model": self.model, **self.extra}


def validate_question(question: str) -> str:
    """The question stripped; a clear error when it is empty or too long."""
    text = question.strip()
    if not text:
        raise RadassistError("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise RadassistError(f"the question is too long ({len(text)} characters; at most {MAX_QUESTION_CHARS})")
    return text


class ChatService:
    """Plain chat with history over any :class:`ChatModel`; writes one audit row per answer."""

    def __init__(self, model: ChatModel, options: GenerationOptions, audit: AuditLog | None = None) -> None:
        self.model = model
        self.options = options
        self.audit = audit
        self.template = load_template("chat_system")

    def messages(self, question: str, history: Sequence[Turn] = ()) -> list[ChatMessage]:
        """The chat-completions messages for ``question`` after ``history``."""
        out = [ChatMessage(Role.SYSTEM, render(self.template, {}))]
        for turn in history:
            out.append(ChatMessage(Role.USER, turn.question))
            out.append(ChatMessage(Role.ASSISTANT, turn.answer))
        out.append(ChatMessage(Role.USER, question))
        return out

    def stream(self, question: str, history: Sequence[Turn] = ()) -> Iterator[str]:
        """Yield the answer's pieces as the model produces them."""
        question = validate_question(question)
        started = time.monotonic()
        chars, outcome = 0, "ok"
        try:
            for piece in self.model.stream_chat(self.messages(question, history), self.options):
                chars += len(piece)
                yield piece
        except BaseException as exc:
            outcome = "stopped" if isinstance(exc, GeneratorExit) else type(exc).__name__
            raise
        finally:
            latency = time.monotonic() - started
            logger.info("chat answer: %d chars in %.2f s (%s)", chars, latency, outcome)
            if self.audit is not None:
                self.audit.record(
                    AuditRecord(
                        mode="chat",
                        template=self.template.ref,
                        model=self.model.model_id,
                        chunk_ids=(),
                        latency_ms=int(latency * 1000),
                        output_chars=chars,
                        outcome=outcome,
                    )
                )

    def answer(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """The whole answer at once."""
        started = time.monotonic()
        text = "".join(self.stream(question, history))
        return Answer(text=text.strip(), model=self.model.model_id, latency_s=time.monotonic() - started)
