"""Rotations and rigid transforms, in ROS's conventions, computed by transforms3d.

Every rotation in the package goes through here: the place graph's re-anchoring, perception's
camera poses and the simulator's camera mount. Quaternions are ROS order ``(x, y, z, w)``
(``geometry_msgs/Quaternion``); transforms3d uses ``(w, x, y, z)``, and the reordering happens
only in this module. Roll, pitch and yaw are about the static axes x, y, z (URDF/REP 103:
``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``). ROS-free.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import transforms3d


def quat_to_matrix(q: np.ndarray | Sequence[float]) -> np.ndarray:
    """3x3 rotation matrix of a quaternion ``(x, y, z, w)`` (normalised first)."""
    x, y, z, w = (float(v) for v in q)
    return transforms3d.quaternions.quat2mat((w, x, y, z))


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(x, y, z, w)`` of a 3x3 rotation matrix, with ``w >= 0``."""
    w, x, y, z = transforms3d.quaternions.mat2quat(np.asarray(m, dtype=np.float64)[:3, :3])
    out = np.array([x, y, z, w], dtype=np.float64)
    return out / np.linalg.norm(out)


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation of fixed-axis roll, pitch, yaw [rad] (URDF/ROS convention)."""
    return transforms3d.euler.euler2mat(roll, pitch, yaw, 'sxyz')


def matrix_to_rpy(m: np.ndarray) -> tuple[float, float, float]:
    """Fixed-axis roll, pitch, yaw [rad] of a 3x3 rotation (inverse of :func:`rpy_to_matrix`)."""
    roll, pitch, yaw = transforms3d.euler.mat2euler(np.asarray(m)[:3, :3], 'sxyz')
    return float(roll), float(pitch), float(yaw)


def transform_matrix(rotation: np.ndarray, translation: np.ndarray | Sequence[float]
                     ) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a translation [m]."""
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = translation
    return t


def pose_matrix(position: np.ndarray | Sequence[float],
                orientation: np.ndarray | Sequence[float]) -> np.ndarray:
    """4x4 transform (parent <- frame) of a pose: position [m], orientation ``(x, y, z, w)``."""
    return transform_matrix(quat_to_matrix(orientation), position)


__all__ = ['matrix_to_quat', 'matrix_to_rpy', 'pose_matrix', 'quat_to_matrix', 'rpy_to_matrix',
           'transform_matrix']
