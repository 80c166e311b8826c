"""The battle page for the attack algorithms: roll-backs folded in place, private notes folded,
PAIR's and TAP's conversations listed with their scores."""

from __future__ import annotations

from sparring import usecases
from tests.helpers import new_battle
from tests.ui.apptest import open_page


def expanders(at: object) -> list[str]:
    return [e.label for e in at.expander]  # type: ignore[attr-defined]


def test_a_crescendo_battle_folds_its_rolled_back_exchange_and_notes() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0.04&harden=1", strategy="crescendo", max_messages=6, seed=3)
    usecases.run_inline(battle_id)
    at = open_page("ui/battle.py", id=battle_id)
    labels = expanders(at)
    assert labels.count("Rolled back: the agent refused") == 1
    assert any(label.startswith("Adversary's private note") for label in labels)
    assert not any(label.endswith("roll-back") for label in labels)  # its note is the fold itself
    assert any("score 10/10" in label for label in labels)  # the judge's grade of the winning answer
    status = at.get("markdown")  # the status line counts what was rolled back
    assert any("1 rolled back" in m.value and "2 queries to the agent" in m.value for m in status)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Messages"] == "2 / 6"  # notes and the rolled-back exchange do not count


def test_a_pair_battle_lists_its_conversations_with_scores() -> None:
    battle_id = new_battle(
        agent_model="sim/agent?concede=0&harden=1", strategy="pair", adversary_params="pair_streams=2,pair_depth=2"
    )
    usecases.run_inline(battle_id)
    at = open_page("ui/battle.py", id=battle_id)
    titles = [label for label in expanders(at) if label.startswith("Conversation #")]
    assert titles == [
        "Conversation #1 · stream 1, refinement 1 · score 1/10",
        "Conversation #2 · stream 2, refinement 1 · score 1/10",
        "Conversation #3 · stream 1, refinement 2 · score 1/10",
        "Conversation #4 · stream 2, refinement 2 · score 1/10",
    ]


def test_a_tap_battle_shows_pruned_branches() -> None:
    battle_id = new_battle(agent_model="sim/agent?concede=0&harden=1", strategy="tap", seed=7)
    usecases.run_inline(battle_id)
    at = open_page("ui/battle.py", id=battle_id)
    titles = [label for label in expanders(at) if "Conversation #" in label]
    assert any("pruned off-topic before the agent" in title for title in titles)
    assert any("level 2, from #" in title for title in titles)
