"""LI-RADS v2018 CT/MRI diagnostic table: major features -> LR-3, LR-4 or LR-5.

Table as restated in ../shared/reference/guideline_facts.md section 6 (ACR LI-RADS v2018; Hepatoma Research
2020;6:51). The LR-5 cells are confirmed; the LR-3/LR-4 cells outside the LR-5 rules come from recall and
are returned with ``unverified=True``. Ancillary features, LR-1/2, LR-M and LR-TIV are not computed.
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
    fmt_mm,
)

GUIDELINE = "LI-RADS CT/MRI"
VERSION = "v2018"
SOURCE = "ACR LI-RADS v2018 CT/MRI diagnostic table (Chernyak et al., Radiology 2018;289:816-830)"


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
        }
        return aliases.get(str(value).lower())


_MEANING = {"LR-3": "intermediate probability of HCC", "LR-4": "probably HCC", "LR-5": "definitely HCC"}
_RISK = {"LR-3": None, "LR-4": None, "LR-5": "94% HCC, 97% malignant (Hepatoma Research 2020 review)"}


def lirads(
    size_mm: float | None,
    aphe: Aphe | str | None,
    washout: bool = False,
    capsule: bool = False,
    threshold_growth: bool = False,
) -> GuidelineResult:
    """LI-RADS v2018 CT/MRI category from the major features (diagnostic table)."""
    if aphe is None:
        raise MissingParameterError("aphe", "Is there nonrim arterial phase hyperenhancement (APHE)?")
    kind = coerce_enum(Aphe, aphe, "aphe")
    if kind is Aphe.RIM:
        raise NotApplicableError(
            GUIDELINE,
            "rim APHE is a targetoid (LR-M) feature, not part of the diagnostic table",
            "assess for LR-M",
        )
    if size_mm is None:
        raise MissingParameterError("size_mm", "What is the observation size (mm)?")
    size = check_positive(size_mm, "size_mm")
    for name, value in (("washout", washout), ("capsule", capsule), ("threshold_growth", threshold_growth)):
        if not isinstance(value, bool):
            raise CalculatorInputError(f"{name}={value!r} must be true or false")
    extra = int(washout) + int(capsule) + int(threshold_growth)
    inputs: dict[str, object] = {
        "size_mm": size,
        "aphe": kind,
        "washout": washout,
        "capsule": capsule,
        "threshold_growth": threshold_growth,
    }

    verified = False
    if kind is Aphe.NONE:
        band = "<20 mm" if size < 20 else ">=20 mm"
        if size < 20:
            category = "LR-4" if extra >= 2 else "LR-3"
        else:
            category = "LR-4" if extra >= 1 else "LR-3"
    elif size < 10:
        band = "<10 mm"
        category = "LR-4" if extra >= 1 else "LR-3"
    elif size < 20:
        band = "10-19 mm"
        if extra >= 2 or (extra == 1 and (washout or threshold_growth)):
            category, verified = "LR-5", True
        else:
            category = "LR-4" if extra == 1 else "LR-3"
    else:
        band = ">=20 mm"
        if extra >= 1:
            category, verified = "LR-5", True
        else:
            category = "LR-4"
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
    return GuidelineResult(
        calculator="lirads",
        guideline=GUIDELINE,
        version=VERSION,
        category=category,
        recommendation=(
            f"{category} ({_MEANING[category]}): {fmt_mm(size)} observation ({band}), {aphe_text}, "
            f"{feature_text}." + (" Ancillary features cannot upgrade LR-4 to LR-5." if category == "LR-4" else "")
        ),
        inputs=inputs,
        section_id=f"li-rads-2018/{category.lower()}",
        source=SOURCE,
        malignancy_risk=_RISK[category],
        unverified=not verified,
    )
