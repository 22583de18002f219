"""Retention: conversations and report drafts not changed for ``settings.retention_days`` are deleted, with the
files left in the data dir's temporary area; 0 days keeps everything.

What goes: a conversation with its messages; a report draft with its versions, dictation turns and export records.
A draft counts as changed by any of these (and by a kept conversation that has it open). The audit trail stays: its
rows hold no text (mode, template, model, chunk ids, timings), and they are what a compliance review asks for.
In a SQLite file, deleted rows are overwritten (``secure_delete``) and the write-ahead log is emptied afterwards, so
their text does not linger in free pages; on PostgreSQL the sweep is one transaction and the server's autovacuum
reclaims the space (the storage of a shared server is the hospital's to protect: encrypted volumes).

:class:`RetentionSweeper` runs the sweep when the web app starts and then daily, in a background thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from assistant.errors import RadassistError
from assistant.settings import Settings
from assistant.store.db import begin_write, create_database_engine, database_error, describe_database

logger = logging.getLogger(__name__)

DAY_S = 86_400.0


class RetentionError(RadassistError):
    """The retention sweep could not read or change the database."""


@dataclass(frozen=True)
class RetentionReport:
    """What one sweep deleted (counts only); ``cutoff`` is None when retention is off."""

    cutoff: float | None
    conversations: int = 0
    drafts: int = 0
    files: int = 0

    def describe(self) -> str:
        if self.cutoff is None:
            return "retention off: nothing deleted"
        return (
            f"retention: {self.conversations} conversation(s), {self.drafts} report draft(s) and {self.files} "
            "temporary file(s) deleted"
        )


def sweep_retention(settings: Settings, now: float | None = None) -> RetentionReport:
    """Delete what has not changed for ``settings.retention_days`` days (as of ``now``, a Unix time)."""
    if settings.retention_days <= 0:
        return RetentionReport(None)
    cutoff = (time.time() if now is None else now) - settings.retention_days * DAY_S
    conversations = drafts = 0
    if settings.database_url or settings.db_path.exists():  # no SQLite file yet: nothing to delete, none created
        conversations, drafts = _sweep_database(settings.database, cutoff)
    files = _sweep_files(Path(settings.data_dir) / "tmp", cutoff)
    report = RetentionReport(cutoff, conversations, drafts, files)
    logger.info("%s (older than %d day(s))", report.describe(), settings.retention_days)
    return report


# A draft is expired when neither it nor any of its turns, exports or open conversations changed since the cutoff.
_EXPIRED_DRAFTS = """
SELECT d.report_id FROM report_drafts d WHERE d.updated_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM report_messages m WHERE m.report_id = d.report_id AND m.created_at >= :cutoff)
  AND NOT EXISTS (SELECT 1 FROM report_exports e WHERE e.report_id = d.report_id AND e.created_at >= :cutoff)
"""
_KEPT_BY_CONVERSATION = """
  AND NOT EXISTS (SELECT 1 FROM chat_sessions c WHERE c.report_id = d.report_id AND c.updated_at >= :cutoff)
"""
# Children first (their foreign keys name the draft); chat_messages likewise before chat_sessions.
_DRAFT_TABLES = ("report_exports", "report_messages", "report_versions", "report_drafts")


def _sweep_database(target: Path | str, cutoff: float) -> tuple[int, int]:
    """Delete expired conversations and drafts in one transaction; returns (conversations, drafts)."""
    where = describe_database(str(target) if not isinstance(target, Path) else f"sqlite:///{target}")
    try:
        engine = create_database_engine(target)  # secure_delete is on for every SQLite connection
    except (SQLAlchemyError, ImportError) as exc:
        raise RetentionError(f"cannot open the database {where} for the retention sweep: {exc}") from exc
    try:
        conversations = drafts = 0
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            conn.rollback()  # the inspection's read transaction: the sweep takes the write lock at its BEGIN
            begin_write(conn)
            with conn.begin():
                if {"report_drafts", *_DRAFT_TABLES} <= tables:
                    query = _EXPIRED_DRAFTS + (_KEPT_BY_CONVERSATION if "chat_sessions" in tables else "")
                    ids = [{"report_id": row[0]} for row in conn.execute(sa.text(query), {"cutoff": cutoff})]
                    if ids:
                        for table in _DRAFT_TABLES:  # fixed names
                            conn.execute(sa.text(f"DELETE FROM {table} WHERE report_id = :report_id"), ids)  # noqa: S608
                    drafts = len(ids)
                if {"chat_sessions", "chat_messages"} <= tables:
                    conn.execute(
                        sa.text(
                            "DELETE FROM chat_messages WHERE chat_id IN"
                            " (SELECT chat_id FROM chat_sessions WHERE updated_at < :cutoff)"
                        ),
                        {"cutoff": cutoff},
                    )
                    conversations = conn.execute(
                        sa.text("DELETE FROM chat_sessions WHERE updated_at < :cutoff"), {"cutoff": cutoff}
                    ).rowcount
        if (conversations or drafts) and engine.dialect.name == "sqlite":
            # The log still holds the pages as they were before: write them back and empty it (best effort: a
            # reader of another connection may hold it, then the next checkpoint does it).
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
            finally:
                raw.close()
    except (SQLAlchemyError, OSError) as exc:
        raise RetentionError(f"the retention sweep of {where} failed: {database_error(exc)}") from exc
    finally:
        engine.dispose()
    return conversations, drafts


def _sweep_files(root: Path, cutoff: float) -> int:
    """Delete files under ``root`` last modified before ``cutoff`` and the folders they leave empty; links are
    deleted, never followed. Returns the number of files deleted."""
    if not root.is_dir():
        return 0
    deleted = 0
    emptied: set[str] = set()  # folders something was deleted from (their mtime is now, but they are old)
    for folder, dirs, files in os.walk(root, topdown=False):  # deepest first, so emptied folders can go too
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            try:
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
                    deleted += 1
                    emptied.add(folder)
            except OSError:  # gone meanwhile (the app's own sweep), or not ours to delete
                continue
        if folder != str(root):
            try:
                if folder in emptied or os.stat(folder).st_mtime < cutoff:
                    os.rmdir(folder)  # fails, as it should, when something is left in it
                    emptied.add(os.path.dirname(folder))
            except OSError:
                continue
    return deleted


class RetentionSweeper:
    """Runs the retention sweep at once and then every ``interval_s`` in a daemon thread, until :meth:`close`;
    does nothing when retention is off. A failed sweep is logged and tried again at the next interval."""

    def __init__(
        self,
        settings: Settings,
        interval_s: float = DAY_S,
        sweep: Callable[[Settings], RetentionReport] = sweep_retention,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.settings = settings
        self.interval_s = interval_s
        self._sweep = sweep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionSweeper:
        if self._thread is None and self.settings.retention_days > 0:
            self._thread = threading.Thread(target=self._run, name="radassist-retention", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sweep(self.settings)
            except RadassistError as exc:
                logger.warning("retention sweep failed (tried again in %.0f h): %s", self.interval_s / 3600, exc)
            except Exception:  # noqa: BLE001 - a background thread: log with the traceback, keep the app up
                logger.exception("retention sweep failed unexpectedly")
            if self._stop.wait(self.interval_s):
                return

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the timer (a sweep under way finishes first); safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> RetentionSweeper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
