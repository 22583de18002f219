"""GREEN: the prompt the model was trained on, the reading of its answers, the score arithmetic, and the CLI path
through a real local HTTP server that speaks the completions protocol (a fake only at the transport)."""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import eval as cli_eval
from assistant.errors import ConfigurationError, LLMUnavailableError
from assistant.eval import green
from assistant.eval.green import GreenCounts, GreenOutcome, GreenParseError, GreenScorer, parse_answer
from assistant.eval.report import summarize as report_summary
from assistant.settings import load_settings

# A GREEN answer in the format the instruction asks for: 2 significant errors (a: 1, b: 1), 1 insignificant (c),
# 2 matched findings. GREEN = 2 / (2 + 2) = 0.5.
ANSWER = """[Explanation]:
The candidate reports an effusion the reference does not, misses the pneumothorax, and places the opacity in the
wrong lobe, which matters little here.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 1. Pleural effusion.
(b) Missing a finding present in the reference: 1. Right pneumothorax.
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 0.
(c) Misidentification of a finding's anatomic location/position: 1. Opacity in the left upper lobe.
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Matched Findings]:
2. Normal heart size; Clear left lung.
"""

PERFECT = """[Explanation]:
Both reports agree.

[Clinically Significant Errors]:
No clinically significant errors.

[Clinically Insignificant Errors]:
No clinically insignificant errors.

[Matched Findings]:
3. Normal heart size; No effusion; No pneumothorax.
"""


def test_the_instruction_is_the_one_the_model_was_trained_on() -> None:
    text = green.instruction("Heart size is normal. No {pleural} effusion.", "Small left effusion.")
    # sha256 of Stanford-AIMI/GREEN green_score/utils.py make_prompt(<the same two reports>) at commit d72c195
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "22995850fc8ad6d5bc64f2e078756f339af7947121d50b3cfc8abdd49cd7c6b5"
    )
    assert text.startswith("Objective: Evaluate the accuracy of a candidate radiology report")
    assert "\n\n    2. Reference Report:\n    Heart size is normal. No {pleural} effusion.\n\n" in text
    assert text.endswith("<Finding 1>; <Finding 2>; ...; <Finding n>\n    ```\n")


def test_each_report_is_cut_to_300_words_with_whitespace_collapsed() -> None:
    long = " ".join(f"w{i}" for i in range(400))
    text = green.instruction(long, "line one\n\n  line   two")
    assert "w299" in text and "w300" not in text
    assert "3. Candidate Report:\n    line one line two\n" in text


def test_the_model_input_is_the_reference_chat_layout_with_llama_tokens() -> None:
    body = green.instruction("R.", "C.")
    assert green.model_input("R.", "C.") == f"<s><|user|>\n{body}</s>\n<|assistant|>\n</s>\n<|assistant|>\n</s>"
    assert green.model_input("R.", "C.", bos="", eos="<|e|>").endswith("<|assistant|>\n<|e|>")


def test_an_answer_is_read_into_counts_and_scored() -> None:
    counts = parse_answer(ANSWER)
    assert counts.significant == (1, 1, 0, 0, 0, 0)
    assert counts.insignificant == (0, 0, 1, 0, 0, 0)
    assert counts.matched == 2
    assert counts.score == 0.5  # 2 / (2 + 1 + 1); insignificant errors do not count


def test_no_errors_reads_zero_and_a_perfect_report_scores_one() -> None:
    counts = parse_answer(PERFECT)
    assert (counts.significant, counts.insignificant, counts.matched) == ((0,) * 6, (0,) * 6, 3)
    assert counts.score == 1.0


def test_nothing_matched_scores_zero_even_without_errors() -> None:
    answer = PERFECT.replace("3. Normal heart size; No effusion; No pneumothorax.", "No matched findings.")
    assert parse_answer(answer).matched == 0
    assert parse_answer(answer).score == 0.0
    assert GreenCounts((0,) * 6, 0).score == 0.0


