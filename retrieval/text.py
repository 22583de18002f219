"""Tokenising for BM25 and the hashing embedder."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")
# A short English stop list: BM25's idf already discounts common words; these only waste postings.
STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were with "
    "what which when how should does do i my me we our".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens; compounds such as ``lr-5`` or ``2.5`` are kept whole and also split."""
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in STOPWORDS:
            continue
        out.append(tok)
        if "-" in tok or "." in tok:
            parts = [p for p in re.split(r"[-.]", tok) if p and p not in STOPWORDS]
            if len(parts) > 1:
                out.extend(parts)
                if "-" in tok:
                    out.append("".join(parts))  # "ti-rads" also matches "tirads"
    return out
