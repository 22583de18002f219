"""A tiny random-weight Qwen2.5-VL (Lingshu-7B's and CheXOne's architecture), built at test time.

``Qwen2_5_VLForConditionalGeneration``: a 2-block Qwen2.5-VL vision transformer (14 px patches, 2 x 2 patch
merger, windowed + full attention blocks) + a 2-layer Qwen2 text model with multimodal RoPE, saved with a
``Qwen2_5_VLProcessor`` of the family's own classes: ``Qwen2VLImageProcessor`` (dynamic resolution bounded by
``min_pixels``/``max_pixels``, OpenAI CLIP mean/std as Qwen ships), ``Qwen2VLVideoProcessor``, a small tokenizer
carrying ``<|im_start|>``/``<|im_end|>``, ``<|vision_start|>``, ``<|image_pad|>``, ``<|vision_end|>`` and a ChatML
template that puts ``<|vision_start|><|image_pad|><|vision_end|>`` where each image goes (vLLM expands the pad
to ``grid_t * grid_h * grid_w / merge_size**2`` tokens).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.tiny_gemma3 import _make_visible
from tests.support.tiny_tokenizer import build_tiny_tokenizer

QWEN_PATCH = 14
QWEN_MERGE = 2
QWEN_MAX_PIXELS = 112 * 112  # at most 8 x 8 patches = 16 image tokens per image (Qwen2.5-VL: 12845056)
QWEN_MIN_PIXELS = 56 * 56
QWEN_HIDDEN = 128
QWEN_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip

# ChatML with Qwen2-VL's image placeholder and default system prompt (written for these tests).
QWEN_CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or item['type'] == 'image_url' -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def qwen_image_tokens(grid_thw: tuple[int, int, int]) -> int:
    """LLM positions of one image: its patches over the 2 x 2 merge."""
    t, h, w = grid_thw
    return t * h * w // (QWEN_MERGE * QWEN_MERGE)


def build_tiny_qwen25vl(out: Path) -> Path:
    """Write a tiny Qwen2.5-VL folder (weights, config, processor, tokenizer, chat template) to ``out``."""
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_tiny_tokenizer(
        QWEN_SPECIALS,
        {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        QWEN_CHAT_TEMPLATE,
        eos="<|im_end|>",
        pad="<|endoftext|>",
    )
    ids = tokenizer.convert_tokens_to_ids
    vocab = -(-len(tokenizer) // 64) * 64
    text = {
        "vocab_size": vocab,
        "hidden_size": QWEN_HIDDEN,
        "intermediate_size": 2 * QWEN_HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": QWEN_HIDDEN // 64,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [8, 12, 12]},
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
        "bos_token_id": ids("<|endoftext|>"),
    }
    vision = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 1,
        "patch_size": QWEN_PATCH,
        "spatial_merge_size": QWEN_MERGE,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [1],  # block 0 windowed, block 1 full, as the real tower alternates
        "out_hidden_size": QWEN_HIDDEN,
    }
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    _make_visible(model.lm_head.weight, tokenizer)
    model.to(torch.bfloat16).save_pretrained(out)
    size = {"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": QWEN_MAX_PIXELS}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            size=size, patch_size=QWEN_PATCH, merge_size=QWEN_MERGE, temporal_patch_size=2
        ),
        video_processor=Qwen2VLVideoProcessor(
            size=size, patch_size=QWEN_PATCH, merge_size=QWEN_MERGE, temporal_patch_size=2
        ),
        tokenizer=tokenizer,
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    return out
