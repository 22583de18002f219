"""Blind held-out benchmark K for burned-in text redaction (issue #16).

Official seed: 9177 (50 images). Command:

    .venv/bin/python -m bench.heldout_burned_in_k --seed 9177 --work DIR --jobs 2

Debug with another seed and ``--images <= 8``; ``--build-only`` writes the cases (and a preview PNG
per case) without ingesting, ``--scene NAME`` forces one scene kind.

Each case is one synthetic picture with device-style text drawn into its pixels plus a clean twin
(same pixels, no text).  Sources are the real DICOM files in ../shared/data/dicom (header kept, patient
identity replaced by an invented one) and VQA-RAD pictures.  The redactor is driven as a black box:
``radassist ingest --json --out OUT FILE`` with RADASSIST_BURNED_IN_TEXT=always (image) and =never (image
and twin), each in a fresh RADASSIST_DATA_DIR.

Scoring (shared with earlier sets):
- ink of a token = pixels under its glyph mask (mapped to the rendered frame size) where the image and
  the twin differ, both rendered with ``never``;
- an identifier token is removed when >= 95% of its ink pixels are black (<= 8 in every channel) in the
  ``always`` rendering, or its frame was withheld (all black or absent), or the ingest failed (failures
  are counted apart); a token darker than its surroundings is judged on the light (non-black in the
  ``never`` rendering) pixels of its box instead;
- a negative (non-PHI annotation) is kept when < 50% of its ink is black (same dark-text rule);
- false redaction = share of the visible non-text area (outside every drawn box + 4 px, not black with
  ``never``) that is black with ``always``, per shown frame: median and p90;
- time = wall time of each ingest call, median ``always`` vs ``never``.
Tokens with no visible ink in the ``never`` rendering and cases whose ``never`` ingest failed are
reported as harness/unscorable, not scored.  Per-token rows go to DIR/results.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

OFFICIAL_SEED = 9177
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DICOM_DIR = SHARED / "dicom"
VQA_DIR = SHARED / "vqa_rad" / "images"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
BLACK_LEVEL = 8  # a pixel is black when every channel is <= 8
INK_DELTA = 24  # rendered |image - twin| above this (any channel) is ink; JPEG noise stays below
REMOVED_SHARE = 0.95
KEPT_SHARE = 0.50
BOX_MARGIN = 4
Array = np.ndarray

# --------------------------------------------------------------------------------------------- fonts


def _katex(name: str) -> Path | None:
    pattern = os.path.join(sys.prefix, "lib", "python*", "site-packages", "gradio", "templates",
                           "frontend", "assets", f"KaTeX_{name}-*.ttf")
    hits = sorted(glob.glob(pattern))
    return Path(hits[0]) if hits else None


FONT_FILES: dict[str, Path | None] = {
    "sans": DEJAVU / "DejaVuSans.ttf",
    "sans_bold": DEJAVU / "DejaVuSans-Bold.ttf",
    "sans_light": DEJAVU / "DejaVuSans-ExtraLight.ttf",
    "cond": DEJAVU / "DejaVuSansCondensed.ttf",
    "cond_bold": DEJAVU / "DejaVuSansCondensed-Bold.ttf",
    "mono": DEJAVU / "DejaVuSansMono.ttf",
    "mono_bold": DEJAVU / "DejaVuSansMono-Bold.ttf",
    "serif": DEJAVU / "DejaVuSerif.ttf",
    "serif_italic": DEJAVU / "DejaVuSerif-Italic.ttf",
    "oblique": DEJAVU / "DejaVuSans-Oblique.ttf",
    "katex_main": _katex("Main-Regular"),
    "katex_sans": _katex("SansSerif-Regular"),
    "katex_type": _katex("Typewriter-Regular"),
}


def load_font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font by short name; 'aileron' is Pillow's bundled font, 'bitmap' its 11 px bitmap font."""
    if name == "bitmap":
        return ImageFont.load_default_imagefont()
    if name == "aileron":
        return ImageFont.load_default(size=size)
    path = FONT_FILES.get(name) or FONT_FILES["sans"]
    return ImageFont.truetype(str(path), size)


@dataclass(frozen=True)
class Style:
    font: str = "sans"
    size: int = 12
    colour: tuple[int, int, int] = (255, 255, 255)
    aliased: bool = False
    outline: bool = False
    shadow: bool = False
    spacing: int = 0
    angle: float = 0.0
    opacity: float = 1.0
    keep_colour: bool = False  # else text too close to its background is flipped to stay visible


def text_alpha(text: str, st: Style) -> Array:
    """Glyph coverage of text, (h, w) float32 in [0, 1], cropped to its ink."""
    scale = 1
    if st.font == "bitmap":
        scale = max(1, round(st.size / 11))
    font = load_font(st.font, st.size)
    pieces = list(text) if st.spacing else [text]
    widths = [font.getlength(p) for p in pieces]
    pad = 4 + st.size // 2
    w = int(sum(widths) + st.spacing * max(len(pieces) - 1, 0) + 2 * pad)
    h = int(st.size * 1.7 + 2 * pad)
    img = Image.new("L", (max(w, 4), max(h, 4)), 0)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1" if st.aliased else "L"
    x = float(pad)
    for piece, pw in zip(pieces, widths, strict=True):
        draw.text((x, pad), piece, font=font, fill=255)
        x += pw + st.spacing
    box = img.getbbox()
    if box is None:
        return np.zeros((1, 1), np.float32)
    img = img.crop((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    if st.angle:
        resample = Image.Resampling.NEAREST if st.aliased else Image.Resampling.BICUBIC
        img = img.rotate(st.angle, resample=resample, expand=True)
    return np.asarray(img, np.float32) / 255.0


# ------------------------------------------------------------------------------------------ identity

GIVEN = ["Jane", "Marek", "Ingrid", "Tobias", "Amara", "Kwame", "Lucia", "Henrik", "Priya", "Oskar",
         "Mireille", "Dmitri", "Saoirse", "Rafael", "Yuki", "Beatrix", "Emeka", "Olga", "Tadeo", "Wren"]
FAMILY = ["Doe", "Kowalczyk", "Lindqvist", "Abernathy", "Okonkwo", "Ferreira", "Haldane", "Szabo",
          "Van der Berg", "Nakamura", "O'Donnell", "Castellanos", "Thorsen", "Mbeki", "Quintero",
          "Ashworth", "Petrosyan", "Delacroix", "Brannigan", "Yilmaz"]
INSTITUTIONS = ["St. Hedwig Regional Hospital", "NORTHFIELD MEDICAL CTR", "Lakeside Imaging Center",
                "Mercy Valley Clinic", "CLINICA SAN ROQUE", "Harborview Diagnostic", "Elmwood General",
                "KREISKLINIK AUENTAL", "Riverside Children's", "Summit Radiology Group"]
NEGATIVES = ["L", "R", "AP", "PA", "PORTABLE", "SUPINE", "ERECT", "kVp 80", "mAs 2.5", "Gain 55",
             "Depth 14 cm", "TI 0.7", "MI 1.1", "HR 72", "WL 40 WW 400", "Se 3 Im 45", "5 cm",
             "FR 28Hz", "C5-1", "THI", "DFOV 36.0cm", "0.625mm", "ST 5.0", "TR 450 TE 12", "120 kV",
             "SAG T2", "AX T1 FS", "Zoom 1.4", "3.2 cm", "Lat", "W 350 L 50", "P 90dB"]


@dataclass(frozen=True)
class Identity:
    given: str
    family: str
    middle: str
    patient_id: str
    birth: dt.date
    study: dt.date
    accession: str
    institution: str
    referrer: tuple[str, str]
    other_doctor: tuple[str, str]
    second_name: tuple[str, str]


def _date(rng: np.random.Generator, y0: int, y1: int) -> dt.date:
    return dt.date(int(rng.integers(y0, y1)), 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))


def invent_identity(rng: np.random.Generator) -> Identity:
    """A fresh invented patient identity."""
    def pick(seq: list[str]) -> str:
        return str(seq[int(rng.integers(len(seq)))])
    pid_kind = int(rng.integers(4))
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, 10))
    patient_id = [digits[:8], "A" + digits[:7], f"{digits[:3]}-{digits[3:5]}-{digits[5:9]}",
                  "MRN" + digits[:9]][pid_kind]
    study = _date(rng, 2016, 2025)
    acc = [f"{study:%Y%m%d}{digits[6:10]}", f"ACC{digits[2:9]}", f"RA-{digits[1:7]}"][int(rng.integers(3))]
    return Identity(pick(GIVEN), pick(FAMILY), chr(65 + int(rng.integers(26))), patient_id,
                    _date(rng, 1932, 2014), study, acc, pick(INSTITUTIONS),
                    (pick(GIVEN), pick(FAMILY)), (pick(GIVEN), pick(FAMILY)), (pick(GIVEN), pick(FAMILY)))


