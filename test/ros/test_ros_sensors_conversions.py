"""Image, depth, audio, pose and detection messages <-> arrays (cv_bridge is not available)."""

import array
import math

import cv2
import numpy as np
import pytest

pytest.importorskip('rclpy')

from sensor_msgs.msg import Image  # noqa: E402

from engram_ros.perception.errors import InputRejected  # noqa: E402
from engram_ros.perception.objects import Detection  # noqa: E402
from engram_ros.ros.conversions import sensors as pc  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding, layout', [
    ('rgb8', RGB), ('bgr8', RGB[..., ::-1]),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])),
    ('bgra8', np.dstack([RGB[..., ::-1], np.zeros(RGB.shape[:2], np.uint8)]))])
def test_colour_encodings_come_back_as_rgb(encoding, layout):
    out = pc.color_from_msg(pc.array_to_image(layout, encoding, 12.5, 'cam'))
    assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, RGB)


def test_depth_in_metres_and_millimetres():
    metres = RNG.uniform(0.2, 5.0, (48, 64)).astype(np.float32)
    metres[0, 0] = np.nan
    out = pc.depth_from_msg(pc.array_to_image(metres, '32FC1'))
    assert np.array_equal(out, metres, equal_nan=True)
    mm = np.nan_to_num(metres * 1000).astype(np.uint16)
    mm[0, 0] = 0
    out = pc.depth_from_msg(pc.array_to_image(mm, '16UC1'))
    assert out.dtype == np.float32 and out[0, 0] == 0.0
    assert np.allclose(out[1:], mm[1:] / 1000.0, atol=1e-6)


def test_row_padding_and_big_endian():
    depth = RNG.uniform(0.5, 2.0, (4, 5)).astype('>f4')
    padded = np.zeros((4, 32), np.uint8)
    padded[:, :20] = np.frombuffer(depth.tobytes(), np.uint8).reshape(4, 20)
    msg = Image(height=4, width=5, encoding='32FC1', is_bigendian=1, step=32)
    msg.data = array.array('B', padded.tobytes())
    assert np.allclose(pc.depth_from_msg(msg), depth.astype(np.float32))


@pytest.mark.parametrize('encoding, convert', [('yuv422', pc.color_from_msg),
                                               ('32FC1', pc.color_from_msg),
                                               ('rgb8', pc.depth_from_msg),
                                               ('64FC1', pc.depth_from_msg)])
def test_unsupported_encodings_are_rejected(encoding, convert):
    msg = Image(height=2, width=2, encoding=encoding, step=8)
    msg.data = array.array('B', bytes(16))
    with pytest.raises(InputRejected) as info:
        convert(msg)
    assert info.value.reason == 'encoding'


def test_truncated_data_is_rejected():
    msg = pc.array_to_image(RGB, 'rgb8')
    msg.data = msg.data[:100]
    with pytest.raises(InputRejected) as info:
        pc.color_from_msg(msg)
    assert info.value.reason == 'bad_image'


@pytest.mark.parametrize('encoding', ['S16LE', 'F32LE'])
def test_audio_round_trip_and_channel_mix(encoding):
    x = (0.5 * np.sin(np.arange(1600) / 10.0)).astype(np.float32)
    stamp, y, sr = pc.audio_from_msg(pc.audio_to_msg(x, 16000, 3.5, encoding))
    assert stamp == pytest.approx(3.5) and sr == 16000 and np.allclose(x, y, atol=1e-4)
    stereo = pc.audio_to_msg(np.repeat(x, 2), 16000, 1.0, encoding)
    stereo.channels = 2
    assert np.allclose(pc.audio_from_msg(stereo)[1], x, atol=1e-4)


@pytest.mark.parametrize('field, value', [('encoding', 'MP3'), ('sample_rate', 0),
                                          ('channels', 0), ('data', array.array('B', b'abc'))])
def test_bad_audio_is_rejected(field, value):
    msg = pc.audio_to_msg(np.zeros(100), 16000, 1.0)
    setattr(msg, field, value)
    with pytest.raises(InputRejected) as info:
        pc.audio_from_msg(msg)
    assert info.value.reason == 'audio_format'


def test_odometry_with_bad_quaternion_is_rejected():
    stamp, pose = pc.pose_from_odometry(pc.odometry_msg(5.0, (1, 2, 0), (0, 0, 0, 1)))
    assert stamp == 5.0 and np.allclose(pose.position, (1, 2, 0))
    for q in [(0, 0, 0, 0.5), (0, 0, math.nan, 1)]:
        with pytest.raises(InputRejected):
            pc.pose_from_odometry(pc.odometry_msg(5.0, (1, 2, 0), q))


