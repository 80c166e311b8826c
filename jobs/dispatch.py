"""The job queue behind ``sparring.usecases.Dispatcher``: what the use cases ask of Huey.

Each entry point (``streamlit_app.py``, ``python -m sparring``, the worker) calls ``wire()``
once; the use cases then reach the queue through it and the core never imports ``jobs``.

Importing this module is cheap (each method imports what it uses): ``python -m sparring
serve`` starts Streamlit with it, before the queue and the core are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.queue import Queue
    from sparring import records as r
    from sparring.judging import RejudgeResult  # statistics (scipy): loaded only when a re-judge runs
    from sparring.judging.check import JudgeCheck


class QueueDispatcher:
    """``Dispatcher`` over this process's queue (``jobs.queue.get_queue()``, read at each call)."""

    @property
    def queue(self) -> Queue:
        from jobs.queue import get_queue

        return get_queue()

    def ensure_reachable(self) -> None:
        from jobs.submit import check_reachable

        check_reachable(self.queue)

    def live_workers(self) -> list[dict[str, Any]]:
        from jobs.submit import live_workers

        return live_workers(self.queue)

    def heartbeat_ttl_s(self) -> float:
        return float(self.queue.settings.heartbeat_ttl_s)

    def worker_command(self) -> str:
        from jobs.submit import worker_command

        return worker_command(self.queue)

    def claim(self, key: str, value: str, ttl_s: float) -> str:
        return self.queue.coord.claim_value(key, value, ttl_s)

    def unclaim(self, key: str) -> None:
        self.queue.coord.unclaim(key)

    def enqueue_battle(self, battle_id: str) -> None:
        queue = self.queue
        queue.coord.touch_active(battle_id)
        queue.enqueue_battle(battle_id)

    def forget_battle(self, battle_id: str) -> None:
        self.queue.coord.drop_active(battle_id)

    def request_cancel(self, battle_id: str) -> None:
        self.queue.coord.request_cancel(battle_id)

    def clear_cancel(self, battle_id: str) -> None:
        self.queue.coord.clear_cancel(battle_id)

    def dequeue_battle(self, battle_id: str) -> None:
        self.queue.huey.revoke_by_id(battle_id, revoke_once=True)

    def reopen_for_retry(self, run_id: str, battle_id: str) -> None:
        from jobs import ledger

        ledger.reopen_for_retry(run_id, battle_id)

    def enqueue_fan_out(self, run_id: str) -> None:
        queue = self.queue
        queue.huey.enqueue(queue.tasks["run_scale"].s(run_id, id=f"run:{run_id}"))

    def run_stopped_because(self, run_id: str) -> str | None:
        return self.queue.coord.run_cancel_reason(run_id)

    def stop_run(self, run_id: str, reason: str) -> None:
        from jobs import runs

        runs.stop_run(run_id, reason, queue=self.queue)

    def enqueue_rejudge(self, record: r.JudgeRunCreated) -> None:
        from jobs import judging

        judging.enqueue_rejudge(self.queue, record)

    def cancel_rejudge(self, judge_run_id: str, status: str) -> str:
        from jobs import judging

        return judging.cancel_rejudge_job(self.queue, judge_run_id, status)

    def check_judge(self, judge_model: str, rubric: str | None, *, require_worker: bool) -> JudgeCheck:
        from jobs import judge_check

        return judge_check.check_judge(judge_model, rubric, require_worker=require_worker)

    def stalled_rejudges(self, judge_run_ids: list[str]) -> set[str]:
        from jobs import judging

        return judging.stalled(judge_run_ids)

    # The consumer, the health report and the server load what runs jobs (and Streamlit): only when asked.
    def start_here(self, threads: int | None = None) -> None:
        from jobs import embedded

        embedded.start(threads=threads)

    def stop_here(self) -> None:
        from jobs import embedded

        embedded.stop()

    def rejudge_here(self, record: r.JudgeRunCreated, threads: int) -> RejudgeResult:
        from jobs import judging

        return judging.rejudge_in_foreground(record, threads=threads)

    def rejudge_in_background(self, data: dict[str, Any]) -> str:
        from jobs import judging

        return judging.run_here(data)

    def health_report(self) -> dict[str, Any]:
        from jobs import health

        return health.health_report()

    def format_health(self, report: dict[str, Any]) -> str:
        from jobs import health

        return health.format_report(report)

    def serve(self, port: int, address: str | None) -> int:
        from jobs import serve

        return serve.serve(port, address, dispatcher=self)


def wire() -> QueueDispatcher:
    """Wire the queue into the use cases (once, at an entry point); return the dispatcher."""
    from sparring import usecases

    dispatcher = QueueDispatcher()
    usecases.wire(dispatcher)
    return dispatcher
