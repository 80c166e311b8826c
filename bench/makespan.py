"""1. Concurrency makespan: how close to the model's latency does a batch of battles finish?

Battles of 10 messages (5 adversary, 5 agent, 5 judge calls: 15 sequential model calls
each), every model answering in a fixed latency, in queue mode, on two paths:

- ``sim``: the built-in ``sim/...`` models, which never leave the worker process;
- ``http``: ``openai/...`` models over real HTTP to ``bench.fake_provider`` (an
  OpenAI-compatible server in its own process), as users run it; provider concurrency and
  rate limit raised out of the way.

Ideal makespan = ceil(battles / concurrent) × 15 × latency; we report measured / ideal,
and on the HTTP path the worker CPU per model call and the most calls the server saw at once.

``python -m bench.makespan [--path sim|http|both] [--case BATTLES,LATENCY_MS,WORKERS,THREADS]``
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from typing import Any

from bench.common import (
    FakeProvider,
    Ingester,
    Worker,
    environment,
    record,
    scalar,
    table,
    wait_for_workers,
    wait_until,
)

CALLS_PER_BATTLE = 15  # max_messages 10 with an agent that never concedes


def models(path: str, latency_ms: int) -> dict[str, Any]:
    if path == "http":
        return {
            "agents": [{"model": "openai/fake-agent"}],
            "adversary_model": "openai/fake-adversary",
            "judge_model": "openai/fake-judge",
        }
    sim = f"latency_ms={latency_ms}"
    return {
        "agents": [{"model": f"sim/agent?concede=0&{sim}"}],
        "adversary_model": f"sim/adversary?{sim}",
        "judge_model": f"sim/judge?{sim}",
    }


def run_case(
    battles: int,
    latency_ms: int,
    workers: int,
    threads: int,
    path: str = "sim",
    provider: FakeProvider | None = None,
    sink: str = "duckdb",
) -> dict[str, Any]:
    """One case; on the HTTP path against ``provider`` when given (left running), else a server of its own.

    ``sink="stream"``: the workers send their records through Redis to one ingester
    (``python -m jobs.ingest``), as workers on several machines do, instead of taking turns
    at the database file; the ingester's CPU is reported apart."""
    own = FakeProvider(latency_ms) if path == "http" and provider is None else None
    provider = provider or own
    overrides = {
        "SPARRING_PROVIDER_CONCURRENCY": str(max(256, workers * threads)),
        "SPARRING_PROVIDER_RATE_LIMIT": "1000000/minute",
        "SPARRING_HEARTBEAT_PERIOD_S": "1",
        **(provider.env() if provider else {}),
        **({"SPARRING_RECORD_SINK": "stream"} if sink == "stream" else {}),
    }
    try:
        with environment(**overrides):
            return measure(battles, latency_ms, workers, threads, path, provider, sink)
    finally:
        if own is not None:
            own.stop()


