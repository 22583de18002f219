"""Files put where a browser's upload puts them, so the workspace's upload handler accepts them."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ui.session import gradio_cache_dir


def staged(data_dir: Path, paths: Sequence[Path | str]) -> list[Path]:
    """Copies of ``paths`` in Gradio's upload cache of ``data_dir``, each in its own folder as Gradio keeps them
    (a path already in the cache is kept as it is)."""
    cache = Path(os.path.realpath(gradio_cache_dir(data_dir)))
    out = []
    for path in map(Path, paths):
        if cache in Path(os.path.realpath(path)).parents:
            out.append(path)
            continue
        folder = cache / secrets.token_hex(8)
        folder.mkdir(parents=True)
        out.append(Path(shutil.copyfile(path, folder / path.name)))  # a fresh mtime, as an upload has
    return out


def submitted(data_dir: Path, paths: Sequence[Path | str], text: str = "") -> dict[str, Any]:
    """The message box's value after the browser uploaded ``paths`` (staged into the cache) with ``text``."""
    return {"text": text, "files": [str(p) for p in staged(data_dir, paths)]}
