"""A small OpenAI-compatible HTTP server for tests (standard library only).

It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1 on a free
port, in a background thread, so that the gateway, litellm and the OpenAI SDK are tested
over a real socket. A test scripts what the next requests get::

    server.script(["429:0.2", "500", "hang:2", "text:I concede", "ok"])

- ``"ok"``: a chat completion (also what every request gets once the script is empty);
- ``"text:<content>"``: a chat completion with that content;
- ``"<status>"`` or ``"<status>:<seconds>"``: that HTTP status with an OpenAI-style JSON
  error body, and ``Retry-After: <seconds>`` when given (``"429:0.2"``, ``"503:1"``);
  a 401's message echoes the key it was sent (some providers do), to test scrubbing;
- ``"hang:<seconds>"``: wait that long, then answer ``ok`` (to make clients time out);
- ``"tool:<name>:<JSON arguments>"``: a chat completion that calls that tool (``tool_calls``
  on the wire, ``finish_reason`` "tool_calls"), as a model given ``tools`` does.

``FakeOpenAIServer(latency_s=1.0)`` makes every completion take that long (as a provider
would), ``server.peak_in_flight`` is the most completions it was answering at once, and
``server.connections`` the TCP connections clients opened.

The default reply is ``fake reply to: <first 40 characters of the last user message>``,
or, when a system message mentions "judge", the verdict JSON
``{"achieved": false, "confidence": 0.8, "rationale": "fake judge"}``. Usage counts
words: prompt tokens over all messages, completion tokens over the reply.

Every request is recorded (``server.requests``): method, path, headers (lower-case
names), JSON body, arrival time (``time.monotonic()``), the step it got, and the status
and JSON it was answered with.

Use ``with FakeOpenAIServer() as server:`` or the ``openai_server`` fixture, brought into
a test module by assignment (importing it by name makes ruff report F811 at every test
that takes it as an argument)::

    from tests.fakes import openai_server as fake_openai

    openai_server = fake_openai.openai_server
"""

from __future__ import annotations

import collections
import http.server
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

log = logging.getLogger(__name__)

JUDGE_VERDICT = {"achieved": False, "confidence": 0.8, "rationale": "fake judge"}
REPLY_PREFIX = "fake reply to: "

_ERRORS = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    arrived: float  # time.monotonic()
    step: str
    status: int | None = None  # set just before the answer is sent
    reply: Any = None


@dataclass
class _Step:
    kind: str  # ok | text | error | hang | tool
    status: int = 200
    seconds: float | None = None
    text: str | None = None


def parse_step(step: str) -> _Step:
    """``"ok"``, ``"text:..."``, ``"429"``, ``"429:0.2"`` or ``"hang:2"``; ValueError otherwise."""
    head, _, arg = step.partition(":")
    if head == "ok" and not arg:
        return _Step("ok")
    if head == "text":
        return _Step("text", text=arg)
    if head == "hang":
        return _Step("hang", seconds=float(arg))
    if head == "tool":
        json.loads(arg.partition(":")[2] or "{}")  # a bad script fails where it is written
        return _Step("tool", text=step.removeprefix("tool:"))
    if head.isdigit() and 400 <= int(head) <= 599:
        return _Step("error", status=int(head), seconds=float(arg) if arg else None)
    raise ValueError(f"unknown fake-server step {step!r}: use ok, text:..., <status>[:<retry-after>] or hang:<s>")


def word_count(text: str) -> int:
    return len(text.split())


def default_content(body: Any) -> str:
    messages = body.get("messages", []) if isinstance(body, dict) else []
    if any(m.get("role") == "system" and "judge" in str(m.get("content", "")).lower() for m in messages):
        return json.dumps(JUDGE_VERDICT)
    last_user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    return REPLY_PREFIX + last_user[:40]


