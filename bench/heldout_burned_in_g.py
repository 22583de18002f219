"""Held-out benchmark G for burned-in text (issue #16): a hospital de-identification team's validation set.

About 50 images built at run time from real frames (../shared/data/dicom and VQA-RAD pictures) in the layouts a
validation team meets in practice: ultrasound (B-mode, colour Doppler, cine loops), viewer screenshots saved as
secondary captures, CR/DX (MONOCHROME1/2, 12-bit with a window), XA/RF fluoroscopy, NM whole body,
mammography-style frames, endoscopy and dermatology photographs, scanned paper (requisitions, consent forms, US
worksheets with handwriting-like values), PNG/JPEG teaching-file uploads and phone photos of a monitor. Synthetic
names, MRNs, accession numbers, dates, institutions, physicians, phones and addresses are drawn in several fonts
(DejaVu family, KaTeX fonts shipped with gradio when present, PIL's Aileron default and its bitmap font, scaled),
sizes, colours and contrasts, in corners, bars and over anatomy, next to negatives that must stay (L/R markers,
view labels, measurements, scale bars, rulers, technical parameters, orientation letters, colour bars). Each
image has a clean twin (same pixels, no text) so a token's ink is the pixel difference under its glyph mask.

radassist is driven only through its CLI, once with RADASSIST_BURNED_IN_TEXT=always and once with never, each
call in a fresh RADASSIST_DATA_DIR. Scoring:
- an identifier token is removed when >= 95% of its ink is black (<= 8 in every channel) in the `always`
  rendering, or its frame was withheld, or the file failed ingest (failures are also counted apart); when the
  token is darker than its box in the `never` rendering (dark text on a light page) the light pixels of its box
  are tested instead;
- a negative is kept when < 50% of its ink (light pixels of its box, if dark) is black;
- false redaction: share of visible non-text area (outside every drawn box + 4 px) black in `always` but not in
  `never`, per shown frame (median/p90/max);
- time: wall time of one ingest call per image, `always` vs `never`.

Official seed: 6143 (seed 1 was used to debug the harness only). Official run:

    .venv/bin/python -m bench.heldout_burned_in_g --seed 6143 --work /tmp/heldout_g --jobs 2

Debug runs: ``--seed 1 --images 10``. Writes WORK/results.json (per-token, per-negative and per-image rows) and
WORK/cases/ (the files ingested and their clean twins).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / ".." / "shared" / "data"
DICOM_DIR = SHARED / "dicom"
VQA_DIR = SHARED / "vqa_rad" / "images"
RADASSIST = ROOT / ".venv" / "bin" / "radassist"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
BLACK = 8  # a pixel is black when every channel is <= this
REMOVED_SHARE = 0.95
KEPT_SHARE = 0.50
BOX_MARGIN = 4
INK_DIFF = 4  # display levels: a glyph pixel that moved less than this is not ink
DEFAULT_IMAGES = 50

# ----------------------------------------------------------------------------------------------------------------
# Fonts


@dataclass(frozen=True)
class FontSpec:
    """A font by name: a TrueType file, PIL's Aileron default, or PIL's bitmap font scaled by an integer."""

    name: str
    path: str | None  # None: PIL built-in


def _katex(stem: str) -> str | None:
    pattern = str(ROOT / ".venv" / "lib" / "python3*" / "site-packages" / "gradio" / "templates" / "frontend"
                  / "assets" / f"{stem}-*.ttf")
    hits = sorted(glob.glob(pattern))
    return hits[0] if hits else None


def _fonts() -> dict[str, FontSpec]:
    files = {
        "dejavu_sans": "DejaVuSans.ttf",
        "dejavu_sans_bold": "DejaVuSans-Bold.ttf",
        "dejavu_mono": "DejaVuSansMono.ttf",
        "dejavu_mono_bold": "DejaVuSansMono-Bold.ttf",
        "dejavu_serif": "DejaVuSerif.ttf",
        "dejavu_serif_bold": "DejaVuSerif-Bold.ttf",
        "dejavu_serif_italic": "DejaVuSerif-Italic.ttf",
        "dejavu_condensed": "DejaVuSansCondensed.ttf",
        "dejavu_condensed_bold": "DejaVuSansCondensed-Bold.ttf",
        "dejavu_extralight": "DejaVuSans-ExtraLight.ttf",
        "dejavu_oblique": "DejaVuSans-Oblique.ttf",
    }
    out = {k: FontSpec(k, str(DEJAVU / v)) for k, v in files.items() if (DEJAVU / v).exists()}
    for name, stem in (("katex_typewriter", "KaTeX_Typewriter-Regular"), ("katex_main", "KaTeX_Main-Regular"),
                       ("katex_sans", "KaTeX_SansSerif-Regular"), ("katex_italic", "KaTeX_Main-Italic")):
        path = _katex(stem)
        if path:
            out[name] = FontSpec(name, path)
    out["pil_aileron"] = FontSpec("pil_aileron", None)
    out["pil_bitmap"] = FontSpec("pil_bitmap", None)
    return out


FONTS = _fonts()
SANS = [f for f in ("dejavu_sans", "dejavu_sans_bold", "dejavu_condensed", "dejavu_condensed_bold", "katex_sans",
                    "pil_aileron", "dejavu_extralight") if f in FONTS]
MONO = [f for f in ("dejavu_mono", "dejavu_mono_bold", "katex_typewriter", "pil_bitmap") if f in FONTS]
SERIF = [f for f in ("dejavu_serif", "dejavu_serif_bold", "katex_main") if f in FONTS]
HAND = [f for f in ("dejavu_serif_italic", "dejavu_oblique", "katex_italic") if f in FONTS]
_FONT_CACHE: dict[tuple[str, int], Any] = {}


def _font(name: str, size: int) -> Any:
    key = (name, size)
    if key not in _FONT_CACHE:
        spec = FONTS[name]
        if name == "pil_bitmap":
            _FONT_CACHE[key] = ImageFont.load_default_imagefont()
        elif spec.path is None:
            _FONT_CACHE[key] = ImageFont.load_default(size=size)
        else:
            _FONT_CACHE[key] = ImageFont.truetype(spec.path, size)
    return _FONT_CACHE[key]


@dataclass(frozen=True)
class Style:
    """How a run of text is drawn."""

    font: str
    size: int  # nominal pixel size (bitmap font: 11 x scale)
    fill: tuple[int, int, int]
    colour: str
    stroke: int = 0  # black outline width (viewer overlays)
    shadow: bool = False
    hand: bool = False  # handwriting-like: per-letter jitter

    @property
    def bitmap_scale(self) -> int:
        return max(1, round(self.size / 11))


COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255), "light_grey": (200, 200, 200), "grey": (150, 150, 150), "dim_grey": (110, 110, 110),
    "yellow": (255, 235, 40), "green": (60, 230, 80), "cyan": (40, 225, 235), "orange": (255, 150, 30),
    "black": (0, 0, 0), "dark_blue": (20, 30, 110), "blue_ink": (30, 50, 160), "dark_grey": (60, 60, 60),
    "red": (220, 40, 40),
}


def _style(font: str, size: int, colour: str, **kw: Any) -> Style:
    return Style(font=font, size=size, fill=COLOURS[colour], colour=colour, **kw)


def _word_alpha(text: str, st: Style, rng: random.Random) -> tuple[np.ndarray, np.ndarray, int, int, float]:
    """Alpha of one word: (fill alpha, outline alpha, dx, dy, advance) relative to the pen position."""
    if st.font == "pil_bitmap":
        font = _font("pil_bitmap", 11)
        scale = st.bitmap_scale
        left, top, right, bottom = font.getbbox(text)
        patch = Image.new("L", (right - left + 4, bottom - top + 4), 0)
        ImageDraw.Draw(patch).text((2 - left, 2 - top), text, fill=255, font=font)
        if scale > 1:
            patch = patch.resize((patch.width * scale, patch.height * scale), Image.Resampling.NEAREST)
        fill = np.asarray(patch, dtype=np.uint8)
        adv = font.getlength(text) * scale
        dx, dy = (left - 2) * scale, (top - 2) * scale
    elif st.hand:
        fill, dx, dy, adv = _hand_alpha(text, st, rng)
    else:
        font = _font(st.font, st.size)
        left, top, right, bottom = font.getbbox(text)
        pad = 3
        patch = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
        ImageDraw.Draw(patch).text((pad - left, pad - top), text, fill=255, font=font)
        fill = np.asarray(patch, dtype=np.uint8)
        adv = font.getlength(text)
        dx, dy = left - pad, top - pad
    outline = np.zeros_like(fill)
    if st.stroke or st.shadow:
        grow = max(st.stroke, 1)
        img = Image.fromarray(fill)
        big = Image.new("L", (img.width + 2 * grow, img.height + 2 * grow), 0)
        big.paste(img, (grow, grow))
        if st.shadow:
            sh = Image.new("L", big.size, 0)
            sh.paste(img, (grow + 1, grow + 1))
            outline = np.asarray(sh, dtype=np.uint8)
        else:
            outline = np.asarray(big.filter(ImageFilter.MaxFilter(2 * grow + 1)), dtype=np.uint8)
        fill = np.asarray(big, dtype=np.uint8)
        dx, dy = dx - grow, dy - grow
    return fill, outline, int(round(dx)), int(round(dy)), adv


def _hand_alpha(text: str, st: Style, rng: random.Random) -> tuple[np.ndarray, int, int, float]:
    """Handwriting-like word: italic letters with jittered size, baseline and slant."""
    pad = st.size
    width = int(st.size * 0.8 * len(text) + 3 * pad)
    height = int(st.size * 1.6 + 2 * pad)
    patch = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(patch)
    x = float(pad)
    for ch in text:
        size = max(8, int(st.size * rng.uniform(0.88, 1.12)))
        font = _font(st.font, size)
        y = pad + rng.uniform(-0.08, 0.08) * st.size
        draw.text((x, y), ch, fill=255, font=font)
        x += font.getlength(ch) * rng.uniform(0.92, 1.05)
    patch = patch.rotate(rng.uniform(-4, 4), resample=Image.Resampling.BILINEAR, center=(pad, pad + st.size))
    arr = np.asarray(patch, dtype=np.uint8)
    ys, xs = np.nonzero(arr > 0)
    if len(xs) == 0:
        return arr[:1, :1], 0, 0, x - pad
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return arr[y0:y1, x0:x1].copy(), int(x0 - pad), int(y0 - pad), x - pad


# ----------------------------------------------------------------------------------------------------------------
# Canvas: native pixels, a clean twin, and the marks drawn on it


@dataclass
class Mark:
    """One drawn token or graphic with its glyph mask."""

    text: str
    role: str  # "id" (identifier), "neg" (must stay) or "other" (drawn, not scored)
    kind: str
    style: Style | None
    frame: int
    x0: int
    y0: int
    mask: np.ndarray  # bool (h, w): glyph (and outline) alpha >= 0.5
    line: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.mask.shape[1], self.y0 + self.mask.shape[0]


def _lum(rgb: np.ndarray) -> np.ndarray:
    if rgb.shape[-1] == 1:
        return rgb[..., 0]
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


class Canvas:
    """One frame: native pixel values (8-bit display, or 12-bit stored with a window), its twin and marks."""

    def __init__(self, base: np.ndarray, *, color: bool, window: tuple[float, float, bool] | None = None) -> None:
        arr = base.astype(np.float32)
        if arr.ndim == 2:
            arr = arr[..., None]
        if color and arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        if not color and arr.shape[2] == 3:
            arr = _lum(arr)[..., None]
        self.img = arr
        self.color = color
        self.window = window  # (low, width, inverted) for 16-bit MONOCHROME1/2 frames
        self.marks: list[Mark] = []
        self.clean: np.ndarray | None = None

    @property
    def h(self) -> int:
        return int(self.img.shape[0])

    @property
    def w(self) -> int:
        return int(self.img.shape[1])

    def freeze_background(self) -> None:
        """Everything drawn so far is the picture; from now on only marks (text, annotations)."""
        self.clean = self.img.copy()

    def native(self, rgb: tuple[int, int, int]) -> np.ndarray:
        val = np.array(rgb, dtype=np.float32) if self.color else np.array([_lum(np.array(rgb, np.float32))])
        if self.window is None:
            return val
        low, width, inverted = self.window
        level = 255.0 - val if inverted else val
        return low + level / 255.0 * width

    def display(self, arr: np.ndarray) -> np.ndarray:
        """Display levels (H, W, C) float for native values."""
        if self.window is None:
            return arr
        low, width, inverted = self.window
        disp = np.clip((arr - low) / width * 255.0, 0, 255)
        return 255.0 - disp if inverted else disp

    def _blend(self, alpha: np.ndarray, x: int, y: int, value: np.ndarray) -> None:
        h, w = alpha.shape
        xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + w, self.w), min(y + h, self.h)
        if xa >= xb or ya >= yb:
            return
        a = alpha[ya - y:yb - y, xa - x:xb - x, None].astype(np.float32) / 255.0
        region = self.img[ya:yb, xa:xb]
        self.img[ya:yb, xa:xb] = region * (1 - a) + value[None, None, :] * a

    def stamp(self, fill: np.ndarray, outline: np.ndarray, x: int, y: int, fill_rgb: tuple[int, int, int],
              **mark: Any) -> Mark | None:
        """Blend one glyph patch (black outline first) and record it as a mark."""
        if outline.any():
            self._blend(outline, x, y, self.native((0, 0, 0)))
        self._blend(fill, x, y, self.native(fill_rgb))
        union = np.maximum(fill, outline) >= 128
        h, w = union.shape
        xa, ya, xb, yb = max(x, 0), max(y, 0), min(x + w, self.w), min(y + h, self.h)
        if xa >= xb or ya >= yb:
            return None
        m = Mark(x0=xa, y0=ya, mask=union[ya - y:yb - y, xa - x:xb - x].copy(), **mark)
        self.marks.append(m)
        return m

    def text(self, x: float, y: float, words: list[tuple[str, str, str]], st: Style, rng: random.Random, *,
             frame: int = 0, anchor: str = "l", line: str = "") -> tuple[int, int, int, int]:
        """Draw a line of (word, role, kind) at pen (x, y=top); anchor l/r/c. Returns the line's box."""
        pieces = []
        pen = 0.0
        space = _font(st.font if st.font != "pil_bitmap" else "dejavu_sans", max(st.size, 8)).getlength(" ")
        if st.font == "pil_bitmap":
            space = 6 * st.bitmap_scale
        for word, role, kind in words:
            fill, outline, dx, dy, adv = _word_alpha(word, st, rng)
            pieces.append((word, role, kind, fill, outline, pen + dx, dy))
            pen += adv + space * (1.0 if not st.hand else rng.uniform(0.9, 1.4))
        total = pen - space
        start = x if anchor == "l" else (x - total if anchor == "r" else x - total / 2)
        line = line or " ".join(w for w, _, _ in words)
        boxes = []
        for word, role, kind, fill, outline, px, dy in pieces:
            m = self.stamp(fill, outline, int(round(start + px)), int(round(y + dy)), st.fill, text=word, role=role,
                           kind=kind, style=st, frame=frame, line=line)
            if m is not None:
                boxes.append(m.box)
        if not boxes:
            return int(start), int(y), int(start), int(y)
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                max(b[3] for b in boxes))

    def graphic(self, draw_fn: Callable[[ImageDraw.ImageDraw], None], rgb: tuple[int, int, int], kind: str, *,
                frame: int = 0, label: str = "", role: str = "neg") -> Mark | None:
        """A non-text annotation (scale bar, ruler, caliper, L/R marker box) drawn as one mark."""
        patch = Image.new("L", (self.w, self.h), 0)
        draw_fn(ImageDraw.Draw(patch))
        alpha = np.asarray(patch, dtype=np.uint8)
        ys, xs = np.nonzero(alpha)
        if len(xs) == 0:
            return None
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return self.stamp(alpha[y0:y1, x0:x1], np.zeros((y1 - y0, x1 - x0), np.uint8), int(x0), int(y0), rgb,
                          text=label or kind, role=role, kind=kind, style=None, frame=frame, line=label or kind)


