"""Embedded mode (no Redis) and a Redis outage in queue mode."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from jobs import embedded, submit
from sparring import runtime
from tests.conftest import reset_all
from tests.helpers import WorkerProcess, max_overlap, rows, scalar, wait_finished, wait_for_worker


def test_embedded_consumer_runs_three_battles_at_once() -> None:
    assert runtime.get_runtime().settings.mode == "embedded"
    embedded.start(threads=4)
    ids = [
        submit.submit_battle({"agent_model": "sim/agent?concede=0&latency_ms=100", "max_messages": 8}) for _ in range(3)
    ]
    views = wait_finished(ids, 90)
    assert [v.outcome for v in views] == ["held"] * 3
    intervals = [(s.timestamp(), e.timestamp()) for s, e in rows("SELECT started_at, ended_at FROM battles")]
    assert max_overlap(intervals) == 3  # all three ran at the same time


def test_embedded_mode_without_a_consumer_says_how_to_start_one() -> None:
    with pytest.raises(submit.NoWorkerError, match="make run"):
        submit.submit_battle({})
    assert scalar("SELECT count(*) FROM battles") == 0


class RedisServer:
    """A private redis-server on a free port that the test can stop and start."""

    def __init__(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.dir = tempfile.mkdtemp()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server must be installed (make test / .ci/run install it)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    monkeypatch.setenv("REDIS_URL", server.url)
    monkeypatch.setenv("SPARRING_HEARTBEAT_PERIOD_S", "1")
    reset_all()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sparring", *args], capture_output=True, text=True, timeout=60)


def test_redis_outage_gives_clear_errors_and_workers_reconnect(private_redis: RedisServer) -> None:
    worker = WorkerProcess(threads=2)
    try:
        wait_for_worker(worker)
        first = submit.submit_battle({"agent_model": "sim/agent?concede=0", "max_messages": 4})
        wait_finished([first], 60)

        private_redis.stop()
        with pytest.raises(submit.SubmitError, match=r"not reachable.*Nothing was submitted"):
            submit.submit_battle({"agent_model": "sim/agent?concede=0"})
        assert scalar("SELECT count(*) FROM battles") == 1  # nothing half-written
        detached = cli("battle", "--detach")
        assert detached.returncode == 1 and "Traceback" not in detached.stderr
        assert "not reachable" in detached.stderr and len(detached.stderr.strip().splitlines()) == 1
        health = cli("health", "--json")
        assert health.returncode == 0 and '"reachable": false' in health.stdout
        time.sleep(2)  # the worker keeps running through the outage

        private_redis.start()  # an empty Redis: queue and heartbeats are gone
        assert worker.process.poll() is None
        wait_for_worker(worker, timeout=30)  # it reconnected on its own
        second = submit.submit_battle({"agent_model": "sim/agent?concede=0", "max_messages": 4})
        (view,) = wait_finished([second], 60)
        assert view.outcome == "held"
    finally:
        worker.stop()
    assert "Traceback" not in worker.log() or "ConnectionError" in worker.log()
    assert os.path.exists(worker.log_path)
