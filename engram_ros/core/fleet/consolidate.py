"""Fleet consolidation: what two robots saw of one thing merged once, moves seen by one robot
ending the belief another holds.

Run by one process at a time, under a :class:`~engram_ros.core.fleet.lease.Lease` whose token
is checked before every write. The rules are the embedded memory's, not new ones:

* **Duplicates** are found by :func:`engram_ros.core.duplicates.neighbours_batch` (same kind,
  within the merge radius with size classes, compatible identity tags, context vectors at
  least the kind's similarity) over the fleet's current beliefs loaded into an in-RAM
  :class:`~engram_ros.core.index.EngramIndex`, and fused by
  :func:`engram_ros.core.merge.merge_cluster`. Only pairs seen by two different robots are
  merged here; a robot's own duplicates are its own consolidation's (counted as ``skipped``).
* **The merged engram is owned by the fleet** (row ``robot`` = :data:`FLEET_OWNER`), whichever
  consolidator made it, so ownership does not change hands between runs. A new one gets an id
  derived from its members' ids (:func:`merged_id`, in the range :data:`FLEET_ID_BASE` reserves)
  so a rerun after a crash writes the same id; a cluster that already holds a fleet engram
  folds the others into it. Its provenance (each member's id and robot, the holder and token
  that merged it) is kept in a side collection (:mod:`engram_ros.core.fleet.provenance`).
* **The originals become history**, not deleted: ``valid_to`` set (from the merged belief's
  start: they are superseded for the whole time the merged belief covers) and ``successor_id``
  the merged engram; a recall of current beliefs returns the merged one only.
* **Moves**: a current belief of robot A ends when another robot saw the same thing (same
  identity tags, vectors at least the kind's merge similarity, seen at least ``promote_after``
  times) farther than twice the kind's merge radius away, first seen after A's last sighting
  (the thresholds of :func:`engram_ros.core.memory.beliefs.find_moves`). Its ``valid_to`` is the
  successor's first sighting and ``successor_id`` that engram, as
  :func:`engram_ros.core.memory.beliefs.apply_moves` writes a local move. Of several
  successors the earliest sighting wins. Events are ordered by their robots' clocks: two
  sightings closer than ``tolerance`` are ordered by robot id (deterministic, not "true"
  order), which is why every robot's clock must be synchronised (NTP/chrony) well within it.
  The local rule's second piece of evidence ("missed where it was") is the owner robot's to
  judge in its own memory; the fleet rule relies on time order alone.

A second run with nothing new changes nothing: history is never a candidate again, and merged
members are found in the provenance.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Callable
from typing import Sequence

import numpy as np

from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.duplicates import identity_tags
from engram_ros.core.duplicates import neighbours_batch
from engram_ros.core.fleet.ids import FLEET_INDEX
from engram_ros.core.fleet.ids import FLEET_OWNER
from engram_ros.core.fleet.ids import LOCAL_BITS
from engram_ros.core.fleet.lease import default_lock_path
from engram_ros.core.fleet.lease import DEFAULT_TTL
from engram_ros.core.fleet.lease import Lease
from engram_ros.core.fleet.lease import LeaseLost
from engram_ros.core.fleet.lease import OsLock
from engram_ros.core.fleet.provenance import Provenance
from engram_ros.core.index import EngramIndex
from engram_ros.core.index.engrams import put_engrams
from engram_ros.core.merge import merge_cluster
from engram_ros.core.merge import MergePolicy
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import TIER_LONG

_LOG = logging.getLogger(__name__)

#: Ids of merged engrams: ``FLEET_ID_BASE | 48 bits`` (the fleet's own robot index of the
#: ``robot index << 48 | local id`` scheme, :data:`~.ids.FLEET_INDEX`, never a robot's).
FLEET_ID_BASE = FLEET_INDEX << LOCAL_BITS
#: Clock tolerance [s] within which two robots' events are ordered by robot id.
DEFAULT_TOLERANCE = 0.5
#: Engrams per fenced write.
WRITE_BATCH = 500
#: Kinds whose beliefs can move (places do not).
MOVABLE = ('object', 'audio', 'event')

OK = 'ok'
SUPERSEDED = 'superseded'


@dataclass
class FleetConsolidation:
    """What one fleet consolidation did.

    ``merged``: originals that became history under a merged engram; ``merged_ids``: the
    merged engrams written (new or grown); ``ended``: beliefs ended by a move seen by another
    robot (``moves``: (old, new) pairs); ``skipped``: duplicate pairs left alone because one
    robot saw both (its own consolidation merges them), plus members already in a merged
    engram's provenance that were only made history again (re-uploaded by their robot).
    ``status`` is :data:`OK`, or :data:`SUPERSEDED` when the lease was lost: the run stopped
    before its next write (what was written before stays; a rerun completes it).
    """

    status: str = OK
    merged: int = 0
    merged_ids: list[int] = field(default_factory=list)
    ended: int = 0
    moves: list[tuple[int, int]] = field(default_factory=list)
    skipped: int = 0
    token: int = 0
    holder: str = ''
    message: str = ''

    def as_dict(self) -> dict:
        return {'status': self.status, 'merged': self.merged, 'merged_ids': self.merged_ids,
                'ended': self.ended, 'moves': [list(m) for m in self.moves],
                'skipped': self.skipped, 'token': self.token, 'holder': self.holder,
                'message': self.message}


def merged_id(member_ids: Sequence[int]) -> int:
    """The id of the fleet engram merging ``member_ids`` (order does not matter)."""
    key = ','.join(str(i) for i in sorted({int(i) for i in member_ids})).encode()
    low = int.from_bytes(hashlib.sha256(key).digest()[:6], 'big') or 1
    return FLEET_ID_BASE | low


def later(t1: float, robot1: str, t0: float, robot0: str, tolerance: float) -> bool:
    """Whether event ``(t1, robot1)`` comes after ``(t0, robot0)``: by time, and within
    ``tolerance`` by robot id (a fixed order every consolidator agrees on)."""
    if abs(t1 - t0) > tolerance:
        return t1 > t0
    return robot1 > robot0


@dataclass
class _Step:
    """One cluster's writes: the merged engram and the originals made history (``rows``), its
    provenance ``record``, and how many members were folded in."""

    fused_id: int
    rows: list[Engram]
    record: dict
    folded: int


def consolidate_fleet(backend: MilvusBackend, lease: Lease, *,
                      provenance: Provenance | None = None,
                      policy: MergePolicy | None = None,
                      tolerance: float = DEFAULT_TOLERANCE, now: float | None = None,
                      write_batch: int = WRITE_BATCH) -> FleetConsolidation:
    """One fleet consolidation pass over ``backend`` under a held ``lease``.

    Everything is decided first, then written in batches of whole clusters (at most
    ``write_batch`` rows, or one cluster), each batch after a lease check: its provenance
    records, then its rows; the moves last.

    :param provenance: the merge records (opened on ``backend``'s URI when ``None``; pass one
        for a server that needs a token).
    :param policy: the merge policy (the embedded memory's defaults when ``None``).
    :param tolerance: [s] clock tolerance between robots (see the module doc).
    :param now: time of the pass [s since the epoch] (provenance only).
    :returns: what was done (written); ``status`` :data:`SUPERSEDED` when the lease was lost.
    :raises ValueError: for a negative or non-finite tolerance, or ``write_batch < 1``.
    """
    if not (tolerance >= 0.0 and math.isfinite(tolerance)):
        raise ValueError(f'tolerance={tolerance} must be a finite number of seconds >= 0')
    if write_batch < 1:
        raise ValueError(f'write_batch={write_batch} must be >= 1')
    policy = policy or MergePolicy()
    now = time.time() if now is None else now
    result = FleetConsolidation(token=lease.token, holder=lease.holder)
    records = provenance if provenance is not None else Provenance(backend.uri,
                                                                   backend.collection)
    try:
        lease.check()
        engrams, robots = _current(backend)
        clusters, result.skipped = _clusters(backend, engrams, robots, policy)
        known = records.get([e.id for members in clusters for e in members
                             if robots.get(e.id) == FLEET_OWNER])
        steps = [_merge(members, robots, known, policy, now, lease, result)
                 for members in clusters]
        for step in steps:
            robots[step.fused_id] = FLEET_OWNER
        current = {e.id: e for e in engrams}
        current.update({e.id: e for step in steps for e in step.rows})
        moves = _moves([e for e in current.values() if e.valid_to is None], robots, policy,
                       tolerance)
        for old, new in moves:          # after every merge: written values are final
            _end(old, new)
        _write(backend, lease, records, steps, moves, robots, write_batch, result)
    except LeaseLost as exc:
        result.status = SUPERSEDED
        result.message = (f'{exc}; stopped after merging {result.merged} engrams into '
                          f'{len(result.merged_ids)} and ending {result.ended}')
        _LOG.warning('fleet consolidation stopped: %s', result.message)
        return result
    finally:
        if provenance is None:
            records.close()
    result.message = (f'merged {result.merged} engrams into {len(result.merged_ids)}, ended '
                      f'{result.ended} moved beliefs, skipped {result.skipped}')
    _LOG.info('fleet consolidation: %s', result.message)
    return result


def run_consolidation(uri: str, *, holder: str, collection: str = 'engrams', token: str = '',
                      ttl: float = DEFAULT_TTL, lock_path: Path | str | None = None,
                      tolerance: float = DEFAULT_TOLERANCE, policy: MergePolicy | None = None,
                      clock: Callable[[], float] = time.time) -> FleetConsolidation:
    """The ``engram fleet consolidate`` command's work: the OS lock (``lock_path``, else the
    one next to a milvus-lite file; none for a server URI without one), then the collection,
    then the lease, one pass, and everything given back.

    :raises LeaseRefused: another consolidator holds the lock or the lease.
    :raises ValueError: no such collection (or one that is not an engram_ros memory).
    :raises RuntimeError: Milvus cannot be opened.
    """
    path = Path(lock_path) if lock_path else default_lock_path(uri)
    lock = OsLock(path) if path is not None else None
    if lock is not None:      # before the file is opened: milvus-lite serves it to one process
        lock.acquire(holder)
    try:
        backend = MilvusBackend.open_existing(uri, collection=collection, token=token,
                                              robot_id=FLEET_OWNER)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    records = None
    try:
        lease = Lease(backend, holder, ttl=ttl, lock=lock, clock=clock)
        lease.acquire()
        try:
            records = Provenance(uri, collection, token=token)
            return consolidate_fleet(backend, lease, provenance=records, policy=policy,
                                     tolerance=tolerance, now=clock())
        finally:
            lease.release()
    finally:
        if records is not None:
            records.close()
        if lock is not None:
            lock.release()
        backend.close()


def _current(backend: MilvusBackend) -> tuple[list[Engram], dict[int, str]]:
    """Every current belief of the fleet and the robot of each."""
    ids = backend.select(Stage1Filter()).tolist()
    engrams = backend.get(ids)
    return engrams, backend.robots_of(ids)


def _clusters(backend: MilvusBackend, engrams: list[Engram], robots: dict[int, str],
              policy: MergePolicy) -> tuple[list[list[Engram]], int]:
    """Groups of current engrams linked by duplicate pairs of two robots (the local rule),
    and how many same-robot pairs were left alone."""
    if len(engrams) < 2:
        return [], 0
    index = EngramIndex(backend.dim)
    put_engrams(index, engrams)
    found = neighbours_batch(index, contextlib.nullcontext(), set(), policy, engrams)
    parent = {e.id: e.id for e in engrams}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    same_robot: set[tuple[int, int]] = set()
    for a, candidates in found.items():
        for b in candidates:
            if robots.get(a) == robots.get(b):
                same_robot.add((min(a, b), max(a, b)))
                continue
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[Engram]] = {}
    for e in engrams:
        groups.setdefault(root(e.id), []).append(e)
    clusters = [sorted(g, key=lambda e: e.id) for _, g in sorted(groups.items()) if len(g) > 1]
    in_cluster = {e.id for g in clusters for e in g}
    skipped = sum(1 for a, b in same_robot if not (a in in_cluster and b in in_cluster))
    return clusters, skipped


def _merge(members: list[Engram], robots: dict[int, str], known: dict[int, dict],
           policy: MergePolicy, now: float, lease: Lease,
           result: FleetConsolidation) -> _Step:
    """Fuse one cluster into a fleet engram (new or existing); the others become history."""
    fleet = [e for e in members if robots.get(e.id) == FLEET_OWNER]
    if fleet:
        keep, others = fleet[0], [e for e in members if e.id != fleet[0].id]
        record = known.get(keep.id) or {'members': []}
        already = {int(i) for i, _ in record['members']}
        fold = [e for e in others if e.id not in already]
        result.skipped += len(others) - len(fold)
        fused = merge_cluster(keep, fold, policy) if fold else keep.copy()
    else:
        # A new engram: the best-supported member's record with every member fused in.
        others = fold = members
        record = {'members': []}
        best = max(members, key=lambda e: (e.observation_count, -e.id))
        fused = merge_cluster(best, [e for e in members if e.id != best.id], policy)
        fused.id = merged_id([e.id for e in members])
        fused.anchor_id, fused.keyframe_id = 0, ''      # robot-local references
    fused.tier = TIER_LONG
    fused.valid_from = min(_start(e) for e in members)
    fused.valid_to, fused.successor_id = None, 0
    rows = [fused]
    for e in others:
        old = e.copy()
        old.valid_to = max(old.valid_from, fused.valid_from)
        old.successor_id = fused.id
        rows.append(old)
    record = {'members': record['members'] + [[e.id, robots.get(e.id, '')] for e in fold],
              'holder': lease.holder, 'token': lease.token, 'time': now}
    return _Step(fused.id, rows, record, len(fold))


def _start(e: Engram) -> float:
    return max(e.valid_from, e.first_seen) if e.valid_to is None else e.valid_from


def _moves(current: list[Engram], robots: dict[int, str], policy: MergePolicy,
           tolerance: float) -> list[tuple[Engram, Engram]]:
    """(old, successor) for each current belief another robot saw elsewhere later."""
    out: list[tuple[Engram, Engram]] = []
    groups: dict[tuple[str, frozenset[str]], list[Engram]] = {}
    for e in current:
        identity = identity_tags(e.tags)
        if e.kind in MOVABLE and identity:
            groups.setdefault((e.kind, identity), []).append(e)
    for (kind, _), members in sorted(groups.items(), key=lambda g: min(e.id for e in g[1])):
        if len(members) < 2:
            continue
        far = 2.0 * policy.radius_for(kind)
        similar = policy.similarity_for(kind)
        for old in sorted(members, key=lambda e: e.id):
            successors = [
                new for new in members
                if robots.get(new.id) != robots.get(old.id)
                and new.observation_count >= policy.promote_after
                and float(np.linalg.norm(new.position - old.position)) > far
                and float(np.dot(new.vector, old.vector)) >= similar
                and later(new.first_seen, robots.get(new.id, ''), old.last_seen,
                          robots.get(old.id, ''), tolerance)]
            if successors:
                out.append((old, _earliest(successors, robots, tolerance)))
    # A successor that itself ends (seen elsewhere again, later) stays the successor: the
    # history then reads as a chain A -> B -> C, as a robot's own moves do.
    return out


def _earliest(events: list[Engram], robots: dict[int, str], tolerance: float) -> Engram:
    best = events[0]
    for e in events[1:]:
        if later(best.first_seen, robots.get(best.id, ''), e.first_seen, robots.get(e.id, ''),
                 tolerance):
            best = e
    return best


def _end(old: Engram, new: Engram) -> None:
    """``old`` is history from ``new``'s first sighting (as a local move writes it)."""
    old.valid_to = max(old.valid_from, new.first_seen)
    old.successor_id = new.id
    new.valid_from = min(new.valid_from, new.first_seen) if new.valid_from else new.first_seen
    new.score = max(new.score, old.score)
    new.pinned = new.pinned or old.pinned


