"""Small helpers shared by tests (no mocks of our own code: real store, sim models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparring import usecases
from sparring.runtime import get_runtime


def new_battle(**fields: Any) -> str:
    data: dict[str, Any] = {"seed": 7, "max_messages": 10}
    data.update(fields)
    return usecases.create_battle(data)


def transcript(battle_id: str) -> Any:
    result = get_runtime().store.load_transcript(battle_id)
    assert result is not None
    return result


def scalar(sql: str, params: list[Any] | None = None) -> Any:
    row = get_runtime().store.read(lambda con: con.execute(sql, params or []).fetchone())
    return row[0] if row else None


def rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return get_runtime().store.read(lambda con: con.execute(sql, params or []).fetchall())


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """``python -m sparring ARGS`` in this process: the same ``cli.main`` with this test's environment.

    A subprocess imports litellm again (4-7 s on a busy 2-core machine); tests/core/test_cli.py
    keeps the end-to-end runs in a subprocess like a user's shell. An argparse refusal
    (SystemExit) gives its exit code like the process would.
    """
    import contextlib
    import io

    from sparring import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return CliResult(code, out.getvalue(), err.getvalue())


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Largest number of [start, end) intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def wait_until(predicate: Any, timeout: float, interval: float = 0.1, message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


class WorkerProcess:
    """``python -m jobs.worker`` in a subprocess, with this test's environment."""

    def __init__(self, threads: int = 4, env: dict[str, str] | None = None, log_path: Any = None) -> None:
        import os
        import subprocess
        import sys
        import tempfile

        self.log_path = log_path or tempfile.mkstemp(prefix="worker-", suffix=".log")[1]
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jobs.worker", "--workers", str(threads)],
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        import signal

        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except Exception:
                self.process.kill()
                self.process.wait(5)
        self._log.close()

    def log(self) -> str:
        with open(self.log_path) as handle:
            return handle.read()


def live_worker_pids() -> set[int]:
    from jobs.submit import live_workers

    return {int(w["pid"]) for w in live_workers()}


def wait_for_worker(worker: WorkerProcess, timeout: float = 30) -> None:
    wait_until(lambda: worker.pid in live_worker_pids(), timeout, message=f"worker {worker.pid} heartbeat")


def wait_finished(battle_ids: list[str], timeout: float) -> list[Any]:
    store = get_runtime().store

    def done() -> Any:
        views = store.list_battles_by_id(battle_ids)
        return views if len(views) == len(battle_ids) and all(v.finished for v in views) else None

    return wait_until(done, timeout, interval=0.2, message=f"{len(battle_ids)} battles to finish")
