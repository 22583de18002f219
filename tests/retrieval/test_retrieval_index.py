"""HybridIndex on a real FAISS index and real BM25 over a small fixture corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

import retrieval.index as index_module
from retrieval import Chunk, EmbeddingModelMismatchError, HashingEmbedder, HybridIndex, IndexConfig, RetrievalError
from retrieval.bm25 import BM25Index
from retrieval.text import tokenize


def test_search_finds_the_matching_chunk_in_every_mode(corpus: list[Chunk], hashing: HashingEmbedder) -> None:
    index = HybridIndex.build(corpus, hashing)
    for mode in ("hybrid", "dense", "bm25"):
        hits = index.search("thyroid nodule with punctate echogenic foci", 3, mode=mode)
        assert hits[0].section == "nodule" and hits[0].title == "Thyroid US", mode
    hit = index.search("pleural effusion", 1)[0]
    assert (hit.id, hit.source, hit.text) == (corpus[1].id, "fixture", corpus[1].text)
    assert 0 < hit.relevance <= 1 and hit.score > 0


def test_bm25_postings_score_exactly_like_rank_bm25(corpus: list[Chunk]) -> None:
    docs = [tokenize(c.embed_text) for c in corpus]
    query = tokenize("solid nodule follow-up CT attenuation")
    ours = BM25Index.build(docs).scores(query)
    np.testing.assert_allclose(ours, BM25Okapi(docs).get_scores(query), rtol=1e-5, atol=1e-6)


def test_bm25_is_persisted_and_not_rebuilt_per_query(
    corpus: list[Chunk], hashing: HashingEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    HybridIndex.build(corpus, hashing, tmp_path / "ix")
    loaded = HybridIndex.load(tmp_path / "ix", hashing)

    def no_build(*_a: object, **_k: object) -> None:
        raise AssertionError("BM25 rebuilt")

    monkeypatch.setattr(BM25Index, "build", no_build)
    for _ in range(3):
        assert loaded.search("meniscus tear", 1)[0].section == "meniscus"


def test_ids_are_content_hashes_stable_across_rebuilds(corpus: list[Chunk], hashing: HashingEmbedder) -> None:
    first = HybridIndex.build(corpus, hashing)
    second = HybridIndex.build(list(reversed(corpus)), HashingEmbedder(64))
    assert {c.id for c in first.chunks} == {c.id for c in second.chunks}
    assert first.search("renal cyst", 1)[0].id == second.search("renal cyst", 1)[0].id
    edited = Chunk.create("fixture", "Renal CT", "cyst", corpus[3].text + " Edited.")
    assert edited.id != corpus[3].id


def test_save_and_load_round_trip_with_manifest(corpus: list[Chunk], hashing: HashingEmbedder, tmp_path: Path) -> None:
    built = HybridIndex.build(corpus, hashing, tmp_path / "ix")
    manifest = HybridIndex.read_manifest(tmp_path / "ix")
    assert manifest.embedding_model == hashing.model_id and manifest.dim == 128
    assert manifest.chunk_ids == tuple(c.id for c in corpus) and manifest.count == len(corpus)
    loaded = HybridIndex.load(tmp_path / "ix", hashing)
    query = "liver washout arterial hyperenhancement"
    assert [h.id for h in loaded.search(query, 4)] == [h.id for h in built.search(query, 4)]


def test_the_manifest_records_the_corpus_digest_and_reads_manifests_without_one(
    corpus: list[Chunk], hashing: HashingEmbedder, tmp_path: Path
) -> None:
    HybridIndex.build(corpus, hashing, tmp_path / "ix")
    manifest = HybridIndex.read_manifest(tmp_path / "ix")
    assert manifest.corpus_digest == index_module.chunk_set_digest(reversed([c.id for c in corpus]))  # order-free
    assert manifest.corpus_digest != index_module.chunk_set_digest(c.id for c in corpus[1:])
    version = tmp_path / "ix" / (tmp_path / "ix" / "CURRENT").read_text().strip()
    data = json.loads((version / "manifest.json").read_text())
    del data["corpus_digest"]  # as an earlier version wrote it
    data["written_by_a_later_version"] = 1
    (version / "manifest.json").write_text(json.dumps(data))
    older = HybridIndex.read_manifest(tmp_path / "ix")
    assert older.corpus_digest == "" and older.digest == manifest.corpus_digest
    assert len(HybridIndex.load(tmp_path / "ix", hashing)) == len(corpus)


def test_changed_embedding_model_is_refused_with_a_clear_message(
    corpus: list[Chunk], hashing: HashingEmbedder, tmp_path: Path
) -> None:
    HybridIndex.build(corpus, hashing, tmp_path / "ix")
    with pytest.raises(EmbeddingModelMismatchError, match="hashing-bow-v1-128.*hashing-bow-v1-64.*rebuild"):
        HybridIndex.load(tmp_path / "ix", HashingEmbedder(64))
    rebuilt = HybridIndex.build(corpus, HashingEmbedder(64), tmp_path / "ix")  # an explicit rebuild works
    assert HybridIndex.read_manifest(tmp_path / "ix").embedding_model == "hashing-bow-v1-64"
    assert len(rebuilt) == len(corpus)


def test_crash_during_save_leaves_the_old_index_usable(
    corpus: list[Chunk], hashing: HashingEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ix"
    HybridIndex.build(corpus[:4], hashing, path)
    bigger = HybridIndex.build(corpus, hashing)

    def crash(*_a: object, **_k: object) -> None:
        raise OSError("disk full (injected)")

    monkeypatch.setattr(BM25Index, "save", crash)  # dies after chunks and vectors were written
    with pytest.raises(OSError, match="injected"):
        bigger.save(path)
    monkeypatch.undo()
    old = HybridIndex.load(path, hashing)
    assert len(old) == 4 and old.search("renal cyst", 1)[0].section == "cyst"
    assert not [p for p in path.iterdir() if p.name.startswith(".tmp-")]


def test_leftovers_of_a_killed_save_do_not_break_loading(
    corpus: list[Chunk], hashing: HashingEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "ix"
    HybridIndex.build(corpus, hashing, path)
    (path / ".tmp-v0-dead").mkdir()  # a process killed mid-write leaves a half folder behind
    (path / ".tmp-v0-dead" / "chunks.jsonl").write_text("{broken", encoding="utf-8")
    assert len(HybridIndex.load(path, hashing)) == len(corpus)
    HybridIndex.build(corpus[:2], hashing, path)  # the next save sweeps it away
    assert not (path / ".tmp-v0-dead").exists()
    assert len([p for p in path.iterdir() if p.is_dir()]) == 1


def test_incremental_add_embeds_only_new_chunks_and_persists(
    corpus: list[Chunk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = HashingEmbedder(128)
    seen: list[int] = []
    original = embedder.embed

    def counting(texts: list[str]) -> np.ndarray:
        seen.append(len(texts))
        return original(texts)

    monkeypatch.setattr(embedder, "embed", counting)
    index = HybridIndex.build(corpus[:5], embedder, tmp_path / "ix")
    seen.clear()
    assert index.add(corpus) == 3  # the first five are already there
    assert sum(seen) == 3
    assert index.add(corpus) == 0
    loaded = HybridIndex.load(tmp_path / "ix", HashingEmbedder(128))
    assert len(loaded) == 8 and loaded.search("medial meniscus tear", 1)[0].section == "meniscus"
    assert loaded.search("medial meniscus tear", 1, mode="bm25")[0].section == "meniscus"


def test_metadata_filters_restrict_results(corpus: list[Chunk], hashing: HashingEmbedder) -> None:
    index = HybridIndex.build(corpus, hashing)
    hits = index.search("nodule", 5, {"organ": "thyroid"})
    assert [h.title for h in hits] == ["Thyroid US"]
    assert {h.metadata["organ"] for h in index.search("nodule", 8, {"organ": ["chest", "renal"]})} <= {"chest", "renal"}
    assert index.search("nodule", 5, {"organ": "spleen"}) == []


def test_relevance_threshold_lets_the_caller_say_no_source(corpus: list[Chunk], hashing: HashingEmbedder) -> None:
    index = HybridIndex.build(corpus, hashing)
    assert index.search("renal cyst water attenuation", 3, min_relevance=0.2)
    assert index.search("quarterly tax return deadline", 3, min_relevance=0.2) == []


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_every_index_kind_builds_saves_and_finds_near_duplicates(kind: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{int(i)}" for i in rng.integers(0, 3000, size=12)) for _ in range(3000)]
    chunks = [Chunk.create("synthetic", "", f"s{i}", t) for i, t in enumerate(texts)]
    embedder = HashingEmbedder(64)
    config = IndexConfig(kind=kind, pq_m=8, ivf_nlist=16)
    index = HybridIndex.build(chunks, embedder, tmp_path / kind, config=config)
    assert index.kind == kind
    loaded = HybridIndex.load(tmp_path / kind, embedder, config=config)
    found = sum(loaded.search(texts[i], 1, mode="dense")[0].section == f"s{i}" for i in range(0, 3000, 150))
    assert found >= 18  # of 20


def test_auto_kind_is_exact_for_small_corpora(corpus: list[Chunk], hashing: HashingEmbedder) -> None:
    assert HybridIndex.build(corpus, hashing).kind == "flat"
    assert IndexConfig().resolve_kind(10_000_000) == "ivfpq"
    assert IndexConfig().resolve_kind(500_000) == "hnsw"
    with pytest.raises(RetrievalError, match="index kind"):
        IndexConfig(kind="annoy")


def test_bad_queries_are_refused(corpus: list[Chunk], hashing: HashingEmbedder) -> None:
    index = HybridIndex.build(corpus, hashing)
    with pytest.raises(RetrievalError, match="empty"):
        index.search("   ")
    with pytest.raises(RetrievalError, match="k must"):
        index.search("x", 0)
    with pytest.raises(RetrievalError, match="mode"):
        index.search("x", mode="magic")


def test_loading_a_missing_index_says_build_it(hashing: HashingEmbedder, tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="no index at .*build"):
        HybridIndex.load(tmp_path / "nothing", hashing)
    assert index_module.CURRENT == "CURRENT"


def test_progress_bar_goes_to_stderr(
    corpus: list[Chunk], hashing: HashingEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    HybridIndex.build(corpus, hashing, show_progress=True)
    captured = capsys.readouterr()
    assert "embedding" in captured.err and captured.out == ""
