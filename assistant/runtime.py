"""Wiring at the entry points: settings → LLM (remote URL or embedded engine) → services."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import retrieval
from assistant.errors import ConfigurationError, RadassistError
from assistant.llm.client import ChatModel, GenerationOptions, OpenAIChatClient
from assistant.llm.engine import EmbeddedEngine, EngineSpec
from assistant.llm.model_files import resolve_chat_model
from assistant.llm.urls import redact_url
from assistant.modes.answer import Answer, Turn
from assistant.modes.chat import ChatService
from assistant.modes.grounded import GroundedService
from assistant.modes.guideline import GuidelineService
from assistant.modes.mode import Mode, choose_mode
from assistant.modes.sources import GuidelineLibrary, PriorReports
from assistant.settings import Settings
from assistant.store.audit import AuditLog
from assistant.vision.profiles import ImageInput, profile_from_settings
from assistant.vision.service import ImageLike, SimilarCase, VisionService
from assistant.vision.similar_cases import SimilarCaseLibrary

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class Runtime:
    """Everything a front end needs, alive between ``open_runtime``'s enter and exit."""

    settings: Settings
    llm_url: str  # for display: the server's address with any user:password redacted (redact_url)
    model_id: str
    engine: EmbeddedEngine | None
    client: OpenAIChatClient
    audit: AuditLog
    chat: ChatService
    library: GuidelineLibrary
    guidelines: GuidelineService
    grounded: GroundedService
    # The teaching corpus's similar-case index (opened on first use): built from the settings.
    similar: SimilarCaseLibrary = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.similar = SimilarCaseLibrary(self.settings, vision=self.chat.vision)

    @property
    def engine_log(self) -> str | None:
        return str(self.engine.log_path) if self.engine else None

    @property
    def image_input(self) -> str:
        """How images reach the model: "embeds", "pixels" or "none" (text-only: not analysed)."""
        return self.chat.vision.image_input.value if self.chat.vision else ImageInput.NONE.value

    def prepare_guidelines(self, progress: Progress | None = None) -> None:
        """Load the guideline index now, building it (with progress) if this is its first use."""
        self.library.index(progress)

    def prepare_similar_cases(self, progress: Progress | None = None) -> bool:
        """Open the similar-case index now, building it (with progress) when the teaching corpus needs it.

        False when no teaching corpus or index is configured. Raises ``ConfigurationError`` (no image encoder)
        or ``RetrievalError`` (a damaged index, or one built with another encoder).
        """
        return self.similar.index(progress) is not None

    def similar_cases(
        self, images: Sequence[ImageLike], k: int = 3, progress: Progress | None = None
    ) -> list[SimilarCase]:
        """At most ``k`` teaching cases whose images look like any of ``images``, best first, with their reports.

        For showing beside an answer: they are never put into the model's prompt. [] when no teaching corpus or
        index is configured (or ``k`` is 0); errors as :meth:`prepare_similar_cases`. Safe from several threads:
        the index is opened once.
        """
        return self.similar.search(images, k, progress)

    def stream(
        self,
        question: str,
        *,
        mode: Mode | str = Mode.AUTO,
        history: Sequence[Turn] = (),
        context: AskContext | None = None,
        progress: Progress | None = None,
    ) -> Iterator[AnswerEvent]:
        """The one answering path of every front end: pick the mode, dispatch, stream, finish.

        Yields an ``AnswerEvent`` of kind ``mode`` first (the mode chosen), then ``note``s (e.g. "the pixels were
        not analysed"), ``delta``s of text while a chat answer streams, and last one ``answer`` with the whole
        :class:`Answer` (every mode). ``auto``: study Q&A when images are attached, grounded with a patient key,
        guideline mode for guideline-shaped questions, else chat. ``progress`` hears about one-off preparation
        (the guideline index's first build).
        """
        with credentials_hidden():
            yield from self._stream(question, mode, history, context or AskContext(), progress)

    def _stream(
        self, question: str, mode: Mode | str, history: Sequence[Turn], ctx: AskContext, progress: Progress | None
    ) -> Iterator[AnswerEvent]:
        chosen = choose_mode(question, mode, patient_key=ctx.patient_key, has_images=bool(ctx.images))
        yield AnswerEvent("mode", mode=chosen)
        if chosen is Mode.CHAT:
            started = time.monotonic()
            messages, attachment = self.chat.prepare(question, history, ctx.images)
            if attachment is not None and attachment.note:
                yield AnswerEvent("note", mode=chosen, text=attachment.note)
            pieces: list[str] = []
            for piece in self.chat.stream_messages(messages, attachment):
                pieces.append(piece)
                yield AnswerEvent("delta", mode=chosen, text=piece)
            extra: dict[str, Any] = {"mode": chosen.value}
            if attachment is not None:
                extra["image_input"] = attachment.image_input.value
                if ctx.sent:
                    extra["sent"] = [dict(item) for item in ctx.sent]
            answer = Answer("".join(pieces).strip(), self.chat.model.model_id, (), time.monotonic() - started, extra)
            yield AnswerEvent("answer", mode=chosen, answer=answer)
            return
        if not self.library.loaded:
            self.prepare_guidelines(progress)
        if chosen is Mode.GUIDELINE:
            answer = self.guidelines.answer(question, history)
        else:
            answer = self.grounded.answer(question, ctx.patient_key, history)
        extra = {"mode": chosen.value, **answer.extra}
        if ctx.images:  # these modes compute from the text: the images were not sent to the model
            extra["image_input"] = ImageInput.NONE.value
        yield AnswerEvent("answer", mode=chosen, answer=dataclasses.replace(answer, extra=extra))

    def answer(
        self,
        question: str,
        mode: Mode | str = Mode.AUTO,
        history: Sequence[Turn] = (),
        patient_key: str | None = None,
        images: Sequence[ImageLike] = (),
        progress: Progress | None = None,
    ) -> Answer:
        """The whole answer at once (built on :meth:`stream`); ``extra["image_input"]`` says whether the model saw
        the images."""
        final: Answer | None = None
        context = AskContext(images=tuple(images), patient_key=patient_key)
        for event in self.stream(question, mode=mode, history=history, context=context, progress=progress):
            if event.answer is not None:
                final = event.answer
        if final is None:  # unreachable: stream always ends with an answer or raises
            raise RuntimeError("the answer stream ended without an answer")
        return final


