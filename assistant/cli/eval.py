"""``radassist eval vqa | report``: measure what the radiologist gets, through the product's own answering path."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError
from assistant.eval import dictation as dictation_eval
from assistant.eval import green as green_eval
from assistant.eval import guidelines as guideline_eval
from assistant.eval import radgraph as radgraph_eval
from assistant.eval import report as report_eval
from assistant.eval import vqa as vqa_eval
from assistant.eval.chexbert import ChexbertLabeller
from assistant.eval.runner import EvalItem, RuntimeAsker, StudyImages
from assistant.eval.runner import run as run_items
from assistant.modes.mode import Mode
from assistant.runtime import open_runtime
from assistant.settings import Settings

PREDICTIONS, METRICS_JSON, METRICS_MD = "predictions.jsonl", "metrics.json", "metrics.md"
GREEN_ANSWERS = "green.jsonl"  # one line per scored study: its GREEN counts, score, error and the model's answer
RADGRAPH_SCORES = "radgraph.jsonl"  # one line per scored study: its RadGraph F1 at the three levels


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval`` and its sub-commands."""
    ev = sub.add_parser("eval", help="evaluate the whole pipeline on a benchmark or your own data (docs/evaluation.md)")
    esub = ev.add_subparsers(dest="eval_command", required=True, metavar="TASK")

    vqa = esub.add_parser(
        "vqa", help="visual question answering (VQA-RAD / SLAKE-style JSON): accuracy, token-F1, recall"
    )
    vqa.add_argument("--data", type=Path, required=True, help="questions: a JSON list or JSONL (docs/evaluation.md)")
    vqa.add_argument("--images", type=Path, required=True, help="folder of the images the questions name")
    _common(vqa)
    vqa.set_defaults(func=run_vqa)

    rep = esub.add_parser("report", help="report generation vs reference reports: BLEU-4, ROUGE-L, CheXpert-14 F1")
    rep.add_argument("--data", type=Path, required=True, help="JSONL: id, reference (or findings/impression), image(s)")
    rep.add_argument("--images", type=Path, help="folder of the images (not needed when every line has 'generated')")
    rep.add_argument("--prompt", default=report_eval.DEFAULT_PROMPT, help="what is asked for each study")
    rep.add_argument(
        "--chexbert", type=Path, metavar="CHECKPOINT",
        help="also score a CheXbert-14 F1 with this local CheXbert checkpoint (chexbert.pth; never downloaded)",
    )  # fmt: skip
    rep.add_argument(
        "--chexbert-tokenizer", type=Path, metavar="DIR",
        help="local bert-base-uncased folder (config.json, vocab.txt) for --chexbert",
    )  # fmt: skip
    rep.add_argument(
        "--green-url", metavar="URL",
        help="also score GREEN with the GREEN model served there (vLLM, OpenAI-compatible; docs/evaluation.md)",
    )  # fmt: skip
    rep.add_argument(
        "--green-model", metavar="NAME", help="the served GREEN model's name (default: the server's first model)"
    )
    rep.add_argument(
        "--green-max-tokens", type=int, default=green_eval.MAX_ANSWER_TOKENS, metavar="N",
        help=f"longest GREEN answer in tokens (default {green_eval.MAX_ANSWER_TOKENS})",
    )  # fmt: skip
    rep.add_argument(
        "--radgraph", type=Path, metavar="DIR",
        help="also score RadGraph-F1 with this extracted RadGraph model archive (config.json, vocabulary/, weights.th; "
        "never downloaded; needs radassist[eval-radgraph])",
    )  # fmt: skip
    rep.add_argument(
        "--radgraph-encoder", type=Path, metavar="DIR",
        help="local copy of the text encoder the RadGraph archive's config.json names (config.json, tokenizer files)",
    )  # fmt: skip
    rep.add_argument(
        "--radgraph-type", choices=radgraph_eval.MODEL_TYPES, default=radgraph_eval.DEFAULT_MODEL_TYPE,
        help=f"which RadGraph model --radgraph holds: it sets the report preprocessing (default "
        f"{radgraph_eval.DEFAULT_MODEL_TYPE})",
    )  # fmt: skip
    rep.add_argument(
        "--radgraph-device", default="cpu", metavar="DEVICE",
        help="where RadGraph runs: cpu (default; the GPU stays vLLM's), cuda or cuda:N",
    )  # fmt: skip
    _common(rep)
    rep.set_defaults(func=run_report)

    gl = esub.add_parser(
        "guidelines", help="guideline mode on a question set: right category and section (bench_guideline_eval)"
    )
    gl.add_argument(
        "--data", type=Path, required=True, help="question set, JSONL (tests/data/guideline_questions.jsonl)"
    )
    gl.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    gl.add_argument("--out", type=Path, metavar="FILE", help="write one JSON line per question (case, answer, grade)")
    _engine_options(gl)
    gl.set_defaults(func=run_guidelines)

    dic = esub.add_parser("dictation", help="dictation placement: rules, model, both (bench_dictation)")
    dic.add_argument(
        "--data", type=Path, required=True, help="labelled snippets, JSONL (e.g. tests/data/dictation_placement.jsonl)"
    )
    dic.add_argument("--limit", type=int, metavar="N", help="only the first N snippets")
    dic.add_argument("--iu", type=Path, metavar="CSV", help="also score real sentences of IU X-ray indiana_reports.csv")
    dic.add_argument(
        "--iu-sentences", type=int, default=200, metavar="N", help="IU sentences per sample (seeds 7, 11; default 200)"
    )
    dic.add_argument(
        "--placer",
        choices=("rules", "model", "product", "all"),
        default="all",
        help="which placers to score (default all; 'rules' needs no model)",
    )
    _engine_options(dic)
    dic.set_defaults(func=run_dictation)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, metavar="N", help="only the first N items of the data file")
    p.add_argument("--out", type=Path, help="output folder (default: DATA_DIR/eval/<task>-<data file name>)")
    p.add_argument("--resume", action="store_true", help="continue a run in --out: keep its answers, ask the rest")
    p.add_argument("--concurrency", type=int, default=1, metavar="N", help="questions in flight at once (default 1)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--llm-url", help="use a running OpenAI-compatible server instead of the embedded engine")
    p.add_argument("--max-tokens", type=int, help="longest answer in tokens (default: the configured llm_max_tokens)")
    p.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=Mode.AUTO.value,
        help="how each question is answered, as `ask --mode` (default auto, what users get: study Q&A, header facts, "
        "named guidelines); chat: always the model",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (default 0)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")


