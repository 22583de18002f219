"""Drafts have owners: another owner's draft is "not found" in the store, the service and every `radassist report`
subcommand, with the same words as a missing one; drafts from before owners are migrated to the local user."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from assistant.cli import report as cli_report
from assistant.report.draft import ReportError, create_report
from assistant.report.service import DraftingService
from assistant.report.store import LOCAL_OWNER, MessageStatus, ReportNotFound, ReportStore
from assistant.settings import Settings, load_settings
from assistant.store.db import create_database_engine

ALICE, BOB = "user:alice", "user:bob"
MISSING = "r-00000000"


def _drafted(store: ReportStore, out: Path) -> str:
    """A draft with history, a failed dictation (kept for retry) and an export."""
    service = DraftingService(store)
    report_id = service.create("ct_chest").report.report_id
    service.handle(report_id, "Never smoker. 7 mm solid nodule RUL.")
    service.handle(report_id, "Tortuous thing.")  # no model: kept as a failed turn, offered for retry
    service.export(report_id, "md", out / "alice.md")
    return report_id


def _state(store: ReportStore, report_id: str) -> Any:
    """Everything stored about one draft, as its owner sees it."""
    versions = [(v.number, v.action, v.summary, v.report.to_dict()) for v in store.history(report_id)]
    return versions, store.messages(report_id), store.exports(report_id), store.drafts()


def _not_found_words(exc: BaseException, report_id: str) -> str:
    return str(exc).replace(report_id, "ID")


def test_another_owners_draft_is_not_found_like_a_missing_one(tmp_path: Path, database: Path | str) -> None:
    with ReportStore(database, owner=ALICE) as alice:
        report_id = _drafted(alice, tmp_path)
        before = _state(alice, report_id)
        alice_message = alice.messages(report_id)[-1].id
        bob = alice.as_owner(BOB)

        assert bob.drafts() == [] and not bob.exists(report_id)
        assert bob.messages(report_id) == [] and bob.failed_messages(report_id) == [] and bob.exports(report_id) == []
        assert bob.set_status(alice_message, MessageStatus.DONE) is False
        report = alice.load(report_id)
        attempts = {
            "current": lambda rid: bob.current(rid),
            "load": lambda rid: bob.load(rid),
            "history": lambda rid: bob.history(rid),
            "save": lambda rid: bob.save(report.replace(report_id=rid), "edit", "x", None),
            "add_message": lambda rid: bob.add_message(rid, "user", "x", MessageStatus.PENDING),
            "record_export": lambda rid: bob.record_export(rid, 1, "md"),
            "delete": lambda rid: bob.delete(rid),
        }
        service = DraftingService(bob)
        out = tmp_path / "bob.md"
        attempts |= {
            "dictate": lambda rid: service.handle(rid, "Small left pleural effusion."),
            "edit": lambda rid: service.handle(rid, "delete the nodule sentence"),
            "undo": lambda rid: service.handle(rid, "undo"),
            "retry": lambda rid: service.retry(rid),
            "plan": lambda rid: service.plan(rid, "Lungs: clear."),
            "export": lambda rid: service.export(rid, "md", out),
        }
        for name, attempt in attempts.items():
            with pytest.raises(ReportNotFound) as other:
                attempt(report_id)
            with pytest.raises(ReportNotFound) as missing:
                attempt(MISSING)
            assert _not_found_words(other.value, report_id) == _not_found_words(missing.value, MISSING), name
        assert not out.exists()
        assert _state(alice, report_id) == before  # nothing of Alice's changed
        assert alice.as_owner(ALICE).exists(report_id) and alice.as_owner(LOCAL_OWNER).drafts() == []


def test_an_id_clash_says_the_same_whoever_owns_the_id(database: Path | str) -> None:
    with ReportStore(database, owner=ALICE) as alice:
        DraftingService(alice).create("cxr", report_id="r-clash")
        with pytest.raises(ReportError) as own:
            DraftingService(alice).create("cxr", report_id="r-clash")
        with pytest.raises(ReportError) as other:
            DraftingService(alice.as_owner(BOB)).create("cxr", report_id="r-clash")
        assert str(own.value) == str(other.value) and "taken" in str(own.value)
        assert alice.as_owner(BOB).drafts() == []


def test_a_view_shares_the_connection_and_closing_it_keeps_the_store_open(database: Path | str) -> None:
    with ReportStore(database) as store:
        assert store.owner == LOCAL_OWNER
        view = store.as_owner(ALICE)
        assert view._engine() is store._engine()  # one pool of connections for every owner's view
        report_id = DraftingService(view).create("cxr").report.report_id
        view.close()
        assert store.as_owner(ALICE).exists(report_id) and not store.exists(report_id)
        with pytest.raises(TypeError, match="owner must be a string"):
            store.as_owner(None)  # type: ignore[arg-type]


def test_the_owner_deletes_a_draft_with_its_history_dialogue_and_exports(tmp_path: Path, database: Path | str) -> None:
    with ReportStore(database, owner=ALICE) as alice:
        report_id = _drafted(alice, tmp_path)
        alice.delete(report_id)
        assert alice.drafts() == [] and alice.messages(report_id) == []
        with pytest.raises(ReportNotFound):
            alice.current(report_id)
    engine = create_database_engine(database)
    try:
        with engine.connect() as conn:
            for table in ("report_drafts", "report_versions", "report_messages", "report_exports"):
                assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0, table
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------- migration

_SCHEMA_BEFORE_OWNERS = """
CREATE TABLE report_drafts (report_id TEXT PRIMARY KEY, template TEXT NOT NULL, patient_key TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, current_version INTEGER NOT NULL);
CREATE TABLE report_versions (report_id TEXT NOT NULL REFERENCES report_drafts(report_id), number INTEGER NOT NULL,
    created_at REAL NOT NULL, action TEXT NOT NULL, summary TEXT NOT NULL, base INTEGER, content TEXT NOT NULL,
    PRIMARY KEY (report_id, number));
