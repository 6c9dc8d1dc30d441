"""Visibility: what the camera should have seen at a keyframe, and things missed where they were.

A thing can stop being where the memory believes it is in two ways: it is seen elsewhere
(:mod:`engram_ros.core.validity` handles that as a move), or it is gone. "Not seen" alone means
little: the camera may have looked the other way, the thing may be behind a wall or a sofa, or
too far away. So a place observation may carry a :class:`View`: the optical frame's pose in the
memory frame, pinhole intrinsics, and a coarse depth image (e.g. 16 x 12 cells, each the 10th
percentile of the valid depths in it, so that a near occluder anywhere in a cell wins). A
current belief *should have been visible* at that keyframe when its position projects inside
the image, lies between ``min_range`` and ``max_range`` in front of the camera, and nothing in
its cell is nearer than it by more than ``margin`` (:meth:`View.sees`). A cell without depth
(no return) never makes anything visible.

:class:`MissTracker` remembers, per belief, the keyframes at which it should have been visible. A
sighting (``last_seen``) clears those before it; a keyframe counts as a *miss* once ``grace``
seconds (the store's ``move_grace``) have passed after it without a sighting (detections of the
same frames arrive a little later than the keyframe). Misses are grouped into *visits* (gaps of
more than ``visit_gap`` between them), so one slow pass with a blind detector is one visit, not
twenty. After misses on ``visits`` separate visits the belief has ended: :meth:`MissTracker.gone`
reports when (the first counted miss), and the store makes it history without a successor.

How far away a thing should be visible comes from evidence. The size class gives a prior
(``MissPolicy.max_range``: a small thing farther than 2 m is often too few pixels), but a
detector that did report this thing from farther away has shown it can: an object observation
may say where the camera was (``Observation.viewpoint``), and the tracker keeps, per belief, the
largest distances it was seen from (:meth:`MissTracker.saw`). Its range is then the larger of
the prior and the distance it was seen from at least ``range_sightings`` times, times
``range_margin`` (:meth:`MissTracker.range_of`), at most the largest prior (what the store
searches around a keyframe). One far sighting (a merged mislabel, a lucky frame) does not
stretch it; a thing only ever seen from near keeps the prior, so a far keyframe never ends it.

A move should not wait for a timer: :meth:`MissTracker.newly_missed` says when a keyframe's
expectation has just become a miss (its grace passed without a sighting) for a belief not
already flagged since its last sighting, so the store can judge moves then, within the visit
that completed the evidence, instead of at the next periodic consolidation.

This state lives in RAM: after a restart the counting starts again, and the ranges fall back to
the prior until the thing is seen again, which only delays a decision.
Nothing here imports ROS or touches storage.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from engram_ros.core.places import matrix_to_quat
from engram_ros.core.places import quat_to_matrix

#: Coarse depth image size a producer should use (cells), and the percentile of each cell.
VIEW_COLS = 16
VIEW_ROWS = 12
CELL_PERCENTILE = 10.0


class InvalidView(ValueError):
    """A view that cannot be used; the message says what is wrong."""


@dataclass
class View:
    """What a camera could see at one keyframe (see the module docstring).

    :param depth: ``(rows, cols)`` z-depth per cell [m]; 0 or NaN = no return.
    :param position: optical-frame origin in the memory frame [m].
    :param orientation: optical frame (z forward, x right, y down) as ``(x, y, z, w)``.
    :param fx, fy, cx, cy: pinhole intrinsics of the coarse image [cells].
    """

    depth: np.ndarray
    position: np.ndarray
    orientation: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float

    def validate(self) -> None:
        """:raises InvalidView: naming the first problem."""
        d = np.asarray(self.depth)
        if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 1 or d.size > 4096:
            raise InvalidView(f'view depth has shape {d.shape}; 2-D with 1..4096 cells needed')
        if np.any(np.isinf(d)) or np.any(d[np.isfinite(d)] < 0.0):
            raise InvalidView('view depth has inf or negative values; 0 or NaN = no return')
        for name, v, n in (('position', self.position, 3), ('orientation', self.orientation, 4)):
            a = np.asarray(v, dtype=float).reshape(-1)
            if a.shape[0] != n or not np.all(np.isfinite(a)):
                raise InvalidView(f'view {name} must be {n} finite numbers')
        if abs(float(np.linalg.norm(self.orientation)) - 1.0) > 1e-3:
            raise InvalidView('view orientation must be a unit quaternion')
        if not all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy)) \
                or self.fx <= 0.0 or self.fy <= 0.0:
            raise InvalidView(f'view intrinsics fx={self.fx}, fy={self.fy}, cx={self.cx}, '
                              f'cy={self.cy} must be finite with fx, fy > 0')

    @classmethod
    def from_depth(cls, depth: np.ndarray, fx: float, fy: float, cx: float, cy: float,
                   t_map_optical: np.ndarray, cols: int = VIEW_COLS,
                   rows: int = VIEW_ROWS) -> 'View':
        """Summarise a full depth image [m] (0/NaN = invalid) taken at ``t_map_optical`` (4x4)."""
        d = np.asarray(depth, dtype=np.float32)
        h, w = d.shape
        if h < rows or w < cols:
            raise InvalidView(f'depth image {w}x{h} is smaller than the view {cols}x{rows}')
        # Each cell sampled on a grid of about 10 x 10 pixels: the view costs ~1 ms.
        ch, cw = h // rows, w // cols
        step_y, step_x = max(1, ch // 10), max(1, cw // 10)
        cells = d[:rows * ch:step_y, :cols * cw:step_x]
        ny, nx = -(-ch // step_y), -(-cw // step_x)
        cells = cells.reshape(rows, ny, cols, nx).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
        ok = np.isfinite(cells) & (cells > 0.0)
        valid = np.count_nonzero(ok, axis=2)
        ordered = np.sort(np.where(ok, cells, np.inf), axis=2)     # valid depths first
        pick = np.floor(CELL_PERCENTILE / 100.0 * np.maximum(valid - 1, 0)).astype(int)
        coarse = np.take_along_axis(ordered, pick[..., None], axis=2)[..., 0]
        # Most of a cell must have returned: a few stray pixels are not a view.
        coarse = np.where(valid >= 0.5 * cells.shape[2], coarse, 0.0).astype(np.float32)
        sx, sy = cols / (cols * cw), rows / (rows * ch)
        t = np.asarray(t_map_optical, dtype=float)
        return cls(coarse, t[:3, 3].copy(), matrix_to_quat(t[:3, :3]), fx * sx, fy * sy,
                   cx * sx, cy * sy)

    def sees(self, points: np.ndarray, *, min_range: float = 0.3, max_range: float = 4.0,
             margin: float = 0.3) -> np.ndarray:
        """Which of ``points`` (``(n, 3)``, memory frame) the camera should have seen."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        cam = (p - np.asarray(self.position, dtype=float)) @ quat_to_matrix(self.orientation)
        z = cam[:, 2]
        out = (z > min_range) & (np.linalg.norm(cam, axis=1) <= max_range)
        safe_z = np.where(out, z, 1.0)
        u = np.floor(self.fx * cam[:, 0] / safe_z + self.cx)
        v = np.floor(self.fy * cam[:, 1] / safe_z + self.cy)
        rows, cols = np.asarray(self.depth).shape
        out &= (u >= 0) & (u < cols) & (v >= 0) & (v < rows)
        idx = np.nonzero(out)[0]
        cell = np.nan_to_num(np.asarray(self.depth, dtype=float)[v[idx].astype(int),
                                                                   u[idx].astype(int)])
        out[idx] = (cell > 0.0) & (z[idx] <= cell + margin)
        return out


