"""Guideline calculators: exact categories computed by code, never by the language model.

Each calculator is a pure function returning a frozen :class:`GuidelineResult`; :data:`CALCULATORS` maps
the public names (used by the CLI and the parameter extractor) to them. Importing does no work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from assistant.guidelines.birads import birads
from assistant.guidelines.bosniak import bosniak
from assistant.guidelines.common import (
    SECTION_IDS,
    CalculatorInputError,
    Composition,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
)
from assistant.guidelines.extract import Extraction, extract_parameters
from assistant.guidelines.fleischner import fleischner
from assistant.guidelines.incidental import adrenal, renal_enhancement
from assistant.guidelines.lirads import lirads
from assistant.guidelines.lungrads import lungrads
from assistant.guidelines.tirads import tirads

CALCULATORS: dict[str, Callable[..., GuidelineResult]] = {
    "fleischner": fleischner,
    "lungrads": lungrads,
    "tirads": tirads,
    "bosniak": bosniak,
    "birads": birads,
    "lirads": lirads,
    "adrenal": adrenal,
    "renal": renal_enhancement,
}


def calculate(name: str, **params: Any) -> GuidelineResult:
    """Run the calculator called ``name`` with keyword parameters."""
    try:
        calculator = CALCULATORS[name]
    except KeyError:
        raise CalculatorInputError(f"name={name!r} is not a calculator ({', '.join(CALCULATORS)})") from None
    try:
        result = calculator(**params)
    except TypeError as exc:  # an unknown or missing keyword: say which, in the user's terms
        raise CalculatorInputError(f"{name}: {exc}") from exc
    if result.unverified:
        # What no retrieved source confirms is refused, not guessed (docs/guidelines-verification.md lists these).
        raise UnverifiedRuleError(
            f"{result.guideline} {result.version}: the rule for these inputs is not confirmed by a source we could "
            f"retrieve, so no category is given; see the original publication ({result.source})"
        )
    return result


class UnverifiedRuleError(CalculatorInputError):
    """The calculator's rule for these inputs comes from recall, not from a confirmed source: refused."""


__all__ = [
    "CALCULATORS",
    "SECTION_IDS",
    "CalculatorInputError",
    "Composition",
    "Extraction",
    "GuidelineResult",
    "MissingParameterError",
    "NotApplicableError",
    "UnverifiedRuleError",
    "adrenal",
    "birads",
    "bosniak",
    "calculate",
    "extract_parameters",
    "fleischner",
    "lirads",
    "lungrads",
    "renal_enhancement",
    "tirads",
]
