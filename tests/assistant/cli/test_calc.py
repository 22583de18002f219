"""``radassist calc``: help lists the inputs, JSON output, exit 2 with one line on bad input."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import calc as cli_calc
from assistant.settings import Settings
from tests.support.paths import REPO


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_calc.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args, Settings()))


def test_calc_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(["calc", "fleischner", "--composition", "solid", "--size-mm", "7", "--risk", "high", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["category"] == "solid single 6-8 mm high risk"
    assert data["section_id"] == "fleischner-2017/solid-single"
    assert data["inputs"]["risk"] == "high"


@pytest.mark.parametrize(
    "argv",
    [
        ["calc", "lungrads", "--nodule-type", "part_solid", "--mean-diameter-mm", "12", "--solid-component-mm", "7"],
        [
            "calc",
            "tirads",
            "--composition",
            "solid",
            "--echogenicity",
            "hypoechoic",
            "--shape",
            "wider_than_tall",
            "--margin",
            "smooth",
            "--echogenic-foci",
            "punctate",
            "macrocalcifications",
            "--max-diameter-cm",
            "1.2",
        ],
        ["calc", "bosniak", "--modality", "ct", "--wall-thickness-mm", "3"],
        ["calc", "birads", "--category", "4a"],
        ["calc", "lirads", "--size-mm", "15", "--aphe", "nonrim", "--washout"],
        ["calc", "adrenal", "--size-cm", "1.5", "--prior-imaging", "none", "--no-cancer-history"],
        ["calc", "renal", "--modality", "ct", "--hu-increase", "25"],
    ],
)
def test_calc_each_calculator_runs(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(argv) == 0
    assert "Section:" in capsys.readouterr().out


def test_calc_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(["calc", "fleischner", "--composition", "solid", "--size-mm", "-1", "--risk", "high"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "size_mm" in err


def test_calc_out_of_scope_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["calc", "fleischner", "--composition", "solid", "--size-mm", "7", "--risk", "low", "--age", "30"]) == 2
    assert "under 35" in capsys.readouterr().err


def test_calc_help_lists_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["calc", "fleischner", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--composition", "--size-mm", "--risk", "--volume-mm3", "--age", "--json"):
        assert flag in out


@pytest.mark.parametrize(
    "name", ["fleischner", "lungrads", "tirads", "bosniak", "birads", "lirads", "adrenal", "renal"]
)
def test_calc_help_of_every_calculator_renders(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Help strings with '%' (washout percentages) once crashed argparse's %-formatting.
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["calc", name, "--help"])
    assert exit_info.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_calc_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    # `radassist calc ... | head -c1`: the reader goes away; no traceback on stderr.
    script = (
        "import sys; from assistant.cli.main import main; "
        "sys.exit(main(['calc', 'fleischner', '--composition', 'solid', '--size-mm', '7', '--risk', 'high']))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads: the first write raises BrokenPipeError
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "unexpected" not in err
    assert proc.returncode in (0, 141)
