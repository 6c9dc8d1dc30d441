"""Sensor messages (images, camera info, odometry, audio, detections: engram_ros's own and
vision_msgs 4.x ``Detection2DArray``) <-> arrays, both ways:
perception reads them, the simulator node and the tests publish them.

cv_bridge is not available from the package index, so images are converted here with numpy:
``rgb8``/``bgr8``/``rgba8``/``bgra8`` colour (always returned as contiguous RGB uint8),
``32FC1`` (metres) and ``16UC1``/``mono16`` (millimetres) depth (returned as float32 metres,
0 or NaN meaning no measurement), ``mono8`` masks. Row padding (``step``) and big-endian data
are handled. ``sensor_msgs/CompressedImage`` colour (image_transport ``compressed``) and depth
(``compressedDepth``) are decoded by :mod:`engram_ros.perception.compressed`. Anything else
raises :class:`~engram_ros.perception.errors.InputRejected`.
"""

from __future__ import annotations

import array
import math
import sys

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2D
from vision_msgs.msg import Detection2DArray
from vision_msgs.msg import ObjectHypothesisWithPose

from engram_ros.msg import AudioChunk
from engram_ros.msg import Detection as DetectionMsg
from engram_ros.msg import DetectionArray
from engram_ros.perception import compressed
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import checked_pose
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.geometry import Pose
from engram_ros.perception.objects import Detection
from engram_ros.ros.conversions.common import set_header
from engram_ros.ros.conversions.common import stamp_of

#: encoding -> (numpy dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[str, int]] = {
    'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4),
    'mono8': ('u1', 1), '8UC1': ('u1', 1), 'mono16': ('u2', 1), '16UC1': ('u2', 1),
    '32FC1': ('f4', 1),
}
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8')
DEPTH_ENCODINGS = ('32FC1', '16UC1', 'mono16')
AUDIO_ENCODINGS = {'S16LE': '<i2', 'F32LE': '<f4'}


def image_to_array(msg: Image) -> np.ndarray:
    """An Image as an HxW or HxWxC array in its own encoding (a view of the message's buffer
    when rows are not padded; no copy).

    :raises InputRejected: ``encoding`` for an unsupported encoding, ``bad_image`` when the
        sizes and the data length disagree.
    """
    try:
        kind, channels = IMAGE_ENCODINGS[msg.encoding]
    except KeyError:
        raise InputRejected('encoding', f'image encoding {msg.encoding!r} is not supported; '
                                        f'accepted: {", ".join(IMAGE_ENCODINGS)}') from None
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    dtype = np.dtype(kind).newbyteorder('>' if msg.is_bigendian else '<')
    row = w * channels * dtype.itemsize
    if h == 0 or w == 0 or step < row or len(msg.data) < h * step:
        raise InputRejected('bad_image', f'{w}x{h} {msg.encoding} image with step {step} and '
                                         f'{len(msg.data)} bytes is inconsistent')
    flat = np.frombuffer(msg.data, dtype=np.uint8, count=h * step)
    rows = flat.reshape(h, step)[:, :row] if step != row else flat.reshape(h, row)
    out = rows.view(dtype) if step == row else np.ascontiguousarray(rows).view(dtype)
    out = out.reshape((h, w, channels) if channels > 1 else (h, w))
    return out.astype(dtype.newbyteorder('='), copy=False) if msg.is_bigendian else out


def color_from_msg(msg: Image) -> np.ndarray:
    """A colour Image as contiguous HxWx3 RGB uint8.

    :raises InputRejected: ``encoding`` unless the encoding is one of COLOR_ENCODINGS.
    """
    if msg.encoding not in COLOR_ENCODINGS:
        raise InputRejected('encoding', f'colour image encoding {msg.encoding!r}; accepted: '
                                        f'{", ".join(COLOR_ENCODINGS)}')
    a = image_to_array(msg)
    if msg.encoding == 'rgb8':
        return np.ascontiguousarray(a)
    code = {'bgr8': cv2.COLOR_BGR2RGB, 'rgba8': cv2.COLOR_RGBA2RGB,
            'bgra8': cv2.COLOR_BGRA2RGB}[msg.encoding]
    return cv2.cvtColor(np.ascontiguousarray(a), code)


