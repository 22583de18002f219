"""Held-out burned-in text set C: realistic screen layouts, scored through the command line only.

Run: ``.venv/bin/python -m bench.heldout_burned_in_c --seed N --work DIR [--images N]``.

Each image is a real frame (shared DICOM set, VQA-RAD pictures) with a layout drawn on it at run time from the
seed: an ultrasound console header, a viewer screenshot with four overlay corners, or a radiograph with an
institution stamp and a label block. Identifiers are synthetic. ``radassist ingest --out`` renders every planted
image and its clean twin with ``RADASSIST_BURNED_IN_TEXT=never`` and the planted images again with ``always``;
the renderings are compared pixel by pixel (token = one identifier word; removed when >= 95 % of its ink is
black, or the image was withheld). Prints and writes ``DIR/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
DICOM_DIR = SHARED / "dicom"
VQA_DIR = SHARED / "vqa_rad" / "images"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = [
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSerifCondensed.ttf",
]
US_FILES = [
    "pydicom_data/US1_J2KR.dcm",
    "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm",
    "pydicom_data/OBXXXX1A_rle_2frame.dcm",
    "pydicom_data/US1_J2KI.dcm",
]
CR_FILES = ["pydicom_data/RG1_UNCI.dcm", "pydicom_data/RG3_J2KR.dcm"]
XSEC_FILES = [
    "pydicom_data/693_UNCI.dcm",
    "dcm_qa_ts/1.dcm",
    "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm",
    "pydicom_data/MR2_J2KI.dcm",
    "pydicom_data/693_J2KR.dcm",
]
GIVEN = [
    "Jane",
    "Marcus",
    "Elena",
    "Tobias",
    "Priya",
    "Walter",
    "Ingrid",
    "Rafael",
    "Noor",
    "Delphine",
    "Oskar",
    "Mireille",
    "Tadeo",
    "Greta",
    "Lucian",
    "Hollis",
    "Saoirse",
    "Bertram",
    "Yara",
    "Corwin",
]
FAMILY = [
    "Doe",
    "Halvorsen",
    "Whitacre",
    "Okonkwo",
    "Brandtner",
    "Castellano",
    "Pemberton",
    "Lindqvist",
    "Marchetti",
    "Abernathy",
    "Szabo",
    "Fairweather",
    "Kowalczyk",
    "Delacroix",
    "Quintero",
    "Ashdown",
]
PLACES = ["Harbor Valley", "Brookfield", "Lakeside", "Northgate", "Saint Aurelia", "Cedar Ridge", "Westmoor"]
KINDS = ["Medical Center", "General Hospital", "Imaging Center", "Clinic", "Radiology"]
BLACK = 8
VISIBLE = 24
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


@dataclass
class Identity:
    given: str
    family: str
    mrn: str
    accession: str
    dob: tuple[int, int, int]
    study: tuple[int, int, int]
    institution: str

    @classmethod
    def random(cls, rng: random.Random) -> Identity:
        def day(lo: int, hi: int) -> tuple[int, int, int]:
            return rng.randint(lo, hi), rng.randint(1, 12), rng.randint(1, 28)

        mrn = rng.choice(
            [
                f"{rng.randint(10**6, 10**9 - 1)}",
                f"H{rng.randint(10**6, 10**7 - 1)}",
                f"{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            ]
        )
        return cls(
            rng.choice(GIVEN),
            rng.choice(FAMILY),
            mrn,
            f"A{rng.randint(10**7, 10**8 - 1)}",
            day(1931, 2015),
            day(2016, 2026),
            f"{rng.choice(PLACES)} {rng.choice(KINDS)}",
        )


def fmt_date(d: tuple[int, int, int], style: int) -> str:
    y, m, dd = d
    return [
        f"{m:02d}/{dd:02d}/{y}",
        f"{y}-{m:02d}-{dd:02d}",
        f"{dd:02d}-{MONTHS[m - 1].title()}-{y}",
        f"{y}{m:02d}{dd:02d}",
        f"{dd:02d}.{m:02d}.{y}",
        f"{dd:02d} {MONTHS[m - 1]} {y}",
    ][style]


Part = tuple[str, str, str]  # text, role (token | negative | other), kind


def name_parts(who: Identity, rng: random.Random) -> list[Part]:
    g, f = who.given, who.family
    form = rng.randrange(5)
    if form == 0:
        return [(f.upper(), "token", "name"), (", ", "other", ""), (g.upper(), "token", "name")]
    if form == 1:
        return [(f.upper(), "token", "name"), ("^", "other", ""), (g.upper(), "token", "name")]
    if form == 2:
        return [(g, "token", "name"), (" ", "other", ""), (f, "token", "name")]
    if form == 3:
        return [(f, "token", "name"), (", ", "other", ""), (g, "token", "name")]
    return [(g.upper(), "token", "name"), (" ", "other", ""), (f.upper(), "token", "name")]


def inst_parts(who: Identity, upper: bool) -> list[Part]:
    words = who.institution.upper().split() if upper else who.institution.split()
    out: list[Part] = []
    for i, w in enumerate(words):
        if i:
            out.append((" ", "other", ""))
        out.append((w, "token", "institution"))
    return out


@dataclass
class Item:
    role: str
    kind: str
    x0: int
    y0: int
    alpha: np.ndarray  # local coverage 0..1
    size: int
    position: str
    text: str


@dataclass
class Canvas:
    """Pixels in storage units: uint8 RGB, or grayscale DICOM values with a known window."""

    arr: np.ndarray
    gray_to_value: Any = None  # display gray 0..255 -> stored value (grayscale DICOM only)
    items: list[Item] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.arr.shape[0]), int(self.arr.shape[1])

    def paint(self, x0: int, y0: int, alpha: np.ndarray, rgb: tuple[int, int, int]) -> None:
        h, w = self.shape
        ys, xs = slice(max(y0, 0), min(y0 + alpha.shape[0], h)), slice(max(x0, 0), min(x0 + alpha.shape[1], w))
        a = alpha[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        region = self.arr[ys, xs].astype(np.float64)
        if self.gray_to_value is None:
            out = region * (1 - a[..., None]) + np.array(rgb, dtype=np.float64) * a[..., None]
        else:
            lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
            out = region * (1 - a) + float(self.gray_to_value(lum)) * a
        self.arr[ys, xs] = np.round(out).astype(self.arr.dtype)

    def rect(self, x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int], opacity: float) -> None:
        self.paint(x0, y0, np.full((max(y1 - y0, 1), max(x1 - x0, 1)), opacity), rgb)


def position_of(cx: float, cy: float, w: int, h: int) -> str:
    row = "top" if cy < h / 3 else ("bottom" if cy > 2 * h / 3 else "middle")
    col = "left" if cx < w / 3 else ("right" if cx > 2 * w / 3 else "center")
    return f"{row}-{col}"


def draw_line(
    cv: Canvas,
    parts: list[Part],
    x: int,
    y: int,
    font: ImageFont.FreeTypeFont,
    size: int,
    rgb: tuple[int, int, int],
    right: bool = False,
) -> tuple[int, int]:
    """Draw one line of parts; each non-blank part becomes an Item. Returns the line's (width, height)."""
    full = "".join(p[0] for p in parts)
    width = int(np.ceil(font.getlength(full)))
    ascent, descent = font.getmetrics()
    if right:
        x -= width
    h, w = cv.shape
    m = 2
    for i, (text, role, kind) in enumerate(parts):
        if not text.strip():
            continue
        off = int(round(font.getlength("".join(p[0] for p in parts[:i]))))
        img = Image.new("L", (int(np.ceil(font.getlength(text))) + 2 * m, ascent + descent + 2 * m), 0)
        ImageDraw.Draw(img).text((m, m), text, font=font, fill=255)
        alpha = np.asarray(img, dtype=np.float64) / 255.0
        x0, y0 = x + off - m, y - m
        cv.paint(x0, y0, alpha, rgb)
        pos = position_of(x0 + alpha.shape[1] / 2, y0 + alpha.shape[0] / 2, w, h)
        cv.items.append(Item(role, kind, x0, y0, alpha, size, pos, text))
    return width, ascent + descent


