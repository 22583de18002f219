"""Hybrid index: FAISS (dense) + BM25 (lexical) fused by reciprocal rank, persisted atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.bm25 import BM25Index
from retrieval.documents import Chunk, Hit
from retrieval.embedding import Embedder, normalize_rows
from retrieval.errors import EmbeddingModelMismatchError, RetrievalError
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.text import tokenize
from retrieval.vectors import (
    IndexConfig,
    build_faiss,
    configure_search,
    read_faiss,
    search_faiss,
    to_cpu,
    to_gpu,
    write_faiss,
)
from retrieval.versions import CURRENT as CURRENT  # re-exported: the pointer's name is part of the layout
from retrieval.versions import VersionedFolder

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODES = ("hybrid", "dense", "bm25")
EMBED_BATCH = 64
Filters = Mapping[str, str | Sequence[str]]


def chunk_set_digest(chunk_ids: Iterable[str]) -> str:
    """SHA-256 of a set of chunk ids: the identity of the corpus an index holds (its order and copies ignored).

    Chunk ids hash their content, so two indexes of the same corpus (e.g. the same knowledge-base version) have
    the same digest on every machine, and any changed, added or removed section changes it.
    """
    return hashlib.sha256("\n".join(sorted(set(chunk_ids))).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What an index on disk was built with; compared on load so vectors are never mixed."""

    format_version: int
    embedding_model: str
    dim: int
    kind: str
    count: int
    chunk_ids: tuple[str, ...]
    created_at: str
    updated_at: str
    # chunk_set_digest(chunk_ids), written so a shipped index can be compared with a corpus (the knowledge base) by
    # eye or by a deploy script; "" in manifests of earlier versions (recompute it from chunk_ids).
    corpus_digest: str = ""

    def to_json(self) -> str:
        """JSON text."""
        data = asdict(self)
        data["chunk_ids"] = list(self.chunk_ids)
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse ``to_json`` output (fields of a later version are ignored, missing optional ones defaulted)."""
        data = json.loads(text)
        data["chunk_ids"] = tuple(data["chunk_ids"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def digest(self) -> str:
        """The corpus digest: as recorded, or computed from the chunk ids for a manifest that has none."""
        return self.corpus_digest or chunk_set_digest(self.chunk_ids)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def embed_chunks(embedder: Embedder, chunks: Sequence[Chunk], show_progress: bool = False) -> np.ndarray:
    """(N, D) unit vectors of the chunks' ``embed_text``, in batches, with an optional tqdm bar on stderr."""
    texts = [c.embed_text for c in chunks]
    parts: list[np.ndarray] = []
    bar: Any = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), desc="embedding", unit="chunk", file=sys.stderr)
    try:
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start:start + EMBED_BATCH]
            parts.append(np.asarray(embedder.embed(batch), dtype=np.float32))
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    if not parts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return normalize_rows(np.concatenate(parts, axis=0))


