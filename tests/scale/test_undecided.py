"""Undecided battles in the store: migration, the views, the statistics, the report and `scale --json`.

A battle without a usable verdict on its last agent message is ``undecided``: it stays out of
every rate and is counted apart, and the report warns when a cell has too many of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs import embedded, runs
from sparring import records as r
from sparring import report, runtime, stats
from sparring.store import Store, db, schema
from sparring.store.export import export_database, export_run, import_database
from tests.helpers import rows, run_cli, scalar, wait_until

TERMINAL = ("finished", "cancelled", "stopped", "failed")
SPEC = r.BattleSpec(
    agent=r.AgentSpec("sim/agent", "be helpful"),
    adversary=r.AdversarySpec("sim/adversary", "get a refund"),
    judge=r.JudgeSpec("sim/judge"),
    max_messages=6,
)


# -- migration ------------------------------------------------------------------------------------


def version_3_store(path: Path) -> Store:
    """A store as schema version 3 left it: the first three migrations, applied the real way."""
    for migration in schema.MIGRATIONS[:3]:
        with db.writing(path) as con:
            schema.applied_versions(con)
            migration.apply(con)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [migration.version, migration.name]
            )
    with db.writing(path) as con:
        # Today's code writes the old battles below, with the judge prompt version of migration 6 and
        # the conversation columns of migration 7: give the file those columns (both add them only
        # where they are missing).
        con.execute(schema.M006_JUDGE_PROMPT_VERSION)
        con.execute(schema.VERDICT_COUNT_COLUMNS)  # and the verdict counters of migration 7
        con.execute(schema.M008_COLUMNS)  # the strategies' columns of migration 8
        con.execute(schema.M009_SUCCESS_CHECK_COLUMNS)  # the success checks of migration 9
        con.execute(schema.M011_ACCESS)  # the attribution of migration 11
        con.execute(schema.M012_AGENT_KINDS)  # and the kinds of agent of migration 12
    return Store(path)


def battle(battle_id: str, verdicts: list[bool | None], outcome: r.Outcome, messages: int = 0, **finish: str) -> list:
    """Records of a finished battle: agent messages judged in order (None: an error verdict)."""
    records: list[r.Record] = [r.BattleCreated(battle_id, SPEC), r.BattleStarted(battle_id)]
    for seq in range(1, max(messages, 2 * len(verdicts)) + 1):
        role: r.Role = "user" if seq % 2 else "assistant"
        records.append(r.MessageAdded(r.Message(battle_id, seq, role, f"message {seq}", "sim/x")))
    for turn, achieved in enumerate(verdicts, start=1):
        error = "no JSON object in the judge's answer" if achieved is None else None
        records.append(r.VerdictAdded(r.Verdict(battle_id, 2 * turn, achieved, None, "", "sim/judge", error=error)))
    turns = len(verdicts) if outcome == "achieved" else None
    records.append(r.BattleFinished(battle_id, outcome, turns_to_goal=turns, **finish))  # type: ignore[arg-type]
    return records


def test_migration_4_reclassifies_what_older_versions_called_held_or_failed(tmp_path: Path) -> None:
    store = version_3_store(tmp_path / "old.duckdb")
    store.write(
        [
            *battle("held_ok", [False, False, False], "held"),
            *battle("held_odd_cap", [False, False], "held", messages=5),  # ends on an adversary message
            *battle("held_err_last", [False, False, None], "held"),
            *battle("held_err_first", [None, False, False], "held"),
            *battle("held_unjudged", [False, False], "held", messages=6),  # no verdict on message 6
            *battle("achieved", [None, True], "achieved"),
            *battle("judge_failed", [False], "failed", messages=4, error="judge model down", error_kind="judge"),
            *battle("agent_failed", [False], "failed", messages=3, error="agent model down", error_kind="provider"),
        ]
    )
    assert store.read(lambda con: con.execute("SELECT max(version) FROM schema_migrations").fetchone()) == (3,)

    assert store.migrate() == schema.SCHEMA_VERSION >= 4
    outcomes = dict(store.read(lambda con: con.execute("SELECT battle_id, outcome FROM battles").fetchall()))
    assert outcomes == {
        "held_ok": "held",
        "held_odd_cap": "held",
        "held_err_last": "undecided",
        "held_err_first": "held",
        "held_unjudged": "undecided",
        "achieved": "achieved",
        "judge_failed": "undecided",
        "agent_failed": "failed",
    }
    errors = dict(store.read(lambda con: con.execute("SELECT battle_id, error FROM battles").fetchall()))
    assert errors["judge_failed"] == "judge model down"  # the reason is kept
    assert "no usable verdict" in errors["held_err_last"]
    assert store.migrate() == schema.SCHEMA_VERSION  # and running again changes nothing


def test_an_export_from_before_version_4_is_reclassified_when_imported(tmp_path: Path) -> None:
    old = version_3_store(tmp_path / "old.duckdb")
    old.write([*battle("held_err_last", [False, None], "held"), *battle("held_ok", [False, False], "held")])
    export_database(old, tmp_path / "backup")  # what a version-3 Sparring wrote, but for its manifest:
    manifest = tmp_path / "backup" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "schema_version": 3}))

    store = runtime.get_runtime().store
    import_database(store, tmp_path / "backup")
    outcomes = dict(store.read(lambda con: con.execute("SELECT battle_id, outcome FROM battles").fetchall()))
    assert outcomes == {"held_err_last": "undecided", "held_ok": "held"}


# -- the views, against the raw tables and the Python statistics -------------------------------------


def finished_run(data: dict) -> str:
    embedded.start(threads=4)
    run_id = runs.submit_run(data)
    wait_until(
        lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL, 240, message="run"
    )
    embedded.stop()
    return run_id


def test_views_leave_undecided_out_of_every_rate_and_count_it_apart(tmp_path: Path) -> None:
    run_id = finished_run(
        {
            "runs": 16,
            "max_messages": 6,
            "seed": 41,
            "judge_model": "sim/judge?garble=0.5",
            "agents": [{"model": "sim/agent?concede=0"}, {"model": "sim/agent?concede=0.3"}],
        }
    )
    raw = rows("SELECT cell_key, outcome, count(*) FROM battles WHERE run_id = ? GROUP BY ALL ORDER BY ALL", [run_id])
    counts: dict[str, dict[str, int]] = {}
    for cell_key, outcome, count in raw:
        counts.setdefault(cell_key, {})[outcome] = count
    assert sum(c.get("undecided", 0) for c in counts.values()) > 0  # the judge garbled some last verdicts
    errors = dict(
        rows(
            "SELECT b.cell_key, count(*) FROM verdicts v JOIN battles b USING (battle_id) "
            "WHERE b.run_id = ? AND v.achieved IS NULL GROUP BY ALL",
            [run_id],
        )
    )
    computed = report.run_stats(runtime.get_runtime().store, run_id)
    for cell in computed["cells"]:
        mine = counts[cell["cell_key"]]
        assert cell["undecided"] == mine.get("undecided", 0)
        assert cell["n"] == mine.get("achieved", 0) + mine.get("held", 0)  # undecided is not in n
        assert (
            cell["finished"] == cell["n"] + cell["undecided"] + cell["failed"] + cell["timed_out"] + cell["cancelled"]
        )
        interval = stats.wilson_interval(cell["achieved"], cell["n"])  # Python agrees with the view
        assert cell["rate"] == pytest.approx(interval.estimate)
        assert cell["ci_low"] == pytest.approx(interval.low, abs=1e-9)
        assert cell["ci_high"] == pytest.approx(interval.high, abs=1e-9)
        assert cell["error_verdicts"] == errors.get(cell["cell_key"], 0)
        assert cell["error_verdict_rate"] == pytest.approx(cell["error_verdicts"] / cell["verdicts"])
        assert cell["undecided_rate"] == pytest.approx(cell["undecided"] / cell["finished"])
    run = computed["run"]
    assert run["undecided"] == sum(c["undecided"] for c in computed["cells"])
    assert run["n"] == sum(c["n"] for c in computed["cells"])
    # the exports carry the same counts: a column per battle, and the cells' counts
    exported = export_run(runtime.get_runtime().store, run_id, tmp_path, "parquet")
    tables = {path.stem.rsplit("-", 1)[-1]: pq.read_table(path) for path in exported.files}
    assert sum(tables["battles"].column("undecided").to_pylist()) == run["undecided"]
    assert tables["cells"].column("undecided").to_pylist() == [c["undecided"] for c in computed["cells"]]


def test_survival_censors_an_undecided_battle_at_its_last_usable_verdict() -> None:
    run_id = finished_run(
        {"runs": 16, "max_messages": 8, "seed": 7, "judge_model": "sim/judge?garble=0.4", "agents": [{}]}
    )
    battles = rows(
        "SELECT battle_id, outcome, turns_to_goal, agent_turns FROM battles WHERE run_id = ? AND status = 'finished'",
        [run_id],
    )
    usable = dict(
        rows(
            "SELECT battle_id, max(seq) // 2 FROM verdicts WHERE achieved IS NOT NULL AND battle_id IN "
            "(SELECT battle_id FROM battles WHERE run_id = ?) GROUP BY battle_id",
            [run_id],
        )
    )
    durations, events = [], []
    for battle_id, outcome, turns_to_goal, agent_turns in battles:
        if outcome == "achieved":
            durations.append(turns_to_goal)
        elif outcome == "undecided":
            durations.append(usable.get(battle_id, 0))  # known to hold only through its last usable verdict
        else:
            durations.append(agent_turns)
        events.append(outcome == "achieved")
    assert any(o == "undecided" for _, o, _, _ in battles)
    curve = stats.kaplan_meier(durations, events)
    view = rows(
        "SELECT turn, at_risk, events, censored, survival FROM run_survival WHERE run_id = ? ORDER BY turn", [run_id]
    )
    assert [(t, a, e, c) for t, a, e, c, _ in view] == list(
        zip(curve.turns, curve.at_risk, curve.events, curve.censored, strict=True)
    )
    assert [s for *_, s in view] == pytest.approx(list(curve.survival))


# -- the report's warning ----------------------------------------------------------------------------


def cell(**counts: object) -> dict[str, object]:
    base: dict[str, object] = {"label": "sim/agent · refund", "judge_model": "sim/judge?garble=0.2", "n": 19}
    return base | counts


def test_the_warning_names_the_judge_above_five_percent_only() -> None:
    assert report.judge_warning(cell(finished=20, undecided=1, verdicts=60, error_verdicts=3)) is None  # 5%: fine
    undecided = report.judge_warning(cell(finished=20, undecided=2, verdicts=60, error_verdicts=3))
    errors = report.judge_warning(cell(finished=20, undecided=0, verdicts=60, error_verdicts=4))
    assert undecided is not None and errors is not None
    assert "2 of 20 finished battles (10%) are undecided" in undecided
    assert "4 of 60 verdicts (7%) were errors" in errors
    assert "the judge sim/judge?garble=0.2 often gave no usable verdict" in undecided
    assert "its rate rests on the other 19" in undecided
    assert report.judge_warning(cell(finished=0, undecided=0, verdicts=0, error_verdicts=0)) is None


# -- the scenario, through the CLI ------------------------------------------------------------


def test_scale_json_counts_undecided_per_cell_and_never_reports_a_rate_of_zero() -> None:
    """A judge that never answers in its format, an agent that concedes at once: no rate, a warning."""
    done = run_cli(
        *("scale", "--runs", "30", "--max-messages", "12", "--seed", "5", "--agent-model", "sim/agent?concede=0.5"),
        *("--judge-model", "sim/judge?garble=1", "--skip-judge-check", "--json"),
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    (only,) = payload["cells"]
    assert only["undecided"] == 30 and only["n"] == 0 and only["held"] == 0
    assert only["rate"] is None and only["error_verdict_rate"] == 1.0
    (warning,) = payload["warnings"]
    assert "30 of 30 finished battles (100%) are undecided" in warning and "sim/judge?garble=1" in warning
    text = payload["report"]
    assert "goal reached in" not in text and not re.search(r"\b0 of 30\b", text) and "(0%" not in text
    assert "30 undecided" in text and "no defended battle finished" in text
    assert "Warning: " in text and "the judge sim/judge?garble=1 often gave no usable verdict" in text
