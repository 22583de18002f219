"""The CheXbert labeller on a tiny random-weight BERT saved at test time in the published checkpoint layout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from assistant.cli import eval as cli_eval
from assistant.errors import ConfigurationError, ModelPreparationError
from assistant.eval import chexbert
from assistant.eval.chexbert import ChexbertLabeller
from assistant.eval.chexpert import FINDINGS
from assistant.settings import load_settings

WORDS = (
    "no pleural effusion heart size is normal the lungs are clear small left right pneumothorax mild cardiomegaly "
    "edema . , and with of"
).split()
SENTENCES = [
    "No pleural effusion.",
    "Heart size is normal. The lungs are clear.",
    "Small left pleural effusion and mild cardiomegaly.",
    "Right pneumothorax with edema.",
    "",
]


def _bert_folder(path: Path) -> BertConfig:
    """A tiny BERT config and WordPiece vocabulary, as a local bert-base-uncased copy would hold them."""
    path.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=512, initializer_range=1.0,  # large random weights: the text moves the labels
    )  # fmt: skip
    config.save_pretrained(path)
    return config


def _state(config: BertConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """CheXbert's model_state_dict without the DataParallel prefix: bert.* and 14 linear heads, random weights."""
    torch.manual_seed(seed)
    state = {f"bert.{k}": v for k, v in BertModel(config).state_dict().items()}
    for head in range(14):
        classes = 2 if head == 13 else 4
        linear = torch.nn.Linear(config.hidden_size, classes)
        state[f"linear_heads.{head}.weight"] = linear.weight.detach().clone()
        state[f"linear_heads.{head}.bias"] = linear.bias.detach().clone()
    return state


def _save(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """As CheXbert's run_bert.py saves a DataParallel model: every key under module., with epoch and optimizer."""
    torch.save(
        {"epoch": 1, "model_state_dict": {f"module.{k}": v for k, v in state.items()}, "optimizer_state_dict": {}},
        path,
    )
    return path


@pytest.fixture
def bert_dir(tmp_path: Path) -> Path:
    _bert_folder(tmp_path / "bert")
    return tmp_path / "bert"


@pytest.fixture
def config(bert_dir: Path) -> BertConfig:
    return BertConfig.from_pretrained(str(bert_dir), local_files_only=True)


def _forced(config: BertConfig, classes: list[int]) -> dict[str, torch.Tensor]:
    """Heads whose weights are zero and whose bias picks ``classes[i]`` for head i, whatever the text."""
    state = _state(config)
    for head, chosen in enumerate(classes):
        bias = torch.zeros(2 if head == 13 else 4)
        bias[chosen] = 10.0
        state[f"linear_heads.{head}.weight"].zero_()
        state[f"linear_heads.{head}.bias"] = bias
    return state


def test_loads_the_checkpoint_layout_and_labels_deterministically(
    tmp_path: Path, bert_dir: Path, config: BertConfig
) -> None:
    labeller = ChexbertLabeller.from_files(_save(tmp_path / "chexbert.pth", _state(config)), bert_dir, device="cpu")
    first = labeller.label_reports(SENTENCES)
    assert len(first) == len(SENTENCES)
    for labels in first:
        assert set(labels) <= set(FINDINGS)
        assert set(labels.values()) <= {"positive", "negative", "uncertain"}
    assert len({json.dumps(labels, sort_keys=True) for labels in first}) > 1  # the labels depend on the text
    assert labeller.label_reports(SENTENCES) == first  # eval mode: no dropout
    # padding is masked: a report labelled alone gets what it gets in a batch
    assert [labeller.label_report(s) for s in SENTENCES] == first
    assert set(chexbert.CONDITIONS) == set(FINDINGS)  # the same 14 names as the rule-based labeller


def test_labels_match_the_chexbert_recipe_computed_by_hand(tmp_path: Path, bert_dir: Path, config: BertConfig) -> None:
    """src/models/bert_labeler.py + src/label.py: [CLS] of BERT's last layer -> 14 heads -> argmax, one report."""
    state = _state(config, seed=3)
    labeller = ChexbertLabeller.from_files(_save(tmp_path / "c.pth", state), bert_dir, device="cpu")
    bert = BertModel(config).eval()
    bert.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("bert.")})
    tokenizer = BertTokenizer.from_pretrained(str(bert_dir), local_files_only=True)
    names = {0: None, 1: "positive", 2: "negative", 3: "uncertain"}  # CLASS_MAPPING; No Finding: 0 blank, 1 positive
    conditions = ["Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                  "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                  "Fracture", "Support Devices", "No Finding"]  # fmt: skip
    expected = []
    for sentence in SENTENCES:
        ids = torch.tensor([tokenizer(sentence)["input_ids"]])  # (1, T), no padding
        with torch.no_grad():
            cls = bert(ids)[0][0, 0]  # (D,)
        labels = {}
        for head, condition in enumerate(conditions):
            logits = state[f"linear_heads.{head}.weight"] @ cls + state[f"linear_heads.{head}.bias"]
            label = names[int(logits.argmax())]
            if label is not None:
                labels[condition] = label
        expected.append(labels)
    assert labeller.label_reports(SENTENCES) == expected


