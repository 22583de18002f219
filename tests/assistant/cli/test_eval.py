"""``radassist eval vqa|report`` end to end through the real answering path, the model served over a real socket by
a fixed-answer OpenAI-protocol stub (the transport boundary), on real VQA-RAD questions and images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import eval as cli_eval
from assistant.errors import ConfigurationError
from assistant.settings import Settings, load_settings
from tests.support.openai_stub import OpenAIStub

IMAGE = "synpic54610.jpg"


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_eval.register(sub)
    args = parser.parse_args(list(argv))
    return int(args.func(args, settings))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env={}, data_dir=tmp_path / "data", embedding_model="hashing-128")


@pytest.fixture
def questions(shared_dir: Path, tmp_path: Path) -> Path:
    """Three real questions on one VQA-RAD image, and one whose image does not exist."""
    train = json.loads((shared_dir / "data" / "vqa_rad" / "trainset.json").read_text(encoding="utf-8"))
    picked: list[dict[str, Any]] = [q for q in train if q["image_name"] == IMAGE][:3]
    picked.append({**picked[0], "qid": "missing-image", "image_name": "not-there.jpg"})
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(picked), encoding="utf-8")
    return path


def test_eval_vqa_json_reports_metrics_failures_and_resumes(
    settings: Settings, questions: Path, shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, out = shared_dir / "data" / "vqa_rad" / "images", tmp_path / "out"
    argv = ["eval", "vqa", "--data", str(questions), "--images", str(images), "--out", str(out), "--json"]
    with OpenAIStub("Yes, there is.") as llm:
        status = run(settings, *argv, "--llm-url", llm.url, "--concurrency", "2")
        summary = json.loads(capsys.readouterr().out)
        assert status == 1  # a failure is reported in the exit status as well
        assert {"n", "closed_accuracy", "open_token_f1", "open_recall", "failures"} <= set(summary)
        assert (summary["n"], summary["failures"], summary["scored"]) == (4, 1, 3)
        expected = json.loads(questions.read_text())[:3]
        closed_yes = [q for q in expected if q["answer_type"].strip() == "CLOSED"]
        assert summary["closed_n"] == len(closed_yes)
        right = sum(q["answer"].lower() == "yes" for q in closed_yes)
        assert summary["closed_accuracy"] == pytest.approx(right / len(closed_yes))
        # Auto mode, as `ask --image`: "What type of imaging is this?" is answered from the header (facts), the
        # others by the model, which is text-only by default and says so.
        assert summary["modes"] == {"chat": 2, "facts": 1}
        assert summary["image_input"] == {"none": 2}
        # The question reached the model through the product's study Q&A path (system prompt, image details).
        asked = llm.requests[0]["messages"]
        assert asked[0]["role"] == "system" and "Image 1:" in asked[-1]["content"]
        lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert [line["qid"] for line in lines] == [str(q["qid"]) for q in expected] + ["missing-image"]
        assert {"qid", "question", "answer", "answer_type", "prediction"} <= set(lines[0])
        assert [line.get("mode") for line in lines] == ["chat", "chat", "facts", None]
        assert "image not found" in lines[-1]["error"] and lines[-1]["prediction"] is None
        assert (out / "metrics.json").is_file() and "| all | 4 | 1 |" in (out / "metrics.md").read_text()

        # --resume: the three answers are kept; only the failed question is tried again.
        asked_before = len(llm.requests)
        run(settings, *argv, "--llm-url", llm.url, "--resume")
        assert len(llm.requests) == asked_before
        assert json.loads(capsys.readouterr().out)["failures"] == 1
        with pytest.raises(ConfigurationError, match="--resume"):
            run(settings, *argv, "--llm-url", llm.url)


def test_eval_report_scores_given_reports_without_a_model(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "reports.jsonl"
    rows = [
        {"id": "1", "findings": "Small left pleural effusion.", "impression": "Effusion.",
         "generated": "Small left pleural effusion. Effusion."},
        {"id": "2", "reference": "Cardiomegaly. No pneumothorax.", "generated": "Lungs are clear."},
    ]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "rep"
    assert run(settings, "eval", "report", "--data", str(data), "--out", str(out), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["n"], summary["failures"]) == (2, 0)
    assert {"bleu4", "rougeL", "chexpert_micro_f1", "chexpert_macro_f1", "chexpert_per_finding"} <= set(summary)
    assert summary["chexpert_per_finding"]["Pleural Effusion"]["tp"] == 1
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_eval_report_needs_images_to_generate(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "reports.jsonl"
    data.write_text(json.dumps({"id": "1", "reference": "Normal.", "image": "1.png"}) + "\n")
    with pytest.raises(ConfigurationError, match="--images"):
        run(settings, "eval", "report", "--data", str(data))
