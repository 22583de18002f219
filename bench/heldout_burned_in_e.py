"""Held-out benchmark E: identifiers burned into modality-style overlays, scored through the CLI only (issue #16).

Written blind: without reading the redactor (assistant/imaging/burned_in.py), its tests, the other held-out sets or
the burned-in sections of docs/benchmarks.md. ``radassist ingest`` is a black box here.

What it measures
----------------
Each case is made at run time from the seed: a real frame (the shared DICOM set: CR MONOCHROME1 16-bit, US RGB /
palette / multi-frame, MR; VQA-RAD pictures with their own captions cropped off) or a page drawn here (ECG, report,
fundus photo), with synthetic identifiers drawn the way modalities and screens print them: CR/DX corner blocks with
the technologist's initials or the operator's name and a lead marker, mammography corner blocks, fluoroscopy/XA
date, time and frame counter on every frame, an ultrasound top bar, fundus/dental name stamps, ECG and report pages
(black text on white), another hospital's viewer captured as a secondary capture, outside-CD images whose header does
not hold the printed identifiers, and PNG/JPEG uploads. Identifier forms: O'NEIL, SMITH-JONES, NG, names that are
English words (BAKER, HOPE), DICOM carets, MRNs with prefixes/suffixes, dates with month names, ages, phone numbers.
Rendering: anti-aliased or not, PIL's bitmap font, text clipped at the edge, vertical (90 degrees) text, a 1-px dark
outline over bone, alpha 0.4-0.7, JPEG quality 60-85. Each case has a clean twin (same pixels, no text).

Every file is ingested with ``radassist ingest FILES --json --out DIR`` and a fresh RADASSIST_DATA_DIR three times:
clean and planted with RADASSIST_BURNED_IN_TEXT=never, planted with =always. PNG renderings are compared per pixel:

- ink of a drawn token = pixels of its glyphs (dilated 1 px) where the two never renderings differ by > 12 levels
  (faint text over bright bone is still legible; tokens whose median difference is < 40 are labelled lowcontrast);
- an identifier token (a name part, ID, date, age, phone number, institution word, staff name or initials) is
  *removed* when >= 95% of its ink is black (<= 8) in the always rendering, when its frame was withheld
  (burned_in_text.withheld_frames > 0) or when the file failed. Dark ink on a light page (ECG, report) cannot turn
  black, so there the light pixels of the token's box are tested instead;
- a negative (L/R marker, view, PORTABLE, measurement, W/L, kVp/mAs/EI/DAP, probe, frame counter, ECG value, a line
  of report text, scale bar, arrow) is *kept* when < 50% of its ink is blacked;
- false redaction: share of the visible (> 24) area outside every drawn text or graphic box (+4 px) that is black in
  the always rendering; median and p90 over shown frames; withheld frames are listed apart;
- seconds per image: wall time of each ingest call over the frames it rendered, always vs never.

Labels (identifier kind and form, rendering, case style, in the DICOM header or not) give per-category recall.

Run
---
``.venv/bin/python -m bench.heldout_burned_in_e --seed 9109 --work /tmp/heldout_e [--images N]``

Prints a table; writes DIR/results.json (per-token, per-negative and per-image rows). Identifiers are synthetic.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
DICOM_DIR = SHARED / "dicom" / "pydicom_data"
VQA_DIR = SHARED / "vqa_rad" / "images"

INK_DIFF = 12  # levels: a drawn pixel differs from the clean twin by more than this to count as ink
DARK = 24  # levels: a pixel at or below this (every channel) in the never rendering is dark (or not visible)
LOW_CONTRAST = 40  # levels: a token whose ink differs from its clean twin by less than this (median) is "lowcontrast"
BLACK = 8  # levels: a pixel at or below this (every channel) is blacked
REMOVED_SHARE = 0.95  # share of a token's ink blacked for it to count as removed (the brief)
KEPT_SHARE = 0.5  # a negative is kept when less than this share of its ink is blacked (the brief)
BOX_MARGIN = 4  # px around every drawn item left out of the false-redaction area
MIN_INK = 4  # px: fewer visible ink pixels and the token is unscorable (lost in windowing or JPEG)

SURNAMES: dict[str, list[str]] = {
    "apostrophe": [
        "O'NEIL",
        "O'BRIEN",
        "D'ANGELO",
        "O'CONNOR",
        "D'SOUZA",
        "O'HARA",
        "O'ROURKE",
        "D'ARCY",
        "O'SHEA",
        "O'DONNELL",
        "D'AMICO",
        "O'KEEFE",
    ],
    "hyphen": [
        "SMITH-JONES",
        "GARCIA-LOPEZ",
        "LEE-WONG",
        "TAYLOR-REED",
        "NGUYEN-TRAN",
        "OKAFOR-BELL",
        "PRICE-EVANS",
        "AL-MASRI",
        "BEN-DAVID",
        "MORALES-DIAZ",
    ],
    "short": ["NG", "LI", "WU", "XU", "YE", "HO", "LY", "OH", "MA", "KO", "JI"],
    "word": [
        "BAKER",
        "HOPE",
        "MAY",
        "WILL",
        "HILL",
        "YOUNG",
        "LONG",
        "BELL",
        "RICE",
        "MARSH",
        "FIELD",
        "HUNTER",
        "WOOD",
        "STONE",
        "KING",
        "FROST",
        "LAKE",
        "CROSS",
        "BISHOP",
        "CHURCH",
        "SHORT",
        "GOLD",
    ],
    "plain": [
        "KOWALSKI",
        "OKONKWO",
        "MARTINEZ",
        "PETROVIC",
        "HALVORSEN",
        "ABERNATHY",
        "VILLANUEVA",
        "NAKAMURA",
        "FITZGERALD",
        "CASTELLANOS",
        "LINDQVIST",
        "BRENNAN",
        "ADEYEMI",
        "SZABO",
    ],
}
GIVEN: dict[str, list[str]] = {
    "word": ["GRACE", "JUNE", "ROSE", "FAITH", "MARK", "BILL", "DAWN", "APRIL", "JOY", "SUNNY", "ART", "PAT", "IVY"],
    "plain": [
        "PATRICK",
        "MARGARET",
        "WEI",
        "AMARA",
        "TOMASZ",
        "INGRID",
        "LUIS",
        "PRIYA",
        "DMITRI",
        "FATIMA",
        "KEVIN",
        "ELEANOR",
        "SIOBHAN",
        "KWAME",
        "YUKI",
        "ROSALIND",
        "HENRIK",
        "LUCIA",
        "OMAR",
        "BEATRIZ",
        "NIKOLAI",
        "ADAEZE",
        "CONOR",
        "MEI",
        "GUSTAVO",
        "HALINA",
        "RAFAEL",
        "SUNITA",
        "TOBIAS",
        "VALERIA",
        "ANDREI",
    ],
}
STAFF = [
    "MORALES",
    "PATEL",
    "CHEN",
    "OYELARAN",
    "VANCE",
    "RASMUSSEN",
    "IBRAHIM",
    "DUBOIS",
    "KESSLER",
    "TANAKA",
    "MENDES",
    "GALLAGHER",
    "NOVAK",
    "ESPOSITO",
    "HARTMANN",
    "QUINTERO",
    "BALOGUN",
    "SORENSEN",
    "AHMADI",
    "LACROIX",
    "FERREIRA",
    "OKAFOR",
    "BJORK",
    "CARVALHO",
    "DEMIR",
    "EKSTROM",
    "FONTAINE",
    "GRUBER",
]
STAFF_GIVEN = ["KATE", "ANIL", "SOFIA", "DANIEL", "ROSA", "ERIK", "LENA", "MARCO", "NADIA", "PIOTR", "AISHA"]
INSTITUTIONS = [
    "LAKEVIEW",
    "BRIGID'S",
    "NORTHGATE",
    "HOLLINS",
    "ASHFORD",
    "CEDARCREST",
    "WILLOWBROOK",
    "PINEHURST",
    "KINGSBRIDGE",
    "MARLOWE",
    "EASTLEIGH",
    "GLENWOOD",
    "HARBORVIEW",
    "STONEBRIDGE",
    "FAIRMONT",
    "BRACKENRIDGE",
    "ELMHURST",
    "OAKRIDGE",
    "RIVERBEND",
    "SUMMITVALE",
    "MERIDIAN",
    "HALCYON",
    "BAYSHORE",
    "CLEARWATER",
    "TALLOWAY",
    "PEMBERTON",
    "WESTBROOK",
    "ALDERSHOT",
    "CARRINGTON",
    "DUNMORE",
    "FERNDALE",
    "GREYSTONE",
    "HAWTHORNE",
    "IVYBRIDGE",
    "JUNIPER",
    "KESTREL",
    "LOCKWOOD",
    "MAPLECREST",
    "NORWOOD",
    "ORCHARDVILLE",
    "PRESCOTT",
    "ROSEMONT",
    "SILVERTON",
    "THORNBURY",
    "VALEMOUNT",
    "WHITBY",
    "YARDLEY",
    "ZEPHYRHILLS",
    "AVONDALE",
    "BRIARWOOD",
    "COLDSPRING",
    "DRAYTON",
]
GENERIC = ["MEDICAL CENTER", "HOSPITAL", "IMAGING", "RADIOLOGY", "CLINIC", "GENERAL HOSPITAL", "HEALTH"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
REPORT_LINES = [
    "The lungs are clear without focal consolidation or effusion.",
    "Heart size is within normal limits. Mediastinal contours are normal.",
    "No pneumothorax. The osseous structures are intact.",
    "Small hypodense lesion in segment VI, too small to characterize.",
    "The kidneys enhance symmetrically without hydronephrosis.",
    "No free fluid or free air in the abdomen or pelvis.",
    "Mild degenerative change of the lower lumbar spine.",
    "The appendix is normal in caliber. No bowel obstruction.",
    "Stable 4 mm nodule in the right upper lobe (series 3, image 41).",
    "Gallbladder is unremarkable. Common bile duct measures 4.2 mm.",
    "No acute intracranial hemorrhage, mass effect or midline shift.",
    "Scattered atherosclerotic calcification of the aorta.",
    "Trace bilateral pleural effusions with adjacent atelectasis.",
    "Liver is normal in size with homogeneous attenuation.",
]


# ----------------------------------------------------------------------------------------------------------------
# Drawn text and graphics


@dataclass(frozen=True)
class Part:
    """One unit of drawn text: an identifier token ("id"), a negative ("neg") or neutral label text ("neu")."""

    text: str
    role: str = "neu"
    kind: str = ""
    form: str = ""
    in_header: bool = False
    tags: tuple[str, ...] = ()


def neg(text: str, kind: str) -> Part:
    """A non-identifying annotation that must stay."""
    return Part(text, "neg", kind, kind)


def neu(text: str) -> Part:
    """Label text ("DOB:", "MEDICAL CENTER", a time of day): neither scored as identifier nor as negative."""
    return Part(text)


@dataclass(frozen=True)
class Style:
    """How a line is drawn."""

    font: str
    size: int
    color: tuple[int, int, int] = (255, 255, 255)
    aa: bool = True
    outline: bool = False
    alpha: float = 1.0
    rot: int = 0  # 0, 90 (reads bottom to top) or 270
    gap: int = 1  # spaces between parts

    def labels(self) -> list[str]:
        out = ["bitmap" if self.font == "pil_bitmap" else ("aa" if self.aa else "noaa")]
        if self.outline:
            out.append("outline")
        if self.alpha < 1.0:
            out.append("alpha")
        if self.rot:
            out.append("rot90")
        if self.size <= 12 or self.font == "pil_bitmap":
            out.append("small")
        return out


@dataclass
class Item:
    """A drawn part with its pixels: ``mask`` (bool) covers the image box at (x, y) of frame ``frame``."""

    text: str
    role: str
    kind: str
    form: str
    in_header: bool
    render: list[str]
    frame: int
    x: int
    y: int
    mask: np.ndarray


class Canvas:
    """One frame in display levels (H, W, 3) float32 0..255 and the items drawn on it."""

    def __init__(self, arr: np.ndarray, gray: bool, frame: int = 0) -> None:
        self.arr = np.array(arr, dtype=np.float32, copy=True)  # drawing never touches the clean twin
        self.gray = gray
        self.frame = frame
        self.items: list[Item] = []

    @property
    def h(self) -> int:
        return int(self.arr.shape[0])

    @property
    def w(self) -> int:
        return int(self.arr.shape[1])


@cache
def font_files() -> tuple[str, ...]:
    """Regular upright TrueType fonts that fontconfig knows (fc-list)."""
    try:
        out = subprocess.run(["fc-list", ":", "file"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    files = sorted({line.split(":")[0].strip() for line in out.splitlines() if line.strip()})
    skip = ("Math", "ExtraLight", "Oblique", "Italic")
    return tuple(f for f in files if f.lower().endswith((".ttf", ".otf")) and not any(s in f for s in skip))


@cache
def load_font(name: str, size: int) -> Any:
    """A PIL font: a file, PIL's scalable default or its old bitmap font (fixed size)."""
    if name == "pil_bitmap":
        return ImageFont.load_default_imagefont()
    if name == "pil_default":
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(name, size)


