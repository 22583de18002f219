"""Vision benchmark: encoder throughput, the vision cost of a follow-up turn, and first-token latency with an image.

Run: ``.venv/bin/python -m bench.bench_vision [--images N] [--runs N] [--no-engine]``; writes the "vision"
section of docs/benchmarks.md.

- Encoder: open_clip ViT-B-16 at 224 px (LLaVA-Rad/BiomedCLIP-sized tower, random weights: speed does not depend
  on the weights) on real VQA-RAD images, batched (16) vs one image at a time.
- Follow-up turn: vision time of a turn that re-sends an image already attached (cache hit), with embeddings the
  size of LLaVA-v1.5-7B's (576 tokens x 4096, bf16), against the goal of < 5 ms.
- End to end: time to the first streamed token from a real vLLM serving a converted tiny LLaVA (embeddings-only
  mode), image question vs the same question without an image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VQA_IMAGES = ROOT / ".." / "shared" / "data" / "vqa_rad" / "images"
SALT = b"benchmark-salt-not-secret-000000"
QUESTION = "Describe the findings."


def _renderings(n: int) -> list[np.ndarray]:
    from assistant.imaging.ingest import load_study

    paths = sorted(VQA_IMAGES.glob("*.jpg"))[:n]
    studies = [load_study([p], SALT).study for p in paths]
    return [s.images[0].rendering for s in studies if s is not None]


def bench_encoder(renderings: list[np.ndarray]) -> dict[str, float]:

    from assistant.vision.encoder import EncoderSpec, ImageEncoder

    encoder = ImageEncoder(EncoderSpec("ViT-B-16"))
    encoder.load()
    encoder.encode(renderings[:2])  # warm-up
    start = time.perf_counter()
    encoder.encode(renderings, batch_size=16)
    batched = len(renderings) / (time.perf_counter() - start)
    start = time.perf_counter()
    for r in renderings:
        encoder.encode([r])
    single = len(renderings) / (time.perf_counter() - start)
    return {"batched": batched, "single": single}


def bench_follow_up(runs: int) -> dict[str, float]:
    """ms of vision work for a follow-up turn whose image is cached (LLaVA-7B-sized embeddings)."""
    import torch

    from assistant.vision.encoder import EncoderSpec, ImageEncoder
    from assistant.vision.profiles import BUILTIN_PROFILES
    from assistant.vision.projector import projector_from_state_dict
    from assistant.vision.service import ImageRef, ImageTurn, VisionService

    g = torch.Generator().manual_seed(0)
    projector = projector_from_state_dict({
        "0.weight": torch.randn(4096, 768, generator=g) * 0.02, "0.bias": torch.zeros(4096),
        "2.weight": torch.randn(4096, 4096, generator=g) * 0.02, "2.bias": torch.zeros(4096),
    })  # fmt: skip
    encoder = ImageEncoder(EncoderSpec("ViT-B-16", force_image_size=336))  # 21 x 21 = 441 tokens
    service = VisionService(BUILTIN_PROFILES["llava-embeds"], encoder=encoder, projector=projector)
    picture = np.random.default_rng(0).integers(0, 256, (2048, 2048), dtype=np.uint8)
    ref = ImageRef(picture, "CR chest")
    start = time.perf_counter()
    service.messages("first", [ref])
    cold = (time.perf_counter() - start) * 1000
    history = [ImageTurn("first", "answer", (ref,))]
    warm, rehash = [], []
    for _ in range(runs):
        start = time.perf_counter()
        service.messages("follow-up", [], history=history)
        warm.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        service.messages("follow-up", [], history=[ImageTurn("first", "answer", (ImageRef(picture.copy()),))])
        rehash.append((time.perf_counter() - start) * 1000)
    return {"cold_ms": cold, "warm_ms": statistics.median(warm), "rehash_ms": statistics.median(rehash),
            "tokens": float(service.embed([ref])[0].tokens)}  # fmt: skip


def _tiny_llava(folder: Path) -> Path:
    """A tiny original-layout LLaVA (random Llama, SmolLM2 tokenizer, ViT-B-16-wide projector), converted."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from assistant.llm.model_files import DEFAULT_MODEL_NAME, find_default_gguf, prepare_model
    from assistant.vision.convert import convert_llava_checkpoint

    tok_dir = prepare_model(find_default_gguf(), folder / "models" / DEFAULT_MODEL_NAME)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in LlamaForCausalLM(config).state_dict().items()}
    g = torch.Generator().manual_seed(1)
    state.update({
        "model.mm_projector.0.weight": torch.randn(128, 768, generator=g).to(torch.bfloat16) * 0.05,
        "model.mm_projector.0.bias": torch.zeros(128, dtype=torch.bfloat16),
        "model.mm_projector.2.weight": torch.randn(128, 128, generator=g).to(torch.bfloat16) * 0.05,
        "model.mm_projector.2.bias": torch.zeros(128, dtype=torch.bfloat16),
    })  # fmt: skip
    src = folder / "src"
    src.mkdir()
    save_file(state, str(src / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(src)
    cfg = config.to_dict() | {
        "model_type": "llava_llama", "mm_projector_type": "mlp2x_gelu", "mm_hidden_size": 768,
        "mm_vision_tower": "openai/clip-vit-base-patch16", "mm_vision_select_layer": -2, "image_aspect_ratio": "pad",
    }  # fmt: skip
    (src / "config.json").write_text(json.dumps(cfg))
    from assistant.vision.encoder import EncoderSpec

    spec = EncoderSpec("ViT-B-16", select_layer=-2)  # random weights: the hub's OpenAI weights are not here
    return convert_llava_checkpoint(src, folder / "tiny-llava", encoder=spec).model_dir


def _first_token_s(client: Any, messages: list[Any]) -> float:
    from assistant.llm.client import GenerationOptions

    start = time.perf_counter()
    stream = client.stream_chat(messages, GenerationOptions(max_tokens=4, temperature=0.0))
    next(iter(stream))
    elapsed = time.perf_counter() - start
    for _ in stream:
        pass
    return elapsed


def bench_end_to_end(renderings: list[np.ndarray], runs: int) -> dict[str, float]:
    from assistant.llm.client import ChatMessage, OpenAIChatClient, Role
    from assistant.llm.engine import EmbeddedEngine, EngineSpec
    from assistant.vision.profiles import BUILTIN_PROFILES, load_bundle
    from assistant.vision.service import VisionService

    with tempfile.TemporaryDirectory() as tmp:
        folder = _tiny_llava(Path(tmp))
        spec = EngineSpec(model=str(folder), served_name="tiny-llava", max_model_len=1024,
                          kv_cache_bytes=64 << 20,
                          extra_args=("--enable-mm-embeds", "--limit-mm-per-prompt", '{"image": 0}'))  # fmt: skip
        service = VisionService(BUILTIN_PROFILES["llava-embeds"], bundle=load_bundle(folder))
        service.load()
        with EmbeddedEngine(spec, Path(tmp) / "logs", Path(tmp) / "cache") as engine, OpenAIChatClient(
            engine.url, model="tiny-llava", timeout_s=120
        ) as client:
            text_only = [ChatMessage(Role.USER, QUESTION)]
            _first_token_s(client, text_only)  # warm-up
            plain, cached, cold = [], [], []
            for i in range(runs):
                plain.append(_first_token_s(client, text_only))
                picture = renderings[i % len(renderings)]
                start = time.perf_counter()
                service.cache.clear()
                messages, _ = service.messages(QUESTION, [picture])  # encode + project included
                cold.append(time.perf_counter() - start + _first_token_s(client, messages))
                start = time.perf_counter()
                messages, _ = service.messages(QUESTION, [picture])  # from the cache
                cached.append(time.perf_counter() - start + _first_token_s(client, messages))
    return {"plain": statistics.median(plain), "image_cold": statistics.median(cold),
            "image_cached": statistics.median(cached), "tokens": 196.0}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-engine", action="store_true", help="skip the end-to-end part (no vLLM start)")
    args = parser.parse_args(argv)
    renderings = _renderings(args.images)
    enc = bench_encoder(renderings)
    follow = bench_follow_up(max(args.runs, 20))
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| encoder ViT-B-16 224 px, batched (16) | {enc['batched']:.1f} images/s |",
        f"| encoder ViT-B-16 224 px, one at a time | {enc['single']:.1f} images/s |",
        f"| batched / one at a time | {enc['batched'] / enc['single']:.2f}x |",
        f"| first turn, 2048² image → {follow['tokens']:.0f} x 4096 bf16 embeddings (encode + project + "
        f"serialise) | {follow['cold_ms']:.0f} ms |",
        f"| follow-up turn re-sending the cached image (goal < 5 ms) | {follow['warm_ms']:.2f} ms |",
        f"| same, image handed in again as a new array (re-hash) | {follow['rehash_ms']:.2f} ms |",
    ]
    if not args.no_engine:
        e2e = bench_end_to_end(renderings, args.runs)
        rows += [
            f"| first token, text question (tiny LLaVA on vLLM) | {e2e['plain'] * 1000:.0f} ms |",
            f"| first token, image question, embeddings cached | {e2e['image_cached'] * 1000:.0f} ms |",
            f"| first token, image question, encode included | {e2e['image_cold'] * 1000:.0f} ms |",
        ]
    body = "\n".join(rows) + (
        f"\n\n{len(renderings)} real VQA-RAD images; medians of {args.runs} runs (follow-up: of "
        f"{max(args.runs, 20)}). Random weights: speed does not depend on them. The follow-up turn re-sends the "
        "cached, already serialised payload; only a new array is hashed again."
    )
    from bench.report import write_section

    command = "python -m bench.bench_vision" + (" --no-engine" if args.no_engine else "")
    write_section("vision", "Vision: encoder, cached follow-up turns, first token with an image", command, body)
    sys.stdout.write(body + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
