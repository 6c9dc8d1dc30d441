"""Where the memory consolidates: duplicates merged, short-term engrams promoted, the budget
and the LRU capacity enforced, moved and ended beliefs turned into history.

One pass, under the write lock (the index lock only for index reads and the final publish):

1. the engrams written since the last pass (the state's ``dirty``) in scope find their
   duplicates (:mod:`engram_ros.core.duplicates`) and absorb them
   (:mod:`engram_ros.core.merge`): one at a time for a few, by clusters for many;
   one-off sightings that are label noise of an established engram are dropped;
2. short-term engrams seen often enough are promoted to long-term;
3. the LRU capacity and the budget pick what to evict (:mod:`engram_ros.core.forgetting`);
4. beliefs seen elsewhere or missed where they were become history
   (:mod:`engram_ros.core.memory.beliefs`); evidence past its retention is deleted;
5. the changes are written (:mod:`engram_ros.core.memory.writes`), merged places hand over
   their anchors and edges (:mod:`engram_ros.core.memory.mapping`), and the evicted go: their
   rows, the evidence files no engram references any more (those of the removed, and those
   merges dropped from a capped evidence list), and then the WAL (checkpointed and truncated,
   as a forget does), so what a pass removed is in no file of the store.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Iterator
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.duplicates import compatible
from engram_ros.core.duplicates import duplicate_ids
from engram_ros.core.duplicates import identity_tags
from engram_ros.core.duplicates import neighbours_batch
from engram_ros.core.duplicates import noise_candidates
from engram_ros.core.forgetting import lowest_retention
from engram_ros.core.forgetting import RetentionRows
from engram_ros.core.memory import beliefs
from engram_ros.core.memory import mapping
from engram_ros.core.memory import writes
from engram_ros.core.memory.config import ConsolidationReport
from engram_ros.core.memory.config import ConsolidationScope
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.memory.governance_ops import drop_unreferenced_evidence
from engram_ros.core.memory.governance_ops import expire_evidence
from engram_ros.core.memory.recall import flush_touched
from engram_ros.core.merge import dropped_evidence
from engram_ros.core.merge import merge_clusters
from engram_ros.core.merge import merge_engrams
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)


@dataclass
class _Pass:
    """What a pass has decided so far: changed engrams by id, ids merged away or dropped,
    which engram absorbed each merged one, and the evidence URIs merges dropped."""

    changed: dict[int, Engram] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    merged_into: dict[int, int] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)


def consolidate(store: MemoryStore, scope: ConsolidationScope, dry_run: bool,
                now: float | None) -> ConsolidationReport:
    """One consolidation pass (see the module doc and :meth:`MemoryStore.consolidate`)."""
    # Evidence retention counts real time on disk (the files' modification times); the rest
    # of the pass the memory's clock (a replayed bag's time).
    wall = time.time() if now is None else now
    now = store.clock() if now is None else now
    if store.config.budget < 1:
        raise ValueError(f'budget={store.config.budget}; accepted: a positive number of '
                         'engrams (nothing was changed)')
    with store._write_lock, _gc_paused():
        flush_touched(store)
        report = ConsolidationReport(size_before=len(store), dry_run=dry_run)
        with store._lock:
            dirty = sorted(store.state.dirty)
            short_before = set(store.state.short)
        plan = _Pass()
        _merge_duplicates(store, dirty, scope, plan, report, now)
        _promote(store, scope, plan, short_before, report)
        evict = _evictions(store, plan, now)
        report.forgotten = len(evict)
        report.evicted_ids = list(evict)
        report.evidence_expired = expire_evidence(store, wall, dry_run)
        moves = beliefs.find_moves(store, plan.changed, plan.removed | set(evict), now)
        report.moved = [(m.old, m.new) for m in moves]
        ended = beliefs.find_gone(store, plan.changed,
                                  plan.removed | set(evict) | {m.old for m in moves},
                                  now, dry_run)
        report.ended = sorted(ended)
        if dry_run:
            report.size_after = report.size_before
            return report
        beliefs.apply_moves(store, moves, plan.changed)
        beliefs.apply_ends(store, ended, plan.changed)
        _commit(store, plan, evict)
        with store._lock:
            store.misses.merged(plan.merged_into)
        report.size_after = len(store)
        _LOG.info('consolidation: merged %d, promoted %d, forgot %d (%d -> %d engrams)',
                  report.merged, report.promoted, report.forgotten, report.size_before,
                  report.size_after)
        return report


def _merge_duplicates(store: MemoryStore, dirty: list[int], scope: ConsolidationScope,
                      plan: _Pass, report: ConsolidationReport, now: float) -> None:
    """Step 1: merge the duplicates of the dirty engrams in scope; drop label noise."""
    batch = len(dirty) >= store.config.batch_consolidation_min
    history = store.state.history
    # The batch path only reads them (merge_clusters copies what it changes): no copy.
    dirty_engrams = [e for e in store.storage.get(dirty, shared=batch)
                     if _in_scope(e, scope) and e.id not in history]
    merge_all = (_merge_batch
                 if batch and len(dirty_engrams) >= store.config.batch_consolidation_min
                 else _merge_each)
    report.merged = merge_all(store, dirty_engrams, plan)
    for noise, into in _label_noise(store, dirty_engrams, plan, now):
        plan.removed.add(noise)
        report.absorbed += 1
        _LOG.info('engram %d is label noise of engram %d (one sighting, looks alike, '
                  'same place, other label): forgotten', noise, into)


def _promote(store: MemoryStore, scope: ConsolidationScope, plan: _Pass,
             short_before: set[int], report: ConsolidationReport) -> None:
    """Step 2: short-term engrams in scope seen often enough become long-term."""
    changed, removed = plan.changed, plan.removed
    with store._lock:
        short_ids = [i for i in store.state.short if i not in removed]
    promotable = [changed.get(e.id, e) for e in store.storage.get(
        [i for i in short_ids if i not in changed])] + [
        changed[i] for i in short_ids if i in changed]
    promotable = [e for e in promotable
                  if e.observation_count >= store.config.merge.promote_after
                  and e.id not in removed and _in_scope(e, scope)]
    for engram in promotable:
        engram = changed.get(engram.id, engram)
        engram.tier = TIER_LONG
        changed[engram.id] = engram
    # Short-term engrams now long-term: promoted by count, or by a merge that added up.
    report.promoted = sum(1 for i, e in changed.items()
                          if i in short_before and e.tier == TIER_LONG)


def _evictions(store: MemoryStore, plan: _Pass, now: float) -> list[int]:
    """Step 3: ids to evict, past the short-term capacity and then past the budget."""
    changed, removed = plan.changed, plan.removed
    with store._lock:
        state = store.state
        size = len(store.index) - len(removed)
        # Short-term engrams left after this pass, least recently used first.
        short = [i for i in state.short if i not in removed
                 and (i not in changed or changed[i].tier == TIER_SHORT)]
        evict = state.lru_victims(short, store.config.short_term_capacity,
                                  {i for i, e in changed.items() if e.pinned})
    size -= len(evict)
    if size > store.config.budget:
        evict += _budget_victims(store, plan, evict, size - store.config.budget, now)
    return evict


def _budget_victims(store: MemoryStore, plan: _Pass, evict: list[int], excess: int,
                    now: float) -> list[int]:
    """The ``excess`` engrams of lowest retention left after this pass, streamed from storage
    in batches of the columns the budget weighs (never every record in a list); engrams this
    pass changed are weighed as changed."""
    policy = store.config.retention
    changed = {i: e for i, e in plan.changed.items() if i not in plan.removed}
    skip = np.array(sorted(plan.removed | set(evict) | set(changed)), dtype=np.int64)
    important: set[int] = set()
    if policy.important_tags:         # as stored, except for what this pass changed
        tags = set(policy.important_tags)
        important = store.storage.ids_with_tags(sorted(tags)) - set(changed)
        important |= {i for i, e in changed.items() if tags & set(e.tags)}

    def batches() -> Iterator[RetentionRows]:
        for rows in store.storage.iter_retention():
            yield rows.take(~np.isin(rows.ids, skip)) if skip.shape[0] else rows
        if changed:
            yield RetentionRows.of(list(changed.values()))

    return lowest_retention(batches(), excess, now, policy, important)


def _commit(store: MemoryStore, plan: _Pass, evict: list[int]) -> None:
    """Step 5: write the changes, forget what was merged away, evict, rewire the graph."""
    edges = mapping.follow_place_merges(store, plan.merged_into, plan.changed)
    if plan.changed:
        writes.write(store, list(plan.changed.values()))
    writes.forget(store, sorted(plan.removed))
    if evict:
        writes.evict(store, list(evict), 'storage budget or short-term LRU capacity')
    mapping.write_edges(store, *edges)
    with store._lock:
        store.state.dirty.clear()
    released = drop_unreferenced_evidence(store, sorted(plan.released))
    if released:
        _LOG.info('merges dropped %d evidence files from capped evidence lists', released)
    if plan.removed or evict:
        store.storage.purge()


def _merge_each(store: MemoryStore, dirty: list[Engram], plan: _Pass) -> int:
    """Merge the duplicates of a few engrams, one index query and one pair at a time.

    :returns: how many engrams were merged away.
    """
    changed, removed = plan.changed, plan.removed
    policy = store.config.merge
    merged = 0
    for engram in dirty:
        if engram.id in removed:
            continue
        current = changed.get(engram.id, engram)
        for other in _duplicates_of(store, current, removed):
            other = changed.get(other.id, other)
            keep, gone = (current, other) if _keeps(current, other) else (other, current)
            fused = merge_engrams(keep, gone, policy)
            plan.released.update(dropped_evidence((keep, gone), fused))
            changed[keep.id] = fused
            changed.pop(gone.id, None)
            removed.add(gone.id)
            plan.merged_into[gone.id] = keep.id
            merged += 1
            if gone is current:
                break
            current = fused
    return merged


def _duplicates_of(store: MemoryStore, engram: Engram, removed: set[int]) -> list[Engram]:
    with store._lock:
        ids = duplicate_ids(store.index, store.config.merge, store.state.history, engram,
                            removed)
    if not ids:
        return []
    return [o for o in store.storage.get(ids) if compatible(engram.tags, o.tags)]


def _merge_batch(store: MemoryStore, dirty: list[Engram], plan: _Pass) -> int:
    """Merge the duplicates of many engrams: each cluster at once, its best-supported
    member absorbing the rest.

    Clusters are planned on ids and counts alone, in the order of ``dirty``. A keep can
    be absorbed again by a later cluster, so clusters are fused by level: one
    :func:`merge_clusters` call for all clusters of original engrams, then one for those
    that take in a result of the first call, and so on.

    :returns: how many engrams were merged away.
    """
    changed = plan.changed
    neighbours, engrams = _neighbours(store, dirty)
    steps, level = _plan_clusters(dirty, neighbours, engrams, plan)
    by_level: dict[int, list[int]] = {}
    for step, lv in enumerate(level):
        by_level.setdefault(lv, []).append(step)
    for lv in sorted(by_level):
        todo = [steps[k] for k in by_level[lv]]
        members = [(changed.get(keep, engrams[keep]), [changed.get(i, engrams[i])
                                                       for i in others])
                   for keep, others in todo]
        fused = merge_clusters(members, store.config.merge)
        for (keep, others), (first, rest), engram in zip(todo, members, fused):
            plan.released.update(dropped_evidence((first, *rest), engram))
            for gone in others:
                changed.pop(gone, None)
            changed[keep] = engram
    return sum(len(others) for _, others in steps)


def _plan_clusters(dirty: list[Engram], neighbours: dict[int, list[int]],
                   engrams: dict[int, Engram], plan: _Pass
                   ) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """The clusters to fuse, (keep, others) in order, and the level of each; marks the others
    removed and merged into their keep."""
    removed = plan.removed
    count = {i: e.observation_count for i, e in engrams.items()}   # as planned so far
    made_by: dict[int, int] = {}     # id -> the step that last produced it
    steps: list[tuple[int, list[int]]] = []
    level: list[int] = []
    for engram in dirty:
        if engram.id in removed or engram.id not in neighbours:
            continue
        cluster = [engram.id] + [i for i in neighbours[engram.id] if i not in removed]
        if len(cluster) < 2:
            continue
        # the best-supported member keeps its id: most observations, then the oldest id
        keep, best = cluster[0], count[cluster[0]]
        for i in cluster[1:]:
            c = count[i]
            if c > best or (c == best and i < keep):
                keep, best = i, c
        others = [i for i in cluster if i != keep]
        level.append(1 + max([level[made_by[i]] for i in cluster if i in made_by],
                             default=-1))
        count[keep] = sum(map(count.__getitem__, cluster))
        made_by[keep] = len(steps)
        steps.append((keep, others))
        for gone in others:
            removed.add(gone)
            plan.merged_into[gone] = keep
    return steps, level


def _neighbours(store: MemoryStore, engrams: list[Engram]
                ) -> tuple[dict[int, list[int]], dict[int, Engram]]:
    """Duplicate candidates of many engrams (id -> candidate ids, most similar first) and
    the candidates' engrams, read from storage when they are not among ``engrams``."""
    found = neighbours_batch(store.index, store._lock, store.state.history,
                             store.config.merge, engrams)
    fetched = {e.id: e for e in engrams}
    wanted = {i for ids_ in found.values() for i in ids_ if i not in fetched}
    if wanted:
        fetched.update({e.id: e for e in store.storage.get(sorted(wanted))})
        found = {i: [j for j in js if j in fetched] for i, js in found.items()}
    return found, fetched


