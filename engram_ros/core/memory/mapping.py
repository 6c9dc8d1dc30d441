"""The map-like memory: the place graph's edges, anchors, and SLAM pose corrections.

Consecutive place observations add traversal edges (mirrored in storage and in the state);
an object is anchored to the nearest current place and moves with it when SLAM corrects the
place's pose; a place merged away by consolidation hands its anchored things and its edges to
the place that absorbed it. The maths of a correction is :mod:`engram_ros.core.places`.
"""

from __future__ import annotations

import logging
from typing import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.memory import writes
from engram_ros.core.memory.config import LOGGER_NAME
from engram_ros.core.model.edges import edge_key
from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code
from engram_ros.core.places import CorrectionError
from engram_ros.core.places import CorrectionReport
from engram_ros.core.places import CorrectionStatus
from engram_ros.core.places import move_engram
from engram_ros.core.places import PlaceGraph
from engram_ros.core.places import PoseCorrection
from engram_ros.core.places import rigid_delta

if TYPE_CHECKING:
    from engram_ros.core.memory.store import MemoryStore

_LOG = logging.getLogger(LOGGER_NAME)


def traversal(store: MemoryStore, place_id: int, stamp: float) -> PlaceEdge | None:
    """Note that the robot is at ``place_id``; the edge it just traversed, if any (under
    ``store._lock``)."""
    state = store.state
    last, state.last_place = state.last_place, (place_id, stamp)
    if last is None or last[0] == place_id or abs(stamp - last[1]) > store.config.edge_max_gap:
        return None
    if last[0] not in store.index:
        return None
    a, b = edge_key(last[0], place_id)
    old = state.edges.get((a, b))
    return PlaceEdge(a, b, (old.traversals if old else 0) + 1,
                     max(stamp, old.last_traversed if old else stamp))


def nearest_place(store: MemoryStore, position: np.ndarray) -> int:
    """Id of the nearest current place within the anchor radius, 0 = none (under
    ``store._lock``)."""
    index = store.index
    slots = index.filter(kinds=[kind_code('place')], center=np.asarray(position),
                         radius=store.config.anchor_radius)
    if slots is None or len(slots) == 0:
        return 0
    slots = np.asarray(slots)
    ids = index.ids_of(slots)
    history = store.state.history
    keep = np.array([int(i) not in history for i in ids], dtype=bool)
    if not keep.any():
        return 0
    d = np.linalg.norm(index.positions_of(slots[keep]) - np.asarray(position), axis=1)
    return int(ids[keep][int(np.argmin(d))])


def place_graph(store: MemoryStore) -> tuple[PlaceGraph, list[int]]:
    """The current places, the edges between them, what is anchored where; and the ids."""
    with store._lock:
        index, state = store.index, store.state
        slots = index.filter(kinds=[kind_code('place')])
        slots = index.live_slots() if slots is None else slots
        ids = [int(i) for i in index.ids_of(np.asarray(slots)) if int(i) not in state.history]
        edges = sorted(state.edges.values(), key=lambda e: (e.a, e.b))
        live = set(ids)
        anchors = {i: p for i, p in state.anchor_of.items()
                   if i not in state.history and p in live}
    places = sorted(store.storage.get(ids), key=lambda e: e.id)
    return PlaceGraph(places, edges, anchors), ids


