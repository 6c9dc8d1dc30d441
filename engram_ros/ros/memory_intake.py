"""The memory node's observation intake: from serialized messages to group commits.

A batch taken off the subscription (:class:`~engram_ros.ros.take_loop.TakeLoop`, serialized
messages with their message infos) goes through, in this order, each step counted in
:class:`~engram_ros.ros.memory_health.MemoryHealth`:

1. loss: each publisher's sequence gap before the message (``lost``);
2. the per-publisher rate limit (``refused_rate``) and the size limit (``dropped_oversize``),
   both before the message is deserialized, so a flood or an oversized message costs little;
3. conversion and the observation's own checks (``dropped_<reason>``);
4. the bounded write queue (``dropped_queue_full`` when storage has failed for long), written
   ``max_batch`` at a time with :meth:`MemoryStore.ingest_many`: one transaction per batch.

Everything taken is thus stored, counted as refused or dropped, or waits in the queue.
"""

from __future__ import annotations

import time
from typing import Callable

from rclpy.serialization import deserialize_message

from engram_ros.core.memory import IngestResult
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory.write_queue import describe
from engram_ros.core.memory.write_queue import WriteQueue
from engram_ros.core.model.engram import Observation
from engram_ros.msg import Observation as ObservationMsg
from engram_ros.ros.conversions import memory as conversions
from engram_ros.ros.memory_health import MemoryHealth
from engram_ros.ros.publisher_loss import PublisherLoss


class ObservationIntake:
    """Steps 1-4 above for one store; called from the intake thread only (the queue's own
    lock makes :meth:`flush` at shutdown safe too).

    :param on_written: called after a batch stored at least one observation.
    """

    def __init__(self, store: MemoryStore, health: MemoryHealth, logger, *, rate_limit: float,
                 max_bytes: int, queue_size: int, max_batch: int,
                 on_written: Callable[[], None]) -> None:
        self.store = store
        self.health = health
        self.loss = PublisherLoss(rate_limit)
        self.max_bytes = max_bytes
        self.max_batch = max_batch
        self.queue: WriteQueue[Observation] = WriteQueue(capacity=queue_size,
                                                         write_many=self._write)
        self._logger = logger
        self._on_written = on_written

    def take(self, items: list[tuple[bytes, dict]]) -> None:
        """Count, check and queue a batch of ``(serialized message, message info)``, then
        write what is due."""
        now = time.monotonic()
        counts = dict.fromkeys(('received', 'lost', 'refused_rate', 'dropped_oversize'), 0)
        for raw, info in items:
            counts['received'] += 1
            counts['lost'] += self.loss.note(info, now)
            if not self.loss.admit(info, now):
                counts['refused_rate'] += 1
                continue
            if len(raw) > self.max_bytes:
                counts['dropped_oversize'] += 1
                continue
            try:
                obs = conversions.observation_from_msg(deserialize_message(raw, ObservationMsg))
                obs.validate(self.store.config.dim, self.store.config.frame_id)
            except Exception as exc:       # InvalidObservation, a message that does not parse
                self.health.dropped(exc if isinstance(exc, ValueError) else ValueError(exc))
                continue
            if not self.queue.put(obs):
                self._logger.error(
                    f'write queue full ({self.queue.capacity} observations wait for storage): '
                    f'observation dropped; {self.health.faults.summary()}',
                    throttle_duration_sec=5.0)
        self.health.add(**counts)
        if counts['refused_rate'] or counts['dropped_oversize']:
            self._logger.warning(
                f'refused {counts["refused_rate"]} observations over the per-publisher rate '
                f'limit ({self.loss.rate_limit:g}/s) and {counts["dropped_oversize"]} over '
                f'{self.max_bytes} bytes', throttle_duration_sec=5.0)
        self.drain()

    def drain(self) -> None:
        """Write queued observations, oldest first; on a storage error they wait and are
        tried again after a back-off (the intake thread calls this when idle too)."""
        if not self.queue.due():
            return
        drained = self.queue.drain(max_batch=self.max_batch)
        for _, exc in drained.rejected:
            self.health.dropped(exc)
        if drained.error is not None:
            self.health.faults.failed('ingest', drained.error)
            self._logger.error(
                f'storage refused an observation ({describe(drained.error)}); '
                f'{len(self.queue)} wait to be written, retried with back-off',
                throttle_duration_sec=5.0)
        elif drained.written:
            self.health.faults.succeeded('ingest')

    def flush(self) -> list[Observation]:
        """At shutdown: write what waits (unless storage is failing); what could not be
        written, which is then lost."""
        if len(self.queue) and not self.queue.failing:
            self.queue.drain(force=True, max_batch=self.max_batch)
        return self.queue.take_all()

    def _write(self, observations: list[Observation]) -> list[IngestResult | Exception]:
        """Ingest a batch in one transaction (:meth:`MemoryStore.ingest_many`), counting what
        each did; the errors go back to the queue, which retries storage errors and reports
        the others as rejected."""
        results = self.store.ingest_many(observations)
        done = [r for r in results if isinstance(r, IngestResult)]
        if done:
            self.health.add(ingested=len(done), merged=sum(r.merged for r in done),
                            promoted=sum(r.promoted for r in done),
                            evicted=sum(len(r.evicted) for r in done))
            self._on_written()
        return results
