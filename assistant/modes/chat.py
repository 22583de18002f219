"""The conversation engine's plain chat mode: history + question → streamed answer, audited."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import retrieval
from assistant.errors import RadassistError
from assistant.llm.client import ChatMessage, ChatModel, GenerationOptions, Role
from assistant.modes.answer import Answer, Turn, validate_question
from assistant.modes.sources import render_sources
from assistant.store.audit import AuditLog, AuditRecord
from assistant.vision.service import Attachment, ImageLike, ImageTurn, VisionChatModel, VisionService
from prompts import load_template, render

logger = logging.getLogger(__name__)


class ChatService:
    """Plain chat with history over any :class:`ChatModel`; writes one audit row per answer."""

    def __init__(
        self,
        model: ChatModel,
        options: GenerationOptions,
        audit: AuditLog | None = None,
        vision: VisionService | None = None,
    ) -> None:
        self.model = model
        self.options = options
        self.audit = audit
        self.vision = vision
        self.template = load_template("chat_system")
        self.with_priors = load_template("chat_priors")

    def messages(self, question: str, history: Sequence[Turn] = ()) -> list[ChatMessage]:
        """The chat-completions messages for ``question`` after ``history`` (text only)."""
        out = [ChatMessage(Role.SYSTEM, render(self.template, {}))]
        for turn in history:
            out.append(ChatMessage(Role.USER, turn.question))
            out.append(ChatMessage(Role.ASSISTANT, turn.answer))
        out.append(ChatMessage(Role.USER, question))
        return out

    def prepare(
        self,
        question: str,
        history: Sequence[Turn] = (),
        images: Sequence[ImageLike] = (),
        priors: Sequence[retrieval.Hit] = (),
    ) -> tuple[list[ChatMessage], Attachment | None]:
        """Messages for ``question``; with ``images``, attached as the model profile allows (embeds/pixels/none);
        with ``priors`` (this patient's prior-report sections), those follow the question as delimited data."""
        question = validate_question(question)
        if priors:
            question = render(self.with_priors, {"question": question, "sources": render_sources(priors)})
        if not images:
            return self.messages(question, history), None
        if self.vision is None:
            raise RadassistError("images were attached but this assistant has no vision service configured")
        turns = [ImageTurn(t.question, t.answer) for t in history]
        return self.vision.messages(question, images, turns, system=render(self.template, {}))

    def stream(self, question: str, history: Sequence[Turn] = (), images: Sequence[ImageLike] = ()) -> Iterator[str]:
        """Yield the answer's pieces as the model produces them."""
        messages, attachment = self.prepare(question, history, images)
        yield from self.stream_messages(messages, attachment)

    def stream_messages(
        self,
        messages: Sequence[ChatMessage],
        attachment: Attachment | None = None,
        *,
        options: GenerationOptions | None = None,
    ) -> Iterator[str]:
        """Stream prepared messages, with one audit row (mode, template, model, latency; never text). ``options``:
        this request's (e.g. with the conversation's ``affinity_key``), the service's own by default."""
        started = time.monotonic()
        chars, outcome = 0, "ok"
        model: ChatModel = self.model
        if attachment is not None:  # images sent by uuid alone go again in full if the server lost them
            model = VisionChatModel(self.model, restore=self.vision.restore if self.vision is not None else None)
        try:
            for piece in model.stream_chat(messages, options or self.options):
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
                        mode="chat" if attachment is None else f"chat+image:{attachment.image_input.value}",
                        template=self.template.ref,
                        model=self.model.model_id,
                        chunk_ids=attachment.image_keys if attachment is not None else (),
                        latency_ms=int(latency * 1000),
                        output_chars=chars,
                        outcome=outcome,
                    )
                )

    def answer(self, question: str, history: Sequence[Turn] = (), images: Sequence[ImageLike] = ()) -> Answer:
        """The whole answer at once; with images, ``extra["image_input"]`` says whether the model saw them."""
        started = time.monotonic()
        messages, attachment = self.prepare(question, history, images)
        text = "".join(self.stream_messages(messages, attachment))
        extra = {"image_input": attachment.image_input.value} if attachment is not None else {}
        return Answer(text=text.strip(), model=self.model.model_id, latency_s=time.monotonic() - started, extra=extra)
