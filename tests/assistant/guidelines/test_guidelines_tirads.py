"""ACR TI-RADS: points of every feature, TR levels, FNA / follow-up size boundaries, enlargement rule."""

from __future__ import annotations

import pytest

from assistant.guidelines import CalculatorInputError, MissingParameterError, tirads
from assistant.guidelines.tirads import EchogenicFocus, significant_enlargement, tirads_points, tr_level

BASE = {"composition": "cystic", "echogenicity": "anechoic", "shape": "wider_than_tall", "margin": "smooth"}


@pytest.mark.parametrize(
    ("feature", "value", "points"),
    [
        ("composition", "cystic", 0),
        ("composition", "spongiform", 0),
        ("composition", "mixed", 1),
        ("composition", "solid", 2),
        ("echogenicity", "anechoic", 0),
        ("echogenicity", "hyperechoic", 1),
        ("echogenicity", "isoechoic", 1),
        ("echogenicity", "hypoechoic", 2),
        ("echogenicity", "very_hypoechoic", 3),
        ("shape", "wider_than_tall", 0),
        ("shape", "taller_than_wide", 3),
        ("margin", "smooth", 0),
        ("margin", "ill_defined", 0),
        ("margin", "lobulated", 2),
        ("margin", "irregular", 2),
        ("margin", "extrathyroidal_extension", 3),
    ],
)
def test_tirads_points_per_feature(feature: str, value: str, points: int) -> None:
    total, _ = tirads_points(**{**BASE, feature: value})  # type: ignore[arg-type]
    assert total == points


@pytest.mark.parametrize(
    ("foci", "points"),
    [
        (["none"], 0),
        (["comet_tail"], 0),
        (["macrocalcifications"], 1),
        (["peripheral"], 2),
        (["punctate"], 3),
        (["macrocalcifications", "punctate"], 4),
        (["macrocalcifications", "peripheral", "punctate"], 6),
    ],
)
def test_tirads_echogenic_foci_add_up(foci: list[str], points: int) -> None:
    assert tirads_points(**BASE, echogenic_foci=foci)[0] == points  # type: ignore[arg-type]


@pytest.mark.parametrize(("points", "level"), [(0, 1), (2, 2), (3, 3), (4, 4), (6, 4), (7, 5), (14, 5)])
def test_tirads_level_from_points(points: int, level: int) -> None:
    assert tr_level(points) == level


# TR3 = solid(2)+isoechoic(1); TR4 = solid+hypoechoic (4); TR5 = solid+hypoechoic+punctate (7)
TR3 = {"composition": "solid", "echogenicity": "isoechoic", "shape": "wider_than_tall", "margin": "smooth"}
TR4 = {**TR3, "echogenicity": "hypoechoic"}
TR5 = {**TR4, "echogenic_foci": ["punctate"]}


@pytest.mark.parametrize(
    ("features", "cm", "action"),
    [
        (TR3, 1.4, "no FNA or follow-up"),
        (TR3, 1.5, "US follow-up (US at 1, 3 and 5 years)"),
        (TR3, 2.4, "US follow-up"),
        (TR3, 2.5, "FNA recommended"),
        (TR4, 0.9, "no FNA or follow-up"),
        (TR4, 1.0, "US follow-up (US at 1, 2, 3 and 5 years)"),
        (TR4, 1.4, "US follow-up"),
        (TR4, 1.5, "FNA recommended"),
        (TR5, 0.4, "no FNA or follow-up"),
        (TR5, 0.5, "US follow-up (annual US for up to 5 years)"),
        (TR5, 0.9, "US follow-up"),
        (TR5, 1.0, "FNA recommended"),
    ],
)
def test_tirads_fna_and_follow_up_thresholds(features: dict[str, object], cm: float, action: str) -> None:
    result = tirads(**features, max_diameter_cm=cm)  # type: ignore[arg-type]
    assert action in result.recommendation


def test_tirads_levels_risks_and_sections() -> None:
    tr1 = tirads(**BASE)  # type: ignore[arg-type]
    assert tr1.category == "TR1" and "No FNA" in tr1.recommendation and tr1.malignancy_risk == "0.3%"
    tr2 = tirads(**{**BASE, "composition": "solid"})  # type: ignore[arg-type]
    assert tr2.category == "TR2" and tr2.section_id == "ti-rads-2017/tr2"
    tr5 = tirads(**TR5, max_diameter_mm=12)  # type: ignore[arg-type]
    assert tr5.category == "TR5" and tr5.malignancy_risk == "35%" and tr5.inputs["max_diameter_cm"] == 1.2


def test_tirads_one_point_is_flagged_unverified() -> None:
    result = tirads(**{**BASE, "composition": "mixed"})  # type: ignore[arg-type]
    assert result.category == "TR2" and result.unverified and "UNVERIFIED" in result.recommendation


def test_tirads_enlargement_rule() -> None:
    assert significant_enlargement([10, 8], [12, 10])  # +20% and +2 mm in both
    assert not significant_enlargement([10, 8], [12, 9])  # second grows 1 mm only
    assert not significant_enlargement([20, 15], [22, 17.5])  # +2 mm but only 10% on the first
    assert significant_enlargement(prior_volume_ml=1.0, current_volume_ml=1.5)
    assert not significant_enlargement(prior_volume_ml=1.0, current_volume_ml=1.4)
    result = tirads(**TR4, max_diameter_cm=1.2, prior_dimensions_mm=[10, 8], current_dimensions_mm=[12, 10])  # type: ignore[arg-type]
    assert result.inputs["significant_enlargement"] is True


def test_tirads_level_rise_means_follow_up_in_one_year() -> None:
    result = tirads(**TR4, max_diameter_cm=1.2, prior_level=3)  # type: ignore[arg-type]
    assert "next follow-up US in 1 year" in result.recommendation


def test_tirads_accepts_enum_focus() -> None:
    assert tirads_points(**BASE, echogenic_foci=EchogenicFocus.PUNCTATE)[0] == 3  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({**TR4, "max_diameter_cm": -1}, "max_diameter_cm"),
        ({**TR4, "max_diameter_cm": 0}, "max_diameter_cm"),
        ({**TR4, "composition": "fluffy", "max_diameter_cm": 1}, "composition"),
        ({**TR4, "echogenic_foci": ["none", "punctate"], "max_diameter_cm": 1}, "echogenic_foci"),
        ({**TR4, "max_diameter_cm": 1, "max_diameter_mm": 10}, "max_diameter_mm"),
        ({**TR4, "max_diameter_cm": 1, "prior_level": 9}, "prior_level"),
        (
            {**TR4, "max_diameter_cm": 1, "prior_dimensions_mm": [10], "current_dimensions_mm": [12]},
            "prior_dimensions_mm",
        ),
    ],
)
def test_tirads_rejects_invalid_inputs(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(CalculatorInputError, match=argument):
        tirads(**kwargs)  # type: ignore[arg-type]


def test_tirads_asks_for_missing_features_and_size() -> None:
    with pytest.raises(MissingParameterError, match="shape"):
        tirads("solid", "hypoechoic", None, "smooth")
    with pytest.raises(MissingParameterError, match="max_diameter_cm"):
        tirads(**TR4)  # type: ignore[arg-type]
