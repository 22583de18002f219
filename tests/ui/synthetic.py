"""A synthetic chest CT series written with pydicom: body, lungs, spine and a lung nodule, in HU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PATIENT_NAME = "SYNTHETIC^JANE"  # planted identifiers: must never show up in the UI, exports or logs
PATIENT_ID = "SYN-0042-PHI"


def phantom(size: int, z: float) -> np.ndarray:
    """(size, size) int16 HU: air, a soft-tissue body, two lungs, a bony spine, a nodule around z≈0.5."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    hu = np.full((size, size), -1000.0, np.float32)
    hu[(x / 0.45) ** 2 + (y / 0.33) ** 2 <= 1] = 40.0
    for cx in (-0.2, 0.2):
        hu[((x - cx) / 0.15) ** 2 + ((y + 0.02) / 0.22) ** 2 <= 1] = -850.0
    hu[(x**2 + (y - 0.22) ** 2) <= 0.05**2] = 700.0
    radius = 0.04 * max(0.0, 1 - abs(z - 0.5) * 6)
    if radius > 0:
        hu[((x - 0.2) ** 2 + (y + 0.05) ** 2) <= radius**2] = 30.0
    return hu.astype(np.int16)


def write_ct_series(folder: Path, slices: int = 12, size: int = 128) -> list[Path]:
    """``slices`` CT files of one series in ``folder`` (shuffled instance order is the ingest's job)."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for i in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
        ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = "19600101", "F", "064Y"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240102", "101500", "ACC-PHI-77"
        ds.Modality, ds.BodyPartExamined, ds.SeriesDescription = "CT", "CHEST", "Chest 1.25mm"
        ds.StudyDescription, ds.SeriesNumber, ds.InstanceNumber = "CT CHEST", 2, i + 1
        ds.ImagePositionPatient = [-160.0, -160.0, -2.5 * i]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [320.0 / size, 320.0 / size], 2.5
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.BurnedInAnnotation = "NO"
        ds.PixelData = phantom(size, i / max(slices - 1, 1)).tobytes()
        path = folder / f"IM{i + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
