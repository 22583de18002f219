from __future__ import annotations

from retrieval.chunking import chunk_text, split_blocks

ROWS = [f"| {i} mm nodule row | follow-up plan number {i} |" for i in range(40)]
TABLE = "| Size | Advice |\n|---|---|\n" + "\n".join(ROWS)


def test_small_text_is_one_chunk() -> None:
    assert chunk_text("One paragraph.\n\nAnother paragraph.") == ["One paragraph.\n\nAnother paragraph."]


def test_table_is_a_single_block() -> None:
    blocks = split_blocks("Intro line.\n\n" + TABLE + "\n\nAfter.")
    assert [b.is_table for b in blocks] == [False, True, False]
    assert blocks[1].text.count("\n") == 41


def test_chunks_never_cut_a_table_row_and_repeat_the_header() -> None:
    chunks = chunk_text("Intro.\n\n" + TABLE, max_chars=300)
    assert len(chunks) > 3
    rows = [line for c in chunks for line in c.splitlines() if line.startswith("| ") and "mm nodule row" in line]
    assert rows == [line for line in TABLE.splitlines() if "mm nodule row" in line]  # every row whole, once
    for c in chunks:
        table_lines = [line for line in c.splitlines() if line.startswith("|")]
        assert all(line.endswith("|") for line in table_lines)
        if table_lines:
            assert table_lines[0] == "| Size | Advice |"
        assert len(c) <= 300


def test_long_paragraph_is_cut_at_sentence_ends() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(100))
    chunks = chunk_text(text, max_chars=200)
    assert all(len(c) <= 200 for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    assert " ".join(chunks) == text
