"""Model profiles: how a language model takes images, as configuration rather than branches in the code.

Three ways, one per :class:`ImageInput`:
- ``embeds``: LLaVA-family checkpoints served by vLLM with ``--enable-mm-embeds --limit-mm-per-prompt
  '{"image": 0}'``. The client encodes (open_clip) and projects each image and sends ``image_embeds`` parts.
  Needs a *vision bundle*: the encoder spec and projector weights written by ``radassist models convert``.
- ``pixels``: models vLLM runs with their own vision tower (MedGemma = Gemma 3, Lingshu/CheXOne = Qwen2.5-VL):
  the client sends the windowed, de-identified rendering as a PNG ``image_url`` part.
- ``embeds`` for Qwen2.5-VL (``qwen2-vl-embeds``): the client runs the model folder's own vision tower
  (:mod:`assistant.vision.qwen`) and sends ``image_embeds`` with ``image_grid_thw``.
- ``none``: text-only models (the embedded CPU default): no image part; the prompt carries the de-identified
  metadata and says plainly that the image itself was not analysed.

Every image part carries a ``uuid`` (a keyed content hash). Under the pixel profiles the first turn sends the
payload and later turns (or the same image asked about again) send the uuid with a null payload, answered by vLLM's
multimodal cache (:func:`cached_part`); embeddings go in full every turn (vLLM 0.32 does not cache them) unless
radassist's embeddings cache sits in front of vLLM (``vision_embeds_cache``, :mod:`assistant.llm.embeds_cache`).

Public names: ``ImageInput``, ``ModelProfile``, ``BUILTIN_PROFILES``, ``VisionBundle``, ``load_bundle``,
``find_bundle``, ``profile_from_settings``, ``image_parts``, ``embeds_part``, ``pixels_part``, ``cached_part``,
``qwen_embeds_payload``, ``is_cache_miss``, ``served_model_type``, ``TEXT_ONLY_NOTE``, ``BUNDLE_DIR``, ``BUNDLE_FILE``.
"""

from __future__ import annotations

import base64
import enum
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import ConfigurationError
from assistant.vision.encoder import EncoderSpec, to_rgb_pil

if TYPE_CHECKING:
    from assistant.settings import Settings
    from assistant.vision.cache import CachedEmbedding

logger = logging.getLogger(__name__)

BUNDLE_DIR = "radassist-vision"  # inside a converted model folder; vLLM ignores it
BUNDLE_FILE = "vision.json"
BUNDLE_FORMAT = "radassist-vision/1"
EMBED_DTYPES = ("bfloat16", "float16", "float32")

TEXT_ONLY_NOTE = (
    "The image content itself was not analysed: the configured language model is text-only, so it received "
    "only the de-identified study metadata, not the pixels."
)


class ImageInput(enum.StrEnum):
    """How the model sees images; ``radassist ask --json`` reports it as ``"image_input"``."""

    EMBEDS = "embeds"
    PIXELS = "pixels"
    NONE = "none"


@dataclass(frozen=True)
class ModelProfile:
    """How one family of models takes images."""

    name: str
    image_input: ImageInput
    max_images: int = 4  # per request, all turns together (vLLM's limit, and the context length)
    embeds_dtype: str = "bfloat16"  # what image_embeds are sent as (the LLM's dtype; halves the payload)
    pixel_max_side: int = 1024  # pixels: the PNG's longest side (the server resizes to its own size anyway)
    bundle: str | None = None  # embeds: the vision bundle folder (or a converted model folder holding one)
    family: str = ""  # "llava", "gemma3", "qwen2-vl" or "" (any vLLM model): the request format and token count
    tokens_per_image: int | None = None  # LLM positions of one image when fixed by the family (Gemma 3: 256)
    # Later turns send each earlier image as its uuid with a null payload, answered by vLLM's multimodal processor
    # cache. Pixels only: vLLM 0.32 passes embeddings around that cache (never cached), so embeds always go in full.
    send_once: bool = True
    volume_slices: int = 0  # a CT/MR series goes as this many three-window slices (MedGemma 1.5); 0 = not a volume

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_input", ImageInput(self.image_input))
        if self.max_images < 0:
            raise ConfigurationError(f"max_images must be 0 or more, got {self.max_images}")
        if self.embeds_dtype not in EMBED_DTYPES:
            raise ConfigurationError(
                f"embeds_dtype must be one of {', '.join(EMBED_DTYPES)}, got {self.embeds_dtype!r}"
            )
        if not 64 <= self.pixel_max_side <= 4096:
            raise ConfigurationError(f"pixel_max_side must be 64 to 4096 pixels, got {self.pixel_max_side}")
        if self.family not in FAMILIES:
            raise ConfigurationError(f"family must be one of {', '.join(map(repr, FAMILIES))}, got {self.family!r}")
        if self.volume_slices < 0:
            raise ConfigurationError(f"volume_slices must be 0 or more, got {self.volume_slices}")

    @property
    def sees_images(self) -> bool:
        return self.image_input is not ImageInput.NONE

    def replace(self, **changes: Any) -> ModelProfile:
        import dataclasses

        return dataclasses.replace(self, **changes)


