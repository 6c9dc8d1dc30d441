"""The one validation of what a request selects: a region, a time window, a list of kinds.

A recall (:class:`~engram_ros.core.query.RecallQuery`) and a governance list or forget
(:class:`~engram_ros.core.governance.EngramFilter`) select engrams the same way, so they are
checked here, once. Each request family refuses with its own error and status codes (they
mirror its service's ``STATUS_*`` constants): it describes them once in a :class:`RequestRules`
and passes that to every check. The checks run in the order the caller calls them, and the first
problem found is the one reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Sequence

import numpy as np

from engram_ros.core.model.engram import KINDS
from engram_ros.core.model.errors import StatusError


@dataclass(frozen=True)
class RequestRules:
    """How one request family refuses a bad region, time window or kind list.

    The wording fields keep each service's messages as they are; the defaults are the recall's.
    """

    #: The family's error: called as ``error(status, message)``.
    error: type[StatusError]
    invalid_number: IntEnum
    invalid_radius: IntEnum
    unknown_frame: IntEnum
    invalid_time_window: IntEnum
    unknown_kind: IntEnum
    #: The names of the window's two ends in messages (the request's field names).
    time_names: tuple[str, str] = ('t_start', 't_end')
    radius_accepted: str = '0 (no spatial filter) or a positive distance in metres'
    centre_accepted: str = 'three finite coordinates (x, y, z in metres)'
    frame_phrase: str = 'the memory answers in'
    window_accepted: str = 'end >= start, or either side left open (0)'


def check_region(center: np.ndarray | Sequence[float] | None, radius: float, frame_id: str,
                 memory_frame: str, rules: RequestRules) -> np.ndarray | None:
    """The centre of a spatial filter as a float64 3-vector, or ``None`` when there is none.

    ``radius == 0`` means no spatial filter; a ``frame_id`` of ``''`` means the memory frame.

    :raises StatusError: (``rules.error``) for a non-finite or negative radius, a radius without
        a centre, a centre that is not three finite numbers, or a centre in another frame.
    """
    if not math.isfinite(radius):
        raise rules.error(rules.invalid_number, f'radius={radius} is not finite')
    if radius < 0.0:
        raise rules.error(rules.invalid_radius,
                          f'radius={radius} is negative; accepted: {rules.radius_accepted}')
    if not radius > 0.0:
        return None
    if center is None:
        raise rules.error(rules.invalid_radius, 'a radius was given without a centre')
    c = np.asarray(center, dtype=np.float64).reshape(-1)
    if c.shape[0] != 3 or not np.all(np.isfinite(c)):
        raise rules.error(rules.invalid_number, f'centre must be {rules.centre_accepted}')
    if frame_id not in ('', memory_frame):
        raise rules.error(rules.unknown_frame, f'centre is in frame {frame_id!r}; '
                                               f'{rules.frame_phrase} {memory_frame!r}')
    return c


def check_times_finite(t_start: float | None, t_end: float | None,
                       rules: RequestRules) -> None:
    """:raises StatusError: (``rules.error``) for a window end that is NaN or infinite."""
    for name, t in zip(rules.time_names, (t_start, t_end)):
        if t is not None and not math.isfinite(t):
            raise rules.error(rules.invalid_number, f'{name} is not finite')


def check_window_order(t_start: float | None, t_end: float | None,
                       rules: RequestRules) -> None:
    """:raises StatusError: (``rules.error``) for a window that ends before it starts."""
    if t_start is not None and t_end is not None and t_end < t_start:
        raise rules.error(rules.invalid_time_window,
                          f'time window ends ({t_end}) before it starts ({t_start}); '
                          f'accepted: {rules.window_accepted}')


def check_time_window(t_start: float | None, t_end: float | None, rules: RequestRules) -> None:
    """Check a ``[t_start, t_end]`` window (epoch seconds; ``None`` leaves a side open).

    :raises StatusError: (``rules.error``) for a non-finite end or an end before the start.
    """
    check_times_finite(t_start, t_end, rules)
    check_window_order(t_start, t_end, rules)


def check_kinds(kinds: Sequence[str], rules: RequestRules) -> None:
    """:raises StatusError: (``rules.error``) naming every kind that is not in ``KINDS``."""
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise rules.error(rules.unknown_kind,
                          f'unknown kind(s) {", ".join(map(repr, unknown))}; '
                          f'accepted: {", ".join(KINDS)}')
