"""Where beliefs become history: a thing seen elsewhere (a move) or not seen where it should
have been visible (an end).

The decisions are :mod:`engram_ros.core.validity` (moves) and :mod:`engram_ros.core.visibility`
(misses by keyframe view); this module gathers what they need from the index and the state,
and writes their verdicts into the engrams a consolidation pass changes. Ingest notes, for
each keyframe view, which current objects it should have shown (:func:`expect_visible`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.duplicates import identity_tags
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code
from engram_ros.core.validity import Candidate
from engram_ros.core.validity import find_moves as decide_moves
from engram_ros.core.validity import missed

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)


def expect_visible(store: MemoryStore, view, stamp: float) -> None:
    """Note the current objects ``view`` should have shown at ``stamp`` (under ``_lock``)."""
    misses, index = store.misses, store.index
    policy = misses.policy
    if policy.visits < 1:      # views off: moves are judged by the anchor place
        return
    misses.views_seen = True
    slots = index.filter(kinds=[kind_code('object')], center=np.asarray(view.position),
                         radius=policy.farthest)
    if slots is None or len(slots) == 0:
        return
    ids = index.ids_of(slots)
    history = store.state.history
    keep = np.array([int(i) not in history for i in ids], dtype=bool)
    slots, ids = slots[keep], ids[keep]
    if len(slots) == 0:
        return
    ranges = np.array([policy.range_for(index.tags_of(int(s))) for s in slots])
    seen = view.sees(index.positions_of(slots), max_range=ranges, margin=policy.margin)
    misses.expect([int(i) for i in ids[seen]], stamp)


def find_gone(store: MemoryStore, changed: dict[int, Engram], gone: set[int], now: float,
              dry_run: bool) -> dict[int, float]:
    """Current things missed where they should have been visible: id -> when they ended."""
    misses, index = store.misses, store.index
    if misses.policy.visits < 1:
        return {}
    with store._lock:
        history = store.state.history
        tracked = [i for i in misses.expected
                   if i in index and i not in gone and i not in history]
        last = {}
        if tracked:
            slots = np.array([index.slot_of(i) for i in tracked])
            last = dict(zip(tracked, (float(t) for t in index.last_seen_of(slots))))
        for i in tracked:
            if i in changed:
                last[i] = changed[i].last_seen
        # Only tracked ids still current are passed on: the others are dropped.
        return misses.gone(last, now, store.config.move_grace, commit=not dry_run)


def find_moves(store: MemoryStore, changed: dict[int, Engram], gone: set[int],
               now: float) -> list:
    """Current object/sound/event beliefs superseded by a sighting elsewhere."""
    policy = store.config.merge
    grace = store.config.move_grace
    moves = []
    with store._lock:
        last_place = store.state.last_place
        robot_place = last_place[0] if last_place else 0
        for kind in ('object', 'audio', 'event'):
            candidates = _move_candidates(store, kind, changed, gone, now, robot_place)
            if candidates is None:
                continue
            moves += decide_moves(candidates, min_distance=2.0 * policy.radius_for(kind),
                                  min_similarity=policy.similarity_for(kind),
                                  grace=grace, robot_place=robot_place,
                                  min_observations=policy.promote_after)
    return moves


def _move_candidates(store: MemoryStore, kind: str, changed: dict[int, Engram],
                     gone: set[int], now: float, robot_place: int) -> list[Candidate] | None:
    """The current ``kind`` beliefs a move may concern, or ``None`` when none is missed where
    it was (under ``_lock``)."""
    index, state, misses = store.index, store.state, store.misses
    grace = store.config.move_grace
    slots = index.filter(kinds=[kind_code(kind)])
    slots = np.asarray(index.live_slots() if slots is None else slots)
    if len(slots) < 2:
        return None
    ids = index.ids_of(slots)
    if gone or state.history:
        left = ~np.isin(ids, np.fromiter(gone | state.history, dtype=np.int64))
        slots, ids = slots[left], ids[left]
        if len(slots) < 2:
            return None
    ids_list = ids.tolist()
    last = [changed[i].last_seen if i in changed else t
            for i, t in zip(ids_list, index.last_seen_of(slots).tolist())]
    anchors = [state.anchor_of.get(i, 0) for i in ids_list]
    seen_at = {a: (float(index.last_seen_of(np.array([index.slot_of(a)]))[0])
                   if a in index else None) for a in set(anchors) if a}
    anchor_seen = [seen_at.get(a) for a in anchors]
    # With keyframe views, an object is missed where a view should have shown it.
    by_view = ([misses.missed(i, t, now, grace) for i, t in zip(ids_list, last)]
               if kind == 'object' and misses.views_seen else [None] * len(ids_list))
    if not any(v if v is not None else missed(a, t_a, t, grace, robot_place)
               for v, a, t_a, t in zip(by_view, anchors, anchor_seen, last)):
        return None        # a belief not missed where it was is never superseded
    positions = index.positions_of(slots)
    vectors = index.vectors_of(slots)
    norms = np.linalg.norm(vectors, axis=1)
    vectors /= np.where(norms > 0.0, norms, 1.0)[:, None]
    first = index.first_seen_of(slots)
    counts = index.counts_of(slots)
    candidates = []
    for j, engram_id in enumerate(ids_list):
        identity = identity_tags(index.tags_of(int(slots[j])))
        if not identity:
            continue
        e = changed.get(engram_id)
        candidates.append(Candidate(
            engram_id, identity, e.position if e is not None else positions[j], vectors[j],
            float(first[j]), float(last[j]), anchors[j], anchor_seen[j],
            int(e.observation_count if e is not None else counts[j]), by_view[j]))
    return candidates


def apply_moves(store: MemoryStore, moves: list, changed: dict[int, Engram]) -> None:
    """Make each moved belief history and its successor current (into ``changed``)."""
    if not moves:
        return
    wanted = [i for m in moves for i in (m.old, m.new) if i not in changed]
    for engram in store.storage.get(wanted):
        changed[engram.id] = engram
    for m in moves:
        old, new = changed.get(m.old), changed.get(m.new)
        if old is None or new is None:
            continue
        old.valid_to = max(old.valid_from, m.when)
        old.successor_id = new.id
        new.valid_from = min(new.valid_from, m.when) if new.valid_from else m.when
        new.score = max(new.score, old.score)
        new.pinned = new.pinned or old.pinned
        _LOG.info('belief %d (%s at %s) is history since %.3f: seen at %s as %d', old.id,
                  old.label or old.kind, np.round(old.position, 2).tolist(), m.when,
                  np.round(new.position, 2).tolist(), new.id)


def apply_ends(store: MemoryStore, ended: dict[int, float], changed: dict[int, Engram]) -> None:
    """Make each ended belief history without a successor (into ``changed``)."""
    for engram in store.storage.get([i for i in ended if i not in changed]):
        changed[engram.id] = engram
    for i, when in ended.items():
        engram = changed.get(i)
        if engram is None or engram.valid_to is not None:
            continue
        engram.valid_to = max(engram.valid_from, when)
        _LOG.info('belief %d (%s at %s) is history since %.3f: not seen where it should '
                  'have been visible on %d visits', i, engram.label or engram.kind,
                  np.round(engram.position, 2).tolist(), when, store.misses.policy.visits)
