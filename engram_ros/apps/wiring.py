"""The one source of launch wiring: which nodes each set starts, what perception shares with the
nodes beside it, and the default parameter file.

``engram_launch`` (:mod:`engram_ros.apps.launcher`) and every ``launch/*_launch.py`` ask this
module, so the two ways of starting a robot cannot drift apart again (they did: the robot launch
file left perception's evidence outside the memory's store, retention, forget and encryption).
It is plain Python returning data (no ``launch`` import): node specs, and the parameters a node
gets on top of the parameter file, with the caller's own overrides winning over them.

Perception has no view of the memory's parameters (and takes the camera mount from TF only
when TF arrives), so what it must agree on is handed to it here, by each node it runs beside
(:data:`NodeSpec.shares`):

* the memory: its consent to keep anything on disk (``persist``: without it perception writes
  no evidence file), its evidence directory (``<store_dir>/evidence``) and encryption
  settings, so perception's frames, crops and clips are kept, encrypted, expired and
  forgotten as the memory's evidence;
* the simulator: the camera where the sim mounts it (perception's fall-back without TF; the
  sim also publishes it on ``/tf_static``) and the simulated house's rooms
  (:mod:`engram_ros.sim.launch_set`).

The simulator in turn gets the memory's privacy zones and windows: it records no raw frame
inside them (``record_raw``, :mod:`engram_ros.sim.node`).

The parameter file is read as ROS reads it (:func:`node_parameters`): a node takes every
section whose key matches its fully qualified name, ``/**`` and ``*`` wildcards included, so
``/**/engram_memory:`` (the shipped file's keys) applies in any namespace, and what is shared
is computed from the values the nodes will really run with.

The simulator's share is named by module and imported only when a set runs the simulator: the
robot and memory sets never load the simulator, and nothing outside ``engram_ros.sim`` imports
it (the layering contract); a set that names a node names everything that node brings.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Iterable
from typing import Mapping

import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class NodeSpec:
    """One node a set can start."""

    name: str          # short name: in sets, ``-p <name>.x:=v`` overrides and log files
    module: str        # ``python -m <module>`` (engram_launch)
    executable: str    # ``ros2 run engram_ros <executable>`` (launch files)
    params_key: str    # the node's name (its key in the parameter file: ``/**/<name>``)
    #: ``module:function`` giving perception's settings from this node's parameters
    #: (called with a :class:`Parameters`); '' when the node shares nothing.
    shares: str = ''

    @property
    def file_key(self) -> str:
        """Its section's key in the shipped parameter file, matching it in any namespace (a
        plain ``engram_memory:`` matches only ``/engram_memory``)."""
        return f'/**/{self.params_key}'


#: Every node, in start order (the memory first: it must be ready first).
NODES = {
    'memory': NodeSpec('memory', 'engram_ros.ros.nodes.memory_node', 'memory_node',
                       'engram_memory', shares='engram_ros.apps.wiring:shared_by_memory'),
    'perception': NodeSpec('perception', 'engram_ros.ros.nodes.perception_node',
                           'perception_node', 'engram_perception'),
    'sim': NodeSpec('sim', 'engram_ros.sim.node', 'sim_node', 'engram_sim',
                    shares='engram_ros.sim.launch_set:shared_by_sim'),
}
#: The sets: ``engram_launch <set>`` and ``launch/<set>_launch.py``.
SETS = {
    'sim': ('memory', 'perception', 'sim'),
    'robot': ('memory', 'perception'),
    'memory': ('memory',),
}
#: Perception's sensor inputs, as a robot launch remaps them:
#: (input name, launch argument, what it carries).
PERCEPTION_INPUTS = (
    ('camera/color/image_raw', 'color', 'sensor_msgs/Image rgb8 topic'),
    ('camera/depth/image_raw', 'depth', 'sensor_msgs/Image 32FC1 [m] depth registered to color'),
    ('camera/color/camera_info', 'camera_info', 'sensor_msgs/CameraInfo of the colour camera'),
    ('odom', 'odom', 'nav_msgs/Odometry of base_link in the memory frame'),
    ('pose', 'pose', 'geometry_msgs/PoseStamped of base_link in the memory frame, for a '
                     'localizer that publishes one instead of odometry'),
    ('audio/chunk', 'audio', 'engram_ros/AudioChunk topic'),
    ('detections', 'detections', 'engram_ros/DetectionArray topic (boxes and masks)'),
    ('detections_2d', 'detections_2d', 'vision_msgs/Detection2DArray topic of a detector node'),
)
#: The memory's parameters perception must follow, with the memory's defaults.
MEMORY_SHARED = {'persist': False, 'store_dir': '~/.ros/engram_store',
                 'encrypt_evidence': False, 'encryption_key_file': ''}


def default_params_file() -> Path:
    """config/engram.yaml of the source tree, else of the installed share directory."""
    path = ROOT / 'config' / 'engram.yaml'
    if path.is_file():
        return path
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory('engram_ros')) / 'config' / 'engram.yaml'
    except Exception:
        return path


def fully_qualified_name(namespace: str, name: str) -> str:
    """``/robot1/engram_memory`` from a namespace (``''``, ``robot1``, ``/robot1/``) and a name."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


def _key_pattern(key: str) -> re.Pattern:
    """A parameter-file node key as ROS matches it: ``/**`` any number of name tokens,
    ``/*`` exactly one, otherwise the name itself (a missing leading ``/`` is implied)."""
    pattern = ''
    for token in key.strip('/').split('/'):
        if token == '**':
            pattern += r'(?:/[^/]+)*'
        elif token == '*':
            pattern += r'/[^/]+'
        else:
            pattern += '/' + re.escape(token)
    return re.compile(pattern)


