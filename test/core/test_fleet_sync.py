"""Fleet sync (issue 15) against real milvus-lite: a robot's own engrams go up with its robot
id under fleet ids, a change is re-uploaded, a forget deletes the fleet row, ``share=none``
and privacy zones keep engrams home, an unreachable fleet leaves the robot working on its own
memory with a bounded, counted backlog that drains when the fleet returns, and a collection of
another dimension or a corrupt file is a clear error with nothing written.

The fleet is either a milvus-lite file opened in this process or one served by ``engram fleet
serve`` in a subprocess (stopped and restarted to take the fleet away)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from fleet_served import Served

from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.fleet.consolidate import FLEET_ID_BASE
from engram_ros.core.fleet.ids import fleet_id
from engram_ros.core.fleet.ids import FLEET_INDEX
from engram_ros.core.fleet.ids import FLEET_OWNER
from engram_ros.core.fleet.ids import local_id
from engram_ros.core.fleet.ids import MAX_LOCAL_ID
from engram_ros.core.fleet.ids import MAX_ROBOTS
from engram_ros.core.fleet.ids import register
from engram_ros.core.fleet.ids import robot_index
from engram_ros.core.fleet.link import FleetLink
from engram_ros.core.fleet.sync import FleetSync
from engram_ros.core.fleet.sync import META_SYNCED
from engram_ros.core.fleet.sync import parse_share
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import Observation
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import SQLiteStorage

DIM = 8
FRAME = 'map'
MODEL = 'enc-a'
T0 = 1.7e9


def _vector(name: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _obs(label: str, position=(0.0, 0.0, 0.0), kind: str = 'object',
         evidence: tuple[str, ...] = ()) -> Observation:
    return Observation(kind=kind, frame_id=FRAME, position=np.asarray(position, dtype=float),
                       stamp=T0, vector=_vector(label), label=label,
                       tags=(f'label:{label}',), evidence=evidence)


def _store(path: Path, **config) -> MemoryStore:
    return MemoryStore(SQLiteStorage(path), StoreConfig(dim=DIM, frame_id=FRAME, **config))


def _link(uri: str, robot: str = 'r1', **options) -> FleetLink:
    options.setdefault('retry_initial', 0.0)
    return FleetLink(uri, options.pop('dim', DIM), robot_id=robot, model=MODEL, frame_id=FRAME,
                     **options)


def _rows(uri: str) -> dict[int, dict]:
    """The fleet collection's rows as another process would see them: id -> fields."""
    fleet = MilvusBackend(uri, DIM, model=MODEL, frame_id=FRAME)
    try:
        rows = fleet._client.query(fleet.collection, filter='id > 0',
                                   output_fields=['id', 'robot', 'record'], limit=1000)
        return {int(r['id']): r for r in rows}
    finally:
        fleet.close()


# ------------------------------------------------------------------ a served fleet file


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / 'fleet.db')
    yield server
    server.stop()


# ------------------------------------------------------------------ ids


def test_fleet_ids_carry_robot_index_and_local_id_and_refuse_what_does_not_fit() -> None:
    fid = fleet_id(3, 42)
    assert (robot_index(fid), local_id(fid)) == (3, 42) and fid < 2 ** 63
    assert fleet_id(1, 42) != fleet_id(2, 42)
    with pytest.raises(ValueError, match='does not fit'):
        fleet_id(1, MAX_LOCAL_ID + 1)
    with pytest.raises(ValueError, match='robot index'):
        fleet_id(0, 1)
    # The largest index is the fleet's own (fleet-merged engrams): no robot may write there.
    with pytest.raises(ValueError, match='robot index'):
        fleet_id(FLEET_INDEX, 1)
    assert FLEET_ID_BASE == FLEET_INDEX << 48 and robot_index(FLEET_ID_BASE | 5) > MAX_ROBOTS


