"""Fleischner Society 2017: incidental pulmonary nodules on CT in adults.

Implements the solid-nodule and subsolid-nodule tables of MacMahon et al., Radiology 2017;284:228-243
(doi:10.1148/radiol.2017161659), as restated in ../shared/reference/guideline_facts.md section 1.
Size is the mean of the long and short axes rounded to the nearest millimetre (MacMahon 2017, table
footnote; so "<6 mm" means a rounded mean of 5 mm or less); the solid component of a part-solid nodule is
rounded the same way. Volume thresholds are 100 and 250 mm^3.
"""

from __future__ import annotations

from enum import Enum, StrEnum

from assistant.guidelines.common import (
    CalculatorInputError,
    Composition,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    check_non_negative,
    check_positive,
    coerce_enum,
    fmt_mm,
    resolve_size,
    round_half_up,
)

GUIDELINE = "Fleischner Society"
VERSION = "2017"
SOURCE = "MacMahon H et al. Radiology 2017;284:228-243, Table (solid and subsolid nodules)"
MIN_AGE = 35  # scope: adults aged 35 or older


class NoduleCount(StrEnum):
    """Single nodule or multiple nodules (the most suspicious one guides management)."""

    SINGLE = "single"
    MULTIPLE = "multiple"

    @classmethod
    def _missing_(cls, value: object) -> NoduleCount | None:
        aliases = {
            "solitary": cls.SINGLE,
            "one": cls.SINGLE,
            "1": cls.SINGLE,
            "multi": cls.MULTIPLE,
            "several": cls.MULTIPLE,
        }
        return aliases.get(str(value).lower())


class Risk(StrEnum):
    """Patient risk for lung cancer (smoking, carcinogen exposure, family history, emphysema, fibrosis...)."""

    LOW = "low"
    HIGH = "high"


class _SizeClass(Enum):
    SMALL = "<6 mm"
    MEDIUM = "6-8 mm"
    LARGE = ">8 mm"


def _check_scope(age: int | None, known_cancer: bool, immunosuppressed: bool, screening: bool) -> None:
    suggestion = "see fleischner-2017/scope"
    if screening:
        raise NotApplicableError(
            GUIDELINE, "lung cancer screening examinations are excluded", "use Lung-RADS for screening CT"
        )
    if known_cancer:
        raise NotApplicableError(GUIDELINE, "patients with a known primary cancer are excluded", suggestion)
    if immunosuppressed:
        raise NotApplicableError(GUIDELINE, "immunosuppressed patients are excluded", suggestion)
    if age is not None:
        if isinstance(age, bool) or not isinstance(age, int | float) or age < 0 or age > 130:
            raise CalculatorInputError(f"age={age!r} must be an age in years")
        if age < MIN_AGE:
            raise NotApplicableError(GUIDELINE, f"age {age:g} is under {MIN_AGE} years", suggestion)


