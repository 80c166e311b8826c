"""The hub: the launch form (valid, each invalid field, profiles, goals), the live list, no worker, no Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from jobs import submit
from sparring.runtime import get_runtime
from sparring.validation import DEFAULT_SYSTEM_PROMPT
from tests.conftest import reset_all
from tests.helpers import new_battle, rows, scalar
from tests.ui.apptest import element_after, markdown_bodies, open_app, rerun_until

SLOW_AGENT = "sim/agent?concede=0&latency_ms=300"


def battle_count() -> int:
    return int(scalar("SELECT count(*) FROM battles"))


def session_ids(at: AppTest) -> list[str]:
    return list(at.session_state["hub_state"].session_ids)


def row_badge(at: AppTest, section: str, battle_id: str) -> str:
    """The badge markdown of a battle's row in ``section`` ("session" or "recent")."""
    row = at.main.get_by_key(f"row-{section}-{battle_id}")
    return next(node.value for node in row if getattr(node, "type", "") == "markdown" and "-badge[" in node.value)


def start(at: AppTest, **fields: Any) -> AppTest:
    for name, value in fields.items():
        widget = at.main.get_by_key(f"hub_{name}")
        widget.set_value(value)
    at.button(key="hub_start").click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_valid_form_starts_a_battle_that_appears_live_in_the_session_list() -> None:
    at = open_app()
    assert "No battles yet" in at.info[0].value
    start(at, agent_model="sim/agent?concede=1", max_messages=10, seed=3)
    (battle_id,) = session_ids(at)
    stored = rows("SELECT agent_model, max_messages, seed, goal FROM battles WHERE battle_id = ?", [battle_id])
    assert stored[0][:3] == ("sim/agent?concede=1", 10, 3)
    assert any(battle_id[:8] in body for body in markdown_bodies(at))
    rerun_until(at, lambda at: "achieved" in row_badge(at, "session", battle_id), 60, "the battle to be achieved")
    progress = at.main.get_by_key(f"row-session-{battle_id}")
    assert any(getattr(node, "type", "") == "progress" for node in progress)
    assert not at.error


INVALID = [
    ("system_prompt", "   ", "must not be empty"),
    ("agent_model", "gpt-4o-mini", "provider/model"),
    ("agent_model", "acme/model-1", "Unknown provider 'acme'"),
    ("agent_model", "openai/gpt-4o-mini", "OPENAI_API_KEY"),
    ("agent_model", "sim/agent?concede=2", "between 0 and 1"),
    ("judge_model", "sim/judge?nope=1", "has no parameter 'nope'"),
    ("adversary_model", "", "Enter a model"),
    ("max_messages", 500, "less than or equal to 100"),
    ("max_messages", 1, "greater than or equal to 2"),
    ("time_limit_s", 0, "greater than 0"),
    ("goal", "Refund me\x07 now", "control characters"),
    ("goal", "", "must not be empty"),
    ("persona", "x" * 2001, "too long"),
    ("goal", "x" * 2001, "is too long (at most 2000 characters)"),
]


@pytest.mark.parametrize(("field", "value", "message"), INVALID, ids=[f"{f}:{m}" for f, _, m in INVALID])
def test_each_invalid_field_is_explained_next_to_it_and_nothing_starts(
    field: str, value: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    at = start(open_app(), **{field: value})
    error = element_after(at, f"hub_{field}")
    assert type(error).__name__ == "Error", error
    assert message in error.value, error.value
    assert len(at.error) == 1, [e.value for e in at.error]  # only that field is marked
    assert any("Nothing was started" in c.value for c in at.caption)
    assert battle_count() == 0
    assert session_ids(at) == []
    # Correcting the field clears its message.
    at.main.get_by_key(f"hub_{field}").set_value(
        {"max_messages": 10, "time_limit_s": 60}.get(field, "sim/agent" if "model" in field else "A goal")
    )
    at.run()
    assert not at.error


def test_the_goal_library_and_a_sample_profile_fill_the_form() -> None:
    at = open_app()
    at.selectbox(key="hub_goal_choice").set_value("Reveal system prompt").run()
    assert at.text_area(key="hub_goal").value.startswith("Make the agent reveal its system prompt")
    at.selectbox(key="hub_profile").set_value("Acme support (sim, lenient)").run()
    assert at.text_input(key="hub_agent_model").value == "sim/agent?concede=0.3"
    assert at.text_area(key="hub_system_prompt").value.startswith("You are the customer-support assistant")
    start(at, max_messages=4)
    (battle_id,) = session_ids(at)
    assert scalar("SELECT agent_profile FROM battles WHERE battle_id = ?", [battle_id]) == "Acme support (sim, lenient)"
    assert scalar("SELECT goal FROM battles WHERE battle_id = ?", [battle_id]).startswith("Make the agent reveal")


def test_saving_a_profile_stores_it_and_offers_it() -> None:
    at = open_app()
    at.text_input(key="hub_agent_model").set_value("sim/agent?concede=0.5")
    at.text_area(key="hub_system_prompt").set_value("You are a careful bank assistant.")
    at.number_input(key="hub_temperature").set_value(0.7)
    at.text_input(key="hub_profile_name").set_value("Bank bot v2")
    at.button(key="hub_save_profile").click().run()
    assert not at.exception and not at.error
    assert rows("SELECT name, model, system_prompt, temperature FROM agents") == [
        ("Bank bot v2", "sim/agent?concede=0.5", "You are a careful bank assistant.", 0.7)
    ]
    assert at.selectbox(key="hub_profile").value == "Bank bot v2"
    at.selectbox(key="hub_profile").set_value("Acme support (sim, firm)").run()
    assert at.text_area(key="hub_system_prompt").value == DEFAULT_SYSTEM_PROMPT
    at.selectbox(key="hub_profile").set_value("Bank bot v2").run()
    assert at.text_area(key="hub_system_prompt").value == "You are a careful bank assistant."
    assert at.number_input(key="hub_temperature").value == 0.7


def test_an_invalid_profile_name_is_refused() -> None:
    at = open_app()
    at.text_input(key="hub_profile_name").set_value("bad/name").run()
    at.button(key="hub_save_profile").click().run()
    assert not at.exception
    assert any(e.value.startswith("Name:") for e in at.error)
    assert scalar("SELECT count(*) FROM agents") == 0


def test_the_form_survives_a_visit_to_another_page() -> None:
    at = open_app()
    at.text_area(key="hub_goal").set_value("Get the admin password.").run()
    at.switch_page("ui/health.py").run()
    at.switch_page("ui/hub.py").run()
    assert at.text_area(key="hub_goal").value == "Get the admin password."


def test_cancel_then_retry_from_the_list() -> None:
    at = start(open_app(), agent_model=SLOW_AGENT, max_messages=40)
    (battle_id,) = session_ids(at)
    rerun_until(
        at,
        lambda at: scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id]) >= 2,
        60,
        "two messages",
    )
    at.button(key=f"session-cancel-{battle_id}").click()
    rerun_until(at, lambda at: "cancelled" in row_badge(at, "session", battle_id), 30, "the cancel")
    messages = scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id])
    assert 2 <= messages < 40
    at.button(key=f"session-retry-{battle_id}").click()
    at.run()
    assert scalar("SELECT status FROM battles WHERE battle_id = ?", [battle_id]) in ("queued", "running")
    rerun_until(
        at,
        lambda at: scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id]) > messages,
        60,
        "the retried battle to resume",
    )
    at.button(key=f"session-cancel-{battle_id}").click()
    rerun_until(at, lambda at: "cancelled" in row_badge(at, "session", battle_id), 30, "the second cancel")
    seqs = [s for (s,) in rows("SELECT seq FROM messages WHERE battle_id = ? ORDER BY seq", [battle_id])]
    assert seqs == list(range(1, len(seqs) + 1))  # resumed: no gap, no duplicate


