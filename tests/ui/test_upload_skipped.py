"""An uploaded zip's members that are not opened (macOS metadata, hidden files) are said in the upload note."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from tests.assistant.imaging.ingest_fixtures import wheel_file
from tests.ui.uploads import submitted
from ui.messages import message_text
from ui.workspace import Workspace


def test_skipped_zip_members_are_reported_in_the_upload_note(make_runtime: Any, tmp_path: Path) -> None:
    ws = Workspace(make_runtime([]))
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(wheel_file("CT_small.dcm"), "series/IM1.dcm")
        zf.writestr("__MACOSX/series/._IM1.dcm", b"resource fork")
        zf.writestr("series/.DS_Store", b"x")
    s = ws.restore(None, None, "")[2]
    _, history, s, *_ = ws.accept(submitted(ws.data_dir, [archive]), [], s)
    note = "\n".join(message_text(m.get("content")) or "" for m in history)
    assert "Loaded 1 image(s)" in note
    assert "2 file(s) in the zip were skipped" in note and "macOS archive metadata" in note
