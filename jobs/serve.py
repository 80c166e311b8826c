"""``python -m sparring serve``: the app's server, with the embedded consumer started first.

Embedded mode: the in-process consumer starts with the server, not with the first browser
session, so work queued while no server ran (a ``--detach``ed battle, a scale test a restart
interrupted) resumes at once. Queue mode: workers run battles; this only starts Streamlit.

Streamlit is started through its own command line (``streamlit.web.cli``, what ``streamlit
run`` calls), in this process: the same config loading (``.streamlit/config.toml`` next to
``streamlit_app.py`` is read whatever the working directory), signal handling and shutdown.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from jobs import embedded
from sparring.settings import get_settings

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parents[1] / "streamlit_app.py"


LOOPBACK = "127.0.0.1"


def streamlit_args(port: int, address: str | None) -> list[str]:
    """``streamlit run`` arguments. Always an address: Streamlit's own default is every interface,
    and whether another address is allowed was decided before (``sparring.access.serve_refusal``)."""
    args = ["run", str(APP), "--server.port", str(port), "--server.headless", "true"]
    args += ["--browser.gatherUsageStats", "false"]
    return [*args, "--server.address", address or LOOPBACK]


def _start_consumer() -> None:
    try:
        # litellm is imported later, once a first page is on screen (streamlit_app.py), or by
        # the first battle that calls a real model: importing it now would slow that page down.
        embedded.start(warm_up=False)
    except Exception:
        log.exception("Could not start the in-process consumer; the first page view tries again")


def serve(port: int, address: str | None = None) -> int:
    """Start the embedded consumer (embedded mode), then serve the app until stopped."""
    from streamlit.web import cli as streamlit_cli

    if get_settings().mode == "embedded":
        # In a thread: migrating waits while another process holds the database file (a
        # notebook), and the pages must come up meanwhile. A session that starts meanwhile
        # waits for this start and gets the same consumer.
        threading.Thread(target=_start_consumer, name="embedded-start", daemon=True).start()
    try:
        streamlit_cli.main(args=streamlit_args(port, address), prog_name="streamlit", standalone_mode=False)
    finally:
        embedded.stop()  # battles in flight are queued again by the next start
    return 0
