"""Group-commit ingest (:meth:`MemoryStore.ingest_many`): the same as one ingest per
observation, committed in one storage transaction, all of the batch or none of it.

Real parts only: both storage backends (SQLite files in a temporary directory), the real faiss
index, a real in-RAM audit log; a full disk is SQLite's own ``max_page_count``, a crash a real
``kill -9`` of a child process in the middle of a batch's transaction.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from engram_ros.core.audit import AuditLog
from engram_ros.core.memory import IngestResult
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import Observation
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage

DIM = 8
FRAME = 'map'
T0 = 1.7e9
LOOKS = ('a', 'b', 'c')


def look(name: str, seed: int) -> np.ndarray:
    """The appearance of thing ``name``, seen with a little noise (``seed``)."""
    base = np.random.default_rng(zlib.crc32(name.encode())).normal(size=DIM)
    noise = np.random.default_rng(seed).normal(size=DIM)
    return (base / np.linalg.norm(base) + 0.05 * noise).astype(np.float32)


def make_obs(i: int, kind: str = 'object', label: str = 'mug', x: float = 0.0,
             y: float = 0.0, thing: str = 'a', frame: str = FRAME,
             keyframe: str = '') -> Observation:
    return Observation(kind=kind, frame_id=frame, position=np.array([x, y, 0.0]),
                       stamp=T0 + i, vector=look(thing, i), label=label if kind == 'object'
                       else '', tags=('room:lab',) if i % 3 == 0 else (),
                       keyframe_id=keyframe if kind == 'place' else '',
                       # files outside any store (never deleted); rows that fill pages
                       evidence=tuple(f'/nonexistent/evidence/{i}-{k}-{"x" * 60}.jpg'
                                      for k in range(4)))


def open_store(kind: str, directory: Path, **config) -> MemoryStore:
    storage = MemoryStorage() if kind == 'memory' else SQLiteStorage(directory)
    return MemoryStore(storage, StoreConfig(dim=DIM, frame_id=FRAME, **config),
                       audit=AuditLog(None))


def outcome(result: IngestResult | Exception) -> tuple:
    if isinstance(result, Exception):
        return ('error', type(result).__name__, str(result))
    return ('ok', result.engram_id, result.merged, result.promoted, tuple(result.evicted))


def world(store: MemoryStore) -> dict:
    """Everything an ingest can change, as comparable values (not the wall-clock access
    times, nor the audit records' times and seals)."""
    records = {}
    for e in store.storage.iter_all():
        fields = []
        for f in dataclasses.fields(e):
            if f.name == 'last_access':
                continue
            value = getattr(e, f.name)
            if isinstance(value, np.ndarray):
                value = tuple(value.reshape(-1).tolist())
            fields.append((f.name, value))
        records[e.id] = tuple(fields)
    state = store.state
    with store._lock:
        index = store.index
        slots = index.live_slots()
        indexed = {int(i): (tuple(np.round(p, 5).tolist()), tuple(sorted(index.tags_of(int(s)))))
                   for i, s, p in zip(index.ids_of(slots), slots, index.positions_of(slots))}
        return {
            'records': records,
            'edges': sorted(store.storage.edges(), key=lambda e: (e.a, e.b)),
            'dirty': store.storage.dirty_ids(),
            'next_id': store.storage.get_meta('next_id'),
            'audit': [(r['action'], r['params'], r['result']) for r in store.audit.records()
                      if r['action'] != 'audit_start'],     # (its salt is random)
            'indexed': indexed,
            'short': list(state.short), 'history': sorted(state.history),
            'anchor_of': dict(state.anchor_of), 'keyframes': dict(state.keyframes),
            'edges_ram': sorted(state.edges.values(), key=lambda e: (e.a, e.b)),
            'labels': sorted(state.labels),
            'state_dirty': sorted(state.dirty), 'last_place': state.last_place,
        }


# One observation of a random sequence: kind, label, grid position, which thing it looks
# like, a keyframe for places, and now and then one in the wrong frame (refused alone).
OBSERVATION = st.tuples(
    st.sampled_from(['object', 'object', 'object', 'place']),
    st.sampled_from(['mug', 'book', '']),
    st.integers(0, 3), st.integers(0, 2), st.sampled_from(LOOKS),
    st.sampled_from(['', 'kf1', 'kf2']),
    st.integers(0, 19))


def build(specs: list[tuple]) -> list[Observation]:
    return [make_obs(i, kind, label, 0.4 * gx, 0.4 * gy, thing,
                     frame='odom' if bad == 0 else FRAME, keyframe=kf)
            for i, (kind, label, gx, gy, thing, kf, bad) in enumerate(specs)]


@pytest.mark.parametrize('backend', ['memory', 'sqlite'])
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(OBSERVATION, min_size=1, max_size=40),
       cuts=st.lists(st.integers(1, 12), min_size=1, max_size=8))
