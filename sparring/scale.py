"""Scale tests: one battle configuration × N, or a matrix of them × N.

A run is planned once, deterministically, from its validated input: cells are the
product of agents × goals × strategies, battle ids derive from ``(run_id, cell, i)`` so
that re-submitting the fan-out creates nothing twice, and every cell gets the same seed
list, which pairs the cells: battle ``i`` of two cells faces the same adversary draws, so
their difference can be tested with McNemar's test.

Battle ``i``'s seed is a hash of the base seed and ``i`` (``seed_scheme`` "hash-v1", recorded
in the run's config), so runs with neighbouring base seeds draw unrelated samples. Runs
recorded without a ``seed_scheme`` used ``base + i`` and are rebuilt that way.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from sparring import records as r
from sparring.battle_fields import AGENT_FIELDS
from sparring.settings import HARD_MAX_MESSAGES, get_settings
from sparring.strategies import DEFAULT_STRATEGY, STRATEGIES, check_params, params_for
from sparring.targets import config as targets
from sparring.validation import (
    DEFAULT_ADVERSARY_MODEL,
    DEFAULT_GOAL,
    DEFAULT_JUDGE_MODEL,
    MAX_GOAL_CHARS,
    MAX_SEED,
    BattleInput,
    Canaries,
    CheckPattern,
    InvalidInput,
    JudgeModelName,
    ModelName,
    Persona,
    Rubric,
    StrategyName,
    StrategyParams,
    Text,
    ToolCheckText,
    field_errors,
)

DEFAULT_WRITER_MODEL = "sim/writer"
MAX_AXIS = 20
SEED_SCHEME = "hash-v1"
# Runs recorded before seed schemes existed: replicate i got base + i, which made runs with
# neighbouring base seeds share all but one of their battles.
LEGACY_SEED_SCHEME = "offset"
SEED_SCHEMES = (SEED_SCHEME, LEGACY_SEED_SCHEME)
# 31 bits: the range of a random base seed, and one every provider that takes a seed accepts.
SEED_BITS = 31


def _agent_fields() -> dict[str, Any]:
    """BattleInput's agent fields under AgentSpec's names, with their validators and defaults."""
    fields = BattleInput.model_fields
    return {name: (fields[battle].annotation, copy.copy(fields[battle])) for name, battle in AGENT_FIELDS.items()}


# Derived, not written out again: a scale test's agent is held to the same checks as a battle's.
_AgentFields: Any = create_model("_AgentFields", __config__=ConfigDict(extra="forbid", frozen=True), **_agent_fields())


class AgentInput(_AgentFields):  # type: ignore[misc]
    """One agent of a matrix: a model and its prompt (maybe from a saved profile)."""


class ScaleInput(BaseModel):
    """A scale test as a user describes it (form, CLI, task payload)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[Text, Field(min_length=1, max_length=200)] = "Scale test"
    runs: Annotated[int, Field(ge=1)] = 20
    agents: Annotated[list[AgentInput], Field(min_length=1, max_length=MAX_AXIS)] = [AgentInput()]
    goals: Annotated[
        list[Annotated[Text, Field(min_length=1, max_length=MAX_GOAL_CHARS)]], Field(min_length=1, max_length=MAX_AXIS)
    ] = [DEFAULT_GOAL]
    strategies: Annotated[list[StrategyName], Field(min_length=1, max_length=20)] = [DEFAULT_STRATEGY]
    # One set for the whole matrix: each cell's battle takes the parameters of its strategy.
    adversary_params: StrategyParams = {}
    adversary_model: ModelName = DEFAULT_ADVERSARY_MODEL
    persona: Persona = None
    judge_model: JudgeModelName = DEFAULT_JUDGE_MODEL
    rubric: Rubric = None
    # The goals' exact success checks, the same for every cell (a matrix of goals shares them).
    success_contains: Canaries = ()
    success_regex: CheckPattern = None
    success_tool: ToolCheckText = None
    max_messages: Annotated[int, Field(ge=2, le=HARD_MAX_MESSAGES)] = 25
    time_limit_s: Annotated[float, Field(gt=0, le=24 * 3600, allow_inf_nan=False)] = 900.0
    seed: Annotated[int | None, Field(ge=0, le=MAX_SEED)] = None
    budget_usd: Annotated[float | None, Field(gt=0, le=1_000_000, allow_inf_nan=False)] = None
    summary_model: ModelName = DEFAULT_WRITER_MODEL
    # Stopping rules (issue 21): a cell stops once its anytime-valid interval is this narrow, or
    # lies wholly on one side of this rate; ``runs`` is then the most a cell runs.
    stop_at_halfwidth: Annotated[float | None, Field(gt=0, le=0.5, allow_inf_nan=False)] = None
    stop_at_threshold: Annotated[float | None, Field(gt=0, lt=1, allow_inf_nan=False)] = None

    @model_validator(mode="after")
    def _limits(self) -> ScaleInput:
        settings = get_settings()
        if self.runs > settings.max_runs_per_cell:
            raise ValueError(f"runs: at most {settings.max_runs_per_cell} runs per cell")
        if len(set(self.goals)) != len(self.goals):
            raise ValueError("goals: each goal must be different")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategies: each strategy must be different")
        taken = {p.name for name in self.strategies for p in STRATEGIES[name].params}
        for name in self.adversary_params or {}:
            if name not in taken:
                raise ValueError(f"adversary_params: no strategy of this test takes {name!r}")
        if self.adversary_params:
            checked: dict[str, int] = {}
            for strategy in self.strategies:
                try:
                    checked.update(check_params(strategy, params_for(strategy, self.adversary_params)))
                except ValueError as error:
                    raise ValueError(f"adversary_params: {error}") from None
            object.__setattr__(self, "adversary_params", checked)
        total = self.cell_count * self.runs
        if total > settings.max_battles_per_run:
            raise ValueError(
                f"runs: {self.cell_count} cells × {self.runs} runs = {total} battles, more than the limit of "
                f"{settings.max_battles_per_run} per scale test (SPARRING_MAX_BATTLES_PER_RUN)"
            )
        for index, data in enumerate(self.battle_inputs()):
            try:
                BattleInput.model_validate(data)
            except ValidationError as error:
                problems = field_errors(error)
                field_name, message = next(iter(problems.items()))
                where = (
                    "agents" if field_name.startswith(("agent", "system_prompt", "temperature", "api_")) else field_name
                )
                raise ValueError(f"{where}: cell {index + 1}: {message}") from None
        return self

    @property
    def cell_count(self) -> int:
        return len(self.agents) * len(self.goals) * len(self.strategies)

    @property
    def total_battles(self) -> int:
        return self.cell_count * self.runs

    def cells(self) -> Iterator[tuple[AgentInput, str, str]]:
        return itertools.product(self.agents, self.goals, self.strategies)

    def battle_inputs(self) -> Iterator[dict[str, Any]]:
        """The battle fields of each cell (without the seed), in cell order."""
        for agent, goal, strategy in self.cells():
            params = params_for(strategy, self.adversary_params or {})
            yield {
                **{battle: getattr(agent, name) for name, battle in AGENT_FIELDS.items()},
                "goal": goal,
                "adversary_model": self.adversary_model,
                "strategy": strategy,
                **({"adversary_params": params} if params else {}),  # absent: the cell keys of before
                "persona": self.persona,
                "judge_model": self.judge_model,
                "rubric": self.rubric,
                "max_messages": self.max_messages,
                "time_limit_s": self.time_limit_s,
                **self._checks(),
            }

    def _checks(self) -> dict[str, Any]:
        """The checks given, by field; none when there are none, so a cell's key is as before checks existed."""
        checks = {"success_contains": list(self.success_contains), "success_regex": self.success_regex}
        checks["success_tool"] = self.success_tool
        return {name: value for name, value in checks.items() if value}