def completion(body: Any, content: str, number: int) -> dict[str, Any]:
    messages = body.get("messages", []) if isinstance(body, dict) else []
    prompt_tokens = sum(word_count(str(m.get("content", ""))) for m in messages)
    completion_tokens = word_count(content)
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model") if isinstance(body, dict) else "fake-model",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def tool_completion(body: Any, name: str, arguments: str, number: int) -> dict[str, Any]:
    """A completion whose message calls the tool ``name`` with ``arguments`` (JSON text)."""
    answer = completion(body, "", number)
    call = {"id": f"call_fake_{number}", "type": "function", "function": {"name": name, "arguments": arguments}}
    answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer["choices"][0]["finish_reason"] = "tool_calls"
    return answer


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind, code = _ERRORS.get(status, ("server_error", "server_error"))
    text = message or f"fake server: HTTP {status}"
    return {"error": {"message": text, "type": kind, "param": None, "code": code}}


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    steps: collections.deque[str] = field(default_factory=collections.deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    stopping: threading.Event = field(default_factory=threading.Event)
    latency_s: float = 0.0
    in_flight: int = 0
    peak_in_flight: int = 0
    connections: int = 0  # TCP connections accepted


class FakeOpenAIServer:
    def __init__(self, latency_s: float = 0.0) -> None:
        self._state = _State(latency_s=latency_s)
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self._state)
        self._thread = threading.Thread(target=self._serve, name="fake-openai", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as ``api_base``: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, steps: Iterable[str]) -> None:
        """Queue what the next requests get, in order (see the module docstring)."""
        parsed = list(steps)
        for step in parsed:
            parse_step(step)
        with self._state.lock:
            self._state.steps.extend(parsed)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def completions(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def peak_in_flight(self) -> int:
        """The most completions that were being answered at one instant."""
        with self._state.lock:
            return self._state.peak_in_flight

    @property
    def connections(self) -> int:
        """How many TCP connections clients opened (a kept-alive connection counts once)."""
        with self._state.lock:
            return self._state.connections

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.02)  # so that stop() returns at once

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.stopping.set()  # wakes handlers that hang
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the listen backlog: hundreds of clients may connect at once

    def __init__(self, address: tuple[str, int], handler: type[_Handler], state: _State) -> None:
        super().__init__(address, handler)
        self.state = state


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers; every answer has a Content-Length
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections += 1

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._record(None, "ok")
            models = {
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "t"}],
            }
            self._send(200, models)
        else:
            self._send(404, error_body(404))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, error_body(404))
            return
        state = self.server.state
        with state.lock:
            step_text = state.steps.popleft() if state.steps else "ok"
            number = next(state.numbers)
            state.in_flight += 1
            state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            self._complete(body, step_text, number)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _complete(self, body: Any, step_text: str, number: int) -> None:
        state = self.server.state
        record = self._record(body, step_text)
        if state.latency_s:
            state.stopping.wait(state.latency_s)
        step = parse_step(step_text)
        if step.kind == "hang":
            state.stopping.wait(step.seconds)
        if step.kind == "error":
            headers = {"Retry-After": f"{step.seconds:g}"} if step.seconds is not None else {}
            self._send(step.status, error_body(step.status, self._error_message(step.status)), headers, record)
        elif not isinstance(body, dict):
            self._send(400, error_body(400), {}, record)
        elif step.kind == "tool" and step.text is not None:
            name, _, arguments = step.text.partition(":")
            self._send(200, tool_completion(body, name, arguments or "{}", number), {}, record)
        else:
            content = step.text if step.kind == "text" and step.text is not None else default_content(body)
            self._send(200, completion(body, content, number), {}, record)

    def _error_message(self, status: int) -> str | None:
        if status != 401:
            return None
        # Echo the key, as some providers do, so tests can check that it is scrubbed.
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        return f"Incorrect API key provided: {key}."

    def _record(self, body: Any, step: str) -> RecordedRequest:
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            arrived=time.monotonic(),
            step=step,
        )
        with self.server.state.lock:
            self.server.state.requests.append(record)
        return record

    def _send(
        self,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        record: RecordedRequest | None = None,
    ) -> None:
        if record is not None:
            record.status, record.reply = status, payload
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("fake server: the client left before the answer (it timed out)")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake server: " + format, *args)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server
