"""The "Open from PACS" panel: a worklist from a QIDO-RS search, opening a study into the viewer (progress bar,
cancel), the patient's earlier studies, and sending the tab's report draft back as a DICOM SR after a
confirmation that names the patient and shows the text.

What the PACS returns identifies the patient. It is shown to the logged-in user of this tab only: it lives in
this tab's in-memory state (``gr.State``, dropped with the tab), is never logged and never stored. The study
goes into the tab's session de-identified, like an upload.

``PacsPanel(workspace)``; ``layout()`` inside a column places the components (nothing when no PACS is
configured); ``wire(session, browser_id, viewer_outputs, owner_of)`` connects the events once the viewer exists.
The handlers (``search``, ``open``, ``cancel``, ``ask_send``, ``send``) are plain methods, tested directly.
Opening a study also imports the SR reports of the patient's earlier studies into the prior-report store in the
database (:func:`assistant.import_pacs_priors`, de-identified and keyed by the pseudonymous patient key).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from assistant import (
    OpenProgress,
    PacsClient,
    PacsError,
    Pseudonymizer,
    RadassistError,
    StudyMatch,
    StudyQuery,
    import_pacs_priors,
    open_study,
    prepare_report,
    send_report,
)

logger = logging.getLogger(__name__)

WORKLIST_COLUMNS = ["Date", "Patient", "Patient ID", "Accession", "Modalities", "Description", "Series", "Images"]


def _date(text: str | None) -> dt.date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise PacsError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _row(m: StudyMatch) -> list[Any]:
    return [
        m.study_date.isoformat() if m.study_date else "", m.patient_name or "", m.patient_id or "",
        m.accession_number or "", ", ".join(m.modalities), m.study_description or "", m.series_count or 0,
        m.instance_count or 0,
    ]  # fmt: skip


def _label(m: StudyMatch) -> str:
    date = m.study_date.isoformat() if m.study_date else "no date"
    return f"{date} · {m.patient_name or '-'} · {m.accession_number or '-'} · {', '.join(m.modalities)}"


class PacsPanel:
    """Handlers and layout of the panel; per-tab state: the worklist and the opened study (real UID, in memory)."""

    def __init__(self, workspace: Any) -> None:
        self.ws = workspace
        self.settings = workspace.settings
        self.endpoints = [e.name for e in self.settings.pacs_endpoints]
        self._cancels: dict[str, threading.Event] = {}  # per tab (its session folder), while an open runs
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)

    def _client(self, name: str | None) -> PacsClient:
        return PacsClient(self.settings.pacs_endpoint(name or None))

    # ------------------------------------------------------------------------------------------ handlers

    def search(
        self, pacs: str | None, patient_id: str, accession: str, name: str, date_from: str, date_to: str,
        modality: str,
    ) -> tuple[Any, Any, str, dict[str, StudyMatch]]:  # fmt: skip
        """QIDO-RS: (worklist rows, study choices, status, worklist state)."""
        try:
            query = StudyQuery(
                patient_id=patient_id or None, accession_number=accession or None, patient_name=name or None,
                date_from=_date(date_from), date_to=_date(date_to), modality=modality or None,
            )  # fmt: skip
            if not query.filters():
                raise PacsError("Enter a patient ID, accession number, name, date or modality to search.")
            matches = self._client(pacs).find_studies(query)
        except RadassistError as exc:
            return gr.skip(), gr.skip(), f"⚠️ {exc}", gr.skip()
        worklist = {m.study_instance_uid: m for m in matches}
        choices = [(_label(m), m.study_instance_uid) for m in matches]
        status = f"{len(matches)} study(ies) found." if matches else "No study matches."
        return (
            [_row(m) for m in matches],
            gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
            status,
            worklist,
        )

    def open(
        self, pacs: str | None, study_uid: str | None, session: Any, owner: str | None = None,
        progress: Callable[..., Any] | None = None,
    ) -> tuple[Any, ...]:  # fmt: skip
        """WADO-RS into the tab's session: (status, priors, session, opened state, *viewer outputs)."""
        s = self.ws.session(session, owner)
        if not study_uid:
            return ("Choose a study in the worklist first.", gr.skip(), s, gr.skip(), *self._no_view())
        cancel = threading.Event()
        with self._lock:
            self._cancels[str(s.folder)] = cancel

        def on_progress(p: OpenProgress) -> None:
            if progress is not None:
                progress(p.fraction, desc=f"retrieving {p.instances_done}/{p.instances_total} image(s)")

        client = self._client(pacs)
        try:
            opened = open_study(client, study_uid, self.settings, progress=on_progress, cancel=cancel)
        except RadassistError as exc:
            return (f"⚠️ {exc}", gr.skip(), s, gr.skip(), *self._no_view())
        finally:
            with self._lock:
                self._cancels.pop(str(s.folder), None)
        study = opened.result.study
        s.clear_study()
        s.study = study
        count = sum(len(x.images) for x in study.series) if study is not None else 0
        status = f"Opened {count} image(s) in {len(opened.series)} series from the PACS (de-identified)."
        # The earlier studies, and their SR reports into the prior-report store (de-identified, under the patient's
        # pseudonymous key): the Prior reports panel and grounded answers see them, as after `priors import`.
        try:
            priors = import_pacs_priors(client, opened.match, self.settings)
        except RadassistError as exc:  # the study is open; only its priors are missing
            prior_lines = [f"⚠️ The earlier studies could not be read or imported: {exc}"]
        else:
            prior_lines = [f"- {_label(m)}" for m in priors.studies] or ["None on the PACS."]
            if priors.reports:
                prior_lines.append(f"\n{len(priors.reports)} earlier report(s) imported into the prior reports.")
        state = {"pacs": client.endpoint.name, "study_uid": opened.match.study_instance_uid}
        return (status, "**Earlier studies**\n" + "\n".join(prior_lines), s, state,
                *self.ws.view_outputs(s).as_outputs())  # fmt: skip

    def cancel(self, session: Any) -> str:
        """Stop the tab's running retrieval (nothing is imported)."""
        folder = getattr(session, "folder", None)
        with self._lock:
            event = self._cancels.get(str(folder)) if folder is not None else None
        if event is None:
            return "Nothing is being retrieved."
        event.set()
        return "Cancelling…"

    def ask_send(self, session: Any, opened: dict[str, str] | None, owner: str | None = None) -> tuple[Any, Any]:
        """The confirmation: which study (identified, from the PACS) the draft goes to, and its text."""
        s = self.ws.session(session, owner)
        if not opened or not s.report_id:
            return gr.Group(visible=False), "Open a study from the PACS and draft its report first."
        try:
            _, match, text = prepare_report(
                self._client(opened["pacs"]), self.ws.reports(s), s.report_id,
                Pseudonymizer.from_settings(self.settings), opened["study_uid"],
            )  # fmt: skip
        except RadassistError as exc:
            return gr.Group(visible=False), f"⚠️ {exc}"
        where = html.escape(_label(match))
        body = html.escape(text)
        return gr.Group(visible=True), (
            f"**Send this report to PACS '{html.escape(opened['pacs'])}', study {where}?**\n\n<pre>{body}</pre>"
        )

    def send(self, session: Any, opened: dict[str, str] | None, owner: str | None = None) -> tuple[Any, str]:
        """STOW-RS after the user confirmed: (hide the confirmation, status with the stored SR's UID)."""
        s = self.ws.session(session, owner)
        if not opened or not s.report_id:
            return gr.Group(visible=False), "Nothing to send."
        try:
            sent = send_report(
                self._client(opened["pacs"]), self.ws.reports(s), s.report_id,
                Pseudonymizer.from_settings(self.settings), study_uid=opened["study_uid"],
            )  # fmt: skip
        except RadassistError as exc:
            return gr.Group(visible=False), f"⚠️ {exc}"
        return gr.Group(visible=False), f"✅ Stored on the PACS as DICOM SR `{sent.sop_instance_uid}`."

    def _no_view(self) -> tuple[Any, ...]:
        return tuple(gr.skip() for _ in range(self._viewer_count))

    _viewer_count = 0

    # ------------------------------------------------------------------------------------------ layout

    def layout(self) -> None:
        """The components, inside the caller's column (nothing without a configured PACS)."""
        if not self.enabled:
            return
        with gr.Accordion("Open from PACS", open=False, elem_id="ra-pacs"):
            self.pacs = gr.Dropdown(self.endpoints, value=self.endpoints[0], label="PACS",
                                    visible=len(self.endpoints) > 1, elem_id="ra-pacs-name")  # fmt: skip
            with gr.Row():
                self.patient_id = gr.Textbox(label="Patient ID", elem_id="ra-pacs-patient-id")
                self.accession = gr.Textbox(label="Accession", elem_id="ra-pacs-accession")
                self.name = gr.Textbox(label="Name", placeholder="DOE^J*", elem_id="ra-pacs-name-query")
            with gr.Row():
                self.date_from = gr.Textbox(label="From (YYYY-MM-DD)", elem_id="ra-pacs-from")
                self.date_to = gr.Textbox(label="To (YYYY-MM-DD)", elem_id="ra-pacs-to")
                self.modality = gr.Textbox(label="Modality", elem_id="ra-pacs-modality")
            self.search_btn = gr.Button("Search", size="sm", elem_id="ra-pacs-search")
            self.worklist = gr.Dataframe(headers=WORKLIST_COLUMNS, interactive=False, elem_id="ra-pacs-worklist")
            self.study = gr.Dropdown([], label="Study", elem_id="ra-pacs-study")
            with gr.Row():
                self.open_btn = gr.Button("Open", size="sm", variant="primary", elem_id="ra-pacs-open")
                self.cancel_btn = gr.Button("Cancel", size="sm", elem_id="ra-pacs-cancel")
            self.status = gr.Markdown("", elem_id="ra-pacs-status")
            self.priors = gr.Markdown("", elem_id="ra-pacs-priors")
            self.send_btn = gr.Button("Send report to PACS…", size="sm", elem_id="ra-pacs-send")
            with gr.Group(visible=False, elem_id="ra-pacs-confirm") as self.confirm_box:
                self.confirm_text = gr.Markdown("", elem_id="ra-pacs-confirm-text")
                with gr.Row():
                    self.confirm_yes = gr.Button("Yes, send it", size="sm", variant="stop", elem_id="ra-pacs-yes")
                    self.confirm_no = gr.Button("Cancel", size="sm", elem_id="ra-pacs-no")
            # In memory, per tab: the worklist and the opened study's real UID (never stored).
            self.worklist_state = gr.State({})
            self.opened_state = gr.State(None)

    def wire(
        self, session: Any, browser_id: Any, viewer_outputs: Sequence[Any],
        owner_of: Callable[[Any, Any], str],
    ) -> None:  # fmt: skip
        """Connect the events (after the viewer's components exist)."""
        if not self.enabled:
            return
        self._viewer_count = len(viewer_outputs)
        self.search_btn.click(
            self.search,
            [self.pacs, self.patient_id, self.accession, self.name, self.date_from, self.date_to, self.modality],
            [self.worklist, self.study, self.status, self.worklist_state], api_visibility="private",
        )  # fmt: skip

        def open_(pacs: Any, uid: Any, state: Any, browser: Any, request: gr.Request,
                  progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008  # fmt: skip
            return self.open(pacs, uid, state, owner_of(request, browser), progress)

        self.open_btn.click(
            open_, [self.pacs, self.study, session, browser_id],
            [self.status, self.priors, session, self.opened_state, *viewer_outputs], api_visibility="private",
        )  # fmt: skip
        self.cancel_btn.click(self.cancel, session, self.status, queue=False, api_visibility="private")

        def ask(state: Any, opened: Any, browser: Any, request: gr.Request) -> Any:
            return self.ask_send(state, opened, owner_of(request, browser))

        def send(state: Any, opened: Any, browser: Any, request: gr.Request) -> Any:
            return self.send(state, opened, owner_of(request, browser))

        self.send_btn.click(ask, [session, self.opened_state, browser_id], [self.confirm_box, self.confirm_text],
                            api_visibility="private")  # fmt: skip
        self.confirm_yes.click(send, [session, self.opened_state, browser_id], [self.confirm_box, self.status],
                               api_visibility="private")  # fmt: skip
        self.confirm_no.click(lambda: gr.Group(visible=False), None, self.confirm_box, api_visibility="private")
