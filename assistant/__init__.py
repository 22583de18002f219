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
from assistant.grounded import GroundedService
from assistant.guideline_mode import GuidelineService
from assistant.guidelines import (
    CALCULATORS,
    CalculatorInputError,
    Extraction,
    GuidelineResult,
    calculate,
    extract_parameters,
)
from assistant.imaging import Image, Series, Study, WindowPreset, render
from assistant.ingest import FileOutcome, IngestResult, load_study
from assistant.runtime import Runtime, open_runtime
from assistant.settings import Settings, load_settings

NOT_FOR_CLINICAL_USE = (
    "Research prototype — not for clinical use. Every output must be checked by a qualified radiologist."
)

__all__ = [
    "CALCULATORS",
    "NOT_FOR_CLINICAL_USE",
    "CalculatorInputError",
    "Extraction",
    "FileOutcome",
    "GuidelineResult",
    "Image",
    "IngestResult",
    "Series",
    "Study",
    "WindowPreset",
    "calculate",
    "extract_parameters",
    "load_study",
    "render",
    "Answer",
    "ChatService",
    "ConfigurationError",
    "EngineStartError",
    "GroundedService",
    "GuidelineService",
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
