"""``radassist serve`` and ``radassist ask``: the chat front doors."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError, IngestError, RadassistError
from assistant.imaging.ingest import IngestResult, load_study
from assistant.imaging.study import Study
from assistant.modes.answer import Answer
from assistant.modes.mode import Mode
from assistant.runtime import AskContext, Runtime, check_bind_host, open_runtime
from assistant.settings import Settings
from assistant.startup import RuntimeStarter
from assistant.store.retention import RetentionSweeper
from assistant.vision.service import (
    ImageRef,
    SimilarCase,
    View,
    image_in_view,
    images_from_study,
    representative_views,
)

FRONTEND_GROUP = "radassist.frontends"

logger = logging.getLogger(__name__)


def _stderr_progress(message: str) -> None:
    print(f"radassist: {message}", file=sys.stderr, flush=True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ask = sub.add_parser("ask", help="ask a question; the answer streams to stdout")
    ask.add_argument("question", nargs="?", help="the question (omit with --batch)")
    ask.add_argument("--json", action="store_true", help='print one JSON object {"answer", "citations", "model"}')
    ask.add_argument("--batch", type=Path, metavar="FILE.jsonl", help='lines {"id", "question"}; one JSON line each')
    ask.add_argument("--llm-url", help="use a running OpenAI-compatible server instead of the embedded engine")
    ask.add_argument("--max-tokens", type=int, help="longest answer in tokens")
    ask.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=Mode.AUTO.value,
        help="chat: the model alone; guideline: exact calculators with cited guideline sections (--json adds "
        "tool_results); grounded: answered from guideline sections and, with --patient, that patient's prior "
        "reports, with citations; auto (default): guideline for questions about a guideline or a finding one "
        "covers, chat otherwise",
    )
    ask.add_argument("--patient", metavar="KEY", help="pseudonymous patient key: grounded answers use their priors")
    ask.add_argument(
        "--image",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="attach a study image (DICOM file, folder or zip of a series, PNG/JPEG); repeatable. --json adds "
        '"image_input": "embeds" | "pixels" | "none" (none: the model did not see the pixels)',
    )
    ask.add_argument(
        "--pacs",
        metavar="STUDY_UID",
        help="attach a study retrieved from the PACS (DICOMweb), de-identified on arrival like --image",
    )
    ask.add_argument("--pacs-name", metavar="NAME", help="with --pacs: which configured PACS (when several)")
    ask.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="with --image: send frame N (1-based) of the series, as on screen (default: each series' middle frame)",
    )
    ask.add_argument(
        "--window",
        metavar="PRESET|C/W",
        help="with --image: render the sent frame in this window (lung, mediastinum, bone, ... or CENTER/WIDTH)",
    )
    ask.add_argument(
        "--series",
        type=int,
        default=1,
        metavar="N",
        help="with --frame/--window: the series (1-based, default 1)",
    )
    ask.add_argument(
        "--similar",
        type=int,
        default=3,
        metavar="K",
        help="with --image and a teaching corpus (RADASSIST_VISION_TEACHING_CORPUS, or `index build --corpus "
        "images`): list the K teaching cases whose images look most alike, with their reports, after the answer "
        '(--json: "similar_cases"); 0 = off (default: %(default)s). They are shown to you only, never put into '
        "the model's prompt",
    )
    ask.set_defaults(func=run_ask)

    serve = sub.add_parser("serve", help="start the LLM engine and the web app")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="web app port (default 7860)")
    serve.add_argument("--llm-url", help="use a running OpenAI-compatible server instead of the embedded engine")
    serve.add_argument("--allow-remote", action="store_true", help="allow listening beyond loopback")
    serve.set_defaults(func=run_serve)


def _settings_for(args: argparse.Namespace, settings: Settings) -> Settings:
    changes: dict[str, Any] = {}
    if getattr(args, "llm_url", None):
        changes["llm_url"] = args.llm_url
    if getattr(args, "max_tokens", None):
        changes["llm_max_tokens"] = args.max_tokens
    if getattr(args, "host", None):
        changes["host"] = args.host
    if getattr(args, "port", None):
        changes["port"] = args.port
    return settings.replace(**changes) if changes else settings


def _read_batch(path: Path) -> Iterator[tuple[Any, str | None, str | None]]:
    """(id, question, error) per non-empty line; a bad line yields an error, not an exception."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the batch file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"the batch file {path} is not UTF-8 text") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            yield None, None, f"line {number} is not valid JSON"
            continue
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            yield (
                (item.get("id") if isinstance(item, dict) else None),
                None,
                (f'line {number} needs a string "question"'),
            )
            continue
        yield item.get("id"), item["question"], None


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.question) == bool(args.batch):
        raise ConfigurationError("give either a question or --batch FILE.jsonl")
    if args.similar < 0:
        raise ConfigurationError(f"--similar must be 0 (off) or more, got {args.similar}")
    settings = _settings_for(args, settings)
    progress = None if args.json or args.batch else _stderr_progress
    items = list(_read_batch(args.batch)) if args.batch else []
    mode, patient = Mode(args.mode), args.patient
    if patient and mode not in (Mode.AUTO, Mode.GROUNDED):
        raise ConfigurationError("--patient is only used by --mode grounded")
    if (args.frame is not None or args.window) and not (args.image or args.pacs):
        raise ConfigurationError("--frame and --window choose what of an --image is sent; give --image FILE")
    if args.pacs and args.image:
        raise ConfigurationError("give --image files or --pacs STUDY_UID, not both")
    opened = _open_from_pacs(args, settings, progress is None) if args.pacs else None
    # Fails fast. The study's metadata answers study-fact questions; its patient key finds the patient's priors.
    images, sent, study = load_study_view(args.image, settings, args.series, args.frame, args.window, opened)
    with open_runtime(settings, progress=progress or _quiet) as runtime:
        # Looked up before the answer (an embeds model then reuses the encoded images), shown after it.
        similar, similar_error = _similar_cases(runtime, images, args.similar)
        status = 1 if similar_error else 0  # the answer is still given when only the similar cases failed
        if args.batch:
            return max(_ask_batch(runtime, items, mode, patient, images, similar, study, sent), status)
        context = AskContext(images=tuple(images), patient_key=patient, sent=tuple(sent), study=study)
        answer: Answer | None = None
        streamed = False
        # Runtime.stream picks the mode and dispatches; this front end only renders what it yields.
        for event in runtime.stream(args.question, mode=mode, context=context, progress=_stderr_progress):
            if event.kind == "mode" and not args.json and event.mode is not None:
                _stderr_progress(f"mode: {event.mode.value}")  # which mode answers (facts, chat, guideline, ...)
            elif event.kind == "note" and not args.json:
                _stderr_progress(event.text)
            elif event.kind == "delta" and not args.json:
                sys.stdout.write(event.text)
                sys.stdout.flush()
                streamed = True
            elif event.answer is not None:
                answer = event.answer
        assert answer is not None  # Runtime.stream ends with the answer or raises
        if args.json:
            record = answer.to_json()
            if similar is not None:
                record["similar_cases"] = [case.to_json() for case in similar]
            if similar_error is not None:
                record["similar_cases_error"] = similar_error
            print(json.dumps(record, ensure_ascii=False))
        elif streamed:
            sys.stdout.write("\n")
            if similar:
                print(f"\n{_similar_text(similar)}")
        else:
            print(_plain_text(answer) + (f"\n\n{_similar_text(similar)}" if similar else ""))
        return status


