"""The import arrows point one way: ui → assistant (its face only) → retrieval / prompts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("assistant", "retrieval", "prompts", "ui")


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import statement in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
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
            if module == "assistant":  # "from assistant import x" must name the face, not a submodule
                found += [(f"assistant.{a.name}", node.lineno) for a in node.names if _is_submodule(a.name)]
    return found


def _is_submodule(name: str) -> bool:
    return (REPO / "assistant" / f"{name}.py").exists() or (REPO / "assistant" / name).is_dir()


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for module, line in imports_of(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(REPO)}:{line} imports {module}"
            if package == "ui" and top in ("retrieval", "prompts"):
                bad.append(where)
            if package == "ui" and top == "assistant" and module != "assistant":
                bad.append(where + " (ui may use only the public face: `from assistant import ...`)")
            if package in ("retrieval", "prompts") and top in ("assistant", "ui"):
                bad.append(where)
            if package == "prompts" and top == "retrieval":
                bad.append(where)
            if package == "retrieval" and top == "prompts":
                bad.append(where)
            if package == "assistant" and top in ("ui", "gradio"):
                bad.append(where)
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    assert violations(package) == []


def test_layering_check_catches_a_back_arrow(tmp_path: Path) -> None:
    # The checker itself must be able to fail: a retrieval module importing assistant is flagged.
    probe = REPO / "retrieval" / "_layering_probe.py"
    probe.write_text("from assistant.errors import RadassistError\n", encoding="utf-8")
    try:
        assert any("_layering_probe" in v for v in violations("retrieval"))
    finally:
        probe.unlink()


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
