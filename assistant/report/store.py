"""Report drafts, their version history, the drafting dialogue and the exports, in SQLite under the data dir.

Every change is one committed transaction (WAL, ``synchronous=FULL``), so a draft and its history survive an app
restart, an LLM engine crash and a killed app process. A dictation is written to the dialogue *before* the model is
asked, so nothing the radiologist said is lost when generation fails half way; the draft itself only ever moves
from one complete version to the next.

Every draft has an owner, and a store acts for one owner (:meth:`ReportStore.as_owner` gives the same database
seen by another): its versions, dialogue turns and exports are the draft's, and every read, list, edit, export and
delete is scoped to the owner in the SQL itself. Another owner's draft is :class:`ReportNotFound`, the same error as
a missing one, so whether an id exists never leaks. Owners are the web app's ("user:<name>", "browser:<id>") and
:data:`LOCAL_OWNER` (""): the machine's one user, that is the command line and the web app on loopback without
log-in, the same owner as the local user's saved conversations.

Drafts written before owners existed are migrated to :data:`LOCAL_OWNER`: before, every draft was visible to
everyone, and the one party surely entitled to them is whoever runs the machine (who holds the database file
anyway); a logged-in user or a remote browser does not see them.
"""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from assistant.errors import RadassistError
from assistant.report.draft import Report, ReportError, Version
from assistant.store.db import SQLiteStore, transaction

logger = logging.getLogger(__name__)

LOCAL_OWNER = ""  # the machine's one user: the CLI, and the web app on loopback without log-in

# The owner index is created in ``_migrate``: on a database from before owners, the column exists only after it.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS report_drafts (
    report_id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    patient_key TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    current_version INTEGER NOT NULL,
    owner TEXT NOT NULL
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
CREATE TABLE IF NOT EXISTS report_exports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL REFERENCES report_drafts(report_id),
    owner TEXT NOT NULL,
    version INTEGER NOT NULL,
    format TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

# The draft ``report_id`` (first parameter) belongs to the store's owner (second parameter).
_OWNED = "EXISTS (SELECT 1 FROM report_drafts d WHERE d.report_id = ? AND d.owner = ?)"


class StoreError(RadassistError):
    """The report database cannot be opened, read or written."""


class ReportNotFound(ReportError):
    """No draft with that id for this owner: never made, deleted, or someone else's (one error for all three)."""


def _not_found(report_id: str) -> ReportNotFound:
    return ReportNotFound(f"no report with id {report_id!r} (see `radassist report list`)")


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


@dataclass(frozen=True)
class ExportRecord:
    """One export of a draft: which version, in which format, when, and by whom."""

    report_id: str
    owner: str
    version: int
    format: str
    created_at: float


