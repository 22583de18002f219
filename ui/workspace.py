"""The workspace's event handlers: plain functions of the screen's values, called by Gradio or by tests.

Every handler turns errors into readable messages (``RadassistError`` text, or a generic line for the
unexpected, logged with its traceback); nothing here logs PHI: only counts, timings and pseudonymous ids.

Conversations and report drafts belong to the tab's owner (:meth:`Workspace.owner`, kept in ``Session.owner``):
every draft is read and written through ``ReportStore.as_owner``, so the owner check is in the store's SQL, not
here. Attachments are read only when they are regular files that the browser uploaded into Gradio's cache.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import secrets
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image as PILImage

from assistant import (
    NOT_FOR_CLINICAL_USE,
    AskContext,
    AuditLog,
    CalculatorInputError,
    ChatNotFound,
    ChatSessionStore,
    DraftingService,
    ExportFormat,
    ImageInput,
    IngestResult,
    Mode,
    Pseudonymizer,
    RadassistError,
    ReportStore,
    Runtime,
    RuntimeStarter,
    StartupState,
    StudyRef,
    View,
    VisionService,
    image_in_view,
    images_from_study,
    images_in_views,
    list_templates,
    load_study,
    record_burned_in_text,
    series_views,
    volume_in_view,
)
from ui import calculators, report_panel, viewer
from ui.messages import (
    FAILED_TITLE,
    NOTE_TITLE,
    History,
    Message,
    Progress,
    citation_label,
    entries_history,
    error_text,
    history_entries,
    history_to_turns,
    is_note,
    message_text,
    note,
    upload_paths,
)
from ui.report_panel import AUTO_TEMPLATE
from ui.session import (
    NOT_FOUND,
    RefusedUpload,
    Session,
    gradio_cache_dir,
    remove_uploads,
    screen_uploads,
    sessions_root,
    sweep,
    upload_key,
)
from ui.shared_uploads import IngestedUploads, removed_text
from ui.viewer import ViewerOutputs, pins_markdown, session_spec, window_values

logger = logging.getLogger(__name__)

STUDY_QA = "Study Q&A"
GUIDELINE = "Guideline lookup"
REPORT = "Report draft"
MODES = (STUDY_QA, GUIDELINE, REPORT)
# The page's labels as answering modes, mapped once (the report draft is the report panel's own turn).
UI_MODES = {STUDY_QA: Mode.AUTO, GUIDELINE: Mode.GUIDELINE}

LOOPBACK = ("127.0.0.1", "localhost", "::1")
THUMBNAIL_PX = 96  # the chat's thumbnails of the images sent with a question
# Why a message went back into the box unsent (Workspace.accept): the status line under the chat.
LEFT_NOTICE = (
    "⚠️ Your message was not sent: it was sent to the conversation you had just left. It is back in the message box; "
    "send it again to ask it here."
)
OPENING_NOTICE = (
    "⚠️ Your message was not sent: it was sent before the conversation you opened was on screen. It is back in the "
    "message box; send it again to ask it here."
)

_ANALYSED = {
    ImageInput.EMBEDS: "analysed by the model (image embeddings)",
    ImageInput.PIXELS: "analysed by the model (pixels)",
    ImageInput.NONE: "**not analysed** — the model gets only de-identified metadata, never the pixels",
}


class OpenedChat(NamedTuple):
    """What opening a saved conversation updates: the one place the order of ``open_chat``'s outputs is written."""

    history: Any
    session: Any
    sources: Any
    source_text: Any
    status: Any
    report: Any
    versions: Any
    viewer: ViewerOutputs

    def as_outputs(self) -> tuple[Any, ...]:
        """The fields in the order app.py wires them, the viewer's components spread at the end."""
        *head, view = self
        return (*head, *view.as_outputs())

    @classmethod
    def skipped(cls, session: Any, status: Any = None) -> OpenedChat:
        """Nothing opened: only the session (and a status line, if given) change."""
        return cls(
            history=gr.skip(), session=session, sources=gr.skip(), source_text=gr.skip(),
            status=gr.skip() if status is None else status, report=gr.skip(), versions=gr.skip(),
            viewer=ViewerOutputs.skip(),
        )  # fmt: skip


