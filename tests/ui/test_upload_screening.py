"""A hand-made submit: only regular files the browser uploaded into Gradio's cache are read. A folder (another
browser's upload folder, a session's renderings, the cache itself), a link, or a path outside is refused with a
clear note, and nothing from it is read or deleted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.ui.synthetic import write_ct_series
from tests.ui.uploads import staged
from ui.session import gradio_cache_dir, screen_uploads, sessions_root
from ui.workspace import Workspace


@pytest.fixture()
def ws(make_runtime: Any) -> Workspace:
    return Workspace(make_runtime())


@pytest.fixture()
def slice_file(tmp_path: Path) -> Path:
    """A valid DICOM slice: were it read, a study would load."""
    (path,) = write_ct_series(tmp_path / "ct", slices=1, size=32)
    return path


def _targets(ws: Workspace, slice_file: Path, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Name -> (submitted path, the reason the note must give): every way around the cache's regular files."""
    cache = gradio_cache_dir(ws.data_dir)
    other_upload = staged(ws.data_dir, [slice_file])[0]  # another browser's upload, not yet sent
    other_session = sessions_root(ws.data_dir) / "0123456789abcdef01234567"  # another tab's renderings
    other_session.mkdir(parents=True)
    rendering = other_session / "view-0123456789ab.dcm"
    rendering.write_bytes(slice_file.read_bytes())
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "IM0001.dcm").write_bytes(slice_file.read_bytes())
    links = cache / "links"
    links.mkdir(parents=True)
    (links / "to-outside.dcm").symlink_to(outside / "IM0001.dcm")
    (links / "to-inside.dcm").symlink_to(other_upload)
    (cache / "dir-link").symlink_to(outside, target_is_directory=True)
    fifo = cache / "fifo" / "pipe.dcm"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    return {
        "another browser's upload folder": (str(other_upload.parent), "a folder"),
        "the upload cache itself": (str(cache), "a folder"),
        "another tab's renderings folder": (str(other_session), "outside the upload area"),
        "a rendering in another tab's folder": (str(rendering), "outside the upload area"),
        "the sessions root": (str(sessions_root(ws.data_dir)), "outside the upload area"),
        "a folder elsewhere": (str(outside), "outside the upload area"),
        "a file elsewhere": (str(outside / "IM0001.dcm"), "outside the upload area"),
        "climbing out of the cache": (f"{cache}/x/../../sessions/{other_session.name}", "outside the upload area"),
        "a link to a file elsewhere": (str(links / "to-outside.dcm"), "a link"),
        "a link to an upload": (str(links / "to-inside.dcm"), "a link"),
        "a file through a linked folder": (str(cache / "dir-link" / "IM0001.dcm"), "a link"),
        "a pipe": (str(fifo), "not a regular file"),
    }  # a missing file gets its own note: tests/ui/test_shared_uploads.py


def test_a_hand_made_submit_of_anything_but_an_uploaded_file_is_refused_and_nothing_is_read(
    ws: Workspace, slice_file: Path, tmp_path: Path
) -> None:
    targets = _targets(ws, slice_file, tmp_path)
    everything = {p for p in tmp_path.rglob("*")} | set(gradio_cache_dir(ws.data_dir).rglob("*"))
    for name, (path, reason) in targets.items():
        for item in (path, {"path": path, "orig_name": "x.dcm", "meta": {"_type": "gradio.FileData"}}):
            _, history, s, image, *_ = ws.accept({"text": "", "files": [item]}, [], None)
            note = history[0]["content"]
            assert note.startswith("⚠️ 1 attachment(s) refused and not read") and reason in note, name
            assert s.study is None and image is None and "Loaded" not in note, name
    # Nothing refused was deleted either (the uploads of others stay for their owner).
    assert {p for p in tmp_path.rglob("*")} | set(gradio_cache_dir(ws.data_dir).rglob("*")) >= everything


def test_the_upload_handler_itself_refuses_a_folder(ws: Workspace, slice_file: Path) -> None:
    folder = staged(ws.data_dir, [slice_file])[0].parent
    s = ws.session(None)
    note = ws.ingest([str(folder)], s)
    assert "refused and not read" in note["content"] and "a folder" in note["content"] and s.study is None
    assert (folder / slice_file.name).exists()


def test_uploaded_files_beside_a_refused_folder_are_still_read(ws: Workspace, slice_file: Path) -> None:
    mine = staged(ws.data_dir, [slice_file])[0]
    other = staged(ws.data_dir, [slice_file])[0]
    _, history, s, image, *_ = ws.accept({"text": "", "files": [str(mine), str(other.parent)]}, [], None)
    note = history[0]["content"]
    assert "1 attachment(s) refused" in note and "a folder" in note and "Loaded 1 image(s)" in note
    assert s.study is not None and image is not None
    assert not mine.exists() and other.exists()  # the accepted upload was consumed, the other browser's kept


def test_screening_looks_only_at_paths(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "a").mkdir(parents=True)
    (cache / "a" / "f.dcm").write_bytes(b"x")
    accepted, refused = screen_uploads([str(cache / "a" / "f.dcm"), str(cache / "a")], cache)
    assert accepted == [os.path.realpath(cache / "a" / "f.dcm")]
    assert [(r.name, r.reason) for r in refused] == [("a", "a folder")]
