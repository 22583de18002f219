"""A runtime over a scripted model and a real (hashing-embedder) guideline index, for handler tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import retrieval
from assistant import Runtime, load_settings
from assistant.llm.client import GenerationOptions
from assistant.modes.chat import ChatService
from assistant.modes.grounded import GroundedService
from assistant.modes.guideline import GuidelineService
from assistant.modes.sources import GuidelineLibrary
from assistant.store.audit import AuditLog
from assistant.vision.service import VisionService
from tests.support.scripted import ScriptedModel


@pytest.fixture(scope="session")
def guideline_library(tmp_path_factory: pytest.TempPathFactory) -> GuidelineLibrary:
    library = GuidelineLibrary(retrieval.HashingEmbedder(256), tmp_path_factory.mktemp("ui-index") / "guidelines")
    library.index()
    return library


def scripted_runtime(
    data_dir: Path, replies: list[str | Exception], library: GuidelineLibrary, **settings: object
) -> Runtime:
    """A Runtime whose model answers with ``replies`` (same services as ``open_runtime`` builds)."""
    cfg = load_settings(env={}, data_dir=data_dir, llm_url="http://127.0.0.1:9", **settings)
    model = ScriptedModel(replies)
    options = GenerationOptions(max_tokens=64)
    audit = AuditLog(cfg.db_path)
    return Runtime(
        settings=cfg,
        llm_url="http://127.0.0.1:9",
        model_id="scripted",
        engine=None,
        client=model,  # type: ignore[arg-type]  # same interface as the HTTP client
        audit=audit,
        chat=ChatService(model, options, audit, VisionService.from_settings(cfg)),
        library=library,
        guidelines=GuidelineService(model, options, library, audit, phrase=False, resolve=False),
        grounded=GroundedService(model, options, library, None, audit),
    )


@pytest.fixture()
def make_runtime(tmp_path: Path, guideline_library: GuidelineLibrary) -> Iterator:  # type: ignore[type-arg]
    made: list[Runtime] = []

    def make(replies: list[str | Exception] | None = None, **settings: object) -> Runtime:
        runtime = scripted_runtime(tmp_path / "data", list(replies or []), guideline_library, **settings)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.audit.close()
