"""LLaVA embeddings sent once per conversation: radassist's embeddings cache in front of real vLLM (tiny LLaVA).

vLLM 0.32 does not cache precomputed embeddings, so without the sidecar every turn carries every earlier image's
embeddings; with it, later turns carry uuids alone and the model must see exactly what the full request shows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.llm.client import GenerationOptions, OpenAIChatClient
from assistant.vision.profiles import BUILTIN_PROFILES, load_bundle
from assistant.vision.service import ImageRef, ImageTurn, VisionChatModel, VisionService
from tests.assistant.vision.conftest import TINY_IMAGE_TOKENS
from tests.conftest import TINY_ENGINE_LIMITS
from tests.support.chat_probe import image_bytes, probe
from tests.support.embeds_sidecar import running_sidecar

pytestmark = pytest.mark.engine

QUESTION = "Describe the findings."


def _service(tiny_llava_dir: Path, send_once: bool) -> VisionService:
    profile = BUILTIN_PROFILES["llava-embeds"].replace(send_once=send_once)
    return VisionService(profile, bundle=load_bundle(tiny_llava_dir), max_model_len=TINY_ENGINE_LIMITS["max_model_len"])


def _turn_three(service: VisionService, chest: ImageRef, head_ct: ImageRef):  # type: ignore[no-untyped-def]
    history = [
        ImageTurn(QUESTION, "A frontal chest radiograph.", (chest,)),
        ImageTurn("Any effusion?", "No effusion.", ()),
    ]
    return service.messages("Compare with this CT slice.", [head_ct], history=history)


def test_later_turns_send_uuids_and_the_model_sees_the_same_prompt(
    llava_engine: str, tiny_llava_dir: Path, chest: ImageRef, head_ct: ImageRef
) -> None:
    once = _service(tiny_llava_dir, send_once=True)
    with running_sidecar(llava_engine) as (url, store):
        first, attachment = once.messages(QUESTION, [chest])
        turn_one = probe(url, "tiny-llava", first)
        assert image_bytes(first) > 0 and attachment.image_tokens == TINY_IMAGE_TOKENS
        third, _ = _turn_three(once, chest, head_ct)
        earlier = [p for m in third[:-1] if not isinstance(m.content, str) for p in m.content if p["type"] != "text"]
        assert earlier == [{"type": "image_embeds", "image_embeds": None, "uuid": once.image_uuid(chest)}]
        via_cache = probe(url, "tiny-llava", third)
        assert store.status()["hits"] == 1
    full_third, _ = _turn_three(_service(tiny_llava_dir, send_once=False), chest, head_ct)
    direct = probe(llava_engine, "tiny-llava", full_third)  # every embedding in full, straight to vLLM
    assert via_cache.prompt_ids == direct.prompt_ids  # the chest's 16 positions and the CT's, in place
    assert via_cache.logprobs == direct.logprobs and via_cache.text == direct.text
    assert direct.request_bytes - via_cache.request_bytes >= image_bytes(full_third[:1]) - 100  # the chest's bytes
    assert turn_one.text  # turn 1 was answered through the sidecar too


def test_a_restarted_sidecar_gets_the_images_again_in_full(
    llava_engine: str, tiny_llava_dir: Path, chest: ImageRef, head_ct: ImageRef
) -> None:
    service = _service(tiny_llava_dir, send_once=True)
    service.attach([chest])  # sent before, in another sidecar's lifetime
    third, _ = _turn_three(service, chest, head_ct)
    with running_sidecar(llava_engine) as (url, store), OpenAIChatClient(url, timeout_s=120) as client:
        model = VisionChatModel(client, restore=service.restore)
        answer = list(model.stream_chat(third, GenerationOptions(max_tokens=3, extra={"ignore_eos": True})))
        assert "".join(answer).strip()
        assert model.resent == 1  # the sidecar's 400 cache miss, then the whole request in full
        assert store.status()["misses"] == 1 and store.status()["items"] == 2  # now it holds both images


def test_models_check_says_whether_the_cache_is_in_front(
    llava_engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from assistant.cli import models as cli_models
    from assistant.settings import load_settings

    parser = argparse.ArgumentParser(prog="radassist")
    cli_models.register(parser.add_subparsers(dest="command", required=True))
    settings = load_settings(env={}, data_dir=tmp_path)

    def check(*argv: str) -> int:
        args = parser.parse_args(["models", "check", *argv])
        return int(args.func(args, settings))

    assert check(llava_engine, "--json") == 0
    direct = json.loads(capsys.readouterr().out)
    assert direct["profile"] == "llava-embeds" and direct["embeds_cache"] is False
    with running_sidecar(llava_engine) as (url, _):
        assert check(url) == 0
        said = capsys.readouterr().out
    assert "embeds cache:   yes" in said and "RADASSIST_VISION_EMBEDS_CACHE=true" in said
    assert "RADASSIST_VISION_PROFILE=llava-embeds" in said
