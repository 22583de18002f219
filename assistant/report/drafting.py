"""Report drafting in dialogue: dictation into subsections, drafted impression, cited recommendations, priors,
edits by dialogue, undo.

Where the code decides and where the model does:

* Placement of a dictated sentence is deterministic when it is reliable (an explicit label such as ``Lungs:``, a
  section cue such as "history of" or "recommend", or one findings subsection whose keywords clearly win). Only
  the rest goes to the language model, which must answer through vLLM structured output (a JSON schema whose
  ``enum`` is the template's slots), so it can only name a slot, never rewrite the radiologist's words.
* The impression is drafted by code from the positive findings (never by the model): a 135M model invents.
* Recommendations come only from the guideline calculators; their text is the calculator's text, cited.
* "Make impression 2 more concise" asks the model, and its answer is accepted only when every number, side and
  negation is kept; otherwise a deterministic condensation is used.

A dictation is written to the dialogue before the model is asked, and the draft moves only from one complete
version to the next: when the engine dies half way, nothing of the draft or its history is lost.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from assistant.errors import LLMUnavailableError, RadassistError
from assistant.guidelines import (
    CalculatorInputError,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    calculate,
    extract_parameters,
)
from assistant.guidelines.extract import find_sizes
from assistant.llm.client import ChatMessage, ChatModel, GenerationOptions, Role
from assistant.report.draft import (
    Change,
    Origin,
    PriorRef,
    Report,
    ReportError,
    ReportTemplate,
    Section,
    Statement,
    StudyRef,
    Version,
    choose_template,
    create_report,
    diff_reports,
    load_template,
    undo_target,
)
from assistant.report.store import MessageStatus, ReportStore
from assistant.store.audit import AuditLog, AuditRecord
from prompts import PromptTemplate, render
from prompts import load_template as load_prompt
from retrieval.reports import PriorReport

logger = logging.getLogger(__name__)

MAX_DICTATION_CHARS = 8000


class PlacementError(RadassistError):
    """The model's answer could not be used to place a sentence."""


# ================================================================================================ splitting

_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|a\.m|p\.m|approx|vs|dr|etc|cf)\.", re.I)
_SENTENCE_END = re.compile(r"(?<!\d)\.(?!\d)|[!?\n;]+")
_LIST_NUMBER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+")
_STANDALONE_START = re.compile(
    r"^(?:no|not|there|the|a|an|\d|mild\w*|moderate\w*|small|large|normal|stable|new|unchanged|trace|minimal"
    r"|heart|lungs?|liver|kidneys?|spleen|bones?|status|s/p|right|left|bilateral|both)\b",
    re.I,
)
_CONNECTOR_START = re.compile(r"^(?:or|and|with|without|measuring|which|that|likely|probably|possibly)\b", re.I)


def _protect(text: str) -> str:
    return _ABBREVIATIONS.sub(lambda m: m.group(0)[:-1] + "\x00", text)


def _sentences(text: str) -> list[str]:
    pieces = _SENTENCE_END.split(_protect(text))
    out = []
    for piece in pieces:
        piece = _LIST_NUMBER.sub("", piece.replace("\x00", ".")).strip(" ,")
        if piece:
            out.append(piece)
    return out


def tidy(text: str) -> str:
    """One sentence as it goes into the report: capitalised, single spaces, final full stop."""
    text = re.sub(r"\s+", " ", text).strip().rstrip(",;:")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# ================================================================================================ placement


@dataclass(frozen=True)
class Clause:
    """One piece of a dictation and where it goes (``slot`` None: the model must decide)."""

    text: str
    slot: str | None
    method: str  # "label", "cue", "keywords", "model", "unresolved"
    candidates: tuple[str, ...] = ()  # tied findings slots when unresolved


_SECTION_LABELS: dict[str, str] = {
    "indication": "indication", "clinical indication": "indication", "history": "indication",
    "clinical history": "indication", "clinical information": "indication", "reason for exam": "indication",
    "reason for study": "indication", "technique": "technique", "procedure": "technique",
    "comparison": "comparison", "comparisons": "comparison", "impression": "impression",
    "impressions": "impression", "conclusion": "impression", "conclusions": "impression",
    "recommendation": "recommendations", "recommendations": "recommendations", "findings": "findings",
}  # fmt: skip

# Section cues, checked in this order; the first that matches decides (findings keywords come after).
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "technique",
        re.compile(
            r"\bviews?\b|\bprojections?\b|\bwith(?:out)? (?:iv |intravenous |oral )?contrast\b|\bnon-?contrast\b"
            r"|\bcontrast[- ]enhanced\b|\bpre- and post-?contrast\b|\bsequences?\b|\breformat\w*|\bmultiplanar\b"
            r"|\blow[- ]dose\b|\bdlp\b|\bctdi\w*|\bmgy\b|\bmlo\b|\btomosynthesis\b|\bgr[ae]y-?scale\b"
            r"|\b(?:axial|coronal|sagittal) (?:images|imaging|acquisition|sections|slices)\b"
            r"|\bimages (?:were )?(?:obtained|acquired)\b|\bprotocol\b|\bcolor doppler (?:images|evaluation)\b",
            re.I,
        ),
    ),
    (
        "indication",
        re.compile(
            r"\bhistory of\b|\bhx\b|\bh/o\b|\brule out\b|\br/o\b|\bevaluat(?:e|ion) (?:of|for)\b"
            r"|\bassess(?:ment)? for\b"
            r"|\bpresent(?:s|ing)? with\b|\bcomplain\w* of\b|\bsmok\w*|\bpack[- ]?years?\b|\bscreening\b"
            r"|\b(?:cough|fever|dyspnea|shortness of breath|chest pain|abdominal pain|flank pain|headache|trauma"
            r"|weight loss|hematuria|seizure|syncope|dizziness|hypoxia|palpable|tachycardia|vomiting)\b"
            r"|\b\d{1,3}[- ]?(?:year[- ]old|yo|y/o)\b|\bpre-?op\w*\b|\bpain\w*\b|\bevaluat\w*|\bf/u\b|\bwork-?up\b"
            r"|\bcomplaints?\b",
            re.I,
        ),
    ),
    (
        "recommendations",
        re.compile(
            r"\brecommend\w*|\bsuggest\w* (?:follow|correlation|further|clinical|ct|mri|ultrasound|biopsy)"
            r"|\bfollow[- ]?up (?:ct|mri|imaging|ultrasound|radiograph|chest|in \d)|\bclinical correlation\b"
            r"|\bconsider (?:ct|mri|pet|biopsy|fna|tissue sampling|ultrasound|further)\b"
            r"|\b(?:biopsy|fna) (?:is )?(?:recommended|advised|suggested)\b",
            re.I,
        ),
    ),
    (
        "impression",
        re.compile(
            r"^no acute (?:[\w-]+ ){0,2}(?:abnormality|process|findings?|disease|pathology)\b"
            r"|^(?:normal|negative|unremarkable) (?:study|exam\w*|chest radiograph|chest x-?ray|radiograph|ct|mri"
            r"|mammogram|ultrasound|thyroid ultrasound)\b|\bbi-?rads\b|^overall\b|^in summary\b",
            re.I,
        ),
    ),
)
# Clinical history that names a disease rather than a finding: indication only when no organ keyword matches.
_HISTORY = re.compile(
    r"\b(?:cancer|carcinoma|ca|malignan\w*|lymphoma|leukemia|aml|cll|myeloma|tuberculosis|tb|ppd|hypertension|htn"
    r"|diabetes|dm|obesity|asymptomatic|dizz\w*|lightheaded|night ?sweats|altered mental status|unresponsive"
    r"|weakness|assault|mva|mvc|motor vehicle|transplant|chemotherapy|diagnosis|post-?op\w*|requirement|hiv"
    r"|sickle cell|copd exacerbation|chf|renal failure|esrd|dialysis|sepsis|pre-?employment|immigration)\b",
    re.I,
)
_COMPARISON = re.compile(
    r"^(?:compar\w*|prior|previous)\b|\bcompar\w* (?:is made )?(?:with|to)\b|\bno (?:prior|previous|comparison)"
    r"(?: studies| study| exams?| imaging)?(?: available)?\b|\bnone available\b",
    re.I,
)


