"""A message sent right after "New chat", before the server has handled the click, is answered in the new chat.

Gradio runs the click's handler and the message's handlers in either order (each event has its own concurrency
group, and the queue starts the groups' events in random order), and the browser reads the chat for the message from
the screen. The first test drives the app's own wiring, as a tab does: the listeners of the click and of the
message, with their inputs read from what the tab shows and their replies shown in the order they land.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from ui import app as ui_app
from ui.session import Session
from ui.workspace import STUDY_QA, Workspace


def last(iterator: Iterator[Any]) -> Any:
    out = None
    for out in iterator:  # noqa: B007
        pass
    return out


class Tab:
    """One browser tab on the app, as far as the chat goes: what its components show, and Gradio's page rules that
    matter here: a click's listeners run in order; one without a server function runs in the browser at once (its
    Python twin below); a listener's inputs are read from the screen when the page sends it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.blocks = {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None)}
        self.shown: dict[int, Any] = {self.blocks["ra-mode"]._id: STUDY_QA}

    def fns(self, after: Any = None, target: str | None = None, event: str = "click") -> list[Any]:
        """The listeners of an event (``target``), or those run after listener ``after``, in the order Gradio runs
        them."""
        if target is not None:
            wanted = (self.blocks[target]._id, event)
            found = [f for f in self.app.fns.values() if wanted in f.targets]
        else:
            found = [f for f in self.app.fns.values() if f.trigger_after == after._id]
        return sorted(found, key=lambda f: f._id)

    def read(self, fn: Any) -> list[Any]:
        return [self.shown.get(c._id, getattr(c, "value", None)) for c in fn.inputs]

    def run(self, fn: Any, inputs: list[Any]) -> list[Any]:
        """The server runs ``fn`` (to its last piece when it streams); its reply."""
        extra = {"request": None} if "request" in inspect.signature(fn.fn).parameters else {}
        out = fn.fn(*inputs, **extra)
        out = last(out) if inspect.isgenerator(out) else out
        return list(out) if len(fn.outputs) > 1 else [out]

    def show(self, fn: Any, reply: list[Any]) -> None:
        """The reply lands: each output shows its value, unless it is an update without one (gr.skip())."""
        for component, value in zip(fn.outputs, reply, strict=True):
            if isinstance(value, dict) and value.get("__type__") == "update":
                if "value" not in value:
                    continue
                value = value["value"]
            self.shown[component._id] = value

    def in_browser(self, fn: Any) -> None:
        """A listener with no server function: the click counted (NEW_CHAT_JS) or, with ``cancels``, nothing to
        cancel here (every answer below has ended before the next event)."""
        if fn.js is not None:
            assert fn.js == ui_app.NEW_CHAT_JS and [c._id for c in fn.outputs] == [fn.inputs[0]._id]
            self.shown[fn.inputs[0]._id] = int(self.read(fn)[0] or 0) + 1

    def click(self, target: str) -> list[Any]:
        """Click: what runs in the browser runs now; the server listeners come back, to run later (its reply slow)."""
        pending: list[Any] = []
        todo = self.fns(target=target)
        while todo:
            fn = todo.pop(0)
            if fn.fn is None:
                self.in_browser(fn)
                todo[:0] = self.fns(after=fn)
            else:
                pending.append(fn)
        return pending

    def finish(self, pending: list[Any]) -> None:
        """The server handles the click's listeners, and their replies land (then whatever runs after them)."""
        for fn in pending:
            self.show(fn, self.run(fn, self.read(fn)))
            self.finish(self.fns(after=fn))

    def type(self, text: str) -> list[Any]:
        """Type ``text`` and press Enter: what the page sends with it (read from the screen now)."""
        self.shown[self.blocks["ra-input"]._id] = {"text": text, "files": []}
        return self.read(self.accept())

    def send(self, sent: list[Any]) -> None:
        """The server handles the message sent with ``sent``; its reply lands, then the answer runs and lands."""
        self.show(self.accept(), self.run(self.accept(), sent))
        self.finish(self.fns(after=self.accept()))

    def accept(self) -> Any:
        [accept] = self.fns(target="ra-input", event="submit")
        return accept

    def session(self) -> Session:
        return next(v for v in self.shown.values() if isinstance(v, Session))

    def chat(self) -> list[str]:
        return [str(m["content"]) for m in self.shown[self.blocks["ra-chat"]._id]]


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
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, new_chats=0)
    screen = last(ws.respond(screen, s, STUDY_QA, sent=True))[0]
    ws.new_chat(s, 1)  # the click reached the server first
    message = {"text": "typed before the click", "files": []}
    box, shown, s, *viewer = ws.accept(message, screen, s, new_chats=0)
    assert box == message and shown == {"__type__": "update"}  # kept, unsent, in the box of the new chat
    assert all(v == {"__type__": "update"} for v in viewer)
    assert last(ws.respond([], s, STUDY_QA, sent=True))[0] == []  # nothing to answer, nothing saved
    assert [label.split(" · ")[0] for label, _ in ws.chat_choices()] == ["first question"]


def test_an_answer_streaming_at_new_chat_ends_and_never_reaches_the_new_chat(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["a long answer to the first question", "second answer"]))
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, new_chats=0)
    first = s.chat_id
    streaming = ws.respond(screen, s, STUDY_QA, sent=True)
    screen = next(streaming)[0]  # a first piece is on screen
    ws.new_chat(s, 1)
    assert list(streaming) == []  # not a piece more: the screen keeps the new chat
    # The screen may still show the old conversation (a piece landed late): the new chat starts empty all the same.
    _, shown, s, *_ = ws.accept({"text": "second question", "files": []}, screen, s, new_chats=1)
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
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, new_chats=0)
    streaming = ws.respond(screen, s, STUDY_QA, sent=True)
    screen = next(streaming)[0]
    ws.accept({"text": "sent right after Stop", "files": []}, screen, s, new_chats=0)
    streaming.close()  # the stopped answer's generator ends only now
    assert [e.text for e in ws.chats.load(s.chat_id).entries][-1] == "sent right after Stop"
