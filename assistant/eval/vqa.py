"""Visual question answering benchmarks (VQA-RAD, SLAKE, a site's own set): the data, the items, the metrics.

Data: a JSON list (VQA-RAD's ``trainset.json``, SLAKE's ``train.json``) or JSONL, one question per entry with
``question``, ``answer``, ``answer_type`` (closed/open) and the image file name (``image_name`` in VQA-RAD,
``img_name`` in SLAKE, or ``image``); optional ``qid``, ``question_type`` (SLAKE: ``content_type``),
``modality`` and ``image_organ`` (SLAKE: ``location``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ConfigurationError
from assistant.eval import metrics
from assistant.eval.runner import EvalItem

CLOSED, OPEN = "closed", "open"


@dataclass(frozen=True)
class VqaQuestion:
    """One benchmark question, as read from the data file."""

    qid: str
    question: str
    answer: str
    answer_type: str  # CLOSED or OPEN
    image: str
    question_type: str | None = None
    modality: str | None = None
    organ: str | None = None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], position: int) -> VqaQuestion:
        """From one data entry; ``position`` (0-based) names it in errors and is the qid when it has none."""
        where = f"entry {position + 1}"
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{where} is not an object")
        question, answer = entry.get("question"), entry.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise ConfigurationError(f'{where} has no "question" text')
        if answer is None or isinstance(answer, list | dict) or not str(answer).strip():
            raise ConfigurationError(f'{where} has no "answer"')
        kind = str(entry.get("answer_type", "")).strip().lower()
        if kind not in (CLOSED, OPEN):
            raise ConfigurationError(f'{where}: "answer_type" must be CLOSED or OPEN, got {entry.get("answer_type")!r}')
        image = entry.get("image_name", entry.get("img_name", entry.get("image")))
        if not isinstance(image, str) or not image.strip():
            raise ConfigurationError(f'{where} names no image ("image_name", "img_name" or "image")')
        return cls(
            qid=str(entry.get("qid", position)),
            question=question.strip(),
            answer=str(answer).strip(),
            answer_type=kind.upper(),
            image=image.strip(),
            question_type=_label(entry.get("question_type", entry.get("content_type"))),
            modality=_label(entry.get("modality")),
            organ=_label(entry.get("image_organ", entry.get("location"))),
        )

    def item(self, images_dir: Path) -> EvalItem:
        """The runner's item: asked as written, about this image; the reference kept beside the prediction."""
        fields = {
            "qid": self.qid, "question": self.question, "answer": self.answer, "answer_type": self.answer_type,
            "image": self.image, "question_type": self.question_type, "modality": self.modality,
            "organ": self.organ,
        }  # fmt: skip
        return EvalItem(self.qid, self.question, (images_dir / self.image,), fields)


def _label(value: Any) -> str | None:
    if value is None or not str(value).strip():
        return None
    return ", ".join(part.strip().upper() for part in str(value).split(","))


