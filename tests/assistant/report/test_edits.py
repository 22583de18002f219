"""Edits by dialogue: delete, make concise (facts checked), replace, accept, undo — each with a visible diff."""

from __future__ import annotations

from assistant.report.draft import Origin, Section
from assistant.report.edits import facts_kept
from assistant.report.service import DraftingService
from assistant.report.store import ReportStore
from tests.support.scripted import ScriptedModel


def _draft(store: ReportStore, model: ScriptedModel | None = None) -> tuple[DraftingService, str]:
    service = DraftingService(store, model)
    report_id = service.create("ct_chest").report.report_id
    service.handle(report_id, "Never smoker. 7 mm solid nodule RUL, no effusion, heart size normal")
    service.handle(report_id, "There is a small hiatal hernia which is again seen.")
    return service, report_id


def test_delete_the_effusion_sentence_removes_the_dictated_one_with_a_diff(store: ReportStore) -> None:
    service, report_id = _draft(store)
    reply = service.handle(report_id, "delete the effusion sentence")
    assert reply.changed
    assert [s.text for s in reply.report.part("findings.pleura").statements] == []
    assert "-Pleura: No effusion." in reply.diff
    assert "No pericardial effusion." in reply.report.section_text(Section.FINDINGS)  # the default stays


def test_an_ambiguous_delete_asks_which(store: ReportStore) -> None:
    service = DraftingService(store)
    report_id = service.create("ct_chest").report.report_id
    reply = service.handle(report_id, "delete the effusion sentence")  # two unconfirmed defaults match
    assert not reply.changed and "which one?" in reply.text


def test_make_impression_concise_uses_the_model_when_it_keeps_the_facts(store: ReportStore) -> None:
    model = ScriptedModel(['{"text": "Small hiatal hernia."}'])
    service, report_id = _draft(store, model)
    reply = service.handle(report_id, "make impression 2 more concise")
    items = reply.report.part(Section.IMPRESSION).statements
    assert items[1].text == "Small hiatal hernia." and items[1].origin is Origin.EDITED
    assert "model, facts checked" in reply.text
    assert "+2. Small hiatal hernia. [unconfirmed]" in reply.diff


def test_a_rewrite_that_drops_a_number_is_refused(store: ReportStore) -> None:
    model = ScriptedModel(['{"text": "Solid RUL nodule."}'])  # lost "7 mm"
    service, report_id = _draft(store, model)
    reply = service.handle(report_id, "make impression 1 more concise")
    item = reply.report.part(Section.IMPRESSION).statements[0].text
    assert "7 mm" in item
    assert not facts_kept("7 mm solid nodule RUL.", "Solid RUL nodule.")
    assert not facts_kept("No effusion.", "Effusion.")


def test_undo_walks_back_one_change_at_a_time_and_keeps_history(store: ReportStore) -> None:
    service, report_id = _draft(store)
    v3 = store.current(report_id)
    service.handle(report_id, "delete the effusion sentence")
    first = service.handle(report_id, "undo")
    assert first.report.parts == v3.report.parts
    assert "+Pleura: No effusion." in first.diff
    second = service.handle(report_id, "undo")
    assert "hiatal hernia" not in second.report.section_text(Section.FINDINGS)
    actions = [v.action for v in store.history(report_id)]
    assert actions == ["new", "dictate", "dictate", "edit", "undo", "undo"]
    service.handle(report_id, "undo")
    reply = service.handle(report_id, "undo")
    assert "Nothing to undo" in reply.text and not reply.changed


def test_replace_and_accept(store: ReportStore) -> None:
    service, report_id = _draft(store)
    reply = service.handle(report_id, "replace small hiatal hernia with moderate hiatal hernia")
    assert "moderate hiatal hernia" in reply.report.section_text(Section.FINDINGS)
    reply = service.handle(report_id, "accept all")
    assert not reply.report.unconfirmed
    assert "[unconfirmed]" in reply.diff and "accepted" in reply.text
