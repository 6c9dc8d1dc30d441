"""Tests of engram_ros.core.storage: the Storage contract on both backends, then SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from engram_ros.core import storage as storage_module
from engram_ros.core.engram import Engram
from engram_ros.core.engram import TIER_LONG
from engram_ros.core.storage import PlaceEdge
from engram_ros.core.storage import SCHEMA_VERSION
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage import Storage
from engram_ros.core.storage import StoreClosedError
from engram_ros.core.storage import StoreOpenError

DIM = 8
REPO_ROOT = Path(storage_module.__file__).resolve().parents[2]


def make_engram(engram_id: int, version: int = 0, dim: int = DIM) -> Engram:
    """A deterministic engram whose every field depends on ``engram_id`` and ``version``."""
    rng = np.random.default_rng(engram_id * 1000 + version)
    quat = rng.normal(size=4)
    vector = rng.normal(size=dim).astype(np.float32)
    return Engram(
        id=engram_id, kind=('place', 'object', 'audio', 'event')[engram_id % 4],
        frame_id='map', position=rng.normal(size=3) * 10.0,
        vector=(vector / np.linalg.norm(vector)).astype(np.float32),
        first_seen=1.7e9 + engram_id * 0.123456789, last_seen=1.7e9 + engram_id + version / 7.0,
        tags=('label:mug', f'color:c{version}', f'place:p{engram_id}'),
        label=f'mug {engram_id}', orientation=quat / np.linalg.norm(quat),
        covariance=rng.normal(size=36), modality='vision', confidence=float(rng.random()),
        evidence=(f'file:///nowhere/{engram_id}.jpg',), observation_count=version + 1,
        score=float(rng.random()), tier=TIER_LONG if engram_id % 2 else 'short',
        pinned=bool(engram_id % 3 == 0), last_access=1.7e9 + version, recall_count=version * 2)


def assert_same(actual: Engram, expected: Engram) -> None:
    """Exact equality of every field, arrays included."""
    for name in ('position', 'orientation', 'covariance', 'vector'):
        a, e = getattr(actual, name), np.asarray(getattr(expected, name)).reshape(-1)
        assert np.array_equal(a, e), name
    assert actual.vector.dtype == np.float32
    assert actual.position.dtype == np.float64
    for name in ('id', 'kind', 'frame_id', 'first_seen', 'last_seen', 'tags', 'label',
                 'modality', 'confidence', 'evidence', 'observation_count', 'score', 'tier',
                 'pinned', 'last_access', 'recall_count'):
        assert getattr(actual, name) == getattr(expected, name), name
        assert type(getattr(actual, name)) is type(getattr(expected, name)), name


def snapshot(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory`` with its bytes (None for directories)."""
    return {str(p.relative_to(directory)): None if p.is_dir() else p.read_bytes()
            for p in sorted(directory.rglob('*'))}


@pytest.fixture(params=['sqlite', 'memory'])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    backend: Storage = (SQLiteStorage(tmp_path / 'store') if request.param == 'sqlite'
                        else MemoryStorage())
    yield backend
    backend.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStorage]:
    backend = SQLiteStorage(tmp_path / 'store')
    yield backend
    backend.close()


# ---------------------------------------------------------------------------------------------
# The contract, on both backends


def test_round_trip_is_exact(store: Storage) -> None:
    engrams = [make_engram(i) for i in range(1, 21)]
    store.put(engrams)
    got = store.get([e.id for e in engrams])
    assert len(got) == len(engrams)
    for actual, expected in zip(got, engrams):
        assert_same(actual, expected)


def test_get_keeps_order_and_skips_unknown_ids(store: Storage) -> None:
    store.put([make_engram(i) for i in (1, 2, 3)])
    assert [e.id for e in store.get([3, 99, 1, 2, 1])] == [3, 1, 2, 1]
    assert store.get([]) == []
    assert store.get([42]) == []


def test_get_returns_copies(store: Storage) -> None:
    engram = make_engram(1)
    store.put([engram])
    engram.position[0] = 1e6
    got = store.get([1])[0]
    got.vector[:] = 0.0
    assert_same(store.get([1])[0], make_engram(1))


