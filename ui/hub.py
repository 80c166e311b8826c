"""Hub: launch a battle, then follow the battles started here and the latest ones, live.

The battles started here are kept in the page's URL (``?started=<id>-<id>``), so a reload
keeps the list (nothing about a browser is stored).
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from sparring import battle_fields, usecases
from sparring import records as r
from sparring.settings import HARD_MAX_MESSAGES, get_settings
from sparring.store import StoreBusy, StoreMissing, reads, ui_queries
from sparring.strategies import DEFAULT_STRATEGY, STRATEGIES
from sparring.validation import (
    DEFAULT_ADVERSARY_MODEL,
    DEFAULT_GOAL,
    DEFAULT_JUDGE_MODEL,
    DEFAULT_SYSTEM_PROMPT,
    BattleInput,
    InvalidInput,
    validate_battle,
)
from ui import common, forms, session
from ui.state import HubState

log = logging.getLogger(__name__)

CUSTOM_AGENT = "Custom agent"
OWN_GOAL = "Write my own"
RECENT_CHOICES = (10, 25, 50, 100)

# Widget keys are "hub_<field>", <field> a BattleInput field, so that a validation error
# finds its widget by name.
STATE = "hub_state"
RECENT_LIMIT = "hub_recent_limit"
STARTED_PARAM = "started"  # the URL query parameter that lists the battles started here
STARTED_KEPT = 100
STARTED_SEPARATOR = "-"  # kept as is in a URL (a comma would show as %2C)


def state() -> HubState:
    return st.session_state[STATE]  # type: ignore[no-any-return]


# The form's fields, in the declaration's order; the profile is chosen apart (``chosen_profile``).
FIELDS = tuple(field.name for field in battle_fields.BATTLE_FIELDS if field.name != "agent_profile")
AGENT_FIELDS = tuple(name for name in FIELDS if name in battle_fields.AGENT_FIELDS.values())
TEXT_FIELDS = tuple(
    field.name for field in battle_fields.BATTLE_FIELDS if field.name in FIELDS and field.cli_type is str
)
# Blank means absent: the text fields whose default is None.
OPTIONAL_TEXT = tuple(
    field.name
    for field in battle_fields.BATTLE_FIELDS
    if field.cli_type is str and BattleInput.model_fields[field.name].default is None
)


def key(field: str) -> str:
    return f"hub_{field}"


fields = forms.Form("hub", lambda: state())


def defaults() -> dict[str, Any]:
    settings = get_settings()
    return {
        "agent_model": "sim/agent?concede=0.1",
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        "temperature": None,
        "api_base": "",
        "api_key_env": "",
        "goal": DEFAULT_GOAL,
        "adversary_model": DEFAULT_ADVERSARY_MODEL,
        "strategy": DEFAULT_STRATEGY,
        "persona": "",
        "judge_model": DEFAULT_JUDGE_MODEL,
        "rubric": "",
        "max_messages": settings.default_max_messages,
        "time_limit_s": round(settings.default_time_limit_s),
        "seed": None,
    }


# -- state -------------------------------------------------------------------------------------


def init_state() -> None:
    if not isinstance(st.session_state.get(STATE), HubState):
        st.session_state[STATE] = HubState(kept=defaults(), session_ids=started_in_url())
    for name, value in state().kept.items():
        if key(name) not in st.session_state:
            st.session_state[key(name)] = value
    st.session_state.setdefault(key("profile"), CUSTOM_AGENT)
    st.session_state.setdefault(key("goal_choice"), OWN_GOAL)


def started_in_url() -> list[str]:
    """The battles this page started before a reload, as its URL lists them (ids only, checked)."""
    listed = str(st.query_params.get(STARTED_PARAM, ""))
    return list(dict.fromkeys(b for b in listed.split(STARTED_SEPARATOR) if r.is_id(b)))[:STARTED_KEPT]


def keep_started_in_url() -> None:
    """Write the battles started here into the URL, so that a reload (or a bookmark) keeps them."""
    listed = STARTED_SEPARATOR.join(state().session_ids)
    if listed and st.query_params.get(STARTED_PARAM) != listed:
        st.query_params[STARTED_PARAM] = listed


def remember_form() -> None:
    state().kept = {name: st.session_state.get(key(name)) for name in FIELDS}


def edited(field: str) -> None:
    """A field changed: its old error no longer applies."""
    state().errors.pop(field, None)


def use_profile() -> None:
    profile = state().profiles.get(st.session_state[key("profile")])
    if not profile:
        return
    st.session_state[key("agent_model")] = profile.get("model") or ""
    st.session_state[key("system_prompt")] = profile.get("system_prompt") or ""
    st.session_state[key("temperature")] = profile.get("temperature")
    st.session_state[key("api_base")] = profile.get("api_base") or ""
    st.session_state[key("api_key_env")] = profile.get("api_key_env") or ""
    for field in AGENT_FIELDS:
        edited(field)


def use_goal() -> None:
    goal = common.goal_library().get(st.session_state[key("goal_choice")])
    if goal:
        st.session_state[key("goal")] = goal
        edited("goal")


def chosen_profile() -> str | None:
    """The profile the agent fields still match, if any (a battle records where it came from)."""
    name = st.session_state.get(key("profile"))
    profile = state().profiles.get(name) if name is not None else None
    if not profile:
        return None
    same = (
        profile.get("model") == st.session_state[key("agent_model")]
        and profile.get("system_prompt") == st.session_state[key("system_prompt")]
        and profile.get("temperature") == st.session_state[key("temperature")]
    )
    return str(name) if same else None


def form_data() -> dict[str, Any]:
    """The form as BattleInput fields; a blank optional field is left out (its default applies)."""
    data: dict[str, Any] = {name: st.session_state.get(key(name)) for name in FIELDS}
    for name in TEXT_FIELDS:
        data[name] = data[name] or ""
    data["agent_profile"] = chosen_profile() or ""
    return {name: value for name, value in data.items() if not (name in OPTIONAL_TEXT and not value.strip())}


# -- actions -------------------------------------------------------------------------------------


def start(token: str) -> None:
    """Start clicked on the form drawn with ``token`` (a second click on it gets the same battle)."""
    hub = state()
    battle = forms.checked(hub, "battle", lambda: validate_battle(form_data()), forms.as_given)
    if battle is not None:
        launch(hub, battle, token, require_worker=True)


def run_here(token: str) -> None:
    """Queue mode with no worker: run battles in this app's process instead."""
    hub = state()
    forms.run_here(hub, lambda battle: launch(hub, battle, token, require_worker=False))


