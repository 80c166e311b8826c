"""Issue 17 on the pages: intervals inside [0, 1] read one way, cells named apart, who succeeded, plurals.

Real sim scale runs, read through the views by the pages (AppTest), the notebook helpers and
``run_stats``. 0 of 4 and 4 of 4 are the counts where the views' Wilson bounds carry float
dust (-5.7e-17, 1.0000000000000002) that read "-0%".
"""

from __future__ import annotations

from typing import Any

from sparring import data
from sparring.report import run_stats
from sparring.runtime import get_runtime
from sparring.store import ui_queries
from tests.helpers import rows, scalar
from tests.ui.apptest import open_page
from tests.ui.test_scale_page import MATRIX, finished_run

PAGE = "ui/scale_tests.py"


def small(name: str, concede: float) -> dict[str, Any]:
    return {
        "name": name,
        "runs": 4,
        "max_messages": 2,
        "seed": 3,
        "agents": [{"model": f"sim/agent?concede={concede}"}],
    }


def texts(nodes: Any) -> str:
    return " ".join(str(getattr(node, "value", "")) for node in nodes)


def dataframe_in(at: Any, key: str) -> Any:
    (found,) = [node for node in at.main.get_by_key(key) if getattr(node, "type", "") == "dataframe"]
    return found


def inside(*values: Any) -> bool:
    return all(0.0 <= float(value) <= 1.0 for value in values)


def test_interval_bounds_read_inside_zero_and_one_everywhere() -> None:
    never = finished_run(small("Never concedes", 0.0))
    always = finished_run(small("Always concedes", 1.0))
    assert scalar("SELECT achieved FROM run_cells WHERE run_id = ?", [never]) == 0
    assert scalar("SELECT achieved FROM run_cells WHERE run_id = ?", [always]) == 4
    store = get_runtime().store
    for run_id in (never, always):
        row = store.read(lambda con, run_id=run_id: ui_queries.run_row(con, run_id))
        assert row is not None and inside(row.ci_low, row.ci_high)
        detail = store.read(lambda con, run_id=run_id: ui_queries.run_detail(con, run_id))
        assert detail is not None and inside(*detail.cells["ci_low"], *detail.cells["ci_high"])
        computed = run_stats(store, run_id)
        assert inside(computed["run"]["ci_low"], computed["run"]["ci_high"])
        assert all(inside(cell["ci_low"], cell["ci_high"]) for cell in computed["cells"])
        assert inside(*data.cells(run_id)["ci_low"], *data.cells(run_id)["ci_high"])
    assert inside(*data.runs()["ci_low"], *data.runs()["ci_high"])
    # the runs list, the run page, the report: one format, never "-0%"
    listing = open_page(PAGE)
    line = texts(listing.main.get_by_key(f"run-{never}"))
    assert "success rate 0% (95% CI 0%–49%)" in line, line
    assert "success rate 100% (95% CI 51%–100%)" in texts(listing.main.get_by_key(f"run-{always}"))
    page = open_page(PAGE, run=never)
    captions = " ".join(c.value for c in page.caption)
    assert "0 of 4 defended battles, 0% (95% CI 0%–49%)" in captions
    assert "1 cell × 4 runs" in captions  # not "1 cells"
    assert page.main.get_by_key("scale_report")
    report = scalar("SELECT summary FROM run_reports WHERE run_id = ?", [never])
    assert "(0%, 95% CI 0%–49%)" in report
    for text in (line, captions, report):
        assert "-0%" not in text


def test_the_per_cell_table_fits_and_shows_one_precision() -> None:
    run_id = finished_run({**MATRIX, "runs": 13, "seed": 5})
    at = open_page(PAGE, run=run_id)
    table = dataframe_in(at, "scale_cells")
    shown = list(table.proto.column_order)
    assert len(shown) <= 10, shown  # the old 13 needed horizontal scrolling at a normal width
    assert "ci_low" not in shown and "ci_high" not in shown and "p90_turns_to_goal" not in shown
    frame = table.value
    # whole percents everywhere: 38% next to 48%, not 38.46% next to 48%
    assert '"format": "%.0f%%"' in table.proto.columns
    assert all(float(value).is_integer() for value in frame["rate_pct"])
    for low, high, text in zip(frame["ci_low"], frame["ci_high"], frame["ci"], strict=True):
        assert text == f"{low:.0%}–{high:.0%}"
    assert list(frame["cell"]) == ["A · concede=0.05", "B · concede=0.5"]


def test_cells_are_named_apart_in_the_charts_and_the_legend_and_comparisons_name_the_adversary() -> None:
    run_id = finished_run(MATRIX)
    at = open_page(PAGE, run=run_id)
    legend = dataframe_in(at, "scale_cell_legend").value
    assert list(legend["Cell"]) == ["A · concede=0.05", "B · concede=0.5"]
    assert list(legend["Agent"]) == ["sim/agent?concede=0.05", "sim/agent?concede=0.5"]
    drawn = [node for node in at.main if getattr(node, "type", "") == "vega_lite_chart"]
    rates = next(chart for chart in drawn if "Success rate per cell" in chart.proto.spec)
    shown = rates.proto.SerializeToString()  # the chart's rows travel as Arrow bytes
    assert "A · concede=0.05".encode() in shown and "B · concede=0.5".encode() in shown
    latency = next(chart for chart in drawn if "Model call latency" in chart.proto.spec)
    assert "agent · concede=0.05".encode() in latency.proto.SerializeToString() and "symlog" in latency.proto.spec
    statements = [m.value for m in at.markdown if "adversary seeds" in m.value]
    assert statements and all("The adversary reached the goal" in s and "succeeded" not in s for s in statements)
    (comparison,) = run_stats(get_runtime().store, run_id)["comparisons"]
    assert "often against sim/agent?concede=0.05 than against sim/agent?concede=0.5" in comparison["statement"]
    # Compare, two cells of the run: A and B, and who reached the goal
    compare = open_page(PAGE)
    compare.selectbox(key="scale_cmp_run_A").set_value(run_id).run()
    compare.selectbox(key="scale_cmp_run_B").set_value(run_id).run()
    cells = rows("SELECT cell_key FROM run_cells WHERE run_id = ? ORDER BY cell_index", [run_id])
    compare.selectbox(key="scale_cmp_cell_A").set_value(cells[0][0])
    compare.selectbox(key="scale_cmp_cell_B").set_value(cells[1][0]).run()
    result = texts(compare.main.get_by_key("scale_cmp_result"))
    assert "The adversary reached the goal less often against A than against B" in result, result


def test_one_row_is_one_row() -> None:
    at = open_page("ui/data.py")
    at.text_area(key="data_sql").set_value("SELECT 1 AS one")
    at.button(key="data_run_sql").click()
    at.run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any(c.startswith("**1 row**") for c in captions), captions
