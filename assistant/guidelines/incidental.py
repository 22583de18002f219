"""ACR incidental findings: adrenal mass (Mayo-Smith et al., JACR 2017) and renal mass enhancement (Herts et
al., JACR 2018), as far as ../shared/reference/guideline_facts.md sections 5, 7 and 9 confirm them.

Adrenal algorithm, in this order (sources are keys of tests/data/guideline_cases/sources.toml):
1. <1 cm: no further work-up [C, acr-adrenal-2017].
2. Diagnostic benign imaging features (macroscopic fat, <=10 HU unenhanced, chemical-shift signal loss, cyst,
   benign calcified mass, haemorrhage): no follow-up, at any size [C, acr-adrenal-2017: the algorithm applies
   them before size].
3. >=4 cm without benign features: surgical evaluation when there is no cancer history [C, section 9: RP-AD,
   adrenal-afp]. With a cancer history the white paper's branch was not confirmed, so it is refused.
4. 1-4 cm: prior imaging and cancer history [C]. Washout values are refused: the adenoma thresholds were not
   confirmed against the white paper.
The partly checked rule "2-4 cm without prior imaging -> adrenal CT or MRI" returns ``unverified=True``.
"""

from __future__ import annotations

import math
from enum import StrEnum

from assistant.guidelines.common import (
    CalculatorInputError,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    check_hu,
    check_positive,
    coerce_enum,
)

ADRENAL_GUIDELINE = "ACR incidental adrenal mass white paper"
ADRENAL_VERSION = "2017"
ADRENAL_SOURCE = "Mayo-Smith WW et al. Management of Incidental Adrenal Masses: ACR white paper. JACR 2017"
RENAL_GUIDELINE = "ACR incidental renal mass white paper"
RENAL_VERSION = "2018"
RENAL_SOURCE = "Herts BR et al. Management of the Incidental Renal Mass on CT: ACR white paper. JACR 2018"
SMALL_CM = 1.0  # <1 cm: no further work-up [C]
LIPID_RICH_HU = 10.0  # unenhanced CT <=10 HU: lipid-rich adenoma [C]
PROBABLY_BENIGN_CM = 2.0  # 1 to <2 cm, no prior imaging, no cancer history: probably benign [C]
LARGE_CM = 4.0  # >=4 cm without benign features: surgical evaluation (no cancer history) [C, section 9]
# Washout CT adenoma thresholds (absolute >=60%, relative >=40%) appear in teaching sources but were not confirmed
# against the white paper (guideline_facts.md section 7 [U]); the calculator refuses washout input instead.
ENHANCING_HU = 20.0  # renal CT: >=20 HU increase is enhancement [C]
EQUIVOCAL_HU = 10.0  # renal CT: >10 to <20 HU equivocal; <=10 HU no enhancement [C]
ENHANCING_MRI_PCT = 15.0  # renal MRI: >=15% signal increase is enhancement [C]

