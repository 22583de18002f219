"""Two app replicas behind a load balancer, for real: ``radassist serve`` ×2 on one throwaway PostgreSQL, a real
nginx (Debian's, its config, pid and logs in a temp folder, a free loopback port) with ``ip_hash`` affinity in
front, headless Chromium (Playwright) as the radiologist. A conversation and a report draft started through the
replica nginx picked are, once that replica is stopped, listed and continued through the other one.

The LLM is an OpenAI-protocol stub at the transport (tests/support/openai_stub.py): seconds, not minutes.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from assistant.llm.engine import free_port
from tests.e2e.test_workspace_browser import ARTIFACTS, STEP_MS, browser, send, serve, shot, wait_idle
from tests.support.http import wait_http
from tests.support.openai_stub import OpenAIStub

__all__ = ["browser"]  # the fixture, shared with the workspace test

NGINX = Path("/usr/sbin/nginx")
UPSTREAM_HEADER = "x-radassist-upstream"  # which replica answered, added by nginx for this test

# What docs/deploy.md asks of a load balancer in front of Gradio: sticky sessions (ip_hash here), WebSocket and
# server-sent events passed through unbuffered, and a failed replica's requests sent to the next one.
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    client_max_body_size 512m;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream radassist {{
        ip_hash;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://radassist;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_next_upstream error timeout http_502;
            add_header X-Radassist-Upstream $upstream_addr always;
        }}
    }}
}}
"""


@contextmanager
def nginx(root: Path, port: int, upstreams: list[int]) -> Iterator[str]:
    """A real nginx in the foreground, everything it writes under ``root``; yields its URL once it answers."""
    if not NGINX.exists():
        pytest.fail("nginx is missing: run scripts/system-deps.sh (as root) first")
    root.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=60s;" for p in upstreams)
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port, servers=servers), encoding="utf-8")
    checked = subprocess.run(
        [str(NGINX), "-t", "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    log = open(root / "nginx.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(NGINX), "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=120)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def _replica_of(response: Any, ports: dict[str, int]) -> str:
    """The name of the replica that served ``response`` (the last upstream nginx tried)."""
    upstream = response.headers[UPSTREAM_HEADER].split(",")[-1].strip()
    (name,) = [n for n, p in ports.items() if upstream == f"127.0.0.1:{p}"]
    return name


def test_a_conversation_and_a_draft_continue_on_the_other_replica_when_theirs_stops(
    radassist_bin: Path, browser: Any, postgres_url: str, tmp_path: Path
) -> None:
    from assistant.report.store import ReportStore
    from assistant.store.conversations import ChatSessionStore

    ports = {"a": free_port(), "b": free_port()}
    # One database and one browser key for both (docs/deploy.md): the browser's state is readable on either.
    shared = {"RADASSIST_DATABASE_URL": postgres_url, "RADASSIST_BROWSER_SECRET": secrets.token_hex(32)}
    replicas: dict[str, ExitStack] = {}
    with OpenAIStub("No pneumothorax is seen.") as llm, ExitStack() as stack:
        for name, port in ports.items():  # each replica with its own data dir: the state is in PostgreSQL
            replicas[name] = stack.enter_context(ExitStack())
            data = tmp_path / f"replica-{name}" / "data"
            data.mkdir(parents=True)
            replicas[name].enter_context(
                serve(radassist_bin, data, port, "--llm-url", llm.url, name=f"replica-{name}", settings=shared)
            )
        url = stack.enter_context(nginx(tmp_path / "nginx", free_port(), list(ports.values())))
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        stack.callback(context.close)
        page = context.new_page()
        page.set_default_timeout(STEP_MS)

        # Through nginx: a question, then a dictation in report mode, all on the replica ip_hash chose.
        first = _replica_of(page.goto(url), ports)
        page.locator("#status-line", has_text="stub-model").wait_for()
        send(page, "Is there a pneumothorax?")
        page.locator("#ra-chat", has_text="No pneumothorax is seen.").wait_for()
        wait_idle(page)
        page.locator("#ra-mode label", has_text="Report draft").click()
        page.locator("#ra-report").wait_for()
        send(page, "There is a 7 mm solid nodule in the right upper lobe.")
        page.locator("#ra-report", has_text="7 mm solid nodule in the right upper lobe").wait_for()
        wait_idle(page)
        shot(page, "replicas-01-started-on-first")
        with ReportStore(postgres_url) as reports:
            [before] = reports.drafts()

        # That replica stops; the same browser comes back through nginx and lands on the other one.
        replicas[first].close()
        (other,) = [n for n in ports if n != first]
        assert _replica_of(page.reload(), ports) == other
        page.locator("#ra-chat", has_text="No pneumothorax is seen.").wait_for()
        page.locator("#ra-report", has_text="7 mm solid nodule in the right upper lobe").wait_for()
        page.locator("#ra-chats-box").click()  # the saved conversations: listed by the other replica
        page.locator("#ra-chats input").click()
        options = page.locator("ul[role=listbox] li")
        options.first.wait_for()
        assert options.count() == 1 and "Is there a pneumothorax?" in options.first.inner_text()
        page.keyboard.press("Escape")

        # Continued there: the draft gets its next version, the conversation its next turns.
        send(page, "Mild cardiomegaly.")
        page.locator("#ra-report", has_text="cardiomegaly").wait_for()
        wait_idle(page)
        page.locator("#ra-mode label", has_text="Study Q&A").click()
        asked = len(llm.requests)
        send(page, "Any pleural effusion?")
        page.locator("#ra-chat", has_text="Any pleural effusion?").wait_for()
        wait_idle(page)
        assert len(llm.requests) == asked + 1
        shot(page, "replicas-02-continued-on-other")

        with ReportStore(postgres_url) as reports, ChatSessionStore(postgres_url) as chats:
            [draft] = reports.drafts()
            [chat] = chats.list()  # one conversation, continued (not forked into two)
            saved = chats.load(chat.chat_id)
        assert draft.report_id == before.report_id and draft.current_version > before.current_version
        questions = [e.text for e in saved.entries if e.role == "user" and e.note is None]
        assert "Is there a pneumothorax?" in questions and "Any pleural effusion?" in questions
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for log in ("error.log", "access.log"):
        if (tmp_path / "nginx" / log).exists():
            (ARTIFACTS / f"replicas-nginx-{log}").write_bytes((tmp_path / "nginx" / log).read_bytes())
