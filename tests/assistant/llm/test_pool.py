"""A pool of LLM servers, faked at the transport only (tests/integration/test_llm_pool.py kills a real vLLM):
a conversation sticks to one server, moves when it is down, and the status line says so."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from assistant.errors import ConfigurationError, LLMUnavailableError
from assistant.llm.client import (
    ChatMessage,
    GenerationOptions,
    OpenAIChatClient,
    PooledChatClient,
    Role,
    ServerUnreachable,
    complete,
    create_chat_client,
)
from assistant.settings import load_settings

SERVERS = ("http://gpu1:8000", "http://gpu2:8000", "http://gpu3:8000")


class Servers:
    """Three fake servers on one transport: each answers with its own name; ``dead``, ``refusing`` and
    ``breaking`` ones fail as a stopped, a refusing and a crashing server would."""

    def __init__(self) -> None:
        self.dead: set[str] = set()
        self.refusing: set[str] = set()
        self.breaking: set[str] = set()
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if request.url.path.endswith("/models"):
            if host in self.dead:
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(200, json={"data": [{"id": "tiny"}]})
        self.asked.append(host)
        if host in self.dead:
            raise httpx.ConnectError("refused", request=request)
        if host in self.refusing:
            return httpx.Response(400, json={"error": {"message": "prompt too long"}})
        if host in self.breaking:

            def broken() -> Iterator[bytes]:
                yield f"data: {json.dumps({'choices': [{'delta': {'content': 'half '}}]})}\n\n".encode()
                raise httpx.ReadError("connection reset", request=request)

            return httpx.Response(200, content=broken())
        body = f"data: {json.dumps({'choices': [{'delta': {'content': host}}]})}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, content=body.encode())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool_for(servers: Servers, clock: Clock | None = None) -> PooledChatClient:
    return PooledChatClient(SERVERS, model="tiny", transport=httpx.MockTransport(servers), clock=clock or Clock())


def conversation(first: str, *later: str) -> list[ChatMessage]:
    messages = [ChatMessage(Role.SYSTEM, "sys"), ChatMessage(Role.USER, first)]
    for question in later:
        messages += [ChatMessage(Role.ASSISTANT, "an answer"), ChatMessage(Role.USER, question)]
    return messages


def test_a_conversation_sticks_to_one_server_and_conversations_spread_over_all() -> None:
    servers = Servers()
    pool, other_replica = pool_for(servers), pool_for(Servers())
    homes = {}
    for i in range(30):
        first = f"question {i}"
        home = complete(pool, conversation(first))
        assert complete(pool, conversation(first, "and then?")) == home  # every turn on the same server
        assert complete(pool, conversation(first, "and then?", "why?")) == home
        assert complete(other_replica, conversation(first, "and then?")) == home  # no shared state needed
        homes[first] = home
    assert set(homes.values()) == {"gpu1", "gpu2", "gpu3"}
    keyed = GenerationOptions(affinity_key="chat-42")  # the conversation's id, when the caller gives it
    assert len({complete(pool, conversation(f"q{i}"), keyed) for i in range(10)}) == 1
    assert pool.pool_status() == "pool of 3 vLLM servers, all up"


def test_a_down_server_s_conversations_fail_over_and_come_back_when_it_answers_again() -> None:
    servers, clock = Servers(), Clock()
    pool = pool_for(servers, clock)
    first = "Is there a pneumothorax?"
    home = complete(pool, conversation(first))
    servers.dead.add(home)
    moved = complete(pool, conversation(first, "any effusion?"))
    assert moved != home and servers.asked[-2:] == [home, moved]  # tried at home first, before any text
    status = pool.pool_status()
    assert status == f"pool of 3 vLLM servers, 2 up · ⚠️ failed over: http://{home}:8000/v1 down, its " \
        f"conversations on http://{moved}:8000/v1"  # fmt: skip
    servers.asked.clear()
    assert complete(pool, conversation(first, "any effusion?", "size?")) == moved
    assert servers.asked == [moved]  # marked down: not tried again for a while
    servers.dead.clear()
    clock.now += pool.retry_down_s + 1
    assert complete(pool, conversation(first, "any effusion?", "size?", "and now?")) == home
    assert pool.pool_status() == "pool of 3 vLLM servers, all up"


def test_a_refused_request_is_not_retried_elsewhere() -> None:
    servers = Servers()
    pool = pool_for(servers)
    home = complete(pool, conversation("q"))
    servers.refusing.add(home)
    servers.asked.clear()
    with pytest.raises(LLMUnavailableError, match="prompt too long") as info:
        complete(pool, conversation("q", "again"))
    assert not isinstance(info.value, ServerUnreachable) and servers.asked == [home]
    assert pool.pool_status() == "pool of 3 vLLM servers, all up"


def test_an_answer_broken_off_half_way_is_an_error_and_the_next_goes_elsewhere() -> None:
    servers = Servers()
    pool = pool_for(servers)
    home = complete(pool, conversation("q"))
    servers.breaking.add(home)
    pieces: list[str] = []
    with pytest.raises(ServerUnreachable, match="ask again"):
        for piece in pool.stream_chat(conversation("q", "next")):
            pieces.append(piece)
    assert pieces == ["half "]  # never spliced with another server's answer
    servers.asked.clear()
    moved = complete(pool, conversation("q", "next"))
    assert moved != home and servers.asked == [moved]  # marked down: not even tried
    assert f"http://{home}:8000/v1 down, its conversations on http://{moved}:8000/v1" in (pool.pool_status() or "")


def test_every_server_down_is_one_clear_error() -> None:
    servers = Servers()
    servers.dead.update({"gpu1", "gpu2", "gpu3"})
    pool = pool_for(servers)
    with pytest.raises(ServerUnreachable, match="none of the 3 LLM servers answered: cannot connect"):
        complete(pool, conversation("q"))
    unnamed = PooledChatClient(SERVERS, transport=httpx.MockTransport(servers))
    with pytest.raises(LLMUnavailableError, match="none of the 3 LLM servers answered"):
        _ = unnamed.model_id


def test_the_model_is_asked_from_the_first_server_that_answers() -> None:
    servers = Servers()
    servers.dead.add("gpu1")
    pool = PooledChatClient(SERVERS, transport=httpx.MockTransport(servers))
    assert pool.model_id == "tiny"


def test_llm_url_may_name_several_servers() -> None:
    settings = load_settings(env={"RADASSIST_LLM_URL": "http://gpu1:8000, http://gpu2:8000,"})
    assert settings.llm_urls == ("http://gpu1:8000", "http://gpu2:8000") and not settings.uses_embedded_engine
    assert isinstance(create_chat_client(settings.llm_url or ""), PooledChatClient)
    one = create_chat_client("http://router:8000")
    assert type(one) is OpenAIChatClient and one.pool_status() is None
    with pytest.raises(ConfigurationError, match="llm_url must start with http:// or https://, got 'gpu2:8000'"):
        load_settings(env={"RADASSIST_LLM_URL": "http://gpu1:8000,gpu2:8000"})
    with pytest.raises(ValueError, match="at least two"):
        PooledChatClient(["http://gpu1:8000"])


def test_model_calls_inside_a_conversations_answer_go_to_its_server_whatever_their_own_text() -> None:
    """The guideline mode's extraction and phrasing calls build their own messages and options: inside
    ``conversation_affinity`` they follow the conversation's server, not their own text's."""
    from assistant.llm.client import conversation_affinity

    servers = Servers()
    pool = pool_for(servers)
    home = complete(pool, conversation("first question"), GenerationOptions(affinity_key="chat-42"))
    prompts = [f"Extract the parameters of question {n}" for n in range(12)]
    with conversation_affinity("chat-42"):
        inside = {complete(pool, conversation(p), GenerationOptions(max_tokens=8)) for p in prompts}
    assert inside == {home}
    outside = {complete(pool, conversation(p), GenerationOptions(max_tokens=8)) for p in prompts}
    assert len(outside) > 1  # 12 prompts on one of 3 servers by chance: p = 3 ** -11
    with conversation_affinity(None):  # no conversation: each call's own key, as before
        assert {complete(pool, conversation(p), GenerationOptions(max_tokens=8)) for p in prompts} == outside
