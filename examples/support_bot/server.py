"""The support bot over HTTP, with the standard library only.

- ``POST /chat`` (stateless): ``{"conversation": [{"role", "content"}...], "sid": "..."}``; the bot
  reads the whole conversation every call.
- ``POST /chat-stateful``: ``{"message": "...", "sid": "..."}`` (or a ``conversation``, of which
  only the latest user message is read); the server keeps each session's history.
- ``GET /health``: ``{"ok": true}``.

Both chat routes answer ``{"data": {"text": "...", "tool_calls": [{"name", "arguments"}...]}}``.
With ``SUPPORT_BOT_KEY`` set in the environment, requests need ``Authorization: Bearer <key>``.
Bodies over 1 MB are refused (413), bad JSON is a 400 with ``{"error": ...}``.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from examples.support_bot.bot import Bot

MAX_BODY = 1_000_000
MAX_SESSIONS = 10_000
KEY_ENV = "SUPPORT_BOT_KEY"


class BadRequest(ValueError):
    pass


class Sessions:
    """Each stateful session's history, the oldest sessions forgotten past ``MAX_SESSIONS``."""

    def __init__(self) -> None:
        self._histories: OrderedDict[str, list[dict[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def exchange(self, bot: Bot, sid: str, message: str) -> dict[str, Any]:
        with self._lock:
            history = self._histories.setdefault(sid, [])
            self._histories.move_to_end(sid)
            while len(self._histories) > MAX_SESSIONS:
                self._histories.popitem(last=False)
            history.append({"role": "user", "content": message})
            reply = bot.reply(history)
            history.append({"role": "assistant", "content": reply.text})
        return reply.to_json()


def make_server(host: str = "127.0.0.1", port: int = 0, seed: int = 7) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (0: a free port, read back from ``server_address``); not started."""
    bot, sessions = Bot(seed), Sessions()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            if not self._authorised():
                self._send(401, {"error": "missing or wrong Authorization: Bearer key"})
                return
            try:
                body = self._body()
                if self.path == "/chat":
                    self._send(200, bot.reply(_conversation(body)).to_json())
                elif self.path == "/chat-stateful":
                    self._send(200, sessions.exchange(bot, _sid(body), _latest(body)))
                else:
                    self._send(404, {"error": f"no route {self.path}"})
            except BadRequest as error:
                self._send(413 if "too large" in str(error) else 400, {"error": str(error)})

        def _authorised(self) -> bool:
            key = os.environ.get(KEY_ENV)
            if not key:
                return True
            given = self.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise BadRequest(f"body too large (at most {MAX_BODY} bytes)")
            try:
                data = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                raise BadRequest("the body is not JSON") from None
            if not isinstance(data, dict):
                raise BadRequest("the body must be a JSON object")
            return data

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests start many
            pass

    return ThreadingHTTPServer((host, port), Handler)


def _conversation(body: dict[str, Any]) -> list[dict[str, str]]:
    conversation = body.get("conversation")
    if not isinstance(conversation, list) or not all(isinstance(m, dict) for m in conversation):
        raise BadRequest('"conversation" must be a list of {"role", "content"} objects')
    return [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in conversation]


def _latest(body: dict[str, Any]) -> str:
    if isinstance(body.get("message"), str):
        return str(body["message"])
    users = [m["content"] for m in _conversation(body) if m["role"] == "user"]
    if not users:
        raise BadRequest('give "message" (a string) or a "conversation" with a user message')
    return users[-1]


def _sid(body: dict[str, Any]) -> str:
    sid = body.get("sid")
    if not isinstance(sid, str) or not sid:
        raise BadRequest('"sid" must be a non-empty string (one per conversation)')
    return sid
