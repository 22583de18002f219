"""The engine watchdog: a dead or hung engine is noticed, said in its status, and restarted with back-off.

These use a stand-in engine at the process boundary (its exit status and its restart); the real engine killed
with SIGKILL in the middle of an answer is tests/ui/test_engine_watchdog.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from assistant.errors import EngineStartError
from assistant.llm.engine import free_port
from assistant.llm.watchdog import EngineState, EngineWatchdog, describe_exit


class StandIn:
    """An engine whose process exit status is set by the test; ``restart`` fails ``failures`` times first."""

    def __init__(self, url: str, code: int | None = None, failures: int = 0) -> None:
        self.url, self.code, self.failures, self.restarts = url, code, failures, 0

    def exit_code(self) -> int | None:
        return self.code

    def restart(self, progress: Callable[[str], None] | None = None) -> str:
        if self.failures:
            self.failures -= 1
            raise EngineStartError("the LLM engine failed to start: not enough memory; see vllm-engine.log")
        self.restarts += 1
        self.code = None
        self.url = f"http://127.0.0.1:{free_port()}"
        return self.url


def test_a_killed_engine_is_restarted_and_the_client_follows_its_new_address() -> None:
    engine = StandIn("http://127.0.0.1:9", code=-9)
    followed: list[str] = []
    dog = EngineWatchdog(engine, backoff_s=(0.0,), on_restart=followed.append)
    health = dog.check()
    assert engine.restarts == 1 and followed == [engine.url]
    assert health.ok and health.restarts == 1
    assert "killed by SIGKILL" in health.note and "restarted" in health.note


def test_failed_restarts_back_off_and_say_so_until_one_works() -> None:
    engine = StandIn("http://127.0.0.1:9", code=1, failures=2)
    notes: list[str] = []
    dog = EngineWatchdog(engine, backoff_s=(0.0, 0.01))
    real_set = dog._set

    def spy(state: EngineState, note: str, restarted: bool = False) -> None:
        notes.append(note)
        real_set(state, note, restarted)

    dog._set = spy  # type: ignore[method-assign]
    assert dog.check().ok and engine.restarts == 1
    assert any("restart failed" in n and "not enough memory" in n for n in notes)
    assert any("attempt 3" in n for n in notes)


def test_a_hung_engine_is_restarted_only_after_several_missed_health_checks() -> None:
    engine = StandIn(f"http://127.0.0.1:{free_port()}")  # nothing listens: /health fails, the process "runs"
    dog = EngineWatchdog(engine, health_timeout_s=1.0, misses=2, backoff_s=(0.0,))
    assert dog.check().ok and engine.restarts == 0  # one miss is not enough (a busy CPU engine answers late)
    engine.url = f"http://127.0.0.1:{free_port()}"
    health = dog.check()
    assert engine.restarts == 1 and health.ok and "health check" in health.note


def test_a_stopped_watchdog_says_so_and_bad_arguments_are_refused() -> None:
    dog = EngineWatchdog(StandIn("http://127.0.0.1:9"), interval_s=0.01).start()
    dog.stop()
    assert dog.status().state is EngineState.STOPPED
    with pytest.raises(ValueError, match="misses"):
        EngineWatchdog(StandIn("http://x"), misses=0)
    assert describe_exit(137).startswith("killed by SIGKILL") and describe_exit(1) == "exit status 1"
