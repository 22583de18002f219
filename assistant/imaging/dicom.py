"""DICOM files to records: reading, transfer syntaxes, decoding, Modality/VOI LUTs, windows and geometry."""

from __future__ import annotations

import io
import logging
import math
import struct
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from assistant.errors import IngestError
from assistant.imaging import burned_in, deid
from assistant.imaging.burned_in import OCR, BurnedInPolicy
from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.records import (
    FileBudgetError,
    FileUnreadableError,
    Frame,
    ImageTooLargeError,
    InvalidHeaderError,
    NoPixelDataError,
    NotAnImageError,
    PixelDataLengthError,
    PixelDecodeError,
    Record,
    Source,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
    UploadBudget,
    format_bytes,
)
from assistant.imaging.study import (
    BurnedInAnnotation,
    Modality,
    PatientSex,
    PhotometricInterpretation,
    VoiLut,
    VOILUTFunction,
    Window,
    WindowError,
    WindowLike,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

logger = logging.getLogger(__name__)

__all__ = ["ingest_dicom"]

# pydicom is imported here (inside the functions: nothing loads at import time) and in deid.py, nowhere else;
# no Dataset leaves these two modules.
#
# Pixel pipeline per frame: decode (pydicom decoder plugins: native, deflate, RLE, JPEG baseline/extended/
# lossless, JPEG-LS, JPEG 2000, HTJ2K) → Modality LUT (PS3.3 C.11.1) → VOI LUT or window (C.11.2) →
# MONOCHROME1 / INVERSE inversion (C.7.6.3.1.2, C.11.6.1.2) → 8 bits. Colour: RGB, YBR (converted to RGB),
# palette colour (C.7.6.3.1.5). The window and inversion are applied at assembly (``study.apply_window``).


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


def _read_dicom(src: Source, force: bool, budget: UploadBudget) -> Dataset:
    import pydicom
    from pydicom.errors import InvalidDicomError

    with src.open() as fh:
        try:
            if _transfer_syntax_of(fh, force) == _DEFLATED:
                return _read_deflated(fh, src.display, force, budget)
            return pydicom.dcmread(fh, force=force)
        except IngestError:
            raise
        except InvalidDicomError:
            raise NotAnImageError("The file is not a DICOM file or a PNG/JPEG picture.") from None
        except (EOFError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, EOFError) and src.path is not None:
                raise FileUnreadableError("The file could not be read.") from exc
            raise TruncatedFileError("The DICOM file ends early: it is incomplete or damaged.") from None
        except MemoryError:
            raise ImageTooLargeError("The file is too large to read in the memory available.") from None
        except Exception:
            # from None: pydicom's message may quote header values (PHI).
            raise InvalidHeaderError("The DICOM header is damaged and cannot be read.") from None


# ---------------------------------------------------------------------------------------------------------
# Deflated Explicit VR Little Endian (PS3.5 A.5): everything after the file meta is one raw deflate stream.
# pydicom inflates it whole before reading a single element, so a 1 MB file can become gigabytes before any
# check runs. Here it is inflated in bounded steps: the header is read from the first inflated bytes and checked
# against the budget, then the rest may inflate only to what that header declares, never past the file budget.

_DEFLATED = "1.2.840.10008.1.2.1.99"
_INFLATE_STEP = 1 << 20  # inflated bytes per zlib call (max_length)
_READ_STEP = 1 << 16  # compressed bytes read per call
_HEADER_PEEKS = (1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24)  # inflated sizes at which the header is looked for
_TRAILING_SLACK = 1 << 20  # elements a header's image size leaves out (padding, signatures after Pixel Data)
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # Float, Double Float and Pixel Data (PS3.6 section 6)


def _transfer_syntax_of(fh: BinaryIO, force: bool) -> str | None:
    """The transfer syntax in the file meta, or None; the file is rewound."""
    # pydicom has no public reader of the meta group from a stream; _read_file_meta_info is what its own
    # read_partial uses (pydicom 1.x-3.x), exercised by the deflate tests.
    from pydicom.filereader import _read_file_meta_info, read_preamble

    try:
        read_preamble(fh, force)
        meta = _read_file_meta_info(fh)
        value = meta.get("TransferSyntaxUID")
        return str(value) if value else None
    except Exception:  # not DICOM, no meta, damaged meta: the full reader decides and reports
        return None
    finally:
        fh.seek(0)


def _read_deflated(fh: BinaryIO, display: str, force: bool, budget: UploadBudget) -> Dataset:
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    preamble = read_preamble(fh, force)
    file_meta = _read_file_meta_info(fh)
    buffer = _inflate(fh, display, budget)
    dataset = read_dataset(buffer, is_implicit_VR=False, is_little_endian=True)
    ds = FileDataset(buffer, dataset, preamble, file_meta, is_implicit_VR=False, is_little_endian=True)
    ds.set_original_encoding(False, True, dataset.original_character_set)
    return ds


def _inflate(fh: BinaryIO, display: str, budget: UploadBudget) -> io.BytesIO:
    """The inflated data set (rewound), inflated in steps of ``_INFLATE_STEP``; raises as soon as it grows past a
    limit. Written into one growing buffer, so a legitimate file is never held twice while it inflates."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # PS3.5 A.5: RFC 1951 deflate without a zlib header
    cap = budget.limits.max_file_bytes
    declared_cap: int | None = None
    peeks = iter(_HEADER_PEEKS)
    next_peek: int | None = next(peeks)
    buffer = io.BytesIO()
    size = 0
    for out in _inflated_steps(fh, inflater):
        size += len(out)
        if declared_cap is not None and size > declared_cap:
            raise FileBudgetError(
                display,
                f"was not opened: it inflates past the {format_bytes(declared_cap)} its own header declares "
                "(a deflate bomb's shape); inflating stopped there",
            )
        if size > cap:
            raise FileBudgetError(
                display,
                "is too large to open safely: it inflates to more than one file may",
                "ingest_max_file_bytes",
                cap,
            )
        buffer.write(out)
        if next_peek is not None and size >= next_peek:
            found = _peek_header(buffer.getvalue())  # a copy of at most 17 MiB: the last peek size plus one step
            if found is None:
                next_peek = next(peeks, None)
                continue
            header, pixel_at = found
            next_peek = None
            declared = _declared_bytes(header)
            if declared is not None:
                budget.check(display, declared, "declares an image of")
                # Native pixels take at most their decoded size (PS3.5 8.1.1), plus the element's 12-byte header.
                declared_cap = pixel_at + 12 + declared + _TRAILING_SLACK
    if not inflater.eof:
        raise TruncatedFileError("The DICOM file ends early: its compressed data set is incomplete.")
    buffer.seek(0)
    return buffer


def _inflated_steps(fh: BinaryIO, inflater: Any) -> Iterator[bytes]:
    """Inflated output, at most ``_INFLATE_STEP`` bytes at a time, whatever the compression ratio."""
    try:
        while not inflater.eof:
            data = inflater.unconsumed_tail or fh.read(_READ_STEP)
            if not data:
                # Input ended: drain what zlib still holds, still in bounded steps.
                while out := inflater.decompress(b"", _INFLATE_STEP):
                    yield out
                return
            out = inflater.decompress(data, _INFLATE_STEP)
            if out:
                yield out
    except zlib.error as exc:
        raise InvalidHeaderError("The DICOM file's compressed data set is damaged and cannot be inflated.") from exc


class _NeedMore(Exception):
    """The inflated prefix ends before the header does."""


class _Prefix(io.BytesIO):
    """A prefix of an inflated data set that refuses to be read past its end (instead of returning short)."""

    def read(self, size: int | None = -1, /) -> bytes:
        out = super().read(size)
        if size is not None and size >= 0 and len(out) < size:
            raise _NeedMore
        return out


def _peek_header(prefix: bytes) -> tuple[Dataset, int] | None:
    """The top-level elements before the pixel data and where it starts, when ``prefix`` holds all of them."""
    from pydicom.filereader import read_dataset

    reached: list[bool] = []

    def at_pixels(tag: Any, vr: str | None, length: int) -> bool:
        if int(tag) in _PIXEL_TAGS:
            reached.append(True)
        return bool(reached)

    reader = _Prefix(prefix)
    try:
        header = read_dataset(reader, is_implicit_VR=False, is_little_endian=True, stop_when=at_pixels)
    except Exception:  # _NeedMore, or pydicom's OSError around it inside a sequence: read more first
        return None
    return (header, reader.tell()) if reached else None


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


def _check_dimensions(ds: Dataset, budget: UploadBudget, display: str) -> tuple[tuple[int, int, int, int], int]:
    """(frames, rows, columns, samples) and the decoded bytes, from the header, checked before any decoding."""
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
    decoded = _declared_bytes(ds)
    if decoded is not None:  # always, once the checks above passed
        budget.check(display, decoded)
    total = rows * cols * frames * samples
    if total > budget.limits.max_pixels:
        raise ImageTooLargeError(
            f"The image is too large to open safely ({rows}×{cols}×{frames} frames, {total / 1e6:.0f} million "
            f"samples; the limit is {budget.limits.max_pixels / 1e6:.0f} million)."
        )
    return (frames, rows, cols, samples), decoded or 0


def _declared_bytes(ds: Dataset) -> int | None:
    """Bytes the pixels decode to by the header: rows × columns × frames × samples × bytes per sample.

    1-bit data is unpacked to a byte per sample; palette colour expands to three samples (PS3.3 C.7.6.3.1.5).
    None when the header lacks a usable size.
    """
    rows, cols, bits = (_int(_get(ds, k)) for k in ("Rows", "Columns", "BitsAllocated"))
    frames = _int(_get(ds, "NumberOfFrames", 1))
    samples = _int(_get(ds, "SamplesPerPixel", 1))
    if not (rows and cols and bits and frames and samples) or min(rows, cols, bits, frames, samples) < 1:
        return None
    if str(_get(ds, "PhotometricInterpretation", "") or "").strip().upper() == "PALETTE COLOR":
        samples = 3
    return rows * cols * frames * samples * max(1, bits // 8)


# ---------------------------------------------------------------------------------------------------------
# Compressed frames: decoders size their buffers from the frame's own header (JPEG SOF, JPEG 2000 SIZ), not from
# Rows/Columns, so a frame of a few bytes can claim gigapixels while the DICOM header says 64×64. Each frame's
# header is read and checked before anything decodes.

_JPEG_FAMILY = {
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",  # JPEG (ISO/IEC 10918-1) and JPEG-LS (14495-1)
}  # fmt: skip
_J2K_FAMILY = {
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",  # JPEG 2000 and HTJ2K
}  # fmt: skip
# ISO/IEC 10918-1 B.1.1.3 start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames), and JPEG-LS SOF55.
_SOF_MARKERS = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC} | {0xF7})
_J2K_BYTES_PER_SAMPLE = 4  # openjpeg decodes every component into 32-bit integers (opj_image_comp_t.data)


def _check_compressed_frames(ds: Dataset, ts: str, shape: tuple[int, int, int, int], display: str, cap: int) -> None:
    """Each compressed frame's declared size against the DICOM header and the per-file budget ``cap``."""
    from pydicom.encaps import generate_fragmented_frames

    if (ts not in _JPEG_FAMILY and ts not in _J2K_FAMILY) or "PixelData" not in ds:
        return
    frames, rows, cols, samples = shape
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        fragmented = generate_fragmented_frames(ds.PixelData, number_of_frames=frames, extended_offsets=extended)
        for number, fragments in enumerate(fragmented, start=1):
            if number > frames or not fragments:
                break
            found = _j2k_size(fragments[0]) if ts in _J2K_FAMILY else _jpeg_size(fragments[0])
            if found is None:
                continue  # no readable header: the decoder reports the damage
            f_rows, f_cols, f_samples, per_sample = found
            if f_rows > rows or f_cols > cols or f_samples > samples:
                raise FileBudgetError(
                    display,
                    f"was not decoded: its compressed frame {number} declares a {f_cols}×{f_rows} image with "
                    f"{f_samples} component(s), larger than the {cols}×{rows} its DICOM header states",
                )
            cost = f_rows * f_cols * f_samples * per_sample
            if cost > cap:
                raise FileBudgetError(
                    display,
                    f"is too large to open safely: decoding its compressed frame {number} takes {format_bytes(cost)}, "
                    "more than one file may",
                    "ingest_max_file_bytes",
                    cap,
                )
    except IngestError:
        raise
    except Exception:  # malformed encapsulation (PS3.5 A.4): the decoder reports it in its own words
        logger.debug("compressed frames not pre-checked: the encapsulation is unreadable")


def _j2k_size(data: bytes) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, bytes per sample) from a JPEG 2000 SIZ marker (ISO/IEC 15444-1 A.5.1)."""
    at = data.find(b"\xff\x4f\xff\x51", 0, 4096)  # SOC then SIZ; a JP2 wrapper puts its boxes first
    if at < 0 or len(data) < at + 42:
        return None
    # Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz
    _, _, x, y, x0, y0, _, _, _, _, components = struct.unpack_from(">HHIIIIIIIIH", data, at + 4)
    if x <= x0 or y <= y0 or components < 1:
        return None
    return y - y0, x - x0, components, _J2K_BYTES_PER_SAMPLE


def _jpeg_size(data: bytes) -> tuple[int, int, int, int] | None:
    """(rows, columns, components, bytes per sample) from a JPEG or JPEG-LS start-of-frame (10918-1 B.2.2)."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte (B.1.1.2)
            at += 1
            continue
        if marker in (0x01, 0xD8, *range(0xD0, 0xD8)):  # TEM, SOI, RSTn: no length (B.1.1.3)
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker in _SOF_MARKERS:
            if len(data) < at + 10:
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", data, at + 4)
            if height == 0 or width == 0 or components == 0:
                return None  # height 0 = defined later by a DNL marker: the decoder's business
            return height, width, components, 1 if precision <= 8 else 2
        if marker in (0xD9, 0xDA):  # EOI or SOS before any frame header
            return None
        at += 2 + length
    return None


