"""The Huey instance and its tasks, chosen from settings: the one home of Huey.

With ``REDIS_URL``: ``RedisExpireHuey`` (results expire instead of piling up in one
hash forever). Without: ``SqliteHuey`` on ``data/queue.sqlite3``. Tasks receive ids and
plain JSON only, never live objects. The battle task's job id is the battle id.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from huey import Huey, RedisExpireHuey, SqliteHuey, crontab
from huey.api import TaskWrapper
from huey.storage import RedisExpireStorage

from jobs.coord import Coordinator, RedisCoordinator, SqliteCoordinator
from sparring.records import is_id
from sparring.settings import Settings, get_settings
from sparring.shared_state import redis_client

log = logging.getLogger(__name__)

BATTLE_TASK = "run_battle"
RETRY_DELAY_S = 2


@dataclass(frozen=True)
class Queue:
    settings: Settings
    huey: Huey
    coord: Coordinator
    run_battle: TaskWrapper
    maintenance: TaskWrapper
    tasks: dict[str, TaskWrapper]

    @property
    def mode(self) -> str:
        return self.settings.mode

    def enqueue_battle(self, battle_id: str) -> None:
        """Put the battle's job on the queue (job id = battle id)."""
        self.enqueue_battles([battle_id])

    def enqueue_battles(self, battle_ids: list[str]) -> None:
        """Put battles' jobs on the queue; on Redis, in pipelined round trips.

        (A run's fan-out enqueues hundreds of jobs while the first ones already run; one
        round trip each, every one waiting for the GIL again, would stagger their starts.)
        Each job first drops an old revocation of its id: a retry must not inherit it.
        """
        for battle_id in battle_ids:
            if not is_id(battle_id):
                raise ValueError(f"not a battle id: {battle_id!r:.40}")
        storage = self.huey.storage
        if not isinstance(storage, RedisExpireStorage):
            for battle_id in battle_ids:
                self.huey.restore_by_id(battle_id)
                self.huey.enqueue(self.run_battle.s(battle_id, id=battle_id))
            return
        for start in range(0, len(battle_ids), 500):
            with storage.conn.pipeline(transaction=False) as pipe:
                for battle_id in battle_ids[start : start + 500]:
                    task = self.run_battle.s(battle_id, id=battle_id)
                    pipe.delete(storage.result_key(task.revoke_id))  # Huey's restore_by_id
                    pipe.lpush(storage.queue_key, self.huey.serialize_task(task))  # Huey's enqueue
                pipe.execute()

    def pending_ids(self) -> set[str]:
        """Ids of jobs waiting in the queue or scheduled for a retry."""
        ids = set()
        for raw in [*self.huey.storage.enqueued_items(), *self.huey.storage.scheduled_items()]:
            try:
                ids.add(self.huey.serializer.deserialize(raw).id)
            except Exception:  # noqa: BLE001 - a foreign or corrupt entry is skipped, not fatal
                log.warning("Skipping an undecodable queue entry")
        return ids


def _make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisExpireHuey(
            name=settings.namespace,
            expire_time=settings.result_ttl_s,
            connection_pool=redis_client(settings.redis_url).connection_pool,
            read_timeout=1,
            utc=True,
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name=settings.namespace, filename=str(settings.queue_path), utc=True, timeout=30)


def _make_coord(settings: Settings) -> Coordinator:
    if settings.redis_url:
        return RedisCoordinator(redis_client(settings.redis_url), settings.namespace)
    return SqliteCoordinator(settings.data_dir / "coord.sqlite3")


def build_queue(settings: Settings) -> Queue:
    from jobs import tasks

    huey = _make_huey(settings)
    run_battle = huey.task(name=BATTLE_TASK, retries=2, retry_delay=RETRY_DELAY_S, context=True)(tasks.run_battle)
    run_scale = huey.task(name="run_scale", retries=2, retry_delay=RETRY_DELAY_S)(tasks.run_scale)
    summarise = huey.task(name="summarise_run", retries=2, retry_delay=RETRY_DELAY_S)(tasks.summarise_run)
    maintenance = huey.periodic_task(crontab(minute="*/15"), name="maintenance")(tasks.maintenance)
    from jobs import judging

    rejudge = huey.task(name=judging.TASK, retries=2, retry_delay=RETRY_DELAY_S, context=True)(judging.rejudge_run)
    from jobs import judge_check

    check_judge = huey.task(name=judge_check.TASK)(judge_check.check_judge_task)
    return Queue(
        settings=settings,
        huey=huey,
        coord=_make_coord(settings),
        run_battle=run_battle,
        maintenance=maintenance,
        tasks={
            "run_battle": run_battle,
            "run_scale": run_scale,
            "summarise_run": summarise,
            judging.TASK: rejudge,
            judge_check.TASK: check_judge,
        },
    )


_queues: dict[tuple[str | None, str, str], Queue] = {}
_queues_lock = threading.Lock()


def get_queue() -> Queue:
    """The queue of this process's settings (built once per distinct configuration)."""
    settings = get_settings()
    key = (settings.redis_url, settings.namespace, str(settings.data_dir.resolve()))
    with _queues_lock:
        queue = _queues.get(key)
        if queue is None:
            queue = _queues[key] = build_queue(settings)
        return queue


def reset() -> None:
    with _queues_lock:
        _queues.clear()
