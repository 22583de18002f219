"""Watching the embedded engine after start-up: its death or a failing ``/health`` is noticed, said, and mended.

:class:`EngineWatchdog` probes the engine every few seconds from a thread. When the engine's process is gone (a
crash, the kernel's out-of-memory killer, ``kill -9``) or ``/health`` fails several times in a row (a hung engine),
it says so in :meth:`EngineWatchdog.status` (the front ends' status line), stops whatever is left of the engine and
starts it again, waiting longer after each failed start (back-off), until it is up or the app stops. An answer
streaming when the engine died fails with the client's "closed the connection" error; the next one is answered by
the restarted engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import httpx

from assistant.errors import LLMUnavailableError

logger = logging.getLogger(__name__)

# A CPU engine busy with a long prompt can answer /health late: only several misses in a row mean "hung".
HEALTH_TIMEOUT_S = 10.0
MISSES_BEFORE_RESTART = 3
BACKOFF_S = (2.0, 5.0, 15.0, 30.0, 60.0)  # waits after the 1st, 2nd, ... failed restart; the last one repeats


class Watched(Protocol):
    """What the watchdog needs of an engine (:class:`assistant.llm.engine.EmbeddedEngine`)."""

    @property
    def url(self) -> str: ...

    def exit_code(self) -> int | None: ...

    def restart(self, progress: Callable[[str], None] | None = None) -> str: ...


class EngineState(StrEnum):
    RUNNING = "running"
    DOWN = "down"  # noticed dead or hung; a restart is under way or waiting for its back-off
    STOPPED = "stopped"  # the watchdog was stopped (the app is shutting down)


@dataclass(frozen=True)
class EngineHealth:
    """The engine as the watchdog last saw it: its state, a line for the status bar, and how often it restarted."""

    state: EngineState
    note: str = ""
    restarts: int = 0

    @property
    def ok(self) -> bool:
        return self.state is EngineState.RUNNING


def describe_exit(code: int) -> str:
    """An engine's exit status in words (a negative status is the signal that killed it)."""
    if code < 0 or code > 128:
        import signal

        number = -code if code < 0 else code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"killed by {name}" + (" (most likely out of memory)" if number == 9 else "")
    return f"exit status {code}"


class EngineWatchdog:
    """Probes an engine every ``interval_s`` and restarts it, with back-off, when it died or hangs."""

    def __init__(
        self,
        engine: Watched,
        interval_s: float = 5.0,
        health_timeout_s: float = HEALTH_TIMEOUT_S,
        misses: int = MISSES_BEFORE_RESTART,
        backoff_s: Sequence[float] = BACKOFF_S,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if misses < 1:
            raise ValueError(f"misses must be at least 1, got {misses}")
        if not backoff_s or any(b < 0 for b in backoff_s):
            raise ValueError(f"backoff_s must be non-negative waits, got {tuple(backoff_s)}")
        self.engine = engine
        self.interval_s = interval_s
        self.health_timeout_s = health_timeout_s
        self.misses = misses
        self.backoff_s = tuple(backoff_s)
        self.on_restart = on_restart
        self._lock = threading.Lock()
        self._health = EngineHealth(EngineState.RUNNING)
        self._missed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ control

    def start(self) -> EngineWatchdog:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="radassist-engine-watchdog", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop watching (the engine itself is stopped by its owner); safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        self._set(EngineState.STOPPED, "")

    def status(self) -> EngineHealth:
        with self._lock:
            return self._health

    def _set(self, state: EngineState, note: str, restarted: bool = False) -> None:
        with self._lock:
            self._health = EngineHealth(state, note, self._health.restarts + int(restarted))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watchdog must outlive its own bugs; the traceback goes to the log
                logger.exception("the engine watchdog's check failed")

    # ------------------------------------------------------------------------------------------ one probe

    def check(self) -> EngineHealth:
        """Probe the engine once; restart it (blocking, with back-off) when it is dead or missed too many probes."""
        code = self.engine.exit_code()
        if code is not None:
            self._recover(f"the LLM engine stopped ({describe_exit(code)})")
        elif self._healthy():
            self._missed = 0
            if not self.status().ok:
                self._set(EngineState.RUNNING, "")
        else:
            self._missed += 1
            logger.warning("the LLM engine missed a health check (%d of %d)", self._missed, self.misses)
            if self._missed >= self.misses:
                self._recover(f"the LLM engine stopped answering its health check ({self._missed} checks)")
        return self.status()

    def _healthy(self) -> bool:
        try:
            with httpx.Client(timeout=self.health_timeout_s, trust_env=False) as http:
                return http.get(f"{self.engine.url}/health").status_code == 200
        except httpx.HTTPError:
            return False

    def _recover(self, reason: str) -> None:
        logger.error("%s; restarting it", reason)
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            self._set(EngineState.DOWN, f"{reason}; restarting it (attempt {attempt})")
            try:
                url = self.engine.restart(lambda msg: logger.info("engine restart: %s", msg))
            except LLMUnavailableError as exc:  # EngineStartError: the log's cause is in the message
                wait = self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)]
                logger.error("restarting the LLM engine failed (attempt %d): %s; next try in %.0f s", attempt, exc,
                             wait)  # fmt: skip
                self._set(EngineState.DOWN, f"{reason}; restart failed ({exc}); trying again in {wait:.0f} s")
                if self._stop.wait(wait):
                    return
                continue
            self._missed = 0
            if self.on_restart is not None:
                self.on_restart(url)
            logger.warning("the LLM engine was restarted (attempt %d) after: %s", attempt, reason)
            self._set(EngineState.RUNNING, f"restarted at {time.strftime('%H:%M')} after: {reason}", restarted=True)
            return
