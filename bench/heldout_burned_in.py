"""Held-out evaluation of burned-in text redaction, with radassist run as a black box.

The images are made at run time, from a seed, by this script only (it does not use the project's burned-in test
fixtures or its benchmark): real frames from ``../shared/data/dicom`` (ultrasound grey, RGB and palette colour,
CR radiographs, secondary captures made from a CT frame and from pictures) and VQA-RAD pictures, with patient
identifiers drawn on them with PIL (names, MRNs, birth and study dates in several formats, accession numbers,
institutions) in DejaVu fonts of 9-28 px, white, on a black band, or grey on grey, in corners, on edges and over
anatomy, one line or stacked blocks; plus annotations that must stay ("L", "R", "AP", "PORTABLE", "5 cm" and
scale bars). DICOM copies carry the same identifiers in their headers, as a real study would.

Then ``radassist ingest FILES --json --out DIR`` runs twice on the same files: once with
``RADASSIST_BURNED_IN_TEXT=never`` (the reference rendering, and the baseline ingest time) and once with
``always`` (the run under test). The renderings written by ``--out`` are compared pixel by pixel:

- a planted identifier counts as removed when >= 95 % of its ink pixels (those not already black in the
  reference) are black in the redacted rendering, or the image was withheld;
- a negative (annotation) is kept when <= 10 % of its ink turned black and the image was not withheld;
- false redaction: pixels that turned black outside every drawn text box (boxes padded), as a share of that area,
  and of its "anatomy" part (pixels not near-black in the reference).

Usage::

    .venv/bin/python bench/heldout_burned_in.py --out /tmp/heldout [--seed 16] [--images 40]
    .venv/bin/python bench/heldout_burned_in.py --out /tmp/heldout --score-only   # score the same renderings again

Known limit of the layout: identifiers may be drawn over text already in the base image (US consoles' own
annotation, VQA-RAD's "MedPix" and uploader lines); such tokens are flagged (``over_prior``) and reported apart.

Writes DIR/inputs (the made files), DIR/ref and DIR/eval (renderings), DIR/results.json (per token) and prints
a report. Synthetic identities only: no real patient data is made or read.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.pixels import apply_color_lut
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DICOM_DIR = SHARED / "dicom" / "pydicom_data"
VQA_DIR = SHARED / "vqa_rad" / "images"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerifCondensed-Bold.ttf",
    "DejaVuSans-ExtraLight.ttf",
    "DejaVuSans-Oblique.ttf",
]
SIZES = [9, 10, 11, 12, 13, 14, 16, 18, 20, 22, 24, 28]

FAMILY = [
    "O'Brien",
    "Nguyen",
    "Garcia-Lopez",
    "Okafor",
    "van der Berg",
    "Kowalczyk",
    "Haddad",
    "MacLeod",
    "Fitzgerald",
    "Yamamoto",
    "Delacroix",
    "Ivanova",
    "Papadopoulos",
    "Lindqvist",
    "Abernathy",
    "Osei",
    "Moreau",
    "Brennan",
    "Castellanos",
    "Whitaker",
    "Schmidt",
    "Al-Rashid",
    "Dubois",
    "Kim",
    "Ortega",
]
GIVEN = [
    "Sean",
    "Thi Mai",
    "Maria",
    "Chinedu",
    "Anke",
    "Piotr",
    "Leila",
    "Ewan",
    "Siobhan",
    "Haruto",
    "Camille",
    "Olga",
    "Nikos",
    "Ingrid",
    "Ruth",
    "Kwame",
    "Elodie",
    "Declan",
    "Lucia",
    "Harold",
    "Jo",
    "Mary Ann",
]
INSTITUTIONS = [
    "St. Elsewhere Hospital",
    "Mercy General Hospital",
    "Riverside Imaging Center",
    "North Valley Medical Ctr",
    "Klinikum Nord",
    "Royal Victoria Infirmary",
    "Lakeshore Women's Clinic",
    "County Hospital Radiology",
]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


@dataclass
class Item:
    """One drawn thing: an identifier token (with an optional label before it), or a negative annotation."""

    image: str
    ident: int
    role: str  # "token" | "negative"
    kind: str  # name, mrn, dob, study_date, accession, institution | L, R, AP, PORTABLE, 5 cm, scale_bar
    text: str
    label: str
    font: str
    size: int
    contrast: str  # white, white_band, low, colour
    position: str  # corner_tl..., block, edge_*, anatomy
    box: list[int] = field(default_factory=list)  # x, y, w, h of the value's ink
    line_box: list[int] = field(default_factory=list)  # x, y, w, h of the label + value line (with band)
    antialias: bool = True
    # filled in by scoring
    ink_pixels: int = 0
    ink_black: float = 0.0
    box_black: float = 0.0
    ref_contrast: float = 0.0
    removed: bool = False
    kept: bool = False
    over_prior: bool = False  # drawn over text already in the base image (a flaw of the layout, reported apart)


@dataclass
class Made:
    name: str
    base: str
    path: str
    rows: int
    cols: int
    frames: int
    items: list[Item]
    header: bool
    prior_text: list[list[int]] = field(default_factory=list)  # text already in the base (x, y, w, h)


# ----------------------------------------------------------------------------------------------- identities


def _date(rng: random.Random, year0: int, year1: int) -> tuple[int, int, int]:
    return rng.randint(year0, year1), rng.randint(1, 12), rng.randint(1, 28)


def _fmt_date(rng: random.Random, d: tuple[int, int, int]) -> str:
    y, m, day = d
    return rng.choice(
        [
            f"{y:04d}-{m:02d}-{day:02d}",
            f"{day:02d}/{m:02d}/{y:04d}",
            f"{m:02d}.{day:02d}.{y:04d}",
            f"{day:02d}-{MONTHS[m - 1]}-{y:04d}",
            f"{y:04d}{m:02d}{day:02d}",
            f"{m:02d}/{day:02d}/{y:04d}",
            f"{MONTHS[m - 1].title()} {day}, {y}",
            f"{day:02d}.{m:02d}.{y:04d}",
        ]
    )


def _identity(rng: random.Random) -> dict[str, Any]:
    family, given = rng.choice(FAMILY), rng.choice(GIVEN)
    mrn = rng.choice(
        [
            f"{rng.randint(0, 99_999_999):08d}",
            f"{rng.randint(1_000_000, 9_999_999)}",
            f"H{rng.randint(100_000, 999_999)}",
            f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        ]
    )
    acc = rng.choice(
        [
            f"{rng.randint(10, 26)}R{rng.randint(1_000_000, 9_999_999)}",
            f"A{rng.randint(1_000_000, 9_999_999)}",
            f"{rng.randint(10_000_000, 99_999_999)}",
            f"RAD-{rng.randint(100_000, 999_999)}",
        ]
    )
    return {
        "family": family,
        "given": given,
        "mrn": mrn,
        "accession": acc,
        "dob": _date(rng, 1931, 2019),
        "study": _date(rng, 2015, 2026),
        "institution": rng.choice(INSTITUTIONS),
    }


def _token_texts(rng: random.Random, who: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """kind -> (label, value) as a machine would print it."""
    fam, giv = who["family"], who["given"]
    name = rng.choice(
        [
            f"{fam.upper()}^{giv.upper()}",
            f"{fam}, {giv}",
            f"{fam.upper()} {giv.upper()}",
            f"{giv} {fam}",
            f"{fam.upper()}, {giv.upper()}",
            f"{fam.upper()}^{giv.upper()}^^",
        ]
    ).rstrip("^")
    sy, sm, sd = who["study"]
    study = _fmt_date(rng, who["study"])
    if rng.random() < 0.3:
        study += f" {rng.randint(7, 19):02d}:{rng.randint(0, 59):02d}"
    return {
        "name": (rng.choice(["", "", "Name:", "Pt:", "Patient:"]), name),
        "mrn": (rng.choice(["MRN", "ID:", "MRN:", "Pat ID", "PID"]), who["mrn"]),
        "dob": (rng.choice(["DOB:", "DOB", "Born", "", "Birth:"]), _fmt_date(rng, who["dob"])),
        "study_date": (rng.choice(["", "Study:", "Date:", "Exam"]), study),
        "accession": (rng.choice(["ACC#", "Acc:", "Accession", "ACC"]), who["accession"]),
        "institution": ("", rng.choice([who["institution"], who["institution"].upper()])),
    }


# ----------------------------------------------------------------------------------------------- bases


@dataclass
class Base:
    kind: str  # us_mono, us_rgb, us_palette, cr, sc_rgb, sc_mono, pic_png, pic_jpg
    frames: np.ndarray  # (F, H, W) or (F, H, W, 3), stored values
    display: np.ndarray  # (H, W) float 0-255 approximate rendering, for choosing colours
    ds: Any = None  # pydicom Dataset (None for pictures)
    window: tuple[float, float] | None = None
    mono1: bool = False
    lut: np.ndarray | None = None  # palette: (256, 3) 0-255
    max_value: int = 255


def _window_display(arr: np.ndarray, c: float, w: float, mono1: bool) -> np.ndarray:
    d = np.clip(((arr.astype(np.float64) - (c - 0.5)) / (w - 1) + 0.5) * 255.0, 0, 255)
    return 255.0 - d if mono1 else d


def _lum(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _first(value: Any) -> float:
    return float(value[0]) if isinstance(value, pydicom.multival.MultiValue) else float(value)


def load_base(kind: str, src: Path | None, rng: random.Random) -> Base:
    if kind in ("pic_png", "pic_jpg"):
        assert src is not None
        rgb = np.asarray(Image.open(src).convert("RGB"))
        return Base(kind, rgb[None].copy(), _lum(rgb.astype(np.float64)))
    if kind in ("sc_rgb", "sc_mono"):
        ds = pydicom.dcmread(DICOM_DIR / "SC_rgb_2frame.dcm")
        if kind == "sc_rgb":
            assert src is not None
            rgb = np.asarray(Image.open(src).convert("RGB"))
            return Base(kind, rgb[None].copy(), _lum(rgb.astype(np.float64)), ds)
        ct = pydicom.dcmread(DICOM_DIR / "693_UNCI.dcm")
        hu = ct.pixel_array.astype(np.float64) * float(ct.RescaleSlope) + float(ct.RescaleIntercept)
        c, w = rng.choice([(40, 400), (-600, 1500), (50, 350)])
        grey = _window_display(hu, c, w, False).astype(np.uint8)
        # a screen capture: the 512 image inside a larger dark viewer canvas
        canvas = np.full((640, 720), 12, np.uint8)
        canvas[64:576, 104:616] = grey
        return Base(kind, canvas[None].copy(), canvas.astype(np.float64), ds)
    assert src is not None
    ds = pydicom.dcmread(src)
    arr = ds.pixel_array
    frames = arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[None]
    if kind == "us_palette":
        lut = apply_color_lut(np.arange(256, dtype=np.uint8), ds).astype(np.float64) / 257.0
        return Base(kind, frames.copy(), _lum(lut[frames[0]]), ds, lut=lut)
    if kind == "us_rgb":
        return Base(kind, frames.copy(), _lum(frames[0].astype(np.float64)), ds)
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    c, w = _first(ds.WindowCenter), _first(ds.WindowWidth)
    max_value = (1 << int(ds.BitsStored)) - 1
    return Base(kind, frames.copy(), _window_display(frames[0], c, w, mono1), ds, (c, w), mono1, max_value=max_value)


# ----------------------------------------------------------------------------------------------- drawing


class Canvas:
    """Plans and draws items; keeps an ink label map (item index + 1 per pixel) for scoring."""

    def __init__(self, base: Base, name: str, rng: random.Random) -> None:
        self.base, self.name, self.rng = base, name, rng
        self.h, self.w = base.display.shape
        self.labels = np.zeros((self.h, self.w), np.int16)
        self.occupied: list[tuple[int, int, int, int]] = []
        self.items: list[Item] = []
        self.layers: list[tuple[np.ndarray, tuple[float, float, float]]] = []  # alpha (0-1), rgb colour

    def font(self, size: int, allow_light: bool = True) -> tuple[Any, str]:
        names = FONTS if (allow_light and size >= 14) else [f for f in FONTS if "ExtraLight" not in f]
        name = self.rng.choice(names)
        return ImageFont.truetype(str(FONT_DIR / name), size), name

    def _free(self, r: tuple[int, int, int, int], pad: int = 6) -> bool:
        x, y, w, h = r
        if x < 1 or y < 1 or x + w >= self.w - 1 or y + h >= self.h - 1:
            return False
        return all(
            x + w + pad <= ox or ox + ow + pad <= x or y + h + pad <= oy or oy + oh + pad <= y
            for ox, oy, ow, oh in self.occupied
        )

    def _colour(self, contrast: str, region: tuple[int, int, int, int]) -> tuple[float, float, float]:
        x, y, w, h = region
        bg = float(np.median(self.base.display[y : y + h, x : x + w]))
        if contrast == "white_band" or (contrast == "white" and bg <= 150):
            v = float(self.rng.randint(225, 255))
            return (v, v, v)
        if contrast == "white":  # a bright background (a radiograph's collimation, a white page): dark print
            v = float(self.rng.randint(12, 35))
            return (v, v, v)
        if contrast == "colour":
            return self.rng.choice([(240.0, 225.0, 70.0), (110.0, 235.0, 120.0), (90.0, 220.0, 240.0)])
        delta = float(self.rng.randint(28, 45))
        v = bg + delta if bg < 128 else bg - delta
        return (v, v, v)

    def _text_mask(self, xy: tuple[int, int], text: str, font: Any, antialias: bool) -> np.ndarray:
        img = Image.new("L", (self.w, self.h), 0)
        draw = ImageDraw.Draw(img)
        draw.fontmode = "L" if antialias else "1"
        draw.text(xy, text, fill=255, font=font)
        return np.asarray(img)

    def line(
        self,
        role: str,
        kind: str,
        label: str,
        value: str,
        size: int,
        contrast: str,
        position: str,
        xy: tuple[int, int] | None = None,
        font: tuple[Any, str] | None = None,
        antialias: bool | None = None,
    ) -> Item | None:
        """Draw label + value at xy (or a free place for ``position``); None when it does not fit."""
        fnt, fname = font or self.font(size)
        aa = self.rng.random() < 0.75 if antialias is None else antialias
        draw = ImageDraw.Draw(Image.new("L", (1, 1)))
        prefix = f"{label} " if label else ""
        full = draw.textbbox((0, 0), prefix + value, font=fnt)
        lw, lh = full[2] - full[0], full[3] - full[1]
        if xy is None:
            xy = self._place(position, lw + 8, lh + 6)
            if xy is None:
                return None
        x, y = xy
        rect = (x - 3, y + full[1] - 3, lw + 6, lh + 6)
        if not self._free(rect):
            return None
        colour = self._colour(contrast, rect)
        if contrast == "white" and colour[0] < 100:
            contrast = "dark_on_light"
        if contrast == "white_band":
            band = np.zeros((self.h, self.w), np.float64)
            band[rect[1] : rect[1] + rect[3], rect[0] : rect[0] + rect[2]] = 1.0
            self.layers.append((band, (0.0, 0.0, 0.0)))
        masks = []
        if prefix:
            masks.append(("label", self._text_mask((x, y), label, fnt, aa)))
        vx = x + int(round(draw.textlength(prefix, font=fnt))) if prefix else x
        masks.append(("value", self._text_mask((vx, y), value, fnt, aa)))
        item = Item(self.name, len(self.items), role, kind, value, label, fname, size, contrast, position, antialias=aa)
        value_ink = None
        for part, m in masks:
            self.layers.append((m.astype(np.float64) / 255.0, colour))
            if part == "value":
                value_ink = m
        assert value_ink is not None
        ys, xs = np.nonzero(value_ink >= 128)
        if len(xs) == 0:
            return None
        item.box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        item.line_box = list(rect)
        self.labels[value_ink >= 128] = item.ident + 1
        self.occupied.append(rect)
        self.items.append(item)
        return item

    def scale_bar(self, size: int) -> Item | None:
        length = max(40, min(self.h, self.w) // 6)
        vertical = self.rng.random() < 0.5
        for _ in range(30):
            if vertical:
                x = self.w - self.rng.randint(18, 40)
                y = self.rng.randint(self.h // 5, max(self.h // 5 + 1, self.h - length - self.h // 5))
                rect = (x - 8, y - 2, 16, length + 4)
            else:
                x = self.rng.randint(self.w // 5, max(self.w // 5 + 1, self.w - length - self.w // 5))
                y = self.h - self.rng.randint(18, 40)
                rect = (x - 2, y - 8, length + 4, 16)
            if self._free(rect):
                break
        else:
            return None
        img = Image.new("L", (self.w, self.h), 0)
        d = ImageDraw.Draw(img)
        thick = 2 if size >= 16 else 1
        if vertical:
            d.line([(x, y), (x, y + length)], fill=255, width=thick)
            for i in range(6):
                ty = y + i * length // 5
                d.line([(x - (6 if i % 5 == 0 else 3), ty), (x, ty)], fill=255, width=thick)
        else:
            d.line([(x, y), (x + length, y)], fill=255, width=thick)
            for i in range(6):
                tx = x + i * length // 5
                d.line([(tx, y), (tx, y + (6 if i % 5 == 0 else 3))], fill=255, width=thick)
        m = np.asarray(img)
        item = Item(self.name, len(self.items), "negative", "scale_bar", "", "", "", size, "white", "edge")
        ys, xs = np.nonzero(m >= 128)
        item.box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        item.line_box = list(rect)
        self.layers.append((m.astype(np.float64) / 255.0, (235.0, 235.0, 235.0)))
        self.labels[m >= 128] = item.ident + 1
        self.occupied.append(rect)
        self.items.append(item)
        # its "5 cm" label beside it
        fnt = self.font(max(11, size - 4), allow_light=False)
        lx, ly = (x - 50, y + length // 2) if vertical else (x + length // 2 - 14, y - 24)
        self.line("negative", "5 cm", "", "5 cm", max(11, size - 4), "white", "edge", xy=(lx, ly), font=fnt)
        return item

    def _place(self, position: str, w: int, h: int) -> tuple[int, int] | None:
        W, H, rng = self.w, self.h, self.rng
        for _ in range(40):
            m = rng.randint(4, 14)
            if position == "corner_tl":
                xy = (m, m)
            elif position == "corner_tr":
                xy = (W - w - m, m)
            elif position == "corner_bl":
                xy = (m, H - h - m)
            elif position == "corner_br":
                xy = (W - w - m, H - h - m)
            elif position == "edge_top":
                xy = (rng.randint(W // 4, max(W // 4 + 1, 3 * W // 4 - w)), m)
            elif position == "edge_bottom":
                xy = (rng.randint(W // 4, max(W // 4 + 1, 3 * W // 4 - w)), H - h - m)
            elif position == "edge_left":
                xy = (m, rng.randint(H // 4, 3 * H // 4))
            elif position == "edge_right":
                xy = (W - w - m, rng.randint(H // 4, 3 * H // 4))
            else:  # anatomy: the central part of the frame
                xy = (rng.randint(W // 5, max(W // 5 + 1, 4 * W // 5 - w)), rng.randint(H // 4, 3 * H // 4 - h))
            if xy[0] > 0 and xy[1] > 0 and self._free((xy[0] - 3, xy[1] - 3, w + 6, h + 6)):
                return xy
        return None

    def block(self, corner: str, lines: list[tuple[str, str, str]], size: int, contrast: str) -> None:
        """Stacked lines anchored at a corner, as ultrasound and CR consoles print them."""
        font = self.font(size)
        fnt = font[0]
        aa = self.rng.random() < 0.75
        draw = ImageDraw.Draw(Image.new("L", (1, 1)))
        widths = [draw.textbbox((0, 0), (f"{lab} " if lab else "") + val, font=fnt)[2] for _, lab, val in lines]
        step = int(size * self.rng.choice([1.25, 1.4, 1.6])) + 2
        bw, bh = max(widths) + 8, step * len(lines) + 6
        m = self.rng.randint(4, 14)
        x = m if corner.endswith("l") else self.w - bw - m
        y = m if corner[-2] == "t" else self.h - bh - m
        right = corner.endswith("r")
        for i, (kind, lab, val) in enumerate(lines):
            lx = x + (bw - 8 - widths[i] if right else 0)
            self.line(
                "token",
                kind,
                lab,
                val,
                size,
                contrast,
                f"block_{corner[-2:]}",
                xy=(lx, y + i * step),
                font=font,
                antialias=aa,
            )

    # ------------------------------------------------------------------------------------------- compositing

    def composite(self) -> np.ndarray:
        b = self.base
        out = b.frames.astype(np.float64)
        for alpha, colour in self.layers:
            if b.kind == "us_palette":
                assert b.lut is not None
                target = np.array(colour)
                idx = int(np.argmin(((b.lut - target) ** 2).sum(axis=1)))
                out[:, alpha >= 0.5] = idx
            elif out.ndim == 4:
                a = alpha[None, :, :, None]
                out = out * (1 - a) + np.array(colour)[None, None, None, :] * a
            else:
                level = float(_lum(np.array(colour)))
                if b.window is not None:
                    c, w = b.window
                    disp = 255.0 - level if b.mono1 else level
                    stored = c - 0.5 + (disp / 255.0 - 0.5) * (w - 1)
                    stored = float(np.clip(stored, 0, b.max_value))
                else:
                    stored = level
                a = alpha[None]
                out = out * (1 - a) + stored * a
        return np.clip(np.rint(out), 0, b.max_value).astype(b.frames.dtype)


# ----------------------------------------------------------------------------------------------- making


PLAN = (
    [("us_mono", "JPGLosslessP14SV1_1s_1f_8b.dcm")] * 6
    + [("us_rgb", "US1_J2KR.dcm")] * 4
    + [("us_palette", "OBXXXX1A_rle_2frame.dcm")] * 3
    + [("cr", "RG1_UNCI.dcm")] * 3
    + [("cr", "RG3_J2KR.dcm")] * 3
    + [("sc_mono", None)] * 2
    + [("sc_rgb", None)] * 3
    + [("pic_png", None)] * 8
    + [("pic_jpg", None)] * 8
)


def _pictures(rng: random.Random, n: int) -> list[Path]:
    files = sorted(VQA_DIR.glob("*.jpg"))
    rng.shuffle(files)
    chosen = []
    for f in files:
        with Image.open(f) as im:
            if 300 <= min(im.size) and max(im.size) <= 1300:
                chosen.append(f)
        if len(chosen) == n:
            break
    return chosen


def existing_text(display: np.ndarray) -> list[list[int]]:
    """Boxes of text already in the base image (found with Tesseract before anything is drawn): redacting it is
    not counted as false redaction of anatomy, and it is reported apart."""
    import pytesseract

    img = Image.fromarray(np.clip(display, 0, 255).astype(np.uint8))
    data = pytesseract.image_to_data(img, config="--psm 11", output_type=pytesseract.Output.DICT)
    boxes = []
    for text, conf, x, y, w, h in zip(
        data["text"], data["conf"], data["left"], data["top"], data["width"], data["height"], strict=True
    ):
        if float(conf) >= 50 and sum(ch.isalnum() for ch in str(text)) >= 2:
            boxes.append([int(x), int(y), int(w), int(h)])
    return boxes


def make_one(name: str, kind: str, src: Path | None, rng: random.Random, out_dir: Path) -> Made:
    base = load_base(kind, src, rng)
    prior = existing_text(base.display)
    cv = Canvas(base, name, rng)
    who = _identity(rng)
    texts = _token_texts(rng, who)
    kinds = ["name"] + rng.sample(["mrn", "dob", "study_date", "accession", "institution"], rng.randint(2, 5))
    rng.shuffle(kinds)
    contrasts = ["white", "white_band", "low"] + (["colour"] if base.frames.ndim == 4 else [])
    # negatives first where consoles put them, so identifiers are placed around them
    if rng.random() < 0.6:
        cv.scale_bar(rng.choice(SIZES[4:]))
    for neg in rng.sample(["L", "R", "AP", "PORTABLE"], rng.randint(1, 3)):
        size = rng.choice(SIZES[5:])
        pos = {"L": "edge_left", "R": "edge_right"}.get(neg, rng.choice(["corner_tr", "edge_top", "corner_br"]))
        cv.line("negative", neg, "", neg, size, rng.choice(["white", "white", "low"]), pos)
    # a stacked block in a corner, then single lines on edges and over anatomy
    if rng.random() < 0.7:
        n_block = min(len(kinds), rng.randint(2, 5))
        block, kinds = kinds[:n_block], kinds[n_block:]
        cv.block(
            rng.choice(["corner_tl", "corner_tl", "corner_tr", "corner_bl"]),
            [(k, *texts[k]) for k in block],
            rng.choice(SIZES),
            rng.choice(contrasts),
        )
    for k in kinds:
        pos = rng.choice(
            [
                "corner_tl",
                "corner_tr",
                "corner_bl",
                "corner_br",
                "edge_top",
                "edge_bottom",
                "edge_left",
                "edge_right",
                "anatomy",
                "anatomy",
                "anatomy",
            ]
        )
        for size in (rng.choice(SIZES), 12, 10):
            if cv.line("token", k, *texts[k], size, rng.choice(contrasts), pos) is not None:
                break
    frames = cv.composite()
    header = base.ds is not None
    if kind.startswith("pic"):
        ext = "png" if kind == "pic_png" else "jpg"
        path = out_dir / f"{name}.{ext}"
        img = Image.fromarray(frames[0])
        img.save(path, **({"quality": 88} if ext == "jpg" else {}))
    else:
        ds = base.ds
        y, m, d = who["dob"]
        sy, sm, sd = who["study"]
        ds.PatientName = f"{who['family'].upper()}^{who['given'].upper()}"
        ds.PatientID = who["mrn"]
        ds.PatientBirthDate = f"{y:04d}{m:02d}{d:02d}"
        ds.StudyDate = f"{sy:04d}{sm:02d}{sd:02d}"
        ds.AccessionNumber = who["accession"]
        ds.InstitutionName = who["institution"]
        # every file its own study, series and instance: the renderings are found by series
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        if kind == "cr":
            ds.BurnedInAnnotation = "YES"
        if kind.startswith("sc"):
            ds.Modality = "OT"
            ds.ConversionType = "WSD"
            for kw in ("NumberOfFrames", "FrameIncrementPointer"):
                if kw in ds:
                    delattr(ds, kw)
        arr = frames[0] if frames.shape[0] == 1 else frames
        pi = {"us_palette": "PALETTE COLOR", "us_rgb": "RGB", "sc_rgb": "RGB", "sc_mono": "MONOCHROME2"}.get(
            kind, str(ds.PhotometricInterpretation)
        )
        bits = 8 if arr.dtype == np.uint8 else int(ds.BitsStored)
        ds.set_pixel_data(arr, pi, bits)
        if kind == "sc_mono":
            for kw in ("WindowCenter", "WindowWidth"):
                if kw in ds:
                    delattr(ds, kw)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = out_dir / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
    np.save(out_dir / f"{name}.labels.npy", cv.labels)
    return Made(name, kind, str(path), cv.h, cv.w, frames.shape[0], cv.items, header, prior)


def make_all(out: Path, seed: int, count: int) -> list[Made]:
    rng = random.Random(seed)
    plan = list(PLAN)
    if count < len(plan):
        plan = rng.sample(plan, count)
    pics = iter(_pictures(rng, sum(1 for k, _ in plan if k in ("pic_png", "pic_jpg", "sc_rgb"))))
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    made = []
    for i, (kind, fname) in enumerate(plan):
        src = DICOM_DIR / fname if fname else (next(pics) if kind in ("pic_png", "pic_jpg", "sc_rgb") else None)
        made.append(make_one(f"h{i:02d}_{kind}", kind, src, rng, inputs))
    return made


# ----------------------------------------------------------------------------------------------- running


def run_ingest(files: list[str], out: Path, mode: str) -> tuple[float, dict[str, dict[str, Any]], float | None]:
    data = out / f"data_{mode}"
    render = out / mode
    env = dict(
        os.environ, RADASSIST_DATA_DIR=str(data), RADASSIST_BURNED_IN_TEXT="always" if mode == "eval" else "never"
    )
    cmd = [str(ROOT / ".venv" / "bin" / "radassist"), "ingest", *files, "--json", "--out", str(render)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    (out / f"{mode}.stdout.jsonl").write_text(proc.stdout)
    (out / f"{mode}.stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        sys.stderr.write(f"radassist ingest ({mode}) exited {proc.returncode}: {proc.stderr[-2000:]}\n")
    lines = _read_lines(out / f"{mode}.stdout.jsonl")
    ocr_s = None
    db = data / "radassist.sqlite3"
    if db.exists():
        try:
            with sqlite3.connect(db) as con:
                row = con.execute("SELECT SUM(latency_ms), COUNT(*) FROM audit WHERE template = 'burned_in_text'")
                total, n = row.fetchone()
                ocr_s = (total or 0) / 1000.0 if n else None
        except sqlite3.Error:
            ocr_s = None
    return seconds, lines, ocr_s


def _read_lines(path: Path) -> dict[str, dict[str, Any]]:
    lines = {}
    for raw in path.read_text().splitlines():
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "path" in rec:
            lines[rec["path"]] = rec
    return lines


def _frames_for(render: Path, rec: dict[str, Any] | None) -> list[np.ndarray]:
    if not rec or not rec.get("ok") or not rec.get("summary"):
        return []
    uid = rec["summary"]["series_uid"]
    folders = sorted(render.glob(f"study*/series*_{uid[-8:]}"))
    if not folders:
        return []
    return [np.asarray(Image.open(f)) for f in sorted(folders[0].glob("frame*.png"))]


def _own_frame(frames: list[np.ndarray], made: Path) -> int:
    """Index of the rendered frame that shows the made picture (smallest mean grey difference, same size)."""
    pic = _grey(np.asarray(Image.open(made).convert("RGB")))
    best, best_diff = 0, float("inf")
    for j, frame in enumerate(frames):
        if frame.shape[:2] != pic.shape:
            continue
        diff = float(np.mean(np.abs(_grey(frame) - pic)))
        if diff < best_diff:
            best, best_diff = j, diff
    return best


def _withheld_frame(ev: np.ndarray, rf: np.ndarray) -> bool:
    """A withheld frame renders as one value everywhere (its pixels blanked); its reference does not."""
    flat_e = ev.reshape(-1, ev.shape[-1]) if ev.ndim == 3 else ev.reshape(-1, 1)
    flat_r = rf.reshape(-1, rf.shape[-1]) if rf.ndim == 3 else rf.reshape(-1, 1)
    return bool((flat_e == flat_e[0]).all() and not (flat_r == flat_r[0]).all())


def _black(a: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Pixels at the redaction fill (within 2 grey levels per channel)."""
    near = np.abs(a.astype(np.int32) - fill.astype(np.int32)) <= 2
    return near.all(axis=-1) if a.ndim == 3 else near


