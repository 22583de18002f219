"""``radassist index build|add|stats|search`` through its registrar, on real indexes in a temp data dir."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import retrieval
from assistant.cli import index as cli_index
from assistant.errors import RetrievalError
from assistant.settings import Settings, load_settings
from tests.support.read_only import read_only_tree, tree_state

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


def test_build_out_writes_the_index_elsewhere_and_stats_and_search_read_it_as_the_app_does(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ship" / "guidelines"
    assert run(settings, "index", "build", "--json", "--model", "hashing-128", "--out", str(out)) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["path"] == str(out) and built["embedding_model"] == "hashing-bow-v1-128"
    assert built["corpus_digest"] == retrieval.knowledge_base_digest(retrieval.KnowledgeBase.load_default())
    assert (out / "CURRENT").is_file() and not (settings.data_dir / "index").exists()

    app = settings.replace(guideline_index=out)  # what the replicas are given: stats and search read that folder
    with read_only_tree(out) as state:
        assert run(app, "index", "stats", "--json", "--corpus", "guidelines") == 0
        stats = json.loads(capsys.readouterr().out)["guidelines"]
        assert stats["path"] == str(out) and stats["corpus_digest"] == built["corpus_digest"]
        assert run(app, "index", "search", "--json", "--model", "hashing-128", "Bosniak IIF renal cyst septa") == 0
        assert json.loads(capsys.readouterr().out)["hits"][0]["section"].startswith("bosniak-2019/")
        with pytest.raises(RetrievalError, match="rebuild"):  # another model: refused, never rebuilt in place
            run(app, "index", "search", "--model", "hashing-64", "Bosniak IIF")
        assert tree_state(out) == state
    assert not (settings.data_dir / "index").exists()

    assert run(settings, "index", "build", "--model", "hashing-64", "--out", str(out)) == 0  # an index is replaced
    assert retrieval.HybridIndex.read_manifest(out).embedding_model == "hashing-bow-v1-64"
    assert len([p for p in out.iterdir() if p.name != "CURRENT"]) == 1  # the old version removed


def test_build_out_never_sweeps_a_folder_that_is_not_an_index(
    settings: Settings, reports_csv: Path, tmp_path: Path
) -> None:
    busy = tmp_path / "srv"
    (busy / "var").mkdir(parents=True)  # named like a version folder: a commit would remove it
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(RetrievalError, match="not an index folder"):
        run(settings, "index", "build", "--model", "hashing-64", "--out", str(busy))
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt", "var"]
    with pytest.raises(RetrievalError, match="database"):
        run(settings, "index", "build", "--corpus", "reports", "--input", str(reports_csv), "--model", "hashing-64",
            "--out", str(tmp_path / "reports"))  # fmt: skip
    assert not (tmp_path / "reports").exists()


def test_build_out_for_the_teaching_corpus_records_its_digest(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iu_like = tmp_path / "iu.csv"
    iu_like.write_text("uid,findings,impression\n1,Clear lungs.,Normal.\n2,Cardiomegaly.,Enlarged heart.\n")
    out = tmp_path / "ship" / "teaching"
    assert run(settings, "index", "build", "--json", "--corpus", "teaching", "--input", str(iu_like),
               "--synthetic-patients", "2", "--model", "hashing-64", "--out", str(out)) == 0  # fmt: skip
    built = json.loads(capsys.readouterr().out)
    manifest = retrieval.HybridIndex.read_manifest(out)
    assert built["corpus_digest"] == manifest.corpus_digest == retrieval.chunk_set_digest(manifest.chunk_ids)
    assert manifest.count == 4 and not (settings.data_dir / "index").exists()
