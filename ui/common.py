"""Pieces the pages share: live fragments, store reads that never raise, badges, battle rows.

Not a page itself (``streamlit_app.py`` lists the pages). Everything shown that a model or
a user wrote goes through ``sparring.render.inert_markdown``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection
from typing import Any, Concatenate, ParamSpec, TypeVar

import streamlit as st

from jobs import health
from sparring import formatting, render, samples, usecases
from sparring.render import inert_markdown
from sparring.runtime import get_runtime
from sparring.store import Store, StoreBusy, StoreMissing, reads
from sparring.store.ui_queries import BattleRow
from ui import session

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


HUB_PAGE = "ui/hub.py"
BATTLE_PAGE = "ui/battle.py"
SCALE_PAGE = "ui/scale_tests.py"
BATTLE_URL = "battle"  # the Battle page's url_path (streamlit_app.py), for links inside markdown

LIVE_EVERY_S = 1.0
READ_DEADLINE_S = 3.0

# state -> (label, colour, icon). "achieved" means the adversary reached its goal: for the
# team testing its agent that is the bad news, hence red; "held" is the good news.
BADGES: dict[str, tuple[str, str, str]] = {
    "queued": ("queued", "gray", ":material/schedule:"),
    "running": ("running", "blue", ":material/autorenew:"),
    "achieved": ("achieved", "red", ":material/gpp_bad:"),
    "held": ("held", "green", ":material/verified_user:"),
    "undecided": ("undecided", "violet", ":material/help:"),
    "cancelled": ("cancelled", "gray", ":material/block:"),
    "timed_out": ("timed out", "yellow", ":material/timer_off:"),
    "failed": ("failed", "orange", ":material/error:"),
}

# Scale-test statuses (scale_runs.status) -> (label, colour, icon).
# A status both have looks the same on both.
RUN_BADGES: dict[str, tuple[str, str, str]] = {
    **{status: BADGES[status] for status in ("queued", "running", "cancelled", "failed")},
    "cancelling": ("cancelling", "gray", ":material/hourglass_top:"),
    "stopping": ("stopping: budget reached", "yellow", ":material/hourglass_top:"),
    "finished": ("finished", "green", ":material/check_circle:"),
    "stopped": ("stopped: budget reached", "yellow", ":material/savings:"),
}

OUTCOME_LEGEND = (
    "**achieved**: the adversary reached its goal (your agent gave in) · **held**: your agent resisted "
    "until the message cap · **undecided**: the judge gave no usable verdict on the last agent message, so "
    "nobody knows (left out of success rates) · **failed**: a model or provider error stopped the battle"
    " · **cancelled**: stopped on request before it ended · **timed out**: stopped at its time limit"
)


# Wording and samples whose one home is the core, under the names the pages call them by.
format_money = formatting.format_money
format_rate = formatting.format_rate
format_duration = formatting.format_duration
format_ago = formatting.format_ago
elapsed_s = formatting.elapsed_s
truncate = formatting.truncate
cited_battles = render.cited_battles
goal_library = samples.goal_library
goal_checks = samples.goal_checks


def agent_profiles() -> dict[str, dict[str, Any]]:
    """Saved profiles (the ``agents`` table) over the checked-in samples of the same name."""
    profiles = samples.sample_profiles()
    saved = read(reads.agent_profiles) or []
    profiles.update({str(item["name"]): {**item, "sample": False} for item in saved})
    return profiles


def inert(text: str | None) -> str:
    """Untrusted text as markdown that shows exactly that text."""
    return inert_markdown(text or "")


def short_id(battle_id: str) -> str:
    return battle_id[:8]


def badge(state: str, badges: dict[str, tuple[str, str, str]] = BADGES) -> str:
    """A battle's state (or, given ``RUN_BADGES``, a run's status) as a Streamlit badge."""
    label, colour, icon = badges.get(state, (state, "gray", ":material/help:"))
    return f":{colour}-badge[{icon} {label}]"


def run_badge(status: str) -> str:
    return badge(status, RUN_BADGES)


def inert_with_citations(text: str, linkable: Collection[str]) -> str:
    """A report with its citations of ``linkable`` battles as links to the Battle page."""
    return render.inert_with_citations(text, linkable, BATTLE_URL)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def read(fetch: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """``fetch(store, *args)``, a read model of ``sparring.store.reads``, given up after
    ``READ_DEADLINE_S``; on a locked or missing database, say so and return None."""
    try:
        return fetch(get_runtime().store.with_read_deadline(READ_DEADLINE_S), *args, **kwargs)
    except StoreBusy as error:
        st.warning(f"{error} Showing what was last read.", icon=":material/hourglass_top:")
    except StoreMissing:
        log.info("No database yet; nothing to show")
    return None


def live(
    load: Callable[[], T],
    is_active: Callable[[T], bool],
    render: Callable[[T], None],
    every_s: float = LIVE_EVERY_S,
) -> None:
    """Render ``load()``; while it ``is_active``, refresh it every ``every_s`` seconds.

    ``run_every`` is fixed when a fragment is declared, so it is chosen from the data read
    in the full run that declares it. When a refresh finds that activity changed (the last
    battle finished, or a retry queued one), it asks for one full rerun, which declares
    the fragment again with (or without) ``run_every``: the frontend drops the old timer at
    every full run. In between, each refresh reruns the fragment alone.
    """
    first: list[T] = [load()]
    declared = is_active(first[0])

    @st.fragment(run_every=every_s if declared else None)
    def view() -> None:
        data = first.pop() if first else load()
        if is_active(data) != declared:
            st.rerun(scope="app")
        show_flashes()
        render(data)

    view()


def writes_waiting_notice() -> bool:
    """Say so when battle writes wait for the database file (a notebook holding it, say).

    Without it a live page just stands still. Returns whether writes are waiting.
    """
    since = health.writes_waiting_since()
    if since is None:
        return False
    started = dt.datetime.fromtimestamp(since, tz=dt.UTC)
    waited = max(0.0, (now() - started).total_seconds())
    st.warning(
        f"**Writes are waiting for the database file** since {started:%H:%M:%S} UTC "
        f"({format_duration(waited)}): another process holds it, often a notebook with a connection "
        "open. Battles go on and nothing is lost; this page catches up once the file is free. "
        "In notebooks, `sparring.data.connect()` reads without holding the file.",
        icon=":material/lock_clock:",
    )
    return True


# -- actions --------------------------------------------------------------------------------

FLASH = "flash"  # toasts queued by callbacks, shown by the next render


def flash(message: str, icon: str) -> None:
    """Queue a toast. A callback of a widget inside a fragment must not draw anything itself."""
    st.session_state.setdefault(FLASH, []).append((message, icon))


def show_flashes() -> None:
    for message, icon in st.session_state.pop(FLASH, []):
        st.toast(message, icon=icon)


def cancel(battle_id: str) -> None:
    cancel_and_flash(
        f"Battle {short_id(battle_id)}",
        lambda: usecases.cancel_battle(battle_id, actor=session.actor()),
        usecases.UnknownBattleError,
    )


def cancel_and_flash(what: str, cancel: Callable[[], str], unknown: type[Exception], note: str = "") -> None:
    """A Cancel button's callback: ``cancel()`` returns what happened, said in a toast."""
    act_and_flash(what, lambda: f"{what}: {cancel()}.{note}", unknown, ":material/block:")


