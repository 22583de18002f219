"""radassist's conversation engine. This module is its public face: front ends import only from here.

Importing it does no work: no model, index or network is touched until a function is called.
"""

from assistant.chat import Answer, ChatService, Turn
from assistant.errors import (
    ConfigurationError,
    EngineStartError,
    IngestError,
    LLMUnavailableError,
    ModelPreparationError,
    RadassistError,
    RetrievalError,
)
from assistant.runtime import Runtime, open_runtime
from assistant.settings import Settings, load_settings

NOT_FOR_CLINICAL_USE = (
    "Research prototype — not for clinical use. Every output must be checked by a qualified radiologist."
)

__all__ = [
    "NOT_FOR_CLINICAL_USE",
    "Answer",
    "ChatService",
    "ConfigurationError",
    "EngineStartError",
    "IngestError",
    "LLMUnavailableError",
    "ModelPreparationError",
    "RadassistError",
    "RetrievalError",
    "Runtime",
    "Settings",
    "Turn",
    "load_settings",
    "open_runtime",
]
