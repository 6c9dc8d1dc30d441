"""Tests of engram_ros.core.ranking: stage-2 ordering and per-stage scores over a real index."""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core.index import EngramIndex
from engram_ros.core.query import RecallQuery
from engram_ros.core.ranking import rank
from engram_ros.core.ranking import RankingWeights
from engram_ros.core.ranking import support_score

DIM = 16
T0 = 1.7e9
N = 40


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def build_index(n: int = N, seed: int = 0, **columns) -> EngramIndex:
    rng = np.random.default_rng(seed)
    index = EngramIndex(DIM)
    ids = np.arange(100, 100 + n, dtype=np.int64)
    tag_pool = ['label:mug', 'label:book', 'color:red', 'color:blue', 'room:kitchen']
    tags = columns.pop('tags', [tuple(t for j, t in enumerate(tag_pool) if (i >> j) & 1)
                                for i in range(n)])
    index.add_batch(
        ids, columns.pop('vectors', unit_rows(rng, n)),
        kinds=columns.pop('kinds', np.ones(n, dtype=np.int64)),
        positions=columns.pop('positions', rng.uniform(-5.0, 5.0, size=(n, 3))),
        first_seen=columns.pop('first_seen', T0 + rng.uniform(0.0, 100.0, size=n)),
        last_seen=columns.pop('last_seen', T0 + rng.uniform(100.0, 1000.0, size=n)),
        tags=tags,
        scores=columns.pop('scores', rng.uniform(0.0, 1.0, size=n).astype(np.float32)),
        counts=columns.pop('counts', None))
    assert not columns
    return index


def ids(index: EngramIndex, ranked) -> list[int]:
    return [int(i) for i in index.ids_of(ranked.slots)]


def test_vector_puts_the_nearest_first() -> None:
    rng = np.random.default_rng(1)
    vectors = unit_rows(rng, N)
    index = build_index(vectors=vectors, scores=np.full(N, 0.5, dtype=np.float32))
    for target in (0, 7, N - 1):
        query_vec = vectors[target] + 0.05 * rng.normal(size=DIM)
        query = RecallQuery(vector=query_vec, k=5)
        ranked = rank(index, query, None, (), RankingWeights(), T0 + 2000.0)
        assert ids(index, ranked)[0] == 100 + target
        assert len(ranked.slots) == 5
        # Equal usefulness everywhere: the order is the cosine order.
        q = query_vec / np.linalg.norm(query_vec)
        cosines = vectors[ranked.slots] @ q
        assert np.all(np.diff(cosines) <= 1e-3)
        assert np.all(np.diff(ranked.dense) <= 1e-9)
        np.testing.assert_allclose(ranked.dense, (cosines + 1.0) / 2.0, atol=2e-3)


def test_vector_ranks_only_candidates() -> None:
    rng = np.random.default_rng(2)
    vectors = unit_rows(rng, N)
    index = build_index(vectors=vectors)
    candidates = np.arange(10, 20, dtype=np.int64)
    ranked = rank(index, RecallQuery(vector=vectors[3], k=50), candidates, (),
                  RankingWeights(), T0)
    assert set(ranked.slots.tolist()) <= set(candidates.tolist())
    assert 103 not in ids(index, ranked)


def test_spatial_score_is_one_at_centre_and_zero_at_radius() -> None:
    radius = 2.0
    centre = np.array([1.0, -1.0, 0.5])
    offsets = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    positions = centre + np.outer(offsets, [1.0, 0.0, 0.0])
    index = build_index(n=5, positions=positions, scores=np.full(5, 0.5, dtype=np.float32))
    query = RecallQuery(center=centre, radius=radius, k=5)
    candidates = index.filter(center=centre, radius=radius)
    assert len(candidates) == 5
    ranked = rank(index, query, candidates, (), RankingWeights(), T0)
    by_id = dict(zip(ids(index, ranked), ranked.spatial))
    for i, off in enumerate(offsets):
        assert by_id[100 + i] == pytest.approx(1.0 - off / radius)
    assert by_id[100] == 1.0 and by_id[104] == 0.0
    # Same usefulness: nearer ranks higher.
    assert ids(index, ranked) == [100, 101, 102, 103, 104]


