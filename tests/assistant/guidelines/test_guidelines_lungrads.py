"""Lung-RADS v2022: every row of the category table, size boundaries, growth, stepped management, errors."""

from __future__ import annotations

import pytest

from assistant.guidelines import CalculatorInputError, MissingParameterError, lungrads

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
    # stable
    ({"nodule_type": "solid", "mean_diameter_mm": 9.0, "exam": "follow_up", "status": "stable"}, "2"),
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
    ({"cyst": "thick_walled", "exam": "follow_up", "status": "growing"}, "4B"),
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
    same = lungrads("solid", 7.0, "follow_up", prior_mean_diameter_mm=5.5)  # +1.5 is not growth
    assert grown.category == "4A" and grown.inputs["status"].value == "growing"
    assert same.category == "2" and same.inputs["status"].value == "stable"


def test_lungrads_stepped_4a_to_3_is_marked_unverified() -> None:
    result = lungrads("solid", 9, "follow_up", "stable", prior_category="4A")
    assert result.category == "3"
    assert result.unverified
    assert "UNVERIFIED" in result.recommendation


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
