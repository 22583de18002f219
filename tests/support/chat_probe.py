"""Greedy chat completions against a real vLLM server, with what the vision tests compare: the prompt's token ids
(to count image tokens), the answer and its logprobs, and the bytes of the request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from assistant.llm.client import ChatMessage


@dataclass(frozen=True)
class Probe:
    prompt_ids: list[int]
    text: str
    logprobs: list[float]
    request_bytes: int

    def count(self, token_id: int) -> int:
        return sum(1 for t in self.prompt_ids if t == token_id)


def request_body(model: str, messages: list[ChatMessage], max_tokens: int = 4) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [m.to_openai() for m in messages],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "logprobs": True,
        "ignore_eos": True,
        "return_token_ids": True,  # vLLM: the prompt as the model saw it, image tokens expanded
    }


def probe(url: str, model: str, messages: list[ChatMessage], max_tokens: int = 4) -> Probe:
    """One greedy completion; fails the test with the server's message on any refusal."""
    body = request_body(model, messages, max_tokens)
    raw = json.dumps(body).encode()
    response = httpx.post(
        f"{url}/v1/chat/completions", content=raw, headers={"content-type": "application/json"},
        timeout=300, trust_env=False,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    data = response.json()
    choice = data["choices"][0]
    return Probe(
        prompt_ids=list(data["prompt_token_ids"]),
        text=choice["message"]["content"],
        logprobs=[t["logprob"] for t in choice["logprobs"]["content"]],
        request_bytes=len(raw),
    )


def image_bytes(messages: list[ChatMessage]) -> int:
    """Bytes of the image payloads in ``messages`` (0 for parts sent by uuid alone)."""
    total = 0
    for message in messages:
        if isinstance(message.content, str):
            continue
        for part in message.content:
            kind = part.get("type")
            if kind in ("image_url", "image_embeds") and part.get(kind) is not None:
                total += len(json.dumps(part[kind]))
    return total
