"""Free space from depth (perception/free_space.py) on synthetic depth images: what rays pass
through is empty, what they end in is not, no return says nothing, RAM is capped and counted;
the ghost check refuses a centre only in space seen empty."""

from __future__ import annotations

import numpy as np
import pytest

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.free_space import FreeSpace
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.ghosts import GhostCheck

K = Intrinsics(80.0, 80.0, 40.0, 30.0, 80, 60)


def facing_x(x: float = 0.0, y: float = 0.0, z: float = 1.0) -> np.ndarray:
    """Optical frame at (x, y, z) looking along +x of the map (z up)."""
    t = np.eye(4)
    t[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    t[:3, 3] = (x, y, z)
    return t


def wall(distance: float) -> np.ndarray:
    return np.full((K.height, K.width), distance, dtype=np.float32)


def test_rays_make_the_space_before_a_wall_empty_and_the_wall_not():
    space = FreeSpace(stride=2)
    for _ in range(3):
        space.integrate(wall(4.0), K, facing_x())
    assert space.frames == 3
    mid = space.state((2.05, 0.05, 1.05))
    assert mid.free == 3 and mid.hit == 0 and mid.free_since_hit == 3
    at_wall = space.state((4.02, 0.05, 1.05))
    assert at_wall.hit == 3 and at_wall.free_since_hit == 0
    assert space.state((5.05, 0.05, 1.05)).free == 0          # behind the wall: never seen
    assert space.seen_through((2.05, 0.05, 1.05), 3)
    assert not space.seen_through((2.05, 0.05, 1.05), 4)
    assert space.empty_around((2.05, 0.05, 1.05), 3)
    assert not space.empty_around((3.95, 0.05, 1.05), 1)       # a voxel around is the wall


def test_something_seen_where_space_was_empty_resets_it():
    space = FreeSpace(stride=1)
    for _ in range(3):
        space.integrate(wall(4.0), K, facing_x())
    point = (2.05, 0.05, 1.05)
    assert space.empty_around(point, 3)
    depth = wall(4.0)
    depth[20:40, 30:50] = 2.02          # a thing put 2 m ahead, seen in the middle of the image
    space.integrate(depth, K, facing_x())
    assert space.state(point).free_since_hit == 0 and not space.empty_around(point, 1)
    space.integrate(wall(4.0), K, facing_x())        # it went away again
    assert space.state(point).free_since_hit == 1


def test_no_return_says_nothing_and_far_returns_are_left_out():
    space = FreeSpace(stride=2, max_depth=6.0)
    space.integrate(np.full((K.height, K.width), np.nan, dtype=np.float32), K, facing_x())
    space.integrate(np.zeros((K.height, K.width), dtype=np.float32), K, facing_x())
    space.integrate(wall(7.0), K, facing_x())
    assert space.frames == 3 and space.blocks == 0
    assert space.state((2.05, 0.05, 1.05)).free == 0


def test_a_frame_is_counted_once_and_ram_is_capped_with_drops_counted():
    space = FreeSpace(stride=2)
    space.add_frame(1.0, wall(4.0), K, facing_x())
    space.add_frame(1.0, wall(4.0), K, facing_x())          # the same frame again: once
    assert space.frames == 1 and space.voxels_dropped == 0
    capped = FreeSpace(stride=2, max_blocks=1)
    capped.integrate(wall(4.0), K, facing_x())
    assert capped.blocks == 1 and capped.voxels_dropped > 0


@pytest.mark.parametrize('kwargs', [{'voxel': 0.0}, {'stride': 0}, {'min_depth': 6.0},
                                    {'margin': -0.1}, {'max_blocks': 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        FreeSpace(**kwargs)


def test_the_ghost_check_refuses_a_centre_in_space_seen_empty_only_when_on():
    space = FreeSpace(stride=2)
    for _ in range(3):
        space.integrate(wall(4.0), K, facing_x())
    check = GhostCheck(free_space_min=3)
    with pytest.raises(InputRejected) as err:
        check.check_not_in_free_space('mug', np.array([2.05, 0.05, 1.05]), space)
    assert err.value.reason == 'ghost_free_space'
    check.check_not_in_free_space('mug', np.array([3.95, 0.05, 1.05]), space)   # at the wall
    GhostCheck(free_space_min=4).check_not_in_free_space('mug', np.array([2.05, 0.05, 1.05]),
                                                         space)
    GhostCheck().check_not_in_free_space('mug', np.array([2.05, 0.05, 1.05]), space)   # off
    GhostCheck(free_space_min=3, enabled=False).check_not_in_free_space(
        'mug', np.array([2.05, 0.05, 1.05]), space)
    check.check_not_in_free_space('mug', np.array([2.05, 0.05, 1.05]), None)