def test_shared_get_reads_the_same_engrams(store: Storage) -> None:
    store.put([make_engram(i) for i in (1, 2)])
    shared = store.get([2, 1, 99], shared=True)
    assert [e.id for e in shared] == [2, 1]
    for actual, i in zip(shared, (2, 1)):
        assert_same(actual, make_engram(i))
    # A default get is still a copy, whatever a shared reader holds.
    copy = store.get([1])[0]
    copy.position[0] = 1e6
    assert_same(store.get([1], shared=True)[0], make_engram(1))


@pytest.mark.parametrize('tags', [('label:mug', 'color:red'), ['label:mug', 'color:red'],
                                  ('label:mug', np.str_('color:red')), (1, True), (True, 1), ()],
                         ids=['tuple', 'list', 'numpy-str', 'int-bool', 'bool-int', 'none'])
def test_tags_round_trip_whatever_sequence_holds_them(store: Storage, tags) -> None:
    """Tag lists are encoded and decoded through a cache: equal tags read back equal as
    tuples of str, for every engram that carries them, and later edits stay separate."""
    engrams = [make_engram(i) for i in (1, 2, 3)]
    for e in engrams:
        e.tags = tags
    store.put(engrams)
    got = store.get([1, 2, 3])
    assert [g.tags for g in got] == [tuple(str(t) for t in tags)] * 3
    assert all(type(t) is str for g in got for t in g.tags)
    got[0].tags = got[0].tags + ('label:cup',)
    store.put([got[0]])
    assert [g.tags for g in store.get([1, 2])] == [tuple(map(str, tags)) + ('label:cup',),
                                                    tuple(map(str, tags))]


def test_put_upserts(store: Storage) -> None:
    store.put([make_engram(i) for i in (1, 2)])
    store.put([make_engram(2, version=5), make_engram(3)])
    assert store.count() == 3
    assert_same(store.get([2])[0], make_engram(2, version=5))
    assert_same(store.get([1])[0], make_engram(1))


def test_put_same_id_twice_in_one_batch_keeps_the_last(store: Storage) -> None:
    store.put([make_engram(1, version=1), make_engram(1, version=2)])
    assert store.count() == 1
    assert_same(store.get([1])[0], make_engram(1, version=2))


@pytest.mark.parametrize('batch_size', [1, 3, 7, 10000])
def test_iter_all_is_ordered_by_id(store: Storage, batch_size: int) -> None:
    ids = [17, 3, 9, 1, 12, 5, 30]
    store.put([make_engram(i) for i in ids])
    got = list(store.iter_all(batch_size=batch_size))
    assert [e.id for e in got] == sorted(ids)
    for engram in got:
        assert_same(engram, make_engram(engram.id))


def test_iter_all_rejects_bad_batch_size(store: Storage) -> None:
    with pytest.raises(ValueError):
        list(store.iter_all(batch_size=0))


def test_delete_returns_number_deleted(store: Storage) -> None:
    store.put([make_engram(i) for i in range(1, 6)])
    assert store.delete([2, 4, 99, 2]) == 2
    assert store.count() == 3
    assert [e.id for e in store.iter_all()] == [1, 3, 5]
    assert store.delete([]) == 0
    assert store.delete([2]) == 0


def test_ids_are_monotonic_and_never_reused(store: Storage) -> None:
    first = [store.next_id() for _ in range(5)]
    assert first == sorted(first) and len(set(first)) == 5
    store.put([make_engram(i) for i in first])
    store.delete(first)
    later = store.next_id()
    assert later > max(first)


def test_put_with_a_higher_id_advances_the_counter(store: Storage) -> None:
    allocated = store.next_id()
    store.put([make_engram(allocated + 100)])
    assert store.next_id() > allocated + 100


def test_count(store: Storage) -> None:
    assert store.count() == 0
    store.put([make_engram(i) for i in range(1, 11)])
    assert store.count() == 10


def test_large_batch(store: Storage) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(10000, DIM)).astype(np.float32)
    positions = rng.normal(size=(10000, 3))
    engrams = [Engram(id=i + 1, kind='object', frame_id='map', position=positions[i],
                      vector=vectors[i], first_seen=float(i), last_seen=float(i) + 0.5,
                      tags=('label:mug', f'place:p{i % 50}'))
               for i in range(10000)]
    store.put(engrams)
    assert store.count() == 10000
    ids = [e.id for e in store.iter_all(batch_size=4000)]
    assert ids == list(range(1, 10001))
    assert_same(store.get([7777])[0], engrams[7776])


