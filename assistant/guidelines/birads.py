"""ACR BI-RADS 5th edition (2013) assessment categories: likelihood of malignancy and management.

Table as restated in ../shared/reference/guideline_facts.md section 3 (ACR atlas values: 4C <95%, 5 >=95%).
"""

from __future__ import annotations

import re

from assistant.guidelines.common import CalculatorInputError, GuidelineResult, MissingParameterError

GUIDELINE = "ACR BI-RADS"
VERSION = "5th edition (2013)"
SOURCE = "ACR BI-RADS Atlas, 5th edition (2013), assessment categories"

# category -> (meaning, management, likelihood of malignancy)
_TABLE: dict[str, tuple[str, str, str | None]] = {
    "0": (
        "Incomplete: needs additional imaging and/or prior mammograms for comparison",
        "Recall for additional imaging and/or comparison with prior examinations.",
        None,
    ),
    "1": ("Negative", "Routine screening.", "essentially 0%"),
    "2": ("Benign", "Routine screening.", "essentially 0%"),
    "3": ("Probably benign", "Short-interval (6-month) follow-up or continued surveillance.", ">0% and <=2%"),
    "4": ("Suspicious", "Tissue diagnosis.", ">2% and <95%"),
    "4A": ("Low suspicion for malignancy", "Tissue diagnosis.", ">2% to <=10%"),
    "4B": ("Moderate suspicion for malignancy", "Tissue diagnosis.", ">10% to <=50%"),
    "4C": ("High suspicion for malignancy", "Tissue diagnosis.", ">50% to <95%"),
    "5": ("Highly suggestive of malignancy", "Tissue diagnosis.", ">=95%"),
    "6": ("Known biopsy-proven malignancy", "Surgical excision when clinically appropriate.", None),
}


def parse_birads_category(category: str | int) -> str:
    """Normalise '4a', 'BI-RADS 4A', 'birads 3', 5 -> '4A', '3', '5'."""
    if isinstance(category, bool):
        raise CalculatorInputError(f"category={category!r} is not a BI-RADS category (0-6, 4A-4C)")
    text = str(category).strip().upper()
    text = re.sub(r"^(BI-?RADS|BIRADS)[\s:-]*", "", text).replace(" ", "")
    if text not in _TABLE:
        raise CalculatorInputError(f"category={category!r} is not a BI-RADS category (0-6, 4A-4C)")
    return text


def birads(category: str | int | None = None) -> GuidelineResult:
    """BI-RADS assessment category -> meaning, likelihood of malignancy and management (ACR atlas 2013)."""
    if category is None:
        raise MissingParameterError("category", "Which BI-RADS assessment category (0-6, 4A, 4B, 4C)?")
    key = parse_birads_category(category)
    meaning, management, risk = _TABLE[key]
    risk_text = f" Likelihood of malignancy: {risk}." if risk else ""
    return GuidelineResult(
        calculator="birads",
        guideline=GUIDELINE,
        version=VERSION,
        category=key,
        recommendation=f"BI-RADS {key}: {meaning}.{risk_text} Management: {management}",
        inputs={"category": key},
        section_id=f"bi-rads-5/category-{key.lower()}",
        source=SOURCE,
        malignancy_risk=risk,
    )
