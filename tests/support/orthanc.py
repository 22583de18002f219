"""A throwaway Orthanc PACS for tests: Debian's ``orthanc`` + ``orthanc-dicomweb`` (scripts/system-deps.sh), started
on a free loopback HTTP port with a JSON configuration, storage and index in a temporary folder, HTTP basic
authentication on, the DICOM (DIMSE) server off; no system service is used or needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.http import free_port

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_available() -> bool:
    return ORTHANC.is_file() and DICOMWEB_PLUGIN.is_file()


class OrthancServer:
    """``start()`` runs Orthanc, ``upload(bytes)`` stores an instance (REST API), ``stop()`` ends it and deletes
    its folder. ``dicomweb_url`` is the DICOMweb root radassist is configured with."""

    def __init__(
        self, user: str = "radiologist", password: str = "s3cret-pacs-pw", extra_config: dict[str, object] | None = None
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="radassist-orthanc-"))
        self.user, self.password = user, password
        self.extra_config = dict(extra_config or {})  # more Orthanc configuration (e.g. "LuaScripts")
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.base_url}/dicom-web"

    def start(self, timeout_s: float = 60.0) -> OrthancServer:
        self.port = free_port()
        config = {
            "Name": "radassist-test",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "HttpPort": self.port,
            "HttpBindAddress": "127.0.0.1",  # Orthanc >= 1.9.x; RemoteAccessAllowed=false guards older ones
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "DicomPort": free_port(),
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.user: self.password},
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StableAge": 1,
            **self.extra_config,
        }
        (self.root / "orthanc.json").write_text(json.dumps(config), encoding="utf-8")
        log = open(self.root / "orthanc.log", "wb")  # noqa: SIM115 - the server's lifetime
        self._proc = subprocess.Popen(
            [str(ORTHANC), str(self.root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, cwd=self.root
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited ({self._proc.returncode}): {self.log_tail()}")
            try:
                r = httpx.get(f"{self.base_url}/system", auth=(self.user, self.password), timeout=2.0, trust_env=False)
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"Orthanc did not start in {timeout_s:.0f} s")
            time.sleep(0.2)

    def upload(self, data: bytes) -> dict[str, str]:
        """Store one DICOM file through Orthanc's REST API; its answer (ID, ParentStudy, ...)."""
        r = httpx.post(
            f"{self.base_url}/instances", content=data, auth=(self.user, self.password), timeout=30.0, trust_env=False
        )
        r.raise_for_status()
        return dict(r.json())

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", auth=(self.user, self.password), timeout=30.0, trust_env=False)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.root / "orthanc.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)
