"""The image-embeddings cache in front of vLLM: what it remembers, fills and refuses, and that it relays the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest

from assistant.errors import ConfigurationError
from assistant.llm.embeds_cache import STATUS_PATH, CacheMiss, EmbedsStore, build_app, fill_request, namespace_of
from assistant.vision.profiles import cached_part, embeds_part, is_cache_miss
from tests.support.http import free_port, wait_http
from tests.support.openai_stub import OpenAIStub


def _chat(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "Q"}, *parts]}]}


def test_parts_sent_by_uuid_get_their_payload_and_new_payloads_wait_for_vllm() -> None:
    store = EmbedsStore()
    qwen = {"image_embeds": "BB", "image_grid_thw": "CC"}
    first = _chat(embeds_part("AAAA", "u1"), embeds_part(qwen, "u2"), cached_part("embeds", "u1"))
    done = fill_request(first, store)
    assert done.pending == {"u1": "AAAA", "u2": qwen} and done.filled == 1  # the repeat took the request's own
    assert store.status()["items"] == 0  # nothing is kept before vLLM has accepted the request
    for uuid, payload in done.pending.items():
        store.put(uuid, payload)
    later = _chat(cached_part("embeds", "u1"), cached_part("embeds", "u2"))
    done = fill_request(later, store)
    assert (done.pending, done.filled) == ({}, 2) and done.filled_bytes == len("AAAA") + len(
        json.dumps(qwen, separators=(",", ":"))
    )
    parts = later["messages"][0]["content"]
    assert parts[1] == {"type": "image_embeds", "image_embeds": "AAAA", "uuid": "u1"}
    assert parts[2]["image_embeds"] == qwen  # a Qwen2.5-VL payload


def test_clients_with_different_api_keys_never_share_entries() -> None:
    store = EmbedsStore()
    alice = namespace_of("Bearer alice")
    store.put(alice + "u1", "ALICE")
    assert fill_request(_chat(cached_part("embeds", "u1")), store, alice).filled == 1
    for other in (namespace_of("Bearer mallory"), namespace_of(None)):
        with pytest.raises(CacheMiss):
            fill_request(_chat(cached_part("embeds", "u1")), store, other)


def test_an_unknown_uuid_is_a_cache_miss_in_vllms_words() -> None:
    with pytest.raises(CacheMiss) as caught:
        fill_request(_chat(cached_part("embeds", "nowhere")), EmbedsStore())
    assert is_cache_miss(caught.value.message())  # the client's test: it then sends the images in full


def test_pixels_parts_and_odd_bodies_are_left_alone() -> None:
    store = EmbedsStore()
    body = _chat({"type": "image_url", "image_url": None, "uuid": "p1"}, {"type": "image_embeds", "image_embeds": "X"})
    assert fill_request(body, store).filled == fill_request({"messages": "not a list"}, store).filled == 0
    assert body["messages"][0]["content"][1]["image_url"] is None  # vLLM's own cache answers pixel parts
    assert fill_request(body, store).pending == {}  # an embeds part without a uuid cannot be asked for again


def test_the_store_is_bounded_in_bytes_least_recently_used_first_out() -> None:
    store = EmbedsStore(max_bytes=10)
    store.put("a", "aaaa")
    store.put("b", "bbbb")
    assert store.get("a") == "aaaa"  # a is now the most recently used
    store.put("c", "cccc")  # 12 bytes > 10: b goes
    with pytest.raises(CacheMiss):
        store.get("b")
    assert store.get("a") == "aaaa" and store.get("c") == "cccc"
    store.put("huge", "x" * 11)  # larger than the whole cache: not kept, nothing else lost
    assert store.status()["items"] == 2 and store.status()["bytes"] == 8
    with pytest.raises(ConfigurationError):
        EmbedsStore(max_bytes=0)


def _reply(status: int, data: Any = None, raw: bytes | None = None, kind: str = "application/json") -> httpx.Response:
    """A response as a real transport gives it: a body still to be streamed."""
    content = raw if raw is not None else json.dumps(data).encode()
    return httpx.Response(status, stream=httpx.ByteStream(content), headers={"content-type": kind})


class _Upstream:
    """vLLM at the transport boundary: records what arrives, answers JSON or a stream."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        if request.headers.get("authorization") == "Bearer wrong":
            return _reply(401, {"error": {"message": "Unauthorized"}})
        if request.url.path == "/v1/models":
            return _reply(200, {"data": [{"id": "tiny"}]})
        try:
            body = json.loads(request.content)
        except ValueError:
            return _reply(400, {"error": {"message": "Expecting property name"}})
        self.bodies.append(body)
        if body.get("stream"):
            stream = b'data: {"choices":[{"delta":{"content":"ok"}}]}\n\ndata: [DONE]\n\n'
            return _reply(200, raw=stream, kind="text/event-stream")
        if body.get("model") != "tiny":
            return _reply(404, {"error": {"message": "The model `x` does not exist."}})
        return _reply(200, {"choices": [{"message": {"content": "ok"}}]})


