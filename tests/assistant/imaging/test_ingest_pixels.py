"""The pixel pipeline checked by hand: modality LUT, VOI LUT and windows, inversion, series order, pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from assistant.imaging.ingest import load_study
from assistant.imaging.study import (
    Image,
    PhotometricInterpretation,
    VoiLut,
    VOILUTFunction,
    Window,
    WindowError,
    WindowPreset,
    apply_window,
    default_ct_preset,
    parse_window,
    render,
    representative_indices,
)
from tests.assistant.imaging.ingest_fixtures import SALT, read, wheel_file, write


def _first_image(path: Path) -> Image:
    result = load_study([path], SALT)
    assert result.ok, result.files[0].error
    assert result.study is not None
    return result.study.series[0].images[0]


@pytest.fixture(scope="module")
def ct_small() -> Image:
    return _first_image(wheel_file("CT_small.dcm"))


# CT_small.dcm: stored values at known pixels, Rescale Slope 1, Intercept -1024 (PS3.3 C.11.1.1.2) → HU:
#   (0,0) 175 → -849   (30,90) 223 → -801   (100,20) 1043 → 19   (127,127) 909 → -115
#   (50,50) 1084 → 60  (64,64) 1928 → 904
KNOWN_HU = {(0, 0): -849, (30, 90): -801, (100, 20): 19, (127, 127): -115, (50, 50): 60, (64, 64): 904}


def test_ct_values_are_hounsfield_units(ct_small: Image) -> None:
    for (r, c), hu in KNOWN_HU.items():
        assert int(ct_small.values[r, c]) == hu


# PS3.3 C.11.2.1.2.1 (LINEAR): y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, below c-0.5-(w-1)/2 → 0, above
# c-0.5+(w-1)/2 → 255; rounded half up.
#   soft tissue c=50 w=400 (bounds -150, 249):
#     19:   (19 - 49.5)/399 + 0.5 = 0.423559 → 108.008 → 108
#     -115: (-115 - 49.5)/399 + 0.5 = 0.087719 → 22.368 → 22
#     60:   (60 - 49.5)/399 + 0.5 = 0.526316 → 134.211 → 134
#     -849 → 0 ; 904 → 255
#   lung c=-600 w=1500:
#     -849: (-849 + 600.5)/1499 + 0.5 = 0.334223 → 85.227 → 85
#     -801: (-801 + 600.5)/1499 + 0.5 = 0.366244 → 93.392 → 93
#     19:   (19 + 600.5)/1499 + 0.5 = 0.913275 → 232.885 → 233
#   bone c=400 w=1800:
#     904:  (904 - 399.5)/1799 + 0.5 = 0.780434 → 199.011 → 199
#     19:   (19 - 399.5)/1799 + 0.5 = 0.288494 → 73.566 → 74
EXPECTED_GREY = {
    "soft_tissue": {(100, 20): 108, (127, 127): 22, (50, 50): 134, (0, 0): 0, (64, 64): 255},
    "lung": {(0, 0): 85, (30, 90): 93, (100, 20): 233, (64, 64): 255},
    "bone": {(64, 64): 199, (100, 20): 74},
}


@pytest.mark.parametrize("preset", sorted(EXPECTED_GREY))
def test_ct_windows_give_hand_computed_grey_levels(ct_small: Image, preset: str) -> None:
    grey = render(ct_small, preset)
    for (r, c), value in EXPECTED_GREY[preset].items():
        assert int(grey[r, c]) == value, (preset, (r, c))


def test_ct_without_a_stored_window_defaults_to_the_body_part_preset(ct_small: Image) -> None:
    # CT_small has no Window Center/Width and no body part: soft tissue (W400 L50) by default.
    assert ct_small.window == WindowPreset.SOFT_TISSUE.window
    for (r, c), value in EXPECTED_GREY["soft_tissue"].items():
        assert int(ct_small.rendering[r, c]) == value
    names = [w.name for w in ct_small.windows]
    assert {"lung", "mediastinum", "soft_tissue", "bone", "brain", "liver"} <= set(names)


def test_custom_window_text_and_pair_agree(ct_small: Image) -> None:
    a = render(ct_small, "-600,1500")
    b = render(ct_small, (-600, 1500))
    c = render(ct_small, "lung")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_stored_window_is_the_default_and_others_are_selectable() -> None:
    # examples_overlay.dcm stores two windows: 450/790 and 200/443 (PS3.3 C.11.2.1.2: the first is default).
    image = _first_image(wheel_file("examples_overlay.dcm"))
    assert isinstance(image.window, Window)
    assert (image.window.center, image.window.width) == (450, 790)
    second = image.windows[1]
    assert isinstance(second, Window) and (second.center, second.width) == (200, 443)
    by_name = render(image, second.name)
    np.testing.assert_array_equal(by_name, apply_window(image.values, second))
    assert not np.array_equal(by_name, image.rendering)


def test_body_part_chooses_the_ct_preset() -> None:
    assert default_ct_preset("HEAD") is WindowPreset.BRAIN
    assert default_ct_preset("CHEST") is WindowPreset.MEDIASTINUM
    assert default_ct_preset("CHEST", "AX LUNG 1.25mm") is WindowPreset.LUNG
    assert default_ct_preset("ABDOMEN") is WindowPreset.SOFT_TISSUE
    assert default_ct_preset("LSPINE") is WindowPreset.BONE
    assert default_ct_preset(None) is WindowPreset.SOFT_TISSUE


def test_head_ct_without_window_opens_in_brain_window(tmp_path: Path) -> None:
    ds = read("CT_small.dcm")
    ds.BodyPartExamined = "HEAD"
    image = _first_image(write(ds, tmp_path / "head.dcm"))
    assert image.window == WindowPreset.BRAIN.window


def test_window_presets_and_aliases() -> None:
    assert parse_window("Soft Tissue") == parse_window("abdomen") == WindowPreset.SOFT_TISSUE.window
    assert parse_window("mediastinum").width == 350
    assert parse_window(" 40 / 80 ") == Window(40, 80)
    with pytest.raises(WindowError, match="unknown window"):
        parse_window("cardiac-ish")
    with pytest.raises(WindowError):
        Window(40, 0)
    with pytest.raises(WindowError):
        Window(float("nan"), 400)


def test_window_functions_follow_the_standard() -> None:
    x = np.array([-1000, 39, 40, 41, 1000], dtype=np.int16)
    # LINEAR_EXACT (C.11.2.1.3.2): (x - c)/w + 0.5; 39 → 0.4875 → 124.3 → 124; 40 → 127.5 → 128;
    # 41 → 0.5125 → 130.7 → 131
    exact = apply_window(x, Window(40, 80, function=VOILUTFunction.LINEAR_EXACT))
    assert exact.tolist() == [0, 124, 128, 131, 255]
    # SIGMOID (C.11.2.1.3.1): 1/(1+exp(-4(x-c)/w)) → 0.5 at c
    sigmoid = apply_window(x, Window(40, 80, function=VOILUTFunction.SIGMOID))
    assert sigmoid[2] == 128 and sigmoid[0] == 0 and sigmoid[-1] == 255
    # The 16-bit table path and the float path agree.
    floats = apply_window(x.astype(np.float64), Window(40, 80))
    np.testing.assert_array_equal(floats, apply_window(x, Window(40, 80)))


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")
    normal = _first_image(write(ds, tmp_path / "m2.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = _first_image(write(ds, tmp_path / "m1.dcm"))
    assert inverted.invert and not normal.invert
    np.testing.assert_array_equal(inverted.rendering, 255 - normal.rendering)
    # Re-windowing keeps the inversion.
    np.testing.assert_array_equal(render(inverted, (600, 1600)), 255 - render(normal, (600, 1600)))


def test_presentation_lut_shape_inverse_inverts_monochrome2(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")
    plain = _first_image(write(ds, tmp_path / "a.dcm"))
    ds.PresentationLUTShape = "INVERSE"
    inverse = _first_image(write(ds, tmp_path / "b.dcm"))
    np.testing.assert_array_equal(inverse.rendering, 255 - plain.rendering)
    # MONOCHROME1 + INVERSE says the same thing twice (PS3.3 C.8.11.6.1.2): inverted once, not twice.
    ds.PhotometricInterpretation = "MONOCHROME1"
    both = _first_image(write(ds, tmp_path / "c.dcm"))
    np.testing.assert_array_equal(both.rendering, inverse.rendering)


def _with_voi_lut(ds: Dataset, first: int, table: list[int], bits: int = 8, explanation: str = "SOFT") -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(table), first, bits]
    item.LUTExplanation = explanation
    item.LUTData = table
    item["LUTData"].VR = "US"
    ds.VOILUTSequence = Sequence([item])
    return ds


def test_voi_lut_sequence_is_honoured(tmp_path: Path) -> None:
    # vlut_04.dcm is not inside the offline pydicom wheel; the same structure is built on a real file
    # (CT_small) and read back. PS3.3 C.11.2.1.1: a VOI LUT applies to the modality LUT output (HU here).
    ds = read("CT_small.dcm")
    # 2001 entries mapping HU -1000..1000 → a ramp 0..250 (LUT Data 8 bits): entry k = k // 8.
    table = [k // 8 for k in range(2001)]
    _with_voi_lut(ds, -1000, table, bits=8)
    ds["VOILUTSequence"][0]["LUTDescriptor"].VR = "SS"
    ds.WindowCenter, ds.WindowWidth = 40, 400  # the LUT is still the default (explicit LUT over window)
    image = _first_image(write(ds, tmp_path / "vlut.dcm"))
    assert isinstance(image.window, VoiLut) and image.window.name == "SOFT"
    for (r, c), hu in KNOWN_HU.items():
        index = min(max(hu + 1000, 0), 2000)
        expected = int(np.floor(table[index] / 255 * 255 + 0.5))
        assert int(image.rendering[r, c]) == expected, (r, c)
    # (0,0) HU -849 → entry 151 → 18; (64,64) HU 904 → entry 1904 → 238
    assert int(image.rendering[0, 0]) == 18 and int(image.rendering[64, 64]) == 238
    # The stored window stays selectable by name.
    assert any(isinstance(w, Window) and (w.center, w.width) == (40, 400) for w in image.windows)


def test_voi_lut_outside_the_table_takes_the_end_entries(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")  # unsigned values 0..~1700
    _with_voi_lut(ds, 500, [0, 4095, 4095, 65535 >> 4], bits=12)  # only 500..503 mapped
    image = _first_image(write(ds, tmp_path / "v.dcm"))
    values = image.values
    assert np.all(image.rendering[values < 500] == 0)  # below the first mapped value: first entry
    assert np.all(image.rendering[values > 503] == 255)  # above: last entry (4095 of 12 bits = white)


def test_modality_lut_sequence_is_applied(tmp_path: Path) -> None:
    # PS3.3 C.11.1: a Modality LUT Sequence replaces rescale slope/intercept.
    ds = read("MR_small.dcm")
    ds.BitsStored, ds.HighBit = 12, 11
    first, table = 0, [min(4 * k, 65535) for k in range(4096)]  # output = 4 × stored
    item = Dataset()
    item.LUTDescriptor = [len(table), first, 16]
    item.ModalityLUTType = "US"
    item.LUTData = table
    item["LUTData"].VR = "US"
    ds.ModalityLUTSequence = Sequence([item])
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            delattr(ds, keyword)
    raw = ds.pixel_array
    image = _first_image(write(ds, tmp_path / "mlut.dcm"))
    np.testing.assert_array_equal(image.values, np.asarray(table)[np.clip(raw, 0, 4095)])


def test_fractional_rescale_slope_gives_float_values(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")
    raw = ds.pixel_array.astype(np.float64)
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -10.25
    image = _first_image(write(ds, tmp_path / "r.dcm"))
    assert image.values.dtype == np.float32
    np.testing.assert_allclose(image.values, raw * 0.5 - 10.25, rtol=1e-6)


def test_pixel_padding_is_left_out_of_the_automatic_window(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")
    for keyword in ("WindowCenter", "WindowWidth"):
        delattr(ds, keyword)
    arr = ds.pixel_array.copy()
    arr[:, :32] = 4000  # half the frame is padding, far brighter than the anatomy
    ds.PixelData = arr.tobytes()
    ds.PixelPaddingValue = 4000
    ds["PixelPaddingValue"].VR = "US"
    image = _first_image(write(ds, tmp_path / "pad.dcm"))
    assert isinstance(image.window, Window) and image.window.name == "auto"
    upper = image.window.center - 0.5 + (image.window.width - 1) / 2
    assert upper < 4000  # the window spans the anatomy, not the padding
    assert image.rendering[:, 32:].std() > 20


def _slice(ds: Dataset, z: float, number: int, uid_suffix: str) -> Dataset:
    out = ds.copy()
    out.ImagePositionPatient = [-100.0, -100.0, z]
    out.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    out.InstanceNumber = number
    out.SOPInstanceUID = f"1.2.826.0.1.3680043.9.7777.9.{uid_suffix}"
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    return out


def test_series_is_ordered_along_the_slice_normal_not_by_file_or_instance(tmp_path: Path) -> None:
    base = read("CT_small.dcm")
    # Instance numbers deliberately disagree with the geometry; files are given out of order.
    zs = [10.0, -20.0, 0.0, 30.0, -10.0]
    paths = []
    for i, z in enumerate(zs):
        paths.append(write(_slice(base, z, 100 - i, str(i)), tmp_path / f"s{i}.dcm"))
    result = load_study(paths, SALT)
    series = result.study.series[0]  # type: ignore[union-attr]
    assert series.ordering == "position"
    z_sorted = [im.image_position_patient[2] for im in series.images]  # type: ignore[index]
    assert z_sorted == [30.0, 10.0, 0.0, -10.0, -20.0]  # axial: superior (head) first
    assert series.spacing_between_slices == 10.0
    assert series.pixel_spacing == (0.661468, 0.661468) and series.slice_thickness == 5.0


def test_sagittal_series_runs_right_to_left(tmp_path: Path) -> None:
    base = read("CT_small.dcm")
    paths = []
    for i, x in enumerate([5.0, -5.0, 0.0]):
        ds = _slice(base, 0.0, i + 1, f"s{i}")
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal: normal along +x (patient left)
        ds.ImagePositionPatient = [x, -100.0, 100.0]
        paths.append(write(ds, tmp_path / f"sag{i}.dcm"))
    series = load_study(paths, SALT).study.series[0]  # type: ignore[union-attr]
    assert [im.image_position_patient[0] for im in series.images] == [-5.0, 0.0, 5.0]  # type: ignore[index]


def test_without_geometry_instance_number_orders_the_series(tmp_path: Path) -> None:
    base = read("CT_small.dcm")
    paths = []
    for i, number in enumerate([3, 1, 2]):
        ds = _slice(base, 0.0, number, f"n{i}")
        del ds.ImagePositionPatient
        paths.append(write(ds, tmp_path / f"n{i}.dcm"))
    series = load_study(paths, SALT).study.series[0]  # type: ignore[union-attr]
    assert series.ordering == "instance"
    assert [im.instance_number for im in series.images] == [1, 2, 3]


def test_duplicate_files_are_kept_once(tmp_path: Path) -> None:
    path = wheel_file("CT_small.dcm")
    result = load_study([path, path], SALT)
    assert result.ok and len(result.files) == 2
    series = result.study.series[0]  # type: ignore[union-attr]
    assert series.frame_count == 1
    assert any("duplicate" in w for w in series.warnings)


def test_representative_slices_and_montage() -> None:
    assert representative_indices(100, 5) == [0, 25, 50, 74, 99]
    assert representative_indices(3, 9) == [0, 1, 2]
    assert representative_indices(7, 1) == [3]
    series = load_study([wheel_file("examples_ybr_color.dcm")], SALT).study.series[0]  # type: ignore[union-attr]
    assert series.frame_count == 30
    picks = series.representative(4)
    assert [series.images.index(p) for p in picks] == [0, 10, 19, 29]
    grid = series.montage(n=4, tile=64)
    assert grid.shape == (128, 128, 3) and grid.dtype == np.uint8
    mono = load_study([wheel_file("MR_small.dcm")], SALT)
    tile = mono.study.series[0].montage(n=1, tile=32)  # type: ignore[union-attr]
    assert tile.shape == (32, 32)


def test_png_and_jpeg_pictures_ingest_with_orientation(tmp_path: Path) -> None:
    # A grey PNG, a 16-bit PNG, an RGBA PNG and a JPEG with EXIF orientation 6 (rotate 90° clockwise).
    grey = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))  # 32 rows, 64 cols
    PILImage.fromarray(grey).save(tmp_path / "grey.png")
    PILImage.fromarray(grey.astype(np.uint16) * 250).save(tmp_path / "deep.png")
    rgba = np.zeros((10, 20, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "red.png")
    photo = PILImage.fromarray(np.dstack([grey] * 3))
    exif = PILImage.Exif()
    exif[0x0112] = 6
    photo.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    result = load_study(sorted(tmp_path.iterdir()), SALT)
    assert result.ok, [f.error for f in result.files]
    images = {Path(f.path).name: result.series_by_uid(f.series_uid).images for f in result.files}  # type: ignore[union-attr, arg-type]
    g = next(im for im in images["grey.png"] if not im.is_color and im.values.dtype == np.uint8)
    np.testing.assert_array_equal(g.rendering, grey)  # 8-bit grey is shown as it is ("full range")
    deep = next(im for im in images["deep.png"] if im.values.dtype != np.uint8)
    assert deep.rendering.max() == 255 and deep.rendering.min() == 0
    red = next(im for im in images["red.png"] if im.is_color and im.rows == 10)
    assert red.rendering[0, 0].tolist() == [255, 0, 0]
    turned = next(im for im in images["phone.jpg"] if im.is_color)
    assert (turned.rows, turned.columns) == (64, 32)  # EXIF rotation applied
    assert all(s.source in ("png", "jpeg") for st in result.studies for s in st.series)
    assert result.study is not None and result.study.patient_key is None


def test_image_values_cannot_be_modified(ct_small: Image) -> None:
    with pytest.raises(ValueError):
        ct_small.values[0, 0] = 0
    with pytest.raises(ValueError):
        ct_small.rendering[0, 0] = 0
    assert ct_small.photometric_interpretation is PhotometricInterpretation.MONOCHROME2
