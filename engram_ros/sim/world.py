"""Built-in worlds of the simulated house: rooms, walls with doors, furniture, objects, sounds.

A world is plain data (:class:`WorldSpec`); :mod:`engram_ros.sim.scene` turns it into PyBullet
bodies. Coordinates are metres in the memory frame ``map`` (x east, y north, z up); an object's
``position`` is the centre of its footprint on its support (floor or table top), so ``z`` is the
height it stands on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import replace

#: Named colours (RGB in [0, 1]); the ground truth reports the name.
COLOURS: dict[str, tuple[float, float, float]] = {
    'red': (0.85, 0.1, 0.1), 'green': (0.1, 0.65, 0.15), 'blue': (0.1, 0.25, 0.85),
    'yellow': (0.95, 0.85, 0.1), 'white': (0.95, 0.95, 0.95), 'black': (0.08, 0.08, 0.08),
    'grey': (0.5, 0.5, 0.5), 'silver': (0.75, 0.75, 0.78), 'orange': (0.95, 0.5, 0.05),
    'purple': (0.55, 0.15, 0.7), 'brown': (0.45, 0.28, 0.12), 'cyan': (0.1, 0.8, 0.85),
    'pink': (0.95, 0.6, 0.7), 'beige': (0.85, 0.78, 0.6), 'teal': (0.0, 0.5, 0.5),
    'dark_grey': (0.22, 0.22, 0.24),
}

SHAPES = ('box', 'cylinder', 'sphere', 'capsule')
CATEGORIES = ('object', 'furniture')
SYNTHS = ('chime', 'beep', 'speech')


@dataclass(frozen=True)
class Room:
    """An axis-aligned room; ``drop`` is where an object moved "to the room" is put."""

    name: str
    x0: float
    y0: float
    x1: float
    y1: float
    floor: str = 'beige'
    drop: tuple[float, float, float] | None = None

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)


@dataclass(frozen=True)
class Wall:
    """An axis-aligned wall segment (x0, y0) -> (x1, y1) of ``thickness`` [m]."""

    x0: float
    y0: float
    x1: float
    y1: float
    thickness: float = 0.1

    def rect(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the wall's footprint grown by ``margin``."""
        h = self.thickness / 2.0 + margin
        return (min(self.x0, self.x1) - h, min(self.y0, self.y1) - h,
                max(self.x0, self.x1) + h, max(self.y0, self.y1) + h)


@dataclass(frozen=True)
class ObjectSpec:
    """A thing in the world: a procedural coloured shape or a URDF/SDF asset.

    ``size``: box (sx, sy, sz); cylinder and capsule (radius, height); sphere (radius,).
    ``asset`` is a path relative to ``pybullet_data`` or absolute; ``scale`` applies to it.
    """

    label: str
    position: tuple[float, float, float]
    shape: str = 'box'
    size: tuple[float, ...] = (0.1, 0.1, 0.1)
    color: str = 'grey'
    asset: str = ''
    scale: float = 1.0
    yaw: float = 0.0
    category: str = 'object'


@dataclass(frozen=True)
class SoundSpec:
    """A sound source: ``synth`` plays for ``duration`` s every ``period`` s (offset ``phase``)."""

    label: str
    synth: str
    position: tuple[float, float, float]
    period: float = 6.0
    duration: float = 1.0
    phase: float = 0.0
    gain: float = 0.5


