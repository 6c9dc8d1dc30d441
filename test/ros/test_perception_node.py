"""The perception node in a real rclpy graph, feeding a real memory node over DDS.

Each node runs in its own process; the test publishes camera, depth, camera info, odometry,
detections and audio, then finds the engrams through the memory's Recall service.

Topics are not ordered with each other and a keep-last queue overwrites what a busy node has
not read yet, so the test never relies on timing: it publishes what a step needs (the camera
info, the poses a sound will be placed at) and waits until perception's diagnostics count it
before the next step, and it publishes a frame's inputs only once the previous frame's were
read. No retry hides a lost message.
"""

from __future__ import annotations

import math
import time
import uuid

import numpy as np
import pytest

from conftest import NodeProcess
from conftest import PARAMS
from conftest import ROOT
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from engram_ros.msg import AudioChunk  # noqa: E402
from engram_ros.msg import DetectionArray  # noqa: E402
from engram_ros.perception import compressed  # noqa: E402
from engram_ros.perception.geometry import camera_extrinsic  # noqa: E402
from engram_ros.perception.geometry import checked_pose  # noqa: E402
from engram_ros.perception.geometry import Intrinsics  # noqa: E402
from engram_ros.perception.objects import Detection  # noqa: E402
from engram_ros.perception.scenes import rgbd_with_objects  # noqa: E402
from engram_ros.perception.sounds import synthesise  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402
from engram_ros.ros.conversions import sensors as pc  # noqa: E402

K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
CAM_XYZ, CAM_RPY = (0.2, 0.0, 1.0), (0.0, 0.2, 0.0)
CUP = np.array([2.5, 0.3, 0.6])
COCO = ROOT / 'config' / 'coco_names.txt'


def perception_args(namespace: str, tmp_path, *extra: str) -> list[str]:
    args = ['--params-file', str(PARAMS), '-r', f'__ns:={namespace}',
            '-r', '__node:=engram_perception',
            '-p', 'persist:=true', '-p', f'evidence_dir:={tmp_path / "evidence"}',
            '-p', 'diagnostics_period:=0.2',
            '-p', f'camera_xyz:={list(CAM_XYZ)}', '-p', f'camera_rpy:={list(CAM_RPY)}',
            '-p', 'camera_convention:=body',
            # the fake robot has no TF: odometry and the parameters place its frames at once,
            # as a robot without TF sets it
            '-p', 'tf.wait:=0.0']
    for item in extra:
        args += ['-p', item]
    return args


