"""Study ingest: DICOM files, folders, zip archives and PNG/JPEG pictures → de-identified domain objects.

The stages: expand the inputs (files, folders, zip members; ``IngestLimits`` checked) → sniff each file →
one record per file (``assistant.imaging.dicom`` or ``assistant.imaging.picture``) → series and studies
(``assistant.imaging.study`` types). pydicom is confined to ``assistant.imaging.dicom`` and
``assistant.imaging.deid``; no ``Dataset`` reaches this module.

Public names
------------
- ``load_study(paths, keys, limits=None) -> IngestResult``: ingest files, folders and zips; ``keys`` is the
  ``Settings`` (salt in ``settings.deid_salt_file``, else in ``settings.data_dir``), a ``Pseudonymizer`` or the
  salt bytes. Bad files do not stop the others: each is reported in ``IngestResult.files``.
- ``IngestResult``: ``studies``, ``files`` (one ``FileOutcome`` per file), ``study`` (the first study or
  None), ``errors``, ``ok``, ``summary_for(outcome)``.
- ``FileOutcome(path, ok, error, code, study_uid, series_uid)``.
- In ``assistant.imaging.records``: ``IngestLimits(max_file_bytes, max_upload_bytes, max_files,
  max_compression_ratio, max_pixels, max_archive_bytes)``, built from the settings by
  ``IngestLimits.from_settings`` (``load_study`` does so when ``keys`` is the ``Settings``), and the errors (all
  ``IngestError``, each with a short ``code``).

Decompression bombs: budgets count DECODED bytes, per file and per upload (``UploadBudget``). A file's size is
checked from its header before anything decodes (rows × columns × frames × samples × bytes per sample, and the
compressed frames' own headers for JPEG/JPEG 2000), and enforced while inflating: zip members are read in bounded
chunks under the per-file budget and a compression ratio, deflated DICOM is inflated in bounded chunks. Zips
inside zips are not opened; the number of files per upload is bounded. A refused file is reported with a
specific error naming it and the budget (``FileBudgetError``, ``UploadBudgetError``, ``CompressionRatioError``,
``NestedArchiveError``, ``TooManyFilesError``); the rest of the upload goes on.

Series are ordered along the slice normal (PS3.3 C.7.6.2.1.1).
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import IngestError
from assistant.imaging.burned_in import BurnedInPolicy
from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.dicom import ingest_dicom
from assistant.imaging.picture import ingest_picture
from assistant.imaging.records import (
    ArchiveError,
    CompressionRatioError,
    EmptyFileError,
    FileBudgetError,
    FileUnreadableError,
    Frame,
    IngestLimits,
    NestedArchiveError,
    NotAnImageError,
    Record,
    Source,
    TooManyFilesError,
    TruncatedFileError,
    UploadBudget,
    format_bytes,
    short_name,
)
from assistant.imaging.study import (
    Image,
    Modality,
    Series,
    Study,
    VOILUTFunction,
    Window,
    WindowLike,
    WindowPreset,
    apply_window,
    default_ct_preset,
)
from assistant.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["FileOutcome", "IngestResult", "load_study"]


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
class SkippedFile:
    """A zip member that was deliberately not opened (macOS metadata, a hidden file, DICOMDIR), and why."""

    path: str  # "archive.zip!member"
    reason: str


@dataclass(frozen=True)
class IngestResult:
    """The studies built from an upload, and one outcome per file (bad files are reported, not fatal)."""

    studies: tuple[Study, ...]
    files: tuple[FileOutcome, ...]
    skipped: tuple[SkippedFile, ...] = ()  # zip members not opened, reported so that nothing vanishes silently

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

_SKIP_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db", "desktop.ini"}


def _natural_key(text: str) -> list[Any]:
    """Sort "IM2" before "IM10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _skip_member(name: str) -> bool:
    return _skip_reason(name) is not None