FAMILIES = ("", "llava", "gemma3", "qwen2-vl")

# Profiles as data. "auto" (profile_from_settings) picks "llava-embeds" when the served model folder holds a
# vision bundle, "medgemma" / "qwen2-vl" when it is a local Gemma 3 / Qwen2-VL folder, "text-only" otherwise.
BUILTIN_PROFILES: dict[str, ModelProfile] = {
    "text-only": ModelProfile("text-only", ImageInput.NONE, max_images=0),
    "llava-embeds": ModelProfile("llava-embeds", ImageInput.EMBEDS, family="llava", send_once=False),
    # Gemma 3's SigLIP sees 896 x 896 px; its projector pools 64 x 64 patches to 16 x 16 = 256 tokens per image
    # (Gemma 3 config mm_tokens_per_image). vLLM 0.32 takes pixels only for Gemma 3.
    "medgemma": ModelProfile(
        "medgemma", ImageInput.PIXELS, pixel_max_side=896, family="gemma3", tokens_per_image=256, volume_slices=85
    ),
    "qwen2-vl": ModelProfile("qwen2-vl", ImageInput.PIXELS, family="qwen2-vl"),
    "qwen2-vl-embeds": ModelProfile("qwen2-vl-embeds", ImageInput.EMBEDS, family="qwen2-vl", send_once=False),
    "pixels": ModelProfile("pixels", ImageInput.PIXELS),
}
PROFILE_ALIASES = {
    "embeds": "llava-embeds", "none": "text-only", "text": "text-only", "gemma3": "medgemma",
    "lingshu": "qwen2-vl", "chexone": "qwen2-vl", "qwen2.5-vl": "qwen2-vl", "qwen2.5-vl-embeds": "qwen2-vl-embeds",
}  # fmt: skip
# model_type in a local model folder's config.json → the profile "auto" picks for it
AUTO_BY_MODEL_TYPE = {"gemma3": "medgemma", "qwen2_5_vl": "qwen2-vl", "qwen2_vl": "qwen2-vl"}


@dataclass(frozen=True)
class VisionBundle:
    """What the client needs for the embeds path, as written by ``radassist models convert``."""

    folder: Path
    encoder: EncoderSpec
    projector_file: Path
    projector_type: str
    llm_hidden_size: int
    image_tokens: int | None = None  # per image, when known at conversion
    embeds_dtype: str = "bfloat16"

    @property
    def fingerprint(self) -> str:
        """Identifies the embeddings this bundle produces (encoder + projector weights file)."""
        stat = self.projector_file.stat() if self.projector_file.exists() else None
        mark = f"{stat.st_size}:{int(stat.st_mtime)}" if stat else "missing"
        return f"{self.encoder.fingerprint}|{self.projector_file.resolve()}|{mark}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "encoder": self.encoder.to_dict(),
            "projector": {"type": self.projector_type, "file": self.projector_file.name},
            "llm_hidden_size": self.llm_hidden_size,
            "image_tokens": self.image_tokens,
            "embeds_dtype": self.embeds_dtype,
        }


def find_bundle(path: Path | str) -> Path | None:
    """The vision bundle file for a bundle folder, a converted model folder or the file itself; None if absent."""
    p = Path(path).expanduser()
    for candidate in (p, p / BUNDLE_FILE, p / BUNDLE_DIR / BUNDLE_FILE):
        if candidate.is_file() and candidate.name == BUNDLE_FILE:
            return candidate
    return None


