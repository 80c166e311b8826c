"""Submitting, cancelling and retrying battles: what the pages and the CLI call.

Order of operations on submit: check the queue answers, claim the form's token, commit the
battle row, mark it active, enqueue. If the queue fails after the row was committed, the row
is discarded and the token released, so a failed submit leaves nothing behind.

A form carries a token minted when it is drawn, and a submit claims it atomically in the
coordinator (Redis ``SET NX``, or one SQLite transaction), which every process on the queue
shares: a second submit of the same form (a double click, a rerun racing the first, another
app process) gets the first battle back instead of starting another one.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from jobs.queue import Queue, get_queue
from sparring import records as r
from sparring.runtime import get_runtime
from sparring.store import StoreBusy
from sparring.validation import BattleInput, validate_battle

log = logging.getLogger(__name__)

RETRYABLE = ("failed", "timed_out", "cancelled", "undecided")  # undecided: the judge may answer this time
# Long enough for any double click, retry or slow rerun of one form; a form left open for a
# day and submitted again starts a new battle.
SUBMIT_TOKEN_TTL_S = 24 * 3600
_TOKEN = re.compile(r"^[0-9A-Za-z_-]{8,64}$")
# A later submit of a form waits (at most this long) for the first one's record, so that what
# it returns can be shown at once; the first one is waiting for the database file meanwhile.
FIRST_SUBMIT_WAIT_S = 30.0


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


def new_submit_token() -> str:
    """A token for one drawn form: however often it is submitted, it launches one battle (or run)."""
    return secrets.token_urlsafe(12)


def claim_submission(queue: Queue, kind: str, token: str, new_id: str) -> str:
    """The id the form's ``token`` launched: ``new_id`` when this submit is the first to carry it."""
    if not _TOKEN.match(token):
        raise ValueError(f"not a submit token: {token!r:.40}")
    return queue.coord.claim_value(f"submit:{kind}:{token}", new_id, SUBMIT_TOKEN_TTL_S)


def launched_before(queue: Queue, kind: str, token: str, new_id: str, recorded: Callable[[str], bool]) -> str | None:
    """None when this submit is the first with ``token`` (it launches ``new_id``); else the first one's id.

    That id is returned once ``recorded`` sees it (or after ``FIRST_SUBMIT_WAIT_S``). Should the
    first submit fail meanwhile, it releases the token and this one claims it and launches.
    """
    deadline = time.monotonic() + FIRST_SUBMIT_WAIT_S
    while True:
        first = claim_submission(queue, kind, token, new_id)
        if first == new_id:
            return None
        if _seen(recorded, first) or time.monotonic() >= deadline:
            return first
        time.sleep(0.05)


def _seen(recorded: Callable[[str], bool], launched_id: str) -> bool:
    try:
        return recorded(launched_id)
    except StoreBusy:  # being written right now: look again
        return False


def release_submission(queue: Queue, kind: str, token: str | None) -> None:
    """A submit failed and left nothing behind: the same form may be submitted again."""
    if token:
        queue.coord.unclaim(f"submit:{kind}:{token}")


def submit_battle(
    data: dict[str, Any] | BattleInput,
    *,
    require_worker: bool = True,
    battle_id: str | None = None,
    token: str | None = None,
) -> str:
    """Validate, record and enqueue one battle; return its id.

    ``require_worker``: in queue mode, refuse (``NoWorkerError``) when no worker is alive,
    rather than let the job wait silently. ``token``: the form's submit token; a submit whose
    token was claimed already returns that battle's id and creates nothing.
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
    if token and (first := launched_before(queue, "battle", token, battle_id, _battle_recorded)):
        return first  # this form was submitted already: its battle, not a second one
    try:
        _create_and_enqueue(queue, battle, battle_id)
    except BaseException:
        release_submission(queue, "battle", token)
        raise
    return battle_id


def _battle_recorded(battle_id: str) -> bool:
    return get_runtime().source.get_battle(battle_id) is not None


def _create_and_enqueue(queue: Queue, battle: BattleInput, battle_id: str) -> None:
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
        from jobs.ledger import reopen_for_retry

        reopen_for_retry(view.run_id, battle_id)
    runtime.sink.write([r.BattleRequeued(battle_id, "retry requested")])
    queue.coord.touch_active(battle_id)
    queue.enqueue_battle(battle_id)
    return "requeued"
