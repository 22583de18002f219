"""Once, end to end: ``radassist eval vqa`` on 20 VQA-RAD training questions through the embedded vLLM engine
and the real default model (SmolLM2-135M, text-only: the scores are low; this checks the path, not the model)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine


def test_eval_vqa_on_the_default_model_answers_every_question(
    radassist_bin: Path, session_data_dir: Path, default_model_dir: Path, shared_dir: Path, cli_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    env = dict(cli_env, RADASSIST_DATA_DIR=str(session_data_dir))
    vqa_rad = shared_dir / "data" / "vqa_rad"
    out = tmp_path / "vqa"
    argv = [
        str(radassist_bin), "eval", "vqa", "--data", str(vqa_rad / "trainset.json"), "--images",
        str(vqa_rad / "images"), "--limit", "20", "--concurrency", "4", "--max-tokens", "24", "--out", str(out),
        "--json",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert (summary["n"], summary["failures"]) == (20, 0)
    assert summary["closed_n"] + summary["open_n"] == 20
    # auto mode, as `ask --image`: header questions are answered by code ("study metadata"), the rest by the model
    assert sum(summary["modes"].values()) == sum(summary["models"].values()) == 20
    assert summary["models"]["SmolLM2-135M-Instruct"] == summary["modes"]["chat"] > 0
    assert set(summary["image_input"]) == {"none"}  # the default model is text-only: recorded, not hidden
    assert 0.0 <= summary["closed_accuracy"] <= 1.0 and 0.0 <= summary["open_token_f1"] <= 1.0
    assert summary["latency_p50_s"] > 0
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 20 and all(line["prediction"].strip() for line in lines)
    assert "vqa [" in done.stderr  # the progress bar