class ReportStore(SQLiteStore):
    """Drafts, versions, dialogue and exports of one owner in one SQLite file (``settings.db_path``); safe to share
    between threads. ``owner`` defaults to :data:`LOCAL_OWNER` (the command line)."""

    SCHEMA = _SCHEMA
    WHAT = "report database"
    ERROR = StoreError

    def __init__(self, path: Path | str, owner: str = LOCAL_OWNER) -> None:
        super().__init__(Path(path))
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a string, not {type(owner).__name__} ({owner!r})")
        self.owner = owner
        self._root: ReportStore = self  # the store that holds the connection (views share it)

    def as_owner(self, owner: str) -> ReportStore:
        """The same database as seen by ``owner``: shares this store's connection and lock (closing it is a no-op)."""
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a string, not {type(owner).__name__} ({owner!r})")
        view = copy.copy(self)  # shallow: the lock is the same object
        view.owner = owner
        view._root = self._root
        return view

    def _connection(self) -> sqlite3.Connection:
        if self._root is not self:
            return self._root._connection()
        return super()._connection()

    def close(self) -> None:
        if self._root is self:
            super().close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with transaction(conn):  # two processes opening an old database at once: one migrates, one sees it done
            columns = {row[1] for row in conn.execute("PRAGMA table_info(report_drafts)")}
            if "owner" not in columns:  # a database from before owners: its drafts become the local user's
                conn.execute(f"ALTER TABLE report_drafts ADD COLUMN owner TEXT NOT NULL DEFAULT {LOCAL_OWNER!r}")
                count = conn.execute("SELECT COUNT(*) FROM report_drafts").fetchone()[0]
                logger.info("report database migrated: %d earlier draft(s) now belong to the local user", count)
            conn.execute("CREATE INDEX IF NOT EXISTS report_drafts_by_owner ON report_drafts(owner, updated_at)")

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
        """Save a new draft of this store's owner as version 1."""
        now = time.time()
        version = Version(1, report, "new", summary, now, None)
        try:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT INTO report_drafts (report_id, template, patient_key, created_at, updated_at,"
                    " current_version, owner) VALUES (?, ?, ?, ?, ?, 1, ?)",
                    (report.report_id, report.template_ref, report.study.patient_key if report.study else None,
                     now, now, self.owner),
                )  # fmt: skip
                self._insert_version(conn, report.report_id, version)
        except sqlite3.IntegrityError as exc:
            # The same words whoever's the id is: a clash must not tell that another owner has that draft.
            raise ReportError(f"the report id {report.report_id!r} is taken; choose another") from exc
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
                    "SELECT current_version FROM report_drafts WHERE report_id = ? AND owner = ?",
                    (report.report_id, self.owner),
                ).fetchone()
                if row is None:
                    raise _not_found(report.report_id)
                version = Version(int(row[0]) + 1, report, action, summary, now, base)
                self._insert_version(conn, report.report_id, version)
                conn.execute(
                    "UPDATE report_drafts SET current_version = ?, updated_at = ? WHERE report_id = ? AND owner = ?",
                    (version.number, now, report.report_id, self.owner),
                )
                if message_id is not None:
                    conn.execute(
                        "UPDATE report_messages SET status = ?, version = ? WHERE id = ? AND report_id = ?",
                        (MessageStatus.DONE.value, version.number, message_id, report.report_id),
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
        """The newest version of one of the owner's drafts (:class:`ReportNotFound` otherwise)."""
        history = self.history(report_id, limit=1)
        return history[-1]

    def load(self, report_id: str) -> Report:
        """The current state of one of the owner's drafts."""
        return self.current(report_id).report

    def history(self, report_id: str, limit: int | None = None) -> list[Version]:
        """Versions of one of the owner's drafts, oldest first (only the newest ``limit`` if given)."""
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT number, created_at, action, summary, base, content FROM report_versions"
                        f" WHERE report_id = ? AND {_OWNED} ORDER BY number DESC LIMIT ?",
                        (report_id, report_id, self.owner, -1 if limit is None else limit),
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the report history: {exc}") from exc
        if not rows:
            raise _not_found(report_id)
        versions = []
        for number, created_at, action, summary, base, content in reversed(rows):
            try:
                report = Report.from_dict(json.loads(content))
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"version {number} of report {report_id} is unreadable: {exc}") from exc
            versions.append(Version(int(number), report, action, summary, float(created_at), base))
        return versions

    def drafts(self) -> list[DraftInfo]:
        """The owner's drafts, most recently changed first."""
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT report_id, template, patient_key, updated_at, current_version FROM report_drafts"
                        " WHERE owner = ? ORDER BY updated_at DESC",
                        (self.owner,),
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the report list: {exc}") from exc
        return [DraftInfo(r, t, p, float(u), int(c)) for r, t, p, u, c in rows]

    def exists(self, report_id: str) -> bool:
        """Whether the owner has a draft ``report_id`` (False for another owner's)."""
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute("SELECT 1 FROM report_drafts WHERE report_id = ? AND owner = ?", (report_id, self.owner))
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the report list: {exc}") from exc
        return row is not None

    def delete(self, report_id: str) -> None:
        """Delete one of the owner's drafts with its versions, dialogue and export records (one transaction)."""
        try:
            with self._transaction() as conn:
                if not conn.execute(f"SELECT {_OWNED}", (report_id, self.owner)).fetchone()[0]:
                    raise _not_found(report_id)
                # Children first: the foreign keys refuse a draft deleted before its versions.
                for table in ("report_exports", "report_messages", "report_versions", "report_drafts"):
                    conn.execute(f"DELETE FROM {table} WHERE report_id = ?", (report_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot delete the report: {exc}") from exc
        logger.info("report %s deleted", report_id)

    # ------------------------------------------------------------------------------------------------ exports

    def record_export(self, report_id: str, version: int, fmt: str) -> ExportRecord:
        """Note that version ``version`` of one of the owner's drafts was exported as ``fmt`` (never the text)."""
        now = time.time()
        try:
            with self._transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO report_exports (report_id, owner, version, format, created_at)"
                    f" SELECT ?, ?, ?, ?, ? WHERE {_OWNED}",
                    (report_id, self.owner, int(version), str(fmt), now, report_id, self.owner),
                )
                if cur.rowcount == 0:
                    raise _not_found(report_id)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record the export: {exc}") from exc
        return ExportRecord(report_id, self.owner, int(version), str(fmt), now)

    def exports(self, report_id: str) -> list[ExportRecord]:
        """The exports of one of the owner's drafts, oldest first (none for another owner's)."""
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT version, format, created_at FROM report_exports"
                        f" WHERE report_id = ? AND owner = ? AND {_OWNED} ORDER BY id",
                        (report_id, self.owner, report_id, self.owner),
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the report exports: {exc}") from exc
        return [ExportRecord(report_id, self.owner, int(v), str(f), float(c)) for v, f, c in rows]

    # ------------------------------------------------------------------------------------------------ dialogue

    def add_message(self, report_id: str, role: str, text: str, status: MessageStatus) -> int:
        """Append one dialogue turn to one of the owner's drafts (committed at once); returns its id."""
        try:
            with self._transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO report_messages (report_id, created_at, role, text, status)"
                    f" SELECT ?, ?, ?, ?, ? WHERE {_OWNED}",
                    (report_id, time.time(), role, text, MessageStatus(status).value, report_id, self.owner),
                )
                if cur.rowcount == 0:
                    raise _not_found(report_id)
                return int(cur.lastrowid or 0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save the message: {exc}") from exc

    def set_status(self, message_id: int, status: MessageStatus) -> bool:
        """Mark one dialogue turn of the owner's drafts; False when there is none with that id for them."""
        try:
            with self._transaction() as conn:
                cur = conn.execute(
                    "UPDATE report_messages SET status = ? WHERE id = ?"
                    " AND report_id IN (SELECT report_id FROM report_drafts WHERE owner = ?)",
                    (MessageStatus(status).value, message_id, self.owner),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save the message: {exc}") from exc
        return cur.rowcount > 0

    def messages(self, report_id: str, limit: int | None = None) -> list[Message]:
        """Dialogue turns of one of the owner's drafts, oldest first (the newest ``limit`` if given); none for a
        missing or another owner's draft."""
        with self._lock:
            try:
                rows = (
                    self._connection()
                    .execute(
                        "SELECT id, report_id, role, text, status, created_at, version FROM report_messages"
                        f" WHERE report_id = ? AND {_OWNED} ORDER BY id DESC LIMIT ?",
                        (report_id, report_id, self.owner, -1 if limit is None else limit),
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the report dialogue: {exc}") from exc
        return [Message(i, r, ro, t, MessageStatus(s), float(c), v) for i, r, ro, t, s, c, v in reversed(rows)]

    def failed_messages(self, report_id: str) -> Sequence[Message]:
        """User turns that were saved but not applied (the model failed): offered for retry."""
        return [m for m in self.messages(report_id) if m.role == "user" and m.status is MessageStatus.FAILED]