@dataclass
class MissPolicy:
    """When a belief that was not seen where it should have been has ended.

    :param visits: visits with a miss before the belief ends; 0 disables (nothing ends).
    :param visit_gap: [s] misses further apart than this are separate visits.
    :param max_range: [m] per size class (tag ``size:<class>``; ``''`` for things without
        one): farther than this from the camera, a thing is too small in the image for the
        detector to be expected to report it.
    :param margin: [m] how much nearer an occluder must be than the thing to hide it.
    """

    visits: int = 2
    visit_gap: float = 30.0
    max_range: dict[str, float] = field(default_factory=lambda: {
        'small': 2.0, 'medium': 3.5, 'large': 5.0, '': 3.0})
    margin: float = 0.3
    #: Evidence over the prior: a thing seen from ``d`` m at least ``range_sightings`` times is
    #: expected up to ``d * range_margin`` m (see the module docstring).
    range_margin: float = 1.1
    range_sightings: int = 2

    def range_for(self, tags) -> float:
        """[m] the prior: the largest distance at which a thing with ``tags`` is expected to be
        seen before any evidence (its size class)."""
        for tag in tags:
            if tag.startswith('size:') and tag[5:] in self.max_range:
                return self.max_range[tag[5:]]
        return self.max_range.get('', 3.0)

    @property
    def farthest(self) -> float:
        return max(self.max_range.values(), default=0.0)


