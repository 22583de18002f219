"""``radassist eval guidelines | dictation`` give the numbers of the bench scripts they replaced, on the same sets.

No vLLM engine: the model is a real local server speaking the OpenAI protocol with a fixed answer (the transport),
guideline phrasing is off (as with the embedded default model) and retrieval uses the hashing embedder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistant.cli.main import main
from assistant.settings import load_settings
from bench import bench_dictation, bench_guideline_eval
from tests.support.openai_stub import OpenAIStub

DATA = Path(__file__).resolve().parents[2] / "data"
GUIDELINE_SET = DATA / "guideline_questions.jsonl"
DICTATION_SET = DATA / "dictation_placement.jsonl"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "radassist.toml"
    path.write_text('embedding_model = "hashing"\nguideline_phrasing = "off"\n', encoding="utf-8")
    return path


def _cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _guideline_slice(path: Path) -> list[dict[str, Any]]:
    """Up to three questions of each expectation, and one whose expected category is wrong on purpose."""
    cases = [json.loads(line) for line in GUIDELINE_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    picked: list[dict[str, Any]] = []
    for expect in ("result", "not_applicable", "missing", "refuse", "concept"):
        picked += [c for c in cases if c["expect"] == expect][:3]
    picked.append({**picked[0], "id": "deliberately-wrong", "expected_category": "no such category"})
    path.write_text("".join(json.dumps(c) + "\n" for c in picked), encoding="utf-8")
    return picked


def test_eval_guidelines_gives_the_bench_numbers_on_a_slice_of_the_set(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sliced = tmp_path / "slice.jsonl"
    cases = _guideline_slice(sliced)
    with OpenAIStub("{}") as llm:
        settings = load_settings(env={}, config_file=config, data_dir=tmp_path / "bench", llm_url=llm.url)
        bench, _, _ = bench_guideline_eval.measure(settings, cases)
        cli = _cli_json(capsys, ["--config", str(config), "--data-dir", str(tmp_path / "cli"), "eval", "guidelines",
                                 "--data", str(sliced), "--llm-url", llm.url, "--json"])  # fmt: skip
    timing = {k for k in bench if k.startswith("latency")}
    assert {k: v for k, v in cli.items() if k not in timing | {"model", "phrasing"}} == {
        k: v for k, v in bench.items() if k not in timing
    }
    assert cli["n"] == len(cases) == 16
    assert cli["not_correct_or_not_cited"] == ["deliberately-wrong"]
    assert cli["correct"] == cli["n"] - 1 and cli["phrasing"] is False and cli["phrased_by_model"] == 0
    assert cli["by_group"]["fleischner / result"] == {"correct": 3, "n": 4}


def test_eval_dictation_rules_give_the_bench_numbers_on_snippets_and_iu_sentences(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], shared_dir: Path
) -> None:
    csv = shared_dir / "data" / "iu_xray" / "indiana_reports.csv"
    cli = _cli_json(capsys, ["--config", str(config), "--data-dir", str(tmp_path), "eval", "dictation", "--data",
                             str(DICTATION_SET), "--placer", "rules", "--iu", str(csv), "--iu-sentences", "40",
                             "--json"])  # fmt: skip
    inspected = bench_dictation.iu_sentences(40, seed=7)
    fresh = bench_dictation.iu_sentences(40, seed=11, exclude=frozenset(s for _, s, _ in inspected))
    expected = {
        "snippets": bench_dictation.score(bench_dictation.load_cases(), bench_dictation.rules, False),
        "iu": bench_dictation.score(inspected, bench_dictation.rules, True),
        "iu_fresh": bench_dictation.score(fresh, bench_dictation.rules, True),
    }
    got = {name: {k: r["rules only"][k] for k in ("n", "placed", "correct")} for name, r in cli["sets"].items()}
    assert got == expected
    assert cli["model"] is None and cli["set_sizes"] == {"snippets": 68, "iu": 40, "iu_fresh": 40}
    assert 0 < expected["snippets"]["correct"] < expected["snippets"]["n"]  # the set has known rule misses


def test_eval_dictation_asks_the_model_only_where_the_rules_place_nothing(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with OpenAIStub('{"section": "impression"}') as llm:
        cli = _cli_json(capsys, ["--config", str(config), "--data-dir", str(tmp_path), "eval", "dictation", "--data",
                                 str(DICTATION_SET), "--placer", "all", "--llm-url", llm.url, "--json"])  # fmt: skip
        asked = len(llm.requests)
    snippets = cli["sets"]["snippets"]
    rules, model, product = snippets["rules only"], snippets["model only"], snippets["rules + model (product)"]
    assert model["placed"] == product["placed"] == rules["n"] == cli["n"]
    assert product["correct"] >= rules["correct"] and model["correct"] < rules["correct"]
    assert asked == model["n"] + (rules["n"] - rules["placed"])  # every clause once, then only the unplaced ones
    assert cli["model"] == "stub-model"


def test_a_malformed_guideline_question_is_named(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "5 mm nodule", "calculator": "fleischner", "expect": "maybe"}\n')
    assert main(["--config", str(config), "--data-dir", str(tmp_path), "eval", "guidelines", "--data", str(bad)]) == 2
    assert "bad.jsonl line 1: 'expect' must be one of" in capsys.readouterr().err
