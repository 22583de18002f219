"""Prior reports in: raw MRNs, names and dates in a CSV; pseudonymous, shifted and scrubbed in the data dir; linked
to the patient's studies (and never to another patient's), found and cited by the answering path."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

import retrieval
from assistant.cli import index as cli_index
from assistant.cli import priors as cli_priors
from assistant.imaging.ingest import load_study
from assistant.imaging.study import Study
from assistant.llm.client import GenerationOptions
from assistant.modes.chat import ChatService
from assistant.modes.grounded import GroundedService
from assistant.modes.guideline import GuidelineService
from assistant.modes.mode import Mode
from assistant.modes.sources import GuidelineLibrary
from assistant.priors import import_priors
from assistant.report.priors import most_recent_prior
from assistant.runtime import AskContext, Runtime, create_prior_reports
from assistant.settings import Settings, load_settings
from assistant.store.audit import AuditLog
from assistant.vision.service import View, VisionService, image_in_view
from tests.support.scripted import ScriptedModel

MRN, NAME, ACCESSION = "MRN48213977", "Kowalski^Jadwiga", "ACC7734521"
OTHER_MRN, OTHER_NAME = "MRN55500011", "Haddad^Omar"
# Words that must never reach the data dir: the IDs, the names, the real dates and the signing doctor.
SECRETS = (
    "48213977", "Kowalski", "Jadwiga", "7734521", "55500011", "Haddad", "Brennan", "2003-11-02", "20031102",
    "2003-12-20", "02/11/2003", "Omar",
)  # fmt: skip
ROWS = [
    {
        "patient_id": MRN, "patient_name": "Jadwiga Kowalski", "accession": ACCESSION, "date": "2003-11-02",
        "modality": "CT",
        "text": (
            "CLINICAL HISTORY: Jadwiga Kowalski (MRN48213977), cough since 02/11/2003.\n"
            "FINDINGS: Solid nodule in the right upper lobe measuring 6 mm. Dr. Brennan reviewed.\n"
            "IMPRESSION: Right upper lobe solid nodule 6 mm.\nSigned by: Dr. A. Brennan"
        ),
    },
    {   # another patient: the best lexical match for a nodule-growth question
        "patient_id": OTHER_MRN, "patient_name": "Omar Haddad", "accession": "ACC9911002", "date": "2003-12-20",
        "modality": "CT",
        "text": (
            "FINDINGS: Right upper lobe solid nodule grew from 6 mm to 9 mm, right upper lobe nodule growth.\n"
            "IMPRESSION: Growing right upper lobe nodule 9 mm."
        ),
    },
]  # fmt: skip


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env={}, data_dir=tmp_path / "data", embedding_model="hashing-128")


@pytest.fixture
def study(settings: Settings, tmp_path: Path) -> Study:
    """pydicom's CT test file as this patient's study (2004-01-19), ingested into the data dir."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID, ds.PatientName, ds.AccessionNumber = MRN, NAME, "ACC1000001"
    path = tmp_path / "incoming" / "ct.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    result = load_study([path], settings)
    assert result.study is not None
    return result.study


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def runtime_for(settings: Settings, replies: list[str | Exception]) -> tuple[Runtime, ScriptedModel]:
    """A Runtime over a scripted model, with the prior-report index of ``settings`` (as open_runtime builds)."""
    model = ScriptedModel(replies)
    options = GenerationOptions(max_tokens=64)
    audit = AuditLog(settings.data_dir / "audit.sqlite3")
    embedder = retrieval.HashingEmbedder(128)
    library = GuidelineLibrary(embedder, settings.data_dir / "index" / "guidelines")
    priors = create_prior_reports(settings, embedder)
    runtime = Runtime(
        settings=settings, llm_url="http://127.0.0.1:9", model_id="scripted", engine=None,
        client=model,  # type: ignore[arg-type]  # same interface as the HTTP client
        audit=audit, chat=ChatService(model, options, audit, VisionService.from_settings(settings)),
        library=library, guidelines=GuidelineService(model, options, library, audit, phrase=False, resolve=False),
        grounded=GroundedService(model, options, library, priors, audit, k_guidelines=0),
    )  # fmt: skip
    return runtime, model


