"""Tests of engram_ros.core.forgetting: retention scores and budget evictions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engram_ros.core.forgetting import lowest_retention
from engram_ros.core.forgetting import protected
from engram_ros.core.forgetting import retention
from engram_ros.core.forgetting import RetentionPolicy
from engram_ros.core.forgetting import RetentionRows
from engram_ros.core.forgetting import select_evictions
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import TIER_LONG
from engram_ros.core.model.engram import TIER_SHORT
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage

NOW = 1.7e9 + 30 * 24 * 3600.0
DAY = 24 * 3600.0


def make_engram(engram_id: int = 1, **kw) -> Engram:
    fields = dict(id=engram_id, kind='object', frame_id='map', position=np.zeros(3),
                  vector=np.eye(4, dtype=np.float32)[0], first_seen=NOW - 10 * DAY,
                  last_seen=NOW - 5 * DAY, last_access=NOW - 5 * DAY, score=0.5,
                  observation_count=1, recall_count=0, tier=TIER_SHORT)
    fields.update(kw)
    return Engram(**fields)


BASE = make_engram()


@pytest.mark.parametrize('better', [
    pytest.param(dict(score=0.9), id='more_useful'),
    pytest.param(dict(observation_count=10), id='seen_more_often'),
    pytest.param(dict(recall_count=10), id='recalled_more_often'),
    pytest.param(dict(last_seen=NOW - 1.0, last_access=NOW - 1.0), id='seen_recently'),
    pytest.param(dict(last_access=NOW - 60.0), id='recalled_recently'),
    pytest.param(dict(tier=TIER_LONG), id='long_term'),
])
def test_retention_prefers_useful_frequent_recent(better: dict) -> None:
    policy = RetentionPolicy()
    assert retention(dataclasses.replace(BASE, **better), NOW, policy) > \
        retention(BASE, NOW, policy)


def test_retention_is_monotonic_in_each_signal() -> None:
    policy = RetentionPolicy()
    by_score = [retention(dataclasses.replace(BASE, score=s), NOW, policy)
                for s in np.linspace(0.0, 1.0, 6)]
    by_count = [retention(dataclasses.replace(BASE, observation_count=c), NOW, policy)
                for c in (1, 2, 5, 20, 1000)]
    by_age = [retention(dataclasses.replace(BASE, last_seen=NOW - a, last_access=NOW - a), NOW,
                        policy) for a in (0.0, DAY, 7 * DAY, 70 * DAY)]
    assert by_score == sorted(by_score) and len(set(by_score)) == len(by_score)
    assert by_count == sorted(by_count) and len(set(by_count)) == len(by_count)
    assert by_age == sorted(by_age, reverse=True) and len(set(by_age)) == len(by_age)


def test_recency_half_life() -> None:
    policy = RetentionPolicy(usefulness=0.0, frequency=0.0, recency=1.0, long_term_bonus=0.0)
    fresh = dataclasses.replace(BASE, last_seen=NOW, last_access=NOW)
    old = dataclasses.replace(BASE, last_seen=NOW - policy.half_life,
                              last_access=NOW - policy.half_life)
    assert retention(fresh, NOW, policy) == pytest.approx(1.0)
    assert retention(old, NOW, policy) == pytest.approx(0.5)


@pytest.mark.parametrize('seed', range(5))
def test_retention_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = RetentionPolicy()
    for _ in range(50):
        e = make_engram(score=float(rng.random()), observation_count=int(rng.integers(1, 10**6)),
                        recall_count=int(rng.integers(0, 10**6)),
                        last_seen=NOW - float(rng.uniform(-10.0, 1e9)),
                        last_access=NOW - float(rng.uniform(0.0, 1e9)),
                        tier=TIER_LONG if rng.random() < 0.5 else TIER_SHORT)
        value = retention(e, NOW, policy)
        assert 0.0 <= value <= 1.0 + policy.long_term_bonus + 1e-12


def population(n: int, seed: int, pinned_every: int = 0) -> list[Engram]:
    rng = np.random.default_rng(seed)
    return [make_engram(i + 1, score=float(rng.random()),
                        observation_count=int(rng.integers(1, 20)),
                        last_seen=NOW - float(rng.uniform(0.0, 60 * DAY)),
                        tier=TIER_LONG if rng.random() < 0.3 else TIER_SHORT,
                        pinned=bool(pinned_every and i % pinned_every == 0))
            for i in range(n)]


@pytest.mark.parametrize('budget', [1, 5, 10, 19, 20, 50])
@pytest.mark.parametrize('pinned_every', [0, 3, 1])
def test_select_evictions_respects_budget_and_pins(budget: int, pinned_every: int) -> None:
    engrams = population(20, seed=budget, pinned_every=pinned_every)
    by_id = {e.id: e for e in engrams}
    evicted = select_evictions(iter(engrams), budget, NOW, RetentionPolicy())
    assert len(set(evicted)) == len(evicted)
    assert set(evicted) <= set(by_id)
    # Protected: pinned, or rare-but-important (high usefulness, important tags).
    assert not any(protected(by_id[i], RetentionPolicy()) for i in evicted)
    unpinned = [e for e in engrams if not protected(e, RetentionPolicy())]
    excess = max(0, len(engrams) - budget)
    assert len(evicted) == min(excess, len(unpinned))
    left = len(engrams) - len(evicted)
    pinned = len(engrams) - len(unpinned)
    assert left == max(budget, pinned) if excess else left == len(engrams)


@pytest.mark.parametrize('seed', range(3))
def test_select_evictions_takes_lowest_retention_first(seed: int) -> None:
    engrams = population(30, seed=seed, pinned_every=4)
    policy = RetentionPolicy()
    evicted = set(select_evictions(engrams, 18, NOW, policy))
    kept_unpinned = [e for e in engrams if not protected(e, policy) and e.id not in evicted]
    assert evicted
    worst_kept = min(retention(e, NOW, policy) for e in kept_unpinned)
    best_evicted = max(retention(e, NOW, policy) for e in engrams if e.id in evicted)
    assert best_evicted <= worst_kept


def test_all_pinned_evicts_nothing() -> None:
    engrams = [make_engram(i, pinned=True) for i in range(1, 6)]
    assert select_evictions(engrams, 2, NOW, RetentionPolicy()) == []


def test_under_budget_evicts_nothing() -> None:
    assert select_evictions(population(5, 0), 5, NOW, RetentionPolicy()) == []
    assert select_evictions([], 1, NOW, RetentionPolicy()) == []


@pytest.mark.parametrize('budget', [0, -1, -1000])
def test_select_evictions_rejects_budget_below_one(budget: int) -> None:
    with pytest.raises(ValueError, match='accepted: a positive number'):
        select_evictions(population(3, 0), budget, NOW, RetentionPolicy())


def reference_evictions(engrams: list[Engram], budget: int, policy: RetentionPolicy
                        ) -> list[int]:
    """The budget's rule written out on records: lowest retention first, protected kept."""
    excess = len(engrams) - budget
    evictable = [e for e in engrams if not protected(e, policy)]
    evictable.sort(key=lambda e: (retention(e, NOW, policy), e.last_seen, e.id))
    return [e.id for e in evictable[:max(0, excess)]]


