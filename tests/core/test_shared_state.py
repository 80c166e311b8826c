"""A cap that binds (``note_binding``) shows in ``provider_states`` while it is fresh, in memory and in Redis."""

from __future__ import annotations

import os
import time

import pytest

from sparring.shared_state import LocalState, RedisState, SharedState, redis_client


def states(state: SharedState) -> dict[str, dict[str, object]]:
    return {str(row["provider"]): row for row in state.provider_states()}


def check_binding_notes(state: SharedState) -> None:
    state.note_backoff("groq", 8)
    assert states(state)["groq"]["binding"] == {}  # a provider with no note: nothing binds
    state.note_binding("openai", "concurrency", "64 calls in flight", ttl_s=0.4)
    state.note_binding("openai", "rate", "6000/minute", ttl_s=30)
    row = states(state)["openai"]  # a provider with only binding notes is listed
    assert row["binding"] == {"concurrency": "64 calls in flight", "rate": "6000/minute"}
    assert row["in_flight"] == 0 and row["backoff_s"] == 0.0 and row["circuit_opened"] == 0
    time.sleep(0.5)
    assert states(state)["openai"]["binding"] == {"rate": "6000/minute"}  # the concurrency note expired
    state.note_binding("openai", "concurrency", "8 calls in flight", ttl_s=0.4)  # noted again after expiry
    assert states(state)["openai"]["binding"]["concurrency"] == "8 calls in flight"
    with pytest.raises(ValueError, match="'concurrency' or 'rate'"):
        state.note_binding("openai", "tokens", "1000/minute")
    with pytest.raises(ValueError, match="Say which cap binds"):
        state.note_binding("openai", "rate", " ")


def test_binding_notes_in_memory_expire() -> None:
    check_binding_notes(LocalState())


def test_binding_notes_in_redis_expire_and_are_seen_by_other_workers(redis_url: str) -> None:
    namespace = os.environ["SPARRING_NAMESPACE"]
    check_binding_notes(RedisState(redis_client(redis_url), namespace))
    other = RedisState(redis_client(redis_url), namespace)  # another worker
    assert states(other)["openai"]["binding"]["rate"] == "6000/minute"
    key = f"{namespace}:binding:rate:openai"
    assert 0 < redis_client(redis_url).pttl(key) <= 30_000  # expires on its own


def test_a_repeated_binding_note_costs_one_redis_command_at_most_every_half_life(redis_url: str) -> None:
    namespace = os.environ["SPARRING_NAMESPACE"]
    client = redis_client(redis_url)
    state = RedisState(client, namespace)
    key = f"{namespace}:binding:concurrency:openai"
    state.note_binding("openai", "concurrency", "64 calls in flight", ttl_s=0.6)
    first = client.pttl(key)
    time.sleep(0.1)
    state.note_binding("openai", "concurrency", "64 calls in flight", ttl_s=0.6)  # within half its life: skipped
    assert client.pttl(key) < first
    state.note_binding("openai", "concurrency", "32 calls in flight", ttl_s=0.6)  # another cap: written
    assert client.get(key) == b"32 calls in flight" and client.pttl(key) > 500
    time.sleep(0.35)
    state.note_binding("openai", "concurrency", "32 calls in flight", ttl_s=0.6)  # past half its life: refreshed
    assert client.pttl(key) > 500
