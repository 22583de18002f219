"""Decompression bombs: the peak memory of a process that ingests each one, above that process's own idle size.

Run: ``.venv/bin/python -m bench.bench_bombs [--baseline ROOT] [--only NAME ...] [--no-write]``; writes the
"bombs" section of docs/benchmarks.md. Asserts nothing: the table is the result.

Each bomb is crafted at run time in a temporary folder (nothing large is kept in this process: the big members
are streamed through zlib), then ingested by a fresh child process. The child warms up on a small real file,
takes its resident size as "idle", ingests the bomb with ``load_study`` and reports its peak resident size
(VmHWM); the table shows peak minus idle, so the interpreter and the libraries do not count. With
``--baseline ROOT`` each bomb is also ingested by a child that imports ``assistant`` from ROOT (a copy of the code
before the budgets, e.g. ``git archive <commit> assistant retrieval prompts | tar -x -C /tmp/before``), in
the same run.

The goal: every bomb stays under 1 GiB above idle. One row is not a bomb but a legitimate file at half the
per-file budget, for scale: what a real large file costs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SALT = b"benchmark-salt-not-secret-000000"
GOAL_BYTES = 1 << 30
CHUNK = 1 << 20
CHILD_TIMEOUT_S = 600

# Transfer syntaxes (PS3.5 A.4, A.5)
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"


# ---------------------------------------------------------------------------------------------------------
# Crafting: DICOM files are written element by element so that gigabytes of pixels never sit in memory.


def _dataset(rows: int, cols: int, bits: int, frames: int = 1, uid_suffix: str = "1") -> Any:
    from pydicom.dataset import Dataset
    from pydicom.uid import SecondaryCaptureImageStorage

    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = f"2.25.1000.{uid_suffix}"
    ds.StudyInstanceUID = "2.25.1001"
    ds.SeriesInstanceUID = "2.25.1002"
    ds.PatientID = "BENCH"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def _head(ds: Any, transfer_syntax: str) -> bytes:
    """Preamble, "DICM" and the file meta group (PS3.10 7.1) for ``ds``."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, meta)
    return bytes(128) + b"DICM" + fp.getvalue()


def _body(ds: Any) -> bytes:
    """The data set's elements, Explicit VR Little Endian, without pixel data."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _pixel_header(vr: bytes, length: int) -> bytes:
    """(7FE0,0010) with a 4-byte length: PS3.5 7.1.2, OB/OW carry two reserved bytes."""
    return struct.pack("<HH", 0x7FE0, 0x0010) + vr + b"\0\0" + struct.pack("<I", length)


def _encapsulated(frames: list[bytes]) -> bytes:
    """Encapsulated pixel data (PS3.5 A.4): undefined length, empty offset table, one fragment per frame."""
    item = struct.pack("<HH", 0xFFFE, 0xE000)
    out = _pixel_header(b"OB", 0xFFFFFFFF) + item + struct.pack("<I", 0)
    for frame in frames:
        frame += b"\0" * (len(frame) % 2)
        out += item + struct.pack("<I", len(frame)) + frame
    return out + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def craft_deflated(path: Path, rows: int = 32768, cols: int = 16384) -> str:
    """Deflated Explicit VR Little Endian whose 16-bit zero pixels (1 GiB by default) deflate to ~1 MB."""
    ds = _dataset(rows, cols, 16)
    pixels = rows * cols * 2
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(CHUNK)
    with open(path, "wb") as fh:
        fh.write(_head(ds, DEFLATED))
        fh.write(deflater.compress(_body(ds) + _pixel_header(b"OW", pixels)))
        for _ in range(pixels // CHUNK):
            fh.write(deflater.compress(zeros))
        fh.write(deflater.compress(bytes(pixels % CHUNK)) + deflater.flush())
    return f"{rows}×{cols} 16-bit, {pixels >> 20} MiB inflated"


def craft_zip_member(path: Path, size: int = 1 << 30) -> str:
    """A zip with one member of ``size`` zero bytes (declared honestly; ~1000:1)."""
    zeros = bytes(CHUNK)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("series/zeros.dcm", "w", force_zip64=True) as member:
            for _ in range(size // CHUNK):
                member.write(zeros)
    return f"one {size >> 20} MiB member"


def craft_rle(path: Path, side: int = 32768) -> str:
    """RLE Lossless (PS3.5 G) declaring side² 8-bit pixels, with one segment of a few bytes."""
    ds = _dataset(side, side, 8)
    header = struct.pack("<16I", 1, 64, *([0] * 14))  # PS3.5 G.5: 1 segment, at offset 64
    segment = bytes([0x81, 0x00]) * 4  # 4 runs of 128 zeros (G.3.1): far short of side² bytes
    with open(path, "wb") as fh:
        fh.write(_head(ds, RLE) + _body(ds) + _encapsulated([header + segment]))
    return f"{side}×{side} 8-bit ({side * side >> 20} MiB) in the header"


def craft_j2k(path: Path, side: int = 20000) -> str:
    """JPEG 2000 with a 64×64 DICOM header and a 144-byte codestream whose SIZ declares side×side."""
    import numpy as np
    import openjpeg

    codestream = bytearray(openjpeg.encode(np.zeros((64, 64), dtype=np.uint8)))
    at = codestream.find(b"\xff\x51")  # SIZ (ISO/IEC 15444-1 A.5.1)
    struct.pack_into(">II", codestream, at + 6, side, side)  # Xsiz, Ysiz
    struct.pack_into(">II", codestream, at + 22, side, side)  # XTsiz, YTsiz: one tile
    ds = _dataset(64, 64, 8)
    with open(path, "wb") as fh:
        fh.write(_head(ds, J2K_LOSSLESS) + _body(ds) + _encapsulated([bytes(codestream)]))
    return f"64×64 header, codestream {side}×{side}"


def craft_many_files(path: Path, count: int = 10_000) -> str:
    """A zip of ``count`` tiny DICOM files (8×8, distinct instances of one series)."""
    import numpy as np

    placeholder = b"9" * 8  # digits: the UID stays valid; replaced by each file's number
    ds = _dataset(8, 8, 8, uid_suffix=placeholder.decode())
    template = _head(ds, EXPLICIT_LE) + _body(ds)
    pixels = _pixel_header(b"OB", 64) + np.arange(64, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(count):
            uid = f"{i:08d}".encode()
            zf.writestr(f"series/IM{i:05d}.dcm", template.replace(placeholder, uid) + pixels)
    return f"{count:,} files of 8×8"


def craft_toc(path: Path, count: int = 200_000) -> str:
    """A zip whose table of contents lists ``count`` empty files (~20 MB; zipfile holds a ZipInfo for each)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"{i:06d}", b"")
    return f"{count:,} empty entries"


