"""Agents built in-process, for ``--agent-python tests.fakes.python_agent:<function>``."""

from __future__ import annotations

from typing import Any

from sparring.sim import CONCESSION

SEEN: dict[str, list[int]] = {}  # session id -> how many messages each call was given


def reply(messages: list[dict[str, str]]) -> str:
    return f"python agent saw {len(messages)} messages"


def refunding(messages: list[dict[str, str]], session_id: str) -> dict[str, Any]:
    """Calls its refund tool on the second turn; only the tool's result gives the goal away."""
    SEEN.setdefault(session_id, []).append(len(messages))
    if len(messages) < 3:
        return {"reply": "Let me check your order."}
    call = {"name": "issue_refund", "arguments": {"order": "A-17", "amount": 120}, "result": CONCESSION}
    return {"reply": "Done, see above.", "tool_calls": [call]}


def broken(messages: list[dict[str, str]]) -> str:
    raise RuntimeError("the agent's database is down")


def wrong_shape(messages: list[dict[str, str]]) -> Any:
    return 42
