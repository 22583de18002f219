"""Images with burned-in identifiers, made at test time from real frames (shared DICOM US/CR/SC, VQA-RAD).

Each case is one real frame with a patient's name, MRN and dates drawn onto it in one of the machine's fonts, at a
size, contrast and position of its own (corners, over the anatomy), plus marks that must stay ("L", "R", a scale
bar with "5 cm"). A DICOM case is written as a real DICOM file whose header carries the same identifiers (so the
header can be matched); a picture case is a PNG (no header). The ink of every planted token is kept as a mask,
so a test or the benchmark can say which tokens the redaction covered.

Used by tests/assistant/imaging/test_burned_in.py and bench/bench_burned_in.py.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "data"
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype"))
FONT_NAMES = (
    "DejaVuSans.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansCondensed.ttf",
    "DejaVuSansMono-Bold.ttf",
)  # fmt: skip
# Real frames: (file under shared/data/dicom, modality kept in the written file).
DICOM_BASES = (
    "pydicom_data/US1_J2KR.dcm",  # US, 480x640 colour, with the scanner's own overlay
    "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm",  # US, 768x1024 grey
    "pydicom_data/RG3_J2KI.dcm",  # CR, 1760x1760 (MONOCHROME1)
    "pydicom_data/RG1_J2KI.dcm",  # CR chest, 1955x1841 (MONOCHROME1)
    "pydicom_data/SC_rgb_2frame.dcm",  # secondary capture, 100x100 colour (enlarged: text needs room)
)
SURNAMES = (
    "Okonkwo", "Lindqvist", "Harrington", "Moreau", "Castellanos", "Whitfield", "Nakamura", "Brennan", "Kowalczyk",
    "Abernathy", "Delacroix", "Fitzgerald", "Oyelaran", "Vasquez", "Thornbury", "Ashworth",
)  # fmt: skip
GIVEN = ("Margaret", "Tobias", "Ingrid", "Rafael", "Yusuf", "Eleanor", "Desmond", "Priya", "Henrik", "Beatrix")
SALT = b"burned-in-test-salt-0123456789ab"


@dataclass
class Token:
    """One planted string: what it is ("name", "mrn", "date", or "keep" for marks that must stay) and its ink."""

    kind: str
    text: str
    mask: np.ndarray  # (rows, cols) bool, the pixels its glyphs cover


@dataclass
class Case:
    """One image with planted text: the file to ingest, the planted tokens and the frame as planted."""

    name: str
    path: Path
    source: str  # "dicom" or "png"
    tokens: list[Token] = field(default_factory=list)
    shape: tuple[int, int] = (0, 0)

    @property
    def identifiers(self) -> list[Token]:
        return [t for t in self.tokens if t.kind != "keep"]

    @property
    def keeps(self) -> list[Token]:
        return [t for t in self.tokens if t.kind == "keep"]


def font_paths() -> list[Path]:
    """The fonts of FONT_NAMES found on this machine (DejaVu: Debian's fonts-dejavu-core)."""
    found = []
    for name in FONT_NAMES:
        for folder in FONT_DIRS:
            if (folder / name).is_file():
                found.append(folder / name)
                break
    return found


def _font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(path), size)


def base_frames(limit_pictures: int = 4) -> list[tuple[str, str, np.ndarray]]:
    """(name, modality, 8-bit frame) of the real frames text is planted on: DICOM renderings and VQA-RAD pictures."""
    from assistant.imaging.ingest import load_study

    out: list[tuple[str, str, np.ndarray]] = []
    for rel in DICOM_BASES:
        path = SHARED / "dicom" / rel
        result = load_study([path], SALT, burned_in_text="never")
        if result.study is None:
            continue
        series = result.study.series[0]
        frame = np.array(series.images[0].rendering)
        if max(frame.shape[:2]) < 400:  # a tiny secondary capture: enlarged as a screen would show it
            frame = np.asarray(Image.fromarray(frame).resize((512, 512), Image.Resampling.BICUBIC))
        out.append((Path(rel).stem, series.modality.value, frame))
    pictures = sorted((SHARED / "vqa_rad" / "images").glob("*.jpg"))[:limit_pictures]
    for pic in pictures:
        out.append((pic.stem, "PICTURE", np.asarray(Image.open(pic).convert("RGB"))))
    return out