@dataclass(frozen=True)
class WorldSpec:
    name: str
    rooms: tuple[Room, ...]
    walls: tuple[Wall, ...]
    objects: tuple[ObjectSpec, ...]
    sounds: tuple[SoundSpec, ...] = ()
    wall_height: float = 2.2
    wall_color: str = 'white'
    route: tuple[tuple[float, float], ...] = ()

    def room_at(self, x: float, y: float) -> str:
        """The room containing (x, y), or '' outside the house."""
        for room in self.rooms:
            if room.contains(x, y):
                return room.name
        return ''

    def room(self, name: str) -> Room:
        for room in self.rooms:
            if room.name == name:
                return room
        raise KeyError(name)

    def bounds(self) -> tuple[float, float, float, float]:
        return (min(r.x0 for r in self.rooms), min(r.y0 for r in self.rooms),
                max(r.x1 for r in self.rooms), max(r.y1 for r in self.rooms))

    def room_specs(self) -> list[str]:
        """The rooms as perception's ``rooms`` parameter writes them (``NAME=box:...``):
        the map's room layout a user would give a real robot."""
        return [f'{r.name}=box:{r.x0:g},{r.y0:g},{r.x1:g},{r.y1:g}' for r in self.rooms]

    def with_objects(self, objects: tuple[ObjectSpec, ...]) -> 'WorldSpec':
        return replace(self, objects=objects)


def walls_with_doors(x0: float, y0: float, x1: float, y1: float,
                     doors: tuple[tuple[float, float], ...] = ()) -> list[Wall]:
    """An axis-aligned wall split around door openings given as (from, to) along the wall."""
    horizontal = y0 == y1
    start, end = (x0, x1) if horizontal else (y0, y1)
    cuts = sorted(doors)
    segments, at = [], start
    for a, b in cuts:
        if a > at:
            segments.append((at, a))
        at = max(at, b)
    if at < end:
        segments.append((at, end))
    return [Wall(a, y0, b, y0) if horizontal else Wall(x0, a, x0, b) for a, b in segments]


def segment_hits_rect(p: tuple[float, float], q: tuple[float, float],
                      rect: tuple[float, float, float, float]) -> bool:
    """Whether the segment p -> q meets the axis-aligned rectangle (Liang-Barsky clipping)."""
    xmin, ymin, xmax, ymax = rect
    dx, dy = q[0] - p[0], q[1] - p[1]
    t0, t1 = 0.0, 1.0
    for pk, qk in ((-dx, p[0] - xmin), (dx, xmax - p[0]), (-dy, p[1] - ymin), (dy, ymax - p[1])):
        if pk == 0.0:
            if qk < 0.0:
                return False
            continue
        t = qk / pk
        if pk < 0.0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def point_in_rect(x: float, y: float, rect: tuple[float, float, float, float]) -> bool:
    return rect[0] <= x <= rect[2] and rect[1] <= y <= rect[3]


def _outer(x1: float, y1: float) -> list[Wall]:
    return [Wall(0.0, 0.0, x1, 0.0), Wall(0.0, y1, x1, y1), Wall(0.0, 0.0, 0.0, y1),
            Wall(x1, 0.0, x1, y1)]


