"""``RADASSIST_DATABASE_URL`` end to end: separate ``radassist`` processes (as app replicas would be) share the
accounts and the audit trail through one PostgreSQL, and nothing is written to a SQLite file in their data dirs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def test_two_processes_share_accounts_and_the_audit_trail_through_postgresql(
    postgres_url: str, radassist_bin: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    def radassist(data: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**cli_env, "RADASSIST_DATA_DIR": str(tmp_path / data), "RADASSIST_DATABASE_URL": postgres_url}
        return subprocess.run(
            [str(radassist_bin), *argv], input=stdin, capture_output=True, text=True, env=env, timeout=300
        )

    added = radassist("replica-a", "users", "add", "alice", "--password-stdin", stdin="correct horse\n")
    assert added.returncode == 0, added.stderr
    listed = radassist("replica-b", "users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [u["name"] for u in json.loads(listed.stdout)["users"]] == ["alice"]
    exported = radassist("replica-b", "audit", "export", "--since", "2000-01-01", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    assert not list(tmp_path.rglob("*.sqlite3"))  # the state is on the server, not beside the process
    assert "correct horse" not in added.stdout + added.stderr and postgres_url not in listed.stderr


def test_a_draft_made_by_one_process_is_continued_by_another_through_postgresql(
    postgres_url: str, radassist_bin: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    def radassist(data: str, *argv: str) -> subprocess.CompletedProcess[str]:
        env = {**cli_env, "RADASSIST_DATA_DIR": str(tmp_path / data), "RADASSIST_DATABASE_URL": postgres_url}
        return subprocess.run([str(radassist_bin), *argv], capture_output=True, text=True, env=env, timeout=300)

    made = radassist("replica-a", "report", "new", "--template", "cxr", "--id", "r-shared")
    assert made.returncode == 0, made.stderr
    dictated = radassist("replica-b", "report", "dictate", "r-shared", "Small left pleural effusion.", "--no-llm")
    assert dictated.returncode == 0, dictated.stderr
    shown = radassist("replica-a", "report", "show", "r-shared", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "Small left pleural effusion." in shown.stdout
    assert not list(tmp_path.rglob("*.sqlite3"))