def launch(hub: HubState, battle: BattleInput, token: str, *, require_worker: bool) -> None:
    battle_id = fields.launched(battle, usecases.launch_battle, token, require_worker=require_worker)
    if battle_id is None or battle_id in hub.session_ids:  # refused, or the same form submitted twice
        return
    hub.session_ids.insert(0, battle_id)
    del hub.session_ids[STARTED_KEPT:]
    st.toast(f"Battle {common.short_id(battle_id)} started.", icon=":material/play_arrow:")


def save_profile() -> None:
    hub = state()
    hub.profile_errors.clear()
    data = form_data()
    profile = {
        "name": st.session_state.get(key("profile_name")) or "",
        "model": data["agent_model"],
        "system_prompt": data["system_prompt"],
        "temperature": data["temperature"],
        "api_base": data.get("api_base"),
        "api_key_env": data.get("api_key_env"),
    }
    try:
        name = usecases.save_agent({k: v for k, v in profile.items() if v is not None}, actor=session.actor())
    except InvalidInput as error:
        hub.profile_errors.update(error.errors)
        return
    except usecases.AccessRefused as error:
        hub.profile_errors["__all__"] = str(error)
        return
    except Exception as error:  # a bug must not show a traceback; it is logged in full
        log.exception("Saving a profile failed")
        hub.profile_errors["__all__"] = f"could not save ({type(error).__name__}: {error})"
        return
    st.session_state[key("profile")] = name
    st.session_state[key("profile_name")] = ""
    st.toast(f"Saved the profile “{name}”.", icon=":material/save:")


# -- rendering ---------------------------------------------------------------------------------


def field_error(field: str) -> None:
    forms.field_error(state(), field)


def agent_column(profiles: dict[str, dict[str, Any]]) -> None:
    st.markdown("##### :material/shield: Agent under test")
    names = [CUSTOM_AGENT, *profiles]
    if st.session_state[key("profile")] not in names:
        st.session_state[key("profile")] = CUSTOM_AGENT
    st.selectbox(
        "Profile",
        names,
        key=key("profile"),
        on_change=use_profile,
        format_func=lambda name: f"{name} (sample)" if profiles.get(name, {}).get("sample") else name,
        help="Fill the agent from a saved profile, or describe a custom one below.",
    )
    fields.text(
        "Model",
        "agent_model",
        help="provider/model, e.g. openai/gpt-4o-mini. sim/agent?concede=p is a built-in simulated agent "
        "that gives in with probability p on each turn (no key, no network).",
    )
    fields.area("System prompt", "system_prompt", height=150)
    fields.number("Temperature", "temperature", min_value=0.0, max_value=2.0, step=0.1, placeholder="provider default")
    with st.expander("Save as profile", icon=":material/save:"):
        st.text_input("Profile name", key=key("profile_name"), placeholder="e.g. Support bot v2")
        st.button("Save profile", key=key("save_profile"), on_click=save_profile)
        for field, message in state().profile_errors.items():
            label = {"name": "Name", "__all__": "Profile"}.get(field, field.replace("_", " ").capitalize())
            st.error(f"{label}: {message}", icon=":material/error:")
        st.caption("Saves the model, system prompt and temperature above. An existing name is updated.")


