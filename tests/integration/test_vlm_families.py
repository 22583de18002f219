"""End to end: ``radassist ask --image`` on a real CT DICOM, the embedded vLLM engine serving a tiny Gemma 3 (the
MedGemma architecture) that the ``auto`` profile recognises from its folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TINY_ENGINE_LIMITS
from tests.support.paths import SHARED

pytestmark = pytest.mark.engine

HEAD_CT = SHARED / "data" / "dicom" / "pydicom_data" / "693_UNCI.dcm"


@pytest.fixture(scope="module")
def gemma3_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.tiny_gemma3 import build_tiny_gemma3

    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


def test_ask_with_a_ct_image_reaches_an_embedded_gemma3_as_pixels(
    gemma3_folder: Path, radassist_bin: Path, cli_env: dict[str, str]
) -> None:
    env = dict(
        cli_env,
        RADASSIST_LLM_MODEL=str(gemma3_folder),
        RADASSIST_ENGINE_MAX_MODEL_LEN=str(TINY_ENGINE_LIMITS["max_model_len"]),
        RADASSIST_ENGINE_KV_CACHE_BYTES=str(TINY_ENGINE_LIMITS["kv_cache_bytes"]),
        RADASSIST_ENGINE_START_TIMEOUT_S="900",
    )
    out = subprocess.run(
        [str(radassist_bin), "ask", "--max-tokens", "6", "--image", str(HEAD_CT), "--json", "Any haemorrhage?"],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["image_input"] == "pixels"  # auto picked the medgemma profile from the folder's model type
    assert isinstance(result["answer"], str) and result["answer"].strip()
