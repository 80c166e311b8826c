"""A consumer's threads each get a Redis connection and an HTTP connection (issue 23).

Measured before: redis-py allows 100 connections per pool by default, so a worker with 200
threads looped on ``MaxConnectionsError: Too many connections`` and ran nothing; litellm's
HTTP client allowed 100 connections per process, so a worker never had more than about
100 model calls in flight.
"""

from __future__ import annotations

import threading

import pytest

from jobs import runs
from jobs.consumer import make_consumer
from jobs.queue import get_queue
from sparring import runtime
from sparring.gateway import Gateway, ModelRequest, warm_up
from sparring.settings import Settings
from sparring.shared_state import LocalState
from tests.fakes.openai_server import FakeOpenAIServer
from tests.helpers import WorkerProcess, max_overlap, rows, scalar, wait_for_worker, wait_until

BATTLES = 200


@pytest.fixture
def queue_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_HEARTBEAT_PERIOD_S", "1")
    runtime.reset()


@pytest.mark.slow
def test_a_worker_with_200_threads_runs_a_200_battle_scale_test(queue_env: None) -> None:
    worker = WorkerProcess(threads=BATTLES)
    try:
        wait_for_worker(worker, timeout=60)
        # Each battle waits 2 s for its agent's one reply: long enough for all to run at once.
        agent = {"model": "sim/agent?concede=0&latency_ms=2000"}
        run_id = runs.submit_run({"runs": BATTLES, "agents": [agent], "max_messages": 2})

        def finished() -> bool:
            if "Too many connections" in worker.log():  # it would never finish: say why at once
                pytest.fail("the worker ran out of Redis connections (MaxConnectionsError)")
            return bool(scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) == "finished")

        wait_until(
            finished,
            150,
            interval=0.5,
            message=f"the {BATTLES} battles of run {run_id}",
        )
    finally:
        worker.stop()
    log = worker.log()
    assert "MaxConnectionsError" not in log and "Too many connections" not in log, log[-3000:]
    found = rows("SELECT started_at, ended_at FROM battles WHERE run_id = ? AND status = 'finished'", [run_id])
    assert len(found) == BATTLES
    # The threads really ran side by side: far more than redis-py's default 100 at one instant.
    assert max_overlap([(s.timestamp(), e.timestamp()) for s, e in found]) > 100


@pytest.mark.slow
def test_a_consumer_of_150_threads_has_150_model_calls_in_flight() -> None:
    threads = 150
    warm_up()
    make_consumer(get_queue(), threads, in_process=True)  # what a worker or the app does with its threads
    settings = Settings(provider_concurrency=1000, provider_rate_limit="100000/minute", model_timeout_s=60)
    gateway = Gateway(settings, LocalState())
    errors: list[BaseException] = []
    with FakeOpenAIServer(latency_s=3.0) as server:
        start = threading.Barrier(threads)

        def request(index: int) -> ModelRequest:
            return ModelRequest(
                model="openai/fake-model",
                messages=[{"role": "user", "content": f"call {index}"}],
                purpose="agent",
                api_base=server.base_url,
            )

        def call(index: int) -> None:
            start.wait()
            try:
                gateway.complete(request(index), on_call=lambda call: None)
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        # A running worker has made calls before: its client is built (and cached by litellm).
        # Without this one, 150 first calls at once could build several clients side by side.
        gateway.complete(request(-1), on_call=lambda call: None)
        workers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        peak = server.peak_in_flight
        answered = len(server.completions())
    assert not errors, errors[:3]
    assert answered == threads + 1
    # httpx's default pool held this at 100 (each further call waited for a free connection).
    assert peak > 100, f"at most {peak} calls in flight at the server"


def test_a_consumer_of_500_threads_may_open_the_files_its_connections_need() -> None:
    """A soft limit of 1,024 open files (common) is raised for a worker of 500 threads, up to
    the hard limit; it is never lowered."""
    import resource

    from jobs.consumer import FILES_PER_THREAD, FILES_SPARE, allow_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 500 * FILES_PER_THREAD + FILES_SPARE
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"this machine's hard limit on open files ({hard}) is below what the test needs ({needed})")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert allow_open_files(500) == needed
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == needed
        assert allow_open_files(10) == needed  # a smaller consumer later does not lower it
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