def name_text(given: str, family: str, middle: str, rng: np.random.Generator) -> str:
    """The name in one of the formats devices print."""
    forms = [f"{family.upper()}^{given.upper()}", f"{family}, {given}", f"{given.upper()} {family.upper()}",
             f"{given[0]}. {family}", f"{family.upper()}, {given.upper()} {middle}",
             f"{given} {middle}. {family}", f"{family.upper()} {given.upper()}",
             f"{family.upper()}^{given.upper()}^{middle}"]
    return forms[int(rng.integers(len(forms)))]


def date_text(d: dt.date, rng: np.random.Generator) -> str:
    forms = ["%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%d-%b-%Y", "%Y%m%d", "%b %d %Y", "%d %b %Y", "%d/%m/%y"]
    text = d.strftime(forms[int(rng.integers(len(forms)))])
    return text.upper() if rng.random() < 0.4 else text


# ------------------------------------------------------------------------------------------- builder


@dataclass
class Token:
    text: str
    kind: str  # name | id | date | institution | other | negative | label
    in_header: bool
    size: int
    x0: int
    y0: int
    patch: Array  # bool mask (h, w)
    dark: bool = False

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.patch.shape[1], self.y0 + self.patch.shape[0]


@dataclass
class Op:
    x0: int
    y0: int
    alpha: Array  # (h, w) float
    colour: tuple[int, int, int]


@dataclass
class Seg:
    text: str
    kind: str
    in_header: bool = True


@dataclass
class Case:
    scene: str
    fmt: str  # dicom | png | jpeg
    frames: list[Array]  # display frames (H, W, 3) float32 0..255
    grey: bool
    header: Dataset | None = None
    modality_hint: str = ""
    mono1: bool = False
    bits: int = 8
    jpeg_quality: int = 90
    burned_flag: bool = False
    post: Callable[[Array], Array] | None = None
    mask_grow: int = 0
    dropped: int = 0
    ops: list[Op] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def h(self) -> int:
        return int(self.frames[0].shape[0])

    @property
    def w(self) -> int:
        return int(self.frames[0].shape[1])


def composite(frame: Array, ops: list[Op]) -> Array:
    out = frame.copy()
    H, W = out.shape[:2]
    for op in ops:
        h, w = op.alpha.shape
        x0, y0 = max(op.x0, 0), max(op.y0, 0)
        x1, y1 = min(op.x0 + w, W), min(op.y0 + h, H)
        if x1 <= x0 or y1 <= y0:
            continue
        a = op.alpha[y0 - op.y0:y1 - op.y0, x0 - op.x0:x1 - op.x0, None]
        region = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = region * (1 - a) + np.asarray(op.colour, np.float32) * a
    return out


