"""Guideline mode: exact categories computed by code, phrased (optionally) by the model, always checked.

1. The deterministic parser reads the question (``extract_parameters``). Only for enumerated parameters it
   could not decide is the model asked, through JSON-schema structured output, and its choice is kept only
   when it points at words of the question that the parser did not already use.
2. Still missing → ask back. Out of scope → say why. Complete → run the calculator.
3. The matching knowledge-base section is looked up by the result's ``section_id`` (citation [1]); a search
   within the same guideline adds related sections.
4. The model may phrase the result; every number and category of its text is checked against the calculator's
   output, and the template text is used when the check fails (or the model is unavailable).
Questions that are not calculator-shaped are answered from retrieval with citations, or "no source".
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import re
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import retrieval
from assistant.errors import LLMUnavailableError
from assistant.guidelines import (
    CALCULATORS,
    CalculatorInputError,
    Extraction,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    calculate,
    extract_parameters,
)
from assistant.guidelines.extract import find_sizes
from assistant.llm.client import ChatMessage, ChatModel, GenerationOptions, Role, complete
from assistant.modes.answer import Answer, Turn, validate_question
from assistant.modes.grounded import GroundedService
from assistant.modes.sources import GuidelineLibrary, citation, resolve_citations
from assistant.store.audit import AuditLog, AuditRecord
from prompts import load_template, render

logger = logging.getLogger(__name__)

# Calculator name → knowledge-base guideline id (the prefix of its section ids).
GUIDELINE_IDS: Mapping[str, str] = {
    "fleischner": "fleischner-2017",
    "lungrads": "lung-rads-2022",
    "tirads": "ti-rads-2017",
    "bosniak": "bosniak-2019",
    "birads": "bi-rads-5",
    "lirads": "li-rads-2018",
    "adrenal": "acr-adrenal-2017",
    "renal": "acr-renal-2018",
}
# Sections that state who a guideline is for: cited when a calculator refuses a patient as out of scope.
SCOPE_SECTIONS: Mapping[str, str] = {
    "fleischner": "fleischner-2017/scope",
    "lungrads": "lung-rads-2022/overview",
    "adrenal": "acr-adrenal-2017/scope",
    "lirads": "li-rads-2018/population",
}
# A question that asks about the guideline itself rather than describing a finding.
_KNOWLEDGE = re.compile(
    r"^\s*(?:what|how|when|which|why|who|define|explain|describe|list|summari[sz]e|is there|are there|does|do|can)\b"
    r"|[,;:]\s*(?:what|how|when|which|why)\b"
    r"|\b(?:mean|means|meaning|definition|defined?|criteria|counts? as|apply to|differ)\b"
)
# Words that carry no parameter value (or only name a guideline or a feature): never evidence for a value.
_GENERIC = frozenset(
    """a an and are as at be by can could do does for from has have how i in is it its me my of on or per please
    should so than that the their them there this to up was what when where which who why will with would you your
    follow next step steps management manage recommend recommended recommendation recommendations guideline
    guidelines category class classification score patient patients finding findings nodule nodules mass masses
    lesion lesions observation incidental seen shows showing noted measuring measures measured size sized about
    ct mri scan study exam imaging there
    fleischner lung-rads lungrads ti-rads tirads bosniak bi-rads birads li-rads lirads acr thyroid lung lungs
    pulmonary breast liver hepatic renal kidney adrenal mammo mammogram ultrasound
    margin margins shape composition echogenicity foci wall walls septa septum septation septations component
    enhancement attenuation density features feature type size diameter axis""".split()
)
_WORD = re.compile(r"[a-z][a-z'/-]*[a-z]|[a-z]")
_NUM = re.compile(r"\d+(?:\.\d+)?")
_MARKERS = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
# Category mentions per calculator: any one found in a phrasing must equal the computed category.
_CATEGORY_MENTIONS: Mapping[str, tuple[re.Pattern[str], str]] = {
    "lungrads": (re.compile(r"(?:lung[\s-]?rads|category|cat\.)\s*(?:category\s*)?(4x|[0-4][ab]?)\b", re.I), ""),
    "tirads": (re.compile(r"\b(?:tr|ti[\s-]?rads)\s*-?\s*([1-5])\b", re.I), "TR"),
    "birads": (re.compile(r"(?:bi[\s-]?rads|category)\s*(?:category\s*)?([0-6][abc]?)\b", re.I), ""),
    "lirads": (re.compile(r"\blr\s*-?\s*(tiv|nc|m|[1-5])\b", re.I), "LR-"),
    "bosniak": (re.compile(r"(?:bosniak|class|category)\s*(?:class\s*)?(iif|iv|iii|ii|i)\b", re.I), ""),
}
_NEGATION = re.compile(r"\b(?:no|not|without|none|never|neither|nor)\b", re.I)
_RISK = re.compile(r"\b(low|high)[\s-]risk\b", re.I)


@dataclass(frozen=True)
class Phrasing:
    """The final text of a computed result and whether the model's phrasing survived the check."""

    text: str
    source: str  # "model" or "template"
    problems: tuple[str, ...] = ()


