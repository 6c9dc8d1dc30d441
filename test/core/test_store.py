"""Tests of engram_ros.core.memory.MemoryStore: ingest, recall, consolidate, close and reopen.

Runs on both storage backends (RAM and SQLite files in ``tmp_path``) with a real faiss index.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import zlib
from pathlib import Path
from typing import Callable
from typing import Iterator

import numpy as np
import pytest

from engram_ros.core.memory import ConsolidationScope
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.merge import MergePolicy
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallQuery
from engram_ros.core.query import RecallStatus
from engram_ros.core.storage import INDEX_DIR_NAME
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage

DIM = 8
FRAME = 'map'
T0 = 1.7e9
NOW = T0 + 10_000.0
_META_INDEX_GENERATION = 'index_generation'


# ----------------------------------------------------------------------------------- helpers


def basis(name: str) -> np.ndarray:
    """A fixed unit vector per name: the 'appearance' of one thing."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_obs(label: str = 'mug', position=(0.0, 0.0, 0.0), stamp: float = T0,
             tags: tuple[str, ...] = (), kind: str = 'object', look: str | None = None,
             jitter: float = 0.0, seed: int = 0, **kw) -> Observation:
    rng = np.random.default_rng(seed)
    vector = basis(look or label or kind) + jitter * rng.normal(size=DIM)
    position = np.asarray(position, dtype=np.float64) + jitter * rng.normal(size=3)
    return Observation(kind=kind, frame_id=kw.pop('frame_id', FRAME), position=position,
                       stamp=stamp, vector=vector, tags=tuple(tags), label=label, **kw)


def make_engram(label: str = 'mug', position=(0.0, 0.0, 0.0), stamp: float = T0,
                tags: tuple[str, ...] = (), kind: str = 'object', look: str | None = None,
                **kw) -> Engram:
    """An engram as bulk_load takes it (id assigned by the store)."""
    tags = tuple(sorted(set(tags) | ({f'label:{label}'} if label else set())))
    return Engram(id=0, kind=kind, frame_id=FRAME, position=np.asarray(position, dtype=float),
                  vector=basis(look or label or kind), first_seen=stamp, last_seen=stamp,
                  tags=tags, label=label, last_access=stamp, **kw)


def state(engram: Engram, recall_stats: bool = True) -> tuple:
    """Every field of an engram as a comparable value."""
    out = []
    for f in dataclasses.fields(engram):
        if not recall_stats and f.name in ('last_access', 'recall_count'):
            continue
        value = getattr(engram, f.name)
        if isinstance(value, np.ndarray):
            value = (str(value.dtype), tuple(value.reshape(-1).tolist()))
        out.append((f.name, value))
    return tuple(out)


def snapshot(store: MemoryStore, recall_stats: bool = True) -> dict[int, tuple]:
    return {e.id: state(e, recall_stats) for e in store.storage.iter_all()}


def by_label(store: MemoryStore) -> dict[str, list[Engram]]:
    out: dict[str, list[Engram]] = {}
    for e in store.storage.iter_all():
        out.setdefault(e.label, []).append(e)
    return out


def answer(result) -> tuple:
    """What a recall answered, rounded so a reloaded index compares equal."""
    return (tuple(result.ids), tuple(round(h.score, 5) for h in result.hits),
            result.candidates, result.status)


@pytest.fixture(params=['memory', 'sqlite'])
def make_store(request, tmp_path: Path) -> Iterator[Callable[..., MemoryStore]]:
    """Factory of stores on the parametrised backend; every store made is closed afterwards."""
    made: list[MemoryStore] = []

    def factory(**config) -> MemoryStore:
        if request.param == 'memory':
            storage = MemoryStorage()
        else:
            storage = SQLiteStorage(tmp_path / f'store{len(made)}')
        store = MemoryStore(storage, StoreConfig(dim=DIM, frame_id=FRAME, **config))
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> Path:
    return tmp_path / 'store'


def open_sqlite(directory: Path, **config) -> MemoryStore:
    return MemoryStore(SQLiteStorage(directory), StoreConfig(dim=DIM, frame_id=FRAME, **config))


# The scene used by the recall tests: label -> (observation kwargs).
SCENE = {
    'red_mug': dict(label='mug', position=(1.0, 0.0, 0.0), tags=('red', 'room:kitchen'),
                    stamp=T0 + 100.0, look='red_mug'),
    'blue_mug': dict(label='mug', position=(4.0, 0.0, 0.0), tags=('color:blue',),
                     stamp=T0 + 200.0, look='blue_mug'),
    'red_book': dict(label='book', position=(1.0, 3.0, 0.0), tags=('colour:Red',),
                     stamp=T0 + 300.0),
    'plant': dict(label='plant', position=(8.0, 8.0, 0.0), stamp=T0 + 400.0),
    'kitchen': dict(label='', kind='place', position=(0.0, 0.0, 0.0), tags=('kitchen',),
                    stamp=T0 + 50.0, look='kitchen'),
    'doorbell': dict(label='', kind='audio', position=(10.0, 0.0, 0.0), tags=('doorbell',),
                     stamp=T0 + 500.0, modality='audio', look='doorbell'),
}


