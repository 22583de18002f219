"""A tiny random-weight Gemma 3 vision-language model (MedGemma's architecture), built at test time.

``Gemma3ForConditionalGeneration``: a 2-layer SigLIP tower + Gemma 3's multimodal projector (average pooling to
``mm_tokens_per_image``) + a 2-layer Gemma 3 text model, saved with a ``Gemma3Processor`` made of the family's
own classes: ``Gemma3ImageProcessor`` (square resize, mean/std 0.5 as MedGemma ships), a small tokenizer
carrying ``<start_of_image>``, ``<image_soft_token>``, ``<end_of_image>``, ``<start_of_turn>``/``<end_of_turn>``
and a chat template with Gemma's turn structure (``user``/``model`` roles, system folded into the first user
turn, ``<start_of_image>`` where each image goes). vLLM expands ``<start_of_image>`` into
``\\n\\n<start_of_image>`` + ``mm_tokens_per_image`` x ``<image_soft_token>`` + ``<end_of_image>\\n\\n``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.tiny_tokenizer import build_tiny_tokenizer

GEMMA3_IMAGE_SIZE = 56  # px; 4 x 4 SigLIP patches of 14 px (MedGemma: 896 px, 64 x 64 patches)
GEMMA3_IMAGE_TOKENS = 4  # mm_tokens_per_image (MedGemma: 256); 2 x 2 after average pooling
GEMMA3_HIDDEN = 128  # 2 heads of 64: a head size vLLM's CPU attention supports
GEMMA3_SPECIALS = [
    "<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>",
]  # fmt: skip

# Gemma's turn structure: roles user/model, the system prompt folded into the first user turn, an image is
# <start_of_image> at its place in the content. (Written for these tests; same structure as Gemma 3's.)
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set ns = namespace(system='') -%}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set ns.system = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set ns.system = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set messages = messages[1:] -%}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}{%- if loop.first %}{{ ns.system }}{% endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def build_tiny_gemma3(out: Path) -> Path:
    """Write a tiny Gemma 3 VLM folder (weights, config, processor, tokenizer, chat template) to ``out``."""
    import torch
    from tokenizers import AddedToken
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    tokenizer = build_tiny_tokenizer(
        GEMMA3_SPECIALS,
        {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"},
        GEMMA3_CHAT_TEMPLATE,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
    )
    # Gemma's vocabulary holds runs of 1-4 newlines as single tokens, and vLLM's Gemma 3 processor looks them up.
    tokenizer.add_tokens([AddedToken("\n" * n, normalized=False, special=False) for n in range(1, 5)])
    vocab = -(-len(tokenizer) // 64) * 64
    text = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=GEMMA3_HIDDEN,
        intermediate_size=2 * GEMMA3_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=GEMMA3_HIDDEN // 64,
        num_key_value_heads=1,
        head_dim=64,
        query_pre_attn_scalar=64,
        sliding_window=512,
        layer_types=["sliding_attention", "full_attention"],  # Gemma 3 interleaves local and global layers
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = SiglipVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        image_size=GEMMA3_IMAGE_SIZE,
        patch_size=14,
        vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        mm_tokens_per_image=GEMMA3_IMAGE_TOKENS,
        boi_token_index=tokenizer.boi_token_id,
        eoi_token_index=tokenizer.eoi_token_id,
        image_token_index=tokenizer.image_token_id,
    )
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():  # transformers initialises the projection to zeros: every image would look alike
        projection = model.model.multi_modal_projector.mm_input_projection_weight  # (vision width, text width)
        projection.normal_(0.0, 0.1)
    _make_visible(model.lm_head.weight, tokenizer)
    model.to(torch.bfloat16).save_pretrained(out)
    _published_layout(out / "model.safetensors")
    image_processor = Gemma3ImageProcessor(
        size={"height": GEMMA3_IMAGE_SIZE, "width": GEMMA3_IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=GEMMA3_IMAGE_TOKENS,
    )
    processor.save_pretrained(out)
    return out


def _published_layout(weights: Path) -> None:
    """Name the SigLIP tower ``vision_tower.vision_model.*`` as published Gemma 3 / MedGemma checkpoints do
    (transformers 5 writes ``vision_tower.*``, which vLLM's loader does not map)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    renamed = {
        ("vision_tower.vision_model." + k[len("vision_tower."):] if k.startswith("vision_tower.") else k): v
        for k, v in state.items()
    }
    save_file(renamed, str(weights), metadata={"format": "pt"})


def _make_visible(weight: Any, tokenizer: Any, scale: float = 4.0) -> None:
    """Random weights talk nonsense; keep it printable: special and blank tokens get zero logits."""
    import torch

    silent = [i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()]
    silent += list(tokenizer.all_special_ids)
    silent += list(range(len(tokenizer), weight.shape[0]))  # padding rows of the vocabulary
    with torch.no_grad():
        weight.mul_(scale)  # peaky enough to print words, not so peaky that logprobs saturate
        weight[silent] = 0.0
