"""VQA metrics as model cards and papers define them, on normalised text; bootstrap intervals; latency percentiles.

Normalisation (``normalize``), used by every text metric here: Unicode NFKC, lower case, every character that is
not a letter, digit or whitespace replaced by a space (so "x-ray" -> "x ray", "3.5cm" -> "3 5cm"), the English
articles "a", "an", "the" dropped, whitespace collapsed. Tokens are the words of the normalised text. This is the
SQuAD v1.1 answer normalisation (Rajpurkar et al. 2016, ``normalize_answer`` in its evaluation script), except that
punctuation becomes a space instead of being deleted, so hyphenated terms still match word by word.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

_NOT_WORD = re.compile(r"[^\w\s]|_", re.UNICODE)
_ARTICLES = frozenset({"a", "an", "the"})
# Words read as a yes or a no when a closed question's reference is yes/no (see ``yes_no``).
YES_WORDS = frozenset({"yes", "yeah", "yep", "true", "correct", "present", "positive"})
NO_WORDS = frozenset({"no", "nope", "false", "incorrect", "absent", "negative", "not", "none"})


def normalize(text: str) -> str:
    """``text`` normalised as the module docstring says."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_WORD.sub(" ", text)
    return " ".join(word for word in text.split() if word not in _ARTICLES)


def tokens(text: str) -> list[str]:
    """The words of the normalised text."""
    return normalize(text).split()


def yes_no(text: str) -> str | None:
    """Return "yes" or "no" when the answer says one, else None.

    The first normalised word decides when it is a yes- or no-word ("Yes, there is..." -> yes, "No." -> no,
    "Not seen" -> no); otherwise the first standalone "yes" or "no" anywhere in the answer ("The answer is yes").
    Only the first word may be a synonym, so "there is no..." inside a longer sentence counts as "no" but
    "... is present" does not count as "yes".
    """
    words = tokens(text)
    if not words:
        return None
    if words[0] in YES_WORDS:
        return "yes"
    if words[0] in NO_WORDS:
        return "no"
    for word in words:
        if word in ("yes", "no"):
            return word
    return None


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize(prediction) == normalize(reference))


def closed_correct(prediction: str, reference: str) -> float:
    """Accuracy of one closed question (1.0 or 0.0).

    Yes/no references: the prediction's ``yes_no`` reading must equal the reference's (an answer that says
    neither is wrong). Other closed references ("left", "CT"): the normalised reference must appear as whole
    words in the normalised prediction (LLaVA-Med's rule for closed questions: the reference is found in the
    answer).
    """
    ref = yes_no(reference) if normalize(reference) in ("yes", "no") else None
    if ref is not None:
        return float(yes_no(prediction) == ref)
    ref_norm, pred_norm = normalize(reference), normalize(prediction)
    if not ref_norm:
        return 0.0
    return float(f" {ref_norm} " in f" {pred_norm} ")


def token_f1(prediction: str, reference: str) -> float:
    """Token-level F1 over the normalised words, counting repeats (SQuAD v1.1 ``f1_score``); 1.0 when both are
    empty, 0.0 when only one is."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_recall(prediction: str, reference: str) -> float:
    """Share of the reference's distinct normalised words that appear in the prediction: LLaVA-Med's "recall"
    for open questions (Li et al. 2023, section 5.2: "the ratio of ground-truth tokens that appear in the
    generated sequences")."""
    ref = set(tokens(reference))
    if not ref:
        return 0.0
    return len(ref & set(tokens(prediction))) / len(ref)


def mean(values: Sequence[float]) -> float | None:
    """The mean, or None for no values (a metric over no questions is undefined, not 0)."""
    return float(sum(values) / len(values)) if values else None


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] | None = None,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic`` (default the mean) over ``values``; None for no values.

    Efron & Tibshirani (1993), ch. 13: resample the items with replacement ``resamples`` times and take the
    (1-confidence)/2 and (1+confidence)/2 quantiles. Reproducible: the same ``seed`` gives the same interval.
    """
    if not values:
        return None
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    data = np.asarray(values, dtype=np.float64)  # (n,)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(resamples, len(data)))  # (resamples, n) indices
    if statistic is None:
        stats = data[picks].mean(axis=1)  # (resamples,)
    else:
        stats = np.array([statistic(data[row]) for row in picks])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation as numpy's default); None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    result = float(np.percentile(np.asarray(values, dtype=np.float64), q))
    return result if math.isfinite(result) else None
