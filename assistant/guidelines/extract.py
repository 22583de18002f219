"""Deterministic parameter extraction from a free-text guideline question (no language model).

``extract_parameters("single solid 7 mm nodule, 30 pack-years - follow-up?")`` names the calculator, the
keyword parameters it found, and what is still missing together with the question to ask back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from assistant.guidelines.common import CalculatorInputError, MissingParameterError, round_half_up

_NUM = r"(\d+(?:\.\d+)?)"
_UNIT = r"(mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)\b"
_DIMS = re.compile(
    rf"{_NUM}\s*(?:mm|cm)?\s*(?:x|×|\*|by)\s*{_NUM}\s*(?:mm|cm)?(?:\s*(?:x|×|\*|by)\s*{_NUM})?\s*{_UNIT}"
)
_SINGLE = re.compile(rf"{_NUM}\s*-?\s*{_UNIT}")
_NEGATION = re.compile(r"\b(no|without|absent|not|negative for|lacks?|lacking)\b")


@dataclass(frozen=True)
class Size:
    """One size mention, in millimetres, with where it was found and any comparator written before it.

    ``bound`` is ``"lt"`` ("under 6 mm", "< 6 mm", "sub-centimetre"), ``"le"`` ("up to 4 mm"), ``"ge"``
    ("at least 8 mm") or ``"gt"`` ("over 8 mm"); None for a plain measurement.
    """

    mm: float
    dims_mm: tuple[float, ...]
    start: int
    end: int
    bound: str | None = None

    def value(self, step_mm: float) -> float:
        """The size to classify: a strict bound moves one measuring step past the number written.

        "Under 6 mm" is not 6 mm: with whole-millimetre rounding (Fleischner) it is at most 5 mm, with
        tenths (Lung-RADS) at most 5.9 mm. "Up to"/"at least" include the number itself.
        """
        if self.bound == "lt":
            return round(self.mm - step_mm, 3)
        if self.bound == "gt":
            return round(self.mm + step_mm, 3)
        return self.mm

    def largest(self, step_mm: float) -> float:
        """The largest single dimension (LI-RADS, TI-RADS), with the comparator applied like :meth:`value`."""
        top = max(self.dims_mm) if self.dims_mm else self.mm
        shift = {"lt": -step_mm, "gt": step_mm}.get(self.bound or "", 0.0)
        return round(top + shift, 3)


@dataclass(frozen=True)
class Extraction:
    """What the parser found: calculator name, keyword parameters, and what is missing (with questions)."""

    calculator: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def complete(self) -> bool:
        """True when a calculator was chosen and nothing required is missing."""
        return self.calculator is not None and not self.missing


_GUIDELINE_NAMES: tuple[tuple[str, str], ...] = (
    (
        "lungrads",
        r"lung[\s-]?rads|lungrads|\bldct\b|low[\s-]dose (?:ct|screening)|screening (?:ct|ldct|scan)"
        r"|lung (?:cancer )?screening",
    ),
    ("fleischner", r"fleischner|fleishner"),
    ("tirads", r"ti[\s-]?rads|tirads|thyroid"),
    ("bosniak", r"bosniak|renal cyst|cystic renal|kidney cyst|cystic kidney|renal cystic"),
    ("birads", r"bi[\s-]?rads|birads|mammo|breast(?! cancer)"),
    (
        "lirads",
        r"li[\s-]?rads|lirads|\blr-?[345]\b|\bhcc\b|cirrho|\baphe\b|arterial[\s-]phase hyperenhanc"
        r"|liver observation",
    ),
    ("adrenal", r"adrenal"),
    ("renal", r"renal mass|kidney mass|renal lesion|kidney lesion|solid renal"),
)
_LUNG = (
    r"nodule|\bnods?\b|\bggns?\b|\bggos?\b|\bpggns?\b|ground[\s-]glass|part[\s-]solid|subsolid|sub-solid|\brul\b|\brml\b|\brll\b|\blul\b"
    r"|\blll\b|lingula|lung|pulmonary"
)


# The vocabulary of each guideline: organ and descriptor words that only that guideline uses. A question
# is routed by an explicit guideline name first, then by which vocabulary it uses most, so "isoechoic,
# wider-than-tall solid nodule, 1.7 cm" goes to TI-RADS although "solid nodule" is lung vocabulary too.
_VOCABULARY: tuple[tuple[str, str], ...] = (
    (
        "lungrads",
        r"endobronchial|endotracheal|airway nodule|\bbaseline\b|annual (?:screen|ldct|ct)|multilocul\w*"
        r"|thick[\s-]?walled|thin[\s-]?walled cyst|\b(?:category|cat) [0-4][abx]?\b|\b4x\b|\bs[\s-]modifier",
    ),
    (
        "tirads",
        r"\b\w*echoic\b|anechoic|taller[\s-]than[\s-]wide|wider[\s-]than[\s-]tall|spongiform|comet[\s-]tail"
        r"|punctate echogenic|echogenic foci|microcalcif|macrocalcif|extra[\s-]?thyroidal|thyroid|\bfna\b"
        r"|\btr\s?[1-5]\b|\blobe of the thyroid|isthmus",
    ),
    (
        "bosniak",
        r"\bsept(?:a|ae|um|ations?)\b|cystic renal|renal cyst|kidney cyst|\bcyst\b.*\b(?:kidney|renal)\b"
        r"|(?:kidney|renal)\b.*\bcyst|hyperdense cyst|protrusion|\bbosniak\b",
    ),
    ("adrenal", r"adrenal|washout|myelolipoma|adenoma|pheochromocytoma|phaeochromocytoma"),
    (
        "lirads",
        r"\baphe\b|arterial[\s-]phase|wash[\s-]?out|capsule|cirrho|hepatitis|\bhbv\b|\bhcc\b|liver"
        r"|hepatic|observation|threshold growth|tumou?r in vein|targetoid",
    ),
    (
        "birads",
        r"breast(?! cancer| carcinoma| ca\b)|mammo|\bbi[\s-]?rads\b|calcifications? (?:in|of) the breast|axilla"
        r"|retroareolar|o'?clock",
    ),
    ("renal", r"renal mass|kidney mass|renal lesion|enhanc\w* by|\bhu (?:increase|rise)|post[\s-]?contrast"),
)


def detect_calculator(text: str) -> str | None:
    """The calculator a question is about, from guideline names, then the guideline's own vocabulary."""
    low = _normalise(text)
    named = [name for name, pattern in _GUIDELINE_NAMES if re.search(pattern, low)]
    explicit = [n for n in named if re.search(_EXPLICIT[n], low)]
    if "fleischner" in explicit:
        return "fleischner"  # "does Fleischner apply to a screening CT?" is a Fleischner question
    if len(explicit) == 1:
        return explicit[0]
    if not explicit and re.search(_LUNG, low) and re.search(_SCREENING_CUES, low) and not re.search(_NOT_LUNG, low):
        # "baseline", "annual screen", "4A": words of lung cancer screening, which Fleischner excludes.
        return "lungrads"
    if (explicit == [] or explicit == ["bosniak"]) and re.search(r"renal|kidney", low) and _unenhanced_only(low):
        # "80 HU on non-contrast CT" is the mass's attenuation, not an enhancement: a Bosniak question
        # (homogeneous >= 70 HU unenhanced: class II), never the enhancement rule.
        return "bosniak"
    scores = {name: len(re.findall(pattern, low)) for name, pattern in _VOCABULARY}
    lung = len(re.findall(_LUNG, low))
    best = max(scores, key=lambda n: scores[n])
    if scores[best] >= lung and scores[best] > 0:
        if best == "renal" and re.search(r"\bcyst|septa|bosniak", low):
            return "bosniak"
        if best == "bosniak" and not re.search(r"cyst|sept|bosniak|protrusion", low):
            return "renal"
        return best
    for name in named:
        if name == "renal" and re.search(r"\bcyst|septa|bosniak", low):
            return "bosniak"
        return name
    if lung:
        return "lungrads" if re.search(r"\bscreen(?:ing|ed)?\b", low) else "fleischner"
    return None


