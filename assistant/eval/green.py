"""GREEN (Ostmeier et al., Findings of EMNLP 2024): a fine-tuned LM counts the clinical errors of a generated report.

The GREEN model (e.g. StanfordAIMI/GREEN-RadLlama2-7b) reads the reference and the candidate report in a fixed
instruction and writes an explanation, the clinically significant and insignificant errors by category (a)-(f)
with their counts, and the number of matched findings. GREEN = matched / (matched + significant errors), 0 when
nothing matched (so a study scores 0-1).

The user serves the model with vLLM (``vllm serve StanfordAIMI/GREEN-RadLlama2-7b``) and radassist sends each pair
to its ``/v1/completions`` endpoint, greedy. Plain completions rather than chat: the model expects the exact input
that Stanford-AIMI/GREEN's inference code (green_score/green.py ``get_response``, ``tokenize_batch_as_chat``;
green_score/utils.py ``make_prompt``) builds, which is not the chat template shipped with the weights, and a
request-supplied chat template is refused by vLLM unless the server trusts it. That input is, with the reference's
own chat template rendered (HF renders with trim_blocks) and its tokenizer's ``add_eos_token=True``::

    <s><|user|>\\n{instruction}</s>\\n<|assistant|>\\n</s>\\n<|assistant|>\\n</s>

``<s>``/``</s>`` are the Llama-2 / Mistral special tokens of the released GREEN-RadLlama2-7b, GREEN-Llama2-7b and
GREEN-Mistral-7b; the request sets ``add_special_tokens: false`` so the tokens are exactly these whatever the
served tokenizer's config says. Each report is cut to its first 300 words, as ``make_prompt`` does. The
instruction text below is the model's input interface, reproduced because the model was trained on it.

The answer is read as the reference parser reads it (green.py ``parse_error_counts``): a section runs from its
``[Name]:`` header to the first blank line; a section opening with the word "No" has no errors; an error line is
``(a) <type>: <count>. ...`` (or numbered (1)-(6)); matched findings are the number that opens their section. Where
the reference quietly reads 0, this parser refuses: an answer without the Clinically Significant Errors or the
Matched Findings section, an errors section with no category line, or a Matched Findings section that opens
without a count is :class:`GreenParseError`, and the study counts as a GREEN failure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from assistant.errors import ConfigurationError, LLMUnavailableError, RadassistError
from assistant.eval import metrics
from assistant.llm.client import OpenAIChatClient, error_detail

logger = logging.getLogger(__name__)

# green_score/green.py GREEN.sub_categories: the six error categories, (a)-(f) in this order.
ERROR_CATEGORIES: tuple[str, ...] = (
    "False report of a finding in the candidate",
    "Missing a finding present in the reference",
    "Misidentification of a finding's anatomic location/position",
    "Misassessment of the severity of a finding",
    "Mentioning a comparison that isn't in the reference",
    "Omitting a comparison detailing a change from a prior study",
)
# green_score/green.py GREEN.categories: the section headers of an answer
SIGNIFICANT = "Clinically Significant Errors"
INSIGNIFICANT = "Clinically Insignificant Errors"
MATCHED = "Matched Findings"
MAX_WORDS = 300  # green_score/utils.py make_prompt max_len: each report cut to its first 300 words
LLAMA2_BOS, LLAMA2_EOS = "<s>", "</s>"  # the GREEN Llama-2 / Mistral checkpoints' special tokens
MAX_ANSWER_TOKENS = 1024  # the reference generates up to 2048 tokens prompt included; answers run a few hundred

# The instruction of green_score/utils.py make_prompt, line by line: the model's trained input. Every line after
# the first is indented by four spaces, blank lines are empty. {reference} and {candidate} are filled in.
_INSTRUCTION_LINES: tuple[str, ...] = (
    "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology report"
    " composed by expert radiologists.",
    "",
    "Process Overview: You will be presented with:",
    "",
    "1. The criteria for making a judgment.",
    "2. The reference radiology report.",
    "3. The candidate radiology report.",
    "4. The desired format for your assessment.",
    "",
    "1. Criteria for Judgment:",
    "",
    "For each candidate report, determine:",
    "",
    "The count of clinically significant errors.",
    "The count of clinically insignificant errors.",
    "",
    "Errors can fall into one of these categories:",
    "",
    *(f"{letter}) {name}." for letter, name in zip("abcdef", ERROR_CATEGORIES, strict=True)),
    "Note: Concentrate on the clinical findings rather than the report's writing style. Evaluate only the findings"
    " that appear in both reports.",
    "",
    "2. Reference Report:",
    "{reference}",
    "",
    "3. Candidate Report:",
    "{candidate}",
    "",
    "4. Reporting Your Assessment:",
    "",
    "Follow this specific format for your output, even if no errors are found:",
    "```",
    "[Explanation]:",
    "<Explanation>",
    "",
    f"[{SIGNIFICANT}]:",
    "(a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>",
    "....",
    "(f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>",
    "",
    f"[{INSIGNIFICANT}]:",
    "(a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>",
    "....",
    "(f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>",
    "",
    f"[{MATCHED}]:",
    "<The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>",
    "```",
    "",
)


class GreenParseError(ValueError):
    """A GREEN answer that does not say its error counts in the expected format."""


def instruction(reference: str, candidate: str) -> str:
    """The GREEN instruction for one pair, each report cut to its first 300 words (whitespace collapsed)."""
    ref = " ".join(reference.split()[:MAX_WORDS])
    cand = " ".join(candidate.split()[:MAX_WORDS])
    lines = [_INSTRUCTION_LINES[0]] + [f"    {line}" if line else "" for line in _INSTRUCTION_LINES[1:]]
    # str.replace, not str.format: a report may hold braces
    return "\n".join(lines).replace("{reference}", ref, 1).replace("{candidate}", cand, 1)


def model_input(reference: str, candidate: str, bos: str = LLAMA2_BOS, eos: str = LLAMA2_EOS) -> str:
    """The whole text the GREEN model reads, special tokens included (see the module docstring)."""
    return f"{bos}<|user|>\n{instruction(reference, candidate)}{eos}\n<|assistant|>\n{eos}\n<|assistant|>\n{eos}"


@dataclass(frozen=True)
class GreenCounts:
    """What one GREEN answer says: errors per category (a)-(f), significant and insignificant, and matches."""

    significant: tuple[int, ...]
    matched: int
    insignificant: tuple[int, ...] | None = None  # None: the answer had no insignificant-errors section

    @property
    def score(self) -> float:
        """matched / (matched + significant errors); 0 when nothing matched (the reference's ``compute_green``)."""
        if self.matched == 0:
            return 0.0
        return self.matched / (self.matched + sum(self.significant))


def _section(text: str, name: str) -> str | None:
    """The text after ``[name]:`` up to the first blank line, the next ``[`` header or the end; None when there is
    no such header. An empty section stays empty (it never runs on into the next section's counts)."""
    header = rf"\[{re.escape(name)}\]:[ \t]*\n?"
    found = re.search(header + r"(.*?)(?:\n[ \t]*\n|\n?(?=^\[)|\Z)", text, re.DOTALL | re.MULTILINE)
    return found.group(1) if found else None


def _says_none(body: str) -> bool:
    """A section that opens with the word "No"/"None". The reference tests ``startswith("No")``, which also takes
    "Normal heart size..." for "none"; the word boundary keeps such a section to be read (or refused)."""
    return re.match(r"(?:No|None)\b", body) is not None


def _error_counts(body: str, name: str) -> tuple[int, ...]:
    """Counts (a)-(f) of an errors section; a category listed without a readable count is 0, as in the reference."""
    if _says_none(body):  # "No clinically significant errors." and the like
        return (0,) * len(ERROR_CATEGORIES)
    lines = sorted(re.findall(r"\([a-f]\) .*", body))
    labels = [f"({letter}) " for letter in "abcdef"]
    if not lines:  # some answers number the categories (1)-(6)
        lines = sorted(re.findall(r"\([1-6]\) .*", body))
        labels = [f"({number}) " for number in range(1, 7)]
    if not lines:
        raise GreenParseError(f"the [{name}] section lists no error category")
    counts = [0] * len(ERROR_CATEGORIES)
    for position, label in enumerate(labels):
        for line in lines:  # sorted, the last readable line of a category wins (as the reference)
            if line.startswith(label):
                number = re.search(r"(?<=: )\b\d+\b(?=\.)", line)
                if number:
                    counts[position] = int(number.group(0))
    return tuple(counts)


def parse_answer(text: str) -> GreenCounts:
    """The counts of one GREEN answer; :class:`GreenParseError` when they cannot be read."""
    significant = _section(text, SIGNIFICANT)
    if significant is None:
        raise GreenParseError(f"the answer has no [{SIGNIFICANT}] section")
    matched_body = _section(text, MATCHED)
    if matched_body is None:
        raise GreenParseError(f"the answer has no [{MATCHED}] section")
    if _says_none(matched_body):
        matched = 0
    else:
        number = re.match(r"\d+\b(?=\.)", matched_body)
        if number is None:
            raise GreenParseError(f"the [{MATCHED}] section does not open with a count")
        matched = int(number.group(0))
    insignificant_body = _section(text, INSIGNIFICANT)
    insignificant = None if insignificant_body is None else _error_counts(insignificant_body, INSIGNIFICANT)
    return GreenCounts(_error_counts(significant, SIGNIFICANT), matched, insignificant)


@dataclass(frozen=True)
class GreenOutcome:
    """GREEN on one study: the counts, or why there are none (an unreadable answer, a refused request)."""

    counts: GreenCounts | None
    answer: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        c = self.counts
        return {
            "green": None if c is None else c.score,
            "matched": None if c is None else c.matched,
            "significant": None if c is None else list(c.significant),
            "insignificant": None if c is None or c.insignificant is None else list(c.insignificant),
            "error": self.error,
            "answer": self.answer,
        }


class TextCompleter(Protocol):
    """Completes a raw text prompt (the GREEN server; a scripted one in unit tests)."""

    @property
    def model_id(self) -> str: ...

    def complete_text(self, prompt: str, max_tokens: int) -> str: ...


class CompletionClient(OpenAIChatClient):
    """The chat client plus one greedy, non-streamed call of the OpenAI ``/v1/completions`` endpoint."""

    def served_models(self) -> list[str]:
        """The model names the server lists at ``/v1/models``."""
        try:
            response = self._http.get(f"{self.base_url}/models")
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != 200:
            raise LLMUnavailableError(
                f"the GREEN server at {self.base_url} answered {response.status_code} when asked for its models"
            )
        try:
            return [str(entry["id"]) for entry in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMUnavailableError(f"the GREEN server at {self.base_url} lists no model") from exc

    def complete_text(self, prompt: str, max_tokens: int) -> str:
        """The server's completion of ``prompt``, read verbatim (no special tokens added)."""
        body = {
            "model": self.model_id,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,  # the reference decodes greedily (do_sample=False)
            "add_special_tokens": False,  # vLLM: the prompt already holds <s>
        }
        try:
            response = self._http.post(f"{self.base_url}/completions", json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != 200:
            raise LLMUnavailableError(
                f"the GREEN server at {self.base_url} refused the request ({response.status_code}: "
                f"{error_detail(response)})"
            )
        try:
            return str(response.json()["choices"][0]["text"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMUnavailableError(f"the GREEN server at {self.base_url} answered without a completion") from exc


class GreenScorer:
    """Scores (reference, candidate) pairs with a served GREEN model, several requests in flight."""

    def __init__(
        self, model: TextCompleter, max_tokens: int = MAX_ANSWER_TOKENS, concurrency: int = 4,
        bos: str = LLAMA2_BOS, eos: str = LLAMA2_EOS,
    ) -> None:  # fmt: skip
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.model = model
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.bos, self.eos = bos, eos

    @classmethod
    def from_url(cls, url: str, model: str | None = None, **options: Any) -> GreenScorer:
        """A scorer on the GREEN model served at ``url``; asks the server for its model now, so a wrong URL fails
        before any report is generated."""
        try:
            client = CompletionClient(url, model=model, timeout_s=600.0)
        except ValueError as exc:
            raise ConfigurationError(f"--green-url: {exc}") from exc
        try:
            served = client.served_models()
        except LLMUnavailableError as exc:
            raise ConfigurationError(f"--green-url {url}: {exc}") from exc
        if not served:
            raise ConfigurationError(f"--green-url {url}: the server lists no model")
        if model is not None and model not in served:
            raise ConfigurationError(
                f"--green-model {model} is not served at {url} (it serves: {', '.join(served[:5])})"
            )
        logger.info("GREEN model %s at %s", client.model_id, client.base_url)
        return cls(client, **options)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def score(self, references: Sequence[str], candidates: Sequence[str]) -> list[GreenOutcome]:
        """One outcome per pair, in order; a failed or unreadable answer is an outcome with its ``error``."""
        if len(references) != len(candidates):
            raise ValueError(f"{len(references)} references but {len(candidates)} candidates")
        pairs = list(zip(references, candidates, strict=True))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda pair: self._one(*pair), pairs))

    def _one(self, reference: str, candidate: str) -> GreenOutcome:
        try:
            answer = self.model.complete_text(model_input(reference, candidate, self.bos, self.eos), self.max_tokens)
        except RadassistError as exc:
            return GreenOutcome(None, "", str(exc))
        try:
            return GreenOutcome(parse_answer(answer), answer)
        except GreenParseError as exc:
            logger.warning("GREEN answer not readable: %s", exc)
            return GreenOutcome(None, answer, f"unreadable GREEN answer: {exc}")


def summarize(outcomes: Sequence[GreenOutcome], seed: int = 0, resamples: int = 1000) -> dict[str, Any]:
    """``green_*`` metrics: the mean GREEN over readable answers (95% bootstrap), failures, mean counts."""
    read = [o.counts for o in outcomes if o.counts is not None]
    scores = [c.score for c in read]
    ci = metrics.bootstrap_ci(scores, resamples=resamples, seed=seed) if scores else None
    insignificant = [sum(c.insignificant) for c in read if c.insignificant is not None]
    return {
        "green": metrics.mean(scores) if scores else None,
        "green_ci95": list(ci) if ci else None,
        "green_scored": len(read),
        "green_failures": len(outcomes) - len(read),
        "green_matched_findings": metrics.mean([float(c.matched) for c in read]) if read else None,
        "green_significant_errors": {
            name: metrics.mean([float(c.significant[i]) for c in read]) if read else None
            for i, name in enumerate(ERROR_CATEGORIES)
        },
        "green_insignificant_errors": metrics.mean([float(n) for n in insignificant]) if insignificant else None,
    }
