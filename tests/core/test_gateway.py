"""The LLM gateway: retries, Retry-After, timeouts, concurrency cap, circuit breaker."""

from __future__ import annotations

import threading
import time

import pytest
from limits import parse

from sparring import records as r
from sparring.gateway import Gateway, ModelCallError, ModelRequest, classify, parse_retry_after, rate_batch
from sparring.settings import Settings
from sparring.shared_state import LocalState, RedisState, redis_client
from tests.helpers import max_overlap

MESSAGES = [{"role": "user", "content": "hello"}]


def gateway(**overrides: object) -> Gateway:
    settings = Settings(retry_base_s=0.01, **overrides)  # type: ignore[arg-type]
    return Gateway(settings, LocalState())


def request(model: str, **extra: object) -> ModelRequest:
    return ModelRequest(model=model, messages=MESSAGES, purpose="agent", seed=1, **extra)  # type: ignore[arg-type]


def test_success_records_tokens_latency_and_cost() -> None:
    calls: list[r.LLMCall] = []
    reply = gateway().complete(request("sim/agent?concede=0"), on_call=calls.append)
    assert reply.text and reply.attempts == 1
    assert len(calls) == 1
    call = calls[0]
    assert call.error is None and call.prompt_tokens == 1 and call.completion_tokens > 0
    assert call.cost_usd is not None and call.cost_usd > 0
    assert call.latency_ms >= 0 and call.provider == "sim"


def test_retry_after_is_honoured() -> None:
    calls: list[r.LLMCall] = []
    started = time.monotonic()
    with pytest.raises(ModelCallError) as failure:
        gateway(model_max_attempts=3).complete(request("sim/agent?fail_429=1&retry_after=0.3"), on_call=calls.append)
    elapsed = time.monotonic() - started
    assert failure.value.kind == "rate_limited" and failure.value.transient
    assert [c.http_status for c in calls] == [429, 429, 429]
    assert elapsed >= 0.6  # two waits of Retry-After = 0.3 s


def test_server_errors_back_off_exponentially_then_fail() -> None:
    calls: list[r.LLMCall] = []
    with pytest.raises(ModelCallError, match="after 4 attempts"):
        gateway(model_max_attempts=4).complete(request("sim/agent?fail_500=1"), on_call=calls.append)
    assert [c.attempt for c in calls] == [1, 2, 3, 4]
    assert {c.error_type for c in calls} == {"server"}


def test_timeouts_are_retried_and_reported() -> None:
    calls: list[r.LLMCall] = []
    started = time.monotonic()
    with pytest.raises(ModelCallError) as failure:
        gateway(model_max_attempts=2, model_timeout_s=0.2).complete(
            request("sim/agent?timeout=1"), on_call=calls.append
        )
    assert failure.value.kind == "timeout"
    assert [c.error_type for c in calls] == ["timeout", "timeout"]
    assert all(c.latency_ms >= 150 for c in calls)  # each attempt waited for its timeout
    assert time.monotonic() - started < 5


def test_transient_faults_are_absorbed() -> None:
    calls: list[r.LLMCall] = []
    g = gateway(model_max_attempts=20)
    # Faults are not seeded. Odds that this fails by chance: no 429 in 30 calls is
    # (0.5 / 0.8) ** 30 < 1e-6; a call failing 20 times running is 30 * 0.5 ** 20 < 1e-4.
    for _ in range(30):
        g.complete(request("sim/agent?fail_429=0.3&fail_500=0.2&retry_after=0.01"), on_call=calls.append)
    assert sum(1 for c in calls if c.error is None) == 30
    assert any(c.error_type == "rate_limited" for c in calls)


def test_permanent_errors_are_not_retried() -> None:
    class AuthenticationError(Exception):
        status_code = 401

    failure = classify(AuthenticationError("bad key sk-abcdefgh12345"), secrets=["sk-abcdefgh12345"])
    assert failure.kind == "auth" and not failure.transient
    assert "sk-abcdefgh12345" not in failure.message and "[redacted]" in failure.message


def test_retry_after_header_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({}) is None
    in_three = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3))
    assert 1.0 < parse_retry_after({"retry-after": in_three}) <= 3.0


def _hammer(g: Gateway, model: str, threads: int, calls_each: int) -> list[r.LLMCall]:
    calls: list[r.LLMCall] = []
    lock = threading.Lock()

    def record(call: r.LLMCall) -> None:
        with lock:
            calls.append(call)

    def work() -> None:
        for _ in range(calls_each):
            g.complete(request(model), on_call=record)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return calls


def _intervals(calls: list[r.LLMCall]) -> list[tuple[float, float]]:
    return [(c.started_at.timestamp(), c.started_at.timestamp() + c.latency_ms / 1000) for c in calls]


