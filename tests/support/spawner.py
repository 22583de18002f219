"""A child that starts a grandchild, writes both pids to a file and waits (for supervisor tests)."""

import subprocess
import sys
import time
from pathlib import Path

out = Path(sys.argv[1])
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
out.write_text(f"{grandchild.pid}\n", encoding="utf-8")
time.sleep(600)
