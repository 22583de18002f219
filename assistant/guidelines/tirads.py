"""ACR TI-RADS (Tessler et al., JACR 2017;14:587-595): thyroid nodule points, TR level and FNA/follow-up.

Points per feature, TR levels and the FNA / follow-up size thresholds follow the white paper's chart as
restated in ../shared/reference/guideline_facts.md section 4 (Radiopaedia + slideshare; radcalcs' point
values for echogenicity are wrong and were not used).

Composition rules (guideline_facts.md section 9 [C], Radiopaedia "ACR TI-RADS" and the ACR lexicon slides):
- spongiform: no further points are added, so a spongiform nodule is TR1; if suspicious features are
  present, the white paper says to reconsider the choice of spongiform, so such input is refused;
- anechoic echogenicity applies only to cystic or almost completely cystic nodules.
A total of 1 point has no TR level in the chart (TR1 is 0 points, TR2 is 2 points). The white paper notes that
every nodule other than a 0-point one merits at least 2 points (a mixed nodule scores the echogenicity of its
solid part); no source says what a 1-point total (e.g. cystic with a macrocalcification) means, so it is
refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum, StrEnum
from typing import TypeVar

from assistant.guidelines.common import (
    CalculatorInputError,
    GuidelineResult,
    MissingParameterError,
    check_positive,
    coerce_enum,
    round_half_up,
)

GUIDELINE = "ACR TI-RADS"
VERSION = "2017"
SOURCE = "Tessler FN et al. ACR TI-RADS white paper, JACR 2017;14:587-595 (points chart and FNA/follow-up table)"


class TiComposition(StrEnum):
    """Composition (choose one)."""

    CYSTIC = "cystic"
    SPONGIFORM = "spongiform"
    MIXED = "mixed"
    SOLID = "solid"

    @classmethod
    def _missing_(cls, value: object) -> TiComposition | None:
        aliases = {
            "almost_completely_cystic": cls.CYSTIC,
            "mixed_cystic_and_solid": cls.MIXED,
            "mixed_cystic_solid": cls.MIXED,
            "almost_completely_solid": cls.SOLID,
        }
        return aliases.get(str(value).lower())


class Echogenicity(StrEnum):
    """Echogenicity (choose one)."""

    ANECHOIC = "anechoic"
    HYPERECHOIC = "hyperechoic"
    ISOECHOIC = "isoechoic"
    HYPOECHOIC = "hypoechoic"
    VERY_HYPOECHOIC = "very_hypoechoic"

    @classmethod
    def _missing_(cls, value: object) -> Echogenicity | None:
        aliases = {
            "markedly_hypoechoic": cls.VERY_HYPOECHOIC,
            "very_hypo": cls.VERY_HYPOECHOIC,
            "hypo": cls.HYPOECHOIC,
            "iso": cls.ISOECHOIC,
            "hyper": cls.HYPERECHOIC,
        }
        return aliases.get(str(value).lower())


class Shape(StrEnum):
    """Shape on the transverse image (choose one)."""

    WIDER_THAN_TALL = "wider_than_tall"
    TALLER_THAN_WIDE = "taller_than_wide"


class Margin(StrEnum):
    """Margin (choose one)."""

    SMOOTH = "smooth"
    ILL_DEFINED = "ill_defined"
    LOBULATED = "lobulated"
    IRREGULAR = "irregular"
    EXTRATHYROIDAL_EXTENSION = "extrathyroidal_extension"

    @classmethod
    def _missing_(cls, value: object) -> Margin | None:
        aliases = {
            "ete": cls.EXTRATHYROIDAL_EXTENSION,
            "extra_thyroidal_extension": cls.EXTRATHYROIDAL_EXTENSION,
            "lobulated_or_irregular": cls.LOBULATED,
        }
        return aliases.get(str(value).lower())


class EchogenicFocus(StrEnum):
    """Echogenic foci (all that apply)."""

    NONE = "none"
    COMET_TAIL = "comet_tail"
    MACROCALCIFICATIONS = "macrocalcifications"
    PERIPHERAL = "peripheral"
    PUNCTATE = "punctate"

    @classmethod
    def _missing_(cls, value: object) -> EchogenicFocus | None:
        aliases = {
            "large_comet_tail": cls.COMET_TAIL,
            "macrocalcification": cls.MACROCALCIFICATIONS,
            "macrocalcs": cls.MACROCALCIFICATIONS,
            "rim": cls.PERIPHERAL,
            "rim_calcification": cls.PERIPHERAL,
            "peripheral_calcification": cls.PERIPHERAL,
            "punctate_echogenic_foci": cls.PUNCTATE,
            "microcalcifications": cls.PUNCTATE,
        }
        return aliases.get(str(value).lower())


POINTS: dict[Enum, int] = {
    TiComposition.CYSTIC: 0,
    TiComposition.SPONGIFORM: 0,
    TiComposition.MIXED: 1,
    TiComposition.SOLID: 2,
    Echogenicity.ANECHOIC: 0,
    Echogenicity.HYPERECHOIC: 1,
    Echogenicity.ISOECHOIC: 1,
    Echogenicity.HYPOECHOIC: 2,
    Echogenicity.VERY_HYPOECHOIC: 3,
    Shape.WIDER_THAN_TALL: 0,
    Shape.TALLER_THAN_WIDE: 3,
    Margin.SMOOTH: 0,
    Margin.ILL_DEFINED: 0,
    Margin.LOBULATED: 2,
    Margin.IRREGULAR: 2,
    Margin.EXTRATHYROIDAL_EXTENSION: 3,
    EchogenicFocus.NONE: 0,
    EchogenicFocus.COMET_TAIL: 0,
    EchogenicFocus.MACROCALCIFICATIONS: 1,
    EchogenicFocus.PERIPHERAL: 2,
    EchogenicFocus.PUNCTATE: 3,
}

# Largest possible total: solid 2 + very hypoechoic 3 + taller-than-wide 3 + extrathyroidal extension 3
# + macrocalcifications 1 + peripheral 2 + punctate 3.
MAX_POINTS = 17
# Input-validation bounds, not guideline facts: larger thyroid nodules or volumes are typing or unit errors.
MAX_NODULE_MM = 200.0
MAX_VOLUME_ML = 2000.0

# TR level -> (label, FNA threshold mm, follow-up threshold mm, follow-up schedule, malignancy risk)
_LEVELS: dict[int, tuple[str, float | None, float | None, str, str]] = {
    1: ("benign", None, None, "", "0.3%"),
    2: ("not suspicious", None, None, "", "1.5%"),
    3: ("mildly suspicious", 25.0, 15.0, "US at 1, 3 and 5 years", "4.8%"),
    4: ("moderately suspicious", 15.0, 10.0, "US at 1, 2, 3 and 5 years", "9.1%"),
    5: ("highly suspicious", 10.0, 5.0, "annual US for up to 5 years", "35%"),
}


def tirads_points(
    composition: TiComposition | str,
    echogenicity: Echogenicity | str,
    shape: Shape | str,
    margin: Margin | str,
    echogenic_foci: Iterable[EchogenicFocus | str] | EchogenicFocus | str = (EchogenicFocus.NONE,),
) -> tuple[int, dict[str, object]]:
    """Total ACR TI-RADS points and the coerced features."""
    comp = coerce_enum(TiComposition, composition, "composition")
    echo = coerce_enum(Echogenicity, echogenicity, "echogenicity")
    shp = coerce_enum(Shape, shape, "shape")
    mrg = coerce_enum(Margin, margin, "margin")
    raw_foci = [echogenic_foci] if isinstance(echogenic_foci, str | EchogenicFocus) else list(echogenic_foci)
    foci = tuple(dict.fromkeys(coerce_enum(EchogenicFocus, f, "echogenic_foci") for f in raw_foci))
    if not foci:
        foci = (EchogenicFocus.NONE,)
    if EchogenicFocus.NONE in foci and len(foci) > 1:
        raise CalculatorInputError(
            f"echogenic_foci={[f.value for f in foci]!r}: 'none' cannot be combined with other foci"
        )
    # Anechoic applies to cystic or almost completely cystic nodules only (RP-TI; ACR lexicon).
    if echo is Echogenicity.ANECHOIC and comp is not TiComposition.CYSTIC:
        raise CalculatorInputError(
            f"echogenicity='anechoic' with composition={comp.value!r}: anechoic applies only to cystic or almost "
            "completely cystic nodules; score the echogenicity of the solid component instead"
        )
    if comp is TiComposition.SPONGIFORM:
        # Spongiform: no further points are added (TR1). Suspicious features mean the choice of spongiform
        # should be reconsidered (RP-TI; ACR lexicon), so they are refused instead of being scored.
        suspicious = [
            label
            for label, present in (
                (f"echogenicity={echo.value!r}", echo in (Echogenicity.HYPOECHOIC, Echogenicity.VERY_HYPOECHOIC)),
                ("shape='taller_than_wide'", shp is Shape.TALLER_THAN_WIDE),
                (f"margin={mrg.value!r}", POINTS[mrg] > 0),
                (
                    f"echogenic_foci={[f.value for f in foci if POINTS[f] > 0]!r}",
                    any(POINTS[f] > 0 for f in foci),
                ),
            )
            if present
        ]
        if suspicious:
            raise CalculatorInputError(
                f"composition='spongiform' with {', '.join(suspicious)}: a spongiform nodule adds no further points; "
                "with suspicious features, reconsider spongiform (re-score the composition as mixed or solid)"
            )
        total = 0
    else:
        total = POINTS[comp] + POINTS[echo] + POINTS[shp] + POINTS[mrg] + sum(POINTS[f] for f in foci)
    features: dict[str, object] = {
        "composition": comp,
        "echogenicity": echo,
        "shape": shp,
        "margin": mrg,
        "echogenic_foci": foci,
    }
    return total, features


def tr_level(points: int) -> int:
    """TR level: 0 -> TR1, 2 -> TR2, 3 -> TR3, 4-6 -> TR4, >=7 -> TR5; 1 point is refused (not in the chart)."""
    if isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= MAX_POINTS:
        raise CalculatorInputError(f"points={points!r} must be a whole number from 0 to {MAX_POINTS}")
    if points == 0:
        return 1
    if points == 1:
        # The chart gives 0 points -> TR1 and 2 points -> TR2; a 1-point total is not in it.
        raise CalculatorInputError(
            "points=1: a total of 1 point is not in the confirmed table (TR1 is 0 points, TR2 is 2 points); "
            "check the features (a mixed nodule scores the echogenicity of its solid component)"
        )
    if points == 2:
        return 2
    if points == 3:
        return 3
    if points <= 6:
        return 4
    return 5


def significant_enlargement(
    prior_dimensions_mm: Sequence[float] | None = None,
    current_dimensions_mm: Sequence[float] | None = None,
    prior_volume_ml: float | None = None,
    current_volume_ml: float | None = None,
) -> bool:
    """ACR TI-RADS: >=20% and >=2 mm increase in at least two dimensions, or >=50% increase in volume."""
    by_dims = False
    if prior_dimensions_mm is not None or current_dimensions_mm is not None:
        if prior_dimensions_mm is None or current_dimensions_mm is None:
            raise CalculatorInputError("give both prior_dimensions_mm and current_dimensions_mm")
        if len(prior_dimensions_mm) != len(current_dimensions_mm) or not 2 <= len(prior_dimensions_mm) <= 3:
            raise CalculatorInputError(
                f"prior_dimensions_mm={list(prior_dimensions_mm)!r} and current_dimensions_mm="
                f"{list(current_dimensions_mm)!r} must list the same 2 or 3 dimensions"
            )
        grown = 0
        for i, (before, after) in enumerate(zip(prior_dimensions_mm, current_dimensions_mm, strict=True)):
            b = _nodule_size(before, f"prior_dimensions_mm[{i}]", 1)
            a = _nodule_size(after, f"current_dimensions_mm[{i}]", 1)
            # Compare with a small tolerance so 10 -> 12 mm counts as exactly 20% and 2 mm.
            if a - b >= 2 - 1e-9 and a >= b * 1.2 - 1e-9:
                grown += 1
        by_dims = grown >= 2
    by_volume = False
    if prior_volume_ml is not None or current_volume_ml is not None:
        if prior_volume_ml is None or current_volume_ml is None:
            raise CalculatorInputError("give both prior_volume_ml and current_volume_ml")
        before_v = check_positive(prior_volume_ml, "prior_volume_ml")
        after_v = check_positive(current_volume_ml, "current_volume_ml")
        for name, volume in (("prior_volume_ml", before_v), ("current_volume_ml", after_v)):
            if volume > MAX_VOLUME_ML:
                raise CalculatorInputError(
                    f"{name}={volume!r} is not a plausible nodule volume (over {MAX_VOLUME_ML:g} ml)"
                )
        by_volume = after_v >= before_v * 1.5 - 1e-9
    return by_dims or by_volume


T = TypeVar("T")


def _nodule_size(value: float, argument: str, per_unit_mm: float) -> float:
    """A positive, finite and plausible nodule diameter (the bound is input validation, not a guideline fact)."""
    number = check_positive(value, argument)
    if number * per_unit_mm > MAX_NODULE_MM:
        unit = "cm" if per_unit_mm == 10 else "mm"
        raise CalculatorInputError(
            f"{argument}={value!r} is not a plausible thyroid nodule diameter (over {MAX_NODULE_MM / per_unit_mm:g} "
            f"{unit}); check the units"
        )
    return number


def _require(value: T | None, name: str, question: str) -> T:
    if value is None:
        raise MissingParameterError(name, question)
    return value


def tirads(
    composition: TiComposition | str | None = None,
    echogenicity: Echogenicity | str | None = None,
    shape: Shape | str | None = None,
    margin: Margin | str | None = None,
    echogenic_foci: Iterable[EchogenicFocus | str] | EchogenicFocus | str = (EchogenicFocus.NONE,),
    max_diameter_cm: float | None = None,
    *,
    max_diameter_mm: float | None = None,
    prior_level: int | None = None,
    prior_dimensions_mm: Sequence[float] | None = None,
    current_dimensions_mm: Sequence[float] | None = None,
    prior_volume_ml: float | None = None,
    current_volume_ml: float | None = None,
) -> GuidelineResult:
    """ACR TI-RADS level and FNA / follow-up recommendation for one thyroid nodule."""
    points, inputs = tirads_points(
        _require(composition, "composition", "What is the nodule composition (cystic, spongiform, mixed, solid)?"),
        _require(echogenicity, "echogenicity", "What is the echogenicity (anechoic, hyper/iso, hypo, very hypo)?"),
        _require(shape, "shape", "Is the nodule wider-than-tall or taller-than-wide?"),
        _require(margin, "margin", "What is the margin (smooth, ill-defined, lobulated/irregular, extrathyroidal)?"),
        echogenic_foci,
    )
    inputs["points"] = points
    level = tr_level(points)
    label, fna_mm, fu_mm, schedule, risk = _LEVELS[level]
    notes: list[str] = []
    unverified = False
    if inputs["composition"] is TiComposition.SPONGIFORM:
        notes.append("Spongiform composition: no further points are added (TR1).")

    if max_diameter_cm is not None and max_diameter_mm is not None:
        raise CalculatorInputError("give max_diameter_cm or max_diameter_mm, not both")
    size_mm: float | None = None
    if max_diameter_cm is not None:
        size_mm = round_half_up(_nodule_size(max_diameter_cm, "max_diameter_cm", 10) * 10, 3)
    elif max_diameter_mm is not None:
        size_mm = _nodule_size(max_diameter_mm, "max_diameter_mm", 1)

    head = f"TR{level} ({label}, {points} points)."
    if fna_mm is None or fu_mm is None:
        action = "No FNA and no follow-up needed."
    elif size_mm is None:
        raise MissingParameterError("max_diameter_cm", "What is the maximum diameter of the nodule (cm)?")
    else:
        size_text = f"{size_mm / 10:g} cm"
        if size_mm >= fna_mm:
            action = f"Maximum diameter {size_text} >= {fna_mm / 10:g} cm: FNA recommended."
        elif size_mm >= fu_mm:
            action = (
                f"Maximum diameter {size_text} >= {fu_mm / 10:g} cm but < {fna_mm / 10:g} cm: "
                f"US follow-up ({schedule})."
            )
        else:
            action = f"Maximum diameter {size_text} < {fu_mm / 10:g} cm: no FNA or follow-up needed."
    if size_mm is not None:
        inputs["max_diameter_cm"] = size_mm / 10

    if any(v is not None for v in (prior_dimensions_mm, current_dimensions_mm, prior_volume_ml, current_volume_ml)):
        grown = significant_enlargement(prior_dimensions_mm, current_dimensions_mm, prior_volume_ml, current_volume_ml)
        inputs["significant_enlargement"] = grown
        action += (
            " Significant interval enlargement (>=20% and >=2 mm in two dimensions, or >=50% in volume)."
            if grown
            else " No significant interval enlargement."
        )
    if prior_level is not None:
        if isinstance(prior_level, bool) or prior_level not in _LEVELS:
            raise CalculatorInputError(f"prior_level={prior_level!r} must be a TR level 1-5")
        inputs["prior_level"] = prior_level
        if level > prior_level:
            action += f" The level rose from TR{prior_level} to TR{level}: next follow-up US in 1 year."
    return GuidelineResult(
        calculator="tirads",
        guideline=GUIDELINE,
        version=VERSION,
        category=f"TR{level}",
        recommendation=f"{head} {action}",
        inputs=inputs,
        section_id=f"ti-rads-2017/tr{level}",
        source=SOURCE,
        malignancy_risk=risk,
        unverified=unverified,
        notes=tuple(notes),
    )
