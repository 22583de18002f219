"""Per-browser-session state and its temporary files (renderings, exports), deleted on close or after an age."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant import Study, ensure_private_dir

logger = logging.getLogger(__name__)


BROWSER_SECRET_FILE = "ui_browser_secret"


def browser_secret(data_dir: Path, configured: str | None = None) -> str:
    """The key that encrypts what the app keeps in the browser (which conversation was open).

    ``configured`` (``settings.browser_secret``, shared by app replicas) when set; else kept in the data dir
    (created once, owner-only), so a value stored before a restart can be read after it; Gradio's default is a new
    random key per launch.
    """
    if configured:
        return configured
    path = Path(data_dir) / BROWSER_SECRET_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)  # first writer wins; a concurrent start reads the same key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


def temp_root(data_dir: Path) -> Path:
    """The data dir's temporary area: ``<data_dir>/tmp``; everything the UI writes lives below it."""
    return Path(data_dir) / "tmp"


def sessions_root(data_dir: Path) -> Path:
    return temp_root(data_dir) / "sessions"


def gradio_cache_dir(data_dir: Path) -> Path:
    """Where Gradio keeps uploads (GRADIO_TEMP_DIR points here)."""
    return temp_root(data_dir) / "gradio"


@dataclass
class Session:
    """What one browser tab has open: the study, the view, the report draft, the last citations."""

    folder: Path
    study: Study | None = None
    files: list[tuple[str, bool, str | None]] = field(default_factory=list)  # (name, ok, error) for display
    series_index: int = 0
    slice_index: int = 0
    window: str = "default"
    # Frames pinned to be sent with each question instead of the one on screen: (series, frame, window), 0-based
    # indices and the window as ``window`` above; "the whole series" (sampled) instead of either when set.
    pins: list[tuple[int, int, str]] = field(default_factory=list)
    whole_series: bool = False
    pending_delete: str | None = None  # the saved conversation a Delete asked to confirm
    report_id: str | None = None
    report_version: int | None = None  # the draft's version as this tab last showed it (edits elsewhere are told)
    citations: list[dict[str, Any]] = field(default_factory=list)
    chat_id: str | None = None  # the saved conversation this tab continues
    chat_rev: int | None = None  # its revision as this tab last saved or opened it
    chat_generation: int = 0  # goes up when the tab switches conversation (new chat, open): late saves are dropped
    # Conversation switches ("New chat" and "Open" clicks) of this tab handled here. The browser counts them at the
    # click and every message carries its count, so the server knows which conversation a message was sent to, in
    # whichever order it handles the two (Workspace.accept).
    switches: int = 0
    moved_at: int = 0  # the switch that last changed the conversation (an Open that found nothing changed nothing)
    # A message sent back into the box unsent (it was sent to a conversation the tab has left, or before the one
    # opened was on screen): the switch it met and why, for the status line until the next message is taken.
    unsent: tuple[int, str] | None = None
    # The last message's answer step has nothing to do: the message went back into the box, or the tab left its
    # conversation before the answer began (the answer would otherwise land in the conversation switched to).
    skip_answer: bool = False
    # "Stop" clicks of this tab applied here (the browser counts them at the click, and an answer's step carries the
    # count when it starts): an answer asked for before the latest Stop ends at its next piece (Workspace.respond).
    stops: int = 0
    blank: bool = False  # a new chat nothing was sent to yet: the next message starts it, whatever the screen showed
    accepted: list[dict[str, Any]] | None = None  # the conversation as the last message left it, for its answer
    similar_key: int | None = None  # the study the similar-cases panel was computed for
    reopened_mode: str | None = None  # the mode a reopened conversation was in (the selector goes back to it)
    # Whose conversations and report drafts the tab sees: "user:<name>", "" (the local user: loopback, no log-in) or
    # "browser:<id>". Workspace.session gives a new session a safe one; the stores check it on every read and write.
    owner: str = ""
    created: float = field(default_factory=time.time)

    @classmethod
    def create(cls, data_dir: Path) -> Session:
        """A session with its own folder under the temporary area (random name: no link to a person)."""
        folder = ensure_private_dir(sessions_root(data_dir) / secrets.token_hex(12))
        return cls(folder=folder)

    def file(self, suffix: str, stem: str = "") -> Path:
        """A fresh path in this session's folder (random name, so browser caches never show a stale file)."""
        ensure_private_dir(self.folder)
        return self.folder / f"{stem}{secrets.token_hex(6)}{suffix}"

    def clear_study(self) -> None:
        self.study = None
        self.files = []
        self.series_index = self.slice_index = 0
        self.window = "default"
        self.pins = []
        self.whole_series = False
        for path in self.folder.glob("view-*"):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Forget everything and delete the session's files."""
        self.study = None
        self.citations = []
        shutil.rmtree(self.folder, ignore_errors=True)


