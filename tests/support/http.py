"""Waiting for a local server in tests, and a free loopback port for one."""

from __future__ import annotations

import socket
import time

import httpx


def wait_http(url: str, timeout: float = 300.0) -> None:
    """Return once ``url`` answers 200; TimeoutError after ``timeout`` seconds (a loaded CI machine is slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test starts itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