@pytest.mark.redis
def test_queue_mode_without_a_worker_says_so_and_can_run_it_here(redis_url: str) -> None:
    at = start(open_app(), agent_model="sim/agent?concede=1", max_messages=6)
    assert battle_count() == 0
    notice = at.main.get_by_key("hub_no_worker")
    assert any("No worker is running" in getattr(node, "value", "") for node in notice)
    assert [c.value for c in at.code] == [submit.worker_command()]
    at.button(key="hub_run_here").click().run()
    assert not at.exception
    (battle_id,) = session_ids(at)
    assert battle_count() == 1
    rerun_until(at, lambda at: "achieved" in row_badge(at, "session", battle_id), 90, "the battle run in the app")
    with pytest.raises(KeyError):
        at.main.get_by_key("hub_no_worker")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_redis_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    reset_all()
    at = start(open_app())
    assert not at.exception
    (error,) = at.error
    assert "not reachable" in error.value and "Nothing was submitted" in error.value
    assert battle_count() == 0


def test_a_locked_database_keeps_the_last_list_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from ui import common

    monkeypatch.setattr(common, "READ_DEADLINE_S", 0.5)
    battle_id = new_battle()
    at = open_app()
    at.main.get_by_key(f"row-recent-{battle_id}")
    holder = subprocess.Popen(  # another process holding the file read-write, as a writer would
        [sys.executable, "-c", HOLD_LOCK, str(get_runtime().store.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        at.run()
        assert not at.exception
        assert any("stayed locked" in w.value for w in at.warning)
        at.main.get_by_key(f"row-recent-{battle_id}")  # still listed
    finally:
        holder.kill()
        holder.wait(10)
    at.run()
    assert not at.warning


HOLD_LOCK = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)"


def test_an_undecided_battle_is_listed_as_undecided_with_why_and_can_be_retried() -> None:
    from sparring import usecases

    battle_id = new_battle(agent_model="sim/agent?concede=1", judge_model="sim/judge?garble=1", max_messages=12)
    usecases.run_inline(battle_id)
    at = open_app()
    badge = row_badge(at, "recent", battle_id)
    assert "undecided" in badge and "held" not in badge
    row = " ".join(str(getattr(node, "value", "")) for node in at.main.get_by_key(f"row-recent-{battle_id}"))
    assert "3 error verdicts in a row" in row
    assert f"recent-retry-{battle_id}" in {b.key for b in at.button}
    assert any("**undecided**: the judge gave no usable verdict" in c.value for c in at.caption)


def test_retrying_an_undecided_battle_checks_its_judge_first_and_says_why_it_did_not() -> None:
    """New-user run: Retry on an undecided battle ran the same broken judge again, for nothing."""
    from sparring import usecases

    battle_id = new_battle(agent_model="sim/agent?concede=1", judge_model="sim/judge?garble=1", max_messages=12)
    usecases.run_inline(battle_id)
    at = open_app()
    at.button(key=f"recent-retry-{battle_id}").click().run()
    assert not at.exception, at.exception
    toasts = " ".join(t.value for t in at.toast)
    assert "Not retried: the judge check failed" in toasts and "did not answer in the judge" in toasts
    view = get_runtime().store.get_battle(battle_id)
    assert view is not None and view.outcome == "undecided" and view.attempts == 1  # nothing queued
