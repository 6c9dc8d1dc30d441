"""The memory node with a fleet (issue 15), over real DDS: an observation it ingests reaches
a milvus-lite fleet file under this robot's id, and with a fleet nobody serves the node runs
on its own memory and its diagnostics say the fleet is unreachable."""

from __future__ import annotations

import socket

import pytest

from conftest import wait_for
from memory_graph import DIM
from memory_graph import ingest
from memory_graph import Memory
from memory_graph import observation

rclpy = pytest.importorskip('rclpy')

from engram_ros.core.backends.milvus import MilvusBackend  # noqa: E402
from engram_ros.core.fleet.ids import local_id  # noqa: E402


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
