"""Managed nodes and simulated time, over real DDS with the nodes in their own processes.

A lifecycle manager (here the test) drives the memory and perception nodes with
``lifecycle_msgs/srv/ChangeState`` on ``<node>/change_state``, as nav2's lifecycle_manager
does; a node with ``use_sim_time`` stamps what it publishes with the ``/clock`` it is given.
"""

from __future__ import annotations

import pytest

from conftest import NodeProcess
from conftest import PARAMS
from conftest import wait_for
from memory_graph import ingest
from memory_graph import Memory
from memory_graph import observation

rclpy = pytest.importorskip('rclpy')

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from engram_ros.core.storage.sqlite import INDEX_DIR_NAME  # noqa: E402
from engram_ros.msg import Observation as ObservationMsg  # noqa: E402
from engram_ros.srv import Recall  # noqa: E402

SERVICE_TIMEOUT = 20.0


class Managed:
    """The test as a lifecycle manager of one node."""

    def __init__(self, test_node, process: NodeProcess, fqn: str) -> None:
        self.node, self.process, self.fqn = test_node, process, fqn
        self.change = test_node.create_client(ChangeState, f'{fqn}/change_state')
        self.get = test_node.create_client(GetState, f'{fqn}/get_state')

    def _call(self, client, request):
        assert client.wait_for_service(timeout_sec=SERVICE_TIMEOUT), self.process.log()
        future = client.call_async(request)
        assert wait_for(future.done, SERVICE_TIMEOUT), self.process.log()
        return future.result()

    def state(self) -> str:
        return self._call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        return self._call(self.change, ChangeState.Request(
            transition=Transition(id=transition_id))).success

    def serves(self, service: str) -> bool:
        """Whether a server of ``service`` is up (the graph lists clients' names too)."""
        return self.node.count_services(service) > 0


def start(tmp_path, module: str, namespace: str, name: str, *params: str) -> NodeProcess:
    args = ['--params-file', str(PARAMS), '-r', f'__ns:={namespace}', '-r', f'__node:={name}',
            '-p', 'diagnostics_period:=0.2']
    for item in params:
        args += ['-p', item]
    return NodeProcess(module, args, tmp_path / f'{name}.log')


@pytest.fixture
def processes():
    started: list[NodeProcess] = []
    yield started
    for process in started:
        process.stop()


def test_memory_node_goes_through_every_transition(test_node, tmp_path, processes):
    """Unconfigured: no store, no services. Configure opens the store; activate serves and
    ingests; deactivate stops serving; cleanup closes the store (its index cache saved, as a
    clean close does); configure + activate again reopen what was kept; shutdown finalizes."""
    store = tmp_path / 'store'
    namespace = '/lifecycle_memory'
    process = start(tmp_path, 'engram_ros.ros.nodes.memory_node', namespace, 'engram_memory',
                    'autostart:=false', 'persist:=true', f'store_dir:={store}',
                    'semantic_text:=false', 'consolidation_period:=0.0')
    processes.append(process)
    manager = Managed(test_node, process, f'{namespace}/engram_memory')
    recall = f'{namespace}/engram/recall'
    generation = store / INDEX_DIR_NAME / 'GENERATION'

    assert manager.state() == 'unconfigured'
    assert not store.exists()
    assert not manager.serves(recall)

    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == 'inactive'
    assert store.is_dir() and not generation.exists()     # open: the cache is dropped
    assert not manager.serves(recall)

    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert manager.state() == 'active'
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)

    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert manager.state() == 'inactive'
    assert wait_for(lambda: not manager.serves(recall), 10.0)
    assert wait_for(lambda: memory.publisher.get_subscription_count() == 0, 10.0)

    assert manager.transition(Transition.TRANSITION_CLEANUP)
    assert manager.state() == 'unconfigured'
    assert generation.is_file()                           # closed cleanly: cache saved

    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    memory.client.wait_for_services(timeout=SERVICE_TIMEOUT)
    response = memory.client.recall(tags_all=['label:mug'], k=5)
    assert response.status == Recall.Response.STATUS_OK, response.message
    assert [e.label for e in response.engrams] == ['mug']

    assert manager.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert manager.state() == 'finalized'
    assert generation.is_file()
    assert wait_for(lambda: not manager.serves(recall), 10.0)
    assert process.stop() == 0, process.log()


