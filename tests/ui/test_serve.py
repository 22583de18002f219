"""``radassist serve`` for real: the Gradio app on loopback, answering through a real vLLM engine."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from assistant.llm.engine import free_port
from tests.support.http import wait_http
from tests.support.paths import REPO

pytestmark = pytest.mark.engine


def test_serve_answers_through_the_app_and_stops_on_ctrl_c(
    tiny_engine: str, radassist_bin: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    from gradio_client import Client

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(radassist_bin), "serve", "--llm-url", tiny_engine, "--port", str(port)],
        env=cli_env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        page = httpx.get(f"http://127.0.0.1:{port}/").text
        assert "radassist" in page
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer = client.predict("Is there an effusion?", api_name="/chat")
        assert isinstance(answer, str) and answer.strip()
        # Loopback only: the app is not reachable on the machine's other addresses.
        listening = [
            c.laddr.ip for c in psutil.net_connections(kind="tcp") if c.laddr.port == port and c.status == "LISTEN"
        ]
        assert listening == ["127.0.0.1"]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        log.close()
    assert code in (0, 130), (tmp_path / "serve.log").read_text()[-2000:]


def test_serve_refuses_a_public_address_without_opt_in(radassist_bin: Path, cli_env: dict[str, str]) -> None:
    out = subprocess.run(
        [str(radassist_bin), "serve", "--host", "0.0.0.0"], capture_output=True, text=True, env=cli_env, timeout=60
    )
    assert out.returncode == 2 and "refusing to listen on 0.0.0.0" in out.stderr


def test_no_share_link_anywhere_in_the_ui() -> None:
    ui = REPO / "ui"
    for path in ui.rglob("*.py"):
        assert "share=True" not in path.read_text(encoding="utf-8").replace(" ", ""), path
    assert os.environ.get("GRADIO_SHARE", "").lower() not in ("1", "true")
