"""A rule-based, negation-aware labeller of the 14 CheXpert findings in chest X-ray report text.

The 14 findings are CheXpert's (Irvin et al., AAAI 2019, table 1). Each finding is labelled ``positive``,
``negative``, ``uncertain`` or left out (not mentioned), as the CheXpert labeller does: mentions are found by
phrase rules (``MENTIONS``, our own lists of report wording), negation by NegEx (Chapman et al. 2001) through
negspaCy's ``negex`` component with its ``en_clinical`` term set plus a few radiology phrases, and uncertainty by
our own cue list (``UNCERTAIN_BEFORE`` / ``UNCERTAIN_AFTER``). Some anatomy is only a finding with a status word:
"heart size is normal" is a negative cardiomegaly, "heart size borderline enlarged" an uncertain one, "the lungs
are clear" a negative lung opacity (``ANCHORS``). Within a report a finding is positive if any sentence says so,
else uncertain, else negative (CheXpert's rule); "No Finding" is positive when none of the 12 pathologies (all but
Support Devices and No Finding itself) is positive or uncertain.

Built on a blank spaCy English pipeline (tokeniser, sentenciser, entity ruler): no model weights. medspaCy's
ConText was the first choice but pins spaCy < 3.8, whose thinc does not work with numpy 2 (docs/evaluation.md).
Validated on 100 hand-labelled IU X-ray sentences (tests/data/chexpert_iu_sentences.jsonl, docs/evaluation.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

POSITIVE, NEGATIVE, UNCERTAIN = "positive", "negative", "uncertain"
NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
# CheXpert's 14 observations (Irvin et al. 2019, table 1), in its order.
FINDINGS: tuple[str, ...] = (
    NO_FINDING, "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    SUPPORT_DEVICES,
)  # fmt: skip
OBSERVATIONS = FINDINGS[1:]  # what a sentence can mention; No Finding is derived per report

# fmt: off
# Wording that names a finding (lower case, matched as whole tokens). Our own lists from common report language.
MENTIONS: Mapping[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        "mediastinal widening", "widened mediastinum", "widening of the mediastinum", "mediastinal enlargement",
        "enlarged mediastinum", "enlarged cardiomediastinal silhouette", "cardiomediastinal enlargement",
    ),
    "Cardiomegaly": (
        "cardiomegaly", "cardiac enlargement", "enlarged heart", "enlargement of the heart", "enlarged cardiac",
        "enlargement of the cardiac silhouette", "cardiac silhouette enlargement",
    ),
    "Lung Opacity": (
        "opacity", "opacities", "opacification", "opacifications", "airspace disease", "air space disease",
        "airspace", "air space", "infiltrate", "infiltrates", "infiltration", "interstitial", "interstitium",
        "scarring", "scar", "scars", "fibrosis", "fibrotic", "density", "densities", "haziness", "hazy",
    ),
    "Lung Lesion": (
        "nodule", "nodules", "mass", "masses", "lesion", "lesions", "granuloma", "granulomas", "granulomata",
        "metastatic disease", "metastasis", "metastases", "neoplasm", "tumor", "tumour", "cavitation",
    ),
    "Edema": (
        "edema", "oedema", "vascular congestion", "pulmonary congestion", "volume overload", "fluid overload",
        "congestive heart failure", "chf", "heart failure", "interstitial edema", "pulmonary edema",
    ),
    "Consolidation": (
        "consolidation", "consolidations", "consolidative", "consolidated", "airspace consolidation",
        "air space consolidation",
    ),
    "Pneumonia": ("pneumonia", "pneumonias", "pneumonitis", "infection", "infectious process"),
    "Atelectasis": ("atelectasis", "atelectases", "atelectatic", "collapse", "collapsed", "volume loss"),
    "Pneumothorax": ("pneumothorax", "pneumothoraces", "pneumothoraxes"),
    "Pleural Effusion": (
        "pleural effusion", "pleural effusions", "effusion", "effusions", "pleural fluid", "hydrothorax",
        "hydropneumothorax",
    ),
    "Pleural Other": (
        "pleural thickening", "pleural plaque", "pleural plaques", "pleural scarring", "pleural calcification",
        "pleural calcifications", "fibrothorax", "pleural fibrosis", "thickening of the fissure", "fissural thickening",
    ),
    "Fracture": ("fracture", "fractures", "fractured", "broken"),
    "Support Devices": (
        "catheter", "catheters", "line", "lines", "picc", "tube", "tubes", "pacemaker", "pacer", "stent", "stents",
        "device", "devices", "wires", "wire", "leads", "lead", "port", "clips", "clip", "hardware", "stimulator",
        "neurostimulator", "drain", "drains", "prosthesis", "defibrillator", "icd", "valve replacement",
        "sternotomy wires", "coil",
    ),
}
# Wording that hedges by itself: a costophrenic angle that is blunted may be a small effusion or thickening.
ALWAYS_UNCERTAIN: Mapping[str, tuple[str, ...]] = {
    "Pleural Effusion": ("blunting", "blunted"),
    "Edema": ("vascular prominence", "vascular engorgement", "vascular crowding"),
}
# Anatomy whose status word decides the finding: "heart size is normal" (negative), "... enlarged" (positive).
ANCHORS: Mapping[str, tuple[str, ...]] = {
    "Cardiomegaly": (
        "heart size", "heart", "cardiac silhouette", "cardiac size", "cardiac contours", "cardiac contour",
        "cardiac shadow",
    ),
    "Enlarged Cardiomediastinum": (
        "cardiomediastinal silhouette", "cardiomediastinal contours", "cardiomediastinal contour",
        "cardiomediastinal", "mediastinum", "mediastinal contours", "mediastinal contour", "mediastinal silhouette",
        "mediastinal",
    ),
    "Lung Opacity": ("lungs", "lung"),
}
NORMAL_WORDS = frozenset({"normal", "unremarkable", "clear", "stable"})
ENLARGED_WORDS = frozenset({"enlarged", "enlargement", "large", "widened", "widening", "prominent", "increased"})
# The status words an anchor may take (lungs are "clear"; a heart is "normal" or "enlarged").
ANCHOR_STATUS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    "Cardiomegaly": (NORMAL_WORDS - {"clear", "stable"}, ENLARGED_WORDS),
    "Enlarged Cardiomediastinum": (NORMAL_WORDS - {"clear", "stable"}, ENLARGED_WORDS),
    "Lung Opacity": (frozenset({"clear"}), frozenset()),
}
# Hedges before a finding in the same clause, and after it.
UNCERTAIN_BEFORE = (
    "may", "might", "could", "possible", "possibly", "probable", "probably", "questionable", "question of",
    "suspicious for", "concerning for", "suggest", "suggests", "suggestive of", "likely", "versus", "vs",
    "borderline", "cannot exclude", "can not exclude", "cannot be excluded", "not excluded", "differential",
    "consider", "suspected", "presumed", "equivocal", "vague", "may represent", "atelectasis versus",
)
UNCERTAIN_AFTER = (
    "cannot be excluded", "can not be excluded", "not excluded", "is questioned", "versus", "vs", "is suspected",
    "is possible", "are possible", "not entirely excluded", "could be", "may be",
)
# Two findings offered as alternatives ("scarring or atelectasis"): each is uncertain, unless negated ("no A or B").
ALTERNATIVES = frozenset({"or", "and/or"})
# Clause breaks for the hedges (NegEx's termination terms do the same for negation).
CLAUSE_BREAKS = frozenset({"but", "however", "although", "though", "which", "while", ";", ".", "with", "and"})
# Radiology wording NegEx's clinical term set lacks; "versus" is a hedge here, not a negation.
EXTRA_NEGATIONS = {
    "preceding_negations": [
        "clear of", "without evidence of", "removal of", "resolution of", "resolved", "no new", "no definite",
        "without definite", "no convincing", "no acute", "no visible", "no focal",
    ],
    "following_negations": [
        "removed", "has been removed", "have been removed", "has resolved", "have resolved", "resolved",
        "is not seen", "are not seen", "not identified", "not visualized", "not present", "absent", "is clear",
    ],
}
# fmt: on


@dataclass(frozen=True)
class Mention:
    """One finding found in a sentence: which, its label, and the words."""

    finding: str
    label: str
    text: str


class ChexpertLabeller:
    """``label_report(text)`` -> {finding: label}; built once (a blank spaCy pipeline, no weights), thread-safe."""

    def __init__(self) -> None:
        self._nlp: Any = None
        self._lock = threading.Lock()

    def _pipeline(self) -> Any:
        with self._lock:
            if self._nlp is None:
                self._nlp = _build_pipeline()
            return self._nlp

    def mentions(self, text: str) -> list[Mention]:
        """Every finding mention in ``text`` with its label, in reading order."""
        nlp = self._pipeline()
        doc = nlp(text.replace("XXXX", "xxxx"))  # IU X-ray's de-identification marks, read as an unknown word
        out: list[Mention] = []
        for sent in doc.sents:
            for ent in sent.ents:
                finding, kind = ent.label_.split("|")
                label = _status(sent, ent, finding, kind)
                if label is not None:
                    out.append(Mention(finding, label, ent.text))
        return out

    def label_sentence(self, text: str) -> dict[str, str]:
        """{finding: label} over the mentions of ``text`` (positive > uncertain > negative); no No Finding."""
        return combine(m for m in self.mentions(text))

    def label_report(self, text: str) -> dict[str, str]:
        """{finding: label} for a whole report, with No Finding derived (CheXpert's rule)."""
        labels = self.label_sentence(text)
        pathologies = [f for f in OBSERVATIONS if f != SUPPORT_DEVICES]
        if not any(labels.get(f) in (POSITIVE, UNCERTAIN) for f in pathologies):
            labels[NO_FINDING] = POSITIVE
        return labels


def combine(mentions: Iterable[Mention]) -> dict[str, str]:
    """One label per finding: positive if any mention is, else uncertain if any is, else negative."""
    rank = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}
    out: dict[str, str] = {}
    for mention in mentions:
        if rank[mention.label] > rank.get(out.get(mention.finding, ""), 0):
            out[mention.finding] = mention.label
    return out


