"""Study ingest: DICOM files, folders, zip archives and PNG/JPEG pictures → de-identified domain objects.

pydicom is confined to this module and ``assistant.imaging.deid``: what leaves is ``assistant.imaging.study`` types.

Public names
------------
- ``load_study(paths, keys, limits=None) -> IngestResult``: ingest files, folders and zips; ``keys`` is the
  ``Settings`` (salt in ``settings.data_dir``), a ``Pseudonymizer`` or the salt bytes. Bad files do not stop
  the others: each is reported in ``IngestResult.files``.
- ``IngestResult``: ``studies``, ``files`` (one ``FileOutcome`` per file), ``study`` (the first study or
  None), ``errors``, ``ok``, ``summary_for(outcome)``.
- ``FileOutcome(path, ok, error, code, study_uid, series_uid)``.
- ``IngestLimits(max_pixels, max_file_bytes, max_archive_members, max_archive_bytes)``: decompression-bomb
  and size limits.
- Errors (all ``IngestError``, each with a short ``code``): ``FileUnreadableError``, ``EmptyFileError``,
  ``NotAnImageError``, ``TruncatedFileError``, ``NoPixelDataError``, ``InvalidHeaderError``,
  ``PixelDataLengthError``, ``UnsupportedTransferSyntaxError``, ``PixelDecodeError``, ``ImageTooLargeError``,
  ``ArchiveError``.
- Re-exported from ``assistant.imaging.study``: ``render``, ``Study``, ``Series``, ``Image``, ``Window``,
  ``WindowPreset``, ``parse_window``.

Pixel pipeline per frame: decode (pydicom decoder plugins: native, deflate, RLE, JPEG baseline/extended/
lossless, JPEG-LS, JPEG 2000, HTJ2K) → Modality LUT (PS3.3 C.11.1) → VOI LUT or window (C.11.2) →
MONOCHROME1 / INVERSE inversion (C.7.6.3.1.2, C.11.6.1.2) → 8 bits. Colour: RGB, YBR (converted to RGB),
palette colour (C.7.6.3.1.5). Series are ordered along the slice normal (C.7.6.2.1.1).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from assistant.errors import IngestError
from assistant.imaging import deid
from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.study import (
    BurnedInAnnotation,
    Image,
    Modality,
    PatientSex,
    PhotometricInterpretation,
    Series,
    Study,
    VoiLut,
    VOILUTFunction,
    Window,
    WindowError,
    WindowLike,
    WindowPreset,
    apply_window,
    default_ct_preset,
    parse_window,
    render,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from assistant.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "ArchiveError", "EmptyFileError", "FileOutcome", "FileUnreadableError", "Image", "ImageTooLargeError",
    "IngestLimits", "IngestResult", "InvalidHeaderError", "NoPixelDataError", "NotAnImageError",
    "PixelDataLengthError", "PixelDecodeError", "Series", "Study", "TruncatedFileError",
    "UnsupportedTransferSyntaxError", "Window", "WindowError", "WindowPreset", "load_study", "parse_window",
    "render",
]


# ---------------------------------------------------------------------------------------------------------
# Errors: messages a clinician understands; they never quote values from the file.


class FileUnreadableError(IngestError):
    """The file does not exist or cannot be read."""

    code = "unreadable"


class EmptyFileError(IngestError):
    """The file has no content."""

    code = "empty"


class NotAnImageError(IngestError):
    """Neither DICOM nor a PNG/JPEG picture."""

    code = "not_dicom"


class TruncatedFileError(IngestError):
    """The file ends early: an interrupted copy or download."""

    code = "truncated"


class NoPixelDataError(IngestError):
    """A DICOM object without an image (report, plan, index...)."""

    code = "no_pixel_data"


class InvalidHeaderError(IngestError):
    """The image description in the header is missing or impossible."""

    code = "invalid_header"


class PixelDataLengthError(IngestError):
    """The pixel data does not match the image size stated in the header."""

    code = "pixel_data_length"


class UnsupportedTransferSyntaxError(IngestError):
    """Compressed in a way this installation cannot decode."""

    code = "unsupported_syntax"


class PixelDecodeError(IngestError):
    """The compressed image could not be decoded."""

    code = "decode_failed"


class ImageTooLargeError(IngestError):
    """Dimensions beyond the safety limit (decompression bomb protection)."""

    code = "too_large"


class ArchiveError(IngestError):
    """A zip archive that cannot be opened or is unsafe to unpack."""

    code = "bad_archive"


@dataclass(frozen=True)
class IngestLimits:
    """Safety limits against decompression bombs and runaway uploads."""

    # 2**30 samples ≈ a 600-slice 512×512 CT three times over, or breast tomosynthesis; ~2 GiB as 16-bit.
    max_pixels: int = 1 << 30
    max_file_bytes: int = 4 << 30
    max_archive_members: int = 100_000
    max_archive_bytes: int = 16 << 30

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_file_bytes", "max_archive_members", "max_archive_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file (a zip member is "archive.zip!member")."""

    path: str
    ok: bool
    error: str | None = None
    code: str | None = None
    study_uid: str | None = None  # pseudonymous, when ok
    series_uid: str | None = None  # pseudonymous, when ok


@dataclass(frozen=True)
class IngestResult:
    """The studies built from an upload, and one outcome per file (bad files are reported, not fatal)."""

    studies: tuple[Study, ...]
    files: tuple[FileOutcome, ...]

    @property
    def study(self) -> Study | None:
        """The first study, or None when nothing could be ingested."""
        return self.studies[0] if self.studies else None

    @property
    def errors(self) -> tuple[FileOutcome, ...]:
        return tuple(f for f in self.files if not f.ok)

    @property
    def ok(self) -> bool:
        """True when every file was ingested (and there was at least one)."""
        return bool(self.files) and all(f.ok for f in self.files)

    def series_by_uid(self, uid: str) -> Series | None:
        """The series with this pseudonymous UID."""
        for study in self.studies:
            for series in study.series:
                if series.series_instance_uid == uid:
                    return series
        return None

    def summary_for(self, outcome: FileOutcome) -> dict[str, Any] | None:
        """The de-identified summary of the series a file went into (None for a failed file)."""
        series = self.series_by_uid(outcome.series_uid) if outcome.series_uid else None
        return series.summary() if series is not None else None


