"""A saved index cache written by the format-2 code before the package split still loads and
answers exactly as it did (the cache under ``test/fixtures/index_v2`` was written by
``engram_ros/core/index.py`` at d893798; see ``generate.py`` there)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.index import EngramIndex
from engram_ros.core.index import FORMAT_VERSION

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


def _answers(index: EngramIndex, queries: list[dict]) -> list[dict]:
    out = []
    for q in queries:
        cand = None if q['filter'] is None else index.filter(**q['filter'])
        slots, sims = index.dense_topk(np.asarray(q['vector']), q['k'], cand)
        out.append({'candidates': None if cand is None else index.ids_of(cand).tolist(),
                    'ids': index.ids_of(slots).tolist(), 'sims': sims.tolist()})
    return out


def test_a_cache_written_by_the_old_index_loads_and_answers_the_same(expected: dict) -> None:
    index = EngramIndex.load(FIXTURE / 'cache')
    assert index.dim == 8 and index.exact_threshold == 16 and index.cell_size == 2.0
    assert _columns(index) == {k: v for k, v in expected.items()
                               if k not in ('queries', 'answers')}
    assert _answers(index, expected['queries']) == expected['answers']


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
    assert _answers(EngramIndex.load(tmp_path / 'again'), expected['queries']) == \
        expected['answers']


def test_the_old_cache_keeps_working_after_writes(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE / 'cache', tmp_path / 'cache')
    index = EngramIndex.load(tmp_path / 'cache')
    index.add(1000, np.ones(8), kind=1, position=np.zeros(3), first_seen=5.0, last_seen=6.0,
              tags=['label:mug'])
    index.remove_batch([5, 13])
    assert 1000 in index and 5 not in index
    assert 1000 in set(index.ids_of(index.filter(tags_all=['label:mug'])).tolist())
