"""An agent built in-process: a ``module:function`` the worker imports and calls.

The function takes the visible messages (``[{"role", "content"}, ...]``) and returns the
reply: a string, or ``{"reply": str, "tool_calls": [{"name": str, "arguments": {...},
"result": str}]}`` to report the tools it called. If it takes a ``session_id`` keyword it is
given one. It runs in the worker's thread, so it should not block forever: the battle's
time limit is checked before it is called, not during the call. What it raises or returns
badly is a recorded error (an ``llm_calls`` row), and the battle fails with it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

from sparring import records as r
from sparring.gateway import ModelCallError
from sparring.targets.base import TargetReply, ToolUse, TurnContext
from sparring.targets.config import TargetConfigError, load_python

MAX_REPLY_CHARS = 1_000_000


def check_findable(spec: str) -> None:
    """The callable's module can be found (without running it: that happens in the worker)."""
    module = spec.partition(":")[0]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as error:
        raise TargetConfigError("callable", f"cannot look up module {module}: {error}") from None
    if found is None:
        raise TargetConfigError("callable", f"no module named {module} on the Python path")


@functools.cache
def load_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attribute = spec.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    if not callable(value):
        raise TypeError(f"{spec} is not callable")
    return value  # type: ignore[no-any-return]


def _takes_session(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "session_id" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class PythonTarget:
    keeps_state = False

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.label = f"python:{spec}"

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PythonTarget:
        return cls(load_python(data))

    def reply(self, visible: list[dict[str, str]], *, session_id: str, seq: int, context: TurnContext) -> TargetReply:
        started_at, started = r.utcnow(), time.perf_counter()
        try:
            function = load_callable(self.spec)
            shown = [dict(m) for m in visible]  # a copy: the callable may keep or change it
            result = function(shown, session_id=session_id) if _takes_session(function) else function(shown)
            text, uses = _unpack(result)
        except Exception as error:  # noqa: BLE001 - the user's code: any failure is recorded, not raised through
            latency_ms = (time.perf_counter() - started) * 1000
            message = f"{type(error).__name__}: {error}"[:500]
            context.on_call(self._call(seq, started_at, latency_ms, context, error=message))
            raise ModelCallError(f"agent callable {self.spec} failed: {message}", "python", False) from None
        latency_ms = (time.perf_counter() - started) * 1000
        context.on_call(self._call(seq, started_at, latency_ms, context))
        return TargetReply(text, self.label, uses, latency_ms=latency_ms)

    def _call(
        self, seq: int, started_at: Any, latency_ms: float, context: TurnContext, error: str | None = None
    ) -> r.LLMCall:
        return r.LLMCall(
            battle_id=context.battle_id,
            seq=seq,
            purpose="agent",
            model=self.label,
            provider="python",
            attempt=1,
            started_at=started_at,
            latency_ms=latency_ms,
            error_type="python" if error else None,
            error=error,
            run_id=context.run_id,
        )


def _unpack(result: Any) -> tuple[str, tuple[ToolUse, ...]]:
    if isinstance(result, str):
        return _bounded(result), ()
    if isinstance(result, Mapping) and isinstance(result.get("reply"), str):
        calls = result.get("tool_calls") or []
        if not isinstance(calls, list):
            raise TypeError("tool_calls must be a list")
        return _bounded(result["reply"]), tuple(_tool_use(call) for call in calls)
    raise TypeError(f'returned {type(result).__name__}; return a string or {{"reply": str, "tool_calls": [...]}}')


def _tool_use(call: Any) -> ToolUse:
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise TypeError('each tool call must be {"name": str, "arguments": {...}, "result": str}')
    arguments = call.get("arguments") or {}
    if not isinstance(arguments, Mapping):
        raise TypeError(f"the arguments of tool call {call['name']} must be an object")
    return ToolUse(call["name"], dict(arguments), str(call.get("result", "")))


def _bounded(text: str) -> str:
    if len(text) > MAX_REPLY_CHARS:
        raise ValueError(f"the reply is over {MAX_REPLY_CHARS:,} characters")
    return text