def _similar_cases(runtime: Runtime, images: Sequence[ImageRef], k: int) -> tuple[list[SimilarCase] | None, str | None]:
    """(similar teaching cases, None) or (None, the reason they failed); (None, None) when not asked for."""
    if not images or k == 0:
        return None, None
    try:
        if not runtime.prepare_similar_cases(_stderr_progress):  # built on first use; a one-off, so always shown
            return None, None
        return runtime.similar_cases(images, k), None
    except RadassistError as exc:
        _stderr_progress(f"similar teaching cases unavailable: {exc}")
        return None, str(exc)
    except Exception as exc:  # the answer still matters more than the cases beside it
        logger.error("similar-case lookup failed", exc_info=exc)
        message = f"unexpected {type(exc).__name__} (see the log)"
        _stderr_progress(f"similar teaching cases unavailable: {message}")
        return None, message


def _similar_text(cases: Sequence[SimilarCase], lines_per_report: int = 2, width: int = 160) -> str:
    """The cases as a short list: id, score and the first lines of each report."""
    out = ["Similar teaching cases (for reference; not given to the model):"]
    for number, case in enumerate(cases, 1):
        out.append(f"[{number}] {case.case_id} (similarity {case.score:.3f})")
        for line in [line.strip() for line in case.report.splitlines() if line.strip()][:lines_per_report]:
            out.append("    " + (line if len(line) <= width else line[: width - 1] + "…"))
    return "\n".join(out)


def _plain_text(answer: Answer) -> str:
    """The answer, then its numbered sources."""
    if not answer.citations:
        return answer.text
    lines = [answer.text, "", "Sources:"]
    for number, cite in enumerate(answer.citations, 1):
        lines.append(f"[{number}] {cite['title']} ({cite['section']}) — {cite['source']}")
    return "\n".join(lines)


def _quiet(message: str) -> None:
    pass


