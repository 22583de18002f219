"""The guideline index: built from the knowledge base on first use, rebuilt when the knowledge base changes."""

from __future__ import annotations

import logging
from pathlib import Path

from retrieval.documents import Hit
from retrieval.embedding import Embedder
from retrieval.index import HybridIndex
from retrieval.kb import KnowledgeBase
from retrieval.vectors import IndexConfig

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


def search_guidelines(
    index: HybridIndex, query: str, k: int = 5, *, min_relevance: float | None = DEFAULT_MIN_RELEVANCE
) -> list[Hit]:
    """The best guideline sections for ``query``; empty when none clears ``min_relevance`` ("no source")."""
    return index.search(query, k, min_relevance=min_relevance)
