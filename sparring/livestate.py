"""Workers on many machines: records through a Redis Stream, battle state in a live mirror.

The DuckDB file lives on one machine. A worker elsewhere (``SPARRING_RECORD_SINK=stream``)
never opens it:

- **StreamSink** appends each batch of records to the stream ``<ns>:records`` and, in the
  same Redis transaction, applies them to the **live mirror**: a small Redis copy of each
  battle in flight (spec, status, messages, verdicts, call ids) and of each run (config,
  status, cost). One ingester next to the database (``python -m jobs.ingest``) reads the
  stream with a consumer group, commits in batches and acknowledges after the commit; on
  restart it first re-reads what it had received but not acknowledged. Writes are
  idempotent, so a redelivery cannot duplicate a row.
- **MirrorSource** is what a resumed battle reads: the mirror, which is never behind the
  stream. A battle missing from it (older than the mirror's TTL, or created by a process
  that writes the file directly) is *hydrated*: the worker asks the ingester, which loads
  it from DuckDB into the mirror.

Processes that write the file directly can keep the mirror too (``SPARRING_LIVE_MIRROR=1``),
which a deployment mixing local and remote workers needs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from sparring import records as r
from sparring.shared_state import redis_client
from sparring.stopping import CellBattle

log = logging.getLogger(__name__)

MIRROR_TTL_S = 7 * 24 * 3600
GROUP = "ingest"

# Status events on a mirrored battle, with the store's rules: first finish wins, only a
# requeue re-opens, and each event applies once (its id is remembered).
_EVENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[9])
local status = redis.call('HGET', KEYS[1], 'status')
if ARGV[1] == 'started' then
  if status ~= 'finished' then
    redis.call('HSET', KEYS[1], 'status', 'running')
    redis.call('HSETNX', KEYS[1], 'started_at', ARGV[3])
    redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  end
elseif ARGV[1] == 'finished' then
  if status ~= 'finished' then
    redis.call('HSET', KEYS[1], 'status', 'finished', 'outcome', ARGV[4], 'turns_to_goal', ARGV[5],
               'error', ARGV[6], 'error_kind', ARGV[7], 'ended_at', ARGV[3])
  end
else
  if ARGV[8] == '1' or status ~= 'finished' then
    redis.call('HSET', KEYS[1], 'status', 'queued')
    redis.call('HDEL', KEYS[1], 'outcome', 'turns_to_goal', 'error', 'error_kind', 'ended_at')
  end
end
return 1
"""

# A battle row is created once (a second BattleCreated changes nothing, as in the store).
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# A model call counted once towards its battle and its run, however often it is written.
_CALL = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  if KEYS[2] ~= '' then
    if redis.call('HSETNX', KEYS[2], ARGV[1], '1') == 1 then
      redis.call('INCRBYFLOAT', KEYS[3], ARGV[3])
      redis.call('EXPIRE', KEYS[2], ARGV[4])
      redis.call('EXPIRE', KEYS[3], ARGV[4])
    end
  end
