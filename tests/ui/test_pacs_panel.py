"""The "Open from PACS" panel's handlers against a real Orthanc: worklist, open (progress, cancel), send back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assistant import priors_for_study
from tests.assistant.pacs.conftest import (  # noqa: F401 - seeded_pacs: the Orthanc fixture
    PATIENT_ID,
    PRIOR_ACCESSION,
    PRIOR_FINDING,
    Seeded,
    seeded_pacs,
)
from ui.pacs_panel import PacsPanel
from ui.workspace import Workspace


@pytest.fixture
def panel(make_runtime: Any, seeded_pacs: Seeded) -> PacsPanel:  # noqa: F811
    runtime = make_runtime(
        pacs_url=seeded_pacs.server.dicomweb_url, pacs_user=seeded_pacs.server.user,
        pacs_password=seeded_pacs.server.password, embedding_model="hashing-256",
    )  # fmt: skip
    return PacsPanel(Workspace(runtime))


def test_the_worklist_shows_the_patients_studies_to_the_user(panel: PacsPanel) -> None:
    rows, choices, status, worklist = panel.search("default", PATIENT_ID, "", "", "", "", "")
    assert status == "2 study(ies) found."
    assert rows[0][2] == PATIENT_ID and rows[0][1] == "Testpatient Carla"
    assert len(worklist) == 2
    _, _, status, _ = panel.search("default", "", "", "", "not-a-date", "", "")
    assert "is not a date" in status


def test_open_shows_the_study_and_a_report_goes_back_after_confirmation(panel: PacsPanel, seeded_pacs: Seeded) -> None:  # noqa: F811
    fractions: list[float] = []
    status, priors, session, opened, *_ = panel.open(
        "default", seeded_pacs.ct_study, None, progress=lambda f, desc="": fractions.append(f)
    )
    assert status.startswith("Opened 6 image(s) in 1 series") and session.study is not None
    assert "ACC-CT-2019" in priors  # the earlier study, listed for the user
    assert fractions and fractions[-1] == pytest.approx(1.0, abs=0.05)
    assert opened["study_uid"] == seeded_pacs.ct_study
    panel.ws.new_report(session, "ct_chest")
    box, confirmation = panel.ask_send(session, opened)
    assert box.visible and "Testpatient Carla" in confirmation and "FINDINGS" in confirmation
    box, status = panel.send(session, opened)
    assert status.startswith("✅ Stored on the PACS as DICOM SR")
    sop = status.split("`")[1]
    assert seeded_pacs.server.get(f"/dicom-web/studies/{seeded_pacs.ct_study}/instances?SOPInstanceUID={sop}").json()


def test_open_imports_the_earlier_sr_reports_into_the_prior_store_de_identified(
    panel: PacsPanel,
    seeded_pacs: Seeded,  # noqa: F811
) -> None:
    settings = panel.settings
    status, priors, session, _, *_ = panel.open("default", seeded_pacs.ct_study, None)
    assert status.startswith("Opened") and "1 earlier report(s) imported" in priors
    # What the workspace's Prior reports panel (and a grounded answer) reads: the database, by the study's key.
    shown = priors_for_study(settings, session.study)
    assert len(shown) == 1 and shown[0].modality == "CT"
    assert "Small pulmonary nodule" in shown[0].impression
    assert shown[0].study_date < session.study.study_date  # the prior, on the patient's shifted time line
    assert panel.open("default", seeded_pacs.ct_study, session)[1].count("imported") == 1  # again: nothing doubled
    assert len(priors_for_study(settings, session.study)) == 1
    # Nothing identifying reached the database: dump every table.
    dump = _dump(Path(settings.db_path))
    assert PRIOR_FINDING.split(" in ")[0] in dump  # the report text is there ("A 6 mm nodule")...
    for identifier in (PATIENT_ID, "Testpatient", "Carla", PRIOR_ACCESSION, "ACC-CT-2020", "2019-01-10", "20190110",
                       seeded_pacs.prior_study, seeded_pacs.ct_study):  # fmt: skip
        assert identifier not in dump  # ...but not the name, IDs, real dates or UIDs


def _dump(db: Path) -> str:
    """Every row of every table of the SQLite database, as text (blobs as Latin-1)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "prior_chunks" in tables
        rows = [row for t in tables for row in conn.execute(f'SELECT * FROM "{t}"')]  # noqa: S608 - table names
    return "\n".join(" | ".join(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row) for row in rows)


def test_cancel_stops_an_open_and_nothing_is_imported(panel: PacsPanel, seeded_pacs: Seeded) -> None:  # noqa: F811
    session = panel.ws.session(None)
    assert panel.cancel(session) == "Nothing is being retrieved."
    status, _, session, _, *_ = panel.open(
        "default", seeded_pacs.ct_study, session, progress=lambda f, desc="": panel.cancel(session)
    )
    assert "cancelled" in status and session.study is None


def test_the_app_builds_with_the_panel(make_runtime: Any, seeded_pacs: Seeded, tmp_path: Path) -> None:  # noqa: F811
    from ui.app import create_app

    runtime = make_runtime(pacs_url=seeded_pacs.server.dicomweb_url, pacs_user="u", pacs_password="p")
    app = create_app(runtime)
    assert any(getattr(b, "elem_id", None) == "ra-pacs-open" for b in app.blocks.values())
