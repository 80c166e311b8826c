"""Scale tests: launch a matrix of battles × N, follow it live, read its statistics, compare.

``?run=<run id>`` opens a run (a link you can share). Every number shown comes from the
documented views (``run_summary``, ``run_cells``, ``run_survival``, ``model_calls``,
``battle_outcomes``) that the CLI and notebooks read; the page only lays them out.
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from sparring import forecast, usecases
from sparring.formatting import outcome_counts, plural
from sparring.plan import cost_estimate, limit_warning, plan_of
from sparring.runtime import get_runtime
from sparring.scale import DEFAULT_WRITER_MODEL, MAX_AXIS, ScaleInput, agent_errors, profile_agent, validate_scale
from sparring.settings import HARD_MAX_MESSAGES, get_settings
from sparring.store import reads
from sparring.store.ui_queries import RunRow
from sparring.strategies import DEFAULT_STRATEGY, STRATEGIES
from sparring.targets import config as targets
from sparring.validation import (
    DEFAULT_GOAL,
    DEFAULT_SYSTEM_PROMPT,
    InvalidInput,
    form_defaults,
)
from ui import common, forms, scale_compare, scale_run
from ui.state import ScaleState

log = logging.getLogger(__name__)

STATE = "scale_state"
RUNS_LISTED = 50

# Widget keys are "scale_<field>"; a validation error finds its widget by the same name.
FIELDS = (
    "name",
    "runs",
    "profiles",
    "goal_library",
    "goals_text",
    "strategies",
    "adversary_params",
    "adversary_model",
    "judge_model",
    "persona",
    "rubric",
    "success_contains",
    "success_regex",
    "success_tool",
    "max_messages",
    "time_limit_s",
    "seed",
    "budget_usd",
    "stop_at_halfwidth",
    "stop_at_threshold",
    "summary_model",
)
OPTIONAL_TEXT = ("persona", "rubric", "success_regex", "success_tool")
ASSEMBLED = ("profiles", "goal_library", "goals_text")  # widgets that form_agents and form_goals combine


def key(field: str) -> str:
    return f"scale_{field}"


fields = forms.Form("scale", lambda: state())


def slot_fields(slot: int) -> tuple[str, str]:
    return f"agent_model_{slot}", f"agent_prompt_{slot}"


def state() -> ScaleState:
    return st.session_state[STATE]  # type: ignore[no-any-return]


def defaults() -> dict[str, Any]:
    return {
        "name": "Scale test",
        "runs": 20,
        "profiles": [],
        "goal_library": [],
        "goals_text": DEFAULT_GOAL,
        "strategies": [DEFAULT_STRATEGY],
        **form_defaults(get_settings().default_max_messages, get_settings().default_time_limit_s),
        "budget_usd": None,
        "stop_at_halfwidth": None,
        "stop_at_threshold": None,
        "summary_model": DEFAULT_WRITER_MODEL,
        **dict(zip(slot_fields(0), ("sim/agent?concede=0.1", DEFAULT_SYSTEM_PROMPT), strict=True)),
    }


def init_state() -> None:
    if not isinstance(st.session_state.get(STATE), ScaleState):
        st.session_state[STATE] = ScaleState(kept=defaults())
    for name, value in state().kept.items():
        if key(name) not in st.session_state:
            st.session_state[key(name)] = value


def form_fields() -> list[str]:
    return [*FIELDS, *(field for slot in state().slots for field in slot_fields(slot))]


def remember_form() -> None:
    state().kept = {name: st.session_state.get(key(name)) for name in form_fields()}


def edited(field: str) -> None:
    """A field changed: its old error no longer applies."""
    state().errors.pop(field, None)


# -- the form as ScaleInput fields ---------------------------------------------------------------


def form_agents(profiles: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(error key, AgentInput fields) for each chosen profile, then each custom agent."""
    agents = [
        (f"profile:{name}", profile_agent(name, profiles[name]))
        for name in st.session_state.get(key("profiles")) or []
        if name in profiles
    ]
    for slot in state().slots:
        model, prompt = slot_fields(slot)
        agents.append(
            (
                f"agent:{slot}",
                {
                    "model": st.session_state.get(key(model)) or "",
                    "system_prompt": st.session_state.get(key(prompt)) or "",
                },
            )
        )
    return agents


