"""Rotations in ROS conventions: quaternions (x, y, z, w), fixed-axis roll/pitch/yaw."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engram_ros.core.geometry import matrix_to_quat
from engram_ros.core.geometry import matrix_to_rpy
from engram_ros.core.geometry import pose_matrix
from engram_ros.core.geometry import quat_to_matrix
from engram_ros.core.geometry import rpy_to_matrix
from engram_ros.core.geometry import transform_matrix

H = math.sqrt(0.5)

# (quaternion x, y, z, w; its rotation matrix), worked out by hand.
QUATERNIONS = [
    ((0.0, 0.0, 0.0, 1.0), np.eye(3)),
    ((0.0, 0.0, H, H), [[0, -1, 0], [1, 0, 0], [0, 0, 1]]),          # +90 deg about z
    ((0.0, 0.0, -H, H), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]),         # -90 deg about z
    ((H, 0.0, 0.0, H), [[1, 0, 0], [0, 0, -1], [0, 1, 0]]),          # +90 deg about x
    ((0.0, H, 0.0, H), [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]),          # +90 deg about y
    ((1.0, 0.0, 0.0, 0.0), [[1, 0, 0], [0, -1, 0], [0, 0, -1]]),     # 180 deg about x
    ((0.0, 0.0, 1.0, 0.0), [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]),     # 180 deg about z
    ((0.5, 0.5, 0.5, 0.5), [[0, 0, 1], [1, 0, 0], [0, 1, 0]]),       # 120 deg about (1,1,1)
]


@pytest.mark.parametrize('q,matrix', QUATERNIONS)
def test_quat_to_matrix_takes_ros_order(q, matrix):
    np.testing.assert_allclose(quat_to_matrix(np.array(q)), matrix, atol=1e-12)


@pytest.mark.parametrize('q,matrix', QUATERNIONS)
def test_matrix_to_quat_inverts_it_with_w_non_negative(q, matrix):
    got = matrix_to_quat(np.array(matrix, dtype=float))
    assert got.shape == (4,) and got[3] >= 0.0
    assert np.linalg.norm(got) == pytest.approx(1.0)
    # q and -q are the same rotation; the result is the one with w >= 0.
    sign = 1.0 if q[3] > 0.0 else float(np.sign(np.dot(got, q)))
    np.testing.assert_allclose(got, sign * np.array(q), atol=1e-12)


def test_quaternion_order_is_not_transforms3d_order():
    # (w, x, y, z) = (0, 0, 0, 1) read as ROS (x, y, z, w) is 180 deg about z, not identity.
    np.testing.assert_allclose(quat_to_matrix([0.0, 0.0, 1.0, 0.0]),
                               np.diag([-1.0, -1.0, 1.0]), atol=1e-12)


def test_matrix_to_quat_of_a_large_rotation_round_trips():
    # Trace < 0 (the branch where the old hand-written code could return w < 0).
    r = rpy_to_matrix(2.5, -0.4, 2.9)
    assert np.trace(r) < 0.0
    q = matrix_to_quat(r)
    assert q[3] >= 0.0
    np.testing.assert_allclose(quat_to_matrix(q), r, atol=1e-12)


@pytest.mark.parametrize('rpy,matrix', [
    ((0.0, 0.0, 0.0), np.eye(3)),
    ((0.0, 0.0, math.pi / 2), [[0, -1, 0], [1, 0, 0], [0, 0, 1]]),
    ((math.pi / 2, 0.0, 0.0), [[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
    ((0.0, math.pi / 2, 0.0), [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
    # The optical frame of a level camera looking along base x: z forward, x right, y down.
    ((-math.pi / 2, 0.0, -math.pi / 2), [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]),
])
def test_rpy_to_matrix_is_static_xyz(rpy, matrix):
    np.testing.assert_allclose(rpy_to_matrix(*rpy), matrix, atol=1e-12)


def test_rpy_to_matrix_is_yaw_after_pitch_after_roll():
    roll, pitch, yaw = 0.3, -0.7, 2.1
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch),
                              math.sin(pitch), math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    np.testing.assert_allclose(rpy_to_matrix(roll, pitch, yaw), rz @ ry @ rx, atol=1e-14)
    assert matrix_to_rpy(rz @ ry @ rx) == pytest.approx((roll, pitch, yaw))


def test_pose_matrix_places_rotation_and_translation():
    t = pose_matrix([1.0, 2.0, 3.0], [0.0, 0.0, H, H])
    np.testing.assert_allclose(t, [[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]],
                               atol=1e-12)
    # The frame's x axis points along the parent's y: (1, 0, 0) in the frame is (1, 3, 3).
    np.testing.assert_allclose(t @ [1.0, 0.0, 0.0, 1.0], [1.0, 3.0, 3.0, 1.0], atol=1e-12)
    np.testing.assert_array_equal(transform_matrix(np.eye(3), (4.0, 5.0, 6.0))[:3, 3],
                                  [4.0, 5.0, 6.0])