def test_a_batch_is_the_same_as_one_ingest_per_observation(backend, specs, cuts) -> None:
    # A tiny short-term capacity makes evictions (and their audit records) frequent.
    with tempfile.TemporaryDirectory() as tmp:
        single = open_store(backend, Path(tmp) / 'single', short_term_capacity=3)
        batched = open_store(backend, Path(tmp) / 'batched', short_term_capacity=3)
        try:
            expected = []
            for obs in build(specs):
                try:
                    expected.append(outcome(single.ingest(obs)))
                except InvalidObservation as exc:
                    expected.append(outcome(exc))
            got = []
            observations = build(specs)
            start, k = 0, 0
            while start < len(observations):
                size = cuts[k % len(cuts)]
                got += [outcome(r) for r in
                        batched.ingest_many(observations[start:start + size])]
                start, k = start + size, k + 1
            assert got == expected
            assert world(batched) == world(single)
        finally:
            single.close()
            batched.close()


def test_a_bad_observation_is_refused_alone(tmp_path: Path) -> None:
    store = open_store('sqlite', tmp_path / 's')
    try:
        batch = [make_obs(0, x=0.0), make_obs(1, x=5.0, frame='odom'), make_obs(2, x=9.0)]
        results = store.ingest_many(batch)
        assert isinstance(results[1], InvalidObservation)
        assert 'frame' in str(results[1])
        assert [type(r) for r in (results[0], results[2])] == [IngestResult, IngestResult]
        assert sorted(e.id for e in store.storage.iter_all()) == sorted(
            [results[0].engram_id, results[2].engram_id])
    finally:
        store.close()


def many(n: int, start: int = 0) -> list[Observation]:
    """``n`` observations of distinct things (no merges), 2 m apart."""
    return [make_obs(start + i, label='thing', x=2.0 * (start + i), thing=f't{start + i}')
            for i in range(n)]


def test_a_full_disk_rolls_the_whole_batch_back(tmp_path: Path) -> None:
    store = open_store('sqlite', tmp_path / 's', short_term_capacity=5000)
    reference = open_store('sqlite', tmp_path / 'ref', short_term_capacity=5000)
    try:
        for s in (store, reference):
            assert all(isinstance(r, IngestResult) for r in s.ingest_many(many(30)))
        before = world(store)
        writer = store.storage._writer
        pages = writer.execute('PRAGMA page_count').fetchone()[0]
        writer.execute(f'PRAGMA max_page_count = {pages}')      # the disk is full now
        results = store.ingest_many(many(200, start=30))
        assert all(isinstance(r, sqlite3.OperationalError) for r in results)
        assert 'full' in str(results[0])
        assert world(store) == before           # nothing of the batch, in storage or in RAM
        writer.execute('PRAGMA max_page_count = 1073741823')      # space again: the retry
        retried = [outcome(r) for r in store.ingest_many(many(200, start=30))]
        assert retried == [outcome(r) for r in reference.ingest_many(many(200, start=30))]
        assert world(store) == world(reference)
        assert store.storage.integrity_check() == []
    finally:
        store.close()
        reference.close()


@pytest.mark.parametrize('backend', ['memory', 'sqlite'])
def test_storage_transaction_is_all_or_nothing(backend: str, tmp_path: Path) -> None:
    store = open_store(backend, tmp_path / 's')
    storage = store.storage
    try:
        store.ingest_many(many(5))
        ids = sorted(e.id for e in storage.iter_all())
        before = ({e.id: e.position.tolist() for e in storage.iter_all()}, storage.dirty_ids(),
                  storage.get_meta('next_id'))
        with pytest.raises(RuntimeError, match='midway'):
            with storage.transaction():
                moved = storage.get(ids[:2])
                for e in moved:
                    e.position = e.position + 1.0
                storage.put(moved)
                storage.delete(ids[2:3])
                new_id = storage.next_id()
                assert storage.get([ids[0]])[0].position.tolist() == moved[0].position.tolist()
                assert storage.get(ids[2:3]) == []      # its own writes are seen inside
                assert new_id == int(before[2])
                raise RuntimeError('midway')
        after = ({e.id: e.position.tolist() for e in storage.iter_all()}, storage.dirty_ids(),
                 storage.get_meta('next_id'))
        assert after == before
        with storage.transaction():
            storage.delete(ids[:1])
            with storage.transaction():         # nested: part of the outer one
                storage.delete(ids[1:2])
        assert sorted(e.id for e in storage.iter_all()) == ids[2:]
    finally:
        store.close()


