"""Wiring at the entry points: settings → LLM (remote URL or embedded engine) → services."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import retrieval
from assistant.errors import AnswerInterrupted, ConfigurationError, LLMUnavailableError, RadassistError
from assistant.llm.client import (
    ChatModel,
    GenerationOptions,
    OpenAIChatClient,
    conversation_affinity,
    create_chat_client,
)
from assistant.llm.engine import EmbeddedEngine, EngineSpec
from assistant.llm.model_files import resolve_chat_model
from assistant.llm.urls import redact_url
from assistant.llm.watchdog import EngineHealth, EngineWatchdog
from assistant.modes.answer import Answer, Turn, validate_question
from assistant.modes.chat import ChatService
from assistant.modes.facts import (
    FIELDS,
    METADATA_SOURCE,
    FactRoute,
    PriorSummary,
    StudyFacts,
    StudyLike,
    route_question,
    study_facts,
    study_inputs,
    summarize_priors,
    with_study_inputs,
)
from assistant.modes.grounded import PRIOR_MIN_RELEVANCE, GroundedService
from assistant.modes.guideline import GuidelineService
from assistant.modes.mode import Mode, choose_mode, compares_with_priors
from assistant.modes.sources import GuidelineLibrary, PriorReports, citation
from assistant.priors.store import open_prior_store
from assistant.settings import Settings
from assistant.store.audit import AuditLog, AuditRecord
from assistant.vision.profiles import ImageInput, profile_from_settings
from assistant.vision.service import ImageLike, SimilarCase, VisionService
from assistant.vision.similar_cases import SimilarCaseLibrary

logger = logging.getLogger(__name__)

# Prior-report sections that go with a study question comparing with earlier studies.
PRIOR_SECTIONS = 2

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
    watchdog: EngineWatchdog | None = None  # watches the embedded engine after start-up (None for a remote server)
    # The teaching corpus's similar-case index (opened on first use): built from the settings.
    similar: SimilarCaseLibrary = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.similar = SimilarCaseLibrary(self.settings, vision=self.chat.vision)

    def engine_health(self) -> EngineHealth | None:
        """The embedded engine as its watchdog last saw it (None with a remote LLM server)."""
        return self.watchdog.status() if self.watchdog is not None else None

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

    def priors_for(self, study: StudyLike) -> list[PriorSummary]:
        """The prior reports of the patient of ``study``, newest first, dated relative to it ([] when none).

        Only this patient's reports (looked up by the study's pseudonymous key), only those dated before the study
        (any, when its date is unknown); [] without a key or a prior-report index.
        """
        key = study.patient_key
        if not key or self.grounded.priors is None:
            return []
        return summarize_priors(self.grounded.priors.reports_for(key), study.study_date)

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

        With a study open (``context.study``), ``auto`` first answers what the question asks of the study's
        metadata (modality, slice thickness, kVp, the window on screen, the priors' dates, ...) by code from the
        de-identified header, in mode ``facts``, cited as "study metadata"; a mixed question gets those facts, then
        the model's answer to the rest, separated. Every answer then carries ``extra["priors"]``.
        """
        with credentials_hidden():
            yield from self._stream(question, mode, history, context or AskContext(), progress)

    def _stream(
        self, question: str, mode: Mode | str, history: Sequence[Turn], ctx: AskContext, progress: Progress | None
    ) -> Iterator[AnswerEvent]:
        # ``mode`` itself, validated (choose_mode returns any mode but auto unchanged, and refuses unknown ones).
        requested = Mode.AUTO if str(mode) == Mode.AUTO.value else choose_mode(question, mode)
        priors: list[PriorSummary] | None = None
        facts: StudyFacts | None = None
        route = FactRoute((), question)
        patient_key = ctx.patient_key
        unavailable = ""  # why the priors could not be read (the answer goes on without them)
        if ctx.study is not None:
            try:
                priors = self.priors_for(ctx.study)
            except RadassistError as exc:  # e.g. an index built with another embedding model
                logger.warning("prior reports unavailable: %s", type(exc).__name__)
                priors, unavailable = [], f"prior reports unavailable: {exc}"
            if patient_key is None and ctx.study.patient_key and self._has_priors():
                patient_key = ctx.study.patient_key  # grounded answers use this patient's priors
            if requested in (Mode.AUTO, Mode.FACTS):
                route = route_question(validate_question(question))
                if route.is_facts or requested is Mode.FACTS:
                    facts = study_facts(ctx.study, ctx.sent, priors)
        elif requested is Mode.FACTS:
            raise RadassistError("facts mode answers from the study's metadata: open a study first (--image FILE)")
        if facts is not None and (requested is Mode.FACTS or not route.remainder):
            yield from self._facts_answer(route, facts, priors or [], unavailable)
            return
        asked = route.remainder if facts is not None else question
        prefix = ""
        if facts is not None:
            prefix = facts.text(route.fields) + "\n\n**Model's answer** (not from the metadata):\n"
        chosen = choose_mode(asked, mode, patient_key=patient_key, has_images=bool(ctx.images))
        yield AnswerEvent("mode", mode=chosen)
        if unavailable:
            yield AnswerEvent("note", mode=chosen, text=unavailable)
        if chosen is Mode.CHAT:
            started = time.monotonic()
            prior_hits = self._prior_sections(asked, ctx, priors)
            messages, attachment = self.chat.prepare(asked, history, ctx.images, prior_hits)
            if attachment is not None and attachment.note:
                yield AnswerEvent("note", mode=chosen, text=attachment.note)
            pieces: list[str] = []
            if prefix:
                yield AnswerEvent("delta", mode=chosen, text=prefix)
            # A pool of LLM servers answers every turn of one conversation from one server (its prefix and image
            # caches hit): the conversation's id is the request's affinity key.
            options = None
            if ctx.conversation_id:
                options = dataclasses.replace(self.chat.options, affinity_key=ctx.conversation_id)
            try:
                for piece in self.chat.stream_messages(messages, attachment, options=options):
                    pieces.append(piece)
                    yield AnswerEvent("delta", mode=chosen, text=piece)
            except LLMUnavailableError as exc:
                if not "".join(pieces).strip():
                    raise
                restarting = " (the engine is being restarted)" if self.watchdog is not None else ""
                raise AnswerInterrupted(
                    f"Answer interrupted: {exc}{restarting}. The text above is incomplete; ask again once the "
                    "model is back.",
                    "".join(pieces),
                ) from exc
            extra: dict[str, Any] = {"mode": chosen.value}
            if attachment is not None:
                extra["image_input"] = attachment.image_input.value
                if ctx.sent:
                    extra["sent"] = [dict(item) for item in ctx.sent]
            extra.update(_study_extra(facts, route, priors))
            text = "".join(pieces).strip()
            if prior_hits:
                extra["prior_sources"] = len(prior_hits)
            # [n] in the answer names the n-th prior section given; the metadata's citation goes last.
            cites = tuple(citation(h) for h in prior_hits)
            cites += (facts.citation(route.fields),) if facts is not None else ()
            answer = Answer(
                prefix + text if prefix else text, self.chat.model.model_id, cites, time.monotonic() - started, extra
            )
            yield AnswerEvent("answer", mode=chosen, answer=answer)
            return
        if not self.library.loaded:
            self.prepare_guidelines(progress)
        inputs: dict[str, str] = {}
        if chosen is Mode.GUIDELINE:
            # With a study open, its modality and body part are offered to the calculators as inputs.
            inputs = study_inputs(ctx.study) if ctx.study is not None else {}
            # Every model call of the answer goes to the conversation's server of a pool, as chat answers do.
            with conversation_affinity(ctx.conversation_id):
                answer = self.guidelines.answer(with_study_inputs(asked, inputs), history)
        else:
            with conversation_affinity(ctx.conversation_id):
                answer = self.grounded.answer(asked, patient_key, history)
        extra = {"mode": chosen.value, **answer.extra, **_study_extra(facts, route, priors)}
        if inputs:
            extra["study_inputs"] = inputs
        if ctx.images:  # these modes compute from the text: the images were not sent to the model
            extra["image_input"] = ImageInput.NONE.value
        if facts is not None:  # the metadata's citation goes last: the answer's own [n] markers keep their sources
            answer = dataclasses.replace(
                answer, text=prefix + answer.text, citations=(*answer.citations, facts.citation(route.fields))
            )
        yield AnswerEvent("answer", mode=chosen, answer=dataclasses.replace(answer, extra=extra))

    def _prior_sections(
        self, question: str, ctx: AskContext, priors: Sequence[PriorSummary] | None
    ) -> list[retrieval.Hit]:
        """For a question about the study on screen that compares with earlier studies ("has it grown?"): the most
        relevant sections of this patient's prior reports (never another patient's), else none."""
        key = ctx.study.patient_key if ctx.study is not None else None
        if not key or not priors or self.grounded.priors is None or not compares_with_priors(question):
            return []
        try:
            return self.grounded.priors.search(question, key, PRIOR_SECTIONS, min_relevance=PRIOR_MIN_RELEVANCE)
        except RadassistError as exc:  # the answer goes on without them, as with the priors panel
            logger.warning("prior-report sections unavailable: %s", type(exc).__name__)
            return []

    def _has_priors(self) -> bool:
        return self.grounded.priors is not None and self.grounded.priors.available()

    def _facts_answer(
        self, route: FactRoute, facts: StudyFacts, priors: Sequence[PriorSummary], unavailable: str = ""
    ) -> Iterator[AnswerEvent]:
        """The asked study facts (all of them when none was named), by code: the same answer with every model."""
        started = time.monotonic()
        yield AnswerEvent("mode", mode=Mode.FACTS)
        if unavailable:
            yield AnswerEvent("note", mode=Mode.FACTS, text=unavailable)
        fields = route.fields or tuple(f for f in FIELDS if f != "priors" or priors)
        text = facts.text(fields)
        extra = {"mode": Mode.FACTS.value, **_study_extra(facts, FactRoute(fields, ""), priors)}
        latency = time.monotonic() - started
        answer = Answer(text, METADATA_SOURCE, (facts.citation(fields),), latency, extra)
        self.audit.record(
            AuditRecord(
                mode=Mode.FACTS.value,
                template="study_facts@1",
                model=METADATA_SOURCE,
                chunk_ids=(),
                latency_ms=int(latency * 1000),
                output_chars=len(text),
                outcome="ok",
            )
        )
        yield AnswerEvent("answer", mode=Mode.FACTS, answer=answer)

    def answer(
        self,
        question: str,
        mode: Mode | str = Mode.AUTO,
        history: Sequence[Turn] = (),
        patient_key: str | None = None,
        images: Sequence[ImageLike] = (),
        progress: Progress | None = None,
        *,
        study: StudyLike | None = None,
        sent: Sequence[Mapping[str, Any]] = (),
    ) -> Answer:
        """The whole answer at once (built on :meth:`stream`); ``extra["image_input"]`` says whether the model saw
        the images. ``study``/``sent``: as in :class:`AskContext`."""
        final: Answer | None = None
        context = AskContext(images=tuple(images), patient_key=patient_key, sent=tuple(sent), study=study)
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
    # The study on screen (an ``assistant.imaging.study.Study``): its metadata answers study-fact questions, its
    # pseudonymous patient key finds the patient's priors.
    study: StudyLike | None = None
    # The conversation's id: with a pool of LLM servers, every turn of it goes to the same server (affinity key).
    conversation_id: str | None = None


