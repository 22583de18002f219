"""The local SQLite database file (``settings.db_path``): audit rows, report drafts and saved conversations."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def owner_only(path: Path) -> None:
    """Make the local database readable and writable by its owner only (it holds dictations and conversations).

    Every store that opens ``settings.db_path`` calls this, whichever creates the file first. SQLite gives its
    -wal and -shm files the database file's permissions.
    """
    try:
        if path.exists() and path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError as exc:  # someone else's file: still usable, but say so
        logger.warning("cannot restrict the permissions of %s: %s", path, exc.strerror)
