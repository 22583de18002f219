"""ACR Lung-RADS v2022: category and management of a lung cancer screening (LDCT) finding.

Sources (each rule below names its own in a comment):
- ``RDES267``: the ACR/RSNA Common Data Element set RDES267 "Lung-RADS categorization", which encodes the v2022
  assessment table (public text copy: hoodcm/oifm-definitions findingmodels/text/lung_rads_categorization.md).
- ``facts §2`` / ``facts §9``: ../shared/reference/guideline_facts.md, sections 2 (v2022 table, v1.1 size bands of
  NCBI NBK568579 Appendix A Table 2) and 9 (rules confirmed by a second review).
- ``YB``: the v2022 teaching notes (yingbo777.com/home/lung-rads): measurement, growth, size-threshold crossing.

How follow-up screens are read (the part that is easy to get wrong):
- Growth is an increase in mean diameter of more than 1.5 mm within 12 months (YB).
- A nodule that is not growing keeps its prior category stepped down (4A -> 3, 3 -> 2; a 4B only when proven
  benign) unless its current size falls in a higher baseline size band than its prior size did: then it is
  reclassified by size even though the increase is below the growth definition (YB).
- ``status='stable'`` without a prior size is read as "unchanged size": no size threshold was crossed. When the
  size changed, give ``prior_mean_diameter_mm`` (and for part-solid nodules ``prior_solid_component_mm``).
"""

from __future__ import annotations

import math
from enum import StrEnum

from assistant.guidelines.common import (
    CalculatorInputError,
    Composition,
    GuidelineResult,
    MissingParameterError,
    coerce_enum,
    fmt_mm,
    resolve_size,
    round_half_up,
)

GUIDELINE = "ACR Lung-RADS"
VERSION = "v2022"
SOURCE = (
    "ACR Lung-RADS v2022 assessment categories (Christensen et al., CHEST 2024;165:738-753), as encoded by the "
    "ACR/RSNA CDE set RDES267 'Lung-RADS categorization'"
)
GROWTH_MM = 1.5  # YB: growth is a mean-diameter increase of > 1.5 mm within a 12-month interval
# Input-validation bound, NOT a guideline fact: no lung nodule, cyst or solid component measured on a screening CT
# is larger than a hemithorax (~300 mm); a bigger number is a typo or a unit mix-up (cm vs mm).
MAX_NODULE_MM = 300.0


class Exam(StrEnum):
    """Baseline screen or a follow-up (annual or interval) screen."""

    BASELINE = "baseline"
    FOLLOW_UP = "follow_up"

    @classmethod
    def _missing_(cls, value: object) -> Exam | None:
        aliases = {
            "followup": cls.FOLLOW_UP,
            "annual": cls.FOLLOW_UP,
            "initial": cls.BASELINE,
            "first": cls.BASELINE,
        }
        return aliases.get(str(value).lower())


class Status(StrEnum):
    """A finding's behaviour on a follow-up screen ('stable' includes smaller)."""

    NEW = "new"
    GROWING = "growing"
    STABLE = "stable"

    @classmethod
    def _missing_(cls, value: object) -> Status | None:
        aliases = {
            "enlarging": cls.GROWING,
            "grown": cls.GROWING,
            "growth": cls.GROWING,
            "unchanged": cls.STABLE,
            "smaller": cls.STABLE,
            "decreased": cls.STABLE,
            "decreasing": cls.STABLE,
        }
        return aliases.get(str(value).lower())


class SolidChange(StrEnum):
    """How the solid component of a part-solid nodule changed since the prior screen."""

    NEW = "new"
    GROWING = "growing"
    STABLE = "stable"

    @classmethod
    def _missing_(cls, value: object) -> SolidChange | None:
        aliases = {
            "enlarging": cls.GROWING,
            "grown": cls.GROWING,
            "unchanged": cls.STABLE,
            "smaller": cls.STABLE,
            "decreased": cls.STABLE,
        }
        return aliases.get(str(value).lower())


class Airway(StrEnum):
    """Location of an airway (endobronchial/endotracheal) nodule."""

    SUBSEGMENTAL = "subsegmental"
    SEGMENTAL_OR_PROXIMAL = "segmental_or_proximal"

    @classmethod
    def _missing_(cls, value: object) -> Airway | None:
        aliases = {
            "segmental": cls.SEGMENTAL_OR_PROXIMAL,
            "proximal": cls.SEGMENTAL_OR_PROXIMAL,
            "endotracheal": cls.SEGMENTAL_OR_PROXIMAL,
            "lobar": cls.SEGMENTAL_OR_PROXIMAL,
            "main": cls.SEGMENTAL_OR_PROXIMAL,
        }
        return aliases.get(str(value).lower())


class Cyst(StrEnum):
    """Pulmonary cyst types named by the RDES267 atypical-cyst rows."""

    THIN_WALLED = "thin_walled"
    THICK_WALLED = "thick_walled"
    MULTILOCULAR = "multilocular"

    @classmethod
    def _missing_(cls, value: object) -> Cyst | None:
        aliases = {
            "thin": cls.THIN_WALLED,
            "thick": cls.THICK_WALLED,
            "thick_wall": cls.THICK_WALLED,
            "multiloculated": cls.MULTILOCULAR,
        }
        return aliases.get(str(value).lower())


class CystChange(StrEnum):
    """How an atypical cyst changed since the prior screen."""

    GROWING_CYSTIC_COMPONENT = "growing_cystic_component"
    GROWING_WALL_OR_NODULARITY = "growing_wall_or_nodularity"
    BECAME_MULTILOCULAR = "became_multilocular"
    INCREASED_LOCULATION_OR_DENSITY = "increased_loculation_or_density"
    STABLE = "stable"

    @classmethod
    def _missing_(cls, value: object) -> CystChange | None:
        aliases = {
            "growing_cyst": cls.GROWING_CYSTIC_COMPONENT,
            "wall_thickening": cls.GROWING_WALL_OR_NODULARITY,
            "nodularity": cls.GROWING_WALL_OR_NODULARITY,
            "growing_wall": cls.GROWING_WALL_OR_NODULARITY,
            "multilocular": cls.BECAME_MULTILOCULAR,
            "increased_loculation": cls.INCREASED_LOCULATION_OR_DENSITY,
            "increased_density": cls.INCREASED_LOCULATION_OR_DENSITY,
            "new_opacity": cls.INCREASED_LOCULATION_OR_DENSITY,
            "unchanged": cls.STABLE,
            "smaller": cls.STABLE,
            "decreased": cls.STABLE,
        }
        return aliases.get(str(value).lower())


