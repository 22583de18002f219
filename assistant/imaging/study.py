"""Imaging domain types: studies, series and frames ready for display, with de-identified summaries.

Nothing here knows pydicom: ``assistant.imaging.ingest`` builds these objects from files; the UI, the vision encoder and
the prompt modes consume them. Monochrome frames keep their modality values (Hounsfield units for CT) so a
frame can be re-windowed without reading the file again.

Public names
------------
- ``Modality``, ``PhotometricInterpretation``, ``PatientSex``, ``BurnedInAnnotation``, ``VOILUTFunction``,
  ``WindowPreset``: coded values as Enums (public functions accept the string or the Enum).
- ``Window(center, width, name="custom", function=VOILUTFunction.LINEAR)``: a VOI window (PS3.3 C.11.2.1.2).
- ``VoiLut(first_mapped, data, bits, name)``: an explicit VOI LUT from the file (PS3.3 C.11.2.1.1).
- ``WindowSpec``: what ``render`` accepts as a window: None (the frame's default), a preset name or
  ``WindowPreset``, ``"CENTER,WIDTH"`` or ``"CENTER/WIDTH"``, a ``(center, width)`` pair, a ``Window`` or a
  ``VoiLut``, or the name of one of the frame's own windows (``Image.windows``).
- ``parse_window(spec) -> Window``: a preset or a custom window from text (CLI, UI).
- ``default_ct_preset(body_part, description) -> WindowPreset``: the CT preset for a body part.
- ``Image``: one frame (``values``, ``rendering``, ``window``, ``windows``, geometry); ``Image.render(window)``.
- ``Series``: ordered frames, ``representative(n)``, ``montage(n, tile)``, ``summary()``.
- ``Study``: series of one study, ``patient_key``, ``warnings``, ``summary()``.
- ``Redaction``, ``RedactionBox``: what the burned-in text check blacked out of a frame (``Image.redaction``,
  ``Image.pixels_withheld``; ``assistant.imaging.burned_in``).
- ``render(image, window=None) -> np.ndarray``: 8-bit (rows, cols) grey or (rows, cols, 3) RGB.
- ``montage(images, tile=256, window=None) -> np.ndarray``: a labelled grid for a quick look.
- ``WindowError``: an unknown or invalid window (an ``IngestError``).

``Study.summary()`` / ``Series.summary()`` are the only views of a study that may reach prompts, logs or
indexes: they hold no names, IDs, dates, addresses or free text other than cleaned descriptions.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeAlias

import numpy as np

from assistant.errors import IngestError


class WindowError(IngestError):
    """A window name or centre/width that cannot be used."""

    code = "bad_window"


class Modality(enum.StrEnum):
    """Modality (0008,0060), PS3.3 C.7.3.1.1.1 defined terms; UNKNOWN when absent or not standard."""

    AR = "AR"
    ASMT = "ASMT"
    AU = "AU"
    BDUS = "BDUS"
    BI = "BI"
    BMD = "BMD"
    CR = "CR"
    CT = "CT"
    DG = "DG"
    DOC = "DOC"
    DX = "DX"
    ECG = "ECG"
    EPS = "EPS"
    ES = "ES"
    GM = "GM"
    HC = "HC"
    HD = "HD"
    IO = "IO"
    IVOCT = "IVOCT"
    IVUS = "IVUS"
    KO = "KO"
    MG = "MG"
    MR = "MR"
    NM = "NM"
    OCT = "OCT"
    OP = "OP"
    OPT = "OPT"
    OT = "OT"
    PR = "PR"
    PT = "PT"
    PX = "PX"
    REG = "REG"
    RF = "RF"
    RG = "RG"
    RTDOSE = "RTDOSE"
    RTIMAGE = "RTIMAGE"
    RTPLAN = "RTPLAN"
    RTSTRUCT = "RTSTRUCT"
    SEG = "SEG"
    SM = "SM"
    SR = "SR"
    TG = "TG"
    US = "US"
    XA = "XA"
    XC = "XC"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: object) -> Modality:
        """The Enum for a Modality string; UNKNOWN for anything else."""
        text = str(value or "").strip().upper()
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN


class PhotometricInterpretation(enum.StrEnum):
    """Photometric Interpretation (0028,0004), PS3.3 C.7.6.3.1.2."""

    MONOCHROME1 = "MONOCHROME1"
    MONOCHROME2 = "MONOCHROME2"
    PALETTE_COLOR = "PALETTE COLOR"
    RGB = "RGB"
    YBR_FULL = "YBR_FULL"
    YBR_FULL_422 = "YBR_FULL_422"
    YBR_PARTIAL_420 = "YBR_PARTIAL_420"
    YBR_ICT = "YBR_ICT"
    YBR_RCT = "YBR_RCT"

    @property
    def is_monochrome(self) -> bool:
        return self in (PhotometricInterpretation.MONOCHROME1, PhotometricInterpretation.MONOCHROME2)


class PatientSex(enum.StrEnum):
    """Patient's Sex (0010,0040), PS3.3 C.7.1.1: M, F, O; UNKNOWN when absent."""

    MALE = "M"
    FEMALE = "F"
    OTHER = "O"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: object) -> PatientSex:
        """The Enum for a Patient's Sex string; UNKNOWN for anything else."""
        text = str(value or "").strip().upper()
        return {"M": cls.MALE, "F": cls.FEMALE, "O": cls.OTHER}.get(text, cls.UNKNOWN)


