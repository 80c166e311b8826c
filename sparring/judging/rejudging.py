"""Re-judging: replay another judge model or rubric over a finished run's transcripts.

``rejudge`` judges after each agent message as the engine does (``prompt.decide``),
stopping at the first "achieved". Only judge calls are made; messages and the original
verdicts stay as they are; the new verdicts go to ``judge_verdicts``. A judge run is
identified by the run, the judge model, the rubric and the prompt version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sparring import records as r
from sparring.gateway import Gateway, ModelCallError, ModelRequest, Stopped
from sparring.judging import prompt
from sparring.judging.labels import RunNotFinishedError, UnknownRunError, finished_run, validated
from sparring.modelref import missing_key, parse_model
from sparring.store import RecordSink, Store
from sparring.store import judging as rows
from sparring.store.apply import JUDGE_RUN_TERMINAL
from sparring.validation import InvalidInput, ModelName, Rubric, Text

log = logging.getLogger(__name__)

REJUDGE_THREADS = 4
JUDGE_RUN_ENDED = JUDGE_RUN_TERMINAL  # the statuses after which nothing more happens
CANCELLED_NOTE = "Cancelled. What was judged is kept: re-judge with the same judge model and rubric to finish."


class StalePromptError(RuntimeError):
    """The judge run was created under another judge prompt version than this code's."""


class RejudgeInput(BaseModel):
    """A request to judge a finished run again with another judge model or rubric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: Annotated[Text, Field(min_length=1, max_length=64)]
    judge_model: ModelName
    rubric: Rubric = None

    @model_validator(mode="after")
    def _key_present(self) -> RejudgeInput:
        message = missing_key(parse_model(self.judge_model))
        if message:
            raise ValueError(f"judge_model: {message}")
        return self


def judge_run_status(store: Store, judge_run_id: str) -> str | None:
    """A judge run's status, or None for an unknown id."""
    row = store.read(lambda con: rows.judge_run(con, judge_run_id))
    return None if row is None else row.status


def judge_run_id_for(run_id: str, judge_model: str, rubric: str | None, prompt_version: int | None = None) -> str:
    """Deterministic: asking twice for the same judge resumes it instead of paying again.

    The prompt version is part of it: a re-judge asked after the prompt changed is a new
    judge run, so its verdicts never mix with the old prompt's.
    """
    version = prompt.PROMPT_VERSION if prompt_version is None else prompt_version
    text = json.dumps([run_id, judge_model, rubric or "", version])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_rejudge(store: Store, data: dict[str, Any]) -> r.JudgeRunCreated:
    """Validate a re-judge request; the record that creates its judge run."""
    request: RejudgeInput = validated(RejudgeInput, data)
    try:
        run = finished_run(store, request.run_id)
    except UnknownRunError as error:
        raise InvalidInput({"run_id": str(error)}) from None
    except RunNotFinishedError as error:
        raise InvalidInput({"run_id": str(error)}) from None
    if not run.defended:
        raise InvalidInput({"run_id": f"run {run.run_id} has no achieved or held battle to judge"})
    version = prompt.PROMPT_VERSION
    judge_run_id = judge_run_id_for(run.run_id, request.judge_model, request.rubric, version)
    return r.JudgeRunCreated(judge_run_id, run.run_id, request.judge_model, request.rubric, prompt_version=version)


@dataclass(frozen=True, slots=True)
class RejudgeResult:
    judge_run_id: str
    status: str
    battles: int
    judged_now: int
    failed: int
    error: str | None = None


def rejudge(
    judge_run_id: str,
    *,
    store: Store,
    sink: RecordSink,
    gateway: Gateway,
    threads: int = REJUDGE_THREADS,
    should_stop: Callable[[], bool] | None = None,
) -> RejudgeResult:
    """Judge every defended battle of the run again; resumable and idempotent.

    Each battle's verdicts and the calls behind them are committed together once the
    battle is judged, so a crash loses at most the battles in progress; a rerun skips what
    is committed. A judge call that fails for good (after the gateway's retries) leaves
    that battle unjudged and the judge run ``failed``; asking again judges the rest.
    ``should_stop`` is asked before every judge call (and while the gateway waits): once it
    answers True, no new call starts, what is judged is committed and the judge run ends
    ``cancelled``; asking again resumes it.
    """
    row = store.read(lambda con: rows.judge_run(con, judge_run_id))
    if row is None:
        raise LookupError(f"unknown judge run {judge_run_id!r}")
    if row.prompt_version != prompt.PROMPT_VERSION:
        raise StalePromptError(
            f"judge run {judge_run_id} was asked with judge prompt version {row.prompt_version}, and this "
            f"version of Sparring has version {prompt.PROMPT_VERSION}; request the re-judge again"
        )
    run_id, judge_model, rubric, status = row.run_id, row.judge_model, row.rubric, row.status
    battles, progress = store.read(lambda con: rows.rejudge_state(con, run_id, judge_run_id))
    pending = [
        (battle_id, progress.get(battle_id, (0, False))[0])
        for battle_id, agent_turns in battles
        if not _complete(progress.get(battle_id), agent_turns)
    ]
    if status == "finished" and not pending:
        return RejudgeResult(judge_run_id, "finished", len(battles), 0, 0)
    sink.write([r.JudgeRunStatusChanged(judge_run_id, "running")])
    judge = _Rejudger(judge_run_id, run_id, judge_model, rubric, store, sink, gateway, should_stop)
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="rejudge") as pool:
        errors = [e for e in pool.map(lambda item: judge.battle(*item), pending) if e is not None]
    if judge.stopped:
        sink.write([r.JudgeRunStatusChanged(judge_run_id, "cancelled", error=CANCELLED_NOTE)])
        return RejudgeResult(
            judge_run_id, "cancelled", len(battles), judge.completed, len(errors), errors[0] if errors else None
        )
    if errors:
        message = f"Could not judge {len(errors)} of {len(battles)} battles ({errors[0]}). Re-judge again to finish."
        sink.write([r.JudgeRunStatusChanged(judge_run_id, "failed", error=message[:1000])])
        return RejudgeResult(judge_run_id, "failed", len(battles), len(pending) - len(errors), len(errors), message)
    sink.write([r.JudgeRunStatusChanged(judge_run_id, "finished")])
    return RejudgeResult(judge_run_id, "finished", len(battles), len(pending), 0)


