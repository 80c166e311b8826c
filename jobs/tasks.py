"""Task bodies, registered with ``jobs.queue`` when this module is imported; they take ids only."""

from __future__ import annotations

import logging
import time
from typing import Any

from jobs import queue as queues
from jobs import recovery, runner, runs
from sparring import records as r
from sparring import usecases
from sparring.engine import Abandoned, UnknownBattle
from sparring.runtime import get_runtime

log = logging.getLogger(__name__)


class JobControl:
    """The engine's view of cancel flags (the battle's and its run's) and of the lease."""

    # The flags are read at most this often per battle: a model call usually takes longer
    # (so every call still checks), but back-to-back fast calls share one Redis round trip.
    CHECK_EVERY_S = 0.5

    def __init__(self, worker: runner.WorkerRuntime, lease: runner.Lease, run_id: str | None) -> None:
        self.worker = worker
        self.lease = lease
        self.run_id = run_id
        self._checked_at = -1e9
        self._stop = False

    def cancel_requested(self) -> bool:
        if self._stop:
            return True
        now = time.monotonic()
        if now - self._checked_at < self.CHECK_EVERY_S:
            return False
        try:
            self._stop = self.worker.queue.coord.stop_requested(self.lease.battle_id, self.run_id)
        except Exception:  # noqa: BLE001 - an outage must not fail the battle; check again next call
            log.warning("Could not read the cancel flags of %s", self.lease.battle_id)
            return False
        self._checked_at = now
        return self._stop

    def still_owner(self) -> bool:
        return not self.lease.lost


def run_battle(battle_id: str, task: Any = None) -> str:
    """Run or resume one battle; a second copy of the job steps aside."""
    if not r.is_id(battle_id):
        log.error("Refused a battle job with a malformed id %r", str(battle_id)[:40])
        return "invalid"
    worker = runner.current()
    queue = worker.queue
    lease = worker.hold_lease(battle_id)
    if lease is None:
        log.info("Battle %s is already running elsewhere; skipping this copy", battle_id)
        return "skipped"
    runtime = get_runtime()
    try:
        # One read of the battle, under its lease: what decides whether it runs is what it resumes
        # from. (Two reads per battle start took turns with the commits of 200 battles starting.)
        transcript = runtime.source.load_transcript(battle_id)
        if transcript is None:
            raise UnknownBattle(battle_id)
        view = transcript.battle
        run_reason = queue.coord.run_cancel_reason(view.run_id) if view.run_id else None
        if run_reason and not view.finished:
            runtime.sink.write([r.BattleFinished(battle_id, "cancelled", error=run_reason)])
            outcome = "cancelled"
        elif (
            view.status == "queued"
            and view.run_id
            and view.cell_key
            and runs.cell_has_stopped(queue, view.run_id, view.cell_key, battle_id)
        ):
            outcome = "cancelled"  # its cell's rule answered already: it is not run (nor paid for)
        else:
            control = JobControl(worker, lease, view.run_id)
            outcome = usecases.run_inline(
                battle_id, control=control, worker=worker.worker_id, transcript=transcript
            ).outcome
    except UnknownBattle:
        log.error("Job for unknown battle %s dropped", battle_id)
        queue.coord.drop_active(battle_id)
        return "unknown"
    except Abandoned:
        return "abandoned"
    except Exception as error:
        retries_left = getattr(task, "retries", 0) or 0
        if retries_left <= 0:
            log.exception("Battle %s failed for good", battle_id)
            runtime.sink.write(
                [r.BattleFinished(battle_id, "failed", error=f"internal error: {error}"[:500], error_kind="internal")]
            )
            queue.coord.drop_active(battle_id)
            _after(queue, runtime.source, battle_id)
        raise
    finally:
        worker.release_lease(lease)
    run_id, cell_key = view.run_id, view.cell_key

    def book_keeping() -> None:
        queue.coord.drop_active(battle_id)
        queue.coord.clear_cancel(battle_id)
        if run_id:
            runs.battle_done(queue, run_id, battle_id, cell_key)

    # The battle is committed; what is left is idempotent and lives in Redis, which may be
    # restarting: wait for it rather than lose the run's count (the reaper reconciles too).
    _until_done(book_keeping, f"book-keeping of battle {battle_id}")
    return outcome


def _until_done(step: Any, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        try:
            step()
            return
        except Exception:
            if time.monotonic() > deadline:
                log.exception("Giving up on %s; the reaper will reconcile it", what)
                return
            log.warning("%s failed; retrying in %.1f s", what, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _after(queue: Any, source: Any, battle_id: str) -> None:
    view = source.get_battle(battle_id)
    if view is not None and view.run_id:
        runs.battle_done(queue, view.run_id, battle_id, view.cell_key)


def run_scale(run_id: str) -> int:
    """Fan a scale test out into battles."""
    if not r.is_id(run_id):
        log.error("Refused a fan-out job with a malformed run id %r", str(run_id)[:40])
        return 0
    return runs.fan_out(run_id)


def summarise_run(run_id: str) -> str:
    """Aggregate a finished run and write its report (claimed once per run)."""
    if not r.is_id(run_id):
        log.error("Refused a summary job with a malformed run id %r", str(run_id)[:40])
        return "invalid"
    return runs.summarise(run_id)


def maintenance() -> None:
    """Retention and rescue; safe to run on several consumers at once (idempotent steps)."""
    queue = runner.current().queue
    if not queue.settings.redis_url:
        queue.huey.storage.flush_results()  # SQLite results never expire on their own
    source = get_runtime().source
    for battle_id in list(queue.coord.active()):
        view = source.get_battle(battle_id)
        if view is None or view.finished:
            queue.coord.drop_active(battle_id)
    runs.rescue_summaries(queue)
    recovery.recover(queue)  # a backstop for state lost without the mark (idempotent)


queues.register_bodies(
    {
        queues.BATTLE_TASK: run_battle,
        queues.SCALE_TASK: run_scale,
        queues.SUMMARY_TASK: summarise_run,
        queues.MAINTENANCE_TASK: maintenance,
    }
)
