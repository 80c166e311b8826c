"""The checked-in samples a new user starts from: ready-made goals and agent profiles (``data/``).

Both forms offer them (the hub's pickers, the Scale tests page's multiselects); a saved
profile of the same name replaces its sample (the pages merge the ``agents`` table over these).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent.parent / "data"


@functools.cache
def sample_items(name: str) -> tuple[dict[str, Any], ...]:
    """The named items of a sample file (``goals.json``, ``agents.json``); empty if unreadable."""
    try:
        items = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("Could not read the sample file data/%s", name, exc_info=True)
        return ()
    return tuple(item for item in items if isinstance(item, dict) and item.get("name"))


def goal_library() -> dict[str, str]:
    """Ready-made goals from data/goals.json, by name."""
    return {str(item["name"]): str(item.get("goal", "")) for item in sample_items("goals.json")}


def sample_profiles() -> dict[str, dict[str, Any]]:
    """Agent profiles from data/agents.json, by name, each marked ``sample``."""
    return {str(item["name"]): {**item, "sample": True} for item in sample_items("agents.json")}


CHECK_FIELDS = ("success_contains", "success_regex", "success_tool")


def goal_checks() -> dict[str, dict[str, Any]]:
    """The exact success checks a library goal brings (``success_contains``, ...), by goal name; {} for none."""
    return {
        str(item["name"]): {field: item[field] for field in CHECK_FIELDS if item.get(field)}
        for item in sample_items("goals.json")
    }
