"""Report drafts, their version history, the drafting dialogue and the exports, in the database
(``settings.database``: the SQLite file under the data dir, or a PostgreSQL shared by several app replicas).

Every change is one committed transaction (on SQLite: WAL, ``synchronous=FULL``), so a draft and its history survive
an app restart, an LLM engine crash and a killed app process. A save is compare-and-set on the draft's current
version, so two writers (two tabs, the command line, two replicas) never overwrite each other. A dictation is
written to the dialogue *before* the model is asked, so nothing the radiologist said is lost when generation fails
half way; the draft itself only ever moves from one complete version to the next.

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
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from assistant.errors import RadassistError
from assistant.report.draft import Report, ReportError, Version
from assistant.store.db import DatabaseStore

logger = logging.getLogger(__name__)

LOCAL_OWNER = ""  # the machine's one user: the CLI, and the web app on loopback without log-in
# A dictation pending on another host's replica is taken as still being applied for this long (s): several times
# the LLM request timeout (settings.llm_timeout_s, 120 s by default), so a live generation is never offered again.
OTHER_HOST_PENDING_S = 900.0

# The draft ``:report_id`` belongs to the store's ``:owner``. The tables are made by the migrations
# (assistant/store/migrations/versions/0002_report_drafts.py).
_OWNED = "EXISTS (SELECT 1 FROM report_drafts d WHERE d.report_id = :report_id AND d.owner = :owner)"


class StoreError(RadassistError):
    """The report database cannot be opened, read or written."""


class ReportNotFound(ReportError):
    """No draft with that id for this owner: never made, deleted, or someone else's (one error for all three)."""


class VersionConflict(ReportError):
    """The draft moved on since it was read: another tab or the command line saved a version in between."""

    def __init__(self, report_id: str, expected: int, current: int) -> None:
        super().__init__(f"report {report_id} changed meanwhile: it is at version {current}, not {expected} as read")
        self.report_id = report_id
        self.expected = expected
        self.current = current


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or None when
    there is no such process. With the pid it names one process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (not Linux): whether the pid exists is all we can tell
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and brackets
    return fields[19] if len(fields) > 19 else "?"


def worker_token() -> str:
    """This process, as written beside a pending dictation: ``pid:start@host`` (app replicas may share the
    database from several machines)."""
    pid = os.getpid()
    return f"{pid}:{_process_start(pid) or '?'}@{socket.gethostname()}"


def worker_alive(token: str | None, written_at: float | None = None) -> bool:
    """Whether the process that wrote ``token`` still runs (False for a turn written before tokens existed).

    A process of another host (another app replica's machine) cannot be looked up from here: it counts as alive
    for :data:`OTHER_HOST_PENDING_S` after ``written_at``, longer than any generation, then as gone."""
    if not token:
        return False
    token, _, host = token.partition("@")
    if host and host != socket.gethostname():
        return written_at is not None and time.time() - written_at < OTHER_HOST_PENDING_S
    pid, _, start = token.partition(":")
    try:
        now = _process_start(int(pid))
    except ValueError:
        return False
    return now is not None and (start in ("", "?") or now in ("?", start))


def _not_found(report_id: str) -> ReportNotFound:
    return ReportNotFound(f"no report with id {report_id!r} (see `radassist report list`)")


class MessageStatus(StrEnum):
    PENDING = "pending"  # written before the model was asked; "interrupted" once the process that wrote it is gone
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
    interrupted: bool = False  # pending, but the process applying it died (a crash, kill -9): offered for retry


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