def _engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--llm-url", help="use a running OpenAI-compatible server instead of the embedded engine")
    p.add_argument("--max-tokens", type=int, help="longest answer in tokens (default: the configured llm_max_tokens)")


def _settings_for(args: argparse.Namespace, settings: Settings) -> Settings:
    changes: dict[str, Any] = {}
    if args.llm_url:
        changes["llm_url"] = args.llm_url
    if args.max_tokens:
        changes["llm_max_tokens"] = args.max_tokens
    return settings.replace(**changes) if changes else settings


def _out_dir(args: argparse.Namespace, settings: Settings, task: str) -> Path:
    return args.out or Path(settings.data_dir) / "eval" / f"{task}-{args.data.stem}"


def _stderr(message: str) -> None:
    print(f"radassist: {message}", file=sys.stderr, flush=True)


class ProgressBar:
    """A bar on stderr: redrawn in place on a terminal, a line every 10% otherwise (logs, CI)."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __call__(self, done: int, total: int, failures: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        elapsed = time.monotonic() - self.started
        bar = "#" * filled + "." * (width - filled)
        text = f"{self.label} [{bar}] {done}/{total}, {failures} failed, {elapsed:.0f} s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
            self.stream.flush()
            return
        decile = 10 * done // total if total else 10
        if decile != self._last_decile:
            self._last_decile = decile
            print(text, file=self.stream, flush=True)


def _run(
    settings: Settings, items: Sequence[EvalItem], out: Path, args: argparse.Namespace, label: str
) -> list[dict[str, Any]]:
    """Ask ``items`` through the product's path (the embedded engine or --llm-url) into out/predictions.jsonl."""
    if not items:
        return []
    with open_runtime(settings, progress=_stderr) as runtime:
        return run_items(
            items, RuntimeAsker(runtime, Mode(args.mode)), StudyImages(settings), out / PREDICTIONS,
            resume=args.resume, concurrency=args.concurrency, progress=ProgressBar(label),
        )  # fmt: skip


def _finish(
    summary: dict[str, Any], table: Callable[[dict[str, Any]], str], out: Path, args: argparse.Namespace
) -> int:
    summary["predictions"] = str(out / PREDICTIONS)
    (out / METRICS_JSON).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / METRICS_MD).write_text(table(summary), encoding="utf-8")
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(table(summary), end="")
        print(f"\npredictions: {out / PREDICTIONS}\nmetrics: {out / METRICS_JSON}")
    return 1 if summary["failures"] or summary.get("green_failures") or summary.get("radgraph_failures") else 0


