"""Scale tests end to end: fan-out, statistics that cover the truth, reports once."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from jobs import embedded, runs, submit
from sparring import runtime, stats
from sparring.report import run_stats
from sparring.scale import ScaleInput, battle_id, plan_run, run_created, validate_scale
from sparring.validation import InvalidInput
from tests.helpers import WorkerProcess, rows, run_cli, scalar, wait_for_worker, wait_until

TERMINAL = ("finished", "cancelled", "stopped", "failed")


def wait_run(run_id: str, timeout: float) -> dict:
    store = runtime.get_runtime().store

    def done() -> tuple | None:
        row = store.read(lambda con: con.execute("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]).fetchone())
        return row if row and row[0] in TERMINAL else None

    wait_until(done, timeout, interval=0.3, message=f"run {run_id}")
    return run_stats(store, run_id)


def test_plan_is_deterministic_and_paired() -> None:
    scale = ScaleInput.model_validate(
        {
            "runs": 3,
            "agents": [{"model": "sim/agent?concede=0.1"}, {"model": "sim/agent?concede=0.2"}],
            "goals": ["a", "b"],
            "seed": 100,
        }
    )
    plan = plan_run(scale, run_id="r1")
    battles = list(plan.battles())
    assert len(battles) == plan.total == 12 == scale.total_battles
    assert len({b.battle_id for b in battles}) == 12
    assert battles[0].battle_id == battle_id("r1", 0, 0)
    # every cell gets the same seed list
    seeds = {}
    for b in battles:
        seeds.setdefault(b.cell_index, []).append(b.spec.seed)
    assert all(s == plan.seeds() for s in seeds.values())
    assert plan.seeds() != [100, 101, 102] and plan.config["seed_scheme"] == "hash-v1"
    assert [c.label for c in plan.cells][:2] == ["sim/agent?concede=0.1 · a", "sim/agent?concede=0.1 · b"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"runs": 0}, "runs"),
        ({"runs": -1}, "runs"),
        ({"runs": 10**9}, "runs"),
        ({"runs": 1000, "goals": ["a", "b", "c"]}, "runs"),  # 3,000 battles > 2,000 cap
        ({"agents": []}, "agents"),
        ({"goals": ["same", "same"]}, "goals"),
        ({"strategies": ["nope"]}, "strategies"),
        ({"agents": [{"model": "openai/gpt-4o"}]}, "agents"),
        ({"budget_usd": 0}, "budget_usd"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_scale_input_is_refused_before_anything_is_written(data: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        runs.submit_run(data, require_worker=False)
    assert field in error.value.errors
    assert scalar("SELECT count(*) FROM scale_runs") == 0 if runtime.get_runtime().store.path.exists() else True


def test_interval_covers_the_true_rate_for_200_battles() -> None:
    """p = 0.1 per agent turn, 12 agent turns: the true rate is 1 - 0.9^12 ≈ 0.718. A 95% interval covers
    it for 95% of seeds at any n; 200 battles (half-width ≈ 0.06) still catch a rate off by 0.1."""
    embedded.start(threads=16)
    run_id = runs.submit_run(
        {"runs": 200, "agents": [{"model": "sim/agent?concede=0.1"}], "max_messages": 24, "seed": 20261127}
    )
    result = wait_run(run_id, 600)
    (cell,) = result["cells"]
    truth = 1 - 0.9**12
    print(f"rate {cell['rate']:.3f} CI [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}] truth {truth:.3f}")
    assert cell["n"] == 200 and cell["failed"] == 0
    assert cell["ci_low"] <= truth <= cell["ci_high"]
    # the view's interval is the Wilson interval
    wilson = stats.wilson_interval(cell["achieved"], cell["n"])
    assert math.isclose(cell["ci_low"], wilson.low, abs_tol=1e-9) and math.isclose(
        cell["ci_high"], wilson.high, abs_tol=1e-9
    )
    # and the view's survival curve is the Kaplan–Meier estimate
    durations, events = [], []
    for achieved, turns_to_goal, agent_turns in rows(
        "SELECT achieved, turns_to_goal, agent_turns FROM battle_outcomes WHERE run_id = ?", [run_id]
    ):
        durations.append(turns_to_goal if achieved else agent_turns)
        events.append(bool(achieved))
    curve = stats.kaplan_meier(durations, events)
    view = [row["survival"] for row in result["survival"]]
    assert len(view) == len(curve.survival)
    assert all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(view, curve.survival, strict=True))
    # S(12) is the share that held: 1 - rate
    assert math.isclose(view[-1], 1 - cell["rate"], abs_tol=1e-9)
    report = scalar("SELECT summary FROM run_reports WHERE run_id = ?", [run_id])
    assert f"{cell['achieved']} of 200" in report


def test_matrix_finds_a_significant_difference() -> None:
    embedded.start(threads=8)
    run_id = runs.submit_run(
        {
            "runs": 60,
            "agents": [{"model": "sim/agent?concede=0.05"}, {"model": "sim/agent?concede=0.3"}],
            "max_messages": 12,
            "seed": 7,
        }
    )
    result = wait_run(run_id, 300)
    low, high = sorted(result["cells"], key=lambda c: c["rate"])
    assert low["agent_model"].endswith("0.05") and high["agent_model"].endswith("0.3")
    (comparison,) = result["comparisons"]
    assert comparison["method"].startswith("McNemar")  # paired: the cells share their seeds
    assert comparison["significant"] and comparison["p_value"] < 0.01
    assert "statistically significant" in comparison["statement"]


def test_budget_stops_the_remaining_battles() -> None:
    embedded.start(threads=2)
    run_id = runs.submit_run(
        {
            "runs": 60,
            "agents": [{"model": "sim/agent?concede=0&price_out=500&latency_ms=20"}],
            "max_messages": 6,
            "budget_usd": 0.05,
            "seed": 1,
        }
    )
    result = wait_run(run_id, 300)
    run = result["run"]
    assert run["status"] == "stopped" and "budget" in run["error"]
    assert run["cancelled"] > 0 and run["finished"] == 60
    assert run["cost_usd"] >= 0.05
    # the budget stopped the run well before its natural cost
    per_battle = run["cost_usd"] / max(1, run["held"])
    assert run["held"] < 60 and per_battle * 60 > 0.05


def test_cancel_a_run() -> None:
    embedded.start(threads=2)
    run_id = runs.submit_run(
        {"runs": 40, "agents": [{"model": "sim/agent?concede=0&latency_ms=30"}], "max_messages": 10}
    )
    wait_until(lambda: scalar("SELECT finished FROM run_summary WHERE run_id = ?", [run_id]) >= 2, 120)
    assert runs.cancel_run(run_id) == "cancelling"
    result = wait_run(run_id, 60)
    assert result["run"]["status"] == "cancelled"
    assert result["run"]["cancelled"] > 0 and result["run"]["finished"] == 40
    assert scalar("SELECT count(*) FROM run_reports WHERE run_id = ?", [run_id]) == 1
    # One of its battles retried on its own would be cancelled again at once: refused, plainly.
    cancelled = scalar("SELECT battle_id FROM battles WHERE run_id = ? AND outcome = 'cancelled' LIMIT 1", [run_id])
    events = scalar("SELECT count(*) FROM battle_events")
    with pytest.raises(submit.SubmitError, match="belongs to a scale test that was stopped"):
        submit.retry_battle(cancelled)
    assert scalar("SELECT count(*) FROM battle_events") == events
    assert scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "cancelled"


def test_a_run_whose_fan_out_job_was_lost_is_fanned_out_again() -> None:
    scale = validate_scale({"runs": 4, "max_messages": 4, "agents": [{"model": "sim/agent?concede=0"}]})
    plan = plan_run(scale)
    # Recorded, but its fan-out job is gone (a queue that lost its data): nothing would run it.
    runtime.get_runtime().sink.write([run_created(plan, scale)])
    embedded.start(threads=2)  # its reaper finds the queue's state mark missing and checks the store
    result = wait_run(plan.run_id, 60)
    assert result["run"]["status"] == "finished" and result["run"]["held"] == 4
    assert scalar("SELECT count(*) FROM run_reports WHERE run_id = ?", [plan.run_id]) == 1


def test_refanout_does_not_double_the_run() -> None:
    embedded.start(threads=4)
    run_id = runs.submit_run({"runs": 10, "max_messages": 4, "agents": [{"model": "sim/agent?concede=0"}]})
    wait_run(run_id, 120)
    runs.fan_out(run_id)  # a duplicate fan-out job
    time.sleep(1)
    assert scalar("SELECT count(*) FROM battles WHERE run_id = ?", [run_id]) == 10
    assert scalar("SELECT count(*) FROM battle_events WHERE event = 'started'") == 10
    assert scalar("SELECT count(*) FROM run_reports") == 1


def test_two_workers_summarise_each_run_exactly_once(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_HEARTBEAT_PERIOD_S", "1")
    runtime.reset()
    workers = [WorkerProcess(threads=4), WorkerProcess(threads=4)]
    try:
        for worker in workers:
            wait_for_worker(worker)
        run_ids = [
            runs.submit_run({"runs": 12, "max_messages": 4, "agents": [{"model": "sim/agent?concede=0.3"}]})
            for _ in range(3)
        ]
        for run_id in run_ids:
            wait_run(run_id, 180)
        time.sleep(2)  # any duplicate summary would land now
        for run_id in run_ids:
            assert scalar("SELECT count(*) FROM llm_calls WHERE run_id = ? AND purpose = 'summary'", [run_id]) == 1
            assert scalar("SELECT count(*) FROM run_reports WHERE run_id = ?", [run_id]) == 1
        hosts = {d for (d,) in rows("SELECT DISTINCT detail FROM battle_events WHERE event = 'started'")}
        assert len(hosts) == 2
    finally:
        for worker in workers:
            worker.stop()


def test_cli_scale_json_has_per_cell_statistics() -> None:
    done = run_cli(
        *("scale", "--runs", "15", "--max-messages", "6", "--seed", "3"),
        *("--agent-model", "sim/agent?concede=0.1", "--agent-model", "sim/agent?concede=0.4", "--json"),
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["run_id"] and len(payload["cells"]) == 2
    for cell in payload["cells"]:
        for key in ("n", "achieved", "rate", "ci_low", "ci_high", "median_turns_to_goal"):
            assert key in cell
        assert cell["n"] == 15 and cell["ci_low"] <= cell["rate"] <= cell["ci_high"]
    bad = subprocess.run(
        [sys.executable, "-m", "sparring", "scale", "--runs", "0"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "--runs" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
