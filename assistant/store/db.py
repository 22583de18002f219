"""The database: one URL (``settings.database``: the SQLite file ``settings.db_path`` by default, or PostgreSQL for
several app replicas) through SQLAlchemy, with versioned Alembic migrations (``assistant/store/migrations``)
applied when a store first opens it.

:class:`DatabaseStore` is the base of every store on it: an engine opened on first use (the SQLite file created
owner-only, WAL, ``synchronous=FULL``, foreign keys on, ``secure_delete``), migrated to the newest revision, and
two ways in: :meth:`DatabaseStore._reading` and :meth:`DatabaseStore._writing` (one transaction, taken at once on
SQLite, so two writers never deadlock; a read-modify-write locks its rows on PostgreSQL with ``FOR UPDATE``, see
:attr:`DatabaseStore._for_update`). SQL is written portably (``text()`` with named parameters); JSON is kept as
TEXT.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

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


# ---------------------------------------------------------------------------------------------- SQLAlchemy stores

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0  # as connect(): a writer waits this long for another one's transaction
_WRITE = "radassist_write"  # execution option: this connection's transaction writes (BEGIN IMMEDIATE on SQLite)
_HEAD: list[str] = []  # the newest migration revision, read from the scripts once per process


def database_url(target: Path | str) -> str:
    """The SQLAlchemy URL of ``target``: a ``Path`` is a SQLite file; ``postgresql://`` (and ``postgres://``) is
    served by psycopg 3."""
    if isinstance(target, Path):
        return f"sqlite:///{target}"
    text = str(target)
    if "://" not in text:  # a file name given as a string
        return f"sqlite:///{text}"
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix) :]
    return text


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for any other database, or an in-memory one)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def describe_database(url: str) -> str:
    """``url`` fit to show: the SQLite file's path, or the URL with its password hidden."""
    path = sqlite_file(url)
    return str(path) if path is not None else sa.make_url(url).render_as_string(hide_password=True)


