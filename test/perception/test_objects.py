"""Object engrams: detection + depth + pose -> position, extent, colour, size; bad depth skips."""

import math

import numpy as np
import pytest

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import camera_extrinsic
from engram_ros.perception.geometry import checked_pose
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.objects import Detection
from engram_ros.perception.objects import object_confidence
from engram_ros.perception.objects import object_tags
from engram_ros.perception.objects import ObjectLocator
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