CREATE TABLE report_messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL REFERENCES report_drafts(report_id), created_at REAL NOT NULL, role TEXT NOT NULL,
    text TEXT NOT NULL, status TEXT NOT NULL, version INTEGER);
"""


def test_drafts_from_before_owners_become_the_local_users_only(tmp_path: Path) -> None:
    db = tmp_path / "radassist.sqlite3"
    report = create_report("cxr", "r-legacy")
    with sqlite3.connect(db) as conn:
        conn.executescript(_SCHEMA_BEFORE_OWNERS)
        conn.execute("INSERT INTO report_drafts VALUES ('r-legacy', 'cxr@1', NULL, 1.0, 1.0, 1)")
        conn.execute(
            "INSERT INTO report_versions VALUES ('r-legacy', 1, 1.0, 'new', 'created', NULL, ?)",
            (json.dumps(report.to_dict()),),
        )
        conn.execute("INSERT INTO report_messages VALUES (NULL, 'r-legacy', 1.0, 'user', 'dictated', 'done', 1)")
    conn.close()
    with ReportStore(db) as local:  # the CLI's owner, and the web app's on loopback without log-in
        assert [d.report_id for d in local.drafts()] == ["r-legacy"] and local.load("r-legacy") == report
        assert [m.text for m in local.messages("r-legacy")] == ["dictated"]
        for owner in (ALICE, "browser:0123abcd"):
            other = local.as_owner(owner)
            assert other.drafts() == [] and not other.exists("r-legacy") and other.messages("r-legacy") == []
        DraftingService(local).handle("r-legacy", "Small left pleural effusion.")  # still a working draft
    with ReportStore(db, owner=ALICE) as again:  # a second open finds it migrated
        assert again.drafts() == [] and again.as_owner(LOCAL_OWNER).current("r-legacy").number == 2


# ---------------------------------------------------------------------------------------------- command line


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_report.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args, settings))


def _subcommands() -> set[str]:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_report.register(parser.add_subparsers(dest="command", required=True))
    report = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["report"]
    actions = next(a for a in report._actions if isinstance(a, argparse._SubParsersAction))
    return set(actions.choices)


def test_every_report_subcommand_acting_as_the_local_user_finds_nothing_of_a_web_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A PACS that is never reached: `report send` reads the draft (as the local user) before any network call.
    settings = load_settings(env={}, data_dir=tmp_path / "data", pacs_url="http://127.0.0.1:9/dicom-web")
    with ReportStore(settings.db_path, owner=ALICE) as alice:
        report_id = _drafted(alice, tmp_path)
        before = _state(alice, report_id)
    out = tmp_path / "cli-export.md"
    sr = tmp_path / "cli-export.dcm"
    by_id = {
        "show": ["show", "ID"],
        "show --json": ["show", "ID", "--json"],
        "show --history": ["show", "ID", "--history"],
        "dictate": ["dictate", "ID", "Small left pleural effusion.", "--no-llm"],
        "edit": ["edit", "ID", "delete the nodule sentence", "--no-llm"],
        "undo": ["undo", "ID"],
        "retry": ["retry", "ID", "--no-llm"],
        "export": ["export", "ID", "--format", "md", "--out", str(out)],
        "export sr": ["export", "ID", "--format", "sr", "--out", str(sr)],
        "send": ["send", "ID", "--yes"],
        "delete": ["delete", "ID"],
    }
    # A subcommand added later must be walked here too (or named as one that takes no draft id).
    assert {argv[0] for argv in by_id.values()} | {"new", "list", "templates"} == _subcommands()
    for name, argv in by_id.items():
        with pytest.raises(ReportNotFound) as other:
            _run(settings, "report", *[report_id if a == "ID" else a for a in argv])
        with pytest.raises(ReportNotFound) as missing:
            _run(settings, "report", *[MISSING if a == "ID" else a for a in argv])
        assert _not_found_words(other.value, report_id) == _not_found_words(missing.value, MISSING), name
    assert not out.exists() and not sr.exists()
    capsys.readouterr()
    assert _run(settings, "report", "list") == 0 and capsys.readouterr().out == ""
    # The local user's own drafts still work, and a web user sees none of them.
    assert _run(settings, "report", "new", "--template", "cxr", "--id", "r-local") == 0
    assert _run(settings, "report", "list") == 0 and "r-local" in capsys.readouterr().out
    with ReportStore(settings.db_path, owner=ALICE) as alice:
        assert _state(alice, report_id) == before and not alice.exists("r-local")


def test_the_cli_export_is_recorded_with_its_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    assert _run(settings, "report", "new", "--template", "cxr", "--id", "r-mine") == 0
    assert _run(settings, "report", "export", "r-mine", "--format", "json", "--out", str(tmp_path / "r.json")) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {tmp_path / 'r.json'}"
    with ReportStore(settings.db_path) as local:
        (record,) = local.exports("r-mine")
        assert (record.owner, record.version, record.format) == (LOCAL_OWNER, 1, "json")
    assert _run(settings, "report", "delete", "r-mine") == 0 and "deleted r-mine" in capsys.readouterr().out
