"""A message sent right after "New chat", before the server has handled the click, is answered in the new chat.

Gradio runs the click's handler and the message's handlers in either order (each event has its own concurrency
group, and the queue starts the groups' events in random order), and the browser reads the chat for the message from
the screen. The first test drives the app's own wiring, as a tab does: the listeners of the click and of the
message, with their inputs read from what the tab shows and their replies shown in the order they land.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.tabs import Tab, last
from ui import app as ui_app
from ui.workspace import STUDY_QA, Workspace


@pytest.mark.parametrize("order", ["message handled first", "click handled first"])
def test_a_message_sent_while_new_chat_is_still_queued_is_answered_in_the_new_chat(
    make_runtime: Any, order: str
) -> None:
    ws = Workspace(make_runtime(["first answer", "second answer"]))
    tab = Tab(ui_app.create_app(ws.runtime, ws))
    tab.send(tab.type("first question"))
    assert tab.chat() == ["first question", "first answer "]
    first = tab.session().chat_id

    click = tab.click("ra-new-chat")  # the server is loaded: the click's reply is not in yet
    sent = tab.type("second question")  # ... when the message is sent, with the first conversation on screen
    if order == "message handled first":
        tab.send(sent)  # handled and answered while the click waits; the click's reply lands last
        tab.finish(click)
    else:
        tab.finish(click)
        tab.send(sent)

    assert tab.chat() == ["second question", "second answer "]
    chats = {label.split(" · ")[0]: chat_id for label, chat_id in ws.chat_choices()}
    assert set(chats) == {"first question", "second question"} and chats["first question"] == first
    assert [e.text for e in ws.chats.load(first).entries] == ["first question", "first answer "]
    assert [e.text for e in ws.chats.load(chats["second question"]).entries] == ["second question", "second answer "]


def test_a_message_sent_before_the_click_and_handled_after_it_goes_back_into_the_box(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["first answer"]))
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, switches=0)
    screen = last(ws.respond(screen, s, STUDY_QA, sent=True))[0]
    ws.new_chat(s, 1)  # the click reached the server first
    message = {"text": "typed before the click", "files": []}
    box, shown, s, *viewer = ws.accept(message, screen, s, switches=0)
    assert box == message and shown == {"__type__": "update"}  # kept, unsent, in the box of the new chat
    assert all(v == {"__type__": "update"} for v in viewer)
    assert last(ws.respond([], s, STUDY_QA, sent=True))[0] == []  # nothing to answer, nothing saved
    assert [label.split(" · ")[0] for label, _ in ws.chat_choices()] == ["first question"]


def test_an_answer_streaming_at_new_chat_ends_and_never_reaches_the_new_chat(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["a long answer to the first question", "second answer"]))
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, switches=0)
    first = s.chat_id
    streaming = ws.respond(screen, s, STUDY_QA, sent=True)
    screen = next(streaming)[0]  # a first piece is on screen
    ws.new_chat(s, 1)
    assert list(streaming) == []  # not a piece more: the screen keeps the new chat
    # The screen may still show the old conversation (a piece landed late): the new chat starts empty all the same.
    _, shown, s, *_ = ws.accept({"text": "second question", "files": []}, screen, s, switches=1)
    assert [m["content"] for m in shown] == ["second question"]
    answered = last(ws.respond(screen, s, STUDY_QA, sent=True))[0]
    assert [m["content"] for m in answered] == ["second question", "second answer "]
    assert [e.text for e in ws.chats.load(first).entries] == ["first question"]
    assert [e.text for e in ws.chats.load(s.chat_id).entries] == ["second question", "second answer "]


def test_an_answer_sent_while_another_ends_waits_for_it_instead_of_being_dropped(make_runtime: Any) -> None:
    """Gradio's page drops a listener's run while that listener still runs ("once"), and counts a cancelled run as
    running until its cancel is done: the answer to the next message waits ("always_last"), and "New chat" cancels
    nothing (the answer it leaves ends by itself, test above)."""
    tab = Tab(ui_app.create_app(make_runtime([])))
    answering = next(f for f in tab.fns(after=tab.accept()) if getattr(f.fn, "__name__", "") == "answer_sent")
    assert answering.trigger_mode == "always_last"
    new_chat = [f for fn in tab.fns(target="ra-new-chat") for f in [fn, *tab.fns(after=fn)]]
    assert not any(answering._id in f.cancels for f in new_chat)


def test_a_message_sent_right_after_stop_is_not_erased_by_the_stopped_answer(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["a long answer to the first question"]))
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, switches=0)
    streaming = ws.respond(screen, s, STUDY_QA, sent=True)
    screen = next(streaming)[0]
    ws.accept({"text": "sent right after Stop", "files": []}, screen, s, switches=0)
    streaming.close()  # the stopped answer's generator ends only now
    assert [e.text for e in ws.chats.load(s.chat_id).entries][-1] == "sent right after Stop"