def _write(backend: MilvusBackend, lease: Lease, records: Provenance, steps: list[_Step],
           moves: list[tuple[Engram, Engram]], robots: dict[int, str], write_batch: int,
           result: FleetConsolidation) -> None:
    """Fenced writes: the lease checked before each batch; what was written counted."""
    written: set[int] = set()
    batch: list[_Step] = []
    for k, step in enumerate(steps):
        batch.append(step)
        rows = sum(len(s.rows) for s in batch)
        if k + 1 == len(steps) or rows + len(steps[k + 1].rows) > write_batch:
            lease.check()
            records.put({s.fused_id: s.record for s in batch})
            engrams = [e for s in batch for e in s.rows]
            backend.put(engrams, robots={e.id: robots[e.id] for e in engrams})
            written.update(e.id for e in engrams)
            for s in batch:
                result.merged += s.folded
                result.merged_ids.append(s.fused_id)
            batch = []
    rest = {e.id: e for pair in moves for e in pair if e.id not in written}
    ordered = sorted(rest.values(), key=lambda e: e.id)
    _count_moves(moves, written, result)
    for start in range(0, len(ordered), write_batch):
        lease.check()
        chunk = ordered[start:start + write_batch]
        backend.put(chunk, robots={e.id: robots[e.id] for e in chunk})
        written.update(e.id for e in chunk)
        _count_moves(moves, written, result)


def _count_moves(moves: list[tuple[Engram, Engram]], written: set[int],
                 result: FleetConsolidation) -> None:
    """A move counts once both its rows are written."""
    result.moves = [(old.id, new.id) for old, new in moves
                    if old.id in written and new.id in written]
    result.ended = len(result.moves)
