"""``radassist models check URL``: what a running OpenAI-compatible server is, and which vision profile fits it.

Three small requests: the model list (``/v1/models``), a one-token text question, and the same question with one
tiny synthetic test image (a 64 x 64 grey gradient, no patient data). From vLLM's answers: the model id, whether it
takes images as pixels (or refuses them, e.g. an embeddings-only LLaVA server started with
``--limit-mm-per-prompt '{"image": 0}'``), how many tokens the image took, and the profile that fits; and whether
the URL is radassist's embeddings cache in front of vLLM (its status path answers).

Public names: ``ServerCheck``, ``check_server``.
"""

from __future__ import annotations

import base64
import io
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import LLMUnavailableError
from assistant.llm.embeds_cache import STATUS_PATH
from assistant.vision.profiles import AUTO_BY_MODEL_TYPE, served_model_type

logger = logging.getLogger(__name__)

_QUESTION = "Describe the image."
# Names that identify a family when the server's model folder cannot be read from here.
_NAME_HINTS = (
    ("medgemma", "medgemma"), ("gemma-3", "medgemma"), ("gemma3", "medgemma"),
    ("lingshu", "qwen2-vl"), ("chexone", "qwen2-vl"), ("qwen2.5-vl", "qwen2-vl"), ("qwen2-vl", "qwen2-vl"),
    ("qwen2_5_vl", "qwen2-vl"), ("llava", "llava-embeds"),
)  # fmt: skip


@dataclass(frozen=True)
class ServerCheck:
    """What ``check_server`` found."""

    url: str
    model: str
    root: str | None  # the model path or id the server loaded (vLLM's ``root``)
    max_model_len: int | None
    accepts_images: bool  # takes a PNG image_url part
    image_tokens: int | None  # tokens the test image took in the prompt (the repeated image token), when measured
    prompt_growth: int | None  # prompt tokens the image added, wrappers included
    profile: str  # the vision profile that fits
    reason: str  # why that profile, or what the server said
    embeds_cache: bool = False  # the URL is radassist's embeddings cache in front of vLLM (`models embeds-cache`)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _test_image_url() -> str:
    from PIL import Image

    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # (64, 64) horizontal gradient
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp.T, ramp], axis=-1)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _profile_by_name(*names: str | None) -> str | None:
    for name in names:
        low = (name or "").lower()
        for hint, profile in _NAME_HINTS:
            if hint in low:
                return profile
    return None


def check_server(url: str, timeout_s: float = 120.0) -> ServerCheck:
    """Probe the server at ``url``; an unreachable server or one that is not OpenAI-compatible is an
    :class:`LLMUnavailableError` naming the URL."""
    import httpx

    base = url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            listing = client.get(f"{base}/v1/models")
            if listing.status_code != 200:
                raise LLMUnavailableError(
                    f"{base}/v1/models answered {listing.status_code}: not an OpenAI-compatible server"
                )
            models = listing.json().get("data") or []
            if not models:
                raise LLMUnavailableError(f"the server at {base} serves no model")
            entry = models[0]
            model = str(entry.get("id"))
            root = str(entry["root"]) if entry.get("root") else None
            max_len = int(entry["max_model_len"]) if isinstance(entry.get("max_model_len"), int) else None

            def ask(content: Any) -> httpx.Response:
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": content}],
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "return_token_ids": True,  # vLLM; other servers ignore it
                }
                return client.post(f"{base}/v1/chat/completions", json=body)

            embeds_cache = _is_embeds_cache(client, base)
            text = ask(_QUESTION)
            if text.status_code != 200:
                raise LLMUnavailableError(f"{base} refused a one-token text question ({text.status_code})")
            picture = {"type": "image_url", "image_url": {"url": _test_image_url()}}
            image = ask([picture, {"type": "text", "text": _QUESTION}])
    except httpx.HTTPError as exc:
        raise LLMUnavailableError(f"cannot reach an LLM server at {base}: {exc}") from exc
    except ValueError as exc:
        raise LLMUnavailableError(f"the server at {base} did not answer in the OpenAI format: {exc}") from exc

    by_type = AUTO_BY_MODEL_TYPE.get(served_model_type(root) or "") if root and Path(root).exists() else None
    by_name = _profile_by_name(root, model)
    if image.status_code != 200:
        said = _message(image)
        low = said.lower()
        if "at most 0 image" in low:
            profile = "qwen2-vl-embeds" if (by_type or by_name) == "qwen2-vl" else "llava-embeds"
            reason = "the server takes no pixels (--limit-mm-per-prompt image 0): image embeddings only"
        else:
            profile, reason = "text-only", f"the server refused an image: {said}"
        return ServerCheck(base, model, root, max_len, False, None, None, profile, reason, embeds_cache)

    text_ids = list(text.json().get("prompt_token_ids") or [])
    image_ids = list(image.json().get("prompt_token_ids") or [])
    growth = int(image.json()["usage"]["prompt_tokens"]) - int(text.json()["usage"]["prompt_tokens"])
    tokens = None
    if image_ids:
        added = Counter(image_ids) - Counter(text_ids)
        token, count = added.most_common(1)[0] if added else (None, 0)
        tokens = count if token is not None else None
    profile = by_type or by_name or "pixels"
    reason = (
        f"model type of {root}" if by_type else f"the model's name ({model})" if by_name else "takes images as pixels"
    )
    return ServerCheck(base, model, root, max_len, True, tokens, growth, profile, reason, embeds_cache)


def _is_embeds_cache(client: Any, base: str) -> bool:
    """Whether ``base`` is radassist's embeddings cache (its status path answers); any failure there means no."""
    import httpx

    try:
        answer = client.get(f"{base}{STATUS_PATH}")
    except httpx.HTTPError:
        return False  # a server that drops unknown paths is simply not the cache
    return answer.status_code == 200 and "max_bytes" in _json_or_empty(answer)


def _json_or_empty(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _message(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return str(response.text)[:300]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))[:300]
    return str(error or data)[:300]
