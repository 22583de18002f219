"""The pydicom side of the PACS exchange: instances to bytes, SR text out of a prior, and the SR re-identified
on its way out. pydicom Datasets go no further than this module and the client (which hands them straight here).

Re-identification (:func:`reidentify_sr`) is the one place where real identifiers are written into an object
radassist made: the patient and study modules are copied from the PACS's own copy of the study (its WADO-RS
metadata), never from the de-identified draft, and every pseudonymous UID the SR references is replaced by the
real UID that maps to it (each real UID is checked by recomputing its pseudonym: a UID that maps to none of
them stops the send).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Mapping
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from assistant.imaging.deid import collect_identifiers
from assistant.priors.importer import scrub_report_text
from assistant.report.export import date_sr

logger = logging.getLogger(__name__)

# The Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1) as the PACS holds them: what the SR's own
# patient and study modules must say so that the PACS files it with the study it reports.
PATIENT_STUDY_KEYWORDS = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "OtherPatientIDsSequence",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "StudyDescription",
)  # fmt: skip


def dataset_bytes(ds: Any) -> bytes:
    """A retrieved instance as a DICOM file (Part 10) in memory, for ingest."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def decoded_bytes(item: Mapping[str, Any]) -> int:
    """Decoded pixel bytes an instance declares in its DICOM JSON metadata (rows × columns × frames × samples ×
    bytes per sample, as ingest's budget counts them); 0 for an instance without pixels."""

    def first(tag: str, default: int) -> int:
        values = (item.get(tag) or {}).get("Value") or []
        try:
            return int(values[0]) if values else default
        except (TypeError, ValueError):
            return default

    rows, columns = first("00280010", 0), first("00280011", 0)
    frames, samples, bits = first("00280008", 1), first("00280002", 1), first("00280100", 8)
    return rows * columns * max(frames, 1) * max(samples, 1) * max((bits + 7) // 8, 1)


def patient_study_from_metadata(item: Mapping[str, Any]) -> Dataset:
    """The Patient and General Study attributes of an instance's WADO-RS metadata (the PACS copy)."""
    wanted = {tag: value for tag, value in item.items() if _keyword(tag) in PATIENT_STUDY_KEYWORDS}
    return Dataset.from_json(wanted)


def _keyword(tag: str) -> str:
    from pydicom.datadict import keyword_for_tag

    try:
        return keyword_for_tag(int(tag, 16))
    except ValueError:
        return ""


# ------------------------------------------------------------------------------------------------ priors (SR in)

# CID 7001 Diagnostic Imaging Report Headings (PS3.16) → the priors' section names (retrieval.reports.SECTIONS).
_HEADINGS = {
    "121109": "indication", "121064": "technique", "121066": "comparison", "121070": "findings",
    "121072": "impression", "121074": "recommendations",
}  # fmt: skip


def sr_sections(ds: Any) -> dict[str, str]:
    """The TEXT of an SR by report section, scrubbed as the priors import scrubs a report (``scrub_report_text``:
    the identifiers its header holds, titled and signing names, dates, IDs, phone numbers, e-mails)."""
    header = Dataset()
    for elem in ds:  # the header's identifiers; the report text itself is what gets cleaned, not collected
        if elem.keyword != "ContentSequence":
            header.add(elem)
    identifiers = collect_identifiers(header)
    sections: dict[str, list[str]] = {}

    def walk(items: Any, section: str) -> None:
        for item in items or ():
            code = ""
            if "ConceptNameCodeSequence" in item and item.ConceptNameCodeSequence:
                code = str(item.ConceptNameCodeSequence[0].get("CodeValue", ""))
            here = _HEADINGS.get(code, section)
            if item.get("ValueType") == "TEXT" and item.get("TextValue"):
                cleaned = scrub_report_text(str(item.TextValue), identifiers)
                if cleaned:
                    sections.setdefault(here, []).append(cleaned)
            walk(item.get("ContentSequence"), here)

    walk(ds.get("ContentSequence"), "findings")
    return {name: " ".join(lines) for name, lines in sections.items()}


def read_instance(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


# ------------------------------------------------------------------------------------------------ send (SR out)

_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "ReferencedSOPInstanceUID")


def reidentify_sr(sr: Any, pacs_copy: Dataset, real_uids: Mapping[str, str], now: dt.datetime | None = None) -> Any:
    """The de-identified SR ``sr`` readied for the PACS: patient and study modules from ``pacs_copy``, every
    referenced pseudonymous UID replaced through ``real_uids`` (pseudonym → real UID), its own dates the real
    time of sending. Raises ``KeyError`` naming no UID when a reference has no real UID."""
    own_series, own_sop = sr.SeriesInstanceUID, sr.SOPInstanceUID
    pseudo_study = sr.StudyInstanceUID

    def walk(dataset: Any) -> None:
        for elem in dataset:
            if elem.VR == "SQ":
                for item in elem.value or ():
                    walk(item)
            elif elem.keyword in _UID_KEYWORDS and elem.value:
                value = str(elem.value)
                if value in (own_series, own_sop):
                    continue
                if value not in real_uids:
                    raise KeyError("a referenced UID has no counterpart on the PACS")
                elem.value = real_uids[value]

    for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        if keyword in sr:
            for item in sr[keyword].value:
                walk(item)
    if pseudo_study not in real_uids:
        raise KeyError("the study has no counterpart on the PACS")
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in pacs_copy:
            sr[keyword] = pacs_copy[keyword]
        elif keyword in sr and keyword not in ("StudyInstanceUID",):
            del sr[keyword]
    sr.StudyInstanceUID = real_uids[pseudo_study]
    date_sr(sr, now or dt.datetime.now())  # the real day on the way out, in every date the SR holds of its own
    # Identified now: the de-identification attributes (PS3.3 C.12.1) no longer describe it.
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
                    "LongitudinalTemporalInformationModified"):  # fmt: skip
        if keyword in sr:
            del sr[keyword]
    return sr