class Painter:
    """Draws tokens, boxes and marks into a case, keeping each glyph mask."""

    def __init__(self, case: Case, rng: np.random.Generator) -> None:
        self.case = case
        self.rng = rng
        self.preview = case.frames[0].copy()

    def _add(self, op: Op) -> None:
        self.case.ops.append(op)
        self.preview = composite(self.preview, [op])

    def box(self, x0: int, y0: int, x1: int, y1: int, colour: tuple[int, int, int], opacity: float) -> None:
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.case.w), min(y1, self.case.h)
        if x1 <= x0 or y1 <= y0:
            return
        self._add(Op(x0, y0, np.full((y1 - y0, x1 - x0), opacity, np.float32), colour))
        self.case.boxes.append((x0, y0, x1, y1))

    def measure(self, text: str, st: Style) -> tuple[int, int]:
        a = text_alpha(text, st)
        return int(a.shape[1]), int(a.shape[0])

    def token(self, seg: Seg, x: int, y: int, st: Style) -> Token | None:
        """Draw one token with its top-left at (x, y); None when it would not fit."""
        a = text_alpha(seg.text, st) * st.opacity
        h, w = a.shape
        if x < 0 or y < 0 or x + w > self.case.w or y + h > self.case.h or a.max() <= 0:
            self.case.dropped += 1
            return None
        under = self.preview[y:y + h, x:x + w].mean(axis=2)
        lum0 = 0.299 * st.colour[0] + 0.587 * st.colour[1] + 0.114 * st.colour[2]
        bg0 = float(np.median(under[a < 0.1])) if (a < 0.1).any() else 0.0
        if not st.keep_colour and abs(lum0 - bg0) < 60:
            st = Style(**{**st.__dict__, "colour": (20, 20, 20) if bg0 > 128 else (240, 240, 240)})
        cover = a
        if st.outline or st.shadow:
            base = Image.fromarray((a * 255).astype(np.uint8))
            pad = 2
            big = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
            big.paste(base, (pad, pad))
            if st.outline:
                halo = np.asarray(big.filter(ImageFilter.MaxFilter(3)), np.float32) / 255
            else:
                halo = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
                halo[pad + 2:, pad + 2:] = np.asarray(big, np.float32)[pad:-2, pad:-2] / 255
            dark = tuple(int(c * 0.1) for c in st.colour)
            self._add(Op(x - pad, y - pad, halo, dark))  # type: ignore[arg-type]
            cover = np.maximum(halo[pad:-pad, pad:-pad], a)
            x, y, a_full = x - pad, y - pad, np.zeros_like(halo)
            a_full[pad:-pad, pad:-pad] = a
            cover = np.maximum(halo, a_full)
            a = a_full
        surround = self.preview[max(y, 0):y + a.shape[0], max(x, 0):x + a.shape[1]].mean(axis=2)
        light = cover[: surround.shape[0], : surround.shape[1]] < 0.1
        bg = float(np.median(surround[light])) if light.any() else 0.0
        self._add(Op(x, y, a, st.colour))
        lum = 0.299 * st.colour[0] + 0.587 * st.colour[1] + 0.114 * st.colour[2]
        tok = Token(seg.text, seg.kind, seg.in_header, st.size, x, y, cover > 0.3, dark=lum < bg - 20)
        self.case.tokens.append(tok)
        self.case.boxes.append(tok.box)
        return tok

    def line(self, segs: list[Seg], x: int, y: int, st: Style, right: bool = False) -> int:
        """Draw segments left to right on one line (right-aligned at x when right); returns its height."""
        gap = max(3, int(st.size * 0.45))
        sizes = [self.measure(s.text, st) for s in segs]
        total = sum(w for w, _ in sizes) + gap * (len(segs) - 1)
        cx = x - total if right else x
        height = max((h for _, h in sizes), default=0)
        slope = math.tan(math.radians(st.angle))
        for seg, (w, h) in zip(segs, sizes, strict=True):
            dy = int(-slope * (cx - x + w / 2)) if st.angle else 0
            self.token(seg, cx, y + dy + (height - h) // 2, st)
            cx += w + gap
        return height

    def block(self, lines: list[list[Seg]], corner: str, st: Style, margin: int = 6,
              lead: float = 1.35) -> None:
        """Stack lines in a corner: tl, tr, bl, br, or 'c' (centre)."""
        step = int(st.size * lead) + 2
        n = len(lines)
        if corner == "c":
            y = self.case.h // 2 - n * step // 2
        else:
            y = margin if corner[0] == "t" else self.case.h - margin - n * step
        for segs in lines:
            if corner == "c":
                w = sum(self.measure(s.text, st)[0] for s in segs) + 8 * len(segs)
                self.line(segs, max(self.case.w // 2 - w // 2, 2), y, st)
            elif corner[1] == "r":
                self.line(segs, self.case.w - margin, y, st, right=True)
            else:
                self.line(segs, margin, y, st)
            y += step

    def arrow(self, x: int, y: int, length: int, colour: tuple[int, int, int]) -> None:
        img = Image.new("L", (length + 4, length // 2 + 4), 0)
        d = ImageDraw.Draw(img)
        mid = img.height // 2
        d.line([(2, mid), (length - length // 4, mid)], fill=255, width=max(2, length // 12))
        d.polygon([(length + 2, mid), (length - length // 3, 2), (length - length // 3, img.height - 2)],
                  fill=255)
        a = np.asarray(img, np.float32) / 255
        if x + a.shape[1] > self.case.w or y + a.shape[0] > self.case.h:
            return
        self._add(Op(x, y, a, colour))
        tok = Token("arrow", "negative", False, length, x, y, a > 0.3)
        self.case.tokens.append(tok)
        self.case.boxes.append(tok.box)

    def scale_bar(self, x: int, y: int, length: int, st: Style) -> None:
        img = Image.new("L", (6, length), 0)
        d = ImageDraw.Draw(img)
        d.line([(1, 0), (1, length)], fill=255, width=1)
        for t in range(0, length, max(length // 10, 4)):
            d.line([(1, t), (5 if t % max(length // 2, 1) == 0 else 3, t)], fill=255)
        a = np.asarray(img, np.float32) / 255
        if y + length > self.case.h or x + 6 > self.case.w:
            return
        self._add(Op(x, y, a, st.colour))
        tok = Token("scale bar", "negative", False, length, x, y, a > 0.3)
        self.case.tokens.append(tok)
        self.case.boxes.append(tok.box)
        self.token(Seg("5 cm", "negative", False), x + 8, y + length - st.size - 4, st)


# ------------------------------------------------------------------------------------------- sources


def _to_display(arr: Array, mono1: bool) -> Array:
    a = arr.astype(np.float32)
    if a.ndim == 2:
        lo, hi = np.percentile(a, [1.0, 99.6])
        a = np.clip((a - lo) / max(hi - lo, 1.0), 0, 1) * 255
        if mono1:
            a = 255 - a
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.max() > 255:  # 16-bit palette entries
        a = a / a.max() * 255
    return a


def clear_margins(frames: list[Array]) -> list[Array]:
    """Black out a real ultrasound frame's own burned-in text (it sits outside the central sector)."""
    out = []
    for f in frames:
        g = np.zeros_like(f)
        h, w = f.shape[:2]
        y0, y1, x0, x1 = int(0.08 * h), int(0.78 * h), int(0.22 * w), int(0.86 * w)
        g[y0:y1, x0:x1] = f[y0:y1, x0:x1]
        out.append(g)
    return out


def _resize(a: Array, w: int, h: int) -> Array:
    chans = [np.asarray(Image.fromarray(a[..., c].astype(np.float32), "F").resize((w, h),
                        Image.Resampling.BILINEAR)) for c in range(a.shape[2])]
    return np.stack(chans, axis=2).astype(np.float32)


def dicom_source(rel: str, max_side: int | None = None) -> tuple[Dataset, list[Array]]:
    """Header and display frames of a real DICOM file."""
    ds = pydicom.dcmread(DICOM_DIR / rel)
    arr = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        arr = pydicom.pixels.apply_color_lut(arr, ds)
    multi = int(ds.get("NumberOfFrames", 1) or 1) > 1
    raw = list(arr) if multi else [arr]
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    frames = [_to_display(f, mono1) for f in raw]
    if max_side and max(frames[0].shape[:2]) > max_side:
        k = max_side / max(frames[0].shape[:2])
        frames = [_resize(f, int(f.shape[1] * k), int(f.shape[0] * k)) for f in frames]
    return ds, frames


def vqa_source(rng: np.random.Generator, max_side: int) -> Array:
    files = sorted(VQA_DIR.glob("*.jpg"))
    img = Image.open(files[int(rng.integers(len(files)))]).convert("RGB")
    # MedPix pictures carry a logo at the top and an uploader line at the bottom: cut both off
    img = img.crop((0, int(img.height * 0.05), img.width, int(img.height * 0.93)))
    k = min(1.0, max_side / max(img.size))
    if img.width * k < 300 or img.height * k < 300:
        k = max(300 / img.width, 300 / img.height)
    img = img.resize((int(img.width * k), int(img.height * k)), Image.Resampling.BILINEAR)
    return np.asarray(img, np.float32)


# ------------------------------------------------------------------------------------------- content


def _pick(rng: np.random.Generator, seq: list) -> object:  # type: ignore[type-arg]
    return seq[int(rng.integers(len(seq)))]


def negs(rng: np.random.Generator, n: int, pool: list[str] | None = None) -> list[Seg]:
    pool = pool or NEGATIVES
    idx = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
    return [Seg(pool[int(i)], "negative", False) for i in idx]


def name_seg(idn: Identity, rng: np.random.Generator) -> Seg:
    return Seg(name_text(idn.given, idn.family, idn.middle, rng), "name")


def phi_lines(idn: Identity, rng: np.random.Generator, labels: bool = True) -> list[list[Seg]]:
    """Identifier lines for a corner: name, ID, birth date, study date, accession, institution."""
    def lab(t: str) -> list[Seg]:
        return [Seg(t, "label", False)] if labels and rng.random() < 0.7 else []
    lines = [[name_seg(idn, rng)],
             lab(_pick(rng, ["ID:", "MRN", "PID", "Pat ID:"])) + [Seg(idn.patient_id, "id")],
             lab(_pick(rng, ["DOB:", "Born", "D.O.B."])) + [Seg(date_text(idn.birth, rng), "date")],
             [Seg(date_text(idn.study, rng), "date"), Seg(f"{int(rng.integers(7, 19)):02d}:"
                                                          f"{int(rng.integers(60)):02d}", "label", False)]]
    if rng.random() < 0.6:
        lines.append(lab(_pick(rng, ["Acc:", "ACC#", "Accession"])) + [Seg(idn.accession, "id")])
    if rng.random() < 0.7:
        lines.insert(0, [Seg(idn.institution, "institution")])
    if rng.random() < 0.35:
        g, f = idn.referrer if rng.random() < 0.5 else idn.other_doctor
        in_hdr = (g, f) == idn.referrer
        lines.append([Seg(_pick(rng, ["Ref:", "Dr.", "Tech:"]), "label", False),
                      Seg(f"{g[0]}. {f}" if rng.random() < 0.5 else f"{f.upper()}^{g.upper()}", "other", in_hdr)])
    if rng.random() < 0.2:
        g, f = idn.second_name
        lines.append([Seg("Prior:", "label", False), Seg(f"{f.upper()}, {g.upper()}", "name", False)])
    return [ln for ln in lines if ln]


def size_in(rng: np.random.Generator, lo: int, hi: int, case: Case) -> int:
    cap = max(lo, min(hi, case.h // 14))
    return int(rng.integers(lo, cap + 1))


# --------------------------------------------------------------------------------------------- scenes

BRIGHT = [(255, 255, 255), (235, 235, 235), (255, 255, 0), (0, 255, 0), (0, 255, 255), (255, 200, 0)]


def _dicom_case(scene: str, rel: str, rng: np.random.Generator, max_side: int | None = None,
                bits: int = 12) -> Case:
    ds, frames = dicom_source(rel, max_side)
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    grey = frames[0].ndim == 3 and bool(np.allclose(frames[0][..., 0], frames[0][..., 1]))
    return Case(scene, "dicom", frames, grey, header=ds, mono1=mono1, bits=8 if not grey else bits,
                burned_flag=bool(rng.random() < 0.5))


def _upload_case(scene: str, rng: np.random.Generator, max_side: int, fmt: str | None = None) -> Case:
    frame = vqa_source(rng, max_side)
    f = fmt or str(_pick(rng, ["png", "jpeg"]))
    return Case(scene, f, [frame], False, jpeg_quality=int(rng.integers(60, 96)))


def _sc_header() -> Dataset:
    return pydicom.dcmread(DICOM_DIR / "pydicom_data" / "SC_rgb_2frame.dcm")


def scene_ct_console(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("ct_console", "pydicom_data/693_UNCI.dcm", rng)
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["mono", "bitmap", "katex_type"])), size=size_in(rng, 9, 14, c),
               aliased=bool(rng.random() < 0.6))
    lines = phi_lines(idn, rng)
    p.block(lines[:4], "tl", st)
    p.block(lines[4:] + [[s] for s in negs(rng, 2, ["DFOV 36.0cm", "120 kV", "0.625mm", "ST 5.0"])], "tr", st)
    p.block([[s] for s in negs(rng, 2, ["kVp 80", "mAs 2.5", "WL 40 WW 400", "W 350 L 50"])], "bl", st)
    p.block([[Seg("Se 3 Im 45", "negative", False)], [Seg("R", "negative", False)]], "br", st)
    return c


def scene_mr_grey_small(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("mr_grey_small", str(_pick(rng, ["dcm_qa_ts/1.dcm",
                    "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm"])), rng)
    p = Painter(c, rng)
    g = int(rng.integers(150, 215))
    st = Style(font=str(_pick(rng, ["sans", "cond", "aileron"])), size=int(rng.integers(8, 12)), colour=(g, g, g))
    lines = phi_lines(idn, rng)
    p.block(lines, "tl", st, margin=4)
    p.block([[s] for s in negs(rng, 3, ["TR 450 TE 12", "SAG T2", "AX T1 FS", "Se 3 Im 45", "Zoom 1.4"])], "br", st)
    return c


def scene_cr_portable(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("cr_portable", "pydicom_data/RG1_UNCI.dcm", rng, max_side=int(rng.integers(1000, 1400)))
    p = Painter(c, rng)
    st = Style(font="sans_bold", size=size_in(rng, 16, 26, c))
    lines = phi_lines(idn, rng, labels=False)[:4]
    ws = [sum(p.measure(s.text, st)[0] + 10 for s in ln) for ln in lines]
    x0 = c.w - max(ws) - 30
    p.box(x0 - 8, 10, c.w - 10, 20 + len(lines) * int(st.size * 1.4) + 12, (0, 0, 0), 1.0)
    p.block(lines, "tr", st, margin=24)
    big = Style(font="sans_bold", size=size_in(rng, 28, 40, c))
    p.block([[s] for s in negs(rng, 2, ["PORTABLE", "SUPINE", "ERECT", "AP"])], "bl", big, margin=30)
    p.token(Seg(str(_pick(rng, ["L", "R"])), "negative", False), 40, c.h // 3, Style("sans_bold", 40, outline=True))
    return c


def scene_cr_film_label(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("cr_film_label", str(_pick(rng, ["pydicom_data/RG1_UNCI.dcm", "pydicom_data/RG3_J2KR.dcm"])),
                    rng, max_side=int(rng.integers(900, 1300)))
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["serif", "sans", "katex_main"])), size=size_in(rng, 12, 20, c),
               colour=(int(rng.integers(0, 40)),) * 3)  # type: ignore[arg-type]
    lines = phi_lines(idn, rng)
    step = int(st.size * 1.35) + 2
    bw = max(sum(p.measure(s.text, st)[0] + 9 for s in ln) for ln in lines) + 20
    by = c.h - len(lines) * step - 30
    bx = int(rng.integers(10, max(11, c.w - bw - 10)))
    p.box(bx, by, bx + bw, c.h - 10, (245, 245, 240), 1.0)
    y = by + 8
    for ln in lines:
        p.line(ln, bx + 8, y, st)
        y += step
    p.token(Seg("R", "negative", False), c.w - 80, 40, Style("sans_bold", 36, colour=(250, 250, 250)))
    return c


def _us_base(rng: np.random.Generator, scene: str, cine: bool) -> Case:
    rel = str(_pick(rng, ["pydicom_data/US1_J2KR.dcm", "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm"]))
    c = _dicom_case(scene, rel, rng, max_side=800)
    c.grey, c.bits = False, 8
    c.frames = clear_margins(c.frames)
    if cine:
        n = int(rng.integers(4, 9))
        base = c.frames[0]
        out = []
        for k in range(n):
            shifted = np.roll(base, shift=(k * 2, k), axis=(0, 1))
            out.append(np.clip(shifted + rng.normal(0, 4, base.shape[:2])[..., None], 0, 255).astype(np.float32))
        c.frames = out
    return c


def scene_us_header(rng: np.random.Generator, idn: Identity) -> Case:
    c = _us_base(rng, "us_header", cine=False)
    p = Painter(c, rng)
    col = BRIGHT[int(rng.integers(len(BRIGHT)))]
    st = Style(font=str(_pick(rng, ["sans", "cond", "aileron"])), size=size_in(rng, 10, 16, c), colour=col)
    lines = phi_lines(idn, rng)
    p.line(lines[0] + lines[1], 6, 4, st)
    p.line([s for ln in lines[2:4] for s in ln], 6, 6 + int(st.size * 1.5), st)
    p.block(lines[4:], "tr", st)
    p.block([[s] for s in negs(rng, 4, ["Gain 55", "Depth 14 cm", "MI 1.1", "TI 0.7", "FR 28Hz", "C5-1", "THI",
                                        "P 90dB"])], "bl", st)
    p.scale_bar(c.w - 40, c.h // 4, c.h // 3, st)
    return c


def scene_us_cine(rng: np.random.Generator, idn: Identity) -> Case:
    c = _us_base(rng, "us_cine", cine=True)
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "mono"])), size=size_in(rng, 9, 14, c),
               colour=BRIGHT[int(rng.integers(len(BRIGHT)))])
    lines = phi_lines(idn, rng)
    p.block(lines[:3], "tl", st)
    p.block(lines[3:], "tr", st)
    p.block([[s] for s in negs(rng, 3, ["Gain 55", "Depth 14 cm", "MI 1.1", "TI 0.7", "HR 72"])], "br", st)
    return c


def scene_us_palette_cine(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("us_palette_cine", "pydicom_data/OBXXXX1A_rle_2frame.dcm", rng)
    c.grey, c.bits = False, 8
    c.frames = clear_margins([c.frames[k % 2] for k in range(int(rng.integers(3, 7)))])
    p = Painter(c, rng)
    st = Style(font="sans_bold", size=size_in(rng, 11, 18, c), colour=(255, 255, 255), shadow=True)
    lines = phi_lines(idn, rng)
    p.block(lines, "tl", st)
    p.block([[s] for s in negs(rng, 2, ["HR 72", "MI 1.1", "TI 0.7", "Gain 55"])], "br", st)
    p.arrow(c.w // 2, c.h // 2, 40, (255, 255, 0))
    return c


def scene_mr_cine(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("mr_cine", "pydicom_data/emri_small.dcm", rng)
    c.frames = [_resize(f, 320, 320) for f in c.frames[: int(rng.integers(4, 11))]]
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["mono", "cond"])), size=int(rng.integers(8, 12)), aliased=bool(rng.random() < 0.5))
    lines = phi_lines(idn, rng, labels=False)
    p.block(lines[:3], "tl", st, margin=3)
    p.block(lines[3:], "bl", st, margin=3)
    p.block([[Seg("HR 72", "negative", False)], [Seg("SAG T2", "negative", False)]], "tr", st, margin=3)
    return c


def scene_nm_strip(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("nm_strip", "pydicom_data/JPEG-LL.dcm", rng)
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["cond", "sans", "aileron"])), size=int(rng.integers(8, 11)))
    lines = phi_lines(idn, rng, labels=False)
    p.block(lines[:4], "tl", st, margin=3)
    p.block(lines[4:] + [[Seg("ANT", "negative", False)]], "bl", st, margin=3)
    return c


def scene_over_anatomy(rng: np.random.Generator, idn: Identity) -> Case:
    if rng.random() < 0.5:
        c = _dicom_case("over_anatomy", "pydicom_data/693_UNCI.dcm", rng)
    else:
        c = _upload_case("over_anatomy", rng, 900)
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans_bold", "cond_bold"])), size=size_in(rng, 14, 30, c), outline=True)
    lines = phi_lines(idn, rng, labels=False)[:3]
    p.block(lines, "c", st)
    p.block([[s] for s in negs(rng, 2, ["L", "R", "AP", "Lat"])], "bl", Style("sans_bold", 24, outline=True))
    return c


def scene_shadow_mid(rng: np.random.Generator, idn: Identity) -> Case:
    c = _upload_case("shadow_mid", rng, 900)
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "serif", "katex_sans"])), size=size_in(rng, 12, 24, c), shadow=True,
               colour=BRIGHT[int(rng.integers(len(BRIGHT)))])
    lines = phi_lines(idn, rng)
    x = int(rng.integers(c.w // 5, c.w // 3))
    y = int(rng.integers(c.h // 4, c.h // 2))
    for ln in lines[:3]:
        p.line(ln, x, y, st)
        y += int(st.size * 1.5)
    p.block(lines[3:], "br", st)
    p.block([[s] for s in negs(rng, 2)], "tl", st)
    return c


def scene_boxed_overlay(rng: np.random.Generator, idn: Identity) -> Case:
    c = _upload_case("boxed_overlay", rng, 900)
    c.fmt, c.header = "dicom", _sc_header()
    c.burned_flag = bool(rng.random() < 0.5)
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "cond", "mono"])), size=size_in(rng, 11, 20, c),
               colour=BRIGHT[int(rng.integers(len(BRIGHT)))])
    lines = phi_lines(idn, rng)
    for chunk, corner in ((lines[:3], "tl"), (lines[3:], "br")):
        if not chunk:
            continue
        step = int(st.size * 1.35) + 2
        bw = max(sum(p.measure(s.text, st)[0] + 9 for s in ln) for ln in chunk) + 16
        bh = len(chunk) * step + 12
        x0 = 10 if corner == "tl" else c.w - bw - 10
        y0 = int(rng.integers(10, c.h // 3)) if corner == "tl" else c.h - bh - 10
        p.box(x0, y0, x0 + bw, y0 + bh, (10, 10, 20), float(rng.uniform(0.55, 0.85)))
        y = y0 + 6
        for ln in chunk:
            p.line(ln, x0 + 8, y, st)
            y += step
    p.block([[s] for s in negs(rng, 2)], "bl", st)
    return c


def scene_low_contrast(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("low_contrast", "dcm_qa_ts/1.dcm", rng) if rng.random() < 0.5 else \
        _upload_case("low_contrast", rng, 800, "png")
    p = Painter(c, rng)
    corner = str(_pick(rng, ["tl", "bl", "tr"]))
    region = c.frames[0][: c.h // 5, : c.w // 3] if corner[0] == "t" else c.frames[0][-c.h // 5:, : c.w // 3]
    g = int(min(255, float(np.median(region)) + rng.integers(45, 75)))
    st = Style(font=str(_pick(rng, ["sans", "sans_light", "cond"])), size=size_in(rng, 10, 18, c), colour=(g, g, g),
               keep_colour=True)
    p.block(phi_lines(idn, rng), corner, st)
    p.block([[s] for s in negs(rng, 2)], "br", st)
    return c


def scene_letter_spaced(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("letter_spaced", str(_pick(rng, ["pydicom_data/693_UNCI.dcm", "dcm_qa_ts/1.dcm"])), rng)
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["mono", "sans", "bitmap"])), size=int(rng.integers(10, 15)),
               spacing=int(rng.integers(2, 6)), aliased=bool(rng.random() < 0.5))
    lines = phi_lines(idn, rng, labels=False)
    p.block(lines[:3], "tl", st)
    p.block(lines[3:5], "bl", st)
    p.block([[s] for s in negs(rng, 2, ["Se 3 Im 45", "WL 40 WW 400", "R", "L"])], "tr", st)
    return c


def scene_tiny_text(rng: np.random.Generator, idn: Identity) -> Case:
    if rng.random() < 0.5:
        c = _dicom_case("tiny_text", "pydicom_data/693_UNCI.dcm", rng)
    else:
        c = _upload_case("tiny_text", rng, 700, "png")
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["mono", "sans", "cond"])), size=int(rng.integers(7, 10)), aliased=True,
               colour=(230, 230, 230))
    lines = phi_lines(idn, rng, labels=False)
    p.line([s for ln in lines[:3] for s in ln], 3, c.h - 14, st)
    p.line([s for ln in lines[3:] for s in ln] + negs(rng, 1), 3, 3, st)
    p.block([[s] for s in negs(rng, 2)], "br", st, margin=3)
    return c


def scene_big_bold(rng: np.random.Generator, idn: Identity) -> Case:
    c = _upload_case("big_bold", rng, 1100, "jpeg")
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans_bold", "cond_bold", "mono_bold"])), size=size_in(rng, 26, 40, c),
               colour=BRIGHT[int(rng.integers(len(BRIGHT)))])
    lines = phi_lines(idn, rng, labels=False)
    p.block(lines[:2], "tl", st, margin=8)
    p.block(lines[2:3], "bl", st, margin=8)
    p.token(Seg(str(_pick(rng, ["R", "L"])), "negative", False), c.w - 60, c.h // 2, st)
    return c


def scene_vertical_edge(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("vertical_edge", "pydicom_data/RG3_J2KR.dcm", rng, max_side=int(rng.integers(900, 1200)))
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "cond"])), size=size_in(rng, 12, 20, c), angle=90.0)
    lines = phi_lines(idn, rng)
    x = 8
    for ln in lines[:3]:
        text_segs = ln
        y = c.h - 20
        for s in text_segs:
            w, h = p.measure(s.text, st)
            y -= h
            p.token(s, x, y, st)
            y -= 8
        x += int(st.size * 1.5)
    flat = Style(font=st.font, size=st.size)
    p.block(lines[3:], "tr", flat)
    p.block([[s] for s in negs(rng, 2, ["PA", "ERECT", "L", "R"])], "br", flat)
    return c


def scene_rotated_lines(rng: np.random.Generator, idn: Identity) -> Case:
    c = _upload_case("rotated_lines", rng, 900)
    p = Painter(c, rng)
    ang = float(rng.uniform(1, 4)) * (1 if rng.random() < 0.5 else -1)
    st = Style(font=str(_pick(rng, ["sans", "serif", "katex_main", "oblique"])), size=size_in(rng, 12, 22, c),
               angle=ang)
    lines = phi_lines(idn, rng)
    y = 20
    for ln in lines:
        p.line(ln, 20, y, st)
        y += int(st.size * 1.6) + 4
    p.block([[s] for s in negs(rng, 2)], "br", Style(st.font, st.size, angle=-ang))
    return c


def _paper(rng: np.random.Generator, w: int, h: int) -> Array:
    base = float(rng.uniform(225, 250))
    page = base + rng.normal(0, 3, (h, w)) + np.linspace(0, rng.uniform(-12, 12), w)[None, :]
    tint = np.array([1.0, 0.99, float(rng.uniform(0.93, 1.0))], np.float32)
    return np.clip(page[..., None] * tint, 0, 255).astype(np.float32)


def scene_scanned_page(rng: np.random.Generator, idn: Identity) -> Case:
    w, h = int(rng.integers(700, 900)), int(rng.integers(900, 1150))
    fmt = str(_pick(rng, ["jpeg", "png", "dicom"]))
    c = Case("scanned_page", fmt, [_paper(rng, w, h)], False, jpeg_quality=int(rng.integers(60, 96)))
    if fmt == "dicom":
        c.header, c.burned_flag = _sc_header(), bool(rng.random() < 0.5)
    p = Painter(c, rng)
    ang = float(rng.uniform(-1.5, 1.5))
    ink = (int(rng.integers(10, 60)),) * 3
    st = Style(font=str(_pick(rng, ["serif", "katex_main", "sans", "mono"])), size=int(rng.integers(13, 20)),
               colour=ink, angle=ang)  # type: ignore[arg-type]
    head = Style("sans_bold", int(rng.integers(18, 26)), colour=ink, angle=ang)  # type: ignore[arg-type]
    p.line([Seg(idn.institution, "institution")], 40, 30, head)
    p.line([Seg("RADIOLOGY REQUISITION", "label", False)], 40, 70, head)
    rows = [[Seg("Patient:", "label", False), name_seg(idn, rng)],
            [Seg("MRN:", "label", False), Seg(idn.patient_id, "id")],
            [Seg("Date of birth:", "label", False), Seg(date_text(idn.birth, rng), "date")],
            [Seg("Exam date:", "label", False), Seg(date_text(idn.study, rng), "date")],
            [Seg("Accession:", "label", False), Seg(idn.accession, "id")],
            [Seg("Referring:", "label", False), Seg(f"Dr. {idn.referrer[0]} {idn.referrer[1]}", "other")],
            [Seg("Exam:", "label", False), Seg("CT CHEST WITHOUT CONTRAST", "label", False)],
            [Seg("Clinical history: cough, rule out pneumonia", "label", False)],
            [Seg("Contact:", "label", False), Seg(f"{idn.second_name[0]} {idn.second_name[1]}", "name", False)],
            [Seg("Position:", "label", False), Seg("SUPINE", "negative", False), Seg("PA", "negative", False)]]
    y = 130
    for row in rows:
        p.line(row, 50, y, st)
        y += int(st.size * 2.0)
    sig = Style("serif_italic", int(rng.integers(16, 24)), colour=(20, 30, 90), angle=ang)
    p.line([Seg(f"{idn.other_doctor[0][0]}. {idn.other_doctor[1]}", "other", False)], w // 2, y + 30, sig)
    return c


def scene_photo_monitor(rng: np.random.Generator, idn: Identity) -> Case:
    c = _upload_case("photo_monitor", rng, 900, "jpeg")
    c.jpeg_quality = int(rng.integers(60, 80))
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "cond"])), size=size_in(rng, 12, 22, c),
               colour=BRIGHT[int(rng.integers(len(BRIGHT)))])
    lines = phi_lines(idn, rng)
    p.block(lines[:3], "tl", st, margin=14)
    p.block(lines[3:], "tr", st, margin=14)
    p.block([[s] for s in negs(rng, 2)], "bl", st, margin=14)
    blur = float(rng.uniform(0.6, 1.4))
    gamma = float(rng.uniform(0.8, 1.2))
    seed = int(rng.integers(1 << 30))

    def post(img: Array) -> Array:
        local = np.random.default_rng(seed)
        out = np.stack([np.asarray(Image.fromarray(img[..., k].astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(blur)), np.float32) for k in range(3)], axis=2)
        yy, xx = np.mgrid[0: img.shape[0], 0: img.shape[1]]
        moire = 6 * np.sin(xx * 0.9 + yy * 0.35)[..., None]
        out = 255 * (np.clip(out, 0, 255) / 255) ** gamma + moire + local.normal(0, 5, out.shape) + 14
        return np.clip(out, 0, 255).astype(np.float32)

    c.post, c.mask_grow = post, 2
    return c


def scene_pacs_screenshot(rng: np.random.Generator, idn: Identity) -> Case:
    W, H = int(rng.integers(1000, 1280)), int(rng.integers(700, 860))
    canvas = np.full((H, W, 3), (38, 40, 46), np.float32)
    n = int(_pick(rng, [2, 3, 4]))
    cols = 2 if n > 2 else n
    rws = 2 if n > 2 else 1
    top = 44
    pw, ph = (W - 10) // cols, (H - top - 10) // rws
    panels = []
    for k in range(n):
        img = vqa_source(rng, max(pw, ph))
        img = _resize(img, pw - 6, ph - 6)
        x0, y0 = 5 + (k % cols) * pw, top + (k // cols) * ph
        canvas[y0 + 3:y0 + ph - 3, x0 + 3:x0 + pw - 3] = img
        panels.append((x0 + 3, y0 + 3))
    c = Case("pacs_screenshot", "png", [canvas], False)
    p = Painter(c, rng)
    bar = Style("sans", int(rng.integers(12, 17)), colour=(220, 225, 235))
    p.line([name_seg(idn, rng), Seg(idn.patient_id, "id"), Seg(date_text(idn.birth, rng), "date"),
            Seg(idn.institution, "institution")], 10, 12, bar)
    st = Style(font=str(_pick(rng, ["sans", "cond", "aileron"])), size=int(rng.integers(9, 14)),
               colour=BRIGHT[int(rng.integers(len(BRIGHT)))])
    for x0, y0 in panels:
        step = int(st.size * 1.35) + 2
        yy = y0 + 4
        for seg in [name_seg(idn, rng), Seg(date_text(idn.study, rng), "date")] + negs(rng, 1):
            p.line([seg], x0 + 4, yy, st)
            yy += step
        p.line(negs(rng, 1, ["Se 3 Im 45", "WL 40 WW 400", "Zoom 1.4"]), x0 + pw - 10, y0 + ph - 12 - step, st,
               right=True)
    return c


def scene_coloured_measure(rng: np.random.Generator, idn: Identity) -> Case:
    c = _upload_case("coloured_measure", rng, 900, "png")
    grey = c.frames[0].mean(axis=2, keepdims=True)
    c.frames = [np.repeat(grey, 3, axis=2)]
    p = Painter(c, rng)
    col = [(0, 255, 0), (0, 255, 255), (255, 255, 0), (255, 120, 0)][int(rng.integers(4))]
    st = Style(font=str(_pick(rng, ["sans", "cond", "aileron"])), size=size_in(rng, 10, 18, c), colour=col)
    lines = phi_lines(idn, rng)
    p.block(lines[:3], "tr", st)
    p.block(lines[3:], "bl", st)
    p.arrow(int(c.w * 0.4), int(c.h * 0.45), int(rng.integers(30, 60)), col)
    p.token(Seg("3.2 cm", "negative", False), int(c.w * 0.55), int(c.h * 0.6), st)
    p.scale_bar(c.w - 30, c.h // 3, c.h // 4, st)
    return c


def scene_heavy_jpeg(rng: np.random.Generator, idn: Identity) -> Case:
    c = _upload_case("heavy_jpeg", rng, 800, "jpeg")
    c.jpeg_quality = int(rng.integers(60, 68))
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "mono", "aileron"])), size=int(rng.integers(9, 13)),
               colour=(240, 240, 240), aliased=bool(rng.random() < 0.3))
    lines = phi_lines(idn, rng)
    p.block(lines[:3], "bl", st)
    p.block(lines[3:], "tr", st)
    p.block([[s] for s in negs(rng, 2)], "tl", st)
    return c