def _skip_reason(name: str) -> str | None:
    """Why a file in a folder or zip is not opened (None: it is)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts:
        return "no file name"
    if parts[0] == "__MACOSX":
        return "macOS archive metadata, not an image"
    if parts[-1] == "DICOMDIR":
        return "a DICOMDIR index, not an image (the images it lists are read themselves)"
    if parts[-1] in _SKIP_NAMES:
        return "operating-system metadata, not an image"
    if any(p.startswith(".") for p in parts):
        return "a hidden file or folder"
    return None


def _expand(
    paths: Sequence[Path | str | Source], budget: UploadBudget
) -> Iterator[Source | FileOutcome | SkippedFile]:
    """Each input file, every file of a folder (recursively) and every member of a zip, in natural order.

    Raises ``TooManyFilesError`` at the first file past ``max_files``: the rest of the upload is not read.
    """
    for raw in paths:
        if isinstance(raw, Source):  # bytes already in memory (a PACS retrieval): one file, never unpacked
            budget.count_file(raw.display)
            yield raw
            continue
        path = Path(raw)
        display = str(raw)
        if path.is_dir():
            found: list[Path] = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=_natural_key)
                found.extend(Path(root) / f for f in sorted(files, key=_natural_key) if not _skip_member(f))
                if len(found) > budget.limits.max_files:
                    break  # the count check below refuses the rest; a huge folder is not listed to the end
            if not found:
                yield _failure(display, FileUnreadableError("The folder contains no files."))
            for file in found:
                yield from _expand_file(file, str(file), budget)
        else:
            yield from _expand_file(path, display, budget)


def _expand_file(path: Path, display: str, budget: UploadBudget) -> Iterator[Source | FileOutcome | SkippedFile]:
    if not path.exists():
        budget.count_file(display)
        yield _failure(display, FileUnreadableError("The file does not exist."))
        return
    if path.suffix.lower() == ".zip" or _looks_like_zip(path):
        yield from _expand_zip(path, display, budget)
    else:
        budget.count_file(display)
        yield Source(display, path=path)


def _looks_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


# PKWARE APPNOTE 4.3.12: a central directory entry is 46 bytes plus its name, extra field and comment.
_DIRECTORY_BYTES_PER_FILE = 1024  # room for long paths; a real entry with a 200-character path is ~300 bytes
_ZIP_MAGIC = b"PK\x03\x04"
_READ_CHUNK = 1 << 20
_RATIO_FLOOR = 1 << 20  # members that inflate to under 1 MiB are never a bomb, whatever their ratio


def _directory_size(path: Path) -> int | None:
    """The size of a zip's central directory from its end record (APPNOTE 4.3.16; zip64: 4.3.14-15)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            tail_start = max(0, size - (22 + 0xFFFF))  # the end record and its longest comment
            fh.seek(tail_start)
            tail = fh.read()
            at = tail.rfind(b"PK\x05\x06")
            if at < 0 or len(tail) - at < 22:
                return None
            (cd_size,) = struct.unpack_from("<I", tail, at + 12)
            if cd_size == 0xFFFFFFFF and at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":
                (z64_offset,) = struct.unpack_from("<Q", tail, at - 20 + 8)
                fh.seek(z64_offset)
                record = fh.read(56)
                if record[:4] == b"PK\x06\x06" and len(record) == 56:
                    (cd_size,) = struct.unpack_from("<Q", record, 40)
            return int(cd_size)
    except (OSError, struct.error, ValueError):
        return None


