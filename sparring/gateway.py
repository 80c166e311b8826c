"""The LLM gateway: every model call goes through ``Gateway.complete``.

It is the one home of litellm, imported on first use (it costs seconds and ~190 MB), so
importing this module, or anything that imports it, stays cheap. Around each call:

- a per-provider circuit breaker: after ``breaker_threshold`` consecutive 429s the
  provider is paused for ``breaker_cooldown_s`` for every worker;
- a per-provider rate limit (``limits``, moving window; in Redis in queue mode);
- a per-provider cap on calls in flight (a Redis semaphore in queue mode);
- retries of transient errors (429, 5xx, timeouts, connection errors) with exponential
  backoff and full jitter (tenacity), honouring ``Retry-After``. We own retries: litellm
  and the OpenAI SDK underneath are told ``max_retries=0`` so they do not multiply;
- a record of every attempt (``LLMCall``): purpose, model, tokens, latency, cost, error.

API keys are read from the environment at call time and never leave this function;
error texts are scrubbed of key values before they are recorded.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import functools
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from limits import RateLimitItem, parse
from limits.storage import RedisStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from sparring import pricing, sim
from sparring import records as r
from sparring.modelref import PROVIDER_KEYS, ModelRef, parse_model
from sparring.settings import Settings
from sparring.shared_state import RedisError, SharedState, redis_client, shared_state

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: list[dict[str, Any]]
    purpose: str
    temperature: float | None = None
    seed: int | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    battle_id: str | None = None
    seq: int | None = None
    run_id: str | None = None
    deadline: float | None = None  # time.time() after which no call may run
    # The question as data, for the built-in sim models only (real models get ``messages``):
    # the sim must not break when a prompt's wording changes.
    sim_input: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI function schemas the model may call


@dataclass(frozen=True)
class WireToolCall:
    """A tool call as the model sent it: its id, the function's name, its arguments (JSON text)."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ModelReply:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost_usd: float | None
    attempts: int
    tool_calls: tuple[WireToolCall, ...] = ()


