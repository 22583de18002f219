"""Real vLLM on a converted tiny LLaVA, fed image embeddings from a real open_clip model and projector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.llm.client import ChatMessage, GenerationOptions, OpenAIChatClient, Role
from assistant.vision.profiles import BUILTIN_PROFILES, load_bundle
from assistant.vision.service import ImageRef, ImageTurn, VisionChatModel, VisionService, images_from_study
from tests.assistant.vision.conftest import TINY_IMAGE_TOKENS, serve_tiny_llava
from tests.conftest import TINY_ENGINE_LIMITS

pytestmark = pytest.mark.engine

QUESTION = "Describe the findings."
SALT = b"radassist-vision-test-salt"


@pytest.fixture(scope="module")
def service(tiny_llava_dir: Path) -> VisionService:
    profile = BUILTIN_PROFILES["llava-embeds"]
    return VisionService(
        profile, bundle=load_bundle(tiny_llava_dir), max_model_len=TINY_ENGINE_LIMITS["max_model_len"]
    )


@pytest.fixture(scope="module")
def chest(shared_dir: Path) -> ImageRef:
    """A real CR chest radiograph, ingested and de-identified by the product."""
    from assistant.imaging.ingest import load_study

    study = load_study([shared_dir / "data/dicom/pydicom_data/RG1_UNCI.dcm"], SALT).study
    assert study is not None
    return images_from_study(study)[0]


@pytest.fixture(scope="module")
def head_ct(shared_dir: Path) -> ImageRef:
    """A real CT slice (VQA-RAD JPEG), ingested by the product."""
    from assistant.imaging.ingest import load_study

    images = sorted((shared_dir / "data/vqa_rad/images").glob("*.jpg"))
    study = load_study([images[0]], SALT).study
    assert study is not None
    return images_from_study(study)[0]


def _complete(url: str, messages: list[ChatMessage], max_tokens: int = 6) -> dict[str, Any]:
    """A greedy, non-streamed completion with logprobs (what the tests compare)."""
    body = {
        "model": "tiny-llava",
        "messages": [m.to_openai() for m in messages],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": 3,
        "ignore_eos": True,
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120, trust_env=False)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _answer(data: dict[str, Any]) -> tuple[str, list[float]]:
    choice = data["choices"][0]
    return choice["message"]["content"], [t["logprob"] for t in choice["logprobs"]["content"]]


def test_image_question_counts_the_image_tokens(llava_engine: str, service: VisionService, chest: ImageRef) -> None:
    plain = _complete(llava_engine, [ChatMessage(Role.USER, QUESTION)])
    messages, attachment = service.messages(QUESTION, [chest])
    with_image = _complete(llava_engine, messages)
    assert attachment.image_input == "embeds"
    assert attachment.image_tokens == TINY_IMAGE_TOKENS
    assert "CR" in attachment.labels[0] and "CHEST" in attachment.labels[0]  # the model is told the modality
    added = with_image["usage"]["prompt_tokens"] - plain["usage"]["prompt_tokens"]
    assert added >= TINY_IMAGE_TOKENS  # the 16 image positions plus the label text
    assert _answer(with_image)[0]


def test_the_image_changes_the_answer_and_the_same_image_does_not(
    llava_engine: str, service: VisionService, chest: ImageRef, head_ct: ImageRef
) -> None:
    first = _answer(_complete(llava_engine, [ImageRefMessage(service, chest)]))
    again = _answer(_complete(llava_engine, [ImageRefMessage(service, chest)]))
    other = _answer(_complete(llava_engine, [ImageRefMessage(service, head_ct)]))
    assert first == again  # same picture, greedy decoding: same tokens, same logprobs
    assert first[1] != other[1]  # another picture moves the logprobs
    # The label text differs too; hold it fixed and swap only the pixels' embeddings.
    same_label = ImageRef(head_ct.rendering, chest.label)
    swapped = _answer(_complete(llava_engine, [ImageRefMessage(service, same_label)]))
    assert swapped[1] != first[1]


def ImageRefMessage(service: VisionService, image: ImageRef) -> ChatMessage:  # noqa: N802 - reads as a message
    return service.attach([image]).user_message(QUESTION)


def test_two_images_and_a_follow_up_turn_reuse_cached_embeddings(
    llava_engine: str, service: VisionService, chest: ImageRef, head_ct: ImageRef
) -> None:
    service.cache.clear()
    messages, first = service.messages("Compare the two images.", [chest, head_ct])
    data = _complete(llava_engine, messages)
    assert first.encoded == 2
    assert data["usage"]["prompt_tokens"] >= 2 * TINY_IMAGE_TOKENS
    turn = ImageTurn("Compare the two images.", _answer(data)[0], (chest, head_ct))
    follow_messages, follow = service.messages("And now?", [], history=[turn])
    follow_up = _complete(llava_engine, follow_messages)
    assert follow.encoded == 0 and service.cache.hits >= 2  # the earlier images came from the cache
    assert follow_up["usage"]["prompt_tokens"] > data["usage"]["prompt_tokens"]
    user_parts = [m.content for m in follow_messages if m.role == Role.USER]
    assert sum(1 for c in user_parts[0] if isinstance(c, dict) and c["type"] == "image_embeds") == 2


def test_product_client_streams_an_image_answer(llava_engine: str, service: VisionService, chest: ImageRef) -> None:
    messages, _ = service.messages(QUESTION, [chest], system="You are a radiology assistant.")
    with OpenAIChatClient(llava_engine, timeout_s=120) as client:
        model = VisionChatModel(client)
        pieces = list(model.stream_chat(messages, GenerationOptions(max_tokens=8, extra={"ignore_eos": True})))
    assert len(pieces) > 1 and "".join(pieces).strip()


@pytest.fixture(scope="module")
def llava_engine_without_embeds(tiny_llava_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The same model served without --enable-mm-embeds (a second, short-lived vLLM start)."""
    yield from serve_tiny_llava(
        tiny_llava_dir, tmp_path_factory.mktemp("llava-no-embeds"), "--limit-mm-per-prompt", '{"image": 0}'
    )


def test_server_without_embeddings_is_a_configuration_error_naming_the_flag(
    llava_engine_without_embeds: str, service: VisionService, chest: ImageRef
) -> None:
    from assistant.errors import ConfigurationError

    messages, _ = service.messages(QUESTION, [chest])
    with OpenAIChatClient(llava_engine_without_embeds, timeout_s=120) as client:
        model = VisionChatModel(client)
        with pytest.raises(ConfigurationError, match="--enable-mm-embeds"):
            list(model.stream_chat(messages, GenerationOptions(max_tokens=4)))