class BurnedInAnnotation(enum.StrEnum):
    """Burned In Annotation (0028,0301), PS3.3 C.7.6.1.1.8: YES means identifying text may be in the pixels."""

    YES = "YES"
    NO = "NO"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: object) -> BurnedInAnnotation:
        """The Enum for a Burned In Annotation string; UNKNOWN for anything else."""
        text = str(value or "").strip().upper()
        return {"YES": cls.YES, "NO": cls.NO}.get(text, cls.UNKNOWN)


class VOILUTFunction(enum.StrEnum):
    """VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3; LINEAR when absent."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"

    @classmethod
    def parse(cls, value: object) -> VOILUTFunction:
        """The Enum for a VOI LUT Function string; LINEAR (the default) for anything else."""
        text = str(value or "").strip().upper()
        try:
            return cls(text)
        except ValueError:
            return cls.LINEAR


@dataclass(frozen=True)
class Window:
    """A VOI window: centre and width in modality units (HU for CT), PS3.3 C.11.2.1.2."""

    center: float
    width: float
    name: str = "custom"
    function: VOILUTFunction = VOILUTFunction.LINEAR

    def __post_init__(self) -> None:
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise WindowError(f"window centre and width must be finite numbers, got {self.center}/{self.width}")
        # PS3.3 C.11.2.1.2.1: width >= 1 for LINEAR; > 0 for LINEAR_EXACT (C.11.2.1.3.2) and SIGMOID.
        minimum_ok = self.width >= 1 if self.function is VOILUTFunction.LINEAR else self.width > 0
        if not minimum_ok:
            raise WindowError(f"window width must be at least 1, got {self.width}")
        object.__setattr__(self, "function", VOILUTFunction.parse(self.function))

    def describe(self) -> dict[str, Any]:
        """Name, centre and width, for summaries."""
        return {"name": self.name, "center": _plain_number(self.center), "width": _plain_number(self.width)}


@dataclass(frozen=True, eq=False)
class VoiLut:
    """An explicit VOI LUT from the file (VOI LUT Sequence, PS3.3 C.11.2.1.1)."""

    first_mapped: int
    data: np.ndarray  # (entries,) LUT output values
    bits: int  # LUT Descriptor third value: significant bits of each entry
    name: str = "VOI LUT"

    def __post_init__(self) -> None:
        if self.data.ndim != 1 or self.data.size == 0:
            raise WindowError(f"a VOI LUT needs a non-empty 1-D table, got shape {self.data.shape}")
        if not 1 <= self.bits <= 16:
            raise WindowError(f"a VOI LUT entry must have 1 to 16 bits, got {self.bits}")
        self.data.flags.writeable = False

    def describe(self) -> dict[str, Any]:
        """Name and LUT shape, for summaries."""
        return {"name": self.name, "lut_entries": int(self.data.size), "first_mapped": self.first_mapped}


class WindowPreset(enum.Enum):
    """Named CT windows (centre, width) in HU.

    Values are the usual ones in radiology teaching (Radiopaedia "Windowing (CT)"): brain W80 L40, subdural
    W215 L75, lungs W1500 L-600, mediastinum W350 L50, abdominal soft tissue W400 L50, liver W150 L30,
    bone W1800 L400.
    """

    LUNG = (-600.0, 1500.0)
    MEDIASTINUM = (50.0, 350.0)
    SOFT_TISSUE = (50.0, 400.0)
    LIVER = (30.0, 150.0)
    BONE = (400.0, 1800.0)
    BRAIN = (40.0, 80.0)
    SUBDURAL = (75.0, 215.0)

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def window(self) -> Window:
        center, width = self.value
        return Window(center, width, self.label)

    @classmethod
    def parse(cls, name: str | WindowPreset) -> WindowPreset:
        """The preset for a name such as "lung", "soft tissue", "abdomen" or "Mediastinum"."""
        if isinstance(name, WindowPreset):
            return name
        key = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
        preset = _PRESET_ALIASES.get(key)
        if preset is None:
            raise WindowError(f"unknown window {name!r}; choose one of {', '.join(sorted(_PRESET_ALIASES))}")
        return preset


_PRESET_ALIASES: dict[str, WindowPreset] = {
    "lung": WindowPreset.LUNG,
    "lungs": WindowPreset.LUNG,
    "mediastinum": WindowPreset.MEDIASTINUM,
    "mediastinal": WindowPreset.MEDIASTINUM,
    "soft_tissue": WindowPreset.SOFT_TISSUE,
    "abdomen": WindowPreset.SOFT_TISSUE,
    "liver": WindowPreset.LIVER,
    "bone": WindowPreset.BONE,
    "brain": WindowPreset.BRAIN,
    "subdural": WindowPreset.SUBDURAL,
}

WindowLike: TypeAlias = Window | VoiLut
WindowSpec: TypeAlias = str | WindowPreset | Window | VoiLut | tuple[float, float] | None

_CUSTOM_WINDOW = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[,/:]\s*(\d+(?:\.\d+)?)\s*$")


# Input validation, not a clinical fact: stored pixel values are at most 32 bits, and after the modality LUT no
# modality's units (HU, MR signal, PET Bq/ml) come near ten million; a typed window beyond it is a typo.
MAX_WINDOW_VALUE = 10_000_000.0


def _typed_window(center: float, width: float) -> Window:
    """A window a person typed: finite, width at least 1 and both within +-MAX_WINDOW_VALUE."""
    if not (math.isfinite(center) and math.isfinite(width)):
        raise WindowError(f"window centre and width must be finite numbers, got {center}/{width}")
    if abs(center) > MAX_WINDOW_VALUE or abs(width) > 2 * MAX_WINDOW_VALUE:
        raise WindowError(
            f"window {center:g}/{width:g} is not a plausible window (centre within +-{MAX_WINDOW_VALUE:,.0f}, width "
            f"up to {2 * MAX_WINDOW_VALUE:,.0f}); a CT lung window is e.g. -600/1500"
        )
    return Window(center, width)


def parse_window(spec: str | WindowPreset | tuple[float, float] | Window) -> Window:
    """A preset by name, or a custom window from ``"CENTER,WIDTH"``, ``"CENTER/WIDTH"`` or a pair (refused when
    not plausible: see ``MAX_WINDOW_VALUE``)."""
    if isinstance(spec, Window):
        return spec
    if isinstance(spec, WindowPreset):
        return spec.window
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise WindowError(f"a window is a (centre, width) pair, got {len(spec)} numbers")
        try:
            return _typed_window(float(spec[0]), float(spec[1]))
        except (TypeError, ValueError) as exc:
            raise WindowError(f"a window is two numbers (centre, width), got {spec!r}") from exc
    match = _CUSTOM_WINDOW.match(str(spec))
    if match:
        return _typed_window(float(match.group(1)), float(match.group(2)))
    return WindowPreset.parse(spec).window


# Body Part Examined (PS3.16 Annex L defined terms) → the CT window a radiologist opens first.
_BODY_PART_PRESETS: dict[str, WindowPreset] = {
    **dict.fromkeys(("HEAD", "BRAIN", "SKULL", "HEADNECK"), WindowPreset.BRAIN),
    **dict.fromkeys(("CHEST", "THORAX", "LUNG", "CHESTABDOMEN", "HEART"), WindowPreset.MEDIASTINUM),
    **dict.fromkeys(
        (
            "CSPINE", "TSPINE", "LSPINE", "SSPINE", "SPINE", "EXTREMITY", "HIP", "KNEE", "SHOULDER", "ANKLE",
            "WRIST", "ELBOW", "HAND", "FOOT", "LEG", "ARM", "FOREARM", "FEMUR", "TIBIA", "PELVISBONE",
        ),
        WindowPreset.BONE,
    ),
    "LIVER": WindowPreset.LIVER,
}
_DESCRIPTION_PRESETS: tuple[tuple[re.Pattern[str], WindowPreset], ...] = (
    (re.compile(r"\b(lung|pulm|hrct)", re.I), WindowPreset.LUNG),
    (re.compile(r"\b(bone|osseous|skeletal)", re.I), WindowPreset.BONE),
    (re.compile(r"\b(brain|head)\b", re.I), WindowPreset.BRAIN),
)


def default_ct_preset(body_part: str | None, description: str | None = None) -> WindowPreset:
    """The CT preset for a body part (a "lung"/"bone" series description wins); soft tissue otherwise."""
    for pattern, preset in _DESCRIPTION_PRESETS:
        if description and pattern.search(description):
            return preset
    key = re.sub(r"[\s_\-]+", "", (body_part or "").upper())
    return _BODY_PART_PRESETS.get(key, WindowPreset.SOFT_TISSUE)


# ---------------------------------------------------------------------------------------------------------
# Rendering: VOI (PS3.3 C.11.2) → presentation inversion (C.7.6.3.1.2, C.11.6) → 8 bits.


def _linear_unit(x: np.ndarray, window: Window) -> np.ndarray:
    """Window output in [0, 1] per PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1."""
    c, w = window.center, window.width
    if window.function is VOILUTFunction.SIGMOID:
        # Clipped: far outside the window exp() overflows float64, and the result is 0 or 1 anyway.
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -60.0, 60.0)))
    if window.function is VOILUTFunction.LINEAR_EXACT:
        y = (x - c) / w + 0.5
    elif w <= 1:
        # PS3.3 C.11.2.1.2.1 with width 1: a step at c - 0.5.
        y = (x > c - 0.5).astype(np.float64)
    else:
        y = (x - (c - 0.5)) / (w - 1) + 0.5
    return np.clip(y, 0.0, 1.0)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] → 0..255, rounding half up."""
    return np.floor(unit * 255.0 + 0.5).astype(np.uint8)


