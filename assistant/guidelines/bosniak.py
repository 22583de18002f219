"""Bosniak classification of cystic renal masses, version 2019 (Silverman et al., Radiology 2019;292:475-488).

Class definitions as restated in ../shared/reference/guideline_facts.md section 5. Thicknesses are stated
by the classification in whole millimetres (thin <=2, minimally thickened 3, thick >=4), so measured
walls, septa and protrusions are rounded to the nearest millimetre before classifying.

Class II CT sub-types and the IIF follow-up schedule (formerly unconfirmed) come from restatements of the
v2019 table (source keys ``bosniak-2019-radiology-assistant`` and ``bosniak-2019-restatements`` of
tests/data/guideline_cases/sources.toml): class II has six types, all well defined with a thin smooth wall -
few thin septa or calcification; homogeneous >=70 HU at noncontrast CT; homogeneous nonenhancing >20 HU at
renal mass protocol CT; homogeneous -9 to 20 HU at noncontrast CT; homogeneous 21-30 HU at portal venous
phase CT; homogeneous low-attenuation masses too small to characterise. IIF: imaging at 6 and 12 months,
then yearly to 5 years.

Attenuation is not enhancement: ``unenhanced_hu`` is the CT number on noncontrast images and ``enhanced_hu``
the CT number on contrast-enhanced (portal venous / nephrographic) images; enhancement of the mass is only
their difference (ACR renal 2018: >=20 HU enhancing, >10 to <20 equivocal, <=10 none). ``enhancing`` is
about walls, septa and nodules, never derived from a single attenuation value.
"""

from __future__ import annotations

from enum import StrEnum

from assistant.guidelines.common import (
    CalculatorInputError,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    check_hu,
    check_non_negative,
    coerce_enum,
    round_half_up,
)

GUIDELINE = "Bosniak classification"
VERSION = "2019"
SOURCE = "Silverman SG et al. Bosniak Classification of Cystic Renal Masses, Version 2019. Radiology 2019"
SIMPLE_FLUID_HU = (-9.0, 20.0)  # v2019 class I: simple fluid attenuation on CT [C]
HYPERDENSE_HU = 70.0  # v2019 class II: homogeneous >=70 HU on unenhanced CT [C]
PORTAL_VENOUS_II_HU = (21.0, 30.0)  # v2019 class II: homogeneous 21-30 HU at portal venous phase CT
NONENHANCING_DENSE_HU = 20.0  # v2019 class II: homogeneous nonenhancing >20 HU at renal mass protocol CT
ENHANCING_HU = 20.0  # ACR renal 2018: an increase >=20 HU is enhancement [C]
EQUIVOCAL_HU = 10.0  # ACR renal 2018: >10 to <20 HU is equivocal, <=10 HU no enhancement [C]
IIF_SCHEDULE = "at 6 and 12 months, then yearly for 5 years"

# Input-validation bounds, not guideline facts: beyond these a value is a typing or unit error.
MAX_THICKNESS_MM = 100.0
MAX_SEPTA = 1000


class Modality(StrEnum):
    """Imaging modality the mass was characterised with."""

    CT = "ct"
    MRI = "mri"

    @classmethod
    def _missing_(cls, value: object) -> Modality | None:
        return {"mr": cls.MRI}.get(str(value).lower())


class ProtrusionMargin(StrEnum):
    """Margin of a convex protrusion from a wall or septum with the wall/septum."""

    OBTUSE = "obtuse"
    ACUTE = "acute"


_CLASSES = {
    "I": ("class-i", "Benign simple cyst: no follow-up.", "benign"),
    "II": ("class-ii", "Benign: no follow-up.", "benign"),
    "IIF": ("class-iif", f"Imaging follow-up {IIF_SCHEDULE}.", "roughly 10% malignant"),
    "III": ("class-iii", "Indeterminate: surgery or active surveillance.", "about 50% malignant"),
    "IV": ("class-iv", "Treat as likely malignant (treatment).", "about 90% malignant"),
}


