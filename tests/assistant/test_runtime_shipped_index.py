"""A guideline index built once (``radassist index build --out``) and shipped as files: loaded read-only by the
runtime through ``guideline_index`` (RADASSIST_GUIDELINE_INDEX), shared by replicas, refused with a clear error
when it cannot be used. Real FAISS + BM25, the hashing embedder, the LLM a local OpenAI-protocol server."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import retrieval
from assistant.cli import index as cli_index
from assistant.errors import RetrievalError
from assistant.runtime import open_runtime
from assistant.settings import Settings, load_settings
from assistant.startup import RuntimeNotReady, RuntimeStarter
from tests.support.openai_stub import OpenAIStub
from tests.support.read_only import TreeState, read_only_tree, tree_state, writable_copy

MODEL = "hashing-128"
QUESTION = "What does Bosniak IIF mean?"


def index_cli(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_index.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["index", *argv])
    return int(args.func(args, settings))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, TreeState]]:
    """The guideline index built once by the CLI into its own folder, then made read-only (files and folders)."""
    builder = load_settings(env={}, data_dir=tmp_path_factory.mktemp("builder") / "data")
    out = tmp_path_factory.mktemp("shipped") / "guidelines"
    assert index_cli(builder, "build", "--corpus", "guidelines", "--model", MODEL, "--out", str(out)) == 0
    assert not (builder.data_dir / "index").exists()  # --out: nothing written into the builder's data dir
    with read_only_tree(out) as state:
        yield out, state


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAIStub]:
    with OpenAIStub("A model's answer.") as stub:
        yield stub


def app_settings(data_dir: Path, llm: OpenAIStub, **changes: Any) -> Settings:
    values: dict[str, Any] = {"embedding_model": MODEL, "guideline_phrasing": "off", **changes}
    return load_settings(env={}, data_dir=data_dir, llm_url=llm.url, **values)


def test_build_out_writes_a_complete_index_whose_manifest_names_the_model_and_the_knowledge_base(
    shipped: tuple[Path, TreeState],
) -> None:
    folder, _ = shipped
    manifest = retrieval.HybridIndex.read_manifest(folder)
    kb = retrieval.KnowledgeBase.load_default()
    assert manifest.embedding_model == "hashing-bow-v1-128" and manifest.dim == 128
    assert manifest.count == len(kb.chunks()) == len(manifest.chunk_ids)
    assert manifest.corpus_digest == retrieval.knowledge_base_digest(kb)
    version = folder / (folder / retrieval.index.CURRENT).read_text().strip()
    assert {p.name for p in version.iterdir()} >= {"manifest.json", "chunks.jsonl", "vectors.npy", "bm25.npz"}


def test_runtime_answers_a_guideline_lookup_from_the_read_only_shipped_index(
    shipped: tuple[Path, TreeState], llm: OpenAIStub, tmp_path: Path
) -> None:
    folder, state = shipped
    settings = app_settings(tmp_path / "data", llm, guideline_index=folder)
    with open_runtime(settings) as runtime:
        assert runtime.library.read_only
        answer = runtime.answer(QUESTION, mode="guideline")
        assert runtime.library.index().path == folder
    assert answer.citations and answer.citations[0]["section"] == "bosniak-2019/class-iif"
    assert not (tmp_path / "data" / "index").exists()  # nothing built in the data dir
    assert tree_state(folder) == state  # nothing written into the shipped folder: no lock, no rebuild


def test_replicas_load_one_shipped_folder_at_the_same_time(
    shipped: tuple[Path, TreeState], llm: OpenAIStub, radassist_bin: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Two `radassist ask` processes (as two replicas would) open the same read-only folder at once."""
    folder, state = shipped
    procs = []
    for name in ("replica-a", "replica-b"):
        env = dict(cli_env, RADASSIST_DATA_DIR=str(tmp_path / name), RADASSIST_LLM_URL=llm.url,
                   RADASSIST_EMBEDDING_MODEL=MODEL, RADASSIST_GUIDELINE_INDEX=str(folder),
                   RADASSIST_GUIDELINE_PHRASING="off")  # fmt: skip
        argv = [str(radassist_bin), "ask", "--mode", "guideline", "--json", QUESTION]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert json.loads(out)["citations"][0]["section"] == "bosniak-2019/class-iif"
        assert "building the guideline index" not in err
    assert tree_state(folder) == state
    assert not any((tmp_path / name / "index").exists() for name in ("replica-a", "replica-b"))


