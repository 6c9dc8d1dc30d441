"""Scenario files: which world, which route, how many laps, how noisy, what changes when.

A scenario is a YAML file (``config/scenarios/*.yaml``, documented in
``config/scenarios/house.yaml``). :func:`load_scenario` validates everything before a single
body is built: an unknown key, a wrong type, a missing asset, an object or a waypoint inside a
wall or outside the house, a route leg through a wall, an event naming an unknown object raise
:class:`ScenarioError` whose message starts with ``<file>:<line>:``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from engram_ros.sim import world as worlds
from engram_ros.sim.world import ObjectSpec
from engram_ros.sim.world import SoundSpec
from engram_ros.sim.world import WorldSpec

#: Distance the robot keeps from walls [m]: a waypoint or route leg closer than this is refused.
ROBOT_RADIUS = 0.2


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file, the line and why."""


@dataclass(frozen=True)
class DetectorNoise:
    """How the simulated detector errs (detections come from the segmentation mask)."""

    miss_rate: float = 0.0         # probability that a visible object is not reported
    label_noise: float = 0.0       # probability that a reported object gets another label
    false_positives: float = 0.0   # mean number of spurious boxes per image (Poisson)
    min_pixels: int = 150          # smaller visible areas are not detected
    seed: int = 0


@dataclass(frozen=True)
class OdometryNoise:
    """Odometry error: white noise per frame and drift per metre travelled."""

    noise_xy: float = 0.0          # [m] standard deviation per frame
    noise_yaw: float = 0.0         # [rad] standard deviation per frame
    drift_xy: float = 0.0          # relative scale error of travelled distance
    drift_yaw: float = 0.0         # [rad/m] heading bias per metre travelled
    seed: int = 0


@dataclass(frozen=True)
class AudioSettings:
    noise_floor: float = 0.003     # background noise amplitude (full scale = 1)
    ref_distance: float = 1.0      # [m] distance at which a source plays at its gain
    wall_loss: float = 0.5         # amplitude factor per wall between source and robot


@dataclass(frozen=True)
class Event:
    """After lap ``after_lap`` ends: ``move`` ``label`` to a room or a position, or ``remove``
    it."""

    after_lap: int
    action: str
    label: str
    position: tuple[float, float, float] | None = None
    room: str = ''
    line: int = 0


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str
    world: WorldSpec
    laps: int = 2
    speed: float = 1.0             # [m/s] along the route
    turn_rate: float = 1.5         # [rad/s] turning in place at waypoints
    route: tuple[tuple[float, float], ...] = ()
    detector: DetectorNoise = field(default_factory=DetectorNoise)
    odometry: OdometryNoise = field(default_factory=OdometryNoise)
    audio: AudioSettings = field(default_factory=AudioSettings)
    events: tuple[Event, ...] = ()
    description: str = ''


# ----------------------------------------------------------------------------- YAML with lines
class _Map(dict):
    """A YAML mapping that remembers the line of itself and of each key (1-based)."""

    line = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _Seq(list):
    line = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers; duplicate keys are errors."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            raise ScenarioError(f'{_source(loader)}:{line}: duplicate key {key!r} (first on line '
                                f'{out.lines[key]})')
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(item.start_mark.line + 1)
    return out


def _source(loader: yaml.Loader) -> str:
    return getattr(loader, 'name', '<scenario>')


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


# ----------------------------------------------------------------------------- finding files
def scenario_dirs() -> list[Path]:
    """Where scenario names are looked up: ``ENGRAM_SCENARIOS``, the source tree, the share dir."""
    dirs = [Path(p) for p in os.environ.get('ENGRAM_SCENARIOS', '').split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / 'config' / 'scenarios')
    try:  # installed in a ROS workspace: <share>/engram_ros/config/scenarios
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory('engram_ros')) / 'config' / 'scenarios')
    except Exception:  # no ament index (plain pip install): the other places only
        pass
    return dirs


def find_scenario(name_or_path: str | os.PathLike) -> Path:
    """A scenario file from a path or a name such as ``house`` (``<dir>/house.yaml``).

    :raises ScenarioError: when there is no such file.
    """
    path = Path(os.path.expanduser(str(name_or_path)))
    if path.is_file():
        return path
    for directory in scenario_dirs():
        for candidate in (directory / str(name_or_path), directory / f'{name_or_path}.yaml'):
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for d in scenario_dirs() if d.is_dir() for p in d.glob('*.yaml')})
    raise ScenarioError(f'{name_or_path}: no such scenario file (named scenarios: '
                        f'{", ".join(known) or "none"})')


