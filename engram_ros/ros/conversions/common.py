"""Time stamps, poses and diagnostics: the message pieces every other conversion shares."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from geometry_msgs.msg import Pose
from geometry_msgs.msg import PoseStamped
from geometry_msgs.msg import PoseWithCovariance


def time_to_seconds(stamp: Time) -> float:
    """``builtin_interfaces/Time`` to seconds since the epoch."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_time(seconds: float) -> Time:
    """Seconds since the epoch to ``builtin_interfaces/Time`` (clamped at 0)."""
    seconds = max(0.0, seconds) if math.isfinite(seconds) else 0.0
    sec = int(seconds)
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def set_time(msg: Time, seconds: float) -> None:
    """Write ``seconds`` into an existing ``Time`` in place, as :func:`seconds_to_time`
    converts (no new message: the fields of a message being filled already hold one)."""
    seconds = max(0.0, seconds) if math.isfinite(seconds) else 0.0
    sec = int(seconds)
    msg.sec = sec
    msg.nanosec = min(int(round((seconds - sec) * 1e9)), 999_999_999)


def as_time(stamp: float | Time) -> Time:
    """A stamp given as seconds or already as ``builtin_interfaces/Time`` (kept exactly: a
    clock's ``now().to_msg()`` is not rounded through a float)."""
    return stamp if isinstance(stamp, Time) else seconds_to_time(stamp)


def optional_time(stamp: Time) -> float | None:
    """A time that means "open" when zero."""
    return None if stamp.sec == 0 and stamp.nanosec == 0 else time_to_seconds(stamp)


def stamp_of(msg) -> float:
    """Header stamp of a message, in seconds."""
    return time_to_seconds(msg.header.stamp)


def set_header(msg, stamp: float | Time, frame_id: str):
    """Fill ``msg.header`` (stamp in seconds or as a Time) and return ``msg``."""
    msg.header.stamp = as_time(stamp)
    msg.header.frame_id = frame_id
    return msg


def pose_arrays(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """``geometry_msgs/Pose`` -> position (3,) and quaternion (x, y, z, w), float64."""
    p, q = pose.position, pose.orientation
    return (np.array([p.x, p.y, p.z], dtype=np.float64),
            np.array([q.x, q.y, q.z, q.w], dtype=np.float64))


def pose_msg(position, orientation) -> Pose:
    """Position (3,) and quaternion (x, y, z, w) -> ``geometry_msgs/Pose``."""
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = map(float, position)
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = map(
        float, orientation)
    return msg


def pose_stamped_msg(position, orientation, frame_id: str,
                     stamp: float | Time = 0.0) -> PoseStamped:
    """Position (3,) and quaternion (x, y, z, w) in ``frame_id`` -> ``PoseStamped``."""
    msg = set_header(PoseStamped(), stamp, frame_id)
    msg.pose = pose_msg(position, orientation)
    return msg


def pose_to_arrays(pose: PoseWithCovariance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (*pose_arrays(pose.pose), np.asarray(pose.covariance, dtype=np.float64).copy())


def arrays_to_pose(position: np.ndarray, orientation: np.ndarray,
                   covariance: np.ndarray) -> PoseWithCovariance:
    msg = PoseWithCovariance()
    msg.pose = pose_msg(position, orientation)
    msg.covariance = [float(c) for c in covariance]
    return msg


def diagnostic_array(stamp: Time, name: str, message: str, values: Iterable[tuple[str, object]],
                     warn: bool = False) -> DiagnosticArray:
    """One ``diagnostic_msgs/DiagnosticStatus`` (hardware ``engram_ros``; level OK, or WARN
    when ``warn``) in a DiagnosticArray; each value is written with ``str``."""
    status = DiagnosticStatus(name=name, hardware_id='engram_ros')
    status.level = DiagnosticStatus.WARN if warn else DiagnosticStatus.OK
    status.message = message
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
