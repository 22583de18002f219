"""A real local HTTP server speaking the OpenAI chat-completions protocol with a fixed answer.

For CLI tests of what happens around an answer (a subprocess talks to it over a real socket, so nothing in
the code under test is patched); it records each request body so a test can check what reached the model.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIStub:
    """``with OpenAIStub("answer") as llm:`` serves ``llm.url``; ``llm.requests`` holds the chat bodies."""

    def __init__(self, answer: str = "No acute finding.", model: str = "stub-model") -> None:
        self.answer = answer
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stub is not running: use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OpenAIStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"data": [{"id": stub.model}]}).encode(), "application/json")
                else:
                    self._send(404, b'{"detail": "not found"}', "application/json")

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, b'{"detail": "not found"}', "application/json")
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                stub.requests.append(body)
                if not body.get("stream"):
                    message = {"role": "assistant", "content": stub.answer}
                    reply = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
                    self._send(200, json.dumps(reply).encode(), "application/json")
                    return
                events = [{"choices": [{"index": 0, "delta": {"content": word + " "}}]} for word in stub.answer.split()]
                stream = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
                self._send(200, stream.encode(), "text/event-stream")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def prompt_text(self) -> str:
        """Everything the model was sent, as one string (text parts of every message of every request)."""
        return json.dumps(self.requests)
