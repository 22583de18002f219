"""LI-RADS v2018 CT/MRI: population check, LR-TIV, LR-1/LR-2, LR-M, the diagnostic table and ancillary features.

Order of the steps follows the v2018 CT/MRI algorithm: tumour in vein first, then definitely / probably
benign, then probably or definitely malignant but not HCC-specific (targetoid, LR-M), and only then the
diagnostic table of major features (LR-3, LR-4, LR-5), optionally adjusted by ancillary features.

Sources (keys of tests/data/guideline_cases/sources.toml):
- ``li-rads-2018``: the diagnostic table as restated in ../shared/reference/guideline_facts.md section 6; its
  LR-5 cells are confirmed there. The LR-3/LR-4 cells outside the LR-5 rules were found only in a
  third-party restatement (``li-rads-2018-table-restatement``), so those results stay ``unverified=True``.
- ``li-rads-2018-acr-faq``: the ACR LI-RADS FAQ and category descriptions (LR-1/LR-2 definitions; ancillary
  features cannot upgrade to LR-5; distinctive nodules without major features).
- ``li-rads-2018-targetoid``: Fowler et al., Hepatoma Res 2020;6:19 (any targetoid feature gives LR-M,
  even when the observation has some features of HCC).
- ``li-rads-2018-population``: Radiology Assistant LI-RADS article (Elsinger et al., 2020) and
  guideline_facts.md section 9 (who LI-RADS applies to).
The observation size is the largest outer-edge-to-outer-edge dimension (guideline_facts.md section 9), so a
long/short axis pair gives the larger of the two, never their mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import TypeVar

from assistant.guidelines.common import (
    CalculatorInputError,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    check_positive,
    coerce_enum,
    fmt_mm,
)

GUIDELINE = "LI-RADS CT/MRI"
VERSION = "v2018"
SOURCE = "ACR LI-RADS v2018 CT/MRI diagnostic table (Chernyak et al., Radiology 2018;289:816-830)"

# Input-validation bound, not a guideline fact: an age beyond this is a typing error.
MAX_AGE_YEARS = 130

_E = TypeVar("_E", bound=StrEnum)


class Aphe(StrEnum):
    """Arterial phase hyperenhancement."""

    NONE = "none"
    NONRIM = "nonrim"
    RIM = "rim"

    @classmethod
    def _missing_(cls, value: object) -> Aphe | None:
        aliases = {
            "no": cls.NONE,
            "absent": cls.NONE,
            "false": cls.NONE,
            "yes": cls.NONRIM,
            "present": cls.NONRIM,
            "non_rim": cls.NONRIM,
            "true": cls.NONRIM,
            "rim_aphe": cls.RIM,
        }
        return aliases.get(str(value).lower())


class Population(StrEnum):
    """Why the patient is (or is not) in the LI-RADS population."""

    CIRRHOSIS = "cirrhosis"
    CHRONIC_HBV = "chronic_hbv"
    HCC = "hcc"  # current or prior hepatocellular carcinoma
    NOT_AT_RISK = "not_at_risk"
    CONGENITAL_HEPATIC_FIBROSIS = "congenital_hepatic_fibrosis"
    VASCULAR_CIRRHOSIS = "vascular_cirrhosis"  # cirrhosis from a vascular disorder (e.g. Budd-Chiari)

    @classmethod
    def _missing_(cls, value: object) -> Population | None:
        aliases = {
            "hbv": cls.CHRONIC_HBV,
            "hepatitis_b": cls.CHRONIC_HBV,
            "chronic_hepatitis_b": cls.CHRONIC_HBV,
            "prior_hcc": cls.HCC,
            "current_hcc": cls.HCC,
            "current_or_prior_hcc": cls.HCC,
            "none": cls.NOT_AT_RISK,
            "no_risk": cls.NOT_AT_RISK,
            "budd_chiari": cls.VASCULAR_CIRRHOSIS,
            "cirrhosis_vascular": cls.VASCULAR_CIRRHOSIS,
            "chf": cls.CONGENITAL_HEPATIC_FIBROSIS,
        }
        return aliases.get(str(value).lower())


class BenignCategory(StrEnum):
    """The radiologist's explicit benign call: LR-1 (definitely) or LR-2 (probably) benign."""

    DEFINITELY_BENIGN = "definitely_benign"
    PROBABLY_BENIGN = "probably_benign"

    @classmethod
    def _missing_(cls, value: object) -> BenignCategory | None:
        aliases = {
            "lr_1": cls.DEFINITELY_BENIGN,
            "lr1": cls.DEFINITELY_BENIGN,
            "definite": cls.DEFINITELY_BENIGN,
            "lr_2": cls.PROBABLY_BENIGN,
            "lr2": cls.PROBABLY_BENIGN,
            "probable": cls.PROBABLY_BENIGN,
        }
        return aliases.get(str(value).lower())


