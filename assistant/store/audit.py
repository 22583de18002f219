"""A PHI-safe audit trail in SQLite: one row per answer, with no question or answer text in it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.store.db import owner_only

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
)
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


class AuditLog:
    """Append-only audit rows in ``path`` (SQLite); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            owner_only(self.path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
        return self._conn

    def record(self, rec: AuditRecord) -> None:
        """Append one row."""
        with self._lock:
            self._connection().execute(
                "INSERT INTO audit (ts, mode, template, model, chunk_ids, latency_ms, output_chars, outcome)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.ts or time.time(), rec.mode, rec.template, rec.model, json.dumps(list(rec.chunk_ids)),
                 rec.latency_ms, rec.output_chars, rec.outcome),
            )  # fmt: skip

    def recent(self, limit: int = 50) -> Sequence[AuditRecord]:
        """The newest rows first."""
        with self._lock:
            rows = self._connection().execute(
                "SELECT mode, template, model, chunk_ids, latency_ms, output_chars, outcome, ts"
                " FROM audit ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            AuditRecord(m, t, mo, tuple(json.loads(c)), lat, oc, out, ts) for m, t, mo, c, lat, oc, out, ts in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