_MANAGEMENT = {
    "0": "Additional LDCT images and/or comparison with prior chest CT; if infection or inflammation is "
    "suspected, LDCT in 1-3 months.",
    "1": "Continue annual screening: LDCT in 12 months.",
    "2": "Continue annual screening: LDCT in 12 months.",
    "3": "LDCT in 6 months.",
    "4A": "LDCT in 3 months; PET/CT may be considered if there is a solid nodule or solid component >=8 mm.",
    "4B": "Diagnostic chest CT with or without contrast; PET/CT if there is a solid nodule or solid component "
    ">=8 mm; tissue sampling; and/or referral for clinical evaluation.",
    "4X": "As for 4B: diagnostic chest CT with or without contrast; PET/CT if there is a solid nodule or solid "
    "component >=8 mm; tissue sampling; and/or referral for clinical evaluation.",
}
_RISK = {"0": None, "1": "<1%", "2": "<1%", "3": "1-2%", "4A": "5-15%", "4B": ">15%", "4X": ">15%"}
_ORDER = ["0", "1", "2", "3", "4A", "4B", "4X"]
_S_NOTE = (
    "S modifier: a clinically significant or potentially significant finding unrelated to lung cancer; manage it "
    "as appropriate for that finding."
)
_ASK_PRIOR_CATEGORY = (
    "What Lung-RADS category did this finding have at the prior screen (e.g. 3 before a 6-month LDCT, 4A before "
    "a 3-month LDCT, 2 at an annual screen)?"
)


def _rank(category: str) -> int:
    return _ORDER.index(category)


def _higher(a: str, b: str) -> str:
    return a if _rank(a) >= _rank(b) else b


