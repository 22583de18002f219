"""The "Prior reports" panel: the open study's patient's priors after an import, 'none found' before."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

import retrieval
from assistant import import_priors, load_settings, load_study
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
