"""A scale test's plan before it is launched: its cells, its battles, what it may cost at most.

The Scale tests form shows the plan as the user types, from the form's raw fields (not yet
validated), so every function here accepts a half-filled form and says what is missing
instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparring import pricing
from sparring.formatting import format_money, plural
from sparring.modelref import ModelError, parse_model
from sparring.settings import Settings
from sparring.strategies import DEFAULT_STRATEGY, STRATEGIES, params_for
from sparring.validation import parse_params

ESTIMATE_MAX_MESSAGES = 25  # the estimate's cap when the form's max messages is blank


@dataclass(frozen=True, slots=True)
class Plan:
    """The matrix a form describes: agents × goals × strategies cells, ``per_cell`` battles each."""

    agents: int
    goals: int
    strategies: int
    per_cell: int

    @property
    def cells(self) -> int:
        return self.agents * self.goals * self.strategies

    @property
    def total(self) -> int:
        return self.cells * self.per_cell

    def cells_basis(self) -> str:
        """'2 agents × 1 goal × 3 strategies'."""
        return f"{plural(self.agents, 'agent')} × {plural(self.goals, 'goal')} × {plural(self.strategies, 'strategy')}"


@dataclass(frozen=True, slots=True)
class Estimate:
    """The estimated cost of a whole run: a short ``value`` ('≤ $1.20') and the sentence behind it."""

    value: str
    basis: str


def plan_of(data: Mapping[str, Any]) -> Plan:
    """The plan of the form's fields (``agents``, ``goals``, ``strategies``, ``runs``)."""
    return Plan(len(data["agents"]), len(data["goals"]), len(data["strategies"]), int(data.get("runs") or 0))


def limit_warning(plan: Plan, settings: Settings) -> str | None:
    """Why the plan is over a limit the launch would refuse, else None."""
    if plan.per_cell > settings.max_runs_per_cell:
        return f"At most {settings.max_runs_per_cell:,} runs per cell."
    if plan.total > settings.max_battles_per_run:
        return (
            f"{plan.total:,} battles is more than the limit of {settings.max_battles_per_run:,} per scale test "
            "(SPARRING_MAX_BATTLES_PER_RUN): fewer runs or fewer cells."
        )
    return None


def _battles(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One battle of each agent and strategy, as ``pricing.estimate_cost`` reads it (each at its worst case)."""
    params = _given_params(data.get("adversary_params"))
    return [
        {
            "agent_model": agent.get("model") or "",
            "system_prompt": agent.get("system_prompt") or "",
            "adversary_model": data["adversary_model"],
            "judge_model": data["judge_model"],
            "max_messages": int(data.get("max_messages") or ESTIMATE_MAX_MESSAGES),
            "strategy": strategy,
            "adversary_params": params_for(strategy, params) if strategy in STRATEGIES else {},
        }
        for agent in data["agents"]
        for strategy in (data.get("strategies") or [DEFAULT_STRATEGY])
    ]


def _given_params(value: Any) -> dict[str, int]:
    """The form's strategy parameters as numbers; a half-typed one is left to its default here
    (the field's own check reports it)."""
    try:
        given = parse_params(value)
        return {k: int(v) for k, v in given.items()}
    except ValueError:
        return {}


def _models(battles: Sequence[Mapping[str, Any]]) -> set[str]:
    return {battle[field] for battle in battles for field in ("agent_model", "adversary_model", "judge_model")}


def cost_bound(data: Mapping[str, Any], total: int) -> float | None:
    """The most ``total`` battles of the form may cost, in dollars; None when a price is unknown."""
    battles = _battles(data)
    if not battles or not total:
        return 0.0
    per_round = pricing.estimate_cost(battles)
    return None if per_round.usd is None else per_round.usd * total / len(battles)


def cost_estimate(data: Mapping[str, Any], total: int) -> Estimate:
    """The most ``total`` battles of the form may cost: every battle running to max messages."""
    if not data["agents"] or not total:
        return Estimate("–", "Add agents, goals and strategies to see an estimate.")
    battles = _battles(data)
    models = _models(battles)
    try:
        per_round = pricing.estimate_cost(battles)  # one battle of each agent
        paid = sorted(m for m in models if pricing.is_paid(m))
        sim = any(parse_model(m).is_sim for m in models)
    except (ModelError, ValueError):
        return Estimate("–", "Fix the model names to see an estimate.")
    if per_round.usd is None:
        return Estimate(
            "unknown",
            "No price is known for " + ", ".join(per_round.unknown_models) + ", so the cost cannot be estimated. "
            "Set a budget to cap what the run may spend.",
        )
    scale_by = total / len(battles)
    usd = per_round.usd * scale_by
    calls = round(per_round.calls * scale_by)
    value = f"≤ {format_money(usd)}"
    basis = (
        f"at most, if every battle runs to its strategy's worst case ({calls:,} model calls, "
        f"≈ {pricing.TOKENS_PER_MESSAGE} tokens a message)"
    )
    if paid:
        return Estimate(value, f"{format_money(usd)} {basis}. Paid models: {', '.join(paid)}.")
    if sim:
        sentence = f"Simulated: sim models report a fictional price, so nothing is charged. {basis.capitalize()}."
        return Estimate(value + " (sim)", sentence)
    return Estimate(value, f"Local models cost nothing here. {basis.capitalize()}.")