@pytest.fixture()
def sidecar() -> Any:
    from starlette.testclient import TestClient

    upstream = _Upstream()
    app = build_app("http://vllm.invalid:8000/v1", EmbedsStore(), transport=httpx.MockTransport(upstream))
    with TestClient(app) as client:
        yield client, upstream


def test_the_sidecar_fills_requests_before_vllm_sees_them(sidecar: Any) -> None:
    client, upstream = sidecar
    first = {**_chat(embeds_part("PAYLOAD", "u1")), "model": "tiny"}
    assert client.post("/v1/chat/completions", json=first, headers={"Authorization": "Bearer k"}).status_code == 200
    later = {**_chat(cached_part("embeds", "u1")), "model": "tiny", "stream": True}
    reply = client.post("/v1/chat/completions", json=later, headers={"Authorization": "Bearer k"})
    assert reply.status_code == 200 and "data: [DONE]" in reply.text  # the stream is relayed as it came
    assert upstream.bodies[1]["messages"][0]["content"][1]["image_embeds"] == "PAYLOAD"
    assert upstream.headers[0]["authorization"] == "Bearer k"  # the API key goes on to vLLM
    status = client.get(STATUS_PATH).json()
    assert status["items"] == 1 and status["hits"] == 1 and status["upstream"] == "http://vllm.invalid:8000"


