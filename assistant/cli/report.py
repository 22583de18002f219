"""``radassist report new|dictate|edit|undo|show|export|list|retry|delete|templates``: report drafting from the shell.

The language model is started only when the rules cannot place a sentence (or an edit needs rephrasing);
``--no-llm`` never starts it: sentences the rules cannot place are then reported and kept for ``report retry``.

The command line acts as the machine's one local user (:data:`LOCAL_OWNER`, the web app's owner in single-user
mode: loopback, no log-in): it lists, shows, edits, exports and deletes that user's drafts only; a logged-in or
remote web user's draft is "not found" here, exactly like a missing one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant.cli.text import one_line, terminal_text
from assistant.errors import ConfigurationError
from assistant.llm.client import ChatModel
from assistant.report.draft import StudyRef, list_templates, load_report_template, render_text
from assistant.report.edits import parse_intent
from assistant.report.export import ExportFormat, empty_sections, to_json
from assistant.report.priors import InMemoryPriors, PriorSource
from assistant.report.service import DraftingService, Reply
from assistant.report.store import LOCAL_OWNER, ReportStore
from assistant.settings import Settings

CLI_OWNER = LOCAL_OWNER  # whose drafts `radassist report` acts on


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` and its sub-commands."""
    report = sub.add_parser("report", help="draft a structured report in dialogue (templates, priors, export)")
    rsub = report.add_subparsers(dest="report_command", required=True, metavar="ACTION")

    new = rsub.add_parser("new", help="start a draft from a template (or from a study's modality/body part)")
    new.add_argument("--template", help=f"template name ({', '.join(list_templates())})")
    new.add_argument(
        "--study", type=Path, nargs="+", help="DICOM files/folders: choose the template, reference the study"
    )
    new.add_argument("--patient-key", help="pseudonymous patient key (for the prior report) when no --study is given")
    new.add_argument("--priors", type=Path, help="prior reports (.csv/.json/.jsonl with patient_key and date)")
    new.add_argument(
        "--synthetic-patients",
        type=int,
        metavar="N",
        help="demo data without patient keys: assign N synthetic patients (never for real data)",
    )
    new.add_argument("--id", help="report id (default: random)")
    new.add_argument(
        "--pacs",
        metavar="STUDY_UID",
        help="the study from the PACS (retrieved, de-identified): chooses the template, is referenced, and the "
        "patient's earlier SR reports on the PACS become the priors",
    )
    new.add_argument("--pacs-name", metavar="NAME", help="with --pacs: which configured PACS (when several)")

    for name, help_text in (
        ("dictate", "add dictation; sentences are placed into the report sections"),
        ("edit", "an edit in words: 'delete the effusion sentence', 'make impression 2 more concise', 'undo'"),
    ):
        p = rsub.add_parser(name, help=help_text)
        p.add_argument("id", help="report id")
        p.add_argument("text", help="what you say")
        _llm_flags(p)

    undo = rsub.add_parser("undo", help="undo the last change (history is kept)")
    undo.add_argument("id")
    retry = rsub.add_parser("retry", help="apply dictations that failed because the model was unavailable")
    retry.add_argument("id")
    _llm_flags(retry)

    show = rsub.add_parser("show", help="print the draft")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="the structured report as JSON")
    show.add_argument("--history", action="store_true", help="list the versions")
    show.add_argument("--no-marks", action="store_true", help="leave out the [unconfirmed] marks")

    export = rsub.add_parser("export", help="write the draft as Markdown, text, JSON or DICOM SR")
    export.add_argument("id")
    export.add_argument("--format", required=True, choices=[f.value for f in ExportFormat])
    export.add_argument("--out", required=True, type=Path, help="output file")

    send = rsub.add_parser(
        "send", help="store the draft in its study on the PACS as a DICOM SR (STOW-RS); prints its SOP Instance UID"
    )
    send.add_argument("id")
    send.add_argument("--pacs", dest="pacs_name", metavar="NAME", help="which configured PACS (when several)")
    send.add_argument(
        "--study", metavar="STUDY_UID", help="the study's real UID (checked against the draft); default: found"
    )
    send.add_argument("--yes", action="store_true", help="send without asking (the study and text are still shown)")

    delete = rsub.add_parser("delete", help="delete the draft with its history and dialogue")
    delete.add_argument("id")

    rsub.add_parser("list", help="list drafts")
    rsub.add_parser("templates", help="list report templates")
    report.set_defaults(func=run)


