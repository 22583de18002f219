"""Several views of a study as images for the model: pinned frames and a series sampled evenly, labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant import RadassistError, View, images_in_views, load_settings, load_study, render, series_views
from tests.ui.synthetic import write_ct_series


@pytest.fixture()
def study(tmp_path: Path) -> object:
    files = write_ct_series(tmp_path / "ct", slices=10, size=32)
    return load_study(files, load_settings(env={}, data_dir=tmp_path / "d")).study


def test_a_series_is_sampled_evenly_from_first_to_last_frame(study: object) -> None:
    views = series_views(study, 0, 4, "lung")  # type: ignore[arg-type]
    assert [v.frame for v in views] == [0, 3, 6, 9] and {v.window for v in views} == {"lung"}
    assert [v.frame for v in series_views(study, 0, 50)] == list(range(10))  # type: ignore[arg-type]
    with pytest.raises(RadassistError, match="series 3 does not exist"):
        series_views(study, 2, 4)  # type: ignore[arg-type]
    with pytest.raises(RadassistError, match="at least 1"):
        series_views(study, 0, 0)  # type: ignore[arg-type]


def test_views_are_rendered_in_their_order_with_their_windows_and_labelled(study: object) -> None:
    frames = study.series[0].images  # type: ignore[attr-defined]
    refs, sent = images_in_views(study, [View(0, 7, "bone"), View(0, 2, (-600.0, 1500.0))])  # type: ignore[arg-type]
    assert np.array_equal(refs[0].rendering, render(frames[7], "bone"))
    assert np.array_equal(refs[1].rendering, render(frames[2], (-600.0, 1500.0)))
    assert "slice 8/10, window bone" in refs[0].label and "slice 3/10" in refs[1].label
    assert [s["frame"] for s in sent] == [8, 3] and "sample" not in refs[0].label
    sampled, _ = images_in_views(study, series_views(study, 0, 3), sampled=True)  # type: ignore[arg-type]
    assert [r.label.rsplit(", ", 1)[1] for r in sampled] == [f"series sample {n} of 3" for n in (1, 2, 3)]
