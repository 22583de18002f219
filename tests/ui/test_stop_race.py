"""A message sent right after "Stop" is answered, whatever order the server handles the two in.

"Stop" used Gradio's `cancels=`, which the page applies late: it could stop the answer to the message sent right
after, and a cancelled answer counted as running until then, so that answer was not started at all. The click is now
counted in the browser; every answer is asked for with the count, and ends by itself when a later Stop comes in.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.tabs import Tab, last
from ui import app as ui_app
from ui.workspace import STUDY_QA, Workspace

LONG = "a long answer to the first question"


def copied(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(m) for m in history]


def test_stop_ends_the_answer_at_its_next_piece_and_saves_what_was_shown(make_runtime: Any) -> None:
    ws = Workspace(make_runtime([LONG, "second answer"]))
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, switches=0, shown=0)
    streaming = ws.respond(screen, s, STUDY_QA, sent=True, stops=0)
    screen = copied(next(streaming)[0])  # the page's copy of what it shows
    ws.stop(screen, s, STUDY_QA, 1)
    assert list(streaming) == []  # not a piece more
    assert [e.text for e in ws.chats.load(s.chat_id).entries] == ["first question", "a "]
    _, screen, s, *_ = ws.accept({"text": "second question", "files": []}, screen, s, switches=0, shown=0)
    answered = last(ws.respond(screen, s, STUDY_QA, sent=True, stops=1))[0]  # asked for after the Stop: answered
    assert [m["content"] for m in answered][-2:] == ["second question", "second answer "]


@pytest.mark.parametrize("order", ["stop handled first", "stop handled last"])
def test_a_message_sent_right_after_stop_is_answered(make_runtime: Any, order: str) -> None:
    ws = Workspace(make_runtime([LONG, "second answer"]))
    _, screen, s, *_ = ws.accept({"text": "first question", "files": []}, [], None, switches=0, shown=0)
    streaming = ws.respond(screen, s, STUDY_QA, sent=True, stops=0)
    screen = copied(next(streaming)[0])  # what the Stop handler is sent (the browser now counts 1 Stop)
    _, sent, s, *_ = ws.accept({"text": "sent right after Stop", "files": []}, screen, s, switches=0, shown=0)
    if order == "stop handled first":
        ws.stop(screen, s, STUDY_QA, 1)
        assert list(streaming) == []
        answer = ws.respond(sent, s, STUDY_QA, sent=True, stops=1)
    else:  # the Stop handler is held up: the first answer runs to its end, then the second starts (always_last)
        assert list(streaming)
        answer = ws.respond(sent, s, STUDY_QA, sent=True, stops=1)
        next(answer)
        ws.stop(screen, s, STUDY_QA, 1)  # ... and the late Stop neither stops it nor saves its old screen
    answered = [m["content"] for m in last(answer)[0]]
    assert answered == ["first question", "a ", "sent right after Stop", "second answer "]
    assert [e.text for e in ws.chats.load(s.chat_id).entries] == answered


def test_stop_cancels_nothing_and_is_counted_in_the_browser(make_runtime: Any) -> None:
    tab = Tab(ui_app.create_app(make_runtime([])))
    [counted] = tab.fns(target="ra-input", event="stop")
    assert counted.fn is None and counted.js == ui_app.COUNT_JS and not counted.cancels
    assert not any(f.cancels for f in tab.app.fns.values())  # no listener cancels an answer any more
    stops = tab.blocks["ra-stops"]._id
    answers = [f for f in tab.app.fns.values() if getattr(f.fn, "__name__", "") in ("answer", "answer_sent")]
    assert len(answers) == 3 and all(stops in [c._id for c in f.inputs] for f in answers)
