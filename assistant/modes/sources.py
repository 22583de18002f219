"""Retrieved sources for the answering modes: the guideline library, citations, and sources-as-data prompts.

The guideline index is loaded (or built, the first time) when it is first needed, never at import or start-up;
a shipped index (``read_only``) is only ever loaded.
Retrieval errors are translated into :class:`assistant.errors.RetrievalError` here, at the boundary.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import retrieval
from assistant.errors import RetrievalError, translated_retrieval_errors
from assistant.store.db import ensure_private_dir

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Citation markers the model may write: [1], [2], or a list such as [1, 3] / [1][2].
_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# What could close or open a delimited source block from inside a source's text.
_TAG = re.compile(r"<\s*(/?)\s*(sources?)\b", re.I)


def citation(hit: retrieval.Hit) -> dict[str, Any]:
    """A hit as an entry of ``Answer.citations`` (id, source, title, section, text, score, ...)."""
    return hit.to_dict()


class GuidelineLibrary:
    """The guideline knowledge base and its hybrid index; the index is loaded or built on first use.

    ``read_only``: ``index_path`` is a shipped index (``radassist index build --out``, the ``guideline_index``
    setting), loaded as it is and never built or written into: missing, incomplete, or built with another
    embedding model or knowledge base, it is refused with an error that names the setting.
    """

    def __init__(
        self,
        embedder: retrieval.Embedder,
        index_path: Path | None = None,
        *,
        kb: retrieval.KnowledgeBase | None = None,
        index: retrieval.HybridIndex | None = None,
        min_relevance: float | None = retrieval.DEFAULT_MIN_RELEVANCE,
        progress: Progress | None = None,
        read_only: bool = False,
    ) -> None:
        if index is None and index_path is None:
            raise ValueError("GuidelineLibrary needs an index_path or an index, got neither")
        self._embedder = embedder
        self._path = index_path
        self._kb = kb
        self._index = index
        self.min_relevance = min_relevance
        self._progress = progress
        self.read_only = read_only
        self._lock = threading.Lock()

    @property
    def kb(self) -> retrieval.KnowledgeBase:
        if self._kb is None:
            with translated_retrieval_errors():
                self._kb = retrieval.KnowledgeBase.load_default()
        return self._kb

    @property
    def loaded(self) -> bool:
        return self._index is not None

    def index(self, progress: Progress | None = None) -> retrieval.HybridIndex:
        """The hybrid index, built under ``index_path`` the first time (progress reported) if it is missing; a
        read-only library's is loaded as it is."""
        progress = progress or self._progress
        with self._lock:
            if self._index is None:
                if self._path is None:  # unreachable: the constructor requires a path or an index
                    raise RetrievalError("the guideline library has no index path")
                if self.read_only:
                    self._index = self._open_shipped(self._path)
                    return self._index
                ensure_private_dir(self._path.parent)  # <data_dir>/index: every corpus's index lives below it
                building = not retrieval.HybridIndex.exists(self._path)
                if building and progress:
                    progress(f"building the guideline index at {self._path} (first use)")
                with translated_retrieval_errors():
                    self._index = retrieval.ensure_guideline_index(
                        self._path, self._embedder, self.kb, show_progress=building and progress is not None
                    )
                logger.info("guideline index ready: %d chunks", len(self._index))
            return self._index

    def _open_shipped(self, path: Path) -> retrieval.HybridIndex:
        """The shipped index at ``path``, only read (no folder made, nothing built, no lock file)."""
        try:
            index = retrieval.open_guideline_index(path, self._embedder, self.kb)
        except retrieval.RetrievalError as exc:
            raise RetrievalError(
                f"RADASSIST_GUIDELINE_INDEX (guideline_index): {exc} (a shipped index is loaded read-only and never "
                f"built here: build it once with `radassist index build --corpus guidelines --out {path}` and the "
                "embedding model configured here, or unset the setting to build one in the data dir)"
            ) from exc
        logger.info("guideline index loaded read-only: %d chunks", len(index))
        return index

    def search(self, query: str, k: int = 3, *, guideline: str | None = None) -> list[retrieval.Hit]:
        """Sections relevant to ``query`` (empty: no source), optionally from one guideline id only."""
        index = self.index()
        with translated_retrieval_errors():
            if guideline is None:
                return retrieval.search_guidelines(index, query, k, min_relevance=self.min_relevance)
            hits = index.search(query, k, {"guideline": guideline}, min_relevance=self.min_relevance)
        return hits

    def section_hits(self, section_id: str) -> list[retrieval.Hit]:
        """The chunks of one knowledge-base section, as hits (looked up by id, not searched)."""
        with translated_retrieval_errors():
            section = self.kb.section(section_id)
        index = self.index()
        chunks = [c for c in index.chunks if c.section == section_id] or section.chunks()
        # A direct lookup is exact: score and relevance 1.0 by definition, not by similarity.
        return [retrieval.Hit.from_chunk(chunk, 1.0, 1.0) for chunk in chunks]


