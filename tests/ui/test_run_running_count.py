"""Issue 17.11: "Running 0" mid-run while every worker thread was busy.

Measured (embedded mode, 200 sim battles, 8 threads, the run's row sampled every 0.25 s
next to the consumer's leases): 5 samples read "running 1" with all 8 threads holding a
battle and ~120 queued; the consumer never stalled (leases stayed at 8, battles kept
finishing). A taken battle stays "queued" in the database until its first write lands, and
writes are group-committed (or wait for the file while another process holds it). So the
count was wrong, not the consumer: the run page now counts a battle a live worker holds
as running, whether or not the database has caught up.
"""

from __future__ import annotations

import pytest

from jobs import runner, runs
from jobs.queue import get_queue
from sparring.scale import validate_scale
from tests.helpers import rows, scalar
from tests.ui.apptest import open_page


def metrics(at) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {m.label: m.value for m in at.metric}


@pytest.mark.redis
def test_battles_a_worker_holds_count_as_running_before_their_first_write_lands(redis_url: str) -> None:
    run_id = runs.submit_run(validate_scale({"runs": 10}), require_worker=False)
    assert runs.fan_out(run_id) == 10  # ten battles queued; no worker consumes them here
    worker = runner.WorkerRuntime(get_queue(), threads=8)  # what a worker does when it takes a battle:
    ids = [b for (b,) in rows("SELECT battle_id FROM battles WHERE run_id = ? ORDER BY replicate", [run_id])][:3]
    leases = [worker.hold_lease(battle_id) for battle_id in ids]
    assert all(leases)
    worker.start()  # its heartbeat says which battles it holds
    try:
        assert scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'queued'", [run_id]) == 10
        shown = metrics(open_page("ui/scale_tests.py", run=run_id))
        assert (shown["Running"], shown["Queued"]) == ("3", "7")
    finally:
        for lease in leases:
            assert lease is not None
            worker.release_lease(lease)
        worker.stop()
