"""What a scale test is expected to cost, before it runs, next to what it may cost at most.

The upper bound (``sparring.plan.cost_estimate``) assumes every battle runs to max messages.
The expected cost asks instead, per cell:

- **how many agent turns a battle lasts**: the Kaplan–Meier curve S(k) of earlier battles
  with the same agent (model and system prompt) and goal; a battle reaches turn k exactly
  when the agent still held after k - 1 turns, so turn k is paid S(k - 1) of the time. Without
  earlier battles a stated prior stands in: a sim agent's own concession probability p
  (S(k) = (1 - p)^k), else "every battle runs to the cap";
- **what one turn costs**: the mean tokens of earlier successful calls of the same model and
  purpose at the same agent turn, else the rough sizes of ``sparring.pricing``; times the
  prices of the price table;
- **how many battles**: ``--runs``, or with a stopping rule the expected number at which the
  rule holds for the cell's expected rate 1 - S(K) (a seeded simulation of the threshold rule;
  the halfwidth reached at the expected rate). Battles in flight when a cell stops are extra.

The forecast is stored with the run at launch, so the run's page can set it against what the
battles actually cost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sparring import pricing, stats
from sparring.modelref import NO_JUDGE, ModelError, parse_model
from sparring.scale import ScaleInput
from sparring.stopping import StoppingRule
from sparring.store import Store, reads

log = logging.getLogger(__name__)

PURPOSES = ("adversary", "agent", "judge")
SIMULATED_PATHS = 400  # per cell, for the threshold rule's expected stopping time


@dataclass(frozen=True, slots=True)
class CellForecast:
    label: str
    expected_turns: float  # agent turns per battle
    expected_rate: float  # the adversary's success rate the turns imply: 1 - S(K)
    turns_basis: str
    expected_battles: float
    cost_per_battle_usd: float | None  # None when a model has no price
    tokens_basis: str


@dataclass(frozen=True, slots=True)
class Forecast:
    expected_usd: float | None
    upper_usd: float | None
    expected_battles: float
    planned_battles: int
    cells: tuple[CellForecast, ...]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "cells": [asdict(cell) for cell in self.cells]}


def forecast(store: Store | None, scale: ScaleInput) -> Forecast:
    """The expected and the largest cost of ``scale``, learning from ``store`` (None: priors only)."""
    battles = list(scale.battle_inputs())
    agents = [(b["agent_model"], b["system_prompt"], b["goal"]) for b in battles]
    models = sorted({b[f"{purpose}_model"] for b in battles for purpose in PURPOSES})
    history, tokens = reads.forecast_inputs(store, agents, models) if store is not None else ({}, {})
    rule = StoppingRule.of(scale.model_dump())
    labels = [c for c, *_ in _labels(scale)]
    cells = tuple(
        _cell(label, battle, history.get(agent, []), tokens, scale.runs, rule)
        for label, battle, agent in zip(labels, battles, agents, strict=True)
    )
    costs = [c.cost_per_battle_usd for c in cells]
    expected = None if None in costs else sum(c.expected_battles * (c.cost_per_battle_usd or 0.0) for c in cells)
    upper = pricing.estimate_cost(battles).usd
    return Forecast(
        expected_usd=expected,
        upper_usd=None if upper is None else upper * scale.runs,
        expected_battles=sum(c.expected_battles for c in cells),
        planned_battles=scale.total_battles,
        cells=cells,
    )


def safe_forecast(store: Store | None, scale: ScaleInput) -> dict[str, Any] | None:
    """``forecast`` as JSON, or None when it cannot be made (a launch must never fail on it)."""
    try:
        return forecast(store, scale).as_json()
    except Exception:  # a forecast is advice: log it, launch anyway
        log.warning("No cost forecast for this scale test", exc_info=True)
        return None


def _labels(scale: ScaleInput) -> list[tuple[str]]:
    from sparring.scale import plan_run

    return [(cell.label,) for cell in plan_run(scale, run_id="forecast").cells]


def _cell(
    label: str,
    battle: Mapping[str, Any],
    history: list[tuple[int, bool]],
    tokens: Mapping[tuple[str, str, int], tuple[float, float, int]],
    runs: int,
    rule: StoppingRule | None,
) -> CellForecast:
    cap = int(battle["max_messages"]) // 2
    model_agent = battle.get("agent_kind", "model") == "model"  # a service's or a callable's odds are unknown
    survival, turns_basis = _survival(battle["agent_model"] if model_agent else "", history, cap)
    expected_turns = sum(survival[k - 1] for k in range(1, cap + 1))
    rate = 1.0 - survival[cap]
    per_turn, tokens_basis = _turn_costs(battle, tokens, cap)
    cost = None if per_turn is None else sum(survival[k - 1] * per_turn[k - 1] for k in range(1, cap + 1))
    return CellForecast(
        label, expected_turns, rate, turns_basis, expected_battles(rule, rate, runs), cost, tokens_basis
    )


def _survival(agent_model: str, history: list[tuple[int, bool]], cap: int) -> tuple[list[float], str]:
    """S(0..cap): the share of battles still holding after k agent turns, and where it comes from."""
    if history:
        curve = stats.kaplan_meier([t for t, _ in history], [a for _, a in history])
        known = list(curve.survival)
        survival = [known[min(k, len(known) - 1)] for k in range(cap + 1)]  # flat past the longest battle
        return survival, f"Kaplan–Meier curve of {len(history):,} earlier battles of this agent and goal"
    try:
        ref = parse_model(agent_model)
    except ModelError:
        ref = None
    if ref is not None and ref.is_sim and ref.name == "agent":
        p = ref.param("concede")
        return [(1 - p) ** k for k in range(cap + 1)], f"prior: the sim agent concedes with probability {p:g} a turn"
    return [1.0] * (cap + 1), "prior: no earlier battle of this agent and goal, so every battle runs to the cap"


def _turn_costs(
    battle: Mapping[str, Any], tokens: Mapping[tuple[str, str, int], tuple[float, float, int]], cap: int
) -> tuple[list[float] | None, str]:
    """The cost of agent turn k (its adversary, agent and judge calls), k = 1..cap; None if a price is unknown."""
    rough = _rough_tokens(battle, cap)
    costs = [0.0] * cap
    measured = 0
    for purpose in PURPOSES:
        model = battle[f"{purpose}_model"]
        not_ours = purpose == "agent" and battle.get("agent_kind", "model") != "model"
        if not_ours or (purpose == "judge" and model == NO_JUDGE):
            continue  # no judge call, or an agent that is a service or a callable: nothing we pay for
        price = pricing.price_per_token(model)
        if price is None:
            return None, f"no price is known for {model}"
        for k in range(1, cap + 1):
            found = tokens.get((model, purpose, k))
            measured += found[2] if found else 0
            prompt, completion = found[:2] if found else rough[purpose][k - 1]
            costs[k - 1] += prompt * price[0] + completion * price[1]
    basis = (
        f"tokens per call from {measured:,} earlier calls of the same models (rough sizes where none)"
        if measured
        else f"rough tokens per call (≈ {pricing.TOKENS_PER_MESSAGE} a message): no earlier call of these models"
    )
    return costs, basis


def _rough_tokens(battle: Mapping[str, Any], cap: int) -> dict[str, list[tuple[float, float]]]:
    """``pricing``'s rough sizes, turn by turn: the prompt of a turn carries the messages before it."""
    system = max(1, len(battle.get("system_prompt") or "") // 4)
    per = pricing.TOKENS_PER_MESSAGE
    return {
        "adversary": [(250 + (2 * k - 2) * per, per) for k in range(1, cap + 1)],
        "agent": [(system + (2 * k - 1) * per, per) for k in range(1, cap + 1)],
        "judge": [(pricing.JUDGE_OVERHEAD_TOKENS + 2 * k * per, pricing.VERDICT_TOKENS) for k in range(1, cap + 1)],
    }


def expected_battles(rule: StoppingRule | None, rate: float, runs: int) -> float:
    """Battles a cell is expected to run: ``runs``, or fewer where its rule holds first."""
    if rule is None:
        return float(runs)
    found = [float(runs)]
    if rule.threshold is not None:
        found.append(_threshold_stop(rule, rate, runs))
    if rule.halfwidth is not None:
        found.append(_halfwidth_stop(rule, rate, runs))
    return min(found)


def _threshold_stop(rule: StoppingRule, rate: float, runs: int) -> float:
    """Mean stopping time of the threshold rule over seeded simulated cells of true rate ``rate``."""
    import numpy as np

    from sparring.sequential import log_evidence_against

    assert rule.threshold is not None
    outcomes = np.random.default_rng(21).random((SIMULATED_PATHS, runs)) < rate
    hits = np.cumsum(outcomes, axis=1)
    n = np.arange(1, runs + 1)
    decided = log_evidence_against(rule.threshold, hits, n - hits) >= -math.log(1 - rule.confidence)
    stops = np.where(decided.any(axis=1), decided.argmax(axis=1) + 1, runs)
    return float(stops.mean())


def _halfwidth_stop(rule: StoppingRule, rate: float, runs: int) -> float:
    """The first n at which the interval around ``rate`` × n successes is at most ±W (its width barely varies)."""
    import numpy as np

    from sparring.sequential import sequence_bounds

    n = np.arange(1, runs + 1)
    low, high = sequence_bounds(np.round(rate * n), n - np.round(rate * n), rule.confidence)
    narrow = (high - low) / 2 <= (rule.halfwidth or 0)
    return float(narrow.argmax() + 1) if narrow.any() else float(runs)


def describe(found: Mapping[str, Any]) -> str:
    """The forecast in one sentence, with its basis."""
    expected, upper = found.get("expected_usd"), found.get("upper_usd")
    if expected is None:
        return "No expected cost: a model has no known price."
    bound = f" (at most ${upper:,.4f} if every battle ran to max messages)" if upper is not None else ""
    bases = sorted({c["turns_basis"] for c in found["cells"]} | {c["tokens_basis"] for c in found["cells"]})
    return (
        f"Expected ≈ ${expected:,.4f} for ≈ {found['expected_battles']:,.0f} of {found['planned_battles']:,} battles"
        f"{bound}. Basis: {'; '.join(bases)}; prices from the price table."
    )


def form_expected_cost(data: dict[str, Any], store: Store) -> tuple[str, str]:
    """The Scale tests form's expected cost: a short value and its basis (a form not yet valid gets a dash)."""
    from sparring.formatting import format_money
    from sparring.scale import validate_scale
    from sparring.validation import InvalidInput

    try:
        scale = validate_scale(data)
    except InvalidInput:
        return "–", "Fix the form to see the expected cost."
    found = safe_forecast(store if store.path.exists() else None, scale)
    if found is None or found["expected_usd"] is None:
        return "unknown", "No expected cost: a model has no known price, or the database is busy."
    return format_money(found["expected_usd"]), describe(found)
