"""Held-out benchmark F: identifiers burned into pixels, as a hospital validation team would plant them.

Black-box: every case is written to disk (DICOM, PNG or JPEG) with a clean twin (same pixels, no text), then
``radassist ingest --json --out`` runs on it with ``RADASSIST_BURNED_IN_TEXT`` = always and never (planted file)
and never/always (clean twin, the latter only as a baseline for pre-existing text in the source pixels).

Scoring (fixed by the brief so numbers compare with earlier sets):
- an identifier token is removed when >= 95% of its ink pixels are black (<= 8 in every channel) in the
  ``always`` rendering, or its frame was withheld, or the file failed ingest; for dark text (its ink is already
  near black) the light pixels of its box are tested instead;
- a negative (L/R marker, measurement, scale bar, view label, technical values) is kept when < 50% of its ink is
  blacked;
- false redaction: share of the visible non-text area (outside every drawn box grown by 4 px) that is black in
  ``always`` but not in ``never``, per shown frame (``fr_excl_source`` also leaves out pixels blacked in the clean
  twin's ``always`` rendering, i.e. text already in the source pixels);
- time: ingest wall time per image, ``always`` vs ``never`` (one process per file, start-up included).

Ink is the drawn text mask intersected with the pixels that differ between the planted and the clean ``never``
renderings, so whatever windowing the renderer applies is accounted for. A token is a name piece (family, given),
or a whole MRN, accession, date, institution, phone or address string; labels ("MRN:", "DOB") and age/sex/time are
neutral (neither scored nor protected). A token drawn on every frame of a multi-frame file counts once, at its worst
frame. ``recall_darkest_fill`` (a fill at the image's darkest rendered level also counts as black) is only a
side check for windowed 16-bit images: on a page with no dark pixels its threshold is meaningless, ignore it there.

Official seed: 7341 (run once: ``.venv/bin/python -m bench.heldout_burned_in_f --seed 7341 --work /tmp/bif7341
--jobs 2``). Seed 1 was used only to debug the harness.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
RADASSIST = ROOT / ".venv" / "bin" / "radassist"
BLACK = 8

SOP = {
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "US_MF": "1.2.840.10008.5.1.4.1.1.3.1",
    "SC": "1.2.840.10008.5.1.4.1.1.7",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",
    "ES": "1.2.840.10008.5.1.4.1.1.77.1.1",
}

FONT_FILES = {
    "sans": "DejaVuSans.ttf",
    "sans_bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
    "mono_bold": "DejaVuSansMono-Bold.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif_bold": "DejaVuSerif-Bold.ttf",
    "condensed": "DejaVuSansCondensed.ttf",
    "oblique": "DejaVuSans-Oblique.ttf",
    "extralight": "DejaVuSans-ExtraLight.ttf",
    "liberation_sans": "LiberationSans-Regular.ttf",
    "liberation_mono": "LiberationMono-Regular.ttf",
}

FAMILIES = ["KOWALCZYK", "ABERNATHY-LUND", "OYELARAN", "MACINTYRE", "DELACROIX", "THORNQUIST", "VASQUEZ-ORTA",
            "PELLEGRINI", "NAKAMURA-BELL", "OKONKWO", "HALVORSEN", "QUINTERO", "BRZEZINSKI", "FAIRWEATHER",
            "LINDQVIST", "ACHTERBERG", "MCGILLICUDDY", "SZABO", "RAVENSCROFT", "IBARGUEN", "WOJCIK", "TANAKA",
            "OSULLIVAN", "DUBROVSKY", "KETTERING", "ABARA", "MOREAU", "HOLLINGSWORTH", "ZAMBRANO", "PETRAKIS"]
GIVENS = ["MARGUERITE", "TOBIAS", "ADAEZE", "LEOPOLD", "SIOBHAN", "RAFAEL", "INGRID", "DESMOND", "YUKI",
          "OLUWASEUN", "BEATRIX", "CASIMIR", "PRIYA", "GUNNAR", "ESPERANZA", "THADDEUS", "MIREILLE", "KWAME",
          "ROSALIND", "EMERIC", "LUCINDA", "FERGUS", "ANOUK", "BARNABY", "HELOISE", "IGNATIUS", "NKECHI", "OTTO"]
INSTITUTIONS = ["ST. BRENDAN REGIONAL MED CTR", "NORTHGATE VALLEY HOSPITAL", "LAKESHORE IMAGING ASSOC",
                "MERCY HOLLOW CLINIC", "PINECREST UNIVERSITY HOSP", "Harbourview Diagnostic Centre",
                "ALDER PARK RADIOLOGY", "Westbrook Children's Hospital", "RIVERBEND MEDICAL GROUP"]
STREETS = ["LARKSPUR LN", "OAKHAVEN RD", "QUILLON ST", "BRAMBLEWOOD AVE", "TEMPLETON CT", "MARSH VIEW DR"]
DATE_FORMATS = ["%m/%d/%Y", "%d/%m/%Y", "%Y-%m-%d", "%d-%b-%Y", "%d.%m.%Y", "%Y%m%d", "%b %d %Y", "%d %b %Y",
                "%m/%d/%y", "%Y/%m/%d"]


# ---------------------------------------------------------------------------------------------------------------
# identities


@dataclass(frozen=True)
class Identity:
    family: str
    given: str
    middle: str
    mrn: str
    accession: str
    dob: dt.date
    study: dt.date
    institution: str
    physician: tuple[str, str]
    phone: str
    address: str


def make_identity(rng: random.Random) -> Identity:
    mrn_style = rng.randrange(4)
    digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([7, 8, 9, 10])))
    mrn = [digits, "E" + digits[:8], f"{digits[:3]}-{digits[3:5]}-{digits[5:]}", "MR" + digits[:7]][mrn_style]
    acc = rng.choice(["", "A", "CT", "US", "RX"]) + "".join(rng.choice("0123456789") for _ in range(rng.choice([7, 9])))
    dob = dt.date(1931, 1, 1) + dt.timedelta(days=rng.randrange(0, 33000))
    study = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randrange(0, 3300))
    phone = f"({rng.randrange(201, 989)}) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"
    return Identity(
        family=rng.choice(FAMILIES), given=rng.choice(GIVENS), middle=rng.choice("ABCDEJKLMRST"),
        mrn=mrn, accession=acc, dob=dob, study=study, institution=rng.choice(INSTITUTIONS),
        physician=(rng.choice(FAMILIES), rng.choice(GIVENS)), phone=phone,
        address=f"{rng.randrange(2, 9899)} {rng.choice(STREETS)}",
    )


def fmt_date(rng: random.Random, day: dt.date) -> str:
    text = day.strftime(rng.choice(DATE_FORMATS))
    return text.upper() if rng.random() < 0.6 else text


# ---------------------------------------------------------------------------------------------------------------
# text lines made of segments


@dataclass(frozen=True)
class Seg:
    text: str
    role: str  # "id" | "neg" | "neutral"
    kind: str


def idseg(text: str, kind: str) -> Seg:
    return Seg(text, "id", kind)


def negseg(text: str, kind: str) -> Seg:
    return Seg(text, "neg", kind)


def neu(text: str) -> Seg:
    return Seg(text, "neutral", "label")


def name_segs(rng: random.Random, ident: Identity) -> list[Seg]:
    fam, giv = ident.family, ident.given
    style = rng.randrange(6)
    if style == 0:
        return [idseg(fam + ",", "patient_name"), neu(" "), idseg(giv, "patient_name")]
    if style == 1:
        return [idseg(f"{fam}^{giv}", "patient_name")]
    if style == 2:
        return [idseg(giv.title(), "patient_name"), neu(" "), idseg(fam.title(), "patient_name")]
    if style == 3:
        return [idseg(fam, "patient_name"), neu(" "), idseg(giv, "patient_name"), neu(" " + ident.middle)]
    if style == 4:
        return [idseg(fam.title() + ",", "patient_name"), neu(" "), idseg(giv.title(), "patient_name")]
    return [idseg(f"{fam}, {giv[0]}.", "patient_name")]


def labelled(rng: random.Random, labels: list[str], segs: list[Seg], p: float = 0.6) -> list[Seg]:
    if rng.random() < p:
        return [neu(rng.choice(labels) + " ")] + segs
    return segs


def id_line(rng: random.Random, ident: Identity, what: str) -> list[Seg]:
    if what == "name":
        return labelled(rng, ["Name:", "Patient:", "Pt:", "NAME"], name_segs(rng, ident), 0.4)
    if what == "mrn":
        return labelled(rng, ["ID:", "MRN:", "MRN", "Pat ID", "ID"], [idseg(ident.mrn, "mrn")], 0.7)
    if what == "acc":
        return labelled(rng, ["Acc:", "Acc#", "ACC NO"], [idseg(ident.accession, "accession")], 0.8)
    if what == "dob":
        segs = labelled(rng, ["DOB:", "DOB", "Born", "D.O.B."], [idseg(fmt_date(rng, ident.dob), "date_dob")], 0.7)
        if rng.random() < 0.4:
            segs = segs + [neu(f"  {rng.randrange(18, 94)}Y {rng.choice('MF')}")]
        return segs
    if what == "study_date":
        segs = [idseg(fmt_date(rng, ident.study), "date_study")]
        if rng.random() < 0.6:
            segs = segs + [neu(f" {rng.randrange(0, 24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}")]
        return segs
    if what == "institution":
        return [idseg(ident.institution, "institution")]
    if what == "physician":
        fam, giv = ident.physician
        return [neu(rng.choice(["Ref:", "Ref Phys:", "Dr."]) + " "), idseg(f"{giv[0]}. {fam.title()}", "staff_name")]
    if what == "phone":
        return labelled(rng, ["Tel:", "Phone:", "Ph"], [idseg(ident.phone, "phone")], 0.8)
    if what == "address":
        return [idseg(ident.address, "address")]
    raise ValueError(what)


# ---------------------------------------------------------------------------------------------------------------
# fonts and drawing


def _font_paths() -> dict[str, str]:
    found: dict[str, str] = {}
    files = glob.glob("/usr/share/fonts/**/*.ttf", recursive=True)
    for key, name in FONT_FILES.items():
        for path in files:
            if os.path.basename(path) == name:
                found[key] = path
    return found


FONT_PATHS = _font_paths()


def get_font(name: str, size: int) -> Any:
    if name == "pil_bitmap":
        return ImageFont.load_default_imagefont()
    if name == "pil_default" or name not in FONT_PATHS:
        return ImageFont.load_default(size)
    return ImageFont.truetype(FONT_PATHS[name], size)


def available(name: str) -> str:
    """The font's own name when installed, else the Pillow default it falls back to (so labels stay honest)."""
    return name if name in FONT_PATHS or name in ("pil_default", "pil_bitmap") else "pil_default"


