"""One client for any server that speaks the OpenAI chat-completions protocol (vLLM, local or remote).

Streaming is the normal path: ``stream_chat`` yields text pieces as the server sends them. Transport and
protocol failures become :class:`LLMUnavailableError` with a message that names the server and the cause
(:class:`ServerUnreachable` when the server itself is down or broke off).

Several servers (``RADASSIST_LLM_URL=http://gpu1:8000,http://gpu2:8000``) are one :class:`PooledChatClient`
(:func:`create_chat_client` picks): a conversation sticks to one server, so vLLM's prefix and image caches hit,
and moves to the next when that one is down. One router URL (vLLM's production-stack router, KServe) is simply
one server here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import httpx

from assistant.errors import LLMUnavailableError
from assistant.llm.urls import redact_url

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
    # Which server of a pool answers (never sent): the conversation's id; None = the conversation's first question.
    affinity_key: str | None = None


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

    def set_base_url(self, base_url: str) -> None:
        """Point the client at a new address (the embedded engine restarted on another port)."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/v1") else root + "/v1"

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
            return ServerUnreachable(f"cannot connect to the LLM server at {self.base_url} (is it running?)")
        if isinstance(exc, httpx.TimeoutException):
            return ServerUnreachable(f"the LLM server at {self.base_url} timed out ({kind})")
        return ServerUnreachable(f"the connection to the LLM server at {self.base_url} failed ({kind})")

    def pool_status(self) -> str | None:
        """For the status line: which servers of a pool are down and who answers instead (None: one server)."""
        return None

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
                    error = ServerUnreachable if response.status_code in _SERVER_DOWN else LLMUnavailableError
                    raise error(
                        f"the LLM server at {self.base_url} refused the request "
                        f"({response.status_code}: {error_detail(response)})"
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
                raise ServerUnreachable(
                    f"the LLM server at {self.base_url} closed the connection in the middle of the answer"
                ) from exc
            raise self._unreachable(exc) from exc
        except json.JSONDecodeError as exc:
            raise LLMUnavailableError(f"the LLM server at {self.base_url} sent a malformed stream") from exc
        if not finished:
            raise LLMUnavailableError(f"the LLM server at {self.base_url} ended the answer before it was complete")


# A gateway in front of a dead server, or a server shutting down / overloaded: another server may answer.
_SERVER_DOWN = frozenset({502, 503, 504})


class ServerUnreachable(LLMUnavailableError):
    """The server is down, unreachable, timed out or broke off the answer (another server of a pool may answer);
    a refusal of the request itself (4xx) is a plain :class:`LLMUnavailableError`."""


def split_urls(value: str | Sequence[str]) -> tuple[str, ...]:
    """The servers of ``RADASSIST_LLM_URL``: a comma-separated list (or a sequence), blanks dropped, order kept."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(u.strip() for u in items if u.strip()))


def create_chat_client(
    urls: str | Sequence[str],
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 120.0,
    transport: httpx.BaseTransport | None = None,
) -> OpenAIChatClient:
    """A client of one server, or a :class:`PooledChatClient` when ``urls`` names several."""
    servers = split_urls(urls)
    if not servers:
        raise ValueError("no LLM server URL given")
    if len(servers) == 1:
        return OpenAIChatClient(servers[0], model, api_key, timeout_s, transport)
    return PooledChatClient(servers, model, api_key, timeout_s, transport)


# The conversation whose answer is being computed, for model calls made deep inside a mode (the guideline mode's
# parameter extraction and phrasing, grounded answers) that build their own options: set by
# :func:`conversation_affinity` around them.
_CONVERSATION: ContextVar[str | None] = ContextVar("radassist_conversation", default=None)


@contextmanager
def conversation_affinity(key: str | None) -> Iterator[None]:
    """Every model call inside goes to the server of conversation ``key`` (None: each call's own key)."""
    token = _CONVERSATION.set(key)
    try:
        yield
    finally:
        _CONVERSATION.reset(token)


def affinity_of(messages: Sequence[ChatMessage], options: GenerationOptions | None) -> str:
    """The key that picks a conversation's server: ``options.affinity_key`` (the conversation id) when given, else
    the conversation set by :func:`conversation_affinity`, else the text of its first question, the same in every
    turn of the conversation."""
    if options is not None and options.affinity_key:
        return options.affinity_key
    if conversation := _CONVERSATION.get():
        return conversation
    for message in messages:
        if message.role is Role.USER:
            if isinstance(message.content, str):
                return message.content
            return " ".join(str(p.get("text", "")) for p in message.content if p.get("type") == "text")
    return ""


class PooledChatClient(OpenAIChatClient):
    """Several OpenAI-compatible servers serving the same model, used as one.

    Each conversation is sent to the server ranked first for its key by rendezvous hashing (the highest
    ``sha256(key, server)``): every app replica picks the same server for it without sharing any state, and a
    server leaving moves only its own conversations. A server that cannot be reached (or breaks off) is marked
    down for ``retry_down_s`` and the request goes, before any text was shown, to the next server in the
    conversation's ranking; an answer broken off half-way is an error ("ask again"), never a spliced answer. The
    status line says which servers are down and where their conversations went (:meth:`pool_status`).
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
        retry_down_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        servers = split_urls(base_urls)
        if len(servers) < 2:
            raise ValueError(f"a pool needs at least two server URLs, got {list(base_urls)!r}")
        if retry_down_s <= 0:
            raise ValueError(f"retry_down_s must be positive, got {retry_down_s}")
        super().__init__(servers[0], model, api_key, timeout_s, transport)
        self.members = tuple(OpenAIChatClient(u, model, api_key, timeout_s, transport) for u in servers)
        self.retry_down_s = retry_down_s
        self._clock = clock
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}  # base_url -> when it may be tried again (clock)
        self._moved: dict[str, str] = {}  # down server's base_url -> the server that last answered in its place

    def close(self) -> None:
        for member in self.members:
            member.close()
        super().close()

    def set_base_url(self, base_url: str) -> None:
        raise ValueError("a pool of LLM servers has no single address to change")

    @property
    def model_id(self) -> str:
        if self._model is None:
            error: LLMUnavailableError | None = None
            for member in self._ranked(""):
                try:
                    self._model = member.model_id
                    break
                except LLMUnavailableError as exc:
                    self._mark_down(member, exc)
                    error = exc
            else:
                raise LLMUnavailableError(f"none of the {len(self.members)} LLM servers answered: {error}")
        return self._model

    def _home(self, key: str) -> list[OpenAIChatClient]:
        """The servers in ``key``'s order of preference (rendezvous hashing), whether up or down."""

        def weight(member: OpenAIChatClient) -> bytes:
            return hashlib.sha256(f"{key}\x00{member.base_url}".encode()).digest()

        return sorted(self.members, key=weight, reverse=True)

    def _ranked(self, key: str) -> list[OpenAIChatClient]:
        """The servers in ``key``'s order of preference; those marked down (and not due a retry) last."""
        now = self._clock()
        with self._lock:
            down = {url for url, until in self._down.items() if until > now}
        ranked = self._home(key)
        return [m for m in ranked if m.base_url not in down] + [m for m in ranked if m.base_url in down]

    def _mark_down(self, member: OpenAIChatClient, exc: LLMUnavailableError) -> None:
        with self._lock:
            fresh = member.base_url not in self._down
            self._down[member.base_url] = self._clock() + self.retry_down_s
        if fresh:
            logger.warning(
                "LLM server %s is down (%s); its conversations go to the others", redact_url(member.base_url),
                redact_url(str(exc)),
            )  # fmt: skip

    def _mark_up(self, member: OpenAIChatClient, preferred: OpenAIChatClient) -> None:
        with self._lock:
            if self._down.pop(member.base_url, None) is not None:
                self._moved.pop(member.base_url, None)
                logger.info("LLM server %s answers again", redact_url(member.base_url))
            if preferred is not member:
                self._moved[preferred.base_url] = member.base_url

    def pool_status(self) -> str | None:
        now = self._clock()
        with self._lock:
            down = [url for url, until in self._down.items() if until > now or url in self._moved]
            notes = [
                f"{redact_url(url)} down, its conversations on {redact_url(self._moved[url])}"
                if url in self._moved else f"{redact_url(url)} down"
                for url in down
            ]  # fmt: skip
        up = len(self.members) - len(down)
        if not notes:
            return f"pool of {len(self.members)} vLLM servers, all up"
        return f"pool of {len(self.members)} vLLM servers, {up} up · ⚠️ failed over: " + "; ".join(notes)

    def stream_chat(self, messages: Sequence[ChatMessage], options: GenerationOptions | None = None) -> Iterator[str]:
        """The answer from the conversation's server, or from the next one when it is down."""
        key = affinity_of(messages, options)
        ranked, preferred = self._ranked(key), self._home(key)[0]  # the conversation's own server, even when down
        error: LLMUnavailableError | None = None
        for member in ranked:
            started = False
            try:
                for piece in member.stream_chat(messages, options):
                    started = True
                    yield piece
            except ServerUnreachable as exc:
                self._mark_down(member, exc)
                if started:
                    raise ServerUnreachable(
                        f"{exc}; ask again: the next answer comes from another server of the pool"
                    ) from exc
                error = exc
                continue
            self._mark_up(member, preferred)
            if member is not preferred:
                logger.warning(
                    "answer from %s in place of %s (down)", redact_url(member.base_url), redact_url(preferred.base_url)
                )
            return
        raise ServerUnreachable(f"none of the {len(self.members)} LLM servers answered: {error}") from error


def _short(value: Any, limit: int = 200) -> str:
    text = value.get("message", str(value)) if isinstance(value, dict) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def error_detail(response: httpx.Response) -> str:
    """What an error answer of an OpenAI-compatible server says (its error message, or its text), shortened."""
    try:
        data = response.json()
    except ValueError:
        return _short(response.text or response.reason_phrase)
    if isinstance(data, dict) and "error" in data:
        return _short(data["error"])
    if isinstance(data, dict) and "detail" in data:
        return _short(data["detail"])
    return _short(data)
