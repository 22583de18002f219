"""Ingest errors, safety limits, and the source, frame and record types the ingest stages hand each other."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from assistant.errors import IngestError
from assistant.imaging.study import (
    BurnedInAnnotation,
    Modality,
    PatientSex,
    PhotometricInterpretation,
    Redaction,
    Window,
    WindowLike,
)

if TYPE_CHECKING:
    from assistant.settings import Settings

__all__ = [
    "ArchiveError", "CompressionRatioError", "DecompressionBombError", "EmptyFileError", "FileBudgetError",
    "FileUnreadableError", "Frame", "ImageTooLargeError", "IngestLimits", "InvalidHeaderError",
    "NestedArchiveError", "NoPixelDataError", "NotAnImageError", "PixelDataLengthError", "PixelDecodeError",
    "Record", "Source", "TooManyFilesError", "TruncatedFileError", "UnsupportedTransferSyntaxError",
    "UploadBudget", "UploadBudgetError", "format_bytes", "short_name",
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


class NestedArchiveError(ArchiveError):
    """A zip inside a zip: never opened (nesting multiplies what a small upload unpacks to)."""

    code = "nested_archive"


class TooManyFilesError(IngestError):
    """The upload holds more files than one upload may (``ingest_max_files``)."""

    code = "too_many_files"

    def __init__(self, display: str, limit: int, detail: str = "and any files after it were not read") -> None:
        self.display = display
        self.limit = limit
        super().__init__(
            f"'{short_name(display)}' {detail}; one upload may hold at most {limit:,} files (ingest_max_files)."
        )


def format_bytes(n: int) -> str:
    """A byte count for people: "512 MiB", "1.5 GiB", "8 TiB"."""
    value, unit = float(n), "bytes"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    if unit == "bytes":
        return f"{n} bytes"
    return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"


def short_name(display: str) -> str:
    """The name a person recognises: "IM1.dcm", or "study.zip!series/IM1.dcm" for a zip member."""
    outer, sep, member = display.partition("!")
    return f"{Path(outer).name}{sep}{member}"


class DecompressionBombError(ImageTooLargeError):
    """A file that would decode, inflate or unpack past a limit; the message names the file and the limit."""

    def __init__(
        self, display: str, detail: str, setting: str | None = None, limit: int = 0, shown_limit: str | None = None
    ) -> None:
        self.file = short_name(display)
        self.setting = setting
        self.limit = limit
        rule = f" ({setting} = {shown_limit or format_bytes(limit)})" if setting else ""
        super().__init__(f"'{self.file}' {detail}{rule}.")


class FileBudgetError(DecompressionBombError):
    """One file over the per-file budget of decoded bytes (``ingest_max_file_bytes``)."""


class UploadBudgetError(DecompressionBombError):
    """One file that would take the upload past its budget of decoded bytes (``ingest_max_upload_bytes``)."""

    code = "upload_budget"


class CompressionRatioError(DecompressionBombError):
    """A zip member that inflates more than ``ingest_max_compression_ratio`` times its compressed size."""

    code = "compression_ratio"


@dataclass(frozen=True)
class IngestLimits:
    """Safety limits against decompression bombs and runaway uploads, in DECODED bytes (not samples).

    Built from the settings (``from_settings``) at the entry point; the defaults are the settings' defaults.
    """

    # Bytes of decoded pixels one file may produce (rows × columns × frames × samples × bytes per sample,
    # checked from the header before decoding); also the most a file may occupy on disk or inflate to.
    max_file_bytes: int = 512 << 20
    # Decoded bytes of all files of one upload together.
    max_upload_bytes: int = 1 << 30
    # Files in one upload, zip members and folder contents included.
    max_files: int = 5_000
    # A zip member may inflate at most this many times its compressed size (deflate peaks near 1032:1).
    max_compression_ratio: int = 100
    # An absolute cap on samples: decoders allocate per sample, not per stored byte (openjpeg: 4 bytes each).
    max_pixels: int = 1 << 30
    # Declared total size of a zip's members; larger archives are refused without reading a member.
    max_archive_bytes: int = 16 << 30

    def __post_init__(self) -> None:
        for name in (
            "max_file_bytes", "max_upload_bytes", "max_files", "max_compression_ratio", "max_pixels",
            "max_archive_bytes",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        """The limits configured by ``ingest_max_*`` settings."""
        return cls(
            max_file_bytes=settings.ingest_max_file_bytes,
            max_upload_bytes=settings.ingest_max_upload_bytes,
            max_files=settings.ingest_max_files,
            max_compression_ratio=settings.ingest_max_compression_ratio,
        )


class UploadBudget:
    """What is left of one upload's limits: files counted as they are found, decoded bytes as files are kept.

    Each file is checked before it decodes (``check``) and charged once it is kept (``charge``), so a file
    that fails costs the upload nothing.
    """

    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self.used = 0
        self.files = 0

    @property
    def file_allowance(self) -> int:
        """Decoded bytes the next file may produce: the per-file budget or what the upload has left."""
        return max(0, min(self.limits.max_file_bytes, self.limits.max_upload_bytes - self.used))

    def count_file(self, display: str) -> None:
        """Count one more file of the upload; raises ``TooManyFilesError`` past ``max_files``."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise TooManyFilesError(display, self.limits.max_files)

    def check(self, display: str, nbytes: int, what: str = "would decode to") -> None:
        """Raise ``FileBudgetError`` or ``UploadBudgetError`` when a file of ``nbytes`` does not fit."""
        if nbytes > self.limits.max_file_bytes:
            raise FileBudgetError(
                display,
                f"is too large to open safely: it {what} {format_bytes(nbytes)}, more than one file may",
                "ingest_max_file_bytes",
                self.limits.max_file_bytes,
            )
        if self.used + nbytes > self.limits.max_upload_bytes:
            raise UploadBudgetError(
                display,
                f"was not opened: it {what} {format_bytes(nbytes)} and the files before it in this upload "
                f"already take {format_bytes(self.used)}; upload it separately",
                "ingest_max_upload_bytes",
                self.limits.max_upload_bytes,
            )

    def charge(self, nbytes: int) -> None:
        self.used += nbytes


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
    redaction: Redaction | None = None  # what the burned-in text check did (None: not read)


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
    decoded_bytes: int = 0  # what the file was checked against the upload budget for

