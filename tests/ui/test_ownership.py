"""A second owner, through every workspace handler that touches drafts or conversations, gets "not found" or
nothing for the first owner's: the check is the store's, so a stale or forged session cannot reach them either."""

from __future__ import annotations

import inspect
from typing import Any

from assistant import ReportError, ReportStore
from assistant.report.draft import create_report
from ui.report_panel import NO_DRAFT
from ui.session import Session
from ui.workspace import REPORT, Workspace

ALICE, BOB = "user:alice", "user:bob"
MISSING_CHAT, MISSING_DRAFT = "0123456789abcdef", "r-00000000"
DICTATION = "Small right pleural effusion."


def last(iterator: Any) -> Any:
    out = None
    for item in iterator:
        out = item
    return out


def alice_at_work(ws: Workspace) -> Session:
    """Alice on her page: a dictated draft, exported, in a saved conversation."""
    s = ws.restore(None, None, ALICE)[2]
    _, history, s, *_ = ws.accept({"text": DICTATION, "files": []}, [], s, owner=ALICE)
    last(ws.respond(history, s, REPORT))
    path, status = ws.export_report(s, "md", owner=ALICE)
    assert path and status.startswith("Exported version")
    assert s.report_id and s.chat_id
    return s


def alices_things(ws: Workspace, s: Session) -> Any:
    """Everything stored of Alice's, as she sees it."""
    store = ws.store.as_owner(ALICE)
    assert s.report_id is not None and s.chat_id is not None
    versions = [(v.number, v.report.to_dict()) for v in store.history(s.report_id)]
    return versions, store.messages(s.report_id), store.exports(s.report_id), ws.chats.load(s.chat_id, ALICE)


def test_a_second_owner_gets_nothing_of_the_firsts_through_every_handler(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["an answer"] * 4))
    alice = alice_at_work(ws)
    assert alice.report_id is not None and alice.chat_id is not None
    before = alices_things(ws, alice)
    alice_draft = ws.draft_choices(ALICE)[0]
    assert alice_draft.startswith(alice.report_id)

    # Page load with Alice's conversation id in the browser: nothing restored, nothing listed.
    chats, history, bob, *_ = ws.restore(alice.chat_id, None, BOB)
    assert chats["choices"] == [] and chats["value"] is None and bob.chat_id is None and bob.owner == BOB
    assert not isinstance(history, list)  # gr.skip(): nothing shown
    assert ws.chat_choices(BOB) == [] and ws.chat_list_update(bob)["choices"] == []

    # Open and delete her conversation: the same words as for a conversation that does not exist.
    def open_status(chat_id: str) -> str:
        return str(ws.open_chat(chat_id, bob, BOB)[4])

    assert open_status(alice.chat_id) == open_status(MISSING_CHAT) and open_status(MISSING_CHAT).startswith("⚠️")
    assert ws.delete_chat(alice.chat_id, bob, BOB)[1] == ws.delete_chat(MISSING_CHAT, bob, BOB)[1]
    # Delete's confirmation does not name her conversation, and confirming deletes nothing of hers.
    box, text, status = ws.ask_delete(alice.chat_id, bob, BOB)
    assert (box, text, status) == ws.ask_delete(MISSING_CHAT, bob, BOB) and text == "" and bob.pending_delete is None
    bob.pending_delete = alice.chat_id  # a forged session
    assert ws.confirm_delete(bob, BOB)[2].startswith("⚠️")

    # Her drafts: not listed, not opened (the same words as a missing one), not shown in the report panel.
    assert ws.draft_choices(BOB) == [] and ws.draft_choices(bob) == [] and ws.draft_options(bob) == []
    *_, html, versions, drafts = ws.switch_mode(REPORT, bob, BOB)
    assert drafts["choices"] == [] and html == NO_DRAFT and versions == ""
    opened = ws.open_report(bob, alice_draft, BOB)
    assert opened[3] == ws.open_report(bob, f"{MISSING_DRAFT} · cxr · v1", BOB)[3] and opened[3].startswith("⚠️")
    assert bob.report_id is None

    # A stale or forged session that names her draft still cannot read, export, undo or dictate into it.
    bob.report_id = alice.report_id
    assert ws.switch_mode(REPORT, bob, BOB)[4] == NO_DRAFT
    assert ws.export_report(bob, "md", BOB) == ws.export_report(Session.create(ws.data_dir), "md", BOB)
    assert ws.export_report(bob, "md", BOB)[0] is None
    try:
        ws.drafting(bob).handle(alice.report_id, "undo")
        raise AssertionError("Bob's drafting reached Alice's draft")
    except ReportError as exc:
        assert "no report with id" in str(exc)
    report_html, versions, status = ws.report_action(bob, "undo", BOB)
    assert bob.report_id != alice.report_id  # undo went to a draft of Bob's own (a new one)
    bob.report_id = alice.report_id
    _, history, bob, *_ = ws.accept({"text": "Mild cardiomegaly.", "files": []}, [], bob, owner=BOB)
    chat, _, report_html, versions = last(ws.respond(history, bob, REPORT))
    assert bob.report_id != alice.report_id and DICTATION not in report_html
    # A conversation of Bob's that names her conversation id is saved as a new one of his.
    bob.chat_id, bob.chat_rev = alice.chat_id, None
    ws.undo(chat, bob)
    assert bob.chat_id != alice.chat_id
    bob.chat_id, bob.chat_rev = alice.chat_id, None
    ws.stop(chat, bob, REPORT)  # "Stop" saves what the screen shows: as a new conversation of his too
    assert bob.chat_id != alice.chat_id
    ws.new_chat(bob)
    bob_report = ws.new_report(bob, "cxr", BOB)[0].report_id

    assert alices_things(ws, alice) == before  # nothing of Alice's was read into Bob's view or changed
    assert ws.draft_choices(ALICE) == [alice_draft] and bob_report not in " ".join(ws.draft_choices(ALICE))
    assert {c[1] for c in ws.chat_choices(BOB)}.isdisjoint({alice.chat_id})


