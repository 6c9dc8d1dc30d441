"""image_transport's compressed colour and compressedDepth depth, decoded without ROS.

The bytes are real: JPEG/PNG made by OpenCV here, and compressedDepth samples committed in
test/fixtures/compressed_depth/ (built by its make_samples.py step by step from the upstream
encoder, not by engram_ros's).
"""

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from engram_ros.perception import compressed
from engram_ros.perception.errors import InputRejected

SAMPLES = Path(__file__).resolve().parents[1] / 'fixtures' / 'compressed_depth'
RNG = np.random.default_rng(3)
# smooth enough for JPEG to keep it close: a gradient with a little noise
_X, _Y = np.meshgrid(np.linspace(0, 255, 64), np.linspace(40, 200, 48))
RGB = np.clip(np.dstack([_X, _Y, np.full((48, 64), 120.0)]) + RNG.normal(0, 2, (48, 64, 3)),
              0, 255).astype(np.uint8)


def scene() -> np.ndarray:
    """The samples' depth [m]: see make_samples.py."""
    depth = (0.5 + 0.25 * np.arange(48, dtype=np.float32)).reshape(6, 8)
    depth[0, 0] = np.nan
    return depth


def cv2_bytes(rgb: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize('fmt', ['png', 'rgb8; png compressed bgr8', 'bgr8; png compressed bgr8'])
def test_png_colour_comes_back_exactly_as_rgb(fmt):
    out = compressed.decode_color(fmt, cv2_bytes(RGB, '.png'))
    assert out.dtype == np.uint8 and out.flags.c_contiguous and np.array_equal(out, RGB)


@pytest.mark.parametrize('fmt', ['jpeg', 'rgb8; jpeg compressed bgr8', 'JPEG'])
def test_jpeg_colour_comes_back_as_rgb_within_its_loss(fmt):
    out = compressed.decode_color(fmt, cv2_bytes(RGB, '.jpg'))
    assert out.shape == RGB.shape
    assert np.abs(out.astype(int) - RGB).mean() < 4        # RGB, not BGR: that would be ~60


def test_our_colour_encoder_writes_what_compressed_image_transport_writes():
    fmt, data = compressed.encode_color(RGB, 'png')
    assert fmt == 'rgb8; png compressed bgr8'
    assert np.array_equal(cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8),
                                                    cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), RGB)


def test_the_committed_32fc1_sample_decodes_to_its_depths():
    depth = compressed.decode_depth('32FC1; compressedDepth png',
                                    (SAMPLES / '32FC1.bin').read_bytes())
    expected = scene()
    assert depth.dtype == np.float32 and depth.shape == expected.shape
    near = expected < 10.0
    # one step of inverse depth is d^2 / A = d^2 / 10100 m; truncation makes it one-sided
    assert np.all(np.abs(depth[near] - expected[near]) <= expected[near] ** 2 / 10100 + 1e-5)
    assert np.isnan(depth[0, 0]) and np.all(np.isnan(depth[~near & ~np.isnan(expected)]))


@pytest.mark.parametrize('fmt', ['16UC1; compressedDepth png', '16UC1; compressedDepth',
                                 '16UC1'])
def test_the_committed_16uc1_sample_decodes_to_metres(fmt):
    depth = compressed.decode_depth(fmt, (SAMPLES / '16UC1.bin').read_bytes())
    expected = np.nan_to_num(scene())
    expected[expected > 10.0] = 0.0
    assert depth.dtype == np.float32 and np.allclose(depth, expected, atol=1e-6)


@pytest.mark.parametrize('encoding', ['16UC1', '32FC1'])
def test_our_depth_encoder_matches_the_upstream_bytes(encoding):
    """What the simulator and the tests publish is byte for byte what the plugin would."""
    depth = scene() if encoding == '32FC1' else np.nan_to_num(scene() * 1000).round()
    fmt, data = compressed.encode_depth(depth, encoding)
    sample = (SAMPLES / f'{encoding}.bin').read_bytes()
    assert fmt == f'{encoding}; compressedDepth png'
    assert data[:12] == sample[:12]
    decode = lambda b: cv2.imdecode(np.frombuffer(b, np.uint8, offset=12),  # noqa: E731
                                    cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decode(data), decode(sample))


def test_32fc1_round_trip_over_the_working_range():
    depth = RNG.uniform(0.2, 9.9, (30, 40)).astype(np.float32)
    out = compressed.decode_depth(*compressed.encode_depth(depth, '32FC1'))
    assert np.all(np.abs(out - depth) <= depth ** 2 / 10100 + 1e-5)


@pytest.mark.parametrize('fmt, data, reason', [
    ('16UC1; compressedDepth png', b'', 'bad_image'),
    ('h264', b'\x00' * 20, 'encoding'),
    ('16UC1; compressedDepth png', b'\x00' * 40, 'bad_image'),
])
def test_bad_colour_is_refused_with_a_reason(fmt, data, reason):
    with pytest.raises(InputRejected) as info:
        compressed.decode_color(fmt if reason != 'bad_image' else 'jpeg', data)
    assert info.value.reason == reason


def test_compressed_depth_on_the_colour_input_is_refused():
    with pytest.raises(InputRejected, match='compressedDepth depth, not colour') as info:
        compressed.decode_color('16UC1; compressedDepth png', (SAMPLES / '16UC1.bin').read_bytes())
    assert info.value.reason == 'encoding'


@pytest.mark.parametrize('fmt, data, reason', [
    ('16UC1; compressedDepth rvl', struct.pack('<iff', 0, 0, 0) + b'\x01' * 20, 'encoding'),
    ('bgr8; compressedDepth png', (SAMPLES / '16UC1.bin').read_bytes(), 'encoding'),
    ('rgb8; jpeg compressed bgr8', (SAMPLES / '16UC1.bin').read_bytes(), 'encoding'),
    ('32FC1; compressedDepth png', struct.pack('<iff', 0, 1, 1), 'bad_image'),
    ('32FC1; compressedDepth png', struct.pack('<iff', 0, 1, 1) + b'not a png', 'bad_image'),
    ('32FC1; compressedDepth png',
     struct.pack('<iff', 0, 1, 1) + cv2_bytes(RGB, '.png'), 'bad_image'),   # 8-bit colour
    ('32FC1; compressedDepth png',
     struct.pack('<iff', 0, 0.0, 1.0) + (SAMPLES / '32FC1.bin').read_bytes()[12:], 'bad_image'),
])
def test_bad_depth_is_refused_with_a_reason(fmt, data, reason):
    with pytest.raises(InputRejected) as info:
        compressed.decode_depth(fmt, data)
    assert info.value.reason == reason