_UNENHANCED = r"unenhanced|non[\s-]?contrast|noncontrast|without contrast|pre[\s-]?contrast|plain ct|native ct"
_ENHANCEMENT = (
    r"enhanc\w*\s+(?:by|of)\s+\d|\d+\s*hu\s+(?:increase|rise|of enhancement)|increas\w*\s+(?:by|of)\s+\d"
    r"|post[\s-]?contrast|nephrographic|from\s+-?\d+\s*(?:hu)?\s+to\s+-?\d+\s*hu|after contrast|\bdelta\b"
)


def _unenhanced_only(low: str) -> bool:
    """The question gives an attenuation on unenhanced CT and no enhancement measurement."""
    return (
        bool(re.search(_UNENHANCED, low))
        and re.search(r"-?\d+(?:\.\d+)?\s*hu\b", low) is not None
        and not (re.search(_ENHANCEMENT, low))
    )


_SCREENING_CUES = (
    r"\bbaseline\b|\bbl\b|initial screen|first screen|annual|screening|\bscreen\b|year-\d screen"
    r"|\b(?:cat(?:egory)?\.?\s*)?4[abx]\b|\bcat(?:egory)?\.?\s*[0-4]\b|\b3-month (?:ldct|ct|f/?u)"
)
_NOT_LUNG = r"breast|mammo|thyroid|liver|hepat|renal|kidney|adrenal|bi[\s-]?rads"
_EXPLICIT = {
    "lungrads": r"lung[\s-]?rads|lungrads|\bldct\b|lung (?:cancer )?screening|low[\s-]dose",
    "fleischner": r"fleischner|fleishner",
    "tirads": r"ti[\s-]?rads|tirads|thyroid",
    "bosniak": r"bosniak",
    "birads": r"bi[\s-]?rads|birads|mammo",
    "lirads": r"li[\s-]?rads|lirads|\blr-?(?:[1-5]|m|tiv)\b",
    "adrenal": r"adrenal",
    "renal": r"(?!x)x",  # never explicit: the renal-mass rule has no name users type
}


def extract_parameters(question: str) -> Extraction:
    """Find the calculator and its parameters in a radiologist's question; list what is missing."""
    text = _normalise(question)
    name = detect_calculator(text)
    if name is None:
        return Extraction(
            None,
            {},
            ("calculator",),
            ("Which guideline do you mean (e.g. Fleischner, Lung-RADS, TI-RADS, Bosniak, BI-RADS, LI-RADS)?",),
        )
    parser = _PARSERS[name]
    params, notes = parser(text)
    asks = params.pop(_ASK, [])
    bounded = params.pop(_BOUNDED, None)
    if bounded is not None and _range_is_ambiguous(name, params, *bounded[:2]):
        param, _, said = bounded
        del params[param]
        notes.append(f"'{said}' spans more than one category of this guideline: the size is needed")
    missing, questions = _missing(name, params)
    for parameter, question in asks:
        if parameter not in missing:
            missing, questions = (*missing, parameter), (*questions, question)
    return Extraction(name, params, missing, questions, tuple(notes))


def _range_is_ambiguous(name: str, params: dict[str, Any], param: str, far: float) -> bool:
    """True when the two ends of a comparator's range ("under 10 mm": ~10 and 1 mm) give different categories."""
    from assistant.guidelines import CALCULATORS  # late import: the registry imports this module

    outcomes = []
    for value in (params[param], far):
        trial = {**params, param: value}
        try:
            result = CALCULATORS[name](**trial)
            outcomes.append((result.category, result.section_id))
        except (CalculatorInputError, TypeError) as exc:
            outcomes.append((type(exc).__name__, getattr(exc, "parameter", "")))
    return outcomes[0] != outcomes[1]