@pytest.mark.parametrize('batch', [1, 7, 64, 1000])
@pytest.mark.parametrize('budget', [1, 150, 299])
def test_streamed_selection_equals_the_rule_on_records(batch: int, budget: int) -> None:
    policy = RetentionPolicy(important_tags=('label:extinguisher',))
    engrams = population(300, seed=batch + budget, pinned_every=7)
    for i, e in enumerate(engrams):
        if i % 11 == 0:
            e.tags = ('label:extinguisher',)
        if i % 13 == 0:
            e.score = 0.97                                  # protected by usefulness
        if i % 17 == 0:                                     # ties on retention and last_seen
            e.score, e.observation_count, e.last_seen = 0.2, 3, NOW - DAY
            e.last_access, e.tier = NOW - DAY, TIER_SHORT
    important = {e.id for e in engrams if 'label:extinguisher' in e.tags}
    batches = [RetentionRows.of(engrams[a:a + batch]) for a in range(0, len(engrams), batch)]
    streamed = lowest_retention(iter(batches), len(engrams) - budget, NOW, policy, important)
    expected = reference_evictions(engrams, budget, policy)
    assert streamed == expected and len(expected) > 0
    assert select_evictions(engrams, budget, NOW, policy) == expected


def test_storage_retention_columns_equal_the_records(tmp_path) -> None:
    engrams = population(50, seed=3, pinned_every=4)
    for e in engrams:
        e.tags = ('label:a',) if e.id % 3 else ('label:b', 'room:r1')
    sqlite = SQLiteStorage(tmp_path / 'store')
    for backend in (sqlite, MemoryStorage()):
        backend.put(engrams)
        rows = list(backend.iter_retention(batch_size=8))
        assert [len(r) for r in rows] == [8] * 6 + [2]
        got = RetentionRows(**{name: np.concatenate([getattr(r, name) for r in rows])
                               for name in RetentionRows.__dataclass_fields__})
        want = RetentionRows.of(engrams)
        for name in RetentionRows.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
            assert getattr(got, name).dtype == getattr(want, name).dtype
        assert backend.ids_with_tags(['label:b', 'nothing']) == \
            {e.id for e in engrams if e.id % 3 == 0}
        assert backend.ids_with_tags([]) == set()
        backend.close()
