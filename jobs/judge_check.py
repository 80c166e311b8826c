"""The judge check for the pages: run by a consumer, so the app process never imports litellm.

A cached result is read straight from the shared state (no queue round trip). Otherwise the
check is a small task put at the *front* of the queue (a busy worker would otherwise reach
it only after every queued battle), and the page waits for its result, bounded. No live
worker in queue mode: ``NoWorkerError``, the same as a submit, so the page offers to run it
here. The check itself lives in ``sparring.judging.check``; refusing a launch on it, in
``sparring.usecases.require_good_judge``.
"""

from __future__ import annotations

import logging

from huey.api import Result, Task
from huey.exceptions import ResultTimeout, TaskException
from huey.storage import RedisExpireStorage

from jobs.queue import CHECK_TASK, Queue, get_queue, register_bodies
from jobs.submit import check_reachable, live_workers, worker_command
from sparring.judging import check as judge_check
from sparring.judging.check import JudgeCheck
from sparring.runtime import get_runtime
from sparring.shared_state import shared_state
from sparring.usecases import JudgeRefused, NoWorkerError, SubmitError
from sparring.usecases import ensure_queue_reachable as ensure_queue_reachable
from sparring.usecases import require_good_judge as require_good_judge

log = logging.getLogger(__name__)

__all__ = ["JudgeRefused", "check_judge", "ensure_queue_reachable", "require_good_judge"]

TASK = CHECK_TASK
WAIT_S = judge_check.TIME_LIMIT_S + 30  # the check's own limit, plus time for a busy worker to take it


def check_judge_task(judge_model: str, rubric: str | None) -> str:
    """Task body: the check (or its cached result) as JSON."""
    return judge_check.check_judge(get_runtime().gateway, judge_model, rubric).to_json()


def cached_check(judge_model: str, rubric: str | None) -> JudgeCheck | None:
    settings = get_runtime().settings
    return judge_check.recall_check(shared_state(settings.redis_url, settings.namespace), judge_model, rubric)


def check_judge(judge_model: str, rubric: str | None, *, require_worker: bool = True) -> JudgeCheck:
    found = cached_check(judge_model, rubric)
    if found is not None:
        return found
    queue = get_queue()
    check_reachable(queue)  # before the judge: an outage costs no judge call
    if require_worker and not live_workers(queue):
        raise NoWorkerError(
            f"No worker is running, so the judge check would wait. Start one with: {worker_command(queue)}"
        )
    result = _enqueue_first(queue, queue.tasks[TASK].s(judge_model, rubric, priority=100))
    try:
        answer = result.get(blocking=True, timeout=WAIT_S, revoke_on_timeout=True)
    except ResultTimeout:
        raise SubmitError(
            f"No worker answered the judge check within {WAIT_S:.0f} s (they may all be busy). "
            "Nothing was started; try again, or skip the judge check."
        ) from None
    except TaskException as error:
        log.error("The judge check failed in the worker: %s", error)
        raise SubmitError("The judge check failed in the worker (see its log). Nothing was started.") from None
    return JudgeCheck.from_json(str(answer))


def _enqueue_first(queue: Queue, task: Task) -> Result:
    """Enqueue ``task`` ahead of waiting battles (Redis: at the end workers pop; SQLite: by priority)."""
    huey = queue.huey
    storage = huey.storage
    if isinstance(storage, RedisExpireStorage):  # no priorities there: push it where BRPOP takes next
        storage.conn.rpush(storage.queue_key, huey.serialize_task(task))
        return Result(huey, task)
    return huey.enqueue(task)


register_bodies({TASK: check_judge_task})
