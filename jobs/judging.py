"""Re-judging a finished run on the queue: submit a judge run, and the task that does it.

The task's job id is ``rejudge:<judge run id>``, and the judge run id is derived from the
run, the judge model and the rubric, so asking twice for the same judge resumes it
rather than paying for its calls again.

A running re-judge is cancelled through a flag in the coordination store (Redis in queue
mode), which it reads before every judge call; what it has judged stays, and asking again
for the same judge finishes it. While it runs it holds a lease there, renewed in the
background: a second job for the same judge run (asked twice, or a Huey retry) finds the
lease taken and leaves the work to the first, so no judge call is paid for twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from jobs.coord import Coordinator
from jobs.queue import get_queue
from jobs.submit import NoWorkerError, SubmitError, _check_reachable, live_workers, worker_command
from sparring import records as r
from sparring.runtime import get_runtime

if TYPE_CHECKING:
    from sparring.judging import RejudgeResult

log = logging.getLogger(__name__)

TASK = "rejudge_run"


class UnknownJudgeRunError(LookupError):
    pass


class RejudgeRunningError(SubmitError):
    """The same judge is judging the same run right now."""


def _flag(judge_run_id: str) -> str:
    """The cancel flag's name, beside the battles' flags (judge run ids are not battle ids)."""
    return f"rejudge-{judge_run_id}"


def submit_rejudge(data: dict[str, Any], *, require_worker: bool = True) -> str:
    """Validate, record and queue a re-judge of a finished run; return the judge run id.

    Raises ``InvalidInput`` for bad input (nothing written), ``NoWorkerError`` when no
    worker would pick it up, ``RejudgeRunningError`` when the same judge is judging the run
    right now, ``SubmitError`` when the queue is unreachable.
    """
    runtime = get_runtime()
    from sparring import judging  # statistics (scipy): loaded only when a re-judge is asked for

    record = judging.plan_rejudge(runtime.store, data)
    queue = get_queue()
    _check_reachable(queue)
    if require_worker and not live_workers(queue):
        raise NoWorkerError(
            f"No worker is running, so the re-judge would wait. Start one with: {worker_command(queue)}"
        )
    _refuse_if_running(queue.coord, record.judge_run_id)
    queue.coord.clear_cancel(_flag(record.judge_run_id))  # asking again after a cancel resumes it
    runtime.sink.write(_asked(record))
    try:
        queue.huey.enqueue(queue.tasks[TASK].s(record.judge_run_id, id=f"rejudge:{record.judge_run_id}"))
    except Exception as error:  # noqa: BLE001 - say so plainly; the judge run can be asked for again
        runtime.sink.write(
            [r.JudgeRunStatusChanged(record.judge_run_id, "failed", error="the job queue failed; ask again")]
        )
        raise SubmitError(f"The job queue failed ({type(error).__name__}); the re-judge was not queued.") from None
    return record.judge_run_id


def cancel_rejudge(judge_run_id: str) -> str:
    """Cancel a queued or running re-judge. Returns what happened, in a few words.

    Raises ``UnknownJudgeRunError`` for an unknown id, ``SubmitError`` when the queue is
    unreachable (nothing is changed then).
    """
    runtime = get_runtime()
    from sparring import judging

    status = judging.judge_run_status(runtime.store, judge_run_id) if r.is_id(judge_run_id) else None
    if status is None:
        raise UnknownJudgeRunError(f"unknown judge run id {judge_run_id!r}")
    if status in judging.JUDGE_RUN_ENDED:
        return f"already {status}"
    queue = get_queue()
    _check_reachable(queue)
    queue.coord.request_cancel(_flag(judge_run_id))  # a worker that has just started it sees this
    held = queue.coord.lease_owner(_flag(judge_run_id)) is not None
    if held and status == "running":
        return "cancelling"
    if not held and status == "queued":  # no job or thread has started it: it never will
        queue.huey.revoke_by_id(f"rejudge:{judge_run_id}", revoke_once=True)
    # Queued, or "running" with nobody holding it (its worker died): nobody will write the end.
    runtime.sink.write([r.JudgeRunStatusChanged(judge_run_id, "cancelled", error=judging.CANCELLED_NOTE)])
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


def rejudge_run(judge_run_id: str) -> str:
    """The task body: judge the run again in this worker; return the judge run's status."""
    coord = get_queue().coord
    with _exclusive(coord, judge_run_id, get_runtime().settings.lease_ttl_s) as mine:
        if not mine:
            log.info("Re-judge %s is already running in another job; this one leaves it to that one", judge_run_id)
            return "running elsewhere"
        return _rejudge(judge_run_id, coord).status


def rejudge_in_foreground(record: r.JudgeRunCreated, *, threads: int) -> RejudgeResult:
    """Record the judge run and judge it in this thread (the command line), under its lease,
    so that it can be cancelled from elsewhere and never runs twice at once."""
    runtime = get_runtime()
    coord = get_queue().coord
    _refuse_if_running(coord, record.judge_run_id)
    coord.clear_cancel(_flag(record.judge_run_id))
    runtime.sink.write(_asked(record))
    with _exclusive(coord, record.judge_run_id, runtime.settings.lease_ttl_s) as mine:
        if not mine:  # a job took it in between
            raise _running(record.judge_run_id)
        return _rejudge(record.judge_run_id, coord, threads)


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
    coord = get_queue().coord
    _refuse_if_running(coord, record.judge_run_id)
    coord.clear_cancel(_flag(record.judge_run_id))
    runtime.sink.write(_asked(record))
    thread = threading.Thread(target=_run_logged, args=(record.judge_run_id,), name="rejudge-here", daemon=True)
    thread.start()
    return record.judge_run_id


def _run_logged(judge_run_id: str) -> None:
    try:
        rejudge_run(judge_run_id)
    except Exception:
        log.exception("Re-judge %s stopped", judge_run_id)
        get_runtime().sink.write(
            [r.JudgeRunStatusChanged(judge_run_id, "failed", error="stopped by an internal error; ask again")]
        )


def _asked(record: r.JudgeRunCreated) -> list[r.Record]:
    """The judge run, and ``queued`` again if it existed (asked again after a cancel or a failure)."""
    return [record, r.JudgeRunStatusChanged(record.judge_run_id, "queued")]


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