def graphic(cv: Canvas, x0: int, y0: int, mask: np.ndarray, rgb: tuple[int, int, int], kind: str) -> None:
    h, w = cv.shape
    alpha = mask.astype(np.float64)
    cv.paint(x0, y0, alpha, rgb)
    pos = position_of(x0 + mask.shape[1] / 2, y0 + mask.shape[0] / 2, w, h)
    cv.items.append(Item("negative", kind, x0, y0, alpha, mask.shape[0], pos, kind))


def scale_bar(length: int, ticks: int) -> np.ndarray:
    m = np.zeros((9, length + 1), dtype=bool)
    m[4:6, :] = True
    for t in np.linspace(0, length, ticks + 1).astype(int):
        m[:, max(t - 1, 0) : t + 1] = True
    return m


def caliper(size: int) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    c = size // 2
    m[c - 1 : c + 1, :] = True
    m[:, c - 1 : c + 1] = True
    return m


@dataclass
class Style:
    font: ImageFont.FreeTypeFont
    size: int
    rgb: tuple[int, int, int]
    background: str  # dark | band | none | low


def pick_style(rng: random.Random, lo: int, hi: int) -> Style:
    size = rng.randint(lo, hi)
    font = ImageFont.truetype(str(FONT_DIR / rng.choice(FONTS)), size)
    background = rng.choices(["dark", "band", "none", "low"], [4, 3, 2, 2])[0]
    if background == "low":
        g = rng.randint(95, 135)
        return Style(font, size, (g, g, g), background)
    return Style(
        font, size, rng.choice([(255, 255, 255), (200, 200, 200), (235, 220, 40), (170, 170, 170)]), background
    )


