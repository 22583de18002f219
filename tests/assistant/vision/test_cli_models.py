"""``radassist models convert`` / ``models show`` through their argparse registration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from assistant.cli import models as cli_models
from assistant.settings import load_settings


def _run(argv: list[str], tmp_path: Path) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_models.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args, load_settings(env={}, data_dir=tmp_path)))


def test_models_convert_prints_the_serve_command(
    tiny_llava_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "out"
    assert _run(["models", "convert", str(tiny_llava_source), str(dst), "--json", "--dtype", "float16"], tmp_path) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["projector"] == "mlp2x_gelu" and info["image_tokens"] == 16
    assert "--enable-mm-embeds" in info["serve"] and '{"image": 0}' in info["serve"]
    assert json.loads((dst / "config.json").read_text())["dtype"] == "float16"
    assert _run(["models", "show", str(dst)], tmp_path) == 0
    assert "mlp2x_gelu" in capsys.readouterr().out


def test_models_convert_with_a_chat_template_file(tiny_llava_source: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from assistant.vision.convert import VICUNA_V1_TEMPLATE

    template = tmp_path / "vicuna.jinja"
    template.write_text(VICUNA_V1_TEMPLATE)
    dst = tmp_path / "out"
    assert _run(["models", "convert", str(tiny_llava_source), str(dst), "--chat-template", str(template)],
                tmp_path) == 0  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(dst)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "<image>\nIs there a pneumothorax?"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith(" USER: <image>\nIs there a pneumothorax? ASSISTANT:")
    assert "A chat between a curious human" in text
