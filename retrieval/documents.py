"""Typed chunks and hits; a chunk's id is a hash of its content, so citations survive rebuilds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Hex digits kept from the SHA-256 digest: 80 bits, far beyond any corpus size that could collide.
ID_HEX_CHARS = 20


def content_id(source: str, section: str, text: str, identity: Mapping[str, str] | None = None) -> str:
    """A stable id from what a chunk is: its source, section, text and identity metadata."""
    payload = json.dumps(
        [source, section, text, sorted((identity or {}).items())], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage with its provenance; ``metadata`` values are strings (filterable)."""

    id: str
    source: str
    title: str
    section: str
    text: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        source: str,
        title: str,
        section: str,
        text: str,
        metadata: Mapping[str, str] | None = None,
        identity_keys: tuple[str, ...] = (),
    ) -> Chunk:
        """Build a chunk whose id hashes its content plus the metadata named in ``identity_keys``."""
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        identity = {k: meta[k] for k in identity_keys if k in meta}
        return cls(content_id(source, section, text, identity), source, title, section, text, meta)

    @property
    def embed_text(self) -> str:
        """The text that is embedded and indexed: title for context, then the passage."""
        return f"{self.title}\n{self.text}" if self.title else self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "section": self.section,
            "text": self.text,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chunk:
        """The inverse of ``to_dict``."""
        return cls(
            id=str(data["id"]),
            source=str(data["source"]),
            title=str(data["title"]),
            section=str(data["section"]),
            text=str(data["text"]),
            metadata={str(k): str(v) for k, v in dict(data.get("metadata", {})).items()},
        )


@dataclass(frozen=True)
class Hit:
    """A search result: the chunk's fields, the fused ``score`` and the query's cosine ``relevance``."""

    id: str
    source: str
    title: str
    section: str
    text: str
    score: float
    relevance: float
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_chunk(cls, chunk: Chunk, score: float, relevance: float) -> Hit:
        """A hit for ``chunk`` with its scores."""
        return cls(
            chunk.id, chunk.source, chunk.title, chunk.section, chunk.text, score, relevance, chunk.metadata
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape of ``citations`` entries)."""
        return {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "section": self.section,
            "text": self.text,
            "score": round(float(self.score), 6),
            "relevance": round(float(self.relevance), 6),
            "metadata": dict(self.metadata),
        }
