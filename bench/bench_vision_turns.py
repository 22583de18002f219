"""Vision conversations: bytes sent and time to first token, turn 1 vs turn 3, tiny LLaVA (embeds, straight to vLLM
and through radassist's embeddings cache) and tiny Gemma 3 (pixels, images sent once by uuid).

Run: ``.venv/bin/python -m bench.bench_vision_turns [--runs N]``; writes the "vision-turns" section of
docs/benchmarks.md.

For each model a real vLLM server is started (CPU, eager) and one real DICOM chest radiograph is the image. Turn 1
asks with the image; turn 3 follows two exchanges whose first carried the image; the text-only baseline is the same
turn-3 conversation without any image. Measured: the bytes of image payload in the request (the JSON of the
``image_url`` / ``image_embeds`` values) and the median time to the first streamed token.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.chat_probe import image_bytes  # what a request carries of image payloads, as the tests count it

ROOT = Path(__file__).resolve().parent.parent
CHEST = ROOT / ".." / "shared" / "data" / "dicom" / "pydicom_data" / "RG1_UNCI.dcm"
SALT = b"benchmark-salt-not-secret-000000"


def _first_token_s(client: Any, messages: list[Any]) -> float:
    """Seconds to the first generated token: a one-token greedy completion (prefill + one step), request bytes
    encoded and uploaded included. (Timing the first streamed text piece would depend on what a random-weight
    model happens to print: pieces of partial UTF-8 decode to nothing.)"""
    import httpx

    body = {
        "model": client.model_id,
        "messages": [m.to_openai() for m in messages],
        "max_tokens": 1,
        "temperature": 0.0,
        "ignore_eos": True,
    }
    start = time.perf_counter()
    response = httpx.post(f"{client.base_url}/chat/completions", json=body, timeout=300, trust_env=False)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"the server refused the request: {response.text[:300]}")
    return elapsed


def _conversation(make_service: Any, picture: Any, runs: int, client: Any) -> dict[str, float]:
    from assistant.llm.client import GenerationOptions
    from assistant.vision.service import ImageTurn, VisionChatModel

    service = make_service()
    model = VisionChatModel(client, restore=service.restore)
    first, _ = service.messages("Describe the findings.", [picture])
    list(model.stream_chat(first, GenerationOptions(max_tokens=2)))  # warm-up; puts the image in the server's cache
    history = [
        ImageTurn("Describe the findings.", "A frontal chest radiograph.", (picture,)),
        ImageTurn("Any effusion?", "No effusion is described."),
    ]
    third, _ = service.messages("Is the heart enlarged?", [], history=history)
    text_history = [ImageTurn(t.question, t.answer) for t in history]
    text_third, _ = service.messages("Is the heart enlarged?", [], history=text_history)
    t1, t3, tt = [], [], []
    for _ in range(runs):
        fresh = make_service()  # turn 1 of a new conversation: the image goes in full
        t1.append(_first_token_s(client, fresh.messages("Describe the findings.", [picture])[0]))
        t3.append(_first_token_s(client, third))
        tt.append(_first_token_s(client, text_third))
    return {
        "turn1_bytes": float(image_bytes(first)), "turn3_bytes": float(image_bytes(third)),
        "turn1_s": statistics.median(t1), "turn3_s": statistics.median(t3), "text_s": statistics.median(tt),
        "resent": float(model.resent),  # 0: the warm-up left the image in the server's cache
    }  # fmt: skip


def _serve(folder: Path, name: str, tmp: Path, *extra: str) -> Any:
    from assistant.llm.engine import EmbeddedEngine, EngineSpec

    spec = EngineSpec(model=str(folder), served_name=name, max_model_len=1024, kv_cache_bytes=64 << 20,
                      extra_args=extra, start_timeout_s=900.0)  # fmt: skip
    return EmbeddedEngine(spec, tmp / f"{name}-logs", tmp / f"{name}-cache")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    from assistant.imaging.deid import Pseudonymizer
    from assistant.imaging.ingest import load_study
    from assistant.llm.client import OpenAIChatClient
    from assistant.vision.profiles import BUILTIN_PROFILES, load_bundle
    from assistant.vision.service import VisionService, images_from_study
    from bench.bench_vision import _tiny_llava
    from tests.support.embeds_sidecar import sidecar_process
    from tests.support.tiny_gemma3 import GEMMA3_IMAGE_TOKENS, build_tiny_gemma3

    study = load_study([CHEST], SALT).study
    assert study is not None  # noqa: S101 - the shared data is part of the setup
    picture = images_from_study(study)[0]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        llava = _tiny_llava(tmp)
        bundle = load_bundle(llava)
        llava_service = VisionService(BUILTIN_PROFILES["llava-embeds"], bundle=bundle, keys=Pseudonymizer(SALT))
        with _serve(llava, "tiny-llava", tmp, "--enable-mm-embeds", "--limit-mm-per-prompt", '{"image": 0}') as engine:
            with OpenAIChatClient(engine.url, model="tiny-llava", timeout_s=300) as client:
                results["tiny LLaVA (embeds, 196 tokens)"] = _conversation(
                    lambda: llava_service,
                    picture,
                    args.runs,
                    client,  # one service: its embedding cache is warm
                )
            # The same server behind radassist's embeddings cache (models embeds-cache), embeddings sent once.
            once = BUILTIN_PROFILES["llava-embeds"].replace(send_once=True)
            with sidecar_process(engine.url) as sidecar_url:
                with OpenAIChatClient(sidecar_url, model="tiny-llava", timeout_s=300) as client:
                    results["tiny LLaVA (embeds by uuid via `models embeds-cache`)"] = _conversation(
                        lambda: VisionService(once, bundle=bundle, cache=llava_service.cache, keys=Pseudonymizer(SALT)),
                        picture, args.runs, client,
                    )  # fmt: skip
        gemma = build_tiny_gemma3(tmp / "tiny-gemma3")
        profile = BUILTIN_PROFILES["medgemma"].replace(tokens_per_image=GEMMA3_IMAGE_TOKENS)
        with _serve(gemma, "tiny-gemma3", tmp, "--limit-mm-per-prompt", '{"image": 4}') as engine:
            with OpenAIChatClient(engine.url, model="tiny-gemma3", timeout_s=300) as client:
                results[f"tiny Gemma 3 (pixels by uuid, {GEMMA3_IMAGE_TOKENS} tokens)"] = _conversation(
                    lambda: VisionService(profile, keys=Pseudonymizer(SALT)), picture, args.runs, client
                )
    rows = [
        "| model | turn-1 image bytes | turn-3 image bytes | first token turn 1 | turn 3 | text-only turn 3 | "
        "turn 3 / text-only |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        rows.append(
            f"| {label} | {r['turn1_bytes']:,.0f} | {r['turn3_bytes']:,.0f} | {r['turn1_s'] * 1000:.0f} ms | "
            f"{r['turn3_s'] * 1000:.0f} ms | {r['text_s'] * 1000:.0f} ms | {r['turn3_s'] / r['text_s']:.2f}x |"
        )
    body = "\n".join(rows) + (
        f"\n\nMedians of {args.runs} runs, one real CR chest radiograph (RG1_UNCI.dcm) through ingest, real vLLM CPU "
        "servers (eager, 64 MiB KV cache) on a shared 2-core machine. Goal: turn-3 image bytes about 0 and turn-3 "
        "first token within 1.2x of the text-only turn. Gemma 3 (pixel profiles) sends an earlier image as its uuid "
        "with a null payload and vLLM's multimodal cache answers. LLaVA embeddings sent straight to vLLM go in full "
        "every turn (vLLM 0.32 does not cache embedding inputs; radassist's own cache spares the encoder); through "
        "radassist's embeddings cache beside vLLM (`radassist models embeds-cache`, RADASSIST_VISION_EMBEDS_CACHE="
        "true) they go once, and later turns carry the uuid alone: the payload then crosses only the loopback hop "
        "from the cache to vLLM. The text-only baseline of each row goes the same way as its image turns."
    )
    from bench.report import write_section

    write_section(
        "vision-turns", "Vision conversations: bytes and first token, turn 1 vs turn 3 (issue 20)",
        "python -m bench.bench_vision_turns", body,
    )  # fmt: skip
    sys.stdout.write(body + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
