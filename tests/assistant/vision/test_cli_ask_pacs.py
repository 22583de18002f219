"""``radassist ask --pacs STUDY_UID``: a study opened from a real Orthanc reaches a tiny LLaVA on vLLM as image
embeddings, de-identified on the way (beside ``test_cli_ask_image.py``, sharing its LLaVA engine)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.assistant.pacs.conftest import CT_ACCESSION, PATIENT_ID, Seeded, seeded_pacs  # noqa: F401 - fixture

pytestmark = pytest.mark.engine


def test_a_study_opened_from_the_pacs_reaches_a_llava_server_as_embeddings(
    seeded_pacs: Seeded,  # noqa: F811
    llava_engine: str,
    tiny_llava_dir: Path,
    radassist_bin: Path,
    cli_env: dict[str, str],
) -> None:
    env = dict(
        cli_env,
        RADASSIST_VISION_PROFILE="llava-embeds",
        RADASSIST_VISION_BUNDLE=str(tiny_llava_dir),
        RADASSIST_PACS_URL=seeded_pacs.server.dicomweb_url,
        RADASSIST_PACS_USER=seeded_pacs.server.user,
        RADASSIST_PACS_PASSWORD=seeded_pacs.server.password,
    )
    out = subprocess.run(
        [str(radassist_bin), "ask", "--max-tokens", "8", "--llm-url", llava_engine, "--pacs", seeded_pacs.ct_study,
         "--json", "Is there a nodule?"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["image_input"] == "embeds" and isinstance(result["answer"], str)
    for identifier in (PATIENT_ID, "Testpatient", CT_ACCESSION):
        assert identifier not in out.stdout + out.stderr
