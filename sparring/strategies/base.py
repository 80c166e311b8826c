"""The strategy seam: what a strategy sees and the moves it can ask the engine for.

A strategy is a planner. ``next_move`` reads the battle's committed state (every message,
verdict and private note so far) and returns one move; the engine makes the model call the
move needs, commits what came of it, and asks again. Because a move is a function of the
committed rows only, a battle resumed after a crash plans exactly the move it was about to
make, and nothing is doubled.

Rows a strategy works with:

- ``user``/``assistant`` messages of a ``conversation`` (1, 2, ...): what the adversary said
  to the target and what the target answered; ``rolled_back`` ones are no longer seen by it;
- ``note`` messages: the adversary's private notes (a JSON object with a ``kind``), which
  never reach the target: GOAT's observation and thought, PAIR's improvement, TAP's
  evaluation, crescendo's reason for a roll-back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from sparring import records as r


@dataclass(frozen=True)
class Param:
    """A numeric strategy parameter: its name, published default and allowed range."""

    name: str
    default: int
    low: int
    high: int
    help: str


@dataclass(frozen=True)
class WorstCase:
    """The most calls of each kind one battle can make (for the scale form's cost estimate)."""

    adversary: int
    agent: int
    judge: int
    basis: str


@dataclass(frozen=True)
class Ask:
    """Ask the adversary model; its answer becomes a note and/or a message to the target.

    ``schema`` None: the answer is the message itself (the template strategies). Otherwise
    the answer must be one JSON object of that shape (asked once more, then the battle
    fails); ``note`` turns it into the private note committed with it, and ``say`` picks the
    text that reaches the target (None: nothing does, e.g. TAP's evaluator).
    """

    conversation: int
    messages: list[dict[str, str]]
    sim_input: dict[str, Any]
    schema: type[BaseModel] | None = None
    note: Callable[[BaseModel], dict[str, Any]] | None = None
    say: Callable[[BaseModel], str | None] | None = None
    purpose: str = "adversary"


@dataclass(frozen=True)
class AgentTurn:
    """Send the conversation's path to the agent under test."""

    conversation: int


@dataclass(frozen=True)
class RollBack:
    """Take ``seqs`` out of the target's view, and note why."""

    conversation: int
    seqs: tuple[int, ...]
    note: dict[str, Any]


@dataclass(frozen=True)
class Note:
    """Commit a private note (no model call): e.g. crescendo saying it cannot roll back."""

    conversation: int
    note: dict[str, Any]


@dataclass(frozen=True)
class Stop:
    """Nothing left to try: the battle ends ``held`` (or ``undecided`` without a usable verdict)."""

    reason: str


Move = Ask | AgentTurn | RollBack | Note | Stop


@dataclass
class State:
    """The battle as committed: what every strategy plans from."""

    spec: r.BattleSpec
    params: Mapping[str, int]
    messages: Sequence[r.Message]
    verdicts: Mapping[int, r.Verdict]
    target_keeps_state: bool = False
    _notes: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def goal(self) -> str:
        return self.spec.adversary.goal

    def conversations(self) -> list[int]:
        return sorted({m.conversation for m in self.messages})

    def of(self, conversation: int) -> list[r.Message]:
        return [m for m in self.messages if m.conversation == conversation]

    def path(self, conversation: int) -> list[r.Message]:
        """What the target sees of ``conversation``: its messages that are not rolled back."""
        return [m for m in self.of(conversation) if m.role != "note" and not m.rolled_back]

    def note(self, message: r.Message) -> dict[str, Any]:
        if message.seq not in self._notes:
            self._notes[message.seq] = note_of(message)
        return self._notes[message.seq]

    def notes(self, conversation: int, kind: str | None = None) -> list[dict[str, Any]]:
        found = [self.note(m) for m in self.of(conversation) if m.role == "note"]
        return [n for n in found if kind is None or n.get("kind") == kind]

    def score(self, seq: int) -> int:
        """The judge's score of an agent message; a verdict without one ranks lowest (1)."""
        verdict = self.verdicts.get(seq)
        return verdict.score if verdict is not None and verdict.score is not None else 1

    def rolled_back(self) -> int:
        return sum(1 for m in self.messages if m.rolled_back and m.role == "assistant")


Kind = Literal["template", "conversational", "search"]


class Strategy:
    """One way to attack. Subclasses set the class attributes and implement ``next_move``."""

    name: str = ""
    label: str = ""
    description: str = ""
    kind: Kind = "template"
    params: tuple[Param, ...] = ()

    def next_move(self, state: State) -> Move:
        raise NotImplementedError

    def worst_case(self, params: Mapping[str, int], max_messages: int) -> WorstCase:
        turns = max_messages // 2
        return WorstCase(turns, turns, turns, f"{turns} agent turns")

    def resolve(self, given: Mapping[str, int]) -> dict[str, int]:
        """The parameters with their defaults filled in (``given`` is validated already)."""
        return {p.name: int(given.get(p.name, p.default)) for p in self.params}

    def conversational_path_full(self, state: State) -> bool:
        """A conversational battle's path (adversary and agent messages) has reached max messages."""
        return len(state.path(1)) >= state.spec.max_messages


def flip_roles(path: Sequence[r.Message]) -> list[dict[str, str]]:
    """The conversation as the adversary sees it: its own messages as assistant, the agent's as user."""
    return [{"role": "assistant" if m.role == "user" else "user", "content": m.content} for m in path]


class AdversaryFormatError(ValueError):
    """The adversary's answer is not the JSON object its strategy asked for."""


def parse_structured(text: str, schema: type[BaseModel]) -> BaseModel:
    """The adversary's answer as ``schema``: one JSON object (a ```json fence allowed), nothing guessed."""
    candidate = text.strip()
    if candidate.startswith("```"):
        candidate = candidate.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as error:
        raise AdversaryFormatError(f"the adversary's answer is not a JSON object ({error}): {text[:200]!r}") from None
    if not isinstance(data, dict):
        raise AdversaryFormatError(f"the adversary's answer is not a JSON object: {text[:200]!r}")
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise AdversaryFormatError(f"the adversary's JSON has the wrong shape: {problems}") from None


FORMAT_RETRY = (
    "Your previous answer was not a valid JSON object of the required form. "
    "Answer with the JSON object only, with exactly the fields asked for."
)


def note_of(message: r.Message) -> dict[str, Any]:
    """A note message's JSON object (``{"text": ...}`` if it is not one); model output, untrusted."""
    try:
        value = json.loads(message.content)
    except json.JSONDecodeError:
        return {"text": message.content}
    return value if isinstance(value, dict) else {"text": message.content}


def rolled_back_by(message: r.Message) -> tuple[int, ...]:
    """The seqs a roll-back note took out of the target's view (none for any other message).

    A reader that holds earlier messages (a live page) marks them from this, since the
    roll-back changes rows it has already read.
    """
    if message.role != "note" or '"rolled_back"' not in message.content:
        return ()
    note = note_of(message)
    seqs = note.get("seqs") if note.get("kind") == "rolled_back" else None
    return tuple(s for s in seqs if isinstance(s, int)) if isinstance(seqs, list) else ()
