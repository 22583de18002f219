"""``radassist index build|add|stats|search``: the guideline, prior-report and teaching indexes, and the
similar-case index of teaching images (``--corpus images``).

``build --out DIR`` writes a complete index folder elsewhere than the data dir, to be shipped as files: app replicas
load it read-only through ``guideline_index`` / ``vision_teaching_index``, which ``stats`` and ``search`` read too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import assistant.priors as priors
import retrieval
from assistant.errors import RetrievalError
from assistant.imaging.deid import Pseudonymizer
from assistant.settings import Settings

# images: teaching cases' images (JSONL of {"case_id", "image", "report"}) for similar-case search.
CORPORA = ("guidelines", "reports", "teaching", "images")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``index`` command and its subcommands."""
    parser = sub.add_parser("index", help="build, extend, inspect and search the retrieval indexes")
    isub = parser.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")

    def common(p: argparse.ArgumentParser, default_corpus: str | None = "guidelines") -> None:
        p.add_argument("--corpus", choices=CORPORA, default=default_corpus, help="which index (default: %(default)s)")
        p.add_argument("--model", help="embedding model id or path (default: the offline all-MiniLM-L6-v2); "
                       "'hashing-DIM' is a model-free test embedder")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    build = isub.add_parser("build", help="(re)build an index from scratch")
    common(build)
    _input_args(build)
    build.add_argument("--kind", choices=("auto", "flat", "hnsw", "ivfpq"), default="auto",
                       help="vector index type (default: auto, exact for small corpora)")
    build.add_argument("--out", type=Path, metavar="DIR",
                       help="write the index folder here instead of the data dir, to ship it as files (guidelines, "
                       "teaching, images): replicas load it read-only with RADASSIST_GUIDELINE_INDEX or "
                       "RADASSIST_VISION_TEACHING_INDEX")
    build.set_defaults(func=run_build)

    add = isub.add_parser("add", help="add reports (or guideline files) to an existing index")
    common(add, default_corpus="reports")
    _input_args(add)
    add.set_defaults(func=run_add)

    stats = isub.add_parser("stats", help="what each index holds")
    common(stats, default_corpus=None)
    stats.set_defaults(func=run_stats)

    search = isub.add_parser("search", help="search an index")
    common(search)
    search.add_argument("query", nargs="?", help="the question")
    search.add_argument("--k", type=int, default=5, help="number of hits (default: %(default)s)")
    search.add_argument("--patient", help="pseudonymous patient key (required for --corpus reports)")
    search.add_argument("--batch", type=Path, help="JSONL file of {\"id\", \"query\"}: one JSON line out per query")
    search.add_argument("--min-relevance", type=float, default=None,
                        help="drop hits whose cosine relevance is below this (guidelines default: "
                        f"{retrieval.DEFAULT_MIN_RELEVANCE})")
    search.add_argument("--mode", choices=("hybrid", "dense", "bm25"), default="hybrid", help=argparse.SUPPRESS)
    search.add_argument("--image", type=Path, action="append", default=[], metavar="PATH",
                        help="--corpus images: the teaching cases most like this image (repeatable)")
    search.set_defaults(func=run_search)


def _input_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=Path, help="reports file (.csv, .json, .jsonl) for reports/teaching; for images "
                   'a JSONL of {"case_id", "image", "report"} (image paths relative to the file)')
    p.add_argument("--synthetic-patients", type=int, metavar="N",
                   help="demo data without patient keys/dates (e.g. IU X-ray): assign N made-up patients "
                   "and dates deterministically")
    p.add_argument("--kb-dir", type=Path, help="folder of guideline *.toml files (default: the built-in ones)")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except retrieval.RetrievalError as exc:
        raise RetrievalError(str(exc)) from exc


def _index_path(settings: Settings, corpus: str) -> Path:
    return Path(settings.data_dir) / "index" / corpus


def _shipped_path(settings: Settings, corpus: str) -> Path | None:
    """The read-only index folder a setting points the app at for ``corpus``, if any."""
    shipped = {"guidelines": settings.guideline_index, "images": settings.vision_teaching_index}.get(corpus)
    return Path(shipped).expanduser() if shipped is not None else None


