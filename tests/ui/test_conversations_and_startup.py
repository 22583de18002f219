"""Conversations that survive a restart, and an app that is up while its engine starts (handler level)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from assistant import EngineStartError, Runtime, RuntimeStarter, StartupState
from tests.ui.synthetic import write_ct_series
from tests.ui.uploads import staged
from ui.session import Session
from ui.workspace import GUIDELINE, REPORT, STUDY_QA, Workspace

SEVEN_MM = "Single solid 7 mm nodule in a high-risk smoker - follow-up?"


def last(iterator: Any) -> Any:
    out = None
    for item in iterator:
        out = item
    return out


def ask(ws: Workspace, text: str, history: list[Any] | None = None, session: Session | None = None,
        mode: str = STUDY_QA, owner: str | None = None) -> tuple[list[Any], Session]:  # fmt: skip
    _, history, s, *_ = ws.accept({"text": text, "files": []}, history or [], session, owner=owner)
    history = last(ws.respond(history, s, mode))[0]
    return history, s


def restarted(ws: Workspace) -> Workspace:
    """A new app process on the same data dir (same database file)."""
    ws.close()
    return Workspace(ws.runtime)


# ---------------------------------------------------------------------------------------------- saved conversations


def test_a_conversation_reopens_after_a_restart_with_its_sources(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["No effusion is described."]))
    history, s = ask(ws, "Is there an effusion?")
    history, s = ask(ws, SEVEN_MM, history, s, mode=GUIDELINE)
    assert s.chat_id and s.citations

    again = restarted(ws)
    choices = again.chat_choices()
    assert [c[1] for c in choices] == [s.chat_id]
    assert choices[0][0].startswith("Is there an effusion? · ") and choices[0][0].endswith("· 4 msg")
    history2, s2, sources, _, status, *_ = again.open_chat(s.chat_id, None)
    assert [m["content"] for m in history2] == [m["content"] for m in history]
    assert s2.chat_id == s.chat_id and s2.citations == s.citations
    assert sources["visible"] and sources["choices"][0].startswith("[1] ")
    assert status.startswith("Reopened “Is there an effusion?” (4 messages)")
    # Continuing the reopened conversation saves into it, not into a new one.
    ws3 = again
    s2.owner = ""
    _, s2 = ask(ws3, "Thanks", history2, s2)
    assert [c[1] for c in ws3.chat_choices()] == [s.chat_id]
    assert ws3.chats.load(s.chat_id).info.messages == 6


def test_the_question_is_saved_before_the_model_answers_and_a_failure_is_kept(make_runtime: Any) -> None:
    from assistant import LLMUnavailableError

    ws = Workspace(make_runtime([LLMUnavailableError("the LLM server at x is not reachable")]))
    _, history, s, *_ = ws.accept({"text": "Is there an effusion?", "files": []}, [], None)
    saved = ws.chats.load(s.chat_id)
    assert [e.text for e in saved.entries] == ["Is there an effusion?"]  # before any answer
    history = last(ws.respond(history, s, STUDY_QA))[0]
    saved = ws.chats.load(s.chat_id)
    assert saved.entries[-1].text.startswith("⚠️") and "not reachable" in saved.entries[-1].text


def test_undo_edit_and_new_chat_are_saved(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["first answer", "second answer", "edited answer"]))
    history, s = ask(ws, "first question")
    history, s = ask(ws, "second question", history, s)
    history, box = ws.undo(history, s)
    assert box["text"] == "second question"
    assert [e.text for e in ws.chats.load(s.chat_id).entries] == ["first question", "first answer "]
    history = ws.edit(history, 0, "edited question")
    history = last(ws.respond(history, s, STUDY_QA))[0]
    assert [e.text for e in ws.chats.load(s.chat_id).entries] == ["edited question", "edited answer "]
    first_id = s.chat_id
    ws.new_chat(s)
    assert s.chat_id is None
    _, s = ask(ws, "a new conversation", [], s)
    assert s.chat_id != first_id and len(ws.chat_choices()) == 2


def test_a_study_note_is_kept_but_the_study_is_not(make_runtime: Any, tmp_path: Path) -> None:
    ws = Workspace(make_runtime(["described"]))
    series = write_ct_series(tmp_path / "ct", slices=3, size=64)
    files = [str(p) for p in staged(ws.data_dir, series)]
    _, history, s, *_ = ws.accept({"text": "describe", "files": files}, [], None)
    history = last(ws.respond(history, s, STUDY_QA))[0]
    again = restarted(ws)
    history2, s2, _, _, status, _, _, image, *_ = again.open_chat(s.chat_id, None)
    assert history2[0]["metadata"] == {"title": "Study loaded"} and "Loaded 3 image(s)" in history2[0]["content"]
    assert s2.study is None and image is None
    assert "attach the study again" in status


def test_each_user_sees_only_their_own_conversations(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["for alice"]))
    _, alice_session = ask(ws, "alice asks", owner="alice")
    assert [c[1] for c in ws.chat_choices("alice")] == [alice_session.chat_id]
    assert ws.chat_choices("bob") == [] and ws.chat_choices("") == []
    out = ws.open_chat(alice_session.chat_id, None, owner="bob")
    assert out[4].startswith("⚠️") and "not in the saved conversations" in out[4]
    _, status = ws.delete_chat(alice_session.chat_id, None, owner="bob")
    assert status.startswith("⚠️")
    assert ws.chats.load(alice_session.chat_id, "alice")


def test_page_load_restores_the_conversation_the_browser_had_open(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["an answer"]))
    history, s = ask(ws, "a question")
    again = restarted(ws)
    chats, history2, s2, *_ = again.restore(s.chat_id, None)
    assert chats["value"] == s.chat_id and [m["content"] for m in history2] == [m["content"] for m in history]
    assert s2.chat_id == s.chat_id
    # An id that is gone (deleted, or another user's) restores nothing and does not fail.
    chats, history3, s3, *_ = again.restore("0123456789abcdef", None)
    assert chats["value"] is None and s3.chat_id is None
    assert history3.__class__.__name__ != "list"  # gr.skip(): the chat is left as it is


def test_deleting_the_open_conversation_saves_a_continuation_as_new(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["a", "b"]))
    history, s = ask(ws, "q1")
    old = s.chat_id
    update, status = ws.delete_chat(old, s)
    assert status == "Deleted." and update["choices"] == [] and s.chat_id is None
    _, s = ask(ws, "q2", history, s)
    assert s.chat_id != old and ws.chats.load(s.chat_id).info.messages == 4


def test_report_turns_are_saved_with_the_draft_they_belong_to(make_runtime: Any) -> None:
    ws = Workspace(make_runtime())
    history, s = ask(ws, "Small right pleural effusion.", mode=REPORT)
    saved = ws.chats.load(s.chat_id)
    assert saved.report_id == s.report_id and saved.mode == REPORT
    ws.undo(history, s)  # a save without a mode keeps the conversation's mode
    assert ws.chats.load(s.chat_id).mode == REPORT
    again = restarted(ws)
    opened = again.open_chat(s.chat_id, None)
    report_html, versions = opened[5], opened[6]
    assert "pleural effusion" in report_html and versions
    assert opened[1].reopened_mode == REPORT  # the mode selector goes back to Report draft


# ---------------------------------------------------------------------------------------------- app up while starting


class SlowOpener:
    """Opens a prepared runtime after ``release`` is set, reporting progress meanwhile (like open_runtime)."""

    def __init__(self, runtime: Runtime | None, error: Exception | None = None) -> None:
        self.runtime, self.error = runtime, error
        self.release = threading.Event()
        self.closed = threading.Event()

    @contextmanager
    def __call__(self, settings: Any, progress: Any = None, vision: Any = None) -> Iterator[Runtime]:
        progress("starting the LLM engine")
        while not self.release.wait(0.05):
            progress("waiting for the LLM engine (3 s): loading weights")
        if self.error is not None:
            raise self.error
        assert self.runtime is not None
        try:
            yield self.runtime
        finally:
            self.closed.set()


def starter_for(make_runtime: Any, replies: list[str], error: Exception | None = None) -> tuple[Any, SlowOpener]:
    runtime = make_runtime(replies)
    opener = SlowOpener(None if error else runtime, error)
    return RuntimeStarter(runtime.settings, opener=opener).start(), opener


def test_while_the_engine_starts_the_chat_says_so_then_answers(make_runtime: Any) -> None:
    starter, opener = starter_for(make_runtime, ["ready now"])
    try:
        ws = Workspace(starter)
        assert ws.starting() and "⏳ starting" in ws.status_line()
        _, history, s, *_ = ws.accept({"text": "hello", "files": []}, [], None)
        stream = ws.respond(history, s, STUDY_QA)
        first = next(stream)[0][-1]["content"]
        assert first.startswith("⏳ The language model is starting")
        waiting = next(stream)[0][-1]["content"]  # the start's latest step, a second later, in plain words
        assert "step 2 of 4: loading the model's weights" in waiting and "so far" in waiting
        assert "(3 s): loading weights" not in waiting and "(3 s): loading weights" not in ws.status_line()
        opener.release.set()
        final = last(stream)[0]
        assert final[-1]["content"].strip() == "ready now" and not any("⏳" in m["content"] for m in final)
        assert not ws.starting() and "scripted" in ws.status_line()
        assert [e.text for e in ws.chats.load(s.chat_id).entries] == ["hello", "ready now "]
    finally:
        starter.close()
    assert opener.closed.is_set() and starter.status().state is StartupState.STOPPED


def test_the_viewer_and_calculators_work_before_the_engine_is_up(make_runtime: Any, tmp_path: Path) -> None:
    starter, opener = starter_for(make_runtime, [])
    try:
        ws = Workspace(starter)
        series = write_ct_series(tmp_path / "ct", slices=3, size=64)
        files = [str(p) for p in staged(ws.data_dir, series)]
        _, history, s, image, *_ = ws.accept({"text": "", "files": files}, [], None)
        assert image and s.study is not None
        form = ("solid", "very_hypoechoic", "taller_than_wide", "irregular", [], "", "15", "")
        assert "TR5" in ws.calculate("tirads", *form)
        assert ws.starting()
    finally:
        opener.release.set()
        starter.close()


def test_a_failed_start_is_a_readable_message_in_the_chat_and_the_status_line(make_runtime: Any) -> None:
    error = EngineStartError("the LLM engine failed to start: port 8000 is taken; see engine.log")
    starter, opener = starter_for(make_runtime, [], error=error)
    opener.release.set()
    try:
        ws = Workspace(starter)
        deadline = time.monotonic() + 10
        while ws.starting() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "⚠️ failed to start" in ws.status_line() and "port 8000 is taken" in ws.status_line()
        history, _ = ask(ws, "hello")
        assert history[-1]["content"].startswith("⚠️ the assistant could not start") and "port 8000" in history[-1][
            "content"
        ]
        assert list(ws.answer_api("hello"))[-1].startswith("⚠️ the assistant could not start")
    finally:
        starter.close()


def test_closing_during_the_start_cancels_it(make_runtime: Any) -> None:
    starter, opener = starter_for(make_runtime, [])
    time.sleep(0.2)
    started = time.monotonic()
    starter.close(timeout_s=10)
    assert time.monotonic() - started < 5
    assert starter.status().state is StartupState.STOPPED
    with pytest.raises(Exception, match="shutting down"):
        starter.wait(0)


def test_a_remote_server_that_comes_up_later_is_connected_without_a_restart(make_runtime: Any) -> None:
    from assistant import LLMUnavailableError

    runtime = make_runtime(["connected"])
    attempts: list[int] = []

    @contextmanager
    def opener(settings: Any, progress: Any = None, vision: Any = None) -> Iterator[Runtime]:
        attempts.append(1)
        if len(attempts) < 3:
            raise LLMUnavailableError(f"the LLM server at {settings.llm_url} is not reachable")
        yield runtime

    starter = RuntimeStarter(runtime.settings, opener=opener, retry_s=0.05).start()
    try:
        ws = Workspace(starter)
        deadline = time.monotonic() + 10
        while starter.runtime is None and time.monotonic() < deadline:  # wait() itself does not wait out a failure
            time.sleep(0.02)
        assert starter.wait(0) is runtime and len(attempts) == 3
        assert not ws.starting() and "scripted" in ws.status_line()
        history, _ = ask(ws, "hello")
        assert history[-1]["content"].strip() == "connected"
    finally:
        starter.close()


def test_while_a_remote_server_is_down_the_status_says_so_and_keeps_polling(make_runtime: Any) -> None:
    from assistant import LLMUnavailableError

    runtime = make_runtime([])

    @contextmanager
    def opener(settings: Any, progress: Any = None, vision: Any = None) -> Iterator[Runtime]:
        raise LLMUnavailableError(f"the LLM server at {settings.llm_url} is not reachable")
        yield runtime  # pragma: no cover

    starter = RuntimeStarter(runtime.settings, opener=opener, retry_s=60).start()
    try:
        ws = Workspace(starter)
        deadline = time.monotonic() + 10
        while starter.status().state is not StartupState.FAILED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ws.starting()  # the status line keeps polling while the server is tried again
        assert "not reachable (trying again)" in ws.status_line()
        assert list(ws.answer_api("hi"))[-1].startswith("⚠️ the assistant could not start")
    finally:
        starter.close(timeout_s=5)
    assert starter.status().state is StartupState.STOPPED


def test_the_browser_key_is_kept_in_the_data_dir_so_a_restart_can_read_it(tmp_path: Path) -> None:
    import stat

    from ui.session import BROWSER_SECRET_FILE, browser_secret

    first = browser_secret(tmp_path)
    assert len(first) == 64 and browser_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / BROWSER_SECRET_FILE).stat().st_mode) == 0o600
    assert browser_secret(tmp_path / "other") != first


def test_app_replicas_given_one_browser_key_use_it_and_write_none(tmp_path: Path) -> None:
    from assistant.settings import load_settings
    from ui.session import BROWSER_SECRET_FILE, browser_secret

    shared = load_settings(env={"RADASSIST_DATA_DIR": str(tmp_path), "RADASSIST_BROWSER_SECRET": "k" * 64})
    assert "k" * 64 not in repr(shared)
    for replica in ("a", "b"):  # each with its own data dir
        assert browser_secret(tmp_path / replica, shared.browser_secret) == "k" * 64
        assert not (tmp_path / replica / BROWSER_SECRET_FILE).exists()


def test_an_answer_stopped_by_opening_another_conversation_never_lands_in_it(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["answer B", "a long answer for A that is being streamed"]))
    history_b, s_b = ask(ws, "question B")
    chat_b = s_b.chat_id
    _, history_a, s, *_ = ws.accept({"text": "question A", "files": []}, [], None)
    chat_a = s.chat_id
    stream = ws.respond(history_a, s, STUDY_QA)
    next(stream)  # A's answer is streaming
    ws.open_chat(chat_b, s)  # the user opens B meanwhile (Gradio cancels A's event)
    stream.close()  # ... and A's generator ends late
    assert [e.text for e in ws.chats.load(chat_b).entries] == ["question B", "answer B "]
    assert [e.text for e in ws.chats.load(chat_a).entries] == ["question A"]
    assert s.chat_id == chat_b


def test_progress_lines_and_empty_answers_are_not_saved_as_answers(make_runtime: Any) -> None:
    ws = Workspace(make_runtime())
    s = ws.session(None)
    history = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "⏳ The language model is starting (3 s: loading). Your question will…"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": ""},
    ]
    ws.save_chat(history, s)
    assert [e.text for e in ws.chats.load(s.chat_id).entries] == ["q1", "q2"]


def test_two_tabs_on_one_conversation_fork_instead_of_erasing(make_runtime: Any) -> None:
    ws = Workspace(make_runtime(["a0", "tab 2 answer", "tab 1 answer"]))
    history, s1 = ask(ws, "q0")
    history2, s2, *_ = ws.open_chat(s1.chat_id, None)  # the second tab opens the same conversation
    ask(ws, "tab 2 asks", history2, s2)
    ask(ws, "tab 1 asks", history, s1)
    assert s1.chat_id != s2.chat_id
    assert [e.text for e in ws.chats.load(s2.chat_id).entries][-2:] == ["tab 2 asks", "tab 2 answer "]
    assert [e.text for e in ws.chats.load(s1.chat_id).entries][-2:] == ["tab 1 asks", "tab 1 answer "]


def test_conversation_owner_policy(make_runtime: Any) -> None:
    local = Workspace(make_runtime())
    assert local.owner(None, "b1") == "" and local.owner("alice", "b1") == "user:alice"
    remote = Workspace(make_runtime(host="0.0.0.0"))
    assert remote.owner(None, "b1") == "browser:b1" and remote.owner(None, "b2") == "browser:b2"
    assert remote.owner("alice", "b1") == "user:alice"
    assert remote.owner(None, None) != remote.owner(None, None)  # no id: a throwaway owner, never a shared one


def test_a_broken_database_on_page_load_is_a_readable_line(make_runtime: Any, tmp_path: Path) -> None:
    from assistant import ChatSessionStore

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    ws = Workspace(make_runtime(), chats=ChatSessionStore(blocker / "db.sqlite3"))
    out = ws.restore("0123456789abcdef", None)
    assert out[5].startswith("⚠️ cannot open the conversation database")
    assert ws.chat_choices() == []


def test_buttons_that_need_the_model_say_it_is_starting_instead_of_hanging(make_runtime: Any) -> None:
    starter, opener = starter_for(make_runtime, [])
    try:
        ws = Workspace(starter)
        started = time.monotonic()
        _, _, status = ws.report_action(None, "undo")
        assert status.startswith("⚠️ the language model is still starting") and time.monotonic() - started < 30
    finally:
        opener.release.set()
        starter.close()
