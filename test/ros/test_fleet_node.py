"""The memory node with a fleet (issue 15), over real DDS: an observation it ingests reaches
a milvus-lite fleet file under this robot's id, and with a fleet nobody serves the node runs
on its own memory and its diagnostics say the fleet is unreachable."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from fleet_served import Served

from conftest import wait_for
from memory_graph import DIM
from memory_graph import ingest
from memory_graph import Memory
from memory_graph import observation

rclpy = pytest.importorskip('rclpy')

from engram_ros.core.audit import AuditLog  # noqa: E402
from engram_ros.core.backend import Stage1Filter  # noqa: E402
from engram_ros.core.backends.milvus import MilvusBackend  # noqa: E402
from engram_ros.core.fleet.ids import fleet_id  # noqa: E402
from engram_ros.core.fleet.ids import local_id  # noqa: E402
from engram_ros.core.fleet.ids import register  # noqa: E402
from engram_ros.core.model.engram import Engram  # noqa: E402
from engram_ros.srv import ForgetEngrams  # noqa: E402
from engram_ros.srv import Recall  # noqa: E402

SCOPE_FLEET = Recall.Request.SCOPE_FLEET


def test_an_ingested_observation_is_uploaded_under_the_robots_id(test_node, start_memory,
                                                                 tmp_path):
    fleet_file = tmp_path / 'fleet.db'
    process, namespace = start_memory(None, tmp_path / 'store', f'fleet.uri:={fleet_file}',
                                      'fleet.sync_period:=0.2')
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
    assert wait_for(lambda: memory.diagnostic('fleet.uploaded') == '1', 30.0), process.log()
    assert memory.diagnostic('fleet') == 'connected'
    mug = memory.client.recall(tags_all=['label:mug'], k=1).engrams[0]
    assert process.stop() == 0                  # the file is the node's while it runs
    fleet = MilvusBackend(str(fleet_file), DIM)
    try:
        [row] = fleet._client.query(fleet.collection, filter='id > 0',
                                    output_fields=['id', 'robot'])
        assert row['robot'] == namespace.strip('/') and local_id(row['id']) == mug.id
    finally:
        fleet.close()


def test_an_unreachable_fleet_leaves_the_robot_working_and_says_so(test_node, start_memory,
                                                                  tmp_path):
    with socket.socket() as s:                 # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    process, namespace = start_memory(None, tmp_path / 'store',
                                      f'fleet.uri:=http://127.0.0.1:{port}',
                                      'fleet.sync_period:=0.2')
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
    assert wait_for(lambda: (memory.diagnostic('fleet') or '').startswith('unreachable: '),
                    30.0), process.log()
    # Each try waits out pymilvus' connect timeout: the change is read by the next sync.
    assert wait_for(lambda: memory.diagnostic('fleet.backlog') == '1', 30.0), process.log()
    assert [e.label for e in memory.client.recall(tags_all=['label:mug'], k=1).engrams] == \
        ['mug']


def _fleet_mug(uri: str, robot: str) -> int:
    """Robot ``robot``'s mug put straight into the fleet collection (as its sync would);
    returns its fleet id."""
    fleet = MilvusBackend(uri, DIM, frame_id='map', robot_id=robot)
    try:
        fid = fleet_id(register(fleet, robot), 1)
        vector = np.ones(DIM, dtype=np.float32) / np.sqrt(DIM)
        fleet.put([Engram(id=fid, kind='object', frame_id='map', label='mug',
                          tags=('label:mug',), position=np.array([9.0, 9.0, 0.8]),
                          vector=vector, first_seen=time.time(), last_seen=time.time())])
        return fid
    finally:
        fleet.close()


def test_a_forget_asked_of_one_robot_reaches_the_fleet_and_is_audited_there(
        test_node, start_memory, tmp_path):
    served = Served(tmp_path / 'fleet.db')
    try:
        store = tmp_path / 'store'
        process, namespace = start_memory(None, store, f'fleet.uri:={served.uri}',
                                          'fleet.sync_period:=0.2')
        memory = Memory(test_node, process, namespace)
        ingest(memory, [observation('mug', (1.0, 2.0, 0.8)),
                        observation('book', (3.0, 2.0, 0.8))], expected=2)
        assert wait_for(lambda: memory.diagnostic('fleet.uploaded') == '2', 30.0), \
            process.log()
        theirs = _fleet_mug(served.uri, 'robot_b')
        fleet = MilvusBackend(served.uri, DIM, frame_id='map')
        try:
            assert len(fleet.select(Stage1Filter(tags_all=('label:mug',)))) == 2
            # A fleet id unknown everywhere is reported; another robot's row is forgotten
            # from this robot's Forget service, its own rows stay.
            answer = memory.client.forget_engrams([theirs, theirs + 1], fleet=True,
                                                  requester='ops')
            assert answer.status == ForgetEngrams.Response.STATUS_UNKNOWN_ID, answer.message
            assert list(answer.fleet_forgotten_ids) == [theirs] and answer.forgotten == 0
            assert list(answer.unknown_ids) == [theirs + 1]
            assert len(fleet.select(Stage1Filter(tags_all=('label:mug',)))) == 1
            # A filter selects here and in the fleet; this robot's row goes at once.
            _fleet_mug(served.uri, 'robot_b')
            answer = memory.client.forget_engrams(tags_all=['label:mug'], fleet=True,
                                                  requester='ops')
            assert answer.status == ForgetEngrams.Response.STATUS_OK, answer.message
            assert answer.forgotten == 1 and len(answer.fleet_forgotten_ids) == 2
            assert len(fleet.select(Stage1Filter(tags_all=('label:mug',)))) == 0
            assert len(fleet.select(Stage1Filter(tags_all=('label:book',)))) == 1
        finally:
            fleet.close()
        assert process.stop() == 0
    finally:
        served.stop()
    records = [r for r in AuditLog(store / 'audit.jsonl').records()
               if r.get('action') == 'fleet_forget']
    assert len(records) == 2 and {r['requester'] for r in records} == {'ops'}


def test_a_fleet_forget_without_a_fleet_forgets_here_and_says_the_fleet_was_missed(
        test_node, start_memory, tmp_path):
    process, namespace = start_memory(None, tmp_path / 'store')
    memory = Memory(test_node, process, namespace)
    ingest(memory, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
    answer = memory.client.forget_engrams(tags_all=['label:mug'], fleet=True)
    assert answer.status == ForgetEngrams.Response.STATUS_FLEET_UNAVAILABLE
    assert answer.forgotten == 1 and 'no fleet configured' in answer.message
    assert memory.client.recall(tags_all=['label:mug'], k=1).engrams == []
    assert wait_for(lambda: memory.diagnostic('fleet_forgets_missed') == '1', 10.0)


def test_robot_2_answers_where_the_mug_is_with_robot_1s_sighting(test_node, start_memory,
                                                                  tmp_path):
    # Two memory nodes in two namespaces share one served fleet file: robot 1 sees the mug,
    # robot 2 never does; asked with the fleet scope, robot 2 answers with robot 1's sighting
    # and says whose it is; asked about itself only, it has nothing.
    served = Served(tmp_path / 'fleet.db')
    try:
        p1, ns1 = start_memory('/robot1', tmp_path / 'r1', f'fleet.uri:={served.uri}',
                               'fleet.sync_period:=0.2')
        p2, ns2 = start_memory('/robot2', tmp_path / 'r2', f'fleet.uri:={served.uri}',
                               'fleet.sync_period:=0.2')
        robot1, robot2 = Memory(test_node, p1, ns1), Memory(test_node, p2, ns2)
        ingest(robot1, [observation('mug', (1.0, 2.0, 0.8))], expected=1)
        ingest(robot2, [observation('book', (8.0, 2.0, 0.8))], expected=1)
        assert wait_for(lambda: robot1.diagnostic('fleet.uploaded') == '1', 30.0), p1.log()

        def fleet_answer():
            return robot2.client.recall(text='where is the mug?', k=5, scope=SCOPE_FLEET)

        assert wait_for(lambda: [e.label for e in fleet_answer().engrams] == ['mug'], 30.0), \
            p2.log()
        answer = fleet_answer()
        assert answer.fleet == Recall.Response.FLEET_ANSWERED
        assert list(answer.robots) == ['robot1']
        assert np.allclose([answer.engrams[0].pose.pose.position.x,
                            answer.engrams[0].pose.pose.position.y],
                           [1.0, 2.0], atol=0.1)
        own = robot2.client.recall(text='where is the mug?', k=5)
        assert own.engrams == [] and own.fleet == Recall.Response.FLEET_NOT_ASKED
        # Robot 1 asked the same with the fleet scope answers from its own memory only once:
        # its rows in the fleet are replicas, never a second answer.
        mine = robot1.client.recall(text='where is the mug?', k=5, scope=SCOPE_FLEET)
        assert [e.label for e in mine.engrams] == ['mug'] and list(mine.robots) == ['robot1']
    finally:
        served.stop()