def _lut_over(values: np.ndarray, fn: Any) -> np.ndarray | None:
    """Apply ``fn`` (float array → uint8) through a lookup table when values are 8/16-bit integers."""
    if values.dtype in (np.uint8, np.uint16):
        top = int(values.max()) + 1 if values.size else 1  # a 12-bit image needs 4096 entries, not 65536
        table = fn(np.arange(top, dtype=np.float64))
        return np.asarray(table[values], dtype=np.uint8)
    if values.dtype in (np.int8, np.int16):
        unsigned = np.uint8 if values.dtype == np.int8 else np.uint16
        # Index the table by the unsigned view: entry k holds the value whose two's complement bits are k.
        domain = np.arange(1 << (8 * values.dtype.itemsize), dtype=np.int64).astype(unsigned).view(values.dtype)
        table = fn(domain.astype(np.float64))
        return np.asarray(table[values.view(unsigned)], dtype=np.uint8)
    return None


def apply_window(values: np.ndarray, window: WindowLike, invert: bool = False) -> np.ndarray:
    """Modality values → 8-bit grey through a window or VOI LUT, inverted for MONOCHROME1."""

    def grey(x: np.ndarray) -> np.ndarray:
        if isinstance(window, VoiLut):
            out = _voi_lut_unit(x, window)
        else:
            out = _linear_unit(x, window)
        g = _to_uint8(out)
        return 255 - g if invert else g

    fast = _lut_over(values, grey)
    if fast is not None:
        return fast
    return grey(values.astype(np.float64, copy=False))


