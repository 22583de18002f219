"""``radassist models convert``: an original-LLaVA checkpoint → a vLLM-loadable LLaVA folder + vision bundle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assistant.errors import ModelPreparationError
from tests.assistant.vision.conftest import TINY_IMAGE_TOKENS, TINY_LLM_HIDDEN, TINY_VISION_WIDTH


def _tensors(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    out: dict[str, object] = {}
    for path in folder.glob("*.safetensors"):
        out.update(load_file(str(path)))
    return out


def test_convert_writes_hf_llava_config_with_an_image_token(tiny_llava_dir: Path) -> None:
    from transformers import AutoTokenizer

    config = json.loads((tiny_llava_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_llava_dir)
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    assert config["model_type"] == "llava"
    assert config["image_token_index"] == tokenizer.convert_tokens_to_ids("<image>")
    assert tokenizer.decode([config["image_token_index"]]) == "<image>"
    assert config["text_config"]["model_type"] == "llama"
    assert config["text_config"]["hidden_size"] == TINY_LLM_HIDDEN
    assert config["text_config"]["vocab_size"] % 64 == 0
    assert config["text_config"]["vocab_size"] >= len(tokenizer)
    assert config["vision_config"]["hidden_size"] == TINY_VISION_WIDTH
    assert config["vision_feature_layer"] == -2
    assert config["vision_feature_select_strategy"] == "default"
    assert config["image_seq_length"] == TINY_IMAGE_TOKENS
    assert not any(k.startswith("mm_") for k in config["text_config"])
    assert tokenizer.chat_template  # kept from the source tokenizer


def test_convert_maps_weight_keys_like_transformers(tiny_llava_source: Path, tiny_llava_dir: Path) -> None:
    import torch

    source = _tensors(tiny_llava_source)
    converted = _tensors(tiny_llava_dir)
    assert not any("mm_projector" in k for k in converted)
    assert not any(k.startswith("model.layers") for k in converted)
    for key in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"):
        new = converted["model.language_model." + key[len("model."):]]
        old = source[key]
        assert torch.equal(new[: old.shape[0]], old)  # type: ignore[index]
    assert torch.equal(converted["model.multi_modal_projector.linear_1.weight"], source["model.mm_projector.0.weight"])
    assert torch.equal(converted["model.multi_modal_projector.linear_2.bias"], source["model.mm_projector.2.bias"])
    # The added rows (image token, padding) start at the mean embedding.
    embed = converted["model.language_model.embed_tokens.weight"]
    old_rows = source["model.embed_tokens.weight"].shape[0]  # type: ignore[attr-defined]
    assert embed.shape[0] > old_rows  # type: ignore[attr-defined]
    mean = source["model.embed_tokens.weight"].float().mean(0).to(torch.bfloat16)  # type: ignore[attr-defined]
    assert torch.equal(embed[old_rows], mean)  # type: ignore[index]
    assert converted["lm_head.weight"].shape == embed.shape  # type: ignore[attr-defined]


def test_converted_folder_loads_in_transformers_with_the_same_language_model(
    tiny_llava_source: Path, tiny_llava_dir: Path
) -> None:
    import torch
    from transformers import LlamaForCausalLM, LlavaForConditionalGeneration

    llava = LlavaForConditionalGeneration.from_pretrained(tiny_llava_dir, dtype=torch.float32)
    llama = LlamaForCausalLM.from_pretrained(tiny_llava_source, dtype=torch.float32)
    ids = torch.tensor([[1, 200, 3000, 42, 7]])
    with torch.no_grad():
        want = llama(input_ids=ids).logits  # (1, 5, V_old)
        got = llava(input_ids=ids).logits  # (1, 5, V_new)
    assert torch.allclose(got[..., : want.shape[-1]], want, atol=1e-4)


def test_bundle_holds_encoder_spec_and_projector(tiny_llava_dir: Path, tiny_clip_files: tuple[Path, Path]) -> None:
    from assistant.vision.profiles import load_bundle
    from assistant.vision.projector import load_projector

    bundle = load_bundle(tiny_llava_dir)
    assert bundle.llm_hidden_size == TINY_LLM_HIDDEN
    assert bundle.image_tokens == TINY_IMAGE_TOKENS
    assert bundle.projector_type == "mlp2x_gelu"
    assert bundle.encoder.select_layer == -2
    assert bundle.encoder.image_aspect_ratio == "pad"
    assert bundle.encoder.pretrained == str(tiny_clip_files[1])
    # The architecture JSON travels inside the bundle.
    assert bundle.encoder.config_path is not None
    assert Path(bundle.encoder.config_path).parent == bundle.folder
    projector = load_projector(bundle.projector_file, kind=bundle.projector_type)
    assert (projector.in_features, projector.out_features) == (TINY_VISION_WIDTH, TINY_LLM_HIDDEN)


def _copy_with_config(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mm_hidden_size": None}, "mm_hidden_size"),
        ({"mm_use_im_start_end": True}, "mm_use_im_start_end"),
        ({"mm_projector_type": "linear"}, "linear projector but the weights hold 2"),
        ({"mm_projector_type": "qformer"}, "unsupported projector type"),
        ({"hidden_size": 256}, "hidden size is 256"),
        ({"mm_hidden_size": 96}, "mm_hidden_size is 96"),
        ({"model_type": "llava_mpt"}, "unsupported language model type"),
    ],
)
def test_convert_rejects_checkpoints_it_cannot_serve(
    tiny_llava_source: Path, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    from assistant.vision.convert import convert_llava_checkpoint

    src = _copy_with_config(tiny_llava_source, tmp_path / "src", **changes)
    with pytest.raises(ModelPreparationError, match=message):
        convert_llava_checkpoint(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))  # nothing half-written left behind


def test_convert_refuses_to_overwrite_without_asking(tiny_llava_source: Path, tmp_path: Path) -> None:
    from assistant.vision.convert import convert_llava_checkpoint

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ModelPreparationError, match="--overwrite"):
        convert_llava_checkpoint(tiny_llava_source, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").exists()
