"""Held-out benchmark M for the burned-in-text redactor (blind: written from the CLI contract only).

OFFICIAL_SEED = 5519 (chosen by the lead; debug with other seeds, e.g. 1, 2, 3).

A seeded generator plants identifiers (names, MRNs, accession numbers, birth/study dates, institutions, physician and
staff names, phone numbers) and annotations that must be kept (L/R markers, scale numbers, cm, kV/mAs, W/L, slice
numbers, measurements, probe names, acquisition values) into ~22 kinds of scenes that hospitals really send: vendor
ultrasound banners, US and XA cine, CR/DX labels (MONOCHROME1), CT/MR secondary captures with 4-corner overlays,
native 16-bit CT, NM whole body, PACS screenshots, scanned requisitions, photos of monitors, clinical photos with
stickers, heavy JPEG, low-contrast text over anatomy, coloured/outlined/shadowed text, rotated/vertical text, text
hugging the edges, mis-filed and pre-scrubbed DICOM headers, dose reports, echo worksheets, key images.

Every case is ingested three times, each with a fresh data dir and out dir:
  (1) image, RADASSIST_BURNED_IN_TEXT=always; (2) image, never; (3) clean twin (no drawn text, same header), never.
Ink of a token = pixels where render (2) differs from render (3) by >24 in any channel, inside the token's glyph
mask dilated by 1-3 px (its box). A planted identifier token is removed when >=95% of its judged pixels are black
(every channel <=8) in render (1), or its frame is withheld, or the ingest failed (counted separately). Dark text on a
light ground is judged by the non-black pixels of its box in render (2). A negative is kept when <50% of its
judged pixels are black and its frame is shown. False redaction = share of the visible area outside all planted
boxes (+4 px) that is black in (1) but not in (2), per shown frame.

    python -m bench.heldout_burned_in_m --seed S --work DIR --jobs 2 [--images N] [--build-only] [--reuse]

Writes DIR/results.json (seed, cases, summary, case_info, tokens) and DIR/cases/cNN/ (inputs, meta.json, masks.npz).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
import unicodedata
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless
from scipy import ndimage

OFFICIAL_SEED = 5519
DEFAULT_CASES = 50
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
DIFF_T = 24  # ink: never(image) vs never(twin) differ by more than this in any channel
BLACK_T = 8  # black: every channel <= this
REMOVED_SHARE = 0.95
NEG_BLACK_SHARE = 0.5
MIN_INK = 4
FR_MARGIN = 4

PHI_KINDS = ("name", "mrn", "accession", "dob", "study_date", "institution", "physician", "staff", "phone", "other_id")
NEG_KINDS = ("marker", "scale", "unit", "exposure", "window", "slice", "measurement", "probe", "view", "acq", "dose",
             "annot", "clinical")


def role_of(kind: str) -> str:
    if kind in PHI_KINDS:
        return "phi"
    if kind in NEG_KINDS:
        return "neg"
    return "decor"


# --------------------------------------------------------------------------------------------------------------------
# fonts and text items

FONTS = {
    "sans": "DejaVuSans.ttf", "sans_b": "DejaVuSans-Bold.ttf", "sans_i": "DejaVuSans-Oblique.ttf",
    "sans_bi": "DejaVuSans-BoldOblique.ttf", "sans_xl": "DejaVuSans-ExtraLight.ttf", "cond": "DejaVuSansCondensed.ttf",
    "cond_b": "DejaVuSansCondensed-Bold.ttf", "cond_i": "DejaVuSansCondensed-Oblique.ttf", "mono": "DejaVuSansMono.ttf",
    "mono_b": "DejaVuSansMono-Bold.ttf", "serif": "DejaVuSerif.ttf", "serif_b": "DejaVuSerif-Bold.ttf",
    "serif_i": "DejaVuSerif-Italic.ttf", "serif_c": "DejaVuSerifCondensed.ttf",
    "serif_ci": "DejaVuSerifCondensed-Italic.ttf",
}


@functools.lru_cache(maxsize=256)
def get_font(name: str, size: int) -> Any:
    if name == "pil":  # Pillow's bitmap default font (fixed ~11 px)
        return ImageFont.load_default_imagefont()
    if name == "pil_ft":  # Pillow's bundled scalable default font
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(FONT_DIR / FONTS[name]), size, layout_engine=ImageFont.Layout.BASIC)


def _draw_tok(w: int, h: int, x: float, y: float, text: str, font: Any, stroke: int) -> np.ndarray:
    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    if stroke:
        d.text((x, y), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    else:
        d.text((x, y), text, font=font, fill=255)
    return np.asarray(im, dtype=np.float32) / 255.0


def _shift(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def _rot(a: np.ndarray, angle: float) -> np.ndarray:
    k = angle % 360
    if k == 0:
        return a
    if k in (90, 180, 270):
        return np.ascontiguousarray(np.rot90(a, int(k // 90)))
    im = Image.fromarray(a.astype(np.float32)).rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    return np.asarray(im, dtype=np.float32)


@dataclass
class Item:
    """One line of text: segments (text, kind); x, y = draw origin (unrotated) or ink top-left (rotated)."""

    segs: list[tuple[str, str]]
    x: float = 0
    y: float = 0
    font: str = "sans"
    size: int = 12
    fill: Any = 255
    alpha: float = 1.0
    stroke: int = 0
    stroke_fill: Any = 0
    shadow: tuple[int, int] | None = None
    shadow_fill: Any = 0
    angle: float = 0.0
    frames: list[int] | None = None
    _r: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.font in ("pil", "pil_ft"):  # Pillow's own fonts lack most non-ASCII glyphs: devices transliterate
            self.segs = [(translit(t).replace("²", "2").replace("·", "-").replace("…", "."), k) for t, k in self.segs]

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.segs)

    def advance(self) -> float:
        return float(get_font(self.font, self.size).getlength(self.text))

    def render(self) -> dict[str, Any]:
        if self._r is not None:
            return self._r
        f = get_font(self.font, self.size)
        full = self.text
        sh = self.shadow or (0, 0)
        pad = 3 + self.stroke + max(abs(sh[0]), abs(sh[1]))
        if isinstance(f, ImageFont.FreeTypeFont):
            asc, desc = f.getmetrics()
            lh = asc + desc
        else:
            lh = f.getbbox("Ag|")[3] + 2
        w0 = int(math.ceil(f.getlength(full))) + 2 * pad + 6
        h0 = int(lh) + 2 * pad + 4
        toks: list[dict[str, Any]] = []
        pos = 0
        for text, kind in self.segs:
            for m in re.finditer(r"\S+", text):
                start = pos + m.start()
                xo = float(f.getlength(full[:start]))
                fa = _draw_tok(w0, h0, pad + xo, pad, m.group(), f, 0)
                sa = _draw_tok(w0, h0, pad + xo, pad, m.group(), f, self.stroke) if self.stroke else np.zeros_like(fa)
                base = np.maximum(fa, sa)
                da = _shift(base, sh[0], sh[1]) if self.shadow else np.zeros_like(fa)
                toks.append({"text": m.group(), "kind": kind, "fill": fa, "stroke": sa, "shadow": da})
            pos += len(text)
        if not toks:
            raise ValueError(f"empty text item {self.segs!r}")
        fill = np.maximum.reduce([t["fill"] for t in toks])
        stroke = np.maximum.reduce([t["stroke"] for t in toks])
        shadow = np.maximum.reduce([t["shadow"] for t in toks])
        unions = [np.maximum(np.maximum(t["fill"], t["stroke"]), t["shadow"]) for t in toks]
        if self.angle % 360:
            fill, stroke, shadow = _rot(fill, self.angle), _rot(stroke, self.angle), _rot(shadow, self.angle)
            unions = [_rot(u, self.angle) for u in unions]
        allu = np.maximum.reduce(unions)
        ys, xs = np.nonzero(allu > 0.02)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = (slice(y0, y1), slice(x0, x1))
        if self.angle % 360:
            off = (0, 0)
        else:
            off = (int(x0) - pad, int(y0) - pad)
        self._r = {
            "fill": fill[crop], "stroke": stroke[crop], "shadow": shadow[crop],
            "toks": [(t["text"], t["kind"], u[crop] > 0.04) for t, u in zip(toks, unions, strict=True)],
            "off": off, "w": int(x1 - x0), "h": int(y1 - y0),
        }
        return self._r

    def ink_size(self) -> tuple[int, int]:
        r = self.render()
        return r["w"], r["h"]

    def pos(self) -> tuple[int, int]:
        r = self.render()
        return int(round(self.x)) + r["off"][0], int(round(self.y)) + r["off"][1]


# --------------------------------------------------------------------------------------------------------------------
# pixel domains and scenes


def place_rotated(it: Item, px: float, py: float) -> None:
    """Put a rotated item so that its unrotated top-left (the line start) lands near (px, py)."""
    if not it.angle % 360:
        it.x, it.y = px, py
        return
    w0, h0 = it.advance(), float(it.size)
    a = math.radians(it.angle)
    ux, uy = math.cos(a), -math.sin(a)
    vx, vy = math.sin(a), math.cos(a)
    xs = [px, px + w0 * ux, px + h0 * vx, px + w0 * ux + h0 * vx]
    ys = [py, py + w0 * uy, py + h0 * vy, py + w0 * uy + h0 * vy]
    it.x, it.y = min(xs), min(ys)


@dataclass
class Domain:
    """How display values (0..255) map to stored values."""

    channels: int = 3
    bits: int = 8
    mono1: bool = False
    wc: float = 127.5
    ww: float = 256.0
    lo: float = 0.0
    hi: float = 255.0

    def native(self, disp: Any) -> np.ndarray:
        if isinstance(disp, int | float):
            disp = (float(disp),) * 3
        d = np.array(disp, dtype=np.float32)
        if self.channels == 3:
            return d[:3] if d.size >= 3 else np.repeat(d[:1], 3)
        v = float(d[0]) if d.size == 1 else float(0.299 * d[0] + 0.587 * d[1] + 0.114 * d[2])
        if self.bits == 8:
            return np.array([v], np.float32)
        t = v / 255.0
        low = self.wc - self.ww / 2
        val = (self.wc + self.ww / 2) - t * self.ww if self.mono1 else low + t * self.ww
        return np.array([min(max(val, self.lo), self.hi)], np.float32)

    def to_display(self, a: np.ndarray) -> np.ndarray:
        """stored -> display 0..255 (for building 8-bit captures from 16-bit pixels)."""
        t = (a - (self.wc - self.ww / 2)) / self.ww
        t = np.clip(t, 0, 1)
        return (1 - t) * 255 if self.mono1 else t * 255


class Scene:
    def __init__(self, kind: str, w: int, h: int, dom: Domain, n_frames: int = 1) -> None:
        self.kind = kind
        self.W, self.H = w, h
        self.dom = dom
        self.n_frames = n_frames
        self.bg = [np.zeros((h, w, dom.channels), np.float32) for _ in range(n_frames)]
        self.items: list[Item] = []
        self.plates: list[tuple[int, int, int, int]] = []
        self.post: list[tuple[Any, ...]] = []
        self.container: dict[str, Any] = {}
        self.notes: list[str] = []
        self.blur = 0.0

    # graphics (drawn into the background, so into the twin as well)
    def fill_bg(self, disp: Any) -> None:
        for b in self.bg:
            b[...] = self.dom.native(disp)

    def set_bg(self, arr: np.ndarray, frame: int | None = None) -> None:
        """arr: display 0..255 (H,W) or (H,W,3), or native when the domain is 16-bit and native=True."""
        frames = range(self.n_frames) if frame is None else [frame]
        for f in frames:
            self.bg[f][...] = self._as_native(arr)

    def _as_native(self, arr: np.ndarray) -> np.ndarray:
        if arr.ndim == 2:
            arr = arr[..., None]
        if self.dom.channels == 3 and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        if self.dom.channels == 1 and arr.shape[2] == 3:
            arr = (0.299 * arr[..., :1] + 0.587 * arr[..., 1:2] + 0.114 * arr[..., 2:3])
        return arr.astype(np.float32)

    def rect(self, x0: float, y0: float, x1: float, y1: float, disp: Any, frames: list[int] | None = None,
             plate: bool = False, alpha: float = 1.0) -> None:
        x0i, y0i = max(0, int(x0)), max(0, int(y0))
        x1i, y1i = min(self.W, int(x1)), min(self.H, int(y1))
        if x1i <= x0i or y1i <= y0i:
            return
        c = self.dom.native(disp)
        for f in (range(self.n_frames) if frames is None else frames):
            reg = self.bg[f][y0i:y1i, x0i:x1i]
            reg[...] = reg * (1 - alpha) + c * alpha
        if plate:
            self.plates.append((x0i, y0i, x1i, y1i))

    def poly(self, pts: list[tuple[float, float]], disp: Any, plate: bool = False, width: int = 0,
             alpha: float = 1.0) -> None:
        im = Image.new("L", (self.W, self.H), 0)
        d = ImageDraw.Draw(im)
        if width:
            d.line(pts, fill=255, width=width)
        else:
            d.polygon(pts, fill=255)
        self.paint_mask(np.asarray(im, np.float32) / 255 * alpha, disp)
        if plate:
            xs = [p[0] for p in pts]
            ys = [p[1] for p in pts]
            self.plates.append((max(0, int(min(xs))), max(0, int(min(ys))), min(self.W, int(max(xs)) + 1),
                                min(self.H, int(max(ys)) + 1)))

    def paint_mask(self, m: np.ndarray, disp: Any, frames: list[int] | None = None) -> None:
        c = self.dom.native(disp)
        a = m[..., None]
        for f in (range(self.n_frames) if frames is None else frames):
            self.bg[f][...] = self.bg[f] * (1 - a) + c * a

    def legible(self, items: list[Item] | None = None, dark: int = 15, light: int = 245) -> None:
        """Technologists pick label ink that contrasts with what lies under it: dark on light, light on dark."""
        for it in (self.items if items is None else items):
            x, y = it.pos()
            w, h = it.ink_size()
            x0, y0, x1, y1 = max(0, x), max(0, y), min(self.W, x + w), min(self.H, y + h)
            if x1 <= x0 or y1 <= y0:
                continue
            reg = self.bg[0][y0:y1, x0:x1]
            disp = self.dom.to_display(reg) if self.dom.bits == 16 else reg
            m = float(disp.mean())
            it.fill = dark if m > 128 else light
            if it.stroke:
                it.stroke_fill = light if m > 128 else dark

    def text(self, segs: list[tuple[str, str]], x: float, y: float, **kw: Any) -> Item:
        it = Item(segs=segs, x=x, y=y, **kw)
        self.items.append(it)
        return it

    def rtext(self, segs: list[tuple[str, str]], right: float, y: float, **kw: Any) -> Item:
        it = Item(segs=segs, x=0, y=y, **kw)
        it.x = right - it.advance()
        self.items.append(it)
        return it

    def corner(self, rows: Sequence[list[tuple[str, str]] | None], corner: str, font: str, size: int, fill: Any,
               margin: int = 4, spacing: int = 2, lh: int | None = None, **kw: Any) -> list[Item]:
        lines: list[list[tuple[str, str]]] = [ln for ln in rows if ln]
        if lh is None:
            lh = (11 if font == "pil" else size) + spacing
        out = []
        n = len(lines)
        max_w = self.W / 2 - margin - 12  # overlays of small frames truncate long values instead of overlapping
        for i, ln in enumerate(lines):
            ln = fit_segs(ln, font, size, max_w)
            y = margin + i * lh if corner[0] == "t" else self.H - margin - (n - i) * lh
            if corner[1] == "l":
                out.append(self.text(ln, margin, y, font=font, size=size, fill=fill, **kw))
            else:
                out.append(self.rtext(ln, self.W - margin, y, font=font, size=size, fill=fill, **kw))
        return out


def fit_segs(segs: list[tuple[str, str]], font: str, size: int, max_w: float) -> list[tuple[str, str]]:
    """Cut the end of a line (as small-matrix overlays do) until it is no wider than max_w."""
    f = get_font(font, size)
    segs = list(segs)
    while segs and f.getlength("".join(t for t, _ in segs)) > max_w:
        t, k = segs[-1]
        t = t[:-1].rstrip()
        if t:
            segs[-1] = (t, k)
        else:
            segs.pop()
    return segs


# --------------------------------------------------------------------------------------------------------------------
# identities

CULTURES: dict[str, tuple[list[str], list[str]]] = {
    "en": (["Ashworth", "Pembrooke", "Callahan", "Whitmore", "Fairbanks", "Holloway", "Sutcliffe", "Brannigan",
            "Thornbury", "Rowntree", "Pickering", "Lovell"],
           ["Margaret", "Thomas", "Evelyn", "Declan", "Harriet", "Oliver", "Bethany", "Graham", "Lucy", "Wesley",
            "Dorothy", "Russell"]),
    "es": (["Ramírez Quintero", "Castellanos", "Villaseñor", "Echeverría Soto", "Montalbán", "Núñez de Arco",
            "Ibáñez"], ["María José", "Joaquín", "Lucía", "Andrés", "Guadalupe", "Ximena", "José Luis"]),
    "zh": (["Zhang", "Wang", "Liu", "Chen", "Huang", "Zhou", "Xu", "Li", "Wu"],
           ["Wei", "Xiaoming", "Meiling", "Jian", "Yu", "Haoran", "Jing"]),
    "vi": (["Nguyen", "Tran", "Pham", "Le", "Vo"], ["Thi Hoa", "Van Minh", "Thi Lan", "Quoc Bao", "Thanh Tung"]),
    "ar": (["Al-Farsi", "El-Sayed", "Haddad", "Abu-Zaid", "Mansour", "Al Hashimi"],
           ["Fatima", "Yousef", "Layla", "Omar", "Khalid", "Noor"]),
    "in": (["Venkataraman", "Chatterjee", "Subramanian", "Iyer", "Deshpande", "Raghunathan"],
           ["Priya", "Arjun", "Lakshmi", "Siddharth", "Ananya"]),
    "ng": (["Okonkwo", "Adeyemi", "Nwachukwu", "Balogun", "Eze"],
           ["Chidinma", "Babatunde", "Ngozi", "Oluwaseun", "Emeka"]),
    "pl": (["Wiśniewska", "Szczepański", "Krzyżanowski", "Wójcik", "Łukasik"],
           ["Małgorzata", "Zbigniew", "Agnieszka", "Grzegorz"]),
    "de": (["Müller-Lüdenscheidt", "Schäfer", "Weißmann", "Großkopf", "Köhler"],
           ["Jürgen", "Anneliese", "Björn", "Käthe"]),
    "ie": (["O'Sullivan", "McAllister", "O'Donoghue", "Mac Giolla Phádraig"],
           ["Siobhán", "Ciarán", "Aoife", "Pádraig"]),
    "nl": (["van der Berg", "de Vries", "van Dijk", "Verhoeven"], ["Sanne", "Joost", "Femke", "Maarten"]),
    "ko": (["Park", "Kim", "Choi", "Jeong"], ["Ji-hoon", "Seo-yeon", "Min-jun", "Hye-jin"]),
    "ja": (["Tanaka", "Watanabe", "Yamamoto", "Kobayashi"], ["Hiroshi", "Yuki", "Akiko", "Takeshi"]),
    "gr": (["Papadopoulos", "Konstantinidis", "Georgiou"], ["Eleni", "Dimitrios", "Athanasia"]),
    "nordic": (["Järvinen", "Ólafsdóttir", "Søndergaard", "Lindqvist"], ["Aino", "Sigríður", "Mikkel", "Astrid"]),
    "short": (["Ng", "Ho", "Wu", "Ye", "Ma", "Le"], ["Bo", "Jo", "Ai", "Li", "Ed"]),
}
PLACES = ["Ashdown", "Corrin Bay", "Millbrook", "Kestrel Point", "Harrowgate", "Eastvale", "Lindenfeld", "Port Alder",
          "Bramwell", "Valdemoro Alto", "Tallow Creek", "Oakmere", "Saint-Aubin"]
SAINTS = ["Brigid", "Jude", "Catherine", "Raphael", "Elisabeth", "Vincent", "Anne", "Columba"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def translit(s: str) -> str:
    s = s.replace("ß", "ss").replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace("Ø", "O")
    s = s.replace("ð", "d").replace("Ð", "D").replace("þ", "th").replace("æ", "ae").replace("Æ", "AE")
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


@dataclass
class Person:
    family: str
    given: str
    middle: str
    sex: str
    dob: dt.date
    culture: str
    mrn: str = ""

    def pn(self) -> str:
        parts = [self.family.upper(), self.given.upper()] + ([self.middle.upper()] if self.middle else [])
        return "^".join(parts)


def make_person(rng: random.Random, adult: bool = True) -> Person:
    culture = rng.choice(list(CULTURES))
    fams, givs = CULTURES[culture]
    sex = rng.choice("FM")
    lo = 1926 if adult else 2008
    hi = 2004 if adult else 2023
    dob = dt.date(rng.randint(lo, hi), rng.randint(1, 12), rng.randint(1, 28))
    middle = rng.choice("ABCDEFGHJKLMNPRSTW") if rng.random() < 0.35 else ""
    return Person(rng.choice(fams), rng.choice(givs), middle, sex, dob, culture)


def make_mrn(rng: random.Random) -> str:
    L = "ABCDEFGHJKLMNPRSTUVWXYZ"
    style = rng.randrange(8)
    if style == 0:
        return f"{rng.randint(0, 9999999):08d}"
    if style == 1:
        return str(rng.randint(1000000, 9999999))
    if style == 2:
        return f"{rng.choice(L)}{rng.choice(L)}{rng.randint(100000, 999999)}"
    if style == 3:
        return f"{rng.randint(100, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    if style == 4:
        return f"{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(0, 9)}"
    if style == 5:
        return f"K{rng.randint(10 ** 8, 10 ** 9 - 1)}"
    if style == 6:
        return f"{rng.randint(100000, 999999)}{rng.choice(L)}"
    return f"{rng.randint(1000, 9999)}.{rng.randint(100, 999)}"


def make_accession(rng: random.Random, d: dt.date) -> str:
    style = rng.randrange(6)
    if style == 0:
        return f"A{rng.randint(10 ** 7, 10 ** 8 - 1)}"
    if style == 1:
        return f"RAD{d.year % 100:02d}-{rng.randint(100000, 999999)}"
    if style == 2:
        return f"{d.year % 100:02d}{rng.choice(['CT', 'MR', 'US', 'XR', 'NM'])}{rng.randint(10 ** 6, 10 ** 7 - 1)}"
    if style == 3:
        return str(rng.randint(10 ** 9, 10 ** 10 - 1))
    if style == 4:
        return f"E{rng.randint(10 ** 6, 10 ** 7 - 1)}"
    return f"{d:%Y%m%d}{rng.randint(1000, 9999)}"


def make_institution(rng: random.Random) -> str:
    p, s = rng.choice(PLACES), rng.choice(SAINTS)
    fam = rng.choice(CULTURES[rng.choice(["en", "ie", "in", "nl"])][0])
    return rng.choice([
        f"{p} General Hospital", f"St. {s}'s Medical Center", f"{p} Regional Imaging", f"Klinikum {p}",
        f"Hôpital Sainte-{s}", f"{p} University Hospital", f"{fam} Radiology Associates", f"Ospedale San {s}",
        f"Royal {p} Infirmary", f"{p} Children's Hospital", f"Mercy {p} Health", f"{p} Diagnostic Imaging Ctr",
    ])


def make_phone(rng: random.Random) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(1000, 9999)
    return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+44 20 {rng.randint(3000, 8999)} {c}",
                       f"0049 {rng.randint(30, 89)} {rng.randint(100000, 9999999)}", f"+1-{a}-{b}-{c}"])


def fmt_date(d: dt.date, style: int) -> str:
    return [
        f"{d:%Y%m%d}", f"{d:%m/%d/%Y}", f"{d:%d/%m/%Y}", f"{d:%d.%m.%Y}", f"{d:%Y-%m-%d}",
        f"{d.day:02d}-{MONTHS[d.month - 1]}-{d.year}", f"{d:%b} {d.day}, {d.year}", f"{d.day} {d:%b} {d.year}",
        f"{d:%m/%d/%y}", f"{d:%Y/%m/%d}", f"{d.day:02d}{MONTHS[d.month - 1]}{d.year}",
    ][style % 11]


def name_segs(p: Person, style: str, kind: str = "name", ascii_only: bool = False) -> list[tuple[str, str]]:
    fam, giv, mid = p.family, p.given, p.middle
    if ascii_only:
        fam, giv = translit(fam), translit(giv)
    title = {"F": "Mrs. ", "M": "Mr. "}[p.sex]
    mi = f" {mid}." if mid else ""
    if style == "dicom":
        return [(p.pn() if not ascii_only else translit(p.pn()), kind)]
    if style == "comma":
        return [(f"{fam}, {giv}{mi}", kind)]
    if style == "COMMA":
        return [(f"{fam.upper()}, {giv.upper()}", kind)]
    if style == "first_last":
        return [(f"{giv} {fam}", kind)]
    if style == "LAST_FIRST":
        return [(f"{fam.upper()} {giv.upper()}{mi.upper()}", kind)]
    if style == "initial":
        return [(f"{giv[0]}. {fam}", kind)]
    if style == "initials":
        return [("".join(w[0] + "." for w in (giv.split() + ([mid] if mid else []) + fam.split())), kind)]
    if style == "titled":
        return [(title, "label"), (f"{giv} {fam}", kind)]
    if style == "last":
        return [(fam.upper(), kind)]
    raise ValueError(style)


NAME_STYLES = ["dicom", "comma", "COMMA", "first_last", "LAST_FIRST", "initial", "titled"]


def doc_segs(p: Person, rng: random.Random, kind: str = "physician", ascii_only: bool = False) -> list[tuple[str, str]]:
    fam, giv = (translit(p.family), translit(p.given)) if ascii_only else (p.family, p.given)
    s = rng.randrange(6)
    if s == 0:
        return [("Dr. ", "label"), (fam, kind)]
    if s == 1:
        return [("Dr ", "label"), (f"{giv} {fam}", kind)]
    if s == 2:
        return [(p.pn() if not ascii_only else translit(p.pn()), kind)]
    if s == 3:
        return [(f"{fam}, {giv[0]}.", kind), (" MD", "label")]
    if s == 4:
        return [(f"{fam.upper()} {giv[0]}", kind)]
    return [("Prof. Dr. ", "label"), (f"{giv} {fam}", kind)]


@dataclass
class Identity:
    patient: Person
    study_date: dt.date
    study_time: str
    accession: str
    institution: str
    phone: str
    ref: Person
    rad: Person
    staff: Person

    def inst_display(self, rng: random.Random) -> str:
        s = rng.randrange(4)
        if s == 0:
            return self.institution
        if s == 1:
            return translit(self.institution).upper()
        if s == 2:
            return translit(self.institution).upper()[:16].rstrip()
        return self.institution.replace("Hospital", "Hosp").replace("Medical Center", "Med Ctr").replace(
            "University", "Univ")


def make_identity(rng: random.Random) -> Identity:
    p = make_person(rng, adult=rng.random() < 0.88)
    p.mrn = make_mrn(rng)
    sd = dt.date(rng.randint(2019, 2025), rng.randint(1, 12), rng.randint(1, 28))
    if sd <= p.dob:
        sd = p.dob + dt.timedelta(days=400)
    return Identity(p, sd, f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}",
                    make_accession(rng, sd), make_institution(rng), make_phone(rng), make_person(rng),
                    make_person(rng), make_person(rng))


def header_of(idn: Identity, mode: str, rng: random.Random) -> dict[str, str]:
    p = idn.patient
    h = {
        "PatientName": p.pn() if rng.random() < 0.7 else f"{p.family}^{p.given}" + (f"^{p.middle}" if p.middle else ""),
        "PatientID": p.mrn.replace(" ", ""), "PatientBirthDate": f"{p.dob:%Y%m%d}", "PatientSex": p.sex,
        "StudyDate": f"{idn.study_date:%Y%m%d}", "StudyTime": idn.study_time, "AccessionNumber": idn.accession[:16],
        "InstitutionName": idn.institution, "ReferringPhysicianName": idn.ref.pn(),
        "PerformingPhysicianName": idn.rad.pn(), "OperatorsName": idn.staff.pn(),
    }
    if mode == "scrubbed":
        h.update({"PatientName": "ANONYMOUS^PATIENT", "PatientID": f"ANON{rng.randint(1000, 9999)}",
                  "PatientBirthDate": "", "StudyDate": "", "AccessionNumber": "", "InstitutionName": "",
                  "ReferringPhysicianName": "", "PerformingPhysicianName": "", "OperatorsName": ""})
    elif mode == "partial":
        h.update({"PatientBirthDate": "", "ReferringPhysicianName": "", "OperatorsName": "",
                  "InstitutionName": "" if rng.random() < 0.5 else h["InstitutionName"]})
    return h


# --------------------------------------------------------------------------------------------------------------------
# backgrounds


class Res:
    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.dicom_dir = shared / "data" / "dicom"
        self.vqa = sorted((shared / "data" / "vqa_rad" / "images").glob("*.jpg"))
        if not self.vqa:
            raise SystemExit(f"no VQA-RAD images under {shared}")

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one Res per process
    def dcm(self, rel: str) -> tuple[Dataset, np.ndarray]:
        ds = pydicom.dcmread(self.dicom_dir / rel)
        arr = ds.pixel_array
        if ds.PhotometricInterpretation == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut
            arr = apply_color_lut(arr, ds)
            if arr.dtype != np.uint8:
                arr = (arr / 257).astype(np.uint8)
        return ds, arr

    def vqa_bg(self, rng: random.Random, w: int, h: int, gray: bool = True) -> np.ndarray:
        p = rng.choice(self.vqa)
        im = Image.open(p).convert("RGB")
        W, H = im.size
        frac = rng.uniform(0.78, 0.9)  # central crop: most VQA-RAD pictures carry their own corner labels
        cw, ch = W * frac, H * frac
        tgt = w / h
        if cw / ch > tgt:
            cw = ch * tgt
        else:
            ch = cw / tgt
        x0 = (W - cw) / 2 + rng.uniform(-0.04, 0.04) * W
        y0 = (H - ch) / 2 + rng.uniform(-0.04, 0.04) * H
        x0, y0 = max(0, min(W - cw, x0)), max(0, min(H - ch, y0))
        im = im.resize((w, h), Image.Resampling.LANCZOS, box=(x0, y0, x0 + cw, y0 + ch))
        a = np.asarray(im, np.float32)
        if gray:
            a = a.mean(axis=2, keepdims=True).repeat(3, axis=2)
        return a

    def native_resized(self, rel: str, w: int, h: int, box: tuple[float, float, float, float] | None = None,
                       frame: int = 0) -> np.ndarray:
        ds, arr = self.dcm(rel)
        a = arr[frame] if arr.ndim == 3 and int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr
        a = a.astype(np.float32)
        im = Image.fromarray(a)
        return np.asarray(im.resize((w, h), Image.Resampling.BOX, box=box), np.float32)

    def rgb_crop(self, rel: str, box: tuple[int, int, int, int], w: int, h: int, frame: int = 0,
                 dx: int = 0, dy: int = 0) -> np.ndarray:
        ds, arr = self.dcm(rel)
        a = arr[frame] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        x0, y0, x1, y1 = box
        im = Image.fromarray(a.astype(np.uint8)).crop((x0 + dx, y0 + dy, x1 + dx, y1 + dy))
        return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), np.float32)


def smooth_noise(nprng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(nprng.normal(0, 1, (h, w)).astype(np.float32), sigma)
    return n / (n.std() + 1e-6)


def us_sector(nprng: np.random.Generator, w: int, h: int, apex: tuple[float, float], r0: float, r1: float,
              half_angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - apex[0], yy - apex[1]
    r = np.hypot(dx, dy)
    th = np.degrees(np.arctan2(dx, dy))
    inside = (r > r0) & (r < r1) & (np.abs(th) < half_angle)
    speck = nprng.gamma(1.2, 1.0, (h, w)).astype(np.float32)
    speck = ndimage.gaussian_filter(speck, (0.6, 1.4))
    tissue = 0.6 + 0.5 * smooth_noise(nprng, h, w, 18)
    for _ in range(3):  # a few bright interfaces
        cy = apex[1] + nprng.uniform(r0 + 40, r1 - 20)
        tissue += 1.2 * np.exp(-((r - (cy - apex[1])) ** 2) / 30.0) * (nprng.random() < 0.8)
    depth = np.clip(1.1 - (r - r0) / (r1 - r0) * 0.6, 0.3, 1.2)
    img = np.clip(speck * tissue * depth * 70, 0, 255)
    return np.where(inside, img, 0).astype(np.float32)


def angio_bg(nprng: np.random.Generator, w: int, h: int, n_frames: int) -> list[np.ndarray]:
    base = 150 + 18 * smooth_noise(nprng, h, w, 40)
    vess = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(vess)
    for _ in range(5):
        x, y = nprng.uniform(0.3, 0.7) * w, nprng.uniform(0.05, 0.2) * h
        ang = nprng.uniform(1.2, 1.9)
        width = int(nprng.integers(4, 9))
        for _ in range(40):
            nx, ny = x + 12 * math.cos(ang), y + 12 * math.sin(ang)
            d.line([(x, y), (nx, ny)], fill=255, width=width)
            x, y, ang = nx, ny, ang + nprng.normal(0, 0.25)
            if nprng.random() < 0.05:
                width = max(2, width - 1)
    v = ndimage.gaussian_filter(np.asarray(vess, np.float32) / 255, 1.2)
    yy, xx = np.mgrid[0:h, 0:w]
    circ = np.hypot(xx - w / 2, yy - h / 2) < min(w, h) * 0.49
    out = []
    for f in range(n_frames):
        fill = 0.4 + 0.6 * min(1.0, (f + 1) / max(1, n_frames - 1))
        a = base - 95 * v * fill + nprng.normal(0, 6, (h, w))
        out.append(np.where(circ, np.clip(a, 0, 255), 0).astype(np.float32))
    return out


def skin_bg(nprng: np.random.Generator, w: int, h: int) -> np.ndarray:
    tone = np.array([nprng.uniform(150, 230), nprng.uniform(105, 175), nprng.uniform(80, 140)], np.float32)
    light = 0.8 + 0.25 * smooth_noise(nprng, h, w, 120)[..., None] * 0.6
    yy, xx = np.mgrid[0:h, 0:w]
    grad = (0.85 + 0.3 * (xx / w))[..., None]
    img = tone * light * grad + 6 * smooth_noise(nprng, h, w, 2)[..., None]
    cx, cy = nprng.uniform(0.35, 0.65) * w, nprng.uniform(0.35, 0.65) * h
    rx, ry = nprng.uniform(25, 60), nprng.uniform(20, 50)
    les = np.exp(-(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) ** 1.5)
    img = img * (1 - 0.55 * les[..., None]) + np.array([70, 40, 30], np.float32) * 0.3 * les[..., None]
    return np.clip(img, 0, 255).astype(np.float32)


def paper_bg(nprng: np.random.Generator, w: int, h: int) -> np.ndarray:
    tint = np.array([246, 244, 236], np.float32)
    img = tint - 4 * np.abs(smooth_noise(nprng, h, w, 60))[..., None] - 2 * smooth_noise(nprng, h, w, 1.0)[..., None]
    return np.clip(img, 0, 255).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------------
# scenes


@dataclass
class Ctx:
    rng: random.Random
    nprng: np.random.Generator
    res: Res
    idn: Identity  # what the pixels show
    hdr_idn: Identity  # what the header says (same object unless mis-filed)
    id_mode: str


def L(t: str) -> tuple[str, str]:
    return (t, "label")


def D(t: str) -> tuple[str, str]:
    return (t, "decor")


def date_style(rng: random.Random) -> int:
    return rng.randrange(11)


def dicom_container(sc: Scene, ctx: Ctx, modality: str, base: str, sop: str, extra: dict[str, Any] | None = None,
                    rle: bool | None = None) -> None:
    sc.container = {"type": "dicom", "modality": modality, "base": base, "sop": sop, "extra": extra or {},
                    "rle": (ctx.rng.random() < 0.3) if rle is None else rle,
                    "burned_in": ctx.rng.choice(["YES", "YES", "NO", None, None])}


def png_or_jpeg(sc: Scene, ctx: Ctx, jpeg_q: int | None = None) -> None:
    if jpeg_q is None and ctx.rng.random() < 0.5:
        sc.container = {"type": "png"}
    else:
        sc.container = {"type": "jpeg", "quality": jpeg_q or ctx.rng.randint(75, 92),
                        "subsampling": ctx.rng.choice([0, 2])}


def scene_us_banner(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = rng.choice([(640, 480), (800, 600)])
    sc = Scene("us_vendor_banner", W, H, Domain(3))
    bh = rng.choice([24, 28, 32])
    s = W / 640
    src = rng.choice(["us1", "echo", "synth"])
    if src == "us1":
        sc.bg[0][bh + 50:bh + 50 + int(227 * s), int(50 * s):int(590 * s)] = ctx.res.rgb_crop(
            "pydicom_data/US1_J2KR.dcm", (50, 108, 590, 335), int(540 * s), int(227 * s))
    elif src == "echo":
        h2 = H - bh - 60
        sc.bg[0][bh + 30:bh + 30 + h2, int(110 * s):int(110 * s) + int(h2 * 1.1)] = ctx.res.rgb_crop(
            "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm", (160, 160, 745, 690), int(h2 * 1.1), h2)
    else:
        sc.set_bg(us_sector(ctx.nprng, W, H, (W / 2, bh + 10), 30, H - 40, 38))
    sc.rect(0, 0, W, bh, rng.choice([(18, 32, 70), (40, 40, 40), (0, 0, 0)]), plate=True)
    for i in range(60):  # grey bar on the right
        sc.rect(W - 22 * s, bh + 60 + i * 2, W - 14 * s, bh + 62 + i * 2, 255 - i * 4)
    fnt, size = rng.choice([("pil", 11), ("sans", 12), ("cond", 13), ("sans_b", 11), ("pil_ft", 12)])
    white = rng.choice([255, 230, (220, 230, 255)])
    y = (bh - (11 if fnt == "pil" else size)) // 2
    sc.text([(idn.inst_display(rng), "institution")], 6, y, font=fnt, size=size, fill=white)
    nm = name_segs(idn.patient, rng.choice(NAME_STYLES), ascii_only=rng.random() < 0.5)
    sc.text(nm, W * rng.uniform(0.33, 0.42), y, font=fnt, size=size, fill=white)
    ds = date_style(rng)
    right = [L("ID:"), (idn.patient.mrn, "mrn"), D("  "), (fmt_date(idn.study_date, ds), "study_date"),
             D(f" {idn.study_time[:2]}:{idn.study_time[2:4]}")]
    sc.rtext(right, W - 6, y, font=fnt, size=size, fill=white)
    lh = (11 if fnt == "pil" else size) + 3
    probe = rng.choice(["C5-1", "L12-5", "C1-6-D", "9L-D", "S5-1", "EC9-5", "L18-4"])
    preset = rng.choice(["Abd Gen", "Renal", "Thyroid", "OB 2/3", "Vasc Carotid"])
    left = [[(probe, "probe")], [(preset, "acq")],
            [(f"MI {rng.uniform(0.6, 1.4):.1f}", "acq")], [(f"TIs {rng.uniform(0.1, 1):.1f}", "acq")],
            [(f"Frq {rng.choice(['3.5', '4.0', '5.0', '9.0'])}MHz", "acq")], [(f"Gn {rng.randint(40, 70)}", "acq")],
            [(f"DR {rng.randint(50, 75)}", "acq")], [(f"D {rng.choice([12, 14, 16, 18])} cm", "scale")]]
    for i, ln in enumerate(left):
        sc.text(ln, 6, bh + 8 + i * lh, font=fnt, size=size, fill=white)
    for i, v in enumerate(["0", "5", "10", "15"]):  # depth scale
        yy = bh + 40 + i * (H - bh - 90) / 3
        sc.rect(W - 40 * s, yy, W - 30 * s, yy + 2, 230)
        sc.rtext([(v, "scale")], W - 42 * s, yy - 5, font=fnt, size=size, fill=white)
    sc.text([("cm", "unit")], W - 40 * s, H - 40, font=fnt, size=size, fill=white)
    sc.text([(rng.choice(["RT KIDNEY LONG", "LT LOBE TRANS", "GB", "LIVER SAG", "CBD"]), "annot")], W * 0.4,
            H - 28, font=fnt, size=size, fill=(255, 255, 120))
    sc.text([("+", "decor"), (f" Dist {rng.uniform(0.5, 9):.2f} cm", "measurement")], W * 0.62, H - 60,
            font=fnt, size=size, fill=(255, 255, 0))
    st = rng.randrange(3)
    if st == 0:
        staff = [L("Sono: "), ("".join(w[0] for w in (idn.staff.given + " " + idn.staff.family).split()).upper(),
                                "staff")]
    elif st == 1:
        staff = [L("Sonographer: "), (f"{idn.staff.given[0]}. {translit(idn.staff.family)}", "staff")]
    else:
        staff = [L("Acc#: "), (idn.accession, "accession")]
    sc.text(staff, 6, H - 18, font=fnt, size=size, fill=white)
    dicom_container(sc, ctx, "US", "pydicom_data/US1_J2KR.dcm", "1.2.840.10008.5.1.4.1.1.6.1")
    return sc


def scene_us_cine(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H, n = 640, 480, rng.choice([3, 4])
    sc = Scene("us_cine_multiframe", W, H, Domain(3), n_frames=n)
    for f in range(n):
        dx, dy = int(round(6 * math.sin(f))), int(round(3 * math.cos(f)))
        sc.bg[f][70:70 + 340, 120:120 + 380] = ctx.res.rgb_crop(
            "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm", (200, 170, 700, 620), 380, 340, dx=dx, dy=dy)
    # colour bar of a Doppler box
    for i in range(50):
        sc.rect(W - 30, 80 + i * 2, W - 20, 82 + i * 2, (255 - i * 3, 60 + i, i * 5) if i < 25 else (i * 2, 80, 255))
    fnt, size = rng.choice([("pil", 11), ("sans", 11), ("mono", 11), ("cond_b", 12)])
    col = rng.choice([(255, 255, 255), (200, 220, 255), (230, 230, 170)])
    inst = idn.inst_display(rng)
    ds = date_style(rng)
    tl = [[(inst, "institution")], name_segs(idn.patient, rng.choice(NAME_STYLES)),
          [L("MRN "), (idn.patient.mrn, "mrn")],
          [L("DOB "), (fmt_date(idn.patient.dob, ds), "dob")]]
    sc.corner(tl, "tl", fnt, size, col, margin=5)
    tr = [[(fmt_date(idn.study_date, ds), "study_date")], [(rng.choice(["Adult Echo", "Cardiac", "Abd"]), "acq")],
          [(rng.choice(["S5-1", "X5-1", "P4-2"]), "probe"), (f" {rng.randint(40, 70)}Hz", "acq")],
          [(f"{rng.choice([14, 16, 18])}cm", "scale")]]
    sc.corner(tr, "tr", fnt, size, col, margin=5)
    v = f"{rng.uniform(20, 80):.1f}"
    sc.rtext([(f"+{v}", "scale")], W - 34, 76, font=fnt, size=size, fill=col)
    sc.rtext([(f"-{v}", "scale")], W - 34, 176, font=fnt, size=size, fill=col)
    sc.rtext([("cm/s", "unit")], W - 34, 192, font=fnt, size=size, fill=col)
    for f in range(n):  # per-frame clock and frame counter
        sc.text([D(f"00:0{f}.{rng.randint(10, 99)}")], 5, H - 18, font=fnt, size=size, fill=col, frames=[f])
        sc.rtext([(f"{f + 1}/{n}", "slice")], W - 5, H - 18, font=fnt, size=size, fill=col, frames=[f])
    sc.text([("HR", "acq"), (f" {rng.randint(55, 110)} bpm", "acq")], W - 110, H - 40, font=fnt, size=size, fill=col)
    if rng.random() < 0.6:
        sc.text([L("Ref: ")] + doc_segs(idn.ref, rng), 5, H - 34, font=fnt, size=size, fill=col)
    dicom_container(sc, ctx, "US", "pydicom_data/OBXXXX1A_rle_2frame.dcm", "1.2.840.10008.5.1.4.1.1.3.1",
                    extra={"cine": True})
    return sc


def cr_domain(rel: str, res: Res) -> Domain:
    ds, arr = res.dcm(rel)
    return Domain(1, 16, mono1=True, wc=float(ds.WindowCenter), ww=float(ds.WindowWidth), lo=0,
                  hi=float(2 ** int(ds.BitsStored) - 1))


def scene_cr_flashcard(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    rel = "pydicom_data/RG1_J2KI.dcm"
    dom = cr_domain(rel, ctx.res)
    W, H = 920, 977
    sc = Scene("cr_chest_flashcard", W, H, dom)
    sc.set_bg(ctx.res.native_resized(rel, W, H))
    cw, ch = rng.randint(250, 300), rng.randint(130, 160)
    cx = rng.choice([16, W - cw - 16])
    cy = rng.choice([14, H - ch - 14])
    sc.rect(cx, cy, cx + cw, cy + ch, rng.randint(215, 240), plate=True)
    fnt = rng.choice(["mono_b", "sans", "serif", "cond", "pil_ft"])
    size = rng.randint(12, 15)
    dark = rng.randint(0, 40)
    ang = rng.uniform(-2.5, 2.5) if rng.random() < 0.4 else 0.0
    ds = date_style(rng)
    lines: list[list[tuple[str, str]]] = [[(translit(idn.institution).upper(), "institution")]]
    if rng.random() < 0.5:  # name split over two lines
        lines += [[L("NAME: "), (translit(idn.patient.family).upper() + ",", "name")],
                  [L("      "), (translit(idn.patient.given).upper(), "name")]]
    else:
        lines += [[L("NAME: ")] + name_segs(idn.patient, rng.choice(["COMMA", "LAST_FIRST", "dicom"]),
                                            ascii_only=True)]
    lines += [[L("DOB: "), (fmt_date(idn.patient.dob, ds), "dob"), D("  SEX: "), D(idn.patient.sex)],
              [L("MRN: "), (idn.patient.mrn, "mrn")],
              [L("EXAM DATE: "), (fmt_date(idn.study_date, ds), "study_date")]]
    if rng.random() < 0.5:
        lines.append([L("ACC "), (idn.accession, "accession")])
    for i, ln in enumerate(lines):
        it = Item(ln, 0, 0, font=fnt, size=size, fill=dark, angle=ang)
        w, _ = it.ink_size()
        if w > cw - 12:
            it = Item(ln, 0, 0, font=fnt, size=max(9, int(size * (cw - 12) / w)), fill=dark, angle=ang)
        place_rotated(it, cx + 6, cy + 6 + i * (size + 4))
        sc.items.append(it)
    mk = rng.choice(["R", "L"])
    sc.text([(mk, "marker")], rng.choice([60, W - 120]), rng.randint(200, 300), font="sans_b", size=rng.randint(36, 52),
            fill=250, stroke=2, stroke_fill=20)
    sc.text([(rng.choice(["PA", "AP"]), "view"), (" ERECT", "view")], W // 2 - 60, 30 if cy > 100 else H - 50,
            font="sans_b", size=20, fill=245)
    if rng.random() < 0.5:
        sc.text([("PORTABLE", "view")], W // 2 - 70, 60 if cy > 100 else H - 80, font="sans", size=18, fill=245)
    sc.legible([it for it in sc.items if all(k in ("marker", "view") for _, k in it.segs)])
    dicom_container(sc, ctx, "CR", rel, "1.2.840.10008.5.1.4.1.1.1", extra={"window": (dom.wc, dom.ww)})
    return sc


def scene_dx_vertical(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    rel = "pydicom_data/RG3_J2KI.dcm"
    dom = cr_domain(rel, ctx.res)
    W = H = 880
    sc = Scene("dx_vertical_label", W, H, dom)
    sc.set_bg(ctx.res.native_resized(rel, W, H))
    ang = rng.choice([90, 270])
    fnt = rng.choice(["sans", "cond_b", "mono", "pil_ft"])
    size = rng.randint(13, 17)
    fill = rng.choice([255, 240, 20])
    ds = date_style(rng)
    l1 = [(idn.inst_display(rng), "institution"), D("   ")] + name_segs(idn.patient, rng.choice(NAME_STYLES))
    l2 = [L("DOB "), (fmt_date(idn.patient.dob, ds), "dob"), D("  "), L("Acc "), (idn.accession, "accession"),
          D("  "), (fmt_date(idn.study_date, ds), "study_date")]
    x = 1 if rng.random() < 0.5 else 3
    it1 = Item(l1, 0, 0, font=fnt, size=size, fill=fill, angle=ang)
    it2 = Item(l2, 0, 0, font=fnt, size=size, fill=fill, angle=ang)
    w1, h1 = it1.ink_size()
    w2, h2 = it2.ink_size()
    left_side = rng.random() < 0.6
    if left_side:
        it1.x, it2.x = x, x + w1 + 4
    else:
        it1.x, it2.x = W - x - w1, W - x - w1 - 4 - w2
    it1.y = rng.randint(20, max(21, H - h1 - 20))
    it2.y = rng.randint(20, max(21, H - h2 - 20))
    sc.items += [it1, it2]
    sc.text([(rng.choice(["L", "R"]), "marker")], W * 0.7 if left_side else W * 0.15, 40, font="sans_b",
            size=rng.randint(34, 44), fill=250)
    sc.text([(rng.choice(["AP", "LAT", "OBL"]), "view")], W * 0.45, 20, font="sans", size=18, fill=235)
    if rng.random() < 0.5:
        sc.text([("WB", "view")], W * 0.45, 44, font="sans", size=18, fill=235)
    sc.rect(W * 0.3, H - 40, W * 0.3 + 120, H - 37, 250)
    sc.text([("10", "scale"), (" cm", "unit")], W * 0.3 + 30, H - 62, font="sans", size=14, fill=250)
    sc.legible()
    dicom_container(sc, ctx, rng.choice(["CR", "DX"]), rel, "1.2.840.10008.5.1.4.1.1.1",
                    extra={"window": (dom.wc, dom.ww)})
    return sc


def ct_display(res: Res, rel: str, w: int, h: int, wc: float, ww: float) -> np.ndarray:
    ds, _ = res.dcm(rel)
    a = res.native_resized(rel, w, h) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0)
                                                                                     or 0)
    return np.clip((a - (wc - ww / 2)) / ww, 0, 1) * 255


def four_corner(sc: Scene, ctx: Ctx, fnt: str, size: int, col: Any, modality: str, ascii_only: bool = False,
                margin: int = 3) -> None:
    rng, idn = ctx.rng, ctx.idn
    ds = date_style(rng)
    tl = [[(idn.inst_display(rng), "institution")] if rng.random() < 0.8 else None,
          name_segs(idn.patient, rng.choice(NAME_STYLES), ascii_only=ascii_only),
          [L(rng.choice(["ID: ", "MRN: ", "PID "])), (idn.patient.mrn, "mrn")],
          [L("DOB: "), (fmt_date(idn.patient.dob, ds), "dob")] if rng.random() < 0.8 else
          [(fmt_date(idn.patient.dob, ds), "dob"), D(f" {idn.patient.sex}")]]
    tr = [[(fmt_date(idn.study_date, ds), "study_date"), D(f" {idn.study_time[:2]}:{idn.study_time[2:4]}")],
          [L(rng.choice(["Acc: ", "Ex: ", "ACC#"])), (idn.accession, "accession")] if rng.random() < 0.7 else None,
          [("Se:", "slice"), (f" {rng.randint(1, 12)}", "slice")], [("Im:", "slice"), (f" {rng.randint(1, 300)}",
                                                                                       "slice")]]
    if modality == "CT":
        bl = [[(f"kV {rng.choice([80, 100, 120, 140])}", "exposure")], [(f"mA {rng.randint(80, 450)}", "exposure")],
              [(f"{rng.choice(['0.625', '1.25', '2.5', '5.0'])} mm", "measurement")],
              [(f"W:{rng.choice([400, 350, 1500, 2000])} L:{rng.choice([40, 50, -600, 300])}", "window")]]
    else:
        bl = [[(f"TR {rng.randint(400, 6000)}", "acq")], [(f"TE {rng.randint(8, 120)}", "acq")],
              [(f"FOV {rng.choice([220, 240, 350])}*{rng.choice([220, 240, 350])}", "acq")],
              [(f"W {rng.randint(300, 2000)} C {rng.randint(150, 900)}", "window")]]
    br = [[L("Ref: ")] + doc_segs(idn.ref, rng, ascii_only=ascii_only)] if rng.random() < 0.7 else []
    br += [[(f"Zoom {rng.choice([100, 125, 150, 200])}%", "acq")]]
    for lines, c in ((tl, "tl"), (tr, "tr"), (bl, "bl"), (br, "br")):
        sc.corner(lines, c, fnt, size, col, margin=margin, spacing=2)
    # orientation letters at edge midpoints
    for t, x, y in (("A", sc.W / 2 - 3, margin + 1), ("R", margin + 1, sc.H / 2 - 5), ("L", sc.W - margin - 8,
                                                                                        sc.H / 2 - 5)):
        sc.text([(t, "marker")], x, y, font=fnt, size=size, fill=col)


def scene_ct_sc_4corner(ctx: Ctx) -> Scene:
    rng = ctx.rng
    n = rng.choice([256, 320, 512])
    sc = Scene("ct_sc_4corner_small", n, n, Domain(1))
    rel = rng.choice(["pydicom_data/693_UNCI.dcm", "pydicom_data/explicit_VR-UN.dcm"])
    wc, ww = rng.choice([(40, 400), (-600, 1500), (50, 350)])
    sc.set_bg(ct_display(ctx.res, rel, n, n, wc, ww))
    fnt, size = (("pil", 11) if n < 400 and rng.random() < 0.6 else (rng.choice(["sans", "cond", "mono"]),
                                                                     9 if n < 400 else 11))
    four_corner(sc, ctx, fnt, size, rng.choice([255, 235, 200]), "CT", ascii_only=True)
    dicom_container(sc, ctx, "CT", "pydicom_data/693_UNCI.dcm", "1.2.840.10008.5.1.4.1.1.7",
                    extra={"window": (127.5, 256)})
    return sc


def scene_mr_color_4corner(ctx: Ctx) -> Scene:
    rng = ctx.rng
    n = rng.choice([384, 448, 512])
    sc = Scene("mr_sc_colour_overlay", n, n, Domain(3))
    rel = rng.choice(["dcm_qa_ts/1.dcm", "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm", "pydicom_data/MR2_J2KI.dcm"])
    ds, arr = ctx.res.dcm(rel)
    a = ctx.res.native_resized(rel, n, n)
    lo, hi = np.percentile(a, 1), np.percentile(a, 99.5)
    sc.set_bg(np.clip((a - lo) / (hi - lo + 1e-6), 0, 1) * 255)
    col = rng.choice([(255, 255, 0), (0, 255, 0), (0, 230, 255), (255, 200, 80), (255, 255, 255)])
    fnt = rng.choice(["sans", "cond", "sans_b", "pil_ft", "mono"])
    four_corner(sc, ctx, fnt, rng.choice([10, 11, 12]), col, "MR")
    sc.rect(n - 16, n * 0.3, n - 14, n * 0.7, col)
    for i in range(11):
        sc.rect(n - 20, n * 0.3 + i * n * 0.04, n - 14, n * 0.3 + i * n * 0.04 + 1, col)
    sc.text([("10", "scale"), (" cm", "unit")], n - 58, n * 0.7 + 4, font=fnt, size=10, fill=col)
    sc.text([(rng.choice(["Sag T2 TSE", "Ax T1 FS+C", "Cor STIR", "Ax DWI b800"]), "acq")], n * 0.35, n - 16,
            font=fnt, size=11, fill=col)
    dicom_container(sc, ctx, "MR", rel if rel != "pydicom_data/MR2_J2KI.dcm" else "dcm_qa_ts/1.dcm",
                    "1.2.840.10008.5.1.4.1.1.7")
    return sc


def scene_ct_native(ctx: Ctx) -> Scene:
    rng = ctx.rng
    rel = "pydicom_data/693_UNCI.dcm"
    wc, ww = rng.choice([(40, 400), (50, 350), (40, 80)])
    # stored = HU + 1024, 12 bits used
    dom = Domain(1, 16, wc=wc + 1024, ww=ww, lo=0, hi=4095)
    sc = Scene("ct_native_16bit_burn", 512, 512, dom)
    ds, _ = ctx.res.dcm(rel)
    hu = ctx.res.native_resized(rel, 512, 512) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    sc.set_bg(np.clip(hu + 1024, 0, 4095))
    fnt = rng.choice(["sans", "cond", "mono_b", "pil"])
    size = rng.choice([11, 12, 13])
    val = 4095 if rng.random() < 0.7 else wc + 1024 + ww / 2  # stored maximum, or just the window's top
    disp = (val - (wc + 1024 - ww / 2)) / ww * 255  # display value >255 maps to a stored value above the window
    four_corner(sc, ctx, fnt, size, disp, "CT", ascii_only=True)
    sc.rect(30, 470, 130, 472, 255)
    sc.text([("5", "scale"), (" cm", "unit")], 60, 452, font=fnt, size=size, fill=255)
    sc.text([("HFS", "acq")], 230, 490, font=fnt, size=size, fill=255)
    dicom_container(sc, ctx, "CT", rel, "1.2.840.10008.5.1.4.1.1.2", extra={"window": (wc, ww), "rescale": -1024})
    sc.notes.append(f"text value stored {val}")
    return sc


def scene_nm_wholebody(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    rel = "pydicom_data/JPEG-LL.dcm"
    dom = Domain(1, 16, wc=70, ww=140, lo=0, hi=1023)
    W, H = 512, 1024
    sc = Scene("nm_whole_body", W, H, dom)
    a = np.clip(ctx.res.native_resized(rel, 256, 1024), 0, 1023)
    sc.bg[0][:, :256, 0] = a
    sc.bg[0][:, 256:, 0] = a[:, ::-1]
    fnt = rng.choice(["sans", "pil", "cond", "mono"])
    size = rng.choice([10, 11, 12])
    f = 255
    sc.text([("ANT", "view")], 100, 6, font=fnt, size=size + 2, fill=f)
    sc.text([("POST", "view")], 356, 6, font=fnt, size=size + 2, fill=f)
    sc.text([("R", "marker")], 6, 30, font=fnt, size=size + 2, fill=f)
    sc.text([("L", "marker")], 242, 30, font=fnt, size=size + 2, fill=f)
    sc.text([("L", "marker")], 262, 30, font=fnt, size=size + 2, fill=f)
    sc.text([("R", "marker")], 498, 30, font=fnt, size=size + 2, fill=f)
    ds = date_style(rng)
    lines = [name_segs(idn.patient, rng.choice(NAME_STYLES), ascii_only=True),
             [L("ID "), (idn.patient.mrn, "mrn"), D("  "), L("DOB "), (fmt_date(idn.patient.dob, ds), "dob")],
             [(fmt_date(idn.study_date, ds), "study_date"), D("  "), (idn.inst_display(rng), "institution")],
             [("Tc-99m", "acq"), (" MDP", "acq"), (f" {rng.choice([555, 740, 925])} MBq", "acq")],
             [(f"{rng.choice([10, 12, 15])} cm/min", "acq")]]
    sc.corner(lines, "bl", fnt, size, f, margin=4, spacing=4)
    if rng.random() < 0.6:
        it = Item(name_segs(idn.patient, "dicom", ascii_only=True) + [D("  "), (idn.patient.mrn, "mrn")], 0, 0,
                  font=fnt, size=size, fill=f, angle=rng.choice([90, 270]))
        w, h = it.ink_size()
        it.x, it.y = W - w - 2, (H - h) // 2
        sc.items.append(it)
    dicom_container(sc, ctx, "NM", rel, "1.2.840.10008.5.1.4.1.1.7", extra={"window": (70, 140)})
    return sc


def scene_xa_cine(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    n = rng.choice([3, 4])
    W = H = 512
    sc = Scene("xa_angio_cine", W, H, Domain(1), n_frames=n)
    for f, a in enumerate(angio_bg(ctx.nprng, W, H, n)):
        sc.set_bg(a, frame=f)
    fnt = rng.choice(["sans", "cond", "pil", "mono_b"])
    size = rng.choice([11, 12, 13])
    col = rng.choice([255, 230])
    ds = date_style(rng)
    tl = [name_segs(idn.patient, rng.choice(NAME_STYLES), ascii_only=True),
          [L("ID:"), (idn.patient.mrn, "mrn")], [L("DOB:"), (fmt_date(idn.patient.dob, ds), "dob")]]
    tr = [[(idn.inst_display(rng), "institution")], [(fmt_date(idn.study_date, ds), "study_date")],
          [L("Phys: ")] + doc_segs(idn.rad, rng, ascii_only=True)]
    sc.corner(tl, "tl", fnt, size, col, margin=4)
    sc.corner(tr, "tr", fnt, size, col, margin=4)
    bl = [[(f"LAO {rng.randint(0, 60)}", "acq"), (f"  CRA {rng.randint(0, 40)}", "acq")],
          [(f"{rng.choice([7.5, 15, 30])} fps", "acq")], [(f"{rng.randint(60, 90)} kV", "exposure"),
                                                           (f" {rng.uniform(2, 12):.1f} mA", "exposure")]]
    sc.corner(bl, "bl", fnt, size, col, margin=4)
    total = rng.randint(30, 90)
    for f in range(n):
        sc.rtext([("Frame", "slice"), (f" {f + 1}/{total}", "slice")], W - 4, H - 4 - 14, font=fnt, size=size,
                 fill=col, frames=[f])
    dicom_container(sc, ctx, "XA", "pydicom_data/SC_rgb_2frame.dcm", "1.2.840.10008.5.1.4.1.1.12.1",
                    extra={"window": (127.5, 256), "cine": True})
    return sc


def scene_pacs_screenshot(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = 1024, 640
    sc = Scene("pacs_screenshot", W, H, Domain(3))
    sc.fill_bg((28, 29, 33))
    sc.rect(0, 0, W, 26, (52, 54, 60))
    fnt = rng.choice(["sans", "cond", "pil_ft"])
    size = 11
    x = 8.0
    for b in ["File", "Study", "Tools", "W/L", "Zoom", "Pan", "Measure", "Layout"]:
        it = sc.text([D(b)], x, 7, font=fnt, size=size, fill=(210, 210, 215))
        x += it.advance() + 18
    pw = 340
    sc.rect(0, 26, pw, H - 22, (38, 40, 46))
    ds = date_style(rng)
    cols = [8, 140, 222, 256]
    for t, cx in zip(["Patient", "MRN", "Mod", "Date"], cols, strict=True):
        sc.text([D(t)], cx, 34, font=fnt, size=size, fill=(150, 160, 175))
    patients = [idn.patient] + [make_person(rng) for _ in range(rng.randint(3, 5))]
    for p in patients[1:]:
        p.mrn = make_mrn(rng)
    rng.shuffle(patients)
    for i, p in enumerate(patients):
        y = 54 + i * 20
        sel = p is idn.patient
        if sel:
            sc.rect(2, y - 3, pw - 2, y + 15, (40, 90, 160))
        c = (255, 255, 255) if sel else (205, 205, 210)
        nm = name_segs(p, "comma")
        txt = nm[0][0]
        if len(txt) > 20:
            txt = txt[:19] + "…"
        sc.text([(txt, "name")], cols[0], y, font=fnt, size=size, fill=c)
        sc.text([(p.mrn.replace(" ", "")[:10], "mrn")], cols[1], y, font=fnt, size=size, fill=c)
        sc.text([D(rng.choice(["CT", "MR", "CR", "US"]))], cols[2], y, font=fnt, size=size, fill=c)
        d = idn.study_date - dt.timedelta(days=rng.randint(0, 20)) if not sel else idn.study_date
        sc.text([(fmt_date(d, 9 if ds in (0, 6, 7) else ds), "study_date")], cols[3], y, font=fnt, size=size, fill=c)
    y = 54 + len(patients) * 20 + 14
    sc.text([D("Study details")], 8, y, font="sans_b", size=size, fill=(150, 160, 175))
    det = [[L("Name: ")] + name_segs(idn.patient, "first_last"), [L("Born: "), (fmt_date(idn.patient.dob, ds), "dob")],
           [L("Accession: "), (idn.accession, "accession")], [L("Referrer: ")] + doc_segs(idn.ref, rng),
           [L("Institution: "), (idn.inst_display(rng), "institution")]]
    for i, ln in enumerate(det):
        sc.text(ln, 8, y + 20 + i * 17, font=fnt, size=size, fill=(220, 220, 225))
    vx0, vy0, vx1, vy1 = pw + 6, 32, W - 6, H - 28
    sc.bg[0][vy0:vy1, vx0:vx1] = ctx.res.vqa_bg(rng, vx1 - vx0, vy1 - vy0, gray=True)
    vp = Scene("tmp", vx1 - vx0, vy1 - vy0, Domain(3))
    four_corner(vp, ctx, rng.choice(["sans", "cond"]), 12, rng.choice([(255, 255, 255), (255, 240, 120)]),
                rng.choice(["CT", "MR"]), margin=6)
    for it in vp.items:
        it.x += vx0
        it.y += vy0
        sc.items.append(it)
    sc.rect(0, H - 22, W, H, (45, 47, 52))
    sc.text([L("User: "), (f"{idn.rad.given[0]}{translit(idn.rad.family).lower().replace(' ', '')}"[:12], "staff"),
             D("   Connected   "), (idn.inst_display(rng), "institution")], 8, H - 17, font=fnt, size=size,
            fill=(190, 190, 195))
    png_or_jpeg(sc, ctx)
    if sc.container["type"] == "jpeg":
        sc.container["quality"] = ctx.rng.randint(85, 95)
    return sc


def scene_scanned_form(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = 720, 930
    gray = rng.random() < 0.5
    sc = Scene("scanned_requisition", W, H, Domain(1 if gray else 3))
    sc.set_bg(paper_bg(ctx.nprng, W, H))
    ink = rng.choice([(20, 20, 30), (0, 0, 0)])  # toner black, or a faded print
    hand = (25, 40, 120) if not gray else 40
    sc.text([(idn.institution, "institution")], 40, 36, font="serif_b", size=22, fill=ink)
    sc.text([D("Department of Radiology  ·  "), L("Tel "), (idn.phone, "phone")], 40, 66, font="serif", size=13,
            fill=ink)
    sc.rect(40, 90, W - 40, 92, ink)
    sc.text([D("RADIOLOGY REQUISITION")], 40, 104, font="sans_b", size=18, fill=ink)
    typed = rng.random() < 0.5
    vf, vs = ("mono", 14) if typed else (rng.choice(["serif_i", "serif_ci", "sans_i"]), 17)
    vcol = ink if typed else hand
    ds = date_style(rng)
    rows: list[tuple[str, list[tuple[str, str]]]] = [
        ("Patient name:", name_segs(idn.patient, rng.choice(["comma", "first_last", "COMMA", "titled"]))),
        ("Date of birth:", [(fmt_date(idn.patient.dob, ds), "dob")]),
        ("Hospital no.:", [(idn.patient.mrn, "mrn")]),
        ("Referring physician:", doc_segs(idn.ref, rng)),
        ("Contact phone:", [(make_phone(rng), "phone")]),
        ("Exam requested:", [(rng.choice(["CT ABDOMEN PELVIS W CONTRAST", "MRI LUMBAR SPINE WO", "US RENAL BILATERAL",
                                          "CXR PA AND LATERAL"]), "clinical")]),
        ("Clinical history:", [(rng.choice(["RLQ pain, r/o appendicitis", "low back pain 6 wks, L5 radiculopathy",
                                            "rising creatinine", "cough, fever 3 days"]), "clinical")]),
        ("Weight:", [(f"{rng.randint(45, 120)} kg", "measurement")]),
        ("Creatinine:", [(f"{rng.uniform(0.6, 1.8):.1f} mg/dL", "measurement")]),
    ]
    y = 150
    for lab, val in rows:
        sc.text([L(lab)], 40, y, font="sans", size=13, fill=ink)
        sc.rect(230, y + 17, W - 40, y + 18, (120, 120, 120))
        sc.text(val, 236, y - 3, font=vf, size=vs, fill=vcol)
        y += 44
    # multi-line address-free comment block with a split name (continuation lines)
    sc.text([L("Comments:")], 40, y, font="sans", size=13, fill=ink)
    fam = idn.patient.family
    sc.text([D("pt "), (fam + "-" if " " not in fam else fam.split()[0], "name"), D(" prev imaging at")], 236, y - 3,
            font=vf, size=vs, fill=vcol)
    sc.text([(make_institution(rng), "institution")], 236, y + 22, font=vf, size=vs, fill=vcol)
    y += 70
    sc.text([L("Requested by (signature):")], 40, y, font="sans", size=13, fill=ink)
    sc.text([(f"{idn.ref.given[0]}. {idn.ref.family}", "physician")], 250, y - 6, font="serif_i", size=22,
            fill=hand)
    sc.text([L("Date: "), (fmt_date(idn.study_date, ds), "study_date")], 40, y + 40, font="sans", size=13, fill=ink)
    for i in range(3):  # check boxes (graphics)
        bx = 300 + i * 110
        sc.rect(bx, y + 40, bx + 12, y + 41, ink)
        sc.rect(bx, y + 52, bx + 12, y + 53, ink)
        sc.rect(bx, y + 40, bx + 1, y + 53, ink)
        sc.rect(bx + 11, y + 40, bx + 12, y + 53, ink)
        sc.text([D(["Inpatient", "Outpt", "ED"][i])], bx + 18, y + 40, font="sans", size=12, fill=ink)
    sc.post += [("skew", rng.uniform(-1.8, 1.8), (246, 244, 236)), ("blur", rng.uniform(0.4, 0.8)),
                ("noise", rng.uniform(2, 5))]
    if rng.random() < 0.55:
        sc.container = {"type": "jpeg", "quality": rng.randint(65, 85), "subsampling": 2}
    else:
        dicom_container(sc, ctx, "OT", "pydicom_data/SC_rgb_2frame.dcm", "1.2.840.10008.5.1.4.1.1.7",
                        extra={"window": (127.5, 256)})
    return sc


def find_coeffs(dst: list[tuple[float, float]], src: list[tuple[float, float]]) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output points dst to input points src."""
    m = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        m.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        m.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = np.array([c for p in src for c in p], float)
    return list(np.linalg.solve(np.array(m, float), b))


