"""A retried battle reopens its run's ledger: what a retry (``jobs.dispatch``) needs from a run's book-keeping.

A module of its own, below ``jobs.runs`` and ``jobs.dispatch``, so that nothing imports in a loop.
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
