"""Burned-in text: lines of print found without OCR (small, faint or lone text the whole-frame readings miss), read
again enlarged, and what is done with them (boxes widened along a line, unread lines at the edges blacked out).

Print is drawn with PIL at test time on flat, textured and smooth backgrounds; OCR is the real Tesseract binary.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

from assistant.imaging import burned_in
from assistant.imaging.burned_in import Word
from assistant.imaging.records import Frame
from assistant.imaging.study import PhotometricInterpretation, RedactionBox
from tests.assistant.imaging import burned_in_fixtures as fx

needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


def _printed(grey: np.ndarray, lines: list[tuple[int, int, str]], size: int, level: int) -> np.ndarray:
    """``grey`` with ``lines`` of text ((left, top, text)) drawn at ``size`` px in grey ``level``."""
    canvas = PILImage.fromarray(grey)
    font = fx._font(fx.font_paths()[0] if fx.font_paths() else None, size)
    draw = ImageDraw.Draw(canvas)
    for left, top, text in lines:
        draw.text((left, top), text, fill=level, font=font)
    return np.array(canvas)


def _frame(grey: np.ndarray) -> Frame:
    return Frame(grey, PhotometricInterpretation.MONOCHROME2, False)


def _lines_of(grey: np.ndarray) -> list[burned_in._Line]:
    return burned_in._print_lines(burned_in._strokes_of(burned_in._planes(_frame(grey))))


def _hits(lines: list[burned_in._Line], left: int, top: int, right: int, bottom: int) -> bool:
    return any(line.left < right and left < line.right and line.top < bottom and top < line.bottom for line in lines)


def test_small_and_faint_print_is_found_as_lines_but_texture_and_rulers_are_not() -> None:
    grey = np.full((300, 400), 60, np.uint8)
    grey[150:, :] = np.random.default_rng(5).integers(40, 120, size=(150, 400)).astype(np.uint8)  # speckle
    grey = _printed(grey, [(10, 10, "ACC# 40030943")], 10, 255)  # small and bright
    grey = _printed(grey, [(10, 60, "MERCY GENERAL HOSPITAL")], 13, 85)  # grey on grey: 25 levels
    grey[110:112, 200:380] = 250  # a ruler with ticks
    grey[104:110, 200:380:12] = 250
    lines = _lines_of(grey)
    assert _hits(lines, 10, 10, 100, 22) and _hits(lines, 10, 60, 200, 75)
    assert not _hits(lines, 200, 104, 380, 112)  # the ruler
    assert sum(1 for line in lines if line.top >= 150) <= 2  # speckle is not print


@needs_tesseract
def test_lines_read_enlarged_give_words_in_frame_pixels() -> None:
    """Small print low in a large dark frame is read in the mosaic; its words land where it is on the frame."""
    grey = _printed(np.full((400, 600), 20, np.uint8), [(12, 350, "2017-02-02"), (12, 372, "ACC# 40030943")], 12, 230)
    frame = _frame(grey)
    planes = burned_in._planes(frame)
    maps = burned_in._strokes_of(planes)
    lines = burned_in._proposals(burned_in._print_lines(maps), [])
    words = burned_in._read_lines(burned_in.TesseractOCR(), planes, maps, lines)
    numbers = [w for w in words if sum(c.isdigit() for c in w.text) >= 5]
    assert numbers and all(0 <= w.left <= 80 and 345 <= w.top <= 390 for w in numbers)


def test_a_box_is_widened_to_the_ends_of_its_line_of_print() -> None:
    line = burned_in._Line(10, 100, 210, 112, 3.0, False)
    (box,) = burned_in._along_lines([RedactionBox(60, 96, 40, 20)], [line])
    assert box.x <= 10 and box.x + box.width >= 210 and (box.y, box.height) == (96, 20)
    band = burned_in._Line(10, 80, 400, 140, 3.0, False)  # taller than the box: a band or two lines, not its line
    assert burned_in._along_lines([RedactionBox(60, 96, 40, 20)], [band]) == [RedactionBox(60, 96, 40, 20)]


def test_unread_print_at_the_edges_goes_but_not_marks_read_lines_or_the_middle() -> None:
    shape = (1000, 1000)
    edge = burned_in._Line(5, 500, 205, 515, 3.0, False)  # a long line at the left edge nobody could read
    middle = burned_in._Line(400, 500, 600, 515, 3.0, False)
    short = burned_in._Line(5, 300, 45, 315, 3.0, False)  # "5 cm"
    read = burned_in._Line(5, 700, 205, 715, 3.0, False)
    words = [Word(5, 700, 100, 15, "Uploader", 92.0, (3, 0, 0))]
    boxes = burned_in._unread_at_border([edge, middle, short, read], words, shape)
    assert len(boxes) == 1 and boxes[0].x <= 5 and boxes[0].x + boxes[0].width >= 205
    mark = RedactionBox(20, 500, 60, 15)  # "PORTABLE" read surely elsewhere: never blacked blind
    assert burned_in._spare_marked(boxes, [mark]) == []


def test_a_frame_of_fine_speckle_proposes_no_line() -> None:
    """Joining stroke parts is quadratic (a 1024 px frame of dashes took 12.7 s): a map with more than
    _MAX_COMPONENTS parts is texture, not print, and proposes nothing."""
    dashes = np.zeros((1024, 1024), np.uint8)
    dashes[::6, :] = np.where((np.arange(1024) // 12) % 2 == 0, 255, 0).astype(np.uint8)  # short bright dashes
    dashes[3::12, 6:] = dashes[::12, :-6]
    assert len(burned_in._components(dashes > 0, 2 * burned_in._PROPOSAL_HEIGHT[0])) > burned_in._MAX_COMPONENTS
    assert _lines_of(dashes) == []


class _CountingOCR:
    """OCR at its boundary (the binary): one word per line of the mosaic it is given, the calls counted."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def read(self, grey: np.ndarray, threshold: int | None = None) -> list[Word]:
        self.shapes.append(grey.shape)
        dark_rows = np.flatnonzero((grey < 128).any(axis=1))
        runs = np.split(dark_rows, np.flatnonzero(np.diff(dark_rows) > 1) + 1) if dark_rows.size else []
        return [Word(30, int(r[0]), 40, int(r[-1] - r[0] + 1), "WORD", 90.0, (0, 0, 0)) for r in runs]


