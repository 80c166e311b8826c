"""Coordination between workers: leases, cancel flags, the active set, heartbeats.

Huey does not acknowledge tasks (its Redis storage pops a task destructively), so a
task whose worker is SIGKILLed is simply gone. What survives is here:

- a **lease** per running battle (``SET NX PX``), renewed while it runs: the battle's
  owner; a second copy of the same job sees the lease and steps aside;
- the **active set**: every battle submitted and not yet finished, with the time it was
  last touched (enqueued, started, renewed). The reaper re-enqueues an active battle
  that has no lease, is not in the queue and has not been touched for a lease period;
- **cancel flags**, checked by the engine between model calls;
- **heartbeats** of workers, expiring on their own;
- the **re-judges** asked for and not yet ended, touched like the active set while their
  job holds its lease, so that the reaper can re-enqueue one whose worker died;
- a **state mark** that never expires: when it is missing, the state above was lost (a
  Redis restarted without persistence) and ``jobs.recovery`` rebuilds it from the store.

Queue mode keeps all of it in Redis; embedded mode in a small SQLite file next to the
queue, so that the app, a worker and the CLI on one machine see the same state.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import redis

RUN_STATE_TTL_S = 30 * 24 * 3600

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# SET NX that answers with the value held, ours or the earlier claimant's, in one step.
_CLAIM_VALUE = """
local held = redis.call('GET', KEYS[1])
if held then
  return held
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Connectivity(Protocol):
    def ping(self) -> float:
        """Round trip to the backing store, in milliseconds; raises when it does not answer."""


class Leases(Protocol):
    """Who runs a battle: at most one owner per battle, until its lease expires."""

    def acquire_lease(self, battle_id: str, owner: str, ttl_s: float) -> bool:
        """Take the battle's lease for ``ttl_s`` seconds if nobody holds it; True if taken."""

    def renew_lease(self, battle_id: str, owner: str, ttl_s: float) -> bool:
        """Extend the lease to ``ttl_s`` from now if ``owner`` still holds it; False if it was lost."""

    def release_lease(self, battle_id: str, owner: str) -> None:
        """Give the lease up, only if ``owner`` holds it (an expired lease may be someone else's)."""

    def lease_owner(self, battle_id: str) -> str | None:
        """The owner of the battle's live lease, or None."""


class CancelFlags(Protocol):
    """Requests to stop a battle or a whole run, read by the engine between model calls."""

    def request_cancel(self, battle_id: str) -> None:
        """Flag the battle to stop (the flag lasts a week)."""

    def cancel_requested(self, battle_id: str) -> bool:
        """Whether the battle's own flag is set."""

    def stop_requested(self, battle_id: str, run_id: str | None) -> bool:
        """Whether the battle's flag or its run's is set, in one round trip (checked before every call)."""

    def clear_cancel(self, battle_id: str) -> None:
        """Drop the battle's flag (a retry must not inherit it)."""

    def request_run_cancel(self, run_id: str, reason: str) -> None:
        """Flag every battle of the run to stop, saying why (a stopped run stays stopped)."""

    def run_cancel_reason(self, run_id: str) -> str | None:
        """Why the run was stopped, or None while it is not."""


class ActiveSet(Protocol):
    """Battles submitted and not finished, and re-judges asked for and not ended, with when each was touched."""

    def touch_active(self, battle_id: str, at: float | None = None) -> None:
        """Add the battle or mark it touched at ``at`` (now by default; 0 makes it due to the reaper at once)."""

    def touch_active_many(self, battle_ids: list[str]) -> None:
        """Touch several battles now, in one round trip (a run's fan-out)."""

    def drop_active(self, battle_id: str) -> None:
        """Remove a battle that finished, or whose submit was undone."""

    def active(self) -> dict[str, float]:
        """Every active battle and the time it was last touched (epoch seconds)."""

    def touch_rejudge(self, judge_run_id: str) -> None:
        """Add the re-judge or mark it touched now."""

    def drop_rejudge(self, judge_run_id: str) -> None:
        """Remove a re-judge that ended."""

    def rejudges(self) -> dict[str, float]:
        """Every open re-judge and the time it was last touched (epoch seconds)."""


