"""Load test of the app tier: N concurrent simulated readers against two `radassist serve` replicas on one
PostgreSQL behind a real nginx (ip_hash), compared with one replica on its SQLite file, in the same run.

The LLM is an OpenAI-protocol stub at the transport (tests/support/openai_stub.py), so the numbers are the app
tier's (Gradio's queue, ingest and rendering, the conversation engine, the drafting service, the database writes,
nginx), not a model's. Both configurations run the ``pixels`` vision profile without send-once (the stub keeps no
images), so every image question sends its rendered slice to the stub as a PNG; the bench counts them there.

Each reader is one browser tab, from its own loopback address (127.0.N.1: nginx's ip_hash keys on the first three
octets, so readers spread over the replicas and each stays on its own, as separate workstations would). It opens
the page (config and load event), then loops for ``--duration`` s over four kinds of request:

- text question: the ``/chat`` API (no study), streamed;
- image question: "New chat", upload a real CT slice (``POST /gradio_api/upload``, as the browser's file picker
  does), submit it with a question in the message box, wait for the answer and every event chained after it;
- guideline lookup: the ``calc_fleischner`` API (the Fleischner 2017 category computed in code);
- dictation: switch the mode to "Report draft", submit a finding (the draft gets it), switch back to "Study Q&A".

The message box, "New chat" and the mode switch are private events (no public API): the bench drives them the way
the page's JavaScript does, through Gradio's queue (``POST /gradio_api/queue/join`` with the event's ``fn_index``
and the tab's ``session_hash``, then the ``/gradio_api/queue/data`` event stream), firing each event's ``.then``
chain as the page does and sending back the values the server gave the components. Nobody logs in: the replicas
run on loopback in single-user mode, so every reader is the machine's one local user. An answer that is an error
line, a step that fails, or a request that times out is an error of the run, counted per kind with its reason.

    python -m bench.bench_replicas [--readers 10] [--duration 120] [--image DICOM] [--no-write]
"""

from __future__ import annotations

import argparse
import functools
import html
import json
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from assistant.llm.engine import free_port

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO.parent / "shared" / "data" / "dicom" / "pydicom_data" / "693_UNCI.dcm"  # one CT slice, 512×512
QUESTIONS = (
    "What are the CT signs of a tension pneumothorax?",
    "How is a simple renal cyst distinguished from a complex one on ultrasound?",
    "Which MRI sequences show an acute infarct best?",
)
IMAGE_QUESTIONS = ("What is shown on this slice?", "Is there a nodule on this slice?", "Describe this image.")
DICTATIONS = (
    "There is a 7 mm solid nodule in the right upper lobe.",
    "No pleural effusion.",
    "Mild cardiomegaly.",
)
# calc_fleischner's form, in the order of ui.calculators.fields("fleischner"): a solid single 7 mm nodule, low risk.
FLEISCHNER = ["solid", "single", "7", "", "", "", "low", "", "", False, False, False]
# Both configurations: the stub gets the pixels (a PNG per image), every time (it is not vLLM: no image cache).
VISION = {"RADASSIST_VISION_PROFILE": "pixels", "RADASSIST_VISION_SEND_ONCE": "0"}
TEMPLATE, TEMPLATE_TITLE = "ct_chest", "ct chest"  # the draft a dictation goes into, and its title (lower case)
STUDY_QA, REPORT = "Study Q&A", "Report draft"  # the mode radio's choices (ui.workspace.MODES)
KINDS = ("page open", "text question", "image question", "guideline lookup", "dictation")
CYCLE = KINDS[1:]  # what a reader does over and over; each reader starts at its own place in it
TIMEOUT_S = 120.0  # one HTTP request (an SSE read waits this long for the next line)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ------------------------------------------------------------------------------------------ the page's protocol