def test_many_or_wide_lines_are_read_in_mosaics_tesseract_accepts() -> None:
    rows, cols = 3000, 6000
    plane = np.full((rows, cols), 255, np.uint8)
    lines = []
    for i in range(200):  # 200 lines 10 px tall (400 cuts, ~35,000 px stacked), the first frame-wide (24,000 px at 4x)
        top = 10 + i * 14
        plane[top + 2 : top + 8, 20 : cols - 20 if i == 0 else 600] = 0
        lines.append(burned_in._Line(20, top, cols - 20 if i == 0 else 600, top + 10, 3.0, True))
    strokes = (255 - plane).astype(np.float32)
    ocr = _CountingOCR()
    words = burned_in._read_lines(ocr, [plane], [strokes, strokes], lines)
    assert len(ocr.shapes) > 1 and all(h <= burned_in._MOSAIC_MAX_HEIGHT + 100 for h, _ in ocr.shapes)
    assert all(w <= burned_in._MOSAIC_MAX_WIDTH + 2 * burned_in._MOSAIC_GAP for _, w in ocr.shapes)
    assert {w.line for w in words} >= {(0, 0, 0), (199, 0, 0)}  # every line's words map back to it


def test_a_sure_read_of_a_surname_like_an_annotation_word_stays_name_like() -> None:
    terms: tuple[str, ...] = ()
    assert (
        burned_in._strength(Word(0, 0, 60, 12, "MEDINA", 92.0, (0, 0, 0)), terms) == 1
    )  # like "MEDIAL", but read surely
    assert burned_in._strength(Word(0, 0, 60, 12, "PORTABLI", 41.0, (0, 0, 0)), terms) == 0  # an unsure "PORTABLE"