def fill_scene(store: MemoryStore) -> dict[str, int]:
    return {name: store.ingest(make_obs(**kw)).engram_id for name, kw in SCENE.items()}


# ----------------------------------------------------------------------------------- ingest


def test_same_object_three_times_is_one_long_term_engram(make_store) -> None:
    store = make_store()
    results = [store.ingest(make_obs(stamp=T0 + 10.0 * i, jitter=0.02, seed=i,
                                     evidence=(f'file:///img{i}.jpg',)))
               for i in range(3)]
    assert len({r.engram_id for r in results}) == 1
    assert [r.merged for r in results] == [False, True, True]
    assert [r.promoted for r in results] == [False, True, False]
    assert len(store) == 1 and store.storage.count() == 1
    assert store.short_term_size == 0
    (engram,) = store.get([results[0].engram_id])
    assert engram.observation_count == 3
    assert engram.tier == TIER_LONG
    assert engram.first_seen == T0 and engram.last_seen == T0 + 20.0
    assert engram.tags == ('label:mug',)
    assert engram.evidence == ('file:///img0.jpg', 'file:///img1.jpg', 'file:///img2.jpg')
    assert np.linalg.norm(engram.position) < 0.1


def test_two_identical_mugs_three_metres_apart_stay_two(make_store) -> None:
    store = make_store()
    for i in range(3):
        store.ingest(make_obs(position=(0.0, 0.0, 0.8), stamp=T0 + i, jitter=0.01, seed=i))
        store.ingest(make_obs(position=(3.0, 0.0, 0.8), stamp=T0 + i, jitter=0.01, seed=10 + i))
    mugs = by_label(store)['mug']
    assert len(store) == 2 and len(mugs) == 2
    assert sorted(e.observation_count for e in mugs) == [3, 3]
    xs = sorted(float(e.position[0]) for e in mugs)
    assert xs[0] == pytest.approx(0.0, abs=0.05) and xs[1] == pytest.approx(3.0, abs=0.05)


def test_mug_and_book_at_the_same_place_stay_two(make_store) -> None:
    store = make_store()
    # Identical appearance and place: only the label tells them apart.
    mug = store.ingest(make_obs(label='mug', look='thing'))
    book = store.ingest(make_obs(label='book', look='thing', stamp=T0 + 1.0))
    assert mug.engram_id != book.engram_id and not book.merged
    again = store.ingest(make_obs(label='mug', look='thing', stamp=T0 + 2.0))
    assert again.merged and again.engram_id == mug.engram_id
    labels = {e.label: e.observation_count for e in store.storage.iter_all()}
    assert labels == {'mug': 2, 'book': 1}


def test_unlabelled_observation_merges_into_labelled_engram(make_store) -> None:
    store = make_store()
    first = store.ingest(make_obs(label='mug'))
    second = store.ingest(make_obs(label='', look='mug', stamp=T0 + 1.0))
    assert second.merged and second.engram_id == first.engram_id
    assert len(store) == 1


def test_different_kind_at_same_place_does_not_merge(make_store) -> None:
    store = make_store()
    store.ingest(make_obs(label='', kind='place', look='same'))
    store.ingest(make_obs(label='', kind='event', look='same'))
    assert len(store) == 2


def _bad(**kw) -> Observation:
    obs = make_obs(**{k: v for k, v in kw.items() if k in ('kind', 'frame_id', 'label')})
    for name, value in kw.items():
        if name not in ('kind', 'frame_id', 'label'):
            setattr(obs, name, value)
    return obs


