"""``python -m sparring serve``: the app's server, with the embedded consumer started with it.

Embedded mode: the in-process consumer starts with the server, not with the first browser
session, so work queued while no server ran (a ``--detach``ed battle, a scale test a restart
interrupted) resumes at once. Queue mode: workers run battles; this only starts Streamlit.

Streamlit starts first, with nothing else competing for the GIL; once it answers, a thread
imports what the first page needs and starts the embedded consumer, while the browser loads
Streamlit's front end (``python -m bench.coldstart --breakdown`` shows where a cold start goes).

Streamlit is started through its own command line (``streamlit.web.cli``, what ``streamlit
run`` calls), in this process: the same config loading (``.streamlit/config.toml`` next to
``streamlit_app.py`` is read whatever the working directory), signal handling and shutdown.
"""

from __future__ import annotations

import importlib
import logging
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sparring.settings import get_settings

if TYPE_CHECKING:
    from sparring.usecases import Dispatcher

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parents[1] / "streamlit_app.py"


LOOPBACK = "127.0.0.1"
# What the hub's first run imports beyond the server's own modules and the use cases (the
# wiring's): ``streamlit_app.py``'s imports and the hub page's (not the page itself: a page
# is run, not imported).
FIRST_PAGE_MODULES = (
    "sparring.access",
    "sparring.render",
    "sparring.store.reads",
    "ui.session",
    "ui.common",
    "ui.forms",
    "ui.state",
)


def streamlit_args(port: int, address: str | None) -> list[str]:
    """``streamlit run`` arguments. Always an address: Streamlit's own default is every interface,
    and whether another address is allowed was decided before (``sparring.access.serve_refusal``)."""
    args = ["run", str(APP), "--server.port", str(port), "--server.headless", "true"]
    args += ["--browser.gatherUsageStats", "false"]
    return [*args, "--server.address", address or LOOPBACK]


def _start_consumer() -> None:
    from jobs import embedded

    try:
        # litellm is imported later, once a first page is on screen (streamlit_app.py), or by
        # the first battle that calls a real model: importing it now would slow that page down.
        embedded.start(warm_up=False)
    except Exception:
        log.exception("Could not start the in-process consumer; the first page view tries again")


def _migrate() -> None:
    """Create or upgrade the database, alongside the other start-up work: DuckDB does most of it
    without the GIL, and a fresh store takes a quarter of a second. The consumer's start
    migrates too, a no-op after this (each step re-reads what is applied, under DuckDB's lock)."""
    from sparring.runtime import get_runtime

    try:
        get_runtime().store.migrate()
    except Exception:
        log.warning("Could not migrate the store ahead of the consumer's start", exc_info=True)


def _wait_until_listening(port: int, address: str | None, timeout_s: float = 30.0) -> None:
    """Until something accepts connections on the port (the server), or ``timeout_s``."""
    host = LOOPBACK if address in (None, "", "0.0.0.0") else "::1" if address == "::" else address
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)


def _start_up(port: int, address: str | None, embedded_mode: bool, dispatcher: Dispatcher | None) -> None:
    """Once the server answers: migrate the store (in another thread), wire the queue into the
    use cases, import what the first page needs, start the embedded consumer.

    Importing earlier would delay the server's first answer; later, the first page's run
    would import them itself. A page run that starts meanwhile waits for an import in
    progress (the import lock) and for the consumer's start (``embedded.start``'s lock).
    """
    _wait_until_listening(port, address)
    if embedded_mode and get_settings().record_sink == "duckdb":  # what the consumer's start migrates
        threading.Thread(target=_migrate, name="serve-migrate", daemon=True).start()
    if dispatcher is not None:  # python -m sparring serve leaves it to this thread; the consumer's work needs it
        from sparring import usecases

        usecases.wire(dispatcher)
    for module in FIRST_PAGE_MODULES:
        try:
            importlib.import_module(module)
        except Exception:
            log.warning("Could not import %s ahead of the first page", module, exc_info=True)
    if embedded_mode:
        _start_consumer()


def serve(port: int, address: str | None = None, dispatcher: Dispatcher | None = None) -> int:
    """Serve the app until stopped; in embedded mode, the consumer starts as soon as Streamlit answers.

    ``dispatcher``: wired into the use cases once Streamlit answers (``jobs.dispatch`` passes itself).
    """
    from streamlit.web import cli as streamlit_cli

    # In a thread: migrating waits while another process holds the database file (a
    # notebook), and the pages must come up meanwhile. A session that starts meanwhile
    # waits for this start and gets the same consumer.
    embedded_mode = get_settings().mode == "embedded"
    start_up = (port, address, embedded_mode, dispatcher)
    threading.Thread(target=_start_up, args=start_up, name="serve-start-up", daemon=True).start()
    try:
        streamlit_cli.main(args=streamlit_args(port, address), prog_name="streamlit", standalone_mode=False)
    finally:
        from jobs import embedded

        embedded.stop()  # battles in flight are queued again by the next start (any mode: "run here")
    return 0
