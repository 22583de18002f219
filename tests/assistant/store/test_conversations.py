"""The conversation store: saved after every change, reopened after a restart, private to its owner."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.store.conversations import ChatEntry, ChatSessionStore, ChatStoreError, SaveResult, chat_title
from tests.support.paths import REPO

DIALOGUE = [
    ChatEntry("assistant", "Loaded 1 image(s) in 1 series: CT (1 image).", note="Study loaded"),
    ChatEntry("user", "Is there a pneumothorax?"),
    ChatEntry("assistant", "No pneumothorax is described."),
]


def test_save_and_reopen_in_a_new_store_object(tmp_path: Path) -> None:
    db = tmp_path / "radassist.sqlite3"
    store = ChatSessionStore(db)
    cites = [{"title": "Fleischner 2017", "section": "Solid nodules", "chunk_id": "abc"}]
    chat_id = store.save(None, DIALOGUE, citations=cites, mode="Study Q&A", report_id="r1").chat_id
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


def test_saving_again_replaces_the_messages_edits_and_undos_included(database: Path | str) -> None:
    store = ChatSessionStore(database)
    chat_id = store.save(None, DIALOGUE).chat_id
    edited = [*DIALOGUE[:1], ChatEntry("user", "Any effusion?")]
    assert store.save(chat_id, edited, revision=1) == SaveResult(chat_id, 2, False)
    saved = store.load(chat_id)
    assert saved.entries == tuple(edited) and saved.info.messages == 2 and saved.info.revision == 2
    assert saved.info.title == "Any effusion?"


def test_list_is_newest_first_and_nothing_empty_is_saved(database: Path | str) -> None:
    store = ChatSessionStore(database)
    assert store.save(None, []) is None
    first = store.save(None, [ChatEntry("user", "first question")]).chat_id
    second = store.save(None, [ChatEntry("user", "second question")]).chat_id
    assert [c.chat_id for c in store.list()] == [second, first]
    store.save(first, [ChatEntry("user", "first question"), ChatEntry("assistant", "an answer")])
    assert [c.chat_id for c in store.list()] == [first, second]
    assert [c.chat_id for c in store.list(limit=1)] == [first]


def test_owners_never_see_or_overwrite_each_others_conversations(database: Path | str) -> None:
    store = ChatSessionStore(database)
    alice = store.save(None, [ChatEntry("user", "alice's question")], owner="alice").chat_id
    assert store.list(owner="bob") == []
    with pytest.raises(ChatStoreError, match="not in the saved conversations"):
        store.load(alice, owner="bob")
    assert store.delete(alice, owner="bob") is False
    # Bob saving under Alice's id starts his own conversation; hers is untouched.
    bobs = store.save(alice, [ChatEntry("user", "bob's question")], owner="bob")
    assert bobs.chat_id != alice and bobs.forked
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


def test_a_killed_process_keeps_every_saved_turn(database: Path | str) -> None:
    """A writer killed right after a save: the next process reads the conversation whole."""
    db = database
    script = (
        "import os, sys\n"
        "from assistant.store.conversations import ChatEntry, ChatSessionStore\n"
        "s = ChatSessionStore(sys.argv[1])\n"
        "cid = s.save(None, [ChatEntry('user', 'q1')]).chat_id\n"
        "s.save(cid, [ChatEntry('user', 'q1'), ChatEntry('assistant', 'a1'), ChatEntry('user', 'q2')])\n"
        "print(cid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    root = REPO
    out = subprocess.run([sys.executable, "-c", script, str(db)], capture_output=True, text=True, cwd=root)
    assert out.returncode == -9, out.stderr
    chat_id = out.stdout.strip()
    saved = ChatSessionStore(db).load(chat_id)
    assert [e.text for e in saved.entries] == ["q1", "a1", "q2"]


def test_the_database_is_owner_only_whichever_store_creates_it(tmp_path: Path) -> None:
    from assistant.report.store import ReportStore
    from assistant.store.audit import AuditLog, AuditRecord

    audit_db, report_db = tmp_path / "a.sqlite3", tmp_path / "r.sqlite3"
    AuditLog(audit_db).record(AuditRecord("chat", "t@1", "m", (), 1, 1, "ok"))
    ReportStore(report_db).drafts()
    for db in (audit_db, report_db):
        assert stat.S_IMODE(db.stat().st_mode) == 0o600, db


def test_two_tabs_on_one_conversation_never_erase_each_others_turns(database: Path | str) -> None:
    store = ChatSessionStore(database)
    start = [ChatEntry("user", "q0"), ChatEntry("assistant", "a0")]
    first = store.save(None, start)
    tab1 = tab2 = first.revision  # both tabs opened revision 1
    saved2 = store.save(first.chat_id, [*start, ChatEntry("user", "tab 2 asks")], revision=tab2)
    assert saved2 == SaveResult(first.chat_id, 2, False)
    saved1 = store.save(first.chat_id, [*start, ChatEntry("user", "tab 1 asks")], revision=tab1)
    assert saved1.forked and saved1.chat_id != first.chat_id and saved1.revision == 1
    assert store.load(first.chat_id).entries[-1].text == "tab 2 asks"
    assert store.load(saved1.chat_id).entries[-1].text == "tab 1 asks"


def test_a_database_from_before_revisions_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE chat_sessions (chat_id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, "
        "created_at REAL NOT NULL, updated_at REAL NOT NULL, mode TEXT, report_id TEXT, citations TEXT NOT NULL);"
        "INSERT INTO chat_sessions VALUES ('abc', '', 'old', 1, 1, NULL, NULL, '[]');"
    )
    conn.commit()
    conn.close()
    store = ChatSessionStore(db)
    assert store.load("abc").info.revision == 1
    assert store.save("abc", [ChatEntry("user", "new")], revision=1) == SaveResult("abc", 2, False)


def test_tabs_saving_one_revision_at_the_same_moment_never_lose_a_turn(database: Path | str) -> None:
    """The revision check and the write are one transaction (SQLite: the write lock at BEGIN; PostgreSQL: the row
    locked FOR UPDATE): of tabs saving over the same revision at once, exactly one continues it, the others fork."""
    import threading

    store = ChatSessionStore(database)
    for round_ in range(5):
        first = store.save(None, [ChatEntry("user", "q0")])
        barrier = threading.Barrier(4)
        results: list[SaveResult | None] = []

        def tab(
            i: int, chat_id: str = first.chat_id, barrier: threading.Barrier = barrier, results: list = results
        ) -> None:
            barrier.wait()
            results.append(store.save(chat_id, [ChatEntry("user", "q0"), ChatEntry("user", f"tab {i}")], revision=1))

        threads = [threading.Thread(target=tab, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        kept = [r for r in results if r is not None and not r.forked]
        assert len(results) == 4 and len(kept) == 1, (round_, results)
        assert kept[0] == SaveResult(first.chat_id, 2, False)
        assert len({r.chat_id for r in results if r is not None}) == 4  # every tab's turn is somewhere
    store.close()
