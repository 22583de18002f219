"""The schema is versioned (Alembic, applied when a store opens the database); a SQLite file written by radassist
before migrations is adopted with every row, report drafts included."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from assistant.report.service import DraftingService
from assistant.report.store import ReportStore
from assistant.store.audit import AuditLog, AuditRecord
from assistant.store.conversations import ChatEntry, ChatSessionStore, SaveResult
from assistant.store.db import create_database_engine, current_revision, migrate, migration_head
from assistant.store.users import UserStore

# The tables as the stores created them before migrations (their CREATE TABLE IF NOT EXISTS, verbatim).
LEGACY_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, mode TEXT NOT NULL, template TEXT NOT NULL,
    model TEXT NOT NULL, chunk_ids TEXT NOT NULL, latency_ms INTEGER NOT NULL, output_chars INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chat_sessions (
    chat_id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, mode TEXT, report_id TEXT, citations TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS chat_sessions_by_owner ON chat_sessions(owner, updated_at);
CREATE TABLE IF NOT EXISTS chat_messages (
    chat_id TEXT NOT NULL REFERENCES chat_sessions(chat_id) ON DELETE CASCADE, position INTEGER NOT NULL,
    role TEXT NOT NULL, text TEXT NOT NULL, note TEXT, PRIMARY KEY (chat_id, position)
);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at REAL NOT NULL);
INSERT INTO audit VALUES (1, 100.0, 'chat', 'chat_system@1', 'm', '["c1"]', 12, 34, 'ok');
INSERT INTO chat_sessions VALUES
    ('old1', 'alice', 'Old question', 50.0, 60.0, 'Study Q&A', NULL, '[{"title": "t"}]', 3);
INSERT INTO chat_messages VALUES ('old1', 0, 'user', 'Old question', NULL);
INSERT INTO chat_messages VALUES ('old1', 1, 'assistant', 'Old answer', NULL);
"""


def test_a_sqlite_file_from_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "radassist.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(LEGACY_SCHEMA)
    conn.commit()
    conn.close()
    reports = ReportStore(db, owner="alice")  # its tables made by the migrations beside the adopted ones
    draft = DraftingService(reports).create("cxr").report.report_id

    chats, audit, users = ChatSessionStore(db), AuditLog(db), UserStore(db)
    saved = chats.load("old1", owner="alice")
    assert [e.text for e in saved.entries] == ["Old question", "Old answer"]
    assert saved.info.revision == 3 and saved.citations == ({"title": "t"},) and saved.mode == "Study Q&A"
    assert chats.save("old1", [*saved.entries, ChatEntry("user", "new")], owner="alice", revision=3) == SaveResult(
        "old1", 4, False
    )
    assert [r.chunk_ids for r in audit.recent()] == [("c1",)]
    audit.record(AuditRecord("chat", "chat_system@1", "m", (), 1, 1, "ok", ts=200.0))
    assert [e.id for e in audit.between(0.0)] == [1, 2]  # ids go on from the old rows
    users.add("bob", "correct horse")
    assert [u.name for u in users.list()] == ["bob"]
    engine = create_database_engine(db)
    try:
        assert current_revision(engine) == migration_head()
    finally:
        engine.dispose()
    assert {d.report_id for d in reports.drafts()} == {draft}  # every store shares the file
    for store in (chats, audit, users, reports):
        store.close()


def test_a_database_is_migrated_once_and_opening_it_again_changes_nothing(database: Path | str) -> None:
    chats = ChatSessionStore(database)
    chat_id = chats.save(None, [ChatEntry("user", "q")]).chat_id
    chats.close()
    engine = create_database_engine(database)
    try:
        assert current_revision(engine) == migration_head()
        migrate(engine)  # already there: nothing to do
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert {"alembic_version", "chat_sessions", "chat_messages", "users", "audit", "report_drafts"} <= tables
    finally:
        engine.dispose()
    assert ChatSessionStore(database).load(chat_id).entries == (ChatEntry("user", "q"),)


