"""Decompression bombs are refused with a specific error naming the file and the budget; the rest of the upload
still ingests; the budgets come from the settings; and peak memory stays bounded (a correctness property here).

Every bomb is a small real file crafted at test time (pydicom, zipfile and zlib, through BytesIO), made to look
large to the ingest by budgets set low in the settings, except the subprocess test, which inflates for real.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from assistant.errors import ConfigurationError
from assistant.imaging.ingest import IngestResult, load_study
from assistant.imaging.records import IngestLimits
from assistant.settings import Settings, load_settings
from tests.assistant.imaging.ingest_fixtures import read, to_bytes, wheel_file, write
from tests.support.paths import REPO

KiB, MiB = 1 << 10, 1 << 20


def _settings(tmp_path: Path, **budgets: int) -> Settings:
    return Settings(data_dir=tmp_path / "data", **budgets)  # type: ignore[arg-type]


def _status(result: IngestResult) -> dict[str, str]:
    """Each file's short name → "ok" or its error code."""
    return {f.path.replace("!", "/").rsplit("/", 1)[-1]: f.code or "ok" for f in result.files}


def _error(result: IngestResult, name: str) -> str:
    (outcome,) = [f for f in result.files if f.path.endswith(name)]
    assert not outcome.ok and outcome.error
    return outcome.error


