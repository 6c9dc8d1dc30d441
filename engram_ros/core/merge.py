"""Where engrams are merged: soft-merging an observation into the engram it matches, and
fusing the duplicates consolidation found (:mod:`engram_ros.core.duplicates` finds them).

Matching is overlap-aware so that similar-but-different things do not interfere: a candidate
must be of the same kind, lie within a kind-specific radius, agree on its label tags (two mugs
are both ``label:mug``; a mug and a bowl never merge), and have a similar context vector.
Merging fuses the pose by inverse variance (so the uncertainty shrinks with evidence), averages
the context vector by observation count, and keeps first/last seen, tags (one size class:
:func:`one_size`) and evidence. The evidence list is capped (:attr:`MergePolicy.max_evidence`,
the most recent kept): what falls off is named by :func:`dropped_evidence`, and the store
deletes those files once the merged engram is committed, unless another engram still
references them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from dataclasses import field
from typing import Sequence

import numpy as np

# identity_tags, compatible and pairs_within are re-exported: they were defined here.
from engram_ros.core.duplicates import compatible  # noqa: F401
from engram_ros.core.duplicates import IDENTITY_NAMESPACES
from engram_ros.core.duplicates import identity_tags  # noqa: F401
from engram_ros.core.duplicates import pairs_within  # noqa: F401
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import normalize_vector
from engram_ros.core.model.engram import Observation
from engram_ros.core.model.engram import stack_rows
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT

#: Smallest position variance kept after fusion [m^2]: evidence never makes a pose exact.
_MIN_VARIANCE = 1e-6
#: Position variance [m^2 per axis] of a sighting whose covariance is all zeros, the ROS
#: convention for "unknown": a prior of 10 m standard deviation, so any measured sighting
#: dominates the fusion, and two unknown ones average equally (their fusion stays unknown).
UNKNOWN_POSITION_VARIANCE = 100.0


def position_variances(covariances: np.ndarray) -> np.ndarray:
    """The x, y, z variances [m^2] that weigh sightings in a fusion, ``(n, 3)`` from ``(n, 36)``
    row-major 6x6 covariances: an all-zero covariance counts as unknown
    (:data:`UNKNOWN_POSITION_VARIANCE`), other variances are kept at :data:`_MIN_VARIANCE`
    at least."""
    cov = np.asarray(covariances, dtype=np.float64).reshape(-1, 36)
    var = np.maximum(cov[:, [0, 7, 14]], _MIN_VARIANCE)
    var[~np.any(cov != 0.0, axis=1)] = UNKNOWN_POSITION_VARIANCE
    return var


def _unknown(covariance: np.ndarray) -> bool:
    return not np.any(np.asarray(covariance) != 0.0)


@dataclass
class MergePolicy:
    """Thresholds that decide when an observation reactivates an existing engram."""

    #: Radius [m] within which an observation may be the same thing, per kind.
    radius: dict[str, float] = field(default_factory=lambda: {
        'place': 1.0, 'object': 0.5, 'audio': 2.0, 'event': 1.0})
    #: Minimum cosine similarity of context vectors, per kind. Places use appearance only as a
    #: tie-breaker; objects and sounds must look or sound alike.
    min_similarity: dict[str, float] = field(default_factory=lambda: {
        'place': 0.5, 'object': 0.7, 'audio': 0.6, 'event': 0.8})
    #: Observations needed before a short-term engram is promoted to a long-term slot.
    promote_after: int = 2
    #: Evidence URIs kept per engram (the most recent ones).
    max_evidence: int = 8
    #: Sketch tags kept per engram; identity tags are always kept.
    max_tags: int = 16
    #: Label noise: a one-off sighting that looks like an engram with at least this many
    #: observations at the same place, but carries another label, is forgotten at
    #: consolidation as the detector's mistake once the robot looked there again without
    #: seeing that label (a view or visit, or that engram seen on a later visit): see
    #: ``consolidation._label_noise``. 0 disables it.
    noise_support: int = 3
    #: The radius grows with the size class of a thing (tag ``size:<class>``): the centre of a
    #: sofa or a table estimated from two far-apart views lands farther apart than a mug's.
    #: Two sightings may merge within the larger radius of the two.
    size_factor: dict[str, float] = field(default_factory=lambda: {'large': 2.0})

    def radius_for(self, kind: str, tags: tuple[str, ...] | list[str] = ()) -> float:
        """[m] merge radius of a ``kind`` thing carrying ``tags`` (its size class counts)."""
        base = float(self.radius.get(kind, 1.0))
        for tag in tags:
            if tag.startswith('size:'):
                return base * float(self.size_factor.get(tag[5:], 1.0))
        return base

    def max_radius_for(self, kind: str) -> float:
        """[m] the largest merge radius of any ``kind`` thing: what a search must cover."""
        return float(self.radius.get(kind, 1.0)) * max([1.0, *self.size_factor.values()])

    def similarity_for(self, kind: str) -> float:
        return float(self.min_similarity.get(kind, 0.8))


def merge(engram: Engram, obs: Observation, policy: MergePolicy) -> Engram:
    """Return a new engram: ``engram`` with ``obs`` soft-merged into it.

    The input engram is not modified. Position is fused by inverse variance using the diagonal
    of the position covariance; the context vector is the count-weighted mean, renormalised.
    """
    out = engram.copy()
    n = engram.observation_count

    var_old, var_obs = position_variances(np.stack([engram.covariance, obs.covariance]))
    var_new = 1.0 / (1.0 / var_old + 1.0 / var_obs)
    out.position = var_new * (engram.position / var_old + np.asarray(obs.position) / var_obs)
    if not (_unknown(engram.covariance) and _unknown(obs.covariance)):
        cov = out.covariance.reshape(6, 6)
        cov[0:3, :] = 0.0
        cov[:, 0:3] = 0.0
        cov[0, 0], cov[1, 1], cov[2, 2] = var_new
        out.covariance = cov.reshape(36)

    out.vector = normalize_vector(n * engram.vector + normalize_vector(obs.vector))
    out.observation_count = n + 1
    out.first_seen = min(engram.first_seen, obs.stamp)
    out.last_seen = max(engram.last_seen, obs.stamp)
    out.last_access = max(engram.last_access, obs.stamp)
    # Confidence: the count-weighted mean, so one poor detection does not erase a good history.
    out.confidence = float((n * engram.confidence + obs.confidence) / (n + 1))
    out.tags = _merge_tags(engram.tags, tuple(obs.tags), policy.max_tags)
    if not out.label and obs.label:
        out.label = obs.label
    if not out.keyframe_id and obs.keyframe_id:
        out.keyframe_id = obs.keyframe_id
    evidence = tuple(dict.fromkeys(engram.evidence + tuple(obs.evidence)))
    out.evidence = evidence[-policy.max_evidence:]
    if out.tier == TIER_SHORT and out.observation_count >= policy.promote_after:
        out.tier = TIER_LONG
    return out


def dropped_evidence(before: Sequence[Engram | Observation], after: Engram) -> list[str]:
    """Evidence URIs the merge of ``before`` into ``after`` dropped (first seen first): in a
    member's evidence, no longer in ``after``'s capped list."""
    kept = set(after.evidence)
    return [uri for uri in dict.fromkeys(u for m in before for u in m.evidence)
            if uri not in kept]


def merge_engrams(keep: Engram, other: Engram, policy: MergePolicy) -> Engram:
    """Fold ``other`` (a duplicate found by consolidation) into ``keep``; counts add up."""
    obs = Observation(
        kind=other.kind, frame_id=other.frame_id, position=other.position,
        stamp=other.last_seen, vector=other.vector, tags=other.tags, label=other.label,
        orientation=other.orientation, covariance=other.covariance, modality=other.modality,
        confidence=other.confidence, evidence=other.evidence)
    out = merge(keep, obs, policy)
    # merge() counted `other` as one observation; it stands for observation_count of them.
    out.observation_count = keep.observation_count + other.observation_count
    out.vector = normalize_vector(keep.observation_count * keep.vector
                                  + other.observation_count * other.vector)
    out.first_seen = min(keep.first_seen, other.first_seen)
    out.score = max(keep.score, other.score)
    out.pinned = keep.pinned or other.pinned
    out.recall_count = keep.recall_count + other.recall_count
    if out.observation_count >= policy.promote_after:
        out.tier = TIER_LONG
    return out


def merge_cluster(keep: Engram, others: list[Engram], policy: MergePolicy) -> Engram:
    """Fold several duplicates into ``keep`` at once (batch consolidation).

    Equal to folding them in one by one with :func:`merge_engrams` for the pose (inverse
    variance fusion is associative), counts, times and tags; the vector and the confidence
    are count-weighted means over all of them (folding renormalises the vector at each step,
    so it differs slightly).
    """
    if not others:
        return keep
    return merge_clusters([(keep, others)], policy)[0]


def merge_clusters(clusters: Sequence[tuple[Engram, Sequence[Engram]]],
                   policy: MergePolicy) -> list[Engram]:
    """:func:`merge_cluster` for many disjoint clusters, the numbers of all of them at once.

    Poses, vectors, counts, confidences and times of every member are stacked into arrays and
    reduced per cluster, so a consolidation pass does a few numpy calls in all instead of a
    dozen per cluster; tags, label, keyframe and evidence are folded in member order as
    :func:`merge_cluster` does. Clusters without others come back unchanged (the same object).
    """
    if not clusters:
        return []
    members = [e for keep, others in clusters for e in (keep, *others)]
    sizes = np.array([1 + len(others) for _, others in clusters], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    member_covs = stack_rows([np.asarray(e.covariance, dtype=np.float64) for e in members])
    var = position_variances(member_covs)
    all_unknown = np.logical_and.reduceat(~np.any(member_covs != 0.0, axis=1), starts)
    positions = stack_rows([e.position for e in members]).astype(np.float64)
    var_new = 1.0 / _cluster_sums(1.0 / var, starts, sizes)
    fused = var_new * _cluster_sums(positions / var, starts, sizes)
    counts = np.array([e.observation_count for e in members], dtype=np.float64)
    vectors = _vector_sums(clusters, sizes)
    norms = np.linalg.norm(vectors, axis=1)
    vectors /= np.where(norms > 0.0, norms, 1.0)[:, None]
    total = np.add.reduceat(counts, starts)
    confidence = np.add.reduceat(counts * np.array([e.confidence for e in members]),
                                 starts) / total
    first = np.minimum.reduceat(np.array([e.first_seen for e in members]), starts)
    last = np.maximum.reduceat(np.array([e.last_seen for e in members]), starts)
    access = np.maximum.reduceat(np.array([e.last_access for e in members]), starts)
    score = np.maximum.reduceat(np.array([e.score for e in members]), starts)
    recalls = np.add.reduceat(np.array([e.recall_count for e in members], dtype=np.int64),
                              starts)
    pinned = np.logical_or.reduceat(np.array([e.pinned for e in members], dtype=bool), starts)
    covs = stack_rows([keep.covariance for keep, _ in clusters]).astype(np.float64)
    covs = covs.reshape(-1, 6, 6).copy()
    covs[:, 0:3, :] = 0.0
    covs[:, :, 0:3] = 0.0
    covs[:, [0, 1, 2], [0, 1, 2]] = var_new
    covs = covs.reshape(-1, 36)
    covs[all_unknown] = 0.0         # unknown fused with unknown stays unknown
    numbers = zip(total.astype(np.int64).tolist(), confidence.tolist(), first.tolist(),
                  last.tolist(), access.tolist(), score.tolist(), pinned.tolist(),
                  recalls.tolist())
    out = []
    for (keep, others), position, cov, vector, (count, conf, t0, t1, touched, best, pin,
                                                 recalled) in zip(clusters, fused, covs,
                                                                  vectors, numbers):
        if not others:
            out.append(keep)
            continue
        e = keep.copy(skip=('position', 'covariance', 'vector'))
        e.position, e.covariance, e.vector = position, cov, vector
        e.observation_count = count
        e.confidence = conf
        e.first_seen, e.last_seen, e.last_access = t0, t1, touched
        _fold_symbols(e, keep, others, policy)
        e.score, e.pinned, e.recall_count = best, pin, recalled
        if count >= policy.promote_after:
            e.tier = TIER_LONG
        out.append(e)
    return out


def _fold_symbols(e: Engram, keep: Engram, others: Sequence[Engram],
                  policy: MergePolicy) -> None:
    """Tags, label, keyframe and evidence of a cluster into ``e``, in member order."""
    tags = _merge_tags_cached(tuple(keep.tags), tuple(others[0].tags), policy.max_tags)
    for o in others[1:]:
        if o.tags != tags:       # _merge_tags(t, t) == t for a result t
            tags = _merge_tags_cached(tags, tuple(o.tags), policy.max_tags)
    e.tags = tags
    if not keep.label:
        e.label = next((o.label for o in others if o.label), '')
    if not keep.keyframe_id:
        e.keyframe_id = next((o.keyframe_id for o in others if o.keyframe_id), '')
    if keep.evidence or any(o.evidence for o in others):
        evidence = tuple(dict.fromkeys(ev for m in (keep, *others) for ev in m.evidence))
        e.evidence = evidence[-policy.max_evidence:]


def _vector_sums(clusters: Sequence[tuple[Engram, Sequence[Engram]]],
                 sizes: np.ndarray) -> np.ndarray:
    """Count-weighted sums of each cluster's member vectors, ``(clusters, dim)`` float32.

    Built member position by member position (all keeps, then every cluster's first other,
    ...), largest clusters first so each step adds to a prefix: no stack of every member's
    vector, and float32 like :func:`merge` (a pass over 100k engrams moves a third of the
    memory it would in float64).
    """
    order = np.argsort(-sizes, kind='stable')
    ordered = [clusters[k] for k in order.tolist()]
    longest = sizes[order]
    acc = stack_rows([keep.vector for keep, _ in ordered]).astype(np.float32, copy=False)
    acc *= np.array([keep.observation_count for keep, _ in ordered], dtype=np.float32)[:, None]
    for j in range(1, int(longest[0])):
        m = int(np.count_nonzero(longest > j))
        column = [others[j - 1] for _, others in ordered[:m]]
        x = stack_rows([e.vector for e in column]).astype(np.float32, copy=False)
        x *= np.array([e.observation_count for e in column], dtype=np.float32)[:, None]
        acc[:m] += x
    out = np.empty_like(acc)
    out[order] = acc
    return out


def _cluster_sums(rows: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """Float64 sums of the contiguous row groups ``rows[starts[k]:starts[k] + sizes[k]]``
    (each row times its weight when given), added member after member like ``np.sum`` over
    a small stack; far faster than ``np.add.reduceat`` along axis 0 of a wide 2-d array."""
    def part(idx: np.ndarray) -> np.ndarray:
        out = rows[idx].astype(np.float64)
        if weights is not None:
            out *= weights[idx][:, None]
        return out

    if int(sizes.max()) > 64:      # a few huge clusters: one reduceat is cheaper than a loop
        return np.add.reduceat(part(np.arange(rows.shape[0])), starts, axis=0)
    # Largest clusters first, so the clusters with a j-th member are a prefix (a view).
    order = np.argsort(-sizes, kind='stable')
    first, counts = starts[order], sizes[order]
    acc = part(first)
    for j in range(1, int(counts[0])):
        m = int(np.count_nonzero(counts > j))
        acc[:m] += part(first[:m] + j)
    out = np.empty_like(acc)
    out[order] = acc
    return out


#: Size classes, smallest first (``size:<class>`` tags; perception's ``SIZE_CLASSES`` bound them).
SIZE_ORDER: tuple[str, ...] = ('small', 'medium', 'large')


def one_size(tags: list[str]) -> list[str]:
    """``tags`` with one ``size:`` tag: the class of the merged extent.

    Each sighting's class comes from the extent of the surface it saw; the merged extent (the
    union of what all sightings saw) is at least the largest of them, so its class is the
    largest class among the sightings': a table seen whole once and in part twice is large,
    not small, medium and large. A size outside :data:`SIZE_ORDER` counts as the smallest.
    """
    sizes = [t for t in tags if t.startswith('size:')]
    if len(sizes) < 2:
        return tags
    rank = {f'size:{name}': k for k, name in enumerate(SIZE_ORDER)}
    largest = max(sizes, key=lambda t: (rank.get(t, -1), t))
    return [t for t in tags if not t.startswith('size:') or t == largest]


def _merge_tags(old: tuple[str, ...], new: tuple[str, ...], limit: int) -> tuple[str, ...]:
    merged = one_size(list(dict.fromkeys(old + new)))
    if len(merged) > limit:
        keep = [t for t in merged if t.startswith(IDENTITY_NAMESPACES)]
        rest = [t for t in merged if not t.startswith(IDENTITY_NAMESPACES)]
        merged = keep + rest[: max(0, limit - len(keep))]
    return tuple(sorted(merged))


# Clusters of one thing carry the same few tags: a pass folds the same pairs thousands of
# times. Tags are str (sketch.normalize_tags), so equal keys give identical results.
_merge_tags_cached = functools.lru_cache(maxsize=4096)(_merge_tags)
