"""Report-generation metrics: BLEU-4 (sacrebleu), ROUGE-L (rouge-score) and the CheXpert-14 F1, by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError
from assistant.eval import report
from assistant.eval.chexpert import NEGATIVE, POSITIVE, UNCERTAIN


def test_bleu4_is_100_for_identical_text_and_0_without_a_shared_4gram() -> None:
    refs = ["The lungs are clear without effusion.", "Heart size is normal."]
    score, signature = report.bleu4(refs, refs)
    assert score == pytest.approx(100.0)
    assert "nrefs:1" in signature and "tok:13a" in signature
    assert report.bleu4(["cardiomegaly"], ["no acute cardiopulmonary process today"])[0] == pytest.approx(0.0)


def test_rouge_l_is_the_lcs_f_measure() -> None:
    # 6 words each, LCS "the cat on the mat" = 5 -> P = R = 5/6 -> F = 5/6
    (score,) = report.rouge_l(["the cat sat on the mat"], ["the cat lay on the mat"])
    assert score == pytest.approx(5 / 6)


def test_finding_f1_counts_uncertain_as_present() -> None:
    predicted = [{"Edema": POSITIVE}, {"Edema": UNCERTAIN, "Fracture": POSITIVE}, {"Edema": NEGATIVE}]
    reference = [{"Edema": POSITIVE}, {"Edema": NEGATIVE}, {"Edema": POSITIVE}]
    f1 = report.finding_f1(predicted, reference, findings=("Edema", "Fracture", "Pneumothorax"))
    edema = f1["per_finding"]["Edema"]
    assert (edema["tp"], edema["fp"], edema["fn"]) == (1, 1, 1) and edema["f1"] == pytest.approx(0.5)
    assert f1["per_finding"]["Fracture"]["f1"] == 0.0  # one false positive
    assert f1["per_finding"]["Pneumothorax"]["f1"] is None  # in neither: no F1, left out of the macro mean
    assert f1["micro_f1"] == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))
    assert f1["macro_f1"] == pytest.approx(0.25)


def test_summary_scores_generated_reports_and_counts_failures() -> None:
    records = [
        {"id": "1", "reference": "Small left pleural effusion. Heart size is normal.",
         "prediction": "Small left pleural effusion. Heart size is normal.", "latency_s": 1.0},
        {"id": "2", "reference": "Cardiomegaly. No pneumothorax.", "prediction": "The lungs are clear."},
        {"id": "3", "reference": "Normal chest.", "prediction": None, "error": "the model server went away"},
    ]  # fmt: skip
    s = report.summarize(records, seed=0, resamples=100)
    assert (s["n"], s["scored"], s["failures"]) == (3, 2, 1)
    assert 0 < s["bleu4"] < 100 and 0 < s["rougeL"] < 1
    assert s["chexpert_per_finding"]["Pleural Effusion"]["tp"] == 1
    assert s["chexpert_per_finding"]["Cardiomegaly"]["fn"] == 1
    assert "CheXpert-14 micro F1" in report.table(s)


def test_cases_read_references_and_refuse_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    lines = [
        {"id": "a", "findings": "Lungs clear.", "impression": "Normal.", "image": "a.png"},
        {"id": "b", "reference": "Cardiomegaly.", "images": ["b1.png", "b2.png"], "generated": "Big heart."},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    a, b = report.load_cases(path)
    assert (a.reference, a.images, a.generated) == ("Lungs clear. Normal.", ("a.png",), None)
    assert (b.images, b.generated) == (("b1.png", "b2.png"), "Big heart.")
    path.write_text(json.dumps({"id": "c", "image": "c.png"}) + "\n")
    with pytest.raises(ConfigurationError, match="no reference"):
        report.load_cases(path)
