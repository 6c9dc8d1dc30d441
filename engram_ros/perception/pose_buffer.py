"""Robot poses by time, so a camera frame or a sound gets the pose it was taken at."""

from __future__ import annotations

import bisect

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import Pose
from engram_ros.perception.geometry import slerp


class PoseBuffer:
    """The recent poses of base_link in the map frame, looked up by stamp.

    Between two buffered poses at most ``max_gap`` seconds apart the pose is interpolated
    (linear position, slerp orientation); otherwise a pose is returned only within
    ``tolerance`` seconds of a buffered one (never across a gap in odometry).
    """

    def __init__(self, tolerance: float = 0.1, span: float = 10.0, max_gap: float = 1.0) -> None:
        self.tolerance = tolerance
        self.span = span
        self.max_gap = max_gap
        self._stamps: list[float] = []
        self._poses: list[Pose] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self) -> None:
        self._stamps.clear()
        self._poses.clear()

    def add(self, stamp: float, pose: Pose) -> None:
        """Append a pose.

        :raises InputRejected: ``stamp_backwards`` unless ``stamp`` is after the newest pose.
        """
        if self._stamps and stamp <= self._stamps[-1]:
            raise InputRejected('stamp_backwards',
                                f'pose stamp {stamp:.3f} is not after {self._stamps[-1]:.3f}')
        self._stamps.append(stamp)
        self._poses.append(pose)
        cut = bisect.bisect_left(self._stamps, stamp - self.span)
        if cut > 0:
            del self._stamps[:cut]
            del self._poses[:cut]

    def lookup(self, stamp: float) -> Pose | None:
        """The pose at ``stamp``, or ``None`` when the buffer cannot tell it."""
        if not self._stamps:
            return None
        i = bisect.bisect_left(self._stamps, stamp)
        if i < len(self._stamps) and self._stamps[i] == stamp:
            return self._poses[i]
        if i == 0:
            return self._poses[0] if self._stamps[0] - stamp <= self.tolerance else None
        if i == len(self._stamps):
            return self._poses[-1] if stamp - self._stamps[-1] <= self.tolerance else None
        t0, t1 = self._stamps[i - 1], self._stamps[i]
        a, b = self._poses[i - 1], self._poses[i]
        if t1 - t0 > self.max_gap:
            if stamp - t0 <= self.tolerance:
                return a
            return b if t1 - stamp <= self.tolerance else None
        f = (stamp - t0) / (t1 - t0)
        return Pose(a.position + f * (b.position - a.position),
                    slerp(a.orientation, b.orientation, f))

    def latest(self) -> tuple[float, Pose] | None:
        return (self._stamps[-1], self._poses[-1]) if self._stamps else None