def run_vqa(args: argparse.Namespace, settings: Settings) -> int:
    if args.concurrency < 1:
        raise ConfigurationError(f"--concurrency must be at least 1, got {args.concurrency}")
    if not args.images.is_dir():
        raise ConfigurationError(f"--images {args.images} is not a folder")
    settings = _settings_for(args, settings)
    questions = vqa_eval.load_questions(args.data, args.limit)
    out = _out_dir(args, settings, "vqa")
    records = _run(settings, [q.item(args.images) for q in questions], out, args, "vqa")
    summary = vqa_eval.summarize(records, seed=args.seed, resamples=args.resamples)
    return _finish(summary, vqa_eval.table, out, args)


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    if args.concurrency < 1:
        raise ConfigurationError(f"--concurrency must be at least 1, got {args.concurrency}")
    settings = _settings_for(args, settings)
    cases = report_eval.load_cases(args.data, args.limit)
    to_generate = [c for c in cases if c.generated is None]
    if to_generate and (args.images is None or not args.images.is_dir()):
        raise ConfigurationError(
            f"{len(to_generate)} studies have no 'generated' report: give --images DIR to generate them"
        )
    chexbert = _chexbert(args)  # before any generation: a wrong path fails in seconds, not after the run
    green = _green(args)
    radgraph = _radgraph(args)
    out = _out_dir(args, settings, "report")
    out.mkdir(parents=True, exist_ok=True)
    items = [c.item(args.images, args.prompt) for c in to_generate]
    generated = {r["_key"]: r for r in _run(settings, items, out, args, "report")}
    records = []
    for case in cases:
        if case.generated is not None:
            records.append({"_key": case.case_id, "id": case.case_id, "reference": case.reference,
                            "prediction": case.generated})  # fmt: skip
        else:
            records.append(generated[case.case_id])
    outcomes = _green_outcomes(green, records, out) if green is not None else None
    radgraph_scores = _radgraph_scores(radgraph, records, out) if radgraph is not None else None
    summary = report_eval.summarize(
        records, seed=args.seed, resamples=args.resamples, chexbert=chexbert, green=outcomes, radgraph=radgraph_scores
    )
    if radgraph is not None:
        summary["radgraph_model_type"] = radgraph.model_type
    if green is not None:
        summary["green_model"] = green.model_id
    if not to_generate:  # scores only: keep what was scored beside the metrics
        with (out / PREDICTIONS).open("w", encoding="utf-8") as sink:
            for record in records:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    return _finish(summary, report_eval.table, out, args)


def _chexbert(args: argparse.Namespace) -> ChexbertLabeller | None:
    """The CheXbert labeller of --chexbert/--chexbert-tokenizer (both or neither), loaded from local files."""
    if args.chexbert is None and args.chexbert_tokenizer is None:
        return None
    if args.chexbert is None or args.chexbert_tokenizer is None:
        raise ConfigurationError(
            "--chexbert CHECKPOINT and --chexbert-tokenizer DIR go together (the checkpoint and its local "
            "bert-base-uncased config and vocabulary)"
        )
    _stderr(f"loading CheXbert from {args.chexbert}")
    return ChexbertLabeller.from_files(args.chexbert, args.chexbert_tokenizer)


def _green(args: argparse.Namespace) -> green_eval.GreenScorer | None:
    """The GREEN scorer of --green-url/--green-model; the server is asked for its model now."""
    if args.green_url is None:
        if args.green_model is not None:
            raise ConfigurationError("--green-model NAME needs --green-url URL (the server that serves GREEN)")
        return None
    _stderr(f"GREEN: using the model server at {args.green_url}")
    if args.green_max_tokens < 1:
        raise ConfigurationError(f"--green-max-tokens must be at least 1, got {args.green_max_tokens}")
    return green_eval.GreenScorer.from_url(args.green_url, args.green_model, max_tokens=args.green_max_tokens)


def _radgraph(args: argparse.Namespace) -> radgraph_eval.RadGraphScorer | None:
    """The RadGraph scorer of --radgraph/--radgraph-encoder (both or neither), loaded from local files."""
    if args.radgraph is None and args.radgraph_encoder is None:
        return None
    if args.radgraph is None or args.radgraph_encoder is None:
        raise ConfigurationError(
            "--radgraph DIR and --radgraph-encoder DIR go together (the extracted RadGraph model archive and a local "
            "copy of the text encoder its config.json names)"
        )
    _stderr(f"loading RadGraph ({args.radgraph_type}) from {args.radgraph}")
    return radgraph_eval.RadGraphScorer.from_files(
        args.radgraph, args.radgraph_encoder, args.radgraph_type, device=args.radgraph_device
    )