def _decode(
    ds: Dataset, ts: str, shape: tuple[int, int, int, int], display: str, budget: UploadBudget
) -> tuple[np.ndarray, str]:
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
    _check_compressed_frames(ds, ts, shape, display, budget.limits.max_file_bytes)
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


def ingest_dicom(
    src: Source,
    index: int,
    force: bool,
    keys: Pseudonymizer,
    budget: UploadBudget,
    seen_series: dict[str, list[str]],
    burned_in_text: BurnedInPolicy | str = BurnedInPolicy.FLAGGED,
    ocr: OCR | None = None,
) -> Record:
    """One DICOM file as a record: pseudonymised keys, de-identified header, frames ready for windowing.

    The decoded size is checked against ``budget`` from the header before anything decodes (``budget`` is not
    charged here: the caller charges ``record.decoded_bytes`` for the files it keeps). Frames that may carry
    burned-in text (``burned_in.scan_reason`` under the ``burned_in_text`` policy) are read with OCR and redacted
    before the record is returned, with the identifiers of the header as it was before de-identification.
    """
    _configure_pydicom()
    ds = _read_dicom(src, force, budget)
    try:
        policy = BurnedInPolicy.parse(burned_in_text)
        return _record_from_dataset(ds, src, index, keys, budget, seen_series, policy, ocr)
    except IngestError:
        raise
    except MemoryError:
        raise ImageTooLargeError("The image is too large to decode in the memory available.") from None
    except Exception as exc:
        # Header values that pydicom cannot convert surface here; from None: the message may quote them.
        logger.debug("header error in file %d: %s", index, type(exc).__name__)
        raise InvalidHeaderError("The DICOM header holds invalid values and cannot be used.") from None