def scene_dark_margin(rng: np.random.Generator, idn: Identity) -> Case:
    base = vqa_source(rng, 800)
    strip = int(rng.integers(50, 80))
    page = np.full((base.shape[0] + strip, base.shape[1], 3), float(rng.uniform(235, 252)), np.float32)
    page[:base.shape[0]] = base
    fmt = str(_pick(rng, ["png", "jpeg"]))
    c = Case("dark_margin", fmt, [page], False, jpeg_quality=int(rng.integers(70, 96)))
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "serif", "cond"])), size=int(rng.integers(11, 16)),
               colour=(int(rng.integers(0, 50)),) * 3)  # type: ignore[arg-type]
    lines = phi_lines(idn, rng, labels=False)
    flat = [s for ln in lines for s in ln]
    half = (len(flat) + 1) // 2
    p.line(flat[:half], 8, base.shape[0] + 6, st)
    p.line(flat[half:], 8, base.shape[0] + 8 + int(st.size * 1.5), st)
    p.token(Seg(str(_pick(rng, ["L", "R"])), "negative", False), 20, 20, Style("sans_bold", 30, outline=True))
    return c


def scene_serif_mixed(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("serif_mixed", str(_pick(rng, ["dcm_qa_ts/1.dcm", "pydicom_data/693_UNCI.dcm",
                                                   "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm"])), rng)
    p = Painter(c, rng)
    fonts = ["serif", "serif_italic", "katex_main", "katex_sans", "oblique"]
    lines = phi_lines(idn, rng)
    y = 6
    for ln in lines:
        st = Style(font=str(_pick(rng, fonts)), size=int(rng.integers(9, 16)))
        p.line(ln, 6, y, st)
        y += int(st.size * 1.4) + 2
    p.block([[s] for s in negs(rng, 2)], "br", Style("serif", 12))
    return c


def scene_us_grey_cine(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("us_grey_cine", "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm", rng, max_side=700)
    c.bits = 8
    base = clear_margins(c.frames)[0]
    c.frames = [np.clip(np.roll(base, k * 3, axis=0) + rng.normal(0, 3, base.shape[:2])[..., None], 0, 255)
                .astype(np.float32) for k in range(int(rng.integers(3, 7)))]
    p = Painter(c, rng)
    g = int(rng.integers(200, 256))
    st = Style(font=str(_pick(rng, ["sans", "cond", "bitmap"])), size=size_in(rng, 10, 16, c), colour=(g, g, g))
    lines = phi_lines(idn, rng)
    p.block(lines[:4], "tl", st)
    p.block(lines[4:], "tr", st)
    p.block([[s] for s in negs(rng, 3, ["Gain 55", "Depth 14 cm", "MI 1.1", "TI 0.7", "HR 72", "C5-1"])], "br", st)
    return c


def scene_ct_yellow_rgb(rng: np.random.Generator, idn: Identity) -> Case:
    c = _dicom_case("ct_yellow_rgb", "pydicom_data/693_UNCI.dcm", rng)
    c.grey, c.bits = False, 8
    p = Painter(c, rng)
    st = Style(font=str(_pick(rng, ["sans", "mono", "cond"])), size=size_in(rng, 10, 15, c),
               colour=[(255, 255, 0), (0, 255, 0), (255, 160, 0)][int(rng.integers(3))])
    lines = phi_lines(idn, rng)
    p.block(lines[:3], "tl", st)
    p.block(lines[3:], "bl", st)
    p.block([[s] for s in negs(rng, 3, ["WL 40 WW 400", "Se 3 Im 45", "120 kV", "DFOV 36.0cm"])], "tr", st)
    p.arrow(c.w // 2, c.h // 2, 36, st.colour)
    return c


SCENES: dict[str, Callable[[np.random.Generator, Identity], Case]] = {
    "ct_console": scene_ct_console, "mr_grey_small": scene_mr_grey_small, "cr_portable": scene_cr_portable,
    "cr_film_label": scene_cr_film_label, "us_header": scene_us_header, "us_cine": scene_us_cine,
    "us_palette_cine": scene_us_palette_cine, "mr_cine": scene_mr_cine, "nm_strip": scene_nm_strip,
    "over_anatomy": scene_over_anatomy, "shadow_mid": scene_shadow_mid, "boxed_overlay": scene_boxed_overlay,
    "low_contrast": scene_low_contrast, "letter_spaced": scene_letter_spaced, "tiny_text": scene_tiny_text,
    "big_bold": scene_big_bold, "vertical_edge": scene_vertical_edge, "rotated_lines": scene_rotated_lines,
    "scanned_page": scene_scanned_page, "photo_monitor": scene_photo_monitor,
    "pacs_screenshot": scene_pacs_screenshot, "coloured_measure": scene_coloured_measure,
    "heavy_jpeg": scene_heavy_jpeg, "dark_margin": scene_dark_margin, "serif_mixed": scene_serif_mixed,
    "us_grey_cine": scene_us_grey_cine, "ct_yellow_rgb": scene_ct_yellow_rgb,
}

# -------------------------------------------------------------------------------------------- writers

PIXEL_KEYWORDS = ["PixelData", "NumberOfFrames", "PlanarConfiguration", "SmallestImagePixelValue",
                  "LargestImagePixelValue", "VOILUTSequence", "ModalityLUTSequence", "LossyImageCompression",
                  "LossyImageCompressionRatio", "LossyImageCompressionMethod", "RedPaletteColorLookupTableDescriptor",
                  "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor",
                  "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
                  "BluePaletteColorLookupTableData", "FrameIncrementPointer", "FrameTime", "WindowCenter",
                  "WindowWidth", "RescaleSlope", "RescaleIntercept", "RescaleType", "PixelPaddingValue",
                  "WindowCenterWidthExplanation", "VOILUTFunction", "IconImageSequence"]


def write_dicom(path: Path, case: Case, frames: list[Array], idn: Identity, uids: tuple[str, str, str]) -> None:
    """Write frames under the case's real header with the invented identity."""
    assert case.header is not None
    ds = copy.deepcopy(case.header)
    for kw in PIXEL_KEYWORDS:
        if kw in ds:
            del ds[kw]
    for tag in [t for t in ds.keys() if 0x6000 <= t.group <= 0x60FF]:
        del ds[tag]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = case.h, case.w
    ds.PixelRepresentation = 0
    if case.grey:
        stack = np.stack([f[..., 0] for f in frames])  # (F, H, W) display 0..255
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME1" if case.mono1 else "MONOCHROME2"
        if case.mono1:
            stack = 255 - stack
        if case.bits == 8:
            data = np.clip(np.round(stack), 0, 255).astype(np.uint8)
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
            top = 255.0
        else:
            top = float((1 << case.bits) - 1)
            data = np.clip(np.round(stack / 255.0 * top), 0, top).astype(np.uint16)
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, case.bits, case.bits - 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.WindowCenter, ds.WindowWidth = round(top / 2 + 0.5, 1), round(top + 1, 1)
    else:
        data = np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8)  # (F, H, W, 3)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
        if ds.get("Modality") == "US":
            ds.FrameTime = 33.3
            ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.PixelData = data.tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated == 16 else "OB"
    ds.PatientName = f"{idn.family.upper()}^{idn.given.upper()}^{idn.middle}"
    ds.PatientID = idn.patient_id
    ds.PatientBirthDate = idn.birth.strftime("%Y%m%d")
    ds.StudyDate = idn.study.strftime("%Y%m%d")
    ds.InstitutionName = idn.institution
    ds.AccessionNumber = idn.accession
    ds.ReferringPhysicianName = f"{idn.referrer[1].upper()}^{idn.referrer[0].upper()}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = uids
    ds.file_meta.MediaStorageSOPInstanceUID = uids[2]
    if case.burned_flag:
        ds.BurnedInAnnotation = "YES"
    elif "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    ds.save_as(path, enforce_file_format=True)


def finished_frames(case: Case, with_text: bool) -> list[Array]:
    out = []
    for f in case.frames:
        img = composite(f, case.ops) if with_text else f.copy()
        if case.post is not None:
            img = case.post(img)
        out.append(np.clip(img, 0, 255).astype(np.float32))
    return out


def write_case(case: Case, stem: Path, idn: Identity, uid_seed: str) -> tuple[Path, Path]:
    """Write the image and its clean twin; returns their paths."""
    uids = (generate_uid(entropy_srcs=[uid_seed, "st"]), generate_uid(entropy_srcs=[uid_seed, "se"]),
            generate_uid(entropy_srcs=[uid_seed, "sop"]))
    paths = []
    for with_text, suffix in ((True, "img"), (False, "twin")):
        frames = finished_frames(case, with_text)
        if case.fmt == "dicom":
            path = stem.with_name(f"{stem.name}_{suffix}.dcm")
            write_dicom(path, case, frames, idn, uids)
        else:
            img = Image.fromarray(np.clip(np.round(frames[0]), 0, 255).astype(np.uint8), "RGB")
            if case.fmt == "png":
                path = stem.with_name(f"{stem.name}_{suffix}.png")
                img.save(path)
            else:
                path = stem.with_name(f"{stem.name}_{suffix}.jpg")
                img.save(path, quality=case.jpeg_quality)
        paths.append(path)
    return paths[0], paths[1]


# ------------------------------------------------------------------------------------------- ingest


@dataclass
class Ingest:
    ok: bool
    error: str | None
    seconds: float
    frames: dict[int, Array]  # frame number -> (H, W, 3) uint8
    summary: dict  # type: ignore[type-arg]


def run_ingest(path: Path, mode: str, scratch: Path) -> Ingest:
    """One black-box CLI call in fresh data and output folders."""
    data_dir = Path(tempfile.mkdtemp(dir=scratch, prefix=f"data_{mode}_"))
    out_dir = Path(tempfile.mkdtemp(dir=scratch, prefix=f"out_{mode}_"))
    env = dict(os.environ, RADASSIST_DATA_DIR=str(data_dir), RADASSIST_BURNED_IN_TEXT=mode)
    cmd = [str(REPO / ".venv" / "bin" / "radassist"), "ingest", "--json", "--out", str(out_dir), str(path)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return Ingest(False, "timeout", time.perf_counter() - t0, {}, {})
    seconds = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), None)
    if line is None:
        return Ingest(False, f"no JSON (rc {proc.returncode}): {proc.stderr[-300:]}", seconds, {}, {})
    doc = json.loads(line)
    frames: dict[int, Array] = {}
    for f in sorted(out_dir.glob("**/frame*.png")):
        num = int("".join(ch for ch in f.stem if ch.isdigit()) or 0)
        frames[num] = np.asarray(Image.open(f).convert("RGB"))
    return Ingest(bool(doc.get("ok")), doc.get("error"), seconds, frames, doc.get("summary") or {})


# ------------------------------------------------------------------------------------------- scoring


def _resize_mask(mask: Array, shape: tuple[int, int]) -> Array:
    if mask.shape == shape:
        return mask
    img = Image.fromarray(mask.astype(np.float32), "F").resize((shape[1], shape[0]), Image.Resampling.BOX)
    return np.asarray(img) > 0.25


def _full_mask(case: Case, tok: Token, grow: int) -> Array:
    m = np.zeros((case.h, case.w), bool)
    x0, y0, x1, y1 = tok.box
    m[y0:y1, x0:x1] = tok.patch
    if grow:
        m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * grow + 1))) > 0
    return m


