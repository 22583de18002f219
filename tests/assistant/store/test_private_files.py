"""The data dir and what the app writes under it are its owner's only, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import retrieval
from assistant.llm.engine import EmbeddedEngine, EngineSpec
from assistant.modes.sources import GuidelineLibrary
from assistant.store.db import ensure_private_dir
from assistant.store.users import UserStore
from tests.support.paths import REPO


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default: files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(old)


def test_ensure_private_dir_creates_every_missing_level_owner_only(tmp_path: Path) -> None:
    leaf = ensure_private_dir(tmp_path / "data" / "tmp" / "sessions")
    assert [mode(p) for p in (tmp_path / "data", tmp_path / "data" / "tmp", leaf)] == [0o700] * 3


def test_ensure_private_dir_restricts_an_existing_open_folder_and_refuses_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    ensure_private_dir(folder)
    assert mode(folder) == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        ensure_private_dir(tmp_path / "file")


def test_the_database_makes_the_data_dir_and_its_file_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    users = UserStore(data / "radassist.sqlite3")
    assert not users.exists("alice")  # opens the database
    users.close()
    assert mode(data) == 0o700 and mode(data / "radassist.sqlite3") == 0o600


class _NotStarted(Exception):
    """Raised in place of the engine process: the files are made before it starts."""


def _no_process(*_args: object) -> None:
    raise _NotStarted


def test_the_engine_log_and_its_folders_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("assistant.llm.engine.start_supervised", _no_process)  # the process boundary: no vLLM here
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    (logs / "vllm-engine.log").write_text("from an earlier version\n")
    os.chmod(logs / "vllm-engine.log", 0o644)
    spec = EngineSpec(model="/nonexistent", served_name="m", start_timeout_s=0.01)
    engine = EmbeddedEngine(spec, log_dir=logs, cache_dir=tmp_path / "data" / "cache" / "vllm")
    with pytest.raises(_NotStarted):
        engine.start(progress=lambda _msg: None)
    engine.stop()
    assert mode(logs) == 0o700 and mode(tmp_path / "data" / "cache" / "vllm") == 0o700
    assert mode(logs / "vllm-engine.log") == 0o600


def test_the_index_folder_is_private(tmp_path: Path) -> None:
    library = GuidelineLibrary(retrieval.HashingEmbedder(256), tmp_path / "data" / "index" / "guidelines")
    library.index()
    assert mode(tmp_path / "data" / "index") == 0o700


def test_everything_the_cli_writes_is_owner_only_under_a_permissive_umask(tmp_path: Path, shared_dir: Path) -> None:
    """The data dir, database, salt, renderings and exports (report and audit) of real CLI runs: 0700/0600."""
    data, out = tmp_path / "data", tmp_path / "out"
    dicom = shared_dir / "data" / "dicom" / "pydicom_data" / "emri_small.dcm"
    runs = [
        ["report", "new", "--template", "cxr", "--patient-key", "P-0123456789abcdef0123", "--id", "r-perm"],
        ["report", "dictate", "r-perm", "Small left pleural effusion.", "--no-llm"],
        ["report", "export", "r-perm", "--format", "md", "--out", str(out / "exports" / "r.md")],
        ["report", "export", "r-perm", "--format", "sr", "--out", str(data / "exports" / "r.dcm")],
        ["ingest", str(dicom), "--out", str(out / "renderings")],
        ["audit", "export", "--since", "2000-01-01", "--format", "csv", "--out", str(out / "audit.csv")],
    ]
    for argv in runs:
        proc = subprocess.run(
            [sys.executable, "-m", "assistant.cli.main", "--data-dir", str(data), *argv],
            cwd=REPO, capture_output=True, text=True, timeout=300, umask=0o022,
        )  # fmt: skip
        assert proc.returncode == 0, (argv, proc.stderr)
    written = [p for root in (data, out) for p in (root, *root.rglob("*"))]
    assert any(p.suffix == ".png" for p in written) and (data / "exports" / "r.dcm").exists()
    open_ones = {str(p.relative_to(tmp_path)): oct(mode(p)) for p in written if mode(p) & 0o077}
    assert open_ones == {}
    assert {mode(p) for p in written if p.is_dir()} == {0o700}