class ModelCallError(RuntimeError):
    """A model call that failed for good (retries exhausted or a permanent error)."""

    def __init__(self, message: str, kind: str, transient: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient


class Stopped(RuntimeError):
    """The caller asked to stop (cancel) while the gateway was waiting."""


class DeadlineReached(RuntimeError):
    """The battle's time limit arrived before the call could finish."""


@dataclass(frozen=True)
class Failure:
    """What went wrong in one attempt, and what the retry loop does about it."""

    kind: str  # rate_limited | server | timeout | connection | auth | bad_request | unknown
    transient: bool
    http_status: int | None
    retry_after: float | None
    message: str


CallSink = Callable[[r.LLMCall], None]
BREAKER_CACHE_S = 0.5
# The rate limit is shared through Redis. A process takes up to 1% of the limit at once (at
# most RATE_BATCH_MAX calls) and hands those calls to its threads for RATE_ALLOWANCE_S;
# calls not used by then are given up. So a window may see the limit plus what each process
# still held when it began: at most 1% more per worker process, and nothing more for a
# limit under 200 a window (taken one call at a time). One round trip per call was a tenth
# of the worker's CPU at 200 threads (bench.profile --path http).
RATE_BATCH_MAX = 16
RATE_ALLOWANCE_S = 1.0


def _never() -> bool:
    return False


class Gateway:
    def __init__(self, settings: Settings, state: SharedState | None = None) -> None:
        self.settings = settings
        self.state = state if state is not None else shared_state(settings.redis_url, settings.namespace)
        # In queue mode the limiter shares the process's Redis pool (sized for its threads)
        # rather than opening one of redis-py's default size.
        storage = (
            RedisStorage(settings.redis_url, connection_pool=redis_client(settings.redis_url).connection_pool)
            if settings.redis_url
            else storage_from_string("memory://")
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._limits: dict[str, RateLimitItem | None] = {}
        # provider -> calls this process took from the shared limit, each usable until a time.
        # A deque: its append and popleft are atomic, so 200 threads take calls without a lock.
        self._allowance: dict[str, collections.deque[float]] = {}
        # What this process last learned of each provider's breaker: (until, consecutive 429s,
        # read at). Read at most every BREAKER_CACHE_S, so a healthy provider costs no
        # round trip per call; a 429 refreshes it at once.
        self._breaker: dict[str, tuple[float, int, float]] = {}

    # -- configuration ---------------------------------------------------------------
    def concurrency_cap(self, provider: str) -> int | None:
        """The provider's cap on calls in flight; None (no cap) for the in-process sim
        unless one is set for it, or ``SPARRING_PROVIDER_CONCURRENCY`` is set explicitly.

        (The sim has no server to protect, and the cap costs two Redis round trips per call.)
        """
        override = self.settings.provider_overrides.get(provider, {})
        if "concurrency" in override:
            return int(override["concurrency"])
        if provider == "sim" and "provider_concurrency" not in self.settings.model_fields_set:
            return None
        return self.settings.provider_concurrency

    def rate_limit(self, provider: str) -> RateLimitItem | None:
        """The provider's limit; None for the in-process sim unless one is set for it."""
        if provider not in self._limits:
            limit = self.settings.rate_limit_for(provider)
            self._limits[provider] = None if limit is None else parse(limit)
        return self._limits[provider]

    # -- the call ----------------------------------------------------------------------
    def complete(
        self,
        request: ModelRequest,
        *,
        on_call: CallSink,
        should_stop: Callable[[], bool] = _never,
    ) -> ModelReply:
        """Call the model; retry transient errors; record every attempt through ``on_call``."""
        ref = parse_model(request.model)
        return self.with_retries(
            ref.provider,
            f"{request.purpose} model {request.model}",
            lambda attempt: self._attempt(ref, request, attempt, on_call, should_stop),
            should_stop=should_stop,
            deadline=request.deadline,
        )

    def with_retries(
        self,
        provider: str,
        label: str,
        attempt_once: Callable[[int], T],
        *,
        should_stop: Callable[[], bool] = _never,
        deadline: float | None = None,
    ) -> T:
        """Run ``attempt_once(attempt_number)`` until it succeeds, retrying transient failures.

        The one retry loop: model calls and calls to HTTP targets both come through it, so
        backoff, ``Retry-After`` and the deadline are honoured the same way. ``attempt_once``
        raises ``AttemptFailed`` for a failure it has recorded; ``label`` names the callee in
        the final error ("agent model sim/agent", "agent endpoint http://...").
        """
        attempts = 0

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            failure = getattr(error, "failure", None)
            if isinstance(failure, Failure) and failure.retry_after is not None:
                delay = min(failure.retry_after, self.settings.retry_max_wait_s) + random.uniform(0, 0.05)
                self._safe(lambda: self.state.note_backoff(provider, delay))
                return delay
            exponential = tenacity.wait_random_exponential(
                multiplier=self.settings.retry_base_s, max=self.settings.retry_max_wait_s
            )
            delay = float(exponential(state))
            self._safe(lambda: self.state.note_backoff(provider, delay))
            return delay

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.settings.model_max_attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, AttemptFailed) and e.failure.transient),
            sleep=lambda seconds: self._sleep(seconds, should_stop, deadline),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    return attempt_once(attempts)
        except AttemptFailed as failed:
            failure = failed.failure
            if failure.kind == "timeout" and deadline is not None and time.time() >= deadline - 0.01:
                raise DeadlineReached("the battle's time limit was reached during a model call") from None
            suffix = f" after {attempts} attempts" if attempts > 1 else ""
            message = f"{label} failed{suffix}: {failure.message}"
            raise ModelCallError(message, failure.kind, failure.transient) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def guarded(
        self,
        provider: str,
        call: Callable[[float], T],
        *,
        should_stop: Callable[[], bool] = _never,
        deadline: float | None = None,
    ) -> T:
        """One attempt under the provider's policy: circuit breaker, rate limit, cap on calls
        in flight. ``call(timeout)`` makes the attempt; an ``AttemptFailed`` it raises for a
        429 counts towards the breaker, a success closes it again."""
        self._wait_for_circuit(provider, should_stop, deadline)
        self._wait_for_rate(provider, should_stop, deadline)
        timeout = self._timeout(deadline)
        token = r.new_id()
        capped = self._acquire_slot(provider, token, timeout, should_stop, deadline)
        try:
            result = call(timeout)
        except AttemptFailed as failed:
            if failed.failure.kind == "rate_limited":
                self._count_429(provider)
            raise
        finally:
            if capped:
                self._safe(lambda: self.state.release(provider, token))
        if self._breaker.get(provider, (0.0, 0, 0.0))[1] > 0:
            self._safe(lambda: self.state.record_success(provider))
            self._breaker[provider] = (0.0, 0, time.monotonic())
        return result

    def _attempt(
        self,
        ref: ModelRef,
        request: ModelRequest,
        attempt: int,
        on_call: CallSink,
        should_stop: Callable[[], bool],
    ) -> ModelReply:
        litellm = litellm_module()  # import (seconds, once) outside the timed region
        if ref.is_sim:
            _register_sim_price(litellm, ref)
        elif _unpriced(request.model):
            _register_unpriced(litellm, ref)
        return self.guarded(
            ref.provider,
            lambda timeout: self._call_once(ref, request, attempt, on_call, timeout),
            should_stop=should_stop,
            deadline=request.deadline,
        )

    def _call_once(
        self, ref: ModelRef, request: ModelRequest, attempt: int, on_call: CallSink, timeout: float
    ) -> ModelReply:
        started_at = r.utcnow()
        started = time.perf_counter()
        call = functools.partial(
            r.LLMCall,
            battle_id=request.battle_id,
            seq=request.seq,
            purpose=request.purpose,
            model=request.model,
            provider=ref.provider,
            attempt=attempt,
            started_at=started_at,
            run_id=request.run_id,
        )
        try:
            response = _call_litellm(ref, request, timeout, self.settings.model_connect_timeout_s)
        except Exception as error:  # noqa: BLE001 - every provider error is classified and recorded
            latency_ms = (time.perf_counter() - started) * 1000
            failure = classify(error, secrets=_secret_values(request.api_key_env))
            on_call(
                call(
                    latency_ms=latency_ms,
                    error_type=failure.kind,
                    error=failure.message,
                    http_status=failure.http_status,
                )
            )
            raise AttemptFailed(failure) from None
        latency_ms = (time.perf_counter() - started) * 1000
        text, prompt_tokens, completion_tokens, cost = _unpack(response)
        if _unpriced(request.model):
            cost = None  # litellm was told it is free (see _register_unpriced): the price is unknown
        on_call(
            call(
                latency_ms=latency_ms,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost,
            )
        )
        return ModelReply(
            text, request.model, prompt_tokens, completion_tokens, latency_ms, cost, attempt, _tool_calls(response)
        )

    # -- waiting -----------------------------------------------------------------------
    def _timeout(self, deadline: float | None) -> float:
        timeout = self.settings.model_timeout_s
        if deadline is not None:
            remaining = deadline - time.time()
            if remaining <= 0.01:
                raise DeadlineReached("the battle's time limit was reached")
            timeout = min(timeout, remaining)
        return timeout

    def _sleep(self, seconds: float, should_stop: Callable[[], bool], deadline: float | None) -> None:
        end = time.time() + seconds
        if deadline is not None and end > deadline:
            raise DeadlineReached("the battle's time limit arrives before the provider is ready again")
        while True:
            if should_stop():
                raise Stopped("stopped while waiting to retry")
            remaining = end - time.time()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.25))

    def _breaker_state(self, provider: str) -> tuple[float, int]:
        now = time.monotonic()
        cached = self._breaker.get(provider)
        if cached is None or now - cached[2] > BREAKER_CACHE_S:
            remaining, consecutive = self._safe(lambda: self.state.breaker(provider), default=(0.0, 0))
            cached = (now + remaining, consecutive, now)
            self._breaker[provider] = cached
        return max(0.0, cached[0] - now), cached[1]

    def _wait_for_circuit(self, provider: str, should_stop: Callable[[], bool], deadline: float | None) -> None:
        while True:
            remaining, _ = self._breaker_state(provider)
            if remaining <= 0:
                return
            self._sleep(min(remaining, 1.0), should_stop, deadline)
            self._breaker.pop(provider, None)  # look again after the pause

    def _wait_for_rate(self, provider: str, should_stop: Callable[[], bool], deadline: float | None) -> None:
        item = self.rate_limit(provider)
        if item is None or self._take_allowance(provider):
            return
        batch = rate_batch(item)
        while True:
            if batch > 1 and self._safe(
                lambda: self._limiter.hit(item, self.settings.namespace, provider, cost=batch), default=True
            ):
                until = time.monotonic() + RATE_ALLOWANCE_S
                self._allowance.setdefault(provider, collections.deque()).extend([until] * (batch - 1))
                return
            # Near the limit: one call at a time, so that none of the window is wasted.
            if self._safe(lambda: self._limiter.hit(item, self.settings.namespace, provider), default=True):
                return
            self._note_binding(provider, "rate", self.settings.rate_limit_for(provider) or str(item))
            stats = self._safe(
                lambda: self._limiter.get_window_stats(item, self.settings.namespace, provider), default=None
            )
            wait = max(0.01, (stats.reset_time - time.time()) if stats else 0.1)
            self._sleep(min(wait, 0.5) * random.uniform(0.5, 1.0), should_stop, deadline)

    def _note_binding(self, provider: str, kind: str, limit: str) -> None:
        """A cap holds this call back: the run page and the Health page say so while it lasts."""
        self._safe(lambda: self.state.note_binding(provider, kind, limit))

    def _take_allowance(self, provider: str) -> bool:
        """Use one of the calls this process already took from the shared limit, if any is left."""
        taken = self._allowance.get(provider)
        now = time.monotonic()
        while taken:
            try:
                until = taken.popleft()
            except IndexError:  # another thread took the last one
                return False
            if until >= now:
                return True
        return False  # none left, or only expired ones (dropped)

    def _acquire_slot(
        self, provider: str, token: str, timeout: float, should_stop: Callable[[], bool], deadline: float | None
    ) -> bool:
        """Wait for a slot under the provider's cap; False when it has no cap."""
        cap = self.concurrency_cap(provider)
        if cap is None:
            return False
        delay = 0.005
        while not self._safe(lambda: self.state.try_acquire(provider, cap, token, timeout + 30), default=False):
            self._note_binding(provider, "concurrency", f"{cap} calls in flight")
            self._sleep(random.uniform(delay / 2, delay), should_stop, deadline)
            delay = min(delay * 2, 0.2)
        return True

    def _count_429(self, provider: str) -> None:
        consecutive = self._safe(lambda: self.state.record_429(provider), default=0)
        self._breaker[provider] = (time.monotonic(), consecutive, time.monotonic())
        if consecutive >= self.settings.breaker_threshold:
            self._breaker.pop(provider, None)
            log.warning(
                "%s answered %d consecutive 429s: pausing it for %.0f s",
                provider,
                consecutive,
                self.settings.breaker_cooldown_s,
            )
            self._safe(lambda: self.state.open_circuit(provider, self.settings.breaker_cooldown_s, consecutive))

    def _safe(self, operation: Callable[[], Any], default: Any = None) -> Any:
        """Shared state is best effort: with Redis away, wait briefly and carry on."""
        for attempt in range(20):
            try:
                return operation()
            except RedisError as error:
                if attempt == 0:
                    log.warning("Shared state unavailable (%s); retrying", error)
                time.sleep(min(0.05 * 2**attempt, 1.0))
        return default

    def provider_states(self) -> list[dict[str, Any]]:
        return self._safe(self.state.provider_states, default=[]) or []


