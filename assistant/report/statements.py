"""Dictated statements: normal or abnormal, and placing one where it replaces the defaults it contradicts."""

from __future__ import annotations

import re

from assistant.report.dictation import findings_scores, tidy
from assistant.report.draft import Origin, Report, ReportTemplate, Section, Statement

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
