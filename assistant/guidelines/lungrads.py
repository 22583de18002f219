"""ACR Lung-RADS v2022: category and management of a lung cancer screening (LDCT) finding.

Implements the assessment-category table of Lung-RADS v2022 (ACR 2022; Christensen et al., CHEST
2024;165:738-753), whose size bands for solid, part-solid and non-solid nodules are those of v1.1 (NCBI
NBK568579 Appendix A Table 2), as restated in ../shared/reference/guideline_facts.md section 2.
Mean diameter is the mean of long and short axes reported to one decimal place; growth is an increase
of more than 1.5 mm in mean diameter within 12 months.
"""

from __future__ import annotations

from enum import StrEnum

from assistant.guidelines.common import (
    UNVERIFIED_NOTE,
    CalculatorInputError,
    Composition,
    GuidelineResult,
    MissingParameterError,
    check_positive,
    coerce_enum,
    fmt_mm,
    resolve_size,
    round_half_up,
)

GUIDELINE = "ACR Lung-RADS"
VERSION = "v2022"
SOURCE = "ACR Lung-RADS v2022 assessment categories (Christensen et al., CHEST 2024;165:738-753)"
GROWTH_MM = 1.5  # growth: mean diameter increase > 1.5 mm within 12 months


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
    """A nodule's behaviour on a follow-up screen."""

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
    """Atypical pulmonary cyst types covered by the confirmed facts."""

    MULTILOCULAR = "multilocular"
    THICK_WALLED = "thick_walled"


_MANAGEMENT = {
    "0": "Additional LDCT images and/or comparison with prior chest CT; if infection or inflammation is "
    "suspected, LDCT in 1-3 months.",
    "1": "Continue annual screening: LDCT in 12 months.",
    "2": "Continue annual screening: LDCT in 12 months.",
    "3": "LDCT in 6 months.",
    "4A": "LDCT in 3 months; PET/CT may be considered if there is a solid nodule or solid component >=8 mm.",
    "4B": "Diagnostic chest CT with or without contrast; PET/CT if there is a solid nodule or solid "
    "component "
    ">=8 mm; tissue sampling; and/or referral for clinical evaluation.",
    "4X": "As for 4B: diagnostic chest CT with or without contrast; PET/CT if there is a solid nodule "
    "or solid "
    "component >=8 mm; tissue sampling; and/or referral for clinical evaluation.",
}
_RISK = {"0": None, "1": "<1%", "2": "<1%", "3": "1-2%", "4A": "5-15%", "4B": ">15%", "4X": ">15%"}
_ORDER = ["0", "1", "2", "3", "4A", "4B", "4X"]


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
) -> GuidelineResult:
    """Lung-RADS v2022 category and management for the most suspicious screening finding."""
    exam_kind = coerce_enum(Exam, exam, "exam")
    inputs: dict[str, object] = {"exam": exam_kind}
    notes: list[str] = []

    if incomplete or infection_suspected:
        inputs["incomplete" if incomplete else "infection_suspected"] = True
        return _result("0", inputs, notes, "Incomplete examination or findings suggesting infection/inflammation.")
    if no_nodules or benign_calcification_or_fat:
        if nodule_type is not None and not benign_calcification_or_fat:
            raise CalculatorInputError("no_nodules=True contradicts nodule_type being given")
        inputs["no_nodules" if no_nodules else "benign_calcification_or_fat"] = True
        return _result("1", inputs, notes, "No nodules, or nodules with benign calcification or fat.")
    if airway is not None:
        return _airway(coerce_enum(Airway, airway, "airway"), airway_persistent_at_3_months, inputs, notes)
    if cyst is not None:
        return _cyst(coerce_enum(Cyst, cyst, "cyst"), exam_kind, status, suspicious_features, inputs, notes)

    if nodule_type is None:
        raise MissingParameterError("nodule_type", "Is the nodule solid, part-solid or non-solid (ground-glass)?")
    kind = coerce_enum(Composition, nodule_type, "nodule_type")
    inputs["nodule_type"] = kind
    raw = resolve_size(mean_diameter_mm, long_axis_mm, short_axis_mm, "mean_diameter_mm")
    if raw is None:
        raise MissingParameterError("mean_diameter_mm", "What is the mean nodule diameter (mm)?")
    # Lung-RADS: mean diameter reported to one decimal place.
    d = round_half_up(raw, 1)
    inputs["mean_diameter_mm"] = d

    state = _status(exam_kind, status, prior_mean_diameter_mm, d, inputs)
    solid_part: float | None = None
    if solid_component_mm is not None:
        if kind is not Composition.PART_SOLID:
            raise CalculatorInputError(
                f"solid_component_mm={solid_component_mm!r} only applies to part-solid nodules "
                f"(nodule_type={kind.value})"
            )
        solid_part = round_half_up(check_positive(solid_component_mm, "solid_component_mm"), 1)
        if solid_part > d:
            raise CalculatorInputError(
                f"solid_component_mm={solid_component_mm!r} is larger than the whole nodule ({fmt_mm(d)})"
            )
        inputs["solid_component_mm"] = solid_part
    if juxtapleural_benign_morphology:
        if kind is not Composition.SOLID:
            raise CalculatorInputError("juxtapleural_benign_morphology applies to solid nodules only")
        inputs["juxtapleural_benign_morphology"] = True

    if state is Status.STABLE:
        category, why = _stable(prior_category, inputs, notes)
    elif kind is Composition.SOLID:
        category, why = _solid(d, exam_kind, state, juxtapleural_benign_morphology)
    elif kind is Composition.PART_SOLID:
        if solid_part is None and not (d < 6 and state in (None, Status.NEW)):
            raise MissingParameterError(
                "solid_component_mm", "How large is the solid component of the part-solid nodule (mm)?"
            )
        category, why = _part_solid(d, solid_part, state)
    else:
        category, why = _non_solid(d, state)

    if suspicious_features:
        inputs["suspicious_features"] = True
        if category in ("3", "4A", "4B"):
            why += f" Upgraded from {category} to 4X for additional features suspicious for cancer."
            category = "4X"
        else:
            notes.append("4X applies only to category 3 or 4 nodules; suspicious features noted but not applied.")
    return _result(category, inputs, notes, why)


