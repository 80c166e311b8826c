"""How a provider's rate-limit state reads, and which providers a scale test uses.

The limiter's state (``SharedState.provider_states``: seconds left of an open circuit or a
backoff, 429s in a row, a cap of ours holding calls back) is shown on the Health page and on
a running scale test; both read it through these functions, so a state is said one way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sparring.modelref import ModelError, parse_model
from sparring.scale import DEFAULT_WRITER_MODEL

State = Mapping[str, Any]  # one row of SharedState.provider_states()


def run_providers(config: Mapping[str, Any]) -> set[str]:
    """The providers a scale test's configuration calls (agents, adversary, judge, writer)."""
    models = {config.get("input", {}).get("summary_model") or DEFAULT_WRITER_MODEL}
    for cell in config.get("cells", []):
        battle = cell.get("battle", {})
        models.update(battle.get(field) for field in ("agent_model", "adversary_model", "judge_model"))
    providers = set()
    for model in models:
        try:
            providers.add(parse_model(str(model)).provider)
        except ModelError:
            continue
    return providers


# The settings that raise a cap (``Settings.provider_concurrency`` and so on, read from the
# environment with the prefix SPARRING_), and the key of a provider's override entry.
CAP_SETTINGS = {"concurrency": "SPARRING_PROVIDER_CONCURRENCY", "rate": "SPARRING_PROVIDER_RATE_LIMIT"}
OVERRIDE_KEYS = {"concurrency": "concurrency", "rate": "rate_limit"}
OVERRIDES_SETTING = "SPARRING_PROVIDER_OVERRIDES"


def state_label(state: State) -> str:
    """A provider's state in a few words, for a table: 'paused 12 s (…)', 'backing off 3 s',
    'held back by its cap of 64 calls in flight', 'ok'."""
    if state.get("circuit_open_s", 0) > 0:
        return f"paused {state['circuit_open_s']:.0f} s (circuit open after repeated 429s)"
    if state.get("backoff_s", 0) > 0:
        return f"backing off {state['backoff_s']:.0f} s"
    binding = state.get("binding") or {}
    if binding:
        return "held back by its cap of " + " and ".join(binding.values())
    return "ok"


def binding_sentence(provider: str, kind: str, limit: str) -> str:
    """A sentence (markdown) saying a cap of ours holds ``provider``'s calls back, and what raises it."""
    override = f"`{OVERRIDE_KEYS[kind]}` in its `{OVERRIDES_SETTING}` entry"
    # The in-process sim gets a rate limit only from its override entry.
    where = override if provider == "sim" and kind == "rate" else f"`{CAP_SETTINGS[kind]}`, or {override}"
    return (
        f"**{provider}**: calls are held back by the cap of {limit} ({where}); "
        "raise it if your provider quota allows more."
    )


def binding_sentences(states: Collection[State], used: Collection[str] | None = None) -> list[str]:
    """``binding_sentence`` for each cap that binds now, of the providers in ``used`` (default all)."""
    return [
        binding_sentence(state["provider"], kind, limit)
        for state in states
        if used is None or state["provider"] in used
        for kind, limit in (state.get("binding") or {}).items()
    ]


def slowed_sentence(state: State) -> str | None:
    """A sentence (markdown) when the provider is paused or backing off right now, else None."""
    name = state["provider"]
    if state.get("circuit_open_s", 0) > 0:
        return (
            f"**{name}** is paused for {state['circuit_open_s']:.0f} s more: the circuit opened "
            f"after {state.get('consecutive_429', 0)} rate-limit answers (429) in a row; battles wait, then resume."
        )
    if state.get("backoff_s", 0) > 0:
        return f"**{name}** is rate limiting (429): calls back off for {state['backoff_s']:.0f} s."
    return None


def slowed_sentences(states: Collection[State], used: Collection[str]) -> list[str]:
    """``slowed_sentence`` for each provider in ``used`` that is slowed now."""
    found = (slowed_sentence(state) for state in states if state["provider"] in used)
    return [sentence for sentence in found if sentence]


def limited_or_tripped(state: State) -> bool:
    """A row worth showing: the provider has a rate limit, its 429 breaker has acted, or a cap binds."""
    tripped = (
        state.get("consecutive_429") or state.get("circuit_opened") or state.get("backoff_s") or state.get("binding")
    )
    return state.get("rate_limit") is not None or bool(tripped)


def rate_limit_caption(limits: Mapping[str, Any]) -> str:
    """What the limiter applies (``health_report()["rate_limits"]``), so no row is not read as no limit."""
    sim = limits.get("sim")
    sim_text = (
        f"Sim models (sim/…) are limited to {sim} (set in provider overrides)."
        if sim
        else "Sim models (sim/…) run inside Sparring and are not rate-limited."
    )
    default = limits.get("default")
    return sim_text + (f" Every other provider: at most {default}, shared by all workers." if default else "")