def bosniak(
    modality: Modality | str,
    wall_thickness_mm: float | None = None,
    septa_count: int = 0,
    septa_thickness_mm: float | None = None,
    *,
    protrusion_mm: float | None = None,
    protrusion_margin: ProtrusionMargin | str | None = None,
    enhancing: bool = True,
    attenuation_hu: float | None = None,
    homogeneous: bool = True,
    calcification: bool = False,
    contrast: bool = True,
    t2_csf_like: bool = False,
    t1_markedly_hyperintense: bool = False,
    t1_heterogeneous_hyperintense: bool = False,
    unenhanced_hu: float | None = None,
    enhanced_hu: float | None = None,
    too_small_to_characterize: bool = False,
) -> GuidelineResult:
    """Bosniak 2019 class and management of a cystic renal mass (CT or MRI features).

    ``attenuation_hu`` is the older single value: unenhanced when ``contrast=False``, otherwise contrast-enhanced
    of unknown phase. ``unenhanced_hu`` / ``enhanced_hu`` name the phase explicitly; their difference is the
    enhancement of the mass.
    """
    mod = coerce_enum(Modality, modality, "modality")
    inputs: dict[str, object] = {"modality": mod}
    notes: list[str] = []
    for flag, value in (
        ("enhancing", enhancing),
        ("homogeneous", homogeneous),
        ("calcification", calcification),
        ("contrast", contrast),
        ("t2_csf_like", t2_csf_like),
        ("t1_markedly_hyperintense", t1_markedly_hyperintense),
        ("t1_heterogeneous_hyperintense", t1_heterogeneous_hyperintense),
        ("too_small_to_characterize", too_small_to_characterize),
    ):
        if not isinstance(value, bool):
            raise CalculatorInputError(f"{flag}={value!r} must be true or false")
    if mod is Modality.CT and (t2_csf_like or t1_markedly_hyperintense or t1_heterogeneous_hyperintense):
        raise CalculatorInputError("T1/T2 signal features were given with modality='ct'; they apply to MRI")
    for name, hu_value in (
        ("attenuation_hu", attenuation_hu),
        ("unenhanced_hu", unenhanced_hu),
        ("enhanced_hu", enhanced_hu),
    ):
        if hu_value is None:
            continue
        if mod is Modality.MRI:
            raise CalculatorInputError(f"{name}={hu_value!r} was given with modality='mri'; it is a CT value")
        check_hu(hu_value, name)
    if mod is Modality.MRI and too_small_to_characterize:
        raise CalculatorInputError("too_small_to_characterize=True is a CT class II sub-type; modality='mri'")
    if isinstance(septa_count, bool) or not isinstance(septa_count, int) or not 0 <= septa_count <= MAX_SEPTA:
        raise CalculatorInputError(f"septa_count={septa_count!r} must be a whole number from 0 to {MAX_SEPTA}")
    phases = _ct_phases(attenuation_hu, unenhanced_hu, enhanced_hu, contrast)

    wall = _mm(wall_thickness_mm, "wall_thickness_mm", inputs, notes)
    if wall is None:
        notes.append("No wall thickness given: the wall is taken as thin (<=2 mm).")
    septa = _mm(septa_thickness_mm, "septa_thickness_mm", inputs, notes)
    if septa_count:
        inputs["septa_count"] = septa_count
        if septa is None:
            raise MissingParameterError(
                "septa_thickness_mm", f"septa_count={septa_count}: how thick is the thickest septum (mm)?"
            )
    elif septa is not None:
        raise CalculatorInputError(f"septa_thickness_mm={septa_thickness_mm!r} given but septa_count=0")
    thickest = max(wall or 0.0, septa or 0.0)

    protrusion = _mm(protrusion_mm, "protrusion_mm", inputs, notes)
    margin = coerce_enum(ProtrusionMargin, protrusion_margin, "protrusion_margin") if protrusion_margin else None
    if margin is not None and protrusion is None:
        raise CalculatorInputError("protrusion_margin was given without protrusion_mm")
    if protrusion is not None and margin is None and protrusion < 4:
        # Below 4 mm the margin decides (obtuse: III, acute: IV); from 4 mm both margins give IV (Bosniak 2019).
        raise MissingParameterError(
            "protrusion_margin", f"Does the {protrusion:g} mm protrusion have obtuse or acute margins?"
        )
    if margin is not None:
        inputs["protrusion_margin"] = margin
    for flag, value in (
        ("calcification", calcification),
        ("t2_csf_like", t2_csf_like),
        ("t1_markedly_hyperintense", t1_markedly_hyperintense),
        ("t1_heterogeneous_hyperintense", t1_heterogeneous_hyperintense),
    ):
        if value:
            inputs[flag] = True
    if not homogeneous:
        inputs["homogeneous"] = False
    if not contrast:
        inputs["contrast"] = False

    suspicious = (protrusion is not None and protrusion > 0) or thickest >= 4
    if suspicious and not enhancing:
        raise CalculatorInputError(
            "enhancing=False with thick walls/septa or a protrusion: classes III/IV need enhancing "
            "components; "
            "non-enhancing ones are not classifiable with the confirmed rules"
        )
    if suspicious and not contrast:
        raise CalculatorInputError("contrast=False: enhancement of walls, septa or nodules cannot be assessed")

    if protrusion is not None and protrusion > 0:
        if margin is ProtrusionMargin.ACUTE or protrusion >= 4:
            why = (
                "convex protrusion with acute margins"
                if margin is ProtrusionMargin.ACUTE
                else f"convex protrusion {protrusion:g} mm (>=4 mm) with obtuse margins"
            )
            return _result("IV", f"Enhancing nodule: {why}.", inputs, notes)
        return _result(
            "III",
            f"Irregular wall/septum: convex protrusion {protrusion:g} mm (<=3 mm), obtuse margins.",
            inputs,
            notes,
        )
    if thickest >= 4:
        return _result("III", f"Enhancing thick wall or septa ({thickest:g} mm, >=4 mm).", inputs, notes)
    if thickest == 3:
        return _result("IIF", "Smooth minimally thickened (3 mm) enhancing wall or septa.", inputs, notes)
    if septa_count >= 4:
        return _result("IIF", f"{septa_count} smooth thin (<=2 mm) enhancing septa (>=4).", inputs, notes)
    if t1_heterogeneous_hyperintense:
        return _result("IIF", "Heterogeneous T1 hyperintensity on unenhanced fat-saturated MRI.", inputs, notes)
    if septa_count >= 1:
        return _result("II", f"Thin wall with {septa_count} thin (<=2 mm) enhancing septa (1-3).", inputs, notes)
    if calcification:
        return _result(
            "II", "Thin-walled cystic mass with calcification (any type allowed in class II).", inputs, notes
        )
    return _homogeneous(
        mod,
        phases,
        homogeneous,
        contrast,
        t2_csf_like,
        t1_markedly_hyperintense,
        too_small_to_characterize,
        inputs,
        notes,
    )


