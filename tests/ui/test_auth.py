"""Who gets in: accounts (the settings' pair and the users table), an SSO proxy's header from trusted addresses only,
the single-user mode on loopback, and a refused start beyond loopback without log-in. Session folders are never
served; the browser gets copies in Gradio's cache."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import pytest

from assistant import ConfigurationError, Runtime, UserStore
from assistant.llm.engine import free_port
from ui.app import (
    ACCOUNTS,
    NO_LOGIN,
    PROXY,
    SINGLE_USER,
    check_listen,
    create_app,
    launch,
    login_mode,
    prepare_launch,
    prepare_temp,
    request_user,
)
from ui.session import sessions_root

Launched = Callable[..., tuple[str, Runtime]]


@pytest.fixture()
def launched(make_runtime: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Launched]:
    """Start the real app on a free loopback port with the launch options the product uses; yields its URL."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", "")  # restored afterwards: prepare_temp points it into the data dir
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")  # restored afterwards; prepare_launch clears it
    apps: list[Any] = []
    stores: list[UserStore] = []

    def start(
        setup: Callable[[UserStore], None] | None = None,
        extend: Callable[[Any, Runtime], None] | None = None,
        **settings: object,
    ) -> tuple[str, Runtime]:
        runtime = make_runtime(["hello"], **settings)
        users = UserStore.from_settings(runtime.settings)
        stores.append(users)
        if setup is not None:
            setup(users)
        mode = login_mode(runtime.settings, users)
        options = prepare_launch(runtime.settings, users, mode)
        prepare_temp(runtime)
        app = create_app(runtime, login=mode)
        if extend is not None:
            extend(app, runtime)
        app.queue()
        port = free_port()
        app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **options)
        apps.append(app)
        return f"http://127.0.0.1:{port}", runtime

    yield start
    for app in apps:
        app.close()
    for users in stores:
        users.close()


def session_file(runtime: Runtime) -> Path:
    """A rendering as the viewer writes it, in a session folder."""
    path = sessions_root(runtime.settings.data_dir) / "abc" / "view-1.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG")
    return path.resolve()


# ---------------------------------------------------------------------------------------------- accounts


def test_unauthenticated_requests_are_refused(launched: Launched) -> None:
    url, runtime = launched(auth_user="rad", auth_password="s3cret-pass")
    rendering = session_file(runtime)
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        assert anonymous.get("/config").status_code == 401
        call = anonymous.post("/gradio_api/call/chat", json={"data": ["effusion?"]})
        assert call.status_code == 401
        assert anonymous.get(f"/gradio_api/file={rendering}").status_code in (401, 403)  # renderings too
        assert anonymous.post("/login", data={"username": "rad", "password": "wrong"}).status_code == 400


def test_the_settings_pair_still_logs_in_and_session_folders_are_never_served(launched: Launched) -> None:
    url, runtime = launched(auth_user="rad", auth_password="s3cret-pass")
    rendering = session_file(runtime)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/login", data={"username": "rad", "password": "s3cret-pass"}).status_code == 200
        config = client.get("/config")
        assert config.status_code == 200 and config.json()["username"] == "rad"
        assert str(sessions_root(runtime.settings.data_dir).resolve()) not in config.text
        assert client.get(f"/gradio_api/file={rendering}").status_code == 403  # logged in or not
        assert config.json()["run_history"] is False  # no copy of inputs and outputs kept in the browser


def test_accounts_from_the_users_table_log_in_and_removal_logs_out(launched: Launched) -> None:
    holder: dict[str, UserStore] = {}

    def add_alice(users: UserStore) -> None:
        users.add("alice", "correct horse")
        holder["users"] = users

    url, _ = launched(add_alice)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/login", data={"username": "alice", "password": "wrong horse"}).status_code == 400
        assert client.post("/login", data={"username": "alice", "password": "correct horse"}).status_code == 200
        assert client.get("/config").json()["username"] == "alice"
        holder["users"].remove("alice")  # `radassist users remove alice` while the app runs
        assert client.get("/config").status_code == 401
        assert client.post("/login", data={"username": "alice", "password": "correct horse"}).status_code == 400


