"""The place graph and re-anchoring: places as nodes, traversals as edges, and pose corrections.

* **Edges**: when the robot's consecutive place observations land in two different place
  engrams (no more than ``edge_max_gap`` seconds apart), the edge between them is counted: the
  map a planner can search. Edges are stored durably (:class:`~engram_ros.core.storage.PlaceEdge`)
  and follow merges (an edge to a place merged away moves to the place that absorbed it).
* **Anchors**: an object (sound, event) is anchored to the nearest current place within
  ``anchor_radius`` when it is written.
* **Re-anchoring**: a SLAM/localization correction gives new poses for keyframes (or place
  engrams). Each corrected place moves to its new pose, and everything anchored to it moves by
  the same rigid transform. A correction naming an unknown keyframe or place changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from enum import IntEnum

import numpy as np

from engram_ros.core.geometry import matrix_to_quat
from engram_ros.core.geometry import quat_to_matrix
from engram_ros.core.model.edges import PlaceEdge
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.errors import StatusError


class CorrectionStatus(IntEnum):
    """Outcome of a pose correction (mirrored in the node's log and diagnostics)."""

    OK = 0
    UNKNOWN_KEYFRAME = 1
    INVALID_POSE = 2
    EMPTY = 3


class CorrectionError(StatusError, ValueError):
    """A correction that was not applied; nothing changed."""

    status: CorrectionStatus


@dataclass
class PoseCorrection:
    """The corrected pose of one keyframe (``keyframe_id``) or place engram (``place_id``).

    Position [m] and orientation (x, y, z, w) are in the memory frame.
    """

    position: np.ndarray
    orientation: np.ndarray
    keyframe_id: str = ''
    place_id: int = 0

    def validate(self) -> None:
        """:raises CorrectionError: for NaN/inf, a non-unit quaternion or no target."""
        p = np.asarray(self.position, dtype=np.float64).reshape(-1)
        q = np.asarray(self.orientation, dtype=np.float64).reshape(-1)
        if p.shape[0] != 3 or q.shape[0] != 4 or not (np.all(np.isfinite(p))
                                                       and np.all(np.isfinite(q))):
            raise CorrectionError(CorrectionStatus.INVALID_POSE,
                                  'a corrected pose needs 3 finite coordinates and a finite '
                                  'quaternion')
        if abs(float(np.linalg.norm(q)) - 1.0) > 1e-3:
            raise CorrectionError(CorrectionStatus.INVALID_POSE,
                                  f'quaternion norm {np.linalg.norm(q):.4f}; a unit quaternion '
                                  'is required')
        if not self.keyframe_id and self.place_id <= 0:
            raise CorrectionError(CorrectionStatus.UNKNOWN_KEYFRAME,
                                  'a correction names neither a keyframe id nor a place id')


@dataclass
class CorrectionReport:
    """What a correction moved."""

    places: list[int] = field(default_factory=list)
    anchored: list[int] = field(default_factory=list)


@dataclass
class PlaceGraph:
    """The map-like memory for planners: current places, traversal edges, anchored things."""

    places: list[Engram] = field(default_factory=list)
    edges: list[PlaceEdge] = field(default_factory=list)
    #: engram id -> place id, for every current engram anchored to one of ``places``.
    anchors: dict[int, int] = field(default_factory=dict)


def rigid_delta(old_position: np.ndarray, old_orientation: np.ndarray,
                new_position: np.ndarray, new_orientation: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with ``new = R @ old + t``: the transform that carries the old pose to the new."""
    r_old = quat_to_matrix(old_orientation)
    r_new = quat_to_matrix(new_orientation)
    rot = r_new @ r_old.T
    return rot, np.asarray(new_position, dtype=np.float64) - rot @ np.asarray(old_position)


def move_engram(engram: Engram, rot: np.ndarray, trans: np.ndarray) -> Engram:
    """A copy of ``engram`` carried by the rigid transform (position and orientation)."""
    out = engram.copy()
    out.position = rot @ engram.position + trans
    out.orientation = matrix_to_quat(rot @ quat_to_matrix(engram.orientation))
    return out
