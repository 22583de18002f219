"""The image encoder: an open_clip model named by data, always with open_clip's own preprocessing.

One forward pass gives both views of an image:
- the pooled image embedding (what ``model.encode_image`` returns), L2-normalised, for similarity search;
- the patch tokens of the layer the projector was trained on (LLaVA: the penultimate layer, CLS dropped),
  which the projector turns into the language model's image embeddings.

The model is built on first use, never at import. ``pretrained`` may be an open_clip tag, a local weights file
or None (random weights: tests and plumbing only). ``model_name`` may be a built-in open_clip name, an
``hf-hub:org/repo`` id, a ``local-dir:/folder`` or, with ``config_path``, the stem of a JSON architecture file
registered with ``open_clip.add_model_config``.

Public names: ``EncoderSpec``, ``ImageFeatures``, ``ImageEncoder``, ``to_rgb_pil(rendering)``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import ConfigurationError, ModelPreparationError

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image as PILImage

logger = logging.getLogger(__name__)

SELECT_FEATURES = ("patch", "cls_patch")  # LLaVA's mm_vision_select_feature
ASPECT_MODES = ("pad", "none")  # LLaVA's image_aspect_ratio: "pad" squares the image before preprocessing
_PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class EncoderSpec:
    """Which open_clip model encodes images, and which of its features the projector was trained on."""

    model_name: str
    pretrained: str | None = None  # open_clip tag or weights file; None = random weights
    config_path: str | None = None  # JSON architecture; its file stem must equal model_name
    select_layer: int = -2  # LLaVA mm_vision_select_layer: -2 = the penultimate block's output
    select_feature: str = "patch"  # "patch" drops the CLS token, "cls_patch" keeps it
    image_aspect_ratio: str = "pad"  # "pad": LLaVA's expand-to-square with the mean colour, then preprocessing
    force_image_size: int | None = None
    precision: str = "fp32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.model_name:
            raise ConfigurationError("the vision encoder needs a model_name (an open_clip name or hf-hub: id)")
        if self.select_feature not in SELECT_FEATURES:
            raise ConfigurationError(
                f"select_feature must be one of {', '.join(SELECT_FEATURES)}, got {self.select_feature!r}"
            )
        if self.image_aspect_ratio not in ASPECT_MODES:
            raise ConfigurationError(
                f"image_aspect_ratio must be one of {', '.join(ASPECT_MODES)}, got {self.image_aspect_ratio!r}"
            )
        if self.precision not in _PRECISIONS:
            raise ConfigurationError(f"precision must be one of {', '.join(_PRECISIONS)}, got {self.precision!r}")
        if self.config_path is not None and Path(self.config_path).stem != self.model_name:
            raise ConfigurationError(
                f"model_name {self.model_name!r} must be the stem of config_path {self.config_path!r} "
                "(open_clip registers a config file under its file name)"
            )

    @property
    def fingerprint(self) -> str:
        """What identifies this encoder's output (for caches): the fields that change the features."""
        return json.dumps(
            [self.model_name, self.pretrained, self.config_path, self.select_layer, self.select_feature,
             self.image_aspect_ratio, self.force_image_size, self.precision],
            separators=(",", ":"),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> EncoderSpec:
        """A spec from JSON data; relative paths resolve against ``base_dir`` (the spec file's folder)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(f"unknown encoder spec field(s): {', '.join(unknown)}")
        values = dict(data)
        if base_dir is not None:
            for key in ("config_path", "pretrained"):
                value = values.get(key)
                if isinstance(value, str) and value.startswith("./"):
                    values[key] = str((base_dir / value).resolve())
        return cls(**values)


@dataclass(frozen=True, eq=False)
class ImageFeatures:
    """Both views of one image from one forward pass."""

    pooled: np.ndarray  # (D,) float32, L2-normalised: for similarity search
    patches: torch.Tensor  # (T, W) float32 patch tokens of the selected layer: the projector's input


def to_rgb_pil(rendering: np.ndarray) -> PILImage:
    """An 8-bit (rows, cols) grey or (rows, cols, 3) RGB rendering as an RGB PIL image."""
    from PIL import Image as PILImageModule

    array = np.asarray(rendering)
    if array.dtype != np.uint8:
        raise ConfigurationError(f"an image rendering must be 8-bit (uint8), got {array.dtype}")
    if array.ndim == 2:
        return PILImageModule.fromarray(np.ascontiguousarray(array), mode="L").convert("RGB")
    if array.ndim == 3 and array.shape[2] == 3:
        return PILImageModule.fromarray(np.ascontiguousarray(array), mode="RGB")
    raise ConfigurationError(f"an image rendering must be (rows, cols) or (rows, cols, 3), got {array.shape}")


def expand_to_square(image: PILImage, fill: tuple[int, int, int]) -> PILImage:
    """LLaVA's ``expand2square``: centre the image on a square canvas of ``fill`` colour."""
    from PIL import Image as PILImageModule

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = PILImageModule.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


class ImageEncoder:
    """An open_clip model built lazily from an :class:`EncoderSpec`; thread-safe."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._model: Any = None
        self._preprocess: Any = None
        self._fill: tuple[int, int, int] = (0, 0, 0)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Build the model and its preprocessing now (otherwise done on the first encode)."""
        with self._lock:
            if self._model is None:
                self._build()

    def _build(self) -> None:
        import open_clip

        spec = self.spec
        started = time.monotonic()
        if spec.config_path is not None:
            path = Path(spec.config_path)
            if not path.is_file():
                raise ConfigurationError(f"the encoder architecture file {path} does not exist")
            open_clip.add_model_config(path)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.model_name,
                pretrained=spec.pretrained,
                precision=spec.precision,
                device=spec.device,
                force_image_size=spec.force_image_size,
            )
        except (RuntimeError, OSError, ValueError) as exc:  # unknown name, missing file, no hub access, bad weights
            raise ModelPreparationError(
                f"cannot build the vision encoder {spec.model_name!r} (pretrained={spec.pretrained!r}): {exc}"
            ) from exc
        model.eval()
        self._model = model
        self._preprocess = preprocess
        mean = getattr(model.visual, "preprocess_cfg", {}).get("mean") or open_clip.OPENAI_DATASET_MEAN
        # LLaVA pads with the processor's mean colour, which normalises to zero (train/serve parity).
        self._fill = tuple(int(round(255 * float(m))) for m in mean)  # type: ignore[assignment]
        logger.info(
            "vision encoder %s ready in %.2f s (%s weights)",
            spec.model_name, time.monotonic() - started, "pretrained" if spec.pretrained else "random",
        )  # fmt: skip

    def _ensure(self) -> Any:
        if self._model is None:
            self.load()
        return self._model

    @property
    def preprocess(self) -> Any:
        """open_clip's own evaluation transform for this model (PIL image → (3, H, W) tensor)."""
        self._ensure()
        return self._preprocess

    @property
    def width(self) -> int:
        """Width of the patch tokens (the projector's input size)."""
        visual = self._ensure().visual
        for path in (("transformer", "width"), ("trunk", "embed_dim"), ("trunk", "num_features")):
            obj: Any = visual
            for name in path:
                obj = getattr(obj, name, None)
            if isinstance(obj, int):
                return obj
        return int(self.encode([np.zeros((32, 32), np.uint8)])[0].patches.shape[-1])

    def pixels(self, renderings: Sequence[np.ndarray]) -> torch.Tensor:
        """(B, 3, H, W) model input from 8-bit renderings, through open_clip's preprocessing."""
        import torch

        self._ensure()
        batch = []
        for rendering in renderings:
            image = to_rgb_pil(rendering)
            if self.spec.image_aspect_ratio == "pad":
                image = expand_to_square(image, self._fill)
            batch.append(self._preprocess(image))  # (3, H, W) normalised
        return torch.stack(batch)  # (B, 3, H, W)

    def encode(self, renderings: Sequence[np.ndarray], batch_size: int = 16) -> list[ImageFeatures]:
        """Pooled embedding and selected-layer patch tokens of each rendering, in batches."""
        out: list[ImageFeatures] = []
        for start in range(0, len(renderings), max(1, batch_size)):
            out.extend(self._encode_batch(renderings[start:start + batch_size]))
        return out

    def _encode_batch(self, renderings: Sequence[np.ndarray]) -> list[ImageFeatures]:
        import torch
        import torch.nn.functional as F

        if not renderings:
            return []
        model = self._ensure()
        x = self.pixels(renderings).to(device=self.spec.device, dtype=_torch_dtype(self.spec.precision))
        cls_patch = self.spec.select_feature == "cls_patch"
        with torch.inference_mode():
            try:
                # Same computation as model.encode_image (visual.forward) plus the intermediates, in one pass.
                result = model.visual.forward_intermediates(
                    x,  # (B, 3, H, W)
                    indices=[self.spec.select_layer],
                    output_fmt="NLC",
                    intermediates_only=False,
                    output_extra_tokens=cls_patch,
                )
            except (IndexError, ValueError, AssertionError) as exc:
                raise ConfigurationError(
                    f"the vision encoder cannot give layer {self.spec.select_layer}: {exc}"
                ) from exc
            patches = result["image_intermediates"][0]  # (B, T, W) spatial tokens, prefix tokens removed
            if cls_patch:
                prefix = result["image_intermediates_prefix"][0]  # (B, P, W) class (and register) tokens
                patches = torch.cat([prefix, patches], dim=1)  # (B, P + T, W)
            pooled = result.get("image_features")
            if pooled is None:  # a tower whose intermediates path does not pool: ask encode_image
                pooled = model.encode_image(x)
            pooled = F.normalize(pooled.float(), dim=-1)  # (B, D) L2-normalised
        patches = patches.float()
        return [ImageFeatures(pooled=pooled[i].cpu().numpy(), patches=patches[i].cpu()) for i in range(len(x))]

    def encode_pooled(self, renderings: Sequence[np.ndarray]) -> np.ndarray:
        """(B, D) L2-normalised pooled embeddings through ``model.encode_image``."""
        import torch

        model = self._ensure()
        x = self.pixels(renderings).to(device=self.spec.device, dtype=_torch_dtype(self.spec.precision))
        with torch.inference_mode():
            pooled = model.encode_image(x, normalize=True)  # (B, D)
        return np.asarray(pooled.float().cpu().numpy(), dtype=np.float32)


def _torch_dtype(precision: str) -> torch.dtype:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
