"""State shared by every worker: provider concurrency slots, circuit breakers, small cached results.

In queue mode it lives in Redis (this module is the one home of ``import redis`` in the
core), so a cap of 8 calls in flight means 8 across all workers on all machines. In
embedded mode there is one process, and plain in-memory state does the same job.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import redis

log = logging.getLogger(__name__)

# A counting semaphore as a sorted set of holders scored by expiry, so that the slot of a
# worker that died mid-call frees itself. Redis' clock is used, not the workers'.
_ACQUIRE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
  return 1
end
return 0
"""

_COUNT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
return redis.call('ZCARD', KEYS[1])
"""

# A binding note and the provider's name in the set ``provider_states`` reads, in one command.
_NOTE_BINDING = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""

# What holds calls back when a cap binds: calls in flight, or calls per period.
BINDING_KINDS = ("concurrency", "rate")


def _check_binding(kind: str, limit: str, ttl_s: float) -> None:
    if kind not in BINDING_KINDS:
        raise ValueError(f"A binding cap is 'concurrency' or 'rate', not {kind!r}.")
    if not limit.strip():
        raise ValueError("Say which cap binds, e.g. '64 calls in flight' or '6000/minute'.")
    if not ttl_s > 0:
        raise ValueError(f"A binding note lasts more than 0 s, not {ttl_s}.")


class SharedState(Protocol):
    def try_acquire(self, provider: str, cap: int, token: str, ttl_s: float) -> bool: ...
    def release(self, provider: str, token: str) -> None: ...
    def in_flight(self, provider: str) -> int: ...
    def record_429(self, provider: str) -> int: ...
    def record_success(self, provider: str) -> None: ...
    def open_circuit(self, provider: str, seconds: float, consecutive_429: int) -> None: ...
    def circuit_remaining(self, provider: str) -> float: ...
    def breaker(self, provider: str) -> tuple[float, int]: ...
    def note_backoff(self, provider: str, seconds: float) -> None: ...
    def note_binding(self, provider: str, kind: str, limit: str, ttl_s: float = 5.0) -> None:
        """Calls to ``provider`` are held back by a cap right now, for the next ``ttl_s`` seconds.

        ``kind`` is "concurrency" (``limit`` like "64 calls in flight") or "rate" (like
        "6000/minute"). ``provider_states`` then gives the cap under "binding" while the note
        is fresh. Cheap enough to call on every wait: at most one Redis command, and none
        while this object's own note of the same cap is younger than half its life.
        """
        ...

    def provider_states(self) -> list[dict[str, Any]]:
        """One row per provider seen: in_flight, consecutive_429, circuit_open_s, backoff_s,
        circuit_opened, and binding ({kind: limit} of the caps holding its calls back now)."""
        ...

    def recall(self, key: str) -> str | None:
        """A value stored by ``remember`` that has not expired, else None."""
        ...

    def remember(self, key: str, value: str, ttl_s: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl_s`` seconds (the judge check's results)."""
        ...


