"""The "Prior reports" panel: the open study's patient's priors after an import, 'none found' before."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

import retrieval
from assistant import AuditLog, ConfigurationError, import_priors, load_settings, load_study
from ui import priors_panel


def test_panel_shows_this_patients_priors_only(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", embedding_model="hashing-128")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = "MRN30000001"
    ds.save_as(tmp_path / "ct.dcm")
    study = load_study([tmp_path / "ct.dcm"], settings).study
    assert study is not None
    assert priors_panel.panel_text(settings, None) == ""
    assert priors_panel.NONE_FOUND in priors_panel.panel_text(settings, study)  # no index yet
    rows = [
        {"patient_id": "MRN30000001", "date": "2003-01-19", "modality": "CT", "impression": "Stable <b>nodule</b>."},
        {"patient_id": "MRN30000002", "date": "2003-06-01", "modality": "MR", "impression": "Another patient."},
    ]
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_priors(tmp_path / "p.csv", settings, retrieval.HashingEmbedder(128))
    text = priors_panel.panel_text(settings, study)  # the same session: the new import is picked up
    assert "Prior reports (1)" in text and "**CT**, 1 year before this study" in text
    assert "&lt;b&gt;nodule&lt;/b&gt;" in text and "Another patient" not in text


class _Tab:
    """What the import reads of a tab's session: its study."""

    def __init__(self, study: object) -> None:
        self.study = study


class _App:
    """What the import box reads of the workspace: the settings and whether the app is in single-user mode."""

    def __init__(self, settings: object, single_user: bool) -> None:
        self.settings = settings
        self.single_user = single_user


def _upload(folder: Path, rows: list[dict[str, str]], name: str = "priors.csv") -> Path:
    """A file as Gradio's upload cache holds one: in a folder of its own."""
    folder.mkdir(parents=True)
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_an_administrator_imports_priors_in_the_web_app_and_no_raw_identifier_is_left(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, data_dir=tmp_path / "data", embedding_model="hashing-128", admin_users="chief, alice"
    )  # fmt: skip
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = "MRN48213377"
    ds.save_as(tmp_path / "ct.dcm")
    study = load_study([tmp_path / "ct.dcm"], settings).study
    box = priors_panel.PriorsImport(_App(settings, single_user=False))
    rows = [{
        "mrn": "MRN48213377", "accession": "ACC99102", "date": "2003-01-19", "modality": "CT",
        "impression": "8 mm nodule in the right upper lobe; Dr Hilda Vantongeren compared with 12/01/2002.",
    }]  # fmt: skip
    upload = _upload(tmp_path / "gradio" / "abc123", rows)

    line, panel = box.run(str(upload), "user:alice", _Tab(study))

    assert line.startswith("Imported 1 report(s) of 1 patient(s)"), line
    assert "Prior reports (1)" in panel["value"] and "8 mm nodule" in panel["value"]
    assert not upload.exists() and not upload.parent.exists()  # the raw file is gone from the upload cache
    stored = _bytes_under(tmp_path / "data")
    for raw in (b"MRN48213377", b"ACC99102", b"Vantongeren", b"2003-01-19", b"12/01/2002"):
        assert raw not in stored, raw
    audit = AuditLog(settings.database)
    (row,) = [r for r in audit.recent() if r.mode == "priors"]
    assert row.outcome == "ok" and "reports=1" in row.chunk_ids and "patients=1" in row.chunk_ids
    assert not any("MRN" in entry for entry in row.chunk_ids)

    again, _ = box.run(str(_upload(tmp_path / "gradio" / "def456", rows)), "user:chief", _Tab(study))
    assert "0 new section(s) (all of them were already imported)" in again  # idempotent


def test_the_import_is_refused_to_everyone_but_administrators_and_the_file_is_deleted(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", embedding_model="hashing-128", admin_users="chief")
    rows = [{"patient_id": "MRN48213378", "date": "2003-01-19", "impression": "Clear lungs."}]
    shared = priors_panel.PriorsImport(_App(settings, single_user=False))
    for number, owner in enumerate(("user:alice", "browser:0123abcd", "", "user:chiefx")):
        upload = _upload(tmp_path / "gradio" / f"upload{number}", rows)
        line, panel = shared.run(str(upload), owner, _Tab(None))
        assert line == priors_panel.NOT_ALLOWED and panel is not None
        assert not upload.exists()
    assert b"MRN48213378" not in _bytes_under(tmp_path / "data")
    assert not [r for r in AuditLog(settings.database).recent() if r.mode == "priors"]
    # Single-user mode (loopback, no log-in): the machine's one user may, as at the command line.
    local = priors_panel.PriorsImport(_App(settings, single_user=True))
    assert local.allowed("") and not local.allowed("browser:0123abcd")


def test_a_bad_prior_file_gets_a_specific_error_in_the_web_app_and_is_deleted(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", embedding_model="hashing-128")
    box = priors_panel.PriorsImport(_App(settings, single_user=True))
    folder = tmp_path / "gradio" / "x"
    folder.mkdir(parents=True)
    no_id = folder / "priors.csv"
    no_id.write_text("date,impression\n2003-01-19,Clear lungs.\n", encoding="utf-8")
    line, _ = box.run(str(no_id), "", _Tab(None))
    assert line.startswith("Nothing was imported from priors.csv:") and "patient" in line.lower(), line
    assert not no_id.exists()
    (row,) = [r for r in AuditLog(settings.database).recent() if r.mode == "priors"]
    assert row.outcome != "ok"
    wrong = folder.parent / "y" / "scan.dcm"
    wrong.parent.mkdir()
    wrong.write_bytes(b"DICM")
    line, _ = box.run(str(wrong), "", _Tab(None))
    assert "is not a .csv, .json or .jsonl file" in line and not wrong.exists()


def test_admin_users_must_be_user_names() -> None:
    with pytest.raises(ConfigurationError, match="admin_users: 'Alice Smith' is not a user name"):
        load_settings(env={"RADASSIST_ADMIN_USERS": "chief,Alice Smith"})
