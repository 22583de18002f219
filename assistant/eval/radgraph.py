"""RadGraph-F1 (Delbrouck et al., Findings of EMNLP 2022): overlap of the RadGraph entities and relations of reports.

RadGraph (Jain et al., NeurIPS 2021 Datasets and Benchmarks) annotates a radiology report as entities (anatomy,
observation: definitely present / uncertain / definitely absent) and the relations between them (modify,
located_at, suggestive_of). A DyGIE++ model trained on it extracts that graph; RadGraph-F1 compares the graph of a
generated report with the reference's, per study, at three levels (the reward levels of the ``radgraph`` package's
``F1RadGraph``, the implementation of the paper's authors):

- ``simple``: F1 over the entities, each (tokens, label);
- ``partial``: F1 over the entities, each (tokens, label, has a relation or not): the number papers such as
  MAIRA-2 report as "RadGraph-F1", so the headline here;
- ``complete``: F1 over the entities without a relation plus every (entity, relation, entity) triple.

A study whose generated or reference report is empty, or yields no entity, scores 0. The metric is the mean over
the studies. Extraction and scoring are the package's own (``radgraph.F1RadGraph``), run from local files only:

- the model: a folder holding the extracted RadGraph model archive (``config.json``, ``vocabulary/``,
  ``weights.th``), e.g. ``radgraph.tar.gz`` of StanfordAIMI/RRG_scorers;
- its text encoder: a local copy of the model the archive's ``config.json`` names (``config.json`` and the
  tokenizer files; the encoder's weights are not needed, ``weights.th`` holds them).

Three adaptations, all here and none in the package: the package reads its archive from a cache folder, which is
given a copy of ``config.json`` whose encoder name points at the local folder (so nothing is looked up on the
hub, and ``weights.th`` and ``vocabulary/`` are linked, not copied); its vendored AllenNLP calls two tokenizer
methods that transformers 5 removed, which a subclass of the encoder's own tokenizer class puts back
(:func:`_tokenizer_class`); and it prints, so its stdout is kept off ours (``--json`` prints there) and logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError, ModelPreparationError
from assistant.eval import metrics

logger = logging.getLogger(__name__)

# radgraph/radgraph.py MODEL_MAPPING: the model types the package knows; the type picks the report preprocessing.
MODEL_TYPES: tuple[str, ...] = ("radgraph", "radgraph-xl", "modern-radgraph-xl", "echograph")
DEFAULT_MODEL_TYPE = "radgraph"  # the original RadGraph model (radgraph.tar.gz), the one of Delbrouck et al. 2022
ARCHIVE_FILES = ("config.json", "weights.th")
ARCHIVE_VOCABULARY = "vocabulary"
# Where the archive's config.json names its text encoder (dygiepp's training_config/template.libsonnet layout)
ENCODER_KEYS: tuple[tuple[str, ...], ...] = (
    ("dataset_reader", "token_indexers", "bert", "model_name"),
    ("model", "embedder", "token_embedders", "bert", "model_name"),
)
INSTALL_HINT = 'pip install "radassist[eval-radgraph]"'


@dataclass(frozen=True)
class RadGraphF1:
    """The RadGraph F1 of one study at the three levels (0-1)."""

    simple: float
    partial: float
    complete: float

    def to_json(self) -> dict[str, float]:
        return {"simple": self.simple, "partial": self.partial, "complete": self.complete}


class RadGraphScorer:
    """``score(references, candidates)`` -> one :class:`RadGraphF1` per study, from a local RadGraph model."""

    def __init__(self, f1radgraph: Any, model_type: str) -> None:
        self._f1 = f1radgraph
        self.model_type = model_type

    @classmethod
    def from_files(
        cls, model_dir: Path, encoder_dir: Path, model_type: str = DEFAULT_MODEL_TYPE, device: str | None = None
    ) -> RadGraphScorer:
        """Load the extracted archive in ``model_dir`` with the text encoder of ``encoder_dir``; never downloads."""
        model_dir, encoder_dir = Path(model_dir), Path(encoder_dir)
        if model_type not in MODEL_TYPES:
            raise ConfigurationError(
                f"the RadGraph model type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}"
            )
        _check_paths(model_dir, encoder_dir)
        config = _read_config(model_dir / "config.json")
        try:
            import torch
            import transformers

            with warnings.catch_warnings():  # the package changes the DeprecationWarning filter when imported
                from radgraph import F1RadGraph
                from radgraph.allennlp.common import cached_transformers
        except ImportError as exc:
            raise ModelPreparationError(
                f"RadGraph-F1 needs the radgraph package, which is not installed ({exc.name} is missing): "
                f"{INSTALL_HINT}"
            ) from exc
        tokenizer = _load_tokenizer(transformers, encoder_dir)
        cuda = _cuda_index(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        printed = io.StringIO()
        with tempfile.TemporaryDirectory(prefix="radassist-radgraph-") as cache:
            _stage_archive(model_dir, config, encoder_dir, Path(cache) / model_type)
            try:
                factory = _tokenizer_factory(cached_transformers, encoder_dir, tokenizer)
                with factory, contextlib.redirect_stdout(printed):
                    f1 = F1RadGraph(reward_level="all", model_type=model_type, model_cache_dir=cache, cuda=cuda)
            except (RuntimeError, KeyError, ValueError, OSError) as exc:  # load_state_dict, vocabulary, config
                raise ModelPreparationError(
                    f"cannot build the RadGraph model from {model_dir} with the encoder in {encoder_dir} "
                    f"({type(exc).__name__}: {exc}); expected an extracted RadGraph model archive and a local copy of "
                    "the encoder its config.json names"
                ) from exc
        _log_printed(printed)
        logger.info("RadGraph loaded: type %s, from %s, on %s", model_type, model_dir, "cpu" if cuda < 0 else cuda)
        return cls(f1, model_type)

    def score(self, references: Sequence[str], candidates: Sequence[str]) -> list[RadGraphF1 | None]:
        """The RadGraph F1 of each (reference, candidate) pair, in order; None for a pair the model failed on (the
        batch is scored again pair by pair when it fails, so one bad study costs only its own score)."""
        if len(references) != len(candidates):
            raise ValueError(f"{len(references)} references for {len(candidates)} candidates")
        if not references:
            return []
        # An all-blank report counts as empty (score 0), as the package treats "", rather than as no words.
        refs = [text.strip() for text in references]
        hyps = [text.strip() for text in candidates]
        try:
            return list(self._batch(refs, hyps))
        except Exception as exc:  # noqa: BLE001 - the package's model code; any failure is per study below
            logger.warning("RadGraph failed on a batch of %d studies (%s): scoring them one by one", len(refs),
                           type(exc).__name__)  # fmt: skip
        out: list[RadGraphF1 | None] = []
        for ref, hyp in zip(refs, hyps, strict=True):
            try:
                out.extend(self._batch([ref], [hyp]))
            except Exception as exc:  # noqa: BLE001
                logger.warning("RadGraph failed on one study: %s", type(exc).__name__)
                out.append(None)
        return out

    def _batch(self, refs: list[str], hyps: list[str]) -> list[RadGraphF1]:
        import torch

        printed = io.StringIO()
        try:
            with torch.inference_mode(), contextlib.redirect_stdout(printed):
                _, (simple, partial, complete), _, _ = self._f1(refs=refs, hyps=hyps)
        finally:
            _log_printed(printed)
        return [RadGraphF1(float(s), float(p), float(c)) for s, p, c in zip(simple, partial, complete, strict=True)]


def _check_paths(model_dir: Path, encoder_dir: Path) -> None:
    if not model_dir.is_dir():
        raise ConfigurationError(
            f"the RadGraph model folder {model_dir} does not exist (expected an extracted RadGraph model archive: "
            "config.json, vocabulary/, weights.th)"
        )
    missing = [name for name in ARCHIVE_FILES if not (model_dir / name).is_file()]
    missing += [f"{ARCHIVE_VOCABULARY}/"] if not (model_dir / ARCHIVE_VOCABULARY).is_dir() else []
    if missing:
        raise ConfigurationError(
            f"the RadGraph model folder {model_dir} has no {' or '.join(missing)} (expected an extracted RadGraph "
            "model archive: config.json, vocabulary/, weights.th)"
        )
    if not (encoder_dir / "config.json").is_file():
        raise ConfigurationError(
            f"the RadGraph encoder folder {encoder_dir} has no config.json (expected a local copy of the text encoder "
            f"that {model_dir / 'config.json'} names: its config.json and tokenizer files)"
        )


def _read_config(path: Path) -> dict[str, Any]:
    """The archive's config.json, checked to name its encoder where the package reads it."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPreparationError(f"cannot read {path} as JSON: {exc}") from exc
    for keys in ENCODER_KEYS:
        node: Any = config
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, str):
            raise ModelPreparationError(
                f"{path} is not the config of a RadGraph model archive: it has no {'.'.join(keys)} (the DyGIE++ "
                "layout the radgraph package reads)"
            )
    return dict(config)


