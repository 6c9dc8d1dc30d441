"""Where beliefs become history: a thing seen elsewhere (a move) or not seen where it should
have been visible (an end).

The decisions are :mod:`engram_ros.core.validity` (moves) and :mod:`engram_ros.core.visibility`
(misses by keyframe view); this module gathers what they need from the index and the state,
and writes their verdicts into the engrams a consolidation pass changes. Ingest notes, for
each keyframe view, which current objects it should have shown (:func:`expect_visible`).

Moves are also judged right after an ingest batch that completed their evidence
(:func:`judge_moves_if_due`): a keyframe's expectation just became a miss, or a belief was just
confirmed (promoted) while another is missed. Waiting for the periodic consolidation
(``consolidation_period``, 30 s) let a thing's old place stay the current belief past the
visit that showed it empty (the quality benchmark's shoes and teddy, issue 14). The rule is the
same (:func:`find_moves`); only the moment changes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.duplicates import identity_tags
from engram_ros.core.memory import writes
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
    ranges = np.array([misses.range_of(int(i), index.tags_of(int(s)))
                       for i, s in zip(ids.tolist(), slots.tolist())])
    seen = view.sees(index.positions_of(slots), max_range=ranges, margin=policy.margin)
    misses.expect([int(i) for i in ids[seen]], stamp)


def saw_from(store: MemoryStore, engram_id: int, obs) -> None:
    """Note how far from the camera an object observation saw ``engram_id`` (under
    ``_lock``): evidence for how far away it should be visible (core/visibility.py)."""
    if obs.viewpoint is None or obs.kind != 'object':
        return
    distance = float(np.linalg.norm(np.asarray(obs.position, dtype=float)
                                    - np.asarray(obs.viewpoint, dtype=float)))
    store.misses.saw(engram_id, distance)


def looked_again(store: MemoryStore, engram: Engram, now: float) -> bool:
    """True when the robot has looked where ``engram`` was since its last sighting and did not
    see it: a keyframe view that should have shown it (with views), else a visit to its anchor
    place that it has left, at least ``move_grace`` after the sighting. Before that, a one-off
    sighting is no evidence of label noise: a new thing next to a well-known lookalike (a mug
    put by a vase) has only had one look so far."""
    grace = store.config.move_grace
    with store._lock:
        if engram.kind == 'object' and store.misses.views_seen:
            return store.misses.missed(engram.id, engram.last_seen, now, grace)
        anchor = store.state.anchor_of.get(engram.id, engram.anchor_id)
        seen = None
        if anchor and anchor in store.index:
            seen = float(store.index.last_seen_of(np.array([store.index.slot_of(anchor)]))[0])
        last_place = store.state.last_place
    return missed(anchor, seen, engram.last_seen, grace, last_place[0] if last_place else 0)


def find_gone(store: MemoryStore, changed: dict[int, Engram], gone: set[int], now: float,
              dry_run: bool) -> dict[int, float]:
    """Current things missed where they should have been visible: id -> when they ended."""
    misses, index = store.misses, store.index
    if misses.policy.visits < 1:
        return {}
    with store._lock:
        history = store.state.history
        if not dry_run:     # what was seen of beliefs no longer current is of no use
            for i in [i for i in misses.ranges if i not in index or i in history]:
                del misses.ranges[i]
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
    it was (under ``_lock``).

    Only a missed belief is ever superseded, and only by one of its identity
    (:func:`~engram_ros.core.validity.find_moves` pairs within identity groups), so the
    candidates are the missed beliefs and the current beliefs of their identities: the same
    moves as from every current belief, with the whole-memory part in numpy (columns, the
    sparse anchors and expected views) and Python only for those few.
    """
    index, state, misses = store.index, store.state, store.misses
    grace = store.config.move_grace
    slots = index.filter(kinds=[kind_code(kind)])
    slots = np.asarray(index.live_slots() if slots is None else slots, dtype=np.int64)
    if len(slots) < 2:
        return None
    ids = index.ids_of(slots)
    if gone or state.history:
        left = ~np.isin(ids, np.fromiter(gone | state.history, dtype=np.int64))
        slots, ids = slots[left], ids[left]
        if len(slots) < 2:
            return None
    last = index.last_seen_of(slots).astype(np.float64)
    _override(ids, last, {i: e.last_seen for i, e in changed.items()})
    anchors = np.zeros(len(ids), dtype=np.int64)
    _override(ids, anchors, state.anchor_of)
    anchor_seen = np.full(len(ids), np.nan)
    for a in np.unique(anchors[anchors != 0]).tolist():
        if a in index:
            anchor_seen[anchors == a] = float(
                index.last_seen_of(np.array([index.slot_of(a)]))[0])
    # With keyframe views, an object is missed where a view should have shown it.
    views = kind == 'object' and bool(misses.views_seen)
    if views:
        by_view = np.zeros(len(ids), dtype=bool)
        expected = np.fromiter(misses.expected, dtype=np.int64, count=len(misses.expected))
        for j in np.flatnonzero(np.isin(ids, expected)).tolist():
            by_view[j] = misses.missed(int(ids[j]), float(last[j]), now, grace)
        is_missed = by_view
    else:
        # validity.missed on arrays: at the anchor place after the last sighting, and left
        is_missed = (anchors != 0) & ~np.isnan(anchor_seen) & (anchors != robot_place)
        is_missed &= np.where(np.isnan(anchor_seen), -np.inf, anchor_seen) > last + grace
    missed_rows = np.flatnonzero(is_missed)
    if missed_rows.shape[0] == 0:
        return None        # a belief not missed where it was is never superseded
    identities = {identity_tags(index.tags_of(int(slots[j]))) for j in missed_rows.tolist()}
    identities.discard(frozenset())
    rows = set()
    for identity in identities:                # every current belief of those identities
        having = index.filter(tags_all=sorted(identity))
        for j in np.flatnonzero(np.isin(slots, having)).tolist():
            if identity_tags(index.tags_of(int(slots[j]))) == identity:
                rows.add(j)
    if not rows:
        return None
    take = np.array(sorted(rows), dtype=np.int64)
    sel = slots[take]
    positions = index.positions_of(sel)
    vectors = index.vectors_of(sel)
    norms = np.linalg.norm(vectors, axis=1)
    vectors /= np.where(norms > 0.0, norms, 1.0)[:, None]
    first = index.first_seen_of(sel)
    counts = index.counts_of(sel)
    candidates = []
    for k, j in enumerate(take.tolist()):
        engram_id = int(ids[j])
        e = changed.get(engram_id)
        seen = None if np.isnan(anchor_seen[j]) else float(anchor_seen[j])
        candidates.append(Candidate(
            engram_id, identity_tags(index.tags_of(int(slots[j]))),
            e.position if e is not None else positions[k], vectors[k],
            float(first[k]), float(last[j]), int(anchors[j]), seen,
            int(e.observation_count if e is not None else counts[k]),
            bool(by_view[j]) if views else None))
    return candidates