def fleischner(
    composition: Composition | str | None = None,
    count: NoduleCount | str = NoduleCount.SINGLE,
    size_mm: float | None = None,
    *,
    long_axis_mm: float | None = None,
    short_axis_mm: float | None = None,
    volume_mm3: float | None = None,
    risk: Risk | str | None = None,
    solid_component_mm: float | None = None,
    age: int | None = None,
    known_cancer: bool = False,
    immunosuppressed: bool = False,
    screening: bool = False,
) -> GuidelineResult:
    """Fleischner 2017 management of an incidental pulmonary nodule (MacMahon 2017, Table)."""
    _check_scope(age, known_cancer, immunosuppressed, screening)
    if composition is None:
        raise MissingParameterError("composition", "Is the nodule solid, ground-glass or part-solid?")
    comp = coerce_enum(Composition, composition, "composition")
    number = coerce_enum(NoduleCount, count, "count")
    risk_level = coerce_enum(Risk, risk, "risk") if risk is not None else None
    mean = resolve_size(size_mm, long_axis_mm, short_axis_mm)
    inputs: dict[str, object] = {"composition": comp, "count": number}
    notes: list[str] = []

    if mean is not None and volume_mm3 is not None:
        raise CalculatorInputError("give either a diameter (size_mm or axes) or volume_mm3, not both")
    if mean is None and volume_mm3 is None:
        raise MissingParameterError("size_mm", "What is the nodule size (mean of long and short axis, mm)?")
    if mean is not None:
        # Fleischner 2017: the mean of long and short axes is rounded to the nearest whole millimetre.
        rounded = round_half_up(mean)
        inputs["mean_diameter_mm"] = round(mean, 2)
        inputs["rounded_diameter_mm"] = rounded
        if rounded != mean:
            notes.append(f"Mean diameter {mean:g} mm is rounded to {fmt_mm(rounded)} as the guideline directs.")
        size_class = _SizeClass.SMALL if rounded < 6 else _SizeClass.MEDIUM if rounded <= 8 else _SizeClass.LARGE
        size_text = fmt_mm(rounded)
    else:
        volume = check_positive(volume_mm3, "volume_mm3")
        inputs["volume_mm3"] = volume
        # Volume equivalents: <100 mm^3 ~ <6 mm, 100-250 mm^3 ~ 6-8 mm, >250 mm^3 ~ >8 mm.
        size_class = _SizeClass.SMALL if volume < 100 else _SizeClass.MEDIUM if volume <= 250 else _SizeClass.LARGE
        size_text = f"{volume:g} mm^3"
    if age is not None:
        inputs["age"] = age

    if comp is Composition.SOLID:
        if solid_component_mm is not None:
            raise CalculatorInputError(f"solid_component_mm={solid_component_mm!r} only applies to part-solid nodules")
        return _solid(number, size_class, size_text, risk_level, inputs, notes)
    if risk_level is not None:
        inputs["risk"] = risk_level
        notes.append("Patient risk does not change the subsolid-nodule recommendations.")
    return _subsolid(comp, number, size_class, size_text, solid_component_mm, inputs, notes)


_SOLID: dict[tuple[NoduleCount, _SizeClass, Risk], str] = {
    (NoduleCount.SINGLE, _SizeClass.SMALL, Risk.LOW): "No routine follow-up.",
    (
        NoduleCount.SINGLE,
        _SizeClass.SMALL,
        Risk.HIGH,
    ): "Optional CT at 12 months (especially with suspicious morphology and/or upper-lobe location).",
    (NoduleCount.SINGLE, _SizeClass.MEDIUM, Risk.LOW): "CT at 6-12 months, then consider CT at 18-24 months.",
    (NoduleCount.SINGLE, _SizeClass.MEDIUM, Risk.HIGH): "CT at 6-12 months, then CT at 18-24 months.",
    (NoduleCount.SINGLE, _SizeClass.LARGE, Risk.LOW): "Consider CT at 3 months, PET/CT, or tissue sampling.",
    (NoduleCount.SINGLE, _SizeClass.LARGE, Risk.HIGH): "Consider CT at 3 months, PET/CT, or tissue sampling.",
    (NoduleCount.MULTIPLE, _SizeClass.SMALL, Risk.LOW): "No routine follow-up.",
    (NoduleCount.MULTIPLE, _SizeClass.SMALL, Risk.HIGH): "Optional CT at 12 months.",
    (
        NoduleCount.MULTIPLE,
        _SizeClass.MEDIUM,
        Risk.LOW,
    ): "CT at 3-6 months, then consider CT at 18-24 months.",
    (NoduleCount.MULTIPLE, _SizeClass.MEDIUM, Risk.HIGH): "CT at 3-6 months, then CT at 18-24 months.",
    (NoduleCount.MULTIPLE, _SizeClass.LARGE, Risk.LOW): "CT at 3-6 months, then consider CT at 18-24 months.",
    (NoduleCount.MULTIPLE, _SizeClass.LARGE, Risk.HIGH): "CT at 3-6 months, then CT at 18-24 months.",
}


def _solid(
    number: NoduleCount,
    size_class: _SizeClass,
    size_text: str,
    risk: Risk | None,
    inputs: dict[str, object],
    notes: list[str],
) -> GuidelineResult:
    if risk is None:
        low = _SOLID[(number, size_class, Risk.LOW)]
        if low != _SOLID[(number, size_class, Risk.HIGH)]:
            raise MissingParameterError("risk", "Is the patient low or high risk?")
        risk_text = "low or high risk"
    else:
        inputs["risk"] = risk
        risk_text = f"{risk.value} risk"
    key_risk = risk or Risk.LOW
    action = _SOLID[(number, size_class, key_risk)]
    if number is NoduleCount.MULTIPLE:
        notes.append("With multiple nodules, the most suspicious nodule guides management.")
    category = f"solid {number.value} {size_class.value} {risk_text}"
    return GuidelineResult(
        calculator="fleischner",
        guideline=GUIDELINE,
        version=VERSION,
        category=category,
        recommendation=f"{number.value.capitalize()} solid nodule, {size_text}, {risk_text}: {action}",
        inputs=inputs,
        section_id=f"fleischner-2017/solid-{number.value}",
        source=SOURCE,
        notes=tuple(notes),
    )


