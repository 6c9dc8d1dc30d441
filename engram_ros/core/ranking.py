"""Where engrams are ranked: the second stage of recall, and the scores that explain each rank.

Stage one (:meth:`EngramIndex.filter`) leaves the candidates that pass the symbolic, kind,
space and time filters. Stage two orders them: by dense similarity when the query has a vector
(faiss, over the candidates only), and by a combined score of the per-stage scores:

* symbolic: fraction of the query's tags the engram carries (a tag group, such as the labels
  one question word resolved to, counts once when the engram carries any of it);
* dense: cosine similarity mapped to [0, 1];
* spatial: 1 at the query centre, falling linearly to 0 at the radius;
* temporal: how recently within the window it was last seen;
* usefulness: the learned score of the engram (planners' feedback);
* support: the evidence behind the engram, ``1 - exp(-observation_count / support_scale)``
  (0.28 for one sighting, 0.81 for five, 0.96 for ten at the default scale of 3).

Usefulness and support are properties of the engram, so every query uses them. Support is
what keeps a one-off wrong-label sighting (detector label noise) from outranking the
well-established engram of the same label and tags, and it orders a room's inventory by how
sure the memory is. Its weight is small next to the dense stage: a much better vector match
still wins over a much better-supported one (``test/core/test_ranking.py`` checks both).

Stages the query does not use are left out of the combination (their reported score is the
neutral value documented in ``Recall.srv``), so the combined score stays in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engram_ros.core.index import EngramIndex
from engram_ros.core.query import RecallQuery

#: Dense candidates fetched per requested hit, so re-ranking by the other stages can reorder.
_DENSE_OVERFETCH = 4


@dataclass
class RankingWeights:
    """Relative weights of the stages in the combined score (renormalised over used stages)."""

    dense: float = 0.6
    symbolic: float = 0.2
    spatial: float = 0.1
    temporal: float = 0.05
    usefulness: float = 0.05
    support: float = 0.1
    #: [observations] the support score is ``1 - exp(-observation_count / support_scale)``.
    support_scale: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.support_scale) and self.support_scale > 0.0):
            raise ValueError(f'support_scale={self.support_scale} must be > 0 (observations)')


@dataclass
class Ranked:
    """Ranked slots of the index, best first, with the per-stage scores."""

    slots: np.ndarray
    combined: np.ndarray
    symbolic: np.ndarray
    dense: np.ndarray
    spatial: np.ndarray
    temporal: np.ndarray
    support: np.ndarray


def support_score(counts: np.ndarray, scale: float) -> np.ndarray:
    """Evidence behind engrams seen ``counts`` times: 0 for none, towards 1 as it grows."""
    return 1.0 - np.exp(-np.asarray(counts, dtype=np.float64) / scale)


def rank(index: EngramIndex, query: RecallQuery, candidates: np.ndarray | None,
         query_tags: Sequence[str | tuple[str, ...]], weights: RankingWeights,
         now: float) -> Ranked:
    """Order ``candidates`` (slots from the filter stage; ``None`` = every live engram).

    :param query_tags: every tag the query names (all, any and those from its text); a tuple
        is a group of alternatives (the labels one question word means), carried when any is.
    :param now: current time [s since epoch], closing an open time window.
    """
    if query.vector is not None:
        fetch = query.k * _DENSE_OVERFETCH
        slots, sims = index.dense_topk(np.asarray(query.vector, dtype=np.float32), fetch,
                                       candidates)
        dense = np.clip((np.asarray(sims, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)
    else:
        slots = np.arange(0) if candidates is None else np.asarray(candidates)
        dense = np.full(len(slots), 0.5)
    slots = np.asarray(slots, dtype=np.int64)

    support = support_score(index.counts_of(slots), weights.support_scale)
    parts: list[tuple[float, np.ndarray]] = [(weights.usefulness, index.scores_of(slots)),
                                             (weights.support, support)]
    if query.vector is not None:
        parts.append((weights.dense, dense))

    if query_tags:
        groups = [(t,) if isinstance(t, str) else tuple(t) for t in query_tags]
        symbolic = sum((index.tag_match_count(slots, g) > 0).astype(np.float64)
                       for g in groups) / float(len(groups))
        parts.append((weights.symbolic, symbolic))
    else:
        symbolic = np.ones(len(slots))

    if query.radius > 0.0 and query.center is not None:
        dist = np.linalg.norm(index.positions_of(slots) - np.asarray(query.center), axis=1)
        spatial = np.clip(1.0 - dist / query.radius, 0.0, 1.0)
        parts.append((weights.spatial, spatial))
    else:
        spatial = np.ones(len(slots))

    if query.t_start is not None or query.t_end is not None:
        end = query.t_end if query.t_end is not None else now
        start = query.t_start if query.t_start is not None else index.first_seen_of(slots).min(
            initial=end)
        span = max(end - start, 1.0)
        temporal = np.clip(1.0 - (end - index.last_seen_of(slots)) / span, 0.0, 1.0)
        parts.append((weights.temporal, temporal))
    else:
        temporal = np.ones(len(slots))

    total = sum(w for w, _ in parts)
    if total <= 0.0:
        # Every stage the query uses has weight 0: weigh them equally rather than 0/0 = NaN.
        parts = [(1.0, s) for _, s in parts]
        total = float(len(parts))
    combined = sum(w * np.asarray(s, dtype=np.float64) for w, s in parts) / total
    kept = np.flatnonzero(combined >= query.min_score)
    order = kept[top_k(combined[kept], query.k)]

    def pick(values: np.ndarray) -> np.ndarray:
        return np.asarray(values)[order]

    return Ranked(slots=pick(slots), combined=pick(combined), symbolic=pick(symbolic),
                  dense=pick(dense), spatial=pick(spatial), temporal=pick(temporal),
                  support=pick(support))


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``values``, largest first, ties in position order.

    Exactly ``np.argsort(-values, kind='stable')[:k]`` (``test/core/test_ranking.py`` checks
    it), in O(n) rather than a full sort of every candidate: ``np.partition`` finds the k-th
    value, and only the values above it and the first ties at it are sorted.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= 4 * k or n <= 256:
        return np.argsort(-values, kind='stable')[:k]
    neg = -values
    kth = np.partition(neg, k - 1)[k - 1]
    if np.isnan(kth):       # fewer than k numbers: NaNs last, as the full sort puts them
        return np.argsort(neg, kind='stable')[:k]
    above = np.flatnonzero(neg < kth)           # fewer than k, in position order
    ties = np.flatnonzero(neg == kth)[: k - len(above)]
    chosen = np.concatenate([above, ties])
    # Stable: equal values keep position order (the ties all come after ``above``).
    return chosen[np.argsort(neg[chosen], kind='stable')]