def rate_batch(item: RateLimitItem) -> int:
    """How many calls of the shared limit a process takes at once: 1% of it, 1 to RATE_BATCH_MAX."""
    return max(1, min(RATE_BATCH_MAX, item.amount // 100))


class AttemptFailed(Exception):
    """One attempt failed, and was recorded; ``failure`` says whether to retry."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


# -- litellm -------------------------------------------------------------------------------

_litellm_lock = threading.Lock()
_registered_prices: set[str] = set()


@functools.cache
def litellm_module() -> Any:
    """Import and configure litellm once (offline cost map, quiet, our sim provider)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True
    litellm.telemetry = False
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    _install_http_client(litellm)
    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p.get("provider") != "sim"],
        {"provider": "sim", "custom_handler": _sim_handler(litellm)},
    ]
    return litellm


# -- HTTP connections ----------------------------------------------------------------------
# For OpenAI-compatible providers litellm hands the call to the OpenAI SDK over
# ``litellm.client_session`` when one is set, else over a new httpx client with httpx's
# default pool: 100 connections per process, 20 of them kept alive. A worker with 200
# threads then had at most 100 calls in flight (each other call waited for a free
# connection, up to the whole model timeout) and opened a new connection for most calls.
# One shared client, sized for the threads of this process that call models, does neither.
DEFAULT_HTTP_CONNECTIONS = 100
SPARE_HTTP_CONNECTIONS = 16  # calls from outside a consumer's threads (the app's judge check, a CLI run)
_http_lock = threading.RLock()
_http_threads = 0
_http_installed = 0  # the pool size of the client installed in litellm; 0 before litellm is set up


