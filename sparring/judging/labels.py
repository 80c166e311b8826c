"""Runs to label, the verdict-stratified sample, and people's labels.

- **Sampling.** ``sample_battles`` draws, per verdict of the run's original judge, a seeded
  sample (default 20 "achieved" and 20 "not achieved"), so a rare verdict still gets
  labels. The order is fixed by the seed and the battle's place in the run, so growing the
  sample keeps the battles already drawn, and the two verdicts are interleaved so that the
  order does not give the verdict away.
- **Labels.** ``save_label`` records one person's verdict (achieved / not achieved / unsure
  and a note). Labels are never overwritten: the latest per labeller counts, and a
  battle's truth is the majority of its labellers' definite labels (views
  ``latest_labels`` and ``battle_truth``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sparring import records as r
from sparring.store import RecordSink, Store
from sparring.store import judging as rows
from sparring.store.judging import FINISHED_RUN_STATUSES as FINISHED_RUN_STATUSES
from sparring.store.judging import LabelRow as LabelRow
from sparring.store.judging import RunInfo as RunInfo
from sparring.validation import InvalidInput, Text, Text2000, field_errors

DEFAULT_PER_VERDICT = 20
MAX_PER_VERDICT = 1000


class UnknownRunError(LookupError):
    pass


class RunNotFinishedError(ValueError):
    pass


class LabelInput(BaseModel):
    """One label as a person gives it (page or script)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    battle_id: Annotated[Text, Field(min_length=1, max_length=64)]
    labeller: Annotated[Text, Field(min_length=1, max_length=100)]
    label: Literal["achieved", "not_achieved", "unsure"]
    note: Text2000 = None


class SampleInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    per_verdict: Annotated[int, Field(ge=1, le=MAX_PER_VERDICT)] = DEFAULT_PER_VERDICT
    seed: Annotated[int, Field(ge=0, le=2**62)] = 0


def validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None


# --- runs ------------------------------------------------------------------------------------


def list_runs(store: Store, *, finished_only: bool = True) -> list[RunInfo]:
    """Scale tests, newest first; by default only finished ones with defended battles."""
    runs = store.read(rows.runs)
    return [run for run in runs if run.finished and run.defended] if finished_only else runs


def get_run(store: Store, run_id: str) -> RunInfo:
    found = store.read(lambda con: rows.runs(con, run_id))
    if not found:
        raise UnknownRunError(f"unknown run id {run_id!r}")
    return found[0]


def finished_run(store: Store, run_id: str) -> RunInfo:
    """The run, if it has finished (a run still running would change under the labels)."""
    run = get_run(store, run_id)
    if not run.finished:
        raise RunNotFinishedError(f"run {run_id} is {run.status}; wait until it has finished")
    return run


# --- sampling --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampledBattle:
    battle_id: str
    cell_key: str | None
    original_achieved: bool  # the stratum: what the run's original judge said


def _draw_key(seed: int, purpose: str, cell_index: Any, replicate: Any, battle_id: str) -> bytes:
    # The battle's place in the run, not its id, so that a rerun of the same configuration
    # draws the same sample.
    place = f"{cell_index}:{replicate}" if cell_index is not None and replicate is not None else battle_id
    return hashlib.blake2b(f"{purpose}:{seed}:{place}".encode(), digest_size=8).digest()


def sample_battles(
    store: Store, run_id: str, per_verdict: int = DEFAULT_PER_VERDICT, seed: int = 0
) -> list[SampledBattle]:
    """Up to ``per_verdict`` battles of each original verdict, in a seeded, interleaved order."""
    checked: SampleInput = validated(SampleInput, {"per_verdict": per_verdict, "seed": seed})
    defended = store.read(lambda con: rows.defended_battles(con, run_id))
    chosen: list[tuple[bytes, SampledBattle]] = []
    for verdict in (True, False):
        stratum = [b for b in defended if bool(b.original_achieved) is verdict]
        stratum.sort(key=lambda b: _draw_key(checked.seed, "draw", b.cell_index, b.replicate, b.battle_id))
        for b in stratum[: checked.per_verdict]:
            order = _draw_key(checked.seed, "order", b.cell_index, b.replicate, b.battle_id)
            chosen.append((order, SampledBattle(b.battle_id, b.cell_key, verdict)))
    return [battle for _, battle in sorted(chosen, key=lambda item: item[0])]


# --- labels ----------------------------------------------------------------------------------


def save_label(data: dict[str, Any], *, store: Store, sink: RecordSink) -> r.LabelSaved:
    """Validate and record one label; a later label by the same person supersedes it."""
    label: LabelInput = validated(LabelInput, data)
    battle = store.read(lambda con: rows.battle_state(con, label.battle_id))
    if battle is None:
        raise InvalidInput({"battle_id": f"no battle with id {label.battle_id}"})
    if battle.status != "finished":
        raise InvalidInput({"battle_id": "this battle has not finished yet; label it once it has"})
    record = r.LabelSaved(label.battle_id, label.labeller, label.label, label.note)
    sink.write([record])
    return record


def latest_labels(store: Store, run_id: str, labeller: str | None = None) -> dict[str, list[LabelRow]]:
    """Each battle's latest label per labeller (only ``labeller``'s when given)."""
    result: dict[str, list[LabelRow]] = defaultdict(list)
    for row in store.read(lambda con: rows.latest_labels(con, run_id, labeller)):
        result[row.battle_id].append(row)
    return dict(result)


def label_history(store: Store, battle_id: str) -> list[LabelRow]:
    return store.read(lambda con: rows.label_history(con, battle_id))
