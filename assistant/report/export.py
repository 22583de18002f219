"""Export a report draft: plain text, Markdown, JSON (structured) and DICOM Comprehensive SR (highdicom).

The SR references the study by its pseudonymous UIDs (ingest replaced the originals; they are not kept) and
carries the pseudonymous patient key as Patient ID, no name, no birth date. Its own dates (content, instance
creation) are moved by the patient's date shift, like the study's (PS3.15 E.3.6): a real export day beside a
shifted study date would give the shift away. Its text is the draft's text, line for line: :func:`sr_text`
rebuilds it from a file read back with pydicom. A draft with unconfirmed statements is exported as PARTIAL
(Completion Flag) and every SR is UNVERIFIED: the assistant cannot verify a report.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import uuid
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import RadassistError
from assistant.report.draft import (
    NUMBERED,
    UNCONFIRMED_MARK,
    Origin,
    Report,
    Section,
    Statement,
    render_lines,
    render_text,
)

logger = logging.getLogger(__name__)

NOTICE = "Research prototype — not for clinical use. Every output must be checked by a qualified radiologist."
MANUFACTURER = "radassist"
SR_SERIES_NUMBER = 900  # a high series number keeps the report after the image series in viewers


class DateShifter(Protocol):
    """What the SR needs of the de-identification keys (``assistant.imaging.deid.Pseudonymizer``, which report
    may not import): the per-patient date shift ingest applied to the study's dates."""

    def date_shift(self, key: str | None) -> dt.timedelta: ...


class ExportError(RadassistError):
    """A report could not be exported (bad format, unwritable path, SR could not be built)."""


class ExportFormat(StrEnum):
    MARKDOWN = "md"
    TEXT = "txt"
    JSON = "json"
    SR = "sr"


# ------------------------------------------------------------------------------------------------ text formats


def to_text(report: Report) -> str:
    """Plain text with headings; unconfirmed statements marked."""
    return render_text(report)


def _md_statement(s: Statement) -> str:
    text = s.text.replace("*", r"\*").replace("_", r"\_")
    if s.citation:
        text += f" *[{s.citation}]*"
    if not s.confirmed:
        text += f" **{UNCONFIRMED_MARK}**"
    return text


