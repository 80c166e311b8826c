"""Sparring's Streamlit entry point: start background work once, then route to a page."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from jobs import dispatch
from sparring import access
from sparring.settings import get_settings

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


@st.cache_resource(show_spinner=False)
def _warm_up_models() -> bool:
    """Import litellm in a background thread, once per server process.

    Called after the first page is on screen: the import takes seconds of CPU and holds
    the GIL for much of it, so starting it earlier would slow the first render down.
    """
    from jobs.consumer import warm_up_in_background

    warm_up_in_background()
    return True


dispatch.wire()  # the pages launch, cancel and retry through the use cases, which reach the queue here
settings = get_settings()
if settings.mode == "embedded":
    _in_process_consumer(str(settings.data_dir.resolve()), settings.namespace)

if settings.allow_anonymous and not access.signin_configured(access.secrets_files()):
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
