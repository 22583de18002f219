"""A versioned folder with an atomic ``CURRENT`` pointer: readers see the old version or the new one, never half.

Layout of a folder (shared by the text indexes and the similar-case index; the names are on disk, keep them)::

    <folder>/CURRENT             one line: the name of the committed version folder
    <folder>/v<ns>-<hex8>/       a version: whatever the writer put in it
    <folder>/.tmp-v<ns>-<hex8>/  a version being written (a leftover when a writer was killed)
    <folder>/.CURRENT.v<ns>-...  the next pointer being written (likewise)

A commit writes the new version into a temporary folder, fsyncs its files and folders, renames it into place,
writes the new pointer beside ``CURRENT`` and replaces ``CURRENT`` with it (``os.replace``: the commit point),
fsyncing the parent after each rename so the switch survives a power cut. Older versions and leftovers are then
removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import RetrievalError

logger = logging.getLogger(__name__)

CURRENT = "CURRENT"  # a file naming the live version folder; replacing it is the atomic commit
TMP_PREFIX = ".tmp-"  # a version folder still being written
POINTER_PREFIX = f".{CURRENT}."  # the next CURRENT being written
# Entries a commit sweeps away besides the new version: older versions and leftovers of interrupted commits.
_SWEPT_PREFIXES = ("v", TMP_PREFIX, POINTER_PREFIX)


class VersionedFolderError(RetrievalError):
    """A versioned folder's ``CURRENT`` is damaged, or a new version cannot be committed."""


def new_version_name() -> str:
    """A fresh version folder name, ordered by time and unique across processes: ``v<ns>-<hex8>``."""
    return f"v{time.time_ns()}-{uuid.uuid4().hex[:8]}"


def fsync_file(path: Path) -> None:
    """Flush ``path``'s content to disk."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s entries (creations, renames) to disk; a no-op on Windows."""
    if sys.platform == "win32":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every regular file and folder under ``root``, ``root`` last (symlinks are not followed)."""
    for here, dirs, files in os.walk(root, topdown=False):
        base = Path(here)
        for name in files:
            if (base / name).is_file() and not (base / name).is_symlink():
                fsync_file(base / name)
        for name in dirs:
            if not (base / name).is_symlink():
                fsync_dir(base / name)
    fsync_dir(root)


@dataclass(frozen=True)
class VersionedFolder:
    """A folder of version folders and a ``CURRENT`` file naming the committed one.

    ``label`` says what the folder holds and ``repair`` how to fix a damaged one; both go into error messages
    ("the index at /x is damaged (...): rebuild it").
    """

    path: Path
    label: str = "index"
    repair: str = "rebuild it"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def exists(self) -> bool:
        """Whether a version was ever committed here (cheap: ``CURRENT`` is not read)."""
        return (self.path / CURRENT).is_file()

    def committed_version(self) -> Path | None:
        """The committed version folder; None when nothing was committed, an error when ``CURRENT`` is damaged."""
        pointer = self.path / CURRENT
        try:
            text = pointer.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except IsADirectoryError as exc:
            raise self._damaged(f"{CURRENT} is a folder, not a file") from exc
        except UnicodeDecodeError as exc:
            raise self._damaged(f"{CURRENT} is not text") from exc
        except OSError as exc:
            raise self._damaged(f"{CURRENT} cannot be read: {exc.strerror or exc}") from exc
        name = text.strip()
        if not name:
            raise self._damaged(f"{CURRENT} is empty")
        if not _is_version_name(name):
            raise self._damaged(f"{CURRENT} names {name[:80]!r}, which is not a version folder name")
        version = self.path / name
        if not version.is_dir():
            raise self._damaged(f"{CURRENT} names a missing folder, {name}")
        return version

    def commit(self, write: Callable[[Path], None]) -> Path:
        """Have ``write`` fill a new version folder, then make it the committed one atomically; returns it.

        ``write`` gets an empty, existing folder. Its own errors propagate unchanged and leave the committed
        version as it was; the commit's own file-system errors are :class:`VersionedFolderError`. Older versions
        and leftovers of interrupted commits are removed afterwards.
        """
        name = new_version_name()
        tmp = self.path / f"{TMP_PREFIX}{name}"
        version = self.path / name
        pointer = self.path / f"{POINTER_PREFIX}{name}"
        switched = False
        try:
            with self._translated("prepare a new version"):
                self.path.mkdir(parents=True, exist_ok=True)
                tmp.mkdir()
            write(tmp)
            with self._translated("commit the new version"):
                fsync_tree(tmp)
                os.replace(tmp, version)
                fsync_dir(self.path)  # the version folder is durable before any pointer names it
                pointer.write_text(name + "\n", encoding="utf-8")
                fsync_file(pointer)
                os.replace(pointer, self.path / CURRENT)  # the commit point
                switched = True
                fsync_dir(self.path)
        except BaseException:
            if not switched:  # the committed version stays what it was; drop what this commit left
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(version, ignore_errors=True)
                with suppress(OSError):  # never hide the error that stopped the commit
                    pointer.unlink(missing_ok=True)
            raise
        self._sweep(keep=name)
        return version

    def _sweep(self, keep: str) -> None:
        """Remove older versions and leftovers of interrupted commits (best effort: the commit already happened)."""
        try:
            entries = list(self.path.iterdir())
        except OSError as exc:
            logger.warning("could not list %s to remove old versions: %s", self.path, exc)
            return
        for entry in entries:
            if entry.name in (keep, CURRENT) or not entry.name.startswith(_SWEPT_PREFIXES):
                continue
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)
            except OSError as exc:
                logger.warning("could not remove the old version %s: %s", entry, exc)

    def _damaged(self, why: str) -> VersionedFolderError:
        return VersionedFolderError(f"the {self.label} at {self.path} is damaged ({why}): {self.repair}")

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """Turn an ``OSError`` of the commit itself into a :class:`VersionedFolderError` naming the folder."""
        try:
            yield
        except OSError as exc:
            raise VersionedFolderError(
                f"cannot {doing} of the {self.label} at {self.path}: {exc.strerror or exc}"
            ) from exc


def _is_version_name(name: str) -> bool:
    """A plain folder name inside the versioned folder: no path, no hidden or special entry."""
    return (
        "/" not in name
        and "\\" not in name
        and "\0" not in name
        and not name.startswith(".")
        and name != CURRENT
        and len(name) <= 255  # the usual file-name limit (NAME_MAX)
    )
