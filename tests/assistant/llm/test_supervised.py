"""The engine's process group never outlives the app: orderly stop, Ctrl-C, crash, or kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.paths import REPO


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def start_parent(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int, int]:
    pids = tmp_path / "pids.txt"
    parent = subprocess.Popen([sys.executable, "-m", "tests.support.app_parent", str(pids), *extra], cwd=REPO)
    grand_file = pids.with_suffix(".grandchild")
    assert wait_for(lambda: pids.exists() and grand_file.exists() and grand_file.read_text().strip() != "")
    return parent, int(pids.read_text()), int(grand_file.read_text())


@pytest.mark.parametrize(
    ("how", "extra"),
    [
        ("orderly stop (SIGTERM to the app, which cleans up)", ()),
        ("Ctrl-C", ()),
        ("kill -9 of the app", ()),
        ("the app exits without cleaning up", ("--no-cleanup",)),
    ],
)
def test_no_orphan_is_left(tmp_path: Path, how: str, extra: tuple[str, ...]) -> None:
    parent, watchdog, grandchild = start_parent(tmp_path, *extra)
    assert alive(watchdog) and alive(grandchild)
    if how.startswith("Ctrl-C") or extra:
        parent.send_signal(signal.SIGINT)
    elif how.startswith("kill -9"):
        parent.kill()
    else:
        parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)
    assert wait_for(lambda: not alive(watchdog) and not alive(grandchild)), how


def test_child_exit_status_is_passed_on(tmp_path: Path) -> None:
    from assistant.llm.engine import start_supervised

    with open(tmp_path / "log", "ab") as log:
        proc = start_supervised("json.tool", ["/nonexistent/file.json"], log, env=None)
        assert proc.wait(timeout=30) != 0