@pytest.mark.parametrize(("ground", "ink"), [(40, 200), (215, 110)])
@pytest.mark.parametrize("found_dark", [False, True])
def test_a_line_is_cut_out_dark_on_light_whichever_stroke_map_found_it(ground: int, ink: int, found_dark: bool) -> None:
    """Between light letters lie dark "strokes" and between dark ones light: a line may be found in either map. The
    ground of the cut tells the print's polarity; both images given to Tesseract show dark print on white (light print
    on a dark band was passed on light on dark, and dark print found in the light map as its gaps)."""
    grey = _printed(np.full((120, 300), ground, np.uint8), [(20, 40, "E3239376 OKAFOR")], 18, ink)
    planes = burned_in._planes(_frame(grey))
    maps = burned_in._strokes_of(planes)
    line = burned_in._Line(18, 40, 200, 60, 3.0, found_dark)
    images, x0, y0, scale = burned_in._line_images(planes, maps, line)
    rows, cols = images[0].shape
    cut = grey[y0 : y0 + round(rows / scale), x0 : x0 + round(cols / scale)]
    ink_at = np.asarray(PILImage.fromarray(np.abs(cut.astype(int) - ground) > 40).resize((cols, rows)))
    for image in images:  # as drawn (stretched), and its stroke map
        assert np.median(image) >= 200  # a white ground
        assert np.median(image[ink_at]) < 128  # dark print


@needs_tesseract
@pytest.mark.parametrize("turn", [90, 270])
def test_print_running_up_or_down_the_edge_is_blacked_out(turn: int) -> None:
    """A digitiser's name and ID printed a quarter turn along a radiograph's edge (either way up) are read and
    blacked out; the anatomy and an "R" marker away from it stay."""
    rng = np.random.default_rng(11)
    grey = np.full((700, 600), 235, np.uint8)
    grey[:, 150:450] = np.clip(rng.normal(120, 25, size=(700, 300)), 0, 255).astype(np.uint8)  # the limb
    strip = PILImage.new("L", (420, 24), 235)
    font = fx._font(fx.font_paths()[0] if fx.font_paths() else None, 14)
    ImageDraw.Draw(strip).text((2, 3), "HALVORSEN, TOVE  MRN 48213377", fill=20, font=font)
    turned = np.asarray(strip.rotate(turn, expand=True))
    grey[200 : 200 + turned.shape[0], 20 : 20 + turned.shape[1]] = turned
    grey = _printed(grey, [(520, 600, "R")], 40, 20)
    frame = _frame(grey)
    terms = burned_in.identifier_terms(["HALVORSEN^TOVE", "48213377"])
    result = burned_in.clean_frames([frame], terms, "test")
    assert not result.withheld and result.identifiers_found
    text = (slice(200, 200 + turned.shape[0]), slice(20, 20 + turned.shape[1]))
    printed = np.asarray(turned) < 128
    assert float((frame.values[text][printed] == frame.values.min()).mean()) >= 0.95  # the print is black
    assert float((frame.values[:, 150:450] == 0).mean()) < 0.02  # the limb is not
    assert (frame.values[600:640, 520:560] < 128).any()  # the marker stays


def test_words_far_taller_than_the_print_read_surely_are_texture() -> None:
    """A montage of slices read as "words" five times the labels' height: unsure ones are left out, sure name-like
    ones are not names (their padding, in text heights, blacked out whole frames), sure identifiers still count."""
    names = ["Brackwater", "T2", "AP"]
    labels = [Word(10, 10 + 25 * i, 120, 20, text, 93.0, (1, 1, i)) for i, text in enumerate(names)]
    montage = [Word(40, 300, 300, 110, "®G88866", 0.0, (2, 1, 1)), Word(400, 300, 200, 105, "WEES", 76.0, (2, 1, 1))]
    tallest = burned_in._tallest_print(labels + montage)
    assert 20 < tallest < 105
    regions, _, _ = burned_in._to_redact(labels + montage, (), 0, tallest)
    assert all(r.bottom < 300 for r in regions)  # only "Brackwater" (name-like) goes
    mrn = Word(40, 300, 300, 110, "48213377", 91.0, (2, 1, 1))  # large print of the header's MRN
    regions, _, identified = burned_in._to_redact([*labels, mrn], burned_in.identifier_terms(["48213377"]), 0, tallest)
    assert identified and any(r.top <= 300 and r.bottom >= 410 for r in regions)


def test_unread_texture_reaching_a_side_edge_is_not_blacked_but_print_on_a_margin_is() -> None:
    rng = np.random.default_rng(3)
    grey = np.full((480, 480), 10, np.uint8)
    grey[100:380, 40:480] = np.clip(rng.normal(90, 30, size=(280, 440)), 0, 255).astype(np.uint8)  # anatomy
    planes = burned_in._planes(_frame(grey))
    maps = burned_in._strokes_of(planes)
    texture = burned_in._Line(120, 300, 450, 315, 3.0, False)  # over the anatomy, reaching the right band
    margin = burned_in._Line(430, 60, 478, 70, 3.0, False)  # stand-in for print on the flat margin, right band
    assert burned_in._on_flat_ground(planes, maps, margin) and not burned_in._on_flat_ground(planes, maps, texture)
    boxes = burned_in._unread_at_border([texture], [], grey.shape, planes, maps)
    assert boxes == []
    assert len(burned_in._unread_at_border([texture], [], grey.shape)) == 1  # without the frame: any side line