def adversary_column() -> None:
    st.markdown("##### :material/swords: Adversary")
    library = common.goal_library()
    st.selectbox(
        "Goal library",
        [OWN_GOAL, *library],
        key=key("goal_choice"),
        on_change=use_goal,
        help="Pick a ready-made goal, or write your own below.",
    )
    fields.area(
        "Goal",
        "goal",
        height=100,
        help="What the adversary tries to get from your agent. The judge checks it after every agent reply.",
    )
    fields.text("Model", "adversary_model")
    st.selectbox(
        "Strategy",
        list(STRATEGIES),
        key=key("strategy"),
        format_func=lambda name: STRATEGIES[name].label,
        on_change=edited,
        args=("strategy",),
    )
    st.caption(STRATEGIES[st.session_state[key("strategy")]].description)
    field_error("strategy")
    fields.text("Persona (optional)", "persona", placeholder="e.g. an impatient frequent flyer")


def judge_column() -> None:
    st.markdown("##### :material/balance: Judge and limits")
    fields.judge()
    fields.number(
        "Max messages",
        "max_messages",
        step=1,
        help=f"Adversary and agent messages together, 2 to {HARD_MAX_MESSAGES}. The battle ends there as held.",
    )
    fields.number("Time limit (s)", "time_limit_s", step=30, help="The battle ends as timed out after this long.")
    fields.number(
        "Seed (optional)",
        "seed",
        min_value=0,
        step=1,
        placeholder="random",
        help="Sim models given the same seed replay the same battle.",
    )
    advanced_errors = any(state().errors.get(f) for f in ("rubric", "api_base", "api_key_env"))
    with st.expander("Advanced", icon=":material/tune:", expanded=advanced_errors):
        fields.area("Judge rubric (optional)", "rubric", height=80)
        fields.text(
            "Agent API base (optional)",
            "api_base",
            placeholder="http://localhost:8000/v1",
            help="An OpenAI-compatible server (vLLM, LM Studio, a proxy) for the agent model.",
        )
        fields.text(
            "Agent API key variable (optional)",
            "api_key_env",
            placeholder="MY_GATEWAY_KEY",
            help="The *name* of an environment variable of the app and workers that holds the key.",
        )


def launch_form() -> None:
    profiles = common.agent_profiles()
    state().profiles = profiles
    with st.container(border=True, key="hub_form"):
        forms.columns(lambda: agent_column(profiles), adversary_column, judge_column)
        fields.launch_button(
            "Start battle",
            ":material/play_arrow:",
            start,
            name="start",
            what="battle",
            nothing="started",
            on_run_here=run_here,
        )
    remember_form()


def load_rows() -> ui_queries.HubRows | None:
    hub = state()
    session_ids = list(hub.session_ids)
    limit = int(st.session_state.get(RECENT_LIMIT, RECENT_CHOICES[0]))
    rows = common.read(reads.hub_rows, session_ids, limit)
    if rows is not None:
        hub.rows = rows
    return hub.rows


def is_active(rows: ui_queries.HubRows | None) -> bool:
    return rows is not None and rows.active


def spend_left() -> None:
    """What this person may still spend today, when a daily spend limit applies (sparring.spend)."""
    try:
        allowance = usecases.spend_left(actor=session.actor())
    except (StoreBusy, StoreMissing):
        return
    if allowance.limited:
        sentence = allowance.sentence()
        with st.container(key="hub_spend_left"):
            st.caption(f":material/savings: Spend limit: {sentence[0].upper()}{sentence[1:]}.")


def render_lists(rows: ui_queries.HubRows | None) -> None:
    at = common.now()
    if rows is None:
        rows = ui_queries.HubRows([], [])
    status, refresh = st.columns([6, 1], vertical_alignment="center")
    clock = at.astimezone().strftime("%H:%M:%S")
    if rows.active:
        status.caption(f":blue[:material/radio_button_checked:] Live: updating every second · {clock}")
    else:
        status.caption(f"Nothing running · updated {clock}")
    refresh.button("Refresh", key=key("refresh"), icon=":material/refresh:", width="stretch")
    if rows.active:
        common.writes_waiting_notice()

    if rows.session:
        st.markdown(
            "#### Your battles",
            help="The battles started from this page; its address lists them, so a reload keeps them.",
        )
        common.battle_rows_header()
        for row in rows.session:
            common.battle_row(row, "session", at)

    # The latest battles overall, less those already listed above.
    listed = {row.battle_id for row in rows.session}
    others = [row for row in rows.recent if row.battle_id not in listed]
    title, limit = st.columns([6, 1], vertical_alignment="bottom")
    title.markdown("#### Other recent battles" if rows.session else "#### Recent battles")
    limit.selectbox(
        "Show", RECENT_CHOICES, key=RECENT_LIMIT, format_func="Latest {}".format, label_visibility="collapsed"
    )
    if others:
        common.battle_rows_header()
        for row in others:
            common.battle_row(row, "recent", at)
    elif rows.session:
        st.caption("No other battles among the latest ones.")
    else:
        st.info("No battles yet — start one above.", icon=":material/sports_mma:")
    if rows.session or others:
        st.caption(common.OUTCOME_LEGEND + ". Scale-test battles are on the Scale tests page.")


init_state()
st.set_page_config(page_title="Sparring")
st.title("Sparring")
st.caption(
    "Attack your own LLM agents before users do: an adversary model pursues a goal against your agent, "
    "and a judge checks every reply. The sim/... models need no key and no network."
)
spend_left()
launch_form()
keep_started_in_url()
common.live(load_rows, is_active, render_lists)
