"""Attaching images to a chat turn under each profile; cache; errors raised before anything is sent."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from assistant.errors import ConfigurationError, LLMUnavailableError, RadassistError
from assistant.llm.client import Role
from assistant.settings import load_settings
from assistant.vision.cache import EmbeddingCache, image_key, serialize_embeds
from assistant.vision.profiles import BUILTIN_PROFILES, TEXT_ONLY_NOTE, ImageInput, load_bundle, profile_from_settings
from assistant.vision.projector import projector_from_state_dict
from assistant.vision.service import (
    ImageRef,
    ImageTurn,
    SimilarCaseIndex,
    TeachingCase,
    VisionService,
    attach_images,
    images_from_study,
    translate_server_error,
)
from tests.assistant.vision.conftest import TINY_IMAGE_TOKENS, TINY_LLM_HIDDEN, projector_weights, random_rendering

SALT = b"radassist-vision-test-salt"


@pytest.fixture()
def embeds_service(tiny_llava_dir: Path) -> VisionService:
    return VisionService(BUILTIN_PROFILES["llava-embeds"], bundle=load_bundle(tiny_llava_dir), max_model_len=1024)


def test_embeds_part_is_what_vllm_decodes(embeds_service: VisionService) -> None:
    message, attachment = attach_images(embeds_service, "Any nodule?", [random_rendering(1)])
    assert attachment.image_input is ImageInput.EMBEDS
    assert isinstance(message.content, tuple)
    part, text = message.content
    assert part["type"] == "image_embeds" and set(part) == {"type", "image_embeds", "uuid"}
    assert part["uuid"] == embeds_service.image_uuid(ImageRef(random_rendering(1)))  # keyed, never the bare hash
    tensor = torch.load(io.BytesIO(base64.b64decode(part["image_embeds"])), weights_only=True)  # as vLLM does
    assert tuple(tensor.shape) == (TINY_IMAGE_TOKENS, TINY_LLM_HIDDEN)
    assert tensor.dtype == torch.bfloat16
    assert text["type"] == "text"
    assert text["text"].endswith("<image-details>\nImage 1: image 1\n</image-details>\n\nAny nodule?")
    assert "not instructions" in text["text"]  # the header-sourced labels are fenced as data


def test_follow_up_turn_reuses_cached_embeddings_without_encoding(embeds_service: VisionService) -> None:
    a, b = ImageRef(random_rendering(1), "A"), ImageRef(random_rendering(2), "B")
    _, first = embeds_service.messages("first", [a, b])
    assert first.encoded == 2
    history = [ImageTurn("first", "answer", (a, b))]
    messages, follow = embeds_service.messages("second", [a], history=history)
    assert follow.encoded == 0  # a: cached; the history's a and b: cached
    payloads = [p["image_embeds"] for m in messages if isinstance(m.content, tuple) for p in m.content
                if p["type"] == "image_embeds"]  # fmt: skip
    assert len(payloads) == 3 and payloads[0] == payloads[2]  # the same picture, the same bytes
    assert [m.role for m in messages] == [Role.USER, Role.ASSISTANT, Role.USER]


def test_same_picture_twice_in_one_message_is_encoded_once(embeds_service: VisionService) -> None:
    picture = random_rendering(3)
    attachment = embeds_service.attach([picture, picture.copy()])
    assert attachment.encoded == 1 and len(attachment.parts) == 2


def test_text_only_sends_no_image_and_says_so(shared_dir: Path) -> None:
    from assistant.imaging.ingest import load_study

    study = load_study([shared_dir / "data/dicom/pydicom_data/RG1_UNCI.dcm"], SALT).study
    assert study is not None
    service = VisionService.text_only()
    message, attachment = attach_images(service, "Is there an effusion?", images_from_study(study))
    assert attachment.image_input is ImageInput.NONE
    assert isinstance(message.content, str)
    assert TEXT_ONLY_NOTE in message.content
    assert "Image 1: CR, CHEST" in message.content  # de-identified metadata still reaches the model
    assert "not analysed" in TEXT_ONLY_NOTE


def test_pixels_profile_sends_a_png_of_the_rendering() -> None:
    from PIL import Image as PILImage

    service = VisionService(BUILTIN_PROFILES["medgemma"])
    big = random_rendering(4, (2000, 1000))
    message, attachment = attach_images(service, "Describe.", [big])
    assert attachment.image_input is ImageInput.PIXELS
    part = message.content[0]  # type: ignore[index]
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    png = PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert png.size == (448, 896) and png.mode == "L"  # longest side capped at 896, aspect kept
    assert not png.info  # a fresh image: no metadata chunk


def test_hidden_size_mismatch_is_caught_before_sending(tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    projector = projector_from_state_dict(projector_weights(64, TINY_LLM_HIDDEN))
    service = VisionService(
        BUILTIN_PROFILES["llava-embeds"], encoder=tiny_encoder, projector=projector, llm_hidden_size=256
    )
    with pytest.raises(ConfigurationError, match="hidden size is 256"):
        service.attach([random_rendering(1)])


def test_encoder_projector_width_mismatch_is_caught_at_load(tiny_encoder) -> None:  # type: ignore[no-untyped-def]
    projector = projector_from_state_dict(projector_weights(96, TINY_LLM_HIDDEN))
    service = VisionService(BUILTIN_PROFILES["llava-embeds"], encoder=tiny_encoder, projector=projector)
    with pytest.raises(ConfigurationError, match="64-wide features but the projector expects 96"):
        service.load()


def test_too_many_images_for_the_context_or_the_profile(embeds_service: VisionService) -> None:
    small = VisionService(embeds_service.profile, bundle=embeds_service.bundle, max_model_len=256 + 20)
    with pytest.raises(RadassistError, match="take 32 tokens"):
        small.messages("q", [random_rendering(1), random_rendering(2)])
    with pytest.raises(RadassistError, match="at most 4"):
        embeds_service.messages("q", [random_rendering(i) for i in range(5)])


def test_server_refusals_become_configuration_errors_naming_the_fix() -> None:
    flag = LLMUnavailableError("refused the request (400: You must set `--enable-mm-embeds` to input `image_embeds`)")
    err = translate_server_error(flag)
    assert isinstance(err, ConfigurationError) and "--enable-mm-embeds --limit-mm-per-prompt" in str(err)
    size = translate_server_error(LLMUnavailableError("400: Image embedding hidden dimension mismatch"))
    assert isinstance(size, ConfigurationError) and "another model" in str(size)
    other = LLMUnavailableError("cannot connect")
    assert translate_server_error(other) is other


def test_cache_is_bounded_and_keyed_by_content() -> None:
    assert image_key(random_rendering(1)) == image_key(random_rendering(1).copy())
    assert image_key(random_rendering(1)) != image_key(random_rendering(2))
    assert image_key(np.zeros((4, 6), np.uint8)) != image_key(np.zeros((6, 4), np.uint8))  # shape counts
    embeds = torch.zeros(16, 128, dtype=torch.bfloat16)
    one = len(serialize_embeds(embeds)) + 16 * 128 * 2 + 4 * 32
    cache = EmbeddingCache(max_bytes=int(one * 2.5))

    def compute(renderings):  # type: ignore[no-untyped-def]
        return [(embeds, np.zeros(32, np.float32)) for _ in renderings]

    for seed in range(4):
        cache.get_or_compute("m", [random_rendering(seed)], compute)
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    assert cache.get("m", image_key(random_rendering(3))) is not None
    assert cache.get("m", image_key(random_rendering(0))) is None  # least recently used went first
    assert cache.get("other-model", image_key(random_rendering(3))) is None


def test_profile_from_settings(tiny_llava_dir: Path, tmp_path: Path) -> None:
    from assistant.settings import load_settings

    plain = load_settings(env={}, data_dir=tmp_path)
    assert profile_from_settings(plain).image_input is ImageInput.NONE
    served = load_settings(env={}, data_dir=tmp_path, llm_model=str(tiny_llava_dir))
    profile = profile_from_settings(served)  # "auto": the converted folder carries a vision bundle
    assert profile.image_input is ImageInput.EMBEDS and profile.bundle == str(tiny_llava_dir)
    service = VisionService.from_settings(served)
    assert service.image_input is ImageInput.EMBEDS and service.llm_hidden_size == TINY_LLM_HIDDEN


def test_similar_cases_come_from_a_faiss_index_of_real_images(
    shared_dir: Path, tiny_encoder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    images = sorted((shared_dir / "data/vqa_rad/images").glob("*.jpg"))[:6]
    cases = [TeachingCase(p.stem, str(p), f"teaching report {i}") for i, p in enumerate(images)]
    cases.append(TeachingCase("broken", str(tmp_path / "missing.png"), "x"))
    service = VisionService(BUILTIN_PROFILES["text-only"], encoder=tiny_encoder)
    # Burned-in text off: some of these pictures keep their uploader's name legible in a footer and are withheld
    # (tests/assistant/vision/test_similar_cases.py); this test is about the index.
    keys = load_settings(env={}, data_dir=tmp_path / "keys", burned_in_text="never")
    index = SimilarCaseIndex.build(service, cases, keys)
    assert len(index.cases) == 6  # the unreadable case is skipped with a warning
    from assistant.imaging.ingest import load_study

    study = load_study([images[2]], keys).study
    assert study is not None
    hits = index.similar_to(service, images_from_study(study)[0], k=3)
    assert hits[0].case_id == images[2].stem and hits[0].score > 0.999
    assert hits[0].report == "teaching report 2"
    assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score
    index.save(tmp_path / "similar")
    again = SimilarCaseIndex.load(tmp_path / "similar")
    assert [h.case_id for h in again.similar_to(service, images_from_study(study)[0], k=3)] == [
        h.case_id for h in hits
    ]
    assert json.loads((tmp_path / "similar" / "meta.json").read_text())["count"] == 6
