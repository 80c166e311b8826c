"""A small JSON-over-HTTP agent for tests of HTTP targets (standard library only).

It serves ``POST /chat`` on 127.0.0.1 on a free port, in a background thread. The body it
expects is whatever the test's request template makes; it answers
``{"data": {"text": ...}, "usage": {"prompt_tokens": n, "completion_tokens": m}}``, where the
text says what it saw: ``"saw <n> messages; last: <first 40 characters>"``. It finds the
messages under ``conversation`` (a list) or ``message`` (a string), and keeps per session
(``sid``) how many messages it has been sent, as a stateful service would.

A test scripts what the next requests get::

    server.script(["429:0.3", "500", "hang:2", "big:2000000", "nojson", "nopath", "text:I concede"])

- ``"ok"``: the normal answer (also what every request gets once the script is empty);
- ``"text:<reply>"``: the normal answer with that text;
- ``"<status>"`` or ``"<status>:<seconds>"``: that status, with ``Retry-After`` when given;
  a 401's body echoes the Authorization header it got (some services do), to test scrubbing;
- ``"hang:<seconds>"``: wait, then answer ``ok``;
- ``"big:<bytes>"``: a JSON answer of that many bytes;
- ``"nojson"``: a 200 with an HTML body; ``"nopath"``: a 200 whose JSON has no ``data.text``.

Every request is recorded (``server.requests``): path, lower-cased headers, parsed body, and
its arrival (``time.monotonic()``).
"""

from __future__ import annotations

import collections
import http.server
import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class AgentRequest:
    path: str
    headers: dict[str, str]
    body: Any
    arrived: float


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    steps: collections.deque[str] = field(default_factory=collections.deque)
    requests: list[AgentRequest] = field(default_factory=list)
    sessions: collections.Counter[str] = field(default_factory=collections.Counter)
    stopping: threading.Event = field(default_factory=threading.Event)


class FakeAgentServer:
    def __init__(self) -> None:
        self._state = _State()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self._state)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/chat"

    def script(self, steps: Iterable[str]) -> None:
        with self._state.lock:
            self._state.steps.extend(steps)

    @property
    def requests(self) -> list[AgentRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def session_length(self, sid: str) -> int:
        with self._state.lock:
            return self._state.sessions[sid]

    def __enter__(self) -> FakeAgentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._state.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], state: _State) -> None:
        super().__init__(address, handler)
        self.state = state


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        state = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        with state.lock:
            state.requests.append(AgentRequest(self.path, headers, body, time.monotonic()))
            step = state.steps.popleft() if state.steps else "ok"
        head, _, arg = step.partition(":")
        if head == "hang":
            state.stopping.wait(float(arg))
            head = "ok"
        if head.isdigit():
            retry = {"Retry-After": arg} if arg else {}
            echo = f"bad key {headers.get('authorization', '')}" if head == "401" else "no"
            self._send(int(head), json.dumps({"error": echo}).encode(), retry)
        elif head == "big":
            filler = "x" * max(0, int(arg) - 30)
            self._send(200, json.dumps({"data": {"text": filler}}).encode())
        elif head == "nojson":
            self._send(200, b"<html>Service unavailable</html>", {"Content-Type": "text/html"})
        elif head == "nopath":
            self._send(200, json.dumps({"result": "hello"}).encode())
        else:
            self._send(200, json.dumps(self._answer(body, arg if head == "text" else None)).encode())

    def _answer(self, body: Any, text: str | None) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        conversation = body.get("conversation")
        seen = conversation if isinstance(conversation, list) else [{"content": body.get("message", "")}]
        sid = str(body.get("sid", ""))
        with self.server.state.lock:
            self.server.state.sessions[sid] += len(seen)
        last = str(seen[-1].get("content", "")) if seen else ""
        reply = text if text is not None else f"saw {len(seen)} messages; last: {last[:40]}"
        return {"data": {"text": reply}, "usage": {"prompt_tokens": 7, "completion_tokens": 3}}

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def agent_server() -> Iterator[FakeAgentServer]:
    with FakeAgentServer() as server:
        yield server
