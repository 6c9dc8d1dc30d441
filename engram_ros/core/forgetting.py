"""Where engrams are forgotten: which ones to evict when the memory is over its budget.

Two rules, applied by :class:`engram_ros.core.memory.MemoryStore`:

* the short-term tier is an LRU cache: past its capacity, the least recently used short-term
  engrams (seen once, never reactivated) go first;
* the whole store has a storage budget: past it, the engrams with the lowest *retention* go.
  Retention mixes usefulness (planners' feedback), frequency (observation and recall counts) and
  recency. Pinned engrams are never evicted, nor are rare-but-important ones: a usefulness
  score at or above ``protect_score`` (planners said they helped, however seldom they were
  seen) or a tag listed in ``important_tags``.

Usefulness is learned from use: a planner's feedback (the ``engram/feedback`` service) moves
``Engram.score`` by an exponential moving average towards 1 (helped) or 0 (did not help), see
:func:`update_usefulness`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable

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


def protected(engram: Engram, policy: RetentionPolicy) -> bool:
    """True when the budget must not evict ``engram``: pinned, very useful, or important."""
    return (engram.pinned or engram.score >= policy.protect_score
            or bool(policy.important_tags and set(engram.tags) & set(policy.important_tags)))


def retention(engram: Engram, now: float, policy: RetentionPolicy) -> float:
    """Score in [0, 1 + bonus]: higher is kept longer."""
    frequency = 1.0 - 1.0 / (1.0 + math.log1p(engram.observation_count + engram.recall_count))
    age = max(0.0, now - max(engram.last_seen, engram.last_access))
    recency = 0.5 ** (age / policy.half_life)
    value = (policy.usefulness * engram.score + policy.frequency * frequency
             + policy.recency * recency)
    if engram.tier == TIER_LONG:
        value += policy.long_term_bonus
    return value


def select_evictions(engrams: Iterable[Engram], budget: int, now: float,
                     policy: RetentionPolicy) -> list[int]:
    """Ids to evict so that at most ``budget`` engrams remain, lowest retention first.

    Protected engrams (:func:`protected`: pinned, very useful, important tags) are never
    selected, so the result may leave the store above budget when everything left is protected.

    :raises ValueError: for a budget below 1.
    """
    if budget < 1:
        raise ValueError(f'budget={budget}; accepted: a positive number of engrams')
    all_engrams = list(engrams)
    excess = len(all_engrams) - budget
    if excess <= 0:
        return []
    evictable = [e for e in all_engrams if not protected(e, policy)]
    evictable.sort(key=lambda e: (retention(e, now, policy), e.last_seen, e.id))
    return [e.id for e in evictable[:excess]]
