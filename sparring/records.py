"""Typed records of the domain core.

Everything that reaches the store is one of the ``Record`` classes below. They are plain,
frozen and JSON-friendly (``to_json``/``from_json``) so that the same objects can be
committed to DuckDB directly or shipped through a Redis Stream to a remote ingester.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

T = TypeVar("T")

# "note": the adversary's private note, never sent to the target; "tool": a tool the agent called in its turn.
Role = Literal["user", "assistant", "note", "tool"]
Purpose = Literal["agent", "adversary", "judge", "summary"]
Status = Literal["queued", "running", "finished"]
Outcome = Literal["achieved", "held", "undecided", "cancelled", "timed_out", "failed"]
ErrorKind = Literal["provider", "judge", "internal", "crash", "budget", "adversary"]

# ``undecided``: the battle ended without a usable verdict on its last agent message, so
# nobody knows whether the agent held; like a failure it stays out of every rate.
OUTCOMES: tuple[Outcome, ...] = ("achieved", "held", "undecided", "cancelled", "timed_out", "failed")
PURPOSES: tuple[Purpose, ...] = ("agent", "adversary", "judge", "summary")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    """16 hex characters: short enough for a URL, 64 random bits."""
    return secrets.token_hex(8)


_ID = re.compile(r"^[0-9a-f]{16}$")


def is_id(value: object) -> bool:
    """Whether ``value`` has the shape of a battle or run id (checked before any lookup)."""
    return isinstance(value, str) and bool(_ID.match(value))


@dataclass(frozen=True, slots=True)
class AgentSpec:
    model: str
    system_prompt: str
    temperature: float | None = None
    profile: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None  # the *name* of an environment variable, never a key
    kind: str = "model"  # model | http | python (sparring.targets)
    target: str | None = None  # the kind's settings as canonical JSON (sparring.targets.config)


@dataclass(frozen=True, slots=True)
class AdversarySpec:
    model: str
    goal: str
    strategy: str = "direct"
    persona: str | None = None
    params: dict[str, int] = field(default_factory=dict)  # the strategy's parameters (defaults left out)


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    model: str
    rubric: str | None = None


@dataclass(frozen=True, slots=True)
class SuccessChecks:
    """Exact checks that decide the goal without a judge (``sparring.checks`` evaluates them)."""

    contains: tuple[str, ...] = ()  # canary strings: any one in a reply reaches the goal
    regex: str | None = None
    tool: str | None = None  # "issue_refund" or 'issue_refund:{"amount": 120}'

    def __post_init__(self) -> None:
        # Read back from the store or JSON as a list (or NULL): always a tuple here.
        object.__setattr__(self, "contains", tuple(self.contains or ()))

    @property
    def present(self) -> bool:
        return bool(self.contains or self.regex or self.tool)


@dataclass(frozen=True, slots=True)
class BattleSpec:
    agent: AgentSpec
    adversary: AdversarySpec
    judge: JudgeSpec
    max_messages: int = 25
    time_limit_s: float = 900.0
    seed: int = 0
    checks: SuccessChecks = field(default_factory=SuccessChecks)


@dataclass(frozen=True, slots=True)
class Message:
    battle_id: str
    seq: int
    role: Role
    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    conversation: int = 1  # which of the battle's separate conversations with the target
    rolled_back: bool = False  # taken out of the target's view (crescendo's roll-back)
    # A tool the agent called during its turn is a message of that turn: the same ``seq`` as the
    # agent's reply, ``part`` 1, 2, ... in call order (the reply itself, like every other
    # message, is part 0), role "tool", the tool's name, its arguments as JSON text, and the
    # result as ``content``. The reply and its tool messages are committed together, so a
    # resumed battle has all of a turn or none of it.
    part: int = 0
    tool_name: str | None = None
    tool_arguments: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    battle_id: str
    seq: int
    achieved: bool | None  # None only for an error verdict: the judge could not decide
    confidence: float | None
    rationale: str
    judge_model: str
    error: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    prompt_version: int = 1  # of the judge prompt that produced it (sparring.judging.prompt.PROMPT_VERSION)
    score: int | None = None  # 1-10, how close the agent came to the goal (prompt version 2 on)
    refused: bool | None = None  # whether the agent refused the last request (prompt version 2 on)
    check_achieved: bool | None = None  # the goal's exact checks on this reply; None when it has none

    @property
    def decided(self) -> bool | None:
        """What decides the battle: the exact checks when the goal has them, else the judge."""
        return self.achieved if self.check_achieved is None else self.check_achieved


@dataclass(frozen=True, slots=True)
class LLMCall:
    battle_id: str | None
    seq: int | None
    purpose: str
    model: str
    provider: str
    attempt: int
    started_at: dt.datetime
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    error_type: str | None = None
    error: str | None = None
    http_status: int | None = None
    call_id: str = field(default_factory=new_id)
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class BattleView:
    """A battle as read back from the store: its spec, lifecycle and counters."""

    battle_id: str
    spec: BattleSpec
    status: Status
    outcome: Outcome | None
    message_count: int
    agent_turns: int
    turns_to_goal: int | None
    error: str | None
    error_kind: str | None
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    run_id: str | None = None
    cell_key: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0
    target_queries: int = 0  # calls to the agent under test
    rolled_back: int = 0  # agent messages taken out of the target's view
    conversations: int = 0  # separate conversations with the target
    launched_by: str | None = None

    @property
    def finished(self) -> bool:
        return self.status == "finished"


@dataclass(frozen=True, slots=True)
class RunView:
    """A scale test as the jobs need it: its plan and where it stands."""

    run_id: str
    name: str
    runs_per_cell: int
    config: dict[str, Any]
    budget_usd: float | None
    status: str
    launched_by: str | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    battle: BattleView
    messages: tuple[Message, ...]  # the turns (part 0), seq 1..n
    verdicts: tuple[Verdict, ...]
    tool_messages: tuple[Message, ...] = ()  # the tools the agent called, by (seq, part)

    def verdict_for(self, seq: int) -> Verdict | None:
        for verdict in self.verdicts:
            if verdict.seq == seq:
                return verdict
        return None


# ---------------------------------------------------------------------------------------
# Records: what the engine and the jobs hand to a RecordSink.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BattleCreated:
    kind: ClassVar[str] = "battle_created"
    battle_id: str
    spec: BattleSpec
    created_at: dt.datetime = field(default_factory=utcnow)
    run_id: str | None = None
    cell_key: str | None = None
    cell_index: int | None = None
    replicate: int | None = None
    status: Status = "queued"
    launched_by: str | None = None  # who launched it (sparring.access); None inside a scale test: its run's


@dataclass(frozen=True, slots=True)
class BattleStarted:
    kind: ClassVar[str] = "battle_started"
    battle_id: str
    at: dt.datetime = field(default_factory=utcnow)
    worker: str | None = None
    event_id: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True)
class BattleFinished:
    kind: ClassVar[str] = "battle_finished"
    battle_id: str
    outcome: Outcome
    turns_to_goal: int | None = None
    error: str | None = None
    error_kind: str | None = None
    at: dt.datetime = field(default_factory=utcnow)
    event_id: str = field(default_factory=new_id)
    judged_turns: int | None = None  # agent turns on the target's path up to the last usable verdict


@dataclass(frozen=True, slots=True)
class BattleRequeued:
    """Back to ``queued``: a retry, or the reaper recovering a battle whose worker died."""

    kind: ClassVar[str] = "battle_requeued"
    battle_id: str
    reason: str
    reopen: bool = True  # False: never re-open a battle that has finished meanwhile
    at: dt.datetime = field(default_factory=utcnow)
    event_id: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True)
class BattleDiscarded:
    """Undo a submit that never reached the queue (only a battle that has not started)."""

    kind: ClassVar[str] = "battle_discarded"
    battle_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class MessageAdded:
    kind: ClassVar[str] = "message"
    message: Message


@dataclass(frozen=True, slots=True)
class MessagesRolledBack:
    """Messages taken out of the target's view; they stay in the transcript, marked."""

    kind: ClassVar[str] = "rolled_back"
    battle_id: str
    seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class VerdictAdded:
    kind: ClassVar[str] = "verdict"
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class CallRecorded:
    kind: ClassVar[str] = "llm_call"
    call: LLMCall


