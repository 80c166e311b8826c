"""A model and its system prompt (today's agent), with optional tools.

With tools, one agent turn may take several model calls: the model asks for tools, gets
each tool's canned result (``Tool.answer``), and is called again, at most
``MAX_TOOL_ROUNDS`` times, until it answers in text. Every call is an ``llm_calls`` row with
the turn's ``seq``; the tools it called come back as ``ToolUse``s for the engine to store.
"""

from __future__ import annotations

import json
from typing import Any

from sparring import records as r
from sparring.gateway import ModelRequest, WireToolCall
from sparring.targets.base import TargetReply, ToolUse, TurnContext
from sparring.targets.config import MAX_TOOL_ROUNDS, Tool, load_model


class ModelTarget:
    keeps_state = False

    def __init__(self, agent: r.AgentSpec, tools: tuple[Tool, ...] = ()) -> None:
        self.agent = agent
        self.tools = {tool.name: tool for tool in tools}
        self.schemas = [tool.schema for tool in tools] or None

    @classmethod
    def from_spec(cls, agent: r.AgentSpec, data: dict[str, Any]) -> ModelTarget:
        return cls(agent, load_model(data))

    def reply(self, visible: list[dict[str, str]], *, session_id: str, seq: int, context: TurnContext) -> TargetReply:
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.agent.system_prompt}, *visible]
        uses: list[ToolUse] = []
        replies = []
        for _ in range(MAX_TOOL_ROUNDS + 1):
            reply = context.gateway.complete(self._request(messages, seq, context), on_call=context.on_call)
            replies.append(reply)
            if not reply.tool_calls or not self.tools:
                break
            messages.append(_asked(reply.text, reply.tool_calls))
            for wire in reply.tool_calls:
                use = self._use(wire.name, wire.arguments)
                uses.append(use)
                messages.append({"role": "tool", "tool_call_id": wire.call_id, "content": use.result})
        costs = [x.cost_usd for x in replies if x.cost_usd is not None]
        return TargetReply(
            text=reply.text,
            model=reply.model,
            tool_uses=tuple(uses),
            prompt_tokens=sum(x.prompt_tokens for x in replies),
            completion_tokens=sum(x.completion_tokens for x in replies),
            latency_ms=sum(x.latency_ms for x in replies),
            cost_usd=sum(costs) if costs else None,
        )

    def _request(self, messages: list[dict[str, Any]], seq: int, context: TurnContext) -> ModelRequest:
        agent = self.agent
        return ModelRequest(
            model=agent.model,
            messages=list(messages),
            purpose="agent",
            temperature=agent.temperature,
            seed=context.seed,
            api_base=agent.api_base,
            api_key_env=agent.api_key_env,
            battle_id=context.battle_id,
            seq=seq,
            run_id=context.run_id,
            deadline=context.deadline,
            tools=self.schemas,
        )

    def _use(self, name: str, arguments_json: str) -> ToolUse:
        try:
            arguments = json.loads(arguments_json or "{}")
        except ValueError:
            arguments = {"_unparsed": arguments_json[:2000]}
        if not isinstance(arguments, dict):
            arguments = {"_value": arguments}
        tool = self.tools.get(name)
        result = tool.answer(arguments) if tool is not None else f"error: there is no tool named {name}"
        return ToolUse(name, arguments, result)


def _asked(text: str, calls: tuple[WireToolCall, ...]) -> dict[str, Any]:
    """The model's tool request as it goes back into the conversation."""
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
        ],
    }
