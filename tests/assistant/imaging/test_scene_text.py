"""The scene-text models (DB detector and CTC line reader, PP-OCRv4 weights from the rapidocr_onnxruntime wheel, run
by onnxruntime): real models, a real frame (a VQA-RAD radiograph) with print drawn on it at test time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from assistant.imaging import burned_in, scene_text
from assistant.imaging.burned_in import Word
from assistant.imaging.records import Frame
from assistant.imaging.scene_text import (
    DBTextDetector,
    LineReader,
    ReadWord,
    TextBox,
    TextDetectorUnavailableError,
    TurnedLine,
)
from assistant.imaging.study import PhotometricInterpretation
from tests.assistant.imaging import burned_in_fixtures as fx

MODEL = scene_text.wheel_model()
READER = scene_text.wheel_model("models/ch_PP-OCRv4_rec_infer.onnx")
needs_model = pytest.mark.skipif(
    MODEL is None or READER is None, reason="rapidocr_onnxruntime (the models) is not installed"
)


def _picture() -> np.ndarray:
    """A real radiograph from VQA-RAD as RGB, 512 px wide at most."""
    path = sorted((fx.SHARED / "vqa_rad" / "images").glob("*.jpg"))[0]
    image = PILImage.open(path).convert("RGB")
    image.thumbnail((512, 512))
    return np.asarray(image).copy()


def _inside(box: TextBox, x: int, y: int) -> bool:
    return box.left <= x < box.right and box.top <= y < box.bottom


@pytest.fixture(scope="module")
def detector() -> DBTextDetector:
    assert MODEL is not None
    return DBTextDetector(MODEL)


PRINT = "LINDQVIST INGRID 1957-03-02"


def _printed() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The radiograph with ``PRINT`` in mid-grey over its anatomy, and the print's box (left, top, right, bottom)."""
    image = PILImage.fromarray(_picture())
    font = ImageFont.truetype(str(fx.font_paths()[0]), 14)
    x, y = image.width // 4, image.height // 2
    draw = ImageDraw.Draw(image)
    draw.text((x, y), PRINT, font=font, fill=(170, 170, 170))
    left, top, right, bottom = (int(v) for v in draw.textbbox((x, y), PRINT, font=font))
    return np.asarray(image), (left, top, right, bottom)


