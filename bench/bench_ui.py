"""The workspace under load: upload-to-first-slice, UI overhead per chat turn, concurrent API sessions.

    .venv/bin/python -m bench.bench_ui [--llm-url URL] [--duration 120] [--sessions 10] [--slices 100]
                                       [--turns 5] [--max-tokens 64] [--no-write]

Without ``--llm-url`` the embedded engine starts on the default model (as ``radassist serve`` does). The app runs
in this process on a free loopback port, queued exactly as ``launch`` queues it.

1. Upload → rendered first slice: a synthetic 100-slice 512×512 CT series is POSTed to the app's upload route
   (what the browser does), then the submit handler ingests it and writes the first slice's PNG.
2. UI overhead per turn: the same question through the app's ``/chat`` endpoint (gradio_client, streamed) and
   straight to the LLM server (same messages, greedy decoding, so the same tokens); overhead = app − LLM.
3. N concurrent browser-less sessions (gradio_client clients) asking questions in a loop for ``--duration`` s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from assistant import load_settings, open_runtime
from assistant.llm.engine import free_port

QUESTIONS = [
    "What does a ground-glass nodule on chest CT mean?",
    "List the findings to report on a normal PA chest radiograph.",
    "Explain the difference between atelectasis and consolidation.",
    "What is the normal size of the thoracic aorta?",
]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def upload_to_first_slice(url: str, app: Any, folder: Path, slices: int) -> dict[str, float]:
    """Seconds to POST the series to the app, and for the submit handler to ingest and render slice 1."""
    from tests.ui.synthetic import write_ct_series

    paths = write_ct_series(folder, slices=slices, size=512)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    started = time.perf_counter()
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in paths]
    response = httpx.post(f"{url}gradio_api/upload", files=files, timeout=300)
    response.raise_for_status()
    uploaded = response.json()
    sent = time.perf_counter()
    _, _, session, image, *_ = app.workspace.accept({"text": "", "files": uploaded}, [], None)
    done = time.perf_counter()
    if image is None or not Path(image).exists():
        raise RuntimeError("the first slice was not rendered")
    frames = session.study.series[0].frame_count if session.study else 0
    session.close()
    return {"upload_s": sent - started, "render_s": done - sent, "total_s": done - started, "mb": megabytes,
            "frames": frames}  # fmt: skip


def turn_overhead(url: str, runtime: Any, turns: int) -> dict[str, float]:
    """Median (app turn − direct LLM turn) over ``turns`` interleaved rounds, same question, greedy decoding."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    app_times, llm_times = [], []
    for i in range(turns + 1):  # the first round warms both paths and is not counted
        question = QUESTIONS[i % len(QUESTIONS)]
        started = time.perf_counter()
        answer = client.predict(question, api_name="/chat")
        app_s = time.perf_counter() - started
        messages = runtime.chat.messages(question)
        started = time.perf_counter()
        direct = "".join(runtime.client.stream_chat(messages, runtime.chat.options))
        llm_s = time.perf_counter() - started
        if not str(answer).strip() or not direct.strip():
            raise RuntimeError("an empty answer in the overhead benchmark")
        if i:
            app_times.append(app_s)
            llm_times.append(llm_s)
    client.close()
    overheads = [a - b for a, b in zip(app_times, llm_times, strict=True)]
    return {
        "app_s": statistics.median(app_times),
        "llm_s": statistics.median(llm_times),
        "overhead_s": statistics.median(overheads),
        "overhead_p95_s": percentile(overheads, 0.95),
    }