def test_detections_with_masks_round_trip():
    mask = np.zeros((48, 64), bool)
    mask[10:20, 5:15] = True
    msg = pc.detections_to_msg([Detection('cup', 0.9, (5, 10, 15, 20), mask),
                                Detection('book', 0.5, (1, 2, 3, 4))], 7.0)
    stamp, dets = pc.detections_from_msg(msg)
    assert stamp == 7.0 and [d.label for d in dets] == ['cup', 'book']
    assert np.array_equal(dets[0].mask, mask) and dets[1].mask is None


def test_camera_info_carries_k_identity_r_and_p_from_k():
    k = np.array([[500.0, 0.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]])
    msg = pc.camera_info_msg(k, 640, 480, 2.0, 'camera_optical')
    intrinsics = pc.intrinsics_from_msg(msg)
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (500, 510, 320, 240)
    assert list(msg.r) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert list(msg.p) == [500.0, 0.0, 320.0, 0.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert pc.intrinsics_to_msg(intrinsics, 2.0, 'camera_optical') == msg


def test_odometry_carries_covariance_and_twist():
    covariance = np.arange(36, dtype=float)
    msg = pc.odometry_msg(1.0, (1, 2, 0), (0, 0, 0, 1), covariance=covariance,
                          linear=(0.5, 0.1, 0.0), angular=(0.0, 0.0, 0.2))
    assert list(msg.pose.covariance) == list(covariance)
    assert msg.twist.twist.linear.x == 0.5 and msg.twist.twist.angular.z == 0.2
    plain = pc.odometry_msg(1.0, (1, 2, 0), (0, 0, 0, 1))
    assert not any(plain.pose.covariance) and plain.twist.twist.linear.x == 0.0


def test_audio_chunk_keeps_int16_samples():
    pcm = np.array([0, 1000, -32768, 32767], dtype=np.int16)
    _, samples, rate = pc.audio_from_msg(pc.audio_chunk_msg(pcm, 16000, 1.0))
    assert rate == 16000
    assert np.array_equal(samples, pcm.astype(np.float32) / 32768.0)


def test_a_clock_stamp_is_kept_exactly():
    from builtin_interfaces.msg import Time
    stamp = Time(sec=1_764_000_000, nanosec=123_456_789)
    assert pc.array_to_image(RGB, 'rgb8', stamp, 'cam').header.stamp == stamp
    assert pc.detections_to_msg([], stamp).header.stamp == stamp


def test_compressed_colour_and_depth_messages_decode():
    """CompressedImage as image_transport's compressed and compressedDepth transports send it:
    encoded by OpenCV (colour) and by the upstream layout (depth), carried in the message."""
    from engram_ros.perception import compressed

    ok, png = cv2.imencode('.png', np.ascontiguousarray(RGB[..., ::-1]))
    msg = pc.compressed_msg('rgb8; png compressed bgr8', png.tobytes(), 3.5, 'cam')
    assert pc.stamp_of(msg) == 3.5 and msg.header.frame_id == 'cam'
    assert np.array_equal(pc.color_from_compressed(msg), RGB)
    mm = RNG.integers(200, 9000, (48, 64)).astype(np.uint16)
    msg = pc.compressed_msg(*compressed.encode_depth(mm, '16UC1'), 3.5, 'cam')
    assert msg.format == '16UC1; compressedDepth png'
    assert np.allclose(pc.depth_from_compressed(msg), mm / 1000.0, atol=1e-6)
    msg.format = '16UC1; compressedDepth rvl'
    with pytest.raises(InputRejected) as info:
        pc.depth_from_compressed(msg)
    assert info.value.reason == 'encoding'


def test_vision_msgs_detections_take_the_best_hypothesis_and_the_box():
    from vision_msgs.msg import Detection2D
    from vision_msgs.msg import Detection2DArray
    from vision_msgs.msg import ObjectHypothesisWithPose

    msg = pc.vision_detections_to_msg([Detection('41', 0.8, (10.0, 20.0, 50.0, 60.0))], 7.25,
                                      'cam')
    assert pc.detections_from_vision_msg(msg) == (7.25, [Detection('41', 0.8,
                                                                   (10.0, 20.0, 50.0, 60.0))])
    d = Detection2D()
    for class_id, score in (('56', 0.3), ('41', 0.9), ('60', 0.5)):
        h = ObjectHypothesisWithPose()
        h.hypothesis.class_id, h.hypothesis.score = class_id, score
        d.results.append(h)
    d.bbox.center.position.x, d.bbox.center.position.y = 100.0, 50.0
    d.bbox.center.theta = math.pi / 2          # a 40 x 20 box on its side
    d.bbox.size_x, d.bbox.size_y = 40.0, 20.0
    empty = Detection2D()
    empty.header.stamp.sec = 9                 # the array's stamp is zero: the detection's
    array_msg = Detection2DArray(detections=[empty, d])
    stamp, (none, best) = pc.detections_from_vision_msg(array_msg)
    assert stamp == 9.0 and (none.label, none.score) == ('', 0.0)
    assert (best.label, best.score) == ('41', 0.9)
    assert best.box == pytest.approx((90.0, 30.0, 110.0, 70.0))
