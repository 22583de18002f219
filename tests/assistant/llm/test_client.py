"""The OpenAI-protocol client, faked at the transport only (the real server is in tests/integration)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from assistant.errors import LLMUnavailableError
from assistant.llm.client import ChatMessage, GenerationOptions, OpenAIChatClient, Role, complete


def sse(*events: object, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def delta(text: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


class Recorder:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.response


def client_for(handler: Recorder, model: str | None = "m") -> OpenAIChatClient:
    return OpenAIChatClient("http://llm.test:8000", model=model, transport=httpx.MockTransport(handler))


MESSAGES = [ChatMessage(Role.SYSTEM, "sys"), ChatMessage("user", "hello")]


def test_streams_pieces_and_sends_the_openai_body() -> None:
    rec = Recorder(httpx.Response(200, content=sse(delta("Hel"), delta("lo"), {"choices": [{"delta": {}}]})))
    client = client_for(rec)
    pieces = list(client.stream_chat(MESSAGES, GenerationOptions(max_tokens=7, temperature=0.0)))
    assert pieces == ["Hel", "lo"]
    body = json.loads(rec.requests[0].content)
    assert rec.requests[0].url.path == "/v1/chat/completions"
    assert body["stream"] is True and body["max_tokens"] == 7 and body["model"] == "m"
    assert body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}]


def test_model_id_is_asked_from_the_server_when_not_configured() -> None:
    rec = Recorder(httpx.Response(200, json={"data": [{"id": "served-model"}]}))
    assert client_for(rec, model=None).model_id == "served-model"
    assert rec.requests[0].url.path == "/v1/models"


def test_a_refused_request_names_the_status_and_the_server_detail() -> None:
    rec = Recorder(httpx.Response(400, json={"error": {"message": "You must set `--enable-mm-embeds`"}}))
    with pytest.raises(LLMUnavailableError, match=r"400: You must set `--enable-mm-embeds`"):
        complete(client_for(rec), MESSAGES)


def test_a_stream_that_ends_without_done_is_an_error_not_a_short_answer() -> None:
    rec = Recorder(httpx.Response(200, content=sse(delta("partial"), done=False)))
    with pytest.raises(LLMUnavailableError, match="before it was complete"):
        complete(client_for(rec), MESSAGES)


def test_an_error_event_inside_the_stream_is_reported() -> None:
    rec = Recorder(httpx.Response(200, content=sse({"error": {"message": "engine dead"}}, done=False)))
    with pytest.raises(LLMUnavailableError, match="engine dead"):
        complete(client_for(rec), MESSAGES)


def test_malformed_stream_is_reported() -> None:
    rec = Recorder(httpx.Response(200, content=b"data: {not json\n\n"))
    with pytest.raises(LLMUnavailableError, match="malformed"):
        complete(client_for(rec), MESSAGES)


def test_nobody_listening_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        client = OpenAIChatClient(f"http://127.0.0.1:{port}", model="m", timeout_s=5)
        with pytest.raises(LLMUnavailableError, match="cannot connect.*is it running"):
            complete(client, MESSAGES)


def test_constructor_names_bad_arguments() -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenAIChatClient("llm.test:8000")
    with pytest.raises(ValueError, match="timeout_s"):
        OpenAIChatClient("http://llm.test", timeout_s=0)