def _box_mask(case: Case, box: tuple[int, int, int, int], pad: int) -> Array:
    m = np.zeros((case.h, case.w), bool)
    x0, y0, x1, y1 = box
    m[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad] = True
    return m


def _is_black(img: Array) -> Array:
    return np.asarray((img <= BLACK_LEVEL).all(axis=2))


def score_case(case: Case, img_never: Ingest, twin_never: Ingest, img_always: Ingest) -> tuple[list[dict], dict]:
    """Per-token rows and per-case figures."""
    rows: list[dict] = []  # type: ignore[type-arg]
    frame_ids = sorted(img_never.frames)
    shown: list[int] = []
    withheld = 0
    for k in frame_ids:
        a = img_always.frames.get(k)
        if img_always.ok and (a is None or int(a.max()) <= BLACK_LEVEL):
            withheld += 1
        elif img_always.ok:
            shown.append(k)
    fr: list[float] = []
    excl_canvas = np.zeros((case.h, case.w), bool)
    for b in case.boxes:
        excl_canvas |= _box_mask(case, b, BOX_MARGIN + case.mask_grow)
    for k in shown:
        nev, alw = img_never.frames[k], img_always.frames[k]
        if alw.shape != nev.shape:
            continue
        excl = _resize_mask(excl_canvas, nev.shape[:2])
        area = ~excl & ~_is_black(nev)
        if area.any():
            fr.append(float((_is_black(alw) & area).sum() / area.sum()))
    for tok in case.tokens:
        if tok.kind == "label":
            continue
        mask_c = _full_mask(case, tok, case.mask_grow)
        box_c = _box_mask(case, tok.box, 1)
        shares: list[float] = []
        ink_px = 0
        visible = False
        for k in frame_ids:
            nev, twin = img_never.frames[k], twin_never.frames.get(k)
            if twin is None or twin.shape != nev.shape:
                continue
            mask = _resize_mask(mask_c, nev.shape[:2])
            diff = np.abs(nev.astype(np.int16) - twin.astype(np.int16)).max(axis=2) > INK_DELTA
            ink = mask & diff
            if tok.dark:
                ink = _resize_mask(box_c, nev.shape[:2]) & ~_is_black(nev)
                visible = visible or bool((mask & diff).sum() >= 3)
            else:
                visible = visible or bool(ink.sum() >= 3)
            ink_px = max(ink_px, int(ink.sum()))
            if not img_always.ok:
                shares.append(1.0)
                continue
            alw = img_always.frames.get(k)
            if alw is None or int(alw.max()) <= BLACK_LEVEL:
                shares.append(1.0)
                continue
            if alw.shape != nev.shape or ink.sum() == 0:
                continue
            shares.append(float(_is_black(alw)[ink].mean()))
        black = min(shares) if shares else float("nan")
        worst = max(shares) if shares else float("nan")
        row = {"case": -1, "scene": case.scene, "fmt": case.fmt, "kind": tok.kind, "text": tok.text,
               "size": tok.size, "in_header": tok.in_header, "dark": tok.dark, "ink_px": ink_px,
               "visible": visible and bool(shares), "black_share": black}
        if tok.kind == "negative":
            row["kept"] = bool(worst < KEPT_SHARE) if shares else None
        else:
            row["removed"] = bool(black >= REMOVED_SHARE) if shares else None
        rows.append(row)
    info = {"frames": len(frame_ids), "shown": len(shown), "withheld": withheld, "fr": fr,
            "always_failed": not img_always.ok}
    return rows, info


