"""Gradio is pinned, and installed, at a version without the known path-traversal advisories (>= 6.16.0:
GHSA-j36p-7w88-g82j, FileExplorer before 6.16.0; CVE-2026-28414, /static/ before 6.7.0)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.version import Version

from tests.support.paths import REPO

SAFE = Version("6.16.0")


def test_gradio_is_pinned_and_installed_at_or_above_the_fixed_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [pin] = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "gradio"]
    assert not pin.specifier.contains("6.15.2") and pin.specifier.contains(str(SAFE))
    assert Version(version("gradio")) >= SAFE
