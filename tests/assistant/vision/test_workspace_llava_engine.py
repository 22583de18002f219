"""The web app's own handlers over real vLLM (the tiny LLaVA, embeddings from the real open_clip encoder): the
slice and window on screen are what the model gets, so two slices give two different sets of logprobs, and the same
view gives the same ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import retrieval
from assistant import Runtime, load_settings
from assistant.llm.client import ChatMessage, GenerationOptions, OpenAIChatClient
from assistant.modes.chat import ChatService
from assistant.modes.grounded import GroundedService
from assistant.modes.guideline import GuidelineService
from assistant.modes.sources import GuidelineLibrary
from assistant.store.audit import AuditLog
from assistant.vision.service import VisionService
from tests.support.chat_probe import probe
from tests.ui.synthetic import write_ct_series
from tests.ui.uploads import submitted
from ui.workspace import STUDY_QA, Workspace

pytestmark = pytest.mark.engine


class Recording:
    """The product's real HTTP client, remembering the messages each answer was asked with."""

    def __init__(self, inner: OpenAIChatClient) -> None:
        self.inner = inner
        self.sent: list[list[ChatMessage]] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None) -> Iterator[str]:
        self.sent.append(list(messages))
        yield from self.inner.stream_chat(messages, options)


@pytest.fixture
def workspace(llava_engine: str, tiny_llava_dir: Path, tmp_path: Path) -> Iterator[tuple[Workspace, Recording]]:
    settings = load_settings(
        env={}, data_dir=tmp_path / "data", llm_url=llava_engine, vision_profile="llava-embeds",
        vision_bundle=str(tiny_llava_dir), embedding_model="hashing-128",
    )  # fmt: skip
    client = OpenAIChatClient(llava_engine, timeout_s=300)
    model = Recording(client)
    options = GenerationOptions(max_tokens=4, extra={"ignore_eos": True})
    audit = AuditLog(settings.db_path)
    library = GuidelineLibrary(retrieval.HashingEmbedder(128), tmp_path / "index")
    runtime = Runtime(
        settings=settings, llm_url=llava_engine, model_id=client.model_id, engine=None,
        client=model,  # type: ignore[arg-type]  # the real client, recorded
        audit=audit, chat=ChatService(model, options, audit, VisionService.from_settings(settings)),  # type: ignore[arg-type]
        library=library, guidelines=GuidelineService(model, options, library, audit, phrase=False, resolve=False),  # type: ignore[arg-type]
        grounded=GroundedService(model, options, library, None, audit),  # type: ignore[arg-type]
    )  # fmt: skip
    try:
        yield Workspace(runtime), model
    finally:
        audit.close()
        client.close()


def ask(ws: Workspace, session: Any, question: str) -> tuple[Any, str]:
    """The question as the textbox submits it, answered by the workspace; (session, answer text)."""
    _, history, session, *_ = ws.accept({"text": question, "files": []}, [], session)
    *_, (history, *_rest) = list(ws.respond(history, session, STUDY_QA))
    return session, str(history[-1]["content"])


def test_the_slice_on_screen_moves_the_real_models_logprobs(
    workspace: tuple[Workspace, Recording], llava_engine: str, tmp_path: Path
) -> None:
    ws, model = workspace
    files = write_ct_series(tmp_path / "ct", slices=12, size=96)
    _, history, session, *_ = ws.accept(submitted(ws.data_dir, files, "What is shown?"), [], None)
    assert session.study is not None
    list(ws.respond(history, session, STUDY_QA))
    label = ws.view_outputs(session).series["value"]
    answers = {}
    for slice_number, window in ((3, "lung"), (9, "lung"), (3, "lung"), (3, "bone")):
        ws.change_view(session, label, slice_number, window)
        session, text = ask(ws, session, "What is on this slice?")
        assert text.strip() and not text.startswith("⚠️"), text
        sent = model.sent[-1]
        # What the model got, sent again with logprobs: the same greedy answer, now with its numbers.
        answers[(slice_number, window, len(answers))] = probe(llava_engine, "tiny-llava", sent).logprobs
        labels = " ".join(str(m.content) for m in sent)
        assert f"slice {slice_number}/12" in labels and f"window {window}" in labels
    (a, b, again, bone) = answers.values()
    assert a == again  # the same slice and window: the same logprobs
    assert a != b  # another slice on screen: the model saw another image
    assert a != bone  # another window on the same slice: another image too