def _path(messages: list[r.Message], judged: r.Message) -> list[r.Message]:
    """What the original judge saw: the target's path in the judged message's conversation, up to it."""
    return [
        m
        for m in messages[: judged.seq]
        if m.conversation == judged.conversation and m.role != "note" and not m.rolled_back
    ]


def _complete(progress: tuple[int, bool] | None, agent_turns: int) -> bool:
    if progress is None:
        return False
    last_seq, achieved = progress
    return achieved or last_seq >= 2 * agent_turns


@dataclass(eq=False)
class _Rejudger:
    """Replays one judge over stored transcripts; shared by the pool's threads."""

    judge_run_id: str
    run_id: str
    judge_model: str
    rubric: str | None
    store: Store
    sink: RecordSink
    gateway: Gateway
    stop_requested: Callable[[], bool] | None = None
    stopped: bool = False  # set once stop_requested has said so; read after the pool ends
    completed: int = 0  # battles judged to their end by this call (read after the pool ends)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def should_stop(self) -> bool:
        if not self.stopped and self.stop_requested is not None and self.stop_requested():
            self.stopped = True
        return self.stopped

    def battle(self, battle_id: str, after_seq: int) -> str | None:
        """Judge one battle from agent message ``after_seq + 2`` on; an error message, or None."""
        if self.should_stop():
            return None
        transcript = self.store.load_transcript(battle_id)
        if transcript is None:
            return f"battle {battle_id} is missing"
        calls: list[r.LLMCall] = []
        records: list[r.Record] = []
        error = None
        messages = list(transcript.messages)
        finished = True
        try:
            for message in messages:
                if message.role != "assistant" or message.seq <= after_seq or message.rolled_back:
                    continue
                if self.should_stop():
                    finished = False
                    break
                verdict = self._judge(transcript, _path(messages, message), message.seq, calls.append)
                records.append(verdict)
                if verdict.achieved:
                    break
        except Stopped:  # the gateway stopped waiting to retry
            self.stopped = True
            finished = False
        except ModelCallError as failure:
            log.warning("Re-judge %s: battle %s could not be judged: %s", self.judge_run_id, battle_id, failure)
            error = str(failure)
            finished = False
        # Verdicts are judged in order, so a battle stopped half-way resumes after its last one.
        self.sink.write([*(r.CallRecorded(call) for call in calls), *records])
        if finished:
            with self._lock:
                self.completed += 1
        return error

    def _judge(self, transcript: r.Transcript, prefix: list[r.Message], seq: int, on_call: Any) -> r.JudgeVerdictAdded:
        """One verdict, with the engine's dialog."""
        spec = transcript.battle.spec

        def ask(messages: list[dict[str, str]], structured: dict[str, Any]) -> str:
            return self._call(messages, structured, spec.seed, seq, on_call)

        decision = prompt.decide(ask, spec.adversary.goal, self.rubric, prefix)
        return r.JudgeVerdictAdded(
            self.judge_run_id,
            transcript.battle.battle_id,
            seq,
            decision.achieved,
            decision.confidence,
            decision.rationale,
            error=decision.error,
            prompt_version=decision.prompt_version,
        )

    def _call(
        self, messages: list[dict[str, str]], structured: dict[str, Any], seed: int, seq: int, on_call: Any
    ) -> str:
        # battle_id stays empty: the battle's own counters (calls, tokens, cost) describe the
        # battle as it was played; the run_id and seq still place the call.
        request = ModelRequest(
            model=self.judge_model,
            messages=messages,
            purpose="judge",
            seed=seed,
            seq=seq,
            run_id=self.run_id,
            sim_input=structured,
        )
        return self.gateway.complete(request, on_call=on_call, should_stop=self.should_stop).text