def _study_extra(
    facts: StudyFacts | None, route: FactRoute, priors: Sequence[PriorSummary] | None
) -> dict[str, Any]:
    """The answer's study fields: ``study_facts`` (the facts given) and ``priors`` (with a study open)."""
    extra: dict[str, Any] = {}
    if facts is not None:
        extra["study_facts"] = {name: facts.values[name] for name in route.fields if name in facts.values}
    if priors is not None:
        extra["priors"] = [p.to_json() for p in priors]
    return extra


@dataclass(frozen=True)
class AnswerEvent:
    """One step of an answer stream: ``mode`` (chosen), ``note``, ``delta`` (text) or ``answer`` (finished)."""

    kind: str
    mode: Mode | None = None
    text: str = ""
    answer: Answer | None = None


def priors_for_study(source: Runtime | Settings, study: StudyLike) -> list[PriorSummary]:
    """The prior reports of the patient of the study on screen, newest first: relative date, modality, impression.

    Never another patient's (looked up by the study's pseudonymous key); [] when none were imported. ``source``:
    the runtime, or only the settings (no LLM needed: e.g. while the engine is still starting).
    """
    if isinstance(source, Runtime):
        return source.priors_for(study)
    key = study.patient_key
    if not key:
        return []
    place = (str(source.database), str(source.data_dir), str(source.embedding_model))
    with _PRIOR_SOURCES_LOCK:
        priors = _PRIOR_SOURCES.get(place)
    if priors is None:
        embedder = shared_embedder(source)  # outside the lock: loading a model takes seconds
        with _PRIOR_SOURCES_LOCK:
            priors = _PRIOR_SOURCES.setdefault(place, create_prior_reports(source, embedder))
            # every read goes to the database: an import is seen at once
    return summarize_priors(priors.reports_for(key), study.study_date)


