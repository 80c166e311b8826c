"""Scenarios 1 and 2: a worker killed with SIGKILL three times; Redis restarted mid-run."""

from __future__ import annotations

import random
import time

import pytest

from jobs import runs
from jobs.health import health_report
from sparring import runtime
from tests.helpers import WorkerProcess, rows, scalar, wait_for_worker, wait_until
from tests.reliability.conftest import RedisServer, report

TERMINAL = ("finished", "cancelled", "stopped", "failed")


def run_status(run_id: str) -> str | None:
    return scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id])


def transcript_accounting(run_id: str) -> dict[str, object]:
    per_battle = rows(
        """
        SELECT b.battle_id, b.status, b.message_count,
               count(m.seq) AS messages, count(DISTINCT m.seq) AS distinct_seqs,
               coalesce(max(m.seq), 0) AS top_seq
        FROM battles b LEFT JOIN messages m USING (battle_id)
        WHERE b.run_id = ? GROUP BY ALL
        """,
        [run_id],
    )
    twice = scalar(
        """
        SELECT count(*) FROM (
            SELECT battle_id, seq FROM llm_calls
            WHERE run_id = ? AND purpose = 'agent' AND error_type IS NULL
            GROUP BY ALL HAVING count(*) > 1)
        """,
        [run_id],
    )
    return {
        "battles": len(per_battle),
        "terminal": sum(1 for b in per_battle if b[1] == "finished"),
        "with a gap or duplicate": sum(1 for b in per_battle if not (b[3] == b[4] == b[5] == b[2])),
        "agent turns run twice": twice,
    }


def test_worker_killed_three_times_loses_no_battle(redis_url: str, fast_recovery: dict[str, str]) -> None:
    rng = random.Random(20261127)
    steady = WorkerProcess(threads=4)
    victim = WorkerProcess(threads=4)
    restarted: list[WorkerProcess] = []
    try:
        wait_for_worker(steady)
        wait_for_worker(victim)
        run_id = runs.submit_run(
            {"runs": 100, "max_messages": 10, "seed": 3, "agents": [{"model": "sim/agent?concede=0.1&latency_ms=40"}]}
        )
        kills = 0
        while kills < 3:
            time.sleep(rng.uniform(1.5, 4.0))
            victim.kill()
            kills += 1
            time.sleep(0.5)
            victim = WorkerProcess(threads=4)
            restarted.append(victim)
        wait_until(lambda: run_status(run_id) in TERMINAL, 300, interval=0.5, message="the run to finish")
    finally:
        for worker in (steady, victim, *restarted):
            worker.stop()
    found = transcript_accounting(run_id)
    expected = {"battles": 100, "terminal": 100, "with a gap or duplicate": 0, "agent turns run twice": 0}
    report("worker SIGKILLed three times during a 100-battle run", expected, found)
    assert found == expected
    assert scalar("SELECT count(*) FROM battle_events WHERE event = 'requeued'") >= 1  # the reaper did work
    assert run_status(run_id) == "finished"


@pytest.mark.parametrize("persistent", [True, False], ids=["with-aof", "without-persistence"])
def test_redis_restart_mid_run(private_redis: RedisServer, fast_recovery: dict[str, str], persistent: bool) -> None:
    workers = [WorkerProcess(threads=4), WorkerProcess(threads=4)]
    try:
        for worker in workers:
            wait_for_worker(worker)
        run_id = runs.submit_run(
            {"runs": 50, "max_messages": 10, "seed": 4, "agents": [{"model": "sim/agent?concede=0.1&latency_ms=40"}]}
        )
        wait_until(
            lambda: (
                (scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]) or 0) >= 5
            ),
            120,
            message="some battles finished",
        )
        before = health_report()
        private_redis.stop()
        during = health_report()  # the app's view of the outage, from the same process
        time.sleep(3)
        private_redis.persistent = persistent  # without: it comes back empty, every job and lease gone
        private_redis.start()
        wait_until(lambda: health_report()["reachable"], 30, message="health to see Redis again")
        wait_until(lambda: health_report()["live_workers"] == 2, 60, message="both workers back")
        wait_until(lambda: run_status(run_id) in TERMINAL, 300, interval=0.5, message="the run to finish")
        after = health_report()
    finally:
        for worker in workers:
            worker.stop()
    found = transcript_accounting(run_id)
    found.update(
        {
            "reachable before": before["reachable"],
            "reachable during": during["reachable"],
            "reachable after": after["reachable"],
            "failed battles": scalar("SELECT count(*) FROM battles WHERE run_id = ? AND outcome = 'failed'", [run_id]),
            "run status": run_status(run_id),
            "reports": scalar("SELECT count(*) FROM run_reports WHERE run_id = ?", [run_id]),
            # by the reaper, as soon as Redis was back (maintenance's backstop is not needed)
            "state rebuilt from the store": any("(its state mark was missing)" in w.log() for w in workers),
        }
    )
    expected = {
        "battles": 50,
        "terminal": 50,
        "with a gap or duplicate": 0,
        "agent turns run twice": 0,
        "reachable before": True,
        "reachable during": False,
        "reachable after": True,
        "failed battles": 0,
        "run status": "finished",
        "reports": 1,
        "state rebuilt from the store": not persistent,
    }
    how = "with AOF" if persistent else "without persistence (it came back empty)"
    report(f"Redis restarted in the middle of a 50-battle run, {how}", expected, found)
    assert found == expected
    assert "error" in during.get("redis", {})
    assert runtime.get_runtime().settings.redis_url == private_redis.url
