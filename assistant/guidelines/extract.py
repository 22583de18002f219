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
    """One size mention, in millimetres, with where it was found."""

    mm: float
    dims_mm: tuple[float, ...]
    start: int
    end: int


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
    ("renal", r"renal mass|kidney mass|renal lesion|solid renal"),
)
_LUNG = (
    r"nodule|\bggns?\b|\bggos?\b|ground[\s-]glass|part[\s-]solid|subsolid|sub-solid|\brul\b|\brml\b|\brll\b|\blul\b"
    r"|\blll\b|lingula|lung|pulmonary"
)


def detect_calculator(text: str) -> str | None:
    """The calculator a question is about, from guideline names, aliases and topic words."""
    low = _normalise(text)
    for name, pattern in _GUIDELINE_NAMES:
        if re.search(pattern, low):
            if name == "lungrads" and re.search(r"fleischner|fleishner", low):
                return "fleischner"  # "does Fleischner apply to a screening CT?" is a Fleischner question
            if name == "renal" and re.search(r"\bcyst|septa|bosniak", low):
                return "bosniak"
            return name
    if re.search(_LUNG, low):
        return "lungrads" if re.search(r"\bscreen(?:ing|ed)?\b", low) else "fleischner"
    return None


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
    missing, questions = _missing(name, params)
    return Extraction(name, params, missing, questions, tuple(notes))


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
        sizes.append(Size(mm, (mm,), m.start(), m.end()))
    return sorted(sizes, key=lambda s: s.start)


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


