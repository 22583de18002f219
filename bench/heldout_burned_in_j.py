"""Blind held-out benchmark J for burned-in text redaction (issue #16).

Official seed: 6421 (50 images). Command::

    .venv/bin/python -m bench.heldout_burned_in_j --seed 6421 --work /tmp/heldout_j --jobs 2

Written without reading the redactor: the CLI is a black box. Each case is one synthetic image with
device-style text drawn into its pixels and a clean twin (same pixels, no text), built from the real DICOM
files in ../shared/data/dicom and the VQA-RAD pictures. Each is ingested three times, in a fresh data dir:
image with RADASSIST_BURNED_IN_TEXT=always, image with never, twin with never.

Scoring (shared with the earlier held-out sets):
- The ink of a token is the rendered difference (image vs twin, both ``never``) under the token's glyph
  mask (mapped to the rendered frame size when the rendering is resized).
- An identifier token is removed when >= 95% of its ink pixels are black (<= 8 in every channel) in the
  ``always`` rendering, or its frame was withheld (all black or absent), or the file failed ingest (such
  failures are also counted apart). A token darker than its surroundings is judged on the light pixels
  (> 8 in some channel in the ``never`` rendering) of its box instead.
- A negative (non-PHI annotation) is kept when < 50% of its ink is black.
- False redaction: share of the visible non-text area (outside every drawn box + 4 px, not black with
  ``never``) that is black with ``always``, per shown frame; median and p90.
- Time: wall time of each ingest call; median always vs never.
DIR/results.json keeps one row per token (case, scene, kind, text, size, removed, black share).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DICOM_DIR = DATA / "dicom"
VQA_DIR = DATA / "vqa_rad" / "images"
CLI = REPO / ".venv" / "bin" / "radassist"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
KATEX = REPO / ".venv/lib/python3.11/site-packages/gradio/templates/frontend/assets"
OFFICIAL_SEED = 6421
BLACK = 8  # a channel value <= 8 counts as black (shared rule)
INK_DIFF = 16  # rendered difference that counts as ink; above JPEG ringing on the twin
RGB = tuple[int, int, int]

# ----------------------------------------------------------------------------------------------- fonts


@dataclass(frozen=True)
class FontSpec:
    """A font: a TrueType path, PIL's bitmap font, or an OpenCV Hershey face."""

    kind: str  # "ttf" | "bitmap" | "hershey"
    name: str
    size: int


def ttf_fonts() -> list[Path]:
    """Local TrueType fonts with Latin glyphs."""
    fonts = sorted(p for p in DEJAVU.glob("*.ttf") if "MathTeX" not in p.name)
    for stem in ("KaTeX_Main-Regular", "KaTeX_SansSerif-Regular", "KaTeX_Typewriter-Regular",
                 "KaTeX_SansSerif-Bold"):
        fonts += sorted(KATEX.glob(f"{stem}-*.ttf"))
    return fonts


HERSHEY = {"simplex": cv2.FONT_HERSHEY_SIMPLEX, "plain": cv2.FONT_HERSHEY_PLAIN,
           "duplex": cv2.FONT_HERSHEY_DUPLEX, "complex": cv2.FONT_HERSHEY_COMPLEX,
           "triplex": cv2.FONT_HERSHEY_TRIPLEX}


def pick_font(rng: np.random.Generator, size: int, family: str = "any") -> FontSpec:
    """Choose a font of about `size` px; family: any, ttf, mono, bitmap, hershey."""
    if family == "any":
        family = str(rng.choice(["ttf"] * 7 + ["mono"] * 2 + ["hershey", "bitmap"]))
    if family == "bitmap":
        return FontSpec("bitmap", "pil-default", 11)
    if family == "hershey":
        return FontSpec("hershey", str(rng.choice(list(HERSHEY))), size)
    fonts = ttf_fonts()
    if family == "mono":
        fonts = [f for f in fonts if "Mono" in f.name or "Typewriter" in f.name]
    return FontSpec("ttf", str(fonts[int(rng.integers(len(fonts)))]), size)


