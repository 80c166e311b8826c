"""Health: mode, queue, workers, battle counts, providers and recent errors, refreshed every few seconds."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import streamlit as st

from jobs.health import health_report
from sparring import formatting, providers
from ui import common

log = logging.getLogger(__name__)

REFRESH_S = 3.0


def load() -> dict[str, Any]:
    try:
        return health_report()
    except Exception as error:  # the page reports any failure instead of a traceback
        log.warning("Health report failed", exc_info=True)
        return {"failed": f"{type(error).__name__}: {str(error)[:300]}"}


def overview(report: dict[str, Any]) -> None:
    mode, queue, workers, depth = st.columns(4)
    mode.metric(
        "Mode",
        report["mode"],
        help="embedded: the app runs battles itself (SQLite queue). queue: Redis and separate workers.",
    )
    link = report.get("redis") or report.get("queue_store") or {}
    backend = "Redis" if report["queue_backend"] == "redis" else "SQLite queue"
    if link.get("reachable"):
        queue.metric(
            backend, "reachable", f"{link.get('latency_ms', 0):.1f} ms round trip", delta_color="off", delta_arrow="off"
        )
    else:
        queue.metric(backend, "unreachable")
    workers.metric("Live workers", report["live_workers"])
    depth.metric("Queue depth", "–" if report.get("queue_depth") is None else report["queue_depth"])
    st.caption(f"Queue: {common.inert(report['queue_url'])} · namespace {common.inert(report['namespace'])}")
    if not link.get("reachable"):
        st.error(
            f"The queue does not answer: {common.inert(link.get('error', 'unknown error'))}. "
            "Battles cannot be submitted until it does.",
            icon=":material/cloud_off:",
        )
    if report.get("queue_error"):
        st.warning(f"Queue details unavailable: {common.inert(report['queue_error'])}", icon=":material/warning:")


def access_section(report: dict[str, Any]) -> None:
    """Sign-in and the Redis password: what keeps people who reach the port or Redis out."""
    access = report.get("access") or {}
    signin, password = st.columns(2)
    signin.metric(
        "Sign-in",
        "on" if access.get("signin") else ("off (anonymous allowed)" if access.get("allow_anonymous") else "off"),
        help="On when .streamlit/secrets.toml has an [auth] section (README: Running for a team).",
    )
    needs = access.get("redis_requires_password")
    shown = {True: "required", False: "not required", None: "–"}[needs]
    password.metric("Redis password", shown, help="Asked of Redis without the password in REDIS_URL.")
    if needs is False:
        st.warning(
            "Redis answers without a password: anyone who reaches it can read and change the queue.",
            icon=":material/lock_open:",
        )


def table(rows: list[dict[str, Any]]) -> None:
    st.dataframe(rows, hide_index=True, width="stretch")


def worker_section(report: dict[str, Any]) -> None:
    st.markdown("#### Workers")
    if not report["live_workers"]:
        st.error("**No worker is running**: submitted battles would wait. Start one with:", icon=":material/warning:")
        st.code(report["start_worker"], language="bash")
    workers = report["workers"]
    if not workers:
        st.caption("No worker has published a heartbeat.")
        return
    at = common.now()
    table(
        [
            {
                "worker": w.get("worker_id"),
                "kind": w.get("kind"),
                "host": w.get("host"),
                "pid": w.get("pid"),
                "threads": w.get("threads"),
                "writes to": "the stream" if w.get("sink") == "stream" else "the database",
                "running": len(w.get("running") or []),
                "heartbeat": f"{w['age_s']:.0f} s ago",
                "up for": formatting.format_uptime(w.get("started_at"), at),
                "version": w.get("version"),
            }
            for w in workers
        ]
    )


def battle_section(report: dict[str, Any]) -> None:
    st.markdown("#### Battles")
    counts = report.get("battles")
    if counts is None:
        st.caption(common.inert(report.get("store_error") or "No battles recorded yet."))
        return
    queued, running, failed, total = st.columns(4)
    queued.metric("Queued", counts["queued"])
    running.metric("Running", counts["running"])
    failed.metric("Failed (24 h)", counts["failed_24h"], help=f"{counts['failed']} failed in all")
    total.metric("All battles", counts["total"])


def provider_section(report: dict[str, Any]) -> None:
    st.markdown("#### Providers")
    st.caption(providers.rate_limit_caption(report.get("rate_limits") or {}))
    for sentence in providers.binding_sentences(report.get("providers") or []):
        st.info(sentence, icon=":material/speed:")
    shown = [p for p in report.get("providers") or [] if providers.limited_or_tripped(p)]
    if not shown:
        st.caption("No calls to a rate-limited provider yet.")
        return
    table(
        [
            {
                "provider": p.get("provider"),
                "rate limit": p.get("rate_limit") or "none",
                "state": providers.state_label(p),
                "in flight": p.get("in_flight"),
                "consecutive 429s": p.get("consecutive_429"),
                "times paused": p.get("circuit_opened"),
            }
            for p in shown
        ]
    )


def ingest_section(report: dict[str, Any]) -> None:
    """Remote workers send their records through a Redis Stream; the ingester commits them."""
    ingest = report.get("ingest") or {}
    if not ingest.get("active"):
        return
    st.markdown("#### Ingest")
    waiting, oldest, last = st.columns(3)
    waiting.metric(
        "Records waiting",
        f"{ingest.get('waiting', 0):,}",
        help="Sent by remote workers through the stream and not yet committed to the database.",
    )
    oldest_s = ingest.get("oldest_waiting_s")
    oldest.metric(
        "Oldest waiting",
        "–" if not ingest.get("waiting") or oldest_s is None else common.format_duration(float(oldest_s)),
        help="The ingest lag: how far behind the workers the database (and so every page) is.",
    )
    age = ingest.get("last_commit_age_s")
    last.metric(
        "Last commit",
        "never" if age is None else f"{common.format_duration(float(age))} ago",
        help="When the ingester last committed a batch.",
    )
    lag = float(oldest_s or 0) if ingest.get("waiting") else 0.0
    if lag > 30:
        st.warning(
            f"The database is {common.format_duration(lag)} behind the workers: is the ingester running? "
            "Start it next to the database with `python -m jobs.ingest`.",
            icon=":material/hourglass_top:",
        )
    st.caption(
        f"Stream {common.inert(ingest.get('stream'))} · {ingest.get('records_committed', 0):,} records committed "
        f"· {ingest.get('pending', 0):,} read but not yet acknowledged"
    )


def errors_section(report: dict[str, Any]) -> None:
    st.markdown("#### Recent errors")
    errors = report.get("recent_errors") or []
    if not errors:
        st.caption("No failed battles.")
        return
    at = common.now()
    for item in errors:
        link, detail = st.columns([1, 6], vertical_alignment="center")
        link.page_link(
            common.BATTLE_PAGE,
            label=common.short_id(item["battle_id"]),
            icon=":material/open_in_new:",
            query_params={"id": item["battle_id"]},
        )
        ended = dt.datetime.fromisoformat(item["ended_at"]) if item.get("ended_at") else None
        kind = f"{common.inert(item.get('kind'))} · " if item.get("kind") else ""
        detail.markdown(
            f"{kind}{common.inert(common.truncate(item.get('error') or '', 240))}  \n"
            f":gray[{common.format_ago(ended, at)}]"
        )


def render(report: dict[str, Any]) -> None:
    if "failed" in report:
        st.error(f"The health report failed: {common.inert(report['failed'])}", icon=":material/error:")
        return
    overview(report)
    access_section(report)
    worker_section(report)
    battle_section(report)
    ingest_section(report)
    provider_section(report)
    errors_section(report)
    st.caption(f"Updated {common.now().astimezone():%H:%M:%S} · refreshes every {REFRESH_S:.0f} s")


st.set_page_config(page_title="Health · Sparring")
st.title("Health")
common.live(load, lambda _: True, render, every_s=REFRESH_S)
