"""Shared fixtures: paths, a tiny real Llama model, and a real vLLM server on it (started once)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.postgres import PostgresCluster

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

# The engine and the test processes share 2 cores here: keep the engine small.
TINY_ENGINE_LIMITS = {"max_model_len": 1024, "kv_cache_bytes": 64 * 1024 * 1024}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        raise RuntimeError(f"the shared data folder is expected beside the repository at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the session, so the default model is converted once."""
    return tmp_path_factory.mktemp("radassist-data")


@pytest.fixture(scope="session")
def default_model_dir(session_data_dir: Path) -> Path:
    """SmolLM2-135M-Instruct converted from the wheel's GGUF by the product's own code."""
    from assistant.llm.model_files import DEFAULT_MODEL_NAME, find_default_gguf, prepare_model

    return prepare_model(find_default_gguf(), session_data_dir / "models" / DEFAULT_MODEL_NAME)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path) -> Path:
    """A 2-layer Llama with random weights and the default model's (offline) tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from tests.support.tiny_llama import build_tiny_llama

    out = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(default_model_dir)
    model = build_tiny_llama(tokenizer)
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def engine_settings_for(model: Path, data_dir: Path, **changes: object):  # type: ignore[no-untyped-def]
    from assistant.settings import load_settings

    return load_settings(
        env={},
        data_dir=data_dir,
        llm_model=str(model),
        engine_max_model_len=TINY_ENGINE_LIMITS["max_model_len"],
        engine_kv_cache_bytes=TINY_ENGINE_LIMITS["kv_cache_bytes"],
        engine_start_timeout_s=900.0,  # generous: CI machines are shared and vLLM start is CPU-bound
        **changes,
    )


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``vllm serve`` on the tiny model; yields its URL."""
    from assistant.runtime import create_engine

    settings = engine_settings_for(tiny_model_dir, tmp_path_factory.mktemp("engine-data"))
    engine = create_engine(settings)
    url = engine.start()
    try:
        yield url
    finally:
        engine.stop()


@pytest.fixture()
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running ``radassist`` as a subprocess: no inherited RADASSIST_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADASSIST_")}
    env["RADASSIST_DATA_DIR"] = str(tmp_path / "data")
    return env


@pytest.fixture(scope="session")
def radassist_bin() -> Path:
    exe = REPO / ".venv" / "bin" / "radassist"
    if not exe.exists():
        raise RuntimeError("run the set-up first: make setup")
    return exe


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster (Debian's server in a temp folder, a free loopback port), for the session."""
    from tests.support.postgres import PG_BIN, PostgresCluster, postgres_available

    if not postgres_available():
        raise RuntimeError(f"PostgreSQL 15 server binaries are expected in {PG_BIN}: run scripts/system-deps.sh")
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A new empty database on the session's PostgreSQL cluster; its URL."""
    import secrets

    return postgres_cluster.create_database(f"t_{secrets.token_hex(6)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A store test runs against both databases: a SQLite file (a ``Path``, the default) or the URL of a new empty
    database on the session's throwaway PostgreSQL cluster."""
    if request.param == "sqlite":
        return tmp_path / "db.sqlite3"
    return str(request.getfixturevalue("postgres_url"))