@dataclass(frozen=True)
class _Matcher:
    patterns: tuple[tuple[str, re.Pattern[str]], ...]  # (slot, pattern)
    labels: Mapping[str, str]  # label text -> slot


_MATCHERS: dict[str, _Matcher] = {}


def _matcher(template: ReportTemplate) -> _Matcher:
    cached = _MATCHERS.get(template.ref)
    if cached is None:
        patterns = tuple(
            (sub.slot, re.compile(rf"(?<![\w-])(?:{kw})(?![\w-])", re.I))
            for sub in template.findings
            for kw in sub.keywords
        )
        labels = dict(_SECTION_LABELS)
        for sub in template.findings:
            labels[sub.title.lower()] = sub.slot
            labels[sub.key.replace("_", " ")] = sub.slot
        cached = _Matcher(patterns, labels)
        _MATCHERS[template.ref] = cached
    return cached


def findings_scores(template: ReportTemplate, text: str) -> dict[str, int]:
    """Characters of ``text`` claimed by each findings subsection's keywords (longest matches first)."""
    spans: list[tuple[int, int, str]] = []
    for slot, pattern in _matcher(template).patterns:
        spans += [(m.start(), m.end(), slot) for m in pattern.finditer(text) if m.end() > m.start()]
    spans.sort(key=lambda s: (s[0] - s[1], s[0]))  # longest first
    taken: list[tuple[int, int]] = []
    scores: dict[str, int] = {}
    for start, end, slot in spans:
        if any(start < b and a < end for a, b in taken):
            continue
        taken.append((start, end))
        scores[slot] = scores.get(slot, 0) + (end - start)
    return scores


def classify(template: ReportTemplate, text: str, label_slot: str | None = None) -> Clause:
    """Where one sentence goes, by rules only; ``slot`` is None when the rules are not sure."""
    clean = text.strip()
    if label_slot is not None and label_slot != Section.FINDINGS.value:
        return Clause(clean, label_slot, "label")
    if label_slot is None:
        for slot, pattern in _CUES:
            if pattern.search(clean):
                return Clause(clean, slot, "cue")
    scores = findings_scores(template, clean)
    if label_slot is None and not scores and _COMPARISON.search(clean):
        return Clause(clean, Section.COMPARISON.value, "cue")
    if label_slot is None and not scores and _HISTORY.search(clean):
        return Clause(clean, Section.INDICATION.value, "cue")
    if scores:
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        best = [slot for slot, score in ranked if score == ranked[0][1]]
        if len(best) == 1:
            return Clause(clean, best[0], "keywords")
        return Clause(clean, None, "unresolved", tuple(best))
    return Clause(clean, None, "unresolved")


def _label(template: ReportTemplate, sentence: str) -> tuple[str | None, str]:
    """An explicit ``Label:`` at the start of a sentence (a section or a findings subsection)."""
    m = re.match(r"^\s*([A-Za-z][A-Za-z ,/-]{1,60}?)\s*:\s*(.*)$", sentence, re.S)
    if not m:
        return None, sentence
    slot = _matcher(template).labels.get(m.group(1).strip().lower())
    return (slot, m.group(2)) if slot else (None, sentence)


def split_dictation(template: ReportTemplate, text: str) -> list[Clause]:
    """A dictation cut into clauses, each placed by the rules where they are reliable."""
    clauses: list[Clause] = []
    current_label: str | None = None
    for sentence in _sentences(text):
        label, rest = _label(template, sentence)
        if label is not None:
            current_label = label
        if not rest.strip():
            continue
        clauses += _split_commas(template, rest, current_label)
    return clauses


def _split_commas(template: ReportTemplate, sentence: str, label: str | None) -> list[Clause]:
    """Split "8 mm nodule RUL, no effusion, heart size normal" where the pieces are separate findings."""
    pieces = [p.strip() for p in re.split(r",\s*", sentence) if p.strip()]
    if len(pieces) == 1 or (label is not None and label != Section.FINDINGS.value):
        return [classify(template, sentence, label)]
    merged: list[list[str]] = [[pieces[0]]]
    for piece in pieces[1:]:
        # "no effusion, pneumothorax or consolidation" is one negated list, not three findings.
        listed = re.search(r"\b(?:or|and|nor)\b", piece, re.I) and not _STANDALONE_START.match(piece)
        standalone = (
            not _CONNECTOR_START.match(piece)
            and not listed
            and (_STANDALONE_START.match(piece) or len(piece.split()) >= 3)
        )
        if standalone:
            merged.append([piece])
        else:
            merged[-1].append(piece)
    groups = [", ".join(g) for g in merged]
    placed = [classify(template, g, label) for g in groups]
    # Keep the sentence whole unless every piece is placed and they do not all go to one place.
    if any(c.slot is None for c in placed) or len({c.slot for c in placed}) == 1:
        return [classify(template, sentence, label)]
    return placed