def concurrent_sessions(url: str, sessions: int, duration_s: float) -> dict[str, Any]:
    """``sessions`` clients, each asking one question after another until the time is up."""
    from gradio_client import Client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def worker(n: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as exc:  # a refused connection is an error of the run, not a crash of the bench
            with lock:
                errors.append(type(exc).__name__)
            return
        i = n
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                answer = client.predict(QUESTIONS[i % len(QUESTIONS)], api_name="/chat")
                ok = isinstance(answer, str) and answer.strip() and not answer.startswith("⚠️")
                with lock:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors.append(str(answer)[:80])
            except Exception as exc:
                with lock:
                    errors.append(type(exc).__name__)
            i += 1
        client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration_s + 600)
    wall = time.monotonic() - started
    return {
        "requests": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": errors,
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm-url", help="a running OpenAI-compatible server (default: start the embedded engine)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of concurrent load (default 120)")
    parser.add_argument("--sessions", type=int, default=10, help="concurrent browser-less sessions (default 10)")
    parser.add_argument("--slices", type=int, default=100, help="slices of the synthetic CT series (default 100)")
    parser.add_argument("--turns", type=int, default=5, help="timed chat turns for the overhead (default 5)")
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length (default 64)")
    parser.add_argument("--data-dir", type=Path, help="data dir (default: a temporary one; models are reused from it)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    from ui.app import create_app, prepare_temp

    with tempfile.TemporaryDirectory(prefix="radassist-bench-ui-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        settings = load_settings(
            data_dir=data_dir, llm_url=args.llm_url, llm_max_tokens=args.max_tokens, llm_temperature=0.0,
        )  # fmt: skip
        progress = lambda m: print(f"bench_ui: {m}", file=sys.stderr, flush=True)  # noqa: E731
        with open_runtime(settings, progress=progress) as runtime:
            prepare_temp(runtime)
            app = create_app(runtime)
            app.queue(default_concurrency_limit=8)  # as ui.app.launch queues it
            port = free_port()
            app.launch(server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True, quiet=True)
            url = f"http://127.0.0.1:{port}/"
            try:
                progress(f"upload of a {args.slices}-slice CT series")
                upload = upload_to_first_slice(url, app, Path(tmp) / "ct", args.slices)
                progress("UI overhead per chat turn")
                overhead = turn_overhead(url, runtime, args.turns)
                progress(f"{args.sessions} concurrent sessions for {args.duration:.0f} s")
                load = concurrent_sessions(url, args.sessions, args.duration)
            finally:
                app.close()
            model = runtime.model_id
            engine = "embedded engine" if runtime.engine else f"server at {args.llm_url}"

    errors = load["errors"]
    error_text = "none" if not errors else f"{len(errors)} ({', '.join(sorted(set(errors))[:3])})"
    body = "\n".join(
        [
            f"Model {model} ({engine}), answers up to {args.max_tokens} tokens, greedy. App in-process, queued as "
            "`radassist serve` queues it (8 concurrent events).",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| upload of a {upload['frames']}-slice 512×512 CT series ({upload['mb']:.0f} MB) → first slice rendered "
            f"| {upload['total_s']:.2f} s |",
            f"| … of which HTTP upload | {upload['upload_s']:.2f} s |",
            f"| … of which ingest + render (submit handler) | {upload['render_s']:.2f} s |",
            f"| chat turn through the app (median of {args.turns}) | {overhead['app_s']:.3f} s |",
            f"| same turn straight to the LLM | {overhead['llm_s']:.3f} s |",
            f"| **UI overhead per turn** (median; p95) | {overhead['overhead_s'] * 1000:.0f} ms; "
            f"{overhead['overhead_p95_s'] * 1000:.0f} ms |",
            f"| {args.sessions} concurrent API sessions for {args.duration:.0f} s: requests | {load['requests']} |",
            f"| … latency p50 / p95 | {load['p50_s']:.2f} s / {load['p95_s']:.2f} s |",
            f"| … errors | {error_text} |",
        ]
    )
    sys.stdout.write(body + "\n")
    if not args.no_write:
        from bench.report import write_section

        command = "python -m bench.bench_ui" + (f" --duration {args.duration:g}" if args.duration != 120 else "")
        write_section("ui", "Workspace (Gradio app)", command, body)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