def close_session(session: Session | None) -> None:
    """gr.State's delete callback: the tab was closed (or the state expired)."""
    if isinstance(session, Session):
        session.close()
        logger.info("session closed; its temporary files were deleted")


def sweep(root: Path, max_age_s: float, now: float | None = None) -> int:
    """Delete files under ``root`` older than ``max_age_s`` (and folders left empty); returns files deleted."""
    if not root.is_dir():
        return 0
    limit = (now if now is not None else time.time()) - max_age_s
    deleted = 0
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_file() or path.is_symlink():
                if path.lstat().st_mtime < limit:
                    path.unlink()
                    deleted += 1
            elif path.is_dir() and not any(path.iterdir()) and path.stat().st_mtime < limit:
                path.rmdir()
        except OSError:  # another session's sweep got there first
            continue
    if deleted:
        logger.info("temporary area: %d expired file(s) deleted", deleted)
    return deleted


@dataclass(frozen=True)
class RefusedUpload:
    """An attachment that was not read: its file name (never the full path) and why."""

    name: str
    reason: str


def screen_uploads(paths: list[str], cache: Path) -> tuple[list[str], list[RefusedUpload]]:
    """Split a submit's attachments into regular files strictly inside Gradio's upload cache (returned resolved)
    and refused ones: folders, links, anything outside the cache or the cache itself. Only metadata is looked at
    (``lstat``); nothing is opened.

    Gradio checks a submitted path only loosely: a path under a static folder (the sessions' renderings) skips its
    check and the upload folder itself passes it, and ingest reads whole folders. So a hand-made submit could make
    the app read another browser's renderings and unsent uploads; only what the browser uploaded is accepted here.
    """
    real_cache = Path(os.path.realpath(cache))
    bases = (Path(os.path.abspath(cache)), real_cache)
    accepted: list[str] = []
    refused: list[RefusedUpload] = []
    for name in paths:
        raw = Path(os.path.abspath(name))  # normalised: "a/../b" cannot climb out unseen
        reason = _upload_refusal(raw, bases, real_cache)
        if reason is None:
            accepted.append(os.path.realpath(raw))
        else:
            refused.append(RefusedUpload(raw.name or str(raw), reason))
    if refused:
        reasons = "; ".join(f"{n} {why}" for why, n in Counter(r.reason for r in refused).items())
        logger.warning("upload: %d attachment(s) refused (%s)", len(refused), reasons)
    return accepted, refused


NOT_FOUND = "not found"  # the refusal of a path in the upload area that holds no file (any more)


def upload_key(name: str, cache: Path) -> str | None:
    """Where a submitted path lies in the upload area, spelt as :func:`screen_uploads` returns it when it accepts
    it (the real cache, then the parts below it, nothing below resolved); None outside the area or for the area
    itself. Only metadata of the cache folder is looked at: the path may be gone already."""
    raw = Path(os.path.abspath(name))
    rel = _cache_relative(raw, (Path(os.path.abspath(cache)), Path(os.path.realpath(cache))))
    if rel is None or not rel.parts:
        return None
    return str(Path(os.path.realpath(cache)) / rel)


def _cache_relative(raw: Path, bases: tuple[Path, ...]) -> Path | None:
    """``raw`` relative to the first of ``bases`` it is below (or equal to), or None."""
    for base in bases:
        try:
            return raw.relative_to(base)
        except ValueError:
            continue
    return None


def _upload_refusal(raw: Path, bases: tuple[Path, ...], real_cache: Path) -> str | None:
    """Why ``raw`` is not an uploaded file, or None when it is one."""
    rel = _cache_relative(raw, bases)
    if rel is None:
        return "not an uploaded file (outside the upload area)"
    if not rel.parts:
        return "a folder"  # the upload area itself
    current = real_cache
    mode = 0
    for part in rel.parts:  # every step below the cache: a link anywhere could point out of it
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return NOT_FOUND
        if stat.S_ISLNK(mode):
            return "a link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def remove_uploads(paths: list[str], cache: Path) -> None:
    """Delete uploaded files from Gradio's cache once ingested: the study lives on in memory, de-identified."""
    cache = cache.resolve()
    for name in paths:
        path = Path(name).resolve()
        if cache in path.parents:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # Gradio keeps each upload in its own hashed folder
            except OSError:
                pass