def _build_pipeline() -> Any:
    import spacy  # imported on first use: nothing heavy at import time
    from negspacy.negation import Negex  # noqa: F401 - registers the "negex" factory
    from negspacy.termsets import termset

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    patterns: list[dict[str, str]] = []
    for kind, table in (("mention", MENTIONS), ("hedged", ALWAYS_UNCERTAIN), ("anchor", ANCHORS)):
        for finding, phrases in table.items():
            patterns += [{"label": f"{finding}|{kind}", "pattern": phrase} for phrase in phrases]
    ruler.add_patterns(patterns)  # type: ignore[attr-defined]
    terms = termset("en_clinical")
    terms.remove_patterns({"preceding_negations": ["versus"]})
    terms.add_patterns(EXTRA_NEGATIONS)
    nlp.add_pipe("negex", config={"neg_termset": terms.get_patterns(), "extension_name": "radassist_negated"})
    return nlp


def _words(span: Any) -> list[str]:
    return [token.lower_ for token in span]


def _has_phrase(words: Sequence[str], phrases: Iterable[str]) -> bool:
    text = f" {' '.join(words)} "
    return any(f" {phrase} " in text for phrase in phrases)


def _clause_before(sent: Any, ent: Any) -> list[str]:
    words: list[str] = []
    for token in reversed(sent.doc[sent.start : ent.start]):
        if token.lower_ in CLAUSE_BREAKS:
            break
        words.insert(0, token.lower_)
    return words