def _llm_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-llm", action="store_true", help="rules only; never start or call the language model")
    parser.add_argument("--llm-url", help="use a running OpenAI-compatible server instead of the embedded engine")


def _progress(message: str) -> None:
    print(f"radassist: {message}", file=sys.stderr, flush=True)


@contextmanager
def _model(args: argparse.Namespace, settings: Settings, needed: bool) -> Iterator[tuple[ChatModel | None, Any]]:
    """The chat model and audit log, started only when ``needed`` and allowed."""
    if not needed or getattr(args, "no_llm", False):
        yield None, None
        return
    from assistant.runtime import open_runtime

    if getattr(args, "llm_url", None):
        settings = settings.replace(llm_url=args.llm_url)
    with open_runtime(settings, _progress) as runtime:
        yield runtime.client, runtime.audit


def _print_reply(reply: Reply) -> int:
    if reply.diff:
        print(terminal_text(reply.diff))
        print()
    print(terminal_text(reply.text))
    return 0 if reply.ok and not reply.unplaced else 1


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch one ``report`` action; 0 on success, 1 when something was not applied."""
    with ReportStore(settings.database, owner=CLI_OWNER) as store:
        action = args.report_command
        if action == "templates":
            for name in list_templates():
                t = load_report_template(name)
                print(f"{name:20} {t.title} ({', '.join(t.modalities)}; {', '.join(t.body_parts[:3])})")
            return 0
        if action == "list":
            for info in store.drafts():
                line = f"{info.report_id}  {info.template:22} v{info.current_version}  {info.patient_key or '-'}"
                print(one_line(line))
            return 0
        if action == "new":
            return _new(args, settings, store)
        if action == "show":
            return _show(args, store)
        if action == "export":
            from assistant.imaging.deid import Pseudonymizer

            # The ingest's keys: the SR's own dates get the patient's date shift, as the study's dates did.
            keys = Pseudonymizer.from_settings(settings) if args.format == "sr" else None
            exported = DraftingService(store).export(args.id, args.format, args.out, keys=keys)
            print(f"wrote {exported.path}")
            return 0
        if action == "send":
            return _send(args, settings, store)
        if action == "delete":
            store.delete(args.id)
            print(f"deleted {args.id}")
            return 0
        if action == "undo":
            return _print_reply(DraftingService(store).handle(args.id, "undo"))
        if action == "retry":
            failed = store.failed_messages(args.id)
            needs = any(_needs_model(store, args.id, m.text) for m in failed)
            with _model(args, settings, needs) as (model, audit):
                return _print_reply(DraftingService(store, model, audit=audit).retry(args.id))
        # dictate / edit
        needed = _needs_model(store, args.id, args.text)
        with _model(args, settings, needed) as (model, audit):
            return _print_reply(DraftingService(store, model, audit=audit).handle(args.id, args.text))


def _needs_model(store: ReportStore, report_id: str, text: str) -> bool:
    intent = parse_intent(text)
    if intent.kind == "concise":
        return True
    if intent.kind != "dictate":
        return False
    return any(c.slot is None for c in DraftingService(store).plan(report_id, text))


def _new(args: argparse.Namespace, settings: Settings, store: ReportStore) -> int:
    study: StudyRef | None = None
    pacs_priors: InMemoryPriors | None = None
    if args.study:
        from assistant.imaging.ingest import load_study

        result = load_study(args.study, settings)
        if result.study is None:
            raise ConfigurationError("no image could be read from --study: " + "; ".join(
                f"{f.path}: {f.error}" for f in result.errors[:3]))  # fmt: skip
        study = StudyRef.from_study(result.study)
    elif getattr(args, "pacs", None):
        study, pacs_priors = _from_pacs(args, settings)
    elif args.patient_key:
        study = StudyRef(study_instance_uid="", patient_key=args.patient_key)
    priors = pacs_priors
    if args.priors:
        import retrieval

        synthetic = retrieval.SyntheticPatients(n_patients=args.synthetic_patients) if args.synthetic_patients else None
        priors = InMemoryPriors(retrieval.read_reports(args.priors, synthetic=synthetic))
    # Without a priors file: those imported with `radassist priors import`, found by the study's patient key.
    source: PriorSource | None = priors if priors is not None else _imported_priors(settings)
    reply = DraftingService(store, priors=source).create(args.template, study, args.id)
    print(one_line(reply.report.report_id))
    print(terminal_text(reply.text), file=sys.stderr)
    return 0


def _imported_priors(settings: Settings) -> PriorSource | None:
    """The prior reports in the database (``radassist priors import``) as a prior source; None when none were."""
    import retrieval
    from assistant.runtime import create_prior_reports

    found = create_prior_reports(settings, retrieval.create_embedder(settings.embedding_model))
    return found if found.available() else None


def _from_pacs(args: argparse.Namespace, settings: Settings) -> tuple[StudyRef, InMemoryPriors]:
    """``report new --pacs UID``: the study retrieved and ingested (de-identified), and the patient's prior SR
    reports from the PACS (de-identified, and kept in the prior-report store)."""
    from assistant.cli.pacs import stderr_progress
    from assistant.pacs import PacsClient, import_pacs_priors, open_study

    client = PacsClient(settings.pacs_endpoint(args.pacs_name))
    opened = open_study(client, args.pacs, settings, progress=stderr_progress(False))
    # Stored in the prior-report store too (as the web app's panel does), so later answers and drafts find them.
    found = import_pacs_priors(client, opened.match, settings)
    _progress(f"{len(found.studies)} earlier study(ies) on the PACS, {len(found.reports)} report(s) imported as priors")
    return opened.study_ref, InMemoryPriors(found.reports)


def _send(args: argparse.Namespace, settings: Settings, store: ReportStore) -> int:
    """``report send ID``: show where the SR goes and its text, ask, store it; print its SOP Instance UID."""
    from assistant.imaging.deid import Pseudonymizer
    from assistant.pacs import PacsClient, StudyMatch, send_report

    client = PacsClient(settings.pacs_endpoint(args.pacs_name))

    def confirm(match: StudyMatch, text: str) -> bool:
        date = match.study_date.isoformat() if match.study_date else "no date"
        where = f"study of {match.patient_name or '-'} (ID {match.patient_id or '-'}), {date}"
        print(f"To {client.label}: {where}, accession {match.accession_number or '-'}", file=sys.stderr)
        print(text, file=sys.stderr)
        if args.yes:
            return True
        if not sys.stdin.isatty():
            raise ConfigurationError("confirm the send: run it at a terminal, or add --yes")
        return input("Send this report to the PACS? [y/N] ").strip().lower() in ("y", "yes")

    sent = send_report(client, store, args.id, Pseudonymizer.from_settings(settings),
                       study_uid=args.study, confirm=confirm)  # fmt: skip
    print(sent.sop_instance_uid)
    return 0


def _show(args: argparse.Namespace, store: ReportStore) -> int:
    current = store.current(args.id)
    report = current.report
    if args.json:
        sys.stdout.write(to_json(report, current.number))
        return 0
    if args.history:
        for v in store.history(args.id):
            print(one_line(f"v{v.number:<3} {v.action:8} {v.summary}"))
        return 0
    sys.stdout.write(terminal_text(render_text(report, marks=not args.no_marks)))  # dictation: escapes shown
    extra = []
    if missing := empty_sections(report):
        extra.append("Missing: " + ", ".join(missing))
    if report.changes:
        extra += ["Changes since the prior: " + " ".join(c.text for c in report.changes)]
    if report.questions:
        extra += ["Open: " + " ".join(report.questions)]
    extra.append(f"Version {current.number}; {len(report.unconfirmed)} unconfirmed statement(s).")
    if waiting := DraftingService(store).retry_note(args.id):
        extra.append(waiting)
    print(terminal_text("\n" + "\n".join(extra)))
    return 0
