"""Object engrams: a 2D detection + depth + intrinsics + camera pose -> where the thing is.

The pixels of the detection (its mask, or its box) with valid depth are back-projected into
the map frame; when a box is given without a mask, only the foreground (points near the median
depth of the box's centre) is kept. An Open3D statistical outlier removal cleans the cloud;
the centre of the inliers' axis-aligned bounding box is the centre of the visible surface,
which :func:`behind_visible_surface` moves back along the line of sight by the depth that is
likely hidden; the extent is the box's size (of the visible surface). A detection whose box
has too little valid depth is refused: a wrong 3D position is worse than none, and so is a
ghost (a box on a wall or floor, a centre behind the depth seen, outside the rooms:
:mod:`.ghosts`). The colour is named from the thing's own pixels (:mod:`engram_ros.core.colour`).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Callable

import numpy as np
import open3d as o3d

from engram_ros.core import labels
from engram_ros.core import sketch
from engram_ros.core.colour import surface_colour
from engram_ros.core.merge import SIZE_ORDER
from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import backproject
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.geometry import transform_points
from engram_ros.perception.ghosts import GhostCheck

#: Size classes by the largest extent [m]: (upper bound, name); the names are the core's, in
#: its order (merging keeps the largest class: :func:`engram_ros.core.merge.one_size`).
SIZE_CLASSES: tuple[tuple[float, str], ...] = tuple(zip((0.3, 1.0, float('inf')), SIZE_ORDER))


@dataclass(frozen=True)
class Detection:
    """One 2D detection in image pixels; ``mask`` is a boolean image or ``None``."""

    label: str
    score: float
    box: tuple[float, float, float, float]          # x_min, y_min, x_max, y_max [px]
    mask: np.ndarray | None = None


@dataclass
class ObjectEstimate:
    """Where a detected object is, how large, what colour, and how sure the depth is."""

    position: np.ndarray            # map frame [m]: the object's estimated centre
    extent: np.ndarray              # axis-aligned size of the visible surface, map frame [m]
    colour: tuple[int, int, int]    # RGB of the thing's own lit pixels (core.colour)
    size_class: str
    depth_quality: float            # [0, 1]: valid-depth fraction x inlier fraction
    points: int
    range_m: float                  # distance from the camera [m]
    surface_centre: np.ndarray      # map frame [m]: centre of the visible surface's box

    def covariance(self) -> np.ndarray:
        """6x6 covariance: position noise growing with range; orientation unknown."""
        sigma = 0.02 + 0.01 * self.range_m ** 2
        return np.diag([sigma ** 2] * 3 + [np.pi ** 2] * 3).reshape(-1)


@dataclass
class ObjectLocator:
    """Settings of :meth:`locate`; see ``engram_perception`` in config/engram.yaml."""

    min_depth: float = 0.1
    max_depth: float = 8.0
    min_valid_fraction: float = 0.2
    min_points: int = 20
    max_points: int = 3000
    foreground_band: float = 0.15
    outlier_neighbours: int = 20
    outlier_std_ratio: float = 2.0
    ghosts: GhostCheck = field(default_factory=GhostCheck)

    def locate(self, detection: Detection, depth: np.ndarray, rgb: np.ndarray,
               intrinsics: Intrinsics, t_map_optical: np.ndarray,
               in_map: Callable[[np.ndarray], bool] | None = None,
               free_space=None) -> ObjectEstimate:
        """Estimate the detected object's position and extent in the map frame.

        :param in_map: whether a map position is in the mapped area (the rooms); None: all is.
        :param free_space: where depth saw empty space
            (:class:`~engram_ros.perception.free_space.FreeSpace`, with this frame in it), or
            None.
        :raises InputRejected: ``bad_box`` (empty after clipping, or a mask of another size),
            ``no_valid_depth`` (too little finite depth in range inside the box),
            ``too_few_points`` (too little left after outlier removal), ``ghost_surface``,
            ``ghost_plane_patch``, ``ghost_behind_depth``, ``ghost_outside_map``,
            ``ghost_free_space`` (:mod:`.ghosts`).
        """
        h, w = depth.shape
        x0, y0, x1, y1 = detection.box
        if not all(np.isfinite([x0, y0, x1, y1])):
            raise InputRejected('bad_box', f'{detection.label}: box has NaN coordinates')
        c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        c1, r1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
        if c1 - c0 < 2 or r1 - r0 < 2:
            raise InputRejected('bad_box', f'{detection.label}: box {detection.box} is empty '
                                           f'inside the {w}x{h} image')
        region = depth[r0:r1, c0:c1]
        valid = np.isfinite(region) & (region >= self.min_depth) & (region <= self.max_depth)
        if detection.mask is not None:
            if detection.mask.shape != depth.shape:
                raise InputRejected('bad_box', f'{detection.label}: mask {detection.mask.shape} '
                                               f'is not the image size {depth.shape}')
            inside = detection.mask[r0:r1, c0:c1].astype(bool)
        else:
            inside = np.ones_like(valid)
        n_inside = int(inside.sum())
        keep = valid & inside
        fraction = float(keep.sum()) / max(1, n_inside)
        if n_inside == 0 or fraction < self.min_valid_fraction:
            raise InputRejected('no_valid_depth', f'{detection.label}: {fraction:.0%} of the '
                                                  'box has valid depth')
        if detection.mask is None:
            keep &= self._foreground(region, keep)
        rows, cols = np.nonzero(keep)
        if len(rows) > self.max_points:
            pick = np.linspace(0, len(rows) - 1, self.max_points).astype(np.int64)
            rows, cols = rows[pick], cols[pick]
        z = region[rows, cols]
        optical = backproject(cols + c0, rows + r0, z, intrinsics)
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(optical))
        n = len(optical)
        if n > self.outlier_neighbours:
            cloud, inliers = cloud.remove_statistical_outlier(self.outlier_neighbours,
                                                              self.outlier_std_ratio)
        else:
            inliers = list(range(n))
        if len(inliers) < self.min_points:
            raise InputRejected('too_few_points', f'{detection.label}: {len(inliers)} points '
                                                  'after outlier removal')
        self.ghosts.check_not_surface(detection.label, self._box_points(region, valid & inside,
                                                                        (c0, r0), intrinsics),
                                      depth, (c0, r0, c1, r1), intrinsics, self.min_depth,
                                      self.max_depth, located=optical)
        points = transform_points(t_map_optical, np.asarray(cloud.points))
        lo, hi = points.min(axis=0), points.max(axis=0)
        extent = hi - lo
        surface_centre = (lo + hi) / 2.0
        centre = behind_visible_surface(points, surface_centre, t_map_optical[:3, 3])
        self.ghosts.check_in_front_of_depth(
            detection.label, transform_points(np.linalg.inv(t_map_optical), centre[None])[0],
            extent[:2], depth, intrinsics)
        if in_map is not None and not in_map(centre):
            raise InputRejected('ghost_outside_map', f'{detection.label}: ({centre[0]:.2f}, '
                                                     f'{centre[1]:.2f}) is in no room')
        self.ghosts.check_not_in_free_space(detection.label, centre, free_space)
        inlier_idx = np.asarray(inliers, dtype=np.int64)
        colour = self._colour(rgb, rows[inlier_idx] + r0, cols[inlier_idx] + c0,
                              (c0, r0, c1, r1), detection.mask is not None)
        size_class = size_class_of(extent)
        return ObjectEstimate(
            position=centre, extent=extent, colour=colour, size_class=size_class,
            depth_quality=fraction * len(inliers) / max(1, n), points=len(inliers),
            range_m=float(np.median(z[inlier_idx])), surface_centre=surface_centre)

    def _box_points(self, region: np.ndarray, keep: np.ndarray, origin: tuple[int, int],
                    intrinsics: Intrinsics) -> np.ndarray:
        """Optical-frame points of the pixels ``keep`` of the box (at most ``max_points``)."""
        rows, cols = np.nonzero(keep)
        if len(rows) > self.max_points:
            pick = np.linspace(0, len(rows) - 1, self.max_points).astype(np.int64)
            rows, cols = rows[pick], cols[pick]
        return backproject(cols + origin[0], rows + origin[1], region[rows, cols], intrinsics)

    def _colour(self, rgb: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                box: tuple[int, int, int, int], masked: bool) -> tuple[int, int, int]:
        """The thing's colour from its own pixels: the mask's, or without one the foreground
        pixels in the central half of the box (the edges of a box hold most of the
        background the depth band lets in), all of them when too few are there."""
        if not masked:
            c0, r0, c1, r1 = box
            qc, qr = (c1 - c0) / 4.0, (r1 - r0) / 4.0
            central = ((cols >= c0 + qc) & (cols < c1 - qc) & (rows >= r0 + qr)
                       & (rows < r1 - qr))
            if central.sum() >= self.min_points:
                rows, cols = rows[central], cols[central]
        return surface_colour(rgb[rows, cols, :3])[0]

    def _foreground(self, region: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Pixels near the object's depth: the median of the box's central half."""
        h, w = region.shape
        centre = region[h // 4:h - h // 4 or h, w // 4:w - w // 4 or w]
        centre_keep = keep[h // 4:h - h // 4 or h, w // 4:w - w // 4 or w]
        d0 = float(np.median(centre[centre_keep])) if centre_keep.any() else \
            float(np.median(region[keep]))
        band = max(self.foreground_band, 0.05 * d0)
        with np.errstate(invalid='ignore'):
            return np.abs(region - d0) <= band


def size_class_of(extent) -> str:
    """The size class (:data:`SIZE_CLASSES`) of a thing whose largest side is ``max(extent)``."""
    return next(name for bound, name in SIZE_CLASSES if float(np.max(extent)) < bound)


def behind_visible_surface(points: np.ndarray, visible_centre: np.ndarray,
                           camera: np.ndarray) -> np.ndarray:
    """Where the centre of an object is, from the part of its surface the camera sees.

    Depth sees the near side only, so the centre of the visible points lies in front of the
    object's centre, by up to its radius. In the floor plane, along the horizontal line of
    sight the visible points span ``V`` (nearest to farthest), across it ``W``. The footprint's
    depth is taken as ``W`` (about as deep as wide), but at least ``V`` (what is seen is in
    it) and at most ``2 V`` (a convex thing whose far side is hidden is seen up to its outline,
    at about the depth of its centre); the visible centre moves along the line of sight to half
    that depth behind the nearest point:

    * round things seen from the side (``V = r``, ``W = 2r``): depth ``2r``, the true centre
      (the visible surface's centre is ``r/2`` short); a box seen across a corner likewise;
    * a thing whose top or far side is in view, a table or a box seen from above (``V`` about
      ``W``): where the visible surface's centre already is;
    * a face seen head on (``V`` about 0): not moved; its depth cannot be seen.

    The estimate never lies behind the farthest visible point, so a sliver of background on a
    mask's edge cannot throw it metres back. Its height is the visible centre's.

    :param points: Nx3 visible surface points (map frame, z up).
    :param visible_centre: the centre of their bounding box (map frame).
    :param camera: the camera's position (map frame).
    """
    ray = visible_centre[:2] - camera[:2]
    distance = float(np.linalg.norm(ray))
    if distance < 1e-6:            # straight below the camera: no line of sight in the plane
        return visible_centre
    along_axis = ray / distance
    relative = points[:, :2] - camera[:2]
    along = relative @ along_axis
    across = relative @ np.array([-along_axis[1], along_axis[0]])
    seen = float(along.max() - along.min())
    depth = min(max(float(across.max() - across.min()), seen), 2.0 * seen)
    centre = np.array(visible_centre, dtype=np.float64)
    centre[:2] += along_axis * (float(along.min()) + depth / 2.0 - distance)
    return centre


def object_tags(label: str, colour: tuple[int, int, int], size_class: str) -> tuple[str, ...]:
    """The sketch of an object: canonical label, colour (the label's colour words, else the
    name of ``colour``), size class (:func:`engram_ros.core.labels.detection_tags`)."""
    return labels.detection_tags(label, sketch.color_name(colour), size_class)


def object_confidence(score: float, depth_quality: float) -> float:
    """Detector score tempered by depth quality (a box half full of holes is less sure)."""
    score = min(1.0, max(0.0, float(score))) if np.isfinite(score) else 0.0
    return float(score * (0.5 + 0.5 * min(1.0, max(0.0, depth_quality))))
