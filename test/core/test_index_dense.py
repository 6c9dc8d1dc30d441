"""Stage 2 of the hot index: dense top-k (HNSW and exact paths) against brute force."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from engram_ros.core.index import EngramIndex

from index_cases import _brute
from index_cases import _build
from index_cases import _unit
from index_cases import DIM
from index_cases import N


def test_pair_similarities_are_dot_products_with_the_stored_vectors(index: EngramIndex) -> None:
    rng = np.random.default_rng(8)
    queries = _unit(rng, 5)
    rows = rng.integers(0, 5, 3000)
    slots = rng.integers(0, N, 3000)           # more than one decoding chunk
    expected = np.einsum('ij,ij->i', queries[rows], index.vectors_of(slots))
    np.testing.assert_allclose(index.pair_similarities(queries, rows, slots), expected,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        index.pair_similarities(queries[:, :-1], rows, slots)
    with pytest.raises(ValueError):
        index.pair_similarities(queries, rows[:-1], slots)
    with pytest.raises(IndexError):
        index.pair_similarities(queries, rows + 5, slots)
    with pytest.raises(IndexError):
        index.pair_similarities(queries, rows, slots + N)


# ---------------------------------------------------------------- dense ranking


@pytest.mark.parametrize('exact_threshold', [0, 10_000], ids=['hnsw', 'exact'])
@pytest.mark.parametrize('filter_kwargs', [None, {'tags_all': ['room:kitchen']},
                                           {'tags_any': ['label:mug', 'label:cup']}])
def test_dense_topk_matches_brute_force(data: dict, exact_threshold: int,
                                        filter_kwargs: dict | None) -> None:
    index = _build(data, exact_threshold=exact_threshold, ef_search=200)
    rng = np.random.default_rng(4)
    cand = None if filter_kwargs is None else index.filter(**filter_kwargs)
    rows = np.arange(N) if cand is None else cand
    for q in _unit(rng, 20):
        slots, sims = index.dense_topk(q, 10, cand)
        expected = _brute(data['vectors'], q, rows, 10)
        assert len(set(slots.tolist()) & set(expected.tolist())) >= 9
        assert np.all(np.diff(sims) <= 1e-6)
        np.testing.assert_allclose(sims, data['vectors'][slots] @ q, atol=2e-3)


def test_dense_topk_exact_path_is_exact(data: dict) -> None:
    index = _build(data, exact_threshold=10_000)
    rng = np.random.default_rng(5)
    cand = index.filter(tags_all=['label:mug'])
    for q in _unit(rng, 20):
        slots, _ = index.dense_topk(q, 5, cand)
        np.testing.assert_array_equal(slots, _brute(data['vectors'], q, cand, 5))


@pytest.mark.parametrize('k', [1, 3, 100])
def test_dense_topk_small_candidate_sets(index: EngramIndex, k: int) -> None:
    cand = np.array([0, 7, 42])
    slots, sims = index.dense_topk(np.ones(DIM), k, cand)
    assert slots.shape[0] == min(k, 3) and set(slots.tolist()) <= {0, 7, 42}
    assert sims.dtype == np.float32
    empty_slots, _ = index.dense_topk(np.ones(DIM), k, np.zeros(0, dtype=np.int64))
    assert empty_slots.shape[0] == 0


def test_dense_topk_rejects_bad_input(index: EngramIndex) -> None:
    with pytest.raises(ValueError):
        index.dense_topk(np.ones(DIM), 0, None)
    with pytest.raises(ValueError):
        index.dense_topk(np.ones(DIM + 1), 5, None)


def test_empty_index() -> None:
    index = EngramIndex(DIM)
    assert len(index) == 0
    slots, sims = index.dense_topk(np.ones(DIM), 5, None)
    assert slots.shape == (0,) and sims.shape == (0,)
    assert index.filter(tags_all=['x']).shape == (0,)


@pytest.mark.parametrize('exact_threshold', [0, 10_000], ids=['hnsw', 'exact'])
def test_vector_update_changes_ranking(data: dict, exact_threshold: int) -> None:
    index = _build(data, exact_threshold=exact_threshold, ef_search=200)
    q = data['vectors'][0]
    target = int(data['ids'][200])
    assert target not in index.ids_of(index.dense_topk(q, 3, None)[0])
    index.update(target, vector=q + 0.01 * data['vectors'][200])
    slots, sims = index.dense_topk(q, 3, None)
    assert target in index.ids_of(slots).tolist()
    assert sims[0] > 0.99
    np.testing.assert_allclose(np.linalg.norm(index.vectors_of([index.slot_of(target)])), 1.0,
                               atol=1e-3)


def test_filtered_recall_at_low_selectivity() -> None:
    """Filtered recall@10 on 20k vectors at 10 % and 1 % (HNSW path), 0.2 % (exact path)."""
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(6)
    n, dim = 20_000, 32
    centers = _unit(rng, 50, dim)
    vectors = centers[rng.integers(0, 50, n)] + 0.2 * _unit(rng, n, dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    u = rng.random(n).tolist()
    tags = [['s10'] * (x < 0.1) + ['s1'] * (x < 0.01) + ['s02'] * (x < 0.002) for x in u]
    index = EngramIndex(dim, exact_threshold=100, hnsw_m=16, ef_search=32, max_ef=4000,
                        filtered_ef=32)
    index.add_batch(np.arange(n), vectors, kinds=np.zeros(n), positions=np.zeros((n, 3)),
                    first_seen=np.zeros(n), last_seen=np.zeros(n), tags=tags)
    queries = centers[rng.integers(0, 50, 50)] + 0.2 * _unit(rng, 50, dim)
    for tag in ('s10', 's1', 's02'):
        cand = index.filter(tags_all=[tag])
        hits = 0
        total = 0
        for q in queries:
            slots, _ = index.dense_topk(q, 10, cand)
            expected = _brute(vectors, q, cand, 10)
            hits += len(set(slots.tolist()) & set(expected.tolist()))
            total += expected.shape[0]
        assert hits / total >= 0.95, tag
