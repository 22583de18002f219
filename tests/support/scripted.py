"""A scripted chat model implementing the same interface as the real client (for orchestration tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from assistant.llm.client import ChatMessage, GenerationOptions


class ScriptedModel:
    """Answers with the next scripted reply, piece by piece; records what it was sent."""

    def __init__(self, replies: Sequence[str | Exception], model_id: str = "scripted") -> None:
        self.replies = list(replies)
        self.calls: list[list[ChatMessage]] = []
        self.options: list[GenerationOptions | None] = []
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        self.options.append(options)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        for word in reply.split(" "):
            yield word + " "
