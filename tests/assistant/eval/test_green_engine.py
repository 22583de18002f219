"""GREEN through a real vLLM server: the tiny random-weight Llama cannot judge reports, so the whole path runs
(instruction, ``/v1/completions``, reading the answer) and every unreadable answer is counted as a GREEN failure."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from assistant.cli import eval as cli_eval
from assistant.settings import load_settings

pytestmark = pytest.mark.engine


def test_eval_report_with_green_on_a_real_vllm_server_counts_unreadable_answers(
    tiny_engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "reports.jsonl"
    rows = [
        {"id": "1", "reference": "Small left pleural effusion.", "generated": "Small left pleural effusion."},
        {"id": "2", "reference": "Right pneumothorax.", "generated": "The lungs are clear."},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "green"
    parser = argparse.ArgumentParser(prog="radassist")
    cli_eval.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([
        "eval", "report", "--data", str(data), "--out", str(out), "--json", "--resamples", "50",
        "--green-url", tiny_engine, "--green-max-tokens", "16",
    ])  # fmt: skip
    code = args.func(args, load_settings(env={}, data_dir=tmp_path / "d", embedding_model="hashing-128"))

    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # GREEN failures fail the run
    assert (summary["n"], summary["failures"]) == (2, 0)
    assert (summary["green"], summary["green_scored"], summary["green_failures"]) == (None, 0, 2)
    assert summary["green_model"]
    answers = [json.loads(line) for line in (out / "green.jsonl").read_text().splitlines()]
    assert [a["id"] for a in answers] == ["1", "2"]
    for answer in answers:  # the server answered (printable nonsense), and the answer was refused, not scored 0
        assert answer["answer"].strip() and answer["green"] is None
        assert answer["error"].startswith("unreadable GREEN answer")
