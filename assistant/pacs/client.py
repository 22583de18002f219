"""A DICOMweb client for one PACS endpoint (``dicomweb-client`` over a ``requests`` session).

QIDO-RS finds studies, series and instances; WADO-RS retrieves a series as a stream of instances; STOW-RS stores
an SR. Every transport error is translated here into a :class:`PacsError` whose message names the PACS (by its
configured name and URL, never its credentials) and what to do, never a patient identifier.

What a search returns (names, IDs, accession numbers) is identifying: it lives in :class:`StudyMatch` objects in
memory, is shown to the logged-in user, and is never logged or stored. The ``dicomweb_client`` and ``urllib3``
loggers would log request URLs (which carry QIDO query parameters such as the patient ID) at DEBUG level: a
filter on those two loggers drops their records below WARNING and the arguments of the rest.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.errors import RadassistError
from assistant.settings import PacsEndpoint

logger = logging.getLogger(__name__)

__all__ = [
    "PacsAuthError",
    "PacsBudgetError",
    "PacsCancelledError",
    "PacsClient",
    "PacsError",
    "PacsNotFoundError",
    "PacsTimeoutError",
    "PacsUnreachableError",
    "RetrievalGuard",
    "SeriesInfo",
    "StudyMatch",
    "StudyQuery",
]


class PacsError(RadassistError):
    """The PACS could not be asked, or refused; the message says which PACS and what to check."""


class PacsUnreachableError(PacsError):
    """No connection (the PACS is down, the address is wrong, a firewall)."""


class PacsAuthError(PacsError):
    """The PACS refused the credentials (HTTP 401/403)."""


class PacsNotFoundError(PacsError):
    """The PACS has no such study or series (HTTP 404, or an empty answer)."""


class PacsTimeoutError(PacsError):
    """The PACS did not answer within the endpoint's timeout."""


class PacsBudgetError(PacsError):
    """A retrieval would exceed the ingest budgets; nothing was imported."""


class PacsCancelledError(PacsError):
    """The user cancelled a retrieval; nothing was imported."""


# ------------------------------------------------------------------------------------------------ log hygiene


