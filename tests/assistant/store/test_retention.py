"""Retention: what has not changed for ``retention_days`` goes (conversations, drafts with their records, temporary
files), the rest stays; timestamps are set by hand, nothing sleeps."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError
from assistant.report.service import DraftingService
from assistant.report.store import MessageStatus, ReportNotFound, ReportStore
from assistant.settings import Settings, load_settings
from assistant.store.audit import AuditLog, AuditRecord
from assistant.store.conversations import ChatEntry, ChatNotFound, ChatSessionStore
from assistant.store.retention import DAY_S, RetentionReport, RetentionSweeper, sweep_retention

NOW = 1_750_000_000.0  # a fixed "now" (June 2025)


def _age(db: Path, sql: str, *params: object) -> None:
    """Move timestamps back by hand (the stores stamp the real time)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def _draft(store: ReportStore, dictation: str) -> str:
    report_id = DraftingService(store).create("cxr").report.report_id
    store.add_message(report_id, "user", dictation, MessageStatus.DONE)
    store.record_export(report_id, 1, "md")
    return report_id


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", retention_days=30)


def test_old_conversations_and_drafts_go_with_their_records_and_recent_ones_stay(settings: Settings) -> None:
    db = settings.db_path
    chats = ChatSessionStore(db)
    old_chat = chats.save(None, [ChatEntry("user", "old question"), ChatEntry("assistant", "old answer")])
    new_chat = chats.save(None, [ChatEntry("user", "recent question")])
    reports = ReportStore(db, owner="user:alice")
    old_draft = _draft(reports, "old dictation")
    new_draft = _draft(reports, "recent dictation")
    audit = AuditLog(db)
    audit.record(AuditRecord("chat", "chat_system@1", "m", (), 1, 2, "ok", ts=NOW - 400 * DAY_S))
    assert old_chat is not None and new_chat is not None
    old, recent = NOW - 31 * DAY_S, NOW - 29 * DAY_S
    _age(db, "UPDATE chat_sessions SET created_at = ?, updated_at = ?", old, old)
    _age(db, "UPDATE chat_sessions SET updated_at = ? WHERE chat_id = ?", recent, new_chat.chat_id)
    for table in ("report_drafts", "report_versions", "report_messages", "report_exports"):
        _age(db, f"UPDATE {table} SET created_at = ?", old)
    _age(db, "UPDATE report_drafts SET updated_at = ?", old)
    _age(db, "UPDATE report_drafts SET updated_at = ? WHERE report_id = ?", recent, new_draft)

    report = sweep_retention(settings, now=NOW)

    assert report == RetentionReport(NOW - 30 * DAY_S, conversations=1, drafts=1, files=0)
    with pytest.raises(ChatNotFound):
        chats.load(old_chat.chat_id)
    assert chats.load(new_chat.chat_id).entries == (ChatEntry("user", "recent question"),)
    with pytest.raises(ReportNotFound):
        reports.current(old_draft)
    assert reports.current(new_draft).number == 1 and reports.exports(new_draft)
    conn = sqlite3.connect(db)
    try:
        for table in ("report_versions", "report_messages", "report_exports"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE report_id = ?", (old_draft,)).fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM chat_messages").fetchone() == (1,)
    finally:
        conn.close()
    assert len(audit.recent()) == 1  # the audit trail holds no text and is kept for compliance
    for store in (chats, reports, audit):
        store.close()
    for path in (db, db.with_name(db.name + "-wal")):  # overwritten (secure_delete), and the log emptied
        left = path.read_bytes() if path.exists() else b""
        assert b"old dictation" not in left and b"old answer" not in left


def test_a_draft_still_dictated_to_exported_or_open_in_a_recent_conversation_is_kept(settings: Settings) -> None:
    db = settings.db_path
    reports = ReportStore(db)
    dictated, exported, opened = (_draft(reports, "x") for _ in range(3))
    chats = ChatSessionStore(db)
    chats.save(None, [ChatEntry("user", "q")], report_id=opened)
    old = NOW - 60 * DAY_S
    for table in ("report_drafts", "report_versions", "report_messages", "report_exports"):
        _age(db, f"UPDATE {table} SET created_at = ?", old)
    _age(db, "UPDATE report_drafts SET updated_at = ?", old)
    _age(db, "UPDATE report_messages SET created_at = ? WHERE report_id = ?", NOW - DAY_S, dictated)
    _age(db, "UPDATE report_exports SET created_at = ? WHERE report_id = ?", NOW - DAY_S, exported)
    _age(db, "UPDATE chat_sessions SET updated_at = ?", NOW - DAY_S)

    assert sweep_retention(settings, now=NOW).drafts == 0
    assert {d.report_id for d in reports.drafts()} == {dictated, exported, opened}
    reports.close()
    chats.close()


