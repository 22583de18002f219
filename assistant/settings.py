"""One frozen settings object, loaded once at the entry point and passed in explicitly.

Sources, later wins: built-in defaults < TOML file (``RADASSIST_CONFIG`` or ``--config``) < ``RADASSIST_*``
environment variables < explicit overrides from the command line. This is the only module that reads
``os.environ``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError

ENV_PREFIX = "RADASSIST_"
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")  # an HTTP field name (RFC 9110 5.1), hyphens only
# A log-in name (assistant.store.users checks accounts with it). Lower case only: Gradio keeps the name exactly as
# typed at log-in, and conversations and drafts belong to that name, so "Alice" and "alice" must not be two ways into
# (or two halves of) one account. "@" and "." let an SSO proxy's e-mail-like names (alice@hospital.org) through.
USER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
_PACS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_PACS_NAME = "default"  # the endpoint given by RADASSIST_PACS_URL (or pacs_url)


@dataclass(frozen=True)
class PacsEndpoint:
    """One DICOMweb service (a PACS): its root URL, credentials and transport options (docs/pacs.md).

    The URL never carries credentials (they would be shown wherever the URL is); the password and the token are
    left out of ``repr``.
    """

    name: str
    url: str  # the DICOMweb root, e.g. http://host:8042/dicom-web
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)  # bearer token, instead of user/password
    timeout_s: float = 30.0
    verify_tls: bool = True
    ca_file: str | None = None  # a CA bundle for a PACS with a private certificate authority

    def __post_init__(self) -> None:
        if not _PACS_NAME.fullmatch(self.name):
            raise ConfigurationError(f"PACS name must be letters, digits, '.', '_' or '-', got {self.name!r}")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError(f"PACS {self.name}: url must start with http:// or https://")
        if "@" in self.url.split("/")[2]:
            raise ConfigurationError(f"PACS {self.name}: put the credentials in user/password, not in the url")
        if (self.user is None) != (self.password is None):
            raise ConfigurationError(f"PACS {self.name}: user and password must be set together")
        if self.token is not None and self.user is not None:
            raise ConfigurationError(f"PACS {self.name}: give user/password or a bearer token, not both")
        if self.timeout_s <= 0:
            raise ConfigurationError(f"PACS {self.name}: timeout_s must be positive, got {self.timeout_s}")

    @property
    def safe_url(self) -> str:
        """The URL without query or fragment: what messages may show."""
        return self.url.split("?")[0].split("#")[0].rstrip("/")


@dataclass(frozen=True)
class Settings:
    """Everything configurable about radassist; see README "Configuration"."""

    data_dir: Path = Path("data")
    # LLM: a URL of any OpenAI-compatible server (vLLM on a GPU box) or, when empty, an embedded engine.
    llm_url: str | None = None
    llm_api_key: str | None = None
    # Embedded engine: an HF model id or folder; None = the offline default (SmolLM2-135M-Instruct).
    llm_model: str | None = None
    # Name sent as "model" in requests; None = what the server lists first.
    llm_served_name: str | None = None
    llm_timeout_s: float = 120.0
    llm_max_tokens: int = 512
    llm_temperature: float = 0.2
    engine_port: int = 0  # 0 = a free port on engine_host
    engine_host: str = "127.0.0.1"
    engine_start_timeout_s: float = 600.0
    engine_max_model_len: int = 4096
    engine_kv_cache_bytes: int = 268_435_456  # 256 MiB: plenty for a 135M model at 4k context on a CPU
    engine_cpu_threads: str = ""  # e.g. "0-1"; empty = all cores of this machine
    engine_extra_args: tuple[str, ...] = ()
    # Retrieval: a sentence-transformers model id or folder; None = the offline all-MiniLM-L6-v2.
    embedding_model: str | None = None
    # A guideline index built once (`radassist index build --corpus guidelines --out DIR`) and shipped as files:
    # loaded as it is, read-only (never built or written into, so replicas may share it); refused at start when it
    # is missing, incomplete, or was built with another embedding model or knowledge base. None = built on first
    # use under data_dir/index/guidelines.
    guideline_index: Path | None = None
    # Vision: "auto" = image embeddings when the served model folder carries radassist-vision/vision.json,
    # else text-only; or llava-embeds | medgemma | qwen2-vl | pixels | text-only (see docs/vision.md).
    vision_profile: str = "auto"
    vision_bundle: str | None = None  # folder with vision.json + projector weights (from `models convert`)
    vision_max_images: int = 4
    # "The whole series" in the web app: this many frames sampled evenly (0 = as many as the profile takes).
    vision_series_frames: int = 0
    # MedGemma 1.5 volumes: a CT/MR series goes as this many evenly sampled three-window slices (its CT notebook: 85).
    vision_volume_slices: int = 85
    # Pixel profiles send an image already sent as its uuid alone (vLLM's multimodal cache answers); false for
    # OpenAI-compatible servers other than vLLM, which do not know null image payloads.
    vision_send_once: bool = True
    # Embeddings profiles: RADASSIST_LLM_URL is radassist's embeddings cache in front of vLLM (`radassist models
    # embeds-cache`), so they too send an image once per conversation and its uuid alone afterwards.
    vision_embeds_cache: bool = False
    vision_embeds_dtype: str = "bfloat16"
    # Similar teaching cases: a JSONL of {"case_id", "image", "report"} (images relative to the file), indexed
    # under data_dir/index/images on first use; their reports are shown to the user, never sent to the LLM.
    vision_teaching_corpus: str | None = None
    # The open_clip encoder for it: an encoder spec JSON file or a vision bundle; None = the vision bundle's.
    vision_teaching_encoder: str | None = None
    # Instead of the corpus: a similar-case index built once (`radassist index build --corpus images --out DIR`),
    # loaded read-only like guideline_index; refused on first use when missing, incomplete or from another encoder.
    vision_teaching_index: Path | None = None
    # Web app
    host: str = "127.0.0.1"
    port: int = 7860
    auth_user: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    # Single sign-on: the header an SSO reverse proxy sets to the logged-in user's name (e.g. Remote-User or
    # X-Forwarded-User), honoured only on connections from auth_trusted_proxies (a comma list of IPs/CIDRs).
    auth_proxy_header: str | None = None
    auth_trusted_proxies: str = ""
    # Users (a comma list of log-in names) who may import prior reports in the web app, as `radassist priors import`
    # does; in single-user mode (loopback, no log-in) the machine's one user may. Anonymous browsers never may.
    admin_users: str = ""
    upload_max_age_s: float = 3600.0  # uploads, renderings and Gradio's upload cache are deleted after this
    # Shared state: a SQLAlchemy URL (postgresql://user:pass@host/db for several app replicas, or sqlite:///file);
    # None = the SQLite file data_dir/radassist.sqlite3 (db_path). Migrations are applied when a store opens it.
    database_url: str | None = field(default=None, repr=False)  # may carry a password
    # The key that encrypts what the web app keeps in the browser (its anonymous browser id, the open
    # conversation). None = one made once in data_dir; several app replicas behind a load balancer must share one
    # (e.g. `openssl rand -hex 32`), or a browser moved to another replica is a stranger there.
    browser_secret: str | None = field(default=None, repr=False)
    # The de-identification salt (patient keys, UIDs, date shifts are HMACs under it). None = data_dir/deid_salt,
    # made on first use. Several app replicas must share one file (made once: `umask 077; openssl rand -hex 32`),
    # or one patient gets a different key on each; it must exist and be owner-only (mode 0600/0400).
    deid_salt_file: Path | None = None
    # Conversations and report drafts not changed for this many days are deleted (and files left in data_dir/tmp);
    # 0 = kept forever. Swept when `radassist serve` starts and daily while it runs.
    retention_days: int = 0
    # Ingest budgets against decompression bombs, in DECODED bytes (rows × columns × frames × samples × bytes per
    # sample: checked from the header before decoding, and enforced while inflating deflated DICOM and zip
    # members). Sized for the smallest server we support, 2 cores / 8 GB with 10 users (docs/benchmarks.md,
    # "Decompression bombs"): a bomb is refused for ~2 MiB of memory, whatever it declares, and no file can cost
    # more than its budget allows; a legitimate file peaks at ~2× its decoded size while it ingests (measured:
    # 512 MiB for a 256 MiB multi-frame), and a session keeps ~1.5× its study's decoded bytes (modality values +
    # 8-bit renderings). 512 MiB per file still opens an enhanced multi-frame CT or a tomosynthesis file; 1 GiB per
    # upload is ~2,000 CT slices. Typical studies are far below (a 300-slice CT is 150 MiB decoded, a 4-view
    # mammogram ~110 MiB): ten users with such studies keep ~2-3 GB next to the ~4 GB embedded engine. Ten users
    # all at the 1 GiB cap at once would not fit 8 GB: lower these for a smaller machine or more users.
    ingest_max_file_bytes: int = 512 * 2**20
    ingest_max_upload_bytes: int = 2**30
    # Files per upload (zip members and folder contents included): 2,000 CT slices fill the byte budget; 5,000
    # leaves room for small images (US, NM) while bounding the per-file overhead and a zip's table of contents.
    ingest_max_files: int = 5_000
    # A zip member (over 1 MiB inflated) may inflate at most this many times its compressed size: the real DICOM
    # files in ../shared deflate 1.5-8:1, a segmentation 25:1, a synthetic test image 73:1; a zero-filled bomb
    # ~1000:1 (deflate's ceiling is ~1032:1).
    ingest_max_compression_ratio: int = 100
    # Burned-in text in the pixels (names, IDs, dates on ultrasound, secondary captures, pictures): "flagged" reads
    # with OCR (Tesseract) the images that may carry it (US/SC/OT/XA/..., radiographs not marked NO, colour images,
    # pictures, Burned In Annotation YES) and blacks out identifying text; "always" reads every image (CT/MR
    # too); "never" shows pixels as they are. See assistant/imaging/burned_in.py and docs/benchmarks.md.
    burned_in_text: str = "flagged"
    log_level: str = "INFO"
    # PACS (DICOMweb, docs/pacs.md): one endpoint by these (named "default"), several by [pacs.NAME] TOML tables.
    pacs_url: str | None = None
    pacs_user: str | None = None
    pacs_password: str | None = field(default=None, repr=False)
    pacs_token: str | None = field(default=None, repr=False)
    pacs_timeout_s: float = 30.0
    pacs_verify_tls: bool = True
    pacs_ca_file: str | None = None
    pacs: tuple[PacsEndpoint, ...] = ()
    # Guideline mode: may the model re-phrase a computed result (checked, else the template is shown)?
    # "auto" = off for the embedded default (a 135M model whose phrasings passed the check 9.5% of the time and
    # cost ~3 s per answer, docs/benchmarks.md), on for any other configured model; "on"; "off".
    guideline_phrasing: str = "auto"

    def __post_init__(self) -> None:
        if self.burned_in_text not in ("always", "flagged", "never"):
            raise ConfigurationError(
                f"burned_in_text must be always, flagged or never, got {self.burned_in_text!r}"
            )
        if self.guideline_phrasing not in ("auto", "on", "off"):
            raise ConfigurationError(f"guideline_phrasing must be auto, on or off, got {self.guideline_phrasing!r}")
        for url in self.llm_urls:  # one server, or a comma-separated pool of them
            if not url.startswith(("http://", "https://")):
                raise ConfigurationError(f"llm_url must start with http:// or https://, got {url!r}")
        if self.llm_url is not None and not self.llm_urls:
            raise ConfigurationError(f"llm_url must start with http:// or https://, got {self.llm_url!r}")
        if self.database_url is not None and not self.database_url.startswith(
            ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")
        ):
            raise ConfigurationError(
                "database_url must start with postgresql:// or sqlite:/// (e.g. postgresql://radassist@dbhost/radassist)"
            )
        for name in ("port", "engine_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigurationError(f"{name} must be a TCP port (0-65535), got {value}")
        if self.port == 0:
            raise ConfigurationError("port must be a fixed TCP port for the web app, got 0")
        for name in ("llm_timeout_s", "engine_start_timeout_s", "upload_max_age_s"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)}")
        for name in (
            "ingest_max_file_bytes", "ingest_max_upload_bytes", "ingest_max_files", "ingest_max_compression_ratio",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.retention_days < 0:
            raise ConfigurationError(
                f"retention_days must be 0 (keep forever) or a number of days, got {self.retention_days}"
            )
        if self.vision_teaching_index is not None and self.vision_teaching_corpus is not None:
            raise ConfigurationError(
                "vision_teaching_index (an index built elsewhere, loaded read-only) and vision_teaching_corpus (an "
                "index built here on first use) exclude each other: set one"
            )
        if self.vision_max_images < 1:
            raise ConfigurationError(f"vision_max_images must be at least 1, got {self.vision_max_images}")
        if self.vision_series_frames < 0:
            raise ConfigurationError(f"vision_series_frames must be 0 or more, got {self.vision_series_frames}")
        if self.vision_volume_slices < 1:
            raise ConfigurationError(f"vision_volume_slices must be at least 1, got {self.vision_volume_slices}")
        if self.llm_max_tokens < 1:
            raise ConfigurationError(f"llm_max_tokens must be at least 1, got {self.llm_max_tokens}")
        if (self.auth_user is None) != (self.auth_password is None):
            raise ConfigurationError("auth_user and auth_password must be set together")
        if self.auth_proxy_header is not None and not _HEADER_NAME.fullmatch(self.auth_proxy_header):
            raise ConfigurationError(
                f"auth_proxy_header must be an HTTP header name such as Remote-User, got {self.auth_proxy_header!r}"
            )
        _ = self.admin_names  # parsed here, so a typo stops the start
        proxies = self.trusted_proxy_networks  # parsed here, so a typo stops the start
        _ = self.pacs_endpoints  # built here too
        if self.auth_proxy_header and not proxies:
            raise ConfigurationError(
                "auth_proxy_header needs auth_trusted_proxies: the addresses the SSO proxy connects from"
            )
        if proxies and not self.auth_proxy_header:
            raise ConfigurationError("auth_trusted_proxies is set but auth_proxy_header is not")

    @cached_property
    def admin_names(self) -> frozenset[str]:
        """``admin_users`` parsed: the log-in names with the web app's administrative actions."""
        names = {part.strip() for part in self.admin_users.split(",") if part.strip()}
        bad = sorted(n for n in names if not USER_NAME_PATTERN.fullmatch(n))
        if bad:
            raise ConfigurationError(
                f"admin_users: {', '.join(map(repr, bad))} is not a user name (lower-case letters, digits, . _ @ -)"
            )
        return frozenset(names)

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``auth_trusted_proxies`` parsed: the networks whose connections may name the user in a header."""
        networks = []
        for item in (part.strip() for part in self.auth_trusted_proxies.split(",")):
            if not item:
                continue
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ConfigurationError(
                    f"auth_trusted_proxies: {item!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/24)"
                ) from exc
            if network.prefixlen == 0:
                raise ConfigurationError(
                    f"auth_trusted_proxies: {item!r} trusts every address; name the proxy's own address(es)"
                )
            networks.append(network)
        return tuple(networks)

    @cached_property
    def pacs_endpoints(self) -> tuple[PacsEndpoint, ...]:
        """Every configured PACS: ``pacs_url`` (named "default") first, then the ``[pacs.NAME]`` tables."""
        found: list[PacsEndpoint] = []
        if self.pacs_url is not None:
            found.append(
                PacsEndpoint(
                    DEFAULT_PACS_NAME, self.pacs_url, self.pacs_user, self.pacs_password, self.pacs_token,
                    self.pacs_timeout_s, self.pacs_verify_tls, self.pacs_ca_file,
                )  # fmt: skip
            )
        elif self.pacs_user is not None or self.pacs_token is not None:
            raise ConfigurationError("pacs_user/pacs_token are set but pacs_url is not")
        for endpoint in self.pacs:
            if not isinstance(endpoint, PacsEndpoint):
                raise ConfigurationError(f"pacs must hold PacsEndpoint values, got {type(endpoint).__name__}")
            if any(e.name == endpoint.name for e in found):
                raise ConfigurationError(f"two PACS are named {endpoint.name!r}")
            found.append(endpoint)
        return tuple(found)

    def pacs_endpoint(self, name: str | None = None) -> PacsEndpoint:
        """The PACS called ``name``; without a name, the only one configured."""
        endpoints = self.pacs_endpoints
        if not endpoints:
            raise ConfigurationError(
                "no PACS is configured: set RADASSIST_PACS_URL (the DICOMweb root) or a [pacs.NAME] table"
            )
        if name is None:
            if len(endpoints) > 1:
                names = ", ".join(e.name for e in endpoints)
                raise ConfigurationError(f"several PACS are configured ({names}): choose one with --pacs NAME")
            return endpoints[0]
        for endpoint in endpoints:
            if endpoint.name == name:
                return endpoint
        raise ConfigurationError(
            f"no PACS is named {name!r}; configured: {', '.join(e.name for e in endpoints)}"
        )

    @property
    def llm_urls(self) -> tuple[str, ...]:
        """The LLM servers of ``llm_url``: one, or several separated by commas (a pool; see assistant.llm.client)."""
        if self.llm_url is None:
            return ()
        return tuple(dict.fromkeys(u.strip() for u in self.llm_url.split(",") if u.strip()))

    @property
    def uses_embedded_engine(self) -> bool:
        return self.llm_url is None

    @property
    def phrases_guidelines(self) -> bool:
        """Whether guideline answers are re-phrased by the model (see ``guideline_phrasing``)."""
        if self.guideline_phrasing == "auto":
            return not (self.uses_embedded_engine and self.llm_model is None)
        return self.guideline_phrasing == "on"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "radassist.sqlite3"

    @property
    def database(self) -> str | Path:
        """Where the stores keep their state: ``database_url`` when set, else the SQLite file ``db_path``."""
        return self.database_url or self.db_path

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    default = _FIELDS[name].default
    ftype = _FIELDS[name].type
    if isinstance(raw, str) and raw == "" and "None" in str(ftype):
        return None
    try:
        if name in ("data_dir", "deid_salt_file", "guideline_index", "vision_teaching_index"):
            return Path(raw).expanduser()
        if name == "pacs":
            return _pacs_tables(raw)
        if name == "engine_extra_args":
            return tuple(raw.split()) if isinstance(raw, str) else tuple(str(x) for x in raw)
        if name in ("auth_trusted_proxies", "admin_users") and isinstance(raw, list):  # TOML may give a list
            return ",".join(str(x) for x in raw)
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"setting {name} has an invalid value {raw!r}: {exc}") from exc


_PACS_KEYS = {f.name for f in dataclasses.fields(PacsEndpoint)} - {"name"}


def _pacs_tables(raw: Any) -> tuple[PacsEndpoint, ...]:
    """``[pacs.NAME]`` TOML tables (url, user, password, token, timeout_s, verify_tls, ca_file) → endpoints."""
    if not isinstance(raw, dict):
        raise ConfigurationError("pacs must be TOML tables [pacs.NAME] with a url each (see docs/pacs.md)")
    endpoints = []
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"pacs.{name} must be a table with a url")
        unknown = sorted(set(table) - _PACS_KEYS)
        if unknown:
            raise ConfigurationError(f"unknown key(s) {', '.join(unknown)} in [pacs.{name}]")
        if "url" not in table:
            raise ConfigurationError(f"[pacs.{name}] needs a url (the DICOMweb root)")
        try:
            endpoints.append(
                PacsEndpoint(
                    name=str(name),
                    url=str(table["url"]),
                    user=str(table["user"]) if "user" in table else None,
                    password=str(table["password"]) if "password" in table else None,
                    token=str(table["token"]) if "token" in table else None,
                    timeout_s=float(table.get("timeout_s", 30.0)),
                    verify_tls=bool(table.get("verify_tls", True)),
                    ca_file=str(table["ca_file"]) if "ca_file" in table else None,
                )
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"[pacs.{name}] has an invalid value: {exc}") from exc
    return tuple(endpoints)


def load_settings(
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from a TOML file, ``RADASSIST_*`` variables and explicit overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    if path is not None:
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read the settings file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"the settings file {path} is not valid TOML: {exc}") from exc
        table = table.get("radassist", table)
        for key, raw in table.items():
            if key not in _FIELDS:
                raise ConfigurationError(f"unknown setting {key!r} in {path}")
            values[key] = _coerce(key, raw)
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in _FIELDS:
            raise ConfigurationError(f"unknown environment variable {key}")
        values[name] = _coerce(name, raw)
    for key, raw in overrides.items():
        if raw is None:
            continue
        if key not in _FIELDS:
            raise ConfigurationError(f"unknown setting {key!r}")
        values[key] = raw
    return Settings(**values)