def find_asset(asset: str, base_dir: Path | None = None) -> Path | None:
    """An asset path: absolute, relative to the scenario file, or inside ``pybullet_data``."""
    candidates = [Path(asset)]
    if base_dir is not None:
        candidates.append(base_dir / asset)
    try:
        import pybullet_data
        candidates.append(Path(pybullet_data.getDataPath()) / asset)
    except ImportError:
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------- validation
_TOP_KEYS = {'description', 'world', 'laps', 'speed', 'turn_rate', 'route', 'detector',
             'odometry', 'audio', 'objects', 'sounds', 'events'}


class _Checker:
    """Typed reads of a mapping that raise :class:`ScenarioError` naming the line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, line: int, problem: str) -> ScenarioError:
        return ScenarioError(f'{self.source}:{line}: {problem}')

    def mapping(self, value: Any, line: int, what: str, keys: set[str]) -> _Map:
        if not isinstance(value, dict):
            raise self.fail(line, f'{what} must be a mapping, got {type(value).__name__}')
        for key in value:
            if key not in keys:
                raise self.fail(value.lines.get(key, line),
                                f'unknown key {key!r} in {what} (known: '
                                f'{", ".join(sorted(keys))})')
        return value

    def number(self, m: _Map, key: str, default: float, lo: float = -math.inf,
               hi: float = math.inf, integer: bool = False) -> float:
        if key not in m:
            return default
        value, line = m[key], m.lines[key]
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            raise self.fail(line, f'{key} must be {"an integer" if integer else "a number"}, '
                                  f'got {value!r}')
        if not lo <= value <= hi:
            raise self.fail(line, f'{key} must be in [{lo}, {hi}], got {value!r}')
        return int(value) if integer else float(value)

    def string(self, m: _Map, key: str, default: str = '',
               choices: tuple[str, ...] | None = None) -> str:
        if key not in m:
            return default
        value, line = m[key], m.lines[key]
        if not isinstance(value, str) or not value:
            raise self.fail(line, f'{key} must be a non-empty string, got {value!r}')
        if choices is not None and value not in choices:
            raise self.fail(line, f'{key} {value!r} is not one of {", ".join(choices)}')
        return value

    def vector(self, value: Any, line: int, what: str, sizes: tuple[int, ...]) -> tuple:
        ok = (isinstance(value, list) and len(value) in sizes
              and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v) for v in value))
        if not ok:
            raise self.fail(line, f'{what} must be a list of {" or ".join(map(str, sizes))} '
                                  f'numbers, got {value!r}')
        return tuple(float(v) for v in value)


def load_scenario(name_or_path: str | os.PathLike) -> Scenario:
    """Read and validate a scenario file (a path or a name under :func:`scenario_dirs`).

    :raises ScenarioError: naming the file and line of the first problem found.
    """
    path = find_scenario(name_or_path)
    text = path.read_text()
    return parse_scenario(text, source=str(path), base_dir=path.parent)


def parse_scenario(text: str, source: str = '<scenario>',
                   base_dir: Path | None = None) -> Scenario:
    """Validate scenario YAML ``text``; see :func:`load_scenario`."""
    loader = _LineLoader(text)
    loader.name = source
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ScenarioError(f'{source}:{line}: not valid YAML: {exc.problem}') from None
    finally:
        loader.dispose()
    check = _Checker(source)
    if doc is None:
        doc = _Map()
    top = check.mapping(doc, 1, 'the scenario', _TOP_KEYS)

    world_name = check.string(top, 'world', 'house')
    if world_name not in worlds.WORLDS:
        raise check.fail(top.lines['world'], f'unknown world {world_name!r} (built-in worlds: '
                                             f'{", ".join(sorted(worlds.WORLDS))})')
    spec = worlds.world(world_name)
    laps = check.number(top, 'laps', 2, 1, 1000, integer=True)

    objects = list(spec.objects)
    for item, line in _items(check, top, 'objects'):
        obj = _object(check, item, line, base_dir)
        if any(o.label == obj.label for o in objects):
            raise check.fail(line, f'an object labelled {obj.label!r} is already in the world')
        objects.append(obj)
    sounds = list(spec.sounds)
    for item, line in _items(check, top, 'sounds'):
        sounds.append(_sound(check, item, line))
    spec = replace(spec, objects=tuple(objects), sounds=tuple(sounds))
    for obj in objects:
        _check_inside(check, spec, obj.position[:2], _line_of(top, 'objects', obj.label),
                      f'object {obj.label!r}', margin=0.0)

    if 'route' in top:
        route_value, route_line = top['route'], top.lines['route']
        if not isinstance(route_value, list) or len(route_value) < 2:
            raise check.fail(route_line, 'route must be a list of at least 2 waypoints [x, y]')
        route = tuple(check.vector(v, line, 'a waypoint', (2,))
                      for v, line in zip(route_value, route_value.lines))
        lines = list(route_value.lines)
    else:
        route, lines = spec.route, [1] * len(spec.route)
    _check_route(check, spec, route, lines)

    events = tuple(_event(check, item, line, spec, laps) for item, line in
                   _items(check, top, 'events'))

    return Scenario(
        name=Path(source).stem, source=source, world=spec, laps=laps,
        speed=check.number(top, 'speed', 1.0, 0.05, 5.0),
        turn_rate=check.number(top, 'turn_rate', 1.5, 0.1, 10.0),
        route=route, detector=_detector(check, top), odometry=_odometry(check, top),
        audio=_audio(check, top), events=events,
        description=check.string(top, 'description', ''))


def _items(check: _Checker, top: _Map, key: str):
    if key not in top:
        return []
    value = top[key]
    if not isinstance(value, list):
        raise check.fail(top.lines[key], f'{key} must be a list')
    return list(zip(value, value.lines))


def _line_of(top: _Map, key: str, label: str) -> int:
    """The line of the scenario's entry for ``label`` under ``key`` (1 for built-in ones)."""
    for item, line in zip(top.get(key, []), getattr(top.get(key), 'lines', [])):
        if isinstance(item, dict) and item.get('label') == label:
            return line
    return 1