def http_pool_size() -> int:
    """Connections this process's model calls may hold at once (see ``size_http_pool``)."""
    return max(DEFAULT_HTTP_CONNECTIONS, _http_threads + SPARE_HTTP_CONNECTIONS)


def size_http_pool(threads: int) -> None:
    """Let ``threads`` threads of this process each have a model call in flight at once."""
    global _http_threads
    with _http_lock:
        _http_threads = max(_http_threads, threads)
        litellm = sys.modules.get("litellm")
        if _http_installed and litellm is not None and http_pool_size() > _http_installed:
            _install_http_client(litellm)


def _install_http_client(litellm: Any) -> None:
    """Give litellm one shared HTTP client whose pool fits this process's threads."""
    global _http_installed
    import httpx
    from litellm.llms.custom_httpx.http_handler import get_ssl_configuration, http2_enabled

    with _http_lock:
        size = http_pool_size()
        replaced = litellm.client_session is not None
        # What litellm's own client has (its TLS settings, redirects, HTTP/2 choice), with a
        # pool that keeps every connection alive between a battle's calls.
        litellm.client_session = httpx.Client(
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            verify=get_ssl_configuration(),
            follow_redirects=True,
            http2=http2_enabled(),
        )
        if replaced:
            # The SDK clients litellm cached wrap the old session: new calls must take the new one.
            litellm.in_memory_llm_clients_cache.flush_cache()
        _http_installed = size