@dataclass(frozen=True)
class Event:
    """One event listener of the page (a dependency of Gradio's config)."""

    id: int
    name: str
    targets: tuple[tuple[int | None, str], ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    backend: bool  # False: the page's JavaScript only (nothing is sent)
    after: int | None  # the event this one is chained to with .then / .success
    only_on_success: bool
    only_on_failure: bool


@dataclass(frozen=True)
class PageConfig:
    """What the page knows from ``/config``: its components (ids, starting values) and its events."""

    values: dict[int, Any]
    elem_ids: dict[str, int]
    stateful: frozenset[int]
    events: tuple[Event, ...]

    @classmethod
    def parse(cls, config: dict[str, Any]) -> PageConfig:
        values, elem_ids, stateful = {}, {}, set()
        for comp in config.get("components", []):
            props = comp.get("props") or {}
            values[comp["id"]] = props.get("value")
            if props.get("elem_id"):
                elem_ids[str(props["elem_id"])] = comp["id"]
            if comp.get("type") == "state":
                stateful.add(comp["id"])
        events = tuple(
            Event(
                id=d["id"],
                name=str(d.get("api_name") or f"event {d['id']}"),
                targets=tuple((t[0], str(t[1])) for t in d.get("targets", [])),
                inputs=tuple(d.get("inputs", [])),
                outputs=tuple(d.get("outputs", [])),
                backend=bool(d.get("backend_fn")),
                after=d.get("trigger_after"),
                only_on_success=bool(d.get("trigger_only_on_success")),
                only_on_failure=bool(d.get("trigger_only_on_failure")),
            )
            for d in config.get("dependencies", [])
        )
        return cls(values=values, elem_ids=elem_ids, stateful=frozenset(stateful), events=events)

    def component(self, elem_id: str) -> int:
        try:
            return self.elem_ids[elem_id]
        except KeyError:
            raise RuntimeError(f"the page has no component #{elem_id}") from None

    def triggered(self, target: int | None, trigger: str) -> list[Event]:
        """The events a user action (``trigger`` on component ``target``; any component when None: the page's
        'load') starts, not counting those chained after others."""
        return [
            e for e in self.events
            if e.after is None and any(t == trigger and target in (None, c) for c, t in e.targets)
        ]  # fmt: skip

    def chained(self, event: int, success: bool) -> list[Event]:
        """The events that run once ``event`` has ended (as the page chains them: .then, .success, .failure)."""
        return [
            e for e in self.events
            if e.after == event and not (e.only_on_success and not success) and not (e.only_on_failure and success)
        ]  # fmt: skip


def apply_outputs(values: dict[int, Any], config: PageConfig, outputs: Iterable[int], data: Iterable[Any]) -> None:
    """What the page does with an event's outputs: an update replaces the value only when it carries one; a
    ``gr.State`` lives on the server and is never sent to the page."""
    for comp, value in zip(outputs, data, strict=False):
        if comp in config.stateful:
            continue
        if isinstance(value, dict) and value.get("__type__") == "update":
            if "value" in value:
                values[comp] = value["value"]
        else:
            values[comp] = value


def sse_messages(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON messages of Gradio's queue event stream (``data: {...}`` lines)."""
    for line in lines:
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload:
                yield json.loads(payload)


def message_texts(history: Any, role: str) -> list[str]:
    """The text of each ``role`` message of a chatbot value (Gradio 6: content is a string or a list of parts)."""
    out = []
    for message in history or []:
        if not isinstance(message, dict) or message.get("role") != role:
            continue
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        out.append(" ".join(text for text in map(_text_of, parts) if text is not None))
    return out


def _text_of(part: Any) -> str | None:
    """A content part's text: a string, or a part with a text (files, the thumbnails, have none)."""
    if isinstance(part, str):
        return part
    text = part.get("text") if isinstance(part, dict) else None
    return text if isinstance(text, str) else None


def sent_files(message: Any) -> int:
    """How many file parts (the thumbnails of the images sent with a question) a chat message carries."""
    content = message.get("content") if isinstance(message, dict) else None
    parts = content if isinstance(content, list) else [content]
    return sum(1 for p in parts if isinstance(p, dict) and (p.get("type") == "file" or "file" in p or "path" in p))


class Failed(RuntimeError):
    """A request of the run that did not do what the reader asked (its message is the reason shown)."""


@dataclass
class Tab:
    """One browser tab on the app: its session hash, the values its components hold, its events."""

    client: httpx.Client
    base: str
    config: PageConfig
    session_hash: str = field(default_factory=lambda: secrets.token_hex(6))
    values: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, client: httpx.Client, base: str) -> Tab:
        """Load the page as a browser does: the HTML, the config, then the page's load events."""
        client.get(base).raise_for_status()
        config = client.get(f"{base}config")
        config.raise_for_status()
        tab = cls(client, base, PageConfig.parse(config.json()))
        tab.values = dict(tab.config.values)
        tab.fire(None, "load")
        return tab

    def value(self, elem_id: str) -> Any:
        return self.values.get(self.config.component(elem_id))

    def upload(self, path: Path) -> dict[str, Any]:
        """The file into the app's upload cache (what the message box's file picker does); its FileData."""
        response = self.client.post(
            f"{self.base}gradio_api/upload", files=[("files", (path.name, path.read_bytes(), "application/dicom"))]
        )
        response.raise_for_status()
        [uploaded] = response.json()
        return {
            "path": uploaded, "orig_name": path.name, "size": path.stat().st_size, "mime_type": "application/dicom",
            "meta": {"_type": "gradio.FileData"},
        }  # fmt: skip

    def set(self, elem_id: str, value: Any) -> int:
        comp = self.config.component(elem_id)
        self.values[comp] = value
        return comp

    def fire(self, target: int | None, trigger: str) -> list[str]:
        """A user action: its events and everything chained after them, to the end (the page idle again), with the
        outputs applied. Returns the names of the events that ran; a failed one raises :class:`Failed`."""
        events = self.config.triggered(target, trigger)
        if not events:
            raise Failed(f"nothing listens to {trigger} on component {target}")
        ran: list[str] = []
        failed: list[str] = []
        pending: dict[str, Event] = {}

        def start(event: Event, trigger_id: int | None) -> None:
            if not event.backend:  # the page's own JavaScript: nothing to send; what follows it runs
                ran.append(event.name)
                for nxt in self.config.chained(event.id, True):
                    start(nxt, None)
                return
            body = {
                "data": [None if i in self.config.stateful else self.values.get(i) for i in event.inputs],
                "event_data": None, "fn_index": event.id, "trigger_id": trigger_id, "session_hash": self.session_hash,
            }  # fmt: skip
            joined = self.client.post(f"{self.base}gradio_api/queue/join", json=body)
            if joined.status_code != 200:
                raise Failed(f"{event.name}: queue/join HTTP {joined.status_code} {joined.text[:120]}")
            pending[joined.json()["event_id"]] = event

        for event in events:
            start(event, target)
        streams = 0
        while pending:
            streams += 1
            if streams > 50:
                raise Failed(f"the event stream kept closing with {sorted(e.name for e in pending.values())} open")
            url = f"{self.base}gradio_api/queue/data"
            with self.client.stream("GET", url, params={"session_hash": self.session_hash}) as stream:
                if stream.status_code != 200:
                    raise Failed(f"queue/data HTTP {stream.status_code} with {[e.name for e in pending.values()]} open")
                for message in sse_messages(stream.iter_lines()):
                    kind = message.get("msg")
                    if kind == "process_completed":
                        event_id = str(message.get("event_id"))
                        if event_id not in pending:
                            continue
                        event = pending.pop(event_id)
                        ok = bool(message.get("success"))
                        output = message.get("output") or {}
                        ran.append(event.name)
                        if ok:
                            apply_outputs(self.values, self.config, event.outputs, output.get("data") or [])
                        else:
                            why = output.get("error") or "no message (show_error is off: the replica's log has it)"
                            failed.append(f"{event.name} failed: {str(why)[:160]}")
                        for nxt in self.config.chained(event.id, ok):
                            start(nxt, None)
                    elif kind == "unexpected_error":
                        raise Failed(f"queue: unexpected_error {str(message.get('message'))[:160]}")
                    elif kind in ("close_stream", "server_stopped"):
                        break
        if failed:
            raise Failed("; ".join(failed))
        return ran


# ------------------------------------------------------------------------------------------ the readers' requests


def call(client: httpx.Client, base: str, api: str, data: list[Any]) -> str:
    """One public Gradio API call through the REST protocol; the final output, or an error raised."""
    started = client.post(f"{base}gradio_api/call/{api}", json={"data": data})
    started.raise_for_status()
    event_id = started.json()["event_id"]
    event, payload = "", ""
    with client.stream("GET", f"{base}gradio_api/call/{api}/{event_id}") as stream:
        stream.raise_for_status()
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                payload = line[5:].strip()
                if event in ("complete", "error"):
                    break
    if event != "complete":
        raise Failed(f"{api}: {event or 'no event'} {payload[:120]}")
    output = json.loads(payload)
    return str(output[0] if isinstance(output, list) and output else output)


def text_question(client: httpx.Client, base: str, i: int) -> None:
    out = call(client, base, "chat", [QUESTIONS[i % len(QUESTIONS)]])
    if not out.strip() or out.lstrip().startswith("⚠️"):
        raise Failed(f"chat answered: {out.strip()[:120]}")


def guideline_lookup(client: httpx.Client, base: str, i: int) -> None:
    out = call(client, base, "calc_fleischner", FLEISCHNER)
    if not any(word in out.lower() for word in ("month", "follow", "ct")) or out.lstrip().startswith("⚠️"):
        raise Failed(f"calc_fleischner answered: {out.strip()[:120]}")


def image_question(tab: Tab, image: Path, i: int) -> None:
    """A new study: New chat, the slice uploaded and submitted with a question, the answer awaited."""
    switches = int(tab.value("ra-switches") or 0) + 1  # what the page's JavaScript counts at the click (ui/app.py)
    tab.set("ra-switches", switches)
    tab.set("ra-shown", switches)
    tab.fire(tab.config.component("ra-new-chat"), "click")
    filedata = tab.upload(image)
    box = tab.set("ra-input", {"text": IMAGE_QUESTIONS[i % len(IMAGE_QUESTIONS)], "files": [filedata]})
    tab.fire(box, "submit")
    history = tab.value("ra-chat") or []
    notes = [t for t in message_texts(history, "assistant") if t.startswith("Loaded ")]
    if not notes:
        raise Failed(f"the upload was not loaded: {' | '.join(message_texts(history, 'assistant'))[:160]}")
    answer = message_texts(history[-1:], "assistant")
    if not answer or not answer[0].strip() or answer[0].lstrip().startswith("⚠️"):
        raise Failed(f"image question answered: {(answer or ['(no answer)'])[0].strip()[:160]}")
    asked = [m for m in history if isinstance(m, dict) and m.get("role") == "user"]
    if not asked or sent_files(asked[-1]) < 1:
        raise Failed("the question shows no image sent with it (no thumbnail)")


def dictation(tab: Tab, i: int) -> None:
    """Report draft mode (a new chest CT draft when the tab has none open: the study's own template is not known
    for a slice without a body part, and the app would ask which), one finding dictated, back to Study Q&A."""
    mode = tab.set("ra-mode", REPORT)
    tab.fire(mode, "change")
    if "No draft yet" in str(tab.value("ra-report") or ""):
        tab.set("ra-template", TEMPLATE)
        tab.fire(tab.config.component("ra-new-report"), "click")
        if TEMPLATE_TITLE not in str(tab.value("ra-report") or "").lower():
            raise Failed(f"New draft ({TEMPLATE}): {str(tab.value('ra-report-status') or '')[:160]}")
    said = DICTATIONS[i % len(DICTATIONS)]
    box = tab.set("ra-input", {"text": said, "files": []})
    tab.fire(box, "submit")
    reply = (message_texts(tab.value("ra-chat"), "assistant") or ["(no reply)"])[-1]
    report = html.unescape(str(tab.value("ra-report") or ""))
    tab.fire(tab.set("ra-mode", STUDY_QA), "change")
    if reply.lstrip().startswith("⚠️"):
        raise Failed(f"dictation answered: {reply.strip()[:160]}")
    if said.rstrip(".").lower() not in report.lower():
        raise Failed(f"the draft lacks the dictated finding; reply: {reply.strip()[:120]}")


# ------------------------------------------------------------------------------------------ the load


@dataclass
class KindStats:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies) + len(self.errors)


