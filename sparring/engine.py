"""The battle engine.

``run_battle`` is resumable and idempotent: it reads what is already committed for the
battle and continues from the next message. Each message is committed before the next
model call, each verdict right after the agent message it judges, and the final status
together with the verdict that ended the battle, so a crash at any point loses at most
the model call in progress, and a rerun produces ``seq = 1..n`` with no gap and no
duplicate (messages are keyed by ``(battle_id, seq)``).

The battle's strategy (``sparring.strategies``) plans each move from the committed rows:
ask the adversary (its answer becomes a message to the target and/or a private note), send
a conversation's path to the agent under test, roll an exchange back, or stop. After each
agent message the judge decides. The battle stops on goal (``achieved``, in any of its
conversations), when the strategy has nothing left to try (``held``: max messages for a
conversational strategy), on cancel (``cancelled``), at its time limit (``timed_out``), or
on an unrecoverable error (``failed``; an adversary that does not give the structured
answer its strategy needs, after being asked once more, is one).

``held`` needs a usable verdict on the last agent message. Without one (the judge's answer
could not be parsed after the re-ask, or the judge call failed for good) the battle is
``undecided``: counting it as held would make an agent whose concession nobody could judge
look safe. Three error verdicts in a row stop the battle at once as ``undecided``, since
nobody can judge the turns that would follow.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from sparring import checks
from sparring import records as r
from sparring.gateway import DeadlineReached, Gateway, ModelCallError, ModelReply, ModelRequest, Stopped
from sparring.judging import prompt as judging
from sparring.store import BattleSource, RecordSink
from sparring.strategies import STRATEGIES
from sparring.strategies import base as plan
from sparring.targets import Target, TurnContext, build_target

log = logging.getLogger(__name__)

MAX_ERROR_VERDICTS = 3  # consecutive error verdicts that end a battle as undecided
MAX_ROWS = 5000  # a strategy that never stops is a bug: the battle fails instead of looping


class UnknownBattle(LookupError):
    pass


class Abandoned(RuntimeError):
    """This worker no longer owns the battle (its lease passed to another worker)."""


class _Cancelled(Exception):
    pass


class _AdversaryFailed(Exception):
    pass


class BattleControl(Protocol):
    def cancel_requested(self) -> bool: ...

    def still_owner(self) -> bool: ...


class FreeControl:
    """No cancel, no lease: for a battle run in the foreground."""

    def cancel_requested(self) -> bool:
        return False

    def still_owner(self) -> bool:
        return True


@dataclass(frozen=True)
class BattleResult:
    battle_id: str
    outcome: r.Outcome
    messages: int
    turns_to_goal: int | None
    error: str | None = None


def run_battle(
    battle_id: str,
    *,
    source: BattleSource,
    sink: RecordSink,
    gateway: Gateway,
    control: BattleControl | None = None,
    worker: str | None = None,
    transcript: r.Transcript | None = None,
) -> BattleResult:
    """Run or resume the battle. ``transcript``: what the caller read of it just now, under its
    lease (a worker reads it once to decide whether to run it; it is not read twice)."""
    if transcript is None:
        transcript = source.load_transcript(battle_id)
    if transcript is None:
        raise UnknownBattle(f"No battle with id {battle_id}.")
    return _Run(transcript, sink, gateway, control or FreeControl(), worker).run()


class _Run:
    def __init__(
        self,
        transcript: r.Transcript,
        sink: RecordSink,
        gateway: Gateway,
        control: BattleControl,
        worker: str | None,
    ) -> None:
        self.battle = transcript.battle
        self.spec = transcript.battle.spec
        self.sink = sink
        self.gateway = gateway
        self.control = control
        self.worker = worker
        self.messages = list(transcript.messages)
        self.verdicts = {v.seq: v for v in transcript.verdicts}
        self.tool_messages = {
            seq: [m for m in transcript.tool_messages if m.seq == seq]
            for seq in {m.seq for m in transcript.tool_messages}
        }
        self.calls: list[r.LLMCall] = []
        self.pending: list[Future[None]] = []
        self.deadline = time.time() + self.spec.time_limit_s
        self.strategy = STRATEGIES[self.spec.adversary.strategy]
        self.params = self.strategy.resolve(self.spec.adversary.params)
        self.target: Target | None = None
        _check_contiguous(self.battle.battle_id, self.messages)

    @property
    def battle_id(self) -> str:
        return self.battle.battle_id

    def run(self) -> BattleResult:
        if self.battle.finished:
            assert self.battle.outcome is not None
            return BattleResult(
                self.battle_id, self.battle.outcome, len(self.messages), self.battle.turns_to_goal, self.battle.error
            )
        self._commit([r.BattleStarted(self.battle_id, worker=self.worker)])
        try:
            return self._loop()
        except (_Cancelled, Stopped):
            return self._finish("cancelled", error="cancelled by request")
        except DeadlineReached:
            return self._finish("timed_out", error=f"time limit of {self.spec.time_limit_s:g} s reached")
        except _AdversaryFailed as error:
            return self._finish("failed", error=str(error), error_kind="adversary")
        except ModelCallError as error:
            if "judge model" in str(error):  # the agent's last message stays unjudged
                return self._finish("undecided", error=str(error), error_kind="judge")
            return self._finish("failed", error=str(error), error_kind="provider")

    def _loop(self) -> BattleResult:
        while True:
            unjudged = self._unjudged()
            if unjudged is not None:
                verdict = self._judge(unjudged)
                self.verdicts[verdict.seq] = verdict
                if verdict.decided is True:
                    turns = self._turns_to(unjudged)
                    return self._finish("achieved", turns_to_goal=turns, extra=[r.VerdictAdded(verdict)])
                if self._error_streak() >= MAX_ERROR_VERDICTS:
                    error = f"{MAX_ERROR_VERDICTS} error verdicts in a row; the last: {verdict.error}"
                    return self._finish("undecided", error=error, error_kind="judge", extra=[r.VerdictAdded(verdict)])
                self._commit([r.VerdictAdded(verdict)])
                continue
            if len(self.messages) >= MAX_ROWS:
                raise RuntimeError(f"battle {self.battle_id}: strategy {self.strategy.name} did not stop")
            move = self.strategy.next_move(self._state())
            if isinstance(move, plan.Stop):
                return self._finish_at_cap()
            self._make(move)

    def _state(self) -> plan.State:
        return plan.State(self.spec, self.params, self.messages, self.verdicts, self._target_keeps_state())

    def _make(self, move: plan.Move) -> None:
        seq = len(self.messages) + 1
        if isinstance(move, plan.AgentTurn):
            visible = [{"role": m.role, "content": m.content} for m in self._path(move.conversation)]
            message = self._agent_turn(seq, visible, move.conversation)
            # A turn's tool messages are committed with its reply: all of the turn or none.
            self._commit([*(r.MessageAdded(m) for m in self.tool_messages.get(seq, [])), r.MessageAdded(message)])
            self.messages.append(message)
        elif isinstance(move, plan.Ask):
            self._add(self._ask(seq, move))
        elif isinstance(move, plan.RollBack):
            note = self._note(seq, move.conversation, move.note)
            self._commit([r.MessagesRolledBack(self.battle_id, move.seqs), r.MessageAdded(note)])
            rolled = set(move.seqs)
            self.messages = [dataclasses.replace(m, rolled_back=True) if m.seq in rolled else m for m in self.messages]
            self.messages.append(note)
        elif isinstance(move, plan.Note):
            self._add([self._note(seq, move.conversation, move.note)])

    def _add(self, messages: list[r.Message]) -> None:
        """Commit ``messages`` together (a note and the message it explains land as one)."""
        self._commit([r.MessageAdded(m) for m in messages])
        self.messages += messages

    def _path(self, conversation: int, upto: int | None = None) -> list[r.Message]:
        """What the target sees of ``conversation`` (up to seq ``upto``)."""
        return [
            m
            for m in self.messages
            if m.conversation == conversation
            and m.role != "note"
            and not m.rolled_back
            and (upto is None or m.seq <= upto)
        ]

    def _unjudged(self) -> int | None:
        for message in reversed(self.messages):
            if message.role == "assistant":
                return None if message.seq in self.verdicts or message.rolled_back else message.seq
        return None

    def _turns_to(self, seq: int) -> int:
        conversation = self.messages[seq - 1].conversation
        return sum(1 for m in self._path(conversation, seq) if m.role == "assistant")

    def _judged_turns(self) -> int:
        """Agent turns known to have held or given in: up to the last verdict that decided (0 without one)."""
        usable = [seq for seq, verdict in self.verdicts.items() if verdict.decided is not None]
        return self._turns_to(max(usable)) if usable else 0

    def _target_keeps_state(self) -> bool:
        """Whether the agent under test keeps its own conversation state (then nothing can be rolled back)."""
        return self._target().keeps_state

    def _error_streak(self) -> int:
        """Error verdicts at the end of the battle, counted back from the latest one."""
        streak = 0
        for seq in sorted(self.verdicts, reverse=True):
            if self.verdicts[seq].decided is not None:
                break
            streak += 1
        return streak

    def _finish_at_cap(self) -> BattleResult:
        """``held`` only when the last agent message has a usable verdict."""
        last_agent = next((m.seq for m in reversed(self.messages) if m.role == "assistant"), None)
        verdict = self.verdicts.get(last_agent) if last_agent is not None else None
        if last_agent is not None and (verdict is None or verdict.decided is None):
            why = verdict.error if verdict is not None else "no verdict"
            error = f"no usable verdict on the last agent message ({why})"
            return self._finish("undecided", error=error, error_kind="judge")
        return self._finish("held")

    # -- turns ---------------------------------------------------------------------------
    def _check(self) -> None:
        if not self.control.still_owner():
            raise Abandoned(f"battle {self.battle_id} is now run by another worker")
        if self.control.cancel_requested():
            raise _Cancelled()
        if time.time() >= self.deadline:
            raise DeadlineReached("time limit reached")

    def _call(self, model: str, messages: list[dict[str, str]], purpose: str, seq: int, **extra: object) -> ModelReply:
        self._check()
        request = ModelRequest(
            model=model,
            messages=messages,
            purpose=purpose,
            seed=self.spec.seed,
            battle_id=self.battle_id,
            seq=seq,
            run_id=self.battle.run_id,
            deadline=self.deadline,
            **extra,  # type: ignore[arg-type]
        )
        return self.gateway.complete(request, on_call=self.calls.append, should_stop=self._should_stop)

    def _should_stop(self) -> bool:
        return self.control.cancel_requested() or not self.control.still_owner()

    def _ask(self, seq: int, move: plan.Ask) -> list[r.Message]:
        """The adversary's move: its message to the target, or its note and the text it picked.

        A structured answer that does not parse is shown to the adversary and asked for once
        more; a second bad answer fails the battle with the reason (nothing is guessed).
        """
        model = self.spec.adversary.model
        reply = self._call(model, move.messages, move.purpose, seq, sim_input=move.sim_input)
        if move.schema is None:
            return [self._message(seq, "user", reply, move.conversation)]
        try:
            parsed = plan.parse_structured(reply.text, move.schema)
        except plan.AdversaryFormatError:
            retry = [*move.messages, {"role": "assistant", "content": reply.text}]
            retry.append({"role": "user", "content": plan.FORMAT_RETRY})
            reply = self._call(model, retry, move.purpose, seq, sim_input=move.sim_input)
            try:
                parsed = plan.parse_structured(reply.text, move.schema)
            except plan.AdversaryFormatError as error:
                raise _AdversaryFailed(f"{self.strategy.name}: asked twice, {error}") from None
        note = dataclasses.replace(
            self._message(seq, "note", reply, move.conversation),
            content=json.dumps(move.note(parsed) if move.note else parsed.model_dump()),
        )
        said = move.say(parsed) if move.say else None
        if said is None:
            return [note]
        message = r.Message(self.battle_id, seq + 1, "user", said, reply.model, conversation=move.conversation)
        return [note, message]

    def _note(self, seq: int, conversation: int, note: dict[str, object]) -> r.Message:
        model = self.spec.adversary.model
        return r.Message(self.battle_id, seq, "note", json.dumps(note), model, conversation=conversation)

    def _agent_turn(self, seq: int, visible: list[dict[str, str]], conversation: int) -> r.Message:
        """The one call to the agent under test, of whatever kind (``sparring.targets``).

        ``visible`` is the conversation it sees (its system prompt is the target's to add).

        The tools it called become this turn's tool messages (same ``seq``, ``part`` 1..k),
        committed with the reply; a turn re-run after a crash replaces none (nothing of it
        was committed) and writes them afresh.
        """
        self._check()
        context = TurnContext(
            self.gateway,
            self.calls.append,
            self.battle_id,
            run_id=self.battle.run_id,
            deadline=self.deadline,
            seed=self.spec.seed,
            should_stop=self._should_stop,
        )
        session = self.battle_id if conversation == 1 else f"{self.battle_id}-{conversation}"
        reply = self._target().reply(visible, session_id=session, seq=seq, context=context)
        self.tool_messages[seq] = [
            r.Message(
                self.battle_id,
                seq,
                "tool",
                use.result,
                reply.model,
                part=part,
                tool_name=use.name,
                tool_arguments=use.arguments_json,
                conversation=conversation,
            )
            for part, use in enumerate(reply.tool_uses, start=1)
        ]
        return r.Message(
            battle_id=self.battle_id,
            seq=seq,
            role="assistant",
            content=reply.text,
            model=reply.model,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency_ms=reply.latency_ms,
            cost_usd=reply.cost_usd,
            conversation=conversation,
        )

    def _target(self) -> Target:
        if self.target is None:
            self.target = build_target(self.spec.agent)
        return self.target

    def _message(self, seq: int, role: r.Role, reply: ModelReply, conversation: int = 1) -> r.Message:
        return r.Message(
            battle_id=self.battle_id,
            seq=seq,
            role=role,
            content=reply.text,
            model=reply.model,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency_ms=reply.latency_ms,
            cost_usd=reply.cost_usd,
            conversation=conversation,
        )

    def _judge(self, seq: int) -> r.Verdict:
        """The judge's verdict on agent message ``seq``, with the goal's exact checks beside it (they decide)."""
        if not self.spec.checks.present:
            return self._ask_judge(seq)
        if self.spec.judge.model == checks.NO_JUDGE:
            turn = self._with_tools(self.messages[:seq])
            return checks.verdict_by_checks(self.spec.checks, self.battle_id, seq, turn)
        try:
            verdict = self._ask_judge(seq)
        except ModelCallError as error:  # the checks still decide; the judge's miss is recorded
            verdict = r.Verdict(self.battle_id, seq, None, None, "", self.spec.judge.model, error=str(error))
        return checks.check_verdict(self.spec.checks, verdict, self._with_tools(self.messages[:seq]))

    def _ask_judge(self, seq: int) -> r.Verdict:
        spec = self.spec.judge

        def ask(messages: list[dict[str, str]], structured: dict[str, object]) -> str:
            return self._call(spec.model, messages, "judge", seq, sim_input=structured).text

        path = self._path(self.messages[seq - 1].conversation, seq)
        decision = judging.decide(ask, self.spec.adversary.goal, spec.rubric, self._with_tools(path))
        if decision.error is not None:
            log.info("Battle %s: judge output unparseable twice at seq %d", self.battle_id, seq)
        return r.Verdict(
            self.battle_id,
            seq,
            decision.achieved,
            decision.confidence,
            decision.rationale,
            spec.model,
            error=decision.error,
            prompt_version=decision.prompt_version,
            score=decision.score,
            refused=decision.refused,
        )

    def _with_tools(self, path: list[r.Message]) -> list[r.Message]:
        """``path`` as the judge sees it: each agent turn's tool messages before its reply."""
        return [t for m in path for t in (*self.tool_messages.get(m.seq, []), m)]

    # -- writing -------------------------------------------------------------------------
    def _commit(self, records: list[r.Record], *, wait: bool = False) -> None:
        """Commit ``records`` with the model calls made since the last commit.

        Commits are handed over in order and applied in order, so the battle can make its
        next model call while the previous message is being committed: a crash can only
        lose a suffix of the transcript, which the resumed battle regenerates. The last
        commit (the outcome) waits for everything before it.
        """
        calls: list[r.Record] = [r.CallRecorded(call) for call in self.calls]
        self.calls.clear()
        submit = getattr(self.sink, "submit", None)
        if submit is None:
            self.sink.write([*calls, *records])
            return
        self.pending.append(submit([*calls, *records]))
        still = []
        for future in self.pending:
            if future.done():
                future.result()  # a commit that failed for good fails the battle's run
            else:
                still.append(future)
        self.pending = still
        if wait:
            for future in self.pending:
                future.result()
            self.pending = []

    def _finish(
        self,
        outcome: r.Outcome,
        *,
        turns_to_goal: int | None = None,
        error: str | None = None,
        error_kind: str | None = None,
        extra: list[r.Record] | None = None,
    ) -> BattleResult:
        finished = r.BattleFinished(
            self.battle_id,
            outcome,
            turns_to_goal=turns_to_goal,
            error=error,
            error_kind=error_kind,
            judged_turns=self._judged_turns(),
        )
        self._commit([*(extra or []), finished], wait=True)
        return BattleResult(self.battle_id, outcome, len(self.messages), turns_to_goal, error)


def _check_contiguous(battle_id: str, messages: list[r.Message]) -> None:
    for expected, message in enumerate(messages, start=1):
        if message.seq != expected:
            raise RuntimeError(f"battle {battle_id}: committed messages are not contiguous at seq {expected}")


Clock = Callable[[], float]
