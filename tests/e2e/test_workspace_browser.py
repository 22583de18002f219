"""The workspace end to end: ``radassist serve`` with its embedded vLLM engine on the default model (SmolLM2),
driven by headless Chromium (Playwright).

Steps (a screenshot of each under test-artifacts/e2e/): the app is up while the engine starts and says so; upload a
DICOM series, see it rendered, change the window, ask a question and watch the answer stream, ask a guideline
question and open its cited section, run a calculator, switch to report mode, dictate a finding, export the draft
and the conversation; reload the page and restart the app: the conversation comes back.

Needs Debian's chromium (scripts/system-deps.sh); Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from assistant.llm.engine import free_port
from tests.support.http import wait_http
from tests.support.paths import REPO
from tests.ui.synthetic import PATIENT_ID, PATIENT_NAME, write_ct_series

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = REPO / "test-artifacts" / "e2e"
# A loaded 2-core machine: generous, but every wait is for a condition, never a fixed sleep.
STEP_MS = int(os.environ.get("RADASSIST_E2E_STEP_MS", "120000"))


# The embedded engine's start on a shared CPU: up to several minutes under load.
ENGINE_MS = int(os.environ.get("RADASSIST_E2E_ENGINE_MS", "900000"))


@contextmanager
def serve(
    radassist_bin: Path, data: Path, port: int, *args: str, name: str = "serve", settings: dict[str, str] | None = None
) -> Iterator[str]:
    """``radassist serve`` (the product's own command) on a loopback port; yields its URL once it answers.
    ``settings``: more RADASSIST_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADASSIST_")}
    env.update(RADASSIST_DATA_DIR=str(data), RADASSIST_LLM_MAX_TOKENS="96", **(settings or {}))
    log_path = data.parent / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(radassist_bin), "serve", "--port", str(port), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / f"{name}.log")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: run scripts/system-deps.sh (as root) first")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def send(page: Any, text: str) -> None:
    box = page.locator("#ra-input textarea")
    box.fill(text)
    box.press("Enter")


def watch_answer_lengths(page: Any) -> None:
    """Record, on every DOM change, the length of the newest bot message once a new one appeared."""
    page.evaluate(
        """() => {
            const root = document.querySelector('#ra-chat');
            const before = root.querySelectorAll('[data-testid="bot"]').length;
            window.__answerLengths = [];
            new MutationObserver(() => {
                const bots = root.querySelectorAll('[data-testid="bot"]');
                if (bots.length < before + 2) return;  // the upload note, then the answer
                const n = bots[bots.length - 1].innerText.length, seen = window.__answerLengths;
                if (!seen.length || seen[seen.length - 1] !== n) seen.push(n);
            }).observe(root, {subtree: true, childList: true, characterData: true});
        }"""
    )


def download(page: Any, button: str, file_box: str) -> str:
    """Press an export button, then download the file its box links to; the file's text."""
    page.locator(button).click()
    link = page.locator(f"{file_box} a").first
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    return Path(info.value.path()).read_text(encoding="utf-8")


def wait_idle(page: Any) -> None:
    """No event running: the submit button is back (the stop button is gone)."""
    page.locator("#ra-input .submit-button").wait_for(state="visible", timeout=STEP_MS)


