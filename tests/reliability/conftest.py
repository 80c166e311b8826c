"""Reliability scenarios: each one scripted, bounded in time, ending with an accounting."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import reset_all


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


def report(title: str, expected: dict[str, object], found: dict[str, object]) -> None:
    """Print the scenario's accounting: what was expected against what is in the store."""
    width = max(len(k) for k in expected) + 2
    lines = [f"\n== {title} =="]
    for key in expected:
        mark = "ok" if expected[key] == found.get(key) else "MISMATCH"
        lines.append(f"  {key:<{width}} expected {expected[key]!s:>10}   found {found.get(key)!s:>10}   {mark}")
    print("\n".join(lines))


class RedisServer:
    """A private redis-server on a free port that a scenario may restart: persistent (AOF)
    unless ``persistent`` is set to False before a start, which then comes up empty."""

    def __init__(self) -> None:
        self.persistent = True
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.dir = tempfile.mkdtemp(prefix="redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server must be installed (.ci/run installs it)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None


@pytest.fixture
def private_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    monkeypatch.setenv("REDIS_URL", server.url)
    reset_all()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def fast_recovery(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Short leases and reaper period, so that recovery fits in a test."""
    env = {
        "SPARRING_LEASE_TTL_S": "3",
        "SPARRING_REAPER_PERIOD_S": "1",
        "SPARRING_HEARTBEAT_PERIOD_S": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_all()
    return env


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


os.environ.setdefault("PYTHONHASHSEED", "0")