class PriorStore(Protocol):
    """Where the prior reports of every patient are kept, read one patient at a time (``assistant.priors``'
    database store)."""

    def has_reports(self) -> bool: ...

    def reports_for(self, patient_key: str, model_id: str | None = None) -> list[retrieval.PriorReport]: ...

    def search(
        self,
        query: str,
        patient_key: str,
        embedder: retrieval.Embedder,
        k: int = 5,
        *,
        min_relevance: float | None = None,
    ) -> list[retrieval.Hit]: ...


class PriorReports:
    """The patients' prior reports: searches are always per patient.

    Kept in a ``store`` (the database, shared by every replica: an import is seen by the next question), or, for
    tests and tools, an in-memory ``index`` or the index folder at ``path`` (opened on the first search, reopened
    after a change).
    """

    def __init__(
        self,
        path: Path | None = None,
        embedder: retrieval.Embedder | None = None,
        *,
        index: retrieval.PriorReportIndex | None = None,
        store: PriorStore | None = None,
    ) -> None:
        if store is not None and embedder is None:
            raise ValueError("PriorReports with a store needs the embedder its questions are embedded with")
        if store is None and index is None and (path is None or embedder is None):
            raise ValueError("PriorReports needs a store and an embedder, an index, or a path and an embedder")
        self._embedder = embedder
        self._path = path
        self._index = index
        self._store = store
        self._version: str | None = None  # the committed version the open index was loaded from
        self._lock = threading.Lock()

    def _committed(self) -> str | None:
        """The name of the index's committed version (changes with every import), or None without one."""
        if self._path is None:
            return None
        try:
            return (self._path / "CURRENT").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def available(self) -> bool:
        """Whether there are prior reports to search (any stored, an index given, or one built at the path)."""
        if self._store is not None:
            return self._store.has_reports()
        return (self._index is not None and self._path is None) or self._committed() is not None

    def index(self) -> retrieval.PriorReportIndex:
        """The open index (reopened after an import changed it); a clear error when none was built."""
        with self._lock:
            if self._path is not None and self._index is not None and self._committed() != self._version:
                self._index = None  # imported into since it was opened (e.g. `radassist priors import`)
            if self._index is None:
                if self._path is None or self._embedder is None or not retrieval.HybridIndex.exists(self._path):
                    raise RetrievalError(
                        "no prior-report index: import the patients' prior reports with `radassist priors import FILE`"
                    )
                version = self._committed()
                with translated_retrieval_errors():
                    self._index = retrieval.PriorReportIndex.load(self._path, self._embedder)
                self._version = version
            return self._index

    def reports_for(self, patient_key: str) -> list[retrieval.PriorReport]:
        """This patient's reports, newest first ([] when none were imported)."""
        if self._store is not None:
            model = self._embedder.model_id if self._embedder is not None else None
            return self._store.reports_for(patient_key, model)
        if not self.available():
            return []
        index = self.index()
        with translated_retrieval_errors():
            return index.reports(patient_key)

    def search(
        self, query: str, patient_key: str, k: int = 3, *, min_relevance: float | None = None
    ) -> list[retrieval.Hit]:
        """This patient's most relevant prior-report sections (never another patient's)."""
        if self._store is not None and self._embedder is not None:
            if not str(patient_key or "").strip():
                raise RetrievalError("prior reports can only be searched for one patient: a patient key is required")
            return self._store.search(query, patient_key, self._embedder, k, min_relevance=min_relevance)
        index = self.index()
        with translated_retrieval_errors():
            return index.search(query, patient_key, k, min_relevance=min_relevance)


def _escape(text: str) -> str:
    """Neutralise tags that could end (or fake) a source block, so a source cannot step outside it."""
    return _TAG.sub(lambda m: f"‹{m.group(1)}{m.group(2)}", text)


def render_sources(hits: Sequence[retrieval.Hit]) -> str:
    """Hits as delimited data blocks: ``<source id="[1]" ...>text</source>`` inside ``<sources>``."""
    blocks = []
    for number, hit in enumerate(hits, 1):
        kind = hit.metadata.get("corpus", "source")
        title = _escape(hit.title).replace('"', "'")
        date = hit.metadata.get("date")
        when = f' date="{_escape(date)}"' if date else ""
        blocks.append(
            f'<source id="[{number}]" kind="{kind}" title="{title}"{when}>\n{_escape(hit.text.strip())}\n</source>'
        )
    return "<sources>\n" + "\n".join(blocks) + "\n</sources>"


def resolve_citations(text: str, n_sources: int) -> tuple[str, tuple[int, ...]]:
    """Keep the markers that name a source (1..n_sources), strip the others; return the text and cited numbers."""
    cited: list[int] = []

    def keep(match: re.Match[str]) -> str:
        valid = [int(n) for n in re.split(r"\s*,\s*", match.group(1)) if 1 <= int(n) <= n_sources]
        for n in valid:
            if n not in cited:
                cited.append(n)
        return "".join(f"[{n}]" for n in valid)

    cleaned = _MARKER.sub(keep, text)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", cleaned)  # "sentence [9]." → "sentence."
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    return cleaned.strip(), tuple(cited)
