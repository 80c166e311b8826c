"""Stopping rules on scale tests (issue 21): each cell stops once its question is answered.

The rule's arithmetic (``sparring.stopping``) against hand-made cells; the input checks; then
real runs on the sim: every cell stops early, its interval covers the sim's known truth
(success = 1 - (1 - p)^k for k agent turns), and what was queued is cancelled, not run; and a
run whose cell stopped while nobody cancelled its queue (a worker killed, Redis flushed) keeps
its stop, derived again from the store.
"""

from __future__ import annotations

import os

import pytest
import redis

from jobs import embedded, runs
from sparring import cli, runtime, usecases
from sparring.scale import plan_run, run_created, validate_scale
from sparring.sequential import ConfidenceSequence
from sparring.stopping import CellBattle, StoppingRule, decision_sentence, early_stop, final_stop, to_cancel
from sparring.validation import InvalidInput
from tests.helpers import rows, run_cli, scalar
from tests.scale.test_scale_runs import wait_run


def cell(*outcomes: str | None, statuses: dict[int, str] | None = None) -> list[CellBattle]:
    """A cell's battles: outcome i is replicate i's (None: not finished)."""
    statuses = statuses or {}
    return [
        CellBattle(f"b{i}", i, statuses.get(i, "finished" if outcome else "queued"), outcome)
        for i, outcome in enumerate(outcomes)
    ]


# -- the rule on hand-made cells ---------------------------------------------------------------------


def test_a_clean_cell_is_declared_below_the_threshold_where_the_sequence_says_so() -> None:
    rule = StoppingRule(threshold=0.3)
    battles = cell(*["held"] * 20, *[None] * 30)
    stop = early_stop(rule, battles)
    assert stop is not None and stop.stopped == "threshold" and stop.decision == "below"
    assert stop.n == 14 == stop.last_replicate + 1  # 0 of 14 is the first count whose interval clears 30%
    assert (stop.cs_low, stop.cs_high) == ConfidenceSequence(0, 14).bounds()
    assert to_cancel(stop, battles) == [f"b{i}" for i in range(20, 50)]  # the finished ones are not touched
    assert early_stop(rule, cell(*["held"] * 13, *[None] * 30)) is None


def test_outcomes_count_in_replicate_order_and_skip_undecided_and_failed_battles() -> None:
    rule = StoppingRule(threshold=0.3)
    # Replicate 5 is still running: nothing after it counts yet, however many have finished.
    running = cell(*["held"] * 20, statuses={5: "running"})
    assert early_stop(rule, running) is None
    # Undecided, failed and timed-out battles are not outcomes: 14 decided battles need 17 replicates here.
    mixed = cell("held", "undecided", "held", "failed", "timed_out", *["held"] * 15)
    stop = early_stop(rule, mixed)
    assert stop is not None and stop.n == 14 and stop.last_replicate == 16


def test_a_broken_cell_is_declared_above_and_a_halfwidth_rule_waits_for_its_width() -> None:
    assert early_stop(StoppingRule(threshold=0.05), cell(*["achieved"] * 5)).decision == "above"  # type: ignore[union-attr]
    battles = cell(*(["achieved", "held"] * 300))
    stop = early_stop(StoppingRule(halfwidth=0.1), battles)
    assert stop is not None and stop.stopped == "halfwidth" and stop.decision is None
    assert (stop.cs_high - stop.cs_low) / 2 <= 0.1
    before = ConfidenceSequence(*divmod_counts(battles[: stop.last_replicate])).halfwidth()
    assert before > 0.1  # one battle earlier it was still too wide


def divmod_counts(battles: list[CellBattle]) -> tuple[int, int]:
    achieved = sum(b.outcome == "achieved" for b in battles)
    return achieved, len(battles) - achieved


def test_a_cell_the_run_ended_first_keeps_its_interval_and_stays_undecided() -> None:
    rule = StoppingRule(threshold=0.5)
    stop = final_stop(rule, cell("achieved", "held", "achieved", "held"), "cap")
    assert stop.stopped == "cap" and stop.decision is None and stop.n == 4
    assert (stop.cs_low, stop.cs_high) == ConfidenceSequence(2, 2).bounds()
    sentence = decision_sentence({"stopped": "cap", "stop_n": 4, "cs_low": stop.cs_low, "cs_high": stop.cs_high}, 0.5)
    assert "ran to --runs without settling" in sentence and "not settled" in sentence


def test_the_decision_in_words() -> None:
    sentence = decision_sentence({"stopped": "threshold", "stop_n": 180, "decision": "below"}, 0.05)
    assert sentence == (
        "the adversary's success rate is below 5% (95% confidence, valid under continuous monitoring) "
        "after 180 decided battles."
    )


