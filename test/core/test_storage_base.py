"""Tests of engram_ros.core.storage.base: the Storage contract, on both backends.

Also the helpers the other storage tests share (``make_engram``, ``assert_same``, ...).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SCHEMA_VERSION
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage import Storage
from engram_ros.core.storage import StoreClosedError

DIM = 8
REPO_ROOT = Path(__file__).resolve().parents[2]


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


def test_changed_engrams_are_kept_until_cleared(store: Storage) -> None:
    store.put([make_engram(3), make_engram(1), make_engram(2)])
    store.put([make_engram(4)], dirty=False)      # bookkeeping (recall statistics)
    store.put([make_engram(2, version=1)])
    assert store.dirty_ids() == [1, 2, 3]
    store.delete([2])
    assert store.dirty_ids() == [1, 3]
    store.clear_dirty()
    assert store.dirty_ids() == []
    store.put([make_engram(4, version=1)])
    assert store.dirty_ids() == [4]


def test_changes_are_numbered_in_write_order_and_deletes_stay_until_pruned(
        store: Storage) -> None:
    store.put([make_engram(1), make_engram(2)])
    first = store.changes_since(0)
    assert [i for i, _ in first] == [1, 2] and first[0][1] == first[1][1]
    mark = first[-1][1]
    store.put([make_engram(1, version=1)])
    store.put([make_engram(3)], dirty=False)       # bookkeeping: not a change
    store.delete([2, 99])                          # 99 never existed: no change
    later = store.changes_since(mark)
    assert [i for i, _ in later] == [1, 2] and later[0][1] < later[1][1]
    assert store.changes_since(mark, limit=1) == later[:1]
    assert store.get([2]) == []                    # the delete is listed, its engram gone
    assert store.prune_changes(later[-1][1]) == 1  # only the deleted one goes
    assert [i for i, _ in store.changes_since(0)] == [1]
    assert store.changes_since(later[-1][1]) == []


def test_changes_survive_a_reopen(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / 'store') as backend:
        backend.put([make_engram(1)])
        backend.delete([1])
        expected = backend.changes_since(0)
    with SQLiteStorage(tmp_path / 'store') as backend:
        assert backend.changes_since(0) == expected != []
        backend.put([make_engram(4)])
        assert backend.changes_since(expected[-1][1])[0][0] == 4


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
