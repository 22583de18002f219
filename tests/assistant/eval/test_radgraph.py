"""RadGraph-F1 through the radgraph package, on a tiny random-weight model in the package's real archive layout.

The archive is built at test time the way DyGIE++ saves one (config.json of dygiepp's template, vocabulary/ from
AllenNLP's Vocabulary, weights.th the model's state_dict), on a one-layer BERT written by transformers into a local
folder. Its config.json names the encoder by a hub id that exists nowhere, so a load that looked the id up would
fail: the encoder can only come from the local folder.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):  # the test set-up installs the extra: in CI a missing package fails, never skips
    pytest.importorskip("radgraph", reason="RadGraph-F1 is an optional extra: radassist[eval-radgraph]")

import torch  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertTokenizer  # noqa: E402

from assistant.cli import eval as cli_eval  # noqa: E402
from assistant.errors import ConfigurationError, ModelPreparationError  # noqa: E402
from assistant.eval import radgraph  # noqa: E402
from assistant.eval.radgraph import RadGraphF1, RadGraphScorer  # noqa: E402
from assistant.eval.report import summarize, table  # noqa: E402
from assistant.settings import load_settings  # noqa: E402

HUB_ID = "example-org/radgraph-encoder-not-on-any-hub"
# RadGraph's schema (Jain et al. 2021): entity labels and relation types; "" is DyGIE's null label, index 0.
ENTITY_LABELS = ("", "ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")
RELATION_LABELS = ("", "modify", "located_at", "suggestive_of")
WORDS = (
    "no acute cardiopulmonary process moderate hiatal hernia evidence of small left right pleural effusion lung "
    "lungs are clear heart size is normal there"
).split()
SAME = "Small left pleural effusion. No acute cardiopulmonary process."


def _config(max_span_width: int = 8) -> dict[str, Any]:
    """config.json as dygiepp's training_config/template.libsonnet renders it (training-only keys left out)."""
    bert = {"type": "pretrained_transformer_mismatched", "model_name": HUB_ID, "max_length": 512}
    return {
        "dataset_reader": {"type": "dygie", "token_indexers": {"bert": dict(bert)}, "max_span_width": max_span_width},
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": dict(bert)}},
            "initializer": {"regexes": [["_span_width_embedding.weight", {"type": "xavier_normal"}]]},
            "module_initializer": {"regexes": [[".*weight", {"type": "xavier_normal"}]]},
            "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "feature_size": 20,
            "max_span_width": max_span_width,
            "target_task": "relation",
            "feedforward_params": {"num_layers": 2, "hidden_dims": 150, "dropout": 0.4},
            "modules": {
                "coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
                "ner": {},
                "relation": {"spans_per_word": 0.5},
                "events": {
                    "trigger_spans_per_word": 0.3,
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"trigger": 1.0, "arguments": 1.0},
                },
            },
        },
    }


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("encoder")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "a", "b", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64,
    ).save_pretrained(folder)  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path) -> Path:
    """An extracted archive: config.json, vocabulary/ and weights.th of a DyGIE model with random weights."""
    from radgraph.allennlp.common import cached_transformers
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models import dygie

    folder = tmp_path_factory.mktemp("radgraph-archive")
    config = _config()
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    vocab = Vocabulary()
    for label in ENTITY_LABELS:  # DyGIE's namespaces: "<dataset>__ner_labels", the dataset being the model type
        vocab.add_token_to_namespace(label, "radgraph__ner_labels")
    for label in RELATION_LABELS:
        vocab.add_token_to_namespace(label, "radgraph__relation_labels")
    vocab.save_to_files(str(folder / "vocabulary"))
    torch.manual_seed(0)
    tokenizer = radgraph._load_tokenizer(__import__("transformers"), encoder_dir)
    with radgraph._tokenizer_factory(cached_transformers, encoder_dir, tokenizer):
        bert = token_embedders.PretrainedTransformerMismatchedEmbedder(
            model_name=str(encoder_dir.resolve()), max_length=512
        )
    embedder = text_field_embedders.BasicTextFieldEmbedder({"bert": bert})
    built_elsewhere = ("type", "embedder", "initializer", "module_initializer")  # as radgraph.RadGraph drops them
    options = {k: v for k, v in config["model"].items() if k not in built_elsewhere}
    model = dygie.DyGIE(vocab=vocab, embedder=embedder, **options)
    torch.save(model.state_dict(), folder / "weights.th")
    return folder