class LocalState:
    """In-process state for embedded mode (and for tests of one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, dict[str, float]] = {}
        self._consecutive: dict[str, int] = {}
        self._circuit_until: dict[str, float] = {}
        self._backoff_until: dict[str, float] = {}
        self._opened: dict[str, int] = {}
        self._binding: dict[str, dict[str, tuple[str, float]]] = {}  # provider -> kind -> (limit, until)
        self._kept: dict[str, tuple[str, float]] = {}

    def try_acquire(self, provider: str, cap: int, token: str, ttl_s: float) -> bool:
        now = time.time()
        with self._lock:
            holders = self._slots.setdefault(provider, {})
            for held, expiry in list(holders.items()):
                if expiry <= now:
                    del holders[held]
            if len(holders) >= cap:
                return False
            holders[token] = now + ttl_s
            return True

    def release(self, provider: str, token: str) -> None:
        with self._lock:
            self._slots.get(provider, {}).pop(token, None)

    def in_flight(self, provider: str) -> int:
        now = time.time()
        with self._lock:
            return sum(1 for expiry in self._slots.get(provider, {}).values() if expiry > now)

    def record_429(self, provider: str) -> int:
        with self._lock:
            self._consecutive[provider] = self._consecutive.get(provider, 0) + 1
            return self._consecutive[provider]

    def record_success(self, provider: str) -> None:
        with self._lock:
            self._consecutive[provider] = 0

    def open_circuit(self, provider: str, seconds: float, consecutive_429: int) -> None:
        with self._lock:
            self._circuit_until[provider] = time.time() + seconds
            self._opened[provider] = self._opened.get(provider, 0) + 1
            # Half-open: one more 429 after the pause re-opens the circuit at once.
            self._consecutive[provider] = max(0, consecutive_429 - 1)

    def circuit_remaining(self, provider: str) -> float:
        with self._lock:
            return max(0.0, self._circuit_until.get(provider, 0.0) - time.time())

    def breaker(self, provider: str) -> tuple[float, int]:
        """(seconds the circuit stays open, consecutive 429s so far)."""
        with self._lock:
            return max(0.0, self._circuit_until.get(provider, 0.0) - time.time()), self._consecutive.get(provider, 0)

    def note_backoff(self, provider: str, seconds: float) -> None:
        with self._lock:
            self._backoff_until[provider] = max(self._backoff_until.get(provider, 0.0), time.time() + seconds)

    def note_binding(self, provider: str, kind: str, limit: str, ttl_s: float = 5.0) -> None:
        _check_binding(kind, limit, ttl_s)
        with self._lock:
            self._binding.setdefault(provider, {})[kind] = (limit, time.time() + ttl_s)

    def _fresh_binding(self, provider: str, now: float) -> dict[str, str]:
        notes = self._binding.get(provider, {})
        return {kind: notes[kind][0] for kind in BINDING_KINDS if kind in notes and notes[kind][1] > now}

    def provider_states(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            names = (
                set(self._slots)
                | set(self._consecutive)
                | set(self._circuit_until)
                | set(self._backoff_until)
                | set(self._binding)
            )
            return [
                {
                    "provider": name,
                    "in_flight": sum(1 for e in self._slots.get(name, {}).values() if e > now),
                    "consecutive_429": self._consecutive.get(name, 0),
                    "circuit_open_s": max(0.0, self._circuit_until.get(name, 0.0) - now),
                    "backoff_s": max(0.0, self._backoff_until.get(name, 0.0) - now),
                    "circuit_opened": self._opened.get(name, 0),
                    "binding": self._fresh_binding(name, now),
                }
                for name in sorted(names)
            ]

    def recall(self, key: str) -> str | None:
        with self._lock:
            value, until = self._kept.get(key, ("", 0.0))
            return value if until > time.time() else None

    def remember(self, key: str, value: str, ttl_s: float) -> None:
        with self._lock:
            self._kept[key] = (value, time.time() + ttl_s)


class RedisState:
    """The same state in Redis, shared by every worker."""

    def __init__(self, client: redis.Redis, namespace: str = "sparring") -> None:
        self.client = client
        self.prefix = namespace
        self._acquire = client.register_script(_ACQUIRE)
        self._count = client.register_script(_COUNT)
        self._note_binding = client.register_script(_NOTE_BINDING)
        # (provider, kind) -> (limit, monotonic time) of this object's last binding note
        self._noted: dict[tuple[str, str], tuple[str, float]] = {}

    def _key(self, kind: str, provider: str) -> str:
        return f"{self.prefix}:{kind}:{provider}"

    def try_acquire(self, provider: str, cap: int, token: str, ttl_s: float) -> bool:
        return bool(self._acquire(keys=[self._key("slots", provider)], args=[cap, token, ttl_s]))

    def release(self, provider: str, token: str) -> None:
        self.client.zrem(self._key("slots", provider), token)

    def in_flight(self, provider: str) -> int:
        return int(self._count(keys=[self._key("slots", provider)]))

    def record_429(self, provider: str) -> int:
        pipe = self.client.pipeline()
        pipe.incr(self._key("429", provider))
        pipe.expire(self._key("429", provider), 3600)
        pipe.sadd(f"{self.prefix}:providers", provider)
        count, _, _ = pipe.execute()
        return int(count)

    def record_success(self, provider: str) -> None:
        self.client.set(self._key("429", provider), 0, ex=3600)

    def open_circuit(self, provider: str, seconds: float, consecutive_429: int) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._key("circuit", provider), "open", px=max(1, int(seconds * 1000)))
        pipe.incr(self._key("opened", provider))
        pipe.set(self._key("429", provider), max(0, consecutive_429 - 1), ex=3600)
        pipe.sadd(f"{self.prefix}:providers", provider)
        pipe.execute()

    def circuit_remaining(self, provider: str) -> float:
        ttl_ms = self.client.pttl(self._key("circuit", provider))
        return max(0.0, ttl_ms / 1000) if ttl_ms and ttl_ms > 0 else 0.0

    def breaker(self, provider: str) -> tuple[float, int]:
        pipe = self.client.pipeline(transaction=False)
        pipe.pttl(self._key("circuit", provider))
        pipe.get(self._key("429", provider))
        ttl_ms, consecutive = pipe.execute()
        remaining = max(0.0, ttl_ms / 1000) if ttl_ms and ttl_ms > 0 else 0.0
        return remaining, int(consecutive or 0)

    def note_backoff(self, provider: str, seconds: float) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._key("backoff", provider), "1", px=max(1, int(seconds * 1000)))
        pipe.sadd(f"{self.prefix}:providers", provider)
        pipe.execute()

    def note_binding(self, provider: str, kind: str, limit: str, ttl_s: float = 5.0) -> None:
        _check_binding(kind, limit, ttl_s)
        now = time.monotonic()
        last = self._noted.get((provider, kind))
        if last is not None and last[0] == limit and now - last[1] < ttl_s / 2:
            return  # the note in Redis has at least half its life left
        keys = [self._key(f"binding:{kind}", provider), f"{self.prefix}:providers"]
        self._note_binding(keys=keys, args=[limit, max(1, int(ttl_s * 1000)), provider])
        self._noted[(provider, kind)] = (limit, now)

    def provider_states(self) -> list[dict[str, Any]]:
        names = sorted(
            n.decode() if isinstance(n, bytes) else n for n in self.client.smembers(f"{self.prefix}:providers")
        )
        states = []
        for name in names:
            pipe = self.client.pipeline()
            pipe.get(self._key("429", name))
            pipe.pttl(self._key("circuit", name))
            pipe.pttl(self._key("backoff", name))
            pipe.get(self._key("opened", name))
            for kind in BINDING_KINDS:
                pipe.get(self._key(f"binding:{kind}", name))
            consecutive, circuit_ms, backoff_ms, opened, *binding = pipe.execute()
            states.append(
                {
                    "provider": name,
                    "in_flight": self.in_flight(name),
                    "consecutive_429": int(consecutive or 0),
                    "circuit_open_s": max(0.0, circuit_ms / 1000) if circuit_ms and circuit_ms > 0 else 0.0,
                    "backoff_s": max(0.0, backoff_ms / 1000) if backoff_ms and backoff_ms > 0 else 0.0,
                    "circuit_opened": int(opened or 0),
                    "binding": {
                        kind: limit.decode() if isinstance(limit, bytes) else limit
                        for kind, limit in zip(BINDING_KINDS, binding, strict=True)
                        if limit is not None
                    },
                }
            )
        return states

    def recall(self, key: str) -> str | None:
        value = self.client.get(self._key("kept", key))
        return value.decode() if isinstance(value, bytes) else value

    def remember(self, key: str, value: str, ttl_s: float) -> None:
        self.client.set(self._key("kept", key), value, px=max(1, int(ttl_s * 1000)))


# redis-py refuses a connection past its pool's ``max_connections`` (100 by default) with
# ``MaxConnectionsError``. Each consumer thread may hold one at a time (an idle Huey worker
# blocks on the queue holding one; a battle makes one call at a time), so a worker with
# more than 100 threads made no call at all. Besides those threads a process needs a few
# more: Huey's scheduler and health check, the lease keeper, heartbeat and reaper, the
# group committers, the rejudge lease keepers and, in the app, its pages.
DEFAULT_POOL_SIZE = 100
SPARE_CONNECTIONS = 32
_pool_lock = threading.Lock()
_pool_threads = 0
_clients: dict[str, redis.Redis] = {}


def pool_size() -> int:
    """Connections each Redis pool of this process may open (see ``size_redis_pool``)."""
    return max(DEFAULT_POOL_SIZE, _pool_threads + SPARE_CONNECTIONS)


def size_redis_pool(threads: int) -> None:
    """Let this process's Redis pools serve ``threads`` consumer threads at once.

    Pools built earlier grow too; a larger ``max_connections`` in ``REDIS_URL`` is kept.
    """
    global _pool_threads
    with _pool_lock:
        _pool_threads = max(_pool_threads, threads)
        for client in _clients.values():
            _grow_pool(client)


def _grow_pool(client: redis.Redis) -> None:
    pool = client.connection_pool
    pool.max_connections = max(pool.max_connections, pool_size())


def redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per URL and process; Huey and ``limits`` share its pool."""
    with _pool_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url,
                socket_timeout=5,
                socket_connect_timeout=3,
                health_check_interval=15,
                retry_on_timeout=True,
            )
            _grow_pool(client)
        return client


_local = LocalState()


def reset_local() -> None:
    """Forget in-process provider state (tests)."""
    global _local
    _local = LocalState()


def shared_state(redis_url: str | None, namespace: str = "sparring") -> SharedState:
    return RedisState(redis_client(redis_url), namespace) if redis_url else _local


ConnectionError = redis.exceptions.ConnectionError
RedisError = redis.exceptions.RedisError


def read_provider_states(redis_url: str | None, namespace: str = "sparring") -> list[dict[str, Any]]:
    """Every provider's limiter state now, or [] when Redis does not answer (logged).

    For a page that shows slowed providers beside other news: a Redis hiccup hides the
    notice instead of breaking the page.
    """
    try:
        return shared_state(redis_url, namespace).provider_states()
    except RedisError:
        log.warning("Could not read the providers' state", exc_info=True)
        return []
