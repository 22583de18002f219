"""The evaluation loop: one line per question, failures kept and counted, resumable after a crash."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import ConfigurationError, IngestError, LLMUnavailableError
from assistant.eval.runner import EvalItem, StudyView, read_predictions, run
from assistant.modes.answer import Answer
from assistant.vision.service import ImageRef


class Crash(BaseException):
    """Stands for the process dying (not an error the loop may catch)."""


class ScriptedAsker:
    """Answers "yes" to everything, fails on chosen questions, and can crash after a number of answers."""

    def __init__(self, fail: Sequence[str] = (), crash_after: int | None = None) -> None:
        self.fail = set(fail)
        self.crash_after = crash_after
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, question: str, view: StudyView) -> Answer:
        with self._lock:
            if self.crash_after is not None and len(self.asked) >= self.crash_after:
                raise Crash()
            self.asked.append(question)
        if question in self.fail:
            raise LLMUnavailableError("the model server went away")
        return Answer(f"yes ({len(view.images)} image)", "scripted", extra={"mode": "chat", "image_input": "none"})


def one_image(paths: Sequence[Path]) -> StudyView:
    return StudyView(tuple(ImageRef(np.zeros((4, 4), dtype=np.uint8), "image") for _ in paths))


def items(n: int) -> list[EvalItem]:
    return [EvalItem(str(i), f"q{i}", (Path(f"img{i}.png"),), {"qid": str(i), "answer": "yes"}) for i in range(n)]


def test_every_question_gets_one_line_in_order_with_its_prediction(tmp_path: Path) -> None:
    out = tmp_path / "predictions.jsonl"
    records = run(items(5), ScriptedAsker(), one_image, out, concurrency=3)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["qid"] for r in lines] == ["0", "1", "2", "3", "4"] == [r["qid"] for r in records]
    assert all(r["prediction"] == "yes (1 image)" and r["model"] == "scripted" for r in lines)
    assert all(r["mode"] == "chat" and r["image_input"] == "none" for r in lines)
    assert all(r["latency_s"] >= 0 for r in lines)


def test_failures_are_written_and_counted_never_dropped(tmp_path: Path) -> None:
    out = tmp_path / "predictions.jsonl"
    progress: list[tuple[int, int, int]] = []
    records = run(items(4), ScriptedAsker(fail=["q2"]), one_image, out, progress=lambda *a: progress.append(a))
    assert len(records) == 4
    failed = [r for r in records if "error" in r]
    assert [r["qid"] for r in failed] == ["2"] and "went away" in failed[0]["error"]
    assert failed[0]["prediction"] is None
    assert progress[-1] == (4, 4, 1)


def test_an_image_that_cannot_be_read_fails_only_its_question(tmp_path: Path) -> None:
    def load(paths: Sequence[Path]) -> StudyView:
        if paths[0].name == "img1.png":
            raise IngestError("img1.png could not be read: not an image")
        return one_image(paths)

    records = run(items(3), ScriptedAsker(), load, tmp_path / "p.jsonl")
    assert ["error" in r for r in records] == [False, True, False]


def test_resume_after_a_crash_asks_only_what_is_missing(tmp_path: Path) -> None:
    out = tmp_path / "predictions.jsonl"
    with pytest.raises(Crash):
        run(items(6), ScriptedAsker(crash_after=4), one_image, out)
    assert len(out.read_text().splitlines()) == 4  # each answer was on disk before the crash
    with out.open("a") as sink:
        sink.write('{"_key": "4", "qid": "4", "predic')  # a line torn by the crash
    # A second crash on resume leaves a file a third run can still read.
    with pytest.raises(Crash):
        run(items(6), ScriptedAsker(crash_after=1), one_image, out, resume=True)
    assert len(read_predictions(out)) == 5
    again = ScriptedAsker()
    records = run(items(6), again, one_image, out, resume=True)
    assert again.asked == ["q5"]
    assert [r["qid"] for r in records] == ["0", "1", "2", "3", "4", "5"]
    assert len(out.read_text().splitlines()) == 6  # rewritten: one line per question, the torn one gone


def test_resume_asks_earlier_failures_again(tmp_path: Path) -> None:
    out = tmp_path / "predictions.jsonl"
    run(items(3), ScriptedAsker(fail=["q1"]), one_image, out)
    again = ScriptedAsker()
    records = run(items(3), again, one_image, out, resume=True)
    assert again.asked == ["q1"]
    assert not any("error" in r for r in records)


def test_an_earlier_run_is_not_overwritten_without_resume(tmp_path: Path) -> None:
    out = tmp_path / "predictions.jsonl"
    run(items(2), ScriptedAsker(), one_image, out)
    with pytest.raises(ConfigurationError, match="--resume"):
        run(items(2), ScriptedAsker(), one_image, out)


def test_duplicate_question_ids_and_a_foreign_file_are_refused(tmp_path: Path) -> None:
    twice = [*items(2), items(2)[0]]
    with pytest.raises(ConfigurationError, match="more than once"):
        run(twice, ScriptedAsker(), one_image, tmp_path / "a.jsonl")
    foreign = tmp_path / "b.jsonl"
    foreign.write_text('{"id": 1}\n{"id": 2}\n')
    with pytest.raises(ConfigurationError, match="not a prediction"):
        read_predictions(foreign)
    with pytest.raises(ConfigurationError, match="concurrency"):
        run(items(1), ScriptedAsker(), one_image, tmp_path / "c.jsonl", concurrency=0)