def _missing(name: str, params: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from assistant.guidelines import CALCULATORS  # late import: the registry imports this module

    missing: list[str] = []
    questions: list[str] = []
    trial = dict(params)
    # Ask for everything missing, not only the first: retry with a placeholder until nothing else is missing.
    for _ in range(6):
        try:
            CALCULATORS[name](**trial)
        except MissingParameterError as exc:
            missing.append(exc.parameter)
            questions.append(exc.question)
            trial[exc.parameter] = _PLACEHOLDERS.get(exc.parameter, 1.0)
            continue
        except (CalculatorInputError, TypeError):
            pass  # not a missing value: the caller runs the calculator and reports the error itself
        break
    return tuple(missing), tuple(questions)


_PLACEHOLDERS: dict[str, Any] = {
    "risk": "low",
    "composition": "solid",
    "nodule_type": "solid",
    "status": "stable",
    "echogenicity": "isoechoic",
    "shape": "wider_than_tall",
    "margin": "smooth",
    "aphe": "none",
    "prior_imaging": "none",
    "cancer_history": False,
    "size_mm": 5.0,
    "mean_diameter_mm": 5.0,
    "solid_component_mm": 1.0,
    "max_diameter_cm": 1.0,
    "size_cm": 1.5,
}


def _normalise(text: str) -> str:
    low = text.lower()
    for src, dst in (
        ("–", "-"),
        ("—", "-"),
        ("’", "'"),
        ("≥", ">="),
        ("≤", "<="),
        ("×", "x"),
        ("³", "3"),
        ("\u00a0", " "),
    ):
        low = low.replace(src, dst)
    return low


def _to_mm(value: str, unit: str) -> float:
    number = float(value)
    return number * 10 if unit.startswith("c") else number


def find_sizes(text: str) -> list[Size]:
    """Every size mention in mm: '7 x 5 mm' gives the mean 6 mm; '0.7 cm' gives 7 mm; '7mm' gives 7 mm."""
    sizes: list[Size] = []
    taken: list[tuple[int, int]] = []
    for m in _DIMS.finditer(text):
        dims = tuple(_to_mm(v, m.group(4)) for v in m.groups()[:3] if v is not None)
        # Nodule size is the mean of the long and short axes (the two largest of up to three dimensions).
        two = sorted(dims, reverse=True)[:2]
        sizes.append(Size(round(sum(two) / 2, 3), dims, m.start(), m.end()))
        taken.append((m.start(), m.end()))
    for m in _SINGLE.finditer(text):
        if any(a <= m.start() < b for a, b in taken):
            continue
        if re.match(r"\s*(?:3|\^3|cubed)", text[m.end() :]):
            continue  # a volume such as '120 mm3'
        mm = round(_to_mm(m.group(1), m.group(2)), 3)
        if re.search(r"(?:^|[\s(:,])-\s?$", text[max(0, m.start() - 2) : m.start()]):
            mm = -mm  # "-4 mm": kept negative, so the calculator refuses it instead of reading 4 mm
        sizes.append(Size(mm, (mm,), m.start(), m.end()))
    for m in _SUBCENTIMETRE.finditer(text):
        if not any(a <= m.start() < b for a, b in taken):
            sizes.append(Size(10.0, (10.0,), m.start(), m.end(), "lt"))
    bounded = [_with_bound(text, size) for size in sizes]
    return sorted(bounded, key=lambda s: s.start)


# Comparators written before a size ("all under 6 mm", "< 6 mm", "up to 4 mm", "at least 8 mm").
_BOUNDS: tuple[tuple[str, str], ...] = (
    # "nodules up to 8 mm" is the radiology idiom for "the largest measures 8 mm": a size, not a range.
    ("max", r"up to|largest|maximum(?: of)?|max\.?"),
    (
        "le",
        r"<=|=<|at most|no (?:more|larger|bigger|greater) than|not (?:more|larger|bigger) than|not exceeding",
    ),
    ("ge", r">=|=>|at least|no (?:less|smaller) than|not (?:less|smaller) than|minimum(?: of)?|min\.?"),
    ("lt", r"<|under|below|less than|smaller than|beneath|sub-?"),
    ("gt", r">|over|above|more than|greater than|larger than|bigger than|exceeding"),
)
_SUBCENTIMETRE = re.compile(r"\bsub-?\s?centimet(?:er|re)\b|\b(?:less than|under|below|<)\s*(?:a|one) cm\b")


def _with_bound(text: str, size: Size) -> Size:
    if size.bound is not None:
        return size
    before = text[max(0, size.start - 24) : size.start]
    for bound, pattern in _BOUNDS:
        if re.search(rf"(?:^|[\s(,;:])(?:{pattern})\s*(?:about |approximately |approx\.? |~)?$", before):
            return Size(size.mm, size.dims_mm, size.start, size.end, bound)
    return size


def _has(text: str, pattern: str) -> bool:
    return re.search(pattern, text) is not None


_CLAUSE_BREAK = re.compile(r"[,;:]|\.\s|\bbut\b|\bwith\b|\bhowever\b")


def _affirmed(text: str, pattern: str) -> bool | None:
    """True if the term occurs un-negated in its clause, False if only negated, None if absent."""
    seen = False
    for m in re.finditer(pattern, text):
        seen = True
        breaks = [b.end() for b in _CLAUSE_BREAK.finditer(text, 0, m.start())]
        clause = text[breaks[-1] if breaks else 0 : m.start()]
        negated_after = re.match(r"\s*(?:is |are )?(?:absent|not seen|not present|negative)", text[m.end() :])
        if not _NEGATION.search(clause[-30:]) and not negated_after:
            return True
    return False if seen else None


def _all_affirmed(text: str, table: tuple[tuple[str, str], ...]) -> list[str]:
    """The values of ``table`` whose pattern occurs un-negated in ``text`` (in table order)."""
    return [value for value, pattern in table if _affirmed(text, pattern)]


def _age(text: str) -> int | None:
    m = re.search(
        r"\b(\d{1,3})\s*(?:-\s*)?(?:yo\b|y/o|y\.o\.|years?[\s-]old|year[\s-]old|yrs?[\s-]old|[mf]\b)", text
    ) or re.search(r"\bage[ds]?\s*(\d{1,3})\b", text)
    return int(m.group(1)) if m else None


def _component_or_prior(text: str, size: Size) -> str:
    """Classify a size mention: 'solid' component, 'prior' size, or the main 'size'."""
    after = text[size.end : size.end + 28]
    before = text[max(0, size.start - 30) : size.start]
    if (
        re.match(r"\s*(?:\w+\s)?(?:solid (?:component|part|portion|core))\b", after)
        and not re.match(r"\s*(?:part|sub|semi|non)", after)
        or re.search(r"solid (?:component|part|portion|core)\s*(?:of|measuring|=|:)?\s*$", before)
    ):
        return "solid"
    if re.search(
        r"\b(?:previously|prior|was|from|before|last year|earlier|compared (?:with|to))\s*(?:\w+\s)?$", before
    ):
        return "prior"
    if re.match(
        r"\s*(?:\w+\s+)?(?:last year|a year ago|previously|before|earlier|at baseline|on the prior|on the previous"
        r"|on the last|\d+ (?:months?|years?) ago)\b",
        after,
    ) and re.search(r"\bnow\b|currently|today|this (?:scan|ldct|ct|screen)|on the current", text[size.end :]):
        return "prior"
    return "size"


_OTHER_FINDING = re.compile(
    r"\s*(?:\w+\s+){0,2}?(?:aaa\b|aneurysm|aorta|aortic|lymph node|node\b|adenopathy|effusion|hernia|liver|kidney"
    r"|renal|adrenal|thyroid)"
)


def _split_sizes(text: str, *, lung: bool = False) -> tuple[list[Size], list[Size], list[Size]]:
    main: list[Size] = []
    solid: list[Size] = []
    prior: list[Size] = []
    chain = _growth_chain(text)
    for size in find_sizes(text):
        if lung and _OTHER_FINDING.match(text, size.end) and len(find_sizes(text)) > 1:
            continue  # "10 mm nodule, plus a 5.5 cm AAA": the aneurysm is not the nodule
        if chain and size.start in chain[1:-1]:
            continue  # the middle of "5.2 -> 5.9 -> 6.5 mm"
        if chain and size.start == chain[0] and len(chain) > 1:
            continue  # the first value of a chain: its previous-scan value is recorded below
        kind = _component_or_prior(text, size)
        (solid if kind == "solid" else prior if kind == "prior" else main).append(size)
    # "grew from 5 to 7 mm" / "6.5 -> 9.0 mm": the last value is current, the first is the prior.
    m = re.search(rf"from {_NUM}\s*(?:mm|cm)?\s*to {_NUM}\s*{_UNIT}", text)
    if m and not prior:
        prior.append(Size(_to_mm(m.group(1), m.group(3)), (), m.start(), m.start()))
    m = re.search(rf"\bwas {_NUM}\s*(?:mm|cm)?,?\s*(?:and )?(?:is )?now (?:measures )?{_NUM}\s*{_UNIT}", text)
    if m and not prior:
        prior.append(Size(_to_mm(m.group(1), m.group(3)), (), m.start(), m.start()))
    values = _chain_values(text)
    if len(values) >= 2 and not prior:
        # The previous scan is the prior of the growth definition (> 1.5 mm within 12 months).
        prior.append(Size(values[-2], (values[-2],), chain[-2], chain[-2]))
    return main, solid, prior


_ARROW_CHAIN = re.compile(rf"{_NUM}(?:\s*(?:mm|cm))?(?:\s*(?:->|→|=>)\s*{_NUM}(?:\s*(?:mm|cm))?){{1,}}")


def _growth_chain(text: str) -> list[int]:
    """Start offsets of the numbers of 'a -> b -> c mm' (sizes on successive scans), when the chain has units."""
    m = _ARROW_CHAIN.search(text)
    if not m or not re.search(r"mm|cm", m.group(0)):
        return []
    return [n.start() + m.start() for n in re.finditer(r"\d+(?:\.\d+)?", m.group(0))]


def _chain_values(text: str) -> list[float]:
    m = _ARROW_CHAIN.search(text)
    if not m or not re.search(r"mm|cm", m.group(0)):
        return []
    scale = 10.0 if re.search(r"cm", m.group(0)) and not re.search(r"mm", m.group(0)) else 1.0
    return [float(n) * scale for n in re.findall(r"\d+(?:\.\d+)?", m.group(0))]


_BOUND_WORDS = {"lt": "under", "le": "at most", "ge": "at least", "gt": "over", "max": "up to"}


_ASK = "_ask"  # params key (removed before returning): inputs the calculator would default but the words leave open
_BOUNDED = "_bounded"  # params key (removed before returning): which size came from a comparator, and its far end


def _main_size(
    sizes: list[Size], step_mm: float, notes: list[str], *, largest: bool = False,
    params: dict[str, Any] | None = None, param: str = "", per_mm: float = 1.0,
) -> float:  # fmt: skip
    """The size that decides the category: the largest mention, comparators applied (and said in a note).

    With ``params``/``param``, a size read from a comparator is recorded with the other end of the range it
    allows ("under 10 mm": 1 mm; "at least 8 mm": three times 8), so that an ambiguous range is asked back.
    """
    picked = max(sizes, key=lambda s: s.largest(step_mm) if largest else s.value(step_mm))
    value = picked.largest(step_mm) if largest else picked.value(step_mm)
    if params is not None and picked.bound not in (None, "max"):
        far = 1.0 if picked.bound in ("lt", "le") else min(picked.mm * 3, 300.0)
        params[_BOUNDED] = (param, round(far * per_mm, 3), f"{_BOUND_WORDS[picked.bound]} {picked.mm:g} mm")
    if picked.bound in ("lt", "gt"):
        notes.append(
            f"'{_BOUND_WORDS[picked.bound]} {picked.mm:g} mm' read as {value:g} mm "
            f"({'below' if picked.bound == 'lt' else 'above'} the number written)"
        )
    elif picked.bound == "ge":
        notes.append(f"'at least {picked.mm:g} mm' read as {value:g} mm; if it is larger, the category may be higher")
    elif picked.bound == "le":
        notes.append(f"'at most {picked.mm:g} mm' read as {value:g} mm, the largest size it allows")
    elif picked.bound == "max":
        notes.append(f"'up to {picked.mm:g} mm' read as the largest nodule, {value:g} mm")
    return value


# ---------------------------------------------------------------- lung nodules


def _composition(text: str) -> str | None:
    if _has(text, r"part[\s-]?solid|partly solid|semi[\s-]?solid|mixed (?:density|attenuation)|\bpsn\b"):
        return "part_solid"
    if _has(text, r"solid (?:component|part|portion|core)") and _has(
        text, r"subsolid|sub-solid|ground[\s-]glass|\bggn"
    ):
        return "part_solid"
    if _has(text, r"ground[\s-]?glass|\bggns?\b|\bggos?\b|non[\s-]?solid|\bpggn\b"):
        return "ground_glass"
    if _has(text, r"subsolid|sub-solid"):
        return "subsolid"
    if _has(text, r"(?<![\w-])solid\b(?!\s*(?:component|part|portion|core))"):
        return "solid"
    return None


def _count(text: str) -> str:
    if _has(
        text,
        r"multiple|several|numerous|bilateral nodules|\b(?:two|three|four|five|2|3|4|5) (?:\w+ )?nodules"
        r"|nodules\b|\bggns\b|\bggos\b",
    ):
        return "multiple"
    return "single"


_LOW_RISK = re.compile(
    r"low[\s-]risk|never[\s-]?smok\w*|non[\s-]?smok\w*|no (?:history of )?smoking|no risk factors"
    r"|no (?:smoking|tobacco) history|no history of smoking|has never smoked|never smoked|lifelong non"
    r"|minimal (?:or no )?smoking"
)
# Fleischner 2017 high-risk factors (guideline_facts section 1 and 9): smoking, other carcinogen exposure,
# family history, emphysema, pulmonary fibrosis. Searched after the low-risk phrases are blanked out, so
# "non-smoker" is not read as "smoker".
_HIGH_RISK = re.compile(
    r"high[\s-]risk|\b(?:ex-?|former |current |heavy |active )?smok(?:er|ers|ing|es|ed)\b|pack[\s-]?years?"
    r"|\bpy\b|\bpk[\s-]?yrs?\b|\d+\s*p/?y\b|asbestos|radon|uranium|family history|emphysema|fibrosis"
    r"|carcinogen|\bcopd\b|(?:mum|mom|mother|father|dad|sister|brother|sibling|parent)\b[^.;]{0,30}lung (?:ca\b|cancer)"
    r"|upper[\s-]lobe|\brul\b|\blul\b|apical|apex|\bppd\b|pack a day|cigarettes?"
)


_NEGATED_RISK = re.compile(
    r"\b(?:no|without|denies|negative for)\s+(?:\w+\s+){0,2}?(?:family history|emphysema|fibrosis|asbestos"
    r"|copd|carcinogen\w*)(?:\s+or\s+(?:family history|emphysema|fibrosis|asbestos|copd))?"
)


def _risk(text: str, notes: list[str] | None = None) -> str | None:
    """'low', 'high' or None. Contradictory statements never default to low: a high-risk factor wins."""
    low_match = _LOW_RISK.search(text)
    blanked = _LOW_RISK.sub(lambda m: " " * len(m.group(0)), _NEGATED_RISK.sub(lambda m: " " * len(m.group(0)), text))
    high_match = _HIGH_RISK.search(blanked)
    if low_match and high_match:
        if notes is not None:
            notes.append(
                f"Contradictory risk statements: '{low_match.group(0)}' but '{high_match.group(0).strip()}'; "
                "the high-risk factor is applied (Fleischner 2017 lists it as a risk factor). Correct the risk "
                "if that is wrong."
            )
        return "high"
    if high_match:
        return "high"
    if low_match:
        return "low"
    return None


def _fleischner(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    notes: list[str] = []
    comp = _composition(text)
    count = _count(text)
    if comp == "subsolid":
        if count == "multiple":
            comp = "ground_glass"  # the multiple-subsolid rule is the same for ground-glass and part-solid
        else:
            comp = None
            notes.append("'subsolid' does not say whether the nodule is ground-glass or part-solid")
    if comp:
        params["composition"] = comp
    params["count"] = count
    main, solid, _ = _split_sizes(text, lung=True)
    vol = re.search(r"(\d+(?:\.\d+)?)\s*(?:mm3|mm\^3|cubic mm|mm cubed)", text)
    if vol:
        params["volume_mm3"] = float(vol.group(1))
    elif main:
        # Fleischner rounds to whole millimetres, so "under 6 mm" is at most 5 mm.
        params["size_mm"] = _main_size(main, 1.0, notes, params=params, param="size_mm")
    if solid:
        params["solid_component_mm"] = solid[0].value(1.0)
    risk = _risk(text, notes)
    if risk:
        params["risk"] = risk
    age = _age(text)
    if age is not None:
        params["age"] = age
    if _has(
        text,
        r"known (?:primary )?(?:\w+ )?(?:cancer|malignancy|carcinoma|melanoma|lymphoma|sarcoma|leuka?emia|myeloma)"
        r"|staging ct|\b(?:aml|all|cll|cml)\b (?:pt|patient)|(?:mid|on|during|receiving)[\s-]chemo|metastas"
        r"|(?<!family )history of (?:\w+ )?(?:cancer|malignancy|carcinoma"
        r"|lymphoma|melanoma)|metastatic|oncology patient|on chemo",
    ):
        params["known_cancer"] = True
    if _has(
        text,
        r"immuno(?:suppress|compromis)\w*|transplant|\btx recipient|\bhiv\b|tacrolimus|cyclosporin|mycophenolate"
        r"|neutropeni\w*|long[\s-]term steroids|high[\s-]dose steroids",
    ):
        params["immunosuppressed"] = True
    if _has(text, r"screening|\bldct\b|low[\s-]dose ct"):
        params["screening"] = True
    return params, notes


def _lungrads(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    notes: list[str] = []
    # "and if it persists at 3 months?" is a question about later, not a finding now (guideline_mode answers it).
    text = re.sub(r"\b(?:and |what )?(?:\w+ ){0,4}?if\b[^?.;]*", " ", text)
    if _has(
        text,
        r"incomplete|not fully (?:evaluable|imaged)|cannot be evaluated|(?:prior|outside|previous) (?:\w+ ){0,2}"
        r"(?:being (?:located|retrieved|obtained)|requested|awaited)|awaiting (?:the )?(?:prior|comparison)",
    ):
        params["incomplete"] = True
        return params, notes
    if _has(text, r"consolidation|infecti|inflammat"):
        params["infection_suspected"] = True
        return params, notes
    if _has(text, r"no (?:lung |pulmonary )?nodules?\b"):
        params["no_nodules"] = True
        return params, notes
    # Benign calcification (complete, central, popcorn, concentric) or fat: category 1 (guideline_facts section 2).
    # "non-calcified" and "no calcification" are not.
    if _affirmed(
        text,
        r"(?<!non)(?<!non-)(?<!partially )(?<!partly )\bcalcified|popcorn|fat[\s-]containing|(?:contain\w*|with)"
        r" (?:macroscopic |intranodular )?fat\b|macroscopic fat|intranodular fat|benign (?:pattern of )?calcification"
        r"|central calcification|concentric calcification|laminated calcification",
    ):
        params["benign_calcification_or_fat"] = True
        return params, notes
    follow_up = _has(
        text,
        r"follow[\s-]?up|\bf/?u\b|annual|prior|previous|compared|interval|\bnew\b|grow|grew|enlarg|increas|stable"
        r"|unchanged|since last|last (?:year|yr|scan|screen|ldct)|repeat|\bnow (?:measures|\d)|->|→"
        r"|\d+-month (?:ldct|ct|scan)|year-\d screen|\bwas \d",
    )
    # "baseline" decides only when nothing says the scan is a later one ("cat 3 at baseline; 6-month LDCT unchanged").
    if _has(text, r"baseline|\bbl\b|initial|first (?:screen|ldct|scan)") and not _has(
        text,
        r"unchanged|stable|grew|grow|\bnow (?:measures|\d)|->|→|\d+-month (?:ldct|ct|scan|f/?u)|\bf/?u\b|since|persist",
    ):
        follow_up = False
    params["exam"] = "follow_up" if follow_up else "baseline"
    if _has(text, r"endobronchial|endotracheal|airway nodule|intraluminal|(?:segmental|lobar|main) bronch"):
        params["airway"] = "subsegmental" if _has(text, r"subsegmental") else "segmental_or_proximal"
        if _has(text, r"persist|still (?:present|there|seen|visible)"):
            params["airway_persistent_at_3_months"] = True
        params.pop("exam")
        return params, notes
    if _has(text, r"multilocul\w*|thick[\s-]?walled|thin[\s-]?walled|\bcysts?\b(?! of)"):
        return _lung_cyst(text, params, notes)
    comp = _composition(text)
    if comp == "subsolid":
        comp = None
        notes.append("'subsolid' does not say whether the nodule is non-solid or part-solid")
    if (
        comp is None
        and _has(text, r"juxtapleural|perifissural|juxta-pleural|fissural")
        and _has(text, r"smooth|lentiform|triangular|oval|lenticular")
    ):
        comp = "solid"  # juxtapleural/perifissural nodules of benign morphology are solid by definition
        notes.append("a juxtapleural/perifissural nodule is read as solid")
    if comp:
        params["nodule_type"] = comp
    main, solid, prior = _split_sizes(text, lung=True)
    if main:
        # Lung-RADS measures to a tenth of a millimetre, so "under 6 mm" is at most 5.9 mm.
        params["mean_diameter_mm"] = _main_size(main, 0.1, notes, params=params, param="mean_diameter_mm")
    if len(solid) >= 2 and follow_up:
        # "solid part 2 mm ... now the solid part is 5 mm": the earlier mention is the prior screen's.
        params["prior_solid_component_mm"] = solid[0].value(0.1)
        params["solid_component_mm"] = solid[-1].value(0.1)
    elif solid:
        params["solid_component_mm"] = solid[0].value(0.1)
    if follow_up and comp == "part_solid" and "prior_solid_component_mm" not in params:
        if _has(
            text, r"new solid (?:component|part|portion)|solid (?:component|part|portion) (?:is |has )?(?:new|appeared)"
        ):
            params["solid_component_change"] = "new"
        elif _has(text, r"solid (?:component|part|portion) (?:\w+ ){0,2}(?:grew|grow\w*|enlarg\w*|increas\w*)"):
            params["solid_component_change"] = "growing"
        elif _has(text, r"solid (?:component|part|portion) (?:\w+ ){0,2}(?:stable|unchanged|same)"):
            params["solid_component_change"] = "stable"
    prior_cat = re.search(
        r"(?:lung[\s-]?rads|category|cat\.?|previously|prior|was|last)\s*(?:lung[\s-]?rads\s*)?(?:category\s*)?"
        r"(4a|4b|4x|[0-4])(?![\w.]|\s*(?:mm|cm))",
        text,
    )
    chain = _chain_values(text)
    if follow_up:
        if len(chain) >= 3 and all(b > a for a, b in zip(chain, chain[1:], strict=False)):
            # "5.2 -> 5.9 -> 6.5 -> 7.1 mm on consecutive screens": growth over several screens.
            params["slow_growth"] = True
            params["status"] = "growing"
            notes.append(f"sizes {' -> '.join(f'{v:g}' for v in chain)} mm read as growth over several screens")
        elif _has(text, r"\bnew(?!\s+(?:\w+\s+)?solid (?:component|part|portion))\b|newly(?! solid)"):
            params["status"] = "new"
        elif _has(
            text,
            r"slow(?:ly)?[\s-]grow\w*|slow growth|gradual(?:ly)? (?:grow|increas)\w*"
            r"|(?:grow\w*|increas\w*) (?:slowly )?over (?:several|multiple|\d+) (?:screens|years|rounds)",
        ):
            params["slow_growth"] = True
            params["status"] = "growing"
        elif _has(text, r"grow|grew|enlarg|increas"):
            params["status"] = "growing"
        elif _has(text, r"stable|unchanged|no change|smaller|decreas|persist"):
            params["status"] = "stable"
        elif prior:
            params["prior_mean_diameter_mm"] = prior[0].mm
        if prior and params.get("status") in ("growing", "stable") and "slow_growth" not in params:
            params["prior_mean_diameter_mm"] = prior[0].mm
            params.pop("status")  # the sizes decide growth (> 1.5 mm) and any threshold crossing
        if prior_cat:
            params["prior_category"] = prior_cat.group(1).upper()
    if _has(
        text, r"proven benign|benign (?:at|on|after|by) (?:biopsy|work[\s-]?up|resection|pet)|biopsy[\s-]proven benign"
    ):
        params["proven_benign"] = True
    if _has(text, r"juxtapleural|perifissural|juxta-pleural|fissural") and _has(
        text, r"smooth|lentiform|triangular|oval|lenticular"
    ):
        params["juxtapleural_benign_morphology"] = True
    if _has(text, r"spiculat|lymphadenopathy|\b4x\b|suspicious features"):
        params["suspicious_features"] = True
    if _has(
        text,
        r"\bs[\s-]?modifier|\b[34][ab]?s\b|significant (?:incidental|other|non-?lung|extrapulmonary) finding"
        r"|(?:moderate|severe|heavy|extensive) coronary|coronary artery calcification|aortic aneurysm|\baaa\b",
    ):
        params["s_modifier"] = True
    return params, notes


def _lung_cyst(text: str, params: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Atypical pulmonary cysts (Lung-RADS v2022, RDES267 cyst rows): type and change since the prior screen."""
    if _has(text, r"multilocul"):
        params["cyst"] = "multilocular"
    elif _has(text, r"thick[\s-]?walled|thick wall"):
        params["cyst"] = "thick_walled"
    elif _has(text, r"thin[\s-]?walled|thin wall"):
        params["cyst"] = "thin_walled"
    else:
        params["cyst"] = "thick_walled" if _has(text, r"wall (?:thickening|nodular)") else "thin_walled"
        notes.append(f"cyst read as {params['cyst'].replace('_', '-')}")
    if params.get("exam") == "follow_up":
        if _has(text, r"(?:became|become|becoming|now|turned|new(?:ly)?)\s+(?:\w+\s+)?multilocul"):
            params["cyst_change"] = "became_multilocular"
            params["cyst"] = "thick_walled" if _has(text, r"thick") else "thin_walled"
        elif _has(
            text,
            r"wall (?:\w+ ){0,2}(?:thicken|nodular)\w*|(?:thicker|nodular|nodularity) wall"
            r"|wall thickness (?:\w+ )?(?:grew|increas)",
        ):
            params["cyst_change"] = "growing_wall_or_nodularity"
        elif _has(text, r"more locul\w*|increased loculation|denser|increased (?:density|opacity)|new opacit"):
            params["cyst_change"] = "increased_loculation_or_density"
        elif _has(
            text,
            r"cystic (?:component|part|portion) (?:\w+ ){0,2}(?:grew|grow\w*|enlarg\w*|increas\w*)"
            r"|(?:grow\w*|enlarg\w*) cystic",
        ):
            params["cyst_change"] = "growing_cystic_component"
        elif _has(text, r"stable|unchanged|no change"):
            params["cyst_change"] = "stable"
        elif _has(text, r"grow|grew|enlarg|increas"):
            notes.append("'growing' cyst: say whether the cystic component or the wall/nodularity grew")
    return params, notes


# ---------------------------------------------------------------- thyroid


def _tirads(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    notes: list[str] = []
    for value, pattern in (
        ("spongiform", r"spongiform"),
        ("mixed", r"mixed|cystic and solid|solid and cystic"),
        ("cystic", r"(?:almost completely )?cystic|\bcyst\b"),
        ("solid", r"(?:almost completely )?solid"),
    ):
        if _has(text, pattern):
            params["composition"] = value
            break
    for value, pattern in (
        ("very_hypoechoic", r"very hypo|markedly hypo"),
        ("hypoechoic", r"hypoechoi?c|hypo-echoic|\bhypo\b"),
        ("isoechoic", r"isoechoi?c|iso-echoic|\biso\b"),
        ("hyperechoic", r"hyperechoic|hyper-echoic"),
        ("anechoic", r"anechoic"),
    ):
        if _has(text, pattern):
            params["echogenicity"] = value
            break
    if _affirmed(text, r"taller[\s-]than[\s-]wide|\bttw\b") is True:
        params["shape"] = "taller_than_wide"
    elif _has(text, r"wider[\s-]than[\s-]tall|taller[\s-]than[\s-]wide|\bwtt\b|\bttw\b"):
        params["shape"] = "wider_than_tall"
    for value, pattern in (
        ("extrathyroidal_extension", r"extra[\s-]?thyroidal|\bete\b"),
        ("irregular", r"irregular"),
        ("lobulated", r"lobulated"),
        ("ill_defined", r"ill[\s-]defined"),
        ("smooth", r"smooth|well[\s-]defined|circumscribed"),
    ):
        if _has(text, pattern):
            params["margin"] = value
            break
    foci = _all_affirmed(
        text,
        (
            ("punctate", r"punctate|microcalc"),
            ("macrocalcifications", r"macrocalc|coarse calc"),
            ("peripheral", r"peripheral|rim calc\w*|eggshell"),
            ("comet_tail", r"comet[\s-]tail"),
        ),
    )
    if foci:
        params["echogenic_foci"] = foci
    elif _has(
        text,
        r"no (?:echogenic )?foci|no calc\w*|no \bef\b|no microcalc\w*|without (?:\w+ )?(?:foci|calc\w*)"
        r"|foci:? (?:none|absent)|no echogenic",
    ):
        params["echogenic_foci"] = ["none"]
    elif params.get("composition") not in ("spongiform", "cystic") and _foci_could_change(params):
        # Punctate foci add 3 points: not mentioning them is not the same as none, so ask when they could change
        # the level (never assume none).
        params[_ASK] = [("echogenic_foci", "Are there echogenic foci (none, macrocalcifications, rim, punctate)?")]
    main, _, _ = _split_sizes(text)
    if main:
        # TI-RADS thresholds use the maximum dimension (in cm, to a millimetre).
        size = _main_size(main, 1.0, notes, largest=True, params=params, param="max_diameter_cm", per_mm=0.1)
        params["max_diameter_cm"] = round_half_up(size / 10, 3)
    m = re.search(r"(?:previously|prior|was)\s*tr\s?([1-5])", text)
    if m:
        params["prior_level"] = int(m.group(1))
    return params, notes


def _foci_could_change(params: dict[str, Any]) -> bool:
    """True unless the other features already decide the level whatever the foci (e.g. already TR5)."""
    from assistant.guidelines.tirads import tirads_points, tr_level  # late: the registry imports this module

    features = ("composition", "echogenicity", "shape", "margin")
    if any(f not in params for f in features):
        return True
    try:
        c, e, sh, m = (params[f] for f in features)
        low = tr_level(tirads_points(c, e, sh, m, ["none"])[0])
        high = tr_level(tirads_points(c, e, sh, m, ["punctate"])[0])
    except CalculatorInputError:
        return True
    return low != high


# ---------------------------------------------------------------- kidney, breast, liver, adrenal

_WORD_NUM = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "a few": 2,
    "few": 2,
    "single": 1,
    "a": 1,
    "an": 1,
}


def _bosniak(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {"modality": "mri" if _has(text, r"\bmri?\b|\bt[12]\b|magnetic") else "ct"}
    notes: list[str] = []
    if _has(text, r"unenhanced|non[\s-]?contrast|without contrast|noncontrast|pre[\s-]?contrast only"):
        params["contrast"] = False
    m = re.search(
        rf"{_NUM}\s*mm\s*(?:[a-z]+\s+){{0,2}}wall|wall\s*(?:thickness\s*)?(?:of|measuring|is|=)?\s*"
        rf"{_NUM}\s*mm",
        text,
    )
    if m:
        params["wall_thickness_mm"] = float(m.group(1) or m.group(2))
    elif _has(text, r"minimally thickened wall"):
        params["wall_thickness_mm"] = 3.0
    m = re.search(
        r"\b(\d+(?![\d.]|\s*(?:mm|cm|hu)\b)|one|two|three|four|five|six|a few|few|single|many|multiple|numerous)"
        r"\s+(?:[\w.()-]+\s+){0,5}?sept(?:a|ae|um|ations?)\b",
        text,
    ) or re.search(r"(?<!from )(?<!of )(?<!on )\b(an?)\s+(?:[\w.-]+\s+){0,4}?sept(?:um|ation)\b", text)
    if (
        m is None
        and re.search(r"\bsept(?:um|ation)\b", text)
        and not re.search(r"\b(?:from|of|on|along)\s+(?:a|the)?\s*sept|\bno (?:\w+ )?sept", text)
    ):
        m = re.match(r"(an?)", "a")  # "enhancing septum measuring 3 mm": one septum
    if m:
        word = m.group(1)
        count = int(word) if word.isdigit() else _WORD_NUM.get(word, 4)
        if word in ("many", "multiple", "numerous"):
            notes.append(f"'{word} septa' read as 4 or more septa")
        params["septa_count"] = count
        t = re.search(
            rf"sept\w*\s*(?:\w+\s+){{0,2}}?(?:measuring|of|up to)?\s*{_NUM}\s*mm|{_NUM}\s*mm\s*(?:thick\s*)?"
            r"(?:\w+\s+)?sept|\(\s*(\d+(?:\.\d+)?)\s*mm\s*\)\s*(?:\w+\s+){0,2}sept",
            text,
        )
        if t:
            params["septa_thickness_mm"] = float(next(g for g in t.groups() if g is not None))
        elif _has(text, r"(?:thin|hairline)\s+(?:\w+\s+){0,3}sept"):
            params["septa_thickness_mm"] = 2.0
            notes.append("'thin' septa read as 2 mm (Bosniak 2019: thin is <=2 mm)")
        elif _has(text, r"minimally thickened\s+(?:\w+\s+)?sept"):
            params["septa_thickness_mm"] = 3.0
    n = re.search(
        rf"{_NUM}\s*mm\s*(?:[\w-]+\s+){{0,3}}?(?:nodule|protrusion|nodularity)"
        rf"|(?:nodule|protrusion|nodularity)\s*(?:of|measuring)?\s*{_NUM}\s*mm",
        text,
    )
    if n:
        params["protrusion_mm"] = float(n.group(1) or n.group(2))
    if _has(text, r"acute[\s-](?:margin|angle)"):
        params["protrusion_margin"] = "acute"
    elif _has(text, r"obtuse"):
        params["protrusion_margin"] = "obtuse"
    hu = re.search(r"(-?\d+(?:\.\d+)?)\s*hu\b", text)
    if hu and params["modality"] == "ct":
        params["attenuation_hu"] = float(hu.group(1))
    if _affirmed(text, r"calcif\w*") is True:
        params["calcification"] = True
    if _has(text, r"heterogeneous"):
        if params["modality"] == "mri" and _has(text, r"t1"):
            params["t1_heterogeneous_hyperintense"] = True
        else:
            params["homogeneous"] = False
    if params["modality"] == "mri":
        if _has(text, r"t2[\s-]?(?:bright|hyperintense)|csf[\s-]like|fluid signal|simple fluid"):
            params["t2_csf_like"] = True
        if (
            _has(text, r"(?:markedly )?t1[\s-]?(?:bright|hyperintense)")
            and "t1_heterogeneous_hyperintense" not in params
        ):
            params["t1_markedly_hyperintense"] = True
    return params, notes


# Descriptions of a BI-RADS assessment in words (ACR BI-RADS Atlas 5th ed., assessment categories), checked
# in this order so that "probably benign" is not read as "benign" and "low suspicion" not as "suspicious".
_BIRADS_WORDS: tuple[tuple[str, str], ...] = (
    (
        "6",
        r"(?:biopsy|tissue)[\s-]proven (?:malignancy|cancer|carcinoma|idc|ilc|dcis|\w+ carcinoma)"
        r"|known biopsy[\s-]proven",
    ),
    ("5", r"highly suggestive of malignancy|highly suspicious for malignancy|classic(?:ally)? malignant"),
    ("4C", r"high suspicion|highly suspicious\b(?! for malignancy)"),
    ("4B", r"moderate suspicion|moderately suspicious|intermediate suspicion"),
    ("4A", r"low suspicion|mildly suspicious|slightly suspicious"),
    ("3", r"probably benign|likely benign|short[\s-]interval follow[\s-]?up"),
    (
        "0",
        r"incomplete|needs? (?:additional|further|more) (?:imaging|views|evaluation)|additional (?:imaging|views)"
        r"|spot compression|comparison with (?:old|prior|previous) (?:films|mammograms|studies)|recall(?:ed)?\b"
        r"|call[\s-]?back",
    ),
    (
        "1",
        r"\bnegative (?:mammogram|study|exam|screen)|nothing to (?:comment|report|describe)"
        r"|normal (?:mammogram|study|exam)",
    ),
    (
        "2",
        r"(?<!probably )(?<!likely )\bbenign (?:finding|findings|mass|calcifications?|cyst|lymph node)"
        r"|definitely benign|clearly benign|simple cyst|oil cyst|fibroadenoma, biopsy",
    ),
    ("4", r"suspicious|needs? (?:a )?tissue diagnosis"),
)


def _birads(text: str) -> tuple[dict[str, Any], list[str]]:
    m = re.search(r"(?:bi[\s-]?rads|birads|category|cat\.?)\s*(?:category\s*)?(4a|4b|4c|[0-6])\b", text)
    if m:
        return {"category": m.group(1).upper()}, []
    pct = re.search(
        r"(?:likelihood|risk|chance|probability)[^%.;]{0,40}?(-?\d+(?:\.\d+)?)\s*%"
        r"|(-?\d+(?:\.\d+)?)\s*%[^.;]{0,30}(?:chance|likel\w*|risk|probab\w*|malignan\w*)"
        r"|(?:~|about|approx\.?|maybe|exactly)\s*(-?\d+(?:\.\d+)?)(?:\s*-\s*\d+)?\s*%",
        text,
    )
    if pct:
        value = float(next(g for g in pct.groups() if g is not None))
        category = _birads_from_likelihood(value)
        return {"category": category}, [f"a likelihood of malignancy of {value:g}% read as BI-RADS {category}"]
    for category, pattern in _BIRADS_WORDS:
        found = re.search(pattern, text)
        if found and _affirmed(text, pattern):
            return {"category": category}, [f"'{found.group(0)}' read as BI-RADS {category}"]
    return {}, []


def _birads_from_likelihood(percent: float) -> str:
    """The BI-RADS 5th-edition band of a likelihood of malignancy (ACR atlas: 3 >0-2%, 4A >2-10%, 4B >10-50%,
    4C >50-<95%, 5 >=95%); an impossible percentage is passed on as written, for the calculator to refuse."""
    if not 0 < percent <= 100:
        return f"{percent:g}%"
    for upper, category in ((2, "3"), (10, "4A"), (50, "4B")):
        if percent <= upper:
            return category
    return "4C" if percent < 95 else "5"


def _lirads(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    notes: list[str] = []
    main, _, _ = _split_sizes(text)
    if main:
        # LI-RADS v2018: size is the largest outer-edge-to-outer-edge dimension, never a mean of axes
        # ("22 x 15 mm" is 22 mm) - guideline_facts section 9.
        params["size_mm"] = _main_size(main, 1.0, notes, largest=True, params=params, param="size_mm")
    if _has(text, r"(?<!non)(?<!non-)(?<!non )\brim (?:aphe|arterial|enhancement)|targetoid"):
        params["aphe"] = "rim"
    else:
        aphe = _affirmed(
            text,
            r"\baphe\b|arterial[\s-](?:phase )?hyperenhanc\w*|hyperenhanc\w* in the arterial|hypervascular",
        )
        if aphe is not None:
            params["aphe"] = "nonrim" if aphe else "none"
    for name, pattern in (
        ("washout", r"(?<!peripheral )wash[\s-]?out"),
        ("capsule", r"capsule"),
        ("threshold_growth", r"threshold growth|>=\s*50\s*% (?:growth|increase)|grew by \d+ ?%"),
    ):
        found = _affirmed(text, pattern)
        params[name] = bool(found)
    _, _, prior = _split_sizes(text)
    months = re.search(r"(\d+)\s*(?:months?|mo)\b(?: ago| earlier| before)?", text)
    if prior and "size_mm" in params and months and int(months.group(1)) <= 6:
        # LI-RADS threshold growth: size increase of >= 50% in <= 6 months (guideline_facts section 6).
        before = prior[0].mm
        if before > 0 and params["size_mm"] >= before * 1.5:
            params["threshold_growth"] = True
            notes.append(f"{before:g} -> {params['size_mm']:g} mm in {months.group(1)} months read as threshold growth")
    targetoid = _all_affirmed(
        text,
        (
            ("peripheral_washout", r"peripheral wash[\s-]?out"),
            ("delayed_central_enhancement", r"delayed central enhancement"),
            ("targetoid_restriction", r"targetoid (?:diffusion )?restriction"),
        ),
    )
    if targetoid:
        params["lr_m_features"] = targetoid
    if _affirmed(
        text, r"tumou?r in (?:the )?(?:portal |hepatic )?vein|\btiv\b|enhancing (?:soft )?tissue in (?:the )?\w* ?vein"
    ):
        params["tumor_in_vein"] = True
    population = _lirads_population(text)
    if population:
        params["population"] = population
    age = _age(text)
    if age is not None:
        params["age"] = age
    return params, notes


def _lirads_population(text: str) -> str | None:
    """Who the patient is for LI-RADS (v2018 population): at risk, or one of the named exclusions."""
    if _has(text, r"congenital hepatic fibrosis"):
        return "congenital_hepatic_fibrosis"
    if _has(
        text,
        r"budd[\s-]?chiari|vascular (?:cause|disorder|disease)|hepatic venous outflow|cardiac cirrhosis"
        r"|portal vein thrombosis cirrhosis|sinusoidal obstruction",
    ):
        return "vascular_cirrhosis"
    if _affirmed(text, r"cirrho\w*") is True and not _has(text, r"without cirrho|no cirrho|non-?cirrhotic"):
        return "cirrhosis"
    if _affirmed(text, r"\bhbv\b|hepatitis b|hep b") is True:
        return "chronic_hbv"
    if _has(text, r"(?:prior|previous|treated|known|history of|current) (?:\w+ )?hcc|\bhcc (?:history|survivor)"):
        return "hcc"
    if _has(
        text,
        r"no (?:known )?(?:liver disease|cirrhosis|risk factors?)|non-?cirrhotic|without cirrhosis"
        r"|normal liver|nafld without|healthy liver",
    ):
        return "not_at_risk"
    return None


def _adrenal(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    notes: list[str] = []
    main, _, _ = _split_sizes(text)
    if main:
        size = _main_size(main, 1.0, notes, largest=True, params=params, param="size_cm", per_mm=0.1)
        params["size_cm"] = round_half_up(size / 10, 3)
    hu = re.search(r"(-?\d+(?:\.\d+)?)\s*hu\b", text)
    if hu:
        params["unenhanced_hu"] = float(hu.group(1))
    for value, pattern in (
        ("macroscopic_fat", r"macroscopic fat|myelolipoma|fat[\s-]containing"),
        ("chemical_shift_signal_loss", r"signal (?:loss|drop)|chemical[\s-]shift"),
        ("cyst", r"\bcyst\b|cystic"),
        ("haemorrhage", r"ha?emorrhag|hematoma|haematoma"),
        ("calcified", r"calcified"),
    ):
        if _affirmed(text, pattern):
            params["benign_feature"] = value
            break
    if _has(
        text,
        r"(?:stable|unchanged|same size|no change)\s*(?:for |over |since |vs\.? |versus |compared (?:with|to) )?"
        r"(?:(?:a )?ct |the ct |prior |imaging )?(?:from |of )?(?:>=|more than |over |at least )?"
        r"(?:\d+|one|a|two|several)\+? ?(?:years?|yrs?)",
    ) or _stable_for_a_year(text):
        params["prior_imaging"] = "stable_1y"
    elif _has(text, r"\bnew\b|enlarg|grow|grew|increas|\bwas \d+(?:\.\d+)? ?(?:cm|mm)"):
        params["prior_imaging"] = "new_or_enlarging"
    elif _has(text, r"no prior|no previous|no comparison|without prior|no old"):
        params["prior_imaging"] = "none"
    cancer = _affirmed(
        text,
        r"(?:history of|hx of|h/o|known|prior)\s+(?:\w+\s+)?(?:cancer|malignancy|carcinoma|melanoma|lymphoma|ca\b|rcc"
        r"|nsclc|sclc)|cancer (?:history|hx)|oncologic history|\b(?:lung|breast|colon|renal|kidney) ca\b",
    )
    if cancer is not None:
        params["cancer_history"] = cancer
    elif _has(text, r"no (?:known )?(?:history of |hx of )?(?:cancer|malignancy|ca\b)|no (?:cancer|onc\w*) hx"):
        params["cancer_history"] = False
    if _has(
        text,
        r"hypertensive crise|palpitation|cushing\w*|hyperaldosteron\w*|conn'?s|virili[sz]|"
        r"symptomatic|pheo\w* (?:work[\s-]?up|suspected)|catecholamine excess|hypokalaemi|hypokalemi",
    ):
        params["symptomatic"] = True
    for name, pattern in (
        ("absolute_washout_pct", r"(?:absolute|abs\.?) (?:percentage )?washout\D{0,12}(\d+(?:\.\d+)?)\s*%"),
        ("relative_washout_pct", r"(?:relative|rel\.?) (?:percentage )?washout\D{0,12}(\d+(?:\.\d+)?)\s*%"),
    ):
        w = re.search(pattern, text)
        if w:
            params[name] = float(w.group(1))
    age = _age(text)
    if age is not None:
        params["age"] = age
    return params, notes


_PRE = r"(?:pre(?:[\s-]?contrast)?|unenhanced|non[\s-]?con(?:trast)?|noncontrast|plain|native|baseline)"
_POST = r"(?:post(?:[\s-]?contrast)?|enhanced|nephrographic|portal[\s-]?venous|\bpv\b|venous|delayed|after contrast)"
_HU = r"(-?\d+(?:\.\d+)?)\s*(?:hu)?"


def _hu_pair(text: str) -> tuple[float, float] | None:
    """(unenhanced, enhanced) attenuations written as a pair: "12 HU unenhanced, 38 HU nephrographic",
    "pre 18, post 31 HU", "8 HU -> 16 HU after contrast"."""
    for pattern in (
        rf"{_HU}\s*{_PRE}\W+(?:\w+\W+){{0,2}}?{_HU}\s*{_POST}",  # 12 hu unenhanced, 38 hu nephrographic
        rf"{_PRE}\W*{_HU}\W+(?:\w+\W+){{0,2}}?{_POST}\W*{_HU}",  # pre 18, post 31 hu
        rf"{_HU}\s*hu\s*(?:->|→|to)\s*{_HU}\s*hu\s*(?:{_POST}|after)",  # 8 hu -> 16 hu after contrast
    ):
        m = re.search(pattern, text)
        if m and "hu" in m.group(0):
            return float(m.group(1)), float(m.group(2))
    return None


def _stable_for_a_year(text: str) -> bool:
    """'unchanged vs CT from 2 years ago', 'same size on CT 18 months ago': stable for at least a year."""
    if not _has(text, r"stable|unchanged|same size|no change|not changed"):
        return False
    m = re.search(r"(\d+)\s*(years?|yrs?|months?|mo)\b\s*(?:ago|earlier|before|prior)", text)
    if not m:
        return False
    amount = int(m.group(1))
    return amount >= 1 if m.group(2).startswith("y") else amount >= 12


def _renal(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {"modality": "mri" if _has(text, r"\bmri?\b|signal") else "ct"}
    notes: list[str] = []
    if params["modality"] == "ct":
        # Only an enhancement is an enhancement: "from 30 to 55 HU" is +25 HU; "enhances by 25 HU" is 25 HU;
        # a bare attenuation ("40 HU") is not, and then the increase is asked for (ACR renal 2018).
        span = re.search(r"from\s+(-?\d+(?:\.\d+)?)\s*(?:hu)?\s+to\s+(-?\d+(?:\.\d+)?)\s*hu\b", text)
        pair = _hu_pair(text)
        if span:
            params["hu_increase"] = float(span.group(2)) - float(span.group(1))
            notes.append(f"enhancement read as {span.group(2)} - {span.group(1)} = {params['hu_increase']:g} HU")
        elif pair is not None:
            params["unenhanced_hu"], params["enhanced_hu"] = pair
        else:
            hu = re.search(
                r"(?:enhanc\w*|increas\w*|ris\w*)\s+(?:\w+\s+){0,2}?(?:by|of)\s+(-?\d+(?:\.\d+)?)\s*hu\b"
                r"|(-?\d+(?:\.\d+)?)\s*hu\s+(?:increase|rise|of enhancement|enhancement|change)",
                text,
            )
            if hu:
                params["hu_increase"] = float(hu.group(1) or hu.group(2))
    pct = re.search(r"(\d+(?:\.\d+)?)\s*%", text)
    if pct and params["modality"] == "mri":
        params["signal_increase_pct"] = float(pct.group(1))
    if _has(text, r"subtraction"):
        params["subtraction_enhancement"] = bool(_affirmed(text, r"enhancement on subtraction|subtraction")) and not (
            _has(text, r"subtraction (?:\w+ )?(?:shows|showed|with) (?:nothing|no\b)|nothing on subtraction")
        )
    return params, notes


_PARSERS = {
    "fleischner": _fleischner,
    "lungrads": _lungrads,
    "tirads": _tirads,
    "bosniak": _bosniak,
    "birads": _birads,
    "lirads": _lirads,
    "adrenal": _adrenal,
    "renal": _renal,
}