def _identity(rng: random.Random) -> dict[str, object]:
    family, given = rng.choice(SURNAMES), rng.choice(GIVEN)
    return {
        "family": family,
        "given": given,
        "mrn": f"{rng.randint(10, 99)}{rng.randint(100000, 999999)}",
        "birth": date(rng.randint(1930, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        "study": date(rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28)),
    }


def _date_text(day: date, style: int) -> str:
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return (
        f"{day.day:02d}/{day.month:02d}/{day.year}",
        f"{day.year}-{day.month:02d}-{day.day:02d}",
        f"{day.day:02d}-{months[day.month - 1]}-{day.year}",
        f"{day.month:02d}.{day.day:02d}.{day.year}",
    )[style % 4]


def _draw(
    canvas: Image.Image, mask_size: tuple[int, int], xy: tuple[int, int], text: str, font: object, fill: object
) -> np.ndarray:
    """Draw ``text``; its ink in a colour that stands out from what is under it (as a scanner's overlay does)."""
    mask = Image.new("L", mask_size, 0)
    ImageDraw.Draw(mask).text(xy, text, font=font, fill=255)  # type: ignore[arg-type]
    ink = np.asarray(mask) > 127
    if ink.any():
        ys, xs = np.nonzero(ink)
        under = np.asarray(canvas.convert("L"))[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        level = max(fill) if isinstance(fill, tuple) else int(fill)  # type: ignore[arg-type]
        low, high = (float(v) for v in np.percentile(under, [5, 95]))
        dark = low - (255 - level) > level - high  # dark ink stands out more from this background than bright
        if dark:
            fill = tuple(255 - v for v in fill) if isinstance(fill, tuple) else 255 - level  # type: ignore[arg-type]
        if high - low > 120:  # a word across a dark and a bright area: outlined, as overlays are drawn
            outline = 255 if dark else 0
            stroke = (outline,) * 3 if isinstance(fill, tuple) else outline
            ImageDraw.Draw(canvas).text(xy, text, font=font, fill=fill, stroke_width=1, stroke_fill=stroke)  # type: ignore[arg-type]
            return ink
    ImageDraw.Draw(canvas).text(xy, text, font=font, fill=fill)  # type: ignore[arg-type]
    return ink


def _free_corner(frame: np.ndarray, rng: random.Random, margin: int, height: int, width: int) -> int:
    """A corner (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) whose banner area holds no text of the
    frame's own (a scanner never prints one overlay over another); the emptiest when none is free."""
    grey = frame.mean(axis=2) if frame.ndim == 3 else frame
    rows, cols = grey.shape
    busy = []
    for corner in range(4):
        y0 = margin if corner in (0, 1) else max(0, rows - margin - height)
        x0 = margin if corner in (0, 2) else max(0, cols - margin - width)
        area = grey[y0 : y0 + height, x0 : x0 + width]
        edges = np.abs(np.diff(area.astype(np.int16), axis=1)) > 60  # glyph edges; anatomy is smoother
        busy.append(float(edges.mean()) if edges.size else 1.0)
    free = [c for c in range(4) if busy[c] < 0.005]
    return rng.choice(free) if free else int(np.argmin(busy))


def plant(frame: np.ndarray, rng: random.Random, fonts: list[Path]) -> tuple[np.ndarray, list[Token], dict]:
    """``frame`` with an identity banner drawn on it (name, MRN, birth date, study date) and marks to keep."""
    ident = _identity(rng)
    rows, cols = frame.shape[:2]
    color = frame.ndim == 3
    canvas = Image.fromarray(frame)
    size = max(11, int(rows * rng.uniform(0.022, 0.042)))
    font_path = rng.choice(fonts) if fonts else None
    font = _font(font_path, size)
    level = rng.choice((255, 235, 210, 185))
    fill: object = (level, level, rng.choice((level, 90))) if color else level
    style = rng.randrange(4)
    name_text = rng.choice(
        (f"{ident['family']}^{ident['given']}".upper(), f"{ident['given']} {ident['family']}",
         f"{str(ident['family']).upper()}, {ident['given']}"),
    )  # fmt: skip
    lines = [
        ("name", name_text),
        ("mrn", rng.choice(("MRN: ", "ID ", "")) + str(ident["mrn"])),
        ("date", "DOB " + _date_text(ident["birth"], style)),  # type: ignore[arg-type]
        ("date", _date_text(ident["study"], style + 1)),  # type: ignore[arg-type]
    ]
    margin = max(4, cols // 60)
    line_h = int(size * 1.35)
    corner = _free_corner(frame, rng, margin, 4 * line_h, max(int(font.getlength(t)) for _, t in lines))
    tokens: list[Token] = []
    place_over_anatomy = rng.random() < 0.3
    for i, (kind, text) in enumerate(lines):
        width = int(font.getlength(text)) if hasattr(font, "getlength") else size * len(text)
        if place_over_anatomy and i == 3:  # the study date over the middle of the image
            x, y = cols // 2 - width // 2, rows // 2 + rng.randint(-rows // 8, rows // 8)
        else:
            x = margin if corner in (0, 2) else cols - margin - width
            y = margin + i * line_h if corner in (0, 1) else rows - margin - (4 - i) * line_h
        x, y = max(0, x), max(0, y)
        # Each word of the line is one token (a label such as "MRN:" or "DOB" is not an identifier).
        cursor = x
        for word in text.split(" "):
            mask = _draw(canvas, (cols, rows), (cursor, y), word, font, fill)
            is_label = word.rstrip(":") in ("MRN", "ID", "DOB")
            if not is_label:
                tokens.append(Token(kind, word, mask))
            advance = font.getlength(word + " ") if hasattr(font, "getlength") else size * (len(word) + 1)
            cursor += int(advance)
    # Marks that must stay: laterality letters and a scale bar with its label, on the far side from the banner.
    keep_font = _font(font_path, max(14, int(rows * 0.04)))
    side_x = cols - margin - int(rows * 0.05) if corner in (0, 2) else margin
    for letter, y in (("L", rows // 3), ("R", rows // 3 + int(rows * 0.07))):
        tokens.append(Token("keep", letter, _draw(canvas, (cols, rows), (side_x, y), letter, keep_font, fill)))
    bar_y = rows - margin - int(rows * 0.06) if corner in (0, 1) else margin + int(rows * 0.04)
    bar_x0, bar_len = cols // 2 - cols // 10, cols // 5
    draw = ImageDraw.Draw(canvas)
    bar = Image.new("L", (cols, rows), 0)
    bar_draw = ImageDraw.Draw(bar)
    for d in (draw, bar_draw):
        ink = fill if d is draw else 255
        d.line([(bar_x0, bar_y), (bar_x0 + bar_len, bar_y)], fill=ink, width=2)  # type: ignore[arg-type]
        for k in range(6):
            tx = bar_x0 + k * bar_len // 5
            d.line([(tx, bar_y - 4), (tx, bar_y + 4)], fill=ink, width=2)  # type: ignore[arg-type]
    tokens.append(Token("keep", "scale bar", np.asarray(bar) > 127))
    label_xy = (bar_x0 + bar_len + 6, bar_y - size // 2)
    tokens.append(Token("keep", "5 cm", _draw(canvas, (cols, rows), label_xy, "5 cm", font, fill)))
    return np.asarray(canvas), tokens, ident


def write_dicom(frame: np.ndarray, modality: str, ident: dict, path: Path) -> Path:
    """``frame`` as an uncompressed DICOM file whose header names the same patient (the identifiers to match)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    color = frame.ndim == 3
    sop_class = "1.2.840.10008.5.1.4.1.1.7" if modality == "OT" else (
        "1.2.840.10008.5.1.4.1.1.6.1" if modality == "US" else "1.2.840.10008.5.1.4.1.1.1"
    )  # fmt: skip
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    ds.PatientName = f"{ident['family']}^{ident['given']}"
    ds.PatientID = str(ident["mrn"])
    ds.PatientBirthDate = ident["birth"].strftime("%Y%m%d")
    ds.StudyDate = ident["study"].strftime("%Y%m%d")
    ds.InstitutionName = "Saint Example Hospital"
    if modality in ("CR", "DX"):
        ds.BurnedInAnnotation = "YES"  # a radiograph with a burned-in label says so (PS3.3 C.7.6.1.1.8)
    ds.Rows, ds.Columns = frame.shape[:2]
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = "RGB" if color else "MONOCHROME2"
    if color:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    path.write_bytes(buffer.getvalue())
    return path


def make_cases(folder: Path, per_base: int = 2, seed: int = 16, limit_pictures: int = 4) -> list[Case]:
    """``per_base`` planted variants of every base frame, written into ``folder``."""
    rng = random.Random(seed)
    fonts = font_paths()
    cases: list[Case] = []
    for name, modality, frame in base_frames(limit_pictures):
        for k in range(per_base):
            planted, tokens, ident = plant(frame, rng, fonts)
            if modality == "PICTURE":
                path = folder / f"{name}_{k}.png"
                Image.fromarray(planted).save(path)
                source = "png"
            else:
                path = write_dicom(planted, modality, ident, folder / f"{name}_{k}.dcm")
                source = "dicom"
            cases.append(Case(f"{name}_{k}", path, source, tokens, planted.shape[:2]))
    return cases


def coverage(mask: np.ndarray, boxes: list[list[int]]) -> float:
    """The share of a token's ink pixels inside the redaction boxes ([x, y, width, height])."""
    covered = np.zeros_like(mask)
    for x, y, w, h in boxes:
        covered[y : y + h, x : x + w] = True
    ink = int(mask.sum())
    return float((covered & mask).sum()) / ink if ink else 1.0
