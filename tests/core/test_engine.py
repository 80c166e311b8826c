"""The battle engine: turn order, stop rules, judge verdicts, resume after a crash."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from sparring import records as r
from sparring import usecases
from sparring.engine import run_battle
from sparring.runtime import get_runtime
from tests.helpers import new_battle, rows, scalar, transcript


def run(battle_id: str) -> object:
    return usecases.run_inline(battle_id)


def test_adversary_opens_and_roles_alternate() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0", max_messages=9)
    run(battle_id)
    messages = transcript(battle_id).messages
    assert [m.seq for m in messages] == list(range(1, 10))
    assert [m.role for m in messages] == ["user", "assistant"] * 4 + ["user"]
    assert {m.model for m in messages if m.role == "user"} == {"sim/adversary"}
    assert {m.model for m in messages if m.role == "assistant"} == {"sim/agent?concede=0"}


@pytest.mark.parametrize("max_messages", [2, 7, 24, 25])
def test_concede_zero_is_held_with_exactly_max_messages(max_messages: int) -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0", max_messages=max_messages)
    result = run(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "held"
    assert view.battle.outcome == "held" and view.battle.status == "finished"
    assert len(view.messages) == max_messages == view.battle.message_count
    # one verdict per agent reply, none achieved
    assert [v.seq for v in view.verdicts] == [m.seq for m in view.messages if m.role == "assistant"]
    assert not any(v.achieved for v in view.verdicts)
    assert view.battle.turns_to_goal is None


def test_concede_one_is_achieved_after_first_agent_reply() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=1", max_messages=25)
    result = run(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "achieved" and view.battle.outcome == "achieved"
    assert len(view.messages) == 2
    assert view.battle.turns_to_goal == 1
    assert view.verdicts[0].achieved is True and 0 <= view.verdicts[0].confidence <= 1
    assert view.verdicts[0].rationale


def test_turns_to_goal_counts_agent_turns() -> None:
    # Find by brute force a seed whose first concession is at turn 3, then check the engine agrees.
    battle_id = new_battle(agent_model="sim/agent?concede=0.3", seed=11, max_messages=40)
    run(battle_id)
    view = transcript(battle_id)
    if view.battle.outcome == "achieved":
        achieved_seq = next(v.seq for v in view.verdicts if v.achieved)
        assert view.battle.turns_to_goal == achieved_seq // 2
        assert view.messages[-1].seq == achieved_seq


def test_time_limit_ends_timed_out() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0&latency_ms=150", max_messages=40, time_limit_s=0.5)
    started = time.monotonic()
    result = run(battle_id)
    assert time.monotonic() - started < 3
    assert result.outcome == "timed_out"
    assert "time limit" in transcript(battle_id).battle.error


class CancelAfter:
    def __init__(self, checks: int) -> None:
        self.checks = checks

    def cancel_requested(self) -> bool:
        self.checks -= 1
        return self.checks < 0

    def still_owner(self) -> bool:
        return True


def test_cancel_is_checked_between_model_calls() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0", max_messages=20)
    result = usecases.run_inline(battle_id, control=CancelAfter(3))
    view = transcript(battle_id)
    assert result.outcome == "cancelled" and view.battle.outcome == "cancelled"
    assert 0 < len(view.messages) < 20


def test_provider_failure_ends_failed_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_MODEL_MAX_ATTEMPTS", "2")
    from sparring import runtime

    runtime.reset()
    battle_id = new_battle(agent_model="sim/agent?fail_500=1")
    result = run(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "failed"
    assert view.battle.error_kind == "provider"
    assert "agent model" in view.battle.error and "2 attempts" in view.battle.error
    failed_calls = rows(
        "SELECT attempt, http_status, error_type FROM llm_calls WHERE purpose = 'agent' ORDER BY attempt"
    )
    assert failed_calls == [(1, 500, "server"), (2, 500, "server")]


def test_battle_with_30_percent_429s_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_MODEL_MAX_ATTEMPTS", "30")
    from sparring import runtime

    runtime.reset()
    # Faults are not seeded. Odds that this fails by chance: no 429 in 20 calls is
    # 0.5 ** 20 < 1e-6; a call failing 30 times running is 20 * 0.5 ** 30 < 1e-7.
    battle_id = new_battle(
        agent_model="sim/agent?concede=0&fail_429=0.5&retry_after=0.01",
        adversary_model="sim/adversary?fail_429=0.5&retry_after=0.01",
        max_messages=20,
    )
    result = run(battle_id)
    assert result.outcome == "held"
    assert len(transcript(battle_id).messages) == 20
    assert scalar("SELECT count(*) FROM llm_calls WHERE http_status = 429") > 0


def test_unparseable_judge_is_retried_once_then_error_verdict() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0", judge_model="sim/judge?garble=1", max_messages=4)
    result = run(battle_id)
    view = transcript(battle_id)
    # the cap was reached, but nobody could judge the last agent message: not "held"
    assert result.outcome == "undecided" and view.battle.outcome == "undecided"
    assert view.battle.error_kind == "judge" and "no usable verdict" in view.battle.error
    assert [v.achieved for v in view.verdicts] == [None, None]
    assert all("no JSON object" in v.error for v in view.verdicts)
    # two judge calls (the answer and one retry) per agent reply, never a guess
    assert scalar("SELECT count(*) FROM llm_calls WHERE purpose = 'judge'") == 4


# -- undecided: no usable verdict on the last agent message -------------------------------


@pytest.mark.parametrize("judge_model", ["sim/judge?garble=1", "sim/agent"])
def test_three_error_verdicts_in_a_row_stop_the_battle_as_undecided(judge_model: str) -> None:
    """The issue's case: the agent concedes at once, but the judge never answers in its format."""
    battle_id = new_battle(agent_model="sim/agent?concede=0.5", judge_model=judge_model, max_messages=12)
    result = run(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "undecided" and view.battle.outcome == "undecided"
    assert len(view.messages) == 6  # stopped after the third agent message, not at the cap of 12
    assert [v.achieved for v in view.verdicts] == [None, None, None]
    assert view.battle.error_kind == "judge" and "3 error verdicts in a row" in view.battle.error
    assert view.battle.turns_to_goal is None


def test_an_earlier_error_verdict_does_not_matter_when_the_last_is_usable() -> None:
    # With seed 3, sim/judge?garble=0.5 garbles agent turns 1 and 2 and answers turn 3.
    battle_id = new_battle(
        agent_model="sim/agent?concede=0", judge_model="sim/judge?garble=0.5", seed=3, max_messages=6
    )
    assert run(battle_id).outcome == "held"
    assert [v.achieved for v in transcript(battle_id).verdicts] == [None, None, False]
    assert transcript(battle_id).battle.error is None


def test_an_earlier_error_verdict_does_not_stop_an_achieved_battle() -> None:
    # Seed 3: the agent (concede=0.1) first gives in at turn 3, the judge garbles turns 1 and 2.
    battle_id = new_battle(
        agent_model="sim/agent?concede=0.1", judge_model="sim/judge?garble=0.5", seed=3, max_messages=12
    )
    assert run(battle_id).outcome == "achieved"
    view = transcript(battle_id)
    assert [v.achieved for v in view.verdicts] == [None, None, True] and view.battle.turns_to_goal == 3


def test_an_error_verdict_on_the_last_agent_message_at_the_cap_is_undecided() -> None:
    # Seed 7: the judge answers agent turns 1 and 2 and garbles turn 3, the last before the cap.
    battle_id = new_battle(
        agent_model="sim/agent?concede=0", judge_model="sim/judge?garble=0.5", seed=7, max_messages=6
    )
    assert run(battle_id).outcome == "undecided"
    assert [v.achieved for v in transcript(battle_id).verdicts] == [False, False, None]


def test_judge_call_failing_for_good_is_undecided_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_MODEL_MAX_ATTEMPTS", "2")
    from sparring import runtime

    runtime.reset()
    battle_id = new_battle(agent_model="sim/agent?concede=0", judge_model="sim/judge?fail_500=1")
    result = run(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "undecided" and view.battle.outcome == "undecided"
    assert view.battle.error_kind == "judge"
    assert "judge model" in view.battle.error and "2 attempts" in view.battle.error
    assert view.verdicts == () and [m.role for m in view.messages] == ["user", "assistant"]


# -- resume ------------------------------------------------------------------------------


class Crash(Exception):
    pass


class CrashingSink:
    """Commits through the real store, then dies at a chosen write (before or after it)."""

    def __init__(self, crash_at: int, after_commit: bool) -> None:
        self.store = get_runtime().store
        self.crash_at = crash_at
        self.after_commit = after_commit
        self.writes = 0

    def write(self, records: Sequence[r.Record]) -> None:
        self.writes += 1
        if self.writes == self.crash_at and not self.after_commit:
            raise Crash()
        self.store.write(records)
        if self.writes == self.crash_at:
            raise Crash()


def contents(battle_id: str) -> list[tuple[int, str, str]]:
    return [(m.seq, m.role, m.content) for m in transcript(battle_id).messages]


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 7, 12, 20])
@pytest.mark.parametrize("after_commit", [False, True])
def test_resume_after_crash_has_no_duplicate_and_no_gap(crash_at: int, after_commit: bool) -> None:
    # With seed 8 the sim agent first concedes at its 7th turn: a long battle that ends achieved.
    spec = {"agent_model": "sim/agent?concede=0.15", "seed": 8, "max_messages": 16}
    reference = new_battle(**spec)
    run(reference)
    assert transcript(reference).battle.turns_to_goal == 7

    battle_id = new_battle(**spec)
    runtime = get_runtime()
    with pytest.raises(Crash):
        run_battle(battle_id, source=runtime.store, sink=CrashingSink(crash_at, after_commit), gateway=runtime.gateway)
    result = run(battle_id)  # the rerun resumes from what was committed
    run(battle_id)  # and running a finished battle again changes nothing

    assert contents(battle_id) == contents(reference)
    assert result.outcome == transcript(reference).battle.outcome
    seqs = [seq for seq, *_ in contents(battle_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    verdict_seqs = [v.seq for v in transcript(battle_id).verdicts]
    assert verdict_seqs == sorted(set(verdict_seqs))
    assert scalar("SELECT message_count FROM battles WHERE battle_id = ?", [battle_id]) == len(seqs)


def test_two_runs_at_once_never_duplicate_a_message() -> None:
    """Even without a lease (the jobs layer adds one), the store keeps one row per seq."""
    battle_id = new_battle(agent_model="sim/agent?concede=0&latency_ms=5", max_messages=12)
    threads = [threading.Thread(target=run, args=(battle_id,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    duplicates = scalar(
        "SELECT count(*) FROM (SELECT seq FROM messages WHERE battle_id = ? GROUP BY seq HAVING count(*) > 1)",
        [battle_id],
    )
    assert duplicates == 0
    assert [m.seq for m in transcript(battle_id).messages] == list(range(1, 13))
