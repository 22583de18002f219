"""Audit findings on de-identification: bulk elements at any depth, a truthful Patient Identity Removed, keyed
image ids."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from assistant.imaging.deid import Pseudonymizer, deidentify
from tests.assistant.imaging.ingest_fixtures import SALT, read, to_bytes

PDF = b"%PDF-1.4 Jane Doe MRN 12345678 born 1950-01-01"


def _with_bulk(ds: Dataset) -> Dataset:
    """``ds`` with bulk elements a viewer never shows: a document, a vendor blob, a nested and a private one."""
    ds.EncapsulatedDocument = PDF  # OB
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.add_new(0x00091010, "OB", PDF)  # private
    ds.add_new(0x00191001, "UN", PDF)  # private, unknown VR
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "1", "99X", "x"
    item.add_new(0x00420011, "OB", PDF)  # Encapsulated Document, nested
    item.add_new(0x00211001, "OW", PDF)  # private, nested
    ds.ProcedureCodeSequence = Sequence([item])
    return ds


def _bulk_left(ds: Dataset) -> list[str]:
    return [
        elem.keyword or str(elem.tag)
        for elem in ds.iterall()
        if elem.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN") and elem.keyword != "PixelData"
    ]


@pytest.mark.parametrize("keep_pixel_data", [False, True])
def test_deidentify_drops_encapsulated_documents_and_every_bulk_element_at_any_depth(keep_pixel_data: bool) -> None:
    out = deidentify(_with_bulk(read("CT_small.dcm")), Pseudonymizer(SALT), keep_pixel_data=keep_pixel_data)
    assert _bulk_left(out) == []
    assert PDF not in to_bytes(out)
    assert out.ProcedureCodeSequence[0].CodeValue == "1"  # the item itself survives, without its bulk
    assert ("PixelData" in out) is keep_pixel_data


def test_deidentified_file_still_reads_back_with_its_pixels_and_meta() -> None:
    out = deidentify(_with_bulk(read("CT_small.dcm")), Pseudonymizer(SALT), keep_pixel_data=True)
    back = pydicom.dcmread(io.BytesIO(to_bytes(out)))
    assert back.pixel_array.shape == (128, 128)
    assert "EncapsulatedDocument" not in back


@pytest.mark.parametrize(
    ("burned_in", "expected"),
    [(None, "NO"), ("", "NO"), ("UNKNOWN", "NO"), ("YES", "NO"), ("NO", "YES")],
)
def test_identity_is_claimed_removed_only_when_the_pixels_are_known_to_carry_no_text(
    burned_in: str | None, expected: str
) -> None:
    ds = read("CT_small.dcm")
    if "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    out = deidentify(ds, Pseudonymizer(SALT))
    assert out.PatientIdentityRemoved == expected
    # Burned In Annotation is written as known (its enumerated values only), never made up.
    assert out.get("BurnedInAnnotation") == (burned_in if burned_in in ("YES", "NO") else None)


def test_the_callers_knowledge_of_burned_in_text_is_recorded() -> None:
    ds = read("CT_small.dcm")
    out = deidentify(ds, Pseudonymizer(SALT), burned_in="NO")
    assert (out.BurnedInAnnotation, out.PatientIdentityRemoved) == ("NO", "YES")


def test_a_dataset_without_pixels_needs_no_burned_in_annotation() -> None:
    ds = read("CT_small.dcm")
    for keyword in ("PixelData", "BurnedInAnnotation"):
        if keyword in ds:
            delattr(ds, keyword)
    assert deidentify(ds, Pseudonymizer(SALT)).PatientIdentityRemoved == "YES"


def test_image_keys_are_keyed_by_the_salt() -> None:
    content = "0123456789abcdef0123456789abcdef"
    key = Pseudonymizer(SALT).image_key(content)
    assert key == Pseudonymizer(SALT).image_key(content) and key.startswith("I-") and len(key) == 34
    assert content not in key
    assert key != Pseudonymizer(SALT + b"other").image_key(content)
    assert key != Pseudonymizer(SALT).image_key(content[::-1])
