"""Prior reports in the database (SQLite and PostgreSQL): found by patient key, ranked per query over that patient's
sections only, seen at once by another replica on the same database, and moved in from an old index folder."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

import retrieval
from assistant.errors import RetrievalError
from assistant.priors import import_priors, open_prior_store
from assistant.priors.store import PriorReportStore
from assistant.runtime import create_prior_reports
from assistant.settings import Settings, load_settings
from assistant.store.db import create_database_engine

EMBEDDER = retrieval.HashingEmbedder(128)
MINE = retrieval.PriorReport(
    "A-1", "P-aaaaaaaaaaaaaaaaaaaa", dt.date(2020, 3, 1),
    {"findings": "Solid nodule in the right upper lobe measuring 6 mm.", "impression": "RUL nodule 6 mm."}, "CT",
)  # fmt: skip
MINE_LATER = retrieval.PriorReport(
    "A-2", MINE.patient_key, dt.date(2021, 3, 1), {"findings": "Clear lungs.", "impression": "No acute disease."}, "CR"
)
# Another patient's report: by far the best lexical match for a nodule-growth question.
THEIRS = retrieval.PriorReport(
    "B-1", "P-bbbbbbbbbbbbbbbbbbbb", dt.date(2020, 6, 1),
    {"findings": "Right upper lobe solid nodule grew from 6 mm to 9 mm: right upper lobe nodule growth.",
     "impression": "Growing right upper lobe nodule 9 mm."}, "CT",
)  # fmt: skip
QUESTION = "Did the right upper lobe solid nodule grow?"


def settings_on(database: Path | str, data_dir: Path) -> Settings:
    url = f"sqlite:///{database}" if isinstance(database, Path) else database
    return load_settings(env={}, data_dir=data_dir, database_url=url, embedding_model="hashing-128")


def test_reports_are_found_by_patient_key_and_never_anothers(database: Path | str) -> None:
    with PriorReportStore(database) as store:
        assert not store.has_reports() and store.reports_for(MINE.patient_key) == []
        added = store.add([MINE, MINE_LATER, THEIRS], EMBEDDER)
        assert added == 6 and store.has_reports()
        reports = store.reports_for(MINE.patient_key, EMBEDDER.model_id)
        assert [(r.report_id, r.study_date, r.modality) for r in reports] == [
            ("A-2", dt.date(2021, 3, 1), "CR"), ("A-1", dt.date(2020, 3, 1), "CT"),
        ]  # fmt: skip
        assert reports[1].sections == dict(MINE.sections)
        hits = store.search(QUESTION, MINE.patient_key, EMBEDDER, k=5)
        assert hits and {h.metadata["patient_key"] for h in hits} == {MINE.patient_key}
        assert hits[0].metadata["report_id"] == "A-1" and all("9 mm" not in h.text for h in hits)
        # The other patient's report is found for that patient (so it was a real candidate), and first there.
        theirs = store.search(QUESTION, THEIRS.patient_key, EMBEDDER, k=5)
        assert theirs[0].metadata["report_id"] == "B-1" and "9 mm" in " ".join(h.text for h in theirs)
        assert store.search(QUESTION, "P-nobody", EMBEDDER) == []
        with pytest.raises(RetrievalError, match="patient key is required"):
            store.search(QUESTION, "", EMBEDDER)
        stats = store.stats()
        assert (stats["chunks"], stats["reports"], stats["patients"]) == (6, 3, 2)
        assert stats["embedding_model"] == EMBEDDER.model_id and stats["dim"] == 128


def test_re_import_adds_nothing_and_another_model_embeds_the_sections_again(database: Path | str) -> None:
    with PriorReportStore(database) as store:
        assert store.add([MINE, THEIRS], EMBEDDER) == 4
        assert store.add([MINE, THEIRS], EMBEDDER) == 0 and store.stats()["chunks"] == 4
        other = retrieval.HashingEmbedder(64)
        with pytest.raises(RetrievalError, match="embedded with hashing-bow-v1-128"):
            store.search(QUESTION, MINE.patient_key, other)
        with pytest.raises(RetrievalError, match="import them again"):
            store.reports_for(MINE.patient_key, other.model_id)
        assert store.add([MINE], other) == 0  # not new, but embedded anew with the configured model
        assert store.search(QUESTION, MINE.patient_key, other)[0].metadata["report_id"] == "A-1"
        assert store.stats()["chunks"] == 4
        assert store.add([MINE_LATER], EMBEDDER, replace=True) == 2  # `index build`: everything replaced
        assert store.stats()["patients"] == 1 and store.reports_for(THEIRS.patient_key) == []


def test_two_replicas_on_one_postgresql_see_an_import_at_once(postgres_url: str, tmp_path: Path) -> None:
    replica_a = settings_on(postgres_url, tmp_path / "replica-a")
    replica_b = settings_on(postgres_url, tmp_path / "replica-b")
    priors_b = create_prior_reports(replica_b, EMBEDDER)
    assert not priors_b.available() and priors_b.reports_for(MINE.patient_key) == []  # B opened before the import
    rows = [
        {"patient_id": "MRN48213977", "patient_name": "Jadwiga Kowalski", "accession": "ACC7734521",
         "date": "2003-11-02", "modality": "CT", "findings": MINE.sections["findings"],
         "impression": MINE.sections["impression"]},
        {"patient_id": "MRN55500011", "patient_name": "Omar Haddad", "accession": "ACC9911002",
         "date": "2003-12-20", "modality": "CT", "findings": THEIRS.sections["findings"],
         "impression": THEIRS.sections["impression"]},
    ]  # fmt: skip
    source = tmp_path / "priors.csv"
    with open(source, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = import_priors(source, replica_a, EMBEDDER)
    assert result.added == 4 and "replica" not in str(result.path)  # stored on the server, not beside A
    assert priors_b.available()
    engine = create_database_engine(postgres_url)
    try:
        with engine.connect() as conn:
            patient_keys = list(conn.execute(sa.text("SELECT DISTINCT patient_key FROM prior_chunks")).scalars())
    finally:
        engine.dispose()
    assert len(patient_keys) == 2 and all(k.startswith("P-") for k in patient_keys)
    for key in patient_keys:
        (report,) = priors_b.reports_for(key)  # no rebuild, no restart: the next read sees it
        hits = priors_b.search(QUESTION, key, k=5)
        assert hits and {h.metadata["patient_key"] for h in hits} == {key}
        assert {h.metadata["report_id"] for h in hits} == {report.report_id}
    assert not list(tmp_path.rglob("*.sqlite3")) and not (tmp_path / "replica-a" / "index" / "reports").exists()


def test_an_old_prior_report_index_folder_is_moved_into_the_database_on_first_use(
    database: Path | str, tmp_path: Path
) -> None:
    settings = settings_on(database, tmp_path / "data")
    folder = settings.data_dir / "index" / "reports"
    retrieval.PriorReportIndex.build([MINE, THEIRS], EMBEDDER, folder)
    before = retrieval.PriorReportIndex.load(folder, EMBEDDER).search(QUESTION, MINE.patient_key, 5)
    priors = create_prior_reports(settings, EMBEDDER)
    assert priors.available()
    (report,) = priors.reports_for(MINE.patient_key)
    assert (report.report_id, report.modality, dict(report.sections)) == ("A-1", "CT", dict(MINE.sections))
    after = priors.search(QUESTION, MINE.patient_key, k=5)
    assert [h.id for h in after] == [h.id for h in before]  # the folder's own vectors, ranked as before
    assert not folder.exists() and retrieval.HybridIndex.exists(folder.with_name("reports.migrated"))
    # A second start finds nothing to move, and the reports stay once.
    with open_prior_store(settings) as again:
        assert again.stats()["chunks"] == 4 and again.stats()["reports"] == 2


def test_imported_rows_hold_keys_and_scrubbed_text_only(database: Path | str, tmp_path: Path) -> None:
    settings = settings_on(database, tmp_path / "data")
    source = tmp_path / "p.csv"
    source.write_text(
        "patient_id,patient_name,accession,date,text\n"
        'MRN48213977,Jadwiga Kowalski,ACC7734521,2003-11-02,"FINDINGS: Nodule 6 mm, Jadwiga Kowalski. '
        'Signed by: Dr. A. Brennan"\n',
        encoding="utf-8",
    )
    import_priors(source, settings, EMBEDDER)
    engine = create_database_engine(settings.database)
    try:
        with engine.connect() as conn:
            dumped = " ".join(
                str(value)
                for table in ("prior_reports", "prior_chunks")
                for row in conn.execute(sa.text(f"SELECT * FROM {table}"))  # noqa: S608 (fixed names)
                for value in row
                if not isinstance(value, bytes)
            )
    finally:
        engine.dispose()
    assert "Nodule 6 mm" in dumped
    for secret in ("48213977", "Kowalski", "Jadwiga", "7734521", "Brennan", "2003-11-02"):
        assert secret not in dumped


def test_report_drafting_takes_its_priors_from_the_database(tmp_path: Path) -> None:
    from assistant.cli.report import _imported_priors
    from assistant.report.priors import most_recent_prior

    settings = load_settings(env={}, data_dir=tmp_path / "data", embedding_model="hashing-128")
    assert _imported_priors(settings) is None  # nothing imported: no prior source
    with open_prior_store(settings) as store:
        store.add([MINE, MINE_LATER, THEIRS], EMBEDDER)
    source = _imported_priors(settings)
    assert source is not None
    found = most_recent_prior(source, MINE.patient_key, dt.date(2021, 1, 1))
    assert found is not None and found.report_id == "A-1"


def test_index_stats_moves_an_old_folder_in_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from assistant.cli import index as cli_index

    settings = load_settings(env={}, data_dir=tmp_path / "data", embedding_model="hashing-128")
    folder = settings.data_dir / "index" / "reports"
    retrieval.PriorReportIndex.build([MINE, MINE_LATER, THEIRS], EMBEDDER, folder)
    parser = argparse.ArgumentParser(prog="radassist")
    cli_index.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["index", "stats", "--json", "--corpus", "reports"])
    assert args.func(args, settings) == 0
    stats = json.loads(capsys.readouterr().out)["reports"]
    assert (stats["chunks"], stats["reports"], stats["patients"]) == (6, 3, 2)
    assert stats["embedding_model"] == EMBEDDER.model_id and stats["path"] == str(settings.db_path)
    assert not folder.exists() and (folder.parent / "reports.migrated").is_dir()


def test_two_radassist_processes_share_priors_through_postgresql(
    postgres_url: str, radassist_bin: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    import json
    import subprocess

    def radassist(data: str, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {**cli_env, "RADASSIST_DATA_DIR": str(tmp_path / data), "RADASSIST_DATABASE_URL": postgres_url,
               "RADASSIST_EMBEDDING_MODEL": "hashing-128"}  # fmt: skip
        return subprocess.run([str(radassist_bin), *argv], capture_output=True, text=True, env=env, timeout=300)

    source = tmp_path / "priors.jsonl"
    source.write_text("\n".join(json.dumps(row) for row in [
        {"patient_id": "MRN48213977", "date": "2003-11-02", "findings": MINE.sections["findings"]},
        {"patient_id": "MRN55500011", "date": "2003-12-20", "findings": THEIRS.sections["findings"]},
    ]) + "\n", encoding="utf-8")  # fmt: skip
    imported = radassist("replica-a", "priors", "import", "--json", str(source))
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["added"] == 2
    engine = create_database_engine(postgres_url)
    try:
        with engine.connect() as conn:
            keyed = {str(k): str(t) for k, t in conn.execute(sa.text("SELECT patient_key, text FROM prior_chunks"))}
    finally:
        engine.dispose()
    mine = next(key for key, text in keyed.items() if "6 mm" in text and "9 mm" not in text)
    found = radassist("replica-b", "index", "search", "--json", "--corpus", "reports", "--patient", mine, QUESTION)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert hits and {h["metadata"]["patient_key"] for h in hits} == {mine}
    assert all("9 mm" not in h["text"] for h in hits)  # the other patient's, the best lexical match, never
    stats = radassist("replica-b", "index", "stats", "--json", "--corpus", "reports")
    assert json.loads(stats.stdout)["reports"]["chunks"] == 2 and "MRN" not in imported.stdout + found.stdout
    assert not list(tmp_path.rglob("*.sqlite3"))  # on the server, not beside either process
