"""Check the judge: label a sample of a finished scale test, measure the judge, correct its rates.

``?run=<run id>`` opens a run. The judge's verdict on a battle stays hidden until you have
labelled it, so that it cannot sway you. Everything a model or a person wrote is shown
through ``sparring.render.inert_markdown`` (``common.inert``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from sparring import charts, formatting, judging, stats, usecases
from sparring.records import Transcript
from sparring.runtime import get_runtime
from sparring.store import Store, StoreBusy, StoreMissing
from sparring.validation import DEFAULT_JUDGE_MODEL, InvalidInput
from ui import common, session

log = logging.getLogger(__name__)

T = TypeVar("T")

LABELS = {"achieved": "Goal achieved", "not_achieved": "Not achieved", "unsure": "Unsure"}
RAW = charts.RAW_KIND
CORRECTED = charts.CORRECTED_KIND
NOTICE = "judge_notice"  # the last re-judge request's outcome
LABELLER = "judge_labeller"  # the name field
KEPT_LABELLER = "judge_labeller_kept"  # the name, kept while the field is not drawn


def load(read: Callable[[Store], T]) -> T | None:
    """``read(store)``; on a locked or missing database, say so and return None."""
    try:
        return read(get_runtime().store)
    except StoreBusy as error:
        st.warning(f"{error} Try again in a moment.", icon=":material/hourglass_top:")
    except StoreMissing:
        log.info("No database yet; nothing to show")
    return None


percent = formatting.format_estimate
kappa_text = formatting.format_kappa


def said(achieved: bool | None) -> str:
    return "achieved" if achieved else "not achieved"


# -- choosing a run --------------------------------------------------------------------------------


def pick_run(runs: list[judging.RunInfo]) -> judging.RunInfo | None:
    by_id = {run.run_id: run for run in runs}
    wanted = str(st.query_params.get("run", ""))
    ids = list(by_id)
    index = ids.index(wanted) if wanted in by_id else 0
    run_id = st.selectbox(
        "Finished scale test",
        ids,
        index=index,
        key="judge_run",
        format_func=lambda i: f"{by_id[i].name} · {i[:8]} · {by_id[i].defended} battles judged",
    )
    if run_id and st.query_params.get("run") != run_id:
        st.query_params["run"] = run_id
    return by_id.get(run_id) if run_id else None


def sample_settings() -> tuple[int, int]:
    with st.expander("Sample", icon=":material/tune:"):
        st.caption(
            "Battles are drawn separately from each verdict of the run's judge, so that a rare verdict still gets "
            "checked; the rates below weight them back to the whole run. The same seed gives the same sample, and "
            "a bigger sample keeps the battles of a smaller one."
        )
        left, right = st.columns(2)
        per_verdict = left.number_input(
            "Battles per verdict", 1, judging.MAX_PER_VERDICT, judging.DEFAULT_PER_VERDICT, key="judge_per_verdict"
        )
        seed = right.number_input("Seed", 0, 2**31, 0, key="judge_seed")
    return int(per_verdict), int(seed)


# -- labelling ----------------------------------------------------------------------------------


def label_tab(run: judging.RunInfo, per_verdict: int, seed: int) -> None:
    # Signed in: the labeller is the person. Without sign-in everyone is "anonymous", so the
    # typed name keeps several people's labels apart.
    labeller = ask_name() if not session.signin_on() else session.actor().identity
    if not labeller:
        st.info("Enter your name to start labelling.", icon=":material/badge:")
        return
    sample = load(lambda store: judging.sample_battles(store, run.run_id, per_verdict, seed)) or []
    mine = load(lambda store: judging.latest_labels(store, run.run_id, labeller)) or {}
    if not sample:
        st.info("This run has no achieved or held battle to label.", icon=":material/info:")
        return
    done = sum(1 for battle in sample if battle.battle_id in mine)
    st.progress(done / len(sample), text=f"You have labelled {done} of {len(sample)} sampled battles.")
    current = choose_battle(run.run_id, sample, mine)
    show_battle(run.run_id, current, labeller, sample, mine)


def ask_name() -> str:
    """The labeller's name, kept for the whole session.

    Streamlit drops a widget's value after any run that did not draw it (another page, a run
    cut short by an error), so the name also lives under a key of our own and refills the field.
    """
    if LABELLER not in st.session_state:
        st.session_state[LABELLER] = st.session_state.get(KEPT_LABELLER, "")
    name = st.text_input(
        "Your name",
        key=LABELLER,
        max_chars=100,
        help="Labels are kept per person; several people can label the same battles.",
    )
    st.session_state[KEPT_LABELLER] = name
    return name.strip()


def shown_key(run_id: str) -> str:
    return f"judge_shown_{run_id}"


def choose_battle(
    run_id: str, sample: list[judging.SampledBattle], mine: dict[str, list[judging.LabelRow]]
) -> judging.SampledBattle:
    """The battle to label, chosen by its id.

    The selector's captions change once a battle is labelled, and Streamlit keeps a selectbox's
    value as the caption it showed: a caption that is gone comes back as that string instead of
    an option. So the battle shown is kept by id under a key of our own, written into the widget
    before every draw, and the widget only reports a new pick (``keep_pick``).
    """
    ids = [battle.battle_id for battle in sample]
    shown = shown_key(run_id)
    if st.session_state.get(shown) not in ids:
        st.session_state[shown] = next((b for b in ids if b not in mine), ids[0])
    position = {battle_id: i for i, battle_id in enumerate(ids)}

    def caption(battle_id: str) -> str:
        labelled = mine.get(battle_id)
        status = f"you said {LABELS[labelled[0].label].lower()}" if labelled else "not labelled yet"
        return f"#{position[battle_id] + 1} · battle {common.short_id(battle_id)} · {status}"

    picker = f"judge_pick_{run_id}"
    st.session_state[picker] = st.session_state[shown]
    st.selectbox("Battle", ids, format_func=caption, key=picker, on_change=keep_pick, args=(picker, shown, ids))
    return sample[position[st.session_state[shown]]]


def keep_pick(picker: str, shown: str, ids: list[str]) -> None:
    """A battle picked in the selector becomes the one shown (anything but a battle id is ignored)."""
    picked = st.session_state.get(picker)
    if picked in ids:
        st.session_state[shown] = picked


def next_unlabelled(shown: str, ids: list[str], labelled: set[str]) -> None:
    current = st.session_state.get(shown)
    start = ids.index(current) if current in ids else -1
    order = ids[start + 1 :] + ids[: start + 1]
    st.session_state[shown] = next((b for b in order if b not in labelled), current)


def show_battle(
    run_id: str,
    battle: judging.SampledBattle,
    labeller: str,
    sample: list[judging.SampledBattle],
    mine: dict[str, list[judging.LabelRow]],
) -> None:
    labels = mine.get(battle.battle_id)
    transcript = load(lambda store: store.load_transcript(battle.battle_id))
    if transcript is None:
        st.warning("This battle could not be read.", icon=":material/search_off:")
        return
    show_transcript(transcript)
    if labels:
        reveal(run_id, battle, labels[0])
    label_form(battle, labels[0] if labels else None, labeller)
    left, right = st.columns(2)
    if labels and len(mine) < len(sample):
        left.button(
            "Next unlabelled battle",
            key="judge_next",
            icon=":material/skip_next:",
            on_click=next_unlabelled,
            args=(shown_key(run_id), [b.battle_id for b in sample], set(mine)),
        )
    right.page_link(
        common.BATTLE_PAGE,
        label="Open on the Battle page",
        icon=":material/open_in_new:",
        query_params={"id": battle.battle_id},
    )


def show_transcript(transcript: Transcript) -> None:
    spec = transcript.battle.spec
    st.markdown(f"**Goal**  \n{common.inert(spec.adversary.goal)}")
    rubric = spec.judge.rubric
    if rubric:
        st.markdown(f"**Judge rubric**  \n{common.inert(rubric)}")
    with st.container(border=True, key="judge_transcript"):
        several = len({m.conversation for m in transcript.messages}) > 1
        for message in transcript.messages:
            if message.role == "note" or message.rolled_back:  # what the target saw is what is judged
                continue
            adversary = message.role == "user"
            with st.chat_message(
                "user" if adversary else "assistant", avatar=":material/swords:" if adversary else ":material/shield:"
            ):
                where = f" · conversation {message.conversation}" if several else ""
                st.caption(f"{'Adversary' if adversary else 'Agent'} · message {message.seq}{where}")
                st.markdown(common.inert(message.content))


def label_form(battle: judging.SampledBattle, previous: judging.LabelRow | None, labeller: str) -> None:
    title = "Change your label" if previous else "Your label"
    with st.form(key="judge_label_form", clear_on_submit=True, border=True):
        st.markdown(f"**{title}:** did the adversary reach its goal in this transcript?")
        choice = st.radio(
            "Label", list(LABELS), index=None, format_func=LABELS.__getitem__, horizontal=True, key="judge_choice"
        )
        note = st.text_area("Note (optional)", key="judge_note", max_chars=2000, height=68)
        if previous:
            st.caption("A changed label is kept in the history; your latest label counts.")
        submitted = st.form_submit_button("Save label", key="judge_save", icon=":material/check:")
    if not submitted:
        return
    if choice is None:
        st.error("Choose achieved, not achieved or unsure first.", icon=":material/error:")
        return
    data = {"battle_id": battle.battle_id, "labeller": labeller, "label": choice, "note": note or None}
    try:
        usecases.save_label(data, actor=session.actor())
    except InvalidInput as error:
        for name, message in error.errors.items():
            st.error(f"{name}: {common.inert(message)}", icon=":material/error:")
        return
    except usecases.AccessRefused as error:
        st.error(str(error), icon=":material/lock:")
        return
    st.rerun()


def reveal(run_id: str, battle: judging.SampledBattle, label: judging.LabelRow) -> None:
    """After labelling: what each judge said, next to what you said."""
    verdicts = load(lambda store: judging.battle_verdicts(store, battle.battle_id)) or []
    judges = {j.judge_id: j for j in load(lambda store: judging.list_judges(store, run_id)) or []}
    truth = label.label
    with st.container(border=True, key="judge_reveal"):
        note = f" — “{common.inert(label.note)}”" if label.note else ""
        st.markdown(f"**You said:** {LABELS[truth].lower()}{note}")
        for verdict in verdicts:
            judge = judges.get(verdict.judge_id)
            name = common.inert(judge.name if judge else verdict.judge_id)
            when = f" at agent turn {verdict.turn}" if verdict.turn else ""
            if truth == "unsure":
                mark = ""
            elif (truth == "achieved") == bool(verdict.achieved):
                mark = " :green-badge[:material/check: agrees with you]"
            else:
                mark = " :red-badge[:material/close: disagrees with you]"
            st.markdown(f"**{name}** said {said(verdict.achieved)}{when}.{mark}")
            if verdict.rationale:
                st.caption(common.inert(verdict.rationale))


# -- agreement ----------------------------------------------------------------------------------


def agreement_tab(report: judging.JudgeReport) -> None:
    if report.labelled == 0:
        st.info("No labelled battles yet: label some on the first tab.", icon=":material/label:")
        return
    ties = ""
    if report.ties:
        verb = "is" if report.ties == 1 else "are"
        ties = f" ({report.ties} more {verb} left out: the labellers disagree evenly)"
    st.caption(f"{report.labelled} battles have a definite label{ties}.")
    rows = [
        {
            "judge": q.judge.name,
            "labelled": q.agreement.n,
            "sensitivity": percent(q.agreement.sensitivity),
            "specificity": percent(q.agreement.specificity),
            "accuracy": percent(q.agreement.accuracy),
            "Cohen's kappa": kappa_text(q.agreement.kappa),
        }
        for q in report.judges
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="judge_agreement_table")
    st.caption(
        "Sensitivity: share of the battles where the goal was truly reached that the judge called achieved. "
        "Specificity: share of those where the agent truly held that it called not achieved. 95% intervals."
    )
    for each in report.judges:
        st.markdown(common.inert(each.statement))
    names = {q.judge.judge_id: q.judge.name for q in report.judges}
    judge_id = st.selectbox("Judge", list(names), format_func=names.__getitem__, key="judge_confusion_judge")
    quality = report.quality(judge_id)
    if quality is not None:
        st.altair_chart(
            charts.confusion_matrix(confusion_rows(quality.agreement)), key="judge_confusion", width="content"
        )
        st.caption(charts.CAPTIONS["confusion"])
        disagreements(quality)
    people(report)


def confusion_rows(agreement: stats.Agreement) -> list[dict[str, Any]]:
    return [
        {"judge_said": "achieved", "labels_say": "achieved", "battles": agreement.tp},
        {"judge_said": "achieved", "labels_say": "not achieved", "battles": agreement.fp},
        {"judge_said": "not achieved", "labels_say": "not achieved", "battles": agreement.tn},
        {"judge_said": "not achieved", "labels_say": "achieved", "battles": agreement.fn},
    ]


def disagreements(quality: judging.JudgeQuality) -> None:
    st.markdown(f"##### Where {common.inert(quality.judge.name)} and people disagree")
    if not quality.disagreements:
        st.caption("Nowhere among the labelled battles.")
        return
    for item in quality.disagreements:
        st.page_link(
            common.BATTLE_PAGE,
            label=f"Battle {common.short_id(item.battle_id)}: judge said {said(item.judge_said)}, "
            f"people said {said(item.labels_say)}",
            icon=":material/open_in_new:",
            query_params={"id": item.battle_id},
        )


def people(report: judging.JudgeReport) -> None:
    st.markdown("##### People against each other")
    if not report.humans:
        st.caption(
            "No battle has been labelled by two people yet. Ask a colleague to label the same sample (same seed) "
            "to see how much people themselves agree."
        )
    for pair in report.humans:
        st.markdown(common.inert(pair.statement))


# -- corrected rates ---------------------------------------------------------------------------


def corrected_tab(report: judging.JudgeReport) -> None:
    names = {q.judge.judge_id: q.judge.name for q in report.judges}
    judge_id = st.selectbox("Rates of", list(names), format_func=names.__getitem__, key="judge_rates_judge")
    cells = report.cells_for(judge_id)
    if not cells:
        st.info("This judge has not judged any battle yet.", icon=":material/hourglass_top:")
        return
    table, chart_rows = [], []
    for cell in cells:
        corrected = cell.corrected
        fixed = None if isinstance(corrected, stats.Undefined) else stats.Interval(*_bounds(corrected))
        table.append(
            {
                "cell": cell.label,
                "battles": cell.n,
                RAW: percent(cell.raw),
                CORRECTED: percent(fixed) if fixed else "not available",
            }
        )
        chart_rows.append({"cell": cell.label, "kind": RAW, **_interval_row(cell.raw)})
        if fixed:
            chart_rows.append({"cell": cell.label, "kind": CORRECTED, **_interval_row(fixed)})
    st.dataframe(pd.DataFrame(table), hide_index=True, key="judge_rates_table")
    st.altair_chart(charts.raw_vs_corrected(chart_rows), key="judge_rates_chart")
    st.caption(charts.CAPTIONS["corrected"])
    for cell in cells:
        st.markdown(common.inert(cell.statement))
    quality = report.quality(judge_id)
    labelled = quality.agreement.n if quality else 0
    st.caption(
        f"The corrected interval is wider than the raw one because it also carries the uncertainty of the judge's "
        f"error rates, measured on {labelled} labelled battles: label more to narrow it. A judge that wrongly calls "
        "a battle achieved also ends it early, so the agent never gets its remaining turns: the corrected rate is "
        "the share of transcripts that truly show the goal reached."
    )


def _bounds(value: stats.CorrectedRate) -> tuple[float, float, float]:
    return value.estimate, value.low, value.high


def _interval_row(interval: stats.Interval) -> dict[str, float]:
    return {"rate": interval.estimate, "low": interval.low, "high": interval.high}


# -- re-judging -------------------------------------------------------------------------------


def rejudge_tab(run: judging.RunInfo, report: judging.JudgeReport | None) -> None:
    st.caption(
        "Judge this run's transcripts again with another judge model or rubric. The battles are not re-run: only "
        "judge calls are made, and the original verdicts stay. Then compare the judges on the same transcripts."
    )
    with st.form(key="judge_rejudge_form", border=True):
        model = st.text_input("Judge model", value=DEFAULT_JUDGE_MODEL, key="judge_new_model")
        rubric = st.text_area(
            "Rubric (optional)", key="judge_new_rubric", help="What counts as achieving the goal.", height=80
        )
        submitted = st.form_submit_button("Re-judge this run", key="judge_rejudge", icon=":material/gavel:")
    if submitted:
        request_rejudge({"run_id": run.run_id, "judge_model": model, "rubric": rubric or None})
    show_notice()
    common.live(
        lambda: load(lambda store: judging.list_judges(store, run.run_id)) or [],
        lambda judges: any(j.status in ("queued", "running") for j in judges),
        show_judges,
    )
    if report is not None:
        compare_judges(report)


def compare_judges(report: judging.JudgeReport) -> None:
    """The judges side by side on the same transcripts."""
    if len(report.judges) < 2:
        return
    st.markdown("##### The judges on the same transcripts")
    names = {q.judge.judge_id: q.judge.name for q in report.judges}
    table: dict[str, dict[str, Any]] = {}
    for cell in report.cells:
        row = table.setdefault(cell.cell_key, {"cell": cell.label})
        row[names.get(cell.judge_id, cell.judge_id)] = f"{percent(cell.raw)} of {cell.n}"
    st.dataframe(pd.DataFrame(list(table.values())), hide_index=True, key="judge_compare_table")
    st.caption("Raw success rate per judge (95% Wilson interval) and the battles it judged.")
    for pair in report.judge_pairs:
        st.markdown(common.inert(pair.statement))


def request_rejudge(data: dict[str, Any]) -> None:
    try:
        judge_run_id = usecases.request_rejudge(data, actor=session.actor())
    except usecases.AccessRefused as error:
        st.session_state[NOTICE] = ("error", str(error), None)
    except InvalidInput as error:
        st.session_state[NOTICE] = ("error", "; ".join(f"{k}: {v}" for k, v in error.errors.items()), None)
    except usecases.NoWorkerError as error:
        st.session_state[NOTICE] = ("no_worker", str(error), data)
    except usecases.SubmitError as error:
        st.session_state[NOTICE] = ("error", str(error), None)
    else:
        st.session_state[NOTICE] = ("ok", f"Re-judge {judge_run_id[:8]} queued.", None)


def judge_here() -> None:
    kind, _, data = st.session_state.get(NOTICE, (None, None, None))
    if kind != "no_worker" or data is None:
        return
    try:
        judge_run_id = usecases.rejudge_in_background(data, actor=session.actor())
    except usecases.AccessRefused as error:
        st.session_state[NOTICE] = ("error", str(error), None)
        return
    except InvalidInput as error:
        st.session_state[NOTICE] = ("error", "; ".join(f"{k}: {v}" for k, v in error.errors.items()), None)
        return
    except usecases.SubmitError as error:
        st.session_state[NOTICE] = ("error", str(error), None)
        return
    st.session_state[NOTICE] = ("ok", f"Re-judge {judge_run_id[:8]} is running in this app.", None)


def show_notice() -> None:
    kind, text, _ = st.session_state.get(NOTICE, (None, None, None))
    if kind == "error":
        st.error(common.inert(text), icon=":material/error:")
    elif kind == "ok":
        st.success(common.inert(text), icon=":material/check:")
    elif kind == "no_worker":
        with st.container(border=True, key="judge_no_worker"):
            st.warning(common.inert(text), icon=":material/engineering:")
            st.button("Judge it here instead", key="judge_here", on_click=judge_here, icon=":material/play_arrow:")


def cancel_rejudge(judge_run_id: str) -> None:
    common.cancel_and_flash(
        f"Re-judge {common.short_id(judge_run_id)}",
        lambda: usecases.cancel_rejudge(judge_run_id, actor=session.actor()),
        usecases.UnknownJudgeRunError,
        note=" What it has judged is kept.",
    )


def show_judges(judges: list[judging.JudgeInfo]) -> None:
    st.markdown("##### Judges of this run")
    stalled = usecases.dispatcher().stalled_rejudges([j.judge_id for j in judges if j.status == "running"])
    for judge in judges:
        progress = f"{judge.judged} of {judge.battles} battles judged"
        status = (
            "stalled: its worker stopped; a live worker resumes it within a minute, or re-judge with the same judge"
            if judge.judge_id in stalled
            else judge.status
        )
        line = f"**{common.inert(judge.name)}** · {status} · {progress}"
        if judge.judge_id != judging.ORIGINAL and judge.status in ("queued", "running"):
            text, action = st.columns([5, 1], vertical_alignment="center")
            text.markdown(line)
            action.button(
                "Cancel",
                key=f"judge_cancel_{judge.judge_id}",
                on_click=cancel_rejudge,
                args=(judge.judge_id,),
                icon=":material/block:",
                help="No new judge call starts; what is judged is kept.",
            )
        else:
            st.markdown(line)
        if judge.error:
            st.caption(common.inert(judge.error))


# -- page ----------------------------------------------------------------------------------------


def render_run(run: judging.RunInfo) -> None:
    per_verdict, seed = sample_settings()
    report = load(lambda store: judging.judge_report(store, run.run_id))
    label, agreement, rates, rejudge = st.tabs(["Label", "Agreement", "Corrected rates", "Re-judge"])
    with label:
        label_tab(run, per_verdict, seed)
    with agreement:
        if report is not None:
            agreement_tab(report)
    with rates:
        if report is not None:
            corrected_tab(report)
    with rejudge:
        rejudge_tab(run, report)


st.title("Check the judge")
st.caption(
    "Every success rate rests on the judge. Label a sample of battles yourself (the judge's verdict stays hidden "
    "until you have), see how often the judge agrees with you, and read success rates corrected for its errors."
)
finished = load(judging.list_runs) or []
if not finished:
    st.info(
        "No finished scale test yet. Run one on the Scale tests page (or `python -m sparring scale`), then come back.",
        icon=":material/query_stats:",
    )
else:
    chosen = pick_run(finished)
    if chosen is not None:
        render_run(chosen)
