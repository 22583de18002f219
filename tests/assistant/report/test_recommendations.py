"""Recommendations come only from the guideline calculators: same text, same numbers, cited."""

from __future__ import annotations

import re
from typing import Any

import pytest

from assistant.guidelines import calculate
from assistant.report.derive import recommendation_text
from assistant.report.draft import Origin, Section
from assistant.report.service import DraftingService
from assistant.report.store import ReportStore

_NUMBER = re.compile(r"\d+(?:\.\d+)?")

CASES: list[tuple[str, list[str], str, dict[str, Any]]] = [
    (
        "ct_chest",
        ["Cough. 65-year-old, 30 pack-year smoker.", "7 mm solid nodule RUL."],
        "fleischner",
        {"composition": "solid", "size_mm": 7.0, "risk": "high", "age": 65},
    ),
    (
        "ct_chest",
        ["Lung cancer screening, baseline LDCT. 30 pack-year smoker.", "Solid nodule in the LLL measuring 9 x 7 mm."],
        "lungrads",
        {"nodule_type": "solid", "mean_diameter_mm": 8.0, "exam": "baseline"},
    ),
    (
        "us_thyroid",
        ["Right lobe: 1.8 cm solid hypoechoic nodule, wider than tall, smooth margins, no echogenic foci."],
        "tirads",
        {
            "composition": "solid",
            "echogenicity": "hypoechoic",
            "shape": "wider_than_tall",
            "margin": "smooth",
            "max_diameter_cm": 1.8,
        },
    ),  # fmt: skip
    (
        "ct_abdomen_pelvis",
        ["2.5 cm left adrenal nodule measuring 8 HU on unenhanced images."],
        "adrenal",
        {"size_cm": 2.5, "unenhanced_hu": 8.0},
    ),
    (
        "ct_abdomen_pelvis",
        ["Cirrhosis. 25 mm liver observation in segment 7 with arterial phase hyperenhancement and washout."],
        "lirads",
        {"size_mm": 25.0, "aphe": "nonrim", "washout": True, "capsule": False, "threshold_growth": False},
    ),
    ("mammo_screening", ["Scattered fibroglandular density.", "BI-RADS 2: benign."], "birads", {"category": "2"}),
]


@pytest.mark.parametrize(("template", "dictation", "calculator", "params"), CASES)
def test_every_number_in_recommendations_is_the_calculators(
    store: ReportStore, template: str, dictation: list[str], calculator: str, params: dict[str, Any]
) -> None:
    service = DraftingService(store)
    report_id = service.create(template).report.report_id
    for text in dictation:
        reply = service.handle(report_id, text)
    recs = [s for s in reply.report.part(Section.RECOMMENDATIONS).statements if s.origin is Origin.CALCULATOR]
    assert len(recs) == 1, reply.report.questions
    rec = recs[0]
    expected = calculate(calculator, **params)
    assert rec.text == recommendation_text(expected)
    assert rec.calculation is not None and rec.calculation["category"] == expected.category
    calculator_numbers = set(_NUMBER.findall(" ".join(
        str(x) for x in (expected.guideline, expected.version, expected.category, expected.recommendation,
                         expected.malignancy_risk or "", *expected.notes)
    )))  # fmt: skip
    assert set(_NUMBER.findall(rec.text)) <= calculator_numbers
    assert rec.citation is not None and expected.section_id in rec.citation and expected.source in rec.citation
    assert not rec.confirmed  # drafted by the assistant until the radiologist accepts it


def test_a_missing_input_is_asked_back_not_guessed(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("ct_chest").report.report_id
    reply = service.handle(report_id, "7 mm solid nodule RLL.")
    assert not reply.report.part(Section.RECOMMENDATIONS).statements
    assert any("low or high risk" in q for q in reply.questions)
    reply = service.handle(report_id, "Never smoker, no risk factors.")
    assert "Fleischner" in reply.report.part(Section.RECOMMENDATIONS).statements[0].text
    assert not reply.questions


def test_a_guideline_that_does_not_apply_says_why(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("ct_chest").report.report_id
    service.handle(report_id, "History of metastatic colon cancer.")
    reply = service.handle(report_id, "6 mm solid nodule LLL.")
    assert not reply.report.part(Section.RECOMMENDATIONS).statements
    assert any("does not apply" in q and "known primary cancer" in q for q in reply.questions)


def test_a_deleted_calculator_recommendation_stays_deleted(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("ct_chest").report.report_id
    service.handle(report_id, "Never smoker. 7 mm solid nodule RUL.")
    reply = service.handle(report_id, "delete recommendation 1")
    assert not reply.report.part(Section.RECOMMENDATIONS).statements
    reply = service.handle(report_id, "No pleural effusion.")
    assert not reply.report.part(Section.RECOMMENDATIONS).statements
