"""PNG and JPEG pictures to records: decoded with Pillow, EXIF rotation honoured, no DICOM information."""

from __future__ import annotations

import hashlib
import io
import logging
from typing import Any

import numpy as np

from assistant.errors import IngestError
from assistant.imaging import burned_in
from assistant.imaging.burned_in import OCR, BurnedInPolicy
from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.records import (
    FileUnreadableError,
    Frame,
    ImageTooLargeError,
    InvalidHeaderError,
    NotAnImageError,
    PixelDecodeError,
    Record,
    Source,
    TruncatedFileError,
    UploadBudget,
)
from assistant.imaging.study import (
    BurnedInAnnotation,
    Modality,
    PhotometricInterpretation,
    Window,
)

logger = logging.getLogger(__name__)

__all__ = ["ingest_picture"]


# Bytes per pixel of Pillow's own storage by mode: multi-band images are held as 4 bytes per pixel.
_PIL_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def ingest_picture(
    src: Source,
    index: int,
    kind: str,
    keys: Pseudonymizer,
    budget: UploadBudget,
    burned_in_text: BurnedInPolicy | str = BurnedInPolicy.FLAGGED,
    ocr: OCR | None = None,
) -> Record:
    """One PNG/JPEG picture as a single-frame record (series keyed by size, instance by content hash).

    The decoded size (width × height × Pillow's bytes per pixel) is checked against ``budget`` before decoding.
    Under ``burned_in_text`` "flagged" or "always" the picture is read with OCR and text that looks identifying
    (dates, ID-like numbers, labelled values, name-like words: a picture has no header to match) is blacked out.
    """
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    try:
        raw = src.read()
    except OSError as exc:
        raise FileUnreadableError("The file could not be read.") from exc
    pixel_limit = min(budget.limits.max_pixels, 1 << 28)
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
        decoded_bytes = width * height * _PIL_BYTES_PER_PIXEL.get(picture.mode, 4)
        budget.check(src.display, decoded_bytes)
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
    record = Record(
        index,
        keys.uid("pictures"),
        keys.uid(f"pictures:{values.shape[0]}x{values.shape[1]}:{values.ndim}"),
        [Frame(values, photometric, False, [], natural, None, sop_uid=keys.uid(f"picture:{digest}"))],
        source=kind,
    )
    record.display_name = src.display
    record.decoded_bytes = decoded_bytes
    reason = burned_in.scan_reason(burned_in_text, Modality.UNKNOWN, color=values.ndim == 3, source=kind)
    if reason is None:
        record.warnings.append(
            "Pictures carry no DICOM information (no pixel spacing, no patient link); "
            "any text burned into the picture is not de-identified."
        )
        return record
    redaction = burned_in.clean_frames(record.frames, (), reason, ocr)
    for frame in record.frames:
        frame.redaction = redaction
    record.burned_in = BurnedInAnnotation.YES if redaction.withheld else BurnedInAnnotation.NO
    record.warnings.append("Pictures carry no DICOM information (no pixel spacing, no patient link).")
    if redaction.message:
        record.warnings.append(redaction.message)
    return record


def _palette_is_grey(picture: Any) -> bool:
    palette = picture.getpalette() or []
    triples = [palette[i : i + 3] for i in range(0, len(palette), 3)]
    return all(t[0] == t[1] == t[2] for t in triples if len(t) == 3)