def _house() -> WorldSpec:
    """A 10 x 9 m flat: kitchen and living room (south), hallway, bedroom and office (north)."""
    rooms = (
        Room('kitchen', 0.0, 0.0, 4.0, 4.5, floor='beige', drop=(3.0, 3.9, 0.0)),
        Room('living_room', 4.0, 0.0, 10.0, 4.5, floor='brown', drop=(6.8, 1.2, 0.4)),
        Room('hallway', 0.0, 4.5, 10.0, 6.0, floor='grey', drop=(5.0, 5.7, 0.0)),
        Room('bedroom', 0.0, 6.0, 5.0, 9.0, floor='pink', drop=(0.8, 7.5, 0.5)),
        Room('office', 5.0, 6.0, 10.0, 9.0, floor='teal', drop=(8.8, 8.6, 0.75)),
    )
    walls = tuple(_outer(10.0, 9.0)
                  + walls_with_doors(4.0, 0.0, 4.0, 4.5, doors=((1.5, 2.5),))
                  + walls_with_doors(0.0, 4.5, 10.0, 4.5, doors=((1.5, 2.5), (6.5, 7.5)))
                  + walls_with_doors(0.0, 6.0, 10.0, 6.0, doors=((2.0, 3.0), (7.0, 8.0)))
                  + walls_with_doors(5.0, 6.0, 5.0, 9.0))
    o = ObjectSpec
    objects = (
        # kitchen
        o('fridge', (0.45, 0.45, 0.0), 'box', (0.7, 0.7, 1.8), 'white', category='furniture'),
        o('table', (2.6, 0.9, 0.0), asset='table/table.urdf', category='furniture'),
        o('mug', (2.2, 0.8, 0.63), 'cylinder', (0.05, 0.12), 'red'),
        o('kettle', (3.1, 1.0, 0.63), 'cylinder', (0.09, 0.22), 'silver'),
        o('bowl', (2.6, 1.2, 0.63), 'cylinder', (0.11, 0.06), 'cyan'),
        o('bin', (3.6, 4.1, 0.0), 'cylinder', (0.18, 0.5), 'dark_grey'),
        # living room
        o('sofa', (7.0, 0.45, 0.0), 'box', (2.0, 0.8, 0.8), 'blue', category='furniture'),
        o('coffee_table', (6.8, 1.3, 0.0), 'box', (1.0, 0.5, 0.4), 'brown',
          category='furniture'),
        o('book', (7.2, 1.3, 0.4), 'box', (0.22, 0.16, 0.05), 'green'),
        o('tv_stand', (9.7, 2.2, 0.0), 'box', (0.4, 1.4, 0.5), 'dark_grey', category='furniture'),
        o('tv', (9.75, 2.2, 0.5), 'box', (0.08, 1.2, 0.7), 'black'),
        o('ball', (5.0, 0.6, 0.0), asset='soccerball.urdf', scale=0.25),
        o('droid', (5.3, 3.9, 0.0), asset='r2d2.urdf', scale=0.5),
        o('shelf', (9.4, 4.0, 0.0), asset='kiva_shelf/model.sdf', scale=0.6,
          category='furniture'),
        # hallway
        o('plant', (9.6, 5.25, 0.0), 'capsule', (0.2, 0.6), 'green'),
        o('shoes', (0.4, 5.7, 0.0), 'box', (0.3, 0.2, 0.1), 'brown'),
        o('backpack', (4.5, 5.75, 0.0), 'box', (0.3, 0.2, 0.4), 'orange'),
        # bedroom
        o('bed', (0.8, 7.9, 0.0), 'box', (1.4, 2.0, 0.5), 'white', category='furniture'),
        o('teddy', (0.8, 7.2, 0.5), asset='teddy_vhacd.urdf', scale=3.0),
        o('dresser', (4.2, 8.6, 0.0), 'box', (1.0, 0.5, 0.8), 'brown', category='furniture'),
        o('vase', (4.4, 8.6, 0.8), 'cylinder', (0.07, 0.3), 'purple'),
        # office
        o('desk', (8.5, 8.6, 0.0), 'box', (1.4, 0.6, 0.75), 'beige', category='furniture'),
        o('laptop', (8.3, 8.5, 0.75), 'box', (0.35, 0.25, 0.03), 'dark_grey'),
        o('duck', (8.9, 8.5, 0.75), asset='duck_vhacd.urdf', scale=2.5),
        o('printer', (9.6, 6.5, 0.0), 'box', (0.45, 0.4, 0.25), 'silver'),
        o('chair', (6.0, 8.5, 0.0), 'box', (0.5, 0.5, 0.9), 'yellow', category='furniture'),
    )
    sounds = (
        SoundSpec('doorbell', 'chime', (0.1, 5.25, 1.8), period=7.0, duration=1.2),
        SoundSpec('alarm', 'beep', (2.0, 2.2, 2.1), period=9.0, duration=1.5, phase=3.0,
                  gain=0.4),
        SoundSpec('voice', 'speech', (9.6, 2.2, 0.9), period=5.0, duration=3.5, phase=1.0,
                  gain=0.35),
    )
    route = ((1.0, 5.25), (2.0, 5.25), (2.0, 3.0), (1.2, 2.2), (3.3, 2.0), (5.0, 2.0),
             (5.6, 2.6), (8.5, 2.6), (8.5, 3.6), (7.0, 3.6), (7.0, 5.25), (7.5, 5.25),
             (7.5, 7.3), (5.8, 7.6), (7.5, 7.0), (7.5, 5.25), (2.5, 5.25), (2.5, 7.0),
             (3.8, 7.8), (2.5, 6.8), (2.5, 5.25))
    return WorldSpec('house', rooms, walls, objects, sounds, route=route)


