"""MedGemma 1.5 volumes: N evenly sampled slices, each an RGB image of three HU windows, checked on a real CT."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import RadassistError
from assistant.imaging.ingest import load_study
from assistant.vision.profiles import BUILTIN_PROFILES
from assistant.vision.volume import CT_WINDOWS, ct_rgb, volume_images, volume_slices, window_channel

SALT = b"radassist-vision-test-salt"


def _hu_frames_by_pydicom(path: Path) -> dict[int, np.ndarray]:
    """Frame number → HU computed straight from the file (raw pixels, then Rescale Slope/Intercept), not by ingest."""
    import pydicom

    ds = pydicom.dcmread(path)
    transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    slope, intercept = float(transform.RescaleSlope), float(transform.RescaleIntercept)
    frames = ds.pixel_array.astype(np.float64)  # (frames, rows, cols) stored values
    return {i + 1: frames[i] * slope + intercept for i in range(frames.shape[0])}


def _window_by_hand(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    out = np.empty(hu.shape, dtype=np.uint8)
    for index, value in np.ndenumerate(hu):
        level = (min(max(value, low), high) - low) / (high - low) * 255.0
        out[index] = round(level)  # nearest level; an exact .5 (e.g. 8 HU in the brain window) goes to even
    return out


def test_windows_are_medgemmas_ct_windows() -> None:
    assert CT_WINDOWS == (("wide", -1024, 1024), ("soft tissue", -135, 215), ("brain", 0, 80))


def test_windowing_rounds_to_the_nearest_level_not_down() -> None:
    hu = np.array([[-2000.0, -1024.0, 0.0, 1.0, 1023.0, 1024.0, 5000.0]])
    assert window_channel(hu, -1024, 1024).tolist() == [[0, 0, 128, 128, 255, 255, 255]]  # 127.5 → 128, 127.6 → 128
    brain = window_channel(np.array([[39.0, 40.0, 41.0]]), 0, 80)
    assert brain.tolist() == [[124, 128, 131]]  # 124.3, 127.5, 130.7: floor would give 124, 127, 130


def test_real_ct_slices_carry_the_three_windows_in_order(shared_dir: Path) -> None:
    path = shared_dir / "data/dicom/pydicom_data/eCT_Supplemental.dcm"
    study = load_study([path], SALT).study
    assert study is not None
    series = study.series[0]
    slices = volume_slices(series, 85)
    assert [s.index for s in slices] == [0, 1]  # fewer slices than asked: all of them, none repeated
    # In the series' order: by position along the slice normal, as ingest sorted it.
    z = [series.images[s.index].image_position_patient[2] for s in slices]  # type: ignore[index]
    assert series.ordering == "position" and z == sorted(z, reverse=z[0] > z[-1]) and z[0] != z[1]
    by_pydicom = _hu_frames_by_pydicom(path)
    for item in slices:
        frame = series.images[item.index].frame_number
        hu = by_pydicom[frame]
        assert item.rendering.shape == (*hu.shape, 3) and item.rendering.dtype == np.uint8
        crop = (slice(200, 232), slice(200, 232))  # a 32 x 32 patch through the body, checked value by value
        for channel, (_, low, high) in enumerate(CT_WINDOWS):
            assert np.array_equal(item.rendering[..., channel][crop], _window_by_hand(hu[crop], low, high))
        expected = np.stack([window_channel(hu, low, high) for _, low, high in CT_WINDOWS], axis=-1)
        assert np.array_equal(item.rendering, expected)
        assert "CT slice" in item.label
    # The channels differ on real anatomy: the soft-tissue and brain windows saturate where the wide one does not.
    red, green, blue = (slices[0].rendering[..., c].astype(int) for c in range(3))
    assert (red != green).mean() > 0.1 and (green != blue).mean() > 0.1


def _ct_series_file(count: int) -> list[io.BytesIO]:
    """``count`` single-slice CT files of one series written through pydicom, slice i holding HU = 10 * i,
    shuffled so that only the positions give the order."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid()
    files = []
    for i in range(count):
        ds = base.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = 100 - i  # deliberately opposite to the positions
        ds.ImagePositionPatient = [0.0, 0.0, float(i) * 2.5]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.full((ds.Rows, ds.Columns), 1024 + 10 * i, dtype=np.int16).tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer)
    rng = np.random.default_rng(0)
    return [files[i] for i in rng.permutation(count)]


def test_n_evenly_sampled_slices_keep_the_volume_order(tmp_path: Path) -> None:
    paths = []
    for n, buffer in enumerate(_ct_series_file(12)):
        path = tmp_path / f"slice{n}.dcm"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    study = load_study(paths, SALT).study
    assert study is not None and len(study.series) == 1
    series = study.series[0]
    slices = volume_slices(series, 4)
    assert [s.index for s in slices] == [0, 4, 7, 11]  # first and last included, evenly spread
    hu = [float(series.images[s.index].values.mean()) for s in slices]
    assert hu == sorted(hu) or hu == sorted(hu, reverse=True)  # monotonic through the volume
    soft = [int(s.rendering[0, 0, 1]) for s in slices]
    assert soft == [int(window_channel(np.array([[h]]), -135, 215)[0, 0]) for h in hu]


def test_volume_images_respect_the_profile_and_name_the_limit(shared_dir: Path) -> None:
    study = load_study([shared_dir / "data/dicom/pydicom_data/eCT_Supplemental.dcm"], SALT).study
    assert study is not None
    profile = BUILTIN_PROFILES["medgemma"]
    assert profile.volume_slices == 85
    refs = volume_images(study.series[0], profile.replace(max_images=4))
    assert len(refs) == 2 and refs[0].rendering.shape[2] == 3
    with pytest.raises(RadassistError, match="at most|more than the 1 images.*RADASSIST_VISION_MAX_IMAGES"):
        volume_images(study.series[0], profile.replace(max_images=1))
    with pytest.raises(RadassistError, match="does not send volumes"):
        volume_images(study.series[0], BUILTIN_PROFILES["qwen2-vl"])


def test_mr_slices_repeat_their_rendering_on_three_channels(shared_dir: Path) -> None:
    study = load_study([shared_dir / "data/dicom/dcm_qa_ts/1.dcm"], SALT).study
    assert study is not None
    (item,) = volume_slices(study.series[0], 85)
    grey = study.series[0].images[0].rendering
    assert all(np.array_equal(item.rendering[..., c], grey) for c in range(3))


def test_ct_rgb_refuses_what_is_not_a_slice() -> None:
    with pytest.raises(ValueError, match="2-D"):
        ct_rgb(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="high > low"):
        window_channel(np.zeros((2, 2)), 10, 10)