# ---------------------------------------------------------------------------------------------------------
# Sources: files, folders, zip members


@dataclass(frozen=True)
class _Source:
    """One input file: a path on disk, or the bytes of a zip member."""

    display: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        return Path(self.path or "").read_bytes()

    def size(self) -> int:
        return len(self.data) if self.data is not None else Path(self.path or "").stat().st_size

    def head(self, n: int) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with open(Path(self.path or ""), "rb") as fh:
            return fh.read(n)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else open(Path(self.path or ""), "rb")


_SKIP_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db", "desktop.ini"}


def _natural_key(text: str) -> list[Any]:
    """Sort "IM2" before "IM10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _skip_member(name: str) -> bool:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    return (
        not parts
        or parts[0] == "__MACOSX"
        or parts[-1] in _SKIP_NAMES
        or any(p.startswith(".") for p in parts)
    )


def _expand(paths: Sequence[Path | str], limits: IngestLimits) -> Iterator[_Source | FileOutcome]:
    """Each input file, every file of a folder (recursively) and every member of a zip, in natural order."""
    for raw in paths:
        path = Path(raw)
        display = str(raw)
        if path.is_dir():
            found: list[Path] = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural_key)
                found.extend(Path(root) / f for f in sorted(files, key=_natural_key) if not _skip_member(f))
            if not found:
                yield _failure(display, FileUnreadableError("The folder contains no files."))
            for file in found:
                yield from _expand_file(file, str(file), limits)
        else:
            yield from _expand_file(path, display, limits)


def _expand_file(path: Path, display: str, limits: IngestLimits) -> Iterator[_Source | FileOutcome]:
    if not path.exists():
        yield _failure(display, FileUnreadableError("The file does not exist."))
        return
    if path.suffix.lower() == ".zip" or _looks_like_zip(path):
        yield from _expand_zip(path, display, limits)
    else:
        yield _Source(display, path=path)


def _looks_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _expand_zip(path: Path, display: str, limits: IngestLimits) -> Iterator[_Source | FileOutcome]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        yield _failure(display, ArchiveError("The zip archive is damaged or incomplete and cannot be opened."), exc)
        return
    with archive:
        try:
            members = [m for m in archive.infolist() if not m.is_dir() and not _skip_member(m.filename)]
        except Exception as exc:  # a damaged central directory can fail here too
            yield _failure(display, ArchiveError("The zip archive's table of contents is damaged."), exc)
            return
        if not members:
            yield _failure(display, ArchiveError("The zip archive contains no files."))
            return
        if len(members) > limits.max_archive_members:
            yield _failure(display, ArchiveError(f"The zip archive has too many files ({len(members)})."))
            return
        total = sum(m.file_size for m in members)
        if total > limits.max_archive_bytes:
            yield _failure(
                display,
                ArchiveError(f"The zip archive would unpack to {total / 2**30:.1f} GiB, more than is safe to open."),
            )
            return
        for member in sorted(members, key=lambda m: _natural_key(m.filename)):
            name = f"{display}!{member.filename}"
            if member.flag_bits & 0x1:
                yield _failure(name, ArchiveError("This file in the zip archive is password-protected."))
                continue
            if member.file_size > limits.max_file_bytes:
                yield _failure(name, ImageTooLargeError("This file in the zip archive is too large to open."))
                continue
            try:
                data = archive.read(member)  # zipfile stops at the declared size and checks the CRC
            except Exception as exc:  # BadZipFile, zlib.error, NotImplementedError (method), OSError...
                damaged = ArchiveError("This file in the zip archive is damaged and cannot be unpacked.")
                yield _failure(name, damaged, exc)
                continue
            yield _Source(name, data=data)


def _failure(display: str, error: IngestError, cause: BaseException | None = None) -> FileOutcome:
    if cause is not None:
        logger.debug("rejected an input (%s) after %s", getattr(error, "code", "error"), type(cause).__name__)
    return FileOutcome(display, False, str(error), getattr(error, "code", "error"))


# ---------------------------------------------------------------------------------------------------------
# Per-file records


@dataclass
class _Frame:
    values: np.ndarray
    photometric: PhotometricInterpretation
    invert: bool = False
    file_windows: list[WindowLike] = field(default_factory=list)
    natural: Window | None = None  # full stored range, for data that is display-ready (≤ 8 bits)
    padding: tuple[float, float] | None = None
    sop_uid: str = ""
    frame_number: int = 1
    instance_number: int | None = None
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None


@dataclass
class _Record:
    """One ingested file: its frames and what its series and study need to know."""

    outcome_index: int
    study_key: str
    series_key: str
    frames: list[_Frame]
    modality: Modality = Modality.UNKNOWN
    body_part: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    study_description: str | None = None
    burned_in: BurnedInAnnotation = BurnedInAnnotation.UNKNOWN
    patient_key: str | None = None
    sex: PatientSex = PatientSex.UNKNOWN
    age_group: str | None = None
    study_date: date | None = None
    header: tuple[tuple[str, str, str], ...] = ()
    source: str = "dicom"
    warnings: list[str] = field(default_factory=list)
    display_name: str = ""


# ---------------------------------------------------------------------------------------------------------
# pydicom configuration and helpers

_pydicom_configured = False


def _configure_pydicom() -> None:
    """Quiet pydicom's value validation on reading: its warnings quote element values (PHI)."""
    global _pydicom_configured
    if _pydicom_configured:
        return
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
    _pydicom_configured = True


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """An element value, or ``default`` when absent, empty or unparseable."""
    try:
        value = ds.get(keyword, default)
    except Exception:
        return default
    return default if value is None or value == "" else value


def _fg(ds: Dataset, frame: int, sequence: str, keyword: str) -> Any:
    """Functional group value for a frame: per-frame, then shared, then top level (PS3.3 C.7.6.16)."""
    for holder in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = _get(ds, holder)
        if not groups:
            continue
        try:
            group = groups[frame] if holder.startswith("PerFrame") else groups[0]
            items = _get(group, sequence)
            if items:
                value = _get(items[0], keyword)
                if value is not None:
                    return value
        except (IndexError, TypeError, AttributeError):
            continue
    return _get(ds, keyword)


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """``n`` finite floats from a multi-valued DS element, else None."""
    try:
        items = [float(v) for v in _as_list(value)]
    except (TypeError, ValueError):
        return None
    if len(items) != n or not all(math.isfinite(v) for v in items):
        return None
    return tuple(items)


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


