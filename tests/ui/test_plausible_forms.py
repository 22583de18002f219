"""The calculator forms refuse numbers outside plausible ranges with the calculator's own message."""

from __future__ import annotations

from typing import Any

import pytest

from ui import calculators
from ui.workspace import Workspace


@pytest.mark.parametrize(
    ("name", "given", "refusal"),
    [
        ("fleischner", {"composition": "solid", "size-mm": 9000, "risk": "high"}, "not a plausible measurement"),
        ("fleischner", {"composition": "solid", "size-mm": 7, "risk": "high", "age": 250}, "must be an age in years"),
        ("bosniak", {"modality": "ct", "attenuation-hu": 50000}, "not a plausible CT number"),
        ("adrenal", {"size-cm": 2, "unenhanced-hu": 5, "age": -3}, "must be an age in years"),
    ],
)
def test_implausible_form_values_are_refused_with_a_clear_message(
    make_runtime: Any, name: str, given: dict[str, Any], refusal: str
) -> None:
    ws = Workspace(make_runtime([]))
    values = [given.get(f.name, False if f.type is bool else None) for f in calculators.fields(name)]
    shown = ws.calculate(name, *values)
    assert shown.startswith("⚠️") and refusal in shown, shown