class Robot:
    """The test's publishers: a fake robot with a camera, a microphone and a detector."""

    def __init__(self, node, namespace: str, compressed: bool = False,
                 cup_label: str = 'cup', vision_msgs: bool = False) -> None:
        """``compressed``: images as image_transport's compressed/compressedDepth;
        ``vision_msgs``: detections as vision_msgs/Detection2DArray on detections_2d."""
        self.ns = namespace
        self.compressed = compressed
        self.cup_label = cup_label
        self.vision_msgs = vision_msgs
        self.sent: dict[str, int] = dict.fromkeys(
            ('color_received', 'depth_received', 'poses_received', 'audio_received',
             'detections_received', 'camera_info_received'), 0)
        color, depth = f'{namespace}/camera/color/image_raw', f'{namespace}/camera/depth/image_raw'
        if compressed:      # image_transport's names: the base topic and the transport
            self.color = node.create_publisher(CompressedImage, f'{color}/compressed', 10)
            self.depth = node.create_publisher(CompressedImage, f'{depth}/compressedDepth', 10)
        else:
            self.color = node.create_publisher(Image, color, 10)
            self.depth = node.create_publisher(Image, depth, 10)
        self.info = node.create_publisher(CameraInfo, f'{namespace}/camera/color/camera_info', 10)
        self.odom = node.create_publisher(Odometry, f'{namespace}/odom', 50)
        self.detections = node.create_publisher(
            *((Detection2DArray, f'{namespace}/detections_2d') if vision_msgs
              else (DetectionArray, f'{namespace}/detections')), 10)
        self.audio = node.create_publisher(AudioChunk, f'{namespace}/audio/chunk', 100)
        self.values: dict[str, str] = {}
        self.memory_values: dict[str, str] = {}
        node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics_callback, 50)

    def connected(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in
                   (self.color, self.depth, self.info, self.odom, self.detections, self.audio))

    def diagnostics_callback(self, array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.startswith(f'{self.ns}/engram_perception'):
                self.values = {kv.key: kv.value for kv in status.values}
            elif status.hardware_id == f'{self.ns}/engram_memory':
                self.memory_values = {kv.key: kv.value for kv in status.values}

    def diagnostic(self, key: str) -> int:
        """Latest value of a perception counter."""
        return int(float(self.values.get(key, 0)))

    def read_all(self, timeout: float = 30.0) -> None:
        """Wait until perception has read everything sent so far (its counters say so) and
        has no job waiting: the next step's messages cannot overwrite these in its queues."""
        def done() -> bool:
            values = dict(self.values)      # one diagnostics message, not two halves
            return (all(int(float(values.get(k, 0))) >= n for k, n in self.sent.items())
                    and int(float(values.get('backlog', 1))) == 0)
        assert wait_for(done, timeout), f'sent {self.sent}, counters {sorted(self.values.items())}'

    def camera_info(self, stamp: float) -> None:
        """CameraInfo before any image: topics are not ordered, so wait until it is read."""
        self.info.publish(pc.intrinsics_to_msg(K, stamp, 'camera_optical'))
        self.sent['camera_info_received'] += 1
        self.read_all()

    def odometry(self, stamp: float, position, orientation=(0.0, 0.0, 0.0, 1.0)) -> None:
        self.odom.publish(pc.odometry_msg(stamp, position, orientation))
        self.sent['poses_received'] += 1

    def frame(self, stamp: float, x: float, yaw: float = 0.0, detect: bool = True,
              depth_scale: float = 1.0) -> None:
        w, z = math.cos(yaw / 2), math.sin(yaw / 2)
        pose = checked_pose((x, 0.0, 0.0), (0.0, 0.0, z, w))
        t = pose.matrix() @ camera_extrinsic(CAM_XYZ, CAM_RPY)
        rgb, depth, (box,) = rgbd_with_objects(K, t, [(CUP, 0.05, (200, 30, 30))], 11)
        for dt in (-0.05, 0.0):
            self.odometry(stamp + dt, pose.position, pose.orientation)
        mm = np.round(depth * 1000 * depth_scale).astype(np.uint16)
        if self.compressed:
            self.depth.publish(pc.compressed_msg(*compressed.encode_depth(mm, '16UC1'), stamp,
                                                 'camera_optical'))
            self.color.publish(pc.compressed_msg(*compressed.encode_color(rgb, 'jpeg'), stamp,
                                                 'camera_optical'))
        else:
            self.depth.publish(pc.array_to_image(mm, '16UC1', stamp, 'camera_optical'))
            self.color.publish(pc.array_to_image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8',
                                                 stamp, 'camera_optical'))
        self.sent['depth_received'] += 1
        self.sent['color_received'] += 1
        if detect:
            to_msg = pc.vision_detections_to_msg if self.vision_msgs else pc.detections_to_msg
            self.detections.publish(to_msg([Detection(self.cup_label, 0.92, box)], stamp,
                                           'camera_optical'))
            self.sent['detections_received'] += 1
        self.read_all()

    def sound(self, stamp: float, name: str, at) -> None:
        """Play a sound in 0.1 s chunks while the robot stands ``at``.

        A sound is placed at the pose of its stamp when it ends, looked up at once: the poses
        covering it are read first (odometry and audio are not ordered with each other), and
        chunks go in batches the audio queue holds, each read before the next.
        """
        x = synthesise(name, 3, pad=1.0)
        end = stamp + len(x) / 16000
        for t in np.arange(stamp - 0.5, end + 1.0, 0.5):
            self.odometry(float(t), at)
        self.read_all()
        for i in range(0, len(x), 1600):
            self.audio.publish(pc.audio_to_msg(x[i:i + 1600], 16000, stamp + i / 16000))
            self.sent['audio_received'] += 1
            if self.sent['audio_received'] % 20 == 0:
                self.read_all()
        self.read_all()


@pytest.fixture
def graph(test_node, start_memory, tmp_path):
    robot, client, perception = start_graph(test_node, start_memory, tmp_path)
    yield robot, client, perception
    assert perception.stop() == 0, perception.log()


