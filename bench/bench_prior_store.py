"""Prior reports in the database (per-patient FAISS + BM25 built per query) against the old single in-memory
prior-report index (one FAISS + BM25 over every patient, filtered by key), in the same run.

Run: ``.venv/bin/python -m bench.bench_prior_store [--patients N] [--queries Q] [--postgres]``; writes the
"prior-store" section of docs/benchmarks.md. ``--postgres`` also measures a throwaway PostgreSQL 15 cluster
(Debian's server binaries, as the tests start it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "nodule mass effusion pleural consolidation atelectasis lobe upper lower right left solid ground glass "
    "spiculated stable increased decreased unchanged mm cardiomegaly edema pneumothorax fracture lymph node "
    "hilar mediastinal opacity calcified granuloma emphysema bronchiectasis scarring"
).split()
QUESTIONS = ("Did the right upper lobe nodule grow?", "Any pleural effusion before?", "Prior lymph nodes size?")


def _reports(patients: int, per_patient: int, seed: int = 7) -> list:  # type: ignore[type-arg]
    import retrieval

    rng = random.Random(seed)
    out = []
    for p in range(patients):
        key = f"P-{p:020x}"
        for r in range(per_patient):
            def sentence() -> str:
                return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))) + "."

            sections = {"indication": sentence(), "findings": " ".join(sentence() for _ in range(3)),
                        "impression": sentence()}  # fmt: skip
            day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randint(0, 3650))
            out.append(retrieval.PriorReport(f"A-{p:06d}-{r}", key, day, sections, "CT"))
    return out


def _latencies(search: Callable[[str, str], object], keys: list[str], queries: int) -> list[float]:
    rng = random.Random(11)
    times = []
    for i in range(queries):
        key, question = rng.choice(keys), QUESTIONS[i % len(QUESTIONS)]
        start = time.perf_counter()
        search(question, key)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _row(name: str, times: list[float], base: float) -> str:
    p50 = statistics.median(times)
    p95 = sorted(times)[int(0.95 * (len(times) - 1))]
    return f"| {name} | {p50:.2f} | {p95:.2f} | {p50 / base:.2f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--reports", type=int, default=5, help="reports per patient")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import retrieval
    from assistant.priors.store import PriorReportStore

    embedder = retrieval.HashingEmbedder(384)  # MiniLM's dimension; model-free, so the query embedding is not timed
    reports = _reports(args.patients, args.reports)
    keys = sorted({r.patient_key for r in reports})
    rows = []
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        index = retrieval.PriorReportIndex.build(reports, embedder)
        chunks = len(index)
        notes.append(f"baseline build (embed + FAISS + BM25 of every chunk): {time.perf_counter() - started:.1f} s")
        base = _latencies(lambda q, k: index.search(q, k, 3), keys, args.queries)
        rows.append(_row("baseline: one in-memory index, filtered by patient", base, statistics.median(base)))
        targets: list[tuple[str, Path | str]] = [("SQLite file", Path(tmp) / "db.sqlite3")]
        cluster = None
        if args.postgres:
            from tests.support.postgres import PostgresCluster

            cluster = PostgresCluster().start()
            targets.append(("PostgreSQL 15 (loopback)", cluster.create_database("bench")))
        try:
            for name, target in targets:
                with PriorReportStore(target) as store:
                    started = time.perf_counter()
                    store.add(reports, embedder)
                    took = time.perf_counter() - started
                    notes.append(f"{name}: import of {chunks} sections {took:.1f} s ({chunks / took:.0f}/s)")
                    if isinstance(target, Path):
                        size = target.stat().st_size
                        notes.append(f"{name}: {size / 2**20:.0f} MiB, {size / chunks / 1024:.2f} KiB per section "
                                     f"({size / len(reports) / 1024:.2f} KiB per report, 384-d float32 vectors)")
                    times = _latencies(lambda q, k, s=store: s.search(q, k, embedder, 3), keys, args.queries)
                    rows.append(_row(f"database: {name}, one patient read + FAISS/BM25 built per query", times,
                                     statistics.median(base)))
        finally:
            if cluster is not None:
                cluster.stop()
    body = "\n".join([
        f"{len(reports):,} reports of {len(keys):,} patients ({args.reports} each), {chunks:,} sections; "
        f"{args.queries} questions, each about one random patient (top 3). 384-d hashing embedder, so the query "
        "embedding (the same in both) costs nothing here.",
        "",
        "| | p50 (ms) | p95 (ms) | p50 ratio |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        *[f"- {n}" for n in notes],
        "",
        "A report imported by one replica is in the next question's read on every replica: nothing is rebuilt.",
    ])  # fmt: skip
    print(body)
    if not args.no_write:
        from bench.report import write_section

        command = "python -m bench.bench_prior_store" + (" --postgres" if args.postgres else "")
        write_section("prior-store", "Prior reports in the database: per-patient search (issue 18)", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
