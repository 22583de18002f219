"""The structured report draft: templates (data files in ``prompts/report_templates``), a typed report and its
version history.

A report is a tuple of *parts*, one per slot: ``indication``, ``technique``, ``comparison``, one
``findings.<organ>`` per subsection of the template, ``impression`` and ``recommendations``. Each part holds
statements that remember where they came from (template default, dictation, drafted by the assistant,
guideline calculator, prior report, edit) and whether the radiologist has confirmed them. Template defaults and
drafted text stay *unconfirmed* until the radiologist accepts or changes them.

Everything here is pure data and pure functions: no I/O besides reading the template files on first use.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from assistant.errors import ConfigurationError, RadassistError

SCHEMA_VERSION = 1  # of Report.to_dict(); stored in SQLite and in JSON exports


class ReportError(RadassistError):
    """A report operation cannot be done as asked; the message says why and what to do instead."""


class Section(StrEnum):
    """The top-level sections every template has, in report order."""

    INDICATION = "indication"
    TECHNIQUE = "technique"
    COMPARISON = "comparison"
    FINDINGS = "findings"
    IMPRESSION = "impression"
    RECOMMENDATIONS = "recommendations"

    @property
    def heading(self) -> str:
        return _SECTION_TITLES[self]


_SECTION_TITLES = {
    Section.INDICATION: "Clinical indication",
    Section.TECHNIQUE: "Technique",
    Section.COMPARISON: "Comparison",
    Section.FINDINGS: "Findings",
    Section.IMPRESSION: "Impression",
    Section.RECOMMENDATIONS: "Recommendations",
}
NUMBERED = (Section.IMPRESSION, Section.RECOMMENDATIONS)  # rendered as 1. 2. 3.


class Origin(StrEnum):
    """Where a statement came from."""

    TEMPLATE = "template"  # a template's normal default: unconfirmed until accepted or changed
    DICTATED = "dictated"  # the radiologist's own words
    DRAFTED = "drafted"  # written by the assistant from the findings (impression)
    CALCULATOR = "calculator"  # a guideline calculator's output, cited
    PRIOR = "prior"  # taken from the patient's prior report (comparison)
    EDITED = "edited"  # changed by an edit in the dialogue


# ------------------------------------------------------------------------------------------------ templates


@dataclass(frozen=True)
class FindingsSubsection:
    """One organ subsection of a template's Findings."""

    key: str
    title: str
    defaults: tuple[str, ...]
    keywords: tuple[str, ...]

    @property
    def slot(self) -> str:
        return f"findings.{self.key}"


@dataclass(frozen=True)
class ReportTemplate:
    """A report template as read from ``prompts/report_templates/<name>.toml``."""

    name: str
    version: int
    title: str
    description: str
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    description_keywords: tuple[str, ...]
    calculators: tuple[str, ...]
    normal_impression: str
    section_defaults: Mapping[Section, str]
    findings: tuple[FindingsSubsection, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "section_defaults", MappingProxyType(dict(self.section_defaults)))

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def slots(self) -> tuple[str, ...]:
        """Every slot of the report, in report order."""
        return (
            Section.INDICATION.value,
            Section.TECHNIQUE.value,
            Section.COMPARISON.value,
            *(f.slot for f in self.findings),
            Section.IMPRESSION.value,
            Section.RECOMMENDATIONS.value,
        )

    def slot_title(self, slot: str) -> str:
        """The heading of ``slot`` ("Lungs", "Impression", ...)."""
        for sub in self.findings:
            if sub.slot == slot:
                return sub.title
        try:
            return Section(slot).heading
        except ValueError:
            raise ReportError(f"slot={slot!r} is not part of the {self.name} template") from None

    def subsection(self, slot: str) -> FindingsSubsection | None:
        return next((f for f in self.findings if f.slot == slot), None)


TEMPLATES_PACKAGE = "prompts"
TEMPLATES_FOLDER = "report_templates"


def templates_dir() -> Path:
    """The folder of the report template files (package data of ``prompts``)."""
    return Path(str(resources.files(TEMPLATES_PACKAGE) / TEMPLATES_FOLDER))


def list_templates(directory: Path | None = None) -> tuple[str, ...]:
    """Names of the available report templates."""
    folder = directory or templates_dir()
    return tuple(sorted(p.stem for p in folder.glob("*.toml")))


