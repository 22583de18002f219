"""Write one benchmark's table into its own section of docs/benchmarks.md (other sections are kept)."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script named in it; rerun that command to reproduce. Ratios compare\n"
    "against a baseline measured in the same run, because these machines are shared and noisy.\n"
)


def machine_line() -> str:
    """A one-line description of where the numbers were taken."""
    day = time.strftime("%Y-%m-%d")
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {day}"


def write_section(name: str, title: str, command: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section ``name`` with ``body`` (Markdown)."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n## {title}\n\n`{command}` — {machine_line()}\n\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(doc)
