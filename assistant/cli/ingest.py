"""``radassist ingest PATH... [--json] [--out DIR] [--window NAME]``: ingest studies and report each file.

With ``--json``, one JSON line per file: ``{"path", "ok", "error", "summary"}`` (the summary de-identified).
Exit status 0 when every file was ingested, 1 otherwise (every file is still reported).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from assistant.cli.text import one_line
from assistant.errors import IngestError
from assistant.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ingest`` subcommand."""
    parser = sub.add_parser(
        "ingest",
        help="read DICOM files, folders, zips or PNG/JPEG pictures and report what was found",
        description=(
            "Ingest DICOM files (single or multi-frame), folders, zip archives and PNG/JPEG pictures. "
            "Only de-identified summaries are printed."
        ),
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="file, folder or .zip")
    parser.add_argument(
        "--pacs",
        metavar="STUDY_UID",
        help="retrieve this study's image series from the PACS (DICOMweb) instead of reading files; de-identified "
        "on arrival like an upload, under the same budgets",
    )
    parser.add_argument("--pacs-series", metavar="SERIES_UID", help="with --pacs: only this series")
    parser.add_argument("--pacs-name", metavar="NAME", help="with --pacs: which configured PACS (when several)")
    parser.add_argument("--json", action="store_true", help="one JSON line per file")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write PNG renderings and a montage per series")
    parser.add_argument(
        "--window",
        metavar="NAME",
        help="window for --out: lung, mediastinum, soft_tissue, abdomen, liver, bone, brain, subdural, "
        "or CENTER,WIDTH (default: each image's own)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest the paths, print one line per file, optionally write PNGs; 0 if all files were ingested."""
    from assistant.imaging.ingest import load_study
    from assistant.imaging.study import parse_window

    window = parse_window(args.window) if args.window else None  # fail fast on a bad --window
    if window is not None and args.out is None:
        raise IngestError("--window applies to the PNGs written with --out; add --out DIR")
    if bool(args.paths) == bool(args.pacs):
        raise IngestError("give files/folders to read, or --pacs STUDY_UID to retrieve a study (not both)")
    if args.pacs:
        from assistant.cli.pacs import stderr_progress
        from assistant.pacs import PacsClient, open_study

        client = PacsClient(settings.pacs_endpoint(args.pacs_name))
        result = open_study(
            client, args.pacs, settings, series_uid=args.pacs_series, progress=stderr_progress(args.json)
        ).result
    else:
        result = load_study(args.paths, settings)
    _audit_burned_in(result.studies, settings)
    for outcome in result.files:
        summary = result.summary_for(outcome)
        if args.json:
            line = {"path": outcome.path, "ok": outcome.ok, "error": outcome.error, "summary": summary}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        elif outcome.ok and summary is not None:
            sys.stdout.write(f"ok      {one_line(outcome.path)}: {one_line(_describe(summary))}\n")
        else:
            sys.stdout.write(f"FAILED  {one_line(outcome.path)}: {one_line(outcome.error)}\n")
    for skipped in result.skipped:  # zip members not opened (macOS metadata, hidden files, DICOMDIR)
        if args.json:
            line = {"path": skipped.path, "ok": False, "error": None, "summary": None, "skipped": skipped.reason}
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(f"skipped {one_line(skipped.path)}: {skipped.reason}\n")
    if not args.json:
        for study in result.studies:
            s = study.summary()
            sys.stdout.write(
                f"study {s['patient_key'] or 'no patient ID'}: {', '.join(s['modalities'])}, "
                f"{s['series_count']} series, {s['image_count']} image(s)\n"
            )
            for warning in study.warnings:
                sys.stdout.write(f"  warning: {one_line(warning)}\n")
    if args.out is not None:
        written = _write_pngs(result, args.out, window)
        sys.stderr.write(f"radassist: wrote {written} PNG file(s) to {args.out}\n")
    return 0 if result.ok else 1


def _describe(summary: dict[str, Any]) -> str:
    parts = [summary["modality"]]
    if summary.get("body_part"):
        parts.append(summary["body_part"])
    if summary.get("series_description"):
        parts.append(repr(summary["series_description"]))
    parts.append(f"{summary['frame_count']} frame(s) {summary['rows']}×{summary['columns']}")
    if summary.get("window"):
        parts.append(f"window {summary['window']['name']}")
    return ", ".join(str(p) for p in parts)


def _write_pngs(result: Any, out: Path, window: Any) -> int:
    """PNG per frame and a montage per series, named by position, never by patient data."""
    from PIL import Image as PILImage

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IngestError(f"cannot create the output folder {out}: {exc.strerror}") from exc
    written = 0
    for si, study in enumerate(result.studies, start=1):
        for series in study.series:
            number = series.series_number if series.series_number is not None else 0
            name = re.sub(r"[^A-Za-z0-9]+", "", series.modality.value) or "series"
            folder = out / f"study{si:02d}" / f"series{number:03d}_{name}_{series.series_instance_uid[-8:]}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(series.images, start=1):
                # A fresh PIL image from the array: no metadata chunk can carry anything from the file.
                PILImage.fromarray(image.render(window)).save(folder / f"frame{i:04d}.png")
                written += 1
            PILImage.fromarray(series.montage(window=window)).save(folder / "montage.png")
            written += 1
    return written


def _audit_burned_in(studies: Any, settings: Settings) -> None:
    """One audit row per study whose pixels were read for burned-in text: boxes and counts, never text."""
    from assistant.store.audit import AuditLog, record_burned_in_text

    if not any(study.redaction_audit() for study in studies):
        return  # no database is opened for an ingest that read no pixels for text
    with AuditLog(settings.database) as audit:
        record_burned_in_text(audit, studies)
