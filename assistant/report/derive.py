"""What code derives from the findings: the drafted impression and the guideline calculators' cited recommendations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.guidelines import (
    CalculatorInputError,
    GuidelineResult,
    MissingParameterError,
    NotApplicableError,
    calculate,
    extract_parameters,
)
from assistant.report.draft import Change, Origin, Report, ReportTemplate, Section, Statement
from assistant.report.priors import compare_with_prior, find_lobe
from assistant.report.statements import is_normal

# The impression is drafted by code from the positive findings (never by the model): a 135M model invents.
# Recommendations come only from the guideline calculators; their text is the calculator's text, cited.


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
        # With the prior's size the calculator derives growth, threshold crossings and what it still needs
        # (e.g. the prior category of a stable nodule) itself: its own ask-back is used below.
        missing = [] if "prior_mean_diameter_mm" in params else list(extraction.missing)
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
    loc = find_lobe(text)
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
