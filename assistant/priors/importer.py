"""``import_priors``: prior reports with raw identifiers in, de-identified and indexed reports out."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import retrieval
from assistant.errors import RetrievalError, translated_retrieval_errors
from assistant.imaging.deid import Pseudonymizer, clean_text
from assistant.priors.store import open_prior_store
from assistant.settings import Settings
from assistant.store.audit import AuditLog, record_priors_import

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Columns holding the raw patient identifier (turned into the ingest's pseudonymous key), in order of preference.
RAW_PATIENT_COLUMNS = ("patient_id", "mrn", "patient", "patientid", "medical_record_number", "patient_mrn")
KEY_COLUMNS = ("patient_key",)  # a key that is already pseudonymous (from `radassist ingest`: "P-" + 20 hex)
REF_COLUMNS = ("accession", "accession_number", "accessionnumber", "report_id", "uid", "id")
DATE_COLUMNS = retrieval.reports.DATE_COLUMNS
MODALITY_COLUMNS = retrieval.reports.MODALITY_COLUMNS
TEXT_COLUMNS = (*retrieval.reports.SECTIONS, "text", "report", "report_text")
_INGEST_KEY = re.compile(r"^P-[0-9a-f]{20}$")
# Names the row does not list: "Dr. Jones", "Signed by: A. Smith" (to the end of the line).
_TITLED_NAME = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof)\b\.?\s+(?:[A-Z][\w'-]*\.?\s*){1,3}")
_SIGNED = re.compile(
    r"\b(?:electronically\s+)?(?:signed|dictated|transcribed|read|reported|verified)\s+by\b[^\n]*", re.I
)
# Columns whose values identify someone (the patient, a physician, a site): scrubbed from the text.
_IDENTIFYING_COLUMN = re.compile(
    r"name|mrn|(?:^|_)id$|^id_|patient|accession|physician|doctor|radiolog|author|address|phone|mail|dob|birth|"
    r"ssn|sign|institution|hospital|referr|contact"
)
_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y")


@dataclass(frozen=True)
class ImportResult:
    """What an import did: rows read, reports and patients indexed, chunks new to the index."""

    rows: int
    reports: int
    patients: int
    added: int  # chunks new to the store (0 on a re-import of the same file)
    total: int  # chunks in the store afterwards (every patient's)
    path: Path | str  # where they are stored: the database (its file, or its URL without the password)

    def counts(self) -> tuple[tuple[str, int], ...]:
        """The numbers of the import, for the audit trail."""
        return (("rows", self.rows), ("reports", self.reports), ("patients", self.patients), ("added", self.added))

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "reports": self.reports,
            "patients": self.patients,
            "added": self.added,
            "total": self.total,
            "index": str(self.path),  # the historic name of this field: where the reports are stored
            "database": str(self.path),
        }


def prior_index_dir(settings: Settings) -> Path:
    """Where the prior-report index of earlier versions lived (``<data_dir>/index/reports``); the reports are in the
    database now, and such a folder is moved in on first use (:mod:`assistant.priors.store`)."""
    return Path(settings.data_dir) / "index" / "reports"


def _pick(row: Mapping[str, str], names: Sequence[str]) -> tuple[str | None, str | None]:
    """(column, value) of the first of ``names`` the row fills."""
    lowered = {k.strip().lower(): (k, v) for k, v in row.items()}
    for name in names:
        found = lowered.get(name)
        if found is not None and found[1].strip():
            return found[0], found[1].strip()
    return None, None


def _parse_date(text: str, number: int) -> dt.date:
    head = text.strip()[:10]
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(head[:8] if fmt == "%Y%m%d" else head, fmt).date()
        except ValueError:
            continue
    raise RetrievalError(f"report {number}: the date is not YYYY-MM-DD or YYYYMMDD")  # never echo the value


def _identifiers(row: Mapping[str, str]) -> list[str]:
    """The row's known identifiers: the values of its identifying columns (IDs, names, ...) and their words."""
    content = {c.lower() for c in (*TEXT_COLUMNS, *DATE_COLUMNS, *MODALITY_COLUMNS)}
    out: list[str] = []
    for column, value in row.items():
        name = column.strip().lower()
        if name in content or not value.strip() or not (_IDENTIFYING_COLUMN.search(name) or name in REF_COLUMNS):
            continue
        candidates = [value.strip(), *re.split(r"[\s^,;/]+", value)]
        for word in candidates:
            word = word.strip(" .'\"")
            has_letter = any(ch.isalpha() for ch in word)
            if (has_letter and len(word) >= 2) or (word.isdigit() and len(word) >= 4) or (
                not word.isdigit() and any(ch.isdigit() for ch in word) and len(word) >= 3
            ):
                out.append(word)
    return out


def scrub_report_text(text: str, identifiers: Sequence[str]) -> str:
    """Report text without the given identifiers, titled or signing names, dates, IDs, phones or e-mails."""
    out = _SIGNED.sub(" ", text)
    out = _TITLED_NAME.sub(" ", out)
    return clean_text(out, identifiers) or ""


