"""The sim node in its own process over real DDS: every topic of the perception contract."""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict

import numpy as np
import pytest

from conftest import NodeProcess
from conftest import PARAMS
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('pybullet')

from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from engram_ros.msg import AudioChunk  # noqa: E402
from engram_ros.msg import DetectionArray  # noqa: E402

WIDTH, HEIGHT, RATE = 160, 120, 4.0
CONTRACT = {'camera/color/image_raw': Image, 'camera/depth/image_raw': Image,
            'camera/color/camera_info': CameraInfo, 'odom': Odometry,
            'audio/chunk': AudioChunk, 'detections': DetectionArray}


def sim_args(namespace: str, *extra: str) -> list[str]:
    args = ['--params-file', str(PARAMS), '-r', f'__ns:={namespace}',
            '-p', 'scenario:=small', '-p', f'width:={WIDTH}', '-p', f'height:={HEIGHT}',
            '-p', f'rate:={RATE}']
    for item in extra:
        args += ['-p', item]
    return args


def stamp_key(msg) -> tuple[int, int]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def test_sim_node_publishes_the_topic_contract(test_node, tmp_path):
    namespace = f'/t{uuid.uuid4().hex[:8]}'
    received: dict[str, list] = defaultdict(list)
    lock = threading.Lock()

    def keep(topic):
        def callback(msg):
            with lock:
                received[topic].append(msg)
        return callback

    for topic, kind in CONTRACT.items():
        test_node.create_subscription(kind, f'{namespace}/{topic}', keep(topic), 50)
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    for topic in ('sim/ground_truth', 'sim/status'):
        test_node.create_subscription(String, f'{namespace}/{topic}', keep(topic), latched)

    sim = NodeProcess('engram_ros.sim.node', sim_args(namespace), tmp_path / 'sim.log')
    try:
        assert wait_for(lambda: len(received['detections']) >= 12, timeout=60.0), sim.log()
    finally:
        assert sim.stop() == 0, sim.log()

    with lock:
        got = {topic: list(msgs) for topic, msgs in received.items()}
    for topic in CONTRACT:
        assert got.get(topic), f'nothing on {topic}'

    # one stamp per frame, shared by every topic of the frame
    frames = [stamp_key(m) for m in got['camera/color/image_raw']]
    assert len(set(frames)) == len(frames) and frames == sorted(frames)
    for topic in CONTRACT:
        stamps = {stamp_key(m) for m in got[topic]}
        common = stamps & set(frames)
        assert len(common) >= min(len(stamps), len(frames)) - 2, topic

    rgb = got['camera/color/image_raw'][0]
    assert (rgb.width, rgb.height, rgb.encoding, rgb.step) == (WIDTH, HEIGHT, 'rgb8', WIDTH * 3)
    assert len(rgb.data) == WIDTH * HEIGHT * 3 and rgb.header.frame_id == 'camera_optical'
    depth = got['camera/depth/image_raw'][0]
    assert (depth.width, depth.height, depth.encoding) == (WIDTH, HEIGHT, '32FC1')
    metres = np.frombuffer(bytes(depth.data), dtype=np.float32)
    assert metres.size == WIDTH * HEIGHT and 0.1 <= metres.min() and metres.max() <= 12.0
    info = got['camera/color/camera_info'][0]
    assert (info.width, info.height, info.header.frame_id) == (WIDTH, HEIGHT, 'camera_optical')
    assert info.k[2] == WIDTH / 2 and info.k[5] == HEIGHT / 2 and info.k[0] == info.k[4] > 0

    odom = got['odom'][-1]
    assert (odom.header.frame_id, odom.child_frame_id) == ('map', 'base_link')
    q = odom.pose.pose.orientation
    assert abs(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 - 1.0) < 1e-6
    xs = [m.pose.pose.position.x for m in got['odom']]
    assert max(xs) - min(xs) > 0.5  # it moves

    chunk = got['audio/chunk'][0]
    assert (chunk.sample_rate, chunk.channels, chunk.encoding) == (16000, 1, 'S16LE')
    assert len(chunk.data) == int(16000 / RATE) * 2

    labels = {d.label for m in got['detections'] for d in m.detections}
    truth = json.loads(got['sim/ground_truth'][-1].data)
    assert labels and labels <= {o['label'] for o in truth['objects']}
    for m in got['detections']:
        assert m.header.frame_id == 'camera_optical'
        for d in m.detections:
            assert 0 <= d.x_min < d.x_max <= WIDTH and 0 <= d.y_min < d.y_max <= HEIGHT
            assert (d.mask.width, d.mask.height, d.mask.encoding) == (WIDTH, HEIGHT, 'mono8')
    assert truth['world'] == 'small' and truth['frame_id'] == 'map'
    assert {r['name'] for r in truth['rooms']} == {'kitchen', 'living_room'}
    status = json.loads(got['sim/status'][-1].data)
    assert status['frame'] >= 12 and status['laps'] == 1 and not status['done']


def test_bad_scenario_stops_the_node_naming_the_line(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('world: small\nroute:\n  - [1.0, 2.0]\n  - [9.0, 2.0]\n')
    sim = NodeProcess('engram_ros.sim.node', sim_args('/bad', f'scenario:={bad}'),
                      tmp_path / 'sim.log')
    assert sim.proc.wait(60) == 2
    log = sim.log()
    assert f'{bad}:4: waypoint 2 at (9, 2) is outside the house' in log, log
