"""FAISS indexes over unit vectors (inner product = cosine): exact, HNSW or IVF-PQ, chosen by size."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.errors import RetrievalError

logger = logging.getLogger(__name__)

KINDS = ("auto", "flat", "hnsw", "ivfpq")


@dataclass(frozen=True)
class IndexConfig:
    """How the dense index is built and searched; ``kind="auto"`` picks exact search for small corpora."""

    kind: str = "auto"
    # Up to this many vectors "auto" stays exact (recall 1.0): bench/bench_retrieval.py measured exact
    # single-query search at 100k 384-d vectors at a few ms on a 2-core machine (docs/benchmarks.md).
    flat_max: int = 200_000
    # Above this "auto" uses IVF-PQ (memory), between flat_max and here HNSW (speed, recall).
    hnsw_max: int = 2_000_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96
    ivf_nlist: int | None = None  # None: about 4 * sqrt(n), the FAISS wiki's rule of thumb
    ivf_nprobe: int = 32
    pq_m: int = 48  # 384 / 48 = 8 dimensions per sub-quantiser
    pq_bits: int = 8
    ivfpq_refine: bool = True  # re-rank IVF-PQ candidates on the exact vectors
    refine_factor: int = 4
    use_gpu: bool = True  # only acts when the installed faiss has GPUs
    # OpenMP threads for one query. 1: on a busy 2-core machine a single exact query over 100k vectors took
    # 5.9 ms with 1 thread and 40 ms with 2 (spin-waiting threads); builds keep every core.
    search_threads: int | None = 1
    candidates: int = 50  # per retriever before fusion

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RetrievalError(f"index kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name in ("flat_max", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe", "pq_m",
                     "refine_factor", "candidates"):
            if getattr(self, name) < 1:
                raise RetrievalError(f"{name} must be at least 1, got {getattr(self, name)}")

    def resolve_kind(self, n: int) -> str:
        """The concrete kind for a corpus of ``n`` vectors."""
        if self.kind != "auto":
            return self.kind
        if n <= self.flat_max:
            return "flat"
        return "hnsw" if n <= self.hnsw_max else "ivfpq"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise RetrievalError("faiss is not installed: pip install faiss-cpu (or faiss-gpu)") from exc
    return faiss


def gpu_count() -> int:
    """Number of GPUs the installed faiss can use (0 for faiss-cpu)."""
    faiss = _faiss()
    getter = getattr(faiss, "get_num_gpus", None)
    return int(getter()) if getter is not None else 0


def build_faiss(vectors: np.ndarray, kind: str, config: IndexConfig) -> tuple[Any, str]:
    """A trained, filled CPU index for (N, D) unit ``vectors``, and the kind actually built."""
    faiss = _faiss()
    n, dim = vectors.shape
    if kind == "ivfpq":
        nlist = config.ivf_nlist or max(1, int(4 * math.sqrt(max(n, 1))))
        # k-means wants ~39 training points per centroid (FAISS warns below that); PQ wants 256 per code.
        if n < max(39 * nlist, 2 ** config.pq_bits * 4) or dim % config.pq_m:
            logger.warning("ivfpq needs more vectors (%d given) or dim divisible by pq_m; using flat", n)
            kind = "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
    elif kind == "ivfpq":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, config.pq_m, config.pq_bits, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        if config.ivfpq_refine:
            index = faiss.IndexRefineFlat(index)
    else:
        raise RetrievalError(f"unknown index kind {kind!r}")
    if n:
        index.add(vectors)
    configure_search(index, config)
    return index, kind


def configure_search(index: Any, config: IndexConfig) -> None:
    """Set the search-time knobs (efSearch, nprobe, refine factor) from ``config``."""
    faiss = _faiss()
    base = index
    if isinstance(index, faiss.IndexRefineFlat):
        index.k_factor = float(config.refine_factor)
        base = faiss.downcast_index(index.base_index)
    if hasattr(base, "hnsw"):
        base.hnsw.efSearch = config.hnsw_ef_search
    if hasattr(base, "nprobe"):
        base.nprobe = config.ivf_nprobe


def to_gpu(index: Any, kind: str, config: IndexConfig) -> tuple[Any, bool]:
    """The index moved to all GPUs when asked for and possible (HNSW stays on the CPU)."""
    if not config.use_gpu or kind == "hnsw" or gpu_count() == 0:
        return index, False
    faiss = _faiss()
    try:
        return faiss.index_cpu_to_all_gpus(index), True
    except RuntimeError as exc:  # e.g. an index type without a GPU implementation
        logger.warning("keeping the %s index on the CPU: %s", kind, exc)
        return index, False


def to_cpu(index: Any, on_gpu: bool) -> Any:
    """A CPU copy for saving."""
    return _faiss().index_gpu_to_cpu(index) if on_gpu else index


def write_faiss(index: Any, path: Path) -> None:
    """Write ``index`` to ``path``."""
    _faiss().write_index(index, str(path))


def read_faiss(path: Path, config: IndexConfig) -> Any:
    """Read an index written by ``write_faiss`` and apply the search knobs."""
    try:
        index = _faiss().read_index(str(path))
    except RuntimeError as exc:
        raise RetrievalError(f"the vector index {path} is unreadable: {exc}") from exc
    configure_search(index, config)
    return index


def search_faiss(
    index: Any, query: np.ndarray, k: int, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the ``k`` nearest rows for (Q, D) ``query``; missing results have row -1."""
    faiss = _faiss()
    previous = faiss.omp_get_max_threads()
    if threads is not None:
        faiss.omp_set_num_threads(threads)
    try:
        scores, rows = index.search(np.ascontiguousarray(query, dtype=np.float32), k)
    finally:
        if threads is not None:
            faiss.omp_set_num_threads(previous)
    return scores, rows
