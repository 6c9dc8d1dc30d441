"""A time-indexed transform tree (what tf2's buffer does), without ROS.

Robots publish their frames as a tree of parent <- child transforms on ``/tf`` (dynamic: odometry,
SLAM's map -> odom correction) and ``/tf_static`` (fixed: the camera mount). Perception needs
``target <- source`` at an image's stamp: the camera optical frame in the memory frame, the base
in the memory frame. :class:`TransformBuffer` keeps each edge's recent samples, walks the tree
from both frames to their common ancestor and composes the edges, each one interpolated at the
stamp between its two nearest samples (linear translation, quaternion slerp by transforms3d).

It never guesses. A stamp outside an edge's samples by more than ``tolerance`` is an
:class:`ExtrapolationError`, two samples further apart than ``max_gap`` around the stamp are a
:class:`StaleTransformError`, a frame never seen is an :class:`UnknownFrameError`, and two frames
in different trees a :class:`NotConnectedError`; each carries a ``reason`` the caller counts.
Where a ROS distro is installed, tf2_ros does the same; this one keeps the same contract where
ROS comes from the package index (no tf2 there).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from dataclasses import field
from typing import Sequence

import numpy as np
import transforms3d

from engram_ros.core.geometry import pose_matrix


class TransformError(LookupError):
    """A transform that cannot be told; ``reason`` names why (a counter suffix)."""

    reason = 'tf_error'


class UnknownFrameError(TransformError):
    """A frame no transform names."""

    reason = 'tf_unknown_frame'


class NotConnectedError(TransformError):
    """Two known frames with no chain of transforms between them."""

    reason = 'tf_not_connected'


class ExtrapolationError(TransformError):
    """The stamp is outside an edge's samples by more than the tolerance.

    ``future`` is true when the stamp is newer than the newest sample (the data may still come).
    """

    reason = 'tf_extrapolation'

    def __init__(self, message: str, future: bool = False) -> None:
        super().__init__(message)
        self.future = future


class StaleTransformError(TransformError):
    """The two samples around the stamp are further apart than ``max_gap`` (a publishing gap)."""

    reason = 'tf_stale'


@dataclass
class _Edge:
    """Samples of parent <- child: stamps [s], translations [m], quaternions (w, x, y, z)."""

    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)


def _checked(translation: Sequence[float], rotation: Sequence[float]
             ) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(translation, dtype=np.float64).reshape(-1)
    x, y, z, w = (float(v) for v in np.asarray(rotation, dtype=np.float64).reshape(-1))
    q = np.array([w, x, y, z])
    norm = float(np.linalg.norm(q))
    if t.shape != (3,) or not np.all(np.isfinite(t)) or not math.isfinite(norm) \
            or abs(norm - 1.0) > 1e-3:
        raise ValueError('a transform needs a finite translation and a unit quaternion')
    return t, q / norm


class TransformBuffer:
    """The recent transform tree, looked up by stamp.

    :param tolerance: [s] how far outside an edge's samples a stamp may be; the nearest sample
        is used there (no extrapolation).
    :param max_gap: [s] largest spacing of two samples interpolated between.
    :param cache_time: [s] how much history each dynamic edge keeps.
    """

    def __init__(self, tolerance: float = 0.1, max_gap: float = 1.0,
                 cache_time: float = 10.0) -> None:
        if not (tolerance >= 0.0 and max_gap > 0.0 and cache_time > 0.0):
            raise ValueError('tolerance >= 0, max_gap > 0 and cache_time > 0 are required')
        self.tolerance = tolerance
        self.max_gap = max_gap
        self.cache_time = cache_time
        self._edges: dict[str, _Edge] = {}   # keyed by child frame: a tree has one parent each

    def __contains__(self, frame: str) -> bool:
        return frame in self._edges or any(e.parent == frame for e in self._edges.values())

    def clear(self) -> None:
        """Forget the dynamic transforms (a time reset); static ones stay, as in tf2."""
        self._edges = {c: e for c, e in self._edges.items() if e.static}

    def frames(self) -> set[str]:
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def set_transform(self, parent: str, child: str, stamp: float,
                      translation: Sequence[float], rotation: Sequence[float],
                      static: bool = False) -> None:
        """Add ``parent <- child`` at ``stamp`` [s]: ``translation`` [m], ``rotation`` xyzw.

        A static transform replaces the edge's value and holds at every stamp. A dynamic sample
        older than the edge's newest is inserted in order; one at the same stamp replaces it.

        :raises ValueError: an empty or equal frame name, a non-finite value, a quaternion whose
            norm is not 1 (within 1e-3), or a child that would get a second parent.
        """
        if not parent or not child or parent == child:
            raise ValueError(f'bad frame names {parent!r} <- {child!r}')
        if not math.isfinite(stamp):
            raise ValueError('the stamp must be finite')
        t, q = _checked(translation, rotation)
        edge = self._edges.get(child)
        if edge is None or edge.static != static or edge.parent != parent:
            if edge is not None and edge.parent != parent and not static and not edge.static:
                raise ValueError(f'{child!r} already has the parent {edge.parent!r}, not '
                                 f'{parent!r}')
            if self._is_ancestor(child, parent):
                raise ValueError(f'{parent!r} <- {child!r} would make a loop')
            edge = self._edges[child] = _Edge(parent, static)
        if static:
            edge.stamps[:], edge.translations[:], edge.rotations[:] = [stamp], [t], [q]
            return
        i = bisect.bisect_left(edge.stamps, stamp)
        if i < len(edge.stamps) and edge.stamps[i] == stamp:
            edge.translations[i], edge.rotations[i] = t, q
        else:
            edge.stamps.insert(i, stamp)
            edge.translations.insert(i, t)
            edge.rotations.insert(i, q)
        cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_time)
        if cut > 0:
            del edge.stamps[:cut], edge.translations[:cut], edge.rotations[:cut]

    def _is_ancestor(self, frame: str, of: str) -> bool:
        while of in self._edges:
            of = self._edges[of].parent
            if of == frame:
                return True
        return False

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._edges:
            chain.append(self._edges[chain[-1]].parent)
        return chain

    def connected(self, target: str, source: str) -> bool:
        """Whether both frames are known and in one tree (at some stamp)."""
        if target == source:
            return target in self
        return target in self and source in self and \
            self._chain(target)[-1] == self._chain(source)[-1]

    def newest_stamp(self, target: str, source: str) -> float | None:
        """The newest stamp every dynamic edge between the frames has a sample at or after.

        ``None`` when the frames are not connected; ``inf`` when every edge is static.
        """
        if not self.connected(target, source):
            return None
        newest = math.inf
        for child in self._path(target, source):
            edge = self._edges[child]
            if not edge.static:
                newest = min(newest, edge.stamps[-1])
        return newest

    def _path(self, target: str, source: str) -> list[str]:
        """Child frames of the edges between the two frames (both sides of the common root)."""
        up_t, up_s = self._chain(target), self._chain(source)
        common = next(f for f in up_s if f in set(up_t))
        return up_t[:up_t.index(common)] + up_s[:up_s.index(common)]

    def _edge_at(self, child: str, stamp: float) -> np.ndarray:
        """4x4 parent <- child at ``stamp``."""
        edge = self._edges[child]
        stamps = edge.stamps
        if edge.static:
            return _matrix(edge.translations[0], edge.rotations[0])
        name = f'{edge.parent} <- {child}'
        i = bisect.bisect_left(stamps, stamp)
        if i < len(stamps) and stamps[i] == stamp:
            return _matrix(edge.translations[i], edge.rotations[i])
        if i == 0 or i == len(stamps):
            j, off = (0, stamps[0] - stamp) if i == 0 else (-1, stamp - stamps[-1])
            if off <= self.tolerance:
                return _matrix(edge.translations[j], edge.rotations[j])
            when = 'before' if i == 0 else 'after'
            raise ExtrapolationError(
                f'{name} at {stamp:.3f}: {off:.3f} s {when} its samples '
                f'[{stamps[0]:.3f}, {stamps[-1]:.3f}] (tolerance {self.tolerance} s)',
                future=i == len(stamps))
        t0, t1 = stamps[i - 1], stamps[i]
        if t1 - t0 > self.max_gap:
            if stamp - t0 <= self.tolerance:
                return _matrix(edge.translations[i - 1], edge.rotations[i - 1])
            if t1 - stamp <= self.tolerance:
                return _matrix(edge.translations[i], edge.rotations[i])
            raise StaleTransformError(f'{name} at {stamp:.3f}: no sample from {t0:.3f} to '
                                      f'{t1:.3f} (a gap over max_gap {self.max_gap} s)')
        f = (stamp - t0) / (t1 - t0)
        translation = edge.translations[i - 1] + f * (edge.translations[i]
                                                      - edge.translations[i - 1])
        return _matrix(translation, _slerp(edge.rotations[i - 1], edge.rotations[i], f))

    def lookup(self, target: str, source: str, stamp: float) -> np.ndarray:
        """4x4 transform ``target <- source`` at ``stamp`` [s]: maps points in ``source`` to
        ``target``.

        :raises UnknownFrameError: a frame no transform names.
        :raises NotConnectedError: the frames are in different trees.
        :raises ExtrapolationError: the stamp is outside an edge's samples by > tolerance.
        :raises StaleTransformError: the samples around the stamp are > max_gap apart.
        """
        for frame in (target, source):
            if frame not in self:
                raise UnknownFrameError(f'frame {frame!r} is unknown to TF (known: '
                                        f'{", ".join(sorted(self.frames())) or "none"})')
        if not self.connected(target, source):
            raise NotConnectedError(f'no transform chain between {target!r} and {source!r}')
        up_t, up_s = self._chain(target), self._chain(source)
        common = next(f for f in up_s if f in set(up_t))
        root_source = np.eye(4)   # common <- source
        for child in up_s[:up_s.index(common)]:
            root_source = self._edge_at(child, stamp) @ root_source
        root_target = np.eye(4)   # common <- target
        for child in up_t[:up_t.index(common)]:
            root_target = self._edge_at(child, stamp) @ root_target
        return invert(root_target) @ root_source


def _matrix(translation: np.ndarray, wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = wxyz
    return pose_matrix(translation, (x, y, z, w))


def _slerp(q0: np.ndarray, q1: np.ndarray, f: float) -> np.ndarray:
    """Shortest-path slerp of (w, x, y, z) unit quaternions."""
    if float(np.dot(q0, q1)) < 0.0:
        q1 = -q1
    if float(np.dot(q0, q1)) > 0.9995:   # nearly equal: normalised lerp is exact enough
        q = q0 + f * (q1 - q0)
        return q / np.linalg.norm(q)
    return transforms3d.quaternions.qmult(
        q0, transforms3d.quaternions.qexp(f * transforms3d.quaternions.qlog(
            transforms3d.quaternions.qmult(transforms3d.quaternions.qinverse(q0), q1))))


def invert(t: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    out = np.eye(4)
    out[:3, :3] = t[:3, :3].T
    out[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return out


__all__ = ['ExtrapolationError', 'NotConnectedError', 'StaleTransformError', 'TransformBuffer',
           'TransformError', 'UnknownFrameError', 'invert']
