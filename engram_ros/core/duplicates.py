"""Where duplicates are found: which remembered engrams an observation or an engram may be.

Two sightings are the same thing when they are of the same kind, lie within the larger merge
radius of the two (:meth:`MergePolicy.radius_for`: size classes widen it), agree on what they
are (:func:`compatible`: identity tags) and look alike (context vectors at least the kind's
similarity apart). History is never a duplicate of anything. The same test is asked three
ways: for one observation on ingest (:func:`find_match`), for one changed engram at a time
(:func:`duplicate_ids`), and for many at once (:func:`neighbours_batch`: a grid over positions,
similarities of all close pairs, identities compared once per pair of distinct tag sets), and
once more turned round, for a detector's label noise (:func:`noise_candidates`).

The functions read the index (and the history ids) only: the caller holds the index lock, or
passes it to :func:`neighbours_batch`, which takes it for each index read. Reading records from
storage and fusing them is the caller's (:mod:`engram_ros.core.memory.consolidation`,
:mod:`engram_ros.core.merge`).
"""

from __future__ import annotations

from typing import ContextManager
from typing import TYPE_CHECKING

import numpy as np

from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code
from engram_ros.core.model.engram import normalize_vector
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import stack_rows

if TYPE_CHECKING:
    from engram_ros.core.index import EngramIndex
    from engram_ros.core.merge import MergePolicy

#: Tag namespaces that name *what* a thing is; engrams that disagree on them never merge.
IDENTITY_NAMESPACES: tuple[str, ...] = ('label:', 'sound:')