def depth_from_msg(msg: Image) -> np.ndarray:
    """A depth Image as HxW float32 metres (0 or NaN: no measurement).

    :raises InputRejected: ``encoding`` unless 32FC1 (m) or 16UC1/mono16 (mm).
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise InputRejected('encoding', f'depth image encoding {msg.encoding!r}; accepted: '
                                        f'{", ".join(DEPTH_ENCODINGS)}')
    a = image_to_array(msg)
    if msg.encoding == '32FC1':
        return a if a.dtype == np.float32 and a.flags.c_contiguous else \
            np.ascontiguousarray(a, dtype=np.float32)
    return a.astype(np.float32) * np.float32(0.001)


def color_from_compressed(msg: CompressedImage) -> np.ndarray:
    """A ``compressed`` (JPEG/PNG) colour image as contiguous HxWx3 RGB uint8.

    :raises InputRejected: see :func:`engram_ros.perception.compressed.decode_color`.
    """
    return compressed.decode_color(msg.format, bytes(msg.data))


def depth_from_compressed(msg: CompressedImage) -> np.ndarray:
    """A ``compressedDepth`` image as HxW float32 metres (0 or NaN: no measurement).

    :raises InputRejected: see :func:`engram_ros.perception.compressed.decode_depth`.
    """
    return compressed.decode_depth(msg.format, bytes(msg.data))


def compressed_msg(fmt: str, data: bytes, stamp: float | Time = 0.0,
                   frame_id: str = '') -> CompressedImage:
    """A CompressedImage of ``data`` in ``format`` (from
    :func:`engram_ros.perception.compressed.encode_color` or ``encode_depth``)."""
    msg = set_header(CompressedImage(), stamp, frame_id)
    msg.format = fmt
    msg.data = array.array('B', data)
    return msg


def mask_from_msg(msg: Image) -> np.ndarray | None:
    """A detection's optional mono8 mask as a boolean array; ``None`` when empty."""
    if msg.width == 0 or msg.height == 0:
        return None
    if msg.encoding not in ('mono8', '8UC1'):
        raise InputRejected('encoding', f'mask encoding {msg.encoding!r}; accepted: mono8')
    return image_to_array(msg) != 0