def _age(text: str) -> int | None:
    m = re.search(
        r"\b(\d{1,3})\s*(?:-\s*)?(?:yo\b|y/o|y\.o\.|years?[\s-]old|year[\s-]old|yrs?\b|[mf]\b)", text
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
    if re.search(r"(?:previously|prior|was|from|before|last year|earlier|compared (?:with|to))\s*(?:\w+\s)?$", before):
        return "prior"
    return "size"


def _split_sizes(text: str) -> tuple[list[Size], list[Size], list[Size]]:
    main: list[Size] = []
    solid: list[Size] = []
    prior: list[Size] = []
    for size in find_sizes(text):
        kind = _component_or_prior(text, size)
        (solid if kind == "solid" else prior if kind == "prior" else main).append(size)
    # "grew from 5 to 7 mm": the 'to' value is current, the earlier bare number is prior.
    m = re.search(rf"from {_NUM}\s*(?:mm|cm)?\s*to {_NUM}\s*{_UNIT}", text)
    if m and not prior:
        prior.append(Size(_to_mm(m.group(1), m.group(3)), (), m.start(), m.start()))
    return main, solid, prior


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


def _risk(text: str) -> str | None:
    low_pat = (
        r"low[\s-]risk|never[\s-]smok\w*|non[\s-]?smok\w*|no smoking|no risk factors|nonsmoker"
        r"|no history of smoking"
    )
    if _has(text, low_pat):
        return "low"
    if _has(
        text,
        r"high[\s-]risk|smok\w*|pack[\s-]?years?|\bpy\b|\bpk[\s-]?yrs?\b|asbestos|family history|emphysema"
        r"|fibrosis|carcinogen",
    ):
        return "high"
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
    main, solid, _ = _split_sizes(text)
    vol = re.search(r"(\d+(?:\.\d+)?)\s*(?:mm3|mm\^3|cubic mm|mm cubed)", text)
    if vol:
        params["volume_mm3"] = float(vol.group(1))
    elif main:
        params["size_mm"] = max(s.mm for s in main)
    if solid:
        params["solid_component_mm"] = solid[0].mm
    risk = _risk(text)
    if risk:
        params["risk"] = risk
    age = _age(text)
    if age is not None:
        params["age"] = age
    if _has(
        text,
        r"known (?:primary )?(?:\w+ )?(?:cancer|malignancy|carcinoma)"
        r"|(?<!family )history of (?:\w+ )?(?:cancer|malignancy|carcinoma"
        r"|lymphoma|melanoma)|metastatic|oncology patient|on chemo",
    ):
        params["known_cancer"] = True
    if _has(text, r"immuno(?:suppress|compromis)\w*|transplant|\bhiv\b"):
        params["immunosuppressed"] = True
    if _has(text, r"screening|\bldct\b|low[\s-]dose ct"):
        params["screening"] = True
    return params, notes


def _lungrads(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    notes: list[str] = []
    if _has(text, r"incomplete|not fully (?:evaluable|imaged)|cannot be evaluated|prior (?:ct )?being located"):
        params["incomplete"] = True
        return params, notes
    if _has(text, r"consolidation|infecti|inflammat"):
        params["infection_suspected"] = True
        return params, notes
    if _has(text, r"no (?:lung |pulmonary )?nodules?\b"):
        params["no_nodules"] = True
        return params, notes
    if _has(text, r"calcified|popcorn|fat[\s-]containing|benign calcification|central calcification"):
        params["benign_calcification_or_fat"] = True
        return params, notes
    follow_up = _has(
        text,
        r"follow[\s-]?up|annual|prior|previous|compared|interval|\bnew\b|grow|enlarg|increas|stable"
        r"|unchanged|since last|last year|repeat",
    )
    if _has(text, r"baseline|initial|first (?:screen|ldct|scan)"):
        follow_up = False
    params["exam"] = "follow_up" if follow_up else "baseline"
    if _has(text, r"endobronchial|endotracheal|airway nodule|intraluminal"):
        params["airway"] = "subsegmental" if _has(text, r"subsegmental") else "segmental_or_proximal"
        if _has(text, r"persist"):
            params["airway_persistent_at_3_months"] = True
        params.pop("exam")
        return params, notes
    if _has(text, r"multilocular cyst|thick[\s-]walled cyst"):
        params["cyst"] = "multilocular" if _has(text, r"multilocular") else "thick_walled"
        if _has(text, r"grow|enlarg|increas|more locul|denser|increased density"):
            params["status"] = "growing"
        return params, notes
    comp = _composition(text)
    if comp == "subsolid":
        comp = None
        notes.append("'subsolid' does not say whether the nodule is non-solid or part-solid")
    if comp:
        params["nodule_type"] = comp
    main, solid, prior = _split_sizes(text)
    if main:
        params["mean_diameter_mm"] = max(s.mm for s in main)
    if solid:
        params["solid_component_mm"] = solid[0].mm
    if follow_up:
        if _has(text, r"\bnew\b|newly"):
            params["status"] = "new"
        elif _has(text, r"grow|grew|enlarg|increas"):
            params["status"] = "growing"
        elif _has(text, r"stable|unchanged|no change|smaller|decreas"):
            params["status"] = "stable"
            m = re.search(r"(?:lung[\s-]?rads|category|cat\.?)\s*(4a|4b|4x|[0-4])\b", text)
            if m:
                params["prior_category"] = m.group(1).upper()
        elif prior:
            params["prior_mean_diameter_mm"] = prior[0].mm
    if _has(text, r"juxtapleural|perifissural|juxta-pleural") and _has(text, r"smooth|lentiform|triangular|oval"):
        params["juxtapleural_benign_morphology"] = True
    if _has(text, r"spiculat|lymphadenopathy|\b4x\b|suspicious features"):
        params["suspicious_features"] = True
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
        ("hypoechoic", r"hypoechoic|hypo-echoic"),
        ("isoechoic", r"isoechoic|iso-echoic"),
        ("hyperechoic", r"hyperechoic|hyper-echoic"),
        ("anechoic", r"anechoic"),
    ):
        if _has(text, pattern):
            params["echogenicity"] = value
            break
    if _affirmed(text, r"taller[\s-]than[\s-]wide") is True:
        params["shape"] = "taller_than_wide"
    elif _has(text, r"wider[\s-]than[\s-]tall|taller[\s-]than[\s-]wide"):
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
    foci = [
        value
        for value, pattern in (
            ("punctate", r"punctate|microcalc"),
            ("macrocalcifications", r"macrocalc|coarse calc"),
            ("peripheral", r"peripheral|rim calc|eggshell"),
            ("comet_tail", r"comet[\s-]tail"),
        )
        if _affirmed(text, pattern)
    ]
    if foci:
        params["echogenic_foci"] = foci
    else:
        notes.append("no echogenic foci mentioned: scored as none")
    main, _, _ = _split_sizes(text)
    if main:
        params["max_diameter_cm"] = round_half_up(max(max(s.dims_mm) for s in main) / 10, 3)
    m = re.search(r"(?:previously|prior|was)\s*tr\s?([1-5])", text)
    if m:
        params["prior_level"] = int(m.group(1))
    return params, notes


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
        r"(\d+|one|two|three|four|five|six|a few|few|single|many|multiple|numerous)\s+(?:\w+\s+){0,3}?"
        r"sept(?:a|ae|um|ations?)\b",
        text,
    )
    if m:
        word = m.group(1)
        count = int(word) if word.isdigit() else _WORD_NUM.get(word, 4)
        if word in ("many", "multiple", "numerous"):
            notes.append(f"'{word} septa' read as 4 or more septa")
        params["septa_count"] = count
        t = re.search(
            rf"sept\w*\s*(?:\w+\s+){{0,2}}?(?:measuring|of|up to)?\s*{_NUM}\s*mm|{_NUM}\s*mm\s*(?:thick\s*)?"
            r"(?:\w+\s+)?sept",
            text,
        )
        if t:
            params["septa_thickness_mm"] = float(t.group(1) or t.group(2))
        elif _has(text, r"(?:thin|hairline)\s+(?:\w+\s+)?sept"):
            params["septa_thickness_mm"] = 2.0
            notes.append("'thin' septa read as 2 mm (Bosniak 2019: thin is <=2 mm)")
        elif _has(text, r"minimally thickened\s+(?:\w+\s+)?sept"):
            params["septa_thickness_mm"] = 3.0
    n = re.search(
        rf"{_NUM}\s*mm\s*(?:enhancing\s*)?(?:nodule|protrusion)|(?:nodule|protrusion)\s*(?:of|measuring)?\s*"
        rf"{_NUM}\s*mm",
        text,
    )
    if n:
        params["protrusion_mm"] = float(n.group(1) or n.group(2))
    if _has(text, r"acute (?:margin|angle)"):
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


