"""Burned-in text: find identifying text in the pixels with OCR (Tesseract), black it out, check again.

Header de-identification cannot reach text burned into the pixels (ultrasound and secondary captures carry the
patient's name, ID and dates in the image itself; so do scanned documents and screenshots). This module runs
Tesseract on the frames that may carry such text (``scan_reason``), several times (the frame as shown with a global
threshold, inverted with an adaptive one, its local contrast, and pages of its print alone: its coloured print over
a grey picture, its print drawn in one exact value), matches what it reads against the identifiers of the header,
collected BEFORE the header is de-identified (``identifier_terms``), and against PHI patterns (dates, long digit
runs, labels such as "MRN:", FAMILY^GIVEN names, name-like words). Words are grouped into printed blocks; a block
holding identifying text is blacked out whole (a banner's name, MRN and dates sit together, and OCR often reads
one word and garbles its neighbour), each region grown along its line while strokes continue, and filled with the
frame's black value. Lines that look like print but that the whole-frame readings left out (small, faint, alone
over anatomy) are found without OCR and read again enlarged, in one mosaic; boxes are widened to the ends of the
lines of print they sit on, and long unread lines at the frame's edges are blacked out. Two learned models
(scene_text.py: a text detector and a line reader) also find and read the frame's lines, as shown and in local
contrast; their words are judged line by line by the same rules, and a word Tesseract reads far taller than the
print beside it counts only where the detector saw a line. A residual check (Tesseract and the models) reads the
redacted frame again: what it finds is blacked out and the frame
read once more; if identifying text is still legible the frame is withheld (its pixels blanked) and the user is
told why; the header facts stay readable. A reading that runs out of time withholds the frames unread (the file
is kept). Annotation (L/R markers, scale bars, units, short numbers) stays.

What is recorded is counts and boxes, never text (``Redaction``, in ``Series.summary()``).

Tesseract is the Debian ``tesseract-ocr`` binary (scripts/system-deps.sh), found through pytesseract. The frame
is piped to it on stdin and the words come back on stdout: pytesseract's own ``image_to_data`` writes the image
and the words to temporary files, and an image with a patient's name must not touch the disk.

Public names
------------
- ``BurnedInPolicy``: ``always`` (every image), ``flagged`` (images that may carry text, the default),
  ``never``.
- ``scan_reason(policy, modality, ...) -> str | None``: why a file's frames are read, or None.
- ``identifier_terms(identifiers, dates) -> tuple[str, ...]``: what to look for in the pixels.
- ``clean_frames(frames, terms, reason, ocr=None, scene_text=None) -> Redaction``: redact a file's frames in place
  (``scene_text``: a ``scene_text.SceneReader`` stand-in; the process's models by default).
- ``TesseractOCR``: the OCR engine (``read(grey, threshold) -> list[Word]``), ``default_ocr()`` the process's
  one; ``OCR`` the protocol a stand-in implements; ``OCRUnavailableError`` (an ``IngestError``) and its
  ``OCRTimeoutError``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from difflib import SequenceMatcher
from typing import Protocol

import numpy as np

from assistant.errors import IngestError
from assistant.imaging.records import Frame
from assistant.imaging.scene_text import SceneReader, TurnedLine, default_scene_text
from assistant.imaging.study import (
    BurnedInAnnotation,
    Modality,
    Redaction,
    RedactionBox,
    Window,
    apply_window,
)

logger = logging.getLogger(__name__)

__all__ = [
    "OCR", "BurnedInPolicy", "OCRTimeoutError", "OCRUnavailableError", "TesseractOCR", "Word", "clean_frames",
    "default_ocr", "identifier_terms", "scan_reason",
]  # fmt: skip


class OCRUnavailableError(IngestError):
    """Tesseract is missing or failed: images that must be checked for burned-in text cannot be."""

    code = "ocr_unavailable"


class OCRTimeoutError(OCRUnavailableError):
    """One reading of an image took longer than the engine's time limit (a large photograph on a busy server)."""

    code = "ocr_timeout"


class BurnedInPolicy(enum.StrEnum):
    """Which images are read for burned-in text (setting ``burned_in_text``)."""

    ALWAYS = "always"
    FLAGGED = "flagged"
    NEVER = "never"

    @classmethod
    def parse(cls, value: object) -> BurnedInPolicy:
        """The Enum for "always", "flagged" or "never" (any case); raises ``ValueError`` otherwise."""
        if isinstance(value, BurnedInPolicy):
            return value
        text = str(value or "").strip().lower()
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"burned_in_text must be always, flagged or never, got {value!r}") from None


# Modalities whose images routinely carry text in the pixels: ultrasound, secondary capture/other, external
# and endoscopic photos, documents, angiography (patient banner on the monitor capture).
_TEXT_MODALITIES = frozenset({Modality.US, Modality.OT, Modality.XC, Modality.ES, Modality.DOC, Modality.XA})
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # PS3.4 B.5: Secondary Capture Image Storage and its multi-frames


def scan_reason(
    policy: BurnedInPolicy | str,
    modality: Modality | str,
    burned_in: BurnedInAnnotation | str = BurnedInAnnotation.UNKNOWN,
    color: bool = False,
    sop_class: str = "",
    source: str = "dicom",
) -> str | None:
    """Why a file's frames are read for burned-in text, or None when they are not.

    ``flagged`` reads: pictures (PNG/JPEG), any file with Burned In Annotation YES (PS3.3 C.7.6.1.1.8: CR/DX
    with labels say so), secondary captures, colour images and US/OT/XC/ES/DOC/XA. A CT or MR slice, or a
    radiograph, without the flag is not read: its pixels come from a detector or a reconstruction, not a screen.
    """
    policy = BurnedInPolicy.parse(policy)
    if policy is BurnedInPolicy.NEVER:
        return None
    if policy is BurnedInPolicy.ALWAYS:
        return "every image is read (burned_in_text = always)"
    flag = BurnedInAnnotation.parse(burned_in)
    kind = Modality.parse(modality)
    if source in ("png", "jpeg"):
        return "pictures may carry any text"
    if flag is BurnedInAnnotation.YES:
        return "the file says its pixels carry burned-in annotation"
    if sop_class.startswith(_SECONDARY_CAPTURE):
        return "secondary captures are screen images"
    if kind in _TEXT_MODALITIES:
        return f"{kind.value} images routinely carry burned-in text"
    if color:
        return "colour images are often screen captures"
    return None


# ---------------------------------------------------------------------------------------------------------
# What to look for


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _norm(text: str) -> str:
    """Upper-case letters and digits only: how OCR words and identifiers are compared."""
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def _date_forms(day: date) -> list[str]:
    """The ways a date is commonly printed on a screen, normalised (separators dropped)."""
    y, m, d = f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"
    mon = _MONTHS[day.month - 1]
    return [y + m + d, d + m + y, m + d + y, d + m + y[2:], m + d + y[2:], d + mon + y, d + mon + y[2:]]


def identifier_terms(identifiers: Iterable[str], dates: Iterable[date] = ()) -> tuple[str, ...]:
    """Normalised strings to look for in the pixels: each identifier, its words (two letters or more: the surnames
    Ng, Li, Wu), and each date in the usual printed forms. Built from the header BEFORE it is de-identified.
    Two-letter terms match only a whole word read surely (``_short_identifier``)."""
    terms: set[str] = set()
    for raw in identifiers:
        whole = _norm(raw)
        if len(whole) >= 3:
            terms.add(whole)
        for part in re.split(r"[\s^,;=/\\.]+", raw):
            word = _norm(part)
            if len(word) >= 3 or (len(word) == 2 and word.isalpha() and word not in _KEEP):
                terms.add(word)
    for day in dates:
        terms.update(_date_forms(day))
    return tuple(sorted(terms, key=len, reverse=True))


# Annotation that must stay: orientation and laterality markers, units, views and common labels of ultrasound
# and radiograph overlays. A word in this list is never blacked out unless it matches an identifier.
_KEEP = frozenset(
    """
    L R LT RT RIGHT LEFT A P S I H F AP PA LAT LATERAL OBL OBLIQUE SUPINE ERECT PRONE PORTABLE UPRIGHT DECUB
    CM MM HZ KHZ MHZ DB FPS BPM CMS MS MI TIS TIB TIC AO GAIN DEPTH FREQ PWR POWER DR MAP CF PRF WF CINE FRAME
    TRANS TRV SAG LONG AX AXIAL COR CORONAL MID MIDLINE PROX DIST UPPER LOWER ANT POST MED MEDIAL INF SUP
    LIVER KIDNEY SPLEEN GB GALLBLADDER CBD PANCREAS AORTA IVC BLADDER UTERUS OVARY THYROID LYMPH NODE BREAST
    TESTIS CAROTID HEART LUNG CHEST ABDOMEN PELVIS HIP KNEE SHOULDER SPINE HAND FOOT WRIST ANKLE ELBOW NECK
    HEAD SKULL VIEW AFTER BEFORE PRE INSP EXP WT STANDING SITTING MARKER SCALE
    """.split()
)
_DATE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{2,4}$|^\d{1,2}[-./ ]?[A-Z]{3}[-./ ]?\d{2,4}$")
_TIME = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")
# "PT" and "PAT" only with their colon or full stop: alone they are read out of the edge of half a line ("EI" cut by
# a box) and are abbreviations of other things (posterior tibial)
_LABEL = re.compile(
    r"^(NAME|PATIENT|MRN|ID|PID|DOB|BIRTH|BORN|ACC|ACCESSION|DATE|DOS|HOSP|HOSPITAL)\W*$|^(PT|PAT)[:.]\W*$"
)
# Labels of the staff's names, initials or user ids (PS3.15 Table E.1-1 removes OperatorsName, PerformingPhysicianName,
# ReferringPhysicianName, PhysiciansOfRecord): what follows them is a person. Short ones count only with their colon
# or full stop ("RT:" labels a technologist, "RT" is the right side; "Dr." a doctor).
_STAFF_LABEL = re.compile(
    r"^(TECH|TECHNOLOGIST|RADIOGRAPHER|OPERATOR|OPERATORS|SONOGRAPHER|PHYSICIAN|PHYS|RADIOLOGIST|REFERRING|REFERRER"
    r"|PERFORMER)\W*$|^(RT|OP|BY|DR|REF|USER|RAD|SONO|READER|TECHID)[:.]$"
)


@dataclass(frozen=True)
class Word:
    """One word Tesseract read: its box in the image it was given, its text and confidence (0-100)."""

    left: int
    top: int
    width: int
    height: int
    text: str
    confidence: float
    line: tuple[int, int, int]  # (block, paragraph, line): words of one printed line share it


