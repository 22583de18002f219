"""Guideline mode with the embedded default model (SmolLM2 served by vLLM) over the 111-question evaluation set.

Reports: % correct (category, refusal or ask-back), % with the right guideline section cited, % of computed
answers whose model phrasing passed the number/category check vs fell back to the template, latency p50/p95.

    .venv/bin/python -m bench.bench_guideline_eval [--limit N] [--no-write]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.modes import Mode
from assistant.runtime import open_runtime
from assistant.settings import load_settings
from bench.report import write_section

EVAL_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "guideline_questions.jsonl"
COMMAND = ".venv/bin/python -m bench.bench_guideline_eval"


def grade(case: dict[str, Any], out: dict[str, Any]) -> tuple[bool, bool]:
    """(correct, right section cited) for one answer; an ask-back cites nothing and is graded on what it asks."""
    tool = out["tool_results"][0] if out["tool_results"] else {}
    output = tool.get("output") or {}
    cites = [c["section"] for c in out["citations"]]
    if case["expect"] == "result":
        correct = tool.get("calculator") == case["calculator"] and output.get("category") == case["expected_category"]
        return correct, bool(cites) and cites[0] == output.get("section_id")
    if case["expect"] == "not_applicable":
        return output.get("not_applicable") is True, bool(cites) and cites[0] == "fleischner-2017/scope"
    asked = out.get("missing") == case["missing"]
    return asked, asked and not cites


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    cases = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    cases = cases[: args.limit] if args.limit else cases
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="radassist-bench-") as tmp:
        settings = load_settings(env={}, data_dir=Path(tmp))
        started = time.monotonic()
        with open_runtime(settings, lambda m: print(f"bench: {m}", file=sys.stderr)) as runtime:
            startup = time.monotonic() - started
            runtime.prepare_guidelines(lambda m: print(f"bench: {m}", file=sys.stderr))
            model = runtime.model_id
            for case in cases:
                t0 = time.monotonic()
                out = runtime.answer(case["question"], Mode.GUIDELINE).to_json()
                latency = time.monotonic() - t0
                correct, cited = grade(case, out)
                rows.append({"case": case, "out": out, "latency": latency, "correct": correct, "cited": cited})
                print(f"{case['id']}: correct={correct} cited={cited} phrasing={out.get('phrasing')} "
                      f"{latency:.2f}s", file=sys.stderr, flush=True)  # fmt: skip
    n = len(rows)
    both = sum(r["correct"] and r["cited"] for r in rows)
    computed = [r for r in rows if r["out"].get("phrasing") in ("model", "template")]
    by_model = sum(r["out"]["phrasing"] == "model" for r in computed)
    problems = collections.Counter(
        p.split(":")[0] for r in computed for p in r["out"].get("phrasing_problems", [])
    )
    calc_rows = [r for r in rows if r["case"]["expect"] == "result"]
    calc_ok = sum(r["correct"] for r in calc_rows)
    latencies = [r["latency"] for r in rows]
    lat_computed = [r["latency"] for r in computed]
    wrong = [r["case"]["id"] for r in rows if not (r["correct"] and r["cited"])]
    body = f"""Model: `{model}` (embedded vLLM engine, default settings; engine start {startup:.0f} s).
Evaluation set: `tests/data/guideline_questions.jsonl` ({n} questions: {len(calc_rows)} computable, the rest
out-of-scope refusals and ask-backs). Categories are computed by code; the model only phrases (and may pick an
enumerated parameter the parser left open, shown to the user for confirmation).

| Metric | Value |
|---|---|
| Correct (category, refusal or ask-back) | {sum(r['correct'] for r in rows)}/{n} ({100 * sum(r['correct'] for r in rows) / n:.1f}%) |
| Calculator outputs correct | {calc_ok}/{len(calc_rows)} ({100 * calc_ok / max(1, len(calc_rows)):.1f}%) |
| Right guideline section cited (ask-backs: right question, nothing cited) | {sum(r['cited'] for r in rows)}/{n} ({100 * sum(r['cited'] for r in rows) / n:.1f}%) |
| **Correct with the right section cited** | **{both}/{n} ({100 * both / n:.1f}%)** |
| Computed answers phrased by the model (passed the check) | {by_model}/{len(computed)} ({100 * by_model / max(1, len(computed)):.1f}%) |
| Computed answers that fell back to the template | {len(computed) - by_model}/{len(computed)} ({100 * (len(computed) - by_model) / max(1, len(computed)):.1f}%) |
| Latency per question p50 / p95 (all) | {percentile(latencies, 0.5):.2f} s / {percentile(latencies, 0.95):.2f} s |
| Latency p50 / p95 (computed answers, incl. phrasing) | {percentile(lat_computed, 0.5):.2f} s / {percentile(lat_computed, 0.95):.2f} s |
| Mean latency | {statistics.mean(latencies):.2f} s |

Why phrasings were rejected (count of answers per check): {', '.join(f'{k} ({v})' for k, v in problems.most_common()) or 'none'}.
Not correct or not cited: {', '.join(wrong) or 'none'}."""  # noqa: E501
    print(body)
    if not args.no_write:
        write_section("guideline-eval", "Guideline mode: accuracy with the embedded default model", COMMAND, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
