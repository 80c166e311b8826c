"""Enqueueing battles' jobs: on Redis through the pipelined storage, on SQLite one by one; same result."""

from __future__ import annotations

import pytest

from jobs.queue import Queue, get_queue
from jobs.storage import PipelinedRedisStorage
from sparring import records as r


def enqueue_after_a_revocation(queue: Queue, count: int) -> list[str]:
    battle_ids = [r.new_id() for _ in range(count)]
    queue.huey.revoke_by_id(battle_ids[0], revoke_once=True)  # a cancelled battle, now retried
    queue.enqueue_battles(battle_ids)
    return battle_ids


def assert_queued_and_not_revoked(queue: Queue, battle_ids: list[str]) -> None:
    assert queue.pending_ids() == set(battle_ids)
    assert not queue.huey.is_revoked(queue.run_battle.s(battle_ids[0], id=battle_ids[0]))
    first = queue.huey.dequeue()
    assert (first.id, first.args) == (battle_ids[0], (battle_ids[0],))


@pytest.mark.redis
def test_redis_enqueues_in_round_trips_of_500_and_drops_old_revocations(redis_url: str) -> None:
    queue = get_queue()
    assert isinstance(queue.huey.storage, PipelinedRedisStorage)
    battle_ids = enqueue_after_a_revocation(queue, 1201)  # three round trips, the last one partial
    assert_queued_and_not_revoked(queue, battle_ids)


def test_sqlite_enqueues_one_by_one_with_the_same_result() -> None:
    queue = get_queue()
    assert not isinstance(queue.huey.storage, PipelinedRedisStorage)
    battle_ids = enqueue_after_a_revocation(queue, 3)
    assert_queued_and_not_revoked(queue, battle_ids)


def test_a_bad_id_enqueues_nothing() -> None:
    queue = get_queue()
    with pytest.raises(ValueError, match="not a battle id"):
        queue.enqueue_battles([r.new_id(), "../etc"])
    assert queue.pending_ids() == set()


def test_jobs_name_their_tasks_as_before_so_queued_jobs_stay_runnable_after_an_upgrade() -> None:
    queue = get_queue()
    named = {
        key: queue.huey.serializer.deserialize(queue.huey.serialize_task(wrapper.s(r.new_id()))).name
        for key, wrapper in queue.tasks.items()
    }
    assert named == {
        "run_battle": "jobs.tasks.run_battle",
        "run_scale": "jobs.tasks.run_scale",
        "summarise_run": "jobs.tasks.summarise_run",
        "rejudge_run": "jobs.judging.rejudge_run",
        "check_judge": "jobs.judge_check.check_judge",
    }
    maintenance = queue.huey.serializer.deserialize(queue.huey.serialize_task(queue.maintenance.s())).name
    assert maintenance == "jobs.tasks.maintenance"


def test_the_consumer_brings_every_task_body() -> None:
    import jobs.consumer  # noqa: F401 - what a worker imports before it consumes
    from jobs import queue as queues

    assert set(queues._bodies) == {*get_queue().tasks, "maintenance"}
