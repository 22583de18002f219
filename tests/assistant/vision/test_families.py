"""Profiles of the model families without a server: choice from settings, parts, uuids, send-once, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.errors import ConfigurationError, LLMUnavailableError
from assistant.imaging.deid import Pseudonymizer
from assistant.vision.profiles import BUILTIN_PROFILES, cached_part, is_cache_miss, profile_from_settings
from assistant.vision.service import ImageRef, ImageTurn, VisionService, translate_server_error
from tests.assistant.vision.conftest import random_rendering
from tests.conftest import engine_settings_for

SALT = b"radassist-vision-test-salt"


def test_auto_picks_the_profile_from_the_served_folders_model_type(
    tiny_gemma3_dir: Path, tiny_qwen25vl_dir: Path, tmp_path: Path
) -> None:
    assert profile_from_settings(engine_settings_for(tiny_gemma3_dir, tmp_path)).name == "medgemma"
    assert profile_from_settings(engine_settings_for(tiny_qwen25vl_dir, tmp_path)).name == "qwen2-vl"
    lingshu = engine_settings_for(tiny_qwen25vl_dir, tmp_path, vision_profile="lingshu")
    assert profile_from_settings(lingshu).name == "qwen2-vl"
    volume = engine_settings_for(tiny_gemma3_dir, tmp_path, vision_volume_slices=12)
    assert profile_from_settings(volume).volume_slices == 12
    assert profile_from_settings(volume).send_once
    assert not profile_from_settings(engine_settings_for(tiny_gemma3_dir, tmp_path, vision_send_once=False)).send_once
    embeds = engine_settings_for(tiny_qwen25vl_dir, tmp_path, vision_profile="qwen2-vl-embeds")
    assert profile_from_settings(embeds).bundle == str(tiny_qwen25vl_dir)
    with pytest.raises(ConfigurationError, match="RADASSIST_VISION_BUNDLE.*Qwen2.5-VL"):
        profile_from_settings(engine_settings_for(tiny_gemma3_dir, tmp_path, vision_profile="qwen2-vl-embeds"))


def test_service_from_settings_builds_the_qwen_tower(tiny_qwen25vl_dir: Path, tmp_path: Path) -> None:
    settings = engine_settings_for(tiny_qwen25vl_dir, tmp_path, vision_profile="qwen2-vl-embeds")
    service = VisionService.from_settings(settings)
    assert service.qwen_tower is not None and service.llm_hidden_size == service.qwen_tower.llm_hidden_size
    attachment = service.attach([random_rendering(3)])
    part = attachment.parts[0]
    assert part["type"] == "image_embeds" and set(part["image_embeds"]) == {"image_embeds", "image_grid_thw"}
    assert attachment.image_tokens > 0 and attachment.encoded == 1


def test_uuids_are_keyed_and_specific_to_what_is_sent() -> None:
    picture = ImageRef(random_rendering(1))
    one = VisionService(BUILTIN_PROFILES["medgemma"], keys=Pseudonymizer(SALT))
    other_salt = VisionService(BUILTIN_PROFILES["medgemma"], keys=Pseudonymizer(b"x" * 16))
    other_size = VisionService(BUILTIN_PROFILES["pixels"], keys=Pseudonymizer(SALT))
    uuid = one.image_uuid(picture)
    assert uuid == one.image_uuid(ImageRef(picture.rendering.copy()))  # content, not identity
    assert picture.key not in uuid  # the bare content hash never leaves the process
    assert uuid != other_salt.image_uuid(picture) and uuid != other_size.image_uuid(picture)


def test_earlier_images_go_by_uuid_alone_and_can_be_restored() -> None:
    service = VisionService(BUILTIN_PROFILES["qwen2-vl"], keys=Pseudonymizer(SALT))
    first, second = ImageRef(random_rendering(1), "first"), ImageRef(random_rendering(2), "second")
    messages, _ = service.messages("And now?", [second], history=[ImageTurn("Q", "A", (first,))])
    assert messages[0].content[0] == cached_part("pixels", service.image_uuid(first))
    assert messages[2].content[0]["image_url"]["url"].startswith("data:image/png")
    restored = service.restore(messages)
    assert restored[0].content[0]["image_url"]["url"].startswith("data:image/png")
    assert restored[0].content[0]["uuid"] == service.image_uuid(first)
    assert restored[2] == messages[2]
    # Embeddings always go in full (vLLM does not cache them).
    assert not BUILTIN_PROFILES["llava-embeds"].send_once and not BUILTIN_PROFILES["qwen2-vl-embeds"].send_once


def test_server_errors_name_the_limit_and_cache_misses_are_recognised() -> None:
    refused = translate_server_error(
        LLMUnavailableError("400: At most 3 image(s) may be provided in one prompt. (parameter=image)")
    )
    assert isinstance(refused, ConfigurationError) and "at most 3 per request" in str(refused)
    assert is_cache_miss("(400: Cache miss for image at index 0 but data is not provided.)")
    assert not is_cache_miss("At most 3 image(s) may be provided")


def test_medgemma_counts_its_image_tokens_for_the_context_check() -> None:
    service = VisionService(BUILTIN_PROFILES["medgemma"], keys=Pseudonymizer(SALT), max_model_len=600)
    assert service.attach([np.zeros((8, 8), np.uint8)]).image_tokens == 256
    with pytest.raises(Exception, match="take 512 tokens but the model's context holds 600"):
        service.messages("Q", [random_rendering(1), random_rendering(2)])


def test_an_image_asked_about_again_goes_by_uuid_under_pixel_profiles_only(tiny_llava_dir: Path) -> None:
    from assistant.vision.profiles import load_bundle

    pinned, new = ImageRef(random_rendering(1), "pinned"), ImageRef(random_rendering(2), "new")
    service = VisionService(BUILTIN_PROFILES["medgemma"], keys=Pseudonymizer(SALT))
    first = service.attach([pinned])
    again = service.attach([pinned, new])  # the pinned frame again, with a new one
    assert first.parts[0]["image_url"] is not None
    assert again.parts[0] == cached_part("pixels", service.image_uuid(pinned))
    assert again.parts[1]["image_url"]["url"].startswith("data:image/png") and again.image_tokens == 512
    embeds = VisionService(BUILTIN_PROFILES["llava-embeds"], bundle=load_bundle(tiny_llava_dir))
    embeds.attach([pinned])
    assert embeds.attach([pinned]).parts[0]["image_embeds"] is not None  # vLLM does not cache embeddings
