"""Fleischner 2017: every table row, the size boundaries with rounding, scope refusals and invalid inputs."""

from __future__ import annotations

import pytest

from assistant.errors import RadassistError
from assistant.guidelines import (
    CalculatorInputError,
    Composition,
    MissingParameterError,
    NotApplicableError,
    fleischner,
)
from assistant.guidelines.fleischner import NoduleCount, Risk

SOLID_ROWS = [
    # count, size mm, risk, recommendation fragment
    ("single", 5, "low", "No routine follow-up."),
    ("single", 5, "high", "Optional CT at 12 months"),
    ("single", 7, "low", "CT at 6-12 months, then consider CT at 18-24 months."),
    ("single", 7, "high", "CT at 6-12 months, then CT at 18-24 months."),
    ("single", 10, "low", "Consider CT at 3 months, PET/CT, or tissue sampling."),
    ("single", 10, "high", "Consider CT at 3 months, PET/CT, or tissue sampling."),
    ("multiple", 5, "low", "No routine follow-up."),
    ("multiple", 5, "high", "Optional CT at 12 months."),
    ("multiple", 7, "low", "CT at 3-6 months, then consider CT at 18-24 months."),
    ("multiple", 7, "high", "CT at 3-6 months, then CT at 18-24 months."),
    ("multiple", 10, "low", "CT at 3-6 months, then consider CT at 18-24 months."),
    ("multiple", 10, "high", "CT at 3-6 months, then CT at 18-24 months."),
]


@pytest.mark.parametrize(("count", "size", "risk", "text"), SOLID_ROWS)
def test_fleischner_solid_table_rows(count: str, size: float, risk: str, text: str) -> None:
    result = fleischner("solid", count, size, risk=risk)
    assert text in result.recommendation
    assert result.section_id == f"fleischner-2017/solid-{count}"
    assert result.guideline == "Fleischner Society" and result.version == "2017"
    assert not result.unverified


@pytest.mark.parametrize(
    ("size", "band"),
    [
        (5.4, "<6 mm"),  # rounds to 5
        (5.5, "6-8 mm"),  # rounds half up to 6
        (5.9, "6-8 mm"),  # rounds to 6: the guideline's "<6 mm" is a rounded 5 mm or less
        (6.0, "6-8 mm"),
        (8.0, "6-8 mm"),
        (8.1, "6-8 mm"),  # rounds to 8
        (8.4, "6-8 mm"),
        (8.5, ">8 mm"),  # rounds to 9
        (9.0, ">8 mm"),
    ],
)
def test_fleischner_solid_size_boundaries_use_the_rounded_mean(size: float, band: str) -> None:
    result = fleischner("solid", "single", size, risk="high")
    assert result.category == f"solid single {band} high risk"


def test_fleischner_mean_of_axes_is_rounded_to_whole_mm() -> None:
    result = fleischner("solid", "single", long_axis_mm=7, short_axis_mm=4, risk="low")  # mean 5.5 -> 6
    assert result.inputs["mean_diameter_mm"] == 5.5
    assert result.inputs["rounded_diameter_mm"] == 6
    assert "6-8 mm" in result.category
    assert any("rounded" in note for note in result.notes)
    assert fleischner("solid", "single", long_axis_mm=6, short_axis_mm=4.8, risk="low").category.endswith(
        "<6 mm low risk"
    )  # mean 5.4 -> 5


@pytest.mark.parametrize(("volume", "band"), [(99, "<6 mm"), (100, "6-8 mm"), (250, "6-8 mm"), (251, ">8 mm")])
def test_fleischner_volume_thresholds(volume: float, band: str) -> None:
    assert fleischner("solid", "single", volume_mm3=volume, risk="low").category == f"solid single {band} low risk"


SUBSOLID_ROWS = [
    ("ground_glass", "single", 5, None, "fleischner-2017/subsolid-single-ground-glass", "No routine follow-up."),
    (
        "ground_glass",
        "single",
        6,
        None,
        "fleischner-2017/subsolid-single-ground-glass",
        "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years.",
    ),
    ("part_solid", "single", 5, None, "fleischner-2017/subsolid-single-part-solid", "No routine follow-up."),
    (
        "part_solid",
        "single",
        8,
        4,
        "fleischner-2017/subsolid-single-part-solid",
        "CT at 3-6 months to confirm persistence; if unchanged and the solid component stays <6 mm, annual CT",
    ),
    (
        "part_solid",
        "single",
        12,
        6,
        "fleischner-2017/subsolid-single-part-solid",
        "consider PET/CT, biopsy or resection",
    ),
    (
        "ground_glass",
        "multiple",
        5,
        None,
        "fleischner-2017/subsolid-multiple",
        "CT at 3-6 months; if stable, consider CT at 2 and 4 years.",
    ),
    (
        "part_solid",
        "multiple",
        7,
        None,
        "fleischner-2017/subsolid-multiple",
        "CT at 3-6 months, then manage according to the most suspicious nodule.",
    ),
]