# ----------------------------------------------------------------------------------------------------------------
# Source frames (real pixels)


def _dcm(rel: str) -> np.ndarray:
    import pydicom

    ds = pydicom.dcmread(str(DICOM_DIR / rel))
    arr = ds.pixel_array
    pi = str(ds.PhotometricInterpretation)
    if pi.startswith("YBR"):
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, pi, "RGB")
    elif pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            arr = (arr / 257).astype(np.uint8)
    return np.asarray(arr)


def _to8(arr: np.ndarray, lo_pct: float = 1, hi_pct: float = 99.5) -> np.ndarray:
    a = arr.astype(np.float32)
    lo, hi = np.percentile(a, lo_pct), np.percentile(a, hi_pct)
    return np.clip((a - lo) / max(hi - lo, 1) * 255, 0, 255).astype(np.uint8)


def _gray(arr: np.ndarray) -> np.ndarray:
    return _lum(arr.astype(np.float32)).astype(np.uint8) if arr.ndim == 3 else arr


def _crop(arr: np.ndarray, fy0: float, fy1: float, fx0: float, fx1: float) -> np.ndarray:
    h, w = arr.shape[:2]
    return arr[int(h * fy0):int(h * fy1), int(w * fx0):int(w * fx1)]


def _resize(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.BILINEAR))
    img = Image.fromarray(arr.astype(np.float32))
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))


_SOURCE_CACHE: dict[str, np.ndarray] = {}


def _source(name: str) -> np.ndarray:
    """Real anatomy crops (text-bearing borders of the source files cut away)."""
    if name in _SOURCE_CACHE:
        return _SOURCE_CACHE[name]
    loaders: dict[str, Callable[[], np.ndarray]] = {
        "us1": lambda: _gray(_crop(_dcm("pydicom_data/US1_J2KR.dcm"), 0.22, 0.85, 0.28, 0.72)),
        "us2": lambda: _gray(_crop(_dcm("pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm"), 0.2, 0.85, 0.25, 0.75)),
        "us3": lambda: _gray(_crop(_dcm("pydicom_data/OBXXXX1A_rle_2frame.dcm")[0], 0.2, 0.85, 0.25, 0.75)),
        "ct": lambda: _to8(_dcm("pydicom_data/693_UNCI.dcm"), 5, 99.8),
        "ct2": lambda: _to8(_dcm("pydicom_data/explicit_VR-UN.dcm"), 5, 99.8),
        "mr": lambda: _to8(_dcm("dcm_qa_ts/1.dcm")),
        "mr2": lambda: _to8(_dcm("pydicom_data/MR2_J2KI.dcm")),
        "mr3": lambda: _to8(_dcm("pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm")),
        "cr_chest": lambda: _dcm("pydicom_data/RG1_UNCI.dcm").astype(np.float32),
        "cr_ext": lambda: _dcm("pydicom_data/RG3_J2KR.dcm").astype(np.float32),
        "nm": lambda: _to8(_dcm("pydicom_data/JPEG-LL.dcm"), 0, 99.7),
    }
    try:
        arr = loaders[name]()
    except Exception:  # a source that does not decode here: fall back to a VQA-RAD picture
        arr = _vqa(random.Random(name))
    _SOURCE_CACHE[name] = arr
    return arr


def _vqa(rng: random.Random) -> np.ndarray:
    files = sorted(VQA_DIR.glob("*.jpg"))
    path = rng.choice(files)
    img = Image.open(path).convert("L")
    img.thumbnail((900, 900))
    arr = np.asarray(img)
    return _crop(arr, 0.06, 0.94, 0.06, 0.94)  # teaching files carry arrows/letters at the edges


# ----------------------------------------------------------------------------------------------------------------
# Synthetic identities

FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Rahul", "Fatima", "Lucas", "Ngozi", "Sven", "Yuki", "Carmen",
         "Dmitri", "Priya", "Kwame", "Ingrid", "Mateo", "Leila", "Tomasz", "Hannah", "Jamal", "Elif", "Bjorn", "Mei",
         "Oluwaseun", "Zofia", "Diego", "Anika", "Farhan", "Greta", "Esther", "Viktor", "Rosa", "Kenji", "Amara"]
LAST = ["Okonkwo", "Lindqvist", "Castellano", "Nakamura", "Petrov", "Hargreaves", "Abernathy", "Delacroix",
        "Mbeki", "Fitzgerald", "Kowalczyk", "Haddad", "Vanderberg", "O'Sullivan", "Garcia-Mendez", "Thorsen",
        "Achterberg", "Rasmussen", "Quintero", "Szymanski", "Oyelaran", "Whitcombe", "Brannigan", "Eriksdottir",
        "Moreau", "Tanaka", "Iyer", "Bergstrom", "Halvorsen", "Mwangi", "Ferreira", "Kimura", "Laszlo", "Ncube"]
PLACES = ["Riverside", "Northfield", "St. Brendan's", "Lakeview", "Cedar Hollow", "Mount Ardent", "Westbrook",
          "Harbourgate", "Pinecrest", "Saint Aurelia", "Eastmoor", "Kingsbridge", "Valley Oaks", "Fenwick"]
INST_KIND = ["General Hospital", "Medical Center", "Imaging Clinic", "Radiology", "Children's Hospital",
             "University Hospital", "Women's Health", "Regional Medical Ctr"]