# ---------------------------------------------------------------------------------------------- cases


def build_case(seed: int, index: int, scene: str) -> tuple[Case, Identity]:
    rng = np.random.default_rng([seed, index])
    idn = invent_identity(rng)
    return SCENES[scene](rng, idn), idn


def scene_order(seed: int, n: int, forced: str | None) -> list[str]:
    if forced:
        return [forced] * n
    names = sorted(SCENES)
    order: list[str] = []
    rng = np.random.default_rng([seed, 999_983])
    while len(order) < n:
        order.extend(names[int(i)] for i in rng.permutation(len(names)))
    return order[:n]


def run_case(seed: int, index: int, scene: str, work: str, build_only: bool) -> dict:  # type: ignore[type-arg]
    """Build, ingest three times and score one case (runs in a worker process)."""
    out: dict = {"case": index, "scene": scene}  # type: ignore[type-arg]
    try:
        case, idn = build_case(seed, index, scene)
        out["fmt"] = case.fmt
        case_dir = Path(work) / f"case{index:03d}_{scene}"
        case_dir.mkdir(parents=True, exist_ok=True)
        img_path, twin_path = write_case(case, case_dir / "case", idn, f"{seed}-{index}")
        out["tokens"] = sum(t.kind not in ("label", "negative") for t in case.tokens)
        out["negatives"] = sum(t.kind == "negative" for t in case.tokens)
        out["dropped"] = case.dropped
        out["size"] = [case.w, case.h, len(case.frames)]
        if build_only:
            Image.fromarray(np.clip(finished_frames(case, True)[0], 0, 255).astype(np.uint8)).save(
                case_dir / "preview.png")
            out["rows"] = []
            return out
        with tempfile.TemporaryDirectory(prefix="hk_") as scratch:
            img_never = run_ingest(img_path, "never", Path(scratch))
            twin_never = run_ingest(twin_path, "never", Path(scratch))
            img_always = run_ingest(img_path, "always", Path(scratch))
        out["t_always"] = img_always.seconds
        out["t_never"] = [img_never.seconds, twin_never.seconds]
        out["burned_in_text"] = img_always.summary.get("burned_in_text")
        out["always_error"] = None if img_always.ok else img_always.error
        if not (img_never.ok and twin_never.ok) or not img_never.frames:
            out["unscorable"] = f"never ingest failed: {img_never.error or twin_never.error or 'no frames'}"
            out["rows"] = []
            return out
        rows, info = score_case(case, img_never, twin_never, img_always)
        for r in rows:
            r["case"] = index
        out.update(info)
        out["rows"] = rows
    except Exception:  # a harness bug: reported apart, never scored
        out["harness_error"] = traceback.format_exc(limit=6)
        out["rows"] = []
    return out


