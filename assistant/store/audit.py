"""A PHI-safe audit trail in SQLite: one row per answer, with no question or answer text in it."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.store.db import SQLiteStore

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


class AuditLog(SQLiteStore):
    """Append-only audit rows in the local database (the shared :mod:`assistant.store.db` connection rules:
    owner-only file, WAL, ``synchronous=FULL``, busy timeout); safe to share between threads."""

    SCHEMA = _SCHEMA
    WHAT = "audit trail"

    def record(self, rec: AuditRecord) -> None:
        """Append one row."""
        with self._lock:
            try:
                self._connection().execute(
                    "INSERT INTO audit (ts, mode, template, model, chunk_ids, latency_ms, output_chars, outcome)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (rec.ts or time.time(), rec.mode, rec.template, rec.model, json.dumps(list(rec.chunk_ids)),
                     rec.latency_ms, rec.output_chars, rec.outcome),
                )  # fmt: skip
            except sqlite3.Error as exc:
                raise self.ERROR(f"cannot write to the audit trail {self.path}: {exc}") from exc

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