def _voi_lut_unit(x: np.ndarray, lut: VoiLut) -> np.ndarray:
    """PS3.3 C.11.2.1.1: inputs below the first mapped value take the first entry, above the range the last."""
    index = np.clip(np.floor(x) - lut.first_mapped, 0, lut.data.size - 1).astype(np.int64)
    top = float((1 << lut.bits) - 1)
    peak = float(lut.data.max())
    if peak > top:  # descriptor understates the LUT's depth (seen in the wild): scale by what it holds
        top = float((1 << int(peak).bit_length()) - 1)
    return np.asarray(lut.data[index], dtype=np.float64) / top


# ---------------------------------------------------------------------------------------------------------
# Domain objects


@dataclass(frozen=True, order=True)
class RedactionBox:
    """A blacked-out rectangle of a frame, in its pixel coordinates (column x, row y, width, height)."""

    x: int
    y: int
    width: int
    height: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.width, self.height]


@dataclass(frozen=True)
class Redaction:
    """What the burned-in text check did to one file's frames: boxes and counts, never the text it read.

    ``withheld``: identifying text was still legible after redaction, so the frames' pixels were blanked; the
    image must not be shown, sent to a model or indexed (``Image.pixels_withheld``).
    """

    reason: str = ""  # why the frames were read (modality, flag, picture...)
    boxes: tuple[RedactionBox, ...] = ()
    identifiers_found: bool = False  # a header identifier or an ID-like number was among the boxes
    withheld: bool = False
    ocr_passes: int = 0
    seconds: float = 0.0
    timed_out: bool = False  # the check ran out of time: withheld unread (``TIMED_OUT_MESSAGE``)

    @property
    def redacted(self) -> bool:
        return bool(self.boxes)

    @property
    def message(self) -> str | None:
        """What the user is told about withheld frames, or None."""
        if not self.withheld:
            return None
        return TIMED_OUT_MESSAGE if self.timed_out else WITHHELD_MESSAGE

    def describe(self) -> dict[str, Any]:
        """Counts and boxes for summaries and audit rows (no text)."""
        return {
            "boxes": [b.as_list() for b in self.boxes],
            "box_count": len(self.boxes),
            "withheld": self.withheld,
            "timed_out": self.timed_out,
        }