def _sections(document: Mapping[str, Any], prefix: str = '') -> Iterable[tuple[str, dict]]:
    """``(node key, ros__parameters)`` of a parameter file in file order; nested namespace
    keys (``robot1: {engram_memory: {ros__parameters: ...}}``) are joined with ``/``."""
    for key, value in document.items():
        if not isinstance(value, Mapping):
            continue
        name = f'{prefix}/{str(key).strip("/")}' if prefix else str(key)
        if 'ros__parameters' in value:
            yield name, value.get('ros__parameters') or {}
        else:
            yield from _sections(value, name)


def _flatten(values: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested parameter groups as ROS names them: ``{'a': {'b': 1}}`` -> ``{'a.b': 1}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            out.update(_flatten(value, f'{name}.'))
        else:
            out[name] = value
    return out


def node_parameters(document: Mapping[str, Any], node_fqn: str) -> dict[str, Any]:
    """The values a parameter file gives the node ``node_fqn`` (``/robot1/engram_memory``):
    every matching section in file order, a later one winning (as rclpy applies them)."""
    values: dict[str, Any] = {}
    for key, section in _sections(document or {}):
        if _key_pattern(key).fullmatch(node_fqn):
            values.update(_flatten(section))
    return values


@dataclass
class Parameters:
    """The nodes' parameters as they will run in ``namespace``: the parameter file (each node
    reads the sections that match its name there), then per-node overrides
    (``{'memory': {'store_dir': '/data'}}``, values already parsed)."""

    params_file: Path
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    namespace: str = ''

    def __post_init__(self) -> None:
        self.document = yaml.safe_load(Path(self.params_file).read_text()) or {}

    def of(self, node: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """``defaults``' names of ``node``: the parameter file's values, then overrides."""
        values = dict(defaults)
        section = node_parameters(self.document,
                                  fully_qualified_name(self.namespace, NODES[node].params_key))
        values.update({k: v for k, v in section.items() if k in defaults})
        values.update({k: v for k, v in self.overrides.get(node, {}).items() if k in defaults})
        return values


def shared_by_memory(parameters: Parameters) -> dict[str, Any]:
    """Perception's evidence settings from the memory's: written only with the memory's consent
    (``persist``), and kept where and as the memory keeps evidence; and the memory's privacy
    zones and windows (when set: an empty list has no type in ROS), which perception applies
    before it encodes or writes anything."""
    memory = parameters.of('memory', MEMORY_SHARED)
    shared = {'persist': bool(memory['persist']),
              'evidence_dir': str(Path(memory['store_dir']) / 'evidence'),
              'encrypt_evidence': bool(memory['encrypt_evidence']),
              'encryption_key_file': str(memory['encryption_key_file'])}
    privacy = parameters.of('memory', {'privacy': {}, 'privacy.zones': [],
                                       'privacy.time_windows': []})
    for name in ('zones', 'time_windows'):      # `privacy.zones:` or `privacy: {zones:}`
        values = privacy[f'privacy.{name}'] or (privacy['privacy'] or {}).get(name) or []
        if values:
            shared[f'privacy.{name}'] = [str(v) for v in values]
    return shared


@dataclass(frozen=True)
class NodeLaunch:
    """One node of a set, and the parameters it gets on top of the parameter file (before the
    caller's own overrides, which win)."""

    spec: NodeSpec
    parameters: dict[str, Any]


def check_set(set_name: str, without: Iterable[str] = ()) -> None:
    """:raises ValueError: for an unknown set or node name."""
    if set_name not in SETS:
        raise ValueError(f'unknown set {set_name!r} (sets: {", ".join(SETS)})')
    unknown = [n for n in without if n not in NODES]
    if unknown:
        raise ValueError(f'unknown node(s) {unknown} in --without (nodes: {", ".join(NODES)})')


def node_set(set_name: str, params_file: Path | str,
             overrides: Mapping[str, Mapping[str, Any]] | None = None,
             without: Iterable[str] = (), namespace: str = '') -> list[NodeLaunch]:
    """The nodes of ``set_name`` (less ``without``), in start order, each with what it gets on
    top of ``params_file``; ``overrides`` are the caller's per-node parameter values, read here
    only to know what perception must share; ``namespace`` is the nodes' (the parameter file's
    sections apply by name, as ROS applies them).

    :raises ValueError: for an unknown set or node; a ScenarioError (a ValueError) when the
        sim's scenario cannot be read.
    """
    without = tuple(without)
    check_set(set_name, without)
    names = [n for n in SETS[set_name] if n not in without]
    parameters = Parameters(Path(params_file), overrides or {}, namespace)
    perception: dict[str, Any] = {}
    if 'perception' in names:
        for name in names:
            if NODES[name].shares:
                perception.update(_resolve(NODES[name].shares)(parameters))
    # The simulator records raw frames (record_raw) only outside the memory's privacy zones
    # and windows: it gets them too.
    sim = {k: v for k, v in shared_by_memory(parameters).items() if k.startswith('privacy.')} \
        if 'sim' in names else {}
    given = {'perception': perception, 'sim': sim}
    return [NodeLaunch(NODES[n], dict(given.get(n, {}))) for n in names]


def _resolve(target: str):
    module, _, function = target.partition(':')
    return getattr(importlib.import_module(module), function)