@pytest.fixture(scope="module")
def scorer(model_dir: Path, encoder_dir: Path) -> RadGraphScorer:
    return RadGraphScorer.from_files(model_dir, encoder_dir, device="cpu")


def test_the_compat_tokenizer_matches_what_transformers_4_returned(encoder_dir: Path) -> None:
    plain = AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
    compat = radgraph._load_tokenizer(__import__("transformers"), encoder_dir)
    assert isinstance(compat, type(plain)) and not hasattr(plain, "encode_plus")  # removed in transformers 5
    cls, sep = plain.cls_token_id, plain.sep_token_id
    ids = plain.encode("small effusion", add_special_tokens=False)
    assert compat.build_inputs_with_special_tokens(ids) == [cls, *ids, sep]  # BERT: [CLS] ids [SEP]
    pair = compat.encode_plus("a", "b", add_special_tokens=True, return_token_type_ids=True)
    a, b = plain.convert_tokens_to_ids(["a", "b"])
    assert pair["input_ids"] == [cls, a, sep, b, sep] and pair["token_type_ids"] == [0, 0, 0, 1, 1]


def test_scores_through_the_package_from_local_files_only(
    scorer: RadGraphScorer, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = [SAME, "Moderate hiatal hernia.", "The lungs are clear.", "Left pleural effusion."]
    hyps = [SAME, "No evidence of hiatal hernia.", "", "   "]
    scores = scorer.score(refs, hyps)

    assert len(scores) == 4
    assert scores[0] == RadGraphF1(1.0, 1.0, 1.0)  # the same report has the same graph (and at least one entity)
    assert all(0.0 <= v <= 1.0 for s in scores for v in (s.simple, s.partial, s.complete))
    assert scores[1].partial < 1.0
    assert scores[2] == scores[3] == RadGraphF1(0.0, 0.0, 0.0)  # an empty (or blank) report scores 0
    assert capsys.readouterr().out == ""  # the package prints; none of it reaches stdout (--json prints there)
    assert scorer.score([], []) == []


def test_scores_are_the_package_reward_on_its_own_annotations(scorer: RadGraphScorer) -> None:
    from radgraph.rewards import compute_reward

    refs, hyps = ["Moderate hiatal hernia. Small left pleural effusion."], ["No evidence of hiatal hernia."]
    [score] = scorer.score(refs, hyps)
    _, _, hyp_graphs, ref_graphs = scorer._f1(refs=refs, hyps=hyps)
    assert (score.simple, score.partial, score.complete) == compute_reward(hyp_graphs[0], ref_graphs[0], "all")


def test_a_study_the_model_fails_on_is_counted_and_the_others_are_scored(model_dir: Path, encoder_dir: Path) -> None:
    failing = RadGraphScorer.from_files(model_dir, encoder_dir, device="cpu")
    package = failing._f1

    def breaks_on_one(refs: list[str], hyps: list[str]) -> Any:  # a model error on one report, injected
        if any("BREAK" in h for h in hyps):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return package(refs=refs, hyps=hyps)

    failing._f1 = breaks_on_one
    scores = failing.score([SAME, SAME, SAME], [SAME, "BREAK", SAME])
    assert scores[0] == scores[2] == RadGraphF1(1.0, 1.0, 1.0) and scores[1] is None
    summary = summarize([{"id": str(i), "reference": "x", "prediction": "x"} for i in range(3)], resamples=20,
                        radgraph=scores)  # fmt: skip
    assert summary["radgraph_failures"] == 1 and summary["radgraph_scored"] == 2 and summary["radgraph_f1"] == 1.0


def test_wrong_paths_and_layouts_are_named(tmp_path: Path, model_dir: Path, encoder_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        RadGraphScorer.from_files(tmp_path / "none", encoder_dir)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="has no weights.th or vocabulary/"):
        RadGraphScorer.from_files(partial, encoder_dir)
    with pytest.raises(ConfigurationError, match="has no config.json"):
        RadGraphScorer.from_files(model_dir, tmp_path)
    with pytest.raises(ConfigurationError, match="model type must be one of"):
        RadGraphScorer.from_files(model_dir, encoder_dir, model_type="chexbert")

    other = tmp_path / "other"
    other.mkdir()
    (other / "vocabulary").symlink_to(model_dir / "vocabulary")
    (other / "weights.th").symlink_to(model_dir / "weights.th")
    (other / "config.json").write_text(json.dumps({"model": {"type": "dygie"}}))
    with pytest.raises(ModelPreparationError, match="no dataset_reader.token_indexers.bert.model_name"):
        RadGraphScorer.from_files(other, encoder_dir)
    (other / "config.json").write_text(json.dumps(_config(max_span_width=4)))  # a span-width table of another size
    with pytest.raises(ModelPreparationError, match="cannot build the RadGraph model .*RuntimeError"):
        RadGraphScorer.from_files(other, encoder_dir)


def test_summary_and_table_report_the_partial_level_as_radgraph_f1() -> None:
    records = [{"id": str(i), "reference": "x", "prediction": "x"} for i in range(2)]
    scores = [RadGraphF1(1.0, 0.5, 0.25), RadGraphF1(0.5, 0.25, 0.0)]
    summary = summarize(records, resamples=50, radgraph=scores)
    assert (summary["radgraph_f1"], summary["radgraph_f1_simple"], summary["radgraph_f1_complete"]) == (
        0.375, 0.75, 0.125,
    )  # fmt: skip
    assert summary["radgraph_scored"] == 2 and len(summary["radgraph_f1_ci95"]) == 2
    assert "| RadGraph-F1, partial (x100) | 37.5 [" in table(summary)
    assert "| RadGraph-F1, simple / complete (x100) | 75.0 / 12.5 |" in table(summary)
    assert not any(k.startswith("radgraph") for k in summarize(records, resamples=50))
    with pytest.raises(ValueError, match="1 RadGraph scores for 2 scored studies"):
        summarize(records, radgraph=scores[:1])


def _run(*argv: str, data_dir: Path) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_eval.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args, load_settings(env={}, data_dir=data_dir, embedding_model="hashing-128")))


