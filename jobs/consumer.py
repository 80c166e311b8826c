"""Starting a consumer: the worker process and the app's in-process consumer share this."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from huey.consumer import Consumer
from huey.signals import SIGNAL_INTERRUPTED

from jobs import judge_check, judging, runner, tasks
from jobs.queue import BATTLE_TASK, Queue
from sparring.gateway import size_http_pool
from sparring.shared_state import size_redis_pool

# The consumer runs the task bodies, which register themselves when imported.
BODIES = (tasks, judging, judge_check)

log = logging.getLogger(__name__)


class _QuietRevokes(logging.Filter):
    """Drop Huey's line for each revoked task it skips: a cancelled run or a stopped cell revokes
    its queued battles on purpose (a hundred of them make a hundred warnings, and the store
    already says each was cancelled)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "was revoked, not executing" not in record.getMessage()


_QUIET = _QuietRevokes()


class InProcessConsumer(Consumer):  # type: ignore[misc]
    """A consumer that runs inside another program (the Streamlit server).

    Signal handlers can only be installed from the main thread, and the host program
    owns its signals anyway: skip them; the host calls ``stop()`` on shutdown.
    """

    def _set_signal_handlers(self) -> None:
        pass


FILES_PER_THREAD = 3  # a Redis connection, an HTTP connection, and room for the rest
FILES_SPARE = 256  # the database file, the logs, the libraries


def allow_open_files(threads: int) -> int:
    """Raise this process's limit on open files (the soft one, up to the hard one) so that
    ``threads`` threads can each hold their connections; return the limit now in force.

    Many systems start programs with a soft limit of 1,024: a worker of 500 threads needs
    more (about 530 Redis and 500 HTTP connections), and would fail with "Too many open files"."""
    try:
        import resource
    except ImportError:  # not on this platform
        return -1
    needed = threads * FILES_PER_THREAD + FILES_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        if soft < needed:
            log.warning(
                "%d threads want about %d open files and this process may open %d (its hard limit): "
                "raise it (ulimit -n) or run fewer threads per worker",
                threads,
                needed,
                soft,
            )
    return int(soft)


def make_consumer(queue: Queue, threads: int, *, in_process: bool, periodic: bool = True) -> Consumer:
    # Each thread may hold a Redis connection (an idle one waits on the queue holding one) and
    # an HTTP connection (a model call): size this process's pools, and its open files, for them.
    size_redis_pool(threads)
    size_http_pool(threads)
    allow_open_files(threads)
    for name in ("huey", "huey.consumer"):
        if _QUIET not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_QUIET)
    cls = InProcessConsumer if in_process else Consumer
    return cls(
        queue.huey,
        workers=threads,
        worker_type="thread",
        periodic=periodic,
        initial_delay=0.05,
        backoff=1.2,
        # SQLite is polled: keep an idle queue answering within half a second.
        max_delay=0.5 if not queue.settings.redis_url else 2.0,
        scheduler_interval=1,
        check_worker_health=True,
        health_check_interval=5,
    )


def requeue_interrupted(worker: runner.WorkerRuntime) -> Any:
    """On an immediate stop (SIGTERM), hand running battles back for any worker to resume."""

    def handler(signal: str, task: Any, *args: Any) -> None:
        if getattr(task, "name", None) == BATTLE_TASK:
            handed = worker.abandon_all()
            log.info("Handed back to the queue: %s", ", ".join(handed) or "nothing")

    worker.queue.huey.signal(SIGNAL_INTERRUPTED)(handler)
    return handler


def shut_down(consumer: Consumer, worker: runner.WorkerRuntime, wait_s: float = 10.0) -> None:
    """After the consumer loop: hand back what still runs, let the threads stop, flush."""
    from sparring.store.recorder import flush_all

    worker.abandon_all()
    deadline = time.monotonic() + wait_s
    for _, thread in consumer.worker_threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    worker.stop()
    flush_all()


def warm_up_in_background(delay_s: float = 0.0) -> threading.Thread:
    """Import litellm off the request path, so that the first battle does not wait 7 s.

    ``delay_s``: wait that long first (the app: its first page is still being delivered when
    its first run ends, and the import holds the GIL). A battle that needs litellm sooner
    imports it itself; the import lock makes the two share one import.
    """

    def warm() -> None:
        if delay_s > 0:
            time.sleep(delay_s)
        from sparring.gateway import warm_up

        try:
            warm_up()
        except Exception:
            log.warning("litellm warm-up failed", exc_info=True)

    thread = threading.Thread(target=warm, name="litellm-warm-up", daemon=True)
    thread.start()
    return thread
