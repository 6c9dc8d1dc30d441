"""Object engrams: detection + depth + pose -> position, extent, colour, size; bad depth skips."""

import math

import numpy as np
import pytest

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import camera_extrinsic
from engram_ros.perception.geometry import checked_pose
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.objects import behind_visible_surface
from engram_ros.perception.objects import Detection
from engram_ros.perception.objects import object_confidence
from engram_ros.perception.objects import object_tags
from engram_ros.perception.objects import ObjectLocator
from engram_ros.perception.scenes import depth_of_solids
from engram_ros.perception.scenes import rgbd_with_objects

from test_geometry import yaw_quat

K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
T = checked_pose((1.0, 2.0, 0.0), yaw_quat(math.pi / 2)).matrix() @ camera_extrinsic(
    (0.2, 0.0, 1.0), (0.0, 0.2, 0.0))
MUG = np.array([1.1, 4.0, 0.6])


def scene():
    return rgbd_with_objects(K, T, [(MUG, 0.05, (200, 20, 20))], background_seed=3)


def test_box_on_a_textured_wall_gives_the_position_extent_colour_and_size():
    rgb, depth, (box,) = scene()
    # the detector's box is looser than the object: background must not pull the estimate
    loose = (box[0] - 15, box[1] - 10, box[2] + 15, box[3] + 10)
    est = ObjectLocator().locate(Detection('cup', 0.9, loose), depth, rgb, K, T)
    assert np.linalg.norm(est.position - MUG) < 0.02
    assert 0.07 < est.extent.max() < 0.13
    assert est.size_class == 'small' and est.depth_quality > 0.2
    assert object_tags('cup', est.colour, est.size_class) == ('color:red', 'label:mug',
                                                              'size:small')


def test_mask_selects_the_object_and_outliers_are_removed():
    rgb, depth, (box,) = scene()
    mask = np.zeros(depth.shape, bool)
    c0, r0, c1, r1 = (int(v) for v in box)
    mask[r0:r1, c0:c1] = True
    spikes = depth.copy()
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(r0, r1, 10), rng.integers(c0, c1, 10)
    spikes[rows, cols] = 0.5                            # a few flying pixels
    est = ObjectLocator().locate(Detection('cup', 0.9, box, mask), spikes, rgb, K, T)
    assert np.linalg.norm(est.position - MUG) < 0.02


@pytest.mark.parametrize('bad', [0.0, math.nan, math.inf, 50.0])
def test_no_valid_depth_in_the_box_is_skipped_never_guessed(bad):
    rgb, depth, (box,) = scene()
    c0, r0, c1, r1 = (int(v) for v in box)
    depth[r0 - 20:r1 + 20, c0 - 20:c1 + 20] = bad
    with pytest.raises(InputRejected) as info:
        ObjectLocator().locate(Detection('cup', 0.9, box), depth, rgb, K, T)
    assert info.value.reason == 'no_valid_depth'


@pytest.mark.parametrize('box', [(700, 10, 800, 50), (100, 100, 100.5, 200),
                                 (math.nan, 0, 10, 10)])
def test_boxes_outside_or_degenerate_are_skipped(box):
    rgb, depth, _ = scene()
    with pytest.raises(InputRejected) as info:
        ObjectLocator().locate(Detection('cup', 0.9, box), depth, rgb, K, T)
    assert info.value.reason == 'bad_box'


def test_mask_of_another_size_is_skipped():
    rgb, depth, (box,) = scene()
    with pytest.raises(InputRejected):
        ObjectLocator().locate(Detection('cup', 0.9, box, np.ones((10, 10), bool)), depth,
                               rgb, K, T)


def test_confidence_combines_score_and_depth_quality():
    assert object_confidence(0.8, 1.0) == pytest.approx(0.8)
    assert object_confidence(0.8, 0.0) == pytest.approx(0.4)
    assert object_confidence(math.nan, 1.0) == 0.0


@pytest.mark.parametrize('target', [(1.1, 4.0, 0.6), (0.6, 3.5, 0.3), (1.5, 5.0, 1.0)])
def test_a_small_thing_at_a_known_place_seen_from_a_known_pose_lands_within_a_centimetre(
        target):
    target = np.array(target)
    rgb, depth, (box,) = rgbd_with_objects(K, T, [(target, 0.01, (200, 20, 20))],
                                           background_seed=3)
    est = ObjectLocator(min_points=5).locate(Detection('cup', 0.9, box), depth, rgb, K, T)
    assert np.linalg.norm(est.position - target) < 0.01


