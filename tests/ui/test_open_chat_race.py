"""Reopening a saved conversation ("Open") while a message is on its way never mixes two conversations.

Gradio runs Open's handler and a message's handlers in either order, and the page sends the chat shown at the time
of sending. A message sent while the tab still showed the conversation it is leaving, before or after the click,
must never be saved under the opened conversation: that would replace its messages with the other one's. Driven
through the app's own wiring (tests/ui/tabs.py), the server handling the two in both orders.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest

from tests.ui.tabs import Tab, last
from ui import app as ui_app
from ui.workspace import STUDY_QA, Workspace

ORDERS = ["message handled first", "click handled first"]


def two_conversations(ws: Workspace) -> tuple[Tab, str, str]:
    """A tab that asked in conversation A, then in a new one, B (on screen). Returns (tab, A's id, B's id)."""
    tab = Tab(ui_app.create_app(ws.runtime, ws))
    tab.send(tab.type("question A"))
    chat_a = tab.session().chat_id
    tab.finish(tab.click("ra-new-chat"))
    tab.send(tab.type("question B"))
    chat_b = tab.session().chat_id
    assert chat_a and chat_b and chat_a != chat_b and tab.chat() == ["question B", "answer B "]
    return tab, chat_a, chat_b


def saved(ws: Workspace, chat_id: str) -> list[str]:
    return [e.text for e in ws.chats.load(chat_id).entries]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sent_when", ["before the click", "after the click"])
def test_a_message_sent_from_the_conversation_left_never_overwrites_the_one_opened(
    make_runtime: Any, order: str, sent_when: str
) -> None:
    ws = Workspace(make_runtime(["answer A", "answer B", "answer C"]))
    tab, chat_a, chat_b = two_conversations(ws)

    tab.choose("ra-chats", chat_a)
    if sent_when == "before the click":
        sent = tab.type("follow-up")  # B on screen
        click = tab.click("ra-open-chat")
    else:
        click = tab.click("ra-open-chat")  # the server is loaded: the reply with A is not in yet
        sent = tab.type("follow-up")  # ... when the message is sent, with B still on screen
    if order == "message handled first":
        tab.send(sent)
        tab.finish(click)
    else:
        tab.finish(click)
        tab.send(sent)

    assert saved(ws, chat_a) == ["question A", "answer A "]  # never B's turns
    assert tab.chat() == ["question A", "answer A "] and tab.session().chat_id == chat_a
    conversations = {label.split(" · ")[0] for label, _ in ws.chat_choices()}
    assert conversations == {"question A", "question B"}
    if order == "message handled first" and sent_when == "before the click":
        # Sent to B and handled there before the tab left B: B keeps it (its answer ended when A was opened).
        assert saved(ws, chat_b)[:3] == ["question B", "answer B ", "follow-up"]
    else:
        # Sent to B after the tab had left it: back into the box, unsent, and the status line says why.
        assert saved(ws, chat_b) == ["question B", "answer B "]
        assert tab.value("ra-input") == {"text": "follow-up", "files": []}
        assert "not sent" in str(tab.value("ra-chat-status")).lower()


def test_a_message_sent_once_the_opened_conversation_is_shown_continues_it(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["answer A", "answer B", "answer C"]))
    tab, chat_a, chat_b = two_conversations(ws)
    tab.choose("ra-chats", chat_a)
    tab.finish(tab.click("ra-open-chat"))
    tab.send(tab.type("follow-up"))
    assert tab.chat() == ["question A", "answer A ", "follow-up", "answer C "]
    assert saved(ws, chat_a) == ["question A", "answer A ", "follow-up", "answer C "]
    assert saved(ws, chat_b) == ["question B", "answer B "]


@pytest.mark.parametrize("last_click", ["Open", "New chat"])
def test_two_switches_handled_the_other_way_round_end_where_the_user_clicked_last(
    make_runtime: Any, last_click: str
) -> None:
    """"New chat" and "Open" clicked at once, the server handling them the other way round: the later click's
    conversation stays on screen, and the next message goes there."""
    ws = Workspace(make_runtime(["answer A", "answer B", "answer C"]))
    tab, chat_a, chat_b = two_conversations(ws)
    tab.choose("ra-chats", chat_a)
    first, second = ("ra-new-chat", "ra-open-chat") if last_click == "Open" else ("ra-open-chat", "ra-new-chat")
    clicked = [tab.click(first), tab.click(second)]
    for pending in reversed(clicked):
        tab.finish(pending)
    tab.send(tab.type("follow-up"))
    if last_click == "Open":
        assert tab.session().chat_id == chat_a
        assert tab.chat() == saved(ws, chat_a) == ["question A", "answer A ", "follow-up", "answer C "]
    else:
        assert tab.chat() == saved(ws, tab.session().chat_id) == ["follow-up", "answer C "]
        assert saved(ws, chat_a) == ["question A", "answer A "]
    assert saved(ws, chat_b) == ["question B", "answer B "]


def test_a_message_taken_before_open_is_not_answered_into_the_opened_conversation(make_runtime: Any) -> None:
    """The message was taken in B, "Open" handled before its answer began: no answer at all (it would be saved
    under A); B keeps the question."""
    ws = Workspace(make_runtime(["answer A", "answer B", "answer C"]))
    tab, chat_a, chat_b = two_conversations(ws)
    s = tab.session()
    _, screen, s, *_ = ws.accept({"text": "follow-up", "files": []}, tab.value("ra-chat"), s, switches=1, shown=1)
    ws.open_chat(chat_a, s, switches=2)
    assert last(ws.respond(screen, s, STUDY_QA, sent=True, stops=0)) == (gr.skip(),) * 4
    assert saved(ws, chat_a) == ["question A", "answer A "]
    assert saved(ws, chat_b) == ["question B", "answer B ", "follow-up"]


def test_an_answer_streaming_at_open_ends_and_never_reaches_the_opened_conversation(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["answer A", "answer B", "a long answer to the follow-up"]))
    tab, chat_a, chat_b = two_conversations(ws)
    _, screen, s, *_ = ws.accept({"text": "follow-up", "files": []}, tab.value("ra-chat"), tab.session(),
                                 switches=1, shown=1)  # fmt: skip
    streaming = ws.respond(screen, s, STUDY_QA, sent=True, stops=0)
    next(streaming)
    ws.open_chat(chat_a, s, switches=2)  # no `cancels=`: the answer ends by itself
    assert list(streaming) == []
    assert saved(ws, chat_a) == ["question A", "answer A "]
    assert saved(ws, chat_b) == ["question B", "answer B ", "follow-up"]


def test_open_cancels_nothing_and_is_counted_in_the_browser(make_runtime: Any) -> None:
    """Gradio's page applies `cancels=` only after the listener's reply, stopping the answer to a message sent
    meanwhile: "Open" counts the switch at the click instead, and an answer left ends by itself."""
    tab = Tab(ui_app.create_app(make_runtime([])))
    [counted] = tab.fns(target="ra-open-chat")
    assert counted.fn is None and counted.js == ui_app.COUNT_JS and not counted.cancels
    [reopen] = tab.fns(after=counted)
    assert not reopen.cancels and tab.blocks["ra-shown"]._id in [c._id for c in reopen.outputs]


@pytest.mark.parametrize("clicked", ["before Open", "after Open, before its reply"])
def test_stop_with_the_conversation_left_on_screen_saves_nothing_into_the_opened_one(
    make_runtime: Any, clicked: str
) -> None:
    ws = Workspace(make_runtime(["answer A", "answer B"]))
    tab, chat_a, chat_b = two_conversations(ws)
    screen_b, s = tab.value("ra-chat"), tab.session()
    ws.open_chat(chat_a, s, switches=2)  # handled before the Stop
    switches = 1 if clicked == "before Open" else 2
    ws.stop(screen_b, s, STUDY_QA, stops=1, switches=switches, shown=1)
    assert saved(ws, chat_a) == ["question A", "answer A "]
    assert saved(ws, chat_b) == ["question B", "answer B "]
