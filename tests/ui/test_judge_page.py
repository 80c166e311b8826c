"""The Check the judge page, driven with AppTest: label battles blind, then see the judge."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from sparring.runtime import get_runtime
from tests.helpers import scalar, wait_until
from tests.judging.builders import Planned, write_run
from tests.ui.apptest import ROOT

HOSTILE = "Please ![pixel](https://evil.example/x.png) <b>now</b>"

# The app's navigation plus this page (streamlit_app.py is not ours to change): a script
# beside a link to the real ui folder, so that page paths resolve as in the app.
NAVIGATION = """
import streamlit as st

st.navigation(
    [
        st.Page("ui/judge.py", title="Check the judge", url_path="judge", default=True),
        st.Page("ui/battle.py", title="Battle", url_path="battle"),
        st.Page("ui/hub.py", title="Hub", url_path="hub"),
    ]
).run()
"""


def open_judge_page(folder: Path, run_id: str) -> AppTest:
    app = folder / "app"
    app.mkdir()
    (app / "ui").symlink_to(ROOT / "ui")
    (app / "app.py").write_text(NAVIGATION)
    at = AppTest.from_file(str(app / "app.py"), default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    return at


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_label_blind_then_see_the_judge_and_rejudge(tmp_path: Path) -> None:
    plan = [Planned(0, True, True)] * 4 + [Planned(0, True, False)] * 2 + [Planned(0, False, False)] * 6
    run_id, _ = write_run(get_runtime().store, plan, adversary=HOSTILE)
    at = open_judge_page(tmp_path, run_id)
    assert at.title[0].value == "Check the judge"
    at.text_input(key="judge_labeller").set_value("Alice").run()
    assert not at.exception, at.exception

    # The transcript shows, inert; the judge's verdict does not, yet.
    text = markdown(at)
    assert "![pixel](" not in text and "<b>" not in text
    assert "\\!\\[pixel\\]" in text
    assert "You said" not in text and " said achieved" not in text and " said not achieved" not in text

    at.radio(key="judge_choice").set_value("achieved")
    at.text_area(key="judge_note").set_value("gave in at once")
    at.button(key="judge_save").click().run()
    assert not at.exception, at.exception
    assert scalar("SELECT count(*) FROM judge_labels WHERE labeller = 'Alice'") == 1
    revealed = markdown(at)
    assert "You said:** goal achieved" in revealed and "gave in at once" in revealed
    assert "said achieved at agent turn 1" in revealed or "said not achieved" in revealed

    at.button(key="judge_next").click().run()
    at.radio(key="judge_choice").set_value("not_achieved")
    at.button(key="judge_save").click().run()
    assert not at.exception, at.exception
    assert scalar("SELECT count(DISTINCT battle_id) FROM judge_labels WHERE labeller = 'Alice'") == 2
    assert "on 2 labelled battles" in markdown(at)
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")

    # Re-judge: no worker runs in this test, so the page offers to judge here.
    at.text_input(key="judge_new_model").set_value("sim/judge")
    at.button(key="judge_rejudge").click().run()
    assert not at.exception, at.exception
    at.button(key="judge_here").click().run()
    assert not at.exception, at.exception
    wait_until(
        lambda: scalar("SELECT status FROM judge_runs WHERE run_id = ?", [run_id]) == "finished",
        60,
        message="the re-judge started from the page",
    )
    at.run()
    assert not at.exception, at.exception
    judges = [line for line in markdown(at).splitlines() if "battles judged" in line]
    assert len(judges) == 2 and all("finished · 12 of 12 battles judged" in line for line in judges)


def test_without_a_finished_run_the_page_says_what_to_do(tmp_path: Path) -> None:
    get_runtime().store.migrate()
    app = tmp_path / "app"
    app.mkdir()
    (app / "ui").symlink_to(ROOT / "ui")
    (app / "app.py").write_text(NAVIGATION)
    at = AppTest.from_file(str(app / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert "No finished scale test yet" in at.info[0].value


def test_a_waiting_rejudge_can_be_cancelled_from_the_page(tmp_path: Path) -> None:
    from jobs import judging as judging_jobs

    run_id, _ = write_run(get_runtime().store, [Planned(0, False, False)] * 3)
    judge_run_id = judging_jobs.submit_rejudge({"run_id": run_id, "judge_model": "sim/judge"}, require_worker=False)
    at = open_judge_page(tmp_path, run_id)
    assert any(judge_run_id[:8] in line and "queued" in line for line in markdown(at).splitlines())
    at.button(key=f"judge_cancel_{judge_run_id}").click().run()
    assert not at.exception, at.exception
    assert scalar("SELECT status FROM judge_runs WHERE judge_run_id = ?", [judge_run_id]) == "cancelled"
    at.run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.key == f"judge_cancel_{judge_run_id}"]
    assert any("cancelled · 0 of 3 battles judged" in line for line in markdown(at).splitlines())


def test_a_rejudge_whose_worker_died_says_so(tmp_path: Path) -> None:
    from sparring import judging
    from sparring import records as r

    store = get_runtime().store
    run_id, _ = write_run(store, [Planned(0, False, False)] * 2)
    record = judging.plan_rejudge(store, {"run_id": run_id, "judge_model": "sim/judge"})
    store.write([record, r.JudgeRunStatusChanged(record.judge_run_id, "running")])  # and no job holds it
    at = open_judge_page(tmp_path, run_id)
    line = next(line for line in markdown(at).splitlines() if record.judge_run_id[:8] in line)
    assert "stalled: its worker stopped" in line


def test_the_labellers_name_stays_for_the_session(tmp_path: Path) -> None:
    # Streamlit forgets a field's value after a run that did not draw it: here the Battle page,
    # as after "Open on the Battle page" and back. The name must not have to be typed again.
    run_id, _ = write_run(get_runtime().store, [Planned(0, True, True)] * 2 + [Planned(0, False, False)] * 2)
    at = open_judge_page(tmp_path, run_id)
    at.text_input(key="judge_labeller").set_value("Alice").run()
    at.radio(key="judge_choice").set_value("achieved")
    at.button(key="judge_save").click().run()
    at.button(key="judge_next").click().run()
    assert not at.exception, at.exception
    assert at.text_input(key="judge_labeller").value == "Alice"

    at.switch_page("ui/battle.py").run()
    assert not at.exception, at.exception
    at.query_params["run"] = run_id
    at.switch_page("ui/judge.py").run()
    assert not at.exception, at.exception
    assert at.text_input(key="judge_labeller").value == "Alice"
    assert [bar.text for bar in at.progress] == ["You have labelled 1 of 4 sampled battles."]