def _expand_zip(path: Path, display: str, budget: UploadBudget) -> Iterator[Source | FileOutcome | SkippedFile]:
    limits = budget.limits
    # zipfile reads the whole table of contents into memory (one ZipInfo per entry) before we can count the
    # entries: bound its size first, so a zip of a million empty entries is refused unread.
    directory = _directory_size(path)
    if directory is not None and directory > limits.max_files * _DIRECTORY_BYTES_PER_FILE:
        budget.count_file(display)
        listed = "was not opened: its table of contents lists too many files"
        yield _failure(display, TooManyFilesError(display, limits.max_files, listed))
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        budget.count_file(display)
        yield _failure(display, ArchiveError("The zip archive is damaged or incomplete and cannot be opened."), exc)
        return
    with archive:
        try:
            entries = [m for m in archive.infolist() if not m.is_dir()]
            members = [m for m in entries if not _skip_member(m.filename)]
            skipped = [SkippedFile(f"{display}!{m.filename}", _skip_reason(m.filename) or "") for m in entries
                       if _skip_member(m.filename)]  # fmt: skip
        except Exception as exc:  # a damaged central directory can fail here too
            budget.count_file(display)
            yield _failure(display, ArchiveError("The zip archive's table of contents is damaged."), exc)
            return
        yield from skipped[: limits.max_files]  # reported, never opened (a million of them are not listed)
        if not members:
            budget.count_file(display)
            why = f" other than {len(skipped)} skipped one(s) (metadata or hidden files)" if skipped else ""
            yield _failure(display, ArchiveError(f"The zip archive contains no files{why}."))
            return
        total = sum(m.file_size for m in members)
        if total > limits.max_archive_bytes:
            budget.count_file(display)
            yield _failure(
                display,
                ArchiveError(f"The zip archive would unpack to {total / 2**30:.1f} GiB, more than is safe to open."),
            )
            return
        for member in sorted(members, key=lambda m: _natural_key(m.filename)):
            name = f"{display}!{member.filename}"
            budget.count_file(name)
            try:
                data = _read_member(archive, member, name, limits)
            except IngestError as exc:
                yield _failure(name, exc)
                continue
            yield Source(name, data=data)


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, limits: IngestLimits) -> bytes:
    """A member's bytes, inflated in bounded reads: never past the per-file budget or the compression ratio.

    The declared sizes are checked first (a cheap refusal), then enforced while reading, because they are the
    archive's own claims.
    """
    if member.flag_bits & 0x1:
        raise ArchiveError("This file in the zip archive is password-protected.")
    if member.filename.lower().endswith(".zip"):
        raise _nested_error(name)
    cap = limits.max_file_bytes
    ratio = limits.max_compression_ratio
    ratio_cap = max(_RATIO_FLOOR, ratio * max(member.compress_size, 1))
    if member.file_size > cap:
        raise FileBudgetError(
            name,
            f"is too large to open safely: it unpacks to {format_bytes(member.file_size)}, more than one file may",
            "ingest_max_file_bytes",
            cap,
        )
    if member.file_size > ratio_cap:
        raise _ratio_error(name, member.file_size, member.compress_size, ratio)
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(member) as fh:
            while chunk := fh.read(min(_READ_CHUNK, cap + 1 - size)):
                if not chunks and chunk[:4] == _ZIP_MAGIC:
                    raise _nested_error(name)
                size += len(chunk)
                if size > cap:
                    raise FileBudgetError(
                        name,
                        f"is too large to open safely: it unpacks to more than its declared "
                        f"{format_bytes(member.file_size)} and more than one file may",
                        "ingest_max_file_bytes",
                        cap,
                    )
                if size > ratio_cap:
                    raise _ratio_error(name, size, member.compress_size, ratio)
                chunks.append(chunk)
    except IngestError:
        raise
    except Exception as exc:  # BadZipFile (CRC, bad header), zlib.error, NotImplementedError (method), OSError...
        logger.debug("rejected a zip member after %s", type(exc).__name__)
        raise ArchiveError("This file in the zip archive is damaged and cannot be unpacked.") from exc
    return b"".join(chunks)


def _nested_error(name: str) -> NestedArchiveError:
    return NestedArchiveError(
        f"'{short_name(name)}' is a zip inside the zip: nested archives are not opened (each level multiplies what "
        "an upload unpacks to); unzip it and upload its files."
    )


def _ratio_error(name: str, size: int, compressed: int, ratio: int) -> CompressionRatioError:
    return CompressionRatioError(
        name,
        f"was not unpacked: {format_bytes(compressed)} in the zip inflates to {format_bytes(size)} or more, "
        "a compression ratio only a decompression bomb reaches",
        "ingest_max_compression_ratio",
        ratio,
        f"{ratio}:1",
    )


def _failure(display: str, error: IngestError, cause: BaseException | None = None) -> FileOutcome:
    if cause is not None:
        logger.debug("rejected an input (%s) after %s", getattr(error, "code", "error"), type(cause).__name__)
    return FileOutcome(display, False, str(error), getattr(error, "code", "error"))


# ---------------------------------------------------------------------------------------------------------
# Sniffing


def _sniff(src: Source, limits: IngestLimits) -> tuple[str, bool]:
    """("dicom"|"png"|"jpeg", force) from the first bytes; raises for empty, huge or foreign files."""
    try:
        size = src.size()
        head = src.head(132)
    except OSError as exc:
        raise FileUnreadableError("The file could not be read.") from exc
    if size == 0:
        raise EmptyFileError("The file is empty.")
    if size > limits.max_file_bytes:
        raise FileBudgetError(
            src.display,
            f"is too large to open safely: it takes {format_bytes(size)}, more than one file may",
            "ingest_max_file_bytes",
            limits.max_file_bytes,
        )
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


