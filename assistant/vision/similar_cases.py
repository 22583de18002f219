"""Similar teaching cases: a configured corpus of de-identified images with reports, and its index on disk.

The index (:class:`~assistant.vision.service.SimilarCaseIndex`: pooled open_clip embeddings in an exact FAISS index)
lives under ``<data_dir>/index/images`` as version folders and a ``CURRENT`` pointer that is switched atomically,
like the text indexes. Its meta file records the image encoder's fingerprint and the corpus file's SHA-256: with
``vision_teaching_corpus`` configured, an index that is missing, was built with another encoder or from another
version of the corpus file is (re)built on first use. Without the setting, an index built by
``radassist index build --corpus images`` is used as it is. With ``vision_teaching_index`` (an index built once with
``--out DIR`` and shipped as files, e.g. to several app replicas) that folder is only read: never built or written
into, refused when missing, incomplete or built with another encoder.

The encoder is ``vision_teaching_encoder`` (an encoder spec JSON file or a vision bundle) or else the vision
bundle's encoder; a text-only profile has none, and asking for similar cases then names the setting to add.

The reports are shown to the user beside an answer; they are never put into the language model's prompt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError, RetrievalError, translated_retrieval_errors
from assistant.settings import Settings
from assistant.vision.encoder import EncoderSpec, ImageEncoder
from assistant.vision.profiles import BUILTIN_PROFILES, ImageInput, find_bundle, load_bundle, profile_from_settings
from assistant.vision.service import ImageLike, SimilarCase, SimilarCaseIndex, VisionService, read_teaching_cases
from retrieval.versions import CURRENT as CURRENT  # re-exported: names the committed version folder
from retrieval.versions import VersionedFolder

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

IMAGES_CORPUS = "images"
REBUILD = "rebuild it (radassist index build --corpus images --input FILE)"


def images_index_dir(settings: Settings) -> Path:
    """Where the similar-case index lives (beside the guideline and report indexes)."""
    return Path(settings.data_dir) / "index" / IMAGES_CORPUS


def teaching_encoder_spec(settings: Settings) -> EncoderSpec | None:
    """The open_clip encoder for similar cases: ``vision_teaching_encoder``, else the vision bundle's; or None."""
    named = settings.vision_teaching_encoder
    if named:
        path = Path(named).expanduser()
        if find_bundle(path) is not None:
            return load_bundle(path).encoder
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(
                f"vision_teaching_encoder {named!r} is neither a vision bundle nor a readable encoder spec file"
            ) from exc
        except ValueError as exc:
            raise ConfigurationError(f"the encoder spec {path} is not valid JSON: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("encoder"), dict):
            data = data["encoder"]
        if not isinstance(data, dict):
            raise ConfigurationError(f"the encoder spec {path} must be a JSON object with a model_name")
        try:
            return EncoderSpec.from_dict(data, base_dir=path.parent)
        except TypeError as exc:
            raise ConfigurationError(f"the encoder spec {path} misses a field: {exc}") from exc
    profile = profile_from_settings(settings)
    if profile.image_input is ImageInput.EMBEDS and profile.bundle:
        return load_bundle(profile.bundle).encoder
    return None


def similarity_service(settings: Settings, vision: VisionService | None = None) -> VisionService:
    """The service whose pooled embeddings index and query the teaching cases (``vision``'s when it matches)."""
    spec = teaching_encoder_spec(settings)
    if spec is None:
        raise ConfigurationError(
            f"similar teaching cases need an open_clip image encoder and the {profile_from_settings(settings).name} "
            "profile has none: set RADASSIST_VISION_TEACHING_ENCODER to an encoder spec JSON file or a vision bundle"
        )
    if vision is not None and vision.bundle is not None and vision.bundle.encoder == spec:
        return vision  # one encoder in memory, and the chat reuses the embeddings computed here
    return VisionService(BUILTIN_PROFILES["text-only"], encoder=ImageEncoder(spec))


def _pooled_only(service: VisionService) -> VisionService:
    """A service that computes pooled embeddings only, on ``service``'s encoder (no projector, no cache).

    Indexing a corpus through an embeds service would also project every image into LLM embeddings.
    """
    if service.image_input is not ImageInput.EMBEDS:
        return service
    return VisionService(BUILTIN_PROFILES["text-only"], encoder=service.encoder)


def corpus_sha256(path: Path) -> str:
    """Hash of the corpus file: a changed file means a stale index."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise RetrievalError(f"cannot read the teaching corpus {path}: {exc.strerror}") from exc


def _versions(folder: Path) -> VersionedFolder:
    """The index's version folders and ``CURRENT`` pointer (the layout the text indexes use too)."""
    return VersionedFolder(folder, label="similar-case index", repair=REBUILD)


def committed_version(folder: Path) -> Path | None:
    """The committed version folder of the index at ``folder``; None when none was built."""
    with translated_retrieval_errors():
        return _versions(folder).committed_version()


def read_index_meta(folder: Path) -> dict[str, Any] | None:
    """The meta of the index at ``folder`` (cheap: no vectors are read); None when none was built."""
    version = committed_version(folder)
    return None if version is None else SimilarCaseIndex.read_meta(version)


def build_similar_index(
    settings: Settings,
    corpus: Path,
    folder: Path | None = None,
    service: VisionService | None = None,
    progress: Progress | None = None,
) -> SimilarCaseIndex:
    """Build the index of the JSONL ``corpus`` and commit it under ``folder`` atomically (old versions removed)."""
    folder = folder or images_index_dir(settings)
    service = _pooled_only(service or similarity_service(settings))
    corpus = Path(corpus).expanduser()
    digest = corpus_sha256(corpus)
    cases = read_teaching_cases(corpus)
    if not cases:
        raise RetrievalError(f"the teaching corpus {corpus} holds no case")
    if progress:
        progress(f"indexing {len(cases)} teaching case images from {corpus.name}")
    started = time.perf_counter()
    with translated_retrieval_errors():
        index = SimilarCaseIndex.build(service, cases, settings, progress=progress)
    extra = {
        "corpus": str(corpus.resolve()),
        "corpus_sha256": digest,
        "encoder": service.encoder.spec.model_name,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with translated_retrieval_errors():  # files and folders fsynced, then CURRENT switched; old versions removed
        _versions(folder).commit(lambda tmp: index.save(tmp, extra))
    index.meta = {**extra, "fingerprint": index.fingerprint, "count": len(index.cases), "skipped": index.skipped}
    logger.info(
        "similar-case index: %d cases (%d skipped) in %.1f s", len(index.cases), index.skipped,
        time.perf_counter() - started,
    )  # fmt: skip
    return index


def _stale_reason(meta: dict[str, Any] | None, fingerprint: str, corpus: Path) -> str | None:
    """Why the index must be (re)built from ``corpus``; None when it is current."""
    if meta is None:
        return "first use"
    if meta.get("fingerprint") != fingerprint:
        return "it was built with another image encoder"
    if meta.get("corpus") != str(corpus.resolve()) or meta.get("corpus_sha256") != corpus_sha256(corpus):
        return "the teaching corpus changed"
    return None


class SimilarCaseLibrary:
    """The teaching corpus's similar-case index, opened (or built) once on first use; thread-safe."""

    def __init__(self, settings: Settings, *, folder: Path | None = None, vision: VisionService | None = None):
        self.settings = settings
        shipped = settings.vision_teaching_index
        # A shipped index (vision_teaching_index) is only read; the settings refuse it beside a corpus to build from.
        self.read_only = folder is None and shipped is not None
        if folder is None and shipped is not None:
            folder = Path(shipped).expanduser()
        self.folder = folder or images_index_dir(settings)
        corpus = settings.vision_teaching_corpus
        self.corpus = Path(corpus).expanduser() if corpus else None
        self._vision = vision
        self._service: VisionService | None = None
        self._index: SimilarCaseIndex | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        """Whether similar cases are wanted: a teaching corpus or a shipped index is configured, or one was built."""
        return self.corpus is not None or self.read_only or _versions(self.folder).exists()

    def service(self) -> VisionService:
        with self._lock:
            return self._service_locked()

    def _service_locked(self) -> VisionService:
        if self._service is None:
            self._service = similarity_service(self.settings, self._vision)
        return self._service

    def index(self, progress: Progress | None = None) -> SimilarCaseIndex | None:
        """The index, built first when the configured corpus needs it; None when no corpus or index is configured."""
        with self._lock:
            if self._index is None and self.configured:
                self._index = self._open(self._service_locked(), progress)
            return self._index

    def _open(self, service: VisionService, progress: Progress | None) -> SimilarCaseIndex:
        fingerprint = service.pooled_fingerprint
        if self.read_only:
            return self._open_shipped(fingerprint)
        if self.corpus is not None:
            reason = _stale_reason(read_index_meta(self.folder), fingerprint, self.corpus)
            if reason is not None:
                if progress:
                    progress(f"building the similar-case index at {self.folder} ({reason})")
                return build_similar_index(self.settings, self.corpus, self.folder, service, progress)
        version = committed_version(self.folder)
        if version is None:  # removed since configured was checked
            raise RetrievalError(f"no similar-case index at {self.folder}: build it (radassist index build)")
        with translated_retrieval_errors():
            index = SimilarCaseIndex.load(version)
        if index.fingerprint != fingerprint:
            raise RetrievalError(
                f"the similar-case index at {self.folder} was built with another image encoder than the one "
                "configured: rebuild it (radassist index build --corpus images --input FILE) or configure the "
                "original encoder"
            )
        logger.info("similar-case index loaded: %d cases", len(index.cases))
        return index

    def _open_shipped(self, fingerprint: str) -> SimilarCaseIndex:
        """The shipped index (``vision_teaching_index``), only read: no folder made, nothing built, no lock file."""
        if not self.folder.is_dir():
            raise self._shipped_error("the folder does not exist")
        try:
            version = committed_version(self.folder)
            if version is None:
                raise RetrievalError(f"it is not a complete index (it has no {CURRENT} file)")
            with translated_retrieval_errors():
                index = SimilarCaseIndex.load(version)
        except RetrievalError as exc:
            raise self._shipped_error(str(exc)) from exc
        if index.fingerprint != fingerprint:
            raise self._shipped_error("it was built with another image encoder than the one configured")
        logger.info("similar-case index loaded read-only: %d cases", len(index.cases))
        return index

    def _shipped_error(self, why: str) -> RetrievalError:
        return RetrievalError(
            f"RADASSIST_VISION_TEACHING_INDEX (vision_teaching_index): the similar-case index at {self.folder} cannot "
            f"be used: {why} (a shipped index is loaded read-only and never built here: build it once with "
            f"`radassist index build --corpus images --input FILE --out {self.folder}` and the encoder configured "
            "here, or unset the setting)"
        )

    def search(self, images: Sequence[ImageLike], k: int = 3, progress: Progress | None = None) -> list[SimilarCase]:
        """At most ``k`` teaching cases most like any of ``images``, best first; [] when none is configured."""
        if k < 0:
            raise ValueError(f"k must be 0 or more, got {k}")
        if k == 0 or not images:
            return []
        index = self.index(progress)
        if index is None:
            return []
        vectors = self.service().pooled(images)  # (N, D) unit rows
        best: dict[str, SimilarCase] = {}
        with translated_retrieval_errors():
            for vector in vectors:
                for hit in index.search(vector, k):
                    if hit.case_id not in best or hit.score > best[hit.case_id].score:
                        best[hit.case_id] = hit
        return sorted(best.values(), key=lambda case: case.score, reverse=True)[:k]
