"""Fixtures of the report-drafting tests: a real store (on SQLite and on PostgreSQL), real IU X-ray reports as
priors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.report.store import ReportStore
from retrieval.reports import PriorReport, SyntheticPatients, read_reports


@pytest.fixture()
def store(database: Path | str) -> Iterator[ReportStore]:
    """A report store on each database: the SQLite file, then a new database on the throwaway PostgreSQL."""
    with ReportStore(database) as s:
        yield s


@pytest.fixture(scope="session")
def iu_reports(shared_dir: Path) -> list[PriorReport]:
    """The 3,851 real IU chest X-ray reports under 400 synthetic patient keys (several reports each)."""
    synthetic = SyntheticPatients(n_patients=400, seed="report-tests", start=dt.date(2012, 1, 1))
    return read_reports(shared_dir / "data" / "iu_xray" / "indiana_reports.csv", synthetic=synthetic)
