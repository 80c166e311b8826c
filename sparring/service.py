"""Application operations shared by the CLI, the pages and the jobs.

These hold no UI and no queue: creating a battle is validating its input and committing
its row; running one is handing it to the engine with this process's store and gateway.
"""

from __future__ import annotations

from typing import Any

from sparring import records as r
from sparring.engine import BattleControl, BattleResult, run_battle
from sparring.runtime import get_runtime
from sparring.validation import AgentProfileInput, BattleInput, InvalidInput, field_errors, validate_battle

__all__ = ["InvalidInput", "create_battle", "run_inline", "save_agent"]


def create_battle(
    data: dict[str, Any] | BattleInput,
    *,
    battle_id: str | None = None,
) -> str:
    """Validate ``data`` and record a new queued battle; return its id."""
    battle = data if isinstance(data, BattleInput) else validate_battle(data)
    battle_id = battle_id or r.new_id()
    get_runtime().sink.write([r.BattleCreated(battle_id, battle.to_spec())])
    return battle_id


def run_inline(battle_id: str, control: BattleControl | None = None, worker: str | None = None) -> BattleResult:
    """Run (or resume) a battle in this process, in the foreground."""
    runtime = get_runtime()
    return run_battle(
        battle_id,
        source=runtime.source,
        sink=runtime.sink,
        gateway=runtime.gateway,
        control=control,
        worker=worker,
    )


def save_agent(data: dict[str, Any]) -> str:
    from pydantic import ValidationError

    try:
        profile = AgentProfileInput.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None
    get_runtime().sink.write([profile.to_record()])
    return profile.name
