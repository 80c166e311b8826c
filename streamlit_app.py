"""Sparring's Streamlit entry point: start background work once, then route to a page."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from jobs import dispatch
from sparring import access, usecases
from sparring.render import inert_markdown
from sparring.settings import get_settings
from ui import session

if TYPE_CHECKING:
    from jobs.embedded import EmbeddedConsumer

st.set_page_config(page_title="Sparring", page_icon="🥊", layout="wide")


def _stop(consumer: EmbeddedConsumer) -> None:
    consumer.stop()


@st.cache_resource(show_spinner=False, on_release=_stop)
def _in_process_consumer(data_dir: str, namespace: str) -> EmbeddedConsumer:
    """Embedded mode: this server process runs battles itself (started once per process).

    The arguments key the cache: other settings get their own consumer.
    """
    from jobs import embedded

    return embedded.start(warm_up=False)


# When the first run ends, its page is still on its way to the browser (the browser may
# still fetch parts of Streamlit's front end): the warm-up waits this long more.
WARM_UP_DELAY_S = 5.0


@st.cache_resource(show_spinner=False)
def _warm_up_models() -> bool:
    """Import litellm in a background thread, once per server process.

    Started after the first page's run, and waits ``WARM_UP_DELAY_S`` more: the import takes
    seconds of CPU and holds the GIL for much of it, so starting it earlier would slow the
    first page's delivery down (``python -m bench.coldstart --breakdown`` shows it if it does).
    """
    from jobs.consumer import warm_up_in_background

    warm_up_in_background(delay_s=WARM_UP_DELAY_S)
    return True


def _providers() -> list[str | None]:
    """The sign-in providers in Streamlit's secrets: ``[auth.<name>]`` tables, or the one in ``[auth]``."""
    auth = st.secrets.get("auth", {})
    named = [name for name, value in auth.items() if hasattr(value, "items") and "client_id" in value]
    return list(named) or [None]


def _sign_in_page() -> None:
    st.title("Sparring")
    st.write("Sign in to see and launch battles.")
    for provider in _providers():
        label = f"Sign in with {provider.title()}" if provider else "Sign in"
        st.button(
            label,
            key=f"sign_in_{provider or 'default'}",
            icon=":material/login:",
            on_click=st.login,
            args=(provider,) if provider else (),
        )


def _sign_out(me: access.Actor) -> None:
    usecases.record_sign_in(me, "sign_out")
    st.logout()


def _signed_in_bar(me: access.Actor) -> None:
    """Who is signed in, their role, and the way out; once per session, the sign-in is audited."""
    if st.session_state.get("_audited_sign_in") != me.identity:
        usecases.record_sign_in(me)
        st.session_state["_audited_sign_in"] = me.identity
    who, out = st.columns([6, 1], vertical_alignment="center")
    role = me.role or "no role"
    who.caption(f"Signed in as **{inert_markdown(me.identity)}** · {role}")
    out.button("Sign out", key="sign_out", icon=":material/logout:", on_click=_sign_out, args=(me,))
    if me.role is None:
        st.error(
            "You are signed in, but the roles file gives you no access here. Ask an admin to add you.",
            icon=":material/lock:",
        )
        st.stop()


dispatch.wire()  # the pages launch, cancel and retry through the use cases, which reach the queue here
settings = get_settings()
if session.signin_on():
    # A use case called without the page's actor is refused, never run as the shell's admin.
    access.set_default_actor(access.Actor(session.SIGNED_OUT, None))
    if not st.user.is_logged_in:
        _sign_in_page()
        st.stop()
    _signed_in_bar(session.actor())
if settings.mode == "embedded":
    _in_process_consumer(str(settings.data_dir.resolve()), settings.namespace)

if settings.allow_anonymous and not session.signin_on():
    st.warning(
        "**No sign-in**: SPARRING_ALLOW_ANONYMOUS=1 is set, so anyone who reaches this app can launch battles "
        "and read every transcript.",
        icon=":material/lock_open:",
    )

PAGES = [
    st.Page("ui/hub.py", title="Hub", icon=":material/stadium:", default=True),
    st.Page("ui/battle.py", title="Battle", icon=":material/forum:", url_path="battle"),
    st.Page("ui/scale_tests.py", title="Scale tests", icon=":material/query_stats:", url_path="scale_tests"),
    st.Page("ui/judge.py", title="Check the judge", icon=":material/fact_check:", url_path="judge"),
    st.Page("ui/health.py", title="Health", icon=":material/monitor_heart:", url_path="health"),
    st.Page("ui/data.py", title="Data", icon=":material/table_view:", url_path="data"),
]
st.navigation(PAGES, position="top").run()
if settings.mode == "embedded":
    _warm_up_models()
