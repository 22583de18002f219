"""deploy/compose.yaml and deploy/nginx.conf, checked without Docker: the structure docs/deploy.md promises, every
app variable through the real settings loader, the guideline index built once by a job and mounted read-only,
published ports on loopback, and the nginx config run for real (Debian's nginx) in front of two stub upstreams:
sticky by client address, and a stopped upstream's reader sent on.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from assistant.llm.engine import free_port
from assistant.runtime import check_bind_host
from assistant.settings import ENV_PREFIX, load_settings
from tests.support.http import wait_http

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = Path("/usr/sbin/nginx")
APPS = ("app-a", "app-b")
INDEX_JOB = "index-build"
# What deploy/.env would hold (env.example's names), for the ${...} interpolation docker compose does.
DOT_ENV = {
    "POSTGRES_PASSWORD": "test-password",
    "RADASSIST_BROWSER_SECRET": "ab" * 32,
    "MODEL_DIR": "/srv/models/medgemma",
}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default}, ${NAME:?error}; a missing required variable fails the test."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise AssertionError(f"compose would refuse to start: {arg}")
        return arg if op and op.endswith("-") else ""

    return _VAR.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)  # merge keys (<<: *app) resolved as compose resolves them
    assert isinstance(loaded, dict)
    return loaded


def _app_env(compose: dict[str, Any], service: str, dot_env: Mapping[str, str] = DOT_ENV) -> dict[str, str]:
    raw = compose["services"][service]["environment"]
    assert isinstance(raw, dict), "environment as a mapping"
    return {k: _interpolate(str(v), dot_env) for k, v in raw.items()}


def test_the_services_a_department_needs_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*APPS, INDEX_JOB, "nginx", "postgres", "vllm", "orthanc"}
    assert services["orthanc"]["profiles"] == ["pacs"]  # optional
    assert all("profiles" not in services[s] for s in services if s != "orthanc")
    # The two replicas: same image, same settings, their own data dirs.
    assert services["app-a"]["environment"] == services["app-b"]["environment"]
    assert services["app-a"]["image"] == services["app-b"]["image"]
    data = {s: [v for v in services[s]["volumes"] if v.endswith(":/data")] for s in APPS}
    assert len(data["app-a"]) == 1 and data["app-a"] != data["app-b"]
    build = services["app-a"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    for app in APPS:
        assert services[app]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "vllm" in services[app]["depends_on"]
    assert "healthcheck" in services["postgres"]
    # vLLM on a GPU, offline, serving the name the apps ask for.
    vllm = services["vllm"]
    [device] = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert vllm["environment"]["HF_HUB_OFFLINE"] == "1"
    for spec in services.values():  # an unquoted `--flag={"a": 1}` would be read as a mapping
        assert all(isinstance(arg, str) for arg in spec.get("command", [])), spec["command"]
    served = {a.split("=", 1)[1] for a in vllm["command"] if a.startswith("--served-model-name=")}
    assert served == {services["app-a"]["environment"]["RADASSIST_LLM_SERVED_NAME"]}
    # The shared salt is a secret from a file, and the apps read it there.
    assert set(compose["secrets"]) == {"deid_salt"}
    for app in APPS:
        assert services[app]["secrets"] == ["deid_salt"]
    assert compose["networks"]["back"]["internal"] is True
    assert set(services["postgres"]["networks"]) == {"back"} and set(services["vllm"]["networks"]) == {"back"}


def test_app_variables_are_real_settings_with_valid_values(compose: dict[str, Any]) -> None:
    env = _app_env(compose, "app-a")
    assert env.keys() - {k for k in env if k.startswith(ENV_PREFIX)} == {"PGPASSWORD"}  # libpq's own
    radassist = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    settings = load_settings(radassist)  # an unknown RADASSIST_* name or a bad value raises here
    assert settings.database_url == "postgresql://radassist@postgres:5432/radassist"
    assert "test-password" not in settings.database_url  # the password stays out of the URL
    assert settings.llm_urls and all(u.startswith("http://vllm:8000") for u in settings.llm_urls)
    assert settings.browser_secret == DOT_ENV["RADASSIST_BROWSER_SECRET"]
    assert settings.deid_salt_file == Path("/run/secrets/deid_salt")  # where compose mounts secret "deid_salt"
    assert settings.pacs_url is None  # empty unless set in .env
    command = compose["services"]["app-a"]["command"]
    check_bind_host(settings.host, allow_remote="--allow-remote" in command)  # would raise if the start is refused
    assert settings.port == 7860 and settings.data_dir == Path("/data")
    # With the PACS profile's URL set in .env, the value is still valid.
    with_pacs = _app_env(compose, "app-a", {**DOT_ENV, "RADASSIST_PACS_URL": "http://orthanc:8042/dicom-web"})
    assert load_settings({k: v for k, v in with_pacs.items() if k.startswith(ENV_PREFIX)}).pacs_url
    # Without the browser secret, compose refuses to start (replicas must not each make their own).
    with pytest.raises(AssertionError, match="RADASSIST_BROWSER_SECRET"):
        _app_env(compose, "app-a", {k: v for k, v in DOT_ENV.items() if k != "RADASSIST_BROWSER_SECRET"})


def _mounts(spec: dict[str, Any]) -> list[tuple[str, Path, bool]]:
    """A service's volumes as (volume name, mount point, read-only)."""
    out = []
    for entry in spec.get("volumes", []):
        name, target, *options = str(entry).split(":")
        out.append((name, Path(target), "ro" in options))
    return out