def _small() -> WorldSpec:
    """Two rooms (6 x 4 m), a handful of objects and one sound: fast tests, one lap."""
    rooms = (Room('kitchen', 0.0, 0.0, 3.0, 4.0, floor='beige', drop=(1.0, 3.6, 0.0)),
             Room('living_room', 3.0, 0.0, 6.0, 4.0, floor='brown', drop=(4.5, 3.6, 0.0)))
    walls = tuple(_outer(6.0, 4.0) + walls_with_doors(3.0, 0.0, 3.0, 4.0, doors=((1.5, 2.5),)))
    o = ObjectSpec
    objects = (
        o('table', (1.2, 0.8, 0.0), asset='table/table.urdf', category='furniture'),
        o('mug', (0.9, 0.7, 0.63), 'cylinder', (0.05, 0.12), 'red'),
        o('kettle', (1.6, 0.9, 0.63), 'cylinder', (0.09, 0.22), 'silver'),
        o('sofa', (4.5, 3.55, 0.0), 'box', (2.0, 0.8, 0.8), 'blue', category='furniture'),
        o('ball', (5.4, 0.6, 0.0), asset='soccerball.urdf', scale=0.25),
        o('plant', (0.4, 3.6, 0.0), 'capsule', (0.2, 0.6), 'green'),
    )
    sounds = (SoundSpec('doorbell', 'chime', (5.9, 2.0, 1.8), period=4.0, duration=1.2),)
    route = ((1.0, 2.1), (5.0, 2.1), (5.0, 1.5), (3.6, 1.9), (1.0, 1.9))
    return WorldSpec('small', rooms, walls, objects, sounds, route=route)


