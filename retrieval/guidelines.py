"""The guideline index: built from the knowledge base on first use, rebuilt when the knowledge base changes; or
built once elsewhere and opened read-only (a shipped index, shared by several app replicas)."""

from __future__ import annotations

import logging
from pathlib import Path

from retrieval.documents import Hit
from retrieval.embedding import Embedder
from retrieval.errors import RetrievalError
from retrieval.index import HybridIndex, chunk_set_digest
from retrieval.kb import KnowledgeBase
from retrieval.vectors import IndexConfig
from retrieval.versions import CURRENT

logger = logging.getLogger(__name__)

# Cosine below which a guideline hit is not a source. Calibrated on all-MiniLM-L6-v2 with
# tests/data/kb_queries.jsonl: every answerable question scored >= 0.41 on its best section; off-topic
# questions (geography, recipes, knee MRI) scored <= 0.29.
DEFAULT_MIN_RELEVANCE = 0.35


def ensure_guideline_index(
    path: Path,
    embedder: Embedder,
    kb: KnowledgeBase | None = None,
    *,
    config: IndexConfig | None = None,
    show_progress: bool = False,
) -> HybridIndex:
    """Load the guideline index at ``path``; build it when missing or when the knowledge base changed.

    A different embedding model than the saved index's raises ``EmbeddingModelMismatchError``.
    """
    kb = kb or KnowledgeBase.load_default()
    chunks = kb.chunks()
    if HybridIndex.exists(path):
        index = HybridIndex.load(path, embedder, config=config)
        if {c.id for c in index.chunks} == {c.id for c in chunks}:
            return index
        logger.info("knowledge base changed; rebuilding the guideline index at %s", path)
    return HybridIndex.build(chunks, embedder, path, config=config, show_progress=show_progress)


def knowledge_base_digest(kb: KnowledgeBase) -> str:
    """The identity of a knowledge base as an index records it (``Manifest.corpus_digest``)."""
    return chunk_set_digest(c.id for c in kb.chunks())


def open_guideline_index(
    path: Path, embedder: Embedder, kb: KnowledgeBase | None = None, *, config: IndexConfig | None = None
) -> HybridIndex:
    """Open a guideline index built elsewhere (``radassist index build --out``) as it is: never built or written.

    Only reads, takes no lock and writes nothing, so any number of processes may open one folder at once, and the
    folder and its files may be read-only. Refused (``RetrievalError``) when the folder is missing or incomplete,
    was built with another embedding model (``EmbeddingModelMismatchError``) or from another knowledge base than
    ``kb``.
    """
    path = Path(path)
    kb = kb or KnowledgeBase.load_default()
    if not path.is_dir():
        raise RetrievalError(f"no guideline index at {path}: the folder does not exist")
    if not HybridIndex.exists(path):
        raise RetrievalError(f"{path} is not a complete index: it has no {CURRENT} file")
    index = HybridIndex.load(path, embedder, config=config)  # a missing file or another model is refused here
    found, expected = HybridIndex.read_manifest(path).digest, knowledge_base_digest(kb)
    if found != expected:
        raise RetrievalError(
            f"the guideline index at {path} was built from another knowledge base ({len(index)} chunks, digest "
            f"{found[:12]}) than the one this radassist carries ({len(kb.chunks())} chunks, digest {expected[:12]}): "
            "rebuild it with this version (radassist index build --corpus guidelines --out DIR)"
        )
    return index


def search_guidelines(
    index: HybridIndex, query: str, k: int = 5, *, min_relevance: float | None = DEFAULT_MIN_RELEVANCE
) -> list[Hit]:
    """The best guideline sections for ``query``; empty when none clears ``min_relevance`` ("no source")."""
    return index.search(query, k, min_relevance=min_relevance)
