"""Calculator forms: one per guideline, built from the same parameter table as ``radassist calc``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from assistant import CALCULATOR_FORMS, CalculatorInputError, GuidelineResult, calculate, calculator_params


def calculator_names() -> list[str]:
    return list(CALCULATOR_FORMS)


def title(name: str) -> str:
    """The calculator's one-line description (as ``radassist calc NAME --help`` shows it)."""
    return str(CALCULATOR_FORMS[name][0])


def fields(name: str) -> list[Any]:
    """The calculator's parameters (name, help, type, choices, required), in CLI order."""
    return list(CALCULATOR_FORMS[name][1])


def _value(param: Any, raw: Any) -> Any:
    """A form value → what argparse would have produced for the flag (None/False when not given)."""
    if param.type is bool:
        return bool(raw)
    if raw is None or raw == "" or raw == []:
        return None
    if param.type is list:
        return list(raw)
    if isinstance(raw, str):
        raw = raw.strip()
        if not raw:
            return None
    if param.type in (int, float):
        try:
            number = float(str(raw).replace(",", "."))
        except ValueError:
            raise CalculatorInputError(f"{param.name} must be a number, got {raw!r}") from None
        if param.type is float:
            return number
        if not number.is_integer():
            raise CalculatorInputError(f"{param.name} must be a whole number, got {raw}")
        return int(number)
    return str(raw)


def run(name: str, values: Sequence[Any]) -> GuidelineResult:
    """Run calculator ``name`` on the form's values (in ``fields`` order): the CLI's mapping, then ``calculate``."""
    params = fields(name)
    if len(values) != len(params):
        raise CalculatorInputError(f"{name}: expected {len(params)} form values, got {len(values)}")
    namespace = argparse.Namespace()
    for param, raw in zip(params, values, strict=True):
        value = _value(param, raw)
        if param.required and value is None:
            raise CalculatorInputError(f"{param.name.replace('-', ' ')} is required")
        setattr(namespace, param.name.replace("-", "_"), value)
    return calculate(name, **calculator_params(name, vars(namespace)))


def result_markdown(result: GuidelineResult) -> str:
    """The result as the CLI prints it, in Markdown."""
    lines = [f"### {result.guideline} {result.version}: **{result.category}**", "", result.recommendation]
    if result.malignancy_risk:
        lines += ["", f"Malignancy risk: {result.malignancy_risk}"]
    for note in result.notes:
        lines += ["", f"*Note:* {note}"]
    lines += ["", f"Section: `{result.section_id}` — {result.source}"]
    return "\n".join(lines)
