"""Poses, camera intrinsics and extrinsics, and back-projection of pixels into the map frame.

Frames: ``map`` (the memory frame), ``base_link`` (the robot, pose from odometry), the camera
*body* frame (REP 103: x forward, y left, z up) and the camera *optical* frame (z forward,
x right, y down), in which pixels and depth are measured. Quaternions are ROS order
``(x, y, z, w)``; rotations are computed by :mod:`engram_ros.core.geometry` (transforms3d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engram_ros.core.geometry import matrix_to_quat
from engram_ros.core.geometry import matrix_to_rpy
from engram_ros.core.geometry import pose_matrix
from engram_ros.core.geometry import rpy_to_matrix
from engram_ros.core.geometry import transform_matrix
from engram_ros.perception.errors import InputRejected

#: Rotation from the camera body frame to the optical frame (columns: optical axes in body).
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])

#: Largest deviation of a quaternion's norm from 1 that is accepted (the memory's tolerance).
QUATERNION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Pose:
    """A rigid pose: ``position`` [m] and unit quaternion ``orientation`` (x, y, z, w)."""

    position: np.ndarray
    orientation: np.ndarray

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous transform (parent <- this frame)."""
        return pose_matrix(self.position, self.orientation)

    def yaw(self) -> float:
        return matrix_to_rpy(self.matrix())[2]


def checked_pose(position: Sequence[float], orientation: Sequence[float]) -> Pose:
    """Return a :class:`Pose` from raw numbers, or refuse them.

    :raises InputRejected: ``bad_pose`` for NaN/inf values or a quaternion whose norm is not 1
        (within :data:`QUATERNION_TOLERANCE`).
    """
    p = np.asarray(position, dtype=np.float64).reshape(-1)
    q = np.asarray(orientation, dtype=np.float64).reshape(-1)
    if p.shape != (3,) or q.shape != (4,):
        raise InputRejected('bad_pose', 'a pose needs 3 position and 4 quaternion values')
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise InputRejected('bad_pose', 'pose contains NaN or inf')
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > QUATERNION_TOLERANCE:
        raise InputRejected('bad_pose', f'quaternion norm {norm:.4f}; a unit quaternion is '
                                        'required')
    return Pose(p, q / norm)


def rotation_angle(q1: np.ndarray, q2: np.ndarray) -> float:
    """Angle [rad] of the rotation between two unit quaternions."""
    d = abs(float(np.dot(q1, q2)))
    return 2.0 * math.acos(min(1.0, d))


def slerp(q1: np.ndarray, q2: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (any component order)."""
    d = float(np.dot(q1, q2))
    if d < 0.0:
        q2, d = -q2, -d
    if d > 0.9995:
        q = q1 + t * (q2 - q1)
        return q / np.linalg.norm(q)
    theta = math.acos(d)
    s = math.sin(theta)
    return (math.sin((1.0 - t) * theta) * q1 + math.sin(t * theta) * q2) / s


def camera_extrinsic(xyz: Sequence[float], rpy: Sequence[float],
                     convention: str = 'body') -> np.ndarray:
    """4x4 transform base_link <- camera optical frame.

    :param xyz: camera position in base_link [m].
    :param rpy: roll, pitch, yaw [rad] (static axes) of the camera *body* frame (x forward, the
        ROS ``camera_link``) when ``convention`` is ``'body'``, or of the optical frame itself
        when it is ``'optical'``. A level camera looking along the robot's x axis is
        ``rpy = (0, 0, 0)`` in ``body`` and ``(-pi/2, 0, -pi/2)`` in ``optical``.
    :raises ValueError: for an unknown convention or non-finite numbers.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    rpy = np.asarray(rpy, dtype=np.float64)
    if xyz.shape != (3,) or rpy.shape != (3,) or not (np.all(np.isfinite(xyz))
                                                       and np.all(np.isfinite(rpy))):
        raise ValueError('camera xyz and rpy must be three finite numbers each')
    r = rpy_to_matrix(*rpy)
    if convention == 'body':
        r = r @ R_BODY_OPTICAL
    elif convention != 'optical':
        raise ValueError(f'unknown camera convention {convention!r}; accepted: body, optical')
    return transform_matrix(r, xyz)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the (rectified) image: focal lengths and principal point [px]."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> 'Intrinsics':
        """From the row-major 3x3 ``K`` of a CameraInfo.

        :raises InputRejected: ``bad_camera_info`` for a zero/NaN focal length or image size.
        """
        k = [float(v) for v in k]
        if len(k) != 9 or not all(math.isfinite(v) for v in k) or k[0] <= 0.0 or k[4] <= 0.0 \
                or width <= 0 or height <= 0:
            raise InputRejected('bad_camera_info', 'camera info needs a finite K with fx, fy > 0 '
                                                   'and a non-zero image size')
        return cls(k[0], k[4], k[2], k[5], int(width), int(height))

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


def backproject(u: np.ndarray, v: np.ndarray, z: np.ndarray, k: Intrinsics) -> np.ndarray:
    """Pixels (u right, v down, at pixel centres) with depth ``z`` [m] -> Nx3 optical points."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    return np.stack(((u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z), axis=-1)


def project(points: np.ndarray, k: Intrinsics) -> np.ndarray:
    """Nx3 optical-frame points -> Nx2 pixel coordinates (inverse of :func:`backproject`)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack((k.fx * p[:, 0] / p[:, 2] + k.cx, k.fy * p[:, 1] / p[:, 2] + k.cy), axis=-1)


def transform_points(t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to Nx3 points."""
    return points @ t[:3, :3].T + t[:3, 3]


def matrix_to_pose(t: np.ndarray) -> Pose:
    """4x4 transform -> :class:`Pose`."""
    return Pose(t[:3, 3].copy(), matrix_to_quat(t[:3, :3]))
