"""Unit tests of the hot index (real faiss, small sizes): adds, lookups, stage-1 filters,
updates, removes and batches. Dense ranking: ``test_index_dense.py``; saving and loading:
``test_index_persistence.py``; shared data: ``index_cases.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.index import EngramIndex

from index_cases import _build
from index_cases import _expected
from index_cases import _ids
from index_cases import _tags
from index_cases import _unit
from index_cases import DIM
from index_cases import N

# ---------------------------------------------------------------- add / lookup


def test_add_len_contains_and_columns(index: EngramIndex, data: dict) -> None:
    assert len(index) == N
    assert 10 in index and 13 in index and 11 not in index and 'x' not in index
    slot = index.slot_of(13)
    assert slot == 1
    np.testing.assert_array_equal(index.ids_of([slot]), [13])
    np.testing.assert_allclose(index.positions_of([slot])[0], data['positions'][1], atol=1e-5)
    assert index.first_seen_of([slot])[0] == 1001.0
    assert index.last_seen_of([slot])[0] == 1006.0
    assert index.kinds_of([slot])[0] == 1
    assert index.scores_of([slot])[0] == pytest.approx(0.5)
    assert index.counts_of([slot])[0] == 1
    assert index.tags_of(slot) == tuple(sorted(_tags(1)))


def test_observation_counts_are_added_and_updated(data: dict) -> None:
    index = EngramIndex(DIM)
    counts = 1 + np.arange(N) % 9
    index.add_batch(data['ids'], data['vectors'], kinds=data['kinds'],
                    positions=data['positions'], first_seen=data['first'],
                    last_seen=data['last'], tags=data['tags'], counts=counts)
    np.testing.assert_array_equal(index.counts_of(np.arange(N)), counts)
    index.update(13, count=42)
    assert index.counts_of([index.slot_of(13)])[0] == 42
    index.update(13, score=0.7)                       # other fields leave the count alone
    assert index.counts_of([index.slot_of(13)])[0] == 42


@pytest.mark.parametrize('bad', [0, -3])
def test_observation_count_below_one_rejected(index: EngramIndex, data: dict, bad: int) -> None:
    with pytest.raises(ValueError, match='observation count'):
        index.add(99999, data['vectors'][0], kind=0, position=np.zeros(3), first_seen=0.0,
                  last_seen=0.0, tags=[], count=bad)
    assert 99999 not in index
    with pytest.raises(ValueError, match='observation count'):
        index.update(13, count=bad)
    assert index.counts_of([index.slot_of(13)])[0] == 1


def test_single_add_with_out_of_order_id(index: EngramIndex) -> None:
    rng = np.random.default_rng(2)
    index.add(11, _unit(rng, 1)[0], kind=2, position=np.zeros(3), first_seen=0.0,
              last_seen=1.0, tags=['label:new'], score=0.9)
    assert 11 in index and len(index) == N + 1
    assert index.slot_of(11) == N
    assert index.slot_of(13) == 1
    assert _ids(index, index.filter(tags_all=['label:new'])) == {11}


def test_duplicate_id_rejected(index: EngramIndex, data: dict) -> None:
    with pytest.raises(ValueError):
        index.add(10, data['vectors'][0], kind=0, position=np.zeros(3), first_seen=0.0,
                  last_seen=0.0, tags=[])


@pytest.mark.parametrize('bad', [np.zeros(DIM), np.full(DIM, np.nan), np.ones(DIM + 1)])
def test_bad_vector_rejected(index: EngramIndex, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        index.add(99999, bad, kind=0, position=np.zeros(3), first_seen=0.0, last_seen=0.0,
                  tags=[])
    assert 99999 not in index


def test_unknown_id_raises_key_error(index: EngramIndex) -> None:
    with pytest.raises(KeyError):
        index.slot_of(11)
    with pytest.raises(KeyError):
        index.update(11, score=0.1)
    with pytest.raises(KeyError):
        index.remove(11)


# ---------------------------------------------------------------- filter semantics


def test_no_filter_returns_none(index: EngramIndex) -> None:
    assert index.filter() is None


FILTER_CASES = [
    ({'tags_all': ['label:mug']}, lambda i: i % 5 == 0),
    ({'tags_all': ['label:mug', 'room:kitchen']}, lambda i: i % 10 == 0),
    ({'tags_all': ['label:mug', 'nope']}, lambda i: False),
    ({'tags_any': ['label:mug', 'label:cup']}, lambda i: i % 5 == 0 or i % 7 == 0),
    ({'tags_any': ['room:kitchen', 'room:hall']}, lambda i: True),
    ({'tags_any': ['nope']}, lambda i: False),
    ({'tags_none': ['room:kitchen']}, lambda i: i % 2 == 1),
    ({'tags_none': ['label:mug', 'nope']}, lambda i: i % 5 != 0),
    ({'tags_all': ['color:red'], 'tags_any': ['label:mug', 'label:cup'],
      'tags_none': ['room:hall']}, lambda i: i % 3 == 0 and (i % 5 == 0 or i % 7 == 0)
     and i % 2 == 0),
    ({'kinds': [1, 3]}, lambda i: i % 4 in (1, 3)),
    ({'kinds': [2], 'tags_all': ['label:mug']}, lambda i: i % 4 == 2 and i % 5 == 0),
    ({'t_start': 1100.0, 't_end': 1110.0}, lambda i: 95 <= i <= 110),
    ({'t_start': 1390.0}, lambda i: i >= 385),
    ({'t_end': 1002.0}, lambda i: i <= 2),
    ({'t_start': 1200.0, 't_end': 1200.0, 'tags_all': ['room:kitchen']},
     lambda i: 195 <= i <= 200 and i % 2 == 0),
]


@pytest.mark.parametrize('kwargs,pred', FILTER_CASES)
def test_filter_matches_definition(index: EngramIndex, data: dict, kwargs: dict, pred) -> None:
    slots = index.filter(**kwargs)
    as_arrays = index.filter(**{key: np.asarray(value) if isinstance(value, list) else value
                                for key, value in kwargs.items()})
    np.testing.assert_array_equal(slots, as_arrays)
    assert slots is not None
    assert np.all(np.diff(slots) > 0)
    assert _ids(index, slots) == _expected(data, pred)


@pytest.mark.parametrize('radius', [0.5, 3.0, 8.0, 100.0])
@pytest.mark.parametrize('with_tag', [False, True])
def test_radius_filter(index: EngramIndex, data: dict, radius: float, with_tag: bool) -> None:
    center = np.array([1.0, -2.0, 0.5])
    dist = np.linalg.norm(data['positions'] - center, axis=1)
    kwargs = {'tags_all': ['color:blue']} if with_tag else {}
    slots = index.filter(center=center, radius=radius, **kwargs)
    expected = _expected(data, lambda i: dist[i] <= radius and (not with_tag or i % 3 == 2))
    assert _ids(index, slots) == expected


def test_radius_without_center_rejected(index: EngramIndex) -> None:
    with pytest.raises(ValueError):
        index.filter(radius=1.0)


def test_tag_match_count(index: EngramIndex) -> None:
    slots = np.arange(12)
    counts = index.tag_match_count(slots, ['label:mug', 'room:kitchen', 'nope'])
    expected = [int(i % 5 == 0) + int(i % 2 == 0) for i in range(12)]
    np.testing.assert_array_equal(counts, expected)


# ---------------------------------------------------------------- update / remove


def test_update_fields_and_tags(index: EngramIndex) -> None:
    index.update(13, kind=3, position=np.array([1.0, 2.0, 3.0]), first_seen=5.0,
                 last_seen=6.0, score=0.75, tags=['label:mug', 'extra'])
    slot = index.slot_of(13)
    assert index.kinds_of([slot])[0] == 3
    np.testing.assert_allclose(index.positions_of([slot])[0], [1.0, 2.0, 3.0])
    assert index.first_seen_of([slot])[0] == 5.0 and index.last_seen_of([slot])[0] == 6.0
    assert index.scores_of([slot])[0] == pytest.approx(0.75)
    assert index.tags_of(slot) == ('extra', 'label:mug')
    assert 13 in _ids(index, index.filter(tags_all=['label:mug']))
    assert 13 not in _ids(index, index.filter(tags_any=['color:green', 'room:hall']))
    assert _ids(index, index.filter(tags_all=['extra'])) == {13}
    assert 13 in _ids(index, index.filter(t_end=10.0))


def test_many_tag_updates_keep_postings_consistent(index: EngramIndex, data: dict) -> None:
    rng = np.random.default_rng(3)
    truth = {int(i): set(t) for i, t in zip(data['ids'], data['tags'])}
    vocab = ['a', 'b', 'c', 'label:mug', 'room:hall']
    for _ in range(600):
        engram_id = int(rng.choice(data['ids']))
        new = set(rng.choice(vocab, size=int(rng.integers(0, 4)), replace=False).tolist())
        index.update(engram_id, tags=sorted(new))
        truth[engram_id] = new
    for tag in vocab:
        expected = {i for i, tags in truth.items() if tag in tags}
        assert _ids(index, index.filter(tags_all=[tag])) == expected


def test_removed_never_returned(data: dict) -> None:
    index = _build(data, exact_threshold=50)
    removed = [int(i) for i in data['ids'][::4]]
    for engram_id in removed:
        index.remove(engram_id)
    assert len(index) == N - len(removed)
    assert all(i not in index for i in removed)
    gone = set(removed)
    assert not gone & _ids(index, index.filter(tags_any=['room:kitchen', 'room:hall']))
    assert not gone & _ids(index, index.filter(kinds=[0, 1, 2, 3]))
    for q in data['vectors'][::4][:20]:
        for cand in (None, index.filter(tags_any=['room:kitchen', 'room:hall']),
                     index.filter(tags_all=['color:red'])):
            slots, _ = index.dense_topk(q, 10, cand)
            assert not gone & set(index.ids_of(slots).tolist())
    # even if a caller passes removed slots explicitly
    slots, _ = index.dense_topk(data['vectors'][0], 5, np.arange(N))
    assert not gone & set(index.ids_of(slots).tolist())


def test_removed_id_can_be_added_again(index: EngramIndex, data: dict) -> None:
    index.remove(13)
    index.add(13, data['vectors'][5], kind=0, position=np.zeros(3), first_seen=0.0,
              last_seen=0.0, tags=['label:again'])
    assert 13 in index and index.slot_of(13) == N
    assert _ids(index, index.filter(tags_all=['label:again'])) == {13}


# ---------------------------------------------------------------- batch update / remove


VOCAB = ['color:red', 'color:green', 'room:kitchen', 'room:hall', 'label:mug', 'label:cup',
         'label:new', 'x']


def _state(index: EngramIndex) -> dict:
    """Everything a caller can observe of an index: filters, columns, tags, vectors, ranking."""
    slots = np.arange(index.slot_count)
    live = index.live_slots()
    rng = np.random.default_rng(9)
    state = {
        'len': len(index), 'live': live.tolist(),
        'ids': index.ids_of(slots).tolist(), 'kinds': index.kinds_of(slots).tolist(),
        'pos': index.positions_of(slots).tolist(), 'first': index.first_seen_of(slots).tolist(),
        'last': index.last_seen_of(slots).tolist(), 'score': index.scores_of(slots).tolist(),
        'count': index.counts_of(slots).tolist(),
        'tags': [index.tags_of(int(s)) for s in live],
        'vectors': index.vectors_of(live).tolist(),
        'by_tag': {t: index.filter(tags_all=[t]).tolist() for t in VOCAB},
        'none': index.filter(tags_none=['label:mug', 'x']).tolist(),
        'kinds_filter': index.filter(kinds=[1, 3]).tolist(),
        'near': [index.filter(center=c, radius=r).tolist()
                 for c in (np.zeros(3), np.array([5.0, -3.0, 1.0])) for r in (2.0, 6.0)],
        'topk': [index.dense_topk(q, 5, cand)[0].tolist() for q in _unit(rng, 3)
                 for cand in (None, index.filter(tags_any=['room:hall', 'x']))],
    }
    return state


def _changes(data: dict, seed: int, m: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = rng.choice(N, size=m, replace=False)
    return {
        'ids': data['ids'][rows],
        'vectors': _unit(rng, m),
        'kinds': rng.integers(0, 4, m),
        'positions': rng.uniform(-10, 10, (m, 3)),
        'first_seen': rng.uniform(0, 100, m),
        'last_seen': rng.uniform(100, 200, m),
        'scores': rng.uniform(0, 1, m),
        'counts': rng.integers(1, 50, m),
        # unchanged, reordered, duplicated, new and emptied tag lists
        'tags': [list(data['tags'][r]) if k % 4 == 0 else
                 list(reversed(data['tags'][r])) + [data['tags'][r][0]] if k % 4 == 1 else
                 sorted(set(rng.choice(VOCAB, size=int(rng.integers(1, 4))).tolist()))
                 if k % 4 == 2 else [] for k, r in enumerate(rows)],
    }


@pytest.mark.parametrize('fields', [
    ('vectors', 'kinds', 'positions', 'first_seen', 'last_seen', 'scores', 'counts', 'tags'),
    ('tags',), ('positions',), ('vectors', 'scores'), ('kinds', 'first_seen', 'last_seen'),
    ('counts',)])
def test_update_batch_equals_update_one_by_one(data: dict, fields: tuple[str, ...]) -> None:
    single, batch = _build(data), _build(data)
    singular = {'vectors': 'vector', 'kinds': 'kind', 'positions': 'position',
                'first_seen': 'first_seen', 'last_seen': 'last_seen', 'scores': 'score',
                'counts': 'count', 'tags': 'tags'}
    for seed in range(3):                   # repeated updates move tags and cells again
        change = _changes(data, seed, 150)
        for k, engram_id in enumerate(change['ids'].tolist()):
            single.update(engram_id, **{singular[f]: change[f][k] for f in fields})
        batch.update_batch(change['ids'], **{f: change[f] for f in fields})
        assert _state(batch) == _state(single)


def test_remove_batch_equals_remove_one_by_one(data: dict) -> None:
    single, batch = _build(data), _build(data)
    change = _changes(data, 4, 100)
    for k, engram_id in enumerate(change['ids'].tolist()):
        single.update(engram_id, tags=change['tags'][k], position=change['positions'][k])
    batch.update_batch(change['ids'], tags=change['tags'], positions=change['positions'])
    gone = data['ids'][np.random.default_rng(5).choice(N, size=120, replace=False)]
    for engram_id in gone.tolist():
        single.remove(engram_id)
    batch.remove_batch(gone)
    assert _state(batch) == _state(single)
    assert len(batch) == N - 120 and not batch.has_ids(gone).any()
    # removed ids can come back, like after remove()
    batch.add(int(gone[0]), data['vectors'][0], kind=0, position=np.zeros(3), first_seen=0.0,
              last_seen=0.0, tags=['label:again'])
    assert _ids(batch, batch.filter(tags_all=['label:again'])) == {int(gone[0])}


def test_batch_changes_survive_save_and_load(data: dict, tmp_path: Path) -> None:
    index = _build(data)
    change = _changes(data, 6, 200)
    index.update_batch(change['ids'], vectors=change['vectors'], positions=change['positions'],
                       tags=change['tags'], scores=change['scores'])
    index.remove_batch(change['ids'][:50])
    index.save(tmp_path)
    assert _state(EngramIndex.load(tmp_path)) == _state(index)


@pytest.mark.parametrize('call, error', [
    (lambda ix, d: ix.update_batch([10, 11], scores=[0.1, 0.2]), KeyError),     # 11 unknown
    (lambda ix, d: ix.remove_batch([10, 11]), KeyError),
    (lambda ix, d: ix.update_batch([10, 13, 10], scores=[0.1, 0.2, 0.3]), ValueError),
    (lambda ix, d: ix.remove_batch([13, 13]), ValueError),
    (lambda ix, d: ix.update_batch([10, 13], scores=[0.1]), ValueError),
    (lambda ix, d: ix.update_batch([10, 13], scores=[0.1, np.nan]), ValueError),
    (lambda ix, d: ix.update_batch([10, 13], positions=np.zeros((2, 2))), ValueError),
    (lambda ix, d: ix.update_batch([10, 13], positions=[[0, 0, 0], [0, np.inf, 0]]),
     ValueError),
    (lambda ix, d: ix.update_batch([10, 13], kinds=[1, 256]), ValueError),
    (lambda ix, d: ix.update_batch([10, 13], vectors=np.zeros((2, DIM))), ValueError),
    (lambda ix, d: ix.update_batch([10, 13], vectors=d['vectors'][:3]), ValueError),
    (lambda ix, d: ix.update_batch([10, 13], tags=[['label:fresh'], 'label:mug']), TypeError),
    (lambda ix, d: ix.update_batch([10, 13], tags='label:mug'), TypeError),
    (lambda ix, d: ix.update_batch([10, 13], tags=[['label:fresh']]), ValueError),
    (lambda ix, d: ix.update_batch([10.0, 13.0], scores=[0.1, 0.2]), TypeError),
    (lambda ix, d: ix.remove_batch(['10']), TypeError),
], ids=['update-unknown', 'remove-unknown', 'update-duplicate', 'remove-duplicate',
        'short-column', 'nan-score', 'position-shape', 'inf-position', 'kind-range',
        'zero-vector', 'vector-rows', 'tags-one-string', 'tags-string', 'tag-rows',
        'float-ids', 'string-ids'])
def test_bad_batch_raises_and_changes_nothing(data: dict, call, error: type) -> None:
    index = _build(data)
    index.remove(16)
    before = _state(index)
    with pytest.raises(error):
        call(index, data)
    assert _state(index) == before
    assert 'label:fresh' not in {t for s in index.live_slots() for t in index.tags_of(s)}


def test_a_removed_id_is_unknown_to_the_batch_calls(index: EngramIndex) -> None:
    index.remove(13)
    with pytest.raises(KeyError, match='13'):
        index.update_batch([10, 13], scores=[0.1, 0.2])
    with pytest.raises(KeyError, match='13'):
        index.remove_batch([13])


def test_empty_batches_change_nothing(index: EngramIndex) -> None:
    before = _state(index)
    index.update_batch([], scores=[])
    index.remove_batch(np.zeros(0, dtype=np.int64))
    assert _state(index) == before


def test_has_ids(index: EngramIndex) -> None:
    index.remove(13)
    np.testing.assert_array_equal(index.has_ids([10, 11, 13, 16, 10**12]),
                                  [True, False, False, True, False])
    assert index.has_ids([]).shape == (0,)


def test_memory_bytes_grows(data: dict) -> None:
    small = EngramIndex(DIM)
    assert _build(data).memory_bytes() > small.memory_bytes()


@pytest.mark.parametrize('batch', [False, True], ids=['one-by-one', 'batch'])
@pytest.mark.parametrize('radius', [0.3, 1.0, 3.9, 4.0, 9.5, 40.0, 2000.0])
@pytest.mark.parametrize('cell_size', [0.5, 4.0])
def test_radius_filter_through_the_grid_matches_brute_force(radius: float, cell_size: float,
                                                            batch: bool) -> None:
    """The spatial grid (and its fallback for huge radii) keeps exactly the engrams within
    the radius, also after positions move and engrams are removed (one by one or batched)."""
    rng = np.random.default_rng(11)
    n = 3000
    index = EngramIndex(8, cell_size=cell_size)
    pos = rng.uniform(-60, 60, size=(n, 3)) * (1, 1, 0.05)
    index.add_batch(np.arange(1, n + 1), rng.normal(size=(n, 8)),
                    kinds=np.zeros(n, dtype=np.int64), positions=pos,
                    first_seen=np.zeros(n), last_seen=np.zeros(n), tags=[('label:a',)] * n)
    moved = np.arange(1, n + 1, 7)                   # move some across cells
    pos[moved - 1] += (5.3, -2.1, 0.0)
    removed = set(range(2, n + 1, 11))
    if batch:
        index.update_batch(moved, positions=pos[moved - 1])
        index.remove_batch(sorted(removed))
    else:
        for engram_id in moved.tolist():
            index.update(engram_id, position=pos[engram_id - 1])
        for engram_id in removed:
            index.remove(engram_id)
    for center in (np.zeros(3), np.array([17.3, -41.0, 0.2]), np.array([-59.0, 59.0, 0.0])):
        stored = pos.astype(np.float32).astype(np.float64)
        inside = np.linalg.norm(stored - center, axis=1) <= radius
        expected = {i + 1 for i in np.flatnonzero(inside)} - removed
        for kwargs in ({}, {'tags_all': ('label:a',)}):
            slots = index.filter(center=center, radius=radius, **kwargs)
            assert set(index.ids_of(slots).tolist()) == expected
