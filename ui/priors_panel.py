"""The "Prior reports" panel: the open study's patient's priors (relative date, modality, impression).

Shown once a study is loaded; "no prior reports found for this patient" when there are none. The lookup needs no
LLM (only the settings), so it works while the engine is still starting.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from assistant import PriorSummary, RadassistError, Settings, Study, priors_for_study

logger = logging.getLogger(__name__)

TITLE = "#### Prior reports"
NONE_FOUND = "no prior reports found for this patient"
NO_KEY = "no prior reports: this study carries no patient ID to link them by"
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
