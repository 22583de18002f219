"""Errors of the retrieval layer; the assistant translates them into its own error types."""

from __future__ import annotations


class RetrievalError(Exception):
    """An index or knowledge base cannot be built, loaded or searched; the message is safe to show."""


class EmbeddingModelMismatchError(RetrievalError):
    """The index was built with another embedding model (or dimension) than the one now configured."""


class PatientKeyRequiredError(RetrievalError):
    """Prior reports may only be searched for one named patient."""
