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
    doc['engram_memory']['ros__parameters'].update(memory)
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
    assert perception == {'evidence_dir': '/data/engram/evidence', 'encrypt_evidence': True,
                          'encryption_key_file': '/keys/engram.key'}


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