def test_meta(store: Storage) -> None:
    assert store.get_meta('model') is None
    assert store.get_meta('model', 'none') == 'none'
    store.set_meta('model', 'clip-vit-b32')
    store.set_meta('model', 'siglip')
    assert store.get_meta('model') == 'siglip'
    assert store.get_meta('schema_version') == str(SCHEMA_VERSION)


@pytest.mark.parametrize('key, value, error', [
    ('', 'x', ValueError),
    ('schema_version', '2', ValueError),
    ('next_id', '1', ValueError),
    ('dim', 'eight', ValueError),
    ('dim', '0', ValueError),
    ('model', 3, TypeError),
])
def test_set_meta_rejects(store: Storage, key: str, value: object, error: type) -> None:
    with pytest.raises(error):
        store.set_meta(key, value)  # type: ignore[arg-type]


def test_dimension_is_fixed_by_the_first_put(store: Storage) -> None:
    store.put([make_engram(1)])
    assert store.get_meta('dim') == str(DIM)
    with pytest.raises(ValueError, match='dimension'):
        store.put([make_engram(2), make_engram(3, dim=DIM + 1)])
    assert store.count() == 1, 'a rejected batch must write nothing'
    with pytest.raises(ValueError):
        store.set_meta('dim', str(DIM + 1))


def test_dimension_can_be_pinned_before_the_first_put(store: Storage) -> None:
    store.set_meta('dim', '4')
    with pytest.raises(ValueError, match='dimension'):
        store.put([make_engram(1)])
    store.put([make_engram(1, dim=4)])


@pytest.mark.parametrize('field, value', [
    ('position', np.zeros(2)),
    ('orientation', np.zeros(3)),
    ('covariance', np.zeros(35)),
    ('vector', np.zeros(0, dtype=np.float32)),
    ('score', float('nan')),
    ('id', 2 ** 63),
    ('id', 1.5),
])
def test_put_rejects_malformed_engrams(store: Storage, field: str, value: object) -> None:
    engram = make_engram(1)
    setattr(engram, field, value)
    with pytest.raises(ValueError):
        store.put([make_engram(2), engram])
    assert store.count() == 0


def test_closed_store_refuses_use(store: Storage) -> None:
    store.put([make_engram(1)])
    store.close()
    store.close()
    for call in (store.next_id, store.count, lambda: store.get([1]),
                 lambda: store.put([make_engram(2)]), lambda: store.delete([1]),
                 lambda: list(store.iter_all()), lambda: store.get_meta('x'),
                 lambda: store.set_meta('x', 'y')):
        with pytest.raises(StoreClosedError):
            call()


def test_context_manager_closes(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / 'store') as backend:
        backend.put([make_engram(1)])
    with pytest.raises(StoreClosedError):
        backend.count()
    with MemoryStorage() as ram:
        assert ram.count() == 0
    with pytest.raises(StoreClosedError):
        ram.count()


def test_concurrent_readers_see_consistent_engrams(store: Storage) -> None:
    ids = list(range(1, 41))
    versions = 25
    store.put([make_engram(i, version=0) for i in ids])
    errors: list[BaseException] = []
    done = threading.Event()
    reads = [0]

    def writer() -> None:
        try:
            for version in range(1, versions + 1):
                store.put([make_engram(i, version=version) for i in ids])
        except BaseException as exc:  # noqa: B902 - reported by the test thread
            errors.append(exc)
        finally:
            done.set()

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not done.is_set() or reads[0] < 20:
                wanted = [int(i) for i in rng.permutation(ids)[:rng.integers(1, len(ids) + 1)]]
                got = store.get(wanted)
                assert [e.id for e in got] == wanted
                seen = {e.observation_count - 1 for e in got}
                assert len(seen) == 1, f'one get mixed versions {sorted(seen)}'
                for engram in got:
                    expected = make_engram(engram.id, version=engram.observation_count - 1)
                    assert_same(engram, expected)
                reads[0] += 1
        except BaseException as exc:  # noqa: B902 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(4)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors[0]
    for engram in store.get(ids):
        assert_same(engram, make_engram(engram.id, version=versions))


def test_memory_storage_properties() -> None:
    ram = MemoryStorage()
    assert ram.persistent is False
    assert ram.evidence_dir is None
    assert ram.index_dir is None


