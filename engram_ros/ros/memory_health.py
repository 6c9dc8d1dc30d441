"""What the memory node counts and how it reports trouble: one place for its counters.

Every received, written, merged or dropped observation, every request and every failure is
counted here under one lock (the callbacks run in several threads), so diagnostics
(:mod:`engram_ros.ros.diagnostics`) report them all: nothing is lost silently. Storage
failures are tracked per operation (:class:`~engram_ros.core.memory.write_queue.StorageFaults`):
while one fails, diagnostics say ERROR and service messages say so (:meth:`storage_note`).
"""

from __future__ import annotations

import threading

from engram_ros.core.memory import ObservationExcluded
from engram_ros.core.memory.write_queue import describe
from engram_ros.core.memory.write_queue import is_storage_error
from engram_ros.core.memory.write_queue import StorageFaults
from engram_ros.core.memory.write_queue import WriteQueue
from engram_ros.core.model.engram import REASON_MALFORMED
from engram_ros.ros.diagnostics import MEMORY_COUNTERS


class MemoryHealth:
    """The memory node's counters and storage faults; ``logger`` is the node's."""

    def __init__(self, logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(MEMORY_COUNTERS, 0)
        self.faults = StorageFaults()

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self._lock:
            self._counters[name] += n

    def add(self, **amounts: int) -> None:
        """Add to several counters at once."""
        with self._lock:
            for name, n in amounts.items():
                self._counters[name] += n

    def snapshot(self, queue: WriteQueue) -> dict[str, int]:
        """Every counter, the write queue's and the faults' included, as of now."""
        with self._lock:
            self._counters.update(storage_errors=self.faults.errors,
                                  dropped_queue_full=queue.overflowed,
                                  written_late=queue.written_late)
            return dict(self._counters)

    def dropped(self, exc: Exception) -> None:
        """Count (by reason) and log an observation the memory will not store."""
        if isinstance(exc, ObservationExcluded):
            self.count('dropped_privacy')
            self._logger.info(str(exc), throttle_duration_sec=10.0)
            return
        if isinstance(exc, ValueError):
            reason = getattr(exc, 'reason', REASON_MALFORMED)
            self.count('dropped_malformed' if reason == REASON_MALFORMED else f'dropped_{reason}')
            self._logger.warning(f'dropped an observation: {exc}', throttle_duration_sec=5.0)
            return
        self.count('dropped_error')
        self._logger.error(f'dropped an observation: {exc!r}', throttle_duration_sec=5.0)

    def failed(self, operation: str, exc: Exception) -> str:
        """Log and count an unexpected error of ``operation``; the text for its message."""
        if is_storage_error(exc):
            self.faults.failed(operation, exc)
            self._logger.error(f'{operation}: storage failing: {describe(exc)}',
                               throttle_duration_sec=5.0)
            return f'storage failing: {describe(exc)}'
        self.count('internal_errors')
        self._logger.error(f'{operation} failed: {exc!r}')
        return f'internal error: {exc}'

    def storage_note(self, queue: WriteQueue) -> str:
        """What a response message adds while storage fails ('' when it works)."""
        failing, waiting = self.faults.summary(), len(queue)
        if not failing and not waiting:
            return ''
        return (f' [{failing or "storage works"}; {waiting} observations wait to be written, '
                f'{queue.overflowed} dropped on a full write queue]')