@dataclass
class _Trace:
    """What the audit row of one answer records (mutable while the answer is built; no text in it)."""

    template: str
    outcome: str = "ok"
    chunk_ids: tuple[str, ...] = ()
    chars: int = 0


@dataclass(frozen=True)
class Resolution:
    """Parameters the model decided for the parser, each with the words of the question it pointed at."""

    params: Mapping[str, Any] = field(default_factory=dict)
    evidence: Mapping[str, str] = field(default_factory=dict)
    rejected: tuple[str, ...] = ()


def plain(value: Any) -> Any:
    """JSON-ready copy of a parameter value (enums as values, tuples as lists)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


_GAP_QUESTIONS: Mapping[str, str] = {
    "size_mm": "What is the size (mm)?",
    "size_cm": "What is the size (cm)?",
    "category": "Which BI-RADS assessment category (0-6, 4A, 4B, 4C)?",
    "modality": "Was it CT or MRI?",
}


def required_gaps(name: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(parameter, question) for arguments the calculator requires that the parser did not find.

    The parser's own ask-back covers parameters the calculator asks for itself; this covers required
    arguments without a default (e.g. LI-RADS size and APHE), which otherwise fail as a bare TypeError.
    """
    signature = inspect.signature(CALCULATORS[name])
    absent = [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty and p.name not in params and p.kind is not p.VAR_KEYWORD
    ]
    if not absent:
        return []
    asked: dict[str, str] = {}
    try:
        calculate(name, **{**params, **dict.fromkeys(absent)})
    except MissingParameterError as exc:
        asked[exc.parameter] = exc.question
    except CalculatorInputError:
        pass
    return [(p, asked.get(p) or _GAP_QUESTIONS.get(p) or f"What is the {p.replace('_', ' ')}?") for p in absent]


# A finding described with an article ("a 7 mm nodule", "an observation") is a case, not a knowledge question.
_CASE = re.compile(
    r"\b(?:a|an|this|his|her)\s+(?:[\w-]+\s+){0,4}?(?:nodule|cyst|mass|lesion|observation|opacity|ggn|ggo)s?\b"
)


def is_knowledge_question(question: str, extraction: Extraction) -> bool:
    """True when the question asks about a guideline rather than describing a finding to classify."""
    if extraction.calculator is None:
        return True
    low = question.lower()
    if find_sizes(low) or re.search(r"\d+\s*(?:hu\b|mm3|%)", low):
        return False
    # Values the parser sets whatever the question says (a default modality, count or exam) are no finding.
    findings = {k for k, v in extraction.params.items() if v is not False and k not in ("modality", "count", "exam")}
    if extraction.complete and not required_gaps(extraction.calculator, extraction.params) and findings:
        return False
    if findings and _CASE.search(low):
        return False  # "what is the category for a new solid nodule?": a case with inputs missing, asked back
    if _KNOWLEDGE.search(low):
        return True
    # "a thyroid nodule" names a case; a question with no measurement and no finding is about the guideline
    # ("lipid-rich adenoma threshold?", "with multiple nodules, which one drives management?").
    return not findings and not _CASE.search(low) or (not findings and low.rstrip().endswith("?"))


