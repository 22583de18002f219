"""Export: DICOM SR (highdicom) read back with pydicom matches the draft; Markdown and JSON carry the marks."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from assistant.imaging.ingest import load_study
from assistant.report.draft import StudyRef, render_text
from assistant.report.export import ExportError, export_report, sr_text
from assistant.report.service import DraftingService
from assistant.report.store import ReportStore
from assistant.settings import load_settings

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


@pytest.fixture()
def chest_study(shared_dir: Path, tmp_path: Path) -> StudyRef:
    """A real CR chest radiograph, ingested (de-identified) by the product's own code."""
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    result = load_study([shared_dir / "data" / "dicom" / "pydicom_data"], settings)
    study = next(s for s in result.studies if s.series[0].body_part_examined == "CHEST")
    return StudyRef.from_study(study)


def _drafted(store: ReportStore, study: StudyRef | None) -> tuple[DraftingService, str]:
    service = DraftingService(store)
    report_id = service.create("cxr" if study is None else None, study).report.report_id
    service.handle(report_id, "Cough and fever. Patchy right lower lobe opacity, small right pleural effusion.")
    return service, report_id


def test_sr_round_trip_text_and_de_identified_references(
    store: ReportStore, chest_study: StudyRef, tmp_path: Path
) -> None:
    _, report_id = _drafted(store, chest_study)
    version = store.current(report_id)
    path = export_report(version.report, "sr", tmp_path / "report.dcm", version.number)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == COMPREHENSIVE_SR
    assert sr_text(ds) == render_text(version.report)
    texts = [item.TextValue for c in ds.ContentSequence for item in c.ContentSequence]
    for _, statement in version.report.statements():
        assert any(statement.text in t for t in texts)
    assert ds.StudyInstanceUID == chest_study.study_instance_uid and ds.StudyInstanceUID.startswith("2.25.")
    assert ds.PatientID == chest_study.patient_key and str(ds.PatientName) == ""
    assert ds.PatientIdentityRemoved == "NO"  # the dictated sentence went in as typed: never scrubbed
    ref = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == chest_study.instances[0].sop_instance_uid
    assert (ds.CompletionFlag, ds.VerificationFlag) == ("PARTIAL", "UNVERIFIED")  # unconfirmed defaults remain


def test_an_accepted_draft_exports_as_complete(store: ReportStore, tmp_path: Path) -> None:
    service, report_id = _drafted(store, None)
    reply = service.handle(report_id, "accept all")
    path = export_report(reply.report, "sr", tmp_path / "r.dcm", reply.version)
    ds = pydicom.dcmread(path)
    assert ds.CompletionFlag == "COMPLETE" and sr_text(ds) == render_text(reply.report)
    assert "[unconfirmed]" not in sr_text(ds)


def test_markdown_and_json_keep_origins_marks_and_citations(store: ReportStore, tmp_path: Path) -> None:
    service = DraftingService(store)
    report_id = service.create("ct_chest").report.report_id
    service.handle(report_id, "Never smoker. 7 mm solid nodule RUL.")
    report = store.load(report_id)
    md = export_report(report, "md", tmp_path / "r.md", 3).read_text(encoding="utf-8")
    assert md.startswith("# CT CHEST") and "not for clinical use" in md
    assert "**Lungs and airways:** 7 mm solid nodule RUL." in md and "**[unconfirmed]**" in md
    assert "fleischner-2017/solid-single" in md
    data = json.loads(export_report(report, "json", tmp_path / "r.json", 3).read_text(encoding="utf-8"))
    assert data["report"]["report_id"] == report_id and data["text"] == render_text(report)
    recs = [p for p in data["report"]["parts"] if p["slot"] == "recommendations"][0]["statements"]
    assert recs[0]["origin"] == "calculator" and recs[0]["calculation"]["calculator"] == "fleischner"
    assert set(data["unconfirmed"]) == {s.id for s in report.unconfirmed}


def test_an_unknown_format_is_refused(store: ReportStore, tmp_path: Path) -> None:
    report = store.load(DraftingService(store).create("cxr").report.report_id)
    with pytest.raises(ExportError, match="format='pdf'"):
        export_report(report, "pdf", tmp_path / "x.pdf")
