"""Finished scale tests written straight to the store, for tests that need no model calls.

Each battle follows the engine's shape: adversary and agent messages alternate, the judge
gives a verdict after every agent message, and the battle ends at the first "achieved"
or at the message cap. Whether the agent truly gave in is up to the caller, so the judge
can be made wrong on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparring import records as r
from sparring import sim
from sparring.store import Store

SPEC = r.BattleSpec(
    agent=r.AgentSpec("sim/agent", "be helpful"),
    adversary=r.AdversarySpec("sim/adversary", "get a refund"),
    judge=r.JudgeSpec("sim/judge"),
    max_messages=6,
)


@dataclass(frozen=True)
class Planned:
    """One battle: which cell, what the original judge said, whether the agent truly gave in."""

    cell: int
    judge_said: bool
    truth: bool


def write_run(
    store: Store, battles: list[Planned], *, cells: int = 1, name: str = "judge test", adversary: str = "Please"
) -> tuple[str, list[str]]:
    """Write a finished run; return its id and its battle ids (in the order given)."""
    run_id = r.new_id()
    config = {
        "input": {},
        "base_seed": 0,
        "cells": [{"index": i, "key": f"cell{i}", "label": f"agent {i}", "battle": {}} for i in range(cells)],
    }
    records: list[r.Record] = [r.RunCreated(run_id, name, config, len(battles) // cells, len(battles))]
    ids = []
    replicates: dict[int, int] = {}
    for planned in battles:
        battle_id = r.new_id()
        ids.append(battle_id)
        replicate = replicates[planned.cell] = replicates.get(planned.cell, -1) + 1
        records += _battle(battle_id, run_id, planned, replicate, adversary)
    records.append(r.RunStatusChanged(run_id, "finished"))
    store.write(records)
    return run_id, ids


def _battle(battle_id: str, run_id: str, planned: Planned, replicate: int, adversary: str) -> list[r.Record]:
    turns = 1 if planned.judge_said else SPEC.max_messages // 2
    records: list[r.Record] = [
        r.BattleCreated(
            battle_id, SPEC, run_id=run_id, cell_key=f"cell{planned.cell}", cell_index=planned.cell, replicate=replicate
        ),
        r.BattleStarted(battle_id),
    ]
    for turn in range(1, turns + 1):
        reply = f"Alright. {sim.CONCESSION}." if planned.truth and turn == turns else "I can't do that."
        records.append(
            r.MessageAdded(r.Message(battle_id, 2 * turn - 1, "user", f"{adversary}, turn {turn}", "sim/adversary"))
        )
        records.append(r.MessageAdded(r.Message(battle_id, 2 * turn, "assistant", reply, "sim/agent")))
        achieved = planned.judge_said and turn == turns
        records.append(r.VerdictAdded(r.Verdict(battle_id, 2 * turn, achieved, 0.9, "judged", "sim/judge")))
    outcome: r.Outcome = "achieved" if planned.judge_said else "held"
    records.append(r.BattleFinished(battle_id, outcome, turns_to_goal=turns if planned.judge_said else None))
    return records


def label(store: Store, battle_id: str, labeller: str, value: r.Label, note: str | None = None) -> None:
    store.write([r.LabelSaved(battle_id, labeller, value, note)])
