"""``radassist users add|remove|list`` in-process through ``assistant.cli.main.main``, on a temp data dir."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from assistant.cli.main import main
from assistant.store.users import UserStore


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RADASSIST_CONFIG", "RADASSIST_DATA_DIR", "RADASSIST_AUTH_USER", "RADASSIST_AUTH_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def radassist(data_dir: Path, *argv: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch) -> int:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["--data-dir", str(data_dir), "users", *argv])


def test_add_reads_the_password_from_stdin_and_it_logs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    added = radassist(tmp_path, "add", "alice", "--password-stdin", stdin="correct horse\n", monkeypatch=monkeypatch)
    assert added == 0 and "added user alice" in capsys.readouterr().out
    users = UserStore(tmp_path / "radassist.sqlite3")
    try:
        assert users.verify("alice", "correct horse")  # the newline is not part of the password
    finally:
        users.close()


def test_list_json_then_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("bob", "alice"):
        assert radassist(tmp_path, "add", name, "--password-stdin", stdin="password-1\n", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert radassist(tmp_path, "list", "--json", monkeypatch=monkeypatch) == 0
    listed = json.loads(capsys.readouterr().out)["users"]
    assert [u["name"] for u in listed] == ["alice", "bob"]
    assert all(u["source"] == "database" and u["created_at"].endswith("+00:00") for u in listed)
    assert "password" not in json.dumps(listed) and "argon2" not in json.dumps(listed)

    assert radassist(tmp_path, "remove", "bob", monkeypatch=monkeypatch) == 0
    assert "removed user bob" in capsys.readouterr().out
    assert radassist(tmp_path, "list", monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out.split("\t")[0] == "alice"


def test_list_shows_the_settings_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RADASSIST_AUTH_USER", "rad")
    monkeypatch.setenv("RADASSIST_AUTH_PASSWORD", "legacy-pass")
    assert radassist(tmp_path, "list", monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out == "rad\t(from RADASSIST_AUTH_USER)\n"
    assert radassist(tmp_path, "add", "rad", "--password-stdin", stdin="password-2\n", monkeypatch=monkeypatch) == 2
    assert "RADASSIST_AUTH_USER" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "stdin", "fragment"),
    [
        (("add", "Alice", "--password-stdin"), "correct horse\n", "did you mean 'alice'"),
        (("add", "alice", "--password-stdin"), "", "no password on standard input"),
        (("add", "alice", "--password-stdin"), "short\n", "at least 8 characters"),
        (("add", "alice"), "correct horse\n", "--password-stdin"),  # no terminal: never an echoing prompt
        (("remove", "nobody"), None, "no user 'nobody'"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    stdin: str | None,
    fragment: str,
) -> None:
    assert radassist(tmp_path, *argv, stdin=stdin, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.startswith("radassist: ") and fragment in err and err.count("\n") == 1


def test_a_duplicate_add_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert radassist(tmp_path, "add", "alice", "--password-stdin", stdin="password-1\n", monkeypatch=monkeypatch) == 0
    assert radassist(tmp_path, "add", "alice", "--password-stdin", stdin="password-2\n", monkeypatch=monkeypatch) == 2
    assert "exists already" in capsys.readouterr().err


def test_the_prompt_asks_twice_and_refuses_a_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["correct horse", "correct hors"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))  # the terminal, not the code under test
    monkeypatch.setattr("sys.stdin", Terminal())
    assert main(["--data-dir", str(tmp_path), "users", "add", "alice"]) == 2
    assert "the two passwords differ" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path), "users", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"users": []}


def test_a_password_is_never_a_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tmp_path), "users", "add", "alice", "--password", "correct horse"])
    assert "unrecognized arguments" in capsys.readouterr().err
