"""Ingest throughput over the shared DICOM set against bare pydicom (dcmread + pixel_array) in the same run.

Run: ``.venv/bin/python -m bench.bench_ingest [--repeat N]``; writes the "ingest" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / ".." / "shared" / "data" / "dicom"
SALT = b"benchmark-salt-not-secret-000000"


def _files() -> list[Path]:
    """Every file of the shared set whose pixels pydicom decodes (the others are not a throughput case)."""
    import csv

    with open(SHARED / "inventory.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if not r["path"].startswith("pydicom_wheel/")]
    return [SHARED / r["path"] for r in rows if r["decode_pydicom3"].startswith("ok")]


def _baseline(paths: list[Path]) -> None:
    import pydicom

    for path in paths:
        pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding is the point


def _ingest(paths: list[Path]) -> None:
    from assistant.imaging.deid import Pseudonymizer
    from assistant.imaging.ingest import load_study

    keys = Pseudonymizer(SALT)
    for path in paths:
        result = load_study([path], keys)
        if not result.ok:
            raise SystemExit(f"ingest failed on {path.name}: {result.files[0].error}")


def _time(fn: object, paths: list[Path]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn(paths)  # type: ignore[operator]
    return time.perf_counter() - start


def _peak_mib(fn: object, paths: list[Path]) -> float:
    gc.collect()
    tracemalloc.start()
    fn(paths)  # type: ignore[operator]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds, interleaved (median reported)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    paths = _files()
    total_mb = sum(p.stat().st_size for p in paths) / 1e6
    _baseline(paths[:3])  # warm imports and decoder plugins for both sides
    _ingest(paths[:3])
    base_times, ingest_times = [], []
    for _ in range(args.repeat):  # interleaved, so machine noise hits both alike
        base_times.append(_time(_baseline, paths))
        ingest_times.append(_time(_ingest, paths))
    base, ours = statistics.median(base_times), statistics.median(ingest_times)
    largest = max(paths, key=lambda p: p.stat().st_size)
    base_peak = _peak_mib(_baseline, [largest])
    ours_peak = _peak_mib(_ingest, [largest])

    body = "\n".join(
        [
            f"{len(paths)} files, {total_mb:.1f} MB (every decodable file of `../shared/data/dicom`: CT, MR, CR, US, "
            "NM, SEG; native, RLE, JPEG lossless, JPEG-LS, JPEG 2000). Median of "
            f"{args.repeat} interleaved rounds; one `load_study` call per file (decode, modality LUT, windowing, "
            "8-bit rendering, de-identified header and summary).",
            "",
            "| | time (s) | files/s | MB/s | ratio |",
            "|---|---:|---:|---:|---:|",
            f"| baseline: `pydicom.dcmread` + `pixel_array` | {base:.3f} | {len(paths) / base:.1f} | "
            f"{total_mb / base:.1f} | 1.00 |",
            f"| `assistant.imaging.ingest.load_study` | {ours:.3f} | {len(paths) / ours:.1f} | {total_mb / ours:.1f} | "
            f"{ours / base:.2f} |",
            "",
            f"Goal: ratio ≤ 1.30 — {'met' if ours / base <= 1.3 else 'NOT met'}.",
            "",
            f"Peak Python memory (tracemalloc) for the largest file, `{largest.name}` "
            f"({largest.stat().st_size / 1e6:.1f} MB, 1955×1841 CR): baseline {base_peak:.0f} MiB, "
            f"ingest {ours_peak:.0f} MiB.",
        ]
    )
    sys.stdout.write(body + "\n")
    if not args.no_write:
        from bench.report import write_section

        write_section("ingest", "Ingest throughput (DICOM)", "python -m bench.bench_ingest", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
