"""Held-out benchmark D for burned-in text redaction (issue #16), written blind.

What it measures, through the command line only (``radassist ingest FILE --json --out DIR``):

- **Recall** of planted identifier tokens (one word of a name, an MRN, an accession number, a date of birth or
  of the study, an institution, a referring physician, a phone number): a token counts as removed when at least
  95% of its legible pixels are black in the ``RADASSIST_BURNED_IN_TEXT=always`` rendering, or when the image was
  withheld (``burned_in_text.withheld_frames > 0``) or the file failed. Legible pixels are the token's ink (its
  glyph mask from the generator, kept where the planted and the clean twin differ in the ``never`` renderings);
  for dark ink (dark text on a light form) they are the token's bounding box shrunk by 1 px, since blacking dark
  glyphs on a light background leaves the word readable. "Black" is a brightest channel <= 10, or the image's own
  uniform fill level (the value taken by at least half of the pixels the redaction changed, if <= 128: a fill
  written as a stored value can display as 9 to 51 through a window or a greyscale picture's rendering).
- **Negatives kept**: non-identifier annotation (L/R markers, PORTABLE, AP, scale bars, calipers, W/L values,
  probe names, sequence and exposure values, UI words) with under 50% of its legible pixels blacked.
- **False redaction**: share of the visible non-text area (not black in the ``never`` rendering, outside every
  drawn text line padded by a third of its height) that is black in the ``always`` rendering; median and p90 per
  image; withheld and failed images are reported apart.
- **Time per image**: wall time of one ``radassist ingest`` process (start-up included) with ``always`` and with
  ``never``, and their difference.
- A breakdown of recall by layout, source, file format, header match, font size, contrast (ink over background,
  measured on the clean twin as displayed), position, style, font, identifier kind, name form/trait and date format.

Each case is made at run time from the seed: a planted image and its clean twin (the same pixels and UI/form
chrome, no text), from real frames of ``../shared/data/dicom`` (ultrasound RGB, palette multi-frame and greyscale
echo, MONOCHROME1 CR chest and extremity, CT, MR, NM) and VQA-RAD pictures (``../shared/data/vqa_rad/images``).
The native text of the sources is wiped or cropped off before planting: VQA-RAD pictures are cropped to their
central 76% (their MedPix caption, watermark and corner annotations sit at the edges; a leftover fragment can show up
as false redaction, never as recall). DICOM files carry the same identifiers in their header as a real modality
would, except for secondary captures of another system's screen whose pixels show a different patient; PNG/JPEG
uploads carry none. Names, numbers and institutions are invented.

Run::

    .venv/bin/python -m bench.heldout_burned_in_d --seed 7707 --work /tmp/heldout_d [--images N] [--jobs 2]

It prints a table and writes ``WORK/results.json`` (every token and image with its labels). ``--generate-only``
writes the cases and a preview PNG of each planted image without running ingest.

Written blind: without reading the redactor (assistant/imaging/burned_in.py), its tests, the other burned-in
benchmarks or their results; only ``radassist ingest --help``, the CLI's output format and the documented setting
``RADASSIST_BURNED_IN_TEXT`` were used.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
RADASSIST = ROOT / ".venv" / "bin" / "radassist"
DICOM_DIR = ROOT.parent / "shared" / "data" / "dicom"
VQA_DIR = ROOT.parent / "shared" / "data" / "vqa_rad" / "images"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

BLACK = 10  # a rendered pixel whose brightest channel is at most this is "black" (redaction fills with 0)
FILL_MAX = 128  # ...or within 2 of the image's fill level: the value at least half of the changed pixels took,
# when no brighter than this (a fill written as a stored value displays as 9, 30, 37 or 51 through a window)
VISIBLE = 10  # planted and clean twin must differ by more than this for an ink pixel to count as visible
DARK_INK = 60  # median ink brightness below this: judge the token by its bounding box, not its glyphs
REMOVED = 0.95  # share of legible pixels black for a token to count as removed (the brief's threshold)
KEPT = 0.50  # a negative is kept when less than this share of its legible pixels is black
PAD = 4  # margin around each rendered glyph image

FONT_FILES = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "sans_light": "DejaVuSans-ExtraLight.ttf",
    "sans_oblique": "DejaVuSans-Oblique.ttf",
    "condensed": "DejaVuSansCondensed.ttf",
    "condensed_bold": "DejaVuSansCondensed-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "serif_condensed": "DejaVuSerifCondensed.ttf",
}
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[float, float, float]

# Invented people and places; accents and hyphens on purpose (all Latin-1, which the bitmap font can draw).
LAST_NAMES = (
    "Okonkwo",
    "Lindqvist",
    "Harrowgate",
    "Delacroix-Byrne",
    "Nakamura-Reyes",
    "Pembrooke",
    "Valcourt",
    "Oyelaran",
    "Brennagh",
    "Kowalczyk",
    "Fairweather",
    "Achterberg",
    "Lefèvre",
    "Jönsson",
    "Müller-Thal",
    "Desrosiers",
    "Castellanos",
    "Whitcombe",
    "Quennell",
    "Ólafsdóttir",
    "O'Shaughnessy",
    "McAllister",
    "Haldane-Price",
    "Duchêne",
    "Szabó",
    "Ferreira-Lund",
    "Abernethy",
    "Thistlewood",
    "Moreau-Ödegaard",
    "Iwuchukwu",
    "Bréval",
    "Söderholm",
)
FIRST_NAMES = (
    "Marguerite",
    "Tobias",
    "Hélène",
    "Anneliese",
    "Dmitri",
    "Keziah",
    "Björn",
    "Océane",
    "Rafferty",
    "Imogen",
    "Thaddeus",
    "Priyanka",
    "Zoë",
    "Émile",
    "Lorcan",
    "Ngozi",
    "Søren",
    "Wilhelmina",
    "Cosimo",
    "Inès",
    "Jörg",
    "Farida",
    "Ansel",
    "Mireille",
    "Osric",
    "Talulah",
    "René",
    "Saoirse",
    "Göran",
    "Amélie",
)
INSTITUTIONS = (
    "Northmere Valley Medical Center",
    "St. Aldric Regional Hospital",
    "Kestrel Bay Imaging",
    "Clinique Sainte-Élodie",
    "Altenbruck Klinikum",
    "Rivermont Health Partners",
    "Harlow Creek Hospital",
    "Marisol Women's Hospital",
    "Dunmore General Infirmary",
    "Lakeshore Children's Clinic",
    "Brackwater Radiology",
)
SHORT_INSTITUTIONS = ("Kestrel Bay Imaging", "Altenbruck Klinikum", "Brackwater Radiology", "Harlow Creek Hospital")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DATE_FORMATS = ("iso", "dmy_dot", "mdy_slash", "d-Mon-yyyy", "compact", "DD-MON-YYYY", "m/d/yy")
NAME_FORMS = (
    "LAST^FIRST",
    "LAST^FIRST^M",
    "Last, First",
    "Last, First M.",
    "FIRST LAST",
    "First M. Last",
    "LAST, FIRST",
)
OVERLAY_COLOURS: dict[str, RGB] = {
    "white": (255, 255, 255),
    "yellow": (255, 232, 40),
    "green": (90, 255, 90),
    "cyan": (70, 228, 255),
    "orange": (255, 168, 40),
}
CLINICAL_LINES = (
    "Persistent right upper quadrant pain for three weeks, worse after meals.",
    "Rule out cholecystitis. Prior cholecystectomy: no. Fever on admission.",
    "Follow-up of 8 mm nodule in the right lower lobe seen on prior study.",
    "Shortness of breath and pleuritic chest pain; D-dimer elevated.",
    "Fall from standing height, pain and swelling over the lateral malleolus.",
    "Known renal calculus, new flank pain and microscopic haematuria.",
    "Headache with new focal weakness of the left arm since this morning.",
    "Staging of biopsy-proven adenocarcinoma, compare with outside imaging.",
    "Palpable lump in the upper outer quadrant, family history positive.",
    "Post-operative check of hardware, no new trauma reported.",
)


# --------------------------------------------------------------------------------------------------------------
# People, dates and the words that name them


@dataclass(frozen=True)
class Identity:
    last: str
    first: str
    middle: str
    sex: str
    dob: date
    study: date
    mrn: str
    accession: str
    institution: str
    phys_last: str
    phys_first: str
    phone: str


@dataclass(frozen=True)
class Part:
    """One word to draw: role id (scored for recall), neg (scored as kept), label or filler (not scored)."""

    text: str
    role: str = "id"
    kind: str = ""
    extra: tuple[tuple[str, str], ...] = ()


def lab(text: str) -> Part:
    return Part(text, "label", "label")


def neg(text: str, kind: str) -> Part:
    return Part(text, "neg", kind)


def fill(text: str) -> list[Part]:
    return [Part(w, "filler", "filler") for w in text.split()]


def negs(text: str, kind: str) -> list[Part]:
    return [neg(w, kind) for w in text.split()]


def random_identity(rng: random.Random) -> Identity:
    """An invented patient with an MRN, accession and dates in one of several real-world shapes."""
    dob = date(1931, 1, 1) + timedelta(days=rng.randint(0, 88 * 365))
    study = date(2019, 1, 1) + timedelta(days=rng.randint(0, 6 * 365))
    mrn = rng.choice(
        [
            f"{rng.randint(0, 10**9 - 1):09d}",
            f"H{rng.randint(10**6, 10**7 - 1)}",
            f"E{rng.randint(10, 99)}-{rng.randint(100, 999)}-{rng.randint(100, 999)}",
            f"{rng.randint(10**6, 10**7 - 1)}",
            f"MR{rng.randint(10**7, 10**8 - 1)}",
        ]
    )
    accession = rng.choice(
        [
            f"A{study.year % 100:02d}-{rng.randint(10**6, 10**7 - 1)}",
            f"RAD{study.strftime('%Y%m%d')}{rng.randint(1000, 9999)}",
            f"{rng.randint(10**7, 10**8 - 1)}",
            f"ACC{rng.randint(10**5, 10**6 - 1)}",
        ]
    )
    return Identity(
        last=rng.choice(LAST_NAMES),
        first=rng.choice(FIRST_NAMES),
        middle=rng.choice("ABCDEFGHJKLMNPRSTVW"),
        sex=rng.choice("FM"),
        dob=dob,
        study=study,
        mrn=mrn,
        accession=accession,
        institution=rng.choice(INSTITUTIONS),
        phys_last=rng.choice(LAST_NAMES),
        phys_first=rng.choice(FIRST_NAMES),
        phone=f"(555) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
    )


def format_date(d: date, fmt: str) -> str:
    mon = MONTHS[d.month - 1]
    return {
        "iso": f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
        "dmy_dot": f"{d.day:02d}.{d.month:02d}.{d.year:04d}",
        "mdy_slash": f"{d.month:02d}/{d.day:02d}/{d.year:04d}",
        "d-Mon-yyyy": f"{d.day}-{mon}-{d.year:04d}",
        "compact": f"{d.year:04d}{d.month:02d}{d.day:02d}",
        "DD-MON-YYYY": f"{d.day:02d}-{mon.upper()}-{d.year:04d}",
        "m/d/yy": f"{d.month}/{d.day}/{d.year % 100:02d}",
    }[fmt]


def date_part(d: date, fmt: str, kind: str) -> Part:
    return Part(format_date(d, fmt), "id", kind, (("date_fmt", fmt),))


def name_parts(p: Identity, form: str) -> list[Part]:
    """The patient's name as a modality or a form would write it."""
    upper = form in ("LAST^FIRST", "LAST^FIRST^M", "FIRST LAST", "LAST, FIRST")
    last, first = (p.last.upper(), p.first.upper()) if upper else (p.last, p.first)
    ex = (("name_form", form),)
    if form.startswith("LAST^"):
        text = f"{last}^{first}" + (f"^{p.middle}" if form.endswith("^M") else "")
        return [Part(text, "id", "name_full", ex)]
    if form in ("Last, First", "LAST, FIRST"):
        return [Part(last + ",", "id", "name_last", ex), Part(first, "id", "name_first", ex)]
    if form == "Last, First M.":
        return [
            Part(last + ",", "id", "name_last", ex),
            Part(first, "id", "name_first", ex),
            Part(p.middle + ".", "id", "name_initial", ex),
        ]
    if form == "FIRST LAST":
        return [Part(first, "id", "name_first", ex), Part(last, "id", "name_last", ex)]
    return [
        Part(first, "id", "name_first", ex),
        Part(p.middle + ".", "id", "name_initial", ex),
        Part(last, "id", "name_last", ex),
    ]