def font_names() -> list[str]:
    return sorted(FONT_PATHS) + ["pil_default", "pil_bitmap"]


@dataclass
class Style:
    font: str
    size: int
    color: tuple[float, float, float]  # display levels 0..255
    contrast: str  # high | low | dark_on_light
    antialias: bool = True
    bg: tuple[float, float, float] | None = None  # filled box behind the text
    shadow: bool = False


@dataclass
class Mark:
    text: str
    role: str
    kind: str
    frame: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the token (exclusive end)
    mask: np.ndarray  # bool, box-sized: drawn ink
    labels: dict[str, str]
    group: str = ""  # the same token on every frame of a multi-frame file


@dataclass
class Case:
    case_id: str
    scenario: str
    fmt: str  # dicom | png | jpeg
    frames: list[np.ndarray]  # (H, W, C) float in stored units, C = 1 or 3
    lo: float = 0.0  # display mapping: level = (stored - lo) / (hi - lo) * 255 (inverted for MONOCHROME1)
    hi: float = 255.0
    invert: bool = False
    header: dict[str, Any] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # frame, x0, y0, x1, y1 drawn
    clean: list[np.ndarray] = field(default_factory=list)
    header_values: set[str] = field(default_factory=set)  # normalised identifier values in the header
    anatomy: tuple[int, int, int, int] = (0, 0, 0, 0)
    blocks: int = 0

    def to_stored(self, level: float) -> float:
        if self.invert:
            level = 255.0 - level
        return self.lo + level / 255.0 * (self.hi - self.lo)

    def level_at(self, frame: int, x0: int, y0: int, x1: int, y1: int) -> float:
        patch = self.frames[frame][y0:y1, x0:x1].mean()
        level = (patch - self.lo) / (self.hi - self.lo) * 255.0
        return float(255.0 - level if self.invert else level)

    def free(self, frame: int, box: tuple[int, int, int, int], gap: int = 6) -> bool:
        h, w = self.frames[frame].shape[:2]
        x0, y0, x1, y1 = box
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return False
        for f, a0, b0, a1, b1 in self.boxes:
            if f != frame:
                continue
            if x0 < a1 + gap and a0 < x1 + gap and y0 < b1 + gap and b0 < y1 + gap:
                return False
        return True


