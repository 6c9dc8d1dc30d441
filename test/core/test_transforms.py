"""The ROS-free transform tree: composition, inverse, interpolation and its refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engram_ros.core.geometry import matrix_to_quat
from engram_ros.core.geometry import pose_matrix
from engram_ros.core.geometry import rpy_to_matrix
from engram_ros.core.transforms import ExtrapolationError
from engram_ros.core.transforms import invert
from engram_ros.core.transforms import NotConnectedError
from engram_ros.core.transforms import StaleTransformError
from engram_ros.core.transforms import TransformBuffer
from engram_ros.core.transforms import UnknownFrameError

finite = st.floats(-10.0, 10.0, allow_nan=False)
angle = st.floats(-math.pi, math.pi, allow_nan=False)
poses = st.tuples(st.tuples(finite, finite, finite), st.tuples(angle, angle, angle))


def matrix(pose) -> np.ndarray:
    xyz, rpy = pose
    return pose_matrix(xyz, matrix_to_quat(rpy_to_matrix(*rpy)))


def add(buffer: TransformBuffer, parent: str, child: str, stamp: float, t: np.ndarray,
        static: bool = False) -> None:
    buffer.set_transform(parent, child, stamp, t[:3, 3], matrix_to_quat(t[:3, :3]), static)


@given(poses, poses, poses)
def test_lookup_composes_the_chain_and_its_inverse(a, b, c) -> None:
    """map <- odom <- base_link <- camera: every pair of frames, either way round."""
    ta, tb, tc = matrix(a), matrix(b), matrix(c)
    buffer = TransformBuffer()
    add(buffer, 'map', 'odom', 1.0, ta)
    add(buffer, 'odom', 'base_link', 1.0, tb)
    add(buffer, 'base_link', 'camera', 0.0, tc, static=True)
    expected = ta @ tb @ tc
    np.testing.assert_allclose(buffer.lookup('map', 'camera', 1.0), expected, atol=1e-9)
    np.testing.assert_allclose(buffer.lookup('camera', 'map', 1.0), invert(expected),
                               atol=1e-9)
    np.testing.assert_allclose(buffer.lookup('odom', 'camera', 1.0), tb @ tc, atol=1e-9)
    np.testing.assert_allclose(buffer.lookup('camera', 'camera', 1.0), np.eye(4), atol=1e-12)


@given(poses, poses, poses)
def test_siblings_compose_through_their_common_parent(a, b, stamp_pose) -> None:
    ta, tb = matrix(a), matrix(b)
    buffer = TransformBuffer()
    add(buffer, 'base_link', 'left', 0.0, ta, static=True)
    add(buffer, 'base_link', 'right', 0.0, tb, static=True)
    np.testing.assert_allclose(buffer.lookup('left', 'right', 5.0), invert(ta) @ tb, atol=1e-9)


@given(poses, poses, st.floats(0.0, 1.0))
def test_interpolation_between_the_two_nearest_samples(a, b, f) -> None:
    ta, tb = matrix(a), matrix(b)
    buffer = TransformBuffer(max_gap=1.0)
    add(buffer, 'odom', 'base_link', 10.0, ta)
    add(buffer, 'odom', 'base_link', 11.0, tb)
    t = buffer.lookup('odom', 'base_link', 10.0 + f)
    np.testing.assert_allclose(t[:3, 3], ta[:3, 3] + f * (tb[:3, 3] - ta[:3, 3]), atol=1e-9)
    # the rotation is on the shortest arc from a to b, at fraction f of its angle
    full = _angle(ta[:3, :3].T @ tb[:3, :3])
    np.testing.assert_allclose(_angle(ta[:3, :3].T @ t[:3, :3]), f * full, atol=1e-6)
    np.testing.assert_allclose(_angle(t[:3, :3].T @ tb[:3, :3]), (1 - f) * full, atol=1e-6)
    np.testing.assert_allclose(t[:3, :3] @ t[:3, :3].T, np.eye(3), atol=1e-9)


def _angle(r: np.ndarray) -> float:
    return math.acos(max(-1.0, min(1.0, (np.trace(r) - 1.0) / 2.0)))


def test_a_sample_out_of_order_is_inserted_and_a_repeat_replaces() -> None:
    buffer = TransformBuffer()
    for stamp, x in ((2.0, 2.0), (0.0, 0.0), (1.0, 5.0), (1.0, 1.0)):
        buffer.set_transform('odom', 'base_link', stamp, (x, 0, 0), (0, 0, 0, 1))
    assert buffer.lookup('odom', 'base_link', 1.5)[0, 3] == pytest.approx(1.5)


def test_extrapolation_is_refused_beyond_the_tolerance() -> None:
    buffer = TransformBuffer(tolerance=0.1)
    buffer.set_transform('odom', 'base_link', 1.0, (1, 0, 0), (0, 0, 0, 1))
    buffer.set_transform('odom', 'base_link', 2.0, (2, 0, 0), (0, 0, 0, 1))
    assert buffer.lookup('odom', 'base_link', 2.05)[0, 3] == 2.0   # the nearest, not a guess
    with pytest.raises(ExtrapolationError) as late:
        buffer.lookup('odom', 'base_link', 2.2)
    assert late.value.future and late.value.reason == 'tf_extrapolation'
    with pytest.raises(ExtrapolationError) as early:
        buffer.lookup('odom', 'base_link', 0.5)
    assert not early.value.future
    assert buffer.newest_stamp('odom', 'base_link') == 2.0


def test_a_gap_in_the_samples_is_stale() -> None:
    buffer = TransformBuffer(tolerance=0.1, max_gap=1.0)
    buffer.set_transform('odom', 'base_link', 0.0, (0, 0, 0), (0, 0, 0, 1))
    buffer.set_transform('odom', 'base_link', 5.0, (5, 0, 0), (0, 0, 0, 1))
    with pytest.raises(StaleTransformError) as stale:
        buffer.lookup('odom', 'base_link', 2.5)
    assert stale.value.reason == 'tf_stale'
    assert buffer.lookup('odom', 'base_link', 4.95)[0, 3] == 5.0


def test_unknown_and_unconnected_frames() -> None:
    buffer = TransformBuffer()
    buffer.set_transform('map', 'odom', 0.0, (0, 0, 0), (0, 0, 0, 1))
    buffer.set_transform('base_link', 'camera', 0.0, (0, 0, 0), (0, 0, 0, 1), static=True)
    with pytest.raises(UnknownFrameError) as unknown:
        buffer.lookup('map', 'lidar', 0.0)
    assert unknown.value.reason == 'tf_unknown_frame' and 'lidar' in str(unknown.value)
    with pytest.raises(NotConnectedError):
        buffer.lookup('map', 'camera', 0.0)
    assert not buffer.connected('map', 'camera')
    assert buffer.newest_stamp('map', 'camera') is None


def test_old_samples_are_forgotten_and_clear_keeps_static() -> None:
    buffer = TransformBuffer(cache_time=10.0)
    buffer.set_transform('base_link', 'camera', 0.0, (0, 0, 1), (0, 0, 0, 1), static=True)
    for stamp in range(30):
        buffer.set_transform('odom', 'base_link', float(stamp), (stamp, 0, 0), (0, 0, 0, 1))
    with pytest.raises(ExtrapolationError):
        buffer.lookup('odom', 'base_link', 5.0)
    buffer.clear()
    assert 'odom' not in buffer
    assert buffer.lookup('base_link', 'camera', 123.0)[2, 3] == 1.0


@pytest.mark.parametrize('parent, child, translation, rotation', [
    ('map', 'map', (0, 0, 0), (0, 0, 0, 1)),
    ('', 'odom', (0, 0, 0), (0, 0, 0, 1)),
    ('map', 'odom', (math.nan, 0, 0), (0, 0, 0, 1)),
    ('map', 'odom', (0, 0, 0), (0, 0, 0, 2)),
])
def test_bad_transforms_are_refused(parent, child, translation, rotation) -> None:
    with pytest.raises(ValueError):
        TransformBuffer().set_transform(parent, child, 0.0, translation, rotation)


def test_a_loop_or_a_second_parent_is_refused() -> None:
    buffer = TransformBuffer()
    buffer.set_transform('map', 'odom', 0.0, (0, 0, 0), (0, 0, 0, 1))
    buffer.set_transform('odom', 'base_link', 0.0, (0, 0, 0), (0, 0, 0, 1))
    with pytest.raises(ValueError, match='loop'):
        buffer.set_transform('base_link', 'map', 0.0, (0, 0, 0), (0, 0, 0, 1))
    with pytest.raises(ValueError, match='parent'):
        buffer.set_transform('world', 'base_link', 0.0, (0, 0, 0), (0, 0, 0, 1))
