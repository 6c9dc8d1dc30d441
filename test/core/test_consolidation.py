"""Consolidation into a map-like memory: laps, moves (temporal validity), the place graph,
re-anchoring after pose corrections, feedback and forgetting under a budget.

Each test drives a real :class:`MemoryStore` (RAM and SQLite backends) with observations laid
out as laps through a two-room flat: kitchen around x = 0, living room around x = 10.
"""

from __future__ import annotations

import gc
import logging
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from engram_ros.core.forgetting import FeedbackError
from engram_ros.core.forgetting import FeedbackStatus
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.merge import MergePolicy
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import Observation
from engram_ros.core.places import CorrectionError
from engram_ros.core.places import CorrectionStatus
from engram_ros.core.places import PoseCorrection
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage

DIM = 16
T0 = 1.7e9
LAP = 100.0                                  # [s] one lap
KITCHEN = (0.0, 0.0, 0.0)
LIVING = (10.0, 0.0, 0.0)
MUG_KITCHEN = (1.0, 0.5, 0.8)
MUG_LIVING = (10.5, 1.0, 0.8)


def look(name: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    v = rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def obs(label: str, position, stamp: float, kind: str = 'object', keyframe_id: str = '',
        appearance: str | None = None) -> Observation:
    return Observation(kind=kind, frame_id='map', position=np.asarray(position, dtype=float),
                       stamp=stamp, vector=look(appearance or label),
                       label=label if kind != 'place' else '', keyframe_id=keyframe_id,
                       tags=(f'room:{"kitchen" if position[0] < 5 else "living_room"}',))


def place(position, stamp: float, keyframe_id: str = '') -> Observation:
    name = 'kitchen' if position[0] < 5 else 'living'
    return obs(name, position, stamp, kind='place', keyframe_id=keyframe_id, appearance=name)


def lap(store: MemoryStore, n: int, things: dict[str, tuple]) -> float:
    """One lap: kitchen, then the living room; ``things`` maps labels to where they are seen."""
    t = T0 + n * LAP
    store.ingest(place(KITCHEN, t, keyframe_id='kf-kitchen'))
    for i, (label, where) in enumerate(things.items()):
        if where[0] < 5:
            store.ingest(obs(label, where, t + 1 + i))
    store.ingest(place(LIVING, t + 10, keyframe_id='kf-living'))
    for i, (label, where) in enumerate(things.items()):
        if where[0] >= 5:
            store.ingest(obs(label, where, t + 11 + i))
    store.consolidate(now=t + 20)
    return t


def current(store: MemoryStore, label: str, **query) -> list:
    result = store.recall(RecallQuery(tags_all=(f'label:{label}',), k=10, **query))
    return [h.engram for h in result.hits]


def test_same_object_on_three_laps_is_one_engram_seen_three_times(make_store) -> None:
    store = make_store()
    for n in range(3):
        lap(store, n, {'mug': MUG_KITCHEN})
    mugs = current(store, 'mug')
    assert len(mugs) == 1 and mugs[0].observation_count == 3
    places = store.place_graph().places
    assert len(places) == 2 and all(p.observation_count == 3 for p in places)


def test_two_identical_objects_in_different_rooms_stay_two(make_store) -> None:
    store = make_store()
    for n in range(4):
        lap(store, n, {'mug': MUG_KITCHEN, 'mug ': MUG_LIVING})   # same label, same look
    mugs = current(store, 'mug')
    assert len(mugs) == 2
    assert sorted(round(m.position[0]) for m in mugs) == [1, 10]
    assert all(m.valid_to is None and m.observation_count == 4 for m in mugs)
    assert current(store, 'mug', changed_since=T0 + 2 * LAP) == []


def test_moved_object_has_one_current_and_one_historical_engram(make_store) -> None:
    store = make_store()
    t1 = lap(store, 0, {'mug': MUG_KITCHEN})
    lap(store, 1, {'mug': MUG_KITCHEN})
    t3 = lap(store, 2, {'mug': MUG_LIVING})     # moved after lap 2: missed in the kitchen
    lap(store, 3, {'mug': MUG_LIVING})

    now = current(store, 'mug')
    assert len(now) == 1 and now[0].position[0] == pytest.approx(MUG_LIVING[0])
    assert now[0].valid_from == pytest.approx(t3 + 11)
    then = current(store, 'mug', at_time=t1 + 50)
    assert len(then) == 1 and then[0].position[0] == pytest.approx(MUG_KITCHEN[0])
    assert then[0].valid_to == pytest.approx(t3 + 11) and then[0].successor_id == now[0].id
    changed = current(store, 'mug', changed_since=t3)
    assert {e.id for e in changed} == {now[0].id, then[0].id}
    all_mugs = store.list_engrams().engrams
    assert sum(e.label == 'mug' for e in all_mugs) == 2
    # A later sighting in the kitchen is not merged into the history.
    assert current(store, 'mug', at_time=t3 + 50)[0].id == now[0].id


def test_moved_object_is_history_once_confirmed_at_its_new_place(make_store) -> None:
    store = make_store()
    lap(store, 0, {'mug': MUG_KITCHEN})
    lap(store, 1, {'mug': MUG_KITCHEN})
    lap(store, 2, {'mug': MUG_LIVING})
    # Seen once in the living room: that alone may be label noise, so the belief holds.
    assert [m.position[0] for m in current(store, 'mug')] == [pytest.approx(MUG_KITCHEN[0]),
                                                               pytest.approx(MUG_LIVING[0])]
    lap(store, 3, {'mug': MUG_LIVING})
    assert [m.position[0] for m in current(store, 'mug')] == [pytest.approx(MUG_LIVING[0])]


def test_one_off_sighting_elsewhere_does_not_move_a_well_seen_object(make_store) -> None:
    # The detector misses the tv in the living room on lap 2, then calls something in the
    # kitchen "tv" once: missed where it was and "seen" elsewhere, but the tv has not moved.
    store = make_store()
    tv = (9.5, -1.0, 0.9)
    lap(store, 0, {'tv': tv})
    lap(store, 1, {'tv': tv})
    lap(store, 2, {})
    t = T0 + 3 * LAP
    store.ingest(place(KITCHEN, t, keyframe_id='kf-kitchen'))    # the robot has left
    store.ingest(obs('tv', MUG_KITCHEN, t + 1))
    store.consolidate(now=t + 5)
    lap(store, 4, {'tv': tv})
    tvs = {round(e.position[0]): e for e in current(store, 'tv')}
    assert set(tvs) == {1, 10}
    assert tvs[10].observation_count == 3 and tvs[1].observation_count == 1
    assert all(e.valid_to is None and e.successor_id == 0 for e in store.list_engrams().engrams)
    assert [e.id for e in current(store, 'tv', changed_since=t)] == [tvs[1].id]


def test_pose_correction_moves_the_place_and_what_is_anchored_to_it(make_store) -> None:
    store = make_store()
    lap(store, 0, {'mug': MUG_KITCHEN, 'book': MUG_LIVING})
    kitchen = next(p for p in store.place_graph().places if p.keyframe_id == 'kf-kitchen')
    mug = current(store, 'mug')[0]
    assert mug.anchor_id == kitchen.id
    yaw = math.pi / 2        # corrected: kitchen keyframe 0.5 m further in x, turned 90 deg
    report = store.correct_poses([PoseCorrection(
        position=np.array([0.5, 0.0, 0.0]),
        orientation=np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)]),
        keyframe_id='kf-kitchen')])
    assert report.places == [kitchen.id] and report.anchored == [mug.id]
    moved = current(store, 'mug')[0]
    np.testing.assert_allclose(moved.position, [0.5 - 0.5, 1.0, 0.8], atol=1e-9)
    book = current(store, 'book')[0]
    np.testing.assert_allclose(book.position, MUG_LIVING)          # other place: untouched


