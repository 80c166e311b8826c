"""Read models for upkeep: the health report's and the recovery's sets.

Apart from ``reads`` because workers read them: this module imports neither pandas nor
pyarrow (about 50 MB of a worker's memory; ``tests/jobs/test_worker_imports.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sparring.store import Store
from sparring.store.db import Connection

# -- health ------------------------------------------------------------------------------------------

BATTLE_COUNTS = """
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE outcome = 'failed') AS failed,
       count(*) FILTER (WHERE outcome = 'failed' AND ended_at > now() - INTERVAL 1 DAY) AS failed_24h,
       count(*) AS total
FROM battles
"""
RECENT_FAILURES = """
SELECT battle_id, error_kind, error, ended_at FROM battles
WHERE outcome = 'failed' ORDER BY ended_at DESC NULLS LAST LIMIT ?
"""


@dataclass(frozen=True, slots=True)
class BattleCounts:
    queued: int
    running: int
    failed: int
    failed_24h: int
    total: int


@dataclass(frozen=True, slots=True)
class FailedBattle:
    battle_id: str
    kind: str | None
    error: str | None
    ended_at: dt.datetime | None


@dataclass(frozen=True)
class StoreHealth:
    """The store's part of the health report: battle counts and the latest failures."""

    counts: BattleCounts
    recent_failures: list[FailedBattle]


def store_health(store: Store, errors_limit: int) -> StoreHealth:
    def both(con: Connection) -> StoreHealth:
        counts = con.execute(BATTLE_COUNTS).fetchone() or (0, 0, 0, 0, 0)
        failures = con.execute(RECENT_FAILURES, [errors_limit]).fetchall()
        return StoreHealth(BattleCounts(*counts), [FailedBattle(*row) for row in failures])

    return store.read(both)


# -- recovery ----------------------------------------------------------------------------------------

UNFINISHED_BATTLES = "SELECT battle_id FROM battles WHERE status IN ('queued', 'running')"
UNFINISHED_RUNS = """
SELECT run_id, status, error, total_battles FROM scale_runs
WHERE status IN ('queued', 'running', 'cancelling', 'stopping')
"""
UNFINISHED_JUDGE_RUNS = "SELECT judge_run_id FROM judge_runs WHERE status IN ('queued', 'running')"


@dataclass(frozen=True)
class Unfinished:
    """What the store says has not ended: what recovery makes the queue track again."""

    battles: list[str]
    runs: list[tuple[str, str, str | None, int]]  # run_id, status, error, total_battles
    judge_runs: list[str]


def unfinished(store: Store) -> Unfinished:
    return store.read(
        lambda con: Unfinished(
            [b for (b,) in con.execute(UNFINISHED_BATTLES).fetchall()],
            con.execute(UNFINISHED_RUNS).fetchall(),
            [j for (j,) in con.execute(UNFINISHED_JUDGE_RUNS).fetchall()],
        )
    )