# ---------------------------------------------------------------------------------------------
# SQLite files


def test_store_layout(sqlite_store: SQLiteStorage, tmp_path: Path) -> None:
    directory = tmp_path / 'store'
    assert sqlite_store.persistent is True
    assert sqlite_store.directory == directory
    assert sqlite_store.evidence_dir == directory / 'evidence'
    assert sqlite_store.index_dir == directory / 'index'
    assert (directory / 'evidence').is_dir() and (directory / 'index').is_dir()
    marker = json.loads((directory / 'STORE').read_text())
    assert marker['format'] == 'engram_ros store'
    assert marker['schema_version'] == SCHEMA_VERSION
    assert 'created' in marker
    conn = sqlite3.connect(directory / 'engrams.sqlite3')
    try:
        assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
        assert conn.execute('PRAGMA user_version').fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)
        indexes = {row[1] for row in conn.execute('PRAGMA index_list(engram_tags)')}
        assert 'engram_tags_by_tag' in indexes
    finally:
        conn.close()


def test_tag_rows_follow_put_and_delete(sqlite_store: SQLiteStorage, tmp_path: Path) -> None:
    sqlite_store.put([make_engram(1), make_engram(2)])
    sqlite_store.put([make_engram(1, version=3)])
    sqlite_store.delete([2])
    conn = sqlite3.connect(tmp_path / 'store' / 'engrams.sqlite3')
    try:
        rows = sorted(conn.execute('SELECT engram_id, tag FROM engram_tags'))
    finally:
        conn.close()
    assert rows == [(1, tag) for tag in sorted(make_engram(1, version=3).tags)]


def test_reopen_finds_the_same_engrams_and_does_not_reuse_ids(tmp_path: Path) -> None:
    engrams = [make_engram(i) for i in range(1, 31)]
    with SQLiteStorage(tmp_path / 'store') as first:
        first.put(engrams)
        first.set_meta('model', 'clip')
        allocated = [first.next_id() for _ in range(3)]
        first.delete([allocated[-1], 30])
    assert not (tmp_path / 'store' / 'engrams.sqlite3-wal').exists(), 'close left a connection'
    with SQLiteStorage(tmp_path / 'store', create=False) as second:
        assert second.count() == 29
        for actual, expected in zip(second.iter_all(), engrams[:29]):
            assert_same(actual, expected)
        assert second.get_meta('model') == 'clip'
        assert second.next_id() > allocated[-1]


def test_committed_writes_survive_a_crash(tmp_path: Path) -> None:
    script = (
        'import os, sys\n'
        'from engram_ros.core.storage import SQLiteStorage\n'
        'from test_storage import make_engram\n'
        'store = SQLiteStorage(sys.argv[1])\n'
        'store.put([make_engram(i) for i in range(1, 11)])\n'
        'store.next_id()\n'
        'os._exit(0)\n')
    path = os.pathsep.join([str(REPO_ROOT), str(Path(__file__).parent)])
    env = dict(os.environ, PYTHONPATH=path)
    subprocess.run([sys.executable, '-c', script, str(tmp_path / 'store')], check=True, env=env,
                   timeout=60)
    with SQLiteStorage(tmp_path / 'store', create=False) as reopened:
        assert reopened.count() == 10
        assert_same(reopened.get([10])[0], make_engram(10))
        assert reopened.next_id() > 11


def test_concurrent_use_closes_every_connection(tmp_path: Path) -> None:
    backend = SQLiteStorage(tmp_path / 'store')
    backend.put([make_engram(i) for i in range(1, 11)])
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait()
        for _ in range(20):
            backend.get(list(range(1, 11)))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    backend.close()
    # SQLite removes the WAL file when the last connection to the database closes.
    assert not (tmp_path / 'store' / 'engrams.sqlite3-wal').exists()


