"""The web app's DICOM SR export carries the de-identification date shift of the patient (never the real day)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydicom

from assistant.imaging.deid import Pseudonymizer
from assistant.report.draft import StudyRef
from assistant.report.service import DraftingService
from ui.workspace import Workspace

KEY = "P-0123456789abcdef0123"


def test_the_web_sr_export_dates_the_sr_with_the_patients_shift(make_runtime: Any) -> None:
    ws = Workspace(make_runtime([]))
    s = ws.restore(None, None, "")[2]
    report = DraftingService(ws.store).create("cxr", StudyRef("2.25.77", KEY, "CR", "CHEST")).report
    s.report_id = report.report_id
    path, status = ws.export_report(s, "sr", owner="")
    assert path is not None, status
    ds = pydicom.dcmread(path)
    shifted = dt.datetime.now() + Pseudonymizer.from_data_dir(ws.data_dir).date_shift(KEY)
    assert ds.ContentDate in {shifted.strftime("%Y%m%d"), (shifted + dt.timedelta(days=1)).strftime("%Y%m%d")}
    assert ds.InstanceCreationDate == ds.ContentDate
    assert ds.ContentDate != dt.date.today().strftime("%Y%m%d")
