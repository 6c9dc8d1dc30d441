"""Fleet consolidation on a real milvus-lite file: a thing two robots saw is merged once into a
fleet-owned engram with its provenance, the originals kept as history; a move seen by one
robot ends another's belief, ordered by time and, within the clock tolerance, by robot id; a
second run changes nothing; a lost lease stops the run before it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.fleet.consolidate import consolidate_fleet
from engram_ros.core.fleet.consolidate import FLEET_OWNER
from engram_ros.core.fleet.consolidate import later
from engram_ros.core.fleet.consolidate import merged_id
from engram_ros.core.fleet.consolidate import SUPERSEDED
from engram_ros.core.fleet.lease import Lease
from engram_ros.core.fleet.lease import OsLock
from engram_ros.core.fleet.provenance import Provenance
from engram_ros.core.model.engram import Engram

DIM = 16
FRAME = 'map'


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _look(base: np.ndarray, seed: int, noise: float = 0.05) -> np.ndarray:
    """A vector close to ``base`` (cosine > 0.95)."""
    v = base + noise * _unit(seed)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _engram(i: int, label: str, xyz, vector, t0: float, t1: float | None = None,
            count: int = 3) -> Engram:
    return Engram(id=i, kind='object', frame_id=FRAME, position=np.asarray(xyz, float),
                  vector=vector, first_seen=t0, last_seen=t0 if t1 is None else t1,
                  valid_from=t0, tags=(f'label:{label}',), label=label,
                  observation_count=count, evidence=(f'file:///robot/{i}.jpg',))


def _upload(path: Path, robot: str, engrams: list[Engram]) -> None:
    """What a robot's sync writes: its engrams, with its robot id."""
    backend = MilvusBackend(str(path), DIM, model='clip', frame_id=FRAME, robot_id=robot)
    try:
        backend.put(engrams)
    finally:
        backend.close()


@pytest.fixture()
def fleet(tmp_path: Path):
    path = tmp_path / 'fleet.db'
    _upload(path, 'robot1', [])
    backend = MilvusBackend.open_existing(str(path), frame_id=FRAME, robot_id=FLEET_OWNER)
    yield path, backend
    backend.close()


def _lease(backend: MilvusBackend, path: Path, holder: str = 'c1') -> Lease:
    lease = Lease(backend, holder, lock=OsLock(str(path) + '.consolidate.lock'))
    lease.acquire()
    return lease


def _state(backend: MilvusBackend) -> list[tuple]:
    rows = sorted(backend.get(backend.select(Stage1Filter(include_history=True)).tolist()),
                  key=lambda e: e.id)
    return [(e.id, e.valid_from, e.valid_to, e.successor_id, e.observation_count,
             np.round(e.position, 5).tolist()) for e in rows]


def _provenance(backend: MilvusBackend, engram_id: int) -> dict | None:
    records = Provenance(backend.uri, backend.collection)
    try:
        return records.get([engram_id]).get(engram_id)
    finally:
        records.close()


def test_a_thing_two_robots_saw_is_merged_once_with_provenance(fleet) -> None:
    path, backend = fleet
    mug = _unit(1)
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0, 110.0),
                             _engram(12, 'vase', (4.0, 0.0, 0.8), _unit(9), 100.0)])
    _upload(path, 'robot2', [_engram(21, 'mug', (1.1, 2.0, 0.8), _look(mug, 3), 105.0, 120.0,
                                     count=2)])
    lease = _lease(backend, path)
    token = lease.token
    try:
        result = consolidate_fleet(backend, lease)
    finally:
        lease.release()
    assert (result.status, result.merged, result.ended) == ('ok', 2, 0)
    new = merged_id([11, 21])
    assert result.merged_ids == [new]
    current = backend.select(Stage1Filter()).tolist()
    assert sorted(current) == [12, new]                 # one mug among current beliefs
    hits = backend.search(mug, 5, Stage1Filter(tags_all=('label:mug',)))
    assert hits.ids.tolist() == [new]
    merged = backend.get([new])[0]
    assert merged.observation_count == 5 and merged.first_seen == 100.0
    assert merged.last_seen == 120.0 and merged.valid_to is None
    assert set(merged.evidence) == {'file:///robot/11.jpg', 'file:///robot/21.jpg'}
    assert backend.robots_of([new, 11, 21]) == {new: FLEET_OWNER, 11: 'robot1', 21: 'robot2'}
    for original in backend.get([11, 21]):              # history, not gone
        assert original.valid_to is not None and original.successor_id == new
    record = _provenance(backend, new)
    assert sorted(map(tuple, record['members'])) == [(11, 'robot1'), (21, 'robot2')]
    assert (record['holder'], record['token']) == ('c1', token)