def _describe_slot(template: ReportTemplate, slot: str) -> str:
    sub = template.subsection(slot)
    if sub is not None:
        words = [re.sub(r"[\\()?:*+\[\]|]|\\w\*?", "", k).replace("\\w", "") for k in sub.keywords[:8]]
        return f"- {slot}: {sub.title} (e.g. {', '.join(w for w in words if w)})"
    return {
        "indication": "- indication: why the exam was done: symptoms, history, smoking, the clinical question",
        "technique": "- technique: how the exam was done: views, sequences, contrast, dose",
        "comparison": "- comparison: which prior studies were compared",
        "impression": "- impression: the overall conclusion or diagnosis, BI-RADS assessment",
        "recommendations": "- recommendations: advised follow-up, further imaging, biopsy, correlation",
    }[slot]


def _examples(template: ReportTemplate) -> str:
    lines = [
        '"History of smoking, cough." -> indication',
        '"Recommend follow-up in 6 months." -> recommendations',
    ]
    for sub in template.findings:
        if sub.defaults:
            lines.append(f'"{sub.defaults[0]}" -> {sub.slot}')
    return "\n".join(lines)


def placement_schema(template: ReportTemplate) -> dict[str, Any]:
    """The JSON schema the model's answer must follow: one slot of this template."""
    return {
        "type": "object",
        "properties": {"section": {"type": "string", "enum": list(template.slots)}},
        "required": ["section"],
        "additionalProperties": False,
    }