def _status(
    exam: Exam, status: Status | str | None, prior: float | None, d: float, inputs: dict[str, object]
) -> Status | None:
    given = coerce_enum(Status, status, "status") if status is not None else None
    if exam is Exam.BASELINE:
        if given is not None or prior is not None:
            raise CalculatorInputError(
                f"status={status!r} / prior_mean_diameter_mm={prior!r} contradict exam=baseline "
                "(a baseline screen has no prior)"
            )
        return None
    derived: Status | None = None
    if prior is not None:
        prior_d = round_half_up(check_positive(prior, "prior_mean_diameter_mm"), 1)
        inputs["prior_mean_diameter_mm"] = prior_d
        derived = Status.GROWING if round_half_up(d - prior_d, 1) > GROWTH_MM else Status.STABLE
        if given is Status.NEW:
            raise CalculatorInputError("status='new' contradicts a prior_mean_diameter_mm being given")
        if given is not None and given is not derived:
            raise CalculatorInputError(
                f"status={given.value!r} contradicts the sizes ({prior_d:g} -> {d:g} mm is "
                f"{'more' if derived is Status.GROWING else 'not more'} than {GROWTH_MM} mm growth)"
            )
    state = given or derived
    if state is None:
        raise MissingParameterError("status", "On this follow-up screen, is the nodule new, growing or stable?")
    inputs["status"] = state
    return state


def _stable(prior_category: str | None, inputs: dict[str, object], notes: list[str]) -> tuple[str, str]:
    prior = (prior_category or "").strip().upper().removeprefix("LR").strip() or None
    if prior is not None:
        if prior not in _ORDER:
            raise CalculatorInputError(f"prior_category={prior_category!r} is not a Lung-RADS category")
        inputs["prior_category"] = prior
    if prior == "4A":
        notes.append(UNVERIFIED_NOTE)
        return "3", "Category 4A nodule stable at the 3-month LDCT: stepped down to 3 (stepped management)."
    if prior in ("4B", "4X"):
        raise CalculatorInputError(
            f"prior_category={prior!r}: management of a stable 4B/4X finding is not in the confirmed table"
        )
    if prior == "3":
        return "2", "Category 3 nodule stable or smaller at the 6-month LDCT: stepped down to 2."
    return "2", "Nodule unchanged on follow-up: benign behaviour."


def _solid(d: float, exam: Exam, state: Status | None, juxtapleural: bool) -> tuple[str, str]:
    if juxtapleural and d < 10:
        return "2", f"Juxtapleural solid nodule {fmt_mm(d)} (<10 mm) with smooth margins and benign shape."
    if exam is Exam.BASELINE:
        if d < 6:
            return "2", f"Baseline solid nodule {fmt_mm(d)} (<6 mm)."
        if d < 8:
            return "3", f"Baseline solid nodule {fmt_mm(d)} (>=6 to <8 mm)."
        if d < 15:
            return "4A", f"Baseline solid nodule {fmt_mm(d)} (>=8 to <15 mm)."
        return "4B", f"Baseline solid nodule {fmt_mm(d)} (>=15 mm)."
    if state is Status.NEW:
        if d < 4:
            return "2", f"New solid nodule {fmt_mm(d)} (<4 mm)."
        if d < 6:
            return "3", f"New solid nodule {fmt_mm(d)} (4 to <6 mm)."
        if d < 8:
            return "4A", f"New solid nodule {fmt_mm(d)} (6 to <8 mm)."
        return "4B", f"New solid nodule {fmt_mm(d)} (>=8 mm)."
    # Growing.
    if d < 8:
        return "4A", f"Growing solid nodule {fmt_mm(d)} (<8 mm)."
    return "4B", f"Growing solid nodule {fmt_mm(d)} (>=8 mm)."


