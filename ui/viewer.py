"""The image viewer: what it shows of a session's study, and the rendering of its current slice."""

from __future__ import annotations

from typing import Any, NamedTuple

import gradio as gr
import numpy as np
from PIL import Image as PILImage

from assistant import RadassistError, render
from ui.session import Session

# Window choices of the viewer: the file's own window ("default"), the usual CT presets, or a custom one.
WINDOWS = ("default", "lung", "mediastinum", "abdomen", "liver", "bone", "brain", "custom")
NO_STUDY = "No study loaded: attach DICOM files, a zip of a series, or a PNG/JPEG to the message box."


# Frames smaller than this (a 128-px CT) are shown enlarged by a whole factor, so the viewer is not a postage stamp.
DISPLAY_MIN_PX = 384
COLOUR_WINDOW_NOTE = (
    "colour image: window presets re-map greyscale CT/MR values (HU) and do not apply to colour pixels, "
    "shown as stored"
)


class ViewerOutputs(NamedTuple):
    """The viewer's components, or the values for them: the one place their order as Gradio outputs is written."""

    image: Any
    series: Any
    slider: Any
    caption: Any
    banner: Any
    metadata: Any
    pins: Any = None  # the pinned frames' panel (what is sent with each question)
    whole: Any = None  # the "whole series" choice (shown for a CT/MR volume and a profile taking several images)

    def as_outputs(self) -> tuple[Any, ...]:
        """The fields in the order app.py wires the viewer's components."""
        return tuple(self)

    @classmethod
    def skip(cls) -> ViewerOutputs:
        """Leave every viewer component as it is."""
        return cls(*(gr.skip() for _ in cls._fields))


def view_outputs(s: Session, series_frames: int = 0) -> ViewerOutputs:
    """Image path, series choice, slice slider, caption, banner, metadata, pins and the whole-series choice for
    the session's study; ``series_frames``: how many frames "the whole series" sends (0: the choice is hidden)."""
    study = s.study
    if study is None:
        return ViewerOutputs(
            image=None,
            series=gr.update(choices=[], value=None, visible=False),
            slider=gr.update(minimum=1, maximum=2, value=1, visible=False),
            caption=NO_STUDY,
            banner=gr.update(value="", visible=False),
            metadata=None,
            pins=pins_markdown(s),
            whole=whole_series_update(s, series_frames),
        )
    series = study.series[s.series_index]
    labels = series_labels(s)
    frames = series.frame_count
    image_path, caption = render_current(s)
    return ViewerOutputs(
        image=image_path,
        series=gr.update(choices=labels, value=labels[s.series_index], visible=len(labels) > 1),
        slider=gr.update(minimum=1, maximum=max(frames, 2), value=s.slice_index + 1, step=1, visible=frames > 1),
        caption=caption,
        banner=banner(s),
        metadata=study.summary(),
        pins=pins_markdown(s),
        whole=whole_series_update(s, series_frames),
    )


def whole_series_update(s: Session, series_frames: int) -> Any:
    """The "whole series" checkbox: offered for a CT or MR volume when the profile takes several images."""
    series = s.study.series[s.series_index] if s.study is not None else None
    offered = (
        series is not None and series_frames > 1 and series.frame_count > 1 and series.modality.value in ("CT", "MR")
    )
    if not offered:
        s.whole_series = False
        return gr.update(value=False, visible=False)
    assert series is not None  # noqa: S101 - offered implies a series
    count = min(series_frames, series.frame_count)
    return gr.update(
        value=s.whole_series, visible=True,
        label=f"Send the whole series: {count} frames evenly spaced from 1 to {series.frame_count}",
    )  # fmt: skip


def window_text(window: str) -> str:
    """A session's window (``Session.window``) as people read it."""
    if window.startswith("custom:"):
        centre, width = window.split(":", 1)[1].split("/")
        return f"C{float(centre):g}/W{float(width):g}"
    return "the file's own window" if window == "default" else window


def pins_markdown(s: Session) -> str:
    """What will be sent with the next question: the pinned frames in order, the whole series, or this frame."""
    if s.study is None:
        return ""
    if s.whole_series:
        return "**Sent with each question:** the whole series, sampled evenly (the pinned frames wait)."
    if not s.pins:
        return "**Sent with each question:** the frame on screen, in the window on screen. Pin frames to send several."
    lines = [f"**Sent with each question:** {len(s.pins)} pinned frame(s), in series order:"]
    for number, (series, frame, window) in enumerate(s.pins, 1):
        count = s.study.series[series].frame_count
        lines.append(f"{number}. series {series + 1}, slice {frame + 1}/{count}, {window_text(window)}")
    return "\n".join(lines)


def series_labels(s: Session) -> list[str]:
    """The series dropdown's labels: number, modality, description (or body part) and image count."""
    if s.study is None:
        return []
    return [
        f"{i + 1}: "
        + " ".join(filter(None, (x.modality.value, x.series_description or x.body_part_examined)))
        + f" ({x.frame_count})"
        for i, x in enumerate(s.study.series)
    ]


