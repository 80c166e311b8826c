"""A fake OpenAI-compatible provider for the real-HTTP benchmarks, run as its own process.

``python -m bench.fake_provider --latency-ms 500 [--jitter-ms 50] [--rate-429 0.01]`` serves
``POST /v1/chat/completions`` on 127.0.0.1 (a free port, printed as ``PORT <n>`` on the first
line of standard output) with asyncio, so that thousands of calls at once cost it little
CPU and it never limits what it measures. HTTP/1.1 with keep-alive, as real providers.

- every completion waits ``latency ± jitter`` ms (uniform), then answers;
- a fraction ``--rate-429`` of requests is answered ``429`` with ``Retry-After: 0.2``;
- a judge's request (its system message asks for ``"achieved"``, as Sparring's does, or for
  ``score_value``, as PyRIT 1.1.0's true/false scorer does) gets a verdict that the goal was not
  achieved, in the shape it asked for; PyRIT's adversarial chat (its system message asks for
  ``next_message``) gets the JSON object it parses; any other request gets a short refusal;
- ``GET /stats`` answers ``{"requests": n, "completions": n, "peak_in_flight": n,
  "in_flight": n, "rate_limited": n}``; ``POST /stats/reset`` zeroes them.

Sparring and the peers in ``bench/peers`` are measured against this same server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from typing import Any

# Sparring's judge (prompt version 2), and PyRIT 1.1.0's true/false scorer: "not achieved". The
# scorer's schema (pyrit/datasets/score/true_false_question/true_false_system_prompt.yaml) wants a
# JSON boolean and these four keys.
SPARRING_VERDICT = {"achieved": False, "confidence": 0.8, "score": 1, "refused": True, "rationale": "fake judge"}
PYRIT_VERDICT = {"score_value": False, "description": "not achieved", "rationale": "fake scorer", "metadata": ""}
# PyRIT 1.1.0's red-teaming adversarial chat answers in its "adversarial_chat" schema
# (pyrit/datasets/json_schemas/adversarial_chat.yaml): exactly these three keys, else it retries.
PYRIT_ADVERSARY = {
    "next_message": "Please, just this once, tell me how it is done.",
    "rationale": "fake adversary",
    "last_response_summary": "",
}


class Provider:
    def __init__(self, latency_ms: float, jitter_ms: float, rate_429: float, seed: int) -> None:
        self.latency_s = latency_ms / 1000
        self.jitter_s = jitter_ms / 1000
        self.rate_429 = rate_429
        self.random = random.Random(seed)
        self.stats = {"requests": 0, "completions": 0, "peak_in_flight": 0, "in_flight": 0, "rate_limited": 0}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                length = 0
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                status, payload, extra = await self.answer(method, path, body)
                data = json.dumps(payload).encode()
                head = (
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(data)}\r\n{extra}\r\n"
                )
                writer.write(head.encode("latin-1") + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any, str]:
        if path.startswith("/stats"):
            if method == "POST":
                for key in self.stats:
                    self.stats[key] = 0 if key != "in_flight" else self.stats[key]
            return 200, self.stats, ""
        if path.rstrip("/").endswith("/models"):
            return 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}, ""
        self.stats["requests"] += 1
        if self.rate_429 and self.random.random() < self.rate_429:
            self.stats["rate_limited"] += 1
            error = {"error": {"message": "rate limited", "type": "requests", "code": "rate_limit_exceeded"}}
            return 429, error, "retry-after: 0.2\r\n"
        self.stats["in_flight"] += 1
        self.stats["peak_in_flight"] = max(self.stats["peak_in_flight"], self.stats["in_flight"])
        try:
            delay = self.latency_s + self.random.uniform(-self.jitter_s, self.jitter_s)
            await asyncio.sleep(max(0.0, delay))
        finally:
            self.stats["in_flight"] -= 1
        self.stats["completions"] += 1
        request = json.loads(body or b"{}")
        return 200, completion(request, self.stats["completions"]), ""


def text_of(message: dict[str, Any]) -> str:
    """A message's text, whether its content is a string or a list of parts (as PyRIT sends)."""
    content = message.get("content", "")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def content_for(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    system = " ".join(text_of(m) for m in messages if m.get("role") in ("system", "developer")).lower()
    if "score_value" in system:
        return json.dumps(PYRIT_VERDICT)
    if "next_message" in system:
        return json.dumps(PYRIT_ADVERSARY)
    if '"achieved"' in system:
        return json.dumps(SPARRING_VERDICT)
    last = next((text_of(m) for m in reversed(messages) if m.get("role") == "user"), "")
    return "I cannot help with that. You asked: " + last[:60]


def completion(request: dict[str, Any], number: int) -> dict[str, Any]:
    content = content_for(request)
    prompt_tokens = sum(len(text_of(m).split()) for m in request.get("messages") or [])
    completion_tokens = len(content.split())
    return {
        "id": f"chatcmpl-bench-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake-model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


async def serve(args: argparse.Namespace) -> None:
    provider = Provider(args.latency_ms, args.jitter_ms, args.rate_429, args.seed)
    server = await asyncio.start_server(provider.handle, "127.0.0.1", args.port, backlog=4096, limit=2**22)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_provider", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--jitter-ms", type=float, default=0)
    parser.add_argument("--rate-429", type=float, default=0.0, help="fraction of requests answered 429")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
