"""``radassist audit export``: the audit trail for a compliance review, as CSV or JSON lines.

Every answer leaves one row: when, which mode, prompt template and model, the ids of the guideline chunks it
cited, its latency and length, and whether it succeeded. No row holds a question, an answer or anything about a
patient, so the export holds none either.

Dates are ISO 8601: a day (``2025-01-31``) or a time (``2025-01-31T14:00``, ``2025-01-31T14:00+01:00``); without an
offset they are UTC. ``--until`` a day includes that whole day.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO

from assistant.errors import RadassistError
from assistant.settings import Settings
from assistant.store.audit import AuditEntry, AuditLog

COLUMNS = ("id", "time", "mode", "template", "model", "chunk_ids", "latency_ms", "output_chars", "outcome")
_DATE_HELP = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]; UTC without an offset"


class AuditExportError(RadassistError):
    """The export's arguments are not usable (a date that is not one, a range that ends before it starts)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` and its sub-command ``export``."""
    audit = sub.add_parser("audit", help="the audit trail (no question or answer text in it): export")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    export = asub.add_parser("export", help="the rows of a period, as CSV or JSON lines (for a compliance review)")
    export.add_argument("--since", required=True, metavar="DATE", help=f"first day or time included ({_DATE_HELP})")
    export.add_argument("--until", metavar="DATE", help="last day included, or the time the period ends before")
    export.add_argument("--format", required=True, choices=("csv", "jsonl"), help="csv (with a header) or jsonl")
    export.add_argument("--out", type=Path, metavar="FILE", help="write here, owner-only (default: standard output)")
    audit.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_when(args.since, "--since")
    until = parse_when(args.until, "--until", end_of_day=True) if args.until else None
    if until is not None and until <= since:
        raise AuditExportError(f"--until ({args.until}) must be after --since ({args.since})")
    rows: Iterable[AuditEntry] = ()
    exists = settings.database_url is not None or settings.db_path.exists()  # never create a SQLite file to export
    log = AuditLog(settings.database) if exists else None
    try:
        if log is not None:
            rows = log.between(since.timestamp(), None if until is None else until.timestamp())
        if args.out is None:
            count = write_rows(rows, args.format, sys.stdout)
        else:
            count = _write_file(args.out, rows, args.format)
    finally:
        if log is not None:
            log.close()
    where = "" if args.out is None else f" to {args.out}"
    print(f"{count} audit row(s) exported{where}", file=sys.stderr)
    return 0


def parse_when(text: str, flag: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 day or time as an aware datetime (UTC without an offset); a day as ``--until`` is its end."""
    value = text.strip()
    try:
        if len(value) == 10:  # a day: YYYY-MM-DD
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        when = datetime.fromisoformat(value)
    except ValueError:
        raise AuditExportError(f"{flag}: {text!r} is not a date ({_DATE_HELP})") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def write_rows(rows: Iterable[AuditEntry], fmt: str, out: IO[str]) -> int:
    """Write ``rows`` as ``csv`` (header first; chunk ids space-separated) or ``jsonl``; returns how many."""
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    count = 0
    for entry in rows:
        rec = entry.record
        when = datetime.fromtimestamp(rec.ts, UTC).isoformat(timespec="milliseconds")
        values = (entry.id, when, rec.mode, rec.template, rec.model, list(rec.chunk_ids), rec.latency_ms,
                  rec.output_chars, rec.outcome)  # fmt: skip
        if writer is not None:
            writer.writerow([" ".join(v) if isinstance(v, list) else v for v in values])
        else:
            out.write(json.dumps(dict(zip(COLUMNS, values, strict=True)), ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_file(path: Path, rows: Iterable[AuditEntry], fmt: str) -> int:
    """Write to a temporary owner-only file beside ``path`` and rename it: never a half-written export."""
    folder = path.resolve().parent
    if not folder.is_dir():
        raise AuditExportError(f"--out: the folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)  # created 0600
    except OSError as exc:
        raise AuditExportError(f"--out: cannot write in {folder}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            count = write_rows(rows, fmt, fh)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AuditExportError(f"--out: cannot write {path}: {exc.strerror}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
