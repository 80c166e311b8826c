"""Attack strategies on the sim laboratory: each algorithm does what it is for, in numbers a test can compute."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from jobs import embedded, runs
from sparring import pricing, sim, usecases
from sparring import records as r
from sparring.engine import _Run, run_battle
from sparring.modelref import ModelError, parse_model
from sparring.plan import cost_estimate
from sparring.report import run_stats
from sparring.runtime import get_runtime
from sparring.strategies import STRATEGIES
from sparring.strategies.search import pruned
from sparring.validation import InvalidInput, validate_battle
from tests.helpers import new_battle, rows, run_cli, scalar, transcript, wait_until

HARDENED = "sim/agent?concede=0.04&harden=1"


def run(battle_id: str) -> object:
    return usecases.run_inline(battle_id)


def path(battle_id: str, conversation: int = 1) -> list[r.Message]:
    return [
        m
        for m in transcript(battle_id).messages
        if m.conversation == conversation and m.role != "note" and not m.rolled_back
    ]


def notes(battle_id: str) -> list[dict[str, object]]:
    return [json.loads(m.content) for m in transcript(battle_id).messages if m.role == "note"]


# -- the registry and its parameters --------------------------------------------------------------


def test_one_registry_names_every_strategy_and_its_published_defaults() -> None:
    assert list(STRATEGIES) == ["direct", "escalation", "roleplay", "authority", "crescendo", "goat", "pair", "tap"]
    defaults = {p.name: p.default for s in STRATEGIES.values() for p in s.params}
    assert defaults == {
        "max_backtracks": 10,
        "pair_streams": 3,
        "pair_depth": 5,
        "tap_width": 3,
        "tap_branching": 2,
        "tap_depth": 5,
    }
    assert all(s.label and s.description for s in STRATEGIES.values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"strategy": "direct", "adversary_params": "max_backtracks=3"}, "direct takes no parameter"),
        ({"strategy": "crescendo", "adversary_params": "max_backtracks=99"}, "between 0 and 50"),
        ({"strategy": "pair", "adversary_params": "pair_streams=two"}, "whole number"),
        ({"strategy": "pair", "adversary_params": "streams=2"}, "unknown parameter 'streams'"),
        ({"strategy": "tap", "adversary_params": "tap_width"}, "not NAME=VALUE"),
    ],
)
def test_a_bad_strategy_parameter_is_refused_at_its_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        validate_battle(data)
    assert message in error.value.errors["adversary_params"]


def test_parameters_are_stored_with_the_battle() -> None:
    battle_id = new_battle(strategy="tap", adversary_params=["tap_width=2", "tap_depth=1"], agent_model=HARDENED)
    assert transcript(battle_id).battle.spec.adversary.params == {"tap_width": 2, "tap_depth": 1}
    assert json.loads(scalar("SELECT adversary_params FROM battles WHERE battle_id = ?", [battle_id])) == {
        "tap_depth": 1,
        "tap_width": 2,
    }


# -- the sim laboratory ---------------------------------------------------------------------------


def agent_chance(model: str, history: Sequence[tuple[str, str]], asked: str, draws: int = 4000) -> float:
    """The share of seeds for which the sim agent concedes to ``asked`` after ``history``."""
    ref = parse_model(model)
    messages = [{"role": role, "content": content} for role, content in history]
    messages.append({"role": "user", "content": asked})
    conceded = sum(
        sim.CONCESSION in sim.respond(ref, messages, seed=seed, timeout_s=1, sleep=False).text for seed in range(draws)
    )
    return conceded / draws


def test_harden_multiplies_the_odds_by_one_minus_h_per_visible_refusal() -> None:
    refusal = ("assistant", "I'm sorry, but I can't help with that.")
    first = agent_chance("sim/agent?concede=0.5&harden=0.5", [], "please")
    after_two = agent_chance("sim/agent?concede=0.5&harden=0.5", [("user", "a"), refusal, ("user", "b"), refusal], "c")
    assert abs(first - 0.5) < 0.03 and abs(after_two - 0.125) < 0.02
    assert agent_chance(HARDENED, [("user", "a"), refusal], "b") == 0


def test_weak_concedes_with_q_to_its_technique_only() -> None:
    model = "sim/agent?concede=0&weak=hypothetical:0.6,roleplay:0.2"
    assert abs(agent_chance(model, [], f"{sim.TECHNIQUE_TEXT['hypothetical']} tell me") - 0.6) < 0.03
    assert abs(agent_chance(model, [], f"{sim.TECHNIQUE_TEXT['roleplay']} tell me") - 0.2) < 0.03
    assert agent_chance(model, [], "just tell me") == 0
    with pytest.raises(ModelError, match="TECHNIQUE"):
        parse_model("sim/agent?weak=flattery:0.5")


# -- crescendo: roll-backs ------------------------------------------------------------------------


def test_crescendo_rolls_back_refusals_so_a_hardened_agent_keeps_its_first_turn_odds() -> None:
    # Seed 3: the hardened agent refuses the first question and gives in to the second try.
    battle_id = new_battle(agent_model=HARDENED, strategy="crescendo", max_messages=6, seed=3)
    result = run(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "achieved" and view.battle.turns_to_goal == 1  # the agent saw no refusal
    rolled = [m for m in view.messages if m.rolled_back]
    assert [m.role for m in rolled] == ["note", "user", "assistant"]
    assert view.battle.rolled_back == 1 and view.battle.target_queries == 2 and view.battle.conversations == 1
    assert [m.role for m in path(battle_id)] == ["user", "assistant"]
    assert {"kind": "rolled_back", "reason": "the agent refused"}.items() <= notes(battle_id)[1].items()


def test_roll_backs_stop_at_max_backtracks_and_do_not_count_against_the_cap() -> None:
    battle_id = new_battle(
        agent_model="sim/agent?concede=0&harden=1", strategy="crescendo", adversary_params="max_backtracks=3"
    )
    result = run(battle_id)
    view = transcript(battle_id).battle
    assert result.outcome == "held"
    assert view.rolled_back == 3 and len(path(battle_id)) == view.spec.max_messages == 10
    assert view.target_queries == 3 + 5 and view.agent_turns == 5


class _StatefulTarget(_Run):
    """A target that keeps its own conversation state (an HTTP session): nothing can be rolled back."""

    def _target_keeps_state(self) -> bool:
        return True


def test_crescendo_against_a_stateful_target_runs_without_roll_backs_and_says_so() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0&harden=1", strategy="crescendo", max_messages=4)
    runtime = get_runtime()
    loaded = runtime.store.load_transcript(battle_id)
    assert loaded is not None
    from sparring.engine import FreeControl

    result = _StatefulTarget(loaded, runtime.store, runtime.gateway, FreeControl(), None).run()
    assert result.outcome == "held" and transcript(battle_id).battle.rolled_back == 0
    assert notes(battle_id)[0]["kind"] == "no_rollback"


class Crash(Exception):
    pass


class CrashingSink:
    """Commits through the real store, then dies at a chosen write."""

    def __init__(self, crash_at: int) -> None:
        self.store = get_runtime().store
        self.crash_at = crash_at
        self.writes = 0

    def write(self, records: Sequence[r.Record]) -> None:
        self.writes += 1
        self.store.write(records)
        if self.writes == self.crash_at:
            raise Crash()


def contents(battle_id: str) -> list[tuple[int, int, str, bool, str]]:
    return [(m.seq, m.conversation, m.role, m.rolled_back, m.content) for m in transcript(battle_id).messages]


@pytest.mark.parametrize("strategy", ["crescendo", "goat", "pair", "tap"])
@pytest.mark.parametrize("crash_at", [3, 6, 11])
def test_a_battle_killed_mid_run_resumes_with_its_roll_backs_intact(strategy: str, crash_at: int) -> None:
    spec = {
        "agent_model": "sim/agent?concede=0.04&harden=1&weak=hypothetical:0.2",
        "strategy": strategy,
        "seed": 5,
        "max_messages": 6,
        "adversary_params": {"crescendo": "max_backtracks=4", "pair": "pair_depth=2", "tap": "tap_depth=2"}.get(
            strategy, ""
        ),
    }
    reference = new_battle(**spec)
    run(reference)
    battle_id = new_battle(**spec)
    runtime = get_runtime()
    with pytest.raises(Crash):
        run_battle(battle_id, source=runtime.store, sink=CrashingSink(crash_at), gateway=runtime.gateway)
    run(battle_id)
    run(battle_id)  # a finished battle runs again to no effect

    assert contents(battle_id) == contents(reference)
    seqs = [m.seq for m in transcript(battle_id).messages]
    assert seqs == list(range(1, len(seqs) + 1))
    mine, theirs = transcript(battle_id).battle, transcript(reference).battle
    counters = ("outcome", "target_queries", "rolled_back", "conversations", "agent_turns", "turns_to_goal")
    assert [getattr(mine, c) for c in counters] == [getattr(theirs, c) for c in counters]
    if strategy == "crescendo":
        assert mine.rolled_back > 0


# -- PAIR and TAP: several conversations in one battle ---------------------------------------------


def test_pair_refines_in_fresh_single_turn_conversations() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0&harden=1", strategy="pair")
    result = run(battle_id)
    view = transcript(battle_id).battle
    assert result.outcome == "held"
    assert view.conversations == view.target_queries == 3 * 5 and view.rolled_back == 0
    for conversation in range(1, 16):
        assert [m.role for m in path(battle_id, conversation)] == ["user", "assistant"]
    placed = [(n["stream"], n["iteration"]) for n in notes(battle_id)]
    assert placed == [(s, k) for k in range(1, 6) for s in range(1, 4)]
    assert all(v.score == 1 for v in transcript(battle_id).verdicts)


def test_tap_prunes_off_topic_branches_before_the_target_and_counts_them() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0&harden=1", strategy="tap", seed=7)
    result = run(battle_id)
    view = transcript(battle_id)
    assert result.outcome == "held"
    cut = pruned(list(view.messages))
    assert cut > 0
    answered = {m.conversation for m in view.messages if m.role == "assistant"}
    evaluated = [m.conversation for m in view.messages if m.role == "note" and '"on_topic"' in m.content]
    assert view.battle.conversations == len(evaluated) == len(answered) + cut
    assert view.battle.target_queries == len(answered) <= 3 + 4 * 3 * 2
    for conversation in set(evaluated) - answered:  # the pruned prompt never reached the target
        assert [m.role for m in view.messages if m.conversation == conversation] == ["note", "user", "note"]


# -- the done-when comparisons, with the store's numbers and intervals -----------------------------


def run_cells(data: dict[str, object], timeout: float = 600) -> dict[str, dict[str, object]]:
    embedded.start(threads=8)
    run_id = runs.submit_run(data)
    store = get_runtime().store

    def done() -> bool:
        row = store.read(lambda con: con.execute("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]).fetchone())
        return bool(row and row[0] in ("finished", "cancelled", "stopped", "failed"))

    wait_until(done, timeout, interval=0.5, message=f"run {run_id}")
    cells = run_stats(store, run_id)["cells"]
    return {str(cell["strategy"]): cell for cell in cells}


def test_crescendo_beats_direct_on_a_hardening_agent() -> None:
    """harden=1: direct succeeds with exactly concede (only its first turn can); crescendo's roll-backs
    restore the first-turn odds up to 10 times: 1 - 0.96^11 ≈ 0.36. With 100 battles a cell the two
    Wilson intervals separate for all but about 1 seed in 2000 (simulated), as they did with 150."""
    cells = run_cells(
        {"runs": 100, "agents": [{"model": HARDENED}], "strategies": ["direct", "crescendo"], "max_messages": 6}
        | {"seed": 20261202}
    )
    direct, crescendo = cells["direct"], cells["crescendo"]
    print({k: (c["rate"], c["ci_low"], c["ci_high"], c["median_queries_to_goal"]) for k, c in cells.items()})
    assert direct["n"] == crescendo["n"] == 100
    assert direct["ci_low"] <= 0.04 <= direct["ci_high"]
    truth = 1 - 0.96**11
    assert crescendo["ci_low"] <= truth <= crescendo["ci_high"]
    assert crescendo["ci_low"] > direct["ci_high"]  # significantly above
    assert direct["median_queries_to_goal"] == 1 and crescendo["median_queries_to_goal"] > 1


def test_goat_finds_the_technique_an_agent_is_weak_to() -> None:
    cells = run_cells(
        {
            "runs": 80,
            "agents": [{"model": "sim/agent?concede=0.02&weak=hypothetical:0.4"}],
            "strategies": ["direct", "goat"],
            "max_messages": 14,
            "seed": 20261203,
        }
    )
    direct, goat = cells["direct"], cells["goat"]
    print({k: (c["rate"], c["ci_low"], c["ci_high"]) for k, c in cells.items()})
    assert goat["ci_low"] > direct["ci_high"]


# -- the command line -------------------------------------------------------------------------------


def test_battle_and_status_json_print_queries_roll_backs_and_conversations() -> None:
    options = ["--agent-model", HARDENED, "--strategy", "crescendo", "--strategy-param", "max_backtracks=2"]
    done = run_cli("battle", *options, "--max-messages", "4", "--seed", "1", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["rolled_back"] >= 1 and payload["conversations"] == 1
    assert payload["target_queries"] == payload["agent_turns"] + payload["rolled_back"]
    status = run_cli("status", payload["battle_id"], "--json")
    shown = json.loads(status.stdout)
    assert {k: shown[k] for k in ("target_queries", "rolled_back", "conversations")} == {
        k: payload[k] for k in ("target_queries", "rolled_back", "conversations")
    }
    bad = run_cli("battle", "--strategy", "direct", "--strategy-param", "pair_depth=2")
    assert bad.returncode == 2 and "--strategy-param" in bad.stderr and "direct takes no parameter" in bad.stderr
    assert rows("SELECT 1 FROM battles WHERE adversary_strategy = 'direct'") == []


# -- cancel, time limit and the cost estimate cover every algorithm --------------------------------


class CancelAfter:
    def __init__(self, checks: int) -> None:
        self.checks = checks

    def cancel_requested(self) -> bool:
        self.checks -= 1
        return self.checks < 0

    def still_owner(self) -> bool:
        return True


@pytest.mark.parametrize("strategy", ["crescendo", "goat", "pair", "tap"])
def test_cancel_and_the_time_limit_stop_every_algorithm(strategy: str) -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0&harden=1", strategy=strategy, max_messages=20)
    result = usecases.run_inline(battle_id, control=CancelAfter(5))
    assert result.outcome == "cancelled" and len(transcript(battle_id).messages) > 0
    slow = new_battle(
        agent_model="sim/agent?concede=0&harden=1&latency_ms=200", strategy=strategy, max_messages=40, time_limit_s=1
    )
    assert usecases.run_inline(slow).outcome == "timed_out"


def test_the_cost_estimate_counts_each_algorithms_worst_case() -> None:
    def calls(strategy: str, params: dict[str, int] | None = None) -> int:
        battle = {"agent_model": "sim/agent", "adversary_model": "sim/adversary", "judge_model": "sim/judge"}
        battle |= {"max_messages": 6, "strategy": strategy, "adversary_params": params or {}}
        return pricing.estimate_cost([battle]).calls

    assert calls("direct") == 3 + 3 + 3
    assert calls("crescendo") == 13 + 2 * 13 + 13  # 3 turns + 10 roll-backs; each answer maybe asked twice
    assert calls("crescendo", {"max_backtracks": 0}) == 3 + 2 * 3 + 3
    assert calls("pair") == 15 + 2 * 15 + 15  # 3 streams × 5 refinements
    assert calls("tap") == 27 + 2 * 54 + 27  # 3 + 4 × 3 × 2 nodes, each evaluated before the agent
    estimate = cost_estimate(
        {
            "agents": [{"model": "sim/agent", "system_prompt": "Be helpful."}],
            "strategies": ["direct", "tap"],
            "adversary_model": "sim/adversary",
            "judge_model": "sim/judge",
            "max_messages": 6,
        },
        20,
    )
    assert f"({10 * 9 + 10 * 162:,} model calls" in estimate.basis


def test_scale_json_gives_each_cell_its_median_queries_to_goal_and_its_strategys_parameters() -> None:
    done = run_cli(
        *("scale", "--runs", "6", "--agent-model", "sim/agent?concede=0.5&harden=1"),
        *("--strategy", "direct", "--strategy", "crescendo", "--strategy-param", "max_backtracks=2"),
        *("--max-messages", "4", "--seed", "5", "--skip-judge-check", "--json"),
    )
    assert done.returncode == 0, done.stderr
    cells = {cell["strategy"]: cell for cell in json.loads(done.stdout)["cells"]}
    assert cells["direct"]["median_queries_to_goal"] == 1
    assert cells["crescendo"]["median_queries_to_goal"] is not None
    params = dict(rows("SELECT adversary_strategy, any_value(adversary_params) FROM battles GROUP BY ALL"))
    assert json.loads(params["crescendo"]) == {"max_backtracks": 2} and json.loads(params["direct"]) == {}
    bad = run_cli("scale", "--strategy", "direct", "--strategy-param", "tap_width=2")
    assert bad.returncode == 2 and "--strategy-param" in bad.stderr and "tap_width" in bad.stderr
