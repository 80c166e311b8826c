"""Prices per token and cost estimates before launch, without importing litellm.

litellm ships its price list as a JSON file inside the package; reading that file costs
milliseconds, importing litellm costs seconds, and the pages must stay fast. Nothing is
downloaded: the list is the one installed with the pinned litellm.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparring.modelref import NO_JUDGE, ModelRef, parse_model
from sparring.strategies import STRATEGIES

# Rough sizes for an estimate; real prompts vary. Stated in the UI next to the number.
TOKENS_PER_MESSAGE = 90
JUDGE_OVERHEAD_TOKENS = 220
VERDICT_TOKENS = 45


@functools.cache
def _price_list() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return {}
    path = Path(spec.origin).parent / "model_prices_and_context_window_backup.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def price_per_token(model: str) -> tuple[float, float] | None:
    """($ per input token, $ per output token), or None when the price is unknown."""
    ref = parse_model(model)
    if ref.is_sim:
        return ref.param("price_in") / 1e6, ref.param("price_out") / 1e6
    prices = _price_list()
    for key in (ref.raw, ref.name, f"{ref.provider}/{ref.name}"):
        entry = prices.get(key)
        if entry and "input_cost_per_token" in entry:
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token", 0.0))
    return None


@dataclass(frozen=True)
class CostEstimate:
    usd: float | None  # None when some model's price is unknown
    unknown_models: tuple[str, ...]
    calls: int
    tokens: int

    def describe(self) -> str:
        if self.usd is None:
            return "Cost unknown: no price for " + ", ".join(self.unknown_models)
        return f"At most ≈ ${self.usd:,.2f} (if every battle runs to max messages; {self.calls:,} model calls)"


def estimate_battle_tokens(
    system_prompt_chars: int,
    max_messages: int,
    system_tokens: int | None = None,
    strategy: str = "direct",
    params: Mapping[str, int] | None = None,
) -> dict[str, tuple[int, int, int]]:
    """Per purpose: (calls, prompt tokens, completion tokens) of one battle run to its strategy's worst case.

    A conversational strategy runs to the cap (crescendo's roll-backs counted as extra turns
    on a full-length conversation); PAIR and TAP send single-turn prompts, each answer judged.
    A structured adversary answer may be asked for twice, so those strategies count two
    adversary calls a move.
    """
    system = system_tokens if system_tokens is not None else max(1, system_prompt_chars // 4)
    chosen = STRATEGIES[strategy] if strategy in STRATEGIES else STRATEGIES["direct"]
    worst = chosen.worst_case(chosen.resolve(params or {}), max_messages)
    asks = 1 if chosen.kind == "template" else 2
    if chosen.kind == "search":
        history = 2 * sum(p.default for p in chosen.params if p.name in ("pair_depth", "tap_depth"))
        adversary_prompt = worst.adversary * asks * (250 + history * TOKENS_PER_MESSAGE)
        return {
            "agent": (worst.agent, worst.agent * (system + TOKENS_PER_MESSAGE), worst.agent * TOKENS_PER_MESSAGE),
            "adversary": (worst.adversary * asks, adversary_prompt, worst.adversary * asks * TOKENS_PER_MESSAGE),
            "judge": (
                worst.judge,
                worst.judge * (JUDGE_OVERHEAD_TOKENS + 2 * TOKENS_PER_MESSAGE),
                worst.judge * VERDICT_TOKENS,
            ),
        }
    max_messages = 2 * worst.agent + max_messages % 2  # crescendo: each roll-back adds an exchange
    usage = _conversation_tokens(system, max_messages)
    calls, prompt, completion = usage["adversary"]
    usage["adversary"] = (calls * asks, prompt * asks, completion * asks)
    return usage


def _conversation_tokens(system: int, max_messages: int) -> dict[str, tuple[int, int, int]]:
    agent_turns = max_messages // 2
    adversary_turns = math.ceil(max_messages / 2)
    # The prompt of message m carries the m-1 messages before it.
    agent_prompt = sum(system + (2 * k - 1) * TOKENS_PER_MESSAGE for k in range(1, agent_turns + 1))
    adversary_prompt = sum(250 + (2 * k - 2) * TOKENS_PER_MESSAGE for k in range(1, adversary_turns + 1))
    judge_prompt = sum(JUDGE_OVERHEAD_TOKENS + 2 * k * TOKENS_PER_MESSAGE for k in range(1, agent_turns + 1))
    return {
        "agent": (agent_turns, agent_prompt, agent_turns * TOKENS_PER_MESSAGE),
        "adversary": (adversary_turns, adversary_prompt, adversary_turns * TOKENS_PER_MESSAGE),
        "judge": (agent_turns, judge_prompt, agent_turns * VERDICT_TOKENS),
    }


def estimate_cost(battles: list[dict[str, Any]]) -> CostEstimate:
    """Upper-bound cost of running each battle (dicts of BattleInput fields) to its cap."""
    total = 0.0
    calls = 0
    tokens = 0
    unknown: set[str] = set()
    for battle in battles:
        usage = estimate_battle_tokens(
            len(battle.get("system_prompt") or ""),
            int(battle.get("max_messages", 25)),
            strategy=str(battle.get("strategy") or "direct"),
            params=battle.get("adversary_params") or {},
        )
        models = {
            # An HTTP service or a Python callable is not a model we pay for: its calls cost us nothing.
            "agent": battle["agent_model"] if battle.get("agent_kind", "model") == "model" else None,
            "adversary": battle["adversary_model"],
            "judge": battle["judge_model"],
        }
        for purpose, (n_calls, prompt, completion) in usage.items():
            if purpose == "judge" and models["judge"] == NO_JUDGE:
                continue  # the success checks decide: no judge call at all
            calls += n_calls
            tokens += prompt + completion
            model = models[purpose]
            if model is None:
                continue
            price = price_per_token(model)
            if price is None:
                unknown.add(models[purpose])
                continue
            total += prompt * price[0] + completion * price[1]
    return CostEstimate(None if unknown else total, tuple(sorted(unknown)), calls, tokens)


def is_paid(model: str) -> bool:
    ref: ModelRef = parse_model(model)
    return not ref.is_sim and ref.provider not in ("ollama", "ollama_chat", "hosted_vllm", "lm_studio")
