"""Find, open, priors and send-back against a real Orthanc (DICOMweb), through the library."""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
from pathlib import Path

import pydicom
import pytest

from assistant.imaging.deid import Pseudonymizer
from assistant.pacs import (
    PacsBudgetError,
    PacsCancelledError,
    PacsClient,
    PacsError,
    StudyQuery,
    find_priors,
    open_study,
    send_report,
)
from assistant.pacs.client import RetrievalGuard
from assistant.report.draft import StudyRef
from assistant.report.export import sr_text
from assistant.report.priors import InMemoryPriors
from assistant.report.service import DraftingService
from assistant.report.store import LOCAL_OWNER, ReportStore
from tests.assistant.pacs.conftest import (
    CT_ACCESSION,
    PATIENT_ID,
    PATIENT_NAME,
    PRIOR_ACCESSION,
    PRIOR_FINDING,
    Seeded,
)


def _client(seeded: Seeded, tmp_path: Path) -> PacsClient:
    return PacsClient(seeded.settings(tmp_path).pacs_endpoint())


def test_find_by_patient_id_lists_the_patients_studies_newest_first(seeded_pacs: Seeded, tmp_path: Path) -> None:
    found = _client(seeded_pacs, tmp_path).find_studies(StudyQuery(patient_id=PATIENT_ID))
    assert [m.accession_number for m in found] == [CT_ACCESSION, PRIOR_ACCESSION]
    assert found[0].study_instance_uid == seeded_pacs.ct_study
    assert found[0].patient_name == PATIENT_NAME.replace("^", " ")
    assert found[0].study_date == dt.date(2020, 1, 15)
    assert "CT" in found[0].modalities


def test_find_by_accession_number_date_range_name_and_modality(seeded_pacs: Seeded, tmp_path: Path) -> None:
    client = _client(seeded_pacs, tmp_path)
    by_accession = client.find_studies(StudyQuery(accession_number=seeded_pacs.mr_accession))
    assert [m.study_instance_uid for m in by_accession] == [seeded_pacs.mr_study]
    in_2019 = client.find_studies(StudyQuery(date_from=dt.date(2019, 1, 1), date_to=dt.date(2019, 12, 31)))
    assert [m.study_instance_uid for m in in_2019] == [seeded_pacs.prior_study]
    assert client.find_studies(StudyQuery(patient_id="NO-SUCH-PATIENT")) == []
    by_name = client.find_studies(StudyQuery(patient_name="Testpatient*"))
    assert {m.study_instance_uid for m in by_name} == {seeded_pacs.ct_study, seeded_pacs.prior_study}
    assert len(client.find_studies(StudyQuery(patient_name=PATIENT_NAME))) == 2  # "Testpatient^Carla"
    by_modality = client.find_studies(StudyQuery(modality="MR"))
    assert [m.study_instance_uid for m in by_modality] == [seeded_pacs.mr_study]