def test_robots_register_distinct_indices_kept_across_reconnects(tmp_path: Path) -> None:
    fleet = MilvusBackend(str(tmp_path / 'fleet.db'), DIM, model=MODEL)
    try:
        assert register(fleet, 'r1') == 1 and register(fleet, 'r2') == 2
        assert register(fleet, 'r1') == 1
        fleet.set_meta('robot.r3', '2')          # a registration race left a collision
        assert register(fleet, 'r3') not in (1, 2)
        with pytest.raises(ValueError, match='owner of fleet-merged engrams'):
            register(fleet, FLEET_OWNER)
    finally:
        fleet.close()


def test_share_accepts_modes_and_kinds_only() -> None:
    assert parse_share('none') == () and parse_share('places') == ('place',)
    assert parse_share('object, place') == ('object', 'place')
    with pytest.raises(ValueError, match='accepted none, places, all'):
        parse_share('everything')


# ------------------------------------------------------------------ uploads


def test_sync_uploads_own_engrams_with_robot_id_and_reuploads_a_change(tmp_path: Path) -> None:
    uri = str(tmp_path / 'fleet.db')
    store = _store(tmp_path / 'store')
    link = _link(uri)
    sync = FleetSync(store.storage, link)
    try:
        mug = store.ingest(_obs('mug', (1.0, 2.0, 0.0),
                                evidence=('file:///robot1/evidence/mug.jpg',))).engram_id
        store.ingest(_obs('kitchen', (3.0, 0.0, 0.0), kind='place'))
        assert sync.run_once()
        assert sync.counters.uploaded == 2 and sync.counters.backlog == 0
        rows = _rows_while_linked(link)
        fid = fleet_id(link.robot_index, mug)
        assert {r['robot'] for r in rows.values()} == {'r1'} and fid in rows
        assert 'file:///robot1/evidence/mug.jpg' in rows[fid]['record']   # the URI, not the file
        store.edit(mug, add_tags=('color:red',))
        assert sync.run_once() and sync.counters.uploaded == 3          # only the change
        assert 'color:red' in _rows_while_linked(link)[fid]['record']
        assert store.storage.get_meta(META_SYNCED) is not None
    finally:
        sync.stop()
        store.close()


def _rows_while_linked(link: FleetLink) -> dict[int, dict]:
    """The rows through the link's own connection (a milvus-lite file opened in this
    process is served by one in-process server, which a second client shares)."""
    backend = link.backend()
    assert backend is not None
    rows = backend._client.query(backend.collection, filter='id > 0',
                                 output_fields=['id', 'robot', 'record'], limit=1000)
    return {int(r['id']): r for r in rows}


def test_a_change_uploaded_after_the_fleet_ended_the_belief_keeps_that_ending(
        tmp_path: Path) -> None:
    # Fleet consolidation made robot r1's mug history (merged into a fleet engram); r1 then
    # sees the mug again and uploads its change: the earliest ending wins, the owner's other
    # fields are written.
    store = _store(tmp_path / 'store')
    link = _link(str(tmp_path / 'fleet.db'))
    sync = FleetSync(store.storage, link)
    try:
        mug = store.ingest(_obs('mug')).engram_id
        assert sync.run_once()
        backend = link.backend()
        fid = fleet_id(link.robot_index, mug)
        ended = backend.get([fid])[0]
        ended.valid_to, ended.successor_id = T0 + 5.0, FLEET_ID_BASE | 9
        backend.put([ended])
        store.edit(mug, add_tags=('color:red',))
        assert sync.run_once()
        row = backend.get([fid])[0]
        assert 'color:red' in row.tags
        assert (row.valid_to, row.successor_id) == (T0 + 5.0, FLEET_ID_BASE | 9)
    finally:
        sync.stop()
        store.close()


def test_a_local_forget_deletes_the_fleet_row(tmp_path: Path) -> None:
    store = _store(tmp_path / 'store')
    link = _link(str(tmp_path / 'fleet.db'))
    sync = FleetSync(store.storage, link)
    try:
        mug = store.ingest(_obs('mug')).engram_id
        cup = store.ingest(_obs('cup', (4.0, 0.0, 0.0))).engram_id
        assert sync.run_once()
        store.forget([mug], requester='test')
        assert sync.run_once() and sync.counters.deleted == 1
        assert set(_rows_while_linked(link)) == {fleet_id(link.robot_index, cup)}
        assert store.storage.changes_since(0) == [(cup, store.storage.changes_since(0)[0][1])]
    finally:
        sync.stop()
        store.close()