class Claims(Protocol):
    """One-shot claims, so that only one process does a thing (summarise a run, requeue a battle)."""

    def claim(self, name: str, ttl_s: float) -> bool:
        """Claim ``name`` for ``ttl_s`` seconds if nobody holds it; True if claimed."""

    def claim_value(self, name: str, value: str, ttl_s: float) -> str:
        """Claim ``name`` with ``value`` unless held, atomically; the value held (ours or the earlier one)."""

    def unclaim(self, name: str) -> None:
        """Drop the claim on ``name``, whoever holds it."""


class RunLedger(Protocol):
    """Per scale run: how many battles it has and which have finished, so that the last one summarises it."""

    def set_run_total(self, run_id: str, total: int) -> None:
        """Record the run's number of battles and list the run among the open ones."""

    def run_total(self, run_id: str) -> int | None:
        """The run's number of battles, or None if the ledger does not know the run."""

    def run_done_add(self, run_id: str, battle_ids: list[str]) -> int:
        """Count these battles as finished (idempotent); return how many of the run have finished."""

    def run_done_remove(self, run_id: str, battle_id: str) -> None:
        """Count a battle as not finished again (it is being retried)."""

    def runs(self) -> list[str]:
        """Ids of the runs the ledger knows."""


class Heartbeats(Protocol):
    """Workers announce themselves; a heartbeat expires on its own when its worker dies."""

    def publish_heartbeat(self, worker_id: str, info: dict[str, Any], ttl_s: float) -> None:
        """Publish (or refresh) the worker's heartbeat ``info``, valid for ``ttl_s`` seconds."""

    def remove_heartbeat(self, worker_id: str) -> None:
        """Withdraw the worker's heartbeat (a clean shutdown)."""

    def heartbeats(self) -> list[dict[str, Any]]:
        """The ``info`` of every heartbeat not yet expired."""


class StateMark(Protocol):
    """A mark that never expires: its absence means the state above was lost and must be rebuilt."""

    def state_marked(self) -> bool:
        """Whether the mark is present."""

    def mark_state(self) -> None:
        """Set the mark (after ``jobs.recovery`` rebuilt the state from the store)."""


class Coordinator(Connectivity, Leases, CancelFlags, ActiveSet, Claims, RunLedger, Heartbeats, StateMark, Protocol):
    """All of the coordination state: what ``Queue.coord`` holds, in Redis or in SQLite."""


