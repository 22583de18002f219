"""The deterministic extractor: units, counts, composition, risk words, ask-back, and the evaluation set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistant.guidelines import NotApplicableError, calculate, extract_parameters
from assistant.guidelines.extract import detect_calculator, find_sizes

EVAL_SET = Path(__file__).resolve().parents[2] / "data" / "guideline_questions.jsonl"


def _cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_evaluation_set_has_at_least_80_calculator_questions() -> None:
    cases = _cases()
    assert sum(c["expect"] == "result" for c in cases) >= 80
    assert len({c["id"] for c in cases}) == len(cases)
    assert {c["calculator"] for c in cases} >= {"fleischner", "lungrads", "tirads", "bosniak", "birads", "lirads"}


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_evaluation_question_is_extracted_and_computed_exactly(case: dict[str, Any]) -> None:
    extraction = extract_parameters(case["question"])
    name = extraction.calculator
    assert name == case["calculator"]
    assert name is not None
    if case["expect"] == "missing":
        assert list(extraction.missing) == case["missing"]
        assert extraction.questions
        return
    if case["expect"] == "not_applicable":
        with pytest.raises(NotApplicableError):
            calculate(name, **extraction.params)
        return
    for key, value in case["inputs"].items():
        assert extraction.params.get(key) == value, key
    assert extraction.complete, extraction.missing
    result = calculate(name, **extraction.params)
    assert result.category == case["expected_category"]


@pytest.mark.parametrize(
    ("text", "mm"),
    [
        ("7mm", 7.0),
        ("7 mm", 7.0),
        ("0.7 cm", 7.0),
        ("1.2cm", 12.0),
        ("7 x 5 mm", 6.0),
        ("7x5mm", 6.0),
        ("0.8 x 0.6 cm", 7.0),
        ("12 x 9 x 10 mm", 11.0),
        ("5 millimeters", 5.0),
    ],
)
def test_find_sizes_units_and_mean_of_axes(text: str, mm: float) -> None:
    sizes = find_sizes(f"nodule {text} in the RUL")
    assert [s.mm for s in sizes] == [mm]


def test_find_sizes_ignores_volumes() -> None:
    assert find_sizes("nodule 120 mm3") == []


@pytest.mark.parametrize(
    ("question", "name"),
    [
        ("fleischner for a 6 mm nodule", "fleischner"),
        ("GGN 8 mm", "fleischner"),
        ("lung rads 4 mm", "lungrads"),
        ("LDCT nodule", "lungrads"),
        ("thyroid nodule", "tirads"),
        ("ACR TI-RADS", "tirads"),
        ("cystic renal mass", "bosniak"),
        ("BIRADS 4", "birads"),
        ("LR-5?", "lirads"),
        ("adrenal 2 cm", "adrenal"),
        ("what is the weather", None),
    ],
)
def test_detect_calculator_names_and_aliases(question: str, name: str | None) -> None:
    assert detect_calculator(question) == name


@pytest.mark.parametrize(
    ("question", "risk"),
    [
        ("7 mm solid nodule, 30 pack-years", "high"),
        ("7 mm solid nodule, current smoker", "high"),
        ("7 mm solid nodule, non-smoker", "low"),
        ("7 mm solid nodule, never smoker", "low"),
        ("7 mm solid nodule, low risk", "low"),
        ("7 mm solid nodule, high-risk", "high"),
        ("7 mm solid nodule", None),
    ],
)
def test_risk_words(question: str, risk: str | None) -> None:
    assert extract_parameters(question).params.get("risk") == risk


@pytest.mark.parametrize(
    ("question", "composition"),
    [
        ("GGN 7 mm", "ground_glass"),
        ("GGO 7 mm", "ground_glass"),
        ("ground glass nodule 7 mm", "ground_glass"),
        ("part-solid nodule 9 mm", "part_solid"),
        ("subsolid nodule 9 mm with 3 mm solid component", "part_solid"),
        ("solid nodule 6 mm", "solid"),
    ],
)
def test_composition_words(question: str, composition: str) -> None:
    assert extract_parameters(question).params.get("composition") == composition


def test_extractor_asks_back_for_missing_risk_and_unknown_guideline() -> None:
    extraction = extract_parameters("single solid 7 mm nodule, follow-up?")
    assert extraction.missing == ("risk",)
    assert extraction.questions == ("Is the patient low or high risk?",)
    assert not extraction.complete
    unknown = extract_parameters("what should I do?")
    assert unknown.calculator is None and unknown.missing == ("calculator",)


def test_extractor_flags_ambiguous_single_subsolid() -> None:
    extraction = extract_parameters("single subsolid nodule 9 mm")
    assert "composition" in extraction.missing
    assert extraction.notes


def test_lirads_negation_is_respected() -> None:
    params = extract_parameters("LI-RADS: 15 mm observation with APHE but no washout and no capsule").params
    assert params["aphe"] == "nonrim" and params["washout"] is False and params["capsule"] is False
