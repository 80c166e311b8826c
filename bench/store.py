"""3. Store: group-commit throughput and commit latency, on an empty file and at 1M messages.

Writer threads hand over what the engine hands over per model call (a message and its
call record) and wait for the commit, as battles do; a separate process reads five times a
second, as the UI does. Rows/s counts every row committed (messages and model calls).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import median, percentile, record, table
from bench.generate import build
from sparring import records as r
from sparring.store import Store
from sparring.store.recorder import GroupCommitter

WRITERS = 200
SECONDS = 12.0


def _reader(path: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = Store(Path(path))
    reads = errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            store.read(lambda con: con.execute("SELECT count(*) FROM battles WHERE status = 'running'").fetchall())
            reads += 1
        except Exception:
            errors += 1
        time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))
    out.put((reads, errors))


def measure(path: Path) -> dict[str, Any]:
    store = Store(path)
    store.migrate()
    committer = GroupCommitter(path)  # a fresh committer: its statistics are this run's only
    spec = r.BattleSpec(r.AgentSpec("sim/agent", "p"), r.AdversarySpec("sim/adversary", "g"), r.JudgeSpec("sim/judge"))
    ids = [r.new_id() for _ in range(WRITERS)]
    committer.write([r.BattleCreated(b, spec) for b in ids])
    committer.stats.commit_ms.clear()
    stop = threading.Event()
    written = [0] * WRITERS

    def writer(index: int) -> None:
        battle_id = ids[index]
        seq = 0
        while not stop.is_set():
            seq += 1
            call = r.LLMCall(battle_id, seq, "agent", "sim/agent", "sim", 1, r.utcnow(), 3.0, 120, 25, 0.00004)
            message = r.Message(
                battle_id, seq, "assistant" if seq % 2 == 0 else "user", "x" * 200, "sim/agent", 120, 25, 3.0, 0.00004
            )
            committer.write([r.CallRecorded(call), r.MessageAdded(message)])
            written[index] += 2

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(path), SECONDS + 2, out))
    reader.start()
    time.sleep(1.5)  # the reader process is up
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    reader.join(30)
    reads, errors = out.get(timeout=10)
    latencies = list(committer.stats.commit_ms)
    committer.close()
    return {
        "rows_per_s": sum(written) / elapsed,
        "p50_ms": median(latencies),
        "p95_ms": percentile(latencies, 95),
        "commits": len(latencies),
        "reads": reads,
        "read_errors": errors,
    }


def main(big: Path | None = None) -> list[dict[str, Any]]:
    rows = []
    empty = measure(Path(tempfile.mkdtemp()) / "empty.duckdb")
    if big is None:
        big = Path(tempfile.mkdtemp()) / "synthetic.duckdb"
        build(big)
    large = measure(big)
    for name, result in (("empty file", empty), ("1M messages / 50k battles", large)):
        bench = f"store, {name}"
        rows += [
            record(
                bench,
                "group-commit throughput",
                result["rows_per_s"],
                "rows/s",
                "≥ 5,000",
                result["rows_per_s"] >= 5000,
                notes=f"{WRITERS} writer threads, a reader at 5/s",
            ),
            record(bench, "commit latency p50", result["p50_ms"], "ms"),
            record(bench, "commit latency p95", result["p95_ms"], "ms", "≤ 250", result["p95_ms"] <= 250),
            record(
                bench,
                "reader errors",
                result["read_errors"],
                "",
                "0",
                result["read_errors"] == 0,
                notes=f"{result['reads']} reads",
            ),
        ]
    table("3. Store: group commit with a reader polling 5/s", rows)
    return rows


if __name__ == "__main__":
    main()
