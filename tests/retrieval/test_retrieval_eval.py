"""The real offline all-MiniLM-L6-v2 on the real knowledge base: quality floor and "no source"."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import (
    DEFAULT_MIN_RELEVANCE,
    DEFAULT_MODEL_ID,
    HybridIndex,
    KnowledgeBase,
    SentenceTransformerEmbedder,
    ensure_guideline_index,
    search_guidelines,
)
from retrieval.evaluation import evaluate, read_queries

from .conftest import KB_QUERIES


@pytest.fixture(scope="module")
def kb_index(minilm: SentenceTransformerEmbedder, kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory
             ) -> HybridIndex:
    return ensure_guideline_index(tmp_path_factory.mktemp("kb") / "guidelines", minilm, kb)


def test_minilm_embeds_384_d_unit_vectors(minilm: SentenceTransformerEmbedder) -> None:
    vectors = minilm.embed(["solid pulmonary nodule", "thyroid nodule"])
    assert vectors.shape == (2, 384) and minilm.model_id == DEFAULT_MODEL_ID
    assert abs(float((vectors**2).sum(axis=1)[0]) - 1.0) < 1e-4


def test_labelled_questions_cover_every_section(kb: KnowledgeBase) -> None:
    queries = read_queries(KB_QUERIES)
    assert len(queries) >= 60
    assert {q.expected for q in queries} == set(kb.section_ids())


def test_hybrid_recall_at_5_meets_the_goal(kb_index: HybridIndex) -> None:
    result = evaluate(kb_index, read_queries(KB_QUERIES), ks=(1, 5))
    assert result["hybrid"]["recall@5"] >= 0.95, result
    assert result["hybrid"]["recall@5"] >= result["dense"]["recall@5"]


@pytest.mark.parametrize("query", ["what is the capital of France", "recipe for pizza dough"])
def test_off_topic_question_has_no_source(kb_index: HybridIndex, query: str) -> None:
    assert search_guidelines(kb_index, query) == []


def test_on_topic_question_clears_the_threshold_and_cites(kb_index: HybridIndex) -> None:
    hits = search_guidelines(kb_index, "Bosniak IIF renal cyst follow-up")
    assert hits and hits[0].section.startswith("bosniak-2019/")
    assert all(h.relevance >= DEFAULT_MIN_RELEVANCE for h in hits)
    assert hits[0].to_dict().keys() >= {"id", "source", "title", "section", "text", "score"}


def test_guideline_index_is_reused_and_rebuilt_only_when_the_kb_changes(
    kb_index: HybridIndex, minilm: SentenceTransformerEmbedder, kb: KnowledgeBase
) -> None:
    path = kb_index.path
    assert path is not None
    before = HybridIndex.read_manifest(path).updated_at
    again = ensure_guideline_index(path, minilm, kb)
    assert HybridIndex.read_manifest(path).updated_at == before and len(again) == len(kb_index)
    smaller = KnowledgeBase([g for g in kb.guidelines if g.id == "bosniak-2019"])
    rebuilt = ensure_guideline_index(Path(path), minilm, smaller)
    assert {c.section.split("/")[0] for c in rebuilt.chunks} == {"bosniak-2019"}
