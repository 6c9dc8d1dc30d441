"""The one launch-wiring source: node sets, what perception shares, no simulator for robots."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from engram_ros.apps import wiring

from conftest import PARAMS
from conftest import ROOT


def params_file(tmp_path, **memory) -> str:
    doc = yaml.safe_load(PARAMS.read_text())
    doc[wiring.NODES['memory'].file_key]['ros__parameters'].update(memory)
    path = tmp_path / 'engram.yaml'
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def parameters_of(launches: list[wiring.NodeLaunch]) -> dict[str, dict]:
    return {launch.spec.name: launch.parameters for launch in launches}


def test_robot_set_gives_perception_the_memorys_evidence_settings(tmp_path):
    """launch/robot_launch.py used to leave these out: evidence outside the store."""
    path = params_file(tmp_path, store_dir='/data/engram', encrypt_evidence=True,
                       encryption_key_file='/keys/engram.key')
    perception = parameters_of(wiring.node_set('robot', path))['perception']
    assert perception == {'persist': False, 'evidence_dir': '/data/engram/evidence',
                          'encrypt_evidence': True, 'encryption_key_file': '/keys/engram.key'}


def test_perception_writes_evidence_only_with_the_memorys_consent(tmp_path):
    """The memory's persist is perception's: without it, no evidence file is written."""
    assert parameters_of(wiring.node_set('robot', PARAMS))['perception']['persist'] is False
    path = params_file(tmp_path, persist=True)
    assert parameters_of(wiring.node_set('robot', path))['perception']['persist'] is True
    refused = wiring.node_set('robot', path, {'memory': {'persist': False}})
    assert parameters_of(refused)['perception']['persist'] is False


@pytest.mark.parametrize('namespace', ['', '/robot1', 'robot1', '/fleet/robot7/'])
def test_the_shipped_files_values_apply_in_any_namespace(tmp_path, namespace):
    """Its keys are /**/<node>: what is shared follows the file in every namespace."""
    path = params_file(tmp_path, persist=True, store_dir='/data/engram')
    perception = parameters_of(wiring.node_set('robot', path, namespace=namespace))[
        'perception']
    assert perception['persist'] is True
    assert perception['evidence_dir'] == '/data/engram/evidence'


def test_the_memorys_overrides_reach_perception(tmp_path):
    path = params_file(tmp_path, store_dir='/data/engram')
    perception = parameters_of(wiring.node_set(
        'robot', path, {'memory': {'store_dir': '/mnt/other', 'encrypt_evidence': True}}))[
            'perception']
    assert perception['evidence_dir'] == '/mnt/other/evidence'
    assert perception['encrypt_evidence'] is True


def test_sets_start_the_memory_first_and_leave_out_what_is_asked():
    assert [n.spec.name for n in wiring.node_set('sim', PARAMS)] == ['memory', 'perception',
                                                                     'sim']
    assert [n.spec.name for n in wiring.node_set('robot', PARAMS)] == ['memory', 'perception']
    assert [n.spec.name for n in wiring.node_set('memory', PARAMS)] == ['memory']
    alone = wiring.node_set('robot', PARAMS, without=['memory'])
    assert parameters_of(alone) == {'perception': {}}
    with pytest.raises(ValueError, match='unknown set'):
        wiring.node_set('moon', PARAMS)
    with pytest.raises(ValueError, match='unknown node'):
        wiring.node_set('sim', PARAMS, without=['planner'])


def test_sim_set_gives_perception_the_camera_mount_and_rooms():
    perception = parameters_of(wiring.node_set(
        'sim', PARAMS, {'sim': {'scenario': 'small', 'camera_xyz': [0.2, 0.0, 1.2]}}))[
            'perception']
    assert perception['camera_xyz'] == [0.2, 0.0, 1.2]
    assert perception['camera_convention'] == 'optical'
    assert perception['rooms'] == ['kitchen=box:0,0,3,4', 'living_room=box:3,0,6,4']
    assert perception['evidence_dir'].endswith('evidence')


def test_robot_and_memory_sets_do_not_load_the_simulator():
    code = ('import sys\n'
            'from engram_ros.apps import launcher, wiring\n'
            'for name in ("robot", "memory"):\n'
            '    launcher.Launcher(name)\n'
            '    wiring.node_set(name, wiring.default_params_file())\n'
            'loaded = sorted(m for m in sys.modules if m.startswith("engram_ros.sim"))\n'
            'assert not loaded, loaded\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('name', sorted(wiring.NODES))
def test_each_nodes_executable_runs_its_module(name):
    spec = wiring.NODES[name]
    script = (ROOT / 'scripts' / spec.executable).read_text()
    assert f'from {spec.module} import main' in script


def test_the_default_parameter_file_is_the_packages():
    assert wiring.default_params_file() == PARAMS


RCLPY_CASES = """
/**:
  ros__parameters: {a: 1, b: 1, c: 1, d: 1}
/**/engram_memory:
  ros__parameters: {b: 2, group: {x: 1, y: 1}}
