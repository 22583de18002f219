"""The sourced guideline case table: load ``tests/data/guideline_cases/*.jsonl``, run each case, render the doc.

Each case is one calculator call with its expected outcome and the source that supports it::

    {"id": "lungrads-012", "calculator": "lungrads", "inputs": {...}, "expect": {"category": "4A"},
     "rule": "solid baseline 8.0 mm: lower bound of 4A", "source": "lung-rads-2022-cde"}

``expect`` is ``{"category": ...}`` or ``{"error": "missing" | "invalid" | "not_applicable", "parameter": ...}``.
A case that asserts a category must name a guideline source of ``sources.toml`` (not one of the refusal keys).
``.venv/bin/python -m tests.support.guideline_cases`` rewrites ``docs/guideline-cases.md``; a test checks that
every case holds and that the committed doc is the one these files render.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from assistant.guidelines import (
    CalculatorInputError,
    MissingParameterError,
    NotApplicableError,
    calculate,
)
from tests.support.paths import REPO

ROOT = REPO
CASES_DIR = ROOT / "tests" / "data" / "guideline_cases"
DOC = ROOT / "docs" / "guideline-cases.md"
REFUSAL_SOURCES = frozenset({"input-validation", "unsourced-refusal"})
ORDER = ("fleischner", "lungrads", "tirads", "bosniak", "renal", "birads", "lirads", "adrenal")


@dataclass(frozen=True)
class Case:
    """One row of the case table."""

    id: str
    calculator: str
    inputs: dict[str, Any]
    expect: dict[str, Any]
    rule: str
    source: str
    file: str


def load_sources() -> dict[str, str]:
    """Source key -> full citation."""
    table = tomllib.loads((CASES_DIR / "sources.toml").read_text(encoding="utf-8"))
    return {key: str(value["citation"]) for key, value in table.items()}


def load_cases() -> list[Case]:
    """Every case of every ``*.jsonl`` file, in calculator order, then file order."""
    cases: list[Case] = []
    files = sorted(CASES_DIR.glob("*.jsonl"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            raw = json.loads(line)
            try:
                cases.append(
                    Case(
                        str(raw["id"]),
                        str(raw["calculator"]),
                        dict(raw.get("inputs") or {}),
                        dict(raw["expect"]),
                        str(raw.get("rule", "")),
                        str(raw.get("source", "")),
                        f"{path.name}:{number}",
                    )
                )
            except KeyError as exc:
                raise ValueError(f"{path.name}:{number} lacks the field {exc}") from None
    return cases


def outcome(case: Case) -> dict[str, Any]:
    """What the calculator does with the case's inputs, in the shape of ``expect``."""
    try:
        result = calculate(case.calculator, **case.inputs)
    except MissingParameterError as exc:
        return {"error": "missing", "parameter": exc.parameter, "message": str(exc)}
    except NotApplicableError as exc:
        return {"error": "not_applicable", "message": str(exc)}
    except CalculatorInputError as exc:
        return {"error": "invalid", "message": str(exc)}
    return {"category": result.category, "section": result.section_id, "unverified": result.unverified}


def problems(case: Case, sources: dict[str, str]) -> list[str]:
    """Why the case does not hold (empty: it holds and is sourced)."""
    found: list[str] = []
    if case.source not in sources:
        found.append(f"source {case.source!r} is not in sources.toml")
    elif "category" in case.expect and case.source in REFUSAL_SOURCES:
        found.append(f"asserts a category but names {case.source!r}, which is not a guideline source")
    got = outcome(case)
    if "category" in case.expect:
        if got.get("category") != case.expect["category"]:
            found.append(f"expected category {case.expect['category']!r}, got {got}")
        elif got.get("unverified"):
            found.append("asserts a category that the calculator flags unverified")
    else:
        if got.get("error") != case.expect.get("error"):
            found.append(f"expected error {case.expect.get('error')!r}, got {got}")
        elif "parameter" in case.expect and got.get("parameter") != case.expect["parameter"]:
            found.append(f"expected the missing input {case.expect['parameter']!r}, got {got.get('parameter')!r}")
    return found


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _inputs(inputs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in inputs.items()).replace("|", "\\|")


def _expected(expect: dict[str, Any]) -> str:
    if "category" in expect:
        return f"**{expect['category']}**"
    if expect.get("error") == "missing":
        return f"asks for `{expect.get('parameter', '?')}`"
    return {"invalid": "refused (input)", "not_applicable": "does not apply"}.get(str(expect.get("error")), "?")


def render(cases: list[Case], sources: dict[str, str]) -> str:
    """The Markdown of docs/guideline-cases.md."""
    counts = Counter(c.calculator for c in cases)
    used = sorted({c.source for c in cases})
    lines = [
        "# Guideline case table",
        "",
        "Generated by `.venv/bin/python -m tests.support.guideline_cases` from `tests/data/guideline_cases/*.jsonl`;",
        "`tests/assistant/guidelines/test_guideline_cases.py` runs every row against the calculators and fails",
        "when this file is out of date. A row that asserts a category names the publication (or public CDE text)",
        "that supports it; rows that refuse name why. Sizes in mm unless the input name says otherwise.",
        "",
        f"{len(cases)} cases: " + ", ".join(f"{name} {counts[name]}" for name in ORDER if counts[name]) + ".",
        "",
        "## Sources",
        "",
    ]
    lines += [f"- `{key}`: {sources[key]}" for key in used if key in sources]
    for name in ORDER:
        rows = [c for c in cases if c.calculator == name]
        if not rows:
            continue
        lines += ["", f"## {name}", "", "| id | inputs | expected | rule | source |", "|---|---|---|---|---|"]
        lines += [
            f"| {c.id} | {_inputs(c.inputs)} | {_expected(c.expect)} | {_cell(c.rule)} | `{c.source}` |" for c in rows
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    cases = load_cases()
    sources = load_sources()
    bad = {c.id: p for c in cases if (p := problems(c, sources))}
    for case_id, found in bad.items():
        print(f"{case_id}: {'; '.join(found)}", file=sys.stderr)
    DOC.write_text(render(cases, sources), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}: {len(cases)} cases, {len(bad)} failing", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