def test_share_none_uploads_nothing_and_never_connects(tmp_path: Path) -> None:
    store = _store(tmp_path / 'store')
    link = _link(str(tmp_path / 'fleet.db'))
    sync = FleetSync(store.storage, link, share='none')
    try:
        store.ingest(_obs('mug'))
        assert sync.run_once()
        assert link.attempts == 0 and sync.counters.uploaded == 0
        assert sync.status()['fleet'] == 'off (fleet.share=none)'
        assert not (tmp_path / 'fleet.db').exists()
    finally:
        sync.stop()
        store.close()


def test_places_only_and_privacy_zones_keep_engrams_home(tmp_path: Path) -> None:
    store = _store(tmp_path / 'store')
    link = _link(str(tmp_path / 'fleet.db'))
    # The zone is the sync's: e.g. a zone added after these engrams were stored.
    sync = FleetSync(store.storage, link, share='places',
                     privacy=PrivacyPolicy.parse(zones=['circle:10,10,2']))
    try:
        store.ingest(_obs('mug'))
        hall = store.ingest(_obs('hall', (0.0, 5.0, 0.0), kind='place')).engram_id
        store.ingest(_obs('bathroom', (10.0, 10.5, 0.0), kind='place'))
        assert sync.run_once()
        assert set(_rows_while_linked(link)) == {fleet_id(link.robot_index, hall)}
        assert sync.counters.withheld == 2 and sync.counters.uploaded == 1
    finally:
        sync.stop()
        store.close()


# ------------------------------------------------------------------ faults


def test_unreachable_at_start_robot_works_locally_and_says_why(tmp_path: Path) -> None:
    store = _store(tmp_path / 'store')
    with _free_port() as port:
        link = _link(f'http://127.0.0.1:{port}')
        sync = FleetSync(store.storage, link)
        try:
            store.ingest(_obs('mug'))
            assert not sync.run_once()
            assert sync.status()['fleet'].startswith('unreachable: ')
            assert link.backend() is None and sync.counters.backlog == 1
            answer = store.recall(RecallQuery(text='', vector=_vector('mug'), k=1))
            assert len(answer.ids) == 1                       # the local memory answers
        finally:
            sync.stop()
            store.close()


class _free_port:
    """A port nobody listens on (bound, then released, for the test's duration)."""

    def __enter__(self) -> int:
        import socket
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            return s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None


def test_an_unreachable_fleet_is_retried_only_after_a_doubling_backoff() -> None:
    now = [0.0]
    with _free_port() as port:
        link = FleetLink(f'http://127.0.0.1:{port}', DIM, robot_id='r1', model=MODEL,
                         retry_initial=10.0, retry_max=15.0, clock=lambda: now[0])
        assert link.connect() is None and link.attempts == 1
        now[0] = 9.9
        assert link.connect() is None and link.attempts == 1      # waiting out 10 s
        now[0] = 10.0
        assert link.connect() is None and link.attempts == 2
        now[0] = 24.9
        assert link.connect() is None and link.attempts == 2      # then 15 s (the cap)
        assert link.status().startswith('unreachable: ')


def test_fleet_gone_later_backlog_is_bounded_and_counted_then_drained(tmp_path: Path) -> None:
    server = Served(tmp_path / 'fleet.db')
    store = _store(tmp_path / 'store')
    link = _link(server.uri)
    sync = FleetSync(store.storage, link, backlog=3)
    try:
        store.ingest(_obs('mug'))
        assert sync.run_once() and sync.counters.uploaded == 1
        server.stop()
        for i, label in enumerate(('a', 'b', 'c', 'd', 'e')):
            store.ingest(_obs(label, (5.0 * (i + 1), 0.0, 0.0)))
        assert not sync.run_once()
        assert sync.status()['fleet'].startswith('unreachable: ')
        assert sync.counters.backlog == 3 and sync.counters.dropped_backlog == 2
        assert sync.counters.failures + link.attempt_failures >= 1
        server = Served(tmp_path / 'fleet.db', port=server.port)      # back, same address
        assert _sync_until_drained(sync)
        assert sync.counters.uploaded == 4 and sync.counters.backlog == 0
        labels = sorted(r['record'].split('"label":"')[1].split('"')[0]
                        for r in _rows(server.uri).values())
        assert labels == ['c', 'd', 'e', 'mug']             # the two oldest were dropped
    finally:
        sync.stop()
        store.close()
        server.stop()


