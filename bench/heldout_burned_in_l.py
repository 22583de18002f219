"""Blind held-out benchmark "L" for the burned-in-text redactor, driven as a black box through the CLI.

The set: 50 cases drawn from a seeded RNG over 21 scene kinds that resemble what hospitals send: vendor
ultrasound headers, multi-frame US cine, obstetric US with coloured text, CR film labels (MONOCHROME1), DX
portable markers, CT and MR secondary captures with four-corner overlays at small sizes (256-512 px), NM
whole-body, XA cine, PACS screenshots, scanned requisitions, fax pages, phone photos of a monitor (perspective,
moire, blur, JPEG), endoscopy stills, clinical photos with a label sticker, heavy JPEG uploads, low-contrast text
over anatomy, coloured outlined/shadowed text, rotated/vertical text, big bold key-image slides and mis-filed
secondary captures whose burned-in patient differs from the header. DICOM cases carry real headers from
/work/shared/data/dicom with the identity replaced by an invented one (consistent with the pixels, except in
mis-filed cases); PNG/JPEG cases are uploads. Backgrounds are real pixels (shared DICOM, VQA-RAD pictures) or
synthetic textures. Identifiers: invented names from many cultures, MRNs, accession numbers, birth and study
dates in many formats, institutions, referring/performing physicians, phone numbers. Negatives (kept): L/R and
view markers, scale numbers, "cm", kV/mAs, W/L, slice/frame numbers, measurements, probe/preset names.

Each case is ingested three times, each in a fresh data dir and out dir:
    RADASSIST_BURNED_IN_TEXT=always  on the image; never on the image; never on its clean twin (no text).
Scoring (per whitespace token of an identifier string; labels such as "DOB:" are not scored):
    ink = glyph-mask pixels where image and twin differ (>24 in a channel), both rendered with mode never;
    removed = >=95% of the ink black (<=8) in the always rendering, or frame withheld, or ingest failed;
    text darker than its surroundings: the non-black pixels of its box (never rendering) are judged instead;
    negative kept = <50% of its ink black; false redaction = black share of the visible non-text area.

Official seed: 8803.  Command (from the repository root):
    .venv/bin/python -m bench.heldout_burned_in_l --seed 8803 --work /tmp/heldout_l --jobs 2
Options: --images N (first N cases only), --build-only (write the cases and previews, do not run the redactor).
Writes per-token rows to WORK/results.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pydicom.dataelem import DataElement
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent.parent
_SHARED_CANDIDATES = [ROOT.parent / "shared" / "data", Path("/work/shared/data")]
SHARED = next((p for p in _SHARED_CANDIDATES if p.is_dir()), _SHARED_CANDIDATES[-1])
DICOM_DIR = SHARED / "dicom"
VQA_DIR = SHARED / "vqa_rad" / "images"
N_CASES = 50
OFFICIAL_SEED = 8803

DIFF_T = 24  # |image - twin| above this in a channel is ink
BLACK_T = 8  # a pixel is black when every channel is <= this
REMOVED_SHARE = 0.95
KEPT_SHARE = 0.50
MIN_INK = 4  # fewer visible ink pixels than this: unscorable
BOX_MARGIN = 4

PHI_KINDS = ("name", "mrn", "accession", "dob", "date", "institution", "physician", "phone")

# ----------------------------------------------------------------------------------------------------- fonts

# Only DejaVu and Pillow's own default font, so that one seed builds the same cases on every machine.
_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def _font_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_FONT_DIR.glob("*.ttf"))} if _FONT_DIR.is_dir() else {}


FONT_FILES = _font_files()
SANS = [n for n in ("DejaVuSans", "DejaVuSansCondensed", "DejaVuSans-Bold", "DejaVuSansCondensed-Bold")
        if n in FONT_FILES]
MONO = [n for n in ("DejaVuSansMono", "DejaVuSansMono-Bold") if n in FONT_FILES]
SERIF = [n for n in ("DejaVuSerif", "DejaVuSerifCondensed", "DejaVuSerif-Bold") if n in FONT_FILES]
BOLD = [n for n in ("DejaVuSans-Bold", "DejaVuSansCondensed-Bold", "DejaVuSerif-Bold", "DejaVuSansMono-Bold")
        if n in FONT_FILES]
_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


def get_font(name: str, size: int):
    key = (name, size)
    if key not in _FONT_CACHE:
        if name == "pil-default" or name not in FONT_FILES:
            try:
                _FONT_CACHE[key] = ImageFont.load_default(size=size)
            except Exception:  # noqa: BLE001 - an old Pillow without FreeType default
                _FONT_CACHE[key] = ImageFont.truetype(str(FONT_FILES[SANS[0]]), size)
        else:
            _FONT_CACHE[key] = ImageFont.truetype(str(FONT_FILES[name]), size)
    return _FONT_CACHE[key]


def pick_font(rng, family: str) -> str:
    pools = {"sans": SANS + ["pil-default"], "mono": MONO or SANS, "serif": SERIF or SANS, "bold": BOLD or SANS,
             "any": SANS + MONO + SERIF + ["pil-default"]}
    pool = pools[family]
    return str(pool[int(rng.integers(len(pool)))])


# ------------------------------------------------------------------------------------------------ identities

FAMILY = ["Kowalska", "Nguyen", "Okafor", "Al-Haddad", "Raghunathan", "Fernández", "Yamamoto", "Kim", "O'Sullivan",
          "Papadopoulos", "Mwangi", "Björklund", "Ivanova", "Mendoza", "Adeyemi", "Chatterjee", "Dubois", "Schneider",
          "Yilmaz", "Cohen", "Tanaka", "Zhang", "Liu", "Osei", "Kaur", "Hernández", "Rossi", "van der Berg",
          "Nakamura", "Abubakar", "Lindqvist", "Petrov", "Santos", "Kealoha", "Begum", "Haile", "Dlamini", "Morales",
          "MacLeod", "Nowak", "Tran", "Ogunleye", "Farahani", "Castillo", "Sato", "Park", "Gallagher", "Mensah",
          "Shapiro", "Qureshi", "Horvath", "Eriksen", "Baptiste", "Wójcik", "Iyer", "Hakimi", "Sørensen", "Vu"]
GIVEN = ["Anna", "Thi Lan", "Chukwuemeka", "Omar", "Priya", "María José", "Haruto", "Min-jun", "Siobhan", "Eleni",
         "Wanjiru", "Yusuf", "Astrid", "Olga", "Carlos", "Oluwaseun", "Arjun", "Camille", "Lukas", "Elif", "Noa",
         "Yuki", "Wei", "Jing", "Kwame", "Harpreet", "Lucía", "Giulia", "Pieter", "Sora", "Aisha", "Erik", "Dmitri",
         "Thiago", "Keoni", "Nasrin", "Selam", "Thandiwe", "Rafael", "Ewan", "Fatima", "Hamid", "Ngozi", "Bao",
         "Ingrid", "Mateus", "Leilani", "Rahul", "Zeynep", "Tomasz", "Amara", "Kenji", "Esther", "Jamal"]
INSTITUTIONS = ["St. Brigid's General Hospital", "Riverside Medical Center", "Klinikum Nordstadt",
                "Mercy Regional Imaging", "Lakeshore Women's Clinic", "Northgate Radiology Associates",
                "Al Noor Specialist Hospital", "Sunrise Diagnostic Centre", "Kaiwa Valley Health",
                "Hospital San Rafael", "Ospedale Santa Chiara", "Greenfield Children's Hospital",
                "Eastbrook Community Hospital", "Harborview Imaging Partners", "Mount Kenya Referral Hospital",
                "Westmere Orthopaedic Institute", "Hillcrest Cardiology Group", "Queen Adaeze Teaching Hospital"]
SHORT_INST = ["SBGH RADIOLOGY", "RMC IMAGING", "KLINIKUM NORD", "MERCY RAD", "LAKESHORE WC", "NGRA", "ANSH",
              "SUNRISE DX", "KVH", "HSR", "OSC", "GCH", "ECH", "HVIP", "MKRH", "WOI", "HCG", "QATH"]

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def ascii_fold(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")


def fmt_date(d: date, style: int) -> str:
    mon = MONTHS[d.month - 1]
    return [
        f"{d.month:02d}/{d.day:02d}/{d.year}",
        d.isoformat(),
        f"{d.day:02d}.{d.month:02d}.{d.year % 100:02d}",
        f"{d.day:02d}-{mon}-{d.year}",
        f"{d.day} {mon.title()} {d.year}",
        f"{d.year}{d.month:02d}{d.day:02d}",
        f"{d.day:02d}/{d.month:02d}/{d.year}",
        f"{d.day:02d}.{d.month:02d}.{d.year}",
        f"{mon.title()} {d.day}, {d.year}",
        f"{d.year}/{d.month:02d}/{d.day:02d}",
    ][style % 10]


def _digits(rng, n: int) -> str:
    return "".join(str(int(x)) for x in rng.integers(0, 10, n))


def make_mrn(rng) -> str:
    k = int(rng.integers(8))
    if k == 0:
        return _digits(rng, 8)
    if k == 1:
        return "MRN" + _digits(rng, 7)
    if k == 2:
        return "A" + _digits(rng, 7)
    if k == 3:
        return f"H-{_digits(rng, 3)}-{_digits(rng, 4)}"
    if k == 4:
        return f"{int(rng.integers(2015, 2025))}-{_digits(rng, 7)}"
    if k == 5:
        return "".join(chr(65 + int(x)) for x in rng.integers(0, 26, 2)) + _digits(rng, 6)
    if k == 6:
        return f"{_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}"  # NHS-style, three tokens
    return _digits(rng, 2) + "-" + _digits(rng, 2) + "-" + _digits(rng, 2)


def make_accession(rng, study: date) -> str:
    k = int(rng.integers(5))
    if k == 0:
        return "ACC" + _digits(rng, 9)
    if k == 1:
        return "E" + _digits(rng, 8)
    if k == 2:
        return f"RAD-{study.year % 100:02d}-{_digits(rng, 6)}"
    if k == 3:
        return f"{study.year}{study.month:02d}{study.day:02d}{_digits(rng, 4)}"
    return "CT" + _digits(rng, 7)


def make_phone(rng) -> str:
    k = int(rng.integers(6))
    if k == 0:
        return f"({_digits(rng, 3)}) 555-01{_digits(rng, 2)}"
    if k == 1:
        return f"555-01{_digits(rng, 2)}"
    if k == 2:
        return f"+44 20 7946 0{_digits(rng, 3)}"
    if k == 3:
        return f"020 7946 0{_digits(rng, 3)}"
    if k == 4:
        return f"+1-{_digits(rng, 3)}-555-01{_digits(rng, 2)}"
    return f"03-5550-{_digits(rng, 4)}"


@dataclass
class Ident:
    family: str
    given: str
    middle: str
    sex: str
    dob: date
    study: date
    mrn: str
    accession: str
    institution: str
    short_inst: str
    ref: tuple[str, str]
    perf: tuple[str, str]
    phone: str
    date_style: int
    name_style: int

    def name(self, style: int | None = None, fold: bool = False, upper: bool | None = None) -> str:
        s = self.name_style if style is None else style
        fam, giv = self.family, self.given
        if fold:
            fam, giv = ascii_fold(fam), ascii_fold(giv)
        out = [f"{fam}^{giv}", f"{fam}, {giv}", f"{giv} {fam}", f"{fam} {giv} {self.middle}.",
               f"{fam}, {giv} {self.middle}"][s % 5]
        if upper or (upper is None and s % 2 == 0):
            out = out.upper()
        return out

    def dicom_name(self) -> str:
        return f"{self.family}^{self.given}^{self.middle}"

    def ddate(self, d: date, style: int | None = None) -> str:
        return fmt_date(d, self.date_style if style is None else style)


def make_ident(rng) -> Ident:
    study = date(2023, 1, 1) + timedelta(days=int(rng.integers(0, 900)))
    dob = date(1930, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 88)))
    inst = int(rng.integers(len(INSTITUTIONS)))

    def person():
        return (FAMILY[int(rng.integers(len(FAMILY)))], GIVEN[int(rng.integers(len(GIVEN)))])

    return Ident(
        family=FAMILY[int(rng.integers(len(FAMILY)))], given=GIVEN[int(rng.integers(len(GIVEN)))],
        middle=chr(65 + int(rng.integers(26))), sex="MF"[int(rng.integers(2))], dob=dob, study=study,
        mrn=make_mrn(rng), accession=make_accession(rng, study), institution=INSTITUTIONS[inst],
        short_inst=SHORT_INST[inst], ref=person(), perf=person(), phone=make_phone(rng),
        date_style=int(rng.integers(10)), name_style=int(rng.integers(5)))


def doctor(p: tuple[str, str], style: int) -> str:
    fam, giv = p
    forms = [f"{giv} {fam}", f"{fam} {giv[0]}", f"{fam.upper()}^{giv.upper()}".replace(" ", "^"), f"{giv[0]}. {fam}"]
    return forms[style % 4]


# ----------------------------------------------------------------------------------------------- text items

@dataclass
class Seg:
    text: str
    role: str  # "label" (not scored), "neg:<kind>" (must stay) or a PHI kind (must go)


def lab(t: str) -> Seg:
    return Seg(t, "label")


def neg(t: str, kind: str = "annotation") -> Seg:
    return Seg(t, "neg:" + kind)


def phi(kind: str, t: str) -> Seg:
    assert kind in PHI_KINDS, kind
    return Seg(t, kind)


@dataclass
class Style:
    font: str
    size: int
    color: tuple[int, int, int]
    stroke: int = 0
    stroke_color: tuple[int, int, int] = (0, 0, 0)
    shadow: int = 0
    angle: float = 0.0
    aliased: bool = False
    box: tuple[int, int, int] | None = None  # a filled backing rectangle behind the line (film label, banner)
    contrast: bool = False  # a marker that would vanish into its surroundings is drawn black (white) instead


@dataclass
class Token:
    text: str
    role: str
    item: int
    frames: list[int]
    size: int
    dark: bool
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)  # x0, y0, x1, y1 in case pixels
    mask: np.ndarray | None = None  # bool crop of the bbox


@dataclass
class Canvas:
    """Frames of one case (float RGB 0-255), the clean twin and every placed token with its glyph mask."""

    bg: list[np.ndarray]
    img: list[np.ndarray] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # every drawn item (all roles)
    box_frames: list[set[int]] = field(default_factory=list)
    rejected: int = 0

    def __post_init__(self):
        self.bg = [np.asarray(b, dtype=np.float32).copy() for b in self.bg]
        self.img = [b.copy() for b in self.bg]

    @property
    def h(self) -> int:
        return int(self.bg[0].shape[0])

    @property
    def w(self) -> int:
        return int(self.bg[0].shape[1])

    def text_width(self, segs: list[Seg], st: Style) -> float:
        return get_font(st.font, st.size).getlength(" ".join(s.text for s in segs))

    def put(self, x: float, y: float, segs: list[Seg], st: Style, anchor: str = "lt",
            frames: list[int] | None = None) -> tuple[int, int, int, int] | None:
        """Draw one line of segments; anchor 'lt','rt','lb','rb','ct','cb','cc' places the rotated patch."""
        frames = list(range(len(self.bg))) if frames is None else frames
        font = get_font(st.font, st.size)
        asc, desc = font.getmetrics()
        words: list[tuple[str, str, float]] = []
        line = ""
        for seg in segs:
            for tok in seg.text.split():
                if line:
                    line += " "
                words.append((tok, seg.role, font.getlength(line)))
                line += tok
        if not words:
            return None
        pad = st.stroke + st.shadow + 3
        bpad = max(2, st.size // 4) if st.box else 0
        pw = int(math.ceil(font.getlength(line))) + 2 * (pad + bpad)
        ph = asc + desc + 2 * (pad + bpad)
        fills, fulls = [], []
        for tok, _role, xoff in words:
            m_fill = Image.new("L", (pw, ph), 0)
            m_full = Image.new("L", (pw, ph), 0)
            for m, sw in ((m_fill, 0), (m_full, st.stroke)):
                d = ImageDraw.Draw(m)
                if st.aliased:
                    d.fontmode = "1"
                d.text((pad + bpad + xoff, pad + bpad), tok, fill=255, font=font, stroke_width=sw, stroke_fill=255)
            fills.append(m_fill)
            fulls.append(m_full)
        box_mask = None
        if st.box:
            bm = Image.new("L", (pw, ph), 0)
            ImageDraw.Draw(bm).rectangle([pad, pad, pw - pad - 1, ph - pad - 1], fill=255)
            box_mask = bm
        if st.angle:
            rot = {"resample": Image.Resampling.BILINEAR, "expand": True}
            fills = [m.rotate(st.angle, **rot) for m in fills]
            fulls = [m.rotate(st.angle, **rot) for m in fulls]
            if box_mask is not None:
                box_mask = box_mask.rotate(st.angle, **rot)
        fa = [np.asarray(m, dtype=np.float32) / 255.0 for m in fills]
        ua = [np.asarray(m, dtype=np.float32) / 255.0 for m in fulls]
        sh = st.shadow
        sa = [np.pad(u, ((sh, 0), (sh, 0)))[: u.shape[0], : u.shape[1]] if sh else np.zeros_like(u) for u in ua]
        rh, rw = fa[0].shape
        union = np.maximum.reduce([np.maximum(u, s) for u, s in zip(ua, sa, strict=True)])
        if box_mask is not None:
            union = np.maximum(union, np.asarray(box_mask, dtype=np.float32) / 255.0)
        ys, xs = np.nonzero(union > 0)
        if len(xs) == 0:
            return None
        # tight extent inside the patch, then place by anchor
        tx0, tx1, ty0, ty1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
        tw, th = tx1 - tx0, ty1 - ty0
        ax = {"l": x, "r": x - tw, "c": x - tw / 2}[anchor[0]]
        ay = {"t": y, "b": y - th, "c": y - th / 2}[anchor[1]]
        ox = int(round(ax)) - tx0
        oy = int(round(ay)) - ty0
        # keep inside the frame
        ox = min(max(ox, -tx0), self.w - tx1)
        oy = min(max(oy, -ty0), self.h - ty1)
        if tw > self.w or th > self.h:
            self.rejected += 1
            return None
        box = (ox + tx0, oy + ty0, ox + tx1, oy + ty1)
        for b, bf in zip(self.boxes, self.box_frames, strict=True):
            if bf & set(frames) and box[0] < b[2] + 2 and b[0] < box[2] + 2 and box[1] < b[3] + 2 and b[1] < box[3] + 2:
                self.rejected += 1
                return None
        # clip the patch to the frame
        x0, y0 = max(ox, 0), max(oy, 0)
        x1, y1 = min(ox + rw, self.w), min(oy + rh, self.h)
        px0, py0 = x0 - ox, y0 - oy
        sl = (slice(py0, py0 + (y1 - y0)), slice(px0, px0 + (x1 - x0)))
        fill_c = np.array(st.color, dtype=np.float32)
        # dark text: fill luminance below the median luminance of the surroundings (twin, within the patch)
        bgp = self.bg[frames[0]][y0:y1, x0:x1]
        around = union[sl] <= 0
        lum = bgp.mean(axis=2)
        if st.box:
            bg_lum = float(np.mean(st.box))
        else:
            bg_lum = float(np.median(lum[around])) if around.any() else float(lum.mean())
        if st.contrast and abs(float(fill_c.mean()) - bg_lum) < 64:
            fill_c = np.full(3, 0.0 if bg_lum >= 128 else 255.0, dtype=np.float32)
        dark = float(fill_c.mean()) < bg_lum
        for f in frames:
            reg = self.img[f][y0:y1, x0:x1]
            if box_mask is not None:
                a = (np.asarray(box_mask, dtype=np.float32) / 255.0)[sl][..., None]
                reg[:] = reg * (1 - a) + np.array(st.box, dtype=np.float32) * a
            for u, s, fl in zip(ua, sa, fa, strict=True):
                if sh:
                    a = s[sl][..., None]
                    reg[:] = reg * (1 - a) + np.array((0, 0, 0), dtype=np.float32) * a
                if st.stroke:
                    a = u[sl][..., None]
                    reg[:] = reg * (1 - a) + np.array(st.stroke_color, dtype=np.float32) * a
                a = fl[sl][..., None]
                reg[:] = reg * (1 - a) + fill_c * a
        item = len(self.boxes)
        self.boxes.append(box)
        self.box_frames.append(set(frames))
        for (tok, role, _x), u, s in zip(words, ua, sa, strict=True):
            m = np.maximum(u, s)[sl] > 0
            yy, xx = np.nonzero(m)
            if len(xx) == 0:
                continue
            bx0, by0 = int(xx.min()), int(yy.min())
            bx1, by1 = int(xx.max()) + 1, int(yy.max()) + 1
            self.tokens.append(Token(tok, role, item, list(frames), st.size, dark,
                                     (x0 + bx0, y0 + by0, x0 + bx1, y0 + by1), m[by0:by1, bx0:bx1].copy()))
        return box

    def paint(self, x0: float, y0: float, x1: float, y1: float, color: tuple[int, int, int],
              angle: float = 0.0) -> None:
        """A filled rectangle (a film label, a sticker) in the scene itself, so in the twin too."""
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        t = math.radians(-angle)
        pts = [(cx + (px - cx) * math.cos(t) - (py - cy) * math.sin(t),
                cy + (px - cx) * math.sin(t) + (py - cy) * math.cos(t))
               for px, py in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        m = Image.new("L", (self.w, self.h), 0)
        ImageDraw.Draw(m).polygon(pts, fill=255)
        a = (np.asarray(m, dtype=np.float32) / 255.0)[..., None]
        c = np.array(color, dtype=np.float32)
        for frames in (self.bg, self.img):
            for k in range(len(frames)):
                frames[k] = frames[k] * (1 - a) + c * a

    def stack(self, x: float, y: float, lines: list[list[Seg]], st: Style, anchor: str = "lt",
              spacing: float = 1.3, frames: list[int] | None = None) -> None:
        """Lines one under the other (anchor 'lb'/'rb' stacks upwards from the bottom)."""
        step = st.size * spacing + 2 * st.stroke
        seq = list(reversed(lines)) if anchor[1] == "b" else lines
        for i, segs in enumerate(seq):
            yy = y - i * step if anchor[1] == "b" else y + i * step
            self.put(x, yy, segs, st, anchor, frames)


# ----------------------------------------------------------------------------------------------- backgrounds

def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    a8 = np.clip(a, 0, 255).astype(np.uint8)
    im = Image.fromarray(a8)
    return np.asarray(im.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32)


def rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3]


def vqa_image(rng, w: int, h: int, gray: bool = True) -> np.ndarray:
    files = sorted(VQA_DIR.glob("*.jpg")) if VQA_DIR.is_dir() else []
    if not files:
        return rgb(anatomy(rng, w, h))
    im = Image.open(files[int(rng.integers(len(files)))])
    im = im.convert("L" if gray else "RGB")
    # fill (crop to aspect) so anatomy covers the frame
    sw, sh = im.size
    scale = max(w / sw, h / sh)
    nw, nh = max(w, int(sw * scale + 0.5)), max(h, int(sh * scale + 0.5))
    im = im.resize((nw, nh), Image.Resampling.LANCZOS)
    ox, oy = (nw - w) // 2, (nh - h) // 2
    return rgb(np.asarray(im.crop((ox, oy, ox + w, oy + h)), dtype=np.float32))


def _smooth_noise(rng, w: int, h: int, scale: float) -> np.ndarray:
    small = rng.random((max(2, int(h / scale)), max(2, int(w / scale)))).astype(np.float32)
    im = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.float32) / 255.0


def anatomy(rng, w: int, h: int) -> np.ndarray:
    """A body-like grey ellipse with organs and noise (fallback when no real pixels are at hand)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w / 2, h / 2
    body = ((xx - cx) / (w * 0.42)) ** 2 + ((yy - cy) / (h * 0.40)) ** 2 < 1
    a = np.where(body, 110.0, 8.0) + 40 * _smooth_noise(rng, w, h, 24) * body
    for _ in range(6):
        ox, oy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        r = rng.uniform(0.04, 0.12) * min(w, h)
        a = np.where((xx - ox) ** 2 + (yy - oy) ** 2 < r * r, rng.uniform(40, 220), a)
    return np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.float32)


