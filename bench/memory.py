"""Where a worker's memory goes: RSS after each stage of a worker's life, in one process.

    python -m bench.memory            # about 20 s

Stages: the worker's own imports (jobs, Huey, DuckDB, NumPy, redis), litellm imported and
warmed up (one sim call), the store migrated, then 50 battles at once (zero-latency sim,
threads of this process, as a worker's threads run them), then 200 more. Used to explain
the worker RSS figure of benchmark 5 (see BENCHMARKS.md); `make bench` runs it last.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import psutil

from bench.common import record, table

CONCURRENT = 50


def main() -> list[dict[str, object]]:
    os.environ["SPARRING_DATA_DIR"] = tempfile.mkdtemp(prefix="sparring-memory-")
    os.environ.pop("REDIS_URL", None)  # in-process state: this measures memory, not Redis
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    process = psutil.Process()
    stages: list[tuple[str, float]] = [("interpreter", process.memory_info().rss / 2**20)]

    def stage(name: str) -> None:
        stages.append((name, process.memory_info().rss / 2**20))

    import jobs.tasks  # what a worker imports before its first battle
    import jobs.worker  # noqa: F401

    stage("worker imports (jobs, Huey, DuckDB, NumPy, redis)")
    from sparring.gateway import warm_up

    warm_up()
    stage("litellm imported and warmed up")
    from sparring import usecases
    from sparring.runtime import get_runtime

    get_runtime().store.migrate()
    stage("store migrated")
    spec = {"agent_model": "sim/agent?concede=0", "max_messages": 10}

    def battle(_: int) -> None:
        usecases.run_inline(usecases.create_battle(spec))

    with ThreadPoolExecutor(CONCURRENT) as pool:
        list(pool.map(battle, range(CONCURRENT)))
    stage(f"after {CONCURRENT} battles at once")
    with ThreadPoolExecutor(CONCURRENT) as pool:
        list(pool.map(battle, range(4 * CONCURRENT)))
    stage(f"after {4 * CONCURRENT} more")
    rows = []
    previous = stages[0][1]
    for name, mb in stages:
        rows.append(record("worker memory by stage", f"RSS {name}", mb, "MB", notes=f"{mb - previous:+.0f} MB"))
        previous = mb
    table("Worker memory, stage by stage (one process)", rows)
    return rows


if __name__ == "__main__":
    main()
