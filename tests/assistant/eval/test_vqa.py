"""VQA data loading and the metrics table, on the real VQA-RAD training file and hand-made predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError
from assistant.eval import vqa


def test_loads_vqa_rad_training_questions(shared_dir: Path) -> None:
    questions = vqa.load_questions(shared_dir / "data" / "vqa_rad" / "trainset.json", limit=20)
    assert len(questions) == 20
    first = questions[0]
    assert (first.qid, first.answer, first.answer_type, first.image) == ("1", "Yes", "CLOSED", "synpic54610.jpg")
    assert (first.question_type, first.organ) == ("PRES", "HEAD")
    assert {q.answer_type for q in questions} <= {"CLOSED", "OPEN"}
    item = first.item(Path("/imgs"))
    assert item.images == (Path("/imgs/synpic54610.jpg"),) and item.question == "Are regions of the brain infarcted?"


def test_every_vqa_rad_entry_is_valid_including_padded_answer_types(shared_dir: Path) -> None:
    questions = vqa.load_questions(shared_dir / "data" / "vqa_rad" / "trainset.json")
    assert len(questions) == 3064  # "CLOSED " (two entries) is read as CLOSED
    assert sum(q.answer_type == "CLOSED" for q in questions) == 1823


def test_slake_style_fields_and_jsonl_are_read(tmp_path: Path) -> None:
    path = tmp_path / "slake.jsonl"
    entry = {"qid": 7, "img_name": "xmlab1/source.jpg", "question": "Which organ?", "answer": "Lung",
             "answer_type": "OPEN", "content_type": "Organ", "modality": "CT", "location": "Chest"}  # fmt: skip
    path.write_text(json.dumps(entry) + "\n")
    (q,) = vqa.load_questions(path)
    assert (q.qid, q.image, q.question_type, q.modality, q.organ) == ("7", "xmlab1/source.jpg", "ORGAN", "CT", "CHEST")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"answer": "yes", "answer_type": "CLOSED", "image_name": "a.jpg"}, 'no "question"'),
        ({"question": "q?", "answer_type": "CLOSED", "image_name": "a.jpg"}, 'no "answer"'),
        ({"question": "q?", "answer": "x", "answer_type": "maybe", "image_name": "a.jpg"}, "CLOSED or OPEN"),
        ({"question": "q?", "answer": "x", "answer_type": "OPEN"}, "names no image"),
    ],
)
def test_a_bad_entry_is_named(tmp_path: Path, entry: dict[str, str], message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(ConfigurationError, match=message):
        vqa.load_questions(path)


def record(qid: str, kind: str, answer: str, prediction: str | None, **extra: object) -> dict[str, object]:
    out: dict[str, object] = {"qid": qid, "answer_type": kind, "answer": answer, "prediction": prediction, **extra}
    if prediction is None:
        out["error"] = "the model server went away"
    return out


def test_summary_scores_by_hand_and_counts_failures_apart() -> None:
    records = [
        record("1", "CLOSED", "Yes", "Yes, it is.", question_type="PRES", organ="HEAD", latency_s=1.0),
        record("2", "CLOSED", "No", "Yes", question_type="PRES", organ="CHEST", latency_s=2.0),
        record("3", "OPEN", "Left lower lobe", "The left lung base", question_type="POS", organ="CHEST",
               latency_s=3.0),
        record("4", "OPEN", "brain", "Brain", question_type="ORGAN", organ="HEAD", latency_s=4.0),
        record("5", "CLOSED", "Yes", None, question_type="PRES", organ="HEAD"),
    ]  # fmt: skip
    s = vqa.summarize(records, seed=0, resamples=200)
    assert (s["n"], s["scored"], s["failures"], s["closed_n"], s["open_n"]) == (5, 4, 1, 2, 2)
    assert s["closed_accuracy"] == 0.5
    assert s["open_token_f1"] == pytest.approx((1 / 3 + 1.0) / 2)
    assert s["open_recall"] == pytest.approx((1 / 3 + 1.0) / 2)
    assert s["exact_match"] == pytest.approx(1 / 4)  # only "Brain" == "brain"
    assert s["latency_p50_s"] == 2.5 and s["latency_p95_s"] == pytest.approx(3.85)
    pres = s["by_question_type"]["PRES"]
    assert (pres["n"], pres["failures"], pres["closed_accuracy"]) == (3, 1, 0.5)
    assert s["by_organ"]["HEAD"]["exact_match"] == 0.5
    assert s["by_modality"] == {}
    low, high = s["closed_accuracy_ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    assert s == vqa.summarize(records, seed=0, resamples=200)  # reproducible
    table = vqa.table(s)
    assert "| all | 5 | 1 | 2 | 50.0 [" in table and "type: PRES" in table and "organ: CHEST" in table


def test_a_run_with_only_failures_has_no_scores_not_zero() -> None:
    s = vqa.summarize([record("1", "OPEN", "brain", None)])
    assert s["failures"] == 1 and s["open_token_f1"] is None and s["latency_p50_s"] is None
    assert "latency: no answers" in vqa.table(s)