# -- OpenAI-compatible providers: our own SDK clients ---------------------------------------
# Three costs measured at 200 threads (bench.profile --path http) are gone with our own clients:
# - litellm keys its cached SDK client by the call's timeout too, and a battle's timeout is
#   what is left of its time limit, so it built a new OpenAI client for nearly every call;
# - one httpx pool of N connections looks at each of them on every request and every
#   release (httpcore's pool is linear): at N = 216 that was a fifth of the worker's CPU;
# - a pool is one lock: shared by 8 threads, a fifth of the battle threads' samples were
#   waiting for it (py-spy --idle), as replies arrive together.
# So each thread has its own OpenAI client (keep-alive, no SDK retries: we own them) per
# base URL and key, with a pool of its own (a small object: a client and its sockets). They go
# with their thread. litellm still shapes the request, parses the reply and prices it.
THREAD_CONNECTIONS = 2  # a thread makes one call at a time; one spare while one closes
_thread_clients = threading.local()


def _openai_client(api_base: str | None, api_key: str | None) -> Any:
    """This thread's OpenAI SDK client for ``api_base`` and ``api_key``."""
    clients: dict[tuple[str, str, str | None], Any] | None = getattr(_thread_clients, "clients", None)
    if clients is None:
        clients = _thread_clients.clients = {}
    base = (
        api_base
        or os.environ.get("OPENAI_BASE_URL")
        or os.environ.get("OPENAI_API_BASE")
        or "https://api.openai.com/v1"
    )
    key = api_key or os.environ.get("OPENAI_API_KEY") or ""
    organization = os.environ.get("OPENAI_ORGANIZATION")
    slot = (base, key, organization)
    client = clients.get(slot)
    if client is None:
        client = clients[slot] = _new_openai_client(base, key, organization)
    return client


def _new_openai_client(base: str, key: str, organization: str | None) -> Any:
    import httpx
    import openai
    from litellm.llms.custom_httpx.http_handler import get_ssl_configuration, http2_enabled

    session = httpx.Client(  # what litellm's own client has (TLS settings, redirects, HTTP/2 choice)
        limits=httpx.Limits(max_connections=THREAD_CONNECTIONS, max_keepalive_connections=THREAD_CONNECTIONS),
        verify=get_ssl_configuration(),
        follow_redirects=True,
        http2=http2_enabled(),
    )
    return openai.OpenAI(
        api_key=key or "no-key",
        base_url=base,
        organization=organization,
        http_client=session,  # type: ignore[arg-type]  # the SDK takes an httpx client besides its httpx2 one
        max_retries=0,
    )