def validate_scale(data: dict[str, Any]) -> ScaleInput:
    try:
        return ScaleInput.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None


def profile_agent(name: str, profile: dict[str, Any]) -> dict[str, Any]:
    """A saved agent profile as ``AgentInput`` fields (its name kept as ``profile``); unset fields left out."""
    agent = {
        "model": profile.get("model") or "",
        "system_prompt": profile.get("system_prompt") or "",
        "temperature": profile.get("temperature"),
        "profile": name,
        "api_base": profile.get("api_base"),
        "api_key_env": profile.get("api_key_env"),
        "kind": profile.get("kind"),
        "target": profile.get("target"),
    }
    return {field: value for field, value in agent.items() if value is not None}


def agent_errors(agents: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Which agent a problem with ``agents`` belongs to: each (where, fields) is checked on its own."""
    found = {}
    for where, agent in agents:
        try:
            validate_scale({"agents": [agent], "runs": 1})
        except InvalidInput as error:
            message = error.errors.get("agents")
            if message:
                found[where] = message.removeprefix("cell 1: ")
    return found


@dataclass(frozen=True)
class Cell:
    index: int
    key: str
    label: str
    battle: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    run_id: str
    name: str
    runs: int
    base_seed: int
    cells: tuple[Cell, ...]
    config: dict[str, Any]
    seed_scheme: str = SEED_SCHEME

    @property
    def total(self) -> int:
        return len(self.cells) * self.runs

    def seeds(self) -> list[int]:
        """The seed of each replicate, shared by every cell."""
        return [battle_seed(self.base_seed, replicate, self.seed_scheme) for replicate in range(self.runs)]

    def battles(self) -> Iterator[r.BattleCreated]:
        """Every battle of the run, deterministic ids and seeds (the same list in every cell)."""
        seeds = self.seeds()
        for cell in self.cells:
            for replicate in range(self.runs):
                spec = BattleInput.model_validate({**cell.battle, "seed": seeds[replicate]}).to_spec()
                yield r.BattleCreated(
                    battle_id=battle_id(self.run_id, cell.index, replicate),
                    spec=spec,
                    run_id=self.run_id,
                    cell_key=cell.key,
                    cell_index=cell.index,
                    replicate=replicate,
                )


def battle_id(run_id: str, cell_index: int, replicate: int) -> str:
    return hashlib.sha256(f"{run_id}:{cell_index}:{replicate}".encode()).hexdigest()[:16]


def battle_seed(base_seed: int, replicate: int, scheme: str = SEED_SCHEME) -> int:
    """Replicate ``replicate``'s seed: a hash of the base seed and the replicate, or the legacy offset."""
    if scheme == LEGACY_SEED_SCHEME:
        return base_seed + replicate
    if scheme != SEED_SCHEME:
        raise ValueError(f"unknown seed scheme {scheme!r}: expected one of {', '.join(SEED_SCHEMES)}")
    digest = hashlib.blake2b(f"sparring-seed:{scheme}:{base_seed}:{replicate}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


def agent_name(battle: dict[str, Any]) -> str:
    """The agent of a cell as people know it: its profile, else its model, endpoint or callable."""
    if battle.get("agent_profile"):
        return str(battle["agent_profile"])
    kind = battle.get("agent_kind") or "model"
    try:
        settings = targets.loads(battle.get("agent_target"))
    except ValueError:
        settings = {}
    if kind == "http":
        return str(settings.get("url", "http agent"))
    if kind == "python":
        return "python:" + str(settings.get("callable", "?"))
    return str(battle["agent_model"]) + (" + tools" if settings.get("tools") else "")


def cell_label(battle: dict[str, Any], varying: set[str]) -> str:
    """A short name for a cell that shows only what varies across the matrix."""
    parts = []
    if "agent" in varying or not varying:
        parts.append(agent_name(battle))
    if "goal" in varying:
        goal = battle["goal"]
        parts.append(goal if len(goal) <= 40 else goal[:39] + "…")
    if "strategy" in varying:
        parts.append(battle["strategy"])
    return " · ".join(parts)


def plan_run(scale: ScaleInput, run_id: str | None = None) -> Plan:
    run_id = run_id or r.new_id()
    base_seed = scale.seed if scale.seed is not None else secrets.randbelow(2**31)
    varying = {
        name
        for name, axis in (("agent", scale.agents), ("goal", scale.goals), ("strategy", scale.strategies))
        if len(axis) > 1
    }
    cells = []
    for index, battle in enumerate(scale.battle_inputs()):
        key = hashlib.sha1(json.dumps(battle, sort_keys=True).encode()).hexdigest()[:10]
        cells.append(Cell(index, key, cell_label(battle, varying), battle))
    config = {
        "input": scale.model_dump(mode="json"),
        "base_seed": base_seed,
        "seed_scheme": SEED_SCHEME,
        "cells": [{"index": c.index, "key": c.key, "label": c.label, "battle": c.battle} for c in cells],
    }
    return Plan(run_id, scale.name, scale.runs, base_seed, tuple(cells), config)


def plan_from_config(run_id: str, name: str, runs: int, config: dict[str, Any]) -> Plan:
    """Rebuild a stored run's plan (the fan-out task does this from the store)."""
    cells = tuple(Cell(c["index"], c["key"], c["label"], c["battle"]) for c in config["cells"])
    scheme = str(config.get("seed_scheme", LEGACY_SEED_SCHEME))
    return Plan(run_id, name, runs, int(config["base_seed"]), cells, config, scheme)


def run_created(plan: Plan, scale: ScaleInput) -> r.RunCreated:
    return r.RunCreated(
        run_id=plan.run_id,
        name=plan.name,
        config=plan.config,
        runs_per_cell=plan.runs,
        total_battles=plan.total,
        budget_usd=scale.budget_usd,
    )
