"""The versioned folder: commit, re-commit, crashes before the switch, damaged pointers, the on-disk layout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval import Chunk, HashingEmbedder, HybridIndex, RetrievalError, VersionedFolder, VersionedFolderError
from retrieval.versions import CURRENT
from tests.support.paths import REPO


def write_payload(text: str) -> Callable[[Path], None]:
    """A writer for ``commit``: a file and a file in a sub-folder."""

    def write(folder: Path) -> None:
        (folder / "payload.txt").write_text(text, encoding="utf-8")
        (folder / "sub").mkdir()
        (folder / "sub" / "more.txt").write_text(text.upper(), encoding="utf-8")

    return write


def read_payload(versions: VersionedFolder) -> str:
    version = versions.committed_version()
    assert version is not None
    return (version / "payload.txt").read_text(encoding="utf-8")


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_nothing_committed_reads_as_none(tmp_path: Path) -> None:
    versions = VersionedFolder(tmp_path / "absent")
    assert not versions.exists() and versions.committed_version() is None


def test_commit_writes_a_version_and_points_current_at_it(tmp_path: Path) -> None:
    versions = VersionedFolder(tmp_path / "ix")  # the folder is created by the first commit
    version = versions.commit(write_payload("first"))
    assert versions.exists() and versions.committed_version() == version
    assert (tmp_path / "ix" / CURRENT).read_text(encoding="utf-8") == version.name + "\n"
    assert version.name.startswith("v") and entries(tmp_path / "ix") == sorted([CURRENT, version.name])
    assert read_payload(versions) == "first" and (version / "sub" / "more.txt").read_text() == "FIRST"


def test_recommit_switches_current_and_removes_the_old_version(tmp_path: Path) -> None:
    versions = VersionedFolder(tmp_path)
    first = versions.commit(write_payload("first"))
    (tmp_path / "unrelated.txt").write_text("kept", encoding="utf-8")  # only the folder's own entries are swept
    second = versions.commit(write_payload("second"))
    assert second != first and not first.exists()
    assert read_payload(versions) == "second"
    assert entries(tmp_path) == sorted([CURRENT, second.name, "unrelated.txt"])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="fsync targets are read from /proc/self/fd")
def test_files_and_folders_are_fsynced_before_the_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:  # observes, then does the real thing
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    version = VersionedFolder(tmp_path / "ix").commit(write_payload("x"))
    monkeypatch.undo()
    switch = events.index(("replace", CURRENT))
    before = {name for kind, name in events[:switch] if kind == "fsync"}
    assert {"payload.txt", "more.txt", "sub", f".tmp-{version.name}", f".{CURRENT}.{version.name}", "ix"} <= before
    assert events[switch + 1:] == [("fsync", "ix")]  # the switch itself made durable


def test_a_failing_writer_leaves_the_old_version_and_no_leftovers(tmp_path: Path) -> None:
    versions = VersionedFolder(tmp_path)
    first = versions.commit(write_payload("first"))

    def write(folder: Path) -> None:
        write_payload("half")(folder)
        raise OSError("disk full (injected)")

    with pytest.raises(OSError, match="injected"):  # the writer's own error, unchanged
        versions.commit(write)
    assert versions.committed_version() == first and read_payload(versions) == "first"
    assert entries(tmp_path) == sorted([CURRENT, first.name])


def test_a_failed_switch_leaves_the_old_version_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = VersionedFolder(tmp_path, label="test index")
    first = versions.commit(write_payload("first"))
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == CURRENT:
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(VersionedFolderError, match=r"cannot commit .* test index at .*Permission denied"):
        versions.commit(write_payload("second"))
    monkeypatch.undo()
    assert read_payload(versions) == "first" and entries(tmp_path) == sorted([CURRENT, first.name])


KILLED_COMMIT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from retrieval.versions import CURRENT, VersionedFolder

    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == CURRENT:
            os._exit(9)  # killed after the new version is written and renamed, before CURRENT is switched
        real_replace(src, dst)

    def write(folder):
        (folder / "payload.txt").write_text("second", encoding="utf-8")

    os.replace = replace
    VersionedFolder(Path(sys.argv[1])).commit(write)
    """
)


def test_a_process_killed_before_the_switch_leaves_the_old_version_readable(tmp_path: Path) -> None:
    versions = VersionedFolder(tmp_path)
    first = versions.commit(write_payload("first"))
    killed = subprocess.run([sys.executable, "-c", KILLED_COMMIT, str(tmp_path)], cwd=REPO, check=False)
    assert killed.returncode == 9
    leftovers = set(entries(tmp_path)) - {CURRENT, first.name}
    assert len(leftovers) == 2 and any(n.startswith(f".{CURRENT}.v") for n in leftovers)  # pointer + version
    assert versions.committed_version() == first and read_payload(versions) == "first"
    third = versions.commit(write_payload("third"))  # the next commit sweeps the leftovers away
    assert entries(tmp_path) == sorted([CURRENT, third.name]) and read_payload(versions) == "third"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"v123-gone\n", "names a missing folder"),
        (b"../elsewhere\n", "not a version folder name"),
        (b".tmp-v123-half\n", "not a version folder name"),
        (b"\xff\xfe\x00garbage", "is not text"),
    ],
)
def test_a_damaged_current_is_a_clear_error(tmp_path: Path, content: bytes, why: str) -> None:
    (tmp_path / ".tmp-v123-half").mkdir()
    (tmp_path / CURRENT).write_bytes(content)
    versions = VersionedFolder(tmp_path, label="guideline index", repair="rebuild it (radassist index build)")
    with pytest.raises(VersionedFolderError) as caught:
        versions.committed_version()
    message = str(caught.value)
    assert message.startswith(f"the guideline index at {tmp_path} is damaged (") and why in message
    assert message.endswith("): rebuild it (radassist index build)")
    assert isinstance(caught.value, RetrievalError)


def test_a_current_folder_instead_of_a_file_is_damaged(tmp_path: Path) -> None:
    (tmp_path / CURRENT).mkdir()
    versions = VersionedFolder(tmp_path)
    assert not versions.exists()
    with pytest.raises(VersionedFolderError, match="is a folder, not a file"):
        versions.committed_version()


def test_a_folder_written_by_earlier_releases_still_reads(tmp_path: Path) -> None:
    (tmp_path / "v1700000000000000000-deadbeef").mkdir()
    (tmp_path / "v1700000000000000000-deadbeef" / "payload.txt").write_text("old", encoding="utf-8")
    (tmp_path / CURRENT).write_text("v1700000000000000000-deadbeef", encoding="utf-8")  # with or without "\n"
    assert read_payload(VersionedFolder(tmp_path)) == "old"


def test_an_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    with pytest.raises(VersionedFolderError, match=r"cannot prepare a new version of the index at .*file"):
        VersionedFolder(tmp_path / "file" / "ix").commit(write_payload("x"))


def test_hybrid_index_reports_a_damaged_current(tmp_path: Path) -> None:
    hashing = HashingEmbedder(64)
    HybridIndex.build([Chunk.create("s", "t", "a", "renal cyst")], hashing, tmp_path)
    (tmp_path / CURRENT).write_text("v0-missing\n", encoding="utf-8")
    assert HybridIndex.exists(tmp_path)
    with pytest.raises(RetrievalError, match=r"the index at .* is damaged \(CURRENT names a missing folder"):
        HybridIndex.load(tmp_path, hashing)