@pytest.mark.parametrize('obs, message', [
    pytest.param(_bad(position=np.array([0.0, np.nan, 0.0])), 'position', id='nan_position'),
    pytest.param(_bad(position=np.array([np.inf, 0.0, 0.0])), 'position', id='inf_position'),
    pytest.param(_bad(position=np.zeros(2)), 'position', id='2d_position'),
    pytest.param(_bad(vector=np.ones(DIM + 1)), 'vector', id='wrong_dim'),
    pytest.param(_bad(vector=np.zeros(DIM)), 'zeros', id='zero_vector'),
    pytest.param(_bad(vector=np.full(DIM, np.nan)), 'vector', id='nan_vector'),
    pytest.param(_bad(kind='furniture'), 'accepted', id='unknown_kind'),
    pytest.param(_bad(frame_id='odom'), 'odom', id='wrong_frame'),
    pytest.param(_bad(frame_id=''), 'frame', id='empty_frame'),
    pytest.param(_bad(orientation=np.array([0.0, 0.0, 0.0, 2.0])), 'quaternion',
                 id='non_unit_quaternion'),
    pytest.param(_bad(orientation=np.zeros(4)), 'quaternion', id='zero_quaternion'),
    pytest.param(_bad(stamp=float('nan')), 'stamp', id='nan_stamp'),
    pytest.param(_bad(stamp=-1.0), 'stamp', id='negative_stamp'),
    pytest.param(_bad(confidence=1.5), 'confidence', id='confidence_above_one'),
    pytest.param(_bad(modality='smell'), 'modality', id='unknown_modality'),
    pytest.param(_bad(covariance=np.full(36, np.nan)), 'covariance', id='nan_covariance'),
    pytest.param(_bad(tags=('flavour:sweet',)), 'namespace', id='unknown_tag_namespace'),
])
def test_invalid_observation_raises_and_changes_nothing(make_store, obs: Observation,
                                                        message: str) -> None:
    store = make_store(short_term_capacity=1)
    # The existing engram is exactly where the bad observation claims to be: a valid one
    # would merge into it (or evict it, given the capacity of 1).
    store.ingest(make_obs(stamp=T0 - 1.0))
    before = snapshot(store)
    with pytest.raises(InvalidObservation, match=message):
        store.ingest(obs)
    assert len(store) == 1 and store.storage.count() == 1
    assert store.short_term_size == 1
    assert snapshot(store) == before


# ----------------------------------------------------------------------------------- recall


@pytest.fixture
def scene(make_store) -> tuple[MemoryStore, dict[str, int]]:
    store = make_store()
    return store, fill_scene(store)


def names_of(ids: list[int], names: dict[str, int]) -> list[str]:
    inverse = {v: k for k, v in names.items()}
    return [inverse[i] for i in ids]


def test_scene_is_six_engrams(scene) -> None:
    store, names = scene
    assert len(store) == len(SCENE) == len(set(names.values()))
    assert store.known_labels() == frozenset({'mug', 'book', 'plant'})


def test_recall_by_text(scene) -> None:
    store, names = scene
    result = store.recall(RecallQuery(text='Where is the red mug?'), now=NOW)
    assert result.status is RecallStatus.OK
    got = names_of(result.ids, names)
    assert got[0] == 'red_mug'
    assert set(got) == {'red_mug', 'blue_mug', 'red_book'}
    assert result.candidates == 3
    assert result.hits[0].symbolic == 1.0
    assert 'color:red' in result.message and 'label:mug' in result.message
    assert all(0.0 <= h.score <= 1.0 for h in result.hits)


@pytest.mark.parametrize('query, expected', [
    pytest.param(RecallQuery(tags_all=('label:mug', 'color:red')), {'red_mug'}, id='all'),
    pytest.param(RecallQuery(tags_all=('Mugs',)), {'red_mug', 'blue_mug'}, id='all_normalised'),
    pytest.param(RecallQuery(tags_all=('label:mug', 'color:green')), set(), id='all_none'),
    pytest.param(RecallQuery(tags_any=('label:book', 'label:plant')), {'red_book', 'plant'},
                 id='any'),
    pytest.param(RecallQuery(tags_any=('color:red',), tags_all=('label:book',)), {'red_book'},
                 id='any_and_all'),
    pytest.param(RecallQuery(tags_none=('label:mug',), kinds=('object',)),
                 {'red_book', 'plant'}, id='none'),
    pytest.param(RecallQuery(tags_any=('red',), tags_none=('book',)), {'red_mug'},
                 id='any_minus_none'),
    pytest.param(RecallQuery(kinds=('place',)), {'kitchen'}, id='kind'),
    pytest.param(RecallQuery(kinds=('audio', 'place')), {'kitchen', 'doorbell'}, id='kinds'),
    pytest.param(RecallQuery(center=np.array([1.0, 0.0, 0.0]), radius=1.5),
                 {'red_mug', 'kitchen'}, id='radius'),
    pytest.param(RecallQuery(center=np.array([1.0, 0.0, 0.0]), radius=1.5, frame_id=FRAME,
                             kinds=('object',)), {'red_mug'}, id='radius_and_kind'),
    pytest.param(RecallQuery(t_start=T0 + 150.0, t_end=T0 + 350.0), {'blue_mug', 'red_book'},
                 id='window'),
    pytest.param(RecallQuery(t_start=T0 + 450.0), {'doorbell'}, id='window_open_end'),
    pytest.param(RecallQuery(t_end=T0 + 60.0), {'kitchen'}, id='window_open_start'),
    pytest.param(RecallQuery(text='doorbell'), {'doorbell'}, id='text_sound'),
    pytest.param(RecallQuery(text='what is in the kitchen?'), {'red_mug', 'kitchen'},
                 id='text_room'),
])
def test_recall_filters(scene, query: RecallQuery, expected: set[str]) -> None:
    store, names = scene
    query.k = 20
    result = store.recall(query, now=NOW)
    assert set(names_of(result.ids, names)) == expected
    assert result.candidates == len(expected)
    assert result.status is RecallStatus.OK


