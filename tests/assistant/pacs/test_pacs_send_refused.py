"""A PACS that refuses the report: a clear error, the draft unchanged, and the same draft sent again once the PACS
accepts it.

Against a real Orthanc whose Lua ``ReceivedInstanceFilter`` refuses structured reports while a flag file exists (how
a site keeps SRs out of its archive). Orthanc 1.10's DICOMweb plugin still answers that STOW-RS with the SR listed
as stored, so only asking the PACS again shows the refusal. The Failed SOP Sequence answer of PS3.18 10.5.3, which
Orthanc cannot be made to give, comes from a small loopback HTTP server at the transport boundary.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pydicom
import pytest

from assistant.imaging.deid import Pseudonymizer
from assistant.pacs import PacsClient, PacsError, open_study, send_report
from assistant.report.export import to_markdown
from assistant.report.service import DraftingService
from assistant.report.store import LOCAL_OWNER, ReportStore
from assistant.settings import PacsEndpoint, Settings
from tests.assistant.pacs.conftest import _bytes, _ct_series
from tests.support.orthanc import OrthancServer, orthanc_available

_FILTER = """
function ReceivedInstanceFilter(dicom, origin, info)
  local flag = io.open([[{flag}]], 'r')
  if flag ~= nil then
    flag:close()
    return dicom.Modality ~= 'SR'
  end
  return true
end
"""


@pytest.fixture
def refusing_pacs(shared_dir: Path, tmp_path: Path) -> Iterator[tuple[OrthancServer, Path, str]]:
    """(Orthanc refusing SRs while the flag file exists, the flag, the seeded CT study's UID)."""
    if not orthanc_available():
        pytest.fail("Orthanc is not installed: run `make system` (scripts/system-deps.sh) first")
    flag = tmp_path / "refuse-reports"
    flag.touch()
    script = tmp_path / "refuse.lua"
    script.write_text(_FILTER.replace("{flag}", str(flag)), encoding="utf-8")
    server = OrthancServer(extra_config={"LuaScripts": [str(script)]}).start()
    try:
        study, _, ct = _ct_series(shared_dir / "data" / "dicom" / "pydicom_data" / "693_UNCI.dcm", 3)
        for ds in ct:
            server.upload(_bytes(ds))
        yield server, flag, study
    finally:
        server.stop()


def test_a_refused_report_is_a_clear_error_and_the_draft_can_be_sent_again(
    refusing_pacs: tuple[OrthancServer, Path, str], tmp_path: Path
) -> None:
    server, flag, study_uid = refusing_pacs
    settings = Settings(
        data_dir=tmp_path / "data", pacs_url=server.dicomweb_url, pacs_user=server.user,
        pacs_password=server.password, pacs_timeout_s=20.0,
    )  # fmt: skip
    client = PacsClient(settings.pacs_endpoint())
    keys = Pseudonymizer.from_settings(settings)
    opened = open_study(client, study_uid, settings)
    with ReportStore(tmp_path / "r.sqlite3", owner=LOCAL_OWNER) as store:
        service = DraftingService(store)
        report_id = service.create("ct_chest", opened.study_ref).report.report_id
        service.handle(report_id, "There is a 7 mm nodule in the right upper lobe.")
        before = store.current(report_id)
        with pytest.raises(PacsError) as refused:
            send_report(client, store, report_id, keys, study_uid=study_uid)
        message = str(refused.value)
        assert "does not hold it" in message and "nothing was filed" in message and "sent again" in message
        assert server.password not in message
        assert len(server.get(f"/studies/{_orthanc_study(server, study_uid)}/instances").json()) == 3  # no SR
        after = store.current(report_id)
        assert after.number == before.number
        assert to_markdown(after.report) == to_markdown(before.report)
        flag.unlink()  # the PACS accepts reports again: the same draft goes
        sent = send_report(client, store, report_id, keys, study_uid=study_uid)
    held = server.get(f"/dicom-web/studies/{study_uid}/instances?SOPInstanceUID={sent.sop_instance_uid}").json()
    assert len(held) == 1
    assert "7 mm nodule in the right upper lobe" in sent.text


def _orthanc_study(server: OrthancServer, study_uid: str) -> str:
    import httpx

    found = httpx.post(
        f"{server.base_url}/tools/lookup", content=study_uid, auth=(server.user, server.password), trust_env=False
    ).json()
    return str(next(f["ID"] for f in found if f["Type"] == "Study"))


# ------------------------------------------------------------------------------------------- transport boundary


class _Refusing(BaseHTTPRequestHandler):
    """Answers every STOW-RS with a Failed SOP Sequence (Failure Reason A700, out of resources)."""

    status = 409

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {"00081198": {"vr": "SQ", "Value": [{"00081197": {"vr": "US", "Value": [0xA700]}}]}}
        ).encode()  # fmt: skip
        self.send_response(self.status)
        self.send_header("Content-Type", "application/dicom+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


@pytest.mark.parametrize("status", [409, 200])
def test_a_failed_sop_sequence_is_a_clear_error(status: int, shared_dir: Path) -> None:
    handler = type("Handler", (_Refusing,), {"status": status})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
        client = PacsClient(PacsEndpoint(name="full", url=url, timeout_s=5.0))
        ds = pydicom.dcmread(shared_dir / "data" / "dicom" / "pydicom_data" / "693_UNCI.dcm")
        with pytest.raises(PacsError, match=r"refused to store the report \(out of resources \(A700\)\): nothing"):
            client.store([pydicom.dcmread(io.BytesIO(_bytes(ds)))], study_uid=str(ds.StudyInstanceUID))
    finally:
        server.shutdown()
        server.server_close()