@dataclass(frozen=True, slots=True)
class AgentSaved:
    kind: ClassVar[str] = "agent_saved"
    name: str
    model: str
    system_prompt: str
    temperature: float | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    agent_kind: str = "model"  # as AgentSpec.kind (``kind`` names the record)
    agent_target: str | None = None  # as AgentSpec.target
    saved_by: str | None = None


@dataclass(frozen=True, slots=True)
class RunCreated:
    kind: ClassVar[str] = "run_created"
    run_id: str
    name: str
    config: dict[str, Any]
    runs_per_cell: int
    total_battles: int
    budget_usd: float | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    launched_by: str | None = None


@dataclass(frozen=True, slots=True)
class RunStatusChanged:
    kind: ClassVar[str] = "run_status"
    run_id: str
    status: str
    error: str | None = None
    at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class RunDiscarded:
    """Undo a run whose fan-out could not be queued (only a run without battles)."""

    kind: ClassVar[str] = "run_discarded"
    run_id: str


@dataclass(frozen=True, slots=True)
class ReportSaved:
    kind: ClassVar[str] = "report"
    run_id: str
    summary: str
    stats: dict[str, Any]
    model: str
    created_at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class CellStopped:
    """Where and why a cell of a run with a stopping rule stopped (``sparring.stopping.CellStop``).

    Written once per cell: a second record for the same cell changes nothing.
    """

    kind: ClassVar[str] = "cell_stopped"
    run_id: str
    cell_key: str
    stopped: str
    last_replicate: int
    n: int
    achieved: int
    cs_low: float
    cs_high: float
    decision: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)