# A category as users write it, per calculator: the question "what does BI-RADS 5 mean?" is answered from the
# knowledge-base section of that category, never from a calculator asking for findings.
_CATEGORY_TOPIC: Mapping[str, re.Pattern[str]] = {
    "lungrads": re.compile(r"(?:lung[\s-]?rads|category|cat\.?)\s*(?:category\s*)?(4x|4a|4b|[0-4])(?![\w.])", re.I),
    "birads": re.compile(r"(?:bi[\s-]?rads|birads|category|cat\.?)\s*(?:category\s*)?(4a|4b|4c|[0-6])(?![\w.])", re.I),
    "tirads": re.compile(r"\b(?:tr|ti[\s-]?rads)\s*-?\s*([1-5])(?![\w.])", re.I),
    "bosniak": re.compile(r"(?:bosniak|class|category)\s*(?:class\s*)?(iif|iv|iii|ii|i)\b", re.I),
    "lirads": re.compile(r"\blr\s*-?\s*(tiv|m|[1-5])\b", re.I),
}
# Words that describe a finding's behaviour: "Lung-RADS 4A nodule stable at 3 months" is a case, not a concept.
_CASE_WORDS = re.compile(
    r"\b(?:stable|unchanged|grow\w*|grew|enlarg\w*|new|newly|persist\w*|proven|decreas\w*|smaller|resolved"
    r"|measur\w*|\d+\s*(?:mm|cm|hu|%))\b",
    re.I,
)


def topic_section(calculator: str, question: str) -> str | None:
    """The section id of the one category a question names ('Bosniak IIF' -> bosniak-2019/class-iif), if any."""
    pattern = _CATEGORY_TOPIC.get(calculator)
    if pattern is None:
        return None
    found = {m.group(1).lower() for m in pattern.finditer(question)}
    if len(found) != 1:
        return None  # none, or several ("can LR-4 become LR-5?"): a general question for retrieval
    (value,) = found
    slug = {
        "lungrads": f"category-{value}",
        "birads": f"category-{value}",
        "tirads": f"tr{value}",
        "bosniak": f"class-{value}",
        "lirads": f"lr-{value}",
    }[calculator]
    return f"{GUIDELINE_IDS[calculator]}/{slug}"


def is_category_question(question: str, extraction: Extraction) -> bool:
    """True when the question asks about a named category and describes no finding of its own."""
    name = extraction.calculator
    if name is None or topic_section(name, question) is None:
        return False
    low = question.lower()
    if find_sizes(low) or _CASE_WORDS.search(low):
        return False
    defaults = ("modality", "count", "exam", "category", "prior_category")
    return not {k for k, v in extraction.params.items() if v is not False and k not in defaults}


# Two-part questions: "category now, and if it is unchanged at the 3-month scan?"
_STABLE_LATER = re.compile(
    r"\bif\b[^?.;]{0,40}?\b(?:unchanged|stable|persists?|persistent|the same|no change|doesn'?t change"
    r"|does not change)\b",
    re.I,
)
_SECOND_PART = re.compile(
    r"\b(?:and|what|then)\b[^?.;]{0,20}\bif\b[^?.;]{0,80}\b(?:next|later|follow[\s-]?up|subsequent|\d+[\s-]?months?)\b"
    r"|\b(?:at baseline|then)\b[^?]{0,40}\band now\b",
    re.I,
)


def follow_up_scenario(
    name: str, question: str, params: Mapping[str, Any], result: GuidelineResult
) -> tuple[str, GuidelineResult] | None:
    """The second half of "category now, and if it persists at follow-up?" for Lung-RADS, computed by code."""
    if name != "lungrads" or not _STABLE_LATER.search(question):
        return None
    if params.get("exam", "baseline") != "baseline" and "status" in params:
        return None  # already a follow-up question
    if "airway" in params:
        if params.get("airway_persistent_at_3_months"):
            return None
        then_params = {**params, "airway_persistent_at_3_months": True}
        label = "if it persists at the 3-month LDCT"
    else:
        then_params = {
            k: v
            for k, v in params.items()
            if k
            in (
                "nodule_type",
                "mean_diameter_mm",
                "long_axis_mm",
                "short_axis_mm",
                "solid_component_mm",
                "juxtapleural_benign_morphology",
                "s_modifier",
                "cyst",
            )  # fmt: skip
        }
        then_params.update(exam="follow_up", status="stable", prior_category=result.category)
        if "cyst" in then_params:
            then_params.pop("status")
            then_params["cyst_change"] = "stable"
        if "solid_component_mm" in then_params:
            then_params["solid_component_change"] = "stable"
        label = "if it is unchanged at the follow-up LDCT"
    try:
        return label, calculate(name, **then_params)
    except CalculatorInputError as exc:
        logger.info("follow-up scenario not computed: %s", type(exc).__name__)
        return None


