"""What every benchmark shares: an isolated environment, processes, timing, results."""

from __future__ import annotations

import csv
import datetime as dt
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.csv"
FIELDS = ["date", "benchmark", "metric", "value", "unit", "target", "met", "cores", "memory_gb", "notes"]


def machine() -> dict[str, Any]:
    return {
        "cores": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def record(
    benchmark: str, metric: str, value: float, unit: str, target: str = "", met: bool | None = None, notes: str = ""
) -> dict[str, Any]:
    """Append one dated row to bench/results.csv and return it."""
    info = machine()
    row = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "benchmark": benchmark,
        "metric": metric,
        "value": round(value, 3) if isinstance(value, float) else value,
        "unit": unit,
        "target": target,
        "met": "" if met is None else ("yes" if met else "NO"),
        "cores": info["cores"],
        "memory_gb": info["memory_gb"],
        "notes": notes,
    }
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    return row


def table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    print(f"\n{title}")
    headers = ["metric", "value", "unit", "target", "met"]
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  " + "  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths, strict=True)))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = (len(ordered) - 1) * q / 100
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextmanager
def environment(**overrides: str) -> Iterator[dict[str, str]]:
    """A fresh data folder and Redis namespace for this process and the processes it starts."""
    data = Path(tempfile.mkdtemp(prefix="sparring-bench-"))
    env = {
        "SPARRING_DATA_DIR": str(data),
        "SPARRING_NAMESPACE": "bench" + secrets.token_hex(4),
        "REDIS_URL": os.environ.get("SPARRING_TEST_REDIS_URL", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")),
        **overrides,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from jobs import dispatch, queue, runner
    from sparring import runtime, shared_state

    dispatch.wire()  # a benchmark is an entry point: the use cases reach the queue through it

    def reset() -> None:
        runtime.reset()
        shared_state.reset_local()
        queue.reset()
        runner.reset()

    reset()
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset()


class Process:
    """A program of ours in a subprocess, run from the repository with this environment."""

    STOP_GRACE_S = 20.0

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, stdout: int | None = None) -> None:
        # Its output goes to a log file kept for a look afterwards, unless the caller reads it.
        self.log = (
            None if stdout is not None else tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)  # noqa: SIM115
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log if self.log is not None else stdout,
            stderr=subprocess.STDOUT if stdout is None else None,
            text=stdout is not None,
        )
        self.ps = psutil.Process(self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss / 2**20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class Worker(Process):
    """``python -m jobs.worker`` in a subprocess."""

    def __init__(self, threads: int, env: dict[str, str] | None = None) -> None:
        super().__init__(["jobs.worker", "--workers", str(threads), "--log-level", "WARNING"], env=env)


class Ingester(Process):
    """``python -m jobs.ingest`` in a subprocess (the stream sink's one writer)."""

    def __init__(self) -> None:
        super().__init__(["jobs.ingest", "--log-level", "WARNING"])


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached in time")
        time.sleep(interval)


def wait_for_workers(count: int, timeout: float = 60) -> None:
    from jobs.submit import live_workers

    wait_until(lambda: len(live_workers()) >= count, timeout, interval=0.2)


def redis_server_cpu_seconds() -> float | None:
    """CPU time of the local redis-server, when it runs on this machine."""
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and "redis-server" in proc.info["name"]:
            times = proc.cpu_times()
            return float(times.user + times.system)
    return None


def scalar(sql: str, params: list[Any] | None = None) -> Any:
    from sparring.runtime import get_runtime

    rows = get_runtime().store.read(lambda con: con.execute(sql, params or []).fetchall())
    return rows[0][0] if rows else None


class FakeProvider(Process):
    """``python -m bench.fake_provider`` in a subprocess: an OpenAI-compatible server with a
    fixed latency (and optional jitter and 429s), for the real-HTTP path of the benchmarks."""

    STOP_GRACE_S = 10.0

    def __init__(self, latency_ms: float, jitter_ms: float = 0, rate_429: float = 0.0) -> None:
        super().__init__(
            ["bench.fake_provider", f"--latency-ms={latency_ms}", f"--jitter-ms={jitter_ms}", f"--rate-429={rate_429}"],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().split()
        if len(first) != 2 or first[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the fake provider did not start (it printed {first!r})")
        self.port = int(first[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self) -> dict[str, str]:
        """What makes every ``openai/...`` model call go to this server."""
        return {"OPENAI_API_BASE": self.base_url, "OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": "sk-bench-fake"}

    def stats(self, reset: bool = False) -> dict[str, int]:
        import httpx

        response = httpx.request("POST" if reset else "GET", f"http://127.0.0.1:{self.port}/stats", timeout=10)
        return dict(response.json())

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
