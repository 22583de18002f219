"""``radassist priors import FILE``: a patient's prior reports, de-identified and linked to their studies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import retrieval
from assistant.priors import import_priors
from assistant.settings import Settings
from assistant.store.audit import AuditLog


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    priors = sub.add_parser("priors", help="prior reports: import them, de-identified, linked to the patient's studies")
    psub = priors.add_subparsers(dest="priors_command", required=True, metavar="COMMAND")
    imp = psub.add_parser(
        "import",
        help="import prior reports (.csv, .json, .jsonl) with a patient ID (patient_id/mrn) and date per row",
        description="The patient ID and accession become the pseudonymous keys `radassist ingest` uses (same salt), "
        "dates move by the patient's own date shift, the text loses the row's names/IDs and anything that looks "
        "like a name, ID, date, phone or e-mail. No raw identifier is stored. Importing the same file again adds "
        "nothing.",
    )
    imp.add_argument("file", type=Path, metavar="FILE.csv|.jsonl", help="columns: patient_id (or mrn), date, "
                     "accession (optional), modality (optional), text or indication/comparison/findings/impression")
    imp.add_argument("--json", action="store_true", help='print {"rows", "reports", "patients", "added", "total"}')
    imp.add_argument("--model", help="embedding model (default: the configured one)")
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    embedder = retrieval.create_embedder(args.model or settings.embedding_model)
    progress = None if args.json else _stderr
    with AuditLog(settings.database) as audit:
        result = import_priors(
            args.file, settings, embedder, progress=progress, show_progress=not args.json, audit=audit
        )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(
            f"imported {result.reports} reports of {result.patients} patients: {result.added} new sections "
            f"({result.total} in the prior-report store, {result.path})"
        )
    return 0


def _stderr(message: str) -> None:
    print(f"radassist: {message}", file=sys.stderr, flush=True)
