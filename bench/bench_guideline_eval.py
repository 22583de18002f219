"""Guideline mode with the embedded default model (SmolLM2 served by vLLM) over a question set.

Reports: % correct (category, refusal, ask-back or concept answer), % with the right guideline section cited,
% of computed answers whose model phrasing passed the check vs fell back to the template, latency p50/p95.

    .venv/bin/python -m bench.bench_guideline_eval [--data FILE] [--limit N] [--no-write] [--out FILE]

Two sets: ``tests/data/guideline_questions.jsonl`` (written with the extractor; 111 questions) and
``tests/data/guideline_questions_heldout.jsonl`` (written by someone who had not seen the code, from the
sourced facts only; scored once before the extractor changed, then used). Expectation kinds: ``result``
(calculator and category), ``not_applicable``, ``missing`` (an ask-back naming the input), ``refuse`` (no
category: an input error or out of scope), ``concept`` (answered from that guideline's knowledge-base section,
no calculator category).
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

from assistant.modes.guideline import GUIDELINE_IDS
from assistant.modes.mode import Mode
from assistant.runtime import open_runtime
from assistant.settings import load_settings
from bench.report import write_section

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
EVAL_SET = DATA / "guideline_questions.jsonl"
HELDOUT_SET = DATA / "guideline_questions_heldout.jsonl"
COMMAND = ".venv/bin/python -m bench.bench_guideline_eval"
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


def _section_slug(calculator: str, category: str) -> str:
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
            ok = cites[0].endswith(_section_slug(case["calculator"], case["topic_category"]))
        return ok, ok
    asked = list(out.get("missing") or [])
    wanted = case["missing"]
    if all(name in MISSING_NAMES for name in wanted):
        ok = bool(asked) and any(a in MISSING_NAMES[w] for w in wanted for a in asked)
    else:
        ok = asked == wanted
    return ok, ok and not cites


def _groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in rows:
        groups[f"{r['case']['calculator']} / {r['case']['expect']}"].append(r)
    return groups


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    parser.add_argument("--data", type=Path, default=EVAL_SET, help="question set (JSONL)")
    parser.add_argument("--out", type=Path, help="write one JSON line per question (case, answer, grade) here")
    args = parser.parse_args(argv)
    cases = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
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
                if args.out:
                    with args.out.open("a", encoding="utf-8") as fh:
                        fh.write(json.dumps(rows[-1], ensure_ascii=False, default=str) + "\n")
    n = len(rows)
    both = sum(r["correct"] and r["cited"] for r in rows)
    computed = [r for r in rows if r["out"].get("phrasing") in ("model", "template")]
    by_model = sum(r["out"]["phrasing"] == "model" for r in computed)
    problems = collections.Counter(p.split(":")[0] for r in computed for p in r["out"].get("phrasing_problems", []))
    calc_rows = [r for r in rows if r["case"]["expect"] == "result"]
    calc_ok = sum(r["correct"] for r in calc_rows)
    latencies = [r["latency"] for r in rows]
    lat_computed = [r["latency"] for r in computed]
    wrong = [r["case"]["id"] for r in rows if not (r["correct"] and r["cited"])]
    breakdown = "\n".join(
        f"| {key} | {sum(r['correct'] for r in group)}/{len(group)} |" for key, group in sorted(_groups(rows).items())
    )
    name = args.data.name
    body = f"""Model: `{model}` (embedded vLLM engine, default settings; engine start {startup:.0f} s).
Evaluation set: `tests/data/{name}` ({n} questions: {len(calc_rows)} computable, the rest
out-of-scope refusals, ask-backs and questions about a guideline). Categories are computed by code; model phrasing is
{"on" if settings.phrases_guidelines else "off (guideline_phrasing=auto with the embedded default)"}; the model may pick an
enumerated parameter the parser left open, shown to the user for confirmation.

| Metric | Value |
|---|---|
| Correct (category, refusal or ask-back) | {sum(r["correct"] for r in rows)}/{n} ({100 * sum(r["correct"] for r in rows) / n:.1f}%) |
| Calculator outputs correct | {calc_ok}/{len(calc_rows)} ({100 * calc_ok / max(1, len(calc_rows)):.1f}%) |
| Right guideline section cited (ask-backs: right question, nothing cited) | {sum(r["cited"] for r in rows)}/{n} ({100 * sum(r["cited"] for r in rows) / n:.1f}%) |
| **Correct with the right section cited** | **{both}/{n} ({100 * both / n:.1f}%)** |
| Computed answers phrased by the model (passed the check) | {by_model}/{len(computed)} ({100 * by_model / max(1, len(computed)):.1f}%) |
| Computed answers that fell back to the template | {len(computed) - by_model}/{len(computed)} ({100 * (len(computed) - by_model) / max(1, len(computed)):.1f}%) |
| Latency per question p50 / p95 (all) | {percentile(latencies, 0.5):.2f} s / {percentile(latencies, 0.95):.2f} s |
| Latency p50 / p95 (computed answers, incl. phrasing) | {percentile(lat_computed, 0.5):.2f} s / {percentile(lat_computed, 0.95):.2f} s |
| Mean latency | {statistics.mean(latencies):.2f} s |

Why phrasings were rejected (count of answers per check): {", ".join(f"{k} ({v})" for k, v in problems.most_common()) or "none"}.
Not correct or not cited: {", ".join(wrong) or "none"}.

| Calculator / expectation | Correct |
|---|---|
{breakdown}"""  # noqa: E501
    print(body)
    if not args.no_write:
        held_out = args.data.resolve() == HELDOUT_SET
        section = "guideline-eval-heldout" if held_out else "guideline-eval"
        title = (
            "Guideline mode: held-out questions"
            if held_out
            else "Guideline mode: accuracy with the embedded default model"
        )
        write_section(section, title, f"{COMMAND} --data tests/data/{name}", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
