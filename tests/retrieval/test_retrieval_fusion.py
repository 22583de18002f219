from __future__ import annotations

import pytest

from retrieval.fusion import RRF_K, reciprocal_rank_fusion


def test_items_ranked_well_by_both_lists_win() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "a", "d"]])
    assert [item for item, _ in fused][:2] in (["a", "b"], ["b", "a"])
    assert dict(fused)["a"] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert [item for item, _ in fused][-2:] in (["c", "d"], ["d", "c"])


def test_single_list_keeps_its_order() -> None:
    assert [i for i, _ in reciprocal_rank_fusion([[3, 1, 2]])] == [3, 1, 2]


def test_negative_k_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion([[1]], k=-1)