# ---------------------------------------------------------------- the model, for what the parser cannot decide


def choices(calculator: str, parameter: str) -> tuple[str, ...]:
    """The values the model may choose for ``parameter`` (from the calculator's type hints); () = not for it."""
    hints = typing.get_type_hints(CALCULATORS[calculator])
    hint = hints.get(parameter)
    if hint is None:
        return ()
    if hint is bool:
        return ("yes", "no")
    for arg in typing.get_args(hint) or (hint,):
        if isinstance(arg, type) and issubclass(arg, Enum):
            return tuple(str(m.value) for m in arg)
    return ()  # numbers and free strings are never taken from the model


def extraction_schema(calculator: str, parameters: Sequence[str]) -> dict[str, Any]:
    """The JSON schema sent as ``response_format``: per parameter a value (or "unknown") and its evidence."""
    properties = {
        name: {
            "type": "object",
            "properties": {
                "value": {"type": "string", "enum": [*choices(calculator, name), "unknown"]},
                "evidence": {"type": "string", "maxLength": 80},
            },
            "required": ["value", "evidence"],
            "additionalProperties": False,
        }
        for name in parameters
    }
    return {"type": "object", "properties": properties, "required": list(parameters), "additionalProperties": False}


def unused_words(question: str) -> set[str]:
    """Words of the question the parser does not rely on: removing one changes neither calculator nor params."""
    low = question.lower()
    base = extract_parameters(low)
    unused: set[str] = set()
    for match in _WORD.finditer(low):
        word = match.group(0)
        if len(word) < 3 or word in _GENERIC or word in unused:
            continue
        blanked = low[: match.start()] + " " * len(word) + low[match.end() :]
        trial = extract_parameters(blanked)
        if trial.calculator == base.calculator and dict(trial.params) == dict(base.params):
            unused.add(word)
    return unused


def _accept(question: str, value: str, evidence: str, allowed: tuple[str, ...], unused: set[str]) -> str | None:
    """Why the model's choice is refused, or None when it stands."""
    if value not in allowed:
        return "not an allowed value"
    quote = " ".join(evidence.lower().split())
    if len(quote) < 3 or quote not in " ".join(question.lower().split()):
        return "evidence is not words of the question"
    if not {w for w in _WORD.findall(quote)} & unused:
        return "evidence only repeats words the parser already read"
    return None


def resolve_with_model(
    model: ChatModel, question: str, extraction: Extraction, options: GenerationOptions
) -> Resolution:
    """Ask the model (structured output) for the enumerated parameters the parser left missing."""
    name = extraction.calculator
    if name is None:
        return Resolution()
    wanted = [p for p in extraction.missing if choices(name, p)]
    if not wanted:
        return Resolution()
    unused = unused_words(question)
    if not unused:
        return Resolution(rejected=tuple(wanted))  # every word is already read: nothing left for the model
    template = load_template("guideline_extract")
    prompt = render(
        template,
        {
            "calculator": name,
            "parameters": "; ".join(f"{p} (one of: {', '.join(choices(name, p))})" for p in wanted),
            "question": question,
        },
    )
    schema = extraction_schema(name, wanted)
    opts = GenerationOptions(
        max_tokens=min(options.max_tokens, 256),
        temperature=0.0,
        response_format={"type": "json_schema", "json_schema": {"name": "guideline_parameters", "schema": schema}},
    )
    raw = complete(model, [ChatMessage(Role.USER, prompt)], opts)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        logger.warning("parameter resolution: the model's output is not JSON (%d chars); ignored", len(raw))
        return Resolution(rejected=tuple(wanted))
    params: dict[str, Any] = {}
    evidence: dict[str, str] = {}
    rejected: list[str] = []
    for parameter in wanted:
        item = data.get(parameter) if isinstance(data, dict) else None
        if not isinstance(item, dict) or item.get("value") in (None, "unknown"):
            continue
        value, quote = str(item.get("value")), str(item.get("evidence", ""))
        refusal = _accept(question, value, quote, choices(name, parameter), unused)
        if refusal is not None:
            logger.info("parameter resolution: %s refused (%s)", parameter, refusal)
            rejected.append(parameter)
            continue
        params[parameter] = {"yes": True, "no": False}[value] if choices(name, parameter) == ("yes", "no") else value
        evidence[parameter] = " ".join(quote.split())
    return Resolution(params, evidence, tuple(rejected))