class TargetoidFeature(StrEnum):
    """Targetoid LR-M features (any one is enough)."""

    RIM_APHE = "rim_aphe"
    PERIPHERAL_WASHOUT = "peripheral_washout"
    DELAYED_CENTRAL_ENHANCEMENT = "delayed_central_enhancement"
    TARGETOID_RESTRICTION = "targetoid_restriction"
    TARGETOID_TP_HBP = "targetoid_tp_hbp"  # targetoid transitional / hepatobiliary phase appearance

    @classmethod
    def _missing_(cls, value: object) -> TargetoidFeature | None:
        aliases = {
            "rim": cls.RIM_APHE,
            "targetoid_diffusion": cls.TARGETOID_RESTRICTION,
            "targetoid_hbp": cls.TARGETOID_TP_HBP,
            "targetoid_tp": cls.TARGETOID_TP_HBP,
        }
        return aliases.get(str(value).lower())


class AncillaryMalignancy(StrEnum):
    """Ancillary features favouring malignancy (in general, or HCC in particular)."""

    US_VISIBILITY = "us_visibility"
    SUBTHRESHOLD_GROWTH = "subthreshold_growth"
    CORONA_ENHANCEMENT = "corona_enhancement"
    FAT_SPARING = "fat_sparing"
    RESTRICTED_DIFFUSION = "restricted_diffusion"
    MILD_MODERATE_T2_HYPERINTENSITY = "mild_moderate_t2_hyperintensity"
    IRON_SPARING = "iron_sparing"
    TRANSITIONAL_PHASE_HYPOINTENSITY = "transitional_phase_hypointensity"
    HEPATOBILIARY_PHASE_HYPOINTENSITY = "hepatobiliary_phase_hypointensity"
    NONENHANCING_CAPSULE = "nonenhancing_capsule"
    NODULE_IN_NODULE = "nodule_in_nodule"
    MOSAIC_ARCHITECTURE = "mosaic_architecture"
    BLOOD_PRODUCTS = "blood_products"
    FAT_IN_MASS = "fat_in_mass"


class AncillaryBenignity(StrEnum):
    """Ancillary features favouring benignity."""

    SIZE_STABILITY_2Y = "size_stability_2y"
    SIZE_REDUCTION = "size_reduction"
    PARALLELS_BLOOD_POOL = "parallels_blood_pool"
    UNDISTORTED_VESSELS = "undistorted_vessels"
    IRON_IN_MASS = "iron_in_mass"
    MARKED_T2_HYPERINTENSITY = "marked_t2_hyperintensity"
    HEPATOBILIARY_PHASE_ISOINTENSITY = "hepatobiliary_phase_isointensity"


_MEANING = {
    "LR-1": "definitely benign",
    "LR-2": "probably benign",
    "LR-3": "intermediate probability of HCC",
    "LR-4": "probably HCC",
    "LR-5": "definitely HCC",
    "LR-M": "probably or definitely malignant, not HCC-specific",
    "LR-TIV": "tumour in vein",
}
_TARGETOID_TEXT = {
    TargetoidFeature.RIM_APHE: "rim APHE",
    TargetoidFeature.PERIPHERAL_WASHOUT: "peripheral washout",
    TargetoidFeature.DELAYED_CENTRAL_ENHANCEMENT: "delayed central enhancement",
    TargetoidFeature.TARGETOID_RESTRICTION: "targetoid restriction",
    TargetoidFeature.TARGETOID_TP_HBP: "targetoid transitional/hepatobiliary phase appearance",
}
_RISK = {"LR-5": "94% HCC, 97% malignant (Hepatoma Research 2020 review)"}
_ORDER = ("LR-1", "LR-2", "LR-3", "LR-4", "LR-5")
_POPULATION_TEXT = (
    "LI-RADS applies only to adults at high risk for HCC (cirrhosis, chronic hepatitis B, current or prior HCC)"
)


