"""Templates are data files; every one has the six sections and unconfirmed normal defaults."""

from __future__ import annotations

import pytest

from assistant.report.draft import (
    Origin,
    ReportError,
    Section,
    choose_template,
    create_report,
    list_templates,
    load_report_template,
    render_text,
)

EXPECTED = {"cxr", "ct_chest", "ct_abdomen_pelvis", "mri_brain", "us_thyroid", "mammo_screening"}


def test_the_six_templates_exist_as_data_files() -> None:
    assert EXPECTED <= set(list_templates())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_new_draft_has_every_section_and_only_unconfirmed_defaults(name: str) -> None:
    template = load_report_template(name)
    report = create_report(template)
    sections = {p.section for p in report.parts}
    assert sections == set(Section)
    assert len([p for p in report.parts if p.section is Section.FINDINGS]) >= 3  # organ subsections
    statements = [s for _, s in report.statements()]
    assert statements and all(s.origin is Origin.TEMPLATE and not s.confirmed for s in statements)
    assert "[unconfirmed]" in render_text(report)
    assert report.template_ref == f"{name}@{template.version}"


@pytest.mark.parametrize(
    ("modality", "body_part", "description", "expected"),
    [
        ("CR", "CHEST", None, "cxr"),
        ("DX", None, None, "cxr"),
        ("CT", "CHEST", None, "ct_chest"),
        ("CT", "ABDOMEN", None, "ct_abdomen_pelvis"),
        ("CT", None, "CT abdomen pelvis with contrast", "ct_abdomen_pelvis"),
        ("MR", "HEAD", None, "mri_brain"),
        ("US", "THYROID", None, "us_thyroid"),
        ("MG", None, None, "mammo_screening"),
    ],
)
def test_the_template_follows_modality_and_body_part(
    modality: str, body_part: str | None, description: str | None, expected: str
) -> None:
    assert choose_template(modality, body_part, description).template == expected


def test_an_unclear_study_asks_which_template() -> None:
    choice = choose_template("CT", None, None)
    assert choice.needs_question
    assert {"ct_chest", "ct_abdomen_pelvis"} <= set(choice.candidates)
    assert "Which report template?" in choice.question()


def test_a_body_part_without_a_template_is_asked_not_guessed() -> None:
    choice = choose_template("MR", "KNEE", None)
    assert choice.needs_question and "no template for MR of KNEE" in choice.question()


def test_an_unknown_template_is_named_with_the_known_ones() -> None:
    with pytest.raises(ReportError, match="no report template named 'xr_knee'.*ct_chest"):
        load_report_template("xr_knee")
