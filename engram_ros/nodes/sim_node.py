"""The simulated robot: publishes what a robot patrolling the PyBullet house senses.

Topics (relative names, remappable; the perception input contract):

* ``camera/color/image_raw`` (``sensor_msgs/Image``, rgb8)
* ``camera/depth/image_raw`` (``sensor_msgs/Image``, 32FC1, metres along the optical axis)
* ``camera/color/camera_info`` (``sensor_msgs/CameraInfo``), frame ``camera_optical``
* ``odom`` (``nav_msgs/Odometry``): base_link in ``map``, with the scenario's noise and drift
* ``audio/chunk`` (``engram_ros/AudioChunk``): mono S16LE, one chunk per frame
* ``detections`` (``engram_ros/DetectionArray``): boxes and masks from the segmentation image
* ``sim/ground_truth`` (``std_msgs/String``, latched): JSON of rooms, objects, sounds, events
* ``sim/status`` (``std_msgs/String``, latched): JSON progress (lap, frame, done)

All messages of one frame carry the same stamp. The camera's pose on the base is the
parameters ``camera_xyz``/``camera_rpy`` (see :mod:`engram_ros.sim.scene`); perception reads
the same values from ``config/engram.yaml``.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import Image
from std_msgs.msg import String

from engram_ros.msg import AudioChunk
from engram_ros.msg import Detection
from engram_ros.msg import DetectionArray
from engram_ros.sim.scenario import ScenarioError
from engram_ros.sim.scenario import load_scenario
from engram_ros.sim.scene import CameraModel
from engram_ros.sim.simulator import Frame
from engram_ros.sim.simulator import Simulator
from engram_ros.nodes.spin import run_node


class SimNode(Node):
    """Steps :class:`engram_ros.sim.simulator.Simulator` at ``rate`` and publishes each frame."""

    def __init__(self, **kwargs) -> None:
        super().__init__('engram_sim', **kwargs)
        self._declare_parameters()
        p = lambda name: self.get_parameter(name).value  # noqa: E731
        self.scenario = load_scenario(p('scenario'))
        camera = CameraModel(width=p('width'), height=p('height'), fov_deg=p('fov_deg'),
                             xyz=tuple(p('camera_xyz')), rpy=tuple(p('camera_rpy')))
        self.sim = Simulator(self.scenario, camera, rate=p('rate'), sample_rate=p('sample_rate'),
                             with_masks=p('publish_masks'))
        self.map_frame = p('map_frame')
        self.base_frame = p('base_frame')
        self.camera_frame = p('camera_frame')
        self.microphone_frame = p('microphone_frame')
        self.finished = False
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
        self.truth_pub = self.create_publisher(String, 'sim/ground_truth', latched)
        self.status_pub = self.create_publisher(String, 'sim/status', latched)
        self.publish_ground_truth()
        self.publish_status(frame=None)
        self.timer = self.create_timer(1.0 / self.sim.rate, self.step_callback)
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
                'start the patrol only once the colour image has a subscriber')
        declare('map_frame', 'map', 'frame of odometry and ground truth (the memory frame)')
        declare('base_frame', 'base_link', 'child frame of odometry')
        declare('camera_frame', 'camera_optical', 'frame of images and camera info')
        declare('microphone_frame', 'base_link', 'frame of audio chunks')

    # ------------------------------------------------------------------------- stepping
    def step_callback(self) -> None:
        if self.finished:
            return
        if (self.get_parameter('wait_for_subscribers').value
                and self.color_pub.get_subscription_count() == 0):
            if not self._waiting_logged:
                self.get_logger().info('waiting for a subscriber of the colour image')
                self._waiting_logged = True
            return
        frame = next(self._frames, None)
        if frame is None:  # the generator applies the last lap's events after its last frame
            self.finish()
            return
        now = self.get_clock().now()
        stamp = now.to_msg()
        self.publish_frame(frame, stamp)
        if frame.lap_done:
            self._lap_stamps.append(now.nanoseconds * 1e-9)
        if frame.events or frame.index == 0:
            self.publish_ground_truth()
        self.publish_status(frame)
        if frame.last:
            self.finish()

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

    def publish_frame(self, frame: Frame, stamp) -> None:
        cam = self.sim.camera
        rgb = Image()
        rgb.header.stamp, rgb.header.frame_id = stamp, self.camera_frame
        rgb.height, rgb.width, rgb.encoding, rgb.step = cam.height, cam.width, 'rgb8', cam.width * 3
        rgb.data = frame.render.rgb.tobytes()
        depth = Image()
        depth.header = rgb.header
        depth.height, depth.width, depth.encoding = cam.height, cam.width, '32FC1'
        depth.is_bigendian = int(sys.byteorder == 'big')
        depth.step = cam.width * 4
        depth.data = frame.render.depth.astype(np.float32).tobytes()
        # pose and intrinsics first: a consumer handling an image on arrival finds them there
        self.odom_pub.publish(self.odometry(frame, stamp))
        self.info_pub.publish(self.camera_info(stamp))
        self.audio_pub.publish(self.audio(frame, stamp))
        self.detections_pub.publish(self.detections(frame, rgb.header))
        self.color_pub.publish(rgb)
        self.depth_pub.publish(depth)

    def camera_info(self, stamp) -> CameraInfo:
        cam = self.sim.camera
        info = CameraInfo()
        info.header.stamp, info.header.frame_id = stamp, self.camera_frame
        info.width, info.height = cam.width, cam.height
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        k = cam.K
        info.k = [float(v) for v in k.reshape(-1)]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def odometry(self, frame: Frame, stamp) -> Odometry:
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id = stamp, self.map_frame
        odom.child_frame_id = self.base_frame
        x, y, yaw = frame.odom
        odom.pose.pose.position.x, odom.pose.pose.position.y = float(x), float(y)
        odom.pose.pose.orientation.z = math.sin(yaw / 2.0)
        odom.pose.pose.orientation.w = math.cos(yaw / 2.0)
        noise = self.scenario.odometry
        n = frame.index + 1
        var_xy = max(1e-6, noise.noise_xy ** 2 * n)
        var_yaw = max(1e-6, noise.noise_yaw ** 2 * n)
        odom.pose.covariance[0] = odom.pose.covariance[7] = var_xy
        odom.pose.covariance[14] = odom.pose.covariance[21] = odom.pose.covariance[28] = 1e-6
        odom.pose.covariance[35] = var_yaw
        if self._previous_odom is not None:
            px, py, pyaw = self._previous_odom
            dt = 1.0 / self.sim.rate
            c, s = math.cos(pyaw), math.sin(pyaw)
            odom.twist.twist.linear.x = (c * (x - px) + s * (y - py)) / dt
            odom.twist.twist.linear.y = (-s * (x - px) + c * (y - py)) / dt
            odom.twist.twist.angular.z = math.atan2(math.sin(yaw - pyaw),
                                                    math.cos(yaw - pyaw)) / dt
        self._previous_odom = frame.odom
        return odom

    def audio(self, frame: Frame, stamp) -> AudioChunk:
        chunk = AudioChunk()
        chunk.header.stamp, chunk.header.frame_id = stamp, self.microphone_frame
        chunk.sample_rate = self.sim.microphone.sample_rate
        chunk.channels = 1
        chunk.encoding = 'S16LE'
        chunk.data = frame.audio.astype('<i2').tobytes()
        return chunk

    def detections(self, frame: Frame, header) -> DetectionArray:
        out = DetectionArray()
        out.header = header
        cam = self.sim.camera
        for det in frame.detections:
            msg = Detection()
            msg.label, msg.score = det.label, det.score
            msg.x_min, msg.y_min, msg.x_max, msg.y_max = det.box
            if det.mask is not None:
                msg.mask.header = header
                msg.mask.height, msg.mask.width = cam.height, cam.width
                msg.mask.encoding, msg.mask.step = 'mono8', cam.width
                msg.mask.data = (det.mask.astype(np.uint8) * 255).tobytes()
            out.detections.append(msg)
        return out

    def publish_ground_truth(self) -> None:
        self.truth_pub.publish(String(data=json.dumps(self.sim.ground_truth())))

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
        self.status_pub.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        # also called by rclpy's shutdown for a node whose __init__ failed half-way
        if getattr(self, 'sim', None) is not None:
            self.sim.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, SingleThreadedExecutor, logger_name='engram_sim',
                    what='start the simulation', startup_errors=(ScenarioError, ValueError),
                    args=args)


if __name__ == '__main__':
    sys.exit(main())