def _override(ids: np.ndarray, column: np.ndarray, values: dict) -> None:
    """``column[j] = values[ids[j]]`` where ``ids[j]`` is a key (few keys: no per-row loop)."""
    if not values:
        return
    keys = np.fromiter(values, dtype=np.int64, count=len(values))
    for j in np.flatnonzero(np.isin(ids, keys)).tolist():
        column[j] = values[int(ids[j])]


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


def judge_moves_if_due(store: MemoryStore, promoted: bool, now: float) -> list:
    """After an ingest batch (under ``_write_lock``): judge moves when the batch may have
    completed the evidence for one, and write them. Only with keyframe views (without them,
    moves wait for the consolidation as before).

    :param promoted: an engram of the batch was just confirmed (promoted to long-term).
    :returns: the moves made (also counted in ``store.misses.moves_at_ingest``).
    """
    misses, index = store.misses, store.index
    if misses.policy.visits < 1 or not misses.views_seen:
        return []
    with store._lock:
        history = store.state.history

        def last_seen(i: int) -> float | None:
            if i not in index or i in history:
                return None
            return float(index.last_seen_of(np.array([index.slot_of(i)]))[0])

        due = bool(misses.newly_missed(last_seen, now, store.config.move_grace))
        due = due or (promoted and bool(misses.flagged))
    if not due:
        return []
    changed: dict[int, Engram] = {}
    moves = find_moves(store, changed, set(), now)
    if moves:
        apply_moves(store, moves, changed)
        with store.storage.transaction():
            writes.write(store, list(changed.values()))
        misses.moves_at_ingest += len(moves)
    return moves
