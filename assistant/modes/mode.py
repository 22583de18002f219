"""Answering modes and how ``auto`` picks one for a question."""

from __future__ import annotations

import re
from enum import StrEnum

from assistant.errors import ConfigurationError
from assistant.guidelines.extract import detect_calculator


class Mode(StrEnum):
    """How a question is answered."""

    AUTO = "auto"  # guideline when the question is about a guideline or a finding one covers, else chat
    CHAT = "chat"  # plain chat with the model, no sources
    GUIDELINE = "guideline"  # calculators, exact categories, knowledge-base citations
    GROUNDED = "grounded"  # answered from guideline sections and the current patient's priors, with citations
    FACTS = "facts"  # study metadata (modality, slice thickness, ...) read from the de-identified header by code


# A guideline named outright: with a study open, such a question still goes to the calculators.
_NAMED_GUIDELINE = re.compile(
    r"\b(?:fleischner|lung[\s-]?rads|ti[\s-]?rads|bi[\s-]?rads|li[\s-]?rads|bosniak|o[\s-]?rads|pi[\s-]?rads)\b", re.I
)

# A question about the study on screen that looks back in time: this patient's prior reports go with it.
_COMPARES = re.compile(
    r"\b(?:priors?|previous(?:ly)?|earlier|before|last (?:study|exam|scan|ct|mri?|film|x-?ray|report)|compar\w*|"
    r"chang\w*|since|interval\w*|grow\w*|grew|enlarg\w*|shr[ai]n\w*|progress\w*|stable|stability|new|resolv\w*|"
    r"improv\w*|worse\w*|follow[\s-]?up)\b",
    re.I,
)


def compares_with_priors(question: str) -> bool:
    """Whether a question about the study asks how it relates to earlier ones ("has the nodule grown?")."""
    return bool(_COMPARES.search(question))


def choose_mode(
    question: str, mode: Mode | str = Mode.AUTO, *, patient_key: str | None = None, has_images: bool = False
) -> Mode:
    """The mode that answers ``question``: ``mode`` itself unless it is ``auto``.

    ``auto``: a question about attached images is study Q&A (chat), even if it names a nodule, unless it names a
    guideline outright ("per Fleischner", "TI-RADS"): that goes to the calculators; with a patient key it is
    grounded in that patient's priors; otherwise guideline mode when a calculator covers it.
    """
    try:
        chosen = Mode(mode)
    except ValueError:
        allowed = ", ".join(m.value for m in Mode)
        raise ConfigurationError(f"mode={mode!r} is not one of: {allowed}") from None
    if chosen is not Mode.AUTO:
        return chosen
    if has_images:
        named = _NAMED_GUIDELINE.search(question) and detect_calculator(question) is not None
        return Mode.GUIDELINE if named else Mode.CHAT
    if patient_key:
        return Mode.GROUNDED
    return Mode.GUIDELINE if detect_calculator(question) is not None else Mode.CHAT
