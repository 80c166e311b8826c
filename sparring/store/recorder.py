"""Group commit: many writers, one short read-write transaction per batch.

Callers hand records over and wait until they are committed. One thread per process and
file drains the queue: whatever arrived while the previous commit was running goes into
the next one, so the cost of opening the file (tens of milliseconds on a large file) is
shared by everything waiting. A lock held by another process (a worker, a notebook) is
waited out with jittered backoff: records are never dropped and the lock is never an
error for the writer.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from sparring import records as r
from sparring.store import db
from sparring.store.apply import apply_records

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    records: Sequence[r.Record]
    future: Future[None] = field(default_factory=Future)


@dataclass
class CommitStats:
    commits: int = 0
    records: int = 0
    last_commit_ms: float = 0.0
    commit_ms: list[float] = field(default_factory=list)


class GroupCommitter:
    """Serialises writes to one DuckDB file from one process."""

    def __init__(
        self,
        path: Path,
        *,
        linger_s: float = 0.002,
        max_batch: int = 20_000,
        max_hold_s: float = 0.05,
        courtesy_s: float = 0.01,
        session_idle_s: float = 0.01,
    ) -> None:
        self.path = path
        self.courtesy_s = courtesy_s
        self.session_idle_s = session_idle_s
        self.linger_s = linger_s
        self.max_batch = max_batch
        self.max_hold_s = max_hold_s
        self.stats = CommitStats()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = self._new_thread()
        self._started = False
        self._start_lock = threading.Lock()
        self._in_hand: list[_Pending] = []  # the batch being committed
        self._stop_seen = False  # close() asked the thread to stop

    def submit(self, records: Sequence[r.Record]) -> Future[None]:
        pending = _Pending(list(records))
        if not pending.records:
            pending.future.set_result(None)
            return pending.future
        with self._start_lock:  # never enqueue behind a closing thread's stop marker
            if self._started and not self._thread.is_alive():
                # Never expected (the thread catches everything), but a dead committer
                # must not leave writers waiting forever: start a fresh one.
                log.error("The committer thread of %s had stopped; starting a new one", self.path.name)
                self._thread = self._new_thread()
                self._started = False
            if not self._started:
                self._started = True
                self._thread.start()
            self._queue.put(pending)
        return pending.future

    def write(self, records: Sequence[r.Record], timeout: float | None = None) -> None:
        """Commit ``records``; return once they are durable (or raise why they are not)."""
        self.submit(records).result(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is waiting and stop the thread; a later write starts a new one."""
        with self._start_lock:
            if self._started:
                self._queue.put(None)
                self._thread.join(timeout)
                self._thread = self._new_thread()
                self._started = False

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._run, name=f"group-commit:{self.path.name}", daemon=True)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._in_hand = [first]
            self._stop_seen = False
            try:
                stop, held_to_the_limit = self._session(first)
            except Exception as error:
                # The file could not be attached or a transaction could not be ended:
                # the writers of this batch get the error instead of waiting forever,
                # and the thread lives on for the next writers.
                log.exception("Writing to %s failed", self.path)
                for pending in self._in_hand:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                stop, held_to_the_limit = self._stop_seen, False
            if stop:
                return
            if held_to_the_limit:
                # Sustained load: leave the file free for a moment so that other
                # processes (readers, other workers) can take their turn.
                time.sleep(self.courtesy_s)

    def _session(self, first: _Pending) -> tuple[bool, bool]:
        """Attach once and commit batch after batch while writers keep coming.

        Attaching and detaching (which checkpoints) cost more than a small commit, so
        under load the file stays attached across consecutive commits (and for
        ``session_idle_s`` after the last one), but never longer than ``max_hold_s``:
        other processes (workers, readers, notebooks) get their turn.
        Returns (asked to stop, held for the whole of ``max_hold_s``).
        """
        batch = [first]
        self._in_hand = batch
        stop = self._collect(batch, len(first.records))
        with db.holding(self.path, write=True, deadline_s=None) as con:
            started = time.monotonic()
            checked_at = time.time()
            while True:
                self._commit(con, batch)
                if stop:
                    return True, False
                if time.monotonic() - started > self.max_hold_s:
                    # Let go only if another process is waiting for the file (it leaves a
                    # marker when it finds it locked); otherwise keep committing.
                    if db.someone_waited_since(self.path, checked_at):
                        return False, True
                    started = time.monotonic()
                    checked_at = time.time()
                try:
                    # A writer that is about to come back (a battle between two model
                    # calls) finds the file still attached: no reattach, no checkpoint.
                    item = self._queue.get(timeout=self.session_idle_s)
                except queue.Empty:
                    return False, False
                if item is None:
                    self._stop_seen = True
                    return True, False
                batch = [item]
                self._in_hand = batch
                stop = self._collect(batch, len(item.records))

    def _collect(self, batch: list[_Pending], size: int) -> bool:
        deadline = time.monotonic() + self.linger_s
        while size < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                self._stop_seen = True
                return True
            batch.append(item)
            size += len(item.records)
        return False

    def _commit(self, con: db.Connection, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            con.execute("BEGIN TRANSACTION")
            apply_records(con, [rec for pending in batch for rec in pending.records])
            con.execute("COMMIT")
        except Exception as error:
            with contextlib.suppress(db.Error):  # a failed COMMIT has already rolled back
                con.execute("ROLLBACK")
            if len(batch) == 1:
                log.exception("Commit to %s failed", self.path)
                batch[0].future.set_exception(error)
                return
            # One bad submission must not fail its neighbours: retry them one by one.
            for pending in batch:
                self._commit(con, [pending])
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.stats.commits += 1
        self.stats.records += sum(len(p.records) for p in batch)
        self.stats.last_commit_ms = elapsed_ms
        if len(self.stats.commit_ms) < 100_000:
            self.stats.commit_ms.append(elapsed_ms)
        for pending in batch:
            pending.future.set_result(None)


_committers: dict[Path, GroupCommitter] = {}
_committers_lock = threading.Lock()


def committer_for(path: Path, linger_s: float = 0.002) -> GroupCommitter:
    """The process-wide committer of ``path`` (one per file, so commits never race)."""
    key = path.resolve()
    with _committers_lock:
        committer = _committers.get(key)
        if committer is None:
            committer = _committers[key] = GroupCommitter(path, linger_s=linger_s)
        return committer


@atexit.register
def flush_all() -> None:
    """Commit whatever is waiting and stop the committer threads (process exit)."""
    with _committers_lock:
        committers = list(_committers.values())
    for committer in committers:
        committer.close(timeout=10)
