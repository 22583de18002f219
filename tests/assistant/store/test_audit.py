"""The audit trail opens the local database like every other store and keeps no text."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from assistant.errors import RadassistError
from assistant.store.audit import AuditLog, AuditRecord


def test_audit_uses_the_shared_connection_rules(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "db.sqlite3")
    audit.record(AuditRecord("chat", "chat_system@1", "m", ("c1",), 12, 34, "ok"))
    conn = audit._connection()
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: a committed row survives a crash
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE((tmp_path / "db.sqlite3").stat().st_mode) == 0o600
    (row,) = audit.recent()
    assert row.chunk_ids == ("c1",) and row.outcome == "ok"
    audit.close()


def test_an_unwritable_audit_trail_is_a_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(RadassistError, match="cannot open the audit trail"):
        AuditLog(blocker / "db.sqlite3").record(AuditRecord("chat", "t@1", "m", (), 1, 1, "ok"))
