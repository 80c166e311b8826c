"""Hub: launch a battle, then follow the battles started here and the latest ones, live.

The battles started here are kept in the page's URL (``?started=<id>-<id>``), so a reload
keeps the list (nothing about a browser is stored).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import streamlit as st

from sparring import battle_fields, usecases
from sparring import records as r
from sparring.settings import HARD_MAX_MESSAGES, get_settings
from sparring.store import StoreBusy, StoreMissing, reads, ui_queries
from sparring.strategies import DEFAULT_STRATEGY, STRATEGIES
from sparring.targets import config as targets
from sparring.validation import (
    DEFAULT_GOAL,
    DEFAULT_SYSTEM_PROMPT,
    BattleInput,
    InvalidInput,
    form_defaults,
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


# The kind of agent, and the widgets its settings (``agent_target``) are built from.
KIND_LABELS = {"model": "Model", "http": "HTTP endpoint", "python": "Python callable"}
TARGET_WIDGETS = targets.FORM_DEFAULTS
# A model profile's fields -> the form's.
PROFILE_FIELDS = (("model", "agent_model"), ("system_prompt", "system_prompt"), ("temperature", "temperature"))
# The fields of a model agent only, hidden for the other kinds.
MODEL_ONLY = ("agent_model", "system_prompt", "temperature", "api_base", "api_key_env")
# A problem with the settings names its part: the widget label it is shown with.
TARGET_PARTS = {
    "url": "URL",
    "method": "Method",
    "request": "Request template",
    "response": "Reply path",
    "headers": "Headers",
    "session": "Session",
    "callable": "Callable",
    "tools": "Tools",
    "target": "Settings",
}


fields = forms.Form("hub", lambda: state())


def defaults() -> dict[str, Any]:
    return {
        "agent_model": "sim/agent?concede=0.1",
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        "temperature": None,
        "api_base": "",
        "api_key_env": "",
        "agent_kind": "model",
        "agent_target": "",
        **TARGET_WIDGETS,
        "goal": DEFAULT_GOAL,
        "strategy": DEFAULT_STRATEGY,
        **form_defaults(get_settings().default_max_messages, get_settings().default_time_limit_s),
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
    state().kept = {name: st.session_state.get(key(name)) for name in (*FIELDS, *TARGET_WIDGETS)}


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
    st.session_state[key("agent_kind")] = profile.get("kind") or "model"
    for widget, value in target_widgets(profile.get("target")).items():
        st.session_state[key(widget)] = value
    for field in AGENT_FIELDS:
        edited(field)


def target_widgets(target: Any) -> dict[str, Any]:
    """A saved profile's settings as the values of the widgets they are edited in."""
    return targets.form_values(target)


def target_settings(kind: str) -> Any:
    """The kind's settings from its widgets (checked with the rest of the form by BattleInput)."""

    def value(name: str) -> str:
        return str(st.session_state.get(key(name)) or "")

    if kind == "http":
        headers = [line for line in value("http_headers").splitlines() if line.strip()]
        return {
            "url": value("http_url"),
            "method": value("http_method") or "POST",
            "request": value("http_request"),
            "response": value("http_response"),
            "headers": headers,
            "session": value("http_session") or "stateless",
        }
    if kind == "python":
        return {"callable": value("python_callable")}
    tools = value("model_tools").strip()
    if not tools:
        return None
    try:
        return {"tools": json.loads(tools)}
    except ValueError as error:
        return f"tools: not JSON ({error})"  # refused by the validation, at the tools widget


def use_goal() -> None:
    choice = st.session_state[key("goal_choice")]
    goal = common.goal_library().get(choice)
    if goal:
        st.session_state[key("goal")] = goal
        edited("goal")
        checks = common.goal_checks().get(choice, {})  # a library goal brings its own checks (or clears them)
        st.session_state[key("success_contains")] = "\n".join(checks.get("success_contains", []))
        for name in ("success_regex", "success_tool"):
            st.session_state[key(name)] = checks.get(name, "")
            edited(name)
        edited("success_contains")


def chosen_profile() -> str | None:
    """The profile the agent fields still match, if any (a battle records where it came from)."""
    name = st.session_state.get(key("profile"))
    profile = state().profiles.get(name) if name is not None else None
    if not profile:
        return None
    kind = st.session_state.get(key("agent_kind")) or "model"
    if (profile.get("kind") or "model") != kind:
        return None
    if kind == "model":
        same = all(profile.get(field) == st.session_state.get(key(name)) for field, name in PROFILE_FIELDS)
    else:  # its settings, as their widgets show them
        shown = target_widgets(profile.get("target"))
        same = all(st.session_state.get(key(w)) == shown[w] for w in TARGET_WIDGETS if w.startswith(kind))
    return str(name) if same else None