def test_temporary_files_older_than_the_retention_go_and_their_empty_folders_with_them(settings: Settings) -> None:
    tmp = settings.data_dir / "tmp"
    old_file = tmp / "sessions" / "abc" / "view-1.png"
    new_file = tmp / "sessions" / "def" / "view-2.png"
    upload = tmp / "gradio" / "hash" / "study.dcm"
    outside = settings.data_dir / "index" / "old.faiss"
    for path in (old_file, new_file, upload, outside):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"pixels")
    old = NOW - 31 * DAY_S
    for path in (old_file, upload, outside, old_file.parent, upload.parent):
        os.utime(path, (old, old))
    os.utime(new_file, (NOW, NOW))

    assert sweep_retention(settings, now=NOW).files == 2
    assert not old_file.parent.exists() and not upload.parent.exists()
    assert new_file.exists() and outside.exists()  # only the temporary area is swept
    assert (tmp / "sessions").is_dir()  # the area itself stays


def test_retention_off_deletes_nothing_and_creates_no_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert sweep_retention(settings, now=NOW) == RetentionReport(None)
    assert not settings.db_path.exists()
    on = settings.replace(retention_days=7)
    assert sweep_retention(on, now=NOW) == RetentionReport(NOW - 7 * DAY_S)
    assert not settings.db_path.exists()


def test_retention_days_is_validated_and_read_from_the_environment(tmp_path: Path) -> None:
    env = {"RADASSIST_RETENTION_DAYS": "90", "RADASSIST_DATA_DIR": str(tmp_path)}
    assert load_settings(env=env).retention_days == 90
    with pytest.raises(ConfigurationError, match="retention_days must be 0"):
        Settings(retention_days=-1)
    with pytest.raises(ConfigurationError, match="retention_days"):
        load_settings(env={"RADASSIST_RETENTION_DAYS": "a month"})


def test_the_sweeper_sweeps_at_start_and_stops_on_close(settings: Settings) -> None:
    swept = threading.Event()
    calls: list[Settings] = []

    def sweep(s: Settings) -> RetentionReport:
        calls.append(s)
        swept.set()
        raise ConfigurationError("disk on fire")  # a failing sweep is logged; the timer goes on

    with RetentionSweeper(settings, interval_s=DAY_S, sweep=sweep) as sweeper:
        assert swept.wait(10.0)
        assert sweeper.running
    assert not sweeper.running and calls == [settings]


def test_the_sweeper_does_nothing_when_retention_is_off(tmp_path: Path) -> None:
    calls: list[Settings] = []
    with RetentionSweeper(Settings(data_dir=tmp_path), sweep=lambda s: calls.append(s) or RetentionReport(None)) as s:
        assert not s.running
    assert calls == []


def test_old_conversations_go_on_either_database(database: Path | str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from assistant.store.db import create_database_engine

    url = database if isinstance(database, str) else None  # the SQLite default is the data dir's file
    settings = Settings(data_dir=tmp_path / "data", retention_days=30, database_url=url)
    target = settings.database
    chats = ChatSessionStore(target)
    old = chats.save(None, [ChatEntry("user", "old question")])
    new = chats.save(None, [ChatEntry("user", "recent question")])
    assert old is not None and new is not None
    engine = create_database_engine(target)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE chat_sessions SET updated_at = :t WHERE chat_id = :c"),
                     {"t": NOW - 31 * DAY_S, "c": old.chat_id})  # fmt: skip
        conn.execute(sa.text("UPDATE chat_sessions SET updated_at = :t WHERE chat_id = :c"),
                     {"t": NOW - DAY_S, "c": new.chat_id})  # fmt: skip
    engine.dispose()

    assert sweep_retention(settings, now=NOW).conversations == 1
    assert [c.chat_id for c in chats.list()] == [new.chat_id]
    with pytest.raises(ChatNotFound):
        chats.load(old.chat_id)
    chats.close()
