"""The web app: study chat, viewer, modes (Q&A, guideline lookup, report draft) with their panels.

Screens and wiring only; the handlers are in :mod:`ui.workspace`, the logic behind them in ``assistant``. Who is
asking is decided here, once (:func:`login_mode`, :func:`request_user`); docs/security.md says how.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant import (
    NOT_FOR_CLINICAL_USE,
    ChatService,
    ConfigurationError,
    Runtime,
    RuntimeStarter,
    Settings,
    UserError,
    UserStore,
    check_user_name,
    ensure_private_dir,
)
from ui import calculators, priors_panel
from ui.messages import error_text, history_to_turns
from ui.pacs_panel import PacsPanel
from ui.report_panel import AUTO_TEMPLATE, report_html, report_templates
from ui.session import Session, browser_secret, close_session, gradio_cache_dir, sessions_root, temp_root
from ui.viewer import WINDOWS, ViewerOutputs, pins_markdown, whole_series_update
from ui.workspace import LOOPBACK, MODES, STUDY_QA, OpenedChat, Workspace

logger = logging.getLogger(__name__)

__all__ = ["create_app", "history_to_turns", "launch", "login_mode", "request_user", "respond"]

# How people get in (login_mode): an SSO proxy's header, accounts (Gradio's log-in form), or nobody logs in: the
# single-user mode on loopback, and NO_LOGIN beyond it, which launch() refuses.
PROXY, ACCOUNTS, SINGLE_USER, NO_LOGIN = "proxy", "accounts", "single-user", "none"
SINGLE_USER_NOTICE = (
    "**Single-user mode**: no log-in. The app answers on this computer only ({host}), and everyone using this "
    "computer shares its conversations and drafts. Accounts: `radassist users add NAME` (docs/security.md)."
)

# The page is laid out to the screen: a compact header, then three columns (chat, viewer, the mode's panel) that
# each take the height left under the header (--ra-top, measured by LAYOUT_JS) and scroll inside themselves, so
# none of them runs below the screen at 1920x1080 or on a 1440x900 laptop (checked in the browser test).
CHAT_HEIGHT = "max(220px, calc(100vh - var(--ra-top, 160px) - 380px))"
IMAGE_HEIGHT = "max(220px, calc(100vh - var(--ra-top, 160px) - 480px))"
LAYOUT_JS = """
() => {
    const fit = () => {
        const main = document.getElementById('ra-main');
        if (!main) return;
        const top = Math.round(main.getBoundingClientRect().top + window.scrollY);
        document.documentElement.style.setProperty('--ra-top', top + 'px');
    };
    fit();
    window.addEventListener('resize', fit);
    new ResizeObserver(fit).observe(document.body);
}
"""

CSS = """
:root { --ra-top: 160px; }
.gradio-container { max-width: 100% !important; padding-top: 6px !important; padding-bottom: 0 !important; }
#ra-header { align-items: center; gap: 10px; }
#ra-access { font-size: 0.85em; }
#status-line { font-size: 0.9em; }
.ra-col { max-height: calc(100vh - var(--ra-top) - 10px); overflow-y: auto; flex-wrap: nowrap !important; }
.ra-col > * { flex-shrink: 0; }
#ra-header > * { min-width: 0 !important; }
#ra-notice, #ra-access { font-size: 0.85em; }
#ra-window label, #ra-mode label { padding: 2px 8px !important; }
#ra-chat .message img, #ra-chat img { max-height: 96px; width: auto; }
#ra-notice { background: #fff4e5; border-left: 4px solid #e67e22; padding: 4px 10px; }
#ra-banner { background: #fdecea; border-left: 4px solid #c0392b; padding: 4px 10px; }
.ra-unconfirmed { background: #fff3b0; border-bottom: 1px dashed #b8860b; }
.ra-confirmed { background: transparent; }
.ra-cite { color: #2b6cb0; font-size: 0.85em; }
.ra-muted { color: #777; font-size: 0.9em; }
"""


# Run in the browser at the click, before any reply from the server (Gradio calls them with the values of the
# listener's inputs and shows what they return in its outputs). "Open" and "Stop": one more click counted. "New chat":
# one more conversation switch, and the one the next message goes to (a new chat is empty whatever the screen shows;
# an opened conversation is the message's once its reply has shown it).
COUNT_JS = "(count) => (Number(count) || 0) + 1"
NEW_CHAT_JS = "(switches) => { const n = (Number(switches) || 0) + 1; return [n, n]; }"


def click_count(clicks: Any) -> int | None:
    """The browser's click count as sent (a number box's value), None when it sent none."""
    try:
        return None if clicks is None else int(clicks)
    except (TypeError, ValueError):
        return None


def respond(chat: ChatService, message: str, history: Sequence[dict[str, Any]]) -> Iterator[str]:
    """Stream the answer to ``message``; errors become a readable line in the chat, never a traceback."""
    text = ""
    try:
        for piece in chat.stream(message, history_to_turns(history)):
            text += piece
            yield text
    except Exception as exc:
        yield (text + "\n\n" if text else "") + error_text(exc)


# ------------------------------------------------------------------------------------------ who is asking


def login_mode(settings: Settings, users: UserStore | None = None) -> str:
    """How people get in: ``PROXY`` when an SSO proxy header is configured, ``ACCOUNTS`` when anyone has an account
    (``users``; without it, only the settings' RADASSIST_AUTH_USER counts), else ``SINGLE_USER`` on loopback and
    ``NO_LOGIN`` on any other address."""
    if settings.auth_proxy_header:
        return PROXY
    if users.has_accounts() if users is not None else bool(settings.auth_user and settings.auth_password):
        return ACCOUNTS
    return SINGLE_USER if settings.host in LOOPBACK else NO_LOGIN


def check_listen(settings: Settings, mode: str) -> None:
    """Refuse to serve beyond loopback when nobody has to log in (``--allow-remote`` alone is not enough)."""
    if mode == NO_LOGIN:
        raise ConfigurationError(
            f"refusing to listen on {settings.host} without log-in: add an account (radassist users add NAME, or "
            "RADASSIST_AUTH_USER and RADASSIST_AUTH_PASSWORD), or log users in through an SSO proxy "
            "(RADASSIST_AUTH_PROXY_HEADER and RADASSIST_AUTH_TRUSTED_PROXIES); see docs/security.md"
        )


def request_user(request: Any, settings: Settings) -> str | None:
    """Who is asking, at the transport boundary (a Starlette request or a ``gr.Request``): with an SSO proxy
    configured, the name in its header on a connection from a trusted proxy address, and nobody otherwise; without
    one, the name Gradio's log-in checked (None without log-in)."""
    if settings.auth_proxy_header:
        return _proxy_user(request, settings.auth_proxy_header, settings.trusted_proxy_networks)
    name = getattr(request, "username", None)
    return str(name) if name else None


def _proxy_user(
    request: Any, header: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str | None:
    headers = getattr(request, "headers", None) or {}
    values = [str(v) for k, v in headers.items() if str(k).lower() == header.lower()]
    if not values:
        return None
    host = getattr(getattr(request, "client", None), "host", None)
    if not _is_trusted_proxy(host, trusted):
        # The header is the proxy's word only; from anyone else it is a forgery (or a misconfigured proxy list).
        logger.warning("%s ignored: the connection is not from a trusted proxy address", header)
        return None
    if len(values) > 1:
        logger.warning("%s ignored: the request carries it %d times", header, len(values))
        return None
    try:
        return check_user_name(values[0].strip().lower())  # names are lower case, as the accounts' are
    except UserError:
        logger.warning("%s ignored: not a valid user name", header)
        return None


def _is_trusted_proxy(host: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") is not part of it
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(address in network for network in networks)


def _password_check(users: UserStore) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio's log-in callback: argon2 verification off the event loop (it is slow on purpose)."""

    async def check(name: str, password: str) -> bool:
        try:
            ok = await asyncio.to_thread(users.verify, name, password)
        except UserError as exc:
            logger.error("log-in impossible: %s", exc)
            return False
        if not ok:
            logger.info("a log-in was refused")
        return ok

    return check


class LogOutRemovedUsers:
    """ASGI middleware: a browser whose account was removed (``radassist users remove``) while the app runs is
    logged out at its next request. Gradio keeps its log-in tokens in memory (``App.tokens``, cookie
    ``access-token[-unsecure]-<cookie_id>``) until a restart and never asks again."""

    def __init__(self, app: ASGIApp, users: UserStore) -> None:
        self.app = app
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gradio_app = scope.get("app")
        tokens = getattr(gradio_app, "tokens", None)
        if scope["type"] in ("http", "websocket") and tokens:
            cookies = HTTPConnection(scope).cookies
            cookie_id = getattr(gradio_app, "cookie_id", "")
            for key in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
                name = tokens.get(cookies.get(key, ""))
                if name and not await asyncio.to_thread(self.users.exists, name):
                    for token in [t for t, user in tokens.items() if user == name]:
                        tokens.pop(token, None)
                    logger.info("a removed user's browser session was logged out")
        await self.app(scope, receive, send)


class SessionFilesNotServed:
    """ASGI middleware: nothing in the session folders (renderings, exports) is served at ``/file=<path>``.

    Gradio copies a file an event returns into its own cache (a hashed folder, expired by ``delete_cache`` and the
    workspace's sweep) and sends the browser that copy; ``allowed_paths`` lets it copy from the session folders
    wherever the data dir is, but would also serve them, and ``set_static_paths`` would serve them without copying
    (and skip the check on submitted paths). The browser never learns a session path; this refuses one anyway.
    """

    def __init__(self, app: ASGIApp, root: str) -> None:
        self.app = app
        self.roots = {Path(os.path.abspath(root)), Path(root).resolve()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        at = path.find("/file=")  # Gradio's one route serving local files: {API_PREFIX}/file={path_or_url:path}
        if at >= 0 and self._inside(path[at + len("/file=") :]):
            await PlainTextResponse("File not allowed.", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _inside(self, target: str) -> bool:
        lexical = Path(os.path.abspath(target))  # as Gradio reads it: "a/../b" normalised, links kept
        try:
            real = lexical.resolve()
        except (OSError, RuntimeError):
            real = lexical
        return any(p == root or root in p.parents for p in (lexical, real) for root in self.roots)


def prepare_launch(settings: Settings, users: UserStore, mode: str) -> dict[str, Any]:
    """The arguments of ``Blocks.launch`` that decide who gets in and what is served, and the Gradio features that
    stay off.

    Also makes the server see each connection's own address: uvicorn would otherwise take ``X-Forwarded-For`` from
    a loopback peer as the client's address (its FORWARDED_ALLOW_IPS default), so anyone on this machine could pose
    as the trusted proxy. The proxy's own headers are read by :func:`request_user`, from trusted addresses only.
    """
    os.environ["FORWARDED_ALLOW_IPS"] = ""  # read by uvicorn when launch() starts it; the UI never reads it
    sessions = str(sessions_root(settings.data_dir).resolve())
    middleware = [Middleware(SessionFilesNotServed, root=sessions)]  # type: ignore[arg-type]
    options: dict[str, Any] = {
        "share": False,  # never a public *.gradio.live link
        "run_history": False,  # Gradio would keep every call's inputs and outputs in the browser
        "enable_monitoring": False,
        "footer_links": ["api"],
        "show_error": False,
        "allowed_paths": [sessions],  # copied into Gradio's cache from there, never served (SessionFilesNotServed)
    }
    if mode == PROXY:
        options["auth_dependency"] = lambda request: request_user(request, settings)
        if users.has_accounts():
            logger.warning("accounts are not used while auth_proxy_header is set: the SSO proxy logs users in")
    elif mode == ACCOUNTS:
        options["auth"] = _password_check(users)
        options["auth_message"] = "radassist: log in with your account."
        middleware.append(Middleware(LogOutRemovedUsers, users=users))  # type: ignore[arg-type]
    options["app_kwargs"] = {"middleware": middleware}
    return options


# ------------------------------------------------------------------------------------------ the app


def create_app(
    runtime: Runtime | RuntimeStarter, workspace: Workspace | None = None, *, login: str | None = None
) -> gr.Blocks:
    """Build (not launch) the Gradio app around a runtime, running or still starting.

    ``login``: how people get in (:func:`login_mode`; by default from the settings alone), shown on the page.
    """
    ws = workspace or Workspace(runtime)
    settings = runtime.settings
    login = login or login_mode(settings)
    ws.single_user = login == SINGLE_USER
    max_age = int(ws.max_age_s)
    with gr.Blocks(
        title="radassist",
        analytics_enabled=False,
        fill_width=True,  # the three columns use the whole screen
        delete_cache=(max(60, min(max_age, 600)), max_age),  # Gradio's upload cache expires too
    ) as app:
        session = gr.State(None, time_to_live=max_age, delete_callback=close_session)
        # This browser's open conversation, reopened on the next visit (also after an app restart).
        secret = browser_secret(ws.data_dir, ws.settings.browser_secret)  # shared by replicas when set
        last_chat = gr.BrowserState(None, storage_key="radassist-last-chat", secret=secret)
        # Without log-in on a non-loopback address, conversations belong to the browser that had them (a random id).
        browser_id = gr.BrowserState(None, storage_key="radassist-browser", secret=secret)

        def owner_of(request: gr.Request | None, browser: Any) -> str:
            return ws.owner(request_user(request, settings), browser)

        # A compact header: the page is three columns that each fit the screen (chat, viewer, the mode's panel).
        single = login == SINGLE_USER
        with gr.Row(equal_height=True, elem_id="ra-header"):
            gr.Markdown(f"**radassist** · **{NOT_FOR_CLINICAL_USE}**", elem_id="ra-notice")
            # Who is using the app: the single-user mode says so; with log-in, the name it was given.
            access = gr.Markdown(
                SINGLE_USER_NOTICE.format(host=settings.host) if single else "", elem_id="ra-access"
            )  # fmt: skip
            # Gradio's own /logout: forgets this user's log-in tokens, then shows the log-in form.
            gr.Button("Log out", link="/logout", size="sm", scale=0, visible=login == ACCOUNTS, elem_id="ra-logout")
        status_line = gr.Markdown(ws.status_line(), elem_id="status-line")
        status_timer = gr.Timer(1.0, active=ws.starting())  # the engine's start shows here until it is ready
        with gr.Row(elem_id="ra-main"):
            # ---------------------------------------------------------------- left: chat
            with gr.Column(scale=4, elem_id="ra-chat-col", elem_classes=["ra-col"]):
                mode = gr.Radio(list(MODES), value=STUDY_QA, label="Mode", elem_id="ra-mode")
                chatbot = gr.Chatbot(
                    label="Conversation", height=CHAT_HEIGHT, editable="user", elem_id="ra-chat",
                    feedback_options=None, buttons=["copy", "copy_all"],
                )  # fmt: skip
                box = gr.MultimodalTextbox(
                    placeholder="Ask about the study, a guideline, or dictate a finding (attach DICOM/zip/PNG/JPEG)",
                    file_count="multiple", show_label=False, elem_id="ra-input", stop_btn=False,
                    sources=["upload"],
                )  # fmt: skip
                with gr.Row():
                    new_chat = gr.Button("New chat", size="sm", elem_id="ra-new-chat")
                    # The tab's conversation switches ("New chat", "Open"), counted in the browser at the click, and
                    # the switch whose conversation a message goes to; every message carries both, so the server
                    # knows which conversation it was sent to (Workspace.accept). The tab's "Stop" clicks, likewise
                    # counted, go with every answer (Workspace.respond).
                    switches = gr.Number(0, precision=0, visible=False, elem_id="ra-switches")
                    shown = gr.Number(0, precision=0, visible=False, elem_id="ra-shown")
                    stops = gr.Number(0, precision=0, visible=False, elem_id="ra-stops")
                    export_chat = gr.Button("Export conversation (Markdown)", size="sm", elem_id="ra-export-chat")
                chat_file = gr.File(label="Conversation export", visible=False, elem_id="ra-chat-file")
                chat_status = gr.Markdown("", elem_id="ra-chat-status")
                with gr.Accordion("Saved conversations (kept across restarts)", open=False, elem_id="ra-chats-box"):
                    chats = gr.Dropdown([], label="Conversation", elem_id="ra-chats")
                    with gr.Row():
                        open_chat = gr.Button("Open", size="sm", elem_id="ra-open-chat")
                        delete_chat = gr.Button("Delete", size="sm", elem_id="ra-delete-chat")
                    # Delete asks first, naming the conversation it would delete.
                    with gr.Group(visible=False, elem_id="ra-confirm-delete") as confirm_box:
                        confirm_text = gr.Markdown("", elem_id="ra-confirm-text")
                        with gr.Row():
                            confirm_yes = gr.Button(
                                "Yes, delete it", size="sm", variant="stop", elem_id="ra-delete-yes"
                            )  # fmt: skip
                            confirm_no = gr.Button("Cancel", size="sm", elem_id="ra-delete-no")
            # ---------------------------------------------------------------- middle: viewer
            with gr.Column(scale=4, elem_id="ra-viewer-col", elem_classes=["ra-col"]):
                banner = gr.Markdown("", visible=False, elem_id="ra-banner")
                image = gr.Image(
                    label="Study", type="filepath", interactive=False, height=IMAGE_HEIGHT, elem_id="ra-image",
                    buttons=["fullscreen"],
                )  # fmt: skip
                caption = gr.Markdown("No study loaded.", elem_id="ra-caption")
                series = gr.Dropdown(label="Series", choices=[], visible=False, elem_id="ra-series")
                slider = gr.Slider(1, 2, value=1, step=1, label="Image", visible=False, elem_id="ra-slice")
                with gr.Row():  # its own row: Gradio would otherwise squeeze it beside the slider
                    window = gr.Radio(list(WINDOWS), value="default", label="Window", elem_id="ra-window")
                with gr.Row():
                    center = gr.Number(label="Centre (HU)", value=40, precision=1, elem_id="ra-center", min_width=80)
                    width = gr.Number(label="Width (HU)", value=400, precision=1, elem_id="ra-width", min_width=80)
                    apply_window = gr.Button("Apply custom window", size="sm", elem_id="ra-apply-window", min_width=60)
                # Key images: frames pinned here are sent together with each question, instead of this one.
                with gr.Row():
                    pin = gr.Button("Add this slice", size="sm", elem_id="ra-pin", min_width=60)
                    unpin = gr.Button("Remove this slice", size="sm", elem_id="ra-unpin", min_width=60)
                    clear_pins = gr.Button("Clear pinned", size="sm", elem_id="ra-clear-pins", min_width=60)
                pins = gr.Markdown("", elem_id="ra-pins")
                whole = gr.Checkbox(False, label="Send the whole series", visible=False, elem_id="ra-whole-series")
                with gr.Accordion("De-identified metadata", open=False):
                    metadata = gr.JSON(label="Study summary", elem_id="ra-metadata")
                pacs = PacsPanel(ws)  # "Open from PACS" (only with a configured PACS; docs/pacs.md)
                pacs.layout()
            # ---------------------------------------------------------------- right: the mode's panel
            with gr.Column(scale=3, elem_id="ra-panel-col", elem_classes=["ra-col"]):
                similar = gr.Markdown("", visible=False, elem_id="ra-similar")
                prior_reports = gr.Markdown("", visible=False, elem_id="ra-priors")  # ui/priors_panel.py

                with gr.Group(visible=True, elem_id="ra-sources-panel") as sources_panel:
                    sources = gr.Radio([], label="Sources (click to read the section)", visible=False,
                                       elem_id="ra-sources")  # fmt: skip
                    source_text = gr.Markdown("", elem_id="ra-source-text")
                with gr.Column(visible=False, elem_id="ra-calc-panel") as calc_panel:
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
                with gr.Column(visible=False, elem_id="ra-report-panel") as report_panel:
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
                # Administrators only (shown to them on load; checked again on the server for every import).
                priors_import = priors_panel.PriorsImport(ws)
                with gr.Accordion(
                    "Import prior reports (administrators)", open=False, visible=False, elem_id="ra-priors-import"
                ) as import_box:
                    import_file = gr.File(
                        label="Prior reports (.csv, .json, .jsonl): patient ID, date, text; de-identified on import",
                        file_types=priors_panel.IMPORT_TYPES, type="filepath", elem_id="ra-priors-file",
                    )  # fmt: skip
                    import_run = gr.Button("Import", size="sm", elem_id="ra-priors-import-run")
                    import_status = gr.Markdown("", elem_id="ra-priors-import-status")

        viewer = ViewerOutputs(
            image=image, series=series, slider=slider, caption=caption, banner=banner, metadata=metadata, pins=pins,
            whole=whole,
        )
        viewer_outputs = list(viewer.as_outputs())
        pacs.wire(session, browser_id, viewer_outputs, owner_of)
        answer_outputs = [chatbot, sources, report_view, versions]

        # ---------------------------------------------------------------- chat events
        def accept(
            message: Any, history: Any, state: Any, browser: Any, switched: Any, on_screen: Any,
            request: gr.Request, progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> Any:  # fmt: skip
            before = state.unsent if isinstance(state, Session) else None
            box_value, *rest = ws.accept(
                message, history, state, progress, owner=owner_of(request, browser),
                switches=click_count(switched), shown=click_count(on_screen),
            )  # fmt: skip
            s = rest[1]
            if s.unsent is not None:  # sent back into the box: the status line says why, and it can be sent again
                return gr.MultimodalTextbox(value=box_value, submit_btn=True, stop_btn=False), *rest, s.unsent[1]
            # While the answer streams, the submit arrow turns into a stop button (as in gr.ChatInterface).
            status = "" if before is not None else gr.skip()  # a message taken: the line about an unsent one goes
            return gr.MultimodalTextbox(value=box_value, submit_btn=False, stop_btn=True), *rest, status

        def ready() -> Any:
            return gr.MultimodalTextbox(submit_btn=True, stop_btn=False)

        def answer(
            history: Any, state: Any, current_mode: str, stopped: Any,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> Any:  # fmt: skip
            yield from ws.respond(history, state, current_mode, progress, stops=click_count(stopped))

        def answer_sent(
            history: Any, state: Any, current_mode: str, stopped: Any,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> Any:  # fmt: skip
            yield from ws.respond(history, state, current_mode, progress, sent=True, stops=click_count(stopped))

        submitted = box.submit(
            accept, [box, chatbot, session, browser_id, switches, shown],
            [box, chatbot, session, *viewer_outputs, chat_status], api_visibility="private",
        )  # fmt: skip
        # The custom window boxes show the new study's own window.
        submitted.then(ws.window_boxes, session, [center, width], api_visibility="private", show_progress="hidden")
        # Similar teaching cases are looked up beside the answer, not in its way.
        submitted.then(ws.similar_cases, session, similar, api_visibility="private", show_progress="hidden")
        submitted.then(priors_panel.handler(ws), session, prior_reports, api_visibility="private",
                       show_progress="hidden")  # fmt: skip
        # The answer to a message sent while an earlier answer is still running (as one ends after "New chat") starts
        # when that one has ended; Gradio's default ("once") would drop it, and the message would never be answered.
        answering = submitted.then(
            answer_sent, [chatbot, session, mode, stops], answer_outputs, api_visibility="private",
            trigger_mode="always_last",
        )  # fmt: skip
        answered = answering.then(ready, None, box, api_visibility="private")

        def remember(state: Any) -> tuple[Any, Any]:
            """After a turn: the browser remembers the conversation, the list shows it."""
            chat_id = getattr(state, "chat_id", None)
            return chat_id, ws.chat_list_update(state)

        answered.then(remember, session, [last_chat, chats], api_visibility="private")

        retried = chatbot.retry(ws.retry, chatbot, [chatbot, chatbot], api_visibility="private")
        retrying = retried.then(answer, [chatbot, session, mode, stops], answer_outputs, api_visibility="private")
        chatbot.undo(ws.undo, [chatbot, session], [chatbot, box], api_visibility="private")

        def edit(history: Any, data: gr.EditData) -> Any:
            return ws.edit(history, data.index, data.value)

        edited = chatbot.edit(edit, chatbot, chatbot, api_visibility="private")
        editing = edited.then(answer, [chatbot, session, mode, stops], answer_outputs, api_visibility="private")

        def stop(history: Any, state: Any, current_mode: str, stopped: Any, switched: Any, on_screen: Any) -> Any:
            """Stop: the answer ends at its next piece; the partial answer on screen is what gets saved."""
            ws.stop(history, state, current_mode, click_count(stopped), click_count(switched), click_count(on_screen))
            return ready()

        # "Stop": counted in the browser at the click (COUNT_JS); the answer running ends itself (Workspace.respond).
        # No `cancels=`: Gradio's page applied them late, stopping the answer to a message sent right after "Stop",
        # and a cancelled answer counted as running until then, so that answer was not started at all.
        box.stop(None, stops, stops, js=COUNT_JS, api_visibility="private").then(
            stop, [chatbot, session, mode, stops, switches, shown], box, api_visibility="private",
            trigger_mode="multiple",
        )  # fmt: skip

        # "New chat": the browser counts the switch at once (NEW_CHAT_JS), then the server starts over. A message sent
        # before that reply goes to the new chat all the same (Workspace.accept); an answer still streaming into the
        # conversation left ends at its next piece (Workspace.respond). No `cancels=` here: Gradio's page applied them
        # only after this handler's reply and so stopped the answer to a message sent meanwhile; and a cancelled
        # answer still counts as running while its cancel is under way, so the next answer was not started at all.
        def start_over(state: Any, switched: Any) -> Any:
            return ws.new_chat(state, click_count(switched))

        def started_over(state: Any) -> Any:
            """After "New chat": the browser remembers no conversation, unless a message sent meanwhile started one;
            the status line says whether a message went back into the box."""
            chat_id = getattr(state, "chat_id", None)
            similar_update = gr.update(value="", visible=False) if chat_id is None else gr.skip()
            return chat_id, similar_update, ws.chat_notice(state), gr.update(visible=False)

        new_chat.click(None, switches, [switches, shown], js=NEW_CHAT_JS, api_visibility="private").then(
            start_over, [session, switches],
            [chatbot, box, session, sources, source_text, chat_file, *viewer_outputs], api_visibility="private",
            trigger_mode="multiple",  # a second click while the first is handled is handled too (each once)
        ).then(
            started_over, session, [last_chat, similar, chat_status, confirm_box], api_visibility="private"
        )  # fmt: skip
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

        def reopen(chat_id: Any, state: Any, browser: Any, switched: Any, request: gr.Request) -> Any:
            """Open, counted in the browser at the click (COUNT_JS). Its reply tells the browser that the conversation
            of this switch is on screen (``shown``): a message sent before that is not put into it (Workspace.accept);
            a later switch handled first stands."""
            count = click_count(switched)
            try:
                opened = ws.open_chat(chat_id, state, owner_of(request, browser), count)
            except Exception as exc:  # the tab stays where it was; its messages must not wait for this reply
                s = ws.session(state)
                opened = OpenedChat.skipped(s, error_text(exc)).as_outputs()
            s = opened[1]
            reopened = s.chat_id == chat_id
            on_screen = count if count is not None and count == s.switches else gr.skip()
            return (*opened, s.chat_id if reopened else gr.skip(), mode_of(s) if reopened else gr.skip(), on_screen)

        def mode_of(s: Any) -> Any:
            """The mode selector back on the reopened conversation's mode (its change event shows the panel)."""
            return s.reopened_mode if getattr(s, "reopened_mode", None) else gr.skip()

        # "Open": no `cancels=` either (as "New chat" above): an answer streaming into the conversation left ends at
        # its next piece.
        open_chat.click(None, switches, switches, js=COUNT_JS, api_visibility="private").then(
            reopen, [chats, session, browser_id, switches], [*opened_outputs, last_chat, mode, shown],
            api_visibility="private", trigger_mode="multiple",
        ).then(lambda: gr.update(value="", visible=False), None, similar, api_visibility="private")  # fmt: skip
        def ask_remove(chat_id: Any, state: Any, browser: Any, request: gr.Request) -> Any:
            return ws.ask_delete(chat_id, state, owner_of(request, browser))

        def remove_confirmed(state: Any, browser: Any, request: gr.Request) -> Any:
            return ws.confirm_delete(state, owner_of(request, browser))

        # Delete asks first (naming the conversation); only "Yes, delete it" deletes, and only that one.
        delete_chat.click(
            ask_remove, [chats, session, browser_id], [confirm_box, confirm_text, chat_status],
            api_visibility="private",
        )  # fmt: skip
        confirm_yes.click(
            remove_confirmed, [session, browser_id], [chats, confirm_box, chat_status], api_visibility="private"
        )  # fmt: skip
        confirm_no.click(ws.cancel_delete, session, [confirm_box, chat_status], api_visibility="private")

        def on_load(last: Any, state: Any, browser: Any, request: gr.Request) -> Any:
            """Page (re)load: status line, saved conversations, and the conversation this browser had open."""
            browser = browser or ws.new_browser_id()
            restored = ws.restore(last, state, owner_of(request, browser))
            s = restored[2]
            reopened = bool(last) and getattr(s, "chat_id", None) == last
            return (ws.status_line(), ws.status_timer(), browser, *restored,
                    mode_of(s) if reopened else gr.skip())  # fmt: skip

        app.load(on_load, [last_chat, session, browser_id],
                 [status_line, status_timer, browser_id, chats, *opened_outputs, mode],
                 api_visibility="private")  # fmt: skip
        def may_import(browser: Any, request: gr.Request) -> Any:
            return gr.update(visible=priors_import.allowed(owner_of(request, browser)))

        def import_priors_file(upload: Any, state: Any, browser: Any, request: gr.Request) -> Any:
            line, panel = priors_import.run(upload, owner_of(request, browser), state)
            return None, line, panel

        app.load(may_import, browser_id, import_box, api_visibility="private", show_progress="hidden")
        import_run.click(
            import_priors_file, [import_file, session, browser_id], [import_file, import_status, prior_reports],
            api_visibility="private",
        )  # fmt: skip
        if not single:

            def signed_in(request: gr.Request) -> str:
                name = (request_user(request, settings) or "").replace("`", "'")
                return f"Signed in as `{name}`" if name else ""

            app.load(signed_in, None, access, api_visibility="private", show_progress="hidden")
        status_timer.tick(
            lambda: (ws.status_line(), ws.status_timer()), None, [status_line, status_timer],
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
        series.input(
            ws.change_series, [session, series, window], [image, caption, slider], api_visibility="private"
        ).then(
            lambda st: (whole_series_update(ws.session(st), ws.series_frames), pins_markdown(ws.session(st))),
            session, [whole, pins], api_visibility="private", show_progress="hidden",
        )  # fmt: skip
        # The custom boxes follow the window in use: a preset's centre and width, the file's own, or the custom one.
        for changed in (slider.input, window.input, series.input):
            changed(ws.window_boxes, session, [center, width], api_visibility="private", show_progress="hidden")
        # Key images: pin the frame on screen (with its window), remove it, clear; or send the whole series.
        pin.click(ws.pin_frame, session, pins, api_visibility="private")
        unpin.click(ws.unpin_frame, session, pins, api_visibility="private")
        clear_pins.click(ws.clear_pins, session, pins, api_visibility="private")
        whole.input(ws.choose_whole_series, [session, whole], pins, api_visibility="private")

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
    """Point Gradio's upload cache into the data dir's temporary area (where the session folders are too).

    Gradio reads GRADIO_TEMP_DIR from the environment when its components and server are built, so it has to be
    set before ``create_app``; this and :func:`prepare_launch` are the places the UI writes the environment (it
    never reads it). The session folders are not served: see :class:`SessionFilesNotServed`.
    """
    data_dir = runtime.settings.data_dir
    cache = gradio_cache_dir(data_dir)
    for folder in (data_dir, temp_root(data_dir), cache, sessions_root(data_dir)):
        ensure_private_dir(folder)  # owner-only whatever the umask: renderings and uploads hold images
    os.environ["GRADIO_TEMP_DIR"] = str(cache.resolve())


def launch(runtime: Runtime | RuntimeStarter) -> None:
    """Serve the app until Ctrl-C, on the configured host and port; never through a public share link.

    Beyond loopback someone has to log in (an account or an SSO proxy), else the start is refused. Given a
    :class:`RuntimeStarter`, the app is up at once and shows the engine's start in its status line.
    """
    settings = runtime.settings
    users = UserStore.from_settings(settings)
    try:
        mode = login_mode(settings, users)
        check_listen(settings, mode)
        options = prepare_launch(settings, users, mode)
        logger.info("log-in: %s", mode)
        prepare_temp(runtime)
        app = create_app(runtime, login=mode)
        app.queue(default_concurrency_limit=8)
        try:
            app.launch(
                server_name=settings.host, server_port=settings.port, inbrowser=False, css=CSS, js=LAYOUT_JS,
                # Refused with 413 while it streams: no single upload may exceed the per-upload byte budget.
                max_file_size=settings.ingest_max_upload_bytes, **options,
            )  # fmt: skip
        finally:
            app.workspace.close()  # type: ignore[attr-defined]
    finally:
        users.close()