def test_symbolic_score_is_the_fraction_of_query_tags() -> None:
    tags = [('label:mug', 'color:red'), ('label:mug',), ('color:blue',)]
    index = build_index(n=3, tags=tags, scores=np.full(3, 0.5, dtype=np.float32))
    query_tags = ('label:mug', 'color:red')
    candidates = index.filter(tags_any=query_tags)
    ranked = rank(index, RecallQuery(tags_any=query_tags), candidates, query_tags,
                  RankingWeights(), T0)
    assert ids(index, ranked) == [100, 101]
    np.testing.assert_allclose(ranked.symbolic, [1.0, 0.5])


def test_temporal_prefers_recent_within_window() -> None:
    last = T0 + np.array([10.0, 50.0, 90.0])
    index = build_index(n=3, first_seen=np.full(3, T0), last_seen=last,
                        scores=np.full(3, 0.5, dtype=np.float32))
    query = RecallQuery(t_start=T0, t_end=T0 + 100.0)
    candidates = index.filter(t_start=T0, t_end=T0 + 100.0)
    ranked = rank(index, query, candidates, (), RankingWeights(), T0 + 1e6)
    assert ids(index, ranked) == [102, 101, 100]
    np.testing.assert_allclose(ranked.temporal, [0.9, 0.5, 0.1])


def test_unused_stages_report_neutral_scores() -> None:
    index = build_index()
    candidates = index.filter(kinds=[1])
    ranked = rank(index, RecallQuery(kinds=('object',), k=N), candidates, (), RankingWeights(),
                  T0)
    assert len(ranked.slots) == N
    assert np.all(ranked.dense == 0.5)
    assert np.all(ranked.symbolic == 1.0)
    assert np.all(ranked.spatial == 1.0)
    assert np.all(ranked.temporal == 1.0)
    # Only the engram's own stages are left: usefulness and support (each seen once).
    w = RankingWeights()
    support = 1.0 - np.exp(-1.0 / w.support_scale)
    np.testing.assert_allclose(ranked.support, support)
    np.testing.assert_allclose(
        ranked.combined,
        (w.usefulness * index.scores_of(ranked.slots) + w.support * support)
        / (w.usefulness + w.support), atol=1e-6)
    # Without support, the combined score is the engram's learned score.
    ranked = rank(index, RecallQuery(kinds=('object',), k=N), candidates, (),
                  RankingWeights(support=0.0), T0)
    np.testing.assert_allclose(ranked.combined, index.scores_of(ranked.slots), atol=1e-6)


@pytest.mark.parametrize('min_score', [0.0, 0.3, 0.5, 0.7, 1.0])
def test_min_score_drops_hits(min_score: float) -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, N)
    index = build_index(vectors=vectors)
    base = rank(index, RecallQuery(vector=vectors[0], k=N), None, (), RankingWeights(), T0)
    ranked = rank(index, RecallQuery(vector=vectors[0], k=N, min_score=min_score), None, (),
                  RankingWeights(), T0)
    assert np.all(ranked.combined >= min_score)
    expected = [s for s, c in zip(base.slots.tolist(), base.combined) if c >= min_score]
    assert ranked.slots.tolist() == expected


def test_min_score_above_every_hit_gives_nothing() -> None:
    index = build_index(scores=np.full(N, 0.2, dtype=np.float32))
    ranked = rank(index, RecallQuery(kinds=('object',), min_score=0.9), index.filter(kinds=[1]),
                  (), RankingWeights(), T0)
    for arr in (ranked.slots, ranked.combined, ranked.dense, ranked.symbolic, ranked.spatial,
                ranked.temporal, ranked.support):
        assert len(arr) == 0