def _object(check: _Checker, item: Any, line: int, base_dir: Path | None) -> ObjectSpec:
    m = check.mapping(item, line, 'an object', {'label', 'shape', 'size', 'color', 'asset',
                                                 'scale', 'yaw', 'position', 'category'})
    if 'label' not in m or 'position' not in m:
        raise check.fail(line, 'an object needs a label and a position [x, y, z]')
    label = check.string(m, 'label')
    asset = check.string(m, 'asset', '')
    if asset:
        found = find_asset(asset, base_dir)
        if found is None:
            raise check.fail(m.lines['asset'],
                             f'asset {asset!r} of object {label!r} not found '
                             '(looked next to the scenario and in pybullet_data)')
        asset = str(found)
    shape = check.string(m, 'shape', 'box', worlds.SHAPES)
    size = (check.vector(m['size'], m.lines['size'], 'size', (1, 2, 3))
            if 'size' in m else (0.1, 0.1, 0.1))
    if any(s <= 0.0 for s in size):
        raise check.fail(m.lines['size'], f'size must be positive, got {list(size)}')
    return ObjectSpec(
        label=label, position=check.vector(m['position'], m.lines['position'], 'position', (3,)),
        shape=shape, size=size,
        color=check.string(m, 'color', 'grey', tuple(worlds.COLOURS)), asset=asset,
        scale=check.number(m, 'scale', 1.0, 1e-3, 100.0),
        yaw=check.number(m, 'yaw', 0.0), category=check.string(m, 'category', 'object',
                                                                  worlds.CATEGORIES))


def _sound(check: _Checker, item: Any, line: int) -> SoundSpec:
    m = check.mapping(item, line, 'a sound', {'label', 'synth', 'position', 'period',
                                               'duration', 'phase', 'gain'})
    if 'label' not in m or 'position' not in m or 'synth' not in m:
        raise check.fail(line, 'a sound needs a label, a synth and a position [x, y, z]')
    period = check.number(m, 'period', 6.0, 0.1, 3600.0)
    return SoundSpec(label=check.string(m, 'label'),
                     synth=check.string(m, 'synth', choices=worlds.SYNTHS),
                     position=check.vector(m['position'], m.lines['position'], 'position', (3,)),
                     period=period, duration=check.number(m, 'duration', 1.0, 0.05, period),
                     phase=check.number(m, 'phase', 0.0, 0.0, 3600.0),
                     gain=check.number(m, 'gain', 0.5, 0.0, 1.0))


def _event(check: _Checker, item: Any, line: int, spec: WorldSpec, laps: int) -> Event:
    m = check.mapping(item, line, 'an event', {'after_lap', 'move', 'remove', 'to'})
    if 'after_lap' not in m:
        raise check.fail(line, 'an event needs after_lap (the lap after which it happens)')
    after = check.number(m, 'after_lap', 1, 1, laps, integer=True)
    if ('move' in m) == ('remove' in m):
        raise check.fail(line, 'an event is either "move: <label>" with "to:" or '
                               '"remove: <label>"')
    action = 'move' if 'move' in m else 'remove'
    label = check.string(m, action)
    labels = [o.label for o in spec.objects]
    if label not in labels:
        raise check.fail(m.lines[action], f'no object labelled {label!r} in world {spec.name!r} '
                                          f'(objects: {", ".join(labels)})')
    if action == 'remove':
        if 'to' in m:
            raise check.fail(m.lines['to'], '"to" only goes with "move"')
        return Event(after, action, label, line=line)
    if 'to' not in m:
        raise check.fail(line, f'move of {label!r} needs "to": a room name or [x, y, z]')
    to, to_line = m['to'], m.lines['to']
    if isinstance(to, str):
        try:
            room = spec.room(to)
        except KeyError:
            raise check.fail(to_line, f'no room {to!r} in world {spec.name!r} (rooms: '
                                      f'{", ".join(r.name for r in spec.rooms)})') from None
        return Event(after, action, label, position=room.drop or (*room.center, 0.0),
                     room=room.name, line=line)
    position = check.vector(to, to_line, 'to', (3,))
    _check_inside(check, spec, position[:2], to_line, f'the new place of {label!r}', margin=0.0)
    return Event(after, action, label, position=position,
                 room=spec.room_at(*position[:2]), line=line)


