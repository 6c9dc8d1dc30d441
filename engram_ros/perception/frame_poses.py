"""Where the robot and its camera were at a stamp: from TF, or from odometry and parameters.

On a real robot the poses come from TF: the camera at an image's stamp is ``memory frame <-
image frame_id`` and the robot is ``memory frame <- base frame``, both looked up in a
:class:`~engram_ros.core.transforms.TransformBuffer` fed from ``/tf`` and ``/tf_static``. As
long as TF does not connect the memory frame to the base frame (no TF arrives, or a robot
without a map frame), the fall-back is the old contract: the robot pose from odometry already in
the memory frame (:class:`~engram_ros.perception.pose_buffer.PoseBuffer`) and the camera mount
from the ``camera_xyz``/``camera_rpy`` parameters. :attr:`FramePoses.source` says which is used.
At start, frames wait up to ``tf_wait`` seconds (of odometry time) for TF to connect before the
fall-back places any: images usually arrive before the first ``/tf_static`` does, and a frame
placed with a wrong mount parameter would be a wrong memory, not a missing one.

A pose that TF cannot tell (a frame unknown to TF, a stamp outside its samples, a gap in them)
is refused with an :class:`~engram_ros.perception.errors.InputRejected` whose reason is the
transform error's (``tf_unknown_frame``, ``tf_extrapolation``, ``tf_stale``,
``tf_not_connected``): the frame is skipped and counted, never placed by a guess.
"""

from __future__ import annotations

import numpy as np

from engram_ros.core.transforms import TransformBuffer
from engram_ros.core.transforms import TransformError
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import matrix_to_pose
from engram_ros.perception.geometry import Pose
from engram_ros.perception.pose_buffer import PoseBuffer

#: Values of :attr:`FramePoses.source`.
TF = 'tf'
PARAMETERS = 'odometry+camera parameters'


class FramePoses:
    """Robot and camera poses in the memory frame at a stamp (see the module docstring)."""

    def __init__(self, memory_frame: str, base_frame: str, odometry: PoseBuffer,
                 tf: TransformBuffer, t_base_optical: np.ndarray, tf_wait: float = 0.0) -> None:
        self.memory_frame = memory_frame
        self.base_frame = base_frame
        self.odometry = odometry
        self.tf = tf
        #: The camera mount from the parameters (base <- optical), used without TF.
        self.t_base_optical = t_base_optical
        #: [s] how long frames wait for TF before the fall-back places them (0: no wait).
        self.tf_wait = tf_wait
        self._first_unposed: float | None = None     # the first frame's stamp without TF

    @property
    def source(self) -> str:
        """``tf`` once TF connects the memory frame to the base frame, else the parameters."""
        return TF if self.tf.connected(self.memory_frame, self.base_frame) else PARAMETERS

    def ready(self, stamp: float, camera_frame: str = '') -> bool:
        """Whether data at or after ``stamp`` has arrived, so a lookup interpolates: a frame
        newer than that waits (TF and odometry often arrive after the images)."""
        if self.source == TF:
            newest = self.tf.newest_stamp(self.memory_frame, self.base_frame)
            if camera_frame and self.tf.connected(self.memory_frame, camera_frame):
                newest = min(newest, self.tf.newest_stamp(self.memory_frame, camera_frame))
            return newest is not None and newest >= stamp
        if self._first_unposed is None:
            self._first_unposed = stamp
        latest = self.odometry.latest()
        return (latest is not None and latest[0] >= stamp
                and latest[0] - self._first_unposed >= self.tf_wait)

    def reset(self) -> None:
        """Forget when the first frame without TF came (time went back: a new start)."""
        self._first_unposed = None

    def robot(self, stamp: float) -> Pose:
        """The base frame's pose in the memory frame at ``stamp``.

        :raises InputRejected: ``no_pose`` (odometry), or a ``tf_*`` reason (TF).
        """
        if self.source == TF:
            return matrix_to_pose(self._lookup(self.base_frame, stamp))
        pose = self.odometry.lookup(stamp)
        if pose is None:
            raise InputRejected('no_pose', f'no robot pose within {self.odometry.tolerance} s '
                                           f'of {stamp:.3f}')
        return pose

    def camera(self, stamp: float, camera_frame: str) -> tuple[Pose, np.ndarray]:
        """The robot's pose and the 4x4 ``memory <- camera optical`` transform at ``stamp``;
        with TF, ``camera_frame`` is the image's frame_id (an empty one is unknown to TF).

        :raises InputRejected: as :meth:`robot`.
        """
        robot = self.robot(stamp)
        if self.source == TF:
            return robot, self._lookup(camera_frame, stamp)
        return robot, robot.matrix() @ self.t_base_optical

    def _lookup(self, frame: str, stamp: float) -> np.ndarray:
        try:
            return self.tf.lookup(self.memory_frame, frame, stamp)
        except TransformError as exc:
            raise InputRejected(exc.reason, str(exc)) from exc
