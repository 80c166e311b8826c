"""A battle's fields are declared once (sparring/battle_fields.py, sparring/store/battle_table.py)."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sparring import records as r
from sparring.battle_fields import AGENT_FIELDS, BATTLE_FIELDS
from sparring.cli import BATTLE_OPTIONS, build_parser
from sparring.scale import AgentInput, validate_scale
from sparring.store import Store
from sparring.store.battle_table import BATTLES, BattleTable, Column
from sparring.store.db import writing
from sparring.validation import BattleInput, InvalidInput, validate_battle

# -- adding a field through the declaration alone ----------------------------------------------
# The records a new field would get (in the code base: one field on AgentSpec); the store's
# code is not touched, only handed a declaration with one column more.


@dataclass(frozen=True)
class LabelledAgent(r.AgentSpec):
    label: str | None = None


@dataclass(frozen=True)
class LabelledSpec(r.BattleSpec):
    agent: LabelledAgent


@dataclass(frozen=True)
class LabelledView(r.BattleView):
    spec: LabelledSpec


def test_a_new_battle_column_travels_through_the_declaration_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.migrate()
    table = BattleTable((*BATTLES.columns, Column("agent_label", "spec.agent.label")), view=LabelledView)
    spec = LabelledSpec(
        agent=LabelledAgent(model="sim/agent", system_prompt="Be careful.", temperature=0.5, label="blue team"),
        adversary=r.AdversarySpec(model="sim/adversary", goal="a refund", strategy="direct", persona="a pirate"),
        judge=r.JudgeSpec(model="sim/judge", rubric="strict"),
        max_messages=6,
        time_limit_s=30.0,
        seed=7,
    )
    created = r.BattleCreated(battle_id=r.new_id(), spec=spec, run_id="run1", cell_key="k", cell_index=2, replicate=3)
    with writing(store.path) as con:
        con.execute("ALTER TABLE battles ADD COLUMN agent_label TEXT")  # what its migration would do
        con.execute(table.insert_sql, table.insert_params(created))
        row = con.execute(
            f"SELECT {table.select_list} FROM battles WHERE battle_id = ?", [created.battle_id]
        ).fetchone()
        stored = con.execute("SELECT agent_label FROM battles WHERE battle_id = ?", [created.battle_id]).fetchone()
    assert stored == ("blue team",)
    assert row is not None
    view = table.from_row(row)
    assert isinstance(view, LabelledView)
    assert view.spec == spec
    assert view.spec.agent.label == "blue team"
    assert (view.battle_id, view.run_id, view.cell_key, view.status) == (created.battle_id, "run1", "k", "queued")
    assert view.created_at == created.created_at


def test_the_store_writes_and_reads_every_declared_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARRING_TEST_FIELDS_KEY", "not-a-real-key")
    store = Store(tmp_path / "s.duckdb")
    store.migrate()
    battle = validate_battle(
        {
            "agent_profile": "prof",
            "api_base": "http://localhost:9",
            "api_key_env": "SPARRING_TEST_FIELDS_KEY",
            "persona": "a pirate",
        }
        | {"rubric": "strict", "temperature": 0.3, "seed": 11, "time_limit_s": 60, "max_messages": 8}
    )
    created = r.BattleCreated(battle_id=r.new_id(), spec=battle.to_spec())
    store.write([created])
    view = store.get_battle(created.battle_id)
    assert view is not None
    assert view.spec == created.spec
    for field in BATTLE_FIELDS:
        assert operator.attrgetter(field.path)(view.spec) == getattr(battle, field.name), field.name


# -- the declaration agrees with what it is derived for ----------------------------------------


def test_the_declaration_names_every_battle_input_field_in_order() -> None:
    assert [field.name for field in BATTLE_FIELDS] == list(BattleInput.model_fields)


def test_every_declared_column_is_in_the_migrated_table(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.migrate()
    with writing(store.path) as con:
        rows = con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'battles'").fetchall()
    columns = {row[0] for row in rows}
    assert {column.name for column in BATTLES.columns} <= columns


def test_every_battle_field_has_its_cli_option() -> None:
    argv = ["battle"] + [part for field in BATTLE_FIELDS for part in (field.flag, "1")]
    args = build_parser().parse_args(argv)
    for field in BATTLE_FIELDS:
        given = field.cli_type("1")
        assert getattr(args, field.dest) == ([given] if field.many else given), field.flag
    assert BATTLE_OPTIONS["time_limit"] == "time_limit_s"  # --time-limit: the public name, not the field's


# -- a scale test's agent: the battle's agent fields, with their validators --------------------


def test_a_scale_agent_has_the_battle_agent_fields() -> None:
    assert list(AgentInput.model_fields) == list(AGENT_FIELDS)
    for name, battle_name in AGENT_FIELDS.items():
        assert AgentInput.model_fields[name].default == BattleInput.model_fields[battle_name].default


@pytest.mark.parametrize(
    ("field", "value"),
    [("api_base", "ftp://models.example"), ("api_base", "localhost:11434"), ("api_key_env", "my key")],
)
def test_a_bad_scale_agent_is_refused_with_the_battle_message(field: str, value: str) -> None:
    with pytest.raises(InvalidInput) as battle_error:
        validate_battle({field: value})
    with pytest.raises(InvalidInput) as scale_error:
        validate_scale({"agents": [{field: value}]})
    assert scale_error.value.errors["agents"] == battle_error.value.errors[field]
