"""The open_clip encoder: a real tiny ViT with seeded random weights, on CPU."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.errors import ConfigurationError, ModelPreparationError
from assistant.vision.encoder import EncoderSpec, ImageEncoder, expand_to_square, to_rgb_pil
from tests.assistant.vision.conftest import TINY_CLIP_CONFIG, TINY_IMAGE_TOKENS, TINY_VISION_WIDTH, random_rendering


def test_encoder_is_lazy(tiny_encoder_spec: EncoderSpec) -> None:
    encoder = ImageEncoder(tiny_encoder_spec)
    assert not encoder.loaded
    encoder.encode([random_rendering(0)])
    assert encoder.loaded


def test_encode_gives_pooled_unit_vectors_and_penultimate_patch_tokens(tiny_encoder: ImageEncoder) -> None:
    features = tiny_encoder.encode([random_rendering(1), random_rendering(2, (50, 120, 3))])
    assert len(features) == 2
    for f in features:
        assert f.pooled.shape == (TINY_CLIP_CONFIG["embed_dim"],)
        assert f.pooled.dtype == np.float32
        assert abs(float(np.linalg.norm(f.pooled)) - 1.0) < 1e-5
        assert tuple(f.patches.shape) == (TINY_IMAGE_TOKENS, TINY_VISION_WIDTH)  # CLS dropped ("patch")
    assert tiny_encoder.width == TINY_VISION_WIDTH


def test_different_images_give_different_embeddings_and_equal_images_equal(tiny_encoder: ImageEncoder) -> None:
    a, b, a_again = tiny_encoder.encode([random_rendering(1), random_rendering(2), random_rendering(1)])
    assert float(a.pooled @ b.pooled) < 0.9999
    assert not np.allclose(a.patches.numpy(), b.patches.numpy())
    np.testing.assert_allclose(a.pooled, a_again.pooled, atol=1e-6)


def test_pooled_view_is_exactly_encode_image(tiny_encoder: ImageEncoder) -> None:
    images = [random_rendering(3), random_rendering(4)]
    one_pass = np.stack([f.pooled for f in tiny_encoder.encode(images)])
    np.testing.assert_allclose(one_pass, tiny_encoder.encode_pooled(images), atol=1e-5)


def test_patch_tokens_are_the_selected_blocks_output(tiny_encoder: ImageEncoder) -> None:
    """Layer -2 is the penultimate block's output, as HF CLIP's hidden_states[-2] that LLaVA uses."""
    import torch

    model = tiny_encoder._ensure()
    x = tiny_encoder.pixels([random_rendering(5)])
    seen: list[torch.Tensor] = []
    blocks = model.visual.transformer.resblocks
    handle = blocks[len(blocks) - 2].register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.inference_mode():
            model.encode_image(x)
    finally:
        handle.remove()
    expected = seen[0][0, 1:]  # (T, W) without the class token
    got = tiny_encoder.encode([random_rendering(5)])[0].patches
    torch.testing.assert_close(got, expected.float(), atol=1e-5, rtol=1e-5)


def test_preprocessing_is_open_clips_own(tiny_encoder: ImageEncoder) -> None:
    import open_clip
    import torch

    _, _, reference = open_clip.create_model_and_transforms(
        tiny_encoder.spec.model_name, pretrained=tiny_encoder.spec.pretrained
    )
    picture = random_rendering(6, (64, 64))  # square: LLaVA's padding is a no-op
    torch.testing.assert_close(tiny_encoder.pixels([picture])[0], reference(to_rgb_pil(picture)))
    assert str(tiny_encoder.preprocess) == str(reference)


def test_pad_mode_squares_with_the_mean_colour_before_preprocessing(tiny_encoder: ImageEncoder) -> None:
    wide = random_rendering(7, (40, 100))
    padded = expand_to_square(to_rgb_pil(wide), tiny_encoder._fill)
    assert padded.size == (100, 100)
    assert padded.getpixel((0, 0)) == tiny_encoder._fill  # (122, 117, 104) for OpenAI CLIP's mean
    import torch

    torch.testing.assert_close(tiny_encoder.pixels([wide])[0], tiny_encoder.preprocess(padded))


def test_cls_patch_keeps_the_class_token(tiny_encoder_spec: EncoderSpec) -> None:
    spec = EncoderSpec(**{**tiny_encoder_spec.to_dict(), "select_feature": "cls_patch", "select_layer": -1})
    features = ImageEncoder(spec).encode([random_rendering(8)])[0]
    assert tuple(features.patches.shape) == (TINY_IMAGE_TOKENS + 1, TINY_VISION_WIDTH)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_name": ""}, "model_name"),
        ({"select_feature": "cls"}, "select_feature"),
        ({"image_aspect_ratio": "anyres"}, "image_aspect_ratio"),
        ({"precision": "int8"}, "precision"),
        ({"model_name": "other-name"}, "stem of config_path"),
    ],
)
def test_spec_validates_and_names_the_field(tiny_encoder_spec: EncoderSpec, changes: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        EncoderSpec(**{**tiny_encoder_spec.to_dict(), **changes})


def test_unknown_model_is_a_preparation_error() -> None:
    with pytest.raises(ModelPreparationError, match="no-such-vit"):
        ImageEncoder(EncoderSpec("no-such-vit")).load()


def test_missing_weights_file_is_a_preparation_error(tiny_encoder_spec: EncoderSpec, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = EncoderSpec(**{**tiny_encoder_spec.to_dict(), "pretrained": str(tmp_path / "missing.pt")})
    with pytest.raises(ModelPreparationError):
        ImageEncoder(spec).load()


def test_renderings_must_be_8_bit() -> None:
    with pytest.raises(ConfigurationError, match="uint8"):
        to_rgb_pil(np.zeros((4, 4), np.float32))