# ---------------------------------------------------------------- checking the model's phrasing


def _numbers(text: str) -> set[str]:
    return {f"{float(n):g}" for n in _NUM.findall(_MARKERS.sub(" ", text))}


_RANGE_OR_NUM = re.compile(r"(\d+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(\d+(?:\.\d+)?))?")


def number_sequence(text: str) -> list[str]:
    """Numbers and ranges in reading order: '3-6 months, then 18 to 24' -> ['3-6', '18-24']."""
    out: list[str] = []
    for m in _RANGE_OR_NUM.finditer(_MARKERS.sub(" ", text)):
        a, b = m.group(1), m.group(2)
        out.append(f"{float(a):g}-{float(b):g}" if b else f"{float(a):g}")
    return out


def _in_order(needed: Sequence[str], found: Sequence[str]) -> bool:
    it = iter(found)
    return all(any(item == f for f in it) for item in needed)


# The guideline's name as a phrasing must say it.
_GUIDELINE_NAME: Mapping[str, re.Pattern[str]] = {
    "fleischner": re.compile(r"fleischner", re.I),
    "lungrads": re.compile(r"lung[\s-]?rads", re.I),
    "tirads": re.compile(r"ti[\s-]?rads", re.I),
    "bosniak": re.compile(r"bosniak", re.I),
    "birads": re.compile(r"bi[\s-]?rads", re.I),
    "lirads": re.compile(r"li[\s-]?rads", re.I),
    "adrenal": re.compile(r"\bacr\b.*adrenal|adrenal.*\bacr\b", re.I | re.S),
    "renal": re.compile(r"\bacr\b", re.I),
}


def _category_words(category: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z-]+", category.lower()) if len(w) >= 4}


def check_phrasing(text: str, result: GuidelineResult, facts: str) -> tuple[str, ...]:
    """Problems of ``text`` against the calculator output (empty: every number and category matches)."""
    problems: list[str] = []
    if not text.strip():
        return ("empty",)
    allowed = _numbers(facts)
    extra = sorted(_numbers(text) - allowed, key=float)
    if extra:
        problems.append(f"numbers not in the result: {', '.join(extra)}")
    recommendation = result.recommendation.split(" [UNVERIFIED")[0]
    lost = sorted(_numbers(recommendation) - _numbers(text), key=float)
    if lost:
        problems.append(f"numbers of the recommendation missing: {', '.join(lost)}")
    elif not _in_order(number_sequence(recommendation), number_sequence(text)):
        # "3-6 months" shortened to "3 months", or the intervals swapped: every range kept whole, in order.
        problems.append("ranges or order of the recommendation's numbers changed")
    name = _GUIDELINE_NAME.get(result.calculator)
    if name is not None and not name.search(text):
        problems.append("guideline not named")
    mention = _CATEGORY_MENTIONS.get(result.calculator)
    low = text.lower()
    if mention is not None:
        pattern, prefix = mention
        found = [prefix + m.group(1).upper() for m in pattern.finditer(text)]
        wrong = sorted({f for f in found if f.upper() != result.category.upper()})
        if wrong:
            problems.append(f"other categories named: {', '.join(wrong)}")
        if result.category.upper() not in {f.upper() for f in found}:
            problems.append(f"category {result.category} not named")
    else:
        absent = sorted(w for w in _category_words(result.category) if w not in low)
        if absent:
            problems.append(f"category words missing: {', '.join(absent)}")
    risk = result.inputs.get("risk")
    if risk is not None:
        named = {m.group(1).lower() for m in _RISK.finditer(text)}
        if named - {plain(risk)}:
            problems.append("wrong risk level named")
    if _NEGATION.search(text) and not _NEGATION.search(facts):
        problems.append("adds a negation")
    if _NEGATION.search(recommendation) and not _NEGATION.search(text):
        problems.append("drops a negation")
    return tuple(problems)