def _radgraph_scores(
    radgraph: radgraph_eval.RadGraphScorer, records: list[dict[str, Any]], out: Path
) -> list[radgraph_eval.RadGraphF1 | None]:
    """RadGraph-F1 of every scored study, each kept in out/radgraph.jsonl (a study the model failed on as an
    error line, counted in ``radgraph_failures``)."""
    scored = report_eval.scored_records(records)
    _stderr(f"RadGraph: scoring {len(scored)} studies")
    scores = radgraph.score([str(r["reference"]) for r in scored], [str(r["prediction"]) for r in scored])
    with (out / RADGRAPH_SCORES).open("w", encoding="utf-8") as sink:
        for record, score in zip(scored, scores, strict=True):
            line = score.to_json() if score is not None else {"error": "the RadGraph model failed on this study"}
            sink.write(json.dumps({"id": record.get("id"), **line}, ensure_ascii=False) + "\n")
    return scores


def _green_outcomes(
    green: green_eval.GreenScorer, records: list[dict[str, Any]], out: Path
) -> list[green_eval.GreenOutcome]:
    """GREEN on every scored study, each outcome kept in out/green.jsonl."""
    scored = report_eval.scored_records(records)
    _stderr(f"GREEN: scoring {len(scored)} studies with {green.model_id}")
    outcomes = green.score([str(r["reference"]) for r in scored], [str(r["prediction"]) for r in scored])
    with (out / GREEN_ANSWERS).open("w", encoding="utf-8") as sink:
        for record, outcome in zip(scored, outcomes, strict=True):
            sink.write(json.dumps({"id": record.get("id"), **outcome.to_json()}, ensure_ascii=False) + "\n")
    return outcomes


def _print_metrics(summary: dict[str, Any], table: Callable[[dict[str, Any]], str], as_json: bool) -> None:
    print(json.dumps(summary, ensure_ascii=False) if as_json else table(summary), end="\n" if as_json else "")


def run_guidelines(args: argparse.Namespace, settings: Settings) -> int:
    settings = _settings_for(args, settings)
    cases = guideline_eval.load_cases(args.data, args.limit)
    bar = ProgressBar("guidelines")

    def keep(row: dict[str, Any]) -> None:
        bar(len(rows_seen) + 1, len(cases), 0)
        rows_seen.append(row)
        if args.out:
            with args.out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    rows_seen: list[dict[str, Any]] = []
    with open_runtime(settings, progress=_stderr) as runtime:
        runtime.prepare_guidelines(_stderr)
        rows = guideline_eval.evaluate(cases, lambda q: runtime.answer(q, Mode.GUIDELINE).to_json(), on_row=keep)
        model = runtime.model_id
    summary = {"model": model, "phrasing": settings.phrases_guidelines, **guideline_eval.summarize(rows)}
    _print_metrics(summary, guideline_eval.table, args.json)
    return 0


def run_dictation(args: argparse.Namespace, settings: Settings) -> int:
    if args.iu_sentences < 2:
        raise ConfigurationError(f"--iu-sentences must be at least 2, got {args.iu_sentences}")
    settings = _settings_for(args, settings)
    sets: dict[str, tuple[list[dictation_eval.Item], bool]] = {
        "snippets": (dictation_eval.load_cases(args.data, args.limit), False)
    }
    if args.iu:  # the benchmark's two samples: seed 7, and seed 11 without seed 7's sentences
        inspected = dictation_eval.iu_sentences(args.iu, args.iu_sentences, seed=7)
        fresh = dictation_eval.iu_sentences(
            args.iu, args.iu_sentences, seed=11, exclude=frozenset(s for _, s, _ in inspected)
        )
        sets |= {"iu": (inspected, True), "iu_fresh": (fresh, True)}
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in sets}
    if args.placer in ("rules", "all"):
        for name, (items, section_only) in sets.items():
            results[name]["rules only"] = dictation_eval.score(items, dictation_eval.rules, section_only)
    model: str | None = None
    if args.placer != "rules":
        with open_runtime(settings, progress=_stderr) as runtime:
            model = runtime.model_id
            placers = {
                "model only": dictation_eval.model_placer(runtime.client),
                "rules + model (product)": dictation_eval.product_placer(runtime.client),
            }
            chosen = {"model": ["model only"], "product": ["rules + model (product)"]}.get(args.placer, list(placers))
            for placer in chosen:
                for name, (items, section_only) in sets.items():
                    t0 = time.monotonic()
                    results[name][placer] = dictation_eval.score(items, placers[placer], section_only)
                    results[name][placer]["seconds"] = round(time.monotonic() - t0, 1)
    summary = {
        "model": model,
        "n": len(sets["snippets"][0]),
        "set_sizes": {name: len(items) for name, (items, _) in sets.items()},
        "sets": {name: {p: dictation_eval.rates(r) for p, r in rs.items()} for name, rs in results.items()},
        "failures": 0,
    }
    _print_metrics(summary, dictation_eval.table, args.json)
    return 0
