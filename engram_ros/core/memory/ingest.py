"""Where observations enter the memory: matched to an engram they reactivate, or added as a
new short-term engram; and where whole engrams are loaded as they are (imports, benchmarks).

One ingest, under the write lock:

1. under the index lock: find the engram the observation matches (:mod:`engram_ros.core.
   duplicates`) and, for a new thing that is not a place, the place it is anchored to;
2. storage: read the matched record and merge (:func:`engram_ros.core.merge.merge`), or take
   a new id;
3. under the index lock, only when step 1 could not know it: the traversal edge a place
   observation adds, or the anchor of the merged position;
4. storage: commit the engram (and the edge): acknowledged means committed;
5. under the index lock: publish it to the index and the state, note what its keyframe view
   should have shown, and pick short-term engrams past the LRU capacity, evicted last.

Steps 1 and 3 cannot be one: an anchor needs the merged position, and a place's edge the id,
both read from storage in step 2, and the index lock is never held across storage I/O. The
anchor of a new thing is its observation's position, and the index cannot change between
step 1 and step 3 (the write lock is held), so it is looked up in step 1.
"""

from __future__ import annotations

import logging
from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core import sketch
from engram_ros.core.duplicates import find_match
from engram_ros.core.index.engrams import add_engrams
from engram_ros.core.memory import writes
from engram_ros.core.memory.beliefs import expect_visible
from engram_ros.core.memory.config import IngestResult
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.memory.config import ObservationExcluded
from engram_ros.core.memory.governance_ops import drop_unreferenced_evidence
from engram_ros.core.memory.mapping import nearest_place
from engram_ros.core.memory.mapping import traversal
from engram_ros.core.memory.write_queue import STORAGE_ERRORS
from engram_ros.core.merge import dropped_evidence
from engram_ros.core.merge import merge
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import normalize_vector
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)


def ingest(store: MemoryStore, obs: Observation) -> IngestResult:
    """Write one observation (see the module doc); raises as :meth:`MemoryStore.ingest`, and
    a storage error only when nothing was committed (a retry then writes it once)."""
    _admit(store, obs)
    config, state = store.config, store.state
    with store._write_lock:
        anchor = None
        with store._lock:
            match_id = find_match(store.index, config.merge, state.history, obs)
            if match_id is None and obs.kind != 'place':
                anchor = nearest_place(store, np.asarray(obs.position, dtype=np.float64))
        existing = store.storage.get([match_id]) if match_id is not None else []
        if existing:
            engram = merge(existing[0], obs, config.merge)
            promoted = existing[0].tier == TIER_SHORT and engram.tier == TIER_LONG
            anchor = None       # the merged position decides
        else:
            engram = Engram.from_observation(store.storage.next_id(), obs)
            promoted = False
        engram.last_access = max(engram.last_access, store.clock())
        edge = None
        if engram.kind == 'place' or anchor is None:
            with store._lock:
                if engram.kind == 'place':
                    edge = traversal(store, engram.id, obs.stamp)
                else:
                    anchor = nearest_place(store, engram.position)
        if engram.kind != 'place':
            engram.anchor_id = anchor or engram.anchor_id
        store.storage.put([engram])
        # Committed: from here on a storage error must not raise, or a caller that retries
        # the observation (the node's write queue) would count it twice.
        if edge is not None:
            try:
                store.storage.put_edges([edge])
            except STORAGE_ERRORS as exc:
                _LOG.error('traversal edge %s not stored (%s); engram %d is', edge, exc,
                           engram.id)
                edge = None
        with store._lock:
            writes.publish_one(store, engram)
            if edge is not None:
                state.set_edges([edge])
            if obs.view is not None:
                expect_visible(store, obs.view, obs.stamp)
            evict = state.lru_victims(list(state.short), config.short_term_capacity)
        if existing:    # files the capped evidence list dropped go, unless still referenced
            drop_unreferenced_evidence(store, dropped_evidence((existing[0], obs), engram))
        if evict:
            try:
                writes.evict(store, evict, 'short-term LRU capacity')
            except STORAGE_ERRORS as exc:
                _LOG.error('short-term eviction of %d engrams failed (%s); engram %d is '
                           'stored', len(evict), exc, engram.id)
                evict = []
        return IngestResult(engram.id, bool(existing), promoted, evict)


def _admit(store: MemoryStore, obs: Observation) -> None:
    """Validate ``obs``, refuse it inside a privacy zone, normalise its tags (label included).

    :raises InvalidObservation: for an observation that breaks the contract.
    :raises ObservationExcluded: inside a privacy zone or window (its evidence is deleted).
    """
    obs.validate(store.config.dim, store.config.frame_id)
    reason = store.config.privacy.excludes(obs.position, obs.stamp)
    if reason is not None:
        drop_unreferenced_evidence(store, obs.evidence)
        raise ObservationExcluded(f'observation at {np.round(obs.position, 2).tolist()} '
                                  f'not stored: {reason}')
    try:
        obs.tags = sketch.normalize_tags(tuple(obs.tags) + (('label:' + obs.label,)
                                                           if obs.label else ()))
    except ValueError as exc:   # an unknown tag namespace, an empty tag...
        raise InvalidObservation(str(exc)) from exc


def bulk_load(store: MemoryStore, engrams: Sequence[Engram]) -> list[int]:
    """Add engrams as they are (new ids, no matching); their new ids in order."""
    if not engrams:
        return []
    with store._write_lock:
        out = []
        for engram in engrams:
            e = engram.copy()
            e.id = store.storage.next_id()
            e.vector = normalize_vector(e.vector)
            out.append(e)
        store.storage.put(out)
        with store._lock:
            add_engrams(store.index, out)
            store.state.apply(out)
        return [e.id for e in out]
