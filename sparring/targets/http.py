"""An agent behind a JSON-over-HTTP endpoint.

Each agent turn fills the request template, sends it, and reads the reply at the response
path. The call runs under the gateway's policy for the endpoint's host (one "provider" per
``host:port``): its retry loop (429, 5xx, timeouts, honouring ``Retry-After``), rate limit,
cap on calls in flight and circuit breaker; every attempt is an ``llm_calls`` row.

Bodies are bounded both ways (``MAX_BODY_BYTES``): a request that would be larger is not
sent, and a reply is read no further than the bound. A reply that is too large, not JSON,
or without the path is a recorded, permanent error (the battle fails with it), never a
crash. Redirects are not followed: the URL is the user's, and nothing else is fetched.
"""

from __future__ import annotations

import functools
import json
import time
import urllib.parse
from typing import Any

import httpx

from sparring import records as r
from sparring.gateway import AttemptFailed, Failure, http_pool_size, parse_retry_after, scrub
from sparring.targets.base import TargetReply, TurnContext
from sparring.targets.config import (
    MAX_BODY_BYTES,
    HttpConfig,
    TargetConfigError,
    describe,
    extract,
    fill,
    load_http,
    resolve_headers,
)

ERROR_SNIPPET_CHARS = 200


class _TooLarge(Exception):
    pass


@functools.cache
def _client() -> httpx.Client:
    size = http_pool_size()
    return httpx.Client(
        limits=httpx.Limits(max_connections=size, max_keepalive_connections=size), follow_redirects=False
    )


class HttpTarget:
    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self._path = config.path
        parts = urllib.parse.urlsplit(config.url)
        # The endpoint as named in records: no query string (it is the user's, and may say too much).
        self.label = describe("http", json.dumps(config.to_data())) or config.url
        self.provider = f"http:{(parts.hostname or '').lower()}" + (f":{parts.port}" if parts.port else "")

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> HttpTarget:
        return cls(load_http(data, check_env=False))

    @property
    def keeps_state(self) -> bool:
        return self.config.stateful

    def body(self, visible: list[dict[str, str]], session_id: str) -> bytes:
        shown = visible[-1:] if self.keeps_state else visible
        latest = visible[-1]["content"] if visible else ""
        return fill(self.config.request, message=latest, messages=shown, session_id=session_id).encode()

    def reply(self, visible: list[dict[str, str]], *, session_id: str, seq: int, context: TurnContext) -> TargetReply:
        body = self.body(visible, session_id)
        gateway = context.gateway
        return gateway.with_retries(
            self.provider,
            f"agent endpoint {self.label}",
            lambda attempt: gateway.guarded(
                self.provider,
                lambda timeout: self._once(body, seq, attempt, timeout, context),
                should_stop=context.should_stop,
                deadline=context.deadline,
            ),
            should_stop=context.should_stop,
            deadline=context.deadline,
        )

    def _once(self, body: bytes, seq: int, attempt: int, timeout: float, context: TurnContext) -> TargetReply:
        started_at, started = r.utcnow(), time.perf_counter()
        status: int | None = None
        secrets: list[str] = []
        try:
            headers, secrets = resolve_headers(self.config.headers)
            headers = {"Content-Type": "application/json", "Accept": "application/json", **headers}
            if len(body) > MAX_BODY_BYTES:
                raise _TooLarge(f"the request body is {len(body):,} bytes, over the {MAX_BODY_BYTES:,}-byte limit")
            status, raw, failure = self._send(body, headers, timeout, context)
            if failure is None:
                text, prompt_tokens, completion_tokens = self._read(raw)
        except httpx.TimeoutException:
            failure = Failure("timeout", True, None, None, f"no answer within {timeout:.1f} s")
        except httpx.TransportError as error:
            failure = Failure("connection", True, None, None, f"{type(error).__name__}: {error}")
        except _TooLarge as error:
            failure = Failure("too_large", False, status, None, str(error))
        except TargetConfigError as error:  # a header's variable is missing here
            failure = Failure("auth", False, None, None, error.message)
        except ValueError as error:  # not JSON, no reply at the path
            failure = Failure("bad_response", False, status, None, str(error))
        latency_ms = (time.perf_counter() - started) * 1000
        call = functools.partial(
            r.LLMCall,
            battle_id=context.battle_id,
            seq=seq,
            purpose="agent",
            model=self.label,
            provider=self.provider,
            attempt=attempt,
            started_at=started_at,
            latency_ms=latency_ms,
            run_id=context.run_id,
        )
        if failure is not None:
            failure = Failure(
                failure.kind,
                failure.transient,
                failure.http_status,
                failure.retry_after,
                scrub(failure.message, secrets),
            )
            context.on_call(call(error_type=failure.kind, error=failure.message, http_status=failure.http_status))
            raise AttemptFailed(failure)
        context.on_call(call(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, http_status=status))
        return TargetReply(text, self.label, (), prompt_tokens, completion_tokens, latency_ms, None)

    def _send(
        self, body: bytes, headers: dict[str, str], timeout: float, context: TurnContext
    ) -> tuple[int, bytes, Failure | None]:
        connect = min(context.gateway.settings.model_connect_timeout_s, timeout)
        limit = httpx.Timeout(timeout, connect=connect, pool=connect)
        with _client().stream(
            self.config.method, self.config.url, content=body, headers=headers, timeout=limit
        ) as answer:
            status = answer.status_code
            raw = _read_bounded(answer, MAX_BODY_BYTES if status < 300 else 4_096)
            if status < 300:
                return status, raw, None
            return status, raw, _status_failure(status, answer.headers, raw)

    def _read(self, raw: bytes) -> tuple[str, int, int]:
        try:
            data = json.loads(raw)
        except ValueError:
            raise ValueError(f"the response is not JSON: {_snippet(raw)!r}") from None
        try:
            value = extract(data, self._path)
        except LookupError as error:
            raise ValueError(str(error)) from None
        if value is None:
            raise ValueError(f"the reply at {self.config.response} is null")
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text, *_usage(data)


def _read_bounded(answer: httpx.Response, limit: int) -> bytes:
    length = answer.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit and answer.status_code < 300:
        raise _TooLarge(f"the response is {int(length):,} bytes, over the {limit:,}-byte limit")
    chunks, size = [], 0
    for chunk in answer.iter_bytes():
        size += len(chunk)
        if size > limit:
            if answer.status_code < 300:
                raise _TooLarge(f"the response is over the {limit:,}-byte limit")
            chunks.append(chunk[: limit - (size - len(chunk))])
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status_failure(status: int, headers: httpx.Headers, raw: bytes) -> Failure:
    message = f"HTTP {status}: {_snippet(raw)}"
    if status == 429:
        return Failure("rate_limited", True, status, parse_retry_after(headers), message)
    if status >= 500:
        return Failure("server", True, status, parse_retry_after(headers), message)
    if status == 408:
        return Failure("timeout", True, status, None, message)
    if status in (401, 403):
        return Failure("auth", False, status, None, message)
    if 300 <= status < 400:
        return Failure("bad_response", False, status, None, f"HTTP {status}: redirects are not followed")
    return Failure("bad_request", False, status, None, message)


def _snippet(raw: bytes) -> str:
    return raw[:ERROR_SNIPPET_CHARS].decode("utf-8", "replace")


def _usage(data: Any) -> tuple[int, int]:
    """Tokens when the response reports them (OpenAI's or Anthropic's names), else 0."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    return (prompt if isinstance(prompt, int) else 0), (completion if isinstance(completion, int) else 0)