def _image(rows: int, cols: int, pixels: bytes, uid: str = "2.25.41") -> Dataset:
    """A minimal 8-bit secondary capture data set."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.42", "2.25.43"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = pixels
    return ds


def _deflated(ds: Dataset) -> bytes:
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return to_bytes(ds)  # pydicom deflates the data set on writing (PS3.5 A.5)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _good() -> Path:
    return wheel_file("CT_small.dcm")  # 128×128 16-bit: 32 KiB decoded


# ---------------------------------------------------------------------------------------------------------
# Deflated DICOM


def test_deflated_dicom_over_the_file_budget_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(_deflated(_image(2048, 2048, bytes(2048 * 2048))))  # 4 MiB of zeros → ~4 kB
    assert bomb.stat().st_size < 20 * KiB
    result = load_study([bomb, _good()], _settings(tmp_path, ingest_max_file_bytes=1 * MiB))
    assert _status(result) == {"bomb.dcm": "too_large", "CT_small.dcm": "ok"}
    message = _error(result, "bomb.dcm")
    assert "'bomb.dcm'" in message and "4 MiB" in message and "ingest_max_file_bytes = 1 MiB" in message


def test_deflated_dicom_whose_pixels_outgrow_its_header_stops_inflating(tmp_path: Path) -> None:
    # The header says 64×64 (4 kB); the pixel data inflates to 8 MiB. The budget would allow 8 MiB: the file's
    # own header is the tighter bound.
    bomb = tmp_path / "liar.dcm"
    bomb.write_bytes(_deflated(_image(64, 64, bytes(8 * MiB))))
    result = load_study([bomb, _good()], _settings(tmp_path, ingest_max_file_bytes=64 * MiB))
    assert _status(result) == {"liar.dcm": "too_large", "CT_small.dcm": "ok"}
    assert "its own header declares" in _error(result, "liar.dcm")


def test_deflated_dicom_within_budget_ingests_like_pydicom_reads_it(tmp_path: Path) -> None:
    pixels = np.arange(96 * 80, dtype=np.uint8).reshape(96, 80)
    path = tmp_path / "fine.dcm"
    path.write_bytes(_deflated(_image(96, 80, pixels.tobytes())))
    result = load_study([path], _settings(tmp_path))
    assert result.ok and result.study is not None
    np.testing.assert_array_equal(result.study.series[0].images[0].values, pixels)


def test_truncated_deflated_dicom_is_reported_as_truncated(tmp_path: Path) -> None:
    data = _deflated(_image(256, 256, np.random.default_rng(0).integers(0, 255, 256 * 256, np.uint8).tobytes()))
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    result = load_study([path], _settings(tmp_path))
    assert _status(result) == {"cut.dcm": "truncated"}


# ---------------------------------------------------------------------------------------------------------
# Zip archives


def test_zip_member_over_the_file_budget_is_refused_and_its_siblings_ingest(tmp_path: Path) -> None:
    archive = tmp_path / "upload.zip"
    archive.write_bytes(_zip({"a/CT.dcm": _good().read_bytes(), "a/zeros.dcm": bytes(3 * MiB)}))
    result = load_study([archive], _settings(tmp_path, ingest_max_file_bytes=1 * MiB))
    assert _status(result) == {"CT.dcm": "ok", "zeros.dcm": "too_large"}
    message = _error(result, "zeros.dcm")
    assert "'upload.zip!a/zeros.dcm'" in message and "ingest_max_file_bytes = 1 MiB" in message


def test_zip_member_beyond_the_compression_ratio_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "upload.zip"
    archive.write_bytes(_zip({"zeros.dcm": bytes(4 * MiB), "CT.dcm": _good().read_bytes()}))  # ~1000:1
    result = load_study([archive], _settings(tmp_path))
    assert _status(result) == {"CT.dcm": "ok", "zeros.dcm": "compression_ratio"}
    assert "ingest_max_compression_ratio = 100:1" in _error(result, "zeros.dcm")


def test_zip_member_that_lies_about_its_size_is_never_inflated_past_it(tmp_path: Path) -> None:
    data = bytearray(_zip({"zeros.dcm": bytes(MiB)}))
    # Declare 1 kB instead of 1 MiB, in the local header (APPNOTE 4.3.7) and the central directory (4.3.12).
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 1000)
    struct.pack_into("<I", data, central + 24, 1000)
    archive = tmp_path / "liar.zip"
    archive.write_bytes(bytes(data))
    result = load_study([archive, _good()], _settings(tmp_path))
    assert _status(result) == {"zeros.dcm": "bad_archive", "CT_small.dcm": "ok"}


def test_zip_inside_a_zip_is_not_opened(tmp_path: Path) -> None:
    inner = _zip({"IM1.dcm": _good().read_bytes()})
    archive = tmp_path / "upload.zip"
    archive.write_bytes(_zip({"inner.zip": inner, "disguised.dcm": inner, "CT.dcm": _good().read_bytes()}))
    result = load_study([archive], _settings(tmp_path))
    assert _status(result) == {"CT.dcm": "ok", "disguised.dcm": "nested_archive", "inner.zip": "nested_archive"}
    assert "'upload.zip!inner.zip' is a zip inside the zip" in _error(result, "inner.zip")


def test_upload_with_too_many_files_keeps_the_first_and_names_where_it_stopped(tmp_path: Path) -> None:
    members = {f"IM{i}.dcm": to_bytes(_image(8, 8, bytes(64), uid=f"2.25.50{i}")) for i in range(1, 6)}
    archive = tmp_path / "many.zip"
    archive.write_bytes(_zip(members))
    result = load_study([archive, _good()], _settings(tmp_path, ingest_max_files=3))
    assert _status(result) == {"IM1.dcm": "ok", "IM2.dcm": "ok", "IM3.dcm": "ok", "IM4.dcm": "too_many_files"}
    assert "at most 3 files (ingest_max_files)" in _error(result, "IM4.dcm")


def test_folder_with_too_many_files_stops_at_the_limit(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    for i in range(1, 6):
        write(_image(8, 8, bytes(64), uid=f"2.25.60{i}"), folder / f"IM{i}.dcm")
    result = load_study([folder], _settings(tmp_path, ingest_max_files=2))
    assert list(_status(result).values()) == ["ok", "ok", "too_many_files"]


def test_zip_whose_table_of_contents_is_too_long_is_not_opened(tmp_path: Path) -> None:
    members = {f"{'x' * 200}{i}": b"" for i in range(30)}  # ~7.5 kB of directory for a limit of 2 files
    archive = tmp_path / "toc.zip"
    archive.write_bytes(_zip(members))
    result = load_study([archive, _good()], _settings(tmp_path, ingest_max_files=2))
    assert _status(result) == {"toc.zip": "too_many_files", "CT_small.dcm": "ok"}
    assert "'toc.zip' was not opened" in _error(result, "toc.zip")


# ---------------------------------------------------------------------------------------------------------
# Compressed frames: the DICOM header and the codestream's own header


def test_rle_declaring_a_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    ds = read("MR_small_RLE.dcm")
    ds.Rows = ds.Columns = 32768  # 2 GiB of 16-bit pixels from a few kB of RLE
    result = load_study([write(ds, tmp_path / "rle.dcm"), _good()], _settings(tmp_path))
    assert _status(result) == {"rle.dcm": "too_large", "CT_small.dcm": "ok"}
    assert "2 GiB" in _error(result, "rle.dcm") and "ingest_max_file_bytes = 512 MiB" in _error(result, "rle.dcm")


def _patch_j2k_size(ds: Dataset, side: int) -> None:
    from pydicom.encaps import encapsulate, generate_frames

    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    codestream = bytearray(frame)
    at = codestream.find(b"\xff\x4f\xff\x51") + 2  # SIZ after SOC (ISO/IEC 15444-1 A.5.1)
    struct.pack_into(">II", codestream, at + 6, side, side)  # Xsiz, Ysiz (image offsets are 0)
    ds.PixelData = encapsulate([bytes(codestream)])


def test_jpeg2000_frame_declaring_more_than_its_header_is_refused_before_decoding(tmp_path: Path) -> None:
    ds = read("JPEG2000.dcm")  # 1024×256 in both headers
    _patch_j2k_size(ds, 46341)  # openjpeg would allocate 46341² × 4 bytes = 8 GiB
    result = load_study([write(ds, tmp_path / "j2k.dcm"), _good()], _settings(tmp_path))
    assert _status(result) == {"j2k.dcm": "too_large", "CT_small.dcm": "ok"}
    assert "compressed frame 1 declares a 46341×46341 image" in _error(result, "j2k.dcm")


def test_jpeg_frame_declaring_more_than_its_header_is_refused_before_decoding(tmp_path: Path) -> None:
    from pydicom.encaps import encapsulate, generate_frames

    ds = read("SC_rgb_jpeg_dcmtk.dcm")
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    jpeg = bytearray(frame)
    sof = jpeg.find(b"\xff\xc0")  # baseline SOF0: length, precision, height, width (ISO/IEC 10918-1 B.2.2)
    struct.pack_into(">HH", jpeg, sof + 5, 60000, 60000)
    ds.PixelData = encapsulate([bytes(jpeg)])
    result = load_study([write(ds, tmp_path / "jpeg.dcm")], _settings(tmp_path))
    assert _status(result) == {"jpeg.dcm": "too_large"}
    assert "declares a 60000×60000 image" in _error(result, "jpeg.dcm")


def test_jpeg2000_within_its_header_still_decodes(tmp_path: Path) -> None:
    result = load_study([wheel_file("JPEG2000.dcm"), wheel_file("SC_rgb_jpeg_dcmtk.dcm")], _settings(tmp_path))
    assert result.ok


# ---------------------------------------------------------------------------------------------------------
# Budgets: per upload, for pictures, and where they come from


def test_files_past_the_upload_budget_are_refused_and_the_earlier_ones_kept(tmp_path: Path) -> None:
    files = [wheel_file("CT_small.dcm"), wheel_file("MR_small.dcm"), wheel_file("CT_small.dcm")]  # 32, 8, 32 KiB
    result = load_study(files, _settings(tmp_path, ingest_max_upload_bytes=70 * KiB))
    assert [f.code or "ok" for f in result.files] == ["ok", "ok", "upload_budget"]
    message = result.files[2].error or ""
    assert "'CT_small.dcm'" in message and "already take 40 KiB" in message
    assert "ingest_max_upload_bytes = 70 KiB" in message


def test_a_refused_file_costs_the_upload_nothing(tmp_path: Path) -> None:
    bomb = read("MR_small_RLE.dcm")
    bomb.Rows = bomb.Columns = 32768
    files = [write(bomb, tmp_path / "rle.dcm"), wheel_file("CT_small.dcm"), wheel_file("MR_small.dcm")]
    result = load_study(files, _settings(tmp_path, ingest_max_upload_bytes=64 * KiB))
    assert [f.code or "ok" for f in result.files] == ["too_large", "ok", "ok"]


def test_picture_over_the_file_budget_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    PILImage.fromarray(np.zeros((1000, 1000), dtype=np.uint8)).save(path)  # 1 MB decoded, ~1 kB on disk
    result = load_study([path, _good()], _settings(tmp_path, ingest_max_file_bytes=512 * KiB))
    assert _status(result) == {"photo.png": "too_large", "CT_small.dcm": "ok"}
    assert "ingest_max_file_bytes = 512 KiB" in _error(result, "photo.png")


def test_budgets_are_read_from_the_environment_through_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        env={"RADASSIST_DATA_DIR": str(tmp_path / "data"), "RADASSIST_INGEST_MAX_FILE_BYTES": "16384"}
    )
    assert IngestLimits.from_settings(settings).max_file_bytes == 16 * KiB
    result = load_study([_good()], settings)
    assert _status(result) == {"CT_small.dcm": "too_large"}
    assert "ingest_max_file_bytes = 16 KiB" in _error(result, "CT_small.dcm")


def test_explicit_limits_win_over_the_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, ingest_max_file_bytes=16 * KiB)
    assert load_study([_good()], settings, IngestLimits()).ok


@pytest.mark.parametrize(
    "name", ["ingest_max_file_bytes", "ingest_max_upload_bytes", "ingest_max_files", "ingest_max_compression_ratio"]
)
def test_budget_settings_are_validated(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        _settings(tmp_path, **{name: 0})


# ---------------------------------------------------------------------------------------------------------
# Peak memory, measured in a child process


_CHILD = """
import json, sys
from assistant.imaging.ingest import load_study

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))