def _read_path(settings: Settings, corpus: str) -> Path:
    """The index the app reads for ``corpus``: the shipped folder when a setting names one, else the data dir's."""
    return _shipped_path(settings, corpus) or _index_path(settings, corpus)


def _out_dir(args: argparse.Namespace) -> Path | None:
    """``--out DIR``, checked: an index folder is replaced, but a folder of other files is never swept into."""
    if args.out is None:
        return None
    if args.corpus == "reports":
        raise RetrievalError("--out is for the guidelines, teaching and images indexes: prior reports are kept in "
                             "the database (RADASSIST_DATABASE_URL), not in an index folder")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise RetrievalError(f"--out {out} is a file: give a new or empty folder")
    # A commit removes the entries named like old versions (v*, .tmp-*): never in a folder that is not an index.
    if out.is_dir() and any(out.iterdir()) and not retrieval.VersionedFolder(out).exists():
        raise RetrievalError(f"--out {out} holds other files and is not an index folder: give a new or empty folder")
    return out


def _embedder(args: argparse.Namespace, settings: Settings) -> retrieval.Embedder:
    model = args.model or settings.embedding_model
    return retrieval.create_embedder(model)


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


def _read_reports(args: argparse.Namespace, settings: Settings | None = None) -> list[retrieval.PriorReport]:
    if args.input is None:
        raise RetrievalError(f"--input FILE is required for the {args.corpus} corpus")
    synthetic = retrieval.SyntheticPatients(n_patients=args.synthetic_patients) if args.synthetic_patients else None
    if settings is not None and args.corpus == "reports" and synthetic is None:
        rows = retrieval.read_rows(args.input)
        if any(_pick_raw_id(row) for row in rows):
            # Raw patient IDs (patient_id, mrn, ...): the same de-identification as `radassist priors import`
            # (ingest's keys and date shifts, scrubbed text), never the raw ID in the index.
            return priors.deidentify_rows(rows, Pseudonymizer.from_settings(settings), trust_keys=True)
    return retrieval.read_reports(args.input, synthetic=synthetic)


def _pick_raw_id(row: dict[str, str]) -> bool:
    return any(k.strip().lower() in priors.RAW_PATIENT_COLUMNS and v.strip() for k, v in row.items())


def _kb(args: argparse.Namespace) -> retrieval.KnowledgeBase:
    return retrieval.KnowledgeBase.from_dir(args.kb_dir) if args.kb_dir else retrieval.KnowledgeBase.load_default()


def run_build(args: argparse.Namespace, settings: Settings) -> int:
    """Build one index from scratch (an existing one is replaced atomically)."""
    out = _out_dir(args)
    if args.corpus == "images":
        return _build_images(args, settings, out)
    with _translated():
        embedder = _embedder(args, settings)
        config = retrieval.IndexConfig(kind=args.kind)
        path = out or _index_path(settings, args.corpus)
        if args.corpus == "guidelines":
            index = retrieval.HybridIndex.build(_kb(args).chunks(), embedder, path, config=config, show_progress=True)
            stats = {**index.stats(), "corpus_digest": index.manifest().digest}
        elif args.corpus == "reports":  # in the database now: every stored prior report replaced, in one go
            reports = _read_reports(args, settings)
            with priors.open_prior_store(settings) as store:
                store.add(reports, embedder, replace=True, show_progress=True)
                stats = store.stats()
            path = Path(str(stats["path"]))
        else:
            stats = retrieval.TeachingIndex.build(
                _read_reports(args), embedder, path, config=config, show_progress=True).stats()
            stats["corpus_digest"] = retrieval.HybridIndex.read_manifest(path).digest
    _emit(args, stats, f"built {args.corpus} index: {stats['chunks']} chunks ({stats['kind']}) at {path}")
    return 0


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    """Add new material to an existing index (same embedding model required)."""
    if args.corpus == "images":
        raise RetrievalError("the images index is built whole from its corpus: run "
                             "`radassist index build --corpus images --input FILE`")
    with _translated():
        embedder = _embedder(args, settings)
        path = _index_path(settings, args.corpus)
        if args.corpus == "guidelines":
            index = retrieval.HybridIndex.load(path, embedder)
            added = index.add(_kb(args).chunks(), show_progress=True)
            total = len(index)
        elif args.corpus == "reports":  # into the database: seen at once by every replica on it
            reports = _read_reports(args, settings)
            with priors.open_prior_store(settings) as store:
                added = store.add(reports, embedder, show_progress=True)
                total = int(store.stats()["chunks"])
        else:
            teaching = retrieval.TeachingIndex.load(path, embedder)
            added, total = teaching.add(_read_reports(args), show_progress=True), len(teaching)
    _emit(args, {"corpus": args.corpus, "added": added, "chunks": total},
          f"added {added} chunks to the {args.corpus} index ({total} in all)")
    return 0