def _birads(text: str) -> tuple[dict[str, Any], list[str]]:
    m = re.search(r"(?:bi[\s-]?rads|birads|category|cat\.?)\s*(?:category\s*)?(4a|4b|4c|[0-6])\b", text)
    return ({"category": m.group(1).upper()} if m else {}), []


def _lirads(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    main, _, _ = _split_sizes(text)
    if main:
        params["size_mm"] = max(s.mm for s in main)
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
        ("washout", r"wash[\s-]?out"),
        ("capsule", r"capsule"),
        ("threshold_growth", r"threshold growth|>=\s*50\s*% (?:growth|increase)|grew by \d+ ?%"),
    ):
        found = _affirmed(text, pattern)
        params[name] = bool(found)
    return params, []


def _adrenal(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {}
    notes: list[str] = []
    main, _, _ = _split_sizes(text)
    if main:
        params["size_cm"] = round_half_up(max(s.mm for s in main) / 10, 3)
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
        r"stable (?:for |over |since )?(?:>=|more than |over |at least )?"
        r"(?:\d+|one|a|two|several)\+? ?(?:years?|yrs?)",
    ):
        params["prior_imaging"] = "stable_1y"
    elif _has(text, r"\bnew\b|enlarg|grow|grew|increas"):
        params["prior_imaging"] = "new_or_enlarging"
    elif _has(text, r"no prior|no previous|no comparison|without prior|no old"):
        params["prior_imaging"] = "none"
    cancer = _affirmed(
        text,
        r"(?:history of|known|prior)\s+(?:\w+\s+)?(?:cancer|malignancy|carcinoma|melanoma|lymphoma)"
        r"|cancer history|oncologic history",
    )
    if cancer is not None:
        params["cancer_history"] = cancer
    elif _has(text, r"no (?:known )?(?:history of )?(?:cancer|malignancy)"):
        params["cancer_history"] = False
    for name, pattern in (
        ("absolute_washout_pct", r"absolute (?:percentage )?washout\D{0,12}(\d+(?:\.\d+)?)\s*%"),
        ("relative_washout_pct", r"relative (?:percentage )?washout\D{0,12}(\d+(?:\.\d+)?)\s*%"),
    ):
        w = re.search(pattern, text)
        if w:
            params[name] = float(w.group(1))
    age = _age(text)
    if age is not None:
        params["age"] = age
    return params, notes


def _renal(text: str) -> tuple[dict[str, Any], list[str]]:
    params: dict[str, Any] = {"modality": "mri" if _has(text, r"\bmri?\b|signal") else "ct"}
    hu = re.search(r"(-?\d+(?:\.\d+)?)\s*hu\b", text)
    if hu and params["modality"] == "ct":
        params["hu_increase"] = float(hu.group(1))
    pct = re.search(r"(\d+(?:\.\d+)?)\s*%", text)
    if pct and params["modality"] == "mri":
        params["signal_increase_pct"] = float(pct.group(1))
    if _has(text, r"subtraction"):
        params["subtraction_enhancement"] = bool(_affirmed(text, r"enhancement on subtraction|subtraction"))
    return params, []


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