def form_data() -> dict[str, Any]:
    """The form as BattleInput fields; a blank optional field is left out (its default applies)."""
    data: dict[str, Any] = {name: st.session_state.get(key(name)) for name in FIELDS}
    for name in TEXT_FIELDS:
        data[name] = data[name] or ""
    data["agent_profile"] = chosen_profile() or ""
    data["success_contains"] = [line for line in data["success_contains"].splitlines() if line.strip()]
    if data.get("strategy") in STRATEGIES and not STRATEGIES[data["strategy"]].params:
        data["adversary_params"] = ""  # the box is hidden: what it held belongs to another strategy
    data["agent_kind"] = data["agent_kind"] or "model"
    if data["agent_kind"] != "model":  # the model's widgets are hidden (and gone): their defaults apply
        for name in MODEL_ONLY:
            data.pop(name, None)
    settings = target_settings(data["agent_kind"])
    data["agent_target"] = json.dumps(settings) if isinstance(settings, dict) else settings or ""
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
        "model": data.get("agent_model"),
        "system_prompt": data.get("system_prompt"),
        "temperature": data.get("temperature"),
        "api_base": data.get("api_base"),
        "api_key_env": data.get("api_key_env"),
        "kind": data["agent_kind"],
        "target": data.get("agent_target") or None,
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
    st.radio(
        "Kind",
        list(KIND_LABELS),
        key=key("agent_kind"),
        format_func=KIND_LABELS.__getitem__,
        horizontal=True,
        on_change=edited,
        args=("agent_target",),
        help="A model and its system prompt, a service behind an HTTP endpoint, or a Python function.",
    )
    kind = st.session_state[key("agent_kind")]
    if kind == "http":
        http_fields()
    elif kind == "python":
        target_widget(
            st.text_input,
            "Callable",
            "python_callable",
            placeholder="my_agent.app:reply",
            help="module:function on the workers' Python path. It takes the visible messages "
            '([{"role", "content"}]) and returns the reply, or {"reply": ..., "tool_calls": [...]}.',
        )
    else:
        model_fields()
    target_error()
    with st.expander("Save as profile", icon=":material/save:"):
        st.text_input("Profile name", key=key("profile_name"), placeholder="e.g. Support bot v2")
        st.button("Save profile", key=key("save_profile"), on_click=save_profile)
        for field, message in state().profile_errors.items():
            label = {"name": "Name", "__all__": "Profile"}.get(field, field.replace("_", " ").capitalize())
            st.error(f"{label}: {message}", icon=":material/error:")
        st.caption("Saves the agent above, of its kind. An existing name is updated.")


def model_fields() -> None:
    fields.text(
        "Model",
        "agent_model",
        help="provider/model, e.g. openai/gpt-4o-mini. sim/agent?concede=p is a built-in simulated agent "
        "that gives in with probability p on each turn (no key, no network).",
    )
    fields.area("System prompt", "system_prompt", height=150)
    fields.number("Temperature", "temperature", min_value=0.0, max_value=2.0, step=0.1, placeholder="provider default")
    with st.expander("Tools (optional)", icon=":material/build:"):
        target_widget(
            st.text_area,
            "Tools (JSON)",
            "model_tools",
            height=120,
            placeholder='[{"type": "function", "function": {"name": "issue_refund"}, "result": "done"}]',
            help="OpenAI function schemas, each with the canned result the agent gets when it calls it "
            '(and optional "rules": [{"match": {...}, "result": ...}]).',
        )


def http_fields() -> None:
    target_widget(st.text_input, "URL", "http_url", placeholder="http://127.0.0.1:8080/chat")
    target_widget(
        st.text_area,
        "Request template (JSON)",
        "http_request",
        height=80,
        help="{{message}} (the latest message), {{messages}} (the conversation) and {{session_id}} "
        "become JSON values: write them without quotes.",
    )
    target_widget(st.text_input, "Reply path", "http_response", placeholder="data.text")
    target_widget(
        st.text_area,
        "Headers (optional)",
        "http_headers",
        height=68,
        placeholder="Authorization: Bearer ${SUPPORT_BOT_KEY}",
        help="One 'Name: value' a line. Secrets as ${ENV_VAR}: read by the workers at call time, never stored.",
    )
    method, session = st.columns(2)
    with method:
        target_widget(st.selectbox, "Method", "http_method", options=["POST", "PUT", "PATCH"])
    with session:
        target_widget(
            st.selectbox,
            "Session",
            "http_session",
            options=["stateless", "stateful"],
            help="stateless: sent the whole conversation each turn; stateful: the service keeps it, "
            "and gets only the latest message.",
        )


def target_widget(widget: Any, label: str, name: str, **options: Any) -> None:
    widget(label, key=key(name), on_change=edited, args=("agent_target",), **options)


def target_error() -> None:
    """A problem with the kind's settings, under them, named by its part."""
    message = state().errors.get("agent_target")
    if message:
        part, _, rest = message.partition(": ")
        shown = f"{TARGET_PARTS[part]}: {rest}" if part in TARGET_PARTS and rest else message
        st.error(shown, icon=":material/error:")


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
    chosen = STRATEGIES[st.session_state[key("strategy")]]
    st.caption(chosen.description)
    field_error("strategy")
    if chosen.params:
        fields.text(
            "Strategy parameters (optional)",
            "adversary_params",
            placeholder=", ".join(f"{p.name}={p.default}" for p in chosen.params),
            help="NAME=VALUE, separated by commas; blank: the published defaults. "
            + "; ".join(f"{p.name}: {p.help} ({p.low}-{p.high})" for p in chosen.params),
        )
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
    fields.success_checks()
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