@dataclass(frozen=True)
class AskContext:
    """What the caller has beside the question: the images on screen (in order) and the patient's key."""

    images: Sequence[ImageLike] = ()
    patient_key: str | None = None
    # What each image is, for the answer's "sent" field: {"series", "frame", "window"} (vision.service.image_in_view).
    sent: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class AnswerEvent:
    """One step of an answer stream: ``mode`` (chosen), ``note``, ``delta`` (text) or ``answer`` (finished)."""

    kind: str
    mode: Mode | None = None
    text: str = ""
    answer: Answer | None = None


@contextmanager
def credentials_hidden() -> Iterator[None]:
    """Errors raised inside leave without the LLM URL's user:password (the client's messages name its URL)."""
    try:
        yield
    except RadassistError as exc:
        text = redact_url(str(exc))
        if text == str(exc):
            raise
        try:
            clean = type(exc)(text)
        except Exception:  # a subclass with another constructor: the base error carries the message as well
            clean = RadassistError(text)
        # Not "from exc": the original, password included, would be printed with every logged traceback.
        raise clean from None


def index_dir(settings: Settings, corpus: str) -> Path:
    """Where the index of ``corpus`` (guidelines, reports, teaching) lives."""
    return Path(settings.data_dir) / "index" / corpus


def create_services(
    settings: Settings, model: ChatModel, options: GenerationOptions, audit: AuditLog | None
) -> tuple[GuidelineLibrary, GuidelineService, GroundedService]:
    """The guideline library (index opened on first use) and the guideline and grounded services over ``model``."""
    embedder = retrieval.create_embedder(settings.embedding_model)
    library = GuidelineLibrary(embedder, index_dir(settings, "guidelines"))
    priors = PriorReports(index_dir(settings, "reports"), embedder)
    return (
        library,
        GuidelineService(model, options, library, audit, phrase=settings.phrases_guidelines),
        GroundedService(model, options, library, priors, audit),
    )


def create_engine(settings: Settings, progress: Progress | None = None) -> EmbeddedEngine:
    """An (unstarted) embedded engine for the configured model, preparing the default model if needed."""
    if settings.engine_host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("the embedded engine will listen on %s, not on loopback", settings.engine_host)
    if progress:
        progress("preparing the chat model")
    model, served = resolve_chat_model(settings.llm_model, settings.models_dir)
    spec = EngineSpec(
        model=model,
        served_name=settings.llm_served_name or served,
        host=settings.engine_host,
        port=settings.engine_port,
        max_model_len=settings.engine_max_model_len,
        kv_cache_bytes=settings.engine_kv_cache_bytes,
        cpu_threads=settings.engine_cpu_threads,
        extra_args=settings.engine_extra_args + _vision_engine_args(settings),
        start_timeout_s=settings.engine_start_timeout_s,
    )
    return EmbeddedEngine(spec, log_dir=settings.logs_dir, cache_dir=settings.data_dir / "cache" / "vllm")


def _vision_engine_args(settings: Settings) -> tuple[str, ...]:
    """vLLM flags the vision profile needs: embeddings-only input for LLaVA-style bundles (no vision tower)."""
    if profile_from_settings(settings).image_input is not ImageInput.EMBEDS:
        return ()
    if "--enable-mm-embeds" in settings.engine_extra_args:
        return ()
    return ("--enable-mm-embeds", "--limit-mm-per-prompt", '{"image": 0}')


@contextmanager
def open_runtime(
    settings: Settings, progress: Progress | None = None, vision: VisionService | None = None
) -> Iterator[Runtime]:
    """Start (or connect to) the LLM and build the services; stops the embedded engine on exit.

    ``vision``: the vision service to use (built from the settings when not given).
    """
    if vision is None:
        vision = VisionService.from_settings(settings)  # first: a misconfigured profile fails before a long start
    engine: EmbeddedEngine | None = None
    if settings.llm_url:
        url, served = settings.llm_url, settings.llm_served_name
    else:
        engine = create_engine(settings, progress)
        url, served = engine.start(progress), engine.spec.served_name
    audit = AuditLog(settings.db_path)
    client = OpenAIChatClient(url, model=served, api_key=settings.llm_api_key, timeout_s=settings.llm_timeout_s)
    try:
        with credentials_hidden():
            options = GenerationOptions(max_tokens=settings.llm_max_tokens, temperature=settings.llm_temperature)
            model_id = client.model_id
            library, guidelines, grounded = create_services(settings, client, options, audit)
            yield Runtime(
                settings=settings,
                llm_url=redact_url(url),
                model_id=model_id,
                engine=engine,
                client=client,
                audit=audit,
                chat=ChatService(client, options, audit, vision),
                library=library,
                guidelines=guidelines,
                grounded=grounded,
            )
    finally:
        client.close()
        audit.close()
        if engine is not None:
            engine.stop()


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Refuse to expose the app beyond loopback unless that was asked for explicitly."""
    if host not in ("127.0.0.1", "localhost", "::1") and not allow_remote:
        raise ConfigurationError(
            f"refusing to listen on {host}: pass --allow-remote (and set RADASSIST_AUTH_USER/PASSWORD)"
        )
