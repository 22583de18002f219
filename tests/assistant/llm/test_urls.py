"""The LLM URL's user:password never reaches a status line or a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import LLMUnavailableError, RadassistError
from assistant.llm.urls import redact_url
from assistant.runtime import credentials_hidden
from assistant.settings import load_settings
from assistant.startup import RuntimeNotReady, RuntimeStarter, StartupState, StartupStatus
from assistant.vision.service import VisionService

SECRET_URL = "http://alice:s3cr%40t:pw@llm.example.org:8000/v1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@host:8000", "http://***@host:8000"),
        ("https://token@host/v1", "https://***@host/v1"),
        (SECRET_URL, "http://***@llm.example.org:8000/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://host/path@not-userinfo", "http://host/path@not-userinfo"),
        ("", ""),
    ],
)
def test_redact_url_hides_userinfo_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_cleans_every_url_in_a_message() -> None:
    text = f"cannot connect to the LLM server at {SECRET_URL}/v1 (is it running?); also https://u:p@b.org"
    out = redact_url(text)
    assert "alice" not in out and "s3cr" not in out and "u:p" not in out
    assert out.startswith("cannot connect to the LLM server at http://***@llm.example.org:8000/v1")


def test_errors_leave_the_runtime_without_credentials() -> None:
    with pytest.raises(LLMUnavailableError) as caught, credentials_hidden():
        raise LLMUnavailableError(f"the LLM server at {SECRET_URL} timed out")
    assert "alice" not in str(caught.value) and "***@llm.example.org" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_startup_status_and_wait_never_show_credentials(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", llm_url=SECRET_URL)

    def opener(settings_, progress=None, vision=None):  # type: ignore[no-untyped-def]
        raise LLMUnavailableError(f"cannot connect to the LLM server at {settings_.llm_url} (is it running?)")

    starter = RuntimeStarter(settings, opener=opener, vision=VisionService.text_only(), retry_s=60.0).start()
    try:
        with pytest.raises(RuntimeNotReady) as caught:
            starter.wait(10.0)
        status = starter.status()
        assert status.state is StartupState.FAILED
        for text in (str(caught.value), str(caught.value.__cause__), status.describe(), status.error or ""):
            assert "alice" not in text and "s3cr" not in text
    finally:
        starter.close(5.0)


def test_status_line_of_a_step_never_shows_credentials() -> None:
    status = StartupStatus(StartupState.STARTING, f"connecting to {SECRET_URL}", 1.0)
    assert "alice" not in status.describe()
    failed = StartupStatus(StartupState.FAILED, "", 1.0, error=str(RadassistError(SECRET_URL)))
    assert "alice" not in failed.describe()
