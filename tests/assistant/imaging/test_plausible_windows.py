"""A typed window (CLI ``--window``, the viewer's centre/width boxes) outside any modality's range is refused with
a message that says what a window looks like, instead of rendering a blank image or overflowing."""

from __future__ import annotations

import pytest

from assistant.imaging.study import WindowError, parse_window


@pytest.mark.parametrize("spec", ["50,100000000000", (1e300, 5.0), (40.0, 3e7), "-20000000/400"])
def test_implausible_typed_windows_are_refused(spec: object) -> None:
    with pytest.raises(WindowError, match="not a plausible window"):
        parse_window(spec)  # type: ignore[arg-type]


def test_plausible_windows_pass_and_a_non_number_is_named() -> None:
    assert (parse_window("-600/1500").center, parse_window((40, 400)).width) == (-600.0, 400.0)
    assert parse_window((3000.0, 6000.0)).width == 6000.0  # an MR window in raw signal units
    with pytest.raises(WindowError, match="two numbers"):
        parse_window((40, "x"))  # type: ignore[arg-type]