@pytest.mark.parametrize(("comp", "count", "size", "solid", "section", "text"), SUBSOLID_ROWS)
def test_fleischner_subsolid_table_rows(
    comp: str, count: str, size: float, solid: float | None, section: str, text: str
) -> None:
    result = fleischner(comp, count, size, solid_component_mm=solid)
    assert result.section_id == section
    assert text in result.recommendation


def test_fleischner_subsolid_boundary_5_9_rounds_into_6_mm_band() -> None:
    assert fleischner("ground_glass", "single", 5.9).category == "ground-glass single >=6 mm"
    assert fleischner("ground_glass", "single", 5.4).category == "ground-glass single <6 mm"


def test_fleischner_part_solid_solid_component_is_rounded_like_the_nodule() -> None:
    # MacMahon 2017 table footnote: dimensions rounded to the nearest millimetre (5.5 mm counts as 6 mm).
    assert "solid component <6 mm" in fleischner("part_solid", "single", 10, solid_component_mm=5.4).category
    at_six = fleischner("part_solid", "single", 10, solid_component_mm=5.5)
    assert "solid component >=6 mm" in at_six.category
    assert any("rounded to 6 mm" in n for n in at_six.notes)
    assert "solid component >=6 mm" in fleischner("part_solid", "single", 10, solid_component_mm=6).category
    assert "(>8 mm)" in fleischner("part_solid", "single", 12, solid_component_mm=8.5).recommendation
    assert "(>8 mm)" not in fleischner("part_solid", "single", 12, solid_component_mm=8.4).recommendation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size_mm": 1e308},
        {"size_mm": -4},
        {"size_mm": float("nan")},
        {"size_mm": float("inf")},
        {"size_mm": 501},
        {"volume_mm3": 1e12},
        {"long_axis_mm": 900, "short_axis_mm": 8},
    ],
)
def test_fleischner_refuses_implausible_sizes(kwargs: dict[str, float]) -> None:
    with pytest.raises(CalculatorInputError, match="size_mm|volume_mm3|long_axis_mm"):
        fleischner("solid", "single", risk="low", **kwargs)  # type: ignore[arg-type]


def test_fleischner_accepts_enums_and_aliases() -> None:
    a = fleischner(Composition.SOLID, NoduleCount.SINGLE, 7, risk=Risk.HIGH)
    b = fleischner("Solid", "solitary", 7, risk="HIGH")
    assert a == b
    assert fleischner("GGN", "single", 7).section_id == "fleischner-2017/subsolid-single-ground-glass"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"age": 34}, "under 35"),
        ({"known_cancer": True}, "known primary cancer"),
        ({"immunosuppressed": True}, "immunosuppressed"),
        ({"screening": True}, "screening"),
    ],
)
def test_fleischner_refuses_out_of_scope_patients_with_the_reason(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(NotApplicableError, match=reason) as info:
        fleischner("solid", "single", 7, risk="high", **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, RadassistError)


def test_fleischner_age_35_is_in_scope() -> None:
    assert fleischner("solid", "single", 7, risk="low", age=35).inputs["age"] == 35


def test_fleischner_asks_for_risk_only_when_it_matters() -> None:
    with pytest.raises(MissingParameterError) as info:
        fleischner("solid", "single", 7)
    assert info.value.parameter == "risk"
    assert "low or high risk" in info.value.question
    assert "Consider CT at 3 months" in fleischner("solid", "single", 10).recommendation


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"composition": "solid", "size_mm": -3, "risk": "low"}, "size_mm"),
        ({"composition": "solid", "size_mm": 0, "risk": "low"}, "size_mm"),
        ({"composition": "calcified", "size_mm": 5, "risk": "low"}, "composition"),
        ({"composition": "solid", "size_mm": 5, "risk": "medium"}, "risk"),
        ({"composition": "solid", "count": "few", "size_mm": 5, "risk": "low"}, "count"),
        ({"composition": "solid", "size_mm": 5, "volume_mm3": 80, "risk": "low"}, "volume_mm3"),
        ({"composition": "solid", "size_mm": 5, "risk": "low", "solid_component_mm": 2}, "solid_component_mm"),
        ({"composition": "ground_glass", "size_mm": 8, "solid_component_mm": 2}, "solid_component_mm"),
        ({"composition": "part_solid", "size_mm": 8, "solid_component_mm": 12}, "solid_component_mm"),
        ({"composition": "solid", "long_axis_mm": 4, "short_axis_mm": 6, "risk": "low"}, "short_axis_mm"),
        ({"composition": "solid", "size_mm": float("nan"), "risk": "low"}, "size_mm"),
        ({"composition": "solid", "size_mm": 5, "risk": "low", "age": -2}, "age"),
    ],
)
def test_fleischner_rejects_invalid_inputs_naming_the_argument(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(CalculatorInputError, match=argument):
        fleischner(**kwargs)  # type: ignore[arg-type]


def test_fleischner_part_solid_needs_its_solid_component() -> None:
    with pytest.raises(MissingParameterError, match="solid_component_mm"):
        fleischner("part_solid", "single", 9)