def load_bundle(path: Path | str) -> VisionBundle:
    """Read a vision bundle (folder, converted model folder, or ``vision.json``); errors name what is wrong."""
    found = find_bundle(path)
    if found is None:
        raise ConfigurationError(
            f"no vision bundle at {path}: expected {BUNDLE_DIR}/{BUNDLE_FILE} (run `radassist models convert`)"
        )
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"the vision bundle {found} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise ConfigurationError(f"{found} is not a {BUNDLE_FORMAT} vision bundle")
    try:
        encoder = EncoderSpec.from_dict(dict(data["encoder"]), base_dir=found.parent)
        projector = data["projector"]
        bundle = VisionBundle(
            folder=found.parent,
            encoder=encoder,
            projector_file=found.parent / str(projector["file"]),
            projector_type=str(projector["type"]),
            llm_hidden_size=int(data["llm_hidden_size"]),
            image_tokens=int(data["image_tokens"]) if data.get("image_tokens") else None,
            embeds_dtype=str(data.get("embeds_dtype", "bfloat16")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"the vision bundle {found} misses or mangles a field: {exc}") from exc
    if not bundle.projector_file.is_file():
        raise ConfigurationError(f"the vision bundle {found} names a projector file that is missing")
    return bundle


def served_model_type(model: str | None) -> str | None:
    """``model_type`` of a local model folder's config.json (None for a hub id or an unreadable config)."""
    if not model:
        return None
    path = Path(model).expanduser() / "config.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("model_type") if isinstance(data, dict) else None
    return str(value) if value else None


def profile_from_settings(settings: Settings) -> ModelProfile:
    """The profile the settings ask for; ``auto`` looks for a vision bundle beside the served model, then at the
    served folder's model type (Gemma 3 → ``medgemma``, Qwen2-VL/2.5-VL → ``qwen2-vl``)."""
    name = (settings.vision_profile or "auto").strip().lower()
    bundle = settings.vision_bundle
    if bundle is None and settings.llm_model and find_bundle(settings.llm_model) is not None:
        bundle = settings.llm_model
    if name == "auto":
        if bundle is not None:
            name = "llava-embeds"
        else:
            name = AUTO_BY_MODEL_TYPE.get(served_model_type(settings.llm_model) or "", "text-only")
    name = PROFILE_ALIASES.get(name, name)
    if name not in BUILTIN_PROFILES:
        raise ConfigurationError(
            f"unknown vision profile {name!r}; choose auto or one of {', '.join(sorted(BUILTIN_PROFILES))}"
        )
    profile = BUILTIN_PROFILES[name]
    changes: dict[str, Any] = {}
    if profile.image_input is ImageInput.EMBEDS and profile.family == "qwen2-vl":
        folder = settings.vision_bundle or settings.llm_model
        if not folder or served_model_type(folder) not in ("qwen2_5_vl",):
            raise ConfigurationError(
                f"the {name} profile runs the Qwen2.5-VL vision tower in radassist: set RADASSIST_VISION_BUNDLE "
                "to the local Qwen2.5-VL model folder (Lingshu-7B, CheXOne)"
            )
        changes["bundle"] = str(folder)
        changes["embeds_dtype"] = settings.vision_embeds_dtype
    elif profile.image_input is ImageInput.EMBEDS:
        if bundle is None:
            raise ConfigurationError(
                f"the {name} profile needs a vision bundle: set RADASSIST_VISION_BUNDLE to a model folder "
                "converted by `radassist models convert`"
            )
        changes["bundle"] = str(bundle)
        changes["embeds_dtype"] = settings.vision_embeds_dtype
    if profile.sees_images:
        changes["max_images"] = settings.vision_max_images
    if profile.volume_slices:
        changes["volume_slices"] = settings.vision_volume_slices
    if profile.image_input is ImageInput.EMBEDS and settings.vision_embeds_cache:
        changes["send_once"] = True  # the sidecar (assistant.llm.embeds_cache) answers what vLLM's cache cannot
    if (profile.send_once or changes.get("send_once")) and not settings.vision_send_once:
        changes["send_once"] = False
    return profile.replace(**changes) if changes else profile


def embeds_part(payload: str | dict[str, str], uuid: str | None = None) -> dict[str, Any]:
    """vLLM's chat content part for precomputed image embeddings (base64 of ``torch.save(tensor)``, or for
    Qwen2.5-VL a dict of such tensors: ``image_embeds`` and ``image_grid_thw``)."""
    part: dict[str, Any] = {"type": "image_embeds", "image_embeds": payload}
    if uuid:
        part["uuid"] = uuid
    return part


def cached_part(image_input: ImageInput | str, uuid: str) -> dict[str, Any]:
    """An image part with a null payload: vLLM takes the item from its multimodal cache by ``uuid``.

    A server that no longer holds it answers 400 "Cache miss ... data is not provided" (see
    :func:`is_cache_miss`); the caller then sends the full part again.
    """
    if not uuid:
        raise ValueError("a part without its payload needs the uuid the server knows the image by")
    kind = "image_embeds" if ImageInput(image_input) is ImageInput.EMBEDS else "image_url"
    return {"type": kind, kind: None, "uuid": uuid}


def is_cache_miss(message: str) -> bool:
    """Whether a server error says an image sent by uuid alone is not in its cache (vLLM 0.32's wording)."""
    low = message.lower()
    return "cache miss" in low and "not provided" in low


def qwen_embeds_payload(embeds: Any, grid_thw: tuple[int, int, int]) -> dict[str, str]:
    """vLLM's Qwen2.5-VL embeddings payload: base64 ``torch.save`` of the (T, H) embeddings and the (3,) grid
    (one item's grid is 1-D: vLLM stacks the items itself)."""
    import torch

    return {
        "image_embeds": tensor_payload(embeds),
        "image_grid_thw": tensor_payload(torch.tensor(list(grid_thw), dtype=torch.int64)),
    }


def tensor_payload(tensor: Any) -> str:
    """Base64 of ``torch.save(tensor)``: how vLLM's chat API takes a tensor."""
    import torch

    buffer = io.BytesIO()
    torch.save(tensor.contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def pixels_part(rendering: np.ndarray, max_side: int = 1024, uuid: str | None = None) -> dict[str, Any]:
    """An ``image_url`` part holding the rendering as a PNG data URL (a fresh image: no metadata)."""
    from PIL import Image as PILImageModule

    image = to_rgb_pil(rendering) if np.asarray(rendering).ndim == 3 else PILImageModule.fromarray(
        np.ascontiguousarray(rendering), mode="L"
    )
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        image = image.resize(size, PILImageModule.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if uuid:
        part["uuid"] = uuid
    return part


def image_parts(
    profile: ModelProfile,
    renderings: Sequence[np.ndarray],
    cached: Sequence[CachedEmbedding] | None = None,
    uuids: Sequence[str] | None = None,
) -> tuple[tuple[dict[str, Any], ...], str | None]:
    """(content parts for the images, a note for the prompt) under ``profile``.

    ``embeds`` needs ``cached`` (one entry per rendering, same order; a Qwen2.5-VL entry's payload is the JSON
    of :func:`qwen_embeds_payload`); ``pixels`` encodes the renderings; ``none`` returns no part and
    :data:`TEXT_ONLY_NOTE`. ``uuids`` (one per rendering) label the parts for vLLM's multimodal cache.
    """
    if profile.image_input is ImageInput.NONE:
        return (), (TEXT_ONLY_NOTE if renderings else None)
    if uuids is not None and len(uuids) != len(renderings):
        raise ValueError("one uuid per rendering")
    ids: Sequence[str | None] = uuids if uuids is not None else [None] * len(renderings)
    if profile.image_input is ImageInput.EMBEDS:
        if cached is None or len(cached) != len(renderings):
            raise ValueError("the embeds profile needs one cached embedding per rendering")
        return tuple(embeds_part(_embeds_payload(entry.payload), u) for entry, u in zip(cached, ids, strict=True)), None
    return tuple(pixels_part(r, profile.pixel_max_side, u) for r, u in zip(renderings, ids, strict=True)), None


def _embeds_payload(payload: str) -> str | dict[str, str]:
    """A cached payload as sent: LLaVA's is the base64 tensor itself, Qwen2.5-VL's a JSON object of tensors."""
    if payload.startswith("{"):
        data = json.loads(payload)
        return {str(k): str(v) for k, v in data.items()}
    return payload
