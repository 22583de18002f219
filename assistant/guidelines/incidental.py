"""ACR incidental findings: adrenal mass (Mayo-Smith et al., JACR 2017) and renal mass enhancement (Herts et
al., JACR 2018), as far as ../shared/reference/guideline_facts.md section 7 and 5 confirm them.

Confirmed rules are returned plainly; the parts of the adrenal algorithm that could only be partly checked
(2-4 cm without prior imaging, >=4 cm masses, washout thresholds) are returned with ``unverified=True``.
"""

from __future__ import annotations

from enum import StrEnum

from assistant.guidelines.common import (
    CalculatorInputError,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    check_positive,
    coerce_enum,
)

ADRENAL_GUIDELINE = "ACR incidental adrenal mass white paper"
ADRENAL_VERSION = "2017"
ADRENAL_SOURCE = "Mayo-Smith WW et al. Management of Incidental Adrenal Masses: ACR white paper. JACR 2017"
RENAL_GUIDELINE = "ACR incidental renal mass white paper"
RENAL_VERSION = "2018"
RENAL_SOURCE = "Herts BR et al. Management of the Incidental Renal Mass on CT: ACR white paper. JACR 2018"
LIPID_RICH_HU = 10.0  # unenhanced CT <=10 HU: lipid-rich adenoma
ABSOLUTE_WASHOUT_PCT = 60.0  # adrenal washout CT, adenoma threshold (unverified against the white paper)
RELATIVE_WASHOUT_PCT = 40.0


class BenignFeature(StrEnum):
    """Diagnostic benign imaging features of an adrenal mass."""

    MACROSCOPIC_FAT = "macroscopic_fat"
    CHEMICAL_SHIFT_SIGNAL_LOSS = "chemical_shift_signal_loss"
    CYST = "cyst"
    CALCIFIED = "calcified"
    HAEMORRHAGE = "haemorrhage"

    @classmethod
    def _missing_(cls, value: object) -> BenignFeature | None:
        aliases = {
            "fat": cls.MACROSCOPIC_FAT,
            "myelolipoma": cls.MACROSCOPIC_FAT,
            "hemorrhage": cls.HAEMORRHAGE,
            "signal_loss": cls.CHEMICAL_SHIFT_SIGNAL_LOSS,
            "calcification": cls.CALCIFIED,
            "benign_calcified_mass": cls.CALCIFIED,
        }
        return aliases.get(str(value).lower())


class PriorImaging(StrEnum):
    """What prior imaging shows about the adrenal mass."""

    NONE = "none"
    STABLE_1Y = "stable_1y"
    NEW_OR_ENLARGING = "new_or_enlarging"

    @classmethod
    def _missing_(cls, value: object) -> PriorImaging | None:
        aliases = {
            "stable": cls.STABLE_1Y,
            "new": cls.NEW_OR_ENLARGING,
            "enlarging": cls.NEW_OR_ENLARGING,
            "growing": cls.NEW_OR_ENLARGING,
            "no": cls.NONE,
        }
        return aliases.get(str(value).lower())


