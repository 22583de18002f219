"""The guideline knowledge base: data files written by the project, one per guideline, as sections."""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from retrieval.chunking import DEFAULT_MAX_CHARS, chunk_text
from retrieval.documents import Chunk
from retrieval.errors import RetrievalError

logger = logging.getLogger(__name__)

CORPUS = "guidelines"
VERIFICATION = ("confirmed", "partly", "unverified")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Section:
    """One citable section of a guideline; ``id`` is ``<guideline>-<version>/<slug>``."""

    id: str
    guideline_id: str
    guideline: str
    short_name: str
    version: str
    title: str
    locator: str
    source: str
    verification: str
    text: str

    def chunks(self, max_chars: int = DEFAULT_MAX_CHARS) -> list[Chunk]:
        """The section as chunks (tables whole); every chunk carries the section's provenance."""
        pieces = chunk_text(self.text, max_chars)
        meta = {
            "corpus": CORPUS,
            "guideline": self.guideline_id,
            "guideline_name": self.guideline,
            "version": self.version,
            "locator": self.locator,
            "verification": self.verification,
        }
        title = f"{self.short_name}: {self.title}"
        return [
            Chunk.create(self.source, title, self.id, piece, {**meta, "part": str(i + 1), "parts": str(len(pieces))})
            for i, piece in enumerate(pieces)
        ]


@dataclass(frozen=True)
class Guideline:
    """A guideline's identity and its sections."""

    id: str
    name: str
    short_name: str
    version: str
    source: str
    sections: tuple[Section, ...]


def _require(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RetrievalError(f"{where}: missing or empty field {key!r}")
    return value.strip()


def parse_guideline(text: str, where: str = "<string>") -> Guideline:
    """Parse one guideline data file (TOML: id, name, short_name, version, source, [[sections]])."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RetrievalError(f"{where} is not valid TOML: {exc}") from exc
    gid = _require(data, "id", where)
    if not _ID.match(gid):
        raise RetrievalError(f"{where}: guideline id {gid!r} must be lower-case words joined by '-'")
    name, short, version, source = (_require(data, k, where) for k in ("name", "short_name", "version", "source"))
    sections: list[Section] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("sections", [])):
        at = f"{where} section {i + 1}"
        slug = _require(raw, "slug", at)
        if not _ID.match(slug) or slug in seen:
            raise RetrievalError(f"{at}: slug {slug!r} is malformed or repeated")
        seen.add(slug)
        verification = raw.get("verification", "unverified")
        if verification not in VERIFICATION:
            raise RetrievalError(f"{at}: verification must be one of {VERIFICATION}, got {verification!r}")
        sections.append(
            Section(
                id=f"{gid}/{slug}",
                guideline_id=gid,
                guideline=name,
                short_name=short,
                version=version,
                title=_require(raw, "title", at),
                locator=_require(raw, "locator", at),
                source=str(raw.get("source", source)).strip(),
                verification=verification,
                text=_require(raw, "text", at),
            )
        )
    if not sections:
        raise RetrievalError(f"{where}: the guideline {gid!r} has no sections")
    return Guideline(gid, name, short, version, source, tuple(sections))


class KnowledgeBase:
    """All guidelines, addressable by section id."""

    def __init__(self, guidelines: Iterable[Guideline]) -> None:
        self._guidelines = tuple(guidelines)
        self._sections: dict[str, Section] = {}
        for guideline in self._guidelines:
            for section in guideline.sections:
                if section.id in self._sections:
                    raise RetrievalError(f"section id {section.id!r} appears twice in the knowledge base")
                self._sections[section.id] = section

    @classmethod
    def load_default(cls) -> KnowledgeBase:
        """The knowledge base shipped inside the package (``retrieval/data/*.toml``)."""
        folder = resources.files("retrieval").joinpath("data")
        guidelines = [
            parse_guideline(entry.read_text(encoding="utf-8"), f"retrieval/data/{entry.name}")
            for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".toml")
        ]
        return cls(guidelines)

    @classmethod
    def from_dir(cls, folder: Path) -> KnowledgeBase:
        """A knowledge base from every ``*.toml`` file in ``folder``."""
        files = sorted(Path(folder).glob("*.toml"))
        if not files:
            raise RetrievalError(f"no guideline files (*.toml) in {folder}")
        return cls(parse_guideline(f.read_text(encoding="utf-8"), str(f)) for f in files)

    @property
    def guidelines(self) -> tuple[Guideline, ...]:
        return self._guidelines

    def __iter__(self) -> Iterator[Section]:
        return iter(self._sections.values())

    def __len__(self) -> int:
        return len(self._sections)

    def section_ids(self) -> list[str]:
        """Every section id, in file order."""
        return list(self._sections)

    def section(self, section_id: str) -> Section:
        """The section with this id."""
        try:
            return self._sections[section_id]
        except KeyError:
            raise RetrievalError(f"no knowledge-base section {section_id!r}") from None

    def chunks(self, max_chars: int = DEFAULT_MAX_CHARS) -> list[Chunk]:
        """Every section as chunks, ready for ``HybridIndex.build``."""
        return [chunk for section in self for chunk in section.chunks(max_chars)]
