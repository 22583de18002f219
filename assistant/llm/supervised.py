"""A watchdog between the app and a long-running child such as the vLLM engine.

``python -m assistant.llm.supervised PARENT_PID MODULE [ARGS...]`` runs ``python -m MODULE ARGS`` as a child in
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

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_GRACE_S = 8.0


def _note(message: str) -> None:
    sys.stdout.write(f"radassist supervisor: {message}\n")
    sys.stdout.flush()


def _set_parent_death_signal(signum: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum))
    except (OSError, AttributeError):
        pass  # not Linux: the getppid() poll alone notices the parent's death


def _take_group_down(child: subprocess.Popen[bytes], grace_s: float) -> None:
    try:
        os.killpg(0, signal.SIGTERM)  # blocked here, so it reaches only the children
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
    os.killpg(0, signal.SIGKILL)  # whatever is left of the group, this watchdog included


def _describe(pid: int) -> str:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmd = "?"
    return f"pid {pid} ({cmd[:120].strip()})"


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: python -m assistant.llm.supervised PARENT_PID MODULE [ARGS...]")
    parent_pid, module, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    if os.getpgrp() != os.getpid():
        os.setpgrp()
    # Signals are taken synchronously (sigtimedwait) so the sender can be logged. SIGUSR1 (not SIGTERM) is the
    # parent-death signal: it also fires when the parent *thread* that started us exits, so it only triggers
    # a check of whether the parent process is really gone.
    watched = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    _set_parent_death_signal(signal.SIGUSR1)
    if os.getppid() != parent_pid:
        sys.exit(1)  # the parent died before we got here
    child = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, watched),
    )
    while True:
        code = child.poll()
        if code is not None:
            sys.exit(code if code >= 0 else 128 - code)
        info = signal.sigtimedwait(watched, 0.2)
        if info is not None and info.si_signo != signal.SIGUSR1:
            _note(f"{signal.Signals(info.si_signo).name} from {_describe(info.si_pid)}; stopping the process group")
            _take_group_down(child, _GRACE_S)
        if os.getppid() != parent_pid:
            _note(f"the app (pid {parent_pid}) is gone; stopping the process group")
            _take_group_down(child, 2.0)


if __name__ == "__main__":
    main()
