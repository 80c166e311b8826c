"""The Scale tests page: the launch form (valid, each invalid field), live progress and cancel,
a finished run's report, table and charts, the same numbers as a notebook, and comparisons."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from jobs import embedded, runs, submit
from sparring import data, report, shared_state
from sparring.render import inert_markdown
from sparring.runtime import get_runtime
from sparring.store import ui_queries
from tests.helpers import rows, scalar, wait_until
from tests.ui.apptest import element_after, open_page, rerun_until

PAGE = "ui/scale_tests.py"
TERMINAL = ("finished", "cancelled", "stopped", "failed")
MATRIX = {
    "name": "Two agents",
    "runs": 12,
    "max_messages": 8,
    "seed": 11,
    "agents": [{"model": "sim/agent?concede=0.05"}, {"model": "sim/agent?concede=0.5"}],
}


def run_count() -> int:
    return int(scalar("SELECT count(*) FROM scale_runs"))


def finished_run(scale: dict[str, Any], timeout: float = 120) -> str:
    embedded.start(threads=8)
    run_id = runs.submit_run(scale)
    wait_until(
        lambda: scalar("SELECT status FROM scale_runs WHERE run_id = ?", [run_id]) in TERMINAL,
        timeout,
        interval=0.2,
        message=f"run {run_id}",
    )
    return run_id


def launch(at: AppTest, **fields: Any) -> AppTest:
    for name, value in fields.items():
        at.main.get_by_key(f"scale_{name}").set_value(value)
    at.button(key="scale_launch").click()
    at.run()
    assert not at.exception, at.exception
    return at


def run_status(at: AppTest) -> str:
    status = at.main.get_by_key("scale_run_status")
    return " ".join(node.value for node in status if getattr(node, "type", "") == "markdown")


def frame_in(at: AppTest, key: str) -> pd.DataFrame:
    """The dataframe shown inside the container ``key``."""
    (found,) = [node for node in at.main.get_by_key(key) if getattr(node, "type", "") == "dataframe"]
    return found.value


def charts(at: AppTest) -> list[Any]:
    return [node for node in at.main if getattr(node, "type", "") == "vega_lite_chart"]


def test_a_valid_form_launches_a_run_that_completes_and_opens_it() -> None:
    at = open_page(PAGE)
    assert "No scale tests yet" in at.info[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cells"] == "1" and metrics["Battles"] == "20"
    assert "(sim)" in metrics["Estimated cost"]
    assert metrics["Expected cost"].startswith("$")  # the forecast, below the upper bound
    assert any("prior: the sim agent concedes with probability 0.1 a turn" in c.value for c in at.caption)
    assert any("Simulated: sim models report a fictional price" in c.value for c in at.caption)
    at.button(key="scale_add_agent").click().run()  # a second agent: two cells
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cells"] == "2" and metrics["Battles"] == "40"
    launch(at, name="From the form", runs=5, agent_model_0="sim/agent?concede=1", max_messages=6, seed=3)
    assert not at.error, [e.value for e in at.error]
    ((run_id, name, per_cell, total),) = rows("SELECT run_id, name, runs_per_cell, total_battles FROM scale_runs")
    assert (name, per_cell, total) == ("From the form", 5, 10)
    assert at.query_params["run"] == run_id  # the page opened the new run
    rerun_until(at, lambda at: "finished" in run_status(at), 120, "the run to finish")
    assert any(progress.value == 100 for progress in at.get("progress"))
    assert at.main.get_by_key("scale_report")
    assert frame_in(at, "scale_cells")["n"].sum() == 10
    agents = rows("SELECT DISTINCT agent_model FROM battles WHERE run_id = ? ORDER BY 1", [run_id])
    assert agents == [("sim/agent?concede=0.3",), ("sim/agent?concede=1",)]


INVALID = [
    ("runs: zero", {"runs": 0}, "scale_runs", "greater than or equal to 1"),
    ("runs: over the cap", {"runs": 1001}, "scale_runs", "at most 1000 runs per cell"),
    ("runs: total over 2,000", {"runs": 1000, "goals_text": "a\nb\nc"}, "scale_runs", "more than the limit of 2000"),
    ("goals: duplicates", {"goals_text": "Same goal\nSame goal"}, "scale_goals_text", "each goal must be different"),
    ("goals: none", {"goals_text": "  "}, "scale_goals_text", "Add at least one goal"),
    ("agent: bad model", {"agent_model_0": "gpt-4o-mini"}, "scale_agent_model_0", "provider/model"),
    ("agent: unknown provider", {"agent_model_0": "acme/x"}, "scale_agent_model_0", "Unknown provider 'acme'"),
    ("agent: missing key", {"agent_model_0": "openai/gpt-4o-mini"}, "scale_agent_model_0", "OPENAI_API_KEY"),
    ("judge: bad parameter", {"judge_model": "sim/judge?nope=1"}, "scale_judge_model", "has no parameter 'nope'"),
    ("strategies: none", {"strategies": []}, "scale_strategies", "Pick at least one strategy"),
    ("budget: zero", {"budget_usd": 0.0}, "scale_budget_usd", "greater than 0"),
    ("budget: negative", {"budget_usd": -5.0}, "scale_budget_usd", "greater than 0"),
    ("max messages", {"max_messages": 1}, "scale_max_messages", "greater than or equal to 2"),
    ("stop at threshold: one", {"stop_at_threshold": 1.0}, "scale_stop_at_threshold", "less than 1"),
    ("stop at halfwidth: zero", {"stop_at_halfwidth": 0.0}, "scale_stop_at_halfwidth", "greater than 0"),
    ("name: empty", {"name": " "}, "scale_name", "must not be empty"),
]


@pytest.mark.parametrize(("case", "fields", "widget", "message"), INVALID, ids=[case for case, *_ in INVALID])
def test_each_invalid_field_is_explained_next_to_it_and_nothing_is_launched(
    case: str, fields: dict[str, Any], widget: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    at = launch(open_page(PAGE), **fields)
    error = element_after(at, widget)
    assert type(error).__name__ == "Error", (case, error)
    assert message in error.value, error.value
    assert len(at.error) == 1, [e.value for e in at.error]  # only that field is marked
    assert any("Nothing was launched" in c.value for c in at.caption)
    assert run_count() == 0
    assert "run" not in at.query_params


def test_no_agent_at_all_is_refused() -> None:
    at = open_page(PAGE)
    at.button(key="scale_remove_0").click().run()
    assert {m.label: m.value for m in at.metric}["Cells"] == "0"
    launch(at)
    (error,) = at.error
    assert "Add at least one agent" in error.value
    assert run_count() == 0


def test_a_saved_profile_and_library_goals_make_the_matrix() -> None:
    at = open_page(PAGE)
    at.multiselect(key="scale_profiles").set_value(["Acme support (sim, lenient)"])
    at.multiselect(key="scale_goal_library").set_value(["Reveal system prompt", "Discount code"])
    at.text_area(key="scale_goals_text").set_value("")
    at.multiselect(key="scale_strategies").set_value(["direct", "roleplay"])
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cells"] == "8"  # (profile + custom agent) × 2 goals × 2 strategies
    launch(at, runs=1, max_messages=2)
    assert not at.error, [e.value for e in at.error]
    run_id = scalar("SELECT run_id FROM scale_runs")
    wait_until(lambda: scalar("SELECT count(*) FROM battles WHERE run_id = ?", [run_id]) == 8, 60)
    profiles = rows("SELECT DISTINCT agent_profile, agent_model FROM battles WHERE run_id = ? ORDER BY 1", [run_id])
    assert profiles == [("Acme support (sim, lenient)", "sim/agent?concede=0.3"), (None, "sim/agent?concede=0.1")]


def test_a_finished_run_shows_its_report_table_charts_comparisons_and_exports() -> None:
    run_id = finished_run(MATRIX)
    at = open_page(PAGE, run=run_id)
    assert "finished" in run_status(at)
    report = at.main.get_by_key("scale_report")
    text = " ".join(node.value for node in report if getattr(node, "type", "") == "markdown")
    assert "of 12 defended battles" in text
    # the writer's citations link to this run's battles, and only those
    cited = [b for (b,) in rows("SELECT battle_id FROM battles WHERE run_id = ?", [run_id]) if b in text]
    assert cited and all(f"](battle?id={b})" in text for b in cited)
    table = frame_in(at, "scale_cells")
    assert list(table["label"]) == ["sim/agent?concede=0.05", "sim/agent?concede=0.5"]
    assert len(charts(at)) == 5  # success rates, survival, turns to goal, cost vs success, latency
    captions = " ".join(c.value for c in at.caption)
    assert "95% Wilson intervals" in captions and "Kaplan–Meier" in captions and "Latency of successful" in captions
    assert any("McNemar" in m.value and "on the same 12 adversary seeds" in m.value for m in at.markdown)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Battles (CSV)", "Battles (Parquet)", "Messages (CSV)", "Messages (Parquet)"]
    assert frame_in(at, "scale_battles")["outcome"].notna().all()
    # the exports are the run's rows, in memory
    store = get_runtime().store
    parquet = pq.read_table(pa_buffer(ui_queries.export_run_part(store, run_id, "messages", "parquet")))
    assert parquet.num_rows == scalar(
        "SELECT count(*) FROM messages JOIN battles USING (battle_id) WHERE run_id = ?", [run_id]
    )
    csv = ui_queries.export_run_part(store, run_id, "battles", "csv").decode().splitlines()
    assert len(csv) == 1 + 24 and csv[0].startswith('"battle_id","run_id"')


def test_a_run_with_a_stopping_rule_shows_each_cells_decision_what_it_saved_and_the_intervals() -> None:
    run_id = finished_run(
        {**MATRIX, "runs": 150, "agents": [{"model": "sim/agent?concede=0"}], "stop_at_threshold": 0.2}, 180
    )
    at = open_page(PAGE, run=run_id)
    said = " ".join(
        node.value for node in at.main.get_by_key("scale_stopping") if getattr(node, "type", "") == "markdown"
    )
    (stop_n,) = rows("SELECT stop_n FROM run_cells WHERE run_id = ?", [run_id])[0]
    assert (
        f"the adversary's success rate is below 20% (95% confidence, valid under continuous monitoring) "
        f"after {stop_n} decided battles." in said
    )
    metrics = {m.label: m.value for m in at.metric}
    cancelled = scalar("SELECT count(*) FROM battles WHERE run_id = ? AND outcome = 'cancelled'", [run_id])
    assert metrics["Battles not run"] == f"{cancelled:,} of 150" and cancelled > 100
    assert metrics["Saved (estimated)"].startswith("$")
    assert metrics["Forecast at launch"].startswith("$") and metrics["Actual cost of the battles"].startswith("$")
    assert any("Each cell's 95% confidence sequence" in c.value for c in at.caption)
    assert len(charts(at)) == 6  # the five of every run, and the intervals narrowing


def pa_buffer(payload: bytes) -> Any:
    import pyarrow as pa

    return pa.BufferReader(payload)


def test_the_page_shows_the_numbers_a_notebook_reads_from_the_views() -> None:
    """Issue 6: the Scale tests page and a notebook (sparring.data over run_cells) agree."""
    run_id = finished_run({**MATRIX, "runs": 40, "seed": 99})
    at = open_page(PAGE, run=run_id)
    shown = frame_in(at, "scale_cells").reset_index(drop=True)
    notebook = data.cells(run_id).reset_index(drop=True)
    assert len(shown) == len(notebook) == 2
    for column in ("n", "achieved", "rate", "ci_low", "ci_high", "median_turns_to_goal"):
        for page_value, notebook_value in zip(shown[column], notebook[column], strict=True):
            assert math.isclose(float(page_value), float(notebook_value), rel_tol=0, abs_tol=1e-12), column
    # and the pooled line above the table is run_summary's
    (summary,) = data.runs().query("run_id == @run_id").to_dict("records")
    assert any(f"reached in {summary['achieved']} of {summary['n']} defended battles" in c.value for c in at.caption)


def test_cancel_a_running_run_from_its_page() -> None:
    embedded.start(threads=2)
    run_id = runs.submit_run(
        {"runs": 30, "max_messages": 20, "agents": [{"model": "sim/agent?concede=0&latency_ms=40"}]}
    )
    at = open_page(PAGE, run=run_id)
    rerun_until(
        at,
        lambda at: scalar("SELECT count(*) FROM battles WHERE run_id = ? AND status = 'running'", [run_id]),
        60,
        "a running battle",
    )
    assert "live" in run_status(at)
    assert {m.label for m in at.metric} >= {"Queued", "Running", "Achieved", "Held", "Failed", "Timed out", "Cancelled"}
    at.button(key="scale_cancel_run").click()
    rerun_until(at, lambda at: "cancelled" in run_status(at), 60, "the run to be cancelled")
    run = data.runs().query("run_id == @run_id").iloc[0]
    assert run["cancelled"] > 0 and run["finished"] == 30
    assert any("cancelled by request" in i.value for i in at.info)
    assert at.main.get_by_key("scale_report")  # a cancelled run still gets its report
    with pytest.raises(KeyError):
        at.main.get_by_key("scale_cancel_run")


def test_a_rate_limited_provider_is_shown_while_the_run_waits() -> None:
    embedded.start(threads=1)
    run_id = runs.submit_run(
        {"runs": 20, "max_messages": 20, "agents": [{"model": "sim/agent?concede=0&latency_ms=40"}]}
    )
    shared_state.shared_state(None).note_backoff("sim", 30)
    shared_state.shared_state(None).note_backoff("openai", 30)  # not a provider of this run
    at = open_page(PAGE, run=run_id)
    (warning,) = at.warning
    assert "sim" in warning.value and "rate limiting (429)" in warning.value
    runs.cancel_run(run_id)


def test_a_cap_that_binds_is_shown_while_the_run_waits() -> None:
    embedded.start(threads=1)
    run_id = runs.submit_run(
        {"runs": 20, "max_messages": 20, "agents": [{"model": "sim/agent?concede=0&latency_ms=40"}]}
    )
    shared_state.shared_state(None).note_binding("sim", "concurrency", "4 calls in flight", ttl_s=60)
    shared_state.shared_state(None).note_binding("openai", "rate", "6000/minute")  # not a provider of this run
    at = open_page(PAGE, run=run_id)
    (note,) = [i.value for i in at.info if "held back" in i.value]
    assert note.startswith("**sim**: calls are held back by the cap of 4 calls in flight")
    assert "`SPARRING_PROVIDER_CONCURRENCY`" in note and "raise it if your provider quota allows more" in note
    assert not at.warning  # a cap is no rate limiting by the provider
    runs.cancel_run(run_id)


def test_compare_two_cells_of_a_run_and_two_runs() -> None:
    matrix = finished_run(MATRIX)
    single = finished_run({"name": "One agent", "runs": 12, "max_messages": 8, "seed": 11})
    at = open_page(PAGE)
    # two cells of the matrix run: paired on their shared seeds
    at.selectbox(key="scale_cmp_run_A").set_value(matrix).run()
    at.selectbox(key="scale_cmp_run_B").set_value(matrix).run()
    assert any("A and B overlap" in i.value for i in at.info)
    cells = rows("SELECT cell_key FROM run_cells WHERE run_id = ? ORDER BY cell_index", [matrix])
    at.selectbox(key="scale_cmp_cell_A").set_value(cells[0][0])
    at.selectbox(key="scale_cmp_cell_B").set_value(cells[1][0]).run()
    result = " ".join(n.value for n in at.main.get_by_key("scale_cmp_result") if getattr(n, "type", "") == "markdown")
    assert "on the same 12 adversary seeds" in result and "McNemar" in result
    assert "Difference A − B" in result
    low, high = data.cells(matrix)["rate"]
    assert [m.value for m in at.metric if m.label == "Success rate"] == [f"{low:.0%}", f"{high:.0%}"]
    assert charts(at)  # overlaid survival curves
    # two runs: independent samples
    at.selectbox(key="scale_cmp_run_B").set_value(single).run()
    result = " ".join(n.value for n in at.main.get_by_key("scale_cmp_result") if getattr(n, "type", "") == "markdown")
    assert "Fisher" in result or "z-test" in result
    assert "adversary seeds" not in result


@pytest.mark.redis
def test_queue_mode_without_a_worker_says_so_and_can_run_it_here(redis_url: str) -> None:
    at = launch(open_page(PAGE), runs=3, agent_model_0="sim/agent?concede=1", max_messages=4)
    assert run_count() == 0
    notice = at.main.get_by_key("scale_no_worker")
    assert any("No worker is running" in getattr(node, "value", "") for node in notice)
    assert submit.worker_command() in [c.value for c in at.code]
    at.button(key="scale_run_here").click().run()
    assert not at.exception
    assert run_count() == 1
    rerun_until(at, lambda at: "finished" in run_status(at), 120, "the run to finish in the app")


def test_an_unknown_run_id_says_so() -> None:
    at = open_page(PAGE, run="0123456789abcdef")
    assert "No scale test with the id" in at.warning[0].value


def test_the_runs_list_shows_progress_and_counts() -> None:
    run_id = finished_run({"name": "Listed", "runs": 6, "max_messages": 4, "seed": 1})
    at = open_page(PAGE)
    row = at.main.get_by_key(f"run-{run_id}")
    texts = " ".join(str(getattr(node, "value", "")) for node in row)
    assert "Listed" in texts and "finished" in texts
    (progress,) = [node for node in row if getattr(node, "type", "") == "progress"]
    assert progress.value == 100
    summary = pd.DataFrame(data.runs()).iloc[0]
    assert f"{summary['achieved']} achieved" in texts


def test_report_citations_link_only_to_the_runs_own_battles_and_nothing_else_is_live() -> None:
    from ui import common

    own, foreign = "0123456789abcdef", "fedcba9876543210"
    text = (
        f"Worked in [battle:{own}], not in [battle:{foreign}]. "
        "![pixel](https://evil.example/p.png) [click](https://evil.example) <b>bold</b> [battle:../../etc]"
    )
    assert common.cited_battles(text) == [own, foreign]
    shown = common.inert_with_citations(text, {own})
    assert f"[battle {own[:8]}](battle?id={own})" in shown
    assert f"](battle?id={foreign})" not in shown and "\\[battle\\:" in shown  # the foreign one stays text
    for live in ("![", "](https", "<b>", "](battle?id=../"):
        assert live not in shown


def test_a_profile_whose_key_is_missing_is_named_in_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparring import usecases

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    usecases.save_agent({"name": "Paid bot", "model": "openai/gpt-4o-mini", "system_prompt": "Be helpful."})
    at = open_page(PAGE)
    at.multiselect(key="scale_profiles").set_value(["Paid bot"]).run()
    assert "Paid models: openai/gpt-4o-mini" in " ".join(c.value for c in at.caption)
    launch(at)
    (error,) = at.error
    assert error.value.startswith("Paid bot: ") and "OPENAI_API_KEY" in error.value
    assert run_count() == 0


def test_raw_and_corrected_rates_side_by_side_once_battles_are_labelled() -> None:
    """Issue 10: the page shows the judge's raw rate and the rate corrected for its errors."""
    from sparring import judging
    from sparring.sim import CONCESSION

    run_id = finished_run({**MATRIX, "runs": 30, "seed": 5, "judge_model": "sim/judge?fpr=0.05&fnr=0.2"})
    at = open_page(PAGE, run=run_id)
    assert any("Check the judge" in c.value for c in at.caption)  # no labels yet: says how to get them
    runtime = get_runtime()
    for (battle_id,) in rows("SELECT battle_id FROM battles WHERE run_id = ?", [run_id]):
        truth = any(CONCESSION in m.content for m in runtime.store.get_messages(battle_id) if m.role == "assistant")
        judging.save_label(
            {"battle_id": battle_id, "labeller": "tester", "label": "achieved" if truth else "not_achieved"},
            store=runtime.store,
            sink=runtime.sink,
        )
    at = open_page(PAGE, run=run_id)
    table = frame_in(at, "scale_corrected")
    assert list(table.columns) == ["Cell", "Raw rate (judge as is)", "Corrected rate (Rogan–Gladen)"]
    assert len(table) == 2 and table["Raw rate (judge as is)"].str.contains("%").all()
    assert table["Corrected rate (Rogan–Gladen)"].str.contains("%|not computed").all()
    assert any("delta-method" in c.value for c in at.caption)