def test_a_robots_own_duplicates_are_left_to_it_and_counted(fleet) -> None:
    path, backend = fleet
    mug = _unit(1)
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0),
                             _engram(12, 'mug', (1.1, 2.0, 0.8), _look(mug, 3), 101.0)])
    lease = _lease(backend, path)
    try:
        result = consolidate_fleet(backend, lease)
    finally:
        lease.release()
    assert (result.merged, result.skipped) == (0, 1)
    assert backend.select(Stage1Filter()).tolist() == [11, 12]


def test_a_move_seen_by_another_robot_ends_the_belief(fleet) -> None:
    path, backend = fleet
    mug = _unit(1)
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0, 110.0)])
    _upload(path, 'robot2', [_engram(21, 'mug', (6.0, -3.0, 0.8), _look(mug, 3), 200.0, 230.0),
                             # seen once: no evidence of a move (label noise, as locally)
                             _engram(22, 'mug', (-6.0, 3.0, 0.8), _look(mug, 4), 150.0,
                                     400.0, count=1)])
    _upload(path, 'robot3', [_engram(31, 'mug', (-6.0, -3.0, 0.8), _look(mug, 5), 300.0)])
    lease = _lease(backend, path)
    try:
        result = consolidate_fleet(backend, lease)
    finally:
        lease.release()
    # robot1's mug ends at robot2's first sighting (the earliest later one); robot2's ends
    # at robot3's: a chain, as a robot's own moves read.
    assert sorted(result.moves) == [(11, 21), (21, 31)] and result.ended == 2
    old, mid = backend.get([11, 21])
    assert (old.valid_to, old.successor_id) == (200.0, 21)
    assert (mid.valid_to, mid.successor_id) == (300.0, 31)
    assert backend.select(Stage1Filter(kinds=('object',))).tolist() == [22, 31]
    at = backend.select(Stage1Filter(at_time=210.0, kinds=('object',))).tolist()
    assert at == [21, 22]


def test_events_within_the_clock_tolerance_are_ordered_by_robot_id(fleet) -> None:
    path, backend = fleet
    mug = _unit(1)
    # robot2 saw the mug elsewhere 0.2 s after robot1 last saw it: within the 0.5 s
    # tolerance, so the robot ids order them ('robot2' > 'robot1': robot2's is later)...
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0, 110.0)])
    _upload(path, 'robot2', [_engram(21, 'mug', (6.0, -3.0, 0.8), _look(mug, 3), 110.2)])
    # ... robot0's cup was last seen at 120.0; robot1 saw it elsewhere from 119.8, robot9
    # from 120.3: both within the tolerance, both later by robot id.
    _upload(path, 'robot0', [_engram(41, 'cup', (9.0, 9.0, 0.8), _look(_unit(7), 2), 100.0,
                                     120.0)])
    _upload(path, 'robot9', [_engram(42, 'cup', (-9.0, 9.0, 0.8), _look(_unit(7), 3), 120.3)])
    _upload(path, 'robot1', [_engram(43, 'cup', (-9.0, -9.0, 0.8), _look(_unit(7), 4),
                                     119.8, 125.0)])
    lease = _lease(backend, path)
    try:
        result = consolidate_fleet(backend, lease, tolerance=0.5)
    finally:
        lease.release()
    # 11 (robot1, last 110.0) -> 21 (robot2, 110.2): later by robot id within tolerance.
    # 41 (robot0, last 120.0): 43 (robot1, 119.8) is later by robot id, 42 (robot9, 120.3)
    # too; of the two, 43 comes first (robot1 < robot9 within the tolerance).
    assert sorted(result.moves) == [(11, 21), (41, 43)]
    assert later(110.2, 'robot2', 110.0, 'robot1', 0.5)
    assert not later(110.2, 'robot0', 110.0, 'robot1', 0.5)
    assert later(111.0, 'robot0', 110.0, 'robot1', 0.5)


def test_a_second_run_changes_nothing(fleet) -> None:
    path, backend = fleet
    mug = _unit(1)
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0, 110.0),
                             _engram(12, 'cup', (4.0, 0.0, 0.8), _unit(8), 100.0, 101.0)])
    _upload(path, 'robot2', [_engram(21, 'mug', (1.1, 2.0, 0.8), _look(mug, 3), 105.0, 120.0),
                             _engram(22, 'cup', (-4.0, 0.0, 0.8), _look(_unit(8), 1), 200.0)])
    lease = _lease(backend, path)
    try:
        first = consolidate_fleet(backend, lease)
        after_first = _state(backend)
        second = consolidate_fleet(backend, lease)
    finally:
        lease.release()
    assert (first.merged, first.ended) == (2, 1)
    assert (second.merged, second.ended, second.merged_ids) == (0, 0, [])
    assert _state(backend) == after_first


