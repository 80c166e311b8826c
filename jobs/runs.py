"""Scale tests on the queue: fan out, follow, stop, summarise exactly once.

Launching and cancelling one are use cases (``sparring.usecases``); this is the queue's side.

The fan-out is a task: it writes every battle row of the plan (deterministic ids, so a
second fan-out creates nothing new), records the run's total in the coordinator and
enqueues the battles that are still queued. Each finished battle of a run is added to
the run's *done set* (a set, so a retried or duplicated job counts once); the battle that
brings the set to the total claims the run's summary, and only the claimant enqueues
it: aggregation and the written report run once, however many workers finish battles
at the same moment.

A run with a stopping rule (``sparring.stopping``) has each cell checked as its battles
finish, and once more before a queued battle starts: when the rule holds, the cell's stop is
recorded and its queued battles are cancelled like those of a stopped run.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from jobs.queue import Queue, get_queue
from sparring import records as r
from sparring import spend, stopping
from sparring.runtime import get_runtime
from sparring.scale import plan_from_config
from sparring.stopping import CellBattle, CellStop, StoppingRule
from sparring.usecases import UnknownRunError
from sparring.usecases import cancel_run as cancel_run
from sparring.usecases import launch_scale as submit_run

log = logging.getLogger(__name__)

__all__ = ["UnknownRunError", "cancel_run", "fan_out", "stop_run", "submit_run", "summarise"]

CLAIM_TTL_S = 30 * 24 * 3600
FANOUT_CHUNK = 500


def _run(run_id: str) -> r.RunView:
    run = get_runtime().source.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"unknown run id {run_id!r}")
    return run


def fan_out(run_id: str, queue: Queue | None = None) -> int:
    """Create and enqueue the run's battles (idempotent); return how many were enqueued."""
    queue = queue or get_queue()
    runtime = get_runtime()
    run = _run(run_id)
    if queue.coord.run_cancel_reason(run_id):
        runtime.sink.write([r.RunStatusChanged(run_id, "cancelled", error="cancelled before it started")])
        return 0
    plan = plan_from_config(run_id, run.name, run.runs_per_cell, run.config)
    battles = list(plan.battles())
    for start in range(0, len(battles), FANOUT_CHUNK):
        runtime.sink.write(battles[start : start + FANOUT_CHUNK])
    queue.coord.set_run_total(run_id, plan.total)
    statuses = runtime.source.run_battle_statuses(run_id)
    finished = [b for b, status in statuses.items() if status == "finished"]
    if finished:
        queue.coord.run_done_add(run_id, finished)
    pending = queue.pending_ids()
    to_enqueue = [b.battle_id for b in battles if statuses.get(b.battle_id) == "queued" and b.battle_id not in pending]
    for start in range(0, len(to_enqueue), FANOUT_CHUNK):
        chunk = to_enqueue[start : start + FANOUT_CHUNK]
        queue.coord.touch_active_many(chunk)
        queue.enqueue_battles(chunk)
    enqueued = len(to_enqueue)
    runtime.sink.write([r.RunStatusChanged(run_id, "running")])
    if len(finished) == plan.total:
        maybe_summarise(queue, run_id)
    return enqueued


def battle_done(queue: Queue, run_id: str, battle_id: str, cell_key: str | None = None) -> None:
    """Book-keeping after a battle of a run reached a terminal state."""
    done = queue.coord.run_done_add(run_id, [battle_id])
    check_budget(queue, run_id)
    if cell_key:
        check_cell(queue, run_id, cell_key)
    total = queue.coord.run_total(run_id)
    if total is not None and done >= total:
        maybe_summarise(queue, run_id)


def maybe_summarise(queue: Queue, run_id: str) -> bool:
    """Enqueue the run's summary if nobody has: the claim makes it happen once."""
    if not queue.coord.claim(f"summary:{run_id}", CLAIM_TTL_S):
        return False
    queue.huey.enqueue(queue.tasks["summarise_run"].s(run_id, id=f"summary:{run_id}"))
    return True


# A run's config never changes once recorded: its rule is read once per process (under a lock,
# so that a worker of 200 threads starting a run's battles at once reads it once, not 200 times).
_rules: dict[str, StoppingRule | None] = {}
_run_terms: dict[str, r.RunView] = {}
_rules_lock = threading.Lock()


