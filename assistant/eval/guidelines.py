"""Guideline mode over a question set: correct category (or refusal, ask-back, concept answer) and right section cited.

The sets are JSONL, one question a line: ``id``, ``question``, ``calculator``, ``expect`` and what that expectation
needs. Expectation kinds: ``result`` (``expected_category`` from ``calculator``), ``not_applicable``, ``missing``
(an ask-back naming the inputs in ``missing``), ``refuse`` (no category: an input error or out of scope),
``concept`` (answered from that guideline's knowledge-base section, optionally ``topic_category``'s, no category).
Used by ``radassist eval guidelines`` and ``bench/bench_guideline_eval.py`` (docs/evaluation.md).
"""

from __future__ import annotations

import collections
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError
from assistant.modes.guideline import GUIDELINE_IDS

EXPECTATIONS = ("result", "not_applicable", "missing", "refuse", "concept")
# The held-out set names missing inputs in plain words; these are the calculator parameters each may be.
MISSING_NAMES = {
    "risk": ("risk",),
    "size": ("size_mm", "size_cm", "mean_diameter_mm", "long_axis_mm", "volume_mm3"),
    "composition": ("composition", "nodule_type"),
    "count": ("count",),
    "prior_category": ("prior_category",),
    "echogenicity": ("echogenicity",),
    "shape": ("shape",),
    "margin": ("margin",),
    "echogenic_foci": ("echogenic_foci", "foci"),
    "attenuation": ("attenuation_hu", "unenhanced_hu"),
    "enhancement": ("hu_increase", "signal_increase_pct", "aphe", "enhancement"),
    "washout": ("absolute_washout_pct", "relative_washout_pct", "washout"),
    "cancer_history": ("cancer_history",),
    "prior_imaging": ("prior_imaging", "stable_1_year", "status"),
    "solid_component": ("solid_component_mm",),
}

Answerer = Callable[[str], dict[str, Any]]
"""Answers one question in guideline mode; returns the answer's JSON (``Answer.to_json()``)."""


def load_cases(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The questions of a JSONL set (the first ``limit``); a malformed line is named."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the question set {path}: {exc.strerror or exc}") from exc
    cases: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path.name} line {number} is not JSON: {exc.msg}") from exc
        if not isinstance(case, dict) or not isinstance(case.get("question"), str):
            raise ConfigurationError(f"{path.name} line {number} has no 'question' text")
        if case.get("expect") not in EXPECTATIONS:
            raise ConfigurationError(
                f"{path.name} line {number}: 'expect' must be one of {', '.join(EXPECTATIONS)}, "
                f"got {case.get('expect')!r}"
            )
        if case["expect"] != "refuse" and case.get("calculator") not in GUIDELINE_IDS:
            raise ConfigurationError(f"{path.name} line {number}: unknown 'calculator' {case.get('calculator')!r}")
        case.setdefault("id", f"line{number}")
        cases.append(case)
    if limit is not None and limit < 1:
        raise ConfigurationError(f"--limit must be at least 1, got {limit}")
    return cases[:limit] if limit else cases


def section_slug(calculator: str, category: str) -> str:
    """The section-id tail of a category: 'category-4a', 'class-iif', 'lr-5', 'tr3'."""
    low = category.lower().replace(" ", "")
    if calculator == "bosniak":
        return f"class-{low}"
    if calculator == "tirads":
        return low if low.startswith("tr") else f"tr{low}"
    if calculator == "lirads":
        return low if low.startswith("lr-") else f"lr-{low.removeprefix('lr')}"
    return f"category-{low}"


def grade(case: dict[str, Any], out: dict[str, Any]) -> tuple[bool, bool]:
    """(correct, right section cited) for one answer; an ask-back cites nothing and is graded on what it asks."""
    tool = out["tool_results"][0] if out["tool_results"] else {}
    output = tool.get("output") or {}
    cites = [c["section"] for c in out["citations"]]
    expect = case["expect"]
    if expect == "result":
        correct = tool.get("calculator") == case["calculator"] and output.get("category") == case["expected_category"]
        return correct, bool(cites) and cites[0] == output.get("section_id")
    if expect == "not_applicable":
        ok = output.get("not_applicable") is True
        return ok, ok and bool(cites) and cites[0].startswith(GUIDELINE_IDS[case["calculator"]])
    if expect == "refuse":
        ok = bool(output.get("error")) or output.get("not_applicable") is True
        return ok, ok
    if expect == "concept":
        prefix = GUIDELINE_IDS[case["calculator"]] + "/"
        ok = not output.get("category") and bool(cites) and cites[0].startswith(prefix)
        if ok and case.get("topic_category"):
            ok = cites[0].endswith(section_slug(case["calculator"], case["topic_category"]))
        return ok, ok
    asked = list(out.get("missing") or [])
    wanted = case["missing"]
    if all(name in MISSING_NAMES for name in wanted):
        ok = bool(asked) and any(a in MISSING_NAMES[w] for w in wanted for a in asked)
    else:
        ok = asked == wanted
    return ok, ok and not cites


