"""The conversation store: saved after every change, reopened after a restart, private to its owner."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.sessions import ChatEntry, ChatSessionStore, ChatStoreError, chat_title

DIALOGUE = [
    ChatEntry("assistant", "Loaded 1 image(s) in 1 series: CT (1 image).", note="Study loaded"),
    ChatEntry("user", "Is there a pneumothorax?"),
    ChatEntry("assistant", "No pneumothorax is described."),
]


def test_save_and_reopen_in_a_new_store_object(tmp_path: Path) -> None:
    db = tmp_path / "radassist.sqlite3"
    store = ChatSessionStore(db)
    cites = [{"title": "Fleischner 2017", "section": "Solid nodules", "chunk_id": "abc"}]
    chat_id = store.save(None, DIALOGUE, citations=cites, mode="Study Q&A", report_id="r1")
    assert chat_id
    store.close()

    again = ChatSessionStore(db)  # as after a restart
    saved = again.load(chat_id)
    assert saved.entries == tuple(DIALOGUE)
    assert saved.citations == tuple(cites)
    assert (saved.mode, saved.report_id) == ("Study Q&A", "r1")
    assert saved.info.title == "Is there a pneumothorax?"
    assert [c.chat_id for c in again.list()] == [chat_id]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_saving_again_replaces_the_messages_edits_and_undos_included(tmp_path: Path) -> None:
    store = ChatSessionStore(tmp_path / "db.sqlite3")
    chat_id = store.save(None, DIALOGUE)
    edited = [*DIALOGUE[:1], ChatEntry("user", "Any effusion?")]
    assert store.save(chat_id, edited) == chat_id
    saved = store.load(chat_id)
    assert saved.entries == tuple(edited) and saved.info.messages == 2
    assert saved.info.title == "Any effusion?"


def test_list_is_newest_first_and_nothing_empty_is_saved(tmp_path: Path) -> None:
    store = ChatSessionStore(tmp_path / "db.sqlite3")
    assert store.save(None, []) is None
    first = store.save(None, [ChatEntry("user", "first question")])
    second = store.save(None, [ChatEntry("user", "second question")])
    assert [c.chat_id for c in store.list()] == [second, first]
    store.save(first, [ChatEntry("user", "first question"), ChatEntry("assistant", "an answer")])
    assert [c.chat_id for c in store.list()] == [first, second]
    assert [c.chat_id for c in store.list(limit=1)] == [first]


def test_owners_never_see_or_overwrite_each_others_conversations(tmp_path: Path) -> None:
    store = ChatSessionStore(tmp_path / "db.sqlite3")
    alice = store.save(None, [ChatEntry("user", "alice's question")], owner="alice")
    assert store.list(owner="bob") == []
    with pytest.raises(ChatStoreError, match="not in the saved conversations"):
        store.load(alice, owner="bob")
    assert store.delete(alice, owner="bob") is False
    # Bob saving under Alice's id starts his own conversation; hers is untouched.
    bobs = store.save(alice, [ChatEntry("user", "bob's question")], owner="bob")
    assert bobs != alice
    assert store.load(alice, owner="alice").entries[0].text == "alice's question"
    assert store.delete(alice, owner="alice") is True
    with pytest.raises(ChatStoreError):
        store.load(alice, owner="alice")


def test_title_and_role_checks() -> None:
    assert chat_title([]) == "Untitled"
    long = "x " * 100
    assert len(chat_title([ChatEntry("user", long)])) == 60 and chat_title([ChatEntry("user", long)]).endswith("…")
    with pytest.raises(ValueError, match="role must be one of"):
        ChatEntry("system", "hi")


def test_unwritable_database_is_a_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = ChatSessionStore(blocker / "db.sqlite3")
    with pytest.raises(ChatStoreError, match="cannot open the conversation database"):
        store.list()


def test_a_killed_process_keeps_every_saved_turn(tmp_path: Path) -> None:
    """A writer killed right after a save: the next process reads the conversation whole."""
    db = tmp_path / "db.sqlite3"
    script = (
        "import os, sys\n"
        "from assistant.sessions import ChatEntry, ChatSessionStore\n"
        "s = ChatSessionStore(sys.argv[1])\n"
        "cid = s.save(None, [ChatEntry('user', 'q1')])\n"
        "s.save(cid, [ChatEntry('user', 'q1'), ChatEntry('assistant', 'a1'), ChatEntry('user', 'q2')])\n"
        "print(cid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script, str(db)], capture_output=True, text=True, cwd=root)
    assert out.returncode == -9, out.stderr
    chat_id = out.stdout.strip()
    saved = ChatSessionStore(db).load(chat_id)
    assert [e.text for e in saved.entries] == ["q1", "a1", "q2"]


def test_the_database_is_owner_only_whichever_store_creates_it(tmp_path: Path) -> None:
    from assistant.audit import AuditLog, AuditRecord
    from assistant.report_store import ReportStore

    audit_db, report_db = tmp_path / "a.sqlite3", tmp_path / "r.sqlite3"
    AuditLog(audit_db).record(AuditRecord("chat", "t@1", "m", (), 1, 1, "ok"))
    ReportStore(report_db).drafts()
    for db in (audit_db, report_db):
        assert stat.S_IMODE(db.stat().st_mode) == 0o600, db
