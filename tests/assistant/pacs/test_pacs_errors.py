"""A dead PACS, wrong credentials, a missing study, a PACS that never answers: each a specific, clear error that
names the PACS but never its password, and nothing imported."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError
from assistant.pacs import (
    PacsAuthError,
    PacsClient,
    PacsError,
    PacsNotFoundError,
    PacsTimeoutError,
    PacsUnreachableError,
    StudyQuery,
    open_study,
)
from assistant.settings import PacsEndpoint, Settings, load_settings
from tests.assistant.pacs.conftest import PATIENT_ID, Seeded
from tests.support.http import free_port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers (a hung PACS)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/dicom-web"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_dead_pacs_is_reported_as_unreachable_by_name() -> None:
    endpoint = PacsEndpoint("main", f"http://127.0.0.1:{free_port()}/dicom-web", "u", "hunter2-secret")
    with pytest.raises(PacsUnreachableError, match="PACS 'main'.*cannot be reached") as err:
        PacsClient(endpoint).find_studies(StudyQuery(patient_id=PATIENT_ID))
    assert "hunter2-secret" not in str(err.value) and PATIENT_ID not in str(err.value)


def test_a_wrong_password_is_reported_as_refused_credentials(seeded_pacs: Seeded, tmp_path: Path) -> None:
    settings = seeded_pacs.settings(tmp_path, pacs_password="wrong-password")
    with pytest.raises(PacsAuthError, match=r"refused the credentials \(HTTP 401\)") as err:
        PacsClient(settings.pacs_endpoint()).find_studies(StudyQuery(patient_id=PATIENT_ID))
    assert "wrong-password" not in str(err.value)


def test_a_missing_study_is_not_found_and_a_missing_instance_is_a_404(seeded_pacs: Seeded, tmp_path: Path) -> None:
    settings = seeded_pacs.settings(tmp_path)
    client = PacsClient(settings.pacs_endpoint())
    with pytest.raises(PacsNotFoundError, match="no study with that Study Instance UID"):
        open_study(client, "1.2.3.4.5.6.7", settings)
    with pytest.raises(PacsNotFoundError, match="HTTP 404"):
        client.retrieve_instance(seeded_pacs.ct_study, seeded_pacs.ct_series, "1.2.3.4.5")


def test_a_pacs_that_never_answers_times_out(silent_server: str) -> None:
    client = PacsClient(PacsEndpoint("slow", silent_server, timeout_s=1.0))
    with pytest.raises(PacsTimeoutError, match=r"PACS 'slow'.*did not answer within 1 s"):
        client.find_studies(StudyQuery(patient_id=PATIENT_ID))


def test_a_study_uid_that_is_not_a_uid_never_reaches_a_url(seeded_pacs: Seeded, tmp_path: Path) -> None:
    client = PacsClient(seeded_pacs.settings(tmp_path).pacs_endpoint())
    with pytest.raises(PacsError, match="not a DICOM UID"):
        client.study("../../instances")


def test_pacs_settings_from_environment_and_toml_tables(tmp_path: Path) -> None:
    config = tmp_path / "radassist.toml"
    config.write_text(
        '[pacs.orthanc]\nurl = "http://127.0.0.1:8042/dicom-web"\nuser = "u"\npassword = "toml-secret"\n'
        '[pacs.cloud]\nurl = "https://dicom.example.org/v1/dicomWeb"\ntoken = "bearer-secret"\ntimeout_s = 5\n',
        encoding="utf-8",
    )
    env = {"RADASSIST_PACS_URL": "http://127.0.0.1:9/dicom-web", "RADASSIST_PACS_USER": "a",
           "RADASSIST_PACS_PASSWORD": "env-secret"}  # fmt: skip
    settings = load_settings(env, config_file=config)
    assert [e.name for e in settings.pacs_endpoints] == ["default", "orthanc", "cloud"]
    assert settings.pacs_endpoint("cloud").token == "bearer-secret"
    assert settings.pacs_endpoint("cloud").timeout_s == 5.0
    for secret in ("toml-secret", "bearer-secret", "env-secret"):
        assert secret not in repr(settings)
    with pytest.raises(ConfigurationError, match="several PACS are configured"):
        settings.pacs_endpoint()
    with pytest.raises(ConfigurationError, match="no PACS is named 'nope'"):
        settings.pacs_endpoint("nope")
    assert load_settings(env).pacs_endpoint().name == "default"  # one endpoint: no name needed


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"pacs_url": "ftp://host/dicom-web"}, "must start with http"),
        ({"pacs_url": "http://user:pw@host/dicom-web"}, "not in the url"),
        ({"pacs_url": "http://host/dicom-web", "pacs_user": "u"}, "set together"),
        ({"pacs_user": "u", "pacs_password": "p"}, "pacs_url is not"),
        ({}, "no PACS is configured"),
    ],
)
def test_bad_pacs_settings_are_named(changes: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Settings(**changes).pacs_endpoint()  # type: ignore[arg-type]
