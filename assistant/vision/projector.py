"""LLaVA's vision-language projectors (``linear``, ``mlp2x_gelu`` and deeper ``mlpNx_gelu``) from checkpoint weights.

A projector maps the encoder's patch tokens (tokens, vision width) into the language model's embedding space
(tokens, LLM hidden size). vLLM's embeddings-only mode skips its own projector, so the client runs this one.

Two key layouts load:
- original LLaVA: ``model.mm_projector.weight`` (linear) or ``model.mm_projector.{0,2,...}.*`` (Linear, GELU,
  Linear, ...), also without the ``model.`` prefix (the pretraining stage's ``mm_projector.bin``);
- Hugging Face ``LlavaForConditionalGeneration``: ``multi_modal_projector.linear_{1,2}.*``, with or without
  the ``model.`` prefix that transformers 5 writes.

Public names: ``ProjectorType``, ``Projector``, ``load_projector(path)``, ``projector_from_state_dict(state)``,
``split_projector_keys(state)``.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigurationError, ModelPreparationError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_MLP = re.compile(r"^mlp(\d+)x_gelu$")
# Prefixes under which checkpoints keep the projector, longest first so the most specific one wins.
_PREFIXES = (
    "model.multi_modal_projector.",
    "multi_modal_projector.",
    "model.mm_projector.",
    "mm_projector.",
)
_HF_LAYER = re.compile(r"^linear_(\d+)\.(weight|bias)$")
_LLAVA_LAYER = re.compile(r"^(\d+)\.(weight|bias)$")


class ProjectorType(enum.StrEnum):
    """LLaVA's ``mm_projector_type`` values that this client can run."""

    LINEAR = "linear"
    MLP2X_GELU = "mlp2x_gelu"

    @classmethod
    def depth_of(cls, value: str) -> int:
        """Number of Linear layers for ``linear`` / ``mlpNx_gelu`` (LLaVA's builder accepts any N)."""
        text = str(value).strip().lower()
        if text == "linear":
            return 1
        match = _MLP.match(text)
        if match and int(match.group(1)) >= 1:
            return int(match.group(1))
        raise ModelPreparationError(
            f"unsupported projector type {value!r}: radassist runs 'linear' and 'mlpNx_gelu' (e.g. mlp2x_gelu)"
        )


