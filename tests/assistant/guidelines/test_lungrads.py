"""Lung-RADS v2022: every row of the category table, size boundaries, growth, stepped management, errors.

The sourced boundary cases live in tests/data/guideline_cases/lungrads.jsonl and are all run here.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest

from assistant.guidelines import CalculatorInputError, MissingParameterError, NotApplicableError, lungrads
from tests.support.paths import TEST_DATA

CASES = [
    # (kwargs, category)
    ({"incomplete": True}, "0"),
    ({"infection_suspected": True}, "0"),
    ({"no_nodules": True}, "1"),
    ({"benign_calcification_or_fat": True}, "1"),
    # solid, baseline
    ({"nodule_type": "solid", "mean_diameter_mm": 5.9}, "2"),
    ({"nodule_type": "solid", "mean_diameter_mm": 6.0}, "3"),
    ({"nodule_type": "solid", "mean_diameter_mm": 7.9}, "3"),
    ({"nodule_type": "solid", "mean_diameter_mm": 8.0}, "4A"),
    ({"nodule_type": "solid", "mean_diameter_mm": 14.9}, "4A"),
    ({"nodule_type": "solid", "mean_diameter_mm": 15.0}, "4B"),
    # solid, new on follow-up
    ({"nodule_type": "solid", "mean_diameter_mm": 3.9, "exam": "follow_up", "status": "new"}, "2"),
    ({"nodule_type": "solid", "mean_diameter_mm": 4.0, "exam": "follow_up", "status": "new"}, "3"),
    ({"nodule_type": "solid", "mean_diameter_mm": 5.9, "exam": "follow_up", "status": "new"}, "3"),
    ({"nodule_type": "solid", "mean_diameter_mm": 6.0, "exam": "follow_up", "status": "new"}, "4A"),
    ({"nodule_type": "solid", "mean_diameter_mm": 7.9, "exam": "follow_up", "status": "new"}, "4A"),
    ({"nodule_type": "solid", "mean_diameter_mm": 8.0, "exam": "follow_up", "status": "new"}, "4B"),
    # solid, growing
    ({"nodule_type": "solid", "mean_diameter_mm": 7.9, "exam": "follow_up", "status": "growing"}, "4A"),
    ({"nodule_type": "solid", "mean_diameter_mm": 8.0, "exam": "follow_up", "status": "growing"}, "4B"),
    # stable (a stable nodule without its prior category is asked back: see the missing-parameter tests)
    (
        {
            "nodule_type": "solid",
            "mean_diameter_mm": 7.0,
            "exam": "follow_up",
            "status": "stable",
            "prior_category": "3",
        },
        "2",
    ),
    # juxtapleural
    ({"nodule_type": "solid", "mean_diameter_mm": 9.9, "juxtapleural_benign_morphology": True}, "2"),
    ({"nodule_type": "solid", "mean_diameter_mm": 10.0, "juxtapleural_benign_morphology": True}, "4A"),
    # part-solid
    ({"nodule_type": "part_solid", "mean_diameter_mm": 5.9, "solid_component_mm": 2}, "2"),
    ({"nodule_type": "part_solid", "mean_diameter_mm": 6.0, "solid_component_mm": 5.9}, "3"),
    ({"nodule_type": "part_solid", "mean_diameter_mm": 10, "solid_component_mm": 6.0}, "4A"),
    ({"nodule_type": "part_solid", "mean_diameter_mm": 10, "solid_component_mm": 7.9}, "4A"),
    ({"nodule_type": "part_solid", "mean_diameter_mm": 12, "solid_component_mm": 8.0}, "4B"),
    (
        {
            "nodule_type": "part_solid",
            "mean_diameter_mm": 5,
            "solid_component_mm": 2,
            "exam": "follow_up",
            "status": "new",
        },
        "3",
    ),
    (
        {
            "nodule_type": "part_solid",
            "mean_diameter_mm": 9,
            "solid_component_mm": 3.9,
            "exam": "follow_up",
            "status": "growing",
            "solid_component_change": "growing",
        },
        "4A",
    ),
    (
        {
            "nodule_type": "part_solid",
            "mean_diameter_mm": 9,
            "solid_component_mm": 4.0,
            "exam": "follow_up",
            "status": "growing",
            "solid_component_change": "growing",
        },
        "4B",
    ),
    (
        {
            "nodule_type": "part_solid",
            "mean_diameter_mm": 9,
            "solid_component_mm": 3,
            "exam": "follow_up",
            "status": "new",
        },
        "4A",
    ),
    # non-solid
    ({"nodule_type": "ground_glass", "mean_diameter_mm": 29.9}, "2"),
    ({"nodule_type": "non_solid", "mean_diameter_mm": 30}, "3"),
    ({"nodule_type": "ggn", "mean_diameter_mm": 32, "exam": "follow_up", "status": "new"}, "3"),
    ({"nodule_type": "ggn", "mean_diameter_mm": 35, "exam": "follow_up", "status": "stable"}, "2"),
    ({"nodule_type": "ggn", "mean_diameter_mm": 12, "exam": "follow_up", "status": "growing"}, "2"),
    # airway, cysts
    ({"airway": "subsegmental"}, "2"),
    ({"airway": "segmental"}, "4A"),
    ({"airway": "segmental_or_proximal", "airway_persistent_at_3_months": True}, "4B"),
    ({"cyst": "multilocular"}, "4A"),
    ({"cyst": "multilocular", "exam": "follow_up", "status": "growing"}, "4B"),
    ({"cyst": "thick_walled", "exam": "follow_up", "cyst_change": "growing_wall_or_nodularity"}, "4B"),
    ({"cyst": "thick_walled", "exam": "follow_up", "cyst_change": "growing_cystic_component"}, "3"),
    ({"cyst": "thick_walled"}, "4A"),
    # 4X
    ({"nodule_type": "solid", "mean_diameter_mm": 7, "suspicious_features": True}, "4X"),
    ({"nodule_type": "solid", "mean_diameter_mm": 10, "suspicious_features": True}, "4X"),
]


@pytest.mark.parametrize(("kwargs", "category"), CASES)
def test_lungrads_category_table(kwargs: dict[str, object], category: str) -> None:
    result = lungrads(**kwargs)  # type: ignore[arg-type]
    assert result.category == category
    assert result.section_id == f"lung-rads-2022/category-{category.lower()}"
    assert result.guideline == "ACR Lung-RADS" and result.version == "v2022"


@pytest.mark.parametrize(
    ("category", "management", "risk"),
    [
        ("2", "LDCT in 12 months", "<1%"),
        ("3", "LDCT in 6 months", "1-2%"),
        ("4A", "LDCT in 3 months", "5-15%"),
        ("4B", "Diagnostic chest CT", ">15%"),
    ],
)
def test_lungrads_management_and_risk_per_category(category: str, management: str, risk: str) -> None:
    sizes = {"2": 4, "3": 7, "4A": 9, "4B": 16}
    result = lungrads("solid", sizes[category])
    assert management in result.recommendation
    assert result.malignancy_risk == risk


def test_lungrads_mean_diameter_from_axes_to_one_decimal() -> None:
    result = lungrads("solid", long_axis_mm=6.5, short_axis_mm=5.4)  # 5.95 -> 6.0
    assert result.inputs["mean_diameter_mm"] == 6.0
    assert result.category == "3"


def test_lungrads_growth_is_more_than_1_5_mm() -> None:
    grown = lungrads("solid", 7.1, "follow_up", prior_mean_diameter_mm=5.5)  # +1.6
    same = lungrads("solid", 6.9, "follow_up", prior_mean_diameter_mm=6.4, prior_category="3")  # +0.5 is not growth
    assert grown.category == "4A" and grown.inputs["status"].value == "growing"
    assert same.category == "2" and same.inputs["status"].value == "stable"


def test_lungrads_crossing_a_size_threshold_without_growth_reclassifies_by_size() -> None:
    # +1.5 mm is not growth, but 5.5 -> 7.0 mm crosses the 6 mm threshold (was wrongly 2 before).
    crossed = lungrads("solid", 7.0, "follow_up", prior_mean_diameter_mm=5.5, prior_category="2")
    assert crossed.category == "3" and crossed.inputs["status"].value == "stable"
    assert "reclassified by size" in crossed.recommendation
    # The example of the review: 6.5 -> 8.0 mm at the 6-month LDCT is 4A, not a stepped-down 2.
    assert lungrads("solid", 8.0, "follow_up", prior_mean_diameter_mm=6.5, prior_category="3").category == "4A"
    assert lungrads("solid", 7.9, "follow_up", prior_mean_diameter_mm=6.5, prior_category="3").category == "2"


def test_lungrads_stepped_4a_to_3_is_confirmed() -> None:
    result = lungrads("solid", 9, "follow_up", "stable", prior_category="4A")
    assert result.category == "3"
    assert not result.unverified
    assert "UNVERIFIED" not in result.recommendation


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"nodule_type": "solid", "mean_diameter_mm": -1}, "mean_diameter_mm"),
        ({"nodule_type": "fluffy", "mean_diameter_mm": 5}, "nodule_type"),
        ({"nodule_type": "solid", "mean_diameter_mm": 5, "status": "new"}, "status"),
        ({"nodule_type": "solid", "mean_diameter_mm": 5, "solid_component_mm": 2}, "solid_component_mm"),
        ({"nodule_type": "part_solid", "mean_diameter_mm": 5, "solid_component_mm": 7}, "solid_component_mm"),
        (
            {
                "nodule_type": "solid",
                "mean_diameter_mm": 9,
                "exam": "follow_up",
                "status": "stable",
                "prior_mean_diameter_mm": 5,
            },
            "status",
        ),
        ({"nodule_type": "ggn", "mean_diameter_mm": 9, "juxtapleural_benign_morphology": True}, "juxtapleural"),
        ({"nodule_type": "ggn", "mean_diameter_mm": 31, "exam": "follow_up", "status": "growing"}, "mean_diameter_mm"),
        (
            {
                "nodule_type": "solid",
                "mean_diameter_mm": 9,
                "exam": "follow_up",
                "status": "stable",
                "prior_category": "7",
            },
            "prior_category",
        ),
        ({"nodule_type": "solid", "no_nodules": True}, "no_nodules"),
    ],
)
def test_lungrads_rejects_invalid_or_contradictory_inputs(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(CalculatorInputError, match=argument):
        lungrads(**kwargs)  # type: ignore[arg-type]


def test_lungrads_asks_for_missing_follow_up_status_and_solid_component() -> None:
    with pytest.raises(MissingParameterError, match="status"):
        lungrads("solid", 5, "follow_up")
    with pytest.raises(MissingParameterError, match="solid_component_mm"):
        lungrads("part_solid", 9)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        # A stable nodule's category depends on its prior category (was wrongly 2 for any size before).
        ({"nodule_type": "solid", "mean_diameter_mm": 9.0, "exam": "follow_up", "status": "stable"}, "prior_category"),
        ({"nodule_type": "solid", "mean_diameter_mm": 20, "exam": "follow_up", "status": "stable"}, "prior_category"),
        # Growth of the total diameter alone is not a growing solid component: ask which it is.
        (
            {
                "nodule_type": "part_solid",
                "mean_diameter_mm": 10,
                "solid_component_mm": 5,
                "exam": "follow_up",
                "prior_mean_diameter_mm": 8,
            },
            "solid_component_change",
        ),
        # A growing thick-walled cyst: the cystic component (3) or the wall/nodularity (4B)?
        ({"cyst": "thick_walled", "exam": "follow_up", "status": "growing"}, "cyst_change"),
        ({"cyst": "multilocular", "exam": "follow_up", "status": "stable"}, "prior_category"),
    ],
)
def test_lungrads_asks_back_instead_of_assuming(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(MissingParameterError) as err:
        lungrads(**kwargs)  # type: ignore[arg-type]
    assert err.value.parameter == parameter
    assert err.value.question.endswith("?") or "?" in err.value.question


def test_lungrads_stable_4b_needs_proof_of_benignity() -> None:
    kwargs: dict[str, object] = {"exam": "follow_up", "status": "stable", "prior_category": "4B"}
    with pytest.raises(CalculatorInputError, match="proven_benign"):
        lungrads("solid", 9, **kwargs)  # type: ignore[arg-type]
    proven = lungrads("solid", 9, proven_benign=True, **kwargs)  # type: ignore[arg-type]
    assert proven.category == "2" and proven.inputs["proven_benign"] is True
    assert "Continue annual screening" in proven.recommendation


def test_lungrads_growing_juxtapleural_nodule_follows_the_growth_rules() -> None:
    result = lungrads("solid", 9, "follow_up", "growing", juxtapleural_benign_morphology=True)
    assert result.category == "4B"
    assert any("baseline or new" in n for n in result.notes)
    assert lungrads("solid", 9.9, perifissural_benign_morphology=True).category == "2"


def test_lungrads_part_solid_total_growth_alone_is_not_4b() -> None:
    result = lungrads(
        "part_solid",
        10,
        "follow_up",
        prior_mean_diameter_mm=8,
        solid_component_mm=5,
        prior_solid_component_mm=5,
        prior_category="3",
    )
    assert result.category == "3"
    assert result.inputs["solid_component_change"].value == "stable"


def test_lungrads_slow_growth_is_4b() -> None:
    result = lungrads("solid", 5, "follow_up", slow_growth=True)
    assert result.category == "4B" and result.inputs["slow_growth"] is True


def test_lungrads_s_modifier_keeps_the_base_category_and_shows_s() -> None:
    result = lungrads("solid", 7, s_modifier=True)
    assert result.category == "3"
    assert result.recommendation.startswith("Lung-RADS 3S.")
    assert result.inputs["s_modifier"] is True
    assert any("S modifier" in n for n in result.notes)
    assert result.to_dict()["inputs"]["s_modifier"] is True
    assert "3S" not in lungrads("solid", 7).recommendation


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e308, -0.1, 0, 300.1, "7", True])
@pytest.mark.parametrize(
    "argument", ["mean_diameter_mm", "prior_mean_diameter_mm", "solid_component_mm", "prior_solid_component_mm"]
)
def test_lungrads_implausible_sizes_are_refused_naming_the_argument(bad: object, argument: str) -> None:
    kwargs: dict[str, object] = {
        "nodule_type": "part_solid",
        "mean_diameter_mm": 12.0,
        "solid_component_mm": 5.0,
        "exam": "follow_up",
        "status": "stable",
        "prior_category": "3",
        "solid_component_change": "stable",
    }
    if argument == "prior_solid_component_mm":
        del kwargs["solid_component_change"]
        if bad == 0:  # 0 mm is a valid prior solid component: there was none (a new solid component)
            return
    kwargs[argument] = bad
    with pytest.raises(CalculatorInputError, match=argument) as err:
        lungrads(**kwargs)  # type: ignore[arg-type]
    assert not isinstance(err.value, MissingParameterError)


def test_lungrads_300_mm_is_the_plausibility_bound() -> None:
    assert lungrads("solid", 300).category == "4B"
    with pytest.raises(CalculatorInputError, match="long_axis_mm"):
        lungrads("solid", long_axis_mm=300.5, short_axis_mm=20)


# ------------------------------------------------------------------------------------------------ case file

CASE_FILE = TEST_DATA / "guideline_cases" / "lungrads.jsonl"
SOURCES_FILE = CASE_FILE.with_name("sources.toml")
LUNG_RADS_SOURCES = {"lung-rads-2022-cde", "lung-rads-2022", "lung-rads-2022-notes"}


def _cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASE_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_lungrads_case_file_is_well_formed() -> None:
    cases = _cases()
    sources = tomllib.loads(SOURCES_FILE.read_text(encoding="utf-8"))
    assert len(cases) >= 110
    assert len({c["id"] for c in cases}) == len(cases)
    for case in cases:
        assert set(case) == {"id", "calculator", "inputs", "expect", "rule", "source"}, case["id"]
        assert case["calculator"] == "lungrads" and case["rule"], case["id"]
        assert case["source"] in sources, case["id"]
        if "category" in case["expect"]:
            assert case["source"] in LUNG_RADS_SOURCES, case["id"]
        else:
            assert case["expect"]["error"] in ("missing", "invalid", "not_applicable"), case["id"]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: str(c["id"]))
def test_lungrads_case(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "category" in expect:
        result = lungrads(**case["inputs"])
        assert result.category == expect["category"], case["rule"]
        assert result.section_id == f"lung-rads-2022/category-{expect['category'].lower()}"
        assert not result.unverified
    elif expect["error"] == "missing":
        with pytest.raises(MissingParameterError) as missing:
            lungrads(**case["inputs"])
        assert missing.value.parameter == expect["parameter"], case["rule"]
    elif expect["error"] == "not_applicable":
        with pytest.raises(NotApplicableError):
            lungrads(**case["inputs"])
    else:
        with pytest.raises(CalculatorInputError) as invalid:
            lungrads(**case["inputs"])
        assert not isinstance(invalid.value, MissingParameterError | NotApplicableError), case["rule"]
