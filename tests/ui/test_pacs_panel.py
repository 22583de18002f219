"""The "Open from PACS" panel's handlers against a real Orthanc: worklist, open (progress, cancel), send back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.assistant.pacs.conftest import PATIENT_ID, Seeded, seeded_pacs  # noqa: F401 - the Orthanc fixture
from ui.pacs_panel import PacsPanel
from ui.workspace import Workspace


@pytest.fixture
def panel(make_runtime: Any, seeded_pacs: Seeded) -> PacsPanel:  # noqa: F811
    runtime = make_runtime(
        pacs_url=seeded_pacs.server.dicomweb_url, pacs_user=seeded_pacs.server.user,
        pacs_password=seeded_pacs.server.password,
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