def correct_poses(store: MemoryStore, corrections: Sequence[PoseCorrection]
                  ) -> CorrectionReport:
    """Move corrected places and what is anchored to them (see
    :meth:`MemoryStore.correct_poses`)."""
    if not corrections:
        raise CorrectionError(CorrectionStatus.EMPTY, 'no corrected poses given')
    for c in corrections:
        c.validate()
    with store._write_lock:
        targets = _targets(store, corrections)
        places = {e.id: e for e in store.storage.get([p for p, _ in targets])}
        bad = [str(p) for p, _ in targets if places.get(p) is None or places[p].kind != 'place']
        if bad:
            raise CorrectionError(CorrectionStatus.UNKNOWN_KEYFRAME,
                                  f'id(s) {", ".join(bad[:20])} are not places; nothing '
                                  'was changed')
        report = CorrectionReport()
        changed: dict[int, Engram] = {}
        for place_id, c in targets:
            place = places[place_id]
            rot, trans = rigid_delta(place.position, place.orientation,
                                     np.asarray(c.position, dtype=np.float64),
                                     np.asarray(c.orientation, dtype=np.float64))
            changed[place_id] = move_engram(place, rot, trans)
            report.places.append(place_id)
            with store._lock:
                anchored = sorted(store.state.anchored.get(place_id, ()))
            for engram in store.storage.get(anchored):
                if engram.id not in changed:
                    changed[engram.id] = move_engram(engram, rot, trans)
                    report.anchored.append(engram.id)
        writes.write(store, list(changed.values()))
        _LOG.info('pose correction: moved %d places and %d anchored engrams',
                  len(report.places), len(report.anchored))
        return report


def _targets(store: MemoryStore, corrections: Sequence[PoseCorrection]
             ) -> list[tuple[int, PoseCorrection]]:
    """(place id, correction) for each correction; raises when any names no current place."""
    targets: list[tuple[int, PoseCorrection]] = []
    unknown = []
    with store._lock:
        state = store.state
        for c in corrections:
            place = state.keyframes.get(c.keyframe_id, 0) if c.keyframe_id else int(c.place_id)
            if not place or place not in store.index or place in state.history:
                unknown.append(c.keyframe_id or str(c.place_id))
            else:
                targets.append((place, c))
    if unknown:
        raise CorrectionError(CorrectionStatus.UNKNOWN_KEYFRAME,
                              f'unknown keyframe(s) or place id(s): '
                              f'{", ".join(unknown[:20])}; nothing was changed')
    return targets


def follow_place_merges(store: MemoryStore, merged_into: dict[int, int],
                        changed: dict[int, Engram]
                        ) -> tuple[list[PlaceEdge], list[tuple[int, int]]]:
    """Re-anchor things and rewire edges of places merged away (anchored things go into
    ``changed``); the edges to put and to delete."""
    def final(i: int) -> int:
        while i in merged_into:
            i = merged_into[i]
        return i

    with store._lock:
        state = store.state
        ends = {i for key in state.edges for i in key}
        gone_places = [i for i in merged_into if i in state.anchored or i in ends]
        anchored = {i: set(state.anchored.get(i, ())) for i in gone_places}
        edges = dict(state.edges)
    for gone in gone_places:
        keep = final(gone)
        moved = [i for i in anchored[gone] if i not in merged_into]
        for engram in store.storage.get([i for i in moved if i not in changed]):
            changed[engram.id] = engram
        for i in moved:
            if i in changed:
                changed[i].anchor_id = keep
    put: dict[tuple[int, int], PlaceEdge] = {}
    drop: list[tuple[int, int]] = []
    for key, edge in edges.items():
        a, b = final(edge.a), final(edge.b)
        if (a, b) == key or (b, a) == key:
            continue
        drop.append(key)
        if a == b:
            continue
        new_key = edge_key(a, b)
        old = put.get(new_key) or edges.get(new_key)
        put[new_key] = PlaceEdge(new_key[0], new_key[1],
                                 edge.traversals + (old.traversals if old else 0),
                                 max(edge.last_traversed, old.last_traversed if old else 0.0))
    return list(put.values()), drop


def write_edges(store: MemoryStore, put: list[PlaceEdge], drop: list[tuple[int, int]]) -> None:
    """Delete and put place-graph edges: storage, then the state (edges between live
    engrams only)."""
    if drop:
        store.storage.delete_edges(drop)
    if put:
        store.storage.put_edges(put)
    with store._lock:
        store.state.drop_edges(drop)
        store.state.set_edges([e for e in put if e.a in store.index and e.b in store.index])
