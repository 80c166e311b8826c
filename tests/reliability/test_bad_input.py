"""Scenario 5: bad input from the form, the CLI and task payloads never gets in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import embedded, runs, submit, tasks
from jobs.queue import get_queue
from sparring import runtime
from sparring.modelref import ModelError, parse_model
from sparring.validation import BattleInput, InvalidInput, validate_battle
from tests.helpers import scalar, transcript, wait_finished
from tests.reliability.conftest import report

ROOT = Path(__file__).resolve().parents[2]
MEGABYTE = "x" * 1_000_000

FORM_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("empty system prompt", {"system_prompt": ""}, "system_prompt"),
    ("blank system prompt", {"system_prompt": "   \n  "}, "system_prompt"),
    ("1 MB system prompt", {"system_prompt": MEGABYTE}, "system_prompt"),
    ("empty goal", {"goal": ""}, "goal"),
    ("1 MB goal", {"goal": MEGABYTE}, "goal"),
    ("NUL in goal", {"goal": "refund\x00please"}, "goal"),
    ("escape codes in prompt", {"system_prompt": "be \x1b[31mred\x1b[0m"}, "system_prompt"),
    ("bell in persona", {"persona": "a\x07b"}, "persona"),
    ("invalid UTF-8 bytes", {"goal": b"\xff\xfe refund"}, "goal"),
    ("lone surrogate", {"goal": "refund \udcff"}, "goal"),
    ("max messages 0", {"max_messages": 0}, "max_messages"),
    ("max messages 1", {"max_messages": 1}, "max_messages"),
    ("max messages 10^6", {"max_messages": 1_000_000}, "max_messages"),
    ("max messages text", {"max_messages": "many"}, "max_messages"),
    ("unknown provider", {"agent_model": "acme/gpt-9"}, "agent_model"),
    ("no provider", {"agent_model": "gpt-4o"}, "agent_model"),
    ("missing key for a real provider", {"agent_model": "anthropic/claude-3-5-haiku-latest"}, "agent_model"),
    ("unknown sim model", {"agent_model": "sim/oracle"}, "agent_model"),
    ("sim param not a number", {"agent_model": "sim/agent?concede=abc"}, "agent_model"),
    ("sim param out of range", {"agent_model": "sim/agent?concede=1.5"}, "agent_model"),
    ("sim param negative", {"agent_model": "sim/agent?latency_ms=-5"}, "agent_model"),
    ("sim param not finite", {"agent_model": "sim/agent?concede=nan"}, "agent_model"),
    ("sim param twice", {"agent_model": "sim/agent?concede=0.1&concede=0.2"}, "agent_model"),
    ("unknown sim param", {"judge_model": "sim/judge?concede=0.5"}, "judge_model"),
    ("model name with spaces", {"adversary_model": "sim/adversary; rm -rf /"}, "adversary_model"),
    ("temperature 5", {"temperature": 5}, "temperature"),
    ("temperature nan", {"temperature": float("nan")}, "temperature"),
    ("negative seed", {"seed": -1}, "seed"),
    ("seed 10^30", {"seed": 10**30}, "seed"),
    ("unknown strategy", {"strategy": "bribery"}, "strategy"),
    ("time limit 0", {"time_limit_s": 0}, "time_limit_s"),
    ("api base not http", {"api_base": "file:///etc/passwd"}, "api_base"),
    ("key env name with spaces", {"api_key_env": "MY KEY"}, "api_key_env"),
    ("unknown field", {"admin": True}, "admin"),
]

SCALE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("N of 0", {"runs": 0}, "runs"),
    ("N of -1", {"runs": -1}, "runs"),
    ("N of 10^9", {"runs": 10**9}, "runs"),
    ("too many battles in total", {"runs": 900, "goals": ["a", "b", "c"]}, "runs"),
    ("no agent", {"agents": []}, "agents"),
    ("budget of -3", {"budget_usd": -3}, "budget_usd"),
]

CLI_CASES: list[tuple[str, list[str], str]] = [
    ("CLI: max messages 0", ["battle", "--max-messages", "0"], "--max-messages"),
    ("CLI: max messages 10^6", ["battle", "--max-messages", "1000000"], "--max-messages"),
    ("CLI: control characters", ["battle", "--goal", "a\x1bb"], "--goal"),
    ("CLI: unknown provider", ["battle", "--agent-model", "acme/x"], "--agent-model"),
    ("CLI: missing key", ["battle", "--agent-model", "openai/gpt-4o-mini"], "OPENAI_API_KEY"),
    ("CLI: malformed sim", ["battle", "--agent-model", "sim/agent?concede="], "--agent-model"),
    ("CLI: runs 0", ["scale", "--runs", "0"], "--runs"),
    ("CLI: runs -1", ["scale", "--runs", "-1"], "--runs"),
    ("CLI: runs 10^9", ["scale", "--runs", "1000000000"], "--runs"),
    ("CLI: unknown battle id", ["status", "no-such-battle"], "unknown battle id"),
    ("CLI: id with SQL", ["status", "x' OR '1'='1"], "unknown battle id"),
    ("CLI: cancel unknown id", ["cancel", "ffffffffffffffff"], "unknown battle id"),
]


def counts() -> tuple[int, int, int]:
    store = runtime.get_runtime().store
    store.migrate()
    battles = scalar("SELECT count(*) FROM battles")
    scale = scalar("SELECT count(*) FROM scale_runs")
    return battles, scale, get_queue().huey.pending_count()


def test_forty_bad_inputs_get_a_clear_message_and_leave_nothing(isolated: Path) -> None:
    embedded.start(threads=2)  # a live consumer, so that a leak would be enqueued and visible
    before = counts()
    outcomes: dict[str, str] = {}
    for name, data, field in FORM_CASES:
        with pytest.raises(InvalidInput) as error:
            submit.submit_battle(data)
        assert field in error.value.errors, (name, error.value.errors)
        outcomes[name] = error.value.errors[field]
    for name, data, field in SCALE_CASES:
        with pytest.raises(InvalidInput) as error:
            runs.submit_run(data)
        assert field in error.value.errors, (name, error.value.errors)
        outcomes[name] = error.value.errors[field]
    env = {**os.environ, "OPENAI_API_KEY": ""}
    for name, args, expected in CLI_CASES:
        done = subprocess.run(
            [sys.executable, "-m", "sparring", *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
        )
        assert done.returncode == 2, (name, done.stderr)
        line = done.stderr.strip()
        assert expected in line and "\n" not in line and "Traceback" not in line, (name, done.stderr)
        outcomes[name] = line
    for name, payload in (
        ("task: path as battle id", "../../etc/passwd"),
        ("task: SQL as battle id", "1; DROP TABLE x"),
        ("task: empty battle id", ""),
    ):
        assert tasks.run_battle(payload) == "invalid"
        with pytest.raises(ValueError, match="not a battle id"):
            get_queue().enqueue_battle(payload)
        outcomes[name] = "refused"
    after = counts()
    assert all(message.strip() for message in outcomes.values())
    report(
        f"{len(outcomes)} invalid inputs (form, scale form, CLI, task payloads)",
        {"inputs refused": len(outcomes), "battles written": 0, "runs written": 0, "jobs enqueued": 0},
        {
            "inputs refused": len(outcomes),
            "battles written": after[0] - before[0],
            "runs written": after[1] - before[1],
            "jobs enqueued": after[2] - before[2],
        },
    )
    assert len(outcomes) >= 40
    assert after == before


def test_sql_in_text_fields_is_stored_as_text() -> None:
    embedded.start(threads=2)
    goal = "Robert'); DROP TABLE battles; -- and SELECT * FROM messages"
    battle_id = submit.submit_battle({"goal": goal, "agent_model": "sim/agent?concede=1", "persona": "' OR 1=1 --"})
    wait_finished([battle_id], 60)
    view = transcript(battle_id)
    assert view.battle.spec.adversary.goal == goal
    assert view.battle.spec.adversary.persona == "' OR 1=1 --"
    assert scalar("SELECT count(*) FROM battles") == 1  # the table is still there


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=60))
def test_model_strings_parse_or_say_why(text: str) -> None:
    try:
        ref = parse_model(text)
    except ModelError as error:
        assert str(error)
    else:
        assert "/" in ref.raw and ref.provider


CONTROL = st.characters(min_codepoint=0, max_codepoint=31, exclude_characters="\n\r\t")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=0, max_size=40), CONTROL, st.text(max_size=40))
def test_control_characters_are_always_refused(before: str, control: str, after: str) -> None:
    with pytest.raises(InvalidInput) as error:
        validate_battle({"goal": before + control + after})
    assert "control characters" in error.value.errors["goal"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers())
def test_max_messages_is_accepted_exactly_in_range(value: int) -> None:
    if 2 <= value <= 100:
        assert validate_battle({"max_messages": value}).max_messages == value
    else:
        with pytest.raises(InvalidInput) as error:
            validate_battle({"max_messages": value})
        assert "max_messages" in error.value.errors


PRINTABLE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PRINTABLE, PRINTABLE)
def test_printable_goals_and_prompts_round_trip(goal: str, prompt: str) -> None:
    if not goal.strip() or not prompt.strip():
        with pytest.raises(InvalidInput):
            validate_battle({"goal": goal, "system_prompt": prompt})
        return
    battle = BattleInput.model_validate({"goal": goal, "system_prompt": prompt})
    assert battle.goal == goal.strip() and battle.system_prompt == prompt.strip()