# Handlers that never touch a stored draft or conversation (what they do is the tab's own, or no one's).
UNRELATED = {
    "status_line", "status_timer", "starting", "waiting_messages", "session", "ingest", "change_view", "change_series",
    "answer_api", "retry", "edit", "export_chat", "similar_cases", "owner", "anonymous_owner", "new_browser_id",
    "sources_update", "show_source", "calculate", "close", "image_input", "runtime",
    "start_text", "image_limit", "series_frames", "view_outputs", "pin_frame", "unpin_frame", "clear_pins",
    "choose_whole_series", "window_boxes", "cancel_delete", "chat_notice",
}  # fmt: skip
WALKED = {
    "restore", "chat_choices", "chat_list_update", "open_chat", "delete_chat", "draft_choices", "switch_mode",
    "open_report", "export_report", "drafting", "report_action", "accept", "respond", "undo", "new_chat",
    "new_report", "save_chat", "ensure_report", "reports", "ask_delete", "confirm_delete", "draft_options", "stop",
}  # fmt: skip


def test_every_workspace_handler_is_walked_or_named_as_touching_no_stored_object() -> None:
    public = {name for name, _ in inspect.getmembers(Workspace) if not name.startswith("_")}
    assert public == WALKED | UNRELATED, "classify the new handler and walk it in the test above"


def test_a_tab_that_no_event_has_named_owns_nothing_off_loopback(make_runtime: Any) -> None:
    local = make_runtime()
    with ReportStore(local.settings.db_path) as cli:  # a draft of the machine's local user (the command line)
        cli.create(create_report("cxr", "r-local"))
    ws = Workspace(local)
    assert ws.session(None).owner == "" and "r-local" in " ".join(ws.draft_choices(ws.session(None)))

    others = [Workspace(make_runtime(host="0.0.0.0")), Workspace(make_runtime(auth_user="a", auth_password="b"))]
    others.append(Workspace(local, single_user=False))  # the app knows better: e.g. accounts or an SSO proxy
    for other in others:
        assert other.owner(None, "b1") == "browser:b1" and other.owner("alice", "b1") == "user:alice"
        s = other.session(None)  # e.g. the tab's state expired: never someone else's owner
        assert s.owner.startswith("browser:") and s.owner != other.session(None).owner
        assert other.draft_choices(s) == [] and other.switch_mode(REPORT, s)[4] == NO_DRAFT
        assert other.open_report(s, "r-local")[3].startswith("⚠️") and s.report_id is None
        assert other.export_report(None, "md")[0] is None


def test_her_conversation_reopens_with_her_draft(make_runtime: Any) -> None:
    ws = Workspace(make_runtime())
    alice = alice_at_work(ws)
    opened = ws.open_chat(alice.chat_id, None, ALICE)
    assert opened[1].report_id == alice.report_id and DICTATION.rstrip(".") in opened[5]
