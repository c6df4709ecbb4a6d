"""Group commit on PostgreSQL: writer threads, each with its own connection.

Each thread takes what is queued (up to ``max_batch`` operations) and runs it as one
transaction in pipeline mode: statements are sent without waiting for their results, so
a group costs a round trip for each read its operations make and one for its COMMIT.
Every caller is answered only after the COMMIT that made its writes durable: under load
many operations share one commit's round trip and fsync. If anything fails before the
COMMIT, the group is rolled back and run again one operation at a time, each inside its
own SAVEPOINT and synced at its end, so a failing operation rolls back alone (with its
own error) while the others commit.

One thread is the default and the fastest near the database: a thread waiting on the
database lets the interpreter go, and more threads only contend for it. More threads
(``threads``) keep committing while one waits on a far database or on a row or advisory
lock held by another node.

Failures, and what the caller sees:

* the operation raised: its savepoint is rolled back, the caller gets the exception;
* deadlock, lock timeout or serialization failure: the operation is rolled back and tried
  again in a later group, up to ``max_retries`` times;
* the connection died before COMMIT: nothing was written; the thread reconnects at once
  and the operation is tried again (bounded). Once a reconnect fails while no thread
  holds a connection, queued and new callers get ``DatabaseUnavailable(in_doubt=False)``
  at once, until a thread reconnects (retrying with exponential backoff);
* the connection died during COMMIT: the outcome is unknown, the caller gets
  ``DatabaseUnavailable(in_doubt=True)``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg

from ..answers import answer
from ..errors import DatabaseUnavailable
from .database import Backoff, PgConn, PgConnection, connect, is_disconnect

T = TypeVar("T")

Operation = Callable[[PgConn], Any]
# Notifications an operation sends if it commits: fixed, or computed from its result.
Notifications = Sequence[tuple[str, str]] | Callable[[Any], Iterable[tuple[str, str]]]

# deadlock_detected, lock_not_available (lock_timeout), serialization_failure.
RETRYABLE = frozenset({"40P01", "55P03", "40001"})

# How many operations may share one transaction; bounds the latency of the first.
MAX_BATCH = 256

# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD = 7999


class _Item:
    __slots__ = ("fn", "future", "loop", "notify", "retries")

    def __init__(
        self,
        fn: Operation,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        notify: Notifications,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.notify = notify
        self.retries = 0


class _ConnectionLost(Exception):
    """The connection died inside a group, before COMMIT."""


def _answer(item: _Item, result: Any, error: BaseException | None) -> None:
    answer(item.loop, item.future, result, error)


class PgWriter:
    """Group-committing writer threads; ``start``/``stop``/``run`` as SQLite's writer.

    ``commits`` counts committed transactions, ``retries`` operations tried again.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        threads: int = 1,
        max_batch: int = MAX_BATCH,
        max_retries: int = 8,
        lock_timeout_ms: int = 5000,
        backoff: Backoff | None = None,
        name: str = "stepwise-write",
    ) -> None:
        if threads < 1 or max_batch < 1:
            raise ValueError("threads and max_batch must be at least 1")
        self._conninfo = conninfo
        self._threads_wanted = threads
        self._max_batch = max_batch
        self._max_retries = max_retries
        self._lock_timeout_ms = lock_timeout_ms
        self._backoff = backoff or Backoff()
        self._name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connected = 0
        # Set when a connection attempt failed while no thread had one: callers are then
        # refused at once instead of queueing behind a database that is down.
        self._unreachable = False
        self._started = 0
        self._all_started = threading.Event()
        self._startup_error: BaseException | None = None
        self.commits = 0
        self.retries = 0

    # ---- public --------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Whether at least one writer thread holds a live connection."""
        return self._connected > 0

    def start(self) -> None:
        """Open every thread's connection; raise if the database cannot be reached."""
        for index in range(self._threads_wanted):
            thread = threading.Thread(target=self._loop, name=f"{self._name}-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._all_started.wait()
        error = self._startup_error
        if error is not None:
            self.stop()
            raise error

    def stop(self) -> None:
        """Finish what is being committed, then close the connections."""
        if not self._threads:
            return
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        stopped = RuntimeError("the writer was stopped")
        while True:  # what no thread took, and the stop markers threads left
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                _answer(item, None, stopped)
        # Ready to start again.
        self._stopping.clear()
        self._all_started.clear()
        self._started = 0
        self._startup_error = None
        self._unreachable = False

    async def run(self, fn: Callable[[PgConn], T], *, notify: Notifications = ()) -> T:
        """``fn(conn)`` in a group transaction; its result once that transaction committed.

        ``notify``: ``(channel, payload)`` pairs, or a function of ``fn``'s result giving
        them, sent with ``pg_notify`` in the same transaction (so only if ``fn`` commits).
        """
        if not self._threads or self._stopping.is_set():
            raise RuntimeError("the writer is not running")
        if not callable(notify):
            _check_payloads(notify)
        if self._unreachable:
            raise DatabaseUnavailable("PostgreSQL is unavailable")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Item(fn, future, loop, notify))
        return await future

    # ---- the threads ---------------------------------------------------------------
    def _connect(self) -> PgConnection:
        conn = connect(self._conninfo, application_name=self._name)
        conn.execute(f"SET lock_timeout = {int(self._lock_timeout_ms)}")
        return conn

    def _mark_started(self) -> None:
        with self._lock:
            self._started += 1
            if self._started == self._threads_wanted:
                self._all_started.set()

    def _loop(self) -> None:
        conn: PgConnection | None = None
        failures = 0
        first = True
        try:
            while True:
                if conn is None:
                    try:
                        conn = self._connect()
                    except psycopg.OperationalError as exc:
                        if first:
                            self._startup_error = DatabaseUnavailable(
                                f"cannot connect to PostgreSQL: {exc}"
                            )
                            self._mark_started()
                            return
                        if self._connected == 0:
                            self._unreachable = True
                            self._fail_queued(
                                DatabaseUnavailable(f"PostgreSQL is unavailable: {exc}")
                            )
                        if self._stopping.wait(self._backoff.delay(failures)):
                            return
                        failures += 1
                        continue
                    failures = 0
                    with self._lock:
                        self._connected += 1
                        self._unreachable = False
                    if first:
                        first = False
                        self._mark_started()
                batch, stop = self._take()
                if batch and not self._commit_group(conn, batch):
                    with self._lock:
                        self._connected -= 1
                    conn.close()
                    conn = None
                if stop:
                    return
        finally:
            if conn is not None:
                with self._lock:
                    self._connected -= 1
                conn.close()

    def _take(self) -> tuple[list[_Item], bool]:
        """What is queued, up to ``max_batch`` items, and whether to stop after it."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _fail_queued(self, error: BaseException) -> None:
        stops = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stops += 1
            else:
                _answer(item, None, error)
        for _ in range(stops):
            self._queue.put(None)

    def _retry(self, item: _Item, error: BaseException) -> None:
        if item.retries >= self._max_retries:
            _answer(item, None, error)
            return
        item.retries += 1
        with self._lock:
            self.retries += 1
        self._queue.put(item)

    def _commit_group(self, conn: PgConnection, batch: list[_Item]) -> bool:
        """Run ``batch`` in one transaction; False if the connection was lost."""
        outcome = False
        try:
            with conn.pipeline() as pipeline:
                together = self._together(conn, pipeline, batch)
                outcome = self._one_by_one(conn, pipeline, batch) if together is None else together
        except psycopg.Error as exc:
            # Leaving pipeline mode syncs once more: every caller was answered already,
            # but a connection that fails here is not used again.
            return outcome and not is_disconnect(exc, conn)
        return outcome

    def _together(
        self, conn: PgConnection, pipeline: psycopg.Pipeline, batch: list[_Item]
    ) -> bool | None:
        """The usual case, where no operation fails: the group costs a round trip for each
        read its operations make, and one for the COMMIT.

        The outcome as ``_one_by_one``'s, or None if anything failed before COMMIT (other
        than a deadlock or lock timeout, after which the group is queued again): the
        transaction was rolled back and the group must run one by one, where each
        operation's error is its own.
        """
        done: list[tuple[_Item, Any]] = []
        notes: list[tuple[str, str]] = []
        pg = PgConn(conn, pipeline)
        committing = False
        try:
            conn.execute("BEGIN")
            for item in batch:
                result = item.fn(pg)
                sent = list(item.notify(result) if callable(item.notify) else item.notify)
                _check_payloads(sent)
                done.append((item, result))
                notes.extend(sent)
            if notes:
                conn.execute(
                    "SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS n(c, p)",
                    ([c for c, _ in notes], [p for _, p in notes]),
                )
            # An error in any statement makes the server skip the rest, COMMIT included.
            conn.execute("COMMIT")
            committing = True
            pipeline.sync()
        except BaseException as exc:
            if not is_disconnect(exc, conn):
                _rollback(conn, pipeline)
                if isinstance(exc, psycopg.Error) and exc.sqlstate in RETRYABLE:
                    # A deadlock or a lock timeout: the whole group waits for a later one.
                    for item in batch:
                        self._retry(item, exc)
                    return True
                return None
            if not committing:
                self._lost(batch, exc)
                return False
            doubt = DatabaseUnavailable(
                f"PostgreSQL connection lost during COMMIT: {exc}", in_doubt=True
            )
            for item in batch:
                _answer(item, None, doubt)
            return False
        with self._lock:
            self.commits += 1
        for item, result in done:
            _answer(item, result, None)
        return True

    def _lost(self, batch: list[_Item], exc: BaseException) -> None:
        """The connection died before COMMIT: nothing was written, everything is retried."""
        error = DatabaseUnavailable(f"PostgreSQL connection lost: {exc}")
        for item in batch:
            self._retry(item, error)

    def _one_by_one(
        self, conn: PgConnection, pipeline: psycopg.Pipeline, batch: list[_Item]
    ) -> bool:
        done: list[tuple[_Item, Any]] = []  # committed with this group, if it commits
        failed: list[tuple[_Item, BaseException]] = []
        again: list[tuple[_Item, BaseException]] = []
        notes: list[tuple[str, str]] = []
        pg = PgConn(conn, pipeline)
        try:
            # Statements whose results nobody reads share round trips: an operation costs
            # one for each read it makes and one for the sync that ends it, where its own
            # errors surface (so they are never blamed on the next operation).
            conn.execute("BEGIN")
            for index, item in enumerate(batch):
                if index:
                    conn.execute("RELEASE SAVEPOINT op")
                conn.execute("SAVEPOINT op")
                try:
                    result = item.fn(pg)
                    sent = list(item.notify(result) if callable(item.notify) else item.notify)
                    _check_payloads(sent)
                    pipeline.sync()
                except BaseException as exc:
                    if is_disconnect(exc, conn):
                        raise _ConnectionLost from exc
                    _undo(conn, pipeline)
                    if isinstance(exc, psycopg.Error) and exc.sqlstate in RETRYABLE:
                        again.append((item, exc))
                    else:
                        failed.append((item, exc))
                else:
                    done.append((item, result))
                    notes.extend(sent)
        except BaseException as exc:
            lost = isinstance(exc, _ConnectionLost) or is_disconnect(exc, conn)
            if not lost:
                _rollback(conn, pipeline)
            # Nothing of this group was written: an operation that failed alone keeps its
            # error, every other one may be tried again.
            cause = exc.__cause__ if isinstance(exc, _ConnectionLost) else exc
            error = DatabaseUnavailable(f"PostgreSQL connection lost: {cause}") if lost else exc
            answered = {id(item) for item, _ in failed}
            for item, own in failed:
                _answer(item, None, own)
            for item in batch:
                if id(item) not in answered:
                    self._retry(item, error)
            return not lost

        try:
            # The notifications and the COMMIT share a round trip: a failed notification
            # skips the COMMIT, and the transaction is rolled back below.
            if notes:
                conn.execute(
                    "SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS n(c, p)",
                    ([c for c, _ in notes], [p for _, p in notes]),
                )
            conn.execute("COMMIT")
            pipeline.sync()
        except BaseException as exc:
            if is_disconnect(exc, conn):
                doubt = DatabaseUnavailable(
                    f"PostgreSQL connection lost during COMMIT: {exc}", in_doubt=True
                )
                for item, _ in done:
                    _answer(item, None, doubt)
                outcome = False
            else:
                # The server refused the COMMIT: nothing was written.
                _rollback(conn, pipeline)
                retryable = isinstance(exc, psycopg.Error) and exc.sqlstate in RETRYABLE
                for item, _ in done:
                    if retryable:
                        self._retry(item, exc)
                    else:
                        _answer(item, None, exc)
                outcome = True
        else:
            with self._lock:
                self.commits += 1
            for item, result in done:
                _answer(item, result, None)
            outcome = True
        # Operations that failed alone were rolled back to their savepoint whatever the
        # COMMIT did, so their answers do not depend on it.
        for item, error in failed:
            _answer(item, None, error)
        for item, error in again:
            self._retry(item, error)
        return outcome


def _undo(conn: PgConnection, pipeline: psycopg.Pipeline) -> None:
    """Roll the current operation back to its savepoint."""
    # After an error the server skips what follows until a sync: sync first, so that
    # the ROLLBACK TO is not skipped, and drop an error the operation left in flight.
    try:
        pipeline.sync()
    except psycopg.Error as exc:
        if is_disconnect(exc, conn):
            raise _ConnectionLost from exc
    conn.execute("ROLLBACK TO SAVEPOINT op")
    pipeline.sync()


def _rollback(conn: PgConnection, pipeline: psycopg.Pipeline) -> None:
    # A sync first: after an error the server would skip the ROLLBACK.
    try:
        pipeline.sync()
    except psycopg.Error:
        pass
    try:
        conn.execute("ROLLBACK")
        pipeline.sync()
    except psycopg.Error:
        pass


def _check_payloads(pairs: Iterable[tuple[str, str]]) -> None:
    for channel, payload in pairs:
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(f"NOTIFY payload for {channel!r} is longer than {MAX_PAYLOAD} bytes")
