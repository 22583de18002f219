"""The sourced case table (tests/data/guideline_cases): every row holds, is sourced, and the doc is current."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.guideline_cases import (
    DOC,
    ORDER,
    Case,
    load_cases,
    load_sources,
    problems,
    render,
)

CASES = load_cases()
SOURCES = load_sources()


def test_case_table_is_large_and_covers_every_guideline() -> None:
    assert len(CASES) >= 300
    counts = Counter(c.calculator for c in CASES)
    assert set(counts) >= set(ORDER) - {"birads", "renal"}, counts
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case_holds_and_names_its_source(case: Case) -> None:
    assert problems(case, SOURCES) == [], f"{case.file}: {case.rule}"


def test_a_case_asserting_a_category_cannot_lean_on_a_refusal_source() -> None:
    fake = Case("x", "fleischner", {"composition": "solid", "size_mm": 7, "risk": "low"},
                {"category": "solid single 6-8 mm low risk"}, "", "unsourced-refusal", "x")  # fmt: skip
    assert any("not a guideline source" in p for p in problems(fake, SOURCES))


def test_a_wrong_expectation_is_reported() -> None:
    fake = Case("x", "fleischner", {"composition": "solid", "size_mm": 7, "risk": "low"},
                {"category": "solid single <6 mm low risk"}, "", "fleischner-2017", "x")  # fmt: skip
    assert problems(fake, SOURCES)


def test_committed_doc_is_the_rendered_table() -> None:
    assert DOC.read_text(encoding="utf-8") == render(CASES, SOURCES), (
        "docs/guideline-cases.md is stale: run .venv/bin/python -m tests.support.guideline_cases"
    )
