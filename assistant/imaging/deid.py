"""De-identification of DICOM headers: PS3.15 Annex E Basic Application Level Confidentiality Profile.

Options applied (PS3.15 Table E.1-1, columns of the options): Retain Longitudinal Temporal Information with
Modified Dates (E.3.6: dates shifted by a per-patient offset, intervals between a patient's studies kept),
Retain Patient Characteristics (E.3.7: sex only; age as an age group in the summary), Clean Descriptors
(E.3.5: study/series descriptions and protocol name kept after removing identifiers). Pixel data is not
cleaned here: ``assistant.imaging.burned_in`` reads the pixels with OCR and blacks out identifying text (the
Clean Pixel Data Option, E.3.1, recorded when it ran and nothing identifying stayed legible).

This goes further than Table E.1-1 where that is safer: every private element, every person name, every
free-text element not on a short allow-list, every element of unknown VR and every bulk element (OB, OW, UN,
...: an Encapsulated Document, a vendor blob) other than the pixels is removed, and every UID not
issued under the DICOM root is remapped, at any depth of nested sequences.

Public names
------------
- ``Pseudonymizer(salt)``: keyed pseudonyms from one secret salt: ``patient_key(patient_id)``,
  ``uid(uid)``, ``date_shift(patient_key)``, ``image_key(content_key)``;
  ``Pseudonymizer.from_data_dir(data_dir)`` keeps the salt in ``data_dir/deid_salt`` (created on first use,
  mode 0600, atomically); ``Pseudonymizer.from_settings(settings)`` reads ``settings.deid_salt_file`` when set
  (one salt shared by every app replica; it must exist and be owner-only), else the data dir's.
- ``deidentify(ds, pseudonymizer, keep_pixel_data=False) -> Dataset``: a de-identified copy.
- ``collect_identifiers(ds) -> list[str]``: the identifying strings a header holds (names, IDs, ...).
- ``clean_text(text, identifiers) -> str | None``: free text with identifiers, dates, numbers removed.
- ``header_rows(ds) -> tuple[(tag, keyword, value), ...]``: a flat, printable view of a (de-identified) header.
- ``age_group(patient_age, birth_date, study_date) -> str | None``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from assistant.errors import ConfigurationError

logger = logging.getLogger(__name__)

SALT_FILE = "deid_salt"
_SALT_BYTES = 32
DICOM_UID_ROOT = "1.2.840.10008."  # UIDs of the standard itself (SOP classes, syntaxes, coding schemes)
_MAX_SHIFT_DAYS = 3650  # dates move back 1..3650 days; the same patient always moves by the same amount

# ---------------------------------------------------------------------------------------------------------
# PS3.15 Table E.1-1 actions, by keyword. Elements caught by the generic rules below (any PN, any free text
# not allowed, any private element) are listed only where the table's action differs from "remove".

# Z: kept present but empty (type 2 attributes in most IODs).
_EMPTY = frozenset({
    "PatientName", "PatientBirthDate", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "ContentCreatorName", "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest",
})
# X: removed (the non-text ones matter most: the generic rules remove free text anyway).
_REMOVE = frozenset({
    "AcquisitionComments", "AcquisitionDeviceProcessingDescription", "ActualHumanPerformersSequence",
    "AdditionalPatientHistory", "AdmissionID", "AdmittingDate", "AdmittingDiagnosesCodeSequence",
    "AdmittingDiagnosesDescription", "AdmittingTime", "Allergies", "AuthorObserverSequence", "BranchOfService",
    "CassetteID", "CommentsOnThePerformedProcedureStep", "ConsentForClinicalTrialUseSequence",
    "ConsultingPhysicianName", "ConsultingPhysicianIdentificationSequence", "ContentSequence",
    "ContributionDescription", "CountryOfResidence", "CurrentPatientLocation", "CustodialOrganizationSequence",
    "DerivationDescription", "DetectorID", "DeviceSerialNumber", "DigitalSignaturesSequence",
    "DischargeDiagnosisDescription", "DistributionAddress", "DistributionName", "EthnicGroup", "FrameComments",
    "GantryID", "GeneratorID", "GraphicAnnotationSequence", "HumanPerformerName", "HumanPerformerOrganization",
    "IconImageSequence", "IdentifyingComments", "ImageComments", "ImagePresentationComments",
    "ImagingServiceRequestComments", "Impressions", "InstitutionAddress", "InstitutionCodeSequence",
    "InstitutionName", "InstitutionalDepartmentName", "InsurancePlanIdentification",
    "IntendedRecipientsOfResultsIdentificationSequence", "InterpretationApproverSequence",
    "InterpretationAuthor", "InterpretationDiagnosisDescription", "InterpretationIDIssuer",
    "InterpretationRecorder", "InterpretationText", "InterpretationTranscriber", "IssuerOfAdmissionID",
    "IssuerOfPatientID", "IssuerOfServiceEpisodeID", "LastMenstrualDate", "MedicalAlerts",
    "MedicalRecordLocator", "MilitaryRank", "ModifiedAttributesSequence", "ModifyingDeviceID",
    "ModifyingDeviceManufacturer", "NameOfPhysiciansReadingStudy", "NamesOfIntendedRecipientsOfResults",
    "Occupation", "OperatorIdentificationSequence", "OperatorsName", "OrderCallbackPhoneNumber",
    "OrderEnteredBy", "OrderEntererLocation", "OriginalAttributesSequence", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress",
    "PatientAge", "PatientBirthName", "PatientBirthTime", "PatientComments", "PatientInstitutionResidence",
    "PatientInsurancePlanCodeSequence", "PatientMotherBirthName", "PatientPrimaryLanguageCodeSequence",
    "PatientPrimaryLanguageModifierCodeSequence", "PatientReligiousPreference", "PatientSexNeutered",
    "PatientSize", "PatientState", "PatientTelephoneNumbers", "PatientTelecomInformation",
    "PatientTransportArrangements", "PatientWeight", "PerformedLocation", "PerformedProcedureStepDescription",
    "PerformedProcedureStepID", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime", "PerformedStationAETitle",
    "PerformedStationGeographicLocationCodeSequence", "PerformedStationName",
    "PerformedStationNameCodeSequence", "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName",
    "PersonAddress", "PersonIdentificationCodeSequence", "PersonName", "PersonTelephoneNumbers",
    "PersonTelecomInformation", "PhysicianApprovingInterpretation",
    "PhysiciansReadingStudyIdentificationSequence", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "PreMedication", "PregnancyStatus",
    "ReasonForTheImagingServiceRequest", "ReasonForStudy", "ReferencedDigitalSignatureSequence",
    "ReferencedPatientAliasSequence", "ReferencedPatientSequence", "ReferencedPatientPhotoSequence",
    "ReferringPhysicianAddress", "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianTelephoneNumbers", "RegionOfResidence", "RequestAttributesSequence",
    "RequestedContrastAgent", "RequestedProcedureComments", "RequestedProcedureDescription",
    "RequestedProcedureID", "RequestedProcedureLocation", "RequestingPhysician", "RequestingService",
    "ResponsibleOrganization", "ResponsiblePerson", "ResultsComments", "ResultsDistributionListSequence",
    "ResultsIDIssuer", "ReviewerName", "ScheduledHumanPerformersSequence",
    "ScheduledPatientInstitutionResidence", "ScheduledPerformingPhysicianIdentificationSequence",
    "ScheduledPerformingPhysicianName", "ScheduledProcedureStepDescription", "ScheduledProcedureStepLocation",
    "ScheduledStationAETitle", "ScheduledStationGeographicLocationCodeSequence", "ScheduledStationName",
    "ScheduledStationNameCodeSequence", "ScheduledStudyLocation", "ScheduledStudyLocationAETitle",
    "ServiceEpisodeDescription", "ServiceEpisodeID", "SmokingStatus", "SourceApplicationEntityTitle",
    "SpecialNeeds", "StationName", "StudyComments", "StudyIDIssuer", "TextComments", "TextString",
    "TextValue", "TopicAuthor", "TopicKeywords", "TopicSubject", "TopicTitle",
    "VerifyingObserverIdentificationCodeSequence", "VerifyingObserverName", "VerifyingObserverSequence",
    "VerifyingOrganization", "VisitComments",
})
# Free text kept as is: technical or coded descriptions that carry no identity.
_SAFE_TEXT = frozenset({
    "Manufacturer", "ManufacturerModelName", "SoftwareVersions", "ConvolutionKernel", "SequenceName",
    "WindowCenterWidthExplanation", "LUTExplanation", "CodeValue", "CodingSchemeDesignator",
    "CodingSchemeVersion", "CodeMeaning", "LongCodeValue", "URNCodeValue", "ContextIdentifier",
    "MappingResource", "ContextGroupVersion", "ReceiveCoilName", "TransmitCoilName", "PulseSequenceName",
    "SegmentLabel", "SegmentAlgorithmName", "ImplementationVersionName", "FilterType", "RescaleType",
    "FrameType", "DimensionDescriptionLabel", "AcquisitionContrast", "ReconstructionAlgorithm",
})
# E.3.5 Clean Descriptors Option: kept after clean_text().
# Contrast/Bolus Agent (0018,0010) is "C" under this option in Table E.1-1; Contrast/Bolus Route (0018,1040) is not
# listed there at all. Both are kept cleaned: they answer "was contrast given?" from the header.
_CLEAN_TEXT = frozenset(
    {"StudyDescription", "SeriesDescription", "ProtocolName", "ContrastBolusAgent", "ContrastBolusRoute"}
)
_TEXT_VRS = frozenset({"AE", "LO", "LT", "SH", "ST", "UT", "UC", "UR"})
_PIXEL_KEYWORDS = frozenset({
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
})
# Bulk VRs: their bytes can be anything (an Encapsulated Document's PDF, a vendor blob, a thumbnail), so no rule
# can clean them. They are removed wherever they are, except the pixels (when kept) and what is listed here.
_BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_BULK_KEPT = frozenset({"FileMetaInformationVersion"})  # PS3.10 7.1: two bytes, 00 01
# Numeric lookup tables the pixels cannot be displayed without (PS3.3 C.7.6.3.1.5, C.11.1, C.11.2): kept only
# with the pixels.
_LUT_KEYWORDS = frozenset({
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "AlphaPaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData", "SegmentedBluePaletteColorLookupTableData",
    "SegmentedAlphaPaletteColorLookupTableData", "LUTData",
})
# Strings worth looking for in free text: these hold identities (plus every person name, PN, anywhere).
_IDENTIFYING = frozenset({
    "PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "IssuerOfPatientID", "AdmissionID",
    "MedicalRecordLocator", "InstitutionName", "InstitutionAddress", "PatientAddress", "PatientTelephoneNumbers",
    "StationName", "DeviceSerialNumber", "RequestedProcedureID", "PerformedProcedureStepID", "ServiceEpisodeID",
    "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest",
    "InstitutionalDepartmentName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
})
# CID 7050 De-identification Method codes (PS3.16), recorded in DeidentificationMethodCodeSequence.
_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)
_CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")  # CID 7050: burned-in text found by OCR and blacked out


class Pseudonymizer:
    """Keyed pseudonyms (HMAC-SHA-256 under one secret salt): patient keys, UIDs and date shifts."""

    def __init__(self, salt: bytes) -> None:
        if not isinstance(salt, bytes | bytearray) or len(salt) < 16:
            raise ConfigurationError("the de-identification salt must be at least 16 bytes")
        self._salt = bytes(salt)

    def __repr__(self) -> str:  # never show the salt
        return "Pseudonymizer(<salt>)"

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Pseudonymizer:
        """Load the salt from ``data_dir/deid_salt``, creating it (0600, atomically) on first use."""
        return cls(load_or_create_salt(Path(data_dir)))

    @classmethod
    def from_settings(cls, settings: Any) -> Pseudonymizer:
        """The salt of ``settings.deid_salt_file`` (RADASSIST_DEID_SALT_FILE) when set, else ``data_dir/deid_salt``.

        A configured file is never created: replicas that each made their own would give one patient different
        keys. Anything with a ``data_dir`` (and optionally a ``deid_salt_file``) is accepted.
        """
        salt_file = getattr(settings, "deid_salt_file", None)
        if salt_file is not None:
            return cls(load_salt_file(Path(salt_file)))
        return cls.from_data_dir(Path(settings.data_dir))

    def _mac(self, purpose: str, text: str) -> bytes:
        return hmac.new(self._salt, f"{purpose}\x00{text}".encode(), hashlib.sha256).digest()

    def patient_key(self, patient_id: str | None) -> str | None:
        """A stable pseudonymous key for a patient ID ("P-" + 20 hex digits); None without an ID.

        One site has one patient-ID namespace, so the issuer is not part of the key: a prior with the issuer
        missing still links.
        """
        text = (patient_id or "").strip()
        if not text:
            return None
        return "P-" + self._mac("patient", text).hex()[:20]

    def uid(self, uid: str) -> str:
        """A consistent replacement UID under 2.25 (PS3.5 B.2); UIDs of the standard itself are kept."""
        text = str(uid).strip().rstrip("\x00")
        if not text or text.startswith(DICOM_UID_ROOT):
            return text
        return "2.25." + str(int.from_bytes(self._mac("uid", text)[:16], "big"))

    def image_key(self, content_key: str) -> str:
        """A keyed pseudonym of an image's content hash ("I-" + 32 hex digits): what may be stored or audited.

        A plain content hash can be recomputed by anyone holding the image and so links an audit row to it; this
        one cannot without the salt.
        """
        return "I-" + self._mac("image", str(content_key)).hex()[:32]

    def accession_key(self, accession: str) -> str:
        """A stable pseudonym of an accession number or report id ("A-" + 20 hex digits): prior reports' ids."""
        return "A-" + self._mac("accession", str(accession).strip()).hex()[:20]

    def date_shift(self, key: str | None) -> timedelta:
        """The per-patient date offset: 1 to 3650 days back, the same for every study of the patient."""
        digest = self._mac("date", key or "")
        return -timedelta(days=1 + int.from_bytes(digest[:8], "big") % _MAX_SHIFT_DAYS)


