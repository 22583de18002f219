"""BM25 (Okapi, rank-bm25's statistics) stored as term postings: built once, saved, scored per query fast."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrieval.errors import RetrievalError

logger = logging.getLogger(__name__)

# rank-bm25's BM25Okapi defaults (Robertson & Zaragoza's usual k1, b; epsilon floors negative idf).
K1, B, EPSILON = 1.5, 0.75, 0.25


class BM25Index:
    """Per-term postings of precomputed BM25 weights; a query's scores are a sum over its terms."""

    def __init__(
        self,
        vocab: dict[str, int],
        indptr: np.ndarray,
        doc_ids: np.ndarray,
        weights: np.ndarray,
        n_docs: int,
    ) -> None:
        self._vocab = vocab
        self._indptr = indptr  # (V + 1,) int64
        self._doc_ids = doc_ids  # (nnz,) int32
        self._weights = weights  # (nnz,) float32
        self.n_docs = n_docs

    @classmethod
    def build(cls, corpus_tokens: Sequence[Sequence[str]]) -> BM25Index:
        """Compute rank-bm25's BM25Okapi statistics once and turn them into postings."""
        n_docs = len(corpus_tokens)
        if n_docs == 0:
            return cls({}, np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), 0)
        from rank_bm25 import BM25Okapi

        # rank-bm25 divides by the mean length: an all-empty corpus would divide by zero.
        docs = [list(toks) if toks else ["\x00empty"] for toks in corpus_tokens]
        model = BM25Okapi(docs, k1=K1, b=B, epsilon=EPSILON)
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for doc, (freqs, length) in enumerate(zip(model.doc_freqs, model.doc_len, strict=True)):
            norm = K1 * (1 - B + B * length / model.avgdl)
            for term, tf in freqs.items():
                weight = model.idf[term] * tf * (K1 + 1) / (tf + norm)
                ids, ws = postings.setdefault(term, ([], []))
                ids.append(doc)
                ws.append(weight)
        vocab: dict[str, int] = {}
        indptr = [0]
        all_ids: list[int] = []
        all_ws: list[float] = []
        for term in sorted(postings):
            ids, ws = postings[term]
            vocab[term] = len(vocab)
            all_ids.extend(ids)
            all_ws.extend(ws)
            indptr.append(len(all_ids))
        return cls(
            vocab,
            np.asarray(indptr, np.int64),
            np.asarray(all_ids, np.int32),
            np.asarray(all_ws, np.float32),
            n_docs,
        )

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """(n_docs,) float32 BM25 score of every document (a repeated query term counts again)."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        for term in query_tokens:
            t = self._vocab.get(term)
            if t is None:
                continue
            lo, hi = self._indptr[t], self._indptr[t + 1]
            out[self._doc_ids[lo:hi]] += self._weights[lo:hi]
        return out

    def top(self, query_tokens: Sequence[str], k: int, candidates: np.ndarray | None = None) -> list[int]:
        """Rows of the ``k`` best-scoring documents with a positive score, optionally among ``candidates``."""
        scores = self.scores(query_tokens)
        if candidates is not None:
            sub = scores[candidates]
            order = np.argsort(-sub, kind="stable")[:k]
            return [int(candidates[i]) for i in order if sub[i] > 0]
        k = min(k, self.n_docs)
        if k <= 0:
            return []
        part = np.argpartition(-scores, k - 1)[:k] if k < self.n_docs else np.arange(self.n_docs)
        order = part[np.argsort(-scores[part], kind="stable")]
        return [int(i) for i in order if scores[i] > 0]

    def save(self, folder: Path) -> None:
        """Write ``bm25.npz`` and ``bm25_vocab.json`` into ``folder``."""
        with open(folder / "bm25.npz", "wb") as fh:
            np.savez(fh, indptr=self._indptr, doc_ids=self._doc_ids, weights=self._weights,
                     n_docs=np.asarray([self.n_docs], np.int64))
        terms = sorted(self._vocab, key=self._vocab.__getitem__)
        (folder / "bm25_vocab.json").write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        """Read what ``save`` wrote (no pickle)."""
        try:
            with np.load(folder / "bm25.npz", allow_pickle=False) as data:
                indptr, doc_ids, weights = data["indptr"], data["doc_ids"], data["weights"]
                n_docs = int(data["n_docs"][0])
            terms = json.loads((folder / "bm25_vocab.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            raise RetrievalError(f"the BM25 part of the index in {folder} is unreadable: {exc}") from exc
        return cls({t: i for i, t in enumerate(terms)}, indptr, doc_ids, weights, n_docs)