def _fill_value(ev: list[np.ndarray], rf: list[np.ndarray], regions: list[list[int]]) -> np.ndarray:
    """The rendered value of the black fill: the commonest value inside the reported regions (a MONOCHROME1
    radiograph's black renders as its darkest value, not 0); without regions, the darkest value of the reference."""
    values = []
    for frame, x, y, w, h in regions:
        if 1 <= frame <= len(ev):
            a = ev[frame - 1][y : y + h, x : x + w]
            values.append(a.reshape(-1, a.shape[-1]) if a.ndim == 3 else a.reshape(-1, 1))
    if values:
        v = np.concatenate(values)
        uniq, counts = np.unique(v, axis=0, return_counts=True)
        return uniq[int(np.argmax(counts))] if ev[0].ndim == 3 else uniq[int(np.argmax(counts))][0]
    r = rf[0]
    return r.reshape(-1, r.shape[-1]).min(axis=0) if r.ndim == 3 else np.array(r.min())


def _grey(a: np.ndarray) -> np.ndarray:
    return _lum(a.astype(np.float64)) if a.ndim == 3 else a.astype(np.float64)


def score(made: list[Made], out: Path, ref_lines: dict[str, Any], eval_lines: dict[str, Any]) -> dict[str, Any]:
    per_image = []
    for mk in made:
        rec_e, rec_r = eval_lines.get(mk.path), ref_lines.get(mk.path)
        ev, rf = _frames_for(out / "eval", rec_e), _frames_for(out / "ref", rec_r)
        bit = (rec_e or {}).get("summary", {}) or {}
        bt = bit.get("burned_in_text") or {}
        withheld = bool(bt.get("withheld_frames"))
        regions = bt.get("regions") or []
        if mk.frames == 1 and len(rf) > 1 and len(ev) == len(rf):
            # Pictures of one size are grouped into one series by ingest: its folder holds several pictures'
            # frames. Ours is the reference frame closest to the picture as made; the redacted run writes the
            # same files in the same order. Its own regions and withheld state, not the series'.
            j = _own_frame(rf, Path(mk.path))
            ev, rf = [ev[j]], [rf[j]]
            regions = [[1, *r[1:]] for r in regions if r[0] == j + 1]
            withheld = _withheld_frame(ev[0], rf[0])
        labels = np.load(Path(mk.path).parent / f"{mk.name}.labels.npy")
        info: dict[str, Any] = {
            "name": mk.name,
            "base": mk.base,
            "withheld": withheld,
            "ok": bool(rec_e and rec_e.get("ok")),
            "frames_eval": len(ev),
            "frames_ref": len(rf),
            "boxes_reported": bt.get("box_count"),
            "reason": bt.get("reason"),
        }
        if not ev or not rf or len(ev) != len(rf):
            info["error"] = "renderings missing"
            for it in mk.items:
                it.removed = withheld
            per_image.append(info)
            continue
        fill = _fill_value(ev, rf, regions)
        info["fill"] = np.asarray(fill).tolist()
        if ev[0].shape[:2] != labels.shape:  # map our geometry onto the rendering's (nearest neighbour)
            hh, ww = ev[0].shape[:2]
            yi = (np.arange(hh) * labels.shape[0] / hh).astype(int)
            xi = (np.arange(ww) * labels.shape[1] / ww).astype(int)
            labels = labels[yi][:, xi]
            info["rescaled"] = True
        sy, sx = ev[0].shape[0] / mk.rows, ev[0].shape[1] / mk.cols
        text_area = np.zeros(labels.shape, bool)
        for it in mk.items:
            x, y, w, h = it.line_box
            pad = max(4, it.size // 2)
            y0, y1 = max(0, int((y - pad) * sy)), int((y + h + pad) * sy)
            x0, x1 = max(0, int((x - pad) * sx)), int((x + w + pad) * sx)
            text_area[y0:y1, x0:x1] = True
        prior = np.zeros(labels.shape, bool)
        for x, y, w, h in mk.prior_text:
            if h > min(60, mk.rows // 8) or w > mk.cols // 2:  # Tesseract's "words" over whole anatomy: not text
                continue
            pad = max(4, h // 2)
            prior[
                max(0, int((y - pad) * sy)) : int((y + h + pad) * sy),
                max(0, int((x - pad) * sx)) : int((x + w + pad) * sx),
            ] = True
        for it in mk.items:
            lx, ly, lw, lh = it.line_box
            it.over_prior = any(
                lx < x + w and x < lx + lw and ly < y + h and y < ly + lh
                for x, y, w, h in mk.prior_text
                if not (h > min(60, mk.rows // 8) or w > mk.cols // 2)
            )
        prior &= ~text_area
        info["prior_text_px"] = int(prior.sum())
        info["prior_text_blacked"] = 0
        text_area |= prior
        changed_total, nontext_total, anat_changed, anat_total = 0, 0, 0, 0
        for it in mk.items:
            ink = labels == it.ident + 1
            fracs, boxf, contr, npx = [], [], [], 0
            x, y, w, h = it.box
            bx = (slice(int(y * sy), int((y + h) * sy) + 1), slice(int(x * sx), int((x + w) * sx) + 1))
            for e, r in zip(ev, rf, strict=True):
                be, br = _black(e, fill), _black(r, fill)
                usable = ink & ~br
                npx = int(usable.sum())
                fracs.append(float(be[usable].mean()) if npx else 1.0)
                boxf.append(float(be[bx].mean()))
                g = _grey(r)
                x0, y0 = max(0, bx[1].start - 6), max(0, bx[0].start - 6)
                ring = np.zeros(ink.shape, bool)
                ring[y0 : bx[0].stop + 6, x0 : bx[1].stop + 6] = True
                ring &= ~(labels > 0)
                if ink.any() and ring.any():
                    contr.append(abs(float(np.median(g[ink])) - float(np.median(g[ring]))))
            it.ink_pixels, it.ink_black, it.box_black = npx, min(fracs), min(boxf)
            it.ref_contrast = float(np.mean(contr)) if contr else 0.0
            if it.role == "token":
                # ink already black in the reference cannot show a fill: fall back on the value's box then
                scorable = npx >= 0.2 * int(ink.sum())
                it.removed = withheld or (it.ink_black >= 0.95 if scorable else it.box_black >= 0.9)
            else:
                it.kept = (not withheld) and max(
                    float(_black(e, fill)[ink & ~_black(r, fill)].mean()) if (ink & ~_black(r, fill)).any() else 0.0
                    for e, r in zip(ev, rf, strict=True)
                ) <= 0.10
        if not withheld:
            for e, r in zip(ev, rf, strict=True):
                newly = _black(e, fill) & ~_black(r, fill)
                info["prior_text_blacked"] += int((newly & prior).sum())
                nontext = ~text_area
                changed_total += int((newly & nontext).sum())
                nontext_total += int(nontext.sum())
                anat = nontext & (np.abs(_grey(r) - float(np.mean(fill))) > 8)
                anat_changed += int((newly & anat).sum())
                anat_total += int(anat.sum())
                diff = np.abs(e.astype(np.int32) - r.astype(np.int32))
                diff = diff.max(axis=-1) if diff.ndim == 3 else diff
                info.setdefault("nontext_changed_any", 0)
                info["nontext_changed_any"] += int(((diff > 8) & nontext).sum())
        info["false_black_px"] = changed_total
        info["nontext_px"] = nontext_total
        info["false_black_frac"] = changed_total / nontext_total if nontext_total else None
        info["anatomy_false_frac"] = anat_changed / anat_total if anat_total else None
        info["anatomy_px"] = anat_total
        per_image.append(info)
    return {"images": per_image}


# ----------------------------------------------------------------------------------------------- report


def _bins(size: int) -> str:
    return "9-12" if size <= 12 else ("13-18" if size <= 18 else "19-28")


def _contrast_bin(c: float) -> str:
    return "<40" if c < 40 else ("40-100" if c < 100 else ">=100")


def report(made: list[Made], scored: dict[str, Any], t_ref: float, t_eval: float, ocr_s: float | None) -> str:
    tokens = [it for mk in made for it in mk.items if it.role == "token"]
    negs = [it for mk in made for it in mk.items if it.role == "negative"]
    base_of = {mk.name: mk.base for mk in made}
    header_of = {mk.name: mk.header for mk in made}
    n_img = len(made)
    n_frames = sum(mk.frames for mk in made)
    imgs = scored["images"]
    withheld = [i["name"] for i in imgs if i["withheld"]]
    removed = sum(t.removed for t in tokens)
    lines = [
        "## Held-out burned-in text evaluation",
        "",
        f"- images: {n_img} ({n_frames} frames); planted identifier tokens: {len(tokens)}; negatives: {len(negs)}",
        f"- recall of planted tokens: {removed}/{len(tokens)} = {removed / max(1, len(tokens)):.3f}"
        f" (withheld images count as removed; goal >= 0.98)",
        "- recall excluding withheld images: " + _ratio([t for t in tokens if t.image not in withheld]),
        "- recall of tokens not drawn over text already in the base image: "
        + _ratio([t for t in tokens if not t.over_prior])
        + f" ({sum(t.over_prior for t in tokens)} tokens overlap it)",
        f"- withheld images: {len(withheld)} {withheld}",
        f"- negatives kept: {sum(n.kept for n in negs)}/{len(negs)}",
    ]
    fb = [i for i in imgs if i.get("false_black_frac") is not None]
    if fb:
        tot_c = sum(i["false_black_px"] for i in fb)
        tot_n = sum(i["nontext_px"] for i in fb)
        an = [i for i in fb if i.get("anatomy_false_frac") is not None]
        lines.append(
            f"- false redaction (non-text pixels turned black, images not withheld): {tot_c / tot_n:.4%}"
            f" pooled; per image mean {np.mean([i['false_black_frac'] for i in fb]):.4%},"
            f" max {max(i['false_black_frac'] for i in fb):.4%}"
        )
        if an:
            anat_px = sum(i["anatomy_px"] for i in an)
            lines.append(
                f"- of anatomy (non-text pixels not near-black in the reference): pooled "
                f"{sum(i['anatomy_false_frac'] * i['anatomy_px'] for i in an) / anat_px:.4%}"
            )
        pt = sum(i.get("prior_text_px", 0) for i in fb)
        if pt:
            lines.append(
                f"- text already in the base images (found by Tesseract before drawing, excluded above):"
                f" {sum(i.get('prior_text_blacked', 0) for i in fb) / pt:.1%} of its padded area blacked"
            )
        lines.append(
            f"- non-text pixels changed at all (|diff|>8): "
            f"{sum(i.get('nontext_changed_any', 0) for i in fb) / tot_n:.4%}"
        )
    lines += [
        f"- ingest wall time: always {t_eval:.1f} s ({t_eval / n_img:.2f} s/image, {t_eval / n_frames:.2f} s/frame),"
        f" never {t_ref:.1f} s ({t_ref / n_img:.2f} s/image); burned-in share of ingest time"
        f" {(t_eval - t_ref) / t_eval:.0%}"
        + (f"; OCR seconds in the audit rows {ocr_s:.1f} s ({ocr_s / n_img:.2f} s/image)" if ocr_s else ""),
        "",
    ]

    def table(title: str, key: Any) -> None:
        groups: dict[str, list[Item]] = {}
        for t in tokens:
            groups.setdefault(key(t), []).append(t)
        lines.append(f"| {title} | removed | recall |")
        lines.append("|---|---|---|")
        for g in sorted(groups):
            ts = groups[g]
            lines.append(
                f"| {g} | {sum(t.removed for t in ts)}/{len(ts)} | {sum(t.removed for t in ts) / len(ts):.3f} |"
            )
        lines.append("")

    table("token kind", lambda t: t.kind)
    table("text size (px)", lambda t: _bins(t.size))
    table("contrast as drawn", lambda t: t.contrast)
    table("contrast measured in reference rendering (grey levels)", lambda t: _contrast_bin(t.ref_contrast))
    table("position", lambda t: t.position.split("_")[0] if t.position.startswith("block") else t.position)
    table("base image", lambda t: base_of[t.image])
    table("header carries the identifiers", lambda t: "DICOM (yes)" if header_of[t.image] else "picture (no)")
    table("font", lambda t: t.font.replace(".ttf", ""))
    table("antialiased", lambda t: str(t.antialias))
    table("drawn over text already in the base", lambda t: str(t.over_prior))
    lines.append("| negative kind | kept |")
    lines.append("|---|---|")
    for k in sorted({n.kind for n in negs}):
        ns = [n for n in negs if n.kind == k]
        lines.append(f"| {k} | {sum(n.kept for n in ns)}/{len(ns)} |")
    lines.append("")
    fails = [t for t in tokens if not t.removed]
    lines.append(f"### Missed tokens ({len(fails)})")
    lines.append("")
    lines.append(
        "| image | kind | text | size | font | contrast (drawn / measured) | position | ink black | box black |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for t in fails:
        lines.append(
            f"| {t.image} | {t.kind} | `{t.label + ' ' if t.label else ''}{t.text}` | {t.size} | "
            f"{t.font.replace('.ttf', '')}{'' if t.antialias else ' (no AA)'} | {t.contrast} / "
            f"{t.ref_contrast:.0f} | {t.position}{' (over base text)' if t.over_prior else ''} | {t.ink_black:.2f} |"
            f" {t.box_black:.2f} |"
        )
    lines.append("")
    lost = [n for n in negs if not n.kept]
    lines.append(f"### Negatives lost ({len(lost)})")
    for n in lost:
        lines.append(
            f"- {n.image}: {n.kind} size {n.size} ink black {n.ink_black:.2f}"
            + (" (image withheld)" if n.image in withheld else "")
        )
    lines.append("")
    lines.append("### Per image")
    lines.append("| image | tokens removed | boxes reported | withheld | false black % | anatomy false % |")
    lines.append("|---|---|---|---|---|---|")
    for i in imgs:
        ts = [t for t in tokens if t.image == i["name"]]
        fbf = i.get("false_black_frac")
        af = i.get("anatomy_false_frac")
        lines.append(
            f"| {i['name']} | {sum(t.removed for t in ts)}/{len(ts)} | {i.get('boxes_reported')} | "
            f"{i['withheld']} | {'' if fbf is None else f'{fbf:.3%}'} | {'' if af is None else f'{af:.3%}'}"
            f"{' ' + i['error'] if i.get('error') else ''} |"
        )
    return "\n".join(lines)


def _ratio(ts: list[Item]) -> str:
    return f"{sum(t.removed for t in ts)}/{len(ts)} = {sum(t.removed for t in ts) / max(1, len(ts)):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder (made inputs, renderings, results)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--images", type=int, default=len(PLAN))
    parser.add_argument("--make-only", action="store_true", help="only make the images")
    parser.add_argument(
        "--score-only", action="store_true", help="score the renderings of an earlier run in --out again (no ingest)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.score_only:
        made = [
            Made(**{**m, "items": [Item(**it) for it in m["items"]]})
            for m in json.loads((args.out / "made.json").read_text())
        ]
        timing = json.loads((args.out / "timing.json").read_text())
        t_ref, t_eval, ocr_s = timing["t_ref"], timing["t_eval"], timing["ocr_s"]
        ref_lines = _read_lines(args.out / "ref.stdout.jsonl")
        eval_lines = _read_lines(args.out / "eval.stdout.jsonl")
    else:
        t0 = time.perf_counter()
        made = make_all(args.out, args.seed, args.images)
        (args.out / "made.json").write_text(json.dumps([asdict(mk) for mk in made]))
        sys.stderr.write(f"made {len(made)} images in {time.perf_counter() - t0:.1f} s under {args.out / 'inputs'}\n")
        if args.make_only:
            return 0
        files = [mk.path for mk in made]
        t_ref, ref_lines, _ = run_ingest(files, args.out, "ref")
        sys.stderr.write(f"reference run (never): {t_ref:.1f} s\n")
        t_eval, eval_lines, ocr_s = run_ingest(files, args.out, "eval")
        sys.stderr.write(f"evaluated run (always): {t_eval:.1f} s\n")
        (args.out / "timing.json").write_text(json.dumps({"t_ref": t_ref, "t_eval": t_eval, "ocr_s": ocr_s}))
    scored = score(made, args.out, ref_lines, eval_lines)
    text = report(made, scored, t_ref, t_eval, ocr_s)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "seed": args.seed,
                "t_ref": t_ref,
                "t_eval": t_eval,
                "ocr_s": ocr_s,
                "images": scored["images"],
                "items": [asdict(it) for mk in made for it in mk.items],
            },
            indent=1,
        )
    )
    (args.out / "report.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
