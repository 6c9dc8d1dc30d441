"""The launcher with real node processes: clean stop on SIGTERM, a dying node stops the set,
and the memory's store is closed cleanly with everything in it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest

from conftest import ROOT
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('pybullet')

from engram_ros.apps.launcher import Launcher  # noqa: E402
from engram_ros.apps.launcher import main as launcher_main  # noqa: E402
from engram_ros.apps.launcher import record_params  # noqa: E402
from engram_ros.apps.wiring import NODES  # noqa: E402
from engram_ros.core.model.engram import Observation  # noqa: E402
from engram_ros.core.storage import SQLiteStorage  # noqa: E402
from engram_ros.msg import Observation as ObservationMsg  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402
from engram_ros.ros.conversions import memory as conversions  # noqa: E402

DIM = 256


class LauncherProcess:
    """``python -m engram_ros.apps.launcher sim`` without perception, on a small, fast world."""

    def __init__(self, tmp_path: Path, store: Path, run: str) -> None:
        self.namespace = f'/l{uuid.uuid4().hex[:8]}'
        self.log_dir = tmp_path / run
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'engram_ros.apps.launcher', 'sim', '--without', 'perception',
             '--namespace', self.namespace, '--log-dir', str(self.log_dir), '--grace', '10',
             '-p', 'sim.scenario:=small', '-p', 'sim.width:=96', '-p', 'sim.height:=72',
             '-p', 'sim.wait_for_subscribers:=false', '-p', 'sim.rate:=2.0',
             '-p', 'memory.persist:=true', '-p', f'memory.store_dir:={store}',
             '-p', 'memory.consolidation_period:=0.0'],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def children(self) -> dict[str, psutil.Process]:
        found = {}
        for child in psutil.Process(self.proc.pid).children():
            cmdline = ' '.join(child.cmdline())
            for name in ('memory', 'sim', 'perception'):
                if f' {NODES[name].module} ' in cmdline:   # -m ...boot MODULE ARGS
                    found[name] = child
        return found

    def log(self, node: str) -> str:
        path = self.log_dir / f'{node}.log'
        return path.read_text() if path.exists() else ''

    def wait(self, timeout: float = 60.0) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out


def observation(label: str, i: int) -> ObservationMsg:
    vector = np.random.default_rng(i).normal(size=DIM)
    return conversions.observation_to_msg(Observation(
        kind='object', frame_id='map', position=np.array([float(i), 1.0, 0.5]),
        stamp=time.time(), vector=vector, label=label, tags=(f'label:{label}',),
        modality='vision', confidence=0.9))


def feed(test_node, launcher: LauncherProcess, labels: list[str], offset: int) -> MemoryClient:
    client = MemoryClient(test_node, launcher.namespace)
    client.wait_for_services(timeout=60.0)
    publisher = test_node.create_publisher(ObservationMsg,
                                           f'{launcher.namespace}/engram/observations', 100)
    assert wait_for(lambda: publisher.get_subscription_count() > 0, timeout=30.0)
    for i, label in enumerate(labels):
        publisher.publish(observation(label, offset + i))
    assert wait_for(lambda: len(client.recall(kinds=['object'], k=100).engrams) >= offset
                    + len(labels), timeout=30.0)
    return client


def stored(store: Path) -> tuple[set[str], bool]:
    """Labels in the store, and whether its last close was clean (index cache saved)."""
    with SQLiteStorage(store) as storage:
        labels = {e.label for e in storage.iter_all()}
        generation = storage.get_meta('index_generation')
    marker = store / 'index' / 'GENERATION'
    clean = bool(generation) and marker.exists() and marker.read_text().strip() == generation
    return labels, clean


def test_launcher_sigterm_stops_every_node_cleanly(test_node, tmp_path):
    store = tmp_path / 'store'
    launcher = LauncherProcess(tmp_path, store, 'run1')
    try:
        feed(test_node, launcher, ['mug', 'book', 'plant'], 0)
        children = launcher.children()
        assert set(children) == {'memory', 'sim'}
        # the sim patrols meanwhile
        assert wait_for(lambda: 'laps of' in launcher.log('sim'), timeout=30.0)
        launcher.proc.send_signal(signal.SIGTERM)
        code, out = launcher.wait()
    finally:
        if launcher.proc.poll() is None:
            launcher.proc.kill()
    assert code == 0, out
    assert 'memory stopped (exit code 0)' in out and 'sim stopped (exit code 0)' in out, out
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                   for p in children.values())
    assert 'Traceback' not in launcher.log('memory') + launcher.log('sim')
    labels, clean = stored(store)
    assert labels == {'mug', 'book', 'plant'} and clean


@pytest.mark.parametrize('victim, sig', [('sim', signal.SIGKILL), ('memory', signal.SIGTERM)])
def test_a_dying_node_brings_the_others_down_and_the_store_is_intact(test_node, tmp_path,
                                                                     victim, sig):
    store = tmp_path / 'store'
    launcher = LauncherProcess(tmp_path, store, 'run')
    try:
        feed(test_node, launcher, ['mug', 'kettle'], 0)
        children = launcher.children()
        children[victim].send_signal(sig)
        code, out = launcher.wait()
    finally:
        if launcher.proc.poll() is None:
            launcher.proc.kill()
    assert code == 1, out
    assert f'{victim} exited by itself' in out, out
    survivor = 'memory' if victim == 'sim' else 'sim'
    assert f'{survivor} stopped (exit code 0)' in out, out
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                   for p in children.values())
    labels, clean = stored(store)
    assert labels == {'mug', 'kettle'} and clean


def test_bad_overrides_are_refused():
    with pytest.raises(ValueError, match='not <node>.<name>:=<value>'):
        Launcher('sim', params=['scenario:=small'])
    with pytest.raises(ValueError, match='unknown set'):
        Launcher('moon')
    with pytest.raises(ValueError, match='unknown node'):
        Launcher('sim', without=['planner'])


def test_perception_gets_the_sims_camera_mount():
    launcher = Launcher('sim', params=['sim.camera_xyz:=[0.2, 0.0, 1.2]'])
    perception = next(c for c in launcher.children if c.spec.name == 'perception')
    assert 'camera_xyz:=[0.2, 0.0, 1.2]' in perception.command
    assert 'camera_convention:=optical' in perception.command
    assert 'scenario:=small' not in perception.command


def test_perception_keeps_evidence_where_and_as_the_memory_does():
    launcher = Launcher('robot', params=['memory.store_dir:=/data/engram',
                                         'memory.encrypt_evidence:=true',
                                         'memory.encryption_key_file:=/keys/engram.key'])
    perception = next(c for c in launcher.children if c.spec.name == 'perception')
    assert 'evidence_dir:="/data/engram/evidence"' in perception.command
    assert 'encrypt_evidence:=true' in perception.command
    assert 'encryption_key_file:="/keys/engram.key"' in perception.command
    alone = Launcher('robot', without=['memory'], params=['perception.evidence_dir:=/x'])
    assert not any('encrypt_evidence' in a for c in alone.children for a in c.command)


def test_perception_gets_the_scenarios_rooms_and_a_bad_scenario_is_refused(tmp_path):
    launcher = Launcher('sim', params=['sim.scenario:=small'])
    perception = next(c for c in launcher.children if c.spec.name == 'perception')
    assert 'rooms:=["kitchen=box:0,0,3,4", "living_room=box:3,0,6,4"]' in perception.command
    assert not any(a.startswith('rooms:=') for c in Launcher('robot').children
                   for a in c.command)
    with pytest.raises(ValueError, match='no such scenario file'):
        Launcher('sim', params=[f'sim.scenario:={tmp_path / "missing.yaml"}'])


@pytest.mark.parametrize('name', ['sim_launch.py', 'robot_launch.py', 'gazebo_launch.py'])
def test_launch_files_declare_described_arguments(name):
    """`launch` is not installable here: check the files' shape without running them."""
    import ast
    tree = ast.parse((ROOT / 'launch' / name).read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
               for n in tree.body)
    declared = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, 'id', '') == 'DeclareLaunchArgument']
    assert declared
    source = (ROOT / 'launch' / name).read_text()
    assert 'params_file' in source
    for call in declared:
        assert any(k.arg == 'description' for k in call.keywords), ast.dump(call)[:80]