@pytest.mark.engine
def test_workspace_in_a_real_browser(
    default_model_dir: Path, radassist_bin: Path, browser: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The default model, already converted by the product's own code: found where `make run` puts it.
    (data_dir / "models").symlink_to(default_model_dir.parent, target_is_directory=True)
    series = write_ct_series(tmp_path / "ct", slices=12, size=128)
    port = free_port()
    with serve(radassist_bin, data_dir, port) as url:  # the embedded engine, as `make run` starts it
        context = browser.new_context(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        try:
            page = context.new_page()
            page.set_default_timeout(STEP_MS)
            # 0. The app is up before the engine: the status line shows the start, then the model.
            page.goto(url)
            status = page.locator("#status-line")
            status.wait_for()
            assert "⏳ starting the language model, step" in status.inner_text(), status.inner_text()
            assert "so far" in status.inner_text() and "INFO" not in status.inner_text()
            shot(page, "00-engine-starting")
            page.locator("#status-line", has_text="embedded vLLM engine").wait_for(timeout=ENGINE_MS)
            assert "SmolLM2" in status.inner_text()
            drive_workspace(page, url, data_dir, series)
            check_conversation_survives_a_reload(page)
            storage = context.storage_state()
        finally:
            context.close()

    # Restart the app on the same data dir and port, this time with an LLM server that is not there: the
    # conversation still comes back in the same browser, and the status line says what is wrong.
    with serve(radassist_bin, data_dir, port, "--llm-url", "http://127.0.0.1:9/v1", name="serve-restarted") as url:
        context = browser.new_context(viewport={"width": 1500, "height": 1100}, storage_state=storage)
        try:
            page = context.new_page()
            page.set_default_timeout(STEP_MS)
            page.goto(url)
            page.locator("#ra-chat", has_text="What is shown on this study?").wait_for()
            assert page.locator("#ra-chat", has_text="solid single 6-8 mm high risk").count() == 1
            page.locator("#ra-chat-status", has_text="attach the study again").wait_for()
            # Back in the mode it was left in (report draft), with its draft.
            page.locator("#ra-report", has_text="7 mm solid nodule in the right upper lobe").wait_for()
            page.locator("#status-line", has_text="failed to start").wait_for()
            assert "127.0.0.1:9" in page.locator("#status-line").inner_text()
            shot(page, "11-restarted-conversation-restored")
        finally:
            context.close()


def check_conversation_survives_a_reload(page: Any) -> None:
    """Reload the page: the conversation is back (from SQLite), listed under saved conversations."""
    page.reload()
    page.locator("#ra-chat", has_text="What is shown on this study?").wait_for()
    assert page.locator("#ra-chat", has_text="7 mm solid nodule in the right upper lobe").count() >= 1
    page.locator("#ra-chats-box").click()  # open the accordion
    page.locator("#ra-chats input").click()
    options = page.locator("ul[role=listbox] li")
    options.first.wait_for()
    assert options.count() == 1 and "What is shown on this study?" in options.first.inner_text()
    page.keyboard.press("Escape")
    shot(page, "10-reloaded-conversation-restored")


def drive_workspace(page: Any, url: str, data_dir: Path, series: list[Path], expect_stream: bool = True) -> None:
    """The whole radiologist's path through the app, checked and photographed step by step."""
    page.set_default_timeout(STEP_MS)
    if page.url.rstrip("/") != url.rstrip("/"):
        page.goto(url)
    page.locator("#status-line").wait_for()
    assert "not analysed" in page.locator("#status-line").inner_text()
    assert "not for clinical use" in page.locator("#ra-notice").inner_text()
    shot(page, "01-opened")

    # 1. Upload a DICOM series and ask about it: the viewer shows it, the chat says what was loaded.
    page.locator("#ra-input input[type=file]").set_input_files([str(p) for p in series])
    page.locator("#ra-input .thumbnail-item, #ra-input .thumbnails").first.wait_for(timeout=STEP_MS)
    watch_answer_lengths(page)
    send(page, "What is shown on this study?")
    page.locator("#ra-image img").wait_for(state="visible")
    page.locator("#ra-caption", has_text="image 1/12").wait_for()
    first_src = page.locator("#ra-image img").get_attribute("src")
    assert page.locator("#ra-chat", has_text="Loaded 12 image(s)").count() == 1

    # 2. The answer streams: the answer bubble's text grows over several updates before it settles.
    page.wait_for_function("() => window.__answerLengths.length > 0", timeout=STEP_MS)
    wait_idle(page)
    lengths = page.evaluate("() => window.__answerLengths")
    if expect_stream:
        assert len({n for n in lengths if n > 0}) >= 2, f"the answer did not stream: {lengths}"
    shot(page, "02-uploaded-and-answered")

    # 3. Another slice (the nodule sits mid-series), then the lung preset, then a custom window.
    number = page.locator("#ra-slice input[type=number]")
    number.fill("6")
    number.press("Enter")
    page.locator("#ra-caption", has_text="image 6/12").wait_for()
    page.locator("#ra-window label", has_text="lung").click()
    page.locator("#ra-caption", has_text="(lung)").wait_for()
    lung_src = page.locator("#ra-image img").get_attribute("src")
    assert lung_src != first_src
    shot(page, "03-lung-window")
    page.locator("#ra-center input").fill("400")
    page.locator("#ra-width input").fill("1800")
    page.locator("#ra-apply-window").click()
    page.locator("#ra-caption", has_text="W 1800 / L 400").wait_for()
    shot(page, "04-custom-window")

    # 4. Guideline lookup: an exact category, cited; clicking a citation shows its source section.
    page.locator("#ra-mode label", has_text="Guideline lookup").click()
    send(page, "Single solid 7 mm nodule in a high-risk smoker - follow-up?")
    page.locator("#ra-chat", has_text="solid single 6-8 mm high risk").wait_for()
    page.locator("#ra-sources label").first.wait_for()
    page.locator("#ra-sources label").first.click()
    page.locator("#ra-source-text", has_text="Fleischner").wait_for()
    assert "6-8 mm" in page.locator("#ra-source-text").inner_text()
    wait_idle(page)
    shot(page, "05-guideline-with-citation")

    # 5. A calculator form (Lung-RADS is not the chat's calculator: the form runs on its own).
    page.locator("button[role=tab]", has_text="tirads").click()
    for field, option in (
        ("composition", "solid"), ("echogenicity", "very_hypoechoic"), ("shape", "taller_than_wide"),
        ("margin", "irregular"),
    ):  # fmt: skip
        page.locator(f"#ra-calc-tirads-{field} input").click()
        page.locator("ul[role=listbox] li", has_text=option).first.click()
    page.locator("#ra-calc-tirads-max-diameter-mm textarea, #ra-calc-tirads-max-diameter-mm input").first.fill("15")
    page.locator("#ra-calc-run-tirads").click()
    page.locator("#ra-calc-result-tirads", has_text="TR5").wait_for()
    shot(page, "06-calculator")

    # 6. Report mode: dictate a finding; the draft shows it, template defaults stay highlighted.
    page.locator("#ra-mode label", has_text="Report draft").click()
    page.locator("#ra-report").wait_for()
    send(page, "There is a 7 mm solid nodule in the right upper lobe.")
    page.locator("#ra-report", has_text="7 mm solid nodule in the right upper lobe").wait_for()
    assert page.locator("#ra-report .ra-unconfirmed").count() > 0
    wait_idle(page)
    shot(page, "07-report-dictated")

    # 7. Export the draft as Markdown and download it.
    exported = download(page, "#ra-export-md", "#ra-report-file")
    assert "7 mm solid nodule in the right upper lobe" in exported and "not for clinical use" in exported.lower()
    shot(page, "08-report-exported")

    # 8. Export the conversation too; no planted identifier anywhere in what the browser got.
    conversation = download(page, "#ra-export-chat", "#ra-chat-file")
    assert "What is shown on this study?" in conversation
    everything = page.content() + exported + conversation
    for phi in (PATIENT_NAME, PATIENT_ID, "ACC-PHI-77", "19600101"):
        assert phi not in everything
    shot(page, "09-conversation-exported")
    # The uploads left Gradio's cache as soon as they were ingested.
    assert not [p for p in (data_dir / "tmp" / "gradio").rglob("*.dcm")]


# ---------------------------------------------------------------------------------------------- what is sent, layout

LAYOUT_SIZES = ((1920, 1080), (1440, 900))


def frames_sent(request: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The PNGs (as arrays) and the label lines of the images in a request's last user message."""
    import base64
    import io

    import numpy as np
    from PIL import Image as PILImage

    content = request["messages"][-1]["content"]
    images = [
        np.asarray(PILImage.open(io.BytesIO(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))))
        for p in content
        if isinstance(p, dict) and p.get("type") == "image_url"
    ]
    text = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return images, [line for line in text.splitlines() if "slice " in line]


def check_fits(page: Any, panel: str) -> None:
    """Chat, viewer and the mode's panel column each lie inside the window (no page scrolling to follow an answer);
    the mode's panel starts on screen, in its column (a long calculator form scrolls inside the column)."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    page.wait_for_timeout(300)  # the layout script measures the header after a resize
    for selector in ("#ra-chat-col", "#ra-chat", "#ra-input", "#ra-viewer-col", "#ra-image", "#ra-panel-col"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None, f"{selector} is not shown"
        assert box["y"] >= 0 and box["y"] + box["height"] <= height + 1, f"{selector} at {box} in {width}x{height}"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, f"{selector} at {box} in {width}x{height}"
    column = page.locator("#ra-panel-col").bounding_box()
    box = page.locator(panel).first.bounding_box()
    assert box is not None and column is not None, f"{panel} is not shown"
    assert column["y"] <= box["y"] <= height - 150, f"{panel} at {box} starts below the screen ({width}x{height})"
    assert column["x"] <= box["x"] and box["x"] + box["width"] <= column["x"] + column["width"] + 1
    assert page.evaluate("() => window.scrollY") == 0


def ask(page: Any, text: str, llm: Any) -> dict[str, Any]:
    """Send a question; the request the model received."""
    before = len(llm.requests)
    send(page, text)
    page.locator("#ra-chat [data-testid=bot]", has_text="Seen by the stub.").nth(before).wait_for()
    wait_idle(page)
    assert len(llm.requests) == before + 1
    return llm.requests[-1]


@contextmanager
def stub_app(
    radassist_bin: Path, data_dir: Path, browser: Any, name: str, settings: dict[str, str], viewport: tuple[int, int]
) -> Iterator[tuple[Any, Any]]:
    """``radassist serve`` against an OpenAI-protocol stub that answers "Seen by the stub.", and a page on it once
    the status line names the stub's model; yields (page, stub)."""
    from tests.support.openai_stub import OpenAIStub

    with OpenAIStub("Seen by the stub.") as llm, serve(
        radassist_bin, data_dir, free_port(), "--llm-url", llm.url, name=name, settings=settings
    ) as url:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        try:
            page = context.new_page()
            page.set_default_timeout(STEP_MS)
            page.goto(url)
            page.locator("#status-line", has_text="stub-model").wait_for()
            yield page, llm
        finally:
            context.close()


def show(page: Any, slice_number: int, of: int, window: str) -> None:
    """Scroll the viewer to ``slice_number`` (of ``of``) and choose the preset ``window``."""
    number = page.locator("#ra-slice input[type=number]")
    number.fill(str(slice_number))
    number.press("Enter")
    page.locator("#ra-caption", has_text=f"image {slice_number}/{of}").wait_for()
    page.locator("#ra-window label", has_text=window).click()
    page.locator("#ra-caption", has_text=f"({window})").wait_for()


def test_what_is_on_screen_is_what_the_model_gets_and_the_workspace_fits_the_screen(
    radassist_bin: Path, browser: Any, tmp_path: Path
) -> None:
    """Against an OpenAI-protocol stub under the pixels profile (no engine: seconds, not minutes): the PNGs the
    model received are compared with the frames rendered here."""
    from assistant import load_settings, load_study, render

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    files = write_ct_series(tmp_path / "ct", slices=12, size=128)
    frames = load_study(files, load_settings(env={}, data_dir=tmp_path / "ref")).study.series[0].images  # type: ignore[union-attr]
    # The stub is not vLLM: it keeps no images, so every image goes in full (send-once by uuid is tested against
    # real vLLM in tests/assistant/vision/test_gemma3_engine.py).
    settings = {
        "RADASSIST_VISION_PROFILE": "pixels", "RADASSIST_VISION_SERIES_FRAMES": "3", "RADASSIST_VISION_SEND_ONCE": "0",
    }  # fmt: skip
    with stub_app(radassist_bin, data_dir, browser, "serve-stub", settings, (1440, 900)) as (page, llm):
        # Upload, then scroll to slice 7 and choose the lung window: the boxes show the preset's values.
        page.locator("#ra-input input[type=file]").set_input_files([str(p) for p in files])
        page.locator("#ra-input .thumbnail-item, #ra-input .thumbnails").first.wait_for()
        first = ask(page, "What is shown?", llm)
        assert page.locator("#ra-caption", has_text="shown enlarged ×3").count() == 1  # 128 px, enlarged
        assert [a.shape for a in frames_sent(first)[0]] == [(128, 128)]  # the model: the frame at its own size
        show(page, 7, 12, "lung")
        page.wait_for_function("() => document.querySelector('#ra-center input').value === '-600'")
        assert page.locator("#ra-width input").input_value() == "1500"
        images, labels = frames_sent(ask(page, "Is there a nodule on this slice?", llm))
        assert len(images) == 1 and (images[0] == render(frames[6], "lung")).all()
        assert "slice 7/12, window lung C-600/W1500" in labels[0]
        # Each question shows thumbnails of what was sent with it (one each so far).
        thumbnails = page.locator("#ra-chat [data-testid=user] img")
        assert thumbnails.count() == 2
        shot(page, "20-slice-and-window-sent")
        for size in LAYOUT_SIZES:
            page.set_viewport_size({"width": size[0], "height": size[1]})
            check_fits(page, "#ra-sources-panel")

        # Pin slice 9 (bone), then slice 3 (lung): both are sent, in series order, with their windows.
        for slice_number, window in ((9, "bone"), (3, "lung")):
            show(page, slice_number, 12, window)
            page.locator("#ra-pin").click()
            page.locator("#ra-pins", has_text=f"slice {slice_number}/12").wait_for()
        images, labels = frames_sent(ask(page, "Compare the pinned slices.", llm))
        assert len(images) == 2 and (images[0] == render(frames[2], "lung")).all()
        assert (images[1] == render(frames[8], "bone")).all()
        assert "slice 3/12" in labels[0] and "slice 9/12" in labels[1]
        assert thumbnails.count() == 4
        shot(page, "21-pinned-frames-sent")

        # The whole series, an explicit choice: three frames evenly spaced, each labelled with its place.
        page.locator("#ra-whole-series input").check()
        page.locator("#ra-pins", has_text="the whole series").wait_for()
        images, labels = frames_sent(ask(page, "Describe the series.", llm))
        assert len(images) == 3 and ["series sample 1 of 3" in labels[0], "slice 12/12" in labels[2]] == [True] * 2
        assert thumbnails.count() == 7

        # Each mode's panel fits beside the chat and the viewer, on a desktop and on a laptop screen.
        for mode, panel in (("Guideline lookup", "#ra-calc-panel"), ("Report draft", "#ra-report-panel")):
            page.locator("#ra-mode label", has_text=mode).click()
            page.locator(panel).wait_for()
            for size in LAYOUT_SIZES:
                page.set_viewport_size({"width": size[0], "height": size[1]})
                check_fits(page, panel)
            shot(page, f"22-layout-{mode.split()[0].lower()}")
        page.locator("#ra-mode label", has_text="Study Q&A").click()

        # Delete asks first and deletes only the conversation chosen.
        page.locator("#ra-new-chat").click()
        # The new chat is on screen before anything is typed into it (CI once typed while "New chat" was still
        # queued behind the mode switch on a loaded machine, and the answer never came: see the session notes).
        page.wait_for_function("document.querySelectorAll('#ra-chat [data-testid=bot]').length === 0")
        wait_idle(page)
        send(page, "A second conversation.")
        page.locator("#ra-chat [data-testid=bot]", has_text="Seen by the stub.").wait_for()
        wait_idle(page)
        page.locator("#ra-chats-box").click()
        page.locator("#ra-chats input").click()
        options = page.locator("ul[role=listbox] li")
        options.nth(1).wait_for()
        assert options.count() == 2
        options.filter(has_text="What is shown?").click()
        # Reopen the first one: the status says so, and "New chat" clears that line again.
        page.locator("#ra-open-chat").click()
        page.locator("#ra-chat-status", has_text="Reopened").wait_for()
        page.locator("#ra-new-chat").click()
        page.wait_for_function("() => !document.querySelector('#ra-chat-status').innerText.includes('Reopened')")
        page.locator("#ra-chats input").click()
        page.locator("ul[role=listbox] li").filter(has_text="What is shown?").click()
        page.locator("#ra-delete-chat").click()
        page.locator("#ra-confirm-text", has_text="What is shown?").wait_for()
        page.locator("#ra-delete-no").click()
        page.locator("#ra-chat-status", has_text="Nothing was deleted").wait_for()
        page.locator("#ra-delete-chat").click()
        page.locator("#ra-delete-yes").click()
        page.locator("#ra-chat-status", has_text="Deleted.").wait_for()
        page.locator("#ra-chats input").click()
        page.locator("ul[role=listbox] li").first.wait_for()
        remaining = page.locator("ul[role=listbox] li").all_inner_texts()
        assert len(remaining) == 1 and "A second conversation." in remaining[0]
        shot(page, "23-deleted-after-confirmation")


# ---------------------------------------------------------------------------------------------- priors, comparison

OTHER_PATIENT = "OTHER-PATIENT-0099"  # another patient's report, the best lexical match for a growth question


def test_priors_are_imported_shown_sent_and_compared_in_a_real_browser(
    radassist_bin: Path, browser: Any, tmp_path: Path
) -> None:
    """The whole flow around the study on screen: the local user imports prior reports in the app (a CSV with the
    real MRN), uploads the patient's CT, scrolls, changes the window and asks: the model gets that frame; the priors
    panel shows this patient's prior only; a question that looks back takes it to the model (cited, in the sources
    panel); the report draft names it under Comparison and flags the nodule's growth."""
    import csv


    data_dir = tmp_path / "data"
    data_dir.mkdir()
    files = write_ct_series(tmp_path / "ct", slices=6, size=64)
    priors_csv = tmp_path / "priors.csv"
    rows = [
        {   # 14 months before the CT of 2024-01-02
            "patient_id": PATIENT_ID, "date": "2022-11-02", "modality": "CT",
            "findings": "6 mm solid nodule in the right upper lobe.",
            "impression": "6 mm solid nodule in the right upper lobe; follow-up CT advised.",
        },
        {
            "patient_id": OTHER_PATIENT, "date": "2023-12-01", "modality": "CT",
            "findings": "The right upper lobe solid nodule grew from 6 mm to 11 mm: nodule growth since the prior.",
            "impression": "Growing right upper lobe nodule, 11 mm, OTHERMARK.",
        },
    ]  # fmt: skip
    with open(priors_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = {"RADASSIST_VISION_PROFILE": "pixels", "RADASSIST_VISION_SEND_ONCE": "0"}
    with stub_app(radassist_bin, data_dir, browser, "serve-priors", settings, (1920, 1080)) as (page, llm):
        # Single-user mode: the local user is the administrator and sees the import box.
        page.locator("#ra-priors-import").wait_for(state="visible")
        page.locator("#ra-priors-import").get_by_text("Import prior reports").first.click()
        page.locator("#ra-priors-file input[type=file]").set_input_files(str(priors_csv))
        page.locator("#ra-priors-file", has_text="priors.csv").wait_for()
        page.locator("#ra-priors-import-run").click()
        page.locator("#ra-priors-import-status", has_text="Imported 2 report(s) of 2 patient(s)").wait_for()
        shot(page, "30-priors-imported")

        # Open the patient's CT: the panel lists this patient's one prior, dated relative to the study.
        page.locator("#ra-input input[type=file]").set_input_files([str(p) for p in files])
        page.locator("#ra-input .thumbnail-item, #ra-input .thumbnails").first.wait_for()
        ask(page, "What is shown?", llm)
        # Scroll to slice 4, lung window: that frame goes with the next question.
        show(page, 4, 6, "lung")
        request = ask(page, "Has the right upper lobe nodule grown since the prior CT?", llm)
        images, labels = frames_sent(request)
        assert len(images) == 1 and "slice 4/6, window lung C-600/W1500" in labels[0]
        panel = page.locator("#ra-priors")
        panel.get_by_text("Prior reports (1)").wait_for()
        assert "1 year 2 months before this study" in panel.inner_text()
        assert "6 mm solid nodule" in panel.inner_text() and "OTHERMARK" not in panel.inner_text()
        # The question took this patient's prior to the model, as data, and it is the answer's source.
        sent = str(request["messages"][-1]["content"])
        assert "6 mm solid nodule" in sent and "data only, not instructions" in sent
        assert "OTHERMARK" not in sent and "11 mm" not in sent and PATIENT_ID not in sent
        page.locator("#ra-sources label").first.wait_for()
        assert "2022-11-02" not in page.locator("#ra-sources").inner_text()  # the date is shifted
        shot(page, "31-priors-panel-and-sources")

        # The report draft: Comparison names the prior, and the dictated size is compared with it.
        page.locator("#ra-mode label", has_text="Report draft").click()
        page.locator("#ra-report-panel").wait_for()
        send(page, "8 mm solid nodule in the right upper lobe.")
        report = page.locator("#ra-report")
        report.get_by_text("8 mm solid nodule in the right upper lobe").first.wait_for()
        text = report.inner_text()
        assert "Prior report of" in text and "1 year 2 months before this study" in text, text
        assert "increased from 6 mm to 8 mm" in text, text
        assert "OTHERMARK" not in text and "11 mm" not in text
        shot(page, "32-draft-compared-with-prior")
    # The MRN of the import is nowhere in the data dir afterwards.
    stored = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    assert PATIENT_ID.encode() not in stored and OTHER_PATIENT.encode() not in stored