def test_a_missing_shipped_folder_refuses_the_start_and_names_the_setting(llm: OpenAIStub, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "guidelines"
    starter = RuntimeStarter(app_settings(tmp_path / "data", llm, guideline_index=missing))
    with starter:  # `radassist serve`'s start: the guideline index is loaded before the app is ready
        with pytest.raises(RuntimeNotReady) as caught:
            starter.wait(timeout_s=120)
    message = str(caught.value)
    assert "RADASSIST_GUIDELINE_INDEX" in message and "the folder does not exist" in message
    assert f"radassist index build --corpus guidelines --out {missing}" in message
    assert not missing.exists() and not (tmp_path / "data" / "index").exists()  # neither made nor built


def test_an_incomplete_shipped_folder_is_refused(
    shipped: tuple[Path, TreeState], llm: OpenAIStub, tmp_path: Path
) -> None:
    folder, _ = shipped
    no_pointer = writable_copy(folder, tmp_path / "no-pointer")
    (no_pointer / retrieval.index.CURRENT).unlink()  # a copy that missed the CURRENT file
    half = writable_copy(folder, tmp_path / "half")
    version = (folder / retrieval.index.CURRENT).read_text().strip()
    (half / version / "vectors.npy").unlink()  # a copy that missed the vectors
    for broken, why in ((no_pointer, "not a complete index"), (half, "unreadable")):
        with open_runtime(app_settings(tmp_path / "data", llm, guideline_index=broken)) as runtime:
            with pytest.raises(RetrievalError, match="RADASSIST_GUIDELINE_INDEX") as caught:
                runtime.prepare_guidelines()
        assert why in str(caught.value)
    assert not (no_pointer / retrieval.index.CURRENT).exists()  # not "repaired" by a build either


def test_a_shipped_index_of_another_embedding_model_is_refused(
    shipped: tuple[Path, TreeState], llm: OpenAIStub, tmp_path: Path
) -> None:
    folder, state = shipped
    with open_runtime(app_settings(tmp_path / "data", llm, guideline_index=folder, embedding_model="hashing-64")) as rt:
        with pytest.raises(RetrievalError) as caught:
            rt.answer(QUESTION, mode="guideline")
    message = str(caught.value)
    assert "RADASSIST_GUIDELINE_INDEX" in message
    assert "'hashing-bow-v1-128'" in message and "'hashing-bow-v1-64' is configured" in message
    assert tree_state(folder) == state  # refused, not rebuilt


def test_a_shipped_index_of_another_knowledge_base_is_refused(llm: OpenAIStub, tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    shutil.copy(Path(retrieval.__file__).parent / "data" / "bosniak-2019.toml", kb_dir)
    out = tmp_path / "other-kb"
    builder = load_settings(env={}, data_dir=tmp_path / "builder")
    assert index_cli(builder, "build", "--model", MODEL, "--kb-dir", str(kb_dir), "--out", str(out)) == 0
    with open_runtime(app_settings(tmp_path / "data", llm, guideline_index=out)) as runtime:
        with pytest.raises(RetrievalError, match="built from another knowledge base") as caught:
            runtime.prepare_guidelines()
    assert "RADASSIST_GUIDELINE_INDEX" in str(caught.value)


def test_without_the_setting_the_index_is_built_in_the_data_dir_on_first_use(llm: OpenAIStub, tmp_path: Path) -> None:
    messages: list[str] = []
    with open_runtime(app_settings(tmp_path / "data", llm)) as runtime:
        assert not runtime.library.read_only
        answer = runtime.answer(QUESTION, mode="guideline", progress=messages.append)
    built = tmp_path / "data" / "index" / "guidelines"
    assert answer.citations[0]["section"] == "bosniak-2019/class-iif"
    assert retrieval.HybridIndex.exists(built) and any("first use" in m for m in messages)
