"""The Rogan–Gladen correction is computed in Python (``sparring.judging.stats``, the source:
the report, the CLI and the pages use it) and again in the ``run_cells_corrected`` view for
notebooks. On a real labelled run, the view must give the Python numbers, cell by cell."""

from __future__ import annotations

import pytest

from jobs import embedded, runs
from sparring import judging, sim, stats
from sparring.runtime import get_runtime
from tests.helpers import rows, wait_until

CELLS_SQL = """
SELECT cell_key, judge_id, n, achieved, rate, ci_low, ci_high, corrected_rate, corrected_low, corrected_high,
       correction_note
FROM run_cells_corrected WHERE run_id = ?
"""


def _truth(battle_id: str) -> bool:
    transcript = get_runtime().store.load_transcript(battle_id)
    assert transcript is not None
    return any(sim.CONCESSION in m.content for m in transcript.messages if m.role == "assistant")


def test_the_corrected_cells_view_gives_the_python_correction_on_a_labelled_run() -> None:
    store = get_runtime().store
    embedded.start(threads=4)
    run_id = runs.submit_run(
        {
            "runs": 30,
            "agents": [{"model": "sim/agent?concede=0.1"}, {"model": "sim/agent?concede=0.3"}],
            "judge_model": "sim/judge?fpr=0.1&fnr=0.25",
            "max_messages": 8,
            "seed": 3,
        }
    )
    wait_until(
        lambda: rows("SELECT status FROM scale_runs WHERE run_id = ?", [run_id])[0][0] in ("finished", "stopped"),
        240,
        message="the run",
    )
    for battle in judging.sample_battles(store, run_id, per_verdict=12, seed=2):
        value = "achieved" if _truth(battle.battle_id) else "not_achieved"
        judging.save_label({"battle_id": battle.battle_id, "labeller": "sim", "label": value}, store=store, sink=store)

    report = judging.judge_report(store, run_id)
    view = {(row[0], row[1]): row[2:] for row in rows(CELLS_SQL, [run_id])}
    assert len(view) == len(report.cells) == 2
    for cell in report.cells:
        n, achieved, rate, ci_low, ci_high, corrected, low, high, note = view[cell.cell_key, cell.judge_id]
        assert (n, achieved) == (cell.n, cell.achieved)
        assert (rate, ci_low, ci_high) == pytest.approx((cell.raw.estimate, cell.raw.low, cell.raw.high), abs=1e-9)
        assert isinstance(cell.corrected, stats.CorrectedRate), cell.corrected
        assert note is None
        expected = (cell.corrected.estimate, cell.corrected.low, cell.corrected.high)
        assert (corrected, low, high) == pytest.approx(expected, abs=1e-9)
