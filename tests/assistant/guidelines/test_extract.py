"""The deterministic extractor: units, counts, composition, risk words, ask-back, and the evaluation set."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.guidelines import CalculatorInputError, NotApplicableError, calculate, extract_parameters
from assistant.guidelines.extract import detect_calculator, find_sizes
from tests.support.paths import TEST_DATA

EVAL_SET = TEST_DATA / "guideline_questions.jsonl"


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
    if case["expect"] == "concept":
        return  # a question about a category: answered from its section (tests/assistant/modes/test_guideline.py)
    if case["expect"] == "refuse":
        with pytest.raises(CalculatorInputError):
            calculate(name, **extraction.params)
        return
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


# ---------------------------------------------------------------- failure classes of the review (issue 12)


@pytest.mark.parametrize(
    ("question", "size"),
    [
        ("several solid nodules all below 6 mm, never smoker", 5.0),  # whole mm (Fleischner rounds)
        ("solid nodule < 6 mm, nonsmoker", 5.0),
        ("solid nodule <6mm in a non-smoker", 5.0),
        ("multiple solid nodules up to 4 mm, never smoked", 4.0),
        ("solid nodule over 8 mm, high risk", 9.0),
        ("solid nodule measuring 7 mm, low risk", 7.0),
    ],
)
def test_fleischner_comparators_move_the_size_to_the_right_side_of_the_threshold(question: str, size: float) -> None:
    extraction = extract_parameters(question)
    assert extraction.params["size_mm"] == size


@pytest.mark.parametrize(
    "question",
    [
        "solid nodule of at least 8 mm, high risk",  # 6-8 mm or >8 mm: not decided by the words
        "sub-centimetre solid nodule RML, low risk",  # <6, 6-8 or >8 mm
        "baseline LDCT: solid nodule less than 1 cm",  # Lung-RADS 2, 3 or 4A
    ],
)
def test_a_comparator_range_spanning_categories_asks_for_the_size(question: str) -> None:
    extraction = extract_parameters(question)
    assert extraction.missing and extraction.missing[0] in ("size_mm", "mean_diameter_mm")
    assert any("spans more than one category" in n for n in extraction.notes)


def test_below_six_mm_lands_in_the_no_follow_up_row() -> None:
    extraction = extract_parameters("several solid nodules all below 6 mm, never smoker")
    result = calculate("fleischner", **extraction.params)
    assert result.category == "solid multiple <6 mm low risk"
    assert any("read as 5 mm" in n for n in extraction.notes)


def test_lung_rads_comparator_uses_tenths() -> None:
    extraction = extract_parameters("baseline LDCT: solid nodule under 6 mm")
    assert extraction.params["mean_diameter_mm"] == 5.9


def test_lirads_size_is_the_largest_dimension_not_the_mean() -> None:
    extraction = extract_parameters("LI-RADS: 22 x 15 mm observation, nonrim APHE, washout, cirrhosis")
    assert extraction.params["size_mm"] == 22.0


@pytest.mark.parametrize(
    ("question", "calculator"),
    [
        ("TR3? isoechoic, wider-than-tall solid nodule, 1.7 cm, smooth margin", "tirads"),
        ("solid hypoechoic nodule with punctate echogenic foci, 1.2 cm", "tirads"),
        ("spongiform nodule 2 cm", "tirads"),
        ("solid 7 mm nodule in the RUL, smoker", "fleischner"),
        ("homogeneous renal mass of 80 HU on non-contrast CT", "bosniak"),
        ("renal mass enhancing from 30 to 55 HU", "renal"),
        ("benign finding on mammogram", "birads"),
        ("2.5 cm adrenal nodule, 25 HU unenhanced", "adrenal"),
    ],
)
def test_routing_weighs_each_guideline_vocabulary(question: str, calculator: str) -> None:
    assert detect_calculator(question) == calculator


def test_unenhanced_attenuation_is_not_read_as_enhancement() -> None:
    extraction = extract_parameters("homogeneous renal mass of 80 HU on non-contrast CT")
    assert extraction.calculator == "bosniak"
    assert extraction.params["attenuation_hu"] == 80.0
    assert extraction.params["contrast"] is False
    assert "hu_increase" not in extraction.params


def test_a_bare_attenuation_is_no_enhancement_value() -> None:
    extraction = extract_parameters("solid renal mass measuring 40 HU on CT, does it enhance?")
    assert "hu_increase" not in extraction.params


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("renal cyst with a 6 mm thick enhancing septum", {"septa_count": 1, "septa_thickness_mm": 6.0}),
        ("cystic renal mass, four thin septa", {"septa_count": 4, "septa_thickness_mm": 2.0}),
        ("renal cyst with a 5 mm obtuse-margin protrusion", {"protrusion_mm": 5.0, "protrusion_margin": "obtuse"}),
        ("a cyst of the kidney with two 1 mm septa", {"septa_count": 2, "septa_thickness_mm": 1.0}),
    ],
)
def test_bosniak_morphology_in_words(question: str, expected: dict[str, Any]) -> None:
    params = extract_parameters(question).params
    for key, value in expected.items():
        assert params.get(key) == value, key


@pytest.mark.parametrize(
    ("question", "category"),
    [
        ("mammo: incomplete, needs additional views and comparison with old films", "0"),
        ("benign finding on the mammogram, which BI-RADS?", "2"),
        ("probably benign mass on breast ultrasound", "3"),
        ("breast mass highly suggestive of malignancy", "5"),
        ("biopsy-proven malignancy in the left breast, BI-RADS?", "6"),
        ("BI-RADS 4B", "4B"),
    ],
)
def test_birads_descriptions_map_to_categories(question: str, category: str) -> None:
    assert extract_parameters(question).params.get("category") == category


@pytest.mark.parametrize(
    "question",
    [
        "never-smoker with emphysema, solid 7 mm nodule",
        "low risk, 40 pack-years, solid nodule 7 mm",
        "non-smoker but asbestos exposure, 7 mm solid nodule",
    ],
)
def test_contradictory_risk_never_defaults_to_low_and_is_shown(question: str) -> None:
    extraction = extract_parameters(question)
    assert extraction.params["risk"] == "high"
    assert any("Contradictory risk" in n for n in extraction.notes)


@pytest.mark.parametrize(
    "question", ["solid 5 mm nodule, non-smoker", "solid 5 mm nodule, never smoked", "5 mm solid nodule, nonsmoker"]
)
def test_non_smoker_is_not_read_as_smoker(question: str) -> None:
    extraction = extract_parameters(question)
    assert extraction.params["risk"] == "low"
    assert not any("Contradictory" in n for n in extraction.notes)


def test_negated_risk_factor_is_not_a_risk_factor() -> None:
    assert extract_parameters("solid 5 mm nodule, never smoker, no emphysema").params["risk"] == "low"
