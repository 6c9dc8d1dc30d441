"""Tests of engram_ros.core.merge: matching compatibility and soft merging."""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core.merge import compatible
from engram_ros.core.merge import identity_tags
from engram_ros.core.merge import merge
from engram_ros.core.merge import merge_clusters
from engram_ros.core.merge import merge_engrams
from engram_ros.core.merge import MergePolicy
from engram_ros.core.merge import pairs_within
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT

DIM = 8
T0 = 1.7e9


def cov(pos_var: float | tuple[float, float, float], rot_var: float = 0.1) -> np.ndarray:
    """6x6 row-major covariance with the given position and rotation variances."""
    pv = np.broadcast_to(np.asarray(pos_var, dtype=np.float64), (3,))
    c = np.diag(np.concatenate([pv, [rot_var] * 3]))
    return c.reshape(36)


def pos_var(covariance: np.ndarray) -> np.ndarray:
    return np.diag(np.asarray(covariance).reshape(6, 6))[:3]


def unit(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_engram(**kw) -> Engram:
    fields = dict(id=1, kind='object', frame_id='map', position=np.zeros(3),
                  vector=unit(np.eye(DIM)[0]), first_seen=T0, last_seen=T0,
                  tags=('label:mug',), label='mug', covariance=cov(1.0), last_access=T0)
    fields.update(kw)
    return Engram(**fields)


def make_obs(**kw) -> Observation:
    fields = dict(kind='object', frame_id='map', position=np.zeros(3), stamp=T0 + 10.0,
                  vector=unit(np.eye(DIM)[0]), tags=('label:mug',), label='mug',
                  covariance=cov(1.0))
    fields.update(kw)
    return Observation(**fields)


# ------------------------------------------------------------------------------- position


@pytest.mark.parametrize('var_engram, var_obs', [
    (1.0, 1.0), (1.0, 0.25), (0.25, 1.0), (0.01, 4.0), (4.0, 0.01), (1e-9, 1.0),
])
def test_fusion_shrinks_variance_and_moves_towards_the_more_certain(var_engram: float,
                                                                    var_obs: float) -> None:
    engram = make_engram(position=np.array([0.0, 0.0, 0.0]), covariance=cov(var_engram))
    obs = make_obs(position=np.array([1.0, -2.0, 0.5]), covariance=cov(var_obs))
    out = merge(engram, obs, MergePolicy())

    new_var = pos_var(out.covariance)
    assert np.all(new_var <= min(max(var_engram, 1e-6), var_obs) + 1e-12)
    assert np.all(new_var > 0.0)
    # Inverse-variance weighting: the fused position is the weighted mean.
    w = (1.0 / max(var_engram, 1e-6)) / (1.0 / max(var_engram, 1e-6) + 1.0 / var_obs)
    expected = w * engram.position + (1.0 - w) * obs.position
    np.testing.assert_allclose(out.position, expected, rtol=1e-9, atol=1e-12)
    d_engram = np.linalg.norm(out.position - engram.position)
    d_obs = np.linalg.norm(out.position - obs.position)
    if var_engram < var_obs:
        assert d_engram < d_obs
    elif var_obs < var_engram:
        assert d_obs < d_engram
    else:
        assert d_obs == pytest.approx(d_engram)


def test_fusion_is_per_axis() -> None:
    engram = make_engram(covariance=cov((0.01, 1.0, 1.0)))
    obs = make_obs(position=np.array([1.0, 1.0, 1.0]), covariance=cov((1.0, 0.01, 1.0)))
    out = merge(engram, obs, MergePolicy())
    assert out.position[0] < 0.05          # x: the engram is sure
    assert out.position[1] > 0.95          # y: the observation is sure
    assert out.position[2] == pytest.approx(0.5)


def test_fusion_keeps_rotation_block_and_drops_position_cross_terms() -> None:
    c = cov(1.0, rot_var=0.3).reshape(6, 6)
    c[0, 1] = c[1, 0] = 0.2
    c[0, 4] = c[4, 0] = 0.05
    engram = make_engram(covariance=c.reshape(36))
    out = merge(engram, make_obs(position=np.ones(3)), MergePolicy())
    oc = out.covariance.reshape(6, 6)
    np.testing.assert_array_equal(oc[3:, 3:], c[3:, 3:])
    assert oc[0, 1] == 0.0 and oc[0, 4] == 0.0 and oc[4, 0] == 0.0
    np.testing.assert_array_equal(oc, oc.T)


def test_repeated_evidence_keeps_shrinking_but_never_to_zero() -> None:
    engram = make_engram(covariance=cov(1e-6))
    previous = pos_var(engram.covariance)
    for i in range(5):
        engram = merge(engram, make_obs(covariance=cov(1e-7), stamp=T0 + i), MergePolicy())
        current = pos_var(engram.covariance)
        assert np.all(current <= previous) and np.all(current > 0.0)
        previous = current


def test_merge_does_not_modify_inputs() -> None:
    engram = make_engram()
    obs = make_obs(position=np.array([0.3, 0.0, 0.0]), vector=unit(np.eye(DIM)[1]),
                   tags=('label:mug', 'color:red'), evidence=('file:///a.jpg',))
    before_cov = engram.covariance.copy()
    before_vec = engram.vector.copy()
    obs_pos = obs.position.copy()
    merge(engram, obs, MergePolicy())
    np.testing.assert_array_equal(engram.covariance, before_cov)
    np.testing.assert_array_equal(engram.vector, before_vec)
    np.testing.assert_array_equal(engram.position, np.zeros(3))
    np.testing.assert_array_equal(obs.position, obs_pos)
    assert engram.observation_count == 1 and engram.tags == ('label:mug',)


# ------------------------------------------------------------------------------- vector


@pytest.mark.parametrize('count', [1, 2, 5, 50])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_vector_stays_unit_and_moves_towards_observation(count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    engram = make_engram(vector=unit(rng.normal(size=DIM)), observation_count=count)
    obs_vector = rng.normal(size=DIM) * 3.0     # not normalised: merge must normalise it
    out = merge(engram, make_obs(vector=obs_vector), MergePolicy())
    assert out.vector.dtype == np.float32
    assert np.linalg.norm(out.vector) == pytest.approx(1.0, abs=1e-5)
    target = unit(obs_vector)
    assert float(out.vector @ target) > float(engram.vector @ target)
    # Count-weighted: the engram's history pulls it back in proportion to its count.
    expected = unit(count * engram.vector + target)
    np.testing.assert_allclose(out.vector, expected, atol=1e-6)


def test_vector_moves_less_with_more_history() -> None:
    obs = make_obs(vector=unit(np.eye(DIM)[1]))
    target = unit(obs.vector)
    moves = [float(merge(make_engram(observation_count=n), obs, MergePolicy()).vector @ target)
             for n in (1, 2, 4, 8)]
    assert moves == sorted(moves, reverse=True)


# ------------------------------------------------------------------------------- bookkeeping


def test_counts_times_confidence_and_label() -> None:
    engram = make_engram(first_seen=T0, last_seen=T0 + 5.0, last_access=T0 + 5.0,
                         observation_count=3, confidence=0.9, label='')
    later = merge(engram, make_obs(stamp=T0 + 20.0, confidence=0.5, label='mug'), MergePolicy())
    assert later.observation_count == 4
    assert later.first_seen == T0 and later.last_seen == T0 + 20.0
    assert later.last_access == T0 + 20.0
    assert later.confidence == pytest.approx((3 * 0.9 + 0.5) / 4)
    assert later.label == 'mug'
    # An observation stamped before the engram (out of order) extends first_seen only.
    earlier = merge(engram, make_obs(stamp=T0 - 30.0), MergePolicy())
    assert earlier.first_seen == T0 - 30.0 and earlier.last_seen == T0 + 5.0
    assert earlier.last_access == T0 + 5.0


def test_label_is_not_overwritten() -> None:
    out = merge(make_engram(label='mug'), make_obs(label='cup'), MergePolicy())
    assert out.label == 'mug'


@pytest.mark.parametrize('max_evidence', [1, 3, 8])
def test_evidence_is_capped_deduplicated_and_keeps_the_most_recent(max_evidence: int) -> None:
    old = tuple(f'file:///old{i}.jpg' for i in range(5))
    new = ('file:///old4.jpg', 'file:///new0.jpg', 'file:///new1.jpg')
    out = merge(make_engram(evidence=old), make_obs(evidence=new),
                MergePolicy(max_evidence=max_evidence))
    expected = (old + new[1:])[-max_evidence:]
    assert out.evidence == expected
    assert len(set(out.evidence)) == len(out.evidence)


@pytest.mark.parametrize('max_tags', [1, 2, 3, 5])
def test_tag_cap_keeps_identity_tags(max_tags: int) -> None:
    engram = make_engram(tags=('color:red', 'label:mug', 'room:kitchen', 'vw:1', 'vw:2'))
    obs = make_obs(tags=('label:cup', 'size:small', 'vw:3', 'vw:4'))
    out = merge(engram, obs, MergePolicy(max_tags=max_tags))
    assert {'label:mug', 'label:cup'} <= set(out.tags)
    assert len(out.tags) == max(max_tags, 2)
    assert list(out.tags) == sorted(set(out.tags))


def test_tags_union_under_the_cap() -> None:
    out = merge(make_engram(tags=('label:mug', 'color:red')),
                make_obs(tags=('label:mug', 'room:kitchen')), MergePolicy())
    assert out.tags == ('color:red', 'label:mug', 'room:kitchen')


def test_merged_sightings_of_different_size_classes_keep_one_the_largest() -> None:
    # a table seen whole once (large) and in part (small, medium): one size, the merged extent's
    policy = MergePolicy()
    table = make_engram(tags=('label:table', 'size:small'), label='table')
    for size in ('large', 'medium', 'small'):
        table = merge(table, make_obs(tags=('label:table', f'size:{size}'), label='table'),
                      policy)
    assert table.tags == ('label:table', 'size:large')
    # consolidation's cluster path folds tags the same way; an engram stored with several
    # (before this rule) keeps one at its next merge
    piled = make_engram(id=2, tags=('label:table', 'size:large', 'size:medium', 'size:small'))
    keep = make_engram(id=3, tags=('label:table', 'size:medium'))
    (fused,) = merge_clusters([(keep, [piled])], policy)
    assert [t for t in fused.tags if t.startswith('size:')] == ['size:large']
    assert merge_engrams(keep, piled, policy).tags == ('label:table', 'size:large')


@pytest.mark.parametrize('promote_after', [2, 3, 5])
def test_promotion_at_promote_after(promote_after: int) -> None:
    policy = MergePolicy(promote_after=promote_after)
    engram = make_engram()
    assert engram.tier == TIER_SHORT
    for i in range(2, promote_after + 2):
        engram = merge(engram, make_obs(stamp=T0 + i), policy)
        assert engram.observation_count == i
        assert engram.tier == (TIER_LONG if i >= promote_after else TIER_SHORT), i


def test_long_term_engram_stays_long_term() -> None:
    out = merge(make_engram(tier=TIER_LONG), make_obs(), MergePolicy(promote_after=10))
    assert out.tier == TIER_LONG


# ------------------------------------------------------------------------------- compatible


@pytest.mark.parametrize('a, b, expected', [
    (('label:mug',), ('label:bowl',), False),
    (('label:mug', 'color:red'), ('label:bowl', 'color:red'), False),
    (('label:mug',), ('label:mug', 'color:red'), True),
    (('label:mug', 'color:red'), ('label:mug', 'color:blue'), True),
    ((), ('label:mug',), True),
    (('color:red',), ('label:mug',), True),
    (('label:mug',), ('color:blue', 'room:kitchen'), True),
    ((), (), True),
    (('sound:doorbell',), ('sound:alarm',), False),
    (('sound:doorbell',), ('sound:doorbell', 'room:hallway'), True),
    (('label:mug', 'label:cup'), ('label:cup',), True),
])
def test_compatible(a: tuple[str, ...], b: tuple[str, ...], expected: bool) -> None:
    assert compatible(a, b) is expected
    assert compatible(b, a) is expected


def test_identity_tags() -> None:
    assert identity_tags(('label:mug', 'color:red', 'sound:alarm', 'vw:3')) == \
        frozenset({'label:mug', 'sound:alarm'})


# ------------------------------------------------------------------------------- merge_engrams


def test_merge_engrams_adds_counts() -> None:
    rng = np.random.default_rng(7)
    keep = make_engram(id=1, vector=unit(rng.normal(size=DIM)), observation_count=3,
                       first_seen=T0, last_seen=T0 + 10.0, recall_count=2, score=0.3,
                       covariance=cov(0.5))
    other = make_engram(id=2, vector=unit(rng.normal(size=DIM)), observation_count=5,
                        position=np.array([0.2, 0.0, 0.0]), first_seen=T0 - 50.0,
                        last_seen=T0 + 40.0, recall_count=4, score=0.8, pinned=True,
                        tags=('label:mug', 'color:red'), covariance=cov(0.5))
    out = merge_engrams(keep, other, MergePolicy())
    assert out.id == 1
    assert out.observation_count == 8
    assert out.recall_count == 6
    assert out.first_seen == T0 - 50.0 and out.last_seen == T0 + 40.0
    assert out.score == pytest.approx(0.8)
    assert out.pinned is True
    assert out.tier == TIER_LONG
    assert set(out.tags) == {'label:mug', 'color:red'}
    np.testing.assert_allclose(out.vector, unit(3 * keep.vector + 5 * other.vector), atol=1e-6)
    np.testing.assert_allclose(out.position, [0.1, 0.0, 0.0])
    assert np.all(pos_var(out.covariance) < 0.5)
    # Inputs untouched.
    assert keep.observation_count == 3 and other.observation_count == 5


def test_merge_engrams_short_pair_below_promotion_stays_short() -> None:
    out = merge_engrams(make_engram(id=1), make_engram(id=2), MergePolicy(promote_after=3))
    assert out.observation_count == 2 and out.tier == TIER_SHORT and out.pinned is False


# ------------------------------------------------------------------------------- merge_clusters


def _duplicates(rng: np.random.Generator, first_id: int, size: int) -> list[Engram]:
    """``size`` sightings of one thing: noisy positions, variances, looks, counts, times."""
    centre = rng.uniform(-5.0, 5.0, size=3)
    look = rng.normal(size=DIM)
    return [make_engram(
        id=first_id + k, position=centre + rng.normal(scale=0.05, size=3),
        vector=unit(look + 0.2 * rng.normal(size=DIM)),
        covariance=cov(tuple(rng.uniform(0.01, 1.0, size=3)), rot_var=float(rng.uniform(0.1, 1))),
        observation_count=int(rng.integers(1, 5)), confidence=float(rng.uniform(0.2, 1.0)),
        first_seen=T0 + float(rng.uniform(-100, 0)), last_seen=T0 + float(rng.uniform(0, 100)),
        last_access=T0 + float(rng.uniform(0, 200)), score=float(rng.uniform(0, 1)),
        recall_count=int(rng.integers(0, 3)), pinned=bool(rng.random() < 0.1),
        tags=('label:mug',) + (('color:red',) if rng.random() < 0.3 else ()),
        label='' if k == 0 and rng.random() < 0.5 else 'mug',
        keyframe_id='' if rng.random() < 0.7 else f'kf{first_id + k}',
        evidence=() if size > 4 or rng.random() < 0.5 else (f'file:///e/{first_id + k}.png',),
        tier=TIER_SHORT) for k in range(size)]


@pytest.mark.parametrize('sizes', [[2], [2, 3, 5, 1, 4, 2], [70, 3, 2]],
                         ids=['one', 'mixed', 'one-huge'])
def test_merge_clusters_fuses_each_cluster_by_definition(sizes: list[int]) -> None:
    """Every number as defined (inverse-variance pose, count-weighted vector and confidence,
    extremes of times), and the pose as :func:`merge_engrams` folding one by one gives it."""
    rng = np.random.default_rng(len(sizes))
    policy = MergePolicy()
    clusters = []
    for k, size in enumerate(sizes):
        members = _duplicates(rng, 100 * k + 1, size)
        clusters.append((members[0], members[1:]))
    before = [[m.copy() for m in (keep, *others)] for keep, others in clusters]
    fused = merge_clusters(clusters, policy)
    assert len(fused) == len(clusters)
    for (keep, others), out, members in zip(clusters, fused, before):
        if not others:
            assert out is keep
            continue
        var = np.array([pos_var(m.covariance) for m in members])
        var_new = 1.0 / np.sum(1.0 / var, axis=0)
        counts = np.array([m.observation_count for m in members], dtype=float)
        assert out.id == keep.id
        np.testing.assert_allclose(out.position, var_new * np.sum(
            [m.position / v for m, v in zip(members, var)], axis=0), rtol=1e-12)
        np.testing.assert_allclose(pos_var(out.covariance), var_new, rtol=1e-12)
        c = out.covariance.reshape(6, 6)
        assert np.all(c[:3, 3:] == 0.0) and np.all(c[3:, :3] == 0.0)
        np.testing.assert_array_equal(c[3:, 3:], keep.covariance.reshape(6, 6)[3:, 3:])
        np.testing.assert_allclose(out.vector, unit(np.sum(
            counts[:, None] * [m.vector for m in members], axis=0)), atol=1e-6)
        assert out.vector.dtype == np.float32
        assert out.observation_count == int(counts.sum())
        assert out.confidence == pytest.approx(
            np.dot(counts, [m.confidence for m in members]) / counts.sum())
        assert out.first_seen == min(m.first_seen for m in members)
        assert out.last_seen == max(m.last_seen for m in members)
        assert out.last_access == max(m.last_access for m in members)
        assert out.score == max(m.score for m in members)
        assert out.pinned == any(m.pinned for m in members)
        assert out.recall_count == sum(m.recall_count for m in members)
        assert out.label == next((m.label for m in members if m.label), '')
        assert out.keyframe_id == next((m.keyframe_id for m in members if m.keyframe_id), '')
        assert out.evidence == tuple(dict.fromkeys(e for m in members for e in m.evidence))[
            -policy.max_evidence:]
        assert out.tier == TIER_LONG
        folded = keep
        for other in others:
            folded = merge_engrams(folded, other, policy)
        np.testing.assert_allclose(out.position, folded.position, rtol=1e-9)
        np.testing.assert_allclose(out.covariance, folded.covariance, rtol=1e-9)
        assert out.tags == folded.tags
        assert (out.observation_count, out.first_seen, out.last_seen) == \
            (folded.observation_count, folded.first_seen, folded.last_seen)
    for (keep, others), members in zip(clusters, before):       # inputs untouched
        for m, b in zip((keep, *others), members):
            np.testing.assert_array_equal(m.position, b.position)
            np.testing.assert_array_equal(m.vector, b.vector)
            np.testing.assert_array_equal(m.covariance, b.covariance)
            assert (m.observation_count, m.tags, m.tier) == (b.observation_count, b.tags,
                                                             b.tier)


def test_merge_clusters_caps_tags_keeping_identity() -> None:
    keep = make_engram(id=1, tags=('label:mug',) + tuple(f'vw:{i}' for i in range(6)))
    other = make_engram(id=2, tags=('label:mug', 'color:red') + tuple(f'vw:{i}' for i in
                                                                       range(6, 12)))
    out, = merge_clusters([(keep, [other, other.copy()])], MergePolicy(max_tags=5))
    assert 'label:mug' in out.tags and len(out.tags) == 5
    assert out.tags == merge_engrams(merge_engrams(keep, other, MergePolicy(max_tags=5)),
                                     other, MergePolicy(max_tags=5)).tags


def test_merge_clusters_of_nothing() -> None:
    assert merge_clusters([], MergePolicy()) == []


# ------------------------------------------------------------------------------- pairs_within


@pytest.mark.parametrize('radius', [0.05, 0.5, 2.0, 30.0])
def test_pairs_within_finds_exactly_the_close_pairs(radius: float) -> None:
    rng = np.random.default_rng(5)
    centres = rng.uniform(-20.0, 20.0, size=(60, 3))
    points = centres[rng.integers(0, 60, 400)] + rng.normal(scale=0.3, size=(400, 3))
    queries = np.vstack([points[::3], rng.uniform(-25.0, 25.0, size=(50, 3))])
    qi, pj = pairs_within(queries, points, radius)
    d = np.linalg.norm(queries[:, None, :] - points[None, :, :], axis=2)
    expected = set(zip(*np.nonzero(d <= radius)))
    got = list(zip(qi.tolist(), pj.tolist()))
    assert len(got) == len(set(got))
    assert set(got) == {(int(a), int(b)) for a, b in expected}


def test_pairs_within_of_nothing() -> None:
    empty = np.zeros((0, 3))
    for qi, pj in (pairs_within(empty, np.ones((3, 3)), 1.0),
                   pairs_within(np.ones((3, 3)), empty, 1.0),
                   pairs_within(np.ones((3, 3)), np.ones((3, 3)), 0.0)):
        assert qi.shape == pj.shape == (0,)


# ------------------------------------------------------------------------------- unknown pose


def test_an_all_zero_covariance_is_unknown_and_a_measured_sighting_dominates() -> None:
    """ROS fills an unknown covariance with zeros: that is no evidence, not certainty."""
    unknown = make_engram(position=np.array([5.0, -3.0, 1.0]), covariance=np.zeros(36))
    measured = make_obs(position=np.array([1.0, 2.0, 0.5]), covariance=cov(0.01))
    out = merge(unknown, measured, MergePolicy())
    np.testing.assert_allclose(out.position, [1.0, 2.0, 0.5], atol=0.01)
    assert np.all(pos_var(out.covariance) <= 0.01)
    # Either order, and in a consolidation cluster.
    engram = make_engram(position=np.array([1.0, 2.0, 0.5]), covariance=cov(0.01))
    out = merge(engram, make_obs(position=np.array([5.0, -3.0, 1.0]),
                                 covariance=np.zeros(36)), MergePolicy())
    np.testing.assert_allclose(out.position, [1.0, 2.0, 0.5], atol=0.01)
    fused = merge_clusters([(unknown, [make_engram(id=2, position=np.array([1.0, 2.0, 0.5]),
                                                   covariance=cov(0.01))])], MergePolicy())[0]
    np.testing.assert_allclose(fused.position, [1.0, 2.0, 0.5], atol=0.01)


def test_two_unknown_covariances_average_and_stay_unknown() -> None:
    a = make_engram(position=np.array([0.0, 0.0, 0.0]), covariance=np.zeros(36))
    b = make_obs(position=np.array([2.0, 0.0, 0.0]), covariance=np.zeros(36))
    out = merge(a, b, MergePolicy())
    np.testing.assert_allclose(out.position, [1.0, 0.0, 0.0])
    assert not np.any(out.covariance)
    other = make_engram(id=2, position=np.array([2.0, 0.0, 0.0]), covariance=np.zeros(36))
    fused = merge_clusters([(a, [other])], MergePolicy())[0]
    np.testing.assert_allclose(fused.position, [1.0, 0.0, 0.0])
    assert not np.any(fused.covariance)