def _text_layer(size: tuple[int, int], xy: tuple[float, float], text: str, font: Any, aa: bool, stroke: int) -> Any:
    img = Image.new("L", size, 0)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "L" if aa else "1"
    if stroke:
        draw.text(xy, text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    else:
        draw.text(xy, text, font=font, fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _rot(a: np.ndarray, rot: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(a, k=1 if rot == 90 else 3)) if rot else a


def line_layers(parts: list[Part], st: Style) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per part: its fill coverage and (with an outline) its fill+ring coverage, on the line's own layer."""
    font = load_font(st.font, st.size)
    stroke = 1 if st.outline and st.font != "pil_bitmap" else 0
    pad = 2 + stroke
    space = font.getlength(" ") * st.gap
    widths = [font.getlength(p.text) for p in parts]
    _, top, _, bottom = font.getbbox("AgjpqyQ|'")
    top = min(int(top), 0)
    w = int(math.ceil(sum(widths) + space * (len(parts) - 1))) + 2 * pad + 1
    h = int(bottom) - top + 2 * pad + 1
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    x = float(pad)
    for part, pw in zip(parts, widths, strict=True):
        fill = _text_layer((w, h), (x, pad - top), part.text, font, st.aa, 0)
        ring = _text_layer((w, h), (x, pad - top), part.text, font, st.aa, stroke) if stroke else None
        out.append((_rot(fill, st.rot), _rot(ring, st.rot) if ring is not None else None))
        x += pw + space
    return out


def _paste(cv: Canvas, x: int, y: int, fill: np.ndarray, ring: np.ndarray | None, st: Style) -> None:
    h, w = fill.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, cv.w), min(y + h, cv.h)
    if x1 <= x0 or y1 <= y0:
        return
    region = cv.arr[y0:y1, x0:x1]
    color = np.array(st.color, np.float32)
    if cv.gray:
        color[:] = float(color.mean())
    if ring is not None:
        a = ring[y0 - y : y1 - y, x0 - x : x1 - x, None] * st.alpha
        region *= 1.0 - a  # the 1-px dark outline
    a = fill[y0 - y : y1 - y, x0 - x : x1 - x, None] * st.alpha
    region[:] = region * (1.0 - a) + color * a


def _record(cv: Canvas, x: int, y: int, cover: np.ndarray, part: Part, render: list[str]) -> None:
    full = cover > 0.1
    h, w = full.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, cv.w), min(y + h, cv.h)
    if x1 <= x0 or y1 <= y0:
        return
    sub = full[y0 - y : y1 - y, x0 - x : x1 - x]
    if not sub.any():
        return
    tags = list(render) + list(part.tags) + (["clip"] if sub.sum() < full.sum() else [])
    rows, cols = np.nonzero(sub)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    cv.items.append(
        Item(
            part.text,
            part.role,
            part.kind,
            part.form,
            part.in_header,
            tags,
            cv.frame,
            int(x0 + c0),
            int(y0 + r0),
            sub[r0:r1, c0:c1].copy(),
        )
    )


def line_size(parts: list[Part], st: Style) -> tuple[int, int]:
    """(width, height) of the drawn line (after rotation)."""
    fill, _ = line_layers(parts, st)[0]
    return int(fill.shape[1]), int(fill.shape[0])


def draw_line(cv: Canvas, x: int, y: int, parts: list[Part], st: Style) -> tuple[int, int]:
    """Draw the parts as one line with its top-left at (x, y); return its (width, height)."""
    layers = line_layers(parts, st)
    for part, (fill, ring) in zip(parts, layers, strict=True):
        _paste(cv, x, y, fill, ring, st)
        _record(cv, x, y, ring if ring is not None else fill, part, st.labels())
    return int(layers[0][0].shape[1]), int(layers[0][0].shape[0])


def token_width(part: Part, st: Style) -> int:
    return int(load_font(st.font, st.size).getlength(part.text))


