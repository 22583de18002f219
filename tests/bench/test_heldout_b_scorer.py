"""The held-out set B scorer on hand-made renderings: what counts as removed, kept, withheld, falsely redacted."""

from __future__ import annotations

import numpy as np

from bench.heldout_burned_in_b import (
    REMOVED_FRAC,
    dominant_share,
    false_redaction,
    mentions_withheld,
    token_scores,
)


def _frame(value: int, h: int = 40, w: int = 60) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def _glyph(h: int = 40, w: int = 60) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """A crude 'T': a bar and a stem, inside box (20, 10)-(36, 26)."""
    glyph = np.zeros((h, w), bool)
    glyph[10:13, 20:36] = True
    glyph[13:26, 27:30] = True
    return glyph, glyph.copy(), (20, 10, 36, 26)


def _removed(m: dict[str, float]) -> bool:
    return m["core_black"] >= REMOVED_FRAC and m["box_black"] >= REMOVED_FRAC


def test_light_ink_on_black_is_removed_only_when_the_ink_goes_black() -> None:
    glyph, core, box = _glyph()
    ref = _frame(0)
    ref[glyph] = 230
    assert token_scores(ref, None, glyph, core, box)["contrast_ref"] >= 200
    assert not _removed(token_scores(ref, ref.copy(), glyph, core, box))
    redacted = ref.copy()
    redacted[box[1]:box[3], box[0]:box[2]] = 0
    assert _removed(token_scores(ref, redacted, glyph, core, box))
    half = ref.copy()
    half[box[1]:box[3], box[0]:28] = 0  # left half blacked out: the stem stays legible
    assert not _removed(token_scores(ref, half, glyph, core, box))


def test_dark_ink_on_a_light_band_needs_the_background_blacked_too() -> None:
    glyph, core, box = _glyph()
    ref = _frame(220)
    ref[glyph] = 0  # black ink: its core is "black" already
    unchanged = token_scores(ref, ref.copy(), glyph, core, box)
    assert unchanged["core_black"] == 1.0 and not _removed(unchanged)
    boxed = ref.copy()
    boxed[box[1]:box[3], box[0]:box[2]] = 0
    assert _removed(token_scores(ref, boxed, glyph, core, box))


def test_a_negative_is_kept_only_while_its_box_is_unchanged() -> None:
    glyph, core, box = _glyph()
    ref = _frame(90)
    ref[glyph] = 250
    assert token_scores(ref, ref.copy(), glyph, core, box)["box_changed"] == 0.0
    smeared = ref.copy()
    smeared[glyph] = 90  # inpainted away, not black: still not kept
    assert token_scores(ref, smeared, glyph, core, box)["box_changed"] > 0.10


def test_false_redaction_counts_black_anatomy_outside_the_exclusions_only() -> None:
    ref = _frame(120, 100, 100)
    ref[:, :10] = 5  # dark background is not anatomy
    test = ref.copy()
    test[50:60, 50:60] = 0  # 100 px blacked out in anatomy
    test[0:10, 80:100] = 0  # 200 px blacked out inside a drawn block's box
    share, bad, n = false_redaction(ref, test, [(80, 0, 100, 10)])
    assert (bad, n) == (100, 100 * 90 - 200)
    assert abs(share - 100 / n) < 1e-12
    assert false_redaction(ref, test, [(80, 0, 100, 10), (50, 50, 60, 60)])[1] == 0


def test_withheld_is_read_from_the_json_or_a_blank_frame() -> None:
    assert mentions_withheld({"burned_in_text": {"withheld": True}})
    assert mentions_withheld({"burned_in_text": "withheld: text still legible"})
    assert not mentions_withheld({"burned_in_text": {"withheld": False, "redacted": 3}})
    assert not mentions_withheld({"burned_in_text": None, "modality": "US"})
    blank = _frame(0, 200, 200)
    blank[90:100, 40:160] = 255  # a short message on a flat frame
    assert dominant_share(blank) >= 0.97
    varied = np.random.default_rng(0).integers(0, 255, (50, 50, 3), dtype=np.uint8)
    assert dominant_share(varied) < 0.1