def _workshop() -> WorldSpec:
    """A 9 x 9 m workshop flat that shares nothing with the house: a north-south corridor in
    the middle, workshop and bathroom to the west, lounge and storage to the east; its own
    objects (several with multi-word labels, as real detectors give them) and route. Built
    for the quality benchmark (issue 14), never tuned on."""
    rooms = (
        Room('corridor', 3.5, 0.0, 5.0, 9.0, floor='grey', drop=(4.25, 4.5, 0.0)),
        Room('workshop', 0.0, 0.0, 3.5, 5.0, floor='dark_grey', drop=(0.6, 2.5, 0.0)),
        Room('bathroom', 0.0, 5.0, 3.5, 9.0, floor='white', drop=(2.0, 5.4, 0.0)),
        Room('lounge', 5.0, 0.0, 9.0, 4.0, floor='beige', drop=(7.0, 3.6, 0.0)),
        Room('storage', 5.0, 4.0, 9.0, 9.0, floor='brown', drop=(6.5, 8.6, 0.0)),
    )
    walls = tuple(_outer(9.0, 9.0)
                  + walls_with_doors(3.5, 0.0, 3.5, 9.0, doors=((2.0, 3.0), (6.5, 7.5)))
                  + walls_with_doors(5.0, 0.0, 5.0, 9.0, doors=((1.5, 2.5), (6.0, 7.0)))
                  + walls_with_doors(0.0, 5.0, 3.5, 5.0)
                  + walls_with_doors(5.0, 4.0, 9.0, 4.0))
    o = ObjectSpec
    objects = (
        # workshop
        o('workbench', (1.8, 0.35, 0.0), 'box', (1.6, 0.6, 0.9), 'grey', category='furniture'),
        o('toolbox', (1.3, 0.35, 0.9), 'box', (0.4, 0.2, 0.2), 'red'),
        o('drill', (2.3, 0.35, 0.9), 'cylinder', (0.05, 0.22), 'orange'),
        o('blue box', (0.35, 4.55, 0.0), 'box', (0.4, 0.4, 0.4), 'blue'),
        o('green box', (0.95, 4.6, 0.0), 'box', (0.3, 0.3, 0.3), 'green'),
        # lounge
        o('armchair', (8.45, 3.5, 0.0), 'box', (0.7, 0.7, 0.9), 'purple', category='furniture'),
        o('side table', (5.9, 0.4, 0.0), 'box', (0.5, 0.5, 0.5), 'white', category='furniture'),
        o('red ball', (6.8, 3.6, 0.0), 'sphere', (0.11,), 'red'),
        o('beach ball', (8.5, 0.5, 0.0), 'sphere', (0.17,), 'cyan'),
        o('teddy bear', (5.9, 0.4, 0.5), asset='teddy_vhacd.urdf', scale=3.0),
        # storage
        o('shelving', (8.7, 6.5, 0.0), 'box', (0.5, 2.0, 1.6), 'brown', category='furniture'),
        o('cardboard box', (6.0, 8.55, 0.0), 'box', (0.5, 0.4, 0.35), 'beige'),
        o('vacuum cleaner', (7.2, 4.4, 0.0), 'cylinder', (0.15, 0.35), 'red'),
        o('paint can', (8.6, 8.6, 0.0), 'cylinder', (0.1, 0.2), 'white'),
        # bathroom
        o('bathtub', (0.9, 8.4, 0.0), 'box', (1.6, 0.8, 0.6), 'white', category='furniture'),
        o('washbasin', (3.0, 8.7, 0.0), 'box', (0.5, 0.4, 0.85), 'white', category='furniture'),
        o('toothbrush cup', (3.0, 8.7, 0.85), 'cylinder', (0.05, 0.14), 'green'),
        o('laundry basket', (0.35, 5.4, 0.0), 'cylinder', (0.22, 0.45), 'beige'),
    )
    sounds = (
        SoundSpec('phone', 'chime', (8.8, 2.0, 0.9), period=6.0, duration=1.0),
        SoundSpec('drill noise', 'beep', (2.3, 0.3, 1.0), period=8.0, duration=1.5, phase=2.0,
                  gain=0.4),
    )
    route = ((4.25, 1.0), (4.25, 2.5), (2.6, 2.5), (1.2, 1.3), (1.2, 3.8), (2.6, 2.5),
             (4.25, 2.5), (4.25, 2.0), (6.0, 2.0), (7.8, 1.1), (7.8, 2.9), (6.0, 2.0),
             (4.25, 2.0), (4.25, 6.5), (5.9, 6.5), (7.6, 5.0), (7.6, 8.0), (5.9, 6.5),
             (4.25, 6.5), (4.25, 7.0), (2.8, 7.0), (1.0, 7.6), (1.0, 6.0), (2.8, 7.0),
             (4.25, 7.0))
    return WorldSpec('workshop', rooms, walls, objects, sounds, route=route)


WORLDS = {'house': _house, 'small': _small, 'workshop': _workshop}


def world(name: str) -> WorldSpec:
    """The built-in world ``name``.

    :raises KeyError: for an unknown name.
    """
    return WORLDS[name]()


def yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``yaw`` about z."""
    return (0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0))


__all__ = ['COLOURS', 'SHAPES', 'CATEGORIES', 'SYNTHS', 'Room', 'Wall', 'ObjectSpec',
           'SoundSpec', 'WorldSpec', 'WORLDS', 'world', 'walls_with_doors',
           'segment_hits_rect', 'point_in_rect', 'yaw_quaternion']