def test_correction_for_an_unknown_keyframe_changes_nothing(make_store) -> None:
    store = make_store()
    lap(store, 0, {'mug': MUG_KITCHEN})
    before = {e.id: e.position.copy() for e in store.list_engrams().engrams}
    with pytest.raises(CorrectionError) as info:
        store.correct_poses([
            PoseCorrection(np.array([9.0, 9.0, 0.0]), np.array([0, 0, 0, 1.0]),
                           keyframe_id='kf-kitchen'),
            PoseCorrection(np.array([1.0, 1.0, 0.0]), np.array([0, 0, 0, 1.0]),
                           keyframe_id='kf-nowhere')])
    assert info.value.status == CorrectionStatus.UNKNOWN_KEYFRAME
    assert 'kf-nowhere' in str(info.value)
    after = {e.id: e.position for e in store.list_engrams().engrams}
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[i], after[i]) for i in before)


def test_place_graph_has_traversal_edges_that_survive_a_reopen(tmp_path: Path) -> None:
    store = MemoryStore(SQLiteStorage(tmp_path / 's'), StoreConfig(dim=DIM))
    for n in range(3):
        lap(store, n, {'mug': MUG_KITCHEN})
    graph = store.place_graph()
    ids = sorted(p.id for p in graph.places)
    assert [(e.a, e.b) for e in graph.edges] == [tuple(ids)]
    # kitchen -> living inside each lap, living -> kitchen between laps (gap 90 s > 60 s: no)
    assert graph.edges[0].traversals == 3
    mug = current(store, 'mug')[0]
    assert graph.anchors == {mug.id: mug.anchor_id}
    store.close()
    with MemoryStore(SQLiteStorage(tmp_path / 's'), StoreConfig(dim=DIM)) as again:
        assert again.place_graph().edges == graph.edges


