"""Opening a draft whose dictation was interrupted (its process died) or failed offers it again; "retry" typed in
the dialogue applies it."""

from __future__ import annotations

import sqlite3
from typing import Any

from assistant.report.service import DraftingService
from assistant.report.store import MessageStatus
from ui.workspace import REPORT, Workspace


def test_an_interrupted_dictation_is_offered_when_the_draft_is_opened_and_retry_applies_it(make_runtime: Any) -> None:
    ws = Workspace(make_runtime([]))
    report_id = DraftingService(ws.store).create("cxr").report.report_id
    turn = ws.store.add_message(report_id, "user", "Small left pleural effusion.", MessageStatus.PENDING)
    with sqlite3.connect(ws.settings.db_path) as conn:  # as written by a process that was killed since
        conn.execute("UPDATE report_messages SET worker = '999999999:1' WHERE id = ?", (turn,))
    s = ws.restore(None, None, "")[2]
    status = ws.open_report(s, f"{report_id} · cxr · v1")[3]
    assert "1 dictation(s) or edit(s)" in status and "interrupted by a crash" in status and "`retry`" in status
    _, asked, s, *_ = ws.accept({"text": "retry", "files": []}, [], s)
    shown = [update[0] for update in ws.respond(asked, s, REPORT)][-1]
    assert "Version 2" in str(shown[-1]["content"])
    assert ws.store.failed_messages(report_id) == []
