"""The target seam: one method, ``reply``, and what it returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sparring.gateway import CallSink, Gateway


@dataclass(frozen=True)
class ToolUse:
    """A tool the agent called during its turn, and the (canned or reported) result."""

    name: str
    arguments: dict[str, Any]
    result: str = ""

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class TargetReply:
    text: str
    model: str  # what answered, as stored on the message: a model name, an endpoint, a callable
    tool_uses: tuple[ToolUse, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None


@dataclass(frozen=True)
class TurnContext:
    """What a target needs from the battle to make (and record) its calls."""

    gateway: Gateway
    on_call: CallSink
    battle_id: str
    run_id: str | None = None
    deadline: float | None = None
    seed: int | None = None
    should_stop: Callable[[], bool] = field(default=lambda: False)


class Target(Protocol):
    @property
    def keeps_state(self) -> bool:
        """True when the target keeps its own conversation (a stateful HTTP session): it is
        sent only the latest message, and a strategy cannot roll it back."""
        ...

    def reply(self, visible: list[dict[str, str]], *, session_id: str, seq: int, context: TurnContext) -> TargetReply:
        """The agent's reply to the conversation it can see (``{"role", "content"}`` dicts,
        oldest first, ending with the adversary's latest message). ``session_id`` is stable
        for one conversation; ``seq`` is the agent message's number (for the call records).
        Raises ``ModelCallError`` when the agent cannot answer (recorded, the battle fails)."""
        ...
