"""CT/MR volumes for MedGemma 1.5: N evenly sampled slices, each an RGB image of three windows.

MedGemma 1.5 reads a CT as a sequence of 2D slices whose colour channels are three fixed Hounsfield windows
(Google Health, medgemma repository, ``notebooks/high_dimensional_ct_hugging_face.ipynb``: 85 slices sampled
evenly through the volume; red = wide window -1024..1024 HU, green = soft tissue -135..215 HU (C40/W350),
blue = brain 0..80 HU (C40/W80)). The HU come from the stored values through Rescale Slope/Intercept
(PS3.3 C.11.1.1.2), applied at ingest *before* windowing; each window maps linearly onto 0..255 and is rounded
to the nearest level (not truncated, which would bias every pixel half a level dark; an exact half goes to the even
level, as NumPy rounds).

MR has no absolute scale: each slice of an MR series is sent as its ordinary 8-bit rendering, repeated over the
three channels, in the same slice order.

Public names: ``CT_WINDOWS``, ``DEFAULT_VOLUME_SLICES``, ``window_channel``, ``ct_rgb``, ``volume_indices``,
``volume_slices``, ``volume_images``, ``VolumeSlice``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import RadassistError
from assistant.imaging.study import Modality, Series, Study, representative_indices

if TYPE_CHECKING:
    from assistant.vision.profiles import ModelProfile
    from assistant.vision.service import ImageRef

# (name, lowest HU, highest HU) per channel, red → blue; MedGemma 1.5 CT notebook (see module docstring).
CT_WINDOWS: tuple[tuple[str, float, float], ...] = (
    ("wide", -1024.0, 1024.0),
    ("soft tissue", -135.0, 215.0),
    ("brain", 0.0, 80.0),
)
DEFAULT_VOLUME_SLICES = 85  # the notebook's number of slices per CT


def window_channel(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """(rows, cols) uint8: ``hu`` clipped to [low, high], mapped linearly onto 0..255, rounded to nearest."""
    if not high > low:
        raise ValueError(f"a window needs high > low, got {low}..{high}")
    unit = (np.clip(np.asarray(hu, dtype=np.float64), low, high) - low) / (high - low)  # (rows, cols) in [0, 1]
    return np.rint(unit * 255.0).astype(np.uint8)


def ct_rgb(hu: np.ndarray, windows: tuple[tuple[str, float, float], ...] = CT_WINDOWS) -> np.ndarray:
    """(rows, cols, 3) uint8: one channel per window of a CT slice given in HU."""
    if np.asarray(hu).ndim != 2:
        raise ValueError(f"a CT slice is a 2-D array of HU, got shape {np.asarray(hu).shape}")
    return np.stack([window_channel(hu, low, high) for _, low, high in windows], axis=-1)


def volume_indices(count: int, n: int) -> list[int]:
    """``n`` slice indices spread evenly over ``count`` slices (first and last included), ascending."""
    return representative_indices(count, n)


@dataclass(frozen=True, eq=False)
class VolumeSlice:
    """One sampled slice: its RGB rendering, its 0-based index in the series and a de-identified label."""

    rendering: np.ndarray  # (rows, cols, 3) uint8
    index: int
    label: str


def volume_slices(series: Series, n: int = DEFAULT_VOLUME_SLICES) -> list[VolumeSlice]:
    """``n`` evenly sampled slices of ``series`` in the series' order (by position when ingest could sort by it).

    CT slices become three-window RGB images; MR (and other greyscale) slices their 8-bit rendering on three
    channels. Colour series are refused: they are not cross-sectional volumes.
    """
    if n < 1:
        raise RadassistError(f"the number of volume slices must be at least 1, got {n}")
    if not series.images:
        raise RadassistError("the series has no images")
    if any(image.is_color for image in series.images):
        raise RadassistError("a colour series is not a CT/MR volume: send its images one by one instead")
    is_ct = series.modality is Modality.CT
    total = series.frame_count
    out = []
    for position, index in enumerate(volume_indices(total, n)):
        image = series.images[index]
        if is_ct:
            rgb = ct_rgb(image.values)
        else:
            grey = np.asarray(image.rendering)
            rgb = np.repeat(grey[:, :, None], 3, axis=2)
        label = f"{series.modality.value} slice {index + 1}/{total} ({position + 1} of {min(n, total)} sent)"
        out.append(VolumeSlice(np.ascontiguousarray(rgb), index, label))
    return out


def volume_images(series: Series, profile: ModelProfile, n: int | None = None) -> list[ImageRef]:
    """The volume as the profile sends it: ``n`` (default the profile's ``volume_slices``) three-window slices
    as labelled :class:`ImageRef` s, in slice order; more than the profile's image limit is a clear error."""
    from assistant.vision.service import ImageRef

    wanted = n if n is not None else profile.volume_slices
    if wanted < 1:
        raise RadassistError(
            f"the {profile.name} profile does not send volumes (set RADASSIST_VISION_PROFILE=medgemma, or pass a "
            "number of slices)"
        )
    count = min(wanted, series.frame_count)
    if count > profile.max_images:
        raise RadassistError(
            f"a volume of {count} slices is more than the {profile.max_images} images the {profile.name} profile "
            f"sends per request: raise RADASSIST_VISION_MAX_IMAGES (and the server's --limit-mm-per-prompt) to "
            f"{count}, or lower RADASSIST_VISION_VOLUME_SLICES"
        )
    return [ImageRef(item.rendering, item.label) for item in volume_slices(series, wanted)]


def volume_in_view(study: Study, series: int, profile: ModelProfile, n: int | None = None) -> tuple[
    list[ImageRef], list[dict[str, Any]]
]:  # fmt: skip
    """ "The whole series" for a profile that takes volumes (MedGemma 1.5): :func:`volume_images` of one series of
    ``study``, with what was sent per slice in the shape ``image_in_view`` reports (``window`` names the three
    windows, since no single window applies)."""
    from assistant.vision.service import ImageRef

    if not 0 <= series < len(study.series):
        raise RadassistError(f"series {series + 1} does not exist (the study has {len(study.series)})")
    chosen = study.series[series]
    wanted = n if n is not None else profile.volume_slices
    refs = volume_images(chosen, profile, wanted)  # the limits are checked there
    window = "+".join(name for name, _, _ in CT_WINDOWS) if chosen.modality is Modality.CT else "default"
    frames = volume_indices(chosen.frame_count, wanted)  # the slices volume_images sampled, in the same order
    sent = [{"series": series + 1, "frame": index + 1, "window": window} for index in frames]
    return [ImageRef(ref.rendering, f"series {series + 1}, {ref.label}") for ref in refs], sent
