"""The web app: study chat, viewer, modes (Q&A, guideline lookup, report draft) with their panels.

Screens and wiring only; the handlers are in :mod:`ui.workspace`, the logic behind them in ``assistant``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from assistant import NOT_FOR_CLINICAL_USE, ChatService, Runtime, RuntimeStarter
from ui import calculators
from ui.messages import error_text, history_to_turns
from ui.report_panel import AUTO_TEMPLATE, report_html, report_templates
from ui.session import browser_secret, close_session, gradio_cache_dir, sessions_root
from ui.viewer import WINDOWS, ViewerOutputs
from ui.workspace import MODES, STUDY_QA, OpenedChat, Workspace

logger = logging.getLogger(__name__)

__all__ = ["create_app", "history_to_turns", "launch", "respond"]

CSS = """
#ra-notice { background: #fff4e5; border-left: 4px solid #e67e22; padding: 4px 10px; }
#ra-banner { background: #fdecea; border-left: 4px solid #c0392b; padding: 4px 10px; }
.ra-unconfirmed { background: #fff3b0; border-bottom: 1px dashed #b8860b; }
.ra-confirmed { background: transparent; }
.ra-cite { color: #2b6cb0; font-size: 0.85em; }
.ra-muted { color: #777; font-size: 0.9em; }
"""


def respond(chat: ChatService, message: str, history: Sequence[dict[str, Any]]) -> Iterator[str]:
    """Stream the answer to ``message``; errors become a readable line in the chat, never a traceback."""
    text = ""
    try:
        for piece in chat.stream(message, history_to_turns(history)):
            text += piece
            yield text
    except Exception as exc:
        yield (text + "\n\n" if text else "") + error_text(exc)


def create_app(runtime: Runtime | RuntimeStarter, workspace: Workspace | None = None) -> gr.Blocks:
    """Build (not launch) the Gradio app around a runtime, running or still starting."""
    ws = workspace or Workspace(runtime)
    max_age = int(ws.max_age_s)
    with gr.Blocks(
        title="radassist",
        analytics_enabled=False,
        delete_cache=(max(60, min(max_age, 600)), max_age),  # Gradio's upload cache expires too
    ) as app:
        session = gr.State(None, time_to_live=max_age, delete_callback=close_session)
        # This browser's open conversation, reopened on the next visit (also after an app restart).
        last_chat = gr.BrowserState(None, storage_key="radassist-last-chat", secret=browser_secret(ws.data_dir))
        # Without log-in on a non-loopback address, conversations belong to the browser that had them (a random id).
        browser_id = gr.BrowserState(None, storage_key="radassist-browser", secret=browser_secret(ws.data_dir))

        def owner_of(request: gr.Request | None, browser: Any) -> str:
            return ws.owner(getattr(request, "username", None), browser)
        gr.Markdown("# radassist")
        gr.Markdown(f"**{NOT_FOR_CLINICAL_USE}**", elem_id="ra-notice")
        status_line = gr.Markdown(ws.status_line(), elem_id="status-line")
        status_timer = gr.Timer(1.0, active=ws.starting())  # the engine's start shows here until it is ready
        with gr.Row():
            # ---------------------------------------------------------------- left: chat
            with gr.Column(scale=3):
                mode = gr.Radio(list(MODES), value=STUDY_QA, label="Mode", elem_id="ra-mode")
                chatbot = gr.Chatbot(
                    label="Conversation", height=460, editable="user", elem_id="ra-chat",
                    feedback_options=None, buttons=["copy", "copy_all"],
                )  # fmt: skip
                box = gr.MultimodalTextbox(
                    placeholder="Ask about the study, a guideline, or dictate a finding (attach DICOM/zip/PNG/JPEG)",
                    file_count="multiple", show_label=False, elem_id="ra-input", stop_btn=False,
                    sources=["upload"],
                )  # fmt: skip
                with gr.Row():
                    new_chat = gr.Button("New chat", size="sm", elem_id="ra-new-chat")
                    export_chat = gr.Button("Export conversation (Markdown)", size="sm", elem_id="ra-export-chat")
                chat_file = gr.File(label="Conversation export", visible=False, elem_id="ra-chat-file")
                chat_status = gr.Markdown("", elem_id="ra-chat-status")
                with gr.Accordion("Saved conversations (kept across restarts)", open=False, elem_id="ra-chats-box"):
                    chats = gr.Dropdown([], label="Conversation", elem_id="ra-chats")
                    with gr.Row():
                        open_chat = gr.Button("Open", size="sm", elem_id="ra-open-chat")
                        delete_chat = gr.Button("Delete", size="sm", elem_id="ra-delete-chat")
            # ---------------------------------------------------------------- right: viewer + panels
            with gr.Column(scale=2):
                banner = gr.Markdown("", visible=False, elem_id="ra-banner")
                image = gr.Image(
                    label="Study", type="filepath", interactive=False, height=380, elem_id="ra-image",
                    buttons=["fullscreen"],
                )  # fmt: skip
                caption = gr.Markdown("No study loaded.", elem_id="ra-caption")
                series = gr.Dropdown(label="Series", choices=[], visible=False, elem_id="ra-series")
                slider = gr.Slider(1, 2, value=1, step=1, label="Image", visible=False, elem_id="ra-slice")
                window = gr.Radio(list(WINDOWS), value="default", label="Window", elem_id="ra-window")
                with gr.Row():
                    center = gr.Number(label="Centre (HU)", value=40, precision=1, elem_id="ra-center", min_width=80)
                    width = gr.Number(label="Width (HU)", value=400, precision=1, elem_id="ra-width", min_width=80)
                    apply_window = gr.Button("Apply custom window", size="sm", elem_id="ra-apply-window")
                with gr.Accordion("De-identified metadata", open=False):
                    metadata = gr.JSON(label="Study summary", elem_id="ra-metadata")
                similar = gr.Markdown("", visible=False, elem_id="ra-similar")

                with gr.Group(visible=True) as sources_panel:
                    sources = gr.Radio([], label="Sources (click to read the section)", visible=False,
                                       elem_id="ra-sources")  # fmt: skip
                    source_text = gr.Markdown("", elem_id="ra-source-text")
                with gr.Column(visible=False) as calc_panel:
                    gr.Markdown("### Guideline calculators\nExact categories computed in code (as `radassist calc`).")
                    with gr.Tabs():
                        for name in calculators.calculator_names():
                            with gr.Tab(name, elem_id=f"ra-calc-tab-{name}"):
                                gr.Markdown(calculators.title(name))
                                inputs = [_field(name, p) for p in calculators.fields(name)]
                                run = gr.Button(f"Compute {name}", variant="primary", elem_id=f"ra-calc-run-{name}")
                                result = gr.Markdown("", elem_id=f"ra-calc-result-{name}")
                                run.click(
                                    lambda *vals, _n=name: ws.calculate(_n, *vals), inputs, result,
                                    api_name=f"calc_{name}",
                                )  # fmt: skip
                with gr.Column(visible=False) as report_panel:
                    with gr.Row():
                        template = gr.Dropdown(report_templates(), value=AUTO_TEMPLATE, label="Template",
                                               elem_id="ra-template")  # fmt: skip
                        new_report = gr.Button("New draft", size="sm", elem_id="ra-new-report")
                        undo_report = gr.Button("Undo", size="sm", elem_id="ra-undo-report")
                    with gr.Row():
                        saved = gr.Dropdown([], label="Saved drafts (kept across restarts)", elem_id="ra-saved")
                        open_saved = gr.Button("Open", size="sm", elem_id="ra-open-saved")
                    report_view = gr.HTML(report_html(ws.store, None), elem_id="ra-report")
                    report_status = gr.Markdown("", elem_id="ra-report-status")
                    with gr.Row():
                        export_md = gr.Button("Export MD", size="sm", elem_id="ra-export-md")
                        export_json = gr.Button("Export JSON", size="sm", elem_id="ra-export-json")
                        export_sr = gr.Button("Export DICOM SR", size="sm", elem_id="ra-export-sr")
                    report_file = gr.File(label="Report export", visible=False, elem_id="ra-report-file")
                    with gr.Accordion("Version history", open=False):
                        versions = gr.Markdown("", elem_id="ra-versions")

        viewer = ViewerOutputs(
            image=image, series=series, slider=slider, caption=caption, banner=banner, metadata=metadata
        )
        viewer_outputs = list(viewer.as_outputs())
        answer_outputs = [chatbot, sources, report_view, versions]

        # ---------------------------------------------------------------- chat events
        def accept(
            message: Any, history: Any, state: Any, browser: Any, request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> Any:  # fmt: skip
            box_value, *rest = ws.accept(message, history, state, progress, owner=owner_of(request, browser))
            # While the answer streams, the submit arrow turns into a stop button (as in gr.ChatInterface).
            return gr.MultimodalTextbox(value=box_value, submit_btn=False, stop_btn=True), *rest

        def ready() -> Any:
            return gr.MultimodalTextbox(submit_btn=True, stop_btn=False)

        def answer(history: Any, state: Any, current_mode: str, progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008
            yield from ws.respond(history, state, current_mode, progress)

        submitted = box.submit(
            accept, [box, chatbot, session, browser_id], [box, chatbot, session, *viewer_outputs],
            api_visibility="private",
        )  # fmt: skip
        # Similar teaching cases are looked up beside the answer, not in its way.
        submitted.then(ws.similar_cases, session, similar, api_visibility="private", show_progress="hidden")
        answering = submitted.then(answer, [chatbot, session, mode], answer_outputs, api_visibility="private")
        answered = answering.then(ready, None, box, api_visibility="private")

        def remember(state: Any) -> tuple[Any, Any]:
            """After a turn: the browser remembers the conversation, the list shows it."""
            chat_id = getattr(state, "chat_id", None)
            return chat_id, ws.chat_list_update(state)

        answered.then(remember, session, [last_chat, chats], api_visibility="private")

        retried = chatbot.retry(ws.retry, chatbot, [chatbot, chatbot], api_visibility="private")
        retrying = retried.then(answer, [chatbot, session, mode], answer_outputs, api_visibility="private")
        chatbot.undo(ws.undo, [chatbot, session], [chatbot, box], api_visibility="private")

        def edit(history: Any, data: gr.EditData) -> Any:
            return ws.edit(history, data.index, data.value)

        edited = chatbot.edit(edit, chatbot, chatbot, api_visibility="private")
        editing = edited.then(answer, [chatbot, session, mode], answer_outputs, api_visibility="private")

        def stop(history: Any, state: Any, current_mode: str) -> Any:
            """Stop: the partial answer on screen is what gets saved."""
            if state is not None:
                ws.save_chat(history or [], ws.session(state), current_mode)
            return ready()

        box.stop(stop, [chatbot, session, mode], box, cancels=[answering, retrying, editing], api_visibility="private")

        new_chat.click(
            ws.new_chat, session, [chatbot, box, session, sources, source_text, chat_file, *viewer_outputs],
            cancels=[answering, retrying, editing], api_visibility="private",
        ).then(lambda: (None, gr.update(value="", visible=False)), None, [last_chat, similar],
               api_visibility="private")  # fmt: skip
        retrying.then(remember, session, [last_chat, chats], api_visibility="private")
        editing.then(remember, session, [last_chat, chats], api_visibility="private")

        def shown_file(path: str | None, status: str) -> tuple[Any, str]:
            return gr.File(value=path, visible=path is not None), status

        export_chat.click(
            lambda h, st: shown_file(*ws.export_chat(h, st)), [chatbot, session], [chat_file, chat_status],
            api_visibility="private",
        )  # fmt: skip
        sources.change(ws.show_source, [sources, session], source_text, api_visibility="private")

        # ---------------------------------------------------------------- saved conversations
        opened_outputs = list(
            OpenedChat(
                history=chatbot, session=session, sources=sources, source_text=source_text, status=chat_status,
                report=report_view, versions=versions, viewer=viewer,
            ).as_outputs()
        )  # fmt: skip

        def reopen(chat_id: Any, state: Any, browser: Any, request: gr.Request) -> Any:
            opened = ws.open_chat(chat_id, state, owner_of(request, browser))
            s = opened[1]
            reopened = s.chat_id == chat_id
            return (*opened, s.chat_id if reopened else gr.skip(), mode_of(s) if reopened else gr.skip())

        def mode_of(s: Any) -> Any:
            """The mode selector back on the reopened conversation's mode (its change event shows the panel)."""
            return s.reopened_mode if getattr(s, "reopened_mode", None) else gr.skip()

        open_chat.click(
            reopen, [chats, session, browser_id], [*opened_outputs, last_chat, mode],
            cancels=[answering, retrying, editing], api_visibility="private",
        ).then(lambda: gr.update(value="", visible=False), None, similar, api_visibility="private")  # fmt: skip
        def remove(chat_id: Any, state: Any, browser: Any, request: gr.Request) -> Any:
            return ws.delete_chat(chat_id, state, owner_of(request, browser))

        delete_chat.click(remove, [chats, session, browser_id], [chats, chat_status], api_visibility="private")

        def on_load(last: Any, state: Any, browser: Any, request: gr.Request) -> Any:
            """Page (re)load: status line, saved conversations, and the conversation this browser had open."""
            browser = browser or ws.new_browser_id()
            restored = ws.restore(last, state, owner_of(request, browser))
            s = restored[2]
            reopened = bool(last) and getattr(s, "chat_id", None) == last
            return (ws.status_line(), gr.Timer(active=ws.starting()), browser, *restored,
                    mode_of(s) if reopened else gr.skip())  # fmt: skip

        app.load(on_load, [last_chat, session, browser_id],
                 [status_line, status_timer, browser_id, chats, *opened_outputs, mode],
                 api_visibility="private")  # fmt: skip
        status_timer.tick(
            lambda: (ws.status_line(), gr.Timer(active=ws.starting())), None, [status_line, status_timer],
            api_visibility="private", show_progress="hidden",
        )  # fmt: skip

        # ---------------------------------------------------------------- viewer events
        slider.input(
            lambda st, se, sl, w, c, wd: ws.change_view(st, se, sl, w, c, wd),
            [session, series, slider, window, center, width], [image, caption], api_visibility="private",
            trigger_mode="always_last",  # dragging through a series renders the slice the user stops on
        )  # fmt: skip
        window.input(
            lambda st, se, sl, w, c, wd: ws.change_view(st, se, sl, w, c, wd),
            [session, series, slider, window, center, width], [image, caption], api_visibility="private",
        )  # fmt: skip

        def apply_custom(st: Any, se: Any, sl: Any, c: Any, wd: Any) -> Any:
            shown, text = ws.change_view(st, se, sl, "custom", c, wd)
            return shown, text, "custom"

        apply_window.click(
            apply_custom, [session, series, slider, center, width], [image, caption, window],
            api_visibility="private",
        )  # fmt: skip
        series.input(ws.change_series, [session, series, window], [image, caption, slider], api_visibility="private")

        # ---------------------------------------------------------------- modes and report
        mode.change(
            ws.switch_mode, [mode, session],
            [session, sources_panel, calc_panel, report_panel, report_view, versions, saved],
            api_visibility="private",
        )  # fmt: skip
        new_report.click(
            ws.new_report, [session, template], [session, report_view, versions, report_status],
            api_visibility="private",
        )  # fmt: skip
        open_saved.click(
            ws.open_report, [session, saved], [session, report_view, versions, report_status],
            api_visibility="private",
        )  # fmt: skip
        undo_report.click(
            lambda st: ws.report_action(st, "undo"), session, [report_view, versions, report_status],
            api_visibility="private",
        )  # fmt: skip
        for button, fmt in ((export_md, "md"), (export_json, "json"), (export_sr, "sr")):
            button.click(
                lambda st, _f=fmt: shown_file(*ws.export_report(st, _f)), session, [report_file, report_status],
                api_visibility="private",
            )  # fmt: skip

        # A plain question-in, answer-out endpoint for scripts, tests and the load benchmark.
        def chat(message: str) -> Iterator[str]:
            """Answer one question (no study, no history), streamed."""
            yield from ws.answer_api(message)

        gr.api(chat, api_name="chat")
        app.unload(lambda: logger.info("a browser session ended"))
    app.workspace = ws  # type: ignore[attr-defined]  # for tests and the benchmark
    return app


def _field(name: str, param: Any) -> gr.components.Component:
    """One form input for a calculator parameter, chosen by its type (as the CLI flag's type)."""
    label = param.name.replace("-", " ") + (" *" if param.required else "")
    info = param.help if param.help.strip().lower() != param.name.replace("-", " ") else None
    elem_id = f"ra-calc-{name}-{param.name}"
    if param.type is bool:
        return gr.Checkbox(label=label, info=info, elem_id=elem_id)
    if param.type is list:
        return gr.CheckboxGroup(list(param.choices or ()), label=label, info=info, elem_id=elem_id)
    if param.choices:
        return gr.Dropdown(list(param.choices), value=None, label=label, info=info, elem_id=elem_id)
    if param.type in (int, float):
        # A text box, not gr.Number: an empty Number reads as 0, and 0 is a real value (0 septa, 0 HU).
        hint = "whole number" if param.type is int else "number"
        return gr.Textbox(label=label, info=info, placeholder=f"{hint} (empty = not given)", elem_id=elem_id)
    return gr.Textbox(label=label, info=info, elem_id=elem_id)


def prepare_temp(runtime: Runtime | RuntimeStarter) -> None:
    """Point Gradio's upload cache into the data dir's temporary area and serve session files from there.

    Gradio reads GRADIO_TEMP_DIR from the environment when its components and server are built, so it has to be
    set before ``create_app``; this is the one place the UI writes the environment (it never reads it).
    """
    data_dir = runtime.settings.data_dir
    cache = gradio_cache_dir(data_dir)
    cache.mkdir(parents=True, exist_ok=True)
    sessions_root(data_dir).mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(cache.resolve())
    # Renderings and exports are served from the session folders directly, not copied into Gradio's cache,
    # so deleting a session folder deletes the only copy.
    gr.set_static_paths([str(sessions_root(data_dir).resolve())])


def launch(runtime: Runtime | RuntimeStarter) -> None:
    """Serve the app until Ctrl-C, on the configured host and port; never through a public share link.

    Given a :class:`RuntimeStarter`, the app is up at once and shows the engine's start in its status line.
    """
    settings = runtime.settings
    auth = None
    if settings.auth_user and settings.auth_password:
        auth = (settings.auth_user, settings.auth_password)
    prepare_temp(runtime)
    app = create_app(runtime)
    app.queue(default_concurrency_limit=8)
    try:
        app.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=False,
            auth=auth,
            show_error=False,
            inbrowser=False,
            css=CSS,
            footer_links=["api"],
        )
    finally:
        app.workspace.close()  # type: ignore[attr-defined]
