"""Retrieval quality: recall@k and MRR of labelled queries, per search mode."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.errors import RetrievalError
from retrieval.index import MODES, HybridIndex

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledQuery:
    """A question and the section id that answers it."""

    id: str
    query: str
    expected: str


def read_queries(path: Path) -> list[LabelledQuery]:
    """Queries from a JSONL file of ``{"id", "query", "expected"}``."""
    out: list[LabelledQuery] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(LabelledQuery(str(row.get("id", n)), str(row["query"]), str(row["expected"])))
        except (ValueError, KeyError) as exc:
            raise RetrievalError(f"{path}:{n}: expected a JSON object with query and expected") from exc
    return out


def embed_queries(index: HybridIndex, queries: Sequence[str]) -> np.ndarray:
    """(Q, D) query vectors in one batch with the index's embedder."""
    return index.embedder.embed(list(queries))


def evaluate(
    index: HybridIndex,
    queries: Sequence[LabelledQuery],
    ks: Sequence[int] = (1, 5, 10),
    modes: Sequence[str] = MODES,
) -> dict[str, dict[str, float]]:
    """Per mode: recall@k (expected section among the top k sections) and MRR over the top max(ks)."""
    depth = max(ks)
    vectors = embed_queries(index, [q.query for q in queries])
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        hits_at = dict.fromkeys(ks, 0)
        rr = 0.0
        for q, vector in zip(queries, vectors, strict=True):
            sections: list[str] = []
            for hit in index.search(q.query, depth, mode=mode, query_vector=vector):
                if hit.section not in sections:
                    sections.append(hit.section)
            if q.expected in sections:
                rank = sections.index(q.expected) + 1
                rr += 1.0 / rank
                for k in ks:
                    hits_at[k] += rank <= k
        n = max(len(queries), 1)
        results[mode] = {f"recall@{k}": hits_at[k] / n for k in ks} | {"mrr": rr / n}
    return results
