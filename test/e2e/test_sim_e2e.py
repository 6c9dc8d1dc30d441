"""End to end: one lap of the small simulated flat through perception into the memory, then a
planner's questions checked against the simulator's ground truth."""

from __future__ import annotations

import json
import math
import threading
import uuid

import pytest
import yaml

from conftest import NodeProcess
from conftest import PARAMS
from conftest import ROOT
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('pybullet')
pytest.importorskip('engram_ros.ros.nodes.perception_node')
if not (ROOT / 'engram_ros' / 'perception' / 'models' / 'visual_vocabulary.npz').exists():
    pytest.skip('perception models not generated (tools/train_perception_models.py)',
                allow_module_level=True)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from engram_ros.apps.cli import main  # noqa: E402
from engram_ros.apps.cli.common import open_store  # noqa: E402
from engram_ros.apps.launcher import Launcher  # noqa: E402
from engram_ros.core.query import RecallQuery  # noqa: E402
from engram_ros.ros.bag import BagReader  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402
from engram_ros.sim.launch_set import SIM_SHARED  # noqa: E402
from engram_ros.sim.scenario import load_scenario  # noqa: E402


def test_where_is_x_matches_ground_truth_after_one_lap(test_node, tmp_path):
    namespace = f'/e{uuid.uuid4().hex[:8]}'
    latest: dict[str, dict] = {}
    lock = threading.Lock()

    def keep(name):
        def callback(msg):
            with lock:
                latest[name] = json.loads(msg.data)
        return callback

    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    test_node.create_subscription(String, f'{namespace}/sim/status', keep('status'), latched)
    test_node.create_subscription(String, f'{namespace}/sim/ground_truth', keep('truth'),
                                  latched)
    perception_values: dict[str, str] = {}

    def perception_diagnostics(array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.startswith(f'{namespace}/engram_perception'):
                with lock:
                    perception_values.update({kv.key: kv.value for kv in status.values})

    test_node.create_subscription(DiagnosticArray, '/diagnostics', perception_diagnostics, 50)
    launcher = Launcher('sim', namespace=namespace, log_dir=tmp_path / 'logs', grace=10.0,
                        params=['sim.scenario:=small', 'sim.width:=320', 'sim.height:=240',
                                'memory.consolidation_period:=0.0',
                                # a camera mount set deliberately wrong: TF must win
                                'perception.camera_xyz:=[5.0,5.0,5.0]',
                                'perception.camera_rpy:=[1.0,0.5,0.2]'])
    launcher.start()
    try:
        client = MemoryClient(test_node, namespace)
        client.wait_for_services(timeout=60.0)

        def done() -> bool:
            died = launcher.check()
            assert died is None, (tmp_path / 'logs' / f'{died.spec.name}.log').read_text()
            with lock:
                return latest.get('status', {}).get('done', False)

        assert wait_for(done, timeout=180.0, period=0.5)
        # perception flushes, the memory ingests: wait for the count to settle
        counts: list[int] = []

        def settled() -> bool:
            counts.append(len(client.recall(kinds=['object'], k=100).engrams))
            return len(counts) > 4 and counts[-1] == counts[-5] and counts[-1] > 0

        assert wait_for(settled, timeout=30.0, period=0.5), counts
        with lock:
            truth = latest['truth']
        found = {}
        for obj in truth['objects']:
            if obj['category'] != 'object':
                continue
            response = client.recall(text=f'where is the {obj["label"]}?', kinds=['object'],
                                     k=3)
            hits = [e for e in response.engrams if e.label == obj['label']]
            if hits:
                p = hits[0].pose.pose.position
                found[obj['label']] = math.hypot(p.x - obj['position'][0],
                                                 p.y - obj['position'][1])
        logs = {p.name: p.read_text()[-2000:] for p in (tmp_path / 'logs').iterdir()}
        # perception drops frames when it falls behind (2 shared cores): most, not all, of
        # the four small-flat objects are seen in one lap; every one found must be right
        assert len(found) >= 3, (found, logs)
        # objects are placed at their centre, not on their visible side (objects.py)
        assert all(d < 0.5 for d in found.values()), found
        # the simulator publishes TF like a robot: perception placed every frame from it, and
        # the wrong mount parameters placed none
        with lock:
            values = dict(perception_values)
        assert values.get('pose_source') == 'tf', values
        assert int(values.get('frames_posed_by_tf', 0)) > 0, values
        assert 'frames_posed_by_parameters' not in values, values
        # the launcher gives perception the flat's rooms: places and objects carry them
        rooms = {f'room:{r["name"]}' for r in truth['rooms']}
        places = client.recall(kinds=['place'], k=100).engrams
        assert places and all(rooms & set(p.tags) for p in places), [p.tags for p in places]
        assert {t for p in places for t in p.tags if t.startswith('room:')} == rooms
        for obj in truth['objects']:
            hits = client.recall(tags_all=[f'label:{obj["label"]}'], kinds=['object'],
                                 k=1).engrams
            if obj['category'] == 'object' and hits:
                assert f'room:{obj["room"]}' in hits[0].tags, (obj, hits[0].tags)
        kitchen = client.recall(text='what is in the kitchen?', kinds=['object'], k=10)
        assert kitchen.engrams and all('room:kitchen' in e.tags for e in kitchen.engrams)
        unicorn = client.recall(text='where is the unicorn?', kinds=['object'], k=1)
        assert not [e for e in unicorn.engrams if e.label == 'unicorn']
    finally:
        codes = launcher.stop()
    assert codes == {'memory': 0, 'perception': 0, 'sim': 0}


def test_where_is_x_from_a_recorded_bag_finds_every_object(tmp_path):
    """The simulator records one lap of the small flat to a bag (as fast as it renders);
    ``engram ingest-bag`` processes every frame of it, so every object is found, in place and
    in its room (the live test above accepts a missed one: live frames are dropped)."""
    bag = tmp_path / 'small'
    args = ['--params-file', str(PARAMS)]
    for item in ('scenario:=small', 'width:=320', 'height:=240', 'realtime:=false',
                 'wait_for_subscribers:=false', f'record:={bag}', 'record_raw:=true'):
        args += ['-p', item]
    sim = NodeProcess('engram_ros.sim.node', args, tmp_path / 'sim.log')
    try:
        wait_for(lambda: (bag / 'metadata.yaml').exists() or sim.proc.poll() is not None,
             timeout=240.0)
        assert (bag / 'metadata.yaml').exists(), sim.log()
    finally:
        assert sim.stop() == 0, sim.log()
    with BagReader(bag) as reader:
        truth = [json.loads(m.data) for _, _, m in reader.messages(['/sim/ground_truth'])][-1]

    # what the launcher gives perception beside the sim: the flat's rooms and the camera mount
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({
        '/**/engram_memory': {'ros__parameters': {'persist': True}},
        '/**/engram_perception': {'ros__parameters': {
            'rooms': load_scenario('small').world.room_specs(),
            'camera_xyz': SIM_SHARED['camera_xyz'], 'camera_rpy': SIM_SHARED['camera_rpy']}}}))
    store_dir = tmp_path / 'store'
    assert main(['ingest-bag', str(bag), '--store', str(store_dir), '--params',
                 str(params)]) == 0

    store = open_store(store_dir)
    try:
        objects = [o for o in truth['objects'] if o['category'] == 'object']
        assert len(objects) == 4, truth['objects']
        for obj in objects:
            result = store.recall(RecallQuery(text=f'where is the {obj["label"]}?',
                                              kinds=('object',), k=3))
            hits = [h.engram for h in result.hits if h.engram.label == obj['label']]
            assert hits, (obj, [h.engram.label for h in result.hits])
            x, y = hits[0].position[:2]
            # objects are placed at their centre, not on their visible side (objects.py)
            assert math.hypot(x - obj['position'][0], y - obj['position'][1]) < 0.5, obj
            assert f'room:{obj["room"]}' in hits[0].tags, (obj, hits[0].tags)
        rooms = {f'room:{r["name"]}' for r in truth['rooms']}
        places = store.recall(RecallQuery(kinds=('place',), k=100)).hits
        assert places and all(rooms & set(h.engram.tags) for h in places)
        unicorn = store.recall(RecallQuery(text='where is the unicorn?', kinds=('object',),
                                           k=1))
        assert not [h for h in unicorn.hits if h.engram.label == 'unicorn']
    finally:
        store.close()
