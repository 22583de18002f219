"""The import arrows point one way, between the top-level packages and between assistant/'s own packages.

The rules are data (``ALLOWED``, ``NEVER_REACHES``); the checker reads the source with ``ast`` and is tested on
made-up import graphs, so no probe file is ever written into the source tree.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "retrieval", "prompts", "ui")

# Which parts of the project each part may import (itself is always allowed). A part is a top-level package,
# or inside assistant/ a sub-package or top module ("assistant.modes", "assistant.settings"). Anything outside
# the project (stdlib, third party) is not governed here, except gradio, which only ui/ may import.
_BASE = ("assistant.errors", "assistant.settings")
ALLOWED: Mapping[str, tuple[str, ...]] = {
    "retrieval": (),
    "prompts": (),
    "ui": ("assistant",),  # the public face only: `from assistant import ...`
    "assistant.errors": ("retrieval",),  # translates retrieval's errors at the boundary
    "assistant.settings": ("assistant.errors",),
    "assistant.guidelines": _BASE,
    "assistant.imaging": _BASE,
    "assistant.store": _BASE,
    "assistant.llm": _BASE,
    "assistant.vision": (*_BASE, "assistant.imaging", "assistant.llm", "retrieval"),
    "assistant.report": (*_BASE, "assistant.guidelines", "assistant.llm", "assistant.store", "prompts", "retrieval"),
    "assistant.modes": (
        *_BASE, "assistant.guidelines", "assistant.llm", "assistant.store", "assistant.vision", "prompts", "retrieval",
    ),  # fmt: skip
    "assistant.runtime": (
        *_BASE, "assistant.llm", "assistant.modes", "assistant.store", "assistant.vision", "retrieval",
        "assistant.priors",  # the prior-report store in the database
    ),  # fmt: skip
    "assistant.startup": (*_BASE, "assistant.runtime", "assistant.vision", "assistant.llm"),
    # PACS (DICOMweb): opens studies into ingest, imports priors (scrubbed as assistant.priors does), sends SRs.
    "assistant.pacs": (
        *_BASE, "assistant.imaging", "assistant.priors", "assistant.report", "assistant.store", "retrieval",
    ),  # fmt: skip
    # Prior reports in: de-identified with the ingest's keys (imaging.deid), indexed (retrieval).
    "assistant.priors": (*_BASE, "assistant.imaging", "assistant.store", "retrieval"),
    # The evaluation harness sits beside the command line: it drives the answering path; the app never imports it.
    "assistant.eval": (
        *_BASE, "assistant.imaging", "assistant.llm", "assistant.modes", "assistant.report", "assistant.runtime",
        "assistant.startup", "assistant.vision",
    ),  # fmt: skip
    # The command line sits on top of everything in assistant/ (but never ui/).
    "assistant.cli": (
        *_BASE, "assistant.guidelines", "assistant.imaging", "assistant.llm", "assistant.modes", "assistant.report",
        "assistant.runtime", "assistant.startup", "assistant.store", "assistant.vision", "retrieval", "prompts",
        "assistant.pacs", "assistant.priors", "assistant.eval",
    ),  # fmt: skip
    # The public face re-exports what front ends use (never the command line).
    "assistant": (
        *_BASE, "assistant.guidelines", "assistant.imaging", "assistant.llm", "assistant.modes", "assistant.report",
        "assistant.runtime", "assistant.startup", "assistant.store", "assistant.vision", "assistant.pacs",
        "assistant.priors",
    ),  # fmt: skip
}
# Modules that must not reach these parts even indirectly (through any chain of project imports).
NEVER_REACHES: Mapping[str, tuple[str, ...]] = {
    "assistant.modes.guideline": ("assistant.vision", "assistant.imaging"),  # guideline lookup needs no vision stack
    "assistant.modes.grounded": ("assistant.vision", "assistant.imaging"),
    "assistant.guidelines": ("assistant.llm", "assistant.modes", "assistant.vision"),
    "assistant.store": ("assistant.llm", "assistant.modes", "assistant.vision", "assistant.imaging"),
    "assistant.imaging": ("assistant.llm", "assistant.modes", "assistant.vision", "assistant.store"),
}
# Third-party stacks confined to named parts or modules (a module name or a prefix of it).
THIRD_PARTY_ONLY_IN = {
    "gradio": ("ui",),
    # pydicom Datasets never leave ingest: reading/decoding, de-identification, and writing the SR export.
    "pydicom": ("assistant.imaging.dicom", "assistant.imaging.deid", "assistant.report.export", "assistant.pacs.wire"),
    "highdicom": ("assistant.report.export",),
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import in ``path``, relative ones resolved, submodules named."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            for alias in node.names:  # "from assistant.modes import guideline" imports a submodule
                if _is_module(f"{module}.{alias.name}"):
                    found.append((f"{module}.{alias.name}", node.lineno))
    return found


def _is_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def part_of(module: str) -> str | None:
    """The part a project module belongs to (the most specific key of ``ALLOWED``), None outside the project."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    if top != "assistant":
        return top
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in ALLOWED else "assistant"


