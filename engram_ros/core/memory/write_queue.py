"""Writes that storage refused, kept in a bounded queue and retried with back-off; and which
operations are failing on storage right now.

A memory on a robot meets full disks, a file-size limit, a database locked by the CLI or a log
it may not append to. None of that may stop it: recalls go on being answered from what is
stored, and what could not be written waits here, oldest first, and is written once storage
works again. The queue is bounded (a full disk may last for hours): when it is full, new
writes are refused and counted, never silently lost. Retries back off exponentially from
:data:`RETRY_MIN` to :data:`RETRY_MAX` seconds so a locked or full store is not hammered.

Only storage errors (:func:`is_storage_error`) are retried; any other error of a write is
final for that item (the caller counts it) and the queue goes on with the next one. Nothing here
imports ROS: the memory node feeds the queue and drains it from its callbacks.

Batches: with ``write_many`` a drain hands up to ``max_batch`` items at a time to it (one
storage transaction, a group commit, in the memory) and it answers per item. Items whose write
failed on storage stay first in the queue, in order, and the drain stops and backs off as for
one item; the others of the batch are written (or rejected) and leave the queue.
"""

from __future__ import annotations

import collections
import itertools
import sqlite3
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Callable
from typing import Generic
from typing import Sequence
from typing import TypeVar

from engram_ros.core.audit import AuditError
from engram_ros.core.storage import StoreClosedError

#: Observations waiting for storage at most, by default (the memory parameter
#: ``write_queue_size``); each holds a context vector and maybe a depth view (~1-20 KiB).
DEFAULT_CAPACITY = 1000
#: [s] first and longest wait before a failed write is tried again (doubling in between).
RETRY_MIN = 0.5
RETRY_MAX = 30.0

#: Errors of the storage rather than of the thing written: a full or read-only disk, a file
#: size limit, a locked database, a closed store, an audit log that cannot be appended to.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, OSError,
                                                   StoreClosedError, AuditError)

T = TypeVar('T')


def is_storage_error(exc: BaseException) -> bool:
    """True when ``exc`` says storage failed (worth retrying), not the request."""
    return isinstance(exc, STORAGE_ERRORS)


def describe(exc: BaseException) -> str:
    """``Type: message`` of an error, for logs, diagnostics and response messages."""
    return f'{type(exc).__name__}: {exc}'


@dataclass
class Drained(Generic[T]):
    """What one :meth:`WriteQueue.drain` did."""

    #: Items written.
    written: int = 0
    #: Items dropped because their write failed with an error that is not a storage error.
    rejected: list[tuple[T, BaseException]] = field(default_factory=list)
    #: The storage error that stopped the drain (the item stays first in the queue), or None.
    error: BaseException | None = None


