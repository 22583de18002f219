"""vLLM (the embedded engine) vs plain ``transformers.generate`` on the same default model and prompts.

Reports time to first token and aggregate tokens/s at 1 and 8 concurrent requests (ratio per row), and the
app's cold start (``radassist serve`` → web app answering) with the memory of its process tree.

    .venv/bin/python -m bench.bench_llm [--tokens 128] [--data-dir DIR] [--no-write]

Every answer has the same length (``ignore_eos`` in vLLM, ``min_new_tokens`` in transformers), so tokens/s
compare like with like. transformers at 8 gets its best case: one left-padded batch of 8.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from assistant.llm.client import ChatMessage, GenerationOptions, OpenAIChatClient, Role
from assistant.llm.engine import free_port
from assistant.llm.model_files import DEFAULT_MODEL_NAME, find_default_gguf, prepare_model
from assistant.runtime import create_engine
from assistant.settings import load_settings
from bench.report import write_section

REPO = Path(__file__).resolve().parent.parent

PROMPTS = [
    "What does a ground-glass nodule on chest CT mean?",
    "List the findings to report on a normal PA chest radiograph.",
    "Explain the difference between atelectasis and consolidation.",
    "How is a pneumothorax measured on a chest X-ray?",
    "What is the silhouette sign?",
    "Describe a Kerley B line.",
    "What are signs of cardiomegaly on a frontal chest film?",
    "When is a pleural effusion called large?",
]


def bench_vllm(url: str, tokens: int) -> dict[str, float]:
    client = OpenAIChatClient(url, timeout_s=600)
    options = GenerationOptions(max_tokens=tokens, temperature=0.0, extra={"ignore_eos": True})

    def one(prompt: str, out: list[tuple[float, float, int]]) -> None:
        start = time.perf_counter()
        first, count = None, 0
        for _piece in client.stream_chat([ChatMessage(Role.USER, prompt)], options):
            count += 1
            if first is None:
                first = time.perf_counter() - start
        out.append((first or 0.0, time.perf_counter() - start, count))

    one(PROMPTS[0], [])  # warm-up
    single: list[tuple[float, float, int]] = []
    for prompt in PROMPTS[:3]:
        one(prompt, single)
    results: list[tuple[float, float, int]] = []
    threads = [threading.Thread(target=one, args=(p, results)) for p in PROMPTS]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall8 = time.perf_counter() - start
    client.close()
    return {
        "ttft1": statistics.median(r[0] for r in single),
        "tps1": statistics.median(tokens / r[1] for r in single),
        "ttft8": statistics.median(r[0] for r in results),
        "tps8": tokens * len(PROMPTS) / wall8,
    }


def bench_transformers(model_dir: Path, tokens: int) -> dict[str, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    texts: list[str] = [
        str(tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True))
        for p in PROMPTS
    ]

    def generate(batch: list[str], n: int) -> float:
        enc = tok(batch, return_tensors="pt", padding=True)
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id
            )
        return time.perf_counter() - start

    generate(texts[:1], 4)  # warm-up
    ttft1 = statistics.median(generate([t], 1) for t in texts[:3])
    tps1 = statistics.median(tokens / generate([t], tokens) for t in texts[:3])
    ttft8 = generate(texts, 1)
    tps8 = tokens * len(texts) / generate(texts, tokens)
    return {"ttft1": ttft1, "tps1": tps1, "ttft8": ttft8, "tps8": tps8}


def tree_rss_mb(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def bench_cold_start(data_dir: Path) -> dict[str, float]:
    """``radassist serve`` with the model already converted: command → web app answering, and memory."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADASSIST_")}
    env.update({"RADASSIST_DATA_DIR": str(data_dir), "RADASSIST_PORT": str(port)})
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "radassist"), "serve"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    ready = None
    try:
        while time.perf_counter() - start < 600 and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                    ready = time.perf_counter() - start
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        time.sleep(2.0)
        rss = tree_rss_mb(proc.pid)
    finally:
        proc.send_signal(2)
        proc.wait(timeout=60)
    if ready is None:
        raise RuntimeError("radassist serve did not come up")
    return {"cold_start_s": ready, "rss_mb": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per answer")
    parser.add_argument("--data-dir", type=Path, help="where the default model is converted (default: a temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update docs/benchmarks.md")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="radassist-bench-"))
    t0 = time.perf_counter()
    model_dir = prepare_model(find_default_gguf(), data_dir / "models" / DEFAULT_MODEL_NAME)
    convert_s = time.perf_counter() - t0

    settings = load_settings(env={}, data_dir=data_dir)
    engine = create_engine(settings)
    t0 = time.perf_counter()
    url = engine.start()
    engine_start_s = time.perf_counter() - t0
    try:
        v = bench_vllm(url, args.tokens)
        engine_rss = tree_rss_mb(engine.pid or 0)
    finally:
        engine.stop()
    t = bench_transformers(model_dir, args.tokens)
    cold = bench_cold_start(data_dir)

    rows = [
        ("time to first token, 1 request (s)", t["ttft1"], v["ttft1"], t["ttft1"] / v["ttft1"]),
        ("tokens/s, 1 request", t["tps1"], v["tps1"], v["tps1"] / t["tps1"]),
        ("time to first token, 8 concurrent (s)", t["ttft8"], v["ttft8"], t["ttft8"] / v["ttft8"]),
        ("aggregate tokens/s, 8 concurrent", t["tps8"], v["tps8"], v["tps8"] / t["tps8"]),
    ]
    lines = [
        f"Model: {DEFAULT_MODEL_NAME} (bf16), {args.tokens} tokens per answer, greedy, same prompts. "
        "Ratio > 1 means vLLM is better (faster first token, more tokens/s).",
        "",
        "| measure | transformers.generate | vLLM (embedded) | ratio |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {a:.3f} | {b:.3f} | {r:.2f}× |" for name, a, b, r in rows],
        "",
        "| start-up | value |",
        "|---|---:|",
        f"| default model conversion, first run only (s) | {convert_s:.1f} |",
        f"| embedded engine start to /health (s) | {engine_start_s:.1f} |",
        f"| `radassist serve` command → web app answering (s) | {cold['cold_start_s']:.1f} |",
        f"| memory of the app + engine process tree (MiB RSS) | {cold['rss_mb']:.0f} |",
        f"| memory of the engine process tree alone (MiB RSS) | {engine_rss:.0f} |",
        "",
        "Goal: vLLM ≥ 3× transformers' aggregate throughput at 8 concurrent requests.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("llm", "LLM engine: vLLM vs transformers (issue 2)", "python -m bench.bench_llm", body)
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
