"""The drafting dialogue over a report store: create, dictate, edit, undo, retry and export, one saved version at a
time. The service acts for its store's owner (:meth:`ReportStore.as_owner`): another owner's draft is not found."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import LLMUnavailableError
from assistant.llm.client import ChatMessage, ChatModel, GenerationOptions, Role
from assistant.report.derive import apply_derived
from assistant.report.dictation import Clause, PlacementError, Placer, complete_audited, split_dictation, tidy
from assistant.report.draft import (
    Origin,
    Report,
    ReportError,
    ReportTemplate,
    Section,
    StudyRef,
    Version,
    choose_template,
    create_report,
    diff_reports,
    load_report_template,
    undo_target,
)
from assistant.report.edits import Intent, condense, facts_kept, find_statements, parse_intent
from assistant.report.export import DateShifter, ExportFormat, export_report
from assistant.report.priors import PriorSource, attach_prior, most_recent_prior
from assistant.report.statements import place_statement
from assistant.report.store import MessageStatus, ReportStore, VersionConflict
from assistant.store.audit import AuditLog
from prompts import PromptTemplate, render
from prompts import load_template as load_prompt

logger = logging.getLogger(__name__)

MAX_DICTATION_CHARS = 8000
_CAS_ATTEMPTS = 5  # saves raced by another tab or the command line before a change is kept as failed (for retry)
_RETRY = re.compile(r"^\s*retry\s*[.!]?\s*$", re.I)
# Confirming or undoing is about what the radiologist saw: on a draft that moved meanwhile it is not re-applied.
_NOT_REBASED = {"undo": "undone", "accept": "accepted"}

# A dictation is written to the dialogue before the model is asked, and the draft moves only from one complete
# version to the next: when the engine dies half way, nothing of the draft or its history is lost.
# "Make impression 2 more concise" asks the model, and its answer is accepted only when every number, side and
# negation is kept; otherwise a deterministic condensation is used.
# Saves are compare-and-set on the version read: when another tab or the command line saved a version in between,
# a dictation or an edit is applied again on top of the newer version (rebased) and the reply says so; an undo or an
# "accept" is not (it was meant for what the radiologist saw) and the reply asks to look again.


@dataclass(frozen=True)
class Reply:
    """What the dialogue shows after one message: the message, the diff, the report and what is still open."""

    report: Report
    text: str
    diff: str = ""
    version: int | None = None
    changed: bool = False
    ok: bool = True
    questions: tuple[str, ...] = ()
    unplaced: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exported:
    """Where an export went: the file, the version written and its format."""

    path: Path
    version: int
    format: ExportFormat


class DraftingService:
    """Report drafting in dialogue over a :class:`ReportStore`; the model is optional (rules-only without it)."""

    def __init__(
        self,
        store: ReportStore,
        model: ChatModel | None = None,
        priors: PriorSource | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.priors = priors
        self.audit = audit
        self._concise_prompt: PromptTemplate | None = None

    # ------------------------------------------------------------------------------------------- creation

    def create(self, template: str | None = None, study: StudyRef | None = None, report_id: str | None = None) -> Reply:
        """A new draft from ``template`` (or the one the study's modality and body part call for)."""
        if template is None:
            if study is None:
                raise ReportError("name a template (e.g. --template ct_chest) or give a study to choose from")
            choice = choose_template(study.modality, study.body_part, study.study_description)
            if choice.template is None:
                raise ReportError(choice.question())
            template = choice.template
        tmpl = load_report_template(template)
        report = create_report(tmpl, report_id, study)
        notes = []
        if self.priors is not None and study is not None:
            prior = most_recent_prior(self.priors, study.patient_key, study.study_date)
            if prior is not None:
                report = attach_prior(report, prior, study.study_date)
                notes.append(f"Comparison: the prior report of {prior.study_date.isoformat()} of this patient.")
            else:
                notes.append("No prior report of this patient was found.")
        report = apply_derived(report, tmpl)
        version = self.store.create(report)
        self.store.add_message(report.report_id, "assistant", f"New {tmpl.title} draft.", MessageStatus.NOTE)
        text = f"New {tmpl.title} draft ({tmpl.ref}); template defaults are unconfirmed."
        return Reply(report, " ".join([text, *notes]), version=version.number, changed=True)

    # ------------------------------------------------------------------------------------------- export

    def export(
        self, report_id: str, fmt: ExportFormat | str, path: Path, keys: DateShifter | None = None
    ) -> Exported:
        """Write the current version of one of the owner's drafts to ``path``; the export is recorded (format,
        version, owner; never the text). ``keys``: the de-identification keys (``Pseudonymizer``), so that a DICOM
        SR's own dates carry the patient's date shift like the study's dates."""
        current = self.store.current(report_id)  # ReportNotFound for another owner's: nothing is written
        # A bad format is an ExportError here.
        written = export_report(current.report, fmt, path, current.number, keys=keys)
        kind = ExportFormat(fmt)
        self.store.record_export(report_id, current.number, kind.value)
        return Exported(written, current.number, kind)

    # ------------------------------------------------------------------------------------------- dialogue

    def handle(self, report_id: str, message: str, seen_version: int | None = None) -> Reply:
        """One message of the dialogue: an edit command, "undo", "retry", or dictation. ``seen_version`` is the
        version the caller showed the radiologist (a tab's view): if the draft moved on since, the reply says so."""
        text = message.strip()
        if not text:
            raise ReportError("the message is empty")
        if len(text) > MAX_DICTATION_CHARS:
            raise ReportError(f"the message is too long ({len(text)} characters; at most {MAX_DICTATION_CHARS})")
        if _RETRY.match(text):
            return self.retry(report_id)
        intent = parse_intent(text)
        if intent.kind == "dictate":
            return self.dictate(report_id, text, seen_version)
        start = self.store.current(report_id).number
        message_id = self.store.add_message(report_id, "user", text, MessageStatus.PENDING)
        try:
            moved = seen_version is not None and seen_version != start
            if intent.kind in _NOT_REBASED and moved:
                return self._stale(report_id, message_id, intent.kind, seen_version)
            for _ in range(_CAS_ATTEMPTS):
                try:
                    if intent.kind == "undo":
                        reply = self._undo(report_id, message_id)
                    else:
                        handler = {
                            "delete": self._delete,
                            "concise": self._concise,
                            "replace": self._replace,
                            "accept": self._accept,
                            "redraft": self._redraft,
                        }[intent.kind]
                        reply = handler(report_id, intent, message_id)
                except VersionConflict as exc:
                    if intent.kind in _NOT_REBASED:
                        return self._stale(report_id, message_id, intent.kind, exc.expected)
                    moved = True
                    continue
                return self._rebased(reply, seen_version if seen_version is not None else start, "change", moved)
            raise ReportError("the draft kept changing while this edit was applied; it is kept for `retry`")
        except BaseException:
            self.store.set_status(message_id, MessageStatus.FAILED)
            raise

    def _stale(self, report_id: str, message_id: int, kind: str, seen: int | None) -> Reply:
        current = self.store.current(report_id)
        return self._ask(
            current.report, message_id,
            f"Nothing was {_NOT_REBASED[kind]}: the draft changed meanwhile (it is at version {current.number}, "
            f"you were looking at version {seen}; saved from another window or the command line). Look at it "
            f"again, then {kind} once more if still wanted.",
        )  # fmt: skip

    def _rebased(self, reply: Reply, seen: int | None, what: str, moved: bool) -> Reply:
        """The reply, telling the radiologist when their change went on top of a version saved elsewhere."""
        if not moved or not reply.changed or reply.version is None:
            return reply
        note = (
            f"Note: the draft changed meanwhile (another window or the command line saved a version after "
            f"version {seen}); your {what} was added on top of it as version {reply.version}: nothing of either "
            "was lost."
        )
        self.store.add_message(reply.report.report_id, "assistant", note, MessageStatus.NOTE)
        return dataclasses.replace(reply, text=f"{reply.text} {note}")

    def plan(self, report_id: str, text: str) -> list[Clause]:
        """How a dictation would be split and placed by the rules alone (no model, nothing saved)."""
        report = self.store.load(report_id)
        return split_dictation(load_report_template(report.template), text)

    def dictate(self, report_id: str, text: str, seen_version: int | None = None) -> Reply:
        """Place a dictation into the draft (one new version), redraft the impression, recompute recommendations."""
        current = self.store.current(report_id)
        template = load_report_template(current.report.template)
        message_id = self.store.add_message(report_id, "user", text, MessageStatus.PENDING)
        try:
            return self._dictate(current, template, text, message_id, seen_version)
        except BaseException:
            # Whatever failed (not only the model), the dictation stays saved and is offered for retry.
            self.store.set_status(message_id, MessageStatus.FAILED)
            raise

    def _dictate(
        self, current: Version, template: ReportTemplate, text: str, message_id: int, seen_version: int | None
    ) -> Reply:
        report_id = current.report.report_id
        try:
            clauses = self._resolve(template, split_dictation(template, text))
        except (LLMUnavailableError, PlacementError) as exc:
            self.store.set_status(message_id, MessageStatus.FAILED)
            note = (
                f"{exc}. Nothing was changed: the draft is still version {current.number} and your dictation is "
                "saved; send `retry` (or dictate again) when the model is back."
            )
            self.store.add_message(report_id, "assistant", note, MessageStatus.NOTE)
            logger.warning("dictation for report %s not applied: %s", report_id, type(exc).__name__)
            return Reply(current.report, note, version=current.number, ok=False)
        placed = [c for c in clauses if c.slot is not None]
        unplaced = tuple(c.text for c in clauses if c.slot is None)
        logger.info(
            "dictation for report %s: %d clauses (%d by rules, %d by model, %d unplaced)",
            report_id, len(clauses), sum(c.method in ("label", "cue", "keywords") for c in clauses),
            sum(c.method == "model" for c in clauses), len(unplaced),
        )  # fmt: skip
        summary = ", ".join(f"{template.slot_title(c.slot)}" for c in placed if c.slot) or "nothing placed"
        by_model = [c for c in clauses if c.method == "model"]
        if by_model:
            summary += f" ({len(by_model)} placed by the language model: check them, they stay unconfirmed)"
        if unplaced:  # kept for `retry` once the model is available; never silently dropped
            self.store.add_message(report_id, "user", ". ".join(unplaced), MessageStatus.FAILED)
        seen = seen_version if seen_version is not None else current.number
        moved = seen != current.number
        for _ in range(_CAS_ATTEMPTS):
            after = current.report
            for clause in clauses:
                if clause.slot is not None:
                    # The radiologist's words, but where the model put them is a guess until accepted.
                    after, _ = place_statement(after, template, clause.slot, clause.text, clause.method != "model")
            after = apply_derived(after, template)
            try:
                reply = self._commit(current, after, "dictate", f"dictated: {summary}", message_id, unplaced=unplaced)
            except VersionConflict:  # another tab or the CLI saved meanwhile: place the same clauses on that
                logger.info("report %s moved on while dictating; rebasing the dictation", report_id)
                current = self.store.current(report_id)
                moved = True
                continue
            return self._rebased(reply, seen, "dictation", moved)
        raise ReportError("the draft kept changing while this dictation was applied; it is kept for `retry`")

    def retry_note(self, report_id: str) -> str:
        """What is waiting for ``retry`` on one of the owner's drafts, in words ("" when nothing is)."""
        waiting = self.store.failed_messages(report_id)
        if not waiting:
            return ""
        interrupted = sum(m.interrupted for m in waiting)
        why = f", {interrupted} of them interrupted by a crash" if interrupted else ""
        return (
            f"{len(waiting)} dictation(s) or edit(s) of this draft were saved but not applied{why}; "
            "send `retry` to apply them."
        )

    def retry(self, report_id: str) -> Reply:
        """Apply the dictations that failed (the model was down) or were interrupted (a crash), oldest first."""
        failed = self.store.failed_messages(report_id)
        if not failed:
            return Reply(self.store.load(report_id), "Nothing to retry.")
        reply = Reply(self.store.load(report_id), "Nothing to retry.")
        for message in failed:
            reply = self.handle(report_id, message.text)
            if not reply.ok:
                return reply
            self.store.set_status(message.id, MessageStatus.DONE)
        return reply

    def _resolve(self, template: ReportTemplate, clauses: list[Clause]) -> list[Clause]:
        if not any(c.slot is None for c in clauses) or self.model is None:
            return clauses
        placer = Placer(self.model, self.audit)
        out = []
        for clause in clauses:
            if clause.slot is None:
                clause = dataclasses.replace(clause, slot=placer.place(template, clause.text), method="model")
            out.append(clause)
        return out

    def _commit(
        self,
        current: Version,
        after: Report,
        action: str,
        summary: str,
        message_id: int | None,
        base: int | None | str = "current",
        unplaced: tuple[str, ...] = (),
    ) -> Reply:
        diff = diff_reports(current.report, after)
        notes = []
        if unplaced:
            notes.append(
                f"{len(unplaced)} sentence(s) could not be placed without the language model and were not added: "
                + " | ".join(unplaced)
                + " — start with a label (e.g. 'Lungs: ...') or dictate with the model available."
            )
        if after.questions:
            notes.append("Open: " + " ".join(after.questions))
        if not diff and after == current.report:
            if message_id is not None:
                self.store.set_status(message_id, MessageStatus.DONE)
            text = " ".join(["No change.", *notes])
            return Reply(after, text, "", current.number, False, True, after.questions, unplaced)
        before = current.number if base == "current" else base
        version = self.store.save(
            after, action, summary, before if isinstance(before, int) else None, message_id, expected=current.number
        )
        text = " ".join([f"Version {version.number}: {summary}.", *notes])
        self.store.add_message(after.report_id, "assistant", text, MessageStatus.NOTE)
        return Reply(after, text, diff, version.number, True, True, after.questions, unplaced)

    # ------------------------------------------------------------------------------------------- edits

    def _undo(self, report_id: str, message_id: int) -> Reply:
        history = self.store.history(report_id)
        current = history[-1]
        try:
            target = undo_target(history)
        except ReportError as exc:
            return self._ask(current.report, message_id, f"Nothing to undo ({exc}).")
        restored = target.report.replace(next_id=max(target.report.next_id, current.report.next_id))
        return self._commit(
            current, restored, "undo", f"undid version {current.number} (back to version {target.number})",
            message_id, base=target.base,
        )  # fmt: skip

    def _delete(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        hits = find_statements(report, intent.target)
        if not hits:
            return self._ask(report, message_id, f"No sentence matches {intent.target!r}; nothing was deleted.")
        if len(hits) > 1:
            # "the effusion sentence" means the one the radiologist said, before a default that also matches.
            own = [h for h in hits if h[1].origin in (Origin.DICTATED, Origin.EDITED)]
            hits = own if len(own) == 1 else hits
        if len(hits) > 1:
            options = "; ".join(f"[{s.id}] {s.text}" for _, s in hits)
            return self._ask(report, message_id, f"Several sentences match — which one? {options} (say e.g. "
                             f"'delete {hits[0][1].id}')")  # fmt: skip
        part, statement = hits[0]
        after = report.with_part(part.slot, [s for s in part.statements if s.id != statement.id])
        if part.section is Section.IMPRESSION:
            after = after.replace(impression_locked=True)
        if statement.origin is Origin.CALCULATOR:
            after = after.replace(dismissed=(*after.dismissed, statement.text))
        after = apply_derived(after, load_report_template(report.template))
        return self._commit(current, after, "edit", f"deleted from {part.title}: “{statement.text}”", message_id)

    def _replace(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        pattern = re.compile(re.escape(intent.target), re.I)
        hits = [(p, s) for p, s in report.statements() if pattern.search(s.text)]
        own = [h for h in hits if h[1].origin in (Origin.DICTATED, Origin.EDITED) and h[0].section is Section.FINDINGS]
        hits = own if len(hits) > 1 and len(own) == 1 else hits  # the drafted impression follows the finding
        if len(hits) != 1:
            why = "No sentence contains" if not hits else "Several sentences contain"
            return self._ask(report, message_id, f"{why} {intent.target!r}; nothing was changed.")
        part, statement = hits[0]
        edited = dataclasses.replace(
            statement, text=tidy(pattern.sub(intent.value, statement.text, count=1)), origin=Origin.EDITED,
            confirmed=True, citation=None, calculation=None,
        )  # fmt: skip
        after = report.with_part(part.slot, [edited if s.id == statement.id else s for s in part.statements])
        if part.section is Section.IMPRESSION:
            after = after.replace(impression_locked=True)
        after = apply_derived(after, load_report_template(report.template))
        return self._commit(current, after, "edit", f"changed in {part.title}: “{edited.text}”", message_id)

    def _concise(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        hits = find_statements(report, f"{intent.target} {intent.value}")
        if not hits:
            return self._ask(report, message_id, f"There is no {intent.target} {intent.value}.")
        part, statement = hits[0]
        if statement.origin is Origin.CALCULATOR:
            return self._ask(report, message_id, "Calculator recommendations keep the guideline's exact wording.")
        rewritten, how = self._rewrite_concise(statement.text)
        if rewritten is None:
            return self._ask(report, message_id, f"{part.title} {intent.value} is already as concise as I can make "
                             "it without dropping a fact.")  # fmt: skip
        edited = dataclasses.replace(statement, text=rewritten, origin=Origin.EDITED, confirmed=False)
        after = report.with_part(part.slot, [edited if s.id == statement.id else s for s in part.statements])
        if part.section is Section.IMPRESSION:
            after = after.replace(impression_locked=True)
        return self._commit(current, after, "edit", f"{part.title} {intent.value} made concise ({how})", message_id)

    def _rewrite_concise(self, text: str) -> tuple[str | None, str]:
        if self.model is not None:
            self._concise_prompt = self._concise_prompt or load_prompt("report_concise")
            schema = {
                "type": "object",
                "properties": {"text": {"type": "string", "maxLength": max(8, len(text))}},
                "required": ["text"],
                "additionalProperties": False,
            }
            options = GenerationOptions(
                max_tokens=160, temperature=0.0,
                response_format={"type": "json_schema", "json_schema": {"name": "concise", "schema": schema}},
            )  # fmt: skip
            messages = [ChatMessage(Role.USER, render(self._concise_prompt, {"item": text}))]
            answer = complete_audited(self.model, messages, options, self.audit, self._concise_prompt.ref)
            try:
                candidate = tidy(str(json.loads(answer)["text"]))
            except (ValueError, KeyError, TypeError):
                candidate = ""
            if facts_kept(text, candidate):
                return candidate, "model, facts checked"
        shorter = condense(text)
        return (shorter, "rules") if facts_kept(text, shorter) else (None, "")

    def _accept(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report
        target = intent.target.lower().strip()
        slots = [p.slot for p in report.parts]
        if target:
            match = [p.slot for p in report.parts if target in (p.title.lower(), p.slot, p.slot.split(".")[-1])]
            if not match:
                return self._ask(report, message_id, f"There is no section {intent.target!r} to accept.")
            slots = match
        after = report
        count = 0
        for slot in slots:
            part = after.part(slot)
            count += sum(not s.confirmed for s in part.statements)
            after = after.with_part(slot, [dataclasses.replace(s, confirmed=True) for s in part.statements])
        return self._commit(current, after, "accept", f"accepted {count} statement(s)", message_id)

    def _redraft(self, report_id: str, intent: Intent, message_id: int) -> Reply:
        current = self.store.current(report_id)
        report = current.report.replace(impression_locked=False)
        report = report.with_part(Section.IMPRESSION, [])
        after = apply_derived(report, load_report_template(report.template))
        return self._commit(current, after, "edit", "impression redrafted from the findings", message_id)

    def _ask(self, report: Report, message_id: int, text: str) -> Reply:
        self.store.set_status(message_id, MessageStatus.DONE)
        self.store.add_message(report.report_id, "assistant", text, MessageStatus.NOTE)
        return Reply(report, text, changed=False)