def test_recall_by_vector_ranks_nearest_first(scene) -> None:
    store, names = scene
    result = store.recall(RecallQuery(vector=basis('plant'), k=3), now=NOW)
    assert names_of(result.ids, names)[0] == 'plant'
    assert len(result.hits) == 3
    assert result.hits[0].dense == pytest.approx(1.0, abs=1e-3)


def test_recall_radius_ranks_by_distance(scene) -> None:
    store, names = scene
    result = store.recall(RecallQuery(center=np.array([1.0, 0.0, 0.0]), radius=12.0,
                                      kinds=('object',)), now=NOW)
    spatial = {n: h.spatial for n, h in zip(names_of(result.ids, names), result.hits)}
    assert spatial['red_mug'] == pytest.approx(1.0)
    assert spatial['red_mug'] > spatial['blue_mug'] > spatial['plant']


def test_well_seen_mug_outranks_a_one_off_mug_sighting(make_store) -> None:
    # Label noise: a bowl once detected as "mug" on the other side of the room, first.
    store = make_store()
    noise = store.ingest(make_obs('mug', (3.0, 0.0, 0.8), stamp=T0, look='bowl')).engram_id
    for i in range(5):
        mug = store.ingest(make_obs('mug', (0.0, 0.0, 0.8), stamp=T0 + 10.0 * (i + 1),
                                    jitter=0.01, seed=i)).engram_id
    assert noise != mug and len(store) == 2
    result = store.recall(RecallQuery(text='where is the mug?', k=2), now=NOW)
    assert result.ids == [mug, noise]
    assert [h.engram.observation_count for h in result.hits] == [5, 1]
    assert result.hits[0].support > result.hits[1].support > 0.0
    assert result.hits[0].score > result.hits[1].score


def test_recall_k_and_min_score(scene) -> None:
    store, _ = scene
    result = store.recall(RecallQuery(kinds=('object', 'place', 'audio'), k=2), now=NOW)
    assert len(result.hits) == 2 and result.candidates == len(SCENE)
    strict = store.recall(RecallQuery(text='red mug', min_score=1.0), now=NOW)
    assert all(h.score >= 1.0 for h in strict.hits)


def test_recall_of_unknown_word_gives_no_hits_and_says_why(scene) -> None:
    store, _ = scene
    before = snapshot(store)
    result = store.recall(RecallQuery(text='where is the zorblax?'), now=NOW)
    assert result.hits == [] and result.ids == []
    assert result.status is RecallStatus.OK
    assert 'zorblax' in result.message and 'no known label' in result.message
    store.consolidate(dry_run=True, now=NOW)     # flushes recall statistics, changes nothing else
    assert snapshot(store) == before


@pytest.mark.parametrize('query, status', [
    pytest.param(RecallQuery(text='red mug', k=0), RecallStatus.INVALID_K, id='k'),
    pytest.param(RecallQuery(vector=np.ones(DIM + 2)), RecallStatus.DIMENSION_MISMATCH,
                 id='dim'),
    pytest.param(RecallQuery(text='mug', center=np.zeros(3), radius=1.0, frame_id='odom'),
                 RecallStatus.UNKNOWN_FRAME, id='frame'),
    pytest.param(RecallQuery(), RecallStatus.EMPTY_QUERY, id='empty'),
    pytest.param(RecallQuery(kinds=('chair',)), RecallStatus.UNKNOWN_KIND, id='kind'),
    pytest.param(RecallQuery(tags_all=('flavour:sweet',)), RecallStatus.INVALID_TAG, id='tag'),
])
def test_query_error_leaves_the_store_unchanged(make_store, query: RecallQuery,
                                                status: RecallStatus) -> None:
    store = make_store(short_term_capacity=3)
    fill_scene(store)       # 6 observations into a capacity of 3: the LRU tier is full
    before = snapshot(store)
    size, short = len(store), store.short_term_size
    with pytest.raises(QueryError) as info:
        store.recall(query, now=NOW)
    assert info.value.status is status
    assert len(store) == size and store.short_term_size == short
    report = store.consolidate(dry_run=True, now=NOW)
    assert report.forgotten == 0 and report.merged == 0
    assert snapshot(store) == before


