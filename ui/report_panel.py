"""The report draft panel: the live draft as HTML, its version list and Markdown preview, the template choices."""

from __future__ import annotations

import html
from typing import NamedTuple

from assistant import ReportStore, empty_sections, list_templates, report_markdown

AUTO_TEMPLATE = "auto (from the study)"
NO_DRAFT = "<p class='ra-muted'>No draft yet: switch to Report draft and dictate, or press New draft.</p>"


class DraftView(NamedTuple):
    """The panel's draft and its version list, in the order app.py wires them (report view, versions)."""

    report: str
    versions: str


def draft_view(store: ReportStore, report_id: str | None) -> DraftView:
    """The draft ``report_id`` as the panel shows it (a placeholder when there is none, or when it is not the
    owner's: ``store`` is the tab owner's view, ``ReportStore.as_owner``)."""
    return DraftView(report_html(store, report_id), report_versions(store, report_id))


def report_templates() -> list[str]:
    """The template choices: the study's own first, then every report template."""
    return [AUTO_TEMPLATE, *list_templates()]


def report_html(store: ReportStore, report_id: str | None) -> str:
    """The live draft: sections in order, unconfirmed statements highlighted, missing sections named."""
    if report_id is None or not store.exists(report_id):
        return NO_DRAFT
    current = store.current(report_id)
    report = current.report
    out = [f"<div class='ra-report'><h3>{html.escape(report.title)}</h3>"]
    out.append(
        f"<p class='ra-muted'>Draft {html.escape(report.report_id)} · {html.escape(report.template_ref)} · "
        f"version {current.number} · {len(report.unconfirmed)} unconfirmed</p>"
    )
    heading = None
    for part in report.parts:
        section_heading = part.section.heading
        if section_heading != heading:
            out.append(f"<h4>{html.escape(section_heading)}</h4>")
            heading = section_heading
        if not part.statements:
            if part.slot.startswith("findings."):
                continue
            out.append("<p class='ra-muted'>—</p>")
            continue
        label = f"<b>{html.escape(part.title)}:</b> " if part.slot.startswith("findings.") else ""
        spans = []
        for st in part.statements:
            cls = "ra-confirmed" if st.confirmed else "ra-unconfirmed"
            tip = f"{st.origin.value}{'' if st.confirmed else ', unconfirmed'}"
            cite = f" <span class='ra-cite'>[{html.escape(st.citation)}]</span>" if st.citation else ""
            spans.append(f"<span class='{cls}' title='{html.escape(tip)}'>{html.escape(st.text)}</span>{cite}")
        out.append(f"<p>{label}{' '.join(spans)}</p>")
    if report.changes:  # what changed since the patient's prior report (assistant.report.priors)
        items = "".join(f"<li>{html.escape(c.text)}</li>" for c in report.changes)
        out.append(f"<h4>Changes since the prior report</h4><ul class='ra-changes'>{items}</ul>")
    if missing := empty_sections(report):
        out.append(f"<p class='ra-muted'>Missing: {html.escape(', '.join(missing))}</p>")
    if report.questions:
        out.append(f"<p class='ra-muted'>Open: {html.escape(' '.join(report.questions))}</p>")
    out.append("</div>")
    return "\n".join(out)


def report_versions(store: ReportStore, report_id: str | None) -> str:
    """The draft's last 20 versions, newest first, as a Markdown list."""
    if report_id is None or not store.exists(report_id):
        return ""
    versions = store.history(report_id)
    return "\n".join(f"- v{v.number} · {v.action} · {v.summary}" for v in reversed(versions[-20:]))


def report_preview_markdown(store: ReportStore, report_id: str | None) -> str:
    """The draft as the Markdown export shows it ("" when there is none for the store's owner)."""
    if report_id is None or not store.exists(report_id):
        return ""
    current = store.current(report_id)
    return report_markdown(current.report, current.number)