def backdrop(cv: Canvas, style: Style, x0: int, y0: int, x1: int, y1: int) -> None:
    if style.background == "dark":
        cv.rect(x0, y0, x1, y1, (10, 10, 12), 1.0)
    elif style.background == "band":
        cv.rect(x0, y0, x1, y1, (0, 0, 0), 0.55)
    elif style.background == "low":
        cv.rect(x0, y0, x1, y1, (60, 60, 60), 0.8)


def layout_us(cv: Canvas, who: Identity, rng: random.Random, decor_only: bool) -> None:
    """Ultrasound console: header bar with name, ID, DOB, date/time, institution, probe and preset."""
    h, w = cv.shape
    st = pick_style(rng, 9, 18 if w < 900 else 26)
    asc, desc = st.font.getmetrics()
    lh = asc + desc + 3
    backdrop(
        cv, Style(st.font, st.size, st.rgb, "dark" if st.background == "none" else st.background), 0, 0, w, 2 * lh + 6
    )
    if decor_only:
        return
    ds = rng.randrange(6)
    t = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    line1 = name_parts(who, rng) + [("   ID: ", "other", ""), (who.mrn, "token", "id")]
    line2 = [
        ("DOB: ", "other", ""),
        (fmt_date(who.dob, ds), "token", "dob"),
        ("   ", "other", ""),
        (fmt_date(who.study, ds), "token", "date"),
        (" ", "other", ""),
        (t, "other", "time"),
    ]
    draw_line(cv, line1, 4, 3, st.font, st.size, st.rgb)
    draw_line(cv, line2, 4, 3 + lh, st.font, st.size, st.rgb)
    draw_line(cv, inst_parts(who, rng.random() < 0.5), w - 4, 3, st.font, st.size, st.rgb, right=True)
    probe = rng.choice(["C5-1", "L12-5", "C9-2", "S5-1", "L18-4"])
    preset = rng.choice(["Abd Gen", "Thyroid", "OB 2/3", "Renal", "Vasc"])
    draw_line(
        cv,
        [(probe, "negative", "probe"), ("  ", "other", ""), (preset, "other", "preset")],
        w - 4,
        3 + lh,
        st.font,
        st.size,
        st.rgb,
        right=True,
    )
    small = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), max(st.size, 11))
    depth = f"{rng.randint(4, 24)} cm"
    draw_line(cv, [(depth, "negative", "depth")], w - 6, h - 2 * lh - 10, small, st.size, st.rgb, right=True)
    draw_line(
        cv,
        [(f"+ {rng.randint(1, 9)}.{rng.randint(0, 9)} cm", "negative", "caliper")],
        8,
        h - lh - 8,
        small,
        st.size,
        (235, 220, 40),
    )
    cx, cy = rng.randint(w // 4, w // 2), rng.randint(h // 3, 2 * h // 3)
    graphic(cv, cx, cy, caliper(11), (235, 220, 40), "caliper_mark")
    graphic(cv, cx + rng.randint(40, 120), cy + rng.randint(-20, 20), caliper(11), (235, 220, 40), "caliper_mark")


def layout_viewer(cv: Canvas, who: Identity, rng: random.Random, decor_only: bool) -> None:
    """Viewer screenshot: overlay text in all four corners."""
    h, w = cv.shape
    st = pick_style(rng, 9, 16 if w < 700 else 24)
    asc, desc = st.font.getmetrics()
    lh = asc + desc + 2
    ds = rng.randrange(6)
    t = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    tl = [
        name_parts(who, rng),
        [("MRN: ", "other", ""), (who.mrn, "token", "id")],
        [("DOB: ", "other", ""), (fmt_date(who.dob, ds), "token", "dob")],
    ]
    tr = [
        inst_parts(who, rng.random() < 0.3),
        [("Acc: ", "other", ""), (who.accession, "token", "accession")],
        [(fmt_date(who.study, ds), "token", "date"), (" ", "other", ""), (t, "other", "time")],
    ]
    bl = [
        [(f"Se: {rng.randint(1, 9)} Im: {rng.randint(1, 240)}", "negative", "series")],
        [(f"W: {rng.choice([400, 350, 1500, 80])} L: {rng.choice([40, 50, -600, 35])}", "negative", "wl")],
    ]
    br = [
        [(rng.choice(["SUPINE", "PRONE", "AX", "COR"]), "negative", "orientation")],
        [(f"Thk: {rng.choice(['1.0', '2.5', '5.0'])} mm", "negative", "thickness")],
    ]
    blocks = [
        (tl, 4, 3, False),
        (tr, w - 4, 3, True),
        (bl, 4, h - len(bl) * lh - 3, False),
        (br, w - 4, h - len(br) * lh - 3, True),
    ]
    for lines, x, y, right in blocks:
        widest = max(int(st.font.getlength("".join(p[0] for p in ln))) for ln in lines)
        bx0 = x - widest - 4 if right else x - 3
        backdrop(cv, st, bx0, y - 2, bx0 + widest + 7, y + len(lines) * lh + 2)
        if decor_only:
            continue
        for i, ln in enumerate(lines):
            draw_line(cv, ln, x, y + i * lh, st.font, st.size, st.rgb, right=right)
    if not decor_only:
        mk = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), min(30, st.size + 8))
        draw_line(cv, [(rng.choice(["R", "L"]), "negative", "side")], 6, h // 2, mk, st.size + 8, st.rgb)


def layout_cr(cv: Canvas, who: Identity, rng: random.Random, decor_only: bool) -> None:
    """Radiograph: institution stamp, a name/date label block, side marker, projection words, scale bar."""
    h, w = cv.shape
    big = max(h, w) > 1200
    st = pick_style(rng, 16 if big else 9, 30 if big else 20)
    asc, desc = st.font.getmetrics()
    lh = asc + desc + 3
    ds = rng.randrange(6)
    label = [
        name_parts(who, rng),
        [("ID: ", "other", ""), (who.mrn, "token", "id")],
        [("DOB: ", "other", ""), (fmt_date(who.dob, ds), "token", "dob")],
        [(fmt_date(who.study, ds), "token", "date"), ("  Acc# ", "other", ""), (who.accession, "token", "accession")],
    ]
    widest = max(int(st.font.getlength("".join(p[0] for p in ln))) for ln in label)
    right = rng.random() < 0.5
    bx = w - widest - 20 if right else 10
    by = h - len(label) * lh - 20
    backdrop(
        cv,
        Style(st.font, st.size, st.rgb, "dark" if st.background == "none" else st.background),
        bx,
        by,
        bx + widest + 12,
        by + len(label) * lh + 10,
    )
    if decor_only:
        return
    for i, ln in enumerate(label):
        draw_line(cv, ln, bx + 6, by + 5 + i * lh, st.font, st.size, st.rgb)
    stamp = ImageFont.truetype(str(FONT_DIR / rng.choice(FONTS)), max(9, st.size - 2))
    draw_line(
        cv,
        inst_parts(who, rng.random() < 0.6),
        w - 12 if not right else 12,
        12,
        stamp,
        max(9, st.size - 2),
        st.rgb,
        right=not right,
    )
    mk_size = min(30, st.size + 10)
    mk = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), mk_size)
    draw_line(
        cv,
        [(rng.choice(["L", "R"]), "negative", "side")],
        14 if right else w - 40,
        h // 6,
        mk,
        mk_size,
        (255, 255, 255),
    )
    words = rng.sample(["AP", "PORTABLE", "SUPINE", "ERECT", "PA"], 2)
    y = h // 6 + mk_size + 12
    for wd in words:
        draw_line(
            cv, [(wd, "negative", "projection")], 14 if right else w - 14, y, st.font, st.size, st.rgb, right=not right
        )
        y += lh
    length = rng.randint(80, 200) if big else rng.randint(40, 90)
    graphic(cv, w // 2 - length // 2, h - 30, scale_bar(length, 5), (230, 230, 230), "scale_bar")
    small = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), max(9, st.size - 4))
    draw_line(
        cv,
        [("5 cm", "negative", "scale_label")],
        w // 2 + length // 2 + 6,
        h - 34 - asc // 3,
        small,
        max(9, st.size - 4),
        (230, 230, 230),
    )


