"""Preparing the default model: once, atomically, verified by a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import ModelPreparationError
from assistant.llm.model_files import MANIFEST, manifest_is_valid, prepare_model, resolve_chat_model


class Interrupted(Exception):
    pass


def write_model(_src: Path, out: Path) -> None:
    (out / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    (out / "model.safetensors").write_bytes(b"\0" * 1000)


def crash_half_way(_src: Path, out: Path) -> None:
    (out / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
    raise Interrupted("power cut")


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\1" * 100)
    return path


def test_conversion_happens_once(tmp_path: Path, source: Path) -> None:
    calls: list[Path] = []

    def counting(src: Path, out: Path) -> None:
        calls.append(out)
        write_model(src, out)

    target = tmp_path / "models" / "m"
    assert prepare_model(source, target, counting) == target
    assert prepare_model(source, target, counting) == target
    assert len(calls) == 1
    manifest = json.loads((target / MANIFEST).read_text())
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}


def test_an_interrupted_conversion_leaves_nothing_usable_and_is_redone(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "models" / "m"
    with pytest.raises(Interrupted):
        prepare_model(source, target, crash_half_way)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no half-written temporary folder left either
    prepare_model(source, target, write_model)
    assert manifest_is_valid(target, deep=True)


def test_a_leftover_temporary_folder_from_a_killed_process_is_cleared(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "models" / "m"
    stale = target.parent / ".m.tmp-abc123"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    prepare_model(source, target, write_model)
    assert not stale.exists() and manifest_is_valid(target)


def test_a_folder_without_manifest_or_with_a_truncated_file_is_converted_again(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "models" / "m"
    prepare_model(source, target, write_model)
    with open(target / "model.safetensors", "r+b") as fh:
        fh.truncate(10)
    assert not manifest_is_valid(target)
    prepare_model(source, target, write_model)
    assert (target / "model.safetensors").stat().st_size == 1000
    (target / MANIFEST).unlink()
    prepare_model(source, target, write_model)
    assert manifest_is_valid(target, deep=True)


def test_a_changed_source_is_converted_again(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "models" / "m"
    prepare_model(source, target, write_model)
    source.write_bytes(b"GGUF" + b"\2" * 100)
    assert not manifest_is_valid(target, source_sha256="different")
    calls = []
    prepare_model(source, target, lambda s, o: (calls.append(1), write_model(s, o)))
    assert calls == [1]


def test_configured_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelPreparationError, match="no config.json"):
        resolve_chat_model(str(tmp_path / "empty-model"), tmp_path / "models")


def test_configured_model_id_is_passed_through(tmp_path: Path) -> None:
    assert resolve_chat_model("microsoft/llava-med-v1.5-mistral-7b", tmp_path) == (
        "microsoft/llava-med-v1.5-mistral-7b",
        "microsoft/llava-med-v1.5-mistral-7b",
    )


def test_the_real_default_model_converts_to_a_plain_llama_folder(default_model_dir: Path) -> None:
    config = json.loads((default_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["rope_theta"] == 100000.0 and "quantization_config" not in config
    assert (default_model_dir / "tokenizer.json").is_file()
    assert manifest_is_valid(default_model_dir, deep=True)
