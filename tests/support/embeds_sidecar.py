"""The image-embeddings cache (``assistant.llm.embeds_cache``) run by uvicorn in a thread on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from assistant.llm.embeds_cache import EmbedsStore, build_app


@contextmanager
def running_sidecar(upstream: str, store: EmbedsStore | None = None) -> Iterator[tuple[str, EmbedsStore]]:
    """``with running_sidecar(url) as (sidecar_url, store):`` the cache in front of ``upstream``; stopped after."""
    import uvicorn

    store = store or EmbedsStore()
    config = uvicorn.Config(build_app(upstream, store), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and server.servers):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the embeddings cache did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def sidecar_process(upstream: str) -> Iterator[str]:
    """``radassist models embeds-cache`` in its own process, as a site runs it; yields its URL."""
    from assistant.llm.embeds_cache import STATUS_PATH
    from tests.support.http import free_port, wait_http

    port = free_port()
    command = [sys.executable, "-m", "assistant.cli.main", "models", "embeds-cache", "--upstream", upstream,
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    try:
        wait_http(f"http://127.0.0.1:{port}{STATUS_PATH}", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
