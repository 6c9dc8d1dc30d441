"""Rooms of the map: which room a position is in, for the ``room:`` tag of places and objects.

Perception does not recognise rooms; it is told where they are, as a robot's user would draw
them on the map. Rooms are written as short strings so they fit a ROS string-array parameter
(``rooms`` of ``engram_perception``)::

    NAME=box:XMIN,YMIN,XMAX,YMAX        an axis-aligned rectangle [m] in the memory frame
    NAME=poly:X1,Y1,X2,Y2,X3,Y3[,...]   a simple polygon, three or more corners [m]

``NAME`` becomes the tag ``room:NAME`` after the sketch's normalisation (``Living Room`` ->
``room:living_room``, ``hall`` -> ``room:hallway``). A position in no room gets no tag; where
rooms overlap, the first listed wins. Heights are ignored: a room is everything above its
footprint.

Nothing here imports ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engram_ros.core import sketch

SYNTAX = ('NAME=box:XMIN,YMIN,XMAX,YMAX or NAME=poly:X1,Y1,X2,Y2,X3,Y3[,...] '
          '(memory frame, metres)')


class RoomConfigError(ValueError):
    """A room that cannot be parsed; the message shows the syntax."""


@dataclass(frozen=True)
class Room:
    """A named footprint: a polygon (x, y corners, in order) of the memory frame."""

    tag: str                                   # 'room:<canonical name>'
    corners: tuple[tuple[float, float], ...]

    def contains(self, x: float, y: float) -> bool:
        """Inside or on the border (even-odd rule; a box's edges count as inside)."""
        inside = False
        n = len(self.corners)
        for i in range(n):
            (x0, y0), (x1, y1) = self.corners[i], self.corners[(i + 1) % n]
            if _on_segment(x, y, x0, y0, x1, y1):
                return True
            if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
        return inside


def _on_segment(x: float, y: float, x0: float, y0: float, x1: float, y1: float) -> bool:
    cross = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
    return (abs(cross) <= 1e-9 * max(1.0, math.hypot(x1 - x0, y1 - y0))
            and min(x0, x1) - 1e-9 <= x <= max(x0, x1) + 1e-9
            and min(y0, y1) - 1e-9 <= y <= max(y0, y1) + 1e-9)


def parse_room(text: str) -> Room:
    """One room from its string form.

    :raises RoomConfigError: for anything but :data:`SYNTAX` with finite numbers, a box with
        positive size, a polygon with three or more corners and an area, a name that cannot
        be a tag.
    """
    name, sep, shape = text.partition('=')
    kind, colon, numbers = shape.partition(':')
    if not (sep and colon and name.strip()):
        raise RoomConfigError(f'room {text!r}: expected {SYNTAX}')
    try:
        tag = sketch.normalize_tag(f'room:{name.strip()}')
        values = [float(v) for v in numbers.split(',')]
    except ValueError as exc:
        raise RoomConfigError(f'room {text!r}: {exc}; expected {SYNTAX}') from None
    if not all(math.isfinite(v) for v in values):
        raise RoomConfigError(f'room {text!r}: numbers must be finite')
    kind = kind.strip()
    if kind == 'box':
        if len(values) != 4 or not (values[0] < values[2] and values[1] < values[3]):
            raise RoomConfigError(f'room {text!r}: a box is XMIN,YMIN,XMAX,YMAX with '
                                  'XMIN < XMAX and YMIN < YMAX')
        x0, y0, x1, y1 = values
        return Room(tag, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
    if kind == 'poly':
        if len(values) < 6 or len(values) % 2:
            raise RoomConfigError(f'room {text!r}: a polygon needs three or more X,Y corners')
        corners = tuple(zip(values[0::2], values[1::2]))
        xs, ys = np.array(corners).T
        if abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))) < 1e-9:
            raise RoomConfigError(f'room {text!r}: the polygon has no area')
        return Room(tag, corners)
    raise RoomConfigError(f'room {text!r}: unknown shape {kind!r}; expected {SYNTAX}')


class RoomMap:
    """The rooms of the map, in the order given; empty: no room tags at all."""

    def __init__(self, rooms: Sequence[Room] = ()) -> None:
        self.rooms = tuple(rooms)

    @classmethod
    def parse(cls, texts: Sequence[str]) -> 'RoomMap':
        """:raises RoomConfigError: for the first room that cannot be parsed."""
        return cls([parse_room(t) for t in texts])

    def __len__(self) -> int:
        return len(self.rooms)

    def room_at(self, position: Sequence[float] | np.ndarray) -> str:
        """The ``room:`` tag of the first room containing ``position`` (x, y[, z]), or ``''``."""
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        for room in self.rooms:
            if room.contains(float(p[0]), float(p[1])):
                return room.tag
        return ''

    def covers(self, position: Sequence[float] | np.ndarray) -> bool:
        """Whether ``position`` is in the mapped area: in a room, or anywhere without rooms."""
        return not self.rooms or bool(self.room_at(position))

    def tags(self, position: Sequence[float] | np.ndarray) -> tuple[str, ...]:
        """``(room tag,)`` for a position in a room, else ``()``: to add to a sketch."""
        tag = self.room_at(position)
        return (tag,) if tag else ()