# Input-validation bounds, not guideline facts: values outside them are typing or unit errors.
MAX_AGE_YEARS = 130
WASHOUT_PCT_RANGE = (-100.0, 100.0)
MRI_SIGNAL_PCT_RANGE = (-100.0, 1000.0)


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
    functioning: bool | None = None,
    symptomatic: bool | None = None,
) -> GuidelineResult:
    """ACR 2017 management of an incidental adrenal mass in an asymptomatic adult.

    ``functioning`` says whether there are biochemical features of a functioning adenoma or phaeochromocytoma
    (None: not tested or not stated); ``symptomatic`` whether the patient has symptoms of adrenal disease.
    """
    if age is not None:
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age <= MAX_AGE_YEARS:
            raise CalculatorInputError(f"age={age!r} must be an age in years (0-{MAX_AGE_YEARS})")
        if age < 18:
            # Scope: adults >=18 years [C].
            raise NotApplicableError(ADRENAL_GUIDELINE, f"age {age:g} is under 18 years")
    if symptomatic is not None and not isinstance(symptomatic, bool):
        raise CalculatorInputError(f"symptomatic={symptomatic!r} must be true or false")
    if symptomatic:
        # Scope: patients asymptomatic for adrenal disease, imaged for another reason [C].
        raise NotApplicableError(
            ADRENAL_GUIDELINE,
            "the patient has symptoms of adrenal disease; the algorithm is for incidental masses in asymptomatic "
            "adults",
            "evaluate the suspected adrenal disease clinically and biochemically",
        )
    if size_cm is None:
        raise MissingParameterError("size_cm", "What is the size of the adrenal mass (cm)?")
    size = check_positive(size_cm, "size_cm")
    inputs: dict[str, object] = {"size_cm": size}
    if age is not None:
        inputs["age"] = age
    # Validate every input before any branch, so a bad value is never silently ignored.
    feature = coerce_enum(BenignFeature, benign_feature, "benign_feature") if benign_feature else None
    hu = check_hu(unenhanced_hu, "unenhanced_hu") if unenhanced_hu is not None else None
    prior = coerce_enum(PriorImaging, prior_imaging, "prior_imaging") if prior_imaging is not None else None
    for name, flag in (("cancer_history", cancer_history), ("functioning", functioning)):
        if flag is not None and not isinstance(flag, bool):
            raise CalculatorInputError(f"{name}={flag!r} must be true or false")
    washouts = _washout_values(absolute_washout_pct, relative_washout_pct)
    history = cancer_history
    if functioning is not None:
        inputs["functioning"] = functioning

    if size < SMALL_CM:
        return _adrenal(
            "no further workup",
            "Adrenal mass <1 cm: no further workup.",
            "acr-adrenal-2017/small-mass",
            inputs,
        )

    # Diagnostic benign imaging features win at any size: the ACR algorithm applies them before size.
    large_note = (
        f" The mass is {size:g} cm (>=4 cm): the confirmed algorithm applies diagnostic benign features at any size,"
        " but how a large myelolipoma, cyst or haemorrhage is managed (e.g. if symptomatic) is not in the confirmed"
        " table; consider clinical review."
        if size >= LARGE_CM
        else ""
    )
    if feature is not None:
        inputs["benign_feature"] = feature
        return _adrenal(
            "benign, no follow-up",
            f"Diagnostic benign feature ({feature.value.replace('_', ' ')}): no follow-up." + large_note,
            "acr-adrenal-2017/benign-features",
            inputs,
        )
    if hu is not None:
        inputs["unenhanced_hu"] = hu
        if hu <= LIPID_RICH_HU:
            return _adrenal(
                "benign, no follow-up",
                f"Lipid-rich adenoma ({hu:g} HU, <=10 HU on unenhanced CT): no follow-up." + large_note,
                "acr-adrenal-2017/benign-features",
                inputs,
            )
    if history is not None:
        inputs["cancer_history"] = history

    # >=4 cm without benign features: its own branch, before any washout rule (washout CT is for 1-4 cm).
    if size >= LARGE_CM:
        if prior is not None:
            inputs["prior_imaging"] = prior
        if history is None:
            raise MissingParameterError("cancer_history", "Does the patient have a history of cancer?")
        if history:
            raise CalculatorInputError(
                f"size_cm={size:g} (>=4 cm) with cancer_history=True: the management of a mass of 4 cm or more in a "
                "patient with a cancer history is not in the confirmed table (not computed; refer for oncologic "
                "evaluation as clinically appropriate)"
            )
        inputs.update(washouts)
        washout_note = (
            " Washout values were not used: the adrenal washout CT pathway applies to 1-4 cm masses only."
            if washouts
            else ""
        )
        return _adrenal(
            "large, surgical evaluation",
            f"Adrenal mass {size:g} cm (>=4 cm) without diagnostic benign imaging features, no cancer history: "
            "refer for surgical evaluation." + washout_note,
            "acr-adrenal-2017/large-mass",
            inputs,
        )

    # 1-4 cm: a dedicated washout CT is the preferred test for a mass >10 HU [C], but the washout thresholds
    # that would call it an adenoma were not confirmed against the white paper, so a washout result is refused
    # rather than turned into "benign".
    if washouts:
        inputs.update(washouts)
        raise CalculatorInputError(
            f"{', '.join(f'{k}={v:g}' for k, v in washouts.items())}: the washout thresholds for an adenoma are not "
            "in the confirmed table, so washout is not used to classify this 1-4 cm mass; leave the washout values "
            "out to apply the prior-imaging and cancer-history rules"
        )

    hu_note = " A dedicated adrenal (washout) CT is preferred for a 1-4 cm mass >10 HU."
    if prior is None:
        raise MissingParameterError(
            "prior_imaging",
            "Is there prior imaging of the adrenal (none, stable >=1 year, new or enlarging)?",
        )
    inputs["prior_imaging"] = prior
    if prior is PriorImaging.STABLE_1Y:
        # Stable >=1 year: no follow-up only without biochemical features of a functioning tumour [C, RP-AD].
        if functioning:
            raise CalculatorInputError(
                "functioning=True with prior_imaging='stable_1y': 'stable, no follow-up' holds only without "
                "biochemical features of a functioning adenoma or phaeochromocytoma; this case is not in the "
                "confirmed table (refer for endocrine evaluation)"
            )
        return _adrenal(
            "indeterminate, stable",
            "Indeterminate 1-4 cm mass stable for >=1 year: no follow-up, provided there are no biochemical "
            "features of a functioning adenoma or phaeochromocytoma.",
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
            "prior_imaging='none' with cancer_history=True: this branch is not in the confirmed table (not computed)"
        )
    if size < PROBABLY_BENIGN_CM:
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


