"""A small byte-level BPE tokenizer trained at test time, carrying a model family's special tokens.

The real Gemma 3 / Qwen2.5-VL tokenizers are not available offline; what vLLM and the processors need from them
is the structure (special tokens by name, a chat template), not the vocabulary. Byte-level BPE encodes any text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Enough varied text for a few hundred merges; radiology words so the nonsense the models print is readable.
_CORPUS = [
    "Describe the findings. Compare the two images. Is there a fracture? The lungs are clear.",
    "No pneumothorax, no pleural effusion. The heart size is normal. Chest radiograph, frontal view.",
    "CT of the head without contrast: no haemorrhage, no mass effect. Soft tissue window, brain window.",
    "The liver, spleen and kidneys are unremarkable. A 7 mm solid nodule in the right upper lobe.",
    "Image 1: CR, CHEST, PA, 512x512 px. Image 2: CT, HEAD, slice 3 of 10, window brain C40/W80.",
    "You are a radiology assistant. Answer briefly and say when you are unsure.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;!?()[]{}<>-_/\\'\"\n",
]


def build_tiny_tokenizer(
    specials: Sequence[str],
    named: dict[str, str],
    chat_template: str,
    *,
    vocab_size: int = 1024,
    bos: str | None = None,
    eos: str,
    pad: str,
    model_max_length: int = 4096,
) -> Any:
    """A ``PreTrainedTokenizerFast``: byte-level BPE of ``vocab_size`` with ``specials`` added (ids after the
    learned vocabulary), ``named`` as the family's named special tokens (``tokenizer.image_token`` etc.)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(specials),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        extra_special_tokens=dict(named),
        model_max_length=model_max_length,
    )
    tokenizer.chat_template = chat_template
    return tokenizer
