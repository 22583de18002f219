"""An image-embeddings cache in front of a vLLM server, so that embeddings cross the network once per conversation.

vLLM answers an image sent by ``uuid`` alone (a null payload) from its multimodal processor cache, but only for
images it processes itself: precomputed ``image_embeds`` bypass that cache in vLLM 0.32 (vllm-project/vllm PR
#51827's review: "Requests carrying pre-computed embeddings bypass the cache too"), so a LLaVA conversation would
re-send each image's projected embeddings (a 576 x 4096 bf16 tensor is ~6 MB of base64) on every turn.

This sidecar runs on the model host, next to vLLM (``radassist models embeds-cache --upstream
http://127.0.0.1:8000``), and radassist talks to it instead of to vLLM (``RADASSIST_LLM_URL`` = the sidecar,
``RADASSIST_VISION_EMBEDS_CACHE=true``). On ``POST /v1/chat/completions`` every ``image_embeds`` part that carries
a ``uuid`` and its payload is remembered under that uuid once vLLM has accepted the request (per API key: clients
with different ``Authorization`` headers never share entries); a part with the uuid and a null payload gets the
payload back before the request goes on to vLLM (the request's size limit counts what is filled in). An unknown
uuid is answered 400 with vLLM's own cache-miss wording ("Cache miss ... data is not provided"), so the client
sends that request again in full, exactly as after a vLLM restart. Everything else (other paths, pixel parts,
streams, status codes) passes through unchanged.

The cache lives in this process's memory only (never on disk), bounded in bytes, least recently used first out;
the embeddings it holds are those of de-identified renderings that the model host receives anyway. It binds
127.0.0.1 unless told otherwise (and warns when told to listen elsewhere): a client that vLLM accepts can set
what a uuid stands for under its API key, so expose it only to the clients that ``--enable-mm-embeds`` trusts.

Public names: ``EmbedsStore``, ``CacheMiss``, ``fill_request``, ``namespace_of``, ``build_app``, ``serve``,
``STATUS_PATH``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from assistant.errors import ConfigurationError
from assistant.llm.urls import redact_url

logger = logging.getLogger(__name__)

STATUS_PATH = "/radassist/embeds-cache"  # GET: what the cache holds (counts and bytes); how `models check` knows it
DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_REQUEST_BYTES = 512 * 1024**2
_CHAT_PATH = "/v1/chat/completions"
# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded; nor, on the request, the two that httpx sets from the
# (possibly rewritten) body and the upstream URL. Replies are relayed raw, with their Content-Encoding.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
_NOT_FORWARDED = _HOP | {"host", "content-length"}


class CacheMiss(Exception):
    """A part sent by uuid alone whose payload this cache does not hold."""

    def __init__(self, uuid: str) -> None:
        super().__init__(uuid)
        self.uuid = uuid

    def message(self) -> str:
        # vLLM's wording (assistant.vision.profiles.is_cache_miss): the client then sends the request in full.
        return (
            f"Cache miss: the image_embeds item with uuid {self.uuid!r} is not in the embeddings cache and its "
            "data is not provided; send it again with its embeddings"
        )


class EmbedsStore:
    """Payloads by uuid, at most ``max_bytes`` of them (least recently used dropped first). Thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ConfigurationError(f"the embeddings cache needs a positive size, got {max_bytes} bytes")
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.stored = 0

    def put(self, uuid: str, payload: Any) -> None:
        size = _size(payload)
        with self._lock:
            old = self._items.pop(uuid, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                return  # larger than the whole cache: it goes through, and is sent in full next time
            self._items[uuid] = (payload, size)
            self._bytes += size
            self.stored += 1
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def get(self, uuid: str) -> Any:
        with self._lock:
            item = self._items.get(uuid)
            if item is None:
                self.misses += 1
                raise CacheMiss(uuid)
            self._items.move_to_end(uuid)
            self.hits += 1
            return item[0]

    def status(self) -> dict[str, int]:
        with self._lock:
            return {
                "items": len(self._items), "bytes": self._bytes, "max_bytes": self.max_bytes,
                "hits": self.hits, "misses": self.misses, "stored": self.stored,
            }  # fmt: skip


def _size(payload: Any) -> int:
    if isinstance(payload, str):
        return len(payload)
    return len(json.dumps(payload, separators=(",", ":")))


@dataclass(frozen=True)
class Filled:
    """What :func:`fill_request` did to one request."""

    pending: dict[str, Any] = field(default_factory=dict)  # uuid → payload sent in full: kept once vLLM accepts
    filled: int = 0  # embeds parts sent by uuid alone, given their payload back
    filled_bytes: int = 0  # what those payloads added to the request


def fill_request(body: Any, store: EmbedsStore, namespace: str = "") -> Filled:
    """Give the ``image_embeds`` parts of a chat request ``body`` (parsed JSON, changed in place) sent by uuid alone
    their payload, from this request's own full parts or from the store (under ``namespace``: one per API key);
    returns the full parts' payloads for the caller to :meth:`EmbedsStore.put` once vLLM has accepted the request
    (a refused request, e.g. without the API key, never puts anything in the cache). Raises :class:`CacheMiss` for a
    uuid neither holds; anything that is not a well-formed chat request is left for vLLM to judge."""
    parts = [p for p in _embeds_parts(body) if isinstance(p.get("uuid"), str) and p["uuid"]]
    pending = {p["uuid"]: p["image_embeds"] for p in parts if p.get("image_embeds") is not None}
    filled = filled_bytes = 0
    for part in parts:
        if part.get("image_embeds") is None:
            uuid = part["uuid"]
            payload = pending[uuid] if uuid in pending else store.get(namespace + uuid)
            part["image_embeds"] = payload
            filled += 1
            filled_bytes += _size(payload)
    return Filled(pending, filled, filled_bytes)


def _embeds_parts(body: Any) -> list[dict[str, Any]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    found = []
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "image_embeds":
                found.append(part)
    return found


def namespace_of(authorization: str | None) -> str:
    """The cache's key prefix for a request: clients with different API keys never share entries."""
    if not authorization:
        return ""
    return hashlib.sha256(authorization.encode()).hexdigest()[:16] + ":"


@dataclass(frozen=True)
class _Prepared:
    body: bytes
    pending: dict[str, Any]
    error: tuple[int, str] | None = None


def _prepare(body: bytes, store: EmbedsStore, namespace: str, limit: int) -> _Prepared:
    """Parse, fill and serialise one chat request (run in a worker thread: multi-MB JSON)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return _Prepared(body, {})  # vLLM says what is wrong with it
    try:
        done = fill_request(parsed, store, namespace)
    except CacheMiss as miss:
        logger.info("embeds cache miss for one image: the client sends it again in full")
        return _Prepared(body, {}, (400, miss.message()))
    if len(body) + done.filled_bytes > limit:
        return _Prepared(body, {}, (413, (
            f"the request with its cached images would be {len(body) + done.filled_bytes} bytes, over the "
            f"sidecar's limit of {limit} bytes"
        )))  # fmt: skip
    if done.filled:
        body = json.dumps(parsed, separators=(",", ":")).encode()
        logger.info("embeds cache: %d filled", done.filled)
    return _Prepared(body, done.pending)


def _error(status: int, message: str, kind: str = "BadRequestError") -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def build_app(
    upstream: str,
    store: EmbedsStore,
    timeout_s: float = 600.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Any:
    """The sidecar as an ASGI app forwarding to ``upstream`` (vLLM's base URL, without ``/v1``).
    ``transport``: for tests at the transport boundary only."""
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    base = upstream.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    if not base.startswith(("http://", "https://")):
        raise ConfigurationError(f"the upstream vLLM server must be an http(s) URL, got {redact_url(upstream)!r}")
    shown = redact_url(base)
    client = httpx.AsyncClient(
        base_url=base, timeout=httpx.Timeout(timeout_s, connect=10.0), transport=transport, trust_env=False
    )

    async def status(request: Request) -> Any:
        return JSONResponse({"upstream": shown, **store.status()})

    async def forward(request: Request) -> Any:
        body = await _read_body(request, max_request_bytes)
        if body is None:
            return _error(413, f"the request is larger than the sidecar's limit of {max_request_bytes} bytes")
        namespace = namespace_of(request.headers.get("authorization"))
        pending: dict[str, Any] = {}
        if request.method == "POST" and request.url.path == _CHAT_PATH and b'"image_embeds"' in body:
            prepared = await run_in_threadpool(_prepare, body, store, namespace, max_request_bytes)
            if prepared.error is not None:
                return _error(*prepared.error)
            body, pending = prepared.body, prepared.pending
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        outgoing = client.build_request(
            request.method, request.url.path, params=request.query_params, headers=headers, content=body
        )
        try:
            response = await client.send(outgoing, stream=True)
        except httpx.HTTPError as exc:
            logger.warning("the vLLM server at %s did not answer: %s", shown, type(exc).__name__)
            return _error(502, f"the vLLM server behind the embeddings cache ({shown}) did not answer", "BadGateway")
        if response.status_code < 400:
            for uuid, payload in pending.items():  # accepted by vLLM: only now do its images answer for the uuid
                store.put(namespace + uuid, payload)
        reply_headers = {k: v for k, v in response.headers.items() if k.lower() not in _HOP}
        return StreamingResponse(
            _relay(response), status_code=response.status_code, headers=reply_headers,
            background=BackgroundTask(response.aclose),
        )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await client.aclose()

    routes = [
        Route(STATUS_PATH, status, methods=["GET"]),
        Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()  # also when vLLM or the client broke off mid-stream


async def _read_body(request: Any, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def serve(
    upstream: str,
    host: str = "127.0.0.1",
    port: int = 8001,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = 600.0,
) -> None:
    """Run the sidecar until interrupted."""
    import uvicorn

    if host not in ("127.0.0.1", "::1", "localhost"):
        logger.warning(
            "the embeddings cache listens on %s: every client that reaches it and that vLLM accepts can set image "
            "embeddings by uuid; expose it only to trusted clients (as vLLM's --enable-mm-embeds)", host
        )  # fmt: skip
    app = build_app(upstream, EmbedsStore(max_bytes), timeout_s)
    logger.info("embeddings cache on %s:%d in front of %s", host, port, redact_url(upstream))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
