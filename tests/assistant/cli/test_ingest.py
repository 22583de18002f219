"""``radassist ingest``: one JSON line per file, exit status, PNG output, no PHI on stdout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from PIL import Image as PILImage

from assistant.cli.ingest import register
from assistant.errors import IngestError
from assistant.settings import Settings
from tests.assistant.imaging.ingest_fixtures import leaked, plant_phi, read, wheel_file, write


def _run(argv: list[str], data_dir: Path) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["ingest", *argv])
    return int(args.func(args, Settings(data_dir=data_dir)))


def test_json_lines_report_every_file_and_exit_1_on_any_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = write(plant_phi(read("CT_small.dcm")), tmp_path / "planted.dcm")
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all" * 20)
    status = _run([str(planted), str(bad), "--json"], tmp_path / "data")
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 1
    assert [line["ok"] for line in lines] == [True, False]
    assert all(set(line) == {"path", "ok", "error", "summary"} for line in lines)
    assert lines[0]["summary"]["modality"] == "CT" and lines[0]["error"] is None
    assert lines[1]["summary"] is None and "not a DICOM file" in lines[1]["error"]
    assert leaked(out) == []
    assert (tmp_path / "data" / "deid_salt").exists()


def test_exit_0_when_all_files_ingest_and_pngs_are_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = write(plant_phi(read("CT_small.dcm")), tmp_path / "planted.dcm")
    out_dir = tmp_path / "png"
    status = _run([str(planted), str(wheel_file("examples_ybr_color.dcm")), "--out", str(out_dir), "--window", "lung"],
                  tmp_path / "data")
    text = capsys.readouterr().out
    assert status == 0
    assert "ok " in text and leaked(text) == []
    pngs = sorted(out_dir.rglob("*.png"))
    assert len(pngs) == 1 + 1 + 30 + 1  # CT frame + montage, 30 US frames + montage
    for png in pngs:
        assert leaked(png.name) == [] and leaked(str(png.parent)) == []
        with PILImage.open(png) as picture:
            assert not picture.info.get("text") and "exif" not in picture.info
            assert leaked(png.read_bytes().decode("latin-1")) == []


def test_bad_window_name_is_an_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unknown window"):
        _run([str(wheel_file("CT_small.dcm")), "--out", str(tmp_path), "--window", "nope"], tmp_path)


def test_control_and_bidi_characters_in_names_are_escaped_and_skipped_members_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("evil\x1b]0;pwned\x07\x1b[31mred\u202egpj.dcm", b"not dicom at all" * 20)
        zf.writestr("__MACOSX/._IM1.dcm", b"resource fork")
        zf.writestr(".hidden.dcm", b"x")
    status = _run([str(archive)], tmp_path / "data")
    out = capsys.readouterr().out
    assert status == 1
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "evil\\x1b]0;pwned\\x07\\x1b[31mred\\u202egpj.dcm" in out  # shown, escaped, not obeyed
    assert "skipped upload.zip!__MACOSX/._IM1.dcm: macOS archive metadata" in out.replace(str(tmp_path) + "/", "")
    assert "!.hidden.dcm: a hidden file or folder" in out
    _run([str(archive), "--json"], tmp_path / "data")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(line.get("skipped") or "" for line in lines)[1:] == [
        "a hidden file or folder", "macOS archive metadata, not an image"
    ]  # fmt: skip


def test_terminal_text_escapes_controls_and_bidi_but_keeps_lines() -> None:
    from assistant.cli.text import one_line, terminal_text

    assert terminal_text("Lungs: clear.\n\tHeart\u202e normal\x1b[2J") == "Lungs: clear.\n\tHeart\\u202e normal\\x1b[2J"
    assert one_line("a\nb\u2066c\x9b") == "a\\x0ab\\u2066c\\x9b"
    assert terminal_text("Größe 7 mm, ü") == "Größe 7 mm, ü"