def warm_up() -> None:
    """Import litellm now (off the request path) so the first battle does not wait."""
    litellm_module()


def _sim_handler(litellm: Any) -> Any:
    import httpx

    class SimProvider(litellm.CustomLLM):  # type: ignore[misc,name-defined]
        def completion(self, model: str, messages: list[dict[str, str]], *args: Any, **kwargs: Any) -> Any:
            ref = parse_model(f"sim/{model}")
            optional = kwargs.get("optional_params") or {}
            timeout = kwargs.get("timeout") or 600.0
            try:
                reply = sim.respond(
                    ref,
                    messages,
                    seed=optional.get("seed"),
                    timeout_s=float(timeout),
                    structured=optional.get("sim_input"),
                )
            except sim.SimFault as fault:
                raise _sim_exception(litellm, httpx, ref, fault) from None
            response = kwargs["model_response"]
            response.choices[0].message.content = reply.text
            response.model = f"sim/{model}"
            response.usage = litellm.Usage(
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                total_tokens=reply.prompt_tokens + reply.completion_tokens,
            )
            return response

    return SimProvider()


def _sim_exception(litellm: Any, httpx: Any, ref: ModelRef, fault: sim.SimFault) -> Exception:
    request = httpx.Request("POST", "http://sim.invalid/v1/chat/completions")
    error: Exception
    if fault.kind == "429":
        response = httpx.Response(429, headers={"retry-after": f"{fault.retry_after:g}"}, request=request)
        error = litellm.RateLimitError(
            message="sim: rate limited", llm_provider="sim", model=ref.raw, response=response
        )
    elif fault.kind == "500":
        response = httpx.Response(500, request=request)
        error = litellm.InternalServerError(
            message="sim: internal server error", llm_provider="sim", model=ref.raw, response=response
        )
    else:
        error = litellm.Timeout(message="sim: request timed out", model=ref.raw, llm_provider="sim")
    return error


def _register_price(litellm: Any, ref: ModelRef, per_input_token: float, per_output_token: float) -> None:
    """Give litellm the price of ``ref`` (once per process)."""
    if ref.raw in _registered_prices:
        return
    with _litellm_lock:
        if ref.raw not in _registered_prices:
            entry = {"input_cost_per_token": per_input_token, "output_cost_per_token": per_output_token}
            litellm.register_model({ref.raw: {**entry, "litellm_provider": ref.provider, "mode": "chat"}})
            _registered_prices.add(ref.raw)


def _register_sim_price(litellm: Any, ref: ModelRef) -> None:
    """The sim's fictional price, from its model string (so the cost code paths are exercised)."""
    _register_price(litellm, ref, ref.param("price_in") / 1e6, ref.param("price_out") / 1e6)


def _register_unpriced(litellm: Any, ref: ModelRef) -> None:
    """Tell litellm that a model missing from its price list costs nothing.

    Otherwise litellm searches its whole list, and its rules for related names, for that
    model on every call: a quarter of the worker's CPU at 200 threads on such a model
    (bench.profile --path http). The calls' recorded cost stays None (unknown): see
    ``_call_once``; ``_unpriced`` answered before this registration and keeps its answer.
    """
    _register_price(litellm, ref, 0.0, 0.0)


def _call_litellm(ref: ModelRef, request: ModelRequest, timeout: float, connect_timeout: float) -> Any:
    litellm = litellm_module()
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "timeout": timeout if ref.is_sim else _http_timeout(timeout, connect_timeout),
        "max_retries": 0,
    }
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.seed is not None:
        kwargs["seed"] = request.seed
    if request.sim_input is not None and ref.provider == "sim":
        kwargs["sim_input"] = request.sim_input  # litellm hands it to the sim handler's optional_params
    if request.tools:
        kwargs["tools"] = request.tools
    if request.api_base:
        kwargs["api_base"] = request.api_base
    if request.api_key_env:
        kwargs["api_key"] = os.environ.get(request.api_key_env, "")
    elif request.api_base and not any(os.environ.get(n) for n in PROVIDER_KEYS.get(ref.provider, ())):
        kwargs["api_key"] = "no-key"  # local OpenAI-compatible servers want some key
    if ref.provider == "openai":
        kwargs["client"] = _openai_client(request.api_base, kwargs.get("api_key"))
    with _unlogged():
        return litellm.completion(**kwargs)