def _sync_until_drained(sync: FleetSync, seconds: float = 60.0) -> bool:
    """Run syncs until the backlog is empty (the link retries at once: retry_initial=0)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sync.run_once():
            return True
    return False


def test_another_dimension_is_refused_naming_both_and_nothing_written(tmp_path: Path) -> None:
    uri = str(tmp_path / 'fleet.db')
    MilvusBackend(uri, DIM * 2, model=MODEL).close()
    store = _store(tmp_path / 'store')
    link = _link(uri)
    sync = FleetSync(store.storage, link)
    try:
        store.ingest(_obs('mug'))
        assert not sync.run_once() and not sync.run_once()
        status = sync.status()['fleet']
        assert status.startswith('refused: ') and '16-d' in status and '8-d' in status
        assert link.attempts == 1                         # refused for good: not retried
        assert sync.counters.backlog == 1
        other = MilvusBackend(uri, DIM * 2, model=MODEL)
        try:
            assert other.count() == 0
        finally:
            other.close()
    finally:
        sync.stop()
        store.close()


def _garbage_file(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _garbage_collection(path: Path) -> None:
    """A fleet database (a directory in milvus-lite 3) whose every collection file is
    overwritten with random bytes. Made by another process: one that opened it keeps serving
    it from RAM until it exits."""
    subprocess.run([sys.executable, '-c', MAKE_FLEET, str(path)], check=True, timeout=120,
                   capture_output=True)
    files = [p for p in (path / 'collections').rglob('*') if p.is_file()]
    assert files
    for file in files:
        file.write_bytes(os.urandom(512))


MAKE_FLEET = f"""
import sys
import numpy as np
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.model.engram import Engram
fleet = MilvusBackend(sys.argv[1], {DIM}, model={MODEL!r})
fleet.put([Engram(id=1, kind='object', frame_id='map', position=np.zeros(3),
                  vector=np.ones({DIM}, dtype=np.float32) / {DIM} ** 0.5, first_seen=1.0,
                  last_seen=1.0)])
fleet.flush()
fleet.close()
"""


@pytest.mark.parametrize('corrupt', [_garbage_file, _garbage_collection])
def test_a_corrupt_fleet_file_is_a_clear_error_and_the_robot_runs_on(tmp_path: Path,
                                                                     corrupt) -> None:
    uri = tmp_path / 'fleet.db'
    corrupt(uri)
    store = _store(tmp_path / 'store')
    link = _link(str(uri))
    sync = FleetSync(store.storage, link)
    try:
        store.ingest(_obs('mug'))
        assert not sync.run_once()
        status = sync.status()['fleet']
        assert status.startswith('unreachable: ') and str(uri) in status, status
        assert store.ingest(_obs('cup', (4.0, 0.0, 0.0))).engram_id > 0
    finally:
        sync.stop()
        store.close()


def test_a_restart_resumes_from_the_last_sync(tmp_path: Path) -> None:
    uri = str(tmp_path / 'fleet.db')
    store = _store(tmp_path / 'store')
    sync = FleetSync(store.storage, _link(uri))
    store.ingest(_obs('mug'))
    assert sync.run_once()
    sync.stop()
    store.close()
    store = _store(tmp_path / 'store')
    sync = FleetSync(store.storage, _link(uri))
    try:
        store.ingest(_obs('cup', (4.0, 0.0, 0.0)))
        assert sync.run_once() and sync.counters.uploaded == 1    # only the new one
    finally:
        sync.stop()
        store.close()