def test_stores_opening_a_new_database_together_migrate_it_once(database: Path | str) -> None:
    """Replicas (here threads, each with its own store) starting at once on an empty database all come up."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_one(i: int) -> None:
        try:
            barrier.wait()
            store = ChatSessionStore(database)
            store.save(None, [ChatEntry("user", f"q{i}")], owner="x")
            store.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ChatSessionStore(database).list(owner="x")) == 4


def test_the_database_url_setting_defaults_to_the_data_dirs_file_and_is_checked(tmp_path: Path) -> None:
    from assistant.errors import ConfigurationError
    from assistant.settings import load_settings

    default = load_settings(env={"RADASSIST_DATA_DIR": str(tmp_path)})
    assert default.database == tmp_path / "radassist.sqlite3" == default.db_path
    url = "postgresql://radassist:s3cret@db.example:5432/radassist"
    shared = load_settings(env={"RADASSIST_DATA_DIR": str(tmp_path), "RADASSIST_DATABASE_URL": url})
    assert shared.database == url and "s3cret" not in repr(shared)
    assert ChatSessionStore(url).where == "postgresql+psycopg://radassist:***@db.example:5432/radassist"
    with pytest.raises(ConfigurationError, match="database_url must start with postgresql:// or sqlite:///"):
        load_settings(env={"RADASSIST_DATABASE_URL": "mysql://x@y/z"})


# The report store's tables as it made them itself before they moved to the migrations (verbatim).
LEGACY_REPORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS report_drafts (
    report_id TEXT PRIMARY KEY, template TEXT NOT NULL, patient_key TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, current_version INTEGER NOT NULL, owner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS report_versions (
    report_id TEXT NOT NULL REFERENCES report_drafts(report_id), number INTEGER NOT NULL, created_at REAL NOT NULL,
    action TEXT NOT NULL, summary TEXT NOT NULL, base INTEGER, content TEXT NOT NULL, PRIMARY KEY (report_id, number)
);
CREATE TABLE IF NOT EXISTS report_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, report_id TEXT NOT NULL REFERENCES report_drafts(report_id),
    created_at REAL NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL, version INTEGER,
    worker TEXT
);
CREATE INDEX IF NOT EXISTS report_messages_by_report ON report_messages(report_id, id);
CREATE TABLE IF NOT EXISTS report_exports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, report_id TEXT NOT NULL REFERENCES report_drafts(report_id),
    owner TEXT NOT NULL, version INTEGER NOT NULL, format TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS report_drafts_by_owner ON report_drafts(owner, updated_at);
"""


@pytest.mark.parametrize("start", ["unversioned", "at_0001"])
def test_a_sqlite_file_with_the_report_stores_own_tables_is_adopted_with_its_drafts(tmp_path: Path, start: str) -> None:
    """Report drafts moved onto the migrations (revision 0002): a file from before, whether never migrated or at
    0001 (conversations migrated, drafts still in the report store's own tables), keeps every draft working."""
    from alembic import command

    from assistant.report.draft import create_report
    from assistant.report.store import LOCAL_OWNER, MessageStatus, ReportStore
    from assistant.store.db import _migration_config

    db = tmp_path / "radassist.sqlite3"
    first, second = create_report("cxr", "r-old"), create_report("ct_chest", "r-old")
    conn = sqlite3.connect(db)
    conn.executescript(LEGACY_SCHEMA + LEGACY_REPORT_SCHEMA)
    conn.execute("INSERT INTO report_drafts VALUES ('r-old', 'ct_chest@1', 'pk1', 1.0, 2.0, 2, 'user:alice')")
    for number, report in ((1, first), (2, second)):
        conn.execute(
            "INSERT INTO report_versions VALUES ('r-old', ?, ?, 'dictate', 's', NULL, ?)",
            (number, float(number), json.dumps(report.to_dict())),
        )
    conn.execute("INSERT INTO report_messages VALUES (7, 'r-old', 1.5, 'user', 'dictated', 'done', 2, NULL)")
    conn.execute("INSERT INTO report_exports VALUES (3, 'r-old', 'user:alice', 2, 'md', 1.7)")
    conn.commit()
    conn.close()
    if start == "at_0001":
        engine = create_database_engine(db)
        try:
            with engine.connect() as connection, connection.begin():
                command.upgrade(_migration_config(connection), "0001")
            assert current_revision(engine) == "0001"
        finally:
            engine.dispose()

    with ReportStore(db, owner="user:alice") as alice:
        assert [(d.report_id, d.current_version) for d in alice.drafts()] == [("r-old", 2)]
        assert [v.report for v in alice.history("r-old")] == [first, second]
        assert [(m.id, m.text) for m in alice.messages("r-old")] == [(7, "dictated")]
        assert [(e.version, e.format) for e in alice.exports("r-old")] == [(2, "md")]
        assert alice.save(second, "edit", "after the upgrade", 2, expected=2).number == 3  # compare-and-set goes on
        assert alice.add_message("r-old", "user", "new", MessageStatus.DONE) > 7  # ids go on from the old rows
        assert alice.as_owner(LOCAL_OWNER).drafts() == []
    assert ChatSessionStore(db).load("old1", owner="alice").info.revision == 3
    engine = create_database_engine(db)
    try:
        assert current_revision(engine) == migration_head()
        with engine.connect() as connection:
            indexes = {i["name"] for i in sa.inspect(connection).get_indexes("report_drafts")}
        assert "report_drafts_by_owner" in indexes
    finally:
        engine.dispose()