def real_dicom_pixels(name: str, w: int, h: int, frame: int = 0) -> np.ndarray | None:
    """Real pixels from a shared file pydicom decodes without plug-ins, scaled to 0-255 display, resized."""
    try:
        ds = pydicom.dcmread(DICOM_DIR / name)
        arr = ds.pixel_array
        if getattr(ds, "PhotometricInterpretation", "") == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            arr = arr[min(frame, arr.shape[0] - 1)]
        arr = arr.astype(np.float32)
        if arr.max() > 255:
            arr = arr / 256.0 if arr.max() > 1024 else arr * (255.0 / max(1.0, float(arr.max())))
        lo, hi = np.percentile(arr, 1), np.percentile(arr, 99.5)
        arr = np.clip((arr - lo) / max(1e-3, hi - lo) * 255, 0, 255)
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            arr = 255 - arr
        return rgb(_resize(arr, w, h))
    except Exception:  # noqa: BLE001 - any decode problem: the caller falls back
        return None


def us_sector(rng, w: int, h: int, top: int, shift: float = 0.0) -> np.ndarray:
    """A B-mode sector with speckle on black, apex at the top centre."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ax, ay = w / 2, top
    r = np.hypot(xx - ax, yy - ay)
    th = np.degrees(np.arctan2(xx - ax, yy - ay))
    rmax = (h - top) * 0.95
    inside = (np.abs(th) < 36) & (r > 20) & (r < rmax)
    sp = rng.rayleigh(0.5, (h, w)).astype(np.float32)
    tissue = 0.5 + 0.5 * _smooth_noise(rng, w, h, 30)
    lay = 0.5 + 0.5 * np.sin((r + shift) / rmax * 18 + np.sin(th / 9))
    a = np.clip(sp * tissue * (0.6 + 0.4 * lay) * 120, 0, 255)
    cyst = (xx - ax - shift * 0.3 - 20) ** 2 + (yy - ay - rmax * 0.55) ** 2 < (rmax * 0.12) ** 2
    a = np.where(cyst, a * 0.15, a)
    return rgb(np.where(inside, a, 0.0))


# -------------------------------------------------------------------------------------------------- scenes

@dataclass
class Spec:
    """How a case is stored: a DICOM from a template header, or a PNG/JPEG upload."""

    fmt: str  # "dcm", "png", "jpg"
    template: str = ""
    modality: str = ""
    sop_class: str = ""
    mono1: bool = False
    bits: int = 8
    gray: bool = False
    quality: int = 90
    burned_in_flag: str | None = None
    header_mismatch: bool = False


SOP = {"US": "1.2.840.10008.5.1.4.1.1.6.1", "USMF": "1.2.840.10008.5.1.4.1.1.3.1", "CR": "1.2.840.10008.5.1.4.1.1.1",
       "DX": "1.2.840.10008.5.1.4.1.1.1.1", "MG": "1.2.840.10008.5.1.4.1.1.1.2", "SC": "1.2.840.10008.5.1.4.1.1.7",
       "XA": "1.2.840.10008.5.1.4.1.1.12.1"}

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def _color_text(rng) -> tuple[int, int, int]:
    return [(255, 255, 0), (0, 255, 255), (120, 255, 120), (255, 170, 40), (255, 255, 255), (255, 120, 200)][
        int(rng.integers(6))]


def _grey(v: int) -> tuple[int, int, int]:
    v = int(max(0, min(255, v)))
    return (v, v, v)


def _size(rng, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1))


def sc_us_vendor_header(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = [(640, 480), (800, 600), (1024, 768)][int(rng.integers(3))]
    bg = us_sector(rng, w, h, top=int(h * 0.12))
    cv = Canvas([bg])
    s = _size(rng, 10, 14)
    st = Style(pick_font(rng, "mono" if rng.random() < 0.6 else "sans"), s, _grey(int(rng.integers(200, 256))),
               aliased=bool(rng.random() < 0.5))
    m = 6
    fold = True
    cv.stack(m, m, [[phi("institution", idn.institution.upper())],
                    [phi("name", idn.name(fold=fold, upper=True))],
                    [lab("ID:"), phi("mrn", idn.mrn), lab("DOB:"), phi("dob", idn.ddate(idn.dob))]], st)
    clock = f"{int(rng.integers(7, 19)):02d}:{int(rng.integers(60)):02d}"
    cv.stack(w - m, m, [[phi("date", idn.ddate(idn.study)), lab(clock)],
                        [lab("Acc#"), phi("accession", idn.accession)],
                        [neg(["C5-1", "C1-6-D", "L12-5", "9L-D", "PVU-4"][int(rng.integers(5))], "probe"),
                         neg(["Abd", "Renal", "Thyroid", "OB", "Vasc"][int(rng.integers(5))], "probe")]], st, "rt")
    st2 = Style(st.font, max(9, s - 2), st.color, aliased=st.aliased)
    cv.stack(m, h * 0.35, [[neg(f"MI {rng.uniform(0.6, 1.4):.1f}", "technique")],
                           [neg(f"TIS {rng.uniform(0.1, 1.2):.1f}", "technique")],
                           [neg(f"FR {int(rng.integers(12, 60))}Hz", "technique")],
                           [neg(f"Gn {int(rng.integers(30, 80))}", "technique")]], st2)
    depth = int(rng.integers(12, 21))
    for k in range(5, depth + 1, 5):
        yk = h * 0.12 + (h * 0.83) * k / depth
        cv.put(w - m, yk, [neg(str(k), "scale")], st2, "rc")
    cv.put(w - m, h - m, [neg("cm", "scale")], st2, "rb")
    cv.put(m, h - m, [neg("D1", "measurement"), neg(f"{rng.uniform(0.8, 6.0):.2f} cm", "measurement")], st, "lb")
    flag = "YES" if rng.random() < 0.5 else None
    spec = Spec("dcm", "pydicom_data/US1_J2KR.dcm", "US", SOP["US"], burned_in_flag=flag)
    return cv, spec


def sc_us_cine(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 800, 600
    nf = int(rng.integers(3, 6))
    bgs = []
    real = real_dicom_pixels("pydicom_data/OBXXXX1A_rle_2frame.dcm", w, h) if rng.random() < 0.5 else None
    for f in range(nf):
        if real is not None:
            bgs.append(np.roll(real, 3 * f, axis=1))
        else:
            bgs.append(us_sector(np.random.default_rng(int(rng.integers(1 << 30))), w, h, top=70, shift=f * 6.0))
    cv = Canvas(bgs)
    s = _size(rng, 11, 15)
    st = Style(pick_font(rng, "sans"), s, _grey(235), aliased=bool(rng.random() < 0.3))
    cv.stack(8, 6, [[phi("name", idn.name(fold=True))],
                    [lab("ID"), phi("mrn", idn.mrn)],
                    [lab("DOB"), phi("dob", idn.ddate(idn.dob))]], st)
    cv.stack(w - 8, 6, [[phi("institution", idn.institution)],
                        [phi("date", idn.ddate(idn.study)), lab("10:42:17")],
                        [lab("Perf:"), phi("physician", doctor(idn.perf, int(rng.integers(4))))]], st, "rt")
    st2 = Style(st.font, max(9, s - 2), _grey(220))
    for f in range(nf):
        cv.put(8, h - 8, [neg(f"{f + 1}/{nf}", "index")], st2, "lb", frames=[f])
    cv.put(w - 8, h - 8, [neg(f"{rng.uniform(1.0, 4.0):.1f} cm", "measurement")], st2, "rb")
    cv.put(w - 8, h * 0.5, [neg(["C5-1", "S5-1", "X6-1"][int(rng.integers(3))], "probe")], st2, "rc")
    return cv, Spec("dcm", "pydicom_data/OBXXXX1A_rle_2frame.dcm", "US", SOP["USMF"])


def sc_us_ob_colour(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 640, 480
    cv = Canvas([us_sector(rng, w, h, top=60)])
    s = _size(rng, 11, 14)
    col = _color_text(rng)
    st = Style(pick_font(rng, "sans"), s, col)
    lmp = idn.study - timedelta(days=int(rng.integers(90, 250)))
    cv.stack(6, 4, [[phi("name", idn.name())], [lab("LMP"), phi("date", idn.ddate(lmp))]], st)
    cv.stack(w - 6, 4, [[phi("institution", idn.short_inst)], [phi("date", idn.ddate(idn.study))]], st, "rt")
    st2 = Style(st.font, s - 1, (255, 255, 255))
    ga = int(rng.integers(14, 36))
    cv.stack(6, h * 0.55, [[neg(f"GA {ga}w{int(rng.integers(7))}d", "measurement")],
                           [neg(f"BPD {rng.uniform(3, 9):.1f}cm", "measurement")],
                           [neg(f"HC {rng.uniform(10, 32):.1f}cm", "measurement")],
                           [neg(f"FL {rng.uniform(1.5, 7):.1f}cm", "measurement")]], st2)
    cv.put(w - 6, h - 6, [neg("OB", "probe"), neg("C1-5", "probe")], st2, "rb")
    return cv, Spec("dcm", "pydicom_data/US1_J2KR.dcm", "US", SOP["US"], burned_in_flag="YES")


def sc_cr_film_label(rng, idn: Ident) -> tuple[Canvas, Spec]:
    side = int(rng.integers(1100, 1700))
    w, h = side, int(side * rng.uniform(0.9, 1.1))
    bg = real_dicom_pixels("pydicom_data/RG1_UNCI.dcm", w, h)
    cv = Canvas([bg if bg is not None else vqa_image(rng, w, h)])
    s = _size(rng, 18, 28)
    st = Style(pick_font(rng, "sans"), s, BLACK)
    corner = int(rng.integers(4))
    lines = [[phi("institution", idn.institution)],
             [phi("name", idn.name())],
             [lab("ID"), phi("mrn", idn.mrn), lab("DOB"), phi("dob", idn.ddate(idn.dob))],
             [phi("date", idn.ddate(idn.study)), lab("Ref:"), phi("physician", doctor(idn.ref, 1))]]
    lw = max(cv.text_width(li, st) for li in lines) + 2 * s
    lh = s * 1.45 * len(lines) + s
    lx0 = 10 if corner in (0, 2) else w - 10 - lw
    ly0 = 10 if corner in (0, 1) else h - 10 - lh
    cv.paint(lx0, ly0, lx0 + lw, ly0 + lh, _grey(int(rng.integers(215, 245))))
    cv.stack(lx0 + s, ly0 + s * 0.5, lines, st, "lt", spacing=1.45)
    big = Style(pick_font(rng, "bold"), _size(rng, 40, 70), WHITE, contrast=True)
    cv.put(w * 0.88 if corner != 1 else w * 0.12, h * 0.12 if corner not in (0, 1) else h * 0.2,
           [neg("R" if rng.random() < 0.5 else "L", "marker")], big, "cc")
    mk = Style(pick_font(rng, "bold"), _size(rng, 22, 34), WHITE, contrast=True)
    cv.put(w * 0.5, h - 30 if corner < 2 else 30, [neg(["PA", "AP", "LAT"][int(rng.integers(3))], "marker"),
                                                   neg("ERECT", "marker")], mk, "cb" if corner < 2 else "ct")
    return cv, Spec("dcm", "pydicom_data/RG1_UNCI.dcm", "CR", SOP["CR"], mono1=True, bits=12, gray=True)


def sc_dx_portable(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = int(rng.integers(1000, 1500)), int(rng.integers(1000, 1400))
    cv = Canvas([vqa_image(rng, w, h)])
    s = _size(rng, 14, 22)
    st = Style(pick_font(rng, "sans"), s, WHITE, shadow=1 if rng.random() < 0.4 else 0)
    # small print over anatomy along the top
    cv.put(w * rng.uniform(0.4, 0.45), 16, [phi("name", idn.name()), lab("MRN"), phi("mrn", idn.mrn)], st)
    clock = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(60)):02d}"
    cv.put(w - 16, h - 16, [phi("date", idn.ddate(idn.study)), lab(clock),
                            lab("Tech:"), lab("JR")], st, "rb")
    big = Style(pick_font(rng, "bold"), _size(rng, 26, 44), WHITE)
    cv.put(30, 30, [neg("PORTABLE", "marker")], big)
    cv.put(30, 30 + big.size * 1.4, [neg("AP", "marker"), neg(["SUPINE", "ERECT", "SEMI-ERECT"][int(rng.integers(3))],
                                                              "marker")], big)
    cv.put(w - 40, h * 0.3, [neg("L", "marker")], Style(pick_font(rng, "bold"), _size(rng, 40, 64), WHITE), "rc")
    cv.put(16, h - 16, [neg(f"kVp {int(rng.integers(70, 125))}", "technique"),
                        neg(f"mAs {rng.uniform(1, 6):.1f}", "technique")], Style(st.font, s - 2, WHITE), "lb")
    return cv, Spec("dcm", "pydicom_data/RG3_J2KR.dcm", "DX", SOP["DX"], bits=12, gray=True)


def _four_corner(cv: Canvas, rng, idn: Ident, st: Style, modality: str) -> None:
    w, h, m = cv.w, cv.h, 3
    cv.stack(m, m, [[phi("name", idn.name(fold=True))],
                    [phi("mrn", idn.mrn)],
                    [phi("dob", idn.ddate(idn.dob)), lab(idn.sex)]], st)
    inst = idn.short_inst if w < 400 or rng.random() < 0.5 else idn.institution
    cv.stack(w - m, m, [[phi("institution", inst)],
                        [phi("date", idn.ddate(idn.study))],
                        [lab("Acc"), phi("accession", idn.accession)]], st, "rt")
    if modality == "CT":
        bl = [[neg(f"kV {[100, 120, 140][int(rng.integers(3))]}", "technique"),
               neg(f"mAs {int(rng.integers(80, 400))}", "technique")],
              [neg(f"W:{[400, 1500, 350, 80][int(rng.integers(4))]}", "technique"),
               neg(f"L:{[40, -600, 50, 35][int(rng.integers(4))]}", "technique")],
              [neg(f"Im: {int(rng.integers(1, 200))}/{int(rng.integers(200, 400))}", "index")]]
    else:
        bl = [[neg(f"TR {int(rng.integers(400, 6000))}", "technique"),
               neg(f"TE {int(rng.integers(10, 120))}", "technique")],
              [neg(f"W:{int(rng.integers(300, 2000))}", "technique"),
               neg(f"L:{int(rng.integers(100, 1000))}", "technique")],
              [neg(f"Se {int(rng.integers(2, 12))}", "index"), neg(f"Im {int(rng.integers(1, 40))}", "index")]]
    cv.stack(m, h - m, bl, st, "lb")
    cv.stack(w - m, h - m, [[lab("Ref:"), phi("physician", doctor(idn.ref, int(rng.integers(4))))],
                            [neg(f"{rng.uniform(0.6, 5):.1f} mm", "measurement")]], st, "rb")


def sc_ct_sc_4corner(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w = h = int([256, 384, 512][int(rng.integers(3))])
    bg = real_dicom_pixels("pydicom_data/693_UNCI.dcm", w, h) if rng.random() < 0.4 else None
    cv = Canvas([bg if bg is not None else vqa_image(rng, w, h)])
    st = Style(pick_font(rng, "sans" if rng.random() < 0.6 else "mono"), _size(rng, 8 if w < 400 else 9, 12), WHITE,
               aliased=bool(rng.random() < 0.4))
    _four_corner(cv, rng, idn, st, "CT")
    return cv, Spec("dcm", "pydicom_data/693_UNCI.dcm", "CT", SOP["SC"], bits=12, gray=True)


def sc_mr_sc_small(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w = h = int([256, 320, 384][int(rng.integers(3))])
    bg = real_dicom_pixels("dcm_qa_ts/1.dcm", w, h) if rng.random() < 0.5 else None
    cv = Canvas([bg if bg is not None else vqa_image(rng, w, h)])
    st = Style(pick_font(rng, "sans"), _size(rng, 7, 9), _grey(int(rng.integers(190, 256))),
               aliased=bool(rng.random() < 0.5))
    _four_corner(cv, rng, idn, st, "MR")
    return cv, Spec("dcm", "dcm_qa_ts/1.dcm", "MR", SOP["SC"], bits=12, gray=True)


def sc_nm_whole_body(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 512, 1024
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.full((h, w), 255.0, dtype=np.float32)
    for cx in (w * 0.27, w * 0.73):
        body = (((xx - cx) / 70) ** 2 + ((yy - h * 0.5) / 400) ** 2) < 1
        head = ((xx - cx) ** 2 + (yy - h * 0.13) ** 2) < 45 ** 2
        up = body | head
        counts = rng.poisson(3, (h, w)).astype(np.float32) * 12
        a = np.where(up, 255 - np.clip(counts, 0, 200), a)
        for _ in range(int(rng.integers(2, 6))):
            hx, hy = cx + rng.uniform(-50, 50), rng.uniform(0.2, 0.9) * h
            a = np.where(((xx - hx) ** 2 + (yy - hy) ** 2) < rng.uniform(5, 14) ** 2, 20.0, a)
    cv = Canvas([rgb(a)])
    s = _size(rng, 11, 16)
    st = Style(pick_font(rng, "sans"), s, BLACK)
    cv.stack(8, 6, [[phi("name", idn.name())], [lab("ID:"), phi("mrn", idn.mrn)],
                    [lab("DOB:"), phi("dob", idn.ddate(idn.dob))]], st)
    cv.stack(w - 8, 6, [[phi("date", idn.ddate(idn.study))], [phi("institution", idn.short_inst)]], st, "rt")
    cv.put(w * 0.27, h - 40, [neg("ANT", "marker")], st, "cb")
    cv.put(w * 0.73, h - 40, [neg("POST", "marker")], st, "cb")
    cv.put(8, h - 8, [neg("Tc-99m", "technique"), neg("MDP", "technique"), neg(f"{int(rng.integers(500, 900))} MBq",
                                                                                "technique")], st, "lb")
    cv.put(w - 8, h - 8, [neg(f"{int(rng.integers(10, 20))} cm/min", "technique")], st, "rb")
    return cv, Spec("dcm", "pydicom_data/JPEG-LL.dcm", "NM", SOP["SC"], gray=True)


def sc_xa_angio(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w = h = 512
    nf = int(rng.integers(2, 4))
    base = 150 + 40 * _smooth_noise(rng, w, h, 60)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bgs = []
    for f in range(nf):
        a = base.copy()
        for k in range(5):
            path = (w * (0.2 + 0.15 * k) + 40 * np.sin(yy / (60 + 10 * k) + k + f * 0.2))
            a = np.where(np.abs(xx - path) < (6 - k * 0.8), a - 90, a)
        circ = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) > (w * 0.52) ** 2
        a = np.where(circ, 0.0, a) + rng.normal(0, 5, a.shape)
        bgs.append(rgb(np.clip(a, 0, 255)))
    cv = Canvas(bgs)
    st = Style(pick_font(rng, "sans"), _size(rng, 10, 13), WHITE, aliased=bool(rng.random() < 0.5))
    cv.stack(4, 4, [[phi("name", idn.name(fold=True))], [phi("mrn", idn.mrn)], [phi("dob", idn.ddate(idn.dob))]], st)
    cv.stack(w - 4, 4, [[phi("institution", idn.institution)], [phi("date", idn.ddate(idn.study))]], st, "rt")
    cv.stack(4, h - 4, [[neg(f"LAO {int(rng.integers(5, 45))}", "technique"), neg(f"CRA {int(rng.integers(5, 30))}",
                                                                                    "technique")],
                        [neg(f"kV {int(rng.integers(60, 100))}", "technique"), neg(f"mA {int(rng.integers(300, 900))}",
                                                                                   "technique")]], st, "lb")
    for f in range(nf):
        cv.put(w - 4, h - 4, [neg(f"F {f + 1}/{nf}", "index"), neg("15 f/s", "technique")], st, "rb", frames=[f])
    return cv, Spec("dcm", "pydicom_data/693_UNCI.dcm", "XA", SOP["XA"], gray=True)


def sc_pacs_screenshot(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = [(1024, 640), (1280, 720), (1152, 720)][int(rng.integers(3))]
    a = np.zeros((h, w, 3), np.float32) + np.array([28, 30, 36], np.float32)
    a[:34] = [45, 52, 66]
    a[34:, : int(w * 0.28)] = [36, 38, 44]
    vx0, vy0 = int(w * 0.3), 44
    vw, vh = w - vx0 - 10, h - vy0 - 10
    a[vy0: vy0 + vh, vx0: vx0 + vw] = vqa_image(rng, vw, vh)
    cv = Canvas([a])
    s = _size(rng, 12, 16)
    ban = Style(pick_font(rng, "sans"), s, _color_text(rng))
    cv.put(10, 17, [phi("name", idn.name()), lab("|"), lab("MRN:"), phi("mrn", idn.mrn), lab("|"), lab("DOB:"),
                    phi("dob", idn.ddate(idn.dob)), lab("|"), lab("Acc:"), phi("accession", idn.accession)], ban, "lc")
    rowst = Style(pick_font(rng, "sans"), _size(rng, 10, 13), _grey(200))
    y = 50
    for _ in range(5):
        other = make_ident(np.random.default_rng(int(rng.integers(1 << 30))))
        cv.put(8, y, [phi("name", other.name(style=1))], rowst)
        cv.put(8, y + rowst.size * 1.3, [phi("mrn", other.mrn), phi("date", other.ddate(other.study, 1))],
               Style(rowst.font, rowst.size, _grey(150)))
        y += rowst.size * 3.2
    ov = Style(pick_font(rng, "sans"), _size(rng, 10, 13), WHITE)
    cv.stack(vx0 + 4, vy0 + 4, [[phi("name", idn.name(fold=True))], [phi("date", idn.ddate(idn.study, 3))]], ov)
    cv.stack(vx0 + vw - 4, vy0 + vh - 4, [[neg(f"W: {int(rng.integers(300, 1600))}", "technique"),
                                         neg(f"L: {int(rng.integers(20, 600))}", "technique")],
                                        [neg(f"Im {int(rng.integers(1, 90))}/{int(rng.integers(90, 300))}", "index")]],
             ov, "rb")
    cv.put(vx0 + 4, vy0 + vh - 4, [neg(f"{rng.uniform(5, 60):.1f} mm", "measurement")], ov, "lb")
    return cv, Spec("png")


def _page(rng, w: int, h: int) -> np.ndarray:
    a = 246 + 6 * _smooth_noise(rng, w, h, 80) + rng.normal(0, 2.5, (h, w))
    return rgb(np.clip(a, 0, 255))


def _form(cv: Canvas, st: Style, x: float, y: float, fields: list[list[Seg]]) -> None:
    step = st.size * 1.9
    for i, f in enumerate(fields):
        cv.put(x, y + i * step, f, st)


def sc_scanned_requisition(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 850, 1100
    cv = Canvas([_page(rng, w, h)])
    ang = float(rng.uniform(-1.5, 1.5))
    font = pick_font(rng, "serif" if rng.random() < 0.5 else "sans")
    s = _size(rng, 12, 18)
    ink = _grey(int(rng.integers(10, 60)))
    title = Style(pick_font(rng, "bold"), s + 8, ink, angle=ang)
    st = Style(font, s, ink, angle=ang)
    cv.put(60, 50, [phi("institution", idn.institution)], title)
    cv.put(60, 50 + (s + 8) * 1.6, [lab("Radiology Requisition")], Style(font, s + 2, ink, angle=ang))
    _form(cv, st, 60, 170, [
        [lab("Patient:"), phi("name", idn.name(style=1))],
        [lab("DOB:"), phi("dob", idn.ddate(idn.dob)), lab("Sex:"), lab(idn.sex)],
        [lab("MRN:"), phi("mrn", idn.mrn)],
        [lab("Phone:"), phi("phone", idn.phone)],
        [lab("Exam requested:"), lab("CT abdomen and pelvis with contrast")],
        [lab("Clinical history:"), lab("right lower quadrant pain, fever")],
        [lab("Referring physician:"), lab("Dr."), phi("physician", doctor(idn.ref, 0))],
        [lab("Date of request:"), phi("date", idn.ddate(idn.study))],
        [lab("Accession:"), phi("accession", idn.accession)],
    ])
    cv.put(60, h - 80, [lab("Page 1 of 1")], Style(font, s - 2, ink, angle=ang))
    return cv, Spec("jpg" if rng.random() < 0.5 else "png", gray=True, quality=int(rng.integers(70, 92)))


def sc_fax_page(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 864, 1120
    cv = Canvas([rgb(np.full((h, w), 255.0, np.float32))])
    font = pick_font(rng, "mono" if rng.random() < 0.5 else "sans")
    s = _size(rng, 10, 13)
    st = Style(font, s, BLACK, aliased=True)
    cv.put(20, 10, [phi("date", idn.ddate(idn.study, 3)), lab("09:41"), lab("FROM:"),
                    phi("institution", idn.short_inst), phi("phone", idn.phone), lab("P.01/03")], st)
    body = Style(font, s + 2, BLACK, aliased=True)
    _form(cv, body, 70, 120, [
        [lab("FAX"), lab("-"), lab("IMAGING RESULTS")],
        [lab("Re:"), phi("name", idn.name())],
        [lab("Date of birth:"), phi("dob", idn.ddate(idn.dob))],
        [lab("Hospital no:"), phi("mrn", idn.mrn)],
        [lab("Examination:"), lab("MRI lumbar spine"), phi("date", idn.ddate(idn.study))],
        [lab("Reported by:"), lab("Dr"), phi("physician", doctor(idn.perf, 0))],
        [lab("Call back:"), phi("phone", make_phone(rng))],
    ])
    return cv, Spec("png", gray=True)


def sc_phone_photo_monitor(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 1024, 768
    a = np.zeros((h, w, 3), np.float32) + np.array([20, 18, 16], np.float32)
    sx0, sy0, sx1, sy1 = 120, 80, 904, 688
    a[sy0:sy1, sx0:sx1] = vqa_image(rng, sx1 - sx0, sy1 - sy0)
    cv = Canvas([a])
    st = Style(pick_font(rng, "sans"), _size(rng, 13, 18), WHITE)
    cv.stack(sx0 + 6, sy0 + 6, [[phi("name", idn.name())], [lab("ID:"), phi("mrn", idn.mrn)],
                                [lab("DOB:"), phi("dob", idn.ddate(idn.dob))]], st)
    cv.stack(sx1 - 6, sy0 + 6, [[phi("institution", idn.institution)], [phi("date", idn.ddate(idn.study))]], st, "rt")
    cv.stack(sx0 + 6, sy1 - 6, [[neg(f"W:{int(rng.integers(300, 1600))}", "technique"),
                                 neg(f"L:{int(rng.integers(20, 500))}", "technique")]], st, "lb")
    cv.put(sx1 - 6, sy1 - 6, [neg(f"Im {int(rng.integers(1, 80))}", "index")], st, "rb")
    return cv, Spec("jpg", quality=int(rng.integers(72, 90)))


def _post_phone(cv: Canvas, rng) -> None:
    """Perspective, moire, vignetting, blur and sensor noise, applied alike to image, twin and glyph masks."""
    w, h = cv.w, cv.h
    d = [rng.uniform(-40, 40) for _ in range(8)]
    dst = [(d[0], d[1]), (w + d[2], d[3]), (w + d[4], h + d[5]), (d[6], h + d[7])]
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    coeffs = _perspective_coeffs(dst, src)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    moire = 1 + 0.06 * np.sin(xx * 0.9 + yy * 0.35)
    vig = 1 - 0.35 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
    noise = rng.normal(0, 4, (h, w, 3)).astype(np.float32)
    blur = float(rng.uniform(0.4, 1.0))

    def warp(a: np.ndarray) -> np.ndarray:
        chans = [np.asarray(Image.fromarray(np.clip(a[..., c], 0, 255).astype(np.uint8)).transform(
            (w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
            .filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) for c in range(3)]
        out = np.stack(chans, axis=2) * (moire * vig)[..., None] + noise
        return np.clip(out, 0, 255)

    cv.bg = [warp(b) for b in cv.bg]
    cv.img = [warp(b) for b in cv.img]
    new_tokens = []
    for t in cv.tokens:
        full = np.zeros((h, w), np.uint8)
        x0, y0, x1, y1 = t.bbox
        full[y0:y1, x0:x1] = t.mask.astype(np.uint8) * 255
        m = np.asarray(Image.fromarray(full).transform((w, h), Image.Transform.PERSPECTIVE, coeffs,
                                                       Image.Resampling.BILINEAR)
                       .filter(ImageFilter.GaussianBlur(blur)), dtype=np.uint8) > 25
        yy2, xx2 = np.nonzero(m)
        if len(xx2) == 0:
            continue
        bx0, by0, bx1, by1 = int(xx2.min()), int(yy2.min()), int(xx2.max()) + 1, int(yy2.max()) + 1
        t.bbox, t.mask = (bx0, by0, bx1, by1), m[by0:by1, bx0:bx1]
        new_tokens.append(t)
    cv.tokens = new_tokens
    boxes = []
    for b in cv.boxes:
        pts = [_apply_perspective(_perspective_coeffs(src, dst), px, py) for px, py in
               ((b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3]))]
        boxes.append((int(min(p[0] for p in pts)) - 2, int(min(p[1] for p in pts)) - 2,
                      int(max(p[0] for p in pts)) + 3, int(max(p[1] for p in pts)) + 3))
    cv.boxes = boxes


def _perspective_coeffs(dst, src) -> list[float]:
    """Coefficients for PIL's PERSPECTIVE transform mapping output points dst to input points src."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return [float(c) for c in np.linalg.solve(np.array(rows, float), np.array(rhs, float))]


