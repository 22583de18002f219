"""Uploads that several tabs share: Gradio keeps an upload at ``<cache>/<keyed hash of its bytes>/<file name>``,
so tabs (of one user or several) that attach identical bytes under the same name hold the same path, and the
first submit's ingest deletes the file (raw uploads never outlive their ingest). :class:`IngestedUploads`
remembers, per app, what such an ingest made of those paths for a few minutes, so that the other tabs' submits get
the same study instead of a missing file.

Why this is safe across users: the folder name is a SHA-256 of a server-side seed and the bytes, so only a
browser that uploaded identical bytes (or was handed the path) can present the path, and before the first ingest
such a browser could read the file anyway; the registry keeps that window open for at most ``max_age_s`` (never
beyond the upload area's own age limit). It holds only the de-identified, in-memory ingest result (the study the
tabs share, pixels read-only), never bytes, paths' contents or raw headers, and is bounded in entries and in
decoded bytes. A path outside the upload area has no key here: it is refused as before.

Tabs share the :class:`~assistant.Study` object, which is immutable (frozen dataclasses, read-only pixel arrays):
what a tab changes (series, slice, window, pins) lives on its own ``Session`` and its renderings in its own folder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from assistant import IngestResult

logger = logging.getLogger(__name__)

MAX_AGE_S = 600.0  # the longest a result is kept (and never longer than the upload area's age limit)
MAX_ENTRIES = 16


def removed_text(name: str) -> str:
    """What a tab reads for an attachment it holds that an ingest elsewhere already deleted."""
    return f"`{name}` was removed from the upload area after another window opened the identical file; attach it again."


def result_bytes(result: IngestResult) -> int:
    """The decoded pixels a result keeps alive (modality values and 8-bit renderings)."""
    return sum(im.values.nbytes + im.rendering.nbytes for study in result.studies for im in study.images)


@dataclass(frozen=True)
class _Entry:
    keys: frozenset[str]
    result: IngestResult
    nbytes: int
    expires: float


@dataclass
class _Claim:
    lock: threading.Lock = field(default_factory=threading.Lock)
    holders: int = 0


class IngestedUploads:
    """Upload paths recently ingested (and deleted), each pointing to the result of the one ingest that read them.

    Thread-safe. ``claim`` serialises the submits that name the same path, so a second tab waits for the first
    tab's ingest and then finds its result instead of a half-deleted file. Entries expire after ``max_age_s``; the
    oldest go first when there are more than ``max_entries`` or their pixels exceed ``max_bytes`` (a result larger
    than that is not kept at all).
    """

    def __init__(
        self, max_age_s: float, max_entries: int = MAX_ENTRIES, max_bytes: int = 2**30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.max_age_s = min(float(max_age_s), MAX_AGE_S)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[str, _Entry] = {}
        self._entries: OrderedDict[frozenset[str], _Entry] = OrderedDict()  # oldest first
        self._claims: dict[str, _Claim] = {}

    @contextmanager
    def claim(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold ``keys`` (upload paths) against other submits naming any of them, until the block ends: locks
        taken in sorted order (no deadlock), and forgotten once nobody holds or waits for them."""
        ordered = sorted(set(keys))
        with self._lock:
            claims = [self._claims.setdefault(key, _Claim()) for key in ordered]
            for c in claims:
                c.holders += 1
        taken: list[_Claim] = []
        try:
            for c in claims:
                c.lock.acquire()
                taken.append(c)
            yield
        finally:
            for c in reversed(taken):
                c.lock.release()
            with self._lock:
                for key, c in zip(ordered, claims, strict=True):
                    c.holders -= 1
                    if not c.holders:
                        del self._claims[key]

    def record(self, keys: Collection[str], result: IngestResult) -> bool:
        """Remember that one ingest read exactly ``keys``; False when the result is too large to keep."""
        group = frozenset(keys)
        if not group:
            return False
        nbytes = result_bytes(result)
        with self._lock:
            self._expire()
            for key in group:  # what these paths meant before (an identical upload ingested earlier) is replaced
                if (old := self._by_key.get(key)) is not None:
                    self._drop(old)
            if nbytes > self.max_bytes:
                return False
            entry = _Entry(group, result, nbytes, self._clock() + self.max_age_s)
            self._entries[group] = entry
            self._by_key.update(dict.fromkeys(group, entry))
            while len(self._entries) > self.max_entries or self._bytes() > self.max_bytes:
                self._drop(next(iter(self._entries.values())))
        return True

    def result(self, keys: Collection[str]) -> IngestResult | None:
        """The result of the one ingest that read exactly ``keys``, while it is kept; else None."""
        group = frozenset(keys)
        with self._lock:
            self._expire()
            entry = self._entries.get(group)
            return entry.result if entry is not None else None

    def __contains__(self, key: object) -> bool:
        with self._lock:
            self._expire()
            return key in self._by_key

    def __len__(self) -> int:
        """Ingests kept."""
        with self._lock:
            self._expire()
            return len(self._entries)

    def _bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def _drop(self, entry: _Entry) -> None:
        if self._entries.get(entry.keys) is entry:
            del self._entries[entry.keys]
        for key in entry.keys:
            if self._by_key.get(key) is entry:
                del self._by_key[key]

    def _expire(self) -> None:
        now = self._clock()
        for entry in [e for e in self._entries.values() if e.expires <= now]:
            self._drop(entry)
