"""Submitting, cancelling and retrying battles: what the pages and the CLI call.

Order of operations on submit: check the queue answers, commit the battle row, mark it
active, enqueue. If the queue fails after the row was committed, the row is discarded,
so a failed submit leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jobs.queue import Queue, get_queue
from sparring import records as r
from sparring.runtime import get_runtime
from sparring.validation import BattleInput, validate_battle

log = logging.getLogger(__name__)

RETRYABLE = ("failed", "timed_out", "cancelled", "undecided")  # undecided: the judge may answer this time


class SubmitError(RuntimeError):
    """The queue cannot take the job right now; the message says what to do."""


class NoWorkerError(SubmitError):
    """Queue mode, but no worker has a fresh heartbeat."""


class UnknownBattleError(LookupError):
    pass


def worker_command(queue: Queue | None = None) -> str:
    queue = queue or get_queue()
    if queue.settings.redis_url:
        return "REDIS_URL=<same as the app> python -m jobs.worker --workers 4   (or: make worker)"
    return "make run   (the app runs battles itself), or: python -m jobs.worker --workers 4"


def live_workers(queue: Queue | None = None) -> list[dict[str, Any]]:
    queue = queue or get_queue()
    now = time.time()
    return [b for b in queue.coord.heartbeats() if now - float(b.get("beat_at", 0)) < queue.settings.heartbeat_ttl_s]


def _check_reachable(queue: Queue) -> None:
    try:
        queue.coord.ping()
    except Exception as error:  # noqa: BLE001 - any transport error means "not reachable"
        where = _safe_url(queue.settings.redis_url) if queue.settings.redis_url else str(queue.settings.queue_path)
        raise SubmitError(
            f"The job queue at {where} is not reachable ({type(error).__name__}). "
            "Nothing was submitted; check that Redis is running and try again."
        ) from None


def _safe_url(url: str | None) -> str:
    if not url:
        return ""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def submit_battle(
    data: dict[str, Any] | BattleInput,
    *,
    require_worker: bool = True,
    battle_id: str | None = None,
) -> str:
    """Validate, record and enqueue one battle; return its id.

    ``require_worker``: in queue mode, refuse (``NoWorkerError``) when no worker is alive,
    rather than let the job wait silently.
    """
    battle = data if isinstance(data, BattleInput) else validate_battle(data)
    queue = get_queue()
    _check_reachable(queue)
    if require_worker and not live_workers(queue):
        raise NoWorkerError(
            "No worker is running (no heartbeat in the last "
            f"{queue.settings.heartbeat_ttl_s:.0f} s), so the battle would wait. Start one with: "
            f"{worker_command(queue)}"
        )
    battle_id = battle_id or r.new_id()
    sink = get_runtime().sink
    sink.write([r.BattleCreated(battle_id, battle.to_spec())])
    try:
        queue.coord.touch_active(battle_id)
        queue.enqueue_battle(battle_id)
    except Exception as error:  # noqa: BLE001 - undo, then report plainly
        sink.write([r.BattleDiscarded(battle_id, f"enqueue failed: {type(error).__name__}")])
        try:
            queue.coord.drop_active(battle_id)
        except Exception:  # noqa: BLE001 - the reaper ignores battles missing from the store
            log.warning("Could not drop %s from the active set", battle_id)
        raise SubmitError(
            f"The job queue failed while submitting ({type(error).__name__}); nothing was submitted."
        ) from None
    return battle_id


def cancel_battle(battle_id: str) -> str:
    """Cancel a battle: dequeue it if it waits, flag it if it runs. Returns what happened."""
    runtime = get_runtime()
    view = runtime.source.get_battle(battle_id) if r.is_id(battle_id) else None
    if view is None:
        raise UnknownBattleError(f"unknown battle id {battle_id!r}")
    if view.finished:
        return f"already finished ({view.outcome})"
    queue = get_queue()
    _check_reachable(queue)
    queue.coord.request_cancel(battle_id)  # a worker that has just dequeued it sees this
    if view.status == "queued":
        queue.huey.revoke_by_id(battle_id, revoke_once=True)
        runtime.sink.write([r.BattleFinished(battle_id, "cancelled", error="cancelled before it started")])
        queue.coord.drop_active(battle_id)
        return "cancelled"
    return "cancelling"


def retry_battle(battle_id: str) -> str:
    """Re-enqueue a failed, timed-out, cancelled or undecided battle; it resumes where it stopped."""
    runtime = get_runtime()
    view = runtime.source.get_battle(battle_id) if r.is_id(battle_id) else None
    if view is None:
        raise UnknownBattleError(f"unknown battle id {battle_id!r}")
    if not view.finished or view.outcome not in RETRYABLE:
        state = view.outcome or view.status
        raise SubmitError(
            f"Only failed, timed-out, cancelled or undecided battles can be retried; this one is {state}."
        )
    queue = get_queue()
    _check_reachable(queue)
    stopped_because = queue.coord.run_cancel_reason(view.run_id) if view.run_id else None
    if stopped_because:  # its run's flag would cancel it again at once
        raise SubmitError(
            f"Battle {battle_id[:8]} belongs to a scale test that was stopped ({stopped_because}), so it "
            "cannot be retried on its own; launch the scale test again instead."
        )
    queue.coord.clear_cancel(battle_id)
    if view.run_id:
        from jobs.runs import reopen_for_retry

        reopen_for_retry(view.run_id, battle_id)
    runtime.sink.write([r.BattleRequeued(battle_id, "retry requested")])
    queue.coord.touch_active(battle_id)
    queue.enqueue_battle(battle_id)
    return "requeued"
