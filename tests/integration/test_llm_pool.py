"""A pool of two real vLLM servers on the tiny model: a conversation stays on its server, and when that server is
killed in the middle of an answer, the answer is a clear error and the conversation goes on on the other server,
with the status line saying so."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from assistant.llm.client import ChatMessage, GenerationOptions, PooledChatClient, Role, ServerUnreachable, complete
from assistant.runtime import create_engine
from tests.conftest import engine_settings_for

pytestmark = pytest.mark.engine

# ignore_eos keeps the random model talking long enough to be killed half way.
LONG = GenerationOptions(max_tokens=400, extra={"ignore_eos": True})
SHORT = GenerationOptions(max_tokens=8, extra={"ignore_eos": True})


def answered(log: Path) -> int:
    """Chat requests the server finished, from its access log (which server really answered)."""
    return log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1" 200')


def engine_log(basetemp: Path, url: str) -> Path:
    """The log of the session's engine serving ``url`` (it names its address when it starts)."""
    port = url.rstrip("/").rsplit(":", 1)[1]
    for log in basetemp.glob("*/logs/vllm-engine.log"):
        if f"127.0.0.1:{port}" in log.read_text(errors="replace"):
            return log
    raise AssertionError(f"no engine log names port {port}")


def test_a_conversation_fails_over_when_its_server_is_killed(
    tiny_engine: str, tiny_model_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    second = create_engine(engine_settings_for(tiny_model_dir, tmp_path / "data"))
    try:
        b = second.start()
        a = tiny_engine
        pool = PooledChatClient([a, b], timeout_s=120)
        # A conversation whose server is the one this test may kill (the ranking is a pure function of the key).
        first = next(q for q in (f"Question {i}: any effusion?" for i in range(100))
                     if pool._home(q)[0].base_url.startswith(b.rstrip("/")))  # fmt: skip
        turn = [ChatMessage(Role.USER, first)]
        log_a, log_b = engine_log(tmp_path_factory.getbasetemp(), a), second.log_path
        before_a, before_b = answered(log_a), answered(log_b)
        reply = complete(pool, turn, SHORT)
        turn += [ChatMessage(Role.ASSISTANT, reply), ChatMessage(Role.USER, "And the heart size?")]
        complete(pool, turn, SHORT)
        assert (answered(log_a) - before_a, answered(log_b) - before_b) == (0, 2)  # both turns on its own server
        assert pool.pool_status() == "pool of 2 vLLM servers, all up"

        pieces: list[str] = []
        with pytest.raises(ServerUnreachable, match="ask again"):
            for piece in pool.stream_chat([*turn, ChatMessage(Role.ASSISTANT, "…"), ChatMessage(Role.USER, "Why?")],
                                          LONG):  # fmt: skip
                pieces.append(piece)
                if len(pieces) == 3:
                    os.killpg(second.pid or 0, signal.SIGKILL)  # the server dies half way through the answer
        assert len(pieces) >= 3

        before_a = answered(log_a)
        assert complete(pool, [*turn, ChatMessage(Role.ASSISTANT, "…"), ChatMessage(Role.USER, "Why?")], SHORT)
        assert answered(log_a) - before_a == 1  # the conversation went on on the other server
        status = pool.pool_status() or ""
        assert "1 up" in status and "failed over" in status
        assert f"{b.rstrip('/')}/v1 down, its conversations on {a.rstrip('/')}/v1" in status
        pool.close()
    finally:
        second.stop()