def test_delete_removes_evidence_owned_only_by_deleted_engrams(
        sqlite_store: SQLiteStorage, tmp_path: Path) -> None:
    evidence = sqlite_store.evidence_dir
    assert evidence is not None
    (evidence / 'crops').mkdir()
    owned_abs = evidence / 'crops' / 'a.jpg'
    owned_uri = evidence / 'crops' / 'a b.png'
    owned_rel = evidence / 'frame.jpg'
    shared = evidence / 'shared.jpg'
    outside = tmp_path / 'outside.jpg'
    for path in (owned_abs, owned_uri, owned_rel, shared, outside):
        path.write_bytes(b'jpeg')
    a = make_engram(1)
    a.evidence = (str(owned_abs), owned_uri.as_uri(), 'frame.jpg', str(shared), str(outside),
                  str(evidence / '..' / '..' / 'outside.jpg'), 'https://example.com/x.jpg')
    b = make_engram(2)
    b.evidence = (shared.as_uri(),)
    sqlite_store.put([a, b])

    assert sqlite_store.delete([1]) == 1
    assert not owned_abs.exists() and not owned_uri.exists() and not owned_rel.exists()
    assert shared.exists(), 'still referenced by engram 2'
    assert outside.exists(), 'files outside the evidence directory are never deleted'

    assert sqlite_store.delete([2]) == 1
    assert not shared.exists()
    assert outside.exists()


def test_put_does_not_delete_evidence(sqlite_store: SQLiteStorage) -> None:
    evidence = sqlite_store.evidence_dir
    assert evidence is not None
    crop = evidence / 'crop.jpg'
    crop.write_bytes(b'jpeg')
    engram = make_engram(1)
    engram.evidence = (str(crop),)
    sqlite_store.put([engram])
    engram.evidence = ()
    sqlite_store.put([engram])
    assert crop.exists()


def test_missing_directory_is_created(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / 'a' / 'b' / 'store') as backend:
        assert backend.count() == 0
    assert (tmp_path / 'a' / 'b' / 'store' / 'STORE').is_file()


def test_empty_directory_becomes_a_store(tmp_path: Path) -> None:
    (tmp_path / 'store').mkdir()
    with SQLiteStorage(tmp_path / 'store') as backend:
        backend.put([make_engram(1)])
    with SQLiteStorage(str(tmp_path / 'store'), create=False) as backend:
        assert backend.count() == 1


def test_missing_directory_without_create_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match='nothing was changed'):
        SQLiteStorage(tmp_path / 'store', create=False)
    assert not (tmp_path / 'store').exists()


@pytest.mark.parametrize('create', [True, False])
def test_non_store_directory_is_refused_and_untouched(tmp_path: Path, create: bool) -> None:
    directory = tmp_path / 'photos'
    (directory / 'sub').mkdir(parents=True)
    (directory / 'holiday.jpg').write_bytes(b'not a store')
    (directory / 'sub' / 'engrams.sqlite3').write_bytes(b'whatever')
    before = snapshot(directory)
    with pytest.raises(StoreOpenError, match='not an engram store') as info:
        SQLiteStorage(directory, create=create)
    assert str(directory) in str(info.value)
    assert snapshot(directory) == before


def test_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'store'
    path.write_bytes(b'x')
    with pytest.raises(StoreOpenError):
        SQLiteStorage(path)
    assert path.read_bytes() == b'x'


def _closed_store(tmp_path: Path) -> Path:
    with SQLiteStorage(tmp_path / 'store') as backend:
        backend.put([make_engram(i) for i in range(1, 301)])
    return tmp_path / 'store'


def _garbage(data: bytes) -> bytes:
    return np.random.default_rng(1).integers(0, 256, len(data), dtype=np.uint8).tobytes()


def _garbage_pages(data: bytes) -> bytes:
    page = 4096
    noise = np.random.default_rng(2).integers(0, 256, len(data) - 2 * page, dtype=np.uint8)
    return data[:2 * page] + noise.tobytes()


