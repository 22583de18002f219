"""Once, end to end: ``radassist ask`` starts the embedded vLLM engine on the real default model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e


def engine_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if marker in cmdline and "vllm" in cmdline:
            found.append(proc)
    return found


def test_ask_on_the_default_model_answers_and_leaves_no_engine_behind(
    radassist_bin: Path, session_data_dir: Path, default_model_dir: Path, cli_env: dict[str, str]
) -> None:
    env = dict(cli_env, RADASSIST_DATA_DIR=str(session_data_dir), RADASSIST_LLM_MAX_TOKENS="48")
    out = subprocess.run(
        [str(radassist_bin), "ask", "--json", "In one sentence: what is a pleural effusion?"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["model"] == "SmolLM2-135M-Instruct"
    assert len(result["answer"].split()) >= 3
    # The engine wrote its log under the data dir and is gone with the command.
    assert (session_data_dir / "logs" / "vllm-engine.log").stat().st_size > 0
    assert engine_processes(str(default_model_dir)) == []


def test_default_model_with_a_study_answers_its_metadata_exactly(
    radassist_bin: Path, session_data_dir: Path, default_model_dir: Path, cli_env: dict[str, str]
) -> None:
    """The 135M default model on real vLLM: study facts come from the header by code (never the model's guess),
    and the model answers the rest of a mixed question, separately."""
    from pydicom.data import get_testdata_file

    env = dict(cli_env, RADASSIST_DATA_DIR=str(session_data_dir), RADASSIST_LLM_MAX_TOKENS="24")
    out = subprocess.run(
        [str(radassist_bin), "ask", "--json", "--image", get_testdata_file("CT_small.dcm"), "--window", "lung",
         "Which modality is this and what is the slice thickness, and is there a pneumothorax?"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["model"] == "SmolLM2-135M-Instruct" and result["mode"] == "chat"
    facts, _, model_part = result["answer"].partition("**Model's answer** (not from the metadata):")
    assert "- Modality: CT" in facts and "- Slice thickness: 5 mm" in facts  # pydicom: Modality CT, 5.000000
    assert len(model_part.split()) >= 2  # the model's own answer to the rest, after the facts
    assert result["study_facts"] == {"modality": ["CT"], "slice_thickness": 5.0}
    assert result["citations"][-1]["source"] == "study metadata"
    assert result["sent"] == [{"series": 1, "frame": 1, "window": "lung C-600/W1500"}]
    assert result["priors"] == []  # none imported for this patient
    assert engine_processes(str(default_model_dir)) == []
