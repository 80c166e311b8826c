"""The battle engine.

``run_battle`` is resumable and idempotent: it reads what is already committed for the
battle and continues from the next message. Each message is committed before the next
model call, each verdict right after the agent message it judges, and the final status
together with the verdict that ended the battle, so a crash at any point loses at most
the model call in progress, and a rerun produces ``seq = 1..n`` with no gap and no
duplicate (messages are keyed by ``(battle_id, seq)``).

The adversary opens; messages alternate user (adversary) / assistant (agent); after each
assistant message the judge decides. The battle stops on goal (``achieved``), at max
messages (``held``), on cancel (``cancelled``), at its time limit (``timed_out``), or on
an unrecoverable error (``failed``).

``held`` needs a usable verdict on the last agent message. Without one (the judge's answer
could not be parsed after the re-ask, or the judge call failed for good) the battle is
``undecided``: counting it as held would make an agent whose concession nobody could judge
look safe. Three error verdicts in a row stop the battle at once as ``undecided``, since
nobody can judge the turns that would follow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from sparring import records as r
from sparring.gateway import DeadlineReached, Gateway, ModelCallError, ModelReply, ModelRequest, Stopped
from sparring.judging import prompt as judging
from sparring.store import BattleSource, RecordSink
from sparring.strategies import OPENING_CUE, adversary_prompt
from sparring.targets import Target, TurnContext, build_target

log = logging.getLogger(__name__)

MAX_ERROR_VERDICTS = 3  # consecutive error verdicts that end a battle as undecided


class UnknownBattle(LookupError):
    pass


class Abandoned(RuntimeError):
    """This worker no longer owns the battle (its lease passed to another worker)."""


class _Cancelled(Exception):
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
) -> BattleResult:
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
        except ModelCallError as error:
            if "judge model" in str(error):  # the agent's last message stays unjudged
                return self._finish("undecided", error=str(error), error_kind="judge")
            return self._finish("failed", error=str(error), error_kind="provider")

    def _loop(self) -> BattleResult:
        while True:
            last = self.messages[-1] if self.messages else None
            if last is not None and last.role == "assistant" and last.seq not in self.verdicts:
                verdict = self._judge(last.seq)
                self.verdicts[verdict.seq] = verdict
                if verdict.achieved is True:
                    return self._finish("achieved", turns_to_goal=last.seq // 2, extra=[r.VerdictAdded(verdict)])
                if self._error_streak() >= MAX_ERROR_VERDICTS:
                    error = f"{MAX_ERROR_VERDICTS} error verdicts in a row; the last: {verdict.error}"
                    return self._finish("undecided", error=error, error_kind="judge", extra=[r.VerdictAdded(verdict)])
                self._commit([r.VerdictAdded(verdict)])
                continue
            seq = len(self.messages) + 1
            if seq > self.spec.max_messages:
                return self._finish_at_cap()
            message = self._adversary_turn(seq) if seq % 2 == 1 else self._agent_turn(seq)
            # A turn's tool messages are committed with its reply: all of the turn or none.
            self._commit([*(r.MessageAdded(m) for m in self.tool_messages.get(seq, [])), r.MessageAdded(message)])
            self.messages.append(message)

    def _error_streak(self) -> int:
        """Error verdicts at the end of the battle, counted back from the latest one."""
        streak = 0
        for seq in sorted(self.verdicts, reverse=True):
            if self.verdicts[seq].achieved is not None:
                break
            streak += 1
        return streak

    def _finish_at_cap(self) -> BattleResult:
        """``held`` only when the last agent message has a usable verdict."""
        last_agent = next((m.seq for m in reversed(self.messages) if m.role == "assistant"), None)
        verdict = self.verdicts.get(last_agent) if last_agent is not None else None
        if last_agent is not None and (verdict is None or verdict.achieved is None):
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

    def _adversary_turn(self, seq: int) -> r.Message:
        adversary = self.spec.adversary
        turn = (seq + 1) // 2
        system = adversary_prompt(
            adversary.strategy, adversary.goal, adversary.persona, turn, (self.spec.max_messages + 1) // 2
        )
        view = [{"role": "system", "content": system}]
        if not self.messages:
            view.append({"role": "user", "content": OPENING_CUE})
        for message in self.messages:
            view.append({"role": "assistant" if message.role == "user" else "user", "content": message.content})
        reply = self._call(adversary.model, view, "adversary", seq, sim_input={"goal": adversary.goal, "turn": turn})
        return self._message(seq, "user", reply)

    def _agent_turn(self, seq: int) -> r.Message:
        """Ask the agent under test, of whatever kind (``sparring.targets``), for its reply.

        The tools it called become this turn's tool messages (same ``seq``, ``part`` 1..k),
        committed with the reply; a turn re-run after a crash replaces none (nothing of it
        was committed) and writes them afresh.
        """
        self._check()
        visible = [{"role": m.role, "content": m.content} for m in self.messages]
        context = TurnContext(
            self.gateway,
            self.calls.append,
            self.battle_id,
            run_id=self.battle.run_id,
            deadline=self.deadline,
            seed=self.spec.seed,
            should_stop=self._should_stop,
        )
        reply = self._target().reply(visible, session_id=self.battle_id, seq=seq, context=context)
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
        )

    def _target(self) -> Target:
        if self.target is None:
            self.target = build_target(self.spec.agent)
        return self.target

    def _message(self, seq: int, role: r.Role, reply: ModelReply) -> r.Message:
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
        )

    def _judge(self, seq: int) -> r.Verdict:
        spec = self.spec.judge

        def ask(messages: list[dict[str, str]], structured: dict[str, object]) -> str:
            return self._call(spec.model, messages, "judge", seq, sim_input=structured).text

        decision = judging.decide(ask, self.spec.adversary.goal, spec.rubric, self._judged(seq))
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
        )

    def _judged(self, seq: int) -> list[r.Message]:
        """The transcript up to ``seq`` as the judge sees it: each turn's tool messages before its reply."""
        return [t for m in self.messages[:seq] for t in (*self.tool_messages.get(m.seq, []), m)]

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
            self.battle_id, outcome, turns_to_goal=turns_to_goal, error=error, error_kind=error_kind
        )
        self._commit([*(extra or []), finished], wait=True)
        return BattleResult(self.battle_id, outcome, len(self.messages), turns_to_goal, error)


def _check_contiguous(battle_id: str, messages: list[r.Message]) -> None:
    for expected, message in enumerate(messages, start=1):
        if message.seq != expected:
            raise RuntimeError(f"battle {battle_id}: committed messages are not contiguous at seq {expected}")


Clock = Callable[[], float]