class Placer:
    """Asks a chat model, through JSON-schema structured output, which slot a sentence belongs to."""

    def __init__(self, model: ChatModel, audit: AuditLog | None = None) -> None:
        self.model = model
        self.audit = audit
        self.prompt: PromptTemplate = load_prompt("report_placement")

    def messages(self, template: ReportTemplate, sentence: str) -> list[ChatMessage]:
        system = render(
            self.prompt,
            {
                "report_title": template.title,
                "sections": "\n".join(_describe_slot(template, s) for s in template.slots),
                "examples": _examples(template),
            },
        )
        return [ChatMessage(Role.SYSTEM, system), ChatMessage(Role.USER, f'Sentence: "{sentence}"')]

    def options(self, template: ReportTemplate) -> GenerationOptions:
        return GenerationOptions(
            max_tokens=48,
            temperature=0.0,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "report_placement", "schema": placement_schema(template), "strict": True},
            },
        )

    def place(self, template: ReportTemplate, sentence: str) -> str:
        """The slot the model chose for ``sentence``."""
        answer = _audited(
            self.model, self.messages(template, sentence), self.options(template), self.audit, self.prompt.ref
        )
        try:
            slot = json.loads(answer)["section"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PlacementError("the language model did not answer with a section (malformed JSON)") from exc
        if slot not in template.slots:
            raise PlacementError(f"the language model named a section that is not in the template: {slot!r}")
        return str(slot)


def _audited(
    model: ChatModel, messages: Sequence[ChatMessage], options: GenerationOptions, audit: AuditLog | None, ref: str
) -> str:
    started = time.monotonic()
    chars, outcome = 0, "ok"
    pieces: list[str] = []
    try:
        for piece in model.stream_chat(messages, options):
            chars += len(piece)
            pieces.append(piece)
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        latency = int((time.monotonic() - started) * 1000)
        if audit is not None:
            audit.record(AuditRecord("report", ref, _model_id(model), (), latency, chars, outcome))
    return "".join(pieces)


def _model_id(model: ChatModel) -> str:
    try:
        return model.model_id
    except RadassistError:
        return "unknown"


# ================================================================================================ statements

_NORMAL = re.compile(
    r"^(?:there (?:is|are) )?(?:no|not|without|negative for|absent)\b|\b(?:normal|unremarkable|within normal limits"
    r"|clear|patent|preserved|intact|no evidence of|not seen|not identified)\b",
    re.I,
)
_ABNORMAL_HINT = re.compile(r"\b\d+(?:\.\d+)?\s*(?:mm|cm)\b|\b(?:except|but|however)\b", re.I)


def is_normal(text: str) -> bool:
    """True for a negative or normal statement ("No effusion.", "Heart size normal.")."""
    return bool(_NORMAL.search(text)) and not _ABNORMAL_HINT.search(text)


_STOP = {"the", "and", "are", "with", "without", "for", "this", "that", "there", "which", "has", "have", "was", "were"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in _STOP}


def place_statement(
    report: Report, template: ReportTemplate, slot: str, text: str, confirmed: bool = True
) -> tuple[Report, Statement]:
    """Add the radiologist's sentence to ``slot``; unconfirmed defaults it contradicts are removed."""
    part = report.part(slot)
    keep: list[Statement] = []
    abnormal = not is_normal(text)
    new_scores = set(findings_scores(template, text)) if template.subsection(slot) else set()
    for s in part.statements:
        machine = s.origin in (Origin.TEMPLATE, Origin.PRIOR, Origin.DRAFTED) and not s.confirmed
        if machine and slot in (Section.INDICATION, Section.TECHNIQUE, Section.COMPARISON, Section.IMPRESSION):
            continue  # the radiologist's words replace a default or a drafted section
        if machine and template.subsection(slot) is not None:
            if abnormal:
                continue  # an abnormal finding: every normal default of the organ goes (no contradiction left)
            if _keyword_overlap(template, slot, s.text, text) or (new_scores and _words(s.text) & _words(text)):
                continue
        keep.append(s)
    report, statement = report.new_statement(tidy(text), Origin.DICTATED, confirmed=confirmed)
    report = report.with_part(slot, [*keep, statement])
    if slot == Section.IMPRESSION:
        report = report.replace(impression_locked=True)
    return report, statement


def _keyword_overlap(template: ReportTemplate, slot: str, a: str, b: str) -> bool:
    sub = template.subsection(slot)
    if sub is None:
        return False
    for kw in sub.keywords:
        pattern = re.compile(rf"(?<![\w-])(?:{kw})(?![\w-])", re.I)
        if pattern.search(a) and pattern.search(b):
            return True
    return False


# ================================================================================================ derived content


@dataclass(frozen=True)
class Derived:
    """What code computes from the findings: impression items, calculator recommendations, questions."""

    impression: tuple[str, ...]
    recommendations: tuple[tuple[str, str, GuidelineResult], ...]  # (text, citation, result)
    questions: tuple[str, ...]
    changes: tuple[Change, ...]


def positive_findings(report: Report) -> list[Statement]:
    """The abnormal findings the radiologist dictated or confirmed, in report order."""
    return [
        s
        for p, s in report.statements()
        if p.section is Section.FINDINGS and (s.origin is not Origin.TEMPLATE or s.confirmed) and not is_normal(s.text)
    ]


_SCREENING = re.compile(r"\bscreening\b|\bldct\b|\blow[- ]dose\b", re.I)
_SIZE_TEXT = re.compile(r"\d+(?:\.\d+)?\s*(?:x|×|by)?\s*\d*(?:\.\d+)?\s*(?:mm|cm)\b", re.I)
_FORCE_WORD = {
    "fleischner": "fleischner",
    "lungrads": "lung-rads",
    "tirads": "ti-rads",
    "bosniak": "bosniak",
    "birads": "bi-rads",
    "lirads": "li-rads",
    "adrenal": "adrenal",
    "renal": "renal mass",
}


def _calculator_for(template: ReportTemplate, text: str, context: str) -> str | None:
    from assistant.guidelines.extract import detect_calculator

    name = detect_calculator(text)
    if (
        name not in template.calculators
        and len(template.calculators) == 1
        and re.search(r"nodul|\bmass\b|bi-?rads", text, re.I)
    ):
        return template.calculators[0]  # "1.8 cm solid hypoechoic nodule" on a thyroid ultrasound is TI-RADS
    if name is None:
        return None
    if name in ("fleischner", "lungrads"):
        if not re.search(r"nodule|\bggn\b|ground[- ]glass|part[- ]solid", text, re.I):
            return None  # "lungs are clear" is about the lung, but not about a nodule
        name = "lungrads" if _SCREENING.search(context) else "fleischner"
    if name == "lirads" and not re.search(r"\d\s*(?:mm|cm)", text):
        return None
    return name if name in template.calculators else None


def _citation(result: GuidelineResult) -> str:
    return f"{result.section_id}; {result.source}"


def recommendation_text(result: GuidelineResult) -> str:
    """The Recommendations line for a calculator result: its own words and numbers only."""
    name = result.guideline if result.version in result.guideline else f"{result.guideline} {result.version}"
    text = f"{name}, {result.category}: {result.recommendation}"
    if result.malignancy_risk:
        text += f" Malignancy risk: {result.malignancy_risk}."
    for note in result.notes:
        text += f" {note}"
    return text


def derive(report: Report, template: ReportTemplate) -> Derived:
    """Impression items, calculator recommendations, open questions and changes since the prior."""
    context = " ".join([report.section_text(Section.INDICATION), report.section_text(Section.TECHNIQUE)])
    context_no_sizes = _SIZE_TEXT.sub("", context)
    positives = positive_findings(report)
    # A dictated BI-RADS assessment lives in the impression; it is the input of the BI-RADS calculator.
    positives += [
        s for s in report.part(Section.IMPRESSION).statements
        if s.origin in (Origin.DICTATED, Origin.EDITED) and re.search(r"bi-?rads", s.text, re.I)
    ]  # fmt: skip
    changes = compare_with_prior(report, template)
    recs: list[tuple[str, str, GuidelineResult]] = []
    questions: list[str] = []
    item_refs: dict[str, int] = {}
    for statement in positives:
        name = _calculator_for(template, statement.text, context)
        if name is None:
            continue
        query = f"{_FORCE_WORD[name]}: {statement.text} {context_no_sizes}"
        extraction = extract_parameters(query)
        if extraction.calculator != name:
            continue
        params = dict(extraction.params)
        if name == "lungrads":
            params = _lungrads_with_prior(params, statement, changes)
        # With the prior's size the calculator derives the status (growing/stable) itself.
        missing = [m for m in extraction.missing if not (m == "status" and "prior_mean_diameter_mm" in params)]
        if missing:
            questions += [f"{statement.text} — {q}" for q in extraction.questions]
            continue
        try:
            result = calculate(name, **params)
        except NotApplicableError as exc:
            questions.append(f"{statement.text} — {exc}")
            continue
        except MissingParameterError as exc:
            questions.append(f"{statement.text} — {exc.question}")
            continue
        except CalculatorInputError as exc:
            questions.append(f"{statement.text} — cannot apply {name}: {exc}")
            continue
        text = recommendation_text(result)
        if text not in [r[0] for r in recs]:
            recs.append((text, _citation(result), result))
        item_refs[statement.id] = [r[0] for r in recs].index(text) + 1
    impression = []
    for statement in positives:
        if report.part(Section.IMPRESSION).statements and statement in report.part(Section.IMPRESSION).statements:
            continue
        item = statement.text.rstrip(".")
        change = next((c for c in changes if c.finding and _mentions(statement.text, c)), None)
        if change is not None and change.kind in ("grew", "shrank", "stable"):
            item += f"; {change.text[0].lower()}{change.text[1:].rstrip('.')}"
        if statement.id in item_refs:
            item += f" (see recommendation {item_refs[statement.id]})"
        impression.append(item + ".")
    if not impression and template.normal_impression:
        impression = [template.normal_impression]
    return Derived(tuple(impression), tuple(recs), tuple(dict.fromkeys(questions)), tuple(changes))


def _lungrads_with_prior(params: dict[str, Any], statement: Statement, changes: Sequence[Change]) -> dict[str, Any]:
    change = next((c for c in changes if c.prior_mm is not None and _mentions(statement.text, c)), None)
    if change is None:
        return params
    out = {k: v for k, v in params.items() if k not in ("status", "prior_category")}
    out["exam"] = "follow_up"
    out["prior_mean_diameter_mm"] = change.prior_mm
    return out


def _mentions(text: str, change: Change) -> bool:
    loc = _location(text)
    return change.finding == (f"nodule ({loc})" if loc else "nodule") or change.finding in text.lower()


def apply_derived(report: Report, template: ReportTemplate) -> Report:
    """Redraft the impression (unless the radiologist owns it) and recompute the calculator recommendations."""
    derived = derive(report, template)
    if not report.impression_locked:
        old = {s.text: s for s in report.part(Section.IMPRESSION).statements}
        items = []
        for text in derived.impression:
            if text in old:
                items.append(old[text])
            else:
                report, statement = report.new_statement(text, Origin.DRAFTED, confirmed=False)
                items.append(statement)
        report = report.with_part(Section.IMPRESSION, items)
    current = report.part(Section.RECOMMENDATIONS).statements
    kept = [s for s in current if s.origin is not Origin.CALCULATOR]
    old_calc = {s.text: s for s in current if s.origin is Origin.CALCULATOR}
    calc: list[Statement] = []
    for text, citation, result in derived.recommendations:
        if text in report.dismissed:
            continue
        if text in old_calc:
            calc.append(old_calc[text])
        else:
            report, statement = report.new_statement(text, Origin.CALCULATOR, False, citation, result.to_dict())
            calc.append(statement)
    report = report.with_part(Section.RECOMMENDATIONS, [*calc, *kept])
    return report.replace(questions=derived.questions, changes=derived.changes)


# ================================================================================================ priors


class PriorSource(Protocol):
    """Where the same patient's prior reports come from (never another patient's)."""

    def reports_for(self, patient_key: str) -> Sequence[PriorReport]: ...


class PriorReports:
    """Prior reports held in memory (e.g. from ``retrieval.read_reports``), looked up by patient key."""

    def __init__(self, reports: Iterable[PriorReport]) -> None:
        self._by_patient: dict[str, list[PriorReport]] = {}
        for report in reports:
            self._by_patient.setdefault(report.patient_key, []).append(report)

    def reports_for(self, patient_key: str) -> Sequence[PriorReport]:
        return tuple(self._by_patient.get(patient_key, ()))


class IndexedPriors:
    """Prior reports from a ``retrieval.PriorReportIndex`` (sections regrouped into reports)."""

    def __init__(self, index: Any) -> None:
        self._index = index

    def reports_for(self, patient_key: str) -> Sequence[PriorReport]:
        grouped: dict[tuple[str, str], dict[str, str]] = {}
        for chunk in self._index.patient_reports(patient_key):
            meta = chunk.metadata
            if meta.get("patient_key") != patient_key:
                continue
            key = (str(meta.get("report_id")), str(meta.get("date")))
            sections = grouped.setdefault(key, {})
            sections[chunk.section] = (sections.get(chunk.section, "") + " " + chunk.text).strip()
        return tuple(
            PriorReport(report_id=rid, patient_key=patient_key, study_date=dt.date.fromisoformat(date), sections=s)
            for (rid, date), s in grouped.items()
        )


def most_recent_prior(source: PriorSource, patient_key: str | None, before: dt.date | None) -> PriorReport | None:
    """The patient's latest report before ``before`` (any date when unknown); None without a patient key."""
    if not patient_key:
        return None
    reports = [r for r in source.reports_for(patient_key) if r.patient_key == patient_key]
    if before is not None:
        reports = [r for r in reports if r.study_date < before]
    return max(reports, key=lambda r: (r.study_date, r.report_id), default=None)


def attach_prior(report: Report, prior: PriorReport) -> Report:
    """Comparison names the prior (unconfirmed until accepted); its text is kept for change detection."""
    ref = PriorRef(
        report_id=prior.report_id,
        study_date=prior.study_date,
        findings=prior.sections.get("findings", ""),
        impression=prior.sections.get("impression", ""),
    )
    report = report.replace(prior=ref)
    report, statement = report.new_statement(
        f"Prior report of {prior.study_date.isoformat()} (report {prior.report_id}).", Origin.PRIOR, confirmed=False
    )
    keep = [s for s in report.part(Section.COMPARISON).statements if s.origin not in (Origin.TEMPLATE, Origin.PRIOR)]
    return report.with_part(Section.COMPARISON, [statement, *keep])


_LOBES = {
    "rul": "RUL", "right upper lobe": "RUL", "rml": "RML", "right middle lobe": "RML", "middle lobe": "RML",
    "rll": "RLL", "right lower lobe": "RLL", "lul": "LUL", "left upper lobe": "LUL", "lingula": "lingula",
    "lingular": "lingula", "lll": "LLL", "left lower lobe": "LLL",
}  # fmt: skip
_LOBE_RE = re.compile(r"\b(" + "|".join(sorted(_LOBES, key=len, reverse=True)) + r")\b", re.I)
_CONCEPTS = {
    "pleural effusion": r"effusions?",
    "pneumothorax": r"pneumothora\w*",
    "consolidation": r"consolidations?|pneumonia|airspace disease",
    "cardiomegaly": r"cardiomegaly|enlarged heart|heart (?:size )?(?:is )?enlarged",
    "pulmonary edema": r"(?:pulmonary )?edema",
    "atelectasis": r"atelecta\w*",
    "fracture": r"fractures?",
}
_NEG_BEFORE = re.compile(r"\b(?:no|without|negative for|resolved|resolution of|free of)\b[^.;]*$", re.I)


def _location(text: str) -> str | None:
    m = _LOBE_RE.search(text)
    return _LOBES[m.group(1).lower()] if m else None


def _nodules(text: str) -> list[tuple[str | None, float]]:
    """(lobe, size in mm) of every sentence that mentions a measured nodule."""
    out = []
    for sentence in _sentences(text):
        if not re.search(r"nodul", sentence, re.I) or is_normal(sentence):
            continue
        sizes = find_sizes(sentence.lower())
        if sizes:
            out.append((_location(sentence), max(s.mm for s in sizes)))
    return out


def _concept_status(text: str, pattern: str) -> bool | None:
    """True present, False explicitly absent, None not mentioned."""
    found: bool | None = None
    for sentence in _sentences(text):
        for m in re.finditer(pattern, sentence, re.I):
            negated = bool(_NEG_BEFORE.search(sentence[: m.start()]))
            if not negated:
                return True
            found = False
    return found


def compare_with_prior(report: Report, template: ReportTemplate) -> list[Change]:
    """What changed since the prior: nodule sizes by lobe, and findings that appeared or resolved."""
    if report.prior is None:
        return []
    prior_text = f"{report.prior.findings} {report.prior.impression}"
    date = report.prior.study_date.isoformat()
    current = " ".join(
        s.text for p, s in report.statements()
        if p.section is Section.FINDINGS and (s.origin is not Origin.TEMPLATE or s.confirmed)
    )  # fmt: skip
    changes: list[Change] = []
    before = _nodules(prior_text)
    for lobe, mm in _nodules(current):
        match = [b for b in before if b[0] == lobe] or (before if len(before) == 1 and lobe is None else [])
        name = f"nodule ({lobe})" if lobe else "nodule"
        if not match:
            if before or _concept_status(prior_text, r"nodul\w*") is False:
                changes.append(Change(name, "new", f"The {name} is new since {date}.", None, mm))
            continue
        prior_mm = match[0][1]
        delta = round(mm - prior_mm, 1)
        kind = "grew" if delta > 0 else "shrank" if delta < 0 else "stable"
        verb = {"grew": "increased", "shrank": "decreased", "stable": "is unchanged"}[kind]
        text = (
            f"The {name} {verb} from {prior_mm:g} mm to {mm:g} mm since {date}."
            if kind != "stable"
            else f"The {name} is unchanged at {mm:g} mm since {date}."
        )
        changes.append(Change(name, kind, text, prior_mm, mm))
    for concept, pattern in _CONCEPTS.items():
        was, now = _concept_status(prior_text, pattern), _concept_status(current, pattern)
        if was is True and now is False:
            changes.append(Change(concept, "resolved", f"The {concept} described on {date} has resolved."))
        elif was is False and now is True:
            changes.append(Change(concept, "new", f"The {concept} is new since {date}."))
    return changes


# ================================================================================================ edits


@dataclass(frozen=True)
class Intent:
    """What a dialogue message asks for."""

    kind: str  # "dictate", "undo", "delete", "concise", "replace", "accept", "redraft"
    target: str = ""
    value: str = ""


_INTENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("undo", re.compile(r"^\s*undo(?: (?:that|the last change|last change|it))?\s*[.!]?\s*$", re.I)),
    ("redraft", re.compile(r"^\s*(?:re-?draft|regenerate|redo) (?:the )?impression\s*[.!]?\s*$", re.I)),
    (
        "accept",
        re.compile(
            r"^\s*(?:accept|confirm|approve)(?:\s+(?:all|everything|the report|defaults|the defaults))?"
            r"(?:\s+(?P<target>[a-z ]+?))?\s*[.!]?\s*$",
            re.I,
        ),
    ),  # fmt: skip
    (
        "concise",
        re.compile(
            r"^\s*(?:make|rewrite|shorten|condense|tighten)\s+(?:the\s+)?(?P<target>impression|recommendation)s?"
            r"\s*(?:item\s*)?#?\s*(?P<value>\d+)(?:\s+(?:more\s+)?(?:concise|shorter|brief|briefer))?\s*[.!]?\s*$",
            re.I,
        ),
    ),
    (
        "replace",
        re.compile(
            r"^\s*(?:replace|change)\s+[\"']?(?P<target>.+?)[\"']?\s+(?:with|to|by)\s+[\"']?(?P<value>.+?)"
            r"[\"']?\s*[.!]?\s*$",
            re.I,
        ),
    ),  # fmt: skip
    ("delete", re.compile(r"^\s*(?:delete|remove|drop|strike|take out)\s+(?P<target>.+?)\s*[.!]?\s*$", re.I)),
)