def identity_tags(tags: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The tags that say what a thing is (labels, sound classes)."""
    return frozenset(t for t in tags if t.startswith(IDENTITY_NAMESPACES))


def compatible(obs_tags: tuple[str, ...], engram_tags: tuple[str, ...]) -> bool:
    """True unless both sides name what they are and the names share nothing."""
    a = identity_tags(obs_tags)
    b = identity_tags(engram_tags)
    return not a or not b or bool(a & b)

def pairs_within(queries: np.ndarray, points: np.ndarray, radius: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """All (query index, point index) pairs closer than ``radius`` [m], by a uniform grid.

    Vectorised (no Python loop over points): both sets are hashed into cells of side
    ``radius``; each query looks in the 27 cells around its own. Used by batch consolidation,
    where one KD query per engram would dominate. Pairs come ordered by neighbour cell
    offset, then query, then point.
    """
    queries = np.asarray(queries, dtype=np.float64).reshape(-1, 3)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(queries) == 0 or len(points) == 0 or not radius > 0.0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    origin = np.minimum(queries.min(axis=0), points.min(axis=0))
    cells_p = np.floor((points - origin) / radius).astype(np.int64)
    cells_q = np.floor((queries - origin) / radius).astype(np.int64)
    span = int(max(cells_p.max(), cells_q.max())) + 3
    keys_p = _cell_keys(cells_p, span)
    order = np.argsort(keys_p, kind='stable')
    cell_keys, cell_start, cell_count = np.unique(keys_p[order], return_index=True,
                                                  return_counts=True)
    # Queries in key order: the 27 binary searches then walk the cells monotonically.
    keys_q = _cell_keys(cells_q, span)
    q_order = np.argsort(keys_q, kind='stable')
    keys_q = keys_q[q_order]
    width = span + 2
    last = len(cell_keys) - 1
    out_q, out_p, out_o = [], [], []
    offsets = [(dx * width + dy) * width + dz
               for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)]
    for o, delta in enumerate(offsets):
        keys = keys_q + delta
        at = np.minimum(np.searchsorted(cell_keys, keys), last)
        hit = np.flatnonzero(cell_keys[at] == keys)
        if len(hit) == 0:
            continue
        cell = at[hit]
        counts = cell_count[cell]
        total = int(counts.sum())
        starts = np.repeat(cell_start[cell] - np.cumsum(counts) + counts, counts)
        out_q.append(np.repeat(q_order[hit], counts))
        out_p.append(order[starts + np.arange(total)])
        out_o.append(np.full(total, o, dtype=np.int8))
    if not out_q:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    qi = np.concatenate(out_q)
    pj = np.concatenate(out_p)
    d = queries[qi] - points[pj]
    close = np.flatnonzero(np.einsum('ij,ij->i', d, d) <= radius * radius)
    qi, pj = qi[close], pj[close]
    ordered = np.lexsort((pj, qi, np.concatenate(out_o)[close]))
    return qi[ordered], pj[ordered]


def _cell_keys(cells: np.ndarray, span: int) -> np.ndarray:
    c = cells + 1      # neighbours of cell 0 are at -1
    return (c[:, 0] * (span + 2) + c[:, 1]) * (span + 2) + c[:, 2]


def within_merge_radius(index: EngramIndex, policy: MergePolicy, kind: str,
                        position: np.ndarray, tags: tuple[str, ...]) -> np.ndarray:
    """Slots of ``kind`` close enough to merge with a thing at ``position`` with ``tags``:
    within the larger merge radius of the two (size classes, see :class:`MergePolicy`)."""
    slots = index.filter(kinds=[kind_code(kind)], center=position,
                         radius=policy.max_radius_for(kind))
    if slots is None or len(slots) == 0:
        return np.zeros(0, dtype=np.int64)
    own = policy.radius_for(kind, tags)
    if own >= policy.max_radius_for(kind):
        return slots
    dist = np.linalg.norm(index.positions_of(slots) - position, axis=1)
    theirs = np.array([policy.radius_for(kind, index.tags_of(int(s))) for s in slots])
    return slots[dist <= np.maximum(own, theirs)]


def find_match(index: EngramIndex, policy: MergePolicy, history: set[int],
               obs: Observation) -> int | None:
    """Id of the current engram ``obs`` is another sighting of, or ``None``: the most
    similar compatible one within the merge radius."""
    slots = within_merge_radius(index, policy, obs.kind, np.asarray(obs.position),
                                tuple(obs.tags))
    if len(slots) == 0:
        return None
    vec = normalize_vector(obs.vector)
    top, sims = index.dense_topk(vec, min(len(slots), 32), slots)
    threshold = policy.similarity_for(obs.kind)
    for slot, sim in zip(top, sims):
        if sim < threshold:
            break
        engram_id = int(index.ids_of(np.array([slot]))[0])
        if engram_id in history:     # history is never reactivated
            continue
        if compatible(tuple(obs.tags), index.tags_of(int(slot))):
            return engram_id
    return None


def duplicate_ids(index: EngramIndex, policy: MergePolicy, history: set[int], engram: Engram,
                  removed: set[int]) -> list[int]:
    """Ids of current engrams close to and alike ``engram`` (most similar first), not yet
    ``removed``; the caller keeps those whose records are :func:`compatible`."""
    slots = within_merge_radius(index, policy, engram.kind, engram.position,
                                tuple(engram.tags))
    if len(slots) < 2:
        return []
    top, sims = index.dense_topk(engram.vector, min(len(slots), 32), slots)
    ids = [int(i) for i, s in zip(index.ids_of(np.asarray(top)), sims)
           if s >= policy.similarity_for(engram.kind)]
    return [i for i in ids if i != engram.id and i not in removed and i not in history]


def noise_candidates(index: EngramIndex, policy: MergePolicy, history: set[int],
                     engram: Engram, removed: set[int]) -> list[int]:
    """Ids of current engrams that look like ``engram`` at its place but disagree on what it
    is: those a one-off sighting may be label noise of (most similar first). Within
    ``engram``'s own merge radius (its size class widens it: the centres of two views of a
    bed land farther apart than a mug's)."""
    slots = index.filter(kinds=[kind_code(engram.kind)], center=engram.position,
                         radius=policy.radius_for(engram.kind, engram.tags))
    if slots is None or len(slots) < 2:
        return []
    top, sims = index.dense_topk(engram.vector, min(len(slots), 8), slots)
    return [int(i) for i, s, sim in zip(index.ids_of(np.asarray(top)), top, sims)
            if sim >= policy.similarity_for(engram.kind) and int(i) != engram.id
            and int(i) not in removed and int(i) not in history
            and not compatible(engram.tags, index.tags_of(int(s)))]


def neighbours_batch(index: EngramIndex, lock: ContextManager, history: set[int],
                     policy: MergePolicy, engrams: list[Engram]) -> dict[int, list[int]]:
    """Duplicate candidates of many engrams at once: id -> candidate ids, most similar first.

    Same tests as :func:`duplicate_ids` followed by :func:`compatible`, vectorised. ``lock``
    (the index lock) is taken for each read of the index and ``history``, never for the maths.
    """
    found: dict[int, list[int]] = {}
    by_kind: dict[str, list[Engram]] = {}
    for e in engrams:
        by_kind.setdefault(e.kind, []).append(e)
    identities = _Identities(engrams)
    for kind, items in by_kind.items():
        with lock:
            slots = index.filter(kinds=[kind_code(kind)])
            slots = np.asarray(index.live_slots() if slots is None else slots)
            ids = index.ids_of(slots)
            if history:
                current = ~np.isin(ids, np.fromiter(history, dtype=np.int64))
                slots, ids = slots[current], ids[current]
            positions = index.positions_of(slots)
        qi, pj = _close_pairs(index, lock, policy, kind, items, slots, ids, positions)
        if len(qi) == 0:
            continue
        keep = identities.compatible_pairs(index, lock, items, qi, slots[pj], ids[pj])
        qi, pj = qi[keep], pj[keep]
        with lock:
            sims = index.pair_similarities(
                stack_rows([e.vector for e in items]).astype(np.float32), qi, slots[pj])
        ok = np.flatnonzero(sims >= policy.similarity_for(kind))
        ok = ok[np.lexsort((-sims[ok], qi[ok]))]
        q_sorted = qi[ok]
        p_ids = ids[pj[ok]].tolist()
        bounds = np.flatnonzero(np.diff(q_sorted)) + 1
        for a, b in zip([0] + bounds.tolist(), bounds.tolist() + [len(p_ids)]):
            if b > a:
                found[items[int(q_sorted[a])].id] = p_ids[a:b]
    return found


def _close_pairs(index: EngramIndex, lock: ContextManager, policy: MergePolicy, kind: str,
                 items: list[Engram], slots: np.ndarray, ids: np.ndarray,
                 positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(item, candidate) index pairs of distinct engrams within the larger merge radius of
    their two sides (size classes)."""
    qids = np.array([e.id for e in items], dtype=np.int64)
    q_pos = stack_rows([e.position for e in items])
    base, widest = policy.radius_for(kind), policy.max_radius_for(kind)
    qi, pj = pairs_within(q_pos, positions, widest)
    distinct = ids[pj] != qids[qi]
    qi, pj = qi[distinct], pj[distinct]
    if widest > base and len(qi):
        r_q = np.array([policy.radius_for(kind, e.tags) for e in items])
        near = np.linalg.norm(q_pos[qi] - positions[pj], axis=1)
        close = near <= base
        far = np.flatnonzero(~close & (near <= widest))
        if len(far):
            cand, back = np.unique(pj[far], return_inverse=True)
            with lock:
                r_c = np.array([policy.radius_for(kind, index.tags_of(int(slots[c])))
                                for c in cand.tolist()])
            close[far] = near[far] <= np.maximum(r_q[qi[far]], r_c[back.reshape(-1)])
        qi, pj = qi[close], pj[close]
    return qi, pj


class _Identities:
    """Codes for distinct identity-tag sets, so compatibility is decided once per pair of
    codes; the batch's own engrams are coded from their records, others from the index."""

    def __init__(self, engrams: list[Engram]) -> None:
        self.sets: dict[frozenset[str], int] = {}
        self._of_tags: dict[tuple[str, ...], int] = {}
        # identity codes of the batch's engrams, by id (sorted for searchsorted)
        known_ids = np.array([e.id for e in engrams], dtype=np.int64)
        known_codes = np.array([self.code(e.tags) for e in engrams], dtype=np.int64)
        order = np.argsort(known_ids)
        self.known_ids, self.known_codes = known_ids[order], known_codes[order]

    def code(self, tags: tuple[str, ...]) -> int:
        code = self._of_tags.get(tags)
        if code is None:
            code = self._of_tags[tags] = self.sets.setdefault(identity_tags(tags),
                                                              len(self.sets))
        return code

    def compatible_pairs(self, index: EngramIndex, lock: ContextManager, items: list[Engram],
                         qi: np.ndarray, p_slots: np.ndarray, p_ids: np.ndarray
                         ) -> np.ndarray:
        """Positions in the pairs ``(items[qi], p_ids)`` whose identities are compatible."""
        q_identity = np.array([self.code(e.tags) for e in items], dtype=np.int64)
        known_ids = self.known_ids
        at = np.minimum(np.searchsorted(known_ids, p_ids), len(known_ids) - 1)
        hit = known_ids[at] == p_ids
        p_identity = np.where(hit, self.known_codes[at], -1)
        if not hit.all():        # candidates outside the batch: tags from the index
            unknown, back = np.unique(p_slots[~hit], return_inverse=True)
            with lock:
                codes = np.array([self.code(index.tags_of(int(u))) for u in unknown.tolist()],
                                 dtype=np.int64)
            p_identity[~hit] = codes[back.reshape(-1)]
        qa, pb = q_identity[qi], p_identity
        sets = list(self.sets)
        if all(len(t) <= 1 for t in sets):       # one name each: compatible = equal
            empty = np.array([not t for t in sets], dtype=bool)
            fits = (qa == pb) | empty[qa] | empty[pb]
        else:
            width = len(sets)
            pairs, which = np.unique(qa * width + pb, return_inverse=True)
            fits = np.array([not sets[k // width] or not sets[k % width]
                             or bool(sets[k // width] & sets[k % width])
                             for k in pairs.tolist()], dtype=bool)[which.reshape(-1)]
        return np.flatnonzero(fits)
