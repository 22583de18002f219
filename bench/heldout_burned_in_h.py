"""Blind held-out benchmark H for burned-in text redaction (issue #16), driven through the CLI only.

Each case is an image with synthetic identifiers drawn into its pixels and a clean twin (the same pixels
without any text). Every case is ingested three times, each in a fresh temporary data dir:
``always`` on the image (scored), ``never`` on the image and ``never`` on the clean twin (ink masks:
a token's ink is the rendered difference image - twin under its glyph mask).

Scoring (kept identical to the earlier held-out sets so the numbers compare):

* an identifier token is removed when >= 95 % of its ink pixels are black (<= 8 in every channel) in the
  ``always`` rendering, or its frame was withheld (absent or a flat placeholder), or the file failed
  ingest (failures are counted apart too); a token darker than its surroundings (dark text on a light
  page) is tested on the light pixels of its box instead of its ink;
* a negative (L/R, measurements, technical parameters, view labels, ruler digits) is kept when < 50 % of
  its ink is black;
* false redaction: share of the visible non-text area (outside every drawn box + 4 px) black in
  ``always`` but not in ``never``, per shown frame;
* time: wall time per ingest call, ``always`` vs ``never``.

The mix (about 50 images, 300-400 identifier tokens): ultrasound in three vendor-like layouts (header
block, header bar + side panel, multi-frame cine), viewer and reporting-system screenshots (dense 9-13 px
UI text, ClearType-like colour fringes), portable CR and extremity DX with tech labels, inverted label
boxes and rotated edge labels, XA/fluoroscopy with overlays, scanned requisitions and handwritten
worksheets (skew, JPEG, low contrast, handwriting-like glyphs), CT dose screens, dermatology and
endoscopy photographs with date stamps, MR montages and CT with text over anatomy, and conference
slides with large titles. Identities are invented. DICOM headers agree with the drawn text, name
another patient, or were blanked upstream; Burned In Annotation is YES, NO or absent.

Official seed: 4271 (scored once by the lead; never used while writing this file) - run:
    .venv/bin/python -m bench.heldout_burned_in_h --seed 4271 --work /tmp/heldout_h --jobs 2
Debug runs: --seed 1 --images 10 --jobs 1 (or other small seeds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
RADASSIST = ROOT / ".venv" / "bin" / "radassist"
SHARED = Path(os.environ.get("RADASSIST_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
DICOM_DIR = SHARED / "dicom"
VQA_DIR = SHARED / "vqa_rad" / "images"
TIMEOUT_S = 600
BLACK = 8  # a pixel is black when every channel is <= this
REMOVED_FRAC = 0.95
KEPT_FRAC = 0.5
BOX_MARGIN = 4

# ----------------------------------------------------------------------------------------------- fonts

_DJ = Path("/usr/share/fonts/truetype/dejavu")
_GR = next(iter(sorted((ROOT / ".venv" / "lib").glob("python3*/site-packages/gradio/templates/frontend"))), Path("/x"))
_GF = _GR / "static" / "fonts"
_KX = _GR / "assets"

FONT_FILES: dict[str, Path] = {
    "sans": _DJ / "DejaVuSans.ttf",
    "sans_b": _DJ / "DejaVuSans-Bold.ttf",
    "sans_c": _DJ / "DejaVuSansCondensed.ttf",
    "sans_cb": _DJ / "DejaVuSansCondensed-Bold.ttf",
    "sans_xl": _DJ / "DejaVuSans-ExtraLight.ttf",
    "sans_o": _DJ / "DejaVuSans-Oblique.ttf",
    "mono": _DJ / "DejaVuSansMono.ttf",
    "mono_b": _DJ / "DejaVuSansMono-Bold.ttf",
    "serif": _DJ / "DejaVuSerif.ttf",
    "serif_b": _DJ / "DejaVuSerif-Bold.ttf",
    "serif_i": _DJ / "DejaVuSerif-Italic.ttf",
    "serif_c": _DJ / "DejaVuSerifCondensed.ttf",
    "serif_cb": _DJ / "DejaVuSerifCondensed-Bold.ttf",
    "plex_sans": _GF / "IBMPlexSans" / "IBMPlexSans-Regular.woff2",
    "plex_sans_b": _GF / "IBMPlexSans" / "IBMPlexSans-Bold.woff2",
    "plex_mono": _GF / "IBMPlexMono" / "IBMPlexMono-Regular.woff2",
    "plex_mono_b": _GF / "IBMPlexMono" / "IBMPlexMono-Bold.woff2",
    "inconsolata": _GF / "Inconsolata" / "Inconsolata-Regular.woff2",
    "inconsolata_b": _GF / "Inconsolata" / "Inconsolata-Bold.woff2",
    "montserrat": _GF / "Montserrat" / "Montserrat-Regular.woff2",
    "montserrat_b": _GF / "Montserrat" / "Montserrat-Bold.woff2",
    "quicksand": _GF / "Quicksand" / "Quicksand-Regular.woff2",
    "source_sans": _GF / "SourceSansPro" / "SourceSansPro-Regular.woff2",
    "source_sans_b": _GF / "SourceSansPro" / "SourceSansPro-Bold.woff2",
    "share_mono": _GF / "ShareTechMono" / "ShareTechMono-Regular.woff2",
    "cm_serif": _KX / "KaTeX_Main-Regular-ypZvNtVU.ttf",
    "cm_bold": _KX / "KaTeX_Main-Bold-waoOVXN0.ttf",
    "cm_italic": _KX / "KaTeX_Main-Italic-3WenGoN9.ttf",
    "typewriter": _KX / "KaTeX_Typewriter-Regular-D3Ib7_Hf.ttf",
    "script": _KX / "KaTeX_Script-Regular-C5JkGWo-.ttf",
}
_FALLBACK = {"mono": "mono", "inconsolata": "mono", "share_mono": "mono", "typewriter": "mono", "plex_mono": "mono",
             "serif": "serif", "cm_": "serif", "script": "serif_i"}
UI_FONTS = ["sans", "sans_c", "plex_sans", "source_sans", "montserrat", "quicksand", "cm_serif"]
MONO_FONTS = ["mono", "mono_b", "plex_mono", "inconsolata", "share_mono", "typewriter", "inconsolata_b"]
BOLD_FONTS = ["sans_b", "sans_cb", "serif_b", "serif_cb", "montserrat_b", "plex_sans_b", "source_sans_b", "cm_bold"]


def _fallback_name(name: str) -> str:
    for prefix, fb in _FALLBACK.items():
        if name.startswith(prefix):
            return fb
    return "sans"


@lru_cache(maxsize=512)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    path = FONT_FILES.get(name)
    if path is None or not path.exists():
        path = FONT_FILES[_fallback_name(name)]
    return ImageFont.truetype(str(path), size)


@lru_cache(maxsize=4096)
def _covers(name: str, text: str) -> bool:
    """True when the font draws every visible character of text (no .notdef box, no empty glyph)."""
    font = _font(name, 24)
    notdef = font.getmask("\U000f0000")
    nd_bytes = bytes(notdef)
    for ch in set(text):
        if ch.isspace():
            continue
        mask = font.getmask(ch)
        if mask.getbbox() is None or (mask.size == notdef.size and bytes(mask) == nd_bytes):
            return False
    return True


def pick_font(name: str, text: str) -> str:
    """The requested font, or its DejaVu fallback when it lacks a glyph of text."""
    if FONT_FILES.get(name, Path("/x")).exists() and _covers(name, text):
        return name
    fb = _fallback_name(name)
    return fb if _covers(fb, text) else "sans"


# ----------------------------------------------------------------------------------------------- canvas


@dataclass
class Mark:
    """One drawn text item: an identifier token (phi), a negative (neg) or a neutral label."""

    frame: int
    role: str
    kind: str
    text: str
    x0: int
    y0: int
    alpha: np.ndarray  # (h, w) float32 0..1, the glyph mask incl. outline/shadow
    size_px: int
    font: str
    style: str
    bg: str


class Canvas:
    """A frame drawn twice: ``clean`` (layout + anatomy) and ``text`` (clean + every mark)."""

    def __init__(self, base: np.ndarray) -> None:
        if base.ndim == 2:
            base = np.repeat(base[:, :, None], 3, axis=2)
        self.clean = base.astype(np.float32).copy()  # (H, W, 3) 0..255
        self.text = self.clean.copy()
        self.marks: list[Mark] = []

    @property
    def h(self) -> int:
        return int(self.clean.shape[0])

    @property
    def w(self) -> int:
        return int(self.clean.shape[1])

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: tuple[float, ...]) -> None:
        for arr in (self.clean, self.text):
            arr[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = np.asarray(color, np.float32)[:3]

    def outline(self, x0: int, y0: int, x1: int, y1: int, color: tuple[float, ...], width: int = 1) -> None:
        self.rect(x0, y0, x1, y0 + width, color)
        self.rect(x0, y1 - width, x1, y1, color)
        self.rect(x0, y0, x0 + width, y1, color)
        self.rect(x1 - width, y0, x1, y1, color)

    def paste(self, img: np.ndarray, x: int, y: int, mask: np.ndarray | None = None) -> None:
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        h, w = img.shape[:2]
        x1, y1 = min(self.w, x + w), min(self.h, y + h)
        if x1 <= x or y1 <= y:
            return
        part = img[: y1 - y, : x1 - x].astype(np.float32)
        for arr in (self.clean, self.text):
            if mask is None:
                arr[y:y1, x:x1] = part
            else:
                m = mask[: y1 - y, : x1 - x, None].astype(np.float32)
                arr[y:y1, x:x1] = arr[y:y1, x:x1] * (1 - m) + part * m

    def composite(self, x: int, y: int, alpha: np.ndarray, color: tuple[float, ...]) -> None:
        """Blend color into the text layer under alpha ((h, w) or per-channel (h, w, 3)) at x, y."""
        h, w = alpha.shape[:2]
        sx0, sy0 = max(0, -x), max(0, -y)
        dx0, dy0 = max(0, x), max(0, y)
        dx1, dy1 = min(self.w, x + w), min(self.h, y + h)
        if dx1 <= dx0 or dy1 <= dy0:
            return
        a = alpha[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0].astype(np.float32)
        if a.ndim == 2:
            a = a[:, :, None]
        col = np.asarray(color, np.float32)[:3]
        region = self.text[dy0:dy1, dx0:dx1]
        self.text[dy0:dy1, dx0:dx1] = region * (1 - a) + col * a

    def apply(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        """Apply the same pixel operation to both layers (noise, tone curves)."""
        self.clean = fn(self.clean)
        self.text = fn(self.text)

    def rotate(self, angle: float, fill: tuple[float, ...]) -> None:
        """Rotate both layers and every mark about the centre (a page skewed on the scanner)."""
        fc = tuple(int(v) for v in fill[:3])
        for attr in ("clean", "text"):
            img = Image.fromarray(np.clip(getattr(self, attr), 0, 255).astype(np.uint8))
            out = img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=fc)
            setattr(self, attr, np.asarray(out).astype(np.float32))
        for mk in self.marks:
            full = np.zeros((self.h, self.w), np.float32)
            _blit_max(full, mk.x0, mk.y0, mk.alpha)
            rot = np.asarray(Image.fromarray(full, mode="F").rotate(angle, resample=Image.Resampling.BILINEAR))
            ys, xs = np.nonzero(rot > 0.02)
            if len(xs) == 0:
                mk.alpha = np.zeros((1, 1), np.float32)
                continue
            mk.x0, mk.y0 = int(xs.min()), int(ys.min())
            mk.alpha = rot[mk.y0:ys.max() + 1, mk.x0:xs.max() + 1].copy()


def _blit_max(dst: np.ndarray, x: int, y: int, src: np.ndarray) -> None:
    h, w = src.shape[:2]
    sx0, sy0 = max(0, -x), max(0, -y)
    dx0, dy0 = max(0, x), max(0, y)
    dx1, dy1 = min(dst.shape[1], x + w), min(dst.shape[0], y + h)
    if dx1 > dx0 and dy1 > dy0:
        part = src[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
        dst[dy0:dy1, dx0:dx1] = np.maximum(dst[dy0:dy1, dx0:dx1], part)


@dataclass
class Style:
    font: str = "sans"
    size: int = 14
    color: tuple[float, ...] = (255, 255, 255)
    stroke: int = 0
    stroke_color: tuple[float, ...] = (0, 0, 0)
    shadow: int = 0
    shadow_color: tuple[float, ...] = (0, 0, 0)
    cleartype: bool = False
    hand: bool = False
    angle: float = 0.0
    bg: str = "flat"

    def tags(self) -> str:
        parts = [n for n, on in (("outline", self.stroke), ("shadow", self.shadow), ("cleartype", self.cleartype),
                                 ("hand", self.hand), ("rotated", abs(self.angle) > 1)) if on]
        return "+".join(parts) or "plain"


def _render_runs(text: str, st: Style, font_name: str, rng: random.Random) -> tuple[list[np.ndarray], int, int]:
    """Per word alpha masks (fill only) in one common patch, plus the patch padding and baseline width."""
    font = _font(font_name, st.size)
    asc, desc = font.getmetrics()
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    pad = st.stroke + st.shadow + 4
    width = int(math.ceil(font.getlength(text) * (1.3 if st.hand else 1.0))) + 2 * pad + 2
    height = asc + desc + 2 * pad + (6 if st.hand else 0)
    masks: list[np.ndarray] = []
    if st.hand:
        xpos = float(pad)
        char_x: list[float] = []
        char_jit: list[tuple[float, float, float]] = []
        for ch in text:
            char_x.append(xpos)
            scale = 1 + rng.uniform(-0.08, 0.1)
            char_jit.append((scale, rng.uniform(-7, 7), rng.uniform(-1.5, 1.5) * st.size / 20))
            xpos += font.getlength(ch) * scale * rng.uniform(0.95, 1.12)
        for start, word in words:
            img = np.zeros((height, width), np.float32)
            for i, ch in enumerate(word):
                scale, rot, dy = char_jit[start + i]
                f2 = _font(font_name, max(6, int(round(st.size * scale))))
                box = int(st.size * 2.2)
                cimg = Image.new("L", (box, box), 0)
                ImageDraw.Draw(cimg).text((box // 4, box // 4), ch, font=f2, fill=255)
                cimg = cimg.rotate(rot, resample=Image.Resampling.BICUBIC)
                arr = np.asarray(cimg, np.float32) / 255
                _blit_max(img, int(char_x[start + i]) - box // 4, pad + int(dy) - box // 4 + 3, arr)
            masks.append(img)
        return masks, pad, width
    for start, word in words:
        x = pad + font.getlength(text[:start])
        if st.cleartype:
            big = _font(font_name, st.size * 3)
            img3 = Image.new("L", (width * 3, height * 3), 0)
            ImageDraw.Draw(img3).text((x * 3, pad * 3), word, font=big, fill=255)
            a3 = np.asarray(img3, np.float32).reshape(height, 3, width * 3).mean(axis=1) / 255
            a3 = ndimage.convolve1d(a3, np.array([1, 2, 3, 2, 1], np.float32) / 9, axis=1, mode="constant")
            masks.append(np.stack([a3[:, 0::3], a3[:, 1::3], a3[:, 2::3]], axis=2).clip(0, 1))
        else:
            img = Image.new("L", (width, height), 0)
            ImageDraw.Draw(img).text((x, pad), word, font=font, fill=255)
            masks.append(np.asarray(img, np.float32) / 255)
    return masks, pad, width


def _grow(alpha: np.ndarray, radius: int) -> np.ndarray:
    """Alpha of the glyph with an outline of radius px (what a stroke adds)."""
    a = alpha if alpha.ndim == 2 else alpha.max(axis=2)
    img = Image.fromarray((a * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(2 * radius + 1))
    return np.asarray(img, np.float32) / 255


def _shift(alpha: np.ndarray, d: int) -> np.ndarray:
    a = alpha if alpha.ndim == 2 else alpha.max(axis=2)
    out = np.zeros_like(a)
    out[d:, d:] = a[:-d or None, :-d or None]
    return out


def _rot(a: np.ndarray, angle: float) -> np.ndarray:
    if abs(angle) < 0.01:
        return a
    if a.ndim == 3:
        return np.stack([_rot(a[:, :, c], angle) for c in range(3)], axis=2)
    img = Image.fromarray(a.astype(np.float32), mode="F")
    exact = abs(angle % 90) < 0.01
    if exact:
        transpose = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
        out = img.transpose(transpose[int(round(angle)) % 360])
    else:
        out = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return np.asarray(out, np.float32).clip(0, 1)


def put(cv: Canvas, frame: int, x: int, y: int, text: str, st: Style, role: str, kind: str,
        rng: random.Random) -> tuple[int, int]:
    """Draw text with its top-left at x, y; identifier text is recorded word by word. Returns (w, h)."""
    font_name = pick_font(st.font, text)
    runs, pad, _ = _render_runs(text, st, font_name, rng)
    if not runs:
        return 0, 0
    layers: list[tuple[list[np.ndarray], tuple[float, ...]]] = []
    if st.shadow:
        layers.append(([_shift(r, st.shadow) for r in runs], st.shadow_color))
    if st.stroke:
        layers.append(([_grow(r, st.stroke) for r in runs], st.stroke_color))
    layers.append((runs, st.color))
    unions = []
    for i in range(len(runs)):
        parts = [lay[0][i] if lay[0][i].ndim == 2 else lay[0][i].max(axis=2) for lay in layers]
        unions.append(np.maximum.reduce(parts))
    angle = st.angle
    ox, oy = x - pad, y - pad
    for alphas, color in layers:
        for a in alphas:
            cv.composite(ox, oy, _rot(a, angle), color)
    unions = [_rot(u, angle) for u in unions]
    if role == "phi":
        items = [(m.group(), u) for m, u in zip(re.finditer(r"\S+", text), unions, strict=True)]
    else:
        items = [(text, np.maximum.reduce(unions))]
    for word, u in items:
        word_role = role
        if role == "phi" and (not any(c.isalnum() for c in word) or word.strip(",.:") in NON_ID_WORDS):
            word_role = "neutral"  # titles and stamp words drawn with an identifier are not identifiers
        ys, xs = np.nonzero(u > 0.02)
        if len(xs) == 0:
            continue
        crop = u[ys.min():ys.max() + 1, xs.min():xs.max() + 1].copy()
        cv.marks.append(Mark(frame, word_role, kind, word, ox + int(xs.min()), oy + int(ys.min()), crop, st.size,
                             font_name, st.tags(), st.bg))
    full = np.maximum.reduce(unions)
    ys, xs = np.nonzero(full > 0.02)
    return (int(xs.max()) - pad + 1 if len(xs) else 0), (int(ys.max()) - pad + 1 if len(ys) else 0)


NON_ID_WORDS = {"Dr", "MD", "Case", "RECEIVED", "Viewer"}


def contrast_color(cv: Canvas, x: int, y: int, w: int, h: int, rng: random.Random) -> tuple[float, ...]:
    """A text grey that shows on the local background (dark on light film borders, light on dark)."""
    region = cv.clean[max(0, y):max(1, y + h), max(0, x):max(1, x + w)]
    bg = float(region.mean()) if region.size else 0.0
    if bg > 128:
        return rng.choice([(0, 0, 0), (30, 30, 30), (70, 70, 70)])
    return rng.choice([(255, 255, 255), (235, 235, 235), (190, 190, 190)])


def text_w(text: str, st: Style) -> int:
    return int(math.ceil(_font(pick_font(st.font, text), st.size).getlength(text)))


def line_h(st: Style) -> int:
    asc, desc = _font(st.font if st.font in FONT_FILES else "sans", st.size).getmetrics()
    return asc + desc


def field_line(cv: Canvas, frame: int, x: int, y: int, label: str, value: str, kind: str, st: Style,
               rng: random.Random, label_st: Style | None = None) -> int:
    """'Label: value' with the label neutral and the value an identifier; returns the width drawn."""
    w = 0
    if label:
        lst = label_st or st
        put(cv, frame, x, y, label, lst, "neutral", "label", rng)
        w = text_w(label + " ", lst)
    vw, _ = put(cv, frame, x + w, y, value, st, "phi", kind, rng)
    return w + vw


# ------------------------------------------------------------------------------------------- identities

GIVEN = ["Mary-Kate", "Siobhan", "Oluwaseun", "Xiaoqing", "Thị Lan", "Jürgen", "Ana Sofía", "Dmitri", "Priya",
         "Kwame", "Aoife", "Björn", "Fatima Zahra", "Hamid", "Chloé", "Mateus", "Yusuf", "Ingrid", "Rafael",
         "Keiko", "Anneliese", "Tomasz", "Lerato", "Giulia", "Hyun-woo", "Noor", "Élodie", "Sven", "Tiago",
         "Marisol", "Declan", "Zofia", "Oksana", "Babajide", "Rosalind", "Ignacio", "Wen-Jie", "Leilani"]
SURNAMES = ["O'Neil", "Ben-David", "Müller", "Nguyễn", "Okonkwo", "Łukasik", "Þórsdóttir", "Søndergaard",
            "García-Peña", "D'Amato", "Abdelrahman", "Parameswaran", "Van der Berg", "MacAllister", "Zhao",
            "Adeyemi", "Kowalczyk", "Fitzgerald-Hale", "Çelik", "Ishikawa", "Kovačević", "St. Clair", "Al-Harbi",
            "Papadopoulou", "Rautenbach", "Halvorsen", "Quiñones", "Oyelaran", "Brannigan", "Vasquez-Loría",
            "Thorne", "Delacroix", "Mbeki-Ross", "Haraldsen", "Yılmaz", "Achterberg", "Kalinowska", "Pemberton"]
CLINICIANS = ["Okafor", "Lindqvist", "Ramaswamy", "Beaumont", "Castellanos", "Whitcombe", "Nakagawa", "Ferreira",
              "Osei-Bonsu", "Drummond", "Hartmann", "Szabó", "Achebe", "Marchetti", "Kerrigan", "Petrović"]
INSTITUTIONS = ["St. Aldhelm General Hospital", "Riverside Imaging Ctr", "Klinikum Nordheide", "Hôpital Sainte-Odile",
                "Mercy Valley Medical Center", "Harborview Diagnostic", "Ospedale San Callisto",
                "Northgate Women's Clinic", "Lakeshore Regional", "Bellwether Children's Hospital",
                "Cedar Ridge Radiology", "Clínica Santa Irene", "Kingsmere NHS Trust", "Fjordheim Sykehus"]
STREETS = ["Larkspur Lane", "Old Mill Rd", "Quarry Hill Ave", "Rue des Tanneurs 14", "Wexford Close",
           "Calle Olivar", "Birchwood Crescent", "Harrow Way"]
TOWNS = ["Fairview, OH 45901", "Millbrook NY 12545", "Eastwick MA 02139", "Lowfield CA 95370", "Kettering NN15 6QT",
         "Ashby VT 05443"]


@dataclass
class Person:
    given: str
    surname: str
    sex: str
    dob: date
    mrn: str
    accession: str
    study: date
    phone: str
    address: str
    institution: str
    referrer: str
    operator: str


def _mrn(rng: random.Random) -> str:
    fmts: list[Callable[[], str]] = [
        lambda: f"{rng.randint(0, 99999999):08d}",
        lambda: f"A{rng.randint(10, 99)}-{rng.randint(100, 999)}-{rng.randint(100, 999)}",
        lambda: f"RX{rng.randint(1000000, 9999999)}",
        lambda: f"H{rng.randint(0, 9999):04d}-{rng.randint(10000, 99999)}",
        lambda: f"{rng.randint(100, 999)}.{rng.randint(100, 999)}.{rng.randint(100, 999)}",
        lambda: f"MRN{rng.randint(100000, 999999)}K",
        lambda: f"{rng.randint(1000000, 9999999)}",
    ]
    return rng.choice(fmts)()


def _accession(rng: random.Random, when: date) -> str:
    fmts: list[Callable[[], str]] = [
        lambda: f"{when:%y}CT{rng.randint(0, 9999999):07d}",
        lambda: f"E{rng.randint(1000000, 9999999)}",
        lambda: f"RAD-{when:%y%m}-{rng.randint(0, 99999):05d}",
        lambda: f"{rng.randint(10000000, 99999999)}",
        lambda: f"US{when:%Y%m%d}{rng.randint(100, 999)}",
    ]
    return rng.choice(fmts)()


def _phone(rng: random.Random) -> str:
    return rng.choice([f"(617) 555-{rng.randint(100, 199):04d}", f"+44 20 7946 {rng.randint(0, 999):04d}",
                       f"555-{rng.randint(100, 199):04d}", f"020 7946 {rng.randint(0, 999):04d}",
                       f"+1 312-555-{rng.randint(100, 199):04d}"])


def make_person(rng: random.Random) -> Person:
    study = date(2023, 1, 1) + timedelta(days=rng.randint(0, 1100))
    dob = date(1931, 1, 1) + timedelta(days=rng.randint(0, 32000))
    return Person(
        given=rng.choice(GIVEN), surname=rng.choice(SURNAMES), sex=rng.choice("FM"), dob=dob, mrn=_mrn(rng),
        accession=_accession(rng, study), study=study, phone=_phone(rng),
        address=f"{rng.randint(2, 980)} {rng.choice(STREETS)}, {rng.choice(TOWNS)}",
        institution=rng.choice(INSTITUTIONS), referrer=rng.choice(CLINICIANS),
        operator=rng.choice(["JMB", "K. Ødegaard", "T.R.", "LVarga", "S. Mwangi", "A. Pruitt", "hkw", "DMc"]))


def fmt_date(d: date, rng: random.Random) -> str:
    fmts = ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%y", "{day} %b %Y", "%Y%m%d", "%d-%b-%Y", "%b {day}, %Y",
            "%Y/%m/%d", "%d.%m.%Y", "%d-%b-%y"]
    f = rng.choice(fmts)
    out = d.strftime(f.replace("{day}", str(d.day)))
    return out.upper() if "%b" in f and rng.random() < 0.5 else out


def fmt_name(p: Person, rng: random.Random) -> str:
    style = rng.choice(["dicom", "comma", "given_first", "caps_comma", "initial"])
    if style == "dicom":
        return f"{p.surname}^{p.given}".upper().replace(" ", "^") if rng.random() < 0.5 else \
            f"{p.surname.upper()}^{p.given}"
    if style == "comma":
        return f"{p.surname}, {p.given}"
    if style == "caps_comma":
        return f"{p.surname.upper()}, {p.given.upper()}"
    if style == "initial":
        return f"{p.given[0]}. {p.surname}"
    return f"{p.given} {p.surname}"


def fmt_doctor(p: Person, rng: random.Random) -> str:
    return rng.choice([f"Dr. {p.referrer}", f"Dr {p.referrer.upper()}", f"{p.referrer}, MD",
                       f"Dr. {rng.choice('ABCDEFGHJKLMNPRSTW')}. {p.referrer}"])


# ------------------------------------------------------------------------------------------ base images


def _norm(a: np.ndarray, lo_p: float = 0.5, hi_p: float = 99.5) -> np.ndarray:
    lo, hi = np.percentile(a, [lo_p, hi_p])
    return ((a.astype(np.float32) - lo) / max(1e-6, hi - lo) * 255).clip(0, 255)


@lru_cache(maxsize=16)
def _dicom_display(rel: str) -> np.ndarray:
    ds = pydicom.dcmread(DICOM_DIR / rel)
    arr = ds.pixel_array
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr[0] if arr.ndim == 3 else arr, ds)
        return (arr / max(1, arr.max()) * 255).astype(np.float32)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        if pi.startswith("YBR") and pi not in ("YBR_RCT", "YBR_ICT"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, pi, "RGB")
        return arr.astype(np.float32)
    if arr.ndim == 3:
        arr = arr[0]
    out = _norm(arr)
    return 255 - out if pi == "MONOCHROME1" else out


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BICUBIC)
                          ).clip(0, 255)
    return np.stack([_resize(a[:, :, c], w, h) for c in range(a.shape[2])], axis=2)


def base_echo() -> np.ndarray:
    return _dicom_display("pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm")[190:630, 175:745]


def base_doppler() -> np.ndarray:
    return _dicom_display("pydicom_data/US1_J2KR.dcm")[103:338, 66:574]


def base_chest_cr() -> np.ndarray:
    return _dicom_display("pydicom_data/RG1_UNCI.dcm")[40:, :]


def base_leg() -> np.ndarray:
    a = _dicom_display("pydicom_data/RG3_J2KR.dcm").copy()
    ring = np.concatenate([a[1340:1350, 1110:1250].ravel(), a[1500:1510, 1110:1250].ravel()])
    a[1350:1500, 1110:1250] = float(np.median(ring))  # paint out the film's own R marker
    return a


def base_mr(which: int) -> np.ndarray:
    # dcm_qa_ts/1.dcm is a Siemens mosaic: it serves as a header template only
    rel = ["pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm", "pydicom_data/MR2_J2KI.dcm"][which % 2]
    return _dicom_display(rel)


def base_ct() -> np.ndarray:
    return _dicom_display("pydicom_data/693_UNCI.dcm")


VQA_CHEST = [2, 3, 5, 6, 7, 9, 11, 14, 16, 19, 21, 22, 27, 36, 37, 47, 60, 66, 73, 79]
VQA_CT = [30, 31, 35, 39, 40, 41, 45, 46, 53, 54, 55, 56, 62, 72, 80, 82]
VQA_HEAD = [10, 13, 33, 88, 90]


@lru_cache(maxsize=8)
def _vqa_list() -> tuple[str, ...]:
    return tuple(sorted(p.name for p in VQA_DIR.iterdir()))


def base_vqa(idx: int, gray: bool = True) -> np.ndarray:
    """A VQA-RAD picture, centre-cropped to drop its corner labels and watermark."""
    names = _vqa_list()
    img = Image.open(VQA_DIR / names[idx % len(names)]).convert("L" if gray else "RGB")
    a = np.asarray(img, np.float32)
    h, w = a.shape[:2]
    return a[int(h * 0.1):int(h * 0.9), int(w * 0.1):int(w * 0.9)].copy()


def lowfreq(rng: np.random.Generator, h: int, w: int, cell: int = 48) -> np.ndarray:
    small = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    return _resize(small * 255, w, h) / 255


def speckle(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    n = rng.rayleigh(1.0, (h, w)).astype(np.float32)
    n = ndimage.gaussian_filter(n, 1.1)
    tissue = 0.5 + 0.6 * lowfreq(rng, h, w, 40)
    for _ in range(3):  # anechoic structures (vessels, cysts)
        cy, cx, ry, rx = rng.integers(0, h), rng.integers(0, w), rng.integers(10, 50), rng.integers(15, 70)
        yy, xx = np.ogrid[:h, :w]
        tissue[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] *= 0.15
    return (n * tissue * 95).clip(0, 255)


def sector_mask(h: int, w: int, half_angle: float = 38.0) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cx, cy = w / 2, -h * 0.08
    r = np.hypot(xx - cx, yy - cy)
    ang = np.degrees(np.arctan2(xx - cx, yy - cy))
    return ((np.abs(ang) < half_angle) & (r > h * 0.12) & (r < h * 1.05)).astype(np.float32)


def us_image(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    if kind == "echo":
        return _resize(base_echo(), w, h)
    if kind == "doppler":
        return _resize(base_doppler(), w, h)
    sp = speckle(rng, h, w)
    return np.repeat((sp * sector_mask(h, w))[:, :, None], 3, axis=2)


# -------------------------------------------------------------------------------------------- the cases


@dataclass
class CaseSpec:
    name: str
    rendering: str
    fmt: str  # dcm | png | jpg
    modality: str
    frames: list[Canvas]
    gray: bool = False
    source: str = ""  # shared DICOM whose header is the template
    sop_class: str = ""
    monochrome1: bool = False
    jpeg_quality: int = 90
    header_mode: str = "n/a"  # consistent | other_patient | blanked
    burned_in: str = "n/a"  # YES | NO | absent
    person: Person | None = None
    other: Person | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ctx:
    rng: random.Random
    nrng: np.random.Generator
    p: Person
    other: Person

    def ch(self, seq: Iterable[Any]) -> Any:
        return self.rng.choice(list(seq))

    def dt(self, d: date) -> str:
        return fmt_date(d, self.rng)

    def name(self, p: Person | None = None) -> str:
        return fmt_name(p or self.p, self.rng)


WHITE = (255, 255, 255)
US_COLORS = [(255, 255, 255), (230, 230, 230), (255, 235, 80), (120, 220, 255), (200, 200, 200), (140, 140, 140),
             (72, 72, 72)]


def _header(ctx: Ctx, spec: CaseSpec) -> CaseSpec:
    spec.header_mode = ctx.ch(["consistent", "consistent", "other_patient", "blanked", "blanked"])
    spec.burned_in = ctx.ch(["YES", "YES", "NO", "absent", "absent"])
    return spec


def _neg(cv: Canvas, f: int, x: int, y: int, text: str, st: Style, ctx: Ctx, kind: str = "annotation") -> int:
    w, _ = put(cv, f, x, y, text, st, "neg", kind, ctx.rng)
    return w


def _us_params(ctx: Ctx) -> list[str]:
    return ctx.rng.sample(["C5-1", "FR 30Hz", "Gain 50%", "2D", "DR 60", "16cm", "MI 1.1", "TIS 0.4", "P Low",
                           "HGen", "C 52", "PRF 2.5k", "WF 120Hz", "Gn 60", "3/3/4", "L12-5", "FR 47", "D 6.0 cm"], 6)


def case_us_header(ctx: Ctx, idx: int) -> CaseSpec:
    """Ultrasound with a header text block top left/right and a parameter column (GE/Siemens-like)."""
    w, h = ctx.ch([(800, 600), (1024, 768), (640, 480)])
    cv = Canvas(np.zeros((h, w, 3), np.float32))
    sw, sh = int(w * 0.62), int(h * 0.66)
    img = us_image(ctx.ch(["echo", "doppler", "synthetic"]), ctx.nrng, sh, sw)
    cv.paste(img, (w - sw) // 2, int(h * 0.15))
    size = ctx.ch([11, 12, 13, 14, 16])
    st = Style(font=ctx.ch(MONO_FONTS + UI_FONTS), size=size, color=ctx.ch(US_COLORS))
    lh = line_h(st) + 2
    y = 6
    opt = set(ctx.rng.sample(["institution", "dob", "accession", "operator"], 2))
    if "institution" in opt:
        put(cv, 0, 8, y, ctx.p.institution, st, "phi", "institution", ctx.rng)
        y += lh
    field_line(cv, 0, 8, y, "", ctx.name(), "name", st, ctx.rng)
    y += lh
    field_line(cv, 0, 8, y, ctx.ch(["ID:", "MRN", "PID:"]), ctx.p.mrn, "mrn", st, ctx.rng)
    y += lh
    if "dob" in opt:
        field_line(cv, 0, 8, y, ctx.ch(["DOB:", "Born", "GA 32w1d  DOB"]), ctx.dt(ctx.p.dob), "dob", st, ctx.rng)
    rx = w - 8 - max(text_w("00/00/0000 00:00:00", st), 150)
    put(cv, 0, rx, 6, ctx.dt(ctx.p.study), st, "phi", "date", ctx.rng)
    put(cv, 0, rx, 6 + lh, f"{ctx.rng.randint(7, 18):02d}:{ctx.rng.randint(0, 59):02d}:{ctx.rng.randint(0, 59):02d}",
        st, "neutral", "time", ctx.rng)
    if "accession" in opt:
        field_line(cv, 0, rx, 6 + 2 * lh, "Acc", ctx.p.accession, "accession", st, ctx.rng)
    y = int(h * 0.2)
    for t in _us_params(ctx):
        _neg(cv, 0, 8, y, t, st, ctx, "us_param")
        y += lh
    st_m = Style(font=st.font, size=size, color=(255, 255, 0) if ctx.rng.random() < 0.5 else WHITE)
    my = h - 3 * lh - 10
    for t in ctx.rng.sample(["Ao Diam 3.3 cm", "EF 55 %", "D1 2.41 cm", "Vol 12.4 ml", "RI 0.62", "PSV 84 cm/s"], 2):
        _neg(cv, 0, w - text_w(t, st_m) - 14, my, t, st_m, ctx, "measurement")
        my += lh
    if "operator" in opt:
        field_line(cv, 0, 8, h - lh - 6, ctx.ch(["Sonographer:", "Op:", "RDMS"]), ctx.p.operator, "operator", st,
                   ctx.rng)
    label = Style(font=ctx.ch(BOLD_FONTS), size=size + 4, color=WHITE, bg="anatomy")
    _neg(cv, 0, w // 2 - 40, int(h * 0.15) + sh - 30, ctx.ch(["RT KIDNEY LONG", "LIVER", "GB", "THYROID LT TRV"]),
         label, ctx, "view_label")
    return _header(ctx, CaseSpec(f"{idx:02d}_us_header", "us_header", "dcm", "US", [cv],
                                 source="pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm"))


def case_us_bar(ctx: Ctx, idx: int) -> CaseSpec:
    """Ultrasound with a coloured header bar (one dense line) and a right measurement panel (Philips-like)."""
    w, h = ctx.ch([(1024, 768), (800, 600), (1280, 960)])
    cv = Canvas(np.zeros((h, w, 3), np.float32))
    bar_h = ctx.ch([24, 28, 34])
    bar_col = ctx.ch([(18, 36, 92), (60, 60, 66), (0, 70, 80)])
    cv.rect(0, 0, w, bar_h, bar_col)
    panel_w = int(w * 0.2)
    cv.rect(w - panel_w, bar_h, w, h, (34, 34, 40))
    sw, sh = int(w * 0.66), int(h * 0.74)
    cv.paste(us_image(ctx.ch(["echo", "doppler", "synthetic"]), ctx.nrng, sh, sw), 20, bar_h + 20)
    size = ctx.ch([10, 11, 12, 13])
    st = Style(font=ctx.ch(UI_FONTS), size=size, color=ctx.ch([WHITE, (255, 230, 120), (200, 220, 255)]),
               cleartype=ctx.rng.random() < 0.3)
    y = (bar_h - line_h(st)) // 2
    x = 8
    gap = text_w("    ", st)
    for text, kind in [(ctx.name(), "name"), (ctx.p.mrn, "mrn"), (ctx.dt(ctx.p.dob), "dob"),
                       (ctx.dt(ctx.p.study), "date"), (ctx.p.institution, "institution")]:
        if kind in ("dob", "institution") and ctx.rng.random() < 0.5:
            continue
        ww, _ = put(cv, 0, x, y, text, st, "phi", kind, ctx.rng)
        x += ww + gap
    pst = Style(font=st.font, size=size, color=(220, 220, 220))
    px, py = w - panel_w + 8, bar_h + 10
    lh = line_h(pst) + 3
    meas = ["Measurements", "Dist 1.82 cm", "Dist 0.94 cm", "Area 3.1 cm2", "HR 72 bpm", "S/D 2.9"]
    for t in meas[: ctx.rng.randint(3, 6)]:
        _neg(cv, 0, px, py, t, pst, ctx, "measurement")
        py += lh
    py += lh
    if ctx.rng.random() < 0.5:
        put(cv, 0, px, py, "Ref:", pst, "neutral", "label", ctx.rng)
        py += lh
        put(cv, 0, px, py, fmt_doctor(ctx.p, ctx.rng), pst, "phi", "physician", ctx.rng)
    else:
        field_line(cv, 0, px, py, "Op:", ctx.p.operator, "operator", pst, ctx.rng)
    cal = Style(font="sans", size=size + 1, color=(255, 255, 0), bg="anatomy")
    _neg(cv, 0, 20 + sw // 2, bar_h + 20 + sh // 2, ctx.ch(["+ 1.82 cm", "x 0.94 cm", "D 2.4 cm"]), cal, ctx,
         "measurement")
    return _header(ctx, CaseSpec(f"{idx:02d}_us_bar", "us_bar", "dcm", "US", [cv],
                                 source="pydicom_data/US1_J2KR.dcm"))


def case_us_cine(ctx: Ctx, idx: int) -> CaseSpec:
    """Multi-frame ultrasound cine: the same header on every frame, a frame counter that changes."""
    w, h = ctx.ch([(640, 480), (800, 600)])
    n = ctx.ch([2, 3])
    size = ctx.ch([11, 12, 14])
    st = Style(font=ctx.ch(MONO_FONTS), size=size, color=ctx.ch(US_COLORS[:4]))
    name, mrn, day = ctx.name(), ctx.p.mrn, ctx.dt(ctx.p.study)
    frames = []
    base = speckle(ctx.nrng, int(h * 0.7), int(w * 0.7))
    for f in range(n):
        cv = Canvas(np.zeros((h, w, 3), np.float32))
        moved = np.roll(base, shift=(f * 3, f * 2), axis=(0, 1)) * sector_mask(*base.shape)
        cv.paste(moved, int(w * 0.15), int(h * 0.14))
        lh = line_h(st) + 2
        put(cv, f, 6, 4, name, st, "phi", "name", ctx.rng)
        put(cv, f, 6, 4 + lh, mrn, st, "phi", "mrn", ctx.rng)
        put(cv, f, w - text_w(day, st) - 8, 4, day, st, "phi", "date", ctx.rng)
        _neg(cv, f, w - 90, h - lh - 4, f"Frm {f + 1}/{n * 12}", st, ctx, "frame_counter")
        _neg(cv, f, 6, h // 2, ctx.ch(["FR 30Hz", "Gain 50%", "ML 3.4"]), st, ctx, "us_param")
        frames.append(cv)
    spec = CaseSpec(f"{idx:02d}_us_cine", "us_cine", "dcm", "US", frames,
                    source="pydicom_data/OBXXXX1A_rle_2frame.dcm", sop_class="1.2.840.10008.5.1.4.1.1.3.1")
    return _header(ctx, spec)


def _viewport_image(ctx: Ctx, w: int, h: int) -> np.ndarray:
    pick = ctx.ch(["ct", "vqa_ct", "chest", "mr"])
    if pick == "ct":
        src = base_ct()
    elif pick == "vqa_ct":
        src = base_vqa(ctx.ch(VQA_CT))
    elif pick == "chest":
        src = base_vqa(ctx.ch(VQA_CHEST))
    else:
        src = base_mr(ctx.rng.randint(0, 2))
    s = min(w / src.shape[1], h / src.shape[0])
    img = _resize(src, max(8, int(src.shape[1] * s)), max(8, int(src.shape[0] * s)))
    out = np.zeros((h, w), np.float32)
    oy, ox = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
    out[oy:oy + img.shape[0], ox:ox + img.shape[1]] = img
    return out


def case_viewer(ctx: Ctx, idx: int) -> CaseSpec:
    """A PACS viewer screenshot: worklist with other patients, title bar, four-corner overlays."""
    w, h = ctx.ch([(1280, 800), (1440, 900), (1366, 768)])
    cv = Canvas(np.full((h, w, 3), 30, np.float32))
    cv.rect(0, 0, w, 26, (52, 56, 64))
    cv.rect(0, 26, w, 58, (40, 42, 48))
    for i in range(12):
        cv.rect(10 + i * 34, 32, 36 + i * 34, 52, (70, 74, 84))
    list_w = ctx.ch([300, 340])
    cv.rect(0, 58, list_w, h, (24, 26, 30))
    vx, vy, vw, vh = list_w + 6, 64, w - list_w - 12, h - 70
    cv.paste(_viewport_image(ctx, vw, vh), vx, vy)
    ct = ctx.rng.random() < 0.5
    size = ctx.ch([9, 10, 11, 12])
    ui = Style(font=ctx.ch(["sans", "plex_sans", "source_sans", "sans_c"]), size=size, color=(225, 225, 230),
               cleartype=ct)
    tst = Style(font=ui.font, size=size + 1, color=WHITE, cleartype=ct)
    tx = 8
    for text, role, kind in [(ctx.name(), "phi", "name"), ("-", "neutral", "label"), (ctx.p.mrn, "phi", "mrn"),
                             ("- Viewer", "neutral", "label")]:
        put(cv, 0, tx, 6, text, tst, role, kind, ctx.rng)
        tx += text_w(text + " ", tst)
    lh = line_h(ui) + 6
    y = 64
    cols = [6, 6 + int(list_w * 0.45), 6 + int(list_w * 0.72)]
    for c, lab in zip(cols, ["Patient", "MRN", "DOB"], strict=True):
        put(cv, 0, c, y, lab, ui, "neutral", "label", ctx.rng)
    y += lh
    people = [ctx.p] + [make_person(ctx.rng) for _ in range(ctx.rng.randint(1, 2))]
    for i, pp in enumerate(people):
        if i == 0:
            cv.rect(0, y - 3, list_w, y + lh - 3, (40, 70, 120))
        nm = f"{pp.surname.upper()}, {pp.given[0]}"
        put(cv, 0, cols[0], y, nm, ui, "phi", "name", ctx.rng)
        put(cv, 0, cols[1], y, pp.mrn, ui, "phi", "mrn", ctx.rng)
        put(cv, 0, cols[2], y, pp.dob.strftime(ctx.ch(["%d.%m.%Y", "%m/%d/%Y", "%Y%m%d"])), ui, "phi", "dob", ctx.rng)
        y += lh
    ov = Style(font=ctx.ch(["sans", "mono", "plex_sans", "sans_c"]), size=ctx.ch([10, 11, 12, 13]),
               color=ctx.ch([(240, 240, 240), (255, 255, 150), (150, 230, 255)]), cleartype=ct,
               shadow=1 if ctx.rng.random() < 0.4 else 0)
    olh = line_h(ov) + 2
    x0, y0 = vx + 6, vy + 6
    put(cv, 0, x0, y0, ctx.name(), ov, "phi", "name", ctx.rng)
    field_line(cv, 0, x0, y0 + olh, "ID:", ctx.p.mrn, "mrn", ov, ctx.rng)
    if ctx.rng.random() < 0.5:
        field_line(cv, 0, x0, y0 + 2 * olh, "DOB:", ctx.dt(ctx.p.dob), "dob", ov, ctx.rng)
    rt = [ctx.dt(ctx.p.study)]
    kinds = ["date"]
    extra = ctx.ch(["institution", "accession"])
    rt.append(ctx.p.institution if extra == "institution" else ctx.p.accession)
    kinds.append(extra)
    for i, (t, k) in enumerate(zip(rt, kinds, strict=True)):
        put(cv, 0, vx + vw - text_w(t, ov) - 8, y0 + i * olh, t, ov, "phi", k, ctx.rng)
    negs = ctx.rng.sample(["Se: 3", "Im: 45/120", "W: 400 L: 40", "Thk 5.0 mm", "120 kV", "Zoom 1.3", "250 mAs",
                           "Tilt 0.0", "HFS"], 4)
    for i, t in enumerate(negs):
        _neg(cv, 0, x0, vy + vh - (len(negs) - i) * olh - 4, t, ov, ctx, "tech")
    _neg(cv, 0, vx + vw - 24, vy + vh // 2, ctx.ch(["L", "R", "A", "P"]), ov, ctx, "orientation")
    fmt = ctx.ch(["png", "dcm", "jpg"])
    spec = CaseSpec(f"{idx:02d}_viewer_sc", "viewer_screenshot", fmt, "OT", [cv],
                    source="pydicom_data/SC_rgb_2frame.dcm", sop_class="1.2.840.10008.5.1.4.1.1.7", jpeg_quality=92)
    return _header(ctx, spec) if fmt == "dcm" else spec


REPORT_LINES = [
    "FINDINGS: 4.2 cm hypoattenuating lesion in segment VII.",
    "No pleural effusion. Heart size normal.",
    "Impression: stable 8 mm RUL nodule, Fleischner category follow-up.",
    "Comparison: prior CT chest 12 months earlier.",
    "Technique: axial 1.25 mm, IV contrast 80 mL.",
    "Bosniak IIF cyst, left kidney, 2.3 cm.",
]


def case_report(ctx: Ctx, idx: int) -> CaseSpec:
    """A reporting-system screenshot: dark text on a light page, patient banner, signature and phone."""
    w, h = ctx.ch([(1280, 900), (1100, 800)])
    page = ctx.ch([(250, 250, 250), (236, 240, 245)])
    cv = Canvas(np.full((h, w, 3), page, np.float32))
    cv.rect(0, 0, w, 44, ctx.ch([(20, 60, 120), (0, 96, 100)]))
    cv.rect(0, 44, w, 110, (220, 224, 230))
    ct = ctx.rng.random() < 0.5
    hst = Style(font=ctx.ch(BOLD_FONTS), size=ctx.ch([18, 20, 24]), color=WHITE)
    put(cv, 0, 14, 10, ctx.p.institution, hst, "phi", "institution", ctx.rng)
    size = ctx.ch([11, 12, 13])
    dark = Style(font=ctx.ch(UI_FONTS), size=size,
                 color=ctx.ch([(20, 20, 20), (40, 40, 60), (90, 90, 90), (165, 168, 175)]),
                 cleartype=ct)
    lab = Style(font=dark.font, size=size, color=(100, 100, 110), cleartype=ct)
    x = 14
    banner = [("Patient:", ctx.name(), "name"), ("DOB:", ctx.dt(ctx.p.dob), "dob"), ("MRN:", ctx.p.mrn, "mrn"),
              ("Acc:", ctx.p.accession, "accession")]
    drop = ctx.ch(["dob", "accession"])
    for label, value, kind in banner:
        if kind != drop:
            x += field_line(cv, 0, x, 54, label, value, kind, dark, ctx.rng, lab) + 24
    x = 14
    if ctx.rng.random() < 0.5:
        x += field_line(cv, 0, x, 80, "Referring:", fmt_doctor(ctx.p, ctx.rng), "physician", dark, ctx.rng, lab) + 24
    field_line(cv, 0, x, 80, "Exam date:", ctx.dt(ctx.p.study), "date", dark, ctx.rng, lab)
    y = 130
    lh = line_h(dark) + 6
    for t in ctx.rng.sample(REPORT_LINES, 4):
        _neg(cv, 0, 24, y, t, dark, ctx, "report_text")
        y += lh
    y += lh
    field_line(cv, 0, 24, y, "Electronically signed by", f"{ctx.ch(CLINICIANS)}, MD", "physician", dark, ctx.rng, lab)
    y += lh
    field_line(cv, 0, 24, y, "Reading room:", ctx.p.phone, "phone", dark, ctx.rng, lab)
    if ctx.rng.random() < 0.3:
        y += lh
        field_line(cv, 0, 24, y, "Home address:", ctx.p.address, "address", dark, ctx.rng, lab)
    fmt = ctx.ch(["png", "jpg"])
    return CaseSpec(f"{idx:02d}_report_sc", "report_screenshot", fmt, "OT", [cv], jpeg_quality=ctx.ch([80, 92]))


def case_cr_portable(ctx: Ctx, idx: int) -> CaseSpec:
    """Portable chest film: tech label, big L/R marker, an inverted label box and a rotated edge label."""
    from_dicom = ctx.rng.random() < 0.6
    src = base_chest_cr() if from_dicom else base_vqa(ctx.ch(VQA_CHEST))
    scale = ctx.ch([0.5, 0.6, 0.75]) if from_dicom else 1.0
    img = _resize(src, int(src.shape[1] * scale), int(src.shape[0] * scale)) if scale != 1.0 else src
    cv = Canvas(img)
    h, w = cv.h, cv.w
    k = max(w, h) / 1000
    big = Style(font=ctx.ch(["sans_b", "serif_b", "sans_cb"]), size=int(ctx.ch([34, 44, 56]) * k), color=WHITE,
                bg="anatomy")
    _neg(cv, 0, int(w * 0.82), int(h * 0.08), ctx.ch(["L", "R"]), big, ctx, "marker")
    _neg(cv, 0, int(w * 0.05), int(h * 0.05), ctx.ch(["PORTABLE AP", "AP SUPINE", "UPRIGHT", "PA ERECT"]),
         Style(font="sans_b", size=int(22 * k), color=WHITE, bg="anatomy"), ctx, "view_label")
    inverted = ctx.rng.random() < 0.5
    size = int(ctx.ch([14, 16, 18, 22]) * k)
    st = Style(font=ctx.ch(["sans", "mono", "serif_cb", "sans_c", "typewriter"]), size=size,
               color=(15, 15, 15) if inverted else ctx.ch([WHITE, (210, 210, 210)]),
               bg="flat" if inverted else "anatomy", stroke=0 if inverted or ctx.rng.random() < 0.5 else 1)
    lines = [("", ctx.p.institution, "institution"), ("", ctx.name(), "name"), ("ID", ctx.p.mrn, "mrn"),
             ("", ctx.dt(ctx.p.study), "date"), ("Tech:", ctx.p.operator, "operator")]
    lines = [ln for ln in lines if ln[2] in ("name", "mrn") or ctx.rng.random() < 0.5]
    lh = line_h(st) + 3
    bw = max(text_w(f"{a} {b}", st) for a, b, _ in lines) + 16
    bx, by = int(w * 0.04), int(h * 0.78)
    if inverted:
        cv.rect(bx - 6, by - 6, bx + bw, by + lh * len(lines) + 6, (235, 235, 235))
    for i, (label, value, kind) in enumerate(lines):
        field_line(cv, 0, bx, by + i * lh, label, value, kind, st, ctx.rng)
    if ctx.rng.random() < 0.6:
        rx, ry = int(w * 0.965), int(h * 0.3)
        rst = Style(font=ctx.ch(["sans_c", "mono"]), size=int(15 * k), angle=90, bg="anatomy",
                    color=contrast_color(cv, rx - 30, ry, 50, int(h * 0.3), ctx.rng))
        put(cv, 0, rx, ry, ctx.p.institution, rst, "phi", "institution", ctx.rng)
        put(cv, 0, rx - line_h(rst) - 4, ry, ctx.p.accession, rst, "phi", "accession", ctx.rng)
    over = Style(font="sans", size=int(18 * k), color=WHITE, bg="anatomy", shadow=2)
    put(cv, 0, int(w * 0.55), int(h * 0.45), ctx.dt(ctx.p.study), over, "phi", "date", ctx.rng)
    if from_dicom:
        spec = CaseSpec(f"{idx:02d}_cr_portable", "cr_portable", "dcm", "CR", [cv], gray=True,
                        source="pydicom_data/RG1_UNCI.dcm", monochrome1=ctx.rng.random() < 0.6)
        return _header(ctx, spec)
    return CaseSpec(f"{idx:02d}_cr_portable", "cr_portable", ctx.ch(["png", "jpg"]), "CR", [cv], gray=True,
                    jpeg_quality=ctx.ch([75, 90]))


def case_dx_extremity(ctx: Ctx, idx: int) -> CaseSpec:
    """Extremity film: a label in the collimated black border (condensed bold serif) and a marker on bone."""
    src = base_leg()
    scale = ctx.ch([0.45, 0.6])
    cv = Canvas(_resize(src, int(src.shape[1] * scale), int(src.shape[0] * scale)))
    h, w = cv.h, cv.w
    size = ctx.ch([16, 20, 26, 32])
    x, y = int(w * 0.05), int(h * 0.05)
    st = Style(font=ctx.ch(["serif_cb", "sans_cb", "cm_bold", "montserrat_b"]), size=size,
               color=contrast_color(cv, x, y, int(w * 0.2), 3 * size, ctx.rng), bg="flat")
    lh = line_h(st) + 4
    put(cv, 0, x, y, ctx.name().upper() if ctx.rng.random() < 0.5 else ctx.name(), st, "phi", "name", ctx.rng)
    field_line(cv, 0, x, y + lh, "MRN", ctx.p.mrn, "mrn", st, ctx.rng)
    field_line(cv, 0, x, y + 2 * lh, "DOB", ctx.dt(ctx.p.dob), "dob", st, ctx.rng)
    put(cv, 0, x, h - 2 * lh, ctx.p.institution, Style(font=st.font, size=max(12, size - 6), color=st.color),
        "phi", "institution", ctx.rng)
    mx, my = int(w * 0.68), int(h * 0.72)
    _neg(cv, 0, mx, my, ctx.ch(["R", "L"]),
         Style(font="sans_b", size=44, color=contrast_color(cv, mx, my, 40, 44, ctx.rng), bg="flat"), ctx, "marker")
    _neg(cv, 0, int(w * 0.42), int(h * 0.35), ctx.ch(["AP", "LAT", "MORTISE"]),
         Style(font="sans_b", size=20, color=WHITE, bg="anatomy"), ctx, "view_label")
    ruler = Style(font="sans", size=11, color=contrast_color(cv, w - 60, int(h * 0.3), 40, 200, ctx.rng), bg="flat")
    for i in range(5):
        yy = int(h * 0.3) + i * 40
        cv.rect(w - 40, yy, w - 20, yy + 2, ruler.color)
        _neg(cv, 0, w - 58, yy - 6, str(i), ruler, ctx, "ruler_digit")
    over = Style(font="sans", size=18, color=(250, 250, 250), bg="anatomy", stroke=1)
    field_line(cv, 0, int(w * 0.35), int(h * 0.55), "Acc", ctx.p.accession, "accession", over, ctx.rng)
    spec = CaseSpec(f"{idx:02d}_dx_extremity", "dx_extremity", "dcm", "DX", [cv], gray=True,
                    source="pydicom_data/RG3_J2KR.dcm", sop_class="1.2.840.10008.5.1.4.1.1.1.1",
                    monochrome1=ctx.rng.random() < 0.5)
    return _header(ctx, spec)


def case_xa(ctx: Ctx, idx: int) -> CaseSpec:
    """Fluoroscopy/XA: circular field of view, white overlays on black, a label over the FOV; 1-2 frames."""
    size_px = ctx.ch([512, 768, 1024])
    src = base_chest_cr()
    crop = src[300:1300, 400:1400]
    n = ctx.ch([1, 2])
    frames = []
    st = Style(font=ctx.ch(["sans", "mono", "sans_c", "plex_mono"]), size=ctx.ch([11, 13, 15, 18]),
               color=ctx.ch([WHITE, (200, 200, 200), (120, 120, 120)]))
    name, mrn, dob, day = ctx.name(), ctx.p.mrn, ctx.dt(ctx.p.dob), ctx.dt(ctx.p.study)
    extra = ctx.ch(["dob", "institution", "operator"])
    for f in range(n):
        img = _resize(np.roll(crop, f * 12, axis=0), size_px, size_px)
        yy, xx = np.mgrid[:size_px, :size_px]
        img = 255 - img  # fluoroscopy shows bone dark
        img[np.hypot(yy - size_px / 2, xx - size_px / 2) > size_px * 0.46] = 0
        cv = Canvas(img)
        lh = line_h(st) + 2
        put(cv, f, 6, 6, name, st, "phi", "name", ctx.rng)
        put(cv, f, 6, 6 + lh, mrn, st, "phi", "mrn", ctx.rng)
        put(cv, f, size_px - text_w(day, st) - 8, 6, day, st, "phi", "date", ctx.rng)
        if extra == "dob":
            put(cv, f, 6, 6 + 2 * lh, dob, st, "phi", "dob", ctx.rng)
        elif extra == "institution":
            put(cv, f, 6, size_px - 2 * lh - 6, ctx.p.institution, st, "phi", "institution", ctx.rng)
        else:
            field_line(cv, f, 6, size_px - lh - 6, "Op", ctx.p.operator, "operator", st, ctx.rng)
        for i, t in enumerate(ctx.rng.sample(["LAO 30 CRA 20", "15 fps", f"Frame {f + 12}", "Mag 2", "kV 78 mA 5.2",
                                              "DAP 12.3 Gycm2", "RAO 15"], 3)):
            _neg(cv, f, size_px - 130, size_px - (3 - i) * lh - 6, t, st, ctx, "tech")
        lab = Style(font="sans_b", size=16, color=WHITE, shadow=2, bg="anatomy")
        put(cv, f, int(size_px * 0.35), int(size_px * 0.6), ctx.p.surname, lab, "phi", "name", ctx.rng)
        frames.append(cv)
    spec = CaseSpec(f"{idx:02d}_xa", "xa_fluoro", "dcm", "XA", frames, gray=True, source="pydicom_data/RG1_UNCI.dcm",
                    sop_class="1.2.840.10008.5.1.4.1.1.12.1")
    return _header(ctx, spec)


def _paper(ctx: Ctx, h: int, w: int, tone: float) -> np.ndarray:
    base = tone - 12 * lowfreq(ctx.nrng, h, w, 90) - ctx.nrng.normal(0, 2.5, (h, w)).astype(np.float32)
    return np.repeat(base[:, :, None], 3, axis=2) * np.array([1.0, 0.99, 0.95], np.float32)


def case_requisition(ctx: Ctx, idx: int) -> CaseSpec:
    """A scanned imaging requisition: printed form, typed and handwritten values, stamp, skew, JPEG."""
    w, h = 1000, 1300
    cv = Canvas(_paper(ctx, h, w, ctx.ch([246, 236, 226])))
    ink = ctx.ch([(30, 30, 35), (70, 70, 80), (110, 110, 118)])
    head = Style(font=ctx.ch(["serif_b", "cm_bold", "montserrat_b"]), size=ctx.ch([26, 30, 36]), color=ink)
    put(cv, 0, 60, 50, ctx.p.institution, head, "phi", "institution", ctx.rng)
    put(cv, 0, 60, 100, "DIAGNOSTIC IMAGING REQUEST", Style(font="sans_b", size=18, color=ink), "neutral", "label",
        ctx.rng)
    lab = Style(font=ctx.ch(["sans", "serif", "cm_serif"]), size=15, color=ink)
    typed = Style(font=ctx.ch(["typewriter", "mono", "cm_serif"]), size=ctx.ch([15, 17, 19]), color=(25, 25, 90))
    hand = Style(font=ctx.ch(["sans_o", "serif_i", "cm_italic"]), size=ctx.ch([20, 24, 28]),
                 color=ctx.ch([(20, 30, 110), (25, 25, 25), (60, 60, 160)]), hand=True)
    rows = [("Patient name", ctx.name(), "name"), ("Date of birth", ctx.dt(ctx.p.dob), "dob"),
            ("Hospital no.", ctx.p.mrn, "mrn"), ("Address", ctx.p.address, "address"),
            ("Telephone", ctx.p.phone, "phone"), ("Referring clinician", fmt_doctor(ctx.p, ctx.rng), "physician"),
            ("Appointment", ctx.dt(ctx.p.study), "date")]
    rows = [r for r in rows if r[2] in ("name", "dob", "mrn") or ctx.rng.random() < 0.4]
    y = 160
    for label, value, kind in rows:
        put(cv, 0, 60, y, label, lab, "neutral", "label", ctx.rng)
        cv.rect(250, y + 26, w - 60, y + 27, (150, 150, 150))
        st = hand if ctx.rng.random() < 0.45 else typed
        put(cv, 0, 260, y + (0 if st is typed else -6), value, st, "phi", kind, ctx.rng)
        y += 56
    y += 20
    for label, value in [("Examination", ctx.ch(["CT ABD/PELVIS W CONTRAST", "US RENAL", "MRI L-SPINE"])),
                         ("Clinical history", ctx.ch(["R/O appendicitis, WBC 14.2", "Flank pain 3/7", "LBP > 6 wk"])),
                         ("Allergies", "NKDA"), ("Creatinine", "88 umol/L"), ("Weight", "72 kg")]:
        put(cv, 0, 60, y, label, lab, "neutral", "label", ctx.rng)
        _neg(cv, 0, 260, y, value, typed, ctx, "clinical")
        y += 48
    stamp = Style(font="sans_b", size=24, color=(190, 40, 40), angle=ctx.rng.uniform(-12, 12), bg="textured")
    put(cv, 0, 560, y + 20, f"RECEIVED {ctx.p.study:%d %b %Y}".upper(), stamp, "phi", "date", ctx.rng)
    y += 80
    put(cv, 0, 60, y, ctx.ch(["KALINA", "J. PRUITT", ctx.p.operator]), hand, "phi", "operator", ctx.rng)
    if ctx.rng.random() < 0.5:  # faded photocopy: low contrast
        cv.apply(lambda a: 130 + a * 0.47)
    for mk in cv.marks:
        if mk.bg == "flat":
            mk.bg = "textured"
    cv.rotate(ctx.rng.uniform(-4, 4), fill=(30, 30, 30))
    gray = ctx.rng.random() < 0.5
    fmt = ctx.ch(["jpg", "jpg", "png", "dcm"])
    spec = CaseSpec(f"{idx:02d}_requisition", "scanned_requisition", fmt, "OT", [cv], gray=gray,
                    source="pydicom_data/SC_rgb_2frame.dcm" if not gray else "pydicom_data/JPEG-LL.dcm",
                    sop_class="1.2.840.10008.5.1.4.1.1.7", jpeg_quality=ctx.ch([55, 70, 85]))
    return _header(ctx, spec) if fmt == "dcm" else spec


def case_worksheet(ctx: Ctx, idx: int) -> CaseSpec:
    """A sonographer's handwritten worksheet: patient sticker, big handwritten name, handwritten measurements."""
    w, h = 900, 1150
    cv = Canvas(_paper(ctx, h, w, 244))
    for y in range(200, h - 40, 38):
        cv.rect(40, y, w - 40, y + 1, (170, 190, 220))
    cv.rect(520, 40, 860, 190, (252, 252, 252))
    cv.outline(520, 40, 860, 190, (120, 120, 120))
    sticker = Style(font=ctx.ch(["mono", "sans_c", "plex_mono"]), size=ctx.ch([12, 13, 14]), color=(20, 20, 20))
    lh = line_h(sticker) + 3
    put(cv, 0, 530, 50, f"{ctx.p.surname.upper()}, {ctx.p.given}", sticker, "phi", "name", ctx.rng)
    field_line(cv, 0, 530, 50 + lh, "MRN", ctx.p.mrn, "mrn", sticker, ctx.rng)
    field_line(cv, 0, 530, 50 + 2 * lh, "DOB", ctx.dt(ctx.p.dob), "dob", sticker, ctx.rng)
    if ctx.rng.random() < 0.35:
        put(cv, 0, 530, 50 + 3 * lh, ctx.p.address, sticker, "phi", "address", ctx.rng)
    for i in range(40):  # barcode on the sticker (layout, not text)
        if ctx.rng.random() < 0.55:
            cv.rect(530 + i * 7, 150, 533 + i * 7 + ctx.rng.randint(0, 2), 182, (10, 10, 10))
    title = Style(font=ctx.ch(["script", "serif_i", "sans_o"]), size=ctx.ch([34, 44, 56]), color=(20, 20, 110),
                  hand=True, bg="textured")
    big_name = f"{ctx.p.given} {ctx.p.surname}".upper()
    while title.size > 24 and text_w(big_name, title) * 1.25 > 450:
        title.size -= 4
    put(cv, 0, 50, 60, big_name, title, "phi", "name", ctx.rng)
    hand = Style(font=ctx.ch(["sans_o", "serif_i"]), size=ctx.ch([20, 24]), color=(25, 25, 120), hand=True,
                 bg="textured")
    y = 206
    for t in ctx.rng.sample(["RK 10.2 cm", "LK 10.8 cm", "CBD 4 mm", "GB wall 2 mm", "Spleen 11.4", "no ascites",
                             "Liver 15.1 cm", "PVR 40 ml"], 5):
        _neg(cv, 0, 70, y + 38 - 30, t, hand, ctx, "measurement")
        y += 76
    put(cv, 0, 520, 240, ctx.dt(ctx.p.study), hand, "phi", "date", ctx.rng)
    field_line(cv, 0, 520, 316, "", f"{ctx.p.operator}", "operator", hand, ctx.rng)
    if ctx.rng.random() < 0.35:
        put(cv, 0, 520, 392, ctx.p.phone, hand, "phi", "phone", ctx.rng)
    for mk in cv.marks:
        mk.bg = "textured"
    cv.rotate(ctx.rng.uniform(-3, 3), fill=(40, 40, 40))
    return CaseSpec(f"{idx:02d}_worksheet", "handwritten_worksheet", ctx.ch(["jpg", "png"]), "OT", [cv],
                    jpeg_quality=ctx.ch([60, 80]))


