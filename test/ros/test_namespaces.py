"""Every node in a namespace runs with the values of the shipped parameter file, and two
namespaced memories are told apart on the one ``/diagnostics`` topic.

The shipped file's keys used to be ``engram_memory:`` etc., which match only the
un-namespaced node: in ``/robot1`` every value was silently ignored, a user's ``persist: true``
(their consent) with it. Each node is started here as an operator would, in a namespace, with
a copy of the shipped file that differs from the defaults, and asked for its values through
its parameter service; the memory's consent is checked by what is on disk after it stopped.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from conftest import NodeProcess
from conftest import PARAMS
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402

from engram_ros.apps.launcher import Launcher  # noqa: E402
from engram_ros.apps.wiring import NODES  # noqa: E402
from engram_ros.core.storage import SQLiteStorage  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402

from memory_graph import ingest  # noqa: E402
from memory_graph import Memory  # noqa: E402
from memory_graph import observation  # noqa: E402

#: Per node: values unlike the node's defaults, set in its section of a copy of the shipped
#: file, as ``{name: value}`` with ROS's dotted names for groups.
CHANGED = {
    'memory': {'max_k': 37, 'merge_radius.object': 0.25, 'semantic_text': False,
               'consolidation_period': 0.0},
    'perception': {'objects.min_score': 0.42, 'visual_words_per_place': 5,
                   'sync_queue_size': 17},
    'sim': {'width': 97, 'rate': 3.0, 'scenario': 'small', 'wait_for_subscribers': True},
}


def changed_file(tmp_path: Path, **sections: dict) -> Path:
    """A copy of the shipped parameter file with ``{node: {dotted name: value}}`` set."""
    doc = yaml.safe_load(PARAMS.read_text())
    for node, values in sections.items():
        section = doc[NODES[node].file_key]['ros__parameters']
        for name, value in values.items():
            *groups, leaf = name.split('.')
            target = section
            for group in groups:
                target = target.setdefault(group, {})
            target[leaf] = value
    path = tmp_path / f'engram_{uuid.uuid4().hex[:6]}.yaml'
    path.write_text(yaml.safe_dump(doc))
    return path


def parameters_of(test_node, fqn: str, names: list[str], timeout: float = 60.0) -> dict:
    """The values a running node reports through its parameter service."""
    client = test_node.create_client(GetParameters, f'{fqn}/get_parameters')
    try:
        assert client.wait_for_service(timeout_sec=timeout), f'{fqn} did not come up'
        future = client.call_async(GetParameters.Request(names=names))
        assert wait_for(future.done, timeout=timeout), f'{fqn} did not answer'
        return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values)}
    finally:
        test_node.destroy_client(client)


@pytest.mark.parametrize('node', ['memory', 'perception', 'sim'])
def test_each_node_in_a_namespace_runs_with_the_shipped_files_values(test_node, tmp_path,
                                                                     node):
    if node == 'sim':
        pytest.importorskip('pybullet')
    namespace = f'/robot{uuid.uuid4().hex[:6]}'
    path = changed_file(tmp_path, **{node: CHANGED[node]})
    process = NodeProcess(NODES[node].module, ['--params-file', str(path),
                                               '-r', f'__ns:={namespace}'],
                          tmp_path / f'{node}.log')
    try:
        fqn = f'{namespace}/{NODES[node].params_key}'
        got = parameters_of(test_node, fqn, list(CHANGED[node]))
        assert got == CHANGED[node], process.log()
    finally:
        assert process.stop() == 0, process.log()


def test_the_memorys_consent_in_the_file_holds_in_a_namespace(test_node, tmp_path):
    """``persist: true`` in the file really persists under ``-r __ns:=``."""
    store = tmp_path / 'store'
    path = changed_file(tmp_path, memory={'persist': True, 'store_dir': str(store),
                                          'semantic_text': False})
    namespace = f'/robot{uuid.uuid4().hex[:6]}'
    process = NodeProcess(NODES['memory'].module, ['--params-file', str(path),
                                                   '-r', f'__ns:={namespace}'],
                          tmp_path / 'memory.log')
    try:
        ingest(Memory(test_node, process, namespace), [observation('mug', (1.0, 2.0, 0.8))],
               expected=1)
    finally:
        assert process.stop() == 0, process.log()
    storage = SQLiteStorage(store, create=False)
    try:
        assert [e.label for e in storage.iter_all()] == ['mug']
    finally:
        storage.close()


def test_engram_launch_in_a_namespace_applies_the_file(test_node, tmp_path):
    """``engram_launch robot --namespace``: the memory persists as the file says, and
    perception gets the memory's consent and store from the same file (the wiring reads the
    file as ROS does)."""
    store = tmp_path / 'store'
    path = changed_file(tmp_path, memory={'persist': True, 'store_dir': str(store),
                                          'semantic_text': False, 'max_k': 37})
    namespace = f'/robot{uuid.uuid4().hex[:6]}'
    launcher = Launcher('robot', params_file=path, namespace=namespace,
                        log_dir=tmp_path / 'logs', grace=10.0)
    launcher.start()
    try:
        MemoryClient(test_node, namespace).wait_for_services(timeout=60.0)
        memory = parameters_of(test_node, f'{namespace}/engram_memory', ['persist', 'max_k'])
        perception = parameters_of(test_node, f'{namespace}/engram_perception',
                                   ['persist', 'evidence_dir'])
        assert launcher.check() is None
    finally:
        codes = launcher.stop()
    logs = {p.name: p.read_text()[-2000:] for p in (tmp_path / 'logs').iterdir()}
    assert codes == {'memory': 0, 'perception': 0}, logs
    assert memory == {'persist': True, 'max_k': 37}
    assert perception == {'persist': True, 'evidence_dir': str(store / 'evidence')}
    assert (store / 'STORE').is_file(), logs


def test_two_memories_in_two_namespaces_publish_two_statuses(test_node, start_memory):
    """The absolute /diagnostics topic is shared: each status carries its node's full name."""
    statuses: dict[str, dict[str, str]] = {}

    def keep(array: DiagnosticArray) -> None:
        for status in array.status:
            statuses[status.hardware_id] = dict(
                {kv.key: kv.value for kv in status.values}, name=status.name)

    test_node.create_subscription(DiagnosticArray, '/diagnostics', keep, 50)
    first, first_ns = start_memory()
    second, second_ns = start_memory()
    one = Memory(test_node, first, first_ns)
    Memory(test_node, second, second_ns)
    ingest(one, [observation('mug', (1.0, 2.0, 0.8)), observation('book', (4.0, 2.0, 0.8))],
           expected=2)
    a, b = f'{first_ns}/engram_memory', f'{second_ns}/engram_memory'
    assert wait_for(lambda: statuses.get(a, {}).get('received') == '2'
                    and statuses.get(b, {}).get('received') == '0', timeout=20.0), statuses
    assert statuses[a]['name'] == f'{a}: memory' and statuses[b]['name'] == f'{b}: memory'
