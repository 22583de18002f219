"""With a real vLLM (tiny random model): JSON-schema placement end to end, and an engine killed mid-generation.

One engine is started for this module (it is killed by the second test, so the shared session engine is not used).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from assistant.llm.client import ChatMessage, GenerationOptions, OpenAIChatClient
from assistant.llm.engine import EmbeddedEngine
from assistant.report.dictation import Placer
from assistant.report.draft import load_report_template, render_text
from assistant.report.service import DraftingService
from assistant.report.store import MessageStatus, ReportStore
from assistant.runtime import create_engine
from tests.conftest import engine_settings_for
from tests.support.scripted import ScriptedModel

pytestmark = pytest.mark.engine

UNSURE = "Tortuous thing. Something odd here. Status post lobectomy."


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedEngine]:
    engine = create_engine(engine_settings_for(tiny_model_dir, tmp_path_factory.mktemp("report-engine")))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def test_structured_output_places_a_sentence_through_real_vllm(engine: EmbeddedEngine) -> None:
    template = load_report_template("ct_chest")
    with OpenAIChatClient(engine.url, timeout_s=120) as client:
        slot = Placer(client).place(template, "Something odd here")
    assert slot in template.slots  # the random model can only answer inside the schema


class KillAfterFirstPiece:
    """The real client; the engine's process group is killed as soon as the first piece arrives."""

    def __init__(self, client: OpenAIChatClient, engine: EmbeddedEngine) -> None:
        self.client, self.engine, self.killed = client, engine, False

    @property
    def model_id(self) -> str:
        return self.client.model_id

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None) -> Iterator[str]:
        for piece in self.client.stream_chat(messages, options):
            if not self.killed and self.engine.pid is not None:
                os.killpg(self.engine.pid, signal.SIGKILL)
                self.killed = True
            yield piece


def test_engine_killed_mid_generation_keeps_draft_history_and_dictation(engine: EmbeddedEngine, tmp_path: Path) -> None:
    db = tmp_path / "radassist.sqlite3"
    with ReportStore(db) as store, OpenAIChatClient(engine.url, timeout_s=30) as client:
        service = DraftingService(store)
        report_id = service.create("ct_chest").report.report_id
        service.handle(report_id, "Never smoker. 7 mm solid nodule RUL, no effusion.")
        history = store.history(report_id)
        dying = KillAfterFirstPiece(client, engine)
        reply = DraftingService(store, dying).handle(report_id, UNSURE)
        assert dying.killed
        assert not reply.ok
        assert "LLM server" in reply.text and "Nothing was changed" in reply.text and "retry" in reply.text
    with ReportStore(db) as reopened:  # as after an app restart
        assert reopened.history(report_id) == history
        failed = reopened.failed_messages(report_id)
        assert [m.text for m in failed] == [UNSURE]
        # The model is back (scripted here): the saved dictation is applied on retry, nothing re-typed.
        model = ScriptedModel(['{"section": "findings.heart_vessels"}', '{"section": "findings.lungs_airways"}',
                               '{"section": "findings.lungs_airways"}'])  # fmt: skip
        retried = DraftingService(reopened, model).retry(report_id)
        assert retried.ok and "Status post lobectomy." in render_text(retried.report)
        assert reopened.failed_messages(report_id) == []
        statuses = [m.status for m in reopened.messages(report_id) if m.role == "user"]
        assert MessageStatus.FAILED not in statuses
