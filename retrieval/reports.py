"""Prior reports: import (CSV/JSON), sections, and indexes that are searched per patient only."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from retrieval.chunking import DEFAULT_MAX_CHARS, chunk_text
from retrieval.documents import Chunk, Hit
from retrieval.embedding import Embedder
from retrieval.errors import PatientKeyRequiredError, RetrievalError
from retrieval.index import HybridIndex
from retrieval.vectors import IndexConfig

logger = logging.getLogger(__name__)

SECTIONS = ("indication", "comparison", "findings", "impression")
REPORTS_CORPUS = "reports"
TEACHING_CORPUS = "teaching"
# Column names accepted for the patient key, the study date and the report id, in order of preference.
PATIENT_COLUMNS = ("patient_key", "patient_id", "patient")
DATE_COLUMNS = ("date", "study_date", "report_date")
ID_COLUMNS = ("report_id", "uid", "id", "accession")
MODALITY_COLUMNS = ("modality", "modalities")
_EMPTY = {"", "none", "none.", "n/a", "na"}
_HEADING = re.compile(
    r"^\s*(indications?|clinical (?:history|information)|history|comparisons?|findings|impressions?|conclusions?)\s*:",
    re.I | re.M,
)
_HEADING_TO_SECTION = {
    "indication": "indication", "indications": "indication", "clinical history": "indication",
    "clinical information": "indication", "history": "indication", "comparison": "comparison",
    "comparisons": "comparison", "findings": "findings", "impression": "impression",
    "impressions": "impression", "conclusion": "impression", "conclusions": "impression",
}


@dataclass(frozen=True)
class PriorReport:
    """One report of one patient: pseudonymous key, study date and its sections (indication ... impression)."""

    report_id: str
    patient_key: str
    study_date: dt.date
    sections: Mapping[str, str] = field(default_factory=dict)
    modality: str = ""  # e.g. "CT" ("" when the source did not say)

    def __post_init__(self) -> None:
        if not self.patient_key.strip():
            raise RetrievalError(f"report {self.report_id!r} has an empty patient key")

    def chunks(self, corpus: str = REPORTS_CORPUS, max_chars: int = DEFAULT_MAX_CHARS) -> list[Chunk]:
        """One chunk per non-empty section (long sections split); ids also hash the patient and report."""
        out: list[Chunk] = []
        for name in SECTIONS:
            text = self.sections.get(name, "").strip()
            if text.lower() in _EMPTY:
                continue
            for piece in chunk_text(text, max_chars):
                out.append(
                    Chunk.create(
                        source=f"report:{self.report_id}",
                        title=f"Prior report {self.study_date.isoformat()}",
                        section=name,
                        text=piece,
                        metadata={
                            "corpus": corpus,
                            "patient_key": self.patient_key,
                            "date": self.study_date.isoformat(),
                            "report_id": self.report_id,
                            **({"modality": self.modality} if self.modality else {}),
                        },
                        identity_keys=("patient_key", "report_id", "date"),
                    )
                )
        return out


def relative_date(prior: dt.date, current: dt.date | None) -> tuple[str, int | None]:
    """("1 year 2 months before this study", days) for a prior's date; days None when ``current`` is unknown."""
    if current is None:
        return "date of this study unknown", None
    days = (current - prior).days
    if days == 0:
        return "same day as this study", 0
    span = abs(days)
    when = "before" if days > 0 else "after"
    if span < 31:
        text = f"{span} day{'s' if span != 1 else ''}"
    else:
        months = round(span / 30.4375)  # mean Gregorian month: 365.25 / 12 days
        years, months = divmod(months, 12)
        parts = [f"{years} year{'s' if years != 1 else ''}"] if years else []
        if months or not parts:
            parts.append(f"{months} month{'s' if months != 1 else ''}")
        text = " ".join(parts)
    return f"{text} {when} this study", days


def split_sections(text: str) -> dict[str, str]:
    """Sections of a free-text report by its headings (``FINDINGS:`` ...); text without headings is findings."""
    marks = list(_HEADING.finditer(text))
    if not marks:
        return {"findings": text.strip()} if text.strip() else {}
    out: dict[str, str] = {}
    preamble = text[: marks[0].start()].strip()
    if preamble:
        out["indication"] = preamble
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        name = _HEADING_TO_SECTION[mark.group(1).lower()]
        body = text[mark.end():end].strip()
        if body:
            out[name] = f"{out[name]}\n{body}" if name in out else body
    return out


