"""The simulated robot: publishes what a robot patrolling the PyBullet house senses.

Topics (relative names, remappable; the perception input contract):

* ``camera/color/image_raw`` (``sensor_msgs/Image``, rgb8)
* ``camera/depth/image_raw`` (``sensor_msgs/Image``, 32FC1, metres along the optical axis)
* ``camera/color/camera_info`` (``sensor_msgs/CameraInfo``), frame ``camera_optical``
* ``odom`` (``nav_msgs/Odometry``): base_link in ``map``, with the scenario's noise and drift
* ``/tf`` (``tf2_msgs/TFMessage``), like a real robot: ``odom -> base_link`` (the drifting
  odometry) and ``map -> odom`` (the correction a localiser would publish, so that ``map ->
  base_link`` is the true pose); ``/tf_static`` (latched): ``base_link -> camera_optical``
* ``audio/chunk`` (``engram_ros/AudioChunk``): mono S16LE, one chunk per frame
* ``detections`` (``engram_ros/DetectionArray``): boxes and masks from the segmentation image
* ``sim/ground_truth`` (``std_msgs/String``, latched): JSON of rooms, objects, sounds, events
* ``sim/status`` (``std_msgs/String``, latched): JSON progress (lap, frame, done)

All messages of one frame carry the same stamp; a frame's transforms are published before its
images. With ``realtime: false`` the patrol runs as fast as frames render, stamped on the
simulation's own time (``start_time`` + the frame's time) and ``/clock``
(``rosgraph_msgs/Clock``) is published.

**Recording** (``record: PATH``): what the node publishes is also written, losslessly, to a new
MCAP bag at PATH (:mod:`engram_ros.ros.bag`; directory 0700, files 0600), each message logged
at its stamp (``/tf_static`` and the latched JSON topics at the current frame's). Raw sensor
data (colour and depth images, audio) goes in only with ``record_raw: true``, and never from a
frame whose true robot pose or stamp is inside ``privacy.zones`` / ``privacy.time_windows``
(the memory's, passed by the launchers): those are left out and counted
(``recorded.privacy_skipped`` in ``sim/status``).

The camera's pose on the base is the parameters ``camera_xyz``/``camera_rpy`` (see
:mod:`engram_ros.sim.scene`), published on ``/tf_static``; perception's parameters of the same
name are its fall-back without TF.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.time import Time as RosTime
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

# First, before numpy loads: nodes run BLAS and OpenMP single-threaded (see engram_ros.ros.nodes).
import engram_ros.ros.nodes  # noqa: F401,I001
from engram_ros.core.geometry import matrix_to_quat
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.transforms import invert
from engram_ros.msg import AudioChunk
from engram_ros.msg import DetectionArray
from engram_ros.ros.bag import BagWriter
from engram_ros.ros.conversions import sensors
from engram_ros.ros.conversions.transforms import tf_message
from engram_ros.ros.conversions.transforms import transform_msg
from engram_ros.ros.nodes.spin import run_node
from engram_ros.sim.scenario import load_scenario
from engram_ros.sim.scenario import ScenarioError
from engram_ros.sim.scene import base_matrix
from engram_ros.sim.scene import CameraModel
from engram_ros.sim.simulator import Frame
from engram_ros.sim.simulator import Simulator


class SimNode(Node):
    """Steps :class:`engram_ros.sim.simulator.Simulator` at ``rate`` and publishes each frame."""

    def __init__(self, **kwargs) -> None:
        super().__init__('engram_sim', **kwargs)
        self._declare_parameters()
        self._check_parameters()
        p = lambda name: self.get_parameter(name).value  # noqa: E731
        self.scenario = load_scenario(p('scenario'))
        camera = CameraModel(width=p('width'), height=p('height'), fov_deg=p('fov_deg'),
                             xyz=tuple(p('camera_xyz')), rpy=tuple(p('camera_rpy')))
        self.sim = Simulator(self.scenario, camera, rate=p('rate'), sample_rate=p('sample_rate'),
                             with_masks=p('publish_masks'))
        self.map_frame = p('map_frame')
        self.odom_frame = p('odom_frame')
        self.base_frame = p('base_frame')
        self.publish_tf = p('publish_tf')
        self.camera_frame = p('camera_frame')
        self.microphone_frame = p('microphone_frame')
        self.finished = False
        self.realtime = p('realtime')
        self._start_ns = int(round(p('start_time') * 1e9)) or self.get_clock().now().nanoseconds
        self._now_ns = self._start_ns
        def strings(name: str) -> list[str]:
            try:
                return list(self.get_parameter(name).value or [])
            except ParameterUninitializedException:     # unset: none
                return []

        self.privacy = PrivacyPolicy.parse(strings('privacy.zones'),
                                           strings('privacy.time_windows'))
        self.record_raw = p('record_raw')
        self.recorded = {'frames': 0, 'raw_frames': 0, 'privacy_skipped': 0}
        self._frames = self.sim.frames()
        self._previous_odom: tuple[float, float, float] | None = None
        self._waiting_logged = False
        self._lap_stamps: list[float] = []   # wall-clock end of each lap [s since the epoch]

        sensors = QoSProfile(depth=5)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.color_pub = self.create_publisher(Image, 'camera/color/image_raw', sensors)
        self.depth_pub = self.create_publisher(Image, 'camera/depth/image_raw', sensors)
        self.info_pub = self.create_publisher(CameraInfo, 'camera/color/camera_info', sensors)
        self.odom_pub = self.create_publisher(Odometry, 'odom', QoSProfile(depth=20))
        self.audio_pub = self.create_publisher(AudioChunk, 'audio/chunk', QoSProfile(depth=20))
        self.detections_pub = self.create_publisher(DetectionArray, 'detections', sensors)
        self._sensor_pubs = (self.color_pub, self.depth_pub, self.info_pub, self.odom_pub,
                             self.audio_pub, self.detections_pub)
        #: Raw sensor data: recorded only with record_raw, and never from a private frame.
        self._raw_pubs = (self.color_pub, self.depth_pub, self.audio_pub)
        self.clock_pub = None if self.realtime else self.create_publisher(
            Clock, '/clock', QoSProfile(depth=10))
        self.bag: BagWriter | None = BagWriter(p('record')) if p('record') else None
        self._static_tf: TFMessage | None = None
        if self.publish_tf:
            # As tf2_ros's broadcasters: /tf keep-last 100, /tf_static latched.
            self.tf_pub = self.create_publisher(TFMessage, '/tf', QoSProfile(depth=100))
            self.tf_static_pub = self.create_publisher(TFMessage, '/tf_static', QoSProfile(
                depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
            self._sensor_pubs += (self.tf_pub,)
            mount = camera.mount()
            self._static_tf = tf_message([transform_msg(
                self.base_frame, self.camera_frame, RosTime(nanoseconds=self._start_ns).to_msg(),
                mount[:3, 3], matrix_to_quat(mount[:3, :3]))])
            self.tf_static_pub.publish(self._static_tf)
        self.truth_pub = self.create_publisher(String, 'sim/ground_truth', latched)
        self.status_pub = self.create_publisher(String, 'sim/status', latched)
        self.publish_ground_truth()
        self.publish_status(frame=None)
        self.timer = self.create_timer(1.0 / self.sim.rate if self.realtime else 1e-3,
                                       self.step_callback)
        self.get_logger().info(
            f'scenario {self.scenario.name!r} (world {self.scenario.world.name!r}): '
            f'{self.scenario.laps} laps of {self.sim.frames_per_lap} frames at '
            f'{self.sim.rate:g} Hz, camera {camera.width}x{camera.height}')

    def _declare_parameters(self) -> None:
        def declare(name: str, default, description: str, read_only: bool = True) -> None:
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=read_only))

        declare('scenario', 'house', 'scenario name (config/scenarios/<name>.yaml) or path')
        declare('rate', 4.0, '[Hz] frames per second; simulated time runs at wall-clock speed')
        declare('width', 640, '[px] image width')
        declare('height', 480, '[px] image height')
        declare('fov_deg', 60.0, '[deg] vertical field of view')
        declare('camera_xyz', [0.1, 0.0, 1.0], '[m] camera_optical origin in base_link')
        declare('camera_rpy', [-1.7708, 0.0, -1.5708],
                '[rad] camera_optical orientation in base_link (fixed-axis roll, pitch, yaw); '
                'optical z forward, x right, y down')
        declare('sample_rate', 16000, '[Hz] audio sample rate')
        declare('publish_masks', True, 'attach an instance mask (mono8) to each detection')
        declare('wait_for_subscribers', True,
                'start the patrol only once the colour image has a subscriber and every '
                'reader of a sensor topic is matched (perception subscribes once a memory '
                'listens to it)')
        declare('map_frame', 'map', 'frame of odometry and ground truth (the memory frame)')
        declare('odom_frame', 'odom', 'TF: parent of base_frame, child of map_frame')
        declare('base_frame', 'base_link', 'child frame of odometry')
        declare('publish_tf', True, 'publish /tf (map -> odom -> base_link) and /tf_static '
                                    '(base_link -> camera) like a real robot')
        declare('camera_frame', 'camera_optical', 'frame of images and camera info')
        declare('microphone_frame', 'base_link', 'frame of audio chunks')
        declare('realtime', True, 'frames at rate on the clock; false: as fast as they render, '
                                  'stamped on simulated time (start_time + frame time), with '
                                  '/clock')
        declare('start_time', 0.0, '[s since the epoch] stamp of the first frame without '
                                   'realtime; 0: now')
        declare('record', '', 'write the published topics to a new MCAP bag at this path '
                              '(0600 files); empty: no bag')
        declare('record_raw', False, 'also record colour, depth and audio (raw sensor data; '
                                     'never from inside a privacy zone or window)')
        for name, what in (('privacy.zones', 'zones'), ('privacy.time_windows', 'windows')):
            self.declare_parameter(name, Parameter.Type.STRING_ARRAY, ParameterDescriptor(
                description=f'the memory\'s privacy {what}: raw data from a frame in one is '
                            'not recorded', read_only=True))

    def _check_parameters(self) -> None:
        """:raises ValueError: naming the first start value the simulator cannot run with."""
        def finite(*values) -> bool:
            return len(values) > 0 and all(math.isfinite(v) for v in values)

        rules = {'rate': (lambda v: finite(v) and v > 0, 'finite and > 0 [Hz]'),
                 'width': (lambda v: v >= 1, '>= 1 [px]'),
                 'height': (lambda v: v >= 1, '>= 1 [px]'),
                 'fov_deg': (lambda v: finite(v) and 0 < v < 180, 'in (0, 180) [deg]'),
                 'sample_rate': (lambda v: v >= 1, '>= 1 [Hz]'),
                 'camera_xyz': (lambda v: len(v) == 3 and finite(*v), 'three finite numbers'),
                 'camera_rpy': (lambda v: len(v) == 3 and finite(*v), 'three finite numbers'),
                 'start_time': (lambda v: finite(v) and v >= 0, 'finite and >= 0 [s]')}
        for name, (accepted, what) in rules.items():
            value = self.get_parameter(name).value
            if not accepted(value):
                raise ValueError(f'parameter {name} = {value!r} refused: {name} must be {what}')

    # ------------------------------------------------------------------------- stepping
    def step_callback(self) -> None:
        if self.finished:
            return
        if self.get_parameter('wait_for_subscribers').value and self._unmatched_reader():
            if not self._waiting_logged:
                self.get_logger().info('waiting for a subscriber of the colour image')
                self._waiting_logged = True
            return
        frame = next(self._frames, None)
        if frame is None:  # the generator applies the last lap's events after its last frame
            self.finish()
            return
        now = self.get_clock().now() if self.realtime else \
            RosTime(nanoseconds=self._start_ns + int(round(frame.t * 1e9)))
        stamp = now.to_msg()
        self._now_ns = now.nanoseconds
        if self.clock_pub is not None:
            self._send(self.clock_pub, Clock(clock=stamp), frame)
        self.publish_frame(frame, stamp)
        if frame.lap_done:
            self._lap_stamps.append(now.nanoseconds * 1e-9)
        if frame.events or frame.index == 0:
            self.publish_ground_truth()
        self.publish_status(frame)
        if frame.last:
            self.finish()

    def _unmatched_reader(self) -> bool:
        """Whether the patrol must wait: the colour image has no reader yet, or a sensor topic
        has a reader in the graph that this node's publisher has not matched yet (each pair of
        endpoints matches on its own: the first frame's odometry would be lost)."""
        if self.color_pub.get_subscription_count() == 0:
            return True
        return any(pub.get_subscription_count() < self.count_subscribers(pub.topic_name)
                   for pub in self._sensor_pubs)

    def finish(self) -> None:
        if self.finished:
            return
        next(self._frames, None)  # let the last lap's events happen
        self.finished = True
        self.timer.cancel()
        self.publish_ground_truth()
        self.publish_status(frame=None)
        self.get_logger().info(f'patrol done: {self.scenario.laps} laps, '
                               f'{self.sim.total_frames} frames')
        self.close_bag()

    def close_bag(self) -> None:
        bag, self.bag = getattr(self, 'bag', None), None   # also for a half-built node
        if bag is not None:
            bag.close()
            self.get_logger().info(f'recorded {bag.path}: {self.recorded}')

    def _send(self, pub, msg, frame: Frame | None = None) -> None:
        """Publish ``msg``; record it too, unless it is raw data the rules keep out."""
        pub.publish(msg)
        if self.bag is None:
            return
        if pub in self._raw_pubs:
            if not self.record_raw:
                return
            x, y, _ = frame.pose
            if self.privacy.excludes((x, y, 0.0), self._now_ns * 1e-9) is not None:
                return
        self.bag.write(pub.topic_name, msg, self._now_ns)

    def _record_frame(self, frame: Frame) -> None:
        """Count what the bag gets of ``frame`` (see :meth:`_send`)."""
        if self.bag is None:
            return
        self.recorded['frames'] += 1
        if not self.record_raw:
            return
        x, y, _ = frame.pose
        if self.privacy.excludes((x, y, 0.0), self._now_ns * 1e-9) is not None:
            self.recorded['privacy_skipped'] += 1
        else:
            self.recorded['raw_frames'] += 1

    def publish_frame(self, frame: Frame, stamp: Time) -> None:
        cam = self.sim.camera
        frame_id = self.camera_frame
        rgb = sensors.array_to_image(frame.render.rgb, 'rgb8', stamp, frame_id)
        depth = sensors.array_to_image(frame.render.depth.astype(np.float32), '32FC1', stamp,
                                       frame_id)
        self._record_frame(frame)
        if self.bag is not None and self._static_tf is not None:
            self.bag.write(self.tf_static_pub.topic_name, self._static_tf, self._now_ns)
            self._static_tf = None      # once, logged at the first frame
        # poses and intrinsics first: a consumer handling an image on arrival finds them there
        if self.publish_tf:
            self._send(self.tf_pub, self.transforms(frame, stamp))
        self._send(self.odom_pub, self.odometry(frame, stamp))
        self._send(self.info_pub, sensors.camera_info_msg(cam.K, cam.width, cam.height, stamp,
                                                          frame_id))
        self._send(self.audio_pub, sensors.audio_chunk_msg(
            frame.audio, self.sim.microphone.sample_rate, stamp, 'S16LE', self.microphone_frame),
            frame)
        self._send(self.detections_pub,
                   sensors.detections_to_msg(frame.detections, stamp, frame_id))
        self._send(self.color_pub, rgb, frame)
        self._send(self.depth_pub, depth, frame)

    def odometry(self, frame: Frame, stamp: Time) -> Odometry:
        x, y, yaw = frame.odom
        covariance, linear, angular = odometry_uncertainty_and_twist(
            frame.odom, self._previous_odom, frame.index + 1, self.scenario.odometry,
            1.0 / self.sim.rate)
        self._previous_odom = frame.odom
        return sensors.odometry_msg(stamp, (x, y, 0.0),
                                    (0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)),
                                    self.map_frame, self.base_frame, covariance, linear, angular)

    def transforms(self, frame: Frame, stamp: Time) -> TFMessage:
        """odom -> base_link from the drifting odometry; map -> odom, the correction that makes
        map -> base_link the true pose (a perfect localiser)."""
        t_odom_base = base_matrix(*frame.odom)
        t_map_odom = base_matrix(*frame.pose) @ invert(t_odom_base)
        return tf_message(
            transform_msg(parent, child, stamp, t[:3, 3], matrix_to_quat(t[:3, :3]))
            for parent, child, t in ((self.map_frame, self.odom_frame, t_map_odom),
                                     (self.odom_frame, self.base_frame, t_odom_base)))

    def publish_ground_truth(self) -> None:
        self._send(self.truth_pub, String(data=json.dumps(self.sim.ground_truth())))

    def publish_status(self, frame: Frame | None) -> None:
        status = {'scenario': self.scenario.name, 'laps': self.scenario.laps,
                  'frames_per_lap': self.sim.frames_per_lap,
                  'total_frames': self.sim.total_frames, 'done': self.finished,
                  'lap_end_stamps': list(self._lap_stamps)}
        if frame is not None:
            status.update(lap=frame.lap, frame=frame.index + 1, t=frame.t,
                          pose=list(frame.pose), events=frame.events)
        else:
            status.update(lap=self.sim.lap, frame=self.sim.total_frames if self.finished else 0)
        if self.bag is not None or self.recorded['frames']:
            status['recorded'] = dict(self.recorded)
        self._send(self.status_pub, String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        # Called once the executor has stopped (engram_ros.ros.nodes.spin), so no frame is
        # being rendered; also by rclpy's shutdown for a node whose __init__ failed half-way.
        # The ROS entities go first, then PyBullet disconnects, once.
        try:
            self.close_bag()
            super().destroy_node()
        finally:
            sim, self.sim = getattr(self, 'sim', None), None
            if sim is not None:
                sim.close()


def odometry_uncertainty_and_twist(odom: tuple[float, float, float],
                                   previous: tuple[float, float, float] | None, frames: int,
                                   noise, dt: float):
    """Covariance (36, row-major) of the ``frames``-th odometry pose, growing with the
    scenario's noise per frame, and the twist (linear, angular in base_link) from the
    ``previous`` pose ``dt`` seconds before (zero for the first)."""
    covariance = [0.0] * 36
    covariance[0] = covariance[7] = max(1e-6, noise.noise_xy ** 2 * frames)
    covariance[14] = covariance[21] = covariance[28] = 1e-6
    covariance[35] = max(1e-6, noise.noise_yaw ** 2 * frames)
    if previous is None:
        return covariance, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    x, y, yaw = odom
    px, py, pyaw = previous
    c, s = math.cos(pyaw), math.sin(pyaw)
    linear = ((c * (x - px) + s * (y - py)) / dt, (-s * (x - px) + c * (y - py)) / dt, 0.0)
    angular = (0.0, 0.0, math.atan2(math.sin(yaw - pyaw), math.cos(yaw - pyaw)) / dt)
    return covariance, linear, angular


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, SingleThreadedExecutor, logger_name='engram_sim',
                    what='start the simulation', startup_errors=(ScenarioError, ValueError),
                    args=args)


if __name__ == '__main__':
    sys.exit(main())
