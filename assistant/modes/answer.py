"""What every answering mode returns: the conversation's turns, a finished answer, the question's checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.errors import RadassistError

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