# ---------------------------------------------------------------------------------------------- report


def _band(size: int) -> str:
    for hi, name in ((10, "07-10px"), (15, "11-15px"), (24, "16-24px")):
        if size <= hi:
            return name
    return "25-40px"


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def summarise(results: list[dict]) -> dict:  # type: ignore[type-arg]
    rows = [r for res in results for r in res["rows"]]
    phi = [r for r in rows if r["kind"] != "negative" and r["visible"]]
    neg = [r for r in rows if r["kind"] == "negative" and r["visible"]]

    def rec(sel: list[dict]) -> str:  # type: ignore[type-arg]
        n = len(sel)
        k = sum(bool(r["removed"]) for r in sel)
        return f"{k}/{n} = {k / n:.3f}" if n else "-"

    groups: dict[str, dict[str, str]] = {}
    for label, key in (("kind", lambda r: r["kind"]), ("format", lambda r: r["fmt"]),
                       ("scene", lambda r: r["scene"]), ("size band", lambda r: _band(r["size"])),
                       ("in header", lambda r: str(r["in_header"])), ("dark text", lambda r: str(r["dark"]))):
        vals = sorted({key(r) for r in phi})
        groups[label] = {v: rec([r for r in phi if key(r) == v]) for v in vals}
    fr = [x for res in results for x in res.get("fr", [])]
    t_alw = [res["t_always"] for res in results if "t_always" in res]
    t_nev = [t for res in results for t in res.get("t_never", [])]
    kept = sum(bool(r["kept"]) for r in neg)
    return {
        "recall": rec(phi), "groups": groups,
        "negatives_kept": f"{kept}/{len(neg)} = {kept / len(neg):.3f}" if neg else "-",
        "false_redaction_median": _pct(fr, 50), "false_redaction_p90": _pct(fr, 90),
        "time_always_median_s": _pct(t_alw, 50), "time_never_median_s": _pct(t_nev, 50),
        "ingest_failures_always": [(r["case"], r["always_error"]) for r in results if r.get("always_error")],
        "unscorable_cases": [(r["case"], r["unscorable"]) for r in results if r.get("unscorable")],
        "harness_errors": [(r["case"], r["scene"], r["harness_error"]) for r in results if r.get("harness_error")],
        "invisible_tokens": sum(not r["visible"] for r in rows),
        "withheld_frames": sum(r.get("withheld", 0) for r in results),
    }


