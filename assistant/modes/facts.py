"""Study facts: acquisition and study metadata questions answered by code from the de-identified header.

A question such as "which modality is this?" or "what is the slice thickness?" has an exact answer in the
study's de-identified header; leaving it to a small model gives wrong answers. ``route_question`` finds the facts a
question asks for (and what else it asks, for a mixed question); ``study_facts`` reads them from the study's
de-identified summary and header rows; ``facts_answer`` shows them, cited as "study metadata".

Only de-identified views of a study are read here (``Study.summary()`` and ``Series.header``): the study is taken
through the small ``StudyLike`` protocol, so this module needs nothing of the imaging package.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import retrieval
from retrieval.reports import relative_date

# The facts that can be answered, in the order they are shown.
FIELDS = (
    "modality", "body_part", "description", "contrast", "series", "images", "slice_thickness", "pixel_spacing",
    "kvp", "window", "priors",
)  # fmt: skip
FIELD_LABELS = {
    "modality": "Modality",
    "body_part": "Body part examined",
    "description": "Study description",
    "contrast": "Contrast",
    "series": "Series",
    "images": "Number of images",
    "slice_thickness": "Slice thickness",
    "pixel_spacing": "Pixel spacing",
    "kvp": "kVp",
    "window": "Window in use",
    "priors": "Prior reports",
}
METADATA_SOURCE = "study metadata"

_Q = (
    r"(?:what|which|how|is|are|was|were|does|did|do|has|have|had|can|could|any|describe|tell|give|list|show|should|"
    r"would|where|when)"
)
# Patterns per fact. Each names the acquisition property itself (not an image finding that shares a word:
# "contrast-enhancing lesion", "the body of the pancreas").
_PATTERNS: Mapping[str, tuple[str, ...]] = {
    "modality": (
        r"\bmodality\b",
        r"\b(?:what|which)\s+(?:kind|type|sort)\s+of\s+(?:scan|study|exam(?:ination)?|imaging|image|images)\b",
        r"\b(?:is|was)\s+(?:this|it|the\s+study)\s+(?:an?\s+)?(?:ct|mri?|x-?ray|radiograph|ultrasound|us|pet|"
        r"mammogram|cr|dx|nm)\b[^?.]*\bor\b",
        r"\b(?:what|which)\s+imaging\s+(?:technique|method|type)\b",
    ),
    "body_part": (
        r"\bbody[\s-]*part\b",
        r"\b(?:what|which)\s+(?:anatomy|anatomical\s+(?:region|area|site)|region|part\s+of\s+the\s+body)\b",
        r"\banatomy\b[^?.]*\b(?:cover|covered|include|imaged|scanned|examined|show)\w*\b",
        r"\bwhat\s+(?:was|is|were)\s+(?:being\s+)?(?:examined|imaged|scanned)\b",
    ),
    "description": (
        r"\b(?:study|series)\s+desc(?:ription|r?\.?)?(?=\W|$)",
        r"\b(?:what|which)\s+(?:is\s+the\s+)?protocol\b",
        r"\bprotocol\s+name\b",
    ),
    "contrast": (
        r"\bcontrast\s+(?:given|used|administered|injected|agent|media|medium|phase|route|bolus)\b",
        r"\b(?:was|were|is|has)\b[^?.]*\bcontrast\b[^?.]*\b(?:given|used|administered|injected|applied)\b",
        r"(?:\bwith|\bwithout|\bw/o?)\s*(?:or\s+(?:without|w/o)\s+)?(?:iv\s+|intravenous\s+|oral\s+)?contrast\b",
        r"\bc\+(?=\W|$)|(?<![\w-])(?:non[-\s]?con|c-)(?=[\s?.,]|$)",  # post-contrast (C+) or non-contrast (C-)
        r"\b(?:non|un)[-\s]?(?:contrast|enhanced)\b[^?.]*\b(?:study|scan|ct|mri?|exam)\b",
        r"\b(?:enhanced|unenhanced|contrast)\s+or\b",
        r"\bcontrast[-\s]enhanced\s+(?:study|scan|ct|mri?|exam)\b",
    ),
    "series": (
        r"\b(?:list|name|show|enumerate)\b[^?.]*\bseries\b",
        r"\bhow\s+many\s+series\b",
        r"\bnumber\s+of\s+series\b",
        r"\b(?:what|which)\s+series\s+(?:are|were|does|is|do)\b",
        r"\bseries\s+(?:list|are\s+(?:there|in))\b",
    ),
    "images": (
        r"\bhow\s+many\s+(?:images|slices|frames|instances|sections|pictures)\b",
        r"\bnumber\s+of\s+(?:images|slices|frames|instances|sections)\b",
        r"\b(?:image|slice|frame|instance)\s+count\b",
    ),
    "slice_thickness": (
        r"\bslice\s+(?:thickness|thk)\b",
        r"\bsection\s+thickness\b",
        r"\bhow\s+thick\b[^?.]*\b(?:slices?|sections?|cuts?|images?)\b",
        r"\bthickness\s+of\s+the\s+(?:slices?|sections?|cuts?)\b",
    ),
    "pixel_spacing": (
        r"\bpixel\s+(?:spacing|size|dimensions?)\b",
        r"\bin[-\s]?plane\s+(?:resolution|spacing)\b",
        r"\b(?:voxel|spatial)\s+(?:size|resolution|spacing)\b",
        r"\bmm\s+per\s+pixel\b",
        r"\bsize\s+of\s+(?:a|each|the)\s+pixels?\b",
    ),
    "kvp": (
        r"\bkv(?:p)?\b",
        r"\btube\s+(?:voltage|potential)\b",
        r"\bpeak\s+kilo\s*voltage\b",
        r"\bkilovolt\w*\b",
    ),
    "window": (
        r"\bwindow\s+(?:level|width|cent(?:er|re)|setting|settings|preset|in\s+use|used|applied)\b",
        r"\b(?:what|which)\s+(?:display\s+)?window\b",
        r"\bwindow(?:ing)?\s+(?:am\s+i|are\s+we|is\s+(?:this|it|shown|applied|on))\b",
        r"\b(?:w/l|l/w|ww\s*/\s*wl|wl\s*/\s*ww|window\s*/\s*level)\b",
    ),
    "priors": (
        r"\b(?:when|how\s+long|how\s+many\s+(?:days|weeks|months|years)|date|dated|ago|interval|time\s+since|"
        r"how\s+old|relative)\b[^?.]*\b(?:prior|previous|last|earlier|comparison|old)\s+(?:\w+\s+)?"
        r"(?:study|studies|exam|exams|examination|scan|scans|report|reports|imaging|ct|mri?|film)s?\b",
        r"\b(?:prior|previous|earlier|comparison)\s+(?:\w+\s+)?(?:study|studies|exam|exams|examination|scan|scans|"
        r"report|reports|imaging)\b[^?.]*\b(?:when|date|dated|ago|relative|interval|how\s+long)\b",
        r"\b(?:are|is)\s+there\s+(?:any\s+)?(?:prior|previous|earlier)\s+(?:studies|reports|exams|scans)\b",
        # "any prior reports?", "has this patient any prior studies on file?" (not "has it grown since the prior
        # report?", "any change since the prior scan?": comparisons, for the model with the priors as sources)
        r"(?:\bany|\bno|\bare\s+there)\s+(?:prior|previous|earlier)\s+(?:studies|reports?|exams?|scans?|imaging)\b",
        r"\bany\s+priors?\b(?!\s+(?:\w+\s+)?(?:disease|surgery|history|infection|granulom\w*|resection|trauma|"
        r"fracture|radiation|tb|tuberculosis|operation))",
        r"\b(?:when|date|dated|how\s+long|how\s+old)\b[^?.]*\b(?:last|latest|most\s+recent|previous)\s+prior\b",
        r"\b(?:list|show)\b[^?.]*\b(?:prior|previous)\s+(?:studies|reports|exams|scans)\b",
    ),
}
_COMPILED = {name: tuple(re.compile(p, re.I) for p in pats) for name, pats in _PATTERNS.items()}
# Where one question asks two things: sentence ends, semicolons, and "and"/a comma before a new question word.
_SPLIT = re.compile(
    rf"[?;!]+|\.\s+|\s*,?\s+(?:and|plus|also)\s+(?={_Q}\b|you\b|there\b)|\s*,\s+(?={_Q}\b)", re.I
)
_FILLER = re.compile(r"^(?:and|also|please|then|so|ok|okay|thanks?|thank\s+you)$", re.I)


@dataclass(frozen=True)
class FactRoute:
    """What a question asks of the study's metadata: the facts (in ``FIELDS`` order) and the rest of it."""

    fields: tuple[str, ...] = ()
    remainder: str = ""  # the parts of the question that are not about metadata ("" when none)

    @property
    def is_facts(self) -> bool:
        return bool(self.fields)

    @property
    def mixed(self) -> bool:
        return bool(self.fields) and bool(self.remainder)


