"""Where engrams are written and forgotten: storage first, then the index and the state.

Every writer goes through here, so the three copies of the memory move together: a write
commits to storage (outside the index lock), then updates the index and
:class:`~engram_ros.core.memory.state.MemoryState` in one step under the index lock; a
forget removes ids from the index and the state in one step under the index lock, then deletes
the rows (and the evidence files no engram references any more). When the index's tombstones
pass its threshold (:mod:`engram_ros.core.index.compaction`), a forget also compacts it: built
outside the index lock (recalls go on), swapped in under it. Callers hold the store's write
lock.
"""

from __future__ import annotations

import logging
from typing import Callable
from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.audit import id_summary
from engram_ros.core.index.engrams import add_engrams
from engram_ros.core.index.engrams import put_engrams
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.model.engram import Engram

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)
#: Evicted records read at once for the eviction log (see :func:`evict`).
_EVICT_LOG_BATCH = 1000


def publish_one(store: MemoryStore, engram: Engram) -> None:
    """Index and state take in one engram just stored (under ``store._lock``)."""
    index = store.index
    if engram.id in index:
        # Re-posting unchanged tags is most of an update's cost; skip it when they are.
        same_tags = set(index.tags_of(index.slot_of(engram.id))) == set(engram.tags)
        index.update(engram.id, vector=engram.vector, position=engram.position,
                     first_seen=engram.first_seen, last_seen=engram.last_seen,
                     tags=None if same_tags else engram.tags, score=engram.score,
                     count=engram.observation_count)
    else:
        add_engrams(index, [engram])
    store.state.apply((engram,))


def publish(store: MemoryStore, engrams: Sequence[Engram]) -> None:
    """:func:`publish_one` for many engrams (unique ids): one index update for those it
    holds, one add for the rest (under ``store._lock``)."""
    if not engrams:
        return
    put_engrams(store.index, engrams)
    store.state.apply(engrams)


def write(store: MemoryStore, engrams: Sequence[Engram]) -> None:
    """Store changed engrams, then publish them to the index and the state."""
    store.storage.put(engrams)
    with store._lock:
        publish(store, engrams)


def forget(store: MemoryStore, ids: Sequence[int]) -> None:
    """Remove ``ids`` from the index and the state, then delete their rows."""
    if not ids:
        return
    with store._lock:
        unique = np.unique(np.asarray(ids, dtype=np.int64))
        store.index.remove_batch(unique[store.index.has_ids(unique)])
        store.state.remove(ids)
    store.storage.delete(list(ids))
    _LOG.info('forgot %d engrams: %s', len(ids), ', '.join(map(str, list(ids)[:20])))
    compact_if_worth_it(store)


def compact_if_worth_it(store: MemoryStore) -> bool:
    """Compact the index when its tombstones passed the threshold; True when it did."""
    with store._lock:
        if not store.index.worth_compacting():
            return False
        before = store.index.slot_count
    # The write lock keeps every writer out, so the index cannot change while it is copied;
    # readers only read it.
    fresh = store.index.compacted()
    with store._lock:
        store.index.compact(fresh)
    _LOG.info('index compacted: %d slots -> %d', before, len(fresh))
    return True


def evict(store: MemoryStore, ids: list[int], reason: str, *,
          victims: Sequence[Engram] | None = None,
          deferred: list[Callable[[], object]] | None = None) -> None:
    """Forget ``ids`` to respect a limit; each eviction is logged and audited.

    The records logged are read :data:`_EVICT_LOG_BATCH` at a time: a budget pass over a
    large memory may evict a hundred thousand engrams, which as records would take GBs.

    :param victims: their records, when the caller has read them already.
    :param deferred: inside a batch's transaction (:mod:`.ingest`): the audit record is
        appended here, to be written after the commit (an audit line cannot be rolled back).
    """
    batches = ([victims] if victims is not None else
               (store.storage.get(ids[start:start + _EVICT_LOG_BATCH])
                for start in range(0, len(ids), _EVICT_LOG_BATCH)))
    for batch in batches:
        for e in batch:
            _LOG.info('evicted engram %d (%s %r, seen %d times, score %.2f): %s', e.id, e.kind,
                      e.label, e.observation_count, e.score, reason)
    forget(store, ids)
    summary = id_summary(ids)
    if deferred is None:
        store.audit_event('evict', 'memory', {'reason': reason}, summary)
    else:
        deferred.append(lambda: store.audit_event('evict', 'memory', {'reason': reason},
                                                  summary))
