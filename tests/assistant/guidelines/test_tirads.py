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


# Composition scored with an isoechoic solid part (1 point): anechoic applies to cystic nodules only, and a
# spongiform nodule adds no further points (guideline_facts.md section 9). These rows used to pair mixed/solid
# composition with "anechoic", which the ACR lexicon does not allow.
@pytest.mark.parametrize(("composition", "points"), [("spongiform", 0), ("mixed", 2), ("solid", 3)])
def test_tirads_composition_points(composition: str, points: int) -> None:
    features = {**BASE, "composition": composition, "echogenicity": "isoechoic"}
    assert tirads_points(**features)[0] == points  # type: ignore[arg-type]


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
        # +0.1 above each threshold
        (TR3, 1.6, "US follow-up"),
        (TR3, 2.6, "FNA recommended"),
        (TR4, 1.1, "US follow-up"),
        (TR4, 1.6, "FNA recommended"),
        (TR5, 0.6, "US follow-up"),
        (TR5, 1.1, "FNA recommended"),
    ],
)
def test_tirads_fna_and_follow_up_thresholds(features: dict[str, object], cm: float, action: str) -> None:
    result = tirads(**features, max_diameter_cm=cm)  # type: ignore[arg-type]
    assert action in result.recommendation


def test_tirads_levels_risks_and_sections() -> None:
    tr1 = tirads(**BASE)  # type: ignore[arg-type]
    assert tr1.category == "TR1" and "No FNA" in tr1.recommendation and tr1.malignancy_risk == "0.3%"
    tr2 = tirads(**{**BASE, "composition": "mixed", "echogenicity": "isoechoic"})  # type: ignore[arg-type]
    assert tr2.category == "TR2" and tr2.section_id == "ti-rads-2017/tr2"
    tr5 = tirads(**TR5, max_diameter_mm=12)  # type: ignore[arg-type]
    assert tr5.category == "TR5" and tr5.malignancy_risk == "35%" and tr5.inputs["max_diameter_cm"] == 1.2


def test_tirads_one_point_total_is_refused_not_guessed() -> None:
    # Formerly scored TR2 (unverified) from mixed + anechoic; the chart has no 1-point level, so it is refused.
    with pytest.raises(CalculatorInputError, match="not in the confirmed table"):
        tirads(**BASE, echogenic_foci=["macrocalcifications"])  # type: ignore[arg-type]
    with pytest.raises(CalculatorInputError, match="points=1"):
        tr_level(1)


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


# ---------------------------------------------------------------- composition rules (guideline_facts.md s9)

SPONGIFORM = {"composition": "spongiform", "echogenicity": "isoechoic", "shape": "wider_than_tall", "margin": "smooth"}


@pytest.mark.parametrize("echogenicity", ["isoechoic", "hyperechoic"])
@pytest.mark.parametrize("foci", [["none"], ["comet_tail"]])
@pytest.mark.parametrize("margin", ["smooth", "ill_defined"])
def test_spongiform_adds_no_further_points_and_is_tr1(echogenicity: str, foci: list[str], margin: str) -> None:
    result = tirads(**{**SPONGIFORM, "echogenicity": echogenicity, "margin": margin}, echogenic_foci=foci,
                    max_diameter_cm=4.0)  # fmt: skip
    assert result.category == "TR1" and result.inputs["points"] == 0
    assert "No FNA" in result.recommendation and not result.unverified


@pytest.mark.parametrize(
    "change",
    [
        {"echogenic_foci": ["punctate"]},
        {"echogenic_foci": ["macrocalcifications"]},
        {"echogenic_foci": ["peripheral"]},
        {"margin": "irregular"},
        {"margin": "lobulated"},
        {"margin": "extrathyroidal_extension"},
        {"shape": "taller_than_wide"},
        {"echogenicity": "hypoechoic"},
        {"echogenicity": "very_hypoechoic"},
    ],
)
def test_spongiform_with_suspicious_features_is_refused_not_scored(change: dict[str, object]) -> None:
    # Scoring these as TR4/TR5 would send a nodule the reader called spongiform to FNA; the white paper says to
    # reconsider the choice of spongiform instead.
    with pytest.raises(CalculatorInputError, match="reconsider spongiform"):
        tirads(**{**SPONGIFORM, **change}, max_diameter_cm=2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("composition", ["spongiform", "mixed", "solid"])
def test_anechoic_applies_only_to_cystic_nodules(composition: str) -> None:
    with pytest.raises(CalculatorInputError, match="anechoic applies only to cystic"):
        tirads(composition, "anechoic", "wider_than_tall", "smooth", max_diameter_cm=2.0)
    assert tirads("cystic", "anechoic", "wider_than_tall", "smooth").category == "TR1"


@pytest.mark.parametrize(
    ("features", "foci", "level"),
    [
        ({"composition": "cystic", "echogenicity": "anechoic"}, ["peripheral"], "TR2"),  # 2 points
        ({"composition": "mixed", "echogenicity": "isoechoic"}, ["none"], "TR2"),  # 2 points
        ({"composition": "mixed", "echogenicity": "hypoechoic"}, ["none"], "TR3"),  # 3 points
        ({"composition": "cystic", "echogenicity": "anechoic"}, ["punctate"], "TR3"),  # 3 points
    ],
)
def test_low_point_totals(features: dict[str, str], foci: list[str], level: str) -> None:
    result = tirads(**features, shape="wider_than_tall", margin="smooth", echogenic_foci=foci, max_diameter_cm=1.0)
    assert result.category == level


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_diameter_cm": 1e308}, "max_diameter_cm"),
        ({"max_diameter_cm": float("nan")}, "max_diameter_cm"),
        ({"max_diameter_cm": float("inf")}, "max_diameter_cm"),
        ({"max_diameter_cm": 20.1}, "max_diameter_cm"),
        ({"max_diameter_mm": 200.1}, "max_diameter_mm"),
        ({"max_diameter_mm": -0.1}, "max_diameter_mm"),
        ({"max_diameter_cm": True}, "max_diameter_cm"),
        ({"max_diameter_cm": 1.2, "prior_volume_ml": 1.0, "current_volume_ml": 1e9}, "current_volume_ml"),
        ({"max_diameter_cm": 1.2, "prior_dimensions_mm": [1, 2, 3, 4], "current_dimensions_mm": [1, 2, 3, 4]},
         "prior_dimensions_mm"),
    ],
)  # fmt: skip
def test_tirads_implausible_inputs_name_the_argument(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(CalculatorInputError, match=argument):
        tirads(**TR4, **kwargs)  # type: ignore[arg-type]


def test_tirads_plausibility_bound_is_inclusive() -> None:
    assert tirads(**TR4, max_diameter_cm=20.0).category == "TR4"
    assert tr_level(17) == 5
    with pytest.raises(CalculatorInputError, match="points"):
        tr_level(18)
