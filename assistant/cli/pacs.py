"""``radassist pacs find|priors|list``: the PACS worklist from the shell (DICOMweb; docs/pacs.md).

``find`` prints the matching studies, newest first; with ``--json`` one JSON line per study: ``{"pacs",
"study_instance_uid", "patient_id", "patient_name", "accession_number", "study_date", "study_description",
"modalities", "series_count", "instance_count"}``. These identify the patient: they are printed for the user
at the terminal and never logged or stored. ``ingest --pacs UID``, ``ask --pacs UID`` and ``report new --pacs
UID`` open a study; ``report send ID`` files the draft as a DICOM SR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable

from assistant.errors import ConfigurationError
from assistant.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pacs`` and its sub-commands."""
    pacs = sub.add_parser("pacs", help="find studies on the PACS (DICOMweb) and list a patient's priors")
    psub = pacs.add_subparsers(dest="pacs_command", required=True, metavar="ACTION")

    find = psub.add_parser("find", help="search the PACS for studies (QIDO-RS)")
    find.add_argument("--patient-id", help="Patient ID")
    find.add_argument("--accession", help="accession number")
    find.add_argument("--name", help="patient name, e.g. 'DOE^JANE' or 'DOE*'")
    find.add_argument("--date", type=_date, help="study date (YYYY-MM-DD)")
    find.add_argument("--date-from", type=_date, help="first study date (YYYY-MM-DD)")
    find.add_argument("--date-to", type=_date, help="last study date (YYYY-MM-DD)")
    find.add_argument("--modality", help="modality in the study (CT, MR, CR, ...)")
    find.add_argument("--limit", type=int, default=100, help="most studies to list (default: %(default)s)")
    find.add_argument("--json", action="store_true", help="one JSON line per study")
    add_pacs_name(find, "--pacs")

    priors = psub.add_parser("priors", help="the same patient's earlier studies on the PACS")
    priors.add_argument("study", metavar="STUDY_UID", help="the current study's Study Instance UID")
    priors.add_argument("--json", action="store_true", help="one JSON line per prior study")
    add_pacs_name(priors, "--pacs")

    psub.add_parser("list", help="the configured PACS endpoints (names and URLs; never credentials)")
    pacs.set_defaults(func=run)


def add_pacs_name(parser: argparse.ArgumentParser, flag: str = "--pacs-name") -> None:
    parser.add_argument(
        flag, dest="pacs_name", metavar="NAME", help="which configured PACS (not needed when only one is configured)"
    )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def stderr_progress(quiet: bool) -> Callable[[object], None] | None:
    """A progress line on stderr for a retrieval (none when ``quiet``)."""
    if quiet:
        return None
    last = [-1]

    def show(p: object) -> None:
        percent = int(100 * float(getattr(p, "fraction", 0.0)))
        if percent // 10 != last[0] // 10:
            last[0] = percent
            done, total = getattr(p, "instances_done", 0), getattr(p, "instances_total", 0)
            print(f"radassist: retrieving from the PACS: {percent}% ({done}/{total} instances)", file=sys.stderr,
                  flush=True)  # fmt: skip

    return show


def run(args: argparse.Namespace, settings: Settings) -> int:
    from assistant.pacs import PacsClient, StudyQuery, find_priors

    if args.pacs_command == "list":
        for endpoint in settings.pacs_endpoints:
            auth = "basic" if endpoint.user else "bearer" if endpoint.token else "none"
            print(f"{endpoint.name:16} {endpoint.safe_url}  (auth: {auth})")
        return 0
    client = PacsClient(settings.pacs_endpoint(args.pacs_name))
    if args.pacs_command == "find":
        if args.date and (args.date_from or args.date_to):
            raise ConfigurationError("give --date or --date-from/--date-to, not both")
        query = StudyQuery(
            patient_id=args.patient_id,
            accession_number=args.accession,
            patient_name=args.name,
            date_from=args.date or args.date_from,
            date_to=args.date or args.date_to,
            modality=args.modality,
            limit=args.limit,
        )
        if not query.filters():
            raise ConfigurationError(
                "give at least one of --patient-id, --accession, --name, --date(-from/-to), --modality"
            )
        matches = client.find_studies(query)
    else:
        from assistant.imaging.deid import Pseudonymizer

        current = client.study(args.study)
        matches = list(find_priors(client, current, Pseudonymizer.from_settings(settings),
                                   import_reports=False).studies)  # fmt: skip
    for match in matches:
        if args.json:
            sys.stdout.write(json.dumps({"pacs": client.endpoint.name, **match.to_json()}, ensure_ascii=False) + "\n")
        else:
            date = match.study_date.isoformat() if match.study_date else "----------"
            print(
                f"{date}  {match.patient_id or '-':16} {match.patient_name or '-':24} "
                f"{match.accession_number or '-':14} {','.join(match.modalities) or '-':8} "
                f"{match.study_description or ''}  {match.study_instance_uid}"
            )
    if not args.json:
        print(f"{len(matches)} study(ies) on {client.label}", file=sys.stderr)
    return 0
