"""Compressed images as image_transport sends them: ``compressed`` colour, ``compressedDepth``
depth. Real robots' bags almost always carry these, not raw images.

ROS-free: bytes and the ``sensor_msgs/CompressedImage`` ``format`` string in, arrays out (and
back, for the simulator and the tests). The layouts are those of the ``image_transport_plugins``
packages (ROS 1 and 2 share them):

* ``compressed`` colour: a JPEG or PNG file; ``format`` is ``"jpeg"``/``"png"`` (old
  publishers) or ``"<encoding>; <jpeg|png> compressed <bgr8|mono8|...>"``. OpenCV decodes it
  to BGR; it is returned as RGB, like every colour image perception reads.
* ``compressedDepth``: a 12-byte ``ConfigHeader`` (an int32 format enum, ``INV_DEPTH`` = 0,
  and two float32 quantisation parameters ``depthQuantA``, ``depthQuantB``, in the machine's
  byte order: little-endian on every robot computer we know of), then a 16-bit PNG;
  ``format`` is ``"<16UC1|32FC1>; compressedDepth png"`` (``"...; compressedDepth"`` or no
  ``;`` at all from older publishers). A ``16UC1`` PNG holds millimetres; a ``32FC1`` PNG holds
  quantised inverse depth ``q = A / d + B`` (``q = 0``: no measurement, at or beyond
  ``depth_max``), decoded as ``d = A / (q - B)``. The ``rvl`` variant is refused (its codec
  is not in OpenCV).

Anything else raises :class:`~engram_ros.perception.errors.InputRejected` (``encoding`` for a
format we do not read, ``bad_image`` for bytes that do not decode), which the node skips and
counts.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from engram_ros.perception.errors import InputRejected

#: Compression tokens of the ``compressed`` transport that are read.
COLOR_FORMATS = ('jpeg', 'jpg', 'png')
#: Raw encodings a ``compressedDepth`` message may carry, and what their PNG holds.
DEPTH_ENCODINGS = {'16UC1': 'mm', 'mono16': 'mm', '32FC1': 'inverse'}
#: ``struct`` layout of compressed_depth_image_transport's ``ConfigHeader``.
CONFIG_HEADER = struct.Struct('<iff')
INV_DEPTH = 0
#: compressed_depth_image_transport's default parameters (its publisher's).
DEPTH_MAX = 10.0
DEPTH_QUANTIZATION = 100.0


def _compression(fmt: str) -> str:
    """``"jpeg"`` from ``"rgb8; jpeg compressed bgr8"`` or ``"jpeg"``; lower case."""
    rest = fmt.split(';', 1)[1] if ';' in fmt else fmt
    words = rest.split()
    return words[0].lower() if words else ''


def _imdecode(data: bytes, offset: int, flags: int) -> np.ndarray | None:
    """OpenCV's decoder; ``None`` for no or undecodable bytes (it raises on an empty buffer)."""
    if len(data) <= offset:
        return None
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8, offset=offset), flags)
    except cv2.error:
        return None


def decode_color(fmt: str, data: bytes) -> np.ndarray:
    """A ``compressed`` colour image as contiguous HxWx3 RGB uint8.

    :raises InputRejected: ``encoding`` for a format other than JPEG or PNG (compressedDepth,
        video codecs...), ``bad_image`` for bytes that do not decode.
    """
    if 'compresseddepth' in fmt.lower():
        raise InputRejected('encoding', f'compressed image format {fmt!r} is compressedDepth '
                                        'depth, not colour')
    kind = _compression(fmt)
    if kind not in COLOR_FORMATS:
        raise InputRejected('encoding', f'compressed image format {fmt!r}; accepted: '
                                        'jpeg or png ("rgb8; jpeg compressed bgr8")')
    bgr = _imdecode(bytes(data), 0, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise InputRejected('bad_image', f'{len(data)} bytes of {fmt!r} do not decode')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_color(rgb: np.ndarray, kind: str = 'jpeg', quality: int = 95,
                 encoding: str = 'rgb8') -> tuple[str, bytes]:
    """``(format, data)`` of HxWx3 RGB uint8 as compressed_image_transport publishes it."""
    if kind not in ('jpeg', 'png'):
        raise ValueError(f'unsupported compression {kind!r}: jpeg or png')
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if kind == 'jpeg' else []
    ok, buf = cv2.imencode(f'.{kind}', cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8),
                                                    cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f'OpenCV could not encode a {rgb.shape} image as {kind}')
    return f'{encoding}; {kind} compressed bgr8', buf.tobytes()