end
return 1
"""


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class Mirror:
    """The live mirror: battles and runs in flight, in Redis hashes."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.client = redis_client(redis_url)
        self.ns = namespace
        self._event = self.client.register_script(_EVENT)
        self._create = self.client.register_script(_CREATE)
        self._call = self.client.register_script(_CALL)

    # keys
    def battle_key(self, battle_id: str, part: str = "") -> str:
        return f"{self.ns}:b:{battle_id}" + (f":{part}" if part else "")

    def run_key(self, run_id: str, part: str = "") -> str:
        return f"{self.ns}:r:{run_id}" + (f":{part}" if part else "")

    @property
    def stream(self) -> str:
        return f"{self.ns}:records"

    @property
    def hydrate_queue(self) -> str:
        return f"{self.ns}:hydrate"

    @property
    def summary_queue(self) -> str:
        return f"{self.ns}:summaries"

    # writing
    def queue_apply(self, pipe: Any, batch: Sequence[r.Record]) -> None:
        """Add the mirror updates of ``batch`` to ``pipe`` (executed by the caller)."""
        ttl = MIRROR_TTL_S
        for record in batch:
            if isinstance(record, r.BattleCreated):
                key = self.battle_key(record.battle_id)
                mapping = {
                    "spec": json.dumps(r.to_data(record.spec)),
                    "status": record.status,
                    "created_at": _iso(record.created_at),
                    "attempts": 0,
                }
                for name in ("run_id", "cell_key", "cell_index", "replicate"):
                    value = getattr(record, name)
                    if value is not None:
                        mapping[name] = value
                flat = [str(x) for pair in mapping.items() for x in pair]
                self._create(keys=[key], args=[ttl, *flat], client=pipe)
                if record.run_id:
                    pipe.sadd(self.run_key(record.run_id, "b"), record.battle_id)
                    pipe.expire(self.run_key(record.run_id, "b"), ttl)
            elif isinstance(record, r.MessageAdded):
                message = record.message
                key = self.battle_key(message.battle_id, "m")
                field = str(message.seq) if message.part == 0 else f"{message.seq}.{message.part}"  # a tool message
                pipe.hsetnx(key, field, json.dumps(r.to_data(message)))
                pipe.expire(key, ttl)
            elif isinstance(record, r.VerdictAdded):
                verdict = record.verdict
                key = self.battle_key(verdict.battle_id, "v")
                pipe.hsetnx(key, str(verdict.seq), json.dumps(r.to_data(verdict)))
                pipe.expire(key, ttl)
            elif isinstance(record, r.CallRecorded):
                call = record.call
                if call.battle_id is None and call.run_id is None:
                    continue
                owner = self.battle_key(call.battle_id, "c") if call.battle_id else self.run_key(str(call.run_id), "s")
                run_keys = (
                    [self.run_key(call.run_id, "c"), self.run_key(call.run_id, "cost")] if call.run_id else ["", ""]
                )
                usage = f"{call.prompt_tokens},{call.completion_tokens},{call.cost_usd or 0.0}"
                self._call(keys=[owner, *run_keys], args=[call.call_id, usage, call.cost_usd or 0.0, ttl], client=pipe)
            elif isinstance(record, (r.BattleStarted, r.BattleFinished, r.BattleRequeued)):
                self._queue_event(pipe, record)
            elif isinstance(record, r.BattleDiscarded):
                pipe.delete(*(self.battle_key(record.battle_id, p) for p in ("", "m", "v", "c", "ev")))
            elif isinstance(record, r.RunCreated):
                key = self.run_key(record.run_id)
                pipe.hset(
                    key,
                    mapping={
                        "name": record.name,
                        "config": json.dumps(record.config),
                        "runs_per_cell": record.runs_per_cell,
                        "total_battles": record.total_battles,
                        "budget_usd": "" if record.budget_usd is None else record.budget_usd,
                        "status": "queued",
                    },
                )
                pipe.expire(key, ttl)
            elif isinstance(record, r.RunStatusChanged):
                key = self.run_key(record.run_id)
                pipe.hset(key, mapping={"status": record.status, "error": record.error or ""})
                pipe.expire(key, ttl)
            elif isinstance(record, r.RunDiscarded):
                pipe.delete(self.run_key(record.run_id))

    def _queue_event(self, pipe: Any, record: r.BattleStarted | r.BattleFinished | r.BattleRequeued) -> None:
        if isinstance(record, r.BattleStarted):
            args = ["started", record.event_id, _iso(record.at), "", "", "", "", "0"]
        elif isinstance(record, r.BattleFinished):
            args = [
                "finished",
                record.event_id,
                _iso(record.at),
                record.outcome,
                "" if record.turns_to_goal is None else str(record.turns_to_goal),
                record.error or "",
                record.error_kind or "",
                "0",
            ]
        else:
            args = ["requeued", record.event_id, _iso(record.at), "", "", "", "", "1" if record.reopen else "0"]
        keys = [self.battle_key(record.battle_id), self.battle_key(record.battle_id, "ev")]
        self._event(keys=keys, args=[*args, MIRROR_TTL_S], client=pipe)

    def apply(self, batch: Sequence[r.Record]) -> None:
        pipe = self.client.pipeline(transaction=True)
        self.queue_apply(pipe, batch)
        pipe.execute()

    # reading
    def has_battle(self, battle_id: str) -> bool:
        return bool(self.client.exists(self.battle_key(battle_id)))

    def battle_view(self, battle_id: str) -> r.BattleView | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.battle_key(battle_id))
        pipe.hkeys(self.battle_key(battle_id, "m"))
        pipe.hvals(self.battle_key(battle_id, "c"))
        fields, message_keys, calls = pipe.execute()
        if not fields:
            return None
        turns = sum(1 for k in message_keys if b"." not in (k if isinstance(k, bytes) else k.encode()))  # no tools
        return _battle_from_hash(battle_id, _decode(fields), turns, calls)

    def transcript(self, battle_id: str) -> r.Transcript | None:
        view = self.battle_view(battle_id)
        if view is None:
            return None
        pipe = self.client.pipeline(transaction=False)
        pipe.hvals(self.battle_key(battle_id, "m"))
        pipe.hvals(self.battle_key(battle_id, "v"))
        messages_raw, verdicts_raw = pipe.execute()
        messages = sorted((r.from_data(r.Message, json.loads(m)) for m in messages_raw), key=lambda m: (m.seq, m.part))
        verdicts = sorted((r.from_data(r.Verdict, json.loads(v)) for v in verdicts_raw), key=lambda v: v.seq)
        return r.Transcript(
            battle=view,
            messages=tuple(m for m in messages if m.part == 0),
            verdicts=tuple(verdicts),
            tool_messages=tuple(m for m in messages if m.part != 0),
        )

    def run_view(self, run_id: str) -> r.RunView | None:
        fields = _decode(self.client.hgetall(self.run_key(run_id)))
        if not fields:
            return None
        budget = fields.get("budget_usd") or None
        return r.RunView(
            run_id=run_id,
            name=fields["name"],
            runs_per_cell=int(fields["runs_per_cell"]),
            config=json.loads(fields["config"]),
            budget_usd=float(budget) if budget else None,
            status=fields.get("status", "queued"),
        )

    def run_statuses(self, run_id: str) -> dict[str, str]:
        ids = [m.decode() if isinstance(m, bytes) else m for m in self.client.smembers(self.run_key(run_id, "b"))]
        pipe = self.client.pipeline(transaction=False)
        for battle_id in ids:
            pipe.hget(self.battle_key(battle_id), "status")
        statuses = pipe.execute()
        return {b: (s.decode() if isinstance(s, bytes) else s) for b, s in zip(ids, statuses, strict=True) if s}

    def run_cost(self, run_id: str) -> float:
        value = self.client.get(self.run_key(run_id, "cost"))
        return float(value) if value else 0.0

    def cell_battles(self, run_id: str, cell_key: str) -> list[CellBattle]:
        ids = [m.decode() if isinstance(m, bytes) else m for m in self.client.smembers(self.run_key(run_id, "b"))]
        pipe = self.client.pipeline(transaction=False)
        for battle_id in ids:
            pipe.hmget(self.battle_key(battle_id), ["cell_key", "replicate", "status", "outcome"])
        found = []
        for battle_id, values in zip(ids, pipe.execute(), strict=True):
            cell, replicate, status, outcome = (v.decode() if isinstance(v, bytes) else v for v in values)
            if cell == cell_key and replicate not in (None, "") and status:
                found.append(CellBattle(battle_id, int(replicate), status, outcome or None))
        return sorted(found, key=lambda b: b.replicate)