def test_numbered_categories_are_read_and_a_category_without_a_count_is_zero() -> None:
    answer = (
        "[Clinically Significant Errors]:\n(1) False report of a finding in the candidate: 2. A; B.\n"
        "(4) Misassessment of the severity of a finding: 1. Effusion size.\n(6) Omitting a comparison: none\n\n"
        "[Matched Findings]:\n1. Heart size.\n"
    )
    counts = parse_answer(answer)
    assert counts.significant == (2, 0, 0, 1, 0, 0)
    assert counts.insignificant is None  # no such section: not needed for the score
    assert counts.score == 1 / (1 + 3)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("The candidate is mostly right.", "no \\[Clinically Significant Errors\\] section"),
        (ANSWER.split("[Matched Findings]")[0], "no \\[Matched Findings\\] section"),
        (ANSWER.replace("2. Normal heart size", "Normal heart size"), "does not open with a count"),
        (PERFECT.replace("No clinically significant errors.", "Some errors were found."), "lists no error category"),
        (  # an empty section does not take the next section's counts
            "[Clinically Significant Errors]:\n[Clinically Insignificant Errors]:\n(a) False report of a finding in "
            "the candidate: 2.\n\n[Matched Findings]:\n1. Heart size.\n",
            "lists no error category",
        ),
    ],
)
def test_an_answer_without_readable_counts_is_refused(answer: str, why: str) -> None:
    with pytest.raises(GreenParseError, match=why):
        parse_answer(answer)


class ScriptedCompleter:
    """Answers each prompt by the first key found in it; records the prompts and token budgets."""

    model_id = "scripted-green"

    def __init__(self, answers: dict[str, str | Exception]) -> None:
        self.answers = answers
        self.prompts: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def complete_text(self, prompt: str, max_tokens: int) -> str:
        with self._lock:
            self.prompts.append((prompt, max_tokens))
        for key, answer in self.answers.items():
            if key in prompt:
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return "nonsense"


def test_the_scorer_keeps_order_and_counts_unreadable_and_refused_answers_as_failures() -> None:
    model = ScriptedCompleter(
        {"cand-half": ANSWER, "cand-perfect": PERFECT, "cand-down": LLMUnavailableError("the server refused")}
    )
    outcomes = GreenScorer(model, max_tokens=77, concurrency=3).score(
        ["ref"] * 4, ["cand-half", "cand-garbage", "cand-perfect", "cand-down"]
    )
    assert [o.counts.score if o.counts else None for o in outcomes] == [0.5, None, 1.0, None]
    assert outcomes[1].answer == "nonsense" and "unreadable GREEN answer" in str(outcomes[1].error)
    assert outcomes[3].error == "the server refused"
    assert {budget for _, budget in model.prompts} == {77}
    assert all(p.startswith("<s><|user|>\nObjective:") for p, _ in model.prompts)

    summary = green.summarize(outcomes, seed=0, resamples=200)
    assert (summary["green"], summary["green_scored"], summary["green_failures"]) == (0.75, 2, 2)
    assert summary["green_matched_findings"] == 2.5  # (2 + 3) / 2
    significant = summary["green_significant_errors"]
    assert significant["False report of a finding in the candidate"] == 0.5
    assert significant["Misassessment of the severity of a finding"] == 0.0
    assert summary["green_insignificant_errors"] == 0.5  # (1 + 0) / 2
    low, high = summary["green_ci95"]
    assert 0.5 <= low <= high <= 1.0


def test_report_summary_adds_green_keys_only_with_outcomes() -> None:
    records = [{"id": "1", "reference": "No effusion.", "prediction": "No effusion."}]
    plain = report_summary(records, resamples=50)
    assert not any(k.startswith("green") for k in plain)
    with_green = report_summary(records, resamples=50, green=[GreenOutcome(parse_answer(PERFECT), PERFECT)])
    assert with_green["green"] == 1.0 and with_green["green_failures"] == 0
    with pytest.raises(ValueError, match="2 GREEN outcomes for 1 scored"):
        report_summary(records, green=[GreenOutcome(None), GreenOutcome(None)])


class CompletionServer:
    """A real local HTTP server with OpenAI ``/v1/models`` and ``/v1/completions``; answers by candidate text."""

    def __init__(self, answers: dict[str, str], model: str = "green-stub") -> None:
        self.answers, self.model = answers, model
        self.bodies: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": stub.model, "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.bodies.append(body)
                if self.path != "/v1/completions" or body.get("model") != stub.model:
                    self._send(404, {"error": {"message": f"no {self.path} for {body.get('model')}"}})
                    return
                text = next((a for key, a in stub.answers.items() if key in body["prompt"]), "I cannot say.")
                self._send(200, {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> CompletionServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def server() -> Iterator[CompletionServer]:
    with CompletionServer({"Small left pleural effusion.": PERFECT, "The lungs are clear.": ANSWER}) as stub:
        yield stub


def _run(*argv: str, data_dir: Path) -> int:
    parser = argparse.ArgumentParser(prog="radassist")
    cli_eval.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args, load_settings(env={}, data_dir=data_dir, embedding_model="hashing-128")))


