"""Dictation placement: rules where reliable, the model (JSON schema over the transport) for the rest."""

from __future__ import annotations

import json

import httpx
import pytest

from assistant.errors import LLMUnavailableError
from assistant.llm.client import OpenAIChatClient
from assistant.report.dictation import PlacementError, Placer, placement_schema, split_dictation
from assistant.report.draft import Origin, Section, load_report_template, render_text
from assistant.report.edits import parse_intent
from assistant.report.service import DraftingService
from assistant.report.store import MessageStatus, ReportStore
from tests.support.paths import TEST_DATA
from tests.support.scripted import ScriptedModel

DATA = TEST_DATA / "dictation_placement.jsonl"


def _cases() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_placement_set_has_at_least_40_snippets_over_all_templates() -> None:
    cases = _cases()
    assert len(cases) >= 40
    assert {c["template"] for c in cases} == {
        "cxr", "ct_chest", "ct_abdomen_pelvis", "mri_brain", "us_thyroid", "mammo_screening"
    }  # fmt: skip
    for case in cases:
        template = load_report_template(str(case["template"]))
        expected = case["expected"]
        assert isinstance(expected, list) and set(expected) <= set(template.slots), case


def test_rules_place_the_snippets_they_are_sure_of_correctly() -> None:
    placed = wrong = 0
    for case in _cases():
        clauses = split_dictation(load_report_template(str(case["template"])), str(case["text"]))
        expected = list(case["expected"])  # type: ignore[call-overload]
        assert len(clauses) == len(expected), (case["text"], [c.text for c in clauses])
        for clause, slot in zip(clauses, expected, strict=True):
            if clause.slot is not None:
                placed += 1
                wrong += clause.slot != slot
    assert wrong == 0
    assert placed >= 40


def test_unsure_sentences_go_to_the_model_and_its_answer_places_them(store: ReportStore) -> None:
    model = ScriptedModel(['{"section": "findings.lungs_airways"}'])
    service = DraftingService(store, model)
    report_id = service.create("ct_chest").report.report_id
    reply = service.handle(report_id, "The patient is status post right upper lobectomy. No effusion.")
    assert reply.ok and reply.changed
    lungs = reply.report.part("findings.lungs_airways").statements
    assert [s.text for s in lungs] == ["The patient is status post right upper lobectomy."]
    assert lungs[0].origin is Origin.DICTATED and not lungs[0].confirmed  # the model's placement is a guess
    assert "placed by the language model" in reply.text
    assert len(model.calls) == 1  # "No effusion." was placed by the rules
    assert "lobectomy" in model.calls[0][-1].content


def test_the_request_carries_a_json_schema_of_the_template_slots() -> None:
    sent: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        chunk = {"choices": [{"delta": {"content": '{"section": "findings.pleura"}'}}]}
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    client = OpenAIChatClient("http://engine.test", model="m", transport=httpx.MockTransport(handler))
    template = load_report_template("cxr")
    assert Placer(client).place(template, "Blunting of the costophrenic angle") == "findings.pleura"
    fmt = sent[0]["response_format"]
    assert isinstance(fmt, dict) and fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert schema == placement_schema(template)
    assert schema["properties"]["section"]["enum"] == list(template.slots)


def test_an_answer_outside_the_template_is_refused_and_nothing_changes(store: ReportStore) -> None:
    service = DraftingService(store, ScriptedModel(['{"section": "findings.spleen"}']))
    report_id = service.create("cxr").report.report_id
    before = store.current(report_id)
    reply = service.handle(report_id, "Something odd.")
    assert not reply.ok and "not in the template" in reply.text
    assert store.current(report_id).number == before.number
    assert [m.status for m in store.messages(report_id) if m.role == "user"] == [MessageStatus.FAILED]
    with pytest.raises(PlacementError):
        Placer(ScriptedModel(["not json"])).place(load_report_template("cxr"), "x")


def test_without_a_model_unsure_sentences_are_reported_and_kept_for_retry(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("cxr").report.report_id
    reply = service.handle(report_id, "Tortuous thing. Small left pleural effusion.")
    assert reply.unplaced == ("Tortuous thing",)
    assert "could not be placed without the language model" in reply.text
    assert [s.text for s in reply.report.part("findings.pleura").statements] == ["Small left pleural effusion."]
    assert [m.text for m in store.failed_messages(report_id)] == ["Tortuous thing"]
    retried = DraftingService(store, ScriptedModel(['{"section": "findings.heart_mediastinum"}'])).retry(report_id)
    assert "Tortuous thing." in [s.text for s in retried.report.part("findings.heart_mediastinum").statements]
    assert store.failed_messages(report_id) == []


def test_dictation_replaces_the_contradicted_defaults_and_drafts_the_impression(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("cxr").report.report_id
    reply = service.handle(report_id, "Mild cardiomegaly, no effusion, lungs clear")
    heart = [s.text for s in reply.report.part("findings.heart_mediastinum").statements]
    assert heart == ["Mild cardiomegaly."]  # the normal default would contradict it
    assert [s.text for s in reply.report.part("findings.pleura").statements] == ["No effusion."]
    impression = reply.report.part(Section.IMPRESSION).statements
    assert [s.text for s in impression] == ["Mild cardiomegaly."]
    assert impression[0].origin is Origin.DRAFTED and not impression[0].confirmed
    assert "+Heart and mediastinum: Mild cardiomegaly." in reply.diff


def test_a_normal_dictation_keeps_the_normal_impression(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("cxr").report.report_id
    reply = service.handle(report_id, "No pneumothorax.")
    assert [s.text for s in reply.report.part(Section.IMPRESSION).statements] == [
        "No acute cardiopulmonary abnormality."
    ]


def test_an_impression_the_radiologist_dictated_is_not_redrafted(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("cxr").report.report_id
    service.handle(report_id, "Impression: Findings suggest early pneumonia.")
    reply = service.handle(report_id, "Small left pleural effusion.")
    assert [s.text for s in reply.report.part(Section.IMPRESSION).statements] == ["Findings suggest early pneumonia."]
    assert "Small left pleural effusion." in render_text(reply.report)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("undo", "undo"),
        ("Undo the last change.", "undo"),
        ("delete the effusion sentence", "delete"),
        ("make impression 2 more concise", "concise"),
        ("replace small with moderate", "replace"),
        ("accept all", "accept"),
        ("No effusion.", "dictate"),
    ],
)
def test_dialogue_messages_are_read_as_edits_or_dictation(message: str, kind: str) -> None:
    assert parse_intent(message).kind == kind


def test_a_model_failure_leaves_the_draft_as_it_was(store: ReportStore) -> None:
    service = DraftingService(store, ScriptedModel([LLMUnavailableError("cannot connect to the LLM server")]))
    report_id = service.create("ct_chest").report.report_id
    before = store.current(report_id)
    reply = service.handle(report_id, "No effusion. Status post lobectomy.")
    assert not reply.ok and "cannot connect" in reply.text and "Nothing was changed" in reply.text
    assert store.current(report_id).report == before.report  # not even the rules' placements were applied
