"""launch/*.py start the node sets engram_launch starts, with the same shared parameters.

``launch`` and ``launch_ros`` cannot be installed from the package index, so each launch file
runs here against a stand-in that records its actions (DeclareLaunchArgument defaults,
OpaqueFunction results, Node keywords) and resolves LaunchConfigurations the way ``ros2
launch`` does (substitutions in parameters are parsed as YAML). The node sets are then compared
with the command lines of :class:`engram_ros.apps.launcher.Launcher` for the same inputs.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from engram_ros.apps.launcher import Launcher
from engram_ros.apps.wiring import NODES
from engram_ros.apps.wiring import PERCEPTION_INPUTS

from conftest import PARAMS
from conftest import ROOT


class _Action:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    def __init__(self, name: str, default=None) -> None:
        self.name = name

    def perform(self, context) -> str:
        return context.launch_configurations[self.name]


class DeclareLaunchArgument(_Action):
    pass


class OpaqueFunction(_Action):
    pass


class Node(_Action):
    pass


class LaunchDescription(_Action):
    pass


class FindPackageShare(_Action):
    """Resolved when the launch runs; loading a launch file must not look the package up."""


class PathJoinSubstitution(_Action):
    pass


class PackageNotFoundError(KeyError):
    pass


def _share_directory(package: str) -> str:
    """The ament index of a machine with engram_ros and nothing else (no ros_gz_sim)."""
    if package != 'engram_ros':
        raise PackageNotFoundError(f"package '{package}' not found")
    return f'/share/{package}'


def _stand_in_launch(monkeypatch) -> None:
    modules = {
        'launch': {'LaunchDescription': LaunchDescription},
        'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument,
                           'OpaqueFunction': OpaqueFunction,
                           'IncludeLaunchDescription': type('Include', (_Action,), {})},
        'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration,
                                 'PathJoinSubstitution': PathJoinSubstitution},
        'launch.launch_description_sources': {
            'PythonLaunchDescriptionSource': type('Source', (_Action,), {})},
        'launch_ros': {},
        'launch_ros.actions': {'Node': Node},
        'launch_ros.substitutions': {'FindPackageShare': FindPackageShare},
        'ament_index_python': {},
        'ament_index_python.packages': {'get_package_share_directory': _share_directory,
                                        'PackageNotFoundError': PackageNotFoundError},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)


def _resolve(value, context):
    if isinstance(value, LaunchConfiguration):
        return yaml.safe_load(value.perform(context))
    return value


def launch_description(monkeypatch, name: str) -> list:
    """The entities of ``launch/<name>``'s description, as ``ros2 launch`` loads it (also for
    ``--show-args``), against the stand-in ``launch`` and an index without ros_gz."""
    _stand_in_launch(monkeypatch)
    spec = importlib.util.spec_from_file_location(f'_launch_{Path(name).stem}',
                                                  ROOT / 'launch' / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description().args[0]


def launch_file_nodes(monkeypatch, name: str, **arguments: str) -> list[dict]:
    """The engram_ros nodes ``launch/<name>`` starts: executable, name, parameter file, the
    parameters on top of it and the remappings, all resolved."""
    entities = launch_description(monkeypatch, name)
    declared = {e.args[0]: e.kwargs.get('default_value') for e in entities
                if isinstance(e, DeclareLaunchArgument)}
    context = types.SimpleNamespace(launch_configurations={**declared, **arguments})
    nodes = [e for e in entities if isinstance(e, Node)]
    for e in entities:
        if isinstance(e, OpaqueFunction):
            nodes += e.kwargs['function'](context)
    out = []
    for node in nodes:
        if node.kwargs['package'] != 'engram_ros':
            continue
        params_file, *dicts = node.kwargs['parameters']
        parameters = {k: _resolve(v, context) for d in dicts for k, v in d.items()}
        out.append({'executable': node.kwargs['executable'], 'name': node.kwargs['name'],
                    'params_file': str(_resolve(params_file, context)),
                    'parameters': parameters,
                    'remappings': [(a, _resolve(b, context))
                                   for a, b in node.kwargs.get('remappings', [])]})
    return out


def launcher_nodes(set_name: str, params_file: str, params: list[str] = ()) -> list[dict]:
    """What engram_launch starts for the same set: parsed from its command lines."""
    executables = {spec.module: spec for spec in NODES.values()}
    out = []
    for child in Launcher(set_name, params_file=params_file, params=params).children:
        command = child.command
        spec = executables[command[command.index('engram_ros.ros.nodes.boot') + 1]]
        parameters = {}
        for i, arg in enumerate(command):
            if arg == '-p':
                key, _, value = command[i + 1].partition(':=')
                parameters[key] = yaml.safe_load(value)
        out.append({'executable': spec.executable, 'name': spec.params_key,
                    'params_file': command[command.index('--params-file') + 1],
                    'parameters': parameters})
    return out


def without_remappings(nodes: list[dict]) -> list[dict]:
    return [{k: v for k, v in node.items() if k != 'remappings'} for node in nodes]


@pytest.fixture
def encrypted_params(tmp_path) -> str:
    doc = yaml.safe_load(PARAMS.read_text())
    doc[NODES['memory'].file_key]['ros__parameters'].update(
        store_dir='/data/engram', encrypt_evidence=True, encryption_key_file='/keys/k')
    path = tmp_path / 'engram.yaml'
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_robot_launch_starts_what_engram_launch_robot_starts(monkeypatch, encrypted_params):
    launched = launch_file_nodes(monkeypatch, 'robot_launch.py', params_file=encrypted_params)
    assert without_remappings(launched) == launcher_nodes('robot', encrypted_params)
    perception = launched[1]
    assert perception['parameters']['evidence_dir'] == '/data/engram/evidence'
    assert perception['parameters']['encrypt_evidence'] is True
    assert perception['remappings'] == [(name, name) for name, _, _ in PERCEPTION_INPUTS]


def test_sim_launch_starts_what_engram_launch_sim_starts(monkeypatch, encrypted_params):
    launched = launch_file_nodes(monkeypatch, 'sim_launch.py', params_file=encrypted_params,
                                 scenario='small', persist='true', store_dir='/tmp/store')
    expected = launcher_nodes('sim', encrypted_params,
                              ['memory.persist:=true', 'memory.store_dir:=/tmp/store',
                               'sim.scenario:=small'])
    assert without_remappings(launched) == expected
    assert launched[1]['parameters']['rooms'] == ['kitchen=box:0,0,3,4',
                                                   'living_room=box:3,0,6,4']


def test_memory_launch_starts_what_engram_launch_memory_starts(monkeypatch):
    launched = launch_file_nodes(monkeypatch, 'memory_launch.py', params_file=str(PARAMS),
                                 observations='/robot/observations')
    assert without_remappings(launched) == launcher_nodes('memory', str(PARAMS))
    assert launched[0]['remappings'] == [('engram/observations', '/robot/observations')]


def test_gazebo_launch_is_the_robot_set_on_sim_time(monkeypatch, encrypted_params):
    launched = launch_file_nodes(monkeypatch, 'gazebo_launch.py', params_file=encrypted_params,
                                 world='house.sdf')
    expected = launcher_nodes('robot', encrypted_params)
    for node in expected:
        node['parameters']['use_sim_time'] = True
    assert without_remappings(launched) == expected


@pytest.mark.parametrize('name', ['robot_launch.py', 'sim_launch.py', 'gazebo_launch.py'])
def test_launch_files_in_a_namespace_share_the_files_consent(monkeypatch, tmp_path, name):
    """``namespace:=/robot1``: the file's /**/engram_memory values still decide what
    perception shares (its consent and store), as engram_launch --namespace does."""
    doc = yaml.safe_load(PARAMS.read_text())
    doc[NODES['memory'].file_key]['ros__parameters'].update(persist=True, store_dir='/data/e')
    path = tmp_path / 'engram.yaml'
    path.write_text(yaml.safe_dump(doc))
    launched = launch_file_nodes(monkeypatch, name, params_file=str(path),
                                 namespace='/robot1', world='house.sdf')
    perception = [n for n in launched if n['executable'] == 'perception_node'][0]
    assert perception['parameters']['persist'] is True
    assert perception['parameters']['evidence_dir'] == '/data/e/evidence'
    launcher = Launcher('robot', params_file=path, namespace='/robot1')
    assert 'persist:=true' in launcher.children[1].command


def test_sim_launch_leaves_the_files_consent_alone_unless_asked(monkeypatch, tmp_path):
    """Its persist argument used to default to false, overriding the file's persist: true."""
    doc = yaml.safe_load(PARAMS.read_text())
    doc[NODES['memory'].file_key]['ros__parameters'].update(persist=True)
    path = tmp_path / 'engram.yaml'
    path.write_text(yaml.safe_dump(doc))
    memory, perception, _ = launch_file_nodes(monkeypatch, 'sim_launch.py',
                                              params_file=str(path))
    assert 'persist' not in memory['parameters']
    assert perception['parameters']['persist'] is True
    memory, perception, _ = launch_file_nodes(monkeypatch, 'sim_launch.py',
                                              params_file=str(path), persist='false')
    assert memory['parameters']['persist'] is False
    assert perception['parameters']['persist'] is False