def split_projector_keys(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(projector tensors keyed by layer, everything else) from a checkpoint's state dict.

    Projector keys come back normalised to the original LLaVA numbering: ``{0,2,4...}.weight`` for an MLP,
    ``weight``/``bias`` for a linear projector (HF ``linear_k`` becomes ``2(k-1)``).
    """
    projector: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in state.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is None:
            if key in ("mm_projector.weight", "mm_projector.bias", "model.mm_projector.weight",
                       "model.mm_projector.bias"):  # fmt: skip
                projector[key.rsplit(".", 1)[1]] = value
            else:
                rest[key] = value
            continue
        tail = key[len(prefix):]
        hf = _HF_LAYER.match(tail)
        if hf:
            projector[f"{2 * (int(hf.group(1)) - 1)}.{hf.group(2)}"] = value
        else:
            projector[tail] = value
    return projector, rest


class Projector:
    """A loaded projector: call it on (T, W) or (B, T, W) patch features to get (…, T, H) LLM embeddings."""

    def __init__(self, module: torch.nn.Module, kind: str, in_features: int, out_features: int) -> None:
        self.module = module.eval()
        self.kind = kind
        self.in_features = in_features
        self.out_features = out_features

    def __repr__(self) -> str:
        return f"Projector({self.kind}, {self.in_features} -> {self.out_features})"

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """(…, T, W) vision features → (…, T, H) embeddings in the language model's space."""
        import torch

        if features.shape[-1] != self.in_features:
            raise ConfigurationError(
                f"the vision encoder gives features of width {features.shape[-1]} but the projector expects "
                f"{self.in_features}: encoder and projector come from different models"
            )
        with torch.inference_mode():
            return self.module(features.to(self.dtype))  # (…, T, H)

    def state_dict_hf(self) -> dict[str, torch.Tensor]:
        """Weights under HF names (``multi_modal_projector.linear_k.*``; linear: ``multi_modal_projector.*``)."""
        out: dict[str, torch.Tensor] = {}
        for key, value in self.module.state_dict().items():
            index, name = key.split(".")
            if self.kind == ProjectorType.LINEAR:
                out[f"multi_modal_projector.{name}"] = value.detach().clone()
            else:
                out[f"multi_modal_projector.linear_{int(index) // 2 + 1}.{name}"] = value.detach().clone()
        return out


def projector_from_state_dict(
    state: Mapping[str, Any], kind: str | None = None, dtype: torch.dtype | None = None
) -> Projector:
    """Build a projector from its weights (either key layout); ``kind`` checks the type the config names."""
    import torch
    from torch import nn

    layers, _ = split_projector_keys(state)
    if not layers and state and all(_LLAVA_LAYER.match(k) or k in ("weight", "bias") for k in state):
        layers = dict(state)  # already normalised (an nn.Sequential state dict, or split_projector_keys output)
    if not layers:
        raise ModelPreparationError("the checkpoint holds no projector weights (mm_projector / multi_modal_projector)")
    if set(layers) <= {"weight", "bias"}:
        depth, indices = 1, None
    else:
        bad = [k for k in layers if not _LLAVA_LAYER.match(k)]
        if bad:
            raise ModelPreparationError(f"unexpected projector weights: {', '.join(sorted(bad)[:5])}")
        indices = sorted({int(k.split(".")[0]) for k in layers})
        depth = len(indices)
        if indices != list(range(0, 2 * depth, 2)):
            raise ModelPreparationError(f"projector layers must be numbered 0, 2, 4, ...; found {indices}")
    if kind is not None and ProjectorType.depth_of(kind) != depth:
        raise ModelPreparationError(
            f"the config names a {kind} projector but the weights hold {depth} linear layer(s)"
        )
    modules: list[nn.Module] = []
    linears: list[nn.Linear] = []
    for i in range(depth):
        prefix = "" if indices is None else f"{indices[i]}."
        weight = layers.get(f"{prefix}weight")
        if weight is None or weight.ndim != 2:
            raise ModelPreparationError(f"projector layer {i} has no 2-D weight")
        bias = layers.get(f"{prefix}bias")
        if linears and int(weight.shape[1]) != linears[-1].out_features:
            raise ModelPreparationError(
                f"projector layer {i} takes {weight.shape[1]} inputs but layer {i - 1} gives "
                f"{linears[-1].out_features}"
            )
        linear = nn.Linear(int(weight.shape[1]), int(weight.shape[0]), bias=bias is not None)
        with torch.no_grad():
            linear.weight.copy_(weight.float())
            if bias is not None:
                linear.bias.copy_(bias.float())
        if modules:
            modules.append(nn.GELU())  # LLaVA's builder: exact (erf) GELU between the Linear layers
        modules.append(linear)
        linears.append(linear)
    # One Linear keeps LLaVA's numbering ("0.weight") too, so save and load round-trip through one layout.
    module: nn.Module = nn.Sequential(*modules)
    name = ProjectorType.LINEAR.value if depth == 1 else f"mlp{depth}x_gelu"
    if dtype is not None:
        module = module.to(dtype)
    return Projector(module, name, linears[0].in_features, linears[-1].out_features)


def read_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a ``.safetensors`` file or a torch ``.bin``/``.pt`` file (loaded with ``weights_only``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        import torch

        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelPreparationError(f"weights file not found: {path}") from exc
    except Exception as exc:  # safetensors and torch raise many kinds; all mean "unreadable weights"
        raise ModelPreparationError(f"cannot read the weights file {path.name}: {exc}") from exc
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ModelPreparationError(f"the weights file {path.name} does not hold a state dict")
    return dict(loaded)


def load_projector(path: Path | str, kind: str | None = None, dtype: torch.dtype | None = None) -> Projector:
    """A projector from a weights file in either key layout (``.safetensors``, ``.bin`` or ``.pt``)."""
    projector = projector_from_state_dict(read_state_dict(Path(path)), kind=kind, dtype=dtype)
    logger.info("loaded %r from %s", projector, Path(path).name)
    return projector
