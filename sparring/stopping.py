"""Stopping a scale test's cells early: when a cell stops, and what it concluded.

A run may carry a stopping rule (``--stop-at-halfwidth W``, ``--stop-at-threshold T``); each
cell is then watched with the confidence sequence of ``sparring.sequential`` (Robbins'
beta-binomial mixture, valid at every stopping time) and stops as soon as the rule holds.

Everything here is a pure function of the cell's battles as the store holds them, so the
state survives a killed worker and a flushed Redis: whoever looks next (the worker finishing
a battle, the worker about to start one, the summary) computes the same answer. The outcomes
are read in replicate order, up to the first replicate that has not finished (battles that
succeed end sooner, so counting them as they finish would favour successes). Undecided and
infrastructure-failed battles are skipped: they say nothing about the agent.

scipy is imported only when a rule is evaluated, so a worker running plain battles stays lean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Decision = Literal["below", "above"]
Stopped = Literal["halfwidth", "threshold", "cap", "budget", "time", "cancelled"]
STOPPED: tuple[Stopped, ...] = ("halfwidth", "threshold", "cap", "budget", "time", "cancelled")
EARLY: tuple[Stopped, ...] = ("halfwidth", "threshold")  # the rule answered the question
CONFIDENCE = 0.95
DECIDED = ("achieved", "held")


@dataclass(frozen=True, slots=True)
class StoppingRule:
    """A run's stopping rule: either or both of a halfwidth and a threshold (the first met wins)."""

    halfwidth: float | None = None
    threshold: float | None = None
    confidence: float = CONFIDENCE

    @classmethod
    def of(cls, scale_input: Mapping[str, Any]) -> StoppingRule | None:
        """The rule of a run's stored input (``config["input"]``), or None for a fixed-N run."""
        halfwidth, threshold = scale_input.get("stop_at_halfwidth"), scale_input.get("stop_at_threshold")
        if halfwidth is None and threshold is None:
            return None
        return cls(halfwidth, threshold)

    def describe(self) -> str:
        parts = []
        if self.threshold is not None:
            parts.append(f"stop once the rate is clearly below or above {percent(self.threshold)}")
        if self.halfwidth is not None:
            parts.append(f"stop once the interval is at most ±{percent(self.halfwidth)} wide")
        return " or ".join(parts)


@dataclass(frozen=True, slots=True)
class CellBattle:
    """One battle of a cell as the rule reads it."""

    battle_id: str
    replicate: int
    status: str
    outcome: str | None


@dataclass(frozen=True, slots=True)
class CellStop:
    """Why and where a cell stopped, and its interval there (the row of ``cell_stops``).

    ``last_replicate``: the replicate at which it stopped (-1 before any); replicates after it
    are not counted, and the queued ones among them are cancelled.
    """

    stopped: Stopped
    last_replicate: int
    n: int
    achieved: int
    cs_low: float
    cs_high: float
    decision: Decision | None


def counted_prefix(battles: Sequence[CellBattle]) -> list[CellBattle]:
    """The cell's battles in replicate order up to (not including) the first one not finished."""
    prefix = []
    for battle in sorted(battles, key=lambda b: b.replicate):
        if battle.status != "finished":
            break
        prefix.append(battle)
    return prefix


def early_stop(rule: StoppingRule, battles: Sequence[CellBattle]) -> CellStop | None:
    """Where the rule first held along the cell's counted battles, or None while it has not."""
    import numpy as np

    from sparring.sequential import log_evidence_against, sequence_bounds

    decided = [b for b in counted_prefix(battles) if b.outcome in DECIDED]
    if not decided:
        return None
    hits = np.cumsum([b.outcome == "achieved" for b in decided])
    n = np.arange(1, len(decided) + 1)
    misses = n - hits
    held = np.zeros(len(decided), dtype=bool)
    decided_at = held.copy()
    level = -math.log(1 - rule.confidence)
    if rule.threshold is not None:
        decided_at = log_evidence_against(rule.threshold, hits, misses) >= level
        held |= decided_at
    low, high = sequence_bounds(hits, misses, rule.confidence)
    if rule.halfwidth is not None:
        held |= (high - low) / 2 <= rule.halfwidth
    if not held.any():
        return None
    at = int(held.argmax())
    s, k = int(hits[at]), int(n[at])
    decision: Decision | None = None
    if rule.threshold is not None and decided_at[at]:
        decision = "below" if s / k < rule.threshold else "above"
    stopped: Stopped = "threshold" if decision else "halfwidth"
    return CellStop(stopped, decided[at].replicate, k, s, float(low[at]), float(high[at]), decision)


