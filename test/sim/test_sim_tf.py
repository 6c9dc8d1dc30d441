"""The sim node publishes TF like a real robot: map -> odom -> base_link, the camera mount."""

from __future__ import annotations

import json
import threading
import uuid

import numpy as np
import pytest

from conftest import NodeProcess
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('pybullet')

from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from test_sim_node import sim_args  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from engram_ros.core.transforms import TransformBuffer  # noqa: E402
from engram_ros.perception.geometry import camera_extrinsic  # noqa: E402
from engram_ros.ros.conversions.common import stamp_of  # noqa: E402
from engram_ros.ros.conversions.sensors import pose_from_odometry  # noqa: E402
from engram_ros.ros.conversions.transforms import transforms_from_msg  # noqa: E402
from engram_ros.sim.scene import base_matrix  # noqa: E402

XYZ, RPY = [0.1, 0.0, 1.0], [-1.7708, 0.0, -1.5708]


def test_sim_publishes_tf_with_drifting_odometry_and_a_true_map_pose(test_node, tmp_path):
    namespace = f'/t{uuid.uuid4().hex[:8]}'
    lock = threading.Lock()
    got: dict[str, list] = {'tf': [], 'static': [], 'odom': [], 'image': [], 'status': []}

    def keep(name):
        def callback(msg):
            with lock:
                got[name].append(msg)
        return callback

    test_node.create_subscription(TFMessage, '/tf', keep('tf'), 200)
    test_node.create_subscription(TFMessage, '/tf_static', keep('static'), QoSProfile(
        depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    test_node.create_subscription(Odometry, f'{namespace}/odom', keep('odom'), 50)
    test_node.create_subscription(Image, f'{namespace}/camera/color/image_raw', keep('image'), 50)
    test_node.create_subscription(String, f'{namespace}/sim/status', keep('status'), QoSProfile(
        depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    sim = NodeProcess('engram_ros.sim.node', sim_args(namespace), tmp_path / 'sim.log')
    try:
        assert wait_for(lambda: len(got['image']) >= 10 and got['static'], 60.0), sim.log()
    finally:
        assert sim.stop() == 0, sim.log()

    with lock:
        got = {k: list(v) for k, v in got.items()}
    buffer = TransformBuffer()
    for msg in got['static']:
        for t in transforms_from_msg(msg):
            buffer.set_transform(*t, static=True)
    for msg in got['tf']:
        for t in transforms_from_msg(msg):
            buffer.set_transform(*t)
    stamps = sorted(stamp_of(m) for m in got['image'])
    assert all(m.header.frame_id == 'camera_optical' for m in got['image'])

    mount = buffer.lookup('base_link', 'camera_optical', stamps[0])
    np.testing.assert_allclose(mount, camera_extrinsic(XYZ, RPY, 'optical'), atol=1e-9)
    # odom -> base_link is the (drifting) odometry the odom topic reports
    for msg in got['odom']:
        stamp, pose = pose_from_odometry(msg)
        t = buffer.lookup('odom', 'base_link', stamp)
        np.testing.assert_allclose(t[:3, 3], pose.position, atol=1e-9)
    # map -> base_link is the true pose of each frame (status: frame number and true pose)
    checked = 0
    for msg in got['status']:
        status = json.loads(msg.data)
        if 'pose' in status and status['frame'] <= len(stamps):
            t = buffer.lookup('map', 'base_link', stamps[status['frame'] - 1])
            np.testing.assert_allclose(t, base_matrix(*status['pose']), atol=1e-6)
            checked += 1
    assert checked >= 5