def _slice_order(frames: list[Frame]) -> tuple[list[int], str, float | None]:
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


def _auto_window(frames: list[Frame]) -> Window | None:
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


def _build_series(records: list[Record]) -> tuple[Series, list[str]]:
    first = records[0]
    frames: list[Frame] = []
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


def _image_geometry(frame: Frame) -> dict[str, Any]:
    return {
        "sop_instance_uid": frame.sop_uid,
        "frame_number": frame.frame_number,
        "instance_number": frame.instance_number,
        "image_position_patient": frame.position,
        "image_orientation_patient": frame.orientation,
        "pixel_spacing": frame.pixel_spacing,
        "slice_thickness": frame.slice_thickness,
        "redaction": frame.redaction,
    }


def _build_studies(records: list[Record]) -> list[Study]:
    by_study: dict[str, dict[str, list[Record]]] = {}
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
    return Pseudonymizer.from_settings(keys)


def load_study(
    paths: Sequence[Path | str | Source],
    keys: Settings | Pseudonymizer | bytes,
    limits: IngestLimits | None = None,
    burned_in_text: BurnedInPolicy | str | None = None,
) -> IngestResult:
    """Ingest DICOM files, folders, zips and PNG/JPEG pictures; each bad file is reported, the rest kept.

    ``burned_in_text`` ("always", "flagged", "never": which images are read with OCR and redacted, see
    ``assistant.imaging.burned_in``) defaults to the setting when ``keys`` is the ``Settings``, else "flagged".

    ``limits`` default to the settings' ``ingest_max_*`` budgets when ``keys`` is the ``Settings``, else to
    ``IngestLimits()`` (the same defaults). An ``assistant.imaging.records.Source`` with ``data`` is a file
    already in memory (retrieved from a PACS): it goes through the same checks, budgets and de-identification.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if limits is None:
        limits = IngestLimits.from_settings(keys) if isinstance(keys, Settings) else IngestLimits()
    if burned_in_text is None:
        burned_in_text = keys.burned_in_text if isinstance(keys, Settings) else BurnedInPolicy.FLAGGED
    policy = BurnedInPolicy.parse(burned_in_text)
    pseudonymizer = _pseudonymizer(keys)
    budget = UploadBudget(limits)
    started = time.perf_counter()
    outcomes: list[FileOutcome] = []
    skipped: list[SkippedFile] = []
    records: list[Record] = []
    seen_series: dict[str, list[str]] = {}
    try:
        for item in _expand(paths, budget):
            if isinstance(item, FileOutcome):
                outcomes.append(item)
                continue
            if isinstance(item, SkippedFile):
                skipped.append(item)
                continue
            index = len(outcomes)
            try:
                kind, force = _sniff(item, limits)
                if kind == "dicom":
                    record = ingest_dicom(item, index, force, pseudonymizer, budget, seen_series, policy)
                else:
                    record = ingest_picture(item, index, kind, pseudonymizer, budget, policy)
            except IngestError as exc:
                logger.info("file %d rejected (%s)", index, getattr(exc, "code", "error"))
                outcomes.append(FileOutcome(item.display, False, str(exc), getattr(exc, "code", "error")))
                continue
            budget.charge(record.decoded_bytes)
            records.append(record)
            outcomes.append(FileOutcome(item.display, True, None, None, record.study_key, record.series_key))
    except TooManyFilesError as exc:  # raised by the expansion: the rest of the upload is not read
        logger.info("upload stopped after %d file(s) (too_many_files)", budget.files - 1)
        outcomes.append(FileOutcome(exc.display, False, str(exc), exc.code))
    studies = _build_studies(records) if records else []
    logger.info(
        "ingest: %d file(s), %d ok, %d study(ies), %d image(s), %.0f MiB decoded in %.0f ms",
        len(outcomes), len(records), len(studies), sum(len(s.images) for s in studies), budget.used / 2**20,
        (time.perf_counter() - started) * 1000,
    )  # fmt: skip
    return IngestResult(tuple(studies), tuple(outcomes), tuple(skipped))