def load_or_create_salt(data_dir: Path) -> bytes:
    """The salt bytes in ``data_dir/deid_salt``; a new random one is published atomically if missing."""
    path = data_dir / SALT_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        text = _create_salt(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the de-identification salt {path}: {exc}") from exc
    return _checked_salt(path, text)


def load_salt_file(path: Path) -> bytes:
    """The salt bytes of a configured salt file (``deid_salt_file``): it must exist, be hex and owner-only."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"the de-identification salt file {path} (deid_salt_file) does not exist; create it once with "
            "`umask 077; openssl rand -hex 32 > FILE` and give every replica the same file"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the de-identification salt {path}: {exc}") from exc
    return _checked_salt(path, text)


def _checked_salt(path: Path, text: str) -> bytes:
    """The salt parsed from ``text``; refused when damaged or when other users may read or change the file."""
    try:
        salt = bytes.fromhex(text.strip())
    except ValueError:
        salt = b""
    if len(salt) < 16:
        raise ConfigurationError(f"the de-identification salt {path} is damaged; restore it from a backup")
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"cannot read the de-identification salt {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Whoever reads the salt can re-identify every pseudonymous key by trying patient IDs.
        raise ConfigurationError(
            f"the de-identification salt {path} is readable or writable by other users "
            f"(mode {stat.S_IMODE(mode):04o}); make it owner-only: chmod 600 {path}"
        )
    return salt


def _create_salt(path: Path) -> str:
    """Write a new salt to a private temp file and link it into place; a concurrent winner's salt is kept."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the data folder {path.parent}: {exc.strerror}") from exc
    text = secrets.token_bytes(_SALT_BYTES).hex() + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, text.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic and never overwrites: two first runs agree on one salt
            logger.info("created a new de-identification salt in the data folder")
        except FileExistsError:
            text = path.read_text(encoding="ascii")
    except OSError as exc:
        raise ConfigurationError(f"cannot create the de-identification salt {path}: {exc.strerror}") from exc
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass
    return text


# ---------------------------------------------------------------------------------------------------------
# Text


_DATE_PATTERNS = (
    r"\b\d{4}[-./]\d{1,2}[-./]\d{1,2}\b",
    r"\b\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\b",
    r"\b\d{1,2}\s*(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s*\d{2,4}\b",
)
_SCRUB = re.compile(
    "|".join(
        (
            *_DATE_PATTERNS,
            r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail
            r"\+?\d[\d ()./-]{6,}\d",  # phone-like digit runs
            r"\b(?:mrn|id|acc(?:ession)?|dob|pid)\s*[:#]?\s*\S*\d\S*",  # labelled identifiers
            r"\b[a-z]{0,3}\d{5,}[a-z]{0,3}\b",  # long numbers (IDs, accession numbers)
        )
    ),
    re.I,
)

_LABELS = re.compile(r"\b(?:mrn|dob|pid|patient\s*id|acc(?:ession)?(?:\s*(?:no|number))?)\b\s*[:#.]?", re.I)


@functools.lru_cache(maxsize=64)
def _identifier_pattern(identifiers: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for all identifiers (longest first), whole words, any case."""
    words = sorted({i.strip() for i in identifiers if i and len(i.strip()) >= 2}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(re.escape(w) for w in words)})(?![^\W_])", re.I)


# Control characters, bidi controls and zero-width characters: never part of a description, but they can hide or
# reorder text on a screen or in a prompt.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
# PS3.5 Table 6.2-1, Code String: upper-case letters, digits, space and underscore, at most 16 characters.
_CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")
# Enumerated values: Laterality (0020,0060) R, L (PS3.3 C.7.3.1); Image Laterality (0020,0062) R, L, U, B
# (PS3.3 C.7.6.2.1); Frame Laterality likewise.
LATERALITIES = frozenset({"R", "L", "U", "B"})


def coded_string(value: object, identifiers: Iterable[str] = (), allowed: Iterable[str] | None = None) -> str | None:
    """A Code String value (BodyPartExamined, ViewPosition, Laterality) fit for summaries, labels and prompts, or
    None: it must keep to the CS repertoire and length (PS3.5 6.2), be one of ``allowed`` when given, and hold
    none of the file's identifiers nor anything ID- or date-like. Free text smuggled into a coded element (a name,
    "IGNORE THE ABOVE ...") is dropped, not shown."""
    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip().upper()
    if not text or not _CODE_STRING.fullmatch(text):
        return None
    if allowed is not None and text not in set(allowed):
        return None
    if clean_text(text, identifiers) != text.strip(" ,;:-_^/"):
        return None
    return text


def clean_text(text: object, identifiers: Iterable[str] = (), scrub: bool = True) -> str | None:
    """``text`` without the given identifiers (whole words, any case) and, with ``scrub``, without dates,
    phone numbers, e-mails and ID-like numbers."""
    out = _INVISIBLE.sub(" ", str(text or ""))
    pattern = _identifier_pattern(tuple(identifiers))
    if pattern is not None:
        out = pattern.sub(" ", out)
    if scrub:
        out = _SCRUB.sub(" ", out)
        out = _LABELS.sub(" ", out)  # "MRN", "DOB" left behind once their values are gone
    out = re.sub(r"\s+", " ", out).strip(" ,;:-_^/")
    return out or None


def _as_strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _vr_keyword(dataset: Dataset, tag: BaseTag) -> tuple[str | None, str]:
    """VR and keyword of an element without converting its value (implicit VR: from the dictionary)."""
    raw = dataset.get_item(tag)
    vr = getattr(raw, "VR", None)
    if not vr:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = None
    return vr, keyword_for_tag(tag)


# Per-frame functional groups (PS3.3 C.7.6.16) hold geometry and pixel transforms, one item per frame: walking
# them costs time per frame and finds no identity.
_TECHNICAL_SEQUENCES = frozenset({0x52009230, 0x52009229})  # plain ints: BaseTag.__eq__ is slow


def collect_identifiers(ds: Dataset) -> list[str]:
    """Identifying strings in ``ds`` at any depth: every person-name part and every ID-like value."""
    found: list[str] = []

    def walk(dataset: Dataset) -> None:
        for tag in list(dataset.keys()):
            if tag.group & 1 or int(tag) in _TECHNICAL_SEQUENCES:
                continue  # removed or technical: identities are looked for in the public elements
            vr, keyword = _vr_keyword(dataset, tag)
            if not (vr in ("SQ", "PN") or keyword in _IDENTIFYING or (keyword in _REMOVE and vr in _TEXT_VRS)):
                continue  # decided without converting the value: most elements are numbers and codes
            try:
                elem = dataset[tag]
            except Exception:  # a value pydicom cannot convert: nothing to collect from it
                continue
            if elem.VR == "SQ":
                for item in elem.value or ():
                    walk(item)
            elif elem.VR == "PN":
                for name in _as_strings(elem.value):
                    found.append(name)
                    found.extend(p for p in re.split(r"[\^=]", name) if p)
            elif elem.keyword in _IDENTIFYING or (elem.keyword in _REMOVE and elem.VR in _TEXT_VRS):
                for value in _as_strings(elem.value):
                    found.append(value)
                    if elem.keyword.endswith("Address"):
                        found.extend(p for p in re.split(r"[,;\n\r^]+", value) if p.strip())

    walk(ds)
    return [f.strip() for f in dict.fromkeys(found) if f and f.strip()]


# ---------------------------------------------------------------------------------------------------------
# Dates

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def parse_da(value: object) -> date | None:
    """A DA value (YYYYMMDD) as a date; None if absent or malformed."""
    match = _DA.match(str(value or "").strip())
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def _shift_da(value: object, shift: timedelta) -> str | None:
    parsed = parse_da(value)
    return (parsed + shift).strftime("%Y%m%d") if parsed else None


def _shift_dt(value: object, shift: timedelta) -> str | None:
    text = str(value or "").strip()
    shifted = _shift_da(text[:8], shift) if len(text) >= 8 else None
    return shifted + text[8:] if shifted else None


def age_group(patient_age: object = None, birth_date: date | None = None, study_date: date | None = None) -> str | None:
    """A coarse age group ("<1", "40-49", "90+": HIPAA aggregates ages over 89) from AS or dates."""
    years: float | None = None
    match = re.match(r"^\s*(\d{1,3})\s*([DWMY])\s*$", str(patient_age or ""), re.I)
    if match:
        n, unit = int(match.group(1)), match.group(2).upper()
        years = {"D": n / 365.25, "W": n * 7 / 365.25, "M": n / 12, "Y": float(n)}[unit]
    elif birth_date and study_date and study_date >= birth_date:
        years = (study_date - birth_date).days / 365.25
    if years is None or years > 130:
        return None
    if years < 1:
        return "<1"
    if years >= 90:
        return "90+"
    decade = int(years) // 10 * 10
    return f"{decade}-{decade + 9}"


# ---------------------------------------------------------------------------------------------------------
# The profile


def _is_overlay_or_curve(tag: BaseTag) -> bool:
    # PS3.15 Table E.1-1: Overlay Data/Comments (60xx) and Curve Data (50xx) are removed.
    return 0x5000 <= tag.group <= 0x50FF or 0x6000 <= tag.group <= 0x60FF


class _Context:
    def __init__(self, pseudonymizer: Pseudonymizer, identifiers: list[str], shift: timedelta, key: str | None):
        self.pseudonymizer = pseudonymizer
        self.identifiers = identifiers
        self.shift = shift
        self.patient_key = key
        self.keep_pixel_data = False  # nested items keep their LUTs only when the pixels are kept


def _deid_element(elem: DataElement, ctx: _Context) -> DataElement | None:
    keyword, vr = elem.keyword, elem.VR
    if keyword in _REMOVE or not keyword:
        return None
    if keyword in _EMPTY:
        return DataElement(elem.tag, vr, Sequence() if vr == "SQ" else None)
    if keyword == "PatientID":
        return DataElement(elem.tag, vr, ctx.patient_key or "")
    if vr == "SQ":
        items = [_deid_dataset(item, ctx, ctx.keep_pixel_data) for item in elem.value or ()]
        return DataElement(elem.tag, vr, Sequence(items))
    if vr == "UI":
        values = [ctx.pseudonymizer.uid(v) for v in _as_strings(elem.value)]
        return DataElement(elem.tag, vr, values if len(values) > 1 else (values[0] if values else None))
    if vr in ("DA", "DT"):
        shift = _shift_da if vr == "DA" else _shift_dt
        shifted = [shift(v, ctx.shift) for v in _as_strings(elem.value)]
        if not shifted or any(s is None for s in shifted):
            return None
        return DataElement(elem.tag, vr, shifted if len(shifted) > 1 else shifted[0])
    if vr in ("PN", "AS") or _is_bulk(vr):
        return None
    if vr in _TEXT_VRS:
        if keyword in _SAFE_TEXT:
            # Technical text: only the identifiers found elsewhere in the header are removed (code values
            # such as SNOMED numbers must survive the generic number scrub).
            kept = [clean_text(v, ctx.identifiers, scrub=False) or "" for v in _as_strings(elem.value)]
            if kept == _as_strings(elem.value):
                return elem
            return DataElement(elem.tag, vr, kept if len(kept) > 1 else kept[0])
        if keyword in _CLEAN_TEXT:
            cleaned = clean_text(elem.value, ctx.identifiers)
            return DataElement(elem.tag, vr, cleaned) if cleaned else None
        return None
    return elem


def _is_bulk(vr: str | None) -> bool:
    """Whether a VR (or an ambiguous dictionary VR such as "OB or OW", "US or SS or OW") may hold raw bytes."""
    return bool(vr) and any(v.strip() in _BULK_VRS for v in str(vr).split(" or "))


def _drops_unread(vr: str | None, keyword: str, keep_pixel_data: bool) -> bool:
    """Whether an element is removed whatever its value (so it need not be converted)."""
    if not keyword or keyword in _REMOVE:
        return True
    if keyword in _EMPTY or keyword == "PatientID":
        return False
    if keyword in _PIXEL_KEYWORDS or keyword in _LUT_KEYWORDS:
        return not keep_pixel_data
    if keyword in _BULK_KEPT:
        return False
    if vr in ("PN", "AS") or vr is None or _is_bulk(vr):
        return True
    return vr in _TEXT_VRS and keyword not in _SAFE_TEXT and keyword not in _CLEAN_TEXT


def _deid_dataset(
    src: Dataset, ctx: _Context, keep_pixel_data: bool = False, drop: frozenset[str] = frozenset()
) -> Dataset:
    out = Dataset()
    for number in sorted(int(t) for t in src.keys()):
        tag = BaseTag(number)
        if tag.group & 1 or tag.element == 0 or _is_overlay_or_curve(tag):
            continue
        vr, keyword = _vr_keyword(src, tag)
        if (drop and keyword in drop) or _drops_unread(vr, keyword, keep_pixel_data):
            continue
        try:
            elem = src[tag]
        except Exception:  # an unparseable value is dropped: removing is always allowed (E.1)
            continue
        if elem.keyword in _PIXEL_KEYWORDS or elem.keyword in _LUT_KEYWORDS or elem.keyword in _BULK_KEPT:
            if keep_pixel_data or elem.keyword in _BULK_KEPT:
                out.add(elem)  # the bulk this profile keeps, as is
            continue
        try:
            new = _deid_element(elem, ctx)
        except Exception:
            new = None
        if new is not None:
            out.add(new)
    return out


def deidentify(
    ds: Dataset,
    pseudonymizer: Pseudonymizer,
    keep_pixel_data: bool = False,
    burned_in: str | None = None,
    identifiers: list[str] | None = None,
    drop: Iterable[str] = (),
    pixels_cleaned: bool = False,
) -> Dataset:
    """A de-identified copy of ``ds`` (PS3.15 Annex E basic profile and the options named above).

    ``identifiers`` saves a second walk when the caller already ran ``collect_identifiers``; top-level
    elements named in ``drop`` are left out (removing is always allowed). ``pixels_cleaned`` says the pixels went
    through the burned-in text check (``assistant.imaging.burned_in``) and nothing identifying stayed legible:
    the Clean Pixel Data Option (PS3.15 E.3.1) is then recorded, and ``burned_in`` should be "NO".
    """
    if identifiers is None:
        identifiers = collect_identifiers(ds)
    key = pseudonymizer.patient_key(_first_string(ds, "PatientID"))
    shift = pseudonymizer.date_shift(key or _first_string(ds, "StudyInstanceUID"))
    ctx = _Context(pseudonymizer, identifiers, shift, key)
    ctx.keep_pixel_data = keep_pixel_data
    out = _deid_dataset(ds, ctx, keep_pixel_data, frozenset(drop))
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        out.file_meta = _deid_dataset(meta, ctx)  # type: ignore[assignment]
    burned = (burned_in or _first_string(ds, "BurnedInAnnotation") or "").strip().upper()
    if burned in ("YES", "NO"):
        out.BurnedInAnnotation = burned  # PS3.3 C.7.6.1.1.8: only the enumerated values; unknown stays absent
    elif "BurnedInAnnotation" in out:
        del out.BurnedInAnnotation
    # PS3.15 E.1.1: Patient Identity Removed is YES only if nothing identifying is left. Here that requires:
    # the header went through this profile (every free text, name, private and bulk element removed or cleaned)
    # and, when the source has pixels, Burned In Annotation is known to be NO: either the file says so, or the
    # burned-in text check cleaned the pixels (the caller passes "NO" with pixels_cleaned); an absent or
    # unreadable value does not say the pixels are free of text.
    has_pixels = any(keyword_for_tag(t) in _PIXEL_KEYWORDS for t in ds.keys())
    out.PatientIdentityRemoved = "YES" if burned == "NO" or not has_pixels else "NO"
    out.DeidentificationMethod = "radassist PS3.15 basic; modified dates; patient characteristics"  # LO: 64
    codes = Sequence()
    for value, meaning in (*_METHOD_CODES, *((_CLEAN_PIXEL_CODE,) if pixels_cleaned else ())):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    out.DeidentificationMethodCodeSequence = codes
    out.LongitudinalTemporalInformationModified = "MODIFIED"
    return out


def _first_string(ds: Dataset, keyword: str) -> str | None:
    try:
        values = _as_strings(ds.get(keyword))
    except Exception:
        return None
    return values[0] if values else None


def header_rows(ds: Dataset, max_value_chars: int = 120) -> tuple[tuple[str, str, str], ...]:
    """(tag, keyword, value) rows of ``ds``, nested items indented with ">", bulk values summarised."""
    rows: list[tuple[str, str, str]] = []

    def walk(dataset: Dataset, depth: int) -> None:
        for tag in sorted(dataset.keys()):
            try:
                elem = dataset[tag]
            except Exception:
                continue
            prefix = ">" * depth
            label = f"{prefix}({elem.tag.group:04X},{elem.tag.element:04X})"
            if elem.VR == "SQ":
                items = elem.value or ()
                rows.append((label, elem.keyword, f"<{len(items)} item(s)>"))
                for item in items:
                    walk(item, depth + 1)
            elif elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.keyword in _PIXEL_KEYWORDS:
                length = len(elem.value) if isinstance(elem.value, bytes | bytearray) else 0
                rows.append((label, elem.keyword, f"<{length} bytes>"))
            else:
                text = "\\".join(_as_strings(elem.value))
                if len(text) > max_value_chars:
                    text = text[: max_value_chars - 1] + "…"
                rows.append((label, elem.keyword, text))

    walk(ds, 0)
    return tuple(rows)
