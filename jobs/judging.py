"""Re-judging a finished run on the queue: the queue's side of asking for one, and the task that does it.

The task's job id is ``rejudge:<judge run id>``, and the judge run id is derived from the
run, the judge model and the rubric, so asking twice for the same judge resumes it
rather than paying for its calls again.

A running re-judge is cancelled through a flag in the coordination store (Redis in queue
mode), which it reads before every judge call; what it has judged stays, and asking again
for the same judge finishes it. While it runs it holds a lease there, renewed in the
background: a second job for the same judge run (asked twice, or a Huey retry) finds the
lease taken and leaves the work to the first, so no judge call is paid for twice.

Huey does not acknowledge tasks, so a worker killed mid-judging takes its job with it.
Every re-judge asked for is tracked in the coordination store until it ends, touched while
its lease is renewed; the workers' reaper re-enqueues one that nobody holds, that is not
waiting in the queue and that has not been touched for a lease period, and it resumes
where its committed verdicts stop.

Re-judging reads transcripts from the DuckDB file, so only workers next to it run it: a
worker that sends its records through the stream hands the job back to the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from jobs.coord import Coordinator
from jobs.queue import REJUDGE_TASK, Queue, get_queue, register_bodies
from sparring import records as r
from sparring.runtime import get_runtime
from sparring.usecases import RejudgeRunningError, SubmitError, UnknownJudgeRunError
from sparring.usecases import cancel_rejudge as cancel_rejudge
from sparring.usecases import request_rejudge as submit_rejudge

if TYPE_CHECKING:
    from sparring.judging import RejudgeResult

log = logging.getLogger(__name__)

TASK = REJUDGE_TASK
# How long a stream-sink worker waits before handing a re-judge back (so that it does not
# spin on a job it cannot run while a worker next to the database is busy).
HAND_BACK_DELAY_S = 1.0


__all__ = ["RejudgeRunningError", "UnknownJudgeRunError", "cancel_rejudge", "stalled", "submit_rejudge"]


def _flag(judge_run_id: str) -> str:
    """The cancel flag's name, beside the battles' flags (judge run ids are not battle ids)."""
    return f"rejudge-{judge_run_id}"


def enqueue_rejudge(queue: Queue, record: r.JudgeRunCreated) -> None:
    """Record the judge run as asked for and queue its job (the queue's side of ``request_rejudge``)."""
    _ask(queue.coord, record)
    try:
        _enqueue(queue, record.judge_run_id)
    except Exception as error:  # noqa: BLE001 - say so plainly; the judge run can be asked for again
        _end(queue.coord, record.judge_run_id, "failed", "the job queue failed; ask again")
        raise SubmitError(f"The job queue failed ({type(error).__name__}); the re-judge was not queued.") from None


def _enqueue(queue: Queue, judge_run_id: str, delay: float | None = None) -> None:
    queue.huey.enqueue(queue.tasks[TASK].s(judge_run_id, id=f"rejudge:{judge_run_id}", delay=delay))


def cancel_rejudge_job(queue: Queue, judge_run_id: str, status: str) -> str:
    """Cancel a queued or running (``status``) re-judge on the queue; return what happened."""
    from sparring import judging

    queue.coord.request_cancel(_flag(judge_run_id))  # a worker that has just started it sees this
    held = queue.coord.lease_owner(_flag(judge_run_id)) is not None
    if held and status == "running":
        return "cancelling"
    if not held and status == "queued":  # no job or thread has started it: it never will
        queue.huey.revoke_by_id(f"rejudge:{judge_run_id}", revoke_once=True)
    # Queued, or "running" with nobody holding it (its worker died): nobody will write the end.
    _end(queue.coord, judge_run_id, "cancelled", judging.CANCELLED_NOTE)
    return "cancelled"


def stalled(judge_run_ids: list[str]) -> set[str]:
    """Of these running judge runs, those that no job holds any more (their worker died)."""
    if not judge_run_ids:
        return set()
    try:
        coord = get_queue().coord
        return {j for j in judge_run_ids if coord.lease_owner(_flag(j)) is None}
    except Exception:  # noqa: BLE001 - the queue is unreachable: say nothing rather than guess
        return set()


def rejudge_run(judge_run_id: str, task: Any = None) -> str:
    """The task body: judge the run again in this worker; return the judge run's status."""
    if not r.is_id(judge_run_id):
        log.error("Refused a re-judge job with a malformed id %r", str(judge_run_id)[:40])
        return "invalid"
    queue = get_queue()
    if queue.settings.record_sink == "stream":
        log.info("Re-judge %s needs the database file; handing it back for a worker next to it", judge_run_id)
        _enqueue(queue, judge_run_id, delay=HAND_BACK_DELAY_S)
        return "handed back"
    with _exclusive(queue.coord, judge_run_id, queue.settings.lease_ttl_s) as mine:
        if not mine:
            log.info("Re-judge %s is already running in another job; this one leaves it to that one", judge_run_id)
            return "running elsewhere"
        try:
            status = _rejudge(judge_run_id, queue.coord).status
        except Exception:
            if (getattr(task, "retries", 0) or 0) <= 0:  # Huey tries no more: say so, stop tracking it
                log.exception("Re-judge %s failed for good", judge_run_id)
                _end(queue.coord, judge_run_id, "failed", "stopped by an internal error; ask again")
            raise
        # It ended (finished, failed or cancelled); dropped under the lease, so that asking
        # again, which waits for the lease, is tracked afresh.
        queue.coord.drop_rejudge(judge_run_id)
    return status


def rejudge_in_foreground(record: r.JudgeRunCreated, *, threads: int) -> RejudgeResult:
    """Record the judge run and judge it in this thread (the command line), under its lease,
    so that it can be cancelled from elsewhere and never runs twice at once."""
    runtime = get_runtime()
    from sparring import judging

    coord = get_queue().coord
    _ask(coord, record)
    with _exclusive(coord, record.judge_run_id, runtime.settings.lease_ttl_s) as mine:
        if not mine:  # a job took it in between
            raise _running(record.judge_run_id)
        try:
            result = _rejudge(record.judge_run_id, coord, threads)
        except KeyboardInterrupt:  # Ctrl-C: the person asking wants it stopped, not resumed elsewhere
            _end(coord, record.judge_run_id, "cancelled", judging.CANCELLED_NOTE)
            raise
        coord.drop_rejudge(record.judge_run_id)
    return result


def requeue_stalled(queue: Queue) -> list[str]:
    """Re-enqueue the re-judges whose worker died; return their judge run ids.

    Safe on several workers at once: a short claim per judge run makes it happen once, and
    a second job would find the lease taken anyway. A stream-sink worker leaves this to a
    worker next to the database: re-judging reads the file.
    """
    if queue.settings.record_sink == "stream":
        return []
    coord, ttl = queue.coord, queue.settings.lease_ttl_s
    now = time.time()
    stale = [j for j, touched in coord.rejudges().items() if now - touched > ttl]
    if not stale:
        return []
    from sparring import judging

    pending = queue.pending_ids()
    store = get_runtime().store
    requeued = []
    for judge_run_id in stale:
        if f"rejudge:{judge_run_id}" in pending or coord.lease_owner(_flag(judge_run_id)) is not None:
            continue
        if not coord.claim(f"requeue:rejudge:{judge_run_id}", ttl):
            continue
        status = judging.judge_run_status(store, judge_run_id)
        if status is None or status in judging.JUDGE_RUN_ENDED:
            coord.drop_rejudge(judge_run_id)
            continue
        log.warning("Re-judge %s lost its worker (lease expired): re-enqueuing it", judge_run_id)
        get_runtime().sink.write([r.JudgeRunStatusChanged(judge_run_id, "queued")])
        coord.touch_rejudge(judge_run_id)
        _enqueue(queue, judge_run_id)
        requeued.append(judge_run_id)
    return requeued


def _rejudge(judge_run_id: str, coord: Coordinator, threads: int | None = None) -> RejudgeResult:
    runtime = get_runtime()
    from sparring import judging

    def cancelled() -> bool:
        try:
            return coord.cancel_requested(_flag(judge_run_id))
        except Exception:  # a coordination blip must not stop the judging
            log.warning("Re-judge %s: could not read its cancel flag", judge_run_id, exc_info=True)
            return False

    return judging.rejudge(
        judge_run_id,
        store=runtime.store,
        sink=runtime.sink,
        gateway=runtime.gateway,
        threads=threads or judging.REJUDGE_THREADS,
        should_stop=cancelled,
    )


def run_here(data: dict[str, Any]) -> str:
    """No worker: record the judge run and judge it in a background thread of this process."""
    runtime = get_runtime()
    from sparring import judging  # statistics (scipy): loaded only when a re-judge is asked for

    record = judging.plan_rejudge(runtime.store, data)
    _ask(get_queue().coord, record)
    thread = threading.Thread(target=_run_logged, args=(record.judge_run_id,), name="rejudge-here", daemon=True)
    thread.start()
    return record.judge_run_id


def _run_logged(judge_run_id: str) -> None:
    try:
        rejudge_run(judge_run_id)  # no retries left: a failure is recorded there
    except Exception:
        log.exception("Re-judge %s stopped", judge_run_id)


def _ask(coord: Coordinator, record: r.JudgeRunCreated) -> None:
    """Record the judge run as queued (again, if it existed: asked again after a cancel or a
    failure, which resumes it) and track it until it ends."""
    _refuse_if_running(coord, record.judge_run_id)
    coord.clear_cancel(_flag(record.judge_run_id))
    get_runtime().sink.write([record, r.JudgeRunStatusChanged(record.judge_run_id, "queued")])
    coord.touch_rejudge(record.judge_run_id)


def _end(coord: Coordinator, judge_run_id: str, status: str, error: str) -> None:
    """End a judge run that no job will end itself, and stop tracking it."""
    get_runtime().sink.write([r.JudgeRunStatusChanged(judge_run_id, status, error=error)])
    coord.drop_rejudge(judge_run_id)


def _refuse_if_running(coord: Coordinator, judge_run_id: str) -> None:
    if coord.lease_owner(_flag(judge_run_id)) is not None:
        raise _running(judge_run_id)


def _running(judge_run_id: str) -> RejudgeRunningError:
    return RejudgeRunningError(
        f"Re-judge {judge_run_id[:8]} is already running with this judge: wait for it to finish, or cancel it "
        "and ask again."
    )


@contextmanager
def _exclusive(coord: Coordinator, judge_run_id: str, ttl_s: float) -> Iterator[bool]:
    """Hold the judge run's lease while the block runs (renewed in the background); yield
    whether this job got it."""
    name = _flag(judge_run_id)
    owner = f"{socket.gethostname()}-{os.getpid()}-{r.new_id()[:6]}"
    if not coord.acquire_lease(name, owner, ttl_s):
        yield False
        return
    done = threading.Event()

    def keep() -> None:
        while not done.wait(max(0.5, ttl_s / 3)):
            try:
                coord.renew_lease(name, owner, ttl_s)
                coord.touch_rejudge(judge_run_id)
            except Exception:  # the lease then expires on its own; the next renewal may work
                log.warning("Re-judge %s: could not renew its lease", judge_run_id, exc_info=True)

    keeper = threading.Thread(target=keep, name=f"rejudge-lease-{judge_run_id[:8]}", daemon=True)
    keeper.start()
    try:
        yield True
    finally:
        done.set()
        keeper.join()
        try:
            coord.release_lease(name, owner)
        except Exception:  # noqa: BLE001 - it expires on its own
            log.warning("Re-judge %s: could not release its lease; it will expire", judge_run_id)


register_bodies({TASK: rejudge_run})
