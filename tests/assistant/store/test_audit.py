"""The audit trail opens the database like every other store and keeps no text (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest

from assistant.errors import RadassistError
from assistant.store.audit import AuditLog, AuditRecord


def test_audit_uses_the_shared_connection_rules(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "db.sqlite3")
    audit.record(AuditRecord("chat", "chat_system@1", "m", ("c1",), 12, 34, "ok"))
    with audit._engine().connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: a committed row survives a crash
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1  # deleted text is overwritten
    assert stat.S_IMODE((tmp_path / "db.sqlite3").stat().st_mode) == 0o600
    (row,) = audit.recent()
    assert row.chunk_ids == ("c1",) and row.outcome == "ok"
    audit.close()


def test_an_unreadable_audit_trail_is_a_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(RadassistError, match="cannot open the audit trail"):
        AuditLog(blocker / "db.sqlite3").recent()


def _rec(outcome: str, ts: float = 0.0) -> AuditRecord:
    return AuditRecord("guideline", "guideline_answer@2", "m", ("c1", "c2"), 5, 7, outcome, ts)


def test_a_failing_write_never_raises_and_the_row_goes_in_with_the_next_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    audit = AuditLog(data / "db.sqlite3")
    audit.record(_rec("ok", ts=1.0))
    audit.close()
    # The data dir goes away under the app and a file takes its place: the trail cannot be opened.
    data.rename(tmp_path / "moved")
    data.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="assistant.store.audit"):
        audit.record(_rec("ok", ts=2.0))  # the answer goes on
        audit.record(_rec("LLMUnavailableError", ts=3.0))
    assert audit.pending == 2
    assert "audit row not written; 2 row(s) kept in memory" in caplog.text
    assert "guideline_answer" not in caplog.text and "c1" not in caplog.text  # nothing of the row is logged
    data.unlink()
    (tmp_path / "moved").rename(data)
    audit.record(_rec("ok", ts=4.0))  # writable again: the waiting rows go first, in order
    assert audit.pending == 0
    assert [r.ts for r in reversed(audit.recent())] == [1.0, 2.0, 3.0, 4.0]
    assert [r.outcome for r in audit.recent(2)] == ["ok", "LLMUnavailableError"]
    audit.close()


def test_a_failed_row_keeps_the_time_of_its_answer(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("x")
    audit = AuditLog(blocker / "db.sqlite3")
    before = time.time()
    audit.record(_rec("ok"))  # ts 0: stamped now, not when it is finally written
    blocker.unlink()
    audit.record(_rec("ok", ts=before + 3600))
    first = audit.recent()[-1]
    assert before <= first.ts < before + 60
    audit.close()


def test_a_corrupt_database_keeps_rows_waiting_and_drops_the_oldest_beyond_the_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    audit = AuditLog(path, retry_rows=2)
    with caplog.at_level(logging.WARNING, logger="assistant.store.audit"):
        for i in range(3):
            audit.record(_rec("ok", ts=float(i + 1)))
    assert audit.pending == 2
    assert "1 older one(s) dropped" in caplog.text
    path.unlink()
    audit.record(_rec("ok", ts=9.0))
    assert [r.ts for r in reversed(audit.recent())] == [3.0, 9.0]  # the limit counts the new row too
    audit.close()


def test_between_reads_a_period_in_write_order_across_batches(database: Path | str) -> None:
    audit = AuditLog(database)
    for ts in (5.0, 10.0, 15.0, 20.0, 25.0):
        audit.record(_rec("ok", ts=ts))
    assert [e.record.ts for e in audit.between(10.0, 25.0, batch=2)] == [10.0, 15.0, 20.0]
    assert [e.id for e in audit.between(0.0)] == [1, 2, 3, 4, 5]
    audit.close()