def _queries(index: EngramIndex, rng: np.random.Generator):
    v = rng.normal(size=DIM)
    centre = np.array([0.0, 0.0, 0.0])
    yield RecallQuery(vector=v, k=15), None, ()
    yield RecallQuery(tags_any=('label:mug', 'color:red'), k=15), \
        index.filter(tags_any=('label:mug', 'color:red')), ('label:mug', 'color:red')
    yield RecallQuery(center=centre, radius=4.0, k=15), index.filter(center=centre, radius=4.0), ()
    yield RecallQuery(t_start=T0 + 50.0, k=15), index.filter(t_start=T0 + 50.0), ()
    yield RecallQuery(t_end=T0 + 50.0, k=15), index.filter(t_end=T0 + 50.0), ()
    tags = ('label:book', 'room:kitchen')
    yield (RecallQuery(vector=v, tags_all=tags, center=centre, radius=6.0, t_start=T0,
                       t_end=T0 + 500.0, k=15),
           index.filter(tags_all=tags, center=centre, radius=6.0, t_start=T0, t_end=T0 + 500.0),
           tags)


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('weights', [
    RankingWeights(), RankingWeights(dense=1.0, symbolic=0.0, spatial=0.0, temporal=0.0,
                                     usefulness=0.0, support=0.0),
    RankingWeights(dense=3.0, symbolic=2.0, spatial=5.0, temporal=1.0, usefulness=0.5,
                   support=4.0),
    RankingWeights(dense=1.0, symbolic=1.0, spatial=1.0, temporal=1.0, usefulness=0.0),
], ids=['default', 'dense_only', 'unnormalised', 'no_usefulness'])
def test_combined_and_stage_scores_are_in_unit_interval(seed: int,
                                                        weights: RankingWeights) -> None:
    rng = np.random.default_rng(seed)
    index = build_index(seed=seed, counts=rng.integers(1, 40, size=N))
    for query, candidates, tags in _queries(index, rng):
        ranked = rank(index, query, candidates, tags, weights, T0 + 2000.0)
        n_candidates = len(index) if candidates is None else len(candidates)
        # min_score is 0: every candidate up to k comes back, whatever the weights.
        assert len(ranked.slots) == min(query.k, n_candidates)
        for arr in (ranked.combined, ranked.dense, ranked.symbolic, ranked.spatial,
                    ranked.temporal, ranked.support):
            assert np.all(np.isfinite(arr))
            assert np.all((arr >= 0.0) & (arr <= 1.0 + 1e-9))
        assert np.all(np.diff(ranked.combined) <= 1e-12), 'best first'
        if candidates is not None:
            assert set(ranked.slots.tolist()) <= set(np.asarray(candidates).tolist())


def test_usefulness_breaks_ties() -> None:
    scores = np.array([0.1, 0.9, 0.5], dtype=np.float32)
    index = build_index(n=3, scores=scores)
    ranked = rank(index, RecallQuery(kinds=('object',)), index.filter(kinds=[1]), (),
                  RankingWeights(), T0)
    assert ids(index, ranked) == [101, 102, 100]


def test_k_truncates() -> None:
    index = build_index()
    ranked = rank(index, RecallQuery(kinds=('object',), k=3), index.filter(kinds=[1]), (),
                  RankingWeights(), T0)
    assert len(ranked.slots) == 3


@pytest.mark.parametrize('query, candidates_of', [
    pytest.param(RecallQuery(kinds=('object',), k=5), lambda ix: ix.filter(kinds=[1]),
                 id='kinds_only'),
    pytest.param(RecallQuery(t_start=T0, k=5), lambda ix: ix.filter(t_start=T0),
                 id='time_only'),
])
def test_zero_weight_on_every_used_stage_still_ranks(query: RecallQuery, candidates_of) -> None:
    # A configuration that ignores usefulness (and time) must not turn a filter-only recall
    # into 0/0 = NaN scores that min_score then silently drops.
    index = build_index(scores=np.linspace(0.0, 1.0, N).astype(np.float32))
    weights = RankingWeights(dense=1.0, symbolic=1.0, spatial=1.0, temporal=0.0, usefulness=0.0,
                             support=0.0)
    ranked = rank(index, query, candidates_of(index), (), weights, T0 + 2000.0)
    assert len(ranked.slots) == 5
    assert np.all(np.isfinite(ranked.combined))
    assert np.all((ranked.combined >= 0.0) & (ranked.combined <= 1.0))