def norm(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def render_line(segs: list[Seg], style: Style) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Alpha (0..1) of the whole line and each segment's column range in it."""
    font = get_font(style.font, style.size)
    text = "".join(s.text for s in segs)
    left, top, right, bottom = font.getbbox(text)
    pad = 2
    width, height = int(right - min(left, 0)) + 2 * pad + 2, int(bottom - top) + 2 * pad
    img = Image.new("L", (max(width, 4), max(height, 4)), 0)
    draw = ImageDraw.Draw(img)
    draw.fontmode = "L" if style.antialias else "1"
    draw.text((pad - min(left, 0), pad - top), text, font=font, fill=255)
    alpha = np.asarray(img, dtype=np.float32) / 255.0
    ranges = []
    pos = 0
    for seg in segs:
        start = pad - min(left, 0) + font.getlength(text[:pos])
        end = pad - min(left, 0) + font.getlength(text[: pos + len(seg.text)])
        ranges.append((int(np.floor(start)), int(np.ceil(end)) + 1))
        pos += len(seg.text)
    return alpha, ranges


def composite(case: Case, frame: int, x: int, y: int, alpha: np.ndarray, color: tuple[float, float, float]) -> None:
    arr = case.frames[frame]
    h, w = alpha.shape
    region = arr[y : y + h, x : x + w]
    if arr.shape[2] == 1:
        lum = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        value = np.array([case.to_stored(lum)], dtype=np.float32)
    else:
        value = np.array([case.to_stored(c) for c in color], dtype=np.float32)
    a = alpha[:, :, None]
    region[...] = region * (1 - a) + value[None, None, :] * a


def fill_box(case: Case, frame: int, box: tuple[int, int, int, int], color: tuple[float, float, float]) -> None:
    x0, y0, x1, y1 = box
    alpha = np.ones((y1 - y0, x1 - x0), dtype=np.float32)
    composite(case, frame, x0, y0, alpha, color)


def block_size(lines: list[list[Seg]], style: Style) -> tuple[int, int, list[np.ndarray], list[list[tuple[int, int]]]]:
    alphas, ranges = [], []
    for segs in lines:
        a, r = render_line(segs, style)
        alphas.append(a)
        ranges.append(r)
    spacing = max(1, style.size // 5)
    width = max(a.shape[1] for a in alphas)
    height = sum(a.shape[0] for a in alphas) + spacing * (len(alphas) - 1)
    return width, height, alphas, ranges


def draw_block(case: Case, frames: list[int], x: int, y: int, lines: list[list[Seg]], style: Style,
               labels: dict[str, str], align_right: bool = False) -> None:
    width, height, alphas, ranges = block_size(lines, style)
    pad = 3 if style.bg is not None else 0
    case.blocks += 1
    for frame in frames:
        if style.bg is not None:
            fill_box(case, frame, (x - pad, y - pad, x + width + pad, y + height + pad), style.bg)
        case.boxes.append((frame, x - pad, y - pad, x + width + pad, y + height + pad))
        cy = y
        for line_no, (segs, alpha, rng_cols) in enumerate(zip(lines, alphas, ranges, strict=True)):
            cx = x + (width - alpha.shape[1] if align_right else 0)
            if style.shadow:
                shadow = np.zeros_like(alpha)
                shadow[1:, 1:] = alpha[:-1, :-1]
                composite(case, frame, cx, cy, shadow * 0.9, (0.0, 0.0, 0.0))
            composite(case, frame, cx, cy, alpha, style.color)
            block_kind = "block" if len(lines) > 1 else "single"
            mixed = len({s.role for s in (seg for line in lines for seg in line)} - {"neutral"}) > 1
            for seg_no, (seg, (c0, c1)) in enumerate(zip(segs, rng_cols, strict=True)):
                if seg.role == "neutral" or not seg.text.strip():
                    continue
                c0, c1 = max(c0, 0), min(c1, alpha.shape[1])
                sub = alpha[:, c0:c1] >= 0.5
                if not sub.any():
                    continue
                rows = np.where(sub.any(axis=1))[0]
                r0, r1 = int(rows[0]), int(rows[-1]) + 1
                mark_labels = dict(labels)
                mark_labels.update({
                    "size": size_bin(style.size), "font": style.font, "contrast": style.contrast,
                    "antialias": "aa" if style.antialias else "binary", "layout": block_kind,
                    "mixed_block": "mixed" if mixed else "pure",
                })
                if seg.role == "id":
                    mark_labels["header"] = header_label(case, seg)
                case.marks.append(Mark(seg.text, seg.role, seg.kind, frame,
                                       (cx + c0, cy + r0, cx + c1, cy + r1), sub[r0:r1].copy(), mark_labels,
                                       f"{case.case_id}:b{case.blocks}:{line_no}:{seg_no}"))
            cy += alpha.shape[0] + max(1, style.size // 5)


def header_label(case: Case, seg: Seg) -> str:
    if case.fmt != "dicom":
        return "no_header"
    value = norm(seg.text)
    if seg.kind.startswith("date"):
        return "in_header" if value in case.header_values else "not_in_header"
    return "in_header" if value and any(value in v or v in value for v in case.header_values if len(v) >= 3) \
        else "not_in_header"


def size_bin(size: int) -> str:
    if size <= 11:
        return "08-11px"
    if size <= 17:
        return "12-17px"
    if size <= 27:
        return "18-27px"
    return "28-40px"


def draw_shape(case: Case, frames: list[int], alpha: np.ndarray, x: int, y: int, color: tuple[float, float, float],
               kind: str, text: str, labels: dict[str, str]) -> None:
    """A non-text negative (scale bar, marker box) as one mark."""
    case.blocks += 1
    for frame in frames:
        composite(case, frame, x, y, alpha, color)
        h, w = alpha.shape
        case.boxes.append((frame, x, y, x + w, y + h))
        lab = dict(labels)
        lab.update({"size": size_bin(max(8, min(h, 40))), "font": "shape", "contrast": "high", "antialias": "aa",
                    "layout": "single", "mixed_block": "pure"})
        case.marks.append(Mark(text, "neg", kind, frame, (x, y, x + w, y + h), alpha >= 0.5, lab,
                               f"{case.case_id}:b{case.blocks}"))


def scale_bar(rng: random.Random, length: int, vertical: bool) -> np.ndarray:
    thick = rng.choice([1, 2])
    ticks = rng.choice([4, 5, 10])
    tick_len = rng.choice([4, 6, 8])
    a = np.zeros((tick_len + 2, length), dtype=np.float32)
    a[tick_len // 2 : tick_len // 2 + thick, :] = 1.0
    for i in range(ticks + 1):
        col = min(length - 1, round(i * (length - 1) / ticks))
        rows = tick_len + 1 if i % max(1, ticks // 2) == 0 else tick_len // 2 + thick
        a[:rows, max(0, col - thick // 2) : col + 1] = 1
    return a.T.copy() if vertical else a


def lead_marker(rng: random.Random, letter: str, size: int) -> np.ndarray:
    font = get_font(rng.choice(["sans_bold", "serif_bold", "sans"]), size)
    img = Image.new("L", (size + 12, size + 12), 0)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = font.getbbox(letter)
    draw.text(((size + 12 - (right - left)) / 2 - left, (size + 12 - (bottom - top)) / 2 - top), letter, font=font,
              fill=255)
    if rng.random() < 0.6:
        draw.rectangle((0, 0, size + 11, size + 11), outline=255, width=2)
    return np.asarray(img, dtype=np.float32) / 255.0


# ---------------------------------------------------------------------------------------------------------------
# sources


def _dcm(name: str) -> np.ndarray:
    path = SHARED / "dicom" / name
    if not path.exists():
        import pydicom.data as pdd

        path = Path(pdd.__file__).parent / "test_files" / Path(name).name
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        arr = (arr / 257.0) if arr.max() > 255 else arr
    return np.asarray(arr)


def to_display(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((arr.astype(np.float32) - lo) / (hi - lo) * 255.0, 0, 255)


def resize(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    if arr.ndim == 2:
        return np.asarray(Image.fromarray(arr.astype(np.float32), "F").resize((width, height), Image.BILINEAR))
    chans = [np.asarray(Image.fromarray(arr[:, :, c].astype(np.float32), "F").resize((width, height),
                                                                                   Image.BILINEAR))
             for c in range(arr.shape[2])]
    return np.stack(chans, axis=2)


def vqa_images(rng: random.Random, n: int) -> list[Path]:
    paths = sorted((SHARED / "vqa_rad" / "images").glob("*.jpg"))
    return rng.sample(paths, n)


def load_vqa(path: Path, max_side: int) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    img.thumbnail((max_side, max_side))
    return np.asarray(img, dtype=np.float32)


def gray(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3:
        return arr[:, :, 0] * 0.299 + arr[:, :, 1] * 0.587 + arr[:, :, 2] * 0.114
    return arr


class Sources:
    """Decoded source pixels (8-bit display unless stated), loaded once."""

    def __init__(self) -> None:
        echo = _dcm("pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm").astype(np.float32)
        doppler = _dcm("pydicom_data/US1_J2KR.dcm").astype(np.float32)
        cine = _dcm("pydicom_wheel/examples_ybr_color.dcm").astype(np.float32)  # pydicom returns RGB
        self.us = {"echo": echo[140:640, 150:930], "doppler": doppler[110:334, 48:592]}
        self.cine = [cine[i, 20:205, 30:290] for i in (0, 9, 18, 27)]
        self.chest16 = _dcm("pydicom_data/RG1_UNCI.dcm").astype(np.float32)[::2, ::2]  # MONOCHROME1, wc 15000/30000
        self.leg16 = _dcm("pydicom_data/RG3_J2KR.dcm").astype(np.float32)[::2, :1200:2]  # MONOCHROME1, 0..1023
        self.nm = _dcm("pydicom_wheel/JPEG2000.dcm").astype(np.float32)
        self.ct = to_display(_dcm("pydicom_data/693_UNCI.dcm"), 864, 1264)  # stored = HU + 1024; W400 L40
        self.mr = to_display(_dcm("dcm_qa_ts/1.dcm"), 0, 1600)


# ---------------------------------------------------------------------------------------------------------------
# scenario builders


def rand_style(rng: random.Random, case: Case, sizes: tuple[int, int], palette: str = "dark_bg") -> Style:
    fonts = font_names()
    size = rng.randint(*sizes)
    if palette == "dark_bg":
        color = rng.choice([(255, 255, 255), (235, 235, 235), (255, 255, 0), (0, 255, 0), (0, 230, 255),
                            (255, 170, 40), (200, 200, 200)])
        if case.frames[0].shape[2] == 1:
            lum = rng.choice([255.0, 240.0, 220.0, 200.0])
            color = (lum, lum, lum)
        contrast = "high"
    else:
        level = rng.uniform(0, 45)
        color = (level, level, level)
        contrast = "dark_on_light"
    font = rng.choice(fonts)
    return Style(font=font, size=size if font != "pil_bitmap" else 11, color=color, contrast=contrast,
                 antialias=rng.random() < 0.7, shadow=rng.random() < 0.15)


def shrinking(place: Callable[[], bool], style: Style) -> bool:
    """Try a placement; when the block does not fit, try again with a smaller font (never under 8 px)."""
    for _ in range(4):
        if place():
            return True
        if style.size <= 8 or style.font == "pil_bitmap":
            return False
        style.size = max(8, int(style.size * 0.8))
    return False


def place_corner(rng: random.Random, case: Case, frames: list[int], lines: list[list[Seg]], style: Style,
                 corner: str, labels: dict[str, str]) -> bool:
    return shrinking(lambda: _place_corner(rng, case, frames, lines, style, corner, labels), style)


def place_at(rng: random.Random, case: Case, frames: list[int], lines: list[list[Seg]], style: Style,
             region: tuple[int, int, int, int], placement: str, labels: dict[str, str],
             adapt_contrast: bool = False) -> bool:
    return shrinking(lambda: _place_at(rng, case, frames, lines, style, region, placement, labels, adapt_contrast),
                     style)


def _place_corner(rng: random.Random, case: Case, frames: list[int], lines: list[list[Seg]], style: Style,
                  corner: str, labels: dict[str, str]) -> bool:
    width, height, _, _ = block_size(lines, style)
    h, w = case.frames[frames[0]].shape[:2]
    for _ in range(25):
        mx, my = rng.randint(2, 24), rng.randint(2, 24)
        x = mx if corner[1] == "l" else w - width - mx
        y = my if corner[0] == "t" else h - height - my
        pad = 3 if style.bg is not None else 0
        if all(case.free(f, (x - pad, y - pad, x + width + pad, y + height + pad)) for f in frames):
            draw_block(case, frames, x, y, lines, style, {**labels, "placement": "corner_" + corner},
                       align_right=corner[1] == "r")
            return True
    return False


def _place_at(rng: random.Random, case: Case, frames: list[int], lines: list[list[Seg]], style: Style,
              region: tuple[int, int, int, int], placement: str, labels: dict[str, str],
              adapt_contrast: bool) -> bool:
    width, height, _, _ = block_size(lines, style)
    x0, y0, x1, y1 = region
    if x1 - x0 < width + 2 or y1 - y0 < height + 2:
        return False
    for _ in range(30):
        x, y = rng.randint(x0, x1 - width), rng.randint(y0, y1 - height)
        pad = 3 if style.bg is not None else 0
        if not all(case.free(f, (x - pad, y - pad, x + width + pad, y + height + pad)) for f in frames):
            continue
        if adapt_contrast:
            local = case.level_at(frames[0], x, y, x + width, y + height)
            if style.contrast == "low":
                delta = rng.uniform(35, 70)
                lum = local + delta if local < 140 else local - delta
                style.color = (lum, lum, lum)
        draw_block(case, frames, x, y, lines, style, {**labels, "placement": placement})
        return True
    return False


def identity_header(rng: random.Random, case: Case, ident: Identity, match: bool, modality: str) -> None:
    """Header identifiers: the printed ones (match) or another synthetic person / blanks (mismatch)."""
    other = make_identity(rng)
    src = ident if match else other
    header: dict[str, Any] = {
        "PatientName": f"{src.family}^{src.given}^{src.middle}",
        "PatientID": src.mrn,
        "PatientBirthDate": src.dob.strftime("%Y%m%d"),
        "StudyDate": src.study.strftime("%Y%m%d"),
        "AccessionNumber": src.accession,
        "InstitutionName": src.institution,
        "ReferringPhysicianName": f"{src.physician[0]}^{src.physician[1]}",
        "Modality": modality,
    }
    if not match and rng.random() < 0.5:  # an earlier tool already blanked the header
        header.update({"PatientName": "ANONYMOUS", "PatientID": "ANON0001", "PatientBirthDate": "",
                       "AccessionNumber": "", "InstitutionName": "", "ReferringPhysicianName": ""})
    elif match and rng.random() < 0.3:  # partially filled header
        header.update({"AccessionNumber": "", "InstitutionName": ""})
    case.header = header
    values = set()
    for key in ("PatientName", "PatientID", "AccessionNumber", "InstitutionName", "ReferringPhysicianName"):
        for part in str(header[key]).split("^"):
            if norm(part):
                values.add(norm(part))
    for key in ("PatientBirthDate", "StudyDate"):
        if header[key]:
            day = dt.datetime.strptime(header[key], "%Y%m%d").date()
            for f in DATE_FORMATS:
                values.add(norm(day.strftime(f)))
    case.header_values = values


def finish_labels(scenario: str, fmt: str) -> dict[str, str]:
    return {"rendering": scenario, "format": fmt}


def new_case(case_id: str, scenario: str, fmt: str, frames: list[np.ndarray], **kw: Any) -> Case:
    frames = [f[:, :, None] if f.ndim == 2 else f for f in frames]
    case = Case(case_id, scenario, fmt, [f.astype(np.float32).copy() for f in frames], **kw)
    case.clean = [f.copy() for f in case.frames]
    return case


def on_black_canvas(img: np.ndarray, width: int, height: int, x: int, y: int) -> np.ndarray:
    chans = img.shape[2] if img.ndim == 3 else 1
    canvas = np.zeros((height, width, chans), dtype=np.float32)
    src = img if img.ndim == 3 else img[:, :, None]
    canvas[y : y + src.shape[0], x : x + src.shape[1]] = src
    return canvas


def us_overlay(rng: random.Random, case: Case, ident: Identity, frames: list[int], labels: dict[str, str],
               size_range: tuple[int, int]) -> None:
    style = rand_style(rng, case, size_range)
    top_left = [id_line(rng, ident, "institution")] if rng.random() < 0.7 else []
    top_left += [id_line(rng, ident, "name"), id_line(rng, ident, "mrn")]
    if rng.random() < 0.5:
        top_left.append(id_line(rng, ident, "dob"))
    if rng.random() < 0.4:
        top_left.append([negseg(rng.choice(["C5-1", "L12-5", "C9-2", "S5-1", "P4-2"]), "probe"),
                         neu(" "), negseg(rng.choice(["Abdomen", "OB/GYN", "Vasc", "Cardiac", "Thyroid"]), "preset")])
    rng.shuffle(top_left)
    place_corner(rng, case, frames, top_left, style, "tl", labels)
    style2 = rand_style(rng, case, size_range)
    top_right = [id_line(rng, ident, "study_date")]
    top_right.append([negseg(f"MI {rng.uniform(0.2, 1.4):.1f}", "tech_params"), neu("  "),
                      negseg(f"TIs {rng.uniform(0.1, 1.2):.1f}", "tech_params")])
    if rng.random() < 0.5:
        top_right.append([negseg(f"{rng.choice([2.5, 3.5, 5.0, 7.5, 12.0])}MHz", "tech_params"), neu(" "),
                          negseg(f"{rng.randint(8, 22)}cm", "tech_params")])
    if rng.random() < 0.4:
        top_right.append(id_line(rng, ident, "acc"))
    rng.shuffle(top_right)
    place_corner(rng, case, frames, top_right, style2, "tr", labels)
    ax0, ay0, ax1, ay1 = case.anatomy
    style3 = rand_style(rng, case, (max(10, size_range[0]), size_range[1] + 4))
    view = rng.choice(["LIVER SAG", "RT KIDNEY LONG", "GB TRANS", "THYROID LT", "SPLEEN", "CBD", "AORTA PROX",
                       "LT OVARY", "BLADDER PRE"])
    place_at(rng, case, frames, [[negseg(view, "view_label")]], style3, (ax0, ay1 - 60, ax1, ay1), "over_anatomy",
             labels)
    if rng.random() < 0.7:
        meas = [[negseg(f"D{rng.randint(1, 3)} {rng.uniform(0.4, 9.9):.2f} cm", "measurement")]]
        place_corner(rng, case, frames, meas, rand_style(rng, case, size_range), rng.choice(["bl", "br"]), labels)
    bar = scale_bar(rng, rng.randint(60, 160), vertical=rng.random() < 0.5)
    h, w = case.frames[frames[0]].shape[:2]
    for _ in range(20):
        x, y = rng.randint(0, w - bar.shape[1]), rng.randint(h // 2, h - bar.shape[0])
        if all(case.free(f, (x, y, x + bar.shape[1], y + bar.shape[0])) for f in frames):
            draw_shape(case, frames, bar, x, y, (200, 200, 200), "scale_bar", "<scale bar>",
                       {**labels, "placement": "margin"})
            break
    if rng.random() < 0.5:  # the sonographer typed the name over the image
        over = rand_style(rng, case, (size_range[0], size_range[1] + 6))
        over.contrast = "low" if rng.random() < 0.4 else "high"
        place_at(rng, case, frames, [name_segs(rng, ident)], over, (ax0, ay0, ax1, ay1), "over_anatomy", labels,
                 adapt_contrast=True)


def sc_ultrasound(rng: random.Random, src: Sources, case_id: str, ident: Identity, multiframe: bool) -> Case:
    fmt = "dicom"
    if multiframe:
        frames_src = [resize(f, 520, 400) for f in src.cine[: rng.choice([2, 3])]]
        frames = [on_black_canvas(f, 640, 480, 60, 55) for f in frames_src]
        anatomy = (60, 55, 580, 455)
    else:
        name = rng.choice(sorted(src.us))
        img = src.us[name]
        h, w = img.shape[:2]
        scale = rng.uniform(0.8, 1.05) * min(560 / w, 380 / h)
        img = resize(img, int(w * scale), int(h * scale))
        cw, ch = rng.choice([(640, 480), (800, 600), (720, 540)])
        x, y = (cw - img.shape[1]) // 2, (ch - img.shape[0]) // 2 + rng.randint(-10, 25)
        frames = [on_black_canvas(img, cw, ch, x, max(0, y))]
        anatomy = (x, max(0, y), x + img.shape[1], max(0, y) + img.shape[0])
    if not multiframe and rng.random() < 0.4:
        frames = [gray(f)[:, :, None] if f.shape[2] == 3 else f for f in frames]
    scenario = "us_multiframe" if multiframe else "us"
    case = new_case(case_id, scenario, fmt, frames, anatomy=anatomy)
    identity_header(rng, case, ident, rng.random() < 0.6, "US")
    case.header["_sop"] = SOP["US_MF"] if multiframe else SOP["US"]
    all_frames = list(range(len(case.frames)))
    labels = finish_labels(scenario, fmt)
    us_overlay(rng, case, ident, all_frames, labels, (8, 16))
    if multiframe:
        style = rand_style(rng, case, (9, 14))
        for f in all_frames:
            place_corner(rng, case, [f], [[negseg(f"Fr {f + 1}/{len(all_frames)}", "frame_counter")]], style, "br",
                         labels)
    return case


def viewer_frame(rng: random.Random, src: Sources, vqa: list[Path]) -> np.ndarray:
    choice = rng.randrange(3)
    if choice == 0:
        img = src.ct
    elif choice == 1:
        img = src.mr
    else:
        img = gray(load_vqa(vqa[rng.randrange(len(vqa))], 512))
    return img


def sc_viewer(rng: random.Random, src: Sources, case_id: str, ident: Identity, vqa: list[Path], fmt: str) -> Case:
    img = viewer_frame(rng, src, vqa)
    side = rng.choice([480, 512, 600])
    scale = side / max(img.shape[:2])
    img = resize(img, int(img.shape[1] * scale), int(img.shape[0] * scale))
    cw, ch = side + rng.choice([120, 200, 260]), side + rng.choice([40, 80])
    x, y = (cw - img.shape[1]) // 2, (ch - img.shape[0]) // 2
    colour = fmt != "dicom" or rng.random() < 0.6
    canvas = on_black_canvas(np.repeat(img[:, :, None], 3, axis=2) if colour else img, cw, ch, x, y)
    chrome = 0
    if fmt == "png" and rng.random() < 0.7:  # screenshot of another viewer with its title bar
        chrome = 26
        canvas = np.concatenate([np.full((chrome, cw, 3), 225, dtype=np.float32), canvas], axis=0)
    scenario = "sc_viewer" if fmt == "dicom" else "viewer_screenshot"
    anatomy = (x, y + chrome, x + img.shape[1], y + chrome + img.shape[0])
    case = new_case(case_id, scenario, fmt, [canvas], anatomy=anatomy)
    if fmt == "dicom":
        identity_header(rng, case, ident, rng.random() < 0.5, rng.choice(["OT", "SC", "CT", "MR"]))
        case.header["_sop"] = SOP["SC"]
    labels = finish_labels(scenario, fmt)
    if chrome:
        style = Style(font=available(rng.choice(["sans", "condensed", "pil_default", "liberation_sans"])),
                      size=rng.randint(11, 14), color=(20, 20, 20), contrast="dark_on_light", antialias=True)
        title = [negseg("PACSView", "app_title"), neu(" - ")] + name_segs(rng, ident) + [neu(" - "),
                                                                                         idseg(ident.mrn, "mrn")]
        place_at(rng, case, [0], [title], style, (6, 2, cw - 10, chrome - 1), "title_bar", labels)
    size = (9, 16) if rng.random() < 0.7 else (14, 22)
    style = rand_style(rng, case, size)
    if rng.random() < 0.3:
        style.shadow = True
    tl = [id_line(rng, ident, "name"), id_line(rng, ident, "mrn"), id_line(rng, ident, "dob")]
    tr = [id_line(rng, ident, "institution"), id_line(rng, ident, "study_date")]
    if rng.random() < 0.5:
        tr.append(id_line(rng, ident, "acc"))
    if rng.random() < 0.3:
        tr.append(id_line(rng, ident, "physician"))
    bl = [[negseg(f"Se: {rng.randint(1, 12)}", "series_info")],
          [negseg(f"Im: {rng.randint(1, 300)}/{rng.randint(300, 600)}", "series_info")],
          [negseg(f"Thk: {rng.choice([0.625, 1.0, 2.5, 5.0])} mm", "tech_params")]]
    br = [[negseg(f"W: {rng.choice([80, 350, 400, 1500, 2000])}", "window"), neu(" "),
           negseg(f"L: {rng.choice([40, 50, 60, -600, 300])}", "window")],
          [negseg(f"Zoom: {rng.uniform(0.8, 2.5):.2f}", "tech_params")]]
    if rng.random() < 0.5:
        br.append([negseg(f"kVp {rng.choice([80, 100, 120, 140])}", "tech_params"), neu(" "),
                   negseg(f"mA {rng.randint(80, 400)}", "tech_params")])
    top_shift = chrome
    for corner, lines in (("tl", tl), ("tr", tr), ("bl", bl), ("br", br)):
        st = style if corner in ("tl", "tr") else rand_style(rng, case, size)
        if top_shift and corner[0] == "t":
            width, height, _, _ = block_size(lines, st)
            xx = 6 if corner[1] == "l" else cw - width - 6
            place_at(rng, case, [0], lines, st, (xx, chrome + 4, xx + width + 2, chrome + 4 + height + 40),
                     "corner_" + corner, labels)
        else:
            place_corner(rng, case, [0], lines, st, corner, labels)
    ax0, ay0, ax1, ay1 = case.anatomy
    for letter, region in (("A", (ax0 + ax1) // 2), ("R", None)):
        st = rand_style(rng, case, (12, 20))
        if region is not None:
            place_at(rng, case, [0], [[negseg(letter, "orientation")]], st, (region - 20, ay0, region + 20, ay0 + 40),
                     "edge", labels)
        else:
            place_at(rng, case, [0], [[negseg(letter, "orientation")]], st, (ax0, (ay0 + ay1) // 2 - 20, ax0 + 40,
                                                                             (ay0 + ay1) // 2 + 20), "edge", labels)
    if rng.random() < 0.5:
        st = rand_style(rng, case, (10, 18))
        st.contrast = "low" if rng.random() < 0.5 else "high"
        place_at(rng, case, [0], [name_segs(rng, ident)], st, case.anatomy, "over_anatomy", labels,
                 adapt_contrast=True)
    return case


def radiograph(rng: random.Random, src: Sources, case_id: str, ident: Identity, vqa: list[Path]) -> Case:
    kind = rng.choice(["CR", "CR", "DX", "MG"])
    fmt = "dicom"
    if kind == "CR":
        # the header window spans the data, so the darkest stored value renders black (<= 8) as the rule needs
        img = (src.chest16 if rng.random() < 0.5 else src.leg16).copy()
        lo, hi = float(img.min()), float(img.max())
        case = new_case(case_id, "cr", fmt, [img], lo=lo, hi=hi, invert=True,
                        anatomy=(0, 0, img.shape[1], img.shape[0]))
    else:
        img = gray(load_vqa(vqa[rng.randrange(len(vqa))], rng.choice([768, 900, 1024])))
        if kind == "MG":
            img = img.copy()
        stored = img / 255.0 * 4095.0
        case = new_case(case_id, kind.lower(), fmt, [stored], lo=0.0, hi=4095.0,
                        anatomy=(0, 0, img.shape[1], img.shape[0]))
    identity_header(rng, case, ident, rng.random() < 0.6, kind)
    case.header["_sop"] = SOP[kind]
    labels = finish_labels(case.scenario, fmt)
    h, w = case.frames[0].shape[:2]
    big = max(h, w)
    lo_size, hi_size = max(8, big // 90), min(40, max(14, big // 30))
    # flash card: dark text on a light ID box, or bright text straight on the film
    lines = [id_line(rng, ident, "institution"), id_line(rng, ident, "name"), id_line(rng, ident, "mrn"),
             id_line(rng, ident, "dob"), id_line(rng, ident, "study_date")]
    lines = [ln for ln in lines if rng.random() < 0.85] or [id_line(rng, ident, "name")]
    corner = rng.choice(["tl", "tr", "bl", "br"])
    cx0 = 0 if corner[1] == "l" else w * 2 // 3
    cy0 = 0 if corner[0] == "t" else h * 3 // 4
    corner_level = case.level_at(0, cx0, cy0, cx0 + w // 3, cy0 + h // 4)
    if rng.random() < 0.5 or corner_level > 140:  # a light ID box, or dark print where the film is light
        style = rand_style(rng, case, (lo_size, hi_size), palette="light_bg")
        if corner_level <= 140 or rng.random() < 0.5:
            style.bg = (rng.uniform(215, 250),) * 3
    else:
        style = rand_style(rng, case, (lo_size, hi_size))
    place_corner(rng, case, [0], lines, style, corner, labels)
    marker = rng.choice(["L", "R"])
    size = rng.randint(max(14, big // 40), max(20, big // 18))
    alpha = lead_marker(rng, marker, size)
    for _ in range(30):
        x, y = rng.randint(10, w - alpha.shape[1] - 10), rng.randint(10, h - alpha.shape[0] - 10)
        if case.free(0, (x, y, x + alpha.shape[1], y + alpha.shape[0])):
            bright = case.level_at(0, x, y, x + alpha.shape[1], y + alpha.shape[0]) > 150
            tone = (25.0,) * 3 if bright else (250.0,) * 3
            draw_shape(case, [0], alpha, x, y, tone, "lr_marker", marker, {**labels, "placement": "over_anatomy"})
            break
    neg_text = {"CR": ["PA ERECT", "AP PORTABLE", "SUPINE", "LAT", "AP"], "DX": ["PA", "AP SUPINE", "OBLIQUE", "LAT"],
                "MG": ["R CC", "L MLO", "R MLO", "L CC"]}[kind]
    st = rand_style(rng, case, (lo_size, hi_size))
    neg = [[negseg(rng.choice(neg_text), "view_label")]]
    if rng.random() < 0.5:
        neg.append([negseg(f"{rng.choice([60, 70, 80, 90, 110, 120])} kV", "tech_params"), neu(" "),
                    negseg(f"{rng.uniform(0.8, 25):.1f} mAs", "tech_params")])
    place_corner(rng, case, [0], neg, st, rng.choice(["tl", "tr", "bl", "br"]), labels)
    if rng.random() < 0.7:  # technologist's stamp over anatomy, often low contrast
        st = rand_style(rng, case, (lo_size, hi_size))
        st.contrast = "low" if rng.random() < 0.5 else "high"
        lines = [id_line(rng, ident, rng.choice(["name", "mrn", "study_date"]))]
        place_at(rng, case, [0], lines, st, (w // 6, h // 6, w * 5 // 6, h * 5 // 6), "over_anatomy", labels,
                 adapt_contrast=True)
    if kind == "MG" or rng.random() < 0.3:
        bar = scale_bar(rng, rng.randint(big // 10, big // 5), vertical=True)
        for _ in range(20):
            x, y = rng.randint(0, w - bar.shape[1]), rng.randint(0, h - bar.shape[0])
            if case.free(0, (x, y, x + bar.shape[1], y + bar.shape[0])):
                draw_shape(case, [0], bar, x, y, (230, 230, 230), "scale_bar", "<ruler>",
                           {**labels, "placement": "margin"})
                break
    return case


def nuclear(rng: random.Random, src: Sources, case_id: str, ident: Identity) -> Case:
    img = src.nm.copy()
    case = new_case(case_id, "nm", "dicom", [img + 30.0], lo=0.0, hi=300.0, anatomy=(40, 40, 216, 980))
    identity_header(rng, case, ident, rng.random() < 0.6, "NM")
    case.header["_sop"] = SOP["NM"]
    labels = finish_labels("nm", "dicom")
    style = rand_style(rng, case, (8, 13))
    lines = [id_line(rng, ident, "name"), id_line(rng, ident, "study_date")]
    if rng.random() < 0.6:
        lines.append(id_line(rng, ident, "mrn"))
    place_corner(rng, case, [0], lines, style, rng.choice(["bl", "tl"]), labels)
    st = rand_style(rng, case, (10, 16))
    place_corner(rng, case, [0], [[negseg(rng.choice(["ANT", "POST"]), "view_label")]], st, "tr", labels)
    st = rand_style(rng, case, (8, 12))
    place_corner(rng, case, [0], [[negseg(f"{rng.randint(400, 2500)}k cts", "tech_params")]], st, "br", labels)
    return case


def angio(rng: random.Random, src: Sources, case_id: str, ident: Identity, vqa: list[Path]) -> Case:
    img = gray(load_vqa(vqa[rng.randrange(len(vqa))], 512))
    base = np.zeros((512, 512), dtype=np.float32)
    base[: img.shape[0], : img.shape[1]] = img
    frames = [base, np.clip(base * rng.uniform(0.9, 1.1), 0, 255)] if rng.random() < 0.5 else [base]
    case = new_case(case_id, "xa", "dicom", frames, anatomy=(0, 0, img.shape[1], img.shape[0]))
    identity_header(rng, case, ident, rng.random() < 0.6, "XA")
    case.header["_sop"] = SOP["XA"]
    labels = finish_labels("xa", "dicom")
    all_frames = list(range(len(frames)))
    style = rand_style(rng, case, (10, 18))
    lines = [id_line(rng, ident, "name"), id_line(rng, ident, rng.choice(["mrn", "dob"])),
             id_line(rng, ident, "study_date")]
    place_corner(rng, case, all_frames, lines, style, "tl", labels)
    st = rand_style(rng, case, (10, 18))
    angle = [[negseg(f"{rng.choice(['LAO', 'RAO'])} {rng.randint(0, 45)}", "view_label")],
             [negseg(f"{rng.choice(['CRA', 'CAU'])} {rng.randint(0, 35)}", "view_label")]]
    place_corner(rng, case, all_frames, angle, st, "tr", labels)
    st = rand_style(rng, case, (9, 14))
    place_corner(rng, case, all_frames, [[negseg(f"{rng.choice([7.5, 15, 30])} f/s", "tech_params")]], st, "br",
                 labels)
    if rng.random() < 0.5:
        st = rand_style(rng, case, (10, 20))
        st.contrast = "low" if rng.random() < 0.5 else "high"
        place_at(rng, case, all_frames, [id_line(rng, ident, rng.choice(["name", "study_date"]))], st,
                 (60, 60, 450, 450), "over_anatomy", labels, adapt_contrast=True)
    return case


def endoscopy(rng: random.Random, case_id: str, ident: Identity, vqa: list[Path], fmt: str) -> Case:
    img = load_vqa(vqa[rng.randrange(len(vqa))], 420)
    tint = np.array([1.0, rng.uniform(0.45, 0.7), rng.uniform(0.35, 0.6)], dtype=np.float32)
    g = gray(img)[:, :, None] * tint[None, None, :] + 30
    h, w = 480, 640
    canvas = np.zeros((h, w, 3), dtype=np.float32)
    cy, cx, r = h // 2, w // 2 + 100, 190
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    patch = resize(g, 2 * r, 2 * r)
    canvas[cy - r : cy + r, cx - r : cx + r] = patch
    canvas[~disc] = 0
    canvas = np.clip(canvas, 0, 255)
    scenario = "endoscopy"
    case = new_case(case_id, scenario, fmt, [canvas], anatomy=(cx - r, cy - r, cx + r, cy + r))
    if fmt == "dicom":
        identity_header(rng, case, ident, rng.random() < 0.6, "ES")
        case.header["_sop"] = SOP["ES"]
    labels = finish_labels(scenario, fmt)
    style = rand_style(rng, case, (12, 22))
    lines = [id_line(rng, ident, "mrn"), id_line(rng, ident, "name"), id_line(rng, ident, "dob")]
    place_at(rng, case, [0], lines, style, (4, 4, cx - r - 4, h // 2), "corner_tl", labels)
    st = rand_style(rng, case, (12, 20))
    place_at(rng, case, [0], [id_line(rng, ident, "study_date")], st, (4, h // 2, cx - r - 4, h - 4), "corner_bl",
             labels)
    st = rand_style(rng, case, (10, 16))
    neg = [[negseg(f"Eh:A{rng.randint(1, 8)}", "tech_params"), neu(" "), negseg(f"Cr:{rng.choice('LNH')}",
                                                                                   "tech_params")],
           [negseg(f"CVP:{rng.randint(1, 4)}", "tech_params")]]
    place_at(rng, case, [0], neg, st, (4, h // 2, cx - r - 4, h - 4), "corner_bl", labels)
    return case


def photo_upload(rng: random.Random, case_id: str, ident: Identity, vqa: list[Path], fmt: str) -> Case:
    img = load_vqa(vqa[rng.randrange(len(vqa))], rng.choice([640, 800, 900]))
    if rng.random() < 0.5:
        img = np.repeat(gray(img)[:, :, None], 3, axis=2)
    case = new_case(case_id, "picture_upload", fmt, [img], anatomy=(0, 0, img.shape[1], img.shape[0]))
    labels = finish_labels("picture_upload", fmt)
    h, w = img.shape[:2]
    # camera-style date stamp
    st = Style(font=rng.choice(["mono_bold", "sans_bold", "mono"]), size=rng.randint(14, 30),
               color=(255, 150, 30), contrast="high", antialias=rng.random() < 0.8)
    stamp = [idseg(ident.study.strftime(rng.choice(["%d %m %Y", "%Y %m %d", "'%y %m %d"])), "date_study")]
    place_corner(rng, case, [0], [stamp], st, "br", labels)
    style = rand_style(rng, case, (10, 28))
    lines = [id_line(rng, ident, "name"), id_line(rng, ident, rng.choice(["mrn", "dob", "acc"]))]
    if rng.random() < 0.5:
        style.bg = (0.0, 0.0, 0.0)
    place_corner(rng, case, [0], lines, style, rng.choice(["tl", "tr", "bl"]), labels)
    if rng.random() < 0.6:
        st = rand_style(rng, case, (10, 28))
        st.contrast = "low" if rng.random() < 0.5 else "high"
        place_at(rng, case, [0], [id_line(rng, ident, rng.choice(["name", "dob", "mrn"]))], st,
                 (w // 5, h // 5, w * 4 // 5, h * 4 // 5), "over_anatomy", labels, adapt_contrast=True)
    marker = rng.choice(["L", "R"])
    alpha = lead_marker(rng, marker, rng.randint(16, 34))
    for _ in range(30):
        x, y = rng.randint(4, w - alpha.shape[1] - 4), rng.randint(4, h - alpha.shape[0] - 4)
        if case.free(0, (x, y, x + alpha.shape[1], y + alpha.shape[0])):
            bright = case.level_at(0, x, y, x + alpha.shape[1], y + alpha.shape[0]) > 150
            tone = (25.0,) * 3 if bright else (245.0,) * 3
            draw_shape(case, [0], alpha, x, y, tone, "lr_marker", marker, {**labels, "placement": "any"})
            break
    st = rand_style(rng, case, (10, 20))
    bar = scale_bar(rng, rng.randint(50, 120), vertical=False)
    for _ in range(20):
        x, y = rng.randint(0, w - bar.shape[1]), rng.randint(h // 2, h - bar.shape[0] - 24)
        if case.free(0, (x, y, x + bar.shape[1], y + bar.shape[0] + 20)):
            draw_shape(case, [0], bar, x, y, (240, 240, 240), "scale_bar", "<scale bar>",
                       {**labels, "placement": "any"})
            place_at(rng, case, [0], [[negseg(rng.choice(["1 cm", "5 cm", "10 mm", "2cm"]), "scale_label")]], st,
                     (x, y + bar.shape[0] + 1, x + bar.shape[1] + 40, y + bar.shape[0] + 60), "any", labels)
            break
    return case


def requisition(rng: random.Random, case_id: str, ident: Identity, fmt: str) -> Case:
    h, w = rng.choice([(1100, 850), (990, 765), (880, 680)])
    base = np.full((h, w), rng.uniform(225, 250), dtype=np.float32)
    noise = np.asarray(random_noise(rng, h, w), dtype=np.float32)
    base = np.clip(base + noise, 0, 255)
    case = new_case(case_id, "scanned_requisition", fmt, [base], anatomy=(0, 0, w, h))
    if fmt == "dicom":
        identity_header(rng, case, ident, rng.random() < 0.5, "OT")
        case.header["_sop"] = SOP["SC"]
    labels = finish_labels("scanned_requisition", fmt)
    size = rng.randint(14, 24)
    font = available(rng.choice(["serif", "sans", "mono", "liberation_sans", "condensed", "pil_default"]))

    def st(sz: int) -> Style:
        level = rng.uniform(0, 50)
        return Style(font=font, size=sz, color=(level,) * 3, contrast="dark_on_light", antialias=rng.random() < 0.8)

    y = rng.randint(30, 70)
    blocks = [
        [[idseg(ident.institution, "institution")]],
        [[negseg("RADIOLOGY REQUISITION", "form_text")]],
        [[neu("Patient: ")] + name_segs(rng, ident)],
        [id_line(rng, ident, "dob"), id_line(rng, ident, "mrn")],
        [[neu("Address: "), idseg(ident.address, "address")], id_line(rng, ident, "phone")],
        [[negseg(rng.choice(["CT ABDOMEN PELVIS W CONTRAST", "MRI BRAIN WO/W", "US RENAL COMPLETE",
                             "XR CHEST 2 VIEWS"]), "form_text")]],
        [[negseg(rng.choice(["Hx: RLQ pain, fever", "Hx: headache x2 wk", "Hx: flank pain", "Hx: cough, SOB"]),
                 "form_text")]],
        [id_line(rng, ident, "physician"), [neu("Date: "), idseg(fmt_date(rng, ident.study), "date_study")]],
    ]
    for block in blocks:
        sz = size + (6 if block is blocks[0] else 0)
        style = st(sz)
        width, height, _, _ = block_size(block, style)
        x = rng.randint(40, max(41, w - width - 40))
        if y + height + 10 > h:
            break
        if case.free(0, (x, y, x + width, y + height)):
            draw_block(case, [0], x, y, block, style, {**labels, "placement": "page"})
        y += height + rng.randint(18, 40)
    return case


def random_noise(rng: random.Random, h: int, w: int) -> np.ndarray:
    gen = np.random.default_rng(rng.randrange(1 << 30))
    return gen.normal(0, 4, (h, w))


# ---------------------------------------------------------------------------------------------------------------
# writing files


def stored_array(case: Case, frames: list[np.ndarray]) -> tuple[np.ndarray, int, str]:
    chans = frames[0].shape[2]
    if case.hi > 255:
        arr = np.stack([np.clip(np.rint(f[:, :, 0]), 0, 65535).astype(np.uint16) for f in frames])
        return arr, 16, "MONOCHROME1" if case.invert else "MONOCHROME2"
    arr = np.stack([np.clip(np.rint(f), 0, 255).astype(np.uint8) for f in frames])
    if chans == 1:
        arr = arr[:, :, :, 0]
        return arr, 8, "MONOCHROME2"
    return arr, 8, "RGB"


def write_dicom(case: Case, frames: list[np.ndarray], path: Path, rng_seed: int) -> None:
    rng = random.Random(rng_seed)
    arr, bits, photometric = stored_array(case, frames)
    sop = case.header.get("_sop", SOP["SC"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    uid_prefix = None
    meta.MediaStorageSOPInstanceUID = generate_uid(uid_prefix, [case.case_id, "sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(uid_prefix, [case.case_id, "study"])
    ds.SeriesInstanceUID = generate_uid(uid_prefix, [case.case_id, "series"])
    for key, value in case.header.items():
        if not key.startswith("_"):
            setattr(ds, key, value)
    ds.StudyTime = f"{rng.randrange(24):02d}{rng.randrange(60):02d}00"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    ds.PhotometricInterpretation = photometric
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[2])
    ds.BitsAllocated = bits
    ds.BitsStored = 16 if bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    if bits == 16:
        ds.WindowCenter = f"{(case.lo + case.hi) / 2:.0f}"
        ds.WindowWidth = f"{case.hi - case.lo:.0f}"
    annotation = rng.choice(["YES", "NO", None, None])
    if annotation:
        ds.BurnedInAnnotation = annotation
    ds.PixelData = (arr if len(frames) > 1 else arr[0]).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_case(case: Case, folder: Path, seed: int) -> tuple[Path, Path]:
    ext = {"dicom": ".dcm", "png": ".png", "jpeg": ".jpg"}[case.fmt]
    planted, clean = folder / f"{case.case_id}{ext}", folder / f"{case.case_id}_clean{ext}"
    planted, clean = planted.resolve(), clean.resolve()
    for path, frames in ((planted, case.frames), (clean, case.clean)):
        if case.fmt == "dicom":
            write_dicom(case, frames, path, seed)
        else:
            arr = np.clip(np.rint(frames[0]), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
            if case.fmt == "png":
                img.save(path)
            else:
                img.save(path, quality=random.Random(seed).choice([85, 90, 95]))
    return planted, clean


# ---------------------------------------------------------------------------------------------------------------
# the set


def build_cases(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    src = Sources()
    vqa = vqa_images(rng, 60)
    plan = (["us"] * 7 + ["us_multiframe"] * 4 + ["sc_viewer"] * 6 + ["viewer_png"] * 5 + ["radiograph"] * 9
            + ["nm"] * 2 + ["xa"] * 3 + ["endo_dicom"] * 2 + ["endo_jpeg"] * 2 + ["photo_png"] * 3
            + ["photo_jpeg"] * 3 + ["req_dicom"] * 2 + ["req_jpeg"] * 2)
    rng.shuffle(plan)
    while len(plan) < count:
        plan += plan
    builders: dict[str, Callable[[random.Random, str, Identity], Case]] = {
        "us": lambda r, c, i: sc_ultrasound(r, src, c, i, False),
        "us_multiframe": lambda r, c, i: sc_ultrasound(r, src, c, i, True),
        "sc_viewer": lambda r, c, i: sc_viewer(r, src, c, i, vqa, "dicom"),
        "viewer_png": lambda r, c, i: sc_viewer(r, src, c, i, vqa, "png"),
        "radiograph": lambda r, c, i: radiograph(r, src, c, i, vqa),
        "nm": lambda r, c, i: nuclear(r, src, c, i),
        "xa": lambda r, c, i: angio(r, src, c, i, vqa),
        "endo_dicom": lambda r, c, i: endoscopy(r, c, i, vqa, "dicom"),
        "endo_jpeg": lambda r, c, i: endoscopy(r, c, i, vqa, "jpeg"),
        "photo_png": lambda r, c, i: photo_upload(r, c, i, vqa, "png"),
        "photo_jpeg": lambda r, c, i: photo_upload(r, c, i, vqa, "jpeg"),
        "req_dicom": lambda r, c, i: requisition(r, c, i, "dicom"),
        "req_jpeg": lambda r, c, i: requisition(r, c, i, "jpeg"),
    }
    cases = []
    for index, name in enumerate(plan[:count]):
        case_rng = random.Random(rng.randrange(1 << 30))
        cases.append(builders[name](case_rng, f"f{seed}_{index:03d}", make_identity(case_rng)))
    return cases


# ---------------------------------------------------------------------------------------------------------------
# running radassist


@dataclass
class Run:
    ok: bool
    seconds: float
    frames: dict[int, Path]  # 0-based frame -> its rendering
    withheld: set[int]
    frame_count: int
    error: str | None
    folder: str = ""


def ingest_many(paths: list[Path], policy: str, work: Path, tag: str) -> dict[str, Run]:
    """One ``radassist ingest`` process over the files, each in a fresh data folder; one Run per file."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{tag}_{policy}_", dir=work))
    env = dict(os.environ, RADASSIST_DATA_DIR=str(tmp / "data"), RADASSIST_BURNED_IN_TEXT=policy)
    start = time.perf_counter()
    proc = subprocess.run([str(RADASSIST), "ingest", "--json", "--out", str(tmp / "out"), *map(str, paths)],
                          capture_output=True, text=True, env=env, cwd=str(tmp), timeout=3600)
    seconds = (time.perf_counter() - start) / max(1, len(paths))
    rows = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rows[row.get("path")] = row
    runs = {}
    for path in paths:
        row = rows.get(str(path))
        if row is None or not row.get("ok"):
            error = row.get("error") if row else proc.stderr.strip()[-300:]
            runs[str(path)] = Run(False, seconds, {}, set(), 0, str(error), str(tmp))
            continue
        summary = row["summary"]
        count = int(summary.get("frame_count") or 1)
        frames: dict[int, Path] = {}
        for folder in glob.glob(str(tmp / "out" / "*" / f"*_{summary['series_uid'][-8:]}")):
            for png in sorted(Path(folder).glob("frame*.png")):
                frames[int(png.stem[5:]) - 1] = png
        bit = summary.get("burned_in_text") or {}
        withheld = {i for i in range(count) if i not in frames}
        if bit.get("withheld_frames") and not withheld:
            withheld = set(range(count))  # a count without knowing which: treat every frame as withheld
        runs[str(path)] = Run(True, seconds, frames, withheld, count, None, str(tmp))
    return runs


def ingest(path: Path, policy: str, work: Path) -> Run:
    return ingest_many([path], policy, work, path.stem)[str(path)]


def load_png(path: Path, shape: tuple[int, int]) -> np.ndarray:
    render = np.asarray(Image.open(path).convert("RGB"))
    if render.shape[:2] == shape:
        return render
    return np.asarray(Image.fromarray(render).resize((shape[1], shape[0]), Image.NEAREST))


# ---------------------------------------------------------------------------------------------------------------
# scoring


def is_black(img: np.ndarray, level: int = BLACK) -> np.ndarray:
    return (img <= level).all(axis=2)


def darkest(render: np.ndarray) -> int:
    """The darkest level the clean rendering shows: a fill at that level is as black as this image gets."""
    return max(BLACK, int(render.max(axis=2).min()) + 2)


def mark_share(mark: Mark, planted_never: np.ndarray, clean_never: np.ndarray, always: np.ndarray) -> tuple[
        float | None, float | None, str]:
    """Blacked share of the token's test pixels: strict (<= 8) and against the image's darkest level."""
    x0, y0, x1, y1 = mark.box
    sl = (slice(y0, y1), slice(x0, x1))
    pn, cn, al = planted_never[sl].astype(np.int16), clean_never[sl].astype(np.int16), always[sl]
    lum = pn.mean(axis=2)
    around = ~mark.mask
    ink_level = float(lum[mark.mask].mean())
    bg_level = float(lum[around].mean()) if around.any() else 0.0
    gap = abs(bg_level - ink_level)
    mark.labels["measured_contrast"] = "high(>=100)" if gap >= 100 else "medium(40-99)" if gap >= 40 else "low(<40)"
    if ink_level < 60 and bg_level > ink_level + 40:  # dark text on a light box/page: test the box's light pixels
        test = around & (pn.max(axis=2) > BLACK)
        how = "box_light"
    else:
        ink = mark.mask & (np.abs(pn - cn).max(axis=2) > 12)
        if ink.sum() < 4:
            return None, None, "invisible"
        test = ink & (pn.max(axis=2) > BLACK)
        how = "ink"
    if test.sum() < 4:
        return None, None, "untestable"
    dark = darkest(clean_never)
    return float(is_black(al)[test].mean()), float(is_black(al, dark)[test].mean()), how


def score_case(case: Case, planted: Path, work: Path, clean_never: Run, clean_always: Run | None) -> dict[str, Any]:
    always = ingest(planted, "always", work)
    never = ingest(planted, "never", work)
    shape = case.frames[0].shape[:2]
    cache: dict[tuple[str, int], np.ndarray] = {}

    def render(run: Run, frame: int) -> np.ndarray:
        key = (run.folder, frame)
        if key not in cache:
            cache[key] = load_png(run.frames[frame], shape)
        return cache[key]

    marks = []
    for mark in case.marks:
        row = {"image": case.case_id, "group": mark.group, "frame": mark.frame, "text": mark.text, "role": mark.role,
               "kind": mark.kind, **mark.labels}
        if not always.ok:
            row.update(share=1.0, share_dark=1.0, status="failed_ingest")
        elif mark.frame in always.withheld:
            row.update(share=1.0, share_dark=1.0, status="withheld")
        elif mark.frame not in never.frames or mark.frame not in clean_never.frames:
            row.update(share=None, share_dark=None, status="no_reference")
        else:
            share, share_dark, how = mark_share(mark, render(never, mark.frame), render(clean_never, mark.frame),
                                                render(always, mark.frame))
            row.update(share=share, share_dark=share_dark, status=how,
                       measured_contrast=mark.labels.get("measured_contrast"))
        marks.append(row)
    frames = []
    for f in range(len(case.frames)):
        shown = always.ok and f in always.frames and f not in always.withheld
        row: dict[str, Any] = {"frame": f, "shown": shown, "fr": None, "fr_excl_source": None}
        if shown and f in never.frames:
            al, nv = render(always, f), render(never, f)
            outside = np.ones(shape, dtype=bool)
            for fr, x0, y0, x1, y1 in case.boxes:
                if fr == f:
                    outside[max(0, y0 - 4) : y1 + 4, max(0, x0 - 4) : x1 + 4] = False
            visible = outside & ~is_black(nv)
            blacked = visible & is_black(al)
            if visible.any():
                row["fr"] = float(blacked.sum() / visible.sum())
                if clean_always is not None and f in clean_always.frames:
                    source_text = is_black(render(clean_always, f))
                    row["fr_excl_source"] = float((blacked & ~source_text).sum() / visible.sum())
        frames.append(row)
    return {
        "image": case.case_id, "rendering": case.scenario, "format": case.fmt, "frames": len(case.frames),
        "height": int(case.frames[0].shape[0]), "width": int(case.frames[0].shape[1]),
        "ingest_ok": always.ok, "error": always.error, "withheld": sorted(always.withheld),
        "seconds_always": always.seconds, "seconds_never": never.seconds,
        "frame_rows": frames, "marks": marks,
        "run_dirs": {"always": always.folder, "never": never.folder, "clean_never": clean_never.folder,
                     "clean_always": clean_always.folder if clean_always else None},
    }


# ---------------------------------------------------------------------------------------------------------------
# report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def grouped(images: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """One row per planted token: a token on every frame of a multi-frame file counts once, at its worst frame."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for img in images:
        for m in img["marks"]:
            if m["role"] == role and m["share"] is not None:
                groups[m["group"]].append(m)
    rows = []
    for members in groups.values():
        worst = min(members, key=lambda m: m["share"]) if role == "id" else max(members, key=lambda m: m["share"])
        row = dict(worst)
        row["frames_scored"] = len(members)
        row["share_dark"] = (min if role == "id" else max)(m["share_dark"] for m in members)
        lost = any(m["status"] in ("withheld", "failed_ingest") for m in members)
        if role == "id":
            row["removed"] = row["share"] >= 0.95
            row["removed_dark"] = row["share_dark"] >= 0.95
        else:
            row["kept"] = not lost and row["share"] < 0.5
            row["lost_withheld"] = lost
        rows.append(row)
    return rows


DIMENSIONS = ("kind", "rendering", "format", "placement", "header", "size", "contrast", "measured_contrast", "font",
              "antialias", "layout", "mixed_block")


def summarise(images: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = grouped(images, "id")
    negs = grouped(images, "neg")
    by: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for m in tokens:
        for dim in DIMENSIONS:
            cell = by[dim][str(m.get(dim))]
            cell[0] += int(m["removed"])
            cell[1] += 1
    shown = [m for m in tokens if m["status"] not in ("withheld", "failed_ingest")]
    neg_by: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for m in negs:
        neg_by[m["kind"]][0] += int(m["kept"])
        neg_by[m["kind"]][1] += 1
    frs = [f["fr"] for img in images for f in img["frame_rows"] if f["fr"] is not None]
    frs_ex = [f["fr_excl_source"] for img in images for f in img["frame_rows"] if f["fr_excl_source"] is not None]
    t_always = [img["seconds_always"] for img in images]
    t_never = [img["seconds_never"] for img in images]
    frames_total = sum(img["frames"] for img in images)
    return {
        "tokens": len(tokens), "removed": sum(m["removed"] for m in tokens),
        "recall": sum(m["removed"] for m in tokens) / max(1, len(tokens)),
        "recall_darkest_fill": sum(m["removed_dark"] for m in tokens) / max(1, len(tokens)),
        "shown_tokens": len(shown), "shown_removed": sum(m["removed"] for m in shown),
        "token_frame_rows": sum(m["frames_scored"] for m in tokens),
        "by": {dim: {k: {"removed": v[0], "total": v[1]} for k, v in sorted(cells.items())}
               for dim, cells in by.items()},
        "negatives": len(negs), "negatives_kept": sum(m["kept"] for m in negs),
        "negatives_withheld": sum(m["lost_withheld"] for m in negs),
        "negatives_by_kind": {k: {"kept": v[0], "total": v[1]} for k, v in sorted(neg_by.items())},
        "false_redaction": {"frames": len(frs), "median": pct(frs, 0.5), "p90": pct(frs, 0.9),
                            "max": max(frs) if frs else float("nan")},
        "false_redaction_excl_source_text": {"frames": len(frs_ex), "median": pct(frs_ex, 0.5),
                                             "p90": pct(frs_ex, 0.9), "max": max(frs_ex) if frs_ex else float("nan")},
        "time_s": {"always_median": statistics.median(t_always), "always_p90": pct(t_always, 0.9),
                   "always_mean": statistics.mean(t_always), "never_median": statistics.median(t_never),
                   "never_mean": statistics.mean(t_never),
                   "always_per_frame_mean": sum(t_always) / frames_total,
                   "never_per_frame_mean": sum(t_never) / frames_total},
        "images": len(images), "frames": frames_total,
        "frames_withheld": sum(len(img["withheld"]) for img in images),
        "images_failed": sum(not img["ingest_ok"] for img in images),
        "invisible_marks": sum(m["status"] in ("invisible", "untestable", "no_reference")
                               for img in images for m in img["marks"]),
    }


def print_table(summary: dict[str, Any]) -> None:
    print(f"images {summary['images']}  frames {summary['frames']}  withheld frames {summary['frames_withheld']}  "
          f"failed ingests {summary['images_failed']}  unscorable marks {summary['invisible_marks']}")
    print(f"RECALL {summary['removed']}/{summary['tokens']} = {summary['recall']:.3f}  (fill at the image's darkest "
          f"level counted as black: {summary['recall_darkest_fill']:.3f}; {summary['token_frame_rows']} token-frames)")
    print(f"  on shown frames only (withheld frames and failed ingests left out): {summary['shown_removed']}/"
          f"{summary['shown_tokens']}")
    for dim, cells in summary["by"].items():
        print(f"  by {dim}:")
        for key, cell in cells.items():
            print(f"    {key:<28} {cell['removed']:>4}/{cell['total']:<4} {cell['removed'] / cell['total']:.3f}")
    print(f"NEGATIVES kept {summary['negatives_kept']}/{summary['negatives']} "
          f"(lost to withheld frames: {summary['negatives_withheld']})")
    for key, cell in summary["negatives_by_kind"].items():
        print(f"    {key:<28} {cell['kept']:>4}/{cell['total']}")
    for name in ("false_redaction", "false_redaction_excl_source_text"):
        fr = summary[name]
        print(f"{name.upper()} over {fr['frames']} shown frames: median {fr['median']:.4f}  p90 {fr['p90']:.4f}  "
              f"max {fr['max']:.4f}")
    t = summary["time_s"]
    print(f"TIME per image (s): always median {t['always_median']:.2f} p90 {t['always_p90']:.2f} mean "
          f"{t['always_mean']:.2f} | never median {t['never_median']:.2f} mean {t['never_mean']:.2f} | per frame "
          f"always {t['always_per_frame_mean']:.2f} never {t['never_per_frame_mean']:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7341)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--no-baseline", action="store_true", help="skip the clean twin's always run")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    files = args.work / "files"
    files.mkdir(exist_ok=True)
    started = time.perf_counter()
    cases = build_cases(args.seed, args.images)
    written = [write_case(case, files, args.seed + i) for i, case in enumerate(cases)]
    print(f"generated {len(cases)} images in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    runs = args.work / "runs"
    runs.mkdir(exist_ok=True)
    jobs = max(1, args.jobs)
    clean_paths = [c for _, c in written]
    chunks = [clean_paths[i::jobs] for i in range(jobs)]
    policies = ["never"] + ([] if args.no_baseline else ["always"])
    clean_runs: dict[str, dict[str, Run]] = {policy: {} for policy in policies}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        batch = {pool.submit(ingest_many, chunk, policy, runs, f"clean{n}"): policy
                 for policy in policies for n, chunk in enumerate(chunks) if chunk}
        for fut, policy in batch.items():
            clean_runs[policy].update(fut.result())
        print(f"clean twins ingested at {time.perf_counter() - started:.0f}s", file=sys.stderr)
        futures = [pool.submit(score_case, case, p, runs, clean_runs["never"][str(c)],
                               clean_runs["always"][str(c)] if "always" in clean_runs else None)
                   for case, (p, c) in zip(cases, written, strict=True)]
        images = []
        for n, fut in enumerate(futures, 1):
            images.append(fut.result())
            if n % 10 == 0:
                print(f"  scored {n}/{len(cases)} at {time.perf_counter() - started:.0f}s", file=sys.stderr)
    summary = summarise(images)
    print_table(summary)
    tokens = [dict(m) for img in images for m in img["marks"] if m["role"] == "id"]
    negatives = [dict(m) for img in images for m in img["marks"] if m["role"] == "neg"]
    per_image = [{k: v for k, v in img.items() if k != "marks"} for img in images]
    out = {"seed": args.seed, "summary": summary, "tokens": tokens, "negatives": negatives, "images": per_image,
           "wall_s": time.perf_counter() - started}
    (args.work / "results.json").write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    print(f"wrote {args.work / 'results.json'} in {out['wall_s']:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