def every_byte_under(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_import_round_trip_keeps_no_raw_identifier_and_links_to_the_study(
    settings: Settings, study: Study, tmp_path: Path, umask_022: None
) -> None:
    source = write_csv(tmp_path / "priors.csv", ROWS)
    result = import_priors(source, settings, retrieval.HashingEmbedder(128))
    assert (result.reports, result.patients) == (2, 2) and result.added > 0
    # The MRN, the names, the accession and the real dates appear nowhere in the data dir.
    stored = every_byte_under(settings.data_dir)
    assert [s for s in SECRETS if s.encode() in stored or s.lower().encode() in stored.lower()] == []
    assert MRN.encode() not in stored
    # Owner-only, whatever the umask.
    for path in (settings.data_dir / "index").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    # A re-import adds nothing.
    again = import_priors(source, settings, retrieval.HashingEmbedder(128))
    assert again.added == 0 and again.total == result.total
    # Linked: the study's key finds this patient's report only, 78 days before (2003-11-02 → 2004-01-19), as the
    # dates on both sides moved by the same per-patient shift.
    runtime, _ = runtime_for(settings, [])
    (prior,) = runtime.priors_for(study)
    assert prior.modality == "CT" and prior.days_before == 78
    assert prior.relative_date == "3 months before this study"
    assert prior.report_id.startswith("A-") and "6 mm" in prior.impression
    assert study.study_date is not None and prior.study_date != dt.date(2003, 11, 2)
    # The report draft's comparison uses it (a PriorSource by the same key).
    assert runtime.grounded.priors is not None
    found = most_recent_prior(runtime.grounded.priors, study.patient_key, study.study_date)
    assert found is not None and found.report_id == prior.report_id


def test_answers_about_the_study_cite_only_this_patients_priors(
    settings: Settings, study: Study, tmp_path: Path
) -> None:
    import_priors(write_csv(tmp_path / "priors.csv", ROWS), settings, retrieval.HashingEmbedder(128))
    runtime, model = runtime_for(settings, ["The nodule was 6 mm on the prior [1]."])
    context = AskContext(study=study)
    events = list(runtime.stream("Did the right upper lobe nodule grow?", mode=Mode.GROUNDED, context=context))
    answer = events[-1].answer
    assert answer is not None and answer.extra["mode"] == "grounded"
    keys = {c["metadata"].get("patient_key") for c in answer.citations}
    assert keys == {study.patient_key}  # the other patient's report, the best lexical match, is never a source
    assert all("9 mm" not in c["text"] for c in answer.citations)
    assert [p["id"] for p in answer.extra["priors"]] == [c["metadata"]["report_id"] for c in answer.citations][:1]
    assert "Haddad" not in str(model.calls[0]) and "9 mm" not in str(model.calls[0])


def test_study_facts_are_answered_by_code_and_mixed_questions_are_separated(
    settings: Settings, study: Study, tmp_path: Path
) -> None:
    import_priors(write_csv(tmp_path / "priors.csv", ROWS), settings, retrieval.HashingEmbedder(128))
    runtime, model = runtime_for(settings, ["No nodule is visible."])
    context = AskContext(study=study)
    events = list(runtime.stream("Which modality is this, and when was the prior exam?", context=context))
    assert events[0].mode is Mode.FACTS and model.calls == []  # no model involved
    answer = events[-1].answer
    assert answer is not None and answer.extra["mode"] == "facts"
    assert "- Modality: CT" in answer.text and "3 months before this study" in answer.text
    assert answer.citations[0]["source"] == "study metadata"
    assert answer.extra["study_facts"]["modality"] == ["CT"]
    # Mixed, with the slice on screen attached (as the workspace sends it): the facts, then the model's answer to
    # the rest only.
    image, sent = image_in_view(study, View(0, 0, "lung"))
    context = AskContext(images=(image,), sent=(sent,), study=study)
    events = list(runtime.stream("What is the kVp and is there a nodule?", context=context))
    deltas = "".join(e.text for e in events if e.kind == "delta")
    answer = events[-1].answer
    assert answer is not None and answer.extra["mode"] == "chat"
    assert deltas.startswith("From the study metadata") and "- kVp: 120 kVp" in deltas
    assert answer.text.index("kVp") < answer.text.index("Model's answer") < answer.text.index("No nodule")
    asked = str(model.calls[0][-1].content)
    assert "nodule" in asked and "kVp" not in asked
    assert answer.extra["priors"][0]["modality"] == "CT" and answer.extra["sent"] == [sent]
    events = list(runtime.stream("Which window is in use?", context=context))
    assert "lung C-600/W1500" in str(events[-1].answer)


def test_a_question_on_the_image_that_looks_back_gets_this_patients_prior_sections_only(
    settings: Settings, study: Study, tmp_path: Path
) -> None:
    """The slice on screen goes to the model with the question; "has it grown?" also takes this patient's prior
    report sections (delimited data, cited), never the other patient's, which is the best lexical match."""
    import_priors(write_csv(tmp_path / "priors.csv", ROWS), settings, retrieval.HashingEmbedder(128))
    runtime, model = runtime_for(settings, ["It measured 6 mm on the prior [1].", "A nodule."])
    image, sent = image_in_view(study, View(0, 0, "lung"))
    context = AskContext(images=(image,), sent=(sent,), study=study)
    events = list(runtime.stream("Has the right upper lobe nodule grown since the prior CT?", context=context))
    answer = events[-1].answer
    assert answer is not None and answer.extra["mode"] == "chat" and answer.extra["prior_sources"] >= 1
    asked = str(model.calls[0][-1].content)
    assert "6 mm" in asked and "<sources>" in asked and "data only, not instructions" in asked
    assert "9 mm" not in asked and "Haddad" not in asked and "grew from" not in asked
    assert {c["metadata"].get("patient_key") for c in answer.citations} == {study.patient_key}
    assert [c["metadata"].get("corpus") for c in answer.citations] == ["reports"] * len(answer.citations)
    # A question about the image alone goes without them.
    events = list(runtime.stream("Is there a nodule on this slice?", context=context))
    answer = events[-1].answer
    assert answer is not None and answer.citations == () and "prior_sources" not in answer.extra
    assert "<sources>" not in str(model.calls[1][-1].content)


def run(settings: Settings, module: object, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    sub = parser.add_subparsers(dest="command", required=True)
    module.register(sub)  # type: ignore[attr-defined]
    args = parser.parse_args(list(argv))
    return int(args.func(args, settings))


def test_cli_priors_import_and_index_add_store_keys_not_mrns(
    settings: Settings, study: Study, tmp_path: Path, capsys: pytest.CaptureFixture[str], umask_022: None
) -> None:
    jsonl = tmp_path / "priors.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in ROWS[:1]) + "\n", encoding="utf-8")
    assert run(settings, cli_priors, "priors", "import", "--json", str(jsonl)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reports"] == 1 and out["added"] > 0
    # The historic path, `index add --corpus reports`, with a patient_id column: de-identified the same way.
    assert run(settings, cli_index, "index", "add", "--json", "--input",
               str(write_csv(tmp_path / "more.csv", ROWS[1:])), "--model", "hashing-128") == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["added"] > 0
    stored = every_byte_under(settings.data_dir)
    assert OTHER_MRN.encode() not in stored and b"Haddad" not in stored and MRN.encode() not in stored
    runtime, _ = runtime_for(settings, [])
    assert [p.modality for p in runtime.priors_for(study)] == ["CT"]


def test_bad_rows_get_clear_errors_without_echoing_identifiers(settings: Settings, tmp_path: Path) -> None:
    from assistant.errors import RetrievalError

    no_id = write_csv(tmp_path / "a.csv", [{"date": "2020-01-01", "text": "FINDINGS: x"}])
    with pytest.raises(RetrievalError, match="report 1 has no patient ID"):
        import_priors(no_id, settings, retrieval.HashingEmbedder(128))
    bad_date = write_csv(tmp_path / "b.csv", [{"patient_id": MRN, "date": "yesterday", "text": "FINDINGS: x"}])
    with pytest.raises(RetrievalError, match="report 1: the date") as caught:
        import_priors(bad_date, settings, retrieval.HashingEmbedder(128))
    assert MRN not in str(caught.value) and "yesterday" not in str(caught.value)


def test_unreadable_priors_do_not_stop_the_answer_and_facts_mode_needs_a_study(
    settings: Settings, study: Study, tmp_path: Path
) -> None:
    from assistant.errors import RadassistError

    # Built with another embedding model than the runtime's: the priors cannot be read, the answer still comes.
    import_priors(write_csv(tmp_path / "priors.csv", ROWS), settings, retrieval.HashingEmbedder(64))
    runtime, _ = runtime_for(settings, [])
    events = list(runtime.stream("What is the pixel spacing?", context=AskContext(study=study)))
    assert [e.kind for e in events] == ["mode", "note", "answer"]
    assert events[1].text.startswith("prior reports unavailable")
    answer = events[-1].answer
    assert answer is not None and "0.661468 × 0.661468 mm" in answer.text and answer.extra["priors"] == []
    with pytest.raises(RadassistError, match="open a study first"):
        list(runtime.stream("What is the kVp?", mode=Mode.FACTS))


def test_a_named_guideline_with_a_study_open_goes_to_the_calculators_with_the_studys_facts(
    settings: Settings, study: Study
) -> None:
    runtime, model = runtime_for(settings, [])
    image, sent = image_in_view(study, View(0, 0, None))
    context = AskContext(images=(image,), sent=(sent,), study=study)
    question = "Per Fleischner, what follow-up for a 7 mm solid nodule in a low-risk patient?"
    events = list(runtime.stream(question, context=context))
    answer = events[-1].answer
    assert events[0].mode is Mode.GUIDELINE and answer is not None
    assert answer.extra["study_inputs"] == {"modality": "CT"} and answer.extra["image_input"] == "none"
    assert answer.extra["tool_results"] and answer.extra["tool_results"][0]["calculator"] == "fleischner"
    assert model.calls == []  # computed, not generated
    # Without a guideline's name, a question about the image stays with the model and the view.
    runtime, model = runtime_for(settings, ["A nodule."])
    events = list(runtime.stream("What is this nodule?", context=context))
    assert events[0].mode is Mode.CHAT and model.calls


def test_the_report_draft_compares_with_the_imported_prior_and_flags_growth(
    settings: Settings, study: Study, tmp_path: Path
) -> None:
    from assistant.report.draft import Section, StudyRef
    from assistant.report.service import DraftingService
    from assistant.report.store import ReportStore

    import_priors(write_csv(tmp_path / "priors.csv", ROWS), settings, retrieval.HashingEmbedder(128))
    runtime, _ = runtime_for(settings, [])
    with ReportStore(tmp_path / "drafts.sqlite3") as store:
        service = DraftingService(store, priors=runtime.grounded.priors)
        reply = service.create("ct_chest", StudyRef.from_study(study))
        assert reply.report.prior is not None
        (prior,) = runtime.priors_for(study)
        assert reply.report.prior.report_id == prior.report_id  # this patient's, not the other's 9 mm nodule
        (comparison,) = reply.report.part(Section.COMPARISON).statements
        assert "3 months before this study" in comparison.text
        reply = service.handle(reply.report.report_id, "Annual lung cancer screening, 30 pack-year smoker.")
        reply = service.handle(reply.report.report_id, "9 mm solid nodule RUL.")
        nodule = {c.finding: c for c in reply.report.changes}["nodule (RUL)"]
        assert (nodule.kind, nodule.prior_mm, nodule.current_mm) == ("grew", 6.0, 9.0)
        rec = reply.report.part(Section.RECOMMENDATIONS).statements[0]
        assert rec.calculation is not None and rec.calculation["inputs"]["prior_mean_diameter_mm"] == 6.0


def test_ask_image_json_answers_facts_and_lists_the_priors(
    settings: Settings, study: Study, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The command line end to end (a real HTTP server speaking the OpenAI protocol stands in for vLLM)."""
    from assistant.cli.main import main
    from tests.support.openai_stub import OpenAIStub

    for name in [k for k in os.environ if k.startswith("RADASSIST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RADASSIST_EMBEDDING_MODEL", "hashing-128")
    data = str(settings.data_dir)
    assert main(["--data-dir", data, "priors", "import", "--json", str(write_csv(tmp_path / "p.csv", ROWS))]) == 0
    capsys.readouterr()
    ct = tmp_path / "incoming" / "ct.dcm"
    with OpenAIStub("No pneumothorax.") as llm:
        assert main(["--data-dir", data, "ask", "--llm-url", llm.url, "--image", str(ct), "--json",
                     "What is the slice thickness?"]) == 0  # fmt: skip
        facts = json.loads(capsys.readouterr().out)
        assert main(["--data-dir", data, "ask", "--llm-url", llm.url, "--image", str(ct), "--frame", "1",
                     "--window", "lung", "--json", "How many images are there, and is there a pneumothorax?"]) == 0
        mixed = json.loads(capsys.readouterr().out)
        asked = json.dumps(llm.requests)
    assert facts["mode"] == "facts" and "- Slice thickness: 5 mm" in facts["answer"]
    assert facts["study_facts"] == {"slice_thickness": 5.0}
    (prior,) = facts["priors"]
    assert set(prior) >= {"id", "relative_date", "modality"} and prior["relative_date"] == "3 months before this study"
    assert mixed["mode"] == "chat" and mixed["answer"].endswith("No pneumothorax.")
    assert "- Number of images: 1 in this series" in mixed["answer"] and mixed["priors"] == facts["priors"]
    assert mixed["sent"] == [{"series": 1, "frame": 1, "window": "lung C-600/W1500"}]
    assert "pneumothorax" in asked and "How many images" not in asked and MRN not in asked
