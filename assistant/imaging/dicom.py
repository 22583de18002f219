"""DICOM files to records: reading, transfer syntaxes, decoding, Modality/VOI LUTs, windows and geometry."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import IngestError
from assistant.imaging import deid
from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.records import (
    FileUnreadableError,
    Frame,
    ImageTooLargeError,
    IngestLimits,
    InvalidHeaderError,
    NoPixelDataError,
    NotAnImageError,
    PixelDataLengthError,
    PixelDecodeError,
    Record,
    Source,
    TruncatedFileError,
    UnsupportedTransferSyntaxError,
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


def _read_dicom(src: Source, force: bool) -> Dataset:
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


def ingest_dicom(
    src: Source, index: int, force: bool, keys: Pseudonymizer, limits: IngestLimits, seen_series: dict[str, list[str]]
) -> Record:
    """One DICOM file as a record: pseudonymised keys, de-identified header, frames ready for windowing."""
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
    ds: Dataset, src: Source, index: int, keys: Pseudonymizer, limits: IngestLimits, seen_series: dict[str, list[str]]
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
    record = Record(index, study_key, series_key, [], modality=modality, patient_key=patient_key)
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
    return record


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
