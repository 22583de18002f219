"""Load test of the app tier: N concurrent simulated readers against two `radassist serve` replicas on one
PostgreSQL behind a real nginx (ip_hash), compared with one replica on its SQLite file, in the same run.

The LLM is an OpenAI-protocol stub at the transport (tests/support/openai_stub.py), so the numbers are the app
tier's (Gradio's queue, the conversation engine, the audit writes to the database, nginx), not a model's.

Each reader loops for ``--duration`` s over: a text question (the ``/chat`` API, streamed) and a guideline
lookup (the ``calc_fleischner`` API: the Fleischner 2017 category computed in code). Readers talk Gradio's REST
API (``POST /gradio_api/call/NAME`` then ``GET …/EVENT_ID``) from their own loopback address (127.0.N.1: nginx's
ip_hash keys on the first three octets), as readers on separate workstations would, so ip_hash spreads them.

    python -m bench.bench_replicas [--readers 10] [--duration 60] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from assistant.llm.engine import free_port

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = (
    "What are the CT signs of a tension pneumothorax?",
    "How is a simple renal cyst distinguished from a complex one on ultrasound?",
    "Which MRI sequences show an acute infarct best?",
)
# calc_fleischner's form, in the order of ui.calculators.fields("fleischner"): a solid single 7 mm nodule, low risk.
FLEISCHNER = ["solid", "single", "7", "", "", "", "low", "", "", False, False, False]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def call(client: httpx.Client, base: str, api: str, data: list[Any], upstreams: dict[str, int] | None = None) -> str:
    """One Gradio API call through the REST protocol; the final output, or an error raised. ``upstreams`` counts
    the replica that took the call (nginx's X-Radassist-Upstream header, added by the test's nginx config)."""
    started = client.post(f"{base}gradio_api/call/{api}", json={"data": data})
    started.raise_for_status()
    if upstreams is not None:
        upstream = started.headers.get("x-radassist-upstream", "direct").split(",")[-1].strip()
        upstreams[upstream] = upstreams.get(upstream, 0) + 1
    event_id = started.json()["event_id"]
    event, payload = "", ""
    with client.stream("GET", f"{base}gradio_api/call/{api}/{event_id}") as stream:
        stream.raise_for_status()
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                payload = line[5:].strip()
                if event in ("complete", "error"):
                    break
    if event != "complete":
        raise RuntimeError(f"{api}: {event or 'no event'} {payload[:80]}")
    output = json.loads(payload)
    return str(output[0] if isinstance(output, list) and output else output)


def load(url: str, readers: int, duration_s: float) -> dict[str, Any]:
    """``readers`` clients, each from its own loopback address, alternating a question and a guideline lookup."""
    latencies: dict[str, list[float]] = {"chat": [], "calc": []}
    errors: list[str] = []
    upstreams: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def reader(n: int) -> None:
        address = f"127.0.{n + 1}.1"
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(transport=transport, timeout=120.0, trust_env=False) as client:
            i = n
            while time.monotonic() < deadline:
                kind = "chat" if i % 2 == 0 else "calc"
                started = time.perf_counter()
                try:
                    if kind == "chat":
                        out = call(client, url, "chat", [QUESTIONS[i % len(QUESTIONS)]], upstreams)
                        ok = bool(out.strip()) and not out.startswith("⚠️")
                    else:
                        out = call(client, url, "calc_fleischner", FLEISCHNER, upstreams)
                        ok = "month" in out.lower() or "follow" in out.lower() or "ct" in out.lower()
                    with lock:
                        if ok:
                            latencies[kind].append(time.perf_counter() - started)
                        else:
                            errors.append(f"{kind}: {out[:60]}")
                except Exception as exc:  # a refused or failed request counts as an error of the run
                    with lock:
                        errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:60]}")
                i += 1

    started = time.monotonic()
    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration_s + 300)
    wall = time.monotonic() - started
    every = latencies["chat"] + latencies["calc"]
    return {
        "requests": len(every) + len(errors),
        "ok": len(every),
        "errors": errors,
        "rps": len(every) / wall,
        "p50_s": percentile(every, 0.5),
        "p95_s": percentile(every, 0.95),
        "chat_p50_s": percentile(latencies["chat"], 0.5),
        "calc_p50_s": percentile(latencies["calc"], 0.5),
        "wall_s": wall,
        "split": "/".join(str(n) for _, n in sorted(upstreams.items())),
    }


@contextmanager
def one_replica_sqlite(root: Path, llm_url: str, radassist: Path) -> Iterator[tuple[str, str]]:
    from tests.e2e.test_workspace_browser import serve

    data = root / "single" / "data"
    data.mkdir(parents=True)
    with serve(radassist, data, free_port(), "--llm-url", llm_url, name="bench-single") as url:
        yield url, "1 replica, SQLite file (direct)"


@contextmanager
def two_replicas_postgres(root: Path, llm_url: str, radassist: Path) -> Iterator[tuple[str, str]]:
    from tests.e2e.test_replicas_behind_nginx import nginx
    from tests.e2e.test_workspace_browser import serve
    from tests.support.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database("bench_replicas")
        root.mkdir(parents=True, exist_ok=True)
        salt = root / "deid_salt"
        salt.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
        salt.chmod(0o600)
        shared = {
            "RADASSIST_DATABASE_URL": url,
            "RADASSIST_BROWSER_SECRET": secrets.token_hex(32),
            "RADASSIST_DEID_SALT_FILE": str(salt),
        }
        with ExitStack() as stack:
            ports = []
            for name in ("a", "b"):
                data = root / f"replica-{name}" / "data"
                data.mkdir(parents=True)
                port = free_port()
                stack.enter_context(
                    serve(radassist, data, port, "--llm-url", llm_url, name=f"bench-replica-{name}", settings=shared)
                )
                ports.append(port)
            front = stack.enter_context(nginx(root / "nginx", free_port(), ports))
            yield front, "2 replicas, PostgreSQL 15, nginx ip_hash"
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=10, help="concurrent simulated readers (default 10)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per configuration (default 60)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.support.openai_stub import OpenAIStub

    radassist = Path(sys.executable).parent / "radassist"
    progress = lambda m: print(f"bench_replicas: {m}", file=sys.stderr, flush=True)  # noqa: E731
    results: list[tuple[str, dict[str, Any]]] = []
    answer = "No pneumothorax. The heart size is normal. No pleural effusion. " * 3
    with tempfile.TemporaryDirectory(prefix="radassist-bench-replicas-") as tmp, OpenAIStub(answer) as llm:
        for setup in (one_replica_sqlite, two_replicas_postgres):
            root = Path(tmp) / setup.__name__
            progress(f"starting: {setup.__name__}")
            with setup(root, llm.url, radassist) as (url, label):
                call(httpx.Client(timeout=120.0, trust_env=False), url, "chat", ["warm-up"])
                progress(f"{label}: {args.readers} readers for {args.duration:.0f} s")
                results.append((label, load(url, args.readers, args.duration)))

    base = results[0][1]
    rows = [
        "| configuration | requests | req/s | p50 (s) | p95 (s) | question p50 (s) | lookup p50 (s) | errors "
        "| req/s vs 1 replica | calls per replica |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for label, r in results:
        errs = "0" if not r["errors"] else f"{len(r['errors'])} ({'; '.join(sorted(set(r['errors']))[:2])})"
        rows.append(
            f"| {label} | {r['requests']} | {r['rps']:.1f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} "
            f"| {r['chat_p50_s']:.2f} | {r['calc_p50_s']:.2f} | {errs} | {r['rps'] / base['rps']:.2f} | {r['split']} |"
        )
    body = "\n".join(
        [
            f"{args.readers} simulated readers for {args.duration:.0f} s per configuration, each alternating a text "
            "question (`/chat`, streamed) and a guideline lookup (`calc_fleischner`), each reader from its own "
            "loopback address so nginx's ip_hash spreads them. LLM: an OpenAI-protocol stub at the transport "
            "(instant answers), so this is the app tier alone: Gradio's queue, the conversation engine, audit rows "
            "in the database, nginx. All processes share the machine's cores with the load generator.",
            "",
            *rows,
            "",
            f"Median of the whole run's requests; {statistics.mean(r['wall_s'] for _, r in results):.0f} s wall per "
            "configuration. One replica is one Python process whose request handling runs on about one core (the "
            "GIL), so where cores are free a second replica about doubles the throughput: the ratio shows the app "
            "tier scaling out on a shared database, not SQLite against PostgreSQL alone. Dictation is not in the mix: "
            "the web app has no public API for it (it is driven through "
            "the browser in tests/e2e/test_replicas_behind_nginx.py).",
        ]
    )
    sys.stdout.write(body + "\n")
    if not args.no_write:
        from bench.report import write_section

        command = "python -m bench.bench_replicas" + (f" --duration {args.duration:g}" if args.duration != 60 else "")
        write_section("replicas", "App replicas: 2 × PostgreSQL behind nginx vs 1 × SQLite (issue 18)", command, body)
    return 0 if all(not r["errors"] for _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