def _open_from_pacs(args: argparse.Namespace, settings: Settings, quiet: bool) -> IngestResult:
    """``--pacs STUDY_UID``: the study retrieved and ingested in memory (de-identified), progress on stderr."""
    from assistant.cli.pacs import stderr_progress
    from assistant.pacs import PacsClient, open_study

    client = PacsClient(settings.pacs_endpoint(args.pacs_name))
    return open_study(client, args.pacs, settings, progress=stderr_progress(quiet)).result


def load_view(
    paths: list[Path], settings: Settings, series: int, frame: int | None, window: str | None,
    opened: IngestResult | None = None,
) -> tuple[list[ImageRef], list[dict[str, Any]]]:  # fmt: skip
    """What ``load_study_view`` sends, without the study."""
    images, sent, _ = load_study_view(paths, settings, series, frame, window, opened)
    return images, sent


def load_study_view(
    paths: list[Path], settings: Settings, series: int, frame: int | None, window: str | None,
    opened: IngestResult | None = None,
) -> tuple[list[ImageRef], list[dict[str, Any]], Study | None]:  # fmt: skip
    """The images to send and what they are: with --frame/--window, that frame rendered in that window (as the
    web app sends the frame on screen); otherwise each series' representative frame. ``opened``: a study already
    ingested (from the PACS) instead of ``paths``."""
    if not paths and opened is None:
        return [], [], None
    result = opened if opened is not None else load_study(paths, settings)
    for outcome in result.files:
        if not outcome.ok:
            _stderr_progress(f"{outcome.path}: {outcome.error}")
    if not result.studies:
        raise IngestError("none of the attached images could be read (see the messages above)")
    if frame is None and not window:
        images, described = representative_views(result.studies)
        return images, described, result.studies[0]
    spec: Any = None
    if window:
        parts = window.replace(",", "/").split("/")
        try:
            spec = (float(parts[0]), float(parts[1])) if len(parts) == 2 else window.strip().lower()
        except ValueError:
            raise ConfigurationError(f"--window {window!r} is not a preset name or CENTER/WIDTH") from None
    study = result.studies[0]
    middle = study.series[min(max(series - 1, 0), len(study.series) - 1)].frame_count // 2 if study.series else 0
    chosen = View(series - 1, (frame - 1) if frame is not None else middle, spec)
    try:
        image, sent = image_in_view(study, chosen)
    except (KeyError, ValueError) as exc:
        raise ConfigurationError(f"--window {window!r}: {exc}") from exc
    return [image], [sent], study


def load_images(paths: list[Path], settings: Settings) -> list[ImageRef]:
    """Ingest the attached files (de-identified); each bad file is named, and none at all is an error."""
    if not paths:
        return []
    result = load_study(paths, settings)
    for outcome in result.files:
        if not outcome.ok:
            _stderr_progress(f"{outcome.path}: {outcome.error}")
    refs = [ref for study in result.studies for ref in images_from_study(study)]
    if not refs:
        raise IngestError("none of the attached images could be read (see the messages above)")
    return refs


def _ask_batch(
    runtime: Runtime, items: list[tuple[Any, str | None, str | None]], mode: Mode = Mode.CHAT,
    patient: str | None = None, images: Sequence[ImageRef] = (), similar: Sequence[SimilarCase] | None = None,
    study: Study | None = None, sent: Sequence[dict[str, Any]] = (),
) -> int:  # fmt: skip
    failures = 0
    for item_id, question, error in items:
        record: dict[str, Any] = {"id": item_id}
        if question is not None:
            try:
                record.update(
                    runtime.answer(
                        question, mode, patient_key=patient, images=images, progress=_stderr_progress,
                        study=study, sent=sent,
                    ).to_json()
                )
                if similar is not None:
                    record["similar_cases"] = [case.to_json() for case in similar]
            except RadassistError as exc:
                error = str(exc)
        if error is not None:
            failures += 1
            record["error"] = error
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return 1 if failures else 0


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    settings = _settings_for(args, settings)
    check_bind_host(settings.host, args.allow_remote)
    frontends = entry_points(group=FRONTEND_GROUP)
    if not frontends:
        raise ConfigurationError("no web front end is installed (run the set-up: make setup)")
    launch = next(iter(frontends)).load()
    # The app is up at once; the engine starts (and the guideline index is built) behind it, with progress
    # in the app's status line and here.
    # Retention (if configured) is swept now and daily while the app runs.
    with RuntimeStarter(settings, progress=_stderr_progress) as starter, RetentionSweeper(settings):
        _stderr_progress(f"web app on http://{settings.host}:{settings.port} (Ctrl-C stops everything)")
        launch(starter)
    return 0