def test_a_request_vllm_refuses_puts_nothing_in_the_cache(sidecar: Any) -> None:
    client, upstream = sidecar
    poison = {**_chat(embeds_part("POISON", "u1")), "model": "tiny"}
    assert (
        client.post("/v1/chat/completions", json=poison, headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    assert client.post("/v1/chat/completions", json={**poison, "model": "x"}).status_code == 404
    reply = client.post("/v1/chat/completions", json={**_chat(cached_part("embeds", "u1")), "model": "tiny"})
    assert reply.status_code == 400 and is_cache_miss(reply.json()["error"]["message"])
    assert client.get(STATUS_PATH).json()["items"] == 0


def test_what_is_filled_in_counts_against_the_request_limit() -> None:
    from starlette.testclient import TestClient

    upstream = _Upstream()
    store = EmbedsStore()
    store.put("big", "x" * 800)
    app = build_app("http://vllm.invalid", store, max_request_bytes=2000, transport=httpx.MockTransport(upstream))
    many = {**_chat(*[cached_part("embeds", "big")] * 5), "model": "tiny"}  # ~400 bytes sent, ~4 kB once filled
    with TestClient(app) as client:
        reply = client.post("/v1/chat/completions", json=many)
        assert reply.status_code == 413 and "over the sidecar's limit of 2000 bytes" in reply.json()["error"]["message"]
        assert upstream.bodies == []
        one = {**_chat(cached_part("embeds", "big")), "model": "tiny"}
        assert client.post("/v1/chat/completions", json=one).status_code == 200


def test_a_miss_is_answered_400_and_vllm_is_not_asked(sidecar: Any) -> None:
    client, upstream = sidecar
    reply = client.post("/v1/chat/completions", json={**_chat(cached_part("embeds", "gone")), "model": "tiny"})
    assert reply.status_code == 400 and is_cache_miss(reply.json()["error"]["message"])
    assert upstream.bodies == []


def test_other_paths_and_vllms_own_errors_pass_through(sidecar: Any) -> None:
    client, _ = sidecar
    assert client.get("/v1/models").json() == {"data": [{"id": "tiny"}]}
    refused = client.post("/v1/chat/completions", json={**_chat(), "model": "x"})
    assert refused.status_code == 404 and "does not exist" in refused.json()["error"]["message"]
    malformed = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "Expecting" in malformed.text  # vLLM's to judge, not the sidecar's


def test_a_dead_vllm_is_a_502_naming_it_without_credentials() -> None:
    from starlette.testclient import TestClient

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app = build_app("http://user:secret@127.0.0.1:9", EmbedsStore(), transport=httpx.MockTransport(down))
    with TestClient(app) as client:
        reply = client.get("/v1/models")
    assert reply.status_code == 502  # the product's client treats 502 as a server down (pool failover)
    message = reply.json()["error"]["message"]
    assert "did not answer" in message and "secret" not in message and "127.0.0.1:9" in message


def test_an_oversized_request_is_refused_before_it_is_read_whole() -> None:
    from starlette.testclient import TestClient

    app = build_app(
        "http://vllm.invalid", EmbedsStore(), max_request_bytes=1000, transport=httpx.MockTransport(_Upstream())
    )
    with TestClient(app) as client:
        reply = client.post("/v1/chat/completions", content=b"x" * 5000)
    assert reply.status_code == 413 and "1000 bytes" in reply.json()["error"]["message"]


def test_a_non_http_upstream_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="http"):
        build_app("vllm-box:8000", EmbedsStore())


def test_the_cli_runs_it_on_loopback_in_front_of_a_real_server() -> None:
    """``radassist models embeds-cache`` as sites start it: a real socket on each side."""
    port = free_port()
    with OpenAIStub(model="stub-model") as llm:
        process = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli.main", "models", "embeds-cache", "--upstream", llm.url,
             "--port", str(port), "--max-mb", "16"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_PROXY": "*"},
        )  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{port}{STATUS_PATH}", timeout=60)
            status = httpx.get(f"http://127.0.0.1:{port}{STATUS_PATH}", trust_env=False).json()
            assert status["max_bytes"] == 16 * 1024**2 and status["items"] == 0
            body = {**_chat(embeds_part("PAYLOAD", "u9")), "model": "stub-model"}
            again = {**_chat(cached_part("embeds", "u9")), "model": "stub-model"}
            for request in (body, again):
                reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=request, trust_env=False)
                assert reply.status_code == 200, reply.text
            assert llm.requests[-1]["messages"][0]["content"][1]["image_embeds"] == "PAYLOAD"
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    assert b"127.0.0.1" in err  # it says where it listens; loopback unless --host says otherwise


def test_embeddings_profiles_send_once_only_behind_the_cache(tmp_path: Any) -> None:
    from assistant.settings import load_settings
    from assistant.vision.profiles import profile_from_settings

    def profile(**env: str) -> Any:
        base = {"RADASSIST_VISION_PROFILE": "llava-embeds", "RADASSIST_VISION_BUNDLE": str(tmp_path)}
        return profile_from_settings(load_settings(env={**base, **env}, data_dir=tmp_path))

    assert profile().send_once is False  # straight to vLLM: embeddings go in full every turn
    assert profile(RADASSIST_VISION_EMBEDS_CACHE="true").send_once is True
    assert profile(RADASSIST_VISION_EMBEDS_CACHE="true", RADASSIST_VISION_SEND_ONCE="false").send_once is False
