"""Keyframe gating: a camera frame becomes a new place observation only when it adds something.

A frame passes when it is the first, or when, since the last keyframe, the robot moved at least
``min_translation`` metres, turned at least ``min_rotation`` radians, or the view changed by at
least ``min_view_change`` (1 - normalised cross-correlation of small grey thumbnails, so a
person walking in front of a parked robot counts). ``min_interval`` caps the keyframe rate.
The test is cheap (a 32x24 thumbnail) so it runs on every frame before any encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engram_ros.perception.geometry import Pose
from engram_ros.perception.geometry import rotation_angle

THUMBNAIL_SIZE = (32, 24)


def view_signature(rgb: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm grey thumbnail of an RGB image (a cheap view fingerprint)."""
    small = cv2.resize(rgb, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = small.mean(axis=2).reshape(-1) if small.ndim == 3 else small.reshape(-1)
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    return grey / norm if norm > 1e-6 else grey


def view_change(a: np.ndarray, b: np.ndarray) -> float:
    """1 - correlation of two view signatures, in [0, 2]; flat images count as unchanged."""
    return float(1.0 - np.dot(a, b)) if np.any(a) and np.any(b) else 0.0


@dataclass
class KeyframeGate:
    """Decides which frames are keyframes; keeps the last keyframe's pose and view."""

    min_translation: float = 0.5
    min_rotation: float = 0.35
    min_view_change: float = 0.3
    min_interval: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._pose: Pose | None = None
        self._view: np.ndarray | None = None
        self._stamp = -float('inf')

    def check(self, stamp: float, pose: Pose, rgb: np.ndarray) -> str:
        """Why this frame is a keyframe (``first``, ``moved``, ``turned``, ``view``), or ``''``.

        A keyframe becomes the reference for the next decisions.
        """
        if stamp - self._stamp < self.min_interval:
            return ''
        view = view_signature(rgb)
        if self._pose is None:
            reason = 'first'
        elif np.linalg.norm(pose.position - self._pose.position) >= self.min_translation:
            reason = 'moved'
        elif rotation_angle(pose.orientation, self._pose.orientation) >= self.min_rotation:
            reason = 'turned'
        elif view_change(view, self._view) >= self.min_view_change:
            reason = 'view'
        else:
            return ''
        self._pose, self._view, self._stamp = pose, view, stamp
        return reason