def lungrads(
    nodule_type: Composition | str | None = None,
    mean_diameter_mm: float | None = None,
    exam: Exam | str = Exam.BASELINE,
    status: Status | str | None = None,
    *,
    long_axis_mm: float | None = None,
    short_axis_mm: float | None = None,
    solid_component_mm: float | None = None,
    prior_mean_diameter_mm: float | None = None,
    prior_category: str | None = None,
    juxtapleural_benign_morphology: bool = False,
    airway: Airway | str | None = None,
    airway_persistent_at_3_months: bool = False,
    cyst: Cyst | str | None = None,
    suspicious_features: bool = False,
    no_nodules: bool = False,
    benign_calcification_or_fat: bool = False,
    incomplete: bool = False,
    infection_suspected: bool = False,
    prior_solid_component_mm: float | None = None,
    solid_component_change: SolidChange | str | None = None,
    cyst_change: CystChange | str | None = None,
    proven_benign: bool = False,
    slow_growth: bool = False,
    s_modifier: bool = False,
    perifissural_benign_morphology: bool = False,
) -> GuidelineResult:
    """Lung-RADS v2022 category and management for the most suspicious screening finding.

    New keywords (v2022 follow-up rules): ``prior_solid_component_mm`` (solid component at the prior screen; 0 =
    there was none), ``solid_component_change`` (new/growing/stable), ``cyst_change`` (see :class:`CystChange`),
    ``proven_benign`` (a category 4B lesion proven benign after diagnostic work-up), ``slow_growth`` (growth over
    several screens, each below the growth definition), ``s_modifier`` (significant finding unrelated to lung
    cancer) and ``perifissural_benign_morphology`` (synonym of ``juxtapleural_benign_morphology``).
    """
    flags = {
        "juxtapleural_benign_morphology": juxtapleural_benign_morphology,
        "perifissural_benign_morphology": perifissural_benign_morphology,
        "airway_persistent_at_3_months": airway_persistent_at_3_months,
        "suspicious_features": suspicious_features,
        "no_nodules": no_nodules,
        "benign_calcification_or_fat": benign_calcification_or_fat,
        "incomplete": incomplete,
        "infection_suspected": infection_suspected,
        "proven_benign": proven_benign,
        "slow_growth": slow_growth,
        "s_modifier": s_modifier,
    }
    on = {name: _flag(value, name) for name, value in flags.items()}
    exam_kind = coerce_enum(Exam, exam, "exam")
    inputs: dict[str, object] = {"exam": exam_kind}
    notes: list[str] = []
    if on["s_modifier"]:
        inputs["s_modifier"] = True

    # RDES267 category 0: priors being located, lungs not fully evaluable, or an infectious/inflammatory process.
    if on["incomplete"] or on["infection_suspected"]:
        inputs["incomplete" if on["incomplete"] else "infection_suspected"] = True
        return _result("0", inputs, notes, "Incomplete examination or findings suggesting infection/inflammation.")
    # RDES267 category 1: no nodules, or nodules with benign (complete, central, popcorn, concentric) calcification
    # or fat.
    if on["no_nodules"] or on["benign_calcification_or_fat"]:
        if nodule_type is not None and not on["benign_calcification_or_fat"]:
            raise CalculatorInputError("no_nodules=True contradicts nodule_type being given")
        inputs["no_nodules" if on["no_nodules"] else "benign_calcification_or_fat"] = True
        return _result("1", inputs, notes, "No nodules, or nodules with benign calcification or fat.")

    if exam_kind is Exam.BASELINE:
        # A baseline screen has no prior, so nothing that describes change over time can be given.
        for name, value in (
            ("status", status),
            ("prior_mean_diameter_mm", prior_mean_diameter_mm),
            ("prior_solid_component_mm", prior_solid_component_mm),
            ("prior_category", prior_category),
            ("solid_component_change", solid_component_change),
            ("cyst_change", cyst_change),
            ("proven_benign", on["proven_benign"] or None),
            ("slow_growth", on["slow_growth"] or None),
        ):
            if value is not None:
                raise CalculatorInputError(
                    f"{name}={value!r} contradicts exam='baseline' (a baseline screen has no prior); "
                    "give exam='follow_up'"
                )
    prior_cat = _prior_category(prior_category)
    if prior_cat is not None:
        inputs["prior_category"] = prior_cat
    if on["proven_benign"]:
        inputs["proven_benign"] = True
        # RDES267: "Category 4B lesion proven to be benign ... following appropriate diagnostic workup" -> 2; later
        # screens carry that 2 forward, so the proof may also accompany a prior category of 2.
        if prior_cat is not None and prior_cat not in ("4B", "2"):
            raise CalculatorInputError(
                f"proven_benign=True with prior_category={prior_cat!r}: the CDE's proven-benign rule is for a "
                "category 4B lesion (or one already recategorised 2 after that proof)"
            )

    nodule_only: dict[str, object] = {
        "solid_component_mm": solid_component_mm,
        "prior_mean_diameter_mm": prior_mean_diameter_mm,
        "prior_solid_component_mm": prior_solid_component_mm,
        "solid_component_change": solid_component_change,
        "long_axis_mm": long_axis_mm,
        "short_axis_mm": short_axis_mm,
        "juxtapleural_benign_morphology": on["juxtapleural_benign_morphology"] or None,
        "perifissural_benign_morphology": on["perifissural_benign_morphology"] or None,
        "slow_growth": on["slow_growth"] or None,
    }
    if airway is not None:
        if cyst is not None:
            raise CalculatorInputError("airway and cyst were both given: categorise one finding per call")
        _reject_for("an airway nodule", nodule_only)
        for name, value in (("nodule_type", nodule_type), ("mean_diameter_mm", mean_diameter_mm)):
            if value is not None:
                notes.append(f"{name} is not used for an airway nodule (the CDE rows go by location and behaviour).")
        kind_a = coerce_enum(Airway, airway, "airway")
        category, why = _airway(kind_a, exam_kind, status, on, prior_cat, inputs, notes)
        return _finish(category, why, inputs, notes, on, nodule=True)
    if cyst is not None:
        if nodule_type is not None:
            raise CalculatorInputError(
                "cyst and nodule_type were both given: categorise one finding per call (a cyst's wall nodularity "
                "is cyst_change='growing_wall_or_nodularity')"
            )
        _reject_for("a cyst", nodule_only)
        if mean_diameter_mm is not None:
            notes.append("mean_diameter_mm is not used for a cyst (the CDE rows go by wall, loculation and change).")
        if on["airway_persistent_at_3_months"]:
            raise CalculatorInputError("airway_persistent_at_3_months applies to airway nodules, not to a cyst")
        if on["suspicious_features"]:
            # RDES267: 4X is defined for "category 3 or 4 nodules"; the cyst rows carry their own 4B criteria.
            raise CalculatorInputError(
                "suspicious_features (4X) is defined for category 3 or 4 nodules, not for atypical cysts; describe "
                "the cyst's change with cyst_change (e.g. 'growing_wall_or_nodularity' or "
                "'increased_loculation_or_density')"
            )
        kind_c = coerce_enum(Cyst, cyst, "cyst")
        category, why = _cyst(kind_c, exam_kind, status, cyst_change, prior_cat, on["proven_benign"], inputs, notes)
        return _finish(category, why, inputs, notes, on, nodule=False)
    if cyst_change is not None:
        raise CalculatorInputError(f"cyst_change={cyst_change!r} applies to a cyst (give cyst=...)")
    if on["airway_persistent_at_3_months"]:
        raise CalculatorInputError("airway_persistent_at_3_months applies to airway nodules (give airway=...)")

    category, why = _nodule(
        nodule_type,
        mean_diameter_mm,
        exam_kind,
        status,
        long_axis_mm=long_axis_mm,
        short_axis_mm=short_axis_mm,
        solid_component_mm=solid_component_mm,
        prior_mean_diameter_mm=prior_mean_diameter_mm,
        prior_solid_component_mm=prior_solid_component_mm,
        solid_component_change=solid_component_change,
        prior_cat=prior_cat,
        on=on,
        inputs=inputs,
        notes=notes,
    )
    return _finish(category, why, inputs, notes, on, nodule=True)


# ------------------------------------------------------------------------------------------------ input checks