@cache
def load_report_template(name: str, directory: Path | None = None) -> ReportTemplate:
    """Read and validate the report template called ``name``."""
    folder = directory or templates_dir()
    path = folder / f"{name}.toml"
    if not re.fullmatch(r"[a-z0-9_]+", name) or not path.is_file():
        known = ", ".join(list_templates(folder))
        raise ReportError(f"no report template named {name!r} (known: {known})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        sections = data.get("sections", {})
        findings = tuple(
            FindingsSubsection(
                key=str(f["key"]),
                title=str(f["title"]),
                defaults=tuple(str(x) for x in f.get("default", [])),
                keywords=tuple(str(x) for x in f.get("keywords", [])),
            )
            for f in data["findings"]
        )
        template = ReportTemplate(
            name=str(data["name"]),
            version=int(data["version"]),
            title=str(data["title"]),
            description=str(data.get("description", "")),
            modalities=tuple(str(x).upper() for x in data.get("modalities", [])),
            body_parts=tuple(str(x).upper() for x in data.get("body_parts", [])),
            description_keywords=tuple(str(x).lower() for x in data.get("description_keywords", [])),
            calculators=tuple(str(x) for x in data.get("calculators", [])),
            normal_impression=str(data.get("normal_impression", "")),
            section_defaults={
                s: str(sections.get(s.value, {}).get("default", ""))
                for s in (Section.INDICATION, Section.TECHNIQUE, Section.COMPARISON)
            },
            findings=findings,
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"report template {path.name} is malformed: {exc}") from exc
    if template.name != name:
        raise ConfigurationError(f"report template {path.name} names itself {template.name!r}")
    keys = [f.key for f in findings]
    if len(set(keys)) != len(keys) or not keys:
        raise ConfigurationError(f"report template {path.name} needs unique findings subsection keys")
    for sub in findings:
        for keyword in sub.keywords:
            try:
                re.compile(keyword)
            except re.error as exc:
                raise ConfigurationError(
                    f"report template {path.name}, subsection {sub.key}: keyword {keyword!r} is not a regex: {exc}"
                ) from exc
    return template


@dataclass(frozen=True)
class TemplateChoice:
    """The template for a study, or the candidates to ask the radiologist about."""

    template: str | None
    candidates: tuple[str, ...]
    reason: str

    @property
    def needs_question(self) -> bool:
        return self.template is None

    def question(self) -> str:
        """What to ask when no single template fits."""
        options = self.candidates or list_templates()
        return f"Which report template? ({self.reason}) Options: {', '.join(options)}"


_NON_IMAGE_MODALITIES = {"SR", "SEG", "PR", "KO", "REG", "RTSTRUCT", "OT"}


def choose_template(
    modality: str | None, body_part: str | None = None, description: str | None = None
) -> TemplateChoice:
    """Pick the template from the study's modality, body part and description; ask when it is not clear."""
    names = list_templates()
    templates = [load_report_template(n) for n in names]
    mod = (modality or "").strip().upper()
    if mod in ("DX", "DR"):
        mod = "DX"
    pool = [t for t in templates if not mod or mod in t.modalities]
    if not pool:
        return TemplateChoice(None, tuple(names), f"no template for modality {mod}")
    part = re.sub(r"[\s-]+", "", (body_part or "").upper())
    if part:
        by_part = [t for t in pool if part in {p.replace(" ", "") for p in t.body_parts}]
        if len(by_part) == 1:
            return TemplateChoice(by_part[0].name, (by_part[0].name,), f"{mod or 'any modality'} of {part}")
        if not by_part:  # an MR of the knee must not get the brain template because it is the only MR one
            return TemplateChoice(None, tuple(t.name for t in pool), f"no template for {mod or 'a study'} of {part}")
        pool = by_part
    if len(pool) == 1:
        return TemplateChoice(pool[0].name, (pool[0].name,), f"the only template for {mod} (body part unknown)")
    words = (description or "").lower()
    if words:
        by_words = [t for t in pool if any(re.search(rf"\b{re.escape(k)}", words) for k in t.description_keywords)]
        if len(by_words) == 1:
            return TemplateChoice(by_words[0].name, (by_words[0].name,), "from the study description")
        if by_words:
            pool = by_words
    what = mod or "the study"
    return TemplateChoice(None, tuple(t.name for t in pool), f"{what} with body part {part or 'unknown'}")


def choose_template_for_study(summary: Mapping[str, Any]) -> TemplateChoice:
    """The template for a study from its de-identified ``Study.summary()``."""
    series = [s for s in summary.get("series", []) if s.get("modality") not in _NON_IMAGE_MODALITIES]
    modality = series[0]["modality"] if series else (summary.get("modalities") or [None])[0]
    body_part = next((s.get("body_part") for s in series if s.get("body_part")), None)
    description = " ".join(
        str(x) for x in [summary.get("study_description"), *(s.get("series_description") for s in series)] if x
    )
    return choose_template(modality, body_part, description or None)


# ------------------------------------------------------------------------------------------------ the report


@dataclass(frozen=True)
class Statement:
    """One sentence of the report, with its origin, confirmation state and (for calculators) its citation."""

    id: str
    text: str
    origin: Origin
    confirmed: bool
    citation: str | None = None
    calculation: Mapping[str, Any] | None = None  # GuidelineResult.to_dict() for calculator statements

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", Origin(self.origin))
        if not self.text.strip():
            raise ReportError("a statement cannot be empty")
        if self.calculation is not None:
            object.__setattr__(self, "calculation", MappingProxyType(dict(self.calculation)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "origin": self.origin.value,
            "confirmed": self.confirmed,
        }
        if self.citation:
            out["citation"] = self.citation
        if self.calculation is not None:
            out["calculation"] = _plain(self.calculation)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Statement:
        return cls(
            id=str(data["id"]),
            text=str(data["text"]),
            origin=Origin(data["origin"]),
            confirmed=bool(data["confirmed"]),
            citation=data.get("citation"),
            calculation=data.get("calculation"),
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Part:
    """The statements of one slot (a section, or one findings subsection)."""

    slot: str
    title: str
    statements: tuple[Statement, ...] = ()

    @property
    def section(self) -> Section:
        return Section(self.slot.split(".", 1)[0])


@dataclass(frozen=True)
class InstanceRef:
    """One referenced image instance (pseudonymous UIDs)."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str


@dataclass(frozen=True)
class StudyRef:
    """The de-identified facts of the study a report is about (never names, IDs or real dates)."""

    study_instance_uid: str
    patient_key: str | None = None
    modality: str | None = None
    body_part: str | None = None
    study_description: str | None = None
    study_date: dt.date | None = None  # shifted per patient by ingest (PS3.15 E.3.6), like the priors' dates
    instances: tuple[InstanceRef, ...] = ()

    @classmethod
    def from_study(cls, study: Any) -> StudyRef:
        """From an ingested ``assistant.imaging.study.Study`` (its UIDs are already pseudonymous)."""
        instances: list[InstanceRef] = []
        modality = body_part = None
        for series in study.series:
            header = {keyword: value for _, keyword, value in series.header}
            if modality is None and series.modality.value not in _NON_IMAGE_MODALITIES:
                modality, body_part = series.modality.value, series.body_part_examined
            sop_class = header.get("SOPClassUID")
            if not sop_class:
                continue  # a picture (PNG/JPEG) or an unreadable header: nothing to reference
            seen: set[str] = set()
            for image in series.images:
                if image.sop_instance_uid and image.sop_instance_uid not in seen:
                    seen.add(image.sop_instance_uid)
                    instances.append(InstanceRef(sop_class, image.sop_instance_uid, series.series_instance_uid))
        return cls(
            study_instance_uid=study.study_instance_uid,
            patient_key=study.patient_key,
            modality=modality,
            body_part=body_part,
            study_description=study.study_description,
            study_date=study.study_date,
            instances=tuple(instances),
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["study_date"] = self.study_date.isoformat() if self.study_date else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyRef:
        date = data.get("study_date")
        return cls(
            study_instance_uid=str(data["study_instance_uid"]),
            patient_key=data.get("patient_key"),
            modality=data.get("modality"),
            body_part=data.get("body_part"),
            study_description=data.get("study_description"),
            study_date=dt.date.fromisoformat(date) if date else None,
            instances=tuple(InstanceRef(**i) for i in data.get("instances", [])),
        )


@dataclass(frozen=True)
class PriorRef:
    """The prior report that fills Comparison."""

    report_id: str
    study_date: dt.date
    findings: str = ""
    impression: str = ""


@dataclass(frozen=True)
class Change:
    """A difference from the prior report, e.g. a nodule that grew from 6 to 9 mm."""

    finding: str  # "nodule (RUL)", "pleural effusion"
    kind: str  # "grew", "shrank", "stable", "new", "resolved"
    text: str  # one sentence for the radiologist
    prior_mm: float | None = None
    current_mm: float | None = None


@dataclass(frozen=True)
class Report:
    """A report draft: template, parts in order, study and prior references, flagged changes, open questions."""

    report_id: str
    template: str
    template_version: int
    title: str
    parts: tuple[Part, ...]
    study: StudyRef | None = None
    prior: PriorRef | None = None
    changes: tuple[Change, ...] = ()
    questions: tuple[str, ...] = ()  # what the calculators still need, asked back in the dialogue
    next_id: int = 1
    impression_locked: bool = False  # True once the radiologist wrote or edited the impression
    dismissed: tuple[str, ...] = ()  # calculator recommendations the radiologist deleted: not added back

    @property
    def template_ref(self) -> str:
        return f"{self.template}@{self.template_version}"

    def part(self, slot: str) -> Part:
        for part in self.parts:
            if part.slot == slot:
                return part
        raise ReportError(f"the report has no section {slot!r}")

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(p.slot for p in self.parts)

    def statements(self) -> Iterable[tuple[Part, Statement]]:
        for part in self.parts:
            for statement in part.statements:
                yield part, statement

    def find(self, statement_id: str) -> tuple[Part, Statement]:
        for part, statement in self.statements():
            if statement.id == statement_id:
                return part, statement
        raise ReportError(f"no statement {statement_id!r} in the report")

    def section_text(self, section: Section | str) -> str:
        """All statement texts of a section (findings: every subsection), space-separated."""
        wanted = Section(section)
        return " ".join(s.text for p, s in self.statements() if p.section is wanted)

    @property
    def unconfirmed(self) -> tuple[Statement, ...]:
        return tuple(s for _, s in self.statements() if not s.confirmed)

    def new_statement(
        self,
        text: str,
        origin: Origin,
        confirmed: bool,
        citation: str | None = None,
        calculation: Mapping[str, Any] | None = None,
    ) -> tuple[Report, Statement]:
        """A statement with the next free id, and the report that remembers the id was used."""
        statement = Statement(f"s{self.next_id}", text, origin, confirmed, citation, calculation)
        return dataclasses.replace(self, next_id=self.next_id + 1), statement  # fmt: skip

    def with_part(self, slot: str, statements: Sequence[Statement]) -> Report:
        """The report with the statements of ``slot`` replaced."""
        self.part(slot)  # raises for an unknown slot
        parts = tuple(dataclasses.replace(p, statements=tuple(statements)) if p.slot == slot else p for p in self.parts)
        return dataclasses.replace(self, parts=parts)

    def replace(self, **changes: Any) -> Report:
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------------------------------- (de)serialise

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready structure (stored in SQLite and exported as JSON)."""
        return {
            "schema": SCHEMA_VERSION,
            "report_id": self.report_id,
            "template": self.template,
            "template_version": self.template_version,
            "title": self.title,
            "parts": [
                {"slot": p.slot, "title": p.title, "statements": [s.to_dict() for s in p.statements]}
                for p in self.parts
            ],
            "study": self.study.to_dict() if self.study else None,
            "prior": (
                {
                    "report_id": self.prior.report_id,
                    "study_date": self.prior.study_date.isoformat(),
                    "findings": self.prior.findings,
                    "impression": self.prior.impression,
                }
                if self.prior
                else None
            ),
            "changes": [dataclasses.asdict(c) for c in self.changes],
            "questions": list(self.questions),
            "next_id": self.next_id,
            "impression_locked": self.impression_locked,
            "dismissed": list(self.dismissed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        if data.get("schema") != SCHEMA_VERSION:
            raise ReportError(f"stored report has schema {data.get('schema')!r}; this version reads {SCHEMA_VERSION}")
        prior = data.get("prior")
        return cls(
            report_id=str(data["report_id"]),
            template=str(data["template"]),
            template_version=int(data["template_version"]),
            title=str(data["title"]),
            parts=tuple(
                Part(p["slot"], p["title"], tuple(Statement.from_dict(s) for s in p["statements"]))
                for p in data["parts"]
            ),
            study=StudyRef.from_dict(data["study"]) if data.get("study") else None,
            prior=(
                PriorRef(
                    prior["report_id"],
                    dt.date.fromisoformat(prior["study_date"]),
                    prior.get("findings", ""),
                    prior.get("impression", ""),
                )
                if prior
                else None
            ),  # fmt: skip
            changes=tuple(Change(**c) for c in data.get("changes", [])),
            questions=tuple(data.get("questions", [])),
            next_id=int(data["next_id"]),
            impression_locked=bool(data.get("impression_locked", False)),
            dismissed=tuple(data.get("dismissed", [])),
        )


def new_report_id() -> str:
    """A short random id the radiologist can type ("r-3f9a1c2e")."""
    return "r-" + secrets.token_hex(4)


def create_report(
    template: ReportTemplate | str, report_id: str | None = None, study: StudyRef | None = None
) -> Report:
    """A fresh draft: the template's defaults as unconfirmed statements."""
    tmpl = load_report_template(template) if isinstance(template, str) else template
    report = Report(
        report_id=report_id or new_report_id(),
        template=tmpl.name,
        template_version=tmpl.version,
        title=tmpl.title,
        parts=tuple(Part(slot, tmpl.slot_title(slot)) for slot in tmpl.slots),
        study=study,
    )
    for slot in tmpl.slots:
        sub = tmpl.subsection(slot)
        if sub is not None:
            defaults: tuple[str, ...] = sub.defaults
        elif slot in (Section.INDICATION, Section.TECHNIQUE, Section.COMPARISON):
            text = tmpl.section_defaults.get(Section(slot), "")
            defaults = (text,) if text else ()
        else:
            defaults = ()
        statements = []
        for text in defaults:
            report, statement = report.new_statement(text, Origin.TEMPLATE, confirmed=False)
            statements.append(statement)
        report = report.with_part(slot, statements)
    return report


# ------------------------------------------------------------------------------------------------ rendering


UNCONFIRMED_MARK = "[unconfirmed]"


def render_lines(report: Report, marks: bool = True, citations: bool = True) -> list[str]:
    """The report as plain-text lines: headings, subsection labels, numbered impression/recommendations."""
    lines = [report.title, ""]
    findings_started = False
    for part in report.parts:
        section = part.section
        if section is Section.FINDINGS:
            if not findings_started:
                lines += [f"{Section.FINDINGS.heading.upper()}:"]
                findings_started = True
            if part.statements:
                body = " ".join(_statement_text(s, marks, citations) for s in part.statements)
                lines.append(f"{part.title}: {body}")
            continue
        if findings_started and section is not Section.FINDINGS:
            lines.append("")
            findings_started = False
        if not part.statements:
            continue  # an empty section is left out (``report show`` names what is missing)
        lines.append(f"{section.heading.upper()}:")
        if section in NUMBERED:
            for n, s in enumerate(part.statements, 1):
                lines.append(f"{n}. {_statement_text(s, marks, citations)}")
        else:
            lines.append(" ".join(_statement_text(s, marks, citations) for s in part.statements))
        lines.append("")
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _statement_text(s: Statement, marks: bool, citations: bool) -> str:
    text = s.text
    if citations and s.citation:
        text += f" [{s.citation}]"
    if marks and not s.confirmed:
        text += f" {UNCONFIRMED_MARK}"
    return text


def render_text(report: Report, marks: bool = True, citations: bool = True) -> str:
    """The report as plain text (what the radiologist reads; SR text matches it)."""
    return "\n".join(render_lines(report, marks, citations)) + "\n"


def diff_reports(before: Report, after: Report) -> str:
    """A unified diff of the rendered text, without file headers: ``-`` removed lines, ``+`` added ones."""
    lines = difflib.unified_diff(
        render_lines(before), render_lines(after), fromfile="before", tofile="after", lineterm="", n=0
    )
    return "\n".join(line for line in lines if not line.startswith(("---", "+++")))


# ------------------------------------------------------------------------------------------------ history


@dataclass(frozen=True)
class Version:
    """One saved state of a report. ``restores`` is the version whose state this one stands for after undo."""

    number: int
    report: Report
    action: str  # "new", "dictate", "edit", "undo", "accept", ...
    summary: str  # what changed, PHI-free wording is not required here (stored, never logged)
    created_at: float = field(default=0.0)
    base: int | None = None  # the state before this change; undo returns to it

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ReportError(f"version number must be >= 1, got {self.number}")


def undo_target(history: Sequence[Version]) -> Version:
    """The version an "undo" returns to: the state before the current one's change."""
    if not history:
        raise ReportError("the report has no history")
    current = history[-1]
    if current.base is None:
        raise ReportError("nothing to undo: this is the report as first created")
    by_number = {v.number: v for v in history}
    return by_number[current.base]
