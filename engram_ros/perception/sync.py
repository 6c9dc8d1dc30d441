"""Approximate-time synchronisation: sets of messages from several inputs with close stamps.

``message_filters`` is not available from the package index, so this is our own, small
version of its ApproximateTime policy: a bounded queue per input; when a message arrives, the
message closest in stamp is looked up in every other queue; if all lie within ``slop`` seconds
of the new one, the set is emitted at once (lowest latency) and everything up to the matched
stamps is removed. Messages evicted from a full queue, or passed over by a match, are counted
in :attr:`ApproximateTimeSynchronizer.dropped`.
"""

from __future__ import annotations

from collections import Counter
from collections import deque
from typing import Any
from typing import Sequence

from engram_ros.perception.errors import InputRejected


class ApproximateTimeSynchronizer:
    """Match messages of ``names`` whose stamps lie within ``slop`` seconds of each other."""

    def __init__(self, names: Sequence[str], slop: float, queue_size: int = 10) -> None:
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError('a synchroniser needs at least two distinct input names')
        if not slop >= 0.0 or queue_size < 1:
            raise ValueError('slop must be >= 0 and queue_size >= 1')
        self.names = tuple(names)
        self.slop = float(slop)
        self.queue_size = int(queue_size)
        self._queues: dict[str, deque[tuple[float, Any]]] = {n: deque() for n in self.names}
        self._last: dict[str, float] = {}
        #: Messages that left a queue without being part of a set, by input name.
        self.dropped_by: Counter[str] = Counter()
        #: Sets emitted.
        self.matched = 0

    @property
    def dropped(self) -> int:
        """Messages that left a queue without being part of a set."""
        return sum(self.dropped_by.values())

    def reset(self) -> None:
        """Forget every queued message and stamp (after a time jump, e.g. a simulator reset)."""
        for queue in self._queues.values():
            queue.clear()
        self._last.clear()

    def queued(self, name: str) -> int:
        return len(self._queues[name])

    def add(self, name: str, stamp: float, item: Any) -> tuple[float, dict[str, Any]] | None:
        """Queue ``item`` of input ``name``; return ``(stamp, {name: item})`` once a set is whole.

        The returned stamp is the new message's.

        :raises KeyError: for an unknown input name.
        :raises InputRejected: ``stamp_backwards`` when ``stamp`` is not after the previous
            stamp of the same input.
        """
        queue = self._queues[name]
        last = self._last.get(name)
        if last is not None and stamp <= last:
            raise InputRejected('stamp_backwards',
                                f'{name}: stamp {stamp:.6f} is not after {last:.6f}')
        self._last[name] = stamp
        queue.append((stamp, item))
        if len(queue) > self.queue_size:
            queue.popleft()
            self.dropped_by[name] += 1
        match: dict[str, int] = {name: len(queue) - 1}
        for other in self.names:
            if other == name:
                continue
            best = self._closest(self._queues[other], stamp)
            if best is None or abs(self._queues[other][best][0] - stamp) > self.slop:
                return None
            match[other] = best
        items = {}
        for n, index in match.items():
            q = self._queues[n]
            self.dropped_by[n] += index    # older messages passed over by this set
            for _ in range(index):
                q.popleft()
            items[n] = q.popleft()[1]
        self.matched += 1
        return stamp, items

    @staticmethod
    def _closest(queue: deque[tuple[float, Any]], stamp: float) -> int | None:
        best, best_gap = None, float('inf')
        for i, (t, _) in enumerate(queue):
            gap = abs(t - stamp)
            if gap < best_gap:
                best, best_gap = i, gap
        return best