def test_with_accounts_a_log_out_button_ends_the_log_in(launched: Launched) -> None:
    url, runtime = launched(auth_user="rad", auth_password="s3cret-pass")
    button = block_by_id(create_app(runtime, login=ACCOUNTS), "ra-logout")
    assert button.visible is True and button.link == "/logout"
    assert block_by_id(create_app(runtime, login=SINGLE_USER), "ra-logout").visible is False
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/login", data={"username": "rad", "password": "s3cret-pass"}).status_code == 200
        assert client.get("/config").status_code == 200
        client.get(button.link)  # what the button opens
        assert client.get("/config").status_code == 401


# ---------------------------------------------------------------------------------------------- SSO proxy


def fake_request(host: str | None, headers: dict[str, str], username: str | None = None) -> Any:
    """What the transport gives: the peer's address and the headers (as Starlette and gr.Request expose them)."""
    return SimpleNamespace(client=SimpleNamespace(host=host) if host else None, headers=headers, username=username)


@pytest.fixture()
def proxied(make_runtime: Any) -> Any:
    runtime = make_runtime(
        [], auth_proxy_header="Remote-User", auth_trusted_proxies="10.0.0.5, 192.168.10.0/24, ::1"
    )  # fmt: skip
    return runtime.settings


@pytest.mark.parametrize(
    ("host", "headers", "user"),
    [
        ("10.0.0.5", {"Remote-User": "alice"}, "alice"),
        ("192.168.10.77", {"remote-user": "Alice@Hospital.org"}, "alice@hospital.org"),  # any case, one name
        ("::ffff:10.0.0.5", {"Remote-User": "alice"}, "alice"),  # an IPv4 peer on a dual-stack socket
        ("::1", {"Remote-User": "alice"}, "alice"),
        ("10.0.0.6", {"Remote-User": "alice"}, None),  # not the proxy: the header is a forgery
        ("192.168.11.1", {"Remote-User": "alice"}, None),
        ("127.0.0.1", {"Remote-User": "alice", "X-Forwarded-For": "10.0.0.5"}, None),
        (None, {"Remote-User": "alice"}, None),
        ("10.0.0.5", {}, None),  # the proxy let a request through without a user
        ("10.0.0.5", {"X-Forwarded-User": "alice"}, None),  # another header than the configured one
        ("10.0.0.5", {"Remote-User": "alice, mallory"}, None),
        ("10.0.0.5", {"Remote-User": ""}, None),
    ],
)
def test_the_proxy_header_is_honoured_only_from_a_trusted_address(
    proxied: Any, host: str | None, headers: dict[str, str], user: str | None
) -> None:
    assert request_user(fake_request(host, headers), proxied) == user


def test_a_repeated_proxy_header_is_refused(proxied: Any) -> None:
    class Repeated:
        def items(self) -> list[tuple[str, str]]:
            return [("remote-user", "alice"), ("remote-user", "mallory")]

    assert request_user(fake_request("10.0.0.5", Repeated()), proxied) is None  # type: ignore[arg-type]


def test_without_a_proxy_configured_the_header_means_nothing(make_runtime: Any) -> None:
    settings = make_runtime([]).settings
    assert request_user(fake_request("10.0.0.5", {"Remote-User": "alice"}), settings) is None
    assert request_user(fake_request("10.0.0.5", {"Remote-User": "alice"}, username="bob"), settings) == "bob"


def test_a_proxied_app_lets_in_only_what_the_trusted_proxy_names(launched: Launched) -> None:
    url, _ = launched(auth_proxy_header="X-Forwarded-User", auth_trusted_proxies="127.0.0.1")
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/config").status_code == 401
        config = client.get("/config", headers={"X-Forwarded-User": "carol"})
        assert config.status_code == 200 and config.json()["username"] == "carol"
        assert client.post("/login", data={"username": "x", "password": "y"}).status_code != 200


def test_a_forwarded_for_header_cannot_borrow_the_proxy_address(launched: Launched) -> None:
    # Only 10.0.0.5 is trusted; a local process claiming to forward for it must not be believed (uvicorn would
    # rewrite the peer address from X-Forwarded-For on loopback connections unless told not to).
    url, _ = launched(auth_proxy_header="Remote-User", auth_trusted_proxies="10.0.0.5")
    with httpx.Client(base_url=url, timeout=30) as client:
        forged = client.get("/config", headers={"Remote-User": "admin", "X-Forwarded-For": "10.0.0.5"})
        assert forged.status_code == 401


# ---------------------------------------------------------------------------------------------- who may start


