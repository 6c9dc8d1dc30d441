"""The jobs perception's input half makes for its encoding half (:mod:`.pipeline`): a place
keyframe, a frame's detections that get a look, a sound event; and the posed frame they carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from engram_ros.perception.audio import AudioSegment
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.geometry import Pose
from engram_ros.perception.objects import Detection


@dataclass
class Frame:
    """A synchronised RGB-D frame with what is needed to place it in the map."""

    stamp: float
    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    pose: Pose                       # base_link in the map frame at ``stamp``
    t_map_optical: np.ndarray        # 4x4
    pose_source: str = ''            # frame_poses.TF or frame_poses.PARAMETERS


@dataclass
class PlaceJob:
    frame: Frame
    reason: str


@dataclass
class ObjectJob:
    frame: Frame
    detections: list[Detection]


@dataclass
class AudioJob:
    segment: AudioSegment
    pose: Pose


Job = Union[PlaceJob, ObjectJob, AudioJob]
