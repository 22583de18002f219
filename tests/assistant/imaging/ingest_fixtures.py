"""Helpers for the ingest and de-identification tests: real files, datasets written through BytesIO, PHI."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.support.paths import REPO

SHARED_DICOM = REPO / ".." / "shared" / "data" / "dicom"
SALT = b"radassist-test-salt-0123456789"


def wheel_file(name: str) -> Path:
    """A test file inside the pydicom wheel (offline: never downloads)."""
    found = get_testdata_file(name, download=False)
    if not isinstance(found, str):
        raise FileNotFoundError(f"{name} is not among pydicom's own test files")
    return Path(found)


def inventory() -> list[dict[str, str]]:
    """Rows of the shared inventory, each with a resolved "file" path."""
    rows = []
    with open(SHARED_DICOM / "inventory.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rel = row["path"]
            if rel.startswith("pydicom_wheel/"):
                row["file"] = str(wheel_file(rel[len("pydicom_wheel/") :]))
            else:
                row["file"] = str(SHARED_DICOM / rel)
            rows.append(row)
    return rows


def read(name_or_path: str | Path) -> Dataset:
    path = Path(name_or_path)
    return pydicom.dcmread(path if path.is_absolute() or path.exists() else wheel_file(str(name_or_path)))


def to_bytes(ds: Dataset, implicit: bool | None = None) -> bytes:
    """``ds`` written as a DICOM file into a real BytesIO."""
    buffer = io.BytesIO()
    if implicit is None:
        ds.save_as(buffer, enforce_file_format=True)
    else:
        ds.save_as(buffer, implicit_vr=implicit, little_endian=True)
    return buffer.getvalue()


def write(ds: Dataset, path: Path) -> Path:
    path.write_bytes(to_bytes(ds))
    return path


# Distinctive strings that cannot occur by chance in any output.
PHI = {
    "family": "Quixotewright",
    "given": "Zebulon",
    "middle": "Marmaduke",
    "patient_id": "PID88421357",
    "other_id": "ALTID5550192",
    "seq_id": "SEQID7732191",
    "issuer": "Qzxhospital",
    "birth": "19510317",
    "study_date": "20230914",
    "address": "42 Wallaby Way Sydneytown",
    "phone": "+1 555 0134 877",
    "institution": "St Elsewhereington General",
    "inst_address": "9 Qwertyuiop Lane",
    "referrer": "Drhousewell",
    "performer": "Cuddyfrost",
    "operator": "Techwhistle",
    "accession": "ACC99887766",
    "study_id": "STUDYID4242",
    "comment": "Hortensia Plumtwist",
    "history": "Flimflammery",
    "rp_id": "RPID4471",
    "private": "PRIVSECRET9931",
    "private_nested": "Nestedprivyname",
    "observer": "Observerkrumholz",
    "station": "STATIONZQ77",
    "bad_date": "Quixdate",
}
UID_PREFIX = "1.2.826.0.1.3680043.9.7777."


def plant_phi(ds: Dataset, study_date: str | None = None) -> Dataset:
    """Put the PHI strings above into names, IDs, dates, addresses, comments, private and nested elements."""
    p = PHI
    ds.PatientName = f"{p['family']}^{p['given']}^{p['middle']}"
    ds.PatientID = p["patient_id"]
    ds.IssuerOfPatientID = p["issuer"]
    ds.OtherPatientIDs = p["other_id"]
    other = Dataset()
    other.PatientID = p["seq_id"]
    other.IssuerOfPatientID = p["issuer"]
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientBirthDate = p["birth"]
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate"):
        setattr(ds, keyword, study_date or p["study_date"])
    ds.PatientAge = "072Y"
    ds.PatientSex = "F"
    ds.PatientAddress = p["address"]
    ds.PatientTelephoneNumbers = p["phone"]
    ds.InstitutionName = p["institution"]
    ds.InstitutionAddress = p["inst_address"]
    ds.StationName = p["station"]
    ds.ReferringPhysicianName = f"{p['referrer']}^Gregorius"
    ds.PerformingPhysicianName = f"{p['performer']}^Lisanne"
    ds.OperatorsName = f"{p['operator']}^Ann"
    ds.AccessionNumber = p["accession"]
    ds.StudyID = p["study_id"]
    ds.ImageComments = f"Patient {p['given']} said hi; call {p['phone']}"
    ds.PatientComments = f"lives with {p['comment']}"
    ds.AdditionalPatientHistory = f"history {p['history']}"
    ds.StudyDescription = f"CT CHEST {p['family']} 2023-09-14 MRN {p['patient_id']}"
    ds.SeriesDescription = f"AX LUNG {p['given']} {p['accession']}"
    ds.ProtocolName = f"Chest {p['family']}"
    request = Dataset()
    request.RequestedProcedureID = p["rp_id"]
    request.RequestedProcedureDescription = f"Scan for {p['family']}"
    ds.RequestAttributesSequence = Sequence([request])
    # A nested item of a sequence the profile does not name: the generic rules must catch PN and text.
    code = Dataset()
    code.CodeValue = "399208008"
    code.CodingSchemeDesignator = "SCT"
    code.CodeMeaning = f"Chest for {p['family']}"
    code.VerifyingObserverName = f"{p['observer']}^Kim"
    ds.ProcedureCodeSequence = Sequence([code])
    block = ds.private_block(0x0009, "ACME 1.1", create=True)
    block.add_new(0x01, "LO", p["private"])
    inner = Dataset()
    inner.PatientName = f"{p['private_nested']}^X"
    block.add_new(0x02, "SQ", Sequence([inner]))
    ds.StudyInstanceUID = UID_PREFIX + "1"
    ds.SeriesInstanceUID = UID_PREFIX + "2"
    ds.SOPInstanceUID = UID_PREFIX + "3"
    ds.FrameOfReferenceUID = UID_PREFIX + "4"
    if hasattr(ds, "file_meta"):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    # An invalid DA: pydicom's reading validation would quote it in a warning.
    ds.add_new(0x00080023, "DA", p["bad_date"])
    return ds


def phi_strings() -> list[str]:
    """Every planted string, plus the original UIDs."""
    out = list(PHI.values()) + [UID_PREFIX]
    # The phone number without spaces and the address parts, as a leak could reformat them.
    out += ["5550134877", "Wallaby", "Sydneytown", "Elsewhereington", "Qwertyuiop"]
    return out


def leaked(text: str, strings: Iterable[str] | None = None) -> list[str]:
    """The planted strings found in ``text`` (case-insensitive)."""
    low = text.lower()
    return [s for s in (strings or phi_strings()) if s.lower() in low]
