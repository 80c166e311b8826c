"""A scale test's plan before launch (``sparring.plan``): cells, battles, limits and the cost estimate."""

from __future__ import annotations

from typing import Any

from sparring import pricing
from sparring.formatting import format_money
from sparring.plan import Plan, cost_estimate, limit_warning, plan_of
from sparring.settings import Settings

SIM = "sim/agent?concede=0.1"


def form(*agents: str, goals: int = 1, strategies: int = 1, runs: Any = 10, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "agents": [{"model": model, "system_prompt": "Be helpful."} for model in agents],
        "goals": [f"goal {i}" for i in range(goals)],
        "strategies": [f"strategy {i}" for i in range(strategies)],
        "runs": runs,
        "adversary_model": "sim/adversary",
        "judge_model": "sim/judge",
        "max_messages": 6,
    }
    return {**data, **fields}


def test_the_plan_multiplies_agents_goals_strategies_and_runs() -> None:
    plan = plan_of(form(SIM, SIM, goals=3, strategies=2, runs=5))
    assert (plan.cells, plan.total) == (12, 60)
    assert plan.cells_basis() == "2 agents × 3 goals × 2 strategies"
    assert plan_of(form(SIM, runs=None)).total == 0  # a blank runs field plans nothing


def test_a_plan_over_a_limit_says_which_one() -> None:
    settings = Settings(max_runs_per_cell=10, max_battles_per_run=50)
    assert limit_warning(Plan(1, 1, 1, 10), settings) is None
    assert limit_warning(Plan(1, 1, 1, 11), settings) == "At most 10 runs per cell."
    over = limit_warning(Plan(2, 3, 1, 10), settings)
    assert over is not None and over.startswith("60 battles is more than the limit of 50")


def test_the_estimate_scales_one_battle_per_agent_to_the_whole_run() -> None:
    data = form(SIM, "sim/agent?concede=0.5", goals=2, runs=10)
    total = plan_of(data).total
    one_round = pricing.estimate_cost(
        [
            {
                "agent_model": a["model"],
                "system_prompt": a["system_prompt"],
                "adversary_model": "sim/adversary",
                "judge_model": "sim/judge",
                "max_messages": 6,
            }
            for a in data["agents"]
        ]
    )
    assert one_round.usd is not None
    estimate = cost_estimate(data, total)
    assert estimate.value == f"≤ {format_money(one_round.usd * total / 2)} (sim)"
    assert f"({round(one_round.calls * total / 2):,} model calls" in estimate.basis
    assert estimate.basis.startswith("Simulated: sim models report a fictional price")


def test_paid_models_are_named_and_unknown_prices_say_so() -> None:
    paid = cost_estimate(form("openai/gpt-4o-mini"), 10)
    assert paid.value.startswith("≤ $") and not paid.value.endswith("(sim)")  # litellm's price list knows it
    assert paid.basis.endswith("Paid models: openai/gpt-4o-mini.")
    unknown = cost_estimate(form("openai/no-such-model-anywhere"), 10)
    assert unknown.value == "unknown"
    assert "openai/no-such-model-anywhere" in unknown.basis and "Set a budget" in unknown.basis


def test_a_half_filled_form_gets_a_hint_instead_of_an_error() -> None:
    assert cost_estimate(form(), 0).basis == "Add agents, goals and strategies to see an estimate."
    assert cost_estimate(form(SIM), 0).value == "–"
    assert cost_estimate(form("not a model name"), 10).basis == "Fix the model names to see an estimate."
