"""Keyframe gating: motion, rotation or a changed view make a new place keyframe."""

import numpy as np

from engram_ros.perception.geometry import checked_pose
from engram_ros.perception.keyframe import KeyframeGate
from engram_ros.perception.scenes import render_view

from test_geometry import yaw_quat

IMG_A, _ = render_view(1, 0, size=(320, 240), jitter=0.0)
IMG_B, _ = render_view(2, 0, size=(320, 240), jitter=0.0)


def pose(x=0.0, yaw=0.0):
    return checked_pose((x, 0.0, 0.0), yaw_quat(yaw))


def test_first_frame_then_only_when_moved_turned_or_view_changed():
    gate = KeyframeGate(min_translation=0.5, min_rotation=0.35, min_view_change=0.3)
    assert gate.check(0.0, pose(), IMG_A) == 'first'
    assert gate.check(0.1, pose(0.1), IMG_A) == ''
    assert gate.check(0.2, pose(0.6), IMG_A) == 'moved'
    assert gate.check(0.3, pose(0.6, 0.2), IMG_A) == ''
    assert gate.check(0.4, pose(0.6, 0.5), IMG_A) == 'turned'
    noisy = np.clip(IMG_A.astype(int) + np.random.default_rng(0).integers(-5, 5, IMG_A.shape),
                    0, 255).astype(np.uint8)
    assert gate.check(0.5, pose(0.6, 0.5), noisy) == ''
    assert gate.check(0.6, pose(0.6, 0.5), IMG_B) == 'view'


def test_min_interval_caps_the_rate():
    gate = KeyframeGate(min_translation=0.1, min_interval=1.0)
    assert gate.check(0.0, pose(), IMG_A) == 'first'
    assert gate.check(0.5, pose(5.0), IMG_A) == ''
    assert gate.check(1.0, pose(5.0), IMG_A) == 'moved'