def array_to_image(a: np.ndarray, encoding: str, stamp: float | Time = 0.0,
                   frame_id: str = '') -> Image:
    """An array (in ``encoding``'s layout: RGB order for rgb8, BGR for bgr8, ...) as an Image,
    its data in this machine's byte order.

    :raises ValueError: for an unsupported encoding or an array of the wrong dtype/shape.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f'unsupported encoding {encoding!r}')
    kind, channels = IMAGE_ENCODINGS[encoding]
    a = np.ascontiguousarray(a)
    if a.dtype != np.dtype(kind) or (a.shape[2:] or (1,))[0] != channels:
        raise ValueError(f'{encoding} needs dtype {np.dtype(kind)} with {channels} channel(s), '
                         f'got {a.dtype} {a.shape}')
    msg = set_header(Image(), stamp, frame_id)
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == 'big' and a.dtype.itemsize > 1)
    msg.step = int(a.strides[0])
    msg.data = array.array('B', a.tobytes())
    return msg


def intrinsics_from_msg(msg: CameraInfo) -> Intrinsics:
    """:raises InputRejected: ``bad_camera_info`` for a zero/NaN K or image size."""
    return Intrinsics.from_k(msg.k, msg.width, msg.height)


def intrinsics_to_msg(k: Intrinsics, stamp: float | Time = 0.0,
                      frame_id: str = '') -> CameraInfo:
    return camera_info_msg(k.matrix(), k.width, k.height, stamp, frame_id)


def camera_info_msg(k: np.ndarray, width: int, height: int, stamp: float | Time = 0.0,
                    frame_id: str = '') -> CameraInfo:
    """A distortion-free pinhole camera (3x3 ``k``) as CameraInfo (R identity, P from K)."""
    msg = set_header(CameraInfo(), stamp, frame_id)
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = 'plumb_bob'
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(k).reshape(-1)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(k[0][0]), 0.0, float(k[0][2]), 0.0, 0.0, float(k[1][1]), float(k[1][2]), 0.0,
             0.0, 0.0, 1.0, 0.0]
    return msg


def pose_from_odometry(msg: Odometry) -> tuple[float, Pose]:
    """``(stamp, pose of the child frame in header.frame_id)``.

    :raises InputRejected: ``bad_pose`` for NaN or a non-unit quaternion.
    """
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return stamp_of(msg), checked_pose((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))


def pose_from_pose_stamped(msg: PoseStamped) -> tuple[float, Pose]:
    """As :func:`pose_from_odometry`, for ``geometry_msgs/PoseStamped``."""
    p, q = msg.pose.position, msg.pose.orientation
    return stamp_of(msg), checked_pose((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))


def odometry_msg(stamp: float | Time, position, orientation, frame_id: str = 'map',
                 child_frame_id: str = 'base_link', covariance=None, linear=None,
                 angular=None) -> Odometry:
    """Pose (position, quaternion x, y, z, w) of ``child_frame_id`` in ``frame_id``; optional
    pose covariance (36, row-major) and twist (linear, angular velocity in the child frame)."""
    msg = set_header(Odometry(), stamp, frame_id)
    msg.child_frame_id = child_frame_id
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.x, q.y, q.z, q.w = (float(v) for v in orientation)
    if covariance is not None:
        msg.pose.covariance = [float(c) for c in covariance]
    t = msg.twist.twist
    if linear is not None:
        t.linear.x, t.linear.y, t.linear.z = (float(v) for v in linear)
    if angular is not None:
        t.angular.x, t.angular.y, t.angular.z = (float(v) for v in angular)
    return msg


def audio_from_msg(msg: AudioChunk) -> tuple[float, np.ndarray, int]:
    """``(stamp of the first sample, mono float32 samples in [-1, 1], sample rate)``.

    Channels are averaged.

    :raises InputRejected: ``audio_format`` for an unknown encoding, a zero rate or channel
        count, or a data length that is not whole samples.
    """
    dtype = AUDIO_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise InputRejected('audio_format', f'audio encoding {msg.encoding!r}; accepted: '
                                            f'{", ".join(AUDIO_ENCODINGS)}')
    width = np.dtype(dtype).itemsize * max(1, msg.channels)
    if msg.sample_rate == 0 or msg.channels == 0 or len(msg.data) % width:
        raise InputRejected('audio_format', f'{len(msg.data)} bytes of {msg.channels}-channel '
                                            f'{msg.encoding} at {msg.sample_rate} Hz are not '
                                            'whole samples')
    x = np.frombuffer(msg.data, dtype=dtype).reshape(-1, msg.channels).astype(np.float32)
    if msg.encoding == 'S16LE':
        x /= 32768.0
    x = x.mean(axis=1) if msg.channels > 1 else x[:, 0]
    if not np.all(np.isfinite(x)):
        raise InputRejected('audio_format', 'audio samples contain NaN or inf')
    return stamp_of(msg), x, int(msg.sample_rate)


def audio_to_msg(samples: np.ndarray, sample_rate: int, stamp: float | Time,
                 encoding: str = 'S16LE', frame_id: str = 'microphone') -> AudioChunk:
    """Mono float samples in [-1, 1] as an AudioChunk."""
    x = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    raw = (x * 32767.0).astype('<i2') if encoding == 'S16LE' else x.astype('<f4')
    return audio_chunk_msg(raw, sample_rate, stamp, encoding, frame_id)


def audio_chunk_msg(pcm: np.ndarray, sample_rate: int, stamp: float | Time,
                    encoding: str = 'S16LE', frame_id: str = 'microphone') -> AudioChunk:
    """Mono samples already in ``encoding``'s scale (int16 for S16LE) as an AudioChunk."""
    msg = set_header(AudioChunk(), stamp, frame_id)
    msg.sample_rate = int(sample_rate)
    msg.channels = 1
    msg.encoding = encoding
    msg.data = array.array('B', np.asarray(pcm).astype(AUDIO_ENCODINGS[encoding]).tobytes())
    return msg


