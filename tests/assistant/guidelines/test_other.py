"""Bosniak 2019, BI-RADS, LI-RADS v2018 and the ACR adrenal/renal rules: table rows, boundaries, errors."""

from __future__ import annotations

import dataclasses

import pytest

from assistant.guidelines import (
    SECTION_IDS,
    CalculatorInputError,
    MissingParameterError,
    NotApplicableError,
    adrenal,
    birads,
    bosniak,
    calculate,
    lirads,
    renal_enhancement,
)
from assistant.guidelines.common import round_half_up
from tests.support.guideline_cases import Case, load_cases, load_sources, problems

# ---------------------------------------------------------------- Bosniak

BOSNIAK = [
    ({"modality": "ct", "wall_thickness_mm": 1, "attenuation_hu": 5}, "I"),
    ({"modality": "ct", "attenuation_hu": -9}, "I"),
    ({"modality": "ct", "attenuation_hu": 20}, "I"),
    ({"modality": "mri", "wall_thickness_mm": 1, "t2_csf_like": True}, "I"),
    ({"modality": "ct", "wall_thickness_mm": 2, "septa_count": 2, "septa_thickness_mm": 1}, "II"),
    ({"modality": "ct", "septa_count": 3, "septa_thickness_mm": 2}, "II"),
    ({"modality": "ct", "calcification": True, "attenuation_hu": 15}, "II"),
    ({"modality": "ct", "attenuation_hu": 70, "contrast": False}, "II"),
    ({"modality": "mri", "t2_csf_like": True, "contrast": False}, "II"),
    ({"modality": "mri", "t1_markedly_hyperintense": True}, "II"),
    ({"modality": "ct", "wall_thickness_mm": 3}, "IIF"),
    ({"modality": "ct", "septa_count": 2, "septa_thickness_mm": 3}, "IIF"),
    ({"modality": "ct", "septa_count": 4, "septa_thickness_mm": 2}, "IIF"),
    ({"modality": "mri", "t1_heterogeneous_hyperintense": True}, "IIF"),
    ({"modality": "ct", "wall_thickness_mm": 4}, "III"),
    ({"modality": "ct", "septa_count": 1, "septa_thickness_mm": 4}, "III"),
    ({"modality": "ct", "protrusion_mm": 3, "protrusion_margin": "obtuse"}, "III"),
    ({"modality": "ct", "protrusion_mm": 4, "protrusion_margin": "obtuse"}, "IV"),
    ({"modality": "mri", "protrusion_mm": 2, "protrusion_margin": "acute"}, "IV"),
]


@pytest.mark.parametrize(("kwargs", "cls"), BOSNIAK)
def test_bosniak_classes(kwargs: dict[str, object], cls: str) -> None:
    result = bosniak(**kwargs)  # type: ignore[arg-type]
    assert result.category == cls
    assert result.section_id == f"bosniak-2019/class-{cls.lower()}"


@pytest.mark.parametrize(
    ("wall", "cls"), [(2, "I"), (2.4, "I"), (2.5, "IIF"), (3, "IIF"), (3.4, "IIF"), (3.5, "III"), (4, "III")]
)
def test_bosniak_wall_thickness_boundaries_round_to_whole_mm(wall: float, cls: str) -> None:
    assert bosniak("ct", wall, attenuation_hu=10).category == cls


