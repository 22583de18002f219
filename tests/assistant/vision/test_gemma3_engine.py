"""The ``medgemma`` profile against real vLLM serving a tiny random-weight Gemma 3 (MedGemma's architecture).

Images come from real DICOM files through the product's ingest; what reaches the model is read back from the
server (the prompt's token ids, the answer's logprobs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError, LLMUnavailableError, RadassistError
from assistant.imaging.deid import Pseudonymizer
from assistant.llm.client import GenerationOptions, OpenAIChatClient
from assistant.vision.profiles import BUILTIN_PROFILES, ModelProfile
from assistant.vision.service import ImageRef, ImageTurn, VisionChatModel, VisionService
from assistant.vision.volume import volume_images
from tests.assistant.vision.conftest import first_image, serve_model
from tests.support.chat_probe import image_bytes, probe
from tests.support.tiny_gemma3 import GEMMA3_IMAGE_TOKENS

pytestmark = pytest.mark.engine

NAME = "tiny-gemma3"
SERVER_IMAGE_LIMIT = 3
QUESTION = "Describe the findings."
SALT = b"radassist-vision-test-salt"


@pytest.fixture(scope="module")
def gemma3_engine(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_model(
        tiny_gemma3_dir, NAME, tmp_path_factory.mktemp("gemma3-engine"),
        "--limit-mm-per-prompt", f'{{"image": {SERVER_IMAGE_LIMIT}}}',
    )  # fmt: skip


@pytest.fixture(scope="module")
def token_ids(tiny_gemma3_dir: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    return {
        "image": tokenizer.image_token_id,
        "boi": tokenizer.boi_token_id,
        "eoi": tokenizer.eoi_token_id,
    }


def medgemma(**changes: object) -> ModelProfile:
    # The tiny model pools to 4 tokens per image where MedGemma pools to 256.
    return BUILTIN_PROFILES["medgemma"].replace(tokens_per_image=GEMMA3_IMAGE_TOKENS, **changes)


def service_for(profile: ModelProfile, salt: bytes = SALT) -> VisionService:
    return VisionService(profile, keys=Pseudonymizer(salt), max_model_len=1024)


@pytest.fixture(scope="module")
def mr(shared_dir: Path) -> ImageRef:
    return first_image(shared_dir / "data/dicom/dcm_qa_ts/1.dcm")


def test_each_image_reaches_the_prompt_as_the_familys_image_tokens(
    gemma3_engine: str, token_ids: dict[str, int], chest: ImageRef
) -> None:
    service = service_for(medgemma())
    messages, attachment = service.messages(QUESTION, [chest])
    part = messages[-1].content[0]
    assert isinstance(part, dict) and part["type"] == "image_url" and part["uuid"].startswith("radassist-")
    assert part["image_url"]["url"].startswith("data:image/png;base64,")
    result = probe(gemma3_engine, NAME, messages)
    assert result.count(token_ids["image"]) == GEMMA3_IMAGE_TOKENS == attachment.image_tokens
    assert result.count(token_ids["boi"]) == 1 and result.count(token_ids["eoi"]) == 1
    assert result.text.strip()


def test_different_images_change_the_logprobs_and_the_same_image_does_not(
    gemma3_engine: str, chest: ImageRef, head_ct: ImageRef
) -> None:
    service = service_for(medgemma())
    first = probe(gemma3_engine, NAME, service.messages(QUESTION, [chest])[0])
    again = probe(gemma3_engine, NAME, service.messages(QUESTION, [chest])[0])
    # Same label, other pixels: only the picture differs.
    other = probe(gemma3_engine, NAME, service.messages(QUESTION, [ImageRef(head_ct.rendering, chest.label)])[0])
    assert (first.text, first.logprobs) == (again.text, again.logprobs)
    assert first.prompt_ids == other.prompt_ids  # same tokens around the images...
    assert first.logprobs != other.logprobs  # ...but the image moved the answer


def test_two_images_in_one_turn(
    gemma3_engine: str, token_ids: dict[str, int], chest: ImageRef, head_ct: ImageRef
) -> None:
    service = service_for(medgemma())
    messages, attachment = service.messages("Compare the two images.", [chest, head_ct])
    result = probe(gemma3_engine, NAME, messages)
    assert result.count(token_ids["image"]) == 2 * GEMMA3_IMAGE_TOKENS == attachment.image_tokens
    assert result.count(token_ids["boi"]) == 2


def test_images_across_turns_are_sent_once_and_answered_from_the_servers_cache(
    gemma3_engine: str, token_ids: dict[str, int], chest: ImageRef, head_ct: ImageRef
) -> None:
    service = service_for(medgemma())
    first_messages, _ = service.messages(QUESTION, [chest])
    first = probe(gemma3_engine, NAME, first_messages)
    history = [ImageTurn(QUESTION, first.text, (chest,))]
    messages, _ = service.messages("And this one?", [head_ct], history=history)
    earlier = messages[0].content[0]
    assert earlier == {"type": "image_url", "image_url": None, "uuid": service.image_uuid(chest)}
    assert image_bytes(messages) < image_bytes(first_messages) * 2  # only the new image carries pixels
    by_uuid = probe(gemma3_engine, NAME, messages)
    assert by_uuid.count(token_ids["image"]) == 2 * GEMMA3_IMAGE_TOKENS  # the cached image still takes its place
    # The same conversation with every image in full gives the very same answer.
    full_service = service_for(medgemma(send_once=False))
    full = probe(gemma3_engine, NAME, full_service.messages("And this one?", [head_ct], history=history)[0])
    assert (by_uuid.prompt_ids, by_uuid.text, by_uuid.logprobs) == (full.prompt_ids, full.text, full.logprobs)


def test_an_image_the_server_does_not_hold_is_sent_again_in_full(
    gemma3_engine: str, mr: ImageRef
) -> None:
    # A conversation whose earlier image this server never saw (as after a server restart).
    service = service_for(medgemma(), salt=b"another-salt-another-salt")
    messages, _ = service.messages("And now?", [], history=[ImageTurn(QUESTION, "An MR slice.", (mr,))])
    assert image_bytes(messages) == 0
    with OpenAIChatClient(gemma3_engine, timeout_s=300) as client:
        bare = VisionChatModel(client)
        with pytest.raises(LLMUnavailableError, match="Cache miss"):
            list(bare.stream_chat(messages, GenerationOptions(max_tokens=3)))
        model = VisionChatModel(client, restore=service.restore)
        pieces = list(model.stream_chat(messages, GenerationOptions(max_tokens=3, extra={"ignore_eos": True})))
    assert "".join(pieces).strip() and model.resent == 1


def test_over_limit_images_get_a_clear_error_naming_the_limit(
    gemma3_engine: str, chest: ImageRef, head_ct: ImageRef, mr: ImageRef
) -> None:
    images = [chest, head_ct, mr, ImageRef(chest.rendering[::2, ::2].copy(), "half")]
    with pytest.raises(RadassistError, match="at most 3 per request"):
        service_for(medgemma(max_images=3)).messages(QUESTION, images)
    messages, _ = service_for(medgemma(max_images=4)).messages(QUESTION, images)  # more than the server takes
    with OpenAIChatClient(gemma3_engine, timeout_s=300) as client:
        limit = f"at most {SERVER_IMAGE_LIMIT} per request.*--limit-mm-per-prompt"
        with pytest.raises(ConfigurationError, match=limit):
            list(VisionChatModel(client).stream_chat(messages, GenerationOptions(max_tokens=2)))


def test_a_ct_volume_goes_as_three_window_slices_in_order(
    gemma3_engine: str, token_ids: dict[str, int], shared_dir: Path
) -> None:
    from assistant.imaging.ingest import load_study

    study = load_study([shared_dir / "data/dicom/pydicom_data/eCT_Supplemental.dcm"], SALT).study
    assert study is not None
    profile = medgemma(max_images=SERVER_IMAGE_LIMIT)
    slices = volume_images(study.series[0], profile)
    assert len(slices) == 2 and all(s.rendering.shape[2] == 3 for s in slices)
    service = service_for(profile)
    forward = probe(gemma3_engine, NAME, service.messages("Describe the CT.", slices)[0])
    assert forward.count(token_ids["image"]) == 2 * GEMMA3_IMAGE_TOKENS
    labels_kept = [ImageRef(b.rendering, a.label) for a, b in zip(slices, slices[::-1], strict=True)]
    backward = probe(gemma3_engine, NAME, service.messages("Describe the CT.", labels_kept)[0])
    assert forward.logprobs != backward.logprobs  # the slice order reaches the model


def test_models_check_finds_the_model_its_image_tokens_and_the_profile(
    gemma3_engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import json

    from assistant.cli import models as cli_models
    from assistant.settings import load_settings

    parser = argparse.ArgumentParser(prog="radassist")
    cli_models.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", "check", gemma3_engine, "--json"])
    assert args.func(args, load_settings(env={}, data_dir=tmp_path)) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["model"] == NAME and found["accepts_images"] is True
    assert found["image_tokens"] == GEMMA3_IMAGE_TOKENS  # the repeated <image_soft_token>
    assert found["profile"] == "medgemma" and "model type" in found["reason"]
