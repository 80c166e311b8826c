"""4. UI reads at scale: the reads behind the pages, on a file of 1,000,000 messages.

Each read is timed as the page does it, including attaching the file (a short read-only
connection): the hub list (latest 1,000 battles), one 100-message transcript, and one
scale-test report (statistics of a 2,000-battle run). Median and p95 over repetitions.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import median, percentile, record, table
from bench.generate import build
from sparring import records as r
from sparring.store import Store, ui_queries

REPEAT = 25


def hundred_message_battle(store: Store) -> str:
    spec = r.BattleSpec(
        r.AgentSpec("sim/agent", "prompt"),
        r.AdversarySpec("sim/adversary", "goal"),
        r.JudgeSpec("sim/judge"),
        max_messages=100,
    )
    battle_id = r.new_id()
    records: list[r.Record] = [r.BattleCreated(battle_id, spec), r.BattleStarted(battle_id)]
    for seq in range(1, 101):
        records.append(r.MessageAdded(r.Message(battle_id, seq, "user" if seq % 2 else "assistant", "x" * 300, "sim")))
        if seq % 2 == 0:
            records.append(r.VerdictAdded(r.Verdict(battle_id, seq, False, 0.9, "held", "sim/judge")))
    records.append(r.BattleFinished(battle_id, "held"))
    store.write(records)
    return battle_id


def timed(action: Callable[[], Any]) -> tuple[float, float]:
    action()  # warm the process (imports, the in-memory instance): pages run in a warm server
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return median(samples), percentile(samples, 95)


def main(path: Path | None = None) -> list[dict[str, Any]]:
    from sparring.report import run_stats

    if path is None:
        path = Path(tempfile.mkdtemp()) / "synthetic.duckdb"
        built = build(path)
    else:
        built = {
            "run_id": Store(path).read(
                lambda con: con.execute("SELECT run_id FROM scale_runs ORDER BY total_battles DESC LIMIT 1").fetchall()[
                    0
                ][0]
            )
        }
    store = Store(path)
    battle_id = hundred_message_battle(store)
    run_id = str(built["run_id"])
    cases = {
        "hub list (latest 1,000 battles)": lambda: store.read(lambda con: ui_queries.hub_rows(con, [], 1000)),
        "100-message transcript": lambda: store.read(lambda con: ui_queries.battle_update(con, battle_id)),
        "scale-test report (2,000 battles)": lambda: run_stats(store, run_id),
    }
    rows = []
    for name, action in cases.items():
        mid, p95 = timed(action)
        rows.append(record("UI reads at 1M messages", f"{name} median", mid, "ms", "≤ 150", mid <= 150))
        rows.append(record("UI reads at 1M messages", f"{name} p95", p95, "ms"))
    table("4. UI reads on 50,000 battles / 1,000,000 messages (each read attaches the file)", rows)
    return rows


if __name__ == "__main__":
    main()
