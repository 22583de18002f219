"""CheXbert (Smit et al., EMNLP 2020): a BERT labeller of the 14 CheXpert findings, run from local weights only.

The published checkpoint is read as stanfordmlgroup/CheXbert writes and reads it (src/models/bert_labeler.py,
src/label.py, src/constants.py, src/bert_tokenizer.py): a torch file holding ``{"model_state_dict": ...}`` saved from
an ``nn.DataParallel`` model, so every key starts with ``module.``; under it ``bert.*`` (a ``BertModel`` of
bert-base-uncased, pooler included) and ``linear_heads.{0..13}.{weight,bias}``: 14 linear heads on the final hidden
state of [CLS], in ``CONDITIONS`` order. Heads 0-12 have 4 classes (0 blank, 1 positive, 2 negative, 3 uncertain,
``CLASS_MAPPING``); the last, No Finding, has 2 (0 blank, 1 positive: label.py's ``save_preds`` maps 0 to blank).
A report is tokenised with the BERT WordPiece tokeniser as [CLS] text [SEP], cut at 512 tokens; the predicted class
of each head is its argmax.

Labels come out as :class:`assistant.eval.chexpert.ChexpertLabeller`'s do: {finding: "positive" | "negative" |
"uncertain"}, a blank finding left out. Scored by :func:`assistant.eval.report.finding_f1`, uncertain counts as
present ("U-Ones"), the rule-based F1's convention, so the two F1s are comparable to each other; published
"CheXbert F1" numbers often count positive only and are not.

Nothing is downloaded: the checkpoint and the tokenizer folder (``config.json`` and ``vocab.txt`` of
bert-base-uncased) must exist locally, and transformers is called with ``local_files_only=True``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError, ModelPreparationError
from assistant.eval.chexpert import NEGATIVE, NO_FINDING, POSITIVE, UNCERTAIN

logger = logging.getLogger(__name__)

# stanfordmlgroup/CheXbert src/constants.py CONDITIONS: the order of the linear heads.
CONDITIONS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
    NO_FINDING,
)  # fmt: skip
# src/constants.py CLASS_MAPPING {0: Blank, 1: Positive, 2: Negative, 3: Uncertain}; None is blank (left out).
CLASSES: tuple[str | None, ...] = (None, POSITIVE, NEGATIVE, UNCERTAIN)
NO_FINDING_CLASSES: tuple[str | None, ...] = (None, POSITIVE)  # the last head: 2 classes (src/label.py save_preds)
MAX_TOKENS = 512  # src/bert_tokenizer.py: reports cut at 512 tokens, [SEP] kept last
BATCH_SIZE = 18  # src/constants.py BATCH_SIZE
DATA_PARALLEL_PREFIX = "module."  # nn.DataParallel's wrapper name, on every key of the published checkpoint
# Buffers, not weights: a checkpoint saved by some transformers versions has them, others not; never required.
BUFFERS = frozenset({"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"})


class ChexbertLabeller:
    """``label_reports(texts)`` -> one {finding: label} per report, from a local CheXbert checkpoint."""

    def __init__(self, model: Any, tokenizer: Any, device: str, batch_size: int = BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self._batch_size = batch_size

    @classmethod
    def from_files(
        cls, checkpoint: Path, tokenizer_dir: Path, device: str | None = None, batch_size: int = BATCH_SIZE
    ) -> ChexbertLabeller:
        """Load the checkpoint and the BERT config + tokenizer of ``tokenizer_dir``; never downloads."""
        checkpoint, tokenizer_dir = Path(checkpoint), Path(tokenizer_dir)
        _check_paths(checkpoint, tokenizer_dir)
        try:
            import torch
            from transformers import BertConfig, BertModel, BertTokenizer
        except ImportError as exc:
            raise ModelPreparationError(
                f"CheXbert needs torch and transformers, which are not installed ({exc.name} is missing)"
            ) from exc
        try:
            config = BertConfig.from_pretrained(str(tokenizer_dir), local_files_only=True)
            tokenizer = BertTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelPreparationError(
                f"cannot read the BERT config and tokenizer in {tokenizer_dir} (expected config.json and vocab.txt "
                f"of bert-base-uncased): {exc}"
            ) from exc
        if len(tokenizer) > config.vocab_size:
            raise ModelPreparationError(
                f"the tokenizer in {tokenizer_dir} has {len(tokenizer)} tokens, more than the model's vocab_size "
                f"{config.vocab_size}: config.json and vocab.txt are not of the same model"
            )
        state = _read_state_dict(checkpoint, torch)
        model = torch.nn.Module()  # a bare container: its state_dict keys are exactly bert.* and linear_heads.*
        model.bert = BertModel(config)
        hidden = config.hidden_size
        model.linear_heads = torch.nn.ModuleList(
            [torch.nn.Linear(hidden, len(CLASSES)) for _ in CONDITIONS[:-1]]
            + [torch.nn.Linear(hidden, len(NO_FINDING_CLASSES))]
        )
        _check_layout(state, model.state_dict(), checkpoint)
        model.load_state_dict({k: v for k, v in state.items() if k not in BUFFERS}, strict=False)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        logger.info("CheXbert loaded: %d heads, hidden size %d, on %s", len(CONDITIONS), hidden, device)
        return cls(model, tokenizer, device, batch_size)

    def label_reports(self, texts: Sequence[str]) -> list[dict[str, str]]:
        """One {finding: label} per text (blank findings left out), in order."""
        out: list[dict[str, str]] = []
        for start in range(0, len(texts), self._batch_size):
            for classes in self._classes(texts[start : start + self._batch_size]):
                labels = {}
                for head, (finding, number) in enumerate(zip(CONDITIONS, classes, strict=True)):
                    label = (NO_FINDING_CLASSES if head == len(CONDITIONS) - 1 else CLASSES)[number]
                    if label is not None:
                        labels[finding] = label
                out.append(labels)
        return out

    def label_report(self, text: str) -> dict[str, str]:
        """{finding: label} of one report, as :meth:`ChexpertLabeller.label_report`."""
        return self.label_reports([text])[0]

    def _classes(self, texts: Sequence[str]) -> list[list[int]]:
        """The argmax class of each of the 14 heads, per text."""
        import torch

        # src/bert_tokenizer.py: whitespace runs (newlines included) read as one space
        cleaned = [re.sub(r"\s+", " ", text).strip() for text in texts]
        enc = self._tokenizer(
            cleaned, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )  # input_ids (B, T), [CLS] ... [SEP], padded with [PAD] = 0
        ids = enc["input_ids"].to(self._device)
        mask = enc["attention_mask"].to(self._device)  # (B, T) 1 on tokens, 0 on padding
        with torch.inference_mode():
            cls_hidden = self._model.bert(ids, attention_mask=mask)[0][:, 0, :]  # (B, D) [CLS] of the last layer
            picks = [head(cls_hidden).argmax(dim=1) for head in self._model.linear_heads]  # 14 x (B,)
        per_head = torch.stack(picks, dim=1).tolist()  # (B, 14)
        return [[int(c) for c in row] for row in per_head]


def _check_paths(checkpoint: Path, tokenizer_dir: Path) -> None:
    if not checkpoint.is_file():
        raise ConfigurationError(f"the CheXbert checkpoint {checkpoint} does not exist (expected chexbert.pth)")
    if not tokenizer_dir.is_dir():
        raise ConfigurationError(
            f"the CheXbert tokenizer folder {tokenizer_dir} does not exist (expected a local copy of "
            "bert-base-uncased: config.json and vocab.txt)"
        )
    missing = [name for name in ("config.json", "vocab.txt") if not (tokenizer_dir / name).is_file()]
    if missing:
        raise ConfigurationError(
            f"the CheXbert tokenizer folder {tokenizer_dir} has no {' or '.join(missing)} (expected a local copy "
            "of bert-base-uncased)"
        )


def _read_state_dict(checkpoint: Path, torch: Any) -> dict[str, Any]:
    """The model weights of a CheXbert checkpoint, ``module.`` taken off; tensors only, nothing unpickled."""
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a file it cannot read
        raise ModelPreparationError(
            f"cannot read {checkpoint} as a torch checkpoint of tensors ({type(exc).__name__}): expected the "
            "CheXbert chexbert.pth"
        ) from exc
    state = saved.get("model_state_dict") if isinstance(saved, Mapping) else None
    if not isinstance(state, Mapping):
        found = ", ".join(sorted(map(str, saved))[:5]) if isinstance(saved, Mapping) else type(saved).__name__
        raise ModelPreparationError(
            f"{checkpoint} is not in the CheXbert layout: expected a dict with 'model_state_dict', found {found}"
        )
    keys = [str(k) for k in state]
    if keys and all(k.startswith(DATA_PARALLEL_PREFIX) for k in keys):
        return {k[len(DATA_PARALLEL_PREFIX) :]: v for k, v in zip(keys, state.values(), strict=True)}
    return dict(zip(keys, state.values(), strict=True))


def _check_layout(state: Mapping[str, Any], expected: Mapping[str, Any], checkpoint: Path) -> None:
    """Every weight of the model present with its shape, and nothing else: else name what differs."""
    missing = [k for k in expected if k not in state and k not in BUFFERS]
    unexpected = [k for k in state if k not in expected and k not in BUFFERS]
    shapes = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    wrong = [
        f"{k} {shapes[k]} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in shapes and shapes[k] != tuple(v.shape)
    ]
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} weights missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown keys (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} of the wrong shape (e.g. {', '.join(wrong[:2])})")
    if problems:
        raise ModelPreparationError(
            f"{checkpoint} is not a CheXbert checkpoint for the BERT config given: {'; '.join(problems)}. Expected "
            "module.bert.* and module.linear_heads.0-13.weight/bias (13 heads of 4 classes, No Finding of 2)"
        )
