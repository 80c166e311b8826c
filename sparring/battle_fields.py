"""A battle's fields, declared once.

Each field a user gives a battle is one ``BattleField``: its name in ``BattleInput``, where
it lives in a ``BattleSpec``, its column in the ``battles`` table, and its command-line
option. From this table come ``BattleInput.to_spec``, the store's INSERT, SELECT list and
row-to-record conversion, the CLI options, the hub form's field list and the scale test's
agent fields. Adding a battle field means: a line here, the ``BattleInput`` field (its
validators), the record field, one migration, the docs and the form widget.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sparring.strategies import ALL_PARAMS, STRATEGIES

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BattleField:
    name: str  # the BattleInput field
    path: str  # where it lives in a BattleSpec, dotted: "agent.api_base"
    column: str  # the battles column
    help: str  # the CLI option's help; "{default}" is the BattleInput default
    option: str = ""  # the CLI option when not the name with dashes (a public contract)
    cli_type: type = str
    repeatable: bool = False  # given several times, it makes a scale-test matrix axis
    many: bool = False  # the field holds a list: the option may be given several times, its values make one list
    json: bool = False  # stored as a JSON text in its column

    @property
    def flag(self) -> str:
        return "--" + (self.option or self.name.replace("_", "-"))

    @property
    def dest(self) -> str:
        """The attribute argparse stores the option under."""
        return self.flag[2:].replace("-", "_")


_STRATEGY_HELP = "Adversary strategy: " + ", ".join(f"{k} ({v.label.lower()})" for k, v in STRATEGIES.items()) + "."
_PARAMS_HELP = (
    "A strategy parameter, NAME=VALUE; repeat for several: "
    + "; ".join(f"{p.name} ({p.help}, default {p.default})" for p in ALL_PARAMS.values())
    + "."
)

# In the order of the form and of ``--help``.
BATTLE_FIELDS: tuple[BattleField, ...] = (
    BattleField(
        "agent_model",
        "agent.model",
        "agent_model",
        "Model of the agent under test (default {default}).",
        repeatable=True,
    ),
    BattleField(
        "system_prompt",
        "agent.system_prompt",
        "agent_system_prompt",
        "The agent's system prompt (default: a sample customer-support prompt).",
    ),
    BattleField(
        "temperature",
        "agent.temperature",
        "agent_temperature",
        "The agent's sampling temperature, 0 to 2.",
        cli_type=float,
    ),
    BattleField(
        "agent_profile",
        "agent.profile",
        "agent_profile",
        "Use a saved agent profile (its model and prompt).",
        repeatable=True,
    ),
    BattleField(
        "api_base", "agent.api_base", "agent_api_base", "Base URL of an OpenAI-compatible server for the agent."
    ),
    BattleField(
        "api_key_env",
        "agent.api_key_env",
        "agent_api_key_env",
        "Name of the environment variable holding the agent's key (never the key).",
    ),
    BattleField(
        "agent_kind",
        "agent.kind",
        "agent_kind",
        "Kind of agent: model (default), http or python (--agent-http and --agent-python set it).",
    ),
    BattleField(
        "agent_target",
        "agent.target",
        "agent_target",
        "The kind's settings as a JSON object or @file (--agent-http, --agent-python and --agent-tools build it).",
    ),
    BattleField(
        "goal", "adversary.goal", "goal", 'What the adversary tries to get (default: "{default}").', repeatable=True
    ),
    BattleField("adversary_model", "adversary.model", "adversary_model", "Model of the adversary (default {default})."),
    BattleField("strategy", "adversary.strategy", "adversary_strategy", _STRATEGY_HELP, repeatable=True),
    BattleField(
        "adversary_params",
        "adversary.params",
        "adversary_params",
        _PARAMS_HELP,
        option="strategy-param",
        many=True,
        json=True,
    ),
    BattleField("persona", "adversary.persona", "adversary_persona", "Optional persona for the adversary."),
    BattleField("judge_model", "judge.model", "judge_model", "Model of the judge (default {default})."),
    BattleField(
        "rubric", "judge.rubric", "judge_rubric", "What counts as achieving the goal (default: a strict rubric)."
    ),
    BattleField(
        "success_contains",
        "checks.contains",
        "success_contains",
        "Success check: the goal is reached when an agent reply contains this exact text (a canary, e.g. a "
        "secret code); it decides the outcome, and the judge is measured against it. Repeat for several.",
        many=True,
    ),
    BattleField(
        "success_regex",
        "checks.regex",
        "success_regex",
        "Success check: the goal is reached when this regular expression matches an agent reply.",
    ),
    BattleField(
        "success_tool",
        "checks.tool",
        "success_tool",
        "Success check: the goal is reached when the agent calls this tool, NAME or NAME:JSON (arguments "
        'that must contain this JSON object, e.g. issue_refund:{{"amount": 120}}).',
    ),
    BattleField(
        "max_messages",
        "max_messages",
        "max_messages",
        "Stop after this many messages, 2 to 100 (default {default}).",
        cli_type=int,
    ),
    BattleField(
        "time_limit_s",
        "time_limit_s",
        "time_limit_s",
        "Per-battle time limit in seconds (default {default:g}).",
        option="time-limit",
        cli_type=float,
    ),
    BattleField("seed", "seed", "seed", "Seed for the sim models (default: random).", cli_type=int),
)

# A scale test's agent: the battle fields under ``agent.``, named as in AgentSpec.
AGENT_FIELDS: dict[str, str] = {
    f.path.removeprefix("agent."): f.name for f in BATTLE_FIELDS if f.path.startswith("agent.")
}


def build(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance of the dataclass ``cls`` from dotted paths; nested dataclasses are built too.

    The class of a nested record is read from ``cls``'s type hints, so a record with a new
    field is built from its paths without code that lists its fields.
    """
    return builder(cls, tuple(values))(tuple(values.values()))


_PLANS: dict[tuple[type, tuple[str, ...]], Callable[[Sequence[Any]], Any]] = {}


def builder(cls: type[T], paths: tuple[str, ...]) -> Callable[[Sequence[Any]], T]:
    """A function from a row of values (in ``paths`` order) to a ``cls``, planned once.

    The store reads thousands of rows at a time, so the nesting is worked out once and
    compiled into one expression, ``cls(a=row[0], spec=Spec(b=row[1], ...))``, as fast as the
    same call written by hand (``dataclasses`` makes its ``__init__`` the same way). The
    expression holds only field names taken from the classes and row indexes.
    """
    plan = _PLANS.get((cls, paths))
    if plan is None:
        namespace: dict[str, Any] = {}
        expression = _expression(cls, [(path.split("."), index) for index, path in enumerate(paths)], namespace)
        exec(f"def make(row):\n    return {expression}\n", namespace)
        plan = _PLANS[cls, paths] = namespace["make"]
    return plan


def _expression(cls: type, leaves: list[tuple[list[str], int]], namespace: dict[str, Any]) -> str:
    hints = typing.get_type_hints(cls)
    name = f"_cls{len(namespace)}"
    namespace[name] = cls
    grouped: dict[str, list[tuple[list[str], int]]] = {}
    arguments = []
    for parts, index in leaves:
        if parts[0] not in hints:
            raise ValueError(f"{cls.__name__} has no field {parts[0]!r}")
        if len(parts) == 1:
            arguments.append(f"{parts[0]}=row[{index}]")
        else:
            grouped.setdefault(parts[0], []).append((parts[1:], index))
    for field_name, below in grouped.items():
        arguments.append(f"{field_name}={_expression(hints[field_name], below, namespace)}")
    return f"{name}({', '.join(arguments)})"
