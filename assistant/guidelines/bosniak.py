"""Bosniak classification of cystic renal masses, version 2019 (Silverman et al., Radiology 2019;292:475-488).

Class definitions as restated in ../shared/reference/guideline_facts.md section 5. Thicknesses are stated
by the classification in whole millimetres (thin <=2, minimally thickened 3, thick >=4), so measured
walls, septa and protrusions are rounded to the nearest millimetre before classifying.
The v2019 class II CT sub-types beyond the >=70 HU hyperdense cyst are unconfirmed and not implemented.
"""

from __future__ import annotations

from enum import StrEnum

from assistant.guidelines.common import (
    CalculatorInputError,
    GuidelineResult,
    check_non_negative,
    coerce_enum,
    round_half_up,
)

GUIDELINE = "Bosniak classification"
VERSION = "2019"
SOURCE = "Silverman SG et al. Bosniak Classification of Cystic Renal Masses, Version 2019. Radiology 2019"
SIMPLE_FLUID_HU = (-9.0, 20.0)  # v2019 class I: simple fluid attenuation on CT
HYPERDENSE_HU = 70.0  # v2019 class II: homogeneous >=70 HU on unenhanced CT


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
    "IIF": ("class-iif", "Imaging follow-up (surveillance).", "roughly 10% malignant"),
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
) -> GuidelineResult:
    """Bosniak 2019 class and management of a cystic renal mass (CT or MRI features)."""
    mod = coerce_enum(Modality, modality, "modality")
    inputs: dict[str, object] = {"modality": mod}
    notes: list[str] = []
    if mod is Modality.CT and (t2_csf_like or t1_markedly_hyperintense or t1_heterogeneous_hyperintense):
        raise CalculatorInputError("T1/T2 signal features were given with modality='ct'; they apply to MRI")
    if mod is Modality.MRI and attenuation_hu is not None:
        raise CalculatorInputError(f"attenuation_hu={attenuation_hu!r} was given with modality='mri'; it is a CT value")
    if isinstance(septa_count, bool) or not isinstance(septa_count, int) or septa_count < 0:
        raise CalculatorInputError(f"septa_count={septa_count!r} must be a whole number >= 0")

    wall = _mm(wall_thickness_mm, "wall_thickness_mm", inputs, notes)
    if wall is None:
        notes.append("No wall thickness given: the wall is taken as thin (<=2 mm).")
    septa = _mm(septa_thickness_mm, "septa_thickness_mm", inputs, notes)
    if septa_count:
        inputs["septa_count"] = septa_count
        if septa is None:
            raise CalculatorInputError(f"septa_count={septa_count} needs septa_thickness_mm")
    elif septa is not None:
        raise CalculatorInputError(f"septa_thickness_mm={septa_thickness_mm!r} given but septa_count=0")
    thickest = max(wall or 0.0, septa or 0.0)

    protrusion = _mm(protrusion_mm, "protrusion_mm", inputs, notes)
    margin = coerce_enum(ProtrusionMargin, protrusion_margin, "protrusion_margin") if protrusion_margin else None
    if (protrusion is None) != (margin is None):
        raise CalculatorInputError("give protrusion_mm together with protrusion_margin (obtuse or acute)")
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

    if protrusion is not None and margin is not None and protrusion > 0:
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
        mod, attenuation_hu, homogeneous, contrast, t2_csf_like, t1_markedly_hyperintense, inputs, notes
    )


def _homogeneous(
    mod: Modality,
    hu: float | None,
    homogeneous: bool,
    contrast: bool,
    t2: bool,
    t1: bool,
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
    if hu is None:
        raise CalculatorInputError("attenuation_hu is required for a CT mass without septa, calcification or nodules")
    if isinstance(hu, bool) or not isinstance(hu, int | float):
        raise CalculatorInputError(f"attenuation_hu={hu!r} must be a number")
    inputs["attenuation_hu"] = hu
    low, high = SIMPLE_FLUID_HU
    if low <= hu <= high:
        return _result(
            "I",
            f"Thin smooth wall, homogeneous simple fluid ({hu:g} HU, -9 to 20 HU), no septa or calcification.",
            inputs,
            notes,
        )
    if hu >= HYPERDENSE_HU and not contrast:
        return _result("II", f"Homogeneous hyperdense mass ({hu:g} HU, >=70 HU) on unenhanced CT.", inputs, notes)
    raise CalculatorInputError(
        f"attenuation_hu={hu:g} on {'unenhanced' if not contrast else 'contrast-enhanced'} CT: "
        "this homogeneous "
        "mass falls outside the confirmed class I (-9 to 20 HU) and class II (>=70 HU unenhanced) "
        "rules; the other "
        "v2019 class II CT sub-types are unverified and not implemented"
    )


def _mm(value: float | None, argument: str, inputs: dict[str, object], notes: list[str]) -> float | None:
    if value is None:
        return None
    measured = check_non_negative(value, argument)
    rounded = round_half_up(measured)
    inputs[argument] = rounded
    if rounded != measured:
        notes.append(f"{argument}={measured:g} rounded to {rounded:g} mm (Bosniak thicknesses are whole mm).")
    return rounded


def _result(cls: str, why: str, inputs: dict[str, object], notes: list[str]) -> GuidelineResult:
    section, management, risk = _CLASSES[cls]
    if cls == "IIF":
        notes.append("The IIF surveillance schedule is not stated here: it was not confirmed in a retrieved source.")
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
