"""A retried battle reopens its run's ledger: what ``jobs.submit`` (retry) needs from ``jobs.runs``.

Here rather than in ``jobs.runs``, which imports ``jobs.submit`` (its checks before a launch):
so that the two do not import each other.
"""

from __future__ import annotations

from jobs.queue import get_queue
from sparring import records as r
from sparring.runtime import get_runtime


def reopen_for_retry(run_id: str, battle_id: str) -> None:
    """A retried battle of a finished run: count it again and let the summary rerun."""
    queue = get_queue()
    queue.coord.run_done_remove(run_id, battle_id)
    queue.coord.unclaim(f"summary:{run_id}")  # the claim jobs.runs.maybe_summarise takes
    get_runtime().sink.write([r.RunStatusChanged(run_id, "running")])
