"""The agent under test, of any kind: a model (with optional tools), an HTTP endpoint, or a
Python callable. The engine asks a ``Target`` for the agent's reply and stores what it gets;
``build_target`` makes the target a battle's ``AgentSpec`` describes.

Every call a target makes is recorded through the turn's ``on_call`` as an ``LLMCall``, and
HTTP and model calls go through the gateway's policy (retries, limits, breaker).
"""

from __future__ import annotations

from sparring import records as r
from sparring.gateway import ModelCallError
from sparring.targets.base import Target, TargetReply, ToolUse, TurnContext
from sparring.targets.config import TargetConfigError, loads, parse_target

__all__ = ["Target", "TargetConfigError", "TargetReply", "ToolUse", "TurnContext", "build_target", "parse_target"]


def build_target(agent: r.AgentSpec) -> Target:
    """The target for ``agent``; its configuration was checked when the battle was created.

    Settings that no longer load (a battle stored by another version) fail the battle with
    the reason, as a permanent agent error."""
    try:
        return _build(agent)
    except TargetConfigError as error:
        raise ModelCallError(f"agent settings: {error}", "bad_request", False) from None


def _build(agent: r.AgentSpec) -> Target:
    kind = agent.kind or "model"
    data = loads(agent.target)
    if kind == "http":
        from sparring.targets.http import HttpTarget

        return HttpTarget.from_data(data)
    if kind == "python":
        from sparring.targets.python import PythonTarget

        return PythonTarget.from_data(data)
    from sparring.targets.model import ModelTarget

    return ModelTarget.from_spec(agent, data)