# ---------------------------------------------------------------- support (evidence)


@pytest.mark.parametrize('count, expected', [(0, 0.0), (1, 0.2835), (2, 0.4866), (5, 0.8111),
                                             (10, 0.9643), (1000, 1.0)])
def test_support_score_grows_with_observations(count: int, expected: float) -> None:
    assert support_score(np.array([count]), 3.0)[0] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize('scale', [0.0, -1.0, float('nan'), float('inf')])
def test_support_scale_must_be_positive(scale: float) -> None:
    with pytest.raises(ValueError, match='support_scale'):
        RankingWeights(support_scale=scale)


def _where_is_mug_queries(position: np.ndarray):
    """Queries a planner asks about the mug: by text tags, and by place."""
    tags = ('label:mug', 'color:red')
    yield RecallQuery(tags_any=tags, k=2), tags
    yield RecallQuery(tags_any=tags, center=position, radius=3.0, k=2), tags
    yield RecallQuery(kinds=('object',), center=position, radius=3.0, k=2), ()


@pytest.mark.parametrize('first', ['one_off', 'established'])
def test_seen_five_times_outranks_seen_once(first: str) -> None:
    # Two engrams with the same label and tags, equally useful and equally far from the query
    # centre: the one-off sighting (label noise) must not win, whichever was added first.
    counts = [1, 5] if first == 'one_off' else [5, 1]
    tags = [('label:mug', 'color:red')] * 2
    positions = np.array([[1.0, 0.0, 0.8], [-1.0, 0.0, 0.8]])
    index = build_index(n=2, tags=tags, positions=positions, counts=np.array(counts),
                        first_seen=np.full(2, T0), last_seen=np.full(2, T0 + 10.0),
                        scores=np.full(2, 0.5, dtype=np.float32))
    established = 100 + counts.index(5)
    for query, query_tags in _where_is_mug_queries(np.zeros(3)):
        candidates = index.filter(tags_any=query.tags_any, kinds=[1],
                                  center=query.center, radius=query.radius)
        ranked = rank(index, query, candidates, query_tags, RankingWeights(), T0 + 100.0)
        assert ids(index, ranked)[0] == established, query
        assert ranked.support[0] > ranked.support[1]
        assert ranked.combined[0] > ranked.combined[1]


def test_much_better_vector_match_wins_over_more_support() -> None:
    rng = np.random.default_rng(5)
    query_vec = unit_rows(rng, 1)[0]
    other = unit_rows(rng, 1)[0]
    other -= (other @ query_vec) * query_vec
    other /= np.linalg.norm(other)
    # cosine 0.95 (seen once) against cosine 0.5 (seen 50 times)
    close = 0.95 * query_vec + np.sqrt(1 - 0.95 ** 2) * other
    far = 0.5 * query_vec + np.sqrt(1 - 0.5 ** 2) * other
    index = build_index(n=2, vectors=np.stack([far, close]).astype(np.float32),
                        tags=[('label:mug',)] * 2, counts=np.array([50, 1]),
                        scores=np.full(2, 0.5, dtype=np.float32))
    ranked = rank(index, RecallQuery(vector=query_vec, tags_any=('label:mug',), k=2), None,
                  ('label:mug',), RankingWeights(), T0)
    assert ids(index, ranked) == [101, 100]
    np.testing.assert_allclose(ranked.support, support_score(np.array([1, 50]), 3.0))


@pytest.mark.parametrize('seed', range(20))
def test_top_k_is_the_stable_full_sort(seed):
    """The partial selection ranks exactly as the full stable sort it replaced: same order,
    ties in position order, NaN last."""
    from engram_ros.core.ranking import top_k
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    values = rng.integers(0, int(rng.integers(1, 50)), n) / 7.0    # many ties
    if seed % 4 == 0:
        values[rng.random(n) < 0.3] = np.nan
    for k in (1, 3, 10, 40, n + 1):
        assert np.array_equal(top_k(values, k), np.argsort(-values, kind='stable')[:k]), k