def print_summary(s: dict) -> None:  # type: ignore[type-arg]
    print(f"identifier recall: {s['recall']}")
    for label, table in s["groups"].items():
        print(f"  by {label}:")
        for k, v in table.items():
            print(f"    {k:<18} {v}")
    print(f"negatives kept: {s['negatives_kept']}")
    print(f"false redaction: median {s['false_redaction_median']:.4f}  p90 {s['false_redaction_p90']:.4f}")
    print(f"time: always median {s['time_always_median_s']:.1f}s  never median {s['time_never_median_s']:.1f}s")
    print(f"withheld frames: {s['withheld_frames']}  invisible tokens (not scored): {s['invisible_tokens']}")
    print(f"ingest failures (always, counted removed): {s['ingest_failures_always']}")
    print(f"unscorable cases (never failed): {s['unscorable_cases']}")
    for case, scene, tb in s["harness_errors"]:
        print(f"HARNESS ERROR case {case} ({scene}):\n{tb}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=OFFICIAL_SEED)
    ap.add_argument("--work", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--build-only", action="store_true", help="write cases and previews, do not ingest")
    ap.add_argument("--scene", choices=sorted(SCENES), help="force one scene kind (debugging)")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    order = scene_order(args.seed, args.images, args.scene)
    results: list[dict] = []  # type: ignore[type-arg]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_case, args.seed, i, sc, str(work), args.build_only) for i, sc in enumerate(order)]
        for fut in futures:
            res = fut.result()
            results.append(res)
            status = "HARNESS ERROR" if res.get("harness_error") else res.get("unscorable") or "ok"
            print(f"case {res['case']:3d} {res['scene']:<17} {res.get('fmt', '?'):<5} "
                  f"tokens {res.get('tokens', 0):2d} neg {res.get('negatives', 0):2d} "
                  f"dropped {res.get('dropped', 0)} {status}", flush=True)
    summary = summarise(results)
    (work / "results.json").write_text(json.dumps({"seed": args.seed, "summary": summary, "cases": [
        {k: v for k, v in r.items() if k != "rows"} for r in results],
        "tokens": [row for r in results for row in r["rows"]]}, indent=1, default=str))
    if not args.build_only:
        print_summary(summary)
    else:
        errs = summary["harness_errors"]
        for case, scene, tb in errs:
            print(f"HARNESS ERROR case {case} ({scene}):\n{tb}")
    return 1 if summary["harness_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
