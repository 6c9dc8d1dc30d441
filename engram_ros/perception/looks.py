"""Which detections get a look: the encoding is throttled per tracked thing, not per label.

A detector at camera rate reports the same thing in every frame, and encoding each sighting
(locating it, embedding its crop) is the expensive part of perception; one look per
``min_interval`` per thing is enough while it stays in view. But the limit must be per thing:
two mugs in view, or one label at two places, are two things, and a thing in view for only one
or two frames per pass must get those looks (a move is only believed after two looks at the
new place, see core/validity.py).

A *thing* here is a label and a rough position: the box's centre back-projected at the median
depth of its central half (:func:`rough_position`, far cheaper than locating it). A detection of
that label within ``radius`` of a tracked thing's last rough position is that thing. Each thing
has a token bucket: it starts with ``burst`` looks, gets one back per ``min_interval`` up to
``burst``, and a detection is looked at only when a look is left. So a thing newly in view gets
``burst`` looks on consecutive frames, then one per ``min_interval``; a look whose job is
dropped unencoded (the node's queue was full) is given back (:meth:`LookThrottle.refund`), so
a thing still in view is looked at again rather than lost. A detection without
valid depth at its centre is tracked per label alone (its position unknown). Things not seen
for ``forget_after`` seconds are dropped, which bounds the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import numpy as np

from engram_ros.perception.geometry import backproject
from engram_ros.perception.geometry import Intrinsics
from engram_ros.perception.geometry import transform_points


@dataclass
class _Thing:
    position: np.ndarray | None
    stamp: float
    tokens: float


@dataclass
class LookThrottle:
    """Per-thing token buckets (see the module docstring)."""

    #: [m] a detection of the same label within this of a tracked thing is that thing.
    radius: float = 0.5
    #: [s] a thing not seen for this long is forgotten (it then starts with a full bucket).
    forget_after: float = 30.0
    things: dict[str, list[_Thing]] = field(default_factory=dict)

    def admit(self, label: str, position: np.ndarray | None, stamp: float,
              min_interval: float, burst: int) -> bool:
        """True when the detection of ``label`` at ``position`` (rough, map frame; None when
        unknown) at ``stamp`` gets a look; every call counts as the thing being in view."""
        if min_interval <= 0.0:
            return True
        burst = max(1, int(burst))
        things = self.things.setdefault(label, [])
        things[:] = [t for t in things if 0.0 <= stamp - t.stamp <= self.forget_after]
        thing = self._nearest(things, position)
        if thing is None:
            thing = _Thing(position, stamp, float(burst))
            things.append(thing)
        else:
            thing.tokens = min(float(burst), thing.tokens + (stamp - thing.stamp) / min_interval)
            thing.stamp = stamp
            if position is not None:
                thing.position = position
        if thing.tokens >= 1.0 - 1e-6:      # (stamps are floats: 5 x 0.1 s is one 0.5 s)
            thing.tokens = max(0.0, thing.tokens - 1.0)
            return True
        return False

    def refund(self, label: str, position: np.ndarray | None, burst: int) -> None:
        """Give back a look that was never taken (its job was dropped unencoded), so the
        thing's next frame gets one instead of losing it."""
        thing = self._nearest(self.things.get(label, []), position)
        if thing is not None:
            thing.tokens = min(float(max(1, int(burst))), thing.tokens + 1.0)

    def _nearest(self, things: list[_Thing], position: np.ndarray | None) -> _Thing | None:
        if position is None:
            return next((t for t in things if t.position is None), None)
        best, best_d = None, self.radius
        for t in things:
            if t.position is None:
                continue
            d = float(np.linalg.norm(t.position - position))
            if d <= best_d:
                best, best_d = t, d
        return best

    def reset(self) -> None:
        self.things.clear()


def rough_position(box: tuple[float, float, float, float], depth: np.ndarray,
                   intrinsics: Intrinsics, t_map_optical: np.ndarray, min_depth: float,
                   max_depth: float) -> np.ndarray | None:
    """The box's centre at the median valid depth of its central half, in the map frame; None
    without valid depth there (or for a box outside the image)."""
    h, w = depth.shape[:2]
    x0, y0, x1, y1 = box
    if not all(np.isfinite([x0, y0, x1, y1])):
        return None
    qx, qy = (x1 - x0) / 4.0, (y1 - y0) / 4.0
    c0, c1 = max(0, int(x0 + qx)), min(w, int(np.ceil(x1 - qx)))
    r0, r1 = max(0, int(y0 + qy)), min(h, int(np.ceil(y1 - qy)))
    if c1 <= c0 or r1 <= r0:
        return None
    patch = np.asarray(depth[r0:r1, c0:c1], dtype=np.float64)
    with np.errstate(invalid='ignore'):
        valid = patch[np.isfinite(patch) & (patch >= min_depth) & (patch <= max_depth)]
    if valid.size == 0:
        return None
    z = float(np.median(valid))
    point = backproject(np.array([(x0 + x1) / 2.0]), np.array([(y0 + y1) / 2.0]),
                        np.array([z]), intrinsics)
    return transform_points(t_map_optical, point)[0]
