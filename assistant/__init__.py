"""radassist's conversation engine. This module is its public face: front ends import only from here.

Importing it does no work: no model, index or network is touched until a function is called.
"""

from assistant.errors import (
    ConfigurationError,
    EngineStartError,
    IngestError,
    LLMUnavailableError,
    ModelPreparationError,
    RadassistError,
    RetrievalError,
)
from assistant.guidelines import (
    CALCULATORS,
    CalculatorInputError,
    Extraction,
    GuidelineResult,
    calculate,
    extract_parameters,
)
from assistant.guidelines.forms import CALCULATOR_FORMS, calculator_params
from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.ingest import FileOutcome, IngestResult, load_study
from assistant.imaging.study import Image, Series, Study, WindowPreset, render
from assistant.modes.answer import Answer, Turn
from assistant.modes.chat import ChatService
from assistant.modes.facts import PriorSummary
from assistant.modes.grounded import GroundedService
from assistant.modes.guideline import GuidelineService
from assistant.modes.mode import Mode, choose_mode
from assistant.pacs import (
    OpenProgress,
    PacsClient,
    PacsError,
    StudyMatch,
    StudyQuery,
    find_priors,
    import_pacs_priors,
    open_study,
    prepare_report,
    send_report,
)
from assistant.priors import ImportResult, import_priors
from assistant.report.draft import ReportError, StudyRef, list_templates, load_report_template
from assistant.report.export import ExportFormat, empty_sections, export_report
from assistant.report.export import to_markdown as report_markdown
from assistant.report.service import DraftingService
from assistant.report.store import ReportStore
from assistant.runtime import AnswerEvent, AskContext, Runtime, open_runtime, priors_for_study, shared_embedder
from assistant.settings import Settings, load_settings
from assistant.startup import RuntimeNotReady, RuntimeStarter, StartupState, StartupStatus
from assistant.store.audit import AuditLog, record_burned_in_text, record_priors_import
from assistant.store.conversations import (
    ChatEntry,
    ChatInfo,
    ChatNotFound,
    ChatSessionStore,
    ChatStoreError,
    SavedChat,
    SaveResult,
)
from assistant.store.db import ensure_private_dir
from assistant.store.users import UserError, UserStore, check_user_name
from assistant.vision.profiles import ImageInput
from assistant.vision.service import (
    SimilarCase,
    View,
    VisionService,
    image_in_view,
    images_from_study,
    images_in_views,
    series_views,
)
from assistant.vision.volume import volume_in_view

NOT_FOR_CLINICAL_USE = (
    "Research prototype — not for clinical use. Every output must be checked by a qualified radiologist."
)

__all__ = [
    "volume_in_view",
    "AuditLog",
    "record_burned_in_text",
    "record_priors_import",
    "OpenProgress",
    "PacsClient",
    "PacsError",
    "StudyMatch",
    "StudyQuery",
    "find_priors",
    "import_pacs_priors",
    "open_study",
    "prepare_report",
    "send_report",
    "CALCULATORS",
    "CALCULATOR_FORMS",
    "ChatEntry",
    "ChatInfo",
    "ChatNotFound",
    "ChatSessionStore",
    "ChatStoreError",
    "DraftingService",
    "SavedChat",
    "SaveResult",
    "ExportFormat",
    "ImageInput",
    "Pseudonymizer",
    "ReportError",
    "ReportStore",
    "StudyRef",
    "View",
    "VisionService",
    "calculator_params",
    "empty_sections",
    "ensure_private_dir",
    "export_report",
    "image_in_view",
    "images_from_study",
    "images_in_views",
    "series_views",
    "list_templates",
    "load_report_template",
    "report_markdown",
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
    "Mode",
    "ModelPreparationError",
    "RadassistError",
    "RetrievalError",
    "AnswerEvent",
    "AskContext",
    "ImportResult",
    "PriorSummary",
    "import_priors",
    "priors_for_study",
    "shared_embedder",
    "Runtime",
    "RuntimeNotReady",
    "RuntimeStarter",
    "StartupState",
    "StartupStatus",
    "Settings",
    "SimilarCase",
    "Turn",
    "UserError",
    "UserStore",
    "check_user_name",
    "choose_mode",
    "load_settings",
    "open_runtime",
]
