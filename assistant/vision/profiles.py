"""Model profiles: how a language model takes images, as configuration rather than branches in the code.

Three ways, one per :class:`ImageInput`:
- ``embeds``: LLaVA-family checkpoints served by vLLM with ``--enable-mm-embeds --limit-mm-per-prompt
  '{"image": 0}'``. The client encodes (open_clip) and projects each image and sends ``image_embeds`` parts.
  Needs a *vision bundle*: the encoder spec and projector weights written by ``radassist models convert``.
- ``pixels``: models vLLM runs with their own vision tower (MedGemma, Qwen2-VL): the client sends the
  windowed, de-identified rendering as a PNG ``image_url`` part.
- ``none``: text-only models (the embedded CPU default): no image part; the prompt carries the de-identified
  metadata and says plainly that the image itself was not analysed.

Public names: ``ImageInput``, ``ModelProfile``, ``BUILTIN_PROFILES``, ``VisionBundle``, ``load_bundle``,
``find_bundle``, ``profile_from_settings``, ``image_parts``, ``embeds_part``, ``pixels_part``,
``TEXT_ONLY_NOTE``, ``BUNDLE_DIR``, ``BUNDLE_FILE``.
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

    @property
    def sees_images(self) -> bool:
        return self.image_input is not ImageInput.NONE

    def replace(self, **changes: Any) -> ModelProfile:
        import dataclasses

        return dataclasses.replace(self, **changes)


# Profiles as data. "auto" (profile_from_settings) picks "llava-embeds" when the served model folder holds a
# vision bundle, "text-only" otherwise.
BUILTIN_PROFILES: dict[str, ModelProfile] = {
    "text-only": ModelProfile("text-only", ImageInput.NONE, max_images=0),
    "llava-embeds": ModelProfile("llava-embeds", ImageInput.EMBEDS),
    "medgemma": ModelProfile("medgemma", ImageInput.PIXELS, pixel_max_side=896),  # SigLIP at 896 px
    "qwen2-vl": ModelProfile("qwen2-vl", ImageInput.PIXELS),
    "pixels": ModelProfile("pixels", ImageInput.PIXELS),
}
PROFILE_ALIASES = {"embeds": "llava-embeds", "none": "text-only", "text": "text-only"}


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


def profile_from_settings(settings: Settings) -> ModelProfile:
    """The profile the settings ask for; ``auto`` looks for a vision bundle beside the served model."""
    name = (settings.vision_profile or "auto").strip().lower()
    bundle = settings.vision_bundle
    if bundle is None and settings.llm_model and find_bundle(settings.llm_model) is not None:
        bundle = settings.llm_model
    if name == "auto":
        name = "llava-embeds" if bundle is not None else "text-only"
    name = PROFILE_ALIASES.get(name, name)
    if name not in BUILTIN_PROFILES:
        raise ConfigurationError(
            f"unknown vision profile {name!r}; choose auto or one of {', '.join(sorted(BUILTIN_PROFILES))}"
        )
    profile = BUILTIN_PROFILES[name]
    changes: dict[str, Any] = {}
    if profile.image_input is ImageInput.EMBEDS:
        if bundle is None:
            raise ConfigurationError(
                f"the {name} profile needs a vision bundle: set RADASSIST_VISION_BUNDLE to a model folder "
                "converted by `radassist models convert`"
            )
        changes["bundle"] = str(bundle)
        changes["embeds_dtype"] = settings.vision_embeds_dtype
    if profile.sees_images:
        changes["max_images"] = settings.vision_max_images
    return profile.replace(**changes) if changes else profile


def embeds_part(payload: str) -> dict[str, Any]:
    """vLLM's chat content part for precomputed image embeddings (base64 of ``torch.save(tensor)``)."""
    return {"type": "image_embeds", "image_embeds": payload}


def pixels_part(rendering: np.ndarray, max_side: int = 1024) -> dict[str, Any]:
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
    return {"type": "image_url", "image_url": {"url": url}}


def image_parts(
    profile: ModelProfile,
    renderings: Sequence[np.ndarray],
    cached: Sequence[CachedEmbedding] | None = None,
) -> tuple[tuple[dict[str, Any], ...], str | None]:
    """(content parts for the images, a note for the prompt) under ``profile``.

    ``embeds`` needs ``cached`` (one entry per rendering, same order); ``pixels`` encodes the renderings;
    ``none`` returns no part and :data:`TEXT_ONLY_NOTE`.
    """
    if profile.image_input is ImageInput.NONE:
        return (), (TEXT_ONLY_NOTE if renderings else None)
    if profile.image_input is ImageInput.EMBEDS:
        if cached is None or len(cached) != len(renderings):
            raise ValueError("the embeds profile needs one cached embedding per rendering")
        return tuple(embeds_part(entry.payload) for entry in cached), None
    return tuple(pixels_part(r, profile.pixel_max_side) for r in renderings), None
