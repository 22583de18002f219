"""Two app replicas behind a load balancer, for real: ``radassist serve`` ×2 on one throwaway PostgreSQL, a real
nginx (tests/support/nginx.py, shared with bench/bench_replicas.py: Debian's, its config, pid and logs in a temp
folder, a free loopback port) with ``ip_hash`` affinity in front, headless Chromium (Playwright) as the radiologist.
A conversation and a report draft started through the replica nginx picked are, once that replica is stopped,
listed and continued through the other one.

The LLM is an OpenAI-protocol stub at the transport (tests/support/openai_stub.py): seconds, not minutes.
"""

from __future__ import annotations

import os
import secrets
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.llm.engine import free_port
from tests.e2e.test_workspace_browser import ARTIFACTS, STEP_MS, browser, send, serve, shot, wait_idle
from tests.support.nginx import UPSTREAM_HEADER, nginx, nginx_available
from tests.support.openai_stub import OpenAIStub

__all__ = ["browser"]  # the fixture, shared with the workspace test


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

    if not nginx_available():
        pytest.fail("nginx is missing: run scripts/system-deps.sh (as root) first")
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
        # An upload is a body over nginx's 16 KiB buffer: its worker writes it to a temp file first (run as root, that
        # worker is "nobody"), and it must reach the replica, not end in nginx's own HTTP 500.
        upload = httpx.post(
            f"{url}gradio_api/upload", files=[("files", ("slice.dcm", os.urandom(64 * 1024)))], timeout=60,
            trust_env=False,
        )  # fmt: skip
        assert upload.status_code == 200 and UPSTREAM_HEADER in upload.headers, upload.text[:200]
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
