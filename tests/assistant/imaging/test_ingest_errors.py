"""Bad input becomes a typed ingest error a clinician understands; good files of the same upload still ingest."""

from __future__ import annotations

import random
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

from assistant.errors import IngestError
from assistant.imaging.ingest import IngestResult, load_study
from assistant.imaging.records import IngestLimits
from tests.assistant.imaging.ingest_fixtures import SALT, SHARED_DICOM, read, to_bytes, wheel_file, write


def _only(result: IngestResult) -> tuple[str, str]:
    (outcome,) = result.files
    assert not outcome.ok and result.study is None
    assert outcome.error and outcome.code
    return outcome.code, outcome.error


def _reject(path: Path, limits: IngestLimits | None = None) -> tuple[str, str]:
    return _only(load_study([path], SALT, limits))


def test_ingest_rejects_a_file_that_is_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Findings: none. This is a text file, not an image.\n" * 5)
    code, message = _reject(path)
    assert code == "not_dicom" and "not a DICOM file" in message


def test_ingest_rejects_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    assert _reject(path) == ("empty", "The file is empty.")


@pytest.mark.parametrize("keep", [60, 140, 700, 20000])
def test_ingest_rejects_truncated_file(tmp_path: Path, keep: int) -> None:
    data = wheel_file("CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:keep])
    code, message = _reject(path)
    assert code in {"truncated", "pixel_data_length", "invalid_header", "no_pixel_data"}, (code, message)
    if keep == 20000:  # cut inside the pixel data
        assert code == "pixel_data_length" and "truncated" in message


def test_ingest_rejects_pydicoms_truncated_mr() -> None:
    code, message = _reject(wheel_file("MR_truncated.dcm"))
    assert code == "pixel_data_length" and "8130 of 8192 bytes" in message


def test_ingest_rejects_pixel_data_longer_or_shorter_than_the_header_says(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")
    ds.Rows = 128  # header now promises twice the pixels
    code, _ = _reject(write(ds, tmp_path / "short.dcm"))
    assert code == "pixel_data_length"


@pytest.mark.parametrize("name", ["rtplan.dcm", "reportsi.dcm", "waveform_ecg.dcm"])
def test_ingest_rejects_objects_without_pixel_data(name: str) -> None:
    code, message = _reject(wheel_file(name))
    assert code == "no_pixel_data" and "no image" in message


def test_ingest_rejects_a_dicomdir_with_advice() -> None:
    code, message = _reject(wheel_file("dicomdirtests/DICOMDIR"))
    assert code == "no_pixel_data" and "open its folder" in message


def test_a_folder_with_a_dicomdir_ingests_its_images_and_skips_the_index() -> None:
    folder = wheel_file("dicomdirtests/DICOMDIR").parent / "98892003"
    result = load_study([folder], SALT)
    assert result.ok and all("DICOMDIR" not in f.path for f in result.files)


def test_ingest_rejects_an_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = read("CT_small.dcm")
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    code, message = _reject(write(ds, tmp_path / "video.dcm"))
    assert code == "unsupported_syntax" and "MPEG2" in message


def test_ingest_rejects_corrupt_compressed_data(tmp_path: Path) -> None:
    ds = read("JPEG2000.dcm")
    frames = bytearray(ds.PixelData)
    frames[40:400] = bytes(360)
    ds.PixelData = bytes(frames)
    code, _ = _reject(write(ds, tmp_path / "broken.dcm"))
    assert code == "decode_failed"


def test_ingest_rejects_absurd_dimensions_before_decoding(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000  # 4.3e12 pixels from an 8 kB file
    code, message = _reject(write(ds, tmp_path / "bomb.dcm"))
    assert code == "too_large" and "too large to open safely" in message


def test_ingest_rejects_zero_rows(tmp_path: Path) -> None:
    ds = read("MR_small.dcm")
    ds.Rows = 0
    code, _ = _reject(write(ds, tmp_path / "zero.dcm"))
    assert code == "invalid_header"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size and whose data is tiny (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(
        b"IEND", b""
    )


@pytest.mark.parametrize("size", [(100_000, 100_000), (20_000, 15_000)])
def test_ingest_rejects_picture_decompression_bombs(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(*size))
    code, _ = _reject(path)
    assert code == "too_large"


def test_picture_limit_follows_ingest_limits(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    PILImage.fromarray(np.zeros((100, 100), dtype=np.uint8)).save(path)
    code, _ = _reject(path, IngestLimits(max_pixels=5_000))
    assert code == "too_large"


def test_ingest_rejects_a_truncated_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:400])
    code, _ = _reject(path)
    assert code in {"truncated", "decode_failed"}


def test_ingest_rejects_an_unreadable_zip(tmp_path: Path) -> None:
    path = tmp_path / "series.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    code, message = _reject(path)
    assert code == "bad_archive" and "zip" in message


def test_zip_of_a_series_ingests_and_reports_bad_members(tmp_path: Path) -> None:
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted((SHARED_DICOM / "pydicom_data").glob("emri_small*.dcm"))[:2]:
            zf.write(f, f"series/{f.name}")
        zf.writestr("series/readme.txt", "not an image")
        zf.writestr("__MACOSX/._junk", "resource fork")
        zf.writestr("series/empty.dcm", b"")
    result = load_study([archive], SALT)
    status = {f.path.rsplit("/", 1)[-1]: f.code or "ok" for f in result.files}
    assert status == {
        "empty.dcm": "empty",
        "emri_small.dcm": "ok",
        "emri_small_RLE.dcm": "ok",
        "readme.txt": "not_dicom",
    }
    assert all(f.path.startswith(f"{archive}!series/") for f in result.files)
    assert result.study is not None and result.study.series[0].frame_count == 10  # duplicates merged


def test_zip_that_would_unpack_beyond_the_limit_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", bytes(5_000_000))
    code, message = _reject(archive, IngestLimits(max_archive_bytes=1_000_000))
    assert code == "bad_archive" and "more than is safe" in message


def test_multi_file_upload_keeps_the_good_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"garbage" * 50)
    missing = tmp_path / "missing.dcm"
    good = [wheel_file("CT_small.dcm"), wheel_file("MR_small.dcm")]
    result = load_study([good[0], bad, missing, good[1], wheel_file("rtplan.dcm")], SALT)
    assert [f.ok for f in result.files] == [True, False, False, True, False]
    assert [f.code for f in result.errors] == ["not_dicom", "unreadable", "no_pixel_data"]
    assert not result.ok
    assert {m.value for st in result.studies for m in st.modalities} == {"CT", "MR"}


def test_an_empty_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, message = _reject(tmp_path / "empty")
    assert code == "unreadable" and "no files" in message


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        IngestLimits(max_pixels=0)


# ---------------------------------------------------------------------------------------------------------
# Bounded fuzz: mutated real files must give an image or an IngestError, never anything else.

_SEEDS = ["CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "emri_small_jpeg_ls_lossless.dcm"]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:  # flip bytes anywhere
        for _ in range(rng.randint(1, 20)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == 1:  # cut
        buf = buf[: rng.randrange(len(buf))]
    elif kind == 2:  # corrupt the header region (tags, VRs, lengths)
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(132, min(len(buf), 1200))] = rng.randrange(256)
    elif kind == 3:  # insert junk
        at = rng.randrange(len(buf))
        buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 4:  # overwrite a 4-byte length with a huge value
        at = rng.randrange(132, min(len(buf) - 4, 1200))
        buf[at : at + 4] = struct.pack("<I", rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x10000, 3]))
    else:  # duplicate a slice
        a = rng.randrange(len(buf))
        b = min(len(buf), a + rng.randint(1, 256))
        buf[b:b] = buf[a:b]
    return bytes(buf)


def test_mutated_real_files_raise_only_ingest_errors(tmp_path: Path) -> None:
    rng = random.Random(20240611)
    seeds = []
    for name in _SEEDS:
        try:
            seeds.append(wheel_file(name).read_bytes())
        except FileNotFoundError:
            seeds.append((SHARED_DICOM / "pydicom_data" / name).read_bytes())
    png = tmp_path / "seed.png"
    PILImage.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 251).convert("L").save(png)
    seeds.append(png.read_bytes())
    outcomes: dict[str, int] = {}
    for i in range(160):
        data = _mutate(rng.choice(seeds), rng)
        path = tmp_path / f"fuzz{i}.dcm"
        path.write_bytes(data)
        result = load_study([path], SALT)  # anything but an IngestError inside would propagate and fail
        (outcome,) = result.files
        outcomes[outcome.code or "ok"] = outcomes.get(outcome.code or "ok", 0) + 1
        if outcome.ok:
            assert result.study is not None
            for image in result.study.images:
                assert image.rendering.dtype == np.uint8
        path.unlink()
    assert sum(outcomes.values()) == 160 and len(outcomes) >= 3  # the fuzz reached several code paths


def test_ingest_error_is_a_radassist_error() -> None:
    from assistant.imaging.records import NotAnImageError

    assert issubclass(NotAnImageError, IngestError)


def test_bytes_written_through_bytesio_read_back(tmp_path: Path) -> None:
    ds = read("CT_small.dcm")
    path = tmp_path / "rt.dcm"
    path.write_bytes(to_bytes(ds))
    assert load_study([path], SALT).ok
