"""Similar teaching cases: ``index build|stats|search --corpus images``, the index built on first use, and
``ask --image`` listing them beside the answer. Real VQA-RAD images, the tiny real open_clip model, a real
FAISS index; the LLM is a local OpenAI-protocol server (tests/support/openai_stub.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.cli import index as cli_index
from assistant.errors import ConfigurationError, RetrievalError
from assistant.imaging.ingest import load_study
from assistant.runtime import open_runtime
from assistant.settings import Settings, load_settings
from assistant.vision.service import ImageRef, images_from_study
from assistant.vision.similar_cases import CURRENT, SimilarCaseLibrary, read_index_meta
from tests.assistant.vision.conftest import TINY_CLIP_NAME
from tests.support.openai_stub import OpenAIStub
from tests.support.read_only import read_only_tree, tree_state, writable_copy
from tests.ui.uploads import submitted

PHI_LINE = "Seen 2021-03-04, MRN 12345678, call +1 555 123 4567."


@pytest.fixture(scope="module")
def corpus_images(shared_dir: Path) -> list[Path]:
    images = sorted((shared_dir / "data/vqa_rad/images").glob("*.jpg"))[:8]
    assert len(images) == 8
    return images


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, corpus_images: list[Path]) -> Path:
    """cases.jsonl: 8 real images (one by a path relative to the file), one missing, one corrupt."""
    folder = tmp_path_factory.mktemp("teaching")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    rows = []
    for i, image in enumerate(corpus_images):
        path = os.path.relpath(image, folder) if i == 0 else str(image)
        report = f"Findings: teaching finding {i}.\nImpression: pattern {i}.\nRecommendation: none."
        if i == 1:
            report = f"{PHI_LINE}\n{report}"
        rows.append({"case_id": f"case-{i}", "image": path, "report": report})
    rows.append({"case_id": "case-missing", "image": "missing.png", "report": "gone"})
    rows.append({"case_id": "case-corrupt", "image": "corrupt.jpg", "report": "broken"})
    path = folder / "cases.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_spec(path: Path, config: Path, weights: Path) -> Path:
    path.write_text(json.dumps({"model_name": TINY_CLIP_NAME, "pretrained": str(weights),
                                "config_path": str(config)}), encoding="utf-8")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def encoder_a(tiny_clip_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    config, weights = tiny_clip_files
    return write_spec(tmp_path_factory.mktemp("encoder-a") / "encoder.json", config, weights)


@pytest.fixture(scope="module")
def encoder_b(tiny_clip_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same architecture with other (seeded random) weights: another encoder."""
    import open_clip
    import torch

    config, _ = tiny_clip_files
    folder = tmp_path_factory.mktemp("encoder-b")
    torch.manual_seed(1)
    torch.save(open_clip.create_model(TINY_CLIP_NAME, pretrained=None).state_dict(), folder / "weights.pt")
    return write_spec(folder / "encoder.json", config, folder / "weights.pt")


def settings_for(data_dir: Path, encoder: Path, corpus: Path | None = None) -> Settings:
    """Burned-in text is not read here: VQA-RAD pictures carry their uploader's name and a date in a footer, and
    the ones where some stays legible are withheld (tests/assistant/imaging/test_burned_in.py); these tests count
    the cases an index holds."""
    return load_settings(env={}, data_dir=data_dir, llm_url="http://127.0.0.1:9",
                         vision_teaching_encoder=str(encoder), burned_in_text="never",
                         vision_teaching_corpus=str(corpus) if corpus else None)  # fmt: skip


def index_cli(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_index.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["index", *argv])
    return int(args.func(args, settings))


def query(image: Path, settings: Settings) -> list[ImageRef]:
    study = load_study([image], settings).study
    assert study is not None
    return images_from_study(study)


# -- index build | stats | search --corpus images ------------------------------------------------------------