class _NoRequestDetails(logging.Filter):
    """Drop third-party records that may carry request URLs (QIDO parameters are identifiers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        record.msg, record.args = f"{record.name}: a request problem (details withheld: they may name a patient)", ()
        return True


_FILTER = _NoRequestDetails()
_QUIET_LOGGERS = ("dicomweb_client", "dicomweb_client.web", "urllib3.connectionpool")


def _quiet_transport_logs() -> None:
    for name in _QUIET_LOGGERS:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


# ------------------------------------------------------------------------------------------------ queries


@dataclass(frozen=True)
class StudyQuery:
    """QIDO-RS study search (PS3.18 10.6): any combination; ``patient_name`` may hold ``*`` wildcards."""

    patient_id: str | None = None
    accession_number: str | None = None
    patient_name: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise PacsError(f"limit must be at least 1, got {self.limit}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise PacsError("the date range is empty: the first date is after the last")

    def filters(self) -> dict[str, str]:
        """The QIDO-RS query keys (PS3.18 Table 10.6.1-5); a date range as ``from-to`` (PS3.4 C.2.2.2.5)."""
        out: dict[str, str] = {}
        if self.patient_id:
            out["PatientID"] = self.patient_id.strip()
        if self.accession_number:
            out["AccessionNumber"] = self.accession_number.strip()
        if self.patient_name:
            # PS3.5 6.2: "^" separates the name's components. Not every PACS decodes "%5E" in a query (Orthanc 1.10
            # does not), so a separator is sent as a wildcard, which matches it (and is checked by the user's eye).
            out["PatientName"] = self.patient_name.strip().replace("^", "*")
        if self.date_from or self.date_to:
            start = self.date_from.strftime("%Y%m%d") if self.date_from else ""
            end = self.date_to.strftime("%Y%m%d") if self.date_to else ""
            out["StudyDate"] = start if start == end else f"{start}-{end}"
        if self.modality:
            out["ModalitiesInStudy"] = self.modality.strip().upper()
        return out


def _value(item: Mapping[str, Any], tag: str) -> Any:
    """The first value of a DICOM JSON attribute (PS3.18 F.2), or None."""
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _values(item: Mapping[str, Any], tag: str) -> tuple[Any, ...]:
    return tuple((item.get(tag) or {}).get("Value") or ())


def _person_name(item: Mapping[str, Any], tag: str) -> str | None:
    value = _value(item, tag)
    if isinstance(value, dict):  # PS3.18 F.2.2: {"Alphabetic": "Doe^John"}
        value = value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic")
    return str(value).replace("^", " ").strip() if value else None


def _date(value: Any) -> dt.date | None:
    try:
        return dt.datetime.strptime(str(value)[:8], "%Y%m%d").date() if value else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudyMatch:
    """One study found on the PACS, identified (for the logged-in user's eyes only: never logged or stored)."""

    study_instance_uid: str
    patient_id: str | None = field(default=None, repr=False)
    patient_name: str | None = field(default=None, repr=False)
    accession_number: str | None = field(default=None, repr=False)
    study_date: dt.date | None = field(default=None, repr=False)
    study_description: str | None = None
    modalities: tuple[str, ...] = ()
    series_count: int | None = None
    instance_count: int | None = None

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> StudyMatch:
        """From a QIDO-RS DICOM JSON result."""
        return cls(
            study_instance_uid=str(_value(item, "0020000D") or ""),
            patient_id=_value(item, "00100020"),
            patient_name=_person_name(item, "00100010"),
            accession_number=_value(item, "00080050"),
            study_date=_date(_value(item, "00080020")),
            study_description=_value(item, "00081030"),
            modalities=tuple(str(m) for m in _values(item, "00080061")),
            series_count=_int(_value(item, "00201206")),
            instance_count=_int(_value(item, "00201208")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "patient_name": self.patient_name,
            "accession_number": self.accession_number,
            "study_date": self.study_date.isoformat() if self.study_date else None,
            "study_description": self.study_description,
            "modalities": list(self.modalities),
            "series_count": self.series_count,
            "instance_count": self.instance_count,
        }


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a study on the PACS."""

    series_instance_uid: str
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    instance_count: int | None = None

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> SeriesInfo:
        return cls(
            series_instance_uid=str(_value(item, "0020000E") or ""),
            modality=_value(item, "00080060"),
            series_number=_int(_value(item, "00200011")),
            series_description=_value(item, "0008103E"),
            instance_count=_int(_value(item, "00201209")),
        )


# ------------------------------------------------------------------------------------------------ retrieval guard


class RetrievalGuard:
    """Bounds one retrieval while the bytes arrive: a byte cap, cancellation, and a progress callback.

    Installed on the client's session for the duration of a retrieval; every response body is read through it
    (``requests`` reads ``Response.content`` through ``iter_content`` too), so a huge series is stopped at the
    first chunk past the cap and a cancel takes effect within one chunk, not after the whole series.
    """

    def __init__(
        self,
        max_bytes: int,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.cancel = cancel or threading.Event()
        self.progress = progress
        self.received = 0

    def check(self) -> None:
        if self.cancel.is_set():
            raise PacsCancelledError("the retrieval was cancelled; nothing was imported")

    def count(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received > self.max_bytes:
            raise PacsBudgetError(
                f"the series is larger than the ingest budget allows (more than {self.max_bytes / 2**20:.0f} MiB "
                "arrived; ingest_max_upload_bytes); nothing was imported"
            )
        if self.progress is not None:
            self.progress(self.received)
        self.check()


def _guarded_session(verify: bool | str) -> Any:
    import requests

    class GuardedSession(requests.Session):
        """A session that reads every response body through the current :class:`RetrievalGuard`."""

        guard: RetrievalGuard | None = None

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            # dicomweb-client percent-encodes a QIDO wildcard as %2A; RFC 3986 (2.2) allows "*" raw in a query, and
            # some PACS (Orthanc 1.10's DICOMweb plugin, tested) match a wildcard only when it comes raw.
            if "?" in url:
                head, _, query = url.partition("?")
                url = f"{head}?{query.replace('%2A', '*')}"
            guard = self.guard
            if guard is not None:
                guard.check()
            response = super().request(method, url, *args, **kwargs)
            if guard is not None:
                original = response.iter_content

                def counted(chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
                    for chunk in original(chunk_size, decode_unicode):  # type: ignore[call-overload]
                        guard.count(len(chunk))
                        yield chunk

                response.iter_content = counted  # type: ignore[method-assign]
            return response

    session = GuardedSession()
    session.verify = verify
    return session


# ------------------------------------------------------------------------------------------------ the client

_STUDY_FIELDS = (
    "PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyDescription", "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "StudyInstanceUID",
)  # fmt: skip
_SERIES_FIELDS = ("Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances")


class PacsClient:
    """QIDO-RS, WADO-RS and STOW-RS against one configured endpoint; errors become :class:`PacsError`."""

    def __init__(self, endpoint: PacsEndpoint) -> None:
        self.endpoint = endpoint
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        """How messages name this PACS: its configured name and URL (no credentials: the URL holds none)."""
        return f"PACS '{self.endpoint.name}' ({self.endpoint.safe_url})"

    def _dicomweb(self) -> Any:
        with self._lock:
            if self._client is None:
                from dicomweb_client.api import DICOMwebClient

                _quiet_transport_logs()
                e = self.endpoint
                session = _guarded_session(e.ca_file if (e.verify_tls and e.ca_file) else e.verify_tls)
                if e.user is not None and e.password is not None:
                    session.auth = (e.user, e.password)
                headers = {"Authorization": f"Bearer {e.token}"} if e.token else None
                client = DICOMwebClient(
                    url=e.safe_url, session=session, headers=headers, timeout=(min(e.timeout_s, 10.0), e.timeout_s)
                )
                client.set_http_retry_params(retry=False)  # a dead or slow PACS is reported at once, not retried
                self._client = client
            return self._client

    def _translate(self, exc: BaseException, what: str) -> PacsError:
        import requests

        if isinstance(exc, PacsError):
            return exc
        if isinstance(exc, requests.exceptions.SSLError):
            return PacsUnreachableError(
                f"{self.label}: the TLS certificate was not accepted while {what}; set ca_file (or verify_tls)"
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return PacsTimeoutError(
                f"{self.label} did not answer within {self.endpoint.timeout_s:g} s while {what}; it may be "
                "overloaded (raise timeout_s for a slow PACS)"
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return PacsUnreachableError(
                f"{self.label} cannot be reached while {what}: is it running, and is the URL right?"
            )
        if isinstance(exc, requests.exceptions.HTTPError):
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                return PacsAuthError(
                    f"{self.label} refused the credentials (HTTP {status}) while {what}: check the user and "
                    "password (or the token)"
                )
            if status == 404:
                return PacsNotFoundError(f"{self.label} has no such object (HTTP 404) while {what}")
            if status == 409 and what == _STORING:  # PS3.18 10.5.3: every instance failed; the body says why
                try:
                    answer = exc.response.json() if exc.response is not None else {}
                except ValueError:
                    answer = {}
                return self._stow_refusal(answer if isinstance(answer, dict) else {}) or self._refused(None)
            return PacsError(f"{self.label} answered HTTP {status} while {what}")
        if isinstance(exc, requests.exceptions.RequestException):
            return PacsError(f"{self.label}: the request failed while {what} ({type(exc).__name__})")
        return PacsError(f"{self.label} sent an answer that could not be read while {what} ({type(exc).__name__})")

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        started = time.perf_counter()
        try:
            return fn(self._dicomweb())
        except PacsError:
            raise
        except Exception as exc:  # requests' errors, and ValueError/KeyError from a malformed answer
            # Not chained: requests' messages carry the request URL, whose QIDO parameters name the patient, and a
            # chained cause would reach any log that records the traceback. The type is kept at DEBUG.
            logger.debug("pacs %s: %s failed (%s)", self.endpoint.name, what, type(exc).__name__)
            raise self._translate(exc, what) from None
        finally:
            elapsed = 1000 * (time.perf_counter() - started)
            logger.debug("pacs %s: %s in %.0f ms", self.endpoint.name, what.split(" ")[0], elapsed)

    # -------------------------------------------------------------------------------------------- QIDO-RS

    def find_studies(self, query: StudyQuery) -> list[StudyMatch]:
        """Studies matching ``query`` (QIDO-RS), newest first."""
        filters = query.filters()
        found = self._call(
            "searching for studies",
            lambda c: c.search_for_studies(search_filters=filters, fields=list(_STUDY_FIELDS), limit=query.limit),
        )
        matches = [StudyMatch.from_json(item) for item in found or []]
        logger.info("pacs %s: %d study(ies) found", self.endpoint.name, len(matches))
        return sorted(matches, key=lambda m: m.study_date or dt.date.min, reverse=True)

    def study(self, study_uid: str) -> StudyMatch:
        """The one study with this Study Instance UID; :class:`PacsNotFoundError` when there is none."""
        uid = _check_uid(study_uid)
        found = self._call(
            "looking up the study",
            lambda c: c.search_for_studies(search_filters={"StudyInstanceUID": uid}, fields=list(_STUDY_FIELDS)),
        )
        matches = [StudyMatch.from_json(item) for item in found or []]
        if not matches:
            raise PacsNotFoundError(f"{self.label} has no study with that Study Instance UID")
        return matches[0]

    def series(self, study_uid: str) -> list[SeriesInfo]:
        """The series of a study, by series number."""
        uid = _check_uid(study_uid)
        found = self._call(
            "listing the series",
            lambda c: c.search_for_series(study_instance_uid=uid, fields=list(_SERIES_FIELDS)),
        )
        out = [SeriesInfo.from_json(item) for item in found or []]
        return sorted(out, key=lambda s: (s.series_number is None, s.series_number or 0))

    def instance_uids(self, study_uid: str, series_uid: str) -> list[tuple[str, str]]:
        """(SOP Class UID, SOP Instance UID) of every instance of a series."""
        found = self._call(
            "listing the instances",
            lambda c: c.search_for_instances(
                study_instance_uid=_check_uid(study_uid), series_instance_uid=_check_uid(series_uid),
                fields=["SOPClassUID", "SOPInstanceUID"],
            ),
        )  # fmt: skip
        return [(str(_value(i, "00080016") or ""), str(_value(i, "00080018") or "")) for i in found or []]

    def series_metadata(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """WADO-RS metadata of a series' instances (DICOM JSON, no bulk data)."""
        return list(
            self._call(
                "reading the series metadata",
                lambda c: c.retrieve_series_metadata(_check_uid(study_uid), _check_uid(series_uid)),
            )
            or []
        )

    # -------------------------------------------------------------------------------------------- WADO-RS

    def iter_series(self, study_uid: str, series_uid: str, guard: RetrievalGuard) -> Iterator[Any]:
        """The series' instances as pydicom Datasets, streamed, read through ``guard``."""
        client = self._dicomweb()
        session = client._session  # the GuardedSession made above; dicomweb-client keeps it as given
        session.guard = guard
        try:
            stream = client.iter_series(_check_uid(study_uid), _check_uid(series_uid))
            while True:
                guard.check()
                try:
                    item = next(stream)
                except StopIteration:
                    return
                yield item
        except PacsError:
            raise
        except Exception as exc:
            logger.debug("pacs %s: retrieval failed (%s)", self.endpoint.name, type(exc).__name__)
            raise self._translate(exc, "retrieving the series") from None  # not chained: see _call
        finally:
            session.guard = None

    def retrieve_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> Any:
        """One instance as a pydicom Dataset."""
        return self._call(
            "retrieving an instance",
            lambda c: c.retrieve_instance(_check_uid(study_uid), _check_uid(series_uid), _check_uid(sop_uid)),
        )

    # -------------------------------------------------------------------------------------------- STOW-RS

    def store(self, datasets: Sequence[Any], study_uid: str | None = None) -> None:
        """Store instances (STOW-RS); raises when the PACS refuses any of them."""
        response = self._call(_STORING, lambda c: c.store_instances(list(datasets), study_instance_uid=study_uid))
        # The answer is a Dataset (dicomweb-client parses the DICOM JSON / XML); a plain JSON mapping is read alike.
        answer = response.to_json_dict() if hasattr(response, "to_json_dict") else dict(response or {})
        refusal = self._stow_refusal(answer)
        if refusal is not None:
            raise refusal

    def _stow_refusal(self, answer: Mapping[str, Any]) -> PacsError | None:
        """The error for a STOW-RS answer that lists a Failed SOP Sequence (PS3.18 10.5.3), else None."""
        failed = _values(answer, "00081198")
        if not failed:
            return None
        return self._refused(_value(failed[0], "00081197") if isinstance(failed[0], Mapping) else None)

    def _refused(self, reason: Any) -> PacsError:
        """The PACS refused the report; ``reason``: its Failure Reason (PS3.4 Table GG.4-1), when it gave one."""
        return PacsError(
            f"{self.label} refused to store the report ({_failure_reason(reason)}): nothing was filed; the draft "
            "is unchanged and can be sent again once the PACS accepts it"
        )


# STOW-RS Failure Reason values (PS3.4 Table GG.4-1, PS3.18 10.5.3.3); others are named by their number.
_FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "referenced transfer syntax not supported",
    0xC123: "referenced SOP class not supported",
}  # fmt: skip


def _failure_reason(value: Any) -> str:
    """A Failure Reason as words: "out of resources (A700)"."""
    try:
        code = int(value)
    except (TypeError, ValueError):
        return "no failure reason given"
    return f"{_FAILURE_REASONS.get(code, 'failure')} ({code:04X})"


_STORING = "storing the report"
_UID_CHARS = set("0123456789.")


def _check_uid(uid: str) -> str:
    """A DICOM UID (PS3.5 9.1): digits and dots, at most 64 characters; anything else never reaches a URL."""
    text = str(uid).strip()
    if not text or len(text) > 64 or not set(text) <= _UID_CHARS or ".." in text or text[0] == "." or text[-1] == ".":
        raise PacsError("that is not a DICOM UID (digits and dots, at most 64 characters)")
    return text
