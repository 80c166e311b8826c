"""The health report: mode, Redis, workers, queue, battle counts, providers, errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jobs import runner
from jobs.queue import get_queue
from jobs.submit import _safe_url, worker_command
from sparring import providers
from sparring.runtime import get_runtime
from sparring.shared_state import shared_state
from sparring.store import StoreBusy, StoreMissing, upkeep
from sparring.store.db import writes_waiting_since as store_writes_waiting_since


def health_report(errors_limit: int = 10) -> dict[str, Any]:
    settings = get_runtime().settings
    queue = get_queue()
    report: dict[str, Any] = {
        "mode": settings.mode,
        "namespace": settings.namespace,
        "queue_backend": "redis" if settings.redis_url else "sqlite",
        "queue_url": _safe_url(settings.redis_url) if settings.redis_url else str(settings.queue_path),
        "start_worker": worker_command(queue),
    }
    try:
        latency = queue.coord.ping()
        report["redis" if settings.redis_url else "queue_store"] = {"reachable": True, "latency_ms": round(latency, 2)}
        reachable = True
    except Exception as error:  # noqa: BLE001 - reported, not raised
        report["redis" if settings.redis_url else "queue_store"] = {
            "reachable": False,
            "error": f"{type(error).__name__}: {str(error)[:200]}",
        }
        reachable = False
    report["reachable"] = reachable
    report["access"] = access_report(settings.redis_url, settings.allow_anonymous)
    now = time.time()
    workers: list[dict[str, Any]] = []
    if reachable:
        try:
            for beat in queue.coord.heartbeats():
                beat["age_s"] = round(now - float(beat.get("beat_at", now)), 1)
                workers.append(beat)
            report["queue_depth"] = queue.huey.pending_count()
            report["scheduled"] = queue.huey.scheduled_count()
            report["providers"] = [
                {**state, "rate_limit": settings.rate_limit_for(state["provider"])}
                for state in shared_state(settings.redis_url, settings.namespace).provider_states()
            ]
        except Exception as error:  # noqa: BLE001 - a flapping connection: show what we have
            report["queue_error"] = f"{type(error).__name__}: {str(error)[:200]}"
    live = [w for w in workers if w["age_s"] < settings.heartbeat_ttl_s]
    report["workers"] = sorted(workers, key=lambda w: w["age_s"])
    report["live_workers"] = len(live)
    report["newest_heartbeat_age_s"] = min((w["age_s"] for w in workers), default=None)
    report.setdefault("queue_depth", None)
    report.setdefault("providers", [])
    # What the limiter applies, so "no rows" is not read as "not limited" (sim models never are).
    report["rate_limits"] = {"sim": settings.rate_limit_for("sim"), "default": settings.provider_rate_limit}
    if settings.redis_url and reachable:
        from jobs.ingest import ingest_status

        try:
            report["ingest"] = ingest_status(settings.redis_url, settings.namespace)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            report["ingest"] = {"active": False, "error": f"{type(error).__name__}: {str(error)[:200]}"}
    if settings.record_sink == "stream":
        report.update({"battles": None, "recent_errors": [], "store_error": "this process does not read the database"})
    else:
        report.update(_store_part(errors_limit))
    return report


def access_report(redis_url: str | None, allow_anonymous: bool) -> dict[str, Any]:
    """Whether sign-in is configured, anonymous serving allowed, and Redis demands a password."""
    from sparring import access

    return {
        "signin": access.signin_configured(access.secrets_files()),
        "allow_anonymous": allow_anonymous,
        "redis_requires_password": redis_requires_password(redis_url) if redis_url else None,
    }


def redis_requires_password(url: str) -> bool | None:
    """Ask Redis without the URL's credentials: True when it refuses, None when it does not answer."""
    import redis

    parts = urlsplit(url)
    anonymous = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    client = redis.Redis.from_url(anonymous, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.AuthenticationError:
        return True
    except redis.ResponseError as error:
        return "NOAUTH" in str(error) or None
    except redis.RedisError:
        return None
    finally:
        client.close()
    return False


def battles_in_hand() -> list[str]:
    """Battles live workers hold right now, whether or not their first write has landed.

    This process's consumer (embedded mode) is asked directly; other workers as their last
    heartbeat said (every ``heartbeat_period_s``).
    """
    queue = get_queue()
    here = runner.installed()
    held = set(here.running()) if here is not None else set()
    now = time.time()
    try:
        beats = queue.coord.heartbeats()
    except Exception:  # noqa: BLE001 - a page keeps rendering with what this process knows
        beats = []
    for beat in beats:
        if now - float(beat.get("beat_at", 0)) < queue.settings.heartbeat_ttl_s:
            held.update(str(b) for b in beat.get("running") or [])
    return sorted(held)


def writes_waiting_since() -> float | None:
    """Since when battle writes wait for the database file another process holds, or None.

    This process's own writer (embedded mode: the app runs battles), or any live worker's,
    as its heartbeat last said (every ``heartbeat_period_s``).
    """
    queue = get_queue()
    now = time.time()
    found = [local] if (local := store_writes_waiting_since()) is not None else []
    try:
        beats = queue.coord.heartbeats()
    except Exception:  # noqa: BLE001 - a page keeps rendering without this hint
        beats = []
    for beat in beats:
        since = beat.get("writes_waiting_since")
        if since is not None and now - float(beat.get("beat_at", 0)) < queue.settings.heartbeat_ttl_s:
            found.append(float(since))
    return min(found, default=None)


def _store_part(errors_limit: int) -> dict[str, Any]:
    store = get_runtime().store.with_read_deadline(5)
    try:
        found = upkeep.store_health(store, errors_limit)
    except (StoreBusy, StoreMissing) as error:
        return {"battles": None, "recent_errors": [], "store_error": str(error)}
    return {
        "battles": dataclasses.asdict(found.counts),
        "recent_errors": [
            {"battle_id": f.battle_id, "kind": f.kind, "error": f.error, "ended_at": _iso(f.ended_at)}
            for f in found.recent_failures
        ],
    }


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat() if at else None


def format_report(report: dict[str, Any]) -> str:
    lines = [f"mode: {report['mode']} ({report['queue_backend']} queue at {report['queue_url']})"]
    lines.append("queue reachable: " + ("yes" if report["reachable"] else "NO"))
    lines.append(f"live workers: {report['live_workers']}")
    for worker in report["workers"]:
        sink = ", writes to the stream" if worker.get("sink") == "stream" else ""
        lines.append(
            f"  {worker['worker_id']} ({worker.get('kind')}, {worker.get('threads')} threads{sink}) "
            f"heartbeat {worker['age_s']} s ago, running {len(worker.get('running', []))}"
        )
    if not report["live_workers"]:
        lines.append(f"no worker is running; start one with: {report['start_worker']}")
    lines.append(f"queue depth: {report['queue_depth']}")
    if report.get("battles"):
        b = report["battles"]
        lines.append(
            f"battles: {b['queued']} queued, {b['running']} running, {b['failed']} failed ({b['total']} total)"
        )
    ingest = report.get("ingest") or {}
    if ingest.get("active"):
        lines.append(
            f"ingest: {ingest['waiting']} records waiting (oldest {ingest['oldest_waiting_s']} s), "
            f"last commit {ingest['last_commit_age_s']} s ago"
        )
    for provider in report["providers"]:
        if provider["circuit_open_s"] > 0:
            lines.append(f"provider {provider['provider']}: PAUSED for {provider['circuit_open_s']:.0f} s after 429s")
        for kind, limit in (provider.get("binding") or {}).items():
            lines.append(
                f"provider {provider['provider']}: calls held back by the {kind} cap of {limit} "
                f"(raise {providers.CAP_SETTINGS[kind]} if your quota allows)"
            )
    return "\n".join(lines)
