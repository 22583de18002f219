"""Engine pieces that need no engine: failure diagnosis, environment, arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.llm.engine import EmbeddedEngine, EngineSpec, diagnose_start_failure, engine_environment


@pytest.mark.parametrize(
    ("tail", "code", "cause"),
    [
        ("OSError: [Errno 98] Address already in use", 1, "port is already in use"),
        ("torch.OutOfMemoryError: CPU out of memory", 1, "not enough memory"),
        ("ValueError: ... KV cache is needed, which is larger than the available KV cache memory", 1, "KV cache"),
        ("OSError: /no/such is not a local folder and is not a valid model identifier", 1, "model was not found"),
        ("ModuleNotFoundError: No module named 'vllm'", 1, "Python package is missing"),
        ("nothing useful", -9, "killed (most likely out of memory)"),
        ("RuntimeError: something specific went wrong", 1, "RuntimeError: something specific went wrong"),
    ],
)
def test_start_failures_are_explained_in_one_line(tail: str, code: int, cause: str) -> None:
    assert cause in diagnose_start_failure(tail, code)


def test_engine_environment_is_offline_private_and_loopback(tmp_path: Path) -> None:
    env = engine_environment({"VLLM_CPU_KVCACHE_SPACE": "", "PATH": "/bin"}, tmp_path, "")
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"
    assert env["VLLM_HOST_IP"] == "127.0.0.1" and env["VLLM_CACHE_ROOT"] == str(tmp_path)
    assert "VLLM_CPU_KVCACHE_SPACE" not in env and env["PATH"] == "/bin"


def test_engine_arguments_carry_the_limits(tmp_path: Path) -> None:
    spec = EngineSpec(model="/m", served_name="m", port=8123, max_model_len=2048, kv_cache_bytes=1 << 27,
                      extra_args=("--enable-mm-embeds",))  # fmt: skip
    args = EmbeddedEngine(spec, tmp_path, tmp_path).vllm_args()
    pairs = dict(zip(args[::1], args[1::1], strict=False))
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "8123" and pairs["--max-model-len"] == "2048"
    assert pairs["--kv-cache-memory-bytes"] == str(1 << 27) and "--enable-mm-embeds" in args


def test_spec_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="model"):
        EngineSpec(model="", served_name="x")
    with pytest.raises(ValueError, match="kv_cache_bytes"):
        EngineSpec(model="m", served_name="x", kv_cache_bytes=10)