def test_concurrency_cap_in_process() -> None:
    calls = _hammer(gateway(provider_concurrency=3), "sim/agent?latency_ms=40", threads=8, calls_each=4)
    assert len(calls) == 32
    assert max_overlap(_intervals(calls)) <= 3


def test_concurrency_cap_is_shared_through_redis(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, provider_concurrency=2, retry_base_s=0.01)
    # two gateways = two workers sharing one Redis
    first = Gateway(settings, RedisState(redis_client(redis_url), settings.namespace))
    second = Gateway(settings, RedisState(redis_client(redis_url), settings.namespace))
    results: list[list[r.LLMCall]] = []
    threads = [
        threading.Thread(target=lambda g=g: results.append(_hammer(g, "sim/agent?latency_ms=40", 4, 3)))
        for g in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = [c for batch in results for c in batch]
    assert len(calls) == 24
    assert max_overlap(_intervals(calls)) <= 2


def test_circuit_breaker_pauses_the_provider() -> None:
    g = gateway(breaker_threshold=3, breaker_cooldown_s=0.6, model_max_attempts=4)
    calls: list[r.LLMCall] = []
    started = time.monotonic()
    with pytest.raises(ModelCallError):
        g.complete(request("sim/agent?fail_429=1&retry_after=0"), on_call=calls.append)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5  # the fourth attempt waited for the circuit to close
    state = {s["provider"]: s for s in g.provider_states()}["sim"]
    assert state["circuit_opened"] >= 1


def test_circuit_state_is_visible_to_other_workers(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, breaker_threshold=2, breaker_cooldown_s=5, model_max_attempts=2)
    g = Gateway(settings)
    with pytest.raises(ModelCallError):
        g.complete(request("sim/agent?fail_429=1&retry_after=0"), on_call=lambda call: None)
    other = RedisState(redis_client(redis_url), settings.namespace)
    sim_state = {s["provider"]: s for s in other.provider_states()}["sim"]
    assert sim_state["circuit_open_s"] > 3 and sim_state["circuit_opened"] == 1


def test_the_rate_limit_is_shared_by_two_workers_and_holds(redis_url: str) -> None:
    """Two gateways (two workers) share one limit in Redis; the pages are told it binds."""
    settings = Settings(
        redis_url=redis_url,
        namespace="rate" + r.new_id(),
        provider_overrides={"sim": {"rate_limit": "20/second"}},
        retry_base_s=0.01,
    )
    assert rate_batch(parse("20/second")) == 1  # a small limit is taken one call at a time: exact
    first = Gateway(settings, RedisState(redis_client(redis_url), settings.namespace))
    second = Gateway(settings, RedisState(redis_client(redis_url), settings.namespace))
    results: list[list[r.LLMCall]] = []
    threads = [
        threading.Thread(target=lambda g=g: results.append(_hammer(g, "sim/agent", 4, 8))) for g in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts = sorted(c.started_at.timestamp() for batch in results for c in batch)
    assert len(starts) == 64
    assert starts[-1] - starts[0] >= 2.0  # 64 calls at 20 a second: 44 of them waited for the window
    # A call's recorded start comes a little after it took its place in the window (the GIL,
    # eight threads), so a second of recorded starts may hold a few more than 20.
    busiest = max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)
    assert 15 <= busiest <= 26
    [state] = [s for s in first.provider_states() if s["provider"] == "sim"]
    assert state["binding"] == {"rate": "20/second"}


def test_a_process_takes_one_percent_of_a_large_limit_at_once(redis_url: str) -> None:
    """Five calls under 2000/minute take one batch of 16 from Redis (one round trip), not five."""
    assert rate_batch(parse("6000/minute")) == 16 and rate_batch(parse("500/minute")) == 5
    settings = Settings(
        redis_url=redis_url, namespace="rate" + r.new_id(), provider_overrides={"sim": {"rate_limit": "2000/minute"}}
    )
    g = Gateway(settings, RedisState(redis_client(redis_url), settings.namespace))
    for _ in range(5):
        g.complete(request("sim/agent"), on_call=lambda call: None)
    item = parse("2000/minute")
    stats = g._limiter.get_window_stats(item, settings.namespace, "sim")
    assert stats.remaining == 2000 - 16


def test_a_binding_concurrency_cap_is_noted_for_the_pages() -> None:
    g = gateway(provider_concurrency=2)
    _hammer(g, "sim/agent?latency_ms=60", threads=6, calls_each=2)
    [state] = [s for s in g.provider_states() if s["provider"] == "sim"]
    assert state["binding"] == {"concurrency": "2 calls in flight"}
