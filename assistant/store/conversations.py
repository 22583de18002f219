"""Chat sessions that survive a restart: each conversation's messages, last sources and open draft, in the database.

The conversation is written after every change (question asked, answer finished, edit, undo), each write one
committed transaction (on SQLite: WAL, ``synchronous=FULL``), so an app restart or a killed process loses at most
the answer that was streaming. The database is the one of the report drafts (``settings.database``: the local
SQLite file, created readable by its owner only, or a PostgreSQL shared by several app replicas, which then all
list and continue the same conversations). What is stored is what the radiologist typed and the assistant
answered; study files are never stored (they were de-identified in memory and are attached again after a restart).

Conversations belong to an owner (the authenticated user name, "" without authentication): one user never lists
or opens another's.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from assistant.errors import RadassistError
from assistant.store.db import DatabaseStore

logger = logging.getLogger(__name__)

TITLE_CHARS = 60
ROLES = ("user", "assistant")


class ChatStoreError(RadassistError):
    """The conversation database cannot be opened, read or written, or a conversation is not there."""


class ChatNotFound(ChatStoreError):
    """No conversation with that id for that owner (deleted, or someone else's)."""


@dataclass(frozen=True)
class ChatEntry:
    """One message: the radiologist's (``user``) or the assistant's; ``note`` titles the app's own notes
    (e.g. "Study loaded"), which are shown but are not part of the dialogue sent to the model."""

    role: str
    text: str
    note: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")


@dataclass(frozen=True)
class ChatInfo:
    """A line of the conversation list."""

    chat_id: str
    title: str
    created_at: float
    updated_at: float
    messages: int
    revision: int = 1  # goes up with every save: a tab saving over a newer version forks instead


@dataclass(frozen=True)
class SaveResult:
    """Where a save went: the conversation's id and new revision; ``forked`` when it became a new conversation
    (the one it continued had been changed since by another tab, or belongs to someone else)."""

    chat_id: str
    revision: int
    forked: bool = False


@dataclass(frozen=True)
class SavedChat:
    """A whole conversation as it was last saved."""

    info: ChatInfo
    entries: tuple[ChatEntry, ...]
    citations: tuple[dict[str, Any], ...] = ()
    mode: str | None = None
    report_id: str | None = None


def chat_title(entries: Sequence[ChatEntry]) -> str:
    """The first question, shortened; "Untitled" when the conversation has no question yet."""
    for entry in entries:
        if entry.role == "user" and entry.note is None and entry.text.strip():
            text = " ".join(entry.text.split())
            return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"
    return "Untitled"


class ChatSessionStore(DatabaseStore):
    """Conversations in the database (a SQLite file's ``Path`` or a database URL); safe to share between threads."""

    WHAT = "conversation database"
    ERROR = ChatStoreError

    def save(
        self,
        chat_id: str | None,
        entries: Sequence[ChatEntry],
        owner: str = "",
        citations: Sequence[dict[str, Any]] = (),
        mode: str | None = None,
        report_id: str | None = None,
        revision: int | None = None,
    ) -> SaveResult | None:
        """Write the conversation as it is now (all its messages, replacing what was saved before).

        ``chat_id`` None starts a new conversation (None is returned when there was nothing to save).
        ``revision``: the revision this version continues (from the last save or load). If the stored one has
        moved on since (another tab saved the same conversation), this version is saved as a new conversation
        rather than erase the other tab's turns; so is saving someone else's conversation id.
        """
        entries = list(entries)
        if chat_id is None and not entries:
            return None
        now = time.time()
        title = chat_title(entries)
        cites = json.dumps(list(citations), ensure_ascii=False, default=str)
        forked = False
        with self._writing() as conn:
            row = None
            if chat_id is not None:
                row = conn.execute(
                    text("SELECT owner, revision FROM chat_sessions WHERE chat_id = :chat_id" + self._for_update),
                    {"chat_id": chat_id},
                ).fetchone()
                if row is not None and (row[0] != owner or (revision is not None and row[1] != revision)):
                    chat_id, row, forked = None, None, True
            values = {"title": title, "now": now, "mode": mode, "report_id": report_id, "cites": cites}
            if chat_id is None or row is None:
                chat_id = chat_id or secrets.token_hex(8)
                new_revision = 1
                conn.execute(
                    text(
                        "INSERT INTO chat_sessions (chat_id, owner, title, created_at, updated_at, mode, report_id, "
                        "citations, revision) VALUES (:chat_id, :owner, :title, :now, :now, :mode, :report_id, "
                        ":cites, :revision)"
                    ),
                    {**values, "chat_id": chat_id, "owner": owner, "revision": new_revision},
                )
            else:
                new_revision = int(row[1]) + 1
                conn.execute(
                    text(
                        "UPDATE chat_sessions SET title = :title, updated_at = :now, mode = COALESCE(:mode, mode), "
                        "report_id = :report_id, citations = :cites, revision = :revision WHERE chat_id = :chat_id"
                    ),
                    {**values, "chat_id": chat_id, "revision": new_revision},
                )
                conn.execute(text("DELETE FROM chat_messages WHERE chat_id = :chat_id"), {"chat_id": chat_id})
            if entries:
                conn.execute(
                    text(
                        "INSERT INTO chat_messages (chat_id, position, role, text, note) "
                        "VALUES (:chat_id, :position, :role, :text, :note)"
                    ),
                    [
                        {"chat_id": chat_id, "position": i, "role": e.role, "text": e.text, "note": e.note}
                        for i, e in enumerate(entries)
                    ],
                )
        logger.debug("conversation %s saved: %d message(s), revision %d", chat_id, len(entries), new_revision)
        return SaveResult(chat_id, new_revision, forked)

    def list(self, owner: str = "", limit: int = 50) -> list[ChatInfo]:
        """The owner's conversations, most recently changed first."""
        with self._reading() as conn:
            rows = conn.execute(
                text(
                    "SELECT s.chat_id, s.title, s.created_at, s.updated_at, "
                    "(SELECT COUNT(*) FROM chat_messages m WHERE m.chat_id = s.chat_id), s.revision "
                    "FROM chat_sessions s WHERE s.owner = :owner "
                    "ORDER BY s.updated_at DESC, s.created_at DESC, s.chat_id LIMIT :limit"
                ),
                {"owner": owner, "limit": int(limit)},
            ).fetchall()
        return [ChatInfo(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def load(self, chat_id: str, owner: str = "") -> SavedChat:
        """One conversation of ``owner``; :class:`ChatStoreError` if there is none with that id for them."""
        with self._reading() as conn:
            row = conn.execute(
                text(
                    "SELECT title, created_at, updated_at, mode, report_id, citations, revision FROM chat_sessions "
                    "WHERE chat_id = :chat_id AND owner = :owner"
                ),
                {"chat_id": chat_id, "owner": owner},
            ).fetchone()
            messages = conn.execute(
                text("SELECT role, text, note FROM chat_messages WHERE chat_id = :chat_id ORDER BY position"),
                {"chat_id": chat_id},
            ).fetchall()
        if row is None:
            raise ChatNotFound("that conversation is not in the saved conversations (deleted?)")
        entries = tuple(ChatEntry(r[0], r[1], r[2]) for r in messages)
        try:
            citations = tuple(c for c in json.loads(row[5]) if isinstance(c, dict))
        except ValueError:
            citations = ()
        info = ChatInfo(chat_id, row[0], row[1], row[2], len(entries), int(row[6]))
        return SavedChat(info, entries, citations, row[3], row[4])

    def delete(self, chat_id: str, owner: str = "") -> bool:
        """Delete one of the owner's conversations (its messages with it); False if there was none."""
        with self._writing() as conn:
            params = {"chat_id": chat_id, "owner": owner}
            conn.execute(
                text(
                    "DELETE FROM chat_messages WHERE chat_id IN "
                    "(SELECT chat_id FROM chat_sessions WHERE chat_id = :chat_id AND owner = :owner)"
                ),
                params,
            )
            deleted = conn.execute(
                text("DELETE FROM chat_sessions WHERE chat_id = :chat_id AND owner = :owner"), params
            ).rowcount
        return deleted > 0