@needs_model
def test_print_over_a_radiograph_is_found_and_plain_anatomy_is_not(detector: DBTextDetector) -> None:
    picture = _picture()
    rows = picture.shape[0]
    assert not [b for b in detector.detect(picture) if b.score > 0.8 and (b.bottom - b.top) > 0.2 * rows]
    image, (left, top, right, bottom) = _printed()
    boxes = detector.detect(image)
    hits = [b for b in boxes if _inside(b, (left + right) // 2, (top + bottom) // 2)]
    assert hits, f"no box over the print among {boxes}"
    assert hits[0].right - hits[0].left < 1.6 * (right - left)  # the line, not the frame
    assert all(b.score >= 0.5 for b in boxes) and boxes == sorted(boxes, key=lambda b: -b.score)


@needs_model
def test_the_line_reader_reads_the_words_of_a_found_line_in_place(detector: DBTextDetector) -> None:
    assert READER is not None
    image, (left, top, right, bottom) = _printed()
    box = next(b for b in detector.detect(image) if _inside(b, (left + right) // 2, (top + bottom) // 2))
    words = LineReader(READER).read(image, box)
    # every letter in order; the reader (trained mostly on Chinese) drops some spaces between words, not the date's
    assert "".join(w.text for w in words) == PRINT.replace(" ", ""), words
    assert words[-1].text == "1957-03-02"
    assert all(w.confidence >= 80 for w in words)
    assert words[0].left <= left + 4 and words[-1].right >= right - 4  # boxes in frame pixels, spanning the print
    assert all(a.right <= b.left + 2 for a, b in zip(words, words[1:], strict=False))  # left to right, apart


@needs_model
def test_a_frame_of_flat_grey_has_no_text(detector: DBTextDetector) -> None:
    assert detector.detect(np.full((300, 400, 3), 90, np.uint8)) == []


@needs_model
def test_a_wrong_image_type_is_refused_clearly(detector: DBTextDetector) -> None:
    with pytest.raises(ValueError, match=r"\(rows, cols, 3\) uint8"):
        detector.detect(np.zeros((40, 40), np.uint16))


def test_a_missing_model_is_a_set_up_error_not_the_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(scene_text, "_DEFAULT", None)
    monkeypatch.setenv(scene_text.MODEL_ENV, str(tmp_path / "missing.onnx"))
    with pytest.raises(TextDetectorUnavailableError, match="text detector"):
        scene_text.default_scene_text()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(TextDetectorUnavailableError, match="could not be loaded"):
        DBTextDetector(broken).detect(np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(TextDetectorUnavailableError, match="could not be loaded"):
        LineReader(broken).read(np.zeros((40, 40, 3), np.uint8), TextBox(0, 0, 40, 20, 1.0))


class _ScriptedScene:
    """Scene-text models that find one line and read it as given (the models' boundary) on the first ``times``
    calls, and nothing after (the line blacked out), counting the calls."""

    def __init__(self, box: TextBox, words: list[ReadWord], times: int = 1) -> None:
        self.box, self.words, self.times, self.calls = box, words, times, 0

    def read_lines(self, rgb: np.ndarray) -> tuple[list[tuple[TextBox, list[ReadWord]]], list[TurnedLine]]:
        self.calls += 1
        return ([(self.box, list(self.words))] if self.calls <= self.times else []), []


class _Blind:
    """A Tesseract that reads nothing (print over anatomy it takes for picture)."""

    def read(self, grey: np.ndarray, threshold: int | None = None) -> list[Word]:
        return []


def _frame() -> Frame:
    return Frame(_picture()[..., 0].copy(), PhotometricInterpretation.MONOCHROME2, False)


def test_a_date_only_the_scene_text_models_read_is_blacked_out() -> None:
    frame = _frame()
    box = TextBox(100, 120, 220, 136, 0.9)
    scene = _ScriptedScene(box, [ReadWord(100, 120, 220, 136, "1957-03-02", 99.0)])
    redaction = burned_in.clean_frames([frame], (), "test", _Blind(), scene)
    assert redaction.boxes and not redaction.withheld
    assert (frame.values[122:134, 104:216] == 0).all()  # the date's pixels are black
    assert frame.values[200:, :].any()  # the rest of the picture is not
    assert scene.calls == 3  # the first readings (as shown, in local contrast) and the residual check


def test_a_word_the_models_read_unsurely_or_of_annotation_stays() -> None:
    frame = _frame()
    before = frame.values.copy()
    words = [ReadWord(100, 120, 140, 136, "Lrwq", 45.0), ReadWord(150, 120, 190, 136, "AXIAL", 99.0)]
    scene = _ScriptedScene(TextBox(100, 120, 190, 136, 0.9), words)
    redaction = burned_in.clean_frames([frame], (), "test", _Blind(), scene)
    assert not redaction.boxes and not redaction.withheld
    assert (frame.values == before).all()


def test_an_identifier_the_models_still_read_after_redaction_withholds_the_frame() -> None:
    """The residual check reads with the models too: a header identifier they read there withholds the frame."""
    frame = _frame()
    terms = burned_in.identifier_terms(["Lindqvist^Ingrid"], [])

    scene = _ScriptedScene(TextBox(100, 120, 220, 136, 0.9), [ReadWord(100, 120, 220, 136, "LINDQVIST", 97.0)], 9)
    redaction = burned_in.clean_frames([frame], terms, "test", _Blind(), scene)
    assert redaction.withheld and redaction.identifiers_found
    assert np.unique(frame.values).size == 1


def _line(*texts: str) -> list[Word]:
    return [Word(30 * i, 0, 25, 12, text, 95.0, (0, 0, 0)) for i, text in enumerate(texts)]


@pytest.mark.parametrize(
    ("texts", "groups"),
    [
        (("Tel", "030", "0490", "710"), [["030", "0490", "710"]]),
        (("+33", "4", "83", "39", "72", "39"), [["+33", "4", "83", "39", "72", "39"]]),
        (("(030)", "555-1234"), [["(030)", "555-1234"]]),
        (("kVp", "120", "mAs", "45"), []),  # values with their units between them
        (("Slice", "57/220", "1.25", "mm"), []),  # a slash or a decimal point: values
        (("12", "34"), []),  # too few digits for a phone number or an ID
    ],
)
def test_a_number_printed_in_groups_is_one_identifier(texts: tuple[str, ...], groups: list[list[str]]) -> None:
    assert [[w.text for w in g] for g in burned_in._grouped_numbers(_line(*texts))] == groups


def test_a_value_run_into_its_label_is_not_read_as_part_of_a_date() -> None:
    """The line reader drops spaces ("RI-0.74" for "RI -0.74"): a partial date needs one separator used twice."""
    assert not burned_in._is_strong_pattern("RI-0.74")
    assert not burned_in._is_strong_pattern("T-score-1.8")
    for date in ("21/07/", "/07/1967", "12.5.2020", "1968/06/15", "01-Sep"):
        assert burned_in._is_strong_pattern(date), date


def test_a_large_word_read_where_the_detector_saw_no_line_is_texture() -> None:
    """Tesseract reads a row of round MR slices as "686666" (confidence 82), 50 px tall beside 20 px labels: unless
    the scene-text models found a line there, it is dropped; large print they found, and small print, stay."""
    labels = [Word(10 + 60 * i, 10, 50, 20, "Label", 95.0, (1, 1, 1)) for i in range(3)]
    tallest = burned_in._tallest_print(labels)
    slices = Word(20, 200, 300, 50, "686666", 82.0, (2, 1, 1))
    title = Word(20, 300, 300, 50, "07-NOV-2023", 90.0, (3, 1, 1))
    seen = [Word(25, 295, 290, 60, "07-NOV-2023", 99.0, (0, 0, 0))]
    kept = burned_in._unseen_large([*labels, slices, title], 1.0, tallest, seen)
    assert slices not in kept and title in kept and all(w in kept for w in labels)
    # read at twice the size (scale 2): the same words, the same verdicts
    doubled = [Word(w.left * 2, w.top * 2, w.width * 2, w.height * 2, w.text, w.confidence, w.line) for w in kept]
    assert len(burned_in._unseen_large(doubled, 2.0, tallest, seen)) == len(kept)
    assert burned_in._unseen_large([slices], 1.0, float("inf"), []) == [slices]  # no sure print: no measure


def test_an_identifier_read_unsurely_takes_no_stacked_lines_with_it() -> None:
    for confidence, stacks in ((51.0, False), (90.0, True)):
        regions, strong, _ = burned_in._to_redact([Word(20, 200, 120, 30, "686660", confidence, (1, 1, 1))], ())
        assert strong and len(regions) == 1 and regions[0].stack is stacks


VERTICAL = "OKONKWO ADA ID 48213377"


def _printed_up(turns: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The radiograph with ``VERTICAL`` in light grey along its left edge, and the print's box in the frame: running
    up (``turns`` -1: it reads turned a quarter turn clockwise) or down (1: counter-clockwise)."""
    picture = PILImage.fromarray(_picture())
    font = ImageFont.truetype(str(fx.font_paths()[0]), 15)
    strip = PILImage.new("L", (int(font.getlength(VERTICAL)) + 8, 24), 0)
    ImageDraw.Draw(strip).text((4, 3), VERTICAL, font=font, fill=220)
    turned = strip.rotate(90 if turns == -1 else -90, expand=True)
    x, y = 6, max(4, (picture.height - turned.height) // 2)
    picture.paste((220, 220, 220), (x, y), turned)
    ink = np.nonzero(np.asarray(turned) > 60)
    box = (x + int(ink[1].min()), y + int(ink[0].min()), x + int(ink[1].max()) + 1, y + int(ink[0].max()) + 1)
    return np.asarray(picture).copy(), box


@needs_model
@pytest.mark.parametrize("turns", [-1, 1], ids=["running up", "running down"])
def test_a_line_running_up_or_down_the_edge_is_read_turned_and_mapped_back(turns: int) -> None:
    assert MODEL is not None and READER is not None
    image, (left, top, right, bottom) = _printed_up(turns)
    across, turned = scene_text.SceneText(DBTextDetector(MODEL), LineReader(READER)).read_lines(image)
    x, y = (left + right) // 2, (top + bottom) // 2
    line = next(t for t in turned if t.left <= x < t.right and t.top <= y < t.bottom)
    assert line.turns == turns
    assert "".join(w.text for w in line.words) == VERTICAL.replace(" ", ""), line.words
    x0, y0, x1, y1 = line.to_frame(0, 0, line.shape[1], line.shape[0])  # the whole turned region: the region
    assert (x0, y0, x1, y1) == (line.left, line.top, line.right, line.bottom)
    frame = Frame(image[..., 0].copy(), PhotometricInterpretation.MONOCHROME2, False)
    burned_in.clean_frames([frame], (), "test", ocr=_Blind(), scene_text=_Models(across, turned))
    ink = image[top:bottom, left:right, 0] > 150
    assert (frame.values[top:bottom, left:right][ink] == 0).mean() >= 0.95  # the name and ID are blacked out
    assert (frame.values[:, right + 40 :] == image[:, right + 40 :, 0]).mean() > 0.97  # the anatomy is not


@pytest.mark.parametrize("turns", [1, -1])
def test_a_turned_rectangle_maps_back_to_the_frame_pixels_it_came_from(turns: int) -> None:
    region = np.arange(7 * 3).reshape(7, 3)  # a line 7 px tall and 3 px wide at frame (10, 20)
    frame = np.zeros((40, 40), int)
    frame[20:27, 10:13] = region
    line = TurnedLine(10, 20, 13, 27, turns, [])
    turned = np.rot90(region, turns)
    assert turned.shape == line.shape
    for left, top, right, bottom in [(0, 0, 7, 3), (2, 1, 5, 2), (6, 0, 7, 3)]:
        x0, y0, x1, y1 = line.to_frame(left, top, right, bottom)
        assert sorted(frame[y0:y1, x0:x1].ravel()) == sorted(turned[top:bottom, left:right].ravel())


class _Models:
    """The scene-text models' reading of one image, given (the models' boundary), on every call."""

    def __init__(self, across: list[tuple[TextBox, list[ReadWord]]], turned: list[TurnedLine]) -> None:
        self.across, self.turned, self.calls = across, turned, 0

    def read_lines(self, rgb: np.ndarray) -> tuple[list[tuple[TextBox, list[ReadWord]]], list[TurnedLine]]:
        self.calls += 1
        return (self.across, self.turned) if self.calls <= 2 else ([], [])


def _words(line: int, *placed: tuple[int, str, float]) -> list[Word]:
    """Words of one detector line at (left, text, confidence), 12 px tall, as wide as 7 px per character."""
    return [Word(left, 100, 7 * len(text), 12, text, conf, (line, 0, 0)) for left, text, conf in placed]


def _covers(region: burned_in._Region, word: Word) -> bool:
    return region.left <= word.left and word.left + word.width <= region.right


def test_a_name_read_surely_takes_the_name_parts_beside_it_not_markers_or_far_words() -> None:
    """"Sato, Anna S." over anatomy: the models read "Anna" surely, and the surname and initial beside it would stay
    legible; a side marker next to it and a word a gap away are no part of the name."""
    placed = [(100, "Sato,", 88.0), (140, "Anna", 95.0), (175, "S.", 93.0), (200, "R", 99.0), (300, "Liver", 97.0)]
    words = _words(0, *placed)
    regions, _, _ = burned_in._scene_regions(words, (), 0, float("inf"))
    name = next(r for r in regions if _covers(r, words[1]))
    assert _covers(name, words[0]) and _covers(name, words[2])
    assert not _covers(name, words[3]) and not _covers(name, words[4])


def test_an_identifier_takes_the_piece_of_its_line_the_detector_found_apart_not_values_or_other_rows() -> None:
    """The detector split "Ref:PAPADOPOULOS^MATEUS" over a gap in the anatomy into "Ref:PAP" (read "RIPAF") and the
    rest: the piece goes with the name; a value on its row and a line below stay."""
    words = (
        _words(0, (243, "OPOULOS^MATE", 85.0))
        + _words(1, (199, "RIPAF", 61.0))
        + _words(2, (340, "0.6mm", 81.0))
        + [Word(243, 114, 40, 12, "Axial", 90.0, (3, 0, 0))]
    )
    regions, strong, _ = burned_in._scene_regions(words, (), 0, float("inf"))
    assert strong and len(regions) == 1
    assert regions[0].left == 199 and regions[0].right == 243 + 7 * 12  # "RIPAF" joined; "0.6mm" 13 px away is not
    assert regions[0].top == 100 and regions[0].bottom == 112  # the line below is not taken


class _ScriptedLines:
    """Scene-text models that find the given lines, each read as given, on the first call, and nothing after."""

    def __init__(self, lines: list[tuple[TextBox, list[ReadWord]]]) -> None:
        self.lines, self.calls = lines, 0

    def read_lines(self, rgb: np.ndarray) -> tuple[list[tuple[TextBox, list[ReadWord]]], list[TurnedLine]]:
        self.calls += 1
        return (list(self.lines) if self.calls == 1 else []), []


def test_a_header_line_read_as_nothing_goes_with_the_identifying_lines_stacked_under_it() -> None:
    """A 384 px MR mosaic's header: the models found "Referring:HALVORSEN^LUCINDA" (9 px) but read nothing of it,
    and read the study date under it. The unread line goes with the date; a line of values read surely under it
    and an unread line far below stay."""
    frame = _frame()
    frame.values[170:290, :160] = 40  # a dark console band: every line's pixels can be told black or not
    unread = TextBox(10, 183, 150, 197, 0.85)
    date = TextBox(10, 200, 110, 214, 0.86)
    values = TextBox(10, 217, 80, 231, 0.8)
    far = TextBox(10, 260, 150, 274, 0.8)
    scene = _ScriptedLines(
        [
            (unread, []),
            (date, [ReadWord(10, 200, 110, 214, "Study:18.10.2018", 93.0)]),
            (values, [ReadWord(10, 217, 40, 231, "kVp", 95.0), ReadWord(45, 217, 80, 231, "120", 95.0)]),
            (far, []),
        ]
    )
    redaction = burned_in.clean_frames([frame], (), "test", _Blind(), scene)
    assert not redaction.withheld
    assert (frame.values[186:194, 14:146] == 0).all()  # the unread line over the date
    assert (frame.values[203:211, 14:106] == 0).all()  # the date
    assert (frame.values[222:230, 14:76] != 0).all()  # the values under it
    assert (frame.values[263:271, 14:146] != 0).all()  # the line far below


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("kV68mA661", True),
        ("LAO28CRA17", True),
        ("W:1270L:527", True),
        ("kVp103mAs3.7", True),
        ("Se7Im96", True),
        ("A6459977", False),  # an ID: one long run of digits
        ("MRN12345678", False),
        ("AB12CD34", False),  # labels no console prints
        ("W350140", False),  # "W 350 L 40" with its L read as 1: not told from an ID
    ],
)
def test_acquisition_values_read_run_together_are_not_an_id(text: str, values: bool) -> None:
    """The scene-text reader drops the spaces of "kV 68 mA 661": five digits, but values, not an ID."""
    assert burned_in._run_together_values(text) is values
    if values or sum(c.isdigit() for c in text) >= 5:
        assert burned_in._is_strong_pattern(text) is not values


@pytest.mark.parametrize(
    ("text", "index"),
    [("38/142", True), ("57/107", True), ("12/2023", False), ("142/38", False), ("12345/99999", False)],
)
def test_an_image_index_is_not_an_id_but_a_month_and_year_stays_a_date(text: str, index: bool) -> None:
    assert burned_in._image_index(text) is index
    assert burned_in._is_strong_pattern(text) is not index


def test_values_in_the_bottom_band_are_not_taken_for_names() -> None:
    """The band rule blacks out faint names read unsurely at a console's edge; numbers there are values."""
    for text in ("1270", "43.7mm"):
        assert not burned_in._border_text(Word(950, 600, 30, 18, text, 90.0, (0, 0, 0)), 640)
    assert burned_in._border_text(Word(950, 600, 30, 18, "famamo", 37.0, (0, 0, 0)), 640)


def test_an_angiogram_corner_of_values_read_run_together_is_kept() -> None:
    """An XA frame's lower corner as the models read it: neither line is identifying, so neither goes."""
    words = [Word(0, 481, 90, 18, "LAO28CRA17", 92.0, (0, 0, 0)), Word(0, 495, 85, 17, "kV68mA661", 93.0, (1, 0, 0))]
    regions, strong, identified = burned_in._scene_regions(words, (), 512, float("inf"))
    assert regions == [] and not strong and not identified
    # as Tesseract reads it, spaced, and partly run together in the bottom band: labels of values are not names
    spaced = [Word(x, 481, 24, 18, t, 90.0, (0, 0, 0)) for x, t in ((0, "LAO"), (28, "28"), (56, "CRA1"))]
    spaced += [Word(0, 495, 24, 17, "kV", 90.0, (1, 0, 0)), Word(28, 495, 60, 17, "68mA661", 90.0, (1, 0, 0))]
    assert burned_in._to_redact(spaced, (), 512) == ([], False, False)
    # a surname of three letters with no value after it stays name-like
    assert burned_in._to_redact([Word(0, 200, 30, 18, "Lao", 90.0, (0, 0, 0))], (), 512)[0]


SLANTED = "HOLLOWAY 1962-11-04"


def _printed_slanted(degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The radiograph with ``SLANTED`` in light grey over its anatomy, rising ``degrees`` to the right (a label
    photographed askew), and the print's ink mask."""
    picture = PILImage.fromarray(_picture())
    font = ImageFont.truetype(str(fx.font_paths()[0]), 16)
    strip = PILImage.new("L", (int(font.getlength(SLANTED)) + 10, 28), 0)
    ImageDraw.Draw(strip).text((5, 4), SLANTED, font=font, fill=230)
    slanted = strip.rotate(degrees, PILImage.Resampling.BILINEAR, expand=True)
    x, y = picture.width // 5, picture.height // (3 if degrees > 0 else 10)  # over the lung, not the bright heart
    picture.paste((230, 230, 230), (x, y), slanted)
    ink = np.zeros((picture.height, picture.width), bool)
    ink[y : y + slanted.height, x : x + slanted.width] = np.asarray(slanted) > 120
    return np.asarray(picture).copy(), ink


@needs_model
@pytest.mark.parametrize("degrees", [22.0, -30.0])
def test_a_line_printed_at_a_slant_is_read_turned_level_and_blacked_out(degrees: float) -> None:
    assert MODEL is not None and READER is not None
    image, ink = _printed_slanted(degrees)
    across, turned = scene_text.SceneText(DBTextDetector(MODEL), LineReader(READER)).read_lines(image)
    ys, xs = np.nonzero(ink)
    line = next(t for t in turned if t.left <= xs.mean() < t.right and t.top <= ys.mean() < t.bottom)
    assert line.turns == 0 and abs(line.angle + degrees) < 5  # turned back level by about the slant
    assert "".join(w.text for w in line.words) == SLANTED.replace(" ", ""), line.words
    frame = Frame(image[..., 0].copy(), PhotometricInterpretation.MONOCHROME2, False)
    burned_in.clean_frames([frame], (), "test", ocr=_Blind(), scene_text=_Models(across, turned))
    assert (frame.values[ink] == 0).mean() >= 0.95  # the name and the date are blacked out
    # in pieces along the line: not the rectangle round it (a diagonal's square)
    ys, xs = np.nonzero(ink)
    square = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    blacked = int((frame.values == 0).sum() - (image[..., 0] == 0).sum())
    assert blacked < 0.75 * square, (blacked, square)


class _OneLine:
    """A detector that finds one line at a small slant (the models' boundary)."""

    def __init__(self, angle: float) -> None:
        self.angle = angle

    def detect(self, rgb: np.ndarray) -> list[TextBox]:
        return [TextBox(40, 100, 200, 124, 0.9, self.angle, 5.0)]


class _Reader:
    """A line reader that reads a line across as ``across`` and anything else (the region turned level) as an
    accession number, counting its calls."""

    def __init__(self, across: list[ReadWord]) -> None:
        self.across, self.calls = across, 0

    def read(self, rgb: np.ndarray, box: TextBox) -> list[ReadWord]:
        self.calls += 1
        return list(self.across) if self.calls == 1 else [ReadWord(5, 5, 150, 20, "AccE4180651", 98.0)]


@pytest.mark.parametrize(
    ("angle", "across", "level"),
    [
        (6.0, [], True),  # read across as nothing: read level too, and that reading is kept
        (6.0, [ReadWord(40, 100, 200, 124, "Ax", 45.0)], True),  # read across unsurely
        (6.0, [ReadWord(40, 100, 200, 124, "4.6cm", 99.0)], False),  # read across surely: left so
        (2.0, [], False),  # too little slant to turn
    ],
)
def test_a_line_at_a_small_slant_is_read_level_when_read_across_it_gave_nothing_sure(
    angle: float, across: list[ReadWord], level: bool
) -> None:
    reader = _Reader(across)
    lines, turned = scene_text.SceneText(_OneLine(angle), reader).read_lines(np.zeros((300, 300, 3), np.uint8))  # type: ignore[arg-type]
    assert bool(turned) is level and len(lines) == (0 if level else 1)
    assert reader.calls == (2 if level else 1)


@pytest.mark.parametrize("degrees", [20.0, -35.0, 50.0])
def test_a_point_of_a_region_turned_by_an_angle_maps_back_to_where_it_was(degrees: float) -> None:
    image = np.zeros((60, 100), np.uint8)
    image[20, 70] = 255
    level = np.asarray(PILImage.fromarray(image).rotate(degrees, PILImage.Resampling.BILINEAR, expand=True))
    y, x = np.unravel_index(int(level.argmax()), level.shape)
    line = TurnedLine(10, 5, 110, 65, 0, [], degrees, (level.shape[0], level.shape[1]))
    x0, y0, x1, y1 = line.to_frame(int(x), int(y), int(x) + 1, int(y) + 1)
    assert x0 - 1 <= 10 + 70 <= x1 and y0 - 1 <= 5 + 20 <= y1
    assert line.to_frame(0, 0, level.shape[1], level.shape[0]) == (10, 5, 110, 65)  # all of it: the region