def form_goals() -> list[str]:
    library = common.goal_library()
    chosen = [library[name] for name in st.session_state.get(key("goal_library")) or [] if name in library]
    typed = [line.strip() for line in (st.session_state.get(key("goals_text")) or "").splitlines() if line.strip()]
    return chosen + typed


def form_checks(data: dict[str, Any]) -> dict[str, Any]:
    """The run's success checks: those typed, with those the chosen library goals bring (for every cell)."""
    chosen = [common.goal_checks().get(name, {}) for name in st.session_state.get(key("goal_library")) or []]
    typed = [line for line in (data.get("success_contains") or "").splitlines() if line.strip()]
    brought = [text for checks in chosen for text in checks.get("success_contains", [])]
    merged: dict[str, Any] = {"success_contains": list(dict.fromkeys(typed + brought))}
    for name in ("success_regex", "success_tool"):
        given = data.get(name) or next((c[name] for c in chosen if c.get(name)), "")
        merged[name] = given
    return merged


def form_data(profiles: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The form as ScaleInput fields; a blank optional field is left out (its default applies)."""
    data: dict[str, Any] = {name: st.session_state.get(key(name)) for name in FIELDS if name not in ASSEMBLED}
    data["agents"] = [agent for _, agent in form_agents(profiles)]
    data["goals"] = form_goals()
    data["strategies"] = list(data["strategies"] or [])
    taken = {p.name for name in data["strategies"] if name in STRATEGIES for p in STRATEGIES[name].params}
    data["adversary_params"] = (data.get("adversary_params") or "") if taken else ""  # a hidden box counts for nothing
    for name in ("name", "adversary_model", "judge_model", "summary_model"):
        data[name] = data[name] or ""
    data.update(form_checks(data))
    for name in OPTIONAL_TEXT:
        if not (data[name] or "").strip():
            del data[name]
    for name in ("seed", "budget_usd", "stop_at_halfwidth", "stop_at_threshold"):
        if data[name] is None:
            del data[name]
    return data


FRIENDLIER = {
    ("agents", "must not be empty"): "Add at least one agent: pick a saved profile or add a model.",
    ("goals", "must not be empty"): "Add at least one goal: pick one from the library or write one.",
    ("strategies", "must not be empty"): "Pick at least one strategy.",
}


# -- actions -------------------------------------------------------------------------------------


def launch_clicked(token: str) -> None:
    """Launch clicked on the form drawn with ``token`` (a second click on it gets the same run)."""
    scale = state()
    profiles = common.agent_profiles()
    checked = forms.checked(
        scale, "scale-test", lambda: validate_scale(form_data(profiles)), lambda error: explain(error, profiles)
    )
    if checked is not None:
        submit_scale(scale, checked, token, require_worker=True)


def explain(error: InvalidInput, profiles: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The form's errors in friendlier words, a problem with the agents at the agent it belongs to."""
    errors = {field: FRIENDLIER.get((field, message), message) for field, message in error.errors.items()}
    if "agents" in errors:
        per_agent = agent_errors(form_agents(profiles))
        if per_agent:
            errors.pop("agents")
            errors.update(per_agent)
    return errors


def run_here(token: str) -> None:
    """Queue mode with no worker: run the scale test in this app's process instead."""
    scale = state()
    forms.run_here(scale, lambda pending: submit_scale(scale, pending, token, require_worker=False))


def submit_scale(scale: ScaleState, checked: ScaleInput, token: str, *, require_worker: bool) -> None:
    # A run that was submitted is in the store, so it is listed under Runs whatever happens next.
    run_id = fields.launched(checked, usecases.launch_scale, token, require_worker=require_worker)
    if run_id is None:
        return
    st.query_params["run"] = run_id  # the page opens the new run
    st.toast(
        f"Scale test {common.short_id(run_id)} launched: {checked.total_battles:,} battles.",
        icon=":material/rocket_launch:",
    )


def add_agent() -> None:
    scale = state()
    slot = scale.next_slot
    model, prompt = slot_fields(slot)
    st.session_state[key(model)] = "sim/agent?concede=0.3"
    st.session_state[key(prompt)] = DEFAULT_SYSTEM_PROMPT
    scale.slots.append(slot)
    scale.errors.pop("agents", None)


def remove_agent(slot: int) -> None:
    scale = state()
    if slot in scale.slots:
        scale.slots.remove(slot)
    scale.errors.pop(f"agent:{slot}", None)


# -- the launch form ---------------------------------------------------------------------------------


def field_error(field: str) -> None:
    forms.field_error(state(), field)


def profile_label(name: str, profile: dict[str, Any]) -> str:
    return f"{name}{targets.kind_label(profile)}" + (" (sample)" if profile.get("sample") else "")


def agents_column(profiles: dict[str, dict[str, Any]]) -> None:
    st.markdown("##### :material/shield: Agents under test")
    current = st.session_state.get(key("profiles")) or []
    chosen = [name for name in current if name in profiles]
    if chosen != current:  # a profile was deleted; otherwise leave the widget's own value alone
        st.session_state[key("profiles")] = chosen
    st.multiselect(
        "Saved profiles",
        list(profiles),
        key=key("profiles"),
        format_func=lambda name: profile_label(name, profiles.get(name, {})),
        placeholder="none",
        on_change=edited,
        args=("agents",),
        help="Each profile brings its agent: a model with its prompt, an HTTP endpoint or a Python callable. "
        "Save profiles on the hub.",
    )
    for name in chosen:
        message = state().errors.get(f"profile:{name}")
        if message:
            st.error(f"{common.inert(name)}: {message}", icon=":material/error:")
    for number, slot in enumerate(state().slots, start=1):
        model, prompt = slot_fields(slot)
        with st.container(border=True, key=key(f"agent_{slot}")):
            st.text_input(
                f"Model {number}",
                key=key(model),
                on_change=edited,
                args=(f"agent:{slot}",),
                help="provider/model, e.g. openai/gpt-4o-mini; sim/agent?concede=p is a simulated agent that "
                "gives in with probability p per turn (no key, no network).",
            )
            field_error(f"agent:{slot}")
            st.text_area("System prompt", key=key(prompt), height=90, on_change=edited, args=(f"agent:{slot}",))
            st.button(
                "Remove",
                key=key(f"remove_{slot}"),
                icon=":material/delete:",
                on_click=remove_agent,
                args=(slot,),
                type="tertiary",
            )
    st.button(
        "Add a model",
        key=key("add_agent"),
        icon=":material/add:",
        on_click=add_agent,
        disabled=len(state().slots) >= MAX_AXIS,
    )
    field_error("agents")


def goals_column() -> None:
    st.markdown("##### :material/swords: Goals and strategies")
    library = common.goal_library()
    st.multiselect(
        "Goals from the library",
        list(library),
        key=key("goal_library"),
        placeholder="none",
        on_change=edited,
        args=("goals",),
        help="Ready-made goals from data/goals.json.",
    )
    st.text_area(
        "Your own goals, one per line",
        key=key("goals_text"),
        height=100,
        on_change=edited,
        args=("goals",),
        help="What the adversary tries to get from your agent. Each goal is a column of the matrix.",
    )
    field_error("goals")
    st.multiselect(
        "Adversary strategies",
        list(STRATEGIES),
        key=key("strategies"),
        format_func=lambda name: STRATEGIES[name].label,
        placeholder="pick at least one",
        on_change=edited,
        args=("strategies",),
    )
    chosen = st.session_state.get(key("strategies")) or []
    if chosen:
        st.caption("  \n".join(f"**{STRATEGIES[s].label}**: {STRATEGIES[s].description}" for s in chosen))
    field_error("strategies")
    params = [p for name in chosen for p in STRATEGIES[name].params]
    if params:
        fields.text(
            "Strategy parameters (optional)",
            "adversary_params",
            placeholder=", ".join(f"{p.name}={p.default}" for p in params),
            help="NAME=VALUE, separated by commas; blank: the published defaults. Each strategy takes its own: "
            + "; ".join(f"{p.name}: {p.help} ({p.low}-{p.high})" for p in params),
        )
    with st.expander(
        "Persona and rubric", icon=":material/tune:", expanded=bool(state().errors.keys() & {"persona", "rubric"})
    ):
        fields.text("Adversary persona (optional)", "persona", placeholder="e.g. an impatient frequent flyer")
        fields.area("Judge rubric (optional)", "rubric", height=80)
    fields.success_checks()


def models_column() -> None:
    st.markdown("##### :material/balance: Models and limits")
    fields.text("Adversary model", "adversary_model", help="The model that plays the user pursuing the goal.")
    fields.judge(help="Decides after every agent reply whether the goal was reached.")
    fields.text(
        "Writer model",
        "summary_model",
        help="Writes the report's prose from the statistics (the numbers are computed).",
    )
    fields.number(
        "Max messages",
        "max_messages",
        step=1,
        help=f"Adversary and agent messages together, 2 to {HARD_MAX_MESSAGES}. A battle ends there as held.",
    )
    fields.number(
        "Time limit per battle (s)", "time_limit_s", step=30, help="A battle ends as timed out after this long."
    )
    fields.number(
        "Base seed (optional)",
        "seed",
        min_value=0,
        step=1,
        placeholder="random",
        help="Battle i of every cell gets a seed hashed from the base seed and i, so cells face the same adversary "
        "draws (paired), and another base seed draws a new sample.",
    )
    fields.number(
        "Budget in $ (optional)",
        "budget_usd",
        step=1.0,
        format="%.2f",
        placeholder="no cap",
        help="The remaining battles are cancelled once the run has cost this much.",
    )
    st.markdown("###### :material/front_hand: Stop a cell early (optional)")
    fields.number(
        "Stop at threshold (rate)",
        "stop_at_threshold",
        step=0.01,
        format="%.3f",
        placeholder="off",
        help="A cell stops as soon as its 95% interval lies wholly below or above this success rate (e.g. 0.05 for "
        "5%) and records the answer. The interval stays valid however often it is looked at (a confidence "
        "sequence), so stopping early does not inflate the error rate.",
    )
    fields.number(
        "Stop at halfwidth (±)",
        "stop_at_halfwidth",
        step=0.01,
        format="%.3f",
        placeholder="off",
        help="A cell stops once its 95% interval is at most ± this wide (e.g. 0.05 for ±5 points).",
    )
    st.caption("With a rule, Runs per cell is the most a cell runs; the queued rest of a stopped cell is cancelled.")


def plan_preview(data: dict[str, Any]) -> None:
    settings = get_settings()
    plan = plan_of(data)
    with st.container(border=True, key=key("plan")):
        count, battles, cost, expected = st.columns([1, 1, 1.4, 1.4])
        count.metric(
            "Cells", plan.cells, help="Each combination of agent, goal and strategy is one cell of the matrix."
        )
        count.caption(plan.cells_basis())
        battles.metric("Battles", f"{plan.total:,}")
        battles.caption(
            f"{plural(plan.cells, 'cell')} × {plural(plan.per_cell, 'run')} · limit {settings.max_battles_per_run:,}"
        )
        estimate = cost_estimate(data, plan.total)
        cost.metric("Estimated cost", estimate.value)
        cost.caption(estimate.basis)
        value, basis = forecast.form_expected_cost(data, get_runtime().store)
        expected.metric("Expected cost", value, help="What the run is expected to spend, not the most it may.")
        expected.caption(basis)
        warning = limit_warning(plan, settings)
        if warning:
            st.warning(warning, icon=":material/warning:")


def launch_form() -> None:
    profiles = common.agent_profiles()
    with st.container(border=True, key=key("form")):
        name, per_cell = st.columns([3, 1])
        name.text_input("Name", key=key("name"), on_change=edited, args=("name",))
        with name:
            field_error("name")
        per_cell.number_input(
            "Runs per cell (N)",
            step=1,
            key=key("runs"),
            on_change=edited,
            args=("runs",),
            help=f"Battles per cell, 1 to {get_settings().max_runs_per_cell:,}.",
        )
        with per_cell:
            field_error("runs")
        forms.columns(lambda: agents_column(profiles), goals_column, models_column)
        plan_preview(form_data(profiles))
        fields.launch_button(
            "Launch scale test",
            ":material/rocket_launch:",
            launch_clicked,
            name="launch",
            what="scale test",
            nothing="launched",
            on_run_here=run_here,
        )
    remember_form()


# -- the list of runs -----------------------------------------------------------------------------------

RUN_WIDTHS = [3.2, 2.4, 3.2, 1.1, 1.3]


def load_runs() -> list[RunRow] | None:
    scale = state()
    rows = common.read(reads.run_rows, RUNS_LISTED)
    if rows is not None:
        scale.runs = rows
    return scale.runs


def any_active(rows: list[RunRow] | None) -> bool:
    return bool(rows) and any(row.active for row in rows or [])


def run_line(run: RunRow, at: Any) -> None:
    with st.container(key=f"run-{run.run_id}"):
        what, progress, outcomes, cost, created = st.columns(RUN_WIDTHS, vertical_alignment="center")
        name = common.inert(common.truncate(run.name, 80))
        by = f" · by {common.inert(run.launched_by)}" if run.launched_by else ""
        what.markdown(f"**{name}**  \n{common.run_badge(run.status)} `{common.short_id(run.run_id)}`{by}")
        what.page_link(common.SCALE_PAGE, label="Open", icon=":material/open_in_new:", query_params={"run": run.run_id})
        progress.progress(run.fraction_done, text=f"{run.finished:,} / {run.total_battles:,} battles")
        rate = common.format_rate(run.rate, run.ci_low, run.ci_high)
        counts = outcome_counts(
            run.achieved,
            run.held,
            undecided=run.undecided,
            failed=run.failed,
            timed_out=run.timed_out,
            cancelled=run.cancelled,
        )
        outcomes.markdown(f"{counts}  \nsuccess rate {rate}")
        cost.markdown(common.format_money(run.cost_usd))
        created.markdown(common.format_ago(run.created_at, at))


def render_runs(rows: list[RunRow] | None) -> None:
    at = common.now()
    clock = at.astimezone().strftime("%H:%M:%S")
    if any_active(rows):
        st.caption(f":blue[:material/radio_button_checked:] Live: updating every second · {clock}")
    else:
        st.caption(f"Nothing running · updated {clock}")
    if not rows:
        st.info("No scale tests yet — launch one under **New scale test**.", icon=":material/query_stats:")
        return
    cols = st.columns(RUN_WIDTHS)
    for col, title in zip(
        cols, ("Scale test", "Progress", "Outcomes (pooled over cells)", "Cost", "Created"), strict=True
    ):
        col.caption(title)
    for run in rows:
        run_line(run, at)
    st.caption(common.OUTCOME_LEGEND + ".")


# -- page ---------------------------------------------------------------------------------------------------


def overview() -> None:
    rows = load_runs()
    tabs = ["Runs", "New scale test", "Compare"]
    runs_tab, new_tab, compare_tab = st.tabs(tabs, default=tabs[0] if rows else tabs[1])
    with new_tab:
        launch_form()
    with runs_tab:
        first = [rows]
        common.live(lambda: first.pop() if first else load_runs(), any_active, render_runs)
    with compare_tab:
        scale_compare.show(state().runs or [])


init_state()
st.set_page_config(page_title="Scale tests · Sparring")
st.title("Scale tests")
run_id = str(st.query_params.get("run", "")).strip()
if run_id:
    scale_run.show(run_id)
else:
    st.caption(
        "Run one battle configuration many times, or a matrix of agents × goals × strategies, and get success "
        "rates with confidence intervals, survival over turns, cost, latency and a written report."
    )
    overview()
