"""Blind held-out benchmark I for burned-in text redaction (issue #16), driven through the CLI only.

Official seed: 5813 (score it once; debug only with small seeds and ``--images <= 8``). The lead's run:
``.venv/bin/python -m bench.heldout_burned_in_i --seed 5813 --work /tmp/heldout_i --jobs 2``

Each case is one synthetic image (DICOM built from the real files in /work/shared/data, or a PNG/JPEG upload) with
device-style text drawn into the pixels, and a clean twin (same pixels, no text). Every case is ingested three times
in fresh temp dirs: the image with ``RADASSIST_BURNED_IN_TEXT=always`` and ``never``, the twin with ``never``.
The ink of a token is the rendered difference (image vs twin, both ``never``) under its glyph mask.

Scoring (kept identical to the earlier held-out sets): an identifier token is removed when >= 95% of its ink is
black (<= 8 in every channel) in the ``always`` rendering, or its frame was withheld, or the file failed ingest
(failures are also counted apart). A token darker than its surroundings is judged on the light pixels of its box
instead. A negative (non-PHI annotation) is kept when < 50% of its ink is black. False redaction is the share of
visible non-text area (outside every drawn box + 4 px) that is black with ``always`` but not with ``never``, per
shown frame. Time is the wall time of each ingest call. Identities are invented.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "radassist"
DICOM_DIR = Path("/work/shared/data/dicom")
VQA_DIR = Path("/work/shared/data/vqa_rad/images")
DJV = Path("/usr/share/fonts/truetype/dejavu")
KATEX = ROOT / ".venv/lib/python3.11/site-packages/gradio/templates/frontend/assets"
TIMEOUT_S = 600
BLACK = 8

# ---------------------------------------------------------------- fonts


def _font_files() -> dict[str, Path]:
    out = {p.stem: p for p in sorted(DJV.glob("DejaVu*.ttf")) if "Math" not in p.stem}
    for p in sorted(KATEX.glob("KaTeX_*.ttf")):
        name = p.stem.split("-")[0] + "-" + p.stem.split("-")[1]
        if any(k in name for k in ("Main", "SansSerif", "Typewriter")):
            out[name] = p
    return out


FONTS = _font_files()
PLAIN_FONTS = [n for n in FONTS if not any(k in n for k in ("Oblique", "Italic", "ExtraLight"))]
ITALIC_FONTS = [n for n in FONTS if "Oblique" in n or "Italic" in n]


@lru_cache(maxsize=512)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS[name]), size)


@lru_cache(maxsize=8192)
def _has_glyph(name: str, ch: str) -> bool:
    if ch == " ":
        return True
    f = _font(name, 20)
    return bytes(f.getmask(ch)) != bytes(f.getmask("\ue000"))


def _covers(name: str, text: str) -> bool:
    return all(_has_glyph(name, c) for c in text)


# ---------------------------------------------------------------- identities (all invented)

FIRST = ["Anna", "María José", "Siobhan", "Ewan", "Thi Minh", "Oluwaseun", "Yusuf", "Ingrid", "Jean-Luc",
         "Kateřina", "Padraig", "Aleksandr", "Mei Ling", "Björn", "Fatoumata", "Rhiannon", "Giuseppe", "Ayşe",
         "Tomasz", "Hana", "Declan", "Lucía", "Nnamdi", "Sigrún", "Rafael", "Chiara", "Dmitri", "Wanjiru"]
LAST = ["van der Berg", "de la Cruz", "MacAulay", "O'Neill", "Nguyen", "Okonkwo-Blake", "Al-Hashimi", "Kowalczyk",
        "dos Santos", "McFadyen", "ter Steege", "Papadopoulou", "Müller-Lüdenscheidt", "Ó Briain", "Zhang",
        "Van Houten", "Abubakar", "Lindqvist", "Castillo Ruiz", "St. Clair", "Yilmaz", "Fitzgerald",
        "de Vries", "Hakobyan", "Le Goff", "Sørensen", "Iwasaki", "D'Angelo", "Mbeki", "Oyelaran-Adeyemi"]
INSTITUTIONS = ["St. Aldric Hospital", "Klinikum Nordhafen", "Hôpital Sainte-Élise", "Riverside Imaging Ctr",
                "Ospedale San Teodoro", "Hollowbrook Medical Center", "Kreiskrankenhaus Eichental",
                "Clínica Monteverde", "Ashgrove Women's Health", "Northfield Dental Studio", "Lakeview Eye Clinic"]
STREETS = ["12 Harbour Rd, Leeds LS2 9JT", "Kastanienallee 7, 10435 Berlin", "4410 W Elm St Apt 3B",
           "88 Rue des Tanneurs, 69002 Lyon", "Via Garibaldi 21, 40121 Bologna", "17 Quarry Lane, Cork T12 XK84"]
MONTHS = {
    "en": ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    "de": ["JAN", "FEB", "MÄR", "APR", "MAI", "JUN", "JUL", "AUG", "SEP", "OKT", "NOV", "DEZ"],
    "fr": ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."],
    "es": ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"],
    "nl": ["jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"],
}


@dataclass
class Identity:
    first: str
    last: str
    mrn: str
    dob: tuple[int, int, int]
    study: tuple[int, int, int]
    time: str
    accession: str
    institution: str
    physician: str
    operator: str
    phone: str
    address: str


def _pick(rng: np.random.Generator, seq: list[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, n))


def _letters(rng: np.random.Generator, n: int) -> str:
    return "".join(chr(65 + int(c)) for c in rng.integers(0, 26, n))


def make_identity(rng: np.random.Generator) -> Identity:
    mrn = _pick(rng, [
        lambda: _digits(rng, int(rng.integers(7, 11))),
        lambda: f"{_letters(rng, 1)}-{_digits(rng, 2)} {_digits(rng, 4)} {_digits(rng, 1)}",
        lambda: f"{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}",
        lambda: f"{_letters(rng, 2)}{_digits(rng, 6)}{_letters(rng, 1)}",
        lambda: f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 2)}",
    ])()
    acc = _pick(rng, [
        lambda: f"A{_digits(rng, 2)}-{_digits(rng, 6)}",
        lambda: f"RA{_digits(rng, 6)}-{_digits(rng, 4)}",
        lambda: _digits(rng, 9),
        lambda: f"{_letters(rng, 3)}{_digits(rng, 7)}",
    ])()
    phone = _pick(rng, [
        lambda: f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}",
        lambda: f"({_digits(rng, 3)}) 555-{_digits(rng, 4)}",
        lambda: f"030 {_digits(rng, 4)} {_digits(rng, 3)}",
        lambda: f"+33 4 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
    ])()
    initials = _letters(rng, int(rng.integers(2, 4)))
    op_last = _pick(rng, LAST)
    return Identity(
        first=_pick(rng, FIRST), last=_pick(rng, LAST), mrn=mrn,
        dob=(int(rng.integers(1931, 2022)), int(rng.integers(1, 13)), int(rng.integers(1, 29))),
        study=(int(rng.integers(2019, 2027)), int(rng.integers(1, 13)), int(rng.integers(1, 29))),
        time=f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d}",
        accession=acc, institution=_pick(rng, INSTITUTIONS),
        physician=f"{_pick(rng, ['R.', 'T.', 'A. M.', 'K.'])} {_pick(rng, LAST)}",
        operator=_pick(rng, [initials, f"{op_last.split()[-1][:1]}. {op_last.split()[-1]}", initials.lower()]),
        phone=phone, address=_pick(rng, STREETS))


def fmt_name(rng: np.random.Generator, ident: Identity) -> str:
    f, la = ident.first, ident.last
    style = int(rng.integers(6))
    if style == 0:
        return f"{la.upper()}^{f.upper()}".replace(" ", " ")
    if style == 1:
        return f"{la}, {f}"
    if style == 2:
        return f"{f} {la}"
    if style == 3:
        return f"{la.upper()}, {f.upper()}"
    if style == 4:
        return f"{la.upper()} {f}"
    return f"{f.split()[0][0]}. {la}"


def fmt_date(rng: np.random.Generator, d: tuple[int, int, int]) -> str:
    y, m, dd = d
    style = int(rng.integers(9))
    if style == 0:
        return f"{dd:02d}-{MONTHS['de'][m - 1]}-{y}"
    if style == 1:
        return f"{dd} {MONTHS['fr'][m - 1]} {y}"
    if style == 2:
        return f"{y}/{m:02d}/{dd:02d}"
    if style == 3:
        return f"{m:02d}/{dd:02d}/{y}"
    if style == 4:
        return f"{dd:02d}.{m:02d}.{y % 100:02d}"
    if style == 5:
        return f"{dd} {MONTHS['es'][m - 1]} {y}"
    if style == 6:
        return f"{y}{m:02d}{dd:02d}"
    if style == 7:
        return f"{MONTHS['en'][m - 1].title()} {dd} {y}"
    return f"{dd:02d}-{MONTHS['nl'][m - 1]}-{y}"


# ---------------------------------------------------------------- drawing

Seg = tuple[str, str]  # (text, role): role "phi:<kind>", "neg:<kind>" or "ctx"


@dataclass
class Token:
    case: str
    frame: int
    role: str
    kind: str
    text: str
    size: int
    box: tuple[int, int, int, int]
    style: str
    font: str
    bg: str
    position: str
    idx: int = 0


@dataclass
class Canvas:
    img: np.ndarray  # float32 HxWx3, 0..255
    grey: bool
    tokens: list[Token] = field(default_factory=list)
    masks: list[tuple[tuple[int, int, int, int], np.ndarray]] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def h(self) -> int:
        return int(self.img.shape[0])

    @property
    def w(self) -> int:
        return int(self.img.shape[1])


def _shear(mask: Image.Image, k: float) -> Image.Image:
    w, h = mask.size
    return mask.transform((w, h), Image.Transform.AFFINE, (1, k, -k * h / 2, 0, 1, 0), Image.Resampling.BILINEAR)


def _line_width(segs: list[Seg], font: ImageFont.FreeTypeFont, spacing: int) -> float:
    return sum(font.getlength(t) + spacing * len(t) for t, _ in segs)


def draw_line(cv: Canvas, x: int, y: int, segs: list[Seg], *, font_name: str, size: int,
              colour: tuple[float, float, float], style: str, bg: str, position: str,
              case: str, rng: np.random.Generator) -> bool:
    """Draw one line of segments at (x, y); record a glyph mask per scored segment. False when it cannot fit."""
    font = _font(font_name, size)
    spacing = max(2, size // 5) if style == "spaced" else 0
    width = int(_line_width(segs, font, spacing)) + 2 * size + 8
    height = int(size * 2.2) + 8
    pad = size
    segs = _words(segs)
    masks: list[tuple[Seg, np.ndarray]] = []
    cx = float(pad)
    angle = float(rng.uniform(-5, 5)) if style == "handwritten" else 0.0
    for text, role in segs:
        layer = Image.new("L", (width, height), 0)
        d = ImageDraw.Draw(layer)
        dy = int(rng.integers(-2, 3)) if style == "handwritten" else 0
        if spacing:
            for ch in text:
                d.text((cx, pad // 2 + dy), ch, font=font, fill=255)
                cx += font.getlength(ch) + spacing
        else:
            stroke = 1 if style == "handwritten" and size >= 14 else 0
            d.text((cx, pad // 2 + dy), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
            cx += font.getlength(text)
        if style == "italic":
            layer = _shear(layer, 0.22)
        if angle:
            layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR, center=(width / 2, height / 2))
        masks.append(((text, role), np.asarray(layer, dtype=np.float32) / 255.0))
    union = np.maximum.reduce([m for _, m in masks])
    ys, xs = np.nonzero(union > 0.2)
    if len(xs) == 0:
        return False
    ox, oy = x - int(xs.min()), y - int(ys.min())
    x0, y0, x1, y1 = int(xs.min()) + ox, int(ys.min()) + oy, int(xs.max()) + ox + 1, int(ys.max()) + oy + 1
    if x0 < 1 or y0 < 1 or x1 > cv.w - 1 or y1 > cv.h - 1:
        return False
    margin = 6
    for b in cv.boxes:
        if not (x1 + margin <= b[0] or b[2] + margin <= x0 or y1 + margin <= b[1] or b[3] + margin <= y0):
            return False
    # place the local canvas in the image
    lx0, ly0 = int(xs.min()), int(ys.min())
    lx1, ly1 = int(xs.max()) + 1, int(ys.max()) + 1
    sl = (slice(y0, y1), slice(x0, x1))
    u = union[ly0:ly1, lx0:lx1]
    alpha = 0.55 if style == "translucent" else 1.0
    region = cv.img[sl]
    if style == "outline":
        ring = ndimage.binary_dilation(u > 0.3, iterations=1).astype(np.float32)
        region[:] = region * (1 - ring[..., None]) + 0.0 * ring[..., None]
    col = np.array(colour, dtype=np.float32)
    a = (u * alpha)[..., None]
    region[:] = region * (1 - a) + col * a
    if cv.grey:
        region[:] = region.mean(axis=2, keepdims=True)
    cv.boxes.append((x0, y0, x1, y1))
    for (text, role), m in masks:
        if role == "ctx" or not text.strip():
            continue
        mm = m[ly0:ly1, lx0:lx1] > 0.25
        if style == "outline":
            mm = ndimage.binary_dilation(mm, iterations=1)
        pys, pxs = np.nonzero(mm)
        if len(pxs) == 0:
            continue
        bx = (x0 + int(pxs.min()), y0 + int(pys.min()), x0 + int(pxs.max()) + 1, y0 + int(pys.max()) + 1)
        crop = mm[pys.min():pys.max() + 1, pxs.min():pxs.max() + 1]
        kind = role.split(":", 1)[1]
        cv.tokens.append(Token(case, 0, role.split(":")[0], kind, text, size, bx, style, font_name, bg, position))
        cv.masks.append((bx, crop))
    return True


def _words(segs: list[Seg]) -> list[Seg]:
    """Scored segments become one segment per whitespace-separated word, joined by context spaces."""
    out: list[Seg] = []
    for text, role in segs:
        if role == "ctx":
            out.append((text, role))
            continue
        for i, word in enumerate(text.split(" ")):
            if i:
                out.append((" ", "ctx"))
            if word:
                out.append((word, role))
    return out


# ---------------------------------------------------------------- real pixels


def _norm(a: np.ndarray, invert: bool = False) -> np.ndarray:
    a = a.astype(np.float32)
    lo, hi = np.percentile(a, 1), np.percentile(a, 99.5)
    out = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)
    return 1 - out if invert else out


@lru_cache(maxsize=1)
def grey_sources() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, rel in [("CT", "pydicom_data/693_UNCI.dcm"), ("MR", "dcm_qa_ts/1.dcm"),
                      ("MR2", "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm"), ("MR3", "pydicom_data/MR2_J2KI.dcm"),
                      ("CR", "pydicom_data/RG1_UNCI.dcm"), ("CR2", "pydicom_data/RG3_J2KR.dcm")]:
        try:
            ds = pydicom.dcmread(DICOM_DIR / rel)
            out[name] = _norm(ds.pixel_array, ds.PhotometricInterpretation == "MONOCHROME1")
        except Exception:  # noqa: BLE001 - a source that cannot be decoded is skipped
            continue
    return out


@lru_cache(maxsize=1)
def us_sources() -> list[np.ndarray]:
    out = []
    for rel in ["pydicom_data/US1_J2KR.dcm"]:  # the palette OB file decodes to LUT indices, not intensities
        try:
            a = pydicom.dcmread(DICOM_DIR / rel).pixel_array
        except Exception:  # noqa: BLE001
            continue
        frames = a if a.ndim == 3 and a.shape[-1] != 3 else [a]
        for f in frames:
            g = f.mean(axis=2) if f.ndim == 3 else f.astype(np.float32)
            h, w = g.shape
            crop = _norm(g[int(h * .25):int(h * .8), int(w * .3):int(w * .7)])
            out += [crop, crop[:, ::-1], crop[::-1, :] * 0.8]
    return out


def _vqa_files() -> list[Path]:
    return sorted(VQA_DIR.glob("*.jpg"))


def anatomy(rng: np.random.Generator, h: int, w: int, pool: list[str] | None = None) -> np.ndarray:
    src = grey_sources()
    names = [n for n in (pool or list(src)) if n in src]
    if names and (pool or rng.random() < 0.7):
        a = src[_pick(rng, names)]
    else:
        p = _pick(rng, _vqa_files())
        a = _norm(np.asarray(Image.open(p).convert("L")))
    ah, aw = a.shape
    f = float(rng.uniform(0.7, 1.0))
    ch, cw = int(ah * f), int(aw * f)
    y, x = int(rng.integers(0, ah - ch + 1)), int(rng.integers(0, aw - cw + 1))
    return cv2.resize(a[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 8) -> np.ndarray:
    small = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def jet(v: np.ndarray) -> np.ndarray:
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], axis=-1) * 255


def hot(v: np.ndarray) -> np.ndarray:
    return np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], axis=-1) * 255


def rgb(g: np.ndarray) -> np.ndarray:
    return np.repeat((g * 255).astype(np.float32)[..., None], 3, axis=2)


def sector(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Black screen with an ultrasound fan filled with real US speckle; returns (image, fan mask)."""
    tex = cv2.resize(_pick(rng, us_sources()), (w, h)) if us_sources() else rng.random((h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    apex = (w / 2, h * 0.08)
    ang = np.degrees(np.arctan2(xx - apex[0], yy - apex[1]))
    rad = np.hypot(xx - apex[0], yy - apex[1])
    fan = (np.abs(ang) < 36) & (rad > h * 0.05) & (rad < h * 0.82)
    return rgb(tex * fan), fan


# ---------------------------------------------------------------- scenes

WHITE, YELLOW, CYAN, GREEN = (250.0, 250.0, 250.0), (245.0, 230.0, 60.0), (90.0, 230.0, 240.0), (90.0, 240.0, 90.0)
LIGHT_GREY, MID_GREY, DARK_GREY, INK = (205.0,) * 3, (150.0,) * 3, (55.0,) * 3, (25.0, 25.0, 40.0)


def phi_lines(rng: np.random.Generator, ident: Identity, n: int) -> list[list[Seg]]:
    lab = int(rng.integers(3))
    pool: list[list[Seg]] = [
        [("Name: " if lab == 0 else "", "ctx"), (fmt_name(rng, ident), "phi:name")],
        [(["ID: ", "MRN ", "Pat.-Nr. "][lab], "ctx"), (ident.mrn, "phi:id")],
        [(["DOB ", "Geb.: ", "Born "][lab], "ctx"), (fmt_date(rng, ident.dob), "phi:dob")],
        [(fmt_date(rng, ident.study), "phi:date"), ("  ", "ctx"), (ident.time, "phi:date")],
        [(["Acc# ", "Acc: ", "ACCESSION "][lab], "ctx"), (ident.accession, "phi:accession")],
        [(ident.institution, "phi:institution")],
        [(["Ref: Dr. ", "Zuweiser: ", "Req. "][lab], "ctx"), (ident.physician, "phi:physician")],
        [(["Sono: ", "Tech: ", "Op: "][lab], "ctx"), (ident.operator, "phi:operator")],
        [("Tel ", "ctx"), (ident.phone, "phi:phone")],
        [(ident.address, "phi:address")],
    ]
    if rng.random() < 0.7:  # an address line is long; keep it to about a third of the images
        pool.pop()
    rest = [pool[i] for i in rng.permutation(len(pool) - 1) + 1]
    return ([pool[0]] + rest)[:n]


def neg(*texts: str) -> list[list[Seg]]:
    return [[(t, "neg:annotation")] for t in texts]


SCENE_NEGS: dict[str, list[str]] = {
    "us_grey": ["MI 0.9", "TIS 0.4", "C5-1", "Gn 52", "DR 60", "FR 28Hz", "D1 2.31 cm", "D2 1.87 cm", "16 cm", "L"],
    "us_doppler": ["PSV 84.2 cm/s", "EDV 21.7 cm/s", "RI 0.74", "PRF 3.5k", "WF 100Hz", "MI 1.1 TIb 0.7"],
    "elasto": ["SWE 12.4 kPa", "Q-Box 8 mm", "0 kPa", "60 kPa", "Depth 4.2 cm", "L14-5"],
    "ob3d": ["3D/4D", "HDlive", "GA 28w3d", "EFW 1180 g", "BPD 7.12 cm", "TIb 0.3"],
    "echo": ["HR 72 bpm", "4CH", "EF 58 %", "LVIDd 4.8 cm", "P4-2", "54 Hz", "TIS 0.6"],
    "xa": ["LAO 30 CRA 20", "RAO 12 CAU 25", "15 fps", "73 kV", "112 mA", "DAP 4.31 Gy·cm2", "Run 3/7"],
    "petct": ["SUVmax 7.4", "MIP", "WL 40/400", "3.0 mm", "Img 112/310", "kVp 120 mAs 45"],
    "mammo": ["R CC", "L MLO", "28 kV", "63 mAs", "AGD 1.42 mGy", "Comp 54 mm"],
    "dental": ["R", "L", "66 kV", "8 mA", "14.1 s", "PAN ADULT M"],
    "fundus": ["OD", "45°", "Flash 100", "ISO 200", "Macula"],
    "dxa": ["L1-L4", "BMD 0.912 g/cm2", "T-score -1.8", "Z-score -0.6", "Page 1 of 2", "AP Spine", "WHO"],
    "wound": ["2.3 cm", "Day 14", "Site: sacrum", "cm 1 2 3"],
    "workstation": ["VR", "Axial", "W 400 L 40", "Slice 57/220", "1.25 mm", "3D Cursor"],
    "rtplan": ["95%", "50%", "107%", "PTV", "CTV", "Dose 60 Gy / 30 fx", "Beam 2 G270"],
    "fax": ["Page 01/03", "REQUISITION", "CT Abdomen w/ contrast", "Priority: routine"],
    "film": ["R", "PA ERECT", "ERECT", "1.5 cm"],
    "ctmr": ["kVp 120", "mAs 210", "DLP 412.3", "Se 4", "Im 57", "W 400 L 40", "3.0mm", "TR 2300 TE 95"],
    "cr": ["R", "PA", "AP PORTABLE", "EI 412", "DI -0.3", "110 kVp 2.5 mAs"],
}

# rendering -> (format choices, modality, background label of most text)
SCENE_META: dict[str, tuple[list[str], str, str]] = {
    "us_grey": (["dcm", "dcm", "png"], "US", "flat"), "us_doppler": (["dcm", "jpg"], "US", "flat"),
    "elasto": (["png", "dcm"], "US", "textured"), "ob3d": (["jpg", "dcm"], "US", "textured"),
    "echo": (["dcm"], "US", "flat"), "xa": (["dcm"], "XA", "anatomy"), "petct": (["dcm", "png"], "OT", "anatomy"),
    "mammo": (["dcm"], "MG", "anatomy"), "dental": (["png", "dcm"], "DX", "anatomy"),
    "fundus": (["jpg"], "OP", "textured"), "dxa": (["png", "dcm"], "OT", "flat"),
    "wound": (["jpg"], "XC", "textured"), "workstation": (["png"], "OT", "flat"),
    "rtplan": (["png", "dcm"], "OT", "anatomy"), "fax": (["png"], "OT", "textured"),
    "film": (["jpg"], "OT", "anatomy"), "ctmr": (["dcm"], "CT", "anatomy"), "cr": (["dcm"], "CR", "anatomy"),
}


def base_image(scene: str, rng: np.random.Generator) -> tuple[np.ndarray, bool, str]:
    """Returns (RGB float image, grey?, modality override)."""
    h, w = _pick(rng, [(480, 640), (600, 800), (768, 1024)])
    if scene in ("us_grey", "echo", "us_doppler", "elasto"):
        img, fan = sector(rng, h, w)
        if scene == "us_doppler":
            box = np.zeros((h, w), bool)
            box[int(h * .3):int(h * .55), int(w * .42):int(w * .6)] = True
            v = smooth_noise(rng, h, w, 10)
            col = np.where((v > 0.5)[..., None], [[[220, 40, 30]]], [[[30, 70, 230]]]) * np.abs(v - 0.5)[..., None] * 2
            sel = box & fan & (np.abs(v - 0.5) > 0.15)
            img[sel] = col[sel]
            img[int(h * .84):, :] = rgb(smooth_noise(rng, h - int(h * .84), w, 30) * 0.6)
        if scene == "elasto":
            sel = fan & (smooth_noise(rng, h, w, 3) > 0.0)
            sel[: int(h * .25)] = False
            sel[int(h * .6):] = False
            img[sel] = img[sel] * 0.3 + jet(smooth_noise(rng, h, w, 12))[sel] * 0.7
            img[int(h * .2):int(h * .7), w - 40:w - 25] = jet(np.linspace(1, 0, int(h * .7) - int(h * .2)))[:, None]
        if scene == "echo":
            t = np.linspace(0, 8 * np.pi, w)
            ecg = (h * .9 - 25 * np.exp(-((t % (2 * np.pi)) - 3) ** 2 * 40) - 3 * np.sin(t)).astype(int)
            for x in range(w - 1):
                cv2.line(img, (x, int(ecg[x])), (x + 1, int(ecg[x + 1])), (60, 240, 60), 1)
        return img, False, ""
    if scene == "ob3d":
        v = smooth_noise(rng, h, w, 6) * smooth_noise(rng, h, w, 14)
        return np.stack([v * 255, v * 170, v * 90], axis=-1).astype(np.float32), False, ""
    if scene in ("xa", "mammo", "ctmr", "cr", "dental"):
        pool = {"xa": ["CR", "CR2", "CT"], "mammo": ["CR", "CR2"], "ctmr": ["CT", "MR", "MR2", "MR3"],
                "cr": ["CR", "CR2"], "dental": ["CR2", "CT"]}[scene]
        g = anatomy(rng, h, w, pool)
        if scene == "dental":
            g = cv2.resize(g, (w, h // 2 + 80))
            g = np.vstack([g, np.zeros((h - g.shape[0], w), np.float32)])
        mod = ""
        if scene == "ctmr":
            mod = "CT" if rng.random() < 0.5 else "MR"
        return rgb(g), True, mod
    if scene == "petct":
        g = anatomy(rng, h, w, ["CT"])
        v = smooth_noise(rng, h, w, 9) ** 3
        return rgb(g) * 0.6 + hot(v) * 0.5, False, ""
    if scene == "fundus":
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot(yy - h / 2, xx - w / 2) / (h * .46)
        v = smooth_noise(rng, h, w, 10)
        img = np.stack([200 + 40 * v, 80 + 30 * v, 30 + 10 * v], axis=-1) * (r < 1)[..., None]
        cv2.circle(img, (int(w * .62), h // 2), h // 12, (250, 230, 170), -1)
        for _ in range(7):
            pts = np.cumsum(rng.normal(0, 12, (20, 2)), axis=0) + [w * .62, h / 2]
            cv2.polylines(img, [pts.astype(np.int32)], False, (120, 20, 10), 3)
        img *= (r < 1)[..., None]
        return img.astype(np.float32), False, ""
    if scene in ("dxa", "fax"):
        img = np.full((h, w, 3), 250.0 if scene == "dxa" else 240.0, np.float32)
        for y in range(int(h * .45), int(h * .8), 22):
            cv2.line(img, (int(w * .05), y), (int(w * .6), y), (120, 120, 120), 1)
        if scene == "dxa":
            spine = anatomy(rng, int(h * .35), int(w * .25), ["CR2"])
            img[int(h * .08):int(h * .43), int(w * .05):int(w * .3)] = rgb(spine)
            cv2.rectangle(img, (int(w * .65), int(h * .45)), (int(w * .95), int(h * .8)), (80, 80, 80), 1)
            for i, c in enumerate([(200, 60, 60), (230, 200, 60), (80, 170, 80)]):
                y0 = int(h * .45) + i * int(h * .35 / 3)
                img[y0:y0 + int(h * .35 / 3), int(w * .65) + 1:int(w * .95)] = c
        return img, False, ""
    if scene == "wound":
        v = smooth_noise(rng, h, w, 7)
        img = np.stack([190 + 40 * v, 140 + 30 * v, 120 + 25 * v], axis=-1).astype(np.float32)
        cv2.ellipse(img, (w // 2, h // 2), (w // 7, h // 8), 15, 0, 360, (150, 40, 40), -1)
        cv2.rectangle(img, (int(w * .05), int(h * .55)), (int(w * .45), int(h * .95)), (245, 245, 238), -1)
        return img, False, ""
    if scene == "workstation":
        img = np.full((h, w, 3), 35.0, np.float32)
        hh, ww = (h - 60) // 2, (w - 30) // 2
        for i in range(2):
            for j in range(2):
                g = anatomy(rng, hh - 10, ww - 10, ["CT", "MR", "MR3"])
                y0, x0 = 40 + i * hh + 5, 10 + j * ww + 5
                tile = rgb(g) if (i, j) != (1, 1) else np.stack([g * 240, g * 200, g * 150], axis=-1)
                img[y0:y0 + hh - 10, x0:x0 + ww - 10] = tile
        img[:30] = (60, 64, 72)
        return img, False, ""
    if scene == "rtplan":
        g = anatomy(rng, h, w, ["CT"])
        img = rgb(g)
        for k, c in enumerate([(255, 0, 0), (255, 160, 0), (0, 220, 0), (0, 120, 255)]):
            cv2.ellipse(img, (w // 2, h // 2), (w // 5 + 30 * k, h // 6 + 24 * k), 10, 0, 360, c, 2)
        return img, False, ""
    # film: a CR printed and scanned, with a light-box background margin
    g = anatomy(rng, h, w, ["CR", "CR2", "CT"])
    img = rgb(g * 0.85 + 0.05)
    img[:, : int(w * .04)] = 235
    return img, True, ""


def text_style(scene: str, rng: np.random.Generator, free: bool = False) -> dict[str, Any]:
    r = rng.random()
    size = int(_pick(rng, [8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 26, 28]))
    if free and rng.random() < 0.45:
        size = int(rng.integers(30, 61))
    style = "plain"
    if r < 0.10:
        style = "outline"
    elif r < 0.20:
        style = "italic"
    elif r < 0.28:
        style = "spaced"
    elif r < 0.36:
        style = "translucent"
    light = scene in ("dxa", "fax", "wound")
    if light:
        colour = _pick(rng, [INK, INK, (20.0, 40.0, 140.0), DARK_GREY])
    elif scene in ("ctmr", "cr", "xa", "mammo", "film", "dental"):
        colour = _pick(rng, [WHITE, WHITE, LIGHT_GREY, MID_GREY, DARK_GREY])
    else:
        colour = _pick(rng, [WHITE, YELLOW, CYAN, GREEN, LIGHT_GREY])
    font = _pick(rng, PLAIN_FONTS) if style != "italic" else _pick(rng, ITALIC_FONTS)
    if scene == "fax":
        font = _pick(rng, ["DejaVuSansMono", "KaTeX_Typewriter-Regular", "DejaVuSansMono-Bold"])
    return {"size": size, "style": style, "colour": colour, "font_name": font}


def _fit_font(name: str, segs: list[Seg]) -> str:
    text = "".join(t for t, _ in segs)
    if _covers(name, text):
        return name
    return "DejaVuSans-Oblique" if "Italic" in name or "Oblique" in name else "DejaVuSans"


def compose(cv: Canvas, scene: str, rng: np.random.Generator, ident: Identity, case: str) -> None:
    n_phi = int(rng.integers(3, 5))
    phis = phi_lines(rng, ident, n_phi)
    negs = neg(*[SCENE_NEGS[scene][i] for i in rng.permutation(len(SCENE_NEGS[scene]))[:5]])
    bg = SCENE_META[scene][2]
    split = int(rng.integers(1, len(phis)))
    blocks = [("tl", phis[:split]), ("tr", phis[split:] + negs[:1]), ("bl", negs[1:3]), ("br", negs[3:])]
    for anchor, lines in blocks:
        st = text_style(scene, rng)
        y = 6 if anchor[0] == "t" else None
        heights = [int(st["size"] * 1.4) + 3 for _ in lines]
        if y is None:
            y = cv.h - 8 - sum(heights)
        for segs, lh in zip(lines, heights, strict=True):
            _place(cv, rng, segs, st, anchor, y, bg, case, scene)
            y += lh
    # free-floating text: handwriting / grease pencil / banner names / markers on the image itself
    extra: list[list[Seg]] = []
    if scene in ("wound", "film", "fax", "dental", "mammo", "workstation", "ob3d"):
        extra.append([(fmt_name(rng, ident), "phi:name")])
        extra.append([(fmt_date(rng, ident.study), "phi:date")])
    if scene == "fax":
        extra.insert(0, [(f"{fmt_date(rng, ident.study)} {ident.time[:5]}", "phi:date"), ("  FROM ", "ctx"),
                         (ident.phone, "phi:phone"), ("  P.001", "ctx")])
    extra += neg(*[SCENE_NEGS[scene][i] for i in rng.permutation(len(SCENE_NEGS[scene]))[:2]])
    for segs in extra:
        st = text_style(scene, rng, free=True)
        if scene in ("wound", "film") and segs[0][1].startswith("phi"):
            st["style"] = "handwritten"
            st["font_name"] = _pick(rng, ["KaTeX_Main-Italic", "DejaVuSerif-Italic", "KaTeX_SansSerif-Italic"])
            st["colour"] = (30.0, 30.0, 160.0) if scene == "wound" else _pick(rng, [(240.0,) * 3, (20.0,) * 3])
        if scene == "fax" and segs[0][1] == "phi:date":
            st["size"] = int(rng.integers(9, 13))
            _place(cv, rng, segs, st, "tl", 2, "textured", case, scene)
            continue
        for _ in range(25):
            x = int(rng.integers(5, max(6, cv.w - 100)))
            y = int(rng.integers(5, max(6, cv.h - 40)))
            if _place(cv, rng, segs, st, "free", y, "anatomy" if bg == "anatomy" else "textured", case, scene, x=x):
                break


def _place(cv: Canvas, rng: np.random.Generator, segs: list[Seg], st: dict[str, Any], anchor: str, y: int,
           bg: str, case: str, scene: str, x: int | None = None) -> bool:
    size = st["size"]
    font_name = _fit_font(st["font_name"], segs)
    while size >= 8:
        font = _font(font_name, size)
        width = int(_line_width(segs, font, max(2, size // 5) if st["style"] == "spaced" else 0))
        xx = x if x is not None else (8 if anchor[1] == "l" else cv.w - 8 - width)
        if xx + width < cv.w - 4 and xx > 0:
            ok = draw_line(cv, xx, y, segs, font_name=font_name, size=size, colour=st["colour"], style=st["style"],
                           bg=bg, position=anchor, case=case, rng=rng)
            if ok:
                return True
            if anchor == "free":
                return False
        size -= 2
    return False


# ---------------------------------------------------------------- files


def _uid(seed: int, case: str, what: str) -> str:
    return generate_uid(entropy_srcs=[str(seed), case, what])


def write_dicom(path: Path, img: np.ndarray, grey: bool, modality: str, ident: Identity, header: str, bia: str,
                seed: int, case: str, other: Identity) -> None:
    src = {"US": "pydicom_data/US1_J2KR.dcm", "CT": "pydicom_data/693_UNCI.dcm", "MR": "dcm_qa_ts/1.dcm",
           "CR": "pydicom_data/RG1_UNCI.dcm", "DX": "pydicom_data/RG3_J2KR.dcm", "MG": "pydicom_data/RG1_UNCI.dcm",
           "XA": "pydicom_data/RG3_J2KR.dcm"}.get(modality, "pydicom_data/SC_rgb_2frame.dcm")
    ds = pydicom.dcmread(DICOM_DIR / src)
    for tag in list(ds.keys()):
        if tag.group in (0x0028, 0x7FE0) or 0x6000 <= tag.group <= 0x60FF:
            del ds[tag]
    sop = {"US": "1.2.840.10008.5.1.4.1.1.6.1", "CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
           "CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1",
           "MG": "1.2.840.10008.5.1.4.1.1.1.2", "XA": "1.2.840.10008.5.1.4.1.1.12.1"}.get(
        modality, "1.2.840.10008.5.1.4.1.1.7")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(seed, case, "sop")
    ds.SeriesInstanceUID = _uid(seed, case, "series")
    ds.StudyInstanceUID = _uid(seed, case, "study")
    ds.Modality = modality
    if sop.endswith(".7"):
        ds.ConversionType = "WSD"
    h, w = img.shape[:2]
    ds.Rows, ds.Columns = h, w
    if grey:
        mono1 = modality in ("CR", "MG") and (seed + len(case)) % 2 == 0
        v = np.clip(img.mean(axis=2) / 255.0 * 4095, 0, 4095).round().astype(np.uint16)
        if mono1:
            v = (4095 - v).astype(np.uint16)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if mono1 else "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.add_new(0x7FE00010, "OW", v.tobytes())
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.add_new(0x7FE00010, "OB", np.clip(img, 0, 255).round().astype(np.uint8).tobytes())
    who = ident if header in ("consistent", "partial") else other
    if header == "blanked":
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber",
                   "ReferringPhysicianName", "OperatorsName", "StudyDate"):
            setattr(ds, kw, "")
    else:
        ds.PatientName = f"{who.last.upper()}^{who.first.upper()}"
        ds.PatientID = who.mrn.replace(" ", "")
        ds.PatientBirthDate = "{:04d}{:02d}{:02d}".format(*who.dob)
        ds.StudyDate = "{:04d}{:02d}{:02d}".format(*who.study)
        ds.StudyTime = who.time.replace(":", "")
        ds.AccessionNumber = who.accession
        ds.InstitutionName = who.institution if header != "partial" else ""
        ds.ReferringPhysicianName = who.physician.replace(" ", "^") if header != "partial" else ""
        ds.OperatorsName = who.operator
    if bia == "absent":
        if "BurnedInAnnotation" in ds:
            del ds.BurnedInAnnotation
    else:
        ds.BurnedInAnnotation = bia
    ds.save_as(path, enforce_file_format=True)


def save_pair(case_dir: Path, name: str, fmt: str, img: np.ndarray, twin: np.ndarray, grey: bool, modality: str,
              ident: Identity, header: str, bia: str, seed: int, other: Identity) -> tuple[Path, Path]:
    (case_dir / "input").mkdir(parents=True, exist_ok=True)
    (case_dir / "twin").mkdir(parents=True, exist_ok=True)
    paths = []
    for sub, arr in (("input", img), ("twin", twin)):
        p = case_dir / sub / f"{name}.{fmt}"
        if fmt == "dcm":
            write_dicom(p, arr, grey, modality, ident, header, bia, seed, name, other)
        else:
            pil = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))
            if grey:
                pil = pil.convert("L")
            if fmt == "jpg":
                pil.save(p, quality=88)
            else:
                pil.save(p)
        paths.append(p)
    return paths[0], paths[1]


def build_case(seed: int, idx: int, scene: str, work: Path) -> dict[str, Any]:
    rng = np.random.default_rng([seed, idx, 9])
    name = f"c{idx:03d}_{scene}"
    ident, other = make_identity(rng), make_identity(rng)
    fmt = _pick(rng, SCENE_META[scene][0])
    img, grey, mod = base_image(scene, rng)
    modality = mod or SCENE_META[scene][1]
    twin = img.copy()
    cv = Canvas(img=img, grey=grey)
    compose(cv, scene, rng, ident, name)
    if scene == "fax":  # low-resolution fax: downsample, noise, threshold (applied to both image and twin)
        cv.img, twin = (_faxify(a, np.random.default_rng([seed, idx, 3])) for a in (cv.img, twin))
    header = "n/a"
    bia = "n/a"
    if fmt == "dcm":
        header = _pick(rng, ["consistent", "consistent", "consistent", "other_patient", "blanked", "partial"])
        bia = _pick(rng, ["YES", "YES", "NO", "absent"])
    case_dir = work / "cases" / name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    image_path, twin_path = save_pair(case_dir, name, fmt, cv.img, twin, grey, modality, ident, header, bia, seed,
                                      other)
    return {"case": name, "scene": scene, "format": fmt, "modality": modality, "header": header, "bia": bia,
            "image": str(image_path), "twin": str(twin_path), "shape": [cv.h, cv.w],
            "tokens": cv.tokens, "masks": cv.masks, "boxes": cv.boxes}


def _faxify(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    g = a.mean(axis=2)
    h, w = g.shape
    small = cv2.resize(g, (w * 2 // 3, h // 2), interpolation=cv2.INTER_AREA)
    small = small + rng.normal(0, 18, small.shape)
    small = np.where(small > 150, 255.0, 0.0)
    small[rng.random(small.shape) < 0.002] = 0
    out = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    return np.repeat(out[..., None], 3, axis=2)


# ---------------------------------------------------------------- ingest


def ingest(path: Path, mode: str, run_dir: Path) -> dict[str, Any]:
    """One CLI ingest in fresh dirs; returns ok/error/summary/frames/seconds (never raises)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    data = Path(tempfile.mkdtemp(prefix="data_", dir=run_dir))
    env = dict(os.environ, RADASSIST_DATA_DIR=str(data), RADASSIST_BURNED_IN_TEXT=mode)
    out = run_dir / "out"
    t0 = time.monotonic()
    res: dict[str, Any] = {"ok": False, "error": None, "summary": None, "frames": {}}
    try:
        proc = subprocess.run([str(CLI), "ingest", "--json", "--out", str(out), str(path)], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), None)
        if line is None:
            res["error"] = f"rc={proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"
        else:
            doc = json.loads(line)
            res.update(ok=bool(doc.get("ok")), error=doc.get("error"), summary=doc.get("summary"))
    except subprocess.TimeoutExpired:
        res["error"] = f"timeout after {TIMEOUT_S}s"
    except (OSError, ValueError) as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
    res["seconds"] = time.monotonic() - t0
    for p in sorted(out.rglob("*.png")) if out.exists() else []:
        m = re.fullmatch(r"frame0*(\d+)\.png", p.name)
        if m:
            res["frames"][int(m.group(1))] = str(p)
    shutil.rmtree(data, ignore_errors=True)
    return res


def load_rgb(path: str) -> np.ndarray:
    im = Image.open(path)
    if im.mode in ("I;16", "I", "F"):
        a = np.asarray(im, dtype=np.float32)
        a = (a - a.min()) / max(float(a.max() - a.min()), 1.0) * 255
        return np.repeat(a[..., None], 3, axis=2).astype(np.int16)
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def is_placeholder(a: np.ndarray) -> bool:
    return float(a.std()) < 1.0


# ---------------------------------------------------------------- scoring


def _fit(mask: np.ndarray, shape: tuple[int, int], src: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape and src == shape:
        return mask
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def score_case(case: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    h, w = case["shape"]
    full_masks = []
    for (x0, y0, x1, y1), crop in case["masks"]:
        m = np.zeros((h, w), bool)
        m[y0:y1, x0:x1] = crop
        full_masks.append(m)
    text_area = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in case["boxes"]:
        text_area[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4] = True
    al, nv, tw = runs["always"], runs["never"], runs["twin"]
    failed = not al["ok"]
    withheld_n = int(((al.get("summary") or {}).get("burned_in_text") or {}).get("withheld_frames") or 0)
    rows: list[dict[str, Any]] = []
    frame_rows: list[dict[str, Any]] = []
    frame = 1
    a_img = load_rgb(al["frames"][frame]) if frame in al["frames"] else None
    n_img = load_rgb(nv["frames"][frame]) if frame in nv["frames"] else None
    t_img = load_rgb(tw["frames"][frame]) if frame in tw["frames"] else None
    withheld = (not failed) and (a_img is None or is_placeholder(a_img) or
                                 (withheld_n > 0 and a_img is None))
    shape = n_img.shape[:2] if n_img is not None else (h, w)
    if a_img is not None and not withheld and a_img.shape[:2] != shape:
        a_img = cv2.resize(a_img.astype(np.uint8), (shape[1], shape[0])).astype(np.int16)
    if t_img is not None and t_img.shape[:2] != shape:
        t_img = cv2.resize(t_img.astype(np.uint8), (shape[1], shape[0])).astype(np.int16)
    for tok, m in zip(case["tokens"], full_masks, strict=True):
        row = asdict(tok)
        row.update(scene=case["scene"], format=case["format"], modality=case["modality"], header=case["header"],
                   bia=case["bia"])
        glyph = _fit(m, shape, (h, w))
        zone = ndimage.binary_dilation(glyph, iterations=1)
        if n_img is not None and t_img is not None:
            diff = np.abs(n_img - t_img).max(axis=2)
            ink = zone & (diff > 12)
        else:
            ink = glyph
        row["ink_px"] = int(ink.sum())
        lum_t = lum_n = 0.0
        if n_img is not None and t_img is not None and ink.any():
            lum_n = float(n_img[ink].mean())
            lum_t = float(t_img[ink].mean())
        row["contrast"] = abs(lum_n - lum_t)
        row["dark"] = bool(lum_n < lum_t)
        test = ink
        if row["dark"] and n_img is not None:
            ys, xs = np.nonzero(zone)
            box = np.zeros_like(zone)
            box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
            light = box & ~zone & (n_img.max(axis=2) > BLACK)
            if light.sum() >= 5:
                test = light
        if failed:
            frac, status = 1.0, "failed"
        elif withheld:
            frac, status = 1.0, "withheld"
        elif a_img is None or not test.any():
            frac, status = 0.0, "no_render"
        else:
            frac, status = float((a_img[test].max(axis=1) <= BLACK).mean()), "shown"
        row["black_frac"] = frac
        row["status"] = status
        row["invisible"] = row["ink_px"] < 5
        if tok.role == "phi":
            row["removed"] = bool(failed or withheld or frac >= 0.95)
        else:
            row["kept"] = bool(not failed and not withheld and frac < 0.5)
        rows.append(row)
    fr: dict[str, Any] = {"case": case["case"], "frame": frame, "withheld": withheld, "failed": failed}
    if a_img is not None and n_img is not None and not withheld and not failed:
        area = ~_fit(text_area, shape, (h, w)) & (n_img.max(axis=2) > BLACK)
        black_a = a_img.max(axis=2) <= BLACK
        fr["false_redaction"] = float(black_a[area].mean()) if area.any() else 0.0
    frame_rows.append(fr)
    return {"tokens": rows, "frames": frame_rows}


def run_case(args: tuple[int, int, str, str]) -> dict[str, Any]:
    seed, idx, scene, work_s = args
    work = Path(work_s)
    try:
        case = build_case(seed, idx, scene, work)
    except Exception as exc:  # noqa: BLE001 - a generator bug must not sink the whole benchmark
        name = f"c{idx:03d}_{scene}"
        return {"case": name, "error": f"build: {type(exc).__name__}: {exc}", "tokens": [], "frames": [],
                "image": {"case": name, "scene": scene}}
    case_dir = work / "cases" / case["case"]
    runs = {"always": ingest(Path(case["image"]), "always", case_dir / "run_always"),
            "never": ingest(Path(case["image"]), "never", case_dir / "run_never"),
            "twin": ingest(Path(case["twin"]), "never", case_dir / "run_twin")}
    try:
        scored = score_case(case, runs)
        err = None
    except Exception as exc:  # noqa: BLE001
        scored, err = {"tokens": [], "frames": []}, f"score: {type(exc).__name__}: {exc}"
    image = {k: case[k] for k in ("case", "scene", "format", "modality", "header", "bia", "image", "twin", "shape")}
    image.update({f"{k}_ok": v["ok"] for k, v in runs.items()})
    image.update({f"{k}_error": v["error"] for k, v in runs.items()})
    image.update({f"{k}_s": round(v["seconds"], 3) for k, v in runs.items()})
    image["burned_in_text"] = ((runs["always"].get("summary") or {}).get("burned_in_text"))
    return {"case": case["case"], "error": err, "image": image, **scored}


# ---------------------------------------------------------------- report

SCENES = list(SCENE_META)


def _size_bucket(s: int) -> str:
    return "8-10" if s <= 10 else "11-14" if s <= 14 else "15-22" if s <= 22 else "23-29" if s <= 29 else "30-60"


def _contrast_bucket(c: float) -> str:
    return "low<40" if c < 40 else "mid40-100" if c < 100 else "high>=100"


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def summarise(rows: list[dict[str, Any]], frames: list[dict[str, Any]], images: list[dict[str, Any]]) -> dict:
    phi = [r for r in rows if r["role"] == "phi" and not r["invisible"]]
    negs = [r for r in rows if r["role"] == "neg" and not r["invisible"]]

    def recall(sel: list[dict[str, Any]]) -> dict[str, Any]:
        return {"n": len(sel), "recall": round(sum(r["removed"] for r in sel) / len(sel), 4) if sel else None}

    by: dict[str, dict[str, Any]] = {}
    keys = {"kind": lambda r: r["kind"], "rendering": lambda r: r["scene"], "modality": lambda r: r["modality"],
            "format": lambda r: r["format"], "background": lambda r: r["bg"], "size": lambda r: _size_bucket(r["size"]),
            "contrast": lambda r: _contrast_bucket(r["contrast"]), "header": lambda r: r["header"],
            "style": lambda r: r["style"], "polarity": lambda r: "dark" if r["dark"] else "light"}
    for name, fn in keys.items():
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in phi:
            groups[fn(r)].append(r)
        by[name] = {k: recall(v) for k, v in sorted(groups.items())}
    fr = [f["false_redaction"] for f in frames if "false_redaction" in f]
    t_al = [i["always_s"] for i in images if "always_s" in i]
    t_nv = [i["never_s"] for i in images if "never_s" in i]
    missed = [{k: r[k] for k in ("case", "kind", "text", "size", "position", "bg", "style", "font", "black_frac",
                                 "status", "box")} for r in phi if not r["removed"]]
    lost = [{k: r[k] for k in ("case", "text", "size", "black_frac", "status")} for r in negs if not r["kept"]]
    return {
        "identifier_tokens": recall(phi), "invisible_tokens_excluded": sum(
            1 for r in rows if r["role"] == "phi" and r["invisible"]),
        "removed_by_failure": sum(1 for r in phi if r["status"] == "failed"),
        "removed_by_withholding": sum(1 for r in phi if r["status"] == "withheld"),
        "by": by,
        "negatives": {"n": len(negs), "kept": round(sum(r["kept"] for r in negs) / len(negs), 4) if negs else None,
                      "lost": lost},
        "false_redaction": {"frames": len(fr), "median": _pct(fr, 50), "p90": _pct(fr, 90),
                            "max": max(fr) if fr else float("nan")},
        "withheld_frames": sum(1 for f in frames if f["withheld"]),
        "failed_images": sum(1 for i in images if not i.get("always_ok", False)),
        "seconds": {"always_median": statistics.median(t_al) if t_al else None,
                    "never_median": statistics.median(t_nv) if t_nv else None},
        "missed": missed,
    }


def print_summary(s: dict[str, Any]) -> None:
    it = s["identifier_tokens"]
    print(f"identifier tokens: {it['n']}  recall {it['recall']}  (invisible excluded: "
          f"{s['invisible_tokens_excluded']}; removed by failure {s['removed_by_failure']}, "
          f"by withholding {s['removed_by_withholding']})")
    for name, groups in s["by"].items():
        print(f"  by {name}: " + ", ".join(f"{k} {v['recall']} (n={v['n']})" for k, v in groups.items()))
    n = s["negatives"]
    print(f"negatives: {n['n']} kept {n['kept']}; lost: {[x['text'] for x in n['lost']]}")
    f = s["false_redaction"]
    print(f"false redaction over {f['frames']} shown frames: median {f['median']:.4f} p90 {f['p90']:.4f} "
          f"max {f['max']:.4f}; withheld frames {s['withheld_frames']}; failed images {s['failed_images']}")
    print(f"seconds per ingest: always {s['seconds']['always_median']} never {s['seconds']['never_median']}")
    print(f"missed ({len(s['missed'])}):")
    for m in s["missed"]:
        print(f"  {m['case']} {m['kind']} {m['text']!r} size={m['size']} pos={m['position']} bg={m['bg']} "
              f"style={m['style']} black={m['black_frac']:.2f} box={m['box']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--work", type=Path, default=Path("/tmp/heldout_i"))
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng([args.seed, 1]).permutation(len(SCENES))
    plan = [SCENES[int(order[i % len(SCENES)])] for i in range(args.images)]
    jobs = [(args.seed, i, scene, str(args.work)) for i, scene in enumerate(plan)]
    t0 = time.monotonic()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_case, jobs))
    else:
        results = [run_case(j) for j in jobs]
    rows = [r for res in results for r in res["tokens"]]
    frames = [f for res in results for f in res["frames"]]
    images = [dict(res["image"], error=res["error"]) for res in results]
    summary = summarise(rows, frames, images)
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    summary["seed"], summary["images"] = args.seed, args.images
    out = {"summary": summary, "tokens": [r for r in rows if r["role"] == "phi"],
           "negatives": [r for r in rows if r["role"] == "neg"], "frames": frames, "images": images}
    (args.work / "results.json").write_text(json.dumps(out, indent=1, default=str))
    print_summary(summary)
    errors = [i for i in images if i.get("error")]
    for e in errors:
        print(f"error: {e['case']}: {e['error']}")
    print(f"wrote {args.work / 'results.json'} ({summary['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