def lirads(
    size_mm: float | None,
    aphe: Aphe | str | None,
    washout: bool = False,
    capsule: bool = False,
    threshold_growth: bool = False,
    *,
    long_axis_mm: float | None = None,
    short_axis_mm: float | None = None,
    population: Population | str | None = None,
    age: int | None = None,
    tumor_in_vein: bool = False,
    benign_category: BenignCategory | str | None = None,
    lr_m_features: Iterable[TargetoidFeature | str] | TargetoidFeature | str = (),
    ancillary_malignancy: bool | Iterable[AncillaryMalignancy | str] = False,
    ancillary_benignity: bool | Iterable[AncillaryBenignity | str] = False,
) -> GuidelineResult:
    """LI-RADS v2018 CT/MRI category of one untreated observation in a patient at high risk for HCC.

    ``size_mm`` is the largest outer-edge-to-outer-edge dimension; ``long_axis_mm``/``short_axis_mm`` may be
    given instead (the larger is used). ``benign_category`` is the radiologist's explicit LR-1/LR-2 call,
    ``lr_m_features`` the targetoid features, ``ancillary_*`` the optional ancillary features (True, or the
    named features).
    """
    inputs: dict[str, object] = {}
    notes: list[str] = []

    # --- validate every input before any branch is taken
    for name, value in (
        ("washout", washout),
        ("capsule", capsule),
        ("threshold_growth", threshold_growth),
        ("tumor_in_vein", tumor_in_vein),
    ):
        if not isinstance(value, bool):
            raise CalculatorInputError(f"{name}={value!r} must be true or false")
    kind = coerce_enum(Aphe, aphe, "aphe") if aphe is not None else None
    size = _size(size_mm, long_axis_mm, short_axis_mm, inputs, notes)
    pop = coerce_enum(Population, population, "population") if population is not None else None
    if age is not None:
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age <= MAX_AGE_YEARS:
            raise CalculatorInputError(f"age={age!r} must be an age in years (0-{MAX_AGE_YEARS})")
        inputs["age"] = age
    benign = coerce_enum(BenignCategory, benign_category, "benign_category") if benign_category else None
    targetoid = _enum_list(TargetoidFeature, lr_m_features, "lr_m_features")
    if kind is Aphe.RIM and TargetoidFeature.RIM_APHE not in targetoid:
        # Rim APHE is a targetoid LR-M feature, never a diagnostic-table feature (v2018; Fowler 2020).
        targetoid = (TargetoidFeature.RIM_APHE, *targetoid)
    afs_malignant = _ancillary(AncillaryMalignancy, ancillary_malignancy, "ancillary_malignancy")
    afs_benign = _ancillary(AncillaryBenignity, ancillary_benignity, "ancillary_benignity")
    if kind is not None:
        inputs["aphe"] = kind
    inputs.update(washout=washout, capsule=capsule, threshold_growth=threshold_growth)
    if pop is not None:
        inputs["population"] = pop
    if tumor_in_vein:
        inputs["tumor_in_vein"] = True
    if benign is not None:
        inputs["benign_category"] = benign
    if targetoid:
        inputs["lr_m_features"] = targetoid
    if afs_malignant:
        inputs["ancillary_malignancy"] = afs_malignant
    if afs_benign:
        inputs["ancillary_benignity"] = afs_benign

    # --- population (guideline_facts.md section 9; Radiology Assistant LI-RADS, 2020)
    if age is not None and age < 18:
        raise NotApplicableError(GUIDELINE, f"age {age:g} is under 18 years", _POPULATION_TEXT)
    if pop is Population.NOT_AT_RISK:
        raise NotApplicableError(GUIDELINE, "the patient is not at high risk for HCC", _POPULATION_TEXT)
    if pop is Population.CONGENITAL_HEPATIC_FIBROSIS:
        raise NotApplicableError(GUIDELINE, "cirrhosis from congenital hepatic fibrosis is excluded", _POPULATION_TEXT)
    if pop is Population.VASCULAR_CIRRHOSIS:
        raise NotApplicableError(GUIDELINE, "cirrhosis from a vascular disorder is excluded", _POPULATION_TEXT)
    if pop is None:
        notes.append(f"Population not stated: {_POPULATION_TEXT}; confirm before using this category.")

    # --- contradictory combinations are refused, not resolved by guessing
    major_hcc = [
        n for n, v in (("washout", washout), ("capsule", capsule), ("threshold_growth", threshold_growth)) if v
    ]
    if benign is not None:
        if tumor_in_vein or targetoid:
            raise CalculatorInputError(
                f"benign_category={benign.value!r} contradicts "
                + ("tumor_in_vein=True" if tumor_in_vein else f"lr_m_features={[t.value for t in targetoid]!r}")
            )
        if major_hcc:
            # ACR: an observation with features suggestive of HCC should not be categorized LR-1 or LR-2.
            raise CalculatorInputError(
                f"benign_category={benign.value!r} with {', '.join(major_hcc)}: an observation with major features "
                "of HCC is not categorized LR-1 or LR-2"
            )
        if benign is BenignCategory.DEFINITELY_BENIGN and afs_malignant:
            raise CalculatorInputError(
                "benign_category='definitely_benign' with ancillary_malignancy: a definitely benign observation "
                "has no features favouring malignancy"
            )

    # --- 1. tumour in vein comes first in the v2018 algorithm
    if tumor_in_vein:
        _no_ancillary(afs_malignant, afs_benign, "LR-TIV", notes)
        return _result("LR-TIV", "enhancing soft tissue in a vein (tumour in vein).", inputs, notes)
    # --- 2. LR-1 / LR-2: the radiologist's explicit call (ACR LI-RADS category descriptions)
    if benign is BenignCategory.DEFINITELY_BENIGN:
        if afs_benign:
            notes.append("Ancillary features favouring benignity cannot lower LR-1 further.")
        return _result("LR-1", "observation called definitely benign.", inputs, notes)
    if benign is BenignCategory.PROBABLY_BENIGN:
        category, why = "LR-2", "observation called probably benign."
        if afs_malignant and afs_benign:
            notes.append("Ancillary features favour both malignancy and benignity: category not adjusted.")
        elif afs_malignant:
            # ACR FAQ: a distinctive nodule without major features is LR-2, or LR-3 with ancillary features
            # favouring malignancy.
            category, why = "LR-3", "probably benign observation upgraded one category by ancillary features."
        elif afs_benign:
            notes.append("Ancillary features favouring benignity are not used to move LR-2 to LR-1.")
        return _result(category, why, inputs, notes)
    # --- 3. LR-M: any targetoid feature is sufficient, even with features of HCC (Fowler 2020)
    if targetoid:
        _no_ancillary(afs_malignant, afs_benign, "LR-M", notes)
        names = ", ".join(_TARGETOID_TEXT[t] for t in targetoid)
        return _result("LR-M", f"targetoid feature(s): {names}.", inputs, notes)

    # --- 4. diagnostic table (major features)
    if kind is None:
        raise MissingParameterError("aphe", "Is there nonrim arterial phase hyperenhancement (APHE)?")
    if size is None:
        raise MissingParameterError("size_mm", "What is the observation size (largest dimension, mm)?")
    category, band, verified = _table(size, kind, washout, capsule, threshold_growth)
    features = [
        n
        for n, v in (
            ("nonperipheral washout", washout),
            ("enhancing capsule", capsule),
            ("threshold growth", threshold_growth),
        )
        if v
    ]
    feature_text = ", ".join(features) if features else "no additional major features"
    aphe_text = "nonrim APHE" if kind is Aphe.NONRIM else "no APHE"
    why = f"{fmt_mm(size)} observation ({band}), {aphe_text}, {feature_text}."
    table_category = category
    category, af_text = _apply_ancillary(category, afs_malignant, afs_benign)
    if af_text:
        why += f" {af_text}"
    if table_category == "LR-4" and category == "LR-4":
        why += " Ancillary features cannot upgrade LR-4 to LR-5."
    inputs["table_category"] = table_category
    return _result(category, why, inputs, notes, unverified=not verified)


