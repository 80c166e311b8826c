"""Pieces the pages share: live fragments, store reads that never raise, badges, battle rows.

Not a page itself (``streamlit_app.py`` lists the pages). Everything shown that a model or
a user wrote goes through ``sparring.render.inert_markdown``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from jobs import health
from sparring import formatting, usecases
from sparring.render import inert_markdown
from sparring.runtime import get_runtime
from sparring.store import ReadQuery, StoreBusy, StoreMissing, ui_queries
from sparring.store.ui_queries import BattleRow

log = logging.getLogger(__name__)

T = TypeVar("T")


SAMPLES = Path(__file__).resolve().parent.parent / "data"

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
RUN_BADGES: dict[str, tuple[str, str, str]] = {
    "queued": ("queued", "gray", ":material/schedule:"),
    "running": ("running", "blue", ":material/autorenew:"),
    "cancelling": ("cancelling", "gray", ":material/hourglass_top:"),
    "stopping": ("stopping: budget reached", "yellow", ":material/hourglass_top:"),
    "finished": ("finished", "green", ":material/check_circle:"),
    "cancelled": ("cancelled", "gray", ":material/block:"),
    "stopped": ("stopped: budget reached", "yellow", ":material/savings:"),
    "failed": ("failed", "orange", ":material/error:"),
}

OUTCOME_LEGEND = (
    "**achieved**: the adversary reached its goal (your agent gave in) · **held**: your agent resisted "
    "until the message cap · **undecided**: the judge gave no usable verdict on the last agent message, so "
    "nobody knows (left out of success rates) · **failed**: a model or provider error stopped the battle"
    " · **cancelled**: stopped on request before it ended · **timed out**: stopped at its time limit"
)


@functools.cache
def sample_json(name: str) -> tuple[dict[str, Any], ...]:
    """A checked-in sample file (data/goals.json, data/agents.json); empty if unreadable."""
    try:
        items = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("Could not read the sample file data/%s", name, exc_info=True)
        return ()
    return tuple(item for item in items if isinstance(item, dict) and item.get("name"))


def goal_library() -> dict[str, str]:
    """Ready-made goals from data/goals.json, by name."""
    return {str(item["name"]): str(item.get("goal", "")) for item in sample_json("goals.json")}


def agent_profiles() -> dict[str, dict[str, Any]]:
    """Saved profiles (the ``agents`` table) over the checked-in samples of the same name."""
    profiles = {str(item["name"]): {**item, "sample": True} for item in sample_json("agents.json")}
    saved = read(ui_queries.agent_profiles) or []
    profiles.update({str(item["name"]): {**item, "sample": False} for item in saved})
    return profiles


def inert(text: str | None) -> str:
    """Untrusted text as markdown that shows exactly that text."""
    return inert_markdown(text or "")


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def short_id(battle_id: str) -> str:
    return battle_id[:8]


def badge(state: str) -> str:
    label, colour, icon = BADGES.get(state, (state, "gray", ":material/help:"))
    return f":{colour}-badge[{icon} {label}]"


def run_badge(status: str) -> str:
    label, colour, icon = RUN_BADGES.get(status, (status, "gray", ":material/help:"))
    return f":{colour}-badge[{icon} {label}]"


CITATION = re.compile(r"\[battle:([0-9a-f]{16})\]")


def cited_battles(text: str) -> list[str]:
    """The battle ids a report cites as ``[battle:ID]``, in order, once each."""
    return list(dict.fromkeys(CITATION.findall(text or "")))


def inert_with_citations(text: str, linkable: Collection[str]) -> str:
    """Untrusted text shown as itself, except ``[battle:ID]`` citations of ``linkable`` ids,
    which become links to the Battle page. Any other citation stays plain text."""
    parts = []
    last = 0
    for match in CITATION.finditer(text or ""):
        parts.append(inert(text[last : match.start()]))
        battle_id = match.group(1)
        if battle_id in linkable:
            parts.append(f"[battle {short_id(battle_id)}]({BATTLE_URL}?id={battle_id})")
        else:
            parts.append(inert(match.group()))
        last = match.end()
    parts.append(inert((text or "")[last:]))
    return "".join(parts)


def format_money(usd: float | None) -> str:
    """Dollars with enough digits to see sim-sized amounts."""
    if usd is None or usd != usd:
        return "–"
    if usd == 0:
        return "$0"
    if usd < 0.01:
        return f"${usd:.4f}"
    if usd < 100:
        return f"${usd:,.2f}"
    return f"${usd:,.0f}"


def format_rate(rate: float | None, low: float | None = None, high: float | None = None) -> str:
    """'72% (95% CI 64%–79%)', or '–' when there is nothing to rate (``sparring.formatting``)."""
    return formatting.format_rate(rate, low, high)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def elapsed_s(
    created_at: dt.datetime, started_at: dt.datetime | None, ended_at: dt.datetime | None, at: dt.datetime
) -> float:
    """Run time once started (until now, or until the end); waiting time before that."""
    begin = started_at or created_at
    return max(0.0, ((ended_at or at) - begin).total_seconds())


def format_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_ago(at: dt.datetime | None, reference: dt.datetime) -> str:
    if at is None:
        return ""
    seconds = (reference - at).total_seconds()
    if seconds < 5:
        return "just now"
    return f"{format_duration(seconds)} ago"


def read(query: ReadQuery[T]) -> T | None:
    """Run ``query`` on a short read; on a locked or missing database, say so and return None."""
    try:
        return get_runtime().store.read(query, deadline_s=READ_DEADLINE_S)
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
        f"Battle {short_id(battle_id)}", lambda: usecases.cancel_battle(battle_id), usecases.UnknownBattleError
    )


def cancel_and_flash(what: str, cancel: Callable[[], str], unknown: type[Exception], note: str = "") -> None:
    """A Cancel button's callback: ``cancel()`` returns what happened, said in a toast."""
    try:
        result = cancel()
    except unknown:
        flash(f"{what} no longer exists.", ":material/error:")
    except usecases.SubmitError as error:
        flash(str(error), ":material/error:")
    else:
        flash(f"{what}: {result}.{note}", ":material/block:")


def retry(battle_id: str) -> None:
    try:
        usecases.retry_battle(battle_id)
    except usecases.UnknownBattleError:
        flash(f"Battle {short_id(battle_id)} no longer exists.", ":material/error:")
    except usecases.SubmitError as error:
        flash(str(error), ":material/error:")
    else:
        flash(f"Battle {short_id(battle_id)} queued again; it resumes where it stopped.", ":material/replay:")


def action_buttons(battle_id: str, status: str, outcome: str | None, key: str) -> None:
    if status in ("queued", "running"):
        st.button(
            "Cancel",
            key=f"{key}-cancel-{battle_id}",
            icon=":material/stop_circle:",
            on_click=cancel,
            args=(battle_id,),
            help="Stop this battle at its next model call",
        )
    elif status == "finished" and outcome in usecases.RETRYABLE:
        st.button(
            "Retry",
            key=f"{key}-retry-{battle_id}",
            icon=":material/replay:",
            on_click=retry,
            args=(battle_id,),
            help="Queue it again: it resumes from its last message",
        )


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