LAYOUTS = {"us_console": layout_us, "viewer_corners": layout_viewer, "cr_label": layout_cr}


def to_display(ds: pydicom.Dataset, frame: np.ndarray) -> np.ndarray:
    """A grayscale or colour frame as 8-bit RGB (its own window, else 1-99 percentiles)."""
    if frame.ndim == 3:
        return frame.astype(np.uint8)
    m = frame.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    wc, ww = ds.get("WindowCenter"), ds.get("WindowWidth")
    if wc is not None and ww is not None:
        c = float(wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc)
        wd = float(ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww)
        lo, hi = c - wd / 2, c + wd / 2
    else:
        lo, hi = float(np.percentile(m, 1)), float(np.percentile(m, 99))
    g = np.clip((m - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        g = 255 - g
    return np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)


def first_frame(ds: pydicom.Dataset) -> np.ndarray:
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[0]
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)
    return arr


def stamp_header(ds: pydicom.Dataset, who: Identity, seed_key: str) -> None:
    ds.PatientName = f"{who.family}^{who.given}"
    ds.PatientID = who.mrn
    ds.PatientBirthDate = "{:04d}{:02d}{:02d}".format(*who.dob)
    ds.StudyDate = "{:04d}{:02d}{:02d}".format(*who.study)
    ds.InstitutionName = who.institution
    ds.AccessionNumber = who.accession
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[seed_key, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[seed_key, "series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed_key, "sop"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def write_dicom(
    template: pydicom.Dataset, arr: np.ndarray, path: Path, who: Identity, key: str, modality: str | None
) -> None:
    ds = template.copy()
    for kw in (
        "NumberOfFrames",
        "FrameIncrementPointer",
        "PlanarConfiguration",
        "VOILUTSequence",
        "RedPaletteColorLookupTableDescriptor",
        "GreenPaletteColorLookupTableDescriptor",
        "BluePaletteColorLookupTableDescriptor",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "PerFrameFunctionalGroupsSequence",
    ):
        if kw in ds:
            delattr(ds, kw)
    for tag in [t for t in ds.keys() if t.group & 0xFF00 == 0x6000]:
        del ds[tag]
    if modality:
        ds.Modality = modality
        if modality == "OT":
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if arr.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        for kw in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept"):
            if kw in ds:
                delattr(ds, kw)
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    ds.BurnedInAnnotation = "YES" if ds.Modality in ("US", "OT") else "NO"
    stamp_header(ds, who, key)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    ds.save_as(path, enforce_file_format=True)


@dataclass
class Case:
    name: str
    layout: str
    fmt: str  # modality or upload format
    planted: Path
    clean: Path
    items: list[Item]
    jpeg: bool
    shape: tuple[int, int]  # input rows, columns (the masks' frame)


def grayscale_canvas(ds: pydicom.Dataset, arr: np.ndarray) -> Canvas:
    """Native grayscale pixels with one explicit window, so a display gray maps back to a stored value."""
    slope = float(ds.get("RescaleSlope", 1) or 1)
    icpt = float(ds.get("RescaleIntercept", 0) or 0)
    m = arr.astype(np.float64) * slope + icpt
    lo, hi = np.percentile(m, 1), np.percentile(m, 99.5)
    ds.WindowCenter, ds.WindowWidth = f"{(lo + hi) / 2:.1f}", f"{max(hi - lo, 2):.1f}"
    mono1 = ds.PhotometricInterpretation == "MONOCHROME1"
    bits = int(ds.BitsStored)
    vmin, vmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)

    def to_value(gray: float) -> float:
        g = 255 - gray if mono1 else gray
        return float(np.clip((lo + g / 255 * (hi - lo) - icpt) / slope, vmin, vmax))

    return Canvas(arr.copy(), to_value)