def evaluate(
    cases: Sequence[dict[str, Any]],
    answer: Answerer,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per case (``case``, ``out``, ``latency``, ``correct``, ``cited``), asked in order."""
    rows: list[dict[str, Any]] = []
    for case in cases:
        t0 = time.monotonic()
        out = answer(case["question"])
        latency = time.monotonic() - t0
        correct, cited = grade(case, out)
        rows.append({"case": case, "out": out, "latency": latency, "correct": correct, "cited": cited})
        if on_row is not None:
            on_row(rows[-1])
    return rows


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of a run, as one JSON-ready object (counts and fractions; latencies in seconds)."""
    n = len(rows)
    correct = sum(r["correct"] for r in rows)
    cited = sum(r["cited"] for r in rows)
    both = sum(r["correct"] and r["cited"] for r in rows)
    computed = [r for r in rows if r["out"].get("phrasing") in ("model", "template")]
    by_model = sum(r["out"]["phrasing"] == "model" for r in computed)
    problems = collections.Counter(p.split(":")[0] for r in computed for p in r["out"].get("phrasing_problems", []))
    calc_rows = [r for r in rows if r["case"]["expect"] == "result"]
    latencies = [r["latency"] for r in rows]
    lat_computed = [r["latency"] for r in computed]
    groups: dict[str, list[int]] = {}
    for r in rows:
        tally = groups.setdefault(f"{r['case'].get('calculator')} / {r['case']['expect']}", [0, 0])
        tally[0] += bool(r["correct"])
        tally[1] += 1

    def frac(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "n": n,
        "correct": correct,
        "accuracy": frac(correct, n),
        "computable": len(calc_rows),
        "calculator_correct": sum(r["correct"] for r in calc_rows),
        "cited": cited,
        "correct_and_cited": both,
        "correct_and_cited_rate": frac(both, n),
        "computed_answers": len(computed),
        "phrased_by_model": by_model,
        "template_fallback": len(computed) - by_model,
        "phrasing_problems": dict(problems.most_common()),
        "latency_p50_s": round(percentile(latencies, 0.5), 3),
        "latency_p95_s": round(percentile(latencies, 0.95), 3),
        "latency_computed_p50_s": round(percentile(lat_computed, 0.5), 3),
        "latency_computed_p95_s": round(percentile(lat_computed, 0.95), 3),
        "latency_mean_s": round(statistics.mean(latencies), 3) if latencies else 0.0,
        "by_group": {key: {"correct": c, "n": t} for key, (c, t) in sorted(groups.items())},
        "not_correct_or_not_cited": [r["case"]["id"] for r in rows if not (r["correct"] and r["cited"])],
        "failures": 0,
    }


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / max(1, whole):.1f}%)"


def table(summary: dict[str, Any]) -> str:
    """The metrics as Markdown tables (the rows of docs/benchmarks.md's guideline section)."""
    n, comp = summary["n"], summary["computed_answers"]
    lines = [
        "| Metric | Value |",
        "|---|---|",
        f"| Correct (category, refusal or ask-back) | {_pct(summary['correct'], n)} |",
        f"| Calculator outputs correct | {_pct(summary['calculator_correct'], summary['computable'])} |",
        f"| Right guideline section cited (ask-backs: right question, nothing cited) | {_pct(summary['cited'], n)} |",
        f"| **Correct with the right section cited** | **{_pct(summary['correct_and_cited'], n)}** |",
        f"| Computed answers phrased by the model (passed the check) | {_pct(summary['phrased_by_model'], comp)} |",
        f"| Computed answers that fell back to the template | {_pct(summary['template_fallback'], comp)} |",
        f"| Latency per question p50 / p95 (all) | {summary['latency_p50_s']:.2f} s / "
        f"{summary['latency_p95_s']:.2f} s |",
        f"| Latency p50 / p95 (computed answers, incl. phrasing) | {summary['latency_computed_p50_s']:.2f} s / "
        f"{summary['latency_computed_p95_s']:.2f} s |",
        f"| Mean latency | {summary['latency_mean_s']:.2f} s |",
        "",
        "Why phrasings were rejected (count of answers per check): "
        + (", ".join(f"{k} ({v})" for k, v in summary["phrasing_problems"].items()) or "none")
        + ".",
        "Not correct or not cited: " + (", ".join(summary["not_correct_or_not_cited"]) or "none") + ".",
        "",
        "| Calculator / expectation | Correct |",
        "|---|---|",
        *(f"| {key} | {g['correct']}/{g['n']} |" for key, g in summary["by_group"].items()),
    ]
    return "\n".join(lines) + "\n"