def test_each_head_drives_its_own_condition_and_class(tmp_path: Path, bert_dir: Path, config: BertConfig) -> None:
    # head i -> class i % 4 (0 blank, 1 positive, 2 negative, 3 uncertain); the last head (No Finding) -> 1
    state = _forced(config, [i % 4 for i in range(13)] + [1])
    labeller = ChexbertLabeller.from_files(_save(tmp_path / "c.pth", state), bert_dir, device="cpu")
    expected = {  # stanfordmlgroup/CheXbert src/constants.py order, written out here by hand
        "Cardiomegaly": "positive", "Lung Opacity": "negative", "Lung Lesion": "uncertain",
        "Consolidation": "positive", "Pneumonia": "negative", "Atelectasis": "uncertain",
        "Pleural Effusion": "positive", "Pleural Other": "negative", "Fracture": "uncertain",
        "No Finding": "positive",
    }  # fmt: skip  # Enlarged Cardiomediastinum, Edema, Pneumothorax, Support Devices: blank (class 0)
    assert labeller.label_reports(SENTENCES[:2]) == [expected, expected]

    only_pneumothorax = _forced(config, [1 if i == 8 else 0 for i in range(13)] + [0])
    labeller = ChexbertLabeller.from_files(_save(tmp_path / "p.pth", only_pneumothorax), bert_dir, device="cpu")
    assert labeller.label_report("No pleural effusion.") == {"Pneumothorax": "positive"}


def test_accepts_a_checkpoint_saved_without_data_parallel(tmp_path: Path, bert_dir: Path, config: BertConfig) -> None:
    state = _state(config)
    torch.save({"model_state_dict": state}, tmp_path / "plain.pth")
    plain = ChexbertLabeller.from_files(tmp_path / "plain.pth", bert_dir, device="cpu")
    wrapped = ChexbertLabeller.from_files(_save(tmp_path / "wrapped.pth", state), bert_dir, device="cpu")
    assert plain.label_reports(SENTENCES) == wrapped.label_reports(SENTENCES)


