"""A watchdog between the app and a long-running child such as the vLLM engine.

``python -m assistant.supervised PARENT_PID MODULE [ARGS...]`` runs ``python -m MODULE ARGS`` as a child in
this process's group and stays beside it. It takes the whole group down (the engine and everything the engine
started, e.g. vLLM's engine-core process) when:

- it receives SIGTERM or SIGINT (the app's orderly stop), or
- the app that started it is gone (Ctrl-C, a crash or ``kill -9``): the kernel's parent-death signal wakes
  it at once, and a poll of ``getppid()`` backs that up.

Nothing here imports the project's other modules: it must start fast and depend on nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_GRACE_S = 8.0

_stop_requested = False


def _on_stop(signum: int, frame: FrameType | None) -> None:
    global _stop_requested
    _stop_requested = True


def _set_parent_death_signal(signum: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum))
    except (OSError, AttributeError):
        pass  # not Linux: the getppid() poll alone notices the parent's death


def _take_group_down(child: subprocess.Popen[bytes], grace_s: float) -> None:
    try:
        os.killpg(0, signal.SIGTERM)  # reaches our own handler too, which only sets a flag
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(0, signal.SIGKILL)  # whatever is left of the group, this watchdog included


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python -m assistant.supervised PARENT_PID MODULE [ARGS...]")
    parent_pid, module, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    if os.getpgrp() != os.getpid():
        os.setpgrp()
    signal.signal(signal.SIGTERM, _on_stop)
    signal.signal(signal.SIGINT, _on_stop)
    # SIGUSR1 (not SIGTERM) as the death signal: it also fires when the parent *thread* that started us
    # exits, so the handler checks whether the parent process is really gone.
    signal.signal(signal.SIGUSR1, lambda s, f: None)
    _set_parent_death_signal(signal.SIGUSR1)
    if os.getppid() != parent_pid:
        sys.exit(1)  # the parent died before we got here
    child = subprocess.Popen([sys.executable, "-m", module, *args])
    while True:
        code = child.poll()
        if code is not None:
            sys.exit(code if code >= 0 else 128 - code)
        if _stop_requested:
            _take_group_down(child, _GRACE_S)
        if os.getppid() != parent_pid:
            _take_group_down(child, 2.0)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
