"""The same patient's prior reports: where they come from, the comparison they fill, and what changed since."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from assistant.guidelines.extract import find_sizes
from assistant.report.dictation import split_sentences
from assistant.report.draft import Change, Origin, PriorRef, Report, ReportTemplate, Section
from assistant.report.statements import is_normal
from retrieval.reports import PriorReport, relative_date


class PriorSource(Protocol):
    """Where the same patient's prior reports come from (never another patient's)."""

    def reports_for(self, patient_key: str) -> Sequence[PriorReport]: ...


class InMemoryPriors:
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


def attach_prior(report: Report, prior: PriorReport, current: dt.date | None = None) -> Report:
    """Comparison names the prior (unconfirmed until accepted); its text is kept for change detection.

    ``current``: the study's own (shifted) date; the interval to the prior is then named too ("3 months before
    this study"), which stays true across the per-patient date shift both dates carry.
    """
    ref = PriorRef(
        report_id=prior.report_id,
        study_date=prior.study_date,
        findings=prior.sections.get("findings", ""),
        impression=prior.sections.get("impression", ""),
    )
    report = report.replace(prior=ref)
    interval = f"; {relative_date(prior.study_date, current)[0]}" if current is not None else ""
    report, statement = report.new_statement(
        f"Prior report of {prior.study_date.isoformat()} (report {prior.report_id}{interval}).",
        Origin.PRIOR,
        confirmed=False,
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


def find_lobe(text: str) -> str | None:
    """The lung lobe ``text`` names (``RUL`` ... ``LLL``, ``lingula``), or None."""
    m = _LOBE_RE.search(text)
    return _LOBES[m.group(1).lower()] if m else None


def _nodules(text: str) -> list[tuple[str | None, float]]:
    """(lobe, size in mm) of every sentence that mentions a measured nodule."""
    out = []
    for sentence in split_sentences(text):
        if not re.search(r"nodul", sentence, re.I) or is_normal(sentence):
            continue
        sizes = find_sizes(sentence.lower())
        if sizes:
            out.append((find_lobe(sentence), max(s.mm for s in sizes)))
    return out


def _concept_status(text: str, pattern: str) -> bool | None:
    """True present, False explicitly absent, None not mentioned."""
    found: bool | None = None
    for sentence in split_sentences(text):
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
