"""One browser tab on the real app's wiring, for the race tests: the listeners Gradio runs, with their inputs read
from what the tab shows and their replies shown in the order a test lets them land."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from gradio.blocks import Block

from ui import app as ui_app
from ui.session import Session
from ui.workspace import STUDY_QA


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
            if isinstance(value, Block):  # a component returned as an update: the arguments it was given
                value = {"__type__": "update", **value.constructor_args}
            if isinstance(value, dict) and value.get("__type__") == "update":
                if "value" not in value:
                    continue
                value = value["value"]
            self.shown[component._id] = value

    def in_browser(self, fn: Any) -> None:
        """A listener with no server function: a click counted in the browser (COUNT_JS, NEW_CHAT_JS, run here by
        their Python twins) or, with ``cancels``, nothing to cancel here (every answer below has ended before the
        next event)."""
        if fn.js is None:
            return
        [count] = self.read(fn)
        counted = int(count or 0) + 1
        twins = {ui_app.COUNT_JS: [counted], ui_app.NEW_CHAT_JS: [counted, counted]}
        assert fn.js in twins and len(fn.inputs) == 1 and fn.outputs[0]._id == fn.inputs[0]._id
        self.show(fn, twins[fn.js])

    def click(self, target: str) -> list[tuple[Any, list[Any]]]:
        """Click: what runs in the browser runs now; the server listeners come back with what the page sent them
        (read from the screen now), to run later (the server is loaded)."""
        pending: list[tuple[Any, list[Any]]] = []
        todo = self.fns(target=target)
        while todo:
            fn = todo.pop(0)
            if fn.fn is None:
                self.in_browser(fn)
                todo[:0] = self.fns(after=fn)
            else:
                pending.append((fn, self.read(fn)))
        return pending

    def finish(self, pending: list[tuple[Any, list[Any]]]) -> None:
        """The server handles the click's listeners, and their replies land (then whatever runs after them)."""
        for fn, sent in pending:
            self.show(fn, self.run(fn, sent))
            self.finish([(then, self.read(then)) for then in self.fns(after=fn)])

    def choose(self, target: str, value: Any) -> None:
        """Pick ``value`` in a component (a conversation in the saved list)."""
        self.shown[self.blocks[target]._id] = value

    def type(self, text: str) -> list[Any]:
        """Type ``text`` and press Enter: what the page sends with it (read from the screen now)."""
        self.shown[self.blocks["ra-input"]._id] = {"text": text, "files": []}
        return self.read(self.accept())

    def send(self, sent: list[Any]) -> None:
        """The server handles the message sent with ``sent``; its reply lands, then the answer runs and lands."""
        self.finish([(self.accept(), sent)])

    def accept(self) -> Any:
        [accept] = self.fns(target="ra-input", event="submit")
        return accept

    def session(self) -> Session:
        return next(v for v in self.shown.values() if isinstance(v, Session))

    def value(self, target: str) -> Any:
        component = self.blocks[target]
        return self.shown.get(component._id, getattr(component, "value", None))

    def chat(self) -> list[str]:
        return [str(m["content"]) for m in self.value("ra-chat")]