# ---------------------------------------------------------------- the service


class GuidelineService:
    """Guideline mode over a model, the guideline library and (for non-calculator questions) grounded answers."""

    def __init__(
        self,
        model: ChatModel,
        options: GenerationOptions,
        library: GuidelineLibrary,
        audit: AuditLog | None = None,
        *,
        phrase: bool = True,
        resolve: bool = True,
        related: int = 2,
    ) -> None:
        if related < 0:
            raise ValueError(f"related must not be negative, got {related}")
        self.model = model
        self.options = options
        self.library = library
        self.audit = audit
        self.phrase = phrase
        self.resolve = resolve
        self.related = related
        self.grounded = GroundedService(model, options, library, None, None)
        self.answer_template = load_template("guideline_answer")
        self.phrase_template = load_template("guideline_phrase")

    # -- steps

    def extract(self, question: str, history: Sequence[Turn] = ()) -> tuple[str, Extraction]:
        """The text to read and its extraction; an answer to an ask-back is read together with the question."""
        extraction = extract_parameters(question)
        if history and not extraction.complete:
            combined = f"{history[-1].question.strip()}. {question}"
            joined = extract_parameters(combined)
            if joined.calculator is not None and (
                joined.complete or extraction.calculator is None or len(joined.missing) < len(extraction.missing)
            ):
                return combined, joined
        return question, extraction

    def citations_for(self, result_section: str, calculator: str, question: str) -> list[retrieval.Hit]:
        """The computed section first, then related sections of the same guideline found by search."""
        hits = self.library.section_hits(result_section)
        if self.related:
            seen = {h.id for h in hits}
            for hit in self.library.search(question, self.related + len(hits), guideline=GUIDELINE_IDS[calculator]):
                if hit.id not in seen and len(hits) < 1 + self.related:
                    hits.append(hit)
                    seen.add(hit.id)
        return hits

    def template_text(self, result: GuidelineResult) -> str:
        """The exact answer, straight from the calculator's output."""
        inputs = ", ".join(f"{k}={_fmt(plain(v))}" for k, v in result.inputs.items() if v not in (None, False, ()))
        risk = f"\nMalignancy risk: {result.malignancy_risk}." if result.malignancy_risk else ""
        return render(
            self.answer_template,
            {
                "guideline": result.guideline,
                "version": result.version,
                "category": result.category,
                "recommendation": result.recommendation,
                "risk_line": risk,
                "inputs": inputs or "none",
            },
        )

    def phrasing(self, question: str, result: GuidelineResult) -> Phrasing:
        """The model's phrasing when it passes the check, else the template text."""
        facts = self.template_text(result)
        if not self.phrase:
            return Phrasing(facts, "template")
        messages = [
            ChatMessage(Role.SYSTEM, render(self.phrase_template, {"result": _MARKERS.sub("", facts).strip()})),
            ChatMessage(Role.USER, question),
        ]
        opts = GenerationOptions(max_tokens=min(self.options.max_tokens, 200), temperature=0.0)
        try:
            raw = complete(self.model, messages, opts)
        except LLMUnavailableError as exc:
            logger.warning("guideline phrasing skipped, the model is unavailable (%s)", type(exc).__name__)
            return Phrasing(facts, "template", ("model unavailable",))
        text, _ = resolve_citations(raw, 1)
        problems = check_phrasing(text, result, facts)
        if problems:
            return Phrasing(facts, "template", problems)
        if "[1]" not in text:
            text += " [1]"
        return Phrasing(text, "model")

    # -- the whole answer

    def answer(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """A guideline answer: computed, asked back, refused with the reason, or retrieved with citations."""
        question = validate_question(question)
        started = time.monotonic()
        record = _Trace(self.answer_template.ref)
        try:
            answer = self._answer(question, history, record)
            record.chunk_ids = tuple(str(c["id"]) for c in answer.citations)
            record.chars = len(answer.text)
            return answer
        except BaseException as exc:
            record.outcome = type(exc).__name__
            raise
        finally:
            latency = time.monotonic() - started
            logger.info("guideline answer: %s, %d sources in %.2f s", record.outcome, len(record.chunk_ids), latency)
            if self.audit is not None:
                self.audit.record(
                    AuditRecord(
                        mode="guideline",
                        template=record.template,
                        model=self.model.model_id,
                        chunk_ids=record.chunk_ids,
                        latency_ms=int(latency * 1000),
                        output_chars=record.chars,
                        outcome=record.outcome,
                    )
                )

    def _answer(self, question: str, history: Sequence[Turn], record: _Trace) -> Answer:
        started = time.monotonic()
        text, extraction = self.extract(question, history)
        name = extraction.calculator
        if name is not None and is_category_question(question, extraction):
            section = topic_section(name, question)
            assert section is not None  # is_category_question checked it
            return self._extractive(name, self.library.section_hits(section), record, started)
        if name is None or is_knowledge_question(text, extraction):
            return self._from_retrieval(question, extraction, history, record, started)
        params = dict(extraction.params)
        inferred: dict[str, Any] = {}
        if extraction.missing and self.resolve:
            resolution = resolve_with_model(self.model, text, extraction, self.options)
            params.update(resolution.params)
            inferred = {
                k: {"value": plain(v), "evidence": resolution.evidence[k]} for k, v in resolution.params.items()
            }
        tool: dict[str, Any] = {"calculator": name, "inputs": plain(params), "output": None}
        if inferred:
            tool["inferred_by_model"] = inferred
        gaps = required_gaps(name, params)
        if gaps:
            return self._ask_back(name, gaps, tool, record, started)
        # Inputs the parser asks for although the calculator has a default (e.g. echogenic foci): asked, not assumed.
        still = [(p, q) for p, q in zip(extraction.missing, extraction.questions, strict=False) if p not in params]
        if still:
            return self._ask_back(name, still, tool, record, started)
        try:
            result = calculate(name, **params)
        except MissingParameterError as exc:
            pairs = [(p, q) for p, q in zip(extraction.missing, extraction.questions, strict=False) if p not in params]
            return self._ask_back(name, pairs or [(exc.parameter, exc.question)], tool, record, started)
        except NotApplicableError as exc:
            return self._not_applicable(name, text, exc, tool, record, started)
        except CalculatorInputError as exc:
            tool["output"] = {"error": str(exc)}
            record.outcome = "input_error"
            return self._answer_of(f"I cannot apply the guideline to these inputs: {exc}", [], tool, started)
        tool["inputs"] = plain(result.to_dict()["inputs"])
        tool["output"] = result.to_dict()
        hits = self.citations_for(result.section_id, name, text)
        phrasing = self.phrasing(question, result)
        lines = [phrasing.text]
        tools = [tool]
        scenario = follow_up_scenario(name, question, params, result)
        if scenario is not None:
            label, then = scenario
            tools.append({"calculator": name, "scenario": label, "inputs": plain(then.to_dict()["inputs"]),
                          "output": then.to_dict()})  # fmt: skip
            lines.append(f"{label[:1].upper()}{label[1:]}: {then.guideline} {then.category}. {then.recommendation}")
        elif _SECOND_PART.search(question):
            lines.append(
                "The second part of your question (a different finding on a later scan) is not computed here: "
                "ask it as its own question with that scan's findings."
            )
        lines += [f"Note: {note}" for note in result.notes]
        # How the question was read (comparators, contradictions, defaults) is shown, never silent.
        lines += [f"Read from your question: {note}" for note in extraction.notes]
        lines += [
            f"Read from your words “{v['evidence']}”: {k} = {v['value']} (please confirm)." for k, v in inferred.items()
        ]
        record.template = self.phrase_template.ref if phrasing.source == "model" else self.answer_template.ref
        extra = {"phrasing": phrasing.source, "phrasing_problems": list(phrasing.problems)}
        answer = self._answer_of("\n".join(lines), hits, tool, started, extra)
        if len(tools) > 1:
            answer = dataclasses.replace(answer, extra={**answer.extra, "tool_results": tools})
        return answer

    def _ask_back(
        self, name: str, pairs: Sequence[tuple[str, str]], tool: dict[str, Any], record: _Trace,
        started: float,
    ) -> Answer:  # fmt: skip
        missing = [p for p, _ in pairs]
        questions = [q for _, q in pairs]
        tool["output"] = {"missing": missing, "questions": questions}
        template = load_template("ask_back")
        record.template, record.outcome = template.ref, "ask_back"
        guideline = _short_name(self.library, name)
        text = render(template, {"guideline": guideline, "questions": "\n".join(f"- {q}" for q in questions)})
        return self._answer_of(text, [], tool, started, {"missing": missing})

    def _not_applicable(
        self, name: str, text: str, exc: NotApplicableError, tool: dict[str, Any], record: _Trace,
        started: float,
    ) -> Answer:  # fmt: skip
        tool["output"] = {"not_applicable": True, "reason": exc.reason, "suggestion": exc.suggestion}
        record.outcome = "not_applicable"
        scope = SCOPE_SECTIONS.get(name)
        hits = (
            self.library.section_hits(scope) if scope else self.library.search(text, 1, guideline=GUIDELINE_IDS[name])
        )
        guideline = _short_name(self.library, name)
        # "see <section id>" suggestions are the citation itself; others ("use Lung-RADS ...") are said.
        suggestion = "" if exc.suggestion.startswith("see ") else exc.suggestion
        answer = f"{guideline} does not apply: {exc.reason}." + (
            f" {suggestion[:1].upper()}{suggestion[1:]}." if suggestion else ""
        )
        return self._answer_of(answer + (" [1]" if hits else ""), hits, tool, started)

    def _extractive(self, name: str, hits: Sequence[retrieval.Hit], record: _Trace, started: float) -> Answer:
        """A question about a guideline answered with the cited section's own text (no paraphrase)."""
        record.template, record.outcome = "extractive", "extractive"
        if not hits:
            record.outcome = "no_source"
            return self._answer_of("No source: the knowledge base has no section for this.", [], None, started)
        first = hits[0]
        section_text = " ".join(h.text.strip() for h in hits if h.section == first.section)
        lines = [f"{_short_name(self.library, name)}, {first.title}: {' '.join(section_text.split())} [1]"]
        related = [h for h in hits if h.section != first.section]
        seen: set[str] = set()
        cited = [first]
        for hit in related:
            if hit.section not in seen:
                seen.add(hit.section)
                cited.append(hit)
                lines.append(f"See also: {hit.title} [{len(cited)}]")
        return self._answer_of("\n".join(lines), cited, None, started, {"extractive": True})

    def _from_retrieval(
        self, question: str, extraction: Extraction, history: Sequence[Turn], record: _Trace,
        started: float,
    ) -> Answer:  # fmt: skip
        hits: list[retrieval.Hit] = []
        if extraction.calculator is not None:
            hits = self.library.search(question, 3, guideline=GUIDELINE_IDS[extraction.calculator])
            # A question about a known guideline is answered from its best section's own words: a small
            # model's paraphrase once invented a meaning while the knowledge base held the right text.
            return self._extractive(extraction.calculator, hits, record, started)
        hits = hits or self.library.search(question, 3)
        reply = self.grounded.reply(question, hits, history, corpus="guideline knowledge base")
        record.template, record.outcome = reply.template, reply.outcome
        return self._answer_of(reply.text, hits, None, started, {"cited": list(reply.cited)})

    def _answer_of(
        self,
        text: str,
        hits: Sequence[retrieval.Hit],
        tool: dict[str, Any] | None,
        started: float,
        extra: dict[str, Any] | None = None,
    ) -> Answer:
        return Answer(
            text=text.strip(),
            model=self.model.model_id,
            citations=tuple(citation(h) for h in hits),
            latency_s=time.monotonic() - started,
            extra={"mode": "guideline", "tool_results": [tool] if tool else [], **(extra or {})},
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "+".join(_fmt(v) for v in value)
    return str(value)


def _short_name(library: GuidelineLibrary, name: str) -> str:
    """'Fleischner 2017' for 'fleischner': the knowledge base's short name of the calculator's guideline."""
    for guideline in library.kb.guidelines:
        if guideline.id == GUIDELINE_IDS[name]:
            return guideline.short_name
    return name
