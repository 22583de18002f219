"""The patient's prior reports, linked to studies and de-identified on the way in.

``import_priors(path, settings)`` reads a CSV/JSON/JSONL of reports with raw identifiers (patient ID / MRN,
accession, names) and indexes them under the same pseudonymous keys as ingest: the patient ID becomes the
``Pseudonymizer.patient_key`` of the same salt, the accession a keyed pseudonym, dates move by the patient's own
date shift (PS3.15 E.3.6, as the study's dates do), and the report text loses the row's identifiers and anything
that looks like a name, ID, date, phone number or e-mail. No raw identifier is ever written.

They are stored in the database (:class:`PriorReportStore`, ``settings.database``): every app replica finds a report
as soon as one imported it, ranked per question over that patient's sections only.
"""

from assistant.priors.importer import (
    RAW_PATIENT_COLUMNS,
    ImportResult,
    deidentify_rows,
    import_priors,
    index_reports,
    prior_index_dir,
    secure_tree,
)
from assistant.priors.store import PriorReportStore, open_prior_store

__all__ = [
    "RAW_PATIENT_COLUMNS",
    "ImportResult",
    "PriorReportStore",
    "deidentify_rows",
    "import_priors",
    "index_reports",
    "open_prior_store",
    "prior_index_dir",
    "secure_tree",
]
