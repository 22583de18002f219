"""Ingest errors, safety limits, and the source, frame and record types the ingest stages hand each other."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import BinaryIO

import numpy as np

from assistant.errors import IngestError
from assistant.imaging.study import (
    BurnedInAnnotation,
    Modality,
    PatientSex,
    PhotometricInterpretation,
    Window,
    WindowLike,
)

__all__ = [
    "ArchiveError", "EmptyFileError", "FileUnreadableError", "Frame", "ImageTooLargeError", "IngestLimits",
    "InvalidHeaderError", "NoPixelDataError", "NotAnImageError", "PixelDataLengthError", "PixelDecodeError",
    "Record", "Source", "TruncatedFileError", "UnsupportedTransferSyntaxError",
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


# ---------------------------------------------------------------------------------------------------------
# Sources: files on disk and zip members


@dataclass(frozen=True)
class Source:
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


# ---------------------------------------------------------------------------------------------------------
# Per-file records


@dataclass
class Frame:
    """One frame of a file: modality values (or 8-bit RGB) and what its ``Image`` will need."""

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
class Record:
    """One ingested file: its frames and what its series and study need to know."""

    outcome_index: int
    study_key: str
    series_key: str
    frames: list[Frame]
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

