"""Two writers on one draft (two tabs, or the command line and the web app) and a process killed mid-dictation:
saves are compare-and-set on the version read, so neither dictation is lost, and an interrupted one is offered
again instead of staying `pending` for ever."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from assistant.llm.client import ChatMessage, GenerationOptions
from assistant.report.draft import render_text
from assistant.report.service import DraftingService
from assistant.report.store import MessageStatus, ReportStore, VersionConflict
from tests.support.paths import REPO
from tests.support.scripted import ScriptedModel


class _OtherTabDictatesMeanwhile(ScriptedModel):
    """Places a sentence, but while the model 'thinks', another tab saves a dictation of its own."""

    def __init__(self, replies: Sequence[str], other: DraftingService, report_id: str, text: str) -> None:
        super().__init__(replies)
        self.other, self.report_id, self.text = other, report_id, text

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None) -> Iterator[str]:
        if self.text:
            text, self.text = self.text, ""
            self.other.handle(self.report_id, text)
        yield from super().stream_chat(messages, options)


def test_a_save_on_a_stale_version_is_refused_and_writes_nothing(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("cxr").report.report_id
    stale = store.current(report_id)
    service.handle(report_id, "Small left pleural effusion.")
    with pytest.raises(VersionConflict) as info:
        store.save(stale.report, "dictate", "stale", stale.number, expected=stale.number)
    assert (info.value.expected, info.value.current) == (1, 2)
    assert store.current(report_id).number == 2
    assert "Small left pleural effusion." in render_text(store.load(report_id))


def test_two_tabs_dictating_at_once_lose_neither_dictation_and_the_later_is_told(store: ReportStore) -> None:
    tab_b = DraftingService(store)
    report_id = tab_b.create("ct_chest").report.report_id
    # Tab A's sentence needs the model; while it places it, tab B saves its own dictation (version 2).
    model = _OtherTabDictatesMeanwhile(['{"section": "findings.lungs_airways"}'], tab_b, report_id,
                                       "Small left pleural effusion.")  # fmt: skip
    tab_a = DraftingService(store, model)
    reply = tab_a.handle(report_id, "The patient is status post right upper lobectomy.")
    assert reply.ok and reply.version == 3
    assert "changed meanwhile" in reply.text and "nothing of either was lost" in reply.text
    text = render_text(store.load(report_id))
    assert "Small left pleural effusion." in text and "status post right upper lobectomy" in text
    assert [v.action for v in store.history(report_id)] == ["new", "dictate", "dictate"]
    assert all(m.status is MessageStatus.DONE for m in store.messages(report_id) if m.role == "user")


def _at_once(database: Path | str, n: int, action: Callable[[ReportStore, int], object]) -> list[object]:
    """``action`` run by ``n`` threads at once, each with its own store (own engine), as app replicas would."""
    stores = [ReportStore(database) for _ in range(n)]
    barrier = threading.Barrier(n)
    outcomes: list[object] = []

    def run(store: ReportStore, i: int) -> None:
        barrier.wait()
        try:
            outcomes.append(action(store, i))
        except Exception as exc:  # noqa: BLE001 - compared below
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(store, i)) for i, store in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for store in stores:
        store.close()
    return outcomes


def test_replicas_saving_on_the_same_version_at_once_one_wins_and_the_others_are_told(database: Path | str) -> None:
    with ReportStore(database) as seed:
        report_id = DraftingService(seed).create("cxr").report.report_id
        read = seed.current(report_id)
    outcomes = _at_once(
        database, 4, lambda store, i: store.save(read.report, "edit", f"replica {i}", 1, expected=read.number)
    )
    conflicts = [o for o in outcomes if isinstance(o, VersionConflict)]
    assert len(outcomes) == 4 and len(conflicts) == 3, outcomes
    assert {(c.expected, c.current) for c in conflicts} == {(1, 2)}
    with ReportStore(database) as store:
        assert [v.number for v in store.history(report_id)] == [1, 2]


def test_replicas_saving_without_a_version_read_at_once_all_get_the_next_one(database: Path | str) -> None:
    with ReportStore(database) as seed:
        report_id = DraftingService(seed).create("cxr").report.report_id
        report = seed.load(report_id)
    outcomes = _at_once(database, 4, lambda store, i: store.save(report, "edit", f"replica {i}", None).number)
    assert sorted(outcomes) == [2, 3, 4, 5], outcomes  # type: ignore[type-var]
    with ReportStore(database) as store:
        assert [v.number for v in store.history(report_id)] == [1, 2, 3, 4, 5]


def test_a_tab_dictating_on_a_version_it_no_longer_shows_is_told_and_both_are_kept(database: Path | str) -> None:
    db = database
    with ReportStore(db) as web, ReportStore(db) as cli:  # two engines, as the web app and the command line
        report_id = DraftingService(web).create("cxr").report.report_id
        shown = web.current(report_id).number
        DraftingService(cli).handle(report_id, "Small left pleural effusion.")
        reply = DraftingService(web).handle(report_id, "Mild cardiomegaly.", seen_version=shown)
        assert "changed meanwhile" in reply.text and reply.version == 3
        text = render_text(web.load(report_id))
        assert "Small left pleural effusion." in text and "Mild cardiomegaly." in text


def test_undo_or_accept_on_a_draft_that_moved_since_it_was_shown_is_not_applied(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("cxr").report.report_id
    service.handle(report_id, "Mild cardiomegaly.")
    shown = store.current(report_id).number
    service.handle(report_id, "Small left pleural effusion.")  # from another window
    for command in ("undo", "accept all"):
        reply = service.handle(report_id, command, seen_version=shown)
        assert not reply.changed and f"Nothing was {'undone' if command == 'undo' else 'accepted'}" in reply.text
        assert "version 3" in reply.text
    assert store.current(report_id).number == 3
    assert "Small left pleural effusion." in render_text(store.load(report_id))


def test_a_dictation_interrupted_by_a_killed_process_is_offered_again_and_applied_by_retry(
    database: Path | str,
) -> None:
    db = database
    script = (
        "import os\n"
        "from assistant.report.store import ReportStore\n"
        "from assistant.report.service import DraftingService\n"
        "class Dies:\n"
        "    model_id = 'dies'\n"
        "    def stream_chat(self, messages, options=None):\n"
        "        os.kill(os.getpid(), 9)\n"
        "        yield ''\n"
        f"store = ReportStore({str(db)!r})\n"
        "service = DraftingService(store, Dies())\n"
        "rid = service.create('ct_chest', report_id='r-crash').report.report_id\n"
        "service.handle(rid, 'The patient is status post right upper lobectomy.')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    with ReportStore(db) as store:
        [turn] = [m for m in store.messages("r-crash") if m.role == "user"]
        assert turn.status is MessageStatus.PENDING and turn.interrupted
        assert [m.id for m in store.failed_messages("r-crash")] == [turn.id]
        service = DraftingService(store, ScriptedModel(['{"section": "findings.lungs_airways"}']))
        assert "interrupted by a crash" in service.retry_note("r-crash")
        reply = service.handle("r-crash", "retry")  # typed in the dialogue, as the note says
        assert reply.ok and "status post right upper lobectomy" in render_text(store.load("r-crash"))
        assert store.failed_messages("r-crash") == [] and service.retry_note("r-crash") == ""


def test_a_pending_dictation_of_a_live_process_is_not_offered(store: ReportStore) -> None:
    report_id = DraftingService(store).create("cxr").report.report_id
    store.add_message(report_id, "user", "Mild cardiomegaly.", MessageStatus.PENDING)  # this process: still working
    assert store.failed_messages(report_id) == []
    [turn] = [m for m in store.messages(report_id) if m.role == "user"]
    assert turn.status is MessageStatus.PENDING and not turn.interrupted


def test_a_dictation_pending_on_another_hosts_replica_is_offered_again_only_once_it_is_too_old(
    store: ReportStore, database: Path | str
) -> None:
    """Another machine's process cannot be looked up in this one's /proc: its turn counts as being applied for
    OTHER_HOST_PENDING_S, then as interrupted (offered for retry)."""
    import socket
    import time

    import sqlalchemy as sa

    from assistant.report.store import OTHER_HOST_PENDING_S, worker_token
    from assistant.store.db import create_database_engine

    assert worker_token().endswith("@" + socket.gethostname())
    report_id = DraftingService(store).create("cxr").report.report_id
    turn = store.add_message(report_id, "user", "Mild cardiomegaly.", MessageStatus.PENDING)
    engine = create_database_engine(database)

    def written(worker: str, age_s: float) -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE report_messages SET worker = :worker, created_at = :at WHERE id = :id"),
                {"worker": worker, "at": time.time() - age_s, "id": turn},
            )

    try:
        written("4242:123456@replica-on-another-host", 5.0)
        assert store.failed_messages(report_id) == []  # still being applied over there
        written("4242:123456@replica-on-another-host", OTHER_HOST_PENDING_S + 5.0)
        assert [m.id for m in store.failed_messages(report_id)] == [turn]
    finally:
        engine.dispose()
