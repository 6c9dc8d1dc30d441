"""Where engrams are forgotten: which ones to evict when the memory is over its budget.

Two rules, applied by :class:`engram_ros.core.memory.MemoryStore`:

* the short-term tier is an LRU cache: past its capacity, the least recently used short-term
  engrams (seen once, never reactivated) go first;
* the whole store has a storage budget: past it, the engrams with the lowest *retention* go.
  Retention mixes usefulness (planners' feedback), frequency (observation and recall counts) and
  recency. Pinned engrams are never evicted, nor are rare-but-important ones: a usefulness
  score at or above ``protect_score`` (planners said they helped, however seldom they were
  seen) or a tag listed in ``important_tags``.

The budget's choice streams: :func:`lowest_retention` takes the retention columns in batches
(:class:`RetentionRows`, read by :meth:`engram_ros.core.storage.Storage.iter_retention` without
decoding records) and keeps only the ``excess`` lowest seen so far, so evicting from a memory
of a million engrams holds one batch and the candidates, never every engram. Retention is
computed on arrays (:func:`retention_of`); :func:`retention` is the same function on one engram.

Usefulness is learned from use: a planner's feedback (the ``engram/feedback`` service) moves
``Engram.score`` by an exponential moving average towards 1 (helped) or 0 (did not help), see
:func:`update_usefulness`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable
from typing import Sequence

import numpy as np

from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.errors import StatusError


@dataclass
class RetentionPolicy:
    """How much each signal counts towards keeping an engram."""

    usefulness: float = 0.5
    frequency: float = 0.3
    recency: float = 0.2
    #: Recency half-life [s]: an engram untouched this long has half its recency left.
    half_life: float = 7 * 24 * 3600.0
    #: Bonus for long-term engrams: consolidated memories outlive one-off sightings.
    long_term_bonus: float = 0.1
    #: Usefulness at or above which an engram is never evicted by the budget.
    protect_score: float = 0.95
    #: Tags that protect an engram from budget eviction (e.g. ``label:fire_extinguisher``).
    important_tags: tuple[str, ...] = ()
    #: Step of the usefulness moving average per feedback, in (0, 1].
    feedback_rate: float = 0.3


class FeedbackStatus(IntEnum):
    """Outcome of a feedback; the values are ``Feedback.srv``'s ``STATUS_*`` constants."""

    OK = 0
    UNKNOWN_ID = 1
    EMPTY = 2
    INTERNAL_ERROR = 255


class FeedbackError(StatusError, ValueError):
    """Feedback that was not applied (nothing changed); ``status`` says why."""

    status: FeedbackStatus


def update_usefulness(score: float, helped: bool, rate: float) -> float:
    """The usefulness score after one feedback: an exponential moving average in [0, 1]."""
    target = 1.0 if helped else 0.0
    return float(min(1.0, max(0.0, (1.0 - rate) * score + rate * target)))


@dataclass
class RetentionRows:
    """The columns the budget reads, one row per engram (a batch of a storage scan)."""

    ids: np.ndarray             #: int64
    score: np.ndarray           #: float64 usefulness
    observations: np.ndarray    #: int64 observation counts
    recalls: np.ndarray         #: int64 recall counts
    last_seen: np.ndarray       #: float64 s
    last_access: np.ndarray     #: float64 s
    long_term: np.ndarray       #: bool: tier is long-term
    pinned: np.ndarray          #: bool

    @classmethod
    def of(cls, engrams: Sequence[Engram]) -> 'RetentionRows':
        """The rows of engram records."""
        return cls(ids=np.array([e.id for e in engrams], dtype=np.int64),
                   score=np.array([e.score for e in engrams], dtype=np.float64),
                   observations=np.array([e.observation_count for e in engrams],
                                         dtype=np.int64),
                   recalls=np.array([e.recall_count for e in engrams], dtype=np.int64),
                   last_seen=np.array([e.last_seen for e in engrams], dtype=np.float64),
                   last_access=np.array([e.last_access for e in engrams], dtype=np.float64),
                   long_term=np.array([e.tier == TIER_LONG for e in engrams], dtype=bool),
                   pinned=np.array([bool(e.pinned) for e in engrams], dtype=bool))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, keep: np.ndarray) -> 'RetentionRows':
        """The rows selected by a boolean mask or an index array."""
        return RetentionRows(**{name: getattr(self, name)[keep]
                                for name in self.__dataclass_fields__})