def _depth_format(fmt: str) -> tuple[str, str]:
    """``(raw encoding, compression)`` of a compressedDepth ``format`` string."""
    if ';' not in fmt:
        return fmt.strip(), 'png'          # the oldest publishers: the encoding alone
    encoding, rest = (part.strip() for part in fmt.split(';', 1))
    words = rest.split()
    if not words or words[0] != 'compressedDepth':
        return encoding, rest
    return encoding, words[1] if len(words) > 1 else 'png'


def decode_depth(fmt: str, data: bytes) -> np.ndarray:
    """A ``compressedDepth`` image as HxW float32 metres (0 or NaN: no measurement).

    :raises InputRejected: ``encoding`` for a raw encoding other than 16UC1/mono16/32FC1 or a
        compression other than png, ``bad_image`` for a short header or an undecodable PNG.
    """
    encoding, compression = _depth_format(fmt)
    if encoding not in DEPTH_ENCODINGS or compression != 'png':
        raise InputRejected('encoding', f'compressedDepth format {fmt!r}; accepted: '
                                        f'{"/".join(DEPTH_ENCODINGS)} with png '
                                        '("16UC1; compressedDepth png")')
    raw = bytes(data)
    if len(raw) <= CONFIG_HEADER.size:
        raise InputRejected('bad_image', f'compressedDepth data of {len(raw)} bytes has no '
                                         f'image after its {CONFIG_HEADER.size}-byte header')
    _, quant_a, quant_b = CONFIG_HEADER.unpack_from(raw)
    png = _imdecode(raw, CONFIG_HEADER.size, cv2.IMREAD_UNCHANGED)
    if png is None or png.ndim != 2 or png.dtype != np.uint16 or png.size == 0:
        raise InputRejected('bad_image', f'compressedDepth {fmt!r}: the data after the header '
                                         'is not a one-channel 16-bit PNG')
    if DEPTH_ENCODINGS[encoding] == 'mm':
        return png.astype(np.float32) * np.float32(0.001)
    if not (np.isfinite(quant_a) and np.isfinite(quant_b)) or quant_a == 0.0:
        raise InputRejected('bad_image', f'compressedDepth 32FC1 quantisation A={quant_a}, '
                                         f'B={quant_b} cannot be inverted')
    q = png.astype(np.float32)
    with np.errstate(divide='ignore', invalid='ignore'):
        depth = np.float32(quant_a) / (q - np.float32(quant_b))
    depth[png == 0] = np.nan
    return depth


def encode_depth(depth: np.ndarray, encoding: str = '16UC1', depth_max: float = DEPTH_MAX,
                 depth_quantization: float = DEPTH_QUANTIZATION) -> tuple[str, bytes]:
    """``(format, data)`` of a depth image as compressed_depth_image_transport publishes it:
    ``16UC1`` uint16 millimetres (above ``depth_max`` -> 0) or ``32FC1`` float32 metres
    (inverse-depth quantised; NaN, <= 0 and >= ``depth_max`` -> 0, no measurement)."""
    if encoding == '16UC1':
        mm = np.array(depth, np.uint16)
        mm[mm > np.uint16(depth_max * 1000.0)] = 0
        header, image = CONFIG_HEADER.pack(INV_DEPTH, 0.0, 0.0), mm
    elif encoding == '32FC1':
        d = np.asarray(depth, np.float32)
        quant_a = np.float32(depth_quantization * (depth_quantization + 1.0))
        quant_b = np.float32(1.0 - quant_a / np.float32(depth_max))
        valid = np.isfinite(d) & (d > 0) & (d < np.float32(depth_max))
        q = np.zeros(d.shape, np.float32)
        q[valid] = quant_a / d[valid] + quant_b
        image = np.clip(q, 0, 65535).astype(np.uint16)   # truncation, as the C++ cast
        header = CONFIG_HEADER.pack(INV_DEPTH, float(quant_a), float(quant_b))
    else:
        raise ValueError(f'compressedDepth takes 16UC1 or 32FC1, not {encoding!r}')
    ok, buf = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f'OpenCV could not encode a {image.shape} depth image as PNG')
    return f'{encoding}; compressedDepth png', header + buf.tobytes()
