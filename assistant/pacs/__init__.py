"""PACS connection over DICOMweb: find studies (QIDO-RS), open them into ingest (WADO-RS), import the priors'
SR reports, and send a report draft back as a DICOM SR (STOW-RS). See docs/pacs.md.

Public names
------------
- ``PacsClient(endpoint)``: one configured ``assistant.settings.PacsEndpoint``; ``find_studies(StudyQuery)``,
  ``study(uid)``, ``series(uid)``; errors are ``PacsError`` subclasses (unreachable, auth, not found, timeout,
  budget, cancelled) with messages safe to show.
- ``open_study(client, study_uid, settings, series_uid=, progress=, cancel=) -> OpenedStudy``: retrieved in
  memory and ingested de-identified, under the ingest budgets; nothing is imported on any failure.
- ``find_priors(client, study, keys) -> PacsPriors``: the patient's earlier studies and their SR reports.
- ``import_pacs_priors(client, study, settings) -> PacsPriors``: the same, the reports stored in the database's
  prior-report store (as ``radassist priors import`` stores them).
- ``prepare_report`` / ``send_report(client, store, report_id, keys, study_uid=, confirm=) -> SentReport``.
"""

from assistant.pacs.client import (
    PacsAuthError,
    PacsBudgetError,
    PacsCancelledError,
    PacsClient,
    PacsError,
    PacsNotFoundError,
    PacsTimeoutError,
    PacsUnreachableError,
    SeriesInfo,
    StudyMatch,
    StudyQuery,
)
from assistant.pacs.service import (
    OpenedStudy,
    OpenProgress,
    PacsPriors,
    SentReport,
    find_priors,
    import_pacs_priors,
    open_study,
    prepare_report,
    resolve_study,
    send_report,
)

__all__ = [
    "OpenProgress",
    "OpenedStudy",
    "PacsAuthError",
    "PacsBudgetError",
    "PacsCancelledError",
    "PacsClient",
    "PacsError",
    "PacsNotFoundError",
    "PacsPriors",
    "PacsTimeoutError",
    "PacsUnreachableError",
    "SentReport",
    "SeriesInfo",
    "StudyMatch",
    "StudyQuery",
    "find_priors",
    "import_pacs_priors",
    "open_study",
    "prepare_report",
    "resolve_study",
    "send_report",
]