class ReportStore(DatabaseStore):
    """Drafts, versions, dialogue and exports of one owner in the database (``settings.database``: the SQLite file
    by default, or a PostgreSQL shared by app replicas); safe to share between threads. ``owner`` defaults to
    :data:`LOCAL_OWNER` (the command line)."""

    WHAT = "report database"
    ERROR = StoreError

    def __init__(self, path: Path | str, owner: str = LOCAL_OWNER) -> None:
        super().__init__(path)
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a string, not {type(owner).__name__} ({owner!r})")
        self.owner = owner
        self._root: ReportStore = self  # the store that holds the engine (views share it)

    def as_owner(self, owner: str) -> ReportStore:
        """The same database as seen by ``owner``: shares this store's engine (closing the view is a no-op)."""
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a string, not {type(owner).__name__} ({owner!r})")
        view = copy.copy(self)  # shallow; every use goes through the root's engine
        view.owner = owner
        view._root = self._root
        return view

    def _engine(self) -> Engine:
        if self._root is not self:
            return self._root._engine()
        return super()._engine()

    def close(self) -> None:
        if self._root is self:
            super().close()

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
            with self._writing("save the new report to") as conn:
                conn.execute(
                    text(
                        "INSERT INTO report_drafts (report_id, template, patient_key, created_at, updated_at,"
                        " current_version, owner) VALUES (:report_id, :template, :patient_key, :now, :now, 1, :owner)"
                    ),
                    {"report_id": report.report_id, "template": report.template_ref,
                     "patient_key": report.study.patient_key if report.study else None, "now": now,
                     "owner": self.owner},
                )  # fmt: skip
                self._insert_version(conn, report.report_id, version)
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                # The same words whoever's the id is: a clash must not tell that another owner has that draft.
                raise ReportError(f"the report id {report.report_id!r} is taken; choose another") from exc.__cause__
            raise
        logger.info("report %s created (%s)", report.report_id, report.template_ref)
        return version

    def save(
        self,
        report: Report,
        action: str,
        summary: str,
        base: int | None,
        message_id: int | None = None,
        expected: int | None = None,
    ) -> Version:
        """Append the next version of ``report`` (one transaction; marks the dialogue turn done).

        ``expected`` is the version ``report`` was derived from: when the draft has moved on since (another tab,
        the command line, another app replica), nothing is written and :class:`VersionConflict` is raised
        (compare-and-set on the draft's ``current_version``), so a change made in between is never overwritten by
        a stale copy."""
        now = time.time()
        params = {"report_id": report.report_id, "owner": self.owner}
        with self._writing("save the report to") as conn:
            # Without ``expected``, the row lock (PostgreSQL; SQLite holds the file) makes the read version the base.
            current = conn.execute(
                text(
                    "SELECT current_version FROM report_drafts WHERE report_id = :report_id AND owner = :owner"
                    + ("" if expected is not None else self._for_update)
                ),
                params,
            ).scalar_one_or_none()
            if current is None:
                raise _not_found(report.report_id)
            read = int(current) if expected is None else expected
            version = Version(read + 1, report, action, summary, now, base)
            # Compare-and-set: the draft moves from the version read to the next one, or nothing is written.
            moved = conn.execute(
                text(
                    "UPDATE report_drafts SET current_version = :number, updated_at = :now"
                    " WHERE report_id = :report_id AND owner = :owner AND current_version = :expected"
                ),
                {**params, "number": version.number, "now": now, "expected": read},
            ).rowcount
            if moved != 1:
                latest = conn.execute(
                    text("SELECT current_version FROM report_drafts WHERE report_id = :report_id AND owner = :owner"),
                    params,
                ).scalar_one_or_none()
                if latest is None:
                    raise _not_found(report.report_id)
                raise VersionConflict(report.report_id, read, int(latest))
            self._insert_version(conn, report.report_id, version)
            if message_id is not None:
                conn.execute(
                    text(
                        "UPDATE report_messages SET status = :status, version = :number"
                        " WHERE id = :id AND report_id = :report_id"
                    ),
                    {"status": MessageStatus.DONE.value, "number": version.number, "id": message_id,
                     "report_id": report.report_id},
                )  # fmt: skip
        logger.info("report %s saved as version %d (%s)", report.report_id, version.number, action)
        return version

    @staticmethod
    def _insert_version(conn: Connection, report_id: str, version: Version) -> None:
        conn.execute(
            text(
                "INSERT INTO report_versions (report_id, number, created_at, action, summary, base, content)"
                " VALUES (:report_id, :number, :created_at, :action, :summary, :base, :content)"
            ),
            {"report_id": report_id, "number": version.number, "created_at": version.created_at,
             "action": version.action, "summary": version.summary, "base": version.base,
             "content": json.dumps(version.report.to_dict(), ensure_ascii=False)},
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
        with self._reading("read the report history from") as conn:
            rows = conn.execute(
                text(
                    "SELECT number, created_at, action, summary, base, content FROM report_versions"
                    f" WHERE report_id = :report_id AND {_OWNED} ORDER BY number DESC{_limit(limit)}"
                ),
                {"report_id": report_id, "owner": self.owner, "limit": limit},
            ).fetchall()
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
        with self._reading("read the report list from") as conn:
            rows = conn.execute(
                text(
                    "SELECT report_id, template, patient_key, updated_at, current_version FROM report_drafts"
                    " WHERE owner = :owner ORDER BY updated_at DESC, report_id"
                ),
                {"owner": self.owner},
            ).fetchall()
        return [DraftInfo(r, t, p, float(u), int(c)) for r, t, p, u, c in rows]

    def exists(self, report_id: str) -> bool:
        """Whether the owner has a draft ``report_id`` (False for another owner's)."""
        with self._reading("read the report list from") as conn:
            row = conn.execute(
                text("SELECT 1 FROM report_drafts WHERE report_id = :report_id AND owner = :owner"),
                {"report_id": report_id, "owner": self.owner},
            ).fetchone()
        return row is not None

    def delete(self, report_id: str) -> None:
        """Delete one of the owner's drafts with its versions, dialogue and export records (one transaction)."""
        params = {"report_id": report_id, "owner": self.owner}
        with self._writing("delete the report from") as conn:
            if conn.execute(text(f"SELECT 1 WHERE {_OWNED}"), params).fetchone() is None:
                raise _not_found(report_id)
            # Children first: the foreign keys refuse a draft deleted before its versions.
            for table in ("report_exports", "report_messages", "report_versions", "report_drafts"):
                conn.execute(text(f"DELETE FROM {table} WHERE report_id = :report_id"), params)  # noqa: S608
        logger.info("report %s deleted", report_id)

    # ------------------------------------------------------------------------------------------------ exports

    def record_export(self, report_id: str, version: int, fmt: str) -> ExportRecord:
        """Note that version ``version`` of one of the owner's drafts was exported as ``fmt`` (never the text)."""
        now = time.time()
        with self._writing("record the export in") as conn:
            row = conn.execute(
                text(
                    "INSERT INTO report_exports (report_id, owner, version, format, created_at)"
                    f" SELECT :report_id, :owner, :version, :format, :now WHERE {_OWNED} RETURNING id"
                ),
                {"report_id": report_id, "owner": self.owner, "version": int(version), "format": str(fmt),
                 "now": now},
            ).fetchone()  # fmt: skip
            if row is None:
                raise _not_found(report_id)
        return ExportRecord(report_id, self.owner, int(version), str(fmt), now)

    def exports(self, report_id: str) -> list[ExportRecord]:
        """The exports of one of the owner's drafts, oldest first (none for another owner's)."""
        with self._reading("read the report exports from") as conn:
            rows = conn.execute(
                text(
                    "SELECT version, format, created_at FROM report_exports"
                    f" WHERE report_id = :report_id AND owner = :owner AND {_OWNED} ORDER BY id"
                ),
                {"report_id": report_id, "owner": self.owner},
            ).fetchall()
        return [ExportRecord(report_id, self.owner, int(v), str(f), float(c)) for v, f, c in rows]

    # ------------------------------------------------------------------------------------------------ dialogue

    def add_message(self, report_id: str, role: str, text: str, status: MessageStatus) -> int:
        """Append one dialogue turn to one of the owner's drafts (committed at once); returns its id."""
        status = MessageStatus(status)
        # A pending turn names the process applying it: once that process is gone, it is offered again.
        worker = worker_token() if status is MessageStatus.PENDING else None
        with self._writing("save the message to") as conn:
            row = conn.execute(
                sa.text(
                    "INSERT INTO report_messages (report_id, created_at, role, text, status, worker)"
                    f" SELECT :report_id, :now, :role, :text, :status, :worker WHERE {_OWNED} RETURNING id"
                ),
                {"report_id": report_id, "owner": self.owner, "now": time.time(), "role": role, "text": text,
                 "status": status.value, "worker": worker},
            ).fetchone()  # fmt: skip
            if row is None:
                raise _not_found(report_id)
        return int(row[0])

    def set_status(self, message_id: int, status: MessageStatus) -> bool:
        """Mark one dialogue turn of the owner's drafts; False when there is none with that id for them."""
        with self._writing("save the message to") as conn:
            changed = conn.execute(
                text(
                    "UPDATE report_messages SET status = :status WHERE id = :id"
                    " AND report_id IN (SELECT report_id FROM report_drafts WHERE owner = :owner)"
                ),
                {"status": MessageStatus(status).value, "id": message_id, "owner": self.owner},
            ).rowcount
        return changed > 0

    def messages(self, report_id: str, limit: int | None = None) -> list[Message]:
        """Dialogue turns of one of the owner's drafts, oldest first (the newest ``limit`` if given); none for a
        missing or another owner's draft."""
        with self._reading("read the report dialogue from") as conn:
            rows = conn.execute(
                text(
                    "SELECT id, report_id, role, text, status, created_at, version, worker FROM report_messages"
                    f" WHERE report_id = :report_id AND {_OWNED} ORDER BY id DESC{_limit(limit)}"
                ),
                {"report_id": report_id, "owner": self.owner, "limit": limit},
            ).fetchall()
        alive: dict[tuple[str | None, float | None], bool] = {}
        out = []
        for i, r, ro, t, s, c, v, w in reversed(rows):
            status = MessageStatus(s)
            interrupted = False
            if status is MessageStatus.PENDING:
                key = (w, float(c)) if w and "@" in w else (w, None)  # another host's: judged by the turn's age
                if key not in alive:
                    alive[key] = worker_alive(w, float(c))
                interrupted = not alive[key]
            out.append(Message(int(i), r, ro, t, status, float(c), v, interrupted))
        return out

    def failed_messages(self, report_id: str) -> Sequence[Message]:
        """User turns that were saved but not applied, offered for retry: the model failed, or the process applying
        them died half way (a crash, ``kill -9``: the turn is pending and its process is gone)."""
        return [
            m
            for m in self.messages(report_id)
            if m.role == "user" and (m.status is MessageStatus.FAILED or m.interrupted)
        ]


def _limit(limit: int | None) -> str:
    """The LIMIT clause of a query taking ``:limit`` (none: every row; SQLite's ``LIMIT -1`` is not portable)."""
    return "" if limit is None else " LIMIT :limit"
