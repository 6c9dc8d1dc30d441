"""Poses, camera extrinsics and back-projection: a known point lands where it is."""

import math

import numpy as np
import pytest
import transforms3d

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import backproject
from engram_ros.perception.geometry import camera_extrinsic
from engram_ros.perception.geometry import checked_pose
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.geometry import project
from engram_ros.perception.geometry import transform_points
from engram_ros.perception.pose_buffer import PoseBuffer

K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)


def yaw_quat(yaw: float) -> np.ndarray:
    w, x, y, z = transforms3d.euler.euler2quat(0.0, 0.0, yaw, 'sxyz')
    return np.array([x, y, z, w])


@pytest.mark.parametrize('robot_xy, yaw, cam_xyz, cam_rpy, target', [
    ((0.0, 0.0), 0.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (3.0, 0.0, 0.0)),
    ((1.0, 2.0), math.pi / 2, (0.2, 0.0, 1.0), (0.0, 0.3, 0.0), (1.3, 4.5, 0.4)),
    ((-2.0, 0.5), -2.5, (0.1, 0.05, 0.8), (0.0, 0.2, 0.1), (-3.5, -0.8, 0.3)),
])
def test_known_point_seen_from_known_pose_lands_within_a_centimetre(robot_xy, yaw, cam_xyz,
                                                                     cam_rpy, target):
    base = checked_pose((*robot_xy, 0.0), yaw_quat(yaw))
    t_map_optical = base.matrix() @ camera_extrinsic(cam_xyz, cam_rpy)
    target = np.array(target)
    in_camera = transform_points(np.linalg.inv(t_map_optical), target[None])
    assert in_camera[0, 2] > 0.0, 'the target must be in front of the camera'
    u, v = project(in_camera, K)[0]
    # The pixel grid quantises: round to the pixel that sees it, as a depth image would.
    pixel = np.round([u, v])
    depth = in_camera[0, 2]
    seen = transform_points(t_map_optical, backproject(pixel[:1], pixel[1:], [depth], K))[0]
    assert np.linalg.norm(seen - target) < 0.01


def test_forward_camera_conventions_agree():
    body = camera_extrinsic((0.1, 0.0, 0.5), (0.0, 0.0, 0.0), 'body')
    optical = camera_extrinsic((0.1, 0.0, 0.5), (-math.pi / 2, 0.0, -math.pi / 2), 'optical')
    assert np.allclose(body, optical, atol=1e-9)
    # optical z (forward) is base x; optical x (right) is base -y; optical y (down) is base -z
    assert np.allclose(body[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]])


@pytest.mark.parametrize('position, quat', [
    ((math.nan, 0, 0), (0, 0, 0, 1)), ((0, 0, 0), (0, 0, 0, 2)), ((0, 0, 0), (0, 0, 0, 0)),
    ((0, 0, 0), (0, 0, math.inf, 1)), ((0, 0), (0, 0, 0, 1))])
def test_bad_poses_are_rejected(position, quat):
    with pytest.raises(InputRejected) as info:
        checked_pose(position, quat)
    assert info.value.reason == 'bad_pose'


@pytest.mark.parametrize('k, w, h', [([0] * 9, 640, 480), ([525, 0, 320, 0, 525, 240, 0, 0, 1],
                                                          0, 480),
                                     ([math.nan, 0, 320, 0, 525, 240, 0, 0, 1], 640, 480)])
def test_bad_camera_info_is_rejected(k, w, h):
    with pytest.raises(InputRejected):
        Intrinsics.from_k(k, w, h)


def test_pose_buffer_interpolates_and_refuses_what_it_cannot_tell():
    buf = PoseBuffer(tolerance=0.1)
    buf.add(10.0, checked_pose((0, 0, 0), yaw_quat(0.0)))
    buf.add(11.0, checked_pose((2, 0, 0), yaw_quat(1.0)))
    mid = buf.lookup(10.5)
    assert np.allclose(mid.position, (1, 0, 0)) and mid.yaw() == pytest.approx(0.5)
    assert buf.lookup(11.05) is not None and buf.lookup(11.5) is None
    assert buf.lookup(9.0) is None
    with pytest.raises(InputRejected):
        buf.add(10.5, checked_pose((0, 0, 0), yaw_quat(0.0)))
    buf.add(14.0, checked_pose((9, 0, 0), yaw_quat(0.0)))     # a gap in odometry
    assert buf.lookup(12.5) is None and np.allclose(buf.lookup(13.95).position, (9, 0, 0))