def banner(s: Session) -> Any:
    """A warning when the file says its pixels carry burned-in annotations (or may, for pictures)."""
    if s.study is None:
        return gr.update(value="", visible=False)
    if s.study.redaction_message:  # burned-in text blacked out, or an image withheld (assistant.imaging.burned_in)
        return gr.update(value=f"⚠️ {s.study.redaction_message}", visible=True)
    flag = s.study.burned_in_annotation.value
    if flag == "YES":
        text = (
            "⚠️ **Burned-in annotation**: this file says its pixels carry burned-in text, which may identify "
            "the patient. De-identification cannot remove it from the image."
        )
    elif any(x.source in ("png", "jpeg") for x in s.study.series):
        text = "⚠️ Pictures (PNG/JPEG) may carry burned-in text that de-identification cannot remove."
    else:
        return gr.update(value="", visible=False)
    return gr.update(value=text, visible=True)


def slice_slider(s: Session) -> Any:
    """The slice slider resized to the current series, on the current slice."""
    frames = s.study.series[s.series_index].frame_count if s.study else 1
    return gr.update(minimum=1, maximum=max(frames, 2), value=s.slice_index + 1, visible=frames > 1)


def window_spec(window: str, center: float | None, width: float | None) -> Any:
    """The window choice as ``render`` takes it: None (the file's own), a preset name, or (centre, width)."""
    if window in (None, "", "default"):
        return None
    if window == "custom":
        if center is None or width is None:
            raise RadassistError("enter a window centre and width (e.g. -600 and 1500)")
        return (float(center), float(width))
    return window


def apply_view(
    s: Session, series_label: str | None, slice_number: float | None, window: str,
    center: float | None = None, width: float | None = None,
) -> tuple[str | None, str]:  # fmt: skip
    """Move the session's view to the series, slice and window given, then render it; (path, caption).

    The session must hold a study; a bad custom window raises (a RadassistError the handler shows).
    """
    assert s.study is not None  # noqa: S101 - callers check; not an input validation
    labels = series_labels(s)
    if series_label in labels:
        index = labels.index(series_label)
        if index != s.series_index:
            s.series_index, s.slice_index = index, 0
    frames = s.study.series[s.series_index].frame_count
    if slice_number is not None:
        s.slice_index = min(max(int(slice_number) - 1, 0), frames - 1)
    spec = window_spec(window, center, width)
    if isinstance(spec, tuple):
        s.study.series[s.series_index].images[s.slice_index].resolve_window(spec)  # validates
        s.window = f"custom:{spec[0]}/{spec[1]}"
    else:
        s.window = spec or "default"
    return render_current(s)


def session_spec(window: str) -> Any:
    """A session's window (``Session.window``) as ``render`` takes it: None, a preset name or (centre, width)."""
    if isinstance(window, str) and window.startswith("custom:"):
        c, w = window.split(":", 1)[1].split("/")
        return (float(c), float(w))
    return None if window in ("default", "", None) else window


def window_values(s: Session) -> tuple[float | None, float | None]:
    """Centre and width of the window in use on the current frame (for the custom boxes); None for colour."""
    if s.study is None:
        return None, None
    image = s.study.series[s.series_index].images[s.slice_index]
    if image.is_color:
        return None, None
    described = (image.resolve_window(session_spec(s.window)) or image.window)
    values = described.describe() if described is not None else {}
    if "center" not in values:
        return None, None
    return float(values["center"]), float(values["width"])


def display_scale(rows: int, cols: int) -> int:
    """The whole factor a small frame is enlarged by for display (1 for frames of DISPLAY_MIN_PX or more)."""
    largest = max(rows, cols, 1)
    return max(1, DISPLAY_MIN_PX // largest) if largest < DISPLAY_MIN_PX else 1


def render_current(s: Session) -> tuple[str | None, str]:
    """Write the current frame with the current window as a PNG in the session folder; (path, caption)."""
    assert s.study is not None  # noqa: S101 - callers check; not an input validation
    series = s.study.series[s.series_index]
    image = series.images[s.slice_index]
    spec = session_spec(s.window)
    pixels = render(image, spec)  # (rows, cols) or (rows, cols, 3) uint8
    for old in s.folder.glob("view-*.png"):
        old.unlink(missing_ok=True)
    path = s.file(".png", "view-")
    shown = PILImage.fromarray(np.ascontiguousarray(pixels))
    scale = display_scale(image.rows, image.columns)
    if scale > 1:  # display only: the model gets the frame at its own size
        shown = shown.resize((image.columns * scale, image.rows * scale), PILImage.Resampling.BICUBIC)
    shown.save(path)
    window = image.resolve_window(spec)
    if image.is_color or window is None:
        wtext = "colour" if image.is_color else "no window"
        if image.is_color and spec is not None:
            wtext = COLOUR_WINDOW_NOTE
    else:
        described = window.describe()
        if "center" in described:
            wtext = f"W {described['width']} / L {described['center']} ({described['name']})"
        else:
            wtext = str(described.get("name", "VOI LUT"))
    caption = f"Series {s.series_index + 1}/{len(s.study.series)} · image {s.slice_index + 1}/{series.frame_count}"
    caption += f" · {wtext} · {image.columns}×{image.rows}"
    if scale > 1:
        caption += f" (shown enlarged ×{scale})"
    return str(path), caption
