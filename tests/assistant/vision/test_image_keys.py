"""Image ids that reach the audit trail are keyed (HMAC under the de-identification salt), not content hashes."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.imaging.deid import Pseudonymizer, load_or_create_salt
from assistant.llm.client import ChatMessage, GenerationOptions
from assistant.modes.chat import ChatService
from assistant.settings import load_settings
from assistant.store.audit import AuditLog
from assistant.vision.cache import image_key
from assistant.vision.profiles import BUILTIN_PROFILES
from assistant.vision.service import VisionService
from tests.assistant.vision.conftest import random_rendering

SALT = b"radassist-vision-test-salt"


class _ScriptedModel:
    """A chat model with a fixed answer (the ChatModel interface)."""

    model_id = "scripted"

    def stream_chat(self, messages: list[ChatMessage], options: GenerationOptions | None = None):  # type: ignore[no-untyped-def]
        yield "No acute finding."


def test_attachment_keys_are_hmacs_of_the_content_hash_under_the_salt() -> None:
    image = random_rendering(1)
    service = VisionService(BUILTIN_PROFILES["medgemma"], keys=Pseudonymizer(SALT))
    keys = service.attach([image]).image_keys
    assert keys == (Pseudonymizer(SALT).image_key(image_key(image)),)
    assert image_key(image) not in keys[0]
    other = VisionService(BUILTIN_PROFILES["medgemma"], keys=Pseudonymizer(SALT + b"-other-site"))
    assert other.attach([image]).image_keys != keys  # another salt, unlinkable ids
    assert service.attach([image.copy()]).image_keys == keys  # the same picture, the same id


def test_from_settings_uses_the_salt_ingest_uses(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data")
    image = random_rendering(2)
    keys = VisionService.from_settings(settings).attach([image]).image_keys
    salt = load_or_create_salt(settings.data_dir)
    assert keys == (Pseudonymizer(salt).image_key(image_key(image)),)


def test_without_keys_the_ids_are_still_keyed() -> None:
    image = random_rendering(3)
    keys = VisionService.text_only().attach([image]).image_keys
    assert len(keys) == 1 and keys[0].startswith("I-") and image_key(image) not in keys[0]


def test_the_audit_row_holds_keyed_ids_and_never_the_content_hash(tmp_path: Path) -> None:
    image = random_rendering(4)
    service = VisionService(BUILTIN_PROFILES["medgemma"], keys=Pseudonymizer(SALT))
    audit = AuditLog(tmp_path / "audit.sqlite3")
    try:
        chat = ChatService(_ScriptedModel(), GenerationOptions(), audit, service)  # type: ignore[arg-type]
        chat.answer("Any nodule?", images=[image])
        rows = audit.recent()
    finally:
        audit.close()
    assert rows[0].chunk_ids == (Pseudonymizer(SALT).image_key(image_key(image)),)
    raw = (tmp_path / "audit.sqlite3").read_bytes() + json.dumps([r.chunk_ids for r in rows]).encode()
    assert image_key(image).encode() not in raw