def case_dose(ctx: Ctx, idx: int) -> CaseSpec:
    """A CT dose report screen saved as secondary capture: monospaced table, patient header."""
    w, h = 512, 512
    cv = Canvas(np.zeros((h, w, 3), np.float32))
    st = Style(font=ctx.ch(["mono", "plex_mono", "inconsolata", "share_mono", "mono_b"]), size=ctx.ch([11, 12, 13]),
               color=ctx.ch([WHITE, (210, 210, 210)]))
    lh = line_h(st) + 3
    y = 14
    field_line(cv, 0, 10, y, "Patient Name:", ctx.name(), "name", st, ctx.rng)
    field_line(cv, 0, 10, y + lh, "Patient ID:", ctx.p.mrn, "mrn", st, ctx.rng)
    field_line(cv, 0, 10, y + 2 * lh, "Accession:", ctx.p.accession, "accession", st, ctx.rng)
    field_line(cv, 0, 10, y + 3 * lh, "Exam date:", ctx.dt(ctx.p.study), "date", st, ctx.rng)
    field_line(cv, 0, 10, y + 4 * lh, "Institution:", ctx.p.institution, "institution", st, ctx.rng)
    y += 6 * lh
    _neg(cv, 0, 10, y, "Series  Type     kV  mAs  CTDIvol  DLP", st, ctx, "dose_header")
    y += lh
    for row in ["1  Topogram   120   35     0.14    4.1", "2  Helical   120  210    12.31  456.2",
                "3  Helical   100  180     9.87  301.6", "Total DLP 762.0 mGy*cm"]:
        _neg(cv, 0, 10, y, row, st, ctx, "dose_value")
        y += lh
    field_line(cv, 0, 10, h - lh - 8, "Physician:", fmt_doctor(ctx.p, ctx.rng), "physician", st, ctx.rng)
    spec = CaseSpec(f"{idx:02d}_dose", "dose_report", "dcm", "CT", [cv], gray=ctx.rng.random() < 0.6,
                    source="pydicom_data/693_UNCI.dcm", sop_class="1.2.840.10008.5.1.4.1.1.7")
    return _header(ctx, spec)


