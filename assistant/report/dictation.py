"""Dictation into report slots: sentence splitting and tidying, rule-based placement, the model's placement."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.errors import RadassistError
from assistant.llm.client import ChatMessage, ChatModel, GenerationOptions, Role
from assistant.report.draft import ReportTemplate, Section
from assistant.store.audit import AuditLog, AuditRecord
from prompts import PromptTemplate, render
from prompts import load_template as load_prompt


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


def split_sentences(text: str) -> list[str]:
    """A text cut into sentences: abbreviations and decimals kept whole, list numbers dropped."""
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
# Placement is deterministic when it is reliable (an explicit label such as ``Lungs:``, a section cue such as
# "history of" or "recommend", or one findings subsection whose keywords clearly win). Only the rest goes to the
# language model, which must answer through vLLM structured output (a JSON schema whose ``enum`` is the
# template's slots), so it can only name a slot, never rewrite the radiologist's words.


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
    for sentence in split_sentences(text):
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
        answer = complete_audited(
            self.model, self.messages(template, sentence), self.options(template), self.audit, self.prompt.ref
        )
        try:
            slot = json.loads(answer)["section"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PlacementError("the language model did not answer with a section (malformed JSON)") from exc
        if slot not in template.slots:
            raise PlacementError(f"the language model named a section that is not in the template: {slot!r}")
        return str(slot)


def complete_audited(
    model: ChatModel, messages: Sequence[ChatMessage], options: GenerationOptions, audit: AuditLog | None, ref: str
) -> str:
    """The model's whole answer; one audit row (model, latency, outcome) is written whether it succeeds or not."""
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