def run_rule(run_id: str) -> StoppingRule | None:
    if run_id in _rules:
        return _rules[run_id]
    run = _terms(run_id)  # outside the lock, which _terms takes too
    with _rules_lock:
        if run_id not in _rules:
            _rules[run_id] = StoppingRule.of(run.config.get("input", {}))
    return _rules[run_id]


def cell_has_stopped(queue: Queue, run_id: str, cell_key: str, battle_id: str) -> bool:
    """Before a queued battle of a run starts: True (and the battle cancelled) if its cell has stopped.

    The backstop for a stop whose cancellations were cut short (a killed worker) or re-enqueued
    by recovery after Redis lost its data: the stop is derived again from the store.
    """
    found = cell_stop(run_id, cell_key)
    if found is None:
        return False
    stop, battles = found
    queued = stopping.to_cancel(stop, battles)
    stop_cell(queue, run_id, cell_key, stop, queued)
    return battle_id in queued


def cell_stop(run_id: str, cell_key: str) -> tuple[CellStop, list[CellBattle]] | None:
    """The cell's stop if its run has a stopping rule and the rule holds, with the cell's battles.

    Computed from the battles as recorded (never remembered), so a worker that died, or a
    Redis that lost its data, changes nothing: whoever looks next finds the same stop.
    """
    rule = run_rule(run_id)
    if rule is None:
        return None
    battles = get_runtime().source.cell_battles(run_id, cell_key)
    found = stopping.early_stop(rule, battles)
    return (found, battles) if found is not None else None


def check_cell(queue: Queue, run_id: str, cell_key: str) -> bool:
    """Stop the cell if its rule holds: record why, and cancel its battles still queued. Idempotent."""
    found = cell_stop(run_id, cell_key)
    if found is None:
        return False
    stop, battles = found
    stop_cell(queue, run_id, cell_key, stop, stopping.to_cancel(stop, battles))
    return True


def stop_cell(queue: Queue, run_id: str, cell_key: str, stop: CellStop, queued: list[str]) -> None:
    """Record the cell's stop (the first record wins) and cancel ``queued``, as ``stop_run`` does for a run."""
    runtime = get_runtime()
    runtime.sink.write([r.CellStopped(run_id, cell_key, **dataclasses.asdict(stop))])
    if not queued:
        return
    log.info(
        "Run %s: cell %s stopped (%s) after %d battles; cancelling %d queued",
        run_id,
        cell_key,
        stop.stopped,
        stop.n,
        len(queued),
    )
    reason = f"its cell stopped early ({stop.stopped}) after {stop.n} decided battles"
    for battle_id in queued:
        queue.coord.request_cancel(battle_id)  # a worker that has just taken it sees this
        queue.huey.revoke_by_id(battle_id, revoke_once=True)
    runtime.sink.write([r.BattleFinished(b, "cancelled", error=reason) for b in queued])
    for battle_id in queued:
        queue.coord.drop_active(battle_id)
    done = queue.coord.run_done_add(run_id, queued)
    total = queue.coord.run_total(run_id)
    if total is not None and done >= total:
        maybe_summarise(queue, run_id)


def _terms(run_id: str) -> r.RunView:
    """The run as recorded, read once per process: its config, budget and launcher never change
    (a worker of 200 threads ending 200 battles at once does not read it 200 times). Its status
    does: read the run itself (``_run``) for that."""
    if run_id not in _run_terms:
        with _rules_lock:
            if run_id not in _run_terms:
                _run_terms[run_id] = _run(run_id)
    return _run_terms[run_id]


def check_budget(queue: Queue, run_id: str) -> None:
    source = get_runtime().source
    run = _terms(run_id)
    budget = run.budget_usd
    if budget is None:
        check_spend_limit(queue, run)
        return
    cost = source.run_cost(run_id)
    if cost >= budget and queue.coord.claim(f"budget:{run_id}", CLAIM_TTL_S):
        log.warning("Run %s reached its budget ($%.4f of $%.4f): stopping the rest", run_id, cost, budget)
        stop_run(run_id, f"budget of ${budget:g} reached", status="stopping", queue=queue)
        return
    check_spend_limit(queue, run)


