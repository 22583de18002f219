"""Open a study from the PACS into ingest, list the patient's priors (and import their SR reports), and send a
report draft back as a DICOM SR.

The de-identification boundary (docs/pacs.md): what arrives from the PACS is de-identified by ingest exactly
like an upload (same budgets, same profile); only the pseudonymous keys and UIDs go further. The real Study
Instance UID the user picked lives in memory (the web app's worklist) or is typed again (the command line);
nothing maps pseudonyms back to real identifiers on disk. To send a report, the real study is found again on
the PACS and proven to be the draft's by recomputing its pseudonym; the SR is then re-identified from the PACS
copy (:func:`assistant.pacs.wire.reidentify_sr`) and sent, after the user has confirmed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.ingest import IngestResult, load_study
from assistant.imaging.records import IngestLimits, Source, format_bytes
from assistant.pacs.client import (
    PacsBudgetError,
    PacsClient,
    PacsError,
    PacsNotFoundError,
    RetrievalGuard,
    SeriesInfo,
    StudyMatch,
    StudyQuery,
)
from assistant.report.draft import StudyRef
from assistant.report.export import create_sr, sr_text
from assistant.report.store import ReportStore
from assistant.settings import Settings
from retrieval.embedding import Embedder
from retrieval.reports import PriorReport

logger = logging.getLogger(__name__)

# Series that hold no images to look at: structured reports, key objects, presentation states, documents,
# raw data (PS3.3 C.7.3.1.1.1 Modality defined terms).
NON_IMAGE_MODALITIES = frozenset({"SR", "KO", "PR", "DOC", "RAW", "REG", "FID", "PLAN", "RWV", "AU", "ECG"})
# Each instance's Part 10 header and meta add bytes beyond the pixels; a margin per instance for the byte cap.
_HEADER_MARGIN = 256 * 1024


@dataclass(frozen=True)
class OpenProgress:
    """Where a retrieval stands: instances and bytes so far, of the expected totals."""

    instances_done: int
    instances_total: int
    bytes_received: int
    bytes_expected: int

    @property
    def fraction(self) -> float:
        if self.bytes_expected > 0:
            return min(1.0, self.bytes_received / self.bytes_expected)
        return self.instances_done / self.instances_total if self.instances_total else 0.0


@dataclass(frozen=True)
class OpenedStudy:
    """A study opened from the PACS: the ingest result (de-identified) and the PACS entry (identified, memory only)."""

    match: StudyMatch
    result: IngestResult
    series: tuple[SeriesInfo, ...]

    @property
    def study_ref(self) -> StudyRef:
        if self.result.study is None:
            raise PacsError("nothing was imported from the study")
        return StudyRef.from_study(self.result.study)


def _budget_error(what: str, size: int, setting: str, limit: int) -> PacsBudgetError:
    return PacsBudgetError(
        f"the {what} was not retrieved: it would decode to {format_bytes(size)}, more than {setting} "
        f"({format_bytes(limit)}) allows; nothing was imported"
    )


def open_study(
    client: PacsClient,
    study_uid: str,
    settings: Settings,
    *,
    series_uid: str | None = None,
    progress: Callable[[OpenProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> OpenedStudy:
    """Retrieve a study's image series (or one series) and ingest them in memory, de-identified like an upload.

    Budgets are checked from the PACS's metadata before a byte of pixels is fetched, and again while the bytes
    arrive; a refusal, a cancel or a failed transfer leaves nothing imported.
    """
    started = time.perf_counter()
    match = client.study(study_uid)
    all_series = client.series(study_uid)
    if series_uid is not None:
        chosen = [s for s in all_series if s.series_instance_uid == series_uid]
        if not chosen:
            raise PacsNotFoundError(f"{client.label} has no such series in that study")
    else:
        chosen = [s for s in all_series if (s.modality or "").upper() not in NON_IMAGE_MODALITIES]
        if not chosen:
            raise PacsNotFoundError(f"{client.label}: the study holds no image series (only reports or documents)")
    limits = IngestLimits.from_settings(settings)
    # Pre-flight from the metadata: count and decoded size, per instance and in all.
    counts = [s.instance_count or 0 for s in chosen]
    if sum(counts) > limits.max_files:
        raise PacsBudgetError(
            f"the study was not retrieved: it holds {sum(counts)} instances, more than ingest_max_files "
            f"({limits.max_files}) allows; open one series"
        )
    from assistant.pacs.wire import dataset_bytes, decoded_bytes

    expected = 0
    total_instances = 0
    for series in chosen:
        for item in client.series_metadata(study_uid, series.series_instance_uid):
            size = decoded_bytes(item)
            total_instances += 1
            if size > limits.max_file_bytes:
                raise _budget_error("series", size, "ingest_max_file_bytes per file", limits.max_file_bytes)
            expected += size
        if expected > limits.max_upload_bytes:
            raise _budget_error("study" if series_uid is None else "series", expected, "ingest_max_upload_bytes",
                                limits.max_upload_bytes)  # fmt: skip
    done = 0

    def on_bytes(received: int) -> None:
        if progress is not None:
            progress(OpenProgress(done, total_instances, received, expected))

    guard = RetrievalGuard(limits.max_upload_bytes + _HEADER_MARGIN * max(total_instances, 1), cancel, on_bytes)
    sources: list[Source] = []
    for number, series in enumerate(chosen, 1):
        label = f"pacs:{client.endpoint.name}/series{series.series_number or number}"
        for ds in client.iter_series(study_uid, series.series_instance_uid, guard):
            done += 1
            sources.append(Source(f"{label}/instance{done}", data=dataset_bytes(ds)))
            on_bytes(guard.received)
    guard.check()
    if not sources:
        raise PacsNotFoundError(f"{client.label} returned no instances for the study")
    result = load_study(sources, settings, limits)
    refused = [f for f in result.errors if f.code in ("file_budget", "upload_budget", "too_many_files")]
    if refused:
        raise PacsBudgetError(f"the study was not imported: {refused[0].error}")
    if result.study is None:
        first = result.errors[0].error if result.errors else "no readable image"
        raise PacsError(f"none of the {len(sources)} retrieved instance(s) could be read: {first}")
    logger.info(
        "pacs %s: opened %d instance(s) of %d series, %.1f MiB received in %.0f ms",
        client.endpoint.name, len(sources), len(chosen), guard.received / 2**20, 1000 * (time.perf_counter() - started),
    )  # fmt: skip
    return OpenedStudy(match=match, result=result, series=tuple(chosen))


# ------------------------------------------------------------------------------------------------ priors


@dataclass(frozen=True)
class PacsPriors:
    """The same patient's earlier studies (identified, for the user's eyes) and their SR reports (de-identified)."""

    studies: tuple[StudyMatch, ...]
    reports: tuple[PriorReport, ...]
    stored: int = 0  # report sections new to the database's prior-report store (``import_pacs_priors``)


def find_priors(
    client: PacsClient, current: StudyMatch, keys: Pseudonymizer, *, import_reports: bool = True, limit: int = 50
) -> PacsPriors:
    """Earlier studies of ``current``'s patient (QIDO by Patient ID), and the reports of those that hold an SR."""
    if not current.patient_id:
        return PacsPriors((), ())
    found = client.find_studies(StudyQuery(patient_id=current.patient_id, limit=limit))
    earlier = tuple(
        m for m in found
        if m.study_instance_uid != current.study_instance_uid
        and (current.study_date is None or m.study_date is None or m.study_date <= current.study_date)
    )  # fmt: skip
    reports: list[PriorReport] = []
    if import_reports:
        for study in earlier:
            reports.extend(_study_reports(client, study, keys))
    logger.info("pacs %s: %d prior study(ies), %d report(s) imported", client.endpoint.name, len(earlier), len(reports))
    return PacsPriors(earlier, tuple(reports))


