"""Contract tests of :class:`MemoryBackend`: every backend must pass them (real faiss, real
SQLite files). Filtered searches are checked against a brute-force reference that applies the
documented meaning of each :class:`Stage1Filter` field to the engram records themselves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from engram_ros.core.backend import EmbeddedBackend
from engram_ros.core.backend import MemoryBackend
from engram_ros.core.backend import Region
from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import KINDS
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage

DIM = 16
N = 240
FRAME = 'map'
#: The robot every backend here writes as (a filter on robots is checked against it).
ROBOT = 'a'
VOCAB = ('color:red', 'color:blue', 'room:kitchen', 'room:hall', 'label:mug', 'label:cup')


def _memory(tmp_path: Path) -> MemoryBackend:
    return EmbeddedBackend(MemoryStorage(), DIM, frame_id=FRAME, robot_id=ROBOT)


def _sqlite(tmp_path: Path) -> MemoryBackend:
    return EmbeddedBackend(SQLiteStorage(tmp_path / 'memory'), DIM, frame_id=FRAME,
                           robot_id=ROBOT)


def _milvus(tmp_path: Path) -> MilvusBackend:
    """milvus-lite in a database file of this test (one process per file: this one)."""
    return MilvusBackend(str(tmp_path / 'fleet.db'), DIM, model='test-encoder', frame_id=FRAME,
                         robot_id=ROBOT)


def _milvus_hnsw(tmp_path: Path) -> MilvusBackend:
    """The same, planned so that every filtered search runs the engine's HNSW search, with
    tags matched as a Milvus server matches them (ARRAY_CONTAINS_*)."""
    return MilvusBackend(str(tmp_path / 'fleet.db'), DIM, model='test-encoder', frame_id=FRAME,
                         exact_threshold=0, tag_match='array', robot_id=ROBOT)


@pytest.fixture(params=[_memory, _sqlite, _milvus, _milvus_hnsw],
                ids=['embedded-memory', 'embedded-sqlite', 'milvus-lite', 'milvus-lite-hnsw'])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    made = request.param(tmp_path)
    yield made
    made.close()


def _engram(rng: np.random.Generator, engram_id: int) -> Engram:
    first = float(rng.uniform(1000.0, 2000.0))
    last = first + float(rng.uniform(0.0, 300.0))
    tags = tuple(sorted(rng.choice(VOCAB, size=int(rng.integers(0, 4)), replace=False)))
    engram = Engram(id=engram_id, kind=KINDS[int(rng.integers(len(KINDS)))], frame_id=FRAME,
                    position=rng.uniform(-20.0, 20.0, 3), vector=_unit(rng),
                    first_seen=first, last_seen=last, tags=tags,
                    label=str(rng.choice(['', 'mug', 'cup'])), score=float(rng.uniform()),
                    observation_count=int(rng.integers(1, 9)), valid_from=first,
                    anchor_id=int(rng.integers(0, 3)), keyframe_id=str(rng.choice(['', 'k1'])))
    roll = rng.uniform()
    if roll < 0.25:            # history: superseded some time after it was first seen
        engram.valid_to = last + float(rng.uniform(0.0, 200.0))
        engram.successor_id = engram_id + 1
    elif roll < 0.4:           # a current belief that began after it was first seen
        engram.valid_from = first + float(rng.uniform(1.0, 100.0))
    return engram


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture()
def engrams() -> list[Engram]:
    rng = np.random.default_rng(3)
    return [_engram(rng, 100 + 2 * i) for i in range(N)]


def _passes(e: Engram, f: Stage1Filter) -> bool:
    """The documented meaning of every Stage1Filter field, on one record (written by ROBOT)."""
    if f.robots and ROBOT not in f.robots or ROBOT in f.not_robots:
        return False
    if f.kinds and e.kind not in f.kinds:
        return False
    tags = set(e.tags)
    if not set(f.tags_all) <= tags or (f.tags_any and not tags & set(f.tags_any)) \
            or tags & set(f.tags_none):
        return False
    if f.region is not None:
        stored = np.asarray(e.position, dtype=np.float32).astype(np.float64)
        if np.linalg.norm(stored - np.asarray(f.region.center)) > f.region.radius:
            return False
    if f.t_start is not None and e.last_seen < f.t_start:
        return False
    if f.t_end is not None and e.first_seen > f.t_end:
        return False
    current = e.valid_to is None
    valid_from = max(e.valid_from, e.first_seen) if current else e.valid_from
    valid_to = math.inf if current else e.valid_to
    if f.at_time is None and f.changed_since is None:
        return current or f.include_history
    if f.at_time is not None and not valid_from <= f.at_time < valid_to:
        return False
    if f.changed_since is not None and not (
            valid_from >= f.changed_since or (not current and valid_to >= f.changed_since)):
        return False
    return True


FILTERS: dict[str, Stage1Filter] = {
    'current-only': Stage1Filter(),
    'include-history': Stage1Filter(include_history=True),
    'kinds': Stage1Filter(kinds=('object', 'place')),
    'tags-all': Stage1Filter(tags_all=('room:kitchen', 'color:red')),
    'tags-any': Stage1Filter(tags_any=('label:mug', 'label:cup')),
    'tags-none': Stage1Filter(tags_none=('room:hall',), include_history=True),
    'unknown-tag': Stage1Filter(tags_all=('label:unicorn',)),
    'region': Stage1Filter(region=Region((3.0, -4.0, 0.0), 12.0, FRAME)),
    'region-no-frame': Stage1Filter(region=Region((-10.0, 5.0, 1.0), 9.0)),
    'huge-region': Stage1Filter(region=Region((0.0, 0.0, 0.0), 5000.0)),
    't-start': Stage1Filter(t_start=1700.0),
    'robot-named': Stage1Filter(robots=('z', ROBOT), kinds=('object',)),
    'robot-other': Stage1Filter(robots=('b',)),
    'robot-excluded': Stage1Filter(not_robots=(ROBOT,), include_history=True),
    'robot-not-other': Stage1Filter(not_robots=('b', 'c'), tags_any=('label:mug',)),
    't-end': Stage1Filter(t_end=1300.0, include_history=True),
    'window': Stage1Filter(t_start=1200.0, t_end=1500.0),
    'at-time': Stage1Filter(at_time=1650.0),
    'changed-since': Stage1Filter(changed_since=1800.0),
    'at-time-and-changed-since': Stage1Filter(at_time=1900.0, changed_since=1500.0),
    'everything': Stage1Filter(kinds=('object', 'audio', 'event'), tags_any=('room:kitchen',
                                                                            'color:blue'),
                               tags_none=('label:cup',),
                               region=Region((0.0, 0.0, 0.0), 25.0), t_start=1100.0,
                               t_end=2100.0, changed_since=1000.0),
}


def test_backend_is_a_memory_backend(backend: MemoryBackend) -> None:
    assert isinstance(backend, MemoryBackend)
    assert backend.dim == DIM


def test_put_get_round_trip(backend: MemoryBackend, engrams: list[Engram]) -> None:
    backend.put(engrams)
    assert backend.count() == N
    wanted = [engrams[5].id, 999_999, engrams[0].id, engrams[5].id]
    got = backend.get(wanted)
    assert [e.id for e in got] == [engrams[5].id, engrams[0].id, engrams[5].id]
    for out, original in zip(got, (engrams[5], engrams[0], engrams[5])):
        for name, value in vars(original).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(out, name), value, err_msg=name)
            else:
                assert getattr(out, name) == value, name
    assert [e.id for e in backend.iter_all(batch_size=7)] == sorted(e.id for e in engrams)


def test_put_replaces_and_search_sees_the_new_record(backend: MemoryBackend,
                                                     engrams: list[Engram]) -> None:
    backend.put(engrams)
    changed = engrams[10].copy()
    changed.tags = ('label:unique',)
    changed.kind = 'event'
    changed.valid_to = None
    changed.vector = -engrams[10].vector
    backend.put([engrams[10], changed])         # the last of an id wins
    assert backend.count() == N
    assert backend.get([changed.id])[0].tags == ('label:unique',)
    where = Stage1Filter(tags_all=('label:unique',), kinds=('event',))
    assert backend.select(where).tolist() == [changed.id]
    hit = backend.search(changed.vector, 3, where)
    assert hit.ids.tolist() == [changed.id]
    assert hit.scores[0] == pytest.approx(1.0, abs=1e-2)


def test_delete(backend: MemoryBackend, engrams: list[Engram]) -> None:
    backend.put(engrams)
    gone = [engrams[1].id, engrams[2].id, 777_777]
    assert backend.delete(gone) == 2
    assert backend.delete(gone) == 0
    assert backend.count() == N - 2
    assert backend.get(gone) == []
    everything = Stage1Filter(include_history=True)
    assert not set(gone) & set(backend.select(everything).tolist())
    for e in (engrams[1], engrams[2]):
        assert e.id not in backend.search(e.vector, N, None).ids.tolist()


@pytest.mark.parametrize('name', list(FILTERS))
def test_filtered_search_matches_brute_force(backend: MemoryBackend, engrams: list[Engram],
                                             name: str) -> None:
    backend.put(engrams)
    where = FILTERS[name]
    expected = sorted(e.id for e in engrams if _passes(e, where))
    assert backend.select(where).tolist() == expected
    by_id = {e.id: e for e in engrams}
    rng = np.random.default_rng(len(name))
    for k in (1, 5, N):
        q = _unit(rng)
        result = backend.search(q, k, where)
        ids = result.ids.tolist()
        assert len(ids) == min(k, len(expected)) == len(set(ids))
        assert set(ids) <= set(expected)
        exact = np.array([float(by_id[i].vector @ q) for i in ids])
        np.testing.assert_allclose(result.scores, exact, atol=1e-2)
        assert np.all(np.diff(result.scores) <= 0.0)          # best first
        if expected:
            reference = np.sort([float(by_id[i].vector @ q) for i in expected])[::-1]
            assert result.scores[-1] >= reference[len(ids) - 1] - 1e-2
        if k >= len(expected):
            assert sorted(ids) == expected


def test_search_without_filter_sees_every_engram(backend: MemoryBackend,
                                                 engrams: list[Engram]) -> None:
    backend.put(engrams)
    assert sorted(backend.search(engrams[0].vector, N + 10).ids.tolist()) == \
        sorted(e.id for e in engrams)


def test_unknown_ids(backend: MemoryBackend, engrams: list[Engram]) -> None:
    assert backend.get([1, 2, 3]) == []
    assert backend.delete([1, 2, 3]) == 0
    assert backend.search(engrams[0].vector, 5).ids.shape == (0,)
    backend.put(engrams[:3])
    assert set(backend.search(engrams[0].vector, 10, Stage1Filter(include_history=True))
               .ids.tolist()) <= {e.id for e in engrams[:3]}


@pytest.mark.parametrize('bad', ['short', 'long', 'zero', 'nan'])
def test_dimension_mismatch_and_bad_vectors_write_nothing(backend: MemoryBackend,
                                                          engrams: list[Engram],
                                                          bad: str) -> None:
    backend.put(engrams[:4])
    wrong = engrams[4].copy()
    wrong.vector = {'short': np.ones(DIM - 1), 'long': np.ones(DIM + 1),
                    'zero': np.zeros(DIM), 'nan': np.full(DIM, np.nan)}[bad]
    with pytest.raises(ValueError):
        backend.put([engrams[5], wrong])
    assert backend.count() == 4 and backend.get([engrams[5].id, wrong.id]) == []
    with pytest.raises(ValueError):
        backend.search(wrong.vector, 3)
    with pytest.raises(ValueError):
        backend.search(wrong.vector, 3, Stage1Filter(tags_all=('label:unicorn',)))


def test_bad_search_arguments(backend: MemoryBackend, engrams: list[Engram]) -> None:
    backend.put(engrams)
    with pytest.raises(ValueError):
        backend.search(engrams[0].vector, 0)
    elsewhere = Stage1Filter(region=Region((0.0, 0.0, 0.0), 3.0, 'odom'))
    with pytest.raises(ValueError):
        backend.search(engrams[0].vector, 3, elsewhere)
    with pytest.raises(ValueError):
        backend.select(elsewhere)


@pytest.mark.parametrize('name', list(FILTERS))
def test_fetch_reads_what_passes_with_its_robot(backend: MemoryBackend, engrams: list[Engram],
                                                name: str) -> None:
    backend.put(engrams)
    where = FILTERS[name]
    expected = sorted(e.id for e in engrams if _passes(e, where))
    every = backend.fetch(where, 10000)
    assert sorted(e.id for e in every.engrams) == expected and not every.more
    assert every.robots == dict.fromkeys(expected, ROBOT)
    by_id = {e.id: e for e in engrams}
    assert all(e.tags == by_id[e.id].tags for e in every.engrams)
    few = backend.fetch(where, 3)
    assert len(few.engrams) <= 3 and {e.id for e in few.engrams} <= set(expected)
    assert few.more or len(expected) <= 3
    with pytest.raises(ValueError):
        backend.fetch(where, 0)


def test_robots_of_names_the_writer(backend: MemoryBackend, engrams: list[Engram]) -> None:
    backend.put(engrams[:5])
    ids = [e.id for e in engrams[:5]]
    assert backend.robots_of(ids + [999999]) == dict.fromkeys(ids, ROBOT)
    assert backend.robots_of([]) == {}


def test_meta(backend: MemoryBackend) -> None:
    assert backend.get_meta('model', 'none') == 'none'
    backend.set_meta('model', 'clip')
    assert backend.get_meta('model') == 'clip'


def test_sqlite_backend_reopens_with_the_same_answers(tmp_path: Path,
                                                      engrams: list[Engram]) -> None:
    first = EmbeddedBackend(SQLiteStorage(tmp_path / 'memory'), DIM, frame_id=FRAME,
                           robot_id=ROBOT)
    first.put(engrams)
    first.delete([engrams[7].id])
    q = _unit(np.random.default_rng(5))
    before = {name: (first.select(f).tolist(), first.search(q, 8, f).ids.tolist())
              for name, f in FILTERS.items()}
    first.close()
    again = EmbeddedBackend(SQLiteStorage(tmp_path / 'memory', create=False), DIM,
                            frame_id=FRAME, robot_id=ROBOT)
    try:
        after = {name: (again.select(f).tolist(), again.search(q, 8, f).ids.tolist())
                 for name, f in FILTERS.items()}
    finally:
        again.close()
    assert after == before


# ---------------------------------------------------------------- Stage1Filter as data


@pytest.mark.parametrize('make', [
    lambda: Stage1Filter(kinds=('thing',)),
    lambda: Stage1Filter(tags_all='label:mug'),
    lambda: Stage1Filter(t_start=5.0, t_end=4.0),
    lambda: Stage1Filter(t_start=math.nan),
    lambda: Stage1Filter(at_time=5.0, include_history=True),
    lambda: Region((0.0, 0.0), 1.0),
    lambda: Region((0.0, 0.0, math.inf), 1.0),
    lambda: Region((0.0, 0.0, 0.0), 0.0),
    lambda: Stage1Filter(robots='a'),
    lambda: Stage1Filter(not_robots=('',)),
], ids=['kind', 'tags-string', 'window', 'nan-time', 'history-with-time', 'centre-2d',
        'centre-inf', 'radius-0', 'robots-string', 'robot-empty'])
def test_malformed_filters_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_a_filter_is_hashable_plain_data() -> None:
    a = Stage1Filter(kinds=['object'], tags_any=['label:mug'],
                     region=Region(np.array([1.0, 2.0, 3.0]), 2.0, FRAME))
    b = Stage1Filter(kinds=('object',), tags_any=('label:mug',),
                     region=Region((1.0, 2.0, 3.0), 2.0, FRAME))
    assert a == b and hash(a) == hash(b)
    assert a.region is not None and a.region.center == (1.0, 2.0, 3.0)


def test_for_recall_carries_every_stage1_part_of_a_query() -> None:
    query = RecallQuery(text='mug', tags_none=('room:hall',), center=np.array([1.0, 2.0, 0.0]),
                        radius=4.0, frame_id=FRAME, t_start=10.0, t_end=20.0,
                        kinds=('object',), at_time=15.0, changed_since=12.0)
    where = Stage1Filter.for_recall(query, tags_all=(), tags_any=('label:mug',),
                                    tags_none=('room:hall',))
    assert where == Stage1Filter(kinds=('object',), tags_any=('label:mug',),
                                 tags_none=('room:hall',),
                                 region=Region((1.0, 2.0, 0.0), 4.0, FRAME), t_start=10.0,
                                 t_end=20.0, at_time=15.0, changed_since=12.0)
    assert Stage1Filter.for_recall(RecallQuery(text='x'), tags_all=(), tags_any=(),
                                   tags_none=()) == Stage1Filter()