def case_derm(ctx: Ctx, idx: int) -> CaseSpec:
    """Dermatology photograph: skin, lesion, ruler with digits, camera date stamp, handwritten label card."""
    w, h = ctx.ch([(1200, 900), (1024, 768)])
    skin = np.array(ctx.ch([(224, 180, 150), (170, 120, 90), (120, 80, 60)]), np.float32)
    tex = lowfreq(ctx.nrng, h, w, 60)[:, :, None]
    img = skin * (0.85 + 0.25 * tex) + ctx.nrng.normal(0, 4, (h, w, 1)).astype(np.float32)
    yy, xx = np.ogrid[:h, :w]
    cy, cx = h * 0.45, w * 0.45
    lesion = np.exp(-(((yy - cy) / 60) ** 2 + ((xx - cx) / 80) ** 2))[:, :, None]
    img = img * (1 - 0.6 * lesion) + np.array([70, 40, 35], np.float32) * 0.6 * lesion
    cv = Canvas(img.clip(0, 255))
    cv.rect(60, h - 120, 660, h - 80, (245, 245, 240))
    rul = Style(font="sans", size=12, color=(20, 20, 20), bg="flat")
    for i in range(7):
        cv.rect(70 + i * 90, h - 120, 72 + i * 90, h - 100, (20, 20, 20))
        _neg(cv, 0, 66 + i * 90, h - 98, str(i), rul, ctx, "ruler_digit")
    _neg(cv, 0, 600, h - 98, "cm", rul, ctx, "ruler_digit")
    stamp = Style(font=ctx.ch(["share_mono", "mono_b", "inconsolata_b"]), size=ctx.ch([22, 28, 34]),
                  color=(255, 150, 40), bg="anatomy", shadow=1 if ctx.rng.random() < 0.5 else 0,
                  shadow_color=(90, 40, 0))
    d = ctx.p.study
    stamp_text = ctx.ch([f"{d:%Y/%m/%d}", f"'{d:%y} {d.month} {d.day}", f"{d:%d.%m.%Y}"])
    sw = text_w(stamp_text, stamp)
    put(cv, 0, w - sw - 40, h - 60, stamp_text, stamp, "phi", "date", ctx.rng)
    cv.rect(w - 340, 30, w - 30, 170, (250, 250, 250))
    hand = Style(font=ctx.ch(["sans_o", "serif_i"]), size=ctx.ch([22, 26]), color=(10, 10, 60), hand=True)
    put(cv, 0, w - 330, 40, ctx.name(), hand, "phi", "name", ctx.rng)
    put(cv, 0, w - 330, 80, ctx.p.mrn, hand, "phi", "mrn", ctx.rng)
    _neg(cv, 0, w - 330, 120, ctx.ch(["L forearm", "R shin", "Back, upper"]), hand, ctx, "body_site")
    big = Style(font=ctx.ch(BOLD_FONTS), size=ctx.ch([36, 48, 60]), color=WHITE, stroke=2, bg="anatomy")
    if ctx.rng.random() < 0.5:
        put(cv, 0, 40, 30, ctx.p.surname.upper(), big, "phi", "name", ctx.rng)
    return CaseSpec(f"{idx:02d}_derm_photo", "derm_photo", ctx.ch(["jpg", "jpg", "png"]), "XC", [cv],
                    jpeg_quality=ctx.ch([78, 88, 95]))