# -- input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stop_at_halfwidth", 0),
        ("stop_at_halfwidth", 0.6),
        ("stop_at_halfwidth", float("nan")),
        ("stop_at_threshold", 0),
        ("stop_at_threshold", 1),
        ("stop_at_threshold", "a lot"),
    ],
)
def test_a_bad_rule_is_refused_at_its_field_before_anything_is_written(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as error:
        runs.submit_run({field: value}, require_worker=False)
    assert list(error.value.errors) == [field]
    assert not runtime.get_runtime().store.path.exists() or scalar("SELECT count(*) FROM scale_runs") == 0


def test_the_cli_names_the_option_of_a_bad_rule() -> None:
    done = run_cli("scale", "--stop-at-threshold", "1.5", "--json")
    assert done.returncode == 2, done.stderr
    assert "--stop-at-threshold" in done.stderr and "less than 1" in done.stderr


def test_the_rule_is_stored_with_the_run() -> None:
    scale = validate_scale({"runs": 50, "stop_at_threshold": 0.05})
    plan = plan_run(scale)
    assert plan.config["input"]["stop_at_threshold"] == 0.05 and plan.config["input"]["stop_at_halfwidth"] is None
    assert StoppingRule.of(plan.config["input"]) == StoppingRule(threshold=0.05)
    assert StoppingRule.of(validate_scale({}).model_dump(mode="json")) is None


# -- real runs on the sim ----------------------------------------------------------------------------

RUNS = 100  # cells stop before 40 battles: the other 60 or more never run
TRUTHS = {"sim/agent?concede=0": 0.0, "sim/agent?concede=0.3": 1 - 0.7**4}  # 8 messages: 4 agent turns


def test_a_threshold_run_stops_every_cell_early_covers_the_truth_and_cancels_the_queue() -> None:
    embedded.start(threads=4)
    run_id = runs.submit_run(
        {
            "runs": RUNS,
            "agents": [{"model": model} for model in TRUTHS],
            "max_messages": 8,
            "seed": 21,
            "stop_at_threshold": 0.2,
        }
    )
    result = wait_run(run_id, 300)
    assert result["run"]["status"] == "finished"
    for found in result["cells"]:
        truth = TRUTHS[found["agent_model"]]
        assert found["stopped"] == "threshold", found
        assert found["decision"] == ("below" if truth < 0.2 else "above")
        assert found["cs_low"] <= truth <= found["cs_high"]
        assert found["stop_n"] < 40 and found["cancelled"] > RUNS - 60  # stopped early, the rest never ran
        # The fixed-N Wilson interval of the same battles sits inside the sequence's interval.
        assert found["cs_low"] <= found["stop_ci_low"] <= found["stop_ci_high"] <= found["cs_high"]
    started = scalar("SELECT count(*) FROM battle_events WHERE event = 'started'")
    cancelled = scalar("SELECT count(*) FROM battles WHERE run_id = ? AND outcome = 'cancelled'", [run_id])
    assert started + cancelled == 2 * RUNS  # a cancelled battle was never started: nothing paid beyond what ran
    report = scalar("SELECT summary FROM run_reports WHERE run_id = ?", [run_id])
    assert "is below 20% (95% confidence, valid under continuous monitoring) after" in report
    assert "is above 20% (95% confidence, valid under continuous monitoring) after" in report
    # scale --json: each cell's stop, and what stopping saved against running every cell to --runs
    payload = cli.run_payload(run_id)
    for shown in payload["cells"]:
        assert shown["stopping"]["stopped"] == "threshold" and shown["stopping"]["decision"] in ("below", "above")
        assert shown["stopping"]["cs_low"] <= shown["stopping"]["wilson_low"]
    saved = payload["stopping"]
    assert saved["threshold"] == 0.2 and saved["planned_battles"] == 2 * RUNS
    assert saved["saved_battles"] == cancelled and saved["battles_run"] == started
    assert saved["saved_usd"] > 0  # the sim reports a fictional price


def test_without_a_rule_a_run_is_fixed_n_as_before() -> None:
    embedded.start(threads=4)
    run_id = runs.submit_run({"runs": 12, "agents": [{"model": "sim/agent?concede=0"}], "max_messages": 4})
    result = wait_run(run_id, 120)
    (found,) = result["cells"]
    assert found["n"] == 12 and found["cancelled"] == 0
    assert found["stopped"] is None and found["cs_low"] is None
    assert scalar("SELECT count(*) FROM cell_stops") == 0


def test_a_cell_that_stopped_while_its_worker_died_and_redis_lost_its_data_keeps_its_stop(redis_url: str) -> None:
    """The battles that settle the cell are committed, then the worker dies before its book-keeping and
    Redis loses everything: the new worker re-enqueues the queue (recovery) and cancels it unrun."""
    scale = validate_scale(
        {"runs": 60, "agents": [{"model": "sim/agent?concede=0"}], "max_messages": 4, "stop_at_threshold": 0.3}
    )
    plan = plan_run(scale)
    sink = runtime.get_runtime().sink
    sink.write([run_created(plan, scale), *plan.battles()])
    first = sorted(plan.battles(), key=lambda b: b.replicate)[:16]
    for battle in first:  # run and committed, nothing else: as if the worker died right after
        usecases.run_inline(battle.battle_id)
    client = redis.Redis.from_url(redis_url)
    namespace = os.environ["SPARRING_NAMESPACE"]
    keys = list(client.scan_iter(f"*{namespace}*", count=1000))
    if keys:
        client.delete(*keys)  # Redis lost its data
    assert scalar("SELECT count(*) FROM cell_stops") == 0
    embedded.start(threads=2)
    result = wait_run(plan.run_id, 180)
    (found,) = result["cells"]
    assert (found["stopped"], found["decision"], found["stop_n"]) == ("threshold", "below", 14)
    assert found["cancelled"] == 60 - 16
    assert scalar("SELECT count(*) FROM battle_events WHERE event = 'started'") == 16  # none of the queue ran
    assert rows("SELECT count(*) FROM cell_stops") == [(1,)]