class WriteQueue(Generic[T]):
    """A bounded FIFO of pending writes, written by :meth:`drain` with back-off on failure.

    Thread-safe: :meth:`put` never blocks on storage (a subscription callback may call it while
    another thread drains); one :meth:`drain` runs at a time, the others return at once.
    """

    def __init__(self, write: Callable[[T], Any] | None = None,
                 capacity: int = DEFAULT_CAPACITY, *,
                 write_many: Callable[[list[T]], Sequence[Any]] | None = None,
                 retry_min: float = RETRY_MIN, retry_max: float = RETRY_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """:param write: writes one item; raises a storage error when storage fails.
        :param write_many: writes a batch of items; returns one outcome per item, in order:
            the error (an exception instance) that refused that item, or anything else when it
            was written. Raising is the same as answering that error for every item. Used
            instead of ``write`` when given.
        :param capacity: items kept at most; :meth:`put` refuses more.
        :raises ValueError: for ``capacity < 1``, a retry interval that is not positive, or
            neither ``write`` nor ``write_many``.
        """
        if capacity < 1 or not 0.0 < retry_min <= retry_max:
            raise ValueError(f'capacity={capacity} must be >= 1 and 0 < retry_min={retry_min} '
                             f'<= retry_max={retry_max}')
        if write is None and write_many is None:
            raise ValueError('a WriteQueue needs write or write_many')
        self._write = write
        self._write_many = write_many
        self.capacity = int(capacity)
        self._retry_min = float(retry_min)
        self._retry_max = float(retry_max)
        self._clock = clock
        self._items: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self._draining = False
        self._delay = 0.0
        self._next_try = 0.0
        self._late = 0              # queued items that have waited through a storage failure
        #: Items refused by :meth:`put` because the queue was full.
        self.overflowed = 0
        #: Write attempts that failed on storage.
        self.failures = 0
        #: Items written after at least one failed attempt of the queue.
        self.written_late = 0
        #: The last storage error ('' once a write succeeded again).
        self.last_error = ''

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def failing(self) -> bool:
        """True while the last write attempt failed on storage."""
        with self._lock:
            return self._delay > 0.0

    def put(self, item: T) -> bool:
        """Queue ``item`` to be written; False (counted in :attr:`overflowed`) when full."""
        with self._lock:
            if len(self._items) >= self.capacity:
                self.overflowed += 1
                return False
            self._items.append(item)
            self._late += int(self._delay > 0.0)
            return True

    def due(self) -> bool:
        """True when there is something to write and no back-off is pending."""
        with self._lock:
            return bool(self._items) and self._clock() >= self._next_try

    def drain(self, force: bool = False, max_batch: int = 1) -> Drained[T]:
        """Write queued items oldest first, until the queue is empty or storage fails.

        :param force: try even while backing off (a final flush at shutdown).
        :param max_batch: items handed to ``write_many`` at a time (1 without it).
        :raises ValueError: for ``max_batch < 1``.
        """
        if max_batch < 1:
            raise ValueError(f'max_batch={max_batch} must be >= 1')
        out: Drained[T] = Drained()
        with self._lock:
            if self._draining or not (force or self._clock() >= self._next_try):
                return out
            self._draining = True
        try:
            self._drain(out, max_batch if self._write_many is not None else 1)
        finally:
            with self._lock:
                self._draining = False
        return out

    def _write_batch(self, batch: list[T]) -> Sequence[Any]:
        """One outcome per item: its error, or anything else when it was written."""
        try:
            if self._write_many is not None:
                outcomes = self._write_many(batch)
                if len(outcomes) != len(batch):
                    raise RuntimeError(f'write_many answered {len(outcomes)} outcomes for '
                                       f'{len(batch)} items')
                return outcomes
            assert self._write is not None
            return [self._write(batch[0])]
        except Exception as exc:
            return [exc] * len(batch)

    def _drain(self, out: Drained[T], max_batch: int) -> None:
        while True:
            with self._lock:
                if not self._items:
                    return
                # They stay first until written: order is kept (only one drain runs, and put
                # appends at the other end).
                batch = list(itertools.islice(self._items, max_batch))
            outcomes = self._write_batch(batch)
            failed = [(item, o) for item, o in zip(batch, outcomes)
                      if isinstance(o, BaseException) and is_storage_error(o)]
            with self._lock:
                for _ in batch:
                    self._items.popleft()
                self._items.extendleft(item for item, _ in reversed(failed))
                for item, o in zip(batch, outcomes):
                    if isinstance(o, BaseException):
                        if not is_storage_error(o):
                            out.rejected.append((item, o))
                            self._late = max(0, self._late - 1)
                        continue
                    out.written += 1
                    self.written_late += int(self._late > 0)
                    self._late = max(0, self._late - 1)
                if failed:
                    error = failed[0][1]
                    self.failures += 1
                    self.last_error = describe(error)
                    self._late = len(self._items)
                    self._delay = min(self._retry_max, max(self._retry_min, 2.0 * self._delay))
                    self._next_try = self._clock() + self._delay
                    out.error = error
                    return
                if out.written:
                    self._delay = 0.0
                    self._next_try = 0.0
                    self.last_error = ''

    def take_all(self) -> list[T]:
        """Empty the queue and return what it held (what a shutdown could not write)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items


class StorageFaults:
    """Which operations are failing on storage now, and how many storage errors there were.

    An operation (``'ingest'``, ``'recall'``, ``'consolidate'``...) is failing from its first
    storage error until it next succeeds. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}
        #: Storage errors reported by :meth:`failed`, all operations together.
        self.errors = 0

    def failed(self, operation: str, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self._failing[operation] = describe(exc)

    def succeeded(self, operation: str) -> None:
        if operation in self._failing:
            with self._lock:
                self._failing.pop(operation, None)

    def failing(self) -> dict[str, str]:
        """``{operation: last error}`` of the operations failing now."""
        with self._lock:
            return dict(self._failing)

    def summary(self) -> str:
        """One line for messages: ``''`` when nothing is failing."""
        failing = self.failing()
        if not failing:
            return ''
        return 'storage failing: ' + '; '.join(f'{op}: {err}' for op, err in
                                               sorted(failing.items()))


__all__ = ['DEFAULT_CAPACITY', 'Drained', 'RETRY_MAX', 'RETRY_MIN', 'STORAGE_ERRORS',
           'StorageFaults', 'WriteQueue', 'describe', 'is_storage_error']
