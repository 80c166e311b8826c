"""The queue's side of a launch: is it reachable, which workers are alive, how to start one.

The use cases themselves (launch, cancel, retry, the submit token) live in
``sparring.usecases``; their names are re-exported here for the queue's own callers.
"""

from __future__ import annotations

import time
from typing import Any

from jobs.queue import Queue, get_queue
from sparring.usecases import (
    FIRST_SUBMIT_WAIT_S,
    RETRYABLE,
    SUBMIT_TOKEN_TTL_S,
    NoWorkerError,
    SubmitError,
    UnknownBattleError,
    new_submit_token,
)
from sparring.usecases import cancel_battle as cancel_battle
from sparring.usecases import launch_battle as submit_battle
from sparring.usecases import retry_battle as retry_battle

__all__ = [
    "FIRST_SUBMIT_WAIT_S",
    "RETRYABLE",
    "SUBMIT_TOKEN_TTL_S",
    "NoWorkerError",
    "SubmitError",
    "UnknownBattleError",
    "cancel_battle",
    "check_reachable",
    "live_workers",
    "new_submit_token",
    "retry_battle",
    "submit_battle",
    "worker_command",
]


def worker_command(queue: Queue | None = None) -> str:
    queue = queue or get_queue()
    if queue.settings.redis_url:
        return "REDIS_URL=<same as the app> python -m jobs.worker --workers 4   (or: make worker)"
    return "make run   (the app runs battles itself), or: python -m jobs.worker --workers 4"


def live_workers(queue: Queue | None = None) -> list[dict[str, Any]]:
    queue = queue or get_queue()
    now = time.time()
    return [b for b in queue.coord.heartbeats() if now - float(b.get("beat_at", 0)) < queue.settings.heartbeat_ttl_s]


def check_reachable(queue: Queue) -> None:
    """``SubmitError`` (saying where the queue is) unless the queue answers."""
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