class RedisCoordinator:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.ns = namespace
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._claim_value = client.register_script(_CLAIM_VALUE)

    def _k(self, *parts: str) -> str:
        return ":".join((self.ns, *parts))

    def ping(self) -> float:
        started = time.perf_counter()
        self.client.ping()
        return (time.perf_counter() - started) * 1000

    def acquire_lease(self, battle_id: str, owner: str, ttl_s: float) -> bool:
        return bool(self.client.set(self._k("lease", battle_id), owner, nx=True, px=int(ttl_s * 1000)))

    def renew_lease(self, battle_id: str, owner: str, ttl_s: float) -> bool:
        return bool(self._renew(keys=[self._k("lease", battle_id)], args=[owner, int(ttl_s * 1000)]))

    def release_lease(self, battle_id: str, owner: str) -> None:
        self._release(keys=[self._k("lease", battle_id)], args=[owner])

    def lease_owner(self, battle_id: str) -> str | None:
        value = self.client.get(self._k("lease", battle_id))
        return value.decode() if isinstance(value, bytes) else value

    def request_cancel(self, battle_id: str) -> None:
        self.client.set(self._k("cancel", battle_id), "1", ex=7 * 24 * 3600)

    def cancel_requested(self, battle_id: str) -> bool:
        return bool(self.client.exists(self._k("cancel", battle_id)))

    def stop_requested(self, battle_id: str, run_id: str | None) -> bool:
        """The battle's cancel flag or its run's, in one round trip (checked before every call)."""
        keys = [self._k("cancel", battle_id)] + ([self._k("run", run_id, "cancel")] if run_id else [])
        return bool(self.client.exists(*keys))

    def clear_cancel(self, battle_id: str) -> None:
        self.client.delete(self._k("cancel", battle_id))

    def touch_active(self, battle_id: str, at: float | None = None) -> None:
        self.client.zadd(self._k("active"), {battle_id: time.time() if at is None else at})

    def touch_active_many(self, battle_ids: list[str]) -> None:
        if battle_ids:
            now = time.time()
            self.client.zadd(self._k("active"), dict.fromkeys(battle_ids, now))

    def drop_active(self, battle_id: str) -> None:
        self.client.zrem(self._k("active"), battle_id)

    def active(self) -> dict[str, float]:
        return self._touched("active")

    def _touched(self, name: str) -> dict[str, float]:
        pairs: list[tuple[bytes | str, float]] = self.client.zrange(self._k(name), 0, -1, withscores=True)  # type: ignore[assignment]
        return {(m.decode() if isinstance(m, bytes) else m): float(s) for m, s in pairs}

    def touch_rejudge(self, judge_run_id: str) -> None:
        self.client.zadd(self._k("rejudges"), {judge_run_id: time.time()})

    def drop_rejudge(self, judge_run_id: str) -> None:
        self.client.zrem(self._k("rejudges"), judge_run_id)

    def rejudges(self) -> dict[str, float]:
        return self._touched("rejudges")

    def claim(self, name: str, ttl_s: float) -> bool:
        return bool(self.client.set(self._k("claim", name), "1", nx=True, px=int(ttl_s * 1000)))

    def claim_value(self, name: str, value: str, ttl_s: float) -> str:
        held = self._claim_value(keys=[self._k("claim", name)], args=[value, int(ttl_s * 1000)])
        return held.decode() if isinstance(held, bytes) else str(held)

    def unclaim(self, name: str) -> None:
        self.client.delete(self._k("claim", name))

    def set_run_total(self, run_id: str, total: int) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._k("run", run_id, "total"), total, ex=RUN_STATE_TTL_S)
        pipe.sadd(self._k("runs"), run_id)
        pipe.execute()

    def run_total(self, run_id: str) -> int | None:
        value = self.client.get(self._k("run", run_id, "total"))
        return int(value) if value is not None else None

    def run_done_add(self, run_id: str, battle_ids: list[str]) -> int:
        key = self._k("run", run_id, "done")
        pipe = self.client.pipeline()
        if battle_ids:
            pipe.sadd(key, *battle_ids)
        pipe.expire(key, RUN_STATE_TTL_S)
        pipe.scard(key)
        return int(pipe.execute()[-1])

    def run_done_remove(self, run_id: str, battle_id: str) -> None:
        self.client.srem(self._k("run", run_id, "done"), battle_id)

    def runs(self) -> list[str]:
        return [m.decode() if isinstance(m, bytes) else m for m in self.client.smembers(self._k("runs"))]

    def request_run_cancel(self, run_id: str, reason: str) -> None:
        self.client.set(self._k("run", run_id, "cancel"), reason, ex=RUN_STATE_TTL_S)

    def run_cancel_reason(self, run_id: str) -> str | None:
        value = self.client.get(self._k("run", run_id, "cancel"))
        return value.decode() if isinstance(value, bytes) else value

    def publish_heartbeat(self, worker_id: str, info: dict[str, Any], ttl_s: float) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._k("worker", worker_id), json.dumps(info), px=int(ttl_s * 1000))
        pipe.sadd(self._k("workers"), worker_id)
        pipe.execute()

    def remove_heartbeat(self, worker_id: str) -> None:
        pipe = self.client.pipeline()
        pipe.delete(self._k("worker", worker_id))
        pipe.srem(self._k("workers"), worker_id)
        pipe.execute()

    def heartbeats(self) -> list[dict[str, Any]]:
        ids = [m.decode() if isinstance(m, bytes) else m for m in self.client.smembers(self._k("workers"))]
        if not ids:
            return []
        values = self.client.mget([self._k("worker", i) for i in ids])
        beats, gone = [], []
        for worker_id, value in zip(ids, values, strict=True):
            if value is None:
                gone.append(worker_id)
            else:
                beats.append(json.loads(value))
        if gone:
            self.client.srem(self._k("workers"), *gone)
        return beats

    def state_marked(self) -> bool:
        return bool(self.client.exists(self._k("state")))

    def mark_state(self) -> None:
        self.client.set(self._k("state"), str(time.time()))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL);
