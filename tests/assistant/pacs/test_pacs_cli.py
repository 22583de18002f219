"""The PACS from the command line against a real Orthanc: ``pacs find``, ``ingest --pacs``, ``report new --pacs``
then ``report send``, and the errors at the edge. (``ask --pacs`` with a tiny LLaVA on vLLM:
tests/assistant/vision/test_cli_ask_pacs.py, beside the LLaVA engine it shares.)"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest

from assistant.cli.main import main
from tests.assistant.pacs.conftest import CT_ACCESSION, PATIENT_ID, PRIOR_ACCESSION, Seeded


@pytest.fixture
def pacs_env(seeded_pacs: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RADASSIST_PACS_* pointing at the seeded Orthanc; returns the data dir."""
    for name in ("RADASSIST_CONFIG", "RADASSIST_LLM_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RADASSIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RADASSIST_PACS_URL", seeded_pacs.server.dicomweb_url)
    monkeypatch.setenv("RADASSIST_PACS_USER", seeded_pacs.server.user)
    monkeypatch.setenv("RADASSIST_PACS_PASSWORD", seeded_pacs.server.password)
    monkeypatch.setenv("RADASSIST_EMBEDDING_MODEL", "hashing-256")  # offline and instant, for the prior store
    return tmp_path / "data"


def test_pacs_find_json_lists_the_worklist(pacs_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "find", "--patient-id", PATIENT_ID, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["accession_number"] for r in rows] == [CT_ACCESSION, PRIOR_ACCESSION]
    assert (
        rows[0]["patient_id"] == PATIENT_ID and rows[0]["study_date"] == "2020-01-15" and rows[0]["pacs"] == "default"
    )
    assert main(["pacs", "find", "--date", "2019-01-10", "--json"]) == 0
    assert [json.loads(x)["accession_number"] for x in capsys.readouterr().out.splitlines()] == [PRIOR_ACCESSION]


def test_pacs_find_without_a_filter_and_with_a_wrong_password_fail_clearly(
    pacs_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["pacs", "find"]) == 2
    assert "give at least one of --patient-id" in capsys.readouterr().err
    monkeypatch.setenv("RADASSIST_PACS_PASSWORD", "not-the-password")
    assert main(["pacs", "find", "--patient-id", PATIENT_ID]) == 2
    err = capsys.readouterr().err
    assert "refused the credentials (HTTP 401)" in err and "not-the-password" not in err


def test_ingest_pacs_retrieves_and_deidentifies_the_study(
    pacs_env: Path, seeded_pacs: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", "--pacs", seeded_pacs.ct_study, "--json"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 6 and all(r["ok"] for r in rows)
    assert rows[0]["summary"]["modality"] == "CT" and rows[0]["summary"]["frame_count"] == 6
    for identifier in (PATIENT_ID, "Testpatient", CT_ACCESSION, seeded_pacs.ct_study):
        assert identifier not in out


def test_report_new_from_the_pacs_then_send_prints_the_stored_sr_uid(
    pacs_env: Path, seeded_pacs: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "new", "--pacs", seeded_pacs.ct_study, "--template", "ct_chest"]) == 0
    captured = capsys.readouterr()
    report_id = captured.out.strip()
    assert "1 report(s) imported as priors" in captured.err
    # ... and kept in the prior-report store, where later answers and drafts of this patient find them.
    assert main(["index", "stats", "--corpus", "reports", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["reports"] is not None and stats["reports"]["chunks"] >= 1, stats
    assert main(["report", "dictate", report_id, "Stable 6 mm nodule in the right upper lobe.", "--no-llm"]) in (0, 1)
    capsys.readouterr()
    assert main(["report", "send", report_id]) == 2  # no terminal to confirm at, no --yes: refused
    assert "confirm the send" in capsys.readouterr().err
    assert main(["report", "send", report_id, "--yes"]) == 0
    captured = capsys.readouterr()
    sop_uid = captured.out.strip()
    assert "Testpatient" in captured.err  # the confirmation names the patient, to the user at the terminal
    found = seeded_pacs.server.get(f"/dicom-web/studies/{seeded_pacs.ct_study}/instances?SOPInstanceUID={sop_uid}")
    assert found.status_code == 200 and len(found.json()) == 1
    series_uid = found.json()[0]["0020000E"]["Value"][0]
    wado = seeded_pacs.server.get(f"/dicom-web/studies/{seeded_pacs.ct_study}/series/{series_uid}/instances/{sop_uid}")
    body = wado.content
    start = body.index(b"\r\n\r\n") + 4  # one part of a multipart/related answer (PS3.18 8.6.1.2)
    end = body.rindex(b"\r\n--")
    sr = pydicom.dcmread(io.BytesIO(body[start:end]))
    assert sr.Modality == "SR" and sr.PatientID == PATIENT_ID and sr.StudyInstanceUID == seeded_pacs.ct_study
    text = " ".join(
        str(i.TextValue) for c in sr.ContentSequence for i in c.get("ContentSequence", []) if "TextValue" in i
    )
    assert "6 mm nodule in the right upper lobe" in text