def _clause_after(sent: Any, ent: Any, passing: frozenset[str] = frozenset({"and", "with"})) -> list[str]:
    words: list[str] = []
    for token in sent.doc[ent.end : sent.end]:
        if token.lower_ in CLAUSE_BREAKS - passing:
            break
        words.append(token.lower_)
    return words


def _status(sent: Any, ent: Any, finding: str, kind: str) -> str | None:
    """The label of one entity, or None (an anchor without a status word)."""
    before, after = _clause_before(sent, ent), _clause_after(sent, ent)
    hedged = _has_phrase(before, UNCERTAIN_BEFORE) or _has_phrase(after, UNCERTAIN_AFTER)
    if kind == "anchor":
        normal, enlarged = ANCHOR_STATUS[finding]
        # "normal heart size", "heart size is within normal limits", "lungs are hyperlucent but clear"
        near = before[-3:] + _clause_after(sent, ent, frozenset({"and", "with", "but"}))
        for number, word in enumerate(near):  # the first status word decides; "not enlarged" is normal
            negated = number > 0 and near[number - 1] in ("not", "no")
            if word == "borderline":
                return UNCERTAIN
            if word in enlarged:
                if negated:
                    return NEGATIVE
                return UNCERTAIN if _has_phrase(near, (*UNCERTAIN_BEFORE, *UNCERTAIN_AFTER)) else POSITIVE
            if word in normal:
                return None if negated else NEGATIVE
        return None
    if hedged:
        return UNCERTAIN
    if ent._.radassist_negated:
        return NEGATIVE
    if ALTERNATIVES & {*before[-3:], *after[:3]}:
        return UNCERTAIN
    return UNCERTAIN if kind == "hedged" else POSITIVE


def agreement(
    gold: Sequence[Mapping[str, str]], predicted: Sequence[Mapping[str, str]], findings: Sequence[str] = OBSERVATIONS
) -> dict[str, Any]:
    """How often two labellings agree, cell by cell (sentence × finding, "absent" included).

    ``overall``: share of all cells that agree; ``mentioned``: share agreeing among the cells either side
    labelled; ``sentences``: share of sentences agreeing on every finding; ``per_finding``: for each finding,
    ``agreement`` over all sentences, ``mentioned`` (cells either side labelled) and ``agree`` among them.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} items and predicted {len(predicted)}")
    per: dict[str, dict[str, Any]] = {}
    cells = agree = mentioned = mentioned_agree = 0
    for finding in findings:
        pairs = list(zip(gold, predicted, strict=True))
        same = [g.get(finding) == p.get(finding) for g, p in pairs]
        either = [g.get(finding) is not None or p.get(finding) is not None for g, p in pairs]
        m = sum(either)
        ma = sum(s for s, e in zip(same, either, strict=True) if e)
        per[finding] = {
            "agreement": sum(same) / len(same) if same else None,
            "mentioned": m,
            "agree": ma,
        }
        cells += len(same)
        agree += sum(same)
        mentioned += m
        mentioned_agree += ma
    whole = [all(g.get(f) == p.get(f) for f in findings) for g, p in zip(gold, predicted, strict=True)]
    return {
        "sentences": sum(whole) / len(whole) if whole else None,
        "overall": agree / cells if cells else None,
        "mentioned": mentioned_agree / mentioned if mentioned else None,
        "mentioned_cells": mentioned,
        "per_finding": per,
    }