def make_case(
    i: int, seed: int, rng: random.Random, work: Path, vqa: list[Path], used_sizes: set[tuple[int, int]]
) -> Case:
    layout = ["us_console", "viewer_corners", "cr_label"][i % 3]
    who = Identity.random(rng)
    key = f"{seed}-{i}"
    src_kind = rng.choices(["dicom", "png", "jpeg"], [5, 2, 2])[0]
    draw = LAYOUTS[layout]
    template: pydicom.Dataset | None = None
    modality: str | None = None
    if src_kind == "dicom":
        pool = {"us_console": US_FILES, "viewer_corners": XSEC_FILES, "cr_label": CR_FILES}[layout]
        template = pydicom.dcmread(DICOM_DIR / rng.choice(pool))
        frame = first_frame(template)
        if layout == "viewer_corners" and rng.random() < 0.5:
            modality, canvas_arr = "OT", to_display(template, frame)
            pad = rng.randint(0, 60)
            canvas_arr = np.pad(canvas_arr, ((pad, pad), (pad * 2, pad * 2), (0, 0)))
            base = Canvas(canvas_arr)
        elif frame.ndim == 3:
            base = Canvas(frame.astype(np.uint8).copy())
        else:
            if frame.dtype == np.uint8 and template.Modality == "US":
                base = Canvas(np.repeat(frame[..., None], 3, axis=2).copy())
            else:
                base = grayscale_canvas(template, frame)
        fmt = modality or str(template.Modality)
    else:
        pic = np.asarray(Image.open(rng.choice(vqa)).convert("RGB"))
        scale = 900 / max(pic.shape[:2]) if max(pic.shape[:2]) > 1100 else 1.0
        if scale != 1.0:
            pic = np.asarray(Image.fromarray(pic).resize((int(pic.shape[1] * scale), int(pic.shape[0] * scale))))
        h0, w0 = pic.shape[:2]
        while (h0, w0) in used_sizes:  # the command line groups same-sized pictures into one series
            h0, w0 = h0 - rng.randint(1, 9), w0 - rng.randint(1, 9)
        used_sizes.add((h0, w0))
        base = Canvas(pic[:h0, :w0].copy())
        fmt = src_kind
    clean = Canvas(base.arr.copy(), base.gray_to_value)
    state = rng.getstate()
    draw(clean, who, rng, True)
    rng.setstate(state)
    draw(base, who, rng, False)
    planted, clean_path = work / "in" / f"c{i:03d}.x", work / "in" / f"c{i:03d}_clean.x"
    quality = rng.randint(60, 85)
    for cv, path, tag in ((base, planted, "p"), (clean, clean_path, "c")):
        if src_kind == "dicom" and template is not None:
            write_dicom(template, cv.arr, path.with_suffix(".dcm"), who, f"{key}-{tag}", modality)
        elif src_kind == "png":
            Image.fromarray(cv.arr).save(path.with_suffix(".png"))
        else:
            Image.fromarray(cv.arr).save(path.with_suffix(".jpg"), quality=quality)
    suffix = {"dicom": ".dcm", "png": ".png", "jpeg": ".jpg"}[src_kind]
    return Case(
        f"c{i:03d}",
        layout,
        fmt,
        planted.with_suffix(suffix),
        clean_path.with_suffix(suffix),
        base.items,
        src_kind == "jpeg",
        base.shape,
    )