def test_cli_builds_the_images_index_skipping_unreadable_cases(
    tmp_path: Path, corpus: Path, encoder_a: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    settings = settings_for(tmp_path / "data", encoder_a)
    assert index_cli(settings, "stats", "--json", "--corpus", "images") == 0
    assert json.loads(capsys.readouterr().out) == {"images": None}
    with caplog.at_level(logging.WARNING):
        assert index_cli(settings, "build", "--corpus", "images", "--input", str(corpus), "--json") == 0
    built = json.loads(capsys.readouterr().out)
    assert built["cases"] == 8 and built["skipped"] == 2 and built["encoder"] == TINY_CLIP_NAME
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 2 and any("case-missing" in m for m in skipped) and any("case-corrupt" in m for m in skipped)
    folder = tmp_path / "data" / "index" / "images"
    version = folder / (folder / CURRENT).read_text().strip()
    assert sorted(p.name for p in folder.iterdir()) == sorted([CURRENT, version.name])  # no temp folder left
    stored = (version / "cases.jsonl").read_text()
    assert "12345678" not in stored and "2021-03-04" not in stored and "555" not in stored  # report de-identified
    assert "teaching finding 1" in stored

    assert index_cli(settings, "stats", "--json") == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["images"]["cases"] == 8 and stats["images"]["skipped"] == 2
    assert stats["images"]["corpus"] == str(corpus.resolve()) and stats["guidelines"] is None
    assert index_cli(settings, "stats", "--corpus", "images") == 0
    assert "images: 8 cases (2 skipped)" in capsys.readouterr().out

    first = version.name  # a rebuild commits a new version and removes the old one
    assert index_cli(settings, "build", "--corpus", "images", "--input", str(corpus)) == 0
    assert "built images index: 8 cases" in capsys.readouterr().out
    assert (folder / CURRENT).read_text().strip() != first and not (folder / first).exists()


def test_cli_search_by_image_puts_that_image_first(
    tmp_path: Path, corpus: Path, corpus_images: list[Path], encoder_a: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path / "data", encoder_a, corpus)  # configured: built by the search itself
    assert index_cli(settings, "search", "--corpus", "images", "--image", str(corpus_images[3]), "--k", "4",
                     "--json") == 0  # fmt: skip
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 4 and hits[0]["case_id"] == "case-3" and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert all(h["score"] < 0.9999 for h in hits[1:]) and hits[0]["report"].startswith("Findings: teaching finding 3")
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    with pytest.raises(RetrievalError, match="--image"):
        index_cli(settings, "search", "--corpus", "images", "some text")
    with pytest.raises(RetrievalError, match="built whole"):
        index_cli(settings, "add", "--corpus", "images", "--input", str(corpus))


# -- the library behind Runtime.similar_cases ----------------------------------------------------------------


def test_configured_corpus_is_indexed_on_first_use_and_rebuilt_when_stale(
    tmp_path: Path, corpus: Path, corpus_images: list[Path], encoder_a: Path, encoder_b: Path
) -> None:
    data = tmp_path / "data"
    own_corpus = tmp_path / "cases.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    for row in rows:  # this copy lives elsewhere: make the relative path absolute
        row["image"] = str((corpus.parent / row["image"]).resolve())
    own_corpus.write_text("".join(json.dumps(row) + "\n" for row in rows[:5]), encoding="utf-8")
    messages: list[str] = []
    library = SimilarCaseLibrary(settings_for(data, encoder_a, own_corpus))
    hits = library.search(query(corpus_images[2], library.settings), k=2, progress=messages.append)
    assert [h.case_id for h in hits][0] == "case-2" and len(hits) == 2
    assert any("first use" in m for m in messages) and any("encoded 5/5" in m for m in messages)
    assert read_index_meta(library.folder)["count"] == 5  # type: ignore[index]

    messages.clear()  # a new process, same corpus and encoder: the index on disk is used as it is
    again = SimilarCaseLibrary(settings_for(data, encoder_a, own_corpus))
    assert again.index(messages.append) is not None and messages == []

    own_corpus.write_text("".join(json.dumps(row) + "\n" for row in rows[:7]), encoding="utf-8")
    changed = SimilarCaseLibrary(settings_for(data, encoder_a, own_corpus))
    assert len(changed.index(messages.append).cases) == 7  # type: ignore[union-attr]
    assert any("teaching corpus changed" in m for m in messages)

    messages.clear()
    other = SimilarCaseLibrary(settings_for(data, encoder_b, own_corpus))
    assert other.search(query(corpus_images[2], other.settings), 1, messages.append)[0].case_id == "case-2"
    assert any("another image encoder" in m for m in messages)


def test_an_index_from_another_encoder_is_refused_when_there_is_no_corpus_to_rebuild_from(
    tmp_path: Path, corpus: Path, corpus_images: list[Path], encoder_a: Path, encoder_b: Path
) -> None:
    data = tmp_path / "data"
    assert index_cli(settings_for(data, encoder_a), "build", "--corpus", "images", "--input", str(corpus)) == 0
    library = SimilarCaseLibrary(settings_for(data, encoder_b))  # no corpus configured: the built index is used
    with pytest.raises(RetrievalError, match="built with another image encoder than the one configured"):
        library.search(query(corpus_images[0], library.settings), k=3)


def test_a_shipped_index_is_only_read_and_refused_with_the_setting_named_when_it_cannot_be_used(
    tmp_path: Path, corpus: Path, corpus_images: list[Path], encoder_a: Path, encoder_b: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "ship" / "images"
    builder = settings_for(tmp_path / "builder", encoder_a)
    assert index_cli(builder, "build", "--corpus", "images", "--input", str(corpus), "--out", str(out)) == 0
    assert f"at {out}" in capsys.readouterr().out and not (tmp_path / "builder" / "index").exists()

    def app(encoder: Path, folder: Path = out) -> Settings:  # a replica: the shipped folder, no corpus
        return load_settings(env={}, data_dir=tmp_path / "app", vision_teaching_encoder=str(encoder),
                             vision_teaching_index=folder)  # fmt: skip

    with read_only_tree(out) as state:
        library = SimilarCaseLibrary(app(encoder_a))
        assert library.read_only and library.folder == out
        assert library.search(query(corpus_images[3], library.settings), k=2)[0].case_id == "case-3"
        assert index_cli(app(encoder_a), "stats", "--json", "--corpus", "images") == 0
        assert json.loads(capsys.readouterr().out)["images"]["path"] == str(out)
        assert index_cli(app(encoder_a), "search", "--corpus", "images", "--image", str(corpus_images[5]),
                         "--json") == 0  # fmt: skip
        assert json.loads(capsys.readouterr().out)["hits"][0]["case_id"] == "case-5"
        with pytest.raises(RetrievalError, match="RADASSIST_VISION_TEACHING_INDEX.*another image encoder"):
            SimilarCaseLibrary(app(encoder_b)).index()
        assert tree_state(out) == state  # searched and refused: nothing written, nothing rebuilt
    assert not (tmp_path / "app" / "index").exists()

    missing = tmp_path / "missing"
    with pytest.raises(RetrievalError, match="RADASSIST_VISION_TEACHING_INDEX.*the folder does not exist"):
        SimilarCaseLibrary(app(encoder_a, missing)).index()
    assert not missing.exists()
    half = writable_copy(out, tmp_path / "half")
    (half / (half / CURRENT).read_text().strip() / "meta.json").unlink()  # a copy that missed its meta file
    with pytest.raises(RetrievalError, match="RADASSIST_VISION_TEACHING_INDEX.*unreadable") as caught:
        SimilarCaseLibrary(app(encoder_a, half)).index()
    assert f"--out {half}" in str(caught.value)


def test_an_embeds_profile_shares_its_bundle_encoder_with_the_similar_cases(
    tmp_path: Path, tiny_llava_dir: Path, corpus: Path, corpus_images: list[Path]
) -> None:
    from assistant.vision.service import VisionService

    settings = load_settings(env={}, data_dir=tmp_path / "data", vision_profile="llava-embeds",
                             vision_bundle=str(tiny_llava_dir), vision_teaching_corpus=str(corpus))  # fmt: skip
    vision = VisionService.from_settings(settings)
    library = SimilarCaseLibrary(settings, vision=vision)
    assert library.service() is vision  # one encoder in memory; the chat reuses the query's embeddings
    images = query(corpus_images[6], settings)
    hits = library.search(images, k=3)
    assert hits[0].case_id == "case-6" and hits[0].score == pytest.approx(1.0, abs=1e-3) and len(hits) == 3
    assert vision.cache.misses == 1  # the corpus was indexed without projecting it; the query went through the cache
    assert vision.attach(images).encoded == 0


def test_similar_cases_without_an_image_encoder_name_the_setting(tmp_path: Path, corpus: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", vision_teaching_corpus=str(corpus))
    library = SimilarCaseLibrary(settings)  # the default text-only profile has no encoder
    with pytest.raises(ConfigurationError, match="RADASSIST_VISION_TEACHING_ENCODER"):
        library.index()
    missing = settings.replace(vision_teaching_encoder=str(tmp_path / "nowhere.json"))
    with pytest.raises(ConfigurationError, match="neither a vision bundle nor a readable encoder spec"):
        SimilarCaseLibrary(missing).index()


def test_runtime_similar_cases_empty_without_corpus_and_loaded_once_from_threads(
    tmp_path: Path, corpus: Path, corpus_images: list[Path], encoder_a: Path
) -> None:
    with OpenAIStub() as llm:
        plain = load_settings(env={}, data_dir=tmp_path / "plain", llm_url=llm.url)
        with open_runtime(plain) as runtime:
            images = query(corpus_images[4], plain)
            assert runtime.prepare_similar_cases() is False
            assert runtime.similar_cases(images, k=3) == []

        settings = settings_for(tmp_path / "data", encoder_a, corpus).replace(llm_url=llm.url)
        with open_runtime(settings) as runtime:
            messages: list[str] = []
            results: list[list[str]] = []
            errors: list[BaseException] = []

            def ask() -> None:
                try:
                    results.append([c.case_id for c in runtime.similar_cases(images, 3, messages.append)])
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                    errors.append(exc)

            threads = [threading.Thread(target=ask) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)
            assert errors == [] and len(results) == 4
            assert all(r == results[0] for r in results) and results[0][0] == "case-4" and len(results[0]) == 3
            assert sum("building the similar-case index" in m for m in messages) == 1  # built once for all threads
            assert runtime.similar_cases(images, k=0) == []
        assert llm.requests == []  # looking up similar cases never talks to the model


# -- radassist ask --image: the similar cases beside the answer ----------------------------------------------


@pytest.fixture()
def llm() -> Iterator[OpenAIStub]:
    with OpenAIStub("No effusion is seen.") as stub:
        yield stub


def ask(radassist_bin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(radassist_bin), "ask", *args], capture_output=True, text=True, env=env, timeout=300)


def test_ask_lists_similar_teaching_cases_after_the_answer_but_never_sends_them(
    llm: OpenAIStub, radassist_bin: Path, cli_env: dict[str, str], corpus: Path, corpus_images: list[Path],
    encoder_a: Path,
) -> None:  # fmt: skip
    env = dict(cli_env, RADASSIST_LLM_URL=llm.url, RADASSIST_VISION_TEACHING_CORPUS=str(corpus),
               RADASSIST_VISION_TEACHING_ENCODER=str(encoder_a))  # fmt: skip
    image = str(corpus_images[5])
    out = ask(radassist_bin, env, "--image", image, "--json", "--similar", "2", "Any effusion?")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["answer"] == "No effusion is seen."
    cases = result["similar_cases"]
    assert len(cases) == 2 and cases[0]["case_id"] == "case-5" and cases[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert set(cases[0]) == {"case_id", "score", "report", "image"} and cases[0]["image"] == image
    assert "first use" in out.stderr  # built from the configured corpus, with progress
    assert "teaching finding" not in llm.prompt_text() and "case-5" not in llm.prompt_text()

    out = ask(radassist_bin, env, "--image", image, "Any effusion?")  # plain text, default K = 3, index reused
    assert out.returncode == 0, out.stderr[-2000:]
    answer, listing = out.stdout.split("Similar teaching cases", 1)
    assert answer.strip() == "No effusion is seen."
    assert listing.count("similarity") == 3 and "[1] case-5 (similarity 1.000)" in listing
    assert "Findings: teaching finding 5." in listing and "Recommendation" not in listing  # first lines only
    assert "first use" not in out.stderr

    out = ask(radassist_bin, env, "--image", image, "--json", "--similar", "0", "Any effusion?")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "similar_cases" not in json.loads(out.stdout)
    assert len(llm.requests) == 3 and "teaching finding" not in llm.prompt_text()


def test_ask_with_a_broken_or_foreign_index_still_answers_and_names_the_problem(
    llm: OpenAIStub, radassist_bin: Path, cli_env: dict[str, str], corpus: Path, corpus_images: list[Path],
    encoder_a: Path, encoder_b: Path,
) -> None:  # fmt: skip
    data = Path(cli_env["RADASSIST_DATA_DIR"])
    assert index_cli(settings_for(data, encoder_a), "build", "--corpus", "images", "--input", str(corpus)) == 0
    env = dict(cli_env, RADASSIST_LLM_URL=llm.url, RADASSIST_VISION_TEACHING_ENCODER=str(encoder_b))
    out = ask(radassist_bin, env, "--image", str(corpus_images[0]), "--json", "Any effusion?")
    assert out.returncode == 1, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["answer"] == "No effusion is seen." and "similar_cases" not in result
    assert "built with another image encoder" in result["similar_cases_error"]
    assert "radassist: similar teaching cases unavailable: the similar-case index" in out.stderr
    assert "Traceback" not in out.stderr

    folder = data / "index" / "images"
    (folder / (folder / CURRENT).read_text().strip() / "vectors.npy").write_bytes(b"not a numpy file")
    env["RADASSIST_VISION_TEACHING_ENCODER"] = str(encoder_a)
    out = ask(radassist_bin, env, "--image", str(corpus_images[0]), "Any effusion?")
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stdout.strip() == "No effusion is seen."
    assert "similar teaching cases unavailable" in out.stderr and "unreadable" in out.stderr
    assert "rebuild it" in out.stderr and "Traceback" not in out.stderr


# -- the workspace: a panel beside the answer --------------------------------------------------------------


def test_workspace_shows_similar_cases_after_an_upload_and_hides_them_without_a_corpus(
    tmp_path: Path, corpus: Path, corpus_images: list[Path], encoder_a: Path
) -> None:
    from ui.workspace import Workspace

    with OpenAIStub("No effusion is seen.") as stub:
        settings = settings_for(tmp_path / "data", encoder_a, corpus).replace(llm_url=stub.url)
        with open_runtime(settings) as runtime:
            ws = Workspace(runtime)
            _, _, s, *_ = ws.accept(submitted(ws.data_dir, [corpus_images[3]]), [], None)
            panel = ws.similar_cases(s)
            assert panel["visible"] and panel["value"].startswith("**Similar teaching cases**")
            first = panel["value"].split("\n")[2]
            assert first.startswith("1. `case-3` · similarity 1.00") and "teaching finding 3" in panel["value"]
            assert ws.similar_cases(None)["visible"] is False  # no study: nothing to compare
            ws.close()
        assert stub.requests == []  # the cases never went to the model

        plain = load_settings(env={}, data_dir=tmp_path / "plain", llm_url=stub.url)
        with open_runtime(plain) as runtime:
            ws = Workspace(runtime)
            _, _, s, *_ = ws.accept(submitted(ws.data_dir, [corpus_images[3]]), [], None)
            assert ws.similar_cases(s)["visible"] is False
            ws.close()


def test_workspace_names_the_problem_when_the_similar_case_index_is_from_another_encoder(
    tmp_path: Path, corpus: Path, corpus_images: list[Path], encoder_a: Path, encoder_b: Path
) -> None:
    from ui.workspace import Workspace

    built = settings_for(tmp_path / "data", encoder_a)
    assert index_cli(built, "build", "--corpus", "images", "--input", str(corpus)) == 0
    with OpenAIStub() as stub:
        with open_runtime(settings_for(tmp_path / "data", encoder_b).replace(llm_url=stub.url)) as runtime:
            ws = Workspace(runtime)
            _, _, s, *_ = ws.accept(submitted(ws.data_dir, [corpus_images[0]]), [], None)
            panel = ws.similar_cases(s)
            assert panel["visible"] and panel["value"].startswith("Similar teaching cases unavailable: ⚠️")
            assert "rebuild it (radassist index build --corpus images" in panel["value"]
            ws.close()


def test_a_teaching_case_whose_image_is_withheld_is_skipped_not_a_crash(
    tmp_path: Path, corpus: Path, encoder_a: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A picture whose burned-in text stays legible is withheld: ``images_from_study`` shows none of its frames. The
    index is built from the other cases and the case is named as skipped (it used to end the build on an
    IndexError). Which pictures the OCR withholds depends on the picture, so the first readable one is made so."""
    import assistant.vision.service as vision_service

    real = vision_service.images_from_study
    calls: list[int] = []

    def first_withheld(study: object) -> list[ImageRef]:
        calls.append(1)
        return [] if len(calls) == 1 else real(study)  # type: ignore[arg-type]

    monkeypatch.setattr(vision_service, "images_from_study", first_withheld)
    settings = settings_for(tmp_path / "data", encoder_a)
    with caplog.at_level(logging.WARNING):
        assert index_cli(settings, "build", "--corpus", "images", "--input", str(corpus), "--json") == 0
    meta = read_index_meta(tmp_path / "data" / "index" / "images")
    assert meta is not None and meta["count"] == 7 and meta["skipped"] == 3
    assert any("withheld (burned-in text)" in r.getMessage() for r in caplog.records)