def test_wrong_layouts_and_paths_are_named(tmp_path: Path, bert_dir: Path, config: BertConfig) -> None:
    state = _state(config)
    torch.save({"state_dict": state}, tmp_path / "no_msd.pth")
    with pytest.raises(ModelPreparationError, match=r"no_msd\.pth.*'model_state_dict'.*found state_dict"):
        ChexbertLabeller.from_files(tmp_path / "no_msd.pth", bert_dir, device="cpu")

    renamed = {k.replace("linear_heads", "classifier"): v for k, v in state.items()}
    _save(tmp_path / "renamed.pth", renamed)
    with pytest.raises(ModelPreparationError, match=r"28 weights missing \(e\.g\. linear_heads\.0\.weight.*classifier"):
        ChexbertLabeller.from_files(tmp_path / "renamed.pth", bert_dir, device="cpu")

    three_class = dict(state, **{"linear_heads.0.weight": torch.zeros(3, 32), "linear_heads.0.bias": torch.zeros(3)})
    _save(tmp_path / "shape.pth", three_class)
    with pytest.raises(ModelPreparationError, match=r"linear_heads\.0\.weight \(3, 32\) \(expected \(4, 32\)\)"):
        ChexbertLabeller.from_files(tmp_path / "shape.pth", bert_dir, device="cpu")

    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ModelPreparationError, match=r"cannot read .*text\.pth as a torch checkpoint"):
        ChexbertLabeller.from_files(tmp_path / "text.pth", bert_dir, device="cpu")

    with pytest.raises(ConfigurationError, match=r"checkpoint .*missing\.pth does not exist"):
        ChexbertLabeller.from_files(tmp_path / "missing.pth", bert_dir)
    good = _save(tmp_path / "good.pth", state)
    with pytest.raises(ConfigurationError, match=r"tokenizer folder .*nowhere does not exist"):
        ChexbertLabeller.from_files(good, tmp_path / "nowhere")
    (bert_dir / "vocab.txt").unlink()
    with pytest.raises(ConfigurationError, match=r"bert has no vocab\.txt"):
        ChexbertLabeller.from_files(good, bert_dir)


def test_without_transformers_the_error_says_so(
    tmp_path: Path, bert_dir: Path, config: BertConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = _save(tmp_path / "c.pth", _state(config))
    monkeypatch.setitem(sys.modules, "transformers", None)  # what an environment without it raises on import
    with pytest.raises(ModelPreparationError, match="needs torch and transformers.*transformers is missing"):
        ChexbertLabeller.from_files(checkpoint, bert_dir)


def _run(*argv: str, data_dir: Path) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_eval.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args, load_settings(env={}, data_dir=data_dir, embedding_model="hashing-128")))


def test_eval_report_adds_the_chexbert_f1_only_when_asked(
    tmp_path: Path, bert_dir: Path, config: BertConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "reports.jsonl"
    rows = [
        {"id": "1", "reference": "Small left pleural effusion.", "generated": "Small left pleural effusion."},
        {"id": "2", "reference": "Right pneumothorax.", "generated": "The lungs are clear."},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    # Every report: Pleural Effusion positive (head 9), Edema uncertain (head 4), the rest negative; No Finding blank.
    classes = [2] * 13 + [0]
    classes[9], classes[4] = 1, 3
    checkpoint = _save(tmp_path / "chexbert.pth", _forced(config, classes))
    base = ["eval", "report", "--data", str(data), "--json"]

    assert _run(*base, "--out", str(tmp_path / "plain"), data_dir=tmp_path / "d") == 0
    plain = json.loads(capsys.readouterr().out)
    assert not any(key.startswith("chexbert") for key in plain)  # add-only: nothing new unless asked

    flags = ["--chexbert", str(checkpoint), "--chexbert-tokenizer", str(bert_dir)]
    argv = [*base, "--out", str(tmp_path / "bert"), *flags]
    assert _run(*argv, data_dir=tmp_path / "d") == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in summary.items() if not k.startswith("chexbert") and k != "predictions"} == {
        k: v for k, v in plain.items() if k != "predictions"
    }
    per = summary["chexbert_per_finding"]
    # uncertain counts as present, as in the rule-based F1
    assert (per["Pleural Effusion"]["tp"], per["Edema"]["tp"], per["Pneumothorax"]["tp"]) == (2, 2, 0)
    assert summary["chexbert_micro_f1"] == 1.0 and summary["chexbert_macro_f1"] == 1.0
    assert "CheXbert-14 micro F1 (x100) | 100.0" in (tmp_path / "bert" / "metrics.md").read_text()

    with pytest.raises(ConfigurationError, match="--chexbert-tokenizer DIR go together"):
        _run(*base, "--chexbert", str(checkpoint), data_dir=tmp_path / "d")
    with pytest.raises(ConfigurationError, match="does not exist"):
        _run(*argv[:-3], str(tmp_path / "no.pth"), "--chexbert-tokenizer", str(bert_dir), data_dir=tmp_path / "d")