def load_questions(path: Path, limit: int | None = None) -> list[VqaQuestion]:
    """The questions of a JSON list or JSONL file, in file order (the first ``limit``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the data file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"the data file {path} is not UTF-8 text") from exc
    entries: list[Any]
    try:
        loaded = json.loads(text)
        entries = loaded if isinstance(loaded, list) else [loaded]
    except json.JSONDecodeError:
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise ConfigurationError(f"{path} is neither a JSON list nor JSONL (line {number})") from None
    if limit is not None:
        if limit < 1:
            raise ConfigurationError(f"--limit must be at least 1, got {limit}")
        entries = entries[:limit]
    questions = [VqaQuestion.from_entry(entry, i) for i, entry in enumerate(entries)]
    if not questions:
        raise ConfigurationError(f"{path} holds no questions")
    return questions


def score(record: Mapping[str, Any]) -> dict[str, float]:
    """The per-question scores of one successful prediction record."""
    prediction, reference = str(record["prediction"]), str(record["answer"])
    out = {"exact_match": metrics.exact_match(prediction, reference)}
    if str(record["answer_type"]).lower() == CLOSED:
        out["closed_accuracy"] = metrics.closed_correct(prediction, reference)
    else:
        out["open_token_f1"] = metrics.token_f1(prediction, reference)
        out["open_recall"] = metrics.token_recall(prediction, reference)
    return out


def _group(records: Sequence[Mapping[str, Any]], seed: int, resamples: int) -> dict[str, Any]:
    scored = [r for r in records if "error" not in r]
    per = [score(r) for r in scored]
    out: dict[str, Any] = {
        "n": len(records),
        "scored": len(scored),
        "failures": len(records) - len(scored),
        "closed_n": sum("closed_accuracy" in s for s in per),
        "open_n": sum("open_token_f1" in s for s in per),
    }
    for name in ("closed_accuracy", "open_token_f1", "open_recall", "exact_match"):
        values = [s[name] for s in per if name in s]
        out[name] = metrics.mean(values)
        ci = metrics.bootstrap_ci(values, resamples=resamples, seed=seed)
        out[f"{name}_ci95"] = list(ci) if ci else None
    return out


def summarize(records: Sequence[Mapping[str, Any]], seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """The metrics of a run: overall, per question type, modality and organ; failures counted, not scored.

    ``n`` counts every question; the accuracy and F1 figures are over the ``scored`` ones (a failure has no
    prediction to score), and ``failures`` says how many were left out. Intervals: 95% percentile bootstrap over
    the questions (``seed``, ``resamples``).
    """
    out = _group(records, seed, resamples)
    latencies = [float(r["latency_s"]) for r in records if "error" not in r and "latency_s" in r]
    out["latency_p50_s"] = metrics.percentile(latencies, 50)
    out["latency_p95_s"] = metrics.percentile(latencies, 95)
    out["models"] = dict(Counter(str(r["model"]) for r in records if r.get("model")))
    out["image_input"] = dict(Counter(str(r["image_input"]) for r in records if r.get("image_input")))
    out["modes"] = dict(Counter(str(r["mode"]) for r in records if r.get("mode")))
    out["bootstrap"] = {"confidence": 0.95, "resamples": resamples, "seed": seed}
    for field_name, key in (("question_type", "by_question_type"), ("modality", "by_modality"), ("organ", "by_organ")):
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for record in records:
            if record.get(field_name):
                groups.setdefault(str(record[field_name]), []).append(record)
        out[key] = {name: _group(group, seed, resamples) for name, group in sorted(groups.items())}
    return out


def _pct(value: float | None, ci: Sequence[float] | None = None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value:.1f}"
    return f"{text} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else text


def table(summary: Mapping[str, Any]) -> str:
    """The metrics as a Markdown table (percentages, 95% intervals in brackets)."""
    head = (
        "| group | n | failures | closed n | closed accuracy | open n | open token-F1 | open recall | exact match |\n"
        "|---|---:|---:|---:|---|---:|---|---|---|"
    )
    rows = [head, _row("all", summary)]
    for key, title in (("by_question_type", "type"), ("by_modality", "modality"), ("by_organ", "organ")):
        for name, group in summary.get(key, {}).items():
            rows.append(_row(f"{title}: {name}", group))
    latency = (
        f"latency p50 {summary['latency_p50_s']:.2f} s, p95 {summary['latency_p95_s']:.2f} s"
        if summary.get("latency_p50_s") is not None
        else "latency: no answers"
    )
    return "\n".join(rows) + f"\n\n{latency}; models: {summary.get('models') or '–'}\n"


def _row(name: str, g: Mapping[str, Any]) -> str:
    cells: Iterable[str] = (
        name, str(g["n"]), str(g["failures"]), str(g["closed_n"]),
        _pct(g["closed_accuracy"], g["closed_accuracy_ci95"]), str(g["open_n"]),
        _pct(g["open_token_f1"], g["open_token_f1_ci95"]), _pct(g["open_recall"], g["open_recall_ci95"]),
        _pct(g["exact_match"], g["exact_match_ci95"]),
    )  # fmt: skip
    return "| " + " | ".join(cells) + " |"
