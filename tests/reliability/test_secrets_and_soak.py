"""Scenarios 7 and 8: API keys appear nowhere; worker memory stays flat under steady load."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from jobs import runs, submit
from sparring import runtime
from sparring.store import export
from tests.fakes.agent_server import FakeAgentServer
from tests.helpers import WorkerProcess, scalar, wait_finished, wait_for_worker, wait_until
from tests.reliability.conftest import free_port, report

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-live-" + "Zq9Ws7Yx" * 4
OTHER = "sk-ant-" + "Hk3Lp8Mn" * 4
TERMINAL = ("finished", "cancelled", "stopped", "failed")


def scan_redis(url: str, namespace: str) -> str:
    client = redis.Redis.from_url(url)
    chunks = []
    for key in client.scan_iter(f"*{namespace}*", count=1000):
        chunks.append(key.decode(errors="replace"))
        kind = client.type(key).decode()
        if kind == "string":
            chunks.append(repr(client.get(key)))
        elif kind == "hash":
            chunks.append(repr(client.hgetall(key)))
        elif kind == "list":
            chunks.append(repr(client.lrange(key, 0, -1)))
        elif kind in ("set",):
            chunks.append(repr(client.smembers(key)))
        elif kind == "zset":
            chunks.append(repr(client.zrange(key, 0, -1)))
        elif kind == "stream":
            chunks.append(repr(client.xrange(key)))
    return "\n".join(chunks)


def test_api_keys_appear_nowhere(
    redis_url: str, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {"OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": OTHER, "MY_GATEWAY_KEY": SECRET, "MY_AGENT_KEY": OTHER}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SPARRING_MODEL_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SPARRING_LIVE_MIRROR", "1")  # the Redis mirror too
    runtime.reset()
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(threads=4, log_path=str(log_path), env={"SPARRING_LOG_LEVEL": "DEBUG"})
    dead_port = free_port()
    service, echoing = FakeAgentServer().__enter__(), FakeAgentServer().__enter__()
    echoing.script(["401"])  # answers with the Authorization header it got, as some services do

    def http_agent(url: str) -> dict[str, object]:
        settings = {"url": url, "request": '{"conversation": {{messages}}, "sid": {{session_id}}}'}
        settings |= {"response": "data.text", "headers": {"Authorization": "Bearer ${MY_AGENT_KEY}"}}
        return {"agent_kind": "http", "agent_target": settings, "max_messages": 4}

    try:
        wait_for_worker(worker)
        ids = [
            submit.submit_battle({"agent_model": "sim/agent?concede=0.3", "max_messages": 6}),
            # a real provider over HTTP, unreachable: its error is recorded, the key is not
            submit.submit_battle(
                {
                    "agent_model": "openai/gpt-4o-mini",
                    "api_base": f"http://127.0.0.1:{dead_port}/v1",
                    "api_key_env": "MY_GATEWAY_KEY",
                    "max_messages": 4,
                }
            ),
            submit.submit_battle(
                {"agent_model": "anthropic/claude-3-5-haiku-latest", "max_messages": 2, "time_limit_s": 20}
            ),
            # an HTTP agent whose header takes the key from the environment, and one that echoes it back
            submit.submit_battle(http_agent(service.url)),
            submit.submit_battle(http_agent(echoing.url)),
        ]
        run_id = runs.submit_run({"runs": 6, "max_messages": 6, "agents": [{"model": "sim/agent?concede=0.2"}]})
        wait_finished(ids, 120)
        wait_until(lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL, 120)
    finally:
        worker.stop()
        service.__exit__()
        echoing.__exit__()
    assert service.requests and service.requests[0].headers["authorization"] == f"Bearer {OTHER}"
    exports = tmp_path / "exports"
    for args in (
        ["export", "--all", "--out", str(exports / "all")],
        ["export", "--run", run_id, "--format", "csv", "--out", str(exports / "run")],
        ["export", "--battle", ids[1], "--format", "csv", "--out", str(exports / "battle")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "sparring", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        assert done.returncode == 0, done.stderr
    health = subprocess.run(
        [sys.executable, "-m", "sparring", "health", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    db = runtime.get_runtime().settings.db_path
    export_bytes = b"".join(p.read_bytes() for p in exports.rglob("*") if p.is_file())
    haystacks = {
        "DuckDB file": db.read_bytes()
        + (db.with_suffix(".duckdb.wal").read_bytes() if db.with_suffix(".duckdb.wal").exists() else b""),
        "DuckDB rows": "\n".join(
            repr(row) for rows in export.table_rows(runtime.get_runtime().store).values() for row in rows
        ).encode(),
        "Redis keys and payloads": scan_redis(redis_url, os.environ["SPARRING_NAMESPACE"]).encode(),
        "worker log": log_path.read_bytes(),
        "exports": export_bytes,
        "health output": health.stdout.encode() + health.stderr.encode(),
    }
    found = {name: sum(blob.count(k.encode()) for k in (SECRET, OTHER)) for name, blob in haystacks.items()}
    expected = {name: 0 for name in haystacks}
    report("a fake key in the environment of the app and the worker", expected, found)
    assert found == expected
    assert scalar("SELECT count(*) FROM battles WHERE outcome = 'failed'") == 3  # the real providers, the 401 did fail
    assert b"MY_GATEWAY_KEY" in haystacks["DuckDB rows"]  # the key's name is kept, its value never
    assert b"${MY_AGENT_KEY}" in haystacks["DuckDB rows"]


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def test_two_minute_soak_keeps_worker_memory_flat(redis_url: str) -> None:
    worker = WorkerProcess(threads=8)
    samples: list[tuple[float, float]] = []
    submitted: list[str] = []
    battle = {"agent_model": "sim/agent?concede=0.05&latency_ms=20", "max_messages": 10}
    try:
        wait_for_worker(worker)
        started = time.monotonic()
        while time.monotonic() - started < 120:
            pending = scalar("SELECT count(*) FROM battles WHERE status <> 'finished'") or 0
            for _ in range(max(0, 12 - pending)):  # keep the worker busy at a steady level
                submitted.append(submit.submit_battle(battle))
            samples.append((time.monotonic() - started, rss_mb(worker.pid)))
            time.sleep(1)
        wait_finished(submitted, 120)
    finally:
        worker.stop()
    warm = [mb for t, mb in samples if 30 <= t < 40]
    late = [mb for t, mb in samples if t >= 110]
    baseline, end = sum(warm) / len(warm), sum(late) / len(late)
    growth = (end - baseline) / baseline
    found = {
        "battles finished": scalar("SELECT count(*) FROM battles WHERE status = 'finished'"),
        "memory growth after warm-up <= 10%": growth <= 0.10,
    }
    expected = {"battles finished": len(submitted), "memory growth after warm-up <= 10%": True}
    report(
        f"2-minute soak: RSS {baseline:.0f} MB after warm-up, {end:.0f} MB at the end ({growth:+.1%})", expected, found
    )
    assert found == expected
