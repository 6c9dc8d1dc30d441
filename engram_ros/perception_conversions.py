"""Shim: the sensor message conversions moved to :mod:`engram_ros.ros.conversions.sensors`;
this only re-exports them."""

from __future__ import annotations

from engram_ros.ros.conversions.common import stamp_of
from engram_ros.ros.conversions.sensors import array_to_image
from engram_ros.ros.conversions.sensors import audio_chunk_msg
from engram_ros.ros.conversions.sensors import AUDIO_ENCODINGS
from engram_ros.ros.conversions.sensors import audio_from_msg
from engram_ros.ros.conversions.sensors import audio_to_msg
from engram_ros.ros.conversions.sensors import camera_info_msg
from engram_ros.ros.conversions.sensors import COLOR_ENCODINGS
from engram_ros.ros.conversions.sensors import color_from_msg
from engram_ros.ros.conversions.sensors import DEPTH_ENCODINGS
from engram_ros.ros.conversions.sensors import depth_from_msg
from engram_ros.ros.conversions.sensors import detections_from_msg
from engram_ros.ros.conversions.sensors import detections_to_msg
from engram_ros.ros.conversions.sensors import IMAGE_ENCODINGS
from engram_ros.ros.conversions.sensors import image_to_array
from engram_ros.ros.conversions.sensors import intrinsics_from_msg
from engram_ros.ros.conversions.sensors import intrinsics_to_msg
from engram_ros.ros.conversions.sensors import mask_from_msg
from engram_ros.ros.conversions.sensors import odometry_msg
from engram_ros.ros.conversions.sensors import pose_from_odometry
from engram_ros.ros.conversions.sensors import pose_from_pose_stamped

__all__ = [
    'stamp_of',
    'array_to_image',
    'audio_chunk_msg',
    'AUDIO_ENCODINGS',
    'audio_from_msg',
    'audio_to_msg',
    'camera_info_msg',
    'COLOR_ENCODINGS',
    'color_from_msg',
    'DEPTH_ENCODINGS',
    'depth_from_msg',
    'detections_from_msg',
    'detections_to_msg',
    'IMAGE_ENCODINGS',
    'image_to_array',
    'intrinsics_from_msg',
    'intrinsics_to_msg',
    'mask_from_msg',
    'odometry_msg',
    'pose_from_odometry',
    'pose_from_pose_stamped',
]
