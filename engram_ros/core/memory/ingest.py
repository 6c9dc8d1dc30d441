"""Where observations enter the memory: matched to an engram they reactivate, or added as a
new short-term engram; and where whole engrams are loaded as they are (imports, benchmarks).

Observations are written in batches (:func:`ingest_many`; :func:`ingest` is a batch of one):
each is validated on its own (a bad one gets its own error, the others go on), then the batch
is written under the write lock in ONE storage transaction (a group commit: acknowledged means
committed, and a crash or a storage error leaves all of the batch or none of it).

One observation of a batch, in order:

1. under the index lock: find the engram the observation matches (:mod:`engram_ros.core.
   duplicates`) and, for a new thing that is not a place, the place it is anchored to;
2. storage: read the matched record and merge (:func:`engram_ros.core.merge.merge`), or take
   a new id;
3. under the index lock, only when step 1 could not know it: the traversal edge a place
   observation adds, or the anchor of the merged position;
4. storage (inside the batch's transaction): put the engram (and the edge);
5. under the index lock: publish it to the index and the state, note what its keyframe view
   should have shown, and pick short-term engrams past the LRU capacity, evicted last (their
   rows deleted inside the transaction too).

Steps 1 and 3 cannot be one: an anchor needs the merged position, and a place's edge the id,
both read from storage in step 2, and the index lock is never held across storage I/O. The
anchor of a new thing is its observation's position, and the index cannot change between
step 1 and step 3 (the write lock is held), so it is looked up in step 1.

Why the index is updated per observation, before the commit, and not once after it: the next
observation of the same batch may be another sighting of the engram this one created or
changed (a detector sees the same mug in every frame), so it must find it in the index
exactly as it would after a separate ingest; a batch is then the same as that many single
ingests (same ids, engrams, edges, evictions and audit; the tests check it). The price: a
recall running meanwhile may see an engram of the batch a few milliseconds before its commit.
If the transaction fails (a full disk, a locked database), :class:`_Undo` puts the index and
the state back as they were before the batch, and every observation of it reports the error
(a retry writes the batch again). What cannot be undone waits for the commit: evidence files a
merge dropped, the audit records of evictions, evidence files orphaned by evicting.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Callable
from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core import sketch
from engram_ros.core.duplicates import find_match
from engram_ros.core.index.engrams import add_engrams
from engram_ros.core.index.engrams import put_engrams
from engram_ros.core.memory import writes
from engram_ros.core.memory.beliefs import expect_visible
from engram_ros.core.memory.beliefs import judge_moves_if_due
from engram_ros.core.memory.beliefs import saw_from
from engram_ros.core.memory.config import IngestResult
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.memory.config import ObservationExcluded
from engram_ros.core.memory.governance_ops import drop_unreferenced_evidence
from engram_ros.core.memory.mapping import nearest_place
from engram_ros.core.memory.mapping import traversal
from engram_ros.core.memory.write_queue import describe
from engram_ros.core.memory.write_queue import is_storage_error
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
    """Write one observation (a batch of one, see :func:`ingest_many`); raises its error, a
    storage error only when nothing was committed (a retry then writes it once)."""
    result = ingest_many(store, [obs])[0]
    if isinstance(result, BaseException):
        raise result
    return result


def ingest_many(store: MemoryStore, observations: Sequence[Observation]
                ) -> list[IngestResult | Exception]:
    """Write observations in order, in one storage transaction (see the module doc).

    :returns: for each observation, in order, its :class:`IngestResult` or the error that
        refused it: :class:`InvalidObservation` or :class:`ObservationExcluded` for that one
        alone, or the storage error of the transaction for every observation that was to be
        written (none of them was).
    """
    results: list[IngestResult | Exception | None] = [None] * len(observations)
    todo: list[int] = []
    for i, obs in enumerate(observations):
        try:
            _admit(store, obs)
        except Exception as exc:        # refused alone; the others go on
            results[i] = exc
        else:
            todo.append(i)
    with store._write_lock:
        while todo:
            undo = _Undo(store)
            try:
                with store.storage.transaction():
                    for i in todo:
                        try:
                            results[i] = _write_one(store, observations[i], undo)
                        except Exception as exc:
                            if is_storage_error(exc):
                                raise
                            raise _ItemFailed(i, exc) from exc
            except _ItemFailed as failed:   # not storage's fault: without it, again
                undo.restore()
                _LOG.error('observation refused: %s', describe(failed.error))
                results[failed.index] = failed.error
                todo.remove(failed.index)
                continue
            except BaseException as exc:
                undo.restore()
                if not isinstance(exc, Exception):
                    raise                   # Ctrl-C: rolled back, not swallowed
                for i in todo:
                    results[i] = exc
                return results              # type: ignore[return-value]
            undo.committed()
            _judge_moves(store, observations, results)
            break
    return results                          # type: ignore[return-value]


def _judge_moves(store: MemoryStore, observations: Sequence[Observation],
                 results: list) -> None:
    """Moves the committed batch may have made decidable, judged now (core/memory/beliefs.py)
    rather than at the next consolidation. A failure here loses nothing: the batch is
    committed and the consolidation judges the same moves later; it is logged."""
    promoted = any(isinstance(r, IngestResult) and r.promoted and o.kind == 'object'
                   for o, r in zip(observations, results))
    try:
        judge_moves_if_due(store, promoted, store.clock())
    except Exception as exc:        # noqa: BLE001 - the batch is committed; see the docstring
        _LOG.error('judging moves after a batch failed (the consolidation will): %s',
                   describe(exc))


class _ItemFailed(Exception):
    """One observation of a batch failed for a reason of its own (not storage's)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


def _write_one(store: MemoryStore, obs: Observation, undo: _Undo) -> IngestResult:
    """Steps 1-5 of the module doc for one admitted observation, inside the transaction."""
    config, state = store.config, store.state
    anchor = None
    with store._lock:
        match_id = find_match(store.index, config.merge, state.history, obs)
        if match_id is None and obs.kind != 'place':
            anchor = nearest_place(store, np.asarray(obs.position, dtype=np.float64))
    existing = store.storage.get([match_id]) if match_id is not None else []
    if existing:
        undo.note(existing)
        engram = merge(existing[0], obs, config.merge)
        promoted = existing[0].tier == TIER_SHORT and engram.tier == TIER_LONG
        anchor = None       # the merged position decides
    else:
        engram = Engram.from_observation(store.storage.next_id(), obs)
        undo.note_new(engram.id)
        promoted = False
    engram.last_access = max(engram.last_access, store.clock())
    edge = None
    if engram.kind == 'place' or anchor is None:
        with store._lock:
            if engram.kind == 'place':
                undo.keep_graph()
                edge = traversal(store, engram.id, obs.stamp)
            else:
                anchor = nearest_place(store, engram.position)
    if engram.kind != 'place':
        engram.anchor_id = anchor or engram.anchor_id
    store.storage.put([engram])
    if edge is not None:
        store.storage.put_edges([edge])
    with store._lock:
        if engram.keyframe_id:
            undo.keep_graph()
        if engram.label and engram.label not in state.labels:
            undo.labels.append(engram.label)
        writes.publish_one(store, engram)
        if edge is not None:
            state.set_edges([edge])
        if obs.view is not None:
            undo.keep_misses()
            expect_visible(store, obs.view, obs.stamp)
        if obs.viewpoint is not None:
            undo.keep_range(engram.id)
            saw_from(store, engram.id, obs)
        evict = state.lru_victims(state.short, config.short_term_capacity)  # no copy
    if existing:    # files the capped evidence list dropped go after the commit
        undo.after_commit.append(
            lambda e=existing[0], o=obs, m=engram: drop_unreferenced_evidence(
                store, dropped_evidence((e, o), m)))
    if evict:
        victims = store.storage.get(evict)
        undo.note(victims)
        undo.keep_graph()
        writes.evict(store, evict, 'short-term LRU capacity', victims=victims,
                     deferred=undo.after_commit)
    return IngestResult(engram.id, bool(existing), promoted, evict)


class _Undo:
    """What a batch changed in the index and the state (the store's RAM copies), to put back
    when its transaction fails; and what waits for its commit.

    The records of the engrams the batch changes are noted before their first change (None for
    an engram the batch creates): on a rollback each goes back into the index and the state as
    it was stored. The few structures that are not per engram (the LRU order, the place graph,
    keyframes, the last place, new labels, the keyframe views' expectations; the distances a
    thing was seen from, per engram) are copied the first time the batch may change them. Made
    and used under the store's write lock.
    """

    def __init__(self, store: MemoryStore) -> None:
        state = store.state
        self.store = store
        self.before: dict[int, Engram | None] = {}
        self.dirty: dict[int, bool] = {}
        self.touched: dict[int, tuple[float, int] | None] = {}
        with store._lock:
            self.short = list(state.short)      # (a list copies fastest)
            self.last_place = state.last_place
        self.labels: list[str] = []
        self.graph: tuple[dict, dict] | None = None
        self.misses: tuple[dict[int, list[float]], bool] | None = None
        self.ranges: dict[int, list[float] | None] = {}
        #: Done once the batch is committed, in order (evidence drops, eviction audits).
        self.after_commit: list[Callable[[], object]] = []

    def _note_id(self, engram_id: int, record: Engram | None) -> None:
        if engram_id not in self.before:
            state = self.store.state
            self.before[engram_id] = record
            self.dirty[engram_id] = engram_id in state.dirty
            self.touched[engram_id] = state.touched.get(engram_id)

    def note(self, records: Sequence[Engram]) -> None:
        with self.store._lock:
            for record in records:
                self._note_id(record.id, record.copy())

    def note_new(self, engram_id: int) -> None:
        with self.store._lock:
            self._note_id(engram_id, None)

    def keep_graph(self) -> None:
        """Copy the place graph's edges and the keyframes before the batch changes them."""
        if self.graph is None:
            with self.store._lock:
                self.graph = (dict(self.store.state.edges), dict(self.store.state.keyframes))

    def keep_misses(self) -> None:
        if self.misses is None:
            misses = self.store.misses
            self.misses = ({i: list(s) for i, s in misses.expected.items()},
                           misses.views_seen)

    def keep_range(self, engram_id: int) -> None:
        """Copy what ``engram_id`` was seen from before the batch adds to it."""
        if engram_id not in self.ranges:
            ranges = self.store.misses.ranges.get(engram_id)
            self.ranges[engram_id] = None if ranges is None else list(ranges)

    def restore(self) -> None:
        """Put the index and the state back as they were before the batch."""
        if not self.before:
            return
        store, state = self.store, self.store.state
        with store._lock:
            ids = list(self.before)
            records = [r for r in self.before.values() if r is not None]
            made = np.array([i for i, r in self.before.items() if r is None], dtype=np.int64)
            store.index.remove_batch(made[store.index.has_ids(made)])
            put_engrams(store.index, records)
            state.remove(ids)
            state.apply(records, dirty=False)
            for i in ids:
                if self.dirty[i]:
                    state.dirty.add(i)
                if self.touched[i] is not None:
                    state.touched[i] = self.touched[i]
            state.short = OrderedDict.fromkeys(self.short)
            state.last_place = self.last_place
            state.labels.difference_update(self.labels)
            if self.graph is not None:
                state.edges, state.keyframes = self.graph
            if self.misses is not None:
                store.misses.expected, store.misses.views_seen = self.misses
            for i, ranges in self.ranges.items():
                if ranges is None:
                    store.misses.ranges.pop(i, None)
                else:
                    store.misses.ranges[i] = ranges
        _LOG.warning('ingest batch rolled back: %d engrams restored in the index', len(ids))

    def committed(self) -> None:
        """Run what waited for the commit; a storage error there is logged (the batch is
        stored: raising would make a caller write it twice)."""
        for action in self.after_commit:
            try:
                action()
            except STORAGE_ERRORS as exc:
                _LOG.error('after an ingest commit: %s', describe(exc))


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