def adrenal(
    size_cm: float | None,
    *,
    unenhanced_hu: float | None = None,
    benign_feature: BenignFeature | str | None = None,
    prior_imaging: PriorImaging | str | None = None,
    cancer_history: bool | None = None,
    absolute_washout_pct: float | None = None,
    relative_washout_pct: float | None = None,
    age: int | None = None,
) -> GuidelineResult:
    """ACR 2017 management of an incidental adrenal mass in an asymptomatic adult."""
    if age is not None:
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age <= 130:
            raise CalculatorInputError(f"age={age!r} must be an age in years")
        if age < 18:
            raise NotApplicableError(ADRENAL_GUIDELINE, f"age {age:g} is under 18 years")
    if size_cm is None:
        raise MissingParameterError("size_cm", "What is the size of the adrenal mass (cm)?")
    size = check_positive(size_cm, "size_cm")
    inputs: dict[str, object] = {"size_cm": size}
    if age is not None:
        inputs["age"] = age

    if size < 1:
        return _adrenal(
            "no further workup",
            "Adrenal mass <1 cm: no further workup.",
            "acr-adrenal-2017/small-mass",
            inputs,
        )
    feature = coerce_enum(BenignFeature, benign_feature, "benign_feature") if benign_feature else None
    if feature is not None:
        inputs["benign_feature"] = feature
        return _adrenal(
            "benign, no follow-up",
            f"Diagnostic benign feature ({feature.value.replace('_', ' ')}): no follow-up.",
            "acr-adrenal-2017/benign-features",
            inputs,
        )
    if unenhanced_hu is not None:
        if isinstance(unenhanced_hu, bool) or not isinstance(unenhanced_hu, int | float):
            raise CalculatorInputError(f"unenhanced_hu={unenhanced_hu!r} must be a number")
        inputs["unenhanced_hu"] = unenhanced_hu
        if unenhanced_hu <= LIPID_RICH_HU:
            return _adrenal(
                "benign, no follow-up",
                f"Lipid-rich adenoma ({unenhanced_hu:g} HU, <=10 HU on unenhanced CT): no follow-up.",
                "acr-adrenal-2017/benign-features",
                inputs,
            )
    washout = _washout(absolute_washout_pct, relative_washout_pct, inputs)
    if washout:
        return _adrenal(
            "benign, no follow-up",
            f"Washout consistent with adenoma ({washout}): no follow-up.",
            "acr-adrenal-2017/benign-features",
            inputs,
            unverified=True,
        )

    history = cancer_history
    if history is not None:
        inputs["cancer_history"] = history
    if size >= 4:
        if history is None:
            raise MissingParameterError("cancer_history", "Does the patient have a history of cancer?")
        action = "consider biopsy or PET/CT" if history else "consider resection"
        return _adrenal(
            "large mass",
            f"Adrenal mass >=4 cm: {action}.",
            "acr-adrenal-2017/large-mass",
            inputs,
            unverified=True,
        )

    hu_note = " A dedicated adrenal (washout) CT is preferred for a 1-4 cm mass >10 HU."
    if prior_imaging is None:
        raise MissingParameterError(
            "prior_imaging",
            "Is there prior imaging of the adrenal (none, stable >=1 year, new or enlarging)?",
        )
    prior = coerce_enum(PriorImaging, prior_imaging, "prior_imaging")
    inputs["prior_imaging"] = prior
    if prior is PriorImaging.STABLE_1Y:
        return _adrenal(
            "indeterminate, stable",
            "Indeterminate 1-4 cm mass stable for >=1 year: no follow-up.",
            "acr-adrenal-2017/indeterminate-prior-imaging",
            inputs,
        )
    if history is None:
        raise MissingParameterError("cancer_history", "Does the patient have a history of cancer?")
    if prior is PriorImaging.NEW_OR_ENLARGING:
        action = "consider biopsy or PET/CT" if history else "consider adrenal CT follow-up or resection"
        return _adrenal(
            "indeterminate, new or enlarging",
            f"Indeterminate 1-4 cm mass, new or enlarging, {'with' if history else 'no'} cancer history: {action}.",
            "acr-adrenal-2017/indeterminate-prior-imaging",
            inputs,
        )
    if history:
        raise CalculatorInputError(
            "prior_imaging='none' with cancer_history=True: this branch is not covered by the confirmed facts"
        )
    if size < 2:
        return _adrenal(
            "indeterminate, probably benign",
            "Indeterminate 1-<2 cm mass, no prior imaging, no cancer history: probably benign; consider "
            "adrenal CT at 12 months." + hu_note,
            "acr-adrenal-2017/indeterminate-no-prior-imaging",
            inputs,
        )
    return _adrenal(
        "indeterminate, adrenal CT or MRI",
        "Indeterminate 2-4 cm mass, no prior imaging, no cancer history: adrenal CT or MRI." + hu_note,
        "acr-adrenal-2017/indeterminate-no-prior-imaging",
        inputs,
        unverified=True,
    )


