"""The resumable, concurrent loop of an evaluation: items through the product's answering path into a JSONL file.

Every item goes through :meth:`assistant.runtime.Runtime.stream` (``RuntimeAsker``) with its image ingested and
rendered exactly as ``radassist ask --image`` does (``StudyImages``). Each finished item is appended to the
predictions file at once (flushed and synced), so a crash loses at most the items in flight; ``resume=True``
keeps the successful lines of an earlier run and asks only the rest (earlier failures are asked again). An item
that fails is written with its ``error`` and counted, never dropped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ConfigurationError, IngestError, RadassistError
from assistant.imaging.ingest import load_study
from assistant.imaging.study import Study
from assistant.modes.answer import Answer
from assistant.modes.mode import Mode
from assistant.runtime import AskContext, Runtime
from assistant.settings import Settings
from assistant.vision.service import ImageRef, representative_views

logger = logging.getLogger(__name__)

ProgressBar = Callable[[int, int, int], None]  # (done, total, failures)


@dataclass(frozen=True)
class EvalItem:
    """One question: its key (unique in the run), the text asked, the image files and the fields to keep."""

    key: str
    question: str
    images: tuple[Path, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyView:
    """What a radiologist has on screen for one question: the images sent, what each is, and the study."""

    images: tuple[ImageRef, ...] = ()
    sent: tuple[Mapping[str, Any], ...] = ()
    study: Study | None = None


class Asker(Protocol):
    """Answers one question about a study view (the product's path in use; a scripted one in unit tests)."""

    def __call__(self, question: str, view: StudyView) -> Answer: ...


Loader = Callable[[Sequence[Path]], StudyView]


class StudyImages:
    """The files of one question ingested and rendered as ``radassist ask --image FILE...`` does: de-identified,
    each series' representative frame in the file's own window, the first study as the study on screen. Each set
    of files is ingested once per run (VQA sets ask many questions about one image). Safe from several threads."""

    def __init__(self, settings: Settings, max_cached: int = 512) -> None:
        self.settings = settings
        self.max_cached = max_cached
        self._cache: dict[tuple[Path, ...], StudyView | IngestError] = {}
        self._lock = threading.Lock()

    def load(self, paths: Sequence[Path]) -> StudyView:
        key = tuple(paths)
        if not key:
            return StudyView()
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = self._ingest(key)
            with self._lock:
                if len(self._cache) >= self.max_cached:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = cached
        if isinstance(cached, IngestError):
            raise cached
        return cached

    def _ingest(self, paths: tuple[Path, ...]) -> StudyView | IngestError:
        missing = [p.name for p in paths if not p.exists()]
        if missing:
            return IngestError(f"image not found: {', '.join(missing)}")
        result = load_study(list(paths), self.settings)
        if not result.studies:
            reasons = "; ".join(o.error for o in result.files if o.error) or "no image in it"
            return IngestError(f"{', '.join(p.name for p in paths)} could not be read: {reasons}")
        images, sent = representative_views(result.studies)
        return StudyView(tuple(images), tuple(sent), result.studies[0])


class RuntimeAsker:
    """The product's answering path: ``Runtime.stream`` with the study view as its context, in ``mode`` (``auto``
    by default, as ``radassist ask --image`` and the web app: study Q&A, header facts, or a named guideline)."""

    def __init__(self, runtime: Runtime, mode: Mode = Mode.AUTO) -> None:
        self.runtime = runtime
        self.mode = mode

    def __call__(self, question: str, view: StudyView) -> Answer:
        final: Answer | None = None
        context = AskContext(images=view.images, sent=view.sent, study=view.study)
        for event in self.runtime.stream(question, mode=self.mode, context=context):
            if event.answer is not None:
                final = event.answer
        if final is None:  # unreachable: stream always ends with an answer or raises
            raise RadassistError("the answer stream ended without an answer")
        return final


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """The records of an earlier run by key (the last line of a key wins); a torn last line is skipped."""
    if not path.exists():
        return {}
    found: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the earlier predictions {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # written while the run was killed: that item is asked again
                logger.warning("ignoring the torn last line of %s", path.name)
                continue
            raise ConfigurationError(f"{path} line {number} is not valid JSON; move the file away") from None
        if not isinstance(record, dict) or "_key" not in record:
            raise ConfigurationError(f"{path} line {number} is not a prediction of this harness")
        found[str(record["_key"])] = record
    return found


def run(
    items: Sequence[EvalItem],
    ask: Asker,
    images: StudyImages | Loader,
    predictions: Path,
    *,
    resume: bool = False,
    concurrency: int = 1,
    progress: ProgressBar | None = None,
) -> list[dict[str, Any]]:
    """Ask every item (``concurrency`` at a time), appending each record to ``predictions``; the records in item
    order. At the end the file is rewritten in item order, one line per item (lines of keys not in ``items``,
    from an earlier run with another ``--limit``, are kept after them)."""
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ConfigurationError(f"question id {duplicate!r} appears more than once in the data")
    earlier = read_predictions(predictions) if resume else {}
    if not resume and predictions.exists() and predictions.stat().st_size > 0:
        raise ConfigurationError(
            f"{predictions} already holds predictions: pass --resume to continue that run, or choose another --out"
        )
    load = images.load if isinstance(images, StudyImages) else images
    done: dict[str, dict[str, Any]] = {k: r for k, r in earlier.items() if "error" not in r}
    todo = [item for item in items if item.key not in done]
    total, failures = len(items), 0
    finished = len(items) - len(todo)
    predictions.parent.mkdir(parents=True, exist_ok=True)
    if earlier or (resume and predictions.exists()):
        _rewrite(predictions, list(earlier.values()))  # drops a torn last line before anything is appended
    if progress:
        progress(finished, total, failures)
    with predictions.open("a", encoding="utf-8") as sink:
        for record in _answers(todo, ask, load, concurrency):
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            done[record["_key"]] = record
            finished += 1
            failures += "error" in record
            if progress:
                progress(finished, total, failures)
    ordered = [done[key] for key in keys]
    wanted = set(keys)
    extra = [r for k, r in {**earlier, **done}.items() if k not in wanted]
    _rewrite(predictions, [*ordered, *extra])
    return ordered


def _answers(todo: Sequence[EvalItem], ask: Asker, load: Loader, concurrency: int) -> Iterator[dict[str, Any]]:
    """Each item's record as it finishes (any order)."""
    if concurrency == 1:
        for item in todo:
            yield _answer_one(item, ask, load)
        return
    pending = iter(todo)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval")
    running: set[Future[dict[str, Any]]] = set()
    completed = False
    try:
        while True:
            while len(running) < concurrency and (waiting := next(pending, None)) is not None:
                running.add(pool.submit(_answer_one, waiting, ask, load))
            if not running:
                completed = True
                return
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        # Interrupted (Ctrl-C, a crash): return at once; the questions in flight end when the caller closes the
        # model connection, and are asked again by --resume.
        pool.shutdown(wait=completed, cancel_futures=True)


def _answer_one(item: EvalItem, ask: Asker, load: Loader) -> dict[str, Any]:
    record: dict[str, Any] = {"_key": item.key, **item.fields}
    try:
        view = load(item.images)
        started = time.monotonic()
        answer = ask(item.question, view)
        record["latency_s"] = round(time.monotonic() - started, 4)
    except RadassistError as exc:  # counted as a failure, the run goes on
        logger.info("item failed: %s", type(exc).__name__)
        record["prediction"] = None
        record["error"] = str(exc)
        return record
    record["prediction"] = answer.text
    record["model"] = answer.model
    for name in ("mode", "image_input"):  # how it was answered; whether the model saw the pixels
        if name in answer.extra:
            record[name] = answer.extra[name]
    return record


def _rewrite(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``records`` atomically (a crash leaves the old or the new file, never half)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
