"""Queue mode against a real Redis: workers started by the tests run the battles."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from jobs import runs, submit
from jobs.queue import get_queue
from sparring import runtime
from tests.helpers import (
    WorkerProcess,
    rows,
    run_cli,
    scalar,
    transcript,
    wait_finished,
    wait_for_worker,
    wait_until,
)

FAST = "sim/agent?concede=0"


@pytest.fixture
def queue_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("SPARRING_LEASE_TTL_S", "3")
    monkeypatch.setenv("SPARRING_REAPER_PERIOD_S", "1")
    monkeypatch.setenv("SPARRING_HEARTBEAT_PERIOD_S", "1")
    runtime.reset()
    return {k: v for k, v in os.environ.items() if k.startswith("SPARRING_") or k == "REDIS_URL"}


def started_intervals(battle_ids: list[str]) -> list[tuple[float, float]]:
    found = rows("SELECT started_at, ended_at FROM battles WHERE list_contains(?, battle_id)", [battle_ids])
    return [(s.timestamp(), e.timestamp()) for s, e in found]


def test_a_worker_runs_a_submitted_battle(queue_env: dict[str, str]) -> None:
    worker = WorkerProcess(threads=2)
    try:
        wait_for_worker(worker)
        battle_id = submit.submit_battle({"agent_model": FAST, "max_messages": 6})
        (view,) = wait_finished([battle_id], 60)
        assert view.outcome == "held" and view.message_count == 6
        assert scalar(
            "SELECT detail FROM battle_events WHERE battle_id = ? AND event = 'started'", [battle_id]
        ).startswith(os.uname().nodename)
    finally:
        worker.stop()


def test_ten_battles_on_one_worker_with_four_threads(queue_env: dict[str, str]) -> None:
    from tests.helpers import max_overlap

    worker = WorkerProcess(threads=4)
    try:
        wait_for_worker(worker)
        ids = [submit.submit_battle({"agent_model": FAST + "&latency_ms=30", "max_messages": 10}) for _ in range(10)]
        views = wait_finished(ids, 120)
        assert {v.outcome for v in views} == {"held"}
        assert max_overlap(started_intervals(ids)) == 4  # four at a time, never more
    finally:
        worker.stop()


def test_two_workers_share_forty_battles_none_run_twice(queue_env: dict[str, str]) -> None:
    workers = [WorkerProcess(threads=4), WorkerProcess(threads=4)]
    try:
        for worker in workers:
            wait_for_worker(worker)
        ids = [submit.submit_battle({"agent_model": FAST + "&latency_ms=10", "max_messages": 6}) for _ in range(40)]
        views = wait_finished(ids, 180)
        assert all(v.outcome == "held" and v.message_count == 6 for v in views)
        starts = rows(
            "SELECT battle_id, count(*), any_value(detail) FROM battle_events WHERE event = 'started' GROUP BY 1"
        )
        assert len(starts) == 40 and all(count == 1 for _, count, _ in starts)
        hosts = {detail for _, _, detail in starts}
        assert len(hosts) == 2  # both workers took part
        assert scalar("SELECT count(*) - count(DISTINCT (battle_id, seq)) FROM messages") == 0
    finally:
        for worker in workers:
            worker.stop()


def test_submitting_the_same_battle_twice_runs_it_once(queue_env: dict[str, str]) -> None:
    worker = WorkerProcess(threads=4)
    try:
        wait_for_worker(worker)
        battle_id = submit.submit_battle({"agent_model": FAST + "&latency_ms=50", "max_messages": 8})
        queue = get_queue()
        queue.enqueue_battle(battle_id)  # a duplicate job with the same id
        queue.enqueue_battle(battle_id)
        wait_finished([battle_id], 60)
        time.sleep(1)
        assert scalar("SELECT count(*) FROM battle_events WHERE battle_id = ? AND event = 'started'", [battle_id]) == 1
        assert [m.seq for m in transcript(battle_id).messages] == list(range(1, 9))
    finally:
        worker.stop()


def test_no_live_worker_is_said_plainly(queue_env: dict[str, str]) -> None:
    with pytest.raises(submit.NoWorkerError, match=r"No worker is running.*python -m jobs\.worker"):
        submit.submit_battle({"agent_model": FAST})
    assert scalar("SELECT count(*) FROM battles") == 0  # nothing half-made


def test_cancel_a_queued_battle(queue_env: dict[str, str]) -> None:
    battle_id = submit.submit_battle({"agent_model": FAST}, require_worker=False)
    assert submit.cancel_battle(battle_id) == "cancelled"
    assert transcript(battle_id).battle.outcome == "cancelled"
    worker = WorkerProcess(threads=2)
    try:
        wait_for_worker(worker)
        later = submit.submit_battle({"agent_model": FAST, "max_messages": 4})
        wait_finished([later], 60)
        assert transcript(battle_id).messages == ()  # the revoked job never ran
        assert get_queue().huey.pending_count() == 0
    finally:
        worker.stop()


def test_cancel_a_running_battle_within_one_model_call(queue_env: dict[str, str]) -> None:
    worker = WorkerProcess(threads=2)
    try:
        wait_for_worker(worker)
        battle_id = submit.submit_battle({"agent_model": FAST + "&latency_ms=300", "max_messages": 60})
        wait_until(lambda: transcript(battle_id).battle.message_count >= 3, 60, message="three messages")
        assert submit.cancel_battle(battle_id) == "cancelling"
        cancelled_at = time.monotonic()
        (view,) = wait_finished([battle_id], 10)
        assert view.outcome == "cancelled"
        # One model call of 0.3 s, plus commits and polling; slack for a loaded CI machine. Running on
        # to the end instead would take the ~57 calls left, about 17 s.
        assert time.monotonic() - cancelled_at < 3
        assert view.message_count < 60
    finally:
        worker.stop()


def test_retry_resumes_a_failed_battle_without_duplicates(queue_env: dict[str, str]) -> None:
    # Seed 8 gives eight agent turns; each agent call fails with probability 0.7, so the
    # chance that none fails (and the retry path goes untested) is 0.3 ** 8, under 1e-4.
    spec = {"agent_model": "sim/agent?concede=0.1&fail_500=0.7", "seed": 8, "max_messages": 16}
    worker = WorkerProcess(threads=2, env={"SPARRING_MODEL_MAX_ATTEMPTS": "1"})
    try:
        wait_for_worker(worker)
        battle_id = submit.submit_battle(spec)
        retries = 0
        while True:
            (view,) = wait_finished([battle_id], 60)
            if view.outcome != "failed":
                break
            assert view.error_kind == "provider"
            retries += 1
            assert retries < 200
            assert submit.retry_battle(battle_id) == "requeued"
        assert retries > 0  # it did fail and resume at least once
    finally:
        worker.stop()
    # The same battle without faults, in the foreground, for comparison.
    from sparring import usecases

    reference = usecases.create_battle({**spec, "agent_model": "sim/agent?concede=0.1"})
    usecases.run_inline(reference)
    got = [(m.seq, m.role, m.content) for m in transcript(battle_id).messages]
    want = [(m.seq, m.role, m.content) for m in transcript(reference).messages]
    assert got == want
    assert transcript(battle_id).battle.outcome == transcript(reference).battle.outcome


def test_sigkill_mid_battle_is_recovered_by_the_reaper(queue_env: dict[str, str]) -> None:
    first = WorkerProcess(threads=2)
    wait_for_worker(first)
    battle_id = submit.submit_battle({"agent_model": FAST + "&latency_ms=100", "max_messages": 24})
    wait_until(lambda: transcript(battle_id).battle.message_count >= 5, 60, message="five messages")
    first.kill()
    # Huey does not acknowledge tasks: the killed worker's job is gone from Redis.
    # If a future Huey keeps it, this fails and the reaper may become unnecessary.
    queue = get_queue()
    assert queue.huey.pending_count() == 0 and queue.huey.scheduled_count() == 0
    assert transcript(battle_id).battle.status == "running"
    killed_at = time.monotonic()
    second = WorkerProcess(threads=2)
    try:
        (view,) = wait_finished([battle_id], 60)
        settings = runtime.get_runtime().settings
        recovered_in = time.monotonic() - killed_at
        assert view.outcome == "held" and view.message_count == 24
        seqs = [m.seq for m in transcript(battle_id).messages]
        assert seqs == list(range(1, 25))
        # within the reaper's period plus the lease time, plus the battle's remaining run time
        remaining_run = (24 - 5) * 0.1 * 1.5 + 5
        assert recovered_in < settings.reaper_period_s + settings.lease_ttl_s + remaining_run + 10
        events = [
            e for (e,) in rows("SELECT event FROM battle_events WHERE battle_id = ? ORDER BY occurred_at", [battle_id])
        ]
        assert events.count("started") == 2 and "requeued" in events
    finally:
        second.stop()


def test_sigterm_hands_the_battle_back_at_once(queue_env: dict[str, str]) -> None:
    first = WorkerProcess(threads=2)
    wait_for_worker(first)
    battle_id = submit.submit_battle({"agent_model": FAST + "&latency_ms=100", "max_messages": 20})
    wait_until(lambda: transcript(battle_id).battle.message_count >= 4, 60, message="four messages")
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(20) == 0
    assert "Handed back to the queue: " + battle_id in first.log()
    second = WorkerProcess(threads=2)
    try:
        (view,) = wait_finished([battle_id], 60)
        assert view.message_count == 20
        assert [m.seq for m in transcript(battle_id).messages] == list(range(1, 21))
    finally:
        second.stop()


def test_redis_losing_its_data_mid_run_strands_nothing(queue_env: dict[str, str], redis_url: str) -> None:
    worker = WorkerProcess(threads=2)
    wait_for_worker(worker)
    battle = {"agent_model": FAST + "&latency_ms=80", "max_messages": 8}
    run_id = runs.submit_run({"runs": 10, "agents": [{"model": battle["agent_model"]}], "max_messages": 8})
    single = submit.submit_battle(battle)  # queued behind the run's battles
    wait_until(
        lambda: scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]) >= 2,
        60,
        message="two battles of the run",
    )
    ids = [b for (b,) in rows("SELECT battle_id FROM battles WHERE run_id = ?", [run_id])] + [single]
    # What a Redis restarted without persistence leaves of our keys: nothing. The queued
    # jobs, the active set, the run's total and done set and the leases are gone.
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"*{os.environ['SPARRING_NAMESPACE']}*", count=1000))
    client.delete(*keys)
    lost_at = rows("SELECT count(*) FILTER (WHERE status = 'finished'), count(*) FROM battles")[0]
    try:
        wait_finished(ids, 90)
        wait_until(
            lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "finished",
            60,
            message="the run's summary",
        )
    finally:
        worker.stop()
    assert lost_at[0] < lost_at[1] == 11  # some battles were still waiting when the state went
    for battle_id in ids:
        view = transcript(battle_id)
        assert view.battle.outcome == "held" and [m.seq for m in view.messages] == list(range(1, 9)), battle_id
    assert scalar("SELECT count(*) FROM run_reports WHERE run_id = ?", [run_id]) == 1
    assert "(its state mark was missing)" in worker.log() and "restoring it" in worker.log()


def test_health_reports_workers_and_queue(queue_env: dict[str, str]) -> None:
    from jobs.health import health_report

    report = health_report()
    assert report["mode"] == "queue" and report["reachable"] and report["live_workers"] == 0
    worker = WorkerProcess(threads=3)
    try:
        wait_for_worker(worker)
        report = health_report()
        assert report["live_workers"] == 1
        beat = report["workers"][0]
        for key in ("worker_id", "host", "pid", "started_at", "running", "version", "age_s"):
            assert key in beat
        assert beat["threads"] == 3 and beat["age_s"] < 10
        assert json.loads(json.dumps(report, default=str))  # serialisable for --json
    finally:
        worker.stop()


def test_cli_detach_status_cancel_retry_health(queue_env: dict[str, str], isolated: Path) -> None:
    """The commands run cli.main in this process (each subprocess would import litellm again for the
    judge check); the battle runs on the worker process, as its started events show."""
    import subprocess
    import sys

    refused = run_cli("battle", "--detach", "--json")
    assert refused.returncode == 1 and "No worker is running" in refused.stderr
    worker = WorkerProcess(threads=2)
    try:
        wait_for_worker(worker)
        # long enough (100 messages × 200 ms) that the cancel lands mid-run even on a busy machine
        slow_agent = FAST + "&latency_ms=200"
        done = run_cli("battle", "--detach", "--json", "--agent-model", slow_agent, "--max-messages", "100")
        assert done.returncode == 0, done.stderr
        battle_id = json.loads(done.stdout)["battle_id"]
        wait_until(lambda: json.loads(run_cli("status", battle_id, "--json").stdout)["messages"] >= 2, 60)
        assert json.loads(run_cli("cancel", battle_id, "--json").stdout)["result"] == "cancelling"
        wait_finished([battle_id], 20)
        status = json.loads(run_cli("status", battle_id, "--json").stdout)
        assert status["status"] == "finished" and status["outcome"] == "cancelled"
        assert json.loads(run_cli("retry", battle_id, "--json").stdout)["result"] == "requeued"
        (view,) = wait_finished([battle_id], 120)
        assert view.outcome == "held" and view.message_count == 100
        started = rows("SELECT detail FROM battle_events WHERE battle_id = ? AND event = 'started'", [battle_id])
        assert len(started) == 2 and all(f"-{worker.pid}-" in detail for (detail,) in started)  # not this process
        health = json.loads(run_cli("health", "--json").stdout)
        assert health["live_workers"] == 1 and health["mode"] == "queue"
        for command in ("status", "cancel", "retry"):  # a user's shell: one line on stderr, nothing else
            unknown = subprocess.run(
                [sys.executable, "-m", "sparring", command, "nope"], capture_output=True, text=True, timeout=60
            )
            assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    finally:
        worker.stop()