def _detector(check: _Checker, top: _Map) -> DetectorNoise:
    if 'detector' not in top:
        return DetectorNoise()
    m = check.mapping(top['detector'], top.lines['detector'], 'detector',
                      {'miss_rate', 'label_noise', 'false_positives', 'min_pixels', 'seed'})
    return DetectorNoise(
        miss_rate=check.number(m, 'miss_rate', 0.0, 0.0, 1.0),
        label_noise=check.number(m, 'label_noise', 0.0, 0.0, 1.0),
        false_positives=check.number(m, 'false_positives', 0.0, 0.0, 100.0),
        min_pixels=check.number(m, 'min_pixels', 150, 1, 10 ** 7, integer=True),
        seed=check.number(m, 'seed', 0, 0, 2 ** 31, integer=True))


def _odometry(check: _Checker, top: _Map) -> OdometryNoise:
    if 'odometry' not in top:
        return OdometryNoise()
    m = check.mapping(top['odometry'], top.lines['odometry'], 'odometry',
                      {'noise_xy', 'noise_yaw', 'drift_xy', 'drift_yaw', 'seed'})
    return OdometryNoise(
        noise_xy=check.number(m, 'noise_xy', 0.0, 0.0, 1.0),
        noise_yaw=check.number(m, 'noise_yaw', 0.0, 0.0, 1.0),
        drift_xy=check.number(m, 'drift_xy', 0.0, -0.5, 0.5),
        drift_yaw=check.number(m, 'drift_yaw', 0.0, -1.0, 1.0),
        seed=check.number(m, 'seed', 0, 0, 2 ** 31, integer=True))


def _audio(check: _Checker, top: _Map) -> AudioSettings:
    if 'audio' not in top:
        return AudioSettings()
    m = check.mapping(top['audio'], top.lines['audio'], 'audio',
                      {'noise_floor', 'ref_distance', 'wall_loss'})
    return AudioSettings(noise_floor=check.number(m, 'noise_floor', 0.003, 0.0, 1.0),
                         ref_distance=check.number(m, 'ref_distance', 1.0, 0.01, 100.0),
                         wall_loss=check.number(m, 'wall_loss', 0.5, 0.0, 1.0))


def _check_inside(check: _Checker, spec: WorldSpec, xy: tuple[float, float], line: int,
                  what: str, margin: float) -> None:
    x, y = xy
    if not spec.room_at(x, y):
        x0, y0, x1, y1 = spec.bounds()
        raise check.fail(line, f'{what} at ({x:g}, {y:g}) is outside the house (rooms span '
                               f'x {x0:g}..{x1:g}, y {y0:g}..{y1:g})')
    for wall in spec.walls:
        if worlds.point_in_rect(x, y, wall.rect(margin)):
            raise check.fail(line, f'{what} at ({x:g}, {y:g}) is inside the wall from '
                                   f'({wall.x0:g}, {wall.y0:g}) to ({wall.x1:g}, {wall.y1:g})')


def _check_route(check: _Checker, spec: WorldSpec, route: tuple[tuple[float, float], ...],
                 lines: list[int]) -> None:
    for i, (point, line) in enumerate(zip(route, lines)):
        _check_inside(check, spec, point, line, f'waypoint {i + 1}', margin=ROBOT_RADIUS)
    n = len(route)
    for i in range(n):
        p, q = route[i], route[(i + 1) % n]
        for wall in spec.walls:
            if worlds.segment_hits_rect(p, q, wall.rect(ROBOT_RADIUS)):
                leg = (f'the leg from waypoint {i + 1} to waypoint {i + 2}' if i + 1 < n else
                       f'the closing leg from waypoint {n} back to waypoint 1')
                raise check.fail(lines[(i + 1) % n],
                                 f'{leg} ({p[0]:g}, {p[1]:g}) -> ({q[0]:g}, {q[1]:g}) goes '
                                 f'through the wall from ({wall.x0:g}, {wall.y0:g}) to '
                                 f'({wall.x1:g}, {wall.y1:g}); add a waypoint in a door')
