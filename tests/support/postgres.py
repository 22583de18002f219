"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, ``initdb`` into a temporary folder and
``postgres`` on a free loopback port with its unix socket in that folder; no system service is used or needed.

The server refuses to run as root, so when the tests run as root (CI) the cluster belongs to the ``postgres``
system user (the Debian package creates it) and the folder is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.http import free_port

PG_BIN = Path(os.environ.get("RADASSIST_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "radassist"


def postgres_available() -> bool:
    """Whether the server binaries are installed (scripts/system-deps.sh installs them)."""
    return (PG_BIN / "initdb").is_file() and (PG_BIN / "postgres").is_file()


class PostgresCluster:
    """``start()`` makes and starts the cluster, ``url(db)`` names a database on it, ``create_database`` makes
    one, ``stop()`` ends the server and deletes the folder."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="radassist-pg-"))  # in /tmp: reachable by the postgres user
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, object] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 60.0) -> PostgresCluster:
        (self.root / "sock").mkdir()
        if self._run_as:
            os.chown(self.root / "sock", int(self._run_as["user"]), int(self._run_as["group"]))  # type: ignore[call-overload]
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--no-locale", "--no-sync"],
            check=True, capture_output=True, cwd=self.root, **self._run_as,  # type: ignore[call-overload]
        )  # fmt: skip
        self.port = free_port()
        log = open(self.root / "postgres.log", "wb")  # noqa: SIM115 - the server's lifetime
        self._proc = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
             "-k", str(self.root / "sock"), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root, **self._run_as,  # type: ignore[call-overload]
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        import psycopg

        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self._proc.returncode}): {self.log_tail()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not accept connections in {timeout_s} s") from None
                time.sleep(0.1)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return (self.root / "postgres.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended), then the folder goes."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(2)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)
