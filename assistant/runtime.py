"""Wiring at the entry points: settings → LLM (remote URL or embedded engine) → services."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from assistant.audit import AuditLog
from assistant.chat import ChatService
from assistant.engine import EmbeddedEngine, EngineSpec
from assistant.errors import ConfigurationError
from assistant.llm import GenerationOptions, OpenAIChatClient
from assistant.models import resolve_chat_model
from assistant.settings import Settings

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class Runtime:
    """Everything a front end needs, alive between ``open_runtime``'s enter and exit."""

    settings: Settings
    llm_url: str
    model_id: str
    engine: EmbeddedEngine | None
    client: OpenAIChatClient
    audit: AuditLog
    chat: ChatService

    @property
    def engine_log(self) -> str | None:
        return str(self.engine.log_path) if self.engine else None


def create_engine(settings: Settings, progress: Progress | None = None) -> EmbeddedEngine:
    """An (unstarted) embedded engine for the configured model, preparing the default model if needed."""
    if settings.engine_host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("the embedded engine will listen on %s, not on loopback", settings.engine_host)
    if progress:
        progress("preparing the chat model")
    model, served = resolve_chat_model(settings.llm_model, settings.models_dir)
    spec = EngineSpec(
        model=model,
        served_name=settings.llm_served_name or served,
        host=settings.engine_host,
        port=settings.engine_port,
        max_model_len=settings.engine_max_model_len,
        kv_cache_bytes=settings.engine_kv_cache_bytes,
        cpu_threads=settings.engine_cpu_threads,
        extra_args=settings.engine_extra_args,
        start_timeout_s=settings.engine_start_timeout_s,
    )
    return EmbeddedEngine(spec, log_dir=settings.logs_dir, cache_dir=settings.data_dir / "cache" / "vllm")


@contextmanager
def open_runtime(settings: Settings, progress: Progress | None = None) -> Iterator[Runtime]:
    """Start (or connect to) the LLM and build the services; stops the embedded engine on exit."""
    engine: EmbeddedEngine | None = None
    if settings.llm_url:
        url, served = settings.llm_url, settings.llm_served_name
    else:
        engine = create_engine(settings, progress)
        url, served = engine.start(progress), engine.spec.served_name
    audit = AuditLog(settings.db_path)
    client = OpenAIChatClient(url, model=served, api_key=settings.llm_api_key, timeout_s=settings.llm_timeout_s)
    try:
        options = GenerationOptions(max_tokens=settings.llm_max_tokens, temperature=settings.llm_temperature)
        model_id = client.model_id
        yield Runtime(
            settings=settings,
            llm_url=url,
            model_id=model_id,
            engine=engine,
            client=client,
            audit=audit,
            chat=ChatService(client, options, audit),
        )
    finally:
        client.close()
        audit.close()
        if engine is not None:
            engine.stop()


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Refuse to expose the app beyond loopback unless that was asked for explicitly."""
    if host not in ("127.0.0.1", "localhost", "::1") and not allow_remote:
        raise ConfigurationError(
            f"refusing to listen on {host}: pass --allow-remote (and set RADASSIST_AUTH_USER/PASSWORD)"
        )
