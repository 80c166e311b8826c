"""The Huey instance and its tasks, chosen from settings: the one home of Huey.

With ``REDIS_URL``: ``RedisExpireHuey`` (results expire instead of piling up in one
hash forever). Without: ``SqliteHuey`` on ``data/queue.sqlite3``. Tasks receive ids and
plain JSON only, never live objects. The battle task's job id is the battle id.

The queue declares its tasks by name; their bodies (``jobs.tasks``, ``jobs.judging``) register
themselves here when imported, and ``jobs.consumer``, which runs them, imports both. So the
bodies import the queue and not the other way round: submitting a job loads nothing that
runs it, and ``jobs/`` has no import loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huey import Huey, RedisExpireHuey, SqliteHuey, crontab
from huey.api import TaskWrapper

from jobs.coord import Coordinator, RedisCoordinator, SqliteCoordinator
from jobs.storage import PipelinedRedisStorage
from sparring.records import is_id
from sparring.settings import Settings, get_settings
from sparring.shared_state import redis_client

log = logging.getLogger(__name__)

BATTLE_TASK = "run_battle"
SCALE_TASK = "run_scale"
SUMMARY_TASK = "summarise_run"
REJUDGE_TASK = "rejudge_run"
MAINTENANCE_TASK = "maintenance"
CHECK_TASK = "check_judge"
RETRY_DELAY_S = 2

_bodies: dict[str, Callable[..., Any]] = {}


def register_bodies(bodies: dict[str, Callable[..., Any]]) -> None:
    """Give tasks declared by name their bodies (called by the modules that define them)."""
    _bodies.update(bodies)


def _declared(name: str, module: str) -> Callable[..., Any]:
    """The function Huey registers for task ``name``: it runs the body registered under that name.

    Huey names a job's task ``<module>.<name>`` of the function it was given: ``module`` is the
    body's, so that jobs queued by an earlier version still find their task.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        body = _bodies.get(name)
        if body is None:
            raise RuntimeError(f"task {name!r} has no body in this process: a consumer imports jobs.consumer")
        return body(*args, **kwargs)

    run.__name__ = run.__qualname__ = name
    run.__module__ = module
    return run


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
        """Put battles' jobs on the queue; on Redis, in pipelined round trips (``jobs.storage``).

        Each job first drops an old revocation of its id: a retry must not inherit it.
        """
        for battle_id in battle_ids:
            if not is_id(battle_id):
                raise ValueError(f"not a battle id: {battle_id!r:.40}")
        tasks = [self.run_battle.s(battle_id, id=battle_id) for battle_id in battle_ids]
        storage = self.huey.storage
        if isinstance(storage, PipelinedRedisStorage):
            storage.restore_and_enqueue([(task.revoke_id, self.huey.serialize_task(task)) for task in tasks])
            return
        for task in tasks:
            self.huey.restore(task)
            self.huey.enqueue(task)

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
            storage_class=PipelinedRedisStorage,
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
    huey = _make_huey(settings)
    retrying = {"retries": 2, "retry_delay": RETRY_DELAY_S}
    run_battle = huey.task(name=BATTLE_TASK, context=True, **retrying)(_declared(BATTLE_TASK, "jobs.tasks"))
    run_scale = huey.task(name=SCALE_TASK, **retrying)(_declared(SCALE_TASK, "jobs.tasks"))
    summarise = huey.task(name=SUMMARY_TASK, **retrying)(_declared(SUMMARY_TASK, "jobs.tasks"))
    every_15_min = crontab(minute="*/15")
    maintenance = huey.periodic_task(every_15_min, name=MAINTENANCE_TASK)(_declared(MAINTENANCE_TASK, "jobs.tasks"))
    rejudge = huey.task(name=REJUDGE_TASK, context=True, **retrying)(_declared(REJUDGE_TASK, "jobs.judging"))
    check_judge = huey.task(name=CHECK_TASK)(_declared(CHECK_TASK, "jobs.judge_check"))
    return Queue(
        settings=settings,
        huey=huey,
        coord=_make_coord(settings),
        run_battle=run_battle,
        maintenance=maintenance,
        tasks={
            BATTLE_TASK: run_battle,
            SCALE_TASK: run_scale,
            SUMMARY_TASK: summarise,
            REJUDGE_TASK: rejudge,
            CHECK_TASK: check_judge,
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
