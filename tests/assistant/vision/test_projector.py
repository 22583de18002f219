"""LLaVA projectors from checkpoint weights, in the original and the HF key layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.errors import ModelPreparationError
from assistant.vision.projector import load_projector, projector_from_state_dict
from tests.assistant.vision.conftest import projector_weights


def _reference_mlp(state: dict, x: torch.Tensor) -> torch.Tensor:
    h = torch.nn.functional.linear(x, state["model.mm_projector.0.weight"], state["model.mm_projector.0.bias"])
    h = torch.nn.functional.gelu(h)
    return torch.nn.functional.linear(h, state["model.mm_projector.2.weight"], state["model.mm_projector.2.bias"])


def test_mlp2x_gelu_from_original_layout_matches_llava() -> None:
    state = projector_weights(64, 128)
    projector = projector_from_state_dict(state, kind="mlp2x_gelu")
    x = torch.randn(16, 64)  # (T, W)
    assert (projector.kind, projector.in_features, projector.out_features) == ("mlp2x_gelu", 64, 128)
    out = projector(x)
    assert out.shape == (16, 128)
    torch.testing.assert_close(out, _reference_mlp(state, x))
    assert projector(x.unsqueeze(0)).shape == (1, 16, 128)  # batched (B, T, W)


@pytest.mark.parametrize("prefix", ["multi_modal_projector.", "model.multi_modal_projector."])
def test_mlp2x_gelu_from_hf_layout_gives_the_same_output(prefix: str) -> None:
    state = projector_weights(64, 128)
    hf = {
        f"{prefix}linear_1.weight": state["model.mm_projector.0.weight"],
        f"{prefix}linear_1.bias": state["model.mm_projector.0.bias"],
        f"{prefix}linear_2.weight": state["model.mm_projector.2.weight"],
        f"{prefix}linear_2.bias": state["model.mm_projector.2.bias"],
        "model.language_model.norm.weight": torch.ones(128),  # other tensors are ignored
    }
    x = torch.randn(5, 64)
    torch.testing.assert_close(projector_from_state_dict(hf)(x), _reference_mlp(state, x))


def test_linear_projector_from_original_layout() -> None:
    weight, bias = torch.randn(128, 64), torch.randn(128)
    projector = projector_from_state_dict({"model.mm_projector.weight": weight, "model.mm_projector.bias": bias})
    x = torch.randn(3, 64)
    assert projector.kind == "linear"
    torch.testing.assert_close(projector(x), x @ weight.T + bias)


def test_projector_files_load_in_both_formats(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = projector_weights(64, 128)
    torch.save(state, tmp_path / "mm_projector.bin")  # what LLaVA's pretraining stage writes
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "projector.safetensors"))
    x = torch.randn(4, 64)
    a = load_projector(tmp_path / "mm_projector.bin", kind="mlp2x_gelu")(x)
    b = load_projector(tmp_path / "projector.safetensors")(x)
    torch.testing.assert_close(a, b)


def test_round_trip_through_hf_names() -> None:
    projector = projector_from_state_dict(projector_weights(64, 128))
    again = projector_from_state_dict(projector.state_dict_hf())
    x = torch.randn(2, 64)
    torch.testing.assert_close(projector(x), again(x))


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelPreparationError, match="no projector weights"):
        projector_from_state_dict({"model.norm.weight": torch.ones(4)})
    with pytest.raises(ModelPreparationError, match="2 linear layer"):
        projector_from_state_dict(projector_weights(64, 128), kind="linear")
    bad = projector_weights(64, 128)
    bad["model.mm_projector.2.weight"] = torch.randn(128, 96)
    with pytest.raises(ModelPreparationError, match="takes 96 inputs"):
        projector_from_state_dict(bad)
    with pytest.raises(ModelPreparationError, match="not found"):
        load_projector(tmp_path / "missing.safetensors")
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelPreparationError, match="cannot read"):
        load_projector(tmp_path / "junk.bin")


def test_width_mismatch_is_caught_before_sending() -> None:
    from assistant.errors import ConfigurationError

    projector = projector_from_state_dict(projector_weights(64, 128))
    with pytest.raises(ConfigurationError, match="width 32"):
        projector(torch.randn(16, 32))
