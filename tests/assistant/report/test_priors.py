"""Priors: the same patient's latest report fills Comparison; changes are flagged and feed the growth rules."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from assistant.report.draft import Origin, Section, StudyRef
from assistant.report.priors import InMemoryPriors, most_recent_prior
from assistant.report.service import DraftingService
from assistant.report.store import ReportStore
from retrieval.reports import PriorReport


def _patient_with_several(reports: list[PriorReport]) -> str:
    counts = Counter(r.patient_key for r in reports)
    return next(key for key, n in counts.most_common() if n >= 3)


def test_comparison_comes_from_the_right_patient_only(store: ReportStore, iu_reports: list[PriorReport]) -> None:
    key = _patient_with_several(iu_reports)
    own = sorted((r for r in iu_reports if r.patient_key == key), key=lambda r: r.study_date)
    study_date = own[-1].study_date  # the "current" study is the patient's latest: its prior is the one before
    service = DraftingService(store, priors=InMemoryPriors(iu_reports))
    reply = service.create("cxr", StudyRef("2.25.1", key, "CR", "CHEST", study_date=study_date))
    report = reply.report
    expected = max((r for r in own if r.study_date < study_date), key=lambda r: (r.study_date, r.report_id))
    assert report.prior is not None and report.prior.report_id == expected.report_id
    comparison = report.part(Section.COMPARISON).statements
    assert [s.origin for s in comparison] == [Origin.PRIOR] and not comparison[0].confirmed
    assert expected.study_date.isoformat() in comparison[0].text and expected.report_id in comparison[0].text
    others = {r.report_id for r in iu_reports if r.patient_key != key}
    assert report.prior.report_id not in others
    assert report.prior.findings == expected.sections.get("findings", "")


def test_no_patient_key_means_no_prior(iu_reports: list[PriorReport]) -> None:
    assert most_recent_prior(InMemoryPriors(iu_reports), None, None) is None
    assert most_recent_prior(InMemoryPriors(iu_reports), "demo-nobody", None) is None


def test_a_new_patient_gets_no_comparison(store: ReportStore, iu_reports: list[PriorReport]) -> None:
    service = DraftingService(store, priors=InMemoryPriors(iu_reports))
    reply = service.create("cxr", StudyRef("2.25.2", "demo-not-in-the-file", "CR", "CHEST"))
    assert reply.report.prior is None and "No prior report" in reply.text
    assert [s.text for s in reply.report.part(Section.COMPARISON).statements] == ["None."]


def _nodule_prior() -> InMemoryPriors:
    return InMemoryPriors(
        [
            PriorReport(
                "old-1",
                "demo-0007",
                dt.date(2021, 3, 1),
                {
                    "findings": "6 mm solid nodule in the right upper lobe. No pleural effusion.",
                    "impression": "6 mm RUL nodule.",
                },
            ),  # fmt: skip
            PriorReport("other", "demo-0008", dt.date(2021, 6, 1), {"findings": "20 mm mass in the right upper lobe."}),
        ]
    )


def test_a_growing_nodule_on_screening_triggers_the_lung_rads_growth_rule(store: ReportStore) -> None:
    service = DraftingService(store, priors=_nodule_prior())
    study = StudyRef("2.25.3", "demo-0007", "CT", "CHEST", study_date=dt.date(2022, 3, 1))
    report_id = service.create("ct_chest", study).report.report_id
    service.handle(report_id, "Annual lung cancer screening, 30 pack-year smoker.")
    reply = service.handle(report_id, "9 mm solid nodule RUL. Small right pleural effusion.")
    kinds = {c.finding: c for c in reply.report.changes}
    nodule = kinds["nodule (RUL)"]
    assert (nodule.kind, nodule.prior_mm, nodule.current_mm) == ("grew", 6.0, 9.0)
    assert kinds["pleural effusion"].kind == "new"
    rec = reply.report.part(Section.RECOMMENDATIONS).statements[0]
    assert rec.calculation is not None and rec.calculation["category"] == "4B"
    assert rec.calculation["inputs"]["prior_mean_diameter_mm"] == 6.0
    assert "Growing" in rec.text
    impression = reply.report.part(Section.IMPRESSION).statements[0].text
    assert "increased from 6 mm to 9 mm since 2021-03-01" in impression


def test_an_incidental_growing_nodule_is_flagged_and_managed_at_its_current_size(store: ReportStore) -> None:
    service = DraftingService(store, priors=_nodule_prior())
    study = StudyRef("2.25.4", "demo-0007", "CT", "CHEST", study_date=dt.date(2022, 3, 1))
    report_id = service.create("ct_chest", study).report.report_id
    service.handle(report_id, "Cough. Never smoker.")
    reply = service.handle(report_id, "9 mm solid nodule RUL.")
    assert reply.report.changes[0].kind == "grew"
    rec = reply.report.part(Section.RECOMMENDATIONS).statements[0]
    assert rec.calculation is not None and rec.calculation["calculator"] == "fleischner"
    assert ">8 mm" in rec.calculation["category"]