def _subsolid(
    comp: Composition,
    number: NoduleCount,
    size_class: _SizeClass,
    size_text: str,
    solid_component_mm: float | None,
    inputs: dict[str, object],
    notes: list[str],
) -> GuidelineResult:
    small = size_class is _SizeClass.SMALL
    band = "<6 mm" if small else ">=6 mm"
    solid_part: float | None = None
    if solid_component_mm is not None:
        if comp is not Composition.PART_SOLID:
            raise CalculatorInputError(
                f"solid_component_mm={solid_component_mm!r} given for a {comp.value} nodule; "
                "only part-solid nodules have a solid component"
            )
        measured = check_non_negative(solid_component_mm, "solid_component_mm")
        # The table footnote (MacMahon 2017) rounds the table's dimensions to the nearest millimetre; the
        # solid-component threshold (6 mm) is one of them, so the solid component is rounded the same way.
        # At the 6 mm boundary this is also the cautious reading (5.5 mm counts as 6 mm: more follow-up).
        solid_part = round_half_up(measured)
        inputs["solid_component_mm"] = solid_part
        if solid_part != measured:
            notes.append(f"Solid component {measured:g} mm is rounded to {fmt_mm(solid_part)} like the nodule.")
    if number is NoduleCount.MULTIPLE:
        action = (
            "CT at 3-6 months; if stable, consider CT at 2 and 4 years."
            if small
            else "CT at 3-6 months, then manage according to the most suspicious nodule."
        )
        label = "part-solid" if comp is Composition.PART_SOLID else "ground-glass"
        return _result(
            f"subsolid multiple {band}",
            f"Multiple subsolid ({label}) nodules, {size_text}: {action}",
            "fleischner-2017/subsolid-multiple",
            inputs,
            notes,
        )
    if comp is Composition.GROUND_GLASS:
        action = (
            "No routine follow-up."
            if small
            else "CT at 6-12 months to confirm persistence, then CT every 2 years until 5 years."
        )
        return _result(
            f"ground-glass single {band}",
            f"Single ground-glass nodule, {size_text}: {action}",
            "fleischner-2017/subsolid-single-ground-glass",
            inputs,
            notes,
        )
    # Single part-solid nodule.
    if solid_part is not None:
        total = inputs.get("rounded_diameter_mm")
        if isinstance(total, float) and solid_part > total:
            raise CalculatorInputError(
                f"solid_component_mm={solid_component_mm!r} is larger than the whole nodule ({total:g} mm)"
            )
    if small:
        # PMC7177089 Table 2 (Fleischner column): part-solid <6 mm needs no routine follow-up.
        action = "No routine follow-up."
        category = "part-solid single <6 mm"
    elif solid_part is None:
        raise MissingParameterError(
            "solid_component_mm", "How large is the solid component of the part-solid nodule (mm)?"
        )
    elif solid_part < 6:
        action = (
            "CT at 3-6 months to confirm persistence; if unchanged and the solid component stays <6 mm, "
            "annual CT for 5 years."
        )
        category = "part-solid single >=6 mm, solid component <6 mm"
    else:
        action = (
            "Consider a short-term CT at 3-6 months; consider PET/CT, biopsy or resection if the morphology "
            "is particularly suspicious, the solid component grows, or the solid component is >8 mm."
        )
        if solid_part > 8:
            action += f" The solid component measures {fmt_mm(solid_part)} (>8 mm)."
        category = "part-solid single >=6 mm, solid component >=6 mm"
    return _result(
        category,
        f"Single part-solid nodule, {size_text}: {action}",
        "fleischner-2017/subsolid-single-part-solid",
        inputs,
        notes,
    )


def _result(
    category: str, recommendation: str, section_id: str, inputs: dict[str, object], notes: list[str]
) -> GuidelineResult:
    return GuidelineResult(
        calculator="fleischner",
        guideline=GUIDELINE,
        version=VERSION,
        category=category,
        recommendation=recommendation,
        inputs=inputs,
        section_id=section_id,
        source=SOURCE,
        notes=tuple(notes),
    )
