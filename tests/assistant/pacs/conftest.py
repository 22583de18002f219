"""A real Orthanc (DICOMweb plugin, basic auth) seeded with real files from ../shared/data/dicom.

Seeded studies (patient IDs and names are made up for the test; the pixels and headers are the shared files'):
- CT_NOW: a 6-slice CT series built from ``693_UNCI.dcm`` (positions 5 mm apart), patient ``CQ500-CT-310``,
  2020-01-15, accession ``ACC-CT-2020``.
- CT_PRIOR: the same patient's earlier CT (``693_J2KR.dcm``, 2019-01-10, accession ``ACC-CT-2019``) with an SR
  report that names the patient and a date in its text (to be scrubbed on import).
- MR: ``MR-SIEMENS-DICOM-WithOverlays.dcm`` as it is (its own patient, date 2005-11-30, accession).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from assistant.settings import Settings
from tests.support.orthanc import OrthancServer, orthanc_available

pytestmark = pytest.mark.skipif(not orthanc_available(), reason="Orthanc is not installed (make system)")

PATIENT_ID = "CQ500-CT-310"
PATIENT_NAME = "Testpatient^Carla"
CT_ACCESSION = "ACC-CT-2020"
PRIOR_ACCESSION = "ACC-CT-2019"
PRIOR_FINDING = "A 6 mm nodule in the right upper lobe."


@dataclass(frozen=True)
class Seeded:
    server: OrthancServer
    ct_study: str
    ct_series: str
    ct_sops: tuple[str, ...]
    prior_study: str
    mr_study: str
    mr_patient_id: str
    mr_accession: str

    def settings(self, data_dir: Path, **changes: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": data_dir,
            "pacs_url": self.server.dicomweb_url,
            "pacs_user": self.server.user,
            "pacs_password": self.server.password,
            "pacs_timeout_s": 20.0,
        }
        values.update(changes)
        return Settings(**values)  # type: ignore[arg-type]


def _bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _ct_series(source: Path, n: int) -> tuple[str, str, list[pydicom.Dataset]]:
    base = pydicom.dcmread(source)
    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(n):
        ds = copy.deepcopy(base)
        ds.PatientID, ds.PatientName = PATIENT_ID, PATIENT_NAME
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20200115", "101500", CT_ACCESSION
        ds.StudyDescription, ds.SeriesNumber, ds.InstanceNumber = "CT CHEST", 2, i + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, -5.0 * i]
        out.append(ds)
    return study, series, out


def _prior(source: Path) -> tuple[str, list[pydicom.Dataset]]:
    import highdicom as hd
    from pydicom.sr.coding import Code

    image = pydicom.dcmread(source)
    image.PatientID, image.PatientName = PATIENT_ID, PATIENT_NAME
    image.StudyInstanceUID, image.SeriesInstanceUID = generate_uid(), generate_uid()
    image.SOPInstanceUID = generate_uid()
    image.file_meta.MediaStorageSOPInstanceUID = image.SOPInstanceUID
    image.StudyDate, image.StudyTime, image.AccessionNumber = "20190110", "090000", PRIOR_ACCESSION
    image.StudyDescription, image.SeriesNumber = "CT CHEST", 1

    def section(code: str, meaning: str, text: str) -> hd.sr.ContainerContentItem:
        item = hd.sr.ContainerContentItem(
            name=Code(code, "DCM", meaning), relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
        )
        item.ContentSequence = hd.sr.ContentSequence(
            [hd.sr.TextContentItem(name=Code("121071", "DCM", "Finding"), value=text,
                                   relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)]
        )  # fmt: skip
        return item

    root = hd.sr.ContainerContentItem(name=Code("18748-4", "LN", "Diagnostic Imaging Report"))
    root.ContentSequence = hd.sr.ContentSequence(
        [
            section("121070", "Findings", f"{PRIOR_FINDING} Patient Testpatient seen on 2019-01-10."),
            section("121072", "Impressions", "Small pulmonary nodule."),
        ]
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[image], content=root, series_instance_uid=generate_uid(), series_number=99,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="test",
    )  # fmt: skip
    return image.StudyInstanceUID, [image, sr]


@pytest.fixture(scope="session")
def seeded_pacs(shared_dir: Path) -> Iterator[Seeded]:
    """Orthanc, started once for these tests, seeded, stopped after."""
    dicom = shared_dir / "data" / "dicom" / "pydicom_data"
    server = OrthancServer().start()
    try:
        ct_study, ct_series, ct = _ct_series(dicom / "693_UNCI.dcm", 6)
        prior_study, prior = _prior(dicom / "693_J2KR.dcm")
        mr = pydicom.dcmread(dicom / "MR-SIEMENS-DICOM-WithOverlays.dcm")
        for ds in [*ct, *prior, mr]:
            server.upload(_bytes(ds))
        yield Seeded(
            server=server,
            ct_study=ct_study,
            ct_series=ct_series,
            ct_sops=tuple(ds.SOPInstanceUID for ds in ct),
            prior_study=prior_study,
            mr_study=mr.StudyInstanceUID,
            mr_patient_id=str(mr.PatientID),
            mr_accession=str(mr.AccessionNumber),
        )
    finally:
        server.stop()