engram_memory:
  ros__parameters: {c: 3}
/robot1/engram_memory:
  ros__parameters: {d: 4, group: {y: 4}}
/*/engram_memory:
  ros__parameters: {e: 5}
/robot1/*:
  ros__parameters: {f: 6}
/robot1/engram_perception:
  ros__parameters: {g: 7}
/**/robot1/**:
  ros__parameters: {h: 8}
robot2:
  engram_memory:
    ros__parameters: {i: 9}
"""


@pytest.mark.parametrize('namespace', ['/', '/robot1', '/robot2', '/fleet/robot1'])
def test_the_file_is_read_as_rclpy_reads_it(tmp_path, namespace):
    """Wildcards, implied slashes and precedence as the installed rclpy applies them."""
    rclpy = pytest.importorskip('rclpy')
    path = tmp_path / 'cases.yaml'
    path.write_text(RCLPY_CASES)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node(
            'engram_memory', namespace=namespace, context=context,
            cli_args=['--ros-args', '--params-file', str(path)], use_global_arguments=False,
            automatically_declare_parameters_from_overrides=True)
        applied = {name: p.value for name, p in node.get_parameters_by_prefix('').items()
                   if name not in ('use_sim_time', 'start_type_description_service')}
        fqn = node.get_fully_qualified_name()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert wiring.node_parameters(yaml.safe_load(RCLPY_CASES), fqn) == applied


def test_perception_gets_the_memorys_privacy_zones_and_windows(tmp_path):
    """Perception must not encode or write what the memory would refuse: same policy."""
    path = params_file(tmp_path, **{'privacy.zones': ['circle:1,2,3'],
                                    'privacy': {'time_windows': ['daily:22:00-07:00']}})
    perception = parameters_of(wiring.node_set('robot', path))['perception']
    assert perception['privacy.zones'] == ['circle:1,2,3']
    assert perception['privacy.time_windows'] == ['daily:22:00-07:00']
    overridden = parameters_of(wiring.node_set(
        'robot', path, {'memory': {'privacy.zones': ['box:0,0,1,1']}}))['perception']
    assert overridden['privacy.zones'] == ['box:0,0,1,1']
    assert 'privacy.zones' not in parameters_of(wiring.node_set('robot', PARAMS))['perception']


def test_sim_set_gives_the_simulator_the_memorys_privacy_zones(tmp_path):
    """It records no raw frame inside them."""
    path = params_file(tmp_path, **{'privacy.zones': ['circle:1,2,0.5'],
                                    'privacy.time_windows': ['daily:22:00-06:00']})
    sim = parameters_of(wiring.node_set('sim', path))['sim']
    assert sim == {'privacy.zones': ['circle:1,2,0.5'],
                   'privacy.time_windows': ['daily:22:00-06:00']}
    assert parameters_of(wiring.node_set('sim', PARAMS))['sim'] == {}
