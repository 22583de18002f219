"""Edits by dialogue: the intent of a message, the statements it points at, and fact-keeping condensation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from assistant.report.dictation import tidy
from assistant.report.draft import Report, ReportError, Section, Statement


@dataclass(frozen=True)
class Intent:
    """What a dialogue message asks for."""

    kind: str  # "dictate", "undo", "delete", "concise", "replace", "accept", "redraft"
    target: str = ""
    value: str = ""


_INTENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("undo", re.compile(r"^\s*undo(?: (?:that|the last change|last change|it))?\s*[.!]?\s*$", re.I)),
    ("redraft", re.compile(r"^\s*(?:re-?draft|regenerate|redo) (?:the )?impression\s*[.!]?\s*$", re.I)),
    (
        "accept",
        re.compile(
            r"^\s*(?:accept|confirm|approve)(?:\s+(?:all|everything|the report|defaults|the defaults))?"
            r"(?:\s+(?P<target>[a-z ]+?))?\s*[.!]?\s*$",
            re.I,
        ),
    ),  # fmt: skip
    (
        "concise",
        re.compile(
            r"^\s*(?:make|rewrite|shorten|condense|tighten)\s+(?:the\s+)?(?P<target>impression|recommendation)s?"
            r"\s*(?:item\s*)?#?\s*(?P<value>\d+)(?:\s+(?:more\s+)?(?:concise|shorter|brief|briefer))?\s*[.!]?\s*$",
            re.I,
        ),
    ),
    (
        "replace",
        re.compile(
            r"^\s*(?:replace|change)\s+[\"']?(?P<target>.+?)[\"']?\s+(?:with|to|by)\s+[\"']?(?P<value>.+?)"
            r"[\"']?\s*[.!]?\s*$",
            re.I,
        ),
    ),  # fmt: skip
    ("delete", re.compile(r"^\s*(?:delete|remove|drop|strike|take out)\s+(?P<target>.+?)\s*[.!]?\s*$", re.I)),
)


def parse_intent(message: str) -> Intent:
    """Edit commands by rules; anything else is dictation."""
    for kind, pattern in _INTENTS:
        m = pattern.match(message)
        if m:
            groups = m.groupdict()
            return Intent(kind, (groups.get("target") or "").strip(), (groups.get("value") or "").strip())
    return Intent("dictate", value=message)


_FILLER = {"the", "sentence", "statement", "line", "about", "that", "says", "mentioning", "mention", "of", "a", "an",
           "one", "bit", "part", "phrase", "finding", "item", "on", "in", "from", "please"}  # fmt: skip


def find_statements(report: Report, target: str) -> list[tuple[Any, Statement]]:
    """Statements a phrase like "the effusion sentence", "impression 2" or "s7" points at."""
    target = target.strip().strip("\"'")
    m = re.fullmatch(r"(?:the\s+)?(impression|recommendation)s?\s*(?:item\s*)?#?\s*(\d+)", target, re.I)
    if m:
        section = Section.IMPRESSION if m.group(1).lower() == "impression" else Section.RECOMMENDATIONS
        items = report.part(section).statements
        n = int(m.group(2))
        return [(report.part(section), items[n - 1])] if 1 <= n <= len(items) else []
    m = re.fullmatch(r"s\d+", target, re.I)
    if m:
        try:
            return [report.find(target.lower())]
        except ReportError:
            return []
    words = [w for w in re.findall(r"[a-z0-9]+", target.lower()) if w not in _FILLER]
    if not words:
        return []
    hits = []
    for part, statement in report.statements():
        low = statement.text.lower()
        if all(re.search(rf"\b{re.escape(w)}", low) for w in words):
            hits.append((part, statement))
    return hits


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SIDES = re.compile(r"\b(?:right|left|bilateral|both|rul|rml|rll|lul|lll|lingula\w*)\b", re.I)
_NEGATIONS = re.compile(r"\b(?:no|not|without|negative|absent)\b", re.I)


def facts_kept(original: str, rewritten: str) -> bool:
    """True when a rewrite keeps every number, side and negation and is shorter."""

    def facts(text: str) -> tuple[list[str], list[str], bool]:
        return (
            sorted(_NUMBER.findall(text)),
            sorted(w.lower() for w in _SIDES.findall(text)),
            bool(_NEGATIONS.search(text)),
        )

    return bool(rewritten.strip()) and len(rewritten) < len(original) and facts(original) == facts(rewritten)


_CONDENSE = (
    (r"\bthere (?:is|are) (?:an? )?", ""),
    (r"\b(?:is|are) (?:again )?(?:seen|noted|identified|present|demonstrated|visualized)\b", ""),
    (r"\b(?:again )?(?:seen|noted|identified|demonstrated)\b", ""),
    (r"\bwhich (?:is|are)\b", ""),
    (r"\bmeasuring\b", ""),
    (r"\bin the\b", "in"),
    (r"\s+,", ","),
    (r"\s{2,}", " "),
)


def condense(text: str) -> str:
    """A deterministic shorter wording: filler phrases removed, facts untouched."""
    out = text
    for pattern, repl in _CONDENSE:
        out = re.sub(pattern, repl, out, flags=re.I)
    out = out.strip(" ,")
    return tidy(out) if out else text