def detections_from_msg(msg: DetectionArray) -> tuple[float, list[Detection]]:
    """``(stamp of the image, detections)``; masks become boolean arrays."""
    return stamp_of(msg), [
        Detection(label=d.label, score=float(d.score),
                  box=(float(d.x_min), float(d.y_min), float(d.x_max), float(d.y_max)),
                  mask=mask_from_msg(d.mask)) for d in msg.detections]


def detections_to_msg(detections: list[Detection], stamp: float | Time,
                      frame_id: str = 'camera') -> DetectionArray:
    """Detections (anything with ``label``, ``score``, ``box`` and an optional boolean
    ``mask``) as a DetectionArray; masks become mono8 images of 0 and 255."""
    msg = set_header(DetectionArray(), stamp, frame_id)
    for d in detections:
        m = DetectionMsg(label=d.label, score=float(d.score))
        m.x_min, m.y_min, m.x_max, m.y_max = (float(v) for v in d.box)
        if d.mask is not None:
            m.mask = array_to_image(d.mask.astype(np.uint8) * 255, 'mono8', stamp, frame_id)
        msg.detections.append(m)
    return msg


def detections_from_vision_msg(msg: Detection2DArray) -> tuple[float, list[Detection]]:
    """``(stamp of the image, detections)`` from vision_msgs 4.x: each detection's best
    hypothesis (highest score) gives its label (the ``class_id`` as it is: the pipeline names
    numeric ids) and score; the box is the axis-aligned hull of ``bbox`` (rotated by
    ``center.theta``). A detection without a hypothesis has label ``''`` and score 0 (the
    pipeline counts it). The array's stamp, or the first detection's when the array's is zero.
    """
    stamp = stamp_of(msg)
    if stamp == 0.0 and msg.detections:
        stamp = stamp_of(msg.detections[0])
    out = []
    for d in msg.detections:
        best = max(d.results, key=lambda r: r.hypothesis.score, default=None)
        label, score = ('', 0.0) if best is None else \
            (best.hypothesis.class_id, float(best.hypothesis.score))
        c = d.bbox.center
        half_w, half_h = 0.5 * d.bbox.size_x, 0.5 * d.bbox.size_y
        cos, sin = abs(math.cos(c.theta)), abs(math.sin(c.theta))
        dx, dy = half_w * cos + half_h * sin, half_w * sin + half_h * cos
        x, y = c.position.x, c.position.y
        out.append(Detection(label=label, score=score, box=(x - dx, y - dy, x + dx, y + dy)))
    return stamp, out


def vision_detections_to_msg(detections: list[Detection], stamp: float | Time,
                             frame_id: str = 'camera') -> Detection2DArray:
    """Detections as vision_msgs 4.x ``Detection2DArray`` (one hypothesis each, the label as
    ``class_id``; axis-aligned boxes), as a detector node publishes them."""
    msg = set_header(Detection2DArray(), stamp, frame_id)
    for d in detections:
        m = set_header(Detection2D(), stamp, frame_id)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = d.label
        hypothesis.hypothesis.score = float(d.score)
        m.results.append(hypothesis)
        x0, y0, x1, y1 = (float(v) for v in d.box)
        m.bbox.center.position.x, m.bbox.center.position.y = (x0 + x1) / 2, (y0 + y1) / 2
        m.bbox.size_x, m.bbox.size_y = x1 - x0, y1 - y0
        msg.detections.append(m)
    return msg