def _unlogged() -> Any:
    """Keep litellm from handing each call to its logging thread pool.

    After every call litellm submits a "success handler" to a pool of logging threads: it
    builds a logging payload for callbacks we do not have (our records are written by the
    gateway). At 200 threads the submissions queue on the pool's lock: py-spy caught about
    90 of the 200 battle threads waiting there after their reply had arrived, and the handler
    itself costs CPU. litellm skips it for a call it makes on its own behalf; ours are
    marked the same way. The reply, its usage and its cost are unchanged (the cost is
    computed before the submission; tests/core/test_openai_http.py checks it).
    """
    try:
        from litellm._internal_context import internal_sub_call
    except ImportError:  # a litellm without it: log as usual
        return contextlib.nullcontext()
    return internal_sub_call()


@functools.cache
def _unpriced(model: str) -> bool:
    """Whether neither our price list nor litellm knows what ``model`` costs (asked once)."""
    if pricing.price_per_token(model) is not None:  # the sim's too: its model string has it
        return False
    try:
        info = litellm_module().get_model_info(model)
    except Exception:  # noqa: BLE001 - litellm raises for a model it does not know
        return True
    return info.get("input_cost_per_token") is None


def _http_timeout(timeout: float, connect_timeout: float) -> Any:
    """The whole ``timeout`` to write the request and read the reply (a slow model gets all of
    it), but only ``connect_timeout`` to get a connection: a provider that does not accept one,
    or a full pool, fails the attempt soon and it is retried instead of hanging for minutes.

    (litellm gives the OpenAI SDK all four limits; providers that take one number get ``timeout``.)
    """
    import httpx

    short = min(connect_timeout, timeout)
    return httpx.Timeout(timeout, connect=short, pool=short)


def _unpack(response: Any) -> tuple[str, int, int, float | None]:
    text = response.choices[0].message.content or ""
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    hidden = getattr(response, "_hidden_params", {}) or {}
    cost = hidden.get("response_cost")
    return text, prompt_tokens, completion_tokens, float(cost) if cost is not None else None


def _tool_calls(response: Any) -> tuple[WireToolCall, ...]:
    calls = getattr(response.choices[0].message, "tool_calls", None) or []
    found = []
    for number, call in enumerate(calls):
        function = getattr(call, "function", None)
        name = getattr(function, "name", None)
        if not name:
            continue
        arguments = getattr(function, "arguments", None) or "{}"
        found.append(WireToolCall(str(getattr(call, "id", None) or f"call_{number}"), str(name), str(arguments)))
    return tuple(found)


# -- errors --------------------------------------------------------------------------------


def _secret_values(api_key_env: str | None) -> list[str]:
    names = {name for names in PROVIDER_KEYS.values() for name in names}
    if api_key_env:
        names.add(api_key_env)
    return [value for name in names if len(value := os.environ.get(name, "")) >= 8]


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``retry-after-ms``."""
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(error: BaseException, secrets: list[str] | None = None) -> Failure:
    """Map a provider error (litellm's exception classes) to what the gateway does next."""
    name = type(error).__name__
    status = getattr(error, "status_code", None)
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) if response is not None else None
    message = scrub(str(error), secrets or [])[:500]
    if name == "RateLimitError" or status == 429:
        return Failure("rate_limited", True, 429, parse_retry_after(headers), message)
    if name in {"Timeout", "APITimeoutError"} or "timed out" in message.lower():
        # Our own timeout fired: no HTTP status came back (litellm labels it 408 regardless).
        return Failure("timeout", True, None, None, message)
    if name in {"AuthenticationError", "PermissionDeniedError"} or status in (401, 403):
        return Failure("auth", False, status, None, message)
    if name in {"BadRequestError", "NotFoundError", "ContextWindowExceededError", "UnprocessableEntityError"}:
        return Failure("bad_request", False, status, None, message)
    if (isinstance(status, int) and status >= 500) or name in {"InternalServerError", "ServiceUnavailableError"}:
        return Failure("server", True, status if isinstance(status, int) else 500, parse_retry_after(headers), message)
    if name in {"APIConnectionError", "APIError"}:
        return Failure("connection", True, status if isinstance(status, int) else None, None, message)
    return Failure("unknown", False, status if isinstance(status, int) else None, None, f"{name}: {message}")