def retry(battle_id: str) -> None:
    what = f"Battle {short_id(battle_id)}"

    def queue_again() -> str:
        usecases.retry_battle(battle_id, actor=session.actor())
        return f"{what} queued again; it resumes where it stopped."

    act_and_flash(what, queue_again, usecases.UnknownBattleError, ":material/replay:")


def act_and_flash(what: str, act: Callable[[], str], unknown: type[Exception], icon: str) -> None:
    """A button's callback: ``act()`` returns the toast to show; a refusal is shown instead."""
    try:
        said = act()
    except unknown:
        flash(f"{what} no longer exists.", ":material/error:")
    except (usecases.SubmitError, usecases.AccessRefused) as error:
        flash(str(error), ":material/error:")
    except usecases.JudgeRefused as refused:  # retrying an undecided battle checks its judge first
        flash(f"Not retried: the judge check failed: {inert(str(refused))}", ":material/gavel:")
    else:
        flash(said, icon)


def action_buttons(battle_id: str, status: str, outcome: str | None, key: str) -> None:
    """Cancel while a battle is queued or running; Retry once it ended in a way worth retrying."""
    if status in ("queued", "running"):
        action = ("Cancel", "cancel", ":material/stop_circle:", cancel, "Stop this battle at its next model call")
    elif status == "finished" and outcome in usecases.RETRYABLE:
        action = ("Retry", "retry", ":material/replay:", retry, "Queue it again: it resumes from its last message")
    else:
        return
    label, name, icon, on_click, help_text = action
    st.button(label, key=f"{key}-{name}-{battle_id}", icon=icon, on_click=on_click, args=(battle_id,), help=help_text)


# -- battle rows ------------------------------------------------------------------------------

ROW_WIDTHS = [1.5, 4.5, 2.2, 1.1, 2.2]


def battle_rows_header() -> None:
    cols = st.columns(ROW_WIDTHS, vertical_alignment="bottom")
    for col, title in zip(cols, ("Battle", "Agent and goal", "Messages", "Elapsed", ""), strict=True):
        col.caption(title)


def battle_row(row: BattleRow, section: str, at: dt.datetime) -> None:
    """One battle on one line; ``section`` keeps widget keys unique when it is listed twice."""
    with st.container(key=f"row-{section}-{row.battle_id}"):
        ident, what, progress, elapsed, actions = st.columns(ROW_WIDTHS, vertical_alignment="center")
        ident.markdown(f"`{short_id(row.battle_id)}`  \n{badge(row.state)}")
        what.markdown(f"**{inert(row.agent_model)}**  \n{inert(truncate(row.goal, 110))}")
        if row.outcome in ("failed", "timed_out", "undecided") and row.error:
            what.caption(inert(truncate(row.error, 140)))
        fraction = min(1.0, row.message_count / row.max_messages) if row.max_messages else 0.0
        progress.progress(fraction, text=f"{row.message_count} / {row.max_messages}")
        seconds = (
            row.elapsed_s if row.elapsed_s is not None else elapsed_s(row.created_at, row.started_at, row.ended_at, at)
        )
        waiting = "waiting " if row.status == "queued" else ""
        elapsed.markdown(f"{waiting}{format_duration(seconds)}")
        with actions.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.page_link(BATTLE_PAGE, label="Open", icon=":material/open_in_new:", query_params={"id": row.battle_id})
            action_buttons(row.battle_id, row.status, row.outcome, section)