def test_feedback_moves_the_score_and_unknown_ids_change_nothing(make_store) -> None:
    store = make_store()
    lap(store, 0, {'mug': MUG_KITCHEN, 'book': MUG_LIVING})
    mug, book = current(store, 'mug')[0], current(store, 'book')[0]
    up = store.feedback([mug.id], helped=True)
    assert up[0].score > mug.score
    down = store.feedback([book.id], helped=False)
    assert down[0].score < book.score
    with pytest.raises(FeedbackError) as info:
        store.feedback([mug.id, 999_999], helped=True)
    assert info.value.status == FeedbackStatus.UNKNOWN_ID and '999999' in str(info.value)
    assert store.get([mug.id])[0].score == pytest.approx(up[0].score)
    with pytest.raises(FeedbackError) as info:
        store.feedback([], helped=True)
    assert info.value.status == FeedbackStatus.EMPTY


@pytest.mark.parametrize('log_batch', [1000, 4])
def test_eviction_under_a_tiny_budget_keeps_pinned_and_useful_engrams(make_store, caplog,
                                                                      monkeypatch, log_batch
                                                                      ) -> None:
    from engram_ros.core.memory import writes
    monkeypatch.setattr(writes, '_EVICT_LOG_BATCH', log_batch)   # records read in batches
    store = make_store(budget=100)
    for i in range(8):
        store.ingest(obs(f'thing{i}', (3.0 * i, 20.0, 0.5), T0 + i, appearance=f't{i}'))
    ids = {e.label: e.id for e in store.list_engrams().engrams}
    store.edit(ids['thing0'], pinned=True)
    for _ in range(10):                     # seen once, but it helped every time
        store.feedback([ids['thing1']], helped=True)
    store.config.budget = 2
    with caplog.at_level(logging.INFO, logger='engram_ros.core.memory'):
        report = store.consolidate(now=T0 + 100)
    kept = {e.label for e in store.list_engrams().engrams}
    assert kept == {'thing0', 'thing1'} and report.forgotten == 6
    assert sum('evicted engram' in r.getMessage() for r in caplog.records) == 6
    evictions = [r for r in store.audit.records() if r['action'] == 'evict']
    assert evictions and evictions[-1]['result']['count'] == 6


def test_a_budget_of_zero_is_refused_and_nothing_changes(make_store) -> None:
    store = make_store()
    lap(store, 0, {'mug': MUG_KITCHEN})
    size = len(store)
    store.config.budget = 0
    with pytest.raises(ValueError, match='budget=0'):
        store.consolidate()
    assert len(store) == size