def case_endo(ctx: Ctx, idx: int) -> CaseSpec:
    """Endoscopy still: round view on black, a white text column on the left, settings bottom left."""
    w, h = ctx.ch([(1280, 1024), (720, 576)])
    cv = Canvas(np.zeros((h, w, 3), np.float32))
    r = int(h * 0.45)
    vw = 2 * r
    yy, xx = np.ogrid[:vw, :vw]
    d = np.hypot(yy - r, xx - r) / r
    tex = lowfreq(ctx.nrng, vw, vw, 30)
    img = np.stack([170 + 70 * tex, 60 + 50 * tex, 50 + 30 * tex], axis=2) * (1.1 - 0.6 * d[:, :, None])
    cv.paste(img.clip(0, 255), w - vw - 20, (h - vw) // 2, mask=(d <= 1).astype(np.float32))
    k = h / 1024
    st = Style(font=ctx.ch(["sans", "sans_c", "plex_sans", "mono"]), size=int(ctx.ch([16, 18, 20]) * k),
               color=WHITE)
    lh = line_h(st) + 6
    y = int(40 * k)
    put(cv, 0, 16, y, ctx.p.institution, st, "phi", "institution", ctx.rng)
    field_line(cv, 0, 16, y + lh, "ID:", ctx.p.mrn, "mrn", st, ctx.rng)
    put(cv, 0, 16, y + 2 * lh, ctx.name(), st, "phi", "name", ctx.rng)
    put(cv, 0, 16, y + 3 * lh, f"Sex: {ctx.p.sex}   Age: {ctx.rng.randint(30, 85)}", st, "neutral", "demographic",
        ctx.rng)
    put(cv, 0, 16, y + 4 * lh, ctx.dt(ctx.p.dob), st, "phi", "dob", ctx.rng)
    put(cv, 0, 16, y + 6 * lh, ctx.dt(ctx.p.study), st, "phi", "date", ctx.rng)
    put(cv, 0, 16, y + 7 * lh, f"{ctx.rng.randint(7, 17)}:{ctx.rng.randint(10, 59)}:{ctx.rng.randint(10, 59)}", st,
        "neutral", "time", ctx.rng)
    field_line(cv, 0, 16, y + 8 * lh, "Dr.", ctx.p.referrer, "physician", st, ctx.rng)
    for i, t in enumerate(["Eh:A5 Cont:N", "CVP:1", "D.F 3", "Zoom x1.5"][: ctx.rng.randint(2, 4)]):
        _neg(cv, 0, 16, h - (4 - i) * lh - 8, t, st, ctx, "tech")
    return CaseSpec(f"{idx:02d}_endo_photo", "endoscopy_photo", ctx.ch(["jpg", "png"]), "ES", [cv],
                    jpeg_quality=ctx.ch([80, 92]))


def case_mr_montage(ctx: Ctx, idx: int) -> CaseSpec:
    """MR montage secondary capture: 2x2 or 3x3 tiles, per-tile labels, identifiers partly over anatomy."""
    grid = ctx.ch([2, 3])
    tile = ctx.ch([256, 300]) if grid == 3 else ctx.ch([384, 420])
    w = h = grid * tile
    base = np.zeros((h, w), np.float32)
    which = ctx.rng.randint(0, 2)
    src = base_mr(which)
    for i in range(grid * grid):
        t = _resize(np.roll(src, i * 7, axis=1), tile, tile)
        base[(i // grid) * tile:(i // grid + 1) * tile, (i % grid) * tile:(i % grid + 1) * tile] = t
    cv = Canvas(base)
    small = Style(font=ctx.ch(["sans", "sans_c", "mono"]), size=ctx.ch([10, 11, 12]), color=(230, 230, 230))
    for i in range(grid * grid):
        _neg(cv, 0, (i % grid) * tile + 4, (i // grid + 1) * tile - line_h(small) - 4,
             f"Se:{ctx.rng.randint(2, 9)} Im:{ctx.rng.randint(1, 120)}", small, ctx, "series_image")
    st = Style(font=ctx.ch(["sans", "sans_b", "plex_sans_b", "mono"]), size=ctx.ch([12, 14, 16]),
               color=ctx.ch([WHITE, (200, 200, 200), (150, 150, 150)]), bg="anatomy",
               stroke=1 if ctx.rng.random() < 0.4 else 0)
    lh = line_h(st) + 2
    put(cv, 0, 6, 6, ctx.name(), st, "phi", "name", ctx.rng)
    field_line(cv, 0, 6, 6 + lh, "PID", ctx.p.mrn, "mrn", st, ctx.rng)
    put(cv, 0, w // 2 + 10, h // 2 + tile // 3, ctx.dt(ctx.p.study), st, "phi", "date", ctx.rng)
    put(cv, 0, int(w * 0.3), int(h * 0.45), ctx.p.institution, st, "phi", "institution", ctx.rng)
    spec = CaseSpec(f"{idx:02d}_mr_montage", "mr_montage", "dcm", ctx.ch(["MR", "OT"]), [cv], gray=True,
                    source="dcm_qa_ts/1.dcm", sop_class="1.2.840.10008.5.1.4.1.1.7")
    return _header(ctx, spec)


def case_ct_overlay(ctx: Ctx, idx: int) -> CaseSpec:
    """CT slice with burned-in overlays: corners, a scale bar, identifiers over bowel gas / lung / bone."""
    use_vqa = ctx.rng.random() < 0.5
    src = base_vqa(ctx.ch(VQA_CT)) if use_vqa else base_ct()
    size = 512
    cv = Canvas(_resize(src, size, size))
    st = Style(font=ctx.ch(["sans", "mono", "sans_c", "source_sans"]), size=ctx.ch([10, 12, 14]),
               color=ctx.ch([WHITE, (220, 220, 220)]))
    lh = line_h(st) + 2
    put(cv, 0, 4, 4, ctx.name(), st, "phi", "name", ctx.rng)
    put(cv, 0, 4, 4 + lh, ctx.p.mrn, st, "phi", "mrn", ctx.rng)
    put(cv, 0, size - text_w(ctx.p.institution, st) - 6, 4, ctx.p.institution, st, "phi", "institution", ctx.rng)
    for i, t in enumerate(["W:400 L:40", "5.0mm", f"Se:3 Im:{ctx.rng.randint(10, 90)}"]):
        _neg(cv, 0, 4, size - (3 - i) * lh - 4, t, st, ctx, "tech")
    cv.rect(size - 110, size - 20, size - 10, size - 18, (255, 255, 255))
    _neg(cv, 0, size - 70, size - 36, "5 cm", st, ctx, "scale_bar")
    over = Style(font=ctx.ch(["sans_b", "sans"]), size=ctx.ch([13, 16, 20]),
                 color=ctx.ch([WHITE, (255, 255, 0), (150, 150, 150)]),
                 bg="anatomy", stroke=ctx.ch([0, 1, 2]))
    put(cv, 0, ctx.rng.randint(120, 300), ctx.rng.randint(180, 330), ctx.name(), over, "phi", "name", ctx.rng)
    put(cv, 0, ctx.rng.randint(120, 300), ctx.rng.randint(340, 420), ctx.dt(ctx.p.dob), over, "phi", "dob", ctx.rng)
    _neg(cv, 0, ctx.rng.randint(150, 320), ctx.rng.randint(100, 160), ctx.ch(["HU 34", "ROI 1: 12.4 cm2", "4.2 cm"]),
         over, ctx, "measurement")
    if use_vqa:
        return CaseSpec(f"{idx:02d}_ct_overlay", "ct_overlay", ctx.ch(["png", "jpg"]), "CT", [cv], gray=True,
                        jpeg_quality=90)
    spec = CaseSpec(f"{idx:02d}_ct_overlay", "ct_overlay", "dcm", "CT", [cv], gray=True,
                    source="pydicom_data/693_UNCI.dcm")
    return _header(ctx, spec)


def case_slide(ctx: Ctx, idx: int) -> CaseSpec:
    """A teaching-conference slide screenshot: a large title with the patient's name, image, caption."""
    w, h = ctx.ch([(1280, 720), (1024, 768)])
    dark = ctx.rng.random() < 0.5
    bg = (22, 28, 44) if dark else (255, 255, 255)
    fg = (245, 245, 245) if dark else (25, 25, 40)
    cv = Canvas(np.full((h, w, 3), bg, np.float32))
    src = base_vqa(ctx.ch(VQA_CHEST + VQA_CT + VQA_HEAD))
    s = min(w * 0.55 / src.shape[1], h * 0.6 / src.shape[0])
    img = _resize(src, int(src.shape[1] * s), int(src.shape[0] * s))
    ix, iy = 40, int(h * 0.25)
    cv.paste(img, ix, iy)
    title = Style(font=ctx.ch(BOLD_FONTS + ["montserrat_b", "serif_b"]), size=ctx.ch([32, 40, 48, 60]), color=fg)
    put(cv, 0, 40, 30, ctx.ch([f"Case: {ctx.p.given} {ctx.p.surname}", f"{ctx.p.surname.upper()}, {ctx.p.given}"]),
        title, "phi", "name", ctx.rng)
    cap = Style(font=ctx.ch(UI_FONTS), size=ctx.ch([18, 22]), color=fg)
    tx = ix + img.shape[1] + 30
    lh = line_h(cap) + 8
    field_line(cv, 0, tx, iy, "MRN", ctx.p.mrn, "mrn", cap, ctx.rng)
    field_line(cv, 0, tx, iy + lh, "Scan", ctx.dt(ctx.p.study), "date", cap, ctx.rng)
    field_line(cv, 0, tx, iy + 2 * lh, "Ref.", fmt_doctor(ctx.p, ctx.rng), "physician", cap, ctx.rng)
    for i, t in enumerate(["Findings:", "4.2 cm mass", "No effusion"]):
        _neg(cv, 0, tx, iy + (4 + i) * lh, t, cap, ctx, "caption")
    over = Style(font="sans_b", size=ctx.ch([14, 18]), color=(255, 255, 0), bg="anatomy", stroke=1)
    _neg(cv, 0, ix + img.shape[1] // 3, iy + img.shape[0] // 3, ctx.ch(["arrow: nodule", "L", "R"]), over, ctx,
         "annotation")
    put(cv, 0, ix + 10, iy + img.shape[0] - 30, ctx.p.accession, over, "phi", "accession", ctx.rng)
    return CaseSpec(f"{idx:02d}_slide", "conference_slide", ctx.ch(["png", "jpg"]), "OT", [cv], jpeg_quality=85)


GENERATORS: list[Callable[[Ctx, int], CaseSpec]] = [
    case_us_header, case_us_bar, case_us_cine, case_viewer, case_report, case_cr_portable, case_dx_extremity,
    case_xa, case_requisition, case_worksheet, case_dose, case_derm, case_endo, case_mr_montage, case_ct_overlay,
    case_slide,
]


def plan(seed: int, n: int) -> list[int]:
    """Generator index per case: every rendering cycled in a seed-shuffled order."""
    rng = random.Random(f"plan-{seed}")
    order: list[int] = []
    while len(order) < n:
        block = list(range(len(GENERATORS)))
        rng.shuffle(block)
        order.extend(block)
    return order[:n]


def build_case(seed: int, idx: int, gen: int) -> CaseSpec:
    rng = random.Random(f"{seed}-{idx}")
    nrng = np.random.default_rng([seed, idx])
    ctx = Ctx(rng, nrng, make_person(rng), make_person(rng))
    spec = GENERATORS[gen](ctx, idx)
    spec.person, spec.other = ctx.p, ctx.other
    return spec


# ------------------------------------------------------------------------------------------------ files


def _u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def _dicom_name(p: Person) -> str:
    return f"{p.surname}^{p.given}".replace(" ", "-")


def write_dicom(spec: CaseSpec, layer: str, path: Path, seed: int) -> None:
    ds = pydicom.dcmread(DICOM_DIR / spec.source)
    for elem in list(ds):
        if 0x6000 <= elem.tag.group <= 0x60FF or elem.keyword in (
                "PixelData", "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "IconImageSequence",
                "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
                "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
                "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData", "LossyImageCompression",
                "LossyImageCompressionRatio", "LossyImageCompressionMethod", "WindowCenter", "WindowWidth",
                "RescaleSlope", "RescaleIntercept", "RescaleType", "VOILUTSequence", "ModalityLUTSequence",
                "FrameIncrementPointer", "NumberOfFrames", "SequenceOfUltrasoundRegions", "PlanarConfiguration",
                "SmallestImagePixelValue", "LargestImagePixelValue", "WindowCenterWidthExplanation",
                "PixelPaddingValue"):
            del ds[elem.tag]
    frames = [getattr(cv, layer) for cv in spec.frames]
    h, w = frames[0].shape[:2]
    if spec.gray:
        disp = np.stack([f[:, :, 0] for f in frames])
        stored = np.round((255 - disp if spec.monochrome1 else disp).clip(0, 255) * 16).astype(np.uint16)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME1" if spec.monochrome1 else "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if spec.modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
            ds.WindowCenter, ds.WindowWidth = 2040 - 1024, 4080
        else:
            ds.WindowCenter, ds.WindowWidth = 2040, 4080
        data = stored
    else:
        data = np.stack([_u8(f) for f in frames])
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.Rows, ds.Columns = h, w
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
        ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
        ds.FrameTime = 33.3
    ds.PixelData = data.tobytes()
    ds["PixelData"].VR = "OW" if spec.gray else "OB"  # the implicit-VR template leaves it ambiguous
    ds.Modality = spec.modality
    if spec.sop_class:
        ds.SOPClassUID = spec.sop_class
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ent = [str(seed), spec.name, layer]
    ds.StudyInstanceUID = generate_uid(entropy_srcs=ent + ["study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=ent + ["series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=ent + ["sop"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _set_header(ds, spec)
    ds.save_as(path, enforce_file_format=True)


def _set_header(ds: pydicom.Dataset, spec: CaseSpec) -> None:
    p = spec.person if spec.header_mode == "consistent" else spec.other
    if p is None or spec.person is None:
        raise ValueError(f"case {spec.name} has no identity")
    ds.SpecificCharacterSet = "ISO_IR 192"
    if spec.header_mode == "blanked":
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber",
                   "ReferringPhysicianName", "OperatorsName"):
            setattr(ds, kw, "")
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "upstream anonymiser (header only)"
    else:
        ds.PatientName = _dicom_name(p)
        ds.PatientID = p.mrn
        ds.PatientBirthDate = f"{p.dob:%Y%m%d}"
        ds.InstitutionName = p.institution
        ds.AccessionNumber = p.accession[:16]
        ds.ReferringPhysicianName = f"{p.referrer}^"
        ds.OperatorsName = p.operator.replace(" ", "")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = f"{spec.person.study:%Y%m%d}"
    ds.PatientSex = spec.person.sex
    if spec.burned_in == "absent":
        if "BurnedInAnnotation" in ds:
            del ds.BurnedInAnnotation
    else:
        ds.BurnedInAnnotation = spec.burned_in


def write_case(spec: CaseSpec, folder: Path, seed: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ext = {"dcm": ".dcm", "png": ".png", "jpg": ".jpg"}[spec.fmt]
    paths = (folder / f"image{ext}", folder / f"clean{ext}")
    for layer, path in zip(("text", "clean"), paths, strict=True):
        if spec.fmt == "dcm":
            write_dicom(spec, layer, path, seed)
            continue
        arr = _u8(getattr(spec.frames[0], layer))
        img = Image.fromarray(arr[:, :, 0]) if spec.gray else Image.fromarray(arr)
        if spec.fmt == "jpg":
            img.save(path, quality=spec.jpeg_quality)
        else:
            img.save(path)
    return paths


# --------------------------------------------------------------------------------------------- ingest


@dataclass
class Run:
    ok: bool
    error: str | None
    summary: dict[str, Any]
    frames: dict[int, np.ndarray]
    seconds: float
    timed_out: bool = False


def ingest(path: Path, mode: str, scratch: Path, keep: Path | None = None) -> Run:
    """One CLI ingest in a fresh data dir; renders are read back (and kept under keep when given)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=scratch))
    env = dict(os.environ, RADASSIST_DATA_DIR=str(tmp / "data"), RADASSIST_BURNED_IN_TEXT=mode)
    cmd = [str(RADASSIST), "ingest", "--json", "--out", str(tmp / "out"), str(path)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        return Run(False, f"timeout after {TIMEOUT_S}s", {}, {}, time.perf_counter() - t0, True)
    seconds = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), None)
    info: dict[str, Any] = {}
    if line is not None:
        try:
            info = json.loads(line)
        except json.JSONDecodeError:
            info = {}
    frames: dict[int, np.ndarray] = {}
    for p in sorted((tmp / "out").rglob("frame*.png")):
        m = re.search(r"frame(\d+)\.png$", p.name)
        if m:
            frames[int(m.group(1))] = np.asarray(Image.open(p).convert("RGB"))
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, keep / f"{mode}_{p.name}")
    ok = bool(info.get("ok")) and proc.returncode == 0
    err = info.get("error") or (None if ok else (proc.stderr.strip().splitlines() or [f"rc {proc.returncode}"])[-1])
    shutil.rmtree(tmp, ignore_errors=True)
    return Run(ok, err, info.get("summary") or {}, frames, seconds)


# -------------------------------------------------------------------------------------------- scoring


def _lum(a: np.ndarray) -> np.ndarray:
    return a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _flat(frame: np.ndarray) -> bool:
    flat = frame.reshape(-1, 3)
    vals, counts = np.unique(flat[:: max(1, len(flat) // 200000)], axis=0, return_counts=True)
    return counts.max() / counts.sum() >= 0.97 or int(frame.max()) - int(frame.min()) <= 3


def _mapped(mk: Mark, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int, np.ndarray]:
    """The mark's glyph alpha in output coordinates: (x0, y0, alpha crop)."""
    sy, sx = out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]
    if abs(sx - 1) < 1e-6 and abs(sy - 1) < 1e-6:
        return mk.x0, mk.y0, mk.alpha
    x0, y0 = int(math.floor(mk.x0 * sx)), int(math.floor(mk.y0 * sy))
    w = max(1, int(round(mk.alpha.shape[1] * sx)))
    h = max(1, int(round(mk.alpha.shape[0] * sy)))
    a = np.asarray(Image.fromarray(mk.alpha, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    return x0, y0, a


def _clip_box(x0: int, y0: int, a: np.ndarray, hw: tuple[int, int]) -> tuple[slice, slice, np.ndarray]:
    h, w = a.shape
    X0, Y0 = max(0, x0), max(0, y0)
    X1, Y1 = min(hw[1], x0 + w), min(hw[0], y0 + h)
    if X1 <= X0 or Y1 <= Y0:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), np.float32)
    return slice(Y0, Y1), slice(X0, X1), a[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0]


def score_mark(mk: Mark, a_frame: np.ndarray, n_text: np.ndarray, n_clean: np.ndarray,
               in_hw: tuple[int, int]) -> dict[str, Any]:
    hw = (n_text.shape[0], n_text.shape[1])
    x0, y0, alpha = _mapped(mk, in_hw, hw)
    # work in a window around the glyph so ring pixels are available
    m = 6
    ys = slice(max(0, y0 - m), min(hw[0], y0 + alpha.shape[0] + m))
    xs = slice(max(0, x0 - m), min(hw[1], x0 + alpha.shape[1] + m))
    win_a = np.zeros((ys.stop - ys.start, xs.stop - xs.start), np.float32)
    sy, sx, part = _clip_box(x0 - xs.start, y0 - ys.start, alpha, win_a.shape)
    if part.size:
        win_a[sy, sx] = part
    glyph = win_a >= 0.25
    if glyph.sum() == 0 or a_frame.shape[:2] != hw:
        return {"status": "invisible", "n_ink": 0}
    t, c, al = n_text[ys, xs], n_clean[ys, xs], a_frame[ys, xs]
    diff = np.abs(t.astype(np.int16) - c.astype(np.int16)).max(axis=2)
    d = diff[glyph]
    if d.size == 0 or np.percentile(d, 95) < 8:
        return {"status": "invisible", "n_ink": 0}
    thr = max(8.0, 0.35 * float(np.percentile(d, 95)))
    ink = glyph & (diff >= thr)
    n_ink = int(ink.sum())
    if n_ink < 4:
        return {"status": "invisible", "n_ink": n_ink}
    lum = _lum(t)
    near = ndimage.binary_dilation(glyph, iterations=2)
    box = np.zeros_like(glyph)
    yy, xx = np.nonzero(glyph)
    box[yy.min():yy.max() + 1, xx.min():xx.max() + 1] = True
    ring = ndimage.binary_dilation(box, iterations=3) & ~near
    ink_l = float(lum[ink].mean())
    ring_l = float(np.median(lum[ring])) if ring.any() else float(np.median(_lum(c)[glyph]))
    dark = ink_l < ring_l
    lo, hi = np.percentile(lum[ink], [10, 90])  # outline/shadow: the fill is the far end, not the mean
    contrast = max(abs(float(hi) - ring_l), abs(float(lo) - ring_l))
    test = ink
    if dark:
        light = box & ~ndimage.binary_dilation(glyph, iterations=1) & (lum > ink_l + 0.5 * (ring_l - ink_l))
        if light.sum() >= 4:
            test = light
    black = (al <= BLACK).all(axis=2)
    return {"status": "scored", "n_ink": n_ink, "black_frac": round(float(black[test].mean()), 4),
            "dark": dark, "contrast": round(contrast, 1)}


def size_bucket(px: float) -> str:
    return "<=10px" if px <= 10 else "11-13px" if px <= 13 else "14-19px" if px <= 19 else "20-29px" if px <= 29 \
        else ">=30px"


def contrast_bucket(c: float) -> str:
    return "low(<60)" if c < 60 else "mid(60-140)" if c < 140 else "high(>=140)"


def _box_mask(marks: list[Mark], in_hw: tuple[int, int], hw: tuple[int, int]) -> np.ndarray:
    m = np.zeros(hw, bool)
    for mk in marks:
        x0, y0, a = _mapped(mk, in_hw, hw)
        m[max(0, y0 - BOX_MARGIN):max(0, y0 + a.shape[0] + BOX_MARGIN),
          max(0, x0 - BOX_MARGIN):max(0, x0 + a.shape[1] + BOX_MARGIN)] = True
    return m


def evaluate(spec: CaseSpec, seed: int, work: Path) -> dict[str, Any]:
    folder = work / "cases" / spec.name
    img_path, clean_path = write_case(spec, folder, seed)
    scratch = work / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    ra = ingest(img_path, "always", scratch, keep=folder)
    rn = ingest(img_path, "never", scratch, keep=folder)
    rc = ingest(clean_path, "never", scratch)
    bit = ra.summary.get("burned_in_text") or {}
    image_row: dict[str, Any] = {
        "case": spec.name, "rendering": spec.rendering, "fmt": spec.fmt, "modality": spec.modality,
        "frames": len(spec.frames), "size": f"{spec.frames[0].w}x{spec.frames[0].h}", "header_mode": spec.header_mode,
        "burned_in_annotation": spec.burned_in, "ok_always": ra.ok, "ok_never": rn.ok, "ok_clean": rc.ok,
        "error_always": ra.error, "error_never": rn.error, "error_clean": rc.error, "timeout_always": ra.timed_out,
        "t_always_s": round(ra.seconds, 2), "t_never_s": round(rn.seconds, 2), "t_clean_never_s": round(rc.seconds, 2),
        "withheld_frames_summary": bit.get("withheld_frames"), "redacted_frames_summary": bit.get("redacted_frames"),
        "frames_always": sorted(ra.frames), "frames_never": sorted(rn.frames), "false_redaction": [],
        "twin_leak": [],
    }
    tokens: list[dict[str, Any]] = []
    negatives: list[dict[str, Any]] = []
    in_hw = (spec.frames[0].h, spec.frames[0].w)
    withheld: dict[int, bool] = {}
    for f in range(len(spec.frames)):
        n = f + 1
        present = n in ra.frames
        withheld[f] = ra.ok and (not present or (_flat(ra.frames[n]) and n in rn.frames and not _flat(rn.frames[n])))
        if ra.ok and present and not withheld[f] and n in rn.frames and n in rc.frames \
                and ra.frames[n].shape == rn.frames[n].shape == rc.frames[n].shape:
            hw = ra.frames[n].shape[:2]
            outside = ~_box_mask([m for m in spec.frames[f].marks], in_hw, hw)
            blk_a = (ra.frames[n] <= BLACK).all(axis=2)
            blk_n = (rn.frames[n] <= BLACK).all(axis=2)
            fr = float((blk_a & ~blk_n)[outside].mean()) if outside.any() else 0.0
            image_row["false_redaction"].append(round(fr, 5))
            dd = np.abs(rn.frames[n].astype(np.int16) - rc.frames[n].astype(np.int16)).max(axis=2)
            image_row["twin_leak"].append(round(float((dd > 24)[outside].mean()), 5))
    image_row["withheld_frames_seen"] = sum(withheld.values())
    for f, cv in enumerate(spec.frames):
        n = f + 1
        for mk in cv.marks:
            if mk.role == "neutral":
                continue
            row: dict[str, Any] = {
                "case": spec.name, "rendering": spec.rendering, "fmt": spec.fmt, "modality": spec.modality,
                "header_mode": spec.header_mode, "frame": n, "kind": mk.kind, "text": mk.text, "font": mk.font,
                "size_px": mk.size_px, "style": mk.style, "bg": mk.bg, "x": mk.x0, "y": mk.y0,
                "w": int(mk.alpha.shape[1]), "h": int(mk.alpha.shape[0]),
            }
            if n in rn.frames and n in rc.frames and rn.frames[n].shape == rc.frames[n].shape:
                scale = rn.frames[n].shape[1] / in_hw[1]
                row["size_out_px"] = round(mk.size_px * scale, 1)
                af = ra.frames.get(n, np.zeros_like(rn.frames[n]))
                row.update(score_mark(mk, af, rn.frames[n], rc.frames[n], in_hw))
            else:
                row.update({"status": "unscorable", "n_ink": 0})
            row["failed"] = not ra.ok
            row["withheld"] = withheld.get(f, False)
            bf = row.get("black_frac")
            if mk.role == "phi":
                row["removed"] = (not ra.ok) or row["withheld"] or (bf is not None and bf >= REMOVED_FRAC)
                tokens.append(row)
            else:
                row["kept"] = ra.ok and not row["withheld"] and (bf is None or bf < KEPT_FRAC)
                negatives.append(row)
    return {"image": image_row, "tokens": tokens, "negatives": negatives}


def run_case(args: tuple[int, int, int, str]) -> dict[str, Any]:
    seed, idx, gen, work = args
    t0 = time.perf_counter()
    try:
        spec = build_case(seed, idx, gen)
        out = evaluate(spec, seed, Path(work))
    except Exception as exc:  # a broken case is reported, the run goes on
        import traceback

        return {"image": {"case": f"{idx:02d}_{GENERATORS[gen].__name__}", "harness_error": repr(exc),
                          "traceback": traceback.format_exc()}, "tokens": [], "negatives": []}
    out["image"]["case_wall_s"] = round(time.perf_counter() - t0, 2)
    return out


# -------------------------------------------------------------------------------------------- summary


def _pct(x: float) -> str:
    return f"{100 * x:6.2f}%"


def _group(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], str], flag: str) -> list[str]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(bool(r[flag]))
    return [f"  {k:<26} {sum(v):4d}/{len(v):<4d} {_pct(sum(v) / len(v))}" for k, v in sorted(groups.items())]


def summarise(images: list[dict[str, Any]], tokens: list[dict[str, Any]], negatives: list[dict[str, Any]]) -> str:
    out: list[str] = []
    scored = [t for t in tokens if t["status"] == "scored" or t["failed"] or t["withheld"]]
    invisible = [t for t in tokens if t not in scored]
    removed = sum(t["removed"] for t in scored)
    failed_imgs = [i for i in images if "ok_always" in i and not i["ok_always"]]
    broken = [i for i in images if "harness_error" in i]
    out.append(f"images: {len(images)}  identifier tokens scored: {len(scored)}  (invisible/unscorable: "
               f"{len(invisible)})  negatives: {len(negatives)}")
    if scored:
        out.append(f"RECALL (tokens removed): {removed}/{len(scored)} = {_pct(removed / len(scored))}   goal >= 98%")
        by_ink = [t for t in scored if t["status"] == "scored" and not t["failed"] and not t["withheld"]]
        if by_ink:
            out.append(f"  removed by black ink alone: {sum(t['removed'] for t in by_ink)}/{len(by_ink)}; "
                       f"via withheld frame: {sum(t['withheld'] and not t['failed'] for t in scored)}; "
                       f"via failed ingest: {sum(t['failed'] for t in scored)}")
    out.append(f"ingest failures (always): {len(failed_imgs)} "
               + ", ".join(f"{i['case']}: {i.get('error_always')}" for i in failed_imgs))
    if broken:
        out.append(f"HARNESS ERRORS (case not scored): {len(broken)} "
                   + ", ".join(f"{i['case']}: {i['harness_error'][:200]}" for i in broken))
    sections: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("by kind", lambda r: r["kind"]), ("by rendering", lambda r: r["rendering"]),
        ("by format/modality", lambda r: f"{r['fmt']}/{r['modality']}"), ("by background", lambda r: r["bg"]),
        ("by size (output px)", lambda r: size_bucket(r.get("size_out_px", r["size_px"]))),
        ("by contrast", lambda r: contrast_bucket(r["contrast"]) if "contrast" in r else "n/a (withheld/failed)"),
        ("by style", lambda r: r["style"]), ("by DICOM header", lambda r: r["header_mode"]),
    ]
    for title, key in sections:
        out.append(f"recall {title}:")
        out.extend(_group(scored, key, "removed"))
    neg_scored = [n for n in negatives if n["status"] == "scored" or n["withheld"] or n["failed"]]
    if neg_scored:
        kept = sum(n["kept"] for n in neg_scored)
        out.append(f"NEGATIVES kept: {kept}/{len(neg_scored)} = {_pct(kept / len(neg_scored))}")
        out.extend(_group(neg_scored, lambda r: r["kind"], "kept"))
    fr = [v for i in images for v in i.get("false_redaction", [])]
    if fr:
        q = np.percentile(fr, [50, 90, 100])
        out.append(f"false redaction per shown frame (n={len(fr)}): median {_pct(q[0])} p90 {_pct(q[1])} "
                   f"max {_pct(q[2])}")
    leak = [v for i in images for v in i.get("twin_leak", [])]
    if leak:
        out.append(f"harness twin check (never image vs never twin differ outside boxes): max {_pct(max(leak))}")
    ta = [i["t_always_s"] for i in images if "t_always_s" in i]
    tn = [i["t_never_s"] for i in images if "t_never_s" in i]
    if ta and tn:
        out.append(f"time per ingest: always median {statistics.median(ta):.2f}s (max {max(ta):.2f}s), "
                   f"never median {statistics.median(tn):.2f}s")
    wh = sum(i.get("withheld_frames_seen", 0) for i in images)
    out.append(f"withheld frames seen: {wh}")
    missed = [t for t in scored if not t["removed"]]
    out.append(f"MISSED identifier tokens ({len(missed)}):")
    for t in missed:
        size = t.get("size_out_px", t["size_px"])
        out.append(f"  {t['case']} f{t['frame']} {t['kind']:<11} {t['text']!r:<28} {size}px "
                   f"at ({t['x']},{t['y']}) bg={t['bg']} style={t['style']} black={t.get('black_frac')}")
    lost = [n for n in neg_scored if not n["kept"]]
    out.append(f"negatives lost ({len(lost)}): " + "; ".join(f"{n['case']}:{n['text']!r}" for n in lost[:40]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    if not RADASSIST.exists():
        print(f"missing {RADASSIST}", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    todo = [(args.seed, i, g, str(args.work)) for i, g in enumerate(plan(args.seed, args.images))]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_case, todo))
    else:
        results = [run_case(t) for t in todo]
    images = [r["image"] for r in results]
    tokens = [t for r in results for t in r["tokens"]]
    negatives = [n for r in results for n in r["negatives"]]
    text = summarise(images, tokens, negatives)
    payload = {"seed": args.seed, "images_requested": args.images, "wall_s": round(time.perf_counter() - t0, 1),
               "images": images, "tokens": tokens, "negatives": negatives, "summary": text.splitlines()}
    (args.work / "results.json").write_text(json.dumps(payload, indent=1, default=str))
    print(text)
    print(f"wall {payload['wall_s']}s; results: {args.work / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
