"""Split text into chunks of bounded size; Markdown tables are never cut inside a row."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# all-MiniLM-L6-v2 reads 256 word pieces (~1,000 characters of English); longer text is truncated.
DEFAULT_MAX_CHARS = 1000


@dataclass(frozen=True)
class Block:
    """A paragraph or a whole table."""

    text: str
    is_table: bool


def _is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def split_blocks(text: str) -> list[Block]:
    """Paragraphs (separated by blank lines) and tables (runs of ``|`` lines) in order."""
    blocks: list[Block] = []
    para: list[str] = []
    table: list[str] = []

    def flush_para() -> None:
        if para:
            blocks.append(Block("\n".join(para).strip(), False))
            para.clear()

    def flush_table() -> None:
        if table:
            blocks.append(Block("\n".join(table), True))
            table.clear()

    for raw in text.strip().splitlines():
        line = raw.rstrip()
        if _is_table_line(line):
            flush_para()
            table.append(line.strip())
        elif not line.strip():
            flush_para()
            flush_table()
        else:
            flush_table()
            para.append(line)
    flush_para()
    flush_table()
    return [b for b in blocks if b.text]


def _table_header(lines: list[str]) -> list[str]:
    """The header row and its separator row, if the table has them."""
    if len(lines) >= 2 and set(lines[1].replace("|", "").replace(" ", "")) <= set("-:"):
        return lines[:2]
    return []


def _split_table(block: Block, max_chars: int) -> Iterator[str]:
    """Pieces of an oversized table, each made of whole rows and repeating the header."""
    lines = block.text.splitlines()
    header = _table_header(lines)
    rows = lines[len(header):]
    piece: list[str] = []
    for row in rows:
        candidate = "\n".join(header + piece + [row])
        if piece and len(candidate) > max_chars:
            yield "\n".join(header + piece)
            piece = []
        piece.append(row)
    if piece:
        yield "\n".join(header + piece)


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def _split_paragraph(text: str, max_chars: int) -> Iterator[str]:
    """Pieces of an oversized paragraph, cut at sentence ends, else at spaces."""
    piece = ""
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        while len(sentence) > max_chars:  # one enormous sentence: cut at the last space that fits
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            if piece:
                yield piece
                piece = ""
            yield sentence[:cut].strip()
            sentence = sentence[cut:].strip()
        candidate = f"{piece} {sentence}".strip()
        if piece and len(candidate) > max_chars:
            yield piece
            piece = sentence
        else:
            piece = candidate
    if piece:
        yield piece


def chunk_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Pack blocks greedily into chunks of at most ``max_chars`` (a table row is never cut)."""
    if max_chars < 100:
        raise ValueError(f"max_chars must be at least 100, got {max_chars}")
    pieces: list[str] = []
    for block in split_blocks(text):
        if len(block.text) <= max_chars:
            pieces.append(block.text)
        elif block.is_table:
            pieces.extend(_split_table(block, max_chars))
        else:
            pieces.extend(_split_paragraph(block.text, max_chars))
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}\n\n{piece}" if current else piece
        if current and len(candidate) > max_chars:
            chunks.append(current)
            current = piece
        else:
            current = candidate
    if current:
        chunks.append(current)
    return chunks