def test_recall_counts_reactivations(make_store) -> None:
    store = make_store()
    ids = fill_scene(store)
    store.recall(RecallQuery(tags_all=('label:plant',)), now=NOW)
    store.recall(RecallQuery(tags_all=('label:plant',)), now=NOW + 1.0)
    store.consolidate(now=NOW + 2.0)
    (plant,) = store.get([ids['plant']])
    assert plant.recall_count == 2
    assert plant.last_access >= NOW + 1.0
    (mug,) = store.get([ids['red_mug']])
    assert mug.recall_count == 0


# ----------------------------------------------------------------------------------- LRU tier


def distinct(i: int, **kw) -> Observation:
    """The i-th of a set of different things, far from each other."""
    return make_obs(label=f'thing{i}', position=(10.0 * i, 0.0, 0.0), stamp=T0 + i, **kw)


def test_short_term_lru_evicts_least_recently_used(make_store) -> None:
    store = make_store(short_term_capacity=3)
    results = [store.ingest(distinct(i)) for i in range(5)]
    ids = [r.engram_id for r in results]
    assert [r.evicted for r in results] == [[], [], [], [ids[0]], [ids[1]]]
    assert len(store) == 3 and store.storage.count() == 3 and store.short_term_size == 3
    assert {e.id for e in store.storage.iter_all()} == set(ids[2:])


def test_short_term_lru_never_evicts_long_term(make_store) -> None:
    store = make_store(short_term_capacity=2)
    keep = store.ingest(make_obs(label='mug')).engram_id
    assert store.ingest(make_obs(label='mug', stamp=T0 + 1.0)).promoted
    evicted: list[int] = []
    for i in range(1, 7):
        evicted += store.ingest(distinct(i)).evicted
    assert keep not in evicted and len(evicted) == 4
    assert len(store) == 3 and store.short_term_size == 2
    assert store.get([keep])[0].tier == TIER_LONG


def test_reactivation_refreshes_lru_position(make_store) -> None:
    store = make_store(short_term_capacity=3, merge=MergePolicy(promote_after=10))
    ids = [store.ingest(distinct(i)).engram_id for i in range(3)]
    store.ingest(distinct(0))                      # seen again: most recently used now
    assert store.ingest(distinct(3)).evicted == [ids[1]]


def test_recall_touches_lru_order(make_store) -> None:
    store = make_store(short_term_capacity=3)
    ids = [store.ingest(distinct(i)).engram_id for i in range(3)]
    result = store.recall(RecallQuery(tags_all=('label:thing0',)))
    assert result.ids == [ids[0]]
    evicted = store.ingest(distinct(3)).evicted
    assert evicted == [ids[1]]
    assert store.get([ids[0]]), 'the recalled engram survives'
    assert store.ingest(distinct(4)).evicted == [ids[2]]


def test_lru_order_survives_reopen(sqlite_dir: Path) -> None:
    store = open_sqlite(sqlite_dir, short_term_capacity=3)
    ids = [store.ingest(distinct(i)).engram_id for i in range(3)]
    store.recall(RecallQuery(tags_all=('label:thing0',)))
    store.close()
    store = open_sqlite(sqlite_dir, short_term_capacity=3)
    try:
        assert store.ingest(distinct(3)).evicted == [ids[1]]
    finally:
        store.close()


def test_pinned_short_term_engram_survives_lru_overflow(make_store) -> None:
    store = make_store(short_term_capacity=2)
    store.bulk_load([make_engram(label='passport', position=(-5.0, 0.0, 0.0), pinned=True)])
    (pinned_id,) = [e.id for e in store.storage.iter_all()]
    evicted: list[int] = []
    for i in range(4):
        evicted += store.ingest(distinct(i)).evicted
    evicted += store.consolidate(now=NOW).evicted_ids
    assert pinned_id not in evicted
    assert store.get([pinned_id])[0].pinned


# ----------------------------------------------------------------------------------- consolidate


def duplicates_scene() -> list[Engram]:
    return [
        make_engram(label='mug', position=(0.0, 0.0, 0.0), stamp=T0),
        make_engram(label='mug', position=(0.1, 0.0, 0.0), stamp=T0 + 10.0),
        make_engram(label='mug', position=(0.0, 0.1, 0.0), stamp=T0 + 20.0),
        make_engram(label='book', position=(0.0, 0.0, 0.0), stamp=T0 + 5.0, look='mug'),
        make_engram(label='mug', position=(3.0, 0.0, 0.0), stamp=T0 + 30.0),
    ]