def _washout_values(absolute: float | None, relative: float | None) -> dict[str, float]:
    values: dict[str, float] = {}
    low, high = WASHOUT_PCT_RANGE
    for name, value in (("absolute_washout_pct", absolute), ("relative_washout_pct", relative)):
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise CalculatorInputError(f"{name}={value!r} must be a percentage between {low:g} and {high:g}")
        values[name] = float(value)
    return values


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
    *,
    unenhanced_hu: float | None = None,
    enhanced_hu: float | None = None,
) -> GuidelineResult:
    """Whether a renal mass enhances (CT >=20 HU; >10-<20 HU equivocal; MRI >=15% or on subtraction) [C].

    On CT give ``hu_increase``, or the attenuation before (``unenhanced_hu``) and after contrast (``enhanced_hu``):
    a single attenuation value is not an enhancement.
    """
    mod = coerce_enum(RenalModality, modality, "modality")
    inputs: dict[str, object] = {"modality": mod}
    if subtraction_enhancement is not None and not isinstance(subtraction_enhancement, bool):
        raise CalculatorInputError(f"subtraction_enhancement={subtraction_enhancement!r} must be true or false")
    if mod is RenalModality.CT:
        if signal_increase_pct is not None or subtraction_enhancement is not None:
            raise CalculatorInputError("signal_increase_pct/subtraction_enhancement are MRI inputs, modality='ct'")
        increase = _ct_increase(hu_increase, unenhanced_hu, enhanced_hu, inputs)
        if increase >= ENHANCING_HU:
            category, why = "enhancing", f"increase of {increase:g} HU (>=20 HU): definite enhancement"
        elif increase > EQUIVOCAL_HU:
            category, why = (
                "equivocal",
                f"increase of {increase:g} HU (>10 to <20 HU): equivocal enhancement",
            )
        else:
            category, why = "non-enhancing", f"increase of {increase:g} HU (<=10 HU): no enhancement"
    else:
        for name, value in (
            ("hu_increase", hu_increase),
            ("unenhanced_hu", unenhanced_hu),
            ("enhanced_hu", enhanced_hu),
        ):
            if value is not None:
                raise CalculatorInputError(f"{name}={value!r} is a CT input, modality='mri'")
        if signal_increase_pct is None and subtraction_enhancement is None:
            raise MissingParameterError("signal_increase_pct", "What is the percentage signal increase after contrast?")
        if signal_increase_pct is not None:
            low, high = MRI_SIGNAL_PCT_RANGE
            if (
                isinstance(signal_increase_pct, bool)
                or not isinstance(signal_increase_pct, int | float)
                or not math.isfinite(signal_increase_pct)
                or not low <= signal_increase_pct <= high
            ):
                raise CalculatorInputError(
                    f"signal_increase_pct={signal_increase_pct!r} must be a percentage between {low:g} and {high:g}"
                )
            inputs["signal_increase_pct"] = float(signal_increase_pct)
        if subtraction_enhancement is not None:
            inputs["subtraction_enhancement"] = subtraction_enhancement
        if (signal_increase_pct is not None and signal_increase_pct >= ENHANCING_MRI_PCT) or subtraction_enhancement:
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


def _ct_increase(
    hu_increase: float | None, unenhanced_hu: float | None, enhanced_hu: float | None, inputs: dict[str, object]
) -> float:
    """The CT attenuation increase: given directly, or enhanced minus unenhanced attenuation."""
    if unenhanced_hu is None and enhanced_hu is None:
        if hu_increase is None:
            raise MissingParameterError("hu_increase", "By how many HU does the mass enhance after contrast?")
        increase = check_hu(hu_increase, "hu_increase")
        inputs["hu_increase"] = increase
        return increase
    if hu_increase is not None:
        raise CalculatorInputError(
            f"hu_increase={hu_increase!r} and unenhanced_hu/enhanced_hu were both given; give one of them"
        )
    if unenhanced_hu is None:
        raise MissingParameterError(
            "unenhanced_hu", "What is the attenuation of the mass on unenhanced CT (HU)? One value is not enhancement."
        )
    if enhanced_hu is None:
        raise MissingParameterError("enhanced_hu", "What is the attenuation of the mass after contrast (HU)?")
    before = check_hu(unenhanced_hu, "unenhanced_hu")
    after = check_hu(enhanced_hu, "enhanced_hu")
    inputs.update(unenhanced_hu=before, enhanced_hu=after, hu_increase=after - before)
    return after - before
