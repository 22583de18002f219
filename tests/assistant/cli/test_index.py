"""``radassist index build|add|stats|search`` through its registrar, on real indexes in a temp data dir."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from assistant.cli import index as cli_index
from assistant.errors import RetrievalError
from assistant.settings import Settings, load_settings

REPORTS_CSV = "uid,patient_key,date,indication,comparison,findings,impression\n" + "\n".join([
    "1,pat-a,2021-01-02,Cough,None.,Right upper lobe spiculated mass.,Suspicious for malignancy.",
    "2,pat-b,2021-02-03,Dyspnoea,None.,Large left pleural effusion with mediastinal shift.,Large effusion.",
    "3,pat-a,2022-03-04,Follow-up,2021-01-02,Mass unchanged. No effusion.,Stable mass.",
])


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_index.register(sub)
    args = parser.parse_args(list(argv))
    return int(args.func(args, settings))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env={}, data_dir=tmp_path / "data")


@pytest.fixture
def reports_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reports.csv"
    path.write_text(REPORTS_CSV + "\n", encoding="utf-8")
    return path


def test_build_then_search_json_returns_typed_hits(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "index", "build", "--model", "hashing-128") == 0
    built = capsys.readouterr()
    assert "built guidelines index" in built.out and "embedding" in built.err  # tqdm bar on stderr
    assert (settings.data_dir / "index" / "guidelines" / "CURRENT").is_file()
    assert run(settings, "index", "search", "--json", "--k", "3", "--model", "hashing-128",
               "Bosniak IIF renal cyst septa") == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert 1 <= len(hits) <= 3
    assert set(hits[0]) >= {"id", "source", "title", "section", "text", "score"}
    assert hits[0]["section"].startswith("bosniak-2019/")


def test_batch_search_prints_one_line_per_query_with_its_id(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "q.jsonl"
    batch.write_text('{"id": "a", "query": "TI-RADS taller-than-wide"}\n{"id": 7, "query": "LR-5 washout"}\n')
    assert run(settings, "index", "search", "--model", "hashing-128", "--batch", str(batch)) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == ["a", 7]
    assert all(line["hits"] for line in lines)


def test_reports_search_without_patient_is_refused(
    settings: Settings, reports_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "index", "build", "--corpus", "reports", "--input", str(reports_csv),
               "--model", "hashing-128") == 0
    with pytest.raises(RetrievalError, match="--patient"):
        run(settings, "index", "search", "--corpus", "reports", "--model", "hashing-128", "effusion")
    capsys.readouterr()
    assert run(settings, "index", "search", "--json", "--corpus", "reports", "--patient", "pat-a",
               "--model", "hashing-128", "large pleural effusion mediastinal shift") == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits and {h["metadata"]["patient_key"] for h in hits} == {"pat-a"}


def test_add_and_stats(settings: Settings, reports_csv: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "first.csv"
    first.write_text("\n".join(REPORTS_CSV.splitlines()[:2]) + "\n", encoding="utf-8")
    run(settings, "index", "build", "--corpus", "reports", "--input", str(first), "--model", "hashing-128")
    capsys.readouterr()
    assert run(settings, "index", "add", "--json", "--input", str(reports_csv), "--model", "hashing-128") == 0
    assert json.loads(capsys.readouterr().out)["added"] == 7  # report 2: three sections, report 3: four
    assert run(settings, "index", "stats", "--json") == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["guidelines"] is None and stats["reports"]["chunks"] == 10
    assert stats["reports"]["embedding_model"] == "hashing-bow-v1-128"


def test_search_with_another_model_than_the_index_asks_for_a_rebuild(settings: Settings) -> None:
    run(settings, "index", "build", "--model", "hashing-128")
    with pytest.raises(RetrievalError, match="rebuild"):
        run(settings, "index", "search", "--model", "hashing-64", "nodule")


def test_reports_need_patients_or_synthetic_ones(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iu_like = tmp_path / "iu.csv"
    iu_like.write_text("uid,findings,impression\n1,Clear lungs.,Normal.\n2,Cardiomegaly.,Enlarged heart.\n")
    with pytest.raises(RetrievalError, match="no patient key"):
        run(settings, "index", "build", "--corpus", "reports", "--input", str(iu_like), "--model", "hashing-64")
    assert run(settings, "index", "build", "--corpus", "teaching", "--input", str(iu_like),
               "--synthetic-patients", "2", "--model", "hashing-64") == 0
    capsys.readouterr()
    assert run(settings, "index", "search", "--json", "--corpus", "teaching", "--model", "hashing-64",
               "enlarged heart") == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["text"] == "Enlarged heart."


def test_default_model_off_topic_question_has_no_source(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(settings, "index", "search", "--json", "what is the capital of France") == 0  # builds on first use
    assert json.loads(capsys.readouterr().out) == {"hits": []}
