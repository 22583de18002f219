"""With a username and password configured, the app refuses anything unauthenticated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.llm.engine import free_port
from ui.app import create_app, prepare_temp


@pytest.fixture()
def protected_app(make_runtime: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    runtime = make_runtime(["hello"], auth_user="rad", auth_password="s3cret-pass")
    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # restored afterwards: prepare_temp points it into the data dir
    prepare_temp(runtime)
    app = create_app(runtime)
    app.queue()
    port = free_port()
    app.launch(
        server_name="127.0.0.1", server_port=port, share=False, prevent_thread_lock=True, quiet=True,
        auth=(runtime.settings.auth_user, runtime.settings.auth_password),
    )  # fmt: skip
    secret = runtime.settings.data_dir / "tmp" / "sessions" / "abc" / "view-1.png"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_bytes(b"\x89PNG")
    try:
        yield f"http://127.0.0.1:{port}", secret.resolve()
    finally:
        app.close()


def test_unauthenticated_requests_are_refused(protected_app: tuple[str, Path]) -> None:
    url, session_file = protected_app
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        assert anonymous.get("/config").status_code == 401
        call = anonymous.post("/gradio_api/call/chat", json={"data": ["effusion?"]})
        assert call.status_code == 401
        assert anonymous.get(f"/gradio_api/file={session_file}").status_code in (401, 403)  # renderings too
        assert anonymous.post("/login", data={"username": "rad", "password": "wrong"}).status_code == 400


def test_the_right_password_opens_the_app(protected_app: tuple[str, Path]) -> None:
    url, session_file = protected_app
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/login", data={"username": "rad", "password": "s3cret-pass"}).status_code == 200
        assert client.get("/config").status_code == 200
        assert client.get(f"/gradio_api/file={session_file}").status_code == 200