def measure(
    battles: int,
    latency_ms: int,
    workers: int,
    threads: int,
    path: str,
    provider: FakeProvider | None,
    sink: str = "duckdb",
) -> dict[str, Any]:
    from jobs import runs

    ingester = Ingester() if sink == "stream" else None
    pool = [Worker(threads) for _ in range(workers)]
    try:
        wait_for_workers(workers)
        time.sleep(8)  # let the workers finish importing litellm: we measure battles, not start-up
        if provider is not None:
            provider.stats(reset=True)
        cpu_before = sum(w.cpu_seconds() for w in pool)
        idle_rss = max(w.rss_mb() for w in pool)
        ingester_cpu_before = ingester.cpu_seconds() if ingester else 0.0
        server_cpu_before = provider.cpu_seconds() if provider else 0.0
        started = time.time()
        with PeakRss(pool) as rss:
            run_id = runs.submit_run({"runs": battles, "max_messages": 10, "seed": 1, **models(path, latency_ms)})
            wait_until(lambda: battles_done(run_id) >= battles, 900, interval=0.2)
        cpu = sum(w.cpu_seconds() for w in pool) - cpu_before
        if ingester is not None:  # every record committed to the file before it is read
            wait_until(lambda: ingester_drained(), 300, interval=0.2)
        ingester_cpu = ingester.cpu_seconds() - ingester_cpu_before if ingester else None
        ended = scalar("SELECT epoch_ms(max(ended_at)) / 1000.0 FROM battles WHERE run_id = ?", [run_id])
        wall = ended - started
        server = provider.stats() if provider else {}
        server_cpu = provider.cpu_seconds() - server_cpu_before if provider else 0.0
        failed = scalar("SELECT count(*) FROM battles WHERE run_id = ? AND outcome <> 'held'", [run_id])
        calls, call_errors = scalar("SELECT [count(*), count(error_type)] FROM llm_calls WHERE run_id = ?", [run_id])
        first_start = scalar("SELECT epoch_ms(min(started_at)) / 1000.0 FROM battles WHERE run_id = ?", [run_id])
        created = scalar(  # the fan-out: the run's battles recorded, first to last
            "SELECT [epoch_ms(min(created_at)) / 1000.0, epoch_ms(max(created_at)) / 1000.0] FROM battles "
            "WHERE run_id = ?",
            [run_id],
        )
        first_wave = scalar(  # from the first battle's start to the start of the last of the first wave
            "SELECT (epoch_ms(max(started_at)) - epoch_ms(min(started_at))) / 1000.0 FROM ("
            "SELECT started_at FROM battles WHERE run_id = ? ORDER BY started_at LIMIT ?)",
            [run_id, workers * threads],
        )
        battle_s = scalar(
            "SELECT avg(epoch_ms(ended_at) - epoch_ms(started_at)) / 1000.0 FROM battles WHERE run_id = ?", [run_id]
        )
        call_ms, gap_ms = breakdown(run_id)
    finally:
        for worker in pool:
            worker.stop()
        if ingester is not None:
            ingester.stop()
    concurrent = workers * threads
    ideal = math.ceil(battles / concurrent) * CALLS_PER_BATTLE * latency_ms / 1000
    makespan = ended - started
    return {
        "makespan_s": makespan,
        "ideal_s": ideal,
        "ratio": makespan / ideal,
        "cpu_percent": 100 * cpu / wall,
        "cpu_ms_per_call": 1000 * cpu / max(1, calls),
        "calls": calls,
        "call_errors": call_errors,
        "peak_rss_mb": rss.peak_mb,
        "idle_rss_mb": idle_rss,
        "not_held": failed,
        "first_start_s": first_start - started,
        "created_s": (created[0] - started, created[1] - started),
        "first_wave_s": first_wave,
        "battle_s": battle_s,
        "ideal_battle_s": CALLS_PER_BATTLE * latency_ms / 1000,
        "call_ms": call_ms,
        "gap_ms": gap_ms,
        "server_peak_in_flight": server.get("peak_in_flight"),
        "ingester_cpu_ms_per_call": 1000 * ingester_cpu / max(1, calls) if ingester_cpu is not None else None,
        "server_cpu_ms_per_call": 1000 * server_cpu / max(1, calls) if provider else None,
    }


def ingester_drained() -> bool:
    """Whether the record stream has nothing left that the ingester has not committed."""
    from sparring.livestate import GROUP
    from sparring.runtime import get_runtime
    from sparring.shared_state import redis_client

    settings = get_runtime().settings
    client = redis_client(settings.redis_url or "")
    stream = f"{settings.namespace}:records"
    try:
        groups = client.xinfo_groups(stream)
    except Exception:
        return False
    group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
    return group is not None and not group["pending"] and (group.get("lag") or 0) == 0


def battles_done(run_id: str) -> int:
    """Battles of the run that have ended, from Redis: polling the DuckDB file instead would take
    it from the worker several times a second, and the worker's commits would wait for it."""
    from jobs.queue import get_queue

    return get_queue().coord.run_done_add(run_id, [])


class PeakRss:
    """The largest resident memory any of the workers had, sampled every 0.25 s."""

    def __init__(self, pool: list[Worker]) -> None:
        self.pool = pool
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, *(w.rss_mb() for w in self.pool))
            if self._stop.wait(0.25):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def breakdown(run_id: str) -> tuple[float, float]:
    """Mean model-call latency, and mean time between one call's end and the next call."""
    row = scalar(
        """
        WITH calls AS (
            SELECT battle_id, epoch_us(started_at) / 1000.0 AS start_ms, latency_ms,
                   lead(epoch_us(started_at) / 1000.0) OVER (PARTITION BY battle_id ORDER BY started_at) AS next_ms
            FROM llm_calls WHERE run_id = ? AND purpose <> 'summary'
        )
        SELECT [avg(latency_ms), avg(next_ms - start_ms - latency_ms)] FROM calls
        """,
        [run_id],
    )
    return float(row[0]), float(row[1])


def explain(name: str, case: dict[str, Any], latency_ms: int, path: str) -> list[dict[str, Any]]:
    """Where the time beyond the ideal went (see BENCHMARKS.md)."""
    server = "the sim sleeps" if path == "sim" else "the server waits"
    return [
        record(name, "first battle recorded after", case["created_s"][0], "s", notes="submit, fan-out job picked up"),
        record(name, "last battle recorded after", case["created_s"][1], "s", notes="the fan-out's writes"),
        record(name, "first battle started after", case["first_start_s"], "s", notes="then enqueued, picked up"),
        record(name, "first wave started within", case["first_wave_s"], "s", notes="first to last start of it"),
        record(name, "battle duration, mean", case["battle_s"], "s", notes=f"ideal {case['ideal_battle_s']:.1f} s"),
        record(name, "model call latency, mean", case["call_ms"], "ms", notes=f"{server} {latency_ms} ms"),
        record(name, "time between calls, mean", case["gap_ms"], "ms", notes="engine, judge parsing, commits"),
    ]