def deidentify_rows(
    rows: Sequence[Mapping[str, str]], keys: Pseudonymizer, *, trust_keys: bool = False
) -> list[retrieval.PriorReport]:
    """Reports from raw rows, linked and de-identified (see the package docstring).

    A row's patient is its raw ID column (``patient_id``, ``mrn``, ...) or, with ``patient_key`` only, an ingest
    key ("P-" + 20 hex) taken as is with its dates taken as already shifted. ``trust_keys`` also takes any other
    ``patient_key`` value as is (the historic ``index build --corpus reports`` input).
    """
    reports: list[retrieval.PriorReport] = []
    for number, row in enumerate(rows, 1):
        _, raw_id = _pick(row, RAW_PATIENT_COLUMNS)
        _, given_key = _pick(row, KEY_COLUMNS)
        shifted = False
        if raw_id is not None:
            key = keys.patient_key(raw_id)
        elif given_key is not None and (_INGEST_KEY.match(given_key) or trust_keys):
            key, shifted = given_key, True
        elif given_key is not None:
            key = keys.patient_key(given_key)  # not an ingest key: a raw ID in the wrong column
        else:
            raise RetrievalError(f"report {number} has no patient ID (columns: {', '.join(RAW_PATIENT_COLUMNS)})")
        if key is None:  # unreachable: a non-empty ID always has a key
            raise RetrievalError(f"report {number} has an empty patient ID")
        _, date_text = _pick(row, DATE_COLUMNS)
        if date_text is None:
            raise RetrievalError(f"report {number} has no date (columns: {', '.join(DATE_COLUMNS)})")
        date = _parse_date(date_text, number)
        if not shifted:
            date = date + keys.date_shift(key)  # the same per-patient shift as the study's own dates
        identifiers = _identifiers(row)
        if raw_id is None and given_key is not None:
            identifiers = [i for i in identifiers if i != given_key]
        lowered = {k.strip().lower(): v for k, v in row.items()}
        sections: dict[str, str] = {}
        for name in retrieval.reports.SECTIONS:
            if lowered.get(name, "").strip():
                sections[name] = lowered[name]
        if not sections:
            _, text = _pick(row, ("text", "report", "report_text"))
            sections = retrieval.split_sections(text or "")
        clean = {name: scrub_report_text(body, identifiers) for name, body in sections.items()}
        clean = {name: body for name, body in clean.items() if body}
        if not clean:
            raise RetrievalError(f"report {number} has no text left after de-identification")
        _, ref = _pick(row, REF_COLUMNS)
        if ref is not None:
            report_id = keys.accession_key(ref)
        else:  # a content hash of the de-identified report: the same row gives the same id on a re-import
            body = "\x00".join(f"{k}={v}" for k, v in sorted(clean.items()))
            report_id = "R-" + hashlib.sha256(f"{key}\x00{date}\x00{body}".encode()).hexdigest()[:20]
        _, modality = _pick(row, MODALITY_COLUMNS)
        modality_code = re.sub(r"[^A-Z0-9]", "", (modality or "").upper())[:8]
        reports.append(retrieval.PriorReport(report_id, key, date, clean, modality_code))
    logger.info("de-identified %d prior reports of %d patients", len(reports), len({r.patient_key for r in reports}))
    return reports


def secure_tree(path: Path) -> None:
    """Folders 0700 and files 0600 under ``path``, whatever the umask they were written with."""
    root = Path(path)
    if not root.exists():
        return
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o700)
        for name in files:
            target = os.path.join(folder, name)
            if not os.path.islink(target) and stat.S_IMODE(os.stat(target).st_mode) & 0o077:
                os.chmod(target, 0o600)


def import_priors(
    path: Path,
    settings: Settings,
    embedder: retrieval.Embedder | None = None,
    *,
    progress: Progress | None = None,
    trust_keys: bool = False,
    show_progress: bool = False,
    audit: AuditLog | None = None,
) -> ImportResult:
    """De-identify the reports in ``path`` and add them to the prior-report store in the database.

    Idempotent: the same file imported again adds nothing (chunk ids hash the key, report id, date and text).
    With ``audit``, the import (or its failure) is recorded there: counts only, never a key, date or text.
    """
    started = time.monotonic()
    model = str(embedder.model_id if embedder is not None else settings.embedding_model)
    try:
        with translated_retrieval_errors():
            rows = retrieval.read_rows(Path(path))
        keys = Pseudonymizer.from_settings(settings)
        reports = deidentify_rows(rows, keys, trust_keys=trust_keys)
        result = index_reports(
            reports, settings, embedder, rows=len(rows), progress=progress, show_progress=show_progress
        )
    except Exception as exc:
        if audit is not None:
            record_priors_import(audit, model=model, seconds=time.monotonic() - started, outcome=type(exc).__name__)
        raise
    if audit is not None:
        record_priors_import(
            audit, model=model, seconds=time.monotonic() - started, outcome="ok", counts=result.counts()
        )
    return result


def index_reports(
    reports: Sequence[retrieval.PriorReport],
    settings: Settings,
    embedder: retrieval.Embedder | None = None,
    *,
    rows: int | None = None,
    progress: Progress | None = None,
    show_progress: bool = False,
    replace: bool = False,
) -> ImportResult:
    """Add already de-identified reports to the prior-report store in ``settings.database`` (seen at once by every
    replica on it); ``replace``: every stored prior report is removed first, in the same transaction."""
    embedder = embedder or retrieval.create_embedder(settings.embedding_model)
    with open_prior_store(settings) as store:
        if progress:
            progress(f"storing {len(reports)} prior reports in {store.where}")
        added = store.add(reports, embedder, replace=replace, show_progress=show_progress)
        total = int(store.stats()["chunks"])
        where = store.where
    return ImportResult(
        rows=len(reports) if rows is None else rows,
        reports=len(reports),
        patients=len({r.patient_key for r in reports}),
        added=added,
        total=total,
        path=where,
    )
