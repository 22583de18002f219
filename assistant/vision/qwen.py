"""Qwen2.5-VL image embeddings computed in radassist (Lingshu-7B, CheXOne): for users whose vLLM server runs
with ``--enable-mm-embeds`` and keeps the vision tower elsewhere.

The model folder's own processor (``Qwen2VLImageProcessor``: dynamic resolution, 14 px patches, temporal pairs)
turns a rendering into patches and ``image_grid_thw``; the folder's own vision tower (the ``visual.*`` /
``model.visual.*`` weights, patch merger included) turns them into ``(grid_t * grid_h * grid_w / 4, hidden)``
embeddings: exactly what vLLM would compute from the pixels. They are sent as
``{"type": "image_embeds", "image_embeds": {"image_embeds": <b64 tensor>, "image_grid_thw": <b64 tensor>}}``;
vLLM needs the grid for the multimodal RoPE positions.

Public names: ``QwenVisionTower``, ``QwenImageEmbedding``, ``is_qwen_vl_folder``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import ConfigurationError
from assistant.vision.encoder import to_rgb_pil

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

QWEN_VL_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
_PREFIXES = ("model.visual.", "visual.")  # transformers 5 layout, published checkpoint layout


@dataclass(frozen=True, eq=False)
class QwenImageEmbedding:
    """One image through the Qwen2.5-VL tower: merged patch embeddings and the patch grid."""

    embeds: torch.Tensor  # (grid_t * grid_h * grid_w / merge**2, LLM hidden)
    grid_thw: tuple[int, int, int]

    @property
    def tokens(self) -> int:
        return int(self.embeds.shape[0])


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: the Qwen2.5-VL embeds profile needs the model folder") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a model config")
    return data


def is_qwen_vl_folder(folder: Path | str) -> bool:
    """Whether ``folder`` holds a Qwen2-VL / Qwen2.5-VL checkpoint (by its config's model_type)."""
    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        return False
    try:
        return _read_config(path).get("model_type") in QWEN_VL_MODEL_TYPES
    except ConfigurationError:
        return False


class QwenVisionTower:
    """The vision tower and image processor of a local Qwen2.5-VL folder, loaded on first use (CPU, float32)."""

    def __init__(self, folder: Path | str, device: str = "cpu", dtype: str = "float32") -> None:
        self.folder = Path(folder).expanduser()
        config = _read_config(self.folder)
        if config.get("model_type") != "qwen2_5_vl":
            raise ConfigurationError(
                f"{self.folder} is a {config.get('model_type')!r} model; image embeddings are computed for "
                "Qwen2.5-VL (model_type qwen2_5_vl) checkpoints"
            )
        text = config.get("text_config")
        text = text if isinstance(text, dict) else config
        self.llm_hidden_size = int(text.get("hidden_size", 0))
        self.device = device
        self.dtype = dtype
        self._model: Any = None
        self._processor: Any = None
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """Identifies the embeddings this tower produces (folder, weights files' sizes and times, dtype)."""
        marks = []
        for weights in sorted(self.folder.glob("*.safetensors")):
            stat = weights.stat()
            marks.append(f"{weights.name}:{stat.st_size}:{int(stat.st_mtime)}")
        return f"qwen2.5-vl|{self.folder.resolve()}|{','.join(marks)}|{self.dtype}"

    def load(self) -> None:
        """Build the tower from the folder's config and weights, and its image processor (no download)."""
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoConfig, AutoImageProcessor
            from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

            try:
                config = AutoConfig.from_pretrained(self.folder, local_files_only=True)
                processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"cannot load the Qwen2.5-VL processor from {self.folder}: {exc}") from exc
            model = Qwen2_5_VisionTransformerPretrainedModel._from_config(config.vision_config)
            state = self._vision_weights()
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing:
                raise ConfigurationError(
                    f"the vision tower weights in {self.folder} are incomplete ({len(missing)} missing, e.g. "
                    f"{missing[0]}): the folder needs the full Qwen2.5-VL checkpoint"
                )
            if unexpected:
                logger.warning("Qwen2.5-VL tower: %d unexpected weight(s) ignored", len(unexpected))
            model.to(device=self.device, dtype=getattr(torch, self.dtype)).eval()
            self._processor = processor
            self._model = model

    def _vision_weights(self) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            raise ConfigurationError(f"no *.safetensors weights in {self.folder}")
        state = {}
        for path in files:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                    for prefix in _PREFIXES:
                        if key.startswith(prefix):
                            state[key[len(prefix):]] = handle.get_tensor(key)
                            break
        if not state:
            raise ConfigurationError(f"{self.folder} holds no vision tower weights (visual.*)")
        return state

    def encode(self, renderings: Sequence[np.ndarray]) -> list[QwenImageEmbedding]:
        """Embeddings and grids of ``renderings`` ((rows, cols) or (rows, cols, 3) uint8), in order."""
        import torch

        self.load()
        images = [to_rgb_pil(r) for r in renderings]
        batch = self._processor(images=images, return_tensors="pt")
        pixels = batch["pixel_values"].to(device=self.device, dtype=getattr(torch, self.dtype))  # (patches, C*T*P*P)
        grids = batch["image_grid_thw"]  # (N, 3)
        with torch.inference_mode():
            merged = self._model(pixels, grid_thw=grids.to(self.device)).pooler_output  # (sum tokens, hidden)
        merge = int(self._model.spatial_merge_size)
        sizes = (grids.prod(-1) // (merge * merge)).tolist()
        out = []
        for embeds, grid in zip(torch.split(merged.float().cpu(), sizes), grids.tolist(), strict=True):
            out.append(QwenImageEmbedding(embeds.contiguous(), (int(grid[0]), int(grid[1]), int(grid[2]))))
        return out
