"""Guideline mode over a scripted model and a real hybrid index (hashing embedder: fast, deterministic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import retrieval
from assistant.errors import LLMUnavailableError
from assistant.guidelines import calculate, extract_parameters
from assistant.llm.client import GenerationOptions
from assistant.modes.answer import Turn
from assistant.modes.guideline import (
    GuidelineService,
    check_phrasing,
    extraction_schema,
    is_knowledge_question,
    unused_words,
)
from assistant.modes.sources import GuidelineLibrary
from assistant.store.audit import AuditLog
from tests.support.paths import TEST_DATA
from tests.support.scripted import ScriptedModel

EVAL_SET = TEST_DATA / "guideline_questions.jsonl"
SEVEN_MM_HIGH_RISK = "Single solid 7 mm nodule in a high-risk smoker - follow-up?"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> GuidelineLibrary:
    path = tmp_path_factory.mktemp("index") / "guidelines"
    lib = GuidelineLibrary(retrieval.HashingEmbedder(256), path)
    lib.index()  # built once for the module, on a real FAISS + BM25 index
    return lib


def service(library: GuidelineLibrary, replies: list[str | Exception], **kwargs: Any) -> GuidelineService:
    return GuidelineService(ScriptedModel(replies), GenerationOptions(max_tokens=256), library, **kwargs)


def test_computed_answer_cites_the_calculators_section_and_reports_the_tool_result(library: GuidelineLibrary) -> None:
    svc = service(library, [], phrase=False)
    answer = svc.answer(SEVEN_MM_HIGH_RISK)
    out = answer.to_json()
    assert out["mode"] == "guideline" and out["phrasing"] == "template"
    (tool,) = out["tool_results"]
    assert tool["calculator"] == "fleischner"
    assert tool["inputs"]["risk"] == "high" and tool["inputs"]["mean_diameter_mm"] == 7.0
    assert tool["output"]["category"] == "solid single 6-8 mm high risk"
    first = out["citations"][0]
    assert first["section"] == "fleischner-2017/solid-single"
    assert {"id", "source", "title", "section", "text", "score"} <= set(first)
    assert "MacMahon" in first["source"] and "| 6-8 mm" in first["text"]
    assert "solid single 6-8 mm high risk" in answer.text and "CT at 6-12 months" in answer.text
    assert "[1]" in answer.text
    json.dumps(out)  # JSON-ready as `ask --json` prints it


def test_faithful_phrasing_is_kept(library: GuidelineLibrary) -> None:
    phrased = (
        "Fleischner: for this solid single 7 mm nodule, high risk: CT at 6-12 months, then CT at 18-24 months [1]."
    )
    model = ScriptedModel([phrased])
    svc = GuidelineService(model, GenerationOptions(), library)
    answer = svc.answer(SEVEN_MM_HIGH_RISK)
    assert answer.text == phrased and answer.extra["phrasing"] == "model"
    system = model.calls[0][0].content
    assert isinstance(system, str) and "solid single 6-8 mm high risk" in system  # the model sees the result


@pytest.mark.parametrize(
    "phrased",
    [
        "Solid single 7 mm nodule, high risk: CT at 3 months, then CT at 18-24 months [1].",  # number changed
        "Solid single 7 mm nodule, high risk: CT at 6-12 months [1].",  # follow-up dropped
        "Solid single 7 mm nodule, low risk: CT at 6-12 months, then CT at 18-24 months [1].",  # risk swapped
        "Solid single 7 mm nodule, high risk: no CT at 6-12 months, then CT at 18-24 months [1].",  # negated
        "",
    ],
)
def test_phrasing_that_changes_the_result_falls_back_to_the_template(library: GuidelineLibrary, phrased: str) -> None:
    svc = service(library, [phrased])
    answer = svc.answer(SEVEN_MM_HIGH_RISK)
    assert answer.extra["phrasing"] == "template" and answer.extra["phrasing_problems"]
    assert answer.text.startswith("Fleischner Society 2017 — category solid single 6-8 mm high risk.")
    assert "CT at 6-12 months, then CT at 18-24 months" in answer.text


def test_phrasing_naming_another_category_falls_back(library: GuidelineLibrary) -> None:
    question = "Lung-RADS for a baseline LDCT with a 9.5 mm solid nodule"
    svc = service(library, ["Lung-RADS 3: LDCT in 3 months [1]."])
    answer = svc.answer(question)
    assert answer.extra["phrasing"] == "template"
    assert any("other categories named: 3" in p for p in answer.extra["phrasing_problems"])
    assert answer.extra["tool_results"][0]["output"]["category"] == "4A"


def test_invented_citation_numbers_are_stripped_from_a_kept_phrasing(library: GuidelineLibrary) -> None:
    svc = service(
        library, ["Fleischner: solid single 7 mm high risk nodule: CT at 6-12 months, then CT at 18-24 months [1][4]."]
    )
    answer = svc.answer(SEVEN_MM_HIGH_RISK)
    assert answer.extra["phrasing"] == "model" and "[4]" not in answer.text and "[1]" in answer.text


def test_missing_parameter_is_asked_back_and_nothing_is_computed(library: GuidelineLibrary) -> None:
    # The model claims high risk, quoting words the parser already read ("Solid nodule"): refused.
    model = ScriptedModel(['{"risk": {"value": "high", "evidence": "Solid nodule"}}'])
    svc = GuidelineService(model, GenerationOptions(), library)
    answer = svc.answer("Solid nodule 7 mm, follow-up?")
    assert answer.extra["missing"] == ["risk"]
    assert "low or high risk" in answer.text and answer.citations == ()
    assert answer.extra["tool_results"][0]["output"] == {
        "missing": ["risk"],
        "questions": ["Is the patient low or high risk?"],
    }
    # Asked through structured output: a JSON schema whose values are the calculator's enum plus "unknown".
    (options,) = model.options
    assert options is not None and options.response_format is not None
    schema = options.response_format["json_schema"]["schema"]
    assert schema["properties"]["risk"]["properties"]["value"]["enum"] == ["low", "high", "unknown"]


def test_question_with_every_word_read_does_not_ask_the_model(library: GuidelineLibrary) -> None:
    model = ScriptedModel([])
    svc = GuidelineService(model, GenerationOptions(), library)
    answer = svc.answer("TI-RADS for a solid hypoechoic thyroid nodule with smooth margins, 1.3 cm")
    assert answer.extra["missing"] == ["shape", "echogenic_foci"] and model.calls == []


def test_model_fills_a_parameter_only_from_words_the_parser_did_not_read(library: GuidelineLibrary) -> None:
    question = "Solid nodule 7 mm in a chronic tobacco user"
    assert {"chronic", "tobacco", "user"} <= unused_words(question)
    reply = '{"risk": {"value": "high", "evidence": "chronic tobacco user"}}'
    svc = service(library, [reply], phrase=False)
    answer = svc.answer(question)
    (tool,) = answer.extra["tool_results"]
    assert tool["output"]["category"] == "solid single 6-8 mm high risk"
    assert tool["inferred_by_model"] == {"risk": {"value": "high", "evidence": "chronic tobacco user"}}
    assert "please confirm" in answer.text


def test_model_output_that_is_not_json_is_ignored(library: GuidelineLibrary) -> None:
    svc = service(library, ['{"risk": {"value": "hi'])  # cut off at max_tokens
    answer = svc.answer("Solid nodule 7 mm in a chronic tobacco user")
    assert answer.extra["missing"] == ["risk"]


def test_answer_to_an_ask_back_is_read_with_the_question(library: GuidelineLibrary) -> None:
    svc = service(library, [], phrase=False, resolve=False)
    first = svc.answer("Solid nodule 7 mm, follow-up?")
    answer = svc.answer("high risk", history=[Turn("Solid nodule 7 mm, follow-up?", first.text)])
    assert answer.extra["tool_results"][0]["output"]["category"] == "solid single 6-8 mm high risk"


def test_required_argument_absent_is_asked_back_not_a_type_error(library: GuidelineLibrary) -> None:
    svc = service(library, [], phrase=False, resolve=False)
    answer = svc.answer("LI-RADS observation with washout and capsule")
    assert answer.extra["missing"] == ["size_mm", "aphe"]
    assert "APHE" in answer.text


def test_out_of_scope_patient_is_refused_with_the_reason_and_the_scope_section(library: GuidelineLibrary) -> None:
    svc = service(library, [], phrase=False)
    answer = svc.answer("Solid nodule 7 mm on a lung cancer screening CT - Fleischner?")
    assert "does not apply" in answer.text and "screening" in answer.text and "Lung-RADS" in answer.text
    assert answer.citations[0]["section"] == "fleischner-2017/scope"
    assert answer.extra["tool_results"][0]["output"]["not_applicable"] is True


def test_knowledge_question_is_answered_extractively_from_the_cited_section(library: GuidelineLibrary) -> None:
    # A small model once paraphrased a meaning the knowledge base did not say: guideline questions quote it.
    model = ScriptedModel([])
    svc = GuidelineService(model, GenerationOptions(), library)
    answer = svc.answer("What counts as threshold growth in LI-RADS?")
    assert answer.extra["tool_results"] == [] and answer.extra["extractive"] is True and model.calls == []
    assert all(c["section"].startswith("li-rads-2018/") for c in answer.citations)
    first = answer.citations[0]
    assert " ".join(first["text"].split()) in answer.text and "[1]" in answer.text


@pytest.mark.parametrize(
    ("question", "section"),
    [
        ("What does BI-RADS 5 mean?", "bi-rads-5/category-5"),
        ("What does Bosniak IIF mean?", "bosniak-2019/class-iif"),
        ("Bosniak IIF follow-up?", "bosniak-2019/class-iif"),
        ("Lung-RADS 4A management?", "lung-rads-2022/category-4a"),
        ("TR3 FNA cut-off?", "ti-rads-2017/tr3"),
        ("what is LR-5?", "li-rads-2018/lr-5"),
    ],
)
def test_question_about_a_category_is_answered_from_that_category_section(
    library: GuidelineLibrary, question: str, section: str
) -> None:
    model = ScriptedModel([])
    svc = GuidelineService(model, GenerationOptions(), library)
    answer = svc.answer(question)
    assert answer.citations[0]["section"] == section, answer.text
    assert answer.extra["tool_results"] == [] and "missing" not in answer.extra and model.calls == []


def test_question_without_any_source_gets_no_source_and_no_model_call(library: GuidelineLibrary) -> None:
    model = ScriptedModel([])
    svc = GuidelineService(model, GenerationOptions(), library)
    answer = svc.answer("What is the capital of France?")
    assert answer.citations == () and "no source" in answer.text and model.calls == []


def test_model_unavailable_still_gives_the_computed_answer(library: GuidelineLibrary) -> None:
    svc = service(library, [LLMUnavailableError("cannot connect to the LLM server at x")])
    answer = svc.answer(SEVEN_MM_HIGH_RISK)
    assert answer.extra["phrasing"] == "template" and answer.extra["phrasing_problems"] == ["model unavailable"]


def test_audit_row_keeps_mode_template_and_chunks_but_no_text(library: GuidelineLibrary, tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.sqlite3")
    svc = GuidelineService(ScriptedModel([]), GenerationOptions(), library, audit, phrase=False)
    answer = svc.answer(SEVEN_MM_HIGH_RISK)
    (row,) = audit.recent()
    assert row.mode == "guideline" and row.template == "guideline_answer@1" and row.outcome == "ok"
    assert row.chunk_ids == tuple(c["id"] for c in answer.citations)
    raw = (tmp_path / "audit.sqlite3").read_bytes()
    assert b"smoker" not in raw and b"6-12 months" not in raw
    audit.close()


@pytest.mark.parametrize(
    ("question", "text", "problem"),
    [
        ("Baseline LDCT, solid nodule 6.5 mm", "Lung-RADS 3: LDCT in 6 months; nodule 6.5 mm [1].", None),
        ("Baseline LDCT, solid nodule 6.5 mm", "Lung-RADS 4A: LDCT in 6 months [1].", "other categories"),
        ("Baseline LDCT, solid nodule 6.5 mm", "LDCT in 6 months [1].", "not named"),
        ("Baseline LDCT, solid nodule 6.5 mm", "Lung-RADS 3: LDCT in 6 or 12 months.", "numbers not in the result"),
        ("TI-RADS 1.1 cm solid hypoechoic taller-than-wide irregular", "TI-RADS TR5: FNA recommended [1].", None),
        ("TI-RADS 1.1 cm solid hypoechoic taller-than-wide irregular", "TR4: FNA recommended.", "other categories"),
        ("Bosniak: CT cystic renal mass with 2 thin septa, wall 1 mm", "Bosniak IIF, follow-up.", "other categor"),
        ("Renal mass enhances by 25 HU on CT", "ACR: 25 HU, so this is enhancing.", None),
        (
            "Fleischner: solid 7 mm nodule, smoker",
            "Fleischner: solid single 7 mm, high risk: CT at 6 or 12 months, then CT at 18-24 months.",
            "ranges",
        ),
        (
            "Fleischner: solid 7 mm nodule, smoker",
            "Fleischner: solid single 7 mm, high risk: CT at 18-24 months, then CT at 6-12 months.",
            "order",
        ),
        ("Fleischner: solid 7 mm nodule, smoker", "CT at 6-12 months, then CT at 18-24 months.", "guideline not named"),
        ("Renal mass enhances by 25 HU on CT", "25 HU: equivocal.", "category words missing"),
    ],
)
def test_check_phrasing_catches_changed_numbers_and_categories(question: str, text: str, problem: str | None) -> None:
    extraction = extract_parameters(question)
    assert extraction.calculator is not None
    result = calculate(extraction.calculator, **extraction.params)
    facts = f"{result.category}. {result.recommendation} {dict(result.inputs)}"
    problems = check_phrasing(text, result, facts)
    if problem is None:
        assert not [p for p in problems if "missing" not in p or "category" in p], problems
    else:
        assert any(problem in p for p in problems), problems


def test_extraction_schema_offers_enums_and_unknown_never_numbers() -> None:
    schema = extraction_schema("fleischner", ["risk", "composition"])
    assert schema["required"] == ["risk", "composition"] and schema["additionalProperties"] is False
    assert schema["properties"]["composition"]["properties"]["value"]["enum"] == [
        "solid",
        "ground_glass",
        "part_solid",
        "unknown",
    ]


@pytest.mark.parametrize(
    ("question", "knowledge"),
    [
        ("What counts as threshold growth in LI-RADS?", True),
        ("Explain Bosniak IIF", True),
        ("What is the capital of France?", True),
        ("What does BI-RADS 3 mean?", False),  # a category: answered from its section (is_category_question)
        ("What is the Lung-RADS category for a new solid nodule?", False),  # a case: ask back for the size
        (SEVEN_MM_HIGH_RISK, False),
    ],
)
def test_knowledge_questions_are_told_from_cases(question: str, knowledge: bool) -> None:
    assert is_knowledge_question(question, extract_parameters(question)) is knowledge


def _cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_evaluation_set_calculator_outputs_exact_and_right_guideline_cited(library: GuidelineLibrary) -> None:
    """All 111 questions: exact category (or ask-back / refusal) and the computed section cited first."""
    svc = service(library, ["{}"] * 10, phrase=False)
    wrong: list[str] = []
    for case in _cases():
        out = svc.answer(case["question"]).to_json()
        tool = out["tool_results"][0] if out["tool_results"] else {}
        output = tool.get("output") or {}
        if case["expect"] == "result":
            ok = (
                tool.get("calculator") == case["calculator"]
                and output.get("category") == case["expected_category"]
                and out["citations"][0]["section"] == output.get("section_id")
                and output.get("category") in out["answer"]
            )
        elif case["expect"] == "missing":
            ok = out.get("missing") == case["missing"] and not out["citations"]
        elif case["expect"] == "refuse":
            ok = bool(output.get("error")) and not out["citations"]
        elif case["expect"] == "concept":
            ok = not out["tool_results"] and out["citations"][0]["section"].endswith(case["topic_section"])
        else:
            ok = output.get("not_applicable") is True and out["citations"][0]["section"] == "fleischner-2017/scope"
        if not ok:
            wrong.append(case["id"])
    assert wrong == []


@pytest.mark.parametrize(
    ("question", "now", "then"),
    [
        ("baseline LDCT, 7.2 mm solid nodule RLL. category now, and if it's unchanged on the 6-month scan?", "3", "2"),
        ("first screen: 11 x 9 mm solid nodule. Lung-RADS, and what does it become if stable at 3 months?", "4A", "3"),
        ("baseline LDCT: segmental endobronchial nodule. cat now, and if it persists at 3 months?", "4A", "4B"),
    ],
)
def test_two_part_question_is_answered_in_both_parts(
    library: GuidelineLibrary, question: str, now: str, then: str
) -> None:
    svc = service(library, [], phrase=False)
    out = svc.answer(question).to_json()
    first, second = out["tool_results"]
    assert first["output"]["category"] == now and second["output"]["category"] == then
    assert second["scenario"].startswith("if ") and f"Lung-RADS {then}." in out["answer"]


def test_two_part_question_that_cannot_be_computed_says_so(library: GuidelineLibrary) -> None:
    svc = service(library, [], phrase=False)
    out = svc.answer("cystic renal mass with 3 thin septa: Bosniak, and what if the next CT shows 6 septa?").to_json()
    assert len(out["tool_results"]) == 1 and "not computed here" in out["answer"]


@pytest.mark.parametrize(
    ("question", "refusal"),
    [
        ("Fleischner: incidental 90 cm solid nodule, high risk", "size_mm=900.0 is not a plausible measurement"),
        ("Fleischner: incidental 7 mm solid nodule in a 250 year old", "age=250 must be an age in years"),
        ("Bosniak: cystic renal mass on unenhanced CT, -5000 HU", "not a plausible CT number"),
    ],
)
def test_implausible_numbers_extracted_from_a_question_are_refused_with_the_reason(
    library: GuidelineLibrary, question: str, refusal: str
) -> None:
    answer = service(library, [], phrase=False).answer(question)
    assert "cannot apply the guideline to these inputs" in answer.text and refusal in answer.text
