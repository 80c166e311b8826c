"""Every test gets its own data folder, its own Redis namespace and fresh settings.

Tests needing Redis use the ``redis_url`` fixture: a real server (``make test`` starts
one when none answers). A missing server is a failure, never a skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sparring import runtime, shared_state

REDIS_URL = os.environ.get("SPARRING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("SPARRING_DATA_DIR", str(data))
    monkeypatch.setenv("SPARRING_NAMESPACE", "t" + secrets.token_hex(5))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SPARRING_REDIS_URL", raising=False)
    monkeypatch.setenv("SPARRING_RETRY_BASE_S", "0.01")
    reset_all()
    yield data
    from jobs import embedded

    embedded.stop()
    reset_all()


def reset_all() -> None:
    from jobs import dispatch, queue, runner

    dispatch.wire()  # the tests are an entry point: the use cases reach the queue through it
    runtime.reset()
    shared_state.reset_local()
    queue.reset()
    runner.reset()


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"No Redis server at {REDIS_URL} ({error}); run the tests with `make test`.")
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    reset_all()
    yield REDIS_URL
    namespace = os.environ["SPARRING_NAMESPACE"]
    keys = list(client.scan_iter(f"*{namespace}*", count=1000))
    if keys:
        client.delete(*keys)
