"""The SR's own dates are on the patient's shifted time line; Patient Identity Removed says YES only when true."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from assistant.imaging.deid import Pseudonymizer
from assistant.report.draft import StudyRef
from assistant.report.export import export_report, sr_datetime
from assistant.report.service import DraftingService
from assistant.report.store import ReportStore

SALT = b"radassist-report-test-salt-0123"
KEY = "P-0123456789abcdef0123"
SHIFTED_STUDY_DATE = dt.date(2015, 6, 2)


def _study(patient_key: str | None = KEY, study_date: dt.date | None = SHIFTED_STUDY_DATE) -> StudyRef:
    return StudyRef("2.25.77", patient_key, "CR", "CHEST", study_date=study_date)


def _own_dates(ds: Dataset) -> set[str]:
    values = {str(ds.get(k, "")) for k in ("ContentDate", "InstanceCreationDate", "SeriesDate")}
    values |= {str(e.value)[:8] for e in ds.iterall() if e.VR == "DT" and e.value}
    return values - {""}


def test_sr_dates_get_the_patients_date_shift(store: ReportStore, tmp_path: Path) -> None:
    keys = Pseudonymizer(SALT)
    report = DraftingService(store).create("cxr", _study()).report
    before = dt.datetime.now()
    ds = pydicom.dcmread(export_report(report, "sr", tmp_path / "r.dcm", 1, keys=keys))
    after = dt.datetime.now()
    shift = keys.date_shift(KEY)  # ingest shifts the study's dates by exactly this
    allowed = {(before + shift).strftime("%Y%m%d"), (after + shift).strftime("%Y%m%d")}
    assert _own_dates(ds) <= allowed and _own_dates(ds)
    real = {before.strftime("%Y%m%d"), after.strftime("%Y%m%d")}
    assert not _own_dates(ds) & real  # the real export day never appears
    assert ds.ContentDate == ds.InstanceCreationDate and ds.ContentTime == ds.InstanceCreationTime
    assert ds.StudyDate == SHIFTED_STUDY_DATE.strftime("%Y%m%d")


def test_sr_datetime_same_patient_same_shift_as_ingest(store: ReportStore) -> None:
    keys = Pseudonymizer(SALT)
    now = dt.datetime(2024, 5, 17, 10, 30)
    report = DraftingService(store).create("cxr", _study()).report
    assert sr_datetime(report, keys, now) == now + keys.date_shift(KEY)


def test_without_keys_the_sr_takes_the_shifted_study_date_never_today(store: ReportStore, tmp_path: Path) -> None:
    report = DraftingService(store).create("cxr", _study()).report
    ds = pydicom.dcmread(export_report(report, "sr", tmp_path / "r.dcm", 1))
    assert ds.ContentDate == ds.InstanceCreationDate == SHIFTED_STUDY_DATE.strftime("%Y%m%d")


def test_without_keys_or_study_date_the_sr_is_not_dated_today(store: ReportStore, tmp_path: Path) -> None:
    report = DraftingService(store).create("cxr").report
    today = dt.date.today()
    ds = pydicom.dcmread(export_report(report, "sr", tmp_path / "r.dcm", 1))
    assert dt.datetime.strptime(ds.ContentDate, "%Y%m%d").date() < today
    assert ds.InstanceCreationDate == ds.ContentDate


def test_identity_removed_only_when_the_text_is_the_products_own(store: ReportStore, tmp_path: Path) -> None:
    service = DraftingService(store)
    report_id = service.create("cxr", _study()).report.report_id
    untouched = pydicom.dcmread(export_report(store.current(report_id).report, "sr", tmp_path / "a.dcm", 1))
    assert untouched.PatientIdentityRemoved == "YES"  # template defaults only: fixed wording

    service.handle(report_id, "Patient John Smith, cough. Patchy right lower lobe opacity.")
    dictated = store.current(report_id)
    ds = pydicom.dcmread(export_report(dictated.report, "sr", tmp_path / "b.dcm", dictated.number))
    assert ds.PatientIdentityRemoved == "NO"  # dictated words are exported as typed, never scrubbed
    assert "not scrubbed" in ds.DeidentificationMethod and len(ds.DeidentificationMethod) <= 64



def _shifted_today(data_dir: Path, patient_key: str) -> set[str]:
    """Today (and tomorrow, for a run across midnight) moved by the patient's shift under the data dir's salt."""
    shift = Pseudonymizer.from_data_dir(data_dir).date_shift(patient_key)
    today = dt.datetime.now() + shift
    return {today.strftime("%Y%m%d"), (today + dt.timedelta(days=1)).strftime("%Y%m%d")}


def test_the_cli_sr_export_dates_the_sr_with_the_patients_shift(tmp_path: Path) -> None:
    from assistant.cli.main import main

    data = tmp_path / "data"
    base = ["--data-dir", str(data), "report"]
    assert main([*base, "new", "--template", "cxr", "--patient-key", KEY, "--id", "r-cli-sr"]) == 0
    assert main([*base, "export", "r-cli-sr", "--format", "sr", "--out", str(tmp_path / "r.dcm")]) == 0
    ds = pydicom.dcmread(tmp_path / "r.dcm")
    assert ds.ContentDate in _shifted_today(data, KEY) and ds.InstanceCreationDate == ds.ContentDate
    assert dt.date.today().strftime("%Y%m%d") not in _own_dates(ds)

