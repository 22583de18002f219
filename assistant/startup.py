"""Opening the runtime in the background, so a front end is up at once and shows the start's progress.

Starting the embedded engine takes a minute or more on a CPU, and the first start also builds the guideline index.
:class:`RuntimeStarter` runs :func:`open_runtime` (engine start, then the index) in a thread, keeps the latest
progress line for the UI, and hands out the :class:`Runtime` once it is ready. The thread holds the runtime open
until :meth:`RuntimeStarter.close`: the engine's watchdog takes the thread that started it as its parent (Linux's
parent-death signal is per thread), so that thread must outlive the engine, and it does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum

from assistant.errors import LLMUnavailableError, RadassistError
from assistant.llm.urls import redact_url
from assistant.runtime import Progress, Runtime, credentials_hidden, open_runtime
from assistant.settings import Settings
from assistant.vision.service import VisionService

logger = logging.getLogger(__name__)

Opener = Callable[..., AbstractContextManager[Runtime]]


class StartupState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


class RuntimeNotReady(RadassistError):
    """The engine is still starting (or failed to start); the message says which, and what it is doing."""


class _Cancelled(Exception):
    """Raised inside the start (from its progress callback) when the app stops before the engine is up."""


@dataclass(frozen=True)
class StartupStatus:
    state: StartupState
    step: str  # the latest progress line
    elapsed_s: float
    error: str | None = None
    retrying: bool = False  # failed, but tried again shortly (a remote LLM server that is not up yet)

    def describe(self) -> str:
        """One line for a status bar or a chat message (never the LLM URL's user:password)."""
        if self.state is StartupState.READY:
            return f"ready (started in {self.elapsed_s:.0f} s)"
        if self.state is StartupState.FAILED:
            again = " (trying again)" if self.retrying else ""
            return redact_url(f"failed to start: {self.error}{again}")
        if self.state is StartupState.STOPPED:
            return "stopped"
        return redact_url(f"starting ({self.elapsed_s:.0f} s): {self.step}")


RETRY_S = 10.0


class RuntimeStarter:
    """The runtime, opened in a background thread; ``wait()`` gives it once ready, ``status()`` says how far."""

    def __init__(
        self,
        settings: Settings,
        progress: Progress | None = None,
        opener: Opener = open_runtime,
        vision: VisionService | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self.settings = settings
        self.retry_s = retry_s  # a remote LLM server that is not reachable is tried again this often
        # Built now: a misconfigured vision profile fails before anything starts, and the UI knows the profile.
        self.vision = vision if vision is not None else VisionService.from_settings(settings)
        self._echo = progress
        self._opener = opener
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._state = StartupState.STARTING
        self._step = "waiting to start"
        self._error: RadassistError | None = None
        self._retrying = False
        self._failures = 0
        self._runtime: Runtime | None = None
        self._started = time.monotonic()
        self._ready_after: float | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> RuntimeStarter:
        """A starter around a runtime that is already open (tests; front ends handed a runtime directly)."""
        vision = getattr(runtime.chat, "vision", None)
        if not isinstance(vision, VisionService):
            vision = VisionService.text_only()
        starter = cls(runtime.settings, vision=vision)
        starter._state, starter._step, starter._runtime = StartupState.READY, "ready", runtime
        starter._ready_after = 0.0
        return starter

    # ------------------------------------------------------------------------------------------ control

    def start(self) -> RuntimeStarter:
        if self._thread is None:
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="radassist-runtime", daemon=True)
            self._thread.start()
        return self

    def _note(self, message: str) -> None:
        if self._stop.is_set():
            raise _Cancelled()
        message = redact_url(message)
        with self._cond:
            self._step = message
        if self._echo is not None:
            self._echo(message)
        else:
            logger.info("%s", message)

    def _run(self) -> None:
        """Open the runtime; a remote LLM server that is not reachable yet is tried again until it is (or close)."""
        while True:
            self._open_once()
            with self._cond:
                again = self._retrying and not self._stop.is_set()
            if not again or self._stop.wait(self.retry_s):
                break
            with self._cond:
                self._state, self._retrying = StartupState.STARTING, False
                self._step = "connecting to the LLM server again"
                self._cond.notify_all()
        with self._cond:
            if self._state is StartupState.FAILED and self._retrying:
                self._retrying = False
                self._state = StartupState.STOPPED
            self._cond.notify_all()

    def _open_once(self) -> None:
        retry = False
        try:
            # credentials_hidden: the opener's errors name the LLM server by its URL, which may hold user:password.
            with credentials_hidden(), self._opener(self.settings, progress=self._note, vision=self.vision) as runtime:
                runtime.prepare_guidelines(self._note)
                with self._cond:
                    self._runtime = runtime
                    self._state = StartupState.READY
                    self._ready_after = time.monotonic() - self._started
                    self._step = "ready"
                    self._cond.notify_all()
                self._note(f"ready in {self._ready_after:.0f} s")
                self._stop.wait()
                with self._cond:
                    self._runtime = None
            state, error = StartupState.STOPPED, None
        except _Cancelled:
            state, error = StartupState.STOPPED, None
        except RadassistError as exc:
            state, error = StartupState.FAILED, exc
            retry = bool(self.settings.llm_url) and isinstance(exc, LLMUnavailableError)
            # Once at error level; the retries of a server that stays down only at debug level.
            self._failures += 1
            level = logging.DEBUG if self._failures > 1 else logging.ERROR
            again = " (trying again)" if retry else ""
            logger.log(level, "the runtime failed to start: %s%s", redact_url(str(exc)), again)
        except Exception as exc:  # noqa: BLE001 - reported to every waiter; the traceback goes to the log
            state, error = StartupState.FAILED, RadassistError(f"unexpected {type(exc).__name__}; see the log")
            logger.error("the runtime failed to start", exc_info=exc)
        with self._cond:
            self._state, self._error, self._runtime, self._retrying = state, error, None, retry
            self._cond.notify_all()

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the runtime (the engine with it), or cancel a start under way; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> RuntimeStarter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ reading

    def status(self) -> StartupStatus:
        with self._cond:
            elapsed = self._ready_after if self._ready_after is not None else time.monotonic() - self._started
            # The opener's errors may name the LLM server by its URL, credentials included: they are shown.
            error = redact_url(str(self._error)) if self._error is not None else None
            return StartupStatus(self._state, self._step, elapsed, error, self._retrying)

    @property
    def runtime(self) -> Runtime | None:
        """The runtime if it is ready now, else None (never blocks)."""
        with self._cond:
            return self._runtime

    def wait(self, timeout_s: float | None = None) -> Runtime:
        """The runtime, once ready; :class:`RuntimeNotReady` (or the start's own error) otherwise."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._state is StartupState.STARTING:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            if self._runtime is not None:
                return self._runtime
            status = StartupStatus(self._state, self._step, time.monotonic() - self._started)
            error = self._error
        if error is not None:
            raise RuntimeNotReady(redact_url(f"the assistant could not start: {error}")) from error
        if status.state is StartupState.STOPPED:
            raise RuntimeNotReady("the assistant is shutting down")
        raise RuntimeNotReady(f"the language model is still starting ({status.elapsed_s:.0f} s): {status.step}")

    def progress(self, poll_s: float = 1.0) -> Iterator[StartupStatus]:
        """Status every ``poll_s`` while starting (for a streaming handler); ends when ready, failed or stopped."""
        while True:
            status = self.status()
            if status.state is not StartupState.STARTING:
                return
            yield status
            with self._cond:
                if self._state is StartupState.STARTING:
                    self._cond.wait(poll_s)