def test_batch_duplicate_search_merges_like_the_per_engram_search(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    engrams = []
    for thing in range(60):                  # 60 things seen 4 times each, 2 identical looks
        centre = rng.uniform(0.0, 30.0, size=3)
        for _ in range(4):
            engrams.append(Engram(
                id=0, kind='object', frame_id='map',
                position=centre + rng.normal(scale=0.05, size=3),
                vector=look(f'thing{thing % 30}') + 0.05 * rng.normal(size=DIM),
                first_seen=T0, last_seen=T0, tags=(f'label:thing{thing % 30}',),
                label=f'thing{thing % 30}', last_access=T0))
    sizes = []
    for batch_min in (10**9, 1):
        store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM,
                                                         batch_consolidation_min=batch_min))
        store.bulk_load(engrams)
        report = store.consolidate(now=T0 + 1)
        sizes.append((report.merged, len(store),
                      sorted(e.observation_count for e in store.list_engrams().engrams)))
    assert sizes[0] == sizes[1] == (180, 60, [4] * 60)


@pytest.mark.parametrize('batch_min', [1, 10**9], ids=['batch', 'one-by-one'])
def test_a_keep_is_absorbed_again_by_a_later_cluster(make_store, batch_min: int) -> None:
    """Y is close to K and K to X, but Y not to X: K (seen twice) absorbs Y, then X. The batch
    pass fuses the second cluster from the result of the first, as the per-engram pass does."""
    store = make_store(batch_consolidation_min=batch_min)

    def sighting(x: float, count: int) -> Engram:
        return Engram(id=0, kind='object', frame_id='map', position=np.array([x, 0.0, 0.8]),
                      vector=look('mug'), first_seen=T0 + x, last_seen=T0 + x,
                      tags=('label:mug',), label='mug', observation_count=count,
                      last_access=T0)

    _, k, _ = store.bulk_load([sighting(0.0, 1), sighting(0.4, 2), sighting(0.8, 1)])
    report = store.consolidate(now=T0 + 10)
    assert report.merged == 2
    engrams = store.list_engrams().engrams
    assert [(e.id, e.observation_count) for e in engrams] == [(k, 4)]
    # equal position variances: inverse-variance fusion is the mean of the three sightings
    np.testing.assert_allclose(engrams[0].position, [0.4, 0.0, 0.8], atol=1e-9)
    assert (engrams[0].first_seen, engrams[0].last_seen) == (T0, T0 + 0.8)
    assert [e.id for e in current(store, 'mug', center=np.array([0.4, 0.0, 0.8]),
                                  radius=0.1)] == [k]


@pytest.mark.parametrize('batch_min', [1, 10**9], ids=['batch', 'one-by-one'])
def test_several_names_merge_with_any_they_share(make_store, batch_min: int) -> None:
    """An engram named both cup and mug absorbs a mug and an unnamed sighting, never a bowl
    (identity sets of more than one name take the general compatibility test)."""
    store = make_store(batch_consolidation_min=batch_min)

    def sighting(tags: tuple[str, ...], x: float) -> Engram:
        return Engram(id=0, kind='object', frame_id='map', position=np.array([x, 0.0, 0.8]),
                      vector=look('mug'), first_seen=T0, last_seen=T0, tags=tags,
                      last_access=T0)

    both, _, bowl, _ = store.bulk_load([
        sighting(('label:cup', 'label:mug'), 0.0), sighting(('label:mug',), 0.1),
        sighting(('label:bowl',), 0.2), sighting((), 0.3)])
    report = store.consolidate(now=T0 + 10)
    assert report.merged == 2
    assert sorted((e.id, e.observation_count, e.tags) for e in store.list_engrams().engrams) == [
        (both, 3, ('label:cup', 'label:mug')), (bowl, 1, ('label:bowl',))]