def protected(engram: Engram, policy: RetentionPolicy) -> bool:
    """True when the budget must not evict ``engram``: pinned, very useful, or important."""
    return (engram.pinned or engram.score >= policy.protect_score
            or bool(policy.important_tags and set(engram.tags) & set(policy.important_tags)))


def retention_of(rows: RetentionRows, now: float, policy: RetentionPolicy) -> np.ndarray:
    """:func:`retention` of every row (``float64``): the one implementation of the score."""
    frequency = 1.0 - 1.0 / (1.0 + np.log1p((rows.observations + rows.recalls)
                                            .astype(np.float64)))
    age = np.maximum(0.0, now - np.maximum(rows.last_seen, rows.last_access))
    recency = np.power(0.5, age / policy.half_life)
    value = (policy.usefulness * rows.score + policy.frequency * frequency
             + policy.recency * recency)
    return value + np.where(rows.long_term, policy.long_term_bonus, 0.0)


def retention(engram: Engram, now: float, policy: RetentionPolicy) -> float:
    """Score in [0, 1 + bonus]: higher is kept longer."""
    return float(retention_of(RetentionRows.of([engram]), now, policy)[0])


def select_evictions(engrams: Iterable[Engram], budget: int, now: float,
                     policy: RetentionPolicy) -> list[int]:
    """Ids to evict so that at most ``budget`` engrams remain, lowest retention first.

    Protected engrams (:func:`protected`: pinned, very useful, important tags) are never
    selected, so the result may leave the store above budget when everything left is protected.
    This takes engram records (a list in RAM); the store streams columns through
    :func:`lowest_retention` instead.

    :raises ValueError: for a budget below 1.
    """
    if budget < 1:
        raise ValueError(f'budget={budget}; accepted: a positive number of engrams')
    all_engrams = list(engrams)
    excess = len(all_engrams) - budget
    if excess <= 0:
        return []
    important = {e.id for e in all_engrams
                 if policy.important_tags and set(e.tags) & set(policy.important_tags)}
    return lowest_retention([RetentionRows.of(all_engrams)], excess, now, policy, important)


def lowest_retention(batches: Iterable[RetentionRows], excess: int, now: float,
                     policy: RetentionPolicy, important: set[int] | frozenset[int] = frozenset()
                     ) -> list[int]:
    """Ids of the ``excess`` unprotected rows of lowest retention (ties: older ``last_seen``,
    then smaller id), over batches seen one at a time; at most ``excess`` + one batch rows are
    held. Pinned rows, rows at or above ``protect_score`` and ``important`` ids are skipped.
    """
    if excess <= 0:
        return []
    keep_ids = np.zeros(0, dtype=np.int64)
    keep_key = np.zeros((0, 2), dtype=np.float64)
    important_a = np.fromiter(important, dtype=np.int64, count=len(important))
    for rows in batches:
        ok = ~rows.pinned & (rows.score < policy.protect_score)
        if important_a.shape[0]:
            ok &= ~np.isin(rows.ids, important_a)
        rows = rows.take(ok)
        if not len(rows):
            continue
        keys = np.stack([retention_of(rows, now, policy), rows.last_seen], axis=1)
        keep_ids = np.concatenate((keep_ids, rows.ids))
        keep_key = np.concatenate((keep_key, keys))
        if keep_ids.shape[0] > excess:
            order = np.lexsort((keep_ids, keep_key[:, 1], keep_key[:, 0]))[:excess]
            keep_ids, keep_key = keep_ids[order], keep_key[order]
    order = np.lexsort((keep_ids, keep_key[:, 1], keep_key[:, 0]))
    return [int(i) for i in keep_ids[order]]