def _ct_phases(
    attenuation_hu: float | None, unenhanced_hu: float | None, enhanced_hu: float | None, contrast: bool
) -> tuple[float | None, float | None, float | None]:
    """(unenhanced, enhanced, enhanced of unstated phase) CT numbers; ``attenuation_hu`` is mapped by ``contrast``."""
    if attenuation_hu is not None and (unenhanced_hu is not None or enhanced_hu is not None):
        raise CalculatorInputError(
            "attenuation_hu was given together with unenhanced_hu/enhanced_hu; give the phase-specific values only"
        )
    if enhanced_hu is not None and not contrast:
        raise CalculatorInputError(f"enhanced_hu={enhanced_hu!r} was given with contrast=False")
    if attenuation_hu is not None:
        if not contrast:
            return float(attenuation_hu), None, None
        return None, None, float(attenuation_hu)
    return (
        float(unenhanced_hu) if unenhanced_hu is not None else None,
        float(enhanced_hu) if enhanced_hu is not None else None,
        None,
    )


def _homogeneous(
    mod: Modality,
    phases: tuple[float | None, float | None, float | None],
    homogeneous: bool,
    contrast: bool,
    t2: bool,
    t1: bool,
    too_small: bool,
    inputs: dict[str, object],
    notes: list[str],
) -> GuidelineResult:
    if not homogeneous:
        raise CalculatorInputError(
            "homogeneous=False without wall, septa or nodule features is not classifiable with the confirmed rules"
        )
    if mod is Modality.MRI:
        if t1:
            return _result(
                "II",
                "Homogeneous mass markedly T1-hyperintense (~2.5x renal parenchyma) on unenhanced MRI.",
                inputs,
                notes,
            )
        if t2 and not contrast:
            return _result(
                "II", "Homogeneous mass markedly T2-hyperintense (CSF-like) on unenhanced MRI.", inputs, notes
            )
        if t2:
            return _result(
                "I",
                "Thin smooth wall, homogeneous simple fluid (CSF-like signal), no septa or calcification.",
                inputs,
                notes,
            )
        raise CalculatorInputError("MRI signal not given: set t2_csf_like or t1_markedly_hyperintense")
    unenhanced, enhanced, unknown_phase = phases
    if too_small:
        inputs["too_small_to_characterize"] = True
        return _result("II", "Homogeneous low-attenuation mass too small to characterise.", inputs, notes)
    low, high = SIMPLE_FLUID_HU
    if unknown_phase is not None:
        # The older single value on contrast-enhanced CT (phase not stated): only simple fluid is classifiable.
        inputs["attenuation_hu"] = unknown_phase
        if low <= unknown_phase <= high:
            return _result(
                "I",
                f"Thin smooth wall, homogeneous simple fluid ({unknown_phase:g} HU, -9 to 20 HU), no septa or "
                "calcification.",
                inputs,
                notes,
            )
        raise CalculatorInputError(
            f"attenuation_hu={unknown_phase:g} on contrast-enhanced CT of unstated phase: outside simple fluid "
            "(-9 to 20 HU); give unenhanced_hu and/or enhanced_hu (portal venous phase) so the v2019 class II "
            "sub-types can be applied, otherwise it is not classifiable"
        )
    if unenhanced is None and enhanced is None:
        raise MissingParameterError(
            "attenuation_hu",
            "What is the attenuation of the mass in HU (and is it on unenhanced or contrast-enhanced CT)?",
        )
    if unenhanced is not None:
        inputs["unenhanced_hu"] = unenhanced
    if enhanced is not None:
        inputs["enhanced_hu"] = enhanced
    if unenhanced is not None and enhanced is not None:
        # Renal mass protocol CT: enhancement is the difference between the phases (ACR renal 2018).
        increase = enhanced - unenhanced
        inputs["hu_increase"] = increase
        if increase >= ENHANCING_HU:
            raise NotApplicableError(
                "Bosniak classification",
                f"the homogeneous mass enhances by {increase:g} HU (>=20 HU), so it is solid, not cystic",
                "manage it as a solid renal mass (ACR incidental renal mass white paper)",
            )
        if increase > EQUIVOCAL_HU:
            raise CalculatorInputError(
                f"enhanced_hu - unenhanced_hu = {increase:g} HU (>10 to <20 HU): equivocal enhancement of a "
                "homogeneous mass is not in the confirmed table (not classified)"
            )
        if low <= unenhanced <= high and low <= enhanced <= high:
            return _result(
                "I",
                f"Thin smooth wall, homogeneous simple fluid ({unenhanced:g}/{enhanced:g} HU, -9 to 20 HU), "
                "no enhancement, no septa or calcification.",
                inputs,
                notes,
            )
        if unenhanced >= HYPERDENSE_HU:
            return _result(
                "II", f"Homogeneous hyperattenuating mass ({unenhanced:g} HU, >=70 HU) on unenhanced CT.", inputs, notes
            )
        if min(unenhanced, enhanced) >= low and max(unenhanced, enhanced) > NONENHANCING_DENSE_HU:
            return _result(
                "II",
                f"Homogeneous nonenhancing mass >20 HU at renal mass protocol CT ({unenhanced:g}/{enhanced:g} HU, "
                f"increase {increase:g} HU).",
                inputs,
                notes,
            )
        raise CalculatorInputError(
            f"unenhanced_hu={unenhanced:g}, enhanced_hu={enhanced:g}: below simple fluid (-9 HU); not classifiable "
            "with the confirmed rules"
        )
    if unenhanced is not None:
        if low <= unenhanced <= high:
            return _result("II", f"Homogeneous mass {unenhanced:g} HU (-9 to 20 HU) at noncontrast CT.", inputs, notes)
        if unenhanced >= HYPERDENSE_HU:
            return _result(
                "II", f"Homogeneous hyperattenuating mass ({unenhanced:g} HU, >=70 HU) on unenhanced CT.", inputs, notes
            )
        raise CalculatorInputError(
            f"unenhanced_hu={unenhanced:g} on noncontrast CT alone: outside the v2019 class II sub-types (-9 to 20 "
            "HU, or >=70 HU); not classifiable without contrast-enhanced images"
        )
    assert enhanced is not None
    if low <= enhanced <= high:
        return _result(
            "I",
            f"Thin smooth wall, homogeneous simple fluid ({enhanced:g} HU, -9 to 20 HU), no septa or calcification.",
            inputs,
            notes,
        )
    pv_low, pv_high = PORTAL_VENOUS_II_HU
    # CT numbers are read in whole HU: a value between 20 and 21 falls in the 21-30 HU sub-type, not outside both.
    if high < enhanced <= pv_high:
        return _result(
            "II",
            f"Homogeneous mass {enhanced:g} HU ({pv_low:g}-{pv_high:g} HU) at portal venous phase CT.",
            inputs,
            notes,
        )
    raise CalculatorInputError(
        f"enhanced_hu={enhanced:g} on contrast-enhanced CT alone: outside simple fluid (-9 to 20 HU) and the 21-30 HU "
        "class II sub-type; not classifiable without unenhanced images"
    )


def _mm(value: float | None, argument: str, inputs: dict[str, object], notes: list[str]) -> float | None:
    if value is None:
        return None
    measured = check_non_negative(value, argument)
    if measured > MAX_THICKNESS_MM:
        raise CalculatorInputError(f"{argument}={value!r} is not a plausible thickness (over {MAX_THICKNESS_MM:g} mm)")
    rounded = round_half_up(measured)
    inputs[argument] = rounded
    if rounded != measured:
        notes.append(f"{argument}={measured:g} rounded to {rounded:g} mm (Bosniak thicknesses are whole mm).")
    return rounded


def _result(cls: str, why: str, inputs: dict[str, object], notes: list[str]) -> GuidelineResult:
    section, management, risk = _CLASSES[cls]
    return GuidelineResult(
        calculator="bosniak",
        guideline=GUIDELINE,
        version=VERSION,
        category=cls,
        recommendation=f"Bosniak {cls}. {why} Management: {management}",
        inputs=inputs,
        section_id=f"bosniak-2019/{section}",
        source=SOURCE,
        malignancy_risk=risk,
        notes=tuple(notes),
    )