STREETS = ["Larkspur Lane", "Quarry Road", "Elm Terrace", "Harbor Way", "Mill Street", "Orchard Close"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


@dataclass
class Identity:
    """One synthetic patient and encounter."""

    first: str
    last: str
    middle: str
    sex: str
    dob: tuple[int, int, int]
    study: tuple[int, int, int]
    mrn: str
    accession: str
    institution: str
    physician: tuple[str, str]
    operator: tuple[str, str]
    phone: str
    address: str


def _identity(rng: random.Random) -> Identity:
    dob = (rng.randint(1931, 2021), rng.randint(1, 12), rng.randint(1, 28))
    study = (rng.randint(2016, 2025), rng.randint(1, 12), rng.randint(1, 28))
    mrn_style = rng.randrange(5)
    digits = "".join(str(rng.randint(0, 9)) for _ in range(rng.choice([7, 8, 9, 10])))
    mrn = [digits, "H" + digits[:7], digits[:4] + "-" + digits[4:], "MR" + digits[:6], digits][mrn_style]
    acc = rng.choice(["A", "RA", "CT", "US", ""]) + str(rng.randint(10, 25)) + "".join(
        str(rng.randint(0, 9)) for _ in range(rng.choice([5, 6, 7])))
    return Identity(
        first=rng.choice(FIRST), last=rng.choice(LAST), middle=rng.choice("ABCDEFGHJKLMNPRSTW"),
        sex=rng.choice("FM"), dob=dob, study=study, mrn=mrn, accession=acc,
        institution=f"{rng.choice(PLACES)} {rng.choice(INST_KIND)}",
        physician=(rng.choice(FIRST), rng.choice(LAST)), operator=(rng.choice(FIRST), rng.choice(LAST)),
        phone=f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
        address=f"{rng.randint(3, 980)} {rng.choice(STREETS)}, {rng.choice(PLACES)}",
    )


def _date(d: tuple[int, int, int], rng: random.Random) -> str:
    y, m, dd = d
    return rng.choice([f"{m:02d}/{dd:02d}/{y}", f"{dd:02d}.{m:02d}.{y}", f"{y}-{m:02d}-{dd:02d}",
                       f"{dd:02d}-{MONTHS[m - 1].title()}-{y}", f"{dd} {MONTHS[m - 1]} {y}", f"{y}{m:02d}{dd:02d}",
                       f"{m}/{dd}/{y % 100:02d}", f"{y}/{m:02d}/{dd:02d}"])


def _name_words(p: Identity, rng: random.Random) -> list[str]:
    style = rng.randrange(6)
    if style == 0:
        return [f"{p.last.upper()}^{p.first.upper()}"]
    if style == 1:
        return [f"{p.last.upper()},", p.first.upper(), p.middle]
    if style == 2:
        return [p.first, p.last]
    if style == 3:
        return [p.last.upper(), p.first.upper()]
    if style == 4:
        return [f"{p.last},", p.first]
    return [f"{p.last.upper()}^{p.first.upper()}^{p.middle}"]


def _ids(words: list[str], kind: str) -> list[tuple[str, str, str]]:
    return [(w, "id", kind) for w in words]


def _lbl(*words: str) -> list[tuple[str, str, str]]:
    return [(w, "other", "label") for w in words]


def _neg(text: str, kind: str) -> list[tuple[str, str, str]]:
    return [(w, "neg", kind) for w in text.split()]


def _oth(text: str) -> list[tuple[str, str, str]]:
    return [(w, "other", "other") for w in text.split()]


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


def _id_lines(p: Identity, rng: random.Random, *, n: int, labels: bool) -> list[list[tuple[str, str, str]]]:
    """n identifier lines drawn in random order from what vendors print."""
    def lab(*w: str) -> list[tuple[str, str, str]]:
        return _lbl(*w) if labels else []
    options = [
        lab("Name:") + _ids(_name_words(p, rng), "name"),
        lab(rng.choice(["ID:", "MRN:", "PID:", "Pat.ID"])) + _ids(p.mrn.split(), "mrn"),
        lab(rng.choice(["DOB:", "Born", "D.O.B."])) + _ids([_date(p.dob, rng)], "dob"),
        _ids([_date(p.study, rng)], "study_date") + _oth(_time(rng)),
        _ids(p.institution.split(), "institution"),
        lab(rng.choice(["Acc:", "Acc#", "Exam#"])) + _ids([p.accession], "accession"),
        lab("Ref:") + _ids([p.physician[0][0] + ".", p.physician[1]], "physician"),
    ]
    first = options[:2]
    rest = options[2:]
    rng.shuffle(rest)
    chosen = first + rest
    chosen = chosen[:max(n, 1)]
    rng.shuffle(chosen)
    return chosen


# ----------------------------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    """One image file to ingest, its frames (with clean twins and marks) and how it is stored."""

    case_id: str
    rendering: str
    modality: str
    fmt: str  # dcm | png | jpg
    frames: list[Canvas]
    header: dict[str, str] | None
    header_match: str  # same | other | anon | none
    bits: int = 8
    extra: dict[str, Any] = field(default_factory=dict)
    # filled by finish(): display arrays of the text image and its twin, per frame, as transformed
    disp: list[np.ndarray] = field(default_factory=list)
    twin: list[np.ndarray] = field(default_factory=list)
    stored: list[np.ndarray] = field(default_factory=list)


def _da(d: tuple[int, int, int]) -> str:
    return f"{d[0]:04d}{d[1]:02d}{d[2]:02d}"


def _header(p: Identity, rng: random.Random, *, none_ok: bool = True) -> tuple[dict[str, str], str]:
    """The DICOM header: the same patient as printed, another one (re-imported capture) or anonymised."""
    roll = rng.random()
    if roll < 0.6 or not none_ok:
        q, match = p, "same"
    elif roll < 0.85:
        q, match = _identity(rng), "other"
    else:
        return {"PatientName": "ANONYMOUS^PATIENT", "PatientID": "UNKNOWN"}, "anon"
    hdr = {
        "PatientName": f"{q.last.upper()}^{q.first.upper()}^{q.middle}",
        "PatientID": q.mrn, "PatientBirthDate": _da(q.dob), "PatientSex": q.sex, "StudyDate": _da(q.study),
        "AccessionNumber": q.accession, "InstitutionName": q.institution,
        "ReferringPhysicianName": f"{q.physician[1]}^{q.physician[0]}",
        "OperatorsName": f"{q.operator[1]}^{q.operator[0]}",
    }
    if rng.random() < 0.4:
        hdr["PatientAddress"] = q.address
        hdr["PatientTelephoneNumbers"] = q.phone
    return hdr, match


HEADER_FIELD = {"name": "PatientName", "mrn": "PatientID", "dob": "PatientBirthDate", "study_date": "StudyDate",
                "accession": "AccessionNumber", "institution": "InstitutionName",
                "physician": "ReferringPhysicianName", "operator": "OperatorsName", "phone": "PatientTelephoneNumbers",
                "address": "PatientAddress"}


# --- building blocks --------------------------------------------------------------------------------------------

def _fan(canvas_h: int, canvas_w: int, tex: np.ndarray, rng: random.Random, *, linear: bool,
         top: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """US image area: texture inside a sector (or linear rectangle) on black. Returns (img, mask, bbox)."""
    h = canvas_h - top - rng.randint(30, 70)
    if linear:
        w = int(h * rng.uniform(0.7, 0.95))
        x0 = (canvas_w - w) // 2 + rng.randint(-30, 30)
        mask = np.zeros((canvas_h, canvas_w), bool)
        mask[top:top + h, x0:x0 + w] = True
        bbox = (x0, top, x0 + w, top + h)
    else:
        yy, xx = np.mgrid[0:canvas_h, 0:canvas_w].astype(np.float32)
        cx, cy = canvas_w / 2 + rng.randint(-30, 30), top - h * 0.08
        r = np.hypot(xx - cx, yy - cy)
        ang = np.degrees(np.arctan2(xx - cx, yy - cy))
        half = rng.uniform(30, 40)
        mask = (r > h * 0.1) & (r < h * 1.06) & (np.abs(ang) < half) & (yy >= top)
        ys, xs = np.nonzero(mask)
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    bw, bh = bbox[2] - bbox[0], bbox[3] - bbox[1]
    t = _resize(tex, bw, bh).astype(np.float32)
    img = np.zeros((canvas_h, canvas_w), np.float32)
    img[bbox[1]:bbox[3], bbox[0]:bbox[2]] = t
    speckle = np.asarray(Image.fromarray(
        (np.random.default_rng(rng.randrange(1 << 30)).random((canvas_h, canvas_w)) * 255).astype(np.uint8)
    ).filter(ImageFilter.GaussianBlur(0.8)), np.float32)
    img = img * 0.85 + speckle * 0.15
    depth = np.linspace(1.0, 0.55, canvas_h, dtype=np.float32)[:, None]
    img = np.where(mask, img * depth, 0)
    return img, mask, bbox


def _depth_scale(cv: Canvas, x: int, y0: int, y1: int, st: Style, rng: random.Random, frame: int) -> None:
    n = rng.choice([4, 5, 6])
    unit = rng.choice([1, 2, 5])
    step = (y1 - y0) / n
    ys = [int(y0 + k * step) for k in range(n + 1)]

    def ticks(d: ImageDraw.ImageDraw) -> None:
        for yy in ys:
            d.line([(x, yy), (x + 6, yy)], fill=255, width=1)
    cv.graphic(ticks, st.fill, "depth_scale", frame=frame)
    for k, yy in enumerate(ys[1:], start=1):
        cv.text(x + 9, yy - st.size // 2, _neg(str(k * unit), "depth_scale"), st, random.Random(k), frame=frame)


def _scale_bar(cv: Canvas, x: int, y: int, length: int, label: str, colour: str, rng: random.Random,
               frame: int = 0, vertical: bool = False) -> None:
    rgb = COLOURS[colour]

    def draw(d: ImageDraw.ImageDraw) -> None:
        if vertical:
            d.line([(x, y), (x, y + length)], fill=255, width=2)
            for k in range(6):
                yy = y + k * length // 5
                d.line([(x - 4, yy), (x + 4, yy)], fill=255, width=1)
        else:
            d.line([(x, y), (x + length, y)], fill=255, width=2)
            for k in range(6):
                xx = x + k * length // 5
                d.line([(xx, y - 4), (xx, y + 4)], fill=255, width=1)
    cv.graphic(draw, rgb, "scale_bar", frame=frame)
    st = _style(rng.choice(SANS), rng.choice([10, 12, 14]), colour)
    if vertical:
        cv.text(x + 8, y + length // 2 - 6, _neg(label, "scale_label"), st, rng, frame=frame)
    else:
        cv.text(x + length / 2, y + 8, _neg(label, "scale_label"), st, rng, frame=frame, anchor="c")


def _lr_marker(cv: Canvas, x: int, y: int, letter: str, size: int, rng: random.Random, frame: int = 0,
               boxed: bool = True, colour: str = "white") -> None:
    st = _style(rng.choice(["dejavu_sans_bold", "dejavu_serif_bold", "dejavu_sans"]), size, colour)
    box = cv.text(x, y, _neg(letter, "lr_marker"), st, rng, frame=frame)
    if boxed:
        pad = max(3, size // 6)
        cv.graphic(lambda d: d.rectangle([box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad], outline=255,
                                         width=2), st.fill, "lr_marker_box", frame=frame)


def _caliper(cv: Canvas, a: tuple[int, int], b: tuple[int, int], colour: str, frame: int = 0) -> None:
    def draw(d: ImageDraw.ImageDraw) -> None:
        for (px, py) in (a, b):
            d.line([(px - 5, py), (px + 5, py)], fill=255, width=1)
            d.line([(px, py - 5), (px, py + 5)], fill=255, width=1)
        n = 12
        for k in range(1, n, 2):
            t0, t1 = k / n, (k + 0.5) / n
            d.line([(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                    (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)], fill=255, width=1)
    cv.graphic(draw, COLOURS[colour], "caliper", frame=frame)


def _block(cv: Canvas, x: int, y: int, lines: list[list[tuple[str, str, str]]], st: Style, rng: random.Random, *,
           anchor: str = "l", frame: int = 0, spacing: float = 1.3, up: bool = False) -> int:
    """Multi-line block from (x, y) down (or up from y). Returns the y after the block."""
    step = int(st.size * spacing) + 1
    if up:
        y = y - step * len(lines)
    for words in lines:
        if words:
            cv.text(x, y, words, st, rng, frame=frame, anchor=anchor)
        y += step
    return y


def _pick_colour(rng: random.Random, dark_bg: bool = True) -> str:
    if dark_bg:
        return rng.choice(["white", "white", "light_grey", "grey", "yellow", "green", "cyan", "orange"])
    return rng.choice(["black", "dark_blue", "dark_grey", "blue_ink"])


def _pick_style(rng: random.Random, dark_bg: bool = True, sizes: tuple[int, int] = (9, 22),
                fonts: list[str] | None = None, colour: str | None = None, **kw: Any) -> Style:
    font = rng.choice(fonts or (SANS + MONO))
    size = rng.randint(*sizes)
    if font == "pil_bitmap":
        size = 11 * rng.choice([1, 1, 2]) if sizes[1] >= 20 else 11
    return _style(font, size, colour or _pick_colour(rng, dark_bg), **kw)


# --- recipes ----------------------------------------------------------------------------------------------------

US_TECH = ["MI 0.9", "TIS 0.4", "TIB 0.7", "Gn 52", "DR 60", "FR 28Hz", "C5-1", "L12-5", "D 16cm", "P Low",
           "Map 4", "Frq 3.5MHz", "Res", "THI", "SRI II 3", "CRI 2", "Dyn R 66", "Pwr 100%", "AO 100%", "B"]
DOPPLER_TECH = ["CF 58%", "PRF 3.5kHz", "WF 150Hz", "Fq 4.4MHz", "Gn 48", "Angle 60°", "SV 2.0mm"]
US_MEAS = ["D1 2.41 cm", "D2 1.87 cm", "Vol 24.1 ml", "AC 28.3 cm", "BPD 7.12 cm", "HC 26.4 cm", "FL 5.48 cm",
           "RI 0.62", "PSV 84.2 cm/s", "EDV 21.0 cm/s", "Dist 12.4 mm", "L 3.2 cm W 2.1 cm"]
US_LABELS = ["RT KIDNEY LONG", "LT THYROID TRANS", "LIVER", "GB", "CBD", "RT CCA", "LT ICA PROX", "UTERUS SAG",
             "RUQ", "SPLEEN", "BLADDER PRE", "RT OVARY", "LT TESTIS"]


def _us(rng: random.Random, p: Identity, *, doppler: bool, frames: int) -> Case:
    h, w = rng.choice([(480, 640), (600, 800), (768, 1024), (576, 720)])
    color = doppler or rng.random() < 0.4
    tex = _source(rng.choice(["us1", "us2", "us3"]))
    layout = rng.randrange(3)
    style = _pick_style(rng, sizes=(9, 18))
    big = _pick_style(rng, sizes=(12, 26), fonts=SANS)
    tst = _pick_style(rng, sizes=(9, 14))
    tech = rng.sample(US_TECH, rng.randint(4, 8))
    meas = rng.sample(US_MEAS, rng.randint(0, 3))
    label = rng.choice(US_LABELS)
    id_lines = _id_lines(p, rng, n=rng.randint(3, 5), labels=rng.random() < 0.5)
    step = int(max(style.size, big.size) * 1.3) + 1
    top = min(10 + step * (len(id_lines) if layout == 1 else max(len(id_lines) - 1, 1)) + rng.randint(4, 30),
              int(h * 0.3))
    linear = rng.random() < 0.35
    fan_seed = rng.randrange(1 << 30)
    marker = rng.choice(["R", "L", "RT", "LT"]) if rng.random() < 0.3 else None
    marker_size = rng.randint(12, 20)
    tech_right = layout != 2 and not doppler  # a Doppler colour bar takes the right edge
    canvases = []
    for f in range(frames):
        img, mask, bbox = _fan(h, w, np.roll(tex, f * 7, axis=1), random.Random(fan_seed), linear=linear, top=top)
        cv = Canvas(img, color=color)
        if doppler:
            _doppler_box(cv, mask, bbox, random.Random(fan_seed + f))
        cv.freeze_background()
        fr = random.Random(fan_seed)  # the same overlay on every frame of a loop
        if layout == 0:
            cv.text(8, 6, id_lines[0], big, fr, frame=f)
            _block(cv, w - 8, 6, id_lines[1:], style, fr, anchor="r", frame=f)
        elif layout == 1:
            _block(cv, 8, 6, id_lines, style, fr, frame=f)
        else:
            cv.text(w / 2, 6, id_lines[0], big, fr, frame=f, anchor="c")
            _block(cv, w - 8, 8 + step, id_lines[1:], style, fr, anchor="r", frame=f)
        _block(cv, w - 8 if tech_right else 8, top + 10, [_neg(t, "technical") for t in tech], tst, fr,
               anchor="r" if tech_right else "l", frame=f)
        dx = max(bbox[0] - 34, 2) if tech_right else min(bbox[2] + 6, w - 30)
        _depth_scale(cv, dx, bbox[1], bbox[3] - 10, tst, fr, f)
        lst = _style(tst.font, max(tst.size, 11), "yellow" if color else "white")
        lx, la = (w - 10, "r") if not tech_right else (w - 10, "r")
        cv.text(lx, h - 8 - lst.size, _neg(label, "view_label"), lst, fr, frame=f, anchor=la)
        if meas:
            mst = _style(tst.font, tst.size, "yellow" if color else "white")
            _block(cv, w - 10, h - 16 - lst.size, [_neg(m, "measurement") for m in meas], mst, fr, anchor="r",
                   frame=f, up=True)
            cx, cy = (bbox[0] + bbox[2]) // 2, (bbox[1] + bbox[3]) // 2
            _caliper(cv, (cx - 40, cy - 10), (cx + 35, cy + 25), mst.colour, frame=f)
        if frames > 1:
            cv.text(10, h - 8 - tst.size, _oth(f"{f + 1}/{frames}"), tst, fr, frame=f)
        if marker:
            _lr_marker(cv, bbox[0] + 40, bbox[1] + 4, marker, marker_size, fr, frame=f, boxed=False)
        canvases.append(cv)
    hdr, match = _header(p, rng)
    rendering = "us_doppler" if doppler else ("us_cine" if frames > 1 else "us_bmode")
    return Case("", rendering, "US", "dcm", canvases, hdr, match)


def _doppler_box(cv: Canvas, mask: np.ndarray, bbox: tuple[int, int, int, int], rng: random.Random) -> None:
    x0, y0, x1, y1 = bbox
    bw, bh = x1 - x0, y1 - y0
    bx0, by0 = x0 + int(bw * rng.uniform(0.2, 0.35)), y0 + int(bh * rng.uniform(0.15, 0.3))
    bx1, by1 = bx0 + int(bw * 0.35), by0 + int(bh * 0.35)
    yy, xx = np.mgrid[0:cv.h, 0:cv.w]
    vel = np.zeros((cv.h, cv.w), np.float32)
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    for _ in range(4):
        cx, cy = nrng.uniform(bx0, bx1), nrng.uniform(by0, by1)
        rad = nrng.uniform(8, 25)
        vel += nrng.choice([-1, 1]) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rad ** 2))
    inside = mask & (xx >= bx0) & (xx < bx1) & (yy >= by0) & (yy < by1) & (np.abs(vel) > 0.25)
    red = np.stack([200 + 55 * np.clip(vel, 0, 1), 40 + 150 * np.clip(vel - 0.6, 0, 1), np.zeros_like(vel)], -1)
    blue = np.stack([np.zeros_like(vel), 60 + 150 * np.clip(-vel - 0.6, 0, 1), 200 + 55 * np.clip(-vel, 0, 1)], -1)
    col = np.where(vel[..., None] > 0, red, blue)
    cv.img = np.where(inside[..., None], col, cv.img)
    outline = np.zeros((cv.h, cv.w), bool)
    outline[by0, bx0:bx1] = outline[by1, bx0:bx1] = True
    outline[by0:by1, bx0] = outline[by0:by1, bx1] = True
    cv.img = np.where((outline & mask)[..., None], 180.0, cv.img)
    # colour bar at the right edge (part of the picture; its labels are negatives added later)
    bar_x = cv.w - 28
    ramp = np.linspace(1, -1, 120)
    for i, v in enumerate(ramp):
        c = (255 * max(v, 0), 60, 255 * max(-v, 0))
        cv.img[cv.h // 2 - 60 + i, bar_x:bar_x + 10] = c
    cv.doppler_bar = (bar_x, cv.h // 2 - 60)  # type: ignore[attr-defined]


def _us_case(rng: random.Random, p: Identity, kind: str) -> Case:
    case = _us(rng, p, doppler=kind == "doppler", frames=rng.randint(2, 3) if kind == "cine" else 1)
    if kind == "doppler":
        st = _style(rng.choice(SANS), 10, "white")
        v = f"{rng.uniform(15, 80):.1f}"
        tech = rng.sample(DOPPLER_TECH, 3)
        for f, cv in enumerate(case.frames):
            bx, by = cv.doppler_bar  # type: ignore[attr-defined]
            fr = random.Random(f)
            cv.text(bx + 5, by - 16, _neg("+" + v, "colour_bar"), st, fr, frame=f, anchor="c")
            cv.text(bx + 5, by + 124, _neg("-" + v, "colour_bar"), st, fr, frame=f, anchor="c")
            _block(cv, bx - 40, by + 20, [_neg(t, "technical") for t in tech], st, fr, anchor="r", frame=f)
    return case


VIEWER_TECH = [["W:400", "L:40"], ["WL 40", "WW 350"], ["C 50 W 350"], ["kV 120", "mA 245"], ["Thk 5.0mm"],
               ["ST 1.25mm"], ["Se: 3"], ["Im: 47/212"], ["Zoom 1.8"], ["TR 4200", "TE 98"], ["FOV 38cm"],
               ["Tilt 0.0"], ["2.5mm/2.5sp"], ["SL 112.5"], ["512x512"], ["Lossy 10:1"], ["FS 12"], ["HFS"]]


def _viewer_case(rng: random.Random, p: Identity, *, screenshot: bool = True) -> Case:
    src = _source(rng.choice(["ct", "ct2", "mr", "mr2", "mr3"])) if rng.random() < 0.8 else _vqa(rng)
    vw, vh = rng.choice([(1024, 768), (800, 800), (960, 720), (640, 640), (1280, 800)])
    color = rng.random() < 0.75
    canvas = np.full((vh, vw), rng.choice([0, 0, 0, 12, 25]), np.float32)
    fill = rng.uniform(0.78, 1.0)  # image zoomed to the viewport: corner text falls on anatomy
    ih = int(vh * fill)
    iw = min(vw, int(ih * src.shape[1] / src.shape[0]))
    img = _resize(src, iw, ih).astype(np.float32)
    ox, oy = (vw - iw) // 2, (vh - ih) // 2
    canvas[oy:oy + ih, ox:ox + iw] = img
    cv = Canvas(canvas, color=color)
    cv.freeze_background()
    stroke = rng.random() < 0.3
    shadow = not stroke and rng.random() < 0.3
    st = _pick_style(rng, sizes=(9, 20), stroke=1 if stroke else 0, shadow=shadow)
    colour2 = rng.choice(["white", "yellow", "green", "cyan", "orange", "light_grey"])
    st2 = _style(st.font, st.size, colour2 if color else "light_grey", stroke=st.stroke, shadow=st.shadow)
    ids = _id_lines(p, rng, n=rng.randint(3, 6), labels=rng.random() < 0.4)
    corner_ids = rng.choice(["tl", "tl", "tr", "split"])
    tech = [[(w_, "neg", "technical") for w_ in t] for t in rng.sample(VIEWER_TECH, rng.randint(3, 6))]
    m = 6
    if corner_ids == "split":
        _block(cv, m, m, ids[:3], st, rng)
        _block(cv, vw - m, m, ids[3:], st2, rng, anchor="r")
    elif corner_ids == "tl":
        _block(cv, m, m, ids, st, rng)
        _block(cv, vw - m, m, tech[:2], st2, rng, anchor="r")
    else:
        _block(cv, vw - m, m, ids, st, rng, anchor="r")
        _block(cv, m, m, tech[:2], st2, rng)
    _block(cv, m, vh - m, tech[2:], st2, rng, up=True)
    _block(cv, vw - m, vh - m, [_neg(rng.choice(["Se 3 Im 45", "Img 12/40", "Ser 602"]), "technical")], st2, rng,
           anchor="r", up=True)
    ost = _style(st.font, st.size + 2, st.colour, stroke=st.stroke, shadow=st.shadow)
    for letter, (x, y, a) in zip(rng.choice([("R", "L", "A", "P"), ("R", "L", "H", "F"), ("A", "P", "S", "I")]),
                                 [(m + 4, vh / 2, "l"), (vw - m - 4, vh / 2, "r"), (vw / 2, m + 4 + st.size * 4, "c"),
                                  (vw / 2, vh - m - 2 * st.size, "c")], strict=True):
        cv.text(x, y, _neg(letter, "orientation"), ost, rng, anchor=a)
    if rng.random() < 0.6:
        _scale_bar(cv, vw - m - 30, vh // 2 - 60, 120, rng.choice(["5 cm", "10cm", "50 mm"]), st2.colour, rng,
                   vertical=True)
    if rng.random() < 0.35:
        # a free-text annotation over anatomy with a measurement (negatives) and sometimes a name (clinician habit)
        ax, ay = ox + iw // 3, oy + ih // 2
        _caliper(cv, (ax, ay), (ax + 60, ay + 20), "yellow" if color else "white")
        cv.text(ax, ay + 30, _neg(f"{rng.uniform(4, 40):.1f} mm", "measurement"),
                _style(st.font, max(st.size, 11), "yellow" if color else "white"), rng)
    hdr, match = _header(p, rng)
    fmt = "dcm" if screenshot else rng.choice(["png", "jpg"])
    return Case("", "viewer_sc" if screenshot else "viewer_upload", "OT", fmt, [cv], hdr if fmt == "dcm" else None,
                match if fmt == "dcm" else "none")


def _cr_case(rng: random.Random, p: Identity) -> Case:
    which = rng.choice(["cr_chest", "cr_ext"])
    raw = _source(which)
    scale = rng.uniform(0.42, 0.55)
    h, w = int(raw.shape[0] * scale), int(raw.shape[1] * scale)
    stored = _resize(raw, w, h).astype(np.float32)
    # the sources are MONOCHROME1; half the cases are stored inverted as MONOCHROME2 (DX style)
    mono1 = rng.random() < 0.5
    if not mono1:
        stored = stored.max() - stored
    lo, hi = np.percentile(stored, 2), np.percentile(stored, 99.5)
    window = (float(lo), float(max(hi - lo, 10)), mono1)
    # collimation: a flat band that renders black on one or two edges
    cv = Canvas(stored, color=False, window=window)
    black_native = cv.native((0, 0, 0))[0]
    band = rng.randint(40, 90)
    edge = rng.choice(["top", "left", "bottom", "none"])
    if edge == "top":
        cv.img[:band] = black_native
    elif edge == "left":
        cv.img[:, :band] = black_native
    elif edge == "bottom":
        cv.img[-band:] = black_native
    cv.freeze_background()
    st = _pick_style(rng, sizes=(10, 30), colour=rng.choice(["white", "white", "light_grey", "grey", "dim_grey"]),
                     fonts=SANS + SERIF + MONO)
    ids = _id_lines(p, rng, n=rng.randint(3, 5), labels=rng.random() < 0.5)
    corner = rng.choice(["tl", "tr", "bl", "br"])
    x = 10 if corner[1] == "l" else w - 10
    anchor = "l" if corner[1] == "l" else "r"
    if corner[0] == "t":
        _block(cv, x, 10, ids, st, rng, anchor=anchor)
    else:
        _block(cv, x, h - 10, ids, st, rng, anchor=anchor, up=True)
    _lr_marker(cv, rng.choice([20, w - 80]), rng.randint(h // 5, h // 2), rng.choice(["L", "R"]),
               rng.randint(24, 48), rng, boxed=rng.random() < 0.6)
    neg_st = _style(st.font, max(st.size, 12), st.colour)
    other_corner_x = w - 10 if anchor == "l" else 10
    _block(cv, other_corner_x, 10 if corner[0] == "b" else h - 10,
           [_neg(rng.choice(["AP", "PA", "LAT", "AP SUPINE", "PA ERECT"]), "view_label"),
            _neg(rng.choice(["PORTABLE", "SEMI-ERECT", "WEIGHT BEARING", "OBLIQUE"]), "view_label"),
            _neg(rng.choice(["EI 412 DI 0.4", "S 210 L 2.0", "EXI 318", "85 kVp 2.5 mAs", "SID 180cm"]),
                 "technical")],
           neg_st, rng, anchor="r" if anchor == "l" else "l", up=corner[0] != "b")
    modality = rng.choice(["CR", "DX"])
    hdr, match = _header(p, rng)
    case = Case("", "cr_dx", modality, "dcm", [cv], hdr, match, bits=16)
    case.extra["photometric"] = "MONOCHROME1" if mono1 else "MONOCHROME2"
    case.extra["window"] = window
    return case


def _xa_case(rng: random.Random, p: Identity) -> Case:
    size = rng.choice([512, 768, 1024])
    n = rng.choice([1, 1, 2])
    tex = _source(rng.choice(["ct", "mr2", "cr_ext"]))
    tex8 = _to8(tex) if tex.dtype != np.uint8 else tex
    ids = _id_lines(p, rng, n=rng.randint(2, 4), labels=False)
    st = _pick_style(rng, sizes=(10, 22), colour=rng.choice(["white", "light_grey", "yellow"]))
    tech = [rng.choice(["LAO 32", "RAO 15", "AP 0"]) + " " + rng.choice(["CRA 18", "CAU 22", ""]),
            f"{rng.randint(60, 110)} kV {rng.uniform(1, 12):.1f} mA", rng.choice(["15 f/s", "7.5 fps", "30 fps"]),
            rng.choice(["FOV 22cm", "Mag 2", "Dose 12.4 mGy", "DAP 3.1 Gycm2"])]
    canvases = []
    for f in range(n):
        yy, xx = np.mgrid[0:size, 0:size]
        r = np.hypot(xx - size / 2, yy - size / 2)
        body = 255 - _resize(np.roll(tex8, f * 9, axis=0), size, size).astype(np.float32) * 0.8
        img = np.where(r < size * 0.46, body, 0)
        cv = Canvas(img, color=False)
        cv.freeze_background()
        rf = random.Random(rng.randrange(1 << 30))
        _block(cv, 8, 8, ids, st, rf, frame=f)
        _block(cv, size - 8, size - 8, [_neg(t, "technical") for t in tech if t.strip()], st, rf, anchor="r",
               frame=f, up=True)
        cv.text(8, size - 8 - st.size, _oth(f"Frame {f + 1}"), st, rf, frame=f)
        canvases.append(cv)
    hdr, match = _header(p, rng)
    return Case("", "xa_rf", rng.choice(["XA", "RF"]), "dcm", canvases, hdr, match)


def _nm_case(rng: random.Random, p: Identity) -> Case:
    src = _source("nm")
    tile = _resize(src, 200, 800) if src.shape[0] > src.shape[1] else _resize(src, 800, 200).T.copy()
    w = 520
    img = np.zeros((880, w), np.float32)
    inv = rng.random() < 0.5  # NM is often shown black-on-white
    t = tile.astype(np.float32)
    img[60:860, 40:240] = t
    img[60:860, 280:480] = t[:, ::-1]
    if inv:
        img = 255 - img
    cv = Canvas(img, color=False)
    cv.freeze_background()
    st = _pick_style(rng, dark_bg=not inv, sizes=(10, 18))
    ids = _id_lines(p, rng, n=rng.randint(2, 4), labels=rng.random() < 0.5)
    _block(cv, 6, 4, ids[:2], st, rng, spacing=1.2)
    _block(cv, w - 6, 4, ids[2:], st, rng, anchor="r", spacing=1.2)
    cv.text(140, 860, _neg("ANT", "view_label"), st, rng, anchor="c")
    cv.text(380, 860, _neg("POST", "view_label"), st, rng, anchor="c")
    cv.text(w - 6, 862, _neg(rng.choice(["Tc-99m MDP", "I-123 MIBG", "Ga-67"]), "technical"), st, rng, anchor="r")
    hdr, match = _header(p, rng)
    return Case("", "nm", "NM", "dcm", [cv], hdr, match)


def _mg_case(rng: random.Random, p: Identity) -> Case:
    raw = _source("cr_ext")
    h, w = 900, 720
    stored = _resize(raw, w, h).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    side = rng.choice(["L", "R"])
    cx = 0 if side == "L" else w
    breast = ((xx - cx) / (w * 0.75)) ** 2 + ((yy - h / 2) / (h * 0.45)) ** 2 < 1
    top = float(stored.max())
    stored = np.where(breast, stored, top)  # MONOCHROME1 max: black background
    window = (float(np.percentile(stored[breast], 1)), float(np.ptp(stored[breast]) + 1), True)
    cv = Canvas(stored, color=False, window=window)
    cv.freeze_background()
    st = _pick_style(rng, sizes=(11, 24), colour=rng.choice(["white", "light_grey"]), fonts=SANS)
    ids = _id_lines(p, rng, n=rng.randint(3, 5), labels=rng.random() < 0.5)
    x = w - 10 if side == "L" else 10
    anchor = "r" if side == "L" else "l"
    _block(cv, x, 12, ids, st, rng, anchor=anchor)
    view = side + rng.choice(["CC", "MLO", "XCCL", "ML"])
    big = _style("dejavu_sans_bold", rng.randint(28, 44), "white")
    cv.text(x, h // 2, _neg(view, "view_label"), big, rng, anchor=anchor)
    cv.text(x, h - 30, _neg(f"{rng.randint(25, 32)} kV {rng.randint(40, 140)} mAs", "technical"), st, rng,
            anchor=anchor)
    hdr, match = _header(p, rng)
    case = Case("", "mg", "MG", "dcm", [cv], hdr, match, bits=16)
    case.extra["photometric"] = "MONOCHROME1"
    case.extra["window"] = window
    return case


def _endo_case(rng: random.Random, p: Identity) -> Case:
    h, w = rng.choice([(576, 720), (768, 1024), (480, 640)])
    g = _resize(_vqa(rng), w - w // 3, h - 20).astype(np.float32) / 255.0
    pink = np.stack([150 + 100 * g, 60 + 90 * g, 55 + 70 * g], -1)
    img = np.zeros((h, w, 3), np.float32)
    x0 = w // 3 - 10
    yy, xx = np.mgrid[0:h - 20, 0:w - w // 3]
    cy, cx = (h - 20) / 2, (w - w // 3) / 2
    octagon = (np.abs(yy - cy) + np.abs(xx - cx) < (h - 20) * 0.68) & (np.abs(xx - cx) < cx) & (np.abs(yy - cy) < cy)
    img[10:h - 10, x0:x0 + w - w // 3] = np.where(octagon[..., None], pink, 0)
    cv = Canvas(img, color=True)
    cv.freeze_background()
    st = _pick_style(rng, sizes=(11, 22), colour=rng.choice(["white", "green", "light_grey", "cyan"]))
    ids = _id_lines(p, rng, n=rng.randint(3, 5), labels=rng.random() < 0.6)
    _block(cv, 10, 14, ids, st, rng)
    _block(cv, 10, h - 14, [_neg(rng.choice(["CV-190", "EPK-i7010", "VP-7000"]), "technical"),
                            _neg(rng.choice(["Eh:A5 Ce:3", "Str 2 Ce 1", "NBI"]), "technical"),
                            _oth(_time(rng))], st, rng, up=True)
    fmt = rng.choice(["dcm", "jpg"])
    hdr, match = _header(p, rng) if fmt == "dcm" else (None, "none")
    return Case("", "endoscopy", "ES", fmt, [cv], hdr, match)


def _derm_case(rng: random.Random, p: Identity) -> Case:
    h, w = rng.choice([(768, 1024), (600, 800), (900, 1200)])
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    tone = np.array(rng.choice([(224, 180, 150), (190, 140, 105), (140, 95, 70), (96, 64, 48)]), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 0.85 + 0.15 * np.sin(xx / w * 3 + yy / h * 2)
    noise = np.asarray(Image.fromarray((nrng.random((h, w)) * 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(2)), np.float32) / 255 - 0.5
    img = tone[None, None, :] * shade[..., None] + noise[..., None] * 30
    lx, ly, lr = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.35, 0.55), rng.uniform(40, 90)
    lesion = np.exp(-(((xx - lx) / lr) ** 2 + ((yy - ly) / (lr * 0.8)) ** 2))
    img = img * (1 - 0.6 * lesion[..., None]) + np.array([70, 40, 30], np.float32) * 0.6 * lesion[..., None]
    # white sticker label (the light background of the printed identifiers)
    sx, sy, sw, sh = int(w * 0.05), int(h * 0.05), int(w * rng.uniform(0.32, 0.42)), int(h * 0.22)
    img[sy:sy + sh, sx:sx + sw] = np.array([245, 245, 238], np.float32)
    # ruler along the bottom (light plastic)
    ry = h - 70
    img[ry:ry + 45, int(w * 0.2):int(w * 0.8)] = np.array([235, 235, 220], np.float32)
    cv = Canvas(np.clip(img, 0, 255), color=True)
    cv.freeze_background()
    st = _pick_style(rng, dark_bg=False, sizes=(12, 24), fonts=SANS + MONO)
    ids = _id_lines(p, rng, n=rng.randint(3, 4), labels=rng.random() < 0.7)
    _block(cv, sx + 8, sy + 8, ids, st, rng, spacing=1.25)
    hst = _style(rng.choice(HAND), rng.randint(16, 26), rng.choice(["blue_ink", "black"]), hand=True)
    cv.text(w * 0.55, h * 0.1, _ids([_date(p.study, rng)], "study_date"), hst, rng)
    x_start = int(w * 0.2) + 10
    step = (int(w * 0.8) - x_start - 20) // 8

    def ticks(d: ImageDraw.ImageDraw) -> None:
        for k in range(41):
            xk = x_start + k * step / 5
            d.line([(xk, ry + 2), (xk, ry + (16 if k % 5 == 0 else 9))], fill=255, width=1)
    cv.graphic(ticks, (20, 20, 20), "ruler")
    rst = _style("dejavu_sans", 12, "black")
    for k in range(1, 9):
        cv.text(x_start + k * step, ry + 20, _neg(str(k), "ruler_label"), rst, rng, anchor="c")
    cv.text(x_start + 8 * step + 22, ry + 20, _neg("cm", "ruler_label"), rst, rng)
    cv.text(w * 0.62, h * 0.85 - 40, _neg(rng.choice(["L FOREARM", "R SHIN", "BACK UPPER", "L CHEEK"]),
                                          "view_label"), _style("dejavu_sans_bold", 20, "black"), rng)
    fmt = rng.choice(["jpg", "jpg", "dcm"])
    hdr, match = _header(p, rng) if fmt == "dcm" else (None, "none")
    return Case("", "derm_photo", "XC", fmt, [cv], hdr, match)


def _paper_case(rng: random.Random, p: Identity) -> Case:
    w, h = rng.choice([(816, 1056), (850, 1100), (744, 1052)])
    img = np.full((h, w), rng.uniform(232, 250), np.float32)
    cv = Canvas(img, color=rng.random() < 0.4)
    kind = rng.choice(["requisition", "consent", "worksheet"])
    draw_lines = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(draw_lines)
    rows = [110 + i * 56 for i in range(13)]
    for y in rows:
        d.line([(230, y + 30), (w - 60, y + 30)], fill=255, width=1)
    if kind == "worksheet":
        us = _resize(_source("us1"), 300, 220).astype(np.float32)
        cv.img[h - 300:h - 80, w - 360:w - 60] = us[..., None] if not cv.color else np.repeat(us[..., None], 3, 2)
    line_alpha = np.asarray(draw_lines, np.float32)[..., None] / 255.0
    cv.img = cv.img * (1 - line_alpha * 0.8)
    cv.freeze_background()
    pst = _pick_style(rng, dark_bg=False, sizes=(12, 18), fonts=SERIF + SANS, colour="black")
    title = {"requisition": "RADIOLOGY REQUISITION", "consent": "CONSENT FOR CONTRAST ADMINISTRATION",
             "worksheet": "SONOGRAPHER WORKSHEET"}[kind]
    cv.text(w / 2, 40, _oth(title), _style(pst.font, pst.size + 8, "black"), rng, anchor="c")
    hand = rng.random() < 0.6
    vst = (_style(rng.choice(HAND), rng.randint(18, 30), rng.choice(["blue_ink", "black"]), hand=True) if hand
           else _style(rng.choice(MONO), rng.randint(12, 18), "black"))
    fields: list[tuple[str, list[tuple[str, str, str]]]] = [
        ("Patient name:", _ids([p.first, p.last], "name")),
        ("Date of birth:", _ids([_date(p.dob, rng)], "dob")),
        ("MRN:", _ids(p.mrn.split(), "mrn")),
        ("Exam date:", _ids([_date(p.study, rng)], "study_date")),
        ("Phone:", _ids(p.phone.split(), "phone")),
        ("Address:", _ids(p.address.replace(",", "").split(), "address")),
        ("Ordering MD:", [("Dr.", "other", "label")] + _ids([p.physician[0], p.physician[1]], "physician")),
        ("Exam:", _neg(rng.choice(["CT ABDOMEN PELVIS WITH CONTRAST", "US RENAL BILATERAL", "MRI BRAIN WO/W",
                                   "XR CHEST 2 VIEWS"]), "form_text")),
        ("History:", _neg(rng.choice(["RLQ pain fever", "r/o stones hematuria", "headache 3 weeks",
                                      "cough shortness of breath"]), "form_text")),
    ]
    if kind == "worksheet":
        fields.append(("Findings:", _neg(rng.choice(["RK 10.8 cm LK 11.2 cm", "CBD 4 mm", "EF 55 %"]), "measurement")))
    else:
        fields.append(("Allergies:", _neg(rng.choice(["none known", "iodine (rash)", "NKDA"]), "form_text")))
    rng.shuffle(fields)
    for (label, value), y in zip(fields, rows, strict=False):
        cv.text(60, y + 30 - pst.size - 4, _lbl(*label.split()), pst, rng)
        cv.text(240, y + 28 - vst.size - 2, value, vst, rng)
    sy = rows[len(fields)] + 40
    cv.text(60, sy, _lbl("Signature:"), pst, rng)
    cv.text(240, sy - 8, _ids([p.operator[0][0] + ".", p.operator[1]], "operator"),
            _style(rng.choice(HAND), rng.randint(22, 34), "blue_ink", hand=True), rng)
    fmt = rng.choice(["dcm", "png", "jpg"])
    hdr, match = _header(p, rng) if fmt == "dcm" else (None, "none")
    case = Case("", "paper_scan", "OT", fmt, [cv], hdr, match)
    case.extra["warp"] = "scan"
    return case


def _upload_case(rng: random.Random, p: Identity) -> Case:
    src = _vqa(rng)
    h, w = src.shape
    pad = rng.choice([0, 0, 40])
    img = np.zeros((h + pad, w), np.float32)
    img[pad:] = src
    cv = Canvas(img, color=rng.random() < 0.5)
    cv.freeze_background()
    st = _pick_style(rng, sizes=(8, 26), fonts=SANS + MONO + SERIF, stroke=1 if rng.random() < 0.2 else 0)
    ids = _id_lines(p, rng, n=rng.randint(1, 3), labels=rng.random() < 0.4)
    where = rng.choice(["top", "bottom", "over"])
    if where == "top":
        _block(cv, 6, 4 if pad else 6, ids, st, rng)
    elif where == "bottom":
        _block(cv, w - 6, h + pad - 6, ids, st, rng, anchor="r", up=True)
    else:
        _block(cv, w // 4, int((h + pad) * rng.uniform(0.3, 0.6)), ids, st, rng)
    if rng.random() < 0.7:
        _lr_marker(cv, w - 50, pad + 20, rng.choice(["R", "L"]), rng.randint(16, 32), rng, boxed=False,
                   colour=st.colour)
    if rng.random() < 0.5:
        _scale_bar(cv, 20, h + pad - 30, 100, rng.choice(["2 cm", "5 cm", "1cm"]), st.colour, rng)
    fmt = rng.choice(["png", "jpg"])
    return Case("", "picture_upload", "UNKNOWN", fmt, [cv], None, "none")


def _phone_case(rng: random.Random, p: Identity) -> Case:
    inner = rng.choice([_viewer_case, lambda r, q: _us_case(r, q, rng.choice(["bmode", "doppler"]))])(rng, p)
    cv = inner.frames[0]
    if not cv.color:
        cv.img = np.repeat(cv.img, 3, axis=2)
        cv.clean = np.repeat(cv.clean, 3, axis=2)  # type: ignore[arg-type]
        cv.color = True
    case = Case("", "phone_photo", inner.modality, "jpg", [cv], None, "none")
    case.extra["warp"] = "phone"
    case.extra["screen"] = inner.rendering
    return case


RECIPES: dict[str, Callable[[random.Random, Identity], Case]] = {
    "us_bmode": lambda r, p: _us_case(r, p, "bmode"),
    "us_doppler": lambda r, p: _us_case(r, p, "doppler"),
    "us_cine": lambda r, p: _us_case(r, p, "cine"),
    "viewer_sc": lambda r, p: _viewer_case(r, p, screenshot=True),
    "viewer_upload": lambda r, p: _viewer_case(r, p, screenshot=False),
    "cr_dx": _cr_case,
    "xa_rf": _xa_case,
    "nm": _nm_case,
    "mg": _mg_case,
    "endoscopy": _endo_case,
    "derm_photo": _derm_case,
    "paper_scan": _paper_case,
    "picture_upload": _upload_case,
    "phone_photo": _phone_case,
}
# how often each appears in a 50-image set (roughly what a validation team sees)
WEIGHTS = {"us_bmode": 6, "us_doppler": 4, "us_cine": 3, "viewer_sc": 6, "viewer_upload": 3, "cr_dx": 5,
           "xa_rf": 3, "nm": 2, "mg": 3, "endoscopy": 3, "derm_photo": 3, "paper_scan": 4, "picture_upload": 3,
           "phone_photo": 2}


def _plan(seed: int, n: int) -> list[str]:
    deck = [k for k, v in WEIGHTS.items() for _ in range(v)]
    random.Random(seed).shuffle(deck)
    # spread: every recipe early, so small debug runs still cover the kinds
    first = list(dict.fromkeys(deck))
    rest = deck.copy()
    for k in first:
        rest.remove(k)
    order = first + rest
    while len(order) < n:
        order += order
    return order[:n]


# ----------------------------------------------------------------------------------------------------------------
# Finishing: display arrays, photographic transforms, ink masks


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping output (dst) points to input (src) points."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return list(np.linalg.solve(np.array(rows, float), np.array(rhs, float)))


def _warp_u8(arr: np.ndarray, size: tuple[int, int], coeffs: list[float], fill: int = 0) -> np.ndarray:
    img = Image.fromarray(arr)
    out = img.transform(size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=fill)
    return np.asarray(out)


def _finish(case: Case, rng: random.Random) -> None:
    """Display arrays of text and twin, optional photo/scan transform, ink masks and per-mark attributes."""
    warp = case.extra.get("warp")
    for cv in case.frames:
        clean = cv.clean if cv.clean is not None else cv.img
        disp = np.clip(cv.display(cv.img), 0, 255)
        twin = np.clip(cv.display(clean), 0, 255)
        masks = []
        for m in cv.marks:
            full = np.zeros((cv.h, cv.w), np.uint8)
            x0, y0, x1, y1 = m.box
            full[y0:y1, x0:x1] = m.mask * 255
            masks.append(full)
        if warp:
            disp, twin, masks = _photo(disp, twin, masks, warp, rng)
        case.disp.append(np.round(disp).astype(np.uint8))
        case.twin.append(np.round(twin).astype(np.uint8))
        kept = []
        diff = np.abs(case.disp[-1].astype(np.int16) - case.twin[-1].astype(np.int16)).max(axis=2)
        for m, full in zip(cv.marks, masks, strict=True):
            ink_full = (full >= 128) & (diff >= INK_DIFF)
            ys, xs = np.nonzero(full >= 64)
            if len(xs) == 0 or ink_full.sum() < 3:
                continue
            bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            m.x0, m.y0 = bx0, by0
            m.mask = ink_full[by0:by1, bx0:bx1]
            tw = _lum(case.twin[-1][by0:by1, bx0:bx1].astype(np.float32))
            tx = _lum(case.disp[-1][by0:by1, bx0:bx1].astype(np.float32))
            m.attrs["contrast"] = float(abs(np.median(tx[m.mask]) - np.median(tw[m.mask])))
            m.attrs["bg_std"] = float(tw[~m.mask].std()) if (~m.mask).any() else 0.0
            m.attrs["height_px"] = by1 - by0
            kept.append(m)
        cv.marks = kept
        if case.fmt == "dcm" and case.bits == 16:
            case.stored.append(np.clip(np.round(cv.img[..., 0]), 0, 65535).astype(np.uint16))
        else:
            out = case.disp[-1]
            case.stored.append(out if cv.color else out[..., 0])


def _photo(disp: np.ndarray, twin: np.ndarray, masks: list[np.ndarray], warp: str,
           rng: random.Random) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    h, w = disp.shape[:2]
    if warp == "phone":
        ow, oh = int(w * 1.1), int(h * 1.1)
        j = 0.06
        dst = [(ow * (0.05 + rng.uniform(-j, j) / 2), oh * (0.05 + rng.uniform(-j, j))),
               (ow * (0.95 + rng.uniform(-j, j) / 2), oh * (0.05 + rng.uniform(-j, j))),
               (ow * (0.95 + rng.uniform(-j, j) / 2), oh * (0.95 + rng.uniform(-j, j))),
               (ow * (0.05 + rng.uniform(-j, j) / 2), oh * (0.95 + rng.uniform(-j, j)))]
        blur = rng.uniform(0.6, 1.4)
        bg = 30
    else:  # flatbed scan: a small rotation, slight blur
        ow, oh = w, h
        ang = math.radians(rng.uniform(-1.8, 1.8))
        cx, cy = w / 2, h / 2
        dst = [(cx + (x - cx) * math.cos(ang) - (y - cy) * math.sin(ang),
                cy + (x - cx) * math.sin(ang) + (y - cy) * math.cos(ang)) for x, y in
               [(0, 0), (w, 0), (w, h), (0, h)]]
        blur = rng.uniform(0.3, 0.7)
        bg = 240
    coeffs = _perspective_coeffs([(0, 0), (w, 0), (w, h), (0, h)], dst)
    nrng = np.random.default_rng(rng.randrange(1 << 30))
    vign = None
    if warp == "phone":
        yy, xx = np.mgrid[0:oh, 0:ow].astype(np.float32)
        vign = 1 - 0.25 * (((xx - ow / 2) / ow) ** 2 + ((yy - oh / 2) / oh) ** 2) * 2
        tint = np.array([rng.uniform(0.9, 1.05), 1.0, rng.uniform(0.9, 1.1)], np.float32)
    noise = nrng.normal(0, 3.0, (oh, ow, 1)).astype(np.float32)
    outs = []
    for arr in (disp, twin):
        u8 = np.round(arr).astype(np.uint8)
        u8 = u8[..., 0] if u8.shape[2] == 1 else u8
        warped = _warp_u8(u8, (ow, oh), coeffs, fill=bg if u8.ndim == 2 else (bg, bg, bg))  # type: ignore[arg-type]
        warped = np.asarray(Image.fromarray(warped).filter(ImageFilter.GaussianBlur(blur)), np.float32)
        if warped.ndim == 2:
            warped = warped[..., None]
        if vign is not None:
            warped = warped * vign[..., None] * tint[None, None, : warped.shape[2]] + 12
        outs.append(np.clip(warped + noise, 0, 255))
    new_masks = [np.asarray(Image.fromarray(_warp_u8(mk, (ow, oh), coeffs)).filter(
        ImageFilter.GaussianBlur(blur * 0.5)), np.uint8) for mk in masks]
    return outs[0], outs[1], new_masks


def _collides(case: Case) -> bool:
    """Whether an identifier's box comes within 2 px of a negative's box (scoring one would judge the other)."""
    for cv in case.frames:
        ids = [m.box for m in cv.marks if m.role == "id"]
        negs = [m.box for m in cv.marks if m.role == "neg"]
        for a in ids:
            for b in negs:
                if a[0] < b[2] + 2 and b[0] < a[2] + 2 and a[1] < b[3] + 2 and b[1] < a[3] + 2:
                    return True
    return False


def build(seed: int, n: int) -> list[Case]:
    """The case list for a seed (the first n of a seed are the same whatever n is)."""
    cases = []
    for i, recipe in enumerate(_plan(seed, n)):
        for attempt in range(8):  # a layout where an identifier touches a negative is drawn again
            rng = random.Random(f"{seed}:{i}:{recipe}:{attempt}")
            p = _identity(rng)
            case = RECIPES[recipe](rng, p)
            _finish(case, rng)
            if not _collides(case):
                break
        case.case_id = f"g{seed}_{i:03d}_{recipe}"
        case.extra["recipe"] = recipe
        case.extra["attempts"] = attempt + 1
        hdr = case.header or {}
        for cv in case.frames:
            for m in cv.marks:
                fld = HEADER_FIELD.get(m.kind)
                m.attrs["header_has"] = (None if case.header is None else
                                         bool(fld and fld in hdr and case.header_match == "same"))
        cases.append(case)
    return cases


# ----------------------------------------------------------------------------------------------------------------
# Writing the files


SOP = {"US": "1.2.840.10008.5.1.4.1.1.6.1", "USMF": "1.2.840.10008.5.1.4.1.1.3.1", "OT": "1.2.840.10008.5.1.4.1.1.7",
       "CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1", "MG": "1.2.840.10008.5.1.4.1.1.1.2",
       "XA": "1.2.840.10008.5.1.4.1.1.12.1", "RF": "1.2.840.10008.5.1.4.1.1.12.2", "NM": "1.2.840.10008.5.1.4.1.1.20",
       "ES": "1.2.840.10008.5.1.4.1.1.77.1.1", "XC": "1.2.840.10008.5.1.4.1.1.77.1.4"}


def _write_dicom(case: Case, path: Path, arrays: list[np.ndarray], rng: random.Random) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    n = len(arrays)
    sop = SOP["USMF"] if case.modality == "US" and n > 1 else SOP.get(case.modality, SOP["OT"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = case.modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    for key, value in (case.header or {}).items():
        setattr(ds, key, value)
    if case.extra.get("recipe") == "paper_scan":
        ds.ConversionType = "SD"
    elif case.modality == "OT":
        ds.ConversionType = "WSD"
    bia = rng.choice(["YES", "YES", "NO", None])  # NO on a file that carries text happens in practice
    if bia:
        ds.BurnedInAnnotation = bia
    case.extra["burned_in_annotation_tag"] = bia or "absent"
    first = arrays[0]
    ds.Rows, ds.Columns = int(first.shape[0]), int(first.shape[1])
    if n > 1:
        ds.NumberOfFrames = n
    if first.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = case.extra.get("photometric", "MONOCHROME2")
    if case.bits == 16:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        low, width, _inv = case.extra["window"]
        ds.WindowCenter = f"{low + width / 2:.1f}"
        ds.WindowWidth = f"{width:.1f}"
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.stack(arrays).tobytes() if n > 1 else first.tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def write_case(case: Case, folder: Path) -> Path:
    """Write the file to ingest and its clean twin (same format) under folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(case.case_id)
    ext = {"dcm": ".dcm", "png": ".png", "jpg": ".jpg"}[case.fmt]
    target = folder / f"{case.case_id}{ext}"
    if case.fmt == "dcm":
        _write_dicom(case, target, case.stored, rng)
        twins = [_twin_stored(case, i) for i in range(len(case.frames))]
        _write_dicom(case, folder / f"{case.case_id}_twin{ext}", twins, random.Random(case.case_id))
    else:
        quality = rng.randint(82, 95)
        for arr, name in ((case.stored[0], target), (_twin_stored(case, 0), folder / f"{case.case_id}_twin{ext}")):
            img = Image.fromarray(arr)
            if case.fmt == "jpg":
                img.save(name, quality=quality)
            else:
                img.save(name)
        case.extra["jpeg_quality"] = quality if case.fmt == "jpg" else None
    return target


def _twin_stored(case: Case, i: int) -> np.ndarray:
    cv = case.frames[i]
    if case.fmt == "dcm" and case.bits == 16:
        return np.clip(np.round(cv.clean[..., 0]), 0, 65535).astype(np.uint16)  # type: ignore[index]
    out = case.twin[i]
    return out if cv.color else out[..., 0]


# ----------------------------------------------------------------------------------------------------------------
# Running radassist


@dataclass
class Run:
    """One ingest call."""

    ok: bool
    error: str | None
    wall_s: float
    summary: dict[str, Any] | None
    pngs: dict[int, np.ndarray]


def _ingest(path: Path, policy: str, work: Path) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix=f"ing_{policy}_", dir=work))
    env = dict(os.environ, RADASSIST_DATA_DIR=str(tmp / "data"), RADASSIST_BURNED_IN_TEXT=policy)
    t0 = time.perf_counter()
    proc = subprocess.run([str(RADASSIST), "ingest", "--json", "--out", str(tmp / "out"), str(path)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
    pngs: dict[int, np.ndarray] = {}
    for f in sorted((tmp / "out").glob("**/frame*.png")):
        idx = int(f.stem.replace("frame", "")) - 1
        arr = np.asarray(Image.open(f).convert("RGB"))
        pngs[idx] = arr
    shutil.rmtree(tmp, ignore_errors=True)
    ok = bool(row.get("ok")) and proc.returncode == 0
    err = row.get("error") or (None if ok else (proc.stderr.strip().splitlines() or ["no output"])[-1][:300])
    return Run(ok, err, wall, row.get("summary"), pngs)


# ----------------------------------------------------------------------------------------------------------------
# Scoring


def _black(arr: np.ndarray) -> np.ndarray:
    return (arr <= BLACK).all(axis=-1)


def _fit(arr: np.ndarray | None, h: int, w: int) -> np.ndarray | None:
    if arr is None or arr.shape[:2] == (h, w):
        return arr
    return np.asarray(Image.fromarray(arr).resize((w, h), Image.Resampling.NEAREST))


def _withheld_frames(run: Run, n: int, never: Run) -> set[int]:
    bit = (run.summary or {}).get("burned_in_text") or {}
    count = int(bit.get("withheld_frames") or 0)
    if count >= n:
        return set(range(n))
    out = set()
    for i in range(n):
        if i not in run.pngs:
            out.add(i)
    if count and len(out) < count:
        # which frames: a withheld frame's rendering is a placeholder (flat), unlike its `never` rendering
        for i in range(n):
            a, b = run.pngs.get(i), never.pngs.get(i)
            if a is not None and b is not None and a.std() < 1.0 <= b.std():
                out.add(i)
    return out


GREYS = {"white", "light_grey", "grey", "dim_grey", "black", "dark_grey"}


def _mark_row(case: Case, m: Mark, color: bool, frame_png: np.ndarray | None, never_png: np.ndarray | None,
              withheld: bool, failed: bool) -> dict[str, Any]:
    x0, y0, x1, y1 = m.box
    h, w = case.disp[m.frame].shape[:2]
    pos_v = "top" if (y0 + y1) / 2 < h / 3 else ("bottom" if (y0 + y1) / 2 > 2 * h / 3 else "middle")
    pos_h = "left" if (x0 + x1) / 2 < w / 3 else ("right" if (x0 + x1) / 2 > 2 * w / 3 else "centre")
    size = m.style.size if m.style else 0
    contrast = m.attrs.get("contrast", 0.0)
    row: dict[str, Any] = {
        "case": case.case_id, "frame": m.frame, "text": m.text, "line": m.line, "role": m.role, "kind": m.kind,
        "rendering": case.rendering, "modality": case.modality, "fmt": case.fmt,
        "font": m.style.font if m.style else "graphic", "size_px": size,
        "size_bucket": _bucket(size, [(0, "graphic"), (10, "8-10"), (14, "11-14"), (20, "15-20"), (30, "21-30"),
                                      (999, "31-48")]),
        "colour": (m.style.colour if color or m.style.colour in GREYS else f"{m.style.colour}->grey")
        if m.style else "graphic", "outline": bool(m.style and (m.style.stroke or
                                                                                         m.style.shadow)),
        "handwriting": bool(m.style and m.style.hand), "contrast": round(contrast, 1),
        "contrast_bucket": "low" if contrast < 60 else ("mid" if contrast < 140 else "high"),
        "background": "textured" if m.attrs.get("bg_std", 0) > 12 else "flat",
        "position": f"{pos_v}-{pos_h}", "box": [x0, y0, x1, y1], "ink_px": int(m.mask.sum()),
        "header_has": m.attrs.get("header_has"), "header_match": case.header_match,
        "withheld": withheld, "ingest_failed": failed,
    }
    if failed or withheld or frame_png is None or never_png is None:
        row.update(black_share=None, dark=None, removed=True, kept=False,
                   reason="ingest_failed" if failed else "withheld")
        return row
    sub_a = frame_png[y0:y1, x0:x1]
    sub_n = never_png[y0:y1, x0:x1]
    lum_n = _lum(sub_n.astype(np.float32))
    ink = m.mask
    dark = bool((~ink).any() and np.median(lum_n[ink]) < np.median(lum_n[~ink]) - 10)
    test = (~ink) & ~_black(sub_n) if dark else ink
    if not test.any():
        test = ink
    share = float(_black(sub_a)[test].mean())
    row.update(black_share=round(share, 4), dark=dark, removed=share >= REMOVED_SHARE, kept=share < KEPT_SHARE,
               reason="pixels")
    return row


def _bucket(v: int, edges: list[tuple[int, str]]) -> str:
    for edge, name in edges:
        if v <= edge:
            return name
    return edges[-1][1]


def score_case(case: Case, always: Run, never: Run) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-mark rows and the image row."""
    n = len(case.frames)
    failed = not always.ok
    withheld = set() if failed else _withheld_frames(always, n, never)
    rows = []
    fr_shares = []
    notes = []
    for i, cv in enumerate(case.frames):
        h, w = case.disp[i].shape[:2]
        a_png, n_png = _fit(always.pngs.get(i), h, w), _fit(never.pngs.get(i), h, w)
        if always.pngs.get(i) is not None and always.pngs[i].shape[:2] != (h, w):
            notes.append(f"frame {i}: rendering {always.pngs[i].shape[:2]} resized to {(h, w)}")
        for m in cv.marks:
            rows.append(_mark_row(case, m, cv.color, a_png, n_png, i in withheld, failed))
        if not failed and i not in withheld and a_png is not None and n_png is not None:
            text_area = np.zeros((h, w), bool)
            for m in cv.marks:
                x0, y0, x1, y1 = m.box
                text_area[max(y0 - BOX_MARGIN, 0):y1 + BOX_MARGIN, max(x0 - BOX_MARGIN, 0):x1 + BOX_MARGIN] = True
            visible = ~text_area & ~_black(n_png)
            if visible.any():
                fr_shares.append(float((_black(a_png) & visible).sum() / visible.sum()))
    bit = (always.summary or {}).get("burned_in_text") or {}
    image = {
        "case": case.case_id, "rendering": case.rendering, "modality": case.modality, "fmt": case.fmt,
        "frames": n, "size": list(case.disp[0].shape[:2]), "header_match": case.header_match,
        "burned_in_annotation_tag": case.extra.get("burned_in_annotation_tag"),
        "always_ok": always.ok, "always_error": always.error, "never_ok": never.ok, "never_error": never.error,
        "withheld_frames": sorted(withheld), "withheld_reported": bit.get("withheld_frames"),
        "boxes_reported": bit.get("box_count"), "time_always_s": round(always.wall_s, 3),
        "time_never_s": round(never.wall_s, 3), "false_redaction": fr_shares, "notes": notes,
        "ids": sum(1 for r in rows if r["role"] == "id"), "negs": sum(1 for r in rows if r["role"] == "neg"),
    }
    return rows, image


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(math.floor(k)), int(math.ceil(k))
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarise(tokens: list[dict[str, Any]], negs: list[dict[str, Any]], images: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline numbers and per-category recall."""
    def recall(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"n": len(rows), "removed": sum(r["removed"] for r in rows),
                "recall": round(sum(r["removed"] for r in rows) / len(rows), 4) if rows else None}
    pix = [r for r in tokens if r["reason"] == "pixels"]
    fr = [s for im in images for s in im["false_redaction"]]
    ta = [im["time_always_s"] / im["frames"] for im in images if im["always_ok"]]
    tn = [im["time_never_s"] / im["frames"] for im in images if im["never_ok"]]
    delta = [(im["time_always_s"] - im["time_never_s"]) / im["frames"] for im in images
             if im["always_ok"] and im["never_ok"]]
    cats = ["kind", "rendering", "modality", "fmt", "position", "background", "size_bucket", "contrast_bucket",
            "colour", "font", "header_has", "header_match", "outline", "handwriting", "dark"]
    per: dict[str, dict[str, Any]] = {}
    for c in cats:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in tokens:
            groups.setdefault(str(r.get(c)), []).append(r)
        per[c] = {k: recall(v) for k, v in sorted(groups.items())}
    neg_per: dict[str, dict[str, Any]] = {}
    for c in ("kind", "rendering"):
        groups = {}
        for r in negs:
            groups.setdefault(str(r.get(c)), []).append(r)
        neg_per[c] = {k: {"n": len(v), "kept": sum(x["kept"] for x in v)} for k, v in sorted(groups.items())}
    return {
        "images": len(images), "frames": sum(im["frames"] for im in images),
        "ingest_failures_always": sum(not im["always_ok"] for im in images),
        "ingest_failures_never": sum(not im["never_ok"] for im in images),
        "frames_withheld": sum(len(im["withheld_frames"]) for im in images),
        "id_tokens": recall(tokens),
        "id_tokens_by_pixels_only": recall(pix),
        "removed_by": {k: sum(1 for r in tokens if r["removed"] and r["reason"] == k)
                       for k in ("pixels", "withheld", "ingest_failed")},
        "negatives": {"n": len(negs), "kept": sum(r["kept"] for r in negs),
                      "kept_share": round(sum(r["kept"] for r in negs) / len(negs), 4) if negs else None,
                      "scored_on_shown_frames": sum(1 for r in negs if r["reason"] == "pixels")},
        "false_redaction": {"frames": len(fr), "median": _pct(fr, 0.5), "p90": _pct(fr, 0.9),
                            "max": max(fr) if fr else float("nan")},
        "time_per_frame_s": {"always_median": _pct(ta, 0.5), "always_p90": _pct(ta, 0.9),
                             "never_median": _pct(tn, 0.5), "never_p90": _pct(tn, 0.9),
                             "added_median": _pct(delta, 0.5), "added_p90": _pct(delta, 0.9),
                             "added_max": max(delta) if delta else float("nan")},
        "per_category": per,
        "negatives_per_category": neg_per,
    }


def _print_table(s: dict[str, Any]) -> None:
    t = s["id_tokens"]
    print(f"images {s['images']} ({s['frames']} frames); ingest failures always={s['ingest_failures_always']} "
          f"never={s['ingest_failures_never']}; frames withheld {s['frames_withheld']}")
    print(f"identifier recall: {t['removed']}/{t['n']} = {t['recall']}   (goal >= 0.98)   removed by "
          f"{s['removed_by']}")
    px = s["id_tokens_by_pixels_only"]
    print(f"  on shown frames (pixels): {px['removed']}/{px['n']} = {px['recall']}")
    ng = s["negatives"]
    print(f"negatives kept: {ng['kept']}/{ng['n']} = {ng['kept_share']} (withheld frames count as not kept)")
    fr = s["false_redaction"]
    print(f"false redaction of non-text area over {fr['frames']} shown frames: median {fr['median']:.4f} "
          f"p90 {fr['p90']:.4f} max {fr['max']:.4f}")
    tm = s["time_per_frame_s"]
    print(f"time per frame (s, one CLI call incl. start-up): always median {tm['always_median']:.2f} p90 "
          f"{tm['always_p90']:.2f}; never median {tm['never_median']:.2f}; added by OCR median "
          f"{tm['added_median']:.2f} p90 {tm['added_p90']:.2f} max {tm['added_max']:.2f}")
    for cat, groups in s["per_category"].items():
        print(f"\n  recall by {cat}")
        for k, v in groups.items():
            print(f"    {k:<28} {v['removed']:>4}/{v['n']:<4} {v['recall']}")
    for cat, groups in s["negatives_per_category"].items():
        print(f"\n  negatives kept by {cat}")
        for k, v in groups.items():
            print(f"    {k:<28} {v['kept']:>4}/{v['n']:<4}")


def _one(case: Case, path: Path, work: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    always = _ingest(path, "always", work)
    never = _ingest(path, "never", work)
    return score_case(case, always, never)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES)
    args = parser.parse_args(argv)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cases = build(args.seed, args.images)
    paths = [write_case(c, work / "cases") for c in cases]
    t_build = time.perf_counter() - t0
    print(f"built {len(cases)} images in {t_build:.1f}s; ingesting with {args.jobs} job(s)", flush=True)
    tokens: list[dict[str, Any]] = []
    negs: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        futures = [pool.submit(_one, c, p, work) for c, p in zip(cases, paths, strict=True)]
        for fut in futures:
            rows, image = fut.result()
            tokens += [r for r in rows if r["role"] == "id"]
            negs += [r for r in rows if r["role"] == "neg"]
            images.append(image)
    summary = summarise(tokens, negs, images)
    summary["seed"] = args.seed
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    (work / "results.json").write_text(json.dumps(
        {"summary": summary, "tokens": tokens, "negatives": negs, "images": images}, indent=1, default=str))
    _print_table(summary)
    print(f"\nwrote {work / 'results.json'} in {summary['wall_s']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