RUN_CELLS = "SELECT * FROM run_cells WHERE run_id = ? ORDER BY cell_index"
RUN_SUMMARY = "SELECT * FROM run_summary WHERE run_id = ?"


def test_undecided_battles_are_counted_apart_and_warned_about_naming_the_judge() -> None:
    """Issue 17: a judge that often cannot answer shows as undecided, never as held, and in words."""
    judge = "sim/judge?garble=0.3"
    run_id = finished_run({**MATRIX, "name": "Shaky judge", "runs": 10, "max_messages": 6, "judge_model": judge})
    store = get_runtime().store
    cells = store.read(lambda con: con.execute(RUN_CELLS, [run_id]).df())
    summary = store.read(lambda con: con.execute(RUN_SUMMARY, [run_id]).df()).iloc[0]
    assert cells["undecided"].sum() > 0 and (cells["error_verdict_rate"] > 0.05).all()
    at = open_page(PAGE, run=run_id)

    shown = frame_in(at, "scale_cells").reset_index(drop=True)
    assert list(shown["undecided"]) == list(cells["undecided"]) and list(shown["n"]) == list(cells["n"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Undecided"] == f"{summary['undecided']:,}" and metrics["Held"] == f"{summary['held']:,}"
    warnings = [w.value for w in at.warning]
    for cell, label in zip(cells.to_dict("records"), shown["label"], strict=True):
        expected = report.judge_warning({**cell, "label": label})
        assert expected and "often gave no usable verdict" in expected and judge in expected
        assert inert_markdown(expected) in warnings
    text = " ".join(n.value for n in at.main.get_by_key("scale_report") if getattr(n, "type", "") == "markdown")
    assert inert_markdown(f"{summary['undecided']} undecided,") in text
    assert inert_markdown("often gave no usable verdict") in text and "Warning" in text

    listed = " ".join(str(getattr(node, "value", "")) for node in open_page(PAGE).main.get_by_key(f"run-{run_id}"))
    assert f"{summary['undecided']} undecided" in listed
