"""One client for any server that speaks the OpenAI chat-completions protocol (vLLM, local or remote).

Streaming is the normal path: ``stream_chat`` yields text pieces as the server sends them. Transport and
protocol failures become :class:`LLMUnavailableError` with a message that names the server and the cause.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import httpx

from assistant.errors import LLMUnavailableError

logger = logging.getLogger(__name__)


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation; ``content`` is plain text or a list of OpenAI content parts."""

    role: Role
    content: str | tuple[dict[str, Any], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))

    def to_openai(self) -> dict[str, Any]:
        content = self.content if isinstance(self.content, str) else list(self.content)
        return {"role": self.role.value, "content": content}


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling options sent with a request."""

    max_tokens: int = 512
    temperature: float = 0.2
    response_format: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChatModel(Protocol):
    """What the conversation engine needs from a language model."""

    @property
    def model_id(self) -> str: ...

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> Iterator[str]: ...


def complete(model: ChatModel, messages: Sequence[ChatMessage], options: GenerationOptions | None = None) -> str:
    """The whole answer of ``model`` as one string."""
    return "".join(model.stream_chat(messages, options))


class OpenAIChatClient:
    """Streams chat completions from ``base_url`` (e.g. ``http://127.0.0.1:8000``; ``/v1`` is optional)."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/v1") else root + "/v1"
        self._model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Connect fast, but let a slow CPU engine take its time between streamed tokens.
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
            trust_env=False,  # a local engine must never be reached through a proxy
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model_id(self) -> str:
        if self._model is None:
            self._model = self._first_model()
        return self._model

    def _first_model(self) -> str:
        try:
            response = self._http.get(f"{self.base_url}/models")
            response.raise_for_status()
            data = response.json()["data"]
            return str(data[0]["id"])
        except httpx.HTTPStatusError as exc:
            raise LLMUnavailableError(
                f"the LLM server at {self.base_url} answered {exc.response.status_code} when asked for its models"
            ) from exc
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        except (KeyError, IndexError, ValueError) as exc:
            raise LLMUnavailableError(f"the LLM server at {self.base_url} lists no model") from exc

    def _unreachable(self, exc: httpx.HTTPError) -> LLMUnavailableError:
        kind = type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            return LLMUnavailableError(f"cannot connect to the LLM server at {self.base_url} (is it running?)")
        if isinstance(exc, httpx.TimeoutException):
            return LLMUnavailableError(f"the LLM server at {self.base_url} timed out ({kind})")
        return LLMUnavailableError(f"the connection to the LLM server at {self.base_url} failed ({kind})")

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None
    ) -> Iterator[str]:
        """Yield the answer's text pieces as they arrive."""
        options = options or GenerationOptions()
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.to_openai() for m in messages],
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "stream": True,
            **options.extra,
        }
        if options.response_format is not None:
            body["response_format"] = options.response_format
        finished = False
        try:
            with self._http.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise LLMUnavailableError(
                        f"the LLM server at {self.base_url} refused the request "
                        f"({response.status_code}: {_error_detail(response)})"
                    )
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        finished = True
                        break
                    event = json.loads(payload)
                    if "error" in event:
                        raise LLMUnavailableError(f"the LLM server reported an error: {_short(event['error'])}")
                    for choice in event.get("choices", []):
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
                raise LLMUnavailableError(
                    f"the LLM server at {self.base_url} closed the connection in the middle of the answer"
                ) from exc
            raise self._unreachable(exc) from exc
        except json.JSONDecodeError as exc:
            raise LLMUnavailableError(f"the LLM server at {self.base_url} sent a malformed stream") from exc
        if not finished:
            raise LLMUnavailableError(f"the LLM server at {self.base_url} ended the answer before it was complete")


def _short(value: Any, limit: int = 200) -> str:
    text = value.get("message", str(value)) if isinstance(value, dict) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return _short(response.text or response.reason_phrase)
    if isinstance(data, dict) and "error" in data:
        return _short(data["error"])
    if isinstance(data, dict) and "detail" in data:
        return _short(data["detail"])
    return _short(data)