def _stage_archive(model_dir: Path, config: dict[str, Any], encoder_dir: Path, staged: Path) -> None:
    """The archive as the package reads it from its cache: config.json naming the local encoder, the rest linked."""
    staged.mkdir(parents=True)
    local = json.loads(json.dumps(config))  # a deep copy
    named = {_get(local, keys) for keys in ENCODER_KEYS}
    for keys in ENCODER_KEYS:
        _get(local, keys[:-1])[keys[-1]] = str(encoder_dir.resolve())
    logger.info("RadGraph encoder %s read from %s", ", ".join(sorted(named)), encoder_dir)
    (staged / "config.json").write_text(json.dumps(local), encoding="utf-8")
    for name in ("weights.th", ARCHIVE_VOCABULARY):
        (staged / name).symlink_to((model_dir / name).resolve())


def _get(config: dict[str, Any], keys: Sequence[str]) -> Any:
    node: Any = config
    for key in keys:
        node = node[key]
    return node


def _tokenizer_class(base: type) -> Any:
    """``base`` with the two methods transformers 5 removed that the package's AllenNLP calls.

    ``encode_plus(text, text_pair, **options)`` was the single-example form of ``__call__``, which takes the same
    options. ``build_inputs_with_special_tokens(ids)`` put the special tokens of one sequence around ``ids``; they are
    read off the tokenizer's own encoding of a one-token text, the way AllenNLP's tokenizer finds them.
    """

    def encode_plus(self: Any, text: Any, text_pair: Any = None, **options: Any) -> Any:
        return self(text, text_pair, **options)

    def build_inputs_with_special_tokens(
        self: Any, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        if token_ids_1 is not None:  # AllenNLP's mismatched indexer builds single sequences only
            raise NotImplementedError("build_inputs_with_special_tokens for a pair of sequences")
        marker = self.encode("a", add_special_tokens=False)
        full = self("a", add_special_tokens=True)["input_ids"]
        at = full.index(marker[0])
        return list(full[:at]) + list(token_ids_0) + list(full[at + len(marker) :])

    methods = {"encode_plus": encode_plus, "build_inputs_with_special_tokens": build_inputs_with_special_tokens}
    return type(base.__name__, (base,), methods)


def _load_tokenizer(transformers: Any, encoder_dir: Path) -> Any:
    """The encoder's tokenizer from its local folder, as an instance of :func:`_tokenizer_class` of its class."""
    try:
        plain = transformers.AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
        return _tokenizer_class(type(plain)).from_pretrained(str(encoder_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelPreparationError(
            f"cannot read the tokenizer in {encoder_dir} (expected the tokenizer files of the encoder that the "
            f"RadGraph config.json names): {exc}"
        ) from exc


@contextlib.contextmanager
def _tokenizer_factory(cached_transformers: Any, encoder_dir: Path, tokenizer: Any) -> Iterator[None]:
    """While the model is built, the package's one tokenizer factory hands out ``tokenizer`` (local encoder only)."""
    original = cached_transformers.get_tokenizer
    expected = str(encoder_dir.resolve())

    def get_tokenizer(model_name: str, **kwargs: Any) -> Any:
        if model_name != expected:
            raise ModelPreparationError(f"the RadGraph model asked for the tokenizer of {model_name}, not {expected}")
        return tokenizer

    cached_transformers.get_tokenizer = get_tokenizer
    try:
        yield
    finally:
        cached_transformers.get_tokenizer = original


def _cuda_index(device: str) -> int:
    """The package's ``cuda`` argument: -1 for the CPU, else the GPU number."""
    if device == "cpu":
        return -1
    if device == "cuda":
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ConfigurationError(f"the RadGraph device must be cpu, cuda or cuda:N, got {device!r}")


def _log_printed(printed: io.StringIO) -> None:
    for line in printed.getvalue().splitlines():
        if line.strip():
            logger.info("radgraph: %s", line.strip())


def summarize(scores: Sequence[RadGraphF1 | None], seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """``radgraph_f1`` (the partial level, with its 95% bootstrap interval), ``radgraph_f1_simple``/``_complete``,
    over the studies scored; ``radgraph_failures`` counts those the model failed on (left out of the means)."""
    failures = sum(1 for s in scores if s is None)
    done = [s for s in scores if s is not None]
    partial = [s.partial for s in done]
    ci = metrics.bootstrap_ci(partial, resamples=resamples, seed=seed) if partial else None
    return {
        "radgraph_f1": metrics.mean(partial),
        "radgraph_f1_ci95": list(ci) if ci else None,
        "radgraph_f1_simple": metrics.mean([s.simple for s in done]),
        "radgraph_f1_complete": metrics.mean([s.complete for s in done]),
        "radgraph_scored": len(done),
        "radgraph_failures": failures,
    }
