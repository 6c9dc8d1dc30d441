"""Visibility: a keyframe's view says what should have been seen; things missed where they
should have been visible on several visits end as history, things out of view or hidden stay.

The views are made from real depth images (a wall and an occluder rendered as planes) by
:meth:`View.from_depth`, then used by a real :class:`MemoryStore`.
"""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.core.audit import AuditLog
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import StoreConfig
from engram_ros.core.model.engram import InvalidObservation
from engram_ros.core.model.engram import Observation
from engram_ros.core.query import RecallQuery
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.visibility import MissPolicy
from engram_ros.core.visibility import MissTracker
from engram_ros.core.visibility import View

DIM = 16
W, H, F = 160, 120, 100.0                   # depth image size [px], focal length [px]
T0 = 1.7e9

# The optical frame looking along +x of the map from (0, 0, 1): z_opt = x_map, x_opt = -y_map,
# y_opt = -z_map.
LOOK_X = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 1.0],
                   [0.0, 0.0, 0.0, 1.0]])


def depth_image(wall: float, occluder: tuple[int, int, float] | None = None) -> np.ndarray:
    """A wall ``wall`` m ahead; optionally a nearer box over columns [c0, c1) at ``d`` m."""
    d = np.full((H, W), wall, dtype=np.float32)
    if occluder is not None:
        c0, c1, near = occluder
        d[:, c0:c1] = near
    return d


def view(wall: float = 5.0, occluder=None, t=LOOK_X) -> View:
    return View.from_depth(depth_image(wall, occluder), F, F, W / 2, H / 2, t)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def test_a_point_in_front_is_seen_one_behind_the_wall_or_camera_is_not():
    v = view(wall=5.0)
    points = np.array([[2.0, 0.0, 1.0],     # in front, in view
                       [6.0, 0.0, 1.0],     # behind the wall
                       [-2.0, 0.0, 1.0],    # behind the camera
                       [2.0, 5.0, 1.0],     # far outside the field of view
                       [4.5, 0.0, 1.0]])    # in view but beyond max_range
    assert v.sees(points, max_range=4.0).tolist() == [True, False, False, False, False]


def test_a_nearer_occluder_hides_what_is_behind_it():
    # Columns 60..100 are covered by a box 1 m ahead: the centre of the image.
    v = view(wall=5.0, occluder=(60, 100, 1.0))
    hidden, beside = [3.0, 0.0, 1.0], [3.0, 1.2, 1.0]   # behind the box / left of it
    assert v.sees(np.array([hidden, beside]), max_range=4.0).tolist() == [False, True]


def test_cells_without_depth_make_nothing_visible():
    v = View.from_depth(np.zeros((H, W), dtype=np.float32), F, F, W / 2, H / 2, LOOK_X)
    assert not v.sees(np.array([[2.0, 0.0, 1.0]])).any()


@pytest.mark.parametrize('bad', [
    dict(depth=np.full((2, 2), np.inf)), dict(depth=np.zeros(4)), dict(fx=0.0),
    dict(orientation=np.array([0.0, 0.0, 0.0, 2.0])), dict(position=np.array([np.nan, 0, 0]))])
def test_bad_views_are_refused(bad):
    fields = dict(depth=np.ones((2, 2)), position=np.zeros(3),
                  orientation=np.array([0.0, 0.0, 0.0, 1.0]), fx=1.0, fy=1.0, cx=1.0, cy=1.0)
    fields.update(bad)
    with pytest.raises(ValueError):
        View(**fields).validate()


def test_misses_count_by_visit_and_a_sighting_clears_them():
    tracker = MissTracker(MissPolicy(visits=2, visit_gap=30.0))
    for t in (100.0, 101.0, 102.0):              # one visit, three keyframes
        tracker.expect([7], t)
    assert tracker.gone({7: 50.0}, now=200.0, grace=5.0) == {}
    tracker.expect([7], 160.0)                   # a second visit
    assert tracker.gone({7: 50.0}, now=162.0, grace=5.0) == {}     # still within its grace
    assert tracker.gone({7: 50.0}, now=200.0, grace=5.0, commit=False) == {7: 100.0}
    tracker.expect([8], 100.0)
    tracker.expect([8], 160.0)
    assert tracker.gone({7: 50.0, 8: 161.0}, now=200.0, grace=5.0) == {7: 100.0}  # 8 seen after


def make_store(**policy) -> MemoryStore:
    return MemoryStore(MemoryStorage(), StoreConfig(dim=DIM, misses=MissPolicy(**policy)),
                       audit=AuditLog(None))


def see(store: MemoryStore, label: str, position, stamp: float, seed: int) -> int:
    return store.ingest(Observation(kind='object', frame_id='map', stamp=stamp,
                                    position=np.asarray(position, dtype=float),
                                    vector=unit(seed), label=label,
                                    tags=('size:medium',))).engram_id