def parse_intent(message: str) -> Intent:
    """Edit commands by rules; anything else is dictation."""
    for kind, pattern in _INTENTS:
        m = pattern.match(message)
        if m:
            groups = m.groupdict()
            return Intent(kind, (groups.get("target") or "").strip(), (groups.get("value") or "").strip())
    return Intent("dictate", value=message)


_FILLER = {"the", "sentence", "statement", "line", "about", "that", "says", "mentioning", "mention", "of", "a", "an",
           "one", "bit", "part", "phrase", "finding", "item", "on", "in", "from", "please"}  # fmt: skip


def find_statements(report: Report, target: str) -> list[tuple[Any, Statement]]:
    """Statements a phrase like "the effusion sentence", "impression 2" or "s7" points at."""
    target = target.strip().strip("\"'")
    m = re.fullmatch(r"(?:the\s+)?(impression|recommendation)s?\s*(?:item\s*)?#?\s*(\d+)", target, re.I)
    if m:
        section = Section.IMPRESSION if m.group(1).lower() == "impression" else Section.RECOMMENDATIONS
        items = report.part(section).statements
        n = int(m.group(2))
        return [(report.part(section), items[n - 1])] if 1 <= n <= len(items) else []
    m = re.fullmatch(r"s\d+", target, re.I)
    if m:
        try:
            return [report.find(target.lower())]
        except ReportError:
            return []
    words = [w for w in re.findall(r"[a-z0-9]+", target.lower()) if w not in _FILLER]
    if not words:
        return []
    hits = []
    for part, statement in report.statements():
        low = statement.text.lower()
        if all(re.search(rf"\b{re.escape(w)}", low) for w in words):
            hits.append((part, statement))
    return hits


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SIDES = re.compile(r"\b(?:right|left|bilateral|both|rul|rml|rll|lul|lll|lingula\w*)\b", re.I)
_NEGATIONS = re.compile(r"\b(?:no|not|without|negative|absent)\b", re.I)