def _size(
    size_mm: float | None,
    long_axis_mm: float | None,
    short_axis_mm: float | None,
    inputs: dict[str, object],
    notes: list[str],
) -> float | None:
    """The observation size: the largest dimension (never a mean of axes)."""
    if long_axis_mm is None and short_axis_mm is None:
        if size_mm is None:
            return None
        size = check_positive(size_mm, "size_mm")
        inputs["size_mm"] = size
        return size
    if size_mm is not None:
        raise CalculatorInputError(f"size_mm={size_mm!r} and long_axis_mm/short_axis_mm were both given; give one")
    if long_axis_mm is None:
        raise CalculatorInputError(
            "short_axis_mm was given without long_axis_mm: LI-RADS needs the largest dimension (long_axis_mm)"
        )
    long_axis = check_positive(long_axis_mm, "long_axis_mm")
    inputs["long_axis_mm"] = long_axis
    size = long_axis
    if short_axis_mm is not None:
        short_axis = check_positive(short_axis_mm, "short_axis_mm")
        inputs["short_axis_mm"] = short_axis
        if short_axis > long_axis:
            notes.append(f"short_axis_mm={short_axis:g} exceeds long_axis_mm={long_axis:g}; the larger is used.")
        size = max(long_axis, short_axis)
    # LI-RADS v2018 size: largest outer-edge-to-outer-edge dimension (guideline_facts.md section 9).
    notes.append(f"Size {size:g} mm is the largest dimension given (LI-RADS does not average axes).")
    inputs["size_mm"] = size
    return size