def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    """Print what each built index holds (manifests only; no model is loaded)."""
    corpora = [args.corpus] if args.corpus else list(CORPORA)
    out: dict[str, Any] = {}
    with _translated():
        for corpus in corpora:
            path = _read_path(settings, corpus)
            if corpus == "images":
                out[corpus] = _images_stats(path)
                continue
            if corpus == "reports":
                with priors.open_prior_store(settings) as store:
                    stored = store.stats()
                out[corpus] = stored if stored["chunks"] else None
                continue
            if not retrieval.HybridIndex.exists(path):
                out[corpus] = None
                continue
            m = retrieval.HybridIndex.read_manifest(path)
            out[corpus] = {"path": str(path), "chunks": m.count, "embedding_model": m.embedding_model,
                           "dim": m.dim, "kind": m.kind, "updated_at": m.updated_at, "corpus_digest": m.digest}
    lines = [f"{c}: not built" if v is None else
             f"{c}: {v['cases']} cases ({v['skipped']} skipped), encoder {v['encoder']}, from {v['corpus']}, "
             f"built {v['built_at']}" if c == "images" else
             f"{c}: {v['chunks']} chunks, {v['kind']}, {v['embedding_model']} ({v['dim']}-d), updated {v['updated_at']}"
             for c, v in out.items()]
    _emit(args, out, "\n".join(lines))
    return 0


def _searcher(args: argparse.Namespace, settings: Settings) -> Callable[[str, str | None], list[retrieval.Hit]]:
    embedder = _embedder(args, settings)
    path = _index_path(settings, args.corpus)
    k = args.k
    if args.corpus == "guidelines":
        shipped = _shipped_path(settings, "guidelines")
        if shipped is not None:  # the app's read-only index: opened as it is, never (re)built
            index = retrieval.open_guideline_index(shipped, embedder)
        else:
            index = retrieval.ensure_guideline_index(path, embedder, show_progress=True)
        threshold = retrieval.DEFAULT_MIN_RELEVANCE if args.min_relevance is None else args.min_relevance
        # The default threshold is calibrated for MiniLM; another model gets no default cut-off.
        if args.min_relevance is None and embedder.model_id != retrieval.DEFAULT_MODEL_ID:
            threshold = None
        return lambda query, _patient: index.search(query, k, mode=args.mode, min_relevance=threshold)
    if args.corpus == "reports":
        store = priors.open_prior_store(settings)  # one patient's sections read and ranked per query

        def search_reports(query: str, patient: str | None) -> list[retrieval.Hit]:
            if not (patient or "").strip():
                raise retrieval.PatientKeyRequiredError(
                    "prior reports can only be searched for one patient: a patient key is required (--patient)")
            return store.search(query, patient or "", embedder, k, min_relevance=args.min_relevance)

        return search_reports
    teaching = retrieval.TeachingIndex.load(path, embedder)
    return lambda query, patient: teaching.similar_cases(
        query, k, exclude_patient=patient, min_relevance=args.min_relevance)


