"""Fixtures of the report-drafting tests: a real SQLite store, real IU X-ray reports as priors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.report.store import ReportStore
from retrieval.reports import PriorReport, SyntheticPatients, read_reports


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(tmp_path / "radassist.sqlite3") as s:
        yield s


@pytest.fixture(scope="session")
def iu_reports(shared_dir: Path) -> list[PriorReport]:
    """The 3,851 real IU chest X-ray reports under 400 synthetic patient keys (several reports each)."""
    synthetic = SyntheticPatients(n_patients=400, seed="report-tests", start=dt.date(2012, 1, 1))
    return read_reports(shared_dir / "data" / "iu_xray" / "indiana_reports.csv", synthetic=synthetic)
