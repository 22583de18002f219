"""Stands in for the app: starts a supervised child, reports pids, then waits to be stopped or killed."""

import sys
import time
from pathlib import Path

from assistant.llm.engine import start_supervised, stop_supervised

pids = Path(sys.argv[1])
log = open(pids.with_suffix(".log"), "ab")  # noqa: SIM115
proc = start_supervised("tests.support.spawner", [str(pids.with_suffix(".grandchild"))], log, env=None)
pids.write_text(f"{proc.pid}\n", encoding="utf-8")
try:
    time.sleep(600)
except KeyboardInterrupt:
    pass
finally:
    if "--no-cleanup" not in sys.argv:
        stop_supervised(proc)
