"""1. Concurrency makespan: how close to the model's latency does a batch of battles finish?

200 sim battles of 10 messages (5 adversary, 5 agent, 5 judge calls: 15 sequential model
calls each), every sim model answering in a fixed latency, in queue mode.
Ideal makespan = ceil(battles / concurrent) × 15 × latency; we report measured / ideal.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench.common import Worker, environment, record, scalar, table, wait_for_workers, wait_until

CALLS_PER_BATTLE = 15  # max_messages 10 with an agent that never concedes


def run_case(battles: int, latency_ms: int, workers: int, threads: int) -> dict[str, Any]:
    sim = f"latency_ms={latency_ms}"
    overrides = {
        "SPARRING_PROVIDER_CONCURRENCY": str(max(256, workers * threads)),
        "SPARRING_HEARTBEAT_PERIOD_S": "1",
    }
    with environment(**overrides):
        from jobs import runs

        pool = [Worker(threads) for _ in range(workers)]
        try:
            wait_for_workers(workers)
            time.sleep(8)  # let the workers finish importing litellm: we measure battles, not start-up
            cpu_before = sum(w.cpu_seconds() for w in pool)
            started = time.time()
            run_id = runs.submit_run(
                {
                    "runs": battles,
                    "max_messages": 10,
                    "seed": 1,
                    "agents": [{"model": f"sim/agent?concede=0&{sim}"}],
                    "adversary_model": f"sim/adversary?{sim}",
                    "judge_model": f"sim/judge?{sim}",
                }
            )
            wait_until(
                lambda: (
                    scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'finished'", [run_id]) == battles
                ),
                600,
                interval=0.2,
            )
            ended = scalar("SELECT epoch_ms(max(ended_at)) / 1000.0 FROM battles WHERE run_id = ?", [run_id])
            wall = time.time() - started
            cpu = sum(w.cpu_seconds() for w in pool) - cpu_before
            peak_rss = max(w.rss_mb() for w in pool)
            failed = scalar("SELECT count(*) FROM battles WHERE run_id = ? AND outcome <> 'held'", [run_id])
            first_start = scalar("SELECT epoch_ms(min(started_at)) / 1000.0 FROM battles WHERE run_id = ?", [run_id])
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
    concurrent = workers * threads
    ideal = math.ceil(battles / concurrent) * CALLS_PER_BATTLE * latency_ms / 1000
    makespan = ended - started
    return {
        "makespan_s": makespan,
        "ideal_s": ideal,
        "ratio": makespan / ideal,
        "cpu_percent": 100 * cpu / wall,
        "peak_rss_mb": peak_rss,
        "not_held": failed,
        "first_start_s": first_start - started,
        "first_wave_s": first_wave,
        "battle_s": battle_s,
        "ideal_battle_s": CALLS_PER_BATTLE * latency_ms / 1000,
        "call_ms": call_ms,
        "gap_ms": gap_ms,
    }


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


def explain(name: str, case: dict[str, Any], latency_ms: int) -> list[dict[str, Any]]:
    """Where the time beyond the ideal went (see BENCHMARKS.md)."""
    return [
        record(name, "first battle started after", case["first_start_s"], "s", notes="submit, fan-out, pick-up"),
        record(name, "first wave started within", case["first_wave_s"], "s", notes="first to last start of it"),
        record(name, "battle duration, mean", case["battle_s"], "s", notes=f"ideal {case['ideal_battle_s']:.1f} s"),
        record(name, "model call latency, mean", case["call_ms"], "ms", notes=f"the sim sleeps {latency_ms} ms"),
        record(name, "time between calls, mean", case["gap_ms"], "ms", notes="engine, judge parsing, commits"),
    ]


CASES = [  # battles, latency (ms), workers, threads per worker, target for measured / ideal
    (200, 500, 1, 50, 1.10),
    (200, 2000, 2, 100, 1.15),
]


def main() -> list[dict[str, Any]]:
    rows = []
    for battles, latency_ms, workers, threads, target in CASES:
        case = run_case(battles=battles, latency_ms=latency_ms, workers=workers, threads=threads)
        name = f"makespan {battles} battles, {workers * threads} at once, {latency_ms} ms"
        rows += [
            record(name, "makespan", case["makespan_s"], "s", notes=f"ideal {case['ideal_s']:.1f} s"),
            record(name, "measured / ideal", case["ratio"], "", f"≤ {target:.2f}", case["ratio"] <= target),
            record(name, "worker CPU", case["cpu_percent"], "% of one core"),
            record(name, "worker peak RSS", case["peak_rss_mb"], "MB"),
            record(name, "battles not held (errors)", case["not_held"], "", "0", case["not_held"] == 0),
            *explain(name, case, latency_ms),
        ]
    table("1. Concurrency makespan", rows)
    return rows


if __name__ == "__main__":
    main()
