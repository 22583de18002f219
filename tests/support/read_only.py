"""A folder made read-only for a test, and a record of its tree to prove nothing was written into it.

``chmod a-w`` alone proves nothing when the tests run as root (root writes anyway), so a test also compares the
tree's state before and after: every entry's name, size and modification time, folders included (a file created,
renamed or removed inside a folder changes the folder's mtime).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TreeState = dict[str, tuple[int, int, int]]  # relative path → (mode, size, mtime_ns)

_WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def tree_state(root: Path) -> TreeState:
    """Every entry under ``root`` (and ``root`` itself): mode, size and mtime in nanoseconds."""
    state: TreeState = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        state[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return state


def _chmod_tree(root: Path, writable: bool) -> None:
    for here, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(here) / name
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~_WRITE)
    mode = root.stat().st_mode
    root.chmod(mode | stat.S_IWUSR if writable else mode & ~_WRITE)


@contextmanager
def read_only_tree(root: Path) -> Iterator[TreeState]:
    """``chmod -R a-w root`` for the block (write permission given back to the owner after it, so the test's
    temporary folder can be removed); yields the tree's state as it was made read-only."""
    _chmod_tree(root, writable=False)
    try:
        yield tree_state(root)
    finally:
        _chmod_tree(root, writable=True)


def writable_copy(source: Path, target: Path) -> Path:
    """A copy of the tree at ``source`` (read-only or not) that its owner may change."""
    shutil.copytree(source, target)
    _chmod_tree(target, writable=True)
    return target
