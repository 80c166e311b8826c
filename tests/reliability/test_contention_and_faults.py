"""Scenarios 3 and 4: store contention across processes; provider faults and limits."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import runs
from jobs.health import format_report, health_report
from sparring import runtime
from sparring.gateway import Gateway, ModelCallError, ModelRequest
from sparring.store import Store
from tests.helpers import WorkerProcess, max_overlap, rows, scalar, wait_for_worker, wait_until
from tests.reliability.conftest import report

TERMINAL = ("finished", "cancelled", "stopped", "failed")
ROOT = Path(__file__).resolve().parents[2]


def _poll(path: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """A UI-like reader: five reads a second, counting errors."""
    store = Store(Path(path))
    reads = errors = 0
    slowest = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            store.read(lambda con: con.execute("SELECT count(*) FROM messages").fetchall(), deadline_s=30)
            reads += 1
        except Exception:
            errors += 1
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))
    out.put((reads, errors, slowest))


def test_store_contention_two_workers_a_reader_and_a_notebook(redis_url: str, isolated: Path) -> None:
    db_path = runtime.get_runtime().settings.db_path
    runtime.get_runtime().store.migrate()
    workers = [WorkerProcess(threads=8), WorkerProcess(threads=8)]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    reader = ctx.Process(target=_poll, args=(str(db_path), 25.0, results))
    try:
        for worker in workers:
            wait_for_worker(worker)
        run_id = runs.submit_run(
            {"runs": 60, "max_messages": 12, "seed": 6, "agents": [{"model": "sim/agent?concede=0&latency_ms=30"}]}
        )
        reader.start()
        wait_until(lambda: (scalar("SELECT count(*) FROM messages") or 0) > 50, 120, message="battles running")
        notebook = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time; from sparring import data; con = data.connect(sys.argv[1]); "
                "con.execute('SELECT count(*) FROM messages').fetchall(); time.sleep(10); con.close()",
                str(db_path),
            ],
            cwd=ROOT,
        )
        assert notebook.wait(60) == 0
        wait_until(
            lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL,
            300,
            interval=0.5,
            message="the run to finish",
        )
        reader.join(60)
        reads, reader_errors, slowest = results.get(timeout=10)
    finally:
        for worker in workers:
            worker.stop()
        if reader.is_alive():
            reader.terminate()
    logs = "\n".join(w.log() for w in workers)
    found = {
        "battles finished": scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]),
        "failed battles": scalar("SELECT count(*) FROM battles WHERE outcome = 'failed'"),
        "messages": scalar("SELECT count(*) FROM messages"),
        "distinct messages": scalar("SELECT count(DISTINCT (battle_id, seq)) FROM messages"),
        "reader errors": reader_errors,
        "errors in worker logs": logs.count("Traceback"),
    }
    expected = {
        "battles finished": 60,
        "failed battles": 0,
        "messages": 60 * 12,
        "distinct messages": 60 * 12,
        "reader errors": 0,
        "errors in worker logs": 0,
    }
    report("two workers × 8 threads, a reader at 5/s, a notebook holding the file 10 s", expected, found)
    print(f"  reader: {reads} reads, slowest {slowest:.2f} s (it waited out the notebook's hold)")
    assert found == expected
    assert reads > 40


def test_provider_faults_are_survived_within_the_concurrency_cap(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "SPARRING_PROVIDER_CONCURRENCY": "6",
        "SPARRING_MODEL_TIMEOUT_S": "0.5",
        "SPARRING_MODEL_MAX_ATTEMPTS": "8",
        "SPARRING_BREAKER_THRESHOLD": "50",  # this scenario measures retries, not the breaker
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runtime.reset()
    faults = "fail_429=0.2&retry_after=0.05&fail_500=0.05&timeout=0.02&latency_ms=20"
    workers = [WorkerProcess(threads=8), WorkerProcess(threads=8)]
    try:
        for worker in workers:
            wait_for_worker(worker)
        run_id = runs.submit_run(
            {
                "runs": 40,
                "max_messages": 10,
                "seed": 8,
                "agents": [{"model": f"sim/agent?concede=0.1&{faults}"}],
                "adversary_model": f"sim/adversary?{faults}",
                "judge_model": f"sim/judge?{faults}",
            }
        )
        wait_until(
            lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL,
            300,
            interval=0.5,
            message="the run to finish",
        )
    finally:
        for worker in workers:
            worker.stop()
    calls = rows(
        "SELECT epoch_us(started_at) / 1e6, latency_ms, error_type FROM llm_calls WHERE run_id = ? "
        "AND purpose <> 'summary'",
        [run_id],
    )
    intervals = [(start, start + latency / 1000) for start, latency, _ in calls]
    kinds = {kind for *_, kind in calls}
    failed = rows("SELECT error FROM battles WHERE run_id = ? AND outcome = 'failed'", [run_id])
    found = {
        "battles finished": scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]),
        "failed without a reason": sum(1 for (error,) in failed if not error),
        "most calls in flight <= cap": max_overlap(intervals) <= 6,
        "429s seen": "rate_limited" in kinds,
        "500s seen": "server" in kinds,
        "timeouts seen": "timeout" in kinds,
    }
    expected = {
        "battles finished": 40,
        "failed without a reason": 0,
        "most calls in flight <= cap": True,
        "429s seen": True,
        "500s seen": True,
        "timeouts seen": True,
    }
    report("20% 429s, 5% 500s, 2% timeouts; cap of 6 calls in flight across two workers", expected, found)
    print(f"  calls: {len(calls)}, most in flight at once: {max_overlap(intervals)}, failed battles: {len(failed)}")
    assert found == expected
    assert max_overlap(intervals) == 6  # the cap was reached, so the check above means something


def test_ten_consecutive_429s_pause_the_provider_and_health_shows_it(redis_url: str) -> None:
    settings = runtime.get_runtime().settings
    assert settings.breaker_threshold == 10
    gateway = Gateway(settings.model_copy(update={"model_max_attempts": 11, "retry_base_s": 0.0}))
    started = time.monotonic()
    with pytest.raises(ModelCallError):
        gateway.complete(
            ModelRequest("sim/agent?fail_429=1&retry_after=0", [{"role": "user", "content": "hi"}], "agent"),
            on_call=lambda call: None,
        )
    paused_for = time.monotonic() - started
    health = health_report()
    sim = {p["provider"]: p for p in health["providers"]}["sim"]
    found = {
        "circuit opened": sim["circuit_opened"] >= 1,
        "paused now": sim["circuit_open_s"] > 0,
        "shown on the health page": "PAUSED" in format_report(health),
    }
    expected = {"circuit opened": True, "paused now": True, "shown on the health page": True}
    report("ten consecutive 429s from one provider", expected, found)
    assert found == expected
    assert paused_for >= settings.breaker_cooldown_s * 0.9  # the 11th attempt waited for the pause