def run_search(args: argparse.Namespace, settings: Settings) -> int:
    """Search one index; prior reports only with ``--patient``; teaching images only with ``--image``."""
    if args.k < 1:
        raise RetrievalError(f"--k must be at least 1, got {args.k}")
    if args.corpus == "images":
        return _search_images(args, settings)
    if args.image:
        raise RetrievalError("--image searches the images index: add --corpus images")
    if (args.query is None) == (args.batch is None):
        raise RetrievalError("give either a query or --batch FILE")
    batch: list[dict[str, Any]] = []
    if args.batch is not None:
        try:
            lines = args.batch.read_text(encoding="utf-8").splitlines()
            batch = [json.loads(line) for line in lines if line.strip()]
        except OSError as exc:
            raise RetrievalError(f"cannot read {args.batch}: {exc.strerror}") from exc
        except ValueError as exc:
            raise RetrievalError(f"{args.batch} is not JSONL: {exc}") from exc
    if args.corpus == "reports":  # refused before anything is loaded
        missing = not args.patient if args.batch is None else any(
            not (row.get("patient") or args.patient) for row in batch)
        if missing:
            raise RetrievalError("prior reports can only be searched for one patient: give --patient KEY")
    with _translated():
        search = _searcher(args, settings)
        if args.batch is None:
            hits = search(args.query, args.patient)
            if args.json:
                print(json.dumps({"hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
            else:
                _print_hits(hits)
            return 0
        for row in batch:
            out: dict[str, Any] = {"id": row.get("id")}
            try:
                hits = search(str(row.get("query", "")), row.get("patient") or args.patient)
                out["hits"] = [h.to_dict() for h in hits]
            except retrieval.RetrievalError as exc:
                out["hits"], out["error"] = [], str(exc)
            print(json.dumps(out, ensure_ascii=False))
            sys.stdout.flush()
    return 0


def _print_hits(hits: list[retrieval.Hit]) -> None:
    if not hits:
        print("no source found above the relevance threshold")
        return
    for n, hit in enumerate(hits, start=1):
        print(f"[{n}] {hit.title} ({hit.section}) score={hit.score:.4f} relevance={hit.relevance:.2f}")
        print(f"    {hit.source}")
        for line in hit.text.splitlines():
            print(f"    {line}")


# -- images: similar teaching cases ----------------------------------------------------------------------


def _stderr(message: str) -> None:
    print(f"radassist: {message}", file=sys.stderr, flush=True)


def _build_images(args: argparse.Namespace, settings: Settings, out: Path | None = None) -> int:
    """Encode the corpus's images with the configured encoder and commit the index (replacing the old one)."""
    from assistant.vision.similar_cases import build_similar_index

    if args.input is None:
        raise RetrievalError("--input FILE is required for the images corpus (JSONL of case_id, image, report)")
    path = out or _index_path(settings, "images")
    index = build_similar_index(settings, args.input, path, progress=_stderr)
    meta = index.meta
    _emit(args, {"corpus": "images", "path": str(path), "cases": meta["count"], "skipped": meta["skipped"],
                 "encoder": meta["encoder"]},
          f"built images index: {meta['count']} cases ({meta['skipped']} skipped, see the warnings) at {path}")
    return 0


def _images_stats(path: Path) -> dict[str, Any] | None:
    from assistant.vision.similar_cases import read_index_meta

    meta = read_index_meta(path)
    if meta is None:
        return None
    return {"path": str(path), "cases": meta.get("count"), "skipped": meta.get("skipped", 0),
            "encoder": meta.get("encoder"), "corpus": meta.get("corpus"), "built_at": meta.get("built_at")}


def _search_images(args: argparse.Namespace, settings: Settings) -> int:
    """The teaching cases most like the ``--image`` files (built first when the configured corpus needs it)."""
    from assistant.cli.chat import load_images
    from assistant.vision.similar_cases import SimilarCaseLibrary

    if not args.image or args.query or args.batch:
        raise RetrievalError("the images index is searched with --image PATH (no text query, no --batch)")
    # A shipped index (vision_teaching_index) is the library's own folder, opened read-only.
    folder = None if settings.vision_teaching_index is not None else _index_path(settings, "images")
    library = SimilarCaseLibrary(settings, folder=folder)
    if library.index(_stderr) is None:
        raise RetrievalError("no images index: build one (radassist index build --corpus images --input FILE) "
                             "or set RADASSIST_VISION_TEACHING_CORPUS or RADASSIST_VISION_TEACHING_INDEX")
    hits = library.search(load_images(args.image, settings), args.k)
    if args.json:
        print(json.dumps({"hits": [h.to_json() for h in hits]}, ensure_ascii=False))
        return 0
    for n, hit in enumerate(hits, start=1):
        print(f"[{n}] {hit.case_id} score={hit.score:.4f}")
        print(f"    {hit.image}")
        for line in hit.report.splitlines():
            print(f"    {line}")
    return 0