# Words of the patterns above that are often mistyped at a reading station ("slcie thickness", "pixle size"): a
# word of 5+ letters this close to one of them (difflib ratio >= 0.8, one swap or one wrong letter) is read as it.
_TYPO_VOCABULARY = ("slice", "pixel", "thickness", "contrast", "description", "spacing", "modality")
_WORD = re.compile(r"[A-Za-z]{5,}")


def _untypo(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        word = match.group(0).lower()
        if any(word.startswith(v) for v in _TYPO_VOCABULARY):  # the word itself, or its plural/inflection
            return match.group(0)
        close = difflib.get_close_matches(word, _TYPO_VOCABULARY, n=1, cutoff=0.8)
        return close[0] if close else match.group(0)

    return _WORD.sub(fix, text)


def _fields_in(text: str) -> list[str]:
    text = _untypo(text)
    return [name for name in FIELDS if any(p.search(text) for p in _COMPILED[name])]


def route_question(question: str) -> FactRoute:
    """The study facts ``question`` asks for and the remainder for the model (mixed questions have both)."""
    found: list[str] = []
    rest: list[str] = []
    for clause in _SPLIT.split(question):
        clause = (clause or "").strip(" ,.")
        if not clause:
            continue
        fields = _fields_in(clause)
        if fields:
            found += [f for f in fields if f not in found]
        elif len(clause.split()) >= 2 and not _FILLER.match(clause):
            rest.append(clause)
    if not found:
        return FactRoute((), question.strip())
    ordered = tuple(f for f in FIELDS if f in found)
    remainder = "? ".join(rest) + ("?" if rest else "")
    return FactRoute(ordered, remainder)


class SeriesLike(Protocol):
    """A series' de-identified views (``assistant.imaging.study.Series``)."""

    @property
    def header(self) -> tuple[tuple[str, str, str], ...]: ...

    def summary(self) -> dict[str, Any]: ...


class StudyLike(Protocol):
    """A study's de-identified views (``assistant.imaging.study.Study``)."""

    @property
    def patient_key(self) -> str | None: ...

    @property
    def study_date(self) -> dt.date | None: ...  # shifted per patient, like the priors' dates

    @property
    def series(self) -> Sequence[SeriesLike]: ...

    def summary(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PriorSummary:
    """One prior report of the patient of the study on screen, as the workspace lists it."""

    report_id: str  # pseudonymous
    study_date: dt.date  # shifted by the patient's date shift, like the study's own date
    relative_date: str  # e.g. "1 year 2 months before this study"; "date of this study unknown"
    days_before: int | None  # days from the prior to the current study; None when the study has no date
    modality: str  # "" when the report did not say
    impression: str  # the impression (or, without one, the findings), scrubbed at import

    def to_json(self) -> dict[str, Any]:
        """The ``ask --json`` entry: {"id", "relative_date", "modality"} (plus days_before and impression)."""
        return {
            "id": self.report_id,
            "relative_date": self.relative_date,
            "modality": self.modality,
            "days_before": self.days_before,
            "impression": self.impression,
        }


def _header_value(header: Sequence[tuple[str, str, str]], keyword: str) -> str | None:
    for tag, kw, value in header:
        if kw == keyword and not tag.startswith(">") and value.strip():
            return value.strip()
    return None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _mm(x: float | None) -> str:
    return "not recorded in the header" if x is None else f"{x:g} mm"


@dataclass(frozen=True)
class StudyFacts:
    """Facts of one study read from its de-identified header, for the series on screen (``series_index``)."""

    values: Mapping[str, Any]  # JSON-ready values per field
    lines: Mapping[str, str]  # the same, as one line of text each
    series_index: int = 0  # 0-based
    priors: tuple[PriorSummary, ...] = field(default=())

    def text(self, fields: Sequence[str] = FIELDS) -> str:
        """The asked facts as a short list, with where they come from."""
        shown = [f"- {FIELD_LABELS[f]}: {self.lines[f]}" for f in fields if f in self.lines]
        return "From the study metadata (de-identified DICOM header):\n" + "\n".join(shown)

    def citation(self, fields: Sequence[str] = FIELDS) -> dict[str, Any]:
        """The "study metadata" entry of ``Answer.citations``."""
        return {
            "id": "study-metadata",
            "source": METADATA_SOURCE,
            "title": "Study metadata (de-identified DICOM header)",
            "section": ", ".join(fields),
            "text": self.text(fields),
            "score": 1.0,
            "relevance": 1.0,
            "metadata": {"corpus": METADATA_SOURCE, "fields": list(fields)},
        }


def study_facts(
    study: StudyLike, sent: Sequence[Mapping[str, Any]] = (), priors: Sequence[PriorSummary] = ()
) -> StudyFacts:
    """The study's facts; per-series facts are those of the series on screen (``sent``'s first entry)."""
    summary = study.summary()
    all_series = list(summary.get("series") or [])
    index = 0
    if sent:
        try:
            index = min(max(int(sent[0].get("series", 1)) - 1, 0), max(len(all_series) - 1, 0))
        except (TypeError, ValueError):
            index = 0
    one = all_series[index] if all_series else {}
    header = study.series[index].header if study.series else ()
    values: dict[str, Any] = {}
    lines: dict[str, str] = {}

    modalities = [str(m) for m in summary.get("modalities") or []]
    values["modality"] = modalities
    lines["modality"] = ", ".join(modalities) if modalities else "not recorded in the header"

    parts = sorted({str(s["body_part"]) for s in all_series if s.get("body_part")})
    values["body_part"] = parts
    lines["body_part"] = ", ".join(parts) if parts else "not recorded in the header (Body Part Examined is empty)"

    description = summary.get("study_description")
    values["description"] = description
    lines["description"] = str(description) if description else "not recorded in the header"

    agent = _header_value(header, "ContrastBolusAgent")
    route = _header_value(header, "ContrastBolusRoute")
    values["contrast"] = {"agent": agent, "route": route}
    if agent or route:
        lines["contrast"] = "contrast recorded: " + ", ".join(
            x for x in (f"agent {agent}" if agent else "", f"route {route}" if route else "") if x
        )
    else:
        # PS3.3 C.7.6.4: the Contrast/Bolus module is there only when contrast was used; its absence is no proof.
        lines["contrast"] = "no contrast agent recorded in the header (this does not prove none was given)"

    values["series"] = [
        {
            "number": s.get("series_number"),
            "modality": s.get("modality"),
            "description": s.get("series_description"),
            "images": s.get("frame_count"),
        }
        for s in all_series
    ]
    described = [
        f"{i + 1}) {s.get('modality')}"
        + (f" \"{s['series_description']}\"" if s.get("series_description") else "")
        + f", {s.get('frame_count')} image{'s' if s.get('frame_count') != 1 else ''}"
        for i, s in enumerate(all_series)
    ]
    lines["series"] = f"{len(all_series)} series: " + "; ".join(described)

    count = one.get("frame_count")
    values["images"] = {"series": count, "study": summary.get("image_count")}
    lines["images"] = f"{count} in this series" + (
        f" ({summary.get('image_count')} in the study)" if len(all_series) > 1 else ""
    )

    thickness = one.get("slice_thickness_mm")
    values["slice_thickness"] = thickness
    lines["slice_thickness"] = _mm(thickness) + (
        f" (spacing between slices {one['spacing_between_slices_mm']:g} mm)"
        if one.get("spacing_between_slices_mm")
        else ""
    )

    spacing = one.get("pixel_spacing_mm")
    values["pixel_spacing"] = spacing
    lines["pixel_spacing"] = (
        f"{spacing[0]:g} × {spacing[1]:g} mm (row × column), matrix {one.get('rows')} × {one.get('columns')}"
        if spacing
        else f"not recorded in the header (matrix {one.get('rows')} × {one.get('columns')})"
    )

    kvp = _number(_header_value(header, "KVP"))
    values["kvp"] = kvp
    lines["kvp"] = f"{kvp:g} kVp" if kvp is not None else "not recorded in the header"

    window = sent[0].get("window") if sent else None
    if window is None:
        default = one.get("window")
        if isinstance(default, Mapping) and "center" in default:
            window = f"{default.get('name', 'custom')} C{default['center']}/W{default['width']}"
        else:
            window = "none (colour image)" if one.get("color") else "the file's own"
    values["window"] = window
    lines["window"] = str(window) + (f" (series {index + 1}, slice {sent[0].get('frame')})" if sent else "")

    values["priors"] = [p.to_json() for p in priors]
    if priors:
        lines["priors"] = f"{len(priors)} of this patient: " + "; ".join(
            f"{p.modality or 'modality not given'}, {p.relative_date} (report {p.report_id})" for p in priors
        )
    else:
        lines["priors"] = "no prior reports found for this patient"
    return StudyFacts(values=values, lines=lines, series_index=index, priors=tuple(priors))


def summarize_priors(reports: Sequence[retrieval.PriorReport], current: dt.date | None) -> list[PriorSummary]:
    """The reports dated before ``current`` (all when it is unknown), newest first, as the workspace shows them."""
    shown = [r for r in reports if current is None or r.study_date < current]
    shown.sort(key=lambda r: (r.study_date, r.report_id), reverse=True)
    out = []
    for report in shown:
        text, days = relative_date(report.study_date, current)  # both dates carry the patient's own shift
        impression = report.sections.get("impression") or report.sections.get("findings") or ""
        out.append(PriorSummary(report.report_id, report.study_date, text, days, report.modality, impression))
    return out


def study_inputs(study: StudyLike) -> dict[str, str]:
    """What a guideline calculator may take from the study itself: its modality and body part (when recorded)."""
    summary = study.summary()
    out: dict[str, str] = {}
    modalities = [str(m) for m in summary.get("modalities") or []]
    if len(modalities) == 1:
        out["modality"] = modalities[0]
    parts = sorted({str(s["body_part"]) for s in summary.get("series") or [] if s.get("body_part")})
    if len(parts) == 1:
        out["body_part"] = parts[0]
    return out


def with_study_inputs(question: str, inputs: Mapping[str, str]) -> str:
    """The question with the study's own facts appended as context for the calculators' reading of it."""
    if not inputs:
        return question
    said = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in inputs.items())
    # Not "study on screen": the calculators read "screen" as a screening context (Lung-RADS instead of Fleischner).
    return f"{question.rstrip()} (Open study: {said}.)"