def _data(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    data = tmp_path / "reports.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return data


def test_eval_report_adds_green_only_when_asked(
    tmp_path: Path, server: CompletionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(tmp_path, [
        {"id": "1", "reference": "Small left pleural effusion.", "generated": "Small left pleural effusion."},
        {"id": "2", "reference": "Right pneumothorax.", "generated": "The lungs are clear."},
    ])  # fmt: skip
    base = ["eval", "report", "--data", str(data), "--json", "--resamples", "100"]
    assert _run(*base, "--out", str(tmp_path / "plain"), data_dir=tmp_path / "d") == 0
    plain = json.loads(capsys.readouterr().out)
    assert not any(key.startswith("green") for key in plain)  # add-only: nothing new unless asked

    out = tmp_path / "green"
    assert _run(*base, "--out", str(out), "--green-url", server.url, data_dir=tmp_path / "d") == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in summary.items() if not k.startswith("green") and k != "predictions"} == {
        k: v for k, v in plain.items() if k != "predictions"
    }
    assert (summary["green"], summary["green_scored"], summary["green_failures"]) == (0.75, 2, 0)
    assert summary["green_model"] == "green-stub"
    rows = [json.loads(line) for line in (out / "green.jsonl").read_text().splitlines()]
    assert [(r["id"], r["green"], r["matched"], r["error"]) for r in rows] == [("1", 1.0, 3, None), ("2", 0.5, 2, None)]
    assert "| GREEN (x100) | 75.0" in (out / "metrics.md").read_text()
    sent = server.bodies[-1]
    assert (sent["temperature"], sent["add_special_tokens"], sent["max_tokens"]) == (0.0, False, 1024)
    assert sent["prompt"].startswith("<s><|user|>\nObjective:") and sent["prompt"].endswith("<|assistant|>\n</s>")


def test_an_unreadable_green_answer_is_counted_and_fails_the_run(
    tmp_path: Path, server: CompletionServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(tmp_path, [
        {"id": "1", "reference": "Small left pleural effusion.", "generated": "Small left pleural effusion."},
        {"id": "2", "reference": "Right pneumothorax.", "generated": "Something the stub cannot judge."},
    ])  # fmt: skip
    argv = ["eval", "report", "--data", str(data), "--json", "--out", str(tmp_path / "o"), "--green-url", server.url,
            "--green-model", "green-stub", "--green-max-tokens", "64"]  # fmt: skip
    assert _run(*argv, data_dir=tmp_path / "d") == 1  # a GREEN failure is a failure of the run
    summary = json.loads(capsys.readouterr().out)
    assert (summary["green"], summary["green_scored"], summary["green_failures"]) == (1.0, 1, 1)
    assert summary["failures"] == 0  # every report was there; only its GREEN answer was not readable
    failed = json.loads((tmp_path / "o" / "green.jsonl").read_text().splitlines()[1])
    assert failed["green"] is None and failed["answer"] == "I cannot say."
    assert "unreadable GREEN answer" in failed["error"]
    assert server.bodies[-1]["max_tokens"] == 64


def test_green_options_fail_early_and_name_the_flag(tmp_path: Path, server: CompletionServer) -> None:
    data = _data(tmp_path, [{"id": "1", "reference": "No effusion.", "generated": "No effusion."}])
    base = ["eval", "report", "--data", str(data), "--out", str(tmp_path / "o")]
    with pytest.raises(ConfigurationError, match="--green-model NAME needs --green-url"):
        _run(*base, "--green-model", "x", data_dir=tmp_path / "d")
    with pytest.raises(ConfigurationError, match="--green-model other is not served .*green-stub"):
        _run(*base, "--green-url", server.url, "--green-model", "other", data_dir=tmp_path / "d")
    with pytest.raises(ConfigurationError, match="--green-url: base_url must start with http"):
        _run(*base, "--green-url", "localhost:1", data_dir=tmp_path / "d")
    with pytest.raises(ConfigurationError, match="--green-max-tokens must be at least 1"):
        _run(*base, "--green-url", server.url, "--green-max-tokens", "0", data_dir=tmp_path / "d")
    closed = CompletionServer({})
    url = closed.url
    closed.server.server_close()  # nothing listens there any more
    with pytest.raises(ConfigurationError, match=f"--green-url {url}: cannot connect"):
        _run(*base, "--green-url", url, data_dir=tmp_path / "d")
