"""``radassist report ...`` through its own argparse registration (rules only: no engine is started)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pydicom
import pytest

from assistant.cli import report as cli_report
from assistant.settings import Settings, load_settings


def _run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_report.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args, settings))


def test_new_dictate_show_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    assert _run(settings, "report", "new", "--template", "ct_chest") == 0
    report_id = capsys.readouterr().out.strip()
    assert report_id.startswith("r-")
    assert _run(settings, "report", "dictate", report_id, "Never smoker. 7 mm solid nodule RUL.", "--no-llm") == 0
    out = capsys.readouterr().out
    assert "+Lungs and airways: 7 mm solid nodule RUL." in out and "Version 2" in out
    assert _run(settings, "report", "dictate", report_id, "Tortuous thing.", "--no-llm") == 1
    assert "could not be placed" in capsys.readouterr().out
    assert _run(settings, "report", "edit", report_id, "delete the nodule sentence") == 0
    assert _run(settings, "report", "undo", report_id) == 0
    capsys.readouterr()
    assert _run(settings, "report", "show", report_id) == 0
    shown = capsys.readouterr().out
    assert "Lungs and airways: 7 mm solid nodule RUL." in shown and "Fleischner" in shown
    assert "Missing: Clinical indication" not in shown  # "Never smoker." went to the indication
    assert _run(settings, "report", "show", report_id, "--history") == 0
    actions = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert actions == ["new", "dictate", "edit", "undo"]  # the unplaced dictation made no version
    out_path = tmp_path / "r.dcm"
    assert _run(settings, "report", "export", report_id, "--format", "sr", "--out", str(out_path)) == 0
    assert pydicom.dcmread(out_path).Modality == "SR"


def test_new_from_priors_file_fills_comparison(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    priors = tmp_path / "priors.csv"
    priors.write_text(
        "report_id,patient_key,date,findings,impression\n"
        "a,demo-1,2020-01-01,No effusion.,Normal.\n"
        "b,demo-2,2021-01-01,Large effusion.,Effusion.\n",
        encoding="utf-8",
    )
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    argv = ["report", "new", "--template", "cxr", "--patient-key", "demo-1", "--priors", str(priors)]
    assert _run(settings, *argv) == 0
    report_id = capsys.readouterr().out.strip()
    assert _run(settings, "report", "show", report_id) == 0
    shown = capsys.readouterr().out
    assert "Prior report of 2020-01-01 (report a)." in shown and "report b" not in shown
