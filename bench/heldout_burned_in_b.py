"""Held-out set B for burned-in text redaction (issue #16), driven through the CLI as a black box.

Run: ``.venv/bin/python -m bench.heldout_burned_in_b [--seed 2611] [--work DIR] [--policy always]``
Rescore: ``.venv/bin/python -m bench.heldout_burned_in_b --score-only [--work DIR]``

What it does
    1. Generates ~50 images from a seed: real pixels (US RGB / grey / palette, CR, SC, NM, MR, CT from
       /work/shared/data/dicom; pictures from /work/shared/data/vqa_rad/images) written as DICOM (with the same
       made-up identity in the header: PatientName, PatientID, PatientBirthDate, StudyDate, AccessionNumber,
       InstitutionName; own Study/Series/SOP UIDs per file) or as PNG/JPEG uploads. Text is drawn into the pixels
       in several fonts and sizes (8-32 px), light-on-dark, dark-on-light and low contrast, on a band or directly
       over anatomy, as console header lines, stacked corner blocks and single fields, plus annotations that must
       stay (L/R markers, AP, PORTABLE, US labels, "5 cm", scale bars ...).
    2. Runs ``radassist ingest FILES --json --out DIR`` twice, each in a private HOME / RADASSIST_DATA_DIR:
       RADASSIST_BURNED_IN_TEXT=never (the reference rendering and the baseline time), then --policy (the run under
       test, default ``always``).
    3. Scores every planted item from the PNG renderings (frameNNNN.png of the series folder the CLI wrote for
       that file; the folder is found from the JSON line's series_uid).

Definitions (a "token" is one whitespace-separated word of an identifier, e.g. "DOE^JANE", "00482913",
"03/14/1961", "MARY"; a negative is a whole annotation, e.g. "5 cm", or a scale bar; field labels such as "MRN",
"DOB:" and clock times are drawn but not scored)
    core      pixels of the item whose drawn coverage (alpha) is >= 128/255.
    box       the tight bounding box of core.
    black     a rendered pixel whose largest channel is <= 24.
    withheld  the JSON line says so (any key/value mentioning "withh"), or the file has no rendered frame, or the
              rendered frame is blank (>= 97% of its pixels one colour, e.g. a message on a flat background; no
              reference rendering in this set is), or the file failed to ingest (counted apart as "failed").
    visible   an item counts only if it is legible in the reference rendering: |median luminance of core - median
              luminance of the box's background (box minus the glyphs dilated by 1 px)| >= 15 grey levels, and
              it does not already pass the "removed" test there (dark ink over black anatomy).
    removed   (identifier token) the image is withheld, OR >= 95% of the core pixels AND >= 95% of the box
              pixels are black in the rendering under test (so neither light ink nor a light background between
              dark strokes is left).
    kept      (negative) the image is shown AND at most 10% of the box's pixels changed by more than 24 grey
              levels (largest channel difference) against the reference rendering.
    false redaction (per shown image)  anatomy = pixels outside every drawn block (its bounding box padded by
              max(6, 0.6 x font size) px), outside bands, outside text the base image already carried (found with
              Tesseract at generation, padded 6 px), and not dark in the reference (largest channel > 40);
              share = anatomy pixels that are black under test / anatomy pixels.
Reported: identifier recall (withheld counted as removed), recall over shown images only, withheld/failed images,
negatives kept, false-redaction share (mean/max over shown images), seconds per image against the 'never' run,
with breakdowns by category, size, contrast, backdrop, font and container. Per-token results: WORK/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import glob
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path("/work/shared/data")
DICOM_DIR = SHARED / "dicom" / "pydicom_data"
QA_DIR = SHARED / "dicom" / "dcm_qa_ts"
VQA_DIR = SHARED / "vqa_rad" / "images"
DEFAULT_WORK = Path("/tmp/radassist_heldout_burned_in_b")

BLACK_MAX = 24  # a rendered pixel is "black" when its largest channel is <= this
DARK_REF = 40  # reference pixels at or below this are background, not anatomy
REMOVED_FRAC = 0.95
KEPT_CHANGED_FRAC = 0.10
CHANGED_LEVELS = 24
VISIBLE_CONTRAST = 15.0
BLANK_SHARE = 0.97  # a rendering with this share of one colour is a blank (withheld) frame

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


# --------------------------------------------------------------------------------------------- domain objects


@dataclass(frozen=True)
class Identity:
    family: str
    given: str
    middle: str
    sex: str
    mrn: str
    birth: dt.date
    study: dt.date
    study_time: str
    accession: str
    institution: str


@dataclass
class Item:
    """One drawn thing: an identifier token, a negative annotation, or an unscored label."""

    item_id: int
    role: str  # identifier | negative | neutral
    category: str  # name | mrn | birth_date | study_date | accession | institution | annotation | scalebar | label
    text: str
    font: str
    size_px: int
    polarity: str  # light_on_dark | dark_on_light | low_contrast
    backdrop: str  # band | anatomy
    layout: str  # header_line | stack | single | annotation
    box: Box = (0, 0, 0, 0)  # of the core pixels, image coordinates


@dataclass
class ImageSpec:
    image_id: str
    file: str  # relative to the work dir
    container: str  # dicom | png | jpeg
    modality: str
    base: str
    burned_in_flag: str  # YES | NO | absent | n/a
    width: int
    height: int
    items: list[Item] = field(default_factory=list)
    exclusions: list[Box] = field(default_factory=list)  # blocks (padded), bands, text the base already had
    preexisting_boxes: int = 0


@dataclass(frozen=True)
class Settings:
    seed: int
    work: Path
    policy: str
    radassist: Path
    timeout_s: int


@dataclass(frozen=True)
class FontSpec:
    name: str
    path: str | None  # None: Pillow's built-in scalable font; "bitmap": Pillow's fixed bitmap font, scaled up


# --------------------------------------------------------------------------------------------- identities

FAMILIES = ["OKAFOR", "LINDQVIST", "MARCHETTI", "HALVORSEN", "DUBOIS", "NAKAMURA", "BRENNAN", "KOWALCZYK",
            "ABERNATHY", "VILLANUEVA", "OYELARAN", "FITZGERALD", "SANTORO", "PETROVA", "WHITTAKER", "DESROSIERS",
            "MBEKI", "CALLOWAY", "ESPINOZA", "GRUNDMANN", "TREMBLAY", "ASHWORTH", "YILMAZ", "KAPOOR", "MORENO",
            "HOLLOWAY", "QUINTERO", "LEBLANC", "SORENSEN", "ADEYEMI", "CHO", "RAMIREZ", "BAXTER", "O'NEILL"]
GIVENS = ["MARGARET", "TOBIAS", "AMARA", "LEOPOLD", "INGRID", "RAFAEL", "PRIYA", "GWENDOLYN", "DESMOND", "YUKI",
          "CORNELIA", "EMEKA", "BEATRIZ", "ANSEL", "SVETLANA", "HAMISH", "NOOR", "FLORENCE", "DMITRI", "ROSALIND",
          "KWAME", "HELGA", "MATEO", "ELOISE", "JIN", "ANA", "BO", "WINIFRED", "OSWALDO", "TAMSIN"]
INSTITUTIONS = ["ST MARY HOSP", "LAKEVIEW MEDICAL CENTER", "Northfield Regional", "RIVERBEND IMAGING CTR",
                "Mercy General Hospital", "HOLLOWAY CLINIC", "Saint Agnes Med. Ctr", "KESTREL VALLEY HEALTH",
                "Brookhaven Radiology", "EASTGATE DIAGNOSTICS", "Pinecrest Childrens", "HARBORVIEW ORTHO"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def make_identity(rng: random.Random) -> Identity:
    birth = dt.date(1928, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 88))
    study = dt.date(2018, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 7))
    mrn_kind = rng.randrange(4)
    if mrn_kind == 0:
        mrn = f"{rng.randrange(10**7):08d}"
    elif mrn_kind == 1:
        mrn = f"{rng.choice(['MR', 'RX', 'H', 'PT'])}{rng.randrange(10**6, 10**7)}"
    elif mrn_kind == 2:
        mrn = f"{rng.randrange(100, 999)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"
    else:
        mrn = str(rng.randrange(10**5, 10**9))
    acc_kind = rng.randrange(4)
    if acc_kind == 0:
        accession = f"A{study.year % 100:02d}-{rng.randrange(10000, 99999)}"
    elif acc_kind == 1:
        accession = f"{study:%Y%m%d}{rng.randrange(10, 99)}"
    elif acc_kind == 2:
        accession = f"E{rng.randrange(10**6, 10**7)}"
    else:
        accession = f"RAD-{study.year}-{rng.randrange(100, 99999):05d}"
    return Identity(
        family=rng.choice(FAMILIES), given=rng.choice(GIVENS), middle=rng.choice("ABCDEFGHJKLMNPRSTW"),
        sex=rng.choice("MF"), mrn=mrn, birth=birth, study=study,
        study_time=f"{rng.randrange(7, 20):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
        accession=accession, institution=rng.choice(INSTITUTIONS),
    )


def format_date(d: dt.date, rng: random.Random) -> str:
    forms = [f"{d:%m/%d/%Y}", f"{d.day:02d}-{MONTHS[d.month - 1].title()}-{d.year}", f"{d:%Y.%m.%d}",
             f"{d:%d.%m.%Y}", f"{d:%Y%m%d}", f"{d:%Y-%m-%d}", f"{d.day} {MONTHS[d.month - 1]} {d.year}",
             f"{d:%d/%m/%y}", f"{MONTHS[d.month - 1]}-{d.day:02d}-{d.year}"]
    return rng.choice(forms)


def format_name(p: Identity, rng: random.Random) -> str:
    forms = [f"{p.family}^{p.given}", f"{p.family}^{p.given}^{p.middle}", f"{p.family}, {p.given}",
             f"{p.given.title()} {p.family.title()}", f"{p.family} {p.given} {p.middle}",
             f"{p.family.title()}, {p.given.title()} {p.middle}."]
    return rng.choice(forms)


def case(text: str, rng: random.Random) -> str:
    r = rng.random()
    return text.upper() if r < 0.55 else text.title() if r < 0.7 else text


# --------------------------------------------------------------------------------------------- fonts


def available_fonts() -> list[FontSpec]:
    dejavu = "/usr/share/fonts/truetype/dejavu/"
    wanted = [("DejaVuSans", "DejaVuSans.ttf"), ("DejaVuSans-Bold", "DejaVuSans-Bold.ttf"),
              ("DejaVuSansMono", "DejaVuSansMono.ttf"), ("DejaVuSansMono-Bold", "DejaVuSansMono-Bold.ttf"),
              ("DejaVuSerif", "DejaVuSerif.ttf"), ("DejaVuSansCondensed", "DejaVuSansCondensed.ttf"),
              ("DejaVuSerifCondensed-Bold", "DejaVuSerifCondensed-Bold.ttf"),
              ("DejaVuSans-Oblique", "DejaVuSans-Oblique.ttf")]
    fonts = [FontSpec(name, dejavu + f) for name, f in wanted if os.path.exists(dejavu + f)]
    fonts.append(FontSpec("PillowDefault", None))
    fonts.append(FontSpec("PillowBitmap", "bitmap"))
    katex = sorted(glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/gradio/templates/frontend/assets/KaTeX_*")))
    for stem in ("KaTeX_Typewriter-Regular", "KaTeX_Main-Regular", "KaTeX_SansSerif-Regular"):
        hit = [p for p in katex if Path(p).name.startswith(stem) and p.endswith(".ttf")]
        if hit:
            fonts.append(FontSpec(stem.split("-")[0], hit[0]))
    return fonts


def render_word(text: str, font: FontSpec, size: int) -> tuple[U8, int]:
    """The word's coverage (alpha) on a canvas whose top is the line's top; and its advance width."""
    if font.path == "bitmap":
        bitmap = ImageFont.load_default_imagefont()
        scale = max(1, round(size / 11))
        left, top, right, bottom = bitmap.getbbox(text)
        canvas = Image.new("L", (right + 2, 13), 0)
        ImageDraw.Draw(canvas).text((1, 0), text, font=bitmap, fill=255)
        canvas = canvas.resize((canvas.width * scale, canvas.height * scale), Image.Resampling.NEAREST)
        return np.asarray(canvas, dtype=np.uint8).copy(), canvas.width
    ttf: ImageFont.FreeTypeFont = (
        ImageFont.load_default(size) if font.path is None else ImageFont.truetype(font.path, size)  # type: ignore[assignment]
    )
    ascent, descent = ttf.getmetrics()
    advance = int(np.ceil(ttf.getlength(text)))
    canvas = Image.new("L", (advance + 4, ascent + descent + 2), 0)
    ImageDraw.Draw(canvas).text((1, 1), text, font=ttf, fill=255)
    return np.asarray(canvas, dtype=np.uint8).copy(), advance + 1


# --------------------------------------------------------------------------------------------- bases


@dataclass
class Base:
    """A display-space frame (float 0..255, HxW or HxWx3) and how to write it back."""

    name: str
    pixels: F32
    palette: Any = None  # the source dataset, for PALETTE COLOR


def _norm(a: NDArray[Any], lo_p: float = 0.5, hi_p: float = 99.5) -> F32:
    a = a.astype(np.float32)
    lo, hi = np.percentile(a, lo_p), np.percentile(a, hi_p)
    return (np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.float32)


def load_dicom_base(path: Path) -> Base:
    import pydicom
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[0]
    pi = str(ds.PhotometricInterpretation)
    if pi == "PALETTE COLOR":
        return Base(path.stem, (apply_color_lut(arr, ds) / 257.0).astype(np.float32), palette=ds)
    if arr.ndim == 3:  # pydicom hands YBR pixels over as RGB
        return Base(path.stem, arr.astype(np.float32))
    if ds.Modality == "CT":  # a window over the body's own HU range (air stays black)
        hu = apply_modality_lut(arr, ds).astype(np.float32)
        lo, hi = np.percentile(hu[hu > -300], [2.0, 98.0])
        out = (np.clip((hu - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.float32)
    else:
        out = _norm(arr)
    if pi == "MONOCHROME1":
        out = 255 - out
    return Base(path.stem, out.astype(np.float32))


def load_picture_base(path: Path, grey: bool) -> Base:
    with Image.open(path) as im:
        img = im.convert("L" if grey else "RGB")
        return Base(path.stem, np.asarray(img, dtype=np.float32).copy())


def reshape_base(base: Base, rng: random.Random, max_side: int, min_side: int = 320) -> Base:
    px = base.pixels
    h, w = px.shape[:2]
    if base.palette is None and min(h, w) > 200:  # random crop keeping most of the frame
        ch, cw = int(h * rng.uniform(0.82, 1.0)), int(w * rng.uniform(0.82, 1.0))
        y0, x0 = rng.randrange(h - ch + 1), rng.randrange(w - cw + 1)
        px = px[y0:y0 + ch, x0:x0 + cw]
    h, w = px.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if min(h, w) * scale < min_side:
        scale = min_side / min(h, w)
    if abs(scale - 1.0) > 1e-3 and base.palette is None:
        mode_img = Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))
        resample = Image.Resampling.NEAREST if min(h, w) < 150 else Image.Resampling.LANCZOS
        mode_img = mode_img.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)
        px = np.asarray(mode_img, dtype=np.float32)
    return Base(base.name, np.ascontiguousarray(px, dtype=np.float32), base.palette)


# --------------------------------------------------------------------------------------------- planting


def luminance(px: NDArray[Any]) -> F32:
    if px.ndim == 2:
        return px.astype(np.float32)
    return (0.299 * px[..., 0] + 0.587 * px[..., 1] + 0.114 * px[..., 2]).astype(np.float32)


def overlaps(a: Box, b: Box, margin: int = 0) -> bool:
    return not (a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1])


def tesseract_boxes(px: F32) -> list[Box]:
    """Words the base frame already carries (vendor text, arrows read as letters), to leave out of 'anatomy'."""
    if shutil.which("tesseract") is None:
        return []
    buf = io.BytesIO()
    Image.fromarray(np.clip(luminance(px), 0, 255).astype(np.uint8)).save(buf, format="PNG")
    try:
        out = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "11", "tsv"], input=buf.getvalue(),
                             capture_output=True, timeout=120, check=False).stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return []
    boxes: list[Box] = []
    for line in out.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 12 or not parts[11].strip():
            continue
        try:
            conf = float(parts[10])
        except ValueError:
            continue
        if conf < 20 or not any(ch.isalnum() for ch in parts[11]):
            continue
        x, y, w, h = (int(v) for v in parts[6:10])
        boxes.append((x, y, x + w, y + h))
    return boxes


@dataclass
class Word:
    text: str
    role: str
    category: str


@dataclass
class Canvas:
    """The frame being drawn on, its item label map and the bookkeeping of what went where."""

    px: F32
    colour: bool
    labels: NDArray[np.int32]
    core: NDArray[np.bool_]
    occupied: list[Box]
    spec: ImageSpec
    fonts: list[FontSpec]
    rng: random.Random

    def next_id(self) -> int:
        return len(self.spec.items) + 1


def pick_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.28:
        return rng.randint(8, 12)
    if r < 0.75:
        return rng.randint(13, 20)
    return rng.randint(21, 32)


def ink_colour(polarity: str, bg: float, colour: bool, rng: random.Random) -> tuple[float, float, float]:
    if polarity == "light_on_dark":
        if colour and rng.random() < 0.5:
            return rng.choice([(255.0, 255.0, 0.0), (0.0, 255.0, 0.0), (0.0, 230.0, 255.0), (255.0, 170.0, 40.0)])
        v = rng.uniform(195, 255)
        return (v, v, v)
    if polarity == "dark_on_light":
        if colour and rng.random() < 0.4:
            return rng.choice([(20.0, 20.0, 120.0), (120.0, 10.0, 10.0), (0.0, 70.0, 0.0)])
        v = rng.uniform(0, 70)
        return (v, v, v)
    delta = rng.uniform(26, 45)
    v = bg + delta if bg + delta <= 255 and (bg < 128 or bg - delta < 0) else bg - delta
    return (v, v, v)


def layout_block(lines: list[list[Word]], font: FontSpec, size: int, align: str, gap_words: float
                 ) -> tuple[list[tuple[Word, int, int, U8]], int, int]:
    """Words placed relative to the block's top-left: (word, x, y, alpha); and the block's size."""
    placed: list[tuple[Word, int, int, U8]] = []
    rows: list[tuple[list[tuple[Word, int, U8]], int, int]] = []
    for line in lines:
        x, row, height = 0, [], 0
        space = max(3, round(size * 0.3 * gap_words))
        for word in line:
            alpha, adv = render_word(word.text, font, size)
            row.append((word, x, alpha))
            height = max(height, alpha.shape[0])
            x += adv + space
        rows.append((row, max(1, x - space), height))
    width = max(r[1] for r in rows)
    y = 0
    for row, row_w, height in rows:
        dx = width - row_w if align == "right" else 0
        for word, x, alpha in row:
            placed.append((word, x + dx, y, alpha))
        y += max(height, round(size * 1.3))
    return placed, width, y


def find_spot(cv: Canvas, bw: int, bh: int, where: str) -> tuple[int, int] | None:
    h, w = cv.px.shape[:2]
    if bw > w - 4 or bh > h - 4:
        return None
    rng = cv.rng
    for _ in range(60):
        m = rng.randint(2, 18)
        if where == "top":
            x, y = rng.randint(2, max(2, w - bw - 2)), rng.randint(2, max(2, min(h // 10, h - bh - 2)))
        elif where == "bottom":
            x, y = rng.randint(2, max(2, w - bw - 2)), h - bh - rng.randint(2, max(2, h // 10))
        elif where == "top_left":
            x, y = m, rng.randint(2, 24)
        elif where == "top_right":
            x, y = w - bw - m, rng.randint(2, 24)
        elif where == "bottom_left":
            x, y = m, h - bh - rng.randint(2, 24)
        elif where == "bottom_right":
            x, y = w - bw - m, h - bh - rng.randint(2, 24)
        elif where == "center":
            x, y = rng.randint(w // 4, max(w // 4, 3 * w // 4 - bw)), rng.randint(h // 4, max(h // 4, 3 * h // 4 - bh))
        elif where == "left_edge":
            x, y = m, rng.randint(h // 5, max(h // 5, 4 * h // 5 - bh))
        elif where == "right_edge":
            x, y = w - bw - m, rng.randint(h // 5, max(h // 5, 4 * h // 5 - bh))
        else:
            x, y = rng.randint(2, max(2, w - bw - 2)), rng.randint(2, max(2, h - bh - 2))
        if x < 0 or y < 0 or x + bw > w or y + bh > h:
            continue
        cand = (x, y, x + bw, y + bh)
        if not any(overlaps(cand, o, 8) for o in cv.occupied):
            return x, y
    return None


def composite(cv: Canvas, alpha: U8, x: int, y: int, rgb: tuple[float, float, float]) -> None:
    ah, aw = alpha.shape
    a = alpha.astype(np.float32)[..., None] / 255.0 if cv.colour else alpha.astype(np.float32) / 255.0
    region = cv.px[y:y + ah, x:x + aw]
    if cv.colour:
        ink = np.array(rgb, dtype=np.float32)[None, None, :]
    else:
        ink = np.float32(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])  # type: ignore[assignment]
    cv.px[y:y + ah, x:x + aw] = region * (1 - a) + ink * a


def place_block(cv: Canvas, alternatives: list[list[list[Word]]], layout: str, where: str,
                band: bool | None = None, polarity: str | None = None) -> bool:
    """Draws the first of ``alternatives`` (line sets) that fits, shrinking the font when none does."""
    rng = cv.rng
    font = rng.choice(cv.fonts)
    size = pick_size(rng) if layout != "annotation" else rng.randint(12, 32)
    polarity = polarity or rng.choices(["light_on_dark", "dark_on_light", "low_contrast"], [0.55, 0.25, 0.2])[0]
    band = (rng.random() < 0.5) if band is None else band
    align = "right" if where.endswith("right") else "left"
    gap = rng.choice([1.0, 1.0, 1.6, 2.2])
    pad = rng.randint(2, 6) if band else 0
    spot: tuple[int, int] | None = None
    for _attempt in range(5):
        for lines in alternatives:
            placed, bw, bh = layout_block(lines, font, size, align, gap)
            spot = find_spot(cv, bw + 2 * pad, bh + 2 * pad, where)
            if spot is None and where != "anywhere":
                spot = find_spot(cv, bw + 2 * pad, bh + 2 * pad, "anywhere")
            if spot is not None:
                break
        if spot is not None or size == 8:
            break
        size = max(8, size - 3)
    if spot is None:
        return False
    bx, by = spot[0] + pad, spot[1] + pad
    block_box: Box = (spot[0], spot[1], spot[0] + bw + 2 * pad, spot[1] + bh + 2 * pad)
    lum = luminance(cv.px)
    if band:
        level = {"light_on_dark": rng.uniform(0, 35), "dark_on_light": rng.uniform(185, 240),
                 "low_contrast": rng.uniform(60, 170)}[polarity]
        x0, y0, x1, y1 = block_box
        cv.px[y0:y1, x0:x1] = level
        bg = level
    else:
        x0, y0, x1, y1 = block_box
        bg = float(np.median(lum[y0:y1, x0:x1]))
        if polarity == "dark_on_light" and bg < 120:
            polarity = "light_on_dark"
        elif polarity == "light_on_dark" and bg > 120:
            polarity = "dark_on_light"
    rgb = ink_colour(polarity, bg, cv.colour, rng)
    for word, x, y, alpha in placed:
        gx, gy = bx + x, by + y
        ah, aw = alpha.shape
        aw = min(aw, cv.px.shape[1] - gx)
        ah = min(ah, cv.px.shape[0] - gy)
        alpha = alpha[:ah, :aw]
        if not (alpha >= 128).any():
            continue
        composite(cv, alpha, gx, gy, rgb)
        item_id = cv.next_id()
        mask = alpha > 0
        cv.labels[gy:gy + ah, gx:gx + aw][mask] = item_id
        core = alpha >= 128
        cv.core[gy:gy + ah, gx:gx + aw] |= core
        ys, xs = np.nonzero(core)
        box: Box = (gx + int(xs.min()), gy + int(ys.min()), gx + int(xs.max()) + 1, gy + int(ys.max()) + 1)
        cv.spec.items.append(Item(item_id, word.role, word.category, word.text, font.name, size, polarity,
                                  "band" if band else "anatomy", layout, box))
    cv.occupied.append(block_box)
    grow = max(6, round(0.6 * size))
    h, w = cv.px.shape[:2]
    cv.spec.exclusions.append((max(0, block_box[0] - grow), max(0, block_box[1] - grow),
                               min(w, block_box[2] + grow), min(h, block_box[3] + grow)))
    return True


def place_scalebar(cv: Canvas) -> None:
    rng = cv.rng
    length, thick = rng.randint(50, 150), rng.choice([1, 2])
    vertical = rng.random() < 0.4
    bw, bh = (12, length) if vertical else (length, 12)
    spot = find_spot(cv, bw, bh, rng.choice(["bottom_right", "right_edge", "bottom_left", "left_edge"]))
    if spot is None:
        return
    canvas = Image.new("L", (bw, bh), 0)
    draw = ImageDraw.Draw(canvas)
    ticks = rng.choice([5, 10])
    if vertical:
        draw.line([(6, 0), (6, bh - 1)], fill=255, width=thick)
        for i in range(ticks + 1):
            yy = round(i * (bh - 1) / ticks)
            draw.line([(6 - (5 if i % 5 == 0 else 3), yy), (6 + (5 if i % 5 == 0 else 3), yy)], fill=255)
    else:
        draw.line([(0, 6), (bw - 1, 6)], fill=255, width=thick)
        for i in range(ticks + 1):
            xx = round(i * (bw - 1) / ticks)
            draw.line([(xx, 6 - (5 if i % 5 == 0 else 3)), (xx, 6 + (5 if i % 5 == 0 else 3))], fill=255)
    alpha = np.asarray(canvas, dtype=np.uint8)
    x, y = spot
    bg = float(np.median(luminance(cv.px)[y:y + bh, x:x + bw]))
    polarity = "light_on_dark" if bg < 128 else "dark_on_light"
    composite(cv, alpha, x, y, ink_colour(polarity, bg, cv.colour, rng))
    item_id = cv.next_id()
    cv.labels[y:y + bh, x:x + bw][alpha > 0] = item_id
    cv.core[y:y + bh, x:x + bw] |= alpha >= 128
    ys, xs = np.nonzero(alpha >= 128)
    cv.spec.items.append(Item(item_id, "negative", "scalebar", f"scale bar {length}px", "-", thick, polarity,
                              "anatomy", "annotation", (x + int(xs.min()), y + int(ys.min()),
                                                        x + int(xs.max()) + 1, y + int(ys.max()) + 1)))
    cv.occupied.append((x, y, x + bw, y + bh))
    h, w = cv.px.shape[:2]
    cv.spec.exclusions.append((max(0, x - 6), max(0, y - 6), min(w, x + bw + 6), min(h, y + bh + 6)))


def ident_words(text: str, category: str) -> list[Word]:
    return [Word(t, "identifier", category) for t in text.split()]


def label(text: str) -> Word:
    return Word(text, "neutral", "label")


NEGATIVES = {
    "radiograph": ["AP", "PA", "PORTABLE", "SUPINE", "UPRIGHT", "ERECT", "LAT", "AP SUPINE", "PORTABLE AP",
                   "INSP", "WEIGHT BEARING", "OBLIQUE"],
    "us": ["LIVER", "RT KIDNEY", "LT KIDNEY", "TRANS", "SAG", "LONG", "GB", "THYROID RT", "GAIN 52%", "DR 60",
           "MI 0.9", "TIS 0.4", "5 cm", "Depth 16 cm", "13 Hz", "BLADDER"],
    "crossectional": ["AX T2", "SAG T1", "W 400 L 40", "5 mm", "10 cm", "SE 3", "IM 12", "C+", "AXIAL",
                      "WW 1500 WL -600"],
    "picture": ["AP", "R", "L", "5 cm", "1 cm", "LAT", "PORTABLE", "T2", "AXIAL", "C+", "10 mm", "SUPINE"],
}


def plant(cv: Canvas, person: Identity, family: str) -> None:
    rng = cv.rng
    name = case(format_name(person, rng), rng)
    birth = format_date(person.birth, rng).upper() if rng.random() < 0.5 else format_date(person.birth, rng)
    study = format_date(person.study, rng)
    inst = case(person.institution, rng)
    sep = rng.choice(["", "/", "|", "-"])

    def sep_word() -> list[Word]:
        return [label(sep)] if sep else []

    # each block: alternative line sets (the first that fits is drawn), layout, where
    blocks: list[tuple[list[list[list[Word]]], str, str]] = []
    layouts = rng.sample(["header_line", "stack", "single", "bottom_line"], k=rng.choice([1, 2, 2, 3]))
    for lay in layouts:
        if lay in ("header_line", "bottom_line"):
            fields: list[list[Word]] = [
                ([label(rng.choice(["MRN", "ID:", "PID", "Pat ID"]))] if rng.random() < 0.6 else [])
                + ident_words(person.mrn, "mrn"),
                ([label(rng.choice(["DOB", "DOB:", "Born"]))] if rng.random() < 0.6 else [])
                + ident_words(birth, "birth_date"),
                ident_words(study, "study_date") + ([label(person.study_time)] if rng.random() < 0.4 else []),
            ]
            if rng.random() < 0.6:
                fields.append(([label(rng.choice(["ACC", "Acc#", "A#"]))] if rng.random() < 0.5 else [])
                              + ident_words(person.accession, "accession"))
            if rng.random() < 0.6:
                fields.append(ident_words(inst, "institution"))
            rng.shuffle(fields)
            fields.insert(0, ident_words(name, "name"))
            words: list[Word] = []
            for i, f in enumerate(fields):
                words += (sep_word() if i else []) + f
            half = len(words) // 2
            blocks.append(([[words], [words[:half], words[half:]]], "header_line",
                           "top" if lay == "header_line" else "bottom"))
        elif lay == "stack":
            lines = [ident_words(name, "name"),
                     [label(rng.choice(["ID:", "MRN:", "Patient ID"]))] + ident_words(person.mrn, "mrn"),
                     [label(rng.choice(["DOB:", "Birth:"]))] + ident_words(birth, "birth_date")]
            if rng.random() < 0.7:
                lines.append(ident_words(study, "study_date") + [label(person.study_time)])
            if rng.random() < 0.5:
                lines.append([label("Acc:")] + ident_words(person.accession, "accession"))
            if rng.random() < 0.5:
                lines.insert(0, ident_words(inst, "institution"))
            blocks.append(([lines], "stack", rng.choice(["top_left", "top_right", "bottom_left", "bottom_right"])))
        else:
            options: list[list[Word]] = [ident_words(person.mrn, "mrn"), ident_words(name, "name"),
                                         ident_words(study, "study_date"), ident_words(person.accession, "accession"),
                                         ident_words(birth, "birth_date"), ident_words(inst, "institution")]
            for words1 in rng.sample(options, k=rng.randint(1, 3)):
                blocks.append(([[words1]], "single", rng.choice(["center", "anywhere", "right_edge", "left_edge",
                                                                 "bottom_right", "top_right"])))
    for alternatives, lay, where in blocks:
        place_block(cv, alternatives, lay, where, band=(rng.random() < 0.7) if lay == "header_line" else None)
    if rng.random() < 0.72:  # negatives: annotations that must stay
        pool = NEGATIVES[family]
        for text in rng.sample(pool, k=rng.randint(1, 3)):
            place_block(cv, [[[Word(text, "negative", "annotation")]]], "annotation",
                        rng.choice(["anywhere", "top_right", "bottom_left", "center", "left_edge"]))
        if family in ("radiograph", "picture") and rng.random() < 0.7:
            marker = rng.choice(["L", "R"])
            place_block(cv, [[[Word(marker, "negative", "annotation")]]], "annotation",
                        "left_edge" if marker == "R" else "right_edge", polarity="light_on_dark")
        if rng.random() < 0.45:
            place_scalebar(cv)


# --------------------------------------------------------------------------------------------- writing


def uid(seed: int, image_id: str, what: str) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[f"heldout-b-{seed}", image_id, what]))


SOP = {"US": "1.2.840.10008.5.1.4.1.1.6.1", "CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1",
       "SC": "1.2.840.10008.5.1.4.1.1.7", "XA": "1.2.840.10008.5.1.4.1.1.12.1", "MR": "1.2.840.10008.5.1.4.1.1.4",
       "CT": "1.2.840.10008.5.1.4.1.1.2"}


def write_dicom(path: Path, px: F32, kind: str, modality: str, sop: str, person: Identity, flag: str,
                seed: int, image_id: str, palette_ds: Any = None) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop)
    meta.MediaStorageSOPInstanceUID = UID(uid(seed, image_id, "sop"))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid(seed, image_id, "study"), uid(seed, image_id, "series")
    ds.Modality = "OT" if modality == "SC" else modality  # SC is a SOP class; its Modality is OT ("other")
    ds.PatientName = f"{person.family}^{person.given}^{person.middle}"
    ds.PatientID = person.mrn
    ds.PatientBirthDate = f"{person.birth:%Y%m%d}"
    ds.PatientSex = person.sex
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = f"{person.study:%Y%m%d}"
    ds.StudyTime = person.study_time.replace(":", "")
    ds.AccessionNumber = person.accession
    ds.InstitutionName = person.institution
    ds.ReferringPhysicianName = ""
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    if modality == "SC" or sop == SOP["SC"]:
        ds.ConversionType = "WSD"
    if flag in ("YES", "NO"):
        ds.BurnedInAnnotation = flag
    h, w = px.shape[:2]
    ds.Rows, ds.Columns = h, w
    ds.PixelRepresentation = 0
    if kind == "rgb":
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        data = np.clip(np.rint(px), 0, 255).astype(np.uint8)
    elif kind == "palette":
        lut = np.stack([np.frombuffer(getattr(palette_ds, f"{c}PaletteColorLookupTableData"), "<u2")
                        for c in ("Red", "Green", "Blue")], axis=1).astype(np.float32) / 257.0
        flat = px.reshape(-1, 3)
        idx = np.empty(flat.shape[0], dtype=np.uint8)
        for start in range(0, flat.shape[0], 4096):
            chunk = flat[start:start + 4096]
            idx[start:start + 4096] = np.argmin(((chunk[:, None, :] - lut[None, :, :]) ** 2).sum(-1), axis=1)
        data = idx.reshape(h, w)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "PALETTE COLOR"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        for c in ("Red", "Green", "Blue"):
            setattr(ds, f"{c}PaletteColorLookupTableDescriptor",
                    getattr(palette_ds, f"{c}PaletteColorLookupTableDescriptor"))
            setattr(ds, f"{c}PaletteColorLookupTableData", getattr(palette_ds, f"{c}PaletteColorLookupTableData"))
    elif kind == "grey8":
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        data = np.clip(np.rint(px), 0, 255).astype(np.uint8)
    elif kind == "ct":
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        hu = np.clip(px, 0, 255) / 255.0 * 400 + (40 - 200)
        data = np.rint(hu + 1024).astype(np.int16)
    else:  # grey16 / mono1
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME1" if kind == "mono1" else "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        v = np.clip(px, 0, 255) / 255.0 * 4095
        data = np.rint(4095 - v if kind == "mono1" else v).astype(np.uint16)
    ds.PixelData = data.tobytes()
    ds.save_as(path, enforce_file_format=True)


def px_u8(px: F32) -> U8:
    return np.clip(np.rint(px), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Slot:
    container: str  # dicom | png | jpeg
    modality: str
    source: str  # a file under DICOM_DIR / QA_DIR, or "vqa"
    kind: str  # rgb | grey8 | grey16 | mono1 | palette | ct (DICOM pixel storage) or rgb | grey (pictures)
    family: str  # which negatives fit
    flag: str  # BurnedInAnnotation: YES | NO | absent | n/a
    max_side: int = 900


def plan(rng: random.Random) -> list[Slot]:
    slots: list[Slot] = []
    us_flag = ["YES", "absent", "YES", "absent"]
    for i in range(4):
        slots.append(Slot("dicom", "US", "US1_J2KR.dcm", "rgb", "us", us_flag[i], 800))
    for i in range(3):
        slots.append(Slot("dicom", "US", "JPGLosslessP14SV1_1s_1f_8b.dcm", "grey8", "us", us_flag[i], 900))
    for i in range(2):
        slots.append(Slot("dicom", "US", "OBXXXX1A_rle_2frame.dcm", "palette", "us", us_flag[i + 1], 800))
    slots += [Slot("dicom", "CR", "RG1_UNCI.dcm", "mono1", "radiograph", "YES", 900),
              Slot("dicom", "CR", "RG1_UNCI.dcm", "grey16", "radiograph", "absent", 760),
              Slot("dicom", "CR", "RG3_J2KR.dcm", "mono1", "radiograph", "absent", 800),
              Slot("dicom", "CR", "RG3_J2KR.dcm", "grey16", "radiograph", "YES", 700)]
    for flag in ("YES", "absent", "NO", "YES"):
        slots.append(Slot("dicom", "DX", "vqa", "grey16", "radiograph", flag, 900))
    for flag in ("YES", "absent", "YES"):
        slots.append(Slot("dicom", "XA", "vqa", "grey8", "picture", flag, 800))
    for _ in range(4):
        slots.append(Slot("dicom", "SC", "vqa", "rgb", "picture", rng.choice(["YES", "absent"]), 900))
    slots.append(Slot("dicom", "SC", "SC_rgb_2frame.dcm", "rgb", "picture", "absent", 400))
    slots.append(Slot("dicom", "NM", "JPEG-LL.dcm", "grey16", "crossectional", "absent", 1024))
    slots += [Slot("dicom", "MR", "qa:1.dcm", "grey16", "crossectional", "YES", 640),
              Slot("dicom", "MR", "qa:4.dcm", "grey16", "crossectional", "YES", 512),
              Slot("dicom", "MR", "MR-SIEMENS-DICOM-WithOverlays.dcm", "grey16", "crossectional", "YES", 600),
              Slot("dicom", "CT", "vqa", "ct", "crossectional", "YES", 640),
              Slot("dicom", "CT", "explicit_VR-UN.dcm", "ct", "crossectional", "YES", 512)]
    for i in range(8):
        slots.append(Slot("png", "-", "vqa", "grey" if i % 3 else "rgb", "picture", "n/a", 1000))
    for i in range(8):
        slots.append(Slot("jpeg", "-", "vqa", "grey" if i % 3 == 1 else "rgb", "picture", "n/a", 1000))
    return slots


def generate(settings: Settings) -> list[ImageSpec]:
    work = settings.work
    if work.exists():
        shutil.rmtree(work)
    (work / "inputs").mkdir(parents=True)
    (work / "masks").mkdir()
    master = random.Random(settings.seed)
    slots = plan(master)
    fonts = available_fonts()
    pictures = sorted(VQA_DIR.glob("*.jpg"))
    master.shuffle(pictures)
    picture_iter = iter(pictures)  # VQA-RAD is nearly all greyscale content in RGB JPEGs; each picture used once

    specs: list[ImageSpec] = []
    for n, slot in enumerate(slots):
        rng = random.Random(f"{settings.seed}-{n}")
        image_id = f"b{n:03d}"
        if slot.source == "vqa":
            want_grey = slot.kind in ("grey", "grey8", "grey16", "ct") or slot.modality in ("DX", "XA")
            src = next(picture_iter)
            base = load_picture_base(src, grey=want_grey)
        elif slot.source.startswith("qa:"):
            base = load_dicom_base(QA_DIR / slot.source[3:])
        else:
            base = load_dicom_base(DICOM_DIR / slot.source)
        base = reshape_base(base, rng, slot.max_side)
        px = base.pixels
        colour = px.ndim == 3
        if slot.kind in ("grey", "grey8", "grey16", "mono1", "ct") and colour:
            px, colour = luminance(px), False
        ext = {"dicom": "dcm", "png": "png", "jpeg": "jpg"}[slot.container]
        spec = ImageSpec(image_id, f"inputs/{image_id}.{ext}", slot.container,
                         slot.modality if slot.container == "dicom" else slot.container.upper(),
                         f"{slot.source}:{base.name}" if slot.source == "vqa" else slot.source, slot.flag,
                         px.shape[1], px.shape[0])
        pre = tesseract_boxes(px)
        spec.preexisting_boxes = len(pre)
        h, w = px.shape[:2]
        grown = [(max(0, b[0] - 6), max(0, b[1] - 6), min(w, b[2] + 6), min(h, b[3] + 6)) for b in pre]
        spec.exclusions.extend(grown)
        cv = Canvas(px.copy(), colour, np.zeros((h, w), np.int32), np.zeros((h, w), bool), list(grown), spec,
                    fonts, rng)
        person = make_identity(rng)
        plant(cv, person, slot.family)
        # bands are part of the blocks' padded boxes already; nothing else to exclude
        out = work / spec.file
        if slot.container == "dicom":
            write_dicom(out, cv.px, slot.kind, slot.modality, SOP.get(slot.modality, SOP["SC"]), person, slot.flag,
                        settings.seed, image_id, base.palette)
        else:
            img = Image.fromarray(px_u8(cv.px))
            if slot.container == "png":
                img.save(out, format="PNG")
            else:
                img.save(out, format="JPEG", quality=rng.randint(55, 92))
        np.savez_compressed(work / "masks" / f"{image_id}.npz", labels=cv.labels, core=cv.core)
        specs.append(spec)
    (work / "manifest.json").write_text(json.dumps({
        "seed": settings.seed, "fonts": [f.name for f in fonts],
        "images": [dataclasses.asdict(s) for s in specs]}, indent=1), encoding="utf-8")
    return specs


def load_manifest(work: Path) -> list[ImageSpec]:
    raw = json.loads((work / "manifest.json").read_text(encoding="utf-8"))
    specs = []
    for r in raw["images"]:
        items = [Item(**{**i, "box": tuple(i["box"])}) for i in r.pop("items")]
        excl = [tuple(b) for b in r.pop("exclusions")]
        specs.append(ImageSpec(**r, items=items, exclusions=excl))  # type: ignore[arg-type]
    return specs


# --------------------------------------------------------------------------------------------- running


def run_ingest(settings: Settings, specs: Sequence[ImageSpec], policy: str, name: str) -> float:
    work = settings.work
    out, home, data = work / f"out_{name}", work / f"home_{name}", work / f"data_{name}"
    for d in (out, home, data):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADASSIST_")}
    env.update(HOME=str(home), RADASSIST_DATA_DIR=str(data), RADASSIST_BURNED_IN_TEXT=policy)
    files = [str((work / s.file).resolve()) for s in specs]
    start = time.perf_counter()
    proc = subprocess.run([str(settings.radassist), "ingest", *files, "--json", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=settings.timeout_s, check=False)
    elapsed = time.perf_counter() - start
    (work / f"ingest_{name}.jsonl").write_text(proc.stdout, encoding="utf-8")
    (work / f"ingest_{name}.stderr").write_text(proc.stderr, encoding="utf-8")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"radassist ingest ({name}, policy={policy}) exited {proc.returncode}: "
                         f"{proc.stderr.strip().splitlines()[-1:]}")
    return elapsed


# --------------------------------------------------------------------------------------------- scoring


def dilate(mask: NDArray[np.bool_], r: int) -> NDArray[np.bool_]:
    out = mask.copy()
    h, w = mask.shape
    padded = np.pad(mask, r)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= padded[r + dy:r + dy + h, r + dx:r + dx + w]
    return out


def is_black(rgb: U8) -> NDArray[np.bool_]:
    return rgb.max(axis=-1) <= BLACK_MAX


def lum_u8(rgb: U8) -> F32:
    return luminance(rgb.astype(np.float32))


def token_scores(ref: U8, test: U8 | None, glyph: NDArray[np.bool_], core: NDArray[np.bool_], box: Box
                 ) -> dict[str, float]:
    """Measures of one item; ``test`` is None when the image was withheld. Arrays are HxWx3 / HxW."""
    x0, y0, x1, y1 = box
    pad = 3
    h, w = glyph.shape
    sx0, sy0, sx1, sy1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    g, c = glyph[sy0:sy1, sx0:sx1], core[sy0:sy1, sx0:sx1]
    inbox = np.zeros_like(g)
    inbox[y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0] = True
    ref_c = ref[sy0:sy1, sx0:sx1]
    background = inbox & ~dilate(g, 1)
    if background.sum() < 3:
        background = dilate(inbox, pad) & ~inbox & ~dilate(g, 1)
    lum_ref = lum_u8(ref_c)
    contrast = float(abs(np.median(lum_ref[c]) - np.median(lum_ref[background]))) if c.any() and background.any() \
        else 0.0
    blk_ref = is_black(ref_c)
    out = {"contrast_ref": round(contrast, 1), "core_px": int(c.sum()), "box_px": int(inbox.sum()),
           "core_black_ref": round(float(blk_ref[c].mean()), 4) if c.any() else 1.0,
           "box_black_ref": round(float(blk_ref[inbox].mean()), 4)}
    if test is None:
        return out
    test_c = test[sy0:sy1, sx0:sx1]
    blk = is_black(test_c)
    changed = np.abs(test_c.astype(np.int16) - ref_c.astype(np.int16)).max(axis=-1) > CHANGED_LEVELS
    out.update(core_black=round(float(blk[c].mean()), 4), box_black=round(float(blk[inbox].mean()), 4),
               box_changed=round(float(changed[inbox].mean()), 4))
    return out


def false_redaction(ref: U8, test: U8, exclusions: Iterable[Box]) -> tuple[float, int, int]:
    h, w = ref.shape[:2]
    anatomy = ref.max(axis=-1) > DARK_REF
    for x0, y0, x1, y1 in exclusions:
        anatomy[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = False
    n = int(anatomy.sum())
    bad = int((is_black(test) & anatomy).sum())
    return (bad / n if n else 0.0), bad, n


def read_rgb(path: Path) -> U8:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def mentions_withheld(value: Any) -> bool:
    if isinstance(value, dict):
        return any(("withh" in str(k).lower() and bool(v) and v not in ("false", "no", 0)) or mentions_withheld(v)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(mentions_withheld(v) for v in value)
    return isinstance(value, str) and "withh" in value.lower()


@dataclass
class Rendering:
    status: str  # shown | withheld | failed
    why: str
    frame: Path | None
    json_line: dict[str, Any]


def locate(work: Path, name: str, specs: Sequence[ImageSpec]) -> dict[str, Rendering]:
    """Each input's rendering: JSON line by file name -> series_uid -> the one series folder ending in its last 8
    digits (the CLI names folders studyNN/seriesNNN_MODALITY_<last 8 digits of the pseudonymous series UID>)."""
    lines = [json.loads(x) for x in (work / f"ingest_{name}.jsonl").read_text(encoding="utf-8").splitlines()
             if x.strip().startswith("{")]
    by_name = {Path(r.get("path", "")).name: r for r in lines}  # input names are unique (b000.dcm ...)
    folders = [p for p in (work / f"out_{name}").glob("*/*") if p.is_dir()]
    seen: set[Path] = set()
    result: dict[str, Rendering] = {}
    for s in specs:
        line = by_name.get(Path(s.file).name)
        if line is None or not line.get("ok") or not line.get("summary"):
            result[s.image_id] = Rendering("failed", (line or {}).get("error") or "no JSON line", None, line or {})
            continue
        summary = line["summary"]
        suffix = str(summary.get("series_uid", ""))[-8:]
        hits = [f for f in folders if f.name.endswith("_" + suffix)] if suffix else []
        if len(hits) > 1:
            raise SystemExit(f"{s.image_id}: {len(hits)} series folders end in {suffix}; cannot map outputs")
        frames = sorted(p for p in hits[0].glob("*.png") if p.name != "montage.png") if hits else []
        if hits and hits[0] in seen:
            raise SystemExit(f"{s.image_id}: series folder {hits[0]} already belongs to another input")
        if hits:
            seen.add(hits[0])
        if len(frames) > 1:
            raise SystemExit(f"{s.image_id}: {len(frames)} frames rendered for a single-frame input")
        if mentions_withheld(summary.get("burned_in_text")) or mentions_withheld(summary):
            result[s.image_id] = Rendering("withheld", "json", frames[0] if frames else None, line)
        elif not frames:
            result[s.image_id] = Rendering("withheld", "no frame", None, line)
        else:
            share = dominant_share(read_rgb(frames[0]))
            blank = share >= BLANK_SHARE
            result[s.image_id] = Rendering("withheld" if blank else "shown",
                                           f"blank frame ({share:.0%} one value)" if blank else "", frames[0], line)
    return result


def dominant_share(rgb: U8) -> float:
    """Share of the pixels holding the frame's most common colour."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    _, counts = np.unique(packed, return_counts=True)
    return float(counts.max() / packed.size)


