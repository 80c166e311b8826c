"""The Scale tests form's agents as ``ScaleInput`` fields (``sparring.scale``): profiles, and errors per agent."""

from __future__ import annotations

import pytest

from sparring.scale import agent_errors, profile_agent, validate_scale
from sparring.validation import InvalidInput


def test_a_profile_becomes_agent_fields_with_its_name_and_without_unset_ones() -> None:
    profile = {"model": "sim/agent", "system_prompt": "Be kind.", "temperature": None, "sample": True}
    assert profile_agent("Support bot", profile) == {
        "model": "sim/agent",
        "system_prompt": "Be kind.",
        "profile": "Support bot",
    }
    checked = validate_scale({"agents": [profile_agent("Support bot", profile)], "goals": ["g"], "runs": 1})
    assert checked.agents[0].profile == "Support bot"


def test_each_agent_is_checked_on_its_own_so_its_error_lands_at_it() -> None:
    bad_url = profile_agent("p", {"model": "openai/gpt-4o", "system_prompt": "x", "api_base": "ftp://x"})
    agents = [
        ("agent:0", {"model": "", "system_prompt": "x"}),
        ("agent:1", {"model": "sim/agent"}),
        ("profile:p", bad_url),
    ]
    with pytest.raises(InvalidInput):  # together they only say "agents"
        validate_scale({"agents": [agent for _, agent in agents], "goals": ["g"], "runs": 1})
    found = agent_errors(agents)
    assert set(found) == {"agent:0", "profile:p"}
    assert found["agent:0"].startswith("Enter a model")
    assert "http://" in found["profile:p"] and not found["profile:p"].startswith("cell 1")
