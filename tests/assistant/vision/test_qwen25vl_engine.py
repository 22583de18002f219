"""The ``qwen2-vl`` and ``qwen2-vl-embeds`` profiles against real vLLM serving a tiny random-weight Qwen2.5-VL
(Lingshu-7B's and CheXOne's architecture), one server started with pixels and embeddings both allowed."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError, RadassistError
from assistant.imaging.deid import Pseudonymizer
from assistant.llm.client import GenerationOptions, OpenAIChatClient
from assistant.vision.profiles import BUILTIN_PROFILES, ModelProfile
from assistant.vision.service import ImageRef, ImageTurn, VisionChatModel, VisionService
from tests.assistant.vision.conftest import first_image, serve_model
from tests.support.chat_probe import image_bytes, probe
from tests.support.tiny_qwen25vl import qwen_image_tokens

pytestmark = pytest.mark.engine

NAME = "tiny-qwen25vl"
SERVER_IMAGE_LIMIT = 3
QUESTION = "Describe the findings."
SALT = b"radassist-vision-test-salt"


@pytest.fixture(scope="module")
def qwen_engine(tiny_qwen25vl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_model(
        tiny_qwen25vl_dir, NAME, tmp_path_factory.mktemp("qwen-engine"),
        "--enable-mm-embeds", "--limit-mm-per-prompt", f'{{"image": {SERVER_IMAGE_LIMIT}}}',
    )  # fmt: skip


@pytest.fixture(scope="module")
def processor(tiny_qwen25vl_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_qwen25vl_dir)


def expected_tokens(processor, part: dict) -> int:  # type: ignore[no-untyped-def]
    """Image tokens the family's own processor gives for the PNG that was sent."""
    from PIL import Image

    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    grid = processor.image_processor(images=[Image.open(io.BytesIO(data)).convert("RGB")])["image_grid_thw"][0]
    return qwen_image_tokens(tuple(int(x) for x in grid))


def service_for(profile: ModelProfile, **kwargs: object) -> VisionService:
    return VisionService(profile, keys=Pseudonymizer(SALT), max_model_len=1024, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def small_ct() -> ImageRef:
    from pydicom.data import get_testdata_file

    return first_image(Path(str(get_testdata_file("CT_small.dcm"))))  # a real CT slice from pydicom's own wheel


def test_pixels_reach_the_prompt_as_the_grids_image_tokens(
    qwen_engine: str, processor, chest: ImageRef, head_ct: ImageRef  # type: ignore[no-untyped-def]
) -> None:
    service = service_for(BUILTIN_PROFILES["qwen2-vl"])
    one, _ = service.messages(QUESTION, [chest])
    result = probe(qwen_engine, NAME, one)
    assert result.count(processor.image_token_id) == expected_tokens(processor, one[-1].content[0]) > 0
    fresh = service_for(BUILTIN_PROFILES["qwen2-vl"])  # one that has not sent the chest yet: both go in full
    two, _ = fresh.messages("Compare the two images.", [chest, head_ct])
    both = probe(qwen_engine, NAME, two)
    want = sum(expected_tokens(processor, p) for p in two[-1].content[:2])
    assert both.count(processor.image_token_id) == want


def test_different_images_change_the_logprobs_and_the_same_image_does_not(
    qwen_engine: str, chest: ImageRef, small_ct: ImageRef
) -> None:
    service = service_for(BUILTIN_PROFILES["qwen2-vl"])
    first = probe(qwen_engine, NAME, service.messages(QUESTION, [chest])[0])
    again = probe(qwen_engine, NAME, service.messages(QUESTION, [chest])[0])
    other = probe(qwen_engine, NAME, service.messages(QUESTION, [ImageRef(small_ct.rendering, chest.label)])[0])
    assert (first.text, first.logprobs) == (again.text, again.logprobs)
    assert first.logprobs != other.logprobs


def test_images_across_turns_are_sent_once(
    qwen_engine: str, processor, chest: ImageRef, head_ct: ImageRef  # type: ignore[no-untyped-def]
) -> None:
    service = service_for(BUILTIN_PROFILES["qwen2-vl"])
    first_messages, _ = service.messages(QUESTION, [chest])
    first = probe(qwen_engine, NAME, first_messages)
    history = [ImageTurn(QUESTION, first.text, (chest,))]
    messages, _ = service.messages("And this one?", [head_ct], history=history)
    assert messages[0].content[0] == {"type": "image_url", "image_url": None, "uuid": service.image_uuid(chest)}
    by_uuid = probe(qwen_engine, NAME, messages)
    full = probe(
        qwen_engine, NAME,
        service_for(BUILTIN_PROFILES["qwen2-vl"].replace(send_once=False)).messages(
            "And this one?", [head_ct], history=history
        )[0],
    )  # fmt: skip
    assert image_bytes(messages) < image_bytes(first_messages) + image_bytes([messages[-1]]) + 1
    assert (by_uuid.prompt_ids, by_uuid.logprobs) == (full.prompt_ids, full.logprobs)


def test_embeddings_from_our_own_tower_run_equal_the_pixel_path(
    qwen_engine: str, tiny_qwen25vl_dir: Path, chest: ImageRef, head_ct: ImageRef
) -> None:
    from assistant.vision.qwen import QwenVisionTower

    pixels = service_for(BUILTIN_PROFILES["qwen2-vl"])
    embeds = service_for(
        BUILTIN_PROFILES["qwen2-vl-embeds"].replace(bundle=str(tiny_qwen25vl_dir), embeds_dtype="float32"),
        qwen_tower=QwenVisionTower(tiny_qwen25vl_dir),
    )
    for images in ([chest], [chest, head_ct]):
        by_pixels = probe(qwen_engine, NAME, pixels.messages(QUESTION, images)[0])
        messages, attachment = embeds.messages(QUESTION, images)
        part = messages[-1].content[0]
        assert part["type"] == "image_embeds" and set(part["image_embeds"]) == {"image_embeds", "image_grid_thw"}
        by_embeds = probe(qwen_engine, NAME, messages)
        assert by_embeds.prompt_ids == by_pixels.prompt_ids  # same tokens, same multimodal positions
        assert attachment.image_tokens == sum(1 for t in by_pixels.prompt_ids if t == embeds_token(tiny_qwen25vl_dir))
        assert by_embeds.text == by_pixels.text
        # vLLM runs its tower in bfloat16, ours in float32: the same answer, logprobs within rounding.
        assert max(abs(a - b) for a, b in zip(by_embeds.logprobs, by_pixels.logprobs, strict=True)) < 0.15


def embeds_token(folder: Path) -> int:
    import json

    return int(json.loads((folder / "config.json").read_text())["image_token_id"])


def test_over_limit_images_get_a_clear_error_naming_the_limit(
    qwen_engine: str, chest: ImageRef, head_ct: ImageRef, small_ct: ImageRef
) -> None:
    images = [chest, head_ct, small_ct, ImageRef(chest.rendering[::2, ::2].copy(), "half")]
    with pytest.raises(RadassistError, match="at most 2 per request"):
        service_for(BUILTIN_PROFILES["qwen2-vl"].replace(max_images=2)).messages(QUESTION, images)
    messages, _ = service_for(BUILTIN_PROFILES["qwen2-vl"]).messages(QUESTION, images)
    with OpenAIChatClient(qwen_engine, timeout_s=300) as client:
        with pytest.raises(ConfigurationError, match=f"at most {SERVER_IMAGE_LIMIT} per request"):
            list(VisionChatModel(client).stream_chat(messages, GenerationOptions(max_tokens=2)))
