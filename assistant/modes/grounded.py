"""Grounded answers: the model answers from retrieved guideline sections and the current patient's priors.

Retrieved text goes into the prompt as delimited data (``<source id="[n]">…</source>``), never as
instructions; the system prompt says so. Citation markers in the answer that name no source are stripped;
an answer that cites nothing falls back to quoting the best source. No source above the relevance threshold
means no answer ("no source"), without asking the model at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import retrieval
from assistant.errors import RadassistError
from assistant.llm.client import ChatMessage, ChatModel, GenerationOptions, Role, complete
from assistant.modes.answer import Answer, Turn, validate_question
from assistant.modes.sources import (
    GuidelineLibrary,
    PriorReports,
    citation,
    render_sources,
    resolve_citations,
)
from assistant.store.audit import AuditLog, AuditRecord
from prompts import load_template, render

logger = logging.getLogger(__name__)

# Cosine floor for a prior-report section to count as a source. The guideline floor (retrieval's
# DEFAULT_MIN_RELEVANCE) was calibrated on the knowledge base; priors are not calibrated yet, so this is a
# permissive floor that only removes clearly unrelated sections of the same patient.
PRIOR_MIN_RELEVANCE = 0.2


@dataclass(frozen=True)
class GroundedReply:
    """What the model said after post-processing, and how it was obtained."""

    text: str
    cited: tuple[int, ...]
    template: str  # name@version of the template that produced ``text``
    outcome: str  # "ok", "extractive" (model cited nothing) or "no_source"


def no_source_text(corpus: str) -> str:
    """The 'no source' answer for ``corpus`` (e.g. 'guideline knowledge base')."""
    return render(load_template("no_source"), {"corpus": corpus})


class GroundedService:
    """Answers a question from guideline sections and, given a patient key, that patient's prior reports."""

    def __init__(
        self,
        model: ChatModel,
        options: GenerationOptions,
        library: GuidelineLibrary | None,
        priors: PriorReports | None = None,
        audit: AuditLog | None = None,
        *,
        k_guidelines: int = 3,
        k_priors: int = 3,
    ) -> None:
        if k_guidelines < 0 or k_priors < 0:
            raise ValueError(f"k_guidelines and k_priors must not be negative, got {k_guidelines}, {k_priors}")
        self.model = model
        self.options = options
        self.library = library
        self.priors = priors
        self.audit = audit
        self.k_guidelines = k_guidelines
        self.k_priors = k_priors
        self.system = load_template("grounded_system")
        self.user = load_template("grounded_user")

    def sources(self, question: str, patient_key: str | None = None) -> list[retrieval.Hit]:
        """Guideline hits, then this patient's prior-report hits (none without a patient key)."""
        hits: list[retrieval.Hit] = []
        if self.library is not None and self.k_guidelines:
            hits += self.library.search(question, self.k_guidelines)
        if patient_key is not None:
            if self.priors is None:
                raise RadassistError(
                    "no prior-report index: build it with `radassist index build --corpus reports --input FILE`"
                )
            hits += self.priors.search(question, patient_key, self.k_priors, min_relevance=PRIOR_MIN_RELEVANCE)
        return hits

    def messages(self, question: str, hits: Sequence[retrieval.Hit], history: Sequence[Turn] = ()) -> list[ChatMessage]:
        """System prompt (sources are data), earlier turns, then the delimited sources and the question."""
        out = [ChatMessage(Role.SYSTEM, render(self.system, {}))]
        for turn in history:
            out.append(ChatMessage(Role.USER, turn.question))
            out.append(ChatMessage(Role.ASSISTANT, turn.answer))
        user = render(self.user, {"sources": render_sources(hits), "question": question})
        out.append(ChatMessage(Role.USER, user))
        return out

    def reply(
        self, question: str, hits: Sequence[retrieval.Hit], history: Sequence[Turn] = (), corpus: str = "sources"
    ) -> GroundedReply:
        """The model's answer over ``hits``, with invalid citation markers stripped (no model call without hits)."""
        if not hits:
            return GroundedReply(no_source_text(corpus), (), load_template("no_source").ref, "no_source")
        raw = complete(self.model, self.messages(question, hits, history), self.options)
        text, cited = resolve_citations(raw, len(hits))
        if text and cited:
            return GroundedReply(text, cited, self.user.ref, "ok")
        # The model cited nothing it was given (or said nothing): quote the best source instead of trusting it.
        fallback = load_template("extractive_answer")
        best = hits[0]
        quoted = render(fallback, {"title": best.title, "text": best.text.strip()})
        return GroundedReply(quoted, (1,), fallback.ref, "extractive")

    def answer(self, question: str, patient_key: str | None = None, history: Sequence[Turn] = ()) -> Answer:
        """A cited answer; ``citations[n-1]`` is the source the marker ``[n]`` names."""
        question = validate_question(question)
        started = time.monotonic()
        outcome, template, chars = "ok", self.user.ref, 0
        chunk_ids: tuple[str, ...] = ()
        try:
            hits = self.sources(question, patient_key)
            chunk_ids = tuple(h.id for h in hits)
            corpus = "guideline knowledge base" + (" or this patient's prior reports" if patient_key else "")
            reply = self.reply(question, hits, history, corpus)
            outcome, template, chars = reply.outcome, reply.template, len(reply.text)
            latency = time.monotonic() - started
            return Answer(
                text=reply.text,
                model=self.model.model_id,
                citations=tuple(citation(h) for h in hits),
                latency_s=latency,
                extra={"mode": "grounded", "cited": list(reply.cited)},
            )
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            latency = time.monotonic() - started
            logger.info("grounded answer: %d sources, %d chars in %.2f s (%s)", len(chunk_ids), chars, latency, outcome)
            if self.audit is not None:
                self.audit.record(
                    AuditRecord(
                        mode="grounded",
                        template=template,
                        model=self.model.model_id,
                        chunk_ids=chunk_ids,
                        latency_ms=int(latency * 1000),
                        output_chars=chars,
                        outcome=outcome,
                    )
                )
