"""The status line names the LLM pool and, while one of its servers is down, which one and where its
conversations went (the pool faked at the transport; the real failover is tests/integration/test_llm_pool.py)."""

from __future__ import annotations

from typing import Any

import httpx

from assistant.llm.client import PooledChatClient, complete
from tests.assistant.llm.test_pool import Servers, conversation
from ui.workspace import Workspace


def test_the_status_line_says_when_a_server_of_the_pool_is_down(make_runtime: Any) -> None:
    runtime = make_runtime()
    servers = Servers()
    pool = PooledChatClient(("http://gpu1:8000", "http://gpu2:8000"), model="tiny",
                            transport=httpx.MockTransport(servers))  # fmt: skip
    runtime.client = pool
    ws = Workspace(runtime)
    assert "(pool of 2 vLLM servers, all up)" in ws.status_line()
    home = complete(pool, conversation("Is there an effusion?"))
    servers.dead.add(home)
    moved = complete(pool, conversation("Is there an effusion?", "And the heart?"))
    line = ws.status_line()
    assert f"⚠️ failed over: http://{home}:8000/v1 down, its conversations on http://{moved}:8000/v1" in line
    pool.close()


def test_the_status_line_names_the_profile_and_whether_images_go_once(make_runtime: Any) -> None:
    from assistant.vision.profiles import BUILTIN_PROFILES

    ws = Workspace(make_runtime())
    ws.vision.profile = BUILTIN_PROFILES["llava-embeds"]  # straight to vLLM: embeddings every turn
    assert "profile: **llava-embeds** · image content:" in ws.status_line()
    ws.vision.profile = BUILTIN_PROFILES["llava-embeds"].replace(send_once=True)  # behind the embeddings cache
    assert "profile: **llava-embeds** (each image sent once per conversation)" in ws.status_line()
    ws.vision.profile = BUILTIN_PROFILES["text-only"]
    assert "once" not in ws.status_line()
