"""Driving the app with Streamlit's AppTest: open a page, find what sits next to a widget."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")


def open_app(timeout: float = 60) -> AppTest:
    """The app on its default page (the hub), after one run."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(page: str, at: AppTest | None = None, **query: str) -> AppTest:
    """``page`` (e.g. "ui/battle.py") with ``query`` as its URL query parameters."""
    at = at or open_app()
    at.query_params.clear()
    at.query_params.update(query)
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def nodes(at: AppTest) -> list[Any]:
    """Every element and block of the main area, in page order."""
    return list(at.main)


def element_after(at: AppTest, key: str) -> Any:
    """The first element (not a container) that follows the widget with ``key``."""
    found = False
    for node in nodes(at):
        if found and not hasattr(node, "children"):
            return node
        if getattr(node, "key", None) == key and not hasattr(node, "children"):
            found = True
    raise AssertionError(f"no element after the widget {key!r}" if found else f"no widget {key!r}")


def markdown_bodies(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def rerun_until(at: AppTest, predicate: Callable[[AppTest], Any], timeout: float, message: str) -> Any:
    """Re-run the app (as a live fragment would refresh) until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        value = predicate(at)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.2)


def iter_keys(at: AppTest) -> Iterator[str]:
    for node in nodes(at):
        node_key = getattr(node, "key", None)
        if node_key:
            yield node_key
