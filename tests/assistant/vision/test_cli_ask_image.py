"""``radassist ask --image``: the CLI attaches an ingested study and says whether the model saw it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import SHARED

pytestmark = pytest.mark.engine

CHEST_CR = SHARED / "data" / "dicom" / "pydicom_data" / "RG1_UNCI.dcm"


def ask(radassist_bin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(radassist_bin), "ask", "--max-tokens", "8", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_image_reaches_a_llava_server_as_embeddings(
    llava_engine: str, tiny_llava_dir: Path, radassist_bin: Path, cli_env: dict[str, str]
) -> None:
    env = dict(cli_env, RADASSIST_VISION_PROFILE="llava-embeds", RADASSIST_VISION_BUNDLE=str(tiny_llava_dir))
    out = ask(radassist_bin, env, "--llm-url", llava_engine, "--image", str(CHEST_CR), "--json", "Any effusion?")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["image_input"] == "embeds" and isinstance(result["answer"], str)


def test_a_text_only_model_is_told_and_says_it_did_not_see_the_image(
    tiny_engine: str, radassist_bin: Path, cli_env: dict[str, str]
) -> None:
    out = ask(radassist_bin, cli_env, "--llm-url", tiny_engine, "--image", str(CHEST_CR), "--json", "Any effusion?")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["image_input"] == "none"


def test_an_unreadable_image_is_named_and_nothing_is_sent(
    tiny_engine: str, radassist_bin: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    bogus = tmp_path / "scan.dcm"
    bogus.write_bytes(b"this is not a DICOM file at all")
    out = ask(radassist_bin, cli_env, "--llm-url", tiny_engine, "--image", str(bogus), "--json", "Any effusion?")
    assert out.returncode == 2
    assert "scan.dcm" in out.stderr and "none of the attached images could be read" in out.stderr
    assert out.stdout == ""