@pytest.mark.parametrize(
    ("text", "blacked"),
    [("TR:4000", False), ("W:1639", False), ("Se:4", False), ("FOV:230", False), ("ST=5.0", False),
     ("DOB:1961", True), ("ID:1234", True), ("Acc:71222284", True), ("Brackwater", True), ("TR:40000", True)],
)  # fmt: skip
def test_technical_parameters_in_the_header_bands_are_not_taken_for_names(text: str, blacked: bool) -> None:
    """Viewers print "TR:4000 TE:95", "W:1639 L:763", "Se:4 Im:12" in their corners: a short label and a small
    number is not a name (the band rule blacked them all); labels of identifiers and long numbers still go."""
    assert burned_in._border_text(Word(5, 5, 60, 12, text, 90.0, (1, 1, 1)), 1000) is blacked


@needs_tesseract
def test_an_identifying_label_running_down_a_side_edge_over_anatomy_is_blacked_out() -> None:
    """By a side edge the ground may not be flat (the skull's rim beside a label): there a vertical line counts when
    it holds identifying text (here an ID-like number), and name-like texture alone would not."""
    rng = np.random.default_rng(21)
    noise = PILImage.fromarray(rng.integers(0, 255, size=(520, 500)).astype(np.uint8))
    smooth = np.asarray(noise.filter(ImageFilter.GaussianBlur(10)), np.float32)  # anatomy up to the edge
    grey = np.clip(40 + (smooth - smooth.min()) * 120 / max(1.0, float(np.ptp(smooth))), 0, 255).astype(np.uint8)
    strip = PILImage.new("L", (420, 24), 0)
    bold = [path for path in fx.font_paths() if path.name == "DejaVuSans-Bold.ttf"]
    font = fx._font(bold[0] if bold else None, 16)
    ImageDraw.Draw(strip).text((2, 2), "O'DONNELL SIOBHAN H9404845", fill=250, font=font)
    turned = np.asarray(strip.rotate(270, expand=True))
    rows, cols = turned.shape
    where = (slice(60, 60 + rows), slice(496 - cols, 496))
    grey[where] = np.maximum(turned, grey[where])
    frame = _frame(grey)
    burned_in.clean_frames([frame], burned_in.identifier_terms([]), "test")
    printed = turned > 150
    label = frame.values[where]
    assert float((label[printed] == frame.values.min()).mean()) >= 0.95


def test_a_staff_label_takes_its_line_but_not_the_exposure_values_stacked_with_it() -> None:
    """A technologist's initials after "Tech:" go with their label; the kVp and EI lines printed right above and
    below them in the same corner block stay (a patient label would take the whole block)."""

    def word(left: int, top: int, text: str) -> Word:
        return Word(left, top, 12 * len(text), 14, text, 91.0, (1, 1, top))

    block = [word(10, 10, "101"), word(60, 10, "kVp"), word(10, 30, "Tech:"), word(80, 30, "JW"), word(10, 50, "EI")]
    block.append(word(50, 50, "807"))
    regions, strong, _ = burned_in._to_redact(block, (), 0)
    assert strong and len(regions) == 1
    (region,) = regions
    assert (region.top, region.bottom) == (30, 44) and region.left == 10 and region.right >= 104
    assert not region.identifying  # not grown over the lines stacked with it
    laterality = [word(10, 30, "RT"), word(60, 30, "JW")]  # "RT" without its colon is the right side, not a label
    assert burned_in._to_redact(laterality, (), 0)[0] == []
    # "PT" alone was read out of the top half of "EI" left under a box, and withheld the image: a label only as "Pt:"
    assert burned_in._strength(Word(0, 0, 30, 14, "PT", 66.0, (0, 0, 0)), ()) == 0
    assert burned_in._strength(Word(0, 0, 30, 14, "Pt:", 90.0, (0, 0, 0)), ()) == 2


