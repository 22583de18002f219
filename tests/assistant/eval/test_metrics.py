"""The VQA metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.eval import metrics


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Left Lung.", "left lung"),
        ("x-ray", "x ray"),
        ("  An  MRI, T2-weighted ", "mri t2 weighted"),
        ("Ｙｅｓ", "yes"),  # full-width letters fold under NFKC
        ("a the an", ""),
    ],
)
def test_normalize_lowercases_splits_punctuation_and_drops_articles(text: str, expected: str) -> None:
    assert metrics.normalize(text) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Yes", "yes"),
        ("yes, there is an infarct", "yes"),
        ("No.", "no"),
        ("Not seen.", "no"),
        ("The answer is yes", "yes"),
        ("There is no effusion", "no"),
        ("True", "yes"),
        ("Present in the left lobe", "yes"),
        ("The mass is present", None),  # a synonym only counts as the first word
        ("Left", None),
        ("", None),
    ],
)
def test_yes_no_reads_the_first_word_then_a_standalone_yes_or_no(answer: str, expected: str | None) -> None:
    assert metrics.yes_no(answer) == expected


def test_closed_accuracy_normalises_yes_no_and_finds_other_references_as_whole_words() -> None:
    assert metrics.closed_correct("Yes, regions of the brain are infarcted.", "Yes") == 1.0
    assert metrics.closed_correct("No.", "yes") == 0.0
    assert metrics.closed_correct("I cannot tell.", "No") == 0.0  # says neither: wrong, not skipped
    assert metrics.closed_correct("It is on the left side.", "Left") == 1.0
    assert metrics.closed_correct("The leftmost one.", "left") == 0.0  # whole words only


def test_token_f1_counts_repeated_words_as_squad_does() -> None:
    # pred [left, lung, base], ref [left, lower, lobe]: 1 common -> P = R = 1/3 -> F1 = 1/3
    assert metrics.token_f1("The left lung base", "Left lower lobe") == pytest.approx(1 / 3)
    # pred [left, left, lung] vs ref [left, lung]: common = min counts = left 1 + lung 1 = 2; P 2/3, R 1 -> 0.8
    assert metrics.token_f1("left left lung", "left lung") == pytest.approx(0.8)
    assert metrics.token_f1("Chest X-ray", "chest x ray") == 1.0
    assert metrics.token_f1("", "") == 1.0
    assert metrics.token_f1("anything", "") == 0.0


def test_open_recall_is_the_share_of_distinct_reference_words_in_the_answer() -> None:
    # ref {right, lower, lobe}; answer has right and lobe -> 2/3, extra words do not lower it
    assert metrics.token_recall("an opacity in the right middle lobe, not the lower", "Right lower lobe") == 1.0
    assert metrics.token_recall("right middle lobe", "Right lower lobe") == pytest.approx(2 / 3)
    assert metrics.token_recall("x", "") == 0.0


def test_exact_match_compares_normalised_strings() -> None:
    assert metrics.exact_match("The Brain.", "brain") == 1.0
    assert metrics.exact_match("brain stem", "brain") == 0.0


def test_bootstrap_is_reproducible_with_a_seed_and_brackets_the_mean() -> None:
    values = [0.05 * i for i in range(21)]  # mean 0.5
    first = metrics.bootstrap_ci(values, seed=7)
    assert first == metrics.bootstrap_ci(values, seed=7)
    assert first != metrics.bootstrap_ci(values, seed=8)
    assert first is not None
    low, high = first
    assert 0.3 < low < 0.5 < high < 0.7


def test_bootstrap_is_the_percentile_interval_of_resampled_means() -> None:
    # The same resamples drawn one by one: the 2.5th and 97.5th percentiles of their means.
    values = [0.0, 0.2, 0.9, 1.0, 0.4]
    rng = np.random.default_rng(3)
    picks = rng.integers(0, len(values), size=(200, len(values)))
    means = [sum(values[i] for i in row) / len(row) for row in picks]
    expected = (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))
    assert metrics.bootstrap_ci(values, resamples=200, seed=3) == pytest.approx(expected)


def test_bootstrap_of_constant_values_is_that_value_and_of_nothing_is_none() -> None:
    assert metrics.bootstrap_ci([0.25] * 5, seed=0) == (0.25, 0.25)
    assert metrics.bootstrap_ci([]) is None
    with pytest.raises(ValueError, match="confidence"):
        metrics.bootstrap_ci([1.0], confidence=1.5)


def test_percentiles_interpolate_linearly() -> None:
    assert metrics.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert metrics.percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert metrics.percentile([], 50) is None
    assert metrics.mean([]) is None
