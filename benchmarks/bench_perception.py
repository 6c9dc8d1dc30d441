"""Perception speed: image conversion, keyframe encoding on one core, a live 30 Hz RGB-D stream.

    source tools/env.sh
    python benchmarks/bench_perception.py [--seconds 20] [--rate 30]

1. ``Image`` -> array (rgb8, bgr8, 16UC1, 32FC1 at 640x480, messages as rclpy delivers them):
   p50/p99 over 500 conversions.
2. Encoding on one core (OpenCV and torch limited to one thread): place keyframes (ORB bag of
   words + compressor + visual words) and object jobs (Open3D cloud + crop embedding), per
   second.
3. The perception node in its own process fed a 640x480 RGB-D stream at ``--rate`` Hz (colour,
   depth, camera info, odometry; detections at a third of the rate) while the robot drives and
   turns; frames received, synchronised, gated, encoded and dropped, and the backlog, from the
   node's /diagnostics. Keeping up means every frame received and synchronised, no job
   dropped, backlog 0.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engram_ros.perception.audio import SoundClassifier  # noqa: E402
from engram_ros.perception.audio import SoundModel  # noqa: E402
from engram_ros.perception.geometry import camera_extrinsic  # noqa: E402
from engram_ros.perception.geometry import checked_pose  # noqa: E402
from engram_ros.perception.geometry import Intrinsics  # noqa: E402
from engram_ros.perception.objects import Detection  # noqa: E402
from engram_ros.perception.pipeline import Frame  # noqa: E402
from engram_ros.perception.pipeline import ObjectJob  # noqa: E402
from engram_ros.perception.pipeline import Perception  # noqa: E402
from engram_ros.perception.pipeline import PerceptionConfig  # noqa: E402
from engram_ros.perception.pipeline import PlaceJob  # noqa: E402
from engram_ros.perception.scenes import render_scene  # noqa: E402
from engram_ros.perception.scenes import render_view  # noqa: E402
from engram_ros.perception.scenes import rgbd_with_objects  # noqa: E402
from engram_ros.perception.visual import load_visual_encoder  # noqa: E402

K = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
CAM_XYZ, CAM_RPY = (0.2, 0.0, 1.0), (0.0, 0.2, 0.0)


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e3, q))


def bench_conversion() -> dict:
    from rclpy.serialization import deserialize_message
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from engram_ros.ros.conversions import sensors as pc

    rgb, depth = render_view(1, 0)
    cases = {'rgb8': (rgb, pc.color_from_msg), 'bgr8': (rgb[..., ::-1], pc.color_from_msg),
             '16UC1': ((depth * 1000).astype(np.uint16), pc.depth_from_msg),
             '32FC1': (depth, pc.depth_from_msg)}
    out = {}
    for encoding, (array, convert) in cases.items():
        msg = deserialize_message(serialize_message(pc.array_to_image(array, encoding)), Image)
        times = []
        for _ in range(500):
            t = time.perf_counter()
            convert(msg)
            times.append(time.perf_counter() - t)
        out[encoding] = {'p50_ms': round(percentile_ms(times, 50), 3),
                         'p99_ms': round(percentile_ms(times, 99), 3)}
    return out


def bench_encoding(n: int) -> dict:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    config = PerceptionConfig(camera_xyz=CAM_XYZ, camera_rpy=CAM_RPY)
    p = Perception(config, load_visual_encoder('orb_bow', 256), SoundClassifier(SoundModel.load()))
    frames = []
    for i in range(n):
        pose = checked_pose((0.3 * i, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
        t = pose.matrix() @ camera_extrinsic(CAM_XYZ, CAM_RPY)
        rgb, depth, (box,) = rgbd_with_objects(K, t, [((3.0 + 0.3 * i, 0.2, 0.6), 0.06,
                                                       (30, 200, 30))], background_seed=i)
        frames.append((Frame(float(i), rgb, depth, K, pose, t), box))
    p.run(PlaceJob(frames[0][0], 'first'))            # warm-up
    t0 = time.perf_counter()
    for frame, _ in frames:
        p.run(PlaceJob(frame, 'moved'))
    place_s = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for frame, box in frames:
        p.run(ObjectJob(frame, [Detection('cup', 0.9, box)]))
    object_s = (time.perf_counter() - t0) / n
    return {'threads': 1, 'place_keyframe_ms': round(place_s * 1e3, 1),
            'place_keyframes_per_s': round(1.0 / place_s, 1),
            'object_job_ms': round(object_s * 1e3, 1),
            'object_jobs_per_s': round(1.0 / object_s, 1)}


def bench_stream(seconds: float, rate: float) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo
    from sensor_msgs.msg import Image

    from engram_ros.msg import DetectionArray
    from engram_ros.msg import Observation
    from engram_ros.ros.conversions import sensors as pc
    from engram_ros.ros.conversions.common import seconds_to_time

    namespace = f'/bench{uuid.uuid4().hex[:6]}'
    evidence = tempfile.mkdtemp(prefix='engram_bench_')
    log = open(Path(evidence) / 'perception.log', 'w')
    node_proc = subprocess.Popen(
        [sys.executable, '-m', 'engram_ros.ros.nodes.perception_node', '--ros-args',
         '--params-file', str(ROOT / 'config' / 'engram.yaml'), '-r', f'__ns:={namespace}',
         '-p', 'persist:=true', '-p', f'evidence_dir:={evidence}',
         '-p', f'camera_xyz:={list(CAM_XYZ)}',
         '-p', f'camera_rpy:={list(CAM_RPY)}', '-p', 'camera_convention:=body'],
        stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node('bench_perception')
    color = node.create_publisher(Image, f'{namespace}/camera/color/image_raw', 5)
    depth_pub = node.create_publisher(Image, f'{namespace}/camera/depth/image_raw', 5)
    info = node.create_publisher(CameraInfo, f'{namespace}/camera/color/camera_info', 5)
    odom = node.create_publisher(Odometry, f'{namespace}/odom', 50)
    dets = node.create_publisher(DetectionArray, f'{namespace}/detections', 10)
    latest: dict = {}

    def diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(f'{namespace}/engram_perception'):
                latest.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics, 10)
    # Stands in for the memory: perception reads no sensor until its observations have a
    # listener (the start-up handshake), and the observations it publishes are counted here.
    observed = [0]
    node.create_subscription(Observation, f'{namespace}/engram/observations',
                             lambda msg: observed.__setitem__(0, observed[0] + 1), 100)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (color.get_subscription_count()
                                                 and depth_pub.get_subscription_count()):
        rclpy.spin_once(node, timeout_sec=0.1)
    # The camera pans over a panorama of four scenes (8 px a frame, cycled), so the view
    # changes smoothly as the robot drives and turns; motion, rotation and view gating fire.
    scenes = [render_scene(s) for s in range(4)]
    pano_rgb = np.hstack([s[0] for s in scenes])
    pano_depth = np.hstack([s[1] for s in scenes])
    views = []
    for i in range(0, pano_rgb.shape[1] - 640, 8):
        rgb = np.ascontiguousarray(pano_rgb[120:600, i:i + 640])
        depth = (pano_depth[120:600, i:i + 640] * 1000).astype(np.uint16)
        views.append((pc.array_to_image(rgb, 'rgb8'), pc.array_to_image(depth, '16UC1')))
    sent = 0
    period = 1.0 / rate
    start = time.monotonic()
    next_t = start
    while time.monotonic() - start < seconds:
        now = time.time()
        t_rel = time.monotonic() - start
        x, yaw = 0.5 * t_rel, 0.4 * t_rel
        stamp = seconds_to_time(now)
        odom.publish(pc.odometry_msg(now, (x, 0.0, 0.0), (0.0, 0.0, math.sin(yaw / 2),
                                                         math.cos(yaw / 2))))
        c, d = views[sent % len(views)]
        c.header.stamp = d.header.stamp = stamp
        info.publish(pc.intrinsics_to_msg(K, now))
        depth_pub.publish(d)
        color.publish(c)
        if sent % 3 == 0:
            dets.publish(pc.detections_to_msg([Detection('chair', 0.8, (200, 150, 320, 330))],
                                              now))
        sent += 1
        next_t += period
        while time.monotonic() < next_t:
            rclpy.spin_once(node, timeout_sec=max(0.0, next_t - time.monotonic()))
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node_proc.send_signal(2)
    node_proc.wait(15)
    node.destroy_node()
    rclpy.try_shutdown()
    keys = ('color_received', 'depth_received', 'frames_synced', 'frames_gated',
            'frames_encoded', 'detections_received', 'detections_throttled',
            'object_observations', 'jobs_dropped', 'frames_unmatched', 'backlog',
            'last_encode_ms')
    return {'seconds': seconds, 'rate_hz': rate, 'frames_sent': sent,
            'achieved_rate_hz': round(sent / seconds, 1), 'observations_heard': observed[0],
            **{k: latest.get(k, '0') for k in keys}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--frames', type=int, default=30, help='keyframes for the encode bench')
    parser.add_argument('--skip-stream', action='store_true')
    args = parser.parse_args()
    result = {'conversion_640x480': bench_conversion(), 'encoding': bench_encoding(args.frames)}
    print(json.dumps(result, indent=1), flush=True)
    if not args.skip_stream:
        result['stream'] = bench_stream(args.seconds, args.rate)
        print(json.dumps(result['stream'], indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