def craft_nested(path: Path, levels: int = 4, copies: int = 10) -> str:
    """42.zip-style: each level holds ``copies`` of the level below; the innermost, 1 GiB of zeros."""
    inner = path.with_suffix(".level0.zip")
    craft_zip_member(inner)
    data = inner.read_bytes()
    inner.unlink()
    for level in range(1, levels + 1):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for i in range(copies):
                zf.writestr(f"level{level}-{i}.zip", data)
        data = buffer.getvalue()
    path.write_bytes(data)
    return f"{levels} levels × {copies} copies, {copies**levels:,} GiB nominal"


def craft_legitimate(path: Path, frames: int = 512) -> str:
    """Not a bomb: a native 16-bit 512×512×``frames`` multi-frame file with noise (256 MiB decoded at 512)."""
    import numpy as np

    ds = _dataset(512, 512, 16, frames=frames)
    ds.BitsStored, ds.HighBit = 12, 11
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        fh.write(_head(ds, EXPLICIT_LE) + _body(ds) + _pixel_header(b"OW", 512 * 512 * 2 * frames))
        for _ in range(frames):
            fh.write(rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes())
    return f"512×512×{frames} 16-bit, {512 * 512 * 2 * frames >> 20} MiB decoded"


@dataclass(frozen=True)
class Bomb:
    name: str
    title: str
    craft: Callable[[Path], str]
    suffix: str = ".dcm"


BOMBS = (
    Bomb("deflated", "Deflated DICOM", craft_deflated),
    Bomb("zip-member", "zip, one zero-filled member", craft_zip_member, ".zip"),
    Bomb("rle", "RLE header declaring 32768²", craft_rle),
    Bomb("j2k", "JPEG 2000 codestream declaring 20000²", craft_j2k),
    Bomb("many-files", "10,000 tiny files (zip)", craft_many_files, ".zip"),
    Bomb("toc", "zip table of contents", craft_toc, ".zip"),
    Bomb("nested", "nested zips", craft_nested, ".zip"),
    Bomb("legitimate", "not a bomb: a large legitimate file", craft_legitimate),
)


# ---------------------------------------------------------------------------------------------------------
# Measuring: one child process per bomb and code version.