def run_blackbox(
    exe: Path, files: list[Path], mode: str, work: Path, tag: str, jobs: int
) -> tuple[dict[str, dict[str, Any]], float]:
    """Ingest `files` in `jobs` parallel batches; rows by path (each with its batch's out dir), summed batch time."""
    procs = []
    for j in range(jobs):
        batch = files[j::jobs]
        if not batch:
            continue
        data, out = work / f"data_{tag}_{j}", work / f"out_{tag}_{j}"
        for d in (data, out):
            shutil.rmtree(d, ignore_errors=True)
        env = dict(os.environ, RADASSIST_DATA_DIR=str(data), RADASSIST_BURNED_IN_TEXT=mode)
        cmd = [str(exe), "ingest", *map(str, batch), "--json", "--out", str(out)]
        procs.append(
            (
                out,
                time.perf_counter(),
                subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            )
        )
    rows: dict[str, dict[str, Any]] = {}
    spent = 0.0
    for out, t0, proc in procs:
        stdout, stderr = proc.communicate()
        spent += time.perf_counter() - t0
        for line in stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                if "path" in row:
                    rows[row["path"]] = dict(row, _out=str(out))
        if not stdout.strip():
            raise SystemExit(f"radassist ingest ({mode}) gave no JSON; rc={proc.returncode}: {stderr[-800:]}")
    return rows, spent


def rendering(rows: dict[str, dict[str, Any]], path: Path) -> tuple[np.ndarray | None, bool, str | None]:
    """(frame as HxWx3 int16 or None, withheld, its PNG) for one input file; a failed file counts as withheld."""
    row = rows.get(str(path))
    if not row or not row.get("ok"):
        return None, True, None
    out = Path(row["_out"])
    summary = row["summary"]
    bit = summary.get("burned_in_text") or {}
    withheld = int(bit.get("withheld_frames") or 0) > 0
    found = sorted(out.glob(f"*/*_{summary['series_uid'][-8:]}/frame*.png"))
    if not found:
        return None, True, None
    if len(found) > 1:
        raise SystemExit(f"{path.name}: expected one rendered frame, found {len(found)}")
    img = np.asarray(Image.open(found[0]).convert("RGB")).astype(np.int16)
    return img, withheld, str(found[0])


