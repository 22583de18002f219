"""Report generation against reference reports: BLEU-4, ROUGE-L and the CheXpert-14 finding F1.

Data: JSONL, one study per line: ``id``, the reference (``reference``, or ``findings`` and/or ``impression``,
joined as "findings impression"), the image(s) (``image`` or ``images``, relative to the images folder) and,
optionally, an already ``generated`` report (then nothing is generated for that line: scores only).

- BLEU-4: sacrebleu's corpus BLEU with its defaults (4-grams, 13a tokeniser, exponential smoothing, brevity
  penalty), 0-100; its signature is kept with the number.
- ROUGE-L: rouge-score's F-measure of the longest common subsequence, Porter stemming on, the mean over the
  studies (0-1), with a 95% bootstrap interval.
- CheXpert-14 F1: both texts labelled by :class:`assistant.eval.chexpert.ChexpertLabeller`; a finding counts as
  present when labelled positive or uncertain (uncertain counted as present, CheXpert's "U-Ones" policy), absent
  otherwise; per finding precision/recall/F1 over the studies, micro F1 over all 14, and the macro F1 over the
  findings that occur in the references or the generated reports (a finding in neither has no F1).
- CheXbert-14 F1 (optional, ``chexbert_*`` keys, only when a CheXbert labeller is given): the same F1, the labels
  from :class:`assistant.eval.chexbert.ChexbertLabeller` (local weights) instead of the rules.
- GREEN (optional, ``green_*`` keys, only when GREEN outcomes are given): :mod:`assistant.eval.green`, the mean over
  the studies whose GREEN answer could be read, with a 95% bootstrap interval; unreadable answers in
  ``green_failures``.
- RadGraph-F1 (optional, ``radgraph_*`` keys, only when RadGraph scores are given): :mod:`assistant.eval.radgraph`,
  the mean per-study F1 of the RadGraph entities and relations (local weights); ``radgraph_f1`` is the "partial"
  level that papers call RadGraph-F1, with a 95% bootstrap interval, beside the "simple" and "complete" levels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ConfigurationError
from assistant.eval import metrics
from assistant.eval.chexpert import FINDINGS, POSITIVE, UNCERTAIN, ChexpertLabeller
from assistant.eval.green import GreenOutcome
from assistant.eval.green import summarize as green_summary
from assistant.eval.radgraph import RadGraphF1
from assistant.eval.radgraph import summarize as radgraph_summary
from assistant.eval.runner import EvalItem

DEFAULT_PROMPT = (
    "Write the radiology report for this study: a Findings paragraph and an Impression, in the style of a chest "
    "radiograph report."
)


class ReportLabeller(Protocol):
    """Labels reports in batches as {finding: label} (the CheXbert labeller)."""

    def label_reports(self, texts: Sequence[str]) -> list[dict[str, str]]: ...


@dataclass(frozen=True)
class ReportCase:
    """One study: its id, the reference report, its image files and (optionally) a report already generated."""

    case_id: str
    reference: str
    images: tuple[str, ...] = ()
    generated: str | None = None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any], number: int) -> ReportCase:
        where = f"line {number}"
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{where} is not a JSON object")
        reference = entry.get("reference")
        if reference is None:
            parts = [str(entry[k]).strip() for k in ("findings", "impression") if entry.get(k)]
            reference = " ".join(p for p in parts if p)
        if not isinstance(reference, str) or not reference.strip():
            raise ConfigurationError(f'{where} has no reference ("reference", or "findings"/"impression")')
        raw = entry.get("images", entry.get("image", []))
        images = [raw] if isinstance(raw, str) else raw
        if not isinstance(images, list) or not all(isinstance(i, str) and i.strip() for i in images):
            raise ConfigurationError(f'{where}: "image"/"images" must be a file name or a list of them')
        generated = entry.get("generated")
        if generated is not None and not isinstance(generated, str):
            raise ConfigurationError(f'{where}: "generated" must be text')
        return cls(str(entry.get("id", number)), reference.strip(), tuple(images), generated)

    def item(self, images_dir: Path | None, prompt: str) -> EvalItem:
        fields = {"id": self.case_id, "reference": self.reference, "images": list(self.images)}
        paths = tuple((images_dir or Path(".")) / name for name in self.images)
        return EvalItem(self.case_id, prompt, paths, fields)


def load_cases(path: Path, limit: int | None = None) -> list[ReportCase]:
    """The studies of a JSONL file, in file order (the first ``limit``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the data file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"the data file {path} is not UTF-8 text") from exc
    if limit is not None and limit < 1:
        raise ConfigurationError(f"--limit must be at least 1, got {limit}")
    cases: list[ReportCase] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigurationError(f"{path} line {number} is not valid JSON") from None
        cases.append(ReportCase.from_entry(entry, number))
        if limit is not None and len(cases) >= limit:
            break
    if not cases:
        raise ConfigurationError(f"{path} holds no studies")
    return cases


