"""Short DuckDB access with retry: the one home of ``import duckdb``.

DuckDB lets one process hold a file read-write *or* several processes hold it
read-only, and never waits for a lock: a conflicting open fails at once. So no process
keeps the file between operations, and every open that meets a conflict is retried
with jittered exponential backoff; a conflict is never an error the writer sees, and
readers only give up at their deadline.

Opening a DuckDB instance costs about 30 ms of CPU even for an empty file, so each
process keeps one *in-memory* instance for its whole life and ``ATTACH``es the file for
each operation (2-5 ms at a million rows), ``DETACH``ing it, which releases the file
lock, as soon as the last user in the process is done. Inside the process, concurrent
readers share a read-only attachment; a writer waits for them, then attaches read-write
(readers arriving meanwhile read through the writer's attachment). A writer blocked by
another process (say a notebook holding the file read-only) does not block this
process's readers.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

Connection = duckdb.DuckDBPyConnection
Error = duckdb.Error
ConstraintError = duckdb.ConstraintException

_CONFLICT_MARKERS = (
    "Could not set lock on file",
    "Conflicting lock is held",
    "different configuration than existing connections",
    "database is locked",
)


class StoreBusy(RuntimeError):
    """The database stayed locked by another process past the reader's deadline."""


class StoreMissing(RuntimeError):
    """Nothing has been recorded yet: the database file does not exist."""


def is_lock_conflict(error: BaseException) -> bool:
    return isinstance(error, duckdb.Error) and any(marker in str(error) for marker in _CONFLICT_MARKERS)


class Backoff:
    """Jittered exponential backoff, capped."""

    def __init__(self, base_s: float = 0.002, cap_s: float = 0.04) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)


_host_lock = threading.Lock()
_host: Connection | None = None


def _host_connection() -> Connection:
    """The process's in-memory DuckDB instance, created once."""
    global _host
    with _host_lock:
        if _host is None:
            threads = os.environ.get("SPARRING_DUCKDB_THREADS")
            config: dict[str, str | bool | int | float | list[str]] = {"threads": int(threads)} if threads else {}
            _host = duckdb.connect(":memory:", config=config)
        return _host


def waiting_marker(path: Path) -> Path:
    return path.with_name(path.name + ".waiting")


def signal_waiting(path: Path) -> None:
    """Tell whoever holds the file that another process is waiting for it."""
    try:
        waiting_marker(path).touch()
    except OSError:
        pass  # a read-only folder: the holder's time limit still bounds the wait


def someone_waited_since(path: Path, since: float) -> bool:
    """Whether another process found the file locked after ``since`` (a time.time())."""
    try:
        return waiting_marker(path).stat().st_mtime >= since
    except OSError:
        return False


def host_cursor() -> Connection:
    """A cursor on the in-memory instance, for work that touches no file (parsing)."""
    return _host_connection().cursor()


# File -> time.time() since when this process's writer finds it locked by another process
# (a notebook, a worker). Published with the worker heartbeat, so that pages can say why
# a battle stands still; cleared as soon as the writer has the file.
_writes_waiting: dict[Path, float] = {}


def writes_waiting_since() -> float | None:
    """Since when this process's writes wait for a database file another process holds, if they do."""
    return min(_writes_waiting.values(), default=None)