def _decode(fields: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }


def _opt_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _opt_dt(value: str | None) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(value) if value else None


def _battle_from_hash(battle_id: str, fields: dict[str, str], message_count: int, calls: list[Any]) -> r.BattleView:
    spec = r.from_data(r.BattleSpec, json.loads(fields["spec"]))
    prompt_tokens = completion_tokens = 0
    cost = 0.0
    for raw in calls:
        text = raw.decode() if isinstance(raw, bytes) else raw
        p, c, usd = text.split(",")
        prompt_tokens += int(p)
        completion_tokens += int(c)
        cost += float(usd)
    return r.BattleView(
        battle_id=battle_id,
        spec=spec,
        status=fields.get("status", "queued"),  # type: ignore[arg-type]
        outcome=(fields.get("outcome") or None),  # type: ignore[arg-type]
        message_count=message_count,
        agent_turns=message_count // 2,
        turns_to_goal=_opt_int(fields.get("turns_to_goal")),
        error=fields.get("error") or None,
        error_kind=fields.get("error_kind") or None,
        attempts=int(fields.get("attempts", 0) or 0),
        created_at=_opt_dt(fields.get("created_at")),
        started_at=_opt_dt(fields.get("started_at")),
        ended_at=_opt_dt(fields.get("ended_at")),
        run_id=fields.get("run_id") or None,
        cell_key=fields.get("cell_key") or None,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost,
        model_calls=len(calls),
    )


class StreamSink:
    """Records to the stream and the mirror in one Redis transaction."""

    def __init__(self, mirror: Mirror, max_len: int = 1_000_000) -> None:
        self.mirror = mirror
        self.max_len = max_len

    def write(self, records: Sequence[r.Record]) -> None:
        if not records:
            return
        payload = json.dumps([r.record_to_json(record) for record in records], default=str)
        for attempt in range(60):
            try:
                pipe = self.mirror.client.pipeline(transaction=True)
                pipe.xadd(self.mirror.stream, {"r": payload}, maxlen=self.max_len, approximate=True)
                self.mirror.queue_apply(pipe, records)
                pipe.execute()
                return
            except Exception as error:  # noqa: BLE001 - Redis away: wait for it, never drop a record
                if attempt == 0:
                    log.warning("Record stream unavailable (%s); retrying", error)
                time.sleep(min(0.05 * 2**attempt, 2.0))
        raise RuntimeError("the record stream stayed unavailable for about two minutes")