def test_launch_files_default_to_the_packages_parameter_file(monkeypatch):
    for name in ('robot_launch.py', 'sim_launch.py', 'memory_launch.py'):
        assert {n['params_file'] for n in launch_file_nodes(monkeypatch, name)} == {str(PARAMS)}


LAUNCH_FILES = sorted(path.name for path in (ROOT / 'launch').glob('*_launch.py'))


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_launch_files_load_without_looking_packages_up(monkeypatch, name):
    """``--show-args`` loads the description only: it must not need ros_gz_sim (gazebo_launch
    used get_package_share_directory at load time and crashed without it), and every input is
    a described argument."""
    declared = [e for e in launch_description(monkeypatch, name)
                if isinstance(e, DeclareLaunchArgument)]
    assert declared and all(e.kwargs.get('description') for e in declared)
    calls = [node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
             for node in ast.walk(ast.parse((ROOT / 'launch' / name).read_text()))
             if isinstance(node, ast.Call)
             and isinstance(node.func, (ast.Attribute, ast.Name))]
    assert 'get_package_share_directory' not in calls


def test_gazebo_launch_finds_ros_gz_when_it_runs(monkeypatch):
    entities = launch_description(monkeypatch, 'gazebo_launch.py')
    include = [e for e in entities if type(e).__name__ == 'Include'][0]
    source = include.args[0].args[0]
    package, *path = source.args[0]
    assert (package.args, path) == (('ros_gz_sim',), ['launch', 'gz_sim.launch.py'])
    bridge = {e.args[0]: e.kwargs for e in entities if isinstance(e, DeclareLaunchArgument)}[
        'bridge_file']['default_value']
    assert bridge.args[0][0].args == ('engram_ros',)
    assert bridge.args[0][1:] == ['config', 'gz_bridge.yaml']


def test_gazebo_launch_bridges_what_perception_reads():
    """config/gz_bridge.yaml (the bridge contract) feeds perception's inputs and /clock."""
    bridged = {entry['ros_topic_name']: entry['ros_type_name'] for entry in
               yaml.safe_load((ROOT / 'config' / 'gz_bridge.yaml').read_text())}
    inputs = {name for name, _, _ in PERCEPTION_INPUTS}
    assert set(bridged) - {'/clock'} <= inputs
    assert {'camera/color/image_raw', 'camera/depth/image_raw', 'camera/color/camera_info',
            'odom'} <= set(bridged)
    assert bridged['/clock'] == 'rosgraph_msgs/msg/Clock'


def test_with_the_real_launch_package_show_args_works():
    """Where ``launch`` is installed (a ROS distro), load each file as ``ros2 launch
    --show-args`` does; it is not on the package index, so elsewhere this is skipped."""
    launch = pytest.importorskip('launch')
    if not hasattr(launch, 'LaunchDescription'):
        pytest.skip('the `launch` installed is not ROS 2\'s')
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    for name in LAUNCH_FILES:
        description = get_launch_description_from_python_launch_file(
            str(ROOT / 'launch' / name))
        assert description.get_launch_arguments()
