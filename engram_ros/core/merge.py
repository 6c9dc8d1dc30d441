"""Where engrams are merged: deciding that an observation is something already remembered, and
soft-merging it into that engram.

Matching is overlap-aware so that similar-but-different things do not interfere: a candidate
must be of the same kind, lie within a kind-specific radius, agree on its label tags (two mugs
are both ``label:mug``; a mug and a bowl never merge), and have a similar context vector.
Merging fuses the pose by inverse variance (so the uncertainty shrinks with evidence), averages
the context vector by observation count, and keeps first/last seen, tags and evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import numpy as np

from engram_ros.core.engram import Engram
from engram_ros.core.engram import normalize_vector
from engram_ros.core.engram import Observation
from engram_ros.core.engram import TIER_LONG
from engram_ros.core.engram import TIER_SHORT

#: Tag namespaces that name *what* a thing is; engrams that disagree on them never merge.
IDENTITY_NAMESPACES: tuple[str, ...] = ('label:', 'sound:')

#: Smallest position variance kept after fusion [m^2]: evidence never makes a pose exact.
_MIN_VARIANCE = 1e-6


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
    #: consolidation as the detector's mistake. 0 (the default) disables it: a different
    #: thing that looks alike and was put in the same place would be forgotten too.
    noise_support: int = 0

    def radius_for(self, kind: str) -> float:
        return float(self.radius.get(kind, 1.0))

    def similarity_for(self, kind: str) -> float:
        return float(self.min_similarity.get(kind, 0.8))


def identity_tags(tags: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The tags that say what a thing is (labels, sound classes)."""
    return frozenset(t for t in tags if t.startswith(IDENTITY_NAMESPACES))


def compatible(obs_tags: tuple[str, ...], engram_tags: tuple[str, ...]) -> bool:
    """True unless both sides name what they are and the names share nothing."""
    a = identity_tags(obs_tags)
    b = identity_tags(engram_tags)
    return not a or not b or bool(a & b)


def merge(engram: Engram, obs: Observation, policy: MergePolicy) -> Engram:
    """Return a new engram: ``engram`` with ``obs`` soft-merged into it.

    The input engram is not modified. Position is fused by inverse variance using the diagonal
    of the position covariance; the context vector is the count-weighted mean, renormalised.
    """
    out = engram.copy()
    n = engram.observation_count

    var_old = np.maximum(np.diag(engram.covariance.reshape(6, 6))[:3], _MIN_VARIANCE)
    var_obs = np.maximum(np.diag(np.asarray(obs.covariance).reshape(6, 6))[:3], _MIN_VARIANCE)
    var_new = 1.0 / (1.0 / var_old + 1.0 / var_obs)
    out.position = var_new * (engram.position / var_old + np.asarray(obs.position) / var_obs)
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
    variance fusion is associative), the vector, counts and times; confidence is the
    count-weighted mean over all of them.
    """
    if not others:
        return keep
    members = [keep] + list(others)
    out = keep.copy()
    var = np.maximum(np.stack([np.diag(e.covariance.reshape(6, 6))[:3] for e in members]),
                     _MIN_VARIANCE)
    positions = np.stack([e.position for e in members])
    var_new = 1.0 / np.sum(1.0 / var, axis=0)
    out.position = var_new * np.sum(positions / var, axis=0)
    cov = out.covariance.reshape(6, 6)
    cov[0:3, :] = 0.0
    cov[:, 0:3] = 0.0
    cov[0, 0], cov[1, 1], cov[2, 2] = var_new
    out.covariance = cov.reshape(36)
    counts = np.array([e.observation_count for e in members], dtype=np.float64)
    out.vector = normalize_vector(np.sum(counts[:, None] * np.stack([e.vector for e in members]),
                                         axis=0))
    out.observation_count = int(counts.sum())
    out.confidence = float(np.dot(counts, [e.confidence for e in members]) / counts.sum())
    out.first_seen = min(e.first_seen for e in members)
    out.last_seen = max(e.last_seen for e in members)
    out.last_access = max(e.last_access for e in members)
    tags = keep.tags
    for e in others:
        tags = _merge_tags(tags, tuple(e.tags), policy.max_tags)
    out.tags = tags
    out.label = keep.label or next((e.label for e in others if e.label), '')
    out.keyframe_id = keep.keyframe_id or next((e.keyframe_id for e in others
                                                if e.keyframe_id), '')
    evidence = tuple(dict.fromkeys(ev for e in members for ev in e.evidence))
    out.evidence = evidence[-policy.max_evidence:]
    out.score = max(e.score for e in members)
    out.pinned = any(e.pinned for e in members)
    out.recall_count = sum(e.recall_count for e in members)
    if out.observation_count >= policy.promote_after:
        out.tier = TIER_LONG
    return out


def _merge_tags(old: tuple[str, ...], new: tuple[str, ...], limit: int) -> tuple[str, ...]:
    merged = list(dict.fromkeys(old + new))
    if len(merged) > limit:
        keep = [t for t in merged if t.startswith(IDENTITY_NAMESPACES)]
        rest = [t for t in merged if not t.startswith(IDENTITY_NAMESPACES)]
        merged = keep + rest[: max(0, limit - len(keep))]
    return tuple(sorted(merged))


def pairs_within(queries: np.ndarray, points: np.ndarray, radius: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """All (query index, point index) pairs closer than ``radius`` [m], by a uniform grid.

    Vectorised (no Python loop over points): both sets are hashed into cells of side
    ``radius``; each query looks in the 27 cells around its own. Used by batch consolidation,
    where one KD query per engram would dominate.
    """
    queries = np.asarray(queries, dtype=np.float64).reshape(-1, 3)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(queries) == 0 or len(points) == 0 or not radius > 0.0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    origin = np.minimum(queries.min(axis=0), points.min(axis=0))
    cells_p = np.floor((points - origin) / radius).astype(np.int64)
    cells_q = np.floor((queries - origin) / radius).astype(np.int64)
    span = int(max(cells_p.max(), cells_q.max())) + 3
    keys_p = _cell_keys(cells_p, span)
    order = np.argsort(keys_p, kind='stable')
    sorted_keys = keys_p[order]
    out_q, out_p = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                keys = _cell_keys(cells_q + np.array([dx, dy, dz]), span)
                lo = np.searchsorted(sorted_keys, keys, side='left')
                hi = np.searchsorted(sorted_keys, keys, side='right')
                counts = hi - lo
                total = int(counts.sum())
                if total == 0:
                    continue
                qi = np.repeat(np.arange(len(queries)), counts)
                starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
                pj = order[starts + np.arange(total)]
                out_q.append(qi)
                out_p.append(pj)
    if not out_q:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    qi = np.concatenate(out_q)
    pj = np.concatenate(out_p)
    close = np.einsum('ij,ij->i', queries[qi] - points[pj], queries[qi] - points[pj]) \
        <= radius * radius
    return qi[close], pj[close]


def _cell_keys(cells: np.ndarray, span: int) -> np.ndarray:
    c = cells + 1      # neighbours of cell 0 are at -1
    return (c[:, 0] * (span + 2) + c[:, 1]) * (span + 2) + c[:, 2]
