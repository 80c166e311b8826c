"""How a provider's rate-limit state reads (``sparring.providers``), read from the real limiter state."""

from __future__ import annotations

import os

from sparring import providers
from sparring.shared_state import read_provider_states, shared_state


def by_name(states: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(state["provider"]): state for state in states}


def test_a_run_uses_the_providers_of_its_cells_and_its_writer() -> None:
    config = {
        "input": {"summary_model": "anthropic/claude-3-haiku"},
        "cells": [
            {"battle": {"agent_model": "openai/gpt-4o-mini", "adversary_model": "sim/adversary", "judge_model": "x"}},
            {"battle": {"agent_model": "groq/llama3", "adversary_model": "sim/adversary", "judge_model": "sim/judge"}},
        ],
    }
    assert providers.run_providers(config) == {"anthropic", "openai", "sim", "groq"}  # "x" is no model: skipped
    assert providers.run_providers({}) == {"sim"}  # the default writer


def test_paused_and_backing_off_providers_are_said_in_words_and_others_not(redis_url: str) -> None:
    namespace = os.environ["SPARRING_NAMESPACE"]
    state = shared_state(redis_url, namespace)
    for _ in range(3):
        state.record_429("openai")
    state.open_circuit("openai", 30, 3)
    state.note_backoff("groq", 8)
    state.record_429("mistral")
    state.record_success("mistral")
    states = by_name(read_provider_states(redis_url, namespace))
    paused = providers.slowed_sentence(states["openai"])
    assert paused is not None and paused.startswith("**openai** is paused for ")
    assert "after 2 rate-limit answers (429) in a row" in paused  # half-open: one 429 short of re-opening
    assert providers.slowed_sentence(states["groq"]) == "**groq** is rate limiting (429): calls back off for 8 s."
    assert providers.slowed_sentence(states["mistral"]) is None
    assert providers.state_label(states["openai"]).startswith("paused ")
    assert providers.state_label(states["groq"]) == "backing off 8 s"
    assert providers.state_label(states["mistral"]) == "ok"
    sentences = providers.slowed_sentences(list(states.values()), {"groq", "mistral"})
    assert sentences == ["**groq** is rate limiting (429): calls back off for 8 s."]


def test_redis_that_does_not_answer_hides_the_notice_instead_of_failing() -> None:
    assert read_provider_states("redis://127.0.0.1:1/0", "nowhere") == []


def test_the_health_table_lists_limited_or_tripped_providers_and_says_what_the_limiter_applies() -> None:
    assert providers.limited_or_tripped({"provider": "a", "rate_limit": "10/s"})
    assert providers.limited_or_tripped({"provider": "b", "rate_limit": None, "circuit_opened": 1})
    assert not providers.limited_or_tripped({"provider": "c", "rate_limit": None, "consecutive_429": 0})
    assert providers.rate_limit_caption({}) == "Sim models (sim/…) run inside Sparring and are not rate-limited."
    assert providers.rate_limit_caption({"sim": "5/s", "default": "60/min"}) == (
        "Sim models (sim/…) are limited to 5/s (set in provider overrides). "
        "Every other provider: at most 60/min, shared by all workers."
    )


def test_a_binding_cap_is_said_with_the_setting_that_raises_it(redis_url: str) -> None:
    from sparring.settings import Settings

    namespace = os.environ["SPARRING_NAMESPACE"]
    state = shared_state(redis_url, namespace)
    state.note_binding("openai", "concurrency", "64 calls in flight")
    state.note_binding("sim", "rate", "50/second")
    state.note_backoff("groq", 8)
    states = by_name(read_provider_states(redis_url, namespace))
    assert providers.binding_sentences([states["openai"]]) == [
        "**openai**: calls are held back by the cap of 64 calls in flight (`SPARRING_PROVIDER_CONCURRENCY`, "
        "or `concurrency` in its `SPARRING_PROVIDER_OVERRIDES` entry); raise it if your provider quota allows more."
    ]
    assert providers.binding_sentence("openai", "rate", "6000/minute") == (
        "**openai**: calls are held back by the cap of 6000/minute (`SPARRING_PROVIDER_RATE_LIMIT`, "
        "or `rate_limit` in its `SPARRING_PROVIDER_OVERRIDES` entry); raise it if your provider quota allows more."
    )
    # the sim's rate limit comes only from its override entry
    (sim,) = providers.binding_sentences(list(states.values()), {"sim"})
    assert "cap of 50/second (`rate_limit` in its `SPARRING_PROVIDER_OVERRIDES` entry)" in sim
    assert providers.binding_sentences(list(states.values()), {"groq"}) == []  # backing off, no cap binds
    assert providers.state_label(states["openai"]) == "held back by its cap of 64 calls in flight"
    assert providers.limited_or_tripped({"provider": "x", "rate_limit": None, "binding": {"rate": "5/s"}})
    # the settings named are the ones read (prefix SPARRING_, field name in capitals)
    for name in (*providers.CAP_SETTINGS.values(), providers.OVERRIDES_SETTING):
        assert name.removeprefix("SPARRING_").lower() in Settings.model_fields
