"""The health page in embedded mode and in queue mode, with and without a worker."""

from __future__ import annotations

import os
import time

import pytest
from streamlit.testing.v1 import AppTest

from jobs import health, submit
from sparring import runtime, usecases
from tests.helpers import WorkerProcess, new_battle, wait_for_worker
from tests.ui.apptest import open_page


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_embedded_mode_shows_the_in_process_worker_and_recent_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_MODEL_MAX_ATTEMPTS", "1")
    runtime.reset()
    failed = new_battle(agent_model="sim/agent?fail_500=1")
    usecases.run_inline(failed)
    at = open_page("ui/health.py")  # the app started its in-process consumer
    shown = metrics(at)
    assert shown["Mode"] == "embedded"
    assert shown["SQLite queue"] == "reachable"
    assert shown["Live workers"] == "1"
    assert shown["Failed (24 h)"] == "1" and shown["All battles"] == "1"
    assert not any("No worker is running" in e.value for e in at.error)
    (workers,) = [d.value for d in at.dataframe][:1]
    assert list(workers["kind"]) == ["embedded"] and list(workers["pid"]) == [os.getpid()]
    (link,) = at.get("page_link")
    assert link.value == failed[:8] and link.proto.query_string == f"id={failed}"
    assert any("internal" in m.value or "provider" in m.value for m in at.markdown)


@pytest.mark.redis
def test_queue_mode_without_a_worker_gives_the_command_to_start_one(redis_url: str) -> None:
    at = open_page("ui/health.py")
    shown = metrics(at)
    assert shown["Mode"] == "queue"
    assert shown["Redis"] == "reachable"
    assert shown["Live workers"] == "0"
    assert any("No worker is running" in e.value for e in at.error)
    assert [c.value for c in at.code] == [submit.worker_command()]


@pytest.mark.redis
def test_queue_mode_lists_a_live_worker(redis_url: str) -> None:
    worker = WorkerProcess(threads=3)
    try:
        wait_for_worker(worker)
        at = open_page("ui/health.py")
        shown = metrics(at)
        assert shown["Mode"] == "queue" and shown["Live workers"] == "1"
        assert not any("No worker is running" in e.value for e in at.error)
        workers = at.dataframe[0].value
        assert list(workers["pid"]) == [worker.pid] and list(workers["threads"]) == [3]
        assert list(workers["kind"]) == ["worker"] and list(workers["writes to"]) == ["the database"]
    finally:
        worker.stop()


@pytest.mark.redis
def test_queue_mode_shows_the_ingest_lag_of_remote_workers(redis_url: str) -> None:
    from sparring.livestate import Mirror

    mirror = Mirror(redis_url, os.environ["SPARRING_NAMESPACE"])
    mirror.client.xadd(mirror.stream, {"r": "[]"})  # a record sent by a remote worker, not yet ingested
    mirror.client.xadd(mirror.stream, {"r": "[]"})
    at = open_page("ui/health.py")
    shown = metrics(at)
    assert shown["Records waiting"] == "2"
    assert shown["Oldest waiting"].endswith(" s")
    assert shown["Last commit"] == "never"
    assert any("0 records committed" in c.value for c in at.caption)


def test_embedded_mode_has_no_ingest_panel() -> None:
    at = open_page("ui/health.py")
    assert "Records waiting" not in metrics(at)


def test_sim_models_are_said_to_be_unlimited_and_only_limited_providers_are_listed() -> None:
    from sparring.shared_state import shared_state

    usecases.run_inline(new_battle())  # sim models only: the limiter has nothing to say about them
    at = open_page("ui/health.py")
    captions = [c.value for c in at.caption]
    assert any("Sim models (sim/…) run inside Sparring and are not rate-limited" in c for c in captions), captions
    assert any("No calls to a rate-limited provider yet" in c for c in captions)
    assert not any("recorded by the rate limiter" in c for c in captions)

    settings = runtime.get_runtime().settings
    shared_state(settings.redis_url, settings.namespace).note_backoff("openai", 30)  # a real provider, limited
    at = open_page("ui/health.py")
    (providers,) = [d.value for d in at.dataframe if "rate limit" in d.value.columns]
    assert list(providers["provider"]) == ["openai"]
    assert list(providers["rate limit"]) == [settings.provider_rate_limit]


def test_a_cap_that_binds_is_said_with_the_setting_that_raises_it_while_it_binds() -> None:
    from sparring.shared_state import shared_state

    settings = runtime.get_runtime().settings
    state = shared_state(settings.redis_url, settings.namespace)
    state.note_binding("openai", "concurrency", "64 calls in flight", ttl_s=60)
    at = open_page("ui/health.py")
    (note,) = [i.value for i in at.info if "held back" in i.value]
    assert note.startswith("**openai**: calls are held back by the cap of 64 calls in flight")
    assert "`SPARRING_PROVIDER_CONCURRENCY`" in note
    (providers,) = [d.value for d in at.dataframe if "rate limit" in d.value.columns]
    assert list(providers["state"]) == ["held back by its cap of 64 calls in flight"]
    assert (
        "provider openai: calls held back by the concurrency cap of 64 calls in flight "
        "(raise SPARRING_PROVIDER_CONCURRENCY if your quota allows)"
    ) in health.format_report(health.health_report())
    state.note_binding("openai", "concurrency", "64 calls in flight", ttl_s=0.01)
    time.sleep(0.05)  # the note expired: the cap no longer binds
    at = open_page("ui/health.py")
    assert not [i.value for i in at.info if "held back" in i.value]