idle = status("VmRSS")
result = load_study([sys.argv[1]], b"radassist-test-salt-0123456789")
print(json.dumps({"idle": idle, "peak": status("VmHWM"), "codes": [f.code for f in result.files]}))
"""


def _deflate_bomb(path: Path, pixel_bytes: int) -> None:
    """A deflated DICOM whose header says 64×64 and whose pixel data inflates to ``pixel_bytes`` zero bytes.

    Streamed through zlib, so the gigabyte never exists in this process.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = _image(64, 64, b"")
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta, body = DicomBytesIO(), DicomBytesIO()
    for fp in (meta, body):
        fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta)
    write_dataset(body, ds)
    pixel_header = struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OB", pixel_bytes)  # PS3.5 7.1.2
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # PS3.5 A.5: raw deflate
    zeros = bytes(MiB)
    with open(path, "wb") as fh:
        fh.write(bytes(128) + b"DICM" + meta.getvalue())
        fh.write(deflater.compress(body.getvalue() + pixel_header))
        for _ in range(pixel_bytes // MiB):
            fh.write(deflater.compress(zeros))
        fh.write(deflater.flush())


def test_a_gigabyte_deflate_bomb_stays_within_a_bounded_peak_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.dcm"
    _deflate_bomb(bomb, 1 << 30)  # 1 GiB of pixels in ~1 MB; pydicom alone peaks at ~3 GiB on it
    assert bomb.stat().st_size < 2 * MiB
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(bomb)], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["codes"] == ["too_large"]
    # VmHWM, the child's own peak: ru_maxrss (RUSAGE_CHILDREN) would include this test process's peak, which Linux
    # carries into a child across fork + exec.
    assert measured["peak"] < 600 * 10**6, measured
