"""A PHI-safe audit trail in the database: one row per answer, with no question or answer text in it.

Writing the row never costs the answer: when the trail cannot be written (database locked or corrupt, disk full,
data dir gone), the row waits in memory and goes in with the next row that can be written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import text

from assistant.errors import RadassistError
from assistant.store.db import DatabaseStore

logger = logging.getLogger(__name__)

# Rows kept in memory while the trail cannot be written (~100 bytes each: 1 MB at most); beyond it the oldest are
# dropped, and how many is logged.
RETRY_ROWS = 10_000


@dataclass(frozen=True)
class AuditRecord:
    """What is kept of one answer: never names, IDs, dates of the patient, or any text."""

    mode: str
    template: str
    model: str
    chunk_ids: tuple[str, ...]
    latency_ms: int
    output_chars: int
    outcome: str  # "ok" or the error class name
    ts: float = 0.0


@dataclass(frozen=True)
class AuditEntry:
    """A stored row: its id (the order rows were written in) and what it records."""

    id: int
    record: AuditRecord


class AuditLog(DatabaseStore):
    """Append-only audit rows in the database (the shared :mod:`assistant.store.db` rules; ``path`` a SQLite
    file or a database URL); safe to share between threads."""

    WHAT = "audit trail"

    def __init__(self, path: Path | str, retry_rows: int = RETRY_ROWS) -> None:
        super().__init__(path)
        self._lock = threading.RLock()  # guards the rows waiting in memory
        if retry_rows < 1:
            raise ValueError(f"retry_rows must be at least 1, got {retry_rows}")
        self._pending: deque[AuditRecord] = deque(maxlen=retry_rows)
        self._dropped = 0

    @property
    def pending(self) -> int:
        """Rows waiting in memory for the trail to be writable again."""
        with self._lock:
            return len(self._pending)

    def record(self, rec: AuditRecord) -> None:
        """Append one row, after any that are waiting; never raises for the store: a row that cannot be written
        is logged (without its content) and kept in memory for the next call."""
        if not rec.ts:  # stamped now, not when a retry writes it
            rec = dataclasses.replace(rec, ts=time.time())
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self._dropped += 1
            self._pending.append(rec)
            try:
                self._flush()
            except RadassistError as exc:
                logger.warning(
                    "audit row not written; %d row(s) kept in memory for the next try%s: %s",
                    len(self._pending), f" ({self._dropped} older one(s) dropped)" if self._dropped else "", exc,
                )  # fmt: skip

    def _flush(self) -> None:
        """Write every waiting row in one transaction; on failure they all stay waiting."""
        rows = [
            {
                "ts": r.ts, "mode": r.mode, "template": r.template, "model": r.model,
                "chunk_ids": json.dumps(list(r.chunk_ids)), "latency_ms": r.latency_ms,
                "output_chars": r.output_chars, "outcome": r.outcome,
            }
            for r in self._pending
        ]  # fmt: skip
        try:
            with self._writing() as conn:
                conn.execute(
                    text(
                        "INSERT INTO audit (ts, mode, template, model, chunk_ids, latency_ms, output_chars, outcome)"
                        " VALUES (:ts, :mode, :template, :model, :chunk_ids, :latency_ms, :output_chars, :outcome)"
                    ),
                    rows,
                )
        except RadassistError:
            self.close()  # the next try opens the database afresh (it may have been repaired, or the disk freed)
            raise
        if len(rows) > 1:
            logger.info("audit trail writable again: %d waiting row(s) written", len(rows) - 1)
        self._pending.clear()
        self._dropped = 0

    def recent(self, limit: int = 50) -> Sequence[AuditRecord]:
        """The newest rows first."""
        with self._reading() as conn:
            rows = conn.execute(
                text(
                    "SELECT mode, template, model, chunk_ids, latency_ms, output_chars, outcome, ts"
                    " FROM audit ORDER BY id DESC LIMIT :limit"
                ),
                {"limit": int(limit)},
            ).fetchall()
        return [AuditRecord(m, t, mo, tuple(json.loads(c)), lat, oc, out, ts) for m, t, mo, c, lat, oc, out, ts in rows]

    def between(self, since: float, until: float | None = None, batch: int = 1000) -> Iterator[AuditEntry]:
        """Rows with ``since <= ts < until`` (no upper bound when None), in the order they were written; read in
        batches, each in its own short transaction."""
        last = 0
        while True:
            bound = "" if until is None else " AND ts < :until"
            with self._reading() as conn:
                rows = conn.execute(
                    text(
                        "SELECT id, mode, template, model, chunk_ids, latency_ms, output_chars, outcome, ts"
                        f" FROM audit WHERE id > :last AND ts >= :since{bound} ORDER BY id LIMIT :batch"
                    ),
                    {"last": last, "since": since, "until": until, "batch": int(batch)},
                ).fetchall()
            for i, m, t, mo, c, lat, oc, out, ts in rows:
                yield AuditEntry(i, AuditRecord(m, t, mo, tuple(json.loads(c)), lat, oc, out, ts))
            if len(rows) < batch:
                return
            last = rows[-1][0]


class RedactedStudy(Protocol):
    """What the audit needs of a study whose pixels were read for burned-in text (an imaging ``Study``)."""

    @property
    def redaction_seconds(self) -> float: ...

    @property
    def redaction_outcome(self) -> str: ...

    def redaction_audit(self) -> tuple[str, ...]: ...


def record_burned_in_text(audit: AuditLog, studies: Iterable[RedactedStudy]) -> int:
    """One row per study whose pixels were read for burned-in text: frames, box counts and boxes, never text.
    Shared by the command line and the web app's upload; returns the number of rows written."""
    written = 0
    for study in studies:
        entries = study.redaction_audit()
        if not entries:
            continue
        latency = round(study.redaction_seconds * 1000)
        audit.record(AuditRecord("ingest", "burned_in_text", "tesseract", entries, latency, 0, study.redaction_outcome))
        written += 1
    return written


def record_priors_import(
    audit: AuditLog, *, model: str, seconds: float, outcome: str, counts: Sequence[tuple[str, int]] = ()
) -> None:
    """One row per prior-report import (command line or web app): how many rows, reports, patients and new
    sections as ``name=N`` entries, never a key, date or text. ``outcome`` "ok" or the error class's name."""
    entries = tuple(f"{name}={number}" for name, number in counts)
    audit.record(AuditRecord("priors", "import", model, entries, round(seconds * 1000), 0, outcome))