def test_start_beyond_loopback_without_log_in_is_refused(make_runtime: Any) -> None:
    runtime = make_runtime([], host="0.0.0.0")
    with pytest.raises(ConfigurationError) as refused:
        launch(runtime)  # refused before anything is served
    message = str(refused.value)
    assert "0.0.0.0" in message and "radassist users add" in message
    assert "RADASSIST_AUTH_USER" in message and "RADASSIST_AUTH_PROXY_HEADER" in message
    assert "RADASSIST_AUTH_TRUSTED_PROXIES" in message


def test_an_account_or_a_proxy_lets_the_app_listen_beyond_loopback(make_runtime: Any, tmp_path: Path) -> None:
    settings = make_runtime([], host="0.0.0.0").settings
    users = UserStore(settings.db_path)
    try:
        assert login_mode(settings, users) == NO_LOGIN
        users.add("alice", "correct horse")
        assert login_mode(settings, users) == ACCOUNTS
        check_listen(settings, ACCOUNTS)
    finally:
        users.close()
    proxied = settings.replace(auth_proxy_header="Remote-User", auth_trusted_proxies="10.0.0.5")
    assert login_mode(proxied) == PROXY
    check_listen(proxied, PROXY)
    legacy = settings.replace(auth_user="rad", auth_password="s3cret-pass")
    assert login_mode(legacy) == ACCOUNTS


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"auth_proxy_header": "Remote-User"}, "needs auth_trusted_proxies"),
        ({"auth_trusted_proxies": "10.0.0.5"}, "auth_proxy_header is not"),
        ({"auth_proxy_header": "Remote User", "auth_trusted_proxies": "10.0.0.5"}, "HTTP header name"),
        ({"auth_proxy_header": "Remote-User", "auth_trusted_proxies": "proxy.local"}, "not an IP address"),
        ({"auth_proxy_header": "Remote-User", "auth_trusted_proxies": "0.0.0.0/0"}, "trusts every address"),
    ],
)
def test_proxy_settings_are_checked_at_start(make_runtime: Any, settings: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        make_runtime([], **settings)


# ---------------------------------------------------------------------------------------------- the page


def block_by_id(app: Any, elem_id: str) -> Any:
    return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_loopback_without_log_in_says_it_is_single_user(make_runtime: Any) -> None:
    runtime = make_runtime([])
    assert login_mode(runtime.settings) == SINGLE_USER
    app = create_app(runtime)
    notice = block_by_id(app, "ra-access").value
    assert "Single-user mode" in notice and "127.0.0.1" in notice and "radassist users add" in notice


def test_with_log_in_the_page_names_the_user_instead(make_runtime: Any) -> None:
    app = create_app(make_runtime([], auth_user="rad", auth_password="s3cret-pass"))
    assert "Single-user" not in (block_by_id(app, "ra-access").value or "")
    signed_in = next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == "signed_in")
    assert signed_in(fake_request("127.0.0.1", {}, username="rad")).startswith("Signed in as `rad`")


def test_a_rendering_reaches_the_browser_as_a_cached_copy_and_its_folder_is_never_served(
    launched: Launched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The data dir is neither under the working directory nor under the system temp dir (as /var/lib/radassist
    # would be), where Gradio copies from only the folders it is allowed to.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-temp"))
    renderings: list[Path] = []

    def show_a_rendering(app: Any, runtime: Runtime) -> None:
        renderings.append(session_file(runtime))
        with app:  # one more event on the real app: returns a session file to the viewer, as the handlers do
            gr.Button(visible=False).click(lambda: str(renderings[0]), None, block_by_id(app, "ra-image"),
                                           api_name="show_rendering")  # fmt: skip

    url, runtime = launched(extend=show_a_rendering)
    with httpx.Client(base_url=url, timeout=30) as client:
        event = client.post("/gradio_api/call/show_rendering", json={"data": []}).json()["event_id"]
        stream = client.get(f"/gradio_api/call/show_rendering/{event}").text
        sent = json.loads(next(line for line in stream.splitlines() if line.startswith("data:"))[5:])[0]
        sessions = str(sessions_root(runtime.settings.data_dir).resolve())
        assert sessions not in json.dumps(sent)  # neither the path nor the URL names the session folder
        assert Path(sent["path"]).read_bytes() == renderings[0].read_bytes()
        assert client.get(sent["url"]).status_code == 200  # the copy in Gradio's cache is what is served
        assert client.get(f"/gradio_api/file={renderings[0]}").status_code == 403
        climbing = f"{sessions}/../sessions/abc/view-1.png"
        assert client.get(f"/gradio_api/file={climbing}").status_code == 403
