"""Retrieval benchmark: query latency, build time/memory and recall@10 of exact, HNSW and IVF-PQ indexes.

Synthetic 384-d chunks (clustered unit vectors, like sentence embeddings) with synthetic text for BM25.
End-to-end latency is ``HybridIndex.search``: real all-MiniLM-L6-v2 query embedding + FAISS + BM25 + RRF.
A NumPy brute-force search runs in the same process as the baseline and the recall ground truth.
Also (``--eval``) recall@k / MRR of BM25, dense and hybrid on tests/data/kb_queries.jsonl.

    python -m bench.bench_retrieval --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.report import write_section
from retrieval import Chunk, HybridIndex, IndexConfig, KnowledgeBase, SentenceTransformerEmbedder
from retrieval.evaluation import evaluate, read_queries

REPO = Path(__file__).resolve().parent.parent
DIM = 384
K = 10


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic_vectors(n: int, rng: np.random.Generator, n_clusters: int = 1000) -> np.ndarray:
    """(n, DIM) unit vectors around random cluster centres (a rough stand-in for text embeddings)."""
    centres = rng.standard_normal((n_clusters, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        labels = rng.integers(0, n_clusters, size=m)
        block = centres[labels] + 0.6 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def synthetic_texts(n: int, rng: np.random.Generator, vocab: int = 30_000, length: int = 40) -> list[str]:
    """Zipf-distributed words, so BM25 postings have realistic lengths."""
    words = np.minimum(rng.zipf(1.2, size=(n, length)), vocab)
    return [" ".join(f"w{w}" for w in row) for row in words]


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    ms = sorted(s * 1000 for s in samples_s)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_size(n: int, kinds: list[str], n_queries: int, embedder: SentenceTransformerEmbedder,
               rng: np.random.Generator) -> list[list[str]]:
    """Rows of the results table for one corpus size."""
    print(f"[{n:,}] generating data", file=sys.stderr)
    vectors = synthetic_vectors(n, rng)
    texts = synthetic_texts(n, rng)
    chunks = [Chunk(f"c{i}", "synthetic", "", f"s{i}", t) for i, t in enumerate(texts)]
    picks = rng.integers(0, n, size=n_queries)
    queries = vectors[picks] + 0.3 * rng.standard_normal((n_queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    query_texts = [" ".join(texts[i].split()[:6]) for i in picks]

    # Baseline and ground truth: NumPy brute force (one query at a time, as the assistant asks).
    truth = np.empty((n_queries, K), dtype=np.int64)
    np_times = []
    for qi in range(n_queries):
        t = time.perf_counter()
        sims = vectors @ queries[qi]
        top = np.argpartition(-sims, K)[:K]
        top = top[np.argsort(-sims[top])]
        np_times.append(time.perf_counter() - t)
        truth[qi] = top
    np50, np95 = percentiles(np_times)
    rows = [[f"{n:,}", "numpy brute force", "-", "-", f"{np50:.2f}", f"{np95:.2f}", "-", "-", "-", "-", "1.000"]]
    embed_times = timed(lambda: embedder.embed(["solid nodule 7 mm in a smoker, follow-up?"]), 30)

    for spec in kinds:
        kind, _, ef = spec.partition("@")
        gc.collect()
        before = rss_mib()
        config = IndexConfig(kind=kind, hnsw_ef_search=int(ef)) if ef else IndexConfig(kind=kind)
        t = time.perf_counter()
        index = HybridIndex(chunks, vectors, embedder, config=config)
        build_s = time.perf_counter() - t
        mem = rss_mib() - before
        dense_times, found = [], 0
        for qi in range(n_queries):
            q = queries[qi:qi + 1]
            t = time.perf_counter()
            rows_found = index.dense_rows(q, K)
            dense_times.append(time.perf_counter() - t)
            found += len(set(rows_found) & set(truth[qi].tolist()))
        recall = found / (n_queries * K)
        fuse, e2e = [], []
        for qi in range(min(n_queries, 100)):
            t = time.perf_counter()
            index.search(query_texts[qi], 5, query_vector=queries[qi])
            fuse.append(time.perf_counter() - t)
            t = time.perf_counter()
            index.search(query_texts[qi], 5)
            e2e.append(time.perf_counter() - t)
        d50, d95 = percentiles(dense_times)
        f50, f95 = percentiles(fuse)
        e50, e95 = percentiles(e2e)
        label = index.kind + (f" (efSearch={ef})" if ef else "") + ("" if index.kind == kind else f" ({kind}: too few)")
        rows.append([f"{n:,}", label, f"{build_s:.1f}", f"{mem:,.0f}", f"{d50:.2f}", f"{d95:.2f}",
                     f"{f50:.2f}", f"{f95:.2f}", f"{e50:.1f}", f"{e95:.1f}", f"{recall:.3f}"])
        print(f"[{n:,}] {label}: build {build_s:.1f}s, dense p50 {d50:.2f} ms, search+fuse p50 {f50:.2f} ms, "
              f"e2e p50 {e50:.1f} ms, recall@10 {recall:.3f}", file=sys.stderr)
        del index
    q50, q95 = percentiles(embed_times)
    rows.append([f"{n:,}", "(MiniLM query embedding alone)", "-", "-", "-", "-", "-", "-", f"{q50:.1f}", f"{q95:.1f}",
                 "-"])
    return rows


def run_eval(embedder: SentenceTransformerEmbedder) -> str:
    """Markdown table of recall@1/5/10 and MRR per mode on the labelled knowledge-base questions."""
    queries = read_queries(REPO / "tests" / "data" / "kb_queries.jsonl")
    kb = KnowledgeBase.load_default()
    index = HybridIndex.build(kb.chunks(), embedder)
    result = evaluate(index, queries, ks=(1, 5, 10))
    lines = [
        f"{len(queries)} radiologist-style questions, each labelled with the one section that answers it, over "
        f"{len(kb)} sections ({len(index)} chunks) of the built-in knowledge base; embedder {embedder.model_id}.",
        "",
        "| Retriever | recall@1 | recall@5 | recall@10 | MRR |",
        "|---|---|---|---|---|",
    ]
    names = {"bm25": "BM25 alone", "dense": "dense alone (FAISS exact)", "hybrid": "hybrid (RRF, k=60)"}
    for mode in ("bm25", "dense", "hybrid"):
        r = result[mode]
        lines.append(f"| {names[mode]} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | "
                     f"{r['mrr']:.3f} |")
    lines += ["", "Goal: hybrid recall@5 ≥ 0.95."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated corpus sizes (1000000 is slow)")
    parser.add_argument("--kinds", default="flat,hnsw,hnsw@256,ivfpq",
                        help="index kinds to compare; hnsw@EF sets efSearch")
    parser.add_argument("--queries", type=int, default=200, help="queries per size")
    parser.add_argument("--no-eval", action="store_true", help="skip the knowledge-base quality table")
    parser.add_argument("--no-index-bench", action="store_true", help="only the knowledge-base quality table")
    parser.add_argument("--no-write", action="store_true", help="print, do not write docs/benchmarks.md")
    parser.add_argument("--section", default="retrieval-index",
                        help="docs/benchmarks.md section for the index table (keeps other runs' tables)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    command = "python -m bench.bench_retrieval " + " ".join(argv if argv is not None else sys.argv[1:])
    if not args.no_index_bench:
        rng = np.random.default_rng(0)
        rows: list[list[str]] = []
        for n in [int(s) for s in args.sizes.split(",") if s]:
            rows += bench_size(n, args.kinds.split(","), args.queries, embedder, rng)
        header = ("| chunks | index | build s | build MiB | dense p50 ms | dense p95 ms | search+fuse p50 ms | "
                  "search+fuse p95 ms | end-to-end p50 ms | end-to-end p95 ms | recall@10 vs exact |\n"
                  "|---|---|---|---|---|---|---|---|---|---|---|")
        body = "\n".join([
            "Synthetic 384-d unit vectors in 1,000 clusters, Zipf-worded text for BM25; one query at a time.",
            "Dense = FAISS (or NumPy) search of the top 10. Search+fuse = `HybridIndex.search` with the query",
            "already embedded: FAISS top 50 + BM25 top 50 + RRF + hits. End-to-end adds the MiniLM query",
            "embedding. Build = FAISS + BM25 postings (vectors given). The machine is shared: compare rows of",
            "one run, and read end-to-end against the embedding-alone row.",
            "HNSW M=32, efConstruction=80, efSearch=96; IVF-PQ nlist≈4√n, nprobe=32, PQ48x8, exact re-rank of",
            "4×k candidates. Build MiB is the process RSS growth (approximate).",
            "",
            header,
            *["| " + " | ".join(r) + " |" for r in rows],
        ])
        print(body)
        if not args.no_write:
            title = "Retrieval: index latency, build and recall"
            if args.section != "retrieval-index":
                title += f" ({args.sizes} chunks)"
            write_section(args.section, title, command, body)
    if not args.no_eval:
        text = run_eval(embedder)
        print(text)
        if not args.no_write:
            write_section("retrieval-eval", "Retrieval quality on the knowledge base", command, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