# ---------------------------------------------------------------------------------------------------------
# DICOM


_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_POSSIBLY_BURNED_IN = {Modality.US, Modality.XC, Modality.ES, Modality.OT, Modality.DOC}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


def _sop_class_name(ds: Dataset) -> str | None:
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = _get(ds, "SOPClassUID") or (_get(meta, "MediaStorageSOPClassUID") if meta is not None else None)
    if not uid:
        return None
    name = UID(str(uid)).name
    return name if name != str(uid) else None


def _read_dicom(src: _Source, force: bool) -> Dataset:
    import pydicom
    from pydicom.errors import InvalidDicomError

    with src.open() as fh:
        try:
            return pydicom.dcmread(fh, force=force)
        except InvalidDicomError:
            raise NotAnImageError("The file is not a DICOM file or a PNG/JPEG picture.") from None
        except (EOFError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, EOFError) and src.path is not None:
                raise FileUnreadableError("The file could not be read.") from exc
            raise TruncatedFileError("The DICOM file ends early: it is incomplete or damaged.") from None
        except Exception:
            # from None: pydicom's message may quote header values (PHI).
            raise InvalidHeaderError("The DICOM header is damaged and cannot be read.") from None


def _ensure_transfer_syntax(ds: Dataset) -> str:
    """The transfer syntax UID; files without file meta (PS3.10 7.1) get the encoding they were read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    ts = _get(meta, "TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        raise InvalidHeaderError("The DICOM file does not say how its pixel data is encoded (no transfer syntax).")
    uid = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid
    return str(uid)


def _check_dimensions(ds: Dataset, limits: IngestLimits) -> tuple[int, int, int, int]:
    """(frames, rows, columns, samples) from the header, validated before any decoding (bomb check)."""
    values: dict[str, int] = {}
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        value = _int(_get(ds, keyword))
        if value is None:
            raise InvalidHeaderError(f"The DICOM image header is incomplete: {keyword} is missing or invalid.")
        values[keyword] = value
    frames_raw = _get(ds, "NumberOfFrames", 1)
    frames = _int(frames_raw)
    if frames is None:
        raise InvalidHeaderError("The DICOM image header is invalid: NumberOfFrames is not a number.")
    samples = _int(_get(ds, "SamplesPerPixel", 1))
    rows, cols = values["Rows"], values["Columns"]
    if rows < 1 or cols < 1 or frames < 1:
        raise InvalidHeaderError(f"The DICOM image header gives an empty image ({rows}×{cols}, {frames} frame(s)).")
    if samples not in (1, 3):
        raise InvalidHeaderError(f"The DICOM image has {samples} samples per pixel; only 1 or 3 are supported.")
    if values["BitsAllocated"] not in (1, 8, 16, 32, 64):
        raise InvalidHeaderError(f"The DICOM image has an unsupported BitsAllocated of {values['BitsAllocated']}.")
    total = rows * cols * frames * samples
    if total > limits.max_pixels:
        raise ImageTooLargeError(
            f"The image is too large to open safely ({rows}×{cols}×{frames} frames, {total / 1e6:.0f} million "
            f"samples; the limit is {limits.max_pixels / 1e6:.0f} million)."
        )
    return frames, rows, cols, samples


def _decode(ds: Dataset, ts: str, shape: tuple[int, int, int, int]) -> tuple[np.ndarray, str]:
    """All frames as (frames, rows, cols[, 3]) and the photometric interpretation after decoding."""
    from pydicom.pixels import convert_color_space, get_decoder
    from pydicom.pixels.utils import get_expected_length
    from pydicom.uid import UID

    name = UID(ts).name
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise UnsupportedTransferSyntaxError(
            f"The image is compressed as '{name}', which cannot be decoded here."
        ) from None
    if not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            f"The image is compressed as '{name}', and the decoder for it is not installed."
        )
    if ts in _NATIVE_SYNTAXES and "PixelData" in ds:
        try:
            expected = get_expected_length(ds, unit="bytes")
            actual = len(ds.PixelData)
        except Exception:
            expected = actual = 0
        if actual < expected:
            raise PixelDataLengthError(
                f"The pixel data is shorter than the image size in the header ({actual} of {expected} bytes): "
                "the file is truncated or damaged."
            )
    frames, rows, cols, samples = shape
    try:
        # pydicom may warn about oddities it fixes (excess padding, J2K signedness): messages without PHI.
        # They are not silenced with warnings.catch_warnings(), which is not thread-safe (the UI is threaded).
        arr, meta = decoder.as_array(ds, as_rgb=True)  # type: ignore[arg-type]  # DecodeOptions is a TypedDict
    except MemoryError:
        raise ImageTooLargeError("The image is too large to decode in the memory available.") from None
    except Exception as exc:
        text = str(exc)
        if "less than expected" in text or "shorter" in text:
            raise PixelDataLengthError(
                "The pixel data is shorter than the image size in the header: the file is truncated or damaged."
            ) from exc
        raise PixelDecodeError(f"The image data ({name}) is damaged or uses an unsupported variant.") from exc
    expected_shape: tuple[int, ...] = (frames, rows, cols) + ((3,) if samples == 3 else ())
    if frames == 1 and arr.shape == expected_shape[1:]:
        arr = arr[np.newaxis]
    if arr.shape != expected_shape:
        raise PixelDataLengthError(
            f"The decoded image has shape {arr.shape}, not the {expected_shape} stated in the header."
        )
    photometric = str(meta.get("photometric_interpretation", _get(ds, "PhotometricInterpretation", "")))
    if samples == 3 and photometric.startswith("YBR") and photometric not in ("YBR_ICT", "YBR_RCT"):
        arr = convert_color_space(arr, photometric, "RGB")
        photometric = "RGB"
    return arr, photometric


def _to_uint8_color(arr: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """RGB or palette colour frames as 8-bit RGB (PS3.3 C.7.6.3.1.5 palette colour LUTs)."""
    from pydicom.pixels import apply_color_lut

    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(arr, ds)
            descriptor = _as_list(_get(ds, "RedPaletteColorLookupTableDescriptor"))
        except Exception as exc:
            raise PixelDecodeError("The palette colour table of the image is damaged.") from exc
        bits = _int(descriptor[2]) if len(descriptor) == 3 else 8
        if bits == 16 and rgb.size and int(rgb.max()) > 255:
            rgb = rgb >> 8
        return np.asarray(rgb, dtype=np.uint8)
    if arr.dtype == np.uint8:
        return arr
    stored = _int(_get(ds, "BitsStored")) or arr.dtype.itemsize * 8
    if stored > 8:
        arr = arr >> (stored - 8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _modality_lut(ds: Dataset, frame: int) -> tuple[str, Any]:
    """("lut", (first, table)) | ("rescale", (slope, intercept)) | ("none", None), PS3.3 C.11.1."""
    lut_seq = _get(ds, "ModalityLUTSequence")
    if lut_seq:
        item = lut_seq[0]
        descriptor = _as_list(_get(item, "LUTDescriptor"))
        data = _lut_data(item, ds)
        if len(descriptor) == 3 and data is not None:
            first = _signed_first(int(descriptor[1]), ds)
            return "lut", (first, data)
    slope = _float(_fg(ds, frame, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _float(_fg(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept"))
    if slope is None and intercept is None:
        return "none", None
    slope = 1.0 if slope is None or slope == 0 else slope
    return "rescale", (slope, intercept or 0.0)


def _signed_first(first: int, ds: Dataset) -> int:
    # PS3.3 C.11.1.1.1 / C.11.2.1.1: the first mapped value is US or SS as the pixel data; read as US it is
    # 2**16 - n for a negative n.
    if first >= 1 << 15 and _int(_get(ds, "PixelRepresentation")) == 1:
        return first - (1 << 16)
    return first


def _lut_data(item: Dataset, ds: Dataset) -> np.ndarray | None:
    """LUT Data as an unsigned array (VR US or OW, PS3.3 C.11.1.1.1)."""
    try:
        elem = item["LUTData"]
    except KeyError:
        return None
    value = elem.value
    if isinstance(value, bytes | bytearray):
        little = True
        meta = getattr(ds, "file_meta", None)
        ts = str(_get(meta, "TransferSyntaxUID", "")) if meta is not None else ""
        if ts == "1.2.840.10008.1.2.2":
            little = False
        data = np.frombuffer(bytes(value), dtype="<u2" if little else ">u2").astype(np.uint16)
    else:
        data = np.asarray(_as_list(value), dtype=np.int64)
        if data.size and (data.min() < 0 or data.max() > 0xFFFF):
            return None
        data = data.astype(np.uint16)
    return data if data.size else None


def _apply_modality(stored: np.ndarray, kind: str, params: Any) -> np.ndarray:
    """Stored values → modality values, in the smallest dtype that holds them (PS3.3 C.11.1)."""
    if kind == "none":
        return stored
    if kind == "lut":
        first, table = params
        index = np.clip(stored.astype(np.int64) - first, 0, table.size - 1)
        return table[index]
    slope, intercept = params
    if float(slope).is_integer() and float(intercept).is_integer() and np.issubdtype(stored.dtype, np.integer):
        s, i = int(slope), int(intercept)
        lo, hi = (int(stored.min()), int(stored.max())) if stored.size else (0, 0)
        # A dtype that holds the stored values, the products and the results: the arithmetic runs in place.
        extremes = (lo, hi, lo * s, hi * s, lo * s + i, hi * s + i)
        low, high = min(extremes), max(extremes)
        dtype = next(
            (np.dtype(t) for t in (np.int16, np.int32) if np.iinfo(t).min <= low and high <= np.iinfo(t).max),
            np.dtype(np.int64),
        )
        out = stored.astype(dtype)
        if s != 1:
            out *= s
        if i:
            out += i
        return out
    out = stored.astype(np.float32)
    out *= np.float32(slope)
    out += np.float32(intercept)
    return out


def _file_windows(ds: Dataset, frame: int, identifiers: list[str]) -> list[WindowLike]:
    """The file's VOI LUTs (PS3.3 C.11.2.1.1) then windows (C.11.2.1.2), named by their explanations."""
    out: list[WindowLike] = []
    names: set[str] = set()

    def unique(name: str | None, fallback: str) -> str:
        base = (deid.clean_text(name, identifiers) if name else None) or fallback
        candidate, n = base, 2
        while candidate.lower() in names:
            candidate, n = f"{base} ({n})", n + 1
        names.add(candidate.lower())
        return candidate

    for i, item in enumerate(_as_list(_get(ds, "VOILUTSequence"))):
        descriptor = _as_list(_get(item, "LUTDescriptor"))
        data = _lut_data(item, ds)
        if len(descriptor) != 3 or data is None:
            continue
        bits = _int(descriptor[2]) or 16
        bits = bits if 1 <= bits <= 16 else 16
        first = _signed_first(int(descriptor[1]), ds)
        out.append(VoiLut(first, data, bits, unique(_get(item, "LUTExplanation"), f"VOI LUT {i + 1}")))
    centers = _as_list(_fg(ds, frame, "FrameVOILUTSequence", "WindowCenter"))
    widths = _as_list(_fg(ds, frame, "FrameVOILUTSequence", "WindowWidth"))
    explanations = _as_list(_fg(ds, frame, "FrameVOILUTSequence", "WindowCenterWidthExplanation"))
    function = VOILUTFunction.parse(_fg(ds, frame, "FrameVOILUTSequence", "VOILUTFunction"))
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        center, width = _float(c), _float(w)
        if center is None or width is None:
            continue
        try:
            name = unique(str(explanations[i]) if i < len(explanations) else None, f"file window {i + 1}")
            out.append(Window(center, width, name, function))
        except WindowError:
            logger.debug("skipped an invalid window in a file (width %s)", width)
    return out