# path, battles, latency (ms), workers, threads per worker, target for measured / ideal, peak RSS target (MB)
CASES: list[tuple[str, int, int, int, int, float, float | None]] = [
    ("sim", 200, 500, 1, 50, 1.10, None),
    ("sim", 200, 2000, 2, 100, 1.15, None),
    ("http", 100, 500, 1, 50, 1.10, None),
    ("http", 200, 2000, 2, 100, 1.15, 450),  # as the sim case: two workers of 100 threads
    ("http", 200, 2000, 1, 200, 1.15, 450),  # and one worker of 200 (issue 23 measured this one)
    ("http", 1000, 5000, 2, 500, 1.20, 700),
]
CPU_PER_CALL_TARGET_MS = 6.0  # real HTTP path, the worker's CPU per model call, everything included


def run(
    path: str,
    battles: int,
    latency_ms: int,
    workers: int,
    threads: int,
    target: float,
    rss: float | None,
    sink: str = "duckdb",
) -> list[dict[str, Any]]:
    case = run_case(battles=battles, latency_ms=latency_ms, workers=workers, threads=threads, path=path, sink=sink)
    label = "sim" if path == "sim" else "real HTTP"
    name = f"makespan {label}, {battles} battles, {workers * threads} at once, {latency_ms} ms"
    if workers > 1:
        name += f" ({workers} workers)"
    if sink == "stream":
        name += ", stream sink"
    rows = [
        record(name, "makespan", case["makespan_s"], "s", notes=f"ideal {case['ideal_s']:.1f} s"),
        record(name, "measured / ideal", case["ratio"], "", f"≤ {target:.2f}", case["ratio"] <= target),
        record(name, "worker CPU", case["cpu_percent"], "% of one core", notes=f"{workers} worker(s) together"),
        record(
            name,
            "worker peak RSS",
            case["peak_rss_mb"],
            "MB",
            f"≤ {rss:.0f}" if rss else "",
            case["peak_rss_mb"] <= rss if rss else None,
            notes="the largest worker",
        ),
        record(name, "worker RSS ready, before the run", case["idle_rss_mb"], "MB", notes="litellm imported"),
        record(name, "battles not held (errors)", case["not_held"], "", "0", case["not_held"] == 0),
    ]
    if path == "http":
        rows += [
            record(
                name,
                "worker CPU per model call",
                case["cpu_ms_per_call"],
                "ms",
                f"≤ {CPU_PER_CALL_TARGET_MS:g}",
                case["cpu_ms_per_call"] <= CPU_PER_CALL_TARGET_MS,
                notes=f"{case['calls']} calls, {case['call_errors']} failed",
            ),
            record(
                name,
                "calls in flight at the server, peak",
                case["server_peak_in_flight"] or 0,
                "",
                f"{workers * threads}",
                (case["server_peak_in_flight"] or 0) >= workers * threads,
            ),
            record(name, "server CPU per call", case["server_cpu_ms_per_call"] or 0.0, "ms", notes="the fake provider"),
        ]
    if case["ingester_cpu_ms_per_call"] is not None:
        rows.append(
            record(name, "ingester CPU per call", case["ingester_cpu_ms_per_call"], "ms", notes="python -m jobs.ingest")
        )
    rows += explain(name, case, latency_ms, path)
    table(f"1. Concurrency makespan: {name}", rows)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.makespan", description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["sim", "http", "both"], default="both")
    parser.add_argument(
        "--case", help="one case instead of the standard ones: BATTLES,LATENCY_MS,WORKERS,THREADS (with --path)"
    )
    parser.add_argument("--sink", choices=["duckdb", "stream"], default="duckdb", help="with --case")
    args = parser.parse_args(argv)
    if args.case:
        try:
            battles, latency_ms, workers, threads = (int(x) for x in args.case.split(","))
        except ValueError:
            parser.error(f"--case wants four whole numbers, BATTLES,LATENCY_MS,WORKERS,THREADS, not {args.case!r}")
        if min(battles, workers, threads) < 1 or latency_ms < 0:
            parser.error("--case: battles, workers and threads must be at least 1, the latency not negative")
        paths = ["sim", "http"] if args.path == "both" else [args.path]
        cases = [(p, battles, latency_ms, workers, threads, 1.15, None, args.sink) for p in paths]
    else:
        cases = [c for c in CASES if args.path in ("both", c[0])]
    rows = []
    for case in cases:
        rows += run(*case)
    return rows


if __name__ == "__main__":
    main()