def test_consolidate_merges_bulk_loaded_duplicates(make_store) -> None:
    store = make_store()
    store.bulk_load(duplicates_scene())
    assert len(store) == 5, 'bulk_load does not match'
    report = store.consolidate(now=NOW)
    assert report.merged == 2 and report.forgotten == 0
    assert report.promoted == 1, 'the merged mug went from short-term to long-term'
    assert report.size_before == 5 and report.size_after == 3 and len(store) == 3
    assert store.storage.count() == 3
    groups = by_label(store)
    assert len(groups['book']) == 1 and len(groups['mug']) == 2
    near, far = sorted(groups['mug'], key=lambda e: float(np.linalg.norm(e.position)))
    assert near.observation_count == 3 and near.tier == TIER_LONG
    assert near.first_seen == T0 and near.last_seen == T0 + 20.0
    assert far.observation_count == 1 and far.tier == TIER_SHORT
    # The index follows: a recall finds the merged engram once.
    result = store.recall(RecallQuery(tags_all=('label:mug',), center=np.zeros(3), radius=1.0))
    assert result.ids == [near.id]
    # Nothing is left to merge.
    again = store.consolidate(now=NOW)
    assert again.merged == 0 and again.size_after == 3


def test_consolidate_dry_run_changes_nothing_and_predicts_the_real_run(make_store) -> None:
    # Merging, LRU overflow and the budget all have work to do.
    store = make_store(short_term_capacity=1, budget=2)
    store.ingest(make_obs(label='plant', position=(9.0, 9.0, 0.0), stamp=T0 + 40.0))
    store.ingest(make_obs(label='plant', position=(9.0, 9.0, 0.0), stamp=T0 + 41.0))
    store.bulk_load(duplicates_scene())        # bulk_load enforces no capacity: 5 short-term
    before = snapshot(store)
    size, short = len(store), store.short_term_size
    assert (size, short) == (6, 5)
    dry = store.consolidate(dry_run=True, now=NOW)
    assert dry.dry_run and dry.size_before == size and dry.size_after == size
    assert snapshot(store) == before
    assert len(store) == size and store.short_term_size == short
    dry_again = store.consolidate(dry_run=True, now=NOW)
    real = store.consolidate(now=NOW)
    for report in (dry, dry_again):
        assert (report.merged, report.forgotten, report.promoted) == \
            (real.merged, real.forgotten, real.promoted)
        assert report.evicted_ids == real.evicted_ids
    assert real.merged == 2 and real.forgotten == 2
    assert real.size_after == len(store) == store.storage.count() == 2
    assert real.size_after == real.size_before - real.merged - real.forgotten


def test_consolidate_promotes_reactivated_short_term_engrams(make_store) -> None:
    store = make_store()
    store.bulk_load([make_engram(label='mug', observation_count=3),
                     make_engram(label='book', position=(5.0, 0.0, 0.0)),
                     make_engram(label='plant', position=(9.0, 0.0, 0.0), observation_count=2,
                                 tier=TIER_LONG)])
    assert store.short_term_size == 2
    report = store.consolidate(now=NOW)
    assert (report.promoted, report.merged, report.forgotten) == (1, 0, 0)
    assert store.short_term_size == 1
    assert {e.label: e.tier for e in store.storage.iter_all()} == \
        {'mug': TIER_LONG, 'book': TIER_SHORT, 'plant': TIER_LONG}
    assert store.consolidate(now=NOW).promoted == 0


def test_consolidate_scope_limits_merging(make_store) -> None:
    store = make_store()
    store.bulk_load(duplicates_scene())
    store.bulk_load([make_engram(label='mug', position=(20.0, 0.0, 0.0)),
                     make_engram(label='mug', position=(20.1, 0.0, 0.0))])
    report = store.consolidate(ConsolidationScope(center=np.array([20.0, 0.0, 0.0]),
                                                  radius=1.0), now=NOW)
    assert report.merged == 1 and len(store) == 6


def test_budget_forgetting_keeps_pinned_bulk_loaded(make_store) -> None:
    store = make_store(budget=3)
    engrams = [make_engram(label=f'thing{i}', position=(10.0 * i, 0.0, 0.0), stamp=T0 + i,
                           score=0.9) for i in range(6)]
    # The two least worth keeping, by far, are pinned.
    for i in (0, 1):
        engrams[i] = dataclasses.replace(engrams[i], score=0.0, first_seen=T0 - 1e7,
                                         last_seen=T0 - 1e7, last_access=T0 - 1e7, pinned=True)
    store.bulk_load(engrams)
    pinned = {e.id for e in store.storage.iter_all() if e.pinned}
    assert len(pinned) == 2
    report = store.consolidate(now=NOW)
    assert report.forgotten == 3 and len(store) == 3 and store.storage.count() == 3
    assert pinned <= {e.id for e in store.storage.iter_all()}
    assert not pinned & set(report.evicted_ids)