class HybridIndex:
    """Chunks with their vectors, a FAISS index and BM25 postings; ``search`` fuses both rankings."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        embedder: Embedder,
        *,
        config: IndexConfig | None = None,
        faiss_index: Any = None,
        kind: str | None = None,
        bm25: BM25Index | None = None,
        path: Path | None = None,
        created_at: str | None = None,
    ) -> None:
        if len(chunks) != len(vectors):
            raise RetrievalError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        self._config = config or IndexConfig()
        self._embedder = embedder
        self._chunks = list(chunks)
        self._row = {c.id: i for i, c in enumerate(self._chunks)}
        self._vectors = vectors  # (N, D) float32 unit rows
        self._dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else 0
        self._path = Path(path) if path is not None else None
        self._created_at = created_at or _now()
        if faiss_index is None:
            self._kind = self._config.resolve_kind(len(self._chunks))
            faiss_index, self._kind = build_faiss(self._vectors, self._kind, self._config)
        else:
            self._kind = kind or "flat"
        self._faiss, self._on_gpu = to_gpu(faiss_index, self._kind, self._config)
        self._bm25 = bm25 if bm25 is not None else BM25Index.build([tokenize(c.embed_text) for c in self._chunks])
        self._meta_index: dict[str, dict[str, np.ndarray]] | None = None

    # -- construction and persistence ------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        chunks: Iterable[Chunk],
        embedder: Embedder,
        path: Path | None = None,
        *,
        config: IndexConfig | None = None,
        show_progress: bool = False,
    ) -> HybridIndex:
        """Embed ``chunks`` (duplicates by id dropped), index them, and save to ``path`` if given."""
        unique: dict[str, Chunk] = {}
        for chunk in chunks:
            unique.setdefault(chunk.id, chunk)
        ordered = list(unique.values())
        started = time.perf_counter()
        vectors = embed_chunks(embedder, ordered, show_progress)
        index = cls(ordered, vectors, embedder, config=config, path=path)
        logger.info("built %s index of %d chunks in %.2f s", index.kind, len(ordered),
                    time.perf_counter() - started)
        if path is not None:
            index.save(path)
        return index

    @staticmethod
    def exists(path: Path) -> bool:
        """Whether a committed index lives at ``path``."""
        return VersionedFolder(Path(path)).exists()

    @staticmethod
    def _version_dir(path: Path) -> Path:
        path = Path(path)
        folder = VersionedFolder(path).committed_version()
        if folder is None:
            raise RetrievalError(f"no index at {path}: build it first (radassist index build)")
        return folder

    @classmethod
    def read_manifest(cls, path: Path) -> Manifest:
        """The manifest of the index at ``path`` (cheap: no vectors are read)."""
        folder = cls._version_dir(path)
        try:
            return Manifest.from_json((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise RetrievalError(f"the manifest of the index at {path} is unreadable: {exc}") from exc

    @classmethod
    def read_stored(cls, path: Path) -> tuple[Manifest, list[Chunk], np.ndarray]:
        """The manifest, chunks and (N, D) float32 vectors saved at ``path``, without an embedder (e.g. to move
        them elsewhere); a damaged or mismatched folder is refused."""
        manifest = cls.read_manifest(path)
        folder = cls._version_dir(path)
        try:
            with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            raise RetrievalError(f"the index at {path} is unreadable: {exc}") from exc
        if tuple(c.id for c in chunks) != manifest.chunk_ids or vectors.shape != (manifest.count, manifest.dim):
            raise RetrievalError(f"the index at {path} does not match its manifest: rebuild it")
        return manifest, chunks, np.asarray(vectors, dtype=np.float32)

    @classmethod
    def load(cls, path: Path, embedder: Embedder, *, config: IndexConfig | None = None) -> HybridIndex:
        """Open the index at ``path``; a different embedding model than the one it was built with is refused."""
        path = Path(path)
        manifest = cls.read_manifest(path)
        if manifest.format_version != FORMAT_VERSION:
            raise RetrievalError(
                f"the index at {path} has format {manifest.format_version}, this version reads "
                f"{FORMAT_VERSION}: rebuild it"
            )
        if manifest.embedding_model != embedder.model_id:
            raise EmbeddingModelMismatchError(
                f"the index at {path} was built with the embedding model {manifest.embedding_model!r} but "
                f"{embedder.model_id!r} is configured; vectors of different models cannot be mixed: rebuild "
                f"the index (radassist index build) or configure the original model"
            )
        config = config or IndexConfig()
        folder = cls._version_dir(path)
        try:
            with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]
            vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            raise RetrievalError(f"the index at {path} is unreadable: {exc}") from exc
        if tuple(c.id for c in chunks) != manifest.chunk_ids or vectors.shape != (manifest.count, manifest.dim):
            raise RetrievalError(f"the index at {path} does not match its manifest: rebuild it")
        bm25 = BM25Index.load(folder)
        if manifest.kind == "flat":
            faiss_index, kind = build_faiss(np.ascontiguousarray(vectors), "flat", config)
        else:
            faiss_index, kind = read_faiss(folder / "faiss.index", config), manifest.kind
        logger.info("loaded %s index of %d chunks from %s", kind, len(chunks), path)
        return cls(chunks, vectors, embedder, config=config, faiss_index=faiss_index, kind=kind, bm25=bm25,
                   path=path, created_at=manifest.created_at)

    def manifest(self) -> Manifest:
        """The manifest describing this index as it is now."""
        return Manifest(
            format_version=FORMAT_VERSION,
            embedding_model=self._embedder.model_id,
            dim=self._dim,
            kind=self._kind,
            count=len(self._chunks),
            chunk_ids=tuple(c.id for c in self._chunks),
            created_at=self._created_at,
            updated_at=_now(),
            corpus_digest=chunk_set_digest(c.id for c in self._chunks),
        )

    def save(self, path: Path | None = None) -> None:
        """Write a new version folder, then switch ``CURRENT`` to it atomically; old versions are removed."""
        target = Path(path) if path is not None else self._path
        if target is None:
            raise RetrievalError("this index has no path to save to")
        VersionedFolder(target).commit(self._write_files)  # files and folders fsynced before the switch
        self._path = target
        logger.info("saved index of %d chunks to %s", len(self._chunks), target)

    def _write_files(self, folder: Path) -> None:
        with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for chunk in self._chunks:
                fh.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        with open(folder / "vectors.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(self._vectors, dtype=np.float32), allow_pickle=False)
        self._bm25.save(folder)
        if self._kind != "flat":  # an exact index is rebuilt from vectors.npy in milliseconds
            write_faiss(to_cpu(self._faiss, self._on_gpu), folder / "faiss.index")
        # The manifest goes last: a folder without one was never completed.
        (folder / "manifest.json").write_text(self.manifest().to_json(), encoding="utf-8")

    def add(self, chunks: Iterable[Chunk], *, show_progress: bool = False, save: bool = True) -> int:
        """Embed and add the chunks not yet present (by id); returns how many were added."""
        new: dict[str, Chunk] = {}
        for chunk in chunks:
            if chunk.id not in self._row:
                new.setdefault(chunk.id, chunk)
        if not new:
            return 0
        added = list(new.values())
        vectors = embed_chunks(self._embedder, added, show_progress)
        if self._dim and vectors.shape[1] != self._dim:
            raise EmbeddingModelMismatchError(
                f"the embedder gives {vectors.shape[1]}-d vectors but the index holds {self._dim}-d ones: rebuild"
            )
        self._chunks.extend(added)
        for i, chunk in enumerate(added, start=len(self._row)):
            self._row[chunk.id] = i
        self._vectors = np.concatenate([np.asarray(self._vectors), vectors], axis=0)
        self._dim = int(self._vectors.shape[1])
        wanted = self._config.resolve_kind(len(self._chunks))
        if wanted != self._kind or self._on_gpu or self._kind == "ivfpq":
            # A new size class, or IVF centroids trained on a smaller corpus: rebuild from stored vectors.
            faiss_index, self._kind = build_faiss(np.ascontiguousarray(self._vectors), wanted, self._config)
            self._faiss, self._on_gpu = to_gpu(faiss_index, self._kind, self._config)
        else:
            self._faiss.add(vectors)
            configure_search(self._faiss, self._config)
        # idf depends on the whole corpus, so BM25 is recomputed once per add (never per query).
        self._bm25 = BM25Index.build([tokenize(c.embed_text) for c in self._chunks])
        self._meta_index = None
        if save and self._path is not None:
            self.save()
        return len(added)

    # -- queries ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def model_id(self) -> str:
        return self._embedder.model_id

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def chunks(self) -> list[Chunk]:
        return list(self._chunks)

    def get(self, chunk_id: str) -> Chunk | None:
        """The chunk with this id, if present."""
        row = self._row.get(chunk_id)
        return self._chunks[row] if row is not None else None

    def stats(self) -> dict[str, Any]:
        """Counts and settings, for ``radassist index stats``."""
        sources = {c.source for c in self._chunks}
        sections = {c.section for c in self._chunks}
        return {
            "path": str(self._path) if self._path else None,
            "chunks": len(self._chunks),
            "sources": len(sources),
            "sections": len(sections),
            "embedding_model": self._embedder.model_id,
            "dim": self._dim,
            "kind": self._kind,
            "gpu": self._on_gpu,
            "created_at": self._created_at,
        }

    def candidate_rows(self, filters: Filters) -> np.ndarray:
        """Rows whose metadata match every filter (a value or any of a list of values)."""
        if self._meta_index is None:
            table: dict[str, dict[str, list[int]]] = {}
            for row, chunk in enumerate(self._chunks):
                for key, value in chunk.metadata.items():
                    table.setdefault(key, {}).setdefault(value, []).append(row)
            self._meta_index = {k: {v: np.asarray(r, np.int64) for v, r in vs.items()} for k, vs in table.items()}
        rows: np.ndarray | None = None
        for key, wanted in filters.items():
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            by_value = self._meta_index.get(key, {})
            parts = [by_value[v] for v in values if v in by_value]
            match = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            rows = match if rows is None else np.intersect1d(rows, match, assume_unique=True)
        return rows if rows is not None else np.arange(len(self._chunks), dtype=np.int64)

    def _matches(self, chunk: Chunk, filters: Filters) -> bool:
        for key, wanted in filters.items():
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            if chunk.metadata.get(key) not in values:
                return False
        return True

    def embed_query(self, query: str) -> np.ndarray:
        """(1, D) unit vector of ``query``; a dimension other than the index's is refused."""
        vector = normalize_rows(np.asarray(self._embedder.embed([query]), dtype=np.float32).reshape(1, -1))
        if self._dim and vector.shape[1] != self._dim:
            raise EmbeddingModelMismatchError(
                f"the embedder gives {vector.shape[1]}-d vectors but the index holds {self._dim}-d ones: rebuild"
            )
        return vector

    def dense_rows(self, qvec: np.ndarray, k: int, candidates: np.ndarray | None = None) -> list[int]:
        """Rows of the ``k`` nearest chunks; among ``candidates`` the search is exact (brute force)."""
        if candidates is not None:
            if len(candidates) == 0:
                return []
            sims = np.asarray(self._vectors[candidates]) @ qvec[0]  # (C,) cosine
            order = np.argsort(-sims, kind="stable")[:k]
            return [int(candidates[i]) for i in order]
        if not self._chunks:
            return []
        _, rows = search_faiss(self._faiss, qvec, min(k, len(self._chunks)), self._config.search_threads)
        return [int(r) for r in rows[0] if r >= 0]

    def search(
        self,
        query: str,
        k: int = 5,
        filters: Filters | None = None,
        *,
        mode: str = "hybrid",
        min_relevance: float | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query`` among those matching ``filters``.

        ``score`` is the RRF score in hybrid mode, the cosine (dense) or BM25 score otherwise;
        ``relevance`` is always the cosine, and hits below ``min_relevance`` are dropped ("no source").
        ``query_vector`` (the query already embedded, e.g. in a batch) skips the embedding step.
        """
        if mode not in MODES:
            raise RetrievalError(f"search mode must be one of {', '.join(MODES)}, got {mode!r}")
        if k < 1:
            raise RetrievalError(f"k must be at least 1, got {k}")
        if not query.strip():
            raise RetrievalError("the query is empty")
        candidates = self.candidate_rows(filters) if filters else None
        if candidates is not None and len(candidates) == 0:
            return []
        if query_vector is None:
            qvec = self.embed_query(query)
        else:
            qvec = normalize_rows(np.asarray(query_vector, dtype=np.float32).reshape(1, -1))
            if self._dim and qvec.shape[1] != self._dim:
                raise EmbeddingModelMismatchError(
                    f"the query vector is {qvec.shape[1]}-d but the index holds {self._dim}-d vectors"
                )
        depth = max(self._config.candidates, k)
        rankings: list[list[int]] = []
        bm25_scores: np.ndarray | None = None
        if mode in ("hybrid", "dense"):
            rankings.append(self.dense_rows(qvec, depth, candidates))
        if mode in ("hybrid", "bm25"):
            tokens = tokenize(query)
            rankings.append(self._bm25.top(tokens, depth, candidates))
            if mode == "bm25":
                bm25_scores = self._bm25.scores(tokens)
        fused = reciprocal_rank_fusion(rankings) if mode == "hybrid" else [(r, 0.0) for r in rankings[0]]
        hits: list[Hit] = []
        for row, rrf in fused:
            chunk = self._chunks[row]
            if filters and not self._matches(chunk, filters):  # defence in depth: never leak across a filter
                logger.error("filter mismatch for chunk %s; dropped", chunk.id)
                continue
            relevance = float(np.asarray(self._vectors[row]) @ qvec[0])
            if min_relevance is not None and relevance < min_relevance:
                continue
            if mode == "hybrid":
                score = rrf
            elif mode == "dense":
                score = relevance
            else:
                score = float(bm25_scores[row]) if bm25_scores is not None else 0.0
            hits.append(Hit.from_chunk(chunk, score, relevance))
            if len(hits) == k:
                break
        return hits
