"""A real nginx (Debian's) in front of app replicas, for tests and the load bench: its configuration, pid and logs in
a folder the caller gives, a free loopback port, ``ip_hash`` affinity, and an ``X-Radassist-Upstream`` header naming
the replica that answered; no system service is used or needed.

nginx buffers a request body over 16 KiB (an upload) in a temporary file that its worker process writes. Run as
root, the worker is ``nobody``, which cannot reach a folder under pytest's or ``tempfile``'s owner-only folders: so
the temporary files go to a folder of their own directly in the system's temp area, owned by the worker's user
(as tests/support/postgres.py does for the ``postgres`` user), deleted when nginx stops.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.http import wait_http

NGINX = Path("/usr/sbin/nginx")
UPSTREAM_HEADER = "x-radassist-upstream"  # which replica answered, added by nginx
WORKER_USER = "nobody"  # nginx's own default for a master run as root; named so the temp folder can be its

# What docs/deploy.md asks of a load balancer in front of Gradio: sticky sessions (ip_hash here), WebSocket and
# server-sent events passed through unbuffered, and a failed replica's requests sent to the next one.
NGINX_CONF = """
daemon off;
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    client_max_body_size 512m;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream radassist {{
        ip_hash;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://radassist;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_next_upstream error timeout http_502;
            add_header X-Radassist-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def nginx_available() -> bool:
    """Whether nginx is installed (scripts/system-deps.sh installs it)."""
    return NGINX.is_file()


def _worker_temp() -> tuple[Path, str]:
    """A fresh folder for nginx's request-body and proxy temp files that its worker can write, and the ``user``
    line that names that worker (empty when not root: the worker is then the caller, who owns the folder)."""
    temp = Path(tempfile.mkdtemp(prefix="radassist-nginx-"))
    if os.geteuid() != 0:
        return temp, ""
    worker = pwd.getpwnam(WORKER_USER)
    group = grp.getgrgid(worker.pw_gid).gr_name
    os.chown(temp, worker.pw_uid, worker.pw_gid)
    return temp, f"user {WORKER_USER} {group};"


@contextmanager
def nginx(root: Path, port: int, upstreams: list[int]) -> Iterator[str]:
    """A real nginx in the foreground, its configuration, pid and logs under ``root``, balancing over the replicas
    on loopback ``upstreams`` ports; yields its URL once it answers, stops it gracefully afterwards."""
    if not nginx_available():
        raise RuntimeError("nginx is missing: run scripts/system-deps.sh (as root) first")
    root.mkdir(parents=True, exist_ok=True)
    temp, user = _worker_temp()
    try:
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=60s;" for p in upstreams)
        conf = root / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(user=user, root=root, temp=temp, port=port, servers=servers), encoding="utf-8"
        )
        command = [str(NGINX), "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
        checked = subprocess.run([*command[:1], "-t", *command[1:]], capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx refused its configuration: {checked.stderr.strip()}")
        with open(root / "nginx.out", "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_http(f"http://127.0.0.1:{port}/", timeout=120)
                yield f"http://127.0.0.1:{port}/"
            finally:
                proc.send_signal(signal.SIGQUIT)  # graceful stop
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