def fit(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    return (
        np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((shape[1], shape[0]), Image.Resampling.NEAREST))
        > 0
    )


def full_mask(item: Item, shape: tuple[int, int], thr: float) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    h, w = shape
    y0, x0 = item.y0, item.x0
    a = item.alpha >= thr
    ys, xs = slice(max(y0, 0), min(y0 + a.shape[0], h)), slice(max(x0, 0), min(x0 + a.shape[1], w))
    m[ys, xs] = a[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return m


def dump_case(path: Path, case: Case, never_p: np.ndarray, never_c: np.ndarray, always: np.ndarray | None) -> None:
    """never | always | ink map (red: token ink, green: negative ink, blue: black in `always` off the text)."""
    shape = (never_p.shape[0], never_p.shape[1])
    diff = np.abs(never_p - never_c).max(axis=2)
    run = always if always is not None else np.zeros_like(never_p)
    overlay = (never_p // 3).astype(np.uint8)
    union = np.zeros(shape, dtype=bool)
    for item in case.items:
        union |= fit(full_mask(item, case.shape, 0.05), shape)
        if item.role == "other":
            continue
        ink = fit(full_mask(item, case.shape, 0.5), shape) & (diff > 10)
        overlay[ink] = (255, 0, 0) if item.role == "token" else (0, 255, 0)
    stray = (run.max(axis=2) <= BLACK) & (never_p.max(axis=2) > VISIBLE) & ~ndimage.binary_dilation(union, iterations=4)
    overlay[stray] = (0, 0, 255)
    strip = np.concatenate([never_p.astype(np.uint8), run.astype(np.uint8), overlay], axis=1)
    img = Image.fromarray(strip)
    if img.width > 2400:
        img = img.resize((2400, int(img.height * 2400 / img.width)))
    img.save(path)


def size_bin(s: int) -> str:
    return "9-12" if s <= 12 else "13-17" if s <= 17 else "18-23" if s <= 23 else "24-30"


def score_case(
    case: Case, never_p: np.ndarray | None, never_c: np.ndarray | None, always: np.ndarray | None, withheld: bool
) -> dict[str, Any]:
    if never_p is None or never_c is None:
        return {"name": case.name, "error": "reference rendering missing", "tokens": [], "negatives": []}
    shape = (never_p.shape[0], never_p.shape[1])
    diff = np.abs(never_p - never_c).max(axis=2)
    black_ref = never_p.max(axis=2) <= BLACK
    black_run = (always.max(axis=2) <= BLACK) if always is not None else np.ones(shape, dtype=bool)
    union = np.zeros(shape, dtype=bool)
    tokens, negatives = [], []
    for item in case.items:
        core = fit(full_mask(item, case.shape, 0.5), shape)
        union |= fit(full_mask(item, case.shape, 0.05), shape)
        ink = core & (diff > 10) & ~black_ref
        n = int(ink.sum())
        if item.role == "other":
            continue
        ring = ndimage.binary_dilation(core, iterations=3) & ~ndimage.binary_dilation(core, iterations=1)
        ring &= diff <= 10  # background only, not a neighbour's ink
        contrast = float(never_p[ink].mean() - never_p[ring].mean()) if n and ring.any() else 0.0
        frac = float(black_run[ink].mean()) if n else 0.0
        rec: dict[str, Any] = {
            "text": item.text if item.role == "negative" else None,
            "kind": item.kind,
            "ink": n,
            "size": size_bin(item.size),
            "position": item.position,
            "contrast": "low" if abs(contrast) < 60 else ("mid" if abs(contrast) < 130 else "high"),
            "black_share": round(frac, 3),
        }
        if item.role == "token":
            rec["removed"] = withheld or (n > 0 and frac >= 0.95)
            tokens.append(rec)
        else:
            rec["kept"] = (not withheld) and always is not None and frac <= 0.10
            negatives.append(rec)
    false_share = None
    if not withheld and always is not None:
        # visible non-text pixels: blacking out an already dark bar or border hides nothing
        nontext = ~ndimage.binary_dilation(union, iterations=4) & (never_p.max(axis=2) > VISIBLE)
        false_share = float((black_run & nontext).sum() / max(int(nontext.sum()), 1))
    # sanity: reference differences outside every drawn mask (0 for lossless inputs; JPEG ringing otherwise)
    changed = diff > 10
    outside = float((changed & ~ndimage.binary_dilation(union, iterations=2)).sum() / max(int(changed.sum()), 1))
    return {
        "name": case.name,
        "layout": case.layout,
        "format": case.fmt,
        "withheld": withheld,
        "tokens": [t for t in tokens if t["ink"] >= 5],
        "invisible_tokens": sum(t["ink"] < 5 for t in tokens),
        "negatives": [t for t in negatives if t["ink"] >= 5],
        "false_redaction": false_share,
        "diff_outside_masks": round(outside, 4),
    }


def recall(tokens: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(tokens)
    return {"n": n, "recall": round(sum(t["removed"] for t in tokens) / n, 4) if n else None}


def summarise(cases: list[dict[str, Any]], n_images: int, t_never: float, t_always: float) -> dict[str, Any]:
    tokens = [dict(t, layout=c["layout"], format=c["format"]) for c in cases for t in c["tokens"]]
    negs = [n for c in cases for n in c["negatives"]]
    by: dict[str, dict[str, Any]] = {}
    for key in ("size", "contrast", "position", "layout", "format", "kind"):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in tokens:
            groups[str(t[key])].append(t)
        by[key] = {k: recall(v) for k, v in sorted(groups.items())}
    neg_by: dict[str, list[bool]] = defaultdict(list)
    for n in negs:
        neg_by[n["kind"]].append(n["kept"])
    fr = sorted(c["false_redaction"] for c in cases if c.get("false_redaction") is not None)
    return {
        "images": n_images,
        "tokens": recall(tokens),
        "by": by,
        "withheld_images": sum(bool(c.get("withheld")) for c in cases),
        "invisible_tokens": sum(c.get("invisible_tokens", 0) for c in cases),
        "negatives": {
            "n": len(negs),
            "kept": sum(n["kept"] for n in negs),
            "by_kind": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(neg_by.items())},
        },
        "false_redaction": {
            "shown_images": len(fr),
            "median": round(statistics.median(fr), 5) if fr else None,
            "p90": round(float(np.percentile(fr, 90)), 5) if fr else None,
        },
        "seconds_per_image": {
            "never": round(t_never / max(n_images, 1), 3),
            "always": round(t_always / max(n_images, 1), 3),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2, help="parallel ingest batches per run (default 2)")
    ap.add_argument("--dump", action="store_true", help="write DIR/debug/NAME.png: never | always | ink map")
    ap.add_argument("--radassist", type=Path, default=Path(sys.executable).parent / "radassist")
    args = ap.parse_args(argv)
    work: Path = args.work.resolve()
    shutil.rmtree(work / "in", ignore_errors=True)
    (work / "in").mkdir(parents=True)
    rng = random.Random(args.seed)
    vqa = sorted(VQA_DIR.glob("*.jpg"))
    used: set[tuple[int, int]] = set()
    cases = [make_case(i, args.seed, rng, work, vqa, used) for i in range(args.images)]
    planted = [c.planted for c in cases]
    # three runs: a planted picture and its clean twin share a size, so one run would put them in one series
    t0 = time.perf_counter()
    clean_rows, _ = run_blackbox(args.radassist, [c.clean for c in cases], "never", work, "clean", args.jobs)
    never_rows, t_never = run_blackbox(args.radassist, planted, "never", work, "never", args.jobs)
    always_rows, t_always = run_blackbox(args.radassist, planted, "always", work, "always", args.jobs)
    wall = time.perf_counter() - t0
    scored = []
    for c in cases:
        ref_p, _, png_p = rendering(never_rows, c.planted)
        ref_c, _, png_c = rendering(clean_rows, c.clean)
        run, withheld, png_a = rendering(always_rows, c.planted)
        scored.append(score_case(c, ref_p, ref_c, run, withheld))
        scored[-1]["files"] = {"planted": str(c.planted), "never": png_p, "clean": png_c, "always": png_a}
        if args.dump and ref_p is not None and ref_c is not None:
            (work / "debug").mkdir(exist_ok=True)
            dump_case(work / "debug" / f"{c.name}.png", c, ref_p, ref_c, run)
    result = summarise(scored, len(cases), t_never, t_always)
    result["seed"] = args.seed
    result["blackbox_wall_seconds"] = round(wall, 1)
    result["failed_files"] = sum(not r.get("ok") for r in always_rows.values())
    (work / "results.json").write_text(json.dumps({"summary": result, "cases": scored}, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