def keyframe(store: MemoryStore, stamp: float, v: View) -> None:
    store.ingest(Observation(kind='place', frame_id='map', stamp=stamp,
                             position=np.array([0.0, 0.0, 0.0]), vector=unit(99), view=v))


def current(store: MemoryStore, label: str, now: float) -> list[int]:
    return [h.engram.id for h in store.recall(RecallQuery(text=label, k=5), now=now).hits]


def test_a_thing_gone_from_view_ends_after_two_visits_and_stays_in_history():
    store = make_store()
    vase = see(store, 'vase', (2.0, 0.0, 1.0), T0, seed=1)
    keyframe(store, T0 + 100, view())            # visit 1: in view, not seen
    assert store.consolidate(now=T0 + 110).ended == []
    keyframe(store, T0 + 200, view())            # visit 2
    report = store.consolidate(now=T0 + 210)
    assert report.ended == [vase]
    assert current(store, 'vase', T0 + 210) == []
    history = store.recall(RecallQuery(text='vase', k=5, changed_since=T0 + 50), now=T0 + 210)
    [hit] = history.hits
    assert hit.engram.id == vase and hit.engram.valid_to == pytest.approx(T0 + 100)
    assert hit.engram.successor_id == 0
    at_start = store.recall(RecallQuery(text='vase', k=5, at_time=T0 + 1), now=T0 + 210)
    assert [h.engram.id for h in at_start.hits] == [vase]


def test_a_dry_run_reports_the_end_and_changes_nothing():
    store = make_store()
    vase = see(store, 'vase', (2.0, 0.0, 1.0), T0, seed=1)
    keyframe(store, T0 + 100, view())
    keyframe(store, T0 + 200, view())
    assert store.consolidate(dry_run=True, now=T0 + 210).ended == [vase]
    assert current(store, 'vase', T0 + 210) == [vase]
    assert store.consolidate(now=T0 + 210).ended == [vase]


def test_things_seen_again_hidden_or_out_of_view_do_not_end():
    store = make_store()
    seen = see(store, 'vase', (2.0, 0.0, 1.0), T0, seed=1)
    hidden = see(store, 'book', (3.0, 0.0, 1.0), T0, seed=2)
    beside = see(store, 'lamp', (0.0, 3.0, 1.0), T0, seed=3)    # 90 deg to the left
    far = see(store, 'chair', (3.8, -0.5, 1.0), T0, seed=4)     # beyond 3.5 m for its size
    box = (70, 90, 1.5)                         # 1.5 m ahead in the middle: hides the book
    for visit in (100.0, 200.0, 300.0):
        keyframe(store, T0 + visit, view(wall=3.5, occluder=box))
        see(store, 'vase', (2.0, 0.05, 1.0), T0 + visit + 1.0, seed=1)
    report = store.consolidate(now=T0 + 400)
    assert report.ended == []
    assert {seen, hidden, beside, far} <= set(
        h.engram.id for h in store.recall(RecallQuery(kinds=['object'], k=10),
                                          now=T0 + 400).hits)


def test_visits_zero_disables_it():
    store = make_store(visits=0)
    see(store, 'vase', (2.0, 0.0, 1.0), T0, seed=1)
    for visit in (100.0, 200.0, 300.0):
        keyframe(store, T0 + visit, view())
    assert store.consolidate(now=T0 + 400).ended == []


def test_a_view_on_an_object_observation_is_refused():
    store = make_store()
    with pytest.raises(InvalidObservation, match='place observation'):
        store.ingest(Observation(kind='object', frame_id='map', stamp=T0,
                                 position=np.zeros(3), vector=unit(1), label='vase',
                                 view=view()))


def test_with_views_a_move_needs_the_old_place_seen_empty():
    store = make_store(visits=3)                 # ends need 3 visits: only moves happen here
    mug = see(store, 'mug', (2.0, 0.0, 1.0), T0, seed=1)
    see(store, 'mug', (2.0, 0.0, 1.0), T0 + 1, seed=1)
    # Seen twice far away while the old place was never looked at again: no move yet (without
    # views, the anchor rule alone would decide).
    keyframe(store, T0 + 50, view(wall=1.0))     # a wall 1 m ahead: the mug is hidden
    other = see(store, 'mug', (0.0, 30.0, 1.0), T0 + 60, seed=1)
    see(store, 'mug', (0.0, 30.0, 1.0), T0 + 61, seed=1)
    assert store.consolidate(now=T0 + 100).moved == []
    assert sorted(current(store, 'mug', T0 + 100)) == sorted([mug, other])
    keyframe(store, T0 + 120, view())            # now the old place is in view, empty
    # Judged right after that keyframe's batch (the store's clock, wall time, is past its
    # grace), not at the next consolidation.
    assert store.misses.moves_at_ingest == 1
    assert store.consolidate(now=T0 + 200).moved == []
    assert current(store, 'mug', T0 + 200) == [other]
    [history] = store.get([mug])
    assert history.successor_id == other