@lru_cache(maxsize=256)
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _pil_alpha(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, spacing: int,
               aliased: bool) -> np.ndarray:
    width = sum(int(font.getlength(c)) + spacing for c in text) + 8 if spacing else int(
        font.getlength(text)) + 8
    size = getattr(font, "size", 11)
    img = Image.new("L", (max(width, 4) + 8, int(size * 1.6) + 8), 0)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1" if aliased else "L"
    if spacing:
        x = 4.0
        for ch in text:
            draw.text((x, 4), ch, font=font, fill=255)
            x += font.getlength(ch) + spacing
    else:
        draw.text((4, 4), text, font=font, fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _hershey_alpha(text: str, font: FontSpec, spacing: int, aliased: bool) -> np.ndarray:
    face = HERSHEY[font.name]
    scale = cv2.getFontScaleFromHeight(face, max(font.size - 2, 5), 1)
    thick = max(1, round(font.size / 14))
    line = cv2.LINE_8 if aliased else cv2.LINE_AA
    chars = list(text) if spacing else [text]
    widths = [cv2.getTextSize(c, face, scale, thick)[0][0] for c in chars]
    h = cv2.getTextSize(text, face, scale, thick)[0][1]
    canvas = np.zeros((int(h * 1.8) + 10, sum(widths) + spacing * len(chars) + 10), np.uint8)
    x = 4
    for c, w in zip(chars, widths, strict=True):
        cv2.putText(canvas, c, (x, h + 4), face, scale, 255, thick, line)
        x += w + spacing
    return canvas.astype(np.float32) / 255.0


def render_alpha(text: str, font: FontSpec, spacing: int = 0, aliased: bool = False,
                 angle: float = 0.0) -> np.ndarray:
    """Coverage (h, w) in [0, 1] of `text`, cropped to its ink plus 2 px."""
    if font.kind == "hershey":
        alpha = _hershey_alpha(text, font, spacing, aliased)
    elif font.kind == "bitmap":
        alpha = _pil_alpha(text, ImageFont.load_default_imagefont(), spacing, aliased=True)
    else:
        alpha = _pil_alpha(text, _truetype(font.name, font.size), spacing, aliased)
    if angle:
        img = Image.fromarray((alpha * 255).astype(np.uint8)).rotate(
            angle, resample=Image.Resampling.BICUBIC, expand=True)
        alpha = np.asarray(img, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(alpha > 0.05)
    if len(ys) == 0:
        return np.zeros((2, 2), np.float32)
    return np.pad(alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1], 2)


# ---------------------------------------------------------------------------------------------- canvas


@dataclass
class Style:
    """How a run of text is drawn."""

    font: FontSpec
    fill: RGB = (255, 255, 255)
    outline: RGB | None = None
    shadow: RGB | None = None
    bg: RGB | None = None
    bg_alpha: float = 1.0
    angle: float = 0.0
    spacing: int = 0
    aliased: bool = False
    opacity: float = 1.0


@dataclass
class Token:
    """One drawn text run or graphic; `role` is phi, neg or label (labels are not scored)."""

    text: str
    role: str
    kind: str
    size: int
    font: str
    x0: int
    y0: int
    mask: np.ndarray = field(repr=False)  # (h, w) bool glyph mask at (x0, y0)
    dark: bool = False
    frames: tuple[int, ...] | None = None  # None: every frame


class Canvas:
    """Display-space frames (F, H, W, 3) float32 0..255 with the tokens drawn into them."""

    def __init__(self, frames: np.ndarray, gray: bool) -> None:
        self.base = frames.astype(np.float32)
        self.img = self.base.copy()
        self.gray = gray
        self.tokens: list[Token] = []
        self.rects: list[tuple[int, int, int, int]] = []  # drawn boxes x0, y0, x1, y1

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.img.shape[1]), int(self.img.shape[2])

    def _color(self, c: RGB) -> np.ndarray:
        v = np.array(c, np.float32)
        if self.gray:
            v[:] = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]
        return v

    def _blend(self, x: int, y: int, alpha: np.ndarray, color: RGB, frames: tuple[int, ...] | None
               ) -> None:
        h, w = alpha.shape
        a = alpha[..., None]
        idx = list(frames) if frames is not None else slice(None)
        region = self.img[idx, y:y + h, x:x + w]
        self.img[idx, y:y + h, x:x + w] = region * (1 - a) + self._color(color) * a

    def free(self, x0: int, y0: int, x1: int, y1: int) -> bool:
        """True when the box is inside the canvas and clear of earlier boxes (2 px apart)."""
        h, w = self.shape
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return False
        return all(x1 + 2 <= a0 or a1 + 2 <= x0 or y1 + 2 <= b0 or b1 + 2 <= y0
                   for a0, b0, a1, b1 in self.rects)

    def measure(self, segments: list[tuple[str, str, str]], style: Style) -> tuple[int, int]:
        alphas = [render_alpha(t, style.font, style.spacing, style.aliased, style.angle)
                  for t, _, _ in segments]
        pad = 4 if style.bg else 1
        return (sum(a.shape[1] for a in alphas) + 2 * pad + 2,
                max(a.shape[0] for a in alphas) + 2 * pad + 2)

    def line(self, segments: list[tuple[str, str, str]], x: int, y: int, style: Style,
             frames: tuple[int, ...] | None = None) -> bool:
        """Draw text segments (text, role, kind) side by side from (x, y); False if no room."""
        alphas = [render_alpha(t, style.font, style.spacing, style.aliased, style.angle)
                  for t, _, _ in segments]
        pad = 4 if style.bg else 1
        width = sum(a.shape[1] for a in alphas) + 2 * pad + 2
        height = max(a.shape[0] for a in alphas) + 2 * pad + 2
        if not self.free(x, y, x + width, y + height):
            return False
        self.rects.append((x, y, x + width, y + height))
        if style.bg is not None:
            box = np.full((height, width), style.bg_alpha, np.float32)
            self._blend(x, y, box, style.bg, frames)
        cx = x + pad + 1
        for (text, role, kind), alpha in zip(segments, alphas, strict=True):
            self._draw_run(text, role, kind, alpha, cx, y + pad + 1 + (height - 2 * pad - 2
                                                                      - alpha.shape[0]) // 2,
                           style, frames)
            cx += alpha.shape[1]
        return True

    def _draw_run(self, text: str, role: str, kind: str, alpha: np.ndarray, x: int, y: int,
                  style: Style, frames: tuple[int, ...] | None) -> None:
        h, w = alpha.shape
        under = self.base[0 if frames is None else frames[0], y:y + h, x:x + w]
        bg_lum = float(under.mean()) if style.bg is None else float(np.mean(self._color(style.bg)))
        mask = alpha > 0.3
        if style.shadow is not None:
            sh = np.zeros_like(alpha)
            sh[1:, 1:] = alpha[:-1, :-1]
            self._blend(x, y, sh * 0.9, style.shadow, frames)
            mask |= sh > 0.3
        if style.outline is not None:
            img = Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(3))
            ol = np.asarray(img, np.float32) / 255.0
            self._blend(x, y, ol, style.outline, frames)
            mask |= ol > 0.3
        self._blend(x, y, alpha * style.opacity, style.fill, frames)
        fill_lum = float(np.mean(self._color(style.fill)))
        dark = style.outline is None and fill_lum < bg_lum - 25
        self.tokens.append(Token(text, role, kind, style.font.size, Path(style.font.name).stem,
                                 x, y, mask, dark, frames))

    def graphic(self, kind: str, x: int, y: int, w: int, h: int, color: RGB,
                frames: tuple[int, ...] | None = None) -> bool:
        """Draw a non-text negative: a scale bar, an arrow or a caliper cross."""
        if not self.free(x, y, x + w, y + h):
            return False
        img = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(img)
        if kind == "scalebar":
            d.line([(1, h // 2), (w - 2, h // 2)], fill=255, width=2)
            for i in range(6):
                tx = 1 + i * (w - 3) // 5
                d.line([(tx, h // 2 - (h // 2 - 1 if i in (0, 5) else h // 4)), (tx, h // 2)],
                       fill=255, width=1)
        elif kind == "arrow":
            d.line([(2, h - 3), (w - 3, 2)], fill=255, width=max(2, w // 16))
            d.polygon([(w - 2, 1), (w - 2 - w // 3, 3), (w - 4, 1 + h // 3)], fill=255)
        else:  # caliper cross
            d.line([(w // 2, 1), (w // 2, h - 2)], fill=255, width=1)
            d.line([(1, h // 2), (w - 2, h // 2)], fill=255, width=1)
        alpha = np.asarray(img, np.float32) / 255.0
        self.rects.append((x, y, x + w, y + h))
        self._blend(x, y, alpha, color, frames)
        self.tokens.append(Token(kind, "neg", "graphic", h, "-", x, y, alpha > 0.3, False, frames))
        return True


# --------------------------------------------------------------------------------------- identities

FAMILY = ["Halvorsen", "Okonkwo", "Brightwater", "Castellanos", "Dunmore", "Vasquez", "Lindqvist",
          "Thibodeaux", "Nakamura", "Abernathy", "Kowalczyk", "Pemberton", "Oyelaran", "Marchetti",
          "Sorensen", "Quintero", "Fairbanks", "Haddad", "Ellingsworth", "Moreau", "Tran", "Ng", "Li"]
GIVEN = ["Marisol", "Theodore", "Annika", "Desmond", "Priya", "Wendell", "Ilse", "Rafael", "Coralie",
         "Jonah", "Beatrix", "Kwame", "Lucinda", "Osvaldo", "Henrike", "Tobias", "Yara", "Ambrose",
         "Eun", "Bo", "Fenella", "Grigor"]
PLACES = ["Harbor Valley", "St. Brendan's", "Northgate", "Lakeshore", "Mercy Ridge", "Cedar Hollow",
          "Riverside County", "Whitfield", "Ashcombe", "Pine Bluff"]
SUFFIX = ["Medical Center", "General Hospital", "Imaging", "Radiology", "Clinic", "Health"]
STREETS = ["Alder Lane", "Kestrel Way", "Quarry Rd", "Orchard St", "Beacon Ave"]


@dataclass(frozen=True)
class Identity:
    """An invented patient identity: what goes into the header and onto the pixels."""

    family: str
    given: str
    middle: str
    patient_id: str
    birth: dt.date
    study: dt.date
    accession: str
    institution: str
    ref_family: str
    ref_given: str
    other_family: str
    other_given: str
    street: str


def make_identity(rng: np.random.Generator) -> Identity:
    """Draw an invented identity."""
    def pick(xs: list[str]) -> str:
        return xs[int(rng.integers(len(xs)))]

    def digits(n: int) -> str:
        return "".join(str(int(d)) for d in rng.integers(0, 10, n))

    pid = pick([f"{digits(8)}", f"A{digits(7)}", f"{digits(2)}-{digits(3)}-{digits(3)}",
                f"HX{digits(7)}", f"{digits(10)}", f"MR{digits(6)}"])
    acc = pick([f"ACC{digits(7)}", f"{digits(10)}", f"RA{digits(2)}-{digits(7)}", f"E{digits(8)}"])
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 85)))
    study = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 10)))
    inst = f"{pick(PLACES)} {pick(SUFFIX)}"
    return Identity(pick(FAMILY), pick(GIVEN), chr(65 + int(rng.integers(26))), pid, birth, study,
                    acc, inst, pick(FAMILY), pick(GIVEN), pick(FAMILY), pick(GIVEN),
                    f"{int(rng.integers(2, 999))} {pick(STREETS)}")


def fmt_name(family: str, given: str, middle: str, style: int) -> str:
    """A person's name in one of the ways devices and people write it."""
    forms = [f"{family.upper()}^{given.upper()}", f"{family}, {given}",
             f"{given.upper()} {family.upper()}", f"{given[0]}. {family}",
             f"{family.upper()}^{given.upper()}^{middle}", f"{family.upper()}, {given.upper()} {middle}.",
             f"{given} {middle}. {family}", f"{family.upper()} {given[0]}"]
    return forms[style % len(forms)]


def fmt_date(d: dt.date, style: int) -> str:
    """A date in one of the common formats."""
    forms = ["%Y%m%d", "%m/%d/%Y", "%d-%b-%Y", "%Y-%m-%d", "%d.%m.%Y", "%d/%m/%y", "%b %d, %Y",
             "%Y/%m/%d"]
    out = d.strftime(forms[style % len(forms)])
    return out.upper() if style % len(forms) == 2 else out


NEG_MARKERS = ["L", "R", "AP", "PA", "PORTABLE", "SUPINE", "ERECT", "LAT", "INSP", "UPRIGHT"]
NEG_PARAMS = ["5 cm", "kVp 80", "mAs 2.5", "Gain 55", "Depth 14 cm", "TI 0.7", "MI 1.1", "HR 72",
              "WL 40 WW 400", "Se 3 Im 45", "C5-2", "FR 32 Hz", "THI", "Ax T2 FSE", "SL 5.0 mm",
              "W 350 L 40", "DR 60", "2D 71%", "Zoom 1.4", "TR 4500 TE 98", "FOV 24 cm", "ST 3 mm"]


class Ids:
    """Identifier lines for one case, drawn from the identity (header) and from outside it."""

    def __init__(self, ident: Identity, rng: np.random.Generator) -> None:
        self.i = ident
        self.rng = rng

    def _lab(self, options: list[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def name(self) -> list[tuple[str, str, str]]:
        i = self.i
        text = fmt_name(i.family, i.given, i.middle, int(self.rng.integers(8)))
        lab = self._lab(["", "", "Name: ", "Pt: "])
        return ([(lab, "label", "label")] if lab else []) + [(text, "phi", "name")]

    def pid(self) -> list[tuple[str, str, str]]:
        lab = self._lab(["", "ID: ", "MRN ", "PID:", "Patient ID "])
        return ([(lab, "label", "label")] if lab else []) + [(self.i.patient_id, "phi", "id")]

    def birth(self) -> list[tuple[str, str, str]]:
        lab = self._lab(["DOB: ", "Born ", "", "D.O.B. "])
        text = fmt_date(self.i.birth, int(self.rng.integers(8)))
        return ([(lab, "label", "label")] if lab else []) + [(text, "phi", "date")]

    def study(self) -> list[tuple[str, str, str]]:
        lab = self._lab(["", "Study: ", "Date ", "Exam "])
        text = fmt_date(self.i.study, int(self.rng.integers(8)))
        return ([(lab, "label", "label")] if lab else []) + [(text, "phi", "date")]

    def accession(self) -> list[tuple[str, str, str]]:
        lab = self._lab(["Acc# ", "ACC ", "Accession: ", "A:"])
        return [(lab, "label", "label"), (self.i.accession, "phi", "id")]

    def institution(self) -> list[tuple[str, str, str]]:
        text = self.i.institution
        return [(text.upper() if self.rng.random() < 0.5 else text, "phi", "institution")]

    def referring(self) -> list[tuple[str, str, str]]:
        lab = self._lab(["Ref: ", "Dr. ", "Referring: ", "Req. by "])
        text = fmt_name(self.i.ref_family, self.i.ref_given, "Q", int(self.rng.integers(8)))
        return [(lab, "label", "label"), (text, "phi", "other")]

    def other(self) -> list[tuple[str, str, str]]:
        choice = int(self.rng.integers(3))
        if choice == 0:
            return [("Tech: ", "label", "label"),
                    (f"{self.i.other_given} {self.i.other_family}", "phi", "other")]
        if choice == 1:
            return [(self.i.street, "phi", "other")]
        return [("Ph ", "label", "label"),
                (f"({int(self.rng.integers(200, 999))}) 555-{int(self.rng.integers(1000, 9999))}",
                 "phi", "other")]

    def phi_lines(self, n: int, header: bool) -> list[list[tuple[str, str, str]]]:
        """`n` identifier lines; mostly header fields, sometimes ones no header carries."""
        pool: list[Callable[[], list[tuple[str, str, str]]]] = [
            self.name, self.pid, self.birth, self.study, self.accession, self.institution]
        order = [pool[k] for k in self.rng.permutation(len(pool))]
        lines = [f() for f in order[:n]]
        if n >= 3 or not header or self.rng.random() < 0.3:
            lines[int(self.rng.integers(len(lines)))] = (
                self.referring() if self.rng.random() < 0.5 else self.other())
        return lines

    def negs(self, n: int) -> list[list[tuple[str, str, str]]]:
        out = []
        for _ in range(n):
            if self.rng.random() < 0.4:
                out.append([(self._lab(NEG_MARKERS), "neg", "marker")])
            else:
                out.append([(self._lab(NEG_PARAMS), "neg", "param")])
        return out


# -------------------------------------------------------------------------------------------- sources


@dataclass
class Source:
    """Pixels of a real file in display space plus what is needed to write them back."""

    path: str | None
    display: np.ndarray  # (F, H, W) or (F, H, W, 3) float32 0..255
    raw: np.ndarray | None  # (F, H, W) stored values for grey DICOM sources
    window: tuple[float, float] = (0.0, 1.0)
    slope: float = 1.0
    intercept: float = 0.0
    mono1: bool = False


GREY_DICOM = ["pydicom_data/RG1_UNCI.dcm", "pydicom_data/RG3_J2KR.dcm", "pydicom_data/693_UNCI.dcm",
              "pydicom_data/MR2_J2KI.dcm", "dcm_qa_ts/1.dcm", "dcm_qa_ts/4.dcm",
              "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm", "pydicom_data/JPEG-LL.dcm",
              "pydicom_data/693_J2KR.dcm"]
# Real text already burned into a source would be removed rightly yet count as false redaction:
# keep only the image area (rows y0:y1, columns x0:x1, measured by eye) of sources that carry some.
# Sources whose text is everywhere (OBXXXX1A, JPGLosslessP14SV1) are not used at all.
KEEP_BOX = {"pydicom_data/US1_J2KR.dcm": (125, 345, 50, 590),
            "pydicom_data/US1_J2KI.dcm": (125, 345, 50, 590)}


@lru_cache(maxsize=16)
def load_dicom(rel: str) -> Source:
    """Decode a real DICOM file into display space with an explicit linear window."""
    ds = pydicom.dcmread(DICOM_DIR / rel)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        rgb = pydicom.pixels.apply_color_lut(arr, ds)
        rgb = (rgb / 257.0) if rgb.max() > 255 else rgb
        return Source(rel, rgb.reshape(frames, *rgb.shape[-3:]).astype(np.float32), None)
    if ds.get("SamplesPerPixel", 1) == 3:
        rgb = arr.reshape(frames, *arr.shape[-3:]).astype(np.float32)
        if rel in KEEP_BOX:
            y0, y1, x0, x1 = KEEP_BOX[rel]
            keep = np.zeros(rgb.shape[1:3], bool)
            keep[y0:y1, x0:x1] = True
            rgb[:, ~keep] = 0.0
        return Source(rel, rgb, None)
    raw = arr.reshape(frames, *arr.shape[-2:])
    slope = float(ds.get("RescaleSlope", 1) or 1)
    icpt = float(ds.get("RescaleIntercept", 0) or 0)
    vals = raw.astype(np.float64) * slope + icpt
    wc, ww = ds.get("WindowCenter"), ds.get("WindowWidth")
    if wc is not None and ww is not None:
        c = float(wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc)
        w = float(ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww)
    else:
        lo, hi = np.percentile(vals, [1, 99.5])
        c, w = float(lo + hi) / 2, float(max(hi - lo, 10))
    disp = np.clip((vals - (c - w / 2)) / w, 0, 1) * 255
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    if mono1:
        disp = 255 - disp
    return Source(rel, disp.astype(np.float32), raw, (c, w), slope, icpt, mono1)


def vqa_pictures() -> list[Path]:
    return sorted(VQA_DIR.glob("*.jpg")) + sorted(VQA_DIR.glob("*.png"))


def load_picture(rng: np.random.Generator, max_side: int = 1100) -> np.ndarray:
    """A VQA-RAD picture as (H, W, 3) float32, shrunk so the long side is at most `max_side`."""
    pics = vqa_pictures()
    img = Image.open(pics[int(rng.integers(len(pics)))]).convert("RGB")
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)),
                         Image.Resampling.LANCZOS)
    return np.asarray(img, np.float32)


# --------------------------------------------------------------------------------------------- writers


def _header(ds: pydicom.Dataset, ident: Identity, burned: bool) -> None:
    ds.PatientName = f"{ident.family.upper()}^{ident.given.upper()}^{ident.middle}"
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ident.birth.strftime("%Y%m%d")
    ds.StudyDate = ident.study.strftime("%Y%m%d")
    ds.InstitutionName = ident.institution
    ds.AccessionNumber = ident.accession
    ds.ReferringPhysicianName = f"{ident.ref_family.upper()}^{ident.ref_given.upper()}"
    if burned:
        ds.BurnedInAnnotation = "YES"
    elif "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation


def _strip_pixels(ds: pydicom.Dataset) -> None:
    for kw in ("PixelData", "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
               "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
               "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
               "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
               "SegmentedBluePaletteColorLookupTableData", "PaletteColorLookupTableUID",
               "VOILUTSequence", "VOILUTFunction", "PlanarConfiguration", "WindowCenterWidthExplanation",
               "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
               "SmallestImagePixelValue", "LargestImagePixelValue"):
        if kw in ds:
            del ds[kw]
    for tag in [t for t in ds.keys() if 0x6000 <= t.group <= 0x60FF]:
        del ds[tag]


def write_dicom(path: Path, src_rel: str | None, frames: np.ndarray, src: Source | None,
                gray: bool, ident: Identity, burned: bool, uids: tuple[str, str, str]) -> None:
    """Write display-space frames with the real header of `src_rel` and the invented identity."""
    ds = pydicom.dcmread(DICOM_DIR / (src_rel or "pydicom_data/SC_rgb_2frame.dcm"))
    _strip_pixels(ds)
    n = frames.shape[0]
    h, w = frames.shape[1:3]
    ds.Rows, ds.Columns = h, w
    if n > 1 or "NumberOfFrames" in ds:
        ds.NumberOfFrames = n
        if n > 1 and "FrameIncrementPointer" not in ds:
            ds.FrameTime = 33.3
            ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    if gray and src is not None and src.raw is not None:
        # back through the explicit window: untouched pixels keep their stored values exactly
        base = src.display
        changed = np.abs(frames[..., 0] - base) > 0.25
        dd = 255 - frames[..., 0] if src.mono1 else frames[..., 0]
        c, ww = src.window
        vals = (c - ww / 2) + dd / 255.0 * ww
        stored = (vals - src.intercept) / src.slope
        bits = int(ds.BitsStored)
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2 ** bits - 1)
        raw = np.where(changed, np.clip(np.round(stored), lo, hi), src.raw).astype(src.raw.dtype)
        ds.WindowCenter, ds.WindowWidth = round(c, 3), round(ww, 3)
        ds.PixelData = raw.tobytes()
    elif gray:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        for kw in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
            if kw in ds:
                del ds[kw]
        ds.PixelData = np.clip(np.round(frames[..., 0]), 0, 255).astype(np.uint8).tobytes()
    else:
        if ds.get("SamplesPerPixel", 1) == 1:  # grey source shown with coloured overlays: a capture
            ds.SOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        for kw in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept", "RescaleType"):
            if kw in ds:
                del ds[kw]
        ds.PixelData = np.clip(np.round(frames), 0, 255).astype(np.uint8).tobytes()
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = uids
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    _header(ds, ident, burned)
    ds.save_as(path, enforce_file_format=True)


def write_picture(path: Path, frame: np.ndarray, gray: bool, quality: int) -> None:
    img = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    pil = Image.fromarray(img[..., 0] if gray else img)
    if path.suffix == ".jpg":
        pil.save(path, quality=quality)
    else:
        pil.save(path)


# ---------------------------------------------------------------------------------------------- scenes


@dataclass
class Built:
    """A scene's output: the canvas, the file format and where its pixels came from."""

    canvas: Canvas
    fmt: str  # dicom | png | jpeg
    src: Source | None = None
    quality: int = 90
    burned: bool = False  # BurnedInAnnotation YES written into the header
    blur: float = 0.0
    noise: float = 0.0


def _pick(rng: np.random.Generator, xs: list[str]) -> str:
    return xs[int(rng.integers(len(xs)))]


def grey_source(rng: np.random.Generator, prefer: list[str] | None = None) -> Source:
    return load_dicom(_pick(rng, prefer or GREY_DICOM))


def canvas_from(src: Source, rgb: bool = False) -> Canvas:
    d = src.display
    if d.ndim == 3:
        d = np.repeat(d[..., None], 3, axis=-1)
        return Canvas(d, gray=not rgb)
    return Canvas(d, gray=False)


def size_for(rng: np.random.Generator, canvas: Canvas, lo: int = 7, hi: int = 40) -> int:
    """A text size that suits the picture: small pictures do not get 40 px text."""
    h, w = canvas.shape
    cap = max(lo, min(hi, int(min(h, w) / 14)))
    return int(rng.integers(lo, max(lo, cap) + 1))


def corner_block(canvas: Canvas, lines: list[list[tuple[str, str, str]]], corner: str, style: Style,
                 margin: int = 6, frames: tuple[int, ...] | None = None) -> None:
    """Stack lines in a corner (tl, tr, bl, br), shrinking the font when a line would not fit."""
    h, w = canvas.shape
    sizes = [canvas.measure(seg, style) for seg in lines]
    while style.font.size > 7 and sizes and max(s[0] for s in sizes) > w // 2 - margin:
        style.font = FontSpec(style.font.kind, style.font.name, max(7, int(style.font.size * 0.8)))
        sizes = [canvas.measure(seg, style) for seg in lines]
    total = sum(s[1] + 3 for s in sizes)
    y = margin if corner[0] == "t" else h - margin - total
    for seg, (lw, lh) in zip(lines, sizes, strict=True):
        x = margin if corner[1] == "l" else w - margin - lw
        canvas.line(seg, x, y, style, frames)
        y += lh + 3


def scatter(canvas: Canvas, rng: np.random.Generator, lines: list[list[tuple[str, str, str]]],
            style: Style, region: tuple[float, float, float, float] = (0, 0, 1, 1),
            frames: tuple[int, ...] | None = None) -> None:
    """Place each line at a free random spot inside the fractional region (x0, y0, x1, y1)."""
    h, w = canvas.shape
    for seg in lines:
        lw, lh = canvas.measure(seg, style)
        for _ in range(40):
            x = int(rng.uniform(region[0] * w, max(region[0] * w + 1, region[2] * w - lw)))
            y = int(rng.uniform(region[1] * h, max(region[1] * h + 1, region[3] * h - lh)))
            if canvas.line(seg, x, y, style, frames):
                break


def _colour(rng: np.random.Generator) -> RGB:
    return [(255, 255, 0), (0, 255, 0), (0, 255, 255), (255, 200, 40), (120, 255, 120),
            (255, 120, 255)][int(rng.integers(6))]


def _negs_around(canvas: Canvas, rng: np.random.Generator, ids: Ids, n: int, style: Style) -> None:
    scatter(canvas, rng, ids.negs(n), style, (0.05, 0.3, 0.95, 0.95))


def scene_cr_corner(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng, ["pydicom_data/RG1_UNCI.dcm", "pydicom_data/RG3_J2KR.dcm"])
    cv = canvas_from(src)
    st = Style(pick_font(rng, size_for(rng, cv, 14, 36)))
    corner_block(cv, ids.phi_lines(4, header), _pick(rng, ["tl", "tr"]), st, margin=20)
    big = Style(pick_font(rng, int(rng.integers(28, 41)), "ttf"))
    scatter(cv, rng, [[(_pick(rng, ["L", "R"]), "neg", "marker")], [("PORTABLE", "neg", "marker")]],
            big, (0.05, 0.55, 0.95, 0.95))
    return Built(cv, "dicom", src)


def scene_cr_lowcontrast(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng, ["pydicom_data/RG1_UNCI.dcm", "pydicom_data/RG3_J2KR.dcm"])
    cv = canvas_from(src)
    g = int(rng.integers(120, 190))
    st = Style(pick_font(rng, size_for(rng, cv, 12, 30)), fill=(g, g, g))
    scatter(cv, rng, ids.phi_lines(3, header), st, (0.1, 0.1, 0.9, 0.9))
    _negs_around(cv, rng, ids, 2, st)
    return Built(cv, "dicom", src)


def scene_ct_four_corners(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng, ["pydicom_data/693_UNCI.dcm", "pydicom_data/693_J2KR.dcm"])
    cv = canvas_from(src)
    st = Style(pick_font(rng, int(rng.integers(9, 16)), _pick(rng, ["ttf", "mono", "bitmap"])))
    lines = ids.phi_lines(4, header)
    corner_block(cv, lines[:2], "tl", st)
    corner_block(cv, lines[2:], "tr", st)
    corner_block(cv, [[("WL 40 WW 400", "neg", "param")], [("Se 3 Im 45", "neg", "param")]], "bl", st)
    cv.graphic("scalebar", cv.shape[1] - 90, cv.shape[0] - 40, 70, 12, (255, 255, 255))
    cv.line([("5 cm", "neg", "param")], cv.shape[1] - 80, cv.shape[0] - 26, st)
    return Built(cv, "dicom", src)


def scene_mr_small(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng, ["dcm_qa_ts/1.dcm", "dcm_qa_ts/4.dcm",
                            "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm"])
    cv = canvas_from(src)
    st = Style(pick_font(rng, int(rng.integers(7, 11))), aliased=bool(rng.random() < 0.5))
    corner_block(cv, ids.phi_lines(3, header), _pick(rng, ["tl", "tr", "bl", "br"]), st, margin=3)
    corner_block(cv, [[("Ax T2 FSE", "neg", "param")], [("TR 4500 TE 98", "neg", "param")]], "br"
                 if cv.tokens and cv.tokens[0].y0 < 50 else "tr", st, margin=3)
    return Built(cv, "dicom", src)


def scene_mr_large(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = load_dicom("pydicom_data/MR2_J2KI.dcm")
    cv = canvas_from(src)
    st = Style(pick_font(rng, int(rng.integers(18, 34))), shadow=(0, 0, 0))
    corner_block(cv, ids.phi_lines(3, header), "tl", st, margin=12)
    corner_block(cv, [[("FOV 24 cm", "neg", "param")], [("ST 3 mm", "neg", "param")]], "bl", st, 12)
    return Built(cv, "dicom", src)


def scene_us_banner(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = load_dicom(_pick(rng, ["pydicom_data/US1_J2KR.dcm", "pydicom_data/US1_J2KI.dcm"]))
    cv = canvas_from(src)
    st = Style(pick_font(rng, int(rng.integers(10, 17))), fill=(230, 230, 230))
    lines = ids.phi_lines(3, header)
    x = 6
    for seg in lines:
        lw, _ = cv.measure(seg, st)
        if cv.line(seg, x, 2, st):
            x += lw + 8
    corner_block(cv, [[("Gain 55", "neg", "param")], [("Depth 14 cm", "neg", "param")],
                      [("MI 1.1", "neg", "param")], [("TI 0.7", "neg", "param")]], "br", st)
    return Built(cv, "dicom", src)


def scene_us_cine(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = load_dicom(_pick(rng, ["pydicom_data/US1_J2KI.dcm", "pydicom_data/US1_J2KR.dcm"]))
    base = src.display
    if base.shape[0] < 4:  # a cine loop: jitter the real frame(s) into several
        frames = [np.roll(base[k % base.shape[0]], (k % 3) - 1, axis=1) * (0.92 + 0.03 * k)
                  for k in range(int(rng.integers(4, 7)))]
        base = np.clip(np.stack(frames), 0, 255)
    cv = Canvas(base, gray=False)
    st = Style(pick_font(rng, int(rng.integers(11, 20))), fill=_colour(rng)
               if rng.random() < 0.5 else (255, 255, 255))
    corner_block(cv, ids.phi_lines(3, header), "tl", st)
    corner_block(cv, [[("FR 32 Hz", "neg", "param")], [("C5-2", "neg", "param")],
                      [("HR 72", "neg", "param")]], "tr", st)
    cv.graphic("caliper", cv.shape[1] // 2, cv.shape[0] // 2, 13, 13, (255, 255, 0))
    return Built(cv, "dicom", Source(src.path, base, None))


def scene_us_gray(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    colour = load_dicom(_pick(rng, ["pydicom_data/US1_J2KI.dcm", "pydicom_data/US1_J2KR.dcm"]))
    src = Source(colour.path, colour.display.mean(axis=-1), None)  # a grey-scale B-mode capture
    cv = canvas_from(src)
    st = Style(pick_font(rng, size_for(rng, cv, 12, 28)))
    corner_block(cv, ids.phi_lines(3, header), _pick(rng, ["tl", "tr"]), st, margin=10)
    corner_block(cv, [[("Gain 55", "neg", "param")], [("DR 60", "neg", "param")]], "bl", st, 10)
    return Built(cv, "dicom", src)


def scene_nm_strip(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = load_dicom("pydicom_data/JPEG-LL.dcm")
    cv = canvas_from(src)
    st = Style(pick_font(rng, int(rng.integers(8, 14)), "mono"))
    corner_block(cv, ids.phi_lines(3, header), "tl", st, margin=3)
    corner_block(cv, [[("ANT", "neg", "marker")]], "bl", st, margin=3)
    return Built(cv, "dicom", src)


def scene_colour_overlay(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng, ["pydicom_data/693_UNCI.dcm", "dcm_qa_ts/1.dcm", "pydicom_data/RG3_J2KR.dcm"])
    cv = canvas_from(src, rgb=True)
    st = Style(pick_font(rng, size_for(rng, cv, 9, 26)), fill=_colour(rng))
    corner_block(cv, ids.phi_lines(3, header), _pick(rng, ["tl", "bl"]), st)
    corner_block(cv, ids.negs(2), "br", Style(st.font, fill=_colour(rng)))
    return Built(cv, "dicom", src)


def scene_colour_png(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    cv = Canvas(load_picture(rng)[None], gray=False)
    st = Style(pick_font(rng, size_for(rng, cv, 10, 30)), fill=_colour(rng))
    corner_block(cv, ids.phi_lines(3, False), _pick(rng, ["tl", "tr", "bl"]), st)
    _negs_around(cv, rng, ids, 2, Style(st.font, fill=_colour(rng)))
    return Built(cv, _pick(rng, ["png", "jpeg"]), quality=int(rng.integers(60, 96)))


def scene_dark_on_light(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    pic = load_picture(rng)
    cv = Canvas(pic[None], gray=True)
    # a light label strip along one edge, as printers and film digitisers leave
    h, w = cv.shape
    sh = int(h * 0.12)
    y0 = 0 if rng.random() < 0.5 else h - sh
    cv.base[:, y0:y0 + sh] = 235.0
    cv.img[:, y0:y0 + sh] = 235.0
    g = int(rng.integers(0, 70))
    st = Style(pick_font(rng, max(8, min(sh // 3, 26))), fill=(g, g, g))
    lines = ids.phi_lines(3, False)
    x = 6
    for seg in lines:
        lw, _ = cv.measure(seg, st)
        if cv.line(seg, x, y0 + 4, st):
            x += lw + 12
    cv.rects.append((0, y0, w, y0 + sh))
    return Built(cv, _pick(rng, ["png", "jpeg"]), quality=int(rng.integers(60, 96)))


def scene_textbox(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng)
    cv = canvas_from(src, rgb=bool(rng.random() < 0.4))
    light = rng.random() < 0.4
    st = Style(pick_font(rng, size_for(rng, cv, 9, 28)),
               fill=(10, 10, 10) if light else (255, 255, 255),
               bg=(230, 230, 230) if light else (20, 20, 60), bg_alpha=float(rng.uniform(0.6, 1.0)))
    corner_block(cv, ids.phi_lines(3, header), _pick(rng, ["tl", "tr", "bl", "br"]), st, margin=8)
    scatter(cv, rng, ids.negs(1), st, (0.2, 0.2, 0.8, 0.8))
    return Built(cv, "dicom", src)


def scene_outlined(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    cv = Canvas(load_picture(rng)[None], gray=bool(rng.random() < 0.5))
    st = Style(pick_font(rng, size_for(rng, cv, 12, 36), "ttf"), outline=(0, 0, 0))
    scatter(cv, rng, ids.phi_lines(3, False), st, (0.05, 0.05, 0.95, 0.95))
    _negs_around(cv, rng, ids, 2, st)
    return Built(cv, _pick(rng, ["png", "jpeg"]), quality=int(rng.integers(60, 96)))


def scene_rotated(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng)
    cv = canvas_from(src)
    st = Style(pick_font(rng, size_for(rng, cv, 10, 30), "ttf"), angle=float(rng.uniform(-8, 8)))
    scatter(cv, rng, ids.phi_lines(3, header), st, (0.02, 0.02, 0.98, 0.6))
    scatter(cv, rng, ids.negs(1), st, (0.02, 0.6, 0.98, 0.98))
    return Built(cv, "dicom", src)


def scene_spaced(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng)
    cv = canvas_from(src)
    size = size_for(rng, cv, 9, 24)
    st = Style(pick_font(rng, size, _pick(rng, ["ttf", "hershey"])), spacing=max(2, size // 3))
    corner_block(cv, ids.phi_lines(3, header), _pick(rng, ["tl", "bl"]), st)
    corner_block(cv, ids.negs(1), "tr", st)
    return Built(cv, "dicom", src)


def scene_scanned_doc(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    h, w = int(rng.integers(1000, 1400)), int(rng.integers(760, 1000))
    page = np.full((1, h, w, 3), float(rng.integers(225, 250)), np.float32)
    cv = Canvas(page, gray=True)
    size = int(rng.integers(14, 24))
    font = pick_font(rng, size, _pick(rng, ["ttf", "mono"]))
    ink = int(rng.integers(10, 80))
    st = Style(font, fill=(ink, ink, ink))
    title = Style(FontSpec(font.kind, font.name, size + 10), fill=(ink, ink, ink))
    cv.line(ids.institution(), 40, 30, title)
    cv.line([("RADIOLOGY REQUISITION", "neg", "param")], 40, 90, st)
    y = 150
    rows = [ids.name(), ids.pid(), ids.birth(), ids.study(), ids.accession(), ids.referring(),
            [("Exam: ", "label", "label"), ("CHEST PA AND LAT", "neg", "param")],
            [("Priority: ", "label", "label"), ("ROUTINE", "neg", "param")], ids.other()]
    for seg in rows:
        if cv.line(seg, 40, y, st):
            pass
        y += int(size * 2.2)
    cv.graphic("scalebar", 40, y + 20, w - 80, 10, (ink, ink, ink))
    return Built(cv, _pick(rng, ["jpeg", "png", "dicom"]), quality=int(rng.integers(60, 90)),
                 blur=float(rng.uniform(0.3, 0.9)), noise=float(rng.uniform(1, 5)))


def scene_screenshot(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    h, w = 800, 1280
    img = np.full((h, w, 3), 38.0, np.float32)
    img[:34] = (52, 58, 70)
    n = int(rng.integers(2, 5))
    cols = 2 if n > 1 else 1
    rows = 1 if n <= 2 else 2
    pw, ph = (w - 20) // cols, (h - 50) // rows
    for k in range(n):
        pic = Image.fromarray(load_picture(rng).astype(np.uint8)).convert("L").convert("RGB")
        pic.thumbnail((pw - 12, ph - 12))
        px, py = 10 + (k % cols) * pw + (pw - pic.width) // 2, 42 + (k // cols) * ph + (ph - pic.height) // 2
        img[py:py + pic.height, px:px + pic.width] = np.asarray(pic, np.float32)
    cv = Canvas(img[None], gray=False)
    bar = Style(pick_font(rng, 15, "ttf"), fill=(220, 225, 235))
    x = 10
    for seg in [ids.name(), ids.pid(), ids.birth()]:
        lw, _ = cv.measure(seg, bar)
        if cv.line(seg, x, 6, bar):
            x += lw + 30
    panel = Style(pick_font(rng, int(rng.integers(9, 14))), fill=_colour(rng)
                  if rng.random() < 0.5 else (255, 255, 255))
    for k in range(n):
        px, py = 14 + (k % cols) * pw, 46 + (k // cols) * ph
        lines = [[("Se 3 Im 45", "neg", "param")], [("W 350 L 40", "neg", "param")]]
        if k == 0:
            lines = [ids.study(), ids.institution()] + lines
        y = py
        for seg in lines:
            _, lh = cv.measure(seg, panel)
            cv.line(seg, px, y, panel)
            y += lh + 3
    return Built(cv, _pick(rng, ["png", "png", "jpeg"]), quality=int(rng.integers(80, 96)))


def scene_jpeg_lowq(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    cv = Canvas(load_picture(rng)[None], gray=True)
    st = Style(pick_font(rng, size_for(rng, cv, 8, 18)))
    corner_block(cv, ids.phi_lines(3, False), _pick(rng, ["tl", "tr", "bl", "br"]), st, margin=2)
    _negs_around(cv, rng, ids, 2, st)
    return Built(cv, "jpeg", quality=int(rng.integers(60, 72)))


def scene_tiny_aliased(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng)
    cv = canvas_from(src)
    st = Style(pick_font(rng, int(rng.integers(7, 10)), _pick(rng, ["ttf", "mono", "bitmap"])),
               aliased=True)
    corner_block(cv, ids.phi_lines(4, header), _pick(rng, ["tl", "tr", "bl", "br"]), st, margin=2)
    scatter(cv, rng, ids.negs(2), st)
    return Built(cv, "dicom", src)


def scene_big_title(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng, ["pydicom_data/RG1_UNCI.dcm", "pydicom_data/RG3_J2KR.dcm",
                            "pydicom_data/MR2_J2KI.dcm", "dcm_qa_ts/4.dcm"])
    cv = canvas_from(src)
    st = Style(pick_font(rng, int(rng.integers(30, 41)), "ttf"))
    corner_block(cv, [ids.institution(), ids.name()], "tl", st, margin=10)
    scatter(cv, rng, [[("SUPINE", "neg", "marker")], [("AP", "neg", "marker")]], st, (0, 0.5, 1, 1))
    return Built(cv, "dicom", src)


def scene_hershey(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng)
    cv = canvas_from(src)
    st = Style(pick_font(rng, size_for(rng, cv, 10, 30), "hershey"), aliased=bool(rng.random() < 0.3))
    corner_block(cv, ids.phi_lines(4, header), _pick(rng, ["tl", "tr"]), st)
    corner_block(cv, ids.negs(2), "bl", st)
    return Built(cv, "dicom", src)


def scene_over_anatomy(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng)
    cv = canvas_from(src)
    g = int(rng.integers(200, 256))
    st = Style(pick_font(rng, size_for(rng, cv, 10, 28)), fill=(g, g, g),
               opacity=float(rng.uniform(0.7, 1.0)))
    scatter(cv, rng, ids.phi_lines(2, header), st, (0.3, 0.3, 0.7, 0.7))
    scatter(cv, rng, ids.negs(1), st, (0.3, 0.3, 0.7, 0.7))
    cv.graphic("arrow", cv.shape[1] // 3, cv.shape[0] // 3, 40, 40, (255, 255, 255))
    return Built(cv, "dicom", src)


def scene_vertical(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng, ["pydicom_data/RG1_UNCI.dcm", "pydicom_data/RG3_J2KR.dcm",
                            "pydicom_data/MR2_J2KI.dcm", "pydicom_data/693_UNCI.dcm"])
    cv = canvas_from(src)
    st = Style(pick_font(rng, size_for(rng, cv, 10, 26), "ttf"), angle=90.0)
    h, w = cv.shape
    y = h - 10
    x = 6 if rng.random() < 0.5 else w - 60
    for seg in ids.phi_lines(2, header):
        lw, lh = cv.measure(seg, st)
        cv.line(seg, x, max(0, y - lh), st)
        y -= lh + 20
    corner_block(cv, ids.negs(1), "tr" if x < w // 2 else "tl", Style(st.font))
    return Built(cv, "dicom", src)


def scene_negatives_only(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    src = grey_source(rng)
    cv = canvas_from(src)
    st = Style(pick_font(rng, size_for(rng, cv, 10, 36)))
    corner_block(cv, ids.negs(3), "tl", st)
    corner_block(cv, ids.negs(2), "br", st)
    cv.graphic("scalebar", 20, cv.shape[0] // 2, min(120, cv.shape[1] // 4), 14, (255, 255, 255))
    cv.graphic("arrow", cv.shape[1] // 2, cv.shape[0] // 2, 36, 36, (255, 255, 255))
    return Built(cv, "dicom", src)


def scene_multi_name(rng: np.random.Generator, ids: Ids, header: bool) -> Built:
    cv = Canvas(load_picture(rng)[None], gray=bool(rng.random() < 0.5))
    st = Style(pick_font(rng, size_for(rng, cv, 10, 24)))
    lines = [ids.name(), ids.name(), ids.referring(), ids.other()]
    corner_block(cv, lines, _pick(rng, ["tl", "tr", "bl", "br"]), st)
    _negs_around(cv, rng, ids, 1, st)
    return Built(cv, _pick(rng, ["png", "jpeg"]), quality=int(rng.integers(70, 96)))


SCENES: dict[str, Callable[..., Built]] = {
    "cr_corner": scene_cr_corner, "cr_lowcontrast": scene_cr_lowcontrast,
    "ct_four_corners": scene_ct_four_corners, "mr_small": scene_mr_small, "mr_large": scene_mr_large,
    "us_banner": scene_us_banner, "us_cine": scene_us_cine, "us_gray": scene_us_gray,
    "nm_strip": scene_nm_strip, "colour_overlay": scene_colour_overlay, "colour_png": scene_colour_png,
    "dark_on_light": scene_dark_on_light, "textbox": scene_textbox, "outlined": scene_outlined,
    "rotated": scene_rotated, "spaced": scene_spaced, "scanned_doc": scene_scanned_doc,
    "screenshot": scene_screenshot, "jpeg_lowq": scene_jpeg_lowq, "tiny_aliased": scene_tiny_aliased,
    "big_title": scene_big_title, "hershey": scene_hershey, "over_anatomy": scene_over_anatomy,
    "vertical": scene_vertical, "negatives_only": scene_negatives_only, "multi_name": scene_multi_name,
}


# ------------------------------------------------------------------------------------------- one case


@dataclass
class CaseSpec:
    index: int
    seed: int
    scene: str


def _post(frames: np.ndarray, built: Built, seed: int) -> np.ndarray:
    """Scanner blur and noise, the same for the image and its twin."""
    out = frames
    if built.blur:
        out = np.stack([cv2.GaussianBlur(f, (0, 0), built.blur) for f in out])
    if built.noise:
        out = out + np.random.default_rng(seed).normal(0, built.noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 255)


def build_case(spec: CaseSpec, folder: Path) -> tuple[Built, Path, Path]:
    """Draw the case and write the image and its twin into `folder`."""
    rng = np.random.default_rng([spec.seed, spec.index])
    ident = make_identity(rng)
    built = SCENES[spec.scene](rng, Ids(ident, rng), True)  # PNG/JPEG scenes pass False themselves
    cv = built.canvas
    img, twin = _post(cv.img, built, spec.index), _post(cv.base, built, spec.index)
    if built.fmt == "dicom":
        uids = (generate_uid(), generate_uid(), generate_uid())
        burned = built.burned = bool(rng.random() < 0.5)
        src = built.src if (built.blur == 0 and built.noise == 0) else None
        a, b = folder / "image.dcm", folder / "twin.dcm"
        path = built.src.path if built.src is not None else None
        write_dicom(a, path, img, src, cv.gray, ident, burned, uids)
        write_dicom(b, path, twin, src, cv.gray, ident, burned, uids)
    else:
        ext = ".jpg" if built.fmt == "jpeg" else ".png"
        a, b = folder / f"image{ext}", folder / f"twin{ext}"
        write_picture(a, img[0], cv.gray, built.quality)
        write_picture(b, twin[0], cv.gray, built.quality)
    return built, a, b


def ingest(path: Path, mode: str, tmp: Path, tag: str) -> tuple[dict, dict[int, np.ndarray], float]:
    """Run the CLI once in a fresh data dir; return its JSON line, its frames and the wall time."""
    out = tmp / f"out_{tag}"
    env = dict(os.environ, RADASSIST_DATA_DIR=str(tmp / f"data_{tag}"), RADASSIST_BURNED_IN_TEXT=mode)
    t0 = time.monotonic()
    try:
        proc = subprocess.run([str(CLI), "ingest", "--json", "--out", str(out), str(path)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        stdout, stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        stdout, stderr = "", "timed out after 600 s"
    wall = time.monotonic() - t0
    line = next((ln for ln in stdout.splitlines() if ln.startswith("{")), None)
    tail = stderr.strip().splitlines()[-1:] or [""]
    result = json.loads(line) if line else {"ok": False, "error": f"no JSON line (CLI crash): {tail[0]}"}
    frames: dict[int, np.ndarray] = {}
    for f in glob.glob(str(out / "**" / "frame*.png"), recursive=True):
        frames[int(Path(f).stem[5:]) - 1] = np.asarray(Image.open(f).convert("RGB"))
    return result, frames, wall


def _shown(frames: dict[int, np.ndarray], k: int) -> np.ndarray | None:
    f = frames.get(k)
    if f is None or int(f.max()) <= BLACK:
        return None
    return f


def _mask_at(tok: Token, full: tuple[int, int], shape: tuple[int, int]) -> tuple[np.ndarray, slice, slice]:
    """The token mask, its row and column slices, mapped to a rendered frame of `shape`."""
    h, w = tok.mask.shape
    if shape == full:
        return tok.mask, slice(tok.y0, tok.y0 + h), slice(tok.x0, tok.x0 + w)
    sy, sx = shape[0] / full[0], shape[1] / full[1]
    y0, x0 = int(tok.y0 * sy), int(tok.x0 * sx)
    y1, x1 = max(y0 + 1, math.ceil((tok.y0 + h) * sy)), max(x0 + 1, math.ceil((tok.x0 + w) * sx))
    m = cv2.resize(tok.mask.astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return m.astype(bool), slice(y0, y1), slice(x0, x1)


def score_token(tok: Token, n_frames: int, full: tuple[int, int], always: dict[int, np.ndarray],
                never: dict[int, np.ndarray], twin: dict[int, np.ndarray], failed: bool) -> dict:
    """Black share of a token's ink over the frames it is on."""
    ink_n = black_n = 0
    fallback = False
    for k in tok.frames if tok.frames is not None else range(n_frames):
        nv, tw = _shown(never, k), twin.get(k)
        ref = nv if nv is not None else tw
        if ref is None:
            continue
        mask, rs, cs = _mask_at(tok, full, ref.shape[:2])
        nv_box = nv[rs, cs].astype(int) if nv is not None else None
        if tok.dark and nv_box is not None:
            ink = nv_box.max(axis=-1) > BLACK
        elif nv_box is not None and tw is not None and tw.shape == nv.shape:
            diff = np.abs(nv_box - tw[rs, cs].astype(int)).max(axis=-1)
            ink = mask[:diff.shape[0], :diff.shape[1]] & (diff > INK_DIFF)
        else:
            ink = mask
            fallback = True
        n = int(ink.sum())
        al = _shown(always, k)
        if failed or al is None:
            black_n += n
        else:
            ab = al[rs, cs].max(axis=-1) <= BLACK
            black_n += int((ab[:ink.shape[0], :ink.shape[1]] & ink[:ab.shape[0], :ab.shape[1]]).sum())
        ink_n += n
    share = black_n / ink_n if ink_n else None
    return {"ink_px": ink_n, "black_share": share, "ink_fallback": fallback}


def false_redaction(canvas: Canvas, always: dict[int, np.ndarray], never: dict[int, np.ndarray]
                    ) -> list[float]:
    """Per shown frame: share of the visible non-text area black with always but not never."""
    out = []
    full = canvas.shape
    for k, al in sorted(always.items()):
        nv = never.get(k)
        if _shown(always, k) is None or nv is None or nv.shape != al.shape:
            continue
        keep = np.ones(al.shape[:2], bool)
        sy, sx = al.shape[0] / full[0], al.shape[1] / full[1]
        for x0, y0, x1, y1 in canvas.rects:
            keep[max(0, int((y0 - 4) * sy)):int((y1 + 4) * sy) + 1,
                 max(0, int((x0 - 4) * sx)):int((x1 + 4) * sx) + 1] = False
        visible = keep & (nv.max(axis=-1) > BLACK)
        if visible.sum() == 0:
            continue
        newly = visible & (al.max(axis=-1) <= BLACK)
        out.append(float(newly.sum() / visible.sum()))
    return out


def run_case(spec: CaseSpec, work: str, keep: bool = False) -> dict:
    """Build, ingest three times and score one case; harness errors are returned, not raised."""
    case_id = f"{spec.index:03d}_{spec.scene}"
    try:
        with tempfile.TemporaryDirectory(dir=work) as tmpname:
            tmp = Path(work) / f"case_{case_id}" if keep else Path(tmpname)
            tmp.mkdir(exist_ok=True)
            built, img, twin = build_case(spec, tmp)
            cv = built.canvas
            res_a, fr_a, t_a = ingest(img, "always", tmp, "a")
            res_n, fr_n, t_n = ingest(img, "never", tmp, "n")
            res_t, fr_t, t_t = ingest(twin, "never", tmp, "t")
            failed = not res_a.get("ok", False)
            rows = []
            for tok in cv.tokens:
                if tok.role == "label":
                    continue
                sc = score_token(tok, cv.img.shape[0], cv.shape, fr_a, fr_n, fr_t, failed)
                share = sc["black_share"]
                ok = None if share is None else (share >= 0.95 if tok.role == "phi" else share < 0.5)
                rows.append({"case": case_id, "scene": spec.scene, "format": built.fmt,
                             "role": tok.role, "kind": tok.kind, "text": tok.text, "size": tok.size,
                             "font": tok.font, "dark": tok.dark, "frames": cv.img.shape[0],
                             "removed" if tok.role == "phi" else "kept": ok,
                             "failed_ingest": failed, **sc})
            summary = res_a.get("summary") or {}
            return {"case": case_id, "scene": spec.scene, "format": built.fmt, "rows": rows,
                    "times": {"always": t_a, "never": t_n, "twin": t_t},
                    "errors": {k: r.get("error") for k, r in (("always", res_a), ("never", res_n),
                                                              ("twin", res_t)) if not r.get("ok")},
                    "false_redaction": false_redaction(cv, fr_a, fr_n),
                    "burned_in_text": summary.get("burned_in_text"),
                    "burned_in_annotation": summary.get("burned_in_annotation"),
                    "header_burned_yes": built.burned,
                    "frames": {"always": len(fr_a), "never": len(fr_n), "twin": len(fr_t)}}
    except Exception:  # noqa: BLE001 - a harness bug is reported, never scored
        return {"case": case_id, "scene": spec.scene, "harness_error": traceback.format_exc()}


# ---------------------------------------------------------------------------------------------- report


def plan(seed: int, images: int, scenes: list[str] | None) -> list[CaseSpec]:
    """Cycle through the scene kinds in a seeded order so every kind appears."""
    names = scenes or list(SCENES)
    rng = np.random.default_rng(seed)
    order: list[str] = []
    while len(order) < images:
        order += [names[k] for k in rng.permutation(len(names))]
    return [CaseSpec(i, seed, order[i]) for i in range(images)]


def size_band(size: int) -> str:
    for lo, hi in ((7, 9), (10, 13), (14, 19), (20, 29)):
        if size <= hi:
            return f"{lo}-{hi}px"
    return "30-40px"


def _rate(rows: list[dict], key: str) -> str:
    scored = [r for r in rows if r[key] is not None]
    if not scored:
        return "  -"
    good = sum(1 for r in scored if r[key])
    return f"{good:4d}/{len(scored):<4d} {100 * good / len(scored):5.1f}%"


def _p(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def report(cases: list[dict]) -> None:
    ok_cases = [c for c in cases if "harness_error" not in c]
    rows = [r for c in ok_cases for r in c["rows"]]
    phi = [r for r in rows if r["role"] == "phi"]
    neg = [r for r in rows if r["role"] == "neg"]
    print(f"cases {len(cases)}  harness errors {len(cases) - len(ok_cases)}  "
          f"tokens phi {len(phi)} neg {len(neg)}  no-ink tokens "
          f"{sum(1 for r in rows if r['black_share'] is None)}")
    print(f"RECALL overall            {_rate(phi, 'removed')}")
    failed = [r for r in phi if r["failed_ingest"]]
    print(f"  of which in failed ingests: {len(failed)} tokens")
    groups: list[tuple[str, Callable[[dict], str]]] = [
        ("kind", lambda r: r["kind"]), ("format", lambda r: r["format"]),
        ("size", lambda r: size_band(r["size"])), ("dark", lambda r: "dark" if r["dark"] else "light"),
        ("scene", lambda r: r["scene"])]
    for title, key in groups:
        by: dict[str, list[dict]] = defaultdict(list)
        for r in phi:
            by[key(r)].append(r)
        for name in sorted(by):
            print(f"  by {title:6s} {name:18s} {_rate(by[name], 'removed')}")
    print(f"NEGATIVES kept            {_rate(neg, 'kept')}")
    by_neg: dict[str, list[dict]] = defaultdict(list)
    for r in neg:
        by_neg[r["kind"]].append(r)
    for name in sorted(by_neg):
        print(f"  by kind   {name:18s} {_rate(by_neg[name], 'kept')}")
    fr = [x for c in ok_cases for x in c["false_redaction"]]
    print(f"FALSE REDACTION per shown frame: n={len(fr)} median {_p(fr, 50):.4f} p90 {_p(fr, 90):.4f} "
          f"max {max(fr) if fr else float('nan'):.4f}")
    ta = [c["times"]["always"] for c in ok_cases]
    tn = [c["times"]["never"] for c in ok_cases] + [c["times"]["twin"] for c in ok_cases]
    print(f"TIME ingest median always {statistics.median(ta) if ta else 0:.2f} s "
          f"(p90 {_p(ta, 90):.2f})  never {statistics.median(tn) if tn else 0:.2f} s")
    unscorable = [c["case"] for c in ok_cases if c["frames"]["never"] == 0 or c["frames"]["twin"] == 0]
    print(f"UNSCORABLE cases (no never/twin rendering, tokens have no ink): {len(unscorable)}")
    errs = [(c["case"], c["errors"]) for c in ok_cases if c["errors"]]
    print(f"INGEST ERRORS {len(errs)} case(s)")
    for case, e in errs:
        print(f"  {case}: {e}")
    for c in cases:
        if "harness_error" in c:
            print(f"HARNESS ERROR {c['case']}: {c['harness_error'].strip().splitlines()[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=OFFICIAL_SEED)
    parser.add_argument("--work", required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--scenes", default="", help="comma list of scene kinds (debugging)")
    parser.add_argument("--keep", action="store_true", help="keep files and renderings per case")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    scenes = [s for s in args.scenes.split(",") if s] or None
    for s in scenes or []:
        if s not in SCENES:
            parser.error(f"unknown scene {s!r}; known: {', '.join(SCENES)}")
    specs = plan(args.seed, args.images, scenes)
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        cases = list(pool.map(run_case, specs, [str(work)] * len(specs), [args.keep] * len(specs)))
    report(cases)
    print(f"wall {time.monotonic() - t0:.0f} s, seed {args.seed}, images {args.images}")
    rows = [r for c in cases for r in c.get("rows", [])]
    meta = [{k: v for k, v in c.items() if k != "rows"} for c in cases]
    (work / "results.json").write_text(json.dumps({"seed": args.seed, "tokens": rows, "cases": meta},
                                                  indent=1, default=str))


if __name__ == "__main__":
    main()
