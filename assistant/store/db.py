"""The local SQLite database file (``settings.db_path``): audit rows, report drafts and saved conversations."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assistant.errors import RadassistError

logger = logging.getLogger(__name__)


def owner_only(path: Path) -> None:
    """Make the local database readable and writable by its owner only (it holds dictations and conversations).

    Every store that opens ``settings.db_path`` calls this, whichever creates the file first. SQLite gives its
    -wal and -shm files the database file's permissions.
    """
    try:
        if path.exists() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as exc:  # someone else's file: still usable, but say so
        logger.warning("cannot restrict the permissions of %s: %s", path, exc.strerror)


def ensure_private_dir(path: Path) -> Path:
    """Create the folder ``path`` (and its missing parents) readable by its owner only, whatever the umask; an
    existing one open to group or others is restricted to 0700. Returns ``path``.

    For the data dir and what the app writes under it (logs, indexes, temporary renderings and exports): a file
    in such a folder cannot be reached by another local user, whatever its own mode.
    """
    path = Path(path)
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # created meanwhile by another thread or process: restricted below if needed
            continue
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask; chmod's is not
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:  # someone else's folder: still usable, but say so
        logger.warning("cannot restrict the permissions of %s: %s", path, exc.strerror)
    return path


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open the database for one store: the file created owner-only, WAL, ``synchronous=FULL`` (a committed change
    survives a crash of the machine), foreign keys on, ``schema`` applied. Raises ``OSError``/``sqlite3.Error``,
    which each store translates into its own error."""
    ensure_private_dir(path.parent)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    try:
        owner_only(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (taken at once, so two writers never deadlock); rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SQLiteStore:
    """A store in the local database: one connection, opened on first use (``SCHEMA`` applied, then
    :meth:`_migrate`), shared between threads under one lock. An open failure is raised as ``ERROR``."""

    SCHEMA = ""
    WHAT = "database"  # named in the open error: "cannot open the <WHAT> <path>"
    ERROR: type[RadassistError] = RadassistError

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = connect(self.path, self.SCHEMA)
                self._migrate(conn)
            except (OSError, sqlite3.Error) as exc:
                raise self.ERROR(f"cannot open the {self.WHAT} {self.path}: {exc}") from exc
            self._conn = conn
        return self._conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring a database written by an older version up to ``SCHEMA`` (nothing by default)."""

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