def shared_embedder(settings: Settings) -> retrieval.Embedder:
    """The embedder of ``settings.embedding_model``, loaded once per process (for the web app's prior-report
    lookups and imports, which happen before or beside the runtime)."""
    with _EMBEDDERS_LOCK:
        embedder = _EMBEDDERS.get(str(settings.embedding_model))
        if embedder is None:
            embedder = retrieval.create_embedder(settings.embedding_model)
            _EMBEDDERS[str(settings.embedding_model)] = embedder
        return embedder


# Prior-report stores opened for ``priors_for_study(settings, ...)``, by database, data dir and embedding model,
# and embedders by model (filled on first use, not at import).
_PRIOR_SOURCES: dict[tuple[str, str, str], PriorReports] = {}
_PRIOR_SOURCES_LOCK = threading.Lock()
_EMBEDDERS: dict[str, retrieval.Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


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
    """Where the index of ``corpus`` (guidelines, reports, teaching) is built on first use, in the data dir."""
    return Path(settings.data_dir) / "index" / corpus


def create_guideline_library(settings: Settings, embedder: retrieval.Embedder) -> GuidelineLibrary:
    """The guideline library: over the shipped read-only ``guideline_index`` when set, else over the index built on
    first use in the data dir."""
    if settings.guideline_index is not None:
        return GuidelineLibrary(embedder, Path(settings.guideline_index).expanduser(), read_only=True)
    return GuidelineLibrary(embedder, index_dir(settings, "guidelines"))


def create_prior_reports(settings: Settings, embedder: retrieval.Embedder) -> PriorReports:
    """The patients' prior reports in ``settings.database`` (shared by every replica), searched with ``embedder``;
    a prior-report index folder of an earlier version is moved into the database on first use."""
    return PriorReports(store=open_prior_store(settings), embedder=embedder)


def create_services(
    settings: Settings, model: ChatModel, options: GenerationOptions, audit: AuditLog | None
) -> tuple[GuidelineLibrary, GuidelineService, GroundedService]:
    """The guideline library (index opened on first use) and the guideline and grounded services over ``model``."""
    embedder = retrieval.create_embedder(settings.embedding_model)
    library = create_guideline_library(settings, embedder)
    priors = create_prior_reports(settings, embedder)
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
    audit = AuditLog(settings.database)
    # Several servers in llm_url: a pool (a conversation sticks to one server, fails over when it is down).
    client = create_chat_client(url, model=served, api_key=settings.llm_api_key, timeout_s=settings.llm_timeout_s)
    # After start-up the engine is watched: a death or a hang is noticed and the engine restarted, with back-off.
    watchdog = EngineWatchdog(engine, on_restart=client.set_base_url).start() if engine is not None else None
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
                watchdog=watchdog,
            )
    finally:
        if watchdog is not None:
            watchdog.stop()
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
