"""Dictation placement: which template slot each dictated clause goes to, by the rules, the model, or both.

Two kinds of set: hand-labelled snippets (JSONL: ``template``, ``text``, ``expected`` = the slot of each clause the
product's splitter cuts) scored on the exact slot, and real report sentences from an IU X-ray ``indiana_reports.csv``
(``indication`` and ``findings`` columns) scored on the section only. Used by ``radassist eval dictation`` and
``bench/bench_dictation.py`` (docs/evaluation.md).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError
from assistant.llm.client import ChatModel
from assistant.report.dictation import Placer, split_dictation
from assistant.report.draft import load_report_template as load_template

Item = tuple[str, str, str]
"""(template name, clause or sentence, expected slot or section)."""
Predict = Callable[[str, str], str | None]
PLACERS = ("rules only", "model only", "rules + model (product)")
WORKERS = 8  # requests in flight at once, as the benchmark has always run


def load_cases(path: Path, limit: int | None = None) -> list[Item]:
    """(template, clause, expected slot) per clause of the first ``limit`` snippets, cut by the product's splitter."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the dictation set {path}: {exc.strerror or exc}") from exc
    if limit is not None and limit < 1:
        raise ConfigurationError(f"--limit must be at least 1, got {limit}")
    out: list[Item] = []
    snippets = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if limit and snippets >= limit:
            break
        snippets += 1
        try:
            case = json.loads(line)
            template, text, expected = case["template"], case["text"], list(case["expected"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"{path.name} line {number} needs JSON with 'template', 'text' and 'expected' (a list of slots)"
            ) from exc
        clauses = split_dictation(load_template(template), text)
        if len(clauses) != len(expected):
            raise ConfigurationError(
                f"{path.name} line {number}: the splitter cuts {len(clauses)} clauses, 'expected' names {len(expected)}"
            )
        out += [(template, c.text, slot) for c, slot in zip(clauses, expected, strict=True)]
    return out


def iu_sentences(csv_path: Path, n: int, seed: int = 7, exclude: frozenset[str] = frozenset()) -> list[Item]:
    """(template, sentence, expected section) from real IU reports: half indications, half findings."""
    indications: list[str] = []
    findings: list[str] = []
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for column, bucket in (("indication", indications), ("findings", findings)):
                    for sentence in re.split(r"(?<=\.)\s+", row.get(column) or ""):
                        sentence = sentence.strip()
                        if len(sentence) > 12 and "XXXX" not in sentence and sentence not in exclude:
                            bucket.append(sentence)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the IU X-ray reports {csv_path}: {exc.strerror or exc}") from exc
    if len(indications) < n // 2 or len(findings) < n - n // 2:
        raise ConfigurationError(f"{csv_path.name} has too few indication/findings sentences for {n}")
    rng = random.Random(seed)
    picked = rng.sample(indications, n // 2) + rng.sample(findings, n - n // 2)
    return [("cxr", s, "indication" if i < n // 2 else "findings") for i, s in enumerate(picked)]


def rules(template: str, text: str) -> str | None:
    """The rules' slot for a text: its clauses' common slot, None when they disagree or none is found."""
    clauses = split_dictation(load_template(template), text)
    if len(clauses) == 1:
        return clauses[0].slot
    slots = [c.slot for c in clauses]
    return slots[0] if len(set(slots)) == 1 else None


def model_placer(model: ChatModel) -> Predict:
    """The model alone (JSON-schema structured output: one slot of the template)."""
    placer = Placer(model)
    return lambda template, text: placer.place(load_template(template), text)


def product_placer(model: ChatModel) -> Predict:
    """The product's way: the rules, and the model where the rules place nothing."""
    model_only = model_placer(model)
    return lambda template, text: rules(template, text) or model_only(template, text)


def score(items: Sequence[Item], predict: Predict, section_only: bool, workers: int = WORKERS) -> dict[str, Any]:
    """``n``, ``placed`` and ``correct`` (exact slot, or the section before the first dot when ``section_only``)."""
    with ThreadPoolExecutor(workers) as pool:
        predictions = list(pool.map(lambda it: predict(it[0], it[1]), items))
    correct = placed = 0
    for (_, _, expected), got in zip(items, predictions, strict=True):
        if got is None:
            continue
        placed += 1
        correct += (got.split(".")[0] if section_only else got) == expected
    return {"n": len(items), "placed": placed, "correct": correct}


def rates(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with ``accuracy`` (unplaced = wrong), ``placed_rate`` and ``precision`` (correct of placed)."""
    n, placed, correct = result["n"], result["placed"], result["correct"]
    return {
        **result,
        "accuracy": round(correct / n, 4) if n else None,
        "placed_rate": round(placed / n, 4) if n else None,
        "precision": round(correct / placed, 4) if placed else None,
    }


def row(name: str, result: dict[str, Any]) -> str:
    """One Markdown table row of a placer's score."""
    n, placed, correct = result["n"], result["placed"], result["correct"]
    acc = correct / n if n else 0.0
    precision = correct / placed if placed else 0.0
    return (
        f"| {name} | {acc:.1%} ({correct}/{n}) | {placed / n if n else 0.0:.1%} | {precision:.1%} | "
        f"{result.get('seconds', '-')} |"
    )


HEAD = "| placer | accuracy (unplaced = wrong) | placed | correct of placed | s |\n|---|---:|---:|---:|---:|"


def table(summary: dict[str, Any]) -> str:
    """Every set's placer rows as Markdown tables."""
    parts = []
    for set_name, results in summary["sets"].items():
        rows = "\n".join(row(name, r) for name, r in results.items())
        parts.append(f"**{set_name}** ({summary['set_sizes'][set_name]} items)\n\n{HEAD}\n{rows}\n")
    return "\n".join(parts)