def test_sqlite_transaction_is_invisible_to_other_readers_until_commit(tmp_path: Path) -> None:
    store = open_store('sqlite', tmp_path / 's')
    try:
        store.ingest_many(many(3))
        other = sqlite3.connect(tmp_path / 's' / 'engrams.sqlite3')
        count = 'SELECT COUNT(*) FROM engrams'
        with store.storage.transaction():
            store.storage.delete([e.id for e in store.storage.iter_all()])
            assert store.storage.count() == 0
            assert other.execute(count).fetchone()[0] == 3
        assert other.execute(count).fetchone()[0] == 0
        other.close()
    finally:
        store.close()


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path[:0] = [{test_dir!r}]
    from test_ingest_batch import many, open_store
    store = open_store('sqlite', Path({directory!r}), short_term_capacity=5000)
    store.ingest_many(many(50))
    put = store.storage.put
    calls = [0]

    def put_and_stop(engrams, **kw):
        put(engrams, **kw)
        calls[0] += 1
        if calls[0] == {stop_at}:       # deep inside the batch's transaction
            print('inside', flush=True)
            sys.stdin.readline()        # the parent kills us here
    store.storage.put = put_and_stop
    store.ingest_many(many(800, start=50))
    print('committed', flush=True)
    sys.stdin.readline()
""")


@pytest.mark.parametrize('stop_at, line, stored', [(600, 'inside', 50),
                                                    (10**9, 'committed', 850)])
def test_kill_9_leaves_all_of_a_batch_or_none(tmp_path: Path, stop_at: int, line: str,
                                              stored: int) -> None:
    directory = tmp_path / 's'
    code = CHILD.format(test_dir=str(Path(__file__).parent), directory=str(directory),
                        stop_at=stop_at)
    child = subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == line
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    store = open_store('sqlite', directory)
    try:
        assert store.storage.count() == stored
        assert store.storage.integrity_check() == []
        assert store.indexed_ids() == {e.id for e in store.storage.iter_all()}
        assert len(store.storage.dirty_ids()) == stored
        # the ids of a rolled-back batch are handed out again: none was used
        assert int(store.storage.get_meta('next_id')) == 1 + stored
    finally:
        store.close()


@settings(max_examples=40, deadline=None)
@given(specs=st.lists(OBSERVATION, min_size=1, max_size=40),
       cuts=st.lists(st.tuples(st.integers(1, 12), st.booleans()), min_size=1, max_size=8),
       capacity=st.sampled_from([3, 1000]))
def test_a_batch_that_fails_on_a_full_disk_changes_nothing_and_its_retry_is_exact(
        specs, cuts, capacity) -> None:
    """Random batches meet a full disk (SQLite's ``max_page_count`` at the file's size): a
    batch that fails leaves storage, index, state and audit exactly as before it; written
    again once there is space, the store ends as if each observation had been ingested once."""
    with tempfile.TemporaryDirectory() as tmp:
        single = open_store('sqlite', Path(tmp) / 'single', short_term_capacity=capacity)
        batched = open_store('sqlite', Path(tmp) / 'batched', short_term_capacity=capacity)
        writer = batched.storage._writer
        failed = 0
        try:
            expected = [outcome(single.ingest_many([o])[0]) for o in build(specs)]
            observations, got = build(specs), []
            start, k = 0, 0
            while start < len(observations):
                size, full = cuts[k % len(cuts)]
                chunk = observations[start:start + size]
                if full:
                    before = world(batched)
                    pages = writer.execute('PRAGMA page_count').fetchone()[0]
                    writer.execute(f'PRAGMA max_page_count = {pages}')
                    results = batched.ingest_many(chunk)
                    writer.execute('PRAGMA max_page_count = 1073741823')
                    errors = [r for r in results if isinstance(r, sqlite3.OperationalError)]
                    if errors:
                        failed += 1
                        assert len(errors) == sum(
                            not isinstance(r, InvalidObservation) for r in results)
                        assert world(batched) == before
                        results = batched.ingest_many(build(specs)[start:start + size])
                else:
                    results = batched.ingest_many(chunk)
                got += [outcome(r) for r in results]
                start, k = start + size, k + 1
            assert got == expected
            assert world(batched) == world(single)
            event(f'batches rolled back: {min(failed, 3)}')
        finally:
            single.close()
            batched.close()