def check_spend_limit(queue: Queue, run: r.RunView) -> None:
    """Stop the run, like at its budget, once its launcher or the team reached a daily spend limit.

    Read from the database, so only where this process writes it (not with the stream sink)."""
    runtime = get_runtime()
    if not run.launched_by or runtime.settings.record_sink != "duckdb":
        return
    allowance = spend.allowance(runtime.store, run.launched_by)
    if allowance.left is None or allowance.left > 0:
        return
    if queue.coord.claim(f"budget:{run.run_id}", CLAIM_TTL_S):
        log.warning("Run %s: %s; stopping the rest", run.run_id, allowance.sentence())
        reason = f"budget of today's spend limit reached ({allowance.sentence()})"
        stop_run(run.run_id, reason, status="stopping", queue=queue)


def stop_run(run_id: str, reason: str, *, status: str = "cancelling", queue: Queue | None = None) -> int:
    """Stop a run: queued battles end cancelled now, running ones at their next model call."""
    queue = queue or get_queue()
    runtime = get_runtime()
    _run(run_id)
    queue.coord.request_run_cancel(run_id, reason)
    runtime.sink.write([r.RunStatusChanged(run_id, status, error=reason)])
    statuses = runtime.source.run_battle_statuses(run_id)
    queued = [battle_id for battle_id, state in statuses.items() if state == "queued"]
    for battle_id in queued:
        queue.huey.revoke_by_id(battle_id, revoke_once=True)
    runtime.sink.write([r.BattleFinished(b, "cancelled", error=reason) for b in queued])
    for battle_id in queued:
        queue.coord.drop_active(battle_id)
    for battle_id, state in statuses.items():
        if state == "running":
            queue.coord.request_cancel(battle_id)
    if queued:
        done = queue.coord.run_done_add(run_id, queued)
        total = queue.coord.run_total(run_id)
        if total is not None and done >= total:
            maybe_summarise(queue, run_id)
    return len(queued)


def summarise(run_id: str) -> str:
    """Aggregate and write the report (the summary task body); return the final status.

    It reads the database, so a process that cannot (a stream worker) hands the job to
    the ingester, which runs it once everything recorded before has been committed.
    """

    runtime = get_runtime()
    if runtime.settings.record_sink == "stream" and runtime.mirror is not None:
        runtime.mirror.client.lpush(runtime.mirror.summary_queue, run_id)
        return "handed to the ingester"
    return summarise_here(run_id)


def summarise_here(run_id: str) -> str:
    """The summary, computed in this process (which must be able to read the database)."""
    from sparring.report import build_report

    runtime = get_runtime()
    queue = get_queue()
    run = runtime.store.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"unknown run id {run_id!r}")
    writer = run.config["input"].get("summary_model", "sim/writer")
    reason = queue.coord.run_cancel_reason(run_id)
    record_final_stops(run, reason)
    report = build_report(runtime.store, runtime.gateway, run_id, writer)
    final = "finished" if not reason else ("stopped" if reason.startswith("budget") else "cancelled")
    runtime.sink.write([report, r.RunStatusChanged(run_id, final, error=reason)])
    return final


def record_final_stops(run: r.RunView, cancel_reason: str | None) -> None:
    """Before the report: each cell its rule did not stop gets its row, saying how the run ended it."""
    rule = StoppingRule.of(run.config.get("input", {}))
    if rule is None:
        return
    ended = stopping.why_the_run_ended(cancel_reason)
    source = get_runtime().store
    records: list[r.Record] = []
    for cell in run.config.get("cells", []):
        stop = stopping.final_stop(rule, source.cell_battles(run.run_id, cell["key"]), ended)
        records.append(r.CellStopped(run.run_id, cell["key"], **dataclasses.asdict(stop)))
    get_runtime().sink.write(records)


def rescue_summaries(queue: Queue) -> list[str]:
    """Maintenance: runs that are complete but whose summary never got claimed."""
    rescued = []
    for run_id in queue.coord.runs():
        total = queue.coord.run_total(run_id)
        if total is not None and queue.coord.run_done_add(run_id, []) >= total and maybe_summarise(queue, run_id):
            rescued.append(run_id)
    return rescued