def test_a_two_letter_header_surname_counts_only_read_surely_as_a_whole_word() -> None:
    terms = burned_in.identifier_terms(["NG^WEI", "AP^X"])  # a surname "AP" would be a view label: not a term
    assert "NG" in terms and "AP" not in terms
    assert burned_in._strength(Word(0, 0, 30, 14, "Ng,", 88.0, (0, 0, 0)), terms) == 2
    assert burned_in._strength(Word(0, 0, 30, 14, "NG", 31.0, (0, 0, 0)), terms) == 0  # texture read unsurely
    assert burned_in._strength(Word(0, 0, 30, 14, "NGX", 90.0, (0, 0, 0)), ()) == 1  # no header: name-like only


@pytest.mark.parametrize(
    ("text", "date_like"),
    [("-Sep-]", True), ("01-Sep", True), ("Sep-1972", True), ("Mayo-Clinic", False), ("W/Ag", False), ("Mo/Mo", False)],
)
def test_a_month_name_between_date_separators_is_most_of_a_date(text: str, date_like: bool) -> None:
    assert burned_in._is_strong_pattern(text) is date_like


def test_yellow_print_on_grey_anatomy_is_found_in_the_frames_grey() -> None:
    """Yellow print on grey is light in red and green and dark in blue: over the three planes its letters and the
    gaps between them are all light "strokes", one bar that is not print. In the frame's grey the line is found."""
    cols = np.arange(420, dtype=np.float32)
    grey = np.tile(150 + 25 * np.sin(cols / 40), (120, 1)).astype(np.uint8)  # ribs: smooth light and dark bands
    canvas = PILImage.fromarray(np.stack([grey] * 3, axis=-1))
    font = fx._font(fx.font_paths()[0] if fx.font_paths() else None, 12)
    ImageDraw.Draw(canvas).text((30, 50), "LINDQVIST INGRID 47679684", fill=(255, 255, 0), font=font)
    frame = Frame(np.array(canvas), PhotometricInterpretation.RGB, False)
    planes = burned_in._planes(frame)
    maps = burned_in._strokes_of(planes)
    grey_maps = burned_in._strokes_of([burned_in._grey_for_ocr(frame)])

    def on_text(lines: list[burned_in._Line]) -> list[burned_in._Line]:
        return [ln for ln in lines if ln.top <= 54 and ln.bottom >= 60 and ln.left <= 40 and ln.right >= 120]

    assert burned_in._coloured(planes) and not burned_in._coloured([grey, grey, grey])  # grey stored as RGB: once
    assert on_text(burned_in._print_lines(maps)) == []  # the bar of letters and gaps is no print
    found = on_text(burned_in._print_lines(maps, also=grey_maps))
    assert found and all(ln.in_grey for ln in found)


def test_the_fill_shows_black_in_every_window_the_frame_comes_with() -> None:
    """A scanned page's darkest ink is grey 18 in its full-range window: the fill is 0, not 18 (a dark grey box, and
    in a wider window one like the picture's own greys). MONOCHROME1 fills at the top; CT keeps its air."""
    from assistant.imaging.study import Window

    page = np.full((20, 20), 228, np.uint8)
    page[5, 5] = 18
    frame = Frame(page, PhotometricInterpretation.MONOCHROME2, False, [], Window(128.0, 256.0, "full range"))
    assert burned_in._black(frame) == 0
    cr = np.full((20, 20), 900, np.uint16)
    cr[5, 5] = 3000
    inverted = Frame(cr, PhotometricInterpretation.MONOCHROME1, True, [Window(2048.0, 4096.0)])
    assert burned_in._black(inverted) >= 4096
    ct = np.full((20, 20), 40, np.int16)
    ct[0, 0] = -1024
    assert burned_in._black(Frame(ct, PhotometricInterpretation.MONOCHROME2, False, [Window(40.0, 400.0)])) == -1024


def test_a_date_printed_with_spaces_is_identifying_but_three_parameters_are_not() -> None:
    def line(*texts: str) -> list[Word]:
        out, left = [], 100
        for text in texts:
            out.append(Word(left, 50, 10 * len(text), 14, text, 90.0, (1, 1, 1)))
            left += 10 * len(text) + 8  # a space
        return out

    for parts in [("24", "05", "2017"), ("'23", "05", "22"), ("2017", "05", "24"), ("24", "MAY", "2017")]:
        regions, strong, _ = burned_in._to_redact(line(*parts), (), 0)
        assert strong and len(regions) == 1, parts
    for parts in [("12", "5", "30"), ("140", "5", "30"), ("30", "40", "50")]:
        assert burned_in._to_redact(line(*parts), (), 0)[0] == [], parts
    far = [Word(100, 50, 24, 14, "24", 90.0, (1, 1, 1)), Word(400, 50, 24, 14, "05", 90.0, (1, 1, 1))]
    far.append(Word(440, 50, 48, 14, "2017", 90.0, (1, 1, 1)))
    assert burned_in._spaced_dates(far) == set()  # not side by side: not one date