def _apply_perspective(c: list[float], x: float, y: float) -> tuple[float, float]:
    den = c[6] * x + c[7] * y + 1
    return ((c[0] * x + c[1] * y + c[2]) / den, (c[3] * x + c[4] * y + c[5]) / den)


def sc_endoscopy(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = [(720, 576), (640, 480), (1280, 1024)][int(rng.integers(3))]
    a = np.zeros((h, w, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, r = w * 0.62, h * 0.5, h * 0.46
    circ = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    t = _smooth_noise(rng, w, h, 40)
    tissue = np.stack([150 + 90 * t, 60 + 50 * t, 50 + 40 * _smooth_noise(rng, w, h, 15)], axis=2)
    a = np.where(circ[..., None], tissue, a)
    cv = Canvas([a])
    s = max(10, h // 40)
    st = Style(pick_font(rng, "sans"), s, WHITE if rng.random() < 0.6 else (120, 255, 120))
    cv.stack(10, 12, [[lab("ID:"), phi("mrn", idn.mrn)], [lab("Name:"), phi("name", idn.name(fold=True))],
                      [lab("Sex:"), lab(idn.sex), lab("DOB:"), phi("dob", idn.ddate(idn.dob))],
                      [phi("date", idn.ddate(idn.study))], [lab("14:05:33")],
                      [lab("Ref:"), phi("physician", doctor(idn.ref, 3))]], st, spacing=1.5)
    cv.stack(10, h - 12, [[neg("Eh:A5", "technique"), neg("Cm:1", "technique")], [neg("CVP:4", "technique")]], st, "lb")
    return cv, Spec("jpg", quality=int(rng.integers(80, 95)))


def sc_clinical_photo(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 1024, 768
    t = _smooth_noise(rng, w, h, 50)
    skin = np.array([[205, 160, 130], [160, 110, 80], [110, 75, 55], [230, 190, 165]][int(rng.integers(4))], np.float32)
    a = skin * (0.85 + 0.25 * t[..., None]) + rng.normal(0, 3, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lesion = ((xx - w * 0.45) / 60) ** 2 + ((yy - h * 0.5) / 45) ** 2 < 1
    a = np.where(lesion[..., None], a * 0.45, a)
    # a ruler along the bottom
    a[h - 70: h - 30, 80: w - 200] = [240, 240, 225]
    for k in range(0, w - 290, 38):
        a[h - 70: h - 55 if k % 76 else h - 50, 90 + k: 92 + k] = 30
    cv = Canvas([np.clip(a, 0, 255)])
    rs = Style("DejaVuSans", 12, _grey(30))
    for k in range(0, (w - 290) // 76 + 1):
        cv.put(91 + 76 * k, h - 48, [neg(str(k * 2), "scale")], rs, "ct")
    cv.put(w - 205, h - 50, [neg("cm", "scale")], rs, "rc")
    ang = float(rng.uniform(-8, 8))
    s = _size(rng, 15, 20)
    st = Style(pick_font(rng, "sans"), s, _grey(25), angle=ang)
    lines = [[phi("name", idn.name(style=1))], [lab("MRN"), phi("mrn", idn.mrn)],
             [lab("DOB"), phi("dob", idn.ddate(idn.dob))], [phi("date", idn.ddate(idn.study))]]
    lw = max(cv.text_width(li, st) for li in lines) + 2 * s
    lh = s * 1.7 * len(lines) + s
    x0, y0 = w * rng.uniform(0.55, 0.6), h * rng.uniform(0.06, 0.1)
    cv.paint(x0, y0, x0 + lw, y0 + lh, (250, 250, 245), angle=ang)
    # lines follow the sticker's tilt: each line starts on the rotated left edge
    cx, cy = x0 + lw / 2, y0 + lh / 2
    t = math.radians(-ang)
    for i, li in enumerate(lines):
        px, py = x0 + s, y0 + s * 0.5 + i * s * 1.7 + s * 0.6
        rx = cx + (px - cx) * math.cos(t) - (py - cy) * math.sin(t)
        ry = cy + (px - cx) * math.sin(t) + (py - cy) * math.cos(t)
        cv.put(rx, ry, li, st, "lc")
    return cv, Spec("jpg", quality=int(rng.integers(80, 94)))


def sc_heavy_jpeg(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = [(512, 512), (768, 640), (640, 480)][int(rng.integers(3))]
    cv = Canvas([vqa_image(rng, w, h)])
    st = Style(pick_font(rng, "any"), _size(rng, 11, 16), WHITE)
    cv.stack(6, 6, [[phi("name", idn.name())], [phi("mrn", idn.mrn)], [phi("date", idn.ddate(idn.study))]], st)
    cv.put(w - 6, 6, [phi("institution", idn.short_inst)], st, "rt")
    cv.put(w - 6, h - 6, [neg("R", "marker")], Style(pick_font(rng, "bold"), _size(rng, 18, 28), WHITE), "rb")
    return cv, Spec("jpg", gray=bool(rng.random() < 0.5), quality=int(rng.integers(18, 36)))


def sc_low_contrast(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w = h = 512
    cv = Canvas([vqa_image(rng, w, h)])
    st_font = pick_font(rng, "sans")
    s = _size(rng, 11, 16)
    for k, segs in enumerate([[phi("name", idn.name())], [lab("ID"), phi("mrn", idn.mrn)],
                              [phi("dob", idn.ddate(idn.dob))], [phi("date", idn.ddate(idn.study))]]):
        x, y = rng.uniform(0.15, 0.45) * w, (0.25 + 0.14 * k) * h
        local = float(np.median(cv.bg[0][int(y): int(y) + s, int(x): int(x) + 120].mean(axis=2)))
        delta = float(rng.uniform(35, 60)) * (1 if (local < 150 and rng.random() < 0.7) or local < 60 else -1)
        cv.put(x, y, segs, Style(st_font, s, _grey(int(local + delta))))
    cv.put(w * 0.75, h * 0.85, [neg(f"{rng.uniform(1, 9):.1f} cm", "measurement")], Style(st_font, s, _grey(200)))
    return cv, Spec("dcm", "pydicom_data/693_UNCI.dcm", "CT", SOP["SC"], bits=12, gray=True)


def sc_coloured_outlined(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w = h = 768
    base = vqa_image(rng, w, h)
    tint = np.array([1.0, rng.uniform(0.7, 0.95), rng.uniform(0.5, 0.8)], np.float32)
    cv = Canvas([np.clip(base * tint, 0, 255)])
    s = _size(rng, 14, 22)
    for k, segs in enumerate([[phi("name", idn.name())], [lab("MRN:"), phi("mrn", idn.mrn)],
                              [lab("DOB:"), phi("dob", idn.ddate(idn.dob))],
                              [phi("institution", idn.institution)], [lab("Acc"), phi("accession", idn.accession)]]):
        outline = rng.random() < 0.6
        st = Style(pick_font(rng, "any"), s, _color_text(rng), stroke=int(rng.integers(1, 3)) if outline else 0,
                   shadow=0 if outline else 2)
        cv.put(12 + rng.uniform(0, 0.3) * w, 12 + k * s * 2.2, segs, st)
    cv.put(w - 12, h - 12, [neg("3D", "annotation"), neg("VR", "annotation")],
           Style(pick_font(rng, "bold"), s, (255, 255, 0), stroke=1), "rb")
    cv.put(12, h - 12, [neg("A", "marker")], Style(pick_font(rng, "bold"), s + 6, WHITE, shadow=2), "lb")
    return cv, Spec("png")


def sc_rotated_vertical(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = int(rng.integers(900, 1200)), int(rng.integers(1200, 1500))
    cv = Canvas([vqa_image(rng, w, h)])
    s = _size(rng, 14, 22)
    ang = 90.0 if rng.random() < 0.5 else -90.0
    vst = Style(pick_font(rng, "sans"), s, WHITE, angle=ang)
    cv.put(14, h * 0.5, [phi("name", idn.name()), lab("ID"), phi("mrn", idn.mrn)], vst, "lc")
    cv.put(14 + s * 1.6, h * 0.5, [phi("dob", idn.ddate(idn.dob)), phi("institution", idn.short_inst)], vst, "lc")
    tilt = Style(pick_font(rng, "sans"), s, WHITE, angle=float(rng.uniform(10, 30)) * (1 if rng.random() < 0.5 else -1))
    cv.put(w * 0.7, h * 0.08, [phi("date", idn.ddate(idn.study))], tilt, "cc")
    mk = Style(pick_font(rng, "bold"), _size(rng, 28, 44), WHITE)
    cv.put(w - 30, 30, [neg(["R", "L"][int(rng.integers(2))], "marker"), neg(["CC", "MLO"][int(rng.integers(2))],
                                                                             "marker")], mk, "rt")
    return cv, Spec("dcm", "pydicom_data/RG1_UNCI.dcm", "MG", SOP["MG"], mono1=bool(rng.random() < 0.5), bits=12,
                    gray=True)


def sc_big_bold(rng, idn: Ident) -> tuple[Canvas, Spec]:
    w, h = 1024, 768
    a = np.zeros((h, w, 3), np.float32) + np.array([12, 14, 40], np.float32)
    a[180: 740, 40: 600] = vqa_image(rng, 560, 560)
    cv = Canvas([a])
    big = Style(pick_font(rng, "bold"), _size(rng, 30, 48), WHITE)
    cv.put(40, 30, [phi("name", idn.name(style=2))], big)
    mid = Style(pick_font(rng, "bold"), _size(rng, 22, 30), (255, 230, 120))
    cv.stack(630, 190, [[lab("MRN"), phi("mrn", idn.mrn)], [lab("DOB"), phi("dob", idn.ddate(idn.dob))],
                        [phi("date", idn.ddate(idn.study))], [phi("institution", idn.short_inst)],
                        [neg("AXIAL", "annotation")], [neg(f"{rng.uniform(1, 6):.1f} cm", "measurement")]], mid,
             spacing=1.6)
    spec = Spec("png") if rng.random() < 0.5 else Spec("dcm", "pydicom_data/SC_rgb_2frame.dcm", "OT", SOP["SC"])
    return cv, spec


def sc_misfiled_sc(rng, idn: Ident) -> tuple[Canvas, Spec]:
    """A secondary capture of another patient's screen, filed under the header patient (ident of the pixels differs)."""
    w = h = 512
    cv = Canvas([vqa_image(rng, w, h, gray=False)])
    st = Style(pick_font(rng, "sans"), _size(rng, 10, 14), WHITE)
    cv.stack(5, 5, [[phi("name", idn.name())], [lab("PID:"), phi("mrn", idn.mrn)],
                    [lab("DOB:"), phi("dob", idn.ddate(idn.dob))]], st)
    cv.stack(w - 5, 5, [[phi("institution", idn.institution)], [phi("date", idn.ddate(idn.study))],
                        [phi("phone", idn.phone)]], st, "rt")
    cv.put(5, h - 5, [neg(f"Se {int(rng.integers(1, 9))}", "index"), neg(f"Im {int(rng.integers(1, 99))}", "index")],
           st, "lb")
    return cv, Spec("dcm", "pydicom_data/MR-SIEMENS-DICOM-WithOverlays.dcm", "OT", SOP["SC"], header_mismatch=True)


SCENES = {
    "us_vendor_header": sc_us_vendor_header, "us_cine_multiframe": sc_us_cine, "us_ob_colour": sc_us_ob_colour,
    "cr_film_label": sc_cr_film_label, "dx_portable": sc_dx_portable, "ct_sc_4corner": sc_ct_sc_4corner,
    "mr_sc_small": sc_mr_sc_small, "nm_whole_body": sc_nm_whole_body, "xa_angio": sc_xa_angio,
    "pacs_screenshot": sc_pacs_screenshot, "scanned_requisition": sc_scanned_requisition, "fax_page": sc_fax_page,
    "phone_photo_monitor": sc_phone_photo_monitor, "endoscopy": sc_endoscopy, "clinical_photo": sc_clinical_photo,
    "heavy_jpeg": sc_heavy_jpeg, "low_contrast_anatomy": sc_low_contrast, "coloured_outlined": sc_coloured_outlined,
    "rotated_vertical": sc_rotated_vertical, "big_bold_keyimage": sc_big_bold, "misfiled_sc": sc_misfiled_sc,
}

# ---------------------------------------------------------------------------------------------------- writing


def _uid(seed: int, idx: int, what: str) -> str:
    return generate_uid(entropy_srcs=[f"heldout-l-{seed}-{idx}-{what}"])


_DROP_KEYWORDS = ["PixelData", "FloatPixelData", "DoubleFloatPixelData", "NumberOfFrames", "FrameIncrementPointer",
                  "PlanarConfiguration", "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
                  "PixelPaddingRangeLimit", "WindowCenterWidthExplanation", "VOILUTSequence", "ModalityLUTSequence",
                  "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
                  "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
                  "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
                  "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
                  "SegmentedBluePaletteColorLookupTableData", "PaletteColorLookupTableUID", "IconImageSequence",
                  "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
                  "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress",
                  "PatientTelephoneNumbers", "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "BurnedInAnnotation",
                  "RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth", "PixelSpacing",
                  "ImagerPixelSpacing", "SequenceOfUltrasoundRegions"]


def write_dicom(path: Path, frames: list[np.ndarray], spec: Spec, header_idn: Ident, seed: int, idx: int,
                twin: bool) -> None:
    ds = pydicom.dcmread(DICOM_DIR / spec.template, stop_before_pixels=True)
    for kw in _DROP_KEYWORDS:
        if kw in ds:
            delattr(ds, kw)
    for tag in list(ds.keys()):
        if 0x6000 <= tag.group <= 0x60FF:
            del ds[tag]
    if spec.gray:
        if spec.bits > 8:
            mx = (1 << spec.bits) - 1
            arrs = [np.round(f.mean(axis=2) / 255.0 * mx) for f in frames]
            if spec.mono1:
                arrs = [mx - a for a in arrs]
            data = np.stack(arrs).astype("<u2")
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, spec.bits, spec.bits - 1
            ds.WindowCenter, ds.WindowWidth = str(mx // 2 + 1), str(mx + 1)
        else:
            data = np.stack([np.round(f.mean(axis=2)) for f in frames]).astype(np.uint8)
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
            ds.WindowCenter, ds.WindowWidth = "128", "256"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME1" if spec.mono1 else "MONOCHROME2"
        vr = "OW" if spec.bits > 8 else "OB"
    else:
        data = np.stack([np.round(f) for f in frames]).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        vr = "OB"
    ds.PixelRepresentation = 0
    ds.Rows, ds.Columns = int(data.shape[1]), int(data.shape[2])
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
        if spec.modality in ("US", "XA"):
            ds.FrameTime = "66.7"
            ds.FrameIncrementPointer = Tag("FrameTime")
    if spec.modality == "CT" and spec.bits > 8:
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        mx = (1 << spec.bits) - 1
        ds.WindowCenter, ds.WindowWidth = str(mx // 2 + 1 - 1024), str(mx + 1)
    if spec.burned_in_flag:
        ds.BurnedInAnnotation = spec.burned_in_flag
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Modality = spec.modality
    ds.SOPClassUID = spec.sop_class
    ds.SOPInstanceUID = _uid(seed, idx, "sop-twin" if twin else "sop")
    ds.StudyInstanceUID = _uid(seed, idx, "study")
    ds.SeriesInstanceUID = _uid(seed, idx, "series-twin" if twin else "series")
    ds.PatientName = header_idn.dicom_name()
    ds.PatientID = header_idn.mrn.replace(" ", "")
    ds.PatientBirthDate = header_idn.dob.strftime("%Y%m%d")
    ds.PatientSex = header_idn.sex
    ds.AccessionNumber = header_idn.accession[:16]
    ds.InstitutionName = header_idn.institution
    ds.ReferringPhysicianName = f"{header_idn.ref[0]}^{header_idn.ref[1]}"
    ds.PerformingPhysicianName = f"{header_idn.perf[0]}^{header_idn.perf[1]}"
    for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        setattr(ds, kw, header_idn.study.strftime("%Y%m%d"))
    ds[0x7FE00010] = DataElement(0x7FE00010, vr, data.tobytes())
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def write_upload(path: Path, frame: np.ndarray, spec: Spec) -> None:
    a = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    im = Image.fromarray(a.mean(axis=2).round().astype(np.uint8)) if spec.gray else Image.fromarray(a)
    if spec.fmt == "jpg":
        im.save(path, quality=spec.quality)
    else:
        im.save(path)


# ------------------------------------------------------------------------------------------------------ build

def build_case(seed: int, idx: int, scene: str, outdir: Path) -> dict:
    rng = np.random.default_rng([seed, idx])
    idn = make_ident(rng)
    cv, spec = SCENES[scene](rng, idn)
    if scene == "phone_photo_monitor":
        _post_phone(cv, rng)
    header_idn = idn
    if spec.fmt == "dcm" and (spec.header_mismatch or rng.random() < 0.15):
        header_idn = make_ident(np.random.default_rng([seed, idx, 77]))
        spec.header_mismatch = True
    outdir.mkdir(parents=True, exist_ok=True)
    ext = {"dcm": ".dcm", "png": ".png", "jpg": ".jpg"}[spec.fmt]
    img_path, twin_path = outdir / f"image{ext}", outdir / f"twin{ext}"
    if spec.fmt == "dcm":
        write_dicom(img_path, cv.img, spec, header_idn, seed, idx, twin=False)
        write_dicom(twin_path, cv.bg, spec, header_idn, seed, idx, twin=True)
    else:
        write_upload(img_path, cv.img[0], spec)
        write_upload(twin_path, cv.bg[0], spec)
    masks = {}
    toks = []
    for k, t in enumerate(cv.tokens):
        masks[f"t{k}"] = t.mask
        toks.append({"k": k, "text": t.text, "role": t.role, "item": t.item, "frames": t.frames, "size": t.size,
                     "dark": t.dark, "bbox": list(t.bbox)})
    np.savez_compressed(outdir / "masks.npz", **masks)
    # preview: image with PHI boxes red, negatives green
    prev = Image.fromarray(np.clip(cv.img[0], 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(prev)
    for t in cv.tokens:
        if 0 in t.frames and t.role != "label":
            d.rectangle(list(t.bbox), outline=(0, 200, 0) if t.role.startswith("neg:") else (255, 0, 0))
    prev.save(outdir / "preview.png")
    meta = {"idx": idx, "scene": scene, "fmt": spec.fmt, "modality": spec.modality, "template": spec.template,
            "image": img_path.name, "twin": twin_path.name, "w": cv.w, "h": cv.h, "frames": len(cv.img),
            "header_mismatch": spec.header_mismatch, "boxes": [list(b) for b in cv.boxes], "tokens": toks,
            "rejected_items": cv.rejected}
    (outdir / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


def scene_order(seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    names = sorted(SCENES)
    order: list[str] = []
    while len(order) < N_CASES:
        order += [names[int(i)] for i in rng.permutation(len(names))]
    return order[:N_CASES]


# -------------------------------------------------------------------------------------------------------- run

def ingest(path: Path, mode: str, scratch: Path) -> dict:
    scratch.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="data-", dir=scratch))
    out = Path(tempfile.mkdtemp(prefix="out-", dir=scratch))
    env = dict(os.environ, RADASSIST_DATA_DIR=str(data), RADASSIST_BURNED_IN_TEXT=mode)
    cmd = [str(ROOT / ".venv" / "bin" / "radassist"), "ingest", "--json", "--out", str(out), str(path)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, stdout, stderr = -9, "", "timeout"
    except OSError as exc:  # no CLI at that path
        rc, stdout, stderr = -1, "", f"cannot start {cmd[0]}: {exc}"
    dt = time.perf_counter() - t0
    obj: dict = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {}
            break
    ok = rc == 0 and bool(obj.get("ok"))
    shutil.rmtree(data, ignore_errors=True)
    return {"mode": mode, "rc": rc, "ok": ok, "error": obj.get("error") or (stderr.strip().splitlines() or [""])[-1],
            "summary": obj.get("summary"), "seconds": dt, "out": str(out)}


def load_frames(out: str) -> dict[int, np.ndarray]:
    found: dict[int, Path] = {}
    for p in sorted(Path(out).rglob("*frame*.png")):
        m = re.search(r"frame\D*(\d+)", p.name)
        if m:
            found.setdefault(int(m.group(1)), p)
    return {k: np.asarray(Image.open(v).convert("RGB"), dtype=np.int16) for k, v in found.items()}


def _index_frames(frames: dict[int, np.ndarray], base: int) -> dict[int, np.ndarray]:
    return {k - base: v for k, v in frames.items()}


def _map_mask(mask: np.ndarray, bbox: list[int], sx: float, sy: float, rw: int, rh: int):
    """The glyph mask in rendered-frame pixels: (y-slice, x-slice, bool array)."""
    x0, y0, x1, y1 = bbox
    rx0, ry0 = int(math.floor(x0 * sx)), int(math.floor(y0 * sy))
    rx1, ry1 = min(rw, max(rx0 + 1, int(math.ceil(x1 * sx)))), min(rh, max(ry0 + 1, int(math.ceil(y1 * sy))))
    rx0, ry0 = min(rx0, rw - 1), min(ry0, rh - 1)
    if (rx1 - rx0, ry1 - ry0) == mask.shape[::-1]:
        m = mask
    else:
        im = Image.fromarray(mask.astype(np.uint8) * 255)
        m = np.asarray(im.resize((rx1 - rx0, ry1 - ry0), Image.Resampling.BOX), dtype=np.uint8) > 0
    # judge only rendered pixels whose whole footprint lies inside the token's box: at another scale the edge
    # pixels mix the token with its neighbourhood, and a redaction exactly at the box would not make them black
    inner = np.zeros_like(m)
    ix0, iy0 = int(math.ceil(x0 * sx - 1e-6)) - rx0, int(math.ceil(y0 * sy - 1e-6)) - ry0
    ix1, iy1 = int(math.floor(x1 * sx + 1e-6)) - rx0, int(math.floor(y1 * sy + 1e-6)) - ry0
    inner[max(0, iy0): max(0, iy1), max(0, ix0): max(0, ix1)] = True
    return slice(ry0, ry1), slice(rx0, rx1), m & inner, inner


def is_black(a: np.ndarray) -> np.ndarray:
    return (a <= BLACK_T).all(axis=-1)


def score_case(case_dir: Path, meta: dict, runs: dict) -> tuple[list[dict], dict]:
    masks = np.load(case_dir / "masks.npz")
    a_run, n_run, t_run = runs["always"], runs["never"], runs["twin"]
    info = {"idx": meta["idx"], "scene": meta["scene"], "fmt": meta["fmt"], "header_mismatch": meta["header_mismatch"],
            "always_ok": a_run["ok"], "never_ok": n_run["ok"], "twin_ok": t_run["ok"],
            "always_error": a_run["error"] if not a_run["ok"] else "", "never_error": n_run["error"] if not n_run["ok"]
            else "", "t_always": a_run["seconds"], "t_never": n_run["seconds"], "t_twin": t_run["seconds"],
            "false_redaction": [], "outside_diff": [], "notes": [],
            "always_burned_in": {k: v for k, v in ((a_run.get("summary") or {}).get("burned_in_text") or {}).items()
                                 if k != "regions"}}
    rows: list[dict] = []
    never = load_frames(n_run["out"]) if n_run["ok"] else {}
    twin = load_frames(t_run["out"]) if t_run["ok"] else {}
    always = load_frames(a_run["out"]) if a_run["ok"] else {}
    base = min(never) if never else 0
    never, twin, always = (_index_frames(f, base) for f in (never, twin, always))
    scorable_case = n_run["ok"] and t_run["ok"] and bool(never)
    if not scorable_case:
        info["notes"].append("never/twin ingest failed or rendered nothing: case unscorable")
    # per-frame diff maps
    geo: dict[int, tuple] = {}
    for f in range(meta["frames"]):
        if f in never and f in twin and never[f].shape == twin[f].shape:
            rh, rw = never[f].shape[:2]
            sx, sy = rw / meta["w"], rh / meta["h"]
            if abs(sx - sy) > 0.02 * max(sx, sy):
                info["notes"].append(f"frame {f}: rendered aspect differs ({rw}x{rh} vs {meta['w']}x{meta['h']})")
            diff = (np.abs(never[f] - twin[f]) > DIFF_T).any(axis=2)
            geo[f] = (sx, sy, rw, rh, diff)
        elif f in never and f in twin:
            info["notes"].append(f"frame {f}: image and twin rendered at different sizes")
    # non-text area per frame, false redaction and the harness check (diff outside text boxes)
    for f, (sx, sy, rw, rh, diff) in geo.items():
        text = np.zeros((rh, rw), bool)
        for b in meta["boxes"]:
            x0 = max(0, int((b[0] - BOX_MARGIN) * sx))
            y0 = max(0, int((b[1] - BOX_MARGIN) * sy))
            x1 = min(rw, int(math.ceil((b[2] + BOX_MARGIN) * sx)))
            y1 = min(rh, int(math.ceil((b[3] + BOX_MARGIN) * sy)))
            text[y0:y1, x0:x1] = True
        outside = ~text
        info["outside_diff"].append(float(diff[outside].mean()) if outside.any() else 0.0)
        shown = a_run["ok"] and f in always and not is_black(always[f]).all() and always[f].shape == never[f].shape
        if shown:
            vis = outside & ~is_black(never[f])
            if vis.any():
                info["false_redaction"].append(float(is_black(always[f])[vis].mean()))
    # tokens
    for t in meta["tokens"]:
        if t["role"] == "label":
            continue
        is_phi = not t["role"].startswith("neg:")
        mask = masks[f"t{t['k']}"]
        row = {"case": meta["idx"], "scene": meta["scene"], "fmt": meta["fmt"], "header_mismatch":
               meta["header_mismatch"], "text": t["text"], "kind": t["role"] if is_phi else t["role"][4:],
               "phi": is_phi, "size": t["size"], "dark": t["dark"], "frames": t["frames"], "ink": 0,
               "black_share": None, "status": "unscorable"}
        if scorable_case:
            per_frame = []
            ink_total = 0
            for f in t["frames"]:
                if f not in geo:
                    continue
                sx, sy, rw, rh, diff = geo[f]
                ys, xs, m, inner = _map_mask(mask, t["bbox"], sx, sy, rw, rh)
                m = m[: diff[ys, xs].shape[0], : diff[ys, xs].shape[1]]
                inner = inner[: m.shape[0], : m.shape[1]]
                ink = m & diff[ys, xs][: m.shape[0], : m.shape[1]]
                if t["dark"]:
                    judged = ~is_black(never[f][ys, xs][: m.shape[0], : m.shape[1]]) & inner
                else:
                    judged = ink
                n_ink, n_j = int(ink.sum()), int(judged.sum())
                if n_ink < MIN_INK or n_j < MIN_INK:
                    continue
                ink_total += n_ink
                if not a_run["ok"]:
                    per_frame.append(("failed", 1.0))
                elif f not in always or is_black(always[f]).all():
                    per_frame.append(("withheld", 1.0))
                elif always[f].shape != never[f].shape:
                    per_frame.append(("withheld", 1.0))
                    info["notes"].append(f"frame {f}: always rendering has another size; counted as withheld")
                else:
                    blk = is_black(always[f][ys, xs][: m.shape[0], : m.shape[1]])
                    per_frame.append(("shown", float(blk[judged].mean())))
            row["ink"] = ink_total
            if per_frame:
                share = min(s for _, s in per_frame)
                row["black_share"] = round(share, 4)
                how = {k for k, _ in per_frame}
                if is_phi:
                    if "failed" in how:
                        row["status"] = "failed"
                    elif share >= REMOVED_SHARE:
                        row["status"] = "withheld" if how == {"withheld"} else "removed"
                    else:
                        row["status"] = "leaked"
                else:
                    worst = max(s for _, s in per_frame)
                    row["black_share"] = round(worst, 4)
                    row["status"] = "kept" if worst < KEPT_SHARE else "blacked"
                    if "failed" in how:
                        row["status"] = "failed"
        rows.append(row)
    return rows, info


# ---------------------------------------------------------------------------------------------------- summary

def _band(size: int) -> str:
    for hi, name in ((9, "07-09px"), (12, "10-12px"), (18, "13-18px"), (28, "19-28px")):
        if size <= hi:
            return name
    return "29px+"


def _pct(a: list[float], q: float) -> float:
    return float(np.percentile(a, q)) if a else float("nan")


def summarise(rows: list[dict], infos: list[dict]) -> dict:
    phi_rows = [r for r in rows if r["phi"]]
    scored = [r for r in phi_rows if r["status"] != "unscorable"]
    gone = [r for r in scored if r["status"] in ("removed", "withheld", "failed")]

    def recall(sel: list[dict]) -> dict:
        sc = [r for r in sel if r["status"] != "unscorable"]
        ok = [r for r in sc if r["status"] in ("removed", "withheld", "failed")]
        return {"recall": round(len(ok) / len(sc), 4) if sc else None, "scored": len(sc), "removed": len(ok),
                "unscorable": len(sel) - len(sc)}

    def group(key) -> dict:
        keys = sorted({key(r) for r in phi_rows})
        return {k: recall([r for r in phi_rows if key(r) == k]) for k in keys}

    negs = [r for r in rows if not r["phi"] and r["status"] != "unscorable"]
    fr = [x for i in infos for x in i["false_redaction"]]
    ta = [i["t_always"] for i in infos]
    tn = [i["t_never"] for i in infos]
    od = [x for i in infos for x in i["outside_diff"]]
    out = {
        "recall": round(len(gone) / len(scored), 4) if scored else None,
        "phi_tokens": len(phi_rows), "scored": len(scored), "removed": len(gone),
        "removed_by": {s: sum(r["status"] == s for r in scored) for s in ("removed", "withheld", "failed")},
        "leaked": sum(r["status"] == "leaked" for r in scored), "unscorable": len(phi_rows) - len(scored),
        "by_kind": group(lambda r: r["kind"]), "by_size": group(lambda r: _band(r["size"])),
        "by_scene": group(lambda r: r["scene"]), "by_format": group(lambda r: r["fmt"]),
        "by_dark_text": group(lambda r: "dark" if r["dark"] else "light"),
        "by_header_mismatch": group(lambda r: "mismatch" if r["header_mismatch"] else "match"),
        "ingest_failures": {"always": sum(not i["always_ok"] for i in infos),
                            "never": sum(not i["never_ok"] for i in infos),
                            "twin": sum(not i["twin_ok"] for i in infos), "cases": len(infos)},
        "negatives": {"kept": sum(r["status"] == "kept" for r in negs), "scored": len(negs),
                      "share_kept": round(sum(r["status"] == "kept" for r in negs) / len(negs), 4) if negs else None,
                      "by_kind": {k: f"{sum(r['status'] == 'kept' for r in negs if r['kind'] == k)}/"
                                  f"{sum(r['kind'] == k for r in negs)}" for k in sorted({r['kind'] for r in negs})},
                      "unscorable": sum(1 for r in rows if not r["phi"] and r["status"] == "unscorable")},
        "false_redaction": {"frames": len(fr), "median": round(_pct(fr, 50), 4) if fr else None,
                            "p90": round(_pct(fr, 90), 4) if fr else None},
        "time_s": {"always_median": round(statistics.median(ta), 2) if ta else None,
                   "never_median": round(statistics.median(tn), 2) if tn else None,
                   "ratio": round(statistics.median(ta) / statistics.median(tn), 2) if ta and tn and
                   statistics.median(tn) > 0 else None},
        "redactor_report": {k: sum(int((i.get("always_burned_in") or {}).get(k) or 0) for i in infos)
                            for k in ("checked_frames", "redacted_frames", "withheld_frames", "timed_out_frames")},
        "harness_check_outside_diff": {"median": round(_pct(od, 50), 5) if od else None,
                                       "max": round(max(od), 5) if od else None,
                                       "cases_over_2pct": sorted({i["idx"] for i in infos
                                                                  if any(x > 0.02 for x in i["outside_diff"])})},
    }
    return out


def print_summary(s: dict) -> None:
    print(f"identifier tokens removed: {s['removed']}/{s['scored']} = {s['recall']}  "
          f"(withheld {s['removed_by']['withheld']}, by failure {s['removed_by']['failed']}; leaked {s['leaked']}; "
          f"unscorable {s['unscorable']})")
    for key in ("by_kind", "by_size", "by_scene", "by_format", "by_dark_text", "by_header_mismatch"):
        print(f"  {key}:")
        for k, v in s[key].items():
            print(f"    {k:24s} {v['removed']:4d}/{v['scored']:<4d} {v['recall']}  (unscorable {v['unscorable']})")
    f = s["ingest_failures"]
    print(f"ingest failures: always {f['always']}, never {f['never']}, twin {f['twin']} of {f['cases']} cases")
    n = s["negatives"]
    print(f"negatives kept: {n['kept']}/{n['scored']} = {n['share_kept']}  by kind {n['by_kind']}"
          f"  (unscorable {n['unscorable']})")
    fr = s["false_redaction"]
    print(f"false redaction over {fr['frames']} shown frames: median {fr['median']}, p90 {fr['p90']}")
    t = s["time_s"]
    print(f"time per ingest: always {t['always_median']} s, never {t['never_median']} s, ratio {t['ratio']}")
    print(f"redactor's own report (always runs): {s['redactor_report']}")
    h = s["harness_check_outside_diff"]
    print(f"harness check (image vs twin differ outside text boxes): median {h['median']}, max {h['max']}, "
          f"cases over 2%: {h['cases_over_2pct']}")


# ------------------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=OFFICIAL_SEED)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--images", type=int, default=N_CASES, help="only the first N cases")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args(argv)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    order = scene_order(args.seed)[: max(0, min(N_CASES, args.images))]
    metas = []
    for i, scene in enumerate(order):
        case_dir = work / "cases" / f"c{i:02d}"
        if case_dir.exists():
            shutil.rmtree(case_dir)
        metas.append(build_case(args.seed, i, scene, case_dir))
    counts: dict[str, int] = {}
    for m in metas:
        for t in m["tokens"]:
            k = "label" if t["role"] == "label" else ("neg" if t["role"].startswith("neg:") else t["role"])
            counts[k] = counts.get(k, 0) + 1
    print(f"built {len(metas)} cases in {work / 'cases'}; tokens: {json.dumps(counts)}; "
          f"scenes: {json.dumps({s: order.count(s) for s in sorted(set(order))})}; "
          f"items rejected (overlap/too big): {sum(m['rejected_items'] for m in metas)}; "
          f"header mismatch cases: {sum(m['header_mismatch'] for m in metas)}")
    if args.build_only:
        return 0
    runs_dir = work / "runs"
    if runs_dir.exists():
        shutil.rmtree(runs_dir)
    jobs = []
    for m in metas:
        cdir = work / "cases" / f"c{m['idx']:02d}"
        scratch = runs_dir / f"c{m['idx']:02d}"
        jobs += [(m["idx"], "always", cdir / m["image"], "always", scratch / "always"),
                 (m["idx"], "never", cdir / m["image"], "never", scratch / "never"),
                 (m["idx"], "twin", cdir / m["twin"], "never", scratch / "twin")]
    results: dict[int, dict] = {m["idx"]: {} for m in metas}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(ingest, path, mode, scratch): (idx, variant) for idx, variant, path, mode, scratch in jobs}
        for n, fut in enumerate(futs, 1):
            idx, variant = futs[fut]
            results[idx][variant] = fut.result()
            if n % 15 == 0:
                print(f"  {n}/{len(jobs)} ingest calls done", flush=True)
    rows: list[dict] = []
    infos: list[dict] = []
    for m in metas:
        r, info = score_case(work / "cases" / f"c{m['idx']:02d}", m, results[m["idx"]])
        rows += r
        infos.append(info)
    summary = summarise(rows, infos)
    print_summary(summary)
    (work / "results.json").write_text(json.dumps({"seed": args.seed, "cases": len(metas), "summary": summary,
                                                   "case_info": infos, "tokens": rows}, ensure_ascii=False, indent=1),
                                       encoding="utf-8")
    print(f"rows: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
