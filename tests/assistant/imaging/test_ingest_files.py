"""Every real file in ../shared/data/dicom and pydicom's own test files ingests as the inventory predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.imaging.ingest import IngestResult, load_study
from assistant.imaging.study import Modality, PhotometricInterpretation, Window
from tests.assistant.imaging.ingest_fixtures import SALT, SHARED_DICOM, inventory, wheel_file

ROWS = inventory()


def _load(path: str | Path) -> IngestResult:
    # Decoding is under test here: pixels as stored (test_burned_in.py covers the OCR redaction).
    return load_study([Path(path)], SALT, burned_in_text="never")


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_ingest_matches_inventory(row: dict[str, str]) -> None:
    result = _load(row["file"])
    (outcome,) = result.files
    expected_ok = row["decode_pydicom3"].startswith("ok")
    assert outcome.ok is expected_ok, outcome.error
    if not expected_ok:
        assert result.study is None
        assert outcome.error and outcome.code
        return
    series = result.study.series[0] if result.study else None
    assert series is not None
    # inventory: "ok 2x100x100x3" = frames x rows x cols [x samples]; palette colour decodes to 1 sample
    dims = [int(d) for d in row["decode_pydicom3"].split()[1].split("x")]
    frames = int(row["frames"] or 1)
    rows, cols = (int(v) for v in row["rows_cols"].split("x"))
    assert series.frame_count == frames
    first = series.images[0]
    assert (first.rows, first.columns) == (rows, cols)  # never transposed
    color = row["photometric"] not in ("MONOCHROME1", "MONOCHROME2")
    assert first.is_color is color
    assert first.rendering.dtype == np.uint8
    assert first.rendering.shape == ((rows, cols, 3) if color else (rows, cols))
    if len(dims) >= 3 and dims[-1] == 3:
        assert first.values.shape[-1] == 3
    assert series.modality is Modality.parse(row["modality"])
    for image in series.images:
        assert not image.rendering.flags.writeable and not image.values.flags.writeable
    # A display-ready rendering is not blank (SEG masks and dose grids included), unless the window explains
    # it: a 16x16 thumbnail of bone in a brain window is white all over.
    for im in series.images:
        if int(im.rendering.max()) == int(im.rendering.min()) and isinstance(im.window, Window):
            lower = im.window.center - 0.5 - (im.window.width - 1) / 2
            upper = im.window.center - 0.5 + (im.window.width - 1) / 2
            assert im.values.min() > upper or im.values.max() <= lower, row["path"]


def test_all_transfer_syntaxes_of_one_slice_render_identically() -> None:
    # dcm_qa_ts: one MR slice stored in nine transfer syntaxes, all lossless.
    files = sorted((SHARED_DICOM / "dcm_qa_ts").glob("*.dcm"))
    assert len(files) == 9
    renders = [_load(f).study.series[0].images[0] for f in files]  # type: ignore[union-attr]
    for image in renders[1:]:
        np.testing.assert_array_equal(image.values, renders[0].values)
        np.testing.assert_array_equal(image.rendering, renders[0].rendering)


@pytest.mark.parametrize(
    ("lossy", "reference"),
    [("RG3_J2KI.dcm", "RG3_J2KR.dcm"), ("US1_J2KI.dcm", "US1_J2KR.dcm"), ("RG1_J2KI.dcm", "RG1_UNCI.dcm")],
)
def test_lossy_copies_render_like_their_lossless_original(lossy: str, reference: str) -> None:
    a = _load(SHARED_DICOM / "pydicom_data" / lossy).study.series[0].images[0]  # type: ignore[union-attr]
    b = _load(SHARED_DICOM / "pydicom_data" / reference).study.series[0].images[0]  # type: ignore[union-attr]
    assert a.rendering.shape == b.rendering.shape
    # Same picture, same orientation, same window: lossy JPEG 2000 stays within a few grey levels.
    assert np.abs(a.rendering.astype(int) - b.rendering.astype(int)).mean() < 3
    assert np.corrcoef(a.rendering.ravel(), b.rendering.ravel())[0, 1] > 0.98


def test_monochrome1_chest_radiograph_shows_lungs_dark_and_mediastinum_bright() -> None:
    # RG1: a PA chest CR stored MONOCHROME1 (minimum = white). Rendered right, the mediastinum/spine column
    # in the middle is brighter than both lung fields, and the lungs are darker than the soft tissue below.
    image = _load(SHARED_DICOM / "pydicom_data" / "RG1_UNCI.dcm").study.series[0].images[0]  # type: ignore[union-attr]
    assert image.photometric_interpretation is PhotometricInterpretation.MONOCHROME1 and image.invert
    r = image.rendering.astype(float)
    rows, cols = r.shape
    band = slice(int(rows * 0.3), int(rows * 0.5))
    right_lung = r[band, int(cols * 0.22) : int(cols * 0.35)].mean()
    left_lung = r[band, int(cols * 0.65) : int(cols * 0.78)].mean()
    mediastinum = r[band, int(cols * 0.46) : int(cols * 0.54)].mean()
    assert mediastinum > right_lung + 20 and mediastinum > left_lung + 20
    # Without the MONOCHROME1 inversion the same frame would show the opposite.
    raw = image.render(image.window)
    assert np.array_equal(raw, image.rendering)


def test_extremity_radiograph_has_white_bone_on_black_exposed_background() -> None:
    image = _load(SHARED_DICOM / "pydicom_data" / "RG3_J2KR.dcm").study.series[0].images[0]  # type: ignore[union-attr]
    r = image.rendering
    # The centre of the frame is the tibia (bone, bright); the exposed air beside the leg is black.
    centre = r[r.shape[0] // 2 - 50 : r.shape[0] // 2 + 50, r.shape[1] // 2 - 30 : r.shape[1] // 2 + 30]
    assert centre.mean() > 150
    assert np.percentile(r, 5) < 20


def test_colour_files_decode_to_rgb_with_true_colours() -> None:
    # SC_rgb_*: a secondary capture whose top rows are pure red (pydicom's colour test pattern).
    for name in ("SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", "SC_ybr_full_422_uncompressed.dcm"):
        try:
            path = wheel_file(name)
        except FileNotFoundError:
            continue
        image = _load(path).study.series[0].images[0]  # type: ignore[union-attr]
        red = image.rendering[2, image.columns // 2].astype(int)
        assert red[0] > 200 and red[1] < 60 and red[2] < 60, (name, red)


def test_palette_colour_ultrasound_is_expanded_to_rgb() -> None:
    image = _load(wheel_file("examples_palette.dcm")).study.series[0].images[0]  # type: ignore[union-attr]
    assert image.photometric_interpretation is PhotometricInterpretation.PALETTE_COLOR
    assert image.is_color and image.rendering.shape == (350, 800, 3)
    # A palette image of an ultrasound sector holds colours other than grey.
    spread = image.rendering.astype(int).max(axis=2) - image.rendering.astype(int).min(axis=2)
    assert spread.max() > 50


def test_multiframe_enhanced_ct_keeps_each_frames_rescale_and_geometry() -> None:
    series = _load(SHARED_DICOM / "pydicom_data" / "eCT_Supplemental.dcm").study.series[0]  # type: ignore[union-attr]
    assert series.frame_count == 2 and series.ordering == "position"
    for image in series.images:
        assert image.pixel_spacing is not None and image.image_position_patient is not None
        assert image.values.min() < -500  # Hounsfield units (air around the patient), not stored values
    assert series.summary()["pixel_spacing_mm"] is not None


def test_a_folder_of_dicom_files_becomes_series_ordered_by_position() -> None:
    # dicomdirtests/77654033: one patient's CT series (4 files) and three CR series.
    folder = wheel_file("dicomdirtests/77654033/CT2/17106").parent.parent
    result = load_study([folder], SALT)
    assert result.ok and len(result.files) == 7
    # Two studies of one patient: the same pseudonymous key links them.
    assert len(result.studies) == 2
    assert len({s.patient_key for s in result.studies}) == 1 and result.studies[0].patient_key
    ct = next(s for st in result.studies for s in st.series if s.modality is Modality.CT)
    assert ct.frame_count == 4 and ct.ordering == "position"
    z = [im.image_position_patient[2] for im in ct.images]  # type: ignore[index]
    assert z == sorted(z, reverse=True)  # axial: head first
    assert ct.spacing_between_slices is not None and ct.spacing_between_slices > 0
    assert {s.modality for st in result.studies for s in st.series} == {Modality.CT, Modality.CR}