def _label_noise(store: MemoryStore, engrams: list[Engram], plan: _Pass, now: float
                 ) -> list[tuple[int, int]]:
    """(noise id, established id) for one-off sightings that are label noise.

    A short-term engram seen once, unpinned, whose look matches a current engram of the
    same kind within the merge radius that disagrees on identity but has at least
    ``policy.noise_support`` observations, is the detector naming that thing wrongly once
    the robot has looked there again without seeing the one-off's label: a keyframe view
    that should have shown it, or a visit to its place that it left
    (:func:`beliefs.looked_again`), or the established thing seen again on a later visit
    (at least the miss policy's ``visit_gap`` after the one-off). Until such a look the
    one-off stays (unconfirmed) and is judged on a later pass: a new thing put by a
    well-known lookalike (the demo's mug by the vase) has only had one look so far, and the
    lookalike's sightings in the same pass are no evidence against it. A second sighting of
    its label confirms it for good. Both ways round: one-offs among ``engrams`` (written
    since the last pass), and one-offs near the established engrams among them.
    """
    changed, removed = plan.changed, plan.removed
    policy = store.config.merge
    if policy.noise_support <= 0:
        return []
    relook = store.config.misses.visit_gap
    awaiting = store.misses.awaiting
    dirty = {e.id for e in engrams}
    with store._lock:
        waited = [i for i in awaiting if i not in dirty and i in store.index
                  and i not in store.state.history]
    awaiting.clear()

    def one_off(e: Engram) -> bool:
        return (e.id not in removed and e.observation_count == 1 and not e.pinned
                and e.tier == TIER_SHORT and bool(identity_tags(e.tags)))

    out: dict[int, int] = {}
    for e in [*engrams, *store.storage.get(waited)]:
        e = changed.get(e.id, e)
        if e.id in removed or e.id in out:
            continue
        if not one_off(e) and e.observation_count < policy.noise_support:
            continue
        with store._lock:
            near = noise_candidates(store.index, policy, store.state.history, e, removed)
        others = [changed.get(o.id, o)
                  for o in store.storage.get([i for i in near if i not in out])]
        if one_off(e):
            established = [o for o in others if o.observation_count >= policy.noise_support]
            if not established:
                continue
            if (any(o.last_seen >= e.last_seen + relook for o in established)
                    or beliefs.looked_again(store, e, now)):
                out[e.id] = established[0].id
            else:
                awaiting.add(e.id)          # judged on a later pass, once looked at again
        else:
            for o in others:
                if one_off(o) and e.last_seen >= o.last_seen + relook:
                    out[o.id] = e.id
    return list(out.items())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector; reference counting still frees everything.

    A consolidation pass allocates a few GC-tracked objects per engram (engram copies, lists)
    and makes no reference cycles, yet the allocations trigger full collections that walk
    every object in the process, the whole store when it lives in RAM: 14 % of a pass over
    100k engrams. The collector's previous state is restored, also on an error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _keeps(a: Engram, b: Engram) -> bool:
    """True when ``a`` should absorb ``b``: more evidence wins, then the older engram."""
    return (a.observation_count, -a.id) >= (b.observation_count, -b.id)


def _in_scope(engram: Engram, scope: ConsolidationScope) -> bool:
    if scope.radius > 0.0 and scope.center is not None:
        if float(np.linalg.norm(engram.position - np.asarray(scope.center))) > scope.radius:
            return False
    if scope.t_start is not None and engram.last_seen < scope.t_start:
        return False
    if scope.t_end is not None and engram.last_seen > scope.t_end:
        return False
    return True
