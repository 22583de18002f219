"""Tabs that attach identical bytes under the same name hold one path in Gradio's upload cache (the folder is a
keyed hash of the bytes), and the first submit's ingest deletes it. The other tabs' submits get that ingest's study
(each with its own view), or a note naming the file and what happened to it; never a generic error. The registry
behind it expires and is bounded."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import ui.workspace
from assistant import AuditLog, IngestResult, load_study
from assistant.imaging.records import Source
from tests.ui.synthetic import write_ct_series
from tests.ui.uploads import staged, submitted
from ui.session import gradio_cache_dir
from ui.shared_uploads import IngestedUploads, removed_text
from ui.viewer import series_labels
from ui.workspace import Workspace

ALICE, BOB = "user:alice", "user:bob"
GENERIC = "Unexpected internal error"


@pytest.fixture()
def ws(make_runtime: Any) -> Workspace:
    return Workspace(make_runtime())


@pytest.fixture()
def ct(tmp_path: Path) -> list[Path]:
    return write_ct_series(tmp_path / "ct", slices=3, size=32)


def note_of(history: list[dict[str, Any]]) -> str:
    return str(history[0]["content"])


def test_two_owners_submit_the_same_upload_and_both_get_the_study(ws: Workspace, ct: list[Path]) -> None:
    message = submitted(ws.data_dir, ct, "What is shown?")  # one browser's upload: its paths name the bytes
    uploads = [Path(p) for p in message["files"]]
    _, history, alice, image, *_ = ws.accept(message, [], None, owner=ALICE)
    assert "Loaded 3 image(s)" in note_of(history) and alice.study is not None and image is not None
    assert not any(p.exists() for p in uploads)  # deleted from the cache by the first ingest, as before

    # Another user's tab attached the identical files (the same paths) before Alice's submit deleted them.
    _, history, bob, image, *_ = ws.accept(dict(message), [], None, owner=BOB)
    assert "Loaded 3 image(s)" in note_of(history) and GENERIC not in note_of(history)
    assert bob.study is alice.study and bob.owner == BOB and image is not None
    assert bob.files == alice.files and bob.folder != alice.folder
    assert not any(p.exists() for p in uploads) and not list(gradio_cache_dir(ws.data_dir).rglob("*.dcm"))
    assert history[-1] == {"role": "user", "content": "What is shown?"}  # the question goes on as usual


def test_a_shared_study_is_independent_per_session(ws: Workspace, ct: list[Path]) -> None:
    message = submitted(ws.data_dir, ct)
    alice = ws.accept(message, [], None, owner=ALICE)[2]
    bob = ws.accept(message, [], None, owner=BOB)[2]
    assert alice.study is bob.study is not None
    # Nothing of a tab's view is on the study: it is frozen and its pixels read-only.
    assert all(not im.values.flags.writeable and not im.rendering.flags.writeable for im in alice.study.images)
    with pytest.raises(AttributeError):
        alice.study.series = ()  # type: ignore[misc]

    path, caption = ws.change_view(alice, series_labels(alice)[0], 3, "lung")
    ws.pin_frame(alice)
    assert (alice.slice_index, alice.window, alice.pins) == (2, "lung", [(0, 2, "lung")])
    assert path is not None and Path(path).parent == alice.folder and "3/3" in caption
    assert (bob.slice_index, bob.window, bob.pins) == (0, "default", [])

    path, _ = ws.change_view(bob, series_labels(bob)[0], 2, "bone")
    assert path is not None and Path(path).parent == bob.folder
    assert (alice.slice_index, alice.window) == (2, "lung") and (bob.slice_index, bob.window) == (1, "bone")
    ws.new_chat(alice)  # Alice starts over: Bob's study stays
    assert alice.study is None and bob.study is not None and bob.study.summary()["image_count"] == 3


def test_concurrent_submits_of_one_upload_read_it_once(
    ws: Workspace, ct: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []

    def slow_load(paths: list[str], settings: Any) -> IngestResult:
        reads.append(len(paths))
        time.sleep(0.3)  # the other tab's submit arrives while this one reads
        return load_study(paths, settings)

    monkeypatch.setattr(ui.workspace, "load_study", slow_load)
    message = submitted(ws.data_dir, ct)
    notes: dict[str, str] = {}
    studies: dict[str, Any] = {}

    def submit(owner: str) -> None:
        _, history, s, *_ = ws.accept(dict(message), [], None, owner=owner)
        notes[owner], studies[owner] = note_of(history), s.study

    threads = [threading.Thread(target=submit, args=(owner,)) for owner in (ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert reads == [3]  # read once; the second submit waited for it and got its study
    assert all("Loaded 3 image(s)" in n for n in notes.values()) and studies[ALICE] is studies[BOB] is not None
    assert not ws.ingested._claims  # no lock left behind


def test_a_reused_upload_writes_no_second_audit_row(make_runtime: Any, tmp_path: Path) -> None:
    """The burned-in text audit row records an OCR pass over the pixels; a reuse runs none, so it adds none."""
    ws = Workspace(make_runtime(burned_in_text="always"))
    message = submitted(ws.data_dir, write_ct_series(tmp_path / "ct", slices=1, size=64))
    with AuditLog(ws.settings.database) as audit:
        before = sum(r.template == "burned_in_text" for r in audit.recent(100))
    assert ws.accept(message, [], None, owner=ALICE)[2].study is not None
    assert ws.accept(message, [], None, owner=BOB)[2].study is not None
    with AuditLog(ws.settings.database) as audit:
        assert sum(r.template == "burned_in_text" for r in audit.recent(100)) == before + 1


def test_a_missing_upload_that_no_ingest_here_read_is_named(ws: Workspace, ct: list[Path]) -> None:
    gone = gradio_cache_dir(ws.data_dir) / "0123abcd" / "IM0001.dcm"
    _, history, s, image, *_ = ws.accept({"text": "", "files": [str(gone)]}, [], None)
    assert note_of(history) == f"⚠️ {removed_text('IM0001.dcm')}" and history[0]["metadata"]["title"]
    assert s.study is None and image is None
    assert removed_text("IM0001.dcm") == (
        "`IM0001.dcm` was removed from the upload area after another window opened the identical file; attach it again."
    )
    # Beside a file that is there: that one is read (and deleted), the missing one named.
    (fresh,) = staged(ws.data_dir, ct[:1])
    note = ws.ingest([str(gone), str(fresh)], s)["content"]
    assert removed_text("IM0001.dcm") in note and "Loaded 1 image(s)" in note and s.study is not None
    assert not fresh.exists()
    # Outside the upload area it is refused as before, registry or not.
    note = ws.ingest([str(ct[0].parent / "missing.dcm")], ws.session(None))["content"]
    assert "outside the upload area" in note and "removed from the upload area" not in note


def test_part_of_an_earlier_ingest_is_not_reused(ws: Workspace, ct: list[Path]) -> None:
    """Only the same set of files gets the earlier study; a subset, or more, is named file by file."""
    message = submitted(ws.data_dir, ct)
    first, *rest = message["files"]
    assert ws.accept(message, [], None, owner=ALICE)[2].study is not None
    _, history, bob, *_ = ws.accept({"text": "", "files": [first]}, [], None, owner=BOB)
    assert note_of(history) == f"⚠️ {removed_text(Path(first).name)}" and bob.study is None
    (extra,) = staged(ws.data_dir, ct[:1])
    note = ws.ingest([*message["files"], str(extra)], bob)["content"]
    assert all(removed_text(Path(p).name) in note for p in message["files"])
    assert "Loaded 1 image(s)" in note and bob.study is not None and GENERIC not in note


def test_a_file_deleted_while_it_is_read_is_named(
    ws: Workspace, ct: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race between the screening and the read (another app process, or a sweep, deleted it)."""
    real_open = Source.open

    def open_after_delete(self: Source) -> Any:  # gone between the loader's first look and its read
        if self.path is not None:
            os.unlink(self.path)
        return real_open(self)

    monkeypatch.setattr(Source, "open", open_after_delete)
    (upload,) = staged(ws.data_dir, ct[:1])
    s = ws.session(None)
    msg = ws.ingest([str(upload)], s)
    assert msg["content"] == f"⚠️ {removed_text(upload.name)}" and s.study is None
    assert msg["metadata"]["title"] == ui.workspace.FAILED_TITLE
    two = staged(ws.data_dir, ct[:2])
    msg = ws.ingest([str(p) for p in two], s)  # the first file's read fails: nothing of the upload is loaded
    assert removed_text(two[0].name) in msg["content"] and "attach all 2 file(s) again" in msg["content"]
    assert not any(p.exists() for p in two) and s.study is None and not len(ws.ingested)
    monkeypatch.setattr(Source, "open", real_open)

    def load_after_delete(paths: list[str], settings: Any) -> IngestResult:  # gone before the loader looked
        os.unlink(paths[0])
        return load_study(paths, settings)

    monkeypatch.setattr(ui.workspace, "load_study", load_after_delete)
    two = staged(ws.data_dir, ct[:2])
    note = ws.ingest([str(p) for p in two], s)["content"]
    assert f"- {removed_text(two[0].name)}" in note and "Loaded 1 image(s)" in note and GENERIC not in note
    assert not len(ws.ingested)  # a half-read upload is not offered to other tabs


