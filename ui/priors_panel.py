"""The "Prior reports" panel: the open study's patient's priors (relative date, modality, impression), and the
administrators' "Import prior reports" box.

Shown once a study is loaded; "no prior reports found for this patient" when there are none. The lookup needs no
LLM (only the settings), so it works while the engine is still starting.

The import box does what ``radassist priors import FILE`` does (same de-identification, same keys, idempotent),
for the users named in ``admin_users`` (and the local user in single-user mode); the check is made again on the
server for every import, whatever the page shows. The uploaded file carries raw identifiers: it is deleted from
Gradio's upload cache as soon as the import has read it, whatever the outcome.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from assistant import (
    AuditLog,
    PriorSummary,
    RadassistError,
    Settings,
    Study,
    import_priors,
    priors_for_study,
    shared_embedder,
)  # fmt: skip

logger = logging.getLogger(__name__)

TITLE = "#### Prior reports"
NONE_FOUND = "no prior reports found for this patient"
NO_KEY = "no prior reports: this study carries no patient ID to link them by"
IMPORT_TYPES = [".csv", ".json", ".jsonl"]
NOT_ALLOWED = "Importing prior reports is for administrators (the admin_users setting)."
MAX_IMPRESSION_CHARS = 300


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def priors_markdown(priors: Sequence[PriorSummary]) -> str:
    """The panel's text: one line per prior, newest first, or the 'none found' line."""
    if not priors:
        return f"{TITLE}\n{NONE_FOUND}"
    lines = [f"{TITLE} ({len(priors)})"]
    for prior in priors:
        modality = html.escape(prior.modality or "modality not given")
        impression = html.escape(_one_line(prior.impression, MAX_IMPRESSION_CHARS)) or "(no impression)"
        lines.append(f"- **{modality}**, {html.escape(prior.relative_date)}: {impression}")
    return "\n".join(lines)


def panel_text(settings: Settings, study: Study | None) -> str:
    """The panel for ``study`` ("" without a study); errors become a short line, never a crash."""
    if study is None:
        return ""
    if not study.patient_key:
        return f"{TITLE}\n{NO_KEY}"
    try:
        return priors_markdown(priors_for_study(settings, study))
    except RadassistError as exc:
        return f"{TITLE}\nprior reports unavailable: {html.escape(str(exc))}"
    except Exception:  # the panel is beside the answer: never in its way
        logger.exception("prior-report lookup failed")
        return f"{TITLE}\nprior reports unavailable (see the log)"


def handler(workspace: Any) -> Callable[[Any], Any]:
    """The event handler: session in, the panel's update out (hidden without a study)."""

    def show(session: Any) -> Any:
        study = getattr(session, "study", None)
        text = panel_text(workspace.settings, study)
        return gr.update(value=text, visible=bool(text))

    return show


def forget_upload(path: str | Path) -> None:
    """Delete an uploaded file (and its folder in Gradio's cache, when that is left empty)."""
    file = Path(path)
    try:
        file.unlink(missing_ok=True)
        file.parent.rmdir()  # Gradio keeps each upload in a folder of its own
    except OSError:
        pass  # not empty, or already gone: the cache sweep removes what is left


class PriorsImport:
    """The "Import prior reports" box: who may use it, and the import itself (plain methods, tested directly)."""

    def __init__(self, workspace: Any) -> None:
        self.ws = workspace
        self.settings: Settings = workspace.settings
        self._lock = threading.Lock()  # one import at a time per app process

    def allowed(self, owner: str) -> bool:
        """Whether the tab of ``owner`` may import: a named administrator, or the local user in single-user mode."""
        if owner == "":
            return bool(self.ws.single_user)
        return owner.startswith("user:") and owner[len("user:"):] in self.settings.admin_names

    def run(self, upload: str | None, owner: str, session: Any) -> tuple[str, Any]:
        """Import ``upload`` (a path in Gradio's cache) for ``owner``; returns the outcome line and the refreshed
        priors panel of the tab's study. The upload is deleted whatever happens."""
        try:
            if not self.allowed(owner):
                logger.warning("prior-report import refused: not an administrator")
                return NOT_ALLOWED, gr.skip()
            if not upload:
                return "Choose a .csv, .json or .jsonl file of prior reports first.", gr.skip()
            name = Path(upload).name
            if Path(upload).suffix.lower() not in IMPORT_TYPES:
                return f"{html.escape(name)} is not a .csv, .json or .jsonl file: nothing was imported.", gr.skip()
            try:
                with self._lock, AuditLog(self.settings.database) as audit:
                    result = import_priors(Path(upload), self.settings, shared_embedder(self.settings), audit=audit)
            except RadassistError as exc:
                return f"Nothing was imported from {html.escape(name)}: {html.escape(str(exc))}", gr.skip()
            except Exception:
                logger.exception("prior-report import failed")
                return f"Nothing was imported from {html.escape(name)} (an internal error; see the log).", gr.skip()
        finally:
            if upload:
                forget_upload(upload)
        again = " (all of them were already imported)" if result.added == 0 and result.reports else ""
        line = (
            f"Imported {result.reports} report(s) of {result.patients} patient(s) from {html.escape(name)}: "
            f"{result.added} new section(s){again}. Identifiers were removed; the file was deleted."
        )
        text = panel_text(self.settings, getattr(session, "study", None))
        return line, (gr.update(value=text, visible=True) if text else gr.skip())