def fit(mask: NDArray[Any], shape: tuple[int, int]) -> NDArray[Any]:
    if mask.shape == shape:
        return mask
    ys = (np.arange(shape[0]) * mask.shape[0] / shape[0]).astype(int)
    xs = (np.arange(shape[1]) * mask.shape[1] / shape[1]).astype(int)
    return mask[ys][:, xs]


def score(settings: Settings, specs: Sequence[ImageSpec], timings: dict[str, float]) -> dict[str, Any]:
    work = settings.work
    refs, tests = locate(work, "ref", specs), locate(work, "test", specs)
    unrendered = sum(1 for r in refs.values() if r.status != "shown")
    if unrendered:
        print(f"WARNING: {unrendered} reference renderings missing or failed; those images are not scored",
              file=sys.stderr)
    token_rows: list[dict[str, Any]] = []
    image_rows: list[dict[str, Any]] = []
    for s in specs:
        r, t = refs[s.image_id], tests[s.image_id]
        row: dict[str, Any] = {"image_id": s.image_id, "file": s.file, "container": s.container,
                               "modality": s.modality, "base": s.base, "burned_in_flag": s.burned_in_flag,
                               "ref_status": r.status, "status": t.status, "why": t.why,
                               "burned_in_text_json": (t.json_line.get("summary") or {}).get("burned_in_text")}
        image_rows.append(row)
        if r.status != "shown" or r.frame is None:
            row["note"] = "reference not rendered; image not scored"
            continue
        ref = read_rgb(r.frame)
        masks = np.load(work / "masks" / f"{s.image_id}.npz")
        labels, core = fit(masks["labels"], ref.shape[:2]), fit(masks["core"], ref.shape[:2])
        sy, sx = ref.shape[0] / s.height, ref.shape[1] / s.width
        test = read_rgb(t.frame) if t.status == "shown" and t.frame is not None else None
        if test is not None and test.shape != ref.shape:
            row["note"] = f"test rendering {test.shape} differs from reference {ref.shape}; counted as not shown"
            test, t.status = None, "withheld"
            row["status"] = "withheld"
        if test is not None:
            share, bad, n = false_redaction(ref, test, [(round(b[0] * sx), round(b[1] * sy), round(b[2] * sx),
                                                         round(b[3] * sy)) for b in s.exclusions])
            row.update(false_redaction=round(share, 6), false_black_px=bad, anatomy_px=n)
        for it in s.items:
            if it.role == "neutral":
                continue
            box = (round(it.box[0] * sx), round(it.box[1] * sy), round(it.box[2] * sx), round(it.box[3] * sy))
            glyph = labels == it.item_id
            m = token_scores(ref, test, glyph, core & glyph, box)
            already_black = m["core_black_ref"] >= REMOVED_FRAC and m["box_black_ref"] >= REMOVED_FRAC
            visible = m["contrast_ref"] >= VISIBLE_CONTRAST and m["core_px"] >= 4 and not already_black
            tr: dict[str, Any] = {"image_id": s.image_id, **dataclasses.asdict(it), "container": s.container,
                                  "modality": s.modality, "image_status": t.status, "visible_ref": visible, **m}
            if it.role == "identifier":
                tr["removed"] = t.status != "shown" or (m["core_black"] >= REMOVED_FRAC
                                                        and m["box_black"] >= REMOVED_FRAC)
            else:
                tr["kept"] = t.status == "shown" and m["box_changed"] <= KEPT_CHANGED_FRAC
            token_rows.append(tr)
    summary = summarise(token_rows, image_rows, timings, len(specs))
    return {"settings": {"seed": settings.seed, "policy": settings.policy, "work": str(work),
                         "black_max": BLACK_MAX, "removed_frac": REMOVED_FRAC, "kept_changed_frac": KEPT_CHANGED_FRAC,
                         "visible_contrast": VISIBLE_CONTRAST},
            "summary": summary, "images": image_rows, "tokens": token_rows}