def facts_kept(original: str, rewritten: str) -> bool:
    """True when a rewrite keeps every number, side and negation and is shorter."""

    def facts(text: str) -> tuple[list[str], list[str], bool]:
        return (
            sorted(_NUMBER.findall(text)),
            sorted(w.lower() for w in _SIDES.findall(text)),
            bool(_NEGATIONS.search(text)),
        )

    return bool(rewritten.strip()) and len(rewritten) < len(original) and facts(original) == facts(rewritten)


_CONDENSE = (
    (r"\bthere (?:is|are) (?:an? )?", ""),
    (r"\b(?:is|are) (?:again )?(?:seen|noted|identified|present|demonstrated|visualized)\b", ""),
    (r"\b(?:again )?(?:seen|noted|identified|demonstrated)\b", ""),
    (r"\bwhich (?:is|are)\b", ""),
    (r"\bmeasuring\b", ""),
    (r"\bin the\b", "in"),
    (r"\s+,", ","),
    (r"\s{2,}", " "),
)


def condense(text: str) -> str:
    """A deterministic shorter wording: filler phrases removed, facts untouched."""
    out = text
    for pattern, repl in _CONDENSE:
        out = re.sub(pattern, repl, out, flags=re.I)
    out = out.strip(" ,")
    return tidy(out) if out else text


# ================================================================================================ the service


@dataclass(frozen=True)
class Reply:
    """What the dialogue shows after one message: the message, the diff, the report and what is still open."""

    report: Report
    text: str
    diff: str = ""
    version: int | None = None
    changed: bool = False
    ok: bool = True
    questions: tuple[str, ...] = ()
    unplaced: tuple[str, ...] = ()


