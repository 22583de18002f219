"""The CheXpert-14 labeller: negation and uncertainty on small cases, and its agreement with 200 hand-labelled
IU X-ray sentences (tests/data/chexpert_iu_sentences.jsonl; the sample is re-drawn here from its seed)."""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import pytest

from assistant.eval.chexpert import (
    FINDINGS,
    NEGATIVE,
    NO_FINDING,
    OBSERVATIONS,
    POSITIVE,
    UNCERTAIN,
    ChexpertLabeller,
    agreement,
)

LABELS = Path(__file__).resolve().parents[2] / "data" / "chexpert_iu_sentences.jsonl"


@pytest.fixture(scope="module")
def labeller() -> ChexpertLabeller:
    return ChexpertLabeller()


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("There is a small left pleural effusion.", {"Pleural Effusion": POSITIVE}),
        ("No pleural effusion or pneumothorax.", {"Pleural Effusion": NEGATIVE, "Pneumothorax": NEGATIVE}),
        ("Possible right lower lobe pneumonia.", {"Pneumonia": UNCERTAIN}),
        ("Pneumonia cannot be excluded.", {"Pneumonia": UNCERTAIN}),
        ("Heart size is normal and the lungs are clear.", {"Cardiomegaly": NEGATIVE, "Lung Opacity": NEGATIVE}),
        ("The heart is enlarged.", {"Cardiomegaly": POSITIVE}),
        ("Heart size is not enlarged.", {"Cardiomegaly": NEGATIVE}),
        ("Borderline heart size.", {"Cardiomegaly": UNCERTAIN}),
        ("Right internal jugular central line has been removed.", {"Support Devices": NEGATIVE}),
        ("Healed left rib fractures.", {"Fracture": POSITIVE}),
        ("Mild scarring or atelectasis at the left base.", {"Lung Opacity": UNCERTAIN, "Atelectasis": UNCERTAIN}),
        ("Normal chest x-XXXX.", {}),
    ],
)
def test_labels_sentences(labeller: ChexpertLabeller, sentence: str, expected: dict[str, str]) -> None:
    assert labeller.label_sentence(sentence) == expected


def test_a_report_takes_positive_over_uncertain_over_negative_and_derives_no_finding(
    labeller: ChexpertLabeller,
) -> None:
    report = "No pleural effusion. Possible small effusion on the right. There is a left effusion."
    assert labeller.label_report(report)["Pleural Effusion"] == POSITIVE
    normal = labeller.label_report("The heart is normal in size. The lungs are clear. No pneumothorax.")
    assert normal[NO_FINDING] == POSITIVE
    # a device is not a pathology: No Finding still holds
    assert labeller.label_report("Pacemaker in place. Lungs are clear.")[NO_FINDING] == POSITIVE
    assert NO_FINDING not in labeller.label_report("Cardiomegaly.")
    assert len(FINDINGS) == 14 and FINDINGS[0] == NO_FINDING


def iu_sentences(reports_csv: Path) -> list[tuple[str, str, str]]:
    """Distinct sentences of the findings and impressions (2+ words), in (uid, section, text) order."""
    seen: dict[str, tuple[str, str, str]] = {}
    with reports_csv.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for section in ("findings", "impression"):
                for sentence in re.split(r"(?<=[.!?])\s+", (row[section] or "").strip()):
                    sentence = sentence.strip()
                    if len(sentence.split()) >= 2 and sentence.lower() not in seen:
                        seen[sentence.lower()] = (row["uid"], section, sentence)
    return sorted(seen.values(), key=lambda t: (int(t[0]), t[1], t[2]))


def hand_labels(seed: int) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["seed"] == seed]


@pytest.mark.parametrize("seed", [19, 20])
def test_the_hand_labelled_sample_is_the_seeded_draw_of_real_iu_sentences(shared_dir: Path, seed: int) -> None:
    drawn = random.Random(seed).sample(iu_sentences(shared_dir / "data" / "iu_xray" / "indiana_reports.csv"), 100)
    rows = hand_labels(seed)
    assert [(r["uid"], r["section"], r["sentence"]) for r in rows] == drawn
    assert all(set(r["labels"]) <= set(OBSERVATIONS) for r in rows)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seed", "sentences", "mentioned"),
    [
        # The numbers of docs/evaluation.md after the labeller was tuned (seed 19 was read while writing the rules;
        # on seed 20 the first, untuned run agreed on 87/100 sentences, 78/91 labelled cells). Regression floors.
        (19, 0.98, 0.97),
        (20, 0.95, 0.94),
    ],
)
def test_agreement_with_the_hand_labels(
    labeller: ChexpertLabeller, seed: int, sentences: float, mentioned: float
) -> None:
    rows = hand_labels(seed)
    result = agreement([r["labels"] for r in rows], [labeller.label_sentence(str(r["sentence"])) for r in rows])  # type: ignore[misc]
    assert result["sentences"] >= sentences
    assert result["mentioned"] >= mentioned


def test_agreement_counts_cells_and_mentions() -> None:
    gold = [{"Edema": POSITIVE}, {}, {"Fracture": NEGATIVE}]
    pred = [{"Edema": POSITIVE}, {"Edema": UNCERTAIN}, {}]
    result = agreement(gold, pred, findings=("Edema", "Fracture"))
    assert result["overall"] == pytest.approx(4 / 6)  # 6 cells, 2 disagree
    assert result["mentioned"] == pytest.approx(1 / 3)  # 3 cells labelled by either side, 1 agrees
    assert result["sentences"] == pytest.approx(1 / 3)
    assert result["per_finding"]["Edema"] == {"agreement": pytest.approx(2 / 3), "mentioned": 2, "agree": 1}