def test_consolidation_leaves_the_garbage_collector_as_it_found_it(make_store) -> None:
    store = make_store(batch_consolidation_min=1)
    lap(store, 0, {'mug': MUG_KITCHEN})
    assert gc.isenabled()
    gc.disable()
    try:
        lap(store, 1, {'mug': MUG_KITCHEN})
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize('support, kept', [(0, {'mug', 'bowl'}), (3, {'mug'})])
def test_one_off_mislabel_of_an_established_thing_is_label_noise(support: int, kept) -> None:
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM, merge=MergePolicy(
        noise_support=support)))
    for n in range(3):
        lap(store, n, {'mug': MUG_KITCHEN})
    # The detector calls the mug a bowl once; the next look sees the mug, no bowl.
    store.ingest(obs('bowl', MUG_KITCHEN, T0 + 3 * LAP + 1, appearance='mug'))
    # Before the robot looks there again, one look is no evidence either way (a real bowl
    # just put by the mug looks the same so far).
    report = store.consolidate(now=T0 + 3 * LAP + 20)
    labels = {e.label for e in store.list_engrams().engrams if e.kind == 'object'}
    assert labels == {'mug', 'bowl'} and report.absorbed == 0
    # The next lap looks again and sees the mug, no bowl: the bowl was the mug misnamed.
    store.ingest(place(KITCHEN, T0 + 4 * LAP, keyframe_id='kf-kitchen'))
    store.ingest(obs('mug', MUG_KITCHEN, T0 + 4 * LAP + 1))
    store.ingest(place(LIVING, T0 + 4 * LAP + 10, keyframe_id='kf-living'))
    report = store.consolidate(now=T0 + 4 * LAP + 20)
    labels = {e.label for e in store.list_engrams().engrams if e.kind == 'object'}
    assert labels == kept and report.absorbed == (1 if support else 0)


def test_a_new_thing_by_a_lookalike_is_not_label_noise_before_a_second_look() -> None:
    """The demo's mug put on the dresser by the vase (issue 14): a consolidation between its
    first and second look must not forget it as the vase misnamed."""
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM, merge=MergePolicy(
        noise_support=3)))
    for n in range(3):
        lap(store, n, {'mug': MUG_KITCHEN})
    t = T0 + 3 * LAP
    store.ingest(place(KITCHEN, t, keyframe_id='kf-kitchen'))
    first = store.ingest(obs('bowl', MUG_KITCHEN, t + 1, appearance='mug')).engram_id
    assert store.consolidate(now=t + 1.5).absorbed == 0           # between the two looks
    again = store.ingest(obs('bowl', MUG_KITCHEN, t + 2, appearance='mug'))
    assert again.engram_id == first and again.merged
    store.ingest(place(LIVING, t + 10, keyframe_id='kf-living'))
    assert store.consolidate(now=t + 20).absorbed == 0            # seen twice: a bowl
    labels = sorted(e.label for e in store.list_engrams().engrams if e.kind == 'object')
    assert labels == ['bowl', 'mug']


def test_label_noise_is_on_by_default_and_waits_for_a_later_look() -> None:
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM))
    assert store.config.merge.noise_support > 0
    for n in range(3):
        lap(store, n, {'mug': MUG_KITCHEN})
    store.ingest(obs('bowl', MUG_KITCHEN, T0 + 3 * LAP + 1, appearance='mug'))
    # No look at that place since the bowl: it stays, unconfirmed, through this pass.
    report = store.consolidate(now=T0 + 3 * LAP + 2)
    labels = {e.label for e in store.list_engrams().engrams if e.kind == 'object'}
    assert labels == {'mug', 'bowl'} and report.absorbed == 0
    # The next lap sees the mug there and no bowl: at its pass, the one-off (no longer
    # written since the last pass) is found from the mug and forgotten.
    lap(store, 4, {'mug': MUG_KITCHEN})
    labels = {e.label for e in store.list_engrams().engrams if e.kind == 'object'}
    assert labels == {'mug'}


def test_a_new_lookalike_seen_twice_is_never_label_noise() -> None:
    store = MemoryStore(MemoryStorage(), StoreConfig(dim=DIM))
    for n in range(3):
        lap(store, n, {'mug': MUG_KITCHEN})
    # A bowl that looks like the mug is put beside it: seen twice, it is a thing.
    store.ingest(obs('bowl', MUG_KITCHEN, T0 + 3 * LAP + 1, appearance='mug'))
    store.ingest(obs('bowl', MUG_KITCHEN, T0 + 3 * LAP + 2, appearance='mug'))
    lap(store, 4, {'mug': MUG_KITCHEN})
    labels = {e.label for e in store.list_engrams().engrams if e.kind == 'object'}
    assert labels == {'mug', 'bowl'}