class MirroredSink:
    """Writes the DuckDB file directly and keeps the live mirror for remote workers."""

    def __init__(self, store: Any, mirror: Mirror) -> None:
        self.store = store
        self.mirror = mirror

    def write(self, records: Sequence[r.Record]) -> None:
        self.store.write(records)
        try:
            self.mirror.apply(records)
        except Exception:
            log.warning("Live mirror update failed; remote workers will hydrate from the store", exc_info=True)


class MirrorSource:
    """What a stream worker reads: the mirror, hydrated from the store on a miss."""

    def __init__(self, mirror: Mirror, hydrate_timeout_s: float = 30.0) -> None:
        self.mirror = mirror
        self.hydrate_timeout_s = hydrate_timeout_s

    def _hydrate(self, kind: str, ident: str, present: Any) -> bool:
        if present():
            return True
        self.mirror.client.lpush(self.mirror.hydrate_queue, f"{kind}:{ident}")
        deadline = time.monotonic() + self.hydrate_timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if present():
                return True
            if self.mirror.client.get(f"{self.mirror.ns}:hydrate-miss:{kind}:{ident}"):
                return False  # the ingester looked: it does not exist
        log.warning("No ingester answered the hydration of %s %s within %.0f s", kind, ident, self.hydrate_timeout_s)
        return False

    def load_transcript(self, battle_id: str) -> r.Transcript | None:
        if not self._hydrate("b", battle_id, lambda: self.mirror.has_battle(battle_id)):
            return None
        return self.mirror.transcript(battle_id)

    def get_battle(self, battle_id: str) -> r.BattleView | None:
        if not self._hydrate("b", battle_id, lambda: self.mirror.has_battle(battle_id)):
            return None
        return self.mirror.battle_view(battle_id)

    def get_run(self, run_id: str) -> r.RunView | None:
        if not self._hydrate("r", run_id, lambda: self.mirror.run_view(run_id) is not None):
            return None
        return self.mirror.run_view(run_id)

    def run_battle_statuses(self, run_id: str) -> dict[str, str]:
        return self.mirror.run_statuses(run_id)

    def run_cost(self, run_id: str) -> float:
        return self.mirror.run_cost(run_id)

    def cell_battles(self, run_id: str, cell_key: str) -> list[CellBattle]:
        return self.mirror.cell_battles(run_id, cell_key)


def hydrate(mirror: Mirror, store: Any, item: str) -> None:
    """Copy one battle (``b:<id>``) or run (``r:<id>``) from the store into the mirror."""
    kind, _, ident = item.partition(":")
    records: list[r.Record] = []
    if kind == "b":
        transcript = store.load_transcript(ident)
        if transcript is not None:
            records = _battle_records(transcript)
    elif kind == "r":
        run = store.get_run(ident)
        if run is not None:
            records = [
                r.RunCreated(run.run_id, run.name, run.config, run.runs_per_cell, 0, run.budget_usd),
                r.RunStatusChanged(run.run_id, run.status),
            ]
            for battle_id in store.run_battle_statuses(ident):
                transcript = store.load_transcript(battle_id)
                if transcript is not None:
                    records += _battle_records(transcript)
            pipe = mirror.client.pipeline(transaction=True)
            pipe.set(mirror.run_key(ident, "cost"), store.run_cost(ident), ex=MIRROR_TTL_S)
            pipe.execute()
    if not records:
        mirror.client.set(f"{mirror.ns}:hydrate-miss:{item}", "1", ex=60)
        return
    mirror.apply(records)


def _battle_records(transcript: r.Transcript) -> list[r.Record]:
    view = transcript.battle
    out: list[r.Record] = [
        r.BattleCreated(
            view.battle_id,
            view.spec,
            created_at=view.created_at,
            run_id=view.run_id,
            cell_key=view.cell_key,
            status="queued",
        )
    ]
    out += [r.MessageAdded(m) for m in (*transcript.tool_messages, *transcript.messages)]
    out += [r.VerdictAdded(v) for v in transcript.verdicts]
    if view.status == "running":
        out.append(r.BattleStarted(view.battle_id, at=view.started_at or r.utcnow()))
    elif view.status == "finished" and view.outcome:
        out.append(
            r.BattleFinished(
                view.battle_id,
                view.outcome,
                view.turns_to_goal,
                view.error,
                view.error_kind,
                at=view.ended_at or r.utcnow(),
            )
        )
    return out
