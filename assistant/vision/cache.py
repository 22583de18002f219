"""Image embeddings cached by image content, so every turn of a conversation can re-send its images cheaply.

The key is a hash of the rendering's pixels (and shape), combined with the fingerprint of the encoder and
projector that produced the entry: the same picture under another model is another entry. An entry keeps the
projected embeddings *already serialised* as the base64 payload vLLM wants, so a follow-up turn costs a dict
lookup, not an encoder pass or a ``torch.save``. Memory is bounded (least recently used entries go first).

The content hash never leaves the process: anyone holding the image can recompute it. What is stored or audited
is its keyed pseudonym (``VisionService.audit_key``: HMAC-SHA-256 under the de-identification salt).

Public names: ``image_key(rendering)``, ``serialize_embeds(tensor)``, ``CachedEmbedding``, ``EmbeddingCache``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# Hex digits of the BLAKE2b digest kept as the image id: 128 bits, no collision in any realistic archive.
KEY_HEX_CHARS = 32
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: ~70 LLaVA-v1.5-7B images (576 x 4096 bf16 = 4.5 MiB + base64 6 MiB each)


def image_key(rendering: np.ndarray) -> str:
    """A content hash of an 8-bit rendering (pixels, shape and dtype): equal pictures, equal keys."""
    array = np.ascontiguousarray(rendering)
    digest = hashlib.blake2b(digest_size=KEY_HEX_CHARS // 2)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.view(np.uint8).reshape(-1).data)  # the raw bytes, no copy
    return digest.hexdigest()


def serialize_embeds(tensor: torch.Tensor) -> str:
    """Base64 of ``torch.save(tensor)``: the ``image_embeds`` payload of vLLM's chat API."""
    import torch

    buffer = io.BytesIO()
    torch.save(tensor.detach().cpu().contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True, eq=False)
class CachedEmbedding:
    """One image's projected embeddings, their serialised payload and its pooled vector."""

    key: str
    embeds: torch.Tensor  # (T, H) in the dtype sent to the server
    payload: str  # base64 torch.save of ``embeds``
    pooled: np.ndarray  # (D,) float32, L2-normalised

    @property
    def tokens(self) -> int:
        return int(self.embeds.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.embeds.numel() * self.embeds.element_size()) + len(self.payload) + int(self.pooled.nbytes)


# ((T, H) embeddings, (D,) pooled) per image, optionally with the payload to send (default: torch.save of the embeds)
Compute = Callable[[Sequence[np.ndarray]], Sequence[tuple[Any, ...]]]


class EmbeddingCache:
    """A bounded, thread-safe LRU of :class:`CachedEmbedding` keyed by (model fingerprint, image key)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], CachedEmbedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, fingerprint: str, key: str) -> CachedEmbedding | None:
        """The entry for an image under a model, marked as recently used; None when absent."""
        with self._lock:
            entry = self._entries.get((fingerprint, key))
            if entry is not None:
                self._entries.move_to_end((fingerprint, key))
            return entry

    def put(self, fingerprint: str, entry: CachedEmbedding) -> None:
        """Store ``entry``, evicting the least recently used entries beyond ``max_bytes``."""
        with self._lock:
            old = self._entries.pop((fingerprint, entry.key), None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[(fingerprint, entry.key)] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
                logger.debug("image embedding cache: evicted one entry (%d bytes)", evicted.nbytes)

    def get_or_compute(
        self, fingerprint: str, renderings: Sequence[np.ndarray], compute: Compute, keys: Sequence[str] | None = None
    ) -> list[CachedEmbedding]:
        """Entries for ``renderings`` in order; the missing ones computed together in one ``compute`` call.

        ``compute`` gets the renderings not cached yet and returns ((T, H) embeddings, (D,) pooled) for each.
        The same picture twice in one call is computed once.
        """
        keys = list(keys) if keys is not None else [image_key(r) for r in renderings]
        if len(keys) != len(renderings):
            raise ValueError(f"got {len(keys)} keys for {len(renderings)} renderings")
        found: dict[str, CachedEmbedding] = {}
        todo: dict[str, np.ndarray] = {}
        for key, rendering in zip(keys, renderings, strict=True):
            if key in found or key in todo:
                continue
            entry = self.get(fingerprint, key)
            if entry is None:
                todo[key] = rendering
            else:
                found[key] = entry
        self.hits += len(found)
        self.misses += len(todo)
        if todo:
            results = compute(list(todo.values()))
            if len(results) != len(todo):
                raise ValueError(f"compute returned {len(results)} results for {len(todo)} images")
            for key, result in zip(todo, results, strict=True):
                embeds: torch.Tensor = result[0]
                pooled: np.ndarray = result[1]
                given = result[2] if len(result) > 2 else None  # a family's own payload (Qwen2.5-VL: embeds + grid)
                payload = given if isinstance(given, str) else serialize_embeds(embeds)
                entry = CachedEmbedding(key=key, embeds=embeds, payload=payload, pooled=pooled)
                self.put(fingerprint, entry)
                found[key] = entry
        return [found[key] for key in keys]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
