"""Scale tests on the queue: submit, fan out, follow, stop, summarise exactly once.

The fan-out is a task: it writes every battle row of the plan (deterministic ids, so a
second fan-out creates nothing new), records the run's total in the coordinator and
enqueues the battles that are still queued. Each finished battle of a run is added to
the run's *done set* (a set, so a retried or duplicated job counts once); the battle that
brings the set to the total claims the run's summary, and only the claimant enqueues
it: aggregation and the written report run once, however many workers finish battles
at the same moment.
"""

from __future__ import annotations

import logging
from typing import Any

from jobs.queue import Queue, get_queue
from jobs.submit import (
    NoWorkerError,
    SubmitError,
    _check_reachable,
    launched_before,
    live_workers,
    release_submission,
    worker_command,
)
from sparring import records as r
from sparring.runtime import get_runtime
from sparring.scale import Plan, ScaleInput, plan_from_config, plan_run, run_created, validate_scale

log = logging.getLogger(__name__)

CLAIM_TTL_S = 30 * 24 * 3600
FANOUT_CHUNK = 500


class UnknownRunError(LookupError):
    pass


def submit_run(data: dict[str, Any] | ScaleInput, *, require_worker: bool = True, token: str | None = None) -> str:
    """Validate and record a scale test, and queue its fan-out; return the run id.

    ``token``: the form's submit token; a submit whose token was claimed already returns that
    run's id and creates nothing (see ``jobs.submit``).
    """
    scale = data if isinstance(data, ScaleInput) else validate_scale(data)
    queue = get_queue()
    _check_reachable(queue)
    if require_worker and not live_workers(queue):
        raise NoWorkerError(
            f"No worker is running, so the scale test would wait. Start one with: {worker_command(queue)}"
        )
    plan = plan_run(scale)
    if token and (first := launched_before(queue, "run", token, plan.run_id, _run_recorded)):
        return first  # this form was submitted already: its run, not a second one
    try:
        _create_and_enqueue(queue, plan, scale)
    except BaseException:
        release_submission(queue, "run", token)
        raise
    return plan.run_id


def _run_recorded(run_id: str) -> bool:
    return get_runtime().source.get_run(run_id) is not None


def _create_and_enqueue(queue: Queue, plan: Plan, scale: ScaleInput) -> None:
    sink = get_runtime().sink
    sink.write([run_created(plan, scale)])
    try:
        queue.huey.enqueue(queue.tasks["run_scale"].s(plan.run_id, id=f"run:{plan.run_id}"))
    except Exception as error:  # noqa: BLE001 - undo, then report plainly
        sink.write([r.RunDiscarded(plan.run_id)])
        raise SubmitError(f"The job queue failed ({type(error).__name__}); the scale test was not submitted.") from None


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


def battle_done(queue: Queue, run_id: str, battle_id: str) -> None:
    """Book-keeping after a battle of a run reached a terminal state."""
    done = queue.coord.run_done_add(run_id, [battle_id])
    check_budget(queue, run_id)
    total = queue.coord.run_total(run_id)
    if total is not None and done >= total:
        maybe_summarise(queue, run_id)


def maybe_summarise(queue: Queue, run_id: str) -> bool:
    """Enqueue the run's summary if nobody has: the claim makes it happen once."""
    if not queue.coord.claim(f"summary:{run_id}", CLAIM_TTL_S):
        return False
    queue.huey.enqueue(queue.tasks["summarise_run"].s(run_id, id=f"summary:{run_id}"))
    return True


def check_budget(queue: Queue, run_id: str) -> None:
    source = get_runtime().source
    budget = _run(run_id).budget_usd
    if budget is None:
        return
    cost = source.run_cost(run_id)
    if cost >= budget and queue.coord.claim(f"budget:{run_id}", CLAIM_TTL_S):
        log.warning("Run %s reached its budget ($%.4f of $%.4f): stopping the rest", run_id, cost, budget)
        stop_run(run_id, f"budget of ${budget:g} reached", status="stopping", queue=queue)


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


def cancel_run(run_id: str) -> str:
    queue = get_queue()
    _check_reachable(queue)
    status = _run(run_id).status
    if status in ("finished", "cancelled", "stopped"):
        return f"already {status}"
    stop_run(run_id, "cancelled by request", queue=queue)
    return "cancelling"


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
    report = build_report(runtime.store, runtime.gateway, run_id, writer)
    reason = queue.coord.run_cancel_reason(run_id)
    final = "finished" if not reason else ("stopped" if reason.startswith("budget") else "cancelled")
    runtime.sink.write([report, r.RunStatusChanged(run_id, final, error=reason)])
    return final


def rescue_summaries(queue: Queue) -> list[str]:
    """Maintenance: runs that are complete but whose summary never got claimed."""
    rescued = []
    for run_id in queue.coord.runs():
        total = queue.coord.run_total(run_id)
        if total is not None and queue.coord.run_done_add(run_id, []) >= total and maybe_summarise(queue, run_id):
            rescued.append(run_id)
    return rescued