def start_graph(test_node, start_memory, tmp_path, *extra: str, **robot_options):
    """A memory, a perception node (``extra`` parameters) and the test's robot, connected."""
    memory, namespace = start_memory()
    perception = NodeProcess('engram_ros.ros.nodes.perception_node',
                             perception_args(namespace, tmp_path, *extra),
                             tmp_path / 'perception.log')
    client = MemoryClient(test_node, namespace)
    robot = Robot(test_node, namespace, **robot_options)
    try:
        client.wait_for_services(timeout=20.0)
    except RuntimeError:
        pytest.fail(f'memory node did not come up:\n{memory.log()}')
    assert wait_for(robot.connected, 30.0), perception.log()
    # Perception's observations are volatile: the memory must be listening before the first
    # one is published, or it is lost (as on a real robot whose memory starts late). That this
    # test node sees both ends of the topic does not mean they see each other (each pair of
    # DDS participants discovers the other on its own): wait until perception's publisher
    # has matched the memory's subscription, as its diagnostics report.
    assert wait_for(lambda: robot.diagnostic('observation_subscribers') >= 1, 30.0), \
        f'{sorted(robot.values.items())}\n{perception.log()}'
    # CameraInfo first: published in the same instant as a frame's images, it may arrive after
    # them (topics are not ordered), and that frame would be skipped for the wrong reason.
    robot.camera_info(time.time())
    return robot, client, perception


def drive_until_a_mug(robot, client, perception, tag: str = 'label:mug'):
    """Drive past the cup until the memory holds an object tagged ``tag`` (observations reach
    it asynchronously); that engram."""
    t0 = time.time()

    def mugs():
        return client.recall(tags_all=[tag], kinds=['object'], k=5).engrams

    path = (0.0, 0.05, 0.1, 0.8, 0.85, 1.5, 1.55)
    for i in range(40):
        robot.frame(t0 + 0.2 * i, path[i % len(path)] if i < len(path) else path[-1])
        if i >= len(path) and mugs():
            break
    assert mugs(), f'{sorted(robot.values.items())}\n{perception.log()}'
    return mugs()[0]


def test_a_detected_cup_becomes_a_mug_engram_at_the_right_place(graph):
    robot, client, perception = graph
    mug = drive_until_a_mug(robot, client, perception)
    p = mug.pose.pose.position
    assert np.linalg.norm(np.array([p.x, p.y, p.z]) - CUP) < 0.05
    assert {'label:mug', 'color:red', 'size:small'} <= set(mug.tags)
    assert mug.evidence_uris and mug.evidence_uris[0].startswith('file://')
    places = client.recall(kinds=['place'], k=10).engrams
    assert places and any(t.startswith('vw:') for t in places[0].tags)
    answer = client.recall(text='where is the red cup?', k=1)
    assert answer.engrams and answer.engrams[0].label == 'mug'
    assert wait_for(lambda: robot.diagnostic('frames_encoded') >= 2, 15.0), \
        sorted(robot.values.items())
    assert wait_for(lambda: robot.diagnostic('backlog') == 0, 10.0), robot.values


def test_a_real_robots_inputs_make_the_same_mug(test_node, start_memory, tmp_path):
    """What a real robot's bag carries: JPEG colour on .../compressed, PNG depth on
    .../compressedDepth, and a YOLO-style detector publishing vision_msgs/Detection2DArray
    with COCO class id 41 ("cup")."""
    robot, client, perception = start_graph(
        test_node, start_memory, tmp_path, 'image_transport:=compressed',
        'depth_image_transport:=compressedDepth', f'class_names:={COCO}',
        compressed=True, cup_label='41', vision_msgs=True)
    try:
        mug = drive_until_a_mug(robot, client, perception)
        p = mug.pose.pose.position
        assert np.linalg.norm(np.array([p.x, p.y, p.z]) - CUP) < 0.05
        assert {'label:mug', 'color:red', 'size:small'} <= set(mug.tags)
        assert robot.diagnostic('skipped_encoding') == 0
        assert robot.diagnostic('skipped_unknown_class') == 0
    finally:
        assert perception.stop() == 0, perception.log()