def test_the_registry_expires(ws: Workspace, ct: list[Path], make_runtime: Any) -> None:
    now = [1000.0]
    ws.ingested = IngestedUploads(ws.max_age_s, clock=lambda: now[0])
    assert ws.ingested.max_age_s == 600  # never longer than 10 min …
    assert Workspace(make_runtime(upload_max_age_s=120)).ingested.max_age_s == 120  # … nor the uploads' own limit
    message = submitted(ws.data_dir, ct)
    assert ws.accept(message, [], None, owner=ALICE)[2].study is not None
    now[0] += 599
    assert ws.accept(message, [], None, owner=BOB)[2].study is not None
    now[0] += 2
    _, history, carol, *_ = ws.accept(message, [], None, owner="user:carol")
    assert removed_text(Path(message["files"][0]).name) in note_of(history) and carol.study is None
    assert not len(ws.ingested) and not any(k in ws.ingested for k in message["files"])


def _result(tmp_path: Path, name: str, size: int = 16) -> IngestResult:
    return load_study(write_ct_series(tmp_path / name, slices=1, size=size), b"salt" * 8)


def test_the_registry_is_bounded_in_entries_and_bytes(tmp_path: Path) -> None:
    small = _result(tmp_path, "small")
    registry = IngestedUploads(600, max_entries=16)
    for i in range(20):
        assert registry.record([f"/cache/{i}/a.dcm", f"/cache/{i}/b.dcm"], small)
    assert len(registry) == 16 and "/cache/3/a.dcm" not in registry and "/cache/4/b.dcm" in registry
    assert registry.result({"/cache/19/a.dcm", "/cache/19/b.dcm"}) is small
    assert registry.result({"/cache/19/a.dcm"}) is None  # only the very set one ingest read

    big = _result(tmp_path, "big", size=64)
    per = big.study.images[0].values.nbytes + big.study.images[0].rendering.nbytes  # type: ignore[union-attr]
    registry = IngestedUploads(600, max_bytes=2 * per)
    assert registry.record(["/c/1"], big) and registry.record(["/c/2"], big) and registry.record(["/c/3"], big)
    assert len(registry) == 2 and "/c/1" not in registry and "/c/3" in registry  # the oldest went
    assert not IngestedUploads(600, max_bytes=per - 1).record(["/c/4"], big)  # too large to keep at all
    # An identical upload ingested again replaces what its paths meant.
    assert registry.record(["/c/3", "/c/5"], small) and registry.result({"/c/3"}) is None
    assert registry.result({"/c/3", "/c/5"}) is small and len(registry) == 2
