"""Shim: the memory's message conversions moved to :mod:`engram_ros.ros.conversions.memory`
(stamps and poses to :mod:`engram_ros.ros.conversions.common`); this only re-exports them."""

from __future__ import annotations

from engram_ros.ros.conversions.common import arrays_to_pose
from engram_ros.ros.conversions.common import optional_time
from engram_ros.ros.conversions.common import pose_arrays
from engram_ros.ros.conversions.common import pose_msg
from engram_ros.ros.conversions.common import pose_to_arrays
from engram_ros.ros.conversions.common import seconds_to_time
from engram_ros.ros.conversions.common import time_to_seconds
from engram_ros.ros.conversions.memory import consolidation_scope_from_request
from engram_ros.ros.conversions.memory import edit_from_request
from engram_ros.ros.conversions.memory import engram_filter_from_request
from engram_ros.ros.conversions.memory import engram_from_msg
from engram_ros.ros.conversions.memory import engram_to_msg
from engram_ros.ros.conversions.memory import feedback_error_response
from engram_ros.ros.conversions.memory import fill_consolidate_response
from engram_ros.ros.conversions.memory import fill_feedback_response
from engram_ros.ros.conversions.memory import fill_forget_response
from engram_ros.ros.conversions.memory import fill_get_response
from engram_ros.ros.conversions.memory import fill_list_response
from engram_ros.ros.conversions.memory import fill_places_response
from engram_ros.ros.conversions.memory import fill_recall_response
from engram_ros.ros.conversions.memory import fill_where
from engram_ros.ros.conversions.memory import observation_from_msg
from engram_ros.ros.conversions.memory import observation_to_msg
from engram_ros.ros.conversions.memory import pose_corrections_from_msg
from engram_ros.ros.conversions.memory import recall_query_from_request
from engram_ros.ros.conversions.memory import requester_of
from engram_ros.ros.conversions.memory import RequestError
from engram_ros.ros.conversions.memory import view_from_msg

__all__ = [
    'arrays_to_pose',
    'optional_time',
    'pose_arrays',
    'pose_msg',
    'pose_to_arrays',
    'seconds_to_time',
    'time_to_seconds',
    'consolidation_scope_from_request',
    'edit_from_request',
    'engram_filter_from_request',
    'engram_from_msg',
    'engram_to_msg',
    'feedback_error_response',
    'fill_consolidate_response',
    'fill_feedback_response',
    'fill_forget_response',
    'fill_get_response',
    'fill_list_response',
    'fill_places_response',
    'fill_recall_response',
    'fill_where',
    'observation_from_msg',
    'observation_to_msg',
    'pose_corrections_from_msg',
    'recall_query_from_request',
    'requester_of',
    'RequestError',
    'view_from_msg',
]