def camera_looking_at(xy, yaw: float, distance: float) -> np.ndarray:
    """The test robot's camera (1 m up, 0.2 rad down) ``distance`` m from ``xy``, facing it."""
    robot = np.asarray(xy) - distance * np.array([math.cos(yaw), math.sin(yaw)])
    return checked_pose((*robot, 0.0), yaw_quat(yaw)).matrix() @ camera_extrinsic(
        (0.1, 0.0, 1.0), (0.0, 0.2, 0.0))


def locate_solid(t: np.ndarray, **solid):
    depth, (mask,) = depth_of_solids(K, t, **solid)
    rows, cols = np.nonzero(mask)
    box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    rgb = np.full((K.height, K.width, 3), 90, np.uint8)
    return ObjectLocator().locate(Detection('plant', 0.9, box, mask), depth, rgb, K, t)


def xy_error(position, xy) -> float:
    return float(np.hypot(*(np.asarray(position)[:2] - xy)))


@pytest.mark.parametrize('yaw', [0.0, 0.7, 2.5])
@pytest.mark.parametrize('distance', [1.5, 3.0])
def test_a_round_object_is_placed_at_its_centre_not_on_its_visible_side(yaw, distance):
    # a potted plant (radius 0.2 m, 1.2 m tall) and a mug on a table, seen from the side:
    # the camera sees their near halves, whose centre is short of theirs by about r/2
    xy = np.array([1.0, 2.0])
    t = camera_looking_at(xy, yaw, distance)
    for radius, z0, z1 in ((0.2, 0.0, 1.2), (0.05, 0.63, 0.75)):
        est = locate_solid(t, cylinders=[(*xy, radius, z0, z1)])
        before, after = xy_error(est.surface_centre, xy), xy_error(est.position, xy)
        assert after < before, (radius, before, after)
        assert after < 0.4 * radius, (radius, before, after)
    plant = locate_solid(camera_looking_at(xy, 0.0, distance),
                         cylinders=[(*xy, 0.2, 0.0, 1.2)])
    assert xy_error(plant.position, xy) < 0.6 * xy_error(plant.surface_centre, xy)


@pytest.mark.parametrize('yaw', [0.0, 0.7, 2.5])
def test_a_box_seen_whole_from_above_is_not_pushed_back(yaw):
    # its top is in view, so the visible surface already spans it: moving it would be a bias
    xy = np.array([1.0, 2.0])
    est = locate_solid(camera_looking_at(xy, yaw, 2.0),
                       boxes=[((0.8, 1.8, 0.0), (1.2, 2.2, 0.3))])
    assert xy_error(est.position, xy) <= xy_error(est.surface_centre, xy) + 0.005
    assert xy_error(est.position, xy) < 0.01


def test_the_centre_behind_a_visible_surface_from_ideal_points():
    camera = np.array([0.0, 0.0, 1.0])
    centre = np.array([5.0, 0.0])
    radius = 0.2
    # the visible arc of a circle: from the camera, between the two tangent points (which are
    # r^2/d = 8 mm in front of the centre)
    direction = math.atan2(-centre[1], -centre[0])
    half = math.acos(radius / np.linalg.norm(centre))
    angles = np.linspace(direction - half, direction + half, 400)
    arc = centre + radius * np.stack((np.cos(angles), np.sin(angles)), axis=1)
    points = np.concatenate([np.column_stack((arc, np.full(len(arc), z)))
                             for z in (0.2, 0.5, 0.8)])
    surface = (points.min(axis=0) + points.max(axis=0)) / 2.0
    found = behind_visible_surface(points, surface, camera)
    assert np.linalg.norm(found[:2] - centre) < 0.01 < np.linalg.norm(surface[:2] - centre)
    assert found[2] == surface[2]
    # a table top seen whole, and a face seen head on, stay where they are seen
    xs, ys = np.meshgrid(np.linspace(2.0, 3.0, 20), np.linspace(-0.4, 0.4, 20))
    top = np.column_stack((xs.ravel(), ys.ravel(), np.full(xs.size, 0.7)))
    face = top[:, [2, 1, 0]] * [4.0, 1.0, 1.0]                    # the plane x = 2.8
    for seen in (top, face):
        middle = (seen.min(axis=0) + seen.max(axis=0)) / 2.0
        assert np.allclose(behind_visible_surface(seen, middle, camera), middle)
