"""Reciprocal rank fusion of ranked lists (Cormack, Clarke & Buettcher, SIGIR 2009)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)

# k = 60 is the constant of the original RRF paper; it damps the weight of the very top ranks.
RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[T]], k: int = RRF_K) -> list[tuple[T, float]]:
    """Items of all rankings ordered by the sum of 1 / (k + rank); ties keep first-seen order."""
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    scores: dict[T, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
