"""The embedded LLM engine: a real ``vllm serve`` started as a supervised child on 127.0.0.1.

The engine runs under :mod:`assistant.llm.supervised`, in its own process group, so it stops with the app
whatever way the app ends. Its output goes to a log file under the data dir; a start that fails names the
cause and that log file instead of hanging.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from assistant.errors import EngineStartError

logger = logging.getLogger(__name__)

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class EngineSpec:
    """What to start: the model and the engine's resource limits."""

    model: str  # an HF folder or model id
    served_name: str
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    max_model_len: int = 4096
    kv_cache_bytes: int = 268_435_456
    cpu_threads: str = ""  # "0-1"; empty = every core
    extra_args: tuple[str, ...] = ()
    start_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must name an HF folder or model id, got an empty string")
        if self.kv_cache_bytes < 1 << 20:
            raise ValueError(f"kv_cache_bytes must be at least 1 MiB, got {self.kv_cache_bytes}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def engine_environment(base: dict[str, str], cache_dir: Path, cpu_threads: str) -> dict[str, str]:
    """The child's environment: offline, private, bound to loopback, using the cores asked for."""
    env = dict(base)
    env.update(
        {
            "VLLM_HOST_IP": "127.0.0.1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CACHE_ROOT": str(cache_dir),
            "VLLM_CPU_OMP_THREADS_BIND": cpu_threads or f"0-{(os.cpu_count() or 1) - 1}",
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)  # an empty value crashes the worker; we pass bytes instead
    return env


def start_supervised(
    module: str, args: Sequence[str], log: IO[bytes], env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    """Run ``python -m module args`` under the watchdog of :mod:`assistant.llm.supervised`."""
    return subprocess.Popen(
        [sys.executable, "-m", "assistant.llm.supervised", str(os.getpid()), module, *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # own process group: the terminal's Ctrl-C goes to the app, not here
    )


def stop_supervised(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Stop a supervised process group: SIGTERM to the watchdog (graceful), then SIGKILL to the group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left, also when the leader already exited
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=5)


class EmbeddedEngine:
    """A supervised ``vllm serve`` process; use as a context manager or call start()/stop()."""

    def __init__(self, spec: EngineSpec, log_dir: Path, cache_dir: Path) -> None:
        self.spec = spec
        self.log_dir = log_dir
        self.cache_dir = cache_dir
        self.port = spec.port
        self.log_path = log_dir / "vllm-engine.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.spec.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def exit_code(self) -> int | None:
        """None while the started engine runs; its exit status once it ended (-9: killed by SIGKILL)."""
        if self._proc is None:
            return None
        return self._proc.poll()

    def restart(self, progress: Progress | None = None) -> str:
        """Stop whatever is left of the engine and start it again (on the same port when that is free)."""
        self.stop(timeout_s=5.0)
        return self.start(progress)

    def vllm_args(self) -> list[str]:
        s = self.spec
        return [
            "--model", s.model,
            "--served-model-name", s.served_name,
            "--host", s.host,
            "--port", str(self.port),
            "--max-model-len", str(s.max_model_len),
            "--kv-cache-memory-bytes", str(s.kv_cache_bytes),
            "--enforce-eager",
            "--disable-log-stats",
            *s.extra_args,
        ]  # fmt: skip

    def start(self, progress: Progress | None = None) -> str:
        """Start the engine and wait until it answers ``/health``; returns its URL."""
        say = progress or (lambda msg: logger.info("%s", msg))
        if self._proc is not None:
            return self.url
        if self.spec.port == 0:
            # A restart keeps its port (the clients' URL) unless something else took it meanwhile.
            if self.port == 0 or port_in_use(self.spec.host, self.port):
                self.port = free_port(self.spec.host)
        elif port_in_use(self.spec.host, self.spec.port):
            raise EngineStartError(
                f"cannot start the LLM engine: port {self.spec.port} on {self.spec.host} is already in use "
                "(choose another with RADASSIST_ENGINE_PORT, or 0 for any free port)"
            )
        # Owner-only whatever the umask (vLLM may log requests); as store.db's ensure_private_dir (llm can't import it).
        for folder in (self.log_dir, self.cache_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if folder.stat().st_mode & 0o077:
                os.chmod(folder, 0o700)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(log_fd, 0o600)  # a log from before, or a umask that let more through
        self._log = os.fdopen(log_fd, "ab")
        self._log.write(f"\n===== radassist: starting engine {time.strftime('%F %T')} =====\n".encode())
        self._log.flush()
        env = engine_environment(dict(os.environ), self.cache_dir, self.spec.cpu_threads)
        self._proc = start_supervised(VLLM_MODULE, self.vllm_args(), self._log, env)
        try:  # from here on, whatever happens (a progress callback may cancel the start) stops the engine
            say(f"starting the LLM engine ({self.spec.served_name}) on {self.url}; log: {self.log_path}")
            self._wait_healthy(say)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_healthy(self, say: Progress) -> None:
        started = time.monotonic()
        last_note = 0.0
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                code = self._proc.poll() if self._proc is not None else -1
                if code is not None:
                    raise EngineStartError(self._failure_message(code))
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        say(f"LLM engine ready in {time.monotonic() - started:.0f} s")
                        return
                except httpx.HTTPError:
                    pass
                elapsed = time.monotonic() - started
                if elapsed > self.spec.start_timeout_s:
                    raise EngineStartError(
                        f"the LLM engine did not become ready within {self.spec.start_timeout_s:.0f} s; "
                        f"see {self.log_path}"
                    )
                if elapsed - last_note >= 5.0:
                    last_note = elapsed
                    say(f"waiting for the LLM engine ({elapsed:.0f} s): {self._last_log_line()}")
                time.sleep(0.5)

    def _tail(self, lines: int = 40) -> list[str]:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [ln for ln in text.splitlines() if ln.strip()][-lines:]

    def _last_log_line(self) -> str:
        """The newest informative line of the engine log (vLLM's INFO lines and progress bars)."""
        for line in reversed(self._tail(40)):
            if line.startswith("===== radassist: starting engine"):
                break  # the log is appended to: what comes before this run's marker is an earlier run's
            if " INFO " in line or "Loading" in line or "Started" in line:
                text = line.split("] ", 1)[-1].strip()
                return text if len(text) <= 120 else text[:120] + "…"
        return "starting"

    def _failure_message(self, code: int) -> str:
        tail = "\n".join(self._tail(60))
        cause = diagnose_start_failure(tail, code)
        return f"the LLM engine failed to start: {cause}; see {self.log_path}"

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the engine and everything it started; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_supervised(proc, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def diagnose_start_failure(log_tail: str, exit_code: int) -> str:
    """A one-line cause from the end of the engine's log."""
    low = log_tail.lower()
    checks: Sequence[tuple[tuple[str, ...], str]] = (
        (("address already in use",), "its port is already in use"),
        (
            ("out of memory", "cannot allocate memory", "memoryerror", "not enough memory", "insufficient memory"),
            "not enough memory (lower RADASSIST_ENGINE_KV_CACHE_BYTES or RADASSIST_ENGINE_MAX_MODEL_LEN)",
        ),
        (
            ("kv cache", "max_model_len", "max model len"),
            "the KV cache does not fit the context length (raise RADASSIST_ENGINE_KV_CACHE_BYTES "
            "or lower RADASSIST_ENGINE_MAX_MODEL_LEN)",
        ),
        (
            ("repository not found", "does not appear to have a file", "is not a local folder",
             "no such file or directory", "can't load the configuration", "offline mode", "we couldn't connect"),
            "the model was not found (check RADASSIST_LLM_MODEL: a local folder, or an id already in the HF cache)",
        ),
        (("no module named",), "a Python package is missing (run the set-up again)"),
    )  # fmt: skip
    if exit_code in (-9, 137):
        return "the engine was killed (most likely out of memory)"
    for needles, cause in checks:
        if any(n in low for n in needles):
            return cause
    lines = [ln for ln in log_tail.splitlines() if "error" in ln.lower()]
    detail = lines[-1].strip() if lines else f"exit status {exit_code}"
    return detail if len(detail) <= 200 else detail[:200] + "…"
