"""Waiting for a local server in tests."""

from __future__ import annotations

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