def scene_monitor_photo(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    SW, SH = 900, 680
    sc = Scene("photo_of_monitor", SW, SH, Domain(3))
    sc.fill_bg((6, 6, 8))
    sc.bg[0][20:SH - 20, 120:SW - 120] = ctx.res.vqa_bg(rng, SW - 240, SH - 40, gray=True)
    fnt = rng.choice(["sans", "cond", "sans_b"])
    size = rng.choice([14, 16, 18])
    col = rng.choice([(255, 255, 255), (255, 240, 110)])
    ds = date_style(rng)
    tl = [name_segs(idn.patient, rng.choice(NAME_STYLES)), [L("MRN "), (idn.patient.mrn, "mrn")],
          [L("DOB "), (fmt_date(idn.patient.dob, ds), "dob")], [(idn.inst_display(rng), "institution")]]
    tr = [[(fmt_date(idn.study_date, ds), "study_date")], [L("Acc "), (idn.accession, "accession")],
          [("Im", "slice"), (f" {rng.randint(1, 200)}/{rng.randint(200, 400)}", "slice")]]
    bl = [[(f"WL {rng.randint(30, 60)} WW {rng.randint(300, 450)}", "window")],
          [(f"Zoom {rng.uniform(0.8, 2.2):.2f}", "acq")]]
    sc.corner(tl, "tl", fnt, size, col, margin=8, spacing=8)
    sc.corner(tr, "tr", fnt, size, col, margin=8, spacing=8)
    sc.corner(bl, "bl", fnt, size, col, margin=8, spacing=8)
    sc.text([(rng.choice(["L", "R"]), "marker")], SW - 150, SH / 2, font="sans_b", size=size + 6, fill=col)
    PW, PH = 1024, 768
    j = [rng.uniform(-30, 30) for _ in range(8)]
    quad = [(110 + j[0], 90 + j[1]), (PW - 90 + j[2], 70 + j[3]), (PW - 70 + j[4], PH - 110 + j[5]),
            (90 + j[6], PH - 80 + j[7])]
    room: np.ndarray = np.zeros((PH, PW, 3), np.float32)
    yy, xx = np.mgrid[0:PH, 0:PW]
    room[...] = (np.array([60, 52, 45], np.float32) * (0.6 + 0.4 * (xx / PW))[..., None])
    bez = Image.new("L", (PW, PH), 0)
    ImageDraw.Draw(bez).polygon([(quad[0][0] - 28, quad[0][1] - 26), (quad[1][0] + 28, quad[1][1] - 26),
                                 (quad[2][0] + 28, quad[2][1] + 34), (quad[3][0] - 28, quad[3][1] + 34)], fill=255)
    bm = np.asarray(bez, np.float32)[..., None] / 255
    room = room * (1 - bm) + np.array([22, 22, 24], np.float32) * bm
    coeffs = find_coeffs(quad, [(0, 0), (SW, 0), (SW, SH), (0, SH)])
    sc.post += [("persp", coeffs, (PW, PH), room), ("moire", rng.uniform(0.03, 0.07), rng.uniform(3.0, 5.0),
                                                   rng.uniform(0, 3.14)),
                ("gain", rng.uniform(0.85, 1.1), rng.uniform(5, 20)), ("blur", rng.uniform(0.6, 1.1)),
                ("noise", rng.uniform(3, 6))]
    sc.container = {"type": "jpeg", "quality": rng.randint(72, 88), "subsampling": 2}
    return sc


def scene_clinical_photo(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = 900, 675
    sc = Scene("clinical_photo_sticker", W, H, Domain(3))
    sc.set_bg(skin_bg(ctx.nprng, W, H))
    ang = rng.uniform(-7, 7)
    sx, sy, sw, sh = rng.randint(30, 80), rng.randint(30, 60), 330, 120
    cx, cy = sx + sw / 2, sy + sh / 2
    ca, sa = math.cos(math.radians(-ang)), math.sin(math.radians(-ang))

    def rot(px: float, py: float) -> tuple[float, float]:
        dx, dy = px - cx, py - cy
        return cx + dx * ca - dy * sa, cy + dx * sa + dy * ca

    sc.poly([rot(sx, sy), rot(sx + sw, sy), rot(sx + sw, sy + sh), rot(sx, sy + sh)], (250, 250, 246), plate=True)
    for i in range(40):  # barcode
        if rng.random() < 0.55:
            bx = sx + 200 + i * 3
            sc.poly([rot(bx, sy + 70), rot(bx + 2, sy + 70), rot(bx + 2, sy + 110), rot(bx, sy + 110)], (10, 10, 10))
    ds = date_style(rng)
    fnt = rng.choice(["sans_b", "cond_b", "mono_b", "sans"])
    sticker_ink = rng.choice([(15, 15, 15), (0, 0, 0)])
    lines = [name_segs(idn.patient, rng.choice(["COMMA", "LAST_FIRST", "comma"])),
             [L("DOB "), (fmt_date(idn.patient.dob, ds), "dob"), D(f"  {idn.patient.sex}")],
             [L("MRN "), (idn.patient.mrn, "mrn")],
             [(translit(idn.inst_display(rng)), "institution")]]
    for i, ln in enumerate(lines):
        size = 13
        if Item(ln, 0, 0, font=fnt, size=13).advance() > 185 and i > 0:
            size = 10
        it = Item(ln, 0, 0, font=fnt, size=size, fill=sticker_ink, angle=ang)
        px, py = rot(sx + 8, sy + 8 + i * 17)
        place_rotated(it, px, py)
        sc.items.append(it)
    # ruler
    rx, ry = rng.randint(120, 400), H - 90
    sc.rect(rx, ry, rx + 420, ry + 48, (235, 215, 90), plate=True)
    for k in range(0, 81):
        tl = 18 if k % 10 == 0 else (12 if k % 5 == 0 else 7)
        sc.rect(rx + 10 + k * 5, ry, rx + 11 + k * 5, ry + tl, (20, 20, 20))
    for k in range(1, 9):
        sc.text([(str(k), "scale")], rx + 8 + k * 50 - 4, ry + 22, font="sans", size=13, fill=(20, 20, 20))
    sc.text([("cm", "unit")], rx + 10, ry + 24, font="sans", size=12, fill=(20, 20, 20))
    if rng.random() < 0.6:
        sc.text([L("Photo "), (fmt_date(idn.study_date, ds), "study_date")], W - 260, 20, font="serif_i", size=18,
                fill=(30, 40, 120))
    sc.post += [("blur", rng.uniform(0.4, 0.9)), ("noise", rng.uniform(2, 4))]
    sc.container = {"type": "jpeg", "quality": rng.randint(82, 92), "subsampling": 2}
    return sc


def overlay_basic(sc: Scene, ctx: Ctx, fnt: str, size: int, col: Any, **kw: Any) -> None:
    rng, idn = ctx.rng, ctx.idn
    ds = date_style(rng)
    tl = [name_segs(idn.patient, rng.choice(NAME_STYLES)), [L("ID "), (idn.patient.mrn, "mrn")],
          [L("DOB "), (fmt_date(idn.patient.dob, ds), "dob")]]
    tr = [[(idn.inst_display(rng), "institution")], [(fmt_date(idn.study_date, ds), "study_date")]]
    bl = [[(f"W {rng.randint(300, 2000)} L {rng.randint(-500, 400)}", "window")],
          [(f"Se {rng.randint(1, 9)} Im {rng.randint(1, 150)}", "slice")]]
    sc.corner(tl, "tl", fnt, size, col, margin=6, **kw)
    sc.corner(tr, "tr", fnt, size, col, margin=6, **kw)
    sc.corner(bl, "bl", fnt, size, col, margin=6, **kw)
    sc.text([(rng.choice(["L", "R"]), "marker")], sc.W - 30, sc.H / 2, font="sans_b", size=size + 4, fill=col, **kw)


def scene_heavy_jpeg(ctx: Ctx) -> Scene:
    rng = ctx.rng
    W, H = rng.choice([(800, 640), (720, 720), (900, 600)])
    sc = Scene("heavy_jpeg_forwarded", W, H, Domain(3))
    sc.set_bg(ctx.res.vqa_bg(rng, W, H, gray=rng.random() < 0.8))
    overlay_basic(sc, ctx, rng.choice(["sans", "cond", "sans_b"]), rng.choice([13, 15, 17]), 255)
    if rng.random() < 0.6:
        f = rng.uniform(0.6, 0.8)
        sc.post.append(("resize", (int(W * f), int(H * f))))
    sc.container = {"type": "jpeg", "quality": rng.randint(18, 35), "subsampling": 2}
    return sc


def scene_low_contrast(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    n = rng.choice([512, 600])
    sc = Scene("low_contrast_over_anatomy", n, n, Domain(1))
    sc.set_bg(ctx.res.vqa_bg(rng, n, n, gray=True))
    ds = date_style(rng)
    wm = Item([(idn.inst_display(rng), "institution")], 0, 0, font="sans_b", size=rng.randint(28, 38), fill=255,
              alpha=rng.uniform(0.22, 0.35), angle=rng.uniform(20, 40))
    w, h = wm.ink_size()
    wm.x, wm.y = max(0, (n - w) // 2), max(0, (n - h) // 2)
    sc.items.append(wm)
    g = rng.randint(150, 200)
    a = rng.uniform(0.45, 0.65)
    fnt = rng.choice(["sans", "cond", "sans_xl", "serif"])
    y0 = rng.randint(n // 4, n // 2)
    sc.text(name_segs(idn.patient, rng.choice(NAME_STYLES)), n * 0.25, y0, font=fnt, size=16, fill=g, alpha=a)
    sc.text([L("MRN "), (idn.patient.mrn, "mrn"), D("  "), L("DOB "), (fmt_date(idn.patient.dob, ds), "dob")],
            n * 0.25, y0 + 22, font=fnt, size=15, fill=g, alpha=a)
    sc.text([(fmt_date(idn.study_date, ds), "study_date")], n * 0.25, y0 + 44, font=fnt, size=15, fill=40,
            alpha=0.7)
    sc.text([(f"{rng.uniform(5, 40):.1f} mm", "measurement")], n * 0.55, n * 0.7, font=fnt, size=15, fill=g,
            alpha=a)
    sc.text([(rng.choice(["L", "R"]), "marker")], 10, n * 0.5, font="sans_b", size=20, fill=g, alpha=a)
    if rng.random() < 0.5:
        dicom_container(sc, ctx, rng.choice(["CT", "MR", "CR"]), "pydicom_data/693_UNCI.dcm",
                        "1.2.840.10008.5.1.4.1.1.7", extra={"window": (127.5, 256)})
    else:
        png_or_jpeg(sc, ctx)
    return sc


COLOURS = [(255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 140, 0), (255, 60, 60), (255, 0, 255), (120, 200, 255),
           (255, 255, 255)]


def scene_styled(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = rng.choice([(768, 576), (640, 640), (800, 600)])
    sc = Scene("styled_colour_outline_shadow", W, H, Domain(3))
    sc.set_bg(ctx.res.vqa_bg(rng, W, H, gray=rng.random() < 0.7))
    ds = date_style(rng)
    fonts = ["sans_b", "serif_b", "cond_b", "sans_bi", "mono_b", "serif_i", "pil_ft", "sans_xl"]

    def style() -> dict[str, Any]:
        k = rng.randrange(4)
        d: dict[str, Any] = {"font": rng.choice(fonts), "size": rng.randint(14, 24), "fill": rng.choice(COLOURS)}
        if k in (0, 2):
            d.update(stroke=rng.choice([1, 2]), stroke_fill=rng.choice([(0, 0, 0), (40, 0, 80)]))
        if k in (1, 2):
            d.update(shadow=(rng.choice([2, 3]), rng.choice([2, 3])), shadow_fill=(0, 0, 0))
        return d

    lines = [[(idn.institution, "institution")], [L("Pt: ")] + name_segs(idn.patient, rng.choice(NAME_STYLES)),
             [L("MRN: "), (idn.patient.mrn, "mrn")], [L("DOB: "), (fmt_date(idn.patient.dob, ds), "dob")],
             [L("Exam: "), (fmt_date(idn.study_date, ds), "study_date")], [L("Acc: "), (idn.accession, "accession")]]
    y = 10
    for ln in lines:
        st = style()
        it = sc.text(ln, rng.randint(8, 40), y, **st)
        y += it.ink_size()[1] + rng.randint(6, 14)
    for _ in range(2):  # arrows + measurements (keep)
        x0, y0 = rng.randint(W // 3, W - 200), rng.randint(H // 3, H - 80)
        c = rng.choice(COLOURS)
        sc.poly([(x0, y0), (x0 + 60, y0 + 30)], c, width=3)
        st = style()
        sc.text([(f"{rng.uniform(3, 60):.1f}", "measurement"), (" mm", "unit")], x0 + 66, y0 + 20, **st)
    st = style()
    sc.text([(rng.choice(["R", "L"]), "marker")], W - 40, 14, **st)
    if rng.random() < 0.5:
        dicom_container(sc, ctx, rng.choice(["OT", "CT", "US"]), "pydicom_data/SC_rgb_2frame.dcm",
                        "1.2.840.10008.5.1.4.1.1.7")
    else:
        png_or_jpeg(sc, ctx)
    return sc


def scene_rotated(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = rng.choice([(700, 700), (800, 640)])
    gray = rng.random() < 0.6
    sc = Scene("rotated_slanted_text", W, H, Domain(1 if gray else 3))
    sc.set_bg(ctx.res.vqa_bg(rng, W, H, gray=True))
    ds = date_style(rng)
    specs = [
        (name_segs(idn.patient, rng.choice(NAME_STYLES)), rng.choice([-35, -20, -12, 12, 20, 35])),
        ([L("MRN "), (idn.patient.mrn, "mrn")], rng.choice([90, 270])),
        ([L("DOB "), (fmt_date(idn.patient.dob, ds), "dob")], rng.uniform(-15, 15)),
        ([(idn.inst_display(rng), "institution"), D("  "), (fmt_date(idn.study_date, ds), "study_date")], 180),
        ([L("Acc "), (idn.accession, "accession")], rng.choice([8, -8, 25])),
        ([(rng.choice(["L", "R"]), "marker")], 180),
        ([(f"{rng.uniform(1, 9):.1f} cm", "measurement")], rng.uniform(-30, 30)),
        ([(rng.choice(["AP", "PA", "LAT"]), "view")], 90),
    ]
    occupied: list[tuple[int, int, int, int]] = []
    for segs, ang in specs:
        it = Item(segs, 0, 0, font=rng.choice(["sans", "sans_b", "cond", "serif", "mono"]), size=rng.randint(14, 20),
                  fill=rng.choice([255, 235, 20] if gray else [(255, 255, 255), (255, 255, 0), (0, 255, 255)]),
                  angle=ang)
        w, h = it.ink_size()
        for _ in range(60):  # non-overlapping placement
            x, y = rng.randint(0, max(0, W - w)), rng.randint(0, max(0, H - h))
            if all(x + w + 6 < a or a + c + 6 < x or y + h + 6 < b or b + d + 6 < y for a, b, c, d in occupied):
                break
        it.x, it.y = x, y
        occupied.append((x, y, w, h))
        sc.items.append(it)
    if rng.random() < 0.5:
        dicom_container(sc, ctx, rng.choice(["CR", "OT"]), "pydicom_data/SC_rgb_2frame.dcm",
                        "1.2.840.10008.5.1.4.1.1.7", extra={"window": (127.5, 256)} if gray else {})
    else:
        png_or_jpeg(sc, ctx)
    return sc


def scene_edge(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = rng.choice([(640, 640), (720, 560), (512, 512)])
    sc = Scene("text_hugging_edges", W, H, Domain(1))
    sc.set_bg(ctx.res.vqa_bg(rng, W, H, gray=True))
    ds = date_style(rng)
    fnt = rng.choice(["sans", "cond", "pil_ft", "mono"])
    size = rng.choice([12, 14, 16])
    col = rng.choice([255, 240])
    top = Item(name_segs(idn.patient, rng.choice(NAME_STYLES)) + [D("  "), L("ID "), (idn.patient.mrn, "mrn")], 0, 0,
               font=fnt, size=size, fill=col)
    off = top.render()["off"]
    top.x, top.y = rng.choice([0, -2]) - off[0], rng.choice([0, -2]) - off[1]  # -2: glyphs slightly cut
    sc.items.append(top)
    bot = Item([(idn.inst_display(rng), "institution"), D("  "), (fmt_date(idn.study_date, ds), "study_date")], 0, 0,
               font=fnt, size=size, fill=col)
    w, h = bot.ink_size()
    off = bot.render()["off"]
    bot.x = W - w + rng.choice([0, 2]) - off[0]
    bot.y = H - h + rng.choice([0, 1, 3]) - off[1]
    sc.items.append(bot)
    lv = Item([L("DOB "), (fmt_date(idn.patient.dob, ds), "dob"), D("  "), L("Acc "), (idn.accession, "accession")],
              0, 0, font=fnt, size=size, fill=col, angle=90)
    w, h = lv.ink_size()
    lv.x, lv.y = 0, (H - h) // 2
    sc.items.append(lv)
    rv = Item([L("Ref ")] + doc_segs(idn.ref, rng, ascii_only=True), 0, 0, font=fnt, size=size, fill=col, angle=270)
    w, h = rv.ink_size()
    rv.x, rv.y = W - w, rng.randint(0, max(0, H - h))
    sc.items.append(rv)
    sc.text([(rng.choice(["L", "R"]), "marker")], W - 24, 24, font="sans_b", size=20, fill=col)
    m = Item([("0", "scale"), D("   "), ("5", "scale"), D("   "), ("10", "scale")], 0, 0, font=fnt, size=size, fill=col)
    m.x, m.y = W * 0.35, H - m.ink_size()[1] - m.render()["off"][1] - h - 6
    sc.items.append(m)
    sc.legible()
    dicom_container(sc, ctx, rng.choice(["DX", "CR", "MG"]), "pydicom_data/SC_rgb_2frame.dcm",
                    "1.2.840.10008.5.1.4.1.1.7", extra={"window": (127.5, 256)})
    return sc


def scene_misfiled(ctx: Ctx) -> Scene:
    rng = ctx.rng
    n = rng.choice([512, 448])
    ct = rng.random() < 0.5
    sc = Scene("misfiled_or_scrubbed_header", n, n, Domain(1))
    if ct:
        sc.set_bg(ct_display(ctx.res, "pydicom_data/693_UNCI.dcm", n, n, 40, 400))
    else:
        a = ctx.res.native_resized("dcm_qa_ts/1.dcm", n, n)
        sc.set_bg(np.clip(a / np.percentile(a, 99.5), 0, 1) * 255)
    four_corner(sc, ctx, rng.choice(["sans", "cond", "pil", "mono"]), rng.choice([11, 12]), 255,
                "CT" if ct else "MR", ascii_only=True)
    dicom_container(sc, ctx, "CT" if ct else "MR", "pydicom_data/693_UNCI.dcm" if ct else "dcm_qa_ts/1.dcm",
                    "1.2.840.10008.5.1.4.1.1.7", extra={"window": (127.5, 256)})
    return sc


def scene_dose_report(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = rng.choice([(512, 512), (640, 480)])
    sc = Scene("ct_dose_report_sc", W, H, Domain(1))
    fnt = rng.choice(["mono", "sans", "pil", "cond"])
    size = 12 if fnt != "pil" else 11
    col = 255
    ds = date_style(rng)
    y = 10
    hdr = [[D("Dose Report")], name_segs(idn.patient, rng.choice(["dicom", "COMMA", "LAST_FIRST"]), ascii_only=True),
           [L("ID: "), (idn.patient.mrn, "mrn"), D("   "), L("Exam no: "), (idn.accession, "accession")],
           [L("Exam Date: "), (fmt_date(idn.study_date, ds), "study_date")],
           [L("Physician: ")] + doc_segs(idn.ref, rng, ascii_only=True),
           [(translit(idn.inst_display(rng)), "institution"), D("  CT01")]]
    for ln in hdr:
        sc.text(ln, 10, y, font=fnt, size=size, fill=col)
        y += size + 6
    y += 8
    sc.text([D("Series  Type     Scan Range   CTDIvol   DLP     Phantom")], 10, y, font=fnt, size=size, fill=col)
    sc.rect(10, y + size + 3, W - 10, y + size + 4, 200)
    y += size + 10
    total = 0.0
    for s in range(1, rng.randint(3, 5)):
        typ = rng.choice(["Scout", "Helical", "Axial"])
        ctdi = 0.1 if typ == "Scout" else rng.uniform(3, 25)
        dlp = ctdi * rng.uniform(10, 50)
        total += dlp
        rng_txt = "-" if typ == "Scout" else (f"I{rng.randint(10, 200)}.{rng.randint(0, 9)}-"
                                              f"S{rng.randint(10, 400)}.{rng.randint(0, 9)}")
        sc.text([(f"{s}", "dose"), D("       "), D(typ.ljust(8)), D(" "), (rng_txt, "dose"), D("   "),
                 (f"{ctdi:.2f}", "dose"), D("   "), (f"{dlp:.1f}", "dose"), D("   "),
                 (rng.choice(["Body 32", "Head 16"]), "dose")], 10, y, font=fnt, size=size, fill=col)
        y += size + 6
    sc.text([("Total", "dose"), (" Exam", "dose"), (" DLP:", "dose"), (f" {total:.1f}", "dose"), (" mGy-cm", "unit")],
            10, y + 8, font=fnt, size=size, fill=col)
    sc.text([(f"{rng.randint(80, 140)} kV", "exposure"), (f"  {rng.randint(50, 600)} mAs", "exposure")], 10,
            y + 30, font=fnt, size=size, fill=col)
    dicom_container(sc, ctx, "CT", "pydicom_data/693_UNCI.dcm", "1.2.840.10008.5.1.4.1.1.7",
                    extra={"window": (127.5, 256)})
    return sc


def scene_us_worksheet(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = 800, 600
    light = rng.random() < 0.5
    sc = Scene("echo_worksheet_page", W, H, Domain(3))
    sc.fill_bg((250, 250, 250) if light else (10, 20, 60))
    ink = rng.choice([(10, 10, 10), (0, 0, 0)]) if light else (235, 235, 235)
    sc.rect(0, 0, W, 40, (200, 210, 230) if light else (30, 50, 110))
    fnt = rng.choice(["sans", "cond", "pil_ft"])
    ds = date_style(rng)
    sc.text([(idn.inst_display(rng), "institution"), D("  -  Echo Report")], 12, 12, font="sans_b", size=15, fill=ink)
    info = [[L("Name: ")] + name_segs(idn.patient, rng.choice(NAME_STYLES)),
            [L("MRN: "), (idn.patient.mrn, "mrn")], [L("DOB: "), (fmt_date(idn.patient.dob, ds), "dob")],
            [L("Study date: "), (fmt_date(idn.study_date, ds), "study_date")],
            [L("Ref. Phys: ")] + doc_segs(idn.ref, rng),
            [L("Sonographer: "), (f"{idn.staff.given} {idn.staff.family}", "staff")]]
    for i, ln in enumerate(info):
        sc.text(ln, 14 + (i % 2) * 390, 54 + (i // 2) * 20, font=fnt, size=13, fill=ink)
    sc.text([(f"Height {rng.randint(150, 195)} cm", "measurement"), (f"   Weight {rng.randint(48, 120)} kg",
                                                                    "measurement"),
             (f"   BSA {rng.uniform(1.5, 2.3):.2f} m²", "measurement"), (f"   HR {rng.randint(50, 100)} bpm", "acq")],
            14, 120, font=fnt, size=13, fill=ink)
    sc.rect(10, 145, W - 10, 146, ink)
    meas = [("IVSd", "cm", 0.7, 1.3), ("LVIDd", "cm", 3.8, 5.8), ("LVPWd", "cm", 0.7, 1.2), ("LVIDs", "cm", 2.2, 4.0),
            ("EF(Teich)", "%", 35, 70), ("FS", "%", 20, 42), ("AV Vmax", "m/s", 0.9, 2.5), ("MV E", "m/s", 0.5, 1.2),
            ("MV A", "m/s", 0.4, 1.0), ("E/A", "", 0.7, 2.0), ("LA Dimension", "cm", 2.8, 4.6),
            ("Ao Root", "cm", 2.4, 3.8)]
    for i, (n, u, lo, hi) in enumerate(meas):
        x = 20 + (i % 2) * 390
        y = 160 + (i // 2) * 22
        sc.text([(n, "measurement")], x, y, font=fnt, size=13, fill=ink)
        sc.text([(f"{rng.uniform(lo, hi):.2f}", "measurement")] + ([(f" {u}", "unit")] if u else []), x + 170, y,
                font=fnt, size=13, fill=ink)
    sc.text([L("Conclusion: "), (rng.choice(["Normal LV size and function.", "Mild concentric LVH."]), "clinical")],
            20, 310, font=fnt, size=13, fill=ink)
    sc.text([L("Electronically signed: ")] + doc_segs(idn.rad, rng) + [D(" "), (fmt_date(idn.study_date, ds),
                                                                               "study_date")],
            20, H - 30, font=fnt, size=12, fill=ink)
    dicom_container(sc, ctx, "US", "pydicom_data/US1_J2KR.dcm", "1.2.840.10008.5.1.4.1.1.7")
    return sc


def scene_key_image(ctx: Ctx) -> Scene:
    rng, idn = ctx.rng, ctx.idn
    W, H = rng.choice([(640, 640), (720, 600)])
    sc = Scene("key_image_annotations", W, H, Domain(3))
    sc.set_bg(ctx.res.vqa_bg(rng, W, H, gray=True))
    fnt = rng.choice(["sans", "cond", "sans_b"])
    for i in range(rng.randint(3, 5)):
        c = rng.choice(COLOURS)
        x0, y0 = rng.randint(60, W - 220), rng.randint(60, H - 120)
        k = rng.randrange(3)
        if k == 0:
            sc.poly([(x0, y0), (x0 + 80, y0 + 40)], c, width=2)
            sc.text([(f"{rng.uniform(3, 80):.1f} mm", "measurement")], x0 + 84, y0 + 34, font=fnt, size=13, fill=c)
        elif k == 1:
            sc.poly([(x0, y0), (x0 + 60, y0), (x0 + 60, y0 + 40), (x0, y0 + 40), (x0, y0)], c, width=2)
            sc.text([(f"ROI {i + 1}:", "annot"), (f" {rng.randint(-50, 300)} HU", "measurement"),
                     (f" SD {rng.randint(3, 40)}", "measurement")], x0, y0 + 44, font=fnt, size=12, fill=c)
            sc.text([(f"Area {rng.uniform(0.2, 9):.2f} cm²", "measurement")], x0, y0 + 60, font=fnt, size=12, fill=c)
        else:
            sc.poly([(x0, y0), (x0 + 40, y0 + 40)], c, width=3)
            sc.text([(rng.choice("ABCDE12345"), "annot")], x0 - 14, y0 - 18, font="sans_b", size=16, fill=c)
    sc.text([(rng.choice(["L", "R"]), "marker")], 10, 10, font="sans_b", size=22, fill=255)
    sc.text([(f"{rng.choice([5, 10])} cm", "scale")], W - 80, H - 40, font=fnt, size=12, fill=255)
    p = idn.patient
    tag = sc.text([(f"{p.given[0]}.{p.family[0]}.", "name"), D("  "), (fmt_date(idn.study_date, date_style(rng)),
                                                                        "study_date")],
                  rng.choice([8, W - 160]), H - 18, font=fnt, size=11, fill=200)
    sc.legible([tag], dark=30, light=225)
    if rng.random() < 0.5:
        dicom_container(sc, ctx, rng.choice(["CT", "MR"]), "pydicom_data/SC_rgb_2frame.dcm",
                        "1.2.840.10008.5.1.4.1.1.7")
    else:
        png_or_jpeg(sc, ctx)
    return sc


def scene_multiline_fonts(ctx: Ctx) -> Scene:
    """Identifiers split over lines, many ID/date formats, unusual fonts (typical of teaching-file exports)."""
    rng, idn = ctx.rng, ctx.idn
    W, H = rng.choice([(768, 768), (800, 640)])
    sc = Scene("split_lines_unusual_fonts", W, H, Domain(3))
    sc.set_bg(ctx.res.vqa_bg(rng, W, H, gray=True))
    p = idn.patient
    fonts = ["sans_xl", "serif_ci", "mono", "pil", "pil_ft", "cond_i", "serif", "sans_bi"]
    rng.shuffle(fonts)
    col = rng.choice([255, (255, 255, 160), (200, 255, 200)])
    blocks: list[list[list[tuple[str, str]]]] = [
        [[L("Surname:")], [(p.family.upper(), "name")], [L("Forename(s):")], [(f"{p.given} {p.middle}".strip(),
                                                                               "name")]],
        [[L("Hosp No")], [(p.mrn, "mrn")], [L("NHS/Ins No")], [(make_mrn(rng), "other_id")]],
        [[L("D.O.B.")], [(fmt_date(p.dob, date_style(rng)), "dob")], [L("Scan")],
         [(fmt_date(idn.study_date, date_style(rng)), "study_date")]],
        [[(w, "institution")] for w in idn.institution.split(" ", 1)] + [[L("Tel: "), (idn.phone, "phone")]],
    ]
    xs = [8, W // 2 + 10]
    ys = [8, H - 110]
    for i, blk in enumerate(blocks):
        fnt = fonts[i]
        size = rng.randint(12, 17)
        lh = (11 if fnt == "pil" else size) + 4
        for j, ln in enumerate(blk):
            sc.text(ln, xs[i % 2], ys[i // 2] + j * lh, font=fnt, size=size, fill=col)
    sc.text([(f"{rng.uniform(1, 9):.1f} cm", "measurement")], W * 0.45, H * 0.5, font=fonts[5], size=14, fill=col)
    sc.text([(rng.choice(["L", "R"]), "marker")], W - 30, H * 0.45, font=fonts[6], size=20, fill=col)
    png_or_jpeg(sc, ctx)
    return sc


SCENES = {
    "us_vendor_banner": scene_us_banner, "us_cine_multiframe": scene_us_cine, "cr_chest_flashcard": scene_cr_flashcard,
    "dx_vertical_label": scene_dx_vertical, "ct_sc_4corner_small": scene_ct_sc_4corner,
    "mr_sc_colour_overlay": scene_mr_color_4corner, "ct_native_16bit_burn": scene_ct_native,
    "nm_whole_body": scene_nm_wholebody, "xa_angio_cine": scene_xa_cine, "pacs_screenshot": scene_pacs_screenshot,
    "scanned_requisition": scene_scanned_form, "photo_of_monitor": scene_monitor_photo,
    "clinical_photo_sticker": scene_clinical_photo, "heavy_jpeg_forwarded": scene_heavy_jpeg,
    "low_contrast_over_anatomy": scene_low_contrast, "styled_colour_outline_shadow": scene_styled,
    "rotated_slanted_text": scene_rotated, "text_hugging_edges": scene_edge,
    "misfiled_or_scrubbed_header": scene_misfiled, "ct_dose_report_sc": scene_dose_report,
    "echo_worksheet_page": scene_us_worksheet, "key_image_annotations": scene_key_image,
    "split_lines_unusual_fonts": scene_multiline_fonts,
}


# --------------------------------------------------------------------------------------------------------------------
# composing a case


def _paste(frame: np.ndarray, alpha: np.ndarray, x: int, y: int, col: np.ndarray) -> None:
    h, w = alpha.shape
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x][..., None]
    reg = frame[y0:y1, x0:x1]
    reg[...] = reg * (1 - a) + col * a


def _place(m: np.ndarray, x: int, y: int, W: int, H: int) -> np.ndarray:
    out = np.zeros((H, W), bool)
    h, w = m.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = m[y0 - y:y1 - y, x0 - x:x1 - x]
    return out


def compose(sc: Scene, with_text: bool) -> list[np.ndarray]:
    frames = [b.copy() for b in sc.bg]
    if not with_text:
        return frames
    for it in sc.items:
        r = it.render()
        px, py = it.pos()
        for f in (it.frames if it.frames is not None else range(sc.n_frames)):
            if it.shadow:
                _paste(frames[f], r["shadow"] * it.alpha, px, py, sc.dom.native(it.shadow_fill))
            if it.stroke:
                _paste(frames[f], r["stroke"] * it.alpha, px, py, sc.dom.native(it.stroke_fill))
            _paste(frames[f], r["fill"] * it.alpha, px, py, sc.dom.native(it.fill))
    return frames


def token_masks(sc: Scene) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    toks: list[dict[str, Any]] = []
    masks: list[np.ndarray] = []
    for ii, it in enumerate(sc.items):
        r = it.render()
        px, py = it.pos()
        for text, kind, m in r["toks"]:
            toks.append({"item": ii, "text": text, "kind": kind, "role": role_of(kind),
                         "frames": list(it.frames if it.frames is not None else range(sc.n_frames)),
                         "font": it.font, "size": it.size, "angle": round(float(it.angle), 1),
                         "alpha": round(float(it.alpha), 2), "stroke": it.stroke, "shadow": bool(it.shadow),
                         "line": it.text})
            masks.append(_place(m, px, py, sc.W, sc.H))
    for (x0, y0, x1, y1) in sc.plates:
        toks.append({"item": -1, "text": "", "kind": "plate", "role": "plate", "frames": list(range(sc.n_frames))})
        m = np.zeros((sc.H, sc.W), bool)
        m[y0:y1, x0:x1] = True
        masks.append(m)
    return toks, masks


def _chan_op(a: np.ndarray, fn: Any) -> np.ndarray:
    return np.stack([np.asarray(fn(Image.fromarray(np.ascontiguousarray(a[..., c]))), np.float32)
                     for c in range(a.shape[2])], axis=2)


def post_frames(frames: list[np.ndarray], sc: Scene, seed: int) -> list[np.ndarray]:
    out = []
    for f, a in enumerate(frames):
        for k, op in enumerate(sc.post):
            name = op[0]
            if name == "skew":
                fill = sc.dom.native(op[2])
                a = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(a[..., c])).rotate(
                    op[1], resample=Image.Resampling.BILINEAR, fillcolor=float(fill[c])), np.float32)
                    for c in range(a.shape[2])], axis=2)
            elif name == "persp":
                coeffs, size, room = op[1], op[2], op[3]

                def warp(im: Image.Image, coeffs: Any = coeffs, size: Any = size) -> Image.Image:
                    return im.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)

                w = _chan_op(a, warp)
                q = _chan_op(np.ones(a.shape[:2] + (1,), np.float32), warp)
                a = room * (1 - q) + w * q
            elif name == "resize":
                a = _chan_op(a, lambda im, s=op[1]: im.resize(s, Image.Resampling.BILINEAR))
            elif name == "blur":
                a = ndimage.gaussian_filter(a, (op[1], op[1], 0))
            elif name == "noise":
                g = np.random.default_rng([seed, f, k])
                a = a + g.normal(0, op[1], a.shape).astype(np.float32)
            elif name == "moire":
                amp, period, ang = op[1], op[2], op[3]
                yy, xx = np.mgrid[0:a.shape[0], 0:a.shape[1]].astype(np.float32)
                pat = 1 + amp * np.sin(2 * np.pi * (xx * math.cos(ang) + yy * math.sin(ang)) / period)
                a = a * pat[..., None]
            elif name == "gain":
                a = a * op[1] + op[2]
            else:
                raise ValueError(name)
        out.append(a)
    return out


def post_masks(masks: list[np.ndarray], sc: Scene) -> list[np.ndarray]:
    geo = [op for op in sc.post if op[0] in ("skew", "persp", "resize")]
    if not geo:
        return masks
    out = []
    for m in masks:
        a = m.astype(np.float32)
        for op in geo:
            im = Image.fromarray(a)
            if op[0] == "skew":
                im = im.rotate(op[1], resample=Image.Resampling.BILINEAR)
            elif op[0] == "persp":
                im = im.transform(op[2], Image.Transform.PERSPECTIVE, op[1], Image.Resampling.BILINEAR)
            else:
                im = im.resize(op[1], Image.Resampling.BILINEAR)
            a = np.asarray(im, np.float32)
        out.append(a > 0.3)
    return out


def quantize(a: np.ndarray, dom: Domain) -> np.ndarray:
    if dom.bits == 8:
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.clip(np.rint(a), dom.lo, dom.hi).astype(np.uint16)


# --------------------------------------------------------------------------------------------------------------------
# writing files

DROP_TAGS = [
    "PixelData", "NumberOfFrames", "FrameIncrementPointer", "PlanarConfiguration", "SequenceOfUltrasoundRegions",
    "IconImageSequence", "SmallestImagePixelValue", "LargestImagePixelValue", "WindowCenter", "WindowWidth",
    "WindowCenterWidthExplanation", "VOILUTSequence", "ModalityLUTSequence", "RescaleIntercept", "RescaleSlope",
    "RescaleType", "PixelPaddingValue", "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "PaletteColorLookupTableUID", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData", "FrameTime",
    "FrameTimeVector", "CineRate", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "PatientAddress", "PatientTelephoneNumbers", "PatientBirthName", "PatientMotherBirthName", "RequestingPhysician",
    "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "RequestAttributesSequence", "ReferencedPatientSequence",
    "ReferencedStudySequence", "ReferencedImageSequence", "SourceImageSequence", "DerivationCodeSequence",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "PixelSpacing", "ImagerPixelSpacing", "BurnedInAnnotation",
    "ConversionType", "InstitutionAddress", "StationName", "DeviceSerialNumber", "PatientAge",
]


def write_dicom(path: Path, sc: Scene, frames: list[np.ndarray], hdr: dict[str, str], seed: int, case: str,
                res: Res) -> None:
    cont = sc.container
    base = pydicom.dcmread(res.dicom_dir / cont["base"], stop_before_pixels=True)
    ds = Dataset()
    drop = set(DROP_TAGS)
    for elem in base:
        if elem.tag.is_private or 0x6000 <= elem.tag.group <= 0x60FF or 0x5000 <= elem.tag.group <= 0x50FF:
            continue
        if elem.keyword in drop or elem.tag.group == 0x0002:
            continue
        ds.add(elem)
    def uid(entropy_srcs: list[str]) -> str:  # deterministic 2.25 UID (PS3.5 B.2)
        return "2.25." + str(int.from_bytes(hashlib.sha256("|".join(entropy_srcs).encode()).digest()[:16], "big"))

    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = cont["sop"]
    ds.SOPInstanceUID = uid(entropy_srcs=[str(seed), case, "sop"])
    ds.StudyInstanceUID = uid(entropy_srcs=[str(seed), case, "study"])
    ds.SeriesInstanceUID = uid(entropy_srcs=[str(seed), case, "series"])
    if "FrameOfReferenceUID" in ds:
        ds.FrameOfReferenceUID = uid(entropy_srcs=[str(seed), case, "for"])
    ds.Modality = cont["modality"]
    for k, v in hdr.items():
        setattr(ds, k, v)
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = hdr.get("StudyDate", "")
    ds.SeriesTime = ds.ContentTime = hdr.get("StudyTime", "")
    ds.StudyID = str(zlib.crc32(f"{seed}:{case}".encode()) % 100000)
    ds.SeriesNumber = 1 + zlib.crc32(f"{case}:s".encode()) % 20
    ds.InstanceNumber = 1
    if cont["sop"] == "1.2.840.10008.5.1.4.1.1.7":
        ds.ConversionType = "WSD"
    if cont.get("burned_in"):
        ds.BurnedInAnnotation = cont["burned_in"]
    arr = np.stack(frames, axis=0)  # (N, H, W, C)
    n, H, W, C = arr.shape
    ds.Rows, ds.Columns = H, W
    ds.SamplesPerPixel = C
    if C == 3:
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.PhotometricInterpretation = "MONOCHROME1" if sc.dom.mono1 else "MONOCHROME2"
    bits = 8 if arr.dtype == np.uint8 else 16
    ds.BitsAllocated = bits
    ds.BitsStored = bits if bits == 8 else int(math.ceil(math.log2(sc.dom.hi + 1)))
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    extra = cont.get("extra", {})
    multi = n > 1 or cont["sop"] in ("1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.12.1")
    if multi:
        ds.NumberOfFrames = n
        if extra.get("cine"):
            ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
            ds.FrameTime = "33.3"
            ds.CineRate = 30
    if C == 1:
        if "rescale" in extra:
            ds.RescaleIntercept = str(extra["rescale"])
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
        wc, ww = extra.get("window", (sc.dom.wc, sc.dom.ww))
        ds.WindowCenter = f"{wc:g}"
        ds.WindowWidth = f"{ww:g}"
    if ds.Modality == "XA":
        ds.PositionerPrimaryAngle = "30"
        ds.PositionerSecondaryAngle = "20"
    pix = arr if C == 3 else arr[..., 0]
    if n == 1:
        pix = pix[0]
    ds.PixelData = np.ascontiguousarray(pix).tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if cont.get("rle"):
        ds.compress(RLELossless, pix, encoding_plugin="pydicom", generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def save_raster(frame: np.ndarray, path: Path, cont: dict[str, Any]) -> None:
    im = Image.fromarray(frame[..., 0] if frame.shape[2] == 1 else frame)
    if cont["type"] == "png":
        im.save(path)
    else:
        im.save(path, quality=cont["quality"], subsampling=cont.get("subsampling", 2))


# --------------------------------------------------------------------------------------------------------------------
# building cases


def _date_parts(v: str) -> set[str]:
    if len(v) != 8 or not v.isdigit():
        return set()
    y, m, d = v[:4], v[4:6], v[6:]
    mi = int(m) - 1
    abbr = dt.date(2000, mi + 1, 1).strftime("%b").lower()
    return {y, y[2:], m, str(int(m)), d, str(int(d)), MONTHS[mi].lower(), abbr}


def header_knows(tok: dict[str, Any], hdr: dict[str, str] | None) -> bool | None:
    if hdr is None:
        return None
    t = translit(tok["text"]).lower()
    if tok["kind"] in ("dob", "study_date"):
        hv = hdr.get("PatientBirthDate" if tok["kind"] == "dob" else "StudyDate", "")
        parts = _date_parts(hv)
        chunks = [c for c in re.split(r"[^0-9a-z]+", t) if c]
        if not chunks or not parts:
            return False
        whole = {hv, f"{hv[6:]}{MONTHS[int(hv[4:6]) - 1].lower()}{hv[:4]}"}
        return all(c in parts or c in whole for c in chunks)
    blob = " ".join(translit(v).lower() for v in hdr.values())
    blob = re.sub(r"[\^,]", " ", blob)
    core = re.sub(r"^[^0-9a-z]+|[^0-9a-z]+$", "", t)
    return bool(core) and core in blob


def build_case(seed: int, idx: int, kind: str, res: Res, cdir: Path) -> dict[str, Any]:
    case = f"c{idx:02d}"
    rng = random.Random(f"heldout-m:{seed}:{idx}")
    nprng = np.random.default_rng([seed, idx, 77])
    idn = make_identity(rng)
    ctx = Ctx(rng, nprng, res, idn, idn, "consistent")
    sc = SCENES[kind](ctx)
    hdr: dict[str, str] | None = None
    if sc.container["type"] == "dicom":
        if kind == "misfiled_or_scrubbed_header":
            mode = rng.choice(["misfiled", "scrubbed"])
        else:
            mode = rng.choices(["consistent", "partial", "misfiled", "scrubbed"], [70, 12, 9, 9])[0]
        ctx.id_mode = mode
        if mode == "misfiled":
            other = make_identity(rng)
            other.institution = idn.institution
            hdr = header_of(other, "consistent", rng)
        else:
            hdr = header_of(idn, mode, rng)
    toks, masks = token_masks(sc)
    img = post_frames(compose(sc, True), sc, seed * 1000 + idx)
    twin = post_frames(compose(sc, False), sc, seed * 1000 + idx)
    masks = post_masks(masks, sc)
    img_q = [quantize(a, sc.dom) for a in img]
    twin_q = [quantize(a, sc.dom) for a in twin]
    H, W = img_q[0].shape[:2]
    blur = sum(op[1] for op in sc.post if op[0] == "blur")
    geo = any(op[0] in ("persp", "resize", "skew") for op in sc.post)
    jpeg_q = sc.container.get("quality") if sc.container["type"] == "jpeg" else None
    dil = 1 + int(round(blur)) + (1 if geo else 0) + (1 if jpeg_q is not None and jpeg_q < 50 else 0)
    dil = min(dil, 4)
    cdir.mkdir(parents=True, exist_ok=True)
    ext = {"dicom": "dcm", "png": "png", "jpeg": "jpg"}[sc.container["type"]]
    fimg, ftwin = cdir / f"image.{ext}", cdir / f"twin.{ext}"
    if ext == "dcm":
        assert hdr is not None
        write_dicom(fimg, sc, img_q, hdr, seed, case, res)
        write_dicom(ftwin, sc, twin_q, hdr, seed, case, res)
    else:
        save_raster(img_q[0], fimg, sc.container)
        save_raster(twin_q[0], ftwin, sc.container)
    store: dict[str, np.ndarray] = {}
    tok_meta = []
    for ti, (t, m) in enumerate(zip(toks, masks, strict=True)):
        ys, xs = np.nonzero(m)
        t = dict(t, id=ti)
        if ys.size == 0:
            t["bbox"] = None
        else:
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            t["bbox"] = [x0, y0, x1, y1]
            store[f"m{ti}"] = m[y0:y1, x0:x1]
        if t["role"] in ("phi", "neg"):
            t["header_knows"] = header_knows(t, hdr) if t["role"] == "phi" else None
        tok_meta.append(t)
    np.savez_compressed(cdir / "masks.npz", **store)  # type: ignore[arg-type]
    # harness check: an identifier's judged region must not reach into a negative's glyphs (and vice versa)
    owner = np.full((H, W), -1, np.int32)
    overlaps = []
    for t in tok_meta:
        if t["role"] not in ("phi", "neg") or t["bbox"] is None:
            continue
        x0, y0, x1, y1 = t["bbox"]
        crop = np.pad(store[f"m{t['id']}"], dil)
        reg = ndimage.binary_dilation(crop, iterations=dil)
        gx0, gy0 = x0 - dil, y0 - dil
        cx0, cy0 = max(0, -gx0), max(0, -gy0)
        reg = reg[cy0:, cx0:]
        gx0, gy0 = gx0 + cx0, gy0 + cy0
        reg = reg[:H - gy0, :W - gx0]
        view = owner[gy0:gy0 + reg.shape[0], gx0:gx0 + reg.shape[1]]
        hit = view[reg]
        for o in set(hit[hit >= 0].tolist()):
            if tok_meta[o]["role"] != t["role"]:
                overlaps.append([tok_meta[o]["text"], t["text"]])
        view[reg & (view < 0)] = t["id"]
    meta = {
        "case": case, "scene": kind, "seed": seed, "container": {k: v for k, v in sc.container.items()},
        "size": [W, H], "frames": sc.n_frames, "dilate": dil, "jpeg_quality": jpeg_q,
        "post": [[op[0]] + [x for x in op[1:] if isinstance(x, int | float)] for op in sc.post],
        "identity_mode": ctx.id_mode if hdr is not None else "no_header", "header": hdr,
        "pixel_identity": {"name": idn.patient.pn(), "mrn": idn.patient.mrn, "dob": f"{idn.patient.dob}",
                           "study_date": f"{idn.study_date}", "accession": idn.accession,
                           "institution": idn.institution, "culture": idn.patient.culture},
        "notes": sc.notes, "image": fimg.name, "twin": ftwin.name, "phi_neg_overlaps": overlaps, "tokens": tok_meta,
    }
    (cdir / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False, default=str))
    return meta


def scene_order(seed: int) -> list[str]:
    order = list(SCENES)
    random.Random(f"heldout-m-order:{seed}").shuffle(order)
    return order


# --------------------------------------------------------------------------------------------------------------------
# running the CLI

RUNS = (("always", "image", "always"), ("never", "image", "never"), ("twin", "twin", "never"))


def file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run_ingest(radassist: str, work: Path, meta: dict[str, Any], run: str, which: str, mode: str,
               timeout: int) -> dict[str, Any]:
    case = meta["case"]
    rdir = work / "runs" / case / run
    shutil.rmtree(rdir, ignore_errors=True)
    data, out = rdir / "data", rdir / "out"
    data.mkdir(parents=True)
    src = work / "cases" / case / meta[which]
    env = dict(os.environ, RADASSIST_DATA_DIR=str(data), RADASSIST_BURNED_IN_TEXT=mode)
    t0 = time.monotonic()
    try:
        p = subprocess.run([radassist, "ingest", "--json", "--out", str(out), str(src)], env=env,
                           capture_output=True, text=True, timeout=timeout, check=False)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, stdout, stderr = -9, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), \
            "timeout"
    wall = time.monotonic() - t0
    summary = None
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                summary = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    frames: dict[str, str] = {}
    series = sorted({p.parent.name for p in out.glob("**/frame*.png")}) if out.exists() else []
    for fp in sorted(out.glob("**/frame*.png")) if out.exists() else []:
        m = re.search(r"frame(\d+)\.png$", fp.name)
        if m and fp.parent.name == (series[0] if series else ""):
            frames[str(int(m.group(1)))] = str(fp.relative_to(work))
    ok = rc == 0 and summary is not None and bool(summary.get("ok", False))
    rec = {"case": case, "run": run, "mode": mode, "input_sha256": file_sha(src), "rc": rc, "ok": ok,
           "wall_s": round(wall, 3),
           "summary": summary, "frames": frames, "series_dirs": series, "stderr_tail": stderr[-600:]}
    (rdir / "run.json").write_text(json.dumps(rec, indent=1))
    shutil.rmtree(data, ignore_errors=True)
    return rec


# --------------------------------------------------------------------------------------------------------------------
# scoring


def _load_rgb(path: Path) -> np.ndarray:
    im: Image.Image = Image.open(path)
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    a = np.asarray(im).astype(np.int16)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return a


def _resize_nearest(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    H, W = shape
    ys = (np.arange(H) * a.shape[0] / H).astype(int)
    xs = (np.arange(W) * a.shape[1] / W).astype(int)
    return a[ys][:, xs]


class MaskBank:
    def __init__(self, meta: dict[str, Any], npz: Any) -> None:
        self.meta, self.npz = meta, npz
        self.W, self.H = meta["size"]

    def full(self, tid: int, shape: tuple[int, int]) -> np.ndarray | None:
        t = self.meta["tokens"][tid]
        if t["bbox"] is None:
            return None
        x0, y0, x1, y1 = t["bbox"]
        m = np.zeros((self.H, self.W), bool)
        m[y0:y1, x0:x1] = self.npz[f"m{tid}"]
        if shape != (self.H, self.W):
            m = _resize_nearest(m, shape)
        return m

    def box(self, tid: int, shape: tuple[int, int], grow: int = 0) -> tuple[int, int, int, int] | None:
        t = self.meta["tokens"][tid]
        if t["bbox"] is None:
            return None
        x0, y0, x1, y1 = t["bbox"]
        sx, sy = shape[1] / self.W, shape[0] / self.H
        return (max(0, int(x0 * sx) - grow), max(0, int(y0 * sy) - grow), min(shape[1], int(math.ceil(x1 * sx)) + grow),
                min(shape[0], int(math.ceil(y1 * sy)) + grow))


def judge_token(tid: int, bank: MaskBank, dil: int, nv: np.ndarray, diff: np.ndarray, nonblack: np.ndarray,
                black_al: np.ndarray | None) -> dict[str, Any]:
    shape = nv.shape[:2]
    core = bank.full(tid, shape)
    if core is None or not core.any():
        return {"st": "unscorable", "why": "off-canvas"}
    bx = bank.box(tid, shape, grow=dil)
    assert bx is not None
    x0, y0, x1, y1 = bx
    c = core[y0:y1, x0:x1]
    region = ndimage.binary_dilation(c, iterations=dil)
    d = diff[y0:y1, x0:x1]
    nb = nonblack[y0:y1, x0:x1]
    ink = region & d
    n_ink = int(ink.sum())
    if n_ink < MIN_INK:
        return {"st": "unscorable", "why": "no-ink", "ink": n_ink}
    vis = ink & nb
    if vis.sum() >= 0.5 * n_ink and vis.sum() >= MIN_INK:
        judged, mode = vis, "ink"
    else:  # dark text on a light ground: judge the non-black pixels of its box
        tb = bank.box(tid, shape, grow=0)
        assert tb is not None
        inbox = np.zeros_like(region)
        inbox[tb[1] - y0:tb[3] - y0, tb[0] - x0:tb[2] - x0] = True
        judged, mode = region & inbox & nb, "dark"
        if judged.sum() < MIN_INK:
            return {"st": "unscorable", "why": "dark-no-ground", "ink": n_ink}
    if black_al is None:
        return {"st": "ok", "ink": n_ink, "judged": int(judged.sum()), "mode": mode, "frac": None}
    frac = float((judged & black_al[y0:y1, x0:x1]).sum() / judged.sum())
    return {"st": "ok", "ink": n_ink, "judged": int(judged.sum()), "mode": mode, "frac": round(frac, 4)}


def score_case(work: Path, meta: dict[str, Any], recs: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                                         dict[str, Any]]:
    case = meta["case"]
    npz = np.load(work / "cases" / case / "masks.npz")
    bank = MaskBank(meta, npz)
    al, nv, tw = recs["always"], recs["never"], recs["twin"]
    dil = int(meta["dilate"])
    info: dict[str, Any] = {"case": case, "scene": meta["scene"], "container": meta["container"]["type"],
                            "modality": meta["container"].get("modality"), "identity_mode": meta["identity_mode"],
                            "frames": meta["frames"], "size": meta["size"], "wall_always": al["wall_s"],
                            "wall_never": nv["wall_s"], "wall_twin": tw["wall_s"], "always_ok": al["ok"],
                            "never_ok": nv["ok"], "twin_ok": tw["ok"], "odd": []}
    bt = (al.get("summary") or {}).get("summary", {}) or {}
    bt = bt.get("burned_in_text") or {}
    info["reported"] = {k: bt.get(k) for k in ("checked_frames", "redacted_frames", "withheld_frames",
                                               "timed_out_frames", "box_count")}
    info["burned_in_annotation"] = ((al.get("summary") or {}).get("summary") or {}).get("burned_in_annotation")
    if not al["ok"]:
        info["odd"].append(f"always failed rc={al['rc']}: {al['stderr_tail'][-200:]}")
    if bt.get("timed_out_frames"):
        info["odd"].append(f"always: {bt.get('timed_out_frames')} frame(s) timed out")
    # A withheld frame is one the never-run rendered and the always-run did not, or rendered all black (the CLI
    # writes a black placeholder for a withheld frame). Should it write a picture that is not black while
    # reporting every frame withheld, trust the report.
    rep_w = bt.get("withheld_frames") or 0
    missing = [k for k in nv["frames"] if k not in al["frames"]] if al["ok"] else []
    all_black = set()
    if al["ok"]:
        for k, fp in al["frames"].items():
            a = _load_rgb(work / fp)
            if (a <= BLACK_T).all() and k in nv["frames"] and (_load_rgb(work / nv["frames"][k]) > BLACK_T).any(
                    axis=2).mean() > 0.01:
                all_black.add(k)
    n_det = len(missing) + len(all_black)
    all_withheld = bool(al["ok"] and rep_w and rep_w >= meta["frames"] and n_det < rep_w)
    if all_withheld:
        info["odd"].append(f"summary reports {rep_w} withheld frame(s), {n_det} missing/black: all taken as withheld")
    elif al["ok"] and n_det != rep_w:
        info["odd"].append(f"summary withheld_frames={rep_w} but {len(missing)} png missing, {len(all_black)} black")
    per_tok: dict[int, list[dict[str, Any]]] = {t["id"]: [] for t in meta["tokens"]}
    fr_list, withheld, shown, mism = [], [], [], []
    grow_fr = FR_MARGIN
    mm_grow = FR_MARGIN + (16 if meta["container"]["type"] == "jpeg" else 0) + 3 * dil
    for f in range(meta["frames"]):
        key = str(f + 1)
        if not (nv["ok"] and tw["ok"]) or key not in nv["frames"] or key not in tw["frames"]:
            info["odd"].append(f"frame {key}: no never/twin render")
            for t in meta["tokens"]:
                if f in t["frames"]:
                    per_tok[t["id"]].append({"st": "unscorable", "why": "never-missing"})
            continue
        nvi = _load_rgb(work / nv["frames"][key])
        twi = _load_rgb(work / tw["frames"][key])
        shape = nvi.shape[:2]
        if shape != (meta["size"][1], meta["size"][0]):
            info["odd"].append(f"frame {key}: never render {shape[::-1]} != source {tuple(meta['size'])}")
        if twi.shape != nvi.shape:
            info["odd"].append(f"frame {key}: twin render size differs")
            twi = _resize_nearest(twi, shape)
        diff = np.asarray((np.abs(nvi - twi) > DIFF_T).any(axis=2))
        nonblack = np.asarray((nvi > BLACK_T).any(axis=2))
        planted = np.zeros(shape, bool)
        planted_mm = np.zeros(shape, bool)
        for t in meta["tokens"]:
            if f in t["frames"]:
                b = bank.box(t["id"], shape, grow=grow_fr)
                b2 = bank.box(t["id"], shape, grow=mm_grow)
                if b:
                    planted[b[1]:b[3], b[0]:b[2]] = True
                if b2:
                    planted_mm[b2[1]:b2[3], b2[0]:b2[2]] = True
        mshare = float((diff & ~planted_mm).sum() / max(1, (~planted_mm).sum()))
        mism.append(mshare)
        state = "shown"
        ali = None
        if not al["ok"]:
            state = "failed"
        elif key not in al["frames"] or key in all_black or all_withheld:
            state = "withheld"
            withheld.append(f + 1)
        else:
            ali = _load_rgb(work / al["frames"][key])
            if ali.shape != nvi.shape:
                info["odd"].append(f"frame {key}: always render {ali.shape[1::-1]} != never {shape[::-1]}")
                ali = _resize_nearest(ali, shape)
            shown.append(f + 1)
        black_al = np.asarray((ali <= BLACK_T).all(axis=2)) if ali is not None else None
        if black_al is not None:
            vis = ~planted & nonblack
            fr = float((vis & black_al).sum() / max(1, vis.sum()))
            fr_list.append(round(fr, 5))
        for t in meta["tokens"]:
            if t["role"] not in ("phi", "neg") or f not in t["frames"]:
                continue
            j = judge_token(t["id"], bank, dil, nvi, diff, nonblack, black_al)
            if j["st"] == "ok":
                if state != "shown":
                    j["st"] = state
                elif t["role"] == "phi":
                    j["st"] = "removed" if j["frac"] >= REMOVED_SHARE else "leaked"
                else:
                    j["st"] = "blacked" if j["frac"] >= NEG_BLACK_SHARE else "kept"
            j["frame"] = f + 1
            per_tok[t["id"]].append(j)
    info["withheld_frames"] = withheld
    info["shown_frames"] = shown
    info["false_redaction"] = fr_list
    info["twin_mismatch_share"] = [round(x, 5) for x in mism]
    if any(x > 0.002 for x in mism):
        info["odd"].append(f"twin mismatch outside planted boxes: {max(mism):.4f}")
    rows = []
    for t in meta["tokens"]:
        if t["role"] not in ("phi", "neg"):
            continue
        js = per_tok[t["id"]]
        sts = [j["st"] for j in js]
        scorable = [s for s in sts if s != "unscorable"]
        if not scorable:
            st = "unscorable"
        elif t["role"] == "phi":
            if "leaked" in scorable:
                st = "leaked"
            elif "failed" in scorable:
                st = "failed"
            elif all(s == "withheld" for s in scorable):
                st = "withheld"
            else:
                st = "removed"
        else:
            if "blacked" in scorable:
                st = "blacked"
            elif "failed" in scorable:
                st = "failed"
            elif all(s == "withheld" for s in scorable):
                st = "withheld"
            elif "kept" in scorable:
                st = "kept"
            else:
                st = "withheld"
        bb = t["bbox"]
        fracs: list[float] = [float(j["frac"]) for j in js if j.get("frac") is not None]
        rows.append({
            "case": case, "scene": meta["scene"], "kind": t["kind"], "text": t["text"], "phi": t["role"] == "phi",
            "status": st, "size": t["size"], "box_w": (bb[2] - bb[0]) if bb else 0,
            "box_h": (bb[3] - bb[1]) if bb else 0,
            "bbox": bb, "font": t["font"], "angle": t["angle"], "alpha": t["alpha"], "stroke": t["stroke"],
            "shadow": t["shadow"], "line": t["line"], "container": meta["container"]["type"],
            "identity_mode": meta["identity_mode"], "header_knows": t.get("header_knows"),
            "ink_px": sum(j.get("ink", 0) for j in js), "mode": next((j["mode"] for j in js if "mode" in j), None),
            "frac_black": (max(fracs) if t["role"] == "neg" else min(fracs)) if fracs else None,
            "per_frame": [{k: j.get(k) for k in ("frame", "st", "frac", "ink", "why")} for j in js],
            "token_id": t["id"],
        })
    return rows, info


def _share(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    return round(float(np.percentile(np.array(xs), q)), 5)


def summarize(rows: list[dict[str, Any]], infos: list[dict[str, Any]]) -> dict[str, Any]:
    phi = [r for r in rows if r["phi"]]
    neg = [r for r in rows if not r["phi"]]

    def recall(rs: list[dict[str, Any]]) -> dict[str, Any]:
        sc = [r for r in rs if r["status"] != "unscorable"]
        c = {s: sum(1 for r in sc if r["status"] == s) for s in ("removed", "withheld", "failed", "leaked")}
        return {"scorable": len(sc), "unscorable": len(rs) - len(sc), **c,
                "recall": _share(c["removed"] + c["withheld"] + c["failed"], len(sc)),
                "recall_removed_only": _share(c["removed"], len(sc))}

    def kept(rs: list[dict[str, Any]]) -> dict[str, Any]:
        sc = [r for r in rs if r["status"] != "unscorable"]
        c = {s: sum(1 for r in sc if r["status"] == s) for s in ("kept", "blacked", "withheld", "failed")}
        return {"scorable": len(sc), "unscorable": len(rs) - len(sc), **c, "kept_share": _share(c["kept"], len(sc))}

    frs = [x for i in infos for x in i["false_redaction"]]
    wa = [i["wall_always"] for i in infos]
    wn = [i["wall_never"] for i in infos]
    ratios = [i["wall_always"] / i["wall_never"] for i in infos if i["wall_never"] > 0]
    n_frames = sum(i["frames"] for i in infos)
    return {
        "phi": recall(phi),
        "phi_by_scene": {s: recall([r for r in phi if r["scene"] == s]) for s in sorted({r["scene"] for r in phi})},
        "phi_by_kind": {k: recall([r for r in phi if r["kind"] == k]) for k in sorted({r["kind"] for r in phi})},
        "phi_by_container": {k: recall([r for r in phi if r["container"] == k])
                             for k in sorted({r["container"] for r in phi})},
        "phi_by_identity_mode": {k: recall([r for r in phi if r["identity_mode"] == k])
                                 for k in sorted({r["identity_mode"] for r in phi})},
        "phi_header_knows": {str(k): recall([r for r in phi if r["header_knows"] is k]) for k in (True, False, None)},
        "negatives": kept(neg),
        "neg_by_kind": {k: kept([r for r in neg if r["kind"] == k]) for k in sorted({r["kind"] for r in neg})},
        "neg_by_scene": {s: kept([r for r in neg if r["scene"] == s]) for s in sorted({r["scene"] for r in neg})},
        "false_redaction": {"frames": len(frs), "median": _pct(frs, 50), "p90": _pct(frs, 90),
                            "max": _pct(frs, 100)},
        "frames": {"total": n_frames, "withheld": sum(len(i["withheld_frames"]) for i in infos),
                   "cases_with_withheld": [i["case"] for i in infos if i["withheld_frames"]]},
        "failures": {"always": [i["case"] for i in infos if not i["always_ok"]],
                     "never_or_twin": [i["case"] for i in infos if not (i["never_ok"] and i["twin_ok"])]},
        "time": {"median_always_s": _pct(wa, 50), "median_never_s": _pct(wn, 50),
                 "ratio_of_medians": round(float(np.median(wa) / np.median(wn)), 3) if wa and wn else None,
                 "median_per_case_ratio": _pct(ratios, 50)},
        "twin_mismatch_cases": [i["case"] for i in infos if any(x > 0.002 for x in i["twin_mismatch_share"])],
        "odd_cases": {i["case"]: i["odd"] for i in infos if i["odd"]},
    }


def print_summary(s: dict[str, Any], seed: int, n_cases: int) -> None:
    p = s["phi"]
    print(f"== heldout_burned_in_m seed={seed} cases={n_cases}")
    print(f"identifier tokens: scorable {p['scorable']} (unscorable {p['unscorable']}); removed {p['removed']}, "
          f"withheld {p['withheld']}, failed {p['failed']}, leaked {p['leaked']} -> recall {p['recall']} "
          f"(removed only {p['recall_removed_only']})")
    print("recall by scene:")
    for k, v in s["phi_by_scene"].items():
        print(f"  {k:32s} {v['recall']!s:>7} ({v['leaked']} leaked / {v['scorable']})")
    print("recall by identifier kind:")
    for k, v in s["phi_by_kind"].items():
        print(f"  {k:32s} {v['recall']!s:>7} ({v['leaked']} leaked / {v['scorable']})")
    print("recall by header identity: " + ", ".join(f"{k}={v['recall']} ({v['scorable']})"
                                                   for k, v in s["phi_by_identity_mode"].items()))
    n = s["negatives"]
    print(f"negatives: scorable {n['scorable']}, kept {n['kept']}, blacked {n['blacked']}, withheld {n['withheld']}, "
          f"failed {n['failed']} -> kept share {n['kept_share']}")
    print("  by kind: " + ", ".join(f"{k}={v['kept_share']}({v['scorable']})" for k, v in s["neg_by_kind"].items()))
    fr = s["false_redaction"]
    print(f"false redaction per shown frame: median {fr['median']}, p90 {fr['p90']}, max {fr['max']} "
          f"over {fr['frames']} frames")
    fw = s["frames"]
    print(f"frames withheld: {fw['withheld']} / {fw['total']} (cases {fw['cases_with_withheld']})")
    print(f"failures: always {s['failures']['always']}, never/twin {s['failures']['never_or_twin']}")
    t = s["time"]
    print(f"time: median always {t['median_always_s']} s, never {t['median_never_s']} s, ratio {t['ratio_of_medians']}"
          f" (median per-case ratio {t['median_per_case_ratio']})")
    if s["twin_mismatch_cases"]:
        print(f"WARNING twin mismatch (harness): {s['twin_mismatch_cases']}")
    for c, o in s["odd_cases"].items():
        print(f"odd {c}: {'; '.join(o)[:300]}")


# --------------------------------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--images", type=int, default=DEFAULT_CASES, help="number of cases (default 50)")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="keep runs whose run.json exists (re-score only)")
    ap.add_argument("--radassist", default=str(REPO / ".venv" / "bin" / "radassist"))
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--timeout", type=int, default=900)
    a = ap.parse_args(argv)
    work: Path = a.work.resolve()
    res = Res(a.shared)
    order = scene_order(a.seed)
    t0 = time.monotonic()
    metas = []
    for i in range(a.images):
        kind = order[i % len(order)]
        metas.append(build_case(a.seed, i, kind, res, work / "cases" / f"c{i:02d}"))
    for m in metas:
        if m["phi_neg_overlaps"]:
            print(f"WARNING {m['case']}: identifier and negative regions touch: {m['phi_neg_overlaps'][:4]}")
    n_phi = sum(1 for m in metas for t in m["tokens"] if t["role"] == "phi")
    n_neg = sum(1 for m in metas for t in m["tokens"] if t["role"] == "neg")
    print(f"built {len(metas)} cases ({len({m['scene'] for m in metas})} scene kinds), {n_phi} identifier tokens, "
          f"{n_neg} negative tokens in {time.monotonic() - t0:.1f} s", flush=True)
    if a.build_only:
        return 0
    tasks = [(m, run, which, mode) for m in metas for run, which, mode in RUNS]
    recs: dict[tuple[str, str], dict[str, Any]] = {}

    def do(task: tuple[dict[str, Any], str, str, str]) -> dict[str, Any]:
        m, run, which, mode = task
        rj = work / "runs" / m["case"] / run / "run.json"
        if a.reuse and rj.exists():
            rec = json.loads(rj.read_text())
            if rec.get("input_sha256") == file_sha(work / "cases" / m["case"] / m[which]):
                return rec
        return run_ingest(a.radassist, work, m, run, which, mode, a.timeout)

    t1 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        for k, rec in enumerate(ex.map(do, tasks)):
            recs[(rec["case"], rec["run"])] = rec
            if (k + 1) % 15 == 0 or k + 1 == len(tasks):
                print(f"  {k + 1}/{len(tasks)} ingests, {time.monotonic() - t1:.0f} s", flush=True)
    rows: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    for m in metas:
        r, info = score_case(work, m, {run: recs[(m["case"], run)] for run, _, _ in RUNS})
        rows += r
        infos.append(info)
    summ = summarize(rows, infos)
    summ["run_seconds"] = round(time.monotonic() - t0, 1)
    out = {"seed": a.seed, "official_seed": OFFICIAL_SEED, "cases": len(metas), "summary": summ,
           "case_info": infos, "tokens": rows}
    (work / "results.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print_summary(summ, a.seed, len(metas))
    print(f"wrote {work / 'results.json'} ({summ['run_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
