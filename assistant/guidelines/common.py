"""Shared pieces of the guideline calculators: the result type, errors, input coercion and rounding.

Section ids name a knowledge-base section as ``<guideline-slug>/<section>``; every id a calculator can
return is listed in :data:`SECTION_IDS` (and in docs/guidelines-verification.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from assistant.errors import RadassistError

E = TypeVar("E", bound=Enum)


class CalculatorInputError(RadassistError):
    """A calculator input is missing, malformed, out of range or contradictory; the message names it."""


class MissingParameterError(CalculatorInputError):
    """A required input was not given; ``question`` is what to ask the user."""

    def __init__(self, parameter: str, question: str) -> None:
        super().__init__(f"{parameter} is required: {question}")
        self.parameter = parameter
        self.question = question


class NotApplicableError(CalculatorInputError):
    """The guideline does not apply to this patient or finding; ``reason`` says why."""

    def __init__(self, guideline: str, reason: str, suggestion: str = "") -> None:
        message = f"{guideline} does not apply: {reason}"
        if suggestion:
            message += f" ({suggestion})"
        super().__init__(message)
        self.reason = reason
        self.suggestion = suggestion


@dataclass(frozen=True)
class GuidelineResult:
    """What a calculator computed: category, recommendation and where it comes from."""

    calculator: str
    guideline: str
    version: str
    category: str
    recommendation: str
    inputs: Mapping[str, Any]
    section_id: str
    source: str
    malignancy_risk: str | None = None
    unverified: bool = False
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Frozen in spirit too: the mapping handed in is copied and wrapped read-only.
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        if self.unverified and "UNVERIFIED" not in self.recommendation:
            object.__setattr__(self, "recommendation", f"{self.recommendation} [{UNVERIFIED_NOTE}]")
        if self.section_id not in SECTION_IDS:
            raise ValueError(f"unknown section_id {self.section_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (enums as their values)."""
        return {
            "calculator": self.calculator,
            "guideline": self.guideline,
            "version": self.version,
            "category": self.category,
            "recommendation": self.recommendation,
            "malignancy_risk": self.malignancy_risk,
            "inputs": {k: _plain(v) for k, v in self.inputs.items()},
            "section_id": self.section_id,
            "source": self.source,
            "unverified": self.unverified,
            "notes": list(self.notes),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


UNVERIFIED_NOTE = (
    "UNVERIFIED: this rule comes from recall of the guideline and was not confirmed in a retrieved source; "
    "check the original publication before relying on it."
)

SECTION_IDS: frozenset[str] = frozenset(
    {
        "fleischner-2017/scope",
        "fleischner-2017/solid-single",
        "fleischner-2017/solid-multiple",
        "fleischner-2017/subsolid-single-ground-glass",
        "fleischner-2017/subsolid-single-part-solid",
        "fleischner-2017/subsolid-multiple",
        "lung-rads-2022/category-0",
        "lung-rads-2022/category-1",
        "lung-rads-2022/category-2",
        "lung-rads-2022/category-3",
        "lung-rads-2022/category-4a",
        "lung-rads-2022/category-4b",
        "lung-rads-2022/category-4x",
        "ti-rads-2017/tr1",
        "ti-rads-2017/tr2",
        "ti-rads-2017/tr3",
        "ti-rads-2017/tr4",
        "ti-rads-2017/tr5",
        "bosniak-2019/class-i",
        "bosniak-2019/class-ii",
        "bosniak-2019/class-iif",
        "bosniak-2019/class-iii",
        "bosniak-2019/class-iv",
        "bi-rads-5/category-0",
        "bi-rads-5/category-1",
        "bi-rads-5/category-2",
        "bi-rads-5/category-3",
        "bi-rads-5/category-4",
        "bi-rads-5/category-4a",
        "bi-rads-5/category-4b",
        "bi-rads-5/category-4c",
        "bi-rads-5/category-5",
        "bi-rads-5/category-6",
        "li-rads-2018/population",
        "li-rads-2018/lr-1",
        "li-rads-2018/lr-2",
        "li-rads-2018/lr-3",
        "li-rads-2018/lr-4",
        "li-rads-2018/lr-5",
        "li-rads-2018/lr-m",
        "li-rads-2018/lr-tiv",
        "acr-adrenal-2017/small-mass",
        "acr-adrenal-2017/benign-features",
        "acr-adrenal-2017/indeterminate-prior-imaging",
        "acr-adrenal-2017/indeterminate-no-prior-imaging",
        "acr-adrenal-2017/large-mass",
        "acr-renal-2018/enhancement",
    }
)


class Composition(StrEnum):
    """Lung nodule attenuation; Lung-RADS calls ground-glass 'non-solid'."""

    SOLID = "solid"
    GROUND_GLASS = "ground_glass"
    PART_SOLID = "part_solid"

    @classmethod
    def _missing_(cls, value: object) -> Composition | None:
        aliases = {
            "ggn": cls.GROUND_GLASS,
            "ggo": cls.GROUND_GLASS,
            "non_solid": cls.GROUND_GLASS,
            "nonsolid": cls.GROUND_GLASS,
            "pure_ground_glass": cls.GROUND_GLASS,
            "groundglass": cls.GROUND_GLASS,
            "partsolid": cls.PART_SOLID,
            "part_solid_nodule": cls.PART_SOLID,
            "semi_solid": cls.PART_SOLID,
            "mixed": cls.PART_SOLID,
        }
        return aliases.get(str(value).lower())


def coerce_enum(enum_cls: type[E], value: E | str, argument: str) -> E:
    """Accept the Enum member or its value/name (case, spaces and dashes ignored)."""
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        for member in enum_cls:
            if key in (str(member.value).lower(), member.name.lower()):
                return member
        try:  # enums may accept aliases through ``_missing_``
            return enum_cls(key)
        except ValueError:
            pass
    allowed = ", ".join(str(m.value) for m in enum_cls)
    raise CalculatorInputError(f"{argument}={value!r} is not one of: {allowed}")


# Input-validation bounds, not guideline facts: a measurement beyond these is a typo or a unit mix-up
# (cm typed as mm, a pasted accession number), so the calculators refuse it instead of computing a category.
MAX_SIZE_MM = 500.0  # larger than any lesion a guideline calculator here is meant for (half a metre)
MAX_VOLUME_MM3 = 65_500_000.0  # the volume of a 500 mm sphere
MAX_ABS_HU = 4000.0  # CT numbers of tissue, fluid, calcium and contrast lie well inside +-4000 HU


def _number(value: object, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorInputError(f"{argument}={value!r} must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise CalculatorInputError(f"{argument}={value!r} must be a finite number")
    return number


def _check_bound(number: float, value: object, argument: str) -> None:
    # The unit is read off the argument's name (size_mm, prior_dimensions_mm[0], size_cm, volume_mm3).
    if "_mm3" in argument:
        limit, unit = MAX_VOLUME_MM3, "mm^3"
    elif "_mm" in argument:
        limit, unit = MAX_SIZE_MM, "mm"
    elif "_cm" in argument:
        limit, unit = MAX_SIZE_MM / 10, "cm"
    else:
        return
    if number > limit:
        raise CalculatorInputError(
            f"{argument}={value!r} is not a plausible measurement (over {limit:g} {unit}); check the units"
        )


def check_positive(value: float | int | None, argument: str) -> float:
    """A finite size > 0 (and, for sizes and volumes, a plausible one), as float; else a CalculatorInputError."""
    if value is None:
        raise CalculatorInputError(f"{argument} is required")
    number = _number(value, argument)
    if number <= 0:
        raise CalculatorInputError(f"{argument}={value!r} must be a positive number")
    _check_bound(number, value, argument)
    return number


def check_non_negative(value: float | int, argument: str) -> float:
    """A finite number >= 0 (plausible when it is a size), as float."""
    number = _number(value, argument)
    if number < 0:
        raise CalculatorInputError(f"{argument}={value!r} must not be negative")
    _check_bound(number, value, argument)
    return number


def check_hu(value: float | int, argument: str) -> float:
    """A finite CT number within +-MAX_ABS_HU, as float."""
    number = _number(value, argument)
    if abs(number) > MAX_ABS_HU:
        raise CalculatorInputError(f"{argument}={value!r} is not a plausible CT number (beyond +-{MAX_ABS_HU:g} HU)")
    return number


def round_half_up(value: float, digits: int = 0) -> float:
    """Round like a ruler (5.5 -> 6, 8.45 -> 8.5), not like Python's banker's rounding."""
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def mean_diameter(long_axis_mm: float, short_axis_mm: float) -> float:
    """Mean of the long and short axes (unrounded); the short axis may not exceed the long one."""
    long_axis = check_positive(long_axis_mm, "long_axis_mm")
    short_axis = check_positive(short_axis_mm, "short_axis_mm")
    if short_axis > long_axis:
        raise CalculatorInputError(f"short_axis_mm={short_axis_mm!r} is larger than long_axis_mm={long_axis_mm!r}")
    return (long_axis + short_axis) / 2


def resolve_size(
    size_mm: float | None, long_axis_mm: float | None, short_axis_mm: float | None, argument: str = "size_mm"
) -> float | None:
    """One size from either a mean diameter or a long/short axis pair; both at once is contradictory."""
    if long_axis_mm is not None or short_axis_mm is not None:
        if long_axis_mm is None or short_axis_mm is None:
            raise CalculatorInputError("give both long_axis_mm and short_axis_mm, or neither")
        if size_mm is not None:
            raise CalculatorInputError(f"{argument}={size_mm!r} and long/short axes were both given; give one of them")
        return mean_diameter(long_axis_mm, short_axis_mm)
    if size_mm is None:
        return None
    return check_positive(size_mm, argument)


def fmt_mm(value: float) -> str:
    """'6 mm' or '6.5 mm' (no trailing .0)."""
    return f"{value:g} mm"