@dataclass(frozen=True)
class SyntheticPatients:
    """Deterministic made-up patient keys and dates for data without them (demo and tests only).

    Each report id is hashed with ``seed``: the hash picks one of ``n_patients`` keys (``demo-0001`` ...) and
    a date within ``span_days`` after ``start``. Same input, same assignment, on every machine.
    """

    n_patients: int = 1000
    seed: str = "radassist-demo"
    start: dt.date = dt.date(2015, 1, 1)
    span_days: int = 3650

    def __post_init__(self) -> None:
        if self.n_patients < 1 or self.span_days < 1:
            raise RetrievalError("SyntheticPatients needs n_patients >= 1 and span_days >= 1")

    def assign(self, report_id: str) -> tuple[str, dt.date]:
        """(patient key, study date) for ``report_id``."""
        digest = hashlib.sha256(f"{self.seed}\x00{report_id}".encode()).digest()
        patient = int.from_bytes(digest[:8], "big") % self.n_patients
        day = int.from_bytes(digest[8:16], "big") % self.span_days
        width = max(4, len(str(self.n_patients)))
        return f"demo-{patient + 1:0{width}d}", self.start + dt.timedelta(days=day)


Assigner = Callable[[str], tuple[str, dt.date]]


def _pick(row: Mapping[str, str], names: Sequence[str]) -> str | None:
    lowered = {k.strip().lower(): v for k, v in row.items() if k is not None}
    for name in names:
        value = lowered.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _parse_date(value: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise RetrievalError(f"{where}: the date must be ISO (YYYY-MM-DD), got {value!r}") from exc


def report_from_row(
    row: Mapping[str, object],
    index: int,
    mapping: Mapping[str, tuple[str, dt.date]] | None = None,
    assign: Assigner | None = None,
) -> PriorReport:
    """One report from a CSV row or JSON object; patient key and date come from the row, ``mapping`` or ``assign``."""
    flat = {str(k): ("" if v is None else str(v)) for k, v in row.items()}
    where = f"report {index + 1}"
    report_id = _pick(flat, ID_COLUMNS) or str(index + 1)
    patient, date_text = _pick(flat, PATIENT_COLUMNS), _pick(flat, DATE_COLUMNS)
    if patient and date_text:
        key, date = patient, _parse_date(date_text, where)
    elif mapping is not None and report_id in mapping:
        key, date = mapping[report_id]
    elif assign is not None:
        key, date = assign(report_id)
    else:
        raise RetrievalError(
            f"{where} (id {report_id!r}) has no patient key and date: add patient_key/date columns, pass a "
            f"mapping, or use synthetic patients for demo data"
        )
    lowered = {k.strip().lower(): v for k, v in flat.items()}
    sections = {name: lowered[name].strip() for name in SECTIONS if lowered.get(name, "").strip()}
    if not sections and lowered.get("text", "").strip():
        sections = split_sections(lowered["text"])
    modality = (_pick(flat, MODALITY_COLUMNS) or "").upper()
    return PriorReport(report_id=report_id, patient_key=key, study_date=date, sections=sections, modality=modality)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a reports file (CSV, JSON or JSONL) as flat string dicts; a clear error for a bad file."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                rows: list[Mapping[str, object]] = list(csv.DictReader(fh))
        elif path.suffix.lower() == ".jsonl":
            with open(path, encoding="utf-8") as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data.get("reports", []) if isinstance(data, dict) else data
        else:
            raise RetrievalError(f"reports must be .csv, .json or .jsonl, got {path.name}")
    except OSError as exc:
        raise RetrievalError(f"cannot read reports from {path}: {exc.strerror}") from exc
    except (ValueError, csv.Error) as exc:
        raise RetrievalError(f"{path} is not a valid reports file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise RetrievalError(f"{path} is not UTF-8 text") from exc
    out = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise RetrievalError(f"{path}: report {number} is not an object with named fields")
        out.append({str(k): ("" if v is None else str(v)) for k, v in row.items() if k is not None})
    return out


def read_reports(
    path: Path,
    mapping: Mapping[str, tuple[str, dt.date]] | None = None,
    synthetic: SyntheticPatients | None = None,
) -> list[PriorReport]:
    """Reports from a CSV file (columns as in IU X-ray) or a JSON/JSONL file of objects."""
    assign = synthetic.assign if synthetic is not None else None
    rows = read_rows(path)
    reports = [report_from_row(row, i, mapping, assign) for i, row in enumerate(rows)]
    logger.info("read %d reports of %d patients", len(reports), len({r.patient_key for r in reports}))
    return reports


def report_chunks(reports: Iterable[PriorReport], corpus: str = REPORTS_CORPUS) -> list[Chunk]:
    """All sections of all reports as chunks."""
    return [chunk for report in reports for chunk in report.chunks(corpus)]


def _require_key(patient_key: str | None) -> str:
    if patient_key is None or not str(patient_key).strip():
        raise PatientKeyRequiredError("prior reports can only be searched for one patient: a patient key is required")
    return str(patient_key).strip()


def group_reports(patient_key: str, chunks: Iterable[Chunk]) -> list[PriorReport]:
    """The reports of one patient from their section chunks (in order), newest first; another patient's chunks are
    left out, whatever the caller handed in."""
    key = _require_key(patient_key)
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    modality: dict[tuple[str, str], str] = {}
    for chunk in chunks:
        meta = chunk.metadata
        if meta.get("patient_key") != key:
            continue
        ident = (str(meta.get("report_id")), str(meta.get("date")))
        sections = grouped.setdefault(ident, {})
        sections[chunk.section] = f"{sections.get(chunk.section, '')} {chunk.text}".strip()
        modality[ident] = str(meta.get("modality") or modality.get(ident, ""))  # the same on every section
    out = [
        PriorReport(rid, key, dt.date.fromisoformat(date), dict(sections), modality.get((rid, date), ""))
        for (rid, date), sections in grouped.items()
    ]
    return sorted(out, key=lambda r: (r.study_date, r.report_id), reverse=True)


class _ReportIndex:
    """A hybrid index over report sections of one corpus; subclasses decide how it may be searched."""

    corpus: ClassVar[str]

    def __init__(self, index: HybridIndex) -> None:
        self._index = index

    @classmethod
    def build(
        cls,
        reports: Iterable[PriorReport],
        embedder: Embedder,
        path: Path | None = None,
        *,
        config: IndexConfig | None = None,
        show_progress: bool = False,
    ) -> Self:
        """Index the reports' sections (saved to ``path`` if given)."""
        chunks = report_chunks(reports, cls.corpus)
        return cls(HybridIndex.build(chunks, embedder, path, config=config, show_progress=show_progress))

    @classmethod
    def load(cls, path: Path, embedder: Embedder, *, config: IndexConfig | None = None) -> Self:
        """Open a saved index."""
        return cls(HybridIndex.load(path, embedder, config=config))

    @classmethod
    def from_vectors(
        cls, chunks: Sequence[Chunk], vectors: np.ndarray, embedder: Embedder, *, config: IndexConfig | None = None
    ) -> Self:
        """An in-memory index over chunks embedded before (``vectors``: (N, D) float32 unit rows, by ``embedder``'s
        model), e.g. one patient's sections read from a database for one query: nothing is embedded again."""
        return cls(HybridIndex(list(chunks), np.asarray(vectors, dtype=np.float32), embedder, config=config))

    def add(self, reports: Iterable[PriorReport], *, show_progress: bool = False) -> int:
        """Add reports (sections already present are skipped); returns the number of new chunks."""
        return self._index.add(report_chunks(reports, self.corpus), show_progress=show_progress)

    def __len__(self) -> int:
        return len(self._index)


class PriorReportIndex(_ReportIndex):
    """Prior reports of many patients; every search is confined to one patient's reports."""

    corpus = REPORTS_CORPUS

    def search(
        self,
        query: str,
        patient_key: str,
        k: int = 5,
        *,
        sections: Sequence[str] | None = None,
        min_relevance: float | None = None,
    ) -> list[Hit]:
        """The ``k`` best sections of this patient's reports only (never another patient's)."""
        filters: dict[str, str | Sequence[str]] = {"patient_key": _require_key(patient_key)}
        hits = self._index.search(query, k, filters, min_relevance=min_relevance)
        if sections is not None:
            hits = [h for h in hits if h.section in sections]
        key = filters["patient_key"]
        return [h for h in hits if h.metadata.get("patient_key") == key]

    def patient_reports(self, patient_key: str) -> list[Chunk]:
        """All indexed sections of one patient's reports, newest first."""
        key = _require_key(patient_key)
        rows = self._index.candidate_rows({"patient_key": key})
        every = self._index.chunks
        chunks = [every[int(r)] for r in rows]
        return sorted(chunks, key=lambda c: (c.metadata.get("date", ""), c.source, c.section), reverse=True)

    def reports(self, patient_key: str) -> list[PriorReport]:
        """One patient's indexed reports, sections regrouped, newest first."""
        key = _require_key(patient_key)
        return group_reports(key, self.patient_reports(key))

    def stats(self) -> dict[str, object]:
        """Index stats plus the number of patients."""
        stats = self._index.stats()
        stats["patients"] = len({c.metadata.get("patient_key") for c in self._index.chunks})
        return stats


class TeachingIndex(_ReportIndex):
    """An opt-in, de-identified teaching corpus of many patients, for "similar cases" only (never priors)."""

    corpus = TEACHING_CORPUS

    def similar_cases(
        self, query: str, k: int = 5, *, exclude_patient: str | None = None, min_relevance: float | None = None
    ) -> list[Hit]:
        """Sections of other cases like ``query``, optionally leaving out one patient's own reports."""
        hits = self._index.search(query, k + (20 if exclude_patient else 0), min_relevance=min_relevance)
        if exclude_patient:
            hits = [h for h in hits if h.metadata.get("patient_key") != exclude_patient]
        return hits[:k]

    def stats(self) -> dict[str, object]:
        """Index stats."""
        return self._index.stats()