WITHHELD_MESSAGE = (
    "This image still showed patient details after burned-in text was blacked out, so its pixels are withheld: "
    "it is not shown, sent to the model or indexed. The header facts are still available."
)
TIMED_OUT_MESSAGE = (
    "Reading this image for burned-in text took too long, so its pixels are withheld unread: it is not shown, sent "
    "to the model or indexed. The header facts are still available; loading it again when the server is less busy "
    "may succeed."
)
REDACTED_MESSAGE = "Burned-in text that may identify the patient was blacked out in the image shown."


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Image:
    """One displayable frame: modality values, its default 8-bit rendering and its geometry."""

    values: np.ndarray  # (rows, cols) modality values (HU for CT) or (rows, cols, 3) uint8 RGB
    rendering: np.ndarray  # (rows, cols) or (rows, cols, 3) uint8, with ``window`` applied
    photometric_interpretation: PhotometricInterpretation  # as stored in the file
    window: WindowLike | None  # the window of ``rendering``; None for colour
    windows: tuple[WindowLike, ...] = ()  # the file's windows and VOI LUTs, then presets / auto
    invert: bool = False  # MONOCHROME1, or Presentation LUT Shape INVERSE (PS3.3 C.11.6.1.2)
    sop_instance_uid: str = ""  # pseudonymous (remapped) UID
    frame_number: int = 1  # 1-based frame in its file (PS3.3 C.7.6.6)
    instance_number: int | None = None
    image_position_patient: tuple[float, float, float] | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None = None
    pixel_spacing: tuple[float, float] | None = None  # (row, column) spacing in mm, PS3.3 10.7.1.3
    slice_thickness: float | None = None
    redaction: Redaction | None = None  # the burned-in text check of this frame's file; None when not read

    def __post_init__(self) -> None:
        if self.values.ndim not in (2, 3) or self.rendering.shape != self.values.shape:
            raise ValueError(
                f"values and rendering must share a (rows, cols[, 3]) shape, got {self.values.shape} "
                f"and {self.rendering.shape}"
            )
        if self.rendering.dtype != np.uint8:
            raise ValueError(f"rendering must be uint8, got {self.rendering.dtype}")
        _readonly(self.values)
        _readonly(self.rendering)

    @property
    def rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def columns(self) -> int:
        return int(self.values.shape[1])

    @property
    def is_color(self) -> bool:
        return self.values.ndim == 3

    @property
    def pixels_withheld(self) -> bool:
        """True when identifying text stayed legible after redaction: the pixels are blank and must not leave."""
        return self.redaction is not None and self.redaction.withheld

    def resolve_window(self, spec: WindowSpec) -> WindowLike | None:
        """The window meant by ``spec``: one of this frame's own by name, a preset, or a custom one."""
        if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "default")):
            return self.window
        if isinstance(spec, Window | VoiLut):
            return spec
        if isinstance(spec, str):
            wanted = spec.strip().lower()
            for own in self.windows:
                if own.name.lower() == wanted:
                    return own
        return parse_window(spec)

    def render(self, window: WindowSpec = None) -> np.ndarray:
        """This frame in 8 bits with another window; see ``render``."""
        return render(self, window)


