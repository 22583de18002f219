"""Report drafts, their version history and the drafting dialogue, in SQLite under the data dir.

Every change is one committed transaction (WAL, ``synchronous=FULL``), so a draft and its history survive an app
restart, an LLM engine crash and a killed app process. A dictation is written to the dialogue *before* the model is
asked, so nothing the radiologist said is lost when generation fails half way; the draft itself only ever moves
from one complete version to the next.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from assistant.errors import RadassistError
from assistant.report.draft import Report, ReportError, Version
from assistant.store.db import SQLiteStore, transaction

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS report_drafts (
    report_id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    patient_key TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    current_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS report_versions (
    report_id TEXT NOT NULL REFERENCES report_drafts(report_id),
    number INTEGER NOT NULL,
    created_at REAL NOT NULL,
    action TEXT NOT NULL,
    summary TEXT NOT NULL,
    base INTEGER,
    content TEXT NOT NULL,
    PRIMARY KEY (report_id, number)
);
CREATE TABLE IF NOT EXISTS report_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL REFERENCES report_drafts(report_id),
    created_at REAL NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER
);
CREATE INDEX IF NOT EXISTS report_messages_by_report ON report_messages(report_id, id);
"""


class StoreError(RadassistError):
    """The report database cannot be opened, read or written."""


class MessageStatus(StrEnum):
    PENDING = "pending"  # written before the model was asked
    DONE = "done"
    FAILED = "failed"  # the model (or something else) failed: the text is kept, the draft unchanged
    NOTE = "note"  # the assistant's replies


@dataclass(frozen=True)
class Message:
    """One turn of the drafting dialogue."""

    id: int
    report_id: str
    role: str  # "user" or "assistant"
    text: str
    status: MessageStatus
    created_at: float
    version: int | None = None  # the version this turn produced


@dataclass(frozen=True)
class DraftInfo:
    """A line of ``report list``."""

    report_id: str
    template: str
    patient_key: str | None
    updated_at: float
    current_version: int


class ReportStore(SQLiteStore):
    """Drafts, versions and dialogue in one SQLite file (``settings.db_path``); safe to share between threads."""

    SCHEMA = _SCHEMA
    WHAT = "report database"
    ERROR = StoreError

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._connection()) as conn:
            yield conn

    def __enter__(self) -> ReportStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ drafts

    def create(self, report: Report, summary: str = "created from the template") -> Version:
        """Save a new draft as version 1."""
        now = time.time()
        version = Version(1, report, "new", summary, now, None)
        try:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT INTO report_drafts (report_id, template, patient_key, created_at, updated_at,"
                    " current_version) VALUES (?, ?, ?, ?, ?, 1)",
                    (report.report_id, report.template_ref, report.study.patient_key if report.study else None,
                     now, now),
                )  # fmt: skip
                self._insert_version(conn, report.report_id, version)
        except sqlite3.IntegrityError as exc:
            raise ReportError(f"a report with id {report.report_id!r} already exists") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save the new report: {exc}") from exc
        logger.info("report %s created (%s)", report.report_id, report.template_ref)
        return version

    def save(
        self, report: Report, action: str, summary: str, base: int | None, message_id: int | None = None
    ) -> Version:
        """Append the next version of ``report`` (one transaction; marks the dialogue turn done)."""
        now = time.time()
        try:
            with self._transaction() as conn:
                row = conn.execute(
                    "SELECT current_version FROM report_drafts WHERE report_id = ?", (report.report_id,)
                ).fetchone()
                if row is None:
                    raise ReportError(f"no report with id {report.report_id!r}")
                version = Version(int(row[0]) + 1, report, action, summary, now, base)
                self._insert_version(conn, report.report_id, version)
                conn.execute(
                    "UPDATE report_drafts SET current_version = ?, updated_at = ? WHERE report_id = ?",
                    (version.number, now, report.report_id),
                )
                if message_id is not None:
                    conn.execute(
                        "UPDATE report_messages SET status = ?, version = ? WHERE id = ?",
                        (MessageStatus.DONE.value, version.number, message_id),
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save the report: {exc}") from exc
        logger.info("report %s saved as version %d (%s)", report.report_id, version.number, action)
        return version

    @staticmethod
    def _insert_version(conn: sqlite3.Connection, report_id: str, version: Version) -> None:
        conn.execute(
            "INSERT INTO report_versions (report_id, number, created_at, action, summary, base, content)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (report_id, version.number, version.created_at, version.action, version.summary, version.base,
             json.dumps(version.report.to_dict(), ensure_ascii=False)),
        )  # fmt: skip

    def current(self, report_id: str) -> Version:
        """The newest version of a draft."""
        history = self.history(report_id, limit=1)
        return history[-1]

    def load(self, report_id: str) -> Report:
        """The current state of a draft."""
        return self.current(report_id).report

    def history(self, report_id: str, limit: int | None = None) -> list[Version]:
        """Versions oldest first (only the newest ``limit`` if given)."""
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT number, created_at, action, summary, base, content FROM report_versions"
                        " WHERE report_id = ? ORDER BY number DESC LIMIT ?",
                        (report_id, -1 if limit is None else limit),
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the report history: {exc}") from exc
        if not rows:
            raise ReportError(f"no report with id {report_id!r} (see `radassist report list`)")
        versions = []
        for number, created_at, action, summary, base, content in reversed(rows):
            try:
                report = Report.from_dict(json.loads(content))
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"version {number} of report {report_id} is unreadable: {exc}") from exc
            versions.append(Version(int(number), report, action, summary, float(created_at), base))
        return versions

    def drafts(self) -> list[DraftInfo]:
        """All drafts, most recently changed first."""
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    "SELECT report_id, template, patient_key, updated_at, current_version FROM report_drafts"
                    " ORDER BY updated_at DESC"
                )
                .fetchall()
            )
        return [DraftInfo(r, t, p, float(u), int(c)) for r, t, p, u, c in rows]

    def exists(self, report_id: str) -> bool:
        with self._lock:
            row = self._connection().execute("SELECT 1 FROM report_drafts WHERE report_id = ?", (report_id,)).fetchone()
        return row is not None

    # ------------------------------------------------------------------------------------------------ dialogue

    def add_message(self, report_id: str, role: str, text: str, status: MessageStatus) -> int:
        """Append one dialogue turn (committed at once); returns its id."""
        try:
            with self._transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO report_messages (report_id, created_at, role, text, status) VALUES (?, ?, ?, ?, ?)",
                    (report_id, time.time(), role, text, MessageStatus(status).value),
                )
                return int(cur.lastrowid or 0)
        except sqlite3.IntegrityError as exc:
            raise ReportError(f"no report with id {report_id!r}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save the message: {exc}") from exc

    def set_status(self, message_id: int, status: MessageStatus) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE report_messages SET status = ? WHERE id = ?", (MessageStatus(status).value, message_id)
            )

    def messages(self, report_id: str, limit: int | None = None) -> list[Message]:
        """Dialogue turns oldest first (the newest ``limit`` if given)."""
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    "SELECT id, report_id, role, text, status, created_at, version FROM report_messages"
                    " WHERE report_id = ? ORDER BY id DESC LIMIT ?",
                    (report_id, -1 if limit is None else limit),
                )
                .fetchall()
            )
        return [Message(i, r, ro, t, MessageStatus(s), float(c), v) for i, r, ro, t, s, c, v in reversed(rows)]

    def failed_messages(self, report_id: str) -> Sequence[Message]:
        """User turns that were saved but not applied (the model failed): offered for retry."""
        return [m for m in self.messages(report_id) if m.role == "user" and m.status is MessageStatus.FAILED]