def test_bosniak_management_text() -> None:
    assert "no follow-up" in bosniak("ct", 1, attenuation_hu=0).recommendation
    iif = bosniak("ct", 3)
    assert "Imaging follow-up" in iif.recommendation and iif.malignancy_risk == "roughly 10% malignant"
    assert bosniak("ct", 4).malignancy_risk == "about 50% malignant"
    assert bosniak("ct", protrusion_mm=5, protrusion_margin="obtuse").malignancy_risk == "about 90% malignant"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"modality": "pet"}, "modality"),
        ({"modality": "ct", "wall_thickness_mm": -1}, "wall_thickness_mm"),
        ({"modality": "ct", "septa_count": -1}, "septa_count"),
        ({"modality": "ct", "septa_count": 2}, "septa_thickness_mm"),
        ({"modality": "ct", "septa_thickness_mm": 2}, "septa_thickness_mm"),
        ({"modality": "ct", "t2_csf_like": True}, "modality"),
        ({"modality": "mri", "attenuation_hu": 10}, "attenuation_hu"),
        ({"modality": "ct", "protrusion_mm": 3}, "protrusion_margin"),
        ({"modality": "ct", "wall_thickness_mm": 5, "enhancing": False}, "enhancing"),
        ({"modality": "ct", "attenuation_hu": 45}, "attenuation_hu"),  # class II sub-types: unverified
    ],
)
def test_bosniak_rejects_invalid_contradictory_or_uncovered_inputs(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(CalculatorInputError, match=argument):
        bosniak(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- BI-RADS

BIRADS = [
    ("0", None, "Recall for additional imaging"),
    ("1", "essentially 0%", "Routine screening"),
    ("2", "essentially 0%", "Routine screening"),
    ("3", ">0% and <=2%", "Short-interval (6-month) follow-up"),
    ("4", ">2% and <95%", "Tissue diagnosis"),
    ("4A", ">2% to <=10%", "Tissue diagnosis"),
    ("4B", ">10% to <=50%", "Tissue diagnosis"),
    ("4C", ">50% to <95%", "Tissue diagnosis"),
    ("5", ">=95%", "Tissue diagnosis"),
    ("6", None, "Surgical excision when clinically appropriate"),
]


@pytest.mark.parametrize(("category", "risk", "management"), BIRADS)
def test_birads_table(category: str, risk: str | None, management: str) -> None:
    result = birads(category)
    assert result.category == category
    assert result.malignancy_risk == risk
    assert management in result.recommendation
    assert result.section_id == f"bi-rads-5/category-{category.lower()}"


@pytest.mark.parametrize("spelling", ["4a", "BI-RADS 4A", "birads 4a", " 4A "])
def test_birads_accepts_spellings(spelling: str) -> None:
    assert birads(spelling).category == "4A"
    assert birads(3).category == "3"


@pytest.mark.parametrize("bad", ["7", "4D", "", "x", True])
def test_birads_rejects_unknown_category(bad: object) -> None:
    with pytest.raises(CalculatorInputError, match="category"):
        birads(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- LI-RADS

LIRADS = [
    # size, aphe, washout, capsule, growth, category, verified
    (15, "none", False, False, False, "LR-3", False),
    (15, "none", True, False, False, "LR-3", False),
    (15, "none", True, True, False, "LR-4", False),
    (25, "none", False, False, False, "LR-3", False),
    (25, "none", True, False, False, "LR-4", False),
    (25, "none", True, True, True, "LR-4", False),
    (8, "nonrim", False, False, False, "LR-3", False),
    (8, "nonrim", True, False, False, "LR-4", False),
    (8, "nonrim", True, True, False, "LR-4", False),
    (15, "nonrim", False, False, False, "LR-3", False),
    (15, "nonrim", False, True, False, "LR-4", False),
    (15, "nonrim", True, False, False, "LR-5", True),
    (15, "nonrim", False, False, True, "LR-5", True),
    (15, "nonrim", True, True, False, "LR-5", True),
    (25, "nonrim", False, False, False, "LR-4", False),
    (25, "nonrim", False, True, False, "LR-5", True),
    (25, "nonrim", True, True, True, "LR-5", True),
]


@pytest.mark.parametrize(("size", "aphe", "washout", "capsule", "growth", "category", "verified"), LIRADS)
def test_lirads_diagnostic_table(
    size: float, aphe: str, washout: bool, capsule: bool, growth: bool, category: str, verified: bool
) -> None:
    result = lirads(size, aphe, washout=washout, capsule=capsule, threshold_growth=growth)
    assert result.category == category
    assert result.unverified is (not verified)
    assert result.section_id == f"li-rads-2018/{category.lower()}"


@pytest.mark.parametrize(("size", "category"), [(9.9, "LR-4"), (10, "LR-5"), (19.9, "LR-5"), (20, "LR-5")])
def test_lirads_size_boundaries_with_washout(size: float, category: str) -> None:
    assert lirads(size, "nonrim", washout=True).category == category
    assert lirads(19.9, "none", washout=True).category == "LR-3"
    assert lirads(20, "none", washout=True).category == "LR-4"


def test_lirads_errors() -> None:
    # Rim APHE is a targetoid feature: LR-M (it used to be refused here; LI-RADS v2018 assigns LR-M).
    assert lirads(20, "rim").category == "LR-M"
    with pytest.raises(NotApplicableError, match="not at high risk"):
        lirads(20, "nonrim", washout=True, population="not_at_risk")
    with pytest.raises(CalculatorInputError, match="size_mm"):
        lirads(-5, "nonrim")
    with pytest.raises(CalculatorInputError, match="washout"):
        lirads(12, "nonrim", washout="yes")  # type: ignore[arg-type]
    with pytest.raises(MissingParameterError, match="aphe"):
        lirads(12, None)


# ---------------------------------------------------------------- adrenal and renal

ADRENAL = [
    ({"size_cm": 0.9}, "no further workup", "acr-adrenal-2017/small-mass", False),
    (
        {"size_cm": 2.5, "benign_feature": "myelolipoma"},
        "benign, no follow-up",
        "acr-adrenal-2017/benign-features",
        False,
    ),
    ({"size_cm": 2.5, "unenhanced_hu": 10}, "benign, no follow-up", "acr-adrenal-2017/benign-features", False),
    (
        {"size_cm": 2.5, "unenhanced_hu": 25, "prior_imaging": "stable_1y"},
        "indeterminate, stable",
        "acr-adrenal-2017/indeterminate-prior-imaging",
        False,
    ),
    (
        {"size_cm": 2.5, "prior_imaging": "new_or_enlarging", "cancer_history": False},
        "indeterminate, new or enlarging",
        "acr-adrenal-2017/indeterminate-prior-imaging",
        False,
    ),
    (
        {"size_cm": 1.0, "prior_imaging": "none", "cancer_history": False},
        "indeterminate, probably benign",
        "acr-adrenal-2017/indeterminate-no-prior-imaging",
        False,
    ),
    (
        {"size_cm": 1.9, "prior_imaging": "none", "cancer_history": False},
        "indeterminate, probably benign",
        "acr-adrenal-2017/indeterminate-no-prior-imaging",
        False,
    ),
    (
        {"size_cm": 2.0, "prior_imaging": "none", "cancer_history": False},
        "indeterminate, adrenal CT or MRI",
        "acr-adrenal-2017/indeterminate-no-prior-imaging",
        True,
    ),
    # >=4 cm without benign features, no cancer history: surgical evaluation (confirmed, guideline_facts.md s9).
    (
        {"size_cm": 4.0, "cancer_history": False},
        "large, surgical evaluation",
        "acr-adrenal-2017/large-mass",
        False,
    ),
]
# The former case "3 cm, 30 HU, absolute washout 60% -> benign, no follow-up (unverified)" turned an unconfirmed
# washout threshold into "no follow-up"; washout input is now refused (tests/assistant/guidelines/
# test_adrenal.py).


@pytest.mark.parametrize(("kwargs", "category", "section", "unverified"), ADRENAL)
def test_adrenal_rules(kwargs: dict[str, object], category: str, section: str, unverified: bool) -> None:
    result = adrenal(**kwargs)  # type: ignore[arg-type]
    assert (result.category, result.section_id, result.unverified) == (category, section, unverified)


def test_adrenal_new_mass_with_cancer_history_and_scope() -> None:
    result = adrenal(2.5, prior_imaging="new", cancer_history=True)
    assert "consider biopsy or PET/CT" in result.recommendation
    with pytest.raises(NotApplicableError, match="under 18"):
        adrenal(2.5, age=16)
    with pytest.raises(MissingParameterError, match="prior_imaging"):
        adrenal(2.5, unenhanced_hu=30)
    with pytest.raises(CalculatorInputError, match="size_cm"):
        adrenal(-1)
    with pytest.raises(CalculatorInputError, match="relative_washout_pct"):
        adrenal(2.5, relative_washout_pct=140)


@pytest.mark.parametrize(
    ("kwargs", "category"),
    [
        ({"modality": "ct", "hu_increase": 20}, "enhancing"),
        ({"modality": "ct", "hu_increase": 19.9}, "equivocal"),
        ({"modality": "ct", "hu_increase": 10.1}, "equivocal"),
        ({"modality": "ct", "hu_increase": 10}, "non-enhancing"),
        ({"modality": "mri", "signal_increase_pct": 15}, "enhancing"),
        ({"modality": "mri", "signal_increase_pct": 14}, "no definite enhancement"),
        ({"modality": "mri", "subtraction_enhancement": True}, "enhancing"),
    ],
)
def test_renal_enhancement_thresholds(kwargs: dict[str, object], category: str) -> None:
    assert renal_enhancement(**kwargs).category == category  # type: ignore[arg-type]


def test_renal_enhancement_rejects_mixed_modalities() -> None:
    with pytest.raises(CalculatorInputError, match="modality"):
        renal_enhancement("ct", signal_increase_pct=20)


# ---------------------------------------------------------------- common


def test_result_is_frozen_and_serialisable() -> None:
    result = calculate("birads", category="3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.category = "4"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.inputs["category"] = "4"  # type: ignore[index]
    assert result.to_dict()["section_id"] in SECTION_IDS


def test_calculate_names_unknown_calculator_and_keyword() -> None:
    with pytest.raises(CalculatorInputError, match="name"):
        calculate("nope")
    with pytest.raises(CalculatorInputError, match="colour"):
        calculate("birads", category="3", colour="red")


@pytest.mark.parametrize(
    ("value", "digits", "expected"), [(5.5, 0, 6), (6.5, 0, 7), (8.45, 1, 8.5), (5.95, 1, 6.0), (2.4999, 0, 2)]
)
def test_round_half_up_is_not_bankers_rounding(value: float, digits: int, expected: float) -> None:
    assert round_half_up(value, digits) == expected


# ---------------------------------------------------------------- Bosniak 2019: class II CT sub-types, IIF schedule


@pytest.mark.parametrize(
    ("kwargs", "cls"),
    [
        # homogeneous -9 to 20 HU at noncontrast CT -> II (simple fluid on contrast-enhanced CT is I)
        ({"unenhanced_hu": -9}, "II"),
        ({"unenhanced_hu": 20}, "II"),
        ({"enhanced_hu": -9}, "I"),
        ({"enhanced_hu": 20}, "I"),
        # homogeneous 21-30 HU at portal venous phase CT -> II
        ({"enhanced_hu": 20.1}, "II"),
        ({"enhanced_hu": 21}, "II"),
        ({"enhanced_hu": 29.9}, "II"),
        ({"enhanced_hu": 30}, "II"),
        # homogeneous >=70 HU at noncontrast CT -> II (attenuation, not enhancement)
        ({"unenhanced_hu": 70}, "II"),
        ({"unenhanced_hu": 70.1}, "II"),
        ({"unenhanced_hu": 80}, "II"),
        ({"attenuation_hu": 80, "contrast": False}, "II"),
        # renal mass protocol CT: nonenhancing (<=10 HU increase)
        ({"unenhanced_hu": 10, "enhanced_hu": 20}, "I"),
        ({"unenhanced_hu": 40, "enhanced_hu": 50}, "II"),
        ({"unenhanced_hu": 19.9, "enhanced_hu": 29.9}, "II"),
        ({"unenhanced_hu": 75, "enhanced_hu": 80}, "II"),
        # homogeneous low-attenuation mass too small to characterise
        ({"too_small_to_characterize": True}, "II"),
    ],
)
def test_bosniak_class_ii_ct_subtypes(kwargs: dict[str, object], cls: str) -> None:
    result = bosniak("ct", **kwargs)  # type: ignore[arg-type]
    assert result.category == cls and not result.unverified
    assert "no follow-up" in result.recommendation


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"unenhanced_hu": -9.1}, "unenhanced_hu"),
        ({"unenhanced_hu": 20.1}, "unenhanced_hu"),
        ({"unenhanced_hu": 45}, "unenhanced_hu"),
        ({"unenhanced_hu": 69.9}, "unenhanced_hu"),
        ({"enhanced_hu": -9.1}, "enhanced_hu"),
        ({"enhanced_hu": 30.1}, "enhanced_hu"),
        ({"attenuation_hu": 25}, "attenuation_hu"),  # phase not stated: only simple fluid is classifiable
        ({"attenuation_hu": 80}, "attenuation_hu"),  # 80 HU after contrast is not a hyperdense cyst
        ({"unenhanced_hu": 10, "enhanced_hu": 20.1}, "equivocal"),  # +10.1 HU
        ({"unenhanced_hu": 10, "enhanced_hu": 29.9}, "equivocal"),  # +19.9 HU
        ({"attenuation_hu": 10, "unenhanced_hu": 10}, "attenuation_hu"),
        ({"enhanced_hu": 10, "contrast": False}, "enhanced_hu"),
        ({"unenhanced_hu": 4000.1}, "unenhanced_hu"),
        ({"enhanced_hu": -4000.1}, "enhanced_hu"),
        ({"attenuation_hu": float("nan")}, "attenuation_hu"),
        ({"wall_thickness_mm": 1e308}, "wall_thickness_mm"),
        ({"wall_thickness_mm": float("inf")}, "wall_thickness_mm"),
        ({"septa_count": 2, "septa_thickness_mm": 100.1}, "septa_thickness_mm"),
        ({"protrusion_mm": float("nan"), "protrusion_margin": "obtuse"}, "protrusion_mm"),
        ({"septa_count": 1001, "septa_thickness_mm": 1}, "septa_count"),
        ({"homogeneous": "no", "attenuation_hu": 10}, "homogeneous"),
    ],
)
def test_bosniak_refuses_unclassifiable_or_implausible_attenuation(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(CalculatorInputError, match=argument):
        bosniak("ct", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("unenhanced", "enhanced"), [(10, 30), (10, 30.1), (70, 95)])
def test_an_enhancing_homogeneous_mass_is_solid_not_bosniak(unenhanced: float, enhanced: float) -> None:
    with pytest.raises(NotApplicableError, match="solid"):
        bosniak("ct", unenhanced_hu=unenhanced, enhanced_hu=enhanced)


def test_bosniak_attenuation_inputs_are_ct_only_and_missing_attenuation_is_asked() -> None:
    with pytest.raises(CalculatorInputError, match="unenhanced_hu"):
        bosniak("mri", unenhanced_hu=10, t2_csf_like=True)
    with pytest.raises(CalculatorInputError, match="too_small_to_characterize"):
        bosniak("mri", too_small_to_characterize=True)
    with pytest.raises(MissingParameterError, match="attenuation_hu"):
        bosniak("ct")


def test_bosniak_iif_follow_up_schedule() -> None:
    for kwargs in ({"wall_thickness_mm": 3}, {"septa_count": 4, "septa_thickness_mm": 2}):
        result = bosniak("ct", **kwargs)  # type: ignore[arg-type]
        assert result.category == "IIF"
        assert "at 6 and 12 months, then yearly for 5 years" in result.recommendation
    assert bosniak("ct", septa_count=3, septa_thickness_mm=2).category == "II"


# ---------------------------------------------------------------- ACR renal 2018: attenuation vs enhancement


@pytest.mark.parametrize(
    ("unenhanced", "enhanced", "category"),
    [
        (12, 38, "enhancing"),
        (10, 30, "enhancing"),  # +20
        (10, 29.9, "equivocal"),  # +19.9
        (10, 20.1, "equivocal"),  # +10.1
        (10, 20, "non-enhancing"),  # +10
        (20, 30, "non-enhancing"),
        (80, 85, "non-enhancing"),  # a high attenuation is not enhancement
    ],
)
def test_renal_enhancement_from_two_attenuations(unenhanced: float, enhanced: float, category: str) -> None:
    result = renal_enhancement("ct", unenhanced_hu=unenhanced, enhanced_hu=enhanced)
    assert result.category == category
    assert result.inputs["hu_increase"] == pytest.approx(enhanced - unenhanced)


@pytest.mark.parametrize(
    ("kwargs", "exc", "argument"),
    [
        ({"enhanced_hu": 45}, MissingParameterError, "unenhanced_hu"),
        ({"unenhanced_hu": 45}, MissingParameterError, "enhanced_hu"),
        ({"hu_increase": 20, "unenhanced_hu": 10, "enhanced_hu": 30}, CalculatorInputError, "hu_increase"),
        ({"hu_increase": 4000.1}, CalculatorInputError, "hu_increase"),
        ({"hu_increase": float("nan")}, CalculatorInputError, "hu_increase"),
        ({"unenhanced_hu": 30, "enhanced_hu": 9000}, CalculatorInputError, "enhanced_hu"),
    ],
)
def test_renal_enhancement_ct_inputs(kwargs: dict[str, float], exc: type[Exception], argument: str) -> None:
    with pytest.raises(exc, match=argument):
        renal_enhancement("ct", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "result"),
    [
        ({"signal_increase_pct": 14.9}, "no definite enhancement"),
        ({"signal_increase_pct": 15.0}, "enhancing"),
        ({"signal_increase_pct": 15.1}, "enhancing"),
        ({"signal_increase_pct": 8, "subtraction_enhancement": False}, "no definite enhancement"),
        ({"signal_increase_pct": 8, "subtraction_enhancement": True}, "enhancing"),
    ],
)
def test_renal_enhancement_mri_boundaries(kwargs: dict[str, object], result: str) -> None:
    assert renal_enhancement("mri", **kwargs).category == result  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"signal_increase_pct": 1000.1},
        {"signal_increase_pct": float("inf")},
        {"signal_increase_pct": 20, "enhanced_hu": 30},
        {"subtraction_enhancement": "yes"},
    ],
)
def test_renal_enhancement_mri_rejects_bad_inputs(kwargs: dict[str, object]) -> None:
    with pytest.raises(CalculatorInputError):
        renal_enhancement("mri", **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- sourced case files of these calculators

MY_CALCULATORS = ("lirads", "adrenal", "renal", "tirads", "bosniak")
CASE_FILES = [c for c in load_cases() if c.file.split(".jsonl")[0] in MY_CALCULATORS]


def test_case_files_of_these_calculators_are_large_enough() -> None:
    assert len(CASE_FILES) >= 130
    assert {c.calculator for c in CASE_FILES} == set(MY_CALCULATORS)
    assert all(c.file.startswith(f"{c.calculator}.jsonl") for c in CASE_FILES)


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda c: c.id)
def test_case_file_row_holds(case: Case) -> None:
    assert problems(case, load_sources()) == [], f"{case.file}: {case.rule}"


@pytest.mark.parametrize("margin", [None, "obtuse", "acute"])
def test_bosniak_protrusion_of_4_mm_or_more_is_class_iv_whatever_its_margin(margin: str | None) -> None:
    # Bosniak 2019: >= 4 mm with obtuse margins, or any size with acute margins: a 4 mm nodule needs no margin.
    assert bosniak("ct", protrusion_mm=4, protrusion_margin=margin).category == "IV"


def test_bosniak_protrusion_under_4_mm_asks_for_its_margin() -> None:
    with pytest.raises(MissingParameterError, match="protrusion_margin"):
        bosniak("ct", protrusion_mm=3.4)
