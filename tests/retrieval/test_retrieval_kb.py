"""The knowledge base shipped as data: provenance on every section, stable ids, tables kept whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from retrieval import KnowledgeBase, RetrievalError
from retrieval.kb import parse_guideline

GUIDELINES = {
    "fleischner-2017", "lung-rads-2022", "bi-rads-5", "ti-rads-2017", "bosniak-2019", "li-rads-2018",
    "acr-adrenal-2017", "acr-renal-2018",
}
# Section ids the guideline calculators (assistant/guidelines) cite; each must resolve here.
CALCULATOR_IDS = [
    "fleischner-2017/solid-single", "fleischner-2017/subsolid-single-part-solid", "lung-rads-2022/category-4x",
    "ti-rads-2017/tr3", "bi-rads-5/category-4c", "bosniak-2019/class-iif", "li-rads-2018/lr-4",
    "acr-adrenal-2017/indeterminate-no-prior-imaging", "acr-adrenal-2017/large-mass", "acr-renal-2018/enhancement",
]


def test_every_guideline_is_present_with_bibliographic_source(kb: KnowledgeBase) -> None:
    assert {g.id for g in kb.guidelines} == GUIDELINES
    for g in kb.guidelines:
        assert g.version and re.search(r"(19|20)\d\d", g.source), g.id


def test_section_ids_have_the_shared_form_and_carry_provenance(kb: KnowledgeBase) -> None:
    for section in kb:
        assert re.fullmatch(r"[a-z0-9-]+-[0-9v]+/[a-z0-9-]+", section.id), section.id
        assert section.title and section.locator and section.source and section.version
    for section_id in CALCULATOR_IDS:
        assert kb.section(section_id).id == section_id


def test_unverified_content_is_visibly_marked(kb: KnowledgeBase) -> None:
    for section in kb:
        assert "[U]" not in section.text
        if section.verification == "unverified":
            assert "UNVERIFIED" in section.text and "UNVERIFIED" in section.title


def test_chunks_keep_tables_whole_and_cite_their_section(kb: KnowledgeBase) -> None:
    chunks = kb.chunks()
    assert {c.section for c in chunks} == set(kb.section_ids())
    for chunk in chunks:
        for line in chunk.text.splitlines():
            if line.startswith("|"):
                assert line.endswith("|"), chunk.section
        assert chunk.metadata["corpus"] == "guidelines" and chunk.metadata["guideline"] in GUIDELINES
    table = kb.section("li-rads-2018/diagnostic-table").chunks()
    assert len(table) == 1
    assert sum(line.startswith("| ") for line in table[0].text.splitlines()) == 4  # header + 3 rows
    assert "| Two or more | LR-4 | LR-4 | LR-4 | LR-5 | LR-5 |" in table[0].text


def test_chunk_ids_are_stable_between_loads(kb: KnowledgeBase) -> None:
    assert [c.id for c in kb.chunks()] == [c.id for c in KnowledgeBase.load_default().chunks()]


def test_malformed_guideline_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="not valid TOML"):
        parse_guideline("id = ", "bad.toml")
    with pytest.raises(RetrievalError, match="missing or empty field 'source'"):
        parse_guideline('id = "x-1"\nname = "X"\nshort_name = "X"\nversion = "1"\n', "nosource.toml")
    with pytest.raises(RetrievalError, match=r"no guideline files"):
        KnowledgeBase.from_dir(tmp_path)