@pytest.mark.parametrize('reopen', [False, True], ids=['same_session', 'reopened'])
def test_budget_forgetting_keeps_engram_pinned_in_storage(sqlite_dir: Path,
                                                          reopen: bool) -> None:
    store = open_sqlite(sqlite_dir, budget=2)
    ids = [store.ingest(distinct(i)).engram_id for i in range(5)]
    (first,) = store.get([ids[0]])
    store.storage.put([dataclasses.replace(first, pinned=True, score=0.0)])
    if reopen:
        store.close()
        store = open_sqlite(sqlite_dir, budget=2)
    try:
        report = store.consolidate(now=NOW)
        assert report.forgotten == 3 and len(store) == 2
        left = {e.id: e for e in store.storage.iter_all()}
        assert ids[0] in left and left[ids[0]].pinned
    finally:
        store.close()


def test_budget_cannot_evict_when_everything_is_pinned(make_store) -> None:
    store = make_store(budget=1)
    store.bulk_load([make_engram(label=f'thing{i}', position=(10.0 * i, 0.0, 0.0), pinned=True)
                     for i in range(3)])
    report = store.consolidate(now=NOW)
    assert report.forgotten == 0 and len(store) == 3


# ----------------------------------------------------------------------------------- persistence


QUERIES = [
    RecallQuery(text='where is the red mug?'),
    RecallQuery(vector=basis('plant'), k=4),
    RecallQuery(center=np.array([1.0, 0.0, 0.0]), radius=5.0),
    RecallQuery(kinds=('place', 'audio')),
    RecallQuery(t_start=T0 + 150.0, t_end=T0 + 450.0, tags_none=('label:plant',)),
    RecallQuery(text='red', vector=basis('red_book'), kinds=('object',)),
]


def answers(store: MemoryStore) -> list[tuple]:
    return [answer(store.recall(dataclasses.replace(q), now=NOW)) for q in QUERIES]


def build_persistent_scene(directory: Path) -> MemoryStore:
    """The recall scene plus merged and forgotten engrams, so the index has tombstones."""
    store = open_sqlite(directory)
    fill_scene(store)
    store.ingest(make_obs(**{**SCENE['red_mug'], 'stamp': T0 + 600.0}))    # a merge
    store.bulk_load([make_engram(label='book', position=(1.0, 3.05, 0.0), stamp=T0 + 310.0,
                                 tags=('color:red',))])
    assert store.consolidate(now=NOW).merged == 1
    assert store.index.tombstones == 1
    return store


def test_close_and_reopen_with_index_cache(sqlite_dir: Path) -> None:
    store = build_persistent_scene(sqlite_dir)
    expected = answers(store)
    store.close()
    store.close()                                  # idempotent
    store = open_sqlite(sqlite_dir)
    try:
        assert store.index_from_cache, 'the cached index was loaded'
        assert store.index.tombstones == 0, 'saved compacted'
        first = snapshot(store, recall_stats=False)
        assert len(store) == len(first) == len(SCENE)
        assert answers(store) == expected
        assert store.known_labels() == frozenset({'mug', 'book', 'plant'})
    finally:
        store.close()
    store = open_sqlite(sqlite_dir)
    try:
        assert snapshot(store, recall_stats=False) == first
        assert answers(store) == expected
    finally:
        store.close()


def test_close_persists_recall_statistics(sqlite_dir: Path) -> None:
    store = open_sqlite(sqlite_dir)
    ids = fill_scene(store)
    store.recall(RecallQuery(tags_all=('label:plant',)), now=NOW)
    store.close()
    store = open_sqlite(sqlite_dir)
    try:
        recalls = {e.id: e.recall_count for e in store.storage.iter_all()}
        assert recalls.pop(ids['plant']) == 1 and set(recalls.values()) == {0}
    finally:
        store.close()


@pytest.mark.parametrize('how', ['delete_index_dir', 'stale_generation', 'corrupt_cache',
                                 'no_generation_file', 'format_1_cache', 'truncated_faiss',
                                 'truncated_columns', 'older_cache'])
