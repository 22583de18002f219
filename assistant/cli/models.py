"""``radassist models convert SRC DST``: an original-LLaVA checkpoint → a vLLM folder and a vision bundle.

``radassist models show DIR`` prints the vision bundle of a converted folder; ``radassist models check URL`` probes
a running server (model, images, image tokens, the vision profile that fits). Each prints plain text, or one JSON
object with ``--json``. ``radassist models embeds-cache --upstream URL`` runs the image-embeddings cache in front
of a vLLM server (:mod:`assistant.llm.embeds_cache`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from assistant.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``models`` subcommand."""
    parser = sub.add_parser("models", help="prepare vision-language models (LLaVA conversion)")
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    convert = actions.add_parser(
        "convert",
        help="convert an original-LLaVA checkpoint (LLaVA v1.5, LLaVA-Med, LLaVA-Rad) for vLLM + radassist",
        description=(
            "Write DST as an HF LlavaForConditionalGeneration folder that vLLM serves with --enable-mm-embeds "
            "--limit-mm-per-prompt '{\"image\": 0}', plus DST/radassist-vision/ (encoder spec and projector) "
            "for the client."
        ),
    )
    convert.add_argument("src", type=Path, metavar="SRC", help="original LLaVA checkpoint folder")
    convert.add_argument("dst", type=Path, metavar="DST", help="output folder")
    convert.add_argument("--encoder-model", help="open_clip model name or hf-hub:/local-dir: id (default: from SRC)")
    convert.add_argument("--encoder-pretrained", help="open_clip pretrained tag or weights file")
    convert.add_argument("--encoder-config", type=Path, help="open_clip architecture JSON (LLaVA-Rad style)")
    convert.add_argument("--chat-template", type=Path, help="Jinja chat template file (default: SRC's, else Vicuna v1)")
    convert.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    convert.add_argument("--image-tokens", type=int, help="tokens per image, when the encoder cannot be built here")
    convert.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    convert.add_argument("--json", action="store_true", help="print one JSON object")
    convert.set_defaults(func=run)

    show = actions.add_parser("show", help="print the vision bundle of a converted model folder")
    show.add_argument("folder", type=Path, metavar="DIR")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=run)

    check = actions.add_parser(
        "check",
        help="probe a running OpenAI-compatible server: model, images, image tokens, the profile that fits",
        description=(
            "Sends one text question and one tiny synthetic test image (no patient data) to URL and reports the "
            "model, whether it takes images, how many tokens the image took and which RADASSIST_VISION_PROFILE fits."
        ),
    )
    check.add_argument("url", metavar="URL", help="the server's base URL, e.g. http://gpu-box:8000")
    check.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=run)

    cache = actions.add_parser(
        "embeds-cache",
        help="run the image-embeddings cache in front of a vLLM embeddings server (on the model host)",
        description=(
            "Forwards everything to UPSTREAM (a vLLM server started with --enable-mm-embeds) and remembers the "
            "image_embeds payloads by uuid, so radassist (RADASSIST_VISION_EMBEDS_CACHE=true, RADASSIST_LLM_URL = "
            "this server) sends each image once per conversation. Memory only, never disk; binds 127.0.0.1 "
            "unless --host says otherwise."
        ),
    )
    cache.add_argument("--upstream", required=True, metavar="URL", help="the vLLM server, e.g. http://127.0.0.1:8000")
    cache.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cache.add_argument("--port", type=int, default=8001, help="port to listen on (default 8001)")
    cache.add_argument("--max-mb", type=int, default=2048, help="memory for cached embeddings in MiB (default 2048)")
    cache.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for vLLM per request")
    cache.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``models convert`` or ``models show``; 0 on success."""
    if args.models_command == "show":
        return _show(args)
    if args.models_command == "check":
        return _check(args)
    if args.models_command == "embeds-cache":
        return _embeds_cache(args)
    return _convert(args)


def _check(args: argparse.Namespace) -> int:
    from assistant.vision.probe import check_server

    result = check_server(args.url, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(f"server:         {result.url}")
    loaded = f" ({result.root})" if result.root and result.root != result.model else ""
    print(f"model:          {result.model}{loaded}")
    if result.max_model_len:
        print(f"context:        {result.max_model_len} tokens")
    print(f"takes images:   {'yes, as pixels' if result.accepts_images else 'no pixels'}")
    if result.image_tokens is not None:
        print(f"image tokens:   {result.image_tokens} for a 64x64 test image (prompt grew by {result.prompt_growth})")
    print(f"profile:        {result.profile} ({result.reason})")
    if result.embeds_cache:
        print("embeds cache:   yes (radassist models embeds-cache): embeddings are sent once per conversation")
    cache = " RADASSIST_VISION_EMBEDS_CACHE=true" if result.embeds_cache and result.profile.endswith("-embeds") else ""
    print(f"set:            RADASSIST_LLM_URL={result.url} RADASSIST_VISION_PROFILE={result.profile}{cache}")
    return 0


def _embeds_cache(args: argparse.Namespace) -> int:
    from assistant.errors import ConfigurationError
    from assistant.llm.embeds_cache import serve

    if not 0 < args.port < 65536:
        raise ConfigurationError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_mb < 1:
        raise ConfigurationError(f"--max-mb must be at least 1, got {args.max_mb}")
    _progress(f"embeddings cache on http://{args.host}:{args.port} ({args.max_mb} MiB) in front of the vLLM server")
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        _progress(
            f"warning: listening on {args.host}: any client that reaches it and that vLLM accepts can set image "
            "embeddings by uuid; expose it only to trusted clients (as vLLM's --enable-mm-embeds)"
        )
    serve(args.upstream, host=args.host, port=args.port, max_bytes=args.max_mb * 1024**2, timeout_s=args.timeout)
    return 0


def _progress(message: str) -> None:
    print(f"radassist: {message}", file=sys.stderr, flush=True)


def _convert(args: argparse.Namespace) -> int:
    from assistant.errors import ConfigurationError
    from assistant.vision.convert import convert_llava_checkpoint, encoder_spec_for, read_llava_config

    encoder = None
    if args.encoder_model or args.encoder_pretrained or args.encoder_config:
        encoder = encoder_spec_for(
            read_llava_config(args.src),
            model_name=args.encoder_model,
            pretrained=args.encoder_pretrained,
            config_path=str(args.encoder_config) if args.encoder_config else None,
        )
    template = None
    if args.chat_template is not None:
        try:
            template = args.chat_template.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read the chat template {args.chat_template}: {exc.strerror}") from exc
    result = convert_llava_checkpoint(
        args.src,
        args.dst,
        encoder=encoder,
        chat_template=template,
        dtype=args.dtype,
        image_tokens=args.image_tokens,
        overwrite=args.overwrite,
        progress=None if args.json else _progress,
    )
    info: dict[str, Any] = {
        "model_dir": str(result.model_dir),
        "bundle": str(result.bundle_file),
        "projector": result.projector_type,
        "llm_hidden_size": result.llm_hidden_size,
        "image_tokens": result.image_tokens,
        "image_token_index": result.image_token_index,
        "encoder": result.encoder.to_dict(),
        "serve": result.serve_command(),
    }
    if args.json:
        sys.stdout.write(json.dumps(info) + "\n")
        return 0
    sys.stdout.write(
        f"converted: {result.model_dir}\n"
        f"  projector {result.projector_type} → hidden size {result.llm_hidden_size}, "
        f"{result.image_tokens or '?'} tokens per image\n"
        f"  encoder {result.encoder.model_name} (pretrained={result.encoder.pretrained}), "
        f"layer {result.encoder.select_layer}, {result.encoder.select_feature}\n"
        f"serve it with:\n  {result.serve_command()}\n"
        f"and point radassist at it:\n"
        f"  RADASSIST_LLM_URL=http://HOST:8000 RADASSIST_VISION_BUNDLE={result.model_dir}\n"
        f"  (or RADASSIST_LLM_MODEL={result.model_dir} for the embedded engine; add the two flags to "
        f"RADASSIST_ENGINE_EXTRA_ARGS)\n"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    from assistant.vision.profiles import load_bundle

    bundle = load_bundle(args.folder)
    data = bundle.to_json()
    if args.json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        enc = data["encoder"]
        sys.stdout.write(
            f"vision bundle {bundle.folder}\n  encoder {enc['model_name']} (pretrained={enc['pretrained']}), "
            f"layer {enc['select_layer']}, {enc['select_feature']}, aspect {enc['image_aspect_ratio']}\n"
            f"  projector {bundle.projector_type} → {bundle.llm_hidden_size}, "
            f"{bundle.image_tokens or '?'} tokens per image, sent as {bundle.embeds_dtype}\n"
        )
    return 0