def to_markdown(report: Report, version: int | None = None) -> str:
    """Markdown: headings, bold subsection labels, numbered impression and recommendations."""
    lines = [f"# {report.title}", ""]
    meta = f"Draft {report.report_id} · template {report.template_ref}"
    if version is not None:
        meta += f" · version {version}"
    lines += [f"*{meta}*", "", f"> {NOTICE}", ""]
    findings_open = False
    for part in report.parts:
        if part.section is Section.FINDINGS:
            if not findings_open:
                lines += [f"## {Section.FINDINGS.heading}", ""]
                findings_open = True
            if part.statements:
                lines += [f"**{part.title}:** " + " ".join(_md_statement(s) for s in part.statements), ""]
            continue
        findings_open = False
        lines += [f"## {part.section.heading}", ""]
        if part.section in NUMBERED:
            lines += [f"{n}. {_md_statement(s)}" for n, s in enumerate(part.statements, 1)] or ["—"]
        else:
            lines.append(" ".join(_md_statement(s) for s in part.statements) or "—")
        lines.append("")
    if report.changes:
        lines += ["## Changes since the prior report", ""] + [f"- {c.text}" for c in report.changes] + [""]
    if report.unconfirmed:
        lines += [f"*{len(report.unconfirmed)} statement(s) are {UNCONFIRMED_MARK}: template defaults or drafted "
                  "text the radiologist has not accepted.*", ""]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def to_json(report: Report, version: int | None = None) -> str:
    """The structured report (every statement with origin, confirmation, citation, calculator output)."""
    data: dict[str, Any] = {
        "notice": NOTICE,
        "version": version,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "report": report.to_dict(),
        "text": render_text(report),
        "unconfirmed": [s.id for s in report.unconfirmed],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


# ------------------------------------------------------------------------------------------------ DICOM SR

# Section containers (CID 7001 Diagnostic Imaging Report Headings) and the name of their TEXT items
# (CID 7002 Diagnostic Imaging Report Elements), PS3.16.
_SR_CODES: dict[Section, tuple[tuple[str, str], tuple[str, str]]] = {
    Section.INDICATION: (("121109", "Indications for Procedure"), ("121106", "Comment")),
    Section.TECHNIQUE: (("121064", "Current Procedure Descriptions"), ("121065", "Procedure Description")),
    Section.COMPARISON: (("121066", "Prior Procedure Descriptions"), ("121106", "Comment")),
    Section.FINDINGS: (("121070", "Findings"), ("121071", "Finding")),
    Section.IMPRESSION: (("121072", "Impressions"), ("121073", "Impression")),
    Section.RECOMMENDATIONS: (("121074", "Recommendations"), ("121075", "Recommendation")),
}
_SECTION_BY_CODE = {codes[0][0]: section for section, codes in _SR_CODES.items()}


def section_lines(report: Report) -> list[tuple[Section, list[str]]]:
    """The rendered text lines of each section, in report order (what the SR's TEXT items hold)."""
    lines = render_lines(report)
    out: list[tuple[Section, list[str]]] = []
    headings = {f"{s.heading.upper()}:": s for s in Section}
    for line in lines[1:]:
        if line in headings:
            out.append((headings[line], []))
        elif line and out:
            out[-1][1].append(line)
    return out


def _deterministic_uid(*parts: str) -> str:
    """A UID under 2.25 (PS3.5 B.2) derived from ``parts``: the same draft version gets the same UIDs."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "radassist-report\x00" + "\x00".join(parts)).int)


def _evidence(report: Report) -> tuple[list[Any], bool]:
    from pydicom.dataset import Dataset

    study = report.study
    # A draft made without a study (only a patient key, or nothing) gets a study UID of its own.
    study_uid = (
        study.study_instance_uid
        if study and study.study_instance_uid
        else _deterministic_uid(report.report_id, "study")
    )

    def stub(sop_class: str, sop_instance: str, series_uid: str) -> Dataset:
        ds = Dataset()
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_instance
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        ds.PatientID = (study.patient_key if study else None) or ""
        ds.PatientName = ""
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.AccessionNumber = ""
        ds.StudyID = ""
        ds.StudyDate = study.study_date.strftime("%Y%m%d") if study and study.study_date else ""
        ds.StudyTime = ""
        ds.ReferringPhysicianName = ""
        return ds

    if study and study.instances:
        return [stub(i.sop_class_uid, i.sop_instance_uid, i.series_instance_uid) for i in study.instances], True
    # No image references known: the stub only carries the study-level attributes; nothing is recorded as evidence.
    secondary_capture = "1.2.840.10008.5.1.4.1.1.7"
    return [stub(secondary_capture, _deterministic_uid(report.report_id, "none"), _deterministic_uid("s"))], False


_MAX_SHIFT_DAYS = 3650  # as assistant.imaging.deid: a made-up shift is as large as a real one


def sr_datetime(report: Report, keys: DateShifter | None = None, now: dt.datetime | None = None) -> dt.datetime:
    """When the SR says it was made, on the patient's shifted time line (PS3.15 E.3.6).

    With the de-identification ``keys`` and a patient key: now, moved by the same per-patient shift as the
    study's dates (ingest: ``Pseudonymizer.date_shift(patient_key)``), so the interval study → report is kept.
    Without them the shift cannot be known: the study's (already shifted) date, else now moved by a random
    shift. Never the real day: beside a shifted study date it would give the patient's shift away.
    """
    now = now or dt.datetime.now()
    study = report.study
    if keys is not None and study is not None and study.patient_key:
        return now + keys.date_shift(study.patient_key)
    if study is not None and study.study_date:
        return dt.datetime.combine(study.study_date, dt.time())
    return now - dt.timedelta(days=1 + secrets.randbelow(_MAX_SHIFT_DAYS))


def date_sr(sr: Any, when: dt.datetime) -> None:
    """Put ``when`` in every date the SR holds of its own (highdicom writes the real clock time)."""
    da, tm = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    sr.ContentDate, sr.ContentTime = da, tm
    sr.InstanceCreationDate, sr.InstanceCreationTime = da, tm
    for keyword in ("SeriesDate", "SeriesTime"):
        if keyword in sr:
            setattr(sr, keyword, da if keyword.endswith("Date") else tm)

    def walk(dataset: Any) -> None:  # DT values (verification, observation date-times) at any depth
        for elem in dataset:
            if elem.VR == "SQ":
                for item in elem.value or ():
                    walk(item)
            elif elem.VR == "DT" and elem.value:
                elem.value = when.strftime("%Y%m%d%H%M%S")

    walk(sr)


# Words that came from outside the product's fixed wording: a person's (dictated, edited) or a prior report's.
# Drafted statements are derived from the others: they hold such words only when the others do.
_OUTSIDE_ORIGINS = frozenset({Origin.DICTATED, Origin.EDITED, Origin.PRIOR})


def _free_text(report: Report) -> bool:
    """Whether the SR's text may hold words no rule controls (typed by a person, copied from a prior report, or
    drafted from those). Nothing scrubs these before export."""
    return bool(report.changes) or any(s.origin in _OUTSIDE_ORIGINS for _, s in report.statements())


def create_sr(report: Report, version: int = 1, keys: DateShifter | None = None) -> Any:
    """The draft as a DICOM Comprehensive SR dataset (``highdicom.sr.ComprehensiveSR``).

    ``keys``: the de-identification keys (a ``Pseudonymizer``) that shifted the study's dates; the SR's own dates
    get the same shift (see :func:`sr_datetime`).
    """
    import highdicom as hd
    from pydicom.sr.coding import Code

    root = hd.sr.ContainerContentItem(name=Code("18748-4", "LN", "Diagnostic Imaging Report"))
    root.ContentSequence = hd.sr.ContentSequence()
    for section, lines in section_lines(report):
        if not lines:
            continue
        (cvalue, cmeaning), (tvalue, tmeaning) = _SR_CODES[section]
        container = hd.sr.ContainerContentItem(
            name=Code(cvalue, "DCM", cmeaning), relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
        )
        container.ContentSequence = hd.sr.ContentSequence(
            [
                hd.sr.TextContentItem(
                    name=Code(tvalue, "DCM", tmeaning),
                    value=line,
                    relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
                )
                for line in lines
            ]
        )
        root.ContentSequence.append(container)
    evidence, record = _evidence(report)
    try:
        sr = hd.sr.ComprehensiveSR(
            evidence=evidence,
            content=root,
            series_instance_uid=_deterministic_uid(report.report_id, "series"),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=_deterministic_uid(report.report_id, "sr", str(version)),
            instance_number=version,
            manufacturer=MANUFACTURER,
            is_complete=not report.unconfirmed,
            is_final=False,
            is_verified=False,
            record_evidence=record,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"the DICOM SR could not be built: {exc}") from exc
    sr.SeriesDescription = report.title
    date_sr(sr, sr_datetime(report, keys))
    # PS3.15 E.1.1: YES only if nothing identifying is left. The header qualifies (pseudonymous key and UIDs,
    # shifted dates, no name); the TEXT items qualify only when all of their words are the product's fixed wording
    # (template defaults, calculator output, impressions drafted from those). Dictated, edited or prior text goes
    # in as written: it was never scrubbed and may name the patient, a relative, a date or an ID, so such an SR
    # (and one whose impression was drafted from such text) says NO.
    controlled = not _free_text(report)
    sr.PatientIdentityRemoved = "YES" if controlled else "NO"
    sr.DeidentificationMethod = (  # LO: at most 64 characters
        "radassist: pseudonymous key and UIDs, shifted dates"
        if controlled
        else "radassist: pseudonymous IDs, shifted dates; text not scrubbed"
    )
    return sr


def sr_text(dataset: Any) -> str:
    """The plain text of an SR written by :func:`create_sr` (read back with pydicom), as ``render_text`` gives it."""
    lines = [str(dataset.get("SeriesDescription", "")), ""]
    for container in dataset.get("ContentSequence", []):
        code = container.ConceptNameCodeSequence[0].CodeValue
        section = _SECTION_BY_CODE.get(code)
        if section is None:
            continue
        lines.append(f"{section.heading.upper()}:")
        lines += [str(item.TextValue) for item in container.get("ContentSequence", []) if "TextValue" in item]
        lines.append("")
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ files


def export_report(
    report: Report,
    fmt: ExportFormat | str,
    path: Path,
    version: int | None = None,
    keys: DateShifter | None = None,
) -> Path:
    """Write ``report`` to ``path`` in ``fmt`` (md, txt, json, sr); returns the path.

    ``keys``: the de-identification keys, so the SR's own dates get the patient's date shift (:func:`create_sr`).
    """
    try:
        kind = ExportFormat(fmt)
    except ValueError:
        raise ExportError(f"format={fmt!r} is not one of: {', '.join(f.value for f in ExportFormat)}") from None
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind is ExportFormat.SR:
            create_sr(report, version or 1, keys).save_as(path, enforce_file_format=True)
        else:
            text = {
                ExportFormat.MARKDOWN: lambda: to_markdown(report, version),
                ExportFormat.TEXT: lambda: to_text(report),
                ExportFormat.JSON: lambda: to_json(report, version),
            }[kind]()
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror}") from exc
    logger.info("report %s exported as %s", report.report_id, kind.value)
    return path


def empty_sections(report: Report) -> Sequence[str]:
    """Headings of sections that have no statement (e.g. a missing clinical indication)."""
    return [p.title for p in report.parts if p.section is not Section.FINDINGS and not p.statements]