def _geometry(ds: Dataset, frame: int) -> dict[str, Any]:
    position = _floats(_fg(ds, frame, "PlanePositionSequence", "ImagePositionPatient"), 3)
    orientation = _floats(_fg(ds, frame, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
    spacing = _floats(_fg(ds, frame, "PixelMeasuresSequence", "PixelSpacing"), 2)
    thickness = _float(_fg(ds, frame, "PixelMeasuresSequence", "SliceThickness"))
    return {
        "position": position,  # type: ignore[dict-item]
        "orientation": orientation,
        "pixel_spacing": spacing if spacing and all(s > 0 for s in spacing) else None,
        "slice_thickness": thickness if thickness and thickness > 0 else None,
    }


def _fallback_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    """Imager Pixel Spacing (detector plane, PS3.3 10.7.1.1) or ultrasound region deltas (C.8.5.5)."""
    imager = _floats(_get(ds, "ImagerPixelSpacing"), 2)
    if imager and all(s > 0 for s in imager):
        return (imager[0], imager[1]), (
            "Pixel spacing is measured at the detector (Imager Pixel Spacing): distances include magnification."
        )
    regions = _as_list(_get(ds, "SequenceOfUltrasoundRegions"))
    if regions:
        item = regions[0]
        # PS3.3 C.8.5.5.1.15: units 3 = cm.
        if _int(_get(item, "PhysicalUnitsXDirection")) == 3 and _int(_get(item, "PhysicalUnitsYDirection")) == 3:
            dx, dy = _float(_get(item, "PhysicalDeltaX")), _float(_get(item, "PhysicalDeltaY"))
            if dx and dy and dx > 0 and dy > 0:
                return (abs(dy) * 10.0, abs(dx) * 10.0), "Pixel spacing comes from the first ultrasound region."
    return None, None


def _ingest_dicom(
    src: _Source, index: int, force: bool, keys: Pseudonymizer, limits: IngestLimits, seen_series: dict[str, list[str]]
) -> _Record:
    _configure_pydicom()
    ds = _read_dicom(src, force)
    try:
        return _record_from_dataset(ds, src, index, keys, limits, seen_series)
    except IngestError:
        raise
    except MemoryError:
        raise ImageTooLargeError("The image is too large to decode in the memory available.") from None
    except Exception as exc:
        # Header values that pydicom cannot convert surface here; from None: the message may quote them.
        logger.debug("header error in file %d: %s", index, type(exc).__name__)
        raise InvalidHeaderError("The DICOM header holds invalid values and cannot be used.") from None


def _record_from_dataset(
    ds: Dataset, src: _Source, index: int, keys: Pseudonymizer, limits: IngestLimits, seen_series: dict[str, list[str]]
) -> _Record:
    meta = getattr(ds, "file_meta", None)
    if (meta is not None and str(_get(meta, "MediaStorageSOPClassUID", "")) == _DICOMDIR_CLASS) or (
        "DirectoryRecordSequence" in ds
    ):
        raise NoPixelDataError("This is a DICOMDIR index of a CD/DVD, not an image: open its folder instead.")
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        kind = _sop_class_name(ds)
        what = f"a '{kind}' object" if kind else "a DICOM object"
        raise NoPixelDataError(f"The file is {what} with no image in it.")
    shape = _check_dimensions(ds, limits)
    ts = _ensure_transfer_syntax(ds)
    arr, photometric_raw = _decode(ds, ts, shape)
    frames = shape[0]

    modality = Modality.parse(_get(ds, "Modality"))
    patient_id = _get(ds, "PatientID")
    patient_key = keys.patient_key(str(patient_id) if patient_id is not None else None)
    study_uid_raw = str(_get(ds, "StudyInstanceUID", "") or "")
    series_uid_raw = str(_get(ds, "SeriesInstanceUID", "") or "")
    sop_uid_raw = str(_get(ds, "SOPInstanceUID", "") or "")
    study_key = keys.uid(study_uid_raw) if study_uid_raw else keys.uid(f"nostudy:{patient_key}")
    series_key = keys.uid(series_uid_raw) if series_uid_raw else keys.uid(f"noseries:{src.display}")
    sop_uid = keys.uid(sop_uid_raw) if sop_uid_raw else keys.uid(f"nosop:{src.display}")
    record = _Record(index, study_key, series_key, [], modality=modality, patient_key=patient_key)
    record.display_name = src.display

    first_of_series = series_key not in seen_series
    if first_of_series:
        # Identifiers of the first file serve its whole series (window names, descriptions).
        identifiers = seen_series[series_key] = deid.collect_identifiers(ds)
        burned_in = BurnedInAnnotation.parse(_get(ds, "BurnedInAnnotation"))
        # The display header leaves out per-frame functional groups: one item per frame, technical only.
        record.header = deid.header_rows(
            deid.deidentify(
                ds, keys, burned_in=burned_in.value, identifiers=identifiers,
                drop=("PerFrameFunctionalGroupsSequence",),
            )
        )
        record.series_description = deid.clean_text(_get(ds, "SeriesDescription"), identifiers)
        record.study_description = deid.clean_text(_get(ds, "StudyDescription"), identifiers)
    record.burned_in = BurnedInAnnotation.parse(_get(ds, "BurnedInAnnotation"))
    body_part = str(_get(ds, "BodyPartExamined", "") or "").strip().upper()
    record.body_part = body_part or None
    record.view_position = str(_get(ds, "ViewPosition", "") or "").strip().upper() or None
    record.laterality = (
        str(_get(ds, "ImageLaterality", "") or _get(ds, "Laterality", "") or "").strip().upper() or None
    )
    record.series_number = _int(_get(ds, "SeriesNumber"))
    record.sex = PatientSex.parse(_get(ds, "PatientSex"))
    study_date = None
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        study_date = deid.parse_da(_get(ds, keyword))
        if study_date:
            break
    record.age_group = deid.age_group(_get(ds, "PatientAge"), deid.parse_da(_get(ds, "PatientBirthDate")), study_date)
    shift = keys.date_shift(patient_key or study_uid_raw)
    record.study_date = study_date + shift if study_date else None

    sop_class = str(_get(ds, "SOPClassUID", "") or "")
    if record.burned_in is BurnedInAnnotation.YES:
        record.warnings.append(
            "The images may show patient details burned into the pixels (Burned In Annotation = YES); "
            "the pixels are not de-identified."
        )
    elif record.burned_in is BurnedInAnnotation.UNKNOWN and (
        modality in _POSSIBLY_BURNED_IN or sop_class.startswith(_SECONDARY_CAPTURE)
    ):
        record.warnings.append(
            "This kind of image often carries patient details burned into the pixels; check before sharing."
        )

    instance_number = _int(_get(ds, "InstanceNumber"))
    fallback_spacing, spacing_note = _fallback_spacing(ds)
    photometric = _photometric(photometric_raw)
    if photometric.is_monochrome:
        _monochrome_frames(ds, arr, photometric, seen_series[series_key], record)
    else:
        rgb = _to_uint8_color(arr, ds, photometric_raw)
        record.frames = [_Frame(rgb[f], photometric) for f in range(frames)]
    for f, frame in enumerate(record.frames):
        geometry = _geometry(ds, f)
        frame.sop_uid = sop_uid
        frame.frame_number = f + 1
        frame.instance_number = instance_number
        frame.position = geometry["position"]
        frame.orientation = geometry["orientation"]
        frame.pixel_spacing = geometry["pixel_spacing"] or fallback_spacing
        frame.slice_thickness = geometry["slice_thickness"]
    if record.frames and record.frames[0].pixel_spacing is None:
        record.warnings.append("The file gives no pixel spacing: distances cannot be measured.")
    elif spacing_note and record.frames and record.frames[0].pixel_spacing == fallback_spacing:
        record.warnings.append(spacing_note)
    return record


def _photometric(text: str) -> PhotometricInterpretation:
    try:
        return PhotometricInterpretation(text.strip().upper())
    except ValueError:
        raise InvalidHeaderError("The DICOM image has an unknown photometric interpretation.") from None


def _monochrome_frames(
    ds: Dataset, arr: np.ndarray, photometric: PhotometricInterpretation, identifiers: list[str], record: _Record
) -> None:
    """Modality LUT, windows, padding and inversion for each frame of a monochrome image."""
    frames = arr.shape[0]
    shape_lut = str(_get(ds, "PresentationLUTShape", "") or "").upper()
    # PS3.3 C.7.6.3.1.2: MONOCHROME1 shows the minimum as white; C.11.6.1.2: INVERSE on MONOCHROME2 likewise.
    # MONOCHROME1 with INVERSE is the same statement twice (C.8.11.6.1.2), not a double inversion.
    invert = photometric is PhotometricInterpretation.MONOCHROME1 or shape_lut == "INVERSE"
    per_frame = bool(_get(ds, "PerFrameFunctionalGroupsSequence"))
    bits_stored = _int(_get(ds, "BitsStored")) or arr.dtype.itemsize * 8
    signed = _int(_get(ds, "PixelRepresentation")) == 1
    pad_value = _int(_get(ds, "PixelPaddingValue"))
    pad_limit = _int(_get(ds, "PixelPaddingRangeLimit"))

    cache: dict[tuple[str, Any], np.ndarray] = {}
    windows_cache: list[WindowLike] | None = None
    for f in range(frames):
        kind, params = _modality_lut(ds, f if per_frame else 0)
        key = (kind, (params[0], id(params[1])) if kind == "lut" else params)
        if not per_frame and frames > 1:
            if key not in cache:
                cache[key] = _apply_modality(arr, kind, params)
            values = cache[key][f]
        else:
            values = _apply_modality(arr[f], kind, params)
        if per_frame or windows_cache is None:
            windows = _file_windows(ds, f, identifiers)
            if not per_frame:
                windows_cache = windows
        else:
            windows = windows_cache
        natural = None
        if kind == "none" and bits_stored <= 8 and np.issubdtype(values.dtype, np.integer):
            if signed:
                lo, hi = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1
            else:
                lo, hi = 0, (1 << bits_stored) - 1
            if hi > lo:
                natural = Window((lo + hi) / 2 + 0.5, hi - lo + 1, "full range")
        padding = None
        if pad_value is not None:
            lo_pad, hi_pad = sorted((pad_value, pad_limit if pad_limit is not None else pad_value))
            if kind == "rescale":
                slope, intercept = params
                lo_pad, hi_pad = sorted((lo_pad * slope + intercept, hi_pad * slope + intercept))
            padding = (float(lo_pad), float(hi_pad))
        record.frames.append(
            _Frame(np.ascontiguousarray(values), photometric, invert, list(windows), natural, padding)
        )


# ---------------------------------------------------------------------------------------------------------
# PNG / JPEG pictures


def _ingest_picture(src: _Source, index: int, kind: str, keys: Pseudonymizer, limits: IngestLimits) -> _Record:
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    try:
        raw = src.read()
    except OSError as exc:
        raise FileUnreadableError("The file could not be read.") from exc
    pixel_limit = min(limits.max_pixels, 1 << 28)
    try:
        # PIL checks its own global limit (Image.MAX_IMAGE_PIXELS) in open(); ours is checked before load().
        picture = PILImage.open(io.BytesIO(raw), formats=["PNG", "JPEG"])
        width, height = picture.size
        if width < 1 or height < 1:
            raise InvalidHeaderError(f"The picture has an empty size ({width}×{height}).")
        if width * height > pixel_limit:
            raise ImageTooLargeError(
                f"The picture is too large to open safely ({width}×{height} pixels; the limit is "
                f"{pixel_limit / 1e6:.0f} million)."
            )
        picture.load()
    except IngestError:
        raise
    except PILImage.DecompressionBombError:
        raise ImageTooLargeError("The picture is too large to open safely (decompression bomb check).") from None
    except UnidentifiedImageError:
        raise NotAnImageError("The file is not a readable PNG or JPEG picture.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if "truncated" in str(exc).lower():
            raise TruncatedFileError("The picture file ends early: it is incomplete or damaged.") from exc
        raise PixelDecodeError("The picture is damaged and cannot be decoded.") from exc
    except MemoryError:
        raise ImageTooLargeError("The picture is too large to decode in the memory available.") from None
    shown: PILImage.Image = picture
    try:
        shown = ImageOps.exif_transpose(picture)  # phone photos of films: honour the camera's rotation
    except Exception:
        logger.debug("picture %d: EXIF orientation unreadable; shown as stored", index)
    mode = shown.mode
    natural: Window | None
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(shown)
        if values.dtype.byteorder not in ("=", "|"):
            values = values.astype(values.dtype.newbyteorder("="))
        photometric, natural = PhotometricInterpretation.MONOCHROME2, None
    elif mode in ("1", "L") or (mode == "P" and _palette_is_grey(shown)) or mode == "LA":
        values = np.asarray(shown.convert("L"), dtype=np.uint8)
        photometric, natural = PhotometricInterpretation.MONOCHROME2, Window(128.0, 256.0, "full range")
    else:
        rgba = shown.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (0, 0, 0, 255))
        values = np.asarray(PILImage.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
        photometric, natural = PhotometricInterpretation.RGB, None
    digest = hashlib.sha256(raw).hexdigest()
    record = _Record(
        index,
        keys.uid("pictures"),
        keys.uid(f"pictures:{values.shape[0]}x{values.shape[1]}:{values.ndim}"),
        [_Frame(values, photometric, False, [], natural, None, sop_uid=keys.uid(f"picture:{digest}"))],
        source=kind,
    )
    record.display_name = src.display
    record.warnings.append(
        "Pictures carry no DICOM information (no pixel spacing, no patient link); "
        "any text burned into the picture is not de-identified."
    )
    return record


def _palette_is_grey(picture: Any) -> bool:
    palette = picture.getpalette() or []
    triples = [palette[i : i + 3] for i in range(0, len(palette), 3)]
    return all(t[0] == t[1] == t[2] for t in triples if len(t) == 3)


# ---------------------------------------------------------------------------------------------------------
# Sniffing


def _sniff(src: _Source, limits: IngestLimits) -> tuple[str, bool]:
    """("dicom"|"png"|"jpeg", force) from the first bytes; raises for empty, huge or foreign files."""
    try:
        size = src.size()
        head = src.head(132)
    except OSError as exc:
        raise FileUnreadableError("The file could not be read.") from exc
    if size == 0:
        raise EmptyFileError("The file is empty.")
    if size > limits.max_file_bytes:
        raise ImageTooLargeError(f"The file is too large to open safely ({size / 2**30:.1f} GiB).")
    if head[128:132] == b"DICM":
        return "dicom", False
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", False
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg", False
    # PS3.10 7.1 allows no preamble in some legacy media: a bare data set starts with group 0002 or 0008.
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"):
        return "dicom", True
    if size < 132 and not _is_text(head):
        raise TruncatedFileError("The file is too short to be a DICOM image: it is incomplete or not DICOM.")
    raise NotAnImageError("The file is not a DICOM file or a PNG/JPEG picture.")


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


# ---------------------------------------------------------------------------------------------------------
# Series and study assembly


def _slice_order(frames: list[_Frame]) -> tuple[list[int], str, float | None]:
    """Order of frames and how it was found; along the slice normal when geometry allows (PS3.3 C.7.6.2.1.1).

    Axial stacks run head to feet, sagittal right to left, coronal front to back, as radiologists scroll.
    """
    n = len(frames)
    order = list(range(n))
    orientations = [f.orientation for f in frames]
    positions = [f.position for f in frames]
    if n > 1 and all(o is not None for o in orientations) and all(p is not None for p in positions):
        first = np.asarray(orientations[0], dtype=np.float64)
        if all(np.allclose(np.asarray(o), first, atol=1e-3) for o in orientations):
            normal = np.cross(first[:3], first[3:])  # PS3.3 C.7.6.2.1.1: row × column direction cosines
            norm = float(np.linalg.norm(normal))
            if norm > 1e-6:
                normal /= norm
                axis = int(np.argmax(np.abs(normal)))
                # LPS axes: +z is superior, so axial goes by descending z; +x left, +y posterior ascend.
                sign = -1.0 if axis == 2 else 1.0
                sign *= 1.0 if normal[axis] >= 0 else -1.0
                distance = [float(np.dot(np.asarray(p), normal)) for p in positions]
                order = sorted(
                    range(n),
                    key=lambda i: (sign * distance[i], frames[i].instance_number or 0, frames[i].frame_number),
                )
                unique = sorted(set(round(d, 3) for d in distance))
                spacing = float(np.median(np.diff(unique))) if len(unique) > 1 else None
                return order, "position", spacing
    if n > 1 and all(f.instance_number is not None for f in frames):
        order = sorted(range(n), key=lambda i: (frames[i].instance_number, frames[i].frame_number))
        return order, "instance", None
    return order, "file", None


def _auto_window(frames: list[_Frame]) -> Window | None:
    """A window over the 0.5-99.5 percentiles of the series' values (padding excluded), for frames without one."""
    samples: list[np.ndarray] = []
    budget = 1 << 17  # samples over the whole series: percentiles need no more
    per_frame = max(1024, budget // max(1, len(frames)))
    is_float = False
    for frame in frames:
        values = frame.values
        step = max(1, math.ceil(math.sqrt(values.size / per_frame)))
        sub = values[::step, ::step].ravel()
        is_float = is_float or np.issubdtype(sub.dtype, np.floating)
        if frame.padding is not None:
            lo, hi = frame.padding
            sub = sub[(sub < lo) | (sub > hi)]
        if np.issubdtype(sub.dtype, np.floating):
            sub = sub[np.isfinite(sub)]
        if sub.size:
            samples.append(sub.astype(np.float32, copy=False))
    if not samples:
        return None
    data = np.concatenate(samples)
    lo, hi = (float(v) for v in np.percentile(data, [0.5, 99.5]))
    if hi - lo <= 0:
        lo, hi = float(data.min()), float(data.max())
    if is_float:
        width = hi - lo if hi > lo else 1.0
        return Window((lo + hi) / 2, width, "auto", VOILUTFunction.LINEAR_EXACT)
    if hi <= lo:
        hi = lo + 1
    # LINEAR (PS3.3 C.11.2.1.2.1) maps [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2] to [0, 255]: put lo and hi there.
    return Window((lo + hi) / 2 + 0.5, hi - lo + 1, "auto")


def _build_series(records: list[_Record]) -> tuple[Series, list[str]]:
    first = records[0]
    frames: list[_Frame] = []
    seen: set[tuple[str, int]] = set()
    duplicates = 0
    for record in records:
        for frame in record.frames:
            key = (frame.sop_uid, frame.frame_number)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            frames.append(frame)
    order, ordering, spacing = _slice_order(frames)
    frames = [frames[i] for i in order]
    warnings_: list[str] = list(dict.fromkeys(w for r in records for w in r.warnings))
    if duplicates:
        warnings_.append(f"{duplicates} duplicate image(s) in the upload were skipped.")

    mono = [f for f in frames if f.photometric.is_monochrome]
    needs_auto = [f for f in mono if not f.file_windows and f.natural is None]
    ct_preset = default_ct_preset(first.body_part, first.series_description) if first.modality is Modality.CT else None
    auto = _auto_window(needs_auto if needs_auto else mono) if mono and first.modality is not Modality.CT else None
    if ct_preset is None and needs_auto and auto is None:
        auto = Window(0.5, 1.0, "auto")
    images: list[Image] = []
    for frame in frames:
        if not frame.photometric.is_monochrome:
            images.append(
                Image(frame.values, frame.values, frame.photometric, None, (), False, **_image_geometry(frame))
            )
            continue
        choices: list[WindowLike] = list(frame.file_windows)
        if frame.natural is not None:
            choices.append(frame.natural)
        if ct_preset is not None:
            choices.extend(p.window for p in WindowPreset)
        if auto is not None:
            choices.append(auto)
        if frame.file_windows:
            default: WindowLike = frame.file_windows[0]
        elif frame.natural is not None:
            default = frame.natural
        elif ct_preset is not None:
            default = ct_preset.window
        else:
            default = auto if auto is not None else Window(0.5, 1.0, "auto")
        rendering = apply_window(frame.values, default, invert=frame.invert)
        images.append(
            Image(
                frame.values, rendering, frame.photometric, default, tuple(choices), frame.invert,
                **_image_geometry(frame),
            )
        )
    series = Series(
        series_instance_uid=first.series_key,
        modality=first.modality,
        images=tuple(images),
        series_number=first.series_number,
        series_description=first.series_description,
        body_part_examined=first.body_part,
        view_position=first.view_position,
        laterality=first.laterality,
        burned_in_annotation=first.burned_in,
        ordering=ordering,
        spacing_between_slices=round(spacing, 4) if spacing else None,
        source=first.source,
        header=first.header,
        warnings=tuple(warnings_),
    )
    return series, warnings_


def _image_geometry(frame: _Frame) -> dict[str, Any]:
    return {
        "sop_instance_uid": frame.sop_uid,
        "frame_number": frame.frame_number,
        "instance_number": frame.instance_number,
        "image_position_patient": frame.position,
        "image_orientation_patient": frame.orientation,
        "pixel_spacing": frame.pixel_spacing,
        "slice_thickness": frame.slice_thickness,
    }


def _build_studies(records: list[_Record]) -> list[Study]:
    by_study: dict[str, dict[str, list[_Record]]] = {}
    for record in records:
        by_study.setdefault(record.study_key, {}).setdefault(record.series_key, []).append(record)
    studies: list[Study] = []
    for study_key, series_groups in by_study.items():
        built = [_build_series(group) for group in series_groups.values()]
        series = sorted(
            (s for s, _ in built),
            key=lambda s: (s.series_number if s.series_number is not None else 1 << 30),
        )
        first = next(iter(series_groups.values()))[0]
        study_warnings: list[str] = []
        for s, warns in built:
            label = f"Series {s.series_number}" if s.series_number is not None else f"{s.modality.value} series"
            study_warnings.extend(f"{label}: {w}" for w in warns)
        description = next(
            (r.study_description for g in series_groups.values() for r in g if r.study_description), None
        )
        studies.append(
            Study(
                study_instance_uid=study_key,
                series=tuple(series),
                patient_key=first.patient_key,
                study_description=description,
                study_date=first.study_date,
                patient_sex=first.sex,
                age_group=first.age_group,
                warnings=tuple(dict.fromkeys(study_warnings)),
            )
        )
    return studies


# ---------------------------------------------------------------------------------------------------------
# Entry point


def _pseudonymizer(keys: Settings | Pseudonymizer | bytes) -> Pseudonymizer:
    if isinstance(keys, Pseudonymizer):
        return keys
    if isinstance(keys, bytes | bytearray):
        return Pseudonymizer(bytes(keys))
    data_dir = getattr(keys, "data_dir", None)
    if data_dir is None:
        raise TypeError(f"keys must be Settings, a Pseudonymizer or salt bytes, got {type(keys).__name__}")
    return Pseudonymizer.from_data_dir(Path(data_dir))


def load_study(
    paths: Sequence[Path | str],
    keys: Settings | Pseudonymizer | bytes,
    limits: IngestLimits | None = None,
) -> IngestResult:
    """Ingest DICOM files, folders, zips and PNG/JPEG pictures; each bad file is reported, the rest kept."""
    if isinstance(paths, str | Path):
        paths = [paths]
    limits = limits or IngestLimits()
    pseudonymizer = _pseudonymizer(keys)
    started = time.perf_counter()
    outcomes: list[FileOutcome] = []
    records: list[_Record] = []
    seen_series: dict[str, list[str]] = {}
    for item in _expand(paths, limits):
        if isinstance(item, FileOutcome):
            outcomes.append(item)
            continue
        index = len(outcomes)
        try:
            kind, force = _sniff(item, limits)
            if kind == "dicom":
                record = _ingest_dicom(item, index, force, pseudonymizer, limits, seen_series)
            else:
                record = _ingest_picture(item, index, kind, pseudonymizer, limits)
        except IngestError as exc:
            logger.info("file %d rejected (%s)", index, getattr(exc, "code", "error"))
            outcomes.append(FileOutcome(item.display, False, str(exc), getattr(exc, "code", "error")))
            continue
        records.append(record)
        outcomes.append(FileOutcome(item.display, True, None, None, record.study_key, record.series_key))
    studies = _build_studies(records) if records else []
    logger.info(
        "ingest: %d file(s), %d ok, %d study(ies), %d image(s) in %.0f ms",
        len(outcomes), len(records), len(studies), sum(len(s.images) for s in studies),
        (time.perf_counter() - started) * 1000,
    )
    return IngestResult(tuple(studies), tuple(outcomes))
