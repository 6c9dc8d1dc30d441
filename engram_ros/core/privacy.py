"""Privacy by default: where and when nothing is encoded, how long raw evidence is kept.

* **Privacy zones** are regions of the memory frame (a vertical cylinder: centre + radius in
  x/y; or an axis-aligned box) where nothing is remembered. The memory drops observations in
  them (counted in diagnostics); perception should call :meth:`PrivacyPolicy.excludes` before
  encoding or writing evidence at all, with the same policy.
* **Privacy time windows** are times when nothing is remembered: absolute windows (epoch
  seconds) or daily ones (local clock, may wrap past midnight, e.g. ``22:00-07:00``).
* **Evidence retention** is a maximum age per evidence kind (``audio``, ``image``, ``depth``,
  ``text``, ``other``): consolidation deletes older evidence files and drops their URIs.

Zones and windows are written as short strings so they fit a ROS string-array parameter::

    circle:X,Y,R                 x, y [m] in the memory frame, radius R [m] > 0 (any z)
    box:XMIN,YMIN,XMAX,YMAX      [m], any z
    box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX
    daily:HH:MM-HH:MM            local time; start > end wraps past midnight
    epoch:START-END              seconds since the Unix epoch, START <= END

Nothing here imports ROS.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Sequence

import numpy as np

#: Evidence kinds (the first directory under ``evidence/``; see :mod:`engram_ros.core.evidence`).
EVIDENCE_KINDS: tuple[str, ...] = ('image', 'depth', 'audio', 'text', 'other')

#: Default retention [s] per evidence kind; 0 keeps it as long as its engram.
DEFAULT_RETENTION: dict[str, float] = {'image': 30 * 86400.0, 'depth': 30 * 86400.0,
                                       'audio': 86400.0, 'text': 0.0, 'other': 30 * 86400.0}


class PrivacyConfigError(ValueError):
    """A zone, window or retention that cannot be parsed; the message shows the syntax."""


@dataclass(frozen=True)
class PrivacyZone:
    """A region of the memory frame where nothing is remembered."""

    shape: str                         # 'circle' or 'box'
    values: tuple[float, ...]
    text: str = ''

    def contains(self, position: Sequence[float] | np.ndarray) -> bool:
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        if self.shape == 'circle':
            x, y, r = self.values
            return math.hypot(float(p[0]) - x, float(p[1]) - y) <= r
        if len(self.values) == 4:
            x0, y0, x1, y1 = self.values
            return x0 <= p[0] <= x1 and y0 <= p[1] <= y1
        x0, y0, z0, x1, y1, z1 = self.values
        return x0 <= p[0] <= x1 and y0 <= p[1] <= y1 and z0 <= p[2] <= z1


@dataclass(frozen=True)
class PrivacyWindow:
    """A time when nothing is remembered: absolute (epoch) or daily (local clock)."""

    daily: bool
    start: float                       # epoch seconds, or seconds after local midnight
    end: float
    text: str = ''

    def contains(self, stamp: float) -> bool:
        if not self.daily:
            return self.start <= stamp <= self.end
        local = time.localtime(stamp)
        t = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


@dataclass
class PrivacyPolicy:
    """Zones, windows and evidence retention of one memory; empty means no restriction."""

    zones: tuple[PrivacyZone, ...] = ()
    windows: tuple[PrivacyWindow, ...] = ()
    #: Maximum age [s] of evidence files per kind; 0 or missing = no limit.
    retention: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, zones: Sequence[str] = (), windows: Sequence[str] = (),
              retention: dict[str, float] | None = None) -> 'PrivacyPolicy':
        """Build a policy from the parameter strings (empty strings are ignored).

        :raises PrivacyConfigError: naming the bad entry and the accepted syntax.
        """
        bad_kinds = [k for k in (retention or {}) if k not in EVIDENCE_KINDS]
        if bad_kinds:
            raise PrivacyConfigError(f'unknown evidence kind(s) {bad_kinds} in retention; '
                                     f'accepted: {", ".join(EVIDENCE_KINDS)}')
        for kind, age in (retention or {}).items():
            if not math.isfinite(age) or age < 0.0:
                raise PrivacyConfigError(f'retention of {kind} is {age}; accepted: seconds >= 0')
        return cls(zones=tuple(parse_zone(z) for z in zones if z.strip()),
                   windows=tuple(parse_window(w) for w in windows if w.strip()),
                   retention=dict(retention or {}))

    def excludes(self, position: Sequence[float] | np.ndarray, stamp: float) -> str | None:
        """Why an observation at ``position`` (memory frame) and ``stamp`` must not be kept.

        Returns the zone or window text that excludes it, or ``None`` when it may be kept.
        """
        for zone in self.zones:
            if zone.contains(position):
                return f'privacy zone {zone.text}'
        for window in self.windows:
            if window.contains(stamp):
                return f'privacy window {window.text}'
        return None

    def max_age(self, evidence_kind: str) -> float | None:
        """Maximum age [s] of evidence of this kind, ``None`` when unlimited."""
        age = self.retention.get(evidence_kind, self.retention.get('other', 0.0))
        return age if age > 0.0 else None


def parse_zone(text: str) -> PrivacyZone:
    """Parse ``circle:X,Y,R`` or ``box:...`` (see the module doc).

    :raises PrivacyConfigError: for anything else.
    """
    shape, _, rest = text.strip().partition(':')
    try:
        values = tuple(float(v) for v in rest.split(','))
    except ValueError:
        values = ()
    ok = bool(values) and all(math.isfinite(v) for v in values)
    if ok and shape == 'circle' and len(values) == 3 and values[2] > 0.0:
        return PrivacyZone('circle', values, text.strip())
    if ok and shape == 'box' and len(values) in (4, 6):
        half = len(values) // 2
        if all(values[i] <= values[i + half] for i in range(half)):
            return PrivacyZone('box', values, text.strip())
    raise PrivacyConfigError(
        f'privacy zone {text!r} is not understood; accepted: circle:X,Y,R (R > 0), '
        'box:XMIN,YMIN,XMAX,YMAX or box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX (min <= max), in metres')


def parse_window(text: str) -> PrivacyWindow:
    """Parse ``daily:HH:MM-HH:MM`` or ``epoch:START-END``.

    :raises PrivacyConfigError: for anything else.
    """
    kind, _, rest = text.strip().partition(':')
    start_text, _, end_text = rest.partition('-')
    try:
        if kind == 'daily':
            start, end = _clock(start_text), _clock(end_text)
            return PrivacyWindow(True, start, end, text.strip())
        if kind == 'epoch':
            start, end = float(start_text), float(end_text)
            if math.isfinite(start) and math.isfinite(end) and start <= end:
                return PrivacyWindow(False, start, end, text.strip())
    except ValueError:
        pass
    raise PrivacyConfigError(
        f'privacy window {text!r} is not understood; accepted: daily:HH:MM-HH:MM (local time) '
        'or epoch:START-END (seconds since the Unix epoch, START <= END)')


def _clock(text: str) -> float:
    hours, _, minutes = text.strip().partition(':')
    h, m = int(hours), int(minutes or 0)
    if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 24 * 60):
        raise ValueError(text)
    return float(h * 3600 + m * 60)


__all__ = ['DEFAULT_RETENTION', 'EVIDENCE_KINDS', 'PrivacyConfigError', 'PrivacyPolicy',
           'PrivacyWindow', 'PrivacyZone', 'parse_window', 'parse_zone']
