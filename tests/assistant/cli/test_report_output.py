"""``radassist report``: dictated text with terminal controls or bidi overrides is shown escaped, never obeyed."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.cli.main import main


def test_dictation_with_escape_sequences_and_bidi_overrides_is_printed_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(tmp_path / "data"), "report"]
    assert main([*base, "new", "--template", "cxr", "--id", "r-esc"]) == 0
    main([*base, "dictate", "r-esc", "Small left pleural effusion\x1b[2J\u202e noted.", "--no-llm"])
    main([*base, "show", "r-esc"])
    main([*base, "show", "r-esc", "--history"])
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream and "\u202e" not in stream
    assert "effusion\\x1b[2J\\u202e noted" in captured.out