@dataclass
class RunResult:
    label: str
    kinds: dict[str, KindStats]
    wall_s: float
    upstreams: dict[str, int]
    llm_requests: int = 0
    llm_images: int = 0
    split: str = ""  # HTTP requests per replica, as the report shows them

    @property
    def ok(self) -> list[float]:
        return [x for k in self.kinds.values() for x in k.latencies]

    @property
    def errors(self) -> list[str]:
        return [f"{kind}: {e}" for kind, k in self.kinds.items() for e in k.errors]


class StubCounter:
    """Empties the stub's request list as the run goes (it keeps every body, images included), counting the
    requests and the images in each request's last user message."""

    def __init__(self, requests: list[dict[str, Any]]) -> None:
        self.source = requests
        self.requests = self.images = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def drain(self) -> None:
        batch = self.source[:]
        del self.source[: len(batch)]  # appends made meanwhile are after these: kept for the next drain
        for body in batch:
            self.requests += 1
            messages = body.get("messages") or [{}]
            content = messages[-1].get("content")
            if isinstance(content, list):
                self.images += sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.drain()

    def __enter__(self) -> StubCounter:
        self.drain()
        self.requests = self.images = 0  # what came before (the warm-up) is not the run's
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.drain()


def load(url: str, readers: int, duration_s: float, image: Path, label: str = "") -> RunResult:
    """``readers`` tabs, each from its own loopback address, cycling through the four kinds of request."""
    kinds = {kind: KindStats() for kind in KINDS}
    upstreams: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def count_upstream(response: httpx.Response) -> None:
        # nginx names the replica that answered; no header: the replica itself (direct), or nginx's own answer
        upstream = response.headers.get("x-radassist-upstream", "").split(",")[-1].strip() or "no upstream"
        with lock:
            upstreams[upstream] += 1

    def timed(kind: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            result = action()
        except Exception as exc:  # every failure is an error of the run, with its reason; never dropped
            reason = str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"
            with lock:
                kinds[kind].errors.append(" ".join(reason.split())[:240])
            return None
        with lock:
            kinds[kind].latencies.append(time.perf_counter() - started)
        return result

    def reader(n: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.{n + 1}.1")
        hooks = {"response": [count_upstream]}
        with httpx.Client(transport=transport, timeout=TIMEOUT_S, trust_env=False, event_hooks=hooks) as client:
            opened = timed("page open", lambda: Tab.open(client, url))
            if not isinstance(opened, Tab):
                return
            tab: Tab = opened
            actions: dict[str, Callable[[int], None]] = {
                "text question": lambda k: text_question(client, url, k),
                "image question": lambda k: image_question(tab, image, k),
                "guideline lookup": lambda k: guideline_lookup(client, url, k),
                "dictation": lambda k: dictation(tab, k),
            }
            i = n
            while time.monotonic() < deadline:
                kind = CYCLE[i % len(CYCLE)]
                timed(kind, functools.partial(actions[kind], i // len(CYCLE)))
                i += 1

    started = time.monotonic()
    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline + 4 * TIMEOUT_S - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    with lock:
        for _ in range(stuck):  # a reader still in a request long after the end: its request is an error too
            kinds["page open"].errors.append(f"a reader was still waiting {4 * TIMEOUT_S:.0f} s after the end")
    return RunResult(label, kinds, time.monotonic() - started, dict(upstreams))


# ------------------------------------------------------------------------------------------ the two configurations


@dataclass(frozen=True)
class Deployment:
    """Where the readers go (``url``) and each replica's own address, by name (for the warm-up and the split)."""

    url: str
    label: str
    replicas: dict[str, str]

    def split(self, upstreams: dict[str, int]) -> str:
        """HTTP requests per replica by name, from nginx's upstream addresses ("127.0.0.1:PORT"); requests that no
        replica answered (nginx's own error pages) are named so."""
        named: Counter[str] = Counter({name: 0 for name in self.replicas})
        direct = self.url in self.replicas.values()
        for upstream, n in upstreams.items():
            names = [k for k, url in self.replicas.items() if url.rstrip("/").endswith(f"//{upstream}")]
            if direct:
                names = [next(iter(self.replicas))]
            named[names[0] if names else f"{upstream} (nginx itself)"] += n
        return ", ".join(f"{name} {n}" for name, n in named.items())


@contextmanager
def one_replica_sqlite(root: Path, llm_url: str, radassist: Path) -> Iterator[Deployment]:
    from tests.e2e.test_workspace_browser import serve

    data = root / "single" / "data"
    data.mkdir(parents=True)
    with serve(radassist, data, free_port(), "--llm-url", llm_url, name="bench-single", settings=VISION) as url:
        yield Deployment(url, "1 replica, SQLite file (direct)", {"single": url})


@contextmanager
def two_replicas_postgres(root: Path, llm_url: str, radassist: Path) -> Iterator[Deployment]:
    from tests.e2e.test_workspace_browser import serve
    from tests.support.nginx import nginx
    from tests.support.postgres import PostgresCluster

    cluster = PostgresCluster().start()
    try:
        url = cluster.create_database("bench_replicas")
        root.mkdir(parents=True, exist_ok=True)
        salt = root / "deid_salt"
        salt.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
        salt.chmod(0o600)
        shared = {
            "RADASSIST_DATABASE_URL": url,
            "RADASSIST_BROWSER_SECRET": secrets.token_hex(32),
            "RADASSIST_DEID_SALT_FILE": str(salt),
            **VISION,
        }
        with ExitStack() as stack:
            ports, replicas = [], {}
            for name in ("a", "b"):
                data = root / f"replica-{name}" / "data"
                data.mkdir(parents=True)
                port = free_port()
                replicas[name] = stack.enter_context(
                    serve(radassist, data, port, "--llm-url", llm_url, name=f"bench-replica-{name}", settings=shared)
                )
                ports.append(port)
            front = stack.enter_context(nginx(root / "nginx", free_port(), ports))
            yield Deployment(front, "2 replicas, PostgreSQL 15, nginx ip_hash", replicas)
    finally:
        cluster.stop()


# ------------------------------------------------------------------------------------------ the report


def _s(value: float) -> str:
    return "–" if value != value else f"{value:.2f}"  # NaN: no successful request of that kind


def _ratio(new: float, base: float) -> str:
    return "–" if not base or new != new or base != base else f"{new / base:.2f}"


def table(base: RunResult, scaled: RunResult) -> list[str]:
    """Per kind of request, both configurations side by side, and the ratios (scaled out ÷ baseline)."""
    rows = [
        "| request | 1×SQLite n | p50 (s) | p95 (s) | errors | 2×PG n | p50 (s) | p95 (s) | errors "
        "| req/s ratio | p50 ratio | p95 ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = [k for k in KINDS if base.kinds[k].requests or scaled.kinds[k].requests]
    for name in [*names, "all"]:
        cells, rates, p50s, p95s = [], [], [], []
        for r in (base, scaled):
            lat = r.ok if name == "all" else r.kinds[name].latencies
            errs = len(r.errors) if name == "all" else len(r.kinds[name].errors)
            p50, p95 = percentile(lat, 0.5), percentile(lat, 0.95)
            cells.append(f"{len(lat) + errs} | {_s(p50)} | {_s(p95)} | {errs}")
            rates.append(len(lat) / r.wall_s)
            p50s.append(p50)
            p95s.append(p95)
        label = "**all**" if name == "all" else name
        rate = "–" if name == "page open" else _ratio(rates[1], rates[0])  # once per reader: not a rate
        rows.append(
            f"| {label} | {cells[0]} | {cells[1]} | {rate} | {_ratio(p50s[1], p50s[0])} | {_ratio(p95s[1], p95s[0])} |"
        )
    return rows


def error_lines(results: list[RunResult], per_kind: int = 3) -> list[str]:
    """Every configuration's errors: count per kind and the most frequent reasons (all of them on stderr)."""
    lines = []
    for r in results:
        for kind, stats in r.kinds.items():
            if not stats.errors:
                continue
            common = Counter(stats.errors).most_common(per_kind)
            reasons = "; ".join(f"{n}× `{reason.replace(chr(96), chr(39))}`" for reason, n in common)  # ` → '
            if others := len(stats.errors) - sum(n for _, n in common):
                reasons += f"; {others}× other reasons (stderr lists every one)"
            lines.append(f"- {r.label}, {kind}: {len(stats.errors)} error(s): {reasons}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=10, help="concurrent simulated readers (default 10)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load per configuration (default 120)")
    parser.add_argument("--image", type=Path, default=IMAGE, help="the DICOM each image question uploads")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.support.openai_stub import OpenAIStub

    if not args.image.is_file():
        parser.error(f"no such image: {args.image}")
    radassist = Path(sys.executable).parent / "radassist"
    progress = lambda m: print(f"bench_replicas: {m}", file=sys.stderr, flush=True)  # noqa: E731
    results: list[RunResult] = []
    answer = "No pneumothorax. The heart size is normal. No pleural effusion. " * 3
    with tempfile.TemporaryDirectory(prefix="radassist-bench-replicas-") as tmp, OpenAIStub(answer) as llm:
        for setup in (one_replica_sqlite, two_replicas_postgres):
            root = Path(tmp) / setup.__name__
            progress(f"starting: {setup.__name__}")
            with setup(root, llm.url, radassist) as deployment:
                label = deployment.label
                with httpx.Client(timeout=600.0, trust_env=False) as warm:
                    for replica in deployment.replicas.values():  # each one up (its guideline index built)
                        call(warm, replica, "chat", ["warm-up"])
                progress(f"{label}: {args.readers} readers for {args.duration:.0f} s")
                with StubCounter(llm.requests) as stub:
                    result = load(deployment.url, args.readers, args.duration, args.image, label)
                result.split = deployment.split(result.upstreams)
                result.llm_requests, result.llm_images = stub.requests, stub.images
                results.append(result)
                progress(f"{label}: {len(result.ok)} ok, {len(result.errors)} error(s) in {result.wall_s:.0f} s")
    for r in results:
        for reason, n in Counter(r.errors).most_common():
            progress(f"error ×{n} [{r.label}] {reason}")

    base, scaled = results
    splits = [
        f"{r.label}: {r.wall_s:.0f} s wall; HTTP requests per replica: {r.split}; the LLM stub got "
        f"{r.llm_requests} requests, "
        f"{r.llm_images} of them images (image questions answered: {len(r.kinds['image question'].latencies)})"
        for r in results
    ]
    errors = error_lines(results) or ["- none in either configuration."]
    body = "\n".join(
        [
            f"{args.readers} simulated readers for {args.duration:.0f} s per configuration, on a machine with 2 CPU "
            "cores shared by the load generator, the replicas, PostgreSQL, nginx and other work. Each reader is a "
            "browser tab from its own loopback address (nginx's ip_hash spreads them), cycling through: a text "
            f"question (`/chat`, streamed); an image question (New chat, a real DICOM `{args.image.name}` uploaded "
            "through `/gradio_api/upload` and submitted with a question in the message box, up to the answer and "
            "the events chained after it); a guideline lookup (`calc_fleischner`); a dictation (mode Report draft, "
            "a finding submitted into the draft, back to Study Q&A). The message box, New chat and the mode are "
            "private events, driven as the page's JavaScript drives them (Gradio's queue, per-tab session). "
            "LLM: an OpenAI-protocol stub at the transport (instant answers; `pixels` profile, so each image "
            "question sends its slice as a PNG), so this is the app tier alone. No log-in (single-user mode on "
            "loopback): every reader is the one local user.",
            "",
            *table(base, scaled),
            "",
            "n = requests (successful + errors); p50/p95 over the successful ones, in seconds; ratios are 2 "
            "replicas + PostgreSQL ÷ 1 replica + SQLite (req/s > 1 and p50/p95 < 1: the replicas do better). "
            "Page open = the page, its config and its load event, once per reader.",
            "",
            *(f"- {line}" for line in splits),
            "",
            "Errors (goal 0):",
            "",
            *errors,
        ]
    )
    sys.stdout.write(body + "\n")
    if not args.no_write:
        from bench.report import write_section

        command = "python -m bench.bench_replicas" + (f" --duration {args.duration:g}" if args.duration != 120 else "")
        command += f" --readers {args.readers}" if args.readers != 10 else ""
        write_section("replicas", "App replicas: 2 × PostgreSQL behind nginx vs 1 × SQLite (issue 18)", command, body)
    return 0 if not any(r.errors for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