def institution_parts(name: str) -> list[Part]:
    return [Part(w, "id", "institution") for w in name.split()]


# --------------------------------------------------------------------------------------------------------------
# Fonts and glyph masks


@cache
def get_font(name: str, size: int) -> Font:
    if name == "bitmap":
        return ImageFont.load_default_imagefont()  # PIL's built-in bitmap font, about 11 px
    return ImageFont.truetype(str(FONT_DIR / FONT_FILES[name]), size)


def font_px(name: str, size: int) -> int:
    return 11 if name == "bitmap" else size


def text_width(text: str, f: Font, spacing: int) -> float:
    if spacing == 0:
        return float(f.getlength(text))
    return sum(float(f.getlength(ch)) + spacing for ch in text) - spacing


def glyph_cov(text: str, f: Font, px: int, spacing: int, stroke: int, margin: int) -> np.ndarray:
    """(h, w) float coverage 0..1 of the text drawn at (margin, margin)."""
    w = int(math.ceil(text_width(text, f, spacing))) + 2 * margin + 2
    h = int(px * 1.45) + 2 * margin + 2
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    kw: dict[str, Any] = {"stroke_width": stroke, "stroke_fill": 255} if stroke else {}
    if spacing == 0:
        d.text((margin, margin), text, font=f, fill=255, **kw)
    else:
        x = float(margin)
        for ch in text:
            d.text((x, margin), ch, font=f, fill=255, **kw)
            x += float(f.getlength(ch)) + spacing
    return np.asarray(img, dtype=np.float32) / 255.0


