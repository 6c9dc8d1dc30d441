"""A fleet forget on a real milvus-lite file: the rows leave get, search and select, a merged
engram made from them goes with them (its other members current again), the collection is
compacted, and the request is in the asking node's audit log; a bad or empty request is
refused and audited too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.fleet.consolidate import consolidate_fleet
from engram_ros.core.fleet.consolidate import FLEET_OWNER
from engram_ros.core.fleet.consolidate import merged_id
from engram_ros.core.fleet.forget import fleet_forget
from engram_ros.core.fleet.lease import Lease
from engram_ros.core.fleet.provenance import Provenance
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.model.engram import Engram

DIM = 16
FRAME = 'map'


def _vector(seed: int, base: np.ndarray | None = None) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    if base is not None:
        v = base + 0.05 * v / np.linalg.norm(v)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _engram(i: int, label: str, x: float, vector: np.ndarray, t: float) -> Engram:
    return Engram(id=i, kind='object', frame_id=FRAME, position=np.array([x, 0.0, 0.5]),
                  vector=vector, first_seen=t, last_seen=t, valid_from=t,
                  tags=(f'label:{label}',), label=label, observation_count=2)


@pytest.fixture()
def fleet(tmp_path: Path):
    """robot1: a mug at x=1, a book at x=8; robot2: the same mug (x=1.1), a plant at x=-8."""
    path = str(tmp_path / 'fleet.db')
    mug = _vector(1)
    for robot, engrams in (('robot1', [_engram(11, 'mug', 1.0, _vector(2, mug), 100.0),
                                       _engram(12, 'book', 8.0, _vector(3), 100.0)]),
                           ('robot2', [_engram(21, 'mug', 1.1, _vector(4, mug), 105.0),
                                       _engram(22, 'plant', -8.0, _vector(5), 105.0)])):
        writer = MilvusBackend(path, DIM, model='clip', frame_id=FRAME, robot_id=robot)
        writer.put(engrams)
        writer.close()
    backend = MilvusBackend.open_existing(path, frame_id=FRAME, robot_id=FLEET_OWNER)
    audit = AuditLog(tmp_path / 'audit.jsonl')        # the asking node's log
    yield backend, audit
    audit.close()
    backend.close()


def _everywhere(backend: MilvusBackend) -> tuple[list[int], list[int], list[int]]:
    """Ids seen by get, select (history included) and an unfiltered search."""
    everything = backend.select(Stage1Filter(include_history=True)).tolist()
    got = [e.id for e in backend.get([11, 12, 21, 22, merged_id([11, 21])])]
    found = backend.search(_vector(1), 10).ids.tolist()
    return sorted(got), everything, sorted(found)


def _provenance(backend: MilvusBackend, engram_id: int) -> dict | None:
    records = Provenance(backend.uri, backend.collection)
    try:
        return records.get([engram_id]).get(engram_id)
    finally:
        records.close()


def test_forget_by_ids_removes_the_rows_everywhere_and_is_audited(fleet) -> None:
    backend, audit = fleet
    result = fleet_forget(backend, audit, ids=[12, 99], requester='robot2/memory')
    assert (result.forgotten_ids, result.unknown_ids) == ([12], [99])
    assert result.status == GovernanceStatus.UNKNOWN_ID and isinstance(result.compaction_job,
                                                                       int)
    assert _everywhere(backend) == ([11, 21, 22], [11, 21, 22], [11, 21, 22])
    record = list(audit.records())[-1]
    assert (record['action'], record['requester']) == ('fleet_forget', 'robot2/memory')
    assert record['params']['ids'] == [12, 99] and record['result']['ids'] == [12]
    assert record['result']['unknown'] == [99] and audit.verify().ok


def test_forget_by_robot_takes_what_was_merged_from_it(fleet) -> None:
    backend, audit = fleet
    lease = Lease(backend, 'c1')
    lease.acquire()
    consolidate_fleet(backend, lease)
    lease.release()
    fleet_id = merged_id([11, 21])
    assert backend.select(Stage1Filter()).tolist() == [12, 22, fleet_id]
    result = fleet_forget(backend, audit, robot='robot1')
    assert (result.forgotten_ids, result.derived_ids, result.reopened_ids) == (
        [11, 12], [fleet_id], [21])
    # robot2's sighting of the mug is its current belief again; nothing of robot1's is left
    assert _everywhere(backend) == ([21, 22], [21, 22], [21, 22])
    mug = backend.get([21])[0]
    assert (mug.valid_to, mug.successor_id) == (None, 0)
    assert backend.robots_of([21, 22]) == {21: 'robot2', 22: 'robot2'}
    assert _provenance(backend, fleet_id) is None
    record = list(audit.records())[-1]
    assert record['params']['robot'] == 'robot1'
    assert record['result']['derived'] == [fleet_id] and record['result']['reopened'] == [21]


def test_forgetting_a_merged_engram_makes_its_members_current_again(fleet) -> None:
    backend, audit = fleet
    lease = Lease(backend, 'c1')
    lease.acquire()
    consolidate_fleet(backend, lease)
    lease.release()
    fleet_id = merged_id([11, 21])
    result = fleet_forget(backend, audit, ids=[fleet_id])
    assert (result.forgotten_ids, result.derived_ids, result.reopened_ids) == (
        [fleet_id], [], [11, 21])
    assert backend.select(Stage1Filter()).tolist() == [11, 12, 21, 22]
    assert backend.robots_of([11, 21]) == {11: 'robot1', 21: 'robot2'}


def test_forget_by_tag_and_region_as_a_local_forget_selects(fleet) -> None:
    backend, audit = fleet
    by_tag = fleet_forget(backend, audit, selection=EngramFilter(tags_any=('label:plant',)))
    assert by_tag.forgotten_ids == [22]
    near = EngramFilter(center=np.array([1.0, 0.0, 0.5]), radius=0.5)
    in_region = fleet_forget(backend, audit, selection=near, dry_run=True)
    assert in_region.forgotten_ids == [11, 21] and in_region.dry_run
    assert _everywhere(backend)[1] == [11, 12, 21]             # a dry run changes nothing
    narrowed = fleet_forget(backend, audit, ids=[11, 12], selection=near)
    assert narrowed.forgotten_ids == [11]
    assert _everywhere(backend) == ([12, 21], [12, 21], [12, 21])
    first = next(r for r in audit.records() if r['action'] == 'fleet_forget')
    digests = first['params']['tags_any']
    assert digests and all(d.startswith('h:') for d in digests)  # tags digested, not in clear


@pytest.mark.parametrize('request_', [{}, {'ids': [0]},
                                      {'selection': EngramFilter(kinds=('nope',))}])
def test_a_bad_or_empty_request_is_refused_audited_and_forgets_nothing(fleet,
                                                                       request_) -> None:
    backend, audit = fleet
    with pytest.raises(GovernanceError):
        fleet_forget(backend, audit, **request_)
    assert _everywhere(backend)[1] == [11, 12, 21, 22]
    record = list(audit.records())[-1]
    assert record['action'] == 'fleet_forget' and record['result']['status'] != 0