def test_reopen_rebuilds_a_missing_or_stale_index(sqlite_dir: Path, how: str) -> None:
    store = build_persistent_scene(sqlite_dir)
    index_dir = sqlite_dir / INDEX_DIR_NAME
    if how == 'older_cache':
        # a cache saved by an earlier close, put back after the store changed since
        store.close()
        older = sqlite_dir.parent / 'older_cache'
        shutil.copytree(index_dir, older)
        store = open_sqlite(sqlite_dir)
        store.ingest(make_obs(**{**SCENE['red_mug'], 'position': (1.3, 0.0, 0.0),
                                 'stamp': T0 + 900.0}))
    expected = answers(store)
    expected_state = snapshot(store, recall_stats=False)
    store.close()
    if how == 'older_cache':
        shutil.rmtree(index_dir)
        shutil.copytree(older, index_dir)
    elif how.startswith('truncated_'):
        path = index_dir / {'truncated_faiss': 'hnsw.faiss',
                            'truncated_columns': 'columns.npz'}[how]
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif how == 'delete_index_dir':
        shutil.rmtree(index_dir)
    elif how == 'stale_generation':
        storage = SQLiteStorage(sqlite_dir)
        storage.set_meta(_META_INDEX_GENERATION, 'stale')
        storage.close()
    elif how == 'corrupt_cache':
        for path in index_dir.iterdir():
            if path.name != 'GENERATION':
                path.write_bytes(b'garbage')
    elif how == 'format_1_cache':
        # saved before the index kept observation counts
        meta = json.loads((index_dir / 'meta.json').read_text(encoding='utf-8'))
        meta['format'] = 1
        (index_dir / 'meta.json').write_text(json.dumps(meta), encoding='utf-8')
    else:
        (index_dir / 'GENERATION').unlink()
    store = open_sqlite(sqlite_dir)
    try:
        assert not store.index_from_cache, 'the index was rebuilt from storage'
        # a cache that was there but not used is counted, with the reason
        assert store.index_cache_rejected == (0 if how == 'delete_index_dir' else 1)
        assert (store.index_cache_problem is None) == (how == 'delete_index_dir')
        assert snapshot(store, recall_stats=False) == expected_state
        assert answers(store) == expected
    finally:
        store.close()
    # The rebuilt index was saved at close and is used next time.
    store = open_sqlite(sqlite_dir)
    try:
        assert store.index_from_cache and store.index_cache_rejected == 0
        assert answers(store) == expected
    finally:
        store.close()


def test_reopen_after_crash_rebuilds(sqlite_dir: Path) -> None:
    store = build_persistent_scene(sqlite_dir)
    store.close()                                    # a valid cache on disk
    crashed = open_sqlite(sqlite_dir)                # loads it
    assert crashed.index_from_cache
    # Changes that keep the engram count, so only the generation can tell the cache is stale.
    red_mug = crashed.recall(RecallQuery(tags_all=('label:mug', 'color:red'))).ids[0]
    merged = crashed.ingest(make_obs(**{**SCENE['red_mug'], 'position': (1.3, 0.0, 0.0),
                                        'stamp': T0 + 900.0}))
    assert merged.merged and merged.engram_id == red_mug
    expected = answers(crashed)
    expected_state = snapshot(crashed, recall_stats=False)
    del crashed                                      # no close: the process died
    gc.collect()
    store = open_sqlite(sqlite_dir)
    try:
        assert not store.index_from_cache, 'a stale cache must not be loaded'
        assert snapshot(store, recall_stats=False) == expected_state
        assert answers(store) == expected
        moved = store.recall(RecallQuery(center=np.array([1.15, 0.0, 0.0]), radius=0.05))
        assert moved.ids == [red_mug]
    finally:
        store.close()


def test_second_store_on_a_live_directory_rebuilds(sqlite_dir: Path) -> None:
    first = build_persistent_scene(sqlite_dir)
    first.close()
    live = open_sqlite(sqlite_dir)
    second = open_sqlite(sqlite_dir)                  # the first is still open: cache is stale
    try:
        assert live.index_from_cache and not second.index_from_cache
        assert answers(second) == answers(live)
    finally:
        second.close()
        live.close()


def test_reopen_with_another_dimension_is_refused(sqlite_dir: Path) -> None:
    store = open_sqlite(sqlite_dir)
    fill_scene(store)
    store.close()
    storage = SQLiteStorage(sqlite_dir)
    with pytest.raises(ValueError, match=str(DIM)):
        MemoryStore(storage, StoreConfig(dim=DIM * 2, frame_id=FRAME))
    storage.close()
    store = open_sqlite(sqlite_dir)
    try:
        assert len(store) == len(SCENE)
    finally:
        store.close()


def test_ram_store_keeps_nothing_on_disk(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM, frame_id=FRAME))
    fill_scene(store)
    store.recall(RecallQuery(text='red mug'))
    assert store.storage.index_dir is None and not store.storage.persistent
    store.close()
    store.close()
    assert not any(tmp_path.iterdir())