def database_error(exc: BaseException) -> str:
    """A short reason for a database failure: the driver's message, not SQLAlchemy's SQL dump."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def create_database_engine(target: Path | str) -> Engine:
    """An engine on ``target`` with radassist's connection rules; nothing is connected yet, no file created.

    SQLite: every connection in WAL, ``synchronous=FULL`` (a committed change survives a crash of the machine),
    foreign keys on, deleted rows overwritten (``secure_delete``), a 30 s busy timeout; the driver's own
    transaction handling is off, and a transaction begins ``IMMEDIATE`` when the connection is marked as
    writing (:func:`begin_write`), ``DEFERRED`` otherwise. PostgreSQL (psycopg 3): connections checked before
    use, so a restarted server costs no failed request.
    """
    url = database_url(target)
    if sqlite_file(url) is not None or url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's BEGIN below, not the driver's implicit one
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "secure_delete=ON"):
                dbapi_conn.execute(f"PRAGMA {pragma}")

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def begin_write(conn: Connection) -> Connection:
    """Mark ``conn`` (before its transaction begins) as writing: SQLite takes the write lock at BEGIN."""
    return conn.execution_options(**{_WRITE: True})


def _migration_config(conn: Connection) -> Any:
    from alembic.config import Config  # imported when a database is first opened, never at import time

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def migration_head() -> str:
    """The newest revision of radassist's migrations."""
    if not _HEAD:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        if head is None:
            raise RuntimeError(f"no migration scripts in {MIGRATIONS}")
        _HEAD.append(head)
    return _HEAD[0]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated, e.g. a SQLite file of radassist <= 0.x)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest revision (nothing to do, one cheap query, when it is there already).

    An existing SQLite file of an earlier version (tables made by the stores' old ``CREATE TABLE IF NOT
    EXISTS``) is adopted: the first revision creates only what is missing and adds missing columns, keeping every
    row. On PostgreSQL, replicas starting together take turns (an advisory lock held by the migrating
    transaction).
    """
    with _sqlite_first_open(engine):
        if current_revision(engine) == migration_head():
            return
        from alembic import command

        with engine.connect() as conn:
            begin_write(conn)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7260221)")  # any constant shared by replicas
                command.upgrade(_migration_config(conn), "head")
    logger.info("database %s migrated to revision %s", describe_database(str(engine.url)), migration_head())


@contextmanager
def _sqlite_first_open(engine: Engine) -> Iterator[None]:
    """On a SQLite file: stores opening it at the same moment (threads or processes) take turns, under an OS lock
    on an owner-only file beside it, until its revision is checked and, if needed, migrated. Their first
    connections switch a new file to WAL, which needs the file to itself; SQLite answers such a switch, racing
    another, with "database is locked" at once instead of waiting its busy timeout (seen in CI with four stores
    opening a new file together). Nothing is locked on a database server (PostgreSQL takes turns in ``migrate``)."""
    path = sqlite_file(str(engine.url))
    if path is None:
        yield
        return
    import fcntl

    lock = path.with_name(path.name + ".open-lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the file is closed, also if this process dies
        yield
    finally:
        os.close(fd)


class DatabaseStore:
    """A store in the database (:mod:`assistant.store.db`'s rules): ``target`` is a SQLite file (a ``Path``) or a
    database URL; the engine opens, and the schema is migrated, on first use. Safe to share between threads (each
    use takes a pooled connection). An open failure is raised as ``ERROR``, naming ``WHAT``."""

    WHAT = "database"  # named in the open error: "cannot open the <WHAT> <where>"
    ERROR: type[RadassistError] = RadassistError

    def __init__(self, target: Path | str) -> None:
        self.url = database_url(target)
        file = sqlite_file(self.url)
        self.path: Path | None = file  # the SQLite file; None on a database server
        self.where = describe_database(self.url)
        self._open_lock = threading.Lock()
        self._db: Engine | None = None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return sa.make_url(self.url).get_backend_name()

    @property
    def _for_update(self) -> str:
        """Appended to a SELECT whose rows the transaction then changes: locks them on PostgreSQL (SQLite's
        ``BEGIN IMMEDIATE`` already holds the whole file)."""
        return " FOR UPDATE" if self.dialect == "postgresql" else ""

    def _engine(self) -> Engine:
        with self._open_lock:
            if self._db is None:
                engine = None
                try:
                    if self.path is not None:
                        _create_private_file(self.path)
                    engine = create_database_engine(self.url)
                    migrate(engine)
                except (OSError, SQLAlchemyError) as exc:
                    if engine is not None:
                        engine.dispose()
                    raise self.ERROR(f"cannot open the {self.WHAT} {self.where}: {database_error(exc)}") from exc
                self._db = engine
            return self._db

    @contextmanager
    def _reading(self, what: str = "read") -> Iterator[Connection]:
        """A connection in one read transaction; a failure becomes ``ERROR`` ("cannot read the ...")."""
        engine = self._engine()
        try:
            with engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise self.ERROR(f"cannot {what} the {self.WHAT} {self.where}: {database_error(exc)}") from exc

    @contextmanager
    def _writing(self, what: str = "write to") -> Iterator[Connection]:
        """A connection in one write transaction, committed at the end, rolled back on any error; a database
        failure becomes ``ERROR`` ("cannot write to the ...") with the driver's error as its cause."""
        engine = self._engine()
        try:
            with engine.connect() as conn:
                begin_write(conn)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise self.ERROR(f"cannot {what} the {self.WHAT} {self.where}: {database_error(exc)}") from exc

    def close(self) -> None:
        """Close the pooled connections (the next use opens the database afresh)."""
        with self._open_lock:
            if self._db is not None:
                self._db.dispose()
                self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _create_private_file(path: Path) -> None:
    """Create the SQLite file owner-only (its folder too) before SQLite does with the umask's mode."""
    ensure_private_dir(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    owner_only(path)