class DraftingService:
    """Report drafting in dialogue over a :class:`ReportStore`; the model is optional (rules-only without it)."""

    def __init__(
        self,
        store: ReportStore,
        model: ChatModel | None = None,
        priors: PriorSource | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.priors = priors
        self.audit = audit
        self._concise_prompt: PromptTemplate | None = None

    # ------------------------------------------------------------------------------------------- creation

    def create(self, template: str | None = None, study: StudyRef | None = None, report_id: str | None = None) -> Reply:
        """A new draft from ``template`` (or the one the study's modality and body part call for)."""
        if template is None:
            if study is None:
                raise ReportError("name a template (e.g. --template ct_chest) or give a study to choose from")
            choice = choose_template(study.modality, study.body_part, study.study_description)
            if choice.template is None:
                raise ReportError(choice.question())
            template = choice.template
        tmpl = load_template(template)
        report = create_report(tmpl, report_id, study)
        notes = []
        if self.priors is not None and study is not None:
            prior = most_recent_prior(self.priors, study.patient_key, study.study_date)
            if prior is not None:
                report = attach_prior(report, prior)
                notes.append(f"Comparison: the prior report of {prior.study_date.isoformat()} of this patient.")
            else:
                notes.append("No prior report of this patient was found.")
        report = apply_derived(report, tmpl)
        version = self.store.create(report)
        self.store.add_message(report.report_id, "assistant", f"New {tmpl.title} draft.", MessageStatus.NOTE)
        text = f"New {tmpl.title} draft {report.report_id} ({tmpl.ref}); template defaults are unconfirmed."
        return Reply(report, " ".join([text, *notes]), version=version.number, changed=True)

    # ------------------------------------------------------------------------------------------- dialogue

    def handle(self, report_id: str, message: str) -> Reply:
        """One message of the dialogue: an edit command, "undo", or dictation."""
        text = message.strip()
        if not text:
            raise ReportError("the message is empty")
        if len(text) > MAX_DICTATION_CHARS:
            raise ReportError(f"the message is too long ({len(text)} characters; at most {MAX_DICTATION_CHARS})")
        intent = parse_intent(text)
        if intent.kind == "dictate":
            return self.dictate(report_id, text)
        message_id = self.store.add_message(report_id, "user", text, MessageStatus.PENDING)
        try:
            if intent.kind == "undo":
                return self._undo(report_id, message_id)
            handler = {
                "delete": self._delete,
                "concise": self._concise,
                "replace": self._replace,
                "accept": self._accept,
                "redraft": self._redraft,
            }[intent.kind]
            return handler(report_id, intent, message_id)
        except BaseException:
            self.store.set_status(message_id, MessageStatus.FAILED)
            raise

    def plan(self, report_id: str, text: str) -> list[Clause]:
        """How a dictation would be split and placed by the rules alone (no model, nothing saved)."""
        report = self.store.load(report_id)
        return split_dictation(load_template(report.template), text)

    def dictate(self, report_id: str, text: str) -> Reply:
        """Place a dictation into the draft (one new version), redraft the impression, recompute recommendations."""
        current = self.store.current(report_id)
        report = current.report
        template = load_template(report.template)
        message_id = self.store.add_message(report_id, "user", text, MessageStatus.PENDING)
        try:
            clauses = self._resolve(template, split_dictation(template, text))
        except (LLMUnavailableError, PlacementError) as exc:
            self.store.set_status(message_id, MessageStatus.FAILED)
            note = (
                f"{exc}. Nothing was changed: the draft is still version {current.number} and your dictation is "
                "saved; send `retry` (or dictate again) when the model is back."
            )
            self.store.add_message(report_id, "assistant", note, MessageStatus.NOTE)
            logger.warning("dictation for report %s not applied: %s", report_id, type(exc).__name__)
            return Reply(report, note, version=current.number, ok=False)
        placed = [c for c in clauses if c.slot is not None]
        unplaced = tuple(c.text for c in clauses if c.slot is None)
        after = report
        for clause in clauses:
            if clause.slot is not None:
                # The radiologist's words, but where the model put them is a guess until accepted.
                after, _ = place_statement(after, template, clause.slot, clause.text, clause.method != "model")
        after = apply_derived(after, template)
        logger.info(
            "dictation for report %s: %d clauses (%d by rules, %d by model, %d unplaced)",
            report_id, len(clauses), sum(c.method in ("label", "cue", "keywords") for c in clauses),
            sum(c.method == "model" for c in clauses), len(unplaced),
        )  # fmt: skip
        summary = ", ".join(f"{template.slot_title(c.slot)}" for c in placed if c.slot) or "nothing placed"
        by_model = [c for c in clauses if c.method == "model"]
        if by_model:
            summary += f" ({len(by_model)} placed by the language model: check them, they stay unconfirmed)"
        if unplaced:  # kept for `retry` once the model is available; never silently dropped
            self.store.add_message(report_id, "user", ". ".join(unplaced), MessageStatus.FAILED)
        return self._commit(current, after, "dictate", f"dictated: {summary}", message_id, unplaced=unplaced)

    def retry(self, report_id: str) -> Reply:
        """Apply the dictations that failed (the model was down), oldest first."""
        failed = self.store.failed_messages(report_id)
        if not failed:
            return Reply(self.store.load(report_id), "Nothing to retry.")
        reply = Reply(self.store.load(report_id), "Nothing to retry.")
        for message in failed:
            reply = self.handle(report_id, message.text)
            if not reply.ok:
                return reply
            self.store.set_status(message.id, MessageStatus.DONE)
        return reply

    def _resolve(self, template: ReportTemplate, clauses: list[Clause]) -> list[Clause]:
        if not any(c.slot is None for c in clauses) or self.model is None:
            return clauses
        placer = Placer(self.model, self.audit)
        out = []
        for clause in clauses:
            if clause.slot is None:
                clause = dataclasses.replace(clause, slot=placer.place(template, clause.text), method="model")
            out.append(clause)
        return out

    def _commit(
        self,
        current: Version,
        after: Report,
        action: str,
        summary: str,
        message_id: int | None,
        base: int | None | str = "current",
        unplaced: tuple[str, ...] = (),
    ) -> Reply:
        diff = diff_reports(current.report, after)
        notes = []
        if unplaced:
            notes.append(
                f"{len(unplaced)} sentence(s) could not be placed without the language model and were not added: "
                + " | ".join(unplaced)
                + " — start with a label (e.g. 'Lungs: ...') or dictate with the model available."
            )
        if after.questions:
            notes.append("Open: " + " ".join(after.questions))
        if not diff and after == current.report:
            if message_id is not None:
                self.store.set_status(message_id, MessageStatus.DONE)
            text = " ".join(["No change.", *notes])
            return Reply(after, text, "", current.number, False, True, after.questions, unplaced)
        before = current.number if base == "current" else base
        version = self.store.save(after, action, summary, before if isinstance(before, int) else None, message_id)
        text = " ".join([f"Version {version.number}: {summary}.", *notes])
        self.store.add_message(after.report_id, "assistant", text, MessageStatus.NOTE)
        return Reply(after, text, diff, version.number, True, True, after.questions, unplaced)

    # ------------------------------------------------------------------------------------------- edits

    def _undo(self, report_id: str, message_id: int) -> Reply:
        history = self.store.history(report_id)
        current = history[-1]
        try:
            target = undo_target(history)
        except ReportError as exc:
            return self._ask(current.report, message_id, f"Nothing to undo ({exc}).")
        restored = target.report.replace(next_id=max(target.report.next_id, current.report.next_id))
        return self._commit(
            current, restored, "undo", f"undid version {current.number} (back to version {target.number})",
            message_id, base=target.base,
        )  # fmt: skip

    def _delete(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        hits = find_statements(report, intent.target)
        if not hits:
            return self._ask(report, message_id, f"No sentence matches {intent.target!r}; nothing was deleted.")
        if len(hits) > 1:
            # "the effusion sentence" means the one the radiologist said, before a default that also matches.
            own = [h for h in hits if h[1].origin in (Origin.DICTATED, Origin.EDITED)]
            hits = own if len(own) == 1 else hits
        if len(hits) > 1:
            options = "; ".join(f"[{s.id}] {s.text}" for _, s in hits)
            return self._ask(report, message_id, f"Several sentences match — which one? {options} (say e.g. "
                             f"'delete {hits[0][1].id}')")  # fmt: skip
        part, statement = hits[0]
        after = report.with_part(part.slot, [s for s in part.statements if s.id != statement.id])
        if part.section is Section.IMPRESSION:
            after = after.replace(impression_locked=True)
        if statement.origin is Origin.CALCULATOR:
            after = after.replace(dismissed=(*after.dismissed, statement.text))
        after = apply_derived(after, load_template(report.template))
        return self._commit(current, after, "edit", f"deleted from {part.title}: {statement.id}", message_id)

    def _replace(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        pattern = re.compile(re.escape(intent.target), re.I)
        hits = [(p, s) for p, s in report.statements() if pattern.search(s.text)]
        own = [h for h in hits if h[1].origin in (Origin.DICTATED, Origin.EDITED) and h[0].section is Section.FINDINGS]
        hits = own if len(hits) > 1 and len(own) == 1 else hits  # the drafted impression follows the finding
        if len(hits) != 1:
            why = "No sentence contains" if not hits else "Several sentences contain"
            return self._ask(report, message_id, f"{why} {intent.target!r}; nothing was changed.")
        part, statement = hits[0]
        edited = dataclasses.replace(
            statement, text=tidy(pattern.sub(intent.value, statement.text, count=1)), origin=Origin.EDITED,
            confirmed=True, citation=None, calculation=None,
        )  # fmt: skip
        after = report.with_part(part.slot, [edited if s.id == statement.id else s for s in part.statements])
        if part.section is Section.IMPRESSION:
            after = after.replace(impression_locked=True)
        after = apply_derived(after, load_template(report.template))
        return self._commit(current, after, "edit", f"changed in {part.title}: {statement.id}", message_id)

    def _concise(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        hits = find_statements(report, f"{intent.target} {intent.value}")
        if not hits:
            return self._ask(report, message_id, f"There is no {intent.target} {intent.value}.")
        part, statement = hits[0]
        if statement.origin is Origin.CALCULATOR:
            return self._ask(report, message_id, "Calculator recommendations keep the guideline's exact wording.")
        rewritten, how = self._rewrite_concise(statement.text)
        if rewritten is None:
            return self._ask(report, message_id, f"{part.title} {intent.value} is already as concise as I can make "
                             "it without dropping a fact.")  # fmt: skip
        edited = dataclasses.replace(statement, text=rewritten, origin=Origin.EDITED, confirmed=False)
        after = report.with_part(part.slot, [edited if s.id == statement.id else s for s in part.statements])
        if part.section is Section.IMPRESSION:
            after = after.replace(impression_locked=True)
        return self._commit(current, after, "edit", f"{part.title} {intent.value} made concise ({how})", message_id)

    def _rewrite_concise(self, text: str) -> tuple[str | None, str]:
        if self.model is not None:
            self._concise_prompt = self._concise_prompt or load_prompt("report_concise")
            schema = {
                "type": "object",
                "properties": {"text": {"type": "string", "maxLength": max(8, len(text))}},
                "required": ["text"],
                "additionalProperties": False,
            }
            options = GenerationOptions(
                max_tokens=160, temperature=0.0,
                response_format={"type": "json_schema", "json_schema": {"name": "concise", "schema": schema}},
            )  # fmt: skip
            messages = [ChatMessage(Role.USER, render(self._concise_prompt, {"item": text}))]
            answer = _audited(self.model, messages, options, self.audit, self._concise_prompt.ref)
            try:
                candidate = tidy(str(json.loads(answer)["text"]))
            except (ValueError, KeyError, TypeError):
                candidate = ""
            if facts_kept(text, candidate):
                return candidate, "model, facts checked"
        shorter = condense(text)
        return (shorter, "rules") if facts_kept(text, shorter) else (None, "")

    def _accept(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        target = intent.target.lower().strip()
        slots = [p.slot for p in report.parts]
        if target:
            match = [p.slot for p in report.parts if target in (p.title.lower(), p.slot, p.slot.split(".")[-1])]
            if not match:
                return self._ask(report, message_id, f"There is no section {intent.target!r} to accept.")
            slots = match
        after = report
        count = 0
        for slot in slots:
            part = after.part(slot)
            count += sum(not s.confirmed for s in part.statements)
            after = after.with_part(slot, [dataclasses.replace(s, confirmed=True) for s in part.statements])
        return self._commit(current, after, "accept", f"accepted {count} statement(s)", message_id)

    def _redraft(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report.replace(impression_locked=False)
        report = report.with_part(Section.IMPRESSION, [])
        after = apply_derived(report, load_template(report.template))
        return self._commit(current, after, "edit", "impression redrafted from the findings", message_id)

    def _ask(self, report: Report, message_id: int, text: str) -> Reply:
        self.store.set_status(message_id, MessageStatus.DONE)
        self.store.add_message(report.report_id, "assistant", text, MessageStatus.NOTE)
        return Reply(report, text, changed=False)