def block(
    cv: Canvas,
    lines: list[list[Part]],
    st: Style,
    corner: str,
    mx: int,
    my: int,
    clip: int | None = None,
    clip_frac: float = 0.35,
) -> tuple[int, int, int, int]:
    """Stack lines from a corner ("tl", "tr", "bl", "br"); line ``clip`` runs off the side edge by ``clip_frac`` of
    its outer token. Returns the block's box (x0, y0, x1, y1)."""
    lines = [ln for ln in lines if ln]
    sizes = [line_size(ln, st) for ln in lines]
    step = [h + max(1, st.size // 6) for _, h in sizes]
    total = sum(step)
    y = my if corner[0] == "t" else cv.h - my - total
    box = [cv.w, cv.h, 0, 0]
    for i, (ln, (w, h)) in enumerate(zip(lines, sizes, strict=True)):
        x = mx if corner[1] == "l" else cv.w - mx - w
        if i == clip:
            x = (
                -int(clip_frac * token_width(ln[0], st))
                if corner[1] == "l"
                else (cv.w - w + int(clip_frac * token_width(ln[-1], st)))
            )
        draw_line(cv, x, y, ln, st)
        box = [min(box[0], x), min(box[1], y), max(box[2], x + w), max(box[3], y + h)]
        y += step[i]
    return box[0], box[1], box[2], box[3]


def first_free(cv: Canvas, w: int, h: int, spots: list[tuple[int, int]], pad: int = 4) -> tuple[int, int] | None:
    """The first spot where a w x h box fits inside the image clear of everything drawn so far."""
    for x, y in spots:
        if x < 0 or y < 0 or x + w > cv.w or y + h > cv.h:
            continue
        if not any(
            x < it.x + it.mask.shape[1] + pad
            and it.x < x + w + pad
            and y < it.y + it.mask.shape[0] + pad
            and it.y < y + h + pad
            for it in cv.items
        ):
            return x, y
    return None


def draw_free(cv: Canvas, parts: list[Part], st: Style, spots: list[tuple[int, int]]) -> None:
    """Draw a free-standing line (marker, vertical label) at the first spot clear of the blocks, or not at all."""
    w, h = line_size(parts, st)
    spot = first_free(cv, w, h, spots)
    if spot:
        draw_line(cv, spot[0], spot[1], parts, st)


def draw_shape(
    cv: Canvas,
    x: int,
    y: int,
    size: tuple[int, int],
    painter: Callable[[Any], None],
    part: Part,
    color: tuple[int, int, int] = (255, 255, 255),
    alpha: float = 1.0,
) -> None:
    """A graphic negative (scale bar, arrow, calipers) painted on its own layer."""
    layer = Image.new("L", size, 0)
    painter(ImageDraw.Draw(layer))
    fill = np.asarray(layer, dtype=np.float32) / 255.0
    st = Style("graphic", 20, color, alpha=alpha)
    _paste(cv, x, y, fill, None, st)
    _record(cv, x, y, fill, part, ["graphic"])


def scale_bar(cv: Canvas, x: int, y: int, length: int, vertical: bool, color: tuple[int, int, int]) -> None:
    ticks = 6

    def paint(d: Any) -> None:
        if vertical:
            d.line([(6, 0), (6, length - 1)], fill=255, width=1)
            for i in range(ticks):
                ty = int(i * (length - 1) / (ticks - 1))
                d.line([(0 if i % 5 == 0 else 3, ty), (6, ty)], fill=255, width=1)
        else:
            d.line([(0, 6), (length - 1, 6)], fill=255, width=1)
            for i in range(ticks):
                tx = int(i * (length - 1) / (ticks - 1))
                d.line([(tx, 0 if i % 5 == 0 else 3), (tx, 6)], fill=255, width=1)

    size = (8, length) if vertical else (length, 8)
    draw_shape(cv, x, y, size, paint, neg("scale bar", "scale_bar"), color)


def arrow(cv: Canvas, x: int, y: int, length: int, direction: int, color: tuple[int, int, int]) -> None:
    """An annotation arrow in a square box at (x, y), pointing to one of the four diagonals."""
    s = length

    def paint(d: Any) -> None:
        tip, tail = [(3, 3), (s - 4, s - 4)], [(s - 4, s - 4), (3, 3)]
        a, b = (tip, tail) if direction % 2 == 0 else (tail, tip)
        if direction >= 2:
            a, b = [(s - 1 - p[0], p[1]) for p in a], [(s - 1 - p[0], p[1]) for p in b]
        (hx, hy), (tx, ty) = a[0], b[0]
        d.line([(hx, hy), (tx, ty)], fill=255, width=max(2, s // 25))
        ang = math.atan2(ty - hy, tx - hx)
        head = s * 0.28
        left = (hx + head * math.cos(ang + 0.45), hy + head * math.sin(ang + 0.45))
        right = (hx + head * math.cos(ang - 0.45), hy + head * math.sin(ang - 0.45))
        d.polygon([(hx, hy), left, right], fill=255)

    draw_shape(cv, x, y, (s, s), paint, neg("arrow", "arrow"), color)


# ----------------------------------------------------------------------------------------------------------------
# Synthetic people and how their identifiers are printed


@dataclass
class Person:
    surname: str
    sform: str
    given: str
    gform: str
    sex: str
    dob: date
    when: datetime
    mrn: str
    mform: str
    acc: str
    phone: str
    inst: str
    generic: str
    operator: tuple[str, str]
    initials: str
    referring: str

    @property
    def age(self) -> int:
        d = self.when.date()
        return d.year - self.dob.year - ((d.month, d.day) < (self.dob.month, self.dob.day))


class Deck:
    """Draws without replacement and reshuffles when empty: a value comes back only a whole pool later."""

    def __init__(self, values: list[str], rng: random.Random) -> None:
        self.values, self.rng, self.left = list(values), rng, list[str]()

    def draw(self) -> str:
        if not self.left:
            self.left = self.rng.sample(self.values, len(self.values))
        return self.left.pop()


class Pools:
    """Names drawn so that cases near each other (one ingest call holds at most five) never share one."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.surnames = {k: Deck(v, rng) for k, v in SURNAMES.items()}
        self.given = {k: Deck(v, rng) for k, v in GIVEN.items()}
        self.inst = Deck(INSTITUTIONS, rng)
        self.staff = Deck(STAFF, rng)
        self.forms = Deck(list(SURNAMES), rng)

    def surname(self) -> tuple[str, str]:
        form = self.forms.draw()
        return self.surnames[form].draw(), form

    def given_name(self) -> tuple[str, str]:
        form = "word" if self.rng.random() < 0.35 else "plain"
        return self.given[form].draw(), form


def _mrn(rng: random.Random) -> tuple[str, str]:
    d = rng.randint
    forms: list[tuple[str, str]] = [
        (f"MRN-{d(0, 99999):05d}-{d(0, 9)}", "mrn_prefixed"),
        (f"A{d(0, 9999999):07d}{rng.choice('BCDEFGHK')}", "mrn_alnum"),
        (f"{d(10000000, 99999999)}", "mrn_digits"),
        (f"RX-{d(0, 9999999):07d}", "mrn_prefixed"),
        (f"{d(900, 999)}-{d(10, 99)}-{d(1000, 9999)}", "mrn_dashed"),
        (f"H{d(1000000, 9999999)}", "mrn_alnum"),
        (f"{d(0, 9999999):07d}X", "mrn_alnum"),
    ]
    return rng.choice(forms)


def new_person(pools: Pools, rng: random.Random) -> Person:
    surname, sform = pools.surname()
    given, gform = pools.given_name()
    when = datetime(
        rng.randint(2018, 2025),
        rng.randint(1, 12),
        rng.randint(1, 28),
        rng.randint(7, 22),
        rng.randint(0, 59),
        rng.randint(0, 59),
    )
    dob = date(rng.randint(1932, 2012), rng.randint(1, 12), rng.randint(1, 28))
    if dob >= when.date():
        dob = when.date() - timedelta(days=365 * 30)
    mrn, mform = _mrn(rng)
    yy = when.year % 100
    acc = rng.choice(
        [
            f"RX{yy}-{rng.randint(0, 999999):06d}",
            f"A{yy}{rng.randint(0, 999999):06d}",
            f"{rng.randint(1000000000, 9999999999)}",
        ]
    )
    phone = rng.choice(["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "+1 {a} {b} {c}"]).format(
        a=rng.choice(["555", "556", "558"]), b=f"{rng.randint(10, 999):03d}", c=f"{rng.randint(0, 9999):04d}"
    )
    staff = [pools.staff.draw(), pools.staff.draw()]
    inst = pools.inst.draw()
    return Person(
        surname,
        sform,
        given,
        gform,
        rng.choice("MF"),
        dob,
        when,
        mrn,
        mform,
        acc,
        phone,
        inst,
        rng.choice(GENERIC),
        (staff[0], rng.choice(STAFF_GIVEN)),
        rng.choice("ABCDEFGHJKLMNPRSTW") + rng.choice("ABCDEFGHJKLMNPRSTW"),
        staff[1],
    )


def title_name(s: str) -> str:
    """O'NEIL -> O'Neil, SMITH-JONES -> Smith-Jones."""
    out, up = [], True
    for ch in s:
        out.append(ch.upper() if up else ch.lower())
        up = ch in "'- "
    return "".join(out)


DATE_STYLES = ["d MON Y", "Mon d, Y", "d-Mon-Y", "d/MON/y", "m/d/Y", "Y-m-d", "d.m.Y", "Ymd", "Y/m/d"]


def fmt_date(d: date, style: str) -> tuple[str, str]:
    """The date as printed and its form label."""
    mon = MONTHS[d.month - 1]
    text = {
        "d MON Y": f"{d.day:02d} {mon} {d.year}",
        "Mon d, Y": f"{mon.title()} {d.day}, {d.year}",
        "d-Mon-Y": f"{d.day:02d}-{mon.title()}-{d.year}",
        "d/MON/y": f"{d.day:02d}/{mon}/{d.year % 100:02d}",
        "m/d/Y": f"{d.month:02d}/{d.day:02d}/{d.year}",
        "Y-m-d": f"{d.year}-{d.month:02d}-{d.day:02d}",
        "d.m.Y": f"{d.day:02d}.{d.month:02d}.{d.year}",
        "Ymd": f"{d.year}{d.month:02d}{d.day:02d}",
        "Y/m/d": f"{d.year}/{d.month:02d}/{d.day:02d}",
    }[style]
    form = "date_month" if "MON" in style or "Mon" in style else ("date_compact" if style == "Ymd" else "date_numeric")
    return text, form


HEADER_KINDS = {
    "full": {"name", "mrn", "dob", "age", "accession", "institution", "study_date", "staff"},
    "screen_named": {"name", "dob", "age", "study_date"},
    "outside": set(),
    "none": set(),
}


class Ident:
    """Prints one person's identifiers as parts; ``known`` says which kinds the DICOM header also holds."""

    def __init__(self, p: Person, header_mode: str, rng: random.Random) -> None:
        self.p, self.rng = p, rng
        self.known = HEADER_KINDS[header_mode]
        self.date_style = rng.choice(DATE_STYLES)
        self.mixed = rng.random() < 0.25

    def part(self, text: str, kind: str, form: str, tags: tuple[str, ...] = ()) -> Part:
        return Part(text, "id", kind, form, kind in self.known, tags)

    def name(self, style: str | None = None) -> list[Part]:
        p = self.p
        style = (
            style
            or self.rng.choices(
                ["LAST, FIRST", "LAST^FIRST", "First Last", "LAST FIRST", "Last, First"], [0.35, 0.15, 0.15, 0.15, 0.2]
            )[0]
        )
        sur, giv = p.surname, p.given
        if style == "LAST^FIRST":
            return [self.part(f"{sur}^{giv}", "name", "caret_joined")]
        if style in ("First Last", "Last, First"):
            sur, giv = title_name(sur), title_name(giv)
        s = self.part(sur + ("," if "," in style else ""), "name", p.sform)
        g = self.part(giv, "name", f"given_{p.gform}")
        return [g, s] if style == "First Last" else [s, g]

    def mrn(self) -> Part:
        return self.part(self.p.mrn, "mrn", self.p.mform)

    def acc(self) -> Part:
        return self.part(self.p.acc, "accession", "accession")

    def dob(self, style: str | None = None) -> Part:
        text, form = fmt_date(self.p.dob, style or self.date_style)
        return self.part(text, "dob", form)

    def age(self) -> Part:
        a = self.p.age
        text = self.rng.choice([f"{a}Y", f"{a:03d}Y", f"({a}Y)", f"{a} yrs", f"{a}y"])
        return self.part(text, "age", "age")

    def study_date(self, style: str | None = None) -> Part:
        text, form = fmt_date(self.p.when.date(), style or self.date_style)
        return self.part(text, "study_date", form)

    def time(self) -> Part:
        return neu(self.p.when.strftime(self.rng.choice(["%H:%M:%S", "%H:%M", "%I:%M:%S %p"])))

    def phone(self) -> Part:
        return self.part(self.p.phone, "phone", "phone")

    def inst(self) -> list[Part]:
        word = title_name(self.p.inst) if self.mixed else self.p.inst
        generic = [neu(w.title() if self.mixed else w) for w in self.p.generic.split()]
        if word == "BRIGID'S" or word == "Brigid's":
            return [neu("ST."), self.part(word, "institution", "institution"), *generic]
        return [self.part(word, "institution", "institution"), *generic]

    def operator(self) -> list[Part]:
        sur, giv = self.p.operator
        if self.rng.random() < 0.5:
            return [neu("Op:"), self.part(sur + ",", "staff", "staff_name"), self.part(giv, "staff", "staff_name")]
        return [
            neu("Operator:"),
            self.part(f"{giv[0]}.", "staff", "staff_initials"),
            self.part(sur, "staff", "staff_name"),
        ]

    def tech(self) -> list[Part]:
        label = self.rng.choice(["Tech:", "RT:", "Tech ID:", "By:"])
        return [neu(label), self.part(self.p.initials, "staff", "staff_initials")]

    def referring(self) -> list[Part]:
        return [
            neu(self.rng.choice(["Ref:", "Referring:", "Referred by:"])),
            neu("Dr."),
            self.part(self.p.referring, "staff", "staff_name"),
        ]


# ----------------------------------------------------------------------------------------------------------------
# Source pictures


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR))
    return np.stack([_resize(a[..., c], w, h) for c in range(a.shape[2])], axis=-1)


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a


def _vqa_class(path: Path) -> str:
    """ "axial" (a round body on black, CT/MR-like) or "xr" (projection radiograph-like), from a thumbnail."""
    with Image.open(path) as im:
        im.draft("L", (128, 128))
        a = np.asarray(im.convert("L").resize((64, 64)), np.float32)
    corners = [a[:10, :10], a[:10, -10:], a[-10:, :10], a[-10:, -10:]]
    return "axial" if sum(float(c.mean()) < 20 for c in corners) >= 3 else "xr"


class Sources:
    """Real frames: VQA-RAD pictures with their captions cropped off, and frames of the shared DICOM set."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.vqa_files = sorted(VQA_DIR.glob("*.jpg")) if VQA_DIR.is_dir() else []
        rng.shuffle(self.vqa_files)
        self.used: set[Path] = set()
        self.cache: dict[str, np.ndarray] = {}

    def vqa(self, want: str) -> np.ndarray:
        """A gray VQA-RAD picture (H, W) 0..255, cropped to its middle (their captions sit at the margins)."""
        for path in self.vqa_files:
            if path in self.used or _vqa_class(path) != want:
                continue
            self.used.add(path)
            with Image.open(path) as im:
                a = np.asarray(im.convert("L"), np.float32)
            h, w = a.shape
            return a[int(h * 0.12) : int(h * 0.88), int(w * 0.10) : int(w * 0.90)]
        return self.dicom("RG1_UNCI.dcm")

    def dicom(self, name: str) -> np.ndarray:
        """First frame of a shared DICOM file in display levels, (H, W) or (H, W, 3)."""
        if name not in self.cache:
            self.cache[name] = _dicom_display(DICOM_DIR / name if (DICOM_DIR / name).exists() else _pydicom_test(name))
        return self.cache[name]


def _pydicom_test(name: str) -> Path:
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files" / name


def _dicom_display(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_color_lut, convert_color_space

    ds = pydicom.dcmread(path)
    a = ds.pixel_array
    photometric = str(ds.PhotometricInterpretation)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        a = a[0]
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(a, ds).astype(np.float32)
        return rgb / 257.0 if rgb.max() > 255 else rgb  # 16-bit palette entries
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        return convert_color_space(a, "YBR_FULL", "RGB").astype(np.float32)
    if a.ndim == 3:
        return a.astype(np.float32)
    lo, hi = np.percentile(a, [0.5, 99.5])
    d = np.clip((a.astype(np.float32) - lo) / max(hi - lo, 1.0), 0, 1) * 255.0
    return 255.0 - d if photometric == "MONOCHROME1" else d


US_SOURCES = {  # file, content box (x0, y0, x1, y1) without the file's own burned-in text, colour
    "us1": ("US1_J2KR.dcm", (45, 105, 595, 340), True),
    "echo": ("JPGLosslessP14SV1_1s_1f_8b.dcm", (130, 125, 780, 665), False),
    "ob": ("OBXXXX1A_rle_2frame.dcm", (330, 85, 780, 560), True),
    "small": ("examples_rgb_color.dcm", (22, 52, 297, 170), True),
}


# ----------------------------------------------------------------------------------------------------------------
# Cases


@dataclass
class Built:
    """One case before it is written: frames (uint8 (H, W, 3)) with and without text, and what was drawn."""

    style: str
    labels: list[str]
    fmt: str  # dicom, png, jpeg
    gray: bool
    clean: list[np.ndarray]
    planted: list[np.ndarray]
    items: list[Item]
    dicom: dict[str, Any] = field(default_factory=dict)
    quality: int = 0


class Gen:
    """The seeded context every case generator draws from."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.pools = Pools(self.rng)
        self.src = Sources(self.rng)
        fonts = font_files()
        self.sans = [f for f in fonts if "Sans" in f and "Mono" not in f] or ["pil_default"]
        self.mono = [f for f in fonts if "Mono" in f] or ["pil_default"]
        self.serif = [f for f in fonts if "Serif" in f] or ["pil_default"]
        self.bold = [f for f in fonts if "Bold" in f] or ["pil_default"]

    def font(self, bitmap_ok: bool = False) -> str:
        r = self.rng.random()
        if bitmap_ok and r < 0.15:
            return "pil_bitmap"
        if r < 0.25:
            return "pil_default"
        return self.rng.choice(self.sans + self.mono + self.mono + self.serif[:1])

    def size(self, h: int, lo: float, hi: float, floor: int = 10, ceil: int = 44) -> int:
        return max(floor, min(ceil, int(h * self.rng.uniform(lo, hi))))

    def color(self, gray: bool, palette: list[tuple[int, int, int]] | None = None) -> tuple[int, int, int]:
        if gray or not palette:
            v = self.rng.randint(215, 255)
            return (v, v, v)
        return self.rng.choice(palette)

    def jpeg_q(self) -> int:
        return self.rng.randint(60, 85)


OVERLAY_COLORS = [(255, 255, 255), (255, 255, 0), (0, 255, 0), (0, 255, 255), (220, 220, 220), (255, 200, 0)]


def _u8(arr: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _jpeg(a: np.ndarray, q: int, gray: bool) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a[..., 0] if gray else a).save(buf, "JPEG", quality=q)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).copy()


def _shutter(a: np.ndarray, rng: random.Random) -> np.ndarray:
    """Electronic shutters: dark bands at the collimated edges, where vendors print their blocks."""
    h, w = a.shape[:2]
    out = a.copy()
    t, b = int(h * rng.uniform(0.04, 0.09)), int(h * rng.uniform(0.04, 0.09))
    left, right = int(w * rng.uniform(0.04, 0.09)), int(w * rng.uniform(0.04, 0.09))
    out[:t] = out[h - b :] = 0
    out[:, :left] = out[:, w - right :] = 0
    return out


def xr_overlay(g: Gen, cv: Canvas, who: Ident, color_ok: bool = False) -> None:
    """CR/DX vendor overlay: identity block, institution/date, technologist, exposure index, view, lead marker."""
    r, h, w = g.rng, cv.h, cv.w
    size = g.size(min(h, w), 0.018, 0.03, 11, 40)
    base = Style(g.font(bitmap_ok=size <= 14), size, g.color(not color_ok, OVERLAY_COLORS), aa=r.random() < 0.7)
    m = max(6, int(min(h, w) * 0.015))
    ident = [
        who.name(),
        [neu(r.choice(["ID:", "PID:", "MRN:"])), who.mrn()],
        [neu("DOB:"), who.dob(), who.age()],
        [neu(r.choice(["Acc:", "ACC#", "Accession:"])), who.acc()],
    ]
    if r.random() < 0.5:  # printed over the anatomy with a dark outline, as some vendors do on the body
        block(
            cv,
            ident,
            replace(base, outline=True, aa=True, font=r.choice(g.sans)),
            "tl",
            int(w * r.uniform(0.16, 0.24)),
            int(h * r.uniform(0.10, 0.2)),
        )
    else:
        block(cv, ident, base, "tl", m, m)
    clip = 0 if r.random() < 0.4 else None
    block(cv, [who.inst(), [who.study_date(), who.time()]], base, "tr", m, m, clip=clip)
    tech = who.tech() if r.random() < 0.6 else who.operator()
    ei = neg(f"EI {r.randint(150, 900)}  DI {r.uniform(-2, 2):+.1f}", "exposure")
    kv = neg(f"{r.randint(60, 125)} kVp  {r.uniform(0.8, 20):.1f} mAs", "exposure")
    bl = replace(base, alpha=r.uniform(0.4, 0.7)) if r.random() < 0.3 else base
    block(cv, [tech, [ei], [kv]], bl, "bl", m, m)
    view = r.choice(["AP UPRIGHT", "PA", "LAT", "AP SUPINE", "PA ERECT", "OBLIQUE"])
    block(
        cv,
        [[neg(r.choice(["PORTABLE", "UPRIGHT", "SUPINE", "MOBILE"]), "position")], [neg(view, "view")]],
        base,
        "br",
        m,
        m,
    )
    marker = neg(r.choice("RL"), "lr_marker")
    mst = Style(r.choice(g.bold), max(18, int(h * 0.05)), (255, 255, 255), outline=r.random() < 0.4)
    xs = [int(w * r.uniform(0.72, 0.82)), int(w * r.uniform(0.05, 0.1))]
    xs = xs if r.random() < 0.5 else xs[::-1]
    draw_free(cv, [marker], mst, [(x, int(h * f)) for f in (r.uniform(0.2, 0.3), 0.35, 0.45) for x in xs])
    if r.random() < 0.5:
        s = max(30, int(h * 0.08))
        spot = first_free(cv, s, s, [(int(w * r.uniform(0.35, 0.55)), int(h * r.uniform(0.4, 0.65))) for _ in range(8)])
        if spot:
            arrow(cv, spot[0], spot[1], s, r.randrange(4), (255, 255, 255))
    if r.random() < 0.35:  # a side label along the left edge
        vst = replace(base, rot=90, aa=True, outline=False, alpha=1.0)
        parts = [*who.name(), who.mrn()]
        _, vh = line_size(parts, vst)
        draw_free(cv, parts, vst, [(m, int(h * f) - vh // 2) for f in (0.62, 0.55, 0.48, 0.7, 0.4)])


def ct_overlay(g: Gen, cv: Canvas, who: Ident) -> None:
    """CT/MR viewer-style four corners, orientation letters, scale bar and an arrow."""
    r, h, w = g.rng, cv.h, cv.w
    size = g.size(h, 0.022, 0.03, 10, 24)
    st = Style(g.font(bitmap_ok=True), size, g.color(cv.gray, OVERLAY_COLORS), aa=r.random() < 0.65)
    m = 4
    tl = [
        who.inst(),
        who.name(),
        [who.mrn()],
        [who.dob(), who.age(), neu(who.p.sex)],
        [neu(r.choice(["Acc:", "A:"])), who.acc()],
    ]
    block(cv, tl, st, "tl", m, m, clip=1 if r.random() < 0.35 else None)
    block(
        cv,
        [
            [who.study_date()],
            [who.time()],
            [neg(f"Se {r.randint(1, 9)}", "series")],
            [neg(f"Im {r.randint(1, 240)}", "series")],
        ],
        st,
        "tr",
        m,
        m,
    )
    wl = r.choice([(400, 40), (1500, -600), (350, 50), (80, 35), (2000, 500)])
    bl_st = replace(st, alpha=r.uniform(0.4, 0.7)) if r.random() < 0.3 else st
    block(
        cv,
        [
            [neg(f"W {wl[0]} L {wl[1]}", "wl")],
            [neg(f"kV {r.choice([100, 120, 140])} mA {r.randint(80, 400)}", "exposure")],
            [neg(f"{r.choice([0.625, 1.25, 2.5, 5.0])} mm", "measurement")],
        ],
        bl_st,
        "bl",
        m,
        m,
    )
    op = who.operator() if r.random() < 0.5 else who.referring()
    block(cv, [op, [neg(f"Tilt {r.choice([0.0, 12.5, -8.0])}", "geometry")]], st, "br", m, m + int(h * 0.06))
    vertical = r.random() < 0.3
    if vertical:  # before the side letters, so that it keeps its place along the right edge
        vst = replace(st, rot=270, font=r.choice(g.sans), aa=True)
        parts = [*who.name(), who.mrn()]
        vw, _ = line_size(parts, vst)
        draw_free(cv, parts, vst, [(w - vw - m, int(h * f)) for f in (0.3, 0.25, 0.35, 0.4, 0.2)])
    letters = [
        ("A", [(w // 2, m + int(h * 0.015)), (w // 2, int(h * 0.12)), (w // 2 + int(w * 0.08), m)]),
        ("P", [(w // 2, h - size * 2 - m), (w // 2, int(h * 0.86))]),
        ("R", [(m, h // 2), (m, int(h * 0.58))]),
        ("L", [(w - size - m, h // 2), (w - size - m, int(h * 0.58))]),
    ]
    for text, spots in letters:
        draw_free(cv, [neg(text, "orientation")], st, spots)
    bar = int(w * 0.18)
    spot = first_free(
        cv,
        bar,
        8,
        [(w - m - bar - 2, h - m - 10), (w - m - bar - 2, h - m - int(h * 0.12)), (int(w * 0.4), h - m - 10)],
    )
    if spot:
        scale_bar(cv, spot[0], spot[1], bar, False, st.color)
    if r.random() < 0.5:
        s = max(24, int(h * 0.07))
        spot = first_free(cv, s, s, [(int(w * r.uniform(0.3, 0.55)), int(h * r.uniform(0.35, 0.55))) for _ in range(8)])
        if spot:
            arrow(cv, spot[0], spot[1], s, r.randrange(4), (255, 255, 255))


def _finish(
    style: str,
    labels: list[str],
    fmt: str,
    gray: bool,
    clean: list[np.ndarray],
    cvs: list[Canvas],
    quality: int = 0,
    dicom: dict[str, Any] | None = None,
) -> Built:
    planted = [_u8(cv.arr) for cv in cvs]
    clean_u8 = [_u8(c) for c in clean]
    if quality and fmt == "dicom":  # a lossy step upstream (screen grab, scanner): both twins go through it
        planted = [_jpeg(a, quality, gray) for a in planted]
        clean_u8 = [_jpeg(a, quality, gray) for a in clean_u8]
    items = [it for cv in cvs for it in cv.items]
    labels = list(dict.fromkeys(labels))
    return Built(style, labels, fmt, gray, clean_u8, planted, items, dicom or {}, quality)


def _single(
    g: Gen, base: np.ndarray, gray: bool, draw: Callable[[Canvas], None]
) -> tuple[list[np.ndarray], list[Canvas]]:
    cv = Canvas(_rgb(base), gray)
    draw(cv)
    return [_rgb(base).astype(np.float32)], [cv]


def case_cr(g: Gen, k: int) -> Built:
    r = g.rng
    src = ["RG1_UNCI.dcm", "vqa", "RG3_J2KR.dcm", "vqa"][k % 4]
    if src == "vqa":
        a = g.src.vqa("xr")
    else:
        a = g.src.dicom(src)
        if src.startswith("RG3"):
            a = a[:, :1100]  # the file's own lead marker sits to the right
    full = k == 0
    if not full:
        long = r.randint(900, 1300)
        f = long / max(a.shape)
        a = _resize(a, int(a.shape[1] * f), int(a.shape[0] * f))
    if r.random() < 0.5:
        a = _shutter(a, r)
    who = Ident(new_person(g.pools, r), "full", r)
    clean, cvs = _single(g, a, True, lambda cv: xr_overlay(g, cv, who))
    mono1 = src != "vqa" or r.random() < 0.4
    spec = {
        "modality": "CR" if src != "vqa" else "DX",
        "photometric": "MONOCHROME1" if mono1 else "MONOCHROME2",
        "bits": 16,
        "burned_in": r.choice(["NO", None, "YES"]),
        "header": "full",
        "person": who.p,
    }
    labels = ["cr_dx", "16bit", spec["photometric"].lower()] + (["fullsize"] if full else [])
    return _finish("cr_dx", labels, "dicom", True, clean, cvs, dicom=spec)


def case_outside(g: Gen, k: int) -> Built:
    """An outside CD: the header is blank or another system's, the pixels carry the outside hospital's identifiers."""
    r = g.rng
    axial = k % 3 == 1
    a = g.src.vqa("axial" if axial else "xr")
    side = 512 if axial else r.randint(900, 1200)
    f = side / max(a.shape)
    a = _resize(a, int(a.shape[1] * f), int(a.shape[0] * f))
    who = Ident(new_person(g.pools, r), "outside", r)
    clean, cvs = _single(g, a, True, lambda cv: (ct_overlay if axial else xr_overlay)(g, cv, who))
    spec = {
        "modality": "CT" if axial else "CR",
        "photometric": "MONOCHROME2",
        "bits": 16,
        "burned_in": None,
        "header": "outside",
        "person": who.p,
    }
    q = g.jpeg_q() if k % 3 == 2 else 0
    return _finish(
        "outside_cd", ["outside_cd", "not_in_header"] + (["jpeg"] if q else []), "dicom", True, clean, cvs, q, spec
    )


def case_upload(g: Gen, k: int) -> Built:
    r = g.rng
    axial = k % 3 == 1
    a = g.src.vqa("axial" if axial else "xr")
    f = min(1.0, r.randint(700, 1100) / max(a.shape))
    a = _resize(a, int(a.shape[1] * f), int(a.shape[0] * f))
    who = Ident(new_person(g.pools, r), "none", r)
    fmt = "png" if k % 2 == 0 else "jpeg"
    if axial:
        clean, cvs = _single(g, a, fmt == "png" and r.random() < 0.5, lambda cv: ct_overlay(g, cv, who))
    else:
        clean, cvs = _single(g, a, False, lambda cv: xr_overlay(g, cv, who, color_ok=True))
    q = g.jpeg_q() if fmt == "jpeg" else 0
    return _finish("upload", ["upload", fmt] + (["jpeg"] if q else []), fmt, cvs[0].gray, clean, cvs, q)


def case_ctmr(g: Gen, k: int) -> Built:
    r = g.rng
    mr = k % 3 == 2
    if mr:
        a = g.src.dicom(r.choice(["MR-SIEMENS-DICOM-WithOverlays.dcm", "MR2_J2KI.dcm"]))
        side = r.choice([484, 512, 640])
    else:
        a = g.src.vqa("axial")
        side = r.choice([512, 512, 640])
    f = side / max(a.shape)
    a = _resize(a, int(a.shape[1] * f), int(a.shape[0] * f))
    who = Ident(new_person(g.pools, r), "full", r)
    clean, cvs = _single(g, a, True, lambda cv: ct_overlay(g, cv, who))
    spec = {
        "modality": "MR" if mr else "CT",
        "photometric": "MONOCHROME2",
        "bits": 16,
        "burned_in": None,
        "header": "full",
        "person": who.p,
    }
    return _finish("ct_mr", ["ct_mr", "mr" if mr else "ct", "16bit"], "dicom", True, clean, cvs, dicom=spec)


def _breast(g: Gen, h: int, w: int, chest_left: bool, mlo: bool) -> np.ndarray:
    tex = _resize(g.src.vqa("xr"), w, h)
    tex = 70 + (tex - tex.min()) / max(float(np.ptp(tex)), 1.0) * 140
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx = 0.0 if chest_left else float(w)
    d = ((xx - cx) / (0.66 * w)) ** 2 + ((yy - 0.5 * h) / (0.42 * h)) ** 2
    mask = np.clip((1 - d) / 0.12, 0, 1) ** 0.6
    out = tex * mask
    if mlo:  # pectoral muscle: a brighter triangle at the top of the chest wall
        edge = (xx if chest_left else (w - xx)) / (0.28 * w) + yy / (0.35 * h)
        out = np.where(edge < 1, np.maximum(out, 185 + 20 * (1 - edge)), out)
    return out


def case_mammo(g: Gen, k: int) -> Built:
    r = g.rng
    h = r.randint(1000, 1200)
    w = int(h * 0.78)
    chest_left = r.random() < 0.5
    view = r.choice(["CC", "MLO"])
    a = _breast(g, h, w, chest_left, view == "MLO")
    who = Ident(new_person(g.pools, r), "full", r)
    lat = "L" if chest_left else "R"  # the breast hangs from the side of its chest wall on the display

    def draw(cv: Canvas) -> None:
        corner = "r" if chest_left else "l"
        size = g.size(h, 0.016, 0.024, 12, 30)
        st = Style(g.font(), size, g.color(True), aa=r.random() < 0.6)
        m = 10
        label, big = [neg(f"{lat} {view}", "view")], replace(st, size=int(h * 0.035))
        draw_line(cv, w - m - line_size(label, big)[0] if corner == "r" else m, m, label, big)
        block(
            cv,
            [
                who.name(),
                [neu("MRN"), who.mrn()],
                [neu("DOB"), who.dob(), who.age()],
                [neu("Acc"), who.acc()],
                who.inst(),
                [who.study_date(), who.time()],
            ],
            st,
            "t" + corner,
            m,
            m + int(h * 0.06),
            clip=0 if r.random() < 0.3 else None,
        )
        tst = replace(st, alpha=r.uniform(0.4, 0.7)) if r.random() < 0.35 else st
        block(
            cv,
            [
                [neg(f"{r.randint(26, 32)} kVp  {r.randint(40, 200)} mAs", "exposure")],
                [neg(f"Thk {r.randint(30, 75)} mm  Force {r.randint(50, 140)} N", "exposure")],
                [neg(f"AGD {r.uniform(0.8, 2.8):.2f} mGy", "exposure")],
                [neg(r.choice(["W/Rh", "Mo/Mo", "W/Ag"]), "exposure")],
                who.tech(),
            ],
            tst,
            "b" + corner,
            m,
            m,
        )
        if r.random() < 0.5:
            vst = replace(st, rot=90 if corner == "l" else 270, aa=True)
            parts = [*who.name(), who.dob()]
            vw, _ = line_size(parts, vst)
            x = m if corner == "l" else w - vw - m
            draw_free(cv, parts, vst, [(x, int(h * f)) for f in (0.42, 0.36, 0.48, 0.3)])

    clean, cvs = _single(g, a, True, draw)
    spec = {
        "modality": "MG",
        "photometric": r.choice(["MONOCHROME2", "MONOCHROME1"]),
        "bits": 16,
        "burned_in": "YES",
        "header": "full",
        "person": who.p,
    }
    return _finish("mammo", ["mammo", "16bit"], "dicom", True, clean, cvs, dicom=spec)


def case_xa(g: Gen, k: int) -> Built:
    r = g.rng
    s = r.choice([512, 512, 768])
    src = g.src.vqa(r.choice(["xr", "axial"]))
    side = min(src.shape)
    src = _resize(src[:side, :side], s, s)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    circle = np.clip((0.47 * s - np.hypot(xx - s / 2, yy - s / 2)) / 6, 0, 1)
    who = Ident(new_person(g.pools, r), "full", r)
    n = 3
    size = g.size(s, 0.024, 0.032, 11, 22)
    st = Style(
        r.choice(["pil_bitmap", r.choice(g.mono), "pil_default"]) if s <= 512 else r.choice(g.mono),
        size,
        (255, 255, 255),
        aa=r.random() < 0.4,
    )
    br_st = replace(st, alpha=r.uniform(0.4, 0.7)) if r.random() < 0.3 else st
    name, mrn, dob, when, tm = who.name(), who.mrn(), who.dob(), who.study_date(), who.time()
    inst = who.inst()
    fps, angle = (
        r.choice([7.5, 15, 30]),
        f"{r.choice(['LAO', 'RAO'])} {r.randint(0, 45)} {r.choice(['CRA', 'CAU'])} {r.randint(0, 35)}",
    )
    clean, cvs = [], []
    for i in range(n):
        shift = np.roll(src, (r.randint(-6, 6), r.randint(-6, 6)), axis=(0, 1))
        frame = np.clip(shift + g.np.normal(0, 3, shift.shape), 0, 255) * circle
        clean.append(_rgb(frame).astype(np.float32))
        cv = Canvas(_rgb(frame), True, i)
        block(cv, [name, [neu("ID"), mrn], [neu("DOB"), dob]], st, "tl", 4, 4)
        block(cv, [[when], [tm]], st, "tr", 4, 4, clip=0 if k % 2 == 1 else None)
        block(
            cv,
            [[neg(f"Fr {i + 1}/{n}", "frame_counter")], [neg(f"{fps} fps", "frame_counter")], [neg(angle, "geometry")]],
            st,
            "bl",
            4,
            4,
        )
        block(cv, [inst, [neg(f"DAP {r.uniform(1, 40):.1f} uGym2", "exposure")]], br_st, "br", 4, 4)
        cvs.append(cv)
    spec = {
        "modality": "XA",
        "photometric": "MONOCHROME2",
        "bits": 8,
        "burned_in": "YES",
        "header": "full",
        "person": who.p,
    }
    return _finish("xa_fluoro", ["xa_fluoro", "multiframe"], "dicom", True, clean, cvs, dicom=spec)


def case_us(g: Gen, k: int) -> Built:
    r = g.rng
    key = ["us1", "echo", "ob", "small"][k % 4]
    name, box, color = US_SOURCES[key]
    src = g.src.dicom(name)
    if src.ndim == 2:
        src = _rgb(src)
    h, w = src.shape[:2]
    base = np.zeros((h, w, 3), np.float32)
    x0, y0, x1, y1 = box
    base[y0:y1, x0:x1] = src[y0:y1, x0:x1]
    bar = r.random() < 0.5
    if bar:
        base[: int(h * 0.085)] = (22, 38, 80) if color else (40, 40, 40)
    who = Ident(new_person(g.pools, r), "full", r)
    n = 2 if key == "ob" else 1
    size = g.size(h, 0.026, 0.034, 9, 28)
    font = "pil_bitmap" if h <= 240 else g.font(bitmap_ok=h <= 480)
    st = Style(font, size, g.color(not color, OVERLAY_COLORS[:2] + [(200, 200, 200)]), aa=r.random() < 0.6)
    name_parts, mrn, dob, when, tm = who.name(), who.mrn(), who.dob(), who.study_date(), who.time()
    inst = who.inst()
    lmp = who.part(
        fmt_date(who.p.when.date() - timedelta(days=r.randint(60, 260)), who.date_style)[0], "lmp", "date_other"
    )
    clean, cvs = [], []
    for i in range(n):
        frame = base if i == 0 else np.clip(base + g.np.normal(0, 2, base.shape) * (base > 0), 0, 255)
        clean.append(frame.copy())
        cv = Canvas(frame, not color, i)
        m = 4
        left = block(cv, [inst, name_parts], st, "tl", m, 2)
        right = block(
            cv, [[when, tm], [neu("ID:"), mrn], [neu("DOB:"), dob]], st, "tr", m, 2, clip=1 if k % 3 == 0 else None
        )
        ly = max(int(h * (0.2 if bar else 0.16)), left[3] + 6, right[3] + 6)
        block(
            cv,
            [
                [neg(r.choice(["C5-1", "L12-5", "9L4", "C1-6", "S5-1", "L15-7io"]), "probe")],
                [neg(f"Frq {r.choice([3.5, 5.0, 7.5, 12.0])}MHz", "us_param")],
                [neg(f"Gn {r.randint(30, 70)}", "us_param")],
                [neg(f"DR {r.randint(50, 75)}", "us_param")],
            ],
            st,
            "tl",
            m,
            ly,
        )
        block(cv, [[neg(f"MI {r.uniform(0.2, 1.4):.1f}  TIs {r.uniform(0.1, 1.0):.1f}", "us_param")]], st, "tr", m, ly)
        block(
            cv,
            [
                [neg(f"D1 {r.uniform(0.5, 9):.1f} cm", "measurement")],
                [neg(f"D2 {r.uniform(0.5, 9):.2f} cm", "measurement")],
            ],
            st,
            "bl",
            m,
            m,
        )
        if key == "ob":
            block(
                cv,
                [[neu("LMP"), lmp], [neg(f"GA {r.randint(12, 38)}w{r.randint(0, 6)}d", "us_param")]],
                st,
                "br",
                m + 12,
                m,
            )
        spot = first_free(cv, 8, int(h * 0.4), [(w - 12, int(h * f)) for f in (0.3, 0.35, 0.4, 0.25)])
        if spot:
            scale_bar(cv, spot[0], spot[1], int(h * 0.4), True, (200, 200, 200))
        cvs.append(cv)
    spec = {
        "modality": "US",
        "photometric": "RGB" if color else "MONOCHROME2",
        "bits": 8,
        "burned_in": "YES",
        "header": "full",
        "person": who.p,
    }
    labels = ["us", key] + (["multiframe"] if n > 1 else [])
    return _finish("us", labels, "dicom", not color, clean, cvs, dicom=spec)


def _fundus(g: Gen, w: int, h: int) -> np.ndarray:
    r = g.rng
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, rad = w / 2, h / 2, 0.46 * h
    dist = np.hypot(xx - cx, yy - cy) / rad
    inside = np.clip((1 - dist) * 40, 0, 1)
    shade = np.clip(1 - 0.45 * dist**2, 0, 1)[..., None]
    img = np.array([205, 95, 40], np.float32) * shade
    dx = cx + rad * r.choice([-0.35, 0.35])
    disc = np.exp(-(((xx - dx) / (0.09 * rad)) ** 2 + ((yy - cy) / (0.11 * rad)) ** 2))[..., None]
    img = img * (1 - disc) + np.array([250, 225, 150], np.float32) * disc
    mac = np.exp(-(((xx - (2 * cx - dx) * 0.5 - cx * 0.5) / (0.12 * rad)) ** 2 + ((yy - cy) / (0.12 * rad)) ** 2))
    img *= (1 - 0.35 * mac)[..., None]
    layer = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(layer)
    for _ in range(r.randint(6, 10)):  # vessels wander out of the disc
        x, y, ang, wid = dx, cy, r.uniform(0, 2 * math.pi), r.randint(3, 6)
        for _step in range(60):
            nx, ny = x + 8 * math.cos(ang), y + 8 * math.sin(ang)
            d.line([(x, y), (nx, ny)], fill=255, width=max(1, wid))
            x, y, ang = nx, ny, ang + r.uniform(-0.25, 0.25)
            if r.random() < 0.05:
                wid -= 1
    vessel = np.asarray(layer, np.float32)[..., None] / 255
    img = img * (1 - 0.55 * vessel) + np.array([120, 25, 15], np.float32) * 0.55 * vessel
    img = img + g.np.normal(0, 4, img.shape)
    return np.clip(img * inside[..., None], 0, 255)


def case_photo(g: Gen, k: int) -> Built:
    r = g.rng
    kind = ["fundus", "dental", "fundus", "dental"][k % 4]
    fmt = ["dicom", "png", "jpeg", "dicom"][k % 4]
    header = "full" if fmt == "dicom" else "none"
    who = Ident(new_person(g.pools, r), header, r)
    if kind == "fundus":
        w, h = r.choice([(768, 576), (1024, 768)])
        a = _fundus(g, w, h)
        gray = False
    else:
        w, h = 1000, 500
        src = g.src.vqa("xr")
        a = _resize(src, w, h)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = a * np.clip(1.2 - np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)) ** 2 * 0.5, 0, 1)
        gray = fmt == "dicom"
        a = _rgb(a)

    def draw(cv: Canvas) -> None:
        size = g.size(h, 0.028, 0.036, 12, 30)
        st = Style(g.font(), size, g.color(gray, [(255, 255, 255), (255, 255, 0), (0, 255, 0)]), aa=r.random() < 0.7)
        if r.random() < 0.3:
            st = replace(st, alpha=r.uniform(0.4, 0.7))
        m = 8
        block(
            cv,
            [who.name(), [neu("ID"), who.mrn()], [neu("DOB"), who.dob()]],
            st,
            "bl",
            m,
            m,
            clip=0 if r.random() < 0.35 else None,
        )
        stamp = Style(r.choice(g.mono), size, (255, 150, 30), aa=r.random() < 0.5)
        block(cv, [[who.study_date(r.choice(["Y/m/d", "d.m.Y", "m/d/Y"])), who.time()]], stamp, "br", m, m)
        if kind == "fundus":
            big = replace(st, size=size * 2, alpha=1.0)
            block(cv, [[neg(r.choice(["OD", "OS"]), "ophth_label")]], big, "tl", m, m)
            block(cv, [[neg(r.choice(["45°", "50°", "30°"]), "ophth_label")]], st, "tr", m, m)
            block(cv, [who.inst()], replace(st, alpha=1.0), "tr", m, m + size * 2)
        else:
            block(cv, [[neg("R", "lr_marker")]], replace(st, size=size * 2), "tl", m, h // 2)
            block(cv, [[neg("L", "lr_marker")]], replace(st, size=size * 2), "tr", m, h // 2)
            block(cv, [who.inst(), [neu("Tel"), who.phone()]], st, "tr", m, m)
            scale_bar(cv, w // 2 - 60, h - 20, 120, False, (230, 230, 230))

    clean, cvs = _single(g, a if not gray else a[..., 0], gray, draw)
    q = g.jpeg_q() if fmt == "jpeg" else 0
    spec = (
        {
            "modality": "OP" if kind == "fundus" else "PX",
            "photometric": "MONOCHROME2" if gray else "RGB",
            "bits": 8,
            "burned_in": "YES",
            "header": "full",
            "person": who.p,
        }
        if fmt == "dicom"
        else None
    )
    labels = ["photo", kind, fmt] + (["jpeg"] if q else [])
    return _finish("photo", labels, fmt, gray, clean, cvs, q, spec)


def _ecg_base(g: Gen, w: int, h: int) -> np.ndarray:
    r = g.rng
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    top, bottom = 140, h - 50
    for x in range(20, w - 20, 8):
        d.line([(x, top), (x, bottom)], fill=(240, 150, 150) if (x - 20) % 40 == 0 else (255, 210, 210))
    for y in range(top, bottom, 8):
        d.line([(20, y), (w - 21, y)], fill=(240, 150, 150) if (y - top) % 40 == 0 else (255, 210, 210))
    rate = r.uniform(55, 95)
    period = 60 / rate * 200  # px per beat at 25 mm/s and 8 px/mm
    for row in range(4):
        y0 = top + 70 + row * 150
        pts = []
        for x in range(30, w - 30):
            t = ((x - 30) % period) / period
            v = (
                8 * math.exp(-(((t - 0.15) / 0.03) ** 2))
                - 10 * math.exp(-(((t - 0.29) / 0.008) ** 2))
                + 60 * math.exp(-(((t - 0.31) / 0.01) ** 2))
                - 15 * math.exp(-(((t - 0.33) / 0.01) ** 2))
                + 14 * math.exp(-(((t - 0.55) / 0.05) ** 2))
            )
            pts.append((x, y0 - v))
        d.line(pts, fill=(0, 0, 0), width=2 if r.random() < 0.5 else 1)
    return np.asarray(img, np.float32)


def case_ecg(g: Gen, k: int) -> Built:
    r = g.rng
    w, h = 1100, 850
    fmt = ["dicom", "png", "dicom"][k % 3]
    who = Ident(new_person(g.pools, r), "full" if fmt == "dicom" else "none", r)
    a = _ecg_base(g, w, h)

    def draw(cv: Canvas) -> None:
        size = r.randint(14, 17)
        st = Style(r.choice(g.sans + g.mono), size, (0, 0, 0), aa=r.random() < 0.7)
        bold = replace(st, font=r.choice(g.bold), size=size + 3)
        x, y = 20, 14
        draw_line(cv, x, y, who.name(r.choice(["LAST, FIRST", "LAST^FIRST", "Last, First"])), bold)
        y += size + 12
        for ln in (
            [neu("ID:"), who.mrn()],
            [neu("DOB:"), who.dob(), who.age()],
            [neu(who.p.sex == "M" and "Male" or "Female"), neu("Room: 4B")],
        ):
            draw_line(cv, x, y, ln, st)
            y += size + 6
        hr = r.randint(55, 95)
        y = 14
        for text in (
            f"Vent. rate {hr} BPM",
            f"PR interval {r.randint(120, 200)} ms",
            f"QRS duration {r.randint(80, 110)} ms",
            f"QT/QTc {r.randint(340, 420)}/{r.randint(380, 460)} ms",
            f"P-R-T axes {r.randint(-30, 90)} {r.randint(-30, 90)} {r.randint(-30, 90)}",
        ):
            draw_line(cv, 380, y, [neg(text, "ecg_param")], st)
            y += size + 6
        y = 14
        draw_line(cv, 700, y, [who.study_date(), who.time()], st)
        y += size + 6
        draw_line(cv, 700, y, who.inst(), st)
        y += size + 6
        draw_line(cv, 700, y, who.referring(), st)
        y += size + 6
        for text in (
            r.choice(["Normal sinus rhythm", "Sinus bradycardia", "Sinus rhythm with 1st degree AV block"]),
            r.choice(["Normal ECG", "Borderline ECG", "Nonspecific T wave abnormality"]),
        ):
            draw_line(cv, 700, y, [neg(text, "ecg_param")], st)
            y += size + 6
        leads = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"], ["II"]]
        small = replace(st, size=13)
        for row, names in enumerate(leads):
            for col, lead in enumerate(names):
                draw_line(cv, 34 + col * 262, 140 + 22 + row * 150, [neg(lead, "lead_label")], small)
        draw_line(cv, 20, h - 40, [neg("25 mm/s   10 mm/mV   0.05-150 Hz   60~", "ecg_param")], st)
        draw_line(cv, w - 140, h - 40, [neg("Page 1 of 1", "page_text")], st)

    clean, cvs = _single(g, a, False, draw)
    q = g.jpeg_q() if k % 3 == 2 else 0
    spec = (
        {"modality": "OT", "photometric": "RGB", "bits": 8, "burned_in": "YES", "header": "full", "person": who.p}
        if fmt == "dicom"
        else None
    )
    return _finish(
        "ecg_page", ["ecg_page", "dark_on_light", fmt] + (["jpeg"] if q else []), fmt, False, clean, cvs, q, spec
    )


def case_report(g: Gen, k: int) -> Built:
    r = g.rng
    w, h = 850, 1100
    fmt = ["jpeg", "dicom", "png"][k % 3]
    gray = fmt == "dicom"
    who = Ident(new_person(g.pools, r), "full" if fmt == "dicom" else "none", r)
    paper = r.randint(238, 252)
    a = np.full((h, w, 3), paper, np.float32) + g.np.normal(0, 2.5, (h, w, 3))
    a[100:102, 50 : w - 50] = 0  # the letterhead rule

    def draw(cv: Canvas) -> None:
        font = r.choice(g.serif + g.sans)
        size = r.randint(14, 17)
        st = Style(font, size, (0, 0, 0), aa=r.random() < 0.75)
        head = replace(st, font=r.choice(g.bold), size=26)
        parts = who.inst()
        hw, _ = line_size(parts, head)
        draw_line(cv, (w - hw) // 2, 30, parts, head)
        sub = [neu("Department"), neu("of"), neu("Radiology")]
        sw, _ = line_size(sub, st)
        draw_line(cv, (w - sw) // 2, 70, sub, st)
        y, step = 120, size + 10
        for ln in (
            [neu("Patient:"), *who.name(r.choice(["LAST, FIRST", "Last, First", "First Last"]))],
            [neu("MRN:"), who.mrn(), neu("   Acc#:"), who.acc()],
            [neu("DOB:"), who.dob(), neu("   Age:"), who.age(), neu("   Sex:"), neu(who.p.sex)],
            [neu("Phone:"), who.phone()],
            who.referring(),
            [neu("Exam date:"), who.study_date()],
        ):
            draw_line(cv, 60, y, ln, st)
            y += step
        y += 14
        exam = r.choice(
            [
                "CT CHEST WITH CONTRAST",
                "CT ABDOMEN AND PELVIS",
                "MRI BRAIN WITHOUT CONTRAST",
                "CHEST RADIOGRAPH, 2 VIEWS",
            ]
        )
        draw_line(cv, 60, y, [neg(f"EXAMINATION: {exam}", "page_text")], st)
        y += step
        draw_line(cv, 60, y, [neg("CLINICAL HISTORY: Cough and fever for two weeks.", "page_text")], st)
        y += step
        prior = who.part(
            fmt_date(who.p.when.date() - timedelta(days=r.randint(30, 900)), who.date_style)[0],
            "study_date",
            "date_in_text",
        )
        draw_line(cv, 60, y, [neg("COMPARISON: Prior study dated", "page_text"), prior], st)
        y += step + 8
        draw_line(cv, 60, y, [neg("FINDINGS:", "page_text")], st)
        y += step
        for text in r.sample(REPORT_LINES, 7):
            draw_line(cv, 60, y, [neg(text, "page_text")], st)
            y += step
        y += 8
        draw_line(cv, 60, y, [neg("IMPRESSION:", "page_text")], st)
        y += step
        for text in r.sample(REPORT_LINES, 2):
            draw_line(cv, 60, y, [neg(text, "page_text")], st)
            y += step
        y += 20
        sig = [
            neu("Electronically"),
            neu("signed"),
            neu("by"),
            neu("Dr."),
            who.part(who.p.referring, "staff", "staff_name"),
            neu("on"),
            who.study_date(),
        ]
        draw_line(cv, 60, y, sig, st)
        draw_line(cv, w - 160, h - 50, [neg("Page 1 of 1", "page_text")], st)

    clean, cvs = _single(g, a[..., 0] if gray else a, gray, draw)
    q = g.jpeg_q() if fmt in ("jpeg", "dicom") else 0
    spec = (
        {
            "modality": "OT",
            "photometric": "MONOCHROME2",
            "bits": 8,
            "burned_in": "YES",
            "header": "full",
            "person": who.p,
        }
        if fmt == "dicom"
        else None
    )
    return _finish(
        "report_page", ["report_page", "dark_on_light", fmt] + (["jpeg"] if q else []), fmt, gray, clean, cvs, q, spec
    )


def case_screen(g: Gen, k: int) -> Built:
    """Another hospital's viewer captured as a secondary capture: its banner carries its own MRN."""
    r = g.rng
    w, h = 1024, 640
    header = "screen_named" if k % 2 == 0 else "outside"
    who = Ident(new_person(g.pools, r), header, r)
    a = np.zeros((h, w, 3), np.float32)
    a[:] = (20, 22, 26)
    a[:44] = (45, 50, 58)
    a[44:600, :120] = (30, 33, 38)
    a[604:] = (36, 38, 44)
    img = g.src.vqa(r.choice(["xr", "axial"]))
    vw, vh = 884, 546
    f = min(vw / img.shape[1], vh / img.shape[0])
    pic = _resize(img, int(img.shape[1] * f), int(img.shape[0] * f))
    view = np.zeros((vh, vw), np.float32)
    oy, ox = (vh - pic.shape[0]) // 2, (vw - pic.shape[1]) // 2
    view[oy : oy + pic.shape[0], ox : ox + pic.shape[1]] = pic
    a[52:598, 130:1014] = _rgb(view)
    thumb = _resize(pic, 96, 76)
    for i in range(3):
        a[60 + i * 90 : 136 + i * 90, 12:108] = _rgb(thumb) * (1.0 if i == 0 else 0.6)

    def draw(cv: Canvas) -> None:
        size = r.randint(14, 17)
        st = Style(r.choice(g.sans), size, (235, 235, 235), aa=r.random() < 0.8)
        banner = [
            *who.name(r.choice(["LAST, FIRST", "Last, First"])),
            neu(who.p.sex),
            who.age(),
            neu("DOB:"),
            who.dob(),
            neu("MRN:"),
            who.mrn(),
        ]
        draw_line(cv, 10, 12, banner, st)
        iw, _ = line_size(who.inst(), st)
        draw_line(cv, w - iw - 10, 12, who.inst(), st)
        vst = Style(
            r.choice(g.sans + g.mono), 13, (255, 255, 255) if r.random() < 0.5 else (255, 255, 120), aa=r.random() < 0.6
        )
        vst = replace(vst, alpha=r.uniform(0.4, 0.7)) if r.random() < 0.3 else vst
        y = 58
        for ln in (who.name(), [who.mrn()], [who.study_date(), who.time()]):
            draw_line(cv, 138, y, ln, vst)
            y += 17
        draw_line(cv, 138, 560, [neg(f"W: {r.choice([1500, 400, 350])} L: {r.choice([-600, 40, 50])}", "wl")], vst)
        draw_line(cv, 138, 577, [neg(f"Zoom: {r.uniform(0.8, 2.5):.1f}x", "geometry")], vst)
        iw2, _ = line_size([neg("Im: 12/48", "series")], vst)
        draw_line(cv, 1008 - iw2, 577, [neg(f"Im: {r.randint(1, 48)}/48", "series")], vst)
        draw_line(cv, 1008 - iw2 - 30, 58, [neg(r.choice(["CT CHEST", "CHEST PA", "ABD/PELVIS"]), "view")], vst)
        draw_line(
            cv,
            10,
            612,
            [neu("User:"), who.part(who.p.initials.lower() + who.p.operator[0].lower(), "staff", "staff_name")],
            replace(st, size=13),
        )

    clean, cvs = _single(g, a, False, draw)
    q = g.rng.randint(70, 90) if k % 2 == 0 else 0
    spec = {"modality": "OT", "photometric": "RGB", "bits": 8, "burned_in": None, "header": header, "person": who.p}
    labels = ["screen_sc", "not_in_header" if header == "outside" else "name_in_header_mrn_not"]
    return _finish("screen_sc", labels + (["jpeg"] if q else []), "dicom", False, clean, cvs, q, spec)


SCHEDULE: list[tuple[str, Callable[[Gen, int], Built], int]] = [
    ("cr_dx", case_cr, 8),
    ("ecg_page", case_ecg, 3),
    ("us", case_us, 6),
    ("screen_sc", case_screen, 4),
    ("xa_fluoro", case_xa, 3),
    ("photo", case_photo, 4),
    ("ct_mr", case_ctmr, 6),
    ("report_page", case_report, 3),
    ("mammo", case_mammo, 4),
    ("outside_cd", case_outside, 3),
    ("upload", case_upload, 6),
]


def schedule() -> list[tuple[str, Callable[[Gen, int], Built], int]]:
    """Round robin over the styles, so the first few cases already cover many of them."""
    left = {name: n for name, _, n in SCHEDULE}
    done: dict[str, int] = defaultdict(int)
    out = []
    while any(left.values()):
        for name, fn, _ in SCHEDULE:
            if left[name]:
                out.append((name, fn, done[name]))
                done[name] += 1
                left[name] -= 1
    return out


# ----------------------------------------------------------------------------------------------------------------
# Writing files


SOP = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "US_MF": "1.2.840.10008.5.1.4.1.1.3.1",
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",
    "OP": "1.2.840.10008.5.1.4.1.1.77.1.5.1",
    "PX": "1.2.840.10008.5.1.4.1.1.1.1.1",
}


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(120)}"


def _header(ds: Any, p: Person, mode: str, rng: random.Random) -> None:
    da = p.when.strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = da
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = p.when.strftime("%H%M%S")
    if mode == "full":
        ds.PatientName = f"{p.surname}^{p.given}"
        ds.PatientID = p.mrn
        ds.PatientBirthDate = p.dob.strftime("%Y%m%d")
        ds.PatientAge = f"{p.age:03d}Y"
        ds.AccessionNumber = p.acc
        ds.InstitutionName = f"{p.inst} {p.generic}"
        ds.ReferringPhysicianName = f"{p.referring}^^^DR"
        ds.OperatorsName = f"{p.operator[0]}^{p.operator[1]}"
    elif mode == "screen_named":  # our PACS: the same person under our own ID
        ds.PatientName = f"{p.surname}^{p.given}"
        ds.PatientID = f"LOC{rng.randint(100000, 999999)}"
        ds.PatientBirthDate = p.dob.strftime("%Y%m%d")
        ds.PatientAge = f"{p.age:03d}Y"
        ds.AccessionNumber = f"LA{rng.randint(100000, 999999)}"
        ds.InstitutionName = "HOME HOSPITAL"
        ds.ReferringPhysicianName = ""
    else:  # an outside CD import: nothing of the printed identity in the header
        ds.PatientName = rng.choice(["", "ANONYMOUS^", "OUTSIDE^STUDY"])
        ds.PatientID = f"CD{rng.randint(1000, 9999)}"
        ds.AccessionNumber = ""
        ds.ReferringPhysicianName = ""
        imported = p.when + timedelta(days=rng.randint(3, 60))
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = imported.strftime("%Y%m%d")
    ds.PatientSex = p.sex


def write_dicom(
    path: Path, frames: list[np.ndarray], spec: dict[str, Any], uids: tuple[str, str, str], rng: random.Random
) -> None:
    """A modality-like file: display levels go to stored values whose own window shows them unchanged."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    modality, photometric, bits = spec["modality"], spec["photometric"], spec["bits"]
    multi = len(frames) > 1
    sop = SOP["US_MF"] if modality == "US" and multi else SOP.get(modality, SOP["OT"])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = uids[2]
    ds.SOPClassUID, ds.SOPInstanceUID = sop, uids[2]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids[0], uids[1]
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber, ds.StudyID = 1, 1, "1"
    _header(ds, spec["person"], spec["header"], rng)
    if spec.get("burned_in"):
        ds.BurnedInAnnotation = spec["burned_in"]
    if sop == SOP["OT"]:
        ds.ConversionType = "WSD"
    rgb = photometric == "RGB"
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = frames[0].shape[:2]
    if rgb:
        ds.PlanarConfiguration = 0
        data = np.stack([f for f in frames]).astype(np.uint8)
    else:
        gray = np.stack([f[..., 0] for f in frames]).astype(np.float32)
        data = _stored(ds, gray, modality, photometric, bits)
    ds.BitsAllocated = 8 if data.dtype == np.uint8 else 16
    ds.BitsStored = 8 if data.dtype == np.uint8 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if multi:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime = 66.7
        ds.FrameIncrementPointer = 0x00181063
    ds.PixelData = np.ascontiguousarray(data if multi else data[0]).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _stored(ds: Any, gray: np.ndarray, modality: str, photometric: str, bits: int) -> np.ndarray:
    if bits == 8:
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    if modality == "CT":  # HU = -160 + level/255*400 shows unchanged in W 400 L 40
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        return np.rint(gray / 255.0 * 400.0 - 160.0 + 1024.0).astype(np.uint16)
    top = 1200.0 if modality == "MR" else 4095.0
    ds.WindowCenter, ds.WindowWidth = top / 2, top
    stored = gray / 255.0 * top
    if photometric == "MONOCHROME1":
        stored = top - stored
    return np.rint(stored).astype(np.uint16)


def write_picture(path: Path, frame: np.ndarray, fmt: str, gray: bool, quality: int) -> None:
    img = Image.fromarray(frame[..., 0] if gray else frame)
    if fmt == "jpeg":
        img.save(path, "JPEG", quality=quality)
    else:
        img.save(path, "PNG")


@dataclass
class Case:
    cid: str
    style: str
    labels: list[str]
    fmt: str
    frames: int
    planted: Path
    clean: Path
    items: list[Item]


def build_cases(seed: int, n_images: int, folder: Path) -> list[Case]:
    g = Gen(seed)
    cases = []
    for i, (_, fn, k) in enumerate(schedule()[:n_images]):
        b = fn(g, k)
        cid = f"e{i + 1:02d}"
        ext = {"dicom": "dcm", "png": "png", "jpeg": "jpg"}[b.fmt]
        planted, clean = folder / f"{cid}_p.{ext}", folder / f"{cid}_c.{ext}"
        if b.fmt == "dicom":
            uids = (_uid(g.rng), _uid(g.rng), _uid(g.rng))
            write_dicom(planted, b.planted, b.dicom, uids, random.Random(f"{seed}-{cid}"))
            write_dicom(clean, b.clean, b.dicom, uids, random.Random(f"{seed}-{cid}"))
        else:
            write_picture(planted, b.planted[0], b.fmt, b.gray, b.quality)
            write_picture(clean, b.clean[0], b.fmt, b.gray, b.quality)
        cases.append(Case(cid, b.style, b.labels, b.fmt, len(b.planted), planted, clean, b.items))
    return cases


def overlapping_items(case: Case) -> int:
    """Pairs of drawn items whose boxes overlap (a generator bug: ink could be claimed twice)."""
    n = 0
    by_frame: dict[int, list[Item]] = defaultdict(list)
    for it in case.items:
        by_frame[it.frame].append(it)
    for items in by_frame.values():
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                if (
                    a.x < b.x + b.mask.shape[1]
                    and b.x < a.x + a.mask.shape[1]
                    and a.y < b.y + b.mask.shape[0]
                    and b.y < a.y + a.mask.shape[0]
                ):
                    n += 1
    return n


# ----------------------------------------------------------------------------------------------------------------
# Running the CLI


def radassist() -> str:
    here = Path(sys.executable).parent / "radassist"
    return str(here if here.exists() else ROOT / ".venv" / "bin" / "radassist")


def run_ingest(files: list[Path], mode: str, out: Path, data: Path) -> tuple[dict[str, dict[str, Any]], float, str]:
    """One ``radassist ingest --json --out`` call with a fresh data folder; rows by path, wall seconds, stderr."""
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADASSIST_")}
    env.update(RADASSIST_DATA_DIR=str(data), RADASSIST_BURNED_IN_TEXT=mode)
    cmd = [radassist(), "ingest", *map(str, files), "--json", "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(data), timeout=1800)
    wall = time.perf_counter() - start
    rows: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "path" in row:
            rows[str(row["path"])] = row
    return rows, wall, proc.stderr[-400:]


def chunks(cases: list[Case], size: int = 5) -> list[list[Case]]:
    """Ingest calls of a few files: at most one picture each, since pictures of one call share a series."""
    out: list[list[Case]] = []
    cur: list[Case] = []
    for c in cases:
        picture = c.fmt != "dicom"
        if cur and (len(cur) >= size or (picture and any(x.fmt != "dicom" for x in cur))):
            out.append(cur)
            cur = []
        cur.append(c)
    if cur:
        out.append(cur)
    return out


def frame_files(out: Path, row: dict[str, Any] | None) -> list[Path]:
    if not row or not row.get("ok") or not row.get("summary"):
        return []
    uid = str(row["summary"].get("series_uid") or "")
    folders = sorted(out.glob(f"study*/series*_{uid[-8:]}")) if uid else []
    if len(folders) != 1:
        return []
    return sorted(folders[0].glob("frame*.png"))


# ----------------------------------------------------------------------------------------------------------------
# Scoring


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.int16)


def _dilate(mask: np.ndarray, n: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=n) if n else mask


def score_item(it: Item, p: np.ndarray, c: np.ndarray, a: np.ndarray) -> dict[str, Any]:
    """Share of the item's legible pixels that are black in the always rendering (see the module docstring)."""
    h, w = p.shape[:2]
    mh, mw = it.mask.shape
    x0, y0, x1, y1 = max(it.x - 2, 0), max(it.y - 2, 0), min(it.x + mw + 2, w), min(it.y + mh + 2, h)
    terr = np.zeros((y1 - y0, x1 - x0), bool)
    terr[it.y - y0 : it.y - y0 + mh, it.x - x0 : it.x - x0 + mw] = it.mask
    terr = _dilate(terr, 1)
    pw, cw, aw = p[y0:y1, x0:x1], c[y0:y1, x0:x1], a[y0:y1, x0:x1]
    ink = terr & (np.abs(pw - cw).max(axis=2) > INK_DIFF)
    pv = pw.max(axis=2)
    black = aw.max(axis=2) <= BLACK
    bright = ink & (pv > DARK)
    basis = "ink"
    sel = bright
    if bright.sum() < 0.5 * ink.sum() or bright.sum() < MIN_INK:  # dark ink: test the light pixels of its box
        basis = "box"
        sel = np.zeros_like(ink)
        if ink.any():
            rows, cols = np.nonzero(ink)
            sel[max(rows.min() - 1, 0) : rows.max() + 2, max(cols.min() - 1, 0) : cols.max() + 2] = True
        sel &= pv > DARK
    n = int(sel.sum())
    contrast = float(np.median(np.abs(pw - cw).max(axis=2)[ink])) if ink.any() else 0.0
    out = {"ink_px": int(ink.sum()), "basis": basis, "contrast": round(contrast, 1), "blacked": None}
    if int(ink.sum()) >= MIN_INK and n >= MIN_INK:
        out["blacked"] = round(float(black[sel].mean()), 4)
    return out


def _withheld_frame(a: np.ndarray, p: np.ndarray) -> bool:
    """A frame shown as blank pixels: most of it one value where the never rendering was not."""
    flat = a.reshape(-1, a.shape[-1])
    values, counts = np.unique(flat[:: max(1, len(flat) // 20000)], axis=0, return_counts=True)
    return bool(counts.max() / counts.sum() > 0.9) and not np.array_equal(a, p)


def false_redaction(items: list[Item], p: np.ndarray, a: np.ndarray) -> tuple[float, int]:
    """Share of the visible area away from every drawn item that is black in the always rendering."""
    h, w = p.shape[:2]
    boxes = np.zeros((h, w), bool)
    for it in items:
        mh, mw = it.mask.shape
        y0, x0 = max(it.y - BOX_MARGIN, 0), max(it.x - BOX_MARGIN, 0)
        boxes[y0 : it.y + mh + BOX_MARGIN, x0 : it.x + mw + BOX_MARGIN] = True
    area = (p.max(axis=2) > DARK) & ~boxes
    n = int(area.sum())
    if not n:
        return 0.0, 0
    return float(((a.max(axis=2) <= BLACK) & area).sum() / n), n


def score_case(case: Case, rows: dict[str, dict[str, dict[str, Any]]], outs: dict[str, Path]) -> dict[str, Any]:
    """Token, negative and image rows of one case from its three renderings."""
    key_p, key_c = str(case.planted), str(case.clean)
    never_c, never_p, always = rows["never_clean"].get(key_c), rows["never"].get(key_p), rows["always"].get(key_p)
    fc, fp = frame_files(outs["never_clean"], never_c), frame_files(outs["never"], never_p)
    image: dict[str, Any] = {
        "case": case.cid,
        "style": case.style,
        "labels": case.labels,
        "fmt": case.fmt,
        "frames": case.frames,
        "harness_error": None,
        "failed": False,
        "withheld_frames": 0,
        "false_redaction": [],
    }
    tokens: list[dict[str, Any]] = []
    negatives: list[dict[str, Any]] = []
    if len(fc) != case.frames or len(fp) != case.frames:
        image["harness_error"] = f"never renderings: clean {len(fc)}, planted {len(fp)} of {case.frames} frames"
        return {"image": image, "tokens": tokens, "negatives": negatives}
    failed = not (always and always.get("ok"))
    bit = ((always or {}).get("summary") or {}).get("burned_in_text") or {}
    withheld = int(bit.get("withheld_frames") or 0)
    image.update(
        failed=failed,
        withheld_frames=withheld,
        redacted_frames=bit.get("redacted_frames"),
        box_count=bit.get("box_count"),
        error=(always or {}).get("error"),
    )
    fa = [] if failed else frame_files(outs["always"], always)
    if not failed and len(fa) != case.frames:
        image["harness_error"] = f"always renderings: {len(fa)} of {case.frames} frames"
    image["renderings"] = {
        "never_clean": [str(x) for x in fc],
        "never": [str(x) for x in fp],
        "always": [str(x) for x in fa],
    }
    image["burned_in_text"] = bit
    for f in range(case.frames):
        p, c = _load(fp[f]), _load(fc[f])
        a = _load(fa[f]) if f < len(fa) else None
        if a is not None and a.shape != p.shape:
            image["harness_error"] = f"frame {f + 1}: always {a.shape} vs never {p.shape}"
            a = None
        gone = (
            failed
            or a is None
            or (withheld > 0 and (case.frames == 1 or withheld >= case.frames or _withheld_frame(a, p)))
        )
        frame_items = [it for it in case.items if it.frame == f]
        for it in frame_items:
            if it.role == "neu":
                continue
            s = score_item(it, p, c, a if a is not None else np.zeros_like(p))
            render = it.render + (["lowcontrast"] if s["contrast"] < LOW_CONTRAST else [])
            row = {
                "case": case.cid,
                "frame": f + 1,
                "text": it.text,
                "kind": it.kind,
                "form": it.form,
                "in_header": it.in_header,
                "render": render,
                "style": case.style,
                "labels": case.labels,
                "x": it.x,
                "y": it.y,
                "w": int(it.mask.shape[1]),
                "h": int(it.mask.shape[0]),
                **s,
            }
            if it.role == "id":
                if s["blacked"] is None:
                    row.update(removed=None, how="unscorable")
                elif failed:
                    row.update(removed=True, how="failed")
                elif gone:
                    row.update(removed=True, how="withheld")
                else:
                    row.update(removed=s["blacked"] >= REMOVED_SHARE, how="redaction")
                tokens.append(row)
            else:
                row.update(kept=None if s["blacked"] is None or gone else s["blacked"] < KEPT_SHARE, shown=not gone)
                negatives.append(row)
        if not gone and a is not None:
            fr, area = false_redaction(frame_items, p, a)
            image["false_redaction"].append(round(fr, 5))
            image.setdefault("area_px", []).append(area)
    return {"image": image, "tokens": tokens, "negatives": negatives}


# ----------------------------------------------------------------------------------------------------------------
# Report


def _rate(rows: list[dict[str, Any]], key: str) -> tuple[int, int]:
    scored = [r for r in rows if r.get(key) is not None]
    return sum(1 for r in scored if r[key]), len(scored)


def _fmt_rate(ok: int, n: int) -> str:
    return f"{ok / n:.3f} ({ok}/{n})" if n else "n/a"


def _groups(rows: list[dict[str, Any]], keyfn: Callable[[dict[str, Any]], list[str]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        for k in keyfn(r):
            out[k].append(r)
    return dict(sorted(out.items()))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)]


def report(
    seed: int, cases: list[Case], scored: list[dict[str, Any]], timing: dict[str, list[float]], overlaps: int
) -> dict[str, Any]:
    tokens = [t for s in scored for t in s["tokens"]]
    negs = [n for s in scored for n in s["negatives"]]
    images = [s["image"] for s in scored]
    frames = sum(c.frames for c in cases)
    ok, n = _rate(tokens, "removed")
    how = defaultdict(int)
    for t in tokens:
        how[t["how"]] += 1
    patient = [t for t in tokens if t["kind"] != "staff"]
    nk, nn = _rate([x for x in negs if x["shown"]], "kept")
    lost = sum(1 for x in negs if not x["shown"])
    frs = [v for im in images for v in im["false_redaction"]]
    withheld = [im for im in images if im["withheld_frames"] or im["failed"]]
    t_always = sum(timing["always"]) / max(frames, 1)
    t_never = sum(timing["never"]) / max(frames, 1)
    lines = [
        f"heldout_burned_in_e  seed {seed}: {len(cases)} images ({frames} frames), {len(tokens)} identifier tokens, "
        f"{len(negs)} negatives",
        f"  identifier tokens removed     {_fmt_rate(ok, n)}   [redaction {how['redaction']}, withheld "
        f"{how['withheld']}, failed {how['failed']}; unscorable {how['unscorable']}]",
        f"  patient identifiers (no staff) {_fmt_rate(*_rate(patient, 'removed'))}",
        f"  negatives kept (shown frames) {_fmt_rate(nk, nn)}   (+{lost} on withheld/failed frames)",
        f"  false redaction, shown frames median {statistics.median(frs) * 100 if frs else float('nan'):.2f}%  "
        f"p90 {_pct(frs, 0.9) * 100:.2f}%  max {max(frs, default=float('nan')) * 100:.2f}%  (n={len(frs)})",
        f"  withheld/failed images        {len(withheld)}: "
        + (
            ", ".join(
                f"{im['case']} {im['style']} ({im['withheld_frames']}/{im['frames']}"
                f"{' failed' if im['failed'] else ''})"
                for im in withheld
            )
            or "-"
        ),
        f"  seconds per image             always {t_always:.2f}  never {t_never:.2f}  "
        f"(x{t_always / max(t_never, 1e-9):.1f}; wall of each call / frames)",
        f"  harness: overlapping drawn items {overlaps}; harness errors "
        f"{sum(1 for im in images if im['harness_error'])}",
    ]
    tables = {
        "kind": _groups(tokens, lambda r: [r["kind"]]),
        "form": _groups(tokens, lambda r: [r["form"]]),
        "render": _groups(tokens, lambda r: list(r["render"]) + [x for x in r["labels"] if x == "jpeg"]),
        "style": _groups(tokens, lambda r: [r["style"]]),
        "header": _groups(tokens, lambda r: ["in_header" if r["in_header"] else "not_in_header"]),
    }
    for title, groups in tables.items():
        cells = [f"{k} {_fmt_rate(*_rate(v, 'removed'))}" for k, v in groups.items()]
        lines.append(f"  recall by {title}:")
        for i in range(0, len(cells), 3):
            lines.append("    " + " | ".join(cells[i : i + 3]))
    neg_groups = _groups([x for x in negs if x["shown"]], lambda r: [r["kind"]])
    cells = [f"{k} {_fmt_rate(*_rate(v, 'kept'))}" for k, v in neg_groups.items()]
    lines.append("  negatives kept by kind:")
    for i in range(0, len(cells), 3):
        lines.append("    " + " | ".join(cells[i : i + 3]))
    missed = defaultdict(list)
    for t in tokens:
        if t["removed"] is False:
            missed[t["case"]].append(t)
    worst = sorted(images, key=lambda im: (-len(missed[im["case"]]), -max(im["false_redaction"], default=0)))[:8]
    lines.append("  worst images (missed tokens; false redaction):")
    for im in worst:
        ms = missed[im["case"]]
        lines.append(
            f"    {im['case']} {im['style']:<11} {'/'.join(im['labels'][1:3]):<22} missed {len(ms):>2}: "
            f"{', '.join(sorted({m['kind'] + ':' + m['form'] for m in ms}))[:70]}  FR "
            f"{max(im['false_redaction'], default=0) * 100:.1f}%"
        )
    text = "\n".join(lines)
    print(text)
    return {
        "seed": seed,
        "images": len(cases),
        "frames": frames,
        "summary": text,
        "recall": ok / n if n else None,
        "tokens_scored": n,
        "negatives_kept": nk / nn if nn else None,
        "false_redaction_median": statistics.median(frs) if frs else None,
        "false_redaction_p90": _pct(frs, 0.9),
        "seconds_per_image": {"always": t_always, "never": t_never, "calls": timing},
        "image_rows": images,
        "token_rows": tokens,
        "negative_rows": negs,
    }


def redactor_fingerprint() -> dict[str, Any]:
    """Which code was measured: git HEAD, uncommitted changes under assistant/, a hash of assistant/imaging's bytes."""
    import hashlib

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    digest = hashlib.sha256()
    for path in sorted((ROOT / "assistant" / "imaging").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    dirty = [line[3:] for line in git("status", "--porcelain", "assistant").splitlines()]
    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "dirty": dirty,
        "imaging_sha256": digest.hexdigest()[:16],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seed", type=int, default=9109)
    ap.add_argument("--work", type=Path, required=True, help="folder for the cases, renderings and results.json")
    ap.add_argument("--images", type=int, default=50, help="how many cases (of 50) to make")
    args = ap.parse_args(argv)
    work: Path = args.work
    for sub in ("cases", "out", "data"):
        shutil.rmtree(work / sub, ignore_errors=True)
    (work / "cases").mkdir(parents=True)
    t0 = time.perf_counter()
    before = redactor_fingerprint()
    cases = build_cases(args.seed, max(1, min(args.images, 50)), work / "cases")
    overlaps = sum(overlapping_items(c) for c in cases)
    print(f"made {len(cases)} cases in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    rows: dict[str, dict[str, dict[str, Any]]] = {"never_clean": {}, "never": {}, "always": {}}
    outs = {m: work / "out" / m for m in rows}
    timing: dict[str, list[float]] = {"never_clean": [], "never": [], "always": []}
    per_case_out: dict[str, dict[str, Path]] = {}
    for k, group in enumerate(chunks(cases)):
        for tag, mode, attr in (
            ("never_clean", "never", "clean"),
            ("never", "never", "planted"),
            ("always", "always", "planted"),
        ):
            out = outs[tag] / f"call{k:02d}"
            got, wall, err = run_ingest([getattr(c, attr) for c in group], mode, out, work / "data" / f"{tag}{k:02d}")
            rows[tag].update(got)
            timing[tag].append(round(wall, 3))
            if not got:
                print(f"call {k} {tag}: no JSON rows; stderr: {err}", file=sys.stderr)
            for c in group:
                per_case_out.setdefault(c.cid, {})[tag] = out
        print(
            f"call {k + 1}: {len(group)} files, always {timing['always'][-1]:.1f}s, "
            f"never {timing['never'][-1]:.1f}s  ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
        )
    scored = [score_case(c, rows, per_case_out[c.cid]) for c in cases]
    result = report(args.seed, cases, scored, timing, overlaps)
    after = redactor_fingerprint()
    changed = before["imaging_sha256"] != after["imaging_sha256"] or before["head"] != after["head"]
    print(
        f"  measured: HEAD {after['head']}, uncommitted {', '.join(after['dirty']) or 'none'}; assistant/imaging "
        f"sha256 {after['imaging_sha256']}"
        + ("  ** CHANGED DURING THE RUN: the calls measured different code **" if changed else "")
    )
    result["redactor"] = {"before": before, "after": after, "changed_during_run": changed}
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    (work / "results.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    print(f"wrote {work / 'results.json'} ({result['wall_seconds']}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
