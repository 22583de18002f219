"""With a pool of LLM servers, the conversation's id is the affinity key of every request (faked at the transport;
the real failover is tests/integration/test_llm_pool.py): all turns of one conversation, its first included and
after it is reopened on another replica, go to one server, while conversations that start with the same question
spread over the pool."""

from __future__ import annotations

from typing import Any

import httpx

from assistant.llm.client import GenerationOptions, PooledChatClient
from assistant.modes.chat import ChatService
from tests.assistant.llm.test_pool import SERVERS, Servers
from tests.ui.test_conversations_and_startup import ask
from ui.workspace import STUDY_QA, Workspace

FIRST = "Is there a pneumothorax?"


def _pooled(make_runtime: Any, servers: Servers) -> Workspace:
    """A workspace whose chat goes to three fake vLLM servers; each answers with its own host name."""
    runtime = make_runtime()
    pool = PooledChatClient(SERVERS, model="tiny", transport=httpx.MockTransport(servers))
    runtime.client = pool
    runtime.chat = ChatService(pool, GenerationOptions(max_tokens=16), runtime.audit)
    return Workspace(runtime)


def _answered_by(history: list[Any]) -> str:
    return str(history[-1]["content"])


def test_conversations_with_the_same_first_question_spread_and_each_stays_on_its_server(make_runtime: Any) -> None:
    servers = Servers()
    ws = _pooled(make_runtime, servers)
    homes = []
    for _ in range(12):  # 12 new conversations, one first question: all on one of 3 servers has p = 3 ** -11
        history, s = ask(ws, FIRST, mode=STUDY_QA)
        home = _answered_by(history)
        assert home in {"gpu1", "gpu2", "gpu3"} and s.chat_id is not None
        for follow_up in ("Any effusion?", "And the heart size?"):
            history, s = ask(ws, follow_up, history, s, mode=STUDY_QA)
            assert _answered_by(history) == home  # every turn on the conversation's server
        homes.append((s.chat_id, home))
        ws.new_chat(s)
    assert len({home for _, home in homes}) > 1, homes

    chat_id, home = homes[0]
    replica_b = _pooled(make_runtime, Servers())  # another app replica on the same database: no shared state
    history, s_b, *_ = replica_b.open_chat(chat_id, None)
    history, s_b = ask(replica_b, "Compared with the prior?", history, s_b, mode=STUDY_QA)
    assert s_b.chat_id == chat_id and _answered_by(history) == home