def test_the_guideline_index_is_built_once_by_a_job_and_mounted_read_only_into_every_replica(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    job = services[INDEX_JOB]
    assert job["image"] == services["app-a"]["image"] and job["build"] == services["app-a"]["build"]
    assert job["restart"] == "no" and "ports" not in job  # a one-off that exits
    command = job["command"]
    assert command[:3] == ["radassist", "index", "build"] and command[command.index("--corpus") + 1] == "guidelines"
    out = Path(command[command.index("--out") + 1])
    job_env = {k: _interpolate(str(v), DOT_ENV) for k, v in job["environment"].items()}
    job_settings = load_settings(job_env)  # an unknown RADASSIST_* name or a bad value raises here
    [(volume, job_mount, job_ro)] = [m for m in _mounts(job) if out.is_relative_to(m[1])]
    assert not job_ro and volume in compose["volumes"]
    assert not out.is_relative_to(job_settings.data_dir)  # the index is not in the job's throwaway data dir
    for app in APPS:
        app_settings = load_settings({k: v for k, v in _app_env(compose, app).items() if k.startswith(ENV_PREFIX)})
        shipped = app_settings.guideline_index
        assert shipped is not None, "the replicas load the shipped index, not one each builds"
        [(name, mount, read_only)] = [m for m in _mounts(services[app]) if m[0] == volume]
        assert read_only, f"{app} must mount {volume} read-only"
        assert shipped.relative_to(mount) == out.relative_to(job_mount)  # the folder the job wrote
        assert app_settings.embedding_model == job_settings.embedding_model  # else the replicas refuse the index
        assert services[app]["depends_on"][INDEX_JOB]["condition"] == "service_completed_successfully"


def test_published_ports_are_on_loopback(compose: dict[str, Any]) -> None:
    published = {s: spec.get("ports", []) for s, spec in compose["services"].items()}
    assert published["nginx"], "nginx is the way in"
    for service, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{service} publishes {port} beyond loopback"
    assert not published["postgres"] and not published["vllm"] and not any(published[a] for a in APPS)


def test_nginx_is_sticky_and_fronts_both_replicas(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    [mount] = [v for v in nginx["volumes"] if v.endswith(":/etc/nginx/nginx.conf:ro")]
    conf = (DEPLOY / mount.split(":")[0]).resolve()
    assert conf == DEPLOY / "nginx.conf" and conf.is_file()
    text = conf.read_text(encoding="utf-8")
    upstream = re.search(r"upstream radassist \{(.*?)\}", text, re.S)
    assert upstream is not None
    assert "ip_hash;" in upstream.group(1)
    servers = re.findall(r"server ([\w.-]+):(\d+)", upstream.group(1))
    port = load_settings(
        {k: v for k, v in _app_env(compose, "app-a").items() if k.startswith(ENV_PREFIX)}
    ).port
    assert sorted(servers) == [(a, str(port)) for a in APPS]
    assert "proxy_buffering off;" in text and "$http_upgrade" in text
    published = nginx["ports"][0].split(":")
    assert re.search(rf"listen {published[-1]};", text)


class _Named(ThreadingHTTPServer):
    name = ""


@contextmanager
def _upstream(name: str) -> Iterator[_Named]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _Named(("127.0.0.1", 0), Handler)
    server.name = name
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _local_conf(text: str, root: Path, listen: int, upstreams: Mapping[str, int]) -> str:
    """The shipped config with the compose service names as loopback ports and its paths under ``root``."""
    for name, port in upstreams.items():
        text, n = re.subn(rf"server {name}:7860", f"server 127.0.0.1:{port}", text)
        assert n == 1, name
    text, n = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen};", text)
    assert n == 1
    text = text.replace("/var/run/nginx.pid", str(root / "nginx.pid")).replace("/var/cache/nginx", str(root))
    text = text.replace("/dev/stdout", str(root / "access.log")).replace("/dev/stderr", str(root / "error.log"))
    return text


def test_the_shipped_nginx_config_passes_nginx_t_and_keeps_a_reader_on_one_replica(tmp_path: Path) -> None:
    if not NGINX.exists():
        pytest.fail("nginx is missing: run scripts/system-deps.sh (as root) first")
    with _upstream("app-a") as a, _upstream("app-b") as b:
        ports = {"app-a": a.server_address[1], "app-b": b.server_address[1]}
        listen = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(_local_conf((DEPLOY / "nginx.conf").read_text(encoding="utf-8"), tmp_path, listen, ports))
        base = [str(NGINX), "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")]
        checked = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        proc = subprocess.Popen([*base, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{listen}/"
            wait_http(url, timeout=60)
            seen = {httpx.get(url, timeout=10, trust_env=False).text for _ in range(8)}
            assert len(seen) == 1  # ip_hash: one client address, one replica
            [first] = seen
            (a if first == "app-a" else b).shutdown()  # that replica stops answering
            (a if first == "app-a" else b).server_close()
            after = httpx.get(url, timeout=10, trust_env=False)
            assert after.status_code == 200 and after.text != first  # sent on to the other replica
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