def _yellow_name_on_a_radiograph(quality: int | None = 75) -> tuple[Frame, np.ndarray]:
    """A real chest radiograph (VQA-RAD) as an RGB upload with a yellow name drawn over the ribs, unsmoothed, as a
    viewer's overlay is, stored as JPEG (``quality``) or losslessly (None); and the name's glyph mask."""
    import io

    base = PILImage.open(fx.SHARED / "vqa_rad" / "images" / "synpic12210.jpg").convert("RGB")
    font = fx._font(fx.font_paths()[0] if fx.font_paths() else None, 16)
    mask = PILImage.new("L", base.size)
    for canvas, fill in ((base, (240, 200, 40)), (mask, 255)):
        draw = ImageDraw.Draw(canvas)
        draw.fontmode = "1"
        draw.text((330, 60), "Whitfield, Priya", fill=fill, font=font)  # type: ignore[arg-type]
    stored = io.BytesIO()
    base.save(stored, "JPEG", quality=quality) if quality else base.save(stored, "PNG")
    return Frame(np.array(PILImage.open(stored)), PhotometricInterpretation.RGB, False), np.array(mask) > 128


def test_coloured_print_on_a_grey_picture_is_alone_on_the_chroma_page() -> None:
    """The channel spread of a grey radiograph is JPEG noise; a yellow overlay's is large: the page shows the print
    dark on white and the ribs under it not at all. Grey frames and photographs (mostly colour) have no such page."""
    frame, mask = _yellow_name_on_a_radiograph()
    page = burned_in._chroma(frame)
    assert page is not None and page.shape == mask.shape
    assert float(np.median(page[mask])) < 80  # the letters: dark
    ground = np.zeros_like(mask)
    ground[200:800, 100:700] = True  # lungs, ribs, heart: nothing but grey
    assert float(np.percentile(page[ground], 1)) > 200
    grey = np.array(PILImage.open(fx.SHARED / "vqa_rad" / "images" / "synpic12210.jpg").convert("L"))
    assert burned_in._chroma(Frame(grey, PhotometricInterpretation.MONOCHROME2, False)) is None
    photo = np.random.default_rng(3).integers(0, 255, size=(64, 64, 3)).astype(np.uint8)  # colour everywhere
    assert burned_in._chroma(Frame(photo, PhotometricInterpretation.RGB, False)) is None


@needs_tesseract
def test_a_yellow_name_over_ribs_is_read_on_the_chroma_page_and_blacked_out() -> None:
    """Read losslessly stored (a JPEG's colour is stored at half resolution: its page is blurred, and there the
    other readings do the work)."""
    frame, mask = _yellow_name_on_a_radiograph(None)
    words, scale, _ = burned_in._read_pages(burned_in.TesseractOCR(), frame)[0]  # the coloured print first
    read = {burned_in._norm(w.text) for w in words}
    assert "PRIYA" in read and ("WHITFIELD" in read or {"WHIT", "FIELD"} <= read)  # "fi" set tight, unsmoothed
    burned_in.clean_frames([frame], ("WHITFIELD", "PRIYA"), "test", burned_in.TesseractOCR())
    assert float((frame.values[mask] <= 8).all(axis=-1).mean()) >= 0.95