def _truncated(data: bytes) -> bytes:
    return data[:len(data) // 3]


@pytest.mark.parametrize('damage', [_garbage, _garbage_pages, _truncated],
                         ids=['garbage', 'garbage-pages', 'truncated'])
def test_corrupt_database_is_refused_and_left_alone(tmp_path: Path, damage) -> None:
    directory = _closed_store(tmp_path)
    db = directory / 'engrams.sqlite3'
    db.write_bytes(damage(db.read_bytes()))
    before = snapshot(directory)
    with pytest.raises(StoreOpenError) as info:
        SQLiteStorage(directory)
    message = str(info.value)
    assert str(db) in message and 'nothing was changed' in message
    assert snapshot(directory) == before


def _set_user_version(db: Path, version: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f'PRAGMA user_version = {version}')
    conn.commit()
    conn.close()


def _set_meta_version(db: Path, version: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.commit()
    conn.close()


def _set_marker(directory: Path, **changes: object) -> None:
    marker = directory / 'STORE'
    content = json.loads(marker.read_text())
    content.update(changes)
    marker.write_text(json.dumps(content))


def _lose_database(directory: Path) -> None:
    (directory / 'evidence' / 'crop.jpg').write_bytes(b'jpeg')
    (directory / 'engrams.sqlite3').unlink()


@pytest.mark.parametrize('tamper, expected', [
    (lambda d: _set_user_version(d / 'engrams.sqlite3', SCHEMA_VERSION + 1), 'newer'),
    (lambda d: _set_user_version(d / 'engrams.sqlite3', 0), 'unknown schema version'),
    (lambda d: _set_meta_version(d / 'engrams.sqlite3', SCHEMA_VERSION + 1), 'meta table'),
    (lambda d: _set_marker(d, schema_version=SCHEMA_VERSION + 1), 'newer'),
    (lambda d: _set_marker(d, schema_version='one'), 'schema_version'),
    (lambda d: _set_marker(d, format='something else'), 'not an engram store'),
    (lambda d: (d / 'STORE').write_text('{not json'), 'unreadable'),
    (lambda d: _lose_database(d), 'missing'),
], ids=['newer-user-version', 'zero-user-version', 'meta-mismatch', 'newer-marker',
        'bad-marker-version', 'foreign-marker', 'corrupt-marker', 'lost-database'])
def test_unknown_schema_is_refused_and_left_alone(tmp_path: Path, tamper, expected: str) -> None:
    directory = _closed_store(tmp_path)
    tamper(directory)
    before = snapshot(directory)
    with pytest.raises(StoreOpenError, match=expected):
        SQLiteStorage(directory)
    assert snapshot(directory) == before


def test_interrupted_creation_is_completed(tmp_path: Path) -> None:
    directory = _closed_store(tmp_path)
    for name in ('engrams.sqlite3', 'engrams.sqlite3-wal', 'engrams.sqlite3-shm'):
        (directory / name).unlink(missing_ok=True)
    with SQLiteStorage(directory) as backend:
        assert backend.count() == 0
        backend.put([make_engram(1)])


def _downgrade_to_schema_1(directory: Path) -> None:
    """Turn a closed store into exactly what schema 1 wrote (no validity/anchor columns, no
    place graph)."""
    conn = sqlite3.connect(directory / 'engrams.sqlite3')
    conn.execute('DROP INDEX place_edges_by_b')
    conn.execute('DROP TABLE place_edges')
    for column in ('valid_from', 'valid_to', 'successor_id', 'anchor_id', 'keyframe_id'):
        conn.execute(f'ALTER TABLE engrams DROP COLUMN {column}')
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.execute('PRAGMA user_version = 1')
    conn.commit()
    conn.close()
    _set_marker(directory, schema_version=1)


def test_schema_1_store_is_migrated_to_2_without_losing_engrams(tmp_path: Path) -> None:
    directory = _closed_store(tmp_path)
    with SQLiteStorage(directory) as backend:
        expected = list(backend.iter_all())
    _downgrade_to_schema_1(directory)
    with SQLiteStorage(directory) as backend:
        migrated = list(backend.iter_all())
        assert [e.id for e in migrated] == [e.id for e in expected]
        for old, new in zip(expected, migrated):
            assert new.label == old.label and new.tags == old.tags
            np.testing.assert_array_equal(new.vector, old.vector)
            assert new.valid_from == old.first_seen and new.valid_to is None
        assert backend.get_meta('schema_version') == str(SCHEMA_VERSION) == '2'
        assert backend.edges() == []
        backend.put_edges([PlaceEdge(2, 1, 3, T_EDGE)])
        assert backend.edges() == [PlaceEdge(1, 2, 3, T_EDGE)]
    assert json.loads((directory / 'STORE').read_text())['schema_version'] == 2
    with SQLiteStorage(directory) as backend:       # and it opens again as a plain v2 store
        assert backend.count() == len(expected) and len(backend.edges()) == 1
        backend.delete([1])
        assert backend.edges() == []


T_EDGE = 1.7e9
