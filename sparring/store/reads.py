"""Read models: what the pages, the CLI, the report writer, the workers and notebooks read.

Each function takes a ``Store`` and returns typed records or DataFrames, so no caller
outside ``sparring/store/`` holds a query or a connection. The statements live in the
store: a run's and the pages' in ``ui_queries``, a battle's in ``queries``, the health
and recovery sets here. Each function is one short read (one attachment), so the reads of
one screen refresh share it and release the file right after.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sparring.store import Store, ui_queries
from sparring.store.db import Connection
from sparring.store.ui_queries import (
    BattleUpdate,
    Browse,
    BrowseFilters,
    HubRows,
    RunDetail,
    RunFacts,
    RunOutcomes,
    RunProgress,
    RunRow,
    SampleLine,
    SchemaObject,
)

if TYPE_CHECKING:
    import pandas as pd  # loaded by DuckDB's ``.df()`` when a read returns a frame

# -- a run -------------------------------------------------------------------------------------------


def run_rows(store: Store, limit: int = 50) -> list[RunRow]:
    """The latest scale tests, newest first."""
    return store.read(lambda con: ui_queries.run_rows(con, limit))


def run_config(store: Store, run_id: str) -> dict[str, object]:
    return store.read(lambda con: ui_queries.run_config(con, run_id))


def run_progress(store: Store, run_id: str, in_hand: Sequence[str] = ()) -> RunProgress | None:
    return store.read(lambda con: ui_queries.run_progress(con, run_id, in_hand))


def run_status(store: Store, run_id: str) -> tuple[str, int] | None:
    """(status, finished battles) of a run, or None if it is not recorded yet."""
    return store.read(lambda con: ui_queries.run_status(con, run_id))


def run_detail(store: Store, run_id: str) -> RunDetail | None:
    """Everything the run page shows, in one read."""
    return store.read(lambda con: ui_queries.run_detail(con, run_id))


def run_facts(store: Store, run_id: str) -> RunFacts:
    """What the report writer and the CLI compute a run's statistics from; LookupError if unknown."""
    facts = store.read(lambda con: ui_queries.run_facts(con, run_id))
    if facts is None:
        raise LookupError(f"unknown run id {run_id!r}")
    return facts


def report_samples(store: Store, run_id: str) -> list[SampleLine]:
    return store.read(lambda con: ui_queries.report_samples(con, run_id))


def report_summary(store: Store, run_id: str) -> str | None:
    """The written report of a run, or None before it is written."""
    return store.read(lambda con: ui_queries.report_summary(con, run_id))


def judge_call_count(store: Store, run_id: str, model: str) -> int:
    return store.read(lambda con: ui_queries.judge_call_count(con, run_id, model))


def run_battles_among(store: Store, run_id: str, battle_ids: Sequence[str]) -> set[str]:
    return store.read(lambda con: ui_queries.run_battles_among(con, run_id, battle_ids))


def corrected_cells(store: Store, run_id: str) -> pd.DataFrame:
    return store.read(lambda con: ui_queries.corrected_cells(con, run_id))


def cells_by_judge(store: Store, run_id: str) -> list[dict[str, object]]:
    """``run_cells_by_judge`` rows of the run: each cell's rate under each judge."""
    return store.read(lambda con: ui_queries.cells_by_judge(con, run_id))


def forecast_inputs(
    store: Store, agents: Sequence[tuple[str, str, str]], models: Sequence[str]
) -> tuple[dict[tuple[str, str, str], list[tuple[int, bool]]], dict[tuple[str, str, int], tuple[float, float, int]]]:
    """What a cost forecast learns from: earlier battles of each (agent model, prompt, goal), earlier calls' tokens."""
    return store.read(
        lambda con: (ui_queries.forecast_history(con, agents), ui_queries.forecast_call_tokens(con, models))
    )


def run_outcomes_pair(store: Store, run_a: str, run_b: str) -> tuple[RunOutcomes | None, RunOutcomes | None]:
    """Both sides of a comparison, read together so that they are of the same instant."""
    return store.read(lambda con: (ui_queries.run_outcomes(con, run_a), ui_queries.run_outcomes(con, run_b)))


# -- battles -----------------------------------------------------------------------------------------


def hub_rows(store: Store, session_ids: Sequence[str], limit: int) -> HubRows:
    return store.read(lambda con: ui_queries.hub_rows(con, session_ids, limit))


def battle_update(store: Store, battle_id: str, after_seq: int = 0, after_verdict_seq: int = 0) -> BattleUpdate:
    return store.read(lambda con: ui_queries.battle_update(con, battle_id, after_seq, after_verdict_seq))


def agent_profiles(store: Store) -> list[dict[str, object]]:
    return store.read(ui_queries.agent_profiles)


# -- the Data page -----------------------------------------------------------------------------------


def schema_objects(store: Store) -> dict[str, SchemaObject]:
    return store.read(ui_queries.schema_objects)


def filter_options(store: Store, name: str, obj: SchemaObject) -> tuple[list[RunRow], list[str]]:
    """The runs and the models a table's filters offer (none where it has no such column)."""

    def both(con: Connection) -> tuple[list[RunRow], list[str]]:
        found_runs = ui_queries.run_rows(con, 200) if "run_id" in obj.columns else []
        models = ui_queries.distinct_values(con, name, obj.model_column) if obj.model_column else []
        return found_runs, models

    return store.read(both)


def browse(store: Store, name: str, filters: BrowseFilters, limit: int = 500) -> Browse:
    return store.read(lambda con: ui_queries.browse(con, name, filters, limit))


# The health and recovery sets are in ``upkeep``: workers read them without pandas.


# -- access: the audit trail and what was spent ----------------------------------------------------

AUDIT_SQL = """
SELECT occurred_at, actor, role, action, target, outcome, detail
FROM audit ORDER BY occurred_at DESC, audit_id LIMIT ?
"""


def audit_rows(store: Store, limit: int = 500) -> list[dict[str, object]]:
    """The newest entries of the audit trail, newest first."""

    def query(con: Connection) -> list[dict[str, object]]:
        cursor = con.execute(AUDIT_SQL, [limit])
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return store.read(query)
