"""Real vLLM: a tiny random-weight Llama served by ``vllm serve`` under the product's own supervisor."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from assistant.errors import EngineStartError, LLMUnavailableError
from assistant.llm.client import ChatMessage, GenerationOptions, OpenAIChatClient, Role
from assistant.llm.engine import EmbeddedEngine, EngineSpec
from assistant.runtime import create_engine
from tests.conftest import engine_settings_for

pytestmark = pytest.mark.engine

QUESTION = [ChatMessage(Role.USER, "Is there a pneumothorax?")]


def test_chat_streams_from_the_real_engine(tiny_engine: str) -> None:
    with OpenAIChatClient(tiny_engine, timeout_s=60) as client:
        assert client.model_id  # the served name, asked from /v1/models
        pieces = list(client.stream_chat(QUESTION, GenerationOptions(max_tokens=16, extra={"ignore_eos": True})))
    assert len(pieces) > 1  # streamed, not delivered in one block
    assert "".join(pieces).strip()


def test_ask_json_prints_one_object(tiny_engine: str, radassist_bin: Path, cli_env: dict[str, str]) -> None:
    out = subprocess.run(
        [str(radassist_bin), "ask", "--llm-url", tiny_engine, "--max-tokens", "8", "--json", "Any effusion?"],
        capture_output=True, text=True, env=cli_env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"answer", "citations", "model", "mode"}  # "mode" added (additive): which mode answered
    assert isinstance(result["answer"], str) and result["answer"] and result["citations"] == []
    assert result["model"].startswith("tiny-llama")  # the served name of the fixture model


def test_ask_streams_plain_text(tiny_engine: str, radassist_bin: Path, cli_env: dict[str, str]) -> None:
    out = subprocess.run(
        [str(radassist_bin), "ask", "--llm-url", tiny_engine, "--max-tokens", "8", "Any effusion?"],
        capture_output=True, text=True, env=cli_env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and not out.stdout.lstrip().startswith("{")


def test_ask_batch_echoes_ids_and_reports_bad_lines(
    tiny_engine: str, radassist_bin: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    batch = tmp_path / "q.jsonl"
    batch.write_text(
        '{"id": "a", "question": "Heart size?"}\n'
        "\n"
        '{"id": 7, "question": "Any consolidation?"}\n'
        "this is not json\n"
        '{"id": "c"}\n',
        encoding="utf-8",
    )
    out = subprocess.run(
        [str(radassist_bin), "ask", "--llm-url", tiny_engine, "--max-tokens", "8", "--batch", str(batch)],
        capture_output=True, text=True, env=cli_env, timeout=400,
    )  # fmt: skip
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", 7, None, "c"]
    assert lines[0]["answer"] and lines[1]["answer"] and lines[0]["model"] == lines[1]["model"]
    assert "not valid JSON" in lines[2]["error"] and "question" in lines[3]["error"]
    assert out.returncode == 1  # some lines failed; every line still answered or reported


def test_wrong_url_exits_non_zero_with_one_line(radassist_bin: Path, cli_env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        out = subprocess.run(
            [str(radassist_bin), "ask", "--llm-url", f"http://127.0.0.1:{port}", "hello"],
            capture_output=True, text=True, env=cli_env, timeout=60,
        )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "cannot connect to the LLM server" in out.stderr


def test_engine_killed_mid_stream_gives_a_clear_error_not_a_hang(tiny_model_dir: Path, tmp_path: Path) -> None:
    engine = create_engine(engine_settings_for(tiny_model_dir, tmp_path / "data"))
    url = engine.start()
    try:
        client = OpenAIChatClient(url, timeout_s=30)
        # ignore_eos keeps the random model talking long enough to be killed half way.
        options = GenerationOptions(max_tokens=900, extra={"ignore_eos": True})
        stream = client.stream_chat(QUESTION, options)
        received = [next(stream)]
        assert engine.pid is not None
        killer = threading.Timer(0.2, lambda: os.killpg(engine.pid or 0, signal.SIGKILL))
        killer.start()
        started = time.monotonic()
        with pytest.raises(LLMUnavailableError, match="closed the connection|before it was complete|cannot connect"):
            for piece in stream:
                received.append(piece)
        assert time.monotonic() - started < 30
        assert received
    finally:
        engine.stop()


def test_a_missing_model_fails_fast_with_the_cause_and_the_log(tmp_path: Path) -> None:
    spec = EngineSpec(model=str(tmp_path / "no-such-model"), served_name="x", start_timeout_s=300)
    engine = EmbeddedEngine(spec, log_dir=tmp_path / "logs", cache_dir=tmp_path / "cache")
    with pytest.raises(EngineStartError) as err:
        engine.start()
    message = str(err.value)
    assert "failed to start" in message and str(tmp_path / "logs" / "vllm-engine.log") in message
    assert engine.pid is None


def test_a_taken_port_is_reported_before_starting(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        spec = EngineSpec(model="unused", served_name="x", port=port)
        engine = EmbeddedEngine(spec, log_dir=tmp_path / "logs", cache_dir=tmp_path / "cache")
        with pytest.raises(EngineStartError, match=f"port {port} .* already in use"):
            engine.start()
