"""Vision fixtures: a tiny real open_clip model, a tiny original-layout LLaVA checkpoint, its conversion, and
one real vLLM server on the converted model (started once per session)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.vision.service import ImageRef
from tests.conftest import TINY_ENGINE_LIMITS

# A ViT small enough for CPU tests: 64 px input, 16 px patches → 4 x 4 = 16 patch tokens of width 64.
TINY_CLIP_NAME = "radassist-tiny-vit"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
}
TINY_IMAGE_TOKENS = 16
TINY_VISION_WIDTH = 64
TINY_LLM_HIDDEN = 128  # 2 heads of 64: a head size vLLM's CPU attention supports


@pytest.fixture(scope="session")
def tiny_clip_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(architecture JSON, weights file) of a tiny open_clip ViT with seeded random weights."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny-clip")
    config = folder / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None)
    weights = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return config, weights


@pytest.fixture(scope="session")
def tiny_encoder_spec(tiny_clip_files: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    from assistant.vision.encoder import EncoderSpec

    config, weights = tiny_clip_files
    return EncoderSpec(model_name=TINY_CLIP_NAME, pretrained=str(weights), config_path=str(config))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_encoder_spec):  # type: ignore[no-untyped-def]
    from assistant.vision.encoder import ImageEncoder

    encoder = ImageEncoder(tiny_encoder_spec)
    encoder.load()
    return encoder


def projector_weights(in_features: int, out_features: int, seed: int = 1) -> dict[str, object]:
    """LLaVA mlp2x_gelu projector weights in the original key layout."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return {
        "model.mm_projector.0.weight": torch.randn(out_features, in_features, generator=generator) * 0.1,
        "model.mm_projector.0.bias": torch.randn(out_features, generator=generator) * 0.1,
        "model.mm_projector.2.weight": torch.randn(out_features, out_features, generator=generator) * 0.1,
        "model.mm_projector.2.bias": torch.randn(out_features, generator=generator) * 0.1,
    }


@pytest.fixture(scope="session")
def tiny_llava_source(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path, tiny_clip_files: tuple[Path, Path]
) -> Path:
    """A tiny checkpoint in the original LLaVA layout: Llama LM + mm_projector weights + mm_* config fields."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from tests.support.tiny_llama import build_tiny_llama

    clip_config, clip_weights = tiny_clip_files
    out = tmp_path_factory.mktemp("tiny-llava-original")
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    model = build_tiny_llama(tokenizer, TINY_LLM_HIDDEN)
    config = model.config
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    state.update({k: v.to(torch.bfloat16) for k, v in projector_weights(TINY_VISION_WIDTH, TINY_LLM_HIDDEN).items()})
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
    cfg = config.to_dict()
    cfg.update(
        {
            "architectures": ["LlavaLlamaForCausalLM"],
            "model_type": "llava_llama",
            "mm_projector_type": "mlp2x_gelu",
            "mm_hidden_size": TINY_VISION_WIDTH,
            "mm_vision_tower": "tiny_clip_64",
            "mm_vision_tower_config": str(clip_config),
            "mm_vision_tower_checkpoint": str(clip_weights),
            "mm_vision_select_layer": -2,
            "mm_vision_select_feature": "patch",
            "mm_use_im_start_end": False,
            "mm_use_im_patch_token": False,
            "mm_patch_merge_type": "flat",
            "image_aspect_ratio": "pad",
            "tune_mm_mlp_adapter": False,
        }
    )
    (out / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny_llava_dir(tiny_llava_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint converted by the product's own converter."""
    from assistant.vision.convert import convert_llava_checkpoint

    dst = tmp_path_factory.mktemp("converted") / "tiny-llava"
    convert_llava_checkpoint(tiny_llava_source, dst, dtype="bfloat16")
    return dst


def serve_tiny_llava(model: Path, data: Path, *extra_args: str) -> Iterator[str]:
    """A real ``vllm serve`` of the converted tiny LLaVA with ``extra_args``; yields its URL, stops it after."""
    yield from serve_model(model, "tiny-llava", data, *extra_args)


@pytest.fixture(scope="session")
def llava_engine(tiny_llava_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``vllm serve`` of the converted tiny LLaVA in embeddings-only mode; yields its URL."""
    yield from serve_tiny_llava(
        tiny_llava_dir, tmp_path_factory.mktemp("llava-engine"),
        "--enable-mm-embeds", "--limit-mm-per-prompt", '{"image": 0}',
    )  # fmt: skip


def random_rendering(seed: int, shape: tuple[int, ...] = (96, 80)) -> np.ndarray:
    """An 8-bit grey picture with structure (not flat), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


# -- tiny models of the other families (MedGemma = Gemma 3, Lingshu/CheXOne = Qwen2.5-VL) ---------------------


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Gemma3ForConditionalGeneration with the family's processor classes (built, not downloaded)."""
    from tests.support.tiny_gemma3 import build_tiny_gemma3

    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture(scope="session")
def tiny_qwen25vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Qwen2_5_VLForConditionalGeneration with the family's processor classes."""
    from tests.support.tiny_qwen25vl import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-qwen25vl"))


def serve_model(model: Path, name: str, data: Path, *extra_args: str) -> Iterator[str]:
    """A real ``vllm serve`` of a tiny model folder with ``extra_args`` (eager, small KV cache); yields its URL."""
    from assistant.llm.engine import EmbeddedEngine, EngineSpec

    spec = EngineSpec(
        model=str(model),
        served_name=name,
        max_model_len=TINY_ENGINE_LIMITS["max_model_len"],
        kv_cache_bytes=TINY_ENGINE_LIMITS["kv_cache_bytes"],
        extra_args=extra_args,
        start_timeout_s=900.0,
    )
    engine = EmbeddedEngine(spec, log_dir=data / "logs", cache_dir=data / "cache")
    url = engine.start()
    try:
        yield url
    finally:
        engine.stop()


def first_image(path: Path, salt: bytes = b"radassist-vision-test-salt") -> ImageRef:
    """The first image of a real file, ingested and de-identified by the product, as the vision tests send it."""
    from assistant.imaging.ingest import load_study
    from assistant.vision.service import images_from_study

    study = load_study([path], salt).study
    assert study is not None
    return images_from_study(study)[0]


@pytest.fixture(scope="module")
def chest(shared_dir: Path) -> ImageRef:
    """A real CR chest radiograph (the engine tests of each model family)."""
    return first_image(shared_dir / "data/dicom/pydicom_data/RG1_UNCI.dcm")


@pytest.fixture(scope="module")
def head_ct(shared_dir: Path) -> ImageRef:
    """A real CT slice (DICOM)."""
    return first_image(shared_dir / "data/dicom/pydicom_data/693_UNCI.dcm")