class Workspace:
    """Handlers of one running app; per-tab state lives in :class:`Session` objects passed in and out.

    The runtime may still be starting (the app is up while the engine loads): handlers that need the model wait for
    it, streaming ones show the start's progress meanwhile; the viewer and the calculators work at once.
    """

    def __init__(
        self, runtime: Runtime | RuntimeStarter, store: ReportStore | None = None,
        chats: ChatSessionStore | None = None, single_user: bool | None = None,
    ) -> None:  # fmt: skip
        self.starter = runtime if isinstance(runtime, RuntimeStarter) else RuntimeStarter.of(runtime)
        self.settings = self.starter.settings
        self.data_dir = Path(self.settings.data_dir)
        self.max_age_s = self.settings.upload_max_age_s
        # Uploads this app ingested and deleted moments ago, for the other tabs holding the identical file.
        self.ingested = IngestedUploads(self.max_age_s, max_bytes=self.settings.ingest_max_upload_bytes)
        # Single-user mode: nobody logs in and only this computer can connect, so a tab without a user name is the
        # machine's one local user (owner "", the command line's too). The app says so when it knows its log-in
        # mode; the guess from the settings alone errs towards "not single-user" (then no tab is the local user).
        if single_user is None:
            single_user = self.settings.host in LOOPBACK and not (
                self.settings.auth_user or self.settings.auth_password
                or getattr(self.settings, "auth_proxy_header", None)
            )  # fmt: skip
        self.single_user = single_user
        self.store = store or ReportStore(self.settings.database)
        self.chats = chats or ChatSessionStore(self.settings.database)
        # The vision service (built from the settings before the engine starts) decides what the model sees.
        self.vision: VisionService = self.starter.vision

    @property
    def runtime(self) -> Runtime:
        """The running runtime. While the engine starts this waits a few seconds, then raises RuntimeNotReady with
        the start's progress (streaming handlers show the progress themselves before they get here)."""
        ready = self.starter.runtime
        if ready is not None:
            return ready
        return self.starter.wait(5.0)

    # ------------------------------------------------------------------------------------------ status

    @property
    def image_input(self) -> ImageInput:
        return self.vision.image_input

    def status_line(self) -> str:
        """Model, where it runs, its image profile, and whether image content reaches the model."""
        profile = self.vision.profile
        once = " (each image sent once per conversation)" if profile.sees_images and profile.send_once else ""
        analysed = f"profile: **{profile.name}**{once} · image content: {_ANALYSED[self.image_input]}"
        rt = self.starter.runtime
        if rt is None:
            status = self.starter.status()
            name = self.settings.llm_served_name or self.settings.llm_model or "default model"
            if status.state is StartupState.FAILED:
                return f"Model: **{name}** · ⚠️ {status.describe()} · {analysed}"
            return f"Model: **{name}** · ⏳ {self.start_text(status.step, status.elapsed_s)} · {analysed}"
        where = "embedded vLLM engine" if rt.engine else f"vLLM server at {rt.llm_url}"
        pool_status = getattr(rt.client, "pool_status", None)  # OpenAIChatClient's; not on scripted test models
        pool = pool_status() if pool_status is not None else None  # several servers: who is down, who answers
        if pool is not None:
            where = pool
        health = rt.engine_health()  # the engine's watchdog: died or hung after start-up, being restarted
        if health is not None and health.note:
            return f"Model: **{rt.model_id}** ({where}) · {'' if health.ok else '⚠️ '}{health.note} · {analysed}"
        return f"Model: **{rt.model_id}** ({where}) · {analysed}"

    def status_timer(self) -> Any:
        """How the status line polls: every second while the engine starts or restarts, every 5 s while an embedded
        engine runs (a later death shows up), not at all with a remote server that is up."""
        rt = self.starter.runtime
        health = rt.engine_health() if rt is not None else None
        busy = self.starting() or (health is not None and not health.ok)
        return gr.Timer(value=1.0 if busy else 5.0, active=busy or health is not None)

    def starting(self) -> bool:
        """True while the runtime is still starting or will try again (the UI keeps polling the status line)."""
        status = self.starter.status()
        return status.state is StartupState.STARTING or status.retrying

    def start_text(self, step: str, elapsed_s: float) -> str:
        """The start's progress for a person: which step of how many, the time so far and the usual time; never
        the engine's own log lines (they are for the log: "reserved_cpus=[]" helps nobody at the screen)."""
        number, total, what = start_step(step, embedded=not self.settings.llm_url)
        estimate = START_ESTIMATE if total == 4 else "usually a few seconds"
        return (
            f"starting the language model, step {number} of {total}: {what} ({duration(elapsed_s)} so far; "
            f"{estimate})"
        )

    def waiting_messages(self) -> Iterator[str]:
        """While the runtime starts: one chat line per second saying what it is doing (nothing once ready)."""
        for status in self.starter.progress():
            yield (
                f"⏳ The language model is starting: {self.start_text(status.step, status.elapsed_s)}. "
                "Your question will be answered as soon as it is ready."
            )

    def session(self, session: Session | None, owner: str | None = None) -> Session:
        """The tab's session (a new one when it has none yet or it expired); ``owner``, when the event knows it,
        is whose conversations and drafts the tab sees from now on."""
        if not isinstance(session, Session):
            sweep(sessions_root(self.data_dir), self.max_age_s)
            sweep(gradio_cache_dir(self.data_dir), self.max_age_s)
            session = Session.create(self.data_dir)
            # Until an event says who this is, the tab is nobody in particular: the local user in single-user mode,
            # else a fresh browser id that owns nothing (an expired tab never falls back to someone else's).
            session.owner = self.anonymous_owner()
        if owner is not None:
            session.owner = owner
        return session

    def reports(self, s: Session) -> ReportStore:
        """The report store as the tab's owner sees it (every read and write checked in the store)."""
        return self.store.as_owner(s.owner)

    # ------------------------------------------------------------------------------------------ upload

    def accept(
        self, message: dict[str, Any] | str | None, history: History | None, session: Session | None,
        progress: Progress | None = None, owner: str | None = None, switches: int | None = None,
        shown: int | None = None,
    ) -> tuple[Any, ...]:  # fmt: skip
        """Submit: ingest attached files (study shown in the viewer), then add the question to the chat; the
        conversation is saved before the model is asked, so the question survives whatever happens next.

        ``switches``: the conversation switches ("New chat", "Open") the browser had counted when the message was
        sent; ``shown``: the switch whose conversation the message was sent to (an "Open" is shown once its reply is
        in, a "New chat" at the click). None: not known. Gradio runs a switch's handler and this one in either order,
        so the message goes where the user sent it: into the new chat when "New chat" came first (started here if its
        handler has not run yet); back into the message box, unsent, with the reason in :meth:`chat_notice`, when it
        was sent to a conversation the tab has since left, or before the conversation opened was on screen (it would
        otherwise be saved with the other conversation's messages under the opened one).

        Returns (textbox, history, session, *viewer outputs).
        """
        known = isinstance(session, Session)  # else a new (or expired) tab: there is nothing to start over
        s = self.session(session, owner)
        if isinstance(message, str):
            message = {"text": message, "files": []}
        message = message or {"text": "", "files": []}
        stale = self._stale_screen(s, switches, shown)
        if stale is not None:
            return self._send_back(message, s, *stale)
        if switches is not None and switches > s.switches:  # a "New chat" clicked before sending, not handled yet
            if known:
                self._start_over(s)
            s.switches = s.moved_at = switches
        # A new chat starts empty: the screen may still show the conversation left (the click's reply not in yet).
        history = [] if s.blank else list(history or [])
        text = (message.get("text") or "").strip()
        paths = upload_paths(message.get("files") or [])
        if paths or text:
            s.blank = False
        if paths:
            history.append(self.ingest(paths, s, progress))
        if text:
            history.append({"role": "user", "content": text})
        if paths or text:
            self.save_chat(history, s)
        s.accepted = list(history)
        s.unsent, s.skip_answer = None, False
        return ({"text": "", "files": []}, history, s, *self.view_outputs(s).as_outputs())

    @staticmethod
    def _stale_screen(s: Session, switches: int | None, shown: int | None) -> tuple[int, str] | None:
        """Whether what the page sent with these counts is from a conversation the tab has left since, or was sent
        before the conversation opened was on screen: (the switch it met, why), else None."""
        if switches is not None and switches < s.moved_at:
            return s.switches, LEFT_NOTICE
        if switches is not None and shown is not None and shown < switches:
            return switches, OPENING_NOTICE
        return None

    def _send_back(self, message: dict[str, Any], s: Session, switch: int, why: str) -> tuple[Any, ...]:
        """The message back into the box, unsent; nothing else on screen changes and its answer step does nothing
        (a new chat's shows it empty)."""
        s.unsent = (switch, why)
        s.accepted = [] if s.blank else None
        s.skip_answer = not s.blank
        return (message, gr.skip(), s, *ViewerOutputs.skip().as_outputs())

    def chat_notice(self, session: Session | None, switch: int | None = None) -> str:
        """The status line about a message sent back into the box, for switch ``switch`` (None: the tab's
        current one); "" when there is none."""
        if not isinstance(session, Session) or session.unsent is None:
            return ""
        at, why = session.unsent
        return why if at == (session.switches if switch is None else switch) else ""

    def ingest(self, paths: list[str], s: Session, progress: Progress | None = None) -> Message:
        """Load the uploaded files as the session's study; the uploads are deleted afterwards. Only regular files
        inside Gradio's upload cache are read (anything else is refused before anything is read).

        Tabs that attached identical bytes under the same name hold the same cache path (:mod:`ui.shared_uploads`):
        their submits take turns on it, and one that finds exactly the files an earlier ingest read and deleted gets
        that ingest's study (shared, immutable; no second audit row: no second OCR ran). A file missing otherwise is
        named with what happened to it, never a generic error."""
        cache = gradio_cache_dir(self.data_dir)
        keys = [upload_key(p, cache) for p in paths]
        held = {k for k in keys if k is not None}
        with self.ingested.claim(held):  # the same file submitted by another tab: one after the other
            if held and None not in keys and not any(os.path.lexists(k) for k in held):
                shared = self.ingested.result(held)
                if shared is not None:
                    logger.info("upload: %d file(s) ingested by another tab moments ago; its study reused", len(held))
                    return self._show_ingest(shared, s, [])
            paths, refused = screen_uploads(paths, cache)  # before anything is read
            others = [r for r in refused if r.reason != NOT_FOUND]
            lines = [refused_text(others)] if others else []
            lines += [f"⚠️ {removed_text(r.name)}" for r in refused if r.reason == NOT_FOUND]
            if not paths:
                return note("\n".join(lines), FAILED_TITLE)
            if progress is not None:
                progress(0.1, desc=f"reading {len(paths)} file(s)")
            started = time.perf_counter()
            try:
                result = load_study(paths, self.settings)
            except FileNotFoundError as exc:  # an upload deleted while it was read (another app process, a sweep)
                gone = [p for p in paths if str(exc.filename) == p or not os.path.lexists(p)]
                if not gone:
                    return note(error_text(exc), FAILED_TITLE)
                lines += [f"⚠️ {removed_text(Path(p).name)}" for p in gone]
                if len(paths) > len(gone):
                    lines.append(f"Nothing was loaded: attach all {len(paths)} file(s) again.")
                return note("\n".join(lines), FAILED_TITLE)
            except Exception as exc:  # the loader reports per file; anything else is a message, not a crash
                return note(error_text(exc), FAILED_TITLE)
            else:
                # A file that failed because it went between the screening and the read: said so (and nothing of
                # this half-read upload is offered to other tabs).
                vanished = {f.path for f in result.errors if f.path in paths and not os.path.lexists(f.path)}
                if not vanished:
                    self.ingested.record(paths, result)
            finally:
                remove_uploads(paths, cache)
        if any(study.redaction_audit() for study in result.studies):  # boxes and counts, never text
            with AuditLog(self.settings.database) as audit:
                record_burned_in_text(audit, result.studies)
        logger.info(
            "upload: %d file(s), %d rejected, %d study(ies) in %.0f ms",
            len(result.files), len(result.errors), len(result.studies), (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return self._show_ingest(result, s, lines, vanished, progress)

    def _show_ingest(
        self, result: IngestResult, s: Session, lines: list[str], vanished: Collection[str] = (),
        progress: Progress | None = None,
    ) -> Message:  # fmt: skip
        """The ingest's study into the session, and the chat note saying what was loaded and what was not."""
        if progress is not None:
            progress(0.9, desc="rendering")
        lines = list(lines)
        if result.study is not None:
            s.clear_study()
            s.study = result.study
            summary = result.study.summary()
            series = ", ".join(
                " ".join(filter(None, (x["modality"], x.get("body_part"))))
                + f" ({x['frame_count']} image{'s' * (x['frame_count'] > 1)})"
                for x in summary["series"]
            )
            lines.append(f"Loaded {summary['image_count']} image(s) in {summary['series_count']} series: {series}.")
            if len(result.studies) > 1:
                lines.append(f"The upload held {len(result.studies)} studies; the first one is shown.")
        else:
            lines.append("No image could be read from the upload.")
        s.files = [(Path(f.path).name, f.ok, f.error) for f in result.files]
        for f in result.errors[:10]:
            name = Path(f.path).name
            lines.append(f"- {removed_text(name)}" if f.path in vanished else f"- `{name}`: {f.error}")
        if len(result.errors) > 10:
            lines.append(f"- … and {len(result.errors) - 10} more file(s) could not be read.")
        if result.skipped:  # zip members deliberately not opened: said, so that nothing vanishes silently
            reasons = sorted({x.reason.split(",")[0].split(" (")[0] for x in result.skipped})
            lines.append(f"- {len(result.skipped)} file(s) in the zip were skipped: {'; '.join(reasons)}.")
        if result.study is not None and self.image_input is ImageInput.NONE:
            lines.append("The model is text-only: it will see the de-identified metadata, not the pixels.")
        return note("\n".join(lines), NOTE_TITLE if result.study is not None else FAILED_TITLE)

    # ------------------------------------------------------------------------------------------ viewer

    def change_view(
        self, session: Session | None, series_label: str | None, slice_number: float | None, window: str,
        center: float | None = None, width: float | None = None,
    ) -> tuple[Any, ...]:  # fmt: skip
        """Series, slice or window changed: render again. Returns (image, caption)."""
        s = self.session(session)
        if s.study is None:
            return None, "No study loaded."
        try:
            return viewer.apply_view(s, series_label, slice_number, window, center, width)
        except Exception as exc:
            return gr.skip(), error_text(exc)

    def change_series(self, session: Session | None, series_label: str | None, window: str) -> tuple[Any, ...]:
        """Another series: first frame, slider resized. Returns (image, caption, slider)."""
        image, caption = self.change_view(session, series_label, None, window)
        return image, caption, viewer.slice_slider(self.session(session))

    # ------------------------------------------------------------------------------------------ answering

    def respond(
        self, history: History | None, session: Session | None, mode: str, progress: Progress | None = None,
        sent: bool = False, stops: int | None = None,
    ) -> Iterator[tuple[Any, ...]]:  # fmt: skip
        """Answer the last user message in ``mode``; yields (history, sources, report, versions) while streaming.

        ``sent``: answering a message just sent: the conversation is the one :meth:`accept` left, not ``history``
        (the screen, which a late piece of an answer ended by "New chat" may have painted over).
        ``stops``: the "Stop" clicks the browser had counted when this answer was asked for: those stop the answers
        before it, never this one (:meth:`stop`). The answer ends at its next piece when the tab moves to another
        conversation or "Stop" is clicked after it was asked for.
        The conversation is saved when the answer is complete or failed (stopped: by :meth:`stop`).
        """
        s = self.session(session)
        accepted, s.accepted = s.accepted, None  # any answer that starts supersedes a message still waiting
        skip_answer, s.skip_answer = s.skip_answer, False
        if stops is not None and stops > s.stops:
            s.stops = stops  # a Stop its handler has not applied yet: for the answer running before this one
        if sent and skip_answer:  # nothing to answer, nothing to save (the screen is the switch's)
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        if sent and accepted is not None:
            history = accepted
        history = list(history or [])
        if not history or history[-1].get("role") != "user" or is_note(history[-1]):
            self.save_chat(history, s, mode)  # e.g. a question edited away
            yield history, gr.skip(), gr.skip(), gr.skip()
            return
        generation, stopped_at = s.chat_generation, s.stops
        try:
            for shown in self._respond(history, s, mode, progress):
                if s.chat_generation != generation or s.stops != stopped_at:
                    return  # the tab moved to another conversation ("New chat", "Open") or "Stop": not a piece more
                yield shown
        finally:
            # Ended after the tab moved on, or after a newer message was saved with what the screen showed (sent
            # right after "Stop"): save nothing then, or this answer would land in the other conversation, or erase
            # that message. Stopped: :meth:`stop` saved what the screen shows (this holds one piece more).
            if s.chat_generation == generation and s.stops == stopped_at and s.accepted is None:
                self.save_chat(history, s, mode)

    def stop(
        self, history: History | None, session: Session | None, mode: str, stops: int | None = None,
        switches: int | None = None, shown: int | None = None,
    ) -> None:  # fmt: skip
        """"Stop": the answer running ends at its next piece (:meth:`respond`) and what the screen shows is saved.

        ``stops``: the browser's count of "Stop" clicks with this one. Its handler may run after a message sent
        right after it was taken, or after that message's answer started (which applied this Stop already): the
        screen read at the click is older than that message then, and nothing is saved or stopped here.
        ``switches``, ``shown``: as :meth:`accept`'s; a screen from a conversation the tab has left is not saved.
        """
        if not isinstance(session, Session):
            return
        if stops is not None:
            if stops <= session.stops:
                return
            session.stops = stops
        stale = self._stale_screen(session, switches, shown) is not None
        if not stale and session.accepted is None and not session.skip_answer:
            self.save_chat(history or [], session, mode)

    def _respond(self, history: History, s: Session, mode: str, progress: Progress | None) -> Iterator[tuple[Any, ...]]:
        question = message_text(history[-1].get("content")) or ""
        turns = history_to_turns(history[:-1])
        waiting = False
        for line in self.waiting_messages():
            if not waiting:
                history.append({"role": "assistant", "content": line})
                waiting = True
            history[-1]["content"] = line
            yield history, gr.skip(), gr.skip(), gr.skip()
        if waiting:
            history.pop()
        if mode == REPORT:
            history[:], *rest = self._report_turn(history, s, question)
            yield history, *rest
            return
        history[-1]["content"] = question  # a retried question loses the thumbnails of its earlier answer
        history.append({"role": "assistant", "content": ""})
        text = ""
        try:
            # The conversation's id (saved with the question, before the model is asked) is the LLM pool's
            # affinity key: every turn of it goes to one server of a pool, whichever app replica asks.
            context = dataclasses.replace(self._view_context(s), conversation_id=s.chat_id)
            # Runtime.stream picks the mode and dispatches (the same path as `radassist ask`); this only renders.
            for event in self.runtime.stream(question, mode=UI_MODES[mode], history=turns, context=context):
                if event.kind == "mode" and event.mode is Mode.CHAT and context.images:
                    # The images go with this question: the question shows thumbnails of exactly what is sent.
                    history[-2]["content"] = [question, *self._thumbnails(s, context)]
                    yield history, gr.skip(), gr.skip(), gr.skip()
                if event.kind == "mode" and event.mode in (Mode.GUIDELINE, Mode.GROUNDED):
                    history[-1]["content"] = "⏳ Looking up the guideline…"
                    yield history, gr.skip(), gr.skip(), gr.skip()
                    if progress is not None:
                        progress(None, desc="guideline lookup")
                elif event.kind == "delta":
                    text += event.text
                    history[-1]["content"] = text
                    yield history, gr.skip(), gr.skip(), gr.skip()
                elif event.answer is not None and event.mode is not Mode.CHAT:
                    history[-1]["content"] = event.answer.text
                    s.citations = [dict(c) for c in event.answer.citations]
                    yield history, self.sources_update(s), gr.skip(), gr.skip()
                    return
                elif event.answer is not None:  # a study question: the prior reports it was given are its sources
                    s.citations = [dict(c) for c in event.answer.citations]
                    yield history, self.sources_update(s), gr.skip(), gr.skip()
            if not text.strip():
                history[-1]["content"] = "⚠️ The model returned an empty answer; try again or rephrase."
                yield history, gr.skip(), gr.skip(), gr.skip()
        except Exception as exc:
            shown = message_text(history[-1]["content"]) or ""
            if shown.startswith("⏳"):
                shown = ""
            history[-1]["content"] = (shown + "\n\n" if shown else "") + error_text(exc)
            yield history, gr.skip(), gr.skip(), gr.skip()

    def _view_context(self, s: Session) -> AskContext:
        """What goes with a question: the whole series sampled evenly when chosen, else the pinned frames in
        series order, else the frame on screen, each rendered with its window and labelled."""
        if s.study is None:
            return AskContext()
        if s.whole_series and self.series_frames > 1:
            if self.vision.profile.volume_slices > 0:  # MedGemma 1.5: three-window slices, not the window on screen
                images, sent = volume_in_view(s.study, s.series_index, self.vision.profile, self.series_frames)
            else:
                views = series_views(s.study, s.series_index, self.series_frames, session_spec(s.window))
                images, sent = images_in_views(s.study, views, sampled=True)
            return AskContext(images=tuple(images), sent=tuple(sent), study=s.study)
        if s.pins:
            views = [View(series, frame, session_spec(window)) for series, frame, window in s.pins]
            images, sent = images_in_views(s.study, views)
            return AskContext(images=tuple(images), sent=tuple(sent), study=s.study)
        image, what = image_in_view(s.study, View(s.series_index, s.slice_index, session_spec(s.window)))
        return AskContext(images=(image,), sent=(what,), study=s.study)  # study: facts and priors

    def _thumbnails(self, s: Session, context: AskContext) -> list[dict[str, Any]]:
        """Small PNGs of the images sent (the renderings themselves, shrunk), as chat file parts with their labels."""
        parts: list[dict[str, Any]] = []
        # A text-only model gets each frame's label, not its pixels: the thumbnail says so.
        sent = "Sent" if self.image_input is not ImageInput.NONE else "Described to the model (pixels not analysed)"
        for image in context.images:
            pixels = getattr(image, "rendering", None)
            if pixels is None:
                continue
            picture = PILImage.fromarray(np.ascontiguousarray(pixels))
            picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            path = s.file(".png", "sent-")
            picture.save(path)
            parts.append({"path": str(path), "alt_text": f"{sent}: {getattr(image, 'label', 'image')}"})
        return parts

    # ------------------------------------------------------------------------------------------ pinned frames

    @property
    def image_limit(self) -> int:
        """How many images one question may carry: the profile's limit (a text-only model gets their labels)."""
        profile = self.vision.profile
        return profile.max_images if profile.sees_images else self.settings.vision_max_images

    @property
    def series_frames(self) -> int:
        """How many frames "the whole series" sends: the setting, at most the profile's limit; 0 when the profile
        does not take several images."""
        profile = self.vision.profile
        if not profile.sees_images or profile.max_images < 2:
            return 0
        wanted = self.settings.vision_series_frames or profile.max_images
        return min(wanted, profile.max_images)

    def view_outputs(self, s: Session) -> ViewerOutputs:
        return viewer.view_outputs(s, self.series_frames)

    def pin_frame(self, session: Session | None) -> str:
        """Pin the frame on screen (with its window) to be sent with each question. Returns the pins panel."""
        s = self.session(session)
        if s.study is None:
            return "⚠️ Load a study first: there is no frame to pin."
        pin = (s.series_index, s.slice_index, s.window)
        if any(p[:2] == pin[:2] for p in s.pins):
            s.pins = sorted([p for p in s.pins if p[:2] != pin[:2]] + [pin])  # the same frame: its window now
            return pins_markdown(s)
        if len(s.pins) >= self.image_limit:
            return pins_markdown(s) + (
                f"\n\n⚠️ At most {self.image_limit} frames can be sent with one question (the "
                f"{self.vision.profile.name} profile's limit): unpin one first."
            )
        s.pins = sorted([*s.pins, pin])
        return pins_markdown(s)

    def unpin_frame(self, session: Session | None) -> str:
        """Unpin the frame on screen. Returns the pins panel."""
        s = self.session(session)
        s.pins = [p for p in s.pins if p[:2] != (s.series_index, s.slice_index)]
        return pins_markdown(s)

    def clear_pins(self, session: Session | None) -> str:
        s = self.session(session)
        s.pins = []
        return pins_markdown(s)

    def choose_whole_series(self, session: Session | None, chosen: bool) -> str:
        """Send the whole series (sampled evenly) instead of the pinned frames or the frame on screen."""
        s = self.session(session)
        s.whole_series = bool(chosen) and s.study is not None and self.series_frames > 1
        return pins_markdown(s)

    def window_boxes(self, session: Session | None) -> tuple[Any, Any]:
        """The custom centre and width boxes set to the window in use (a preset's values when a preset is on)."""
        s = self.session(session)
        centre, width = window_values(s)
        if centre is None or width is None:
            return gr.skip(), gr.skip()
        return centre, width

    def answer_api(self, message: str) -> Iterator[str]:
        """The /chat API endpoint: one question, no study, the answer streamed (for scripts and benchmarks).

        While the engine starts, the stream shows the start's progress; the answer then replaces it."""
        yield from self.waiting_messages()
        text = ""
        try:
            for piece in self.runtime.chat.stream(message, ()):
                text += piece
                yield text
        except Exception as exc:
            yield (text + "\n\n" if text else "") + error_text(exc)

    # ------------------------------------------------------------------------------------------ chat edits

    def retry(self, history: History | None) -> tuple[History, History]:
        """Regenerate: drop the last answer so the last question is answered again. Returns (history, history)."""
        history = list(history or [])
        while history and (history[-1].get("role") == "assistant") and not is_note(history[-1]):
            history.pop()
        return history, history

    def undo(self, history: History | None, session: Session | None = None) -> tuple[History, dict[str, Any]]:
        """Take back the last question (and its answer); the question goes back into the message box."""
        history = list(history or [])
        while history and history[-1].get("role") == "assistant" and not is_note(history[-1]):
            history.pop()
        text = ""
        if history and history[-1].get("role") == "user":
            text = message_text(history.pop().get("content")) or ""
        if isinstance(session, Session):
            self.save_chat(history, session)
        return history, {"text": text, "files": []}

    def edit(self, history: History | None, index: int | Sequence[int], value: Any) -> History:
        """Edit-and-resend: keep the conversation before the edited question, then the edited question."""
        i = int(index[0]) if isinstance(index, Sequence) else int(index)
        history = list(history or [])[:i]
        text = message_text(value) if not isinstance(value, str) else value
        if text and text.strip():
            history.append({"role": "user", "content": text.strip()})
        return history

    def new_chat(self, session: Session | None, switches: int | None = None) -> tuple[Any, ...]:
        """Start over: empty chat, no study, no sources, no open draft; the session's files are deleted.

        ``switches``: the browser's count of conversation switches ("New chat", "Open") with this click. A message
        sent after the click may have been handled first and started the new chat already (:meth:`accept`), or a
        later "Open" handled first: then nothing changes here. The message box keeps what is typed in it (a message
        typed meanwhile is not wiped by a late reply).
        """
        s = self.session(session)
        if switches is not None and switches < s.switches:  # a later switch was handled first: it stands
            return (gr.skip(), gr.skip(), s, gr.skip(), gr.skip(), gr.skip(), *ViewerOutputs.skip().as_outputs())
        hidden = gr.update(value=None, visible=False)
        if switches is not None and switches == s.switches:  # the chat, the box and the viewer are the message's
            return (gr.skip(), gr.skip(), s, self.sources_update(s), "", hidden, *ViewerOutputs.skip().as_outputs())
        self._start_over(s)
        if switches is not None:
            s.switches = s.moved_at = switches
        box = gr.update(submit_btn=True, stop_btn=False)
        return ([], box, s, self.sources_update(s), "", hidden, *self.view_outputs(s).as_outputs())

    def _start_over(self, s: Session) -> None:
        self._leave(s)
        s.clear_study()
        s.citations = []
        s.report_id = None
        s.chat_id = s.chat_rev = None  # the old conversation stays saved; the next message starts a new one
        s.chat_generation += 1
        s.similar_key = None
        s.blank = True
        for path in s.folder.glob("*"):
            path.unlink(missing_ok=True)

    @staticmethod
    def _leave(s: Session) -> None:
        """The tab moves to another conversation: a message taken whose answer has not begun is not answered (its
        answer would land in the conversation moved to)."""
        if s.accepted is not None:
            s.accepted, s.skip_answer = None, True

    def export_chat(self, history: History | None, session: Session | None) -> tuple[str | None, str]:
        """The conversation as a Markdown file in the session folder. Returns (file, status)."""
        s = self.session(session)
        history = list(history or [])
        if not history:
            return None, "Nothing to export yet."
        lines = ["# radassist conversation", "", f"> {NOT_FOR_CLINICAL_USE}", ""]
        model = self.starter.runtime.model_id if self.starter.runtime else "(starting)"
        lines += [f"*Model: {model} · exported {time.strftime('%Y-%m-%d %H:%M')}*", ""]
        if s.study is not None:
            summary = s.study.summary()
            lines += [
                f"Study (de-identified): {', '.join(summary['modalities'])}, {summary['image_count']} image(s)",
                "",
            ]
        for message in history:
            text = message_text(message.get("content"))
            if text is None:
                continue
            if is_note(message):
                lines += [f"> {text.replace(chr(10), chr(10) + '> ')}", ""]
            elif message.get("role") == "user":
                lines += ["## Question", "", text, ""]
            else:
                lines += ["## Answer", "", text, ""]
        if s.citations:
            lines += ["## Sources", ""]
            lines += [f"- {citation_label(n, c)} ({c.get('source', '')})" for n, c in enumerate(s.citations, 1)]
        path = s.file(".md", "conversation-")
        path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
        return str(path), f"Exported {sum(1 for m in history if m.get('role') == 'user')} question(s)."

    # ------------------------------------------------------------------------------------------ similar cases

    def similar_cases(self, session: Session | None, k: int = 3) -> Any:
        """Teaching cases whose images look like the study's (when a teaching corpus is configured): a Markdown
        panel with case id, similarity and report; hidden when there is no corpus or no study. Shown to the
        radiologist only, never put into the model's prompt."""
        s = self.session(session)
        rt = self.starter.runtime
        if s.study is None or rt is None:
            return gr.update(value="", visible=False)
        if s.similar_key == id(s.study):
            return gr.skip()  # computed for this study already (the panel shows it)
        s.similar_key = id(s.study)
        try:
            if not rt.prepare_similar_cases():
                return gr.update(value="", visible=False)
            cases = rt.similar_cases(images_from_study(s.study), k)
        except Exception as exc:
            return gr.update(value=f"Similar teaching cases unavailable: {error_text(exc)}", visible=True)
        if not cases:
            return gr.update(value="No similar teaching case.", visible=True)
        lines = ["**Similar teaching cases** (for reference; not given to the model)", ""]
        for number, case in enumerate(cases, 1):
            report = " ".join(case.report.split())
            report = report if len(report) <= 400 else report[:399] + "…"
            lines.append(f"{number}. `{case.case_id}` · similarity {case.score:.2f}  \n   {html.escape(report)}")
        logger.info("similar cases: %d shown", len(cases))
        return gr.update(value="\n".join(lines), visible=True)

    # ------------------------------------------------------------------------------------------ saved chats

    def owner(self, username: str | None, browser_id: str | None) -> str:
        """Whose conversations and drafts a tab sees: the logged-in user; in single-user mode (loopback, no log-in)
        the machine's one user (""); otherwise the browser (its random id), so visitors never see each other's.
        """
        if username:
            return f"user:{username}"
        if self.single_user:
            return ""
        return f"browser:{browser_id}" if browser_id else f"browser:{secrets.token_hex(16)}"

    def anonymous_owner(self) -> str:
        """The owner of a tab no event has named yet (new, or its state expired): the local user in single-user
        mode, else a fresh random browser that owns nothing."""
        return self.owner(None, None)

    @staticmethod
    def new_browser_id() -> str:
        return secrets.token_hex(16)

    def save_chat(self, history: Sequence[Message], s: Session, mode: str | None = None) -> None:
        """Write the conversation as it is now (a failure is logged, never breaks the chat)."""
        try:
            saved = self.chats.save(
                s.chat_id, history_entries(history), owner=s.owner, citations=s.citations,
                mode=mode, report_id=s.report_id, revision=s.chat_rev,
            )  # fmt: skip
            if saved is not None:
                if saved.forked:
                    logger.info("conversation changed in another tab: this tab's version saved as a new one")
                s.chat_id, s.chat_rev = saved.chat_id, saved.revision
        except Exception as exc:  # the chat goes on; the log names the failure, never the text
            logger.warning("the conversation could not be saved: %s", type(exc).__name__)
            logger.debug("save failure", exc_info=exc)

    def chat_choices(self, owner: str = "") -> list[tuple[str, str]]:
        """(label, chat id) of the owner's saved conversations, newest first."""
        try:
            chats = self.chats.list(owner)
        except RadassistError as exc:
            logger.warning("saved conversations unreadable: %s", type(exc).__name__)
            return []
        return [
            (f"{c.title} · {time.strftime('%d %b %H:%M', time.localtime(c.updated_at))} · {c.messages} msg", c.chat_id)
            for c in chats
        ]

    def chat_list_update(self, session: Session | None = None, owner: str | None = None) -> Any:
        s_owner = owner if owner is not None else (session.owner if isinstance(session, Session) else None)
        s_owner = s_owner if s_owner is not None else self.anonymous_owner()
        current = session.chat_id if isinstance(session, Session) else None
        choices = self.chat_choices(s_owner)
        return gr.update(choices=choices, value=current if current in {c[1] for c in choices} else None)

    def open_chat(
        self, chat_id: str | None, session: Session | None, owner: str | None = None, switches: int | None = None
    ) -> tuple[Any, ...]:
        """Reopen one of the owner's saved conversations (``owner`` None: the session's): its messages, sources and
        draft; study files are not kept (attach again).

        ``switches``: the browser's count of conversation switches ("New chat", "Open") with this click; a later
        switch handled first stands (nothing changes here). A message the tab sent meanwhile is not put into this
        conversation (:meth:`accept`); the status line says so.

        Returns :class:`OpenedChat`'s fields as outputs.
        """
        s = self.session(session, owner)
        if switches is not None:
            if switches < s.switches:
                return OpenedChat.skipped(s).as_outputs()
            s.switches = switches
        notice = self.chat_notice(s, switches) if switches is not None else ""
        if not chat_id:
            return OpenedChat.skipped(s, f"⚠️ Choose a saved conversation to open. {notice}".strip()).as_outputs()
        try:
            saved = self.chats.load(chat_id, s.owner)
        except RadassistError as exc:
            return OpenedChat.skipped(s, f"{error_text(exc)} {notice}".strip()).as_outputs()
        if switches is not None:
            s.moved_at = switches
        self._leave(s)
        s.clear_study()
        s.similar_key = None
        s.chat_generation += 1
        s.blank = False
        s.chat_id, s.chat_rev = saved.info.chat_id, saved.info.revision
        s.reopened_mode = saved.mode if saved.mode in MODES else None
        s.citations = [dict(c) for c in saved.citations]
        s.report_id = saved.report_id if saved.report_id and self.reports(s).exists(saved.report_id) else None
        status = f"Reopened “{saved.info.title}” ({saved.info.messages} messages)."
        if any(e.note for e in saved.entries):
            status += " Study images are not kept between sessions: attach the study again to ask about it."
        status = f"{status} {notice}".strip()
        draft = self._draft_view(s)
        return OpenedChat(
            history=entries_history(saved), session=s, sources=self.sources_update(s), source_text="", status=status,
            report=draft.report, versions=draft.versions, viewer=self.view_outputs(s),
        ).as_outputs()  # fmt: skip

    def delete_chat(self, chat_id: str | None, session: Session | None, owner: str | None = None) -> tuple[Any, str]:
        """Delete one of the owner's saved conversations (``owner`` None: the session's); the one on screen stays
        on screen, saved again as new if continued.

        Returns (conversation list, status)."""
        s = self.session(session, owner)
        if not chat_id:
            return gr.skip(), "⚠️ Choose a saved conversation to delete."
        try:
            deleted = self.chats.delete(chat_id, s.owner)
        except RadassistError as exc:
            return gr.skip(), error_text(exc)
        if s.chat_id == chat_id:
            s.chat_id = None
        return self.chat_list_update(s), "Deleted." if deleted else "⚠️ That conversation was already gone."

    def ask_delete(self, chat_id: str | None, session: Session | None, owner: str | None = None) -> tuple[Any, ...]:
        """Delete pressed: name the conversation chosen and ask to confirm (nothing chosen: nothing to delete).

        Returns (confirmation row, confirmation text, status)."""
        s = self.session(session, owner)
        s.pending_delete = None
        hidden = gr.update(visible=False)
        if not chat_id:
            return hidden, "", "⚠️ Choose a saved conversation to delete first: nothing was deleted."
        label = {value: label for label, value in self.chat_choices(s.owner)}.get(chat_id)
        if label is None:  # gone, or someone else's: the same words
            return hidden, "", "⚠️ That conversation is not among your saved conversations."
        s.pending_delete = chat_id
        on_screen = " (the conversation on screen)" if chat_id == s.chat_id else ""
        text = f"Delete **{html.escape(label)}**{on_screen}? This cannot be undone."
        return gr.update(visible=True), text, ""

    def confirm_delete(self, session: Session | None, owner: str | None = None) -> tuple[Any, ...]:
        """Delete confirmed: deletes the conversation the question named, and only that one.

        Returns (conversation list, confirmation row, status)."""
        s = self.session(session, owner)
        chat_id, s.pending_delete = s.pending_delete, None
        if not chat_id:
            return gr.skip(), gr.update(visible=False), "Nothing was deleted."
        chats, status = self.delete_chat(chat_id, s)
        return chats, gr.update(visible=False), status

    def cancel_delete(self, session: Session | None) -> tuple[Any, str]:
        """Delete cancelled. Returns (confirmation row, status)."""
        s = self.session(session)
        s.pending_delete = None
        return gr.update(visible=False), "Nothing was deleted."

    def restore(self, last_chat: str | None, session: Session | None, owner: str | None = None) -> tuple[Any, ...]:
        """Page load: list the owner's conversations (``owner`` None: the session's) and reopen the one this browser
        had open (if still there).

        Returns (conversation list, *:class:`OpenedChat` outputs)."""
        s = self.session(session, owner)
        try:
            if last_chat:
                try:
                    self.chats.load(last_chat, s.owner)  # deleted or another user's: restore nothing, quietly
                except ChatNotFound:
                    last_chat = None
            if last_chat:
                opened = self.open_chat(last_chat, s)
                if s.chat_id == last_chat:
                    return (self.chat_list_update(s), *opened)
            return (self.chat_list_update(s), *OpenedChat.skipped(s).as_outputs())
        except Exception as exc:  # the page still works; the chat status says what failed
            return (gr.skip(), *OpenedChat.skipped(s, error_text(exc)).as_outputs())

    # ------------------------------------------------------------------------------------------ sources

    def sources_update(self, s: Session) -> Any:
        labels = [citation_label(n, c) for n, c in enumerate(s.citations, 1)]
        return gr.update(choices=labels, value=None, visible=bool(labels))

    def show_source(self, label: str | None, session: Session | None) -> str:
        """The source section a citation names: title, reference and the section's full text."""
        s = self.session(session)
        if not label:
            return ""
        labels = [citation_label(n, c) for n, c in enumerate(s.citations, 1)]
        if label not in labels:
            return "⚠️ That source is no longer available (a newer answer replaced the sources)."
        cite = s.citations[labels.index(label)]
        text = str(cite.get("text", "")).strip()
        section = cite.get("section")
        if section:
            try:
                hits = self.runtime.library.section_hits(str(section))
                if hits:
                    text = "\n\n".join(h.text.strip() for h in hits)
            except Exception as exc:  # the citation's own text is still worth showing
                logger.warning("section lookup failed (%s); showing the cited chunk", type(exc).__name__)
        return f"### {cite.get('title', 'Source')}\n*{section or ''}* — {cite.get('source', '')}\n\n{text}"

    # ------------------------------------------------------------------------------------------ calculators

    def calculate(self, name: str, *values: Any) -> str:
        """Run one guideline calculator on its form's values; the result or a readable error (Markdown)."""
        try:
            result = calculators.run(name, values)
        except CalculatorInputError as exc:
            return f"⚠️ {exc}"
        except Exception as exc:
            return error_text(exc)
        logger.info("calculator %s: category computed", name)
        return calculators.result_markdown(result)

    # ------------------------------------------------------------------------------------------ report

    def drafting(self, s: Session) -> DraftingService:
        """Drafting as the tab's owner (waits for the model while the engine starts)."""
        runtime = self.runtime  # priors: the patient's imported reports fill Comparison and the change flags
        return DraftingService(self.reports(s), runtime.client, audit=runtime.audit, priors=runtime.grounded.priors)

    def draft_choices(self, owner: str | Session | None = None) -> list[str]:
        """The owner's saved drafts, newest first (they survive restarts: SQLite under the data dir)."""
        if isinstance(owner, Session):
            owner = owner.owner
        store = self.store.as_owner(owner if owner is not None else self.anonymous_owner())
        try:
            drafts = store.drafts()
        except RadassistError as exc:
            logger.warning("saved drafts unreadable: %s", type(exc).__name__)
            return []
        return [f"{d.report_id} · {d.template} · v{d.current_version}" for d in drafts[:50]]

    def draft_options(self, owner: str | Session | None = None, now: float | None = None) -> list[tuple[str, str]]:
        """(label, draft id) of the owner's saved drafts, newest first: the label says what the draft is (title and
        its first finding in the radiologist's words), its template and when it last changed, never its id."""
        if isinstance(owner, Session):
            owner = owner.owner
        store = self.store.as_owner(owner if owner is not None else self.anonymous_owner())
        try:
            drafts = store.drafts()[:50]
        except RadassistError as exc:
            logger.warning("saved drafts unreadable: %s", type(exc).__name__)
            return []
        out = []
        for d in drafts:
            title = d.template
            try:
                report = store.current(d.report_id).report
                title = report.title
                said = [st.text for p in report.parts for st in p.statements if st.origin.value != "template"]
                if said:
                    first = " ".join(said[0].split())
                    title += ": " + (first if len(first) <= 48 else first[:47] + "…")
            except RadassistError:
                pass  # the list still names the template and the date
            when = relative_time(d.updated_at, now)
            out.append((f"{title} · {d.template} · {when} · version {d.current_version}", d.report_id))
        return out

    def new_report(self, session: Session | None, template: str | None, owner: str | None = None) -> tuple[Any, ...]:
        """A new draft from the template (or the study's). Returns (session, report, versions, status)."""
        s = self.session(session, owner)
        try:
            study = StudyRef.from_study(s.study) if s.study is not None else None
            name = None if template in (None, "", AUTO_TEMPLATE) else template
            if name is None and study is None:
                name = "ct_chest" if "ct_chest" in list_templates() else list_templates()[0]
            reply = self.drafting(s).create(name, study)
        except Exception as exc:
            return s, gr.skip(), gr.skip(), error_text(exc)
        s.report_id = reply.report.report_id
        return s, *self._draft_view(s), reply.text

    def open_report(self, session: Session | None, choice: str | None, owner: str | None = None) -> tuple[Any, ...]:
        """Reopen one of the owner's saved drafts. Returns (session, report, versions, status)."""
        s = self.session(session, owner)
        report_id = (choice or "").split(" · ", 1)[0].strip()  # a draft id (or an older "id · template" label)
        if not report_id:
            return s, gr.skip(), gr.skip(), "⚠️ Choose a saved draft to open."
        try:
            found = self.reports(s).exists(report_id)
        except RadassistError as exc:
            return s, gr.skip(), gr.skip(), error_text(exc)
        if not found:  # missing or someone else's: the same words
            return s, gr.skip(), gr.skip(), "⚠️ That draft is not among your saved drafts (deleted?)."
        s.report_id = report_id
        view = self._draft_view(s)
        waiting = self.drafting(s).retry_note(report_id)  # a dictation the model or a crash left unapplied
        return s, *view, "Opened the saved draft." + (f" {waiting}" if waiting else "")

    def _draft_view(self, s: Session) -> report_panel.DraftView:
        """The report panel's view of the session's open draft (noting the version the tab now shows)."""
        store = self.reports(s)
        s.report_version = store.current(s.report_id).number if s.report_id and store.exists(s.report_id) else None
        return report_panel.draft_view(store, s.report_id)

    def ensure_report(self, s: Session, template: str | None = None) -> str | None:
        if s.report_id is None or not self.reports(s).exists(s.report_id):
            _, _, _, status = self.new_report(s, template)
            if s.report_id is None:
                raise RadassistError(status.removeprefix("⚠️ "))
        return s.report_id

    def _report_turn(self, history: History, s: Session, text: str) -> tuple[Any, ...]:
        """Report mode: the message is dictation or an edit of the draft; the reply goes into the chat."""
        try:
            report_id = self.ensure_report(s)
            assert report_id is not None  # noqa: S101 - ensure_report raises otherwise
            reply = self.drafting(s).handle(report_id, text, s.report_version)
            shown = reply.text
            if reply.diff:
                shown += f"\n\n```diff\n{reply.diff}\n```"
            if reply.unplaced:
                shown += "\n\nNot placed (kept for retry): " + "; ".join(reply.unplaced)
        except Exception as exc:
            shown = error_text(exc)
        history = [*history, {"role": "assistant", "content": shown}]
        return history, gr.skip(), *self._draft_view(s)

    def report_action(self, session: Session | None, command: str, owner: str | None = None) -> tuple[Any, ...]:
        """A button that sends a fixed command ("undo", "accept all"). Returns (report, versions, status)."""
        s = self.session(session, owner)
        try:
            report_id = self.ensure_report(s)
            assert report_id is not None  # noqa: S101
            reply = self.drafting(s).handle(report_id, command, s.report_version)
            status = reply.text
        except Exception as exc:
            status = error_text(exc)
        return (*self._draft_view(s), status)

    def export_report(self, session: Session | None, fmt: str, owner: str | None = None) -> tuple[str | None, str]:
        """The owner's open draft as Markdown, JSON or DICOM SR in the session folder. Returns (file, status)."""
        s = self.session(session, owner)
        try:
            store = self.reports(s)
            if s.report_id is None or not store.exists(s.report_id):
                return None, "⚠️ There is no draft to export yet."
            kind = ExportFormat(fmt)
            suffix = {"md": ".md", "json": ".json", "sr": ".dcm", "txt": ".txt"}.get(kind.value, f".{kind.value}")
            # The service reads the draft as the owner and records the export; another owner's is never written.
            # The ingest's keys: a DICOM SR's own dates get the patient's date shift, as the study's dates did.
            keys = Pseudonymizer.from_settings(self.settings) if kind is ExportFormat.SR else None
            exported = DraftingService(store).export(
                s.report_id, kind, s.file(suffix, f"report-{kind.value}-"), keys=keys
            )
        except Exception as exc:
            return None, error_text(exc)
        return str(exported.path), f"Exported version {exported.version} as {kind.value}."

    # ------------------------------------------------------------------------------------------ modes

    def switch_mode(self, mode: str, session: Session | None, owner: str | None = None) -> tuple[Any, ...]:
        """Show the mode's panel. Returns (session, sources, calculators, report panels, report, versions, drafts)."""
        s = self.session(session, owner)
        report_html, versions, drafts = gr.skip(), gr.skip(), gr.skip()
        if mode == REPORT:
            report_html, versions = self._draft_view(s)
            drafts = gr.update(choices=self.draft_options(s), value=None)
        return (
            s,
            gr.update(visible=mode in (STUDY_QA, GUIDELINE)),
            gr.update(visible=mode == GUIDELINE),
            gr.update(visible=mode == REPORT),
            report_html,
            versions,
            drafts,
        )

    def close(self) -> None:
        self.store.close()
        self.chats.close()


# How long a start usually takes, measured with the embedded default model on a 2-core CPU (the browser test's
# engine: about 1 min when the machine is idle, 4 min on a first start under load).
START_ESTIMATE = "usually 1-4 min on a CPU, longer on the very first start"


def start_step(step: str, embedded: bool = True) -> tuple[int, int, str]:
    """(step number, steps in all, what it is) for the starter's latest progress line, in plain words."""
    low = step.lower()
    if not embedded and "llm engine" not in low:
        if "guideline" in low or "index" in low:
            return 2, 2, "opening the guideline library"
        return 1, 2, "connecting to the language model server"
    if "starting the llm engine" in low or "waiting for the llm engine" in low:
        if "weight" in low or "loading" in low or "safetensors" in low:
            return 2, 4, "loading the model's weights"
        if "kv cache" in low or "graph" in low or "compil" in low or "warm" in low or "memory" in low:
            return 3, 4, "warming up the engine"
        return 2, 4, "starting the engine"
    if "engine ready" in low or "guideline" in low or "index" in low or "embedd" in low:
        return 4, 4, "opening the guideline library"
    return 1, 4, "preparing the language model"


def relative_time(when: float, now: float | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', 'yesterday', '4 days ago', then the date."""
    ago = (time.time() if now is None else now) - when
    if ago < 60:
        return "just now"
    if ago < 3600:
        return f"{int(ago // 60)} min ago"
    if ago < 86400:
        return f"{int(ago // 3600)} h ago"
    if ago < 2 * 86400:
        return "yesterday"
    if ago < 14 * 86400:
        return f"{int(ago // 86400)} days ago"
    return time.strftime("%d %b %Y", time.localtime(when))


def duration(seconds: float) -> str:
    """'45 s', '2 min 05 s'."""
    whole = int(max(seconds, 0))
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def refused_text(refused: Sequence[RefusedUpload]) -> str:
    """The chat note for attachments that were not read (file names only)."""
    if not refused:
        return "⚠️ Nothing was attached."
    names = "; ".join(f"`{r.name}`: {r.reason}" for r in refused[:10])
    more = f"; … and {len(refused) - 10} more" if len(refused) > 10 else ""
    return (
        f"⚠️ {len(refused)} attachment(s) refused and not read ({names}{more}). Only files uploaded from this page "
        "are read: not folders, links or files elsewhere on the server."
    )