def shifted(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(a)
    out[dy:, dx:] = a[: a.shape[0] - dy, : a.shape[1] - dx]
    return out


def size_bucket(px: int) -> str:
    return "8-11px" if px <= 11 else "12-19px" if px <= 19 else "20-29px" if px <= 29 else "30+px"


# --------------------------------------------------------------------------------------------------------------
# Canvases: a planted image and its clean twin drawn together


@dataclass(frozen=True)
class GreySpec:
    """How stored greyscale values are displayed (PS3.3 C.11.2.1.2 linear window, MONOCHROME1 inverted)."""

    photometric: str
    bits_stored: int
    signed: bool
    center: float
    width: float
    slope: float = 1.0
    intercept: float = 0.0

    @property
    def max_value(self) -> int:
        return 2 ** (self.bits_stored - 1) - 1 if self.signed else 2**self.bits_stored - 1

    @property
    def min_value(self) -> int:
        return -(2 ** (self.bits_stored - 1)) if self.signed else 0

    def display(self, stored: np.ndarray | float) -> np.ndarray:
        v = np.asarray(stored, dtype=np.float32) * self.slope + self.intercept
        d = np.clip((v - (self.center - self.width / 2)) / self.width, 0, 1) * 255
        return 255 - d if self.photometric == "MONOCHROME1" else d

    def stored_for(self, d: float) -> float:
        if self.photometric == "MONOCHROME1":
            d = 255 - d
        v = self.center - self.width / 2 + d / 255 * self.width
        return float(np.clip((v - self.intercept) / self.slope, self.min_value, self.max_value))


@dataclass
class Word:
    text: str
    role: str
    kind: str
    frame: int
    y0: int
    x0: int
    mask: np.ndarray  # bool, ink of this word in frame coordinates from (y0, x0)
    labels: dict[str, str]


@dataclass(frozen=True)
class Look:
    font: str
    size: int
    fill: Any  # RGB for colour canvases, a stored value or an RGB to convert for greyscale ones
    style: str = "plain"
    spacing: int = 0
    outline: Any = None
    shadow: Any = None
    ink_value: str = "other"


class Canvas:
    """One frame: the planted pixels, the clean twin's pixels, and every drawn word with its ink mask."""

    def __init__(self, pix: np.ndarray, grey: GreySpec | None, frame: int = 1) -> None:
        self.pix = pix.astype(np.float32).copy()
        self.clean = self.pix.copy()
        self.grey = grey
        self.frame = frame
        self.words: list[Word] = []
        self.lines: list[tuple[int, int, int, int]] = []  # x0, y0, x1, y1 of each text line, padded
        self.tight: list[tuple[int, int, int, int]] = []  # the same, unpadded, to keep drawn lines apart
        self.overlaps = 0  # drawn lines whose ink boxes intersect an earlier one (a generator layout bug)

    @property
    def h(self) -> int:
        return int(self.pix.shape[0])

    @property
    def w(self) -> int:
        return int(self.pix.shape[1])

    def display(self) -> np.ndarray:
        """Brightness of the clean twin as a viewer shows it, (H, W) 0..255."""
        if self.grey is not None:
            return self.grey.display(self.clean)
        return self.clean.mean(axis=2)

    def ink(self, colour: Any) -> Any:
        """A colour (RGB or grey 0..255 display value) in this canvas's pixel units."""
        if self.grey is None:
            return (float(colour),) * 3 if np.isscalar(colour) else tuple(float(c) for c in colour)
        d = float(colour) if np.isscalar(colour) else float(np.mean(colour))
        return self.grey.stored_for(d)

    def ink_display(self, value: Any) -> tuple[float, float]:
        """(brightness, saturation) of an ink in display terms."""
        if self.grey is not None:
            return float(self.grey.display(float(value))), 0.0
        r, g, b = value
        return 0.299 * r + 0.587 * g + 0.114 * b, max(value) - min(value)

    # -- chrome: drawn into both twins -------------------------------------------------------------------------
    def chrome(self, draw: Callable[[ImageDraw.ImageDraw], None], colour: Any, alpha: float = 1.0) -> None:
        mask = Image.new("L", (self.w, self.h), 0)
        draw(ImageDraw.Draw(mask))
        cov = np.asarray(mask, dtype=np.float32) / 255.0 * alpha
        value = self.ink(colour)
        for target in (self.pix, self.clean):
            _blend(target, 0, 0, cov, value)

    def rect(self, box: tuple[float, float, float, float], colour: Any, alpha: float = 1.0) -> None:
        self.chrome(lambda d: d.rectangle(box, fill=255), colour, alpha)

    def paste(self, x: int, y: int, arr: np.ndarray) -> None:
        h, w = arr.shape[:2]
        for target in (self.pix, self.clean):
            target[y : y + h, x : x + w] = arr

    # -- text and graphics: planted only ---------------------------------------------------------------------
    def line_width(self, parts: list[Part], look: Look) -> int:
        f = get_font(look.font, look.size)
        space = text_width(" ", f, 0) + look.spacing
        return int(sum(text_width(p.text, f, look.spacing) for p in parts) + space * (len(parts) - 1))

    def put_line(
        self, x: int, y: int, parts: list[Part], look: Look, position: str, *, vertical: bool = False
    ) -> tuple[int, int]:
        """Draw words left to right (or bottom to top when vertical) from (x, y); returns (width, height)."""
        f = get_font(look.font, look.size)
        px = font_px(look.font, look.size)
        stroke = (2 if px >= 24 else 1) if look.outline is not None else 0
        margin = PAD + stroke + 2
        space = text_width(" ", f, 0) + look.spacing
        style = "rotated90" if vertical else look.style
        placed: list[tuple[int, Part, list[tuple[np.ndarray, Any]], np.ndarray]] = []
        lx = 0.0
        for part in parts:
            cov = glyph_cov(part.text, f, px, look.spacing, 0, margin)
            layers: list[tuple[np.ndarray, Any]] = []
            if look.shadow is not None:
                d = 2 if px >= 20 else 1
                layers.append((shifted(cov, d, d), look.shadow))
            if stroke:
                layers.append((glyph_cov(part.text, f, px, look.spacing, stroke, margin), look.outline))
            layers.append((cov, look.fill))
            ink = np.zeros(cov.shape, dtype=bool)
            for c, _ in layers:
                ink |= c >= 0.5
            placed.append((int(round(lx)) - margin, part, layers, ink))
            lx += text_width(part.text, f, look.spacing) + space
        width = int(lx - space)
        boxes: list[tuple[int, int, int, int]] = []
        words: list[tuple[Part, int, int, np.ndarray]] = []
        for u0, part, layers, ink in placed:
            v0 = -margin
            if vertical:
                gw = ink.shape[1]
                ox, oy = x + v0, y - u0 - gw + 1
                layers = [(np.rot90(c), v) for c, v in layers]
                ink = np.rot90(ink)
            else:
                ox, oy = x + u0, y + v0
            for c, value in layers:
                _blend(self.pix, oy, ox, c, value)
            clipped = _clip(self.h, self.w, oy, ox, ink)
            if clipped is None:
                continue
            cy, cx, cm = clipped
            ys, xs = np.nonzero(cm)
            if len(ys):
                boxes.append((cx + int(xs.min()), cy + int(ys.min()), cx + int(xs.max()) + 1, cy + int(ys.max()) + 1))
            words.append((part, cy, cx, cm))
        if not boxes:
            return width, px
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        pad = 3 + int(0.35 * px)
        self._note_box((x0, y0, x1, y1))
        self.lines.append((max(0, x0 - pad), max(0, y0 - pad), min(self.w, x1 + pad), min(self.h, y1 + pad)))
        bg = float(self.display()[y0:y1, x0:x1].mean())
        contrast = _contrast(self.ink_display(look.fill), bg)
        for part, cy, cx, cm in words:
            labels = {
                "size": size_bucket(px),
                "contrast": contrast,
                "position": position,
                "style": style,
                "font": look.font,
                "ink_value": look.ink_value,
            }
            labels.update(dict(part.extra))
            self.words.append(Word(part.text, part.role, part.kind, self.frame, cy, cx, cm, labels))
        return width, px

    def graphic(self, draw: Callable[[ImageDraw.ImageDraw], None], colour: Any, kind: str, position: str) -> None:
        """A non-text annotation (scale bar, caliper, arrow, ECG trace), scored as a negative."""
        mask = Image.new("L", (self.w, self.h), 0)
        draw(ImageDraw.Draw(mask))
        cov = np.asarray(mask, dtype=np.float32) / 255.0
        value = self.ink(colour)
        _blend(self.pix, 0, 0, cov, value)
        ink = cov >= 0.5
        ys, xs = np.nonzero(ink)
        if not len(ys):
            return
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        self._note_box((x0, y0, x1, y1))
        self.lines.append((max(0, x0 - 4), max(0, y0 - 4), min(self.w, x1 + 4), min(self.h, y1 + 4)))
        bg = float(self.display()[y0:y1, x0:x1].mean())
        labels = {
            "size": "graphic",
            "contrast": _contrast(self.ink_display(value), bg),
            "position": position,
            "style": "graphic",
            "font": "none",
            "ink_value": "other",
        }
        self.words.append(Word(kind, "neg", kind, self.frame, y0, x0, ink[y0:y1, x0:x1].copy(), labels))

    def _note_box(self, box: tuple[int, int, int, int]) -> None:
        if not self.free(box):
            self.overlaps += 1
        self.tight.append(box)

    def free(self, box: tuple[int, int, int, int]) -> bool:
        """Whether a box meets no text or graphic drawn so far."""
        x0, y0, x1, y1 = box
        return all(x1 <= a or b <= x0 or y1 <= c or d <= y0 for a, c, b, d in self.tight)

    # -- whole-frame transforms, applied to both twins and every mask ----------------------------------------
    def rotate(self, angle: float, background: float) -> None:
        """Rotate like a skewed scan (degrees, counter-clockwise)."""

        def rot(a: np.ndarray) -> np.ndarray:
            chans = [a] if a.ndim == 2 else [a[..., i] for i in range(a.shape[2])]
            out = [
                np.asarray(
                    Image.fromarray(c.astype(np.float32)).rotate(angle, Image.Resampling.BICUBIC, fillcolor=background)
                )
                for c in chans
            ]
            return out[0] if a.ndim == 2 else np.stack(out, axis=2)

        self.pix, self.clean = rot(self.pix), rot(self.clean)
        for word in self.words:
            full = np.zeros((self.h, self.w), dtype=np.uint8)
            mh, mw = word.mask.shape
            full[word.y0 : word.y0 + mh, word.x0 : word.x0 + mw] = word.mask * 255
            r = np.asarray(Image.fromarray(full).rotate(angle, Image.Resampling.BILINEAR)) >= 128
            ys, xs = np.nonzero(r)
            if not len(ys):
                word.mask = np.zeros((1, 1), dtype=bool)
                continue
            word.y0, word.x0 = int(ys.min()), int(xs.min())
            word.mask = r[word.y0 : int(ys.max()) + 1, word.x0 : int(xs.max()) + 1]
        new_lines = []
        for x0, y0, x1, y1 in self.lines:
            full = np.zeros((self.h, self.w), dtype=np.uint8)
            full[y0:y1, x0:x1] = 255
            ys, xs = np.nonzero(np.asarray(Image.fromarray(full).rotate(angle, Image.Resampling.NEAREST)))
            if len(ys):
                new_lines.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
        self.lines = new_lines

    def finish(self, noise: np.ndarray | None = None, gain: np.ndarray | None = None, blur: float = 0.0) -> None:
        """Scanner/camera effects, identical on both twins."""
        for name in ("pix", "clean"):
            a = getattr(self, name)
            if gain is not None:
                a = a * (gain if a.ndim == 2 else gain[..., None])
            if noise is not None:
                a = a + (noise if a.ndim == 2 else noise[..., None])
            if blur:
                a = gaussian_blur(a, blur)
            setattr(self, name, a.astype(np.float32))

    def jpeg_roundtrip(self, quality: int) -> None:
        """Screen-capture compression before the pixels were archived (both twins, separately)."""
        for name in ("pix", "clean"):
            buf = io.BytesIO()
            Image.fromarray(np.clip(getattr(self, name), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
            setattr(self, name, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.float32))


def gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of the first two axes (edges repeated)."""
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = a.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return out


def _blend(target: np.ndarray, y0: int, x0: int, cov: np.ndarray, value: Any) -> None:
    h, w = target.shape[:2]
    ya, xa, yb, xb = max(0, y0), max(0, x0), min(h, y0 + cov.shape[0]), min(w, x0 + cov.shape[1])
    if ya >= yb or xa >= xb:
        return
    c = cov[ya - y0 : yb - y0, xa - x0 : xb - x0]
    region = target[ya:yb, xa:xb]
    if target.ndim == 3:
        c = c[..., None]
        v = np.asarray(value, dtype=np.float32)
    else:
        v = np.float32(value)
    region *= 1 - c
    region += c * v


def _clip(h: int, w: int, y0: int, x0: int, m: np.ndarray) -> tuple[int, int, np.ndarray] | None:
    ya, xa, yb, xb = max(0, y0), max(0, x0), min(h, y0 + m.shape[0]), min(w, x0 + m.shape[1])
    if ya >= yb or xa >= xb:
        return None
    return ya, xa, m[ya - y0 : yb - y0, xa - x0 : xb - x0].copy()


def _contrast(ink: tuple[float, float], bg: float) -> str:
    lum, sat = ink
    ink_name = "colour" if sat > 80 else "light" if lum >= 140 else "dark"
    bg_name = "dark" if bg < 50 else "mid" if bg < 150 else "bright"
    return f"{ink_name}_on_{bg_name}"


# --------------------------------------------------------------------------------------------------------------
# Sources: real frames with their own text wiped or cropped off


def _dcm(rel: str) -> Any:
    import pydicom

    return pydicom.dcmread(DICOM_DIR / rel)


@cache
def src_us_doppler() -> np.ndarray:
    """GE ultrasound with power Doppler (480x640 RGB); its header text and colour bars wiped."""
    a = np.array(_dcm("pydicom_data/US1_J2KR.dcm").pixel_array, dtype=np.float32)
    a[:106] = 0
    a[344:] = 0
    a[:, :44] = 0
    a[:, 597:] = 0
    return a


@cache
def src_echo() -> np.ndarray:
    """Greyscale echo sector (768x1024, 8-bit); the text, ECG and caliper label around it wiped."""
    a = np.array(_dcm("pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm").pixel_array, dtype=np.float32)
    a[:125] = 0
    a[:, :145] = 0
    a[690:] = 0
    a[:, 915:] = 0
    band = Image.new("L", (a.shape[1], a.shape[0]), 0)  # the X2 caliper: a diagonal line, a dot and its label
    ImageDraw.Draw(band).line((760, 270, 880, 392), fill=255, width=30)
    ImageDraw.Draw(band).rectangle((800, 288, 852, 338), fill=255)
    a[np.asarray(band) > 0] = 0
    return a


@cache
def src_ob_frames() -> tuple[np.ndarray, ...]:
    """Two frames of a palette-colour obstetric ultrasound (600x800) as RGB; vendor text wiped."""
    from pydicom.pixels import apply_color_lut

    ds = _dcm("pydicom_data/OBXXXX1A_rle_2frame.dcm")
    rgb = apply_color_lut(ds.pixel_array, ds).astype(np.float32)
    if rgb.max() > 255:
        rgb = rgb / 257.0
    frames = []
    for f in rgb:
        f = f.copy()
        f[:62] = 0
        f[:, :112] = 0
        f[62:112, 112:330] = 0
        f[400:540, 100:215] = 0
        f[:, 760:] = 0
        frames.append(f)
    return tuple(frames)


@cache
def src_cr_chest() -> np.ndarray:
    """CR chest, MONOCHROME1, 15 bits stored, resampled to 866x920."""
    a = np.array(_dcm("pydicom_data/RG1_UNCI.dcm").pixel_array, dtype=np.float32)
    return np.asarray(Image.fromarray(a).resize((866, 920), Image.Resampling.BILINEAR), dtype=np.float32)


@cache
def src_cr_extremity() -> np.ndarray:
    """CR lower leg, MONOCHROME1, 10 bits, 880x880; its own (mirrored) R marker wiped."""
    a = np.array(_dcm("pydicom_data/RG3_J2KR.dcm").pixel_array, dtype=np.float32)
    top, bottom = a[1350, 1110:1250], a[1505, 1110:1250]
    t = np.linspace(0, 1, 1505 - 1351)[:, None]
    a[1351:1505, 1110:1250] = top * (1 - t) + bottom * t  # column-wise interpolation keeps the skin edge
    return np.asarray(Image.fromarray(a).resize((880, 880), Image.Resampling.BILINEAR), dtype=np.float32)


@cache
def src_ct() -> np.ndarray:
    return np.array(_dcm("pydicom_data/693_UNCI.dcm").pixel_array, dtype=np.float32)


@cache
def src_mr(which: int) -> np.ndarray:
    rel = "dcm_qa_ts/1.dcm" if which == 0 else "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm"
    return np.array(_dcm(rel).pixel_array, dtype=np.float32)


@cache
def src_nm() -> np.ndarray:
    return np.array(_dcm("pydicom_data/JPEG-LL.dcm").pixel_array, dtype=np.float32)


@cache
def vqa_files() -> tuple[Path, ...]:
    return tuple(sorted(VQA_DIR.glob("*.jpg")))


def src_vqa(rng: random.Random, max_side: int) -> tuple[np.ndarray, str]:
    """A VQA-RAD picture cropped to its central 76% (caption, watermark and corner notes sit at the edges)."""
    while True:
        path = rng.choice(vqa_files())
        im = Image.open(path).convert("RGB")
        if min(im.size) >= 300:
            break
    w, h = im.size
    im = im.crop((int(0.12 * w), int(0.12 * h), int(0.88 * w), int(0.88 * h)))
    scale = max_side / max(im.size)
    im = im.resize((max(1, int(im.size[0] * scale)), max(1, int(im.size[1] * scale))), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.float32), path.name


# --------------------------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class DicomSpec:
    modality: str
    sop_class: str
    extra: tuple[tuple[str, Any], ...] = ()


US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTI = "1.2.840.10008.5.1.4.1.1.3.1"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"


@dataclass
class Case:
    name: str
    layout: str
    source: str
    fmt: str  # dicom | png | jpeg
    frames: list[Canvas]
    dicom: DicomSpec | None = None
    header: Identity | None = None
    header_match: str = "none"  # match | mismatch | none (no header)
    jpeg_quality: int = 90
    as_grey: bool = False  # save PNG/JPEG as greyscale (scanned forms)
    notes: dict[str, Any] = field(default_factory=dict)


class Gen:
    """Random choices for one case."""

    def __init__(self, seed: int, index: int) -> None:
        self.rng = random.Random(seed * 100_003 + index)
        self.np = np.random.default_rng(seed * 100_003 + index)

    def look(
        self,
        canvas: Canvas,
        colours: dict[str, RGB] | None = None,
        sizes: tuple[int, ...] = (10, 11, 12, 13, 14),
        fonts: tuple[str, ...] = ("sans", "mono", "bitmap", "condensed", "sans_bold"),
        styles: tuple[str, ...] = ("plain", "plain", "shadow", "outline", "letterspaced"),
        value: Any = None,
        ink_value: str = "other",
    ) -> Look:
        font = self.rng.choice(fonts)
        style = self.rng.choice(styles)
        if font == "bitmap" and style in ("shadow", "outline"):
            style = "plain"  # the bitmap font has no stroke; a shadow on it is drawn as plain
        if value is None:
            value = canvas.ink(self.rng.choice(list((colours or OVERLAY_COLOURS).values())))
        black = canvas.ink((0, 0, 0))
        return Look(
            font=font,
            size=self.rng.choice(sizes),
            fill=value,
            style=style,
            spacing=self.rng.choice([2, 3]) if style == "letterspaced" else (-1 if style == "tight" else 0),
            outline=black if style == "outline" else None,
            shadow=black if style == "shadow" else None,
            ink_value=ink_value,
        )

    def identity(self) -> Identity:
        return random_identity(self.rng)

    def form(self) -> str:
        return self.rng.choice(NAME_FORMS)

    def dfmt(self) -> str:
        return self.rng.choice(DATE_FORMATS)


def fit(canvas: Canvas, parts: list[Part], look: Look, max_w: int) -> Look:
    """Shrink the font until the line fits (a modality would truncate; we keep every word whole)."""
    while canvas.line_width(parts, look) > max_w and look.size > 8 and look.font != "bitmap":
        look = Look(
            look.font, look.size - 1, look.fill, look.style, look.spacing, look.outline, look.shadow, look.ink_value
        )
    return look


def block(
    canvas: Canvas,
    x: int,
    y: int,
    lines: list[list[Part]],
    look: Look,
    position: str,
    right: bool = False,
    gap: int = 3,
) -> int:
    """Stack lines from (x, y), left-aligned or right-aligned at x; returns the y below the block."""
    for parts in lines:
        lk = fit(canvas, parts, look, canvas.w - 8)
        w = canvas.line_width(parts, lk)
        lx = x - w if right else x
        lx = max(2, min(lx, canvas.w - w - 2))
        _, h = canvas.put_line(lx, y, parts, lk, position)
        y += h + gap + (2 if lk.style == "letterspaced" else 0)
    return y


def best_spot(
    canvas: Canvas, w: int, h: int, region: tuple[int, int, int, int], want: str, rng: random.Random, tries: int = 40
) -> tuple[int, int]:
    """Top-left of a w x h box inside region (x0, y0, x1, y1) that is brightest/darkest/most textured."""
    disp = canvas.display()
    x0, y0, x1, y1 = region
    best, best_score = (x0, y0), -1e9
    for _ in range(tries):
        x = rng.randint(x0, max(x0, x1 - w))
        y = rng.randint(y0, max(y0, y1 - h))
        patch = disp[y : y + h, x : x + w]
        if patch.size == 0 or not canvas.free((x - 4, y - 4, x + w + 4, y + h + 4)):
            continue
        score = {"bright": patch.mean(), "dark": -patch.mean(), "busy": patch.std()}[want]
        if score > best_score:
            best, best_score = (x, y), float(score)
    return best


def caliper(canvas: Canvas, rng: random.Random, region: tuple[int, int, int, int], colour: Any) -> None:
    x0, y0, x1, y1 = region
    ax, ay = rng.randint(x0, x1), rng.randint(y0, y1)
    bx, by = min(x1, ax + rng.randint(40, 120)), min(y1, ay + rng.randint(-30, 30))

    def draw(d: ImageDraw.ImageDraw) -> None:
        for cx, cy in ((ax, ay), (bx, by)):
            d.line((cx - 5, cy, cx + 5, cy), fill=255, width=1)
            d.line((cx, cy - 5, cx, cy + 5), fill=255, width=1)
        n = 12
        for i in range(1, n):
            if i % 2:
                px, py = ax + (bx - ax) * i / n, ay + (by - ay) * i / n
                d.point((px, py), fill=255)
                d.point((px + 1, py), fill=255)

    canvas.graphic(draw, colour, "caliper", "over_anatomy")


def scale_bar(canvas: Canvas, x: int, y: int, length: int, colour: Any, vertical: bool = False) -> None:
    def draw(d: ImageDraw.ImageDraw) -> None:
        if vertical:
            d.line((x, y, x, y + length), fill=255, width=1)
            for i in range(6):
                t = y + length * i // 5
                d.line((x, t, x + (6 if i % 5 == 0 else 3), t), fill=255, width=1)
        else:
            d.line((x, y, x + length, y), fill=255, width=1)
            for i in range(6):
                t = x + length * i // 5
                d.line((t, y, t, y - (6 if i % 5 == 0 else 3)), fill=255, width=1)

    canvas.graphic(draw, colour, "scale_bar", "edge")


def arrow(canvas: Canvas, x: int, y: int, colour: Any) -> None:
    def draw(d: ImageDraw.ImageDraw) -> None:
        d.line((x, y, x + 30, y + 30), fill=255, width=2)
        d.polygon([(x, y), (x + 11, y + 3), (x + 3, y + 11)], fill=255)

    canvas.graphic(draw, colour, "arrow", "over_anatomy")


# -- ultrasound ------------------------------------------------------------------------------------------------


def gen_us_doppler(g: Gen, k: int) -> Case:
    p = g.identity()
    c = Canvas(src_us_doppler(), None)
    look = g.look(c, sizes=(9, 10, 11, 12, 13, 14, 16))
    block(
        c,
        10,
        6,
        [
            institution_parts(p.institution),
            name_parts(p, g.form()),
            [lab("ID:"), Part(p.mrn, "id", "mrn")],
            [lab("DOB:"), date_part(p.dob, g.dfmt(), "dob")],
        ],
        look,
        "corner",
    )
    right = g.look(c, sizes=(10, 11, 12, 13), value=look.fill, styles=(look.style,))
    block(
        c,
        c.w - 10,
        6,
        [
            [date_part(p.study, g.dfmt(), "study_date"), *fill(f"{g.rng.randint(7, 18)}:{g.rng.randint(10, 59)}:07")],
            [neg(g.rng.choice(["L12-5", "ML6-15", "9L-D", "L8-18i"]), "probe"), *negs("MSK", "preset")],
            negs(f"MI {g.rng.choice(['0.8', '1.1', '0.6'])} TIS {g.rng.choice(['0.4', '0.2'])}", "us_param"),
        ],
        right,
        "corner",
        right=True,
    )
    caliper(c, g.rng, (120, 150, 450, 300), c.ink(look.fill))
    if k % 2 == 0:  # accession written over the image area, as some systems do
        lk = g.look(c, sizes=(12, 14, 16), colours={"white": (255, 255, 255), "yellow": (255, 232, 40)})
        parts = [lab("Acc#"), Part(p.accession, "id", "accession")]
        x, yy = best_spot(c, c.line_width(parts, lk), 18, (50, 115, 560, 320), "bright", g.rng)
        c.put_line(x, yy, parts, lk, "over_anatomy")
    else:
        block(c, c.w - 10, 350, [[lab("Acc:"), Part(p.accession, "id", "accession")]], right, "bottom_band", right=True)
    block(c, 20, 380, [negs(f"D1 {g.rng.randint(3, 30) / 10:.2f} cm", "measurement")], right, "bottom_band")
    scale_bar(c, 80, 455, 170, c.ink((255, 255, 255)))
    block(c, c.w - 10, 440, [negs("TIS<0.4 MI=0.8 AO=100%", "us_param")], right, "bottom_band", right=True)
    extra = (("BurnedInAnnotation", "YES"),) if k % 3 else ()
    return Case("", "us_doppler", "US1_J2KR", "dicom", [c], DicomSpec("US", US_IMAGE, extra), p, "match")


def gen_echo(g: Gen, k: int) -> Case:
    spec = GreySpec("MONOCHROME2", 8, False, 127.5, 255)
    p = g.identity()
    c = Canvas(src_echo(), spec)
    low = k % 3 == 2
    value = spec.stored_for(150.0) if low else 255.0
    look = g.look(
        c,
        value=value,
        sizes=(12, 13, 14, 16, 18),
        fonts=("sans", "sans_bold", "condensed", "mono"),
        styles=("plain", "plain", "letterspaced", "tight"),
        ink_value="grey150" if low else "max",
    )
    block(c, 10, 8, [negs("Adult Echo", "preset"), institution_parts(p.institution)], look, "corner")
    big = k % 3 == 0
    nlook = (
        Look(look.font, g.rng.choice([30, 32, 36]), value, look.style, look.spacing, None, None, look.ink_value)
        if big
        else look
    )
    block(c, c.w - 12, 6, [name_parts(p, g.form())], nlook, "top_band", right=True)
    block(
        c,
        c.w - 12,
        8 + font_px(nlook.font, nlook.size) + 6,
        [
            [lab("ID"), Part(p.mrn, "id", "mrn"), lab("DOB"), date_part(p.dob, g.dfmt(), "dob")],
            [date_part(p.study, g.dfmt(), "study_date"), *fill("2:09:04 PM")],
        ],
        look,
        "top_band",
        right=True,
    )
    side = g.look(c, value=value, sizes=(12, 13, 14), fonts=(look.font,), styles=("plain",))
    block(
        c,
        12,
        150,
        [
            negs("S5-1", "probe"),
            negs("49Hz", "us_param"),
            negs("16cm", "us_param"),
            negs("2D", "us_param"),
            negs("64%", "us_param"),
            negs("C 50", "us_param"),
            negs("P Low", "us_param"),
        ],
        side,
        "edge",
    )
    caliper(c, g.rng, (450, 300, 750, 560), 255.0)
    if k % 2:  # accession over the sector (light on bright anatomy)
        lk = g.look(c, value=255.0, sizes=(13, 15, 18), fonts=("sans", "sans_bold"), styles=("plain", "shadow"))
        parts = [lab("Acc"), Part(p.accession, "id", "accession")]
        x, y = best_spot(c, c.line_width(parts, lk), 20, (300, 250, 860, 620), "bright", g.rng)
        c.put_line(x, y, parts, lk, "over_anatomy")
    block(c, 100, 74, [[*negs("+ Asc Ao Diam", "measurement"), *negs("3.3 cm", "measurement")]], side, "top_band")

    def ecg(d: ImageDraw.ImageDraw) -> None:
        pts = [(60 + i * 3, 730 - (22 if i % 40 == 8 else 6 if i % 40 in (14, 15) else 0)) for i in range(105)]
        d.line(pts, fill=255, width=1)

    c.graphic(ecg, 200.0, "ecg", "bottom_band")
    block(c, c.w - 20, 730, [negs("65bpm", "us_param")], side, "bottom_band", right=True)
    return Case("", "echo_mono", "JPGLosslessP14SV1", "dicom", [c], DicomSpec("US", US_IMAGE), p, "match")


def gen_ob_multiframe(g: Gen, k: int) -> Case:
    p = g.identity()
    seed = g.rng.randint(0, 10**9)
    frames = []
    for i, arr in enumerate(src_ob_frames(), start=1):
        c = Canvas(arr, None, frame=i)
        r = Gen(seed, 0)  # the same choices on every frame: the header is burned into each one
        r.rng = random.Random(seed)
        c.rect((0, 0, c.w, 60), (24, 56, 98))
        look = r.look(
            c,
            colours={"white": (255, 255, 255)},
            sizes=(13, 14, 16),
            fonts=("sans", "sans_bold", "condensed"),
            styles=("plain",),
        )
        block(c, 10, 6, [negs("KESTREL", "vendor"), negs("OB", "preset")], look, "top_band")
        block(c, 120, 6, [institution_parts(p.institution), name_parts(p, r.form())], look, "top_band")
        block(
            c,
            c.w - 10,
            6,
            [
                [*negs("MI 1.1", "us_param"), date_part(p.study, r.dfmt(), "study_date")],
                [*negs("TIB 0.2", "us_param"), lab("ID"), Part(p.mrn, "id", "mrn")],
            ],
            look,
            "top_band",
            right=True,
        )
        side = r.look(c, colours={"white": (235, 235, 235)}, sizes=(13, 14), fonts=("sans",), styles=("plain",))
        block(
            c,
            6,
            70,
            [negs("Gen OB", "preset"), negs("C5-1", "probe"), negs("28Hz", "us_param"), negs("11cm", "us_param")],
            side,
            "edge",
        )
        lmp = p.study - timedelta(days=r.rng.randint(60, 250))
        block(
            c,
            6,
            420,
            [
                [lab("LMP"), date_part(lmp, r.dfmt(), "lmp_date")],
                negs("GA 24w3d", "us_param"),
                [lab("EDD"), date_part(lmp + timedelta(days=280), r.dfmt(), "edd_date")],
            ],
            side,
            "edge",
        )
        caliper(c, r.rng, (350, 200, 650, 400), (255, 255, 255))
        frames.append(c)
    return Case("", "us_ob_multiframe", "OBXXXX1A_rle_2frame", "dicom", frames, DicomSpec("US", US_MULTI), p, "match")


# -- radiographs -----------------------------------------------------------------------------------------------


def _corner_for(c: Canvas, w: int, h: int, ink_display: float, allowed: tuple[str, ...]) -> tuple[int, int, str]:
    """The allowed corner where an ink of this display brightness stands out most."""
    disp = c.display()
    best = (16, 16, "corner_tl")
    best_score = -1.0
    for x, y, name in (
        (16, 16, "corner_tl"),
        (c.w - w - 16, 16, "corner_tr"),
        (16, c.h - h - 16, "corner_bl"),
        (c.w - w - 16, c.h - h - 16, "corner_br"),
    ):
        if name not in allowed:
            continue
        score = abs(float(disp[y : y + h, x : x + w].mean()) - ink_display)
        if score > best_score:
            best, best_score = (x, y, name), score
    return best


def gen_cr_chest(g: Gen, k: int) -> Case:
    spec = GreySpec("MONOCHROME1", 15, False, 15000, 30000)
    p = g.identity()
    c = Canvas(src_cr_chest(), spec)
    at_max = k % 2 == 0  # burned at the maximum stored value: black on a MONOCHROME1 display
    value = float(spec.max_value) if at_max else float(spec.min_value)
    look = g.look(
        c,
        value=value,
        sizes=(14, 16, 18, 20, 22),
        fonts=("sans", "sans_bold", "mono", "serif", "condensed"),
        styles=("plain", "plain", "letterspaced"),
        ink_value="max" if at_max else "min",
    )
    lines = [
        name_parts(p, g.form()),
        [lab("ID:"), Part(p.mrn, "id", "mrn")],
        [lab("DOB:"), date_part(p.dob, g.dfmt(), "dob"), *fill(p.sex)],
        [date_part(p.study, g.dfmt(), "study_date"), *fill("08:41")],
    ]
    if k == 1:  # one large name, as some CR consoles print it
        look = Look(look.font, 34, value, look.style, look.spacing, None, None, look.ink_value)
    look = fit(c, max(lines, key=lambda ln: c.line_width(ln, look)), look, c.w // 2 + 60)
    widest = max(c.line_width(ln, look) for ln in lines)
    x, y, corner = _corner_for(c, widest, 4 * (look.size + 4), float(spec.display(value)), ("corner_tl", "corner_bl"))
    block(c, x, y, lines, look, "corner")
    small = g.look(c, value=value, sizes=(14, 16), fonts=(look.font,), styles=("plain",), ink_value=look.ink_value)
    block(
        c,
        c.w - 16,
        20,
        [negs("PORTABLE", "position_word"), negs(g.rng.choice(["AP SUPINE", "AP UPRIGHT", "PA"]), "position_word")],
        small,
        "top_band",
        right=True,
    )
    block(c, c.w - 16, c.h - 30, [institution_parts(p.institution)], small, "bottom_band", right=True)
    # Accession partly over the body: starts at the edge and runs over the shoulder.
    block(c, c.w - 330, 150 + 40 * k, [[lab("Acc"), Part(p.accession, "id", "accession")]], small, "partly_anatomy")
    marker = Look("sans_bold", g.rng.choice([40, 48, 56]), spec.stored_for(250.0), ink_value="other")
    c.put_line(c.w - 90, 420, [neg(g.rng.choice("LR"), "lr_marker")], marker, "edge")
    extra = (("BodyPartExamined", "CHEST"), ("ViewPosition", "AP")) + ((("BurnedInAnnotation", "NO"),) if k % 2 else ())
    return Case(
        "",
        "cr_chest_mono1",
        "RG1_UNCI",
        "dicom",
        [c],
        DicomSpec("CR", CR_IMAGE, extra),
        p,
        "match",
        notes={"corner": corner},
    )


def gen_cr_extremity(g: Gen, k: int) -> Case:
    spec = GreySpec("MONOCHROME1", 10, False, 550, 1024)
    p = g.identity()
    c = Canvas(src_cr_extremity(), spec)
    value = float(spec.max_value)  # black on the white collimation border
    look = g.look(
        c,
        value=value,
        sizes=(14, 16, 18, 20),
        fonts=("sans", "sans_bold", "condensed_bold", "mono"),
        styles=("plain", "plain", "tight"),
        ink_value="max",
    )
    # Name and MRN along the left border, reading bottom to top, as many CR plates print them.
    c.put_line(
        40, 820, [*name_parts(p, g.form()), lab("MRN"), Part(p.mrn, "id", "mrn")], look, "edge_vertical", vertical=True
    )
    block(
        c,
        250,
        14,
        [
            [*institution_parts(p.institution)],
            [lab("DOB"), date_part(p.dob, g.dfmt(), "dob"), date_part(p.study, g.dfmt(), "study_date")],
        ],
        look,
        "top_band",
    )
    block(c, 640, 820, [[lab("Acc"), Part(p.accession, "id", "accession")]], look, "bottom_band", right=True)
    marker = Look("sans_bold", 44, spec.stored_for(250.0 if k % 2 else 10.0))
    c.put_line(580, 640, [neg(g.rng.choice("LR"), "lr_marker")], marker, "over_anatomy")
    small = g.look(c, value=value, sizes=(14,), fonts=("sans",), styles=("plain",), ink_value="max")
    block(
        c,
        640,
        60,
        [negs(g.rng.choice(["AP", "LAT"]), "position_word"), negs("TIB/FIB", "position_word")],
        small,
        "edge",
    )
    extra = (("BodyPartExamined", "LEG"),)
    return Case("", "cr_extremity_mono1", "RG3_J2KR", "dicom", [c], DicomSpec("CR", CR_IMAGE, extra), p, "match")


# -- cross-sectional -------------------------------------------------------------------------------------------


def _four_corners(c: Canvas, g: Gen, p: Identity, look: Look, tr_extra: list[list[Part]], bl: list[list[Part]]) -> None:
    inst = p.institution if c.w >= 480 else g.rng.choice(SHORT_INSTITUTIONS)
    tl = [
        institution_parts(inst),
        name_parts(p, g.form()),
        [lab("ID:"), Part(p.mrn, "id", "mrn")],
        [lab("DOB:"), date_part(p.dob, g.dfmt(), "dob"), *fill(f"{p.sex} {g.rng.randint(20, 90)}Y")],
    ]
    tr = [[date_part(p.study, g.dfmt(), "study_date")], [lab("Acc:"), Part(p.accession, "id", "accession")], *tr_extra]
    y_end = block(c, 6, 6, tl, look, "corner")
    widths = max(c.line_width(ln, look) for ln in tl) + max(c.line_width(ln, look) for ln in tr)
    block(c, c.w - 6, 6 if widths + 30 < c.w else y_end + 6, tr, look, "corner", right=True)
    lh = font_px(look.font, look.size) + 3
    block(c, 6, c.h - 6 - lh * len(bl), bl, look, "corner")


def gen_ct(g: Gen, k: int) -> Case:
    spec = GreySpec("MONOCHROME2", 16, True, 40, 100, 1.0, -1024.0)
    p = g.identity()
    c = Canvas(src_ct(), spec)
    value = float(spec.max_value) if k != 1 else spec.stored_for(190.0)
    look = g.look(
        c,
        value=value,
        sizes=(10, 11, 12, 13),
        fonts=("sans", "mono", "bitmap", "condensed"),
        styles=("plain", "plain", "shadow"),
        ink_value="max" if k != 1 else "grey190",
    )
    _four_corners(
        c,
        g,
        p,
        look,
        [negs("Se:2 Im:45", "series_info"), negs("Ax", "orient")],
        [negs("120kV 250mA", "exposure"), negs("5.0mm", "exposure"), negs("W:100 L:40", "wl")],
    )
    scale_bar(c, c.w - 20, c.h - 120, 100, value, vertical=True)
    block(c, c.w - 30, c.h - 18, [negs("5cm", "scale_label")], look, "corner", right=True)
    orient = g.look(c, value=value, sizes=(14,), fonts=("sans",), styles=("plain",), ink_value=look.ink_value)
    for text, x, y in (("A", 250, 4), ("P", 250, 490), ("R", 4, 250), ("L", 496, 250)):
        c.put_line(x, y, [neg(text, "orient")], orient, "edge")
    return Case(
        "",
        "ct_overlay",
        "693_UNCI",
        "dicom",
        [c],
        DicomSpec("CT", CT_IMAGE, (("RescaleIntercept", -1024), ("RescaleSlope", 1))),
        p,
        "match",
    )


def gen_mr(g: Gen, k: int) -> Case:
    which = k % 2
    spec = GreySpec("MONOCHROME2", 12, False, 763, 1639) if which == 0 else GreySpec("MONOCHROME2", 12, False, 450, 790)
    p = g.identity()
    c = Canvas(src_mr(which), spec)
    look = g.look(
        c,
        value=float(spec.max_value),
        sizes=(8, 9, 10, 11),
        fonts=("sans", "bitmap", "condensed", "mono"),
        styles=("plain", "plain", "letterspaced"),
        ink_value="max",
    )
    _four_corners(
        c,
        g,
        p,
        look,
        [negs("T2_TSE_TRA", "sequence"), negs("Se:4 Im:12", "series_info")],
        [negs("TR:4000 TE:95", "mr_param"), negs("ST:5.0 FOV:230", "mr_param"), negs("W:1639 L:763", "wl")],
    )
    orient = g.look(c, value=float(spec.max_value), sizes=(11,), fonts=("sans",), styles=("plain",), ink_value="max")
    for text, x, y in (("H", c.w // 2, 3), ("F", c.w // 2, c.h - 16), ("R", 2, c.h // 2), ("L", c.w - 12, c.h // 2)):
        c.put_line(x, y, [neg(text, "orient")], orient, "edge")
    return Case(
        "",
        "mr_overlay",
        "dcm_qa_ts/1" if which == 0 else "MR-SIEMENS",
        "dicom",
        [c],
        DicomSpec("MR", MR_IMAGE),
        p,
        "match",
    )


def gen_nm(g: Gen, k: int) -> Case:
    spec = GreySpec("MONOCHROME2", 16, True, 90, 180)
    p = g.identity()
    c = Canvas(src_nm(), spec)
    look = g.look(
        c,
        value=float(spec.max_value),
        sizes=(9, 10, 11),
        fonts=("sans", "bitmap", "condensed"),
        styles=("plain",),
        ink_value="max",
    )
    block(
        c, 6, 6, [negs("ANT", "orient"), negs("Tc-99m MDP", "nm_param"), negs("740 MBq 3h", "nm_param")], look, "corner"
    )
    block(
        c,
        6,
        c.h - 70,
        [
            name_parts(p, g.form()),
            [lab("ID"), Part(p.mrn, "id", "mrn")],
            [lab("DOB"), date_part(p.dob, g.dfmt(), "dob")],
            [date_part(p.study, g.dfmt(), "study_date")],
        ],
        look,
        "bottom_band",
    )
    if k % 2:
        c.put_line(
            c.w - font_px(look.font, look.size) - 6,
            c.h - 90,
            institution_parts(g.rng.choice(SHORT_INSTITUTIONS)),
            look,
            "edge_vertical",
            vertical=True,
        )
    else:
        block(c, 6, c.h - 92, [institution_parts(g.rng.choice(SHORT_INSTITUTIONS))], look, "bottom_band")
    return Case(
        "",
        "nm_whole_body",
        "JPEG-LL",
        "dicom",
        [c],
        DicomSpec("NM", SC_IMAGE, (("ConversionType", "WSD"),)),
        p,
        "match",
    )


# -- screens and screenshots -----------------------------------------------------------------------------------

THEMES = {
    "dark": {
        "bg": (22, 24, 28),
        "panel": (38, 42, 50),
        "title": (52, 60, 78),
        "text": (222, 222, 222),
        "muted": (150, 150, 160),
        "sel": (40, 90, 160),
        "title_text": (235, 235, 235),
    },
    "light": {
        "bg": (236, 236, 236),
        "panel": (250, 250, 250),
        "title": (0, 84, 150),
        "text": (28, 28, 32),
        "muted": (95, 95, 105),
        "sel": (196, 218, 246),
        "title_text": (255, 255, 255),
    },
}


def draw_viewer(c: Canvas, g: Gen, p: Identity, others: list[Identity], theme: str, banner: bool) -> str:
    """A PACS viewer window: title bar, worklist, toolbar, viewport with corner overlays, status bar."""
    t = THEMES[theme]
    c.rect((0, 0, c.w, c.h), t["bg"])
    c.rect((0, 0, c.w, 26), t["title"])
    ui = Look("sans", 12, c.ink(t["title_text"]))
    c.put_line(
        8, 6, [*fill("VistaView PACS —"), *name_parts(p, "Last, First"), Part(p.mrn, "id", "mrn")], ui, "ui_title"
    )
    c.rect((0, 26, c.w, 54), t["panel"])
    tool = Look("sans", 11, c.ink(t["muted"]))
    x = 250
    for word in ("Zoom", "Pan", "W/L", "Measure", "Annotate", "Cine"):
        c.rect((x - 4, 30, x + 52, 50), t["bg"])
        c.put_line(x, 34, [neg(word, "ui")], tool, "ui_toolbar")
        x += 62
    panel_w = 236
    c.rect((0, 54, panel_w, c.h - 22), t["panel"])
    c.put_line(8, 60, fill("Worklist (today)"), Look("sans_bold", 13, c.ink(t["text"])), "ui_panel")
    y = 84
    size = g.rng.choice([10, 11, 12])
    for i, q in enumerate([p, *others]):
        if i == 0:
            c.rect((2, y - 3, panel_w - 2, y + 2 * (size + 5) + 1), t["sel"])
        text_colour = t["title_text"] if (i == 0 and theme == "dark") else t["text"]
        row = Look(g.rng.choice(["sans", "condensed"]), size, c.ink(text_colour))
        block(
            c,
            8,
            y,
            [
                name_parts(q, g.rng.choice(["Last, First", "LAST^FIRST", "LAST, FIRST"])),
                [
                    Part(q.mrn, "id", "mrn"),
                    date_part(q.study, g.dfmt(), "study_date"),
                    neg(g.rng.choice(["CT", "MR", "CR", "US"]), "modality"),
                ],
            ],
            row,
            "ui_panel",
        )
        y += 2 * (size + 5) + 10
    vx0, vy0, vx1, vy1 = panel_w + 8, 60 + (52 if banner else 0), c.w - 8, c.h - 28
    if banner:  # a large patient banner above the viewport
        c.rect((panel_w + 8, 58, c.w - 8, 108), t["title"])
        big = Look("sans_bold", g.rng.choice([30, 32, 34]), c.ink(t["title_text"]))
        c.put_line(panel_w + 18, 64, name_parts(p, g.rng.choice(["LAST, FIRST", "FIRST LAST"])), big, "ui_banner")
    c.rect((vx0, vy0, vx1, vy1), (0, 0, 0))
    img, name = src_vqa(g.rng, min(vx1 - vx0, vy1 - vy0) - 40)
    ih, iw = img.shape[:2]
    c.paste(vx0 + (vx1 - vx0 - iw) // 2, vy0 + (vy1 - vy0 - ih) // 2, img)
    over = Look(
        g.rng.choice(["sans", "mono", "condensed"]),
        g.rng.choice([11, 12, 13]),
        c.ink(g.rng.choice([(255, 232, 40), (255, 255, 255), (90, 255, 90)])),
        "shadow" if g.rng.random() < 0.5 else "plain",
        shadow=c.ink((0, 0, 0)),
    )
    if over.style == "plain":
        over = Look(over.font, over.size, over.fill)
    block(
        c,
        vx0 + 6,
        vy0 + 6,
        [
            name_parts(p, g.form()),
            [lab("ID:"), Part(p.mrn, "id", "mrn")],
            [lab("DOB:"), date_part(p.dob, g.dfmt(), "dob")],
        ],
        over,
        "ui_viewport",
    )
    block(
        c,
        vx1 - 6,
        vy0 + 6,
        [institution_parts(p.institution), [date_part(p.study, g.dfmt(), "study_date")]],
        over,
        "ui_viewport",
        right=True,
    )
    lh = over.size + 3
    block(c, vx0 + 6, vy1 - 6 - 2 * lh, [negs("W:400 L:40", "wl"), negs("Zoom 1.5x", "ui")], over, "ui_viewport")
    block(c, vx1 - 6, vy1 - 6 - lh, [negs("Im: 12/40", "series_info")], over, "ui_viewport", right=True)
    c.rect((0, c.h - 22, c.w, c.h), t["title"] if theme == "light" else t["panel"])
    c.put_line(8, c.h - 18, fill("Ready · 3 studies loaded"), Look("sans", 11, c.ink(t["title_text"])), "ui_status")
    return name


def gen_sc_screen(g: Gen, k: int) -> Case:
    p = g.identity()
    shown = p if k % 2 == 0 else g.identity()  # odd cases: another system's patient on screen
    h, w = g.rng.choice([(700, 1024), (640, 960), (768, 1024)])
    c = Canvas(np.zeros((h, w, 3), dtype=np.float32), None)
    src = draw_viewer(c, g, shown, [g.identity() for _ in range(2)], "dark" if k < 3 else "light", banner=k == 1)
    c.jpeg_roundtrip(g.rng.choice([75, 82, 88]))
    return Case(
        "",
        "sc_screen_dicom",
        f"vqa:{src}",
        "dicom",
        [c],
        DicomSpec("OT", SC_IMAGE, (("ConversionType", "WSD"), ("BurnedInAnnotation", "YES"))),
        p,
        "match" if k % 2 == 0 else "mismatch",
    )


def gen_screenshot(g: Gen, k: int) -> Case:
    p = g.identity()
    h, w = g.rng.choice([(700, 1024), (640, 960)])
    c = Canvas(np.zeros((h, w, 3), dtype=np.float32), None)
    src = draw_viewer(
        c, g, p, [g.identity() for _ in range(g.rng.choice([1, 2]))], "light" if k % 2 else "dark", banner=k in (0, 3)
    )
    fmt = "png" if k == 2 else "jpeg"
    return Case(
        "", "screenshot_upload", f"vqa:{src}", fmt, [c], None, None, "none", jpeg_quality=g.rng.choice([70, 80, 90])
    )


# -- paper -----------------------------------------------------------------------------------------------------


def gen_scan_form(g: Gen, k: int) -> Case:
    """A requisition / technologist worksheet, scanned (skewed, noisy) or photographed (uneven light)."""
    p = g.identity()
    h, w = 1100, 850
    paper = g.rng.uniform(214, 236)
    c = Canvas(np.full((h, w, 3), paper, dtype=np.float32), None)
    ink_v = g.rng.uniform(20, 70)
    ink = (ink_v,) * 3
    body_font = g.rng.choice(["sans", "serif", "mono", "condensed"])
    bs = g.rng.choice([12, 13, 14, 15])
    body = Look(body_font, bs, c.ink(ink))
    value_look = Look(g.rng.choice(["mono", "sans", "serif"]), bs + g.rng.choice([0, 1, 2]), c.ink(ink))
    head = Look("sans_bold", g.rng.choice([24, 28, 32]), c.ink(ink))
    c.put_line(
        40, 30, institution_parts(p.institution), fit(c, institution_parts(p.institution), head, w - 80), "form_header"
    )
    c.put_line(
        40, 78, fill("Department of Radiology — Imaging Requisition"), Look("sans_bold", 17, c.ink(ink)), "form_header"
    )
    c.chrome(lambda d: d.rectangle((34, 112, w - 34, 318), outline=255, width=2), ink)
    rows: list[list[Part]] = [
        [lab("Patient:"), *name_parts(p, g.form())],
        [lab("DOB:"), date_part(p.dob, g.dfmt(), "dob"), lab("Sex:"), *fill(p.sex)],
        [lab("MRN:"), Part(p.mrn, "id", "mrn"), lab("Acc #:"), Part(p.accession, "id", "accession")],
        [lab("Exam date:"), date_part(p.study, g.dfmt(), "study_date"), *fill("Priority: routine")],
        [lab("Referring:"), lab("Dr."), Part(p.phys_first, "id", "physician"), Part(p.phys_last, "id", "physician")],
        [lab("Phone:"), *[Part(t, "id", "phone") for t in p.phone.split()]],
    ]
    y = 124
    for row in rows:
        c.put_line(48, y, row, value_look, "form_box")
        y += int(value_look.size * 1.55) + 5

    def barcode(d: ImageDraw.ImageDraw) -> None:
        x = 560
        for i in range(60):
            wd = 1 + (i * 7 + len(p.mrn)) % 3
            if i % 2 == 0:
                d.rectangle((x, 130, x + wd - 1, 190), fill=255)
            x += wd

    c.chrome(barcode, ink)
    c.put_line(560, 196, [Part(p.mrn, "id", "mrn")], Look("mono", 12, c.ink(ink)), "form_box")
    y = 340
    c.put_line(
        40,
        y,
        fill("Exam requested: CT ABDOMEN AND PELVIS WITH CONTRAST"),
        Look("sans_bold", bs, c.ink(ink)),
        "form_body",
    )
    y += int(bs * 2.2)
    c.put_line(40, y, fill("Clinical indication:"), body, "form_body")
    y += int(bs * 1.6)
    for line in g.rng.sample(CLINICAL_LINES, 4):
        c.put_line(56, y, fill(line), body, "form_body")
        y += int(bs * 1.6)
    y += 10
    for line in (
        "Creatinine 0.9 mg/dL   eGFR >60   Allergies: NKDA",
        "Contrast: iohexol 350, 100 mL IV  Oral: yes",
        "Pregnancy: N/A   Weight 72 kg   Tech initials: ____",
    ):
        c.put_line(40, y, fill(line), body, "form_body")
        y += int(bs * 1.7)
    y += 20
    c.chrome(lambda d: d.line((40, y + 30, 420, y + 30), fill=255, width=1), ink)
    c.put_line(
        40,
        y + 36,
        [lab("Ordering"), lab("physician:"), lab("Dr."), Part(p.phys_last, "id", "physician")],
        body,
        "form_body",
    )
    c.put_line(470, y + 36, [lab("Date:"), date_part(p.study, g.dfmt(), "study_date")], body, "form_body")
    c.put_line(40, h - 40, fill("Form RAD-114 rev 3 · Page 1 of 1"), Look("sans", 10, c.ink(ink)), "form_footer")
    photo = k in (2, 4)
    c.rotate(g.rng.choice([-1, 1]) * g.rng.uniform(1.0, 3.0), paper)
    noise = g.np.normal(0, 3.5 if not photo else 5.0, (h, w)).astype(np.float32)
    gain = None
    if photo:  # a phone photo: light falls off from one corner, a little blur
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        gain = 1.0 - 0.28 * ((xx / w) * g.rng.uniform(0.5, 1) + (yy / h) * g.rng.uniform(0.5, 1)) / 2
    c.finish(noise=noise, gain=gain, blur=0.7 if photo else 0.35)
    fmt = {0: "png", 1: "jpeg", 2: "jpeg", 3: "dicom", 4: "png", 5: "jpeg"}[k % 6]
    spec = DicomSpec("OT", SC_IMAGE, (("ConversionType", "SD"), ("BurnedInAnnotation", "YES")))
    case = Case(
        "",
        "photo_form" if photo else "scanned_form",
        "generated",
        fmt,
        [c],
        spec if fmt == "dicom" else None,
        p if fmt == "dicom" else None,
        "match" if fmt == "dicom" else "none",
        jpeg_quality=g.rng.choice([72, 80, 88]),
        as_grey=True,
    )
    if fmt == "dicom":
        c.grey = GreySpec("MONOCHROME2", 8, False, 127.5, 255)
        c.pix, c.clean = c.pix[..., 0].copy(), c.clean[..., 0].copy()
    return case


# -- pictures --------------------------------------------------------------------------------------------------


def gen_vqa(g: Gen, k: int) -> Case:
    p = g.identity()
    img, name = src_vqa(g.rng, g.rng.choice([560, 640, 720]))
    c = Canvas(img, None)
    colours = {n: v for n, v in OVERLAY_COLOURS.items() if n != "white"} if k % 2 else OVERLAY_COLOURS
    look = g.look(
        c,
        colours=colours,
        sizes=(10, 11, 12, 14, 16, 18),
        fonts=tuple(FONT_FILES) + ("bitmap",),
        styles=("plain", "shadow", "outline", "letterspaced", "tight"),
    )
    lines = [
        name_parts(p, g.form()),
        [lab("MRN"), Part(p.mrn, "id", "mrn")],
        [lab("DOB"), date_part(p.dob, g.dfmt(), "dob")],
        [date_part(p.study, g.dfmt(), "study_date")],
    ]
    if k % 3 == 0:
        lines.append(institution_parts(p.institution))
    lh = font_px(look.font, look.size) + 3 + (2 if look.style == "letterspaced" else 0)
    widest = min(c.w - 20, max(c.line_width(ln, fit(c, ln, look, c.w - 20)) for ln in lines))
    corner = g.rng.choice(["tl", "tr", "bl", "br"])
    x = 10 if corner in ("tl", "bl") else c.w - widest - 10
    y = 10 if corner in ("tl", "tr") else c.h - lh * len(lines) - 10
    if k % 4 == 1:  # a translucent patient box behind the text
        c.rect((x - 4, y - 4, x + widest + 4, y + lh * len(lines) + 2), (0, 0, 0), alpha=0.55)
    block(c, x, y, lines, look, "corner")
    top_box = corner in ("tl", "tr")
    white = c.ink((255, 255, 255))
    if k % 3 == 2:  # a big name across the band the patient box is not in
        big = g.look(
            c,
            colours={"white": (255, 255, 255), "yellow": (255, 232, 40)},
            sizes=(30, 34, 38),
            fonts=("sans_bold", "serif_bold", "condensed_bold"),
            styles=("plain", "outline"),
        )
        nm = name_parts(p, g.rng.choice(["FIRST LAST", "LAST, FIRST"]))
        big = fit(c, nm, big, c.w - 20)
        by = c.h - font_px(big.font, big.size) - 30 if top_box else 12
        c.put_line(10, by, nm, big, "bottom_band" if top_box else "top_band")
    else:  # non-identifying annotation in the diagonally opposite corner
        neg_look = Look("sans", 13, white, "plain")
        nx = c.w - 130 if corner in ("tl", "bl") else 14
        block(
            c,
            nx,
            c.h - 44 if top_box else 12,
            [negs("PORTABLE AP", "position_word"), negs("W 400 L 40", "wl")],
            neg_look,
            "edge",
        )
    marker = Look("sans_bold", g.rng.choice([24, 32, 40]), white)
    c.put_line(
        c.w - 50 if corner in ("tl", "bl") else 14,
        c.h // 2 - 20,
        [neg(g.rng.choice("LR"), "lr_marker")],
        marker,
        "edge",
    )
    for sy in (c.h - 14, 22):
        if c.free((c.w // 2 - 56, sy - 12, c.w // 2 + 56, sy + 4)):
            scale_bar(c, c.w // 2 - 50, sy, 100, white)
            break
    # One line over the anatomy: light text on the brightest free spot, or dark text on it.
    dark = k % 2 == 1
    over = g.look(
        c,
        value=c.ink((30, 30, 30) if dark else (255, 255, 255)),
        sizes=(12, 14, 16, 20),
        fonts=("sans", "sans_bold", "serif", "condensed"),
        styles=("plain", "plain", "letterspaced"),
    )
    parts = [lab("Acc"), Part(p.accession, "id", "accession")] if k % 3 else name_parts(p, g.form())
    ox, oy = best_spot(c, c.line_width(parts, over), over.size + 4, (20, 40, c.w - 20, c.h - 40), "bright", g.rng)
    c.put_line(ox, oy, parts, over, "over_anatomy")
    arrow(c, *best_spot(c, 34, 34, (40, 40, c.w - 80, c.h - 80), "busy", g.rng), white)
    fmt = "png" if k % 2 == 0 else "jpeg"
    return Case("", "vqa_overlay", f"vqa:{name}", fmt, [c], None, None, "none", jpeg_quality=g.rng.choice([85, 92]))


def gen_negatives_only(g: Gen, k: int) -> Case:
    """Annotation without any identifier: nothing should be blacked."""
    p = g.identity()
    white = (255, 255, 255)
    if k % 4 == 0:
        spec = GreySpec("MONOCHROME1", 15, False, 15000, 30000)
        c = Canvas(src_cr_chest(), spec)
        c.put_line(c.w - 90, 240, [neg("R", "lr_marker")], Look("sans_bold", 48, spec.stored_for(250.0)), "edge")
        lk = Look("sans", 18, spec.stored_for(250.0))
        block(c, c.w - 260, 30, [negs("PORTABLE", "position_word"), negs("AP SUPINE", "position_word")], lk, "corner")
        scale_bar(c, 30, c.h - 40, 200, spec.stored_for(250.0))
        return Case("", "negatives_only", "RG1_UNCI", "dicom", [c], DicomSpec("CR", CR_IMAGE), p, "match")
    if k % 4 == 1:
        c = Canvas(src_us_doppler(), None)
        lk = Look("sans", 13, white)
        block(
            c,
            10,
            10,
            [negs("L12-5 MSK", "probe"), negs("Gain 52% DR 60", "us_param"), negs("Depth 4.0cm", "us_param")],
            lk,
            "corner",
        )
        caliper(c, g.rng, (120, 150, 450, 300), (255, 232, 40))
        block(c, 20, 380, [negs("D1 0.82 cm D2 1.40 cm", "measurement")], lk, "bottom_band")
        scale_bar(c, 80, 455, 170, white)
        return Case("", "negatives_only", "US1_J2KR", "dicom", [c], DicomSpec("US", US_IMAGE), p, "match")
    if k % 4 == 2:
        spec = GreySpec("MONOCHROME2", 16, True, 40, 100, 1.0, -1024.0)
        c = Canvas(src_ct(), spec)
        lk = Look("sans", 12, float(spec.max_value), ink_value="max")
        block(c, 6, c.h - 50, [negs("W:100 L:40", "wl"), negs("120kV 5.0mm", "exposure")], lk, "corner")
        block(c, c.w - 6, 6, [negs("Se:2 Im:45", "series_info")], lk, "corner", right=True)
        for text, x, y in (("A", 250, 4), ("R", 4, 250)):
            c.put_line(x, y, [neg(text, "orient")], Look("sans", 14, float(spec.max_value)), "edge")
        return Case(
            "",
            "negatives_only",
            "693_UNCI",
            "dicom",
            [c],
            DicomSpec("CT", CT_IMAGE, (("RescaleIntercept", -1024), ("RescaleSlope", 1))),
            p,
            "match",
        )
    img, name = src_vqa(g.rng, 640)
    c = Canvas(img, None)
    c.put_line(c.w - 60, 30, [neg("L", "lr_marker")], Look("sans_bold", 36, c.ink(white)), "edge")
    block(
        c,
        12,
        12,
        [negs("PORTABLE", "position_word"), negs("UPRIGHT", "position_word")],
        Look("sans", 14, c.ink((255, 232, 40))),
        "corner",
    )
    arrow(c, *best_spot(c, 34, 34, (40, 40, c.w - 80, c.h - 80), "busy", g.rng), c.ink(white))
    scale_bar(c, 20, c.h - 16, 100, c.ink(white))
    return Case("", "negatives_only", f"vqa:{name}", "png", [c], None, None, "none")


PLAN: tuple[tuple[str, int, Callable[[Gen, int], Case]], ...] = (
    ("us_doppler", 5, gen_us_doppler),
    ("echo_mono", 5, gen_echo),
    ("us_ob_multiframe", 2, gen_ob_multiframe),
    ("cr_chest_mono1", 4, gen_cr_chest),
    ("cr_extremity_mono1", 3, gen_cr_extremity),
    ("ct_overlay", 3, gen_ct),
    ("mr_overlay", 3, gen_mr),
    ("nm_whole_body", 2, gen_nm),
    ("sc_screen_dicom", 4, gen_sc_screen),
    ("screenshot_upload", 5, gen_screenshot),
    ("form", 6, gen_scan_form),
    ("vqa_overlay", 7, gen_vqa),
    ("negatives_only", 4, gen_negatives_only),
)


def case_order() -> list[tuple[str, int, Callable[[Gen, int], Case]]]:
    """Round-robin over layouts, so that the first N cases cover as many layouts as N allows."""
    out = []
    for k in range(max(n for _, n, _ in PLAN)):
        out += [(layout, k, fn) for layout, n, fn in PLAN if k < n]
    return out


def make_case(seed: int, index: int, k: int, fn: Callable[[Gen, int], Case]) -> Case:
    case = fn(Gen(seed, index), k)
    case.name = f"{index:02d}_{case.layout}_{k}"
    return case


# --------------------------------------------------------------------------------------------------------------
# Files


def _uid(seed: int, *parts: str) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["heldout-burned-in-d", str(seed), *parts]))


def stored_frames(case: Case, planted: bool) -> list[np.ndarray]:
    out = []
    for c in case.frames:
        a = c.pix if planted else c.clean
        if c.grey is None:
            out.append(np.clip(np.rint(a), 0, 255).astype(np.uint8))
        else:
            g = c.grey
            dtype = np.uint8 if g.bits_stored <= 8 else (np.int16 if g.signed else np.uint16)
            out.append(np.clip(np.rint(a), g.min_value, g.max_value).astype(dtype))
    return out


def write_dicom(path: Path, case: Case, planted: bool, seed: int) -> None:
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.tag import Tag
    from pydicom.uid import ExplicitVRLittleEndian

    spec, hdr = case.dicom, case.header
    assert spec is not None and hdr is not None  # noqa: S101 - internal invariant of the generator
    frames = stored_frames(case, planted)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = spec.sop_class
    meta.MediaStorageSOPInstanceUID = _uid(seed, case.name, "planted" if planted else "clean")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = spec.sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(seed, case.name, "study")
    ds.SeriesInstanceUID = _uid(seed, case.name, "series")
    ds.Modality = spec.modality
    ds.PatientName = f"{hdr.last}^{hdr.first}^{hdr.middle}"
    ds.PatientID = hdr.mrn
    ds.PatientBirthDate = hdr.dob.strftime("%Y%m%d")
    ds.PatientSex = hdr.sex
    ds.AccessionNumber = hdr.accession
    ds.InstitutionName = hdr.institution
    ds.ReferringPhysicianName = f"{hdr.phys_last}^{hdr.phys_first}"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = hdr.study.strftime("%Y%m%d")
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    for key, value in spec.extra:
        setattr(ds, key, value)
    first = frames[0]
    ds.Rows, ds.Columns = int(first.shape[0]), int(first.shape[1])
    grey = case.frames[0].grey
    if grey is None:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = grey.photometric
        ds.BitsAllocated = 8 if grey.bits_stored <= 8 else 16
        ds.BitsStored = grey.bits_stored
        ds.HighBit = grey.bits_stored - 1
        ds.PixelRepresentation = 1 if grey.signed else 0
        ds.WindowCenter = f"{grey.center:g}"
        ds.WindowWidth = f"{grey.width:g}"
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime = 33.3
        ds.FrameIncrementPointer = Tag(0x0018, 0x1063)
    ds.PixelData = np.stack(frames).astype(frames[0].dtype.newbyteorder("<")).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_case(case: Case, folder: Path, seed: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for planted in (True, False):
        stem = "planted" if planted else "clean"
        if case.fmt == "dicom":
            path = folder / f"{stem}.dcm"
            write_dicom(path, case, planted, seed)
        else:
            arr = stored_frames(case, planted)[0]
            im = Image.fromarray(arr[..., 0] if case.as_grey and arr.ndim == 3 else arr)
            path = folder / f"{stem}.{'png' if case.fmt == 'png' else 'jpg'}"
            if case.fmt == "png":
                im.save(path)
            else:
                im.save(path, quality=case.jpeg_quality)
        paths[stem] = path
    return paths


# --------------------------------------------------------------------------------------------------------------
# Running ingest


@dataclass
class Run:
    ok: bool
    error: str | None
    summary: dict[str, Any] | None
    wall_s: float
    frames: list[np.ndarray]
    rc: int
    note: str = ""


def ingest(path: Path, mode: str, run_dir: Path) -> Run:
    """One ``radassist ingest`` process on one file, with its own data folder."""
    out, data = run_dir / "out", run_dir / "data"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["RADASSIST_DATA_DIR"] = str(data)
    env["RADASSIST_BURNED_IN_TEXT"] = mode
    cmd = [str(RADASSIST), "ingest", str(path), "--json", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - t0
    (run_dir / "stdout.jsonl").write_text(proc.stdout, encoding="utf-8")
    (run_dir / "stderr.txt").write_text(proc.stderr, encoding="utf-8")
    record: dict[str, Any] | None = None
    for line in proc.stdout.splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "ok" in obj:
            record = obj
            break
    if record is None:
        return Run(False, f"no JSON line (rc {proc.returncode})", None, wall, [], proc.returncode, proc.stderr[-400:])
    summary = record.get("summary")
    folders = sorted({f.parent for f in out.glob("study*/series*/frame*.png")})
    if summary and len(folders) > 1:
        folders = [f for f in folders if f.name.endswith(str(summary.get("series_uid", ""))[-8:])] or folders
    frames = []
    if folders:
        for f in sorted(folders[0].glob("frame*.png")):
            frames.append(np.asarray(Image.open(f).convert("RGB"), dtype=np.int16))
    return Run(bool(record.get("ok")), record.get("error"), summary, wall, frames, proc.returncode)


# --------------------------------------------------------------------------------------------------------------
# Scoring


def _fill_level(never_p: Run, always_p: Run) -> int | None:
    """The display value the redaction painted, if one dark value dominates the changed pixels."""
    if not always_p.ok or len(always_p.frames) != len(never_p.frames):
        return None
    values = [a.max(axis=2)[(a != p).any(axis=2)] for p, a in zip(never_p.frames, always_p.frames, strict=True)]
    changed = np.concatenate(values) if values else np.zeros(0, dtype=np.int16)
    if changed.size == 0:
        return None
    counts = np.bincount(np.clip(changed, 0, 255).astype(np.int64), minlength=256)
    mode = int(counts.argmax())
    return mode if mode <= FILL_MAX and counts[mode] >= 0.5 * changed.size else None


def _blacked(always: np.ndarray, never: np.ndarray, fill_level: int | None) -> np.ndarray:
    """(H, W) pixels of the always rendering that are black, or changed to the fill level."""
    lum = always.max(axis=2)
    out = lum <= BLACK
    if fill_level is not None:
        out |= (np.abs(lum - fill_level) <= 2) & (always != never).any(axis=2)
    return out


def _bit(summary: dict[str, Any] | None) -> dict[str, Any]:
    return dict((summary or {}).get("burned_in_text") or {})


def score_case(case: Case, never_p: Run, never_c: Run, always_p: Run) -> dict[str, Any]:
    """Token outcomes and false redaction for one case."""
    rec: dict[str, Any] = {
        "case": case.name,
        "layout": case.layout,
        "source": case.source,
        "fmt": case.fmt,
        "header_match": case.header_match,
        "frames": len(case.frames),
        "time_always_s": round(always_p.wall_s, 3),
        "time_never_s": round(never_p.wall_s, 3),
        "always_ok": always_p.ok,
        "always_error": always_p.error,
        "burned_in_text": _bit(always_p.summary),
        "notes": case.notes,
    }
    shapes = [(c.h, c.w) for c in case.frames]
    harness = None
    if not (never_p.ok and never_c.ok):
        harness = f"never run failed: {never_p.error or never_c.error}"
    elif [f.shape[:2] for f in never_p.frames] != shapes or [f.shape[:2] for f in never_c.frames] != shapes:
        harness = f"rendering geometry {[f.shape for f in never_p.frames]} != {shapes}"
    elif always_p.ok and len(always_p.frames) != len(shapes):
        harness = f"always run wrote {len(always_p.frames)} frames, expected {len(shapes)}"
    rec["harness_error"] = harness
    fill_level = _fill_level(never_p, always_p) if harness is None else None
    rec["fill_level"] = fill_level
    withheld = always_p.ok and int(_bit(always_p.summary).get("withheld_frames") or 0) > 0
    failed = not always_p.ok
    rec["withheld"], rec["failed"] = withheld, failed
    tokens = []
    if harness is None:
        for word in (w for c in case.frames for w in c.words):
            if word.role not in ("id", "neg"):
                continue
            tokens.append(_score_word(case, word, never_p, never_c, always_p, withheld, failed, fill_level))
    rec["tokens"] = tokens
    fr_num = fr_den = 0
    if harness is None and always_p.ok and always_p.frames and not withheld:
        for c, p, a in zip(case.frames, never_p.frames, always_p.frames, strict=True):
            excl = np.zeros((c.h, c.w), dtype=bool)
            for x0, y0, x1, y1 in c.lines:
                excl[y0:y1, x0:x1] = True
            visible = (~excl) & (p.max(axis=2) > BLACK)
            fr_den += int(visible.sum())
            fr_num += int((visible & _blacked(a, p, fill_level)).sum())
    rec["false_redaction"] = (fr_num / fr_den) if fr_den else None
    return rec


def _score_word(
    case: Case,
    word: Word,
    never_p: Run,
    never_c: Run,
    always_p: Run,
    withheld: bool,
    failed: bool,
    fill_level: int | None,
) -> dict[str, Any]:
    fi = word.frame - 1
    mh, mw = word.mask.shape
    y0, x0 = word.y0, word.x0
    p = never_p.frames[fi][y0 : y0 + mh, x0 : x0 + mw]
    cl = never_c.frames[fi][y0 : y0 + mh, x0 : x0 + mw]
    diff = np.abs(p - cl).max(axis=2)
    vis = word.mask & (diff > VISIBLE)  # the glyph pixels (coverage >= 50%) that the clean twin lacks
    lum = p.max(axis=2)
    out: dict[str, Any] = {
        "case": case.name,
        "layout": case.layout,
        "source": case.source,
        "fmt": case.fmt,
        "header_match": case.header_match,
        "frame": word.frame,
        "role": word.role,
        "kind": word.kind,
        "text": word.text,
        **word.labels,
    }
    if word.kind.startswith("name"):
        t = word.text
        out["name_trait"] = (
            "caret"
            if "^" in t
            else "hyphen"
            if "-" in t
            else "apostrophe"
            if "'" in t
            else "accent"
            if any(ord(ch) > 127 for ch in t)
            else "initial"
            if len(t) <= 2
            else "plain"
        )
    n_ink = int(word.mask.sum())
    if int(vis.sum()) < max(4, int(0.15 * n_ink)):
        out.update(status="invisible", frac_black=None)
        return out
    dark = float(np.median(lum[vis])) < DARK_INK
    if dark:  # dark glyphs: the word stays readable unless its box goes black (box shrunk by 1 px for fairness)
        ys, xs = np.nonzero(word.mask)
        y0b, y1b, x0b, x1b = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        if y1b - y0b > 4 and x1b - x0b > 4:
            y0b, y1b, x0b, x1b = y0b + 1, y1b - 1, x0b + 1, x1b - 1
        sel = np.zeros_like(word.mask)
        sel[y0b:y1b, x0b:x1b] = True
    else:
        sel = vis
    sel = sel & (lum > BLACK)
    if not sel.any():
        out.update(status="invisible", frac_black=None)
        return out
    frac = None
    if always_p.ok and always_p.frames:
        a = always_p.frames[fi][y0 : y0 + mh, x0 : x0 + mw]
        frac = float(_blacked(a, p, fill_level)[sel].mean())
    out["frac_black"] = frac
    out["judged_by"] = "box" if dark else "ink"
    if word.role == "id":
        out["status"] = "removed" if (failed or withheld or (frac is not None and frac >= REMOVED)) else "missed"
    else:
        out["status"] = "kept" if (not failed and not withheld and frac is not None and frac < KEPT) else "lost"
    return out


def run_case(case: Case, paths: dict[str, Path], run_root: Path) -> dict[str, Any]:
    never_p = ingest(paths["planted"], "never", run_root / "planted_never")
    never_c = ingest(paths["clean"], "never", run_root / "clean_never")
    always_p = ingest(paths["planted"], "always", run_root / "planted_always")
    return score_case(case, never_p, never_c, always_p)


# --------------------------------------------------------------------------------------------------------------
# Report


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    ph = k / n
    den = 1 + z * z / n
    mid = (ph + z * z / (2 * n)) / den
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


DIMS = (
    "layout",
    "source_kind",
    "fmt",
    "header_match",
    "size",
    "contrast",
    "position",
    "style",
    "font",
    "ink_value",
    "kind",
    "name_form",
    "name_trait",
    "date_fmt",
)


def summarise(images: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = [t for im in images for t in im["tokens"]]
    for t in tokens:
        t["source_kind"] = "vqa_rad" if t["source"].startswith("vqa:") else t["source"]
    ids = [t for t in tokens if t["role"] == "id" and t["status"] != "invisible"]
    removed = sum(t["status"] == "removed" for t in ids)
    pixel_ids = [t for t in ids if not _img(images, t["case"])["withheld"] and not _img(images, t["case"])["failed"]]
    pixel_removed = sum(t["status"] == "removed" for t in pixel_ids)
    ngs = [t for t in tokens if t["role"] == "neg" and t["status"] != "invisible"]
    kept = sum(t["status"] == "kept" for t in ngs)
    frs = [im["false_redaction"] for im in images if im["false_redaction"] is not None]
    t_always = [im["time_always_s"] for im in images if not im["harness_error"]]
    t_never = [im["time_never_s"] for im in images if not im["harness_error"]]
    deltas = [im["time_always_s"] - im["time_never_s"] for im in images if not im["harness_error"]]
    breakdown: dict[str, dict[str, list[int]]] = {}
    for dim in DIMS:
        table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for t in ids:
            if dim in t:
                table[str(t[dim])][0] += t["status"] == "removed"
                table[str(t[dim])][1] += 1
        breakdown[dim] = dict(sorted(table.items()))
    neg_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in ngs:
        neg_kind[t["kind"]][0] += t["status"] == "kept"
        neg_kind[t["kind"]][1] += 1
    return {
        "images": len(images),
        "harness_errors": sum(bool(im["harness_error"]) for im in images),
        "withheld_images": sum(im["withheld"] for im in images),
        "failed_images": sum(im["failed"] for im in images),
        "id_tokens": len(ids),
        "id_removed": removed,
        "recall": removed / len(ids) if ids else None,
        "recall_ci95": wilson(removed, len(ids)),
        "recall_pixels_only": pixel_removed / len(pixel_ids) if pixel_ids else None,
        "pixel_only_tokens": len(pixel_ids),
        "invisible_tokens": sum(t["status"] == "invisible" for t in tokens),
        "negatives": len(ngs),
        "negatives_kept": kept,
        "negatives_kept_rate": kept / len(ngs) if ngs else None,
        "false_redaction_median": statistics.median(frs) if frs else None,
        "false_redaction_p90": pct(frs, 0.9) if frs else None,
        "false_redaction_max": max(frs) if frs else None,
        "false_redaction_images": len(frs),
        "time_always_median_s": statistics.median(t_always) if t_always else None,
        "time_always_mean_s": statistics.mean(t_always) if t_always else None,
        "time_never_median_s": statistics.median(t_never) if t_never else None,
        "time_delta_median_s": statistics.median(deltas) if deltas else None,
        "time_delta_p90_s": pct(deltas, 0.9) if deltas else None,
        "breakdown": breakdown,
        "negatives_by_kind": dict(sorted(neg_kind.items())),
    }


def _img(images: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(im for im in images if im["case"] == name)


def print_report(s: dict[str, Any], images: list[dict[str, Any]], argv: list[str]) -> None:
    def f(v: Any, d: int = 3) -> str:
        return "n/a" if v is None else f"{v:.{d}f}"

    out = sys.stdout.write
    out(f"\nheld-out D (blind), {' '.join(argv)}\n")
    out(
        f"images {s['images']}  (withheld {s['withheld_images']}, failed {s['failed_images']}, "
        f"harness errors {s['harness_errors']})\n"
    )
    lo, hi = s["recall_ci95"]
    out(
        f"identifier tokens removed   {s['id_removed']}/{s['id_tokens']} = {f(s['recall'])}  "
        f"(95% CI {lo:.3f}-{hi:.3f}; goal >= 0.98)\n"
    )
    out(
        f"  by pixels alone (images not withheld/failed): {f(s['recall_pixels_only'])} of {s['pixel_only_tokens']}; "
        f"invisible tokens excluded: {s['invisible_tokens']}\n"
    )
    out(f"negatives kept              {s['negatives_kept']}/{s['negatives']} = {f(s['negatives_kept_rate'])}\n")
    out(
        f"false redaction per image   median {f(s['false_redaction_median'], 4)}  p90 {f(s['false_redaction_p90'], 4)}"
        f"  max {f(s['false_redaction_max'], 4)}  over {s['false_redaction_images']} images\n"
    )
    out(
        f"time per image (process)    always median {f(s['time_always_median_s'], 2)} s (mean "
        f"{f(s['time_always_mean_s'], 2)}), never median {f(s['time_never_median_s'], 2)} s, "
        f"difference median {f(s['time_delta_median_s'], 2)} s p90 {f(s['time_delta_p90_s'], 2)} s\n"
    )
    for dim, table in s["breakdown"].items():
        cells = "  ".join(f"{k} {r}/{n}={r / n:.2f}" for k, (r, n) in table.items())
        out(f"  recall by {dim:<12} {cells}\n")
    cells = "  ".join(f"{k} {r}/{n}" for k, (r, n) in s["negatives_by_kind"].items())
    out(f"  negatives kept by kind   {cells}\n")
    out("worst images (missed identifier tokens; false redaction):\n")
    ranked = sorted(
        images, key=lambda im: (-sum(t["status"] == "missed" for t in im["tokens"]), -(im["false_redaction"] or 0))
    )
    for im in ranked[:10]:
        missed = [t for t in im["tokens"] if t["status"] == "missed"]
        ids = [t for t in im["tokens"] if t["role"] == "id" and t["status"] != "invisible"]
        lost = sum(t["status"] == "lost" for t in im["tokens"])
        kinds = ",".join(sorted({t["kind"] for t in missed}))
        out(
            f"  {im['case']:<28} missed {len(missed)}/{len(ids)} [{kinds}] negatives lost {lost} "
            f"fr {f(im['false_redaction'], 3)} withheld {im['withheld']} regions "
            f"{im['burned_in_text'].get('box_count')} {im['harness_error'] or ''}\n"
        )


# --------------------------------------------------------------------------------------------------------------


def _preview(case: Case, folder: Path) -> None:
    c = case.frames[0]
    a = c.grey.display(c.pix) if c.grey is not None else c.pix
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(folder / "preview.png")


def main(argv: list[str] | None = None) -> int:
    """Generate the cases, run ingest three times per case, score, print and write results.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7707)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--images", type=int, default=None, help="only the first N cases (round-robin over layouts)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--generate-only", action="store_true", help="write the cases and previews, do not ingest")
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()
    order = case_order()[: args.images] if args.images else case_order()
    cases: list[tuple[Case, dict[str, Path]]] = []
    t0 = time.perf_counter()
    for index, (_, k, fn) in enumerate(order):
        case = make_case(args.seed, index, k, fn)
        folder = work / "cases" / case.name
        cases.append((case, write_case(case, folder, args.seed)))
        if args.generate_only:
            _preview(case, folder)
    n_ids = sum(w.role == "id" for case, _ in cases for c in case.frames for w in c.words)
    n_neg = sum(w.role == "neg" for case, _ in cases for c in case.frames for w in c.words)
    sys.stderr.write(
        f"generated {len(cases)} cases, {n_ids} identifier tokens, {n_neg} negatives "
        f"in {time.perf_counter() - t0:.1f} s\n"
    )
    if args.generate_only:
        return 0

    def job(item: tuple[Case, dict[str, Path]]) -> dict[str, Any]:
        case, paths = item
        rec = run_case(case, paths, work / "runs" / case.name)
        sys.stderr.write(f"  {case.name}: always {rec['time_always_s']:.1f}s\n")
        return rec

    t1 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        images = list(pool.map(job, cases))
    s = summarise(images)
    s["wall_s"] = round(time.perf_counter() - t1, 1)
    s["seed"], s["jobs"] = args.seed, args.jobs
    print_report(s, images, sys.argv[1:] if argv is None else argv)
    sys.stdout.write(f"total ingest wall time {s['wall_s']} s with --jobs {args.jobs}\n")
    (work / "results.json").write_text(
        json.dumps({"summary": s, "images": images}, indent=1, ensure_ascii=False, default=str), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
