"""Persistence: drafts, history and dialogue are in the database (SQLite and PostgreSQL) after every change and
survive a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from assistant.report.draft import render_text
from assistant.report.service import DraftingService
from assistant.report.store import MessageStatus, ReportStore
from tests.support.paths import REPO


def test_a_draft_and_its_history_survive_a_restart(database: Path | str) -> None:
    db = database
    with ReportStore(db) as store:
        service = DraftingService(store)
        report_id = service.create("cxr").report.report_id
        service.handle(report_id, "Small left pleural effusion.")
        service.handle(report_id, "undo")
        service.handle(report_id, "Mild cardiomegaly.")
        before = store.history(report_id)
        messages = store.messages(report_id)
    with ReportStore(db) as reopened:
        after = reopened.history(report_id)
        assert [(v.number, v.action, v.base) for v in after] == [(v.number, v.action, v.base) for v in before]
        assert [v.report for v in after] == [v.report for v in before]
        assert reopened.messages(report_id) == messages
        assert reopened.drafts()[0].report_id == report_id


def test_a_killed_process_loses_nothing_it_had_saved(database: Path | str) -> None:
    db = database
    script = (
        "import os, sys\n"
        "from assistant.report.store import ReportStore\n"
        "from assistant.report.service import DraftingService\n"
        f"store = ReportStore({str(db)!r})\n"
        "service = DraftingService(store)\n"
        "rid = service.create('cxr', report_id='r-killed').report.report_id\n"
        "service.handle(rid, 'Small left pleural effusion.')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == -9
    with ReportStore(db) as store:
        report = store.load("r-killed")
        assert "Small left pleural effusion." in render_text(report)
        assert [m.status for m in store.messages("r-killed") if m.role == "user"] == [MessageStatus.DONE]
