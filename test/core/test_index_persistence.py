"""Saving and loading the hot index: round trips, damaged caches, and a cache written by the
format-2 code before the package split, which still loads and answers exactly as it did (the
cache under ``test/fixtures/index_v2`` was written by ``engram_ros/core/index.py`` at d893798;
see ``generate.py`` there)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.index import EngramIndex
from engram_ros.core.index import FORMAT_VERSION
from engram_ros.core.index import IndexLoadError

from index_cases import _build
from index_cases import _ids
from index_cases import _unit

FIXTURE = Path(__file__).resolve().parents[1] / 'fixtures' / 'index_v2'


@pytest.fixture(scope='module')
def expected() -> dict:
    return json.loads((FIXTURE / 'expected.json').read_text(encoding='utf-8'))


def _columns(index: EngramIndex) -> dict:
    slots = index.live_slots()
    return {
        'len': len(index), 'slot_count': index.slot_count,
        'ids': index.ids_of(slots).tolist(),
        'positions': index.positions_of(slots).tolist(),
        'first': index.first_seen_of(slots).tolist(),
        'last': index.last_seen_of(slots).tolist(),
        'scores': index.scores_of(slots).tolist(), 'counts': index.counts_of(slots).tolist(),
        'kinds': index.kinds_of(slots).tolist(),
        'tags': [list(index.tags_of(int(s))) for s in slots],
        'vectors': index.vectors_of(slots).tolist(),
    }


def _fixture_answers(index: EngramIndex, queries: list[dict]) -> list[dict]:
    out = []
    for q in queries:
        cand = None if q['filter'] is None else index.filter(**q['filter'])
        slots, sims = index.dense_topk(np.asarray(q['vector']), q['k'], cand)
        out.append({'candidates': None if cand is None else index.ids_of(cand).tolist(),
                    'ids': index.ids_of(slots).tolist(), 'sims': sims.tolist()})
    return out


def assert_same_answers(got: list[dict], expected: list[dict]) -> None:
    """The same candidates and ids in the same order; similarities equal to float32
    rounding (faiss sums the products in an order that depends on the CPU's SIMD width, so
    the last bit differs between machines)."""
    assert [(a['candidates'], a['ids']) for a in got] == \
        [(a['candidates'], a['ids']) for a in expected]
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a['sims'], e['sims'], rtol=0, atol=1e-6)


def test_a_cache_written_by_the_old_index_loads_and_answers_the_same(expected: dict) -> None:
    index = EngramIndex.load(FIXTURE / 'cache')
    assert index.dim == 8 and index.exact_threshold == 16 and index.cell_size == 2.0
    assert _columns(index) == {k: v for k, v in expected.items()
                               if k not in ('queries', 'answers')}
    assert_same_answers(_fixture_answers(index, expected['queries']), expected['answers'])


def test_a_resaved_old_cache_keeps_its_layout(expected: dict, tmp_path: Path) -> None:
    index = EngramIndex.load(FIXTURE / 'cache')
    index.save(tmp_path / 'again')
    old_meta = json.loads((FIXTURE / 'cache' / 'meta.json').read_text(encoding='utf-8'))
    new_meta = json.loads((tmp_path / 'again' / 'meta.json').read_text(encoding='utf-8'))
    assert new_meta['format'] == old_meta['format'] == FORMAT_VERSION
    assert (tmp_path / 'again' / 'hnsw.faiss').read_bytes() == \
        (FIXTURE / 'cache' / 'hnsw.faiss').read_bytes()
    for meta in (old_meta, new_meta):
        meta['sha256'].pop('columns.npz')      # a zip member carries its write time
    assert new_meta == old_meta
    with np.load(FIXTURE / 'cache' / 'columns.npz') as old, \
            np.load(tmp_path / 'again' / 'columns.npz') as new:
        assert old.files == new.files
        for key in old.files:
            assert old[key].dtype == new[key].dtype
            np.testing.assert_array_equal(old[key], new[key])
    assert_same_answers(_fixture_answers(EngramIndex.load(tmp_path / 'again'),
                                         expected['queries']), expected['answers'])


def test_the_old_cache_keeps_working_after_writes(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / 'cache', tmp_path / 'cache')
    index = EngramIndex.load(tmp_path / 'cache')
    index.add(1000, np.ones(8), kind=1, position=np.zeros(3), first_seen=5.0, last_seen=6.0,
              tags=['label:mug'])
    index.remove_batch([5, 13])
    assert 1000 in index and 5 not in index
    assert 1000 in set(index.ids_of(index.filter(tags_all=['label:mug'])).tolist())


# ---------------------------------------------------------------- round trips (new caches)


def _answers(index: EngramIndex, queries: np.ndarray) -> list:
    out = []
    for kwargs in (None, {'tags_all': ['label:mug']}, {'tags_any': ['room:hall'],
                                                       'kinds': [1, 3]}):
        cand = None if kwargs is None else index.filter(**kwargs)
        for q in queries:
            slots, sims = index.dense_topk(q, 7, cand)
            out.append((index.ids_of(slots).tolist(), sims.tolist()))
    return out


@pytest.mark.parametrize('exact_threshold', [0, 10_000], ids=['hnsw', 'exact'])
def test_save_load_round_trip(data: dict, tmp_path: Path, exact_threshold: int) -> None:
    index = _build(data, exact_threshold=exact_threshold)
    index.remove(13)
    index.update(16, tags=['label:mug'], score=0.9, vector=data['vectors'][3], count=7)
    queries = _unit(np.random.default_rng(7), 10)
    index.save(tmp_path / 'ix')
    loaded = EngramIndex.load(tmp_path / 'ix')
    assert len(loaded) == len(index) and 13 not in loaded and 16 in loaded
    assert loaded.exact_threshold == exact_threshold
    live = index.live_slots()
    np.testing.assert_array_equal(loaded.counts_of(live), index.counts_of(live))
    assert loaded.counts_of([loaded.slot_of(16)])[0] == 7
    assert _answers(loaded, queries) == _answers(index, queries)
    assert loaded.tags_of(loaded.slot_of(16)) == ('label:mug',)
    # the loaded index keeps working
    loaded.add(5, data['vectors'][9], kind=0, position=np.zeros(3), first_seen=0.0,
               last_seen=0.0, tags=['label:mug'])
    assert 5 in _ids(loaded, loaded.filter(tags_all=['label:mug']))


@pytest.mark.parametrize('damage', ['truncate_faiss', 'flip_columns', 'delete_meta',
                                    'delete_faiss', 'garble_meta'])
def test_load_damaged_raises(index: EngramIndex, tmp_path: Path, damage: str) -> None:
    directory = tmp_path / 'ix'
    index.save(directory)
    if damage == 'truncate_faiss':
        path = directory / 'hnsw.faiss'
        path.write_bytes(path.read_bytes()[:100])
    elif damage == 'flip_columns':
        path = directory / 'columns.npz'
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == 'delete_meta':
        (directory / 'meta.json').unlink()
    elif damage == 'delete_faiss':
        (directory / 'hnsw.faiss').unlink()
    else:
        (directory / 'meta.json').write_text('{not json', encoding='utf-8')
    with pytest.raises(IndexLoadError):
        EngramIndex.load(directory)


def test_load_of_a_format_1_index_raises(index: EngramIndex, tmp_path: Path) -> None:
    # Format 1 had no observation-count column: the store rebuilds it from the database.
    directory = tmp_path / 'ix'
    index.save(directory)
    meta = json.loads((directory / 'meta.json').read_text(encoding='utf-8'))
    meta['format'] = 1
    (directory / 'meta.json').write_text(json.dumps(meta), encoding='utf-8')
    with pytest.raises(IndexLoadError, match='format 1'):
        EngramIndex.load(directory)


def test_load_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError):
        EngramIndex.load(tmp_path / 'nothing')


def test_grid_survives_save_and_load(tmp_path) -> None:
    rng = np.random.default_rng(12)
    index = EngramIndex(8, cell_size=2.0)
    pos = rng.uniform(-20, 20, size=(500, 3))
    index.add_batch(np.arange(1, 501), rng.normal(size=(500, 8)),
                    kinds=np.zeros(500, dtype=np.int64), positions=pos,
                    first_seen=np.zeros(500), last_seen=np.zeros(500), tags=[()] * 500)
    index.remove(5)
    index.save(tmp_path)
    loaded = EngramIndex.load(tmp_path)
    assert loaded.cell_size == 2.0
    center = np.array([1.0, 2.0, 0.0])
    assert np.array_equal(loaded.filter(center=center, radius=6.0),
                          index.filter(center=center, radius=6.0))