def test_two_namespaced_cameras_feed_one_memory(test_node, start_memory, tmp_path):
    """One perception node per camera, each in its own namespace under the robot's, its
    observations remapped to the robot's memory (the README's multi-camera recipe)."""
    memory, namespace = start_memory()
    client = MemoryClient(test_node, namespace)
    cameras = []
    for camera, label in (('front', 'cup'), ('back', 'book')):
        args = perception_args(f'{namespace}/{camera}', tmp_path) + [
            '-r', f'engram/observations:={namespace}/engram/observations']
        cameras.append((NodeProcess('engram_ros.ros.nodes.perception_node', args,
                                    tmp_path / f'{camera}.log'),
                        Robot(test_node, f'{namespace}/{camera}', cup_label=label), label))
    try:
        client.wait_for_services(timeout=20.0)
        for perception, robot, _ in cameras:
            assert wait_for(robot.connected, 60.0), perception.log()
            assert wait_for(lambda r=robot: r.diagnostic('observation_subscribers') >= 1,
                            30.0), f'{sorted(robot.values.items())}\n{perception.log()}'
            robot.camera_info(time.time())
        for perception, robot, label in cameras:
            seen = drive_until_a_mug(robot, client, perception, tag=f'label:{label}')
            p = seen.pose.pose.position
            assert np.linalg.norm(np.array([p.x, p.y, p.z]) - CUP) < 0.05
    finally:
        for perception, _, _ in cameras:
            assert perception.stop() == 0, perception.log()


def test_a_doorbell_is_remembered_where_it_was_heard(graph):
    robot, client, perception = graph
    robot.sound(time.time(), 'doorbell', at=(1.0, 0.0, 0.0))

    def bells():
        return client.recall(tags_all=['sound:doorbell'], kinds=['audio'], k=5).engrams

    heard = lambda: [(e.tags, e.pose.pose.position) for e in  # noqa: E731
                     client.recall(kinds=['audio'], k=5).engrams]
    assert wait_for(lambda: len(bells()) == 1, 20.0), \
        f'audio engrams: {heard()}\ncounters: {sorted(robot.values.items())}\n' \
        f'memory: {sorted(robot.memory_values.items())}'
    p = bells()[0].pose.pose.position
    assert (p.x, p.y) == pytest.approx((1.0, 0.0), abs=1e-3)
    assert bells()[0].evidence_uris == []     # clips are not kept by default


def test_bad_input_is_skipped_counted_and_never_placed(graph):
    robot, client, perception = graph
    t0 = time.time()
    robot.odometry(t0, (0, 0, 0), (0, 0, 0, 0.5))
    robot.odometry(t0 + 0.01, (math.nan, 0, 0), (0, 0, 0, 1))
    yuv = pc.array_to_image(np.zeros((480, 640), np.uint8), 'mono8', t0)
    yuv.encoding = 'yuv422'
    robot.color.publish(yuv)
    robot.sent['color_received'] += 1
    chunk = pc.audio_to_msg(np.zeros(160), 16000, t0)
    chunk.encoding = 'MP3'
    robot.audio.publish(chunk)
    robot.sent['audio_received'] += 1
    robot.read_all()
    robot.frame(t0 + 1.0, 0.0, depth_scale=0.0)          # all depth zero: no object
    robot.frame(t0 + 0.5, 0.0)                            # stamps going backwards
    robot.detections.publish(pc.detections_to_msg(        # without a class: kept, counted
        [Detection('', 0.9, (10.0, 10.0, 50.0, 50.0)),    # ... without class nor score
         Detection('', 0.0, (10.0, 10.0, 50.0, 50.0))], t0 + 2.0, 'camera_optical'))
    robot.sent['detections_received'] += 1

    def counted() -> bool:
        return (robot.diagnostic('skipped_no_label') >= 1
                and robot.diagnostic('labels_empty') >= 1
                and robot.diagnostic('skipped_bad_pose') >= 2
                and robot.diagnostic('skipped_encoding') >= 1
                and robot.diagnostic('skipped_audio_format') >= 1
                and robot.diagnostic('skipped_no_valid_depth') >= 1
                and robot.diagnostic('skipped_stamp_backwards') >= 1)

    assert wait_for(counted, 15.0), \
        f'counters: {sorted(robot.values.items())}\nperception log:\n{perception.log()}'
    assert client.recall(kinds=['object'], k=5).engrams == []
    assert perception.proc.poll() is None
    assert 'skipped detections: no class' in perception.log()
    assert 'kept detections with an empty label' in perception.log()