def _status(field: str) -> int:
    """A size from /proc/self/status in bytes: VmRSS (resident now) or VmHWM (resident at the peak)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(path: Path) -> dict[str, Any]:
    """Ingest ``path`` in this process; resident sizes before and at the peak."""
    import gc

    from pydicom.data import get_testdata_file

    from assistant.imaging.deid import Pseudonymizer
    from assistant.imaging.ingest import load_study

    keys = Pseudonymizer(SALT)
    warm = get_testdata_file("CT_small.dcm", download=False)
    load_study([str(warm)], keys)  # imports pydicom, numpy, the decoders and the de-identification tables
    gc.collect()
    idle = _status("VmRSS")
    started = time.perf_counter()
    result = load_study([path], keys)
    elapsed = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into a child's ru_maxrss across fork/vfork + exec
    # (the old mm's high-water mark is kept at exec), so a child of a big parent would report the parent's peak.
    peak = _status("VmHWM")
    codes: dict[str, int] = {}
    for outcome in result.files:
        key = outcome.code or "ok"
        codes[key] = codes.get(key, 0) + 1
    first_error = next((f.error for f in result.files if not f.ok), None)
    return {"idle": idle, "peak": peak, "seconds": elapsed, "codes": codes, "error": first_error}


def _measure(path: Path, code_root: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    try:
        done = subprocess.run(
            command, cwd=code_root, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"over {CHILD_TIMEOUT_S} s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"failed": f"exit {done.returncode}: {tail[:80]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 10_000 else f"{n / 1e3:,.0f} kB" if n < 10_000_000 else f"{n / 1e6:,.0f} MB"


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def _cell(m: dict[str, Any] | None) -> str:
    if m is None:
        return "—"
    if "failed" in m:
        return f"failed ({m['failed']})"
    return f"{_mib(max(0, m['peak'] - m['idle']))} MiB"


def _seconds(m: dict[str, Any]) -> str:
    return f"{m['seconds']:.2f}" if "seconds" in m else "—"


def _outcome(m: dict[str, Any]) -> str:
    if "failed" in m:
        return m["failed"]
    return ", ".join(f"{code} ×{n}" if n > 1 else code for code, n in sorted(m["codes"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=Path, help="also measure the code under this root (a copy from before)")
    parser.add_argument("--only", nargs="*", choices=[b.name for b in BOMBS], help="these bombs only")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.child is not None:
        sys.stdout.write(json.dumps(child(args.child)) + "\n")
        return 0

    bombs = [b for b in BOMBS if not args.only or b.name in args.only]
    rows = []
    with tempfile.TemporaryDirectory(prefix="radassist-bombs-") as tmp:
        for bomb in bombs:
            path = Path(tmp) / f"{bomb.name}{bomb.suffix}"
            declared = bomb.craft(path)
            after = _measure(path, ROOT)
            before = _measure(path, args.baseline) if args.baseline else None
            rows.append((bomb, path.stat().st_size, declared, before, after))
            sys.stderr.write(f"{bomb.name}: after {_cell(after)}, before {_cell(before)}\n")
            path.unlink()

    lines = [
        "Each bomb is crafted at run time and ingested (`load_study`, default limits) by a fresh child process; "
        "the figure is the child's peak resident size (VmHWM) minus its own resident size just before, after "
        "a warm-up on a small real file. Goal: every bomb < 1 GiB above idle.",
        "",
    ]
    header = "| input | file | declares | outcome | time (s) | idle RSS | peak above idle |"
    rule = "|---|---:|---|---|---:|---:|---:|"
    if args.baseline:
        header += " before: outcome | before: time (s) | before: peak above idle |"
        rule += "---|---:|---:|"
    lines += [header, rule]
    met = True
    for bomb, size, declared, before, after in rows:
        line = (
            f"| {bomb.title} | {_size(size)} | {declared} | {_outcome(after)} | {_seconds(after)} | "
            f"{_mib(after['idle']) + ' MiB' if 'idle' in after else '—'} | {_cell(after)} |"
        )
        if before is not None:
            line += f" {_outcome(before)} | {_seconds(before)} | {_cell(before)} |"
        lines.append(line)
        if bomb.name != "legitimate" and ("failed" in after or after["peak"] - after["idle"] >= GOAL_BYTES):
            met = False
    lines += ["", f"Goal (every bomb < 1 GiB above idle): {'met' if met else 'NOT met'}."]
    body = "\n".join(lines)
    sys.stdout.write(body + "\n")
    if not args.no_write:
        from bench.report import write_section

        command = "python -m bench.bench_bombs" + (" --baseline <copy of the code before>" if args.baseline else "")
        write_section("bombs", "Decompression bombs (ingest)", command, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