def final_stop(rule: StoppingRule, battles: Sequence[CellBattle], stopped: Stopped) -> CellStop:
    """The cell's record when the run ended before its rule held: every counted battle, and why it ended."""
    from sparring.sequential import ConfidenceSequence, stop_at_threshold

    early = early_stop(rule, battles)
    if early is not None:
        return early
    prefix = counted_prefix(battles)
    decided = [b for b in prefix if b.outcome in DECIDED]
    achieved = sum(b.outcome == "achieved" for b in decided)
    state = ConfidenceSequence(achieved, len(decided) - achieved, rule.confidence)
    low, high = state.bounds()
    decision = stop_at_threshold(state, rule.threshold) if rule.threshold is not None else None
    last = prefix[-1].replicate if prefix else -1
    return CellStop(stopped, last, len(decided), achieved, low, high, decision)


def to_cancel(stop: CellStop, battles: Sequence[CellBattle]) -> list[str]:
    """The cell's battles still queued after its stopping point: they will not be run."""
    return [b.battle_id for b in battles if b.replicate > stop.last_replicate and b.status == "queued"]


def why_the_run_ended(cancel_reason: str | None) -> Stopped:
    """A cell the rule did not stop ended with its run: at the cap, at the budget, or cancelled."""
    if not cancel_reason:
        return "cap"
    return "budget" if cancel_reason.startswith("budget") else "cancelled"


def percent(share: float) -> str:
    """0.05 as '5%', 0.025 as '2.5%': the threshold as the user typed it, no rounding away."""
    return f"{share * 100:.3g}%"


def decision_sentence(stop: Mapping[str, Any], threshold: float | None, confidence: float = CONFIDENCE) -> str:
    """The cell's conclusion in words, from its ``run_cells`` row (``stopped``, ``stop_n``, ``decision``...)."""
    n = int(stop.get("stop_n") or 0)
    battles = f"{n:,} decided battle{'s' if n != 1 else ''}"
    level = f"{confidence:.0%} confidence, valid under continuous monitoring"
    decision = stop.get("decision")
    if decision in ("below", "above") and threshold is not None:
        return f"the adversary's success rate is {decision} {percent(threshold)} ({level}) after {battles}."
    low, high = stop.get("cs_low"), stop.get("cs_high")
    interval = (
        f"between {percent(low)} and {percent(high)}" if low is not None and high is not None else "not yet bounded"
    )
    ended = {
        "halfwidth": "the interval reached the asked-for width",
        "threshold": "the threshold was cleared",
        "cap": "the cell ran to --runs without settling",
        "budget": "the budget ran out first",
        "time": "the time ran out first",
        "cancelled": "the run was cancelled first",
    }.get(str(stop.get("stopped")), "it has not stopped yet")
    undecided = " Whether it is below or above the threshold is not settled." if threshold is not None else ""
    return f"the adversary's success rate is {interval} ({level}) after {battles}: {ended}.{undecided}"


@dataclass(frozen=True, slots=True)
class Savings:
    """What the rule saved against running every cell to ``--runs``: battles, and dollars estimated."""

    planned: int  # cells × runs per cell
    ran: int  # battles that were not cancelled before they ran
    saved: int
    saved_usd: float | None  # None when no battle ran (nothing to price the others by)
    basis: str


def savings(cells: Sequence[Mapping[str, Any]], runs_per_cell: int) -> Savings:
    """Battles not run, and their cost at each cell's mean cost per battle that did run.

    A battle cancelled because its cell stopped never started, so it cost nothing; what it would
    have cost is estimated from the battles of the same cell that ran.
    """
    planned = ran = saved = 0
    usd = 0.0
    priced = True
    for row in cells:
        battles, cancelled = int(row.get("battles") or 0), int(row.get("cancelled") or 0)
        cell_ran = battles - cancelled
        cell_saved = max(0, runs_per_cell - cell_ran) if row.get("stopped") in EARLY else 0
        planned, ran, saved = planned + runs_per_cell, ran + cell_ran, saved + cell_saved
        if cell_saved:
            if cell_ran:
                usd += float(row.get("cost_usd") or 0.0) / cell_ran * cell_saved
            else:
                priced = False
    basis = (
        f"{saved:,} of {planned:,} planned battles were not run ({ran:,} ran); the dollars are each cell's mean cost "
        "per battle that ran, times the battles it did not run"
    )
    return Savings(planned, ran, saved, usd if priced else None, basis)