@dataclass
class MissTracker:
    """Keyframes at which each current belief should have been visible (see the docstring)."""

    policy: MissPolicy = field(default_factory=MissPolicy)
    #: belief id -> stamps of keyframes that should have seen it, oldest first (bounded).
    expected: dict[int, list[float]] = field(default_factory=dict)
    #: True once any view came in: then "missed where it was" is judged by views only.
    views_seen: bool = False
    #: belief id -> the largest distances [m] it was seen from, largest first (at most
    #: ``range_sightings`` of them).
    ranges: dict[int, list[float]] = field(default_factory=dict)
    #: One-off sightings by a well-known lookalike that wait for the robot to look again
    #: before consolidation judges them label noise (core/memory/consolidation.py).
    awaiting: set[int] = field(default_factory=set)
    #: Keyframes with expectations whose grace has not passed yet: ``(stamp, ids)``, oldest
    #: first (drained by :meth:`newly_missed`; at most :attr:`MAX_PENDING`).
    pending: deque = field(default_factory=deque)
    #: belief id -> the keyframe stamp of the miss :meth:`newly_missed` last reported for it.
    flagged: dict[int, float] = field(default_factory=dict)
    #: Moves the store made right after an ingest batch, not in a consolidation's report.
    moves_at_ingest: int = 0

    #: Most expectations kept per belief (older ones are dropped).
    MAX_EXPECTED = 64
    #: Most keyframes waiting for their grace (a caller that never drains loses the oldest:
    #: only an early judgement is lost, the periodic consolidation still judges them).
    MAX_PENDING = 4096

    def saw(self, engram_id: int, distance: float) -> None:
        """``engram_id`` was seen from ``distance`` [m] (the camera to the sighting)."""
        if not math.isfinite(distance) or distance <= 0.0:
            return
        keep = max(1, self.policy.range_sightings)
        ranges = self.ranges.setdefault(int(engram_id), [])
        if len(ranges) < keep or distance > ranges[-1]:
            ranges.append(float(distance))
            ranges.sort(reverse=True)
            del ranges[keep:]

    def range_of(self, engram_id: int, tags) -> float:
        """[m] how far from the camera ``engram_id`` (with ``tags``) should be visible: the
        size-class prior, or the distance it was seen from often enough times the margin,
        whichever is larger, at most :attr:`MissPolicy.farthest`."""
        prior = self.policy.range_for(tags)
        ranges = self.ranges.get(int(engram_id))
        keep = max(1, self.policy.range_sightings)
        if not ranges or len(ranges) < keep:
            return prior
        return max(prior, min(self.policy.farthest, ranges[keep - 1] * self.policy.range_margin))

    def merged(self, merged_into: dict[int, int]) -> None:
        """Beliefs merged away hand what they were seen from to the one that absorbed them."""
        for gone, keep in merged_into.items():
            for distance in self.ranges.pop(int(gone), ()):
                self.saw(keep, distance)
            self.expected.pop(int(gone), None)
            self.flagged.pop(int(gone), None)

    def expect(self, ids: list[int], stamp: float) -> None:
        """``ids`` should have been visible at ``stamp`` (a keyframe)."""
        for i in ids:
            stamps = self.expected.setdefault(int(i), [])
            if not stamps or stamp > stamps[-1]:
                stamps.append(float(stamp))
                del stamps[:-self.MAX_EXPECTED]
        if ids:
            self.pending.append((float(stamp), tuple(int(i) for i in ids)))
            while len(self.pending) > self.MAX_PENDING:
                self.pending.popleft()

    def newly_missed(self, last_seen, now: float, grace: float) -> list[int]:
        """Beliefs whose expectation at a keyframe became a miss by ``now`` (no sighting within
        ``grace`` [s] after it) and that were not reported since their last sighting: the
        moments a move may have become decidable.

        :param last_seen: ``id -> last sighting`` (None when no longer current), a callable.
        """
        out = []
        while self.pending and self.pending[0][0] + grace <= now:
            stamp, ids = self.pending.popleft()
            for i in ids:
                seen = last_seen(i)
                if seen is None or stamp <= seen + grace:
                    continue
                if self.flagged.get(i, -math.inf) > seen:
                    continue            # already reported since its last sighting
                self.flagged[i] = stamp
                out.append(i)
        return out

    def missed(self, engram_id: int, last_seen: float, now: float, grace: float) -> bool:
        """True when a keyframe should have shown ``engram_id`` after ``last_seen`` and no
        sighting followed within ``grace`` [s] (one miss: evidence for a move, not an end)."""
        return any(s > last_seen + grace and s + grace <= now
                   for s in self.expected.get(engram_id, ()))

    def gone(self, last_seen: dict[int, float], now: float, grace: float,
             commit: bool = True) -> dict[int, float]:
        """Beliefs that have ended: id -> when (the first counted miss).

        :param last_seen: when each tracked belief was last seen; ids missing from it are no
            longer current (forgotten, history) and are dropped.
        :param grace: [s] a keyframe is a miss only when no sighting came this long after it
            (the store's ``move_grace``).
        :param commit: False (a dry run) reports without changing what is tracked.
        """
        out: dict[int, float] = {}
        for i in list(self.expected):
            seen = last_seen.get(i)
            if seen is None:
                if commit:
                    del self.expected[i]
                    self.ranges.pop(i, None)
                    self.flagged.pop(i, None)
                continue
            stamps = [s for s in self.expected[i] if s > seen + grace]
            if commit:
                self.expected[i] = stamps
            misses = [s for s in stamps if s + grace <= now]
            if not misses or self.policy.visits < 1:
                continue
            visits = 1 + sum(1 for a, b in zip(misses, misses[1:])
                             if b - a > self.policy.visit_gap)
            if visits >= self.policy.visits:
                out[i] = misses[0]
                if commit:
                    del self.expected[i]
                    self.flagged.pop(i, None)
        return out
