"""Rebuild the coordination state from the store after the queue lost it.

A Redis restarted without persistence (or flushed, or one whose keys were evicted) loses
the queued jobs, the active set, the runs' totals and done sets, their cancel flags and
the tracked re-judges. The store still knows every battle, run and judge run that has not
ended, so the first reaper to notice (the coordinator's state mark is missing) puts that
state back:

- every unfinished battle and re-judge is tracked again, touched *now*: the reaper then
  re-enqueues, one lease period later, those that no worker holds and no job waits for,
  while battles still running keep their leases (their workers take them again) and are
  left alone;
- every running run gets its total back (and its stop reason, if it was being stopped), so
  that ``reconcile_runs`` counts its finished battles and summarises it once;
- a run whose fan-out job was lost is fanned out again (idempotent).

Several workers may notice at once: a claim lets one of them do it. Maintenance runs it
too, as a backstop for state lost with the mark still there; every step is idempotent.
"""

from __future__ import annotations

import logging

from jobs.queue import Queue
from sparring.runtime import get_runtime
from sparring.store import StoreMissing, upkeep
from sparring.store.upkeep import Unfinished

log = logging.getLogger(__name__)


def recover_if_lost(queue: Queue) -> bool:
    """Rebuild the coordination state if it was lost (its mark is missing); say whether it was.

    One worker does it (a claim); the mark is set only once it is done, so a recovery cut
    short (the store stayed locked, the worker died) is tried again at the next pass.
    """
    coord = queue.coord
    if queue.settings.record_sink == "stream" or coord.state_marked():
        return False
    if not coord.claim("recovery", queue.settings.lease_ttl_s):
        return False
    log.info("The queue's state mark is missing (a new deployment, or Redis lost its data): checking the store")
    try:
        recover(queue, why="its state mark was missing")
        coord.mark_state()
    finally:
        coord.unclaim("recovery")
    return True


def recover(queue: Queue, why: str = "found by maintenance") -> None:
    """Track again what the store says has not ended (idempotent; see the module's note).

    A stream-sink worker cannot read the store: a worker next to the database does this.
    """
    if queue.settings.record_sink == "stream":
        return
    found = _unfinished()
    coord = queue.coord
    active = coord.active()
    untracked = [b for b in found.battles if b not in active]
    if untracked:
        log.warning("The queue lost track of %d unfinished battles (%s): tracking them again", len(untracked), why)
        coord.touch_active_many(untracked)
    pending = queue.pending_ids() if any(status == "queued" for _, status, _, _ in found.runs) else set()
    for run_id, status, error, total in found.runs:
        if status == "queued":
            if f"run:{run_id}" not in pending:
                log.warning("The fan-out of run %s was lost: queuing it again", run_id)
                queue.huey.enqueue(queue.tasks["run_scale"].s(run_id, id=f"run:{run_id}"))
            continue
        if coord.run_total(run_id) is None:
            log.warning("The queue lost the state of run %s: restoring it", run_id)
            coord.set_run_total(run_id, total)
        if status in ("cancelling", "stopping") and not coord.run_cancel_reason(run_id):
            coord.request_run_cancel(run_id, error or "cancelled by request")
    tracked = coord.rejudges()
    for judge_run_id in found.judge_runs:
        if judge_run_id not in tracked:
            coord.touch_rejudge(judge_run_id)


def _unfinished() -> Unfinished:
    try:
        return upkeep.unfinished(get_runtime().store)
    except StoreMissing:  # a new deployment: nothing was recorded, so nothing is lost
        return Unfinished([], [], [])
