"""The pages' judge check: a task a worker runs (the app never imports litellm), ahead of waiting battles."""

from __future__ import annotations

import os

import pytest

from jobs import judge_check, submit
from jobs.queue import get_queue
from sparring import records as r
from sparring import runtime
from tests.helpers import WorkerProcess, wait_for_worker


@pytest.fixture
def queue_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("SPARRING_HEARTBEAT_PERIOD_S", "1")
    runtime.reset()
    return {k: v for k, v in os.environ.items() if k.startswith("SPARRING_") or k == "REDIS_URL"}


def test_without_a_live_worker_the_check_is_refused_like_a_submit(queue_env: dict[str, str]) -> None:
    with pytest.raises(submit.NoWorkerError, match=r"No worker is running.*python -m jobs\.worker"):
        judge_check.require_good_judge("sim/judge", None)
    assert get_queue().huey.storage.queue_size() == 0


def test_a_worker_checks_the_judge_and_the_result_is_then_read_from_the_cache(queue_env: dict[str, str]) -> None:
    worker = WorkerProcess(threads=2)
    try:
        wait_for_worker(worker)
        with pytest.raises(judge_check.JudgeRefused, match=r"`sim/judge\?garble=1` did not answer in the judge's"):
            judge_check.require_good_judge("sim/judge?garble=1", None)
        first = judge_check.require_good_judge("sim/judge", None)
        assert first.passed and not first.cached
    finally:
        worker.stop()
    # The worker is gone, yet the same judge is accepted at once: the pass is in Redis.
    again = judge_check.require_good_judge("sim/judge", None)
    assert again.passed and again.cached
    assert judge_check.check_judge("sim/judge?garble=1", None).cached


@pytest.mark.parametrize("mode", ["queue", "embedded"])
def test_the_check_is_taken_before_battles_already_waiting(mode: str, request: pytest.FixtureRequest) -> None:
    if mode == "queue":
        request.getfixturevalue("queue_env")
    queue = get_queue()
    battles = [r.new_id() for _ in range(5)]
    queue.enqueue_battles(battles)
    task = queue.tasks[judge_check.TASK].s("sim/judge", None, priority=100)
    judge_check._enqueue_first(queue, task)
    first = queue.huey.serializer.deserialize(queue.huey.storage.dequeue())
    assert first.id == task.id
    assert queue.huey.storage.queue_size() == len(battles)