def _table(size: float, kind: Aphe, washout: bool, capsule: bool, growth: bool) -> tuple[str, str, bool]:
    """Diagnostic table cell: (category, size band, confirmed).

    LR-5 cells are confirmed (guideline_facts.md section 6 [C]); the LR-3/LR-4 cells are confirmed only by a
    third-party restatement of the table, so they are returned as unverified.
    """
    extra = int(washout) + int(capsule) + int(growth)
    if kind is Aphe.NONE:
        if size < 20:
            return ("LR-4" if extra >= 2 else "LR-3"), "<20 mm", False
        return ("LR-4" if extra >= 1 else "LR-3"), ">=20 mm", False
    if size < 10:
        # Nonrim APHE <10 mm is never LR-5 (LR-5 needs >=10 mm).
        return ("LR-4" if extra >= 1 else "LR-3"), "<10 mm", False
    if size < 20:
        # 10-19 mm: LR-5 with >=2 additional features, or with washout or threshold growth alone [C].
        if extra >= 2 or washout or growth:
            return "LR-5", "10-19 mm", True
        return ("LR-4" if capsule else "LR-3"), "10-19 mm", False
    # >=20 mm: LR-5 with >=1 additional feature [C]; none: LR-4.
    if extra >= 1:
        return "LR-5", ">=20 mm", True
    return "LR-4", ">=20 mm", False


def _apply_ancillary(category: str, malignant: tuple[StrEnum, ...], benign: tuple[StrEnum, ...]) -> tuple[str, str]:
    """v2018 tie-break rules for ancillary features (ACR LI-RADS FAQ; guideline_facts.md section 6).

    Favouring malignancy: up one category, at most to LR-4 (never to LR-5). Favouring benignity: down one
    category. Both present: no change.
    """
    if not malignant and not benign:
        return category, ""
    if malignant and benign:
        return category, "Ancillary features favour both malignancy and benignity: category not adjusted."
    index = _ORDER.index(category)
    if malignant:
        upgraded = _ORDER[min(index + 1, _ORDER.index("LR-4"))] if category != "LR-5" else category
        if upgraded == category:
            return category, "Ancillary features favouring malignancy do not change this category."
        return upgraded, f"Upgraded from {category} by ancillary features favouring malignancy (one category)."
    downgraded = _ORDER[index - 1]
    return downgraded, f"Downgraded from {category} by ancillary features favouring benignity (one category)."


def _no_ancillary(malignant: tuple[StrEnum, ...], benign: tuple[StrEnum, ...], category: str, notes: list[str]) -> None:
    if malignant or benign:
        notes.append(f"Ancillary features do not adjust {category}.")


def _enum_list(enum_cls: type[_E], value: object, argument: str) -> tuple[_E, ...]:
    if value is None or value == ():
        return ()
    if isinstance(value, str | StrEnum):
        raw: list[object] = [value]
    elif isinstance(value, Iterable):
        raw = list(value)
    else:
        raise CalculatorInputError(f"{argument}={value!r} must be a list of feature names")
    found: list[_E] = []
    for item in raw:
        if not isinstance(item, str):
            raise CalculatorInputError(f"{argument}: {item!r} is not a feature name")
        member = coerce_enum(enum_cls, item, argument)
        if member not in found:
            found.append(member)
    return tuple(found)


class _Unnamed(StrEnum):
    """Ancillary features said to be present without naming them."""

    PRESENT = "present"


_UNNAMED = _Unnamed.PRESENT


def _ancillary(enum_cls: type[_E], value: object, argument: str) -> tuple[StrEnum, ...]:
    """True (unnamed features present), False/empty (none), or the named features."""
    if isinstance(value, bool):
        return (_UNNAMED,) if value else ()
    return _enum_list(enum_cls, value, argument)


def _result(
    category: str,
    why: str,
    inputs: dict[str, object],
    notes: list[str],
    *,
    unverified: bool = False,
) -> GuidelineResult:
    text = f"{category} ({_MEANING[category]}): {why}"
    return GuidelineResult(
        calculator="lirads",
        guideline=GUIDELINE,
        version=VERSION,
        category=category,
        recommendation=text,
        inputs=inputs,
        section_id=f"li-rads-2018/{category.lower()}",
        source=SOURCE,
        malignancy_risk=_RISK.get(category),
        unverified=unverified,
        notes=tuple(notes),
    )