def test_colour_stored_at_half_resolution_is_sharpened_along_the_luma(monkeypatch: pytest.MonkeyPatch) -> None:
    """JPEG keeps colour at half resolution (4:2:0): the spread is a blur of the letters. It is told from colour
    stored whole (PNG), and guided by the luma its dark pixels cover more of the letters, about as precisely."""

    def spread_of(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        rgb = frame.values[..., :3]
        spread = (rgb.max(axis=-1) - rgb.min(axis=-1)).astype(np.float32)
        return spread, spread > burned_in._COLOUR_SPREAD

    assert not burned_in._half_resolution(*spread_of(_yellow_name_on_a_radiograph(None)[0]))
    frame, mask = _yellow_name_on_a_radiograph(75)
    assert burned_in._half_resolution(*spread_of(frame))
    guided = burned_in._chroma(frame)
    monkeypatch.setattr(burned_in, "_half_resolution", lambda spread, coloured: False)
    plain = burned_in._chroma(frame)
    assert guided is not None and plain is not None
    near = _dilated(mask, 1)
    for page in (guided, plain):
        assert float((page[near] < 128).sum() / (page < 128).sum()) >= 0.85  # dark pixels are letters
    assert float((guided[mask] < 128).mean()) >= float((plain[mask] < 128).mean()) + 0.03


def test_print_drawn_in_one_value_over_anatomy_is_alone_on_the_flat_page() -> None:
    """A grey name drawn in one exact value over a real chest radiograph (its raw values vary pixel to pixel) is on
    the flat page, and little of the anatomy is; a JPEG picture (quantised into flat blocks) gives no page at all."""
    import pydicom

    ds = pydicom.dcmread(fx.SHARED / "dicom" / "pydicom_data" / "RG1_UNCI.dcm")
    values = np.array(ds.pixel_array[700:1212, 600:1112])  # lung and ribs
    level = int(np.percentile(values, 70))  # as light as the ribs around it
    canvas = PILImage.new("L", (values.shape[1], values.shape[0]))
    bold = [p for p in fx.font_paths() if p.name == "DejaVuSans-Bold.ttf"]  # strokes 2-3 px wide inside
    font = fx._font(bold[0] if bold else None, 20)
    ImageDraw.Draw(canvas).text((values.shape[1] // 3, values.shape[0] // 2), "OKONKWO 1961", fill=255, font=font)
    mask = np.array(canvas) == 255  # the strokes' inside, where the drawn value is exact
    values[mask] = level
    frame = Frame(values, PhotometricInterpretation.MONOCHROME2, False)
    page = burned_in._flat_print(frame)
    assert page is not None
    assert float((page[~_dilated(mask, 2)] < 128).mean()) <= 0.01  # anatomy: hardly any
    if shutil.which("tesseract"):
        read = {burned_in._norm(w.text) for words, _, _ in burned_in._read_pages(burned_in.TesseractOCR(), frame)
                for w in words}  # fmt: skip
        assert "OKONKWO" in read
    picture = np.array(PILImage.open(fx.SHARED / "vqa_rad" / "images" / "synpic12210.jpg").convert("RGB"))
    assert burned_in._flat_print(Frame(picture, PhotometricInterpretation.RGB, False)) is None


def _dilated(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` grown by ``pixels`` (4-connected steps): the letters and their anti-aliased edge."""
    from scipy import ndimage

    return np.asarray(ndimage.binary_dilation(mask, iterations=pixels))


def test_the_fill_is_black_where_the_window_reaches_below_the_arrays_type() -> None:
    """An MR stored unsigned whose window's lowest edge lies below 0 (centre 763, width 1639) shows 0 as grey 9: the
    fill, and a withheld frame, take a signed type that holds a value shown black."""
    from assistant.imaging.study import Window, apply_window

    mr = np.full((20, 20), 700, np.uint16)
    window = Window(763.0, 1639.0)
    frame = Frame(mr, PhotometricInterpretation.MONOCHROME2, False, [window])
    assert int(apply_window(np.zeros((1, 1), np.uint16), window)[0, 0]) > 8  # the array's 0 is not black here
    burned_in._fill(frame, [RedactionBox(2, 2, 10, 5)])
    assert frame.values.dtype.kind == "i" and int(frame.values[2, 2]) < 0
    shown = apply_window(frame.values, window)
    assert (shown[2:7, 2:12] == 0).all() and (shown[10:, :] > 8).all()
    blank = Frame(mr.copy(), PhotometricInterpretation.MONOCHROME2, False, [window])
    burned_in._blank(blank)
    assert (apply_window(blank.values, window) == 0).all()


@pytest.mark.parametrize(("text", "strength"), [("LoL", 0), ("RoR", 0), ("L.R", 0), ("Lor", 1), ("Leo", 1)])
def test_two_side_markers_read_as_one_word_are_not_a_name(text: str, strength: int) -> None:
    """A whole-body scan prints L under each of its two views; Tesseract reads the pair as "LoL" (confidence 68)."""
    assert burned_in._strength(burned_in.Word(480, 66, 50, 19, text, 68.0, (1, 1, 1)), ()) == strength