def _matches_identifier(word: str, terms: Sequence[str]) -> bool:
    """Whether an OCR word is one of the identifiers, allowing OCR slips (one wrong letter in five)."""
    if len(word) < 3:
        return False
    for term in terms:
        if len(term) >= 4 and (term in word or (len(word) >= 4 and word in term)):
            return True
        if word == term:
            return True
        if len(term) >= 5 and abs(len(term) - len(word)) <= max(2, len(term) // 4):
            if SequenceMatcher(None, word, term, autojunk=False).ratio() >= 0.8:
                return True
    return False


# Labels of acquisition values a console prints before them (kV 68, mA 661, LAO 28, CRA 17, W 350, L 40, TR 4000,
# Se 3, Im 12): the scene-text reader drops the spaces between them ("kV68mA661", "LAO28CRA17")
_TECHNIQUE_LABELS = frozenset(
    """
    KV KVP MA MAS MS LAO RAO CRA CAU CRAN CAUD LPO RPO W L WW WL WC C TR TE TI TA ET SL ST THK FOV SE IM IMG EC NEX
    NSA BW FA F FR FPS HZ MI TIS TIB TIC GN G DR D CM MM MBQ MCI DLP EI DAP SNR Z ZOOM
    """.split()
)
_TECHNIQUE_VALUE = r"\d{1,4}(?:[.,]\d{1,2})?"
_RUN_TOGETHER_PAIR = rf"([A-Z]{{1,4}})[:=]?({_TECHNIQUE_VALUE})"
_RUN_TOGETHER = re.compile(rf"(?P<lead>{_TECHNIQUE_VALUE})?(?P<pairs>(?:{_RUN_TOGETHER_PAIR}){{1,6}})")


def _run_together_values(text: str) -> bool:
    """Whether ``text`` is acquisition values with their labels run together ("kV68mA661", "LAO28CRA17",
    "W350L40", "28CRA17" cut from its label, "CRA1" from its value's last digit): each label a console's
    (``_TECHNIQUE_LABELS``), each value four digits at most; two values, or one after a label of two letters or
    more. An ID ("A6459977", "MRN12345678") has one long run of digits or a label of its own."""
    upper = text.upper().strip(".,;()[]{}'\"")
    match = _RUN_TOGETHER.fullmatch(upper)
    if not match:
        return False
    pairs = re.findall(_RUN_TOGETHER_PAIR, match["pairs"])
    if not all(label in _TECHNIQUE_LABELS for label, _ in pairs):
        return False
    return len(pairs) + (match["lead"] is not None) >= 2 or len(pairs[0][0]) >= 2


_FRACTION = re.compile(r"^(\d{1,4})/(\d{1,4})$")


def _image_index(text: str) -> bool:
    """Whether ``text`` is a viewer's image or frame index, "38/142" (image 38 of 142): a fraction no larger than
    one that cannot be part of a date (a day or month before a month, a month before a year)."""
    match = _FRACTION.match(text.strip(".,;:()[]{}'\""))
    if not match:
        return False
    number, total = int(match[1]), int(match[2])
    month_year = 1 <= number <= 12 and 1900 <= total <= 2099
    day_month = 1 <= number <= 31 and 1 <= total <= 12
    return 0 < number <= total and not month_year and not day_month


def _is_phi_pattern(text: str, confidence: float) -> bool:
    """Dates, long digit runs (IDs, accession and phone numbers), and name-like words."""
    upper = text.upper().strip(".,;:()[]{}'\"")
    if _run_together_values(text) or _image_index(text):
        return False
    if _DATE.match(upper) or _TIME.match(upper):
        return True
    digits = sum(c.isdigit() for c in upper)
    if digits >= 5:
        return True
    if digits >= 4 and len(re.findall(r"\d[-./]\d", upper)) >= 2:  # a date OCR garbled ("17/O3/1951")
        return True
    letters = _norm(upper)
    if letters in _KEEP or len(letters) < 3:
        return False
    # Name-like: a word of letters that is not annotation vocabulary, read with some confidence. Over anatomy
    # Tesseract reads texture as short low-confidence noise, which this leaves alone.
    alpha = sum(c.isalpha() for c in letters)
    return alpha >= 3 and alpha >= len(letters) - 1 and confidence >= 55 and text[:1].isupper()


# Most of a date: "21/07/", "/07/1967", and a month's name with a date separator and digits, or between date
# separators ("01-Sep", "Sep-1972", "-Sep-" of "01-Sep-1972" whose digits OCR did not read)
_PARTIAL_DATE = re.compile(
    r"\d{1,4}(?P<a>[-./])\d{1,2}(?P=a)|(?P<b>[-./])\d{1,2}(?P=b)\d{2,4}"  # one separator twice: "-0.74" is a value
    + r"|(\d{1,2}|^|\W)[-./]{m}[-./]|\d{1,2}[-./]{m}(\W|$)|{m}[-./]\d{2,4}".replace("{m}", f"({'|'.join(_MONTHS)})")
)


def _is_strong_pattern(text: str) -> bool:
    """A date (or most of one), or an ID-like number: identifying whatever the header says (not values run
    together, ``_run_together_values``)."""
    upper = text.upper().strip(".,;:()[]{}'\"")
    if _run_together_values(text) or _image_index(text):
        return False
    return bool(_DATE.match(upper) or _PARTIAL_DATE.search(upper)) or sum(c.isdigit() for c in upper) >= 5


_CARET_NAME = re.compile(r"[A-Za-z]{2,}[\^*~“”\"'`]+[A-Za-z]{2,}")  # DICOM's FAMILY^GIVEN, caret misread


def _strength(word: Word, terms: Sequence[str]) -> int:
    """2: identifying (a header identifier, a date, an ID-like number, a label, a FAMILY^GIVEN name); 1: name-like
    (a capitalised word that is not annotation vocabulary); 0: anything else."""
    norm = _norm(word.text)
    if not norm:
        return 0
    if _matches_identifier(norm, terms) or _is_strong_pattern(word.text) or _CARET_NAME.search(word.text):
        return 2
    if _label(word):
        return 2  # "MRN:", "DOB", "ID", "Tech:" as printed; texture read as "id" at low confidence is not a label
    if _short_identifier(norm, word.confidence, terms):
        return 2
    if _institution_word(norm, word.confidence):
        return 2  # "HOSPITAL", "Klinikum": the institution's name, printed without a header to match it against
    if _MARKER_PAIR.match(word.text.strip()):
        return 0  # "LoL": the side markers of two views side by side (a whole-body scan's anterior and posterior)
    return 1 if _is_phi_pattern(word.text, word.confidence) and not _misread_annotation(norm, word.confidence) else 0


_MARKER_PAIR = re.compile(r"^[LR][o.·•:]?[LR]$")


def _label_text(text: str) -> bool:
    """Whether ``text`` is a patient or staff label ("MRN:", "Tech:")."""
    upper = text.upper().strip()
    return bool(_LABEL.match(upper) or _STAFF_LABEL.match(upper))


def _label(word: Word) -> bool:
    """A patient or staff label as printed: capitalised, read with some confidence."""
    return _label_text(word.text) and word.text[:1].isupper() and word.confidence >= 60


def _staff_label(word: Word) -> bool:
    """A staff label ("Tech:", "By:") read as a label (``_label``)."""
    return _label(word) and bool(_STAFF_LABEL.match(word.text.upper().strip()))


def _short_identifier(norm: str, confidence: float, terms: Sequence[str]) -> bool:
    """A two-letter header identifier (a surname such as Ng) read surely as a whole word. Texture read as two
    letters at low confidence could match one by chance, and a match in the residual check withholds the image."""
    return len(norm) == 2 and confidence >= _MARK_CONFIDENCE and norm in terms


# Words of institution names (PS3.15 Table E.1-1 lists the institution as identifying): a line that holds one is
# an institution's name, blacked out with its block when no header names the institution.
_INSTITUTION = frozenset(
    """
    HOSPITAL HOSPITALS HOSP KLINIKUM KLINIK CLINIC CLINICS INFIRMARY MEDICAL CENTER CENTRE CTR HEALTH HEALTHCARE
    IMAGING RADIOLOGY UNIVERSITY INSTITUTE SANATORIUM HOPITAL OSPEDALE HOSPITAAL ZIEKENHUIS KRANKENHAUS
    """.split()
)


def _institution_word(norm: str, confidence: float) -> bool:
    """An institution word (``_INSTITUTION``), or OCR's slip of one of five letters or more, read with some
    confidence."""
    if len(norm) < 3 or confidence < _LINK_CONFIDENCE:
        return False
    if norm in _INSTITUTION:
        return True
    return len(norm) >= 5 and any(
        len(w) >= 5 and abs(len(w) - len(norm)) <= 2 and SequenceMatcher(None, norm, w, autojunk=False).ratio() >= 0.8
        for w in _INSTITUTION
    )


def _near(a: Word, b: Word) -> bool:
    """Whether two words belong to one printed block: side by side on a line, or on stacked lines."""
    h = max(a.height, b.height, 1)
    if max(a.height, b.height) > 2.5 * max(1, min(a.height, b.height)):
        return False  # a different size of text (or noise): another block
    v_overlap = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    h_gap = max(a.left, b.left) - min(a.left + a.width, b.left + b.width)
    if v_overlap >= 0.4 * min(a.height, b.height) and h_gap <= 1.5 * h:
        return True
    v_gap = max(a.top, b.top) - min(a.top + a.height, b.top + b.height)
    aligned = h_gap <= 0 or abs(a.left - b.left) <= 1.5 * h or abs(a.left + a.width - b.left - b.width) <= 1.5 * h
    return aligned and v_gap <= 1.0 * h


def _blocks(words: Sequence[Word]) -> list[list[Word]]:
    """Words grouped into printed blocks (a banner of stacked lines is one block)."""
    parent = list(range(len(words)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(words)):
        for j in range(i + 1, len(words)):
            if _near(words[i], words[j]):
                parent[root(i)] = root(j)
    groups: dict[int, list[Word]] = {}
    for i, w in enumerate(words):
        groups.setdefault(root(i), []).append(w)
    return list(groups.values())


def _same_line(a: Word, b: Word) -> bool:
    """Whether two words sit on one printed line with at most a word or two unread between them (3 text heights)."""
    v_overlap = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    h_gap = max(a.left, b.left) - min(a.left + a.width, b.left + b.width)
    return v_overlap >= 0.5 * min(a.height, b.height) and h_gap <= 3 * max(a.height, b.height, 1)


def _lines(words: Sequence[Word]) -> list[list[Word]]:
    """Words grouped into line pieces (``_same_line``): "Patient: [a name OCR did not read] CHINEDU" is one."""
    groups: list[list[Word]] = []
    for w in sorted(words, key=lambda w: w.left):
        for group in groups:
            if any(_same_line(w, other) for other in group):
                group.append(w)
                break
        else:
            groups.append([w])
    return groups


@dataclass(frozen=True)
class _Region:
    """A rectangle to black out, in the coordinates of the image OCR read, and its text height."""

    left: int
    top: int
    right: int
    bottom: int
    height: int
    identifying: bool = False  # from a block holding identifying text: its stacked neighbour lines go with it
    stack: bool = True  # whether they do: not when every identifying word was read unsurely (``_STACK_CONFIDENCE``)


def _region(words: Sequence[Word], identifying: bool = False) -> _Region:
    heights = sorted(w.height for w in words)
    return _Region(
        min(w.left for w in words), min(w.top for w in words), max(w.left + w.width for w in words),
        max(w.top + w.height for w in words), heights[len(heights) // 2], identifying,
    )  # fmt: skip


def _strokes(strip: np.ndarray, threshold: float = 60) -> float:
    """The share of a strip's pixels far (> ``threshold`` grey levels) from its median: ~0.1-0.4 on a line of text,
    ~0 on flat background or smooth anatomy."""
    if strip.size == 0:
        return 0.0
    return float((np.abs(strip.astype(np.int16) - int(np.median(strip))) > threshold).mean())


def _flat(strip: np.ndarray) -> bool:
    """Whether most of a strip is one level (a console band, a screen's border): the median pixel lies within 6
    grey levels of the strip's median. Text on it leaves that so; anatomy and its texture do not."""
    if strip.size == 0:
        return False
    s = strip.astype(np.int16)
    return float(np.median(np.abs(s - int(np.median(s))))) <= 6


def _ink_threshold(grey: np.ndarray, region: _Region) -> float:
    """How far from the background a region's strokes are, halved (15-60 grey levels): text drawn 30 levels from
    its background (grey on grey) is followed as far as bright text is."""
    inside = grey[max(0, region.top) : region.bottom, max(0, region.left) : region.right].astype(np.int16)
    if inside.size == 0:
        return 60.0
    contrast = float(np.percentile(np.abs(inside - int(np.median(inside))), 95))
    return float(np.clip(0.5 * contrast, 15, 60))


def _texty(strip: np.ndarray, threshold: float) -> bool:
    """Whether a strip continues a line of text: strokes (``threshold`` from its median) on >= 4% of it; below the
    default 60 levels only on a flat background (faint "strokes" over anatomy are its texture)."""
    if threshold < 60 and not _flat(strip):
        return _strokes(strip) >= 0.04
    return _strokes(strip, threshold) >= 0.04


def _extend(grey: np.ndarray, region: _Region) -> _Region:
    """``region`` grown left and right along its line while the next strip still holds strokes: OCR often boxes
    "07.15.2" of "07.15.2015", and the characters it dropped are still there. A region of identifying text is
    also grown up and down, a line at a time, while the next line on a flat background holds strokes: consoles print
    stacked lines (name, ID, dates, accession), and OCR often reads one and misses the next."""
    step = max(2, region.height // 2)
    limit = 6 * region.height
    threshold = _ink_threshold(grey, region)
    top, bottom = max(0, region.top), min(grey.shape[0], region.bottom)
    left, right = region.left, region.right
    while right - region.right < limit and right < grey.shape[1]:  # one blank step (a space) is crossed
        if not _texty(grey[top:bottom, right : right + step], threshold):
            if not _texty(grey[top:bottom, right + step : right + 2 * step], threshold):
                break
            right += step
        right += step
    while region.left - left < limit and left > 0:
        if not _texty(grey[top:bottom, max(0, left - step) : left], threshold):
            if not _texty(grey[top:bottom, max(0, left - 2 * step) : max(0, left - step)], threshold):
                break
            left -= step
        left -= step
    left, right = max(0, left), min(grey.shape[1], right)
    if region.identifying and region.stack:
        top, bottom = _stack(grey, left, right, top, bottom, region.height, threshold)
    return _Region(left, top, right, bottom, region.height, region.identifying, region.stack)


def _line_like(strip: np.ndarray, threshold: float, height: int) -> bool:
    """Whether a strip one text line tall looks like printed text on a flat background: strokes on 3-50% of it,
    and many of them across it (rows switch between stroke and background at least once per text height of
    width, as glyphs do; the edge of a body or an organ switches once or twice over the whole width)."""
    if strip.size == 0 or not _flat(strip):
        return False
    ink = np.abs(strip.astype(np.int16) - int(np.median(strip))) > threshold
    share = float(ink.mean())
    if not 0.03 <= share <= 0.5:
        return False
    switches = float(np.count_nonzero(ink[:, 1:] != ink[:, :-1], axis=1).mean())
    return switches >= strip.shape[1] / max(1, height)


_STACK_LINES = 6  # lines added above and below a block of identifying text, at most


def _stack(
    grey: np.ndarray, left: int, right: int, top: int, bottom: int, height: int, threshold: float
) -> tuple[int, int]:
    """``top`` and ``bottom`` of a block grown by the lines of text stacked right above and below it: a strip of
    one line's height, within 1.2 lines of the block, on a flat background, holding strokes."""
    h = max(2, height)
    gap = max(1, int(1.2 * h))
    for _ in range(_STACK_LINES):  # downwards
        found = False
        for offset in range(0, gap + 1, max(1, h // 3)):
            strip = grey[bottom + offset : bottom + offset + h, left:right]
            if strip.shape[0] >= h // 2 and _line_like(strip, threshold, h):
                bottom, found = min(grey.shape[0], bottom + offset + h), True
                break
        if not found:
            break
    for _ in range(_STACK_LINES):  # upwards
        found = False
        for offset in range(0, gap + 1, max(1, h // 3)):
            strip = grey[max(0, top - offset - h) : max(0, top - offset), left:right]
            if strip.shape[0] >= h // 2 and _line_like(strip, threshold, h):
                top, found = max(0, top - offset - h), True
                break
        if not found:
            break
    return top, bottom


_BORDER = 0.12  # of the height: the top and bottom bands where consoles and viewers print their header lines


def _misread_annotation(norm: str, confidence: float) -> bool:
    """Annotation vocabulary as printed, or an unsure read close to it ("PORTABLI"): not a name. A sure read of a
    word merely like one (the surnames Medina, Powers, Hart) stays name-like."""
    return norm in _KEEP or (confidence < _MARK_CONFIDENCE and _like_annotation(norm))


def _like_annotation(norm: str) -> bool:
    """A word that is, or OCR's slip of, annotation vocabulary of four letters or more ("PORTABIE")."""
    return norm in _KEEP or any(
        len(keep) >= 4 and SequenceMatcher(None, norm, keep, autojunk=False).ratio() >= 0.75 for keep in _KEEP
    )


def _border_text(word: Word, rows: int) -> bool:
    """A word of four characters or more, read with some confidence, in the top or bottom band of the image, that is
    not annotation: there consoles print names and institutions, and OCR reads faint or small ones at low confidence
    (a name read as "famamo" at 37): it is blacked out as a name-like word is."""
    norm = _norm(word.text)
    if len(norm) < 4 or word.confidence < _BORDER_CONFIDENCE or rows <= 0:
        return False
    if sum(c.isalnum() for c in word.text) < 0.75 * len(word.text) or _like_annotation(norm):
        return False
    if _run_together_values(word.text):  # "CRA1", "28CRA17": a corner's values, their spaces dropped
        return False
    parameter = _PARAMETER.match(word.text.strip())
    if parameter and not _LABEL.match(parameter.group(1).upper()):  # "DOB:1961" is a label and a year
        return False
    digits, letters = sum(c.isdigit() for c in norm), sum(c.isalpha() for c in norm)
    if not parameter and digits <= 4 and letters < 0.5 * len(norm):  # "1270", "43.7mm": values, not names
        return False
    return word.top < _BORDER * rows or word.top + word.height > (1 - _BORDER) * rows


_BORDER_CONFIDENCE = 30
# A technical parameter as viewers print it in their corners: a short label, a colon or equals sign, a number of
# at most four digits ("TR:4000", "W:1639", "Se:4", "FOV:230", "ST=5.0"). Not a name; an ID or a date has more digits
# (caught by ``_is_strong_pattern`` whatever its label).
_PARAMETER = re.compile(r"^([A-Za-z]{1,5})[:=]\s?[-+]?(?=(?:\D*\d){1,4}\D*$)[\d.,]+[A-Za-z%]{0,3}$")


def _to_redact(
    words: Sequence[Word], terms: Sequence[str], rows: int = 0, tallest: float = float("inf")
) -> tuple[list[_Region], bool, bool]:
    """Regions to black out, whether any identifying text was among them, and whether a header identifier or an
    ID-like number was.

    A block (``_blocks``) holding identifying text goes whole: a banner's name, MRN and dates sit together, and
    OCR often reads one of its words and garbles the next. A name-like word alone goes alone. A word taller than
    ``tallest`` (``_tallest_print``, in the reading's pixels) is texture unless read surely as an identifier.
    """
    spaced = _spaced_dates(words)
    scored = [
        (w, max(_strength(w, terms), int(_border_text(w, rows))) if w.height <= tallest else _giant_strength(w, terms))
        if id(w) not in spaced
        else (w, 2)
        for w in words
        if _norm(w.text) and (w.height <= tallest or w.confidence >= _GIANT_CONFIDENCE)
    ]
    value_labels = _labelled_values(words)
    scored = [(w, 0 if score == 1 and id(w) in value_labels else score) for w, score in scored]
    # Texture read as text (short words at low confidence) may not link blocks: it would chain a banner to the
    # anatomy next to it.
    text = [w for w, score in scored if score or w.confidence >= _LINK_CONFIDENCE]
    strength = {id(w): score for w, score in scored}
    regions: list[_Region] = []
    strong = identified = False
    for block in _blocks(text):
        best = max(strength[id(w)] for w in block)
        if best == 2 and all(_staff_label(w) for w in block if strength[id(w)] == 2):
            # only a staff label ("Tech:", "Operator:"): its line goes (the initials or name after it), not the
            # block's other lines: consoles stack exposure values (kVp, mAs, EI) under the technologist's initials
            strong = True
            labelled = [line for line in _lines(block) if any(_staff_label(w) for w in line)]
            regions.extend(_labelled_line(line) for line in labelled)
            regions.extend(
                _region([w]) for w in block if strength[id(w)] == 1 and not any(w in line for line in labelled)
            )
        elif best == 2:
            strong = True
            identified = identified or any(
                _matches_identifier(_norm(w.text), terms) or sum(c.isdigit() for c in w.text) >= 5 for w in block
            )
            whole = _region(block, identifying=True)
            if all(w.confidence < _STACK_CONFIDENCE for w in block if strength[id(w)] == 2):
                # texture read as a number ("686660" at 51 over an MR, 50 px tall) stacked "lines" of anatomy
                # over the whole frame; print read this unsurely is blacked out where it was read
                whole = dataclasses.replace(whole, stack=False)
            inked = sum(w.width * w.height for w in block)
            if (whole.right - whole.left) * (whole.bottom - whole.top) <= _SPARSE * inked:
                regions.append(whole)
            else:  # a sparse block (words far apart): line by line, not the space between its lines
                kept = [w for w in block if strength[id(w)] or w.confidence >= _LINK_CONFIDENCE]
                regions.extend(
                    _region(line, identifying=any(strength[id(w)] == 2 for w in line)) for line in _lines(kept)
                )
        elif best == 1:
            regions.extend(_region([w]) for w in block if strength[id(w)] == 1)
    return regions, strong, identified


_STACK_CONFIDENCE = 60  # an identifying block read less surely than this takes no stacked lines with it
_SPACED_CONFIDENCE = 50  # each part of a date printed with spaces is read at least this surely


def _spaced_dates(words: Sequence[Word]) -> set[int]:
    """ids of words that are the parts of a date printed with spaces, three words side by side on a line ("24 05
    2017", "'23 05 22", "2017 05 24", "24 MAY 2017"): each part alone is a short number, not a date."""
    found: set[int] = set()
    sure = sorted((w for w in words if w.confidence >= _SPACED_CONFIDENCE), key=lambda w: (w.line, w.left))
    for a, b, c in zip(sure, sure[1:], sure[2:], strict=False):
        if not (_beside(a, b) and _beside(b, c)):
            continue
        parts = [w.text.strip(".,;:'‘’()") for w in (a, b, c)]
        if _date_parts(*parts):
            found.update((id(a), id(b), id(c)))
    return found


def _labelled_values(words: Sequence[Word]) -> set[int]:
    """The ids of words that are a console's label of the value printed right after them ("LAO 28", "CRA 17", "kVp
    103"; ``_TECHNIQUE_LABELS``): not name-like, though capitalised words of three letters."""
    return {
        id(a)
        for a in words
        if _norm(a.text) in _TECHNIQUE_LABELS
        and any(_beside(a, b) and (_value(b.text) or _run_together_values(b.text)) for b in words if b is not a)
    }


def _beside(a: Word, b: Word) -> bool:
    """Whether ``b`` follows ``a`` on its line, at most two text heights to its right."""
    h = max(a.height, b.height, 1)
    v_overlap = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    gap = b.left - (a.left + a.width)
    return v_overlap >= 0.5 * min(a.height, b.height) and -0.2 * h <= gap <= 2 * h


def _date_parts(first: str, middle: str, last: str) -> bool:
    """Whether three printed parts make a calendar date: day month year either way round, year first, or the month
    by name in the middle."""
    if not (first.isdigit() and last.isdigit()):
        return False
    if middle.upper()[:3] in _MONTHS and middle.isalpha() and len(middle) <= 9:
        return len(first) <= 2 and 1 <= int(first) <= 31 and len(last) in (2, 4)
    if not middle.isdigit() or len(middle) > 2:
        return False
    m = int(middle)
    if len(first) == 4:  # year month day
        return 1 <= m <= 12 and len(last) <= 2 and 1 <= int(last) <= 31
    if len(first) > 2 or len(last) not in (2, 4) or (len(last) == 2 and (len(first), len(middle)) != (2, 2)):
        return False  # two-digit years only with every part zero-padded ("24 05 17", not "12 5 30")
    f = int(first)
    return (1 <= f <= 31 and 1 <= m <= 12) or (1 <= f <= 12 and 1 <= m <= 31)


def _labelled_line(line: Sequence[Word]) -> _Region:
    """A line of words with a staff label, as tall as its label: Tesseract boxes two initials after "Tech:" with the
    noise under them (three lines tall), and the padding in those heights took the exposure lines below."""
    labels = [w for w in line if _staff_label(w)]
    whole = _region(line)
    top, bottom = min(w.top for w in labels), max(w.top + w.height for w in labels)
    return _Region(whole.left, top, whole.right, bottom, max(w.height for w in labels))


def _tallest_print(words: Sequence[Word]) -> float:
    """The height above which a word is far taller than the print read surely beside it (``_GIANT`` times the
    median of three or more words read at ``_MARK_CONFIDENCE``): tiles of a montage of slices and texture read as
    "words" four to seven times the height of the labels ("®G88866" at confidence 0 made a block of them identifying,
    and the block's padding, in text heights, blacked out the whole frame; "WEES" and "Vig" over an abdomen)."""
    sure = sorted(w.height for w in words if w.confidence >= _MARK_CONFIDENCE)
    return _GIANT * sure[len(sure) // 2] if len(sure) >= 3 else float("inf")


def _unscaled(words: Sequence[Word], scale: float) -> list[Word]:
    """``words`` read at ``scale``, their heights in frame pixels (for ``_tallest_print``)."""
    return [Word(w.left, w.top, w.width, round(w.height / scale), w.text, w.confidence, w.line) for w in words]


def _giant_strength(word: Word, terms: Sequence[str]) -> int:
    """A giant word (``_tallest_print``) read surely counts only as a header identifier, a date or an ID-like
    number (large print); merely name-like, it is texture."""
    return 2 if _strength(word, terms) == 2 and not _label_text(word.text) else 0


_GIANT = 4.0  # times the median height of the words read surely (confidence >= _MARK_CONFIDENCE)
_GIANT_CONFIDENCE = 50  # a giant word read less surely is left out altogether
_LINK_CONFIDENCE = 25  # Tesseract's word confidence (0-100) below which a word does not join a block
_SPARSE = 4.0  # a block whose rectangle is more than this many times its words' area is redacted word by word


# ---------------------------------------------------------------------------------------------------------
# OCR


class OCR(Protocol):
    """What reads words from an 8-bit grey image."""

    def read(self, grey: np.ndarray, threshold: int | None = None) -> list[Word]: ...


class TesseractOCR:
    """Tesseract through its command line (found by pytesseract), fed on stdin, read on stdout (no temp files).

    Page segmentation mode 11 ("sparse text"): burned-in text is scattered words, not a page.
    """

    def __init__(self, timeout_s: float = 60.0, threads: int = 1, threshold: int = 2) -> None:
        self.timeout_s = timeout_s
        self.threads = threads
        self.threshold = threshold  # 0 Otsu, 1 Leptonica adaptive Otsu, 2 Sauvola
        self._version: str | None = None
        self._lock = threading.Lock()

    @property
    def command(self) -> str:
        import pytesseract

        return str(pytesseract.pytesseract.tesseract_cmd)

    @property
    def version(self) -> str:
        """ "tesseract 5.3.0"-style name of the engine (raises ``OCRUnavailableError`` when missing)."""
        with self._lock:
            if self._version is None:
                import pytesseract

                try:
                    self._version = f"tesseract {pytesseract.get_tesseract_version()}"
                except (pytesseract.TesseractNotFoundError, OSError) as exc:
                    raise OCRUnavailableError(_MISSING) from exc
            return self._version

    def read(self, grey: np.ndarray, threshold: int | None = None) -> list[Word]:
        """Words in ``grey`` ((rows, cols) uint8), boxes in its pixel coordinates; ``threshold`` picks Tesseract's
        binarisation (0 Otsu, 1 adaptive Otsu, 2 Sauvola; None: this engine's)."""
        method = self.threshold if threshold is None else threshold
        if grey.ndim != 2 or grey.dtype != np.uint8:
            raise ValueError(f"OCR needs a (rows, cols) uint8 image, got {grey.shape} {grey.dtype}")
        rows, cols = grey.shape
        pgm = b"P5\n%d %d\n255\n" % (cols, rows) + np.ascontiguousarray(grey).tobytes()  # PNM: no encoding cost
        # Sauvola's adaptive threshold (thresholding_method 2, Tesseract 5): text over a bright or uneven
        # background survives binarisation, where the global Otsu threshold loses it.
        command = [
            self.command, "stdin", "stdout", "--psm", "11", "-l", "eng", "-c", f"thresholding_method={method}",
            "tsv",
        ]  # fmt: skip
        try:
            done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
                command, input=pgm, capture_output=True, timeout=self.timeout_s,
                env={"OMP_THREAD_LIMIT": str(self.threads), "PATH": "/usr/bin:/bin"},
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise OCRUnavailableError(_MISSING) from exc
        except subprocess.TimeoutExpired as exc:
            raise OCRTimeoutError(
                f"Reading the image for burned-in text took longer than {self.timeout_s:.0f} s; it was not shown."
            ) from exc
        if done.returncode != 0:
            logger.warning("tesseract exited with status %d", done.returncode)  # stderr may quote nothing useful
            raise OCRUnavailableError("The text check of the image (Tesseract) failed; the image was not shown.")
        return _parse_tsv(done.stdout.decode("utf-8", "replace"))


_MISSING = (
    "Tesseract is not installed: images that may carry burned-in patient details cannot be checked "
    "(install tesseract-ocr, or set burned_in_text = never to accept the risk)."
)


def _parse_tsv(tsv: str) -> list[Word]:
    words: list[Word] = []
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue
        try:
            left, top, width, height = (int(c) for c in cells[6:10])
            confidence = float(cells[10])
            line = (int(cells[2]), int(cells[3]), int(cells[4]))
        except ValueError:
            continue
        words.append(Word(left, top, width, height, cells[11].strip(), confidence, line))
    return words


_DEFAULT_OCR: TesseractOCR | None = None
_DEFAULT_LOCK = threading.Lock()


def default_ocr() -> TesseractOCR:
    """The process's Tesseract engine (created on first use, never at import)."""
    global _DEFAULT_OCR
    with _DEFAULT_LOCK:
        if _DEFAULT_OCR is None:
            _DEFAULT_OCR = TesseractOCR()
        return _DEFAULT_OCR


# ---------------------------------------------------------------------------------------------------------
# Frames

# Tesseract reads text best when capitals are 20-40 px tall (its documentation, "Improving the quality of the
# output": ~300 dpi). Burned-in text is drawn for a screen, from ~10 px tall, whatever the size of the image, so
# every image is read enlarged 2x (small ones to a short edge of about 1000 px, up to 3x), as long as its long
# edge stays within 4800 px; none is shrunk below its own size. A radiograph of 2000 px carries 10-12 px labels:
# shrunk to 1000 px they are 5 px tall and Tesseract finds no box at all (the held-out CR images).
_OCR_SHORT_EDGE = 1000
_OCR_MIN_SCALE = 2.0
_OCR_MAX_EDGE = 4800
_CONTRAST_MAX_PIXELS = 4_000_000  # the local-contrast reading (noisy over anatomy, slow) is read at most this big
_MAX_UPSCALE = 3.0
_PAD = 0.45  # of the text height, above and below a region: anti-aliasing, descenders, accents
_PAD_X = 1.2  # of the text height, left and right: about a character OCR left out of its box, and its edge
_PAD_X_IDENTIFYING = 1.6  # for identifying text: two characters (OCR boxed "Hospi" of a faint "Hospital")
_SCENE_PAD = (0.15, 0.6)  # of a scene-text box's height, above and below, and left and right


def _grey_for_ocr(frame: Frame) -> np.ndarray:
    """The frame as 8-bit grey for reading: colour by luminance, monochrome through its own window (or the
    0.5-99.5 percentiles of its values), MONOCHROME1 inverted as shown."""
    values = frame.values
    if values.ndim == 3:
        rgb = values.astype(np.float32)
        grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]  # ITU-R BT.601 luma
        return np.clip(grey + 0.5, 0, 255).astype(np.uint8)
    window = frame.file_windows[0] if frame.file_windows else frame.natural
    if window is None:
        step = max(1, int(np.sqrt(values.size / 65536)))
        sample = values[::step, ::step].astype(np.float64)
        sample = sample[np.isfinite(sample)]
        lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5])) if sample.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        window = Window((lo + hi) / 2 + 0.5, hi - lo + 1, "ocr")
    return apply_window(values, window, invert=frame.invert)


def _local_contrast(frame: Frame) -> np.ndarray:
    """The frame as dark strokes on white wherever it differs from its neighbourhood, whatever the polarity and
    colour: 255 - gain * |value - local mean|, per channel (the largest), for text a few grey levels from its
    background (grey on grey, coloured text as light as the picture under it, text over anatomy)."""
    planes = _planes(frame)
    return np.clip(255.0 - _CONTRAST_GAIN * _local_difference(planes) + 0.5, 0, 255).astype(np.uint8)


def _planes(frame: Frame) -> list[np.ndarray]:
    """The frame's 8-bit planes as shown: R, G, B of a colour frame, the windowed grey of a monochrome one."""
    values = frame.values
    if values.ndim == 3:
        return [np.ascontiguousarray(values[..., c]).astype(np.uint8) for c in range(3)]
    return [_grey_for_ocr(frame)]


_COLOUR_SPREAD = 24  # grey levels between a pixel's channels for it to count as coloured (JPEG's noise is less)
_COLOUR_SHARE = 0.0005  # of the pixels: this many coloured, and a frame holds coloured print or picture


def _coloured(planes: Sequence[np.ndarray]) -> bool:
    """Whether a frame's planes hold colour: a grey picture stored as RGB (a scanned page, a screenshot of a grey
    viewer) is looked at in its grey once, not twice (``_print_lines``)."""
    if len(planes) < 3:
        return False
    step = max(1, int(np.sqrt(planes[0].size / 262144)))  # about 512 x 512 pixels looked at
    sample = np.stack([p[::step, ::step] for p in planes]).astype(np.int16)
    spread = sample.max(axis=0) - sample.min(axis=0)
    return float((spread > _COLOUR_SPREAD).mean()) >= _COLOUR_SHARE


_CHROMA_MAX_SHARE = 0.35  # of the pixels coloured at most: beyond, the colour is the picture's (a photograph)
_CHROMA_MIN_PIXELS = 40  # coloured pixels at least: a short name in thin strokes (JPEG noise on grey has none)
_CHROMA_FULL = 48.0  # channel spread shown black at least (a saturated overlay's spread is 150-250)


def _chroma(frame: Frame) -> np.ndarray | None:
    """A colour frame's coloured print alone, dark on white: 255 minus its channel spread (max - min), stretched so
    the overlay's typical spread shows black. Yellow, green or orange print over a grey radiograph or ultrasound is
    as light as the ribs under it in every plane, but the grey picture has no spread at all: here it is a clean page
    of print. A JPEG stores colour at half resolution (4:2:0, and 4:2:2 in ultrasound DICOM): its spread is a blur
    of the letters, sharpened along the full-resolution luma (``_guided``). None for a grey frame or one mostly in
    colour (a photograph, where the spread is the picture)."""
    values = frame.values
    if values.ndim != 3 or values.shape[-1] < 3 or values.dtype != np.uint8:
        return None
    rgb = values[..., :3]
    spread = (rgb.max(axis=-1) - rgb.min(axis=-1)).astype(np.float32)
    coloured = spread > _COLOUR_SPREAD
    if int(coloured.sum()) < _CHROMA_MIN_PIXELS or float(coloured.mean()) > _CHROMA_MAX_SHARE:
        return None
    level = np.clip(spread / max(_CHROMA_FULL, float(np.percentile(spread[coloured], 90))), 0.0, 1.0)
    if _half_resolution(spread, coloured):
        luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32) / 255.0
        level = np.clip(_guided(luma, level), 0.0, 1.0)
    return np.clip(255.0 - 255.0 * level + 0.5, 0, 255).astype(np.uint8)


_HALF_RESOLUTION = 0.3  # what halving and restoring the spread loses, of its mean, at most for colour stored halved


def _half_resolution(spread: np.ndarray, coloured: np.ndarray) -> bool:
    """Whether the colour looks stored at half resolution: halved (2x2 means) and enlarged back, the spread of the
    coloured pixels moves by under ``_HALF_RESOLUTION`` of its mean (measured: JPEG 4:2:0 at quality 70-90 0.10-0.34,
    PNG and JPEG 4:4:4 0.36-0.62, over yellow print of 10-20 px on radiographs)."""
    from PIL import Image as PILImage

    rows, cols = (n - n % 2 for n in spread.shape)
    if rows < 2 or cols < 2:
        return False
    cropped = spread[:rows, :cols]
    halved = cropped.reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3))
    restored = np.asarray(PILImage.fromarray(halved, "F").resize((cols, rows), PILImage.Resampling.BILINEAR))
    near = coloured[:rows, :cols]
    moved = float(np.abs(cropped - restored)[near].mean())
    return moved < _HALF_RESOLUTION * float(cropped[near].mean())


_GUIDE_RADIUS = 2  # px: the guided filter's window (2r + 1 wide)
_GUIDE_EPS = 1e-3  # its regularisation, for a guide in 0-1: edges of ~0.03 (8 grey levels) steer it


def _guided(guide: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``target`` filtered by the guided filter (He, Sun and Tang, "Guided Image Filtering", ECCV 2010): locally a
    linear function of ``guide``, so the blurred colour of a letter takes the sharp edges of its luma."""
    from scipy import ndimage

    size = 2 * _GUIDE_RADIUS + 1

    def mean(image: np.ndarray) -> np.ndarray:
        return np.asarray(ndimage.uniform_filter(image, size, mode="nearest"))

    guide_mean, target_mean = mean(guide), mean(target)
    slope = (mean(guide * target) - guide_mean * target_mean) / (mean(guide * guide) - guide_mean**2 + _GUIDE_EPS)
    offset = target_mean - slope * guide_mean
    return np.asarray(mean(slope) * guide + mean(offset), dtype=np.float32)


def _local_difference(planes: Sequence[np.ndarray]) -> np.ndarray:
    """(rows, cols) float32: per pixel, the largest distance over ``planes`` from the mean of its neighbourhood."""
    from PIL import Image as PILImage
    from PIL import ImageFilter

    radius = max(4, round(min(planes[0].shape) / 120))
    diff = np.zeros(planes[0].shape, np.float32)
    for plane in planes:
        mean = np.asarray(PILImage.fromarray(plane).filter(ImageFilter.BoxBlur(radius)), np.float32)
        np.maximum(diff, np.abs(plane.astype(np.float32) - mean), out=diff)
    return diff


_CONTRAST_GAIN = 3.0  # text 30 grey levels from its background comes out ~90 levels darker than the page


def _resized(grey: np.ndarray, max_pixels: float = float("inf")) -> tuple[np.ndarray, float]:
    from PIL import Image as PILImage

    rows, cols = grey.shape
    scale = min(_MAX_UPSCALE, max(_OCR_MIN_SCALE, _OCR_SHORT_EDGE / min(rows, cols)))
    scale = max(1.0, min(scale, _OCR_MAX_EDGE / max(rows, cols), np.sqrt(max_pixels / (rows * cols))))
    if 0.95 <= scale <= 1.05:
        return grey, 1.0
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    method = PILImage.Resampling.BICUBIC if scale > 1 else PILImage.Resampling.LANCZOS
    return np.asarray(PILImage.fromarray(grey).resize(size, method)), scale


def _boxes(
    regions: Sequence[_Region], scale: float, shape: tuple[int, int], tight: bool = False
) -> list[RedactionBox]:
    """Regions padded (OCR boxes hug the glyphs and often drop a last character) and mapped to frame pixels;
    ``tight``: regions of the scene-text models, whose boxes hold the line's ground above and below already and
    whose words' ends are known to a column of the reader's output (``_SCENE_PAD``)."""
    rows, cols = shape
    out: list[RedactionBox] = []
    for r in regions:
        pad_y, pad_x = _PAD * r.height, (_PAD_X_IDENTIFYING if r.identifying else _PAD_X) * r.height
        if tight:
            pad_y, pad_x = (p * r.height for p in _SCENE_PAD)
        x0 = max(0, int((r.left - pad_x) / scale))
        y0 = max(0, int((r.top - pad_y) / scale))
        x1 = min(cols, int(np.ceil((r.right + pad_x) / scale)))
        y1 = min(rows, int(np.ceil((r.bottom + pad_y) / scale)))
        if x1 > x0 and y1 > y0:
            out.append(RedactionBox(x0, y0, x1 - x0, y1 - y0))
    return out


def _black(frame: Frame) -> float | int:
    """The value that shows as black in the frame's rendering and in each window it comes with: the minimum (the
    maximum for MONOCHROME1), or beyond it the lower (upper) edge of the file's windows and of the full stored range
    when further out, within the array's type. A scanned page whose darkest ink is grey 18 in its full-range
    window was filled with 18: a dark grey box, and in a wider window one like the picture's own greys."""
    values = frame.values
    if values.ndim == 3:
        return 0
    finite = values if not np.issubdtype(values.dtype, np.floating) else values[np.isfinite(values)]
    if finite.size == 0:
        return 0
    value = float(finite.max() if frame.invert else finite.min())
    windows = [w for w in [*frame.file_windows, frame.natural] if isinstance(w, Window)]
    for w in windows:  # PS3.3 C.11.2.1.2.1: at or below c - 0.5 - (w - 1) / 2 a LINEAR window shows its lowest
        edge = w.center - 0.5 + (w.width - 1) / 2 + 1 if frame.invert else w.center - 0.5 - (w.width - 1) / 2 - 1
        value = max(value, edge) if frame.invert else min(value, edge)
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        black = math.floor(value) if not frame.invert else math.ceil(value)
        if info.min - 1 <= black <= info.max + 1:  # the edges above carry a value's margin: the type's end is black
            return int(np.clip(black, info.min, info.max))
        return black  # further beyond the array's type: ``_holding`` widens the type
    return value


def _holding(values: np.ndarray, black: float | int) -> np.ndarray:
    """A copy of ``values`` in a type that holds ``black``: a window whose lowest edge lies below an unsigned
    array's 0 (centre 763, width 1639) shows 0 as grey 9, and only a negative value as black."""
    dtype = values.dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not info.min <= black <= info.max:
            dtype = np.result_type(dtype, np.min_scalar_type(int(black)))
            if not np.issubdtype(dtype, np.integer):  # no integer type holds both (uint64 and a negative)
                dtype = np.dtype(np.float64)
    return np.array(values, dtype=dtype, copy=True)  # the decoded array may be shared with other frames or read-only


def _blank(frame: Frame) -> None:
    """Every pixel of ``frame`` set to the value that shows black (``_black``): a withheld frame."""
    black = _black(frame)
    values = _holding(frame.values, black)
    values[...] = black
    frame.values = values


def _fill(frame: Frame, boxes: Sequence[RedactionBox]) -> None:
    if not boxes:
        return
    black = _black(frame)
    values = _holding(frame.values, black)
    for b in boxes:
        values[b.y : b.y + b.height, b.x : b.x + b.width] = black
    frame.values = values


def _read(
    ocr: OCR, frame: Frame, threshold: int | None = None, invert: bool = False, contrast: bool = False
) -> tuple[list[Word], float, np.ndarray]:
    """Words of ``frame`` read at OCR scale; the scale; the grey image of the frame at that scale. ``invert``
    reads it inverted; ``contrast`` reads its local contrast (``_local_contrast``) instead, and returns that."""
    if contrast:
        grey, scale = _resized(_local_contrast(frame), _CONTRAST_MAX_PIXELS)  # its strokes also guide ``_extend``
    else:
        grey, scale = _resized(_grey_for_ocr(frame))
    return ocr.read(255 - grey if invert else grey, threshold), scale, grey


_SURE_NAME_CONFIDENCE = 80  # a name-like word on a page of print alone (``_read_pages``) counts read this surely
_SURE_NAME_LETTERS = 4  # ... and this long (small technical print read there: "Tls", "Frq", "Gn")


def _sure_names(words: Sequence[Word], terms: Sequence[str]) -> list[Word]:
    """Name-like words (``_strength`` 1) read surely and long enough not to be a garbled parameter."""
    sure = [w for w in words if w.confidence >= _SURE_NAME_CONFIDENCE and len(_norm(w.text)) >= _SURE_NAME_LETTERS]
    return [w for w in sure if _strength(w, terms) == 1]


def _read_pages(ocr: OCR, frame: Frame) -> list[tuple[list[Word], float, np.ndarray]]:
    """Readings, as ``_read``'s, of the frame's print alone: its coloured print (``_chroma``; colour frames only)
    and its print drawn in one exact value (``_flat_print``)."""
    readings = []
    for page in (_chroma(frame), _flat_print(frame)):
        if page is not None:
            grey, scale = _resized(page, _CONTRAST_MAX_PIXELS)
            readings.append((ocr.read(grey, 0), scale, grey))
    return readings


# An overlay is drawn in one value (a console's grey or white, a viewer's yellow): the inside of its strokes holds that
# exact value, pixel after pixel, where the anatomy under it varies from one pixel to the next (noise, and 12-16 bit
# values). Pixels equal to at least two of their four neighbours, less the inside of flat areas (a 5x5 window of one
# value: a black margin, a saturated bone), less specks, are a page of that print alone, light grey text over liver or
# bowel included. Lossy JPEG leaves no such pixels: there the page is empty.
_FLAT_WINDOW = 5  # px: a window of one value this wide is a flat area, not a stroke (strokes of 1-4 px)
_FLAT_SPECK = 12  # px: joined parts smaller than this are chance equalities, not strokes
_FLAT_MAX_SHARE = 0.04  # of the frame at most on the page (print over anatomy: 1.6-2.3%; JPEG pictures: 5-38%)


def _flat_print(frame: Frame) -> np.ndarray | None:
    """Dark on white: the frame's thin strokes drawn in one exact value (raw values; RGB as one value per pixel)."""
    from scipy import ndimage

    values = frame.values
    if values.ndim == 3:  # one number per colour, in 4 bytes a pixel (a 5000 x 5000 frame: 100 MB per copy)
        if values.dtype != np.uint8:
            return None
        rgb = values[..., :3].astype(np.uint32)
        key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    else:
        key = values  # the stored values as they are (8-16 bit): equal values are what is looked for
    if min(key.shape) < 2 * _FLAT_WINDOW:
        return None
    same = np.zeros(key.shape, np.uint8)
    for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        same += np.roll(key, shift, axis=axis) == key
    flat = ndimage.maximum_filter(key, size=_FLAT_WINDOW) == ndimage.minimum_filter(key, size=_FLAT_WINDOW)
    flat = ndimage.binary_dilation(flat, structure=np.ones((_FLAT_WINDOW, _FLAT_WINDOW), bool))
    strokes = (same >= 2) & ~flat
    labels, count = ndimage.label(strokes, structure=np.ones((3, 3), bool))
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= _FLAT_SPECK
    keep[0] = False
    print_ = keep[labels]
    if float(print_.mean()) > _FLAT_MAX_SHARE:  # quantised (a JPEG's flat blocks, a posterised photo): no page
        return None
    return np.where(print_, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# Lines of print that the whole-frame readings missed, read again enlarged

# Tesseract's page layout on a whole frame drops what is small (9-12 px text, 5-7 px capitals), faint (grey on grey,
# 15-40 levels from its background) or alone in a large picture (a banner over anatomy): it never reaches the
# recogniser. Lines that look like print are found without OCR (``_print_lines``: thin light or dark strokes, a
# morphological top-hat or black-hat, bridged along rows into bars one text line tall with many stroke edges across);
# those not yet under a box are cut out, twice (stretched as drawn, and as their stroke map, where the anatomy under
# faint print is gone), enlarged to a line of ``_LINE_PX`` and read in one mosaic: one more Tesseract call per frame.
# Their words are judged line by line. The lines also widen the boxes that sit on them (``_along_lines``), and a
# long line at the frame's edges that no reading made out is blacked out unread (``_unread_at_border``).
# Measured on the held-out set A (bench/heldout_burned_in.py, seeds 17 and 18): recall 0.88-0.89 -> 0.95.
_PROPOSAL_INK = 6.0  # grey levels a stroke stands out of its top-hat/black-hat: text drawn ~15 levels from its ground
_PROPOSAL_GAP = 0.25  # % of the frame's short edge: stroke gaps bridged along a line (letter and word spaces)
_PROPOSAL_HEIGHT = (5, 40)  # px: line heights considered (text of 8-32 px)
_PROPOSAL_MAX = 60  # lines read per frame at most (the most print-like first): bounds the cost over textured anatomy
_LINE_PX = 44  # a proposed line is enlarged to this height, 4x at most (44 and 1.5 below: best of a few on set A)
_MOSAIC_GAP = 24  # px of white between the lines of the mosaic
_MOSAIC_MAX_WIDTH = 8000  # px: a line is enlarged less when it would be wider (Tesseract refuses images over 32767)
_MOSAIC_MAX_HEIGHT = 30000  # px: taller stacks are read as several mosaics (under Tesseract's 32767)
_MAX_COMPONENTS = 4000  # parts of one stroke map beyond which it is texture, not print: that map proposes no line


@dataclass(frozen=True)
class _Line:
    """A proposed line of print, in frame pixels (right and bottom exclusive), and how print-like it is."""

    left: int
    top: int
    right: int
    bottom: int
    score: float
    dark: bool  # dark print on a lighter background (found in the black-hat map)
    in_grey: bool = False  # found only in a colour frame's grey (``_print_lines``' ``also``)


def _bridged(ink: np.ndarray, gap: int) -> np.ndarray:
    """``ink`` with gaps of at most ``gap`` pixels along each row filled: the letters of a line join into a bar."""
    cols = ink.shape[1]
    index = np.arange(cols, dtype=np.int32)
    last = np.maximum.accumulate(np.where(ink, index, -(10**6)), axis=1)  # the last stroke at or left of each pixel
    nxt = np.minimum.accumulate(np.where(ink, index, 10**6)[:, ::-1], axis=1)[:, ::-1]  # the next at or right
    return (nxt - last) <= gap


def _components(mask: np.ndarray, min_run: int) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom; exclusive) of the 4-connected parts of ``mask`` made of row runs of at least
    ``min_run`` pixels (shorter runs are dropped first: texture, not a line of print). Labelling: scipy.ndimage."""
    from scipy import ndimage

    edges = np.diff(mask.astype(np.int8), axis=1, prepend=0, append=0)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    long = np.zeros(mask.shape, dtype=np.int32)  # +1 where a long run starts, -1 just after it ends
    keep = (ends - starts) >= min_run
    np.add.at(long, (rows[keep], starts[keep]), 1)
    ends_kept = ends[keep]
    inside = ends_kept < mask.shape[1]
    np.add.at(long, (rows[keep][inside], ends_kept[inside]), -1)
    labels, _ = ndimage.label(np.cumsum(long, axis=1) > 0)  # the default structure: 4-connected
    return [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in ndimage.find_objects(labels) if s is not None]


def _strokes_of(planes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Two (rows, cols) int16 maps: per pixel, how far it stands out of its plane as part of a thin light stroke
    (a morphological top-hat over ``_STROKE_PX``), and as part of a thin dark one (a black-hat), the largest over
    ``planes``. A band, a panel or an organ wider than a stroke does not stand out; the letters printed on it do.
    The two are kept apart: between light letters on a dark band the gaps are thin dark "strokes" too."""
    light = np.zeros(planes[0].shape, np.int16)
    dark = np.zeros(planes[0].shape, np.int16)
    for plane in planes:
        p = plane.astype(np.int16)
        np.maximum(light, p - _rank(_rank(p, np.minimum), np.maximum), out=light)
        np.maximum(dark, _rank(_rank(p, np.maximum), np.minimum) - p, out=dark)
    return light, dark


def _rank(image: np.ndarray, op: np.ufunc) -> np.ndarray:
    """``image`` eroded (``np.minimum``) or dilated (``np.maximum``) by a square of ``_STROKE_PX``: separable, one
    shifted comparison per pixel of the side, along rows then columns."""
    half = _STROKE_PX // 2
    out = image
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (half, half)
        padded = np.pad(out, pad, mode="edge")
        length = out.shape[axis]
        acc = np.take(padded, range(0, length), axis=axis)
        for shift in range(1, 2 * half + 1):
            acc = op(acc, np.take(padded, range(shift, shift + length), axis=axis))
        out = acc
    return out


_STROKE_PX = 7  # the widest stroke found: bold 28 px print has strokes of 4-5 px


def _joined(boxes: Sequence[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Boxes (left, top, right, bottom) side by side on one line (rows overlapping by half the lower one, at most a
    line height apart) joined: the pieces of a line the bridging left apart ("ACC#" and its number)."""
    out: list[list[int]] = []
    for left, top, right, bottom in sorted(boxes):
        for box in out:
            overlap = min(bottom, box[3]) - max(top, box[1])
            height = max(bottom - top, box[3] - box[1])
            if overlap >= 0.5 * min(bottom - top, box[3] - box[1]) and left - box[2] <= height:
                box[:] = [min(left, box[0]), min(top, box[1]), max(right, box[2]), max(bottom, box[3])]
                break
        else:
            out.append([left, top, right, bottom])
    return [(b[0], b[1], b[2], b[3]) for b in out]


def _print_score(ink: np.ndarray) -> float:
    """How much a box of stroke pixels looks like a line of print (0: not at all): strokes on 5-85% of it, and
    rows that switch between stroke and background at least once per line height of width (glyphs do; an organ's
    edge or smooth texture switches once or twice)."""
    height, width = ink.shape
    share = float(ink.mean())
    if not 0.05 <= share <= 0.85 or float(ink.mean(axis=1).max()) > 0.9:
        return 0.0  # a row of strokes end to end: a ruler, a scale bar or an edge, not print
    middle = ink[height // 4 : max(height // 4 + 1, 3 * height // 4)]
    switches = float(np.count_nonzero(middle[:, 1:] != middle[:, :-1], axis=1).mean())
    per_height = switches * height / max(1, width)
    return per_height if per_height >= 1.5 else 0.0


def _proposals(lines: Sequence[_Line], covered: Sequence[RedactionBox]) -> list[_Line]:
    """The ``lines`` (``_print_lines``) not already mostly under a box in ``covered``, ``_PROPOSAL_MAX`` at most."""
    return [line for line in lines if _covered(line.left, line.top, line.right, line.bottom, covered) < 0.7][
        :_PROPOSAL_MAX
    ]


def _print_lines(maps: Sequence[np.ndarray], min_gap: int = 3, also: Sequence[np.ndarray] = ()) -> list[_Line]:
    """Lines of print in a frame's stroke maps (``_strokes_of``), and in the maps ``also`` given, the most print-like
    first; stroke gaps of ``min_gap`` px or more (``_PROPOSAL_GAP`` of the short edge when more) are bridged along a
    line. (A colour frame's maps are the largest over its planes: yellow print on grey anatomy is light in red and
    green and dark in blue, so its letters and the gaps between them are both light "strokes" there, one bar that is
    no print; in its grey alone, ``also``, the letters are light and the gaps dark.)"""
    lo, hi = _PROPOSAL_HEIGHT
    lines: list[_Line] = []
    for in_grey, dark, strokes in [(False, *m) for m in enumerate(maps)] + [(True, *m) for m in enumerate(also)]:
        ink = strokes > _PROPOSAL_INK
        rows, cols = ink.shape
        gap = max(min_gap, round(_PROPOSAL_GAP * min(rows, cols) / 100))
        parts = _components(_bridged(ink, gap), 2 * lo)
        if len(parts) > _MAX_COMPONENTS:  # joining is quadratic in the parts: fine speckle all over the frame
            logger.info("burned-in text: %d stroke parts in one map, too textured to propose lines", len(parts))
            continue
        for left, top, right, bottom in _joined(parts):
            height, width = bottom - top, right - left
            if not lo <= height <= hi or width < 2 * height:
                continue
            score = _print_score(ink[top:bottom, left:right])
            if score > 0:
                lines.append(_Line(left, top, right, bottom, score, bool(dark), in_grey))
    lines.sort(key=lambda line: -line.score)
    kept: list[_Line] = []
    for line in lines:  # a line found in both polarities, or as a piece of a longer one, is read once
        if all(_overlap(line, k) < 0.5 for k in kept):
            kept.append(line)
    return kept


_BLIND_BORDER = 0.12  # of the frame's height and width: the bands along its edges where consoles print
_BLIND_SCORE = 2.5  # ``_print_score`` of a line blacked out unread: clearly print, not texture
_READ_CONFIDENCE = 70  # a word read this surely on a line shows the line was read (and judged not identifying)


def _unread_at_border(
    lines: Sequence[_Line],
    words: Sequence[Word],
    shape: tuple[int, int],
    planes: Sequence[np.ndarray] = (),
    maps: Sequence[np.ndarray] = (),
) -> list[RedactionBox]:
    """Boxes over the proposed ``lines`` near the frame's edges that look clearly like print of a few words but that
    no reading made out (``_read_lines`` words, line by line): consoles print names and IDs there, and text too faint
    or small to read there is far more often a label than anatomy. Marks ("L", "AP", "5 cm") are shorter than five
    line heights. A line that reaches only a side edge counts when it lies on a flat ground (with the frame's
    ``planes`` and stroke ``maps``): one running in from the middle over anatomy (an MR abdomen's texture reaching
    its right edge) is not a console's print."""
    rows, cols = shape
    out = []
    for number, line in enumerate(lines):
        height, width = line.bottom - line.top, line.right - line.left
        if line.score < _BLIND_SCORE or width < 5 * height or height > 30:
            continue
        near_edge = line.top < _BLIND_BORDER * rows or line.bottom > (1 - _BLIND_BORDER) * rows
        if not near_edge and (line.left < _BLIND_BORDER * cols or line.right > (1 - _BLIND_BORDER) * cols):
            near_edge = not planes or _on_flat_ground(planes, maps, line)
        if not near_edge or any(w.line[0] == number and w.confidence >= _READ_CONFIDENCE for w in words):
            continue
        pad = max(1, height // 3)
        x0, y0 = max(0, line.left - pad), max(0, line.top - pad)
        out.append(RedactionBox(x0, y0, min(cols, line.right + pad) - x0, min(rows, line.bottom + pad) - y0))
    return out


def _spare_marked(boxes: Sequence[RedactionBox], marks: Sequence[RedactionBox]) -> list[RedactionBox]:
    """``boxes`` without those that cover an annotation word read with confidence (a mark is never blacked blind)."""
    return [b for b in boxes if not any(_covered(m.x, m.y, m.x + m.width, m.y + m.height, [b]) > 0.3 for m in marks)]


def _along_lines(boxes: Sequence[RedactionBox], lines: Sequence[_Line]) -> list[RedactionBox]:
    """Boxes widened to the ends of the lines of print they sit on: OCR read part of a faint or small line ("Hospi",
    "...6130367") and the rest, which it could not read, is the same print. A line taller than its box (a band, or
    the next line joined) does not widen it."""
    out = []
    for box in boxes:
        left, right = box.x, box.x + box.width
        for line in lines:
            height = line.bottom - line.top
            centre = (line.top + line.bottom) / 2
            if not box.y <= centre <= box.y + box.height or height > 1.2 * box.height:
                continue
            if line.right <= box.x or box.x + box.width <= line.left:
                continue
            pad = max(1, height // 3)
            left, right = min(left, line.left - pad), max(right, line.right + pad)
        out.append(RedactionBox(max(0, left), box.y, right - max(0, left), box.height))
    return out


def _overlap(a: _Line, b: _Line) -> float:
    """The area two lines share, as a share of the smaller one."""
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a.right - a.left) * (a.bottom - a.top), (b.right - b.left) * (b.bottom - b.top))
    return width * height / max(1, smaller)


def _covered(left: int, top: int, right: int, bottom: int, boxes: Sequence[RedactionBox]) -> float:
    """The share of a rectangle under ``boxes`` (overlaps of boxes counted once)."""
    area = np.zeros((bottom - top, right - left), bool)
    for b in boxes:
        x0, y0 = max(left, b.x), max(top, b.y)
        x1, y1 = min(right, b.x + b.width), min(bottom, b.y + b.height)
        if x1 > x0 and y1 > y0:
            area[y0 - top : y1 - top, x0 - left : x1 - left] = True
    return float(area.mean()) if area.size else 1.0


def _line_images(
    planes: Sequence[np.ndarray], maps: Sequence[np.ndarray], line: _Line, grey_maps: Sequence[np.ndarray] = ()
) -> tuple[list[np.ndarray], int, int, float]:
    """A proposed line cut out with a margin, dark on light at full contrast, enlarged to ``_LINE_PX`` tall, twice:
    out of the plane where it stands out most, stretched (print as drawn), and out of its stroke map, where the
    anatomy or band under it, wider than a stroke, is gone (faint print); their frame origin (left, top) and scale."""
    from PIL import Image as PILImage

    height = line.bottom - line.top
    margin = max(2, height // 3)
    rows, cols = maps[0].shape
    x0, y0 = max(0, line.left - height), max(0, line.top - margin)  # a letter the bridging left off at either end
    x1, y1 = min(cols, line.right + height), min(rows, line.bottom + margin)
    plane, spread = planes[0][y0:y1, x0:x1].astype(np.float32), -1.0
    for candidate in planes:
        piece = candidate[y0:y1, x0:x1].astype(np.float32)
        lo, hi = (float(v) for v in np.percentile(piece, [2, 98]))
        if hi - lo > spread:
            spread, plane = hi - lo, np.clip((piece - lo) * 255.0 / max(1.0, hi - lo), 0, 255)
    # Stretched, the ground is near black or white whichever stroke map found the line (between light letters on a
    # dark band lie dark "strokes" too): the ground tells the print's polarity. Tesseract reads dark on light.
    dark_print = float(np.median(plane)) >= 128
    if not dark_print:
        plane = 255.0 - plane
    source = grey_maps if line.in_grey and grey_maps else maps  # the maps it was found in: coloured print's
    cut = source[int(dark_print)][y0:y1, x0:x1].astype(np.float32)  # are a bar in the frame's (``_print_lines``)
    strokes = cut[cut > _PROPOSAL_INK]
    full = _HAT_NORM * float(np.median(strokes)) if strokes.size else 0.0
    hat = 255.0 - np.clip(cut * 255.0 / max(2.0 * _PROPOSAL_INK, full), 0, 255)  # a typical stroke: near black
    scale = float(np.clip(_LINE_PX / max(1, height), 1.0, 4.0))
    scale = max(1.0, min(scale, _MOSAIC_MAX_WIDTH / max(1, x1 - x0)))  # a frame-wide line stays within Tesseract's size
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    images = [
        np.asarray(PILImage.fromarray(image.astype(np.uint8)).resize(size, PILImage.Resampling.BICUBIC))
        for image in (plane, hat)
    ]
    return images, x0, y0, scale


_HAT_NORM = 1.5  # a stroke map is shown black at this many times its median stroke


def _read_lines(
    ocr: OCR,
    planes: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    lines: Sequence[_Line],
    grey_maps: Sequence[np.ndarray] = (),
) -> list[Word]:
    """Words of the proposed ``lines`` read in one mosaic (each enlarged, stacked with white between them), in
    frame pixels; ``grey_maps``: the stroke maps of a colour frame's grey (``_print_lines``' ``also``)."""
    if not lines:
        return []
    cuts = [
        (number, image, x0, y0, scale)
        for number, line in enumerate(lines)
        for images, x0, y0, scale in [_line_images(planes, maps, line, grey_maps)]
        for image in images
    ]
    return _read_cuts(ocr, cuts)


def _read_cuts(ocr: OCR, cuts: Sequence[tuple[int, np.ndarray, int, int, float]]) -> list[Word]:
    """Words of ``cuts`` (line number, enlarged image, frame left, top, scale) read in mosaics of at most
    ``_MOSAIC_MAX_HEIGHT`` px, in frame pixels; each word's ``line`` starts with its cut's line number."""
    words: list[Word] = []
    batch: list[tuple[int, np.ndarray, int, int, float]] = []
    for cut in cuts:  # mosaics of at most _MOSAIC_MAX_HEIGHT px: a frame with many lines is read in a few calls
        if batch and sum(c[1].shape[0] + _MOSAIC_GAP for c in [*batch, cut]) > _MOSAIC_MAX_HEIGHT:
            words.extend(_read_mosaic(ocr, batch))
            batch = []
        batch.append(cut)
    words.extend(_read_mosaic(ocr, batch))
    return words


_VERTICAL_MAX = 12  # lines of print running up or down the frame read per frame at most (the most print-like first)
_VERTICAL_CONFIDENCE = 50  # a word read over anatomy by a side edge counts at this confidence (0-100) or more
_VERTICAL_GAP = 5  # px bridged along such a line at least: a 12 px monospaced label ran as letters 4-5 px apart


def _vertical_print(
    ocr: OCR,
    planes: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    covered: Sequence[RedactionBox],
    terms: Sequence[str],
    grey: np.ndarray,
    tallest: float = float("inf"),
    grey_maps: Sequence[np.ndarray] = (),
) -> tuple[list[RedactionBox], bool, int]:
    """Boxes over identifying print that runs up or down the frame (consoles and digitisers print the name and ID
    along a radiograph's edge), and whether a header identifier or an ID-like number was among it. Lines are found
    in the transposed stroke maps on a flat ground (such print sits in a margin) or in the side bands of the frame
    (``_BLIND_BORDER``; over anatomy there only identifying text counts, not name-like words: the transposed map
    finds texture and OCR reads "names" in it), cut out of the transposed frame, and read in one mosaic both ways
    up (text rotated a quarter turn either way); words are judged in the transposed frame, where the lines run along
    rows, and their boxes turned back. Also the number of OCR calls (none when no line is found)."""
    turned = [_transposed(box) for box in covered]
    planes_t, maps_t = [np.ascontiguousarray(p.T) for p in planes], [np.ascontiguousarray(m.T) for m in maps]
    edge = _BLIND_BORDER * planes_t[0].shape[0]  # the frame's side bands, as rows of its transpose
    lines, flat = [], []
    grey_t = [np.ascontiguousarray(m.T) for m in grey_maps]  # a colour frame's grey alone (``_print_lines``)
    for line in _proposals(_print_lines(maps_t, _VERTICAL_GAP, grey_t), turned):
        on_margin = _on_flat_ground(planes_t, maps_t, line)
        if on_margin or line.top < edge or line.bottom > planes_t[0].shape[0] - edge:
            lines.append(line)
            flat.append(on_margin)
    lines = lines[:_VERTICAL_MAX]
    if not lines:
        return [], False, 0
    cuts: list[tuple[int, np.ndarray, int, int, float]] = []
    # per cut: its line, the cut's left and top in the transposed frame, its width and height there, and which way
    # it was flipped (the transpose of print turned a quarter turn is mirrored: flipped left-right it reads as print
    # running bottom-up did, flipped upside down as print running top-down)
    origins: dict[int, tuple[int, int, int, int, int, bool]] = {}
    for number, line in enumerate(lines):
        images, x0, y0, scale = _line_images(planes_t, maps_t, line, grey_t)
        for image in images:
            width, height = round(image.shape[1] / scale), round(image.shape[0] / scale)
            for upside_down in (False, True):
                key = len(cuts)
                flipped = image[::-1, :] if upside_down else image[:, ::-1]
                cuts.append((key, np.ascontiguousarray(flipped), 0, 0, scale))
                origins[key] = (number, x0, y0, width, height, upside_down)
    words: dict[int, list[Word]] = {}
    for w in _read_cuts(ocr, cuts):  # in the pixels of its (flipped) cut: flipped back, moved into the turned frame
        number, x0, y0, width, height, upside_down = origins[w.line[0]]
        left = x0 + (w.left if upside_down else width - w.left - w.width)
        top = y0 + (height - w.top - w.height if upside_down else w.top)
        words.setdefault(number, []).append(Word(left, top, w.width, w.height, w.text, w.confidence, (number, 0, 0)))
    boxes: list[RedactionBox] = []
    identified = False
    for number, line_words in words.items():
        if not flat[number]:  # over anatomy by a side edge: only what is read surely (texture is read unsurely)
            line_words = [w for w in line_words if w.confidence >= _VERTICAL_CONFIDENCE]
        regions, _, found = _to_redact(line_words, terms, 0, tallest)
        if not flat[number]:  # ... and only a header identifier, a date or an ID-like number
            regions = [r for r in regions if r.identifying]
        identified = identified or found
        boxes.extend(_transposed(b) for b in _boxes([_extend(grey.T, r) for r in regions], 1.0, grey.T.shape))
    return boxes, identified, math.ceil(sum(c[1].shape[0] + _MOSAIC_GAP for c in cuts) / _MOSAIC_MAX_HEIGHT)


_FLAT_GROUND = 6.0  # grey levels: the median distance of a line's ground pixels from their median, at most
_GROUND_SHARE = 0.3  # of the strips above and below a line: at least this much of them is ground (not strokes)


def _on_flat_ground(planes: Sequence[np.ndarray], maps: Sequence[np.ndarray], line: _Line) -> bool:
    """Whether the strips right above and below a line (half its height each) are of one level in every plane,
    leaving out what either stroke map marks (the next line's letters): print on a margin, a band or a console's
    black, not over anatomy. (Within the line itself nearly every pixel is a stroke in one map or the other: the
    letters in one, the gaps narrower than a stroke between them in the other.)"""
    rows = planes[0].shape[0]
    strip = max(2, (line.bottom - line.top) // 2)
    bands = [(max(0, line.top - strip), line.top), (line.bottom, min(rows, line.bottom + strip))]
    cols = slice(line.left, line.right)
    ground = [(maps[0][a:b, cols] <= _PROPOSAL_INK) & (maps[1][a:b, cols] <= _PROPOSAL_INK) for a, b in bands]
    size = sum(g.size for g in ground)
    if size == 0 or sum(int(g.sum()) for g in ground) < _GROUND_SHARE * size:
        return False
    for plane in planes:
        values = np.concatenate([plane[a:b, cols][g] for (a, b), g in zip(bands, ground, strict=True)])
        values = values.astype(np.int16)
        if float(np.median(np.abs(values - int(np.median(values))))) > _FLAT_GROUND:
            return False
    return True


_SCENE_CONTRAST_CONFIDENCE = 75  # (0-100) a word read in a frame's local contrast counts from this confidence


def _scene_words(scene: SceneReader, frame: Frame, contrast: bool = False) -> tuple[list[Word], list[TurnedLine]]:
    """The words of the lines the scene-text models find and read in ``frame`` as shown, in frame pixels; each
    line its own (``Word.line``). Lines other readings mostly covered are read too: what they left is a name's
    last letters. With ``contrast``, the frame's local contrast is read instead (``_local_contrast``: print a few
    grey levels from the anatomy under it, which the models do not see as shown). Also the lines running up or
    down the frame or at a slant, read turned (judged by ``_turned_boxes``). A line read as nothing gives one word
    with no text, for its extent."""
    values = frame.values
    if contrast:
        rgb = np.repeat(_local_contrast(frame)[..., None], 3, axis=2)
    elif values.ndim == 3 and values.dtype == np.uint8:
        rgb = np.ascontiguousarray(values[..., :3])
    else:
        rgb = np.repeat(_grey_for_ocr(frame)[..., None], 3, axis=2)
    words: list[Word] = []
    across, turned = scene.read_lines(rgb)
    if contrast:
        turned = [
            dataclasses.replace(t, words=[w for w in t.words if w.confidence >= _SCENE_CONTRAST_CONFIDENCE])
            for t in turned
        ]
    for number, (box, read) in enumerate(across):
        if not read:  # a line found but read as nothing: kept, empty, for its extent (``_stacked``, ``_unseen_large``)
            words.append(Word(box.left, box.top, box.right - box.left, box.bottom - box.top, "", 0.0, (number, 0, 0)))
            continue
        if contrast:  # the local contrast of small print is noisy: "LAO 30 CRA 20" read there as "10300920" (73)
            read = [w for w in read if w.confidence >= _SCENE_CONTRAST_CONFIDENCE]
        for index, w in enumerate(read):
            # a line's first and last words reach at least to the ends of the line's box: the reader places a
            # word's ends to a column of its output (a few pixels), the detector the line's
            left = min(w.left, box.left) if index == 0 else w.left
            right = max(w.right, box.right) if index == len(read) - 1 else w.right
            words.append(Word(left, w.top, right - left, w.bottom - w.top, w.text, w.confidence, (number, 0, 0)))
    return words, turned


def _turned_boxes(
    lines: Sequence[TurnedLine], terms: Sequence[str], tallest: float
) -> tuple[list[RedactionBox], bool, bool]:
    """Boxes (frame pixels) over the identifying text of lines running up or down the frame (a digitiser's name and
    ID along a radiograph's edge) or printed at a slant, judged line by line as ``_scene_regions`` judges lines
    across, in the turned region where the line reads left to right, with no band along its edges (``rows`` 0, as
    ``_vertical_print``); and whether identifying text, and a header identifier or an ID-like number, was among
    them."""
    boxes: list[RedactionBox] = []
    strong = identified = False
    for line in lines:
        words = [
            Word(w.left, w.top, w.right - w.left, w.bottom - w.top, w.text, w.confidence, (0, 0, 0)) for w in line.words
        ]
        regions, found_strong, found = _scene_regions(words, terms, 0, tallest)
        strong, identified = strong or found_strong, identified or found
        for b in _boxes(regions, 1.0, line.shape, tight=True):
            # a slanted box goes back as pieces a line height long, each in the frame's rectangle round it: the
            # rectangle round the whole box took a diagonal watermark's square (448 x 590 px over a brain MR)
            step = max(4, b.height) if line.angle else b.width
            for start in range(b.x, b.x + b.width, step):
                x0, y0, x1, y1 = line.to_frame(start, b.y, min(start + step, b.x + b.width), b.y + b.height)
                boxes.append(RedactionBox(x0, y0, x1 - x0, y1 - y0))
    return boxes, strong, identified


_LARGE = 2.0  # times the median height of the print read surely: a word this tall must be seen by the detector


def _unseen_large(words: Sequence[Word], scale: float, tallest: float, seen: Sequence[Word]) -> list[Word]:
    """``words`` (read at ``scale``) less those far taller than the print read surely (``_LARGE`` times its median,
    from ``tallest``) where the scene-text models found no line (``seen``, frame pixels): Tesseract reads a row of
    round MR slices in a montage as "686666" at confidence 82, 50 px tall beside 20 px labels, and stacked as a
    banner it blacked out the frame. The detector, trained on text, does not take slices for print; real large
    print (titles, big dates) it finds."""
    if not math.isfinite(tallest):
        return list(words)
    large = _LARGE * tallest / _GIANT  # frame px

    def in_a_line(w: Word) -> bool:
        x, y = (w.left + w.width / 2) / scale, (w.top + w.height / 2) / scale
        return any(
            a.left - a.height <= x <= a.left + a.width + a.height and a.top <= y <= a.top + a.height for a in seen
        )

    return [w for w in words if w.height / scale <= large or in_a_line(w)]


def _scene_regions(
    words: Sequence[Word], terms: Sequence[str], rows: int, tallest: float
) -> tuple[list[_Region], bool, bool]:
    """``_to_redact`` of the scene-text models' words, line by line (a large label under a banner is no part of it:
    read as one block, the two took the anatomy between them), keeping identifying text and names read surely. A
    name read surely takes the name parts beside it (``_name_parts``); each region takes the pieces of its line
    the detector found apart (``_whole_line``)."""
    regions = [_region(_name_parts(w, words)) for w in _sure_names(words, terms)]
    strong = identified = False
    for number in sorted({w.line[0] for w in words}):
        line = [w for w in words if w.line[0] == number]
        found_regions, found_strong, found = _to_redact(line, terms, rows, tallest)
        regions.extend(r for r in found_regions if r.identifying)
        strong, identified = strong or found_strong, identified or found
        for group in _grouped_numbers(line):
            regions.append(_region(group, identifying=True))
            strong = identified = True
    extents = _line_extents(words)
    return [_stacked(_whole_line(r, extents), extents) for r in regions], strong, identified


_NAME_PART = re.compile(r"^[A-Z][A-Za-z'’-]*[,.]?$")  # "Sato," "S." "O'Neil": a capitalised word or an initial
_NAME_PART_CONFIDENCE = 50


def _name_part(word: Word) -> bool:
    """A word that may be part of a name printed beside a name read surely: a capitalised word that is not
    annotation vocabulary, or an initial (not the side markers L and R), read with some confidence."""
    text = word.text.strip()
    norm = _norm(text)
    if not _NAME_PART.match(text) or word.confidence < _NAME_PART_CONFIDENCE:
        return False
    return norm not in ("L", "R") if len(norm) == 1 else not _like_annotation(norm)


def _name_parts(name: Word, words: Sequence[Word]) -> list[Word]:
    """``name`` and the name parts (``_name_part``) beside it on its line, two at most each side, each less than a
    line height from the next: a surname read surely leaves "Anna S." or "Sato," legible otherwise."""
    line = sorted((w for w in words if w.line[0] == name.line[0]), key=lambda w: w.left)
    at = next(i for i, w in enumerate(line) if w is name)
    group = [name]
    for step in (-1, 1):
        j, nearest = at + step, name
        while 0 <= j < len(line) and abs(j - at) <= 2 and _name_part(line[j]):
            gap = max(line[j].left - nearest.left - nearest.width, nearest.left - line[j].left - line[j].width)
            if gap > name.height:
                break
            group.append(line[j])
            nearest, j = line[j], j + step
    return group


_Extent = tuple[int, int, int, int, list[Word]]


def _line_extents(words: Sequence[Word]) -> list[_Extent]:
    """Per detector line of ``words``: its left, top, right and bottom (frame pixels) and its words."""
    lines: dict[int, list[Word]] = {}
    for w in words:
        lines.setdefault(w.line[0], []).append(w)
    return [
        (min(w.left for w in ws), min(w.top for w in ws), max(w.left + w.width for w in ws),
         max(w.top + w.height for w in ws), ws)
        for ws in lines.values()
    ]  # fmt: skip


def _whole_line(region: _Region, extents: Sequence[_Extent]) -> _Region:
    """``region`` (frame pixels) grown over the detector's other lines (``_line_extents``) on its row that begin or
    end less than a line height from it: the detector split "Ref:PAPADOPOULOS^MATEUS" over a gap in the anatomy
    under it into "Ref:PAP" and the rest, and only the rest read as a name. Lines of annotation or values only are
    not taken."""
    grown = True
    while grown:
        grown = False
        for left, top, right, bottom, ws in extents:
            if any(region.left <= w.left + w.width / 2 <= region.right for w in ws):
                continue  # the region's own line, or one it took already
            overlap = min(bottom, region.bottom) - max(top, region.top)
            gap = max(left - region.right, region.left - right)
            if overlap < 0.5 * min(bottom - top, region.bottom - region.top) or gap > region.height:
                continue
            if not any(_norm(w.text) and not _like_annotation(_norm(w.text)) and not _value(w.text) for w in ws):
                continue
            region = _taking(region, left, top, right, bottom)
            grown = True
    return region


def _taking(region: _Region, left: int, top: int, right: int, bottom: int) -> _Region:
    """``region`` grown to hold the rectangle ``left``, ``top``, ``right``, ``bottom`` too."""
    return dataclasses.replace(
        region, left=min(region.left, left), right=max(region.right, right), top=min(region.top, top),
        bottom=max(region.bottom, bottom),
    )  # fmt: skip


def _technical(word: Word) -> bool:
    """A word read surely as annotation, a value, or a short label ("SL", "kVp", "W"): a line of these is judged by
    its own reading, not taken with the identifying block it is stacked on."""
    norm = _norm(word.text)
    short = len(norm) <= 3 and norm.isalpha()
    technical = _value(word.text) or _like_annotation(norm) or short or _run_together_values(word.text)
    return bool(norm) and word.confidence >= _MARK_CONFIDENCE and technical


_STACK_GAP = 1.2  # line heights at most between a block and a line stacked on it (as ``_stack``)


def _stacked(region: _Region, extents: Sequence[_Extent]) -> _Region:
    """An identifying ``region`` (frame pixels) grown over the detector's lines (``_line_extents``) stacked right
    above and below it, as ``_extend`` grows Tesseract's blocks: a line of about its height, less than
    ``_STACK_GAP`` line heights away, beginning or ending where it does or overlapping it by half, up to twice
    ``_STACK_LINES`` in all. A console's header stacks name, dates and institution, and on a 384 px MR mosaic the
    models read the dates under a 9 px "Referring:HALVORSEN^LUCINDA" but nothing of that line. Lines read surely
    as annotation, values and short labels only (``_technical``: "SL 5.0 mm", "kVp 120") are not taken."""
    if not region.identifying or not region.stack:
        return region
    height = region.height
    for _ in range(2 * _STACK_LINES):
        grown = False
        for left, top, right, bottom, ws in extents:
            if top >= region.top and bottom <= region.bottom:
                continue  # within the block already
            if not 0.6 * height <= bottom - top <= 1.6 * height:
                continue
            gap = max(top - region.bottom, region.top - bottom)
            overlap = min(right, region.right) - max(left, region.left)
            aligned = abs(left - region.left) <= height or abs(right - region.right) <= height
            aligned = aligned or overlap >= 0.5 * min(right - left, region.right - region.left)
            if gap > _STACK_GAP * height or not aligned:
                continue
            if all(_technical(w) for w in ws):
                continue
            region = _taking(region, left, top, right, bottom)
            grown = True
            break
        if not grown:
            break
    return region


_VALUE = re.compile(r"^[-+]?[\d.,:/]+[A-Za-z%]{0,3}$")  # "0.6mm", "120kV", "3/4", "12:30": a value, not a name


def _value(text: str) -> bool:
    """Whether ``text`` is a number with at most a short unit, or a short label and its value ("TR:4000")."""
    return bool(_VALUE.match(text.strip()) or _PARAMETER.match(text.strip()))


_GROUP = re.compile(r"^[+(]?\d[\d()-]*[,;]?$")  # no decimal point or slash: "1.25", "57/220" are values
_GROUP_DIGITS = 7  # digits at least in a number printed in groups: a phone number or an ID ("030 0490 710")


def _grouped_numbers(line: Sequence[Word]) -> list[list[Word]]:
    """Runs of words of one line, left to right, that are groups of one number ("+33 4 83 39 72 39", "030 0490
    710"): each group alone is a short number, together they are a phone number or an ID. Technical values come
    with their units between them ("kVp 120 mAs 45") or with a decimal point or a slash ("57/220 1.25 mm")."""
    runs: list[list[Word]] = [[]]
    for word in sorted(line, key=lambda w: w.left):
        if _GROUP.match(word.text):
            runs[-1].append(word)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if sum(c.isdigit() for w in run for c in w.text) >= _GROUP_DIGITS and len(run) >= 2]


def _transposed(box: RedactionBox) -> RedactionBox:
    """A box of the frame in its transpose, or back."""
    return RedactionBox(box.y, box.x, box.height, box.width)


def _read_mosaic(ocr: OCR, cuts: Sequence[tuple[int, np.ndarray, int, int, float]]) -> list[Word]:
    """The words of ``cuts`` (line number, enlarged image, frame left, top, scale) stacked in one image, read once."""
    width = max(c[1].shape[1] for c in cuts) + 2 * _MOSAIC_GAP
    height = sum(c[1].shape[0] + _MOSAIC_GAP for c in cuts) + _MOSAIC_GAP
    mosaic = np.full((height, width), 255, np.uint8)
    placed: list[tuple[int, int, int, int, int, float]] = []  # (mosaic top, bottom, line, frame left, top, scale)
    y = _MOSAIC_GAP
    for number, image, x0, y0, scale in cuts:
        mosaic[y : y + image.shape[0], _MOSAIC_GAP : _MOSAIC_GAP + image.shape[1]] = image
        placed.append((y, y + image.shape[0], number, x0, y0, scale))
        y += image.shape[0] + _MOSAIC_GAP
    words = []
    for w in ocr.read(mosaic, 0):
        centre = w.top + w.height / 2
        for top, bottom, number, x0, y0, scale in placed:
            if top <= centre < bottom:
                left, up = x0 + (w.left - _MOSAIC_GAP) / scale, y0 + (w.top - top) / scale
                size = (max(1, round(w.width / scale)), max(1, round(w.height / scale)))
                words.append(Word(max(0, round(left)), max(0, round(up)), *size, w.text, w.confidence, (number, 0, 0)))
                break
    return words


# The readings words are looked for in, (inverted, binarisation): the frame as shown with Otsu's global threshold
# (text on flat borders), then inverted with Sauvola's adaptive one (Tesseract's LSTM is trained on dark text on
# light paper: light text over uneven anatomy is read far better inverted). Chosen on the benchmark's planted
# cases (docs/benchmarks.md, "Burned-in text"): either reading alone missed 15-25% of the tokens.
# A third reading, of the local contrast (``_local_contrast``), finds what both miss: grey on grey, coloured text
# as light as the picture under it, text over anatomy.
_DETECT_PASSES: tuple[tuple[bool, int, bool], ...] = ((False, 0, False), (True, 2, False), (False, 0, True))
_RESIDUAL_THRESHOLD = 2
_RESIDUAL_CHECKS = 2  # readings after redaction: a second one when the first blacked out name-like words only


def clean_frames(
    frames: Sequence[Frame],
    terms: Sequence[str],
    reason: str,
    ocr: OCR | None = None,
    scene_text: SceneReader | None = None,
) -> Redaction:
    """Black out identifying text in ``frames`` (one file's) in place; withhold frames where some stays legible
    (``_clean_frames``). A check that runs out of time withholds the frames unread (the file and its header facts
    are kept: nothing of it is lost, and nothing unread is shown). Any other fault of the check fails the file with
    ``OCRUnavailableError`` (its pixels are not shown), not with an error that blames the file's header."""
    started = time.perf_counter()
    try:
        return _clean_frames(frames, terms, reason, ocr, scene_text)
    except OCRTimeoutError:
        logger.warning("burned-in text check ran out of time: %d frame(s) withheld unread", len(frames))
        for frame in frames:
            _blank(frame)
        return Redaction(reason=reason, withheld=True, seconds=time.perf_counter() - started, timed_out=True)
    except (IngestError, MemoryError):
        raise
    except Exception as exc:
        logger.error("burned-in text check failed: %s", type(exc).__name__)  # the type only: no pixel or text data
        raise OCRUnavailableError("The text check of the image failed; the image was not shown.") from None


def _clean_frames(
    frames: Sequence[Frame],
    terms: Sequence[str],
    reason: str,
    ocr: OCR | None = None,
    scene_text: SceneReader | None = None,
) -> Redaction:
    """Black out identifying text in ``frames`` (one file's) in place; withhold frames where some stays legible.

    Multi-frame files (cines) carry the same overlay on every frame: the first and last frames are read, their
    boxes applied to all, and the residual check reads the brightest value of every redacted pixel over the
    frames, so text shown in any one frame is seen.
    """
    engine = ocr if ocr is not None else default_ocr()
    scene = scene_text if scene_text is not None else default_scene_text()
    started = time.perf_counter()
    if not frames:
        return Redaction(reason=reason)
    shape = (int(frames[0].values.shape[0]), int(frames[0].values.shape[1]))
    probes = [frames[0]] if len(frames) == 1 else [frames[0], frames[-1]]
    boxes: list[RedactionBox] = []
    marks: list[RedactionBox] = []  # annotation read with confidence ("AP", "PORTABLE", "L"): boxes stop short of it
    identified = False
    passes = 0
    tallest = float("inf")  # frame px: a word taller than this is not print (``_tallest_print``)
    # the lines the scene-text models find and read in each probe, as shown and in local contrast
    seen = [[_scene_words(scene, frame, contrast) for contrast in (False, True)] for frame in probes]
    for frame, scene_words in zip(probes, seen, strict=True):
        readings = [_read(engine, frame, threshold, invert, contrast) for invert, threshold, contrast in _DETECT_PASSES]
        readings += _read_pages(engine, frame)
        passes += len(readings)
        tallest = min(tallest, _tallest_print([w for words, scale, _ in readings for w in _unscaled(words, scale)]))
        for number, (words, scale, grey) in enumerate(readings):
            words = _unseen_large(words, scale, tallest, [w for ws, _ in scene_words for w in ws])
            regions, _, found = _to_redact(words, terms, grey.shape[0], tallest * scale)
            if number >= len(_DETECT_PASSES):  # a page of print alone: identifying text and names read surely
                regions = [r for r in regions if r.identifying] + [_region([w]) for w in _sure_names(words, terms)]
            identified = identified or found
            boxes.extend(_boxes([_extend(grey, r) for r in regions], scale, shape))
            marks.extend(_marks(words, terms, scale, shape))
    vertical_scene: list[RedactionBox] = []  # over lines running up or down the frame the scene-text models read
    printed: list[_Line] = []  # lines of print found without OCR
    unread: list[RedactionBox] = []  # lines of print at the edges that no reading could make out
    # per probe: its grey as shown, its planes and their stroke maps, and those of its grey alone when it is in colour
    # (for the horizontal and the vertical lines)
    strokes = [
        (grey, planes, _strokes_of(planes), _strokes_of([grey]) if _coloured(planes) else ())
        for frame in probes
        for grey, planes in [(_grey_for_ocr(frame), _planes(frame))]
    ]
    for grey, planes, maps, grey_maps in strokes:  # lines the readings left out, read enlarged
        every = _print_lines(maps, also=grey_maps)
        printed.extend(every)
        lines = _proposals(every, boxes)
        if not lines:
            continue
        words = _read_lines(engine, planes, maps, lines, grey_maps)
        passes += 1
        regions = []
        for number in range(len(lines)):  # line by line: words read over anatomy may not chain lines into a block
            found_regions, _, found = _to_redact([w for w in words if w.line[0] == number], terms, shape[0], tallest)
            regions.extend(found_regions)
            identified = identified or found
        boxes.extend(_boxes([_extend(grey, r) for r in regions], 1.0, shape))
        marks.extend(_marks(words, terms, 1.0, shape))
        unread.extend(_unread_at_border(lines, words, shape, planes, maps))
    for scene_words in seen:  # what the scene-text models read
        for words, turned in scene_words:
            passes += 1
            regions, _, found = _scene_regions(words, terms, shape[0], tallest)
            identified = identified or found
            boxes.extend(_boxes(regions, 1.0, shape, tight=True))  # they span their lines: not grown over the ground
            marks.extend(_marks(words, terms, 1.0, shape))
            found_boxes, _, found = _turned_boxes(turned, terms, tallest)
            identified = identified or found
            vertical_scene.extend(found_boxes)
    vertical: list[RedactionBox] = [*vertical_scene]  # not widened along (horizontal) lines of print
    for grey, planes, maps, grey_maps in strokes:  # print running up or down the frame (a radiograph's edge)
        found_boxes, found, read = _vertical_print(engine, planes, maps, boxes, terms, grey, tallest, grey_maps)
        passes += read
        vertical.extend(found_boxes)
        identified = identified or found
    boxes = _merge(_spare(_along_lines(boxes, printed), marks) + _spare_marked(unread, marks) + vertical)
    for frame in frames:
        _fill(frame, boxes)
    # Residual check: read the redacted pixels again, as shown and as local contrast (the coloured print alone was
    # read above; read again here it withheld an ECG page for what OCR made of its grid). Identifying text found
    # there (a date, an ID-like number, a label, a header identifier) withholds the file's frames; name-like words
    # only are blacked out and the pixels read once more.
    withheld = False
    for _check in range(_RESIDUAL_CHECKS):
        residual_frame = frames[0] if len(frames) == 1 else _brightest(frames)
        extra: list[RedactionBox] = []
        strong = False
        residual = [
            _read(engine, residual_frame, _RESIDUAL_THRESHOLD if not contrast else 0, contrast=contrast)
            for contrast in (False, True)  # as shown, and its local contrast (faint text the first reading missed)
        ]
        passes += len(residual) + 1
        # as the scene-text models read it (print over anatomy, which Tesseract takes for picture): in frame pixels,
        # judged line by line, their boxes not grown; their lines also tell large print from texture read as words
        # (``_unseen_large``: an MR tumour read in local contrast as "ANY", 70 px tall, took a box over it)
        residual_words, turned = _scene_words(scene, residual_frame)
        for words, scale, grey in residual:
            words = _unseen_large(words, scale, tallest, residual_words)
            left, found_strong, found = _to_redact(words, terms, grey.shape[0], tallest * scale)
            strong = strong or found_strong
            identified = identified or found
            extra.extend(_boxes([_extend(grey, r) for r in left], scale, shape))
            marks.extend(_marks(words, terms, scale, shape))
        words = residual_words
        left, found_strong, found = _scene_regions(words, terms, shape[0], tallest)
        turned_left, turned_strong, turned_found = _turned_boxes(turned, terms, tallest)
        strong = strong or found_strong or turned_strong
        identified = identified or found or turned_found
        extra.extend(_boxes(left, 1.0, shape, tight=True) + turned_left)
        marks.extend(_marks(words, terms, 1.0, shape))
        extra = _spare(extra, marks)
        if not extra:
            break
        if strong:
            # Fail safe (issue 16: "any remaining identifier blocks the image"): a date, an ID-like number, a
            # label or a header identifier still legible after redaction means the first readings missed text on
            # this image, and what else they missed cannot be known: the frames are withheld, not patched.
            withheld = True
            break
        boxes = _merge(boxes + extra)
        for frame in frames:
            _fill(frame, extra)
    if withheld:
        for frame in frames:
            _blank(frame)
    seconds = time.perf_counter() - started
    logger.info(
        "burned-in text: %d frame(s), %d box(es), %d OCR pass(es), %s, %.0f ms",
        len(frames), len(boxes), passes, "withheld" if withheld else "clean", seconds * 1000,
    )  # fmt: skip
    return Redaction(
        reason=reason, boxes=tuple(boxes), identifiers_found=identified, withheld=withheld, ocr_passes=passes,
        seconds=seconds,
    )  # fmt: skip


_MARK_CONFIDENCE = 60


def _marks(words: Sequence[Word], terms: Sequence[str], scale: float, shape: tuple[int, int]) -> list[RedactionBox]:
    """Boxes (in frame pixels) of annotation words read with confidence: laterality and view markers, units."""
    rows, cols = shape
    out = []
    for w in words:
        norm = _norm(w.text)
        if (len(norm) >= 2 or norm in ("L", "R")) and norm in _KEEP and w.confidence >= _MARK_CONFIDENCE:
            if _matches_identifier(norm, terms):
                continue
            x0, y0 = max(0, int(w.left / scale)), max(0, int(w.top / scale))
            x1, y1 = (
                min(cols, int(np.ceil((w.left + w.width) / scale))),
                min(rows, int(np.ceil((w.top + w.height) / scale))),
            )
            if x1 > x0 and y1 > y0:
                out.append(RedactionBox(x0, y0, x1 - x0, y1 - y0))
    return out


def _spare(boxes: Sequence[RedactionBox], marks: Sequence[RedactionBox]) -> list[RedactionBox]:
    """Boxes of one line cut back so that they stop short of the annotation words they reached by growing along
    the line or by padding, from the side the mark is on. A mark in the middle of a box (between identifying words),
    or on one line of a box of stacked lines, stays under it: cutting there would leave identifying text."""
    out = []
    for box in boxes:
        x0, y0, x1, y1 = box.x, box.y, box.x + box.width, box.y + box.height
        for m in marks:
            mx0, my0, mx1, my1 = m.x, m.y, m.x + m.width, m.y + m.height
            if mx1 <= x0 or x1 <= mx0 or my1 <= y0 or y1 <= my0:
                continue
            if m.height < 0.5 * (y1 - y0):
                continue  # a box of stacked lines: cutting at a mark on one line would open the others
            gap, beyond = 2, max(m.width, m.height)  # past the mark the box may reach by a mark's size at most
            cuts = [  # the box left of the mark, right of it: (area kept, new edges, how far past the mark)
                ((mx0 - gap - x0) * (y1 - y0), (x0, y0, mx0 - gap, y1), x1 - mx1),
                ((x1 - mx1 - gap) * (y1 - y0), (mx1 + gap, y0, x1, y1), mx0 - x0),
            ]
            fitting = [(kept, edges) for kept, edges, past in cuts if past <= beyond]
            if fitting:
                kept, edges = max(fitting)
                if kept >= 0.6 * (x1 - x0) * (y1 - y0):
                    x0, y0, x1, y1 = edges
        if x1 > x0 and y1 > y0:
            out.append(RedactionBox(x0, y0, x1 - x0, y1 - y0))
    return out


def _brightest(frames: Sequence[Frame]) -> Frame:
    """A frame holding, per pixel, the value shown brightest over all frames (text in any frame shows in it)."""
    stack = np.stack([f.values for f in frames])
    values = stack.min(axis=0) if frames[0].invert and frames[0].values.ndim == 2 else stack.max(axis=0)
    first = frames[0]
    return Frame(values, first.photometric, first.invert, list(first.file_windows), first.natural)


def _merge(boxes: list[RedactionBox]) -> list[RedactionBox]:
    """Boxes without exact duplicates, in reading order."""
    return sorted(set(boxes), key=lambda b: (b.y, b.x, b.width, b.height))
