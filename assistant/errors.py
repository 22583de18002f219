"""Errors whose messages are safe to show a clinician.

Third-party exceptions are translated where they occur (``raise ... from exc``); only the edges (CLI, UI)
turn these into messages. Messages never carry PHI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class RadassistError(Exception):
    """Base error: ``str(err)`` is a short, specific message fit for the user."""


class ConfigurationError(RadassistError):
    """A setting is missing, malformed or contradictory."""


class IngestError(RadassistError):
    """A study file could not be read or rendered."""


class LLMUnavailableError(RadassistError):
    """The language model server cannot be reached or stopped answering."""


class AnswerInterrupted(LLMUnavailableError):
    """The model stopped in the middle of an answer (the engine died or the connection broke): what arrived is
    incomplete and is shown marked as such; ``partial`` holds it."""

    def __init__(self, message: str, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


class EngineStartError(LLMUnavailableError):
    """The embedded vLLM engine failed to start; the message names the cause and the log file."""


class ModelPreparationError(RadassistError):
    """A model could not be found, converted or verified."""


class RetrievalError(RadassistError):
    """The knowledge base or prior-report index cannot be built, loaded or searched."""


@contextmanager
def translated_retrieval_errors() -> Iterator[None]:
    """Turn the retrieval layer's errors into the assistant's own (same message, safe to show)."""
    import retrieval  # the boundary: errors.py itself depends on nothing at import time

    try:
        yield
    except retrieval.RetrievalError as exc:
        raise RetrievalError(str(exc)) from exc