def _part_solid(d: float, solid: float | None, state: Status | None) -> tuple[str, str]:
    if solid is None:  # only reached when the total alone decides (<6 mm at baseline or new)
        label = "Baseline" if state is None else "New"
        return ("2" if state is None else "3"), f"{label} part-solid nodule {fmt_mm(d)} total (<6 mm)."
    size = f"part-solid nodule {fmt_mm(d)} total, solid component {fmt_mm(solid)}"
    if state is None:  # baseline
        if d < 6:
            return "2", f"Baseline {size} (<6 mm total)."
        if solid < 6:
            return "3", f"Baseline {size} (>=6 mm total, solid component <6 mm)."
        if solid < 8:
            return "4A", f"Baseline {size} (solid component >=6 to <8 mm)."
        return "4B", f"Baseline {size} (solid component >=8 mm)."
    if state is Status.NEW and d < 6:
        return "3", f"New {size} (<6 mm total)."
    # New (>=6 mm total) or growing: a new or growing solid component, with the size bands as a floor.
    if solid >= 8:
        return "4B", f"{state.value.capitalize()} {size} (solid component >=8 mm)."
    if solid >= 4:
        return "4B", f"{state.value.capitalize()} {size} (new or growing solid component >=4 mm)."
    return "4A", f"{state.value.capitalize()} {size} (new or growing solid component <4 mm)."


def _non_solid(d: float, state: Status | None) -> tuple[str, str]:
    label = "Baseline" if state is None else state.value.capitalize()
    if d < 30:
        return "2", f"{label} non-solid (ground-glass) nodule {fmt_mm(d)} (<30 mm)."
    if state is Status.GROWING:
        raise CalculatorInputError(
            f"a growing non-solid nodule >=30 mm (mean_diameter_mm={d:g}) is not covered by the confirmed "
            "table; only stable or slowly growing ones (category 2) are - give status='stable' if it "
            "grows slowly"
        )
    return "3", f"{label} non-solid (ground-glass) nodule {fmt_mm(d)} (>=30 mm)."


def _airway(airway: Airway, persistent: bool, inputs: dict[str, object], notes: list[str]) -> GuidelineResult:
    inputs["airway"] = airway
    if airway is Airway.SUBSEGMENTAL:
        if persistent:
            raise CalculatorInputError("airway_persistent_at_3_months applies to segmental or proximal nodules")
        return _result("2", inputs, notes, "Subsegmental airway nodule.")
    if persistent:
        inputs["airway_persistent_at_3_months"] = True
        return _result("4B", inputs, notes, "Segmental or more proximal airway nodule persisting at 3-month LDCT.")
    return _result("4A", inputs, notes, "Segmental or more proximal airway (endobronchial/endotracheal) nodule.")


def _cyst(
    cyst: Cyst,
    exam: Exam,
    status: Status | str | None,
    suspicious: bool,
    inputs: dict[str, object],
    notes: list[str],
) -> GuidelineResult:
    inputs["cyst"] = cyst
    state = coerce_enum(Status, status, "status") if status is not None else None
    growing = state is Status.GROWING
    if growing:
        inputs["status"] = state
    if cyst is Cyst.MULTILOCULAR:
        if growing or suspicious:
            if suspicious:
                inputs["suspicious_features"] = True
            return _result(
                "4B",
                inputs,
                notes,
                "Growing multilocular cyst, or multilocular cyst with more loculation or density.",
            )
        if exam is Exam.BASELINE:
            return _result("4A", inputs, notes, "Multilocular cyst at baseline.")
    if cyst is Cyst.THICK_WALLED and growing:
        return _result("4B", inputs, notes, "Growing thick-walled cyst.")
    raise CalculatorInputError(
        f"cyst={cyst.value!r} with exam={exam.value!r} and status={status!r} is not covered by the confirmed table"
    )


def _result(category: str, inputs: dict[str, object], notes: list[str], why: str) -> GuidelineResult:
    return GuidelineResult(
        calculator="lungrads",
        guideline=GUIDELINE,
        version=VERSION,
        category=category,
        recommendation=f"Lung-RADS {category}. {why} Management: {_MANAGEMENT[category]}",
        inputs=inputs,
        section_id=f"lung-rads-2022/category-{category.lower()}",
        source=SOURCE,
        malignancy_risk=_RISK[category],
        unverified=UNVERIFIED_NOTE in notes,
        notes=tuple(notes),
    )