def import_graph() -> dict[str, list[tuple[str, int]]]:
    """Every project module and the project modules it imports (with the line)."""
    graph: dict[str, list[tuple[str, int]]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            graph[module_name(path)] = imports_of(path)
    return graph


def violations(
    graph: Mapping[str, list[tuple[str, int]]],
    allowed: Mapping[str, tuple[str, ...]] = ALLOWED,
    never: Mapping[str, tuple[str, ...]] = NEVER_REACHES,
) -> list[str]:
    """Every import that breaks a rule, as 'module:line imports other (why)'."""
    bad: list[str] = []
    for module, imports in graph.items():
        here = part_of(module)
        if here is None:
            continue
        for imported, line in imports:
            top = imported.split(".")[0]
            for lib, owners in THIRD_PARTY_ONLY_IN.items():
                if top == lib and not any(module == o or module.startswith(o + ".") for o in owners):
                    bad.append(f"{module}:{line} imports {imported} (only {', '.join(owners)} may)")
            there = part_of(imported)
            if there is None or there == here:
                continue
            if here == "ui" and imported != "assistant":
                if there == "assistant" or there.startswith("assistant."):
                    bad.append(f"{module}:{line} imports {imported} (ui uses only `from assistant import ...`)")
                    continue
            if not any(there == ok or there.startswith(ok + ".") for ok in allowed.get(here, ())):
                bad.append(f"{module}:{line} imports {imported} ({here} may not import {there})")
    for start, forbidden in never.items():
        for module in graph:
            if module != start and not module.startswith(start + "."):
                continue
            reached = _reachable(graph, module)
            for target in forbidden:
                hits = sorted(m for m in reached if m == target or m.startswith(target + "."))
                if hits:
                    bad.append(f"{module} reaches {hits[0]} ({start} must never reach {target})")
    return bad


def _reachable(graph: Mapping[str, list[tuple[str, int]]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for imported, _ in graph.get(todo.pop(), []):
            if imported in graph and imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def test_imports_point_one_way() -> None:
    assert violations(import_graph()) == []


def test_every_part_of_assistant_has_a_rule() -> None:
    parts = {p.name.removesuffix(".py") for p in (REPO / "assistant").iterdir() if not p.name.startswith("_")}
    parts.discard("__pycache__")
    assert {f"assistant.{p}" for p in parts} <= set(ALLOWED), "a new part of assistant/ needs a layering rule"


@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        ({"retrieval.index": [("assistant.errors", 3)]}, "retrieval may not import assistant.errors"),
        ({"ui.app": [("assistant.runtime", 5)]}, "ui uses only"),
        ({"assistant.guidelines.common": [("assistant.modes.chat", 7)]}, "may not import assistant.modes"),
        ({"assistant.store.db": [("assistant.cli.main", 1)]}, "may not import assistant.cli"),
        ({"assistant.runtime": [("gradio", 2)]}, "only ui may"),
        ({"assistant.imaging.ingest": [("pydicom", 2)]}, "only assistant.imaging.dicom"),
        (
            {
                "assistant.modes.guideline": [("assistant.modes.answer", 1)],
                "assistant.modes.answer": [("assistant.vision.service", 2)],
                "assistant.vision.service": [],
            },
            "must never reach assistant.vision",
        ),
    ],
)
def test_the_checker_catches_a_back_arrow(graph: dict[str, list[tuple[str, int]]], fragment: str) -> None:
    # The checker must be able to fail: made-up graphs with one bad arrow each, nothing written to disk.
    assert any(fragment in v for v in violations(graph)), violations(graph)


def test_the_checker_accepts_allowed_arrows() -> None:
    graph = {
        "ui.app": [("assistant", 1)],
        "assistant.modes.guideline": [("assistant.guidelines", 1), ("assistant.modes.answer", 2)],
        "assistant.modes.answer": [("assistant.errors", 1)],
    }
    assert violations(graph) == []


def test_importing_the_packages_does_no_work() -> None:
    import subprocess
    import sys

    code = (
        "import sys, assistant, retrieval, prompts, ui;"
        "heavy = [m for m in ('torch', 'vllm', 'gradio', 'faiss', 'open_clip', 'transformers') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == ""