# --------------------------------------------------------------------- size-aware merge radius

def sized(label: str, position, stamp: float, size: str) -> Observation:
    return Observation(kind='object', frame_id='map', position=np.asarray(position, dtype=float),
                       stamp=stamp, vector=look(label), label=label,
                       tags=(f'size:{size}', 'room:kitchen'))


@pytest.mark.parametrize('batch', [False, True])
def test_large_things_merge_over_a_wider_radius_small_ones_do_not(make_store, batch):
    # The batch path from 1 changed engram on, or the one-by-one path.
    store = make_store(batch_consolidation_min=1 if batch else 10 ** 6)
    # Seen from far-apart views, a sofa's centre estimates land 0.8 m apart: one sofa. Two
    # mugs 0.8 m apart are two mugs.
    store.bulk_load([Engram.from_observation(i + 1, o) for i, o in enumerate([
        sized('sofa', (1.0, 0.0, 0.4), T0, 'large'),
        sized('sofa', (1.8, 0.0, 0.4), T0 + 1, 'large'),
        sized('mug', (1.0, 3.0, 0.8), T0, 'small'),
        sized('mug', (1.8, 3.0, 0.8), T0 + 1, 'small')])])
    report = store.consolidate(now=T0 + 10)
    assert report.merged == 1
    labels = sorted(h.engram.label for h in store.recall(RecallQuery(kinds=['object'], k=10),
                                                         now=T0 + 10).hits)
    assert labels == ['mug', 'mug', 'sofa']


def test_a_sighting_of_a_large_thing_reactivates_it_over_the_wider_radius(make_store):
    store = make_store()
    first = store.ingest(sized('table', (2.0, 1.0, 0.4), T0, 'large'))
    # A partial view sizes it medium, 0.7 m off: still the large table (the larger radius).
    again = store.ingest(sized('table', (2.7, 1.0, 0.4), T0 + 5, 'medium'))
    assert again.merged and again.engram_id == first.engram_id
    mug = store.ingest(sized('mug', (5.0, 1.0, 0.8), T0, 'small'))
    other = store.ingest(sized('mug', (5.7, 1.0, 0.8), T0 + 5, 'small'))
    assert not other.merged and other.engram_id != mug.engram_id


def test_budget_eviction_streams_storage_and_follows_the_rule(make_store) -> None:
    """The pass weighs columns streamed from storage; what it evicts is exactly the rule on
    the records: lowest retention first, pinned / useful / important engrams kept."""
    from engram_ros.core.forgetting import protected
    from engram_ros.core.forgetting import retention
    from engram_ros.core.forgetting import RetentionPolicy
    from engram_ros.core.model.engram import TIER_LONG
    rng = np.random.default_rng(5)
    store = make_store(budget=1000, retention=RetentionPolicy(
        important_tags=('label:extinguisher',)))
    engrams = []
    for i in range(60):
        label = 'extinguisher' if i % 9 == 0 else f'thing{i}'
        engrams.append(Engram(
            id=0, kind='object', frame_id='map', position=np.array([10.0 * i, 0.0, 0.0]),
            vector=look(f'thing{i}'), first_seen=T0, last_seen=T0 + float(rng.uniform(0, 1e5)),
            label=label, tags=(f'label:{label}',), tier=TIER_LONG,
            score=0.97 if i % 13 == 0 else float(rng.uniform(0, 0.9)),
            observation_count=int(rng.integers(1, 30)), pinned=i % 7 == 0))
    store.bulk_load(engrams)
    now = T0 + 2e5
    records = list(store.storage.iter_all())
    policy = store.config.retention
    evictable = sorted((e for e in records if not protected(e, policy)),
                       key=lambda e: (retention(e, now, policy), e.last_seen, e.id))
    store.config.budget = 20
    report = store.consolidate(now=now)
    assert report.merged == 0
    assert sorted(report.evicted_ids) == sorted(e.id for e in evictable[:40])
    kept = {e.id for e in store.storage.iter_all()}
    assert all(e.id in kept for e in records if protected(e, policy))