def bleu4(predictions: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """sacrebleu's corpus BLEU-4 (0-100) and its signature."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    result = bleu.corpus_score(list(predictions), [list(references)])
    return float(result.score), str(bleu.get_signature())


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """rouge-score's ROUGE-L F-measure of each pair (Porter stemming on)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pairs = zip(predictions, references, strict=True)
    return [float(scorer.score(ref, pred)["rougeL"].fmeasure) for pred, ref in pairs]


def present(labels: Mapping[str, str]) -> set[str]:
    """The findings a report states as present (positive or uncertain)."""
    return {finding for finding, label in labels.items() if label in (POSITIVE, UNCERTAIN)}


def finding_f1(
    predicted: Sequence[Mapping[str, str]], reference: Sequence[Mapping[str, str]], findings: Sequence[str] = FINDINGS
) -> dict[str, Any]:
    """Per-finding precision/recall/F1, micro F1 and macro F1 (over findings with support on either side)."""
    per: dict[str, dict[str, Any]] = {}
    tp_all = fp_all = fn_all = 0
    for finding in findings:
        tp = fp = fn = 0
        for pred, ref in zip(predicted, reference, strict=True):
            in_pred, in_ref = finding in present(pred), finding in present(ref)
            tp += in_pred and in_ref
            fp += in_pred and not in_ref
            fn += in_ref and not in_pred
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
        per[finding] = {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    f1s = [v["f1"] for v in per.values() if v["f1"] is not None]
    return {
        "micro_f1": 2 * tp_all / (2 * tp_all + fp_all + fn_all) if tp_all + fp_all + fn_all else None,
        "macro_f1": sum(f1s) / len(f1s) if f1s else None,
        "per_finding": per,
    }


def scored_records(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The studies that have a generated report (the others failed), in order: what the metrics score."""
    return [r for r in records if "error" not in r and r.get("prediction") is not None]


def summarize(
    records: Sequence[Mapping[str, Any]], labeller: ChexpertLabeller | None = None, seed: int = 0,
    resamples: int = 1000, chexbert: ReportLabeller | None = None, green: Sequence[GreenOutcome] | None = None,
    radgraph: Sequence[RadGraphF1 | None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The metrics of a run; failed studies are counted in ``failures`` and left out of the scores.

    With ``chexbert``, also ``chexbert_micro_f1``, ``chexbert_macro_f1`` and ``chexbert_per_finding``. With
    ``green`` (one outcome per study of :func:`scored_records`, in order), also the ``green_*`` keys; with
    ``radgraph`` (likewise one per scored study), the ``radgraph_*`` keys.
    """
    scored = scored_records(records)
    if green is not None and len(green) != len(scored):
        raise ValueError(f"{len(green)} GREEN outcomes for {len(scored)} scored studies")
    if radgraph is not None and len(radgraph) != len(scored):
        raise ValueError(f"{len(radgraph)} RadGraph scores for {len(scored)} scored studies")
    preds = [str(r["prediction"]) for r in scored]
    refs = [str(r["reference"]) for r in scored]
    out: dict[str, Any] = {"n": len(records), "scored": len(scored), "failures": len(records) - len(scored)}
    if not scored:
        out.update(bleu4=None, bleu_signature=None, rougeL=None, rougeL_ci95=None, chexpert_micro_f1=None,
                   chexpert_macro_f1=None, chexpert_per_finding={})  # fmt: skip
        if chexbert is not None:
            out.update(chexbert_micro_f1=None, chexbert_macro_f1=None, chexbert_per_finding={})
        if green is not None:
            out.update(green_summary([], seed=seed, resamples=resamples))
        if radgraph is not None:
            out.update(radgraph_summary([], seed=seed, resamples=resamples))
        return out
    out["bleu4"], out["bleu_signature"] = bleu4(preds, refs)
    rouge = rouge_l(preds, refs)
    out["rougeL"] = metrics.mean(rouge)
    ci = metrics.bootstrap_ci(rouge, resamples=resamples, seed=seed)
    out["rougeL_ci95"] = list(ci) if ci else None
    labeller = labeller or ChexpertLabeller()
    f1 = finding_f1([labeller.label_report(p) for p in preds], [labeller.label_report(r) for r in refs])
    out["chexpert_micro_f1"] = f1["micro_f1"]
    out["chexpert_macro_f1"] = f1["macro_f1"]
    out["chexpert_per_finding"] = f1["per_finding"]
    if chexbert is not None:
        bert_f1 = finding_f1(chexbert.label_reports(preds), chexbert.label_reports(refs))
        out["chexbert_micro_f1"] = bert_f1["micro_f1"]
        out["chexbert_macro_f1"] = bert_f1["macro_f1"]
        out["chexbert_per_finding"] = bert_f1["per_finding"]
    if green is not None:
        out.update(green_summary(green, seed=seed, resamples=resamples))
    if radgraph is not None:
        out.update(radgraph_summary(radgraph, seed=seed, resamples=resamples))
    latencies = [float(r["latency_s"]) for r in scored if "latency_s" in r]
    out["latency_p50_s"] = metrics.percentile(latencies, 50)
    out["latency_p95_s"] = metrics.percentile(latencies, 95)
    return out


def table(summary: Mapping[str, Any]) -> str:
    """The metrics as Markdown."""

    def num(value: float | None, scale: float = 1.0) -> str:
        return "–" if value is None else f"{value * scale:.1f}"

    ci = summary.get("rougeL_ci95")
    rows = [
        "| metric | value |",
        "|---|---|",
        f"| studies (scored / failures) | {summary['n']} ({summary['scored']} / {summary['failures']}) |",
        f"| BLEU-4 (sacrebleu, 0-100) | {num(summary['bleu4'])} |",
        f"| ROUGE-L F (x100) | {num(summary['rougeL'], 100)}"
        + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
        + " |",
        f"| CheXpert-14 micro F1 (x100) | {num(summary['chexpert_micro_f1'], 100)} |",
        f"| CheXpert-14 macro F1 (x100) | {num(summary['chexpert_macro_f1'], 100)} |",
    ]
    if "chexbert_micro_f1" in summary:
        rows += [
            f"| CheXbert-14 micro F1 (x100) | {num(summary['chexbert_micro_f1'], 100)} |",
            f"| CheXbert-14 macro F1 (x100) | {num(summary['chexbert_macro_f1'], 100)} |",
        ]
    if "green" in summary:
        green_ci = summary.get("green_ci95")
        rows += [
            f"| GREEN (x100) | {num(summary['green'], 100)}"
            + (f" [{100 * green_ci[0]:.1f}, {100 * green_ci[1]:.1f}]" if green_ci else "")
            + " |",
            f"| GREEN studies (read / failed) | {summary['green_scored']} / {summary['green_failures']} |",
        ]
    if "radgraph_f1" in summary:
        rg_ci = summary.get("radgraph_f1_ci95")
        rows += [
            f"| RadGraph-F1, partial (x100) | {num(summary['radgraph_f1'], 100)}"
            + (f" [{100 * rg_ci[0]:.1f}, {100 * rg_ci[1]:.1f}]" if rg_ci else "")
            + " |",
            f"| RadGraph-F1, simple / complete (x100) | {num(summary['radgraph_f1_simple'], 100)} / "
            f"{num(summary['radgraph_f1_complete'], 100)} |",
        ]
    for key, name in (("chexpert_per_finding", "finding"), ("chexbert_per_finding", "finding (CheXbert)")):
        per = summary.get(key) or {}
        if per:
            rows += ["", f"| {name} | tp | fp | fn | F1 |", "|---|---:|---:|---:|---|"]
            rows += [f"| {f} | {v['tp']} | {v['fp']} | {v['fn']} | {num(v['f1'], 100)} |" for f, v in per.items()]
    return "\n".join(rows) + "\n"