class _Gate:
    """Who in this process uses one file, and in which mode it is attached."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.alias = "sp_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        self.cond = threading.Condition()
        self.mode: str | None = None
        self.users = 0
        self.writers_waiting = 0
        self.writer_blocked = False
        self._control: Connection | None = None
        self._stale = False  # a DETACH failed: detach again before attaching

    def acquire(self, write: bool, deadline_s: float | None) -> None:
        backoff = Backoff()
        started = time.monotonic()
        warned = started
        with self.cond:
            if write:
                self.writers_waiting += 1
            try:
                while True:
                    if self._can_share(write):
                        self.users += 1
                        return
                    if self.mode is None and (write or self.writers_waiting == 0 or self.writer_blocked):
                        try:
                            self._attach(write)
                        except duckdb.Error as error:
                            if not is_lock_conflict(error):
                                raise
                            signal_waiting(self.path)
                            if write:
                                self.writer_blocked = True
                                _writes_waiting.setdefault(self.path, time.time())
                            self._check_deadline(started, deadline_s, error)
                            if time.monotonic() - warned > 5:
                                log.warning("%s locked by another process, still retrying", self.path.name)
                                warned = time.monotonic()
                            self.cond.wait(timeout=backoff.next_delay())
                            continue
                        if write:
                            self.writer_blocked = False
                            _writes_waiting.pop(self.path, None)
                        self.mode = "rw" if write else "ro"
                        self.users = 1
                        return
                    self._check_deadline(started, deadline_s, None)
                    self.cond.wait(timeout=0.05)
            finally:
                if write:
                    self.writers_waiting -= 1

    def _can_share(self, write: bool) -> bool:
        if self.mode == "rw":
            return True
        if self.mode == "ro" and not write:
            return self.writers_waiting == 0 or self.writer_blocked
        return False

    def _check_deadline(self, started: float, deadline_s: float | None, error: BaseException | None) -> None:
        if deadline_s is not None and time.monotonic() - started >= deadline_s:
            raise StoreBusy(
                f"The database {self.path.name} stayed locked for {deadline_s:.0f} s "
                "(another process, often a notebook, holds it). Try again in a moment."
            ) from error

    def _attach(self, write: bool) -> None:
        if not write and not self.path.exists():
            raise StoreMissing(f"No database at {self.path} yet: nothing has been recorded.")
        if self._control is None:
            self._control = _host_connection().cursor()
        options = "" if write else " (READ_ONLY)"
        if self._stale:
            self._control.execute(f"DETACH DATABASE IF EXISTS {self.alias}")
            self._stale = False
        self._control.execute(f"ATTACH '{_quote(self.path)}' AS {self.alias}{options}")

    def release(self) -> None:
        with self.cond:
            self.users -= 1
            if self.users == 0:
                assert self._control is not None
                try:
                    self._control.execute(f"DETACH {self.alias}")
                except duckdb.Error:
                    # Leave the gate usable: the next attach starts from a clean slate.
                    log.exception("Detaching %s failed", self.path.name)
                    self._stale = True
                finally:
                    self.mode = None
                    self.cond.notify_all()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


_gates: dict[Path, _Gate] = {}
_gates_lock = threading.Lock()


def _gate(path: Path) -> _Gate:
    key = path.resolve()
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = _Gate(key)
        return gate


@contextlib.contextmanager
def _using(path: Path, *, write: bool, deadline_s: float | None) -> Iterator[Connection]:
    gate = _gate(path)
    gate.acquire(write, deadline_s)
    try:
        cursor = _host_connection().cursor()
        try:
            cursor.execute(f"USE {gate.alias}")
            yield cursor
        finally:
            cursor.close()
    finally:
        gate.release()


@contextlib.contextmanager
def holding(path: Path, *, write: bool, deadline_s: float | None = None) -> Iterator[Connection]:
    """The file attached for several operations in a row (the caller keeps it short)."""
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
    with _using(path, write=write, deadline_s=deadline_s) as con:
        yield con


@contextlib.contextmanager
def reading(path: Path, deadline_s: float | None = 30.0) -> Iterator[Connection]:
    """A connection for one read; the file is released on exit."""
    with _using(path, write=False, deadline_s=deadline_s) as con:
        yield con


@contextlib.contextmanager
def writing(path: Path, deadline_s: float | None = None) -> Iterator[Connection]:
    """A connection for one transaction: committed on success, rolled back on error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _using(path, write=True, deadline_s=deadline_s) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


def connect_read_only(path: Path, deadline_s: float | None = 30.0, *, python_scans: bool = True) -> Connection:
    """A plain read-only connection of one's own (notebooks), opened with retry.

    It holds the file until closed: while it is open, writers wait. ``python_scans=False`` turns
    off DuckDB's lookup of unknown table names among the caller's Python variables: a helper's
    own functions (``sparring.data.runs``) must not answer for a mistyped table name.
    """
    if not path.exists():
        raise StoreMissing(f"No database at {path} yet: nothing has been recorded.")
    backoff = Backoff(cap_s=0.25)
    started = time.monotonic()
    while True:
        try:
            return duckdb.connect(str(path), read_only=True, config={"python_enable_replacements": python_scans})
        except duckdb.Error as error:
            if not is_lock_conflict(error):
                raise
            signal_waiting(path)
            if deadline_s is not None and time.monotonic() - started >= deadline_s:
                raise StoreBusy(f"{path.name} stayed locked for {deadline_s:.0f} s; try again.") from error
            time.sleep(backoff.next_delay())
