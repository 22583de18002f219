"""A tiny random-weight Llama that vLLM's CPU backend serves, and whose nonsense is visible text."""

from __future__ import annotations

from typing import Any


def build_tiny_llama(tokenizer: Any, hidden_size: int = 128) -> Any:
    """A 2-layer LlamaForCausalLM (head_dim 64: vLLM's CPU attention rejects 16) for ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=hidden_size // 64,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    # Random weights talk nonsense; make sure it is visible nonsense: whitespace-only and special tokens
    # (end-of-sequence included) get zero logits, so sampling picks printable tokens and never stops early.
    silent = [i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()]
    silent += list(tokenizer.all_special_ids)
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
        model.lm_head.weight[silent] = 0.0
    return model
