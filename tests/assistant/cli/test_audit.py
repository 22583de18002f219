"""``radassist audit export`` in-process through ``assistant.cli.main.main``, on a temp data dir."""

from __future__ import annotations

import csv
import io
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from assistant.cli.main import main
from assistant.store.audit import AuditLog, AuditRecord


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RADASSIST_CONFIG", "RADASSIST_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    audit = AuditLog(data / "radassist.sqlite3")
    for when, mode, outcome in (
        ("2025-01-31T23:59:59", "chat", "ok"),
        ("2025-02-01T00:00:00", "guideline", "ok"),
        ("2025-02-28T23:00:00", "grounded", "LLMUnavailableError"),
        ("2025-03-01T00:00:00", "report", "ok"),
    ):
        audit.record(AuditRecord(mode, f"{mode}@1", "smollm", ("c1", "c2"), 120, 480, outcome, ts=_ts(when)))
    audit.close()
    return data


def radassist(data_dir: Path, *argv: str) -> int:
    return main(["--data-dir", str(data_dir), "audit", "export", *argv])


def test_a_month_as_csv_on_stdout(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert radassist(data_dir, "--since", "2025-02-01", "--until", "2025-02-28", "--format", "csv") == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["mode"] for r in rows] == ["guideline", "grounded"]  # --until a day: that whole day included
    assert rows[1] == {
        "id": "3", "time": "2025-02-28T23:00:00.000+00:00", "mode": "grounded", "template": "grounded@1",
        "model": "smollm", "chunk_ids": "c1 c2", "latency_ms": "120", "output_chars": "480",
        "outcome": "LLMUnavailableError",
    }  # fmt: skip
    assert "2 audit row(s) exported" in err


def test_jsonl_to_an_owner_only_file_with_an_open_end(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit.jsonl"
    assert radassist(data_dir, "--since", "2025-02-28T22:00+00:00", "--format", "jsonl", "--out", str(out)) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["mode"], r["chunk_ids"]) for r in rows] == [("grounded", ["c1", "c2"]), ("report", ["c1", "c2"])]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert capsys.readouterr().out == ""  # nothing on stdout when written to a file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_an_offset_moves_the_period(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Midnight in UTC+01:00 is 23:00 UTC the day before.
    assert radassist(data_dir, "--since", "2025-03-01T00:00+01:00", "--format", "jsonl") == 0
    assert [json.loads(line)["mode"] for line in capsys.readouterr().out.splitlines()] == ["grounded", "report"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--since", "2025-13-01"), "--since: '2025-13-01' is not a date (YYYY-MM-DD"),
        (("--since", "last tuesday"), "--since: 'last tuesday' is not a date"),
        (("--since", "2025-02-01", "--until", "2025-02-30"), "--until: '2025-02-30' is not a date"),
        (("--since", "2025-02-01", "--until", "2025-01-01"), "--until (2025-01-01) must be after --since"),
    ],
)
def test_bad_dates_are_clear_errors(
    data_dir: Path, argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert radassist(data_dir, *argv, "--format", "csv") == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err


def test_no_database_yet_exports_a_header_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert radassist(tmp_path / "empty", "--since", "2025-01-01", "--format", "csv") == 0
    assert capsys.readouterr().out.strip() == "id,time,mode,template,model,chunk_ids,latency_ms,output_chars,outcome"
    assert not (tmp_path / "empty").exists()


def test_an_unwritable_out_folder_is_a_clear_error(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "audit.csv"
    assert radassist(data_dir, "--since", "2025-01-01", "--format", "csv", "--out", str(out)) == 2
    assert "--out: the folder" in capsys.readouterr().err


def test_the_format_is_required_and_checked(data_dir: Path) -> None:
    with pytest.raises(SystemExit):
        radassist(data_dir, "--since", "2025-01-01", "--format", "xlsx")