def test_find_never_logs_the_identifiers(seeded_pacs: Seeded, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        found = _client(seeded_pacs, tmp_path).find_studies(StudyQuery(patient_id=PATIENT_ID))
    assert found
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PATIENT_ID not in text and "Testpatient" not in text and CT_ACCESSION not in text


def test_open_a_series_ingests_it_deidentified(seeded_pacs: Seeded, tmp_path: Path) -> None:
    settings = seeded_pacs.settings(tmp_path)
    seen: list[float] = []
    opened = open_study(
        PacsClient(settings.pacs_endpoint()), seeded_pacs.ct_study, settings, progress=lambda p: seen.append(p.fraction)
    )
    study = opened.result.study
    assert study is not None and opened.result.ok
    assert [s.frame_count for s in study.series] == [6]
    keys = Pseudonymizer.from_data_dir(tmp_path)
    assert study.study_instance_uid == keys.uid(seeded_pacs.ct_study) != seeded_pacs.ct_study
    assert study.patient_key == keys.patient_key(PATIENT_ID)
    assert seen and seen[-1] == pytest.approx(1.0, abs=0.05)
    # Nothing identifying in what ingest kept, and the file names are positions, not UIDs.
    blob = repr(study.summary()) + repr([s.header for s in study.series]) + repr(opened.result.files)
    for identifier in (PATIENT_ID, "Testpatient", CT_ACCESSION, seeded_pacs.ct_study, seeded_pacs.ct_sops[0]):
        assert identifier not in blob


def test_a_study_over_the_byte_budget_is_refused_before_any_pixel_is_fetched(
    seeded_pacs: Seeded, tmp_path: Path
) -> None:
    settings = seeded_pacs.settings(tmp_path, ingest_max_upload_bytes=1 << 20)  # six 512 KiB slices: 3 MiB
    with pytest.raises(PacsBudgetError, match="ingest_max_upload_bytes"):
        open_study(PacsClient(settings.pacs_endpoint()), seeded_pacs.ct_study, settings)


def test_the_byte_cap_stops_a_stream_that_outgrows_its_metadata(seeded_pacs: Seeded, tmp_path: Path) -> None:
    client = _client(seeded_pacs, tmp_path)
    guard = RetrievalGuard(max_bytes=600_000)  # one slice fits, the second does not
    with pytest.raises(PacsBudgetError, match="nothing was imported"):
        list(client.iter_series(seeded_pacs.ct_study, seeded_pacs.ct_series, guard))
    assert 600_000 < guard.received < 3_000_000  # stopped at the first chunk past the cap


def test_a_cancelled_retrieval_imports_nothing(seeded_pacs: Seeded, tmp_path: Path) -> None:
    settings = seeded_pacs.settings(tmp_path)
    cancel = threading.Event()
    with pytest.raises(PacsCancelledError):
        open_study(
            PacsClient(settings.pacs_endpoint()), seeded_pacs.ct_study, settings, cancel=cancel,
            progress=lambda p: cancel.set() if p.bytes_received else None,
        )  # fmt: skip


def test_priors_list_earlier_studies_and_import_their_sr_deidentified(seeded_pacs: Seeded, tmp_path: Path) -> None:
    client = _client(seeded_pacs, tmp_path)
    keys = Pseudonymizer.from_data_dir(tmp_path)
    current = client.study(seeded_pacs.ct_study)
    priors = find_priors(client, current, keys)
    assert [m.study_instance_uid for m in priors.studies] == [seeded_pacs.prior_study]
    assert len(priors.reports) == 1
    report = priors.reports[0]
    assert report.patient_key == keys.patient_key(PATIENT_ID)
    assert report.study_date == dt.date(2019, 1, 10) + keys.date_shift(report.patient_key)
    assert PRIOR_FINDING in report.sections["findings"]
    assert "Testpatient" not in repr(report) and "2019-01-10" not in repr(report)
    assert report.sections["impression"] == "Small pulmonary nodule."


def test_a_draft_is_sent_back_as_an_sr_filed_in_its_real_study(seeded_pacs: Seeded, tmp_path: Path) -> None:
    settings = seeded_pacs.settings(tmp_path)
    client = PacsClient(settings.pacs_endpoint())
    keys = Pseudonymizer.from_data_dir(tmp_path)
    opened = open_study(client, seeded_pacs.ct_study, settings)
    priors = find_priors(client, opened.match, keys)
    with ReportStore(tmp_path / "r.sqlite3", owner=LOCAL_OWNER) as store:
        service = DraftingService(store, priors=InMemoryPriors(priors.reports))
        reply = service.create("ct_chest", opened.study_ref)
        report_id = reply.report.report_id
        assert reply.report.prior is not None  # the PACS prior became the comparison
        service.handle(report_id, "There is a 7 mm nodule in the right upper lobe.")
        shown: list[str] = []
        sent = send_report(client, store, report_id, keys, confirm=lambda m, text: shown.append(text) or True)
        draft_text = shown[0]
    stored = seeded_pacs.server.get(f"/instances/{_orthanc_id(seeded_pacs, sent.sop_instance_uid)}/file")
    sr = pydicom.dcmread(io.BytesIO(stored.content))
    assert sr.StudyInstanceUID == seeded_pacs.ct_study
    assert sr.PatientID == PATIENT_ID and str(sr.PatientName) == PATIENT_NAME
    assert sr.AccessionNumber == CT_ACCESSION and sr.StudyDate == "20200115"
    assert "PatientIdentityRemoved" not in sr
    refs = {
        sop.ReferencedSOPInstanceUID
        for item in sr.CurrentRequestedProcedureEvidenceSequence
        for series in item.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert refs == set(seeded_pacs.ct_sops)
    assert all(i.StudyInstanceUID == seeded_pacs.ct_study for i in sr.CurrentRequestedProcedureEvidenceSequence)
    assert sr_text(sr) == draft_text
    assert "7 mm nodule in the right upper lobe" in sr_text(sr)
    assert sr.ContentDate == dt.date.today().strftime("%Y%m%d")  # the real day, no longer the shifted one


def test_a_send_that_is_not_confirmed_stores_nothing(seeded_pacs: Seeded, tmp_path: Path) -> None:
    settings = seeded_pacs.settings(tmp_path)
    client = PacsClient(settings.pacs_endpoint())
    opened = open_study(client, seeded_pacs.ct_study, settings)
    before = len(seeded_pacs.server.get("/instances").json())
    with ReportStore(tmp_path / "r.sqlite3", owner=LOCAL_OWNER) as store:
        report_id = DraftingService(store).create("ct_chest", opened.study_ref).report.report_id
        with pytest.raises(PacsError, match="not confirmed"):
            send_report(client, store, report_id, Pseudonymizer.from_data_dir(tmp_path), confirm=lambda m, t: False)
    assert len(seeded_pacs.server.get("/instances").json()) == before


def test_a_draft_of_another_study_is_not_sent_to_a_study_given_by_hand(seeded_pacs: Seeded, tmp_path: Path) -> None:
    client = _client(seeded_pacs, tmp_path)
    with ReportStore(tmp_path / "r.sqlite3", owner=LOCAL_OWNER) as store:
        ref = StudyRef(study_instance_uid="2.25.1234", patient_key="P-0", modality="CT")
        report_id = DraftingService(store).create("ct_chest", ref).report.report_id
        with pytest.raises(PacsError, match="not the one the draft reports"):
            send_report(client, store, report_id, Pseudonymizer.from_data_dir(tmp_path), study_uid=seeded_pacs.mr_study)


def _orthanc_id(seeded: Seeded, sop_uid: str) -> str:
    """Orthanc's own id of the instance with this SOP Instance UID (its REST API, not DICOMweb)."""
    import httpx

    found = httpx.post(
        f"{seeded.server.base_url}/tools/lookup", content=sop_uid, auth=(seeded.server.user, seeded.server.password),
        trust_env=False,
    ).json()  # fmt: skip
    return str(next(f["ID"] for f in found if f["Type"] == "Instance"))