def test_a_configure_that_fails_leaves_the_node_unconfigured_and_says_why(test_node, tmp_path,
                                                                        processes):
    """A store directory that is a file: configure answers success=false, the node lives on
    (a plain start would exit with status 2), and a later transition still works."""
    not_a_store = tmp_path / 'file'
    not_a_store.write_text('not a store')
    namespace = '/lifecycle_refused'
    process = start(tmp_path, 'engram_ros.ros.nodes.memory_node', namespace, 'engram_memory',
                    'autostart:=false', 'persist:=true', f'store_dir:={not_a_store}',
                    'semantic_text:=false')
    processes.append(process)
    manager = Managed(test_node, process, f'{namespace}/engram_memory')

    assert not manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == 'unconfigured'
    assert 'configure failed' in process.log() and str(not_a_store) in process.log()
    assert not_a_store.read_text() == 'not a store'
    assert manager.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert manager.state() == 'finalized'


def test_perception_reads_its_sensors_only_while_active(test_node, tmp_path, processes):
    namespace = '/lifecycle_perception'
    process = start(tmp_path, 'engram_ros.ros.nodes.perception_node', namespace,
                    'engram_perception', 'autostart:=false')
    processes.append(process)
    manager = Managed(test_node, process, f'{namespace}/engram_perception')
    color = f'{namespace}/camera/color/image_raw'
    # a memory listening: perception subscribes its sensors once one does
    test_node.create_subscription(ObservationMsg, f'{namespace}/engram/observations',
                                  lambda _: None, 10)

    assert manager.state() == 'unconfigured'
    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == 'inactive'
    assert test_node.count_subscribers(color) == 0
    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert wait_for(lambda: test_node.count_subscribers(color) == 1, 15.0), process.log()
    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert wait_for(lambda: test_node.count_subscribers(color) == 0, 10.0), process.log()
    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert wait_for(lambda: test_node.count_subscribers(color) == 1, 15.0), process.log()
    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert manager.transition(Transition.TRANSITION_CLEANUP)
    assert manager.state() == 'unconfigured'
    assert process.stop() == 0, process.log()


def test_a_plain_start_is_active(test_node, tmp_path, processes):
    """autostart (the default): configured and activated while starting, as before."""
    namespace = '/lifecycle_plain'
    process = start(tmp_path, 'engram_ros.ros.nodes.memory_node', namespace, 'engram_memory',
                    'semantic_text:=false')
    processes.append(process)
    Memory(test_node, process, namespace)       # its services are up
    assert Managed(test_node, process, f'{namespace}/engram_memory').state() == 'active'


SIM_TIME = Time(sec=1234, nanosec=500_000_000)


@pytest.mark.parametrize('module, name', [
    ('engram_ros.ros.nodes.memory_node', 'engram_memory'),
    ('engram_ros.ros.nodes.perception_node', 'engram_perception'),
])
def test_with_use_sim_time_a_node_stamps_with_the_clock_it_is_given(test_node, tmp_path,
                                                                    processes, module, name):
    """Bags and Gazebo run on simulated time: with use_sim_time the node's diagnostics carry
    the /clock time the test publishes (1234.5 s), never the wall clock's."""
    namespace = f'/sim_time_{name}'
    process = start(tmp_path, module, namespace, name, 'use_sim_time:=true',
                    *(['semantic_text:=false'] if name == 'engram_memory' else []))
    processes.append(process)
    fqn = f'{namespace}/{name}'
    stamps: list[Time] = []
    test_node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda msg: stamps.extend(msg.header.stamp for s in msg.status[:1]
                                  if s.hardware_id == fqn), 50)
    clock = test_node.create_publisher(Clock, '/clock', 10)

    def stamped_with_the_clock() -> bool:
        clock.publish(Clock(clock=SIM_TIME))
        return SIM_TIME in stamps

    assert wait_for(stamped_with_the_clock, 30.0), process.log()
    # before the first /clock a node on sim time reads 0; nothing else is allowed
    assert set((s.sec, s.nanosec) for s in stamps) <= {(0, 0), (1234, 500_000_000)}
    assert process.stop() == 0, process.log()