def _washout(absolute: float | None, relative: float | None, inputs: dict[str, object]) -> str:
    found: list[str] = []
    for name, value, threshold in (
        ("absolute_washout_pct", absolute, ABSOLUTE_WASHOUT_PCT),
        ("relative_washout_pct", relative, RELATIVE_WASHOUT_PCT),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not -100 <= value <= 100:
            raise CalculatorInputError(f"{name}={value!r} must be a percentage between -100 and 100")
        inputs[name] = value
        if value >= threshold:
            found.append(f"{name.split('_')[0]} washout {value:g}% >= {threshold:g}%")
    return "; ".join(found)


def _adrenal(
    category: str,
    recommendation: str,
    section_id: str,
    inputs: dict[str, object],
    *,
    unverified: bool = False,
) -> GuidelineResult:
    return GuidelineResult(
        calculator="adrenal",
        guideline=ADRENAL_GUIDELINE,
        version=ADRENAL_VERSION,
        category=category,
        recommendation=recommendation,
        inputs=inputs,
        section_id=section_id,
        source=ADRENAL_SOURCE,
        unverified=unverified,
    )


class RenalModality(StrEnum):
    """Modality used to judge enhancement of a renal mass."""

    CT = "ct"
    MRI = "mri"

    @classmethod
    def _missing_(cls, value: object) -> RenalModality | None:
        return {"mr": cls.MRI}.get(str(value).lower())


def renal_enhancement(
    modality: RenalModality | str,
    hu_increase: float | None = None,
    signal_increase_pct: float | None = None,
    subtraction_enhancement: bool | None = None,
) -> GuidelineResult:
    """Whether a renal mass enhances (CT >=20 HU; >10-<20 HU equivocal; MRI >=15% or on subtraction)."""
    mod = coerce_enum(RenalModality, modality, "modality")
    inputs: dict[str, object] = {"modality": mod}
    if mod is RenalModality.CT:
        if signal_increase_pct is not None or subtraction_enhancement is not None:
            raise CalculatorInputError("signal_increase_pct/subtraction_enhancement are MRI inputs, modality='ct'")
        if hu_increase is None:
            raise MissingParameterError("hu_increase", "By how many HU does the mass enhance after contrast?")
        if isinstance(hu_increase, bool) or not isinstance(hu_increase, int | float):
            raise CalculatorInputError(f"hu_increase={hu_increase!r} must be a number")
        inputs["hu_increase"] = hu_increase
        if hu_increase >= 20:
            category, why = "enhancing", f"increase of {hu_increase:g} HU (>=20 HU): definite enhancement"
        elif hu_increase > 10:
            category, why = (
                "equivocal",
                f"increase of {hu_increase:g} HU (>10 to <20 HU): equivocal enhancement",
            )
        else:
            category, why = "non-enhancing", f"increase of {hu_increase:g} HU (<=10 HU): no enhancement"
    else:
        if hu_increase is not None:
            raise CalculatorInputError(f"hu_increase={hu_increase!r} is a CT input, modality='mri'")
        if signal_increase_pct is None and subtraction_enhancement is None:
            raise MissingParameterError("signal_increase_pct", "What is the percentage signal increase after contrast?")
        if signal_increase_pct is not None:
            if isinstance(signal_increase_pct, bool) or not isinstance(signal_increase_pct, int | float):
                raise CalculatorInputError(f"signal_increase_pct={signal_increase_pct!r} must be a number")
            inputs["signal_increase_pct"] = signal_increase_pct
        if subtraction_enhancement is not None:
            inputs["subtraction_enhancement"] = subtraction_enhancement
        if (signal_increase_pct is not None and signal_increase_pct >= 15) or subtraction_enhancement:
            category, why = "enhancing", "signal increase >=15% or enhancement visible on subtraction images"
        else:
            category, why = (
                "no definite enhancement",
                "signal increase <15% and none visible on subtraction images",
            )
    return GuidelineResult(
        calculator="renal",
        guideline=RENAL_GUIDELINE,
        version=RENAL_VERSION,
        category=category,
        recommendation=f"Renal mass on {mod.value.upper()}: {why}.",
        inputs=inputs,
        section_id="acr-renal-2018/enhancement",
        source=RENAL_SOURCE,
    )