def _flag(value: object, argument: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise CalculatorInputError(f"{argument}={value!r} must be true or false")


def _size(value: float | None, argument: str, *, allow_zero: bool = False) -> float | None:
    """A plausible size in mm, rounded to one decimal place (YB: sizes are reported to one decimal)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorInputError(f"{argument}={value!r} must be a number (mm)")
    number = float(value)
    if not math.isfinite(number):
        raise CalculatorInputError(f"{argument}={value!r} must be a finite number (mm)")
    if number < 0 or (number == 0 and not allow_zero):
        raise CalculatorInputError(
            f"{argument}={value!r} must be {'zero or ' if allow_zero else ''}a positive number (mm)"
        )
    if number > MAX_NODULE_MM:  # input-validation bound (see MAX_NODULE_MM), not a guideline threshold
        raise CalculatorInputError(
            f"{argument}={value!r} is not a plausible size for a lung finding (over {MAX_NODULE_MM:g} mm); "
            "check the units"
        )
    rounded = round_half_up(number, 1)
    if rounded == 0 and not allow_zero:
        raise CalculatorInputError(f"{argument}={value!r} rounds to 0.0 mm; give the size to one decimal place")
    return rounded


def _prior_category(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CalculatorInputError(f"prior_category={value!r} is not a Lung-RADS category (0, 1, 2, 3, 4A, 4B, 4X)")
    text = str(value).strip().upper().replace(" ", "").replace("-", "").replace("_", "")
    for prefix in ("LUNGRADS", "CATEGORY", "CAT.", "CAT", "LR"):
        text = text.removeprefix(prefix)
    if len(text) > 1 and text.endswith("S"):  # "3S": the S modifier does not change the category itself
        text = text[:-1]
    if text not in _ORDER:
        raise CalculatorInputError(f"prior_category={value!r} is not a Lung-RADS category (0, 1, 2, 3, 4A, 4B, 4X)")
    return text


def _reject_for(what: str, values: dict[str, object]) -> None:
    for name, value in values.items():
        if value is not None:
            raise CalculatorInputError(f"{name}={value!r} applies to parenchymal nodules, not to {what}")


# ------------------------------------------------------------------------------------------------ nodules


def _nodule(
    nodule_type: Composition | str | None,
    mean_diameter_mm: float | None,
    exam: Exam,
    status: Status | str | None,
    *,
    long_axis_mm: float | None,
    short_axis_mm: float | None,
    solid_component_mm: float | None,
    prior_mean_diameter_mm: float | None,
    prior_solid_component_mm: float | None,
    solid_component_change: SolidChange | str | None,
    prior_cat: str | None,
    on: dict[str, bool],
    inputs: dict[str, object],
    notes: list[str],
) -> tuple[str, str]:
    if nodule_type is None:
        raise MissingParameterError("nodule_type", "Is the nodule solid, part-solid or non-solid (ground-glass)?")
    kind = coerce_enum(Composition, nodule_type, "nodule_type")
    inputs["nodule_type"] = kind
    _size(mean_diameter_mm, "mean_diameter_mm")
    _size(long_axis_mm, "long_axis_mm")
    _size(short_axis_mm, "short_axis_mm")
    raw = resolve_size(mean_diameter_mm, long_axis_mm, short_axis_mm, "mean_diameter_mm")
    if raw is None:
        raise MissingParameterError("mean_diameter_mm", "What is the mean nodule diameter (mm)?")
    # YB: mean diameter = mean of long and short axes, reported to one decimal place.
    d = _size(raw, "mean_diameter_mm")
    assert d is not None
    inputs["mean_diameter_mm"] = d

    juxta = on["juxtapleural_benign_morphology"] or on["perifissural_benign_morphology"]
    if juxta:
        # RDES267 / facts §9: the juxtapleural (perifissural) rule is for solid nodules only.
        if kind is not Composition.SOLID:
            raise CalculatorInputError(
                "juxtapleural_benign_morphology / perifissural_benign_morphology applies to solid nodules only "
                f"(nodule_type={kind.value})"
            )
        inputs["juxtapleural_benign_morphology"] = True

    solid = _size(solid_component_mm, "solid_component_mm")
    prior_solid = _size(prior_solid_component_mm, "prior_solid_component_mm", allow_zero=True)
    change = (
        coerce_enum(SolidChange, solid_component_change, "solid_component_change")
        if (solid_component_change is not None)
        else None
    )
    if kind is not Composition.PART_SOLID:
        for name, value in (
            ("solid_component_mm", solid_component_mm),
            ("prior_solid_component_mm", prior_solid_component_mm),
            ("solid_component_change", solid_component_change),
        ):
            if value is not None:
                raise CalculatorInputError(
                    f"{name}={value!r} only applies to part-solid nodules (nodule_type={kind.value})"
                )
    if solid is not None:
        if solid > d:
            raise CalculatorInputError(
                f"solid_component_mm={solid_component_mm!r} is larger than the whole nodule ({fmt_mm(d)})"
            )
        inputs["solid_component_mm"] = solid

    if exam is Exam.BASELINE:
        if kind is Composition.SOLID:
            return _solid_baseline(d, juxta)
        if kind is Composition.PART_SOLID:
            if d >= 6 and solid is None:
                raise MissingParameterError(
                    "solid_component_mm", "How large is the solid component of the part-solid nodule (mm)?"
                )
            band = _part_solid_band(d, solid)
            return band, f"Baseline part-solid nodule {_ps(d, solid)} ({_PS_BAND_TEXT[band]})."
        band = _non_solid_band(d)
        return band, f"Baseline non-solid (ground-glass) nodule {fmt_mm(d)} ({'<30' if band == '2' else '>=30'} mm)."

    prior_d = _size(prior_mean_diameter_mm, "prior_mean_diameter_mm")
    state = _status(status, prior_d, d, inputs)
    if on["slow_growth"]:
        inputs["slow_growth"] = True
        if state is Status.NEW:
            raise CalculatorInputError("slow_growth=True contradicts status='new' (a new nodule has no history)")
        if kind is Composition.GROUND_GLASS:
            # RDES267: non-solid <30 mm growing, or >=30 mm stable or slowly growing -> 2.
            return "2", f"Slowly growing non-solid (ground-glass) nodule {fmt_mm(d)}: benign behaviour."
        # RDES267 / facts §9: a solid or part-solid nodule growing slowly over multiple screens -> 4B, even when
        # no single interval meets the growth definition (diagnosticimaging takeaway 4, facts §2).
        return (
            "4B",
            f"{kind.value.replace('_', '-').capitalize()} nodule {fmt_mm(d)} growing slowly over several screens.",
        )
    if state is None:
        raise MissingParameterError("status", "On this follow-up screen, is the nodule new, growing or stable?")
    if state is Status.NEW:
        for name, value in (
            ("prior_solid_component_mm", prior_solid_component_mm),
            ("solid_component_change", solid_component_change),
            ("proven_benign", on["proven_benign"] or None),
        ):
            if value is not None:
                raise CalculatorInputError(f"{name}={value!r} contradicts status='new' (a new nodule has no prior)")
        if prior_cat is not None:
            notes.append("prior_category is not used for a new nodule (it had no category at the prior screen).")
        return _new(kind, d, solid, juxta)
    if on["proven_benign"] and state is Status.GROWING:
        notes.append("proven_benign not applied: the nodule is growing, so the growth rules decide.")

    if kind is Composition.GROUND_GLASS:
        return _non_solid_follow_up(d, state, prior_cat, on["proven_benign"])
    if kind is Composition.SOLID:
        if state is Status.GROWING:
            if juxta:
                # RDES267 / facts §9: the juxtapleural rule applies at baseline or to a new nodule only.
                notes.append(
                    "Juxtapleural/perifissural benign-morphology rule not applied: it is for baseline or "
                    "new nodules only; a growing nodule follows the growth rules."
                )
            # RDES267: growing solid <8 mm -> 4A; growing >=8 mm -> 4B.
            if d < 8:
                return "4A", f"Growing solid nodule {fmt_mm(d)} (<8 mm)."
            return "4B", f"Growing solid nodule {fmt_mm(d)} (>=8 mm)."
        band_now = _solid_band(d, juxta)
        band_prior = _solid_band(prior_d, juxta) if prior_d is not None else band_now
        return _not_growing(band_now, band_prior, prior_cat, on["proven_benign"], f"solid nodule {fmt_mm(d)}")
    return _part_solid_follow_up(
        d, solid, prior_d, prior_solid, change, state, prior_cat, on["proven_benign"], inputs, notes
    )


def _status(status: Status | str | None, prior: float | None, d: float, inputs: dict[str, object]) -> Status | None:
    given = coerce_enum(Status, status, "status") if status is not None else None
    derived: Status | None = None
    if prior is not None:
        inputs["prior_mean_diameter_mm"] = prior
        # YB: growth = mean-diameter increase > 1.5 mm (on the one-decimal measurements).
        derived = Status.GROWING if round_half_up(d - prior, 1) > GROWTH_MM else Status.STABLE
        if given is Status.NEW:
            raise CalculatorInputError("status='new' contradicts a prior_mean_diameter_mm being given")
        if given is not None and given is not derived:
            raise CalculatorInputError(
                f"status={given.value!r} contradicts the sizes ({prior:g} -> {d:g} mm is "
                f"{'more' if derived is Status.GROWING else 'not more'} than {GROWTH_MM} mm growth)"
            )
    state = given or derived
    if state is not None:
        inputs["status"] = state
    return state


def _solid_band(d: float, juxta: bool) -> str:
    """The category a solid nodule of this size gets at baseline (the size bands used for reclassification)."""
    if juxta and d < 10:
        # RDES267: juxtapleural solid nodule <10 mm (524 mm3), smooth margins, oval/lentiform/triangular -> 2.
        return "2"
    # RDES267 solid rows at baseline: <6 -> 2; >=6 to <8 -> 3; >=8 to <15 -> 4A; >=15 -> 4B.
    if d < 6:
        return "2"
    if d < 8:
        return "3"
    if d < 15:
        return "4A"
    return "4B"


def _solid_baseline(d: float, juxta: bool) -> tuple[str, str]:
    band = _solid_band(d, juxta)
    if juxta and band == "2" and d >= 6:
        return band, f"Juxtapleural solid nodule {fmt_mm(d)} (<10 mm) with smooth margins and benign shape."
    text = {"2": "<6 mm", "3": ">=6 to <8 mm", "4A": ">=8 to <15 mm", "4B": ">=15 mm"}[band]
    if juxta and band == "2":
        text = "<6 mm; juxtapleural with benign morphology"
    return band, f"Baseline solid nodule {fmt_mm(d)} ({text})."


_PS_BAND_TEXT = {
    "2": "<6 mm total",
    "3": ">=6 mm total, solid component <6 mm",
    "4A": "solid component >=6 to <8 mm",
    "4B": "solid component >=8 mm",
}


def _part_solid_band(d: float, solid: float | None) -> str:
    """The category a part-solid nodule of these sizes gets at baseline."""
    # RDES267 part-solid rows at baseline: total <6 -> 2; total >=6 with solid <6 -> 3; solid >=6 to <8 -> 4A;
    # solid >=8 -> 4B.
    if d < 6:
        return "2"
    if solid is None:  # callers ask for the solid component before a >=6 mm total reaches here
        raise MissingParameterError("solid_component_mm", "How large is the solid component (mm)?")
    if solid < 6:
        return "3"
    if solid < 8:
        return "4A"
    return "4B"


def _non_solid_band(d: float) -> str:
    # RDES267 non-solid rows: <30 mm -> 2; >=30 mm at baseline or new -> 3.
    return "2" if d < 30 else "3"


def _ps(d: float, solid: float | None) -> str:
    return f"{fmt_mm(d)} total" + (f", solid component {fmt_mm(solid)}" if solid is not None else "")


def _new(kind: Composition, d: float, solid: float | None, juxta: bool) -> tuple[str, str]:
    if kind is Composition.SOLID:
        if juxta and d < 10:
            # RDES267 / facts §9: juxtapleural rule applies "at baseline or new".
            return "2", f"New juxtapleural solid nodule {fmt_mm(d)} (<10 mm) with smooth margins and benign shape."
        # RDES267 new solid: <4 -> 2; 4 to <6 -> 3; 6 to <8 -> 4A; >=8 -> 4B.
        if d < 4:
            return "2", f"New solid nodule {fmt_mm(d)} (<4 mm)."
        if d < 6:
            return "3", f"New solid nodule {fmt_mm(d)} (4 to <6 mm)."
        if d < 8:
            return "4A", f"New solid nodule {fmt_mm(d)} (6 to <8 mm)."
        return "4B", f"New solid nodule {fmt_mm(d)} (>=8 mm)."
    if kind is Composition.PART_SOLID:
        if d < 6:
            # RDES267: new part-solid <6 mm total -> 3.
            return "3", f"New part-solid nodule {_ps(d, solid)} (<6 mm total)."
        if solid is None:
            raise MissingParameterError(
                "solid_component_mm", "How large is the solid component of the part-solid nodule (mm)?"
            )
        return _new_or_growing_solid_component(d, solid, "New")
    band = _non_solid_band(d)
    return band, f"New non-solid (ground-glass) nodule {fmt_mm(d)} ({'<30' if band == '2' else '>=30'} mm)."


def _new_or_growing_solid_component(d: float, solid: float, label: str) -> tuple[str, str]:
    size = f"part-solid nodule {_ps(d, solid)}"
    # RDES267 4B: solid component >=8 mm, or a new or growing solid component >=4 mm; 4A: new or growing <4 mm.
    if solid >= 8:
        return "4B", f"{label} {size} (solid component >=8 mm)."
    if solid >= 4:
        return "4B", f"{label} {size} (new or growing solid component >=4 mm)."
    return "4A", f"{label} {size} (new or growing solid component <4 mm)."


def _non_solid_follow_up(d: float, state: Status, prior_cat: str | None, proven: bool) -> tuple[str, str]:
    if state is Status.GROWING:
        if d < 30:
            # RDES267: non-solid <30 mm "at baseline, new, or growing" -> 2.
            return "2", f"Growing non-solid (ground-glass) nodule {fmt_mm(d)} (<30 mm)."
        raise CalculatorInputError(
            f"a growing non-solid nodule >=30 mm (mean_diameter_mm={d:g}) is not in the CDE table; only stable or "
            "slowly growing ones are (category 2) - give slow_growth=True if it grows slowly"
        )
    if prior_cat in ("4B", "4X"):
        _refuse_stable_4b(prior_cat, proven)
        # RDES267: category 4B lesion proven benign after diagnostic work-up -> 2.
        return "2", f"Non-solid (ground-glass) nodule {fmt_mm(d)}: category 4B lesion proven benign after work-up."
    # RDES267: non-solid <30 mm, or >=30 mm stable or slowly growing -> 2. A change below the growth definition is
    # at most slow growth, so crossing 30 mm without growth stays 2 (this row is specific to non-solid nodules).
    return "2", f"Stable non-solid (ground-glass) nodule {fmt_mm(d)}: benign behaviour."


def _part_solid_follow_up(
    d: float,
    solid: float | None,
    prior_d: float | None,
    prior_solid: float | None,
    change: SolidChange | None,
    state: Status,
    prior_cat: str | None,
    proven: bool,
    inputs: dict[str, object],
    notes: list[str],
) -> tuple[str, str]:
    if change is None and prior_solid is None:
        raise MissingParameterError(
            "solid_component_change",
            "Since the prior screen, is the solid component new, growing (> 1.5 mm) or stable? "
            "(or give prior_solid_component_mm)",
        )
    if solid is None:
        raise MissingParameterError(
            "solid_component_mm", "How large is the solid component of the part-solid nodule now (mm)?"
        )
    if prior_solid is not None:
        inputs["prior_solid_component_mm"] = prior_solid
        if prior_d is not None and prior_solid > prior_d:
            raise CalculatorInputError(
                f"prior_solid_component_mm={prior_solid:g} is larger than prior_mean_diameter_mm={prior_d:g}"
            )
        # YB's growth definition (> 1.5 mm in mean diameter) applied to the solid component; 0 = none before.
        if prior_solid == 0:
            derived = SolidChange.NEW
        elif round_half_up(solid - prior_solid, 1) > GROWTH_MM:
            derived = SolidChange.GROWING
        else:
            derived = SolidChange.STABLE
        if change is not None and change is not derived:
            raise CalculatorInputError(
                f"solid_component_change={change.value!r} contradicts the sizes (solid component "
                f"{prior_solid:g} -> {solid:g} mm is {derived.value})"
            )
        change = derived
    assert change is not None
    inputs["solid_component_change"] = change
    if change is not SolidChange.STABLE:
        # RDES267: a new or growing solid component decides (<4 mm -> 4A; >=4 mm -> 4B).
        return _new_or_growing_solid_component(d, solid, f"Part-solid nodule with a {change.value} solid component:")
    band_now = _part_solid_band(d, solid)
    if state is Status.GROWING:
        # RDES267 / facts §9: 4B needs a new or growing solid component; growth of the total diameter alone is not
        # that. Nor is the nodule stable, so no step-down applies: it is categorised by its size band and (a
        # conservative choice of this calculator, not a CDE row) never below its prior category.
        if prior_cat is None:
            raise MissingParameterError("prior_category", _ASK_PRIOR_CATEGORY)
        if prior_cat in ("0", "1"):
            _refuse_prior_0_or_1(prior_cat)
        category = _higher(band_now, prior_cat)
        notes.append(
            "Growth of the total diameter with a stable solid component is not the CDE's 'growing solid "
            "component'; categorised by size, not below the prior category."
        )
        return category, (
            f"Part-solid nodule {_ps(d, solid)}: total diameter growing, solid component stable "
            f"(size band {band_now}, prior category {prior_cat})."
        )
    # Without a prior size, "stable" is read as unchanged: the prior band is the current one (no crossing).
    band_prior = _part_solid_band(
        prior_d if prior_d is not None else d, prior_solid if prior_solid is not None else solid
    )
    return _not_growing(band_now, band_prior, prior_cat, proven, f"part-solid nodule {_ps(d, solid)}")


def _refuse_stable_4b(prior_cat: str, proven: bool) -> None:
    if prior_cat == "4B" and proven:
        return
    if prior_cat == "4X" and proven:
        raise CalculatorInputError(
            "prior_category='4X' with proven_benign=True: the CDE states the proven-benign step (-> 2) for category "
            "4B lesions only; a 4X finding is not recategorised here"
        )
    raise CalculatorInputError(
        f"prior_category={prior_cat!r}: a stable or smaller {prior_cat} finding is not stepped down to 2 - only a "
        "category 4B lesion proven benign after appropriate diagnostic work-up is (give proven_benign=True if it "
        f"was); otherwise it stays under its {prior_cat} work-up"
    )


def _refuse_prior_0_or_1(prior_cat: str) -> None:
    raise CalculatorInputError(
        f"prior_category={prior_cat!r}: a nodule followed up from a category {prior_cat} screen is not covered by "
        "the CDE's stepped rules; give the category this nodule had (2, 3, 4A or 4B)"
    )


def _step_down(prior_cat: str, proven: bool) -> tuple[str, str]:
    """The category of a finding that is stable or smaller since a screen at which it was ``prior_cat``."""
    if prior_cat in ("0", "1"):
        _refuse_prior_0_or_1(prior_cat)
    if prior_cat in ("4B", "4X"):
        _refuse_stable_4b(prior_cat, proven)
        # RDES267 / facts §9: category 4B lesion proven benign after appropriate diagnostic work-up -> 2.
        return "2", "category 4B lesion proven benign after diagnostic work-up: recategorised 2"
    if prior_cat == "4A":
        # RDES267 / facts §9: category 4A stable or decreased at the 3-month LDCT (airway nodules excluded) -> 3.
        return "3", "category 4A, stable or smaller at the 3-month LDCT: stepped down to 3"
    if prior_cat == "3":
        # RDES267 / facts §9: category 3 stable or decreased at the 6-month LDCT -> 2.
        return "2", "category 3, stable or smaller at the 6-month LDCT: stepped down to 2"
    # A category 2 finding that is unchanged at its annual screen has still met no criterion for a higher
    # category: it stays 2 (RDES267 category 2 covers benign behaviour; size crossings are handled by the caller).
    return "2", "category 2, unchanged at the annual screen: stays 2"


def _not_growing(band_now: str, band_prior: str, prior_cat: str | None, proven: bool, what: str) -> tuple[str, str]:
    """A solid or part-solid nodule that is stable, smaller, or larger by no more than the growth definition."""
    if prior_cat is None:
        raise MissingParameterError("prior_category", _ASK_PRIOR_CATEGORY)
    if prior_cat in ("4B", "4X") and not (prior_cat == "4B" and proven):
        if band_now == "4B":
            # RDES267: the size alone is 4B at baseline bands, so nothing is lowered.
            return "4B", f"Stable {what}: its size alone is category 4B (prior category {prior_cat})."
        _refuse_stable_4b(prior_cat, proven)
    if _rank(band_now) > _rank(band_prior):
        # YB: a nodule that crosses a new size threshold is reclassified by size even when the increase does not
        # meet the growth definition (> 1.5 mm in 12 months); no step-down then.
        stepped, _ = _step_down(prior_cat, proven)
        category = _higher(band_now, stepped)
        return category, (
            f"Non-growing {what} crossed into a higher size band ({band_prior} -> {band_now}): reclassified by size "
            "(no growth, but a new size threshold)."
        )
    stepped, why = _step_down(prior_cat, proven)
    if band_now == "4B" and not proven:
        # A category below 4B for a nodule whose size alone is 4B can only come from a 4B proven benign (RDES267);
        # 3 or 4A at that size (or an unexplained 2) is inconsistent, so the size wins.
        return "4B", (
            f"Stable {what}: its size alone is category 4B, which prior category {prior_cat} does not explain "
            "(only a 4B lesion proven benign becomes 2; give proven_benign=True if so): the size decides."
        )
    return stepped, f"Stable or smaller {what}; {why}."


# ------------------------------------------------------------------------------------------------ airway, cysts


def _airway(
    airway: Airway,
    exam: Exam,
    status: Status | str | None,
    on: dict[str, bool],
    prior_cat: str | None,
    inputs: dict[str, object],
    notes: list[str],
) -> tuple[str, str]:
    inputs["airway"] = airway
    state = coerce_enum(Status, status, "status") if status is not None else None
    if state is not None:
        inputs["status"] = state
    persistent = on["airway_persistent_at_3_months"]
    if airway is Airway.SUBSEGMENTAL:
        if persistent:
            raise CalculatorInputError("airway_persistent_at_3_months applies to segmental or proximal nodules")
        if exam is Exam.BASELINE or state in (Status.NEW, Status.STABLE):
            # RDES267: subsegmental airway nodule at baseline, new, or stable -> 2.
            return "2", "Subsegmental airway nodule (baseline, new or stable)."
        if state is None:
            raise MissingParameterError(
                "status", "On this follow-up screen, is the airway nodule new, growing or stable?"
            )
        raise CalculatorInputError(
            "status='growing' for a subsegmental airway nodule is not in the CDE table (it lists subsegmental nodules "
            "at baseline, new or stable only)"
        )
    if persistent:
        inputs["airway_persistent_at_3_months"] = True
    if exam is Exam.BASELINE and not persistent:
        # RDES267: segmental or more proximal airway nodule at baseline -> 4A.
        return "4A", "Segmental or more proximal airway (endobronchial/endotracheal) nodule at baseline."
    if state is Status.NEW:
        if persistent:
            raise CalculatorInputError("airway_persistent_at_3_months contradicts status='new'")
        # facts §2 (ESR poster): segmental or more proximal endobronchial/endotracheal nodules are 4A; a new one has
        # not yet been shown stable or growing, which is what makes it 4B (RDES267).
        return "4A", "New segmental or more proximal airway (endobronchial/endotracheal) nodule."
    if state is None and not persistent:
        raise MissingParameterError("status", "On this follow-up screen, is the airway nodule new, growing or stable?")
    if on["proven_benign"] and state is not Status.GROWING:
        if prior_cat is None:
            raise MissingParameterError("prior_category", _ASK_PRIOR_CATEGORY)
        # RDES267: a category 4B lesion proven benign after appropriate diagnostic work-up -> 2.
        return "2", "Airway nodule: category 4B lesion proven benign after diagnostic work-up."
    if prior_cat == "4A":
        # RDES267: the 4A -> 3 step-down excludes airway nodules.
        notes.append("The 4A -> 3 step-down does not apply to airway nodules.")
    # RDES267: segmental or more proximal airway nodule, stable or growing (persisting at the 3-month LDCT) -> 4B.
    return "4B", "Segmental or more proximal airway nodule, stable or growing (persistent) on follow-up."


def _cyst(
    cyst: Cyst,
    exam: Exam,
    status: Status | str | None,
    cyst_change: CystChange | str | None,
    prior_cat: str | None,
    proven: bool,
    inputs: dict[str, object],
    notes: list[str],
) -> tuple[str, str]:
    inputs["cyst"] = cyst
    if cyst is Cyst.THIN_WALLED and cyst_change is None:
        raise CalculatorInputError(
            "cyst='thin_walled': a thin-walled cyst is not an atypical-cyst category in the CDE table; only one "
            "that becomes multilocular is (cyst_change='became_multilocular' -> 4A)"
        )
    if exam is Exam.BASELINE:
        if cyst is Cyst.THICK_WALLED:
            # RDES267 4A: "Thick-walled cyst" (facts §9: at baseline -> 4A).
            return "4A", "Thick-walled cyst at baseline."
        # RDES267 4A: multilocular cyst at baseline.
        return "4A", "Multilocular cyst at baseline."
    state = coerce_enum(Status, status, "status") if status is not None else None
    change = coerce_enum(CystChange, cyst_change, "cyst_change") if cyst_change is not None else None
    if state is not None:
        inputs["status"] = state
    if state is Status.NEW:
        if change is not None:
            raise CalculatorInputError(
                f"cyst_change={change.value!r} contradicts status='new' (no prior to change from)"
            )
        if prior_cat is not None:
            notes.append("prior_category is not used for a new cyst.")
        if cyst is Cyst.THICK_WALLED:
            # RDES267 4A: "Thick-walled cyst" carries no baseline-only qualifier.
            return "4A", "New thick-walled cyst."
        raise CalculatorInputError(
            f"a new {cyst.value} cyst on a follow-up screen is not in the CDE table (multilocular cysts are listed "
            "at baseline, or as a cyst that becomes multilocular)"
        )
    if change is None:
        if state is Status.STABLE:
            change = CystChange.STABLE
        elif state is Status.GROWING and cyst is Cyst.MULTILOCULAR:
            # RDES267 4B: growing multilocular cyst (mean diameter).
            inputs["cyst_change"] = CystChange.GROWING_CYSTIC_COMPONENT
            return "4B", "Growing multilocular cyst (mean diameter)."
        else:
            raise MissingParameterError(
                "cyst_change",
                "How has the cyst changed: growing cystic component, growing wall thickness or nodularity, became "
                "multilocular, increased loculation or density, or stable?",
            )
    elif state is Status.GROWING and change is CystChange.STABLE:
        raise CalculatorInputError("status='growing' contradicts cyst_change='stable'")
    inputs["cyst_change"] = change

    if change is CystChange.GROWING_CYSTIC_COMPONENT:
        if cyst is Cyst.THICK_WALLED:
            # RDES267 3: growing cystic component (mean diameter) of a thick-walled cyst.
            return "3", "Thick-walled cyst with a growing cystic component."
        if cyst is Cyst.MULTILOCULAR:
            # RDES267 4B: growing multilocular cyst (mean diameter).
            return "4B", "Growing multilocular cyst (mean diameter)."
    elif change is CystChange.GROWING_WALL_OR_NODULARITY:
        if cyst is Cyst.THICK_WALLED:
            # RDES267 4B: thick-walled cyst with growing wall thickness or nodularity.
            return "4B", "Thick-walled cyst with growing wall thickness or nodularity."
        if cyst is Cyst.MULTILOCULAR:
            # RDES267 4B: multilocular cyst with new or increased opacity (nodular, ground glass or consolidation).
            return "4B", "Multilocular cyst with growing wall thickness or new/increased nodular opacity."
    elif change is CystChange.BECAME_MULTILOCULAR:
        if cyst is Cyst.MULTILOCULAR:
            raise CalculatorInputError(
                "cyst_change='became_multilocular' contradicts cyst='multilocular' (it already was); more "
                "loculation is cyst_change='increased_loculation_or_density'"
            )
        # RDES267 4A: thin- or thick-walled cyst that becomes multilocular.
        return "4A", f"{cyst.value.replace('_', '-').capitalize()} cyst that became multilocular."
    elif change is CystChange.INCREASED_LOCULATION_OR_DENSITY:
        if cyst is Cyst.MULTILOCULAR:
            # RDES267 4B: multilocular cyst with increased loculation or new or increased opacity.
            return "4B", "Multilocular cyst with increased loculation or new/increased density."
        raise CalculatorInputError(
            f"cyst_change='increased_loculation_or_density' for a {cyst.value} cyst is not a CDE row: a cyst that "
            "becomes multilocular is 'became_multilocular' (4A), wall thickening or nodularity is "
            "'growing_wall_or_nodularity'"
        )
    else:  # stable or smaller
        if cyst is Cyst.THIN_WALLED:
            raise CalculatorInputError("a stable thin-walled cyst is not an atypical-cyst category in the CDE table")
        if prior_cat is None:
            raise MissingParameterError("prior_category", _ASK_PRIOR_CATEGORY)
        # RDES267's stepped rules speak of a category 3 / 4A / 4B "lesion", which includes atypical cysts.
        category, why = _step_down(prior_cat, proven)
        return category, f"Stable or smaller {cyst.value.replace('_', '-')} cyst; {why}."
    raise CalculatorInputError(f"cyst_change={change.value!r} for a {cyst.value} cyst is not in the CDE table")


# ------------------------------------------------------------------------------------------------ result


def _finish(
    category: str, why: str, inputs: dict[str, object], notes: list[str], on: dict[str, bool], *, nodule: bool
) -> GuidelineResult:
    if on["suspicious_features"] and nodule:
        inputs["suspicious_features"] = True
        # RDES267 4X: category 3 or 4 nodules with additional features or imaging findings that increase the
        # suspicion for lung cancer.
        if category in ("3", "4A", "4B"):
            why += f" Upgraded from {category} to 4X for additional features suspicious for cancer."
            category = "4X"
        elif category != "4X":
            notes.append("4X applies only to category 3 or 4 nodules; suspicious features noted but not applied.")
    return _result(category, inputs, notes, why)


def _result(category: str, inputs: dict[str, object], notes: list[str], why: str) -> GuidelineResult:
    label = category
    management = _MANAGEMENT[category]
    if inputs.get("s_modifier"):
        # RDES267 / YB: the S modifier may be added to categories 0-4 for a clinically significant or potentially
        # clinically significant finding unrelated to lung cancer; the category itself is unchanged.
        label = f"{category}S"
        management = f"{management} {_S_NOTE}"
        notes.append(f"Reported as Lung-RADS {label} (S modifier; the category itself is {category}).")
    return GuidelineResult(
        calculator="lungrads",
        guideline=GUIDELINE,
        version=VERSION,
        category=category,
        recommendation=f"Lung-RADS {label}. {why} Management: {management}",
        inputs=inputs,
        section_id=f"lung-rads-2022/category-{category.lower()}",
        source=SOURCE,
        malignancy_risk=_RISK[category],
        notes=tuple(notes),
    )