CREATE TABLE IF NOT EXISTS active (battle_id TEXT PRIMARY KEY, touched REAL NOT NULL);
CREATE TABLE IF NOT EXISTS run_total (run_id TEXT PRIMARY KEY, total INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS run_done (run_id TEXT NOT NULL, battle_id TEXT NOT NULL, PRIMARY KEY (run_id, battle_id));
CREATE TABLE IF NOT EXISTS rejudges (judge_run_id TEXT PRIMARY KEY, touched REAL NOT NULL);
"""


class SqliteCoordinator:
    """The same contract on SQLite (embedded mode: one machine, maybe several processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con().executescript(_SCHEMA)

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    class _Tx:
        def __init__(self, con: sqlite3.Connection) -> None:
            self.con = con

        def __enter__(self) -> sqlite3.Connection:
            self.con.execute("BEGIN IMMEDIATE")
            return self.con

        def __exit__(self, kind: object, value: object, tb: object) -> None:
            self.con.execute("COMMIT" if kind is None else "ROLLBACK")

    def _tx(self) -> SqliteCoordinator._Tx:
        return self._Tx(self._con())

    def _get(self, con: sqlite3.Connection, key: str) -> str | None:
        row = con.execute("SELECT value, expires FROM kv WHERE key = ?", [key]).fetchone()
        if row is None or (row[1] is not None and row[1] <= time.time()):
            return None
        return str(row[0])

    def _set(self, con: sqlite3.Connection, key: str, value: str, ttl_s: float | None) -> None:
        expires = time.time() + ttl_s if ttl_s is not None else None
        con.execute("INSERT OR REPLACE INTO kv (key, value, expires) VALUES (?, ?, ?)", [key, value, expires])

    def ping(self) -> float:
        started = time.perf_counter()
        self._con().execute("SELECT 1").fetchone()
        return (time.perf_counter() - started) * 1000

    def acquire_lease(self, battle_id: str, owner: str, ttl_s: float) -> bool:
        with self._tx() as con:
            if self._get(con, f"lease:{battle_id}") is not None:
                return False
            self._set(con, f"lease:{battle_id}", owner, ttl_s)
            return True

    def renew_lease(self, battle_id: str, owner: str, ttl_s: float) -> bool:
        with self._tx() as con:
            if self._get(con, f"lease:{battle_id}") != owner:
                return False
            self._set(con, f"lease:{battle_id}", owner, ttl_s)
            return True

    def release_lease(self, battle_id: str, owner: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM kv WHERE key = ? AND value = ?", [f"lease:{battle_id}", owner])

    def lease_owner(self, battle_id: str) -> str | None:
        return self._get(self._con(), f"lease:{battle_id}")

    def request_cancel(self, battle_id: str) -> None:
        with self._tx() as con:
            self._set(con, f"cancel:{battle_id}", "1", 7 * 24 * 3600)

    def cancel_requested(self, battle_id: str) -> bool:
        return self._get(self._con(), f"cancel:{battle_id}") is not None

    def stop_requested(self, battle_id: str, run_id: str | None) -> bool:
        if self.cancel_requested(battle_id):
            return True
        return bool(run_id and self.run_cancel_reason(run_id))

    def clear_cancel(self, battle_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM kv WHERE key = ?", [f"cancel:{battle_id}"])

    def touch_active(self, battle_id: str, at: float | None = None) -> None:
        touched = time.time() if at is None else at
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO active (battle_id, touched) VALUES (?, ?)", [battle_id, touched])

    def touch_active_many(self, battle_ids: list[str]) -> None:
        now = time.time()
        with self._tx() as con:
            con.executemany(
                "INSERT OR REPLACE INTO active (battle_id, touched) VALUES (?, ?)", [(b, now) for b in battle_ids]
            )

    def drop_active(self, battle_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM active WHERE battle_id = ?", [battle_id])

    def active(self) -> dict[str, float]:
        return {row[0]: row[1] for row in self._con().execute("SELECT battle_id, touched FROM active").fetchall()}

    def touch_rejudge(self, judge_run_id: str) -> None:
        with self._tx() as con:
            con.execute(
                "INSERT OR REPLACE INTO rejudges (judge_run_id, touched) VALUES (?, ?)", [judge_run_id, time.time()]
            )

    def drop_rejudge(self, judge_run_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM rejudges WHERE judge_run_id = ?", [judge_run_id])

    def rejudges(self) -> dict[str, float]:
        return {row[0]: row[1] for row in self._con().execute("SELECT judge_run_id, touched FROM rejudges").fetchall()}

    def claim(self, name: str, ttl_s: float) -> bool:
        with self._tx() as con:
            if self._get(con, f"claim:{name}") is not None:
                return False
            self._set(con, f"claim:{name}", "1", ttl_s)
            return True

    def claim_value(self, name: str, value: str, ttl_s: float) -> str:
        with self._tx() as con:
            held = self._get(con, f"claim:{name}")
            if held is not None:
                return held
            self._set(con, f"claim:{name}", value, ttl_s)
            return value

    def unclaim(self, name: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM kv WHERE key = ?", [f"claim:{name}"])

    def set_run_total(self, run_id: str, total: int) -> None:
        with self._tx() as con:
            con.execute("INSERT OR REPLACE INTO run_total (run_id, total) VALUES (?, ?)", [run_id, total])

    def run_total(self, run_id: str) -> int | None:
        row = self._con().execute("SELECT total FROM run_total WHERE run_id = ?", [run_id]).fetchone()
        return int(row[0]) if row else None

    def run_done_add(self, run_id: str, battle_ids: list[str]) -> int:
        with self._tx() as con:
            con.executemany(
                "INSERT OR IGNORE INTO run_done (run_id, battle_id) VALUES (?, ?)", [(run_id, b) for b in battle_ids]
            )
            row = con.execute("SELECT count(*) FROM run_done WHERE run_id = ?", [run_id]).fetchone()
        return int(row[0])

    def run_done_remove(self, run_id: str, battle_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM run_done WHERE run_id = ? AND battle_id = ?", [run_id, battle_id])

    def runs(self) -> list[str]:
        return [row[0] for row in self._con().execute("SELECT run_id FROM run_total").fetchall()]

    def request_run_cancel(self, run_id: str, reason: str) -> None:
        with self._tx() as con:
            self._set(con, f"run-cancel:{run_id}", reason, None)

    def run_cancel_reason(self, run_id: str) -> str | None:
        return self._get(self._con(), f"run-cancel:{run_id}")

    def publish_heartbeat(self, worker_id: str, info: dict[str, Any], ttl_s: float) -> None:
        with self._tx() as con:
            self._set(con, f"worker:{worker_id}", json.dumps(info), ttl_s)
            con.execute("DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?", [time.time()])

    def remove_heartbeat(self, worker_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM kv WHERE key = ?", [f"worker:{worker_id}"])

    def heartbeats(self) -> list[dict[str, Any]]:
        rows = (
            self._con()
            .execute(
                "SELECT value FROM kv WHERE key LIKE 'worker:%' AND (expires IS NULL OR expires > ?)", [time.time()]
            )
            .fetchall()
        )
        return [json.loads(row[0]) for row in rows]

    def state_marked(self) -> bool:
        return self._get(self._con(), "state") is not None

    def mark_state(self) -> None:
        with self._tx() as con:
            self._set(con, "state", str(time.time()), None)
