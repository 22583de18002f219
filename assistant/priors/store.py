"""Prior reports in the database: every replica finds a report the moment any replica imported it.

Reports and their section chunks live in the tables of migration 0003 (``prior_reports``, ``prior_chunks``), each
chunk with its embedding (float32 bytes and the model that made it). A question about a patient reads that patient's
chunks only (an indexed key), builds a small FAISS + BM25 index over them for this one query
(:meth:`retrieval.PriorReportIndex.from_vectors`) and ranks them; nothing is rebuilt after an import, and another
patient's report can never be ranked, because it is never read. Only pseudonymous keys, report pseudonyms, shifted
dates and de-identified text are stored (:mod:`assistant.priors.importer` scrubs them first).

A prior-report index folder of an earlier version (``<data_dir>/index/reports``) is moved into the database the
first time the store is used, vectors and all, and renamed ``reports.migrated`` (kept, so nothing is lost; delete it
once the import is checked).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

import retrieval
from assistant.errors import RetrievalError, translated_retrieval_errors
from assistant.settings import Settings
from assistant.store.db import DatabaseStore
from retrieval.index import embed_chunks

logger = logging.getLogger(__name__)

_BATCH = 500  # ids per IN (...) list: well under SQLite's 32766 bound variables and PostgreSQL's 65535
MIGRATED_SUFFIX = ".migrated"  # an index folder moved into the database is renamed <name>.migrated

_META = sa.MetaData()  # the tables as migration 0003 made them (never created from here)
_REPORTS = sa.Table(
    "prior_reports", _META,
    sa.Column("patient_key", sa.Text, primary_key=True),
    sa.Column("report_id", sa.Text, primary_key=True),
    sa.Column("study_date", sa.Text, primary_key=True),
    sa.Column("modality", sa.Text),
    sa.Column("imported_at", sa.Double),
)  # fmt: skip
_CHUNKS = sa.Table(
    "prior_chunks", _META,
    sa.Column("chunk_id", sa.Text, primary_key=True),
    sa.Column("patient_key", sa.Text), sa.Column("report_id", sa.Text), sa.Column("study_date", sa.Text),
    sa.Column("position", sa.Integer), sa.Column("source", sa.Text), sa.Column("title", sa.Text),
    sa.Column("section", sa.Text), sa.Column("text", sa.Text), sa.Column("metadata", sa.Text),
    sa.Column("model_id", sa.Text), sa.Column("dim", sa.Integer), sa.Column("vector", sa.LargeBinary),
    sa.Column("imported_at", sa.Double),
)  # fmt: skip


def _require_key(patient_key: str | None) -> str:
    if patient_key is None or not str(patient_key).strip():
        raise RetrievalError("prior reports can only be read for one patient: a patient key is required")
    return str(patient_key).strip()


def _vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()  # (dim,) little-endian float32


class PriorReportStore(DatabaseStore):
    """The prior reports of every patient in the database (``target``: a SQLite file or a database URL).

    ``legacy_index``: an on-disk prior-report index of an earlier version, moved in on first use.
    """

    WHAT = "prior-report store"
    ERROR = RetrievalError

    def __init__(self, target: Path | str, *, legacy_index: Path | None = None) -> None:
        super().__init__(target)
        self.legacy_index = Path(legacy_index) if legacy_index is not None else None
        self._legacy_lock = threading.Lock()
        self._legacy_done = legacy_index is None

    # -- writing ---------------------------------------------------------------------------------------------------

    def add(
        self,
        reports: Iterable[retrieval.PriorReport],
        embedder: retrieval.Embedder,
        *,
        replace: bool = False,
        show_progress: bool = False,
    ) -> int:
        """Store the reports' sections with ``embedder``'s vectors; returns how many chunks are new.

        Idempotent: sections already stored are skipped (chunk ids hash key, report, date and text), except that
        sections embedded by another model are embedded again with this one. ``replace``: every stored prior
        report is removed first, in the same transaction (``index build --corpus reports``).
        """
        self._ready()
        reports = list(reports)
        rows: dict[str, tuple[retrieval.PriorReport, int, retrieval.Chunk]] = {}
        for report in reports:
            for position, chunk in enumerate(report.chunks()):
                rows.setdefault(chunk.id, (report, position, chunk))
        stored = {} if replace else self._stored_models(list(rows))
        todo = [chunk for cid, (_, _, chunk) in rows.items() if stored.get(cid) != embedder.model_id]
        with translated_retrieval_errors():
            vectors = embed_chunks(embedder, todo, show_progress)  # (len(todo), dim) unit rows
        now = time.time()
        new = [(rows[c.id], v) for c, v in zip(todo, vectors, strict=True) if c.id not in stored]
        again = [(c, v) for c, v in zip(todo, vectors, strict=True) if c.id in stored]
        with self._writing("write to") as conn:
            if replace:
                conn.execute(_CHUNKS.delete())
                conn.execute(_REPORTS.delete())
            self._insert(conn, _REPORTS, [
                {"patient_key": r.patient_key, "report_id": r.report_id, "study_date": r.study_date.isoformat(),
                 "modality": r.modality, "imported_at": now}
                for r in {(r.patient_key, r.report_id, r.study_date): r for r in reports}.values()
            ])  # fmt: skip
            self._insert(conn, _CHUNKS, [
                self._chunk_row(chunk, position, embedder.model_id, vector, now)
                for (_report, position, chunk), vector in new
            ])  # fmt: skip
            for chunk, vector in again:
                conn.execute(
                    _CHUNKS.update().where(_CHUNKS.c.chunk_id == chunk.id).values(
                        model_id=embedder.model_id, dim=int(vector.shape[0]), vector=_vector_bytes(vector)
                    )
                )
        logger.info("stored %d new prior-report sections (%d re-embedded) of %d patients", len(new), len(again),
                    len({r.patient_key for r in reports}))
        return len(new)

    @staticmethod
    def _chunk_row(chunk: retrieval.Chunk, position: int, model_id: str, vector: np.ndarray, now: float) -> dict[
        str, Any
    ]:
        meta = chunk.metadata
        return {
            "chunk_id": chunk.id, "patient_key": meta["patient_key"], "report_id": meta["report_id"],
            "study_date": meta["date"], "position": position, "source": chunk.source, "title": chunk.title,
            "section": chunk.section, "text": chunk.text, "metadata": json.dumps(dict(meta), sort_keys=True),
            "model_id": model_id, "dim": int(vector.shape[0]), "vector": _vector_bytes(vector), "imported_at": now,
        }  # fmt: skip

    def _insert(self, conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert the rows, skipping any another replica stored meanwhile (same primary key)."""
        if not rows:
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(dialect.insert(table).on_conflict_do_nothing(), list(rows))

    def _stored_models(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        """{chunk id: model id} of those of ``chunk_ids`` already stored."""
        out: dict[str, str] = {}
        with self._reading() as conn:
            for start in range(0, len(chunk_ids), _BATCH):
                part = chunk_ids[start : start + _BATCH]
                query = sa.select(_CHUNKS.c.chunk_id, _CHUNKS.c.model_id).where(_CHUNKS.c.chunk_id.in_(part))
                out.update({str(cid): str(model) for cid, model in conn.execute(query)})
        return out

    # -- reading ---------------------------------------------------------------------------------------------------

    def has_reports(self) -> bool:
        """Whether any prior report was imported (by any replica)."""
        self._ready()
        with self._reading() as conn:
            return conn.execute(sa.select(_CHUNKS.c.chunk_id).limit(1)).first() is not None

    def _patient_chunks(
        self, patient_key: str, model_id: str | None, *, vectors: bool
    ) -> tuple[list[retrieval.Chunk], np.ndarray | None]:
        """This patient's chunks (in report order) and, with ``vectors``, their (N, dim) float32 embeddings."""
        self._ready()
        key = _require_key(patient_key)
        columns = [_CHUNKS.c.chunk_id, _CHUNKS.c.source, _CHUNKS.c.title, _CHUNKS.c.section, _CHUNKS.c.text,
                   _CHUNKS.c.metadata, _CHUNKS.c.model_id, _CHUNKS.c.dim]  # fmt: skip
        if vectors:
            columns.append(_CHUNKS.c.vector)
        query = (
            sa.select(*columns)
            .where(_CHUNKS.c.patient_key == key)  # the indexed key: one patient's rows only are ever read
            .order_by(_CHUNKS.c.study_date.desc(), _CHUNKS.c.report_id, _CHUNKS.c.position, _CHUNKS.c.chunk_id)
        )
        with self._reading() as conn:
            rows = conn.execute(query).all()
        models = {str(row.model_id) for row in rows}
        if model_id is not None and models - {model_id}:
            raise RetrievalError(
                f"this patient's prior reports were embedded with {', '.join(sorted(models - {model_id}))!s} but "
                f"{model_id!r} is configured: import them again with the configured model "
                "(`radassist priors import FILE`), which embeds them anew"
            )
        chunks = [
            retrieval.Chunk(str(r.chunk_id), str(r.source), str(r.title), str(r.section), str(r.text),
                            {str(k): str(v) for k, v in json.loads(r.metadata).items()})
            for r in rows
        ]  # fmt: skip
        if not vectors:
            return chunks, None
        dims = {int(r.dim) for r in rows}
        if len(dims) > 1:
            raise RetrievalError("this patient's prior reports hold vectors of different sizes: import them again")
        matrix = np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows]) if rows else np.zeros((0, 0), "<f4")
        return chunks, matrix.astype(np.float32)  # (N, dim)

    def reports_for(self, patient_key: str, model_id: str | None = None) -> list[retrieval.PriorReport]:
        """This patient's reports, newest first ([] when none); ``model_id``: the embedding model the caller
        searches with (chunks of another model are refused, as they could not be searched)."""
        chunks, _ = self._patient_chunks(patient_key, model_id, vectors=False)
        with translated_retrieval_errors():
            return retrieval.group_reports(_require_key(patient_key), chunks)

    def search(
        self,
        query: str,
        patient_key: str,
        embedder: retrieval.Embedder,
        k: int = 5,
        *,
        min_relevance: float | None = None,
    ) -> list[retrieval.Hit]:
        """The ``k`` sections of this patient's reports that best answer ``query`` (FAISS + BM25 fused, over this
        patient's chunks only, built for this query); never another patient's."""
        key = _require_key(patient_key)
        chunks, vectors = self._patient_chunks(key, embedder.model_id, vectors=True)
        if not chunks or vectors is None:
            return []
        with translated_retrieval_errors():
            index = retrieval.PriorReportIndex.from_vectors(chunks, vectors, embedder)
            hits = index.search(query, key, k, min_relevance=min_relevance)
        return [h for h in hits if h.metadata.get("patient_key") == key]

    def stats(self) -> dict[str, Any]:
        """What the store holds: chunks, reports, patients, the embedding model(s), dimension, last import."""
        self._ready()
        with self._reading() as conn:
            chunks, patients, updated = conn.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(_CHUNKS.c.patient_key)),
                          sa.func.max(_CHUNKS.c.imported_at))
            ).one()  # fmt: skip
            reports = conn.execute(sa.select(sa.func.count()).select_from(_REPORTS)).scalar_one()
            models = conn.execute(sa.select(_CHUNKS.c.model_id, _CHUNKS.c.dim).distinct()).all()
        return {
            "path": self.where,
            "store": "database",
            "chunks": int(chunks),
            "reports": int(reports),
            "patients": int(patients),
            "embedding_model": ", ".join(sorted(str(m) for m, _ in models)) or None,
            "dim": max((int(d) for _, d in models), default=0),
            "kind": "per-patient",
            "updated_at": (
                dt.datetime.fromtimestamp(float(updated), dt.UTC).isoformat(timespec="seconds") if updated else None
            ),
        }

    # -- an index folder of an earlier version -----------------------------------------------------------------------

    def _ready(self) -> None:
        """Move the legacy index folder in, once per store (every replica with such a folder does it; the rows
        are the same, so the first one wins and the others add nothing)."""
        if self._legacy_done:
            return
        with self._legacy_lock:
            if self._legacy_done:
                return
            folder = self.legacy_index
            if folder is not None and retrieval.HybridIndex.exists(folder):
                self.import_index_folder(folder)
            self._legacy_done = True

    def import_index_folder(self, folder: Path) -> int:
        """Move the prior reports of an on-disk index (vectors kept, as its model made them) into the database and
        rename the folder ``<name>.migrated``; returns the chunks new to the database."""
        folder = Path(folder)
        with translated_retrieval_errors():
            manifest, chunks, vectors = retrieval.HybridIndex.read_stored(folder)
        needed = ("patient_key", "report_id", "date")
        kept = [(c, v) for c, v in zip(chunks, vectors, strict=True) if all(c.metadata.get(n) for n in needed)]
        if len(kept) < len(chunks):
            logger.warning("%d chunks of the old prior-report index have no patient key, report or date: skipped",
                           len(chunks) - len(kept))
        stored = self._stored_models([c.id for c, _ in kept])
        now = time.time()
        reports = {(c.metadata["patient_key"], c.metadata["report_id"], c.metadata["date"]): c for c, _ in kept}
        positions: dict[tuple[str, str, str], int] = {}
        rows = []
        for chunk, vector in kept:
            ident = (chunk.metadata["patient_key"], chunk.metadata["report_id"], chunk.metadata["date"])
            positions[ident] = positions.get(ident, -1) + 1  # the folder keeps each report's sections in order
            if chunk.id not in stored:
                rows.append(self._chunk_row(chunk, positions[ident], manifest.embedding_model, vector, now))
        with self._writing("write to") as conn:
            self._insert(conn, _REPORTS, [
                {"patient_key": p, "report_id": r, "study_date": d, "modality": c.metadata.get("modality", ""),
                 "imported_at": now}
                for (p, r, d), c in reports.items()
            ])  # fmt: skip
            self._insert(conn, _CHUNKS, rows)
        target = folder.with_name(folder.name + MIGRATED_SUFFIX)
        if target.exists():
            target = folder.with_name(f"{folder.name}{MIGRATED_SUFFIX}-{int(now)}")
        try:
            folder.rename(target)
        except OSError as exc:  # e.g. moved meanwhile by another store of this process: the rows are in
            logger.warning("the old prior-report index was stored but could not be renamed: %s", exc.strerror)
        logger.info("moved %d prior-report sections of %d patients from the index folder into the database",
                    len(rows), len({p for p, _, _ in reports}))
        return len(rows)


def open_prior_store(settings: Settings) -> PriorReportStore:
    """The prior-report store of ``settings.database`` (nothing opened yet), moving in ``<data_dir>/index/reports``
    of an earlier version on first use."""
    return PriorReportStore(settings.database, legacy_index=Path(settings.data_dir) / "index" / "reports")
