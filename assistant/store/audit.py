"""A PHI-safe audit trail in SQLite: one row per answer, with no question or answer text in it.

Writing the row never costs the answer: when the trail cannot be written (database locked or corrupt, disk full,
data dir gone), the row waits in memory and goes in with the next row that can be written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import RadassistError
from assistant.store.db import SQLiteStore, transaction

logger = logging.getLogger(__name__)

# Rows kept in memory while the trail cannot be written (~100 bytes each: 1 MB at most); beyond it the oldest are
# dropped, and how many is logged.
RETRY_ROWS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    mode TEXT NOT NULL,
    template TEXT NOT NULL,
    model TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    output_chars INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
"""


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


class AuditLog(SQLiteStore):
    """Append-only audit rows in the local database (the shared :mod:`assistant.store.db` connection rules:
    owner-only file, WAL, ``synchronous=FULL``, busy timeout); safe to share between threads."""

    SCHEMA = _SCHEMA
    WHAT = "audit trail"

    def __init__(self, path: Path, retry_rows: int = RETRY_ROWS) -> None:
        super().__init__(path)
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
            (r.ts, r.mode, r.template, r.model, json.dumps(list(r.chunk_ids)), r.latency_ms, r.output_chars, r.outcome)
            for r in self._pending
        ]
        conn = self._connection()
        try:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO audit (ts, mode, template, model, chunk_ids, latency_ms, output_chars, outcome)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.Error as exc:
            self.close()  # the next try opens the file afresh (it may have been repaired, or the disk freed)
            raise self.ERROR(f"cannot write to the audit trail {self.path}: {exc}") from exc
        if len(rows) > 1:
            logger.info("audit trail writable again: %d waiting row(s) written", len(rows) - 1)
        self._pending.clear()
        self._dropped = 0

    def recent(self, limit: int = 50) -> Sequence[AuditRecord]:
        """The newest rows first."""
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT mode, template, model, chunk_ids, latency_ms, output_chars, outcome, ts"
                        " FROM audit ORDER BY id DESC LIMIT ?",
                        (limit,),
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise self.ERROR(f"cannot read the audit trail {self.path}: {exc}") from exc
        return [AuditRecord(m, t, mo, tuple(json.loads(c)), lat, oc, out, ts) for m, t, mo, c, lat, oc, out, ts in rows]

    def between(self, since: float, until: float | None = None, batch: int = 1000) -> Iterator[AuditEntry]:
        """Rows with ``since <= ts < until`` (no upper bound when None), in the order they were written; read in
        batches, the store's lock held only while one is read."""
        last = 0
        while True:
            with self._lock:
                try:
                    rows = (
                        self._connection()
                        .execute(
                            "SELECT id, mode, template, model, chunk_ids, latency_ms, output_chars, outcome, ts"
                            " FROM audit WHERE id > ? AND ts >= ? AND ts < ? ORDER BY id LIMIT ?",
                            (last, since, float("inf") if until is None else until, batch),
                        )
                        .fetchall()
                    )
                except sqlite3.Error as exc:
                    raise self.ERROR(f"cannot read the audit trail {self.path}: {exc}") from exc
            for i, m, t, mo, c, lat, oc, out, ts in rows:
                yield AuditEntry(i, AuditRecord(m, t, mo, tuple(json.loads(c)), lat, oc, out, ts))
            if len(rows) < batch:
                return
            last = rows[-1][0]