def test_a_new_sighting_folds_into_the_fleet_engram(fleet) -> None:
    path, backend = fleet
    mug = _unit(1)
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0)])
    _upload(path, 'robot2', [_engram(21, 'mug', (1.1, 2.0, 0.8), _look(mug, 3), 105.0)])
    lease = _lease(backend, path)
    try:
        consolidate_fleet(backend, lease)
        _upload(path, 'robot3', [_engram(31, 'mug', (1.0, 2.1, 0.8), _look(mug, 4), 130.0)])
        again = consolidate_fleet(backend, lease)
    finally:
        lease.release()
    fleet_id = merged_id([11, 21])
    assert (again.merged, again.merged_ids) == (1, [fleet_id])
    assert backend.select(Stage1Filter()).tolist() == [fleet_id]
    assert backend.get([fleet_id])[0].observation_count == 9
    assert sorted(map(tuple, _provenance(backend, fleet_id)['members'])) == [
        (11, 'robot1'), (21, 'robot2'), (31, 'robot3')]


def test_a_superseded_lease_stops_the_run_before_it_writes(fleet) -> None:
    path, backend = fleet
    mug = _unit(1)
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0)])
    _upload(path, 'robot2', [_engram(21, 'mug', (1.1, 2.0, 0.8), _look(mug, 3), 105.0)])
    clock = [1000.0]
    stale = Lease(backend, 'c1', ttl=10.0, clock=lambda: clock[0])
    stale.acquire()
    clock[0] = 1011.0                                     # c1 was paused past its lease
    taker = Lease(backend, 'c2', ttl=10.0, clock=lambda: clock[0])
    assert taker.acquire() == stale.token + 1
    before = _state(backend)
    result = consolidate_fleet(backend, stale)
    assert result.status == SUPERSEDED and 'taken over' in result.message
    assert (result.merged, result.merged_ids) == (0, [])
    assert _state(backend) == before
    assert _provenance(backend, merged_id([11, 21])) is None
    taker.release()


@pytest.mark.parametrize('clusters', [1, 2], ids=['before-any-write', 'after-one-batch'])
def test_a_lease_taken_over_mid_run_stops_the_next_write(fleet, clusters: int) -> None:
    """The token is checked before every batch it writes (here one cluster per batch): the
    lease is taken over while the holder runs, and its next check stops it; what it wrote
    before stays and counts, nothing is written after. The new holder's rerun does the rest
    (a merged id does not depend on who merged)."""
    path, backend = fleet
    mug, cup = _unit(1), _unit(8)
    _upload(path, 'robot1', [_engram(11, 'mug', (1.0, 2.0, 0.8), _look(mug, 2), 100.0)]
            + [_engram(12, 'cup', (5.0, 2.0, 0.8), _look(cup, 2), 100.0)][:clusters - 1])
    _upload(path, 'robot2', [_engram(21, 'mug', (1.1, 2.0, 0.8), _look(mug, 3), 105.0)]
            + [_engram(22, 'cup', (5.1, 2.0, 0.8), _look(cup, 3), 105.0)][:clusters - 1])
    taker = Lease(backend, 'c2', ttl=10.0, clock=lambda: 2000.0)
    calls = []
    # c1's clock. Checks: 1 acquire, 2 start of the pass, 3 first batch, 4 second batch. c2
    # takes the lease (c1's has expired by c2's clock) during check ``takeover``, after c1
    # read the record: that check passes, the next one finds c2's token.
    takeover = clusters + 1

    def clock() -> float:
        calls.append(1)
        if len(calls) == takeover:
            taker.acquire()
        return 1000.0

    stale = Lease(backend, 'c1', ttl=10.0, clock=clock)
    stale.acquire()
    before = _state(backend)
    result = consolidate_fleet(backend, stale, write_batch=1)
    assert result.status == SUPERSEDED and 'taken over' in result.message
    assert len(calls) == takeover + 1                      # stopped at its next check
    done = merged_id([11, 21])
    if clusters == 1:
        assert (result.merged, result.merged_ids) == (0, [])
        assert _state(backend) == before and _provenance(backend, done) is None
    else:                                                  # the mugs' batch went before
        assert (result.merged, result.merged_ids) == (2, [done])
        assert backend.select(Stage1Filter()).tolist() == [12, 22, done]
    rerun = consolidate_fleet(backend, taker)
    assert (rerun.status, rerun.merged) == ('ok', 2)
    assert backend.select(Stage1Filter()).tolist() == sorted(
        [merged_id([11, 21]), merged_id([12, 22])][:clusters])
    taker.release()