def _record_from_dataset(
    ds: Dataset,
    src: Source,
    index: int,
    keys: Pseudonymizer,
    budget: UploadBudget,
    seen_series: dict[str, list[str]],
    policy: BurnedInPolicy = BurnedInPolicy.FLAGGED,
    ocr: OCR | None = None,
) -> Record:
    meta = getattr(ds, "file_meta", None)
    if (meta is not None and str(_get(meta, "MediaStorageSOPClassUID", "")) == _DICOMDIR_CLASS) or (
        "DirectoryRecordSequence" in ds
    ):
        raise NoPixelDataError("This is a DICOMDIR index of a CD/DVD, not an image: open its folder instead.")
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        kind = _sop_class_name(ds)
        what = f"a '{kind}' object" if kind else "a DICOM object"
        raise NoPixelDataError(f"The file is {what} with no image in it.")
    shape, decoded_bytes = _check_dimensions(ds, budget, src.display)
    ts = _ensure_transfer_syntax(ds)
    arr, photometric_raw = _decode(ds, ts, shape, src.display, budget)
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
    record = Record(index, study_key, series_key, [], modality=modality, patient_key=patient_key)
    record.display_name = src.display
    record.decoded_bytes = decoded_bytes

    first_of_series = series_key not in seen_series
    if first_of_series:
        # Identifiers of the first file serve its whole series (window names, descriptions, burned-in text).
        identifiers = seen_series[series_key] = deid.collect_identifiers(ds)
        record.series_description = deid.clean_text(_get(ds, "SeriesDescription"), identifiers)
        record.study_description = deid.clean_text(_get(ds, "StudyDescription"), identifiers)
    record.burned_in = BurnedInAnnotation.parse(_get(ds, "BurnedInAnnotation"))
    # Coded strings reach summaries, labels and prompts: only well-formed codes without identifiers pass.
    coded_ids = seen_series[series_key]
    record.body_part = deid.coded_string(_get(ds, "BodyPartExamined"), coded_ids)
    record.view_position = deid.coded_string(_get(ds, "ViewPosition"), coded_ids)
    record.laterality = deid.coded_string(
        _get(ds, "ImageLaterality") or _get(ds, "Laterality"), coded_ids, deid.LATERALITIES
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
        record.frames = [Frame(rgb[f], photometric) for f in range(frames)]
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

    # Burned-in text: read with the identifiers of the header as it is now, before de-identification.
    reason = burned_in.scan_reason(
        policy, modality, record.burned_in, not photometric.is_monochrome, sop_class, "dicom"
    )
    pixels_cleaned = False
    if reason is not None and record.frames:
        dates = [d for k in _PHI_DATES if (d := deid.parse_da(_get(ds, k))) is not None]
        terms = burned_in.identifier_terms(seen_series[series_key], dates)
        redaction = burned_in.clean_frames(record.frames, terms, reason, ocr)
        for frame in record.frames:
            frame.redaction = redaction
        # PS3.3 C.7.6.1.1.8: after the Clean Pixel Data procedure (PS3.15 E.3.1) the pixels no longer carry
        # identifying annotation; when some stayed legible they still do, and the frames are withheld.
        pixels_cleaned = not redaction.withheld
        record.burned_in = BurnedInAnnotation.YES if redaction.withheld else BurnedInAnnotation.NO
        _replace_burned_in_warning(record, redaction.message)
    if first_of_series:
        # The display header leaves out per-frame functional groups: one item per frame, technical only.
        record.header = deid.header_rows(
            deid.deidentify(
                ds, keys, burned_in=record.burned_in.value, identifiers=seen_series[series_key],
                drop=("PerFrameFunctionalGroupsSequence",), pixels_cleaned=pixels_cleaned,
            )
        )
    return record


# Dates of the header that may be printed on the image (PS3.15 Table E.1-1 lists them as identifying).
_PHI_DATES = ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


def _replace_burned_in_warning(record: Record, withheld: str | None) -> None:
    """Swap the "pixels are not de-identified" warnings for what the burned-in text check did (``withheld``: why
    the frames are withheld, if they are)."""
    record.warnings = [w for w in record.warnings if "burned into the pixels" not in w]
    if withheld:
        record.warnings.append(withheld)


def _photometric(text: str) -> PhotometricInterpretation:
    try:
        return PhotometricInterpretation(text.strip().upper())
    except ValueError:
        raise InvalidHeaderError("The DICOM image has an unknown photometric interpretation.") from None


def _monochrome_frames(
    ds: Dataset, arr: np.ndarray, photometric: PhotometricInterpretation, identifiers: list[str], record: Record
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
            Frame(np.ascontiguousarray(values), photometric, invert, list(windows), natural, padding)
        )