def test_eval_report_adds_radgraph_f1_only_when_asked(
    tmp_path: Path, model_dir: Path, encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "reports.jsonl"
    rows = [
        {"id": "1", "reference": SAME, "generated": SAME},
        {"id": "2", "reference": "Moderate hiatal hernia.", "generated": ""},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    base = ["eval", "report", "--data", str(data), "--json"]

    assert _run(*base, "--out", str(tmp_path / "plain"), data_dir=tmp_path / "d") == 0
    plain = json.loads(capsys.readouterr().out)
    assert not any(key.startswith("radgraph") for key in plain)

    flags = ["--radgraph", str(model_dir), "--radgraph-encoder", str(encoder_dir)]
    assert _run(*base, "--out", str(tmp_path / "rg"), *flags, data_dir=tmp_path / "d") == 0
    summary = json.loads(capsys.readouterr().out)  # stdout holds the JSON alone: the package's prints are kept off
    assert {k: v for k, v in summary.items() if not k.startswith("radgraph") and k != "predictions"} == {
        k: v for k, v in plain.items() if k != "predictions"
    }
    assert summary["radgraph_f1"] == 0.5 and summary["radgraph_model_type"] == "radgraph"  # mean of 1 and 0
    lines = (tmp_path / "rg" / "radgraph.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "1", "simple": 1.0, "partial": 1.0, "complete": 1.0},
        {"id": "2", "simple": 0.0, "partial": 0.0, "complete": 0.0},
    ]
    with pytest.raises(ConfigurationError, match="--radgraph-encoder DIR go together"):
        _run(*base, "--radgraph", str(model_dir), data_dir=tmp_path / "d")
