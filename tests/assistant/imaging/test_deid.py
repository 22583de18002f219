"""PHI never gets through: planted identifiers are absent from summaries, headers, logs, errors and outputs."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import warnings
from datetime import date
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import tag_for_keyword

from assistant.errors import ConfigurationError
from assistant.imaging import deid
from assistant.imaging.deid import Pseudonymizer, age_group, clean_text, collect_identifiers, deidentify, header_rows
from assistant.imaging.ingest import load_study
from assistant.imaging.study import PatientSex
from assistant.settings import Settings
from tests.assistant.imaging.ingest_fixtures import PHI, SALT, UID_PREFIX, leaked, plant_phi, read, to_bytes, write


@pytest.fixture()
def planted(tmp_path: Path) -> Path:
    return write(plant_phi(read("CT_small.dcm")), tmp_path / "planted.dcm")


def _everything_passed_on(result: object) -> str:
    """Every text a caller can reach from an ingest result, except the pixels."""
    parts: list[str] = []
    for study in result.studies:  # type: ignore[attr-defined]
        parts.append(json.dumps(study.summary()))
        parts.append(repr(study))  # the dataclass repr walks every field (arrays summarised)
        for series in study.series:
            parts.append(json.dumps(series.summary()))
            parts.append(json.dumps(series.header))
            for image in series.images:
                parts.append(image.sop_instance_uid)
                parts.extend(w.name for w in image.windows)
    for outcome in result.files:  # type: ignore[attr-defined]
        parts.append(json.dumps({**outcome.__dict__, "path": None}))
    return "\n".join(parts)


def test_planted_phi_never_reaches_summaries_headers_or_logs(
    planted: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, pydicom's included
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load_study([planted], SALT)
    assert result.ok
    text = _everything_passed_on(result)
    assert leaked(text) == []
    assert leaked(caplog.text) == []
    assert leaked("\n".join(str(w.message) for w in caught)) == []
    study = result.study
    assert study is not None
    # What is kept: coarse, useful facts.
    assert study.patient_sex is PatientSex.FEMALE and study.age_group == "70-79"
    assert study.study_description == "CT CHEST"
    assert study.series[0].series_description == "AX LUNG"
    assert study.patient_key and study.patient_key.startswith("P-")
    assert study.study_date is not None and study.study_date != date(2023, 9, 14)
    header = dict((kw, value) for _, kw, value in study.series[0].header)
    assert header["PatientIdentityRemoved"] == "NO"  # no Burned In Annotation: the pixels are not known clean
    assert header["PatientID"] == study.patient_key
    assert header["Manufacturer"]  # technical facts survive


def test_deidentified_dataset_holds_no_planted_phi_at_any_depth() -> None:
    ds = plant_phi(read("CT_small.dcm"))
    keys = Pseudonymizer(SALT)
    out = deidentify(ds, keys, keep_pixel_data=True)
    assert leaked(str(out)) == []
    assert leaked(str(out.file_meta)) == []
    assert not any(elem.tag.is_private for elem in out.iterall())
    assert "OtherPatientIDsSequence" not in out and "RequestAttributesSequence" not in out
    # UIDs remapped consistently, standard UIDs kept, and the result is still a valid DICOM file.
    assert out.StudyInstanceUID == keys.uid(UID_PREFIX + "1") and out.StudyInstanceUID.startswith("2.25.")
    assert out.SOPClassUID == ds.SOPClassUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.ProcedureCodeSequence[0].CodeValue == "399208008"  # SNOMED code kept
    assert "VerifyingObserverName" not in out.ProcedureCodeSequence[0]  # nested person name removed
    assert out.StudyDate != PHI["study_date"] and out.PatientBirthDate in ("", None)
    back = pydicom.dcmread(__import__("io").BytesIO(to_bytes(out)))
    assert back.pixel_array.shape == (128, 128)
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert {"113100", "113105", "113107", "113108"} <= codes


def test_burned_in_annotation_is_flagged_and_identity_not_claimed_removed(tmp_path: Path) -> None:
    ds = plant_phi(read("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    # Pixels not read (burned_in_text = never): the flag is passed on; test_burned_in.py covers the OCR path.
    result = load_study([write(ds, tmp_path / "burned.dcm")], SALT, burned_in_text="never")
    study = result.study
    assert study is not None
    assert study.summary()["burned_in_annotation"] == "YES"
    assert any("burned into the pixels" in w for w in study.warnings)
    header = dict((kw, value) for _, kw, value in study.series[0].header)
    assert header["PatientIdentityRemoved"] == "NO"


def test_error_messages_of_planted_files_hold_no_phi(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    data = to_bytes(plant_phi(read("CT_small.dcm")))
    cases = {
        "cut.dcm": data[: len(data) - 5000],
        "header.dcm": data[:900],
        f"{PHI['family']}.dcm": data[:1],  # even a name in the file name stays out of the message
    }
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
    result = load_study(sorted(tmp_path.iterdir()), SALT)
    for outcome in result.files:
        assert not outcome.ok
        assert leaked(outcome.error or "") == []
    assert leaked(caplog.text) == []


def test_same_patient_same_key_and_shift_across_studies(tmp_path: Path) -> None:
    first = plant_phi(read("CT_small.dcm"), study_date="20230914")
    second = plant_phi(read("MR_small.dcm"), study_date="20240101")
    second.StudyInstanceUID = UID_PREFIX + "100"
    second.SeriesInstanceUID = UID_PREFIX + "101"
    second.SOPInstanceUID = UID_PREFIX + "102"
    a = load_study([write(first, tmp_path / "a.dcm")], SALT).study
    b = load_study([write(second, tmp_path / "b.dcm")], SALT).study
    assert a is not None and b is not None
    assert a.patient_key == b.patient_key
    assert a.study_date and b.study_date
    assert (b.study_date - a.study_date).days == (date(2024, 1, 1) - date(2023, 9, 14)).days  # interval kept
    other = load_study([write(first, tmp_path / "c.dcm")], b"another-salt-of-sixteen-bytes").study
    assert other is not None and other.patient_key != a.patient_key  # the salt makes the key


def test_pseudonymizer_is_consistent_and_keyed() -> None:
    keys = Pseudonymizer(SALT)
    assert keys.patient_key(" 12345 ") == keys.patient_key("12345")
    assert keys.patient_key("") is None and keys.patient_key(None) is None
    assert keys.uid("1.2.3.4") == keys.uid("1.2.3.4") != keys.uid("1.2.3.5")
    assert len(keys.uid("1.2.3.4")) <= 64
    assert keys.uid("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"
    assert -3650 <= keys.date_shift("P-x").days <= -1
    assert "salt" not in repr(keys).replace("<salt>", "")
    with pytest.raises(ConfigurationError):
        Pseudonymizer(b"short")


def test_salt_is_created_once_private_and_atomic(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    results: list[bytes] = []

    def create() -> None:
        results.append(deid.load_or_create_salt(data_dir))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results[0]) == 32  # every racer got the same salt
    salt_file = data_dir / deid.SALT_FILE
    assert stat.S_IMODE(os.stat(salt_file).st_mode) == 0o600
    assert [p.name for p in data_dir.iterdir()] == [deid.SALT_FILE]  # no temp files left
    # Through the settings, as the CLI and UI call it.
    key = load_study([], Settings(data_dir=data_dir)).studies
    assert key == ()
    assert Pseudonymizer.from_data_dir(data_dir).patient_key("1") == Pseudonymizer(results[0]).patient_key("1")


def test_damaged_salt_is_refused(tmp_path: Path) -> None:
    (tmp_path / deid.SALT_FILE).write_text("not hex")
    with pytest.raises(ConfigurationError, match="damaged"):
        Pseudonymizer.from_data_dir(tmp_path)


def test_clean_text_removes_identifiers_dates_numbers() -> None:
    ids = ["Quixotewright", "Zebulon", "PID88421357"]
    assert clean_text("CT Chest quixotewright 14/09/2023 MRN: 123456", ids) == "CT Chest"
    assert clean_text("MR brain w/o contrast", ids) == "MR brain w/o contrast"
    assert clean_text("call +1 (555) 013-4877 or a.b@c.org", ids) == "call or"
    assert clean_text("Zebulon", ids) is None
    assert clean_text("Abdomen 1.25mm B30f", ids) == "Abdomen 1.25mm B30f"


def test_collect_identifiers_walks_nested_sequences() -> None:
    found = collect_identifiers(plant_phi(read("CT_small.dcm")))
    for value in (PHI["family"], PHI["given"], PHI["patient_id"], PHI["seq_id"], PHI["observer"]):
        assert value in found


@pytest.mark.parametrize(
    ("age", "birth", "study", "group"),
    [
        ("045Y", None, None, "40-49"),
        ("006M", None, None, "<1"),
        ("093Y", None, None, "90+"),
        (None, date(1950, 6, 1), date(2020, 5, 31), "60-69"),
        ("garbage", None, None, None),
    ],
)
def test_age_group(age: str | None, birth: date | None, study: date | None, group: str | None) -> None:
    assert age_group(age, birth, study) == group


def test_profile_tables_name_real_dicom_keywords() -> None:
    for table in (deid._EMPTY, deid._REMOVE, deid._SAFE_TEXT, deid._CLEAN_TEXT, deid._IDENTIFYING):
        unknown = sorted(k for k in table if tag_for_keyword(k) is None)
        assert unknown == []


def test_header_rows_summarise_bulk_data() -> None:
    rows = header_rows(read("CT_small.dcm"))
    pixel = [r for r in rows if r[1] == "PixelData"]
    assert pixel and pixel[0][2].endswith("bytes>")