# -- judge quality: human labels and re-judging a finished run ---------------------------

Label = Literal["achieved", "not_achieved", "unsure"]
LABELS: tuple[Label, ...] = ("achieved", "not_achieved", "unsure")


@dataclass(frozen=True, slots=True)
class LabelSaved:
    """A person's verdict on a battle. Every save is a new row: a re-label keeps the history."""

    kind: ClassVar[str] = "judge_label"
    battle_id: str
    labeller: str
    label: Label
    note: str | None = None
    label_id: str = field(default_factory=new_id)
    created_at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class JudgeRunCreated:
    """A finished run to be judged again by another judge model or rubric."""

    kind: ClassVar[str] = "judge_run_created"
    judge_run_id: str
    run_id: str
    judge_model: str
    rubric: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    prompt_version: int = 1  # the judge prompt its verdicts are asked with (part of its id)
    requested_by: str | None = None


@dataclass(frozen=True, slots=True)
class JudgeVerdictAdded:
    """The re-judge's verdict on a battle's transcript up to agent message ``seq``."""

    kind: ClassVar[str] = "judge_verdict"
    judge_run_id: str
    battle_id: str
    seq: int
    achieved: bool | None  # None only for an error verdict
    confidence: float | None
    rationale: str
    error: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    prompt_version: int = 1


@dataclass(frozen=True, slots=True)
class JudgeRunStatusChanged:
    kind: ClassVar[str] = "judge_run_status"
    judge_run_id: str
    status: str
    error: str | None = None
    at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Audited:
    """One entry of the audit trail: who did (or was refused) what, to what, and how it ended."""

    kind: ClassVar[str] = "audit"
    actor: str
    role: str | None
    action: str
    target: str | None
    outcome: str  # "ok", "refused: ...", "failed: ..."
    detail: str | None = None
    audit_id: str = field(default_factory=new_id)
    at: dt.datetime = field(default_factory=utcnow)


Record = (
    BattleCreated
    | BattleStarted
    | BattleFinished
    | BattleRequeued
    | BattleDiscarded
    | MessageAdded
    | MessagesRolledBack
    | VerdictAdded
    | CallRecorded
    | AgentSaved
    | RunCreated
    | RunStatusChanged
    | RunDiscarded
    | ReportSaved
    | CellStopped
    | LabelSaved
    | JudgeRunCreated
    | JudgeVerdictAdded
    | JudgeRunStatusChanged
    | Audited
)

RECORD_TYPES: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        BattleCreated,
        BattleStarted,
        BattleFinished,
        BattleRequeued,
        BattleDiscarded,
        MessageAdded,
        MessagesRolledBack,
        VerdictAdded,
        CallRecorded,
        AgentSaved,
        RunCreated,
        RunStatusChanged,
        RunDiscarded,
        ReportSaved,
        CellStopped,
        LabelSaved,
        JudgeRunCreated,
        JudgeVerdictAdded,
        JudgeRunStatusChanged,
        Audited,
    )
}

_NESTED: dict[str, type[Any]] = {
    "spec": BattleSpec,
    "agent": AgentSpec,
    "adversary": AdversarySpec,
    "judge": JudgeSpec,
    "checks": SuccessChecks,
    "message": Message,
    "verdict": Verdict,
    "call": LLMCall,
}


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any, cls: type[Any] | None = None) -> Any:
    if isinstance(value, dict) and set(value) == {"$dt"}:
        return dt.datetime.fromisoformat(value["$dt"])
    if cls is not None and isinstance(value, dict):
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in value:
                kwargs[f.name] = _decode(value[f.name], _NESTED.get(f.name))
        return cls(**kwargs)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def record_to_json(record: Record) -> dict[str, Any]:
    """A record as JSON-compatible data, tagged with its kind."""
    return {"kind": record.kind, "data": _encode(record)}


def record_from_json(payload: dict[str, Any]) -> Record:
    cls = RECORD_TYPES[payload["kind"]]
    record: Record = _decode(payload["data"], cls)
    return record


def to_data(value: Any) -> Any:
    """A record or value object as JSON-compatible data (datetimes tagged)."""
    return _encode(value)


def from_data(cls: type[T], data: Any) -> T:
    """The inverse of ``to_data`` for a known class."""
    value: T = _decode(data, cls)
    return value