def test_gz_bridge_maps_camera_depth_and_odometry():
    import yaml
    entries = yaml.safe_load((ROOT / 'config' / 'gz_bridge.yaml').read_text())
    keys = {'ros_topic_name', 'gz_topic_name', 'ros_type_name', 'gz_type_name', 'direction'}
    assert all(set(e) == keys and e['direction'] == 'GZ_TO_ROS' for e in entries)
    topics = {e['ros_topic_name']: e['ros_type_name'] for e in entries}
    assert topics['camera/color/image_raw'] == 'sensor_msgs/msg/Image'
    assert topics['camera/depth/image_raw'] == 'sensor_msgs/msg/Image'
    assert topics['camera/color/camera_info'] == 'sensor_msgs/msg/CameraInfo'
    assert topics['odom'] == 'nav_msgs/msg/Odometry'


def test_record_options_reach_the_simulator_only(tmp_path):
    params = record_params('sim', tmp_path / 'bag', True)
    assert params == [f'sim.record:="{tmp_path / "bag"}"', 'sim.record_raw:=true']
    sim = Launcher('sim', params=params).children[-1]
    assert sim.spec.name == 'sim'
    assert f'record:="{tmp_path / "bag"}"' in sim.command and 'record_raw:=true' in sim.command
    assert record_params('sim', None, False) == []
    with pytest.raises(ValueError, match='need a set with the simulator'):
        record_params('robot', tmp_path / 'bag', False)
    with pytest.raises(ValueError, match='needs --record PATH'):
        record_params('sim', None, True)
    assert launcher_main(['robot', '--record', str(tmp_path / 'bag')]) == 2
    assert not (tmp_path / 'bag').exists()
