"""The web app: a streaming chat with history, a status line and the not-for-clinical-use notice."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from assistant import NOT_FOR_CLINICAL_USE, ChatService, RadassistError, Runtime, Turn

logger = logging.getLogger(__name__)


def history_to_turns(history: Sequence[dict[str, Any]]) -> list[Turn]:
    """Gradio's message list → (question, answer) turns; unfinished or non-text turns are dropped."""
    turns: list[Turn] = []
    pending: str | None = None
    for message in history:
        content = message.get("content")
        if isinstance(content, list):  # Gradio 6 may send content parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            continue
        if message.get("role") == "user":
            pending = content
        elif message.get("role") == "assistant" and pending is not None:
            turns.append(Turn(pending, content))
            pending = None
    return turns


def respond(chat: ChatService, message: str, history: Sequence[dict[str, Any]]) -> Iterator[str]:
    """Stream the answer to ``message``; errors become a readable line in the chat, never a traceback."""
    text = ""
    try:
        for piece in chat.stream(message, history_to_turns(history)):
            text += piece
            yield text
    except RadassistError as exc:
        yield (text + "\n\n" if text else "") + f"⚠️ {exc}"
    except Exception:
        logger.exception("unexpected error while answering")
        yield (text + "\n\n" if text else "") + "⚠️ Unexpected internal error; details are in the server log."


def status_line(runtime: Runtime) -> str:
    where = "embedded vLLM engine" if runtime.engine else f"vLLM server at {runtime.llm_url}"
    return f"Model: **{runtime.model_id}** ({where}) · image content: not analysed by the model (text-only)"


def create_app(runtime: Runtime) -> gr.Blocks:
    """Build (not launch) the Gradio app around a running runtime."""

    def chat_fn(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
        yield from respond(runtime.chat, message, history)

    with gr.Blocks(title="radassist", analytics_enabled=False) as app:
        gr.Markdown(f"# radassist\n**{NOT_FOR_CLINICAL_USE}**")
        gr.Markdown(status_line(runtime), elem_id="status-line")
        gr.ChatInterface(
            fn=chat_fn,
            api_name="chat",
            editable=True,
            save_history=False,  # history stays server-side; nothing in the browser's local storage
            flagging_mode="never",  # flagging would write conversations to disk
            delete_cache=(3600, 3600),  # Gradio's upload cache is emptied hourly, not kept forever
            fill_height=True,
        )
    return app


def launch(runtime: Runtime) -> None:
    """Serve the app until Ctrl-C, on the configured host and port; never through a public share link."""
    settings = runtime.settings
    auth = None
    if settings.auth_user and settings.auth_password:
        auth = (settings.auth_user, settings.auth_password)
    app = create_app(runtime)
    app.queue(default_concurrency_limit=8)
    app.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        auth=auth,
        show_error=False,
        inbrowser=False,
    )
