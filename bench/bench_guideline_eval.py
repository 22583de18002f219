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
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from assistant.eval.guidelines import MISSING_NAMES, evaluate, grade, load_cases, percentile, summarize, table
from assistant.eval.guidelines import section_slug as _section_slug
from assistant.modes.mode import Mode
from assistant.runtime import open_runtime
from assistant.settings import Settings, load_settings
from bench.report import write_section

__all__ = ["MISSING_NAMES", "_section_slug", "grade", "main", "measure", "percentile"]

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
EVAL_SET = DATA / "guideline_questions.jsonl"
HELDOUT_SET = DATA / "guideline_questions_heldout.jsonl"
COMMAND = ".venv/bin/python -m bench.bench_guideline_eval"


def measure(
    settings: Settings, cases: list[dict[str, Any]], out: Path | None = None
) -> tuple[dict[str, Any], str, float]:
    """(metrics, model id, engine start seconds): ``cases`` asked in guideline mode through the product's runtime.

    The scoring is ``assistant.eval.guidelines``, the same as ``radassist eval guidelines``.
    """

    def log(row: dict[str, Any]) -> None:
        case, answer = row["case"], row["out"]
        print(f"{case['id']}: correct={row['correct']} cited={row['cited']} phrasing={answer.get('phrasing')} "
              f"{row['latency']:.2f}s", file=sys.stderr, flush=True)  # fmt: skip
        if out:
            with out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    started = time.monotonic()
    with open_runtime(settings, lambda m: print(f"bench: {m}", file=sys.stderr)) as runtime:
        startup = time.monotonic() - started
        runtime.prepare_guidelines(lambda m: print(f"bench: {m}", file=sys.stderr))
        rows = evaluate(cases, lambda q: runtime.answer(q, Mode.GUIDELINE).to_json(), on_row=log)
        return summarize(rows), runtime.model_id, startup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    parser.add_argument("--data", type=Path, default=EVAL_SET, help="question set (JSONL)")
    parser.add_argument("--out", type=Path, help="write one JSON line per question (case, answer, grade) here")
    args = parser.parse_args(argv)
    cases = load_cases(args.data, args.limit)
    with tempfile.TemporaryDirectory(prefix="radassist-bench-") as tmp:
        settings = load_settings(env={}, data_dir=Path(tmp))
        summary, model, startup = measure(settings, cases, args.out)
    name = args.data.name
    body = f"""Model: `{model}` (embedded vLLM engine, default settings; engine start {startup:.0f} s).
Evaluation set: `tests/data/{name}` ({summary["n"]} questions: {summary["computable"]} computable, the rest
out-of-scope refusals, ask-backs and questions about a guideline). Categories are computed by code; model phrasing is
{"on" if settings.phrases_guidelines else "off (guideline_phrasing=auto with the embedded default)"}; the model may pick an
enumerated parameter the parser left open, shown to the user for confirmation.

{table(summary).rstrip()}"""  # noqa: E501
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