def import_pacs_priors(
    client: PacsClient, current: StudyMatch, settings: Settings, *, embedder: Embedder | None = None
) -> PacsPriors:
    """:func:`find_priors`, and their SR reports stored in the database's prior-report store
    (:func:`assistant.priors.index_reports`, as ``radassist priors import`` stores them): de-identified, filed under
    the patient's pseudonymous key on the patient's shifted time line, seen at once by the workspace's Prior reports
    panel and by grounded answers. Idempotent: opening the study again adds nothing."""
    from assistant.priors import index_reports

    found = find_priors(client, current, Pseudonymizer.from_settings(settings))
    if not found.reports:
        return found
    result = index_reports(found.reports, settings, embedder or _embedder(settings.embedding_model))
    logger.info("pacs %s: %d prior report section(s) new to the store", client.endpoint.name, result.added)
    return PacsPriors(found.studies, found.reports, stored=result.added)


# Embedders for the prior-report store, by model name: made on first use (a sentence-transformers model loads in
# seconds; every study opened from the PACS would pay that again).
_EMBEDDERS: dict[str, Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def _embedder(model: str | None) -> Embedder:
    import retrieval

    with _EMBEDDERS_LOCK:
        made = _EMBEDDERS.get(str(model))
        if made is None:
            made = _EMBEDDERS[str(model)] = retrieval.create_embedder(model)
        return made


def _study_reports(client: PacsClient, study: StudyMatch, keys: Pseudonymizer) -> list[PriorReport]:
    from assistant.pacs.wire import sr_sections

    out: list[PriorReport] = []
    for series in client.series(study.study_instance_uid):
        if (series.modality or "").upper() != "SR":
            continue
        for _, sop_uid in client.instance_uids(study.study_instance_uid, series.series_instance_uid):
            ds = client.retrieve_instance(study.study_instance_uid, series.series_instance_uid, sop_uid)
            sections = sr_sections(ds)
            key = keys.patient_key(str(ds.get("PatientID", "") or ""))
            date = study.study_date
            if not sections or key is None or date is None:
                continue  # nothing to compare with, or no patient to file it under
            out.append(
                PriorReport(
                    report_id=keys.uid(sop_uid)[-12:],
                    patient_key=key,
                    study_date=date + keys.date_shift(key),  # on the patient's shifted time line, as ingest
                    sections=sections,
                    modality=next((m.upper() for m in study.modalities if m.upper() not in NON_IMAGE_MODALITIES), ""),
                )
            )
    return out


# ------------------------------------------------------------------------------------------------ send back


@dataclass(frozen=True)
class SentReport:
    """What the PACS now holds: the SR's SOP Instance UID (a radassist UID, not an identifier) and its study."""

    sop_instance_uid: str
    series_instance_uid: str
    text: str


def resolve_study(client: PacsClient, ref: StudyRef, keys: Pseudonymizer, study_uid: str | None = None) -> StudyMatch:
    """The PACS study whose pseudonym is ``ref``'s: ``study_uid`` when given (checked), else searched by the
    real study date (the shifted date moved back by the patient's shift) and proven by recomputing the pseudonym."""
    if not ref.study_instance_uid:
        raise PacsError("the draft is not about a study (made without one): it cannot be filed on the PACS")
    if study_uid is not None:
        match = client.study(study_uid)
        if keys.uid(match.study_instance_uid) != ref.study_instance_uid:
            raise PacsError("that study is not the one the draft reports (its pseudonym differs): nothing was sent")
        return match
    query = StudyQuery(limit=1000)
    if ref.study_date is not None and ref.patient_key:
        real = ref.study_date - keys.date_shift(ref.patient_key)
        query = StudyQuery(date_from=real, date_to=real, limit=1000)
    for match in client.find_studies(query):
        if keys.uid(match.study_instance_uid) == ref.study_instance_uid:
            return match
    raise PacsNotFoundError(
        f"{client.label} holds no study that this draft reports (was it opened from another PACS?); "
        "give the study's UID with --study"
    )


def _real_uids(client: PacsClient, study_uid: str, keys: Pseudonymizer) -> tuple[dict[str, str], dict[str, Any]]:
    """pseudonym → real UID for the study, its series and instances; and one instance's metadata (the PACS copy)."""
    mapping = {keys.uid(study_uid): study_uid}
    copy: dict[str, Any] = {}
    for series in client.series(study_uid):
        mapping[keys.uid(series.series_instance_uid)] = series.series_instance_uid
        for _, sop in client.instance_uids(study_uid, series.series_instance_uid):
            mapping[keys.uid(sop)] = sop
        if not copy and (series.modality or "").upper() not in NON_IMAGE_MODALITIES:
            items = client.series_metadata(study_uid, series.series_instance_uid)
            copy = items[0] if items else {}
    return mapping, copy


def prepare_report(
    client: PacsClient, store: ReportStore, report_id: str, keys: Pseudonymizer, study_uid: str | None = None
) -> tuple[Any, StudyMatch, str]:
    """The identified SR ready to send, the PACS study it goes to, and its text (for the confirmation)."""
    from assistant.pacs.wire import patient_study_from_metadata, reidentify_sr

    current = store.current(report_id)
    report = current.report
    if report.study is None:
        raise PacsError("the draft is not about a study (made without one): it cannot be filed on the PACS")
    match = resolve_study(client, report.study, keys, study_uid)
    mapping, copy = _real_uids(client, match.study_instance_uid, keys)
    if not copy:
        raise PacsError(f"{client.label} returned no metadata for the study's images: nothing was sent")
    sr = create_sr(report, current.number, keys)
    text = sr_text(sr)
    try:
        sr = reidentify_sr(sr, patient_study_from_metadata(copy), mapping)
    except KeyError as exc:
        raise PacsError(
            "the draft references an image the PACS copy of the study does not hold: nothing was sent"
        ) from exc
    return sr, match, text


def _check_stored(client: PacsClient, study_uid: str, series_uid: str, sop_uid: str) -> None:
    """The PACS holds the SR it said it stored. A PACS may acknowledge an instance that a filter of its own then
    dropped (Orthanc 1.10 with the DICOMweb plugin answers STOW-RS with the instance referenced as stored when its
    ``ReceivedInstanceFilter`` refused it): asking again (QIDO-RS) is the only proof."""
    try:
        held = {sop for _, sop in client.instance_uids(study_uid, series_uid)}
    except PacsNotFoundError:
        held = set()
    if sop_uid not in held:
        raise PacsError(
            f"{client.label} acknowledged the report but does not hold it (it was refused on the PACS, e.g. by a "
            "filter on incoming instances): nothing was filed; the draft is unchanged and can be sent again once "
            "the PACS accepts it"
        )


def send_report(
    client: PacsClient,
    store: ReportStore,
    report_id: str,
    keys: Pseudonymizer,
    *,
    study_uid: str | None = None,
    confirm: Callable[[StudyMatch, str], bool] | None = None,
) -> SentReport:
    """Store the draft as a DICOM SR in its study on the PACS (STOW-RS), once ``confirm`` (shown the study and
    the text) says yes. Returns the stored SR's UIDs."""
    sr, match, text = prepare_report(client, store, report_id, keys, study_uid)
    if confirm is not None and not confirm(match, text):
        raise PacsError("not sent: the send was not confirmed")
    client.store([sr], study_uid=match.study_instance_uid)
    _check_stored(client, match.study_instance_uid, str(sr.SeriesInstanceUID), str(sr.SOPInstanceUID))
    logger.info("pacs %s: report %s stored as an SR", client.endpoint.name, report_id)
    return SentReport(str(sr.SOPInstanceUID), str(sr.SeriesInstanceUID), text)