def render(image: Image, window: WindowSpec = None) -> np.ndarray:
    """8-bit display array of ``image``: (rows, cols) grey, or (rows, cols, 3) RGB for colour frames.

    ``window`` None gives the frame's default rendering (read-only); otherwise the modality values are
    windowed again (PS3.3 C.11.2) and MONOCHROME1 frames inverted. Colour frames ignore the window.
    """
    chosen = image.resolve_window(window)
    if image.is_color or chosen is None or chosen == image.window:
        return image.rendering
    return apply_window(image.values, chosen, invert=image.invert)


def representative_indices(count: int, n: int) -> list[int]:
    """``n`` evenly spaced indices into ``count`` items, first and last included, no repeats."""
    if count <= 0 or n <= 0:
        return []
    if n >= count:
        return list(range(count))
    if n == 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (n - 1)) for i in range(n)})


def montage(
    images: Sequence[Image], tile: int = 256, window: WindowSpec = None, labels: Sequence[str] | None = None
) -> np.ndarray:
    """A grid of frames, each fitted into a ``tile``-pixel square (aspect kept), for a quick look."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if not images:
        raise ValueError("montage needs at least one image")
    if not 16 <= tile <= 2048:
        raise ValueError(f"tile must be 16 to 2048 pixels, got {tile}")
    color = any(im.is_color for im in images)
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    canvas = PILImage.new("RGB" if color else "L", (cols * tile, rows * tile), 0)
    draw = ImageDraw.Draw(canvas)
    for i, im in enumerate(images):
        pixels = PILImage.fromarray(np.ascontiguousarray(render(im, window)))
        if color and pixels.mode != "RGB":
            pixels = pixels.convert("RGB")
        scale = min(tile / im.columns, tile / im.rows)
        size = (max(1, round(im.columns * scale)), max(1, round(im.rows * scale)))
        pixels = pixels.resize(size, PILImage.Resampling.LANCZOS if scale < 1 else PILImage.Resampling.BILINEAR)
        x0 = (i % cols) * tile + (tile - size[0]) // 2
        y0 = (i // cols) * tile + (tile - size[1]) // 2
        canvas.paste(pixels, (x0, y0))
        if labels is not None and i < len(labels):
            draw.text(((i % cols) * tile + 3, (i // cols) * tile + 2), labels[i], fill=255 if not color else (255,) * 3)
    return _readonly(np.asarray(canvas))


_MAX_REGIONS = 200  # boxes listed in a series summary; the count is always complete


def _plain_number(x: float) -> float | int:
    """Whole floats as ints, others rounded for display (JSON summaries)."""
    return int(x) if float(x).is_integer() else round(float(x), 4)


@dataclass(frozen=True, eq=False)
class Series:
    """Frames of one series, ordered along the slice normal (or by instance number, or by file order)."""

    series_instance_uid: str  # pseudonymous
    modality: Modality
    images: tuple[Image, ...]
    series_number: int | None = None
    series_description: str | None = None  # cleaned of identifiers (PS3.15 E.3.5)
    body_part_examined: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    burned_in_annotation: BurnedInAnnotation = BurnedInAnnotation.UNKNOWN
    ordering: str = "file"  # "position", "instance" or "file": how ``images`` were ordered
    spacing_between_slices: float | None = None  # mm, from the sorted positions
    source: str = "dicom"  # "dicom", "png" or "jpeg"
    header: tuple[tuple[str, str, str], ...] = ()  # de-identified (tag, keyword, value) of the first file
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("a series needs at least one image")
        object.__setattr__(self, "modality", Modality.parse(self.modality))

    @property
    def frame_count(self) -> int:
        return len(self.images)

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        return self.images[0].pixel_spacing

    @property
    def slice_thickness(self) -> float | None:
        return self.images[0].slice_thickness

    def representative(self, n: int = 9) -> tuple[Image, ...]:
        """``n`` evenly spaced frames (first and last included)."""
        return tuple(self.images[i] for i in representative_indices(len(self.images), n))

    def montage(self, n: int = 9, tile: int = 256, window: WindowSpec = None) -> np.ndarray:
        """A labelled grid of ``n`` representative frames ("k/N" = position in the series)."""
        indices = representative_indices(len(self.images), n)
        labels = [f"{i + 1}/{len(self.images)}" for i in indices]
        return montage([self.images[i] for i in indices], tile=tile, window=window, labels=labels)

    def summary(self) -> dict[str, Any]:
        """De-identified facts about this series: safe for prompts, logs and indexes."""
        first = self.images[0]
        return {
            "series_uid": self.series_instance_uid,
            "modality": self.modality.value,
            "body_part": self.body_part_examined,
            "view": self.view_position,
            "laterality": self.laterality,
            "series_description": self.series_description,
            "series_number": self.series_number,
            "frame_count": self.frame_count,
            "rows": first.rows,
            "columns": first.columns,
            "color": first.is_color,
            "pixel_spacing_mm": list(self.pixel_spacing) if self.pixel_spacing else None,
            "slice_thickness_mm": self.slice_thickness,
            "spacing_between_slices_mm": self.spacing_between_slices,
            "window": first.window.describe() if first.window is not None else None,
            "windows_available": [w.name for w in first.windows],
            "burned_in_annotation": self.burned_in_annotation.value,
            "source": self.source,
            "burned_in_text": self.burned_in_text(),
        }

    def burned_in_text(self) -> dict[str, Any] | None:
        """What the burned-in text check did to this series (counts and boxes, no text); None if not read."""
        checked = [(i, im.redaction) for i, im in enumerate(self.images) if im.redaction is not None]
        if not checked:
            return None
        regions = [[i + 1, *b.as_list()] for i, r in checked for b in r.boxes]
        return {
            "checked_frames": len(checked),
            "redacted_frames": sum(1 for _, r in checked if r.redacted),
            "withheld_frames": sum(1 for _, r in checked if r.withheld),
            "timed_out_frames": sum(1 for _, r in checked if r.timed_out),
            "box_count": len(regions),
            "regions": regions[:_MAX_REGIONS],  # [frame, x, y, width, height], frame 1-based
            "reason": checked[0][1].reason,
        }


@dataclass(frozen=True, eq=False)
class Study:
    """Series of one study, with a pseudonymous patient key linking it to that patient's priors."""

    study_instance_uid: str  # pseudonymous
    series: tuple[Series, ...]
    patient_key: str | None = None  # salted hash of the patient ID (assistant.imaging.deid.Pseudonymizer)
    study_description: str | None = None  # cleaned of identifiers
    study_date: date | None = None  # shifted consistently per patient (PS3.15 E.3.6); never in summary()
    patient_sex: PatientSex = PatientSex.UNKNOWN
    age_group: str | None = None  # e.g. "60-69", "90+", "<1"
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.series:
            raise ValueError("a study needs at least one series")

    @property
    def images(self) -> tuple[Image, ...]:
        return tuple(im for s in self.series for im in s.images)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return tuple(dict.fromkeys(s.modality for s in self.series))

    @property
    def burned_in_annotation(self) -> BurnedInAnnotation:
        """YES if any series says so, NO if all say NO, else UNKNOWN."""
        values = {s.burned_in_annotation for s in self.series}
        if BurnedInAnnotation.YES in values:
            return BurnedInAnnotation.YES
        return BurnedInAnnotation.NO if values == {BurnedInAnnotation.NO} else BurnedInAnnotation.UNKNOWN

    @property
    def pixels_redacted(self) -> bool:
        """True when burned-in text was blacked out in any frame shown."""
        return any(im.redaction is not None and im.redaction.redacted for im in self.images)

    def redaction_audit(self) -> tuple[str, ...]:
        """One compact entry per frame the burned-in text check read, for an audit row: series and frame numbers,
        box count, withheld flag and the boxes as x,y,w,h (never text), e.g. "burned-in s1f1 n2 w0 10,8,120,20;…"."""
        out: list[str] = []
        for s_index, series in enumerate(self.series, start=1):
            for f_index, image in enumerate(series.images, start=1):
                r = image.redaction
                if r is None:
                    continue
                boxes = ";".join(",".join(str(v) for v in b.as_list()) for b in r.boxes[:_MAX_REGIONS])
                out.append(f"burned-in s{s_index}f{f_index} n{len(r.boxes)} w{int(r.withheld)} {boxes}".rstrip())
        return tuple(out)

    @property
    def redaction_seconds(self) -> float:
        """Wall time spent reading this study's frames for burned-in text."""
        return sum(im.redaction.seconds for im in self.images if im.redaction is not None)

    @property
    def redaction_outcome(self) -> str:
        """"withheld" when any frame still showed an identifier after redaction, else "ok" (for the audit row)."""
        return "withheld" if any(im.pixels_withheld for im in self.images) else "ok"

    @property
    def redaction_message(self) -> str | None:
        """What the viewer says about redacted or withheld pixels, or None."""
        messages = [im.redaction.message for im in self.images if im.pixels_withheld and im.redaction is not None]
        if messages:
            return next((m for m in messages if m != WITHHELD_MESSAGE), messages[0])  # the rarer one says more
        return REDACTED_MESSAGE if self.pixels_redacted else None

    def summary(self) -> dict[str, Any]:
        """De-identified facts about this study: the only view of it that may reach prompts, logs, indexes."""
        return {
            "study_uid": self.study_instance_uid,
            "patient_key": self.patient_key,
            "modalities": [m.value for m in self.modalities],
            "study_description": self.study_description,
            "age_group": self.age_group,
            "sex": self.patient_sex.value,
            "series_count": len(self.series),
            "image_count": sum(s.frame_count for s in self.series),
            "burned_in_annotation": self.burned_in_annotation.value,
            "pixels_redacted": self.pixels_redacted,
            "pixels_withheld": sum(1 for im in self.images if im.pixels_withheld),
            "redaction_message": self.redaction_message,
            "warnings": list(self.warnings),
            "series": [s.summary() for s in self.series],
        }
