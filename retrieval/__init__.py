"""Retrieval: chunking, embeddings, FAISS + BM25 fused by rank, guideline knowledge base, prior reports.

Knows nothing of DICOM, LLMs, prompts or the UI. Importing it loads no model and no index.
"""

from retrieval.chunking import chunk_text
from retrieval.documents import Chunk, Hit, content_id
from retrieval.embedding import (
    DEFAULT_MODEL_ID,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    create_embedder,
)
from retrieval.errors import EmbeddingModelMismatchError, PatientKeyRequiredError, RetrievalError
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.guidelines import (
    DEFAULT_MIN_RELEVANCE,
    ensure_guideline_index,
    knowledge_base_digest,
    open_guideline_index,
    search_guidelines,
)
from retrieval.index import HybridIndex, Manifest, chunk_set_digest
from retrieval.kb import KnowledgeBase, Section
from retrieval.reports import (
    PriorReport,
    PriorReportIndex,
    SyntheticPatients,
    TeachingIndex,
    group_reports,
    read_reports,
    read_rows,
    split_sections,
)
from retrieval.vectors import IndexConfig
from retrieval.versions import VersionedFolder, VersionedFolderError

__all__ = [
    "DEFAULT_MIN_RELEVANCE",
    "DEFAULT_MODEL_ID",
    "Chunk",
    "Embedder",
    "EmbeddingModelMismatchError",
    "HashingEmbedder",
    "Hit",
    "HybridIndex",
    "IndexConfig",
    "KnowledgeBase",
    "Manifest",
    "PatientKeyRequiredError",
    "PriorReport",
    "PriorReportIndex",
    "RetrievalError",
    "Section",
    "SentenceTransformerEmbedder",
    "SyntheticPatients",
    "TeachingIndex",
    "VersionedFolder",
    "VersionedFolderError",
    "chunk_set_digest",
    "chunk_text",
    "content_id",
    "create_embedder",
    "ensure_guideline_index",
    "group_reports",
    "knowledge_base_digest",
    "open_guideline_index",
    "read_reports",
    "read_rows",
    "reciprocal_rank_fusion",
    "search_guidelines",
    "split_sections",
]
