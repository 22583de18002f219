"""Chat messages as Gradio holds them: their text, the app's notes, turns, saved entries and readable errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from assistant import Answer, ChatEntry, RadassistError, SavedChat, Turn
from ui.session import Session

logger = logging.getLogger(__name__)

Message = dict[str, Any]
History = list[Message]
Progress = Callable[..., Any]

GENERIC_ERROR = "⚠️ Unexpected internal error; details are in the server log."
NOTE_TITLE = "Study loaded"
FAILED_TITLE = "Upload not loaded"  # a note's title when nothing of the upload could be shown


def error_text(exc: BaseException) -> str:
    """What the user reads for ``exc``: its own safe message, or a generic line (the traceback goes to the log)."""
    if isinstance(exc, RadassistError):
        return f"⚠️ {exc}"
    logger.error("unexpected error in a UI handler", exc_info=exc)
    return GENERIC_ERROR


def message_text(content: Any) -> str | None:
    """The text of a chat message's content (a string, or Gradio 6's list of parts); None for files only."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # the text parts; files (the thumbnails of the images sent) are not text
        texts = [
            p if isinstance(p, str) else p.get("text", "")
            for p in content
            if isinstance(p, str) or (isinstance(p, dict) and p.get("type") == "text")
        ]
        return " ".join(texts) if texts else None
    return None


def is_note(message: Message) -> bool:
    """Messages the app adds (ingest summaries) carry a metadata title; they are not part of the dialogue."""
    metadata = message.get("metadata") or {}
    return bool(isinstance(metadata, dict) and metadata.get("title"))


def note(text: str, title: str = NOTE_TITLE) -> Message:
    """A message the app adds to the chat (an ingest summary), titled so it is kept out of the dialogue."""
    return {"role": "assistant", "content": text, "metadata": {"title": title}}


def history_to_turns(history: Sequence[Message]) -> list[Turn]:
    """Gradio's message list → (question, answer) turns; notes, unfinished and non-text turns are dropped."""
    turns: list[Turn] = []
    pending: str | None = None
    for message in history:
        if is_note(message):
            continue
        content = message_text(message.get("content"))
        if content is None:
            continue
        if message.get("role") == "user":
            pending = content
        elif message.get("role") == "assistant" and pending is not None:
            turns.append(Turn(pending, content))
            pending = None
    return turns


def upload_paths(files: Sequence[Any]) -> list[str]:
    """Paths of a multimodal textbox's files (strings, or dicts with a "path")."""
    out = []
    for item in files or ():
        path = item.get("path") if isinstance(item, dict) else getattr(item, "path", item)
        if path:
            out.append(str(path))
    return out


def citation_label(number: int, cite: dict[str, Any]) -> str:
    """The label of a numbered citation, as the sources list and the conversation export show it."""
    return f"[{number}] {cite.get('title', 'source')} — {cite.get('section', '')}"


def history_entries(history: Sequence[Message]) -> list[ChatEntry]:
    """The chat's messages as the conversation store keeps them (text only; notes keep their title)."""
    entries = []
    for message in history:
        text = message_text(message.get("content"))
        role = message.get("role")
        if text is None or role not in ("user", "assistant"):
            continue
        if role == "assistant" and not is_note(message) and (not text.strip() or text.startswith("⏳")):
            continue  # a progress line or an answer that never came: not part of the dialogue
        title = (message.get("metadata") or {}).get("title") if is_note(message) else None
        entries.append(ChatEntry(str(role), text, str(title) if title else None))
    return entries


def entries_history(saved: SavedChat) -> History:
    """A saved conversation back as the chat's messages."""
    history: History = []
    for entry in saved.entries:
        message: Message = {"role": entry.role, "content": entry.text}
        if entry.note:
            message["metadata"] = {"title": entry.note}
        history.append(message)
    return history


def summary_json(s: Session) -> str:
    """The de-identified study summary as JSON text (for exports and tests)."""
    return json.dumps(s.study.summary() if s.study else {}, indent=1)


def answer_markdown(answer: Answer) -> str:
    """An answer with its numbered sources underneath (as the CLI prints them)."""
    lines = [answer.text]
    if answer.citations:
        lines += ["", "Sources:"]
        lines += [f"[{n}] {c.get('title')} ({c.get('section')})" for n, c in enumerate(answer.citations, 1)]
    return "\n".join(lines)
