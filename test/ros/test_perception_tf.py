"""Perception on TF, in a real rclpy graph: poses from /tf and /tf_static beat the parameters.

A robot publishes map -> odom -> base_link on /tf and its camera mount on /tf_static, as real
robots do, while perception's camera_xyz/camera_rpy are deliberately wrong: the cup must still
be stored where it is, because the camera pose at each image stamp comes from TF. An image in a
frame TF does not know is skipped and counted, never placed with the parameters.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from conftest import NodeProcess
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from test_perception_node import CAM_RPY  # noqa: E402
from test_perception_node import CAM_XYZ  # noqa: E402
from test_perception_node import CUP  # noqa: E402
from test_perception_node import K  # noqa: E402
from test_perception_node import perception_args  # noqa: E402
from test_perception_node import Robot  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from engram_ros.core.geometry import matrix_to_quat  # noqa: E402
from engram_ros.perception.geometry import camera_extrinsic  # noqa: E402
from engram_ros.perception.geometry import checked_pose  # noqa: E402
from engram_ros.perception.objects import Detection  # noqa: E402
from engram_ros.perception.scenes import rgbd_with_objects  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402
from engram_ros.ros.conversions import sensors as pc  # noqa: E402
from engram_ros.ros.conversions.transforms import tf_message  # noqa: E402
from engram_ros.ros.conversions.transforms import transform_msg  # noqa: E402

MOUNT = camera_extrinsic(CAM_XYZ, CAM_RPY)
#: The odom frame's drift: map -> odom corrects it, so map <- base_link is the true pose.
DRIFT = 0.7


class TfRobot(Robot):
    """The fake robot of test_perception_node, with TF instead of odometry."""

    def __init__(self, node, namespace: str) -> None:
        super().__init__(node, namespace)
        self.sent['transforms_received'] = 0
        self.tf = node.create_publisher(TFMessage, '/tf', QoSProfile(depth=100))
        self.tf_static = node.create_publisher(TFMessage, '/tf_static', QoSProfile(
            depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))

    def connected(self) -> bool:
        return super().connected() and self.tf.get_subscription_count() > 0

    def mount(self, stamp: float) -> None:
        self.tf_static.publish(tf_message([transform_msg(
            'base_link', 'camera_optical', stamp, MOUNT[:3, 3], matrix_to_quat(MOUNT[:3, :3]))]))
        self.sent['transforms_received'] += 1
        self.read_all()

    def frame(self, stamp: float, x: float, camera_frame: str = 'camera_optical') -> None:
        pose = checked_pose((x, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
        rgb, depth, (box,) = rgbd_with_objects(K, pose.matrix() @ MOUNT,
                                               [(CUP, 0.05, (200, 30, 30))], 11)
        for dt in (-0.05, 0.0):
            self.tf.publish(tf_message([
                transform_msg('map', 'odom', stamp + dt, (-DRIFT, 0.0, 0.0), (0, 0, 0, 1)),
                transform_msg('odom', 'base_link', stamp + dt, (x + DRIFT, 0.0, 0.0),
                              (0, 0, 0, 1))]))
            self.sent['transforms_received'] += 2
        # odometry in the odom frame, as a real robot's: with TF (read first: topics are not
        # ordered) it is not needed, and not an error
        self.read_all()
        for dt in (-0.05, 0.0):
            self.odom.publish(pc.odometry_msg(stamp + dt, (x + DRIFT, 0.0, 0.0),
                                              (0.0, 0.0, 0.0, 1.0), 'odom'))
            self.sent['poses_received'] += 1
        mm = np.round(depth * 1000).astype(np.uint16)
        self.depth.publish(pc.array_to_image(mm, '16UC1', stamp, camera_frame))
        self.color.publish(pc.array_to_image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8', stamp,
                                             camera_frame))
        self.detections.publish(pc.detections_to_msg([Detection('cup', 0.92, box)], stamp,
                                                     camera_frame))
        self.sent['depth_received'] += 1
        self.sent['color_received'] += 1
        self.sent['detections_received'] += 1
        self.read_all()


@pytest.fixture
def tf_graph(test_node, start_memory, tmp_path):
    memory, namespace = start_memory()
    # deliberately wrong camera mount parameters: 2 m off and looking at the ceiling
    args = perception_args(namespace, tmp_path, 'camera_xyz:=[2.0, -1.0, 3.0]',
                           f'camera_rpy:=[0.0, {-math.pi / 2}, 0.0]')
    perception = NodeProcess('engram_ros.ros.nodes.perception_node', args,
                             tmp_path / 'perception.log')
    client = MemoryClient(test_node, namespace)
    robot = TfRobot(test_node, namespace)
    try:
        client.wait_for_services(timeout=20.0)
    except RuntimeError:
        pytest.fail(f'memory node did not come up:\n{memory.log()}')
    assert wait_for(robot.connected, 30.0), perception.log()
    assert wait_for(lambda: robot.diagnostic('observation_subscribers') >= 1, 30.0), \
        f'{sorted(robot.values.items())}\n{perception.log()}'
    robot.camera_info(time.time())
    robot.mount(time.time())
    yield robot, client, perception
    assert perception.stop() == 0, perception.log()


def test_tf_places_the_cup_although_the_camera_parameters_are_wrong(tf_graph):
    robot, client, perception = tf_graph
    t0 = time.time()

    def mugs():
        return client.recall(tags_all=['label:mug'], kinds=['object'], k=5).engrams

    path = (0.0, 0.05, 0.1, 0.8, 0.85, 1.5, 1.55)
    for i in range(40):
        robot.frame(t0 + 0.2 * i, path[min(i, len(path) - 1)])
        if i >= len(path) and mugs():
            break
    assert mugs(), perception.log()
    p = mugs()[0].pose.pose.position
    # TF's camera (not the parameters') in map <- odom <- base_link (not the drifted odom)
    assert np.linalg.norm(np.array([p.x, p.y, p.z]) - CUP) < 0.05
    assert robot.values.get('pose_source') == 'tf'
    assert robot.diagnostic('frames_posed_by_tf') >= 2
    assert robot.diagnostic('frames_posed_by_parameters') == 0
    assert robot.diagnostic('poses_unused_with_tf') >= 10
    assert robot.diagnostic('skipped_bad_pose') == 0


def test_an_image_in_a_frame_unknown_to_tf_is_skipped_and_counted(tf_graph):
    robot, client, perception = tf_graph
    t0 = time.time()
    robot.frame(t0, 0.0, camera_frame='camera_typo_optical')
    robot.frame(t0 + 0.2, 0.8, camera_frame='camera_typo_optical')
    assert wait_for(lambda: robot.diagnostic('skipped_tf_unknown_frame') >= 2, 15.0), \
        f'counters: {sorted(robot.values.items())}\n{perception.log()}'
    assert client.recall(kinds=['object'], k=5).engrams == []
    assert client.recall(kinds=['place'], k=5).engrams == []
    assert 'camera_typo_optical' in perception.log()          # the warning names the frame