def _rate(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    n = len(rows)
    k = sum(1 for r in rows if r[key])
    return {"n": n, "hit": k, "rate": round(k / n, 4) if n else None}


def _size_bucket(px: int) -> str:
    return "8-12" if px <= 12 else "13-20" if px <= 20 else "21-32"


def summarise(tokens: list[dict[str, Any]], images: list[dict[str, Any]], timings: dict[str, float],
              n_images: int) -> dict[str, Any]:
    ids = [t for t in tokens if t["role"] == "identifier" and t["visible_ref"]]
    negs = [t for t in tokens if t["role"] == "negative" and t["visible_ref"]]
    shown_ids = [t for t in ids if t["image_status"] == "shown"]
    scored_images = [i for i in images if i["ref_status"] == "shown"]
    fr = [i["false_redaction"] for i in images if "false_redaction" in i]
    by: dict[str, dict[str, Any]] = {}
    for key, fn in (("category", lambda t: t["category"]), ("size_px", lambda t: _size_bucket(t["size_px"])),
                    ("polarity", lambda t: t["polarity"]), ("backdrop", lambda t: t["backdrop"]),
                    ("layout", lambda t: t["layout"]), ("font", lambda t: t["font"]),
                    ("container", lambda t: t["modality"] if t["container"] == "dicom" else t["container"])):
        groups: dict[str, list[dict[str, Any]]] = {}
        for t in ids:
            groups.setdefault(fn(t), []).append(t)
        by[key] = {g: _rate(v, "removed") for g, v in sorted(groups.items())}
    safe = 0
    for i in scored_images:
        mine = [t for t in ids if t["image_id"] == i["image_id"]]
        safe += all(t["removed"] for t in mine)
    ref_t, test_t = timings.get("ref"), timings.get("test")
    return {
        "images": n_images, "images_scored": len(scored_images),
        "withheld": sum(1 for i in scored_images if i["status"] == "withheld"),
        "failed": sum(1 for i in scored_images if i["status"] == "failed"),
        "identifier_tokens_planted": sum(1 for t in tokens if t["role"] == "identifier"),
        "identifier_tokens_invisible_in_reference": sum(1 for t in tokens if t["role"] == "identifier"
                                                        and not t["visible_ref"]),
        "recall": _rate(ids, "removed"),
        "recall_shown_only": _rate(shown_ids, "removed"),
        "images_with_no_identifier_left": {"n": len(scored_images), "hit": safe},
        "negatives_kept": _rate(negs, "kept"),
        "false_redaction_mean": round(float(np.mean(fr)), 6) if fr else None,
        "false_redaction_max": round(float(np.max(fr)), 6) if fr else None,
        "images_false_redaction_over_1pct": sum(1 for v in fr if v > 0.01),
        "seconds_per_image_never": round(ref_t / n_images, 3) if ref_t else None,
        "seconds_per_image_test": round(test_t / n_images, 3) if test_t else None,
        "time_ratio": round(test_t / ref_t, 2) if ref_t and test_t else None,
        "by": by,
    }


def print_summary(res: dict[str, Any]) -> None:
    s, cfg = res["summary"], res["settings"]

    def pct(r: dict[str, Any]) -> str:
        return f"{r['rate'] * 100:6.2f}%  ({r['hit']}/{r['n']})" if r["n"] else "   n/a"

    print(f"held-out B  seed={cfg['seed']}  policy under test={cfg['policy']}  images={s['images']} "
          f"(scored {s['images_scored']})")
    print(f"  identifier tokens: {s['identifier_tokens_planted']} planted, "
          f"{s['identifier_tokens_invisible_in_reference']} not legible in the reference (left out)")
    rows = [("recall (withheld = removed)", pct(s["recall"])),
            ("recall, shown images only", pct(s["recall_shown_only"])),
            ("images withheld / failed", f"{s['withheld']} / {s['failed']}"),
            ("images with no identifier left", f"{s['images_with_no_identifier_left']['hit']}/"
                                               f"{s['images_with_no_identifier_left']['n']}"),
            ("negatives kept", pct(s["negatives_kept"])),
            ("false redaction mean / max", f"{s['false_redaction_mean']} / {s['false_redaction_max']}"),
            ("images with false redaction > 1%", str(s["images_false_redaction_over_1pct"])),
            ("s/image never -> under test", f"{s['seconds_per_image_never']} -> {s['seconds_per_image_test']} "
                                            f"(x{s['time_ratio']})")]
    for k, v in rows:
        print(f"  {k:<34} {v}")
    for key, groups in s["by"].items():
        print(f"  recall by {key}: " + ", ".join(f"{g} {v['hit']}/{v['n']}" for g, v in groups.items()))


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2611)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="inputs, outputs and results go here")
    parser.add_argument("--policy", default="always", choices=["always", "flagged", "never"],
                        help="RADASSIST_BURNED_IN_TEXT of the run under test (the reference is always 'never')")
    parser.add_argument("--score-only", action="store_true", help="rescore the outputs already in --work")
    parser.add_argument("--generate-only", action="store_true", help="write the inputs and manifest, run nothing")
    parser.add_argument("--radassist", type=Path, default=ROOT / ".venv" / "bin" / "radassist")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per ingest run")
    parser.add_argument("--results", type=Path, default=None, help="default: WORK/results.json")
    args = parser.parse_args(argv)
    settings = Settings(args.seed, args.work.resolve(), args.policy, args.radassist, args.timeout)
    timings_path = settings.work / "timings.json"
    if args.score_only:
        specs = load_manifest(settings.work)
        timings = json.loads(timings_path.read_text(encoding="utf-8")) if timings_path.exists() else {}
        settings = dataclasses.replace(settings, policy=timings.get("policy", settings.policy))
    else:
        specs = generate(settings)
        print(f"generated {len(specs)} images, "
              f"{sum(1 for s in specs for i in s.items if i.role == 'identifier')} identifier tokens, "
              f"{sum(1 for s in specs for i in s.items if i.role == 'negative')} negatives in {settings.work}",
              file=sys.stderr)
        if args.generate_only:
            return 0
        timings = {"ref": run_ingest(settings, specs, "never", "ref")}
        timings["test"] = run_ingest(settings, specs, settings.policy, "test")
        timings_path.write_text(json.dumps({**timings, "policy": settings.policy}), encoding="utf-8")
        timings = {"ref": timings["ref"], "test": timings["test"]}
    res = score(settings, specs, {k: v for k, v in timings.items() if isinstance(v, float)})
    out = args.results or settings.work / "results.json"
    out.write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    print_summary(res)
    print(f"  per-token results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