def test_sensors_are_read_only_once_a_memory_listens(test_node, start_memory, tmp_path):
    """What perception saw with no memory listening would be lost (observations are volatile)
    and its evidence orphaned: it reads no sensor until a memory subscribes, so a source that
    waits for readers (the simulator) starts only when nothing is lost."""
    namespace = f'/w{uuid.uuid4().hex[:8]}'
    perception = NodeProcess('engram_ros.ros.nodes.perception_node',
                             perception_args(namespace, tmp_path), tmp_path / 'perception.log')
    robot = Robot(test_node, namespace)
    try:
        assert wait_for(lambda: 'observation_subscribers' in robot.values, 60.0), \
            perception.log()
        assert robot.diagnostic('observation_subscribers') == 0
        # it is up and talking to this node, yet no sensor topic has its subscriber
        sensors = [f'{namespace}/{name}' for name in (
            'camera/color/image_raw', 'camera/depth/image_raw', 'camera/color/camera_info',
            'odom', 'audio/chunk', 'detections', 'detections_2d')]
        assert not wait_for(lambda: any(test_node.count_subscribers(t) for t in sensors), 3.0), \
            perception.log()
        start_memory(namespace)
        assert wait_for(robot.connected, 60.0), perception.log()
        # the line is logged just after the subscriptions are made
        assert wait_for(lambda: 'a memory listens on' in perception.log(), 30.0), \
            perception.log()
        robot.camera_info(time.time())
        robot.frame(time.time(), 0.0)
    finally:
        assert perception.stop() == 0, perception.log()


@pytest.mark.parametrize('settings, message', [
    (['camera_convention:=sideways'], 'camera_convention must be body or optical'),
    (['depth_image_transport:=compressed'],
     'depth_image_transport must be raw or compressedDepth'),
    (['class_names:=/nonexistent/coco.names'],
     "class_names file '/nonexistent/coco.names' cannot be read"),
    (['rooms:=["kitchen=circle:1,2,3"]'], "room 'kitchen=circle:1,2,3': unknown shape"),
    (['objects.burst:=0'], 'objects.burst must be > 0'),
    (['encrypt_evidence:=true', 'encryption_key_file:=/nonexistent/engram.key'],
     "evidence encryption is on but the key file '/nonexistent/engram.key' cannot be read"),
])
def test_invalid_parameters_stop_the_node_with_a_clear_message(tmp_path, settings, message):
    proc = NodeProcess('engram_ros.ros.nodes.perception_node',
                       perception_args('/bad', tmp_path, *settings), tmp_path / 'bad.log')
    assert proc.proc.wait(60) == 2
    assert message in proc.log()
    proc.stop()


def test_compressed_topics_follow_the_remapped_base_name(test_node, tmp_path):
    """As image_transport names them: the base topic is remapped, the transport's suffix
    follows (a remap of camera/color/image_raw moves camera/color/image_raw/compressed)."""
    from engram_ros.msg import Observation

    namespace = f'/c{uuid.uuid4().hex[:8]}'
    perception = NodeProcess('engram_ros.ros.nodes.perception_node', perception_args(
        namespace, tmp_path, 'image_transport:=compressed',
        'depth_image_transport:=compressedDepth') + [
        '-r', f'camera/color/image_raw:={namespace}/front/color/image_raw'],
        tmp_path / 'perception.log')
    try:
        # a memory-like reader, so that perception subscribes its sensors
        test_node.create_subscription(Observation, f'{namespace}/engram/observations',
                                      lambda msg: None, 10)
        topics = (f'{namespace}/front/color/image_raw/compressed',
                  f'{namespace}/camera/depth/image_raw/compressedDepth')
        assert wait_for(lambda: all(test_node.count_subscribers(t) == 1 for t in topics),
                        60.0), perception.log()
        types = dict(test_node.get_topic_names_and_types())
        assert types[topics[0]] == types[topics[1]] == ['sensor_msgs/msg/CompressedImage']
        assert f'{namespace}/camera/color/image_raw/compressed' not in types
    finally:
        assert perception.stop() == 0, perception.log()
