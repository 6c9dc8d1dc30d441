"""Ghosts: 3-D positions a detection cannot have come from, refused before they are stored.

A detector's false positive is a box around nothing in particular: a patch of wall, floor or
table top. Its depth is valid, so :class:`~engram_ros.perception.objects.ObjectLocator` would
place a "thing" on that surface, and :func:`~engram_ros.perception.objects.
behind_visible_surface` would even push it behind the wall when the wall is seen at a glancing
angle: a ghost outside the house. Five tests, each raising
:class:`~engram_ros.perception.errors.InputRejected` with its own reason (the pipeline counts
them as ``skipped_<reason>``, published in perception's diagnostics):

* ``ghost_surface`` (:func:`check_not_surface`): the points of the box (of the mask when there
  is one) lie on one plane, or two meeting at a corner (a wall and the floor), that go on past the
  box's edges on every side the image shows: the box delimits no thing, it is a piece of a
  larger surface. A real thing ends at its box: beyond the box there is
  background at another depth (on at least one side). A thing flush with a wall (a poster)
  cannot be told from the wall by depth and is refused too.
* ``ghost_plane_patch`` (:func:`check_not_surface` with the located points): the points the
  position is taken from (the mask's, or the box's foreground) lie on a plane that goes on past
  the box on every visible side but one (three or four shown): a false box over a wall with a
  door frame or a piece of furniture at one side, which makes the whole box no plane. Measured
  on the quality benchmark's run-0 bags: 10 of the 27 false boxes that passed the other checks
  (house) and 11 of 23 (workshop), none of 1692 and 1196 true sightings (the one workshop
  sighting within 1 m of its thing that it refused was a false box too); 5 of the 9 ghosts
  left on wall lines in the house's run 0 came from such boxes.
* ``ghost_behind_depth`` (:func:`check_in_front_of_depth`): the estimated centre, projected into
  the same depth image, lies farther behind the surface seen there than the thing is deep.
* ``ghost_outside_map``: the centre lies outside every configured room (the map's extent, as
  the user drew it); checked with the rooms the pipeline knows (none configured: not checked).
* ``ghost_free_space`` (:meth:`GhostCheck.check_not_in_free_space`): the centre and the space
  around it were seen empty by at least ``free_space_min`` frames since anything was last
  seen there (:class:`~engram_ros.perception.free_space.FreeSpace`, updated with the frame
  first); ``free_space_min`` 0 (the default) turns it off.

Nothing here imports ROS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engram_ros.perception.errors import InputRejected
from engram_ros.perception.geometry import backproject
from engram_ros.perception.geometry import Intrinsics

#: Two planes whose normals are closer than 45 degrees are not a corner of the room.
CORNER_COS = 0.7071


@dataclass
class GhostCheck:
    """Settings of the ghost tests (``objects.ghost_*`` parameters of ``engram_perception``).

    :param plane_tolerance: [m] a point within this distance (plus ``plane_tolerance_rel``
        times its depth) of the box's plane lies on it.
    :param planar_fraction: the box is a plane when at least this fraction of its points lie
        on the plane fitted to them.
    :param continues_fraction: a side of the ring around the box continues the plane when at
        least this fraction of its pixels with depth lie on it.
    :param ring: width of the ring looked at around the box, as a fraction of the box's size.
    :param behind_margin: [m] how far behind the seen surface a centre may lie beyond the
        thing's own horizontal size.
    :param enabled: False turns every test off.
    """

    plane_tolerance: float = 0.015
    plane_tolerance_rel: float = 0.005
    planar_fraction: float = 0.9
    continues_fraction: float = 0.7
    ring: float = 0.1
    behind_margin: float = 0.1
    enabled: bool = True
    #: Frames that must have seen a centre's space empty (since anything was last seen there)
    #: to refuse it; 0: not checked (``objects.free_space_min``).
    free_space_min: int = 0
    #: Planes tried per RANSAC fit (seeded: the same box gives the same answer).
    ransac_tries: int = 40

    def check_not_surface(self, label: str, optical: np.ndarray, depth: np.ndarray,
                          box: tuple[int, int, int, int], k: Intrinsics, min_depth: float,
                          max_depth: float, located: np.ndarray | None = None) -> None:
        """Refuse a box that is a piece of a larger plane (see the module doc).

        :param optical: the box's (or mask's) points with valid depth (optical frame).
        :param box: (c0, r0, c1, r1) pixel bounds of the box inside the image.
        :param located: the points the position is taken from (the mask's, or the box's
            foreground), or None: when they lie on a plane that goes on past the box on
            every visible side but one (at least three shown), the box holds a patch of a
            wall or floor and something beside it (a door frame, a piece of furniture on one
            side) that the whole box's test lets pass.
        :raises InputRejected: ``ghost_surface`` (the whole box), ``ghost_plane_patch`` (the
            located points).
        """
        if not self.enabled:
            return
        for points, whole in ((optical, True), (located, False)):
            if points is None or len(points) < 10:
                continue
            planes = self._planes(points)
            if not planes:
                continue
            shown, continuing = self._continuing(planes, depth, box, k, min_depth, max_depth)
            if whole and shown >= 2 and continuing == shown:
                raise InputRejected('ghost_surface', f'{label}: the box is a patch of a plane '
                                                     f'that goes on past its {shown} visible '
                                                     'sides (a wall, floor or table top)')
            if not whole and shown >= 3 and continuing >= shown - 1:
                raise InputRejected('ghost_plane_patch', f'{label}: the points it is placed '
                                                         'by lie on a plane that goes on past '
                                                         f'{continuing} of the box\'s {shown} '
                                                         'visible sides')

    def _continuing(self, planes: list[tuple[np.ndarray, np.ndarray]], depth: np.ndarray,
                    box: tuple[int, int, int, int], k: Intrinsics, min_depth: float,
                    max_depth: float) -> tuple[int, int]:
        """(sides of the box the image shows, sides where ``planes`` go on): a side goes on
        when ``continues_fraction`` of its ring's pixels with depth lie on the planes."""
        def on_planes(points: np.ndarray) -> np.ndarray:
            tolerance = self.plane_tolerance + self.plane_tolerance_rel * points[:, 2]
            return np.any([np.abs((points - c) @ n) <= tolerance for c, n in planes], axis=0)

        h, w = depth.shape
        c0, r0, c1, r1 = box
        pad = max(3, int(round(self.ring * max(c1 - c0, r1 - r0))))
        sides = {'left': (r0, r1, max(0, c0 - pad), c0), 'right': (r0, r1, c1, min(w, c1 + pad)),
                 'top': (max(0, r0 - pad), r0, c0, c1), 'bottom': (r1, min(h, r1 + pad), c0, c1)}
        shown = continuing = 0
        for ra, rb, ca, cb in sides.values():
            if rb - ra < 1 or cb - ca < 1:
                continue                           # the box touches the image's edge there
            rows, cols = np.mgrid[ra:rb, ca:cb]
            z = depth[ra:rb, ca:cb]
            ok = np.isfinite(z) & (z >= min_depth) & (z <= max_depth)
            shown += 1
            if ok.sum() < 3:
                continue                           # no return beyond the box: not the plane
            points = backproject(cols[ok], rows[ok], z[ok], k)
            continuing += bool(on_planes(points).mean() >= self.continues_fraction)
        return shown, continuing

    def _planes(self, points: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """One plane, or two meeting at a corner (a point, a unit normal each), on which
        ``planar_fraction`` of ``points`` lie (a wall; a wall and the floor where they meet),
        by a seeded RANSAC; ``[]`` when they do not explain them."""
        rng = np.random.default_rng(0)
        rest = points
        planes: list[tuple[np.ndarray, np.ndarray]] = []
        for _ in range(2):
            if len(rest) < 3:
                break
            tolerance = self.plane_tolerance + self.plane_tolerance_rel * rest[:, 2]
            best, best_on = None, None
            for _ in range(self.ransac_tries):
                a, b, c = rest[rng.choice(len(rest), 3, replace=False)]
                normal = np.cross(b - a, c - a)
                norm = float(np.linalg.norm(normal))
                if norm < 1e-9:
                    continue
                normal /= norm
                on = np.abs((rest - a) @ normal) <= tolerance
                if best_on is None or on.sum() > best_on.sum():
                    best, best_on = (a, normal), on
            if best is None:
                break
            planes.append(best)
            rest = rest[~best_on]
            if 1.0 - len(rest) / len(points) >= self.planar_fraction:
                # two planes only where they meet at a corner (a wall and the floor, two
                # walls): a face in front of a parallel wall is a thing before a background
                if len(planes) == 2 and abs(float(planes[0][1] @ planes[1][1])) > CORNER_COS:
                    return []
                return planes
        return []

    def check_not_in_free_space(self, label: str, centre: np.ndarray, free_space) -> None:
        """Refuse a centre in space seen empty (see the module doc).

        :param centre: the estimated centre in the map frame.
        :param free_space: a :class:`~engram_ros.perception.free_space.FreeSpace` already
            updated with the frame the detection comes from, or None (not checked).
        :raises InputRejected: ``ghost_free_space``.
        """
        if not self.enabled or free_space is None or self.free_space_min < 1:
            return
        if free_space.empty_around(centre, self.free_space_min):
            raise InputRejected('ghost_free_space', f'{label}: ({centre[0]:.2f}, '
                                                    f'{centre[1]:.2f}, {centre[2]:.2f}) was seen '
                                                    f'empty by {self.free_space_min}+ frames')

    def check_in_front_of_depth(self, label: str, centre_optical: np.ndarray,
                                extent: np.ndarray, depth: np.ndarray, k: Intrinsics) -> None:
        """Refuse a centre farther behind the surface seen along its ray than the thing is big.

        :param centre_optical: the estimated centre in the optical frame.
        :param extent: the visible surface's size [m] (map frame; its largest side counts).
        :raises InputRejected: ``ghost_behind_depth``.
        """
        if not self.enabled or centre_optical[2] <= 0.0:
            return
        u = int(np.floor(k.fx * centre_optical[0] / centre_optical[2] + k.cx))
        v = int(np.floor(k.fy * centre_optical[1] / centre_optical[2] + k.cy))
        h, w = depth.shape
        if not (0 <= u < w and 0 <= v < h):
            return
        window = depth[max(0, v - 2):v + 3, max(0, u - 2):u + 3]
        window = window[np.isfinite(window) & (window > 0.0)]
        if window.size == 0:
            return
        seen = float(np.median(window))
        allowed = float(np.max(extent)) + self.behind_margin
        if centre_optical[2] > seen + allowed:
            raise InputRejected('ghost_behind_depth', f'{label}: centre {centre_optical[2]:.2f} m'
                                                      f' deep, {centre_optical[2] - seen:.2f} m '
                                                      'behind the surface seen there')
